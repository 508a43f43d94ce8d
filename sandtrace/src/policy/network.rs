//! `[network]` address rules: the entries of `allow_connect` and `allow_bind`.
//!
//! An entry is `ADDRESS:PORTS`:
//! - `ADDRESS` is an IPv4 address (`127.0.0.1`), an IPv4 network (`10.0.0.0/8`), an IPv6
//!   address in brackets (`[::1]`), an IPv6 network (`[fd00::]/8`), or `*` for every IPv4 and
//!   IPv6 address. An IPv4-mapped IPv6 address (`[::ffff:127.0.0.1]`) is the IPv4 address it
//!   maps: the kernel treats traffic to it as IPv4, and so do the rules.
//! - `PORTS` is a port (`8080`), an inclusive range (`8000-8099`) or `*` for every port.
//!
//! Host names go in `allow_hosts` (`super::hosts`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::diagnostic::Problem;

/// Which addresses an entry covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressMatch {
    /// `*`: every IPv4 and IPv6 address.
    Any,
    /// The addresses that agree with `addr` on its first `prefix_len` bits. IPv4-mapped IPv6
    /// networks are stored as IPv4.
    Network { addr: IpAddr, prefix_len: u8 },
}

/// An inclusive port range; `*` is `0..=65535` (port 0 is what `bind` asks for when any free
/// port will do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub const ANY: Self = Self {
        first: 0,
        last: u16::MAX,
    };

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

/// One parsed `allow_connect` / `allow_bind` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressRule {
    pub address: AddressMatch,
    pub ports: PortRange,
}

impl AddressRule {
    /// Parses an entry; the problem's message reads after the entry's key.
    pub fn parse(text: &str) -> Result<Self, Problem> {
        let (address, ports) = split_ports(text)?;
        Ok(Self {
            address: parse_address(address, text)?,
            ports: parse_ports(ports, text, FORMS)?,
        })
    }

    /// Whether the rule covers `addr` and `port` (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn covers(&self, addr: IpAddr, port: u16) -> bool {
        if !self.ports.contains(port) {
            return false;
        }
        let (rule_addr, prefix_len) = match self.address {
            AddressMatch::Any => return true,
            AddressMatch::Network { addr, prefix_len } => (addr, prefix_len),
        };
        match (rule_addr, canonical(addr)) {
            (IpAddr::V4(rule), IpAddr::V4(a)) => {
                let mask = prefix_mask_v4(prefix_len);
                u32::from(a) & mask == u32::from(rule)
            }
            (IpAddr::V6(rule), IpAddr::V6(a)) => {
                let mask = prefix_mask_v6(prefix_len);
                u128::from(a) & mask == u128::from(rule)
            }
            _ => false,
        }
    }
}

impl fmt::Display for AddressRule {
    /// The canonical spelling, which parses back to the same rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address {
            AddressMatch::Any => f.write_str("*")?,
            AddressMatch::Network {
                addr: IpAddr::V4(a),
                prefix_len,
            } => {
                write!(f, "{a}")?;
                if prefix_len != 32 {
                    write!(f, "/{prefix_len}")?;
                }
            }
            AddressMatch::Network {
                addr: IpAddr::V6(a),
                prefix_len,
            } => {
                write!(f, "[{a}]")?;
                if prefix_len != 128 {
                    write!(f, "/{prefix_len}")?;
                }
            }
        }
        match self.ports {
            PortRange::ANY => f.write_str(":*"),
            PortRange { first, last } if first == last => write!(f, ":{first}"),
            PortRange { first, last } => write!(f, ":{first}-{last}"),
        }
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they map.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

pub fn prefix_mask_v4(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

pub fn prefix_mask_v6(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_len))
        .unwrap_or(0)
}

const FORMS: &str = "write ADDRESS:PORT, e.g. 127.0.0.1:8080, 10.0.0.0/8:443, [::1]:*, \
                     [fd00::]/8:53 or *:443; PORT is a number, a range such as 8000-8099, or *";

/// Splits at the colon before the ports: the last one outside brackets.
fn split_ports(text: &str) -> Result<(&str, &str), Problem> {
    let no_port = |written: String| {
        Problem::new(format!("{text:?} has no port")).with_hint(format!(
            "add the port: {written}:PORT, or {written}:* for every port"
        ))
    };
    // A bare IPv6 address is all colons: without brackets its last group reads as a port.
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => {
            let problem = no_port(format!("[{v6}]"));
            return Err(Problem {
                message: format!(
                    "{text:?} has no port (an IPv6 address goes in brackets, the port after them)"
                ),
                ..problem
            });
        }
        Ok(IpAddr::V4(v4)) => return Err(no_port(v4.to_string())),
        Err(_) => {}
    }
    let after_brackets = text.rfind(']').map_or(0, |i| i + 1);
    match text[after_brackets..].rfind(':') {
        Some(i) => Ok((&text[..after_brackets + i], &text[after_brackets + i + 1..])),
        None if text.starts_with('[') => Err(no_port(text.to_owned())),
        None => Err(Problem::new(format!("{text:?} has no port")).with_hint(FORMS)),
    }
}

fn parse_address(address: &str, entry: &str) -> Result<AddressMatch, Problem> {
    if address == "*" {
        return Ok(AddressMatch::Any);
    }
    if let Some(inner) = address.strip_prefix('[') {
        let Some((inside, after)) = inner.split_once(']') else {
            return Err(
                Problem::new(format!("{entry:?}: `[` without a closing `]`")).with_hint(FORMS),
            );
        };
        if let Some((addr, len)) = inside.split_once('/') {
            return Err(Problem::new(format!(
                "{entry:?}: the prefix length goes after the brackets"
            ))
            .with_hint(format!("write [{addr}]/{len}{}", &entry[address.len()..])));
        }
        let addr: Ipv6Addr = inside.parse().map_err(|_| {
            Problem::new(format!("{entry:?}: {inside:?} is not an IPv6 address")).with_hint(FORMS)
        })?;
        let prefix_len = match after {
            "" => 128,
            _ => parse_prefix_len(after, 128, entry)?,
        };
        return network(IpAddr::V6(addr), prefix_len, entry);
    }
    let (addr_text, prefix) = match address.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (address, None),
    };
    match addr_text.parse::<IpAddr>() {
        Ok(IpAddr::V4(addr)) => {
            let prefix_len = match prefix {
                Some(p) => parse_prefix_len(&format!("/{p}"), 32, entry)?,
                None => 32,
            };
            network(IpAddr::V4(addr), prefix_len, entry)
        }
        Ok(IpAddr::V6(v6)) => Err(Problem::new(format!(
            "{entry:?}: an IPv6 address must be written in brackets"
        ))
        .with_hint(format!(
            "write [{v6}]{}:PORT (the brackets separate the address from the port)",
            prefix.map(|p| format!("/{p}")).unwrap_or_default()
        ))),
        Err(_) => {
            let problem = Problem::new(format!("{entry:?}: {addr_text:?} is not an IP address"));
            let looks_like_name = addr_text.chars().any(|c| c.is_ascii_alphabetic())
                && addr_text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            Err(if looks_like_name {
                problem.with_hint(
                    "allow_connect takes addresses; for a host name use [network] allow_hosts, \
                     e.g. allow_hosts = [\"registry.npmjs.org:443\"]",
                )
            } else {
                problem.with_hint(FORMS)
            })
        }
    }
}

/// Parses `/N`, at most `max`.
fn parse_prefix_len(text: &str, max: u8, entry: &str) -> Result<u8, Problem> {
    let digits = text.strip_prefix('/').ok_or_else(|| {
        Problem::new(format!("{entry:?}: unexpected {text:?} after the address")).with_hint(FORMS)
    })?;
    match digits.parse::<u8>() {
        Ok(n) if n <= max && !digits.starts_with('+') => Ok(n),
        _ => Err(Problem::new(format!(
            "{entry:?}: the prefix length must be a number from 0 to {max}, not {digits:?}"
        ))),
    }
}

/// A network rule, with IPv4-mapped IPv6 networks turned into IPv4 ones; host bits must be 0.
fn network(addr: IpAddr, prefix_len: u8, entry: &str) -> Result<AddressMatch, Problem> {
    let (addr, prefix_len) = match addr {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            if prefix_len < 96 {
                return Err(Problem::new(format!(
                    "{entry:?}: /{prefix_len} reaches beyond the IPv4-mapped range ::ffff:0:0/96"
                ))
                .with_hint(
                    "an IPv4-mapped address stands for an IPv4 address; write the IPv4 network \
                     (e.g. 10.0.0.0/8:443) or an IPv6 network without ::ffff:",
                ));
            }
            let v4 = v6.to_ipv4_mapped().expect("checked above");
            (IpAddr::V4(v4), prefix_len - 96)
        }
        other => (other, prefix_len),
    };
    let host_bits = match addr {
        IpAddr::V4(a) => u32::from(a) & !prefix_mask_v4(prefix_len) != 0,
        IpAddr::V6(a) => u128::from(a) & !prefix_mask_v6(prefix_len) != 0,
    };
    if host_bits {
        let network = match addr {
            IpAddr::V4(a) => format!(
                "{}/{prefix_len}",
                Ipv4Addr::from(u32::from(a) & prefix_mask_v4(prefix_len))
            ),
            IpAddr::V6(a) => format!(
                "[{}]/{prefix_len}",
                Ipv6Addr::from(u128::from(a) & prefix_mask_v6(prefix_len))
            ),
        };
        return Err(Problem::new(format!(
            "{entry:?}: the address has bits set beyond its /{prefix_len} prefix"
        ))
        .with_hint(format!("did you mean {network}?")));
    }
    Ok(AddressMatch::Network { addr, prefix_len })
}

/// Parses the ports of `entry`; `forms` is the hint for an entry that is not written right.
pub(super) fn parse_ports(ports: &str, entry: &str, forms: &str) -> Result<PortRange, Problem> {
    if ports == "*" {
        return Ok(PortRange::ANY);
    }
    let port = |text: &str| -> Result<u16, Problem> {
        match text.parse::<u16>() {
            Ok(0) => Err(Problem::new(format!("{entry:?}: port 0 is not a port"))
                .with_hint("binding to port 0 asks for any free port; write * to allow that")),
            Ok(p) if !text.starts_with('+') => Ok(p),
            _ => Err(
                Problem::new(format!("{entry:?}: {text:?} is not a port (1 to 65535)"))
                    .with_hint(forms),
            ),
        }
    };
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(ports)?;
            (p, p)
        }
    };
    if first > last {
        return Err(
            Problem::new(format!("{entry:?}: the port range {first}-{last} is empty"))
                .with_hint(format!("write {last}-{first}")),
        );
    }
    Ok(PortRange { first, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> AddressRule {
        AddressRule::parse(text).unwrap_or_else(|p| panic!("{text}: {p:?}"))
    }

    fn error(text: &str) -> Problem {
        AddressRule::parse(text).expect_err(text)
    }

    #[test]
    fn parses_and_prints_back() {
        for text in [
            "127.0.0.1:8080",
            "10.0.0.0/8:443",
            "[::1]:*",
            "[fd00::]/8:53",
            "*:443",
            "0.0.0.0/0:1000-2000",
            "*:*",
        ] {
            assert_eq!(rule(text).to_string(), text);
            assert_eq!(rule(&rule(text).to_string()), rule(text));
        }
        assert_eq!(rule("[::ffff:127.0.0.1]:80").to_string(), "127.0.0.1:80");
        assert_eq!(
            rule("[::ffff:10.0.0.0]/104:80").to_string(),
            "10.0.0.0/8:80"
        );
        assert_eq!(rule("127.0.0.1/32:80").to_string(), "127.0.0.1:80");
    }

    #[test]
    fn covers_by_prefix_port_and_family() {
        let r = rule("10.0.0.0/8:443");
        assert!(r.covers("10.1.2.3".parse().unwrap(), 443));
        assert!(r.covers("::ffff:10.1.2.3".parse().unwrap(), 443));
        assert!(!r.covers("10.1.2.3".parse().unwrap(), 80));
        assert!(!r.covers("11.0.0.1".parse().unwrap(), 443));
        let v6 = rule("[::]/0:*");
        assert!(v6.covers("::1".parse().unwrap(), 1));
        assert!(
            !v6.covers("::ffff:127.0.0.1".parse().unwrap(), 1),
            "IPv6 rules do not cover IPv4 traffic"
        );
        assert!(rule("*:53").covers("::ffff:1.1.1.1".parse().unwrap(), 53));
        assert!(rule("127.0.0.1:*").covers("127.0.0.1".parse().unwrap(), 0));
    }

    #[test]
    fn rejects_with_hints() {
        let names = error("localhost:80");
        assert!(
            names.hint.as_deref().unwrap().contains("allow_hosts"),
            "{names:?}"
        );
        assert!(error("127.0.0.1").hint.unwrap().contains("127.0.0.1:PORT"));
        assert!(error("::1").hint.unwrap().contains("[::1]:PORT"));
        assert!(error("::1:80").message.contains("brackets"));
        assert!(error("[::1/128]:80").hint.unwrap().contains("[::1]/128:80"));
        assert!(error("10.1.0.0/8:80").hint.unwrap().contains("10.0.0.0/8"));
        assert!(error("127.0.0.1:0").hint.unwrap().contains("*"));
        assert!(error("127.0.0.1:70000").message.contains("not a port"));
        assert!(error("127.0.0.1:90-80").hint.unwrap().contains("80-90"));
        assert!(error("127.0.0.1/33:80").message.contains("0 to 32"));
        assert!(
            error("[::ffff:0.0.0.0]/64:80")
                .message
                .contains("IPv4-mapped")
        );
        assert!(error("[::1:80").message.contains("`]`"));
    }
}
