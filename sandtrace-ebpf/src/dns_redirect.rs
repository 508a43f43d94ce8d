//! The session's DNS, while its resolver runs (`FLAG_SESSION_DNS`, `[network] allow_hosts`).
//!
//! Every connect and send to the DNS port, at any address, is rewritten in the kernel to the
//! resolver's address and port (`Config::dns`), the way Cilium's socket load-balancer
//! rewrites service addresses: the query cannot reach another server, whatever resolver the
//! command picks. The original destination is kept per socket (`DNS_PEERS`, by socket cookie)
//! so that the replies, and `getpeername`, show the address the client asked: resolvers
//! (glibc's, musl's, Go's) drop a reply whose source is not the server they queried.
//! - [`redirect`]: called by `connect4/6` and `sendmsg4/6` (`crate::network`).
//! - `recvmsg4/6`: a datagram from the resolver, to a socket with a redirected query, gets the
//!   original destination as its source.
//! - `getpeername4/6`: a socket connected to the resolver by a redirect gets the original
//!   destination as its peer.
//!
//! Limit: one original destination per socket, the last one. A socket that sends queries to
//! two servers before reading the replies sees both replies come from the second.

use aya_ebpf::{
    helpers::bpf_get_socket_cookie,
    macros::{cgroup_sock_addr, map},
    maps::LruHashMap,
    programs::SockAddrContext,
};
use sandtrace_common::{
    config::FLAG_SESSION_DNS,
    network::{DnsPeer, MAX_DNS_SOCKETS, NetVerdict},
};

use crate::{
    network::{self, Endpoint},
    session::{self, config},
};

/// The original destination of each socket's last redirected DNS connect or send, by socket
/// cookie (unique per socket for the kernel's lifetime, never reused). LRU: a socket that is
/// gone needs no cleanup.
#[map]
static DNS_PEERS: LruHashMap<u64, DnsPeer> = LruHashMap::with_max_entries(MAX_DNS_SOCKETS, 0);

/// The resolver's address for a query to `to`: the IPv4 one for an IPv4 (or IPv4-mapped)
/// destination, else the IPv6 one, `None` if it has none.
#[inline(always)]
fn resolver_for(to: &Endpoint) -> Option<Endpoint> {
    let addr = if network::is_ipv4(&to.addr) {
        config!(dns.addr4)
    } else {
        let addr6 = config!(dns.addr6);
        if addr6 == [0; 4] {
            return None;
        }
        addr6
    };
    Some(Endpoint {
        addr,
        port: config!(dns.port),
    })
}

/// Whether `from` is the session's resolver (either of its addresses).
#[inline(always)]
pub fn is_resolver(from: Endpoint) -> bool {
    let addr6 = config!(dns.addr6);
    from.port == config!(dns.port)
        && (from.addr == config!(dns.addr4) || (addr6 != [0; 4] && from.addr == addr6))
}

#[inline(always)]
fn socket_cookie(ctx: &SockAddrContext) -> u64 {
    // SAFETY: the helper takes the program's own context.
    unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) }
}

/// Sends the connect or send to `to` (the DNS port) to the session's resolver, and returns the
/// verdict: `RedirectedDns`, or `DeniedDnsNoResolver` for an IPv6 destination when the
/// resolver has no IPv6 address (an IPv6-only socket could not reach the IPv4 one).
#[inline(always)]
pub fn redirect(ctx: &SockAddrContext, ipv6: bool, to: Endpoint) -> NetVerdict {
    let Some(resolver) = resolver_for(&to) else {
        return NetVerdict::DeniedDnsNoResolver;
    };
    let peer = DnsPeer {
        addr: to.addr,
        port: to.port,
        _pad: 0,
    };
    // A failed update still redirects: the query goes to the resolver either way, which is
    // what keeps it in. The client only misses the original source on the reply, and may
    // drop that reply; and a stale entry of the same socket can only name another DNS server
    // it asked before.
    let _ = DNS_PEERS.insert(&socket_cookie(ctx), &peer, 0);
    network::rewrite(ctx, ipv6, resolver);
    NetVerdict::RedirectedDns
}

/// `recvmsg4/6` and `getpeername4/6`: an address that is the resolver's, on a socket with a
/// redirected query, becomes the query's original destination. These hooks must return 1.
#[inline(always)]
fn restore_peer(ctx: &SockAddrContext, ipv6: bool) -> i32 {
    if !session::flag(FLAG_SESSION_DNS) || !is_resolver(network::requested(ctx, ipv6)) {
        return 1;
    }
    let Some(peer) = DNS_PEERS.get_ptr(&socket_cookie(ctx)) else {
        return 1;
    };
    // SAFETY: a pointer to a live map value, read at once.
    let peer = unsafe { *peer };
    // An IPv4 socket only ever sends to IPv4 destinations; anything else is left alone.
    if ipv6 || network::is_ipv4(&peer.addr) {
        network::rewrite(
            ctx,
            ipv6,
            Endpoint {
                addr: peer.addr,
                port: peer.port,
            },
        );
    }
    1
}

/// The four programs giving replies from the resolver their original source.
macro_rules! restore_peer_programs {
    ($($name:ident: $attach:ident, ipv6 = $ipv6:literal;)+) => {$(
        #[cgroup_sock_addr($attach)]
        pub fn $name(ctx: SockAddrContext) -> i32 {
            restore_peer(&ctx, $ipv6)
        }
    )+};
}

restore_peer_programs! {
    dns_recvmsg4: recvmsg4, ipv6 = false;
    dns_recvmsg6: recvmsg6, ipv6 = true;
    dns_getpeername4: getpeername4, ipv6 = false;
    dns_getpeername6: getpeername6, ipv6 = true;
}
