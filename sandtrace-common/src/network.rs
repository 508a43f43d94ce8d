//! The network policy as the kernel programs evaluate it, and the decisions they report.
//!
//! The programs only run for a session whose network is not fully allowed. Every address is
//! handled in its IPv6 form: an IPv4 address `a.b.c.d` (from an IPv4 socket, or IPv4-mapped
//! `::ffff:a.b.c.d` from an IPv6 socket) is `::ffff:a.b.c.d`, so both spellings of one
//! destination meet the same rules. Addresses are four `u32` words holding the address bytes
//! in network order, exactly as `bpf_sock_addr.user_ip6` does.

/// Most kernel rules per list. A policy's `*` address expands to two (IPv4 and IPv6).
pub const MAX_NET_RULES: usize = 64;

/// Indices of the rule lists (`NetRule` arrays and `NetworkEvent::rule_list`).
pub const NET_LIST_CONNECT: u16 = 0;
pub const NET_LIST_BIND: u16 = 1;
pub const NET_LIST_COUNT: usize = 2;

/// In [`NetworkEvent::rule`]: no rule decided.
pub const NO_NET_RULE: u16 = u16::MAX;

/// The third word of an IPv4-mapped IPv6 address (`::ffff:0:0/96`), as it sits in memory.
pub const V4_MAPPED_WORD: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

/// One address rule: it covers an address if the address has the rule's family, agrees with
/// `addr` on every bit of `mask`, and its port lies in `port_lo..=port_hi`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetRule {
    /// IPv6 form, network byte order, bits outside `mask` zero.
    pub addr: [u32; 4],
    pub mask: [u32; 4],
    /// Host byte order, inclusive.
    pub port_lo: u16,
    pub port_hi: u16,
    /// 1: covers IPv4 (and IPv4-mapped) addresses only; 0: IPv6 addresses only.
    pub ipv4: u8,
    pub _pad: u8,
    /// Index of the policy entry this rule came from in its list (for events).
    pub rule: u16,
}

/// What a network event is about.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetOp {
    /// `connect` (TCP, UDP; also TCP Fast Open's `sendmsg(MSG_FASTOPEN)` and io_uring).
    Connect = 1,
    /// `sendto`/`sendmsg` with a destination on an unconnected UDP socket.
    Send = 2,
    /// `bind`.
    Bind = 3,
    /// Creating a socket.
    Socket = 4,
    /// A packet arriving at a socket that listens or receives on an address no rule allows
    /// (a listen without bind, or a UDP socket bound implicitly by a refused send).
    Receive = 5,
}

impl NetOp {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Connect,
            2 => Self::Send,
            3 => Self::Bind,
            4 => Self::Socket,
            5 => Self::Receive,
            _ => return None,
        })
    }
}

/// A network decision.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetVerdict {
    /// A rule allowed it (`NetworkEvent::rule`).
    Allowed = 1,
    /// No rule of the list allows this address and port.
    DeniedNoRule = 2,
    /// An IPv4/IPv6 socket other than TCP and UDP (raw, ICMP, SCTP, MPTCP, UDP-Lite, ...):
    /// only a fully allowed network may create those.
    DeniedSocketKind = 3,
    /// A socket family that reaches the network without the IPv4/IPv6 hooks (packet, vsock,
    /// ...): only a fully allowed network may create those.
    DeniedFamily = 4,
    /// A family or protocol the seccomp baseline refuses in every session, because the kernel
    /// could load a module for it (AppleTalk, SCTP, genetlink, ...).
    DeniedBaseline = 5,
}

impl NetVerdict {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Allowed,
            2 => Self::DeniedNoRule,
            3 => Self::DeniedSocketKind,
            4 => Self::DeniedFamily,
            5 => Self::DeniedBaseline,
            _ => return None,
        })
    }

    pub fn is_denied(self) -> bool {
        self != Self::Allowed
    }
}

/// A network decision of the kernel programs (`EventKind::Network`). Sent for every denial,
/// and for every decision when `FLAG_NETWORK_EVENTS_ALL` is set.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NetworkEvent {
    pub header: crate::event::EventHeader,
    /// A [`NetOp`].
    pub op: u16,
    /// A [`NetVerdict`].
    pub verdict: u16,
    /// The socket's `AF_*` family (for [`NetOp::Socket`], the requested one).
    pub family: u16,
    /// `SOCK_*` type.
    pub sock_type: u16,
    /// `IPPROTO_*` protocol.
    pub protocol: u16,
    /// `NET_LIST_*` of the list that decided.
    pub rule_list: u16,
    /// Index of the deciding policy entry in that list, or [`NO_NET_RULE`].
    pub rule: u16,
    /// Port of `addr`, host byte order.
    pub port: u16,
    /// Port of `peer`, host byte order.
    pub peer_port: u16,
    pub _pad: u16,
    /// The address the rules were checked against, IPv6 form: the destination of a connect or
    /// send, the local address of a bind or of a socket receiving a packet.
    pub addr: [u32; 4],
    /// For [`NetOp::Receive`], the packet's source; zero otherwise.
    pub peer: [u32; 4],
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]` and made of integers (and arrays of them) only: every bit pattern
// is a valid value, and the kernel side reads the same layout.
unsafe impl aya::Pod for NetRule {}
