//! A tiny authoritative DNS server for sandtrace's tests: it answers the names it is given and
//! nothing else, and logs every query it receives, so that a test can check from outside the
//! session which queries reached a server.
//!
//! ```text
//! sandtrace-test-dns --listen ADDR:PORT [--record NAME=ADDRESS]... [--ttl SECS] [--log FILE]
//! ```
//!
//! - `--listen`: the UDP and TCP address it serves (both, same port).
//! - `--record NAME=ADDRESS`: an A record (IPv4 address) or AAAA record (IPv6 address) for
//!   NAME; repeatable, several per name. NAME `*` answers every name. `--record
//!   NAME=CNAME:TARGET` makes NAME an alias: the answer is the CNAME record, then TARGET's
//!   records (as an authoritative server answers for its own zone).
//! - `--ttl`: the TTL of every answer (default 60).
//! - `--log`: appends one line per query received, `TRANSPORT NAME TYPE` (`udp good.test A`;
//!   the name in lower case without the trailing dot), written before the answer is sent.
//!
//! A name with records of other types only gets an empty NOERROR answer; an unknown name gets
//! NXDOMAIN. It prints `ready` on stdout once both sockets are bound, and runs until killed.
//!
//! Not a test and not installed: built for the tests through the `test-helpers` feature.

use std::{
    fs::{File, OpenOptions},
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{Arc, Mutex},
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, ResponseCode},
    rr::{Name, RData, Record, RecordType, rdata},
};

/// What a name has.
enum Data {
    Address(IpAddr),
    Alias(String),
}

/// How many aliases an answer follows: a loop in the test's records ends there.
const MAX_ALIASES: usize = 8;

/// What the server knows and where it writes its log.
struct Zone {
    records: Vec<(String, Data)>,
    ttl: u32,
    log: Option<Mutex<File>>,
}

fn main() {
    let (listen, zone) = parse_args();
    let udp =
        UdpSocket::bind(listen).unwrap_or_else(|e| fail(&format!("binding UDP {listen}: {e}")));
    let tcp =
        TcpListener::bind(listen).unwrap_or_else(|e| fail(&format!("binding TCP {listen}: {e}")));
    let zone = Arc::new(zone);
    println!("ready");
    std::io::stdout().flush().unwrap();

    let tcp_zone = Arc::clone(&zone);
    std::thread::spawn(move || {
        for stream in tcp.incoming().flatten() {
            let zone = Arc::clone(&tcp_zone);
            std::thread::spawn(move || serve_tcp(stream, &zone));
        }
    });
    let mut buf = [0u8; 4096];
    loop {
        let (len, from) = udp.recv_from(&mut buf).expect("receiving a UDP query");
        if let Some(reply) = zone.answer("udp", &buf[..len]) {
            let _ = udp.send_to(&reply, from);
        }
    }
}

/// Answers queries on one TCP connection (each message after its 2-byte length) until the
/// client closes it.
fn serve_tcp(mut stream: TcpStream, zone: &Zone) {
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut query).is_err() {
            return;
        }
        let Some(reply) = zone.answer("tcp", &query) else {
            return;
        };
        let len = u16::try_from(reply.len()).expect("a reply shorter than 64 KiB");
        if stream.write_all(&len.to_be_bytes()).is_err() || stream.write_all(&reply).is_err() {
            return;
        }
    }
}

impl Zone {
    /// Logs the query in `packet` and returns the encoded reply (none for a packet that is not
    /// a query).
    fn answer(&self, transport: &str, packet: &[u8]) -> Option<Vec<u8>> {
        let Ok(query) = Message::from_vec(packet) else {
            self.log(&format!("{transport} malformed"));
            return None;
        };
        if query.metadata.message_type != MessageType::Query {
            self.log(&format!("{transport} not-a-query"));
            return None;
        }
        let mut reply = Message::response(query.metadata.id, OpCode::Query);
        reply.metadata.authoritative = true;
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        for question in &query.queries {
            let kind = question.query_type();
            self.log(&format!("{transport} {} {kind}", key(question.name())));
            let (answers, known) = self.records_for(question.name(), kind);
            if !known {
                reply.metadata.response_code = ResponseCode::NXDomain;
            }
            reply.add_answers(answers);
        }
        reply.add_queries(query.queries);
        Some(reply.to_vec().expect("encoding a reply"))
    }

    /// The records answering `name`'s `kind` query (aliases followed), and whether the last
    /// name of the chain exists.
    fn records_for(&self, name: &Name, kind: RecordType) -> (Vec<Record>, bool) {
        let mut answers = Vec::new();
        let mut owner = name.clone();
        for _ in 0..=MAX_ALIASES {
            let key = key(&owner);
            let data: Vec<&Data> = self
                .records
                .iter()
                .filter(|(record_name, _)| record_name == "*" || *record_name == key)
                .map(|(_, data)| data)
                .collect();
            if data.is_empty() {
                // NXDOMAIN, also at the end of an alias chain (RFC 6604).
                return (answers, false);
            }
            let mut alias = None;
            for data in data {
                let rdata = match (data, kind) {
                    (Data::Address(IpAddr::V4(v4)), RecordType::A) => RData::A(rdata::A(*v4)),
                    (Data::Address(IpAddr::V6(v6)), RecordType::AAAA) => {
                        RData::AAAA(rdata::AAAA(*v6))
                    }
                    (Data::Alias(target), _) => {
                        let target = Name::from_ascii(target).expect("an alias target name");
                        alias = Some(target.clone());
                        RData::CNAME(rdata::CNAME(target))
                    }
                    _ => continue,
                };
                answers.push(Record::from_rdata(owner.clone(), self.ttl, rdata));
            }
            match alias {
                Some(target) => owner = target,
                None => return (answers, true),
            }
        }
        (answers, true)
    }

    fn log(&self, line: &str) {
        if let Some(log) = &self.log {
            // One write per line, unbuffered: the line is in the file before the reply leaves.
            let mut file = log.lock().unwrap();
            file.write_all(format!("{line}\n").as_bytes())
                .expect("writing the query log");
        }
    }
}

/// How the log and the records spell `name`: lower case, without the trailing dot.
fn key(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_lowercase()
}

fn parse_args() -> (SocketAddr, Zone) {
    let mut listen = None;
    let mut zone = Zone {
        records: Vec::new(),
        ttl: 60,
        log: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| fail(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--listen" => {
                listen =
                    Some(value.parse().unwrap_or_else(|_| {
                        fail(&format!("--listen {value}: not an ADDRESS:PORT"))
                    }));
            }
            "--record" => {
                let (name, data) = value.split_once('=').unwrap_or_else(|| {
                    fail(&format!(
                        "--record {value}: not NAME=ADDRESS or NAME=CNAME:TARGET"
                    ))
                });
                let data =
                    match data.strip_prefix("CNAME:") {
                        Some(target) => Data::Alias(target.to_lowercase()),
                        None => Data::Address(data.parse().unwrap_or_else(|_| {
                            fail(&format!("--record {value}: not an IP address"))
                        })),
                    };
                zone.records.push((name.to_lowercase(), data));
            }
            "--ttl" => {
                zone.ttl = value
                    .parse()
                    .unwrap_or_else(|_| fail(&format!("--ttl {value}: not a number of seconds")));
            }
            "--log" => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&value)
                    .unwrap_or_else(|e| fail(&format!("--log {value}: {e}")));
                zone.log = Some(Mutex::new(file));
            }
            _ => fail(&format!("unknown option {flag}")),
        }
    }
    let listen = listen.unwrap_or_else(|| fail("--listen ADDRESS:PORT is required"));
    (listen, zone)
}

fn fail(message: &str) -> ! {
    eprintln!(
        "sandtrace-test-dns: {message}\nusage: sandtrace-test-dns --listen ADDR:PORT \
         [--record NAME=ADDRESS]... [--ttl SECS] [--log FILE]  (a helper of sandtrace's tests)"
    );
    std::process::exit(2);
}
