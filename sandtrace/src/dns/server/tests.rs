//! The resolver against a fake upstream server on loopback: no network, no host files.

use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    sync::{Arc, Mutex},
    time::Duration,
};

use hickory_proto::{
    op::{Message, MessageType, Metadata, OpCode, Query, ResponseCode},
    rr::{DNSClass, Name, RData, Record, RecordType, rdata},
};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};

use super::*;
use crate::dns::{GRACE, admission::tests::FakeTable};

/// Long enough for a loaded machine; a test only waits this long when it is failing.
const PATIENCE: Duration = Duration::from_secs(60);

const RULES: &[&str] = &[
    "good.test",
    "*.cdn.test:443",
    "*.wild.test",
    "good.test:8080",
    "many.test",
    "missing.test",
];

/// A DNS server on 127.0.0.1 that answers from a fixed zone and records what it was asked.
struct FakeUpstream {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn zone() -> HashMap<String, Vec<Record>> {
    let mut zone: HashMap<String, Vec<Record>> = HashMap::new();
    let mut add = |owner: &str, ttl: u32, data: RData| {
        zone.entry(owner.to_owned())
            .or_default()
            .push(Record::from_rdata(name(owner), ttl, data));
    };
    let a = |text: &str| RData::A(rdata::A(text.parse().unwrap()));
    add("good.test.", 300, a("127.0.0.2"));
    add(
        "good.test.",
        300,
        RData::AAAA(rdata::AAAA("fd00::2".parse().unwrap())),
    );
    add(
        "www.cdn.test.",
        60,
        RData::CNAME(rdata::CNAME(name("edge.cdn.test."))),
    );
    add(
        "edge.cdn.test.",
        3600,
        RData::CNAME(rdata::CNAME(name("node.provider.test."))),
    );
    add("node.provider.test.", 120, a("127.0.0.9"));
    add("node.provider.test.", 120, a("127.0.0.10"));
    add("a.wild.test.", 30, a("127.0.0.4"));
    add("wild.test.", 30, a("127.0.0.5"));
    add("evil.test.", 30, a("127.0.0.3"));
    for i in 0..40u16 {
        add(
            "many.test.",
            30,
            RData::AAAA(rdata::AAAA(std::net::Ipv6Addr::new(
                0xfd00, 0, 0, 0, 0, 0, 1, i,
            ))),
        );
    }
    zone
}

impl FakeUpstream {
    fn start() -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = socket.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let zone = zone();
        // Serves until the test process ends.
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                let (len, client) = socket.recv_from(&mut buffer).unwrap();
                let request = Message::from_vec(&buffer[..len]).unwrap();
                let query = request.queries[0].clone();
                log.lock().unwrap().push(query.name().to_ascii());
                let answer = Self::answer(&zone, &request, &query);
                socket.send_to(&answer.to_vec().unwrap(), client).unwrap();
            }
        });
        Self { addr, asked }
    }

    /// The records of the name and type, following CNAMEs, as an authoritative server does.
    fn answer(zone: &HashMap<String, Vec<Record>>, request: &Message, query: &Query) -> Message {
        let mut answer = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
        answer.metadata = Metadata::response_from_request(&request.metadata);
        answer.metadata.recursion_available = true;
        answer.add_query(query.clone());
        let mut owner = query.name().to_ascii().to_ascii_lowercase();
        if !zone.contains_key(&owner) {
            answer.metadata.response_code = ResponseCode::NXDomain;
            return answer;
        }
        while let Some(records) = zone.get(&owner) {
            match records
                .iter()
                .find(|r| r.record_type() == RecordType::CNAME)
            {
                Some(cname) => {
                    answer.add_answer(cname.clone());
                    let RData::CNAME(target) = &cname.data else {
                        unreachable!()
                    };
                    owner = target.0.to_ascii();
                }
                None => {
                    answer.add_answers(
                        records
                            .iter()
                            .filter(|r| r.record_type() == query.query_type())
                            .cloned(),
                    );
                    break;
                }
            }
        }
        answer
    }

    fn config(&self) -> ResolverConfig {
        let mut udp = ConnectionConfig::udp();
        udp.port = self.addr.port();
        ResolverConfig::from_parts(
            None,
            vec![],
            vec![NameServerConfig::new(self.addr.ip(), true, vec![udp])],
        )
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

struct Setup {
    resolver: RunningResolver,
    addr: SocketAddr,
    /// `[::1]` on the same port, when the host has IPv6 loopback.
    addr6: Option<SocketAddr>,
    table: FakeTable,
    names: ResolvedNames,
    upstream: FakeUpstream,
}

fn setup_with(table: FakeTable, hosts: &str) -> Setup {
    let upstream = FakeUpstream::start();
    let rules = RULES.iter().map(|r| HostRule::parse(r).unwrap()).collect();
    let names = ResolvedNames::default();
    let bound = BoundResolver::bind().unwrap();
    let addr = bound.addr();
    let addr6 = bound.v6.as_ref().map(|(udp, _)| udp.local_addr().unwrap());
    let config = upstream.config();
    let resolver = bound
        .start_with(
            rules,
            Box::new(table.clone()),
            names.clone(),
            || Upstream::with_config(config),
            hosts,
        )
        .unwrap();
    Setup {
        resolver,
        addr,
        addr6,
        table,
        names,
        upstream,
    }
}

fn setup() -> Setup {
    setup_with(FakeTable::with_capacity(1000), "")
}

fn query(text: &str, record_type: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name(text), record_type));
    message
}

/// One query over UDP, and its answer.
fn ask_udp(addr: SocketAddr, request: &Message) -> Message {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::LOCALHOST, 0).into(),
    };
    let socket = UdpSocket::bind(local).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    socket.send_to(&request.to_vec().unwrap(), addr).unwrap();
    let mut buffer = [0u8; 4096];
    let len = socket.recv(&mut buffer).expect("an answer");
    let answer = Message::from_vec(&buffer[..len]).unwrap();
    assert_eq!(answer.metadata.id, request.metadata.id);
    answer
}

fn ask(addr: SocketAddr, text: &str, record_type: RecordType) -> Message {
    ask_udp(addr, &query(text, record_type))
}

fn addresses(answer: &Message) -> Vec<IpAddr> {
    answer
        .answers
        .iter()
        .filter_map(|r| r.data.ip_addr())
        .collect()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

impl Setup {
    fn event(&mut self) -> DnsQuery {
        self.resolver.events.blocking_recv().expect("an event")
    }
}

#[test]
fn allowed_names_are_answered_after_their_addresses_are_admitted() {
    let mut s = setup();
    let answer = ask(s.addr, "good.test.", RecordType::A);
    // The answer has arrived: the table must hold its address already, for both entries
    // that cover the name (each with its own ports in the kernel, by index).
    let admitted = s.table.admitted();
    let id = s.names.id("good.test").unwrap();
    for rule in [0, 3] {
        assert!(
            admitted
                .iter()
                .any(|a| a.addr == ip("127.0.0.2") && a.rule == rule && a.name == id),
            "rule {rule} in {admitted:?}"
        );
    }
    assert_eq!(admitted.len(), 2, "{admitted:?}");
    let now = crate::dns::admission::monotonic_ns();
    assert!(admitted[0].expires_ns > now + GRACE.as_nanos() as u64);
    assert!(admitted[0].expires_ns <= now + (GRACE + Duration::from_secs(300)).as_nanos() as u64);
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&answer), vec![ip("127.0.0.2")]);
    assert_eq!(
        s.names.for_address(ip("127.0.0.2")).as_deref(),
        Some("good.test")
    );
    let event = s.event();
    assert_eq!(event.name, "good.test");
    assert_eq!(event.query_type, "A");
    assert_eq!(event.transport, Transport::Udp);
    assert_eq!(event.decision, Decision::Allow);
    assert_eq!(event.response, Response::NoError);
    assert_eq!(event.answers, vec![ip("127.0.0.2")]);
    assert_eq!(event.rule, Some(0));
    assert!(event.ttl.is_some_and(|t| t <= 300 && t > 0));

    let answer = ask(s.addr, "GOOD.test.", RecordType::AAAA);
    assert_eq!(addresses(&answer), vec![ip("fd00::2")]);
    // The name as asked, in its case.
    assert_eq!(answer.answers[0].name, name("GOOD.test."));
    assert_eq!(s.event().name, "GOOD.test");
}

#[test]
fn ipv6_loopback_answers_too() {
    let mut s = setup();
    let Some(addr6) = s.addr6 else {
        eprintln!("skipped ipv6_loopback_answers_too: this host has no IPv6 loopback");
        return;
    };
    let answer = ask(addr6, "good.test.", RecordType::A);
    assert_eq!(addresses(&answer), vec![ip("127.0.0.2")]);
    let mut stream = TcpStream::connect(addr6).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let bytes = query("evil.test.", RecordType::A).to_vec().unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .unwrap();
    stream.write_all(&bytes).unwrap();
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).unwrap();
    let mut bytes = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut bytes).unwrap();
    let answer = Message::from_vec(&bytes).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert!(s.event().client.is_ipv6());
    assert_eq!(s.event().transport, Transport::Tcp);
}

#[test]
fn cname_chains_are_flattened() {
    let mut s = setup();
    let answer = ask(s.addr, "www.cdn.test.", RecordType::A);
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(
        answer
            .answers
            .iter()
            .all(|r| r.record_type() == RecordType::A && r.name == name("www.cdn.test.")),
        "{:?}",
        answer.answers
    );
    let mut got = addresses(&answer);
    got.sort();
    assert_eq!(got, vec![ip("127.0.0.9"), ip("127.0.0.10")]);
    // The smallest TTL along the chain: the first CNAME's.
    assert!(answer.answers.iter().all(|r| r.ttl <= 60 && r.ttl > 0));
    let admitted = s.table.admitted();
    assert_eq!(admitted.len(), 2);
    assert!(admitted.iter().all(|a| a.rule == 1));
    let event = s.event();
    assert_eq!(event.rule, Some(1));
    assert!(event.ttl.is_some_and(|t| t <= 60));
}

#[test]
fn names_no_entry_covers_are_nxdomain_and_never_asked_upstream() {
    let mut s = setup();
    for (text, record_type) in [
        ("evil.test.", RecordType::A),
        ("mzxw6ytboi.evil.test.", RecordType::TXT),
        ("good.test.evil.test.", RecordType::AAAA),
        // `*.wild.test` does not cover the domain itself.
        ("wild.test.", RecordType::A),
    ] {
        let answer = ask(s.addr, text, record_type);
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NXDomain,
            "{text}"
        );
        assert!(answer.answers.is_empty());
        let event = s.event();
        assert_eq!(event.decision, Decision::Deny);
        assert_eq!(event.response, Response::NxDomain);
        assert_eq!(event.reason, NOT_COVERED);
        assert_eq!(event.rule, None);
    }
    assert_eq!(s.upstream.asked(), Vec::<String>::new());
    assert!(s.table.admitted().is_empty());
}

#[test]
fn names_whose_labels_hold_dots_are_not_host_names() {
    let mut s = setup();
    // One label `a.wild` under `test`: its text, `a\.wild.test`, ends like a name below
    // `wild.test`, but it is not one.
    let dotted = Name::from_labels([&b"a.wild"[..], b"test"]).unwrap();
    let mut request = Message::query();
    request.metadata.recursion_desired = true;
    request.add_query(Query::query(dotted, RecordType::A));
    let answer = ask_udp(s.addr, &request);
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    let event = s.event();
    assert_eq!(event.decision, Decision::Deny);
    assert_eq!(event.reason, NOT_A_HOST_NAME);
    assert_eq!(s.upstream.asked(), Vec::<String>::new());
}

#[test]
fn wildcard_entries_cover_names_below_their_domain() {
    let mut s = setup();
    let answer = ask(s.addr, "a.wild.test.", RecordType::A);
    assert_eq!(addresses(&answer), vec![ip("127.0.0.4")]);
    let event = s.event();
    assert_eq!(event.rule, Some(2));
    assert_eq!(s.table.admitted()[0].rule, 2);
    assert_eq!(s.upstream.asked(), vec!["a.wild.test.".to_owned()]);
}

#[test]
fn other_questions() {
    let mut s = setup();
    // Another type of an allowed name: NODATA, without asking upstream.
    let answer = ask(s.addr, "good.test.", RecordType::TXT);
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty());
    let event = s.event();
    assert_eq!(
        (event.decision, event.response),
        (Decision::Allow, Response::NoError)
    );
    assert_eq!(event.query_type, "TXT");
    // An allowed name that does not exist upstream.
    let answer = ask(s.addr, "missing.test.", RecordType::A);
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    let event = s.event();
    assert_eq!(
        (event.decision, event.response),
        (Decision::Allow, Response::NxDomain)
    );
    // ANY, another class, zone transfers: refused.
    for mut request in [
        query("good.test.", RecordType::ANY),
        query("good.test.", RecordType::AXFR),
        query("good.test.", RecordType::A),
    ] {
        if request.queries[0].query_type() == RecordType::A {
            request.queries[0].set_query_class(DNSClass::CH);
        }
        let answer = ask_udp(s.addr, &request);
        assert_eq!(answer.metadata.response_code, ResponseCode::Refused);
        let event = s.event();
        assert_eq!(
            (event.decision, event.response),
            (Decision::Deny, Response::Refused)
        );
    }
    assert_eq!(s.upstream.asked(), vec!["missing.test.".to_owned()]);
    // Malformed: FORMERR with the query's id.
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut garbage = query("good.test.", RecordType::A).to_vec().unwrap();
    garbage.truncate(garbage.len() - 3);
    socket.send_to(&garbage, s.addr).unwrap();
    let mut buffer = [0u8; 512];
    let len = socket.recv(&mut buffer).unwrap();
    let answer = Message::from_vec(&buffer[..len]).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(
        answer.metadata.id,
        u16::from_be_bytes([garbage[0], garbage[1]])
    );
    let event = s.event();
    assert_eq!(
        (event.decision, event.response),
        (Decision::Deny, Response::FormErr)
    );
}

#[test]
fn tcp_queries_and_truncated_udp_answers() {
    let mut s = setup();
    // 40 AAAA records do not fit 512 bytes: truncated over UDP...
    let answer = ask(s.addr, "many.test.", RecordType::AAAA);
    assert!(answer.metadata.truncation);
    assert!(answer.answers.is_empty());
    assert_eq!(s.event().answers.len(), 40);
    // ...and whole over TCP, several queries on one connection.
    let mut stream = TcpStream::connect(s.addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let requests = [
        query("many.test.", RecordType::AAAA),
        query("good.test.", RecordType::A),
        query("evil.test.", RecordType::A),
    ];
    for request in &requests {
        let bytes = request.to_vec().unwrap();
        stream
            .write_all(&(bytes.len() as u16).to_be_bytes())
            .unwrap();
        stream.write_all(&bytes).unwrap();
    }
    let mut answers = Vec::new();
    for _ in &requests {
        let mut length = [0u8; 2];
        stream.read_exact(&mut length).unwrap();
        let mut bytes = vec![0u8; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut bytes).unwrap();
        answers.push(Message::from_vec(&bytes).unwrap());
    }
    assert!(!answers[0].metadata.truncation);
    assert_eq!(addresses(&answers[0]).len(), 40);
    assert_eq!(addresses(&answers[1]), vec![ip("127.0.0.2")]);
    assert_eq!(answers[2].metadata.response_code, ResponseCode::NXDomain);
    for _ in &requests {
        assert_eq!(s.event().transport, Transport::Tcp);
    }
}

#[test]
fn a_full_table_fails_the_answer() {
    // Room for one of the two entries that cover good.test.
    let mut s = setup_with(FakeTable::with_capacity(1), "");
    let answer = ask(s.addr, "good.test.", RecordType::A);
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    assert!(answer.answers.is_empty());
    let event = s.event();
    assert_eq!(event.response, Response::ServFail);
    assert_eq!(event.reason, TABLE_FULL);
    assert!(event.answers.is_empty());
    assert_eq!(s.table.sweeps.lock().unwrap().len(), 1);
}

#[test]
fn hosts_file_names_are_admitted_for_good_at_start() {
    let s = setup_with(
        FakeTable::with_capacity(1000),
        "127.0.0.7 good.test\n127.0.0.8 other.test\n",
    );
    let admitted = s.table.admitted();
    assert_eq!(admitted.len(), 2, "{admitted:?}");
    let id = s.names.id("good.test").unwrap();
    for rule in [0, 3] {
        assert!(admitted.iter().any(|a| a.addr == ip("127.0.0.7")
            && a.rule == rule
            && a.expires_ns == u64::MAX
            && a.name == id));
    }
}

#[test]
fn events_outlive_the_resolver() {
    let mut s = setup();
    ask(s.addr, "good.test.", RecordType::A);
    ask(s.addr, "evil.test.", RecordType::A);
    s.resolver.stop();
    let names: Vec<String> = std::iter::from_fn(|| s.resolver.try_next())
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["good.test", "evil.test"]);
}
