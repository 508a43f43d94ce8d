//! Network enforcement, for sessions whose network is not fully allowed.
//!
//! cgroup programs, attached to the session's cgroup only: the kernel runs them for the
//! sockets created inside the session (a socket belongs to the cgroup its creator was in).
//! They work without BPF LSM.
//! - `connect4/6`: every connect: TCP, UDP, TCP Fast Open (`sendmsg(MSG_FASTOPEN)` connects
//!   through the same path) and io_uring's connect; decided by `allow_connect`, then (while
//!   the session's resolver runs) by the addresses it handed out for `allow_hosts` names.
//! - `sendmsg4/6`: UDP sends with a destination (`sendto` without `connect`); as `connect`.
//! - While the session's resolver runs (`FLAG_SESSION_DNS`), DNS goes to it and DNS over TLS
//!   is refused before any rule is asked; see [`crate::dns_redirect`].
//! - `bind4/6`: `bind`; `allow_bind`.
//! - `sock_create`: only TCP and UDP sockets may be created: raw, ICMP, SCTP, MPTCP, UDP-Lite
//!   and other IPv4/IPv6 protocols have send paths the hooks above do not see.
//! - `cgroup_skb/ingress`: a socket can receive without passing `bind`: `listen` on an
//!   unbound TCP socket and a UDP send (even a refused one) bind an ephemeral port implicitly.
//!   Packets to a listening or unconnected socket are dropped unless its local address is
//!   covered by `allow_bind`, or (UDP) the packet comes from an `allow_connect` address, the
//!   session's resolver or an address it handed out.
//!
//! With BPF LSM (enforcing mode), `socket_create` also refuses socket families that reach the
//! network past the IPv4/IPv6 hooks (packet, vsock, ...) on every path, io_uring's included.
//! Without it the seccomp filter refuses them (see the loader).
//!
//! Addresses are compared in their IPv6 form (see `sandtrace_common::network`), so an
//! IPv4-mapped IPv6 destination meets the IPv4 rules.
//!
//! Also here: pathname UNIX sockets follow the path rules (enforcing mode; see the end).

use aya_ebpf::{
    bindings::{bpf_sock, bpf_sock_addr},
    helpers::{bpf_ktime_get_ns, generated::bpf_sk_fullsock},
    macros::{cgroup_skb, cgroup_sock, cgroup_sock_addr, map},
    maps::{Array, HashMap},
    programs::{LsmContext, SkBuffContext, SockAddrContext, SockContext},
};
use sandtrace_common::{
    config::{
        FLAG_BASE_NETWORK_OPEN, FLAG_DNS_CAPTURE, FLAG_ENFORCE_FILES, FLAG_NETWORK_EVENTS_ALL,
        FLAG_SESSION_DNS,
    },
    event::{COMM_LEN, EventHeader, EventKind},
    file::FileOp,
    network::{
        DNS_OVER_TLS_PORT, DNS_PACKET_RECEIVED, DNS_PORT, HostAddress, HostAddressKey,
        HostRulePorts, MAX_HOST_ADDRESSES, MAX_HOST_RULES, MAX_NET_RULES, NET_LIST_BIND,
        NET_LIST_CONNECT, NET_LIST_COUNT, NET_LIST_HOSTS, NO_HOST_NAME, NO_NET_RULE, NetOp,
        NetRule, NetVerdict, NetworkEvent, V4_MAPPED_WORD,
    },
};

use crate::{
    dns_capture, dns_redirect, emit, kernel, packet,
    path_policy::{self, NEED_WRITE},
    regimes,
    session::{self, config, lsm_programs},
};

/// `allow_connect` rules, `NET_RULE_COUNTS[NET_LIST_CONNECT]` of them.
#[map]
static NET_CONNECT_RULES: Array<NetRule> = Array::with_max_entries(MAX_NET_RULES as u32, 0);
/// `allow_bind` rules, `NET_RULE_COUNTS[NET_LIST_BIND]` of them.
#[map]
static NET_BIND_RULES: Array<NetRule> = Array::with_max_entries(MAX_NET_RULES as u32, 0);
/// Rules in use per list, indexed by `NET_LIST_*` (for `NET_LIST_HOSTS`, the number of
/// `allow_hosts` entries in `HOST_RULE_PORTS`).
#[map]
static NET_RULE_COUNTS: Array<u32> = Array::with_max_entries(NET_LIST_COUNT as u32, 0);
/// The ports of each `allow_hosts` entry.
#[map]
static HOST_RULE_PORTS: Array<HostRulePorts> = Array::with_max_entries(MAX_HOST_RULES as u32, 0);
/// The addresses the session's resolver handed out, per `allow_hosts` entry, with their
/// expiry. Filled by the resolver (the loader's `HostAddressMap`) before it answers.
#[map]
static HOST_ADDRESSES: HashMap<HostAddressKey, HostAddress> =
    HashMap::with_max_entries(MAX_HOST_ADDRESSES, 0);

const AF_UNIX: u32 = 1;
const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const AF_NETLINK: u32 = 16;
const AF_PACKET: u32 = 17;
const SOCK_PACKET: u32 = 10;
const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
/// The type bits of socket(2)'s `type` (without SOCK_NONBLOCK / SOCK_CLOEXEC).
const SOCK_TYPE_MASK: u32 = 0xf;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
/// `BPF_TCP_LISTEN` / `BPF_TCP_ESTABLISHED` of `bpf_sock.state`.
const TCP_LISTEN: u32 = 10;
const TCP_ESTABLISHED: u32 = 1;
const EPERM: i32 = 1;

/// sock_addr and sock programs: 1 lets the call proceed, 0 fails it with EPERM. cgroup_skb
/// programs: 1 passes the packet, 0 drops it.
const ALLOW: i32 = 1;
const DENY: i32 = 0;

/// An address in IPv6 form and a port (host order).
#[derive(Clone, Copy)]
pub struct Endpoint {
    pub addr: [u32; 4],
    pub port: u16,
}

#[inline(always)]
pub fn ipv4_mapped(ip4: u32) -> [u32; 4] {
    [0, 0, V4_MAPPED_WORD, ip4]
}

#[inline(always)]
pub fn is_ipv4(addr: &[u32; 4]) -> bool {
    addr[0] == 0 && addr[1] == 0 && addr[2] == V4_MAPPED_WORD
}

/// A rule that covers an address: its index in its list's array (the bit regimes keep it by)
/// and the policy entry it came from.
#[derive(Clone, Copy)]
struct Found {
    index: u32,
    rule: u16,
}

/// The first rule of `list` covering `at` among those whose index bit is in `kept` (all ones:
/// any rule).
#[inline(always)]
fn find_rule(list: u16, at: Endpoint, kept: u64) -> Option<Found> {
    // One call site per map: the verifier wants a constant map at each lookup.
    if list == NET_LIST_CONNECT {
        find_in(&NET_CONNECT_RULES, list, at, kept)
    } else {
        find_in(&NET_BIND_RULES, list, at, kept)
    }
}

#[inline(always)]
fn find_in(rules: &Array<NetRule>, list: u16, at: Endpoint, kept: u64) -> Option<Found> {
    let count = NET_RULE_COUNTS.get(list as u32).copied().unwrap_or(0);
    let ipv4 = is_ipv4(&at.addr) as u8;
    for i in 0..MAX_NET_RULES as u32 {
        if i >= count {
            break;
        }
        let Some(r) = rules.get(i) else {
            break;
        };
        if kept & (1u64 << i) != 0
            && r.ipv4 == ipv4
            && (r.port_lo..=r.port_hi).contains(&at.port)
            && at.addr[0] & r.mask[0] == r.addr[0]
            && at.addr[1] & r.mask[1] == r.addr[1]
            && at.addr[2] & r.mask[2] == r.addr[2]
            && at.addr[3] & r.mask[3] == r.addr[3]
        {
            return Some(Found {
                index: i,
                rule: r.rule,
            });
        }
    }
    None
}

/// The `allow_hosts` entry (index, and the name id) for which the session's resolver handed
/// out `at`'s address, if that entry covers `at`'s port, the answer has not expired, and the
/// entry's bit is in `kept` (all ones: any entry).
#[inline(always)]
fn find_host(at: Endpoint, kept: u64) -> Option<(u16, u32)> {
    let count = NET_RULE_COUNTS
        .get(NET_LIST_HOSTS as u32)
        .copied()
        .unwrap_or(0);
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    for i in 0..MAX_HOST_RULES as u32 {
        if i >= count {
            break;
        }
        if kept & (1u64 << i) == 0 {
            continue;
        }
        let Some(ports) = HOST_RULE_PORTS.get(i) else {
            break;
        };
        if !(ports.port_lo..=ports.port_hi).contains(&at.port) {
            continue;
        }
        let key = HostAddressKey {
            addr: at.addr,
            rule: i,
        };
        if let Some(entry) = HOST_ADDRESSES.get_ptr(&key) {
            // SAFETY: a pointer to a live map value, read at once.
            let entry = unsafe { *entry };
            if entry.expires_ns > now {
                return Some((i as u16, entry.name));
            }
        }
    }
    None
}

/// The regimes of the current task that restrict the network (`REGIME_NET_RESTRICTED`); 0
/// without regimes.
#[inline(always)]
fn restricting_regimes() -> u32 {
    regimes::net_restricting(regimes::current())
}

/// What a program decided, for its event.
struct Decision {
    op: NetOp,
    verdict: NetVerdict,
    family: u32,
    sock_type: u32,
    protocol: u32,
    rule_list: u16,
    rule: u16,
    /// The name id, for a decision by an `allow_hosts` entry.
    name: u32,
    /// For `NetVerdict::DeniedRegime`, the regime's index + 1.
    regime: u16,
    at: Endpoint,
    peer: Endpoint,
}

impl Decision {
    /// Allowed by entry `rule` of `list`.
    #[inline(always)]
    fn allow(&mut self, list: u16, rule: u16) {
        self.verdict = NetVerdict::Allowed;
        self.rule_list = list;
        self.rule = rule;
    }

    /// Allowed because the session's resolver handed out the address for `name`, a name the
    /// `allow_hosts` entry `rule` covers.
    #[inline(always)]
    fn allow_host(&mut self, (rule, name): (u16, u32)) {
        self.allow(NET_LIST_HOSTS, rule);
        self.name = name;
    }

    /// Denied by the task's regime `regime` (index + 1).
    #[inline(always)]
    fn deny_regime(&mut self, regime: u16) {
        self.verdict = NetVerdict::DeniedRegime;
        self.regime = regime;
    }

    /// What the program returns.
    #[inline(always)]
    fn result(&self) -> i32 {
        if self.verdict.is_denied() {
            DENY
        } else {
            ALLOW
        }
    }
}

const NOWHERE: Endpoint = Endpoint {
    addr: [0; 4],
    port: 0,
};

/// Sends the decision's event: every denial and every redirected DNS connect or send (the
/// only record of where the query was meant to go); other decisions only at `-v`.
#[inline(always)]
fn report(d: &Decision, header: EventHeader) {
    let redirected = d.verdict == NetVerdict::RedirectedDns && d.op != NetOp::Receive;
    if !d.verdict.is_denied() && !redirected && !session::flag(FLAG_NETWORK_EVENTS_ALL) {
        return;
    }
    emit::send(|e: *mut NetworkEvent| unsafe {
        (*e).header = header;
        (*e).op = d.op as u16;
        (*e).verdict = d.verdict as u16;
        (*e).family = d.family as u16;
        (*e).sock_type = d.sock_type as u16;
        (*e).protocol = d.protocol as u16;
        (*e).rule_list = d.rule_list;
        (*e).rule = d.rule;
        (*e).port = d.at.port;
        (*e).peer_port = d.peer.port;
        (*e).regime = d.regime;
        (*e).name = d.name;
        (*e).addr = d.at.addr;
        (*e).peer = d.peer.addr;
    });
}

/// The address and port a sock_addr call names: the destination of a connect or send, the
/// local address of a bind, the source of a received datagram or the peer (recvmsg,
/// getpeername). `ipv6` is the program's attach type (4 or 6), a constant: the verifier lets
/// IPv4 programs read only `user_ip4`, IPv6 ones only `user_ip6`.
#[inline(always)]
pub fn requested(ctx: &SockAddrContext, ipv6: bool) -> Endpoint {
    let a: &bpf_sock_addr = unsafe { &*ctx.sock_addr };
    let addr = if ipv6 {
        // One 4-byte read per word.
        [a.user_ip6[0], a.user_ip6[1], a.user_ip6[2], a.user_ip6[3]]
    } else {
        ipv4_mapped(a.user_ip4)
    };
    // user_port holds the network-order port in its low 16 bits.
    let port = u16::from_be(a.user_port as u16);
    Endpoint { addr, port }
}

/// Replaces the address and port of a sock_addr call with `to` (for an IPv4 program, `to`
/// must be IPv4). The verifier accepts only 4-byte stores to these fields: volatile, so that
/// the compiler cannot merge two into one.
#[inline(always)]
pub fn rewrite(ctx: &SockAddrContext, ipv6: bool, to: Endpoint) {
    let a = ctx.sock_addr;
    // SAFETY: `a` is the program's context; the verifier checks every store to it.
    unsafe {
        if ipv6 {
            core::ptr::write_volatile(&mut (*a).user_ip6[0], to.addr[0]);
            core::ptr::write_volatile(&mut (*a).user_ip6[1], to.addr[1]);
            core::ptr::write_volatile(&mut (*a).user_ip6[2], to.addr[2]);
            core::ptr::write_volatile(&mut (*a).user_ip6[3], to.addr[3]);
        } else {
            core::ptr::write_volatile(&mut (*a).user_ip4, to.addr[3]);
        }
        // Network order in the low 16 bits.
        core::ptr::write_volatile(&mut (*a).user_port, u32::from(to.port.to_be()));
    }
}

/// Decides a connect, send or bind against `list`, reports, and returns the program's
/// verdict. While the session's resolver runs, connects and sends to the DNS port go to it
/// (any address), DNS over TLS is refused, and what `allow_connect` does not cover may still
/// be an address the resolver handed out.
///
/// A task in regimes that restrict the network gets only what the base allows by a rule each
/// of them keeps, and DNS only if each keeps an `allow_hosts` entry. With
/// `FLAG_BASE_NETWORK_OPEN` (the base allows every address), tasks in no restricting regime
/// may do anything.
#[inline(always)]
fn sock_addr(ctx: &SockAddrContext, ipv6: bool, list: u16, op: NetOp) -> i32 {
    let at = requested(ctx, ipv6);
    let a: &bpf_sock_addr = unsafe { &*ctx.sock_addr };
    let mut decision = Decision {
        op,
        verdict: NetVerdict::DeniedNoRule,
        // The family of the address (what the program was called for), not the socket's: an
        // IPv6 socket sending to an AF_INET address reaches the IPv4 program.
        family: if ipv6 { AF_INET6 } else { AF_INET },
        sock_type: a.type_,
        protocol: a.protocol,
        rule_list: list,
        rule: NO_NET_RULE,
        name: NO_HOST_NAME,
        regime: 0,
        at,
        peer: NOWHERE,
    };
    let restricting = restricting_regimes();
    let base_open = session::flag(FLAG_BASE_NETWORK_OPEN);
    // `list` is a constant per program: bind programs skip all of this.
    let session_dns = list == NET_LIST_CONNECT && session::flag(FLAG_SESSION_DNS);
    if base_open && restricting == 0 {
        decision.verdict = NetVerdict::Allowed;
    } else if session_dns && at.port == DNS_PORT {
        let blamed = regimes::first_keeping_none(restricting, NET_LIST_HOSTS as usize);
        if blamed != 0 {
            // Names carry data: a regime without hosts may not even ask.
            decision.rule_list = NET_LIST_HOSTS;
            decision.deny_regime(blamed);
        } else {
            decision.verdict = dns_redirect::redirect(ctx, ipv6, at);
        }
    } else if session_dns && at.port == DNS_OVER_TLS_PORT {
        decision.verdict = NetVerdict::DeniedDnsOverTls;
    } else if let Some(found) = find_rule(list, at, u64::MAX) {
        let kept = regimes::kept_by_all(restricting, list as usize);
        if restricting == 0 {
            decision.allow(list, found.rule);
        } else if let Some(kept) = find_rule(list, at, kept) {
            decision.allow(list, kept.rule);
        } else {
            decision.rule = found.rule;
            decision.deny_regime(regimes::first_not_keeping(
                restricting,
                list as usize,
                Some(found.index),
            ));
        }
    } else if session_dns && let Some(host) = find_host(at, u64::MAX) {
        let kept = regimes::kept_by_all(restricting, NET_LIST_HOSTS as usize);
        if restricting == 0 {
            decision.allow_host(host);
        } else if let Some(kept) = find_host(at, kept) {
            decision.allow_host(kept);
        } else {
            decision.rule_list = NET_LIST_HOSTS;
            decision.rule = host.0;
            decision.name = host.1;
            decision.deny_regime(regimes::first_not_keeping(
                restricting,
                NET_LIST_HOSTS as usize,
                Some(host.0 as u32),
            ));
        }
    } else if base_open {
        // The base would allow it; the task's regimes keep no rule that does.
        decision.deny_regime(regimes::first(restricting));
    }
    report(&decision, emit::header(EventKind::Network));
    decision.result()
}

/// The six sock_addr programs: one per attach point, all deciding through [`sock_addr`].
macro_rules! sock_addr_programs {
    ($($name:ident: $attach:ident, ipv6 = $ipv6:literal, $list:ident, $op:ident;)+) => {$(
        #[cgroup_sock_addr($attach)]
        pub fn $name(ctx: SockAddrContext) -> i32 {
            sock_addr(&ctx, $ipv6, $list, NetOp::$op)
        }
    )+};
}

sock_addr_programs! {
    net_connect4: connect4, ipv6 = false, NET_LIST_CONNECT, Connect;
    net_connect6: connect6, ipv6 = true, NET_LIST_CONNECT, Connect;
    net_sendmsg4: sendmsg4, ipv6 = false, NET_LIST_CONNECT, Send;
    net_sendmsg6: sendmsg6, ipv6 = true, NET_LIST_CONNECT, Send;
    net_bind4: bind4, ipv6 = false, NET_LIST_BIND, Bind;
    net_bind6: bind6, ipv6 = true, NET_LIST_BIND, Bind;
}

/// Creating an IPv4/IPv6 socket: TCP and UDP only (with `FLAG_BASE_NETWORK_OPEN`, only for
/// tasks in a regime that restricts the network).
#[cgroup_sock(sock_create)]
pub fn net_sock_create(ctx: SockContext) -> i32 {
    let s: &bpf_sock = unsafe { &*ctx.sock };
    let (sock_type, protocol) = (s.type_, s.protocol);
    if (sock_type == SOCK_STREAM && protocol == IPPROTO_TCP)
        || (sock_type == SOCK_DGRAM && protocol == IPPROTO_UDP)
    {
        return ALLOW;
    }
    let (verdict, regime) = match open_network_refusal() {
        None => return ALLOW,
        Some(0) => (NetVerdict::DeniedSocketKind, 0),
        Some(regime) => (NetVerdict::DeniedRegime, regime),
    };
    report_socket(verdict, regime, s.family, sock_type, protocol);
    DENY
}

/// For a socket kind or family only a fully allowed network may create: `None` when the
/// current task may (`FLAG_BASE_NETWORK_OPEN`, and it is in no regime that restricts the
/// network), else the regime that refuses it (index + 1), or 0 when the base policy does.
#[inline(always)]
fn open_network_refusal() -> Option<u16> {
    if !session::flag(FLAG_BASE_NETWORK_OPEN) {
        return Some(0);
    }
    match restricting_regimes() {
        0 => None,
        restricting => Some(regimes::first(restricting)),
    }
}

/// Reports a refused socket creation (`regime`: the refusing regime's index + 1, or 0).
#[inline(always)]
fn report_socket(verdict: NetVerdict, regime: u16, family: u32, sock_type: u32, protocol: u32) {
    let decision = Decision {
        op: NetOp::Socket,
        verdict,
        family,
        sock_type,
        protocol,
        rule_list: NET_LIST_CONNECT,
        rule: NO_NET_RULE,
        name: NO_HOST_NAME,
        regime,
        at: NOWHERE,
        peer: NOWHERE,
    };
    report(&decision, emit::header(EventKind::Network));
}

/// A header for events of `cgroup_skb` programs: packets arrive in softirq context, where
/// the current task is unrelated to the session.
#[inline(always)]
pub fn packet_header(kind: EventKind) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        pid: 0,
        tgid: 0,
        _pad: 0,
        ts_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
        comm: [0; COMM_LEN],
    }
}

/// Packets arriving at the session's sockets. Sockets that connected passed `connect4/6`; a
/// socket that listens, or a UDP socket that is not connected, may only receive on an address
/// `allow_bind` covers, or (UDP) from an address `allow_connect` covers, so that replies to
/// allowed sends arrive; while the session's resolver runs, also (UDP) from the resolver and
/// from an address it handed out, on a port of its `allow_hosts` entry.
///
/// With `FLAG_BASE_NETWORK_OPEN` every packet passes: the program cannot tell whose socket it
/// reaches (it runs in softirq context), and the base allows everything.
#[cgroup_skb(ingress)]
pub fn net_ingress(ctx: SkBuffContext) -> i32 {
    // One ingress program per cgroup: this one also records DNS answers.
    if session::flag(FLAG_DNS_CAPTURE) {
        dns_capture::record(ctx.skb.skb, DNS_PACKET_RECEIVED);
    }
    if session::flag(FLAG_BASE_NETWORK_OPEN) {
        return ALLOW;
    }
    let skb = ctx.skb.skb;
    let sk = unsafe { (*skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return DENY;
    }
    let sk = unsafe { bpf_sk_fullsock(sk) };
    if sk.is_null() {
        return DENY;
    }
    let s: &bpf_sock = unsafe { &*sk };
    let (protocol, state) = (s.protocol, s.state);
    if (protocol == IPPROTO_TCP && state != TCP_LISTEN)
        || (protocol == IPPROTO_UDP && state == TCP_ESTABLISHED)
    {
        return ALLOW;
    }
    let family = s.family;
    // Every field read unconditionally and volatile: the compiler must not turn a choice
    // between two fields into arithmetic on the socket pointer, which the verifier refuses.
    let field = |f: &u32| unsafe { core::ptr::read_volatile(f) };
    let ip6 = [
        field(&s.src_ip6[0]),
        field(&s.src_ip6[1]),
        field(&s.src_ip6[2]),
        field(&s.src_ip6[3]),
    ];
    let ip4 = field(&s.src_ip4);
    let local = Endpoint {
        addr: if family == AF_INET6 {
            ip6
        } else {
            ipv4_mapped(ip4)
        },
        // src_port is in host order.
        port: field(&s.src_port) as u16,
    };
    let peer = packet::parse(skb).map(|p| p.src);
    let mut decision = Decision {
        op: NetOp::Receive,
        verdict: NetVerdict::DeniedNoRule,
        family,
        sock_type: s.type_,
        protocol,
        rule_list: NET_LIST_BIND,
        rule: NO_NET_RULE,
        name: NO_HOST_NAME,
        regime: 0,
        at: local,
        peer: peer.unwrap_or(NOWHERE),
    };
    let udp = protocol == IPPROTO_UDP;
    let session_dns = udp && session::flag(FLAG_SESSION_DNS);
    if protocol == IPPROTO_TCP || udp {
        if let Some(found) = find_rule(NET_LIST_BIND, local, u64::MAX) {
            decision.allow(NET_LIST_BIND, found.rule);
        } else if let Some(peer) = peer.filter(|_| udp) {
            if let Some(found) = find_rule(NET_LIST_CONNECT, peer, u64::MAX) {
                decision.allow(NET_LIST_CONNECT, found.rule);
            } else if session_dns && dns_redirect::is_resolver(peer) {
                // The reply to a query that was sent to the resolver instead.
                decision.verdict = NetVerdict::RedirectedDns;
            } else if session_dns && let Some(host) = find_host(peer, u64::MAX) {
                decision.allow_host(host);
            }
        }
    }
    report(&decision, packet_header(EventKind::Network));
    decision.result()
}

/// Reports a socket family the seccomp filter refused (no BPF LSM: see `syscalls::sys_exit`).
#[inline(always)]
pub fn report_refused_family(family: u32, sock_type: u32, protocol: u32) {
    report_socket(
        NetVerdict::DeniedFamily,
        0,
        family,
        sock_type & SOCK_TYPE_MASK,
        protocol,
    );
}

/// Reports a socket the seccomp baseline refused (`sys_exit`).
#[inline(always)]
pub fn report_baseline_refusal(family: u32, sock_type: u32, protocol: u32) {
    report_socket(
        NetVerdict::DeniedBaseline,
        0,
        family,
        sock_type & SOCK_TYPE_MASK,
        protocol,
    );
}

/// Whether sockets of `family` may be created while the network is restricted.
#[inline(always)]
pub fn family_allowed(family: u32) -> bool {
    matches!(family, AF_UNIX | AF_INET | AF_INET6 | AF_NETLINK)
}

/// The family socket(2) creates: `(AF_INET, SOCK_PACKET)` is the old spelling of a packet
/// socket (the kernel converts it before the LSM hook; seccomp sees the original).
#[inline(always)]
pub fn created_family(family: u32, sock_type: u32) -> u32 {
    if family == AF_INET && sock_type & SOCK_TYPE_MASK == SOCK_PACKET {
        AF_PACKET
    } else {
        family
    }
}

lsm_programs! {
    /// `socket_create(int family, int type, int protocol, int kern)` (enforcing mode): families
    /// other than UNIX, IPv4, IPv6 and netlink reach the network past the cgroup hooks. Covers
    /// every way of creating a socket, io_uring's included. Sockets the kernel creates for
    /// itself pass.
    net_socket_create: hook = "socket_create", prev = 4, flags = 0, decide_socket;
}

#[inline(always)]
fn decide_socket(ctx: &LsmContext) -> i32 {
    let family: i32 = ctx.arg(0);
    let kern: i32 = ctx.arg(3);
    if kern != 0 || family_allowed(family as u32) {
        return 0;
    }
    let regime = match open_network_refusal() {
        None => return 0,
        Some(regime) => regime,
    };
    let sock_type: i32 = ctx.arg(1);
    let protocol: i32 = ctx.arg(2);
    if regime == 0 {
        report_refused_family(family as u32, sock_type as u32, protocol as u32);
    } else {
        report_socket(
            NetVerdict::DeniedRegime,
            regime,
            family as u32,
            sock_type as u32 & SOCK_TYPE_MASK,
            protocol as u32,
        );
    }
    -EPERM
}

// ---- UNIX sockets ----
//
// A pathname UNIX socket is reached through its file, so it follows the path rules:
// connecting or sending to one needs write access to its path, as the kernel's own permission
// check does (enforcing mode, `FLAG_ENFORCE_FILES`). Abstract and unnamed sockets have no file;
// the loader scopes abstract ones to the session with Landlock.

/// Decides a connect or send to the UNIX socket `peer` (a `struct sock`) by its file's path.
#[inline(always)]
fn unix_peer(peer: *const u8) -> i32 {
    let path = unsafe { peer.add(config!(offsets.unix_sock_path) as usize) };
    let dentry: *const u8 = kernel::pointer(path, config!(offsets.path_dentry));
    if dentry.is_null() {
        return 0;
    }
    let mnt: *const u8 = kernel::pointer(path, config!(offsets.path_mnt));
    path_policy::enforce(
        FileOp::Connect,
        NEED_WRITE,
        path_policy::rebuild_path(dentry, mnt, 0),
    )
}

lsm_programs! {
    /// `unix_stream_connect(struct sock *sock, struct sock *other, struct sock *newsk)`:
    /// connecting a stream or seqpacket socket to the listener `other`.
    unix_stream_connect: hook = "unix_stream_connect", prev = 3, flags = FLAG_ENFORCE_FILES,
        |ctx| unix_peer(ctx.arg(1));
    /// `unix_may_send(struct socket *sock, struct socket *other)`: connecting a datagram socket
    /// to, or sending a datagram to, `other` (a `struct socket`: its `sk` is the peer).
    unix_may_send: hook = "unix_may_send", prev = 2, flags = FLAG_ENFORCE_FILES,
        |ctx| unix_peer(kernel::pointer(ctx.arg::<*const u8>(1), config!(offsets.socket_sk)));
}
