//! DNS messages as the session's resolver reads and writes them: what a query asks, and the
//! answers it sends back (flattened: address records under the name asked, no CNAMEs).

use std::net::IpAddr;

use hickory_proto::{
    op::{Message, MessageType, Metadata, OpCode, Query, ResponseCode},
    rr::{DNSClass, Name, RData, Record, RecordType, rdata},
};

use super::event::Response;

/// The smallest DNS message: its header.
const HEADER_LEN: usize = 12;
/// The largest DNS message over UDP without EDNS (RFC 1035).
const UDP_PLAIN_LIMIT: u16 = 512;
/// The largest UDP answer sent whatever the client's EDNS size says: larger datagrams
/// fragment, and the client retries over TCP anyway (the DNS flag day 2020 value).
const UDP_EDNS_LIMIT: u16 = 1232;

/// What one query message asks.
pub enum Question {
    /// Not a query the resolver can read: FORMERR, with the query's id when it has one.
    Malformed { id: Option<u16>, why: &'static str },
    /// A readable query the resolver does not answer (REFUSED), whatever the name.
    Unanswered {
        request: Box<Message>,
        query: Query,
        why: &'static str,
    },
    /// A question for a name.
    Lookup { request: Box<Message>, query: Query },
}

impl Question {
    pub fn read(bytes: &[u8]) -> Self {
        let id = (bytes.len() >= HEADER_LEN).then(|| u16::from_be_bytes([bytes[0], bytes[1]]));
        let request = match Message::from_vec(bytes) {
            Ok(request) => Box::new(request),
            Err(_) => {
                return Self::Malformed {
                    id,
                    why: "the query is not a DNS message",
                };
            }
        };
        if request.metadata.message_type != MessageType::Query {
            // Never answer an answer: that could loop between two resolvers.
            return Self::Malformed {
                id: None,
                why: "the message is a response, not a query",
            };
        }
        let [query] = request.queries.as_slice() else {
            return Self::Malformed {
                id,
                why: "a query must ask exactly one question",
            };
        };
        let query = query.clone();
        let why = if request.metadata.op_code != OpCode::Query {
            Some("only standard queries are answered (no updates or notifies)")
        } else if query.query_class() != DNSClass::IN {
            Some("only Internet-class (IN) queries are answered")
        } else {
            match query.query_type() {
                RecordType::ANY => Some("ANY queries are refused (RFC 8482)"),
                RecordType::AXFR | RecordType::IXFR => Some("zone transfers are refused"),
                _ => None,
            }
        };
        match why {
            Some(why) => Self::Unanswered {
                request,
                query,
                why,
            },
            None => Self::Lookup { request, query },
        }
    }
}

/// The name as events and the policy show it: without the trailing dot.
pub fn display_name(name: &Name) -> String {
    let mut text = name.to_ascii();
    if text.len() > 1 && text.ends_with('.') {
        text.pop();
    }
    text
}

/// `A`, `AAAA`, `TYPE65`, ...
pub fn type_name(record_type: RecordType) -> String {
    match record_type {
        RecordType::Unknown(n) => format!("TYPE{n}"),
        known => known.to_string(),
    }
}

/// The answer to `request`: `code`, and for each address an A or AAAA record of the name asked
/// with `ttl`.
pub fn reply(
    request: &Message,
    query: Option<&Query>,
    code: Response,
    addrs: &[IpAddr],
    ttl: u32,
) -> Message {
    let mut reply = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata = Metadata::response_from_request(&request.metadata);
    reply.metadata.recursion_available = true;
    reply.metadata.response_code = response_code(code);
    if let Some(query) = query {
        reply.add_query(query.clone());
        for &addr in addrs {
            let data = match addr {
                IpAddr::V4(v4) => RData::A(rdata::A(v4)),
                IpAddr::V6(v6) => RData::AAAA(rdata::AAAA(v6)),
            };
            reply.add_answer(Record::from_rdata(query.name().clone(), ttl, data));
        }
    }
    if let Some(edns) = &request.edns {
        // RFC 6891: a query with OPT gets an answer with OPT.
        let mut ours = hickory_proto::op::Edns::new();
        ours.set_max_payload(UDP_EDNS_LIMIT.min(edns.max_payload()));
        reply.set_edns(ours);
    }
    reply
}

/// FORMERR for a query that could not be read, echoing its id.
pub fn format_error(id: u16) -> Message {
    Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
}

fn response_code(code: Response) -> ResponseCode {
    match code {
        Response::NoError => ResponseCode::NoError,
        Response::FormErr => ResponseCode::FormErr,
        Response::ServFail => ResponseCode::ServFail,
        Response::NxDomain => ResponseCode::NXDomain,
        Response::Refused => ResponseCode::Refused,
    }
}

/// The largest answer a UDP client of `request` takes: 512 bytes, or its EDNS size (up to
/// [`UDP_EDNS_LIMIT`]).
pub fn udp_limit(request: Option<&Message>) -> usize {
    let limit = match request.and_then(|r| r.edns.as_ref()) {
        Some(edns) => edns.max_payload().clamp(UDP_PLAIN_LIMIT, UDP_EDNS_LIMIT),
        None => UDP_PLAIN_LIMIT,
    };
    usize::from(limit)
}

/// `reply` on the wire, at most `limit` bytes: an answer that does not fit loses its records
/// and gets the TC bit, and the client asks again over TCP.
pub fn encode(reply: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = reply.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    let truncated = reply.truncate().to_vec().ok()?;
    (truncated.len() <= limit).then_some(truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, record_type: RecordType) -> Message {
        let mut message = Message::query();
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
        message
    }

    #[test]
    fn reads_questions() {
        let bytes = query("good.test.", RecordType::A).to_vec().unwrap();
        assert!(
            matches!(Question::read(&bytes), Question::Lookup { query, .. }
            if display_name(query.name()) == "good.test")
        );
        for record_type in [RecordType::ANY, RecordType::AXFR, RecordType::IXFR] {
            let bytes = query("good.test.", record_type).to_vec().unwrap();
            assert!(matches!(
                Question::read(&bytes),
                Question::Unanswered { .. }
            ));
        }
        let mut chaos = query("version.bind.", RecordType::TXT);
        chaos.queries[0].set_query_class(DNSClass::CH);
        assert!(matches!(
            Question::read(&chaos.to_vec().unwrap()),
            Question::Unanswered { .. }
        ));
        assert!(matches!(
            Question::read(&[1, 2, 3]),
            Question::Malformed { id: None, .. }
        ));
        let mut two = query("a.test.", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("b.test.").unwrap(),
            RecordType::A,
        ));
        let bytes = two.to_vec().unwrap();
        assert!(matches!(
            Question::read(&bytes),
            Question::Malformed { id: Some(id), .. } if id == two.metadata.id
        ));
        let answer = reply(&two, None, Response::NoError, &[], 0)
            .to_vec()
            .unwrap();
        assert!(matches!(
            Question::read(&answer),
            Question::Malformed { id: None, .. }
        ));
    }

    #[test]
    fn answers_that_do_not_fit_are_truncated() {
        let request = query("many.test.", RecordType::AAAA);
        let addrs: Vec<IpAddr> = (0..40u16)
            .map(|i| IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i)))
            .collect();
        let message = reply(
            &request,
            Some(&request.queries[0]),
            Response::NoError,
            &addrs,
            60,
        );
        let limit = udp_limit(Some(&request));
        assert_eq!(limit, 512);
        let bytes = encode(&message, limit).unwrap();
        let read = Message::from_vec(&bytes).unwrap();
        assert!(read.metadata.truncation);
        assert!(read.answers.is_empty());
        assert_eq!(read.queries, request.queries);
        let whole = Message::from_vec(&encode(&message, usize::from(u16::MAX)).unwrap()).unwrap();
        assert!(!whole.metadata.truncation);
        assert_eq!(whole.answers.len(), 40);
    }
}
