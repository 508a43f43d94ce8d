//! The session's DNS traffic, recorded while its own resolver does not run
//! (`FLAG_DNS_CAPTURE`): every TCP or UDP packet the session sends to port 53 and every one
//! it receives from port 53, with its addresses and the start of its payload
//! ([`DnsPacketEvent`]); the loader decodes the messages. A record only: what the session may
//! reach is the network rules' business.
//!
//! `cgroup_skb` programs see every packet of the session's sockets, whichever call sent it
//! (`sendmmsg`, io_uring, a connected socket's `write`). TCP segments carry their sequence
//! number, by which the loader puts the stream back together.
//! - `dns_egress`: packets sent.
//! - `dns_ingress`: packets received, when the network rules' ingress program
//!   (`network::net_ingress`, which then records them itself) is not attached.

use aya_ebpf::{bindings::__sk_buff, macros::cgroup_skb, programs::SkBuffContext};
use sandtrace_common::{
    event::EventKind,
    network::{DNS_CAPTURE_CAP, DNS_PACKET_RECEIVED, DNS_PACKET_SENT, DNS_PORT, DnsPacketEvent},
};

use crate::{emit, network, packet};

/// `cgroup_skb` verdict: pass the packet.
const PASS: i32 = 1;

/// Records the packet in `skb` if it is DNS in `direction`.
#[inline(always)]
pub fn record(skb: *mut __sk_buff, direction: u8) {
    let Some(packet) = packet::parse(skb) else {
        return;
    };
    let server = if direction == DNS_PACKET_SENT {
        packet.dst.port
    } else {
        packet.src.port
    };
    if server != DNS_PORT {
        return;
    }
    let Some(payload) = packet.payload(skb) else {
        return;
    };
    let len = payload.len;
    if len == 0 {
        // A bare TCP acknowledgement, or an empty datagram.
        return;
    }
    let copied = if len > DNS_CAPTURE_CAP as u32 {
        DNS_CAPTURE_CAP as u32
    } else {
        len
    };
    // The copy's length in 1..=DNS_CAPTURE_CAP (a power of two) in a form the verifier can
    // bound; read back through memory so the compiler cannot fold the mask away.
    let copied = unsafe { core::ptr::read_volatile(&copied) };
    let copied = ((copied - 1) & (DNS_CAPTURE_CAP as u32 - 1)) + 1;
    let Some(mut entry) = emit::reserve::<DnsPacketEvent>() else {
        return;
    };
    let e = entry.as_mut_ptr();
    unsafe {
        (*e).header = network::packet_header(EventKind::DnsPacket);
        (*e).direction = direction;
        (*e).protocol = packet.protocol;
        (*e)._pad = 0;
        (*e).src_port = packet.src.port;
        (*e).dst_port = packet.dst.port;
        (*e).src = packet.src.addr;
        (*e).dst = packet.dst.addr;
        (*e).payload_len = len;
        (*e).tcp_seq = payload.tcp_seq;
        if !packet::load(skb, payload.offset, (*e).data.as_mut_ptr(), copied) {
            (*e).payload_len = 0;
        }
    }
    emit::submit(entry);
}

#[cgroup_skb(egress)]
pub fn dns_egress(ctx: SkBuffContext) -> i32 {
    record(ctx.skb.skb, DNS_PACKET_SENT);
    PASS
}

#[cgroup_skb(ingress)]
pub fn dns_ingress(ctx: SkBuffContext) -> i32 {
    record(ctx.skb.skb, DNS_PACKET_RECEIVED);
    PASS
}
