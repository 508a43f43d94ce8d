//! The IP and transport headers of a packet as `cgroup_skb` programs see it (starting at its
//! IP header), for the ingress rules and the DNS record.

use aya_ebpf::{bindings::__sk_buff, helpers::generated::bpf_skb_load_bytes};

use crate::network::{Endpoint, ipv4_mapped};

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPV6_HEADER_LEN: u32 = 40;
const UDP_HEADER_LEN: u32 = 8;

/// A TCP or UDP packet's addresses and where its payload lies.
pub struct Packet {
    /// [`IPPROTO_TCP`] or [`IPPROTO_UDP`].
    pub protocol: u8,
    pub src: Endpoint,
    pub dst: Endpoint,
    /// Offset of the transport header.
    transport: u32,
    /// Bytes from `transport` to the end of the IP payload.
    transport_len: u32,
}

/// Copies `len` bytes at `offset` of the packet to `to`; false if the packet is shorter.
#[inline(always)]
pub fn load(skb: *mut __sk_buff, offset: u32, to: *mut u8, len: u32) -> bool {
    unsafe { bpf_skb_load_bytes(skb as *const _, offset, to.cast(), len) == 0 }
}

/// The packet's headers, `None` unless it is TCP or UDP over IPv4, or over IPv6 with the
/// transport header right after the fixed header (no extension headers).
#[inline(always)]
pub fn parse(skb: *mut __sk_buff) -> Option<Packet> {
    let protocol = u16::from_be(unsafe { (*skb).protocol } as u16);
    let mut ports = [0u8; 4];
    let packet = if protocol == ETH_P_IP {
        let mut head = [0u8; 20];
        if !load(skb, 0, head.as_mut_ptr(), 20) {
            return None;
        }
        let header_len = ((head[0] & 0x0f) as u32) * 4;
        let total_len = u16::from_be_bytes([head[2], head[3]]) as u32;
        let word =
            |at: usize| u32::from_ne_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        Packet {
            protocol: head[9],
            src: Endpoint {
                addr: ipv4_mapped(word(12)),
                port: 0,
            },
            dst: Endpoint {
                addr: ipv4_mapped(word(16)),
                port: 0,
            },
            transport: header_len,
            transport_len: total_len.saturating_sub(header_len),
        }
    } else if protocol == ETH_P_IPV6 {
        let mut head = [0u32; 10];
        if !load(skb, 0, head.as_mut_ptr().cast(), IPV6_HEADER_LEN) {
            return None;
        }
        // Bytes 4 to 7: payload length, next header, hop limit.
        let [len_hi, len_lo, next_header, _] = head[1].to_ne_bytes();
        Packet {
            protocol: next_header,
            src: Endpoint {
                addr: [head[2], head[3], head[4], head[5]],
                port: 0,
            },
            dst: Endpoint {
                addr: [head[6], head[7], head[8], head[9]],
                port: 0,
            },
            transport: IPV6_HEADER_LEN,
            transport_len: u16::from_be_bytes([len_hi, len_lo]) as u32,
        }
    } else {
        return None;
    };
    if packet.protocol != IPPROTO_TCP && packet.protocol != IPPROTO_UDP {
        return None;
    }
    if !load(skb, packet.transport, ports.as_mut_ptr(), 4) {
        return None;
    }
    Some(Packet {
        src: Endpoint {
            port: u16::from_be_bytes([ports[0], ports[1]]),
            ..packet.src
        },
        dst: Endpoint {
            port: u16::from_be_bytes([ports[2], ports[3]]),
            ..packet.dst
        },
        ..packet
    })
}

/// Where a packet's transport payload lies.
pub struct Payload {
    pub offset: u32,
    pub len: u32,
    /// TCP: the sequence number of the payload's first byte; UDP: 0.
    pub tcp_seq: u32,
}

impl Packet {
    #[inline(always)]
    pub fn payload(&self, skb: *mut __sk_buff) -> Option<Payload> {
        let (header_len, tcp_seq) = if self.protocol == IPPROTO_UDP {
            (UDP_HEADER_LEN, 0)
        } else {
            // Bytes 4 to 12 of the TCP header: sequence number, acknowledgement number, and
            // the data offset (in 32-bit words) in the high nibble of byte 12.
            let mut head = [0u8; 9];
            if !load(skb, self.transport + 4, head.as_mut_ptr(), 9) {
                return None;
            }
            let seq = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            (((head[8] >> 4) as u32) * 4, seq)
        };
        let len = self.transport_len.checked_sub(header_len)?;
        Some(Payload {
            offset: self.transport + header_len,
            len,
            tcp_seq,
        })
    }
}
