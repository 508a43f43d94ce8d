//! The session's DNS as its traffic shows it, when the session's resolver does not run: the
//! kernel records every packet to and from port 53 (`sandtrace-ebpf/src/dns_capture.rs`), and
//! this reads the messages (TCP streams put back together by sequence number) and pairs each
//! query with its answer by client, server, transport and message id.
//!
//! What the record can miss, and says so in `reason`: a query no answer came for (listed at
//! the end of the session, or when too many wait), a message longer than the kernel copied,
//! part of a TCP stream not seen, and payloads to port 53 that are not DNS at all (listed as
//! such: they may be a tunnel). DNS over TLS or HTTPS is not DNS traffic on port 53: it shows
//! as the connection it is.

use std::{
    collections::{HashMap, VecDeque},
    net::{IpAddr, SocketAddr},
    time::SystemTime,
};

use hickory_proto::{
    op::{Message, MessageType, ResponseCode},
    rr::RData,
};

use super::{
    Transport,
    message::{display_name, type_name},
};
use crate::events::DnsPacketRecord;

/// Queries waiting for their answer; past this many the oldest is listed as unanswered.
const MAX_WAITING: usize = 1024;

/// One query of the session seen in its traffic, with its answer when one came.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedQuery {
    /// When the query was sent (the answer's time for an answer without a recorded query).
    pub time: SystemTime,
    pub transport: Transport,
    /// The session's socket.
    pub client: SocketAddr,
    /// The server it asked.
    pub server: SocketAddr,
    /// Without the trailing dot; empty when the message could not be read.
    pub name: String,
    /// `A`, `AAAA`, `TXT`, ...; empty when the message could not be read.
    pub query_type: String,
    /// The answer's response code (`NOERROR`, `NXDOMAIN`, ...); `None` when no answer came.
    pub response: Option<String>,
    /// The addresses in the answer.
    pub answers: Vec<IpAddr>,
    /// The smallest TTL of the answer's records.
    pub ttl: Option<u32>,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Exchange {
    client: SocketAddr,
    server: SocketAddr,
    id: u16,
    transport: Transport,
}

/// Pairs the session's DNS packets into [`ObservedQuery`]s.
#[derive(Debug, Default)]
pub struct DnsTraffic {
    waiting: HashMap<Exchange, ObservedQuery>,
    /// `waiting`'s keys, oldest first (answered ones are skipped when they come up).
    order: VecDeque<Exchange>,
    /// TCP connections to port 53, by (source, destination) of one direction.
    streams: HashMap<(SocketAddr, SocketAddr), Stream>,
}

/// Streams followed at once; past this many, all are dropped (and their next segments read
/// as new streams).
const MAX_STREAMS: usize = 1024;
/// Bytes of one stream kept while a message is incomplete: a message and its length.
const MAX_STREAM_BUFFER: usize = 2 + u16::MAX as usize;

/// One direction of a TCP connection: what is not yet read as messages.
#[derive(Debug)]
struct Stream {
    /// The sequence number of the next byte.
    next_seq: u32,
    buffered: Vec<u8>,
}

/// A packet's parties, as both directions of one exchange name them.
#[derive(Debug, Clone, Copy)]
struct Parties {
    sent: bool,
    transport: Transport,
    client: SocketAddr,
    server: SocketAddr,
}

impl Parties {
    fn unpaired(&self, time: SystemTime, reason: &str) -> ObservedQuery {
        ObservedQuery {
            time,
            transport: self.transport,
            client: self.client,
            server: self.server,
            name: String::new(),
            query_type: String::new(),
            response: None,
            answers: Vec::new(),
            ttl: None,
            reason: reason.to_owned(),
        }
    }
}

impl DnsTraffic {
    /// Takes one packet; returns the queries it completes (answered ones, ones pushed out of
    /// the waiting list), and what could not be read.
    pub fn observe(
        &mut self,
        time: SystemTime,
        packet: &DnsPacketRecord<'_>,
    ) -> Vec<ObservedQuery> {
        let (client, server) = if packet.sent {
            (packet.src, packet.dst)
        } else {
            (packet.dst, packet.src)
        };
        let parties = Parties {
            sent: packet.sent,
            transport: if packet.tcp {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            client,
            server,
        };
        if !packet.tcp {
            return match Message::from_vec(packet.payload) {
                Ok(message) => self.message(time, parties, &message, packet.truncated),
                Err(_) if packet.truncated => vec![parties.unpaired(
                    time,
                    "a DNS message longer than the bytes recorded, which do not decode",
                )],
                Err(_) => vec![parties.unpaired(time, NOT_DNS)],
            };
        }
        let mut done = Vec::new();
        let messages = match self.follow(packet) {
            Ok(messages) => messages,
            Err(why) => {
                done.push(parties.unpaired(time, why));
                Vec::new()
            }
        };
        for bytes in messages {
            match Message::from_vec(&bytes) {
                Ok(message) => done.extend(self.message(time, parties, &message, false)),
                Err(_) => done.push(parties.unpaired(time, NOT_DNS)),
            }
        }
        done
    }

    /// Adds a TCP segment to its stream; returns the messages it completes.
    fn follow(&mut self, packet: &DnsPacketRecord<'_>) -> Result<Vec<Vec<u8>>, &'static str> {
        if self.streams.len() >= MAX_STREAMS {
            self.streams.clear();
        }
        let key = (packet.src, packet.dst);
        let stream = self.streams.entry(key).or_insert(Stream {
            next_seq: packet.tcp_seq,
            buffered: Vec::new(),
        });
        // How far the segment starts behind the next byte: a retransmit repeats what came.
        let behind = stream.next_seq.wrapping_sub(packet.tcp_seq);
        if behind > u32::MAX / 2 {
            self.streams.remove(&key);
            return Err("part of a TCP stream to port 53 was not seen");
        }
        let Some(new) = packet.payload.get(behind as usize..) else {
            return Ok(Vec::new());
        };
        if packet.truncated {
            self.streams.remove(&key);
            return Err("a TCP segment to port 53 longer than the bytes recorded");
        }
        stream.buffered.extend_from_slice(new);
        stream.next_seq = stream.next_seq.wrapping_add(new.len() as u32);
        let mut messages = Vec::new();
        while let Some((len, rest)) = stream.buffered.split_first_chunk::<2>() {
            let len = usize::from(u16::from_be_bytes(*len));
            if rest.len() < len {
                break;
            }
            messages.push(rest[..len].to_vec());
            stream.buffered.drain(..2 + len);
        }
        if stream.buffered.len() > MAX_STREAM_BUFFER {
            self.streams.remove(&key);
            return Err("a TCP stream to port 53 that does not frame DNS messages");
        }
        Ok(messages)
    }

    /// One DNS message of `parties`.
    fn message(
        &mut self,
        time: SystemTime,
        parties: Parties,
        message: &Message,
        truncated: bool,
    ) -> Vec<ObservedQuery> {
        let exchange = Exchange {
            client: parties.client,
            server: parties.server,
            id: message.metadata.id,
            transport: parties.transport,
        };
        let (name, query_type) = message
            .queries
            .first()
            .map(|q| (display_name(q.name()), type_name(q.query_type())))
            .unwrap_or_default();
        match (parties.sent, message.metadata.message_type) {
            (true, MessageType::Query) => {
                let query = ObservedQuery {
                    name,
                    query_type,
                    ..parties.unpaired(time, "no answer came")
                };
                let mut done = Vec::new();
                if let Some(replaced) = self.waiting.insert(exchange, query) {
                    // The same id asked again before an answer: a retry, or a new question.
                    done.push(replaced);
                }
                self.order.push_back(exchange);
                while self.waiting.len() > MAX_WAITING {
                    done.extend(self.pop_oldest());
                }
                done
            }
            (false, MessageType::Response) => {
                let mut query = self.waiting.remove(&exchange).unwrap_or(ObservedQuery {
                    name,
                    query_type,
                    ..parties.unpaired(time, "")
                });
                query.answers = message
                    .answers
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                        _ => None,
                    })
                    .collect();
                query.ttl = message.answers.iter().map(|r| r.ttl).min();
                query.response = Some(response_name(message.metadata.response_code));
                query.reason = if truncated {
                    "answered; the answer was longer than the bytes recorded".to_owned()
                } else {
                    "answered".to_owned()
                };
                vec![query]
            }
            (true, _) => vec![parties.unpaired(time, "the session sent a DNS response")],
            (false, _) => vec![parties.unpaired(time, "the session received a DNS query")],
        }
    }

    /// The queries still waiting: no answer came before the session ended.
    pub fn finish(&mut self) -> Vec<ObservedQuery> {
        let mut left = Vec::new();
        while !self.order.is_empty() {
            left.extend(self.pop_oldest());
        }
        left
    }

    fn pop_oldest(&mut self) -> Option<ObservedQuery> {
        while let Some(exchange) = self.order.pop_front() {
            if let Some(query) = self.waiting.remove(&exchange) {
                return Some(query);
            }
        }
        None
    }
}

const NOT_DNS: &str = "traffic on port 53 that is not a DNS message";

/// As DNS tools spell it: `NOERROR`, `NXDOMAIN`, ..., `RCODE23`.
fn response_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".to_owned(),
        ResponseCode::FormErr => "FORMERR".to_owned(),
        ResponseCode::ServFail => "SERVFAIL".to_owned(),
        ResponseCode::NXDomain => "NXDOMAIN".to_owned(),
        ResponseCode::NotImp => "NOTIMP".to_owned(),
        ResponseCode::Refused => "REFUSED".to_owned(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{Ipv4Addr, SocketAddr},
        time::UNIX_EPOCH,
    };

    use hickory_proto::{
        op::{Message, MessageType, OpCode, Query},
        rr::{Name, RData, Record, RecordType, rdata},
    };

    use super::*;

    const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 40000);
    const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 53);

    fn query(id: u16, name: &str) -> Message {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m
    }

    fn answer(id: u16, name: &str, addr: Ipv4Addr) -> Message {
        let mut m = query(id, name);
        m.metadata.message_type = MessageType::Response;
        m.add_answer(Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            60,
            RData::A(rdata::A(addr)),
        ));
        m
    }

    fn packet(sent: bool, tcp: bool, payload: &[u8]) -> DnsPacketRecord<'_> {
        let (src, dst) = if sent {
            (CLIENT, SERVER)
        } else {
            (SERVER, CLIENT)
        };
        DnsPacketRecord {
            sent,
            tcp,
            src,
            dst,
            payload,
            tcp_seq: 0,
            truncated: false,
        }
    }

    #[test]
    fn a_query_and_its_answer_make_one_record() {
        let mut traffic = DnsTraffic::default();
        let q = query(7, "example.test.").to_vec().unwrap();
        assert_eq!(
            traffic.observe(UNIX_EPOCH, &packet(true, false, &q)),
            vec![]
        );
        let a = answer(7, "example.test.", Ipv4Addr::new(192, 0, 2, 1))
            .to_vec()
            .unwrap();
        let done = traffic.observe(UNIX_EPOCH, &packet(false, false, &a));
        assert_eq!(done.len(), 1);
        let record = &done[0];
        assert_eq!(
            (
                record.name.as_str(),
                record.query_type.as_str(),
                record.response.as_deref()
            ),
            ("example.test", "A", Some("NOERROR"))
        );
        assert_eq!(record.answers, [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]);
        assert_eq!(
            (record.client, record.server, record.ttl),
            (CLIENT, SERVER, Some(60))
        );
        assert!(traffic.finish().is_empty());
    }

    #[test]
    fn tcp_streams_are_put_back_together() {
        let mut traffic = DnsTraffic::default();
        let q = query(9, "tcp.test.").to_vec().unwrap();
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        // The length alone, then the message, which is sent again (a retransmit).
        let segment = |from: usize, seq: u32| DnsPacketRecord {
            tcp_seq: seq,
            ..packet(true, true, &framed[from..])
        };
        let first = DnsPacketRecord {
            tcp_seq: 1000,
            ..packet(true, true, &framed[..2])
        };
        assert!(traffic.observe(UNIX_EPOCH, &first).is_empty());
        assert!(traffic.observe(UNIX_EPOCH, &segment(2, 1002)).is_empty());
        assert!(traffic.observe(UNIX_EPOCH, &segment(2, 1002)).is_empty());
        let left = traffic.finish();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(
            (left[0].name.as_str(), left[0].response.as_ref()),
            ("tcp.test", None)
        );
        assert_eq!(left[0].transport, Transport::Tcp);
    }

    #[test]
    fn unanswered_queries_are_not_lost_when_many_wait() {
        let mut traffic = DnsTraffic::default();
        let mut pushed_out = Vec::new();
        for id in 0..=MAX_WAITING as u16 {
            let q = query(id, &format!("n{id}.test.")).to_vec().unwrap();
            pushed_out.extend(traffic.observe(UNIX_EPOCH, &packet(true, false, &q)));
        }
        assert_eq!(pushed_out.len(), 1);
        assert_eq!(pushed_out[0].name, "n0.test");
        assert_eq!(traffic.finish().len(), MAX_WAITING);
    }

    #[test]
    fn other_payloads_on_port_53_are_recorded_as_such() {
        let mut traffic = DnsTraffic::default();
        let done = traffic.observe(UNIX_EPOCH, &packet(true, false, b"\x01secret data"));
        assert_eq!(done.len(), 1);
        assert_eq!(
            done[0].reason,
            "traffic on port 53 that is not a DNS message"
        );
    }
}
