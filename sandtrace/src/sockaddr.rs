//! Socket addresses (`struct sockaddr`) as the user ABI lays them out, decoded from the bytes
//! a socket event carries: IPv4 and IPv6 (an IPv4-mapped IPv6 address stays IPv6, as the
//! caller wrote it), UNIX pathname, abstract and unnamed, netlink.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::events::KernelText;

pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const AF_NETLINK: u16 = 16;

/// A decoded socket address, borrowing from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockAddr<'a> {
    Inet(SocketAddr),
    /// A pathname UNIX socket: the path up to its NUL.
    UnixPath(KernelText<'a>),
    /// An abstract UNIX socket: the name after the leading NUL (any bytes, NULs included).
    UnixAbstract(KernelText<'a>),
    /// A UNIX address without a name (`sizeof(sa_family_t)` bytes): an unbound peer, or a
    /// bind that asks for an autobound abstract name.
    UnixUnnamed,
    /// `sockaddr_nl`: the port id (0 is the kernel) and multicast groups.
    Netlink {
        pid: u32,
        groups: u32,
    },
    /// Too short for its family, or a family decoded here only by number.
    Other {
        family: u16,
    },
}

impl<'a> SockAddr<'a> {
    /// Decodes the first bytes of an address (as many as the caller passed and the event
    /// kept); `None` for fewer than the family's two bytes.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let family = u16::from_ne_bytes(bytes.get(..2)?.try_into().ok()?);
        let be16 = |at: usize| {
            bytes
                .get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        let ne32 = |at: usize| {
            bytes
                .get(at..at + 4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        let other = Self::Other { family };
        Some(match family {
            AF_INET => match (be16(2), bytes.get(4..8)) {
                (Some(port), Some(ip)) => Self::Inet(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]),
                    port,
                ))),
                _ => other,
            },
            AF_INET6 => match (be16(2), bytes.get(8..24)) {
                (Some(port), Some(ip)) => {
                    let octets: [u8; 16] = ip.try_into().expect("16 bytes");
                    Self::Inet(SocketAddr::V6(SocketAddrV6::new(
                        Ipv6Addr::from(octets),
                        port,
                        ne32(4).unwrap_or(0),
                        ne32(24).unwrap_or(0),
                    )))
                }
                _ => other,
            },
            AF_UNIX => match &bytes[2..] {
                [] => Self::UnixUnnamed,
                [0, name @ ..] => Self::UnixAbstract(KernelText::from_bytes(name)),
                path => Self::UnixPath(KernelText::until_nul(path)),
            },
            AF_NETLINK => match (ne32(4), ne32(8)) {
                (Some(pid), Some(groups)) => Self::Netlink { pid, groups },
                _ => other,
            },
            _ => other,
        })
    }

    /// The `AF_*` family.
    pub fn family(&self) -> u16 {
        match self {
            Self::Inet(SocketAddr::V4(_)) => AF_INET,
            Self::Inet(SocketAddr::V6(_)) => AF_INET6,
            Self::UnixPath(_) | Self::UnixAbstract(_) | Self::UnixUnnamed => AF_UNIX,
            Self::Netlink { .. } => AF_NETLINK,
            Self::Other { family } => *family,
        }
    }
}

/// As the terminal shows it: `127.0.0.1:80`, `[::1]:80`, a path, `@name` (abstract), ...
impl std::fmt::Display for SockAddr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inet(a) => write!(f, "{a}"),
            Self::UnixPath(path) => write!(f, "{path:?}"),
            Self::UnixAbstract(name) => write!(f, "@{name:?}"),
            Self::UnixUnnamed => f.write_str("(unnamed)"),
            Self::Netlink { pid, groups } => write!(f, "netlink pid {pid} groups {groups:#x}"),
            Self::Other { family } => write!(f, "(family {family})"),
        }
    }
}

/// The name of a netlink protocol (`NETLINK_*`, the protocol of a netlink socket).
pub fn netlink_family_name(protocol: u32) -> std::borrow::Cow<'static, str> {
    match protocol {
        0 => "route".into(),
        2 => "usersock".into(),
        4 => "sock_diag".into(),
        6 => "xfrm".into(),
        7 => "selinux".into(),
        9 => "audit".into(),
        11 => "connector".into(),
        12 => "netfilter".into(),
        15 => "kobject_uevent".into(),
        16 => "generic".into(),
        other => format!("netlink {other}").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(family: u16, rest: &[u8]) -> Vec<u8> {
        let mut b = family.to_ne_bytes().to_vec();
        b.extend_from_slice(rest);
        b
    }

    #[test]
    fn decodes_every_family_kept() {
        let v4 = bytes(AF_INET, &[0x01, 0xbb, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            SockAddr::parse(&v4),
            Some(SockAddr::Inet("127.0.0.1:443".parse().unwrap()))
        );
        let mut v6 = bytes(AF_INET6, &[0, 80, 0, 0, 0, 0]);
        v6.extend_from_slice(&"::ffff:10.0.0.1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0; 4]);
        assert_eq!(
            SockAddr::parse(&v6),
            Some(SockAddr::Inet("[::ffff:10.0.0.1]:80".parse().unwrap()))
        );
        assert_eq!(
            SockAddr::parse(&bytes(AF_UNIX, b"/run/x.sock\0junk")),
            Some(SockAddr::UnixPath(KernelText::until_nul(b"/run/x.sock")))
        );
        assert_eq!(
            SockAddr::parse(&bytes(AF_UNIX, b"\0name\0x")),
            Some(SockAddr::UnixAbstract(KernelText::from_bytes(b"name\0x")))
        );
        assert_eq!(
            SockAddr::parse(&bytes(AF_UNIX, b"")),
            Some(SockAddr::UnixUnnamed)
        );
        let nl = bytes(AF_NETLINK, &[0, 0, 7, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(
            SockAddr::parse(&nl),
            Some(SockAddr::Netlink { pid: 7, groups: 1 })
        );
        // Cut short: the family only.
        assert_eq!(
            SockAddr::parse(&bytes(AF_INET6, &[0, 80])),
            Some(SockAddr::Other { family: AF_INET6 })
        );
        assert_eq!(SockAddr::parse(&[2]), None);
    }
}
