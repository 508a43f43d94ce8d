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
/// `allow_hosts`: in events, an address the session's resolver handed out for a name one of
/// its entries covers; in `NET_RULE_COUNTS`, the number of entries in `HOST_RULE_PORTS`.
pub const NET_LIST_HOSTS: u16 = 2;
pub const NET_LIST_COUNT: usize = 3;

/// Most `allow_hosts` entries.
pub const MAX_HOST_RULES: usize = 64;
/// Most (address, host rule) pairs the session's resolver can admit at once.
pub const MAX_HOST_ADDRESSES: u32 = 16384;
/// Most sockets whose DNS traffic is redirected at once (for the reply's source address).
pub const MAX_DNS_SOCKETS: u32 = 8192;
/// The DNS port: connects and sends to it, at any address, go to the session's resolver.
pub const DNS_PORT: u16 = 53;
/// DNS over TLS: refused while the session's resolver runs.
pub const DNS_OVER_TLS_PORT: u16 = 853;
/// In [`NetworkEvent::name`] and [`HostAddress::name`]: no name.
pub const NO_HOST_NAME: u32 = 0;

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

/// The ports of one `allow_hosts` entry (`HOST_RULE_PORTS`, indexed by entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostRulePorts {
    /// Host byte order, inclusive.
    pub port_lo: u16,
    pub port_hi: u16,
}

/// Key of `HOST_ADDRESSES`: an address the session's resolver handed out for a name that the
/// `allow_hosts` entry `rule` covers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HostAddressKey {
    /// IPv6 form (IPv4 as `::ffff:a.b.c.d`), network byte order, as in [`NetRule::addr`].
    pub addr: [u32; 4],
    /// Index of the `allow_hosts` entry.
    pub rule: u32,
}

/// Value of `HOST_ADDRESSES`: until when connects and sends to the address are allowed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostAddress {
    /// `CLOCK_MONOTONIC` nanoseconds (`bpf_ktime_get_ns`); `u64::MAX` for no end (`/etc/hosts`).
    pub expires_ns: u64,
    /// The name it was resolved from, an id of the loader's name table (never [`NO_HOST_NAME`]).
    pub name: u32,
    pub _pad: u32,
}

/// Where the session's resolver listens (`Config::dns`), and whether it runs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsRedirect {
    /// IPv6 form of the IPv4 listening address (`::ffff:127.0.0.1`), network byte order.
    pub addr4: [u32; 4],
    /// The IPv6 listening address (`::1`); all zero when the resolver has none (queries to an
    /// IPv6 address over an IPv6-only socket are then refused).
    pub addr6: [u32; 4],
    /// The listening port (UDP and TCP), host byte order; 0 when no resolver runs.
    pub port: u16,
    pub _pad: u16,
    pub _pad2: u32,
}

/// The original destination of a socket's last redirected DNS connect or send (`DNS_PEERS`,
/// keyed by socket cookie): replies are given this source address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsPeer {
    pub addr: [u32; 4],
    /// Host byte order.
    pub port: u16,
    pub _pad: u16,
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
    /// A DNS query (UDP or TCP to port 53 of any address) sent to the session's resolver
    /// instead; the resolver's own event says what it answered.
    RedirectedDns = 6,
    /// DNS over TLS (port 853): refused while the session's resolver runs, whatever the
    /// address rules say.
    DeniedDnsOverTls = 7,
    /// An IPv6-only DNS query while the session's resolver has no IPv6 address.
    DeniedDnsNoResolver = 8,
    /// The task is in a regime (`[[after_exec]]`, [`NetworkEvent::regime`]) whose `[network]`
    /// does not keep the rule that would have allowed it (or keeps no rule at all).
    DeniedRegime = 9,
}

impl NetVerdict {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Allowed,
            2 => Self::DeniedNoRule,
            3 => Self::DeniedSocketKind,
            4 => Self::DeniedFamily,
            5 => Self::DeniedBaseline,
            6 => Self::RedirectedDns,
            7 => Self::DeniedDnsOverTls,
            8 => Self::DeniedDnsNoResolver,
            9 => Self::DeniedRegime,
            _ => return None,
        })
    }

    pub fn is_denied(self) -> bool {
        !matches!(self, Self::Allowed | Self::RedirectedDns)
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
    /// For [`NetVerdict::DeniedRegime`], the regime's index + 1; 0 otherwise.
    pub regime: u16,
    /// For a decision by an `allow_hosts` entry ([`NET_LIST_HOSTS`]), the id of the name the
    /// address was resolved from (the loader's name table); [`NO_HOST_NAME`] otherwise.
    pub name: u32,
    /// The address the rules were checked against, IPv6 form: the destination of a connect or
    /// send, the local address of a bind or of a socket receiving a packet.
    pub addr: [u32; 4],
    /// For [`NetOp::Receive`], the packet's source; zero otherwise.
    pub peer: [u32; 4],
}

/// Bytes of a DNS packet's payload a [`DnsPacketEvent`] carries, a longer one is cut there:
/// more than the largest UDP answer resolvers send without fragmenting (1232 bytes, the DNS
/// flag day 2020 EDNS size), and a power of two, which the kernel side's bound needs.
pub const DNS_CAPTURE_CAP: usize = 2048;

/// In [`DnsPacketEvent::direction`]: a packet the session sent to port 53 (a query).
pub const DNS_PACKET_SENT: u8 = 0;
/// In [`DnsPacketEvent::direction`]: a packet from port 53 the session received (an answer).
pub const DNS_PACKET_RECEIVED: u8 = 1;

/// A DNS packet of the session (`EventKind::DnsPacket`), seen by the `cgroup_skb` programs
/// while the session's own resolver does not run (`FLAG_DNS_CAPTURE`): its addresses and the
/// start of its payload, which the loader decodes. Packets are handled in network or softirq
/// context: the header's task fields are zero.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsPacketEvent {
    pub header: crate::event::EventHeader,
    /// [`DNS_PACKET_SENT`] or [`DNS_PACKET_RECEIVED`].
    pub direction: u8,
    /// `IPPROTO_UDP` or `IPPROTO_TCP` (whose payload starts with the message's length).
    pub protocol: u8,
    pub _pad: u16,
    /// Host byte order.
    pub src_port: u16,
    pub dst_port: u16,
    /// IPv6 form (IPv4 as `::ffff:a.b.c.d`), network byte order, as in [`NetRule::addr`].
    pub src: [u32; 4],
    pub dst: [u32; 4],
    /// The payload's length in the packet; `data` holds the first
    /// `min(payload_len, DNS_CAPTURE_CAP)` bytes of it.
    pub payload_len: u32,
    /// TCP: the sequence number of the payload's first byte (the loader reassembles the
    /// stream, which retransmits and segments split); UDP: 0.
    pub tcp_seq: u32,
    pub data: [u8; DNS_CAPTURE_CAP],
}

/// Bytes of a socket address a [`SocketEvent`] carries: room for a whole `sockaddr_un` (110
/// bytes), and a power of two, which bounds the kernel side's read for the verifier.
pub const SOCKADDR_CAP: usize = 128;

/// Which socket call a [`SocketEvent`] records.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketOp {
    /// `socket`: `domain`, `sock_type`, `protocol` as requested; the new fd is `ret`.
    Socket = 1,
    Connect = 2,
    /// `sendto` with a destination, `sendmsg` with `msg_name`.
    Send = 3,
    Bind = 4,
    Listen = 5,
    /// `accept`, `accept4`: the address is the peer's, as the kernel wrote it back; the new fd
    /// is `ret`.
    Accept = 6,
}

impl SocketOp {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Socket,
            2 => Self::Connect,
            3 => Self::Send,
            4 => Self::Bind,
            5 => Self::Listen,
            6 => Self::Accept,
            _ => return None,
        })
    }
}

/// One socket call of a session task, in every mode (`EventKind::Socket`), recorded as it
/// returned: what the caller passed (or, for `accept`, got back) and the result. A record, not
/// a decision: [`NetworkEvent`] says what the kernel programs decided.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SocketEvent {
    pub header: crate::event::EventHeader,
    /// A [`SocketOp`].
    pub op: u16,
    /// Bytes of `addr` read from the caller's memory: 0 when there was no address or it could
    /// not be read.
    pub addr_copied: u16,
    /// The address length the caller passed (for `accept`, the one the kernel wrote back); may
    /// exceed [`SOCKADDR_CAP`].
    pub addr_len: u32,
    /// The socket the call was made on (-1 for `socket`).
    pub fd: i32,
    /// For [`SocketOp::Socket`], the requested `AF_*` domain; 0 otherwise.
    pub domain: u32,
    /// The return value: 0 or the new fd, or `-errno`.
    pub ret: i64,
    /// For [`SocketOp::Socket`], the requested type (with `SOCK_NONBLOCK`/`SOCK_CLOEXEC`) and
    /// protocol; 0 otherwise.
    pub sock_type: u32,
    pub protocol: u32,
    /// A `struct sockaddr`, `addr_copied` bytes of it.
    pub addr: [u8; SOCKADDR_CAP],
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]` and made of integers (and arrays of them) only: every bit pattern
// is a valid value, and the kernel side reads the same layout.
unsafe impl aya::Pod for NetRule {}

#[cfg(feature = "user")]
// SAFETY: as for `NetRule`: `#[repr(C)]` integers only, no padding the compiler adds.
unsafe impl aya::Pod for HostRulePorts {}
#[cfg(feature = "user")]
// SAFETY: as for `NetRule`.
unsafe impl aya::Pod for HostAddressKey {}
#[cfg(feature = "user")]
// SAFETY: as for `NetRule`.
unsafe impl aya::Pod for HostAddress {}
#[cfg(feature = "user")]
// SAFETY: as for `NetRule`.
unsafe impl aya::Pod for DnsPeer {}
