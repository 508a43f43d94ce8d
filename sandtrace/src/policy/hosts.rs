//! `[network] allow_hosts`: destinations by host name.
//!
//! An entry is `NAME` or `NAME:PORTS`:
//! - `NAME` is a host name (`registry.npmjs.org`), or `*.` and a domain for every name below it
//!   (`*.githubusercontent.com` covers `raw.githubusercontent.com`, not the domain itself).
//!   Names are ASCII (internationalised names in their `xn--` form) and compared without case.
//! - `PORTS` is as in `allow_connect` (a port, a range or `*`); without it every port.
//!
//! The kernel sees addresses, not names: the session's own resolver answers the names these
//! entries cover and admits the addresses it hands out (see `crate::dns`).

use std::fmt;
use std::net::IpAddr;

use super::diagnostic::Problem;
use super::network::{PortRange, parse_ports};

/// Which names an entry covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Exactly this name (lower case, no trailing dot).
    Exact(String),
    /// Every name below this domain (`*.domain`), not the domain itself.
    Below(String),
}

/// One parsed `allow_hosts` entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostRule {
    pub pattern: HostPattern,
    pub ports: PortRange,
}

impl HostRule {
    /// Parses an entry; the problem's message reads after the entry's key.
    pub fn parse(text: &str) -> Result<Self, Problem> {
        let (name, ports) = match text.rsplit_once(':') {
            Some((name, ports)) => (name, parse_ports(ports, text, FORMS)?),
            None => (text, PortRange::ANY),
        };
        if name.starts_with('[') || name.parse::<IpAddr>().is_ok() || text.parse::<IpAddr>().is_ok()
        {
            return Err(
                Problem::new(format!("{text:?} is an IP address, not a host name")).with_hint(
                    "addresses go in allow_connect, e.g. allow_connect = [\"10.0.0.5:443\"]",
                ),
            );
        }
        let pattern = match name.strip_prefix("*.") {
            Some(domain) => {
                let domain = host_name(domain, text)?;
                if !domain.contains('.') {
                    return Err(Problem::new(format!(
                        "{text:?} covers every name of the top-level domain {domain:?}"
                    ))
                    .with_hint("name the domain the hosts are under, e.g. *.example.com"));
                }
                HostPattern::Below(domain)
            }
            None if name == "*" => {
                return Err(
                    Problem::new(format!("{text:?} would cover every host name"))
                        .with_hint("for every destination write [network] allow = true instead"),
                );
            }
            None => HostPattern::Exact(host_name(name, text)?),
        };
        Ok(Self { pattern, ports })
    }

    /// Whether the entry covers `name` (any case, with or without the trailing dot).
    pub fn covers_name(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name);
        match &self.pattern {
            HostPattern::Exact(exact) => name.eq_ignore_ascii_case(exact),
            HostPattern::Below(domain) => {
                name.len() > domain.len() + 1
                    && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
                    && name[name.len() - domain.len()..].eq_ignore_ascii_case(domain)
            }
        }
    }
}

impl fmt::Display for HostRule {
    /// The canonical spelling, which parses back to the same rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pattern {
            HostPattern::Exact(name) => f.write_str(name)?,
            HostPattern::Below(domain) => write!(f, "*.{domain}")?,
        }
        match self.ports {
            PortRange::ANY => Ok(()),
            PortRange { first, last } if first == last => write!(f, ":{first}"),
            PortRange { first, last } => write!(f, ":{first}-{last}"),
        }
    }
}

const FORMS: &str = "write NAME or NAME:PORT, e.g. registry.npmjs.org, *.githubusercontent.com \
                     or api.example.com:443; PORT is a number, a range such as 8000-8099, or *";

/// Longest name in DNS (RFC 1035: 255 bytes on the wire).
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// A host name, checked and in lower case.
fn host_name(name: &str, entry: &str) -> Result<String, Problem> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let bad = |why: String| Problem::new(format!("{entry:?}: {why}")).with_hint(FORMS);
    if name.is_empty() {
        return Err(bad("the host name is empty".to_owned()));
    }
    if !name.is_ascii() {
        return Err(
            Problem::new(format!("{entry:?}: the host name is not ASCII")).with_hint(
                "write an internationalised name in its xn-- form (as `idn2` prints it)",
            ),
        );
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad(format!(
            "the host name is longer than {MAX_NAME_LEN} characters"
        )));
    }
    if name.contains('*') {
        return Err(bad(
            "`*` may only stand first, as `*.` before a domain".to_owned()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(bad("the host name has an empty label (`..`)".to_owned()));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(bad(format!(
                "the label {label:?} is longer than {MAX_LABEL_LEN} characters"
            )));
        }
        if let Some(c) = label
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(bad(format!(
                "{c:?} cannot appear in a host name (letters, digits, `-` and `_` only)"
            )));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad(format!("the label {label:?} starts or ends with `-`")));
        }
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad(
            "the last label of a host name cannot be all digits".to_owned()
        ));
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> HostRule {
        HostRule::parse(text).unwrap_or_else(|p| panic!("{text}: {p:?}"))
    }

    fn error(text: &str) -> Problem {
        HostRule::parse(text).expect_err(text)
    }

    #[test]
    fn parses_and_prints_back() {
        for text in [
            "registry.npmjs.org",
            "*.githubusercontent.com",
            "api.example.com:443",
            "repo.example.com:8000-8099",
            "localhost",
        ] {
            assert_eq!(rule(text).to_string(), text);
        }
        assert_eq!(
            rule("Registry.NPMJS.org.").to_string(),
            "registry.npmjs.org"
        );
        assert_eq!(rule("a.example:*").to_string(), "a.example");
        assert_eq!(rule("a.example").ports, PortRange::ANY);
    }

    #[test]
    fn covers_names() {
        let exact = rule("registry.npmjs.org");
        assert!(exact.covers_name("registry.npmjs.org"));
        assert!(exact.covers_name("REGISTRY.npmjs.org."));
        assert!(!exact.covers_name("evil.registry.npmjs.org"));
        assert!(!exact.covers_name("registry.npmjs.org.evil.test"));
        let below = rule("*.githubusercontent.com");
        assert!(below.covers_name("raw.githubusercontent.com"));
        assert!(below.covers_name("a.b.githubusercontent.com."));
        assert!(!below.covers_name("githubusercontent.com"));
        assert!(!below.covers_name("evilgithubusercontent.com"));
        assert!(!below.covers_name("githubusercontent.com.evil.test"));
    }

    #[test]
    fn rejects_with_hints() {
        assert!(error("10.0.0.1").hint.unwrap().contains("allow_connect"));
        assert!(
            error("10.0.0.1:443")
                .hint
                .unwrap()
                .contains("allow_connect")
        );
        assert!(error("[::1]:443").hint.unwrap().contains("allow_connect"));
        assert!(error("::1").hint.unwrap().contains("allow_connect"));
        assert!(error("*").hint.unwrap().contains("allow = true"));
        assert!(error("*:443").hint.unwrap().contains("allow = true"));
        assert!(error("*.com").message.contains("top-level"));
        assert!(error("a.*.example.com").message.contains("`*`"));
        assert!(error("*example.com").message.contains("`*`"));
        assert!(error("exa mple.com").message.contains("cannot appear"));
        assert!(error("-a.example.com").message.contains("`-`"));
        assert!(error("a..example.com").message.contains("empty label"));
        assert!(error("bücher.example").hint.unwrap().contains("xn--"));
        assert!(error("a.example:0").message.contains("port 0"));
        assert!(error("a.example:http").message.contains("not a port"));
        assert!(
            error(&format!("{}.example", "a".repeat(64)))
                .message
                .contains("label")
        );
        assert!(error("").message.contains("empty"));
        assert!(error("1.2.3.4.5").message.contains("digits"));
    }
}
