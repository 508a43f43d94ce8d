//! The JSONL event log end to end, without root or BPF: raw kernel records of every kind,
//! built here as the kernel programs build them, go through the real writer (`EventLog` and
//! its thread) into a file, and the real reader (`report::log`) must give back every field.
//! The binary capture (`--record`) of the same records must read back as the same lines.
//! The recorded golden logs (tests/golden) must read back into the schema byte for byte.

mod common;

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
    time::{Duration, UNIX_EPOCH},
};

use sandtrace::{
    dns::{Decision, DnsQuery, ObservedQuery, ResolvedNames, Response, Transport},
    events::{self, Clock},
    output::{
        Approximated, FileRules, Labels, RuleLabel,
        capture::{self, CaptureFormat},
        event_log::{EventLog, LogFormat},
        jsonl::{
            JsonlFormat,
            schema::{ApproximatedLine, SocketAddressLine, SocketLine},
        },
        network::NetworkRules,
        summary::{DnsSummary, Ending, RunAs, RunResult, Summary, Tally},
    },
    policy::{CliOverrides, parse::parse, resolve},
    report::{
        Report,
        log::{
            self, DenialCounts, DnsLine, FileLine, Line, LogProblem, NetworkLine, ProcessChange,
            ProcessLine, RawArgs, RuleLine, SeccompLine, SummaryLine, SyscallCountLine,
            SyscallLine,
        },
    },
};
use sandtrace_common::{
    event::{
        COMM_LEN, EXEC_ARGV_CAP, EXEC_PATH_CAP, EventHeader, EventKind, ExecEvent, ExitEvent,
        FileEvent, ForkEvent, ForkRefusedEvent, SYSCALL_DENIED, SYSCALL_HAS_PATH, SYSCALL_LOG_ONLY,
        SYSCALL_NO_ENTRY, SYSCALL_NO_RETURN, SYSCALL_PATH_CAP, SYSCALL_PATH_TRUNCATED,
        SeccompKillEvent, SyscallEvent, SyscallPathEvent, X32_SYSCALL_BIT,
    },
    file::{EVENT_PATH_CAP, FileOp, Verdict},
    network::{
        NET_LIST_BIND, NET_LIST_CONNECT, NET_LIST_HOSTS, NO_HOST_NAME, NO_NET_RULE, NetOp,
        NetVerdict, NetworkEvent, SOCKADDR_CAP, SocketEvent, SocketOp,
    },
    policy::{
        KIND_COUNT, KIND_EXEC, KIND_INDEX_DENY, KIND_INDEX_EXEC, KIND_READ, KIND_WRITE, NO_RULE,
        RULE_REGIME_SHIFT,
    },
};

use common::Scratch;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AF_INET: u16 = 2;
const AF_PACKET: u16 = 17;
const SOCK_STREAM: u16 = 1;
const SOCK_DGRAM: u16 = 2;
const SOCK_RAW: u16 = 3;
const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;

/// The bytes of a `repr(C)` record, as the ring buffer delivers them.
fn bytes_of<T: Copy>(record: &T) -> Vec<u8> {
    // SAFETY: the kernel record types are plain `repr(C)` data, read here as bytes.
    unsafe { std::slice::from_raw_parts((record as *const T).cast::<u8>(), size_of::<T>()) }
        .to_vec()
}

fn text<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out[..bytes.len()].copy_from_slice(bytes);
    out
}

/// Every record is by one task at a time `ts_ns` after boot (as `bpf_ktime_get_ns` counts).
struct Records {
    records: Vec<Vec<u8>>,
    ts_ns: u64,
}

impl Records {
    fn header(&mut self, kind: EventKind, pid: u32, tgid: u32, comm: &[u8]) -> EventHeader {
        // Steps that cross microseconds, seconds and (once) nothing.
        self.ts_ns += 1_234_567_891;
        EventHeader {
            kind: kind as u32,
            pid,
            tgid,
            _pad: 0,
            ts_ns: self.ts_ns,
            comm: text::<COMM_LEN>(comm),
        }
    }

    fn push<T: Copy>(&mut self, record: &T) {
        self.records.push(bytes_of(record));
    }
}

fn syscall(header: EventHeader, nr: u32, flags: u32, ret: i64, duration_ns: u64) -> SyscallEvent {
    SyscallEvent {
        header,
        nr,
        flags,
        args: [3, 0x7ffd_1234_5678, u64::MAX, 0, 1 << 40, 42],
        ret,
        duration_ns,
    }
}

fn file_event(
    header: EventHeader,
    op: FileOp,
    needed: u16,
    verdict: Verdict,
    rule: Option<(usize, u16)>,
    path: &[u8],
) -> FileEvent {
    FileEvent {
        header,
        op: op as u32,
        needed,
        verdict: verdict as u16,
        rule_kind: rule.map_or(0, |(kind, _)| kind as u16),
        rule_index: rule.map_or(NO_RULE, |(_, index)| index),
        path_len: path.len() as u32,
        path: text::<EVENT_PATH_CAP>(path),
    }
}

/// The kernel's IPv6 form of an IPv4 address (`::ffff:a.b.c.d`), four network-order words.
fn v4_words(addr: Ipv4Addr) -> [u32; 4] {
    let octets = addr.to_ipv6_mapped().octets();
    std::array::from_fn(|i| u32::from_ne_bytes(octets[i * 4..i * 4 + 4].try_into().unwrap()))
}

fn network_event(
    header: EventHeader,
    op: NetOp,
    verdict: NetVerdict,
    (family, sock_type, protocol): (u16, u16, u16),
    (rule_list, rule): (u16, u16),
    addr: (Ipv4Addr, u16),
    peer: (Ipv4Addr, u16),
) -> NetworkEvent {
    NetworkEvent {
        header,
        op: op as u16,
        verdict: verdict as u16,
        family,
        sock_type,
        protocol,
        rule_list,
        rule,
        port: addr.1,
        peer_port: peer.1,
        regime: 0,
        name: NO_HOST_NAME,
        addr: v4_words(addr.0),
        peer: if peer.0.is_unspecified() {
            [0; 4]
        } else {
            v4_words(peer.0)
        },
    }
}

/// A `sockaddr_in`, as the caller passes it.
fn sockaddr_in(ip: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut b = AF_INET.to_ne_bytes().to_vec();
    b.extend(port.to_be_bytes());
    b.extend(ip.octets());
    b.extend([0; 8]);
    b
}

/// A socket call's record, as `sockets.rs` sends it: `socket(AF_INET, SOCK_STREAM |
/// SOCK_CLOEXEC, 0)` for `SocketOp::Socket`, else a call on `fd` with `addr`.
fn socket_event(header: EventHeader, op: SocketOp, fd: i32, ret: i64, addr: &[u8]) -> SocketEvent {
    let socket = op == SocketOp::Socket;
    let mut bytes = [0; SOCKADDR_CAP];
    bytes[..addr.len()].copy_from_slice(addr);
    SocketEvent {
        header,
        op: op as u16,
        addr_copied: addr.len() as u16,
        addr_len: addr.len() as u32,
        fd,
        domain: if socket { u32::from(AF_INET) } else { 0 },
        ret,
        sock_type: if socket {
            u32::from(SOCK_STREAM) | 0o2_000_000
        } else {
            0
        },
        protocol: 0,
        addr: bytes,
    }
}

/// One record of every kind the kernel programs send, and of every flag and optional field
/// the log shows.
fn kernel_records() -> Vec<Vec<u8>> {
    let mut r = Records {
        records: Vec::new(),
        ts_ns: 5_000_000_000,
    };
    // A plain syscall: read(3, ...) = 5 after 2.5 µs.
    let h = r.header(EventKind::Syscall, 100, 100, b"python3");
    r.push(&syscall(h, 0, 0, 5, 2_500));
    // A path syscall the seccomp filter refused: no entry record, EPERM.
    let h = r.header(EventKind::SyscallPath, 101, 100, b"worker");
    r.push(&SyscallPathEvent {
        syscall: syscall(
            h,
            257,
            SYSCALL_HAS_PATH | SYSCALL_DENIED | SYSCALL_NO_ENTRY,
            -1,
            0,
        ),
        path: text::<SYSCALL_PATH_CAP>(b"/etc/shadow"),
    });
    // A log_only syscall whose path was cut, failing with ENOENT; the comm fills its 16
    // bytes without a NUL, and the path has bytes that are not UTF-8 and need escaping.
    let h = r.header(EventKind::SyscallPath, 100, 100, b"sixteen-chars-xx");
    let mut long_path = b"/tmp/\"q\"\\\xff/".to_vec();
    long_path.resize(SYSCALL_PATH_CAP - 1, b'a');
    r.push(&SyscallPathEvent {
        syscall: syscall(
            h,
            87,
            SYSCALL_HAS_PATH | SYSCALL_PATH_TRUNCATED | SYSCALL_LOG_ONLY,
            -2,
            1_999,
        ),
        path: text::<SYSCALL_PATH_CAP>(&long_path),
    });
    // A path syscall whose path could not be read: the flag is clear.
    let h = r.header(EventKind::SyscallPath, 100, 100, b"python3");
    r.push(&SyscallPathEvent {
        syscall: syscall(h, 4, 0, -14, 700),
        path: [0; SYSCALL_PATH_CAP],
    });
    // exit_group: neither a return value nor a duration.
    let h = r.header(EventKind::Syscall, 100, 100, b"python3");
    r.push(&syscall(h, 231, SYSCALL_NO_RETURN, 0, 0));
    // A number outside the syscall table.
    let h = r.header(EventKind::Syscall, 100, 100, b"python3");
    r.push(&syscall(h, 4000, 0, -38, 1_000));

    // A new process, a new thread, an exec by that thread, exits.
    let h = r.header(EventKind::Fork, 100, 100, b"python3");
    r.push(&ForkEvent {
        header: h,
        child_pid: 102,
        child_tgid: 102,
    });
    let h = r.header(EventKind::Fork, 102, 102, b"python3");
    r.push(&ForkEvent {
        header: h,
        child_pid: 103,
        child_tgid: 102,
    });
    let h = r.header(EventKind::Exec, 102, 102, b"sh");
    r.push(&ExecEvent {
        header: h,
        old_pid: 103,
        filename_len: 7,
        // In the first `[[after_exec]]` regime from here on.
        regimes: 1,
        uid: 1000,
        gid: 1000,
        argv_len: 20,
        argv_total: 20,
        cwd_len: 9,
        interpreter_len: 7,
        filename: text::<EXEC_PATH_CAP>(b"./run.sh"),
        interpreter: text::<EXEC_PATH_CAP>(b"/bin/sh"),
        argv: text::<EXEC_ARGV_CAP>(b"/bin/sh\0./run.sh\0-q\0"),
        cwd: text::<EVENT_PATH_CAP>(b"/work/app"),
    });
    let h = r.header(EventKind::Exit, 102, 102, b"sh");
    r.push(&ExitEvent {
        header: h,
        exit_code: 3 << 8,
        _pad: 0,
    });
    let h = r.header(EventKind::Exit, 101, 100, b"worker");
    r.push(&ExitEvent {
        header: h,
        exit_code: libc::SIGKILL as u32,
        _pad: 0,
    });
    let h = r.header(EventKind::ForkRefused, 100, 100, b"python3");
    r.push(&ForkRefusedEvent {
        header: h,
        nr: 56,
        errno: libc::EAGAIN as u32,
    });

    // File decisions: a deny rule, an allow rule, an unlisted path.
    let h = r.header(EventKind::File, 100, 100, b"python3");
    r.push(&file_event(
        h,
        FileOp::Open,
        KIND_READ,
        Verdict::DeniedRule,
        Some((KIND_INDEX_DENY, 0)),
        b"/etc/shadow",
    ));
    let h = r.header(EventKind::File, 100, 100, b"python3");
    r.push(&file_event(
        h,
        FileOp::Exec,
        KIND_READ | KIND_EXEC,
        Verdict::Allowed,
        Some((KIND_INDEX_EXEC, 0)),
        b"/usr/bin/env",
    ));
    let h = r.header(EventKind::File, 100, 100, b"python3");
    r.push(&file_event(
        h,
        FileOp::RenameTo,
        KIND_WRITE,
        Verdict::DeniedUnlisted,
        None,
        b"/home/u/\xc3\xa9t\xc3\xa9",
    ));
    // A deny rule of the first regime.
    let h = r.header(EventKind::File, 102, 102, b"sh");
    r.push(&file_event(
        h,
        FileOp::Open,
        KIND_READ,
        Verdict::DeniedRule,
        Some(((1 << RULE_REGIME_SHIFT) | KIND_INDEX_DENY, 0)),
        b"/home/u/.npmrc",
    ));

    // Network decisions: a connect a rule allowed, a packet received without an allowed
    // bind (from packet processing: pid 0, no comm), a socket family refused.
    let h = r.header(EventKind::Network, 100, 100, b"python3");
    r.push(&network_event(
        h,
        NetOp::Connect,
        NetVerdict::Allowed,
        (AF_INET, SOCK_STREAM, IPPROTO_TCP),
        (NET_LIST_CONNECT, 0),
        (Ipv4Addr::LOCALHOST, 80),
        (Ipv4Addr::UNSPECIFIED, 0),
    ));
    let h = r.header(EventKind::Network, 0, 0, b"");
    r.push(&network_event(
        h,
        NetOp::Receive,
        NetVerdict::DeniedNoRule,
        (AF_INET, SOCK_STREAM, IPPROTO_TCP),
        (NET_LIST_BIND, NO_NET_RULE),
        (Ipv4Addr::UNSPECIFIED, 40_123),
        (Ipv4Addr::new(127, 0, 0, 1), 51_234),
    ));
    // A connect to an address the session's resolver handed out for registry.test (name
    // id 1), and a DNS query the kernel sent to the session's resolver.
    let h = r.header(EventKind::Network, 100, 100, b"python3");
    r.push(&NetworkEvent {
        name: 1,
        ..network_event(
            h,
            NetOp::Connect,
            NetVerdict::Allowed,
            (AF_INET, SOCK_STREAM, IPPROTO_TCP),
            (NET_LIST_HOSTS, 0),
            (Ipv4Addr::new(127, 0, 0, 2), 443),
            (Ipv4Addr::UNSPECIFIED, 0),
        )
    });
    let h = r.header(EventKind::Network, 100, 100, b"python3");
    r.push(&network_event(
        h,
        NetOp::Send,
        NetVerdict::RedirectedDns,
        (AF_INET, SOCK_DGRAM, IPPROTO_UDP),
        (NET_LIST_CONNECT, NO_NET_RULE),
        (Ipv4Addr::new(8, 8, 8, 8), 53),
        (Ipv4Addr::UNSPECIFIED, 0),
    ));
    let h = r.header(EventKind::Network, 100, 100, b"python3");
    r.push(&network_event(
        h,
        NetOp::Socket,
        NetVerdict::DeniedFamily,
        (AF_PACKET, SOCK_RAW, 0),
        (NET_LIST_CONNECT, NO_NET_RULE),
        (Ipv4Addr::UNSPECIFIED, 0),
        (Ipv4Addr::UNSPECIFIED, 0),
    ));

    // Socket calls: a TCP listener bound, listening and accepting (socket's type flags
    // masked), a connect to an address the resolver handed out on a socket the log never saw
    // created, a send to an abstract UNIX socket, and an address that could not be read.
    for (op, fd, ret, addr) in [
        (SocketOp::Socket, -1, 3, &[][..]),
        (
            SocketOp::Bind,
            3,
            0,
            &sockaddr_in(Ipv4Addr::LOCALHOST, 8080)[..],
        ),
        (SocketOp::Listen, 3, 0, &[][..]),
        (
            SocketOp::Accept,
            3,
            4,
            &sockaddr_in(Ipv4Addr::new(127, 0, 0, 2), 5000)[..],
        ),
        (
            SocketOp::Connect,
            5,
            -115,
            &sockaddr_in(Ipv4Addr::new(127, 0, 0, 2), 443)[..],
        ),
        (SocketOp::Send, 6, 3, &b"\x01\x00\0log"[..]),
    ] {
        let h = r.header(EventKind::Socket, 100, 100, b"python3");
        r.push(&socket_event(h, op, fd, ret, addr));
    }
    let h = r.header(EventKind::Socket, 100, 100, b"python3");
    r.push(&SocketEvent {
        addr_len: 16,
        ..socket_event(h, SocketOp::Connect, 7, -14, &[])
    });

    // Foreign-ABI kills: x32 uname (named), i386 execve (not).
    let h = r.header(EventKind::SeccompKill, 104, 104, b"x32prog");
    r.push(&SeccompKillEvent {
        header: h,
        nr: X32_SYSCALL_BIT | 63,
        arch: AUDIT_ARCH_X86_64,
    });
    let h = r.header(EventKind::SeccompKill, 105, 105, b"i386prog");
    r.push(&SeccompKillEvent {
        header: h,
        nr: 11,
        arch: AUDIT_ARCH_I386,
    });
    r.records
}

/// File rules labelled as a policy file labels them, and the network rules of a policy.
fn labels() -> Labels {
    let rule = |kind, pattern: &str, source: &str| RuleLabel {
        kind,
        pattern: pattern.to_owned(),
        source: source.to_owned(),
    };
    let mut file_rules = FileRules::default();
    file_rules.by_kind[KIND_INDEX_DENY] = vec![rule("deny", "/etc/shadow", "policy.toml:9:9")];
    file_rules.by_kind[KIND_INDEX_EXEC] = vec![rule("allow_exec", "/usr/bin/*", "--allow-exec")];
    let mut scripts: [Vec<RuleLabel>; KIND_COUNT] = Default::default();
    scripts[KIND_INDEX_DENY] = vec![rule("deny", "~/.npmrc", "policy.toml:20:9")];
    file_rules.regimes.push(scripts);
    let policy = parse(
        Path::new("policy.toml"),
        "[network]\nallow = false\nallow_connect = [\"127.0.0.1:80\"]\n\
         allow_hosts = [\"registry.test:443\"]\n"
            .to_owned(),
    )
    .expect("the test policy parses");
    let effective = resolve(&policy, &CliOverrides::default(), Path::new("/"), None)
        .expect("the test policy resolves");
    let names = ResolvedNames::default();
    assert_eq!(names.id("registry.test"), Some(1));
    names.handed_out(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 1);
    Labels {
        file_rules,
        network_rules: NetworkRules::for_policy(&effective),
        names,
        regime_names: vec![s("install scripts")],
    }
}

/// A query the session's resolver refused.
fn dns_query() -> DnsQuery {
    DnsQuery {
        time: UNIX_EPOCH + Duration::from_micros(1_795_039_999_123_456),
        transport: Transport::Udp,
        client: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_000),
        name: s("mzxw6ytb.evil.test"),
        query_type: s("TXT"),
        decision: Decision::Deny,
        response: Response::NxDomain,
        answers: vec![],
        ttl: None,
        rule: None,
        reason: s("no allow_hosts entry covers this name"),
    }
}

/// A query seen in the session's traffic (no resolver of the session's).
fn observed_query() -> ObservedQuery {
    ObservedQuery {
        time: UNIX_EPOCH + Duration::from_micros(1_795_039_999_223_456),
        transport: Transport::Udp,
        client: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 15)), 40_001),
        server: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 3)), 53),
        name: s("registry.npmjs.org"),
        query_type: s("A"),
        response: Some(s("NOERROR")),
        answers: vec![IpAddr::V4(Ipv4Addr::new(104, 16, 1, 34))],
        ttl: Some(300),
        reason: s("answered"),
    }
}

fn summary(records: &[Vec<u8>], clock: &Clock, unenforced: &[RuleLabel]) -> Summary {
    let approximated: Vec<Approximated> = unenforced
        .iter()
        .map(|rule| Approximated {
            rule: rule.clone(),
            how: s("carved out at start"),
        })
        .collect();
    let mut tally = Tally::default();
    for record in records {
        tally.observe(&events::decode(record, clock).expect("every test record decodes"));
    }
    tally.observe_dns(&dns_query());
    tally.observe_dns_traffic(&observed_query());
    let mut counts = vec![0u64; 512];
    counts[0] = 7;
    counts[257] = 2;
    counts[231] = 2;
    tally.finish(
        &counts,
        4,
        1,
        RunResult {
            duration: Duration::from_millis(2_345),
            exit_code: 137,
            signal: Some(9),
            ending: Ending::TimedOut,
            mode: "degraded",
            unenforced,
            approximated: &approximated,
            run_as: RunAs {
                uid: 65534,
                gid: 65534,
                groups: vec![65534],
                user: Some(s("nobody")),
                capabilities: vec![],
            },
            removed_environment: &[s("NPM_TOKEN")],
        },
    )
}

fn s(text: &str) -> String {
    text.to_owned()
}

fn rule(kind: &str, pattern: &str, source: &str) -> Option<RuleLine> {
    Some(RuleLine {
        kind: s(kind),
        pattern: s(pattern),
        source: s(source),
    })
}

/// A successful call's line on an IPv4 TCP socket of python3 (pid 100) with `address`; the
/// caller sets the operation, fd and what differs.
fn tcp_line(address: SocketAddressLine) -> SocketLine {
    SocketLine {
        timestamp: String::new(),
        pid: 100,
        tgid: 100,
        comm: s("python3"),
        operation: String::new(),
        fd: None,
        family: Some(s("ipv4")),
        socket_type: Some(s("stream")),
        protocol: Some(s("tcp")),
        netlink_family: None,
        address,
        address_unreadable: false,
        host: None,
        local: None,
        return_value: 0,
        success: true,
        errno: None,
    }
}

fn socket_line(timestamp: String, operation: &str, fd: Option<i32>, line: SocketLine) -> Line {
    Line::Socket(SocketLine {
        timestamp,
        operation: s(operation),
        fd,
        ..line
    })
}

fn inet(address: &str, port: u16) -> SocketAddressLine {
    SocketAddressLine {
        address: Some(s(address)),
        port: Some(port),
        ..SocketAddressLine::default()
    }
}

/// What the reader must give back for `kernel_records()`, every field spelled out; the
/// timestamps (which depend on the boot time) come from `timestamps`.
fn expected_lines(timestamps: &[String]) -> Vec<Line> {
    let mut t = timestamps.iter().cloned();
    let mut t = move || t.next().expect("a timestamp per record");
    let args = RawArgs {
        raw: [3, 0x7ffd_1234_5678, u64::MAX, 0, 1 << 40, 42],
    };
    let mut cut_path = s("/tmp/\"q\"\\\u{FFFD}/");
    cut_path.push_str(&"a".repeat(SYSCALL_PATH_CAP - 1 - 11));
    let process = |timestamp, pid, tgid, comm: &str, change| {
        Line::Process(ProcessLine {
            timestamp,
            pid,
            tgid,
            comm: s(comm),
            change,
        })
    };
    vec![
        Line::Syscall(SyscallLine {
            timestamp: t(),
            pid: 100,
            tgid: 100,
            comm: s("python3"),
            syscall: s("read"),
            syscall_nr: 0,
            args: args.clone(),
            path: None,
            path_truncated: false,
            return_value: Some(5),
            success: true,
            errno: None,
            duration_us: Some(2),
            action: s("allow"),
            category: s("file_read"),
        }),
        Line::Syscall(SyscallLine {
            timestamp: t(),
            pid: 101,
            tgid: 100,
            comm: s("worker"),
            syscall: s("openat"),
            syscall_nr: 257,
            args: args.clone(),
            path: Some(s("/etc/shadow")),
            path_truncated: false,
            return_value: Some(-1),
            success: false,
            errno: Some(s("EPERM")),
            duration_us: None,
            action: s("deny"),
            category: s("file_read"),
        }),
        Line::Syscall(SyscallLine {
            timestamp: t(),
            pid: 100,
            tgid: 100,
            comm: s("sixteen-chars-xx"),
            syscall: s("unlink"),
            syscall_nr: 87,
            args: args.clone(),
            path: Some(cut_path),
            path_truncated: true,
            return_value: Some(-2),
            success: false,
            errno: Some(s("ENOENT")),
            duration_us: Some(1),
            action: s("log_only"),
            category: s("file_write"),
        }),
        Line::Syscall(SyscallLine {
            timestamp: t(),
            pid: 100,
            tgid: 100,
            comm: s("python3"),
            syscall: s("stat"),
            syscall_nr: 4,
            args: args.clone(),
            path: None,
            path_truncated: false,
            return_value: Some(-14),
            success: false,
            errno: Some(s("EFAULT")),
            duration_us: Some(0),
            action: s("allow"),
            category: s("file_read"),
        }),
        Line::Syscall(SyscallLine {
            timestamp: t(),
            pid: 100,
            tgid: 100,
            comm: s("python3"),
            syscall: s("exit_group"),
            syscall_nr: 231,
            args: args.clone(),
            path: None,
            path_truncated: false,
            return_value: None,
            success: true,
            errno: None,
            duration_us: None,
            action: s("allow"),
            category: s("process"),
        }),
        Line::Syscall(SyscallLine {
            timestamp: t(),
            pid: 100,
            tgid: 100,
            comm: s("python3"),
            syscall: s("unknown"),
            syscall_nr: 4000,
            args,
            path: None,
            path_truncated: false,
            return_value: Some(-38),
            success: false,
            errno: Some(s("ENOSYS")),
            duration_us: Some(1),
            action: s("allow"),
            category: s("other"),
        }),
        process(
            t(),
            100,
            100,
            "python3",
            ProcessChange::Fork {
                child_pid: 102,
                child_tgid: 102,
            },
        ),
        process(
            t(),
            102,
            102,
            "python3",
            ProcessChange::Fork {
                child_pid: 103,
                child_tgid: 102,
            },
        ),
        process(
            t(),
            102,
            102,
            "sh",
            ProcessChange::Exec {
                path: s("./run.sh"),
                old_pid: 103,
                interpreter: Some(s("/bin/sh")),
                argv: vec![s("/bin/sh"), s("./run.sh"), s("-q")],
                argv_truncated: false,
                cwd: Some(s("/work/app")),
                uid: Some(1000),
                gid: Some(1000),
                regimes: vec![s("install scripts")],
            },
        ),
        process(
            t(),
            102,
            102,
            "sh",
            ProcessChange::Exited {
                exit_code: 3,
                signal: None,
            },
        ),
        process(
            t(),
            101,
            100,
            "worker",
            ProcessChange::Exited {
                exit_code: 137,
                signal: Some(9),
            },
        ),
        process(
            t(),
            100,
            100,
            "python3",
            ProcessChange::ForkRefused {
                syscall: s("clone"),
                errno: s("EAGAIN"),
                reason: s("max_processes reached (or another process limit)"),
            },
        ),
        Line::File(FileLine {
            timestamp: t(),
            pid: 100,
            tgid: 100,
            comm: s("python3"),
            action: s("deny"),
            operation: s("open"),
            access: vec![s("read")],
            path: s("/etc/shadow"),
            reason: s("denied by rule"),
            rule: rule("deny", "/etc/shadow", "policy.toml:9:9"),
            regime: None,
        }),
        Line::File(FileLine {
            timestamp: t(),
            pid: 100,
            tgid: 100,
            comm: s("python3"),
            action: s("allow"),
            operation: s("exec"),
            access: vec![s("read"), s("exec")],
            path: s("/usr/bin/env"),
            reason: s("allowed"),
            rule: rule("allow_exec", "/usr/bin/*", "--allow-exec"),
            regime: None,
        }),
        Line::File(FileLine {
            timestamp: t(),
            pid: 100,
            tgid: 100,
            comm: s("python3"),
            action: s("deny"),
            operation: s("rename_to"),
            access: vec![s("write")],
            path: s("/home/u/été"),
            reason: s("denied: no allow rule covers it"),
            rule: None,
            regime: None,
        }),
        Line::File(FileLine {
            timestamp: t(),
            pid: 102,
            tgid: 102,
            comm: s("sh"),
            action: s("deny"),
            operation: s("open"),
            access: vec![s("read")],
            path: s("/home/u/.npmrc"),
            reason: s("denied by rule"),
            rule: rule("deny", "~/.npmrc", "policy.toml:20:9"),
            regime: Some(s("install scripts")),
        }),
        Line::Network(NetworkLine {
            timestamp: t(),
            pid: 100,
            tgid: 100,
            comm: s("python3"),
            action: s("allow"),
            operation: s("connect"),
            family: s("ipv4"),
            socket_type: s("stream"),
            protocol: s("tcp"),
            address: Some(s("127.0.0.1")),
            port: Some(80),
            host: None,
            peer_address: None,
            peer_port: None,
            reason: s("allowed by rule"),
            rule: rule("allow_connect", "127.0.0.1:80", "policy.toml:3:18"),
            regime: None,
        }),
        Line::Network(NetworkLine {
            timestamp: t(),
            pid: 0,
            tgid: 0,
            comm: s(""),
            action: s("deny"),
            operation: s("receive"),
            family: s("ipv4"),
            socket_type: s("stream"),
            protocol: s("tcp"),
            address: Some(s("0.0.0.0")),
            port: Some(40_123),
            host: None,
            peer_address: Some(s("127.0.0.1")),
            peer_port: Some(51_234),
            reason: s(
                "receiving on an address no allow_bind rule covers (listen or receive without \
                 an allowed bind)",
            ),
            rule: None,
            regime: None,
        }),
        Line::Network(NetworkLine {
            timestamp: t(),
            pid: 100,
            tgid: 100,
            comm: s("python3"),
            action: s("allow"),
            operation: s("connect"),
            family: s("ipv4"),
            socket_type: s("stream"),
            protocol: s("tcp"),
            address: Some(s("127.0.0.2")),
            port: Some(443),
            host: Some(s("registry.test")),
            peer_address: None,
            peer_port: None,
            reason: s("the session's resolver handed this address out for a name the rule covers"),
            rule: rule("allow_hosts", "registry.test:443", "policy.toml:4:16"),
            regime: None,
        }),
        Line::Network(NetworkLine {
            timestamp: t(),
            pid: 100,
            tgid: 100,
            comm: s("python3"),
            action: s("redirect"),
            operation: s("send"),
            family: s("ipv4"),
            socket_type: s("dgram"),
            protocol: s("udp"),
            address: Some(s("8.8.8.8")),
            port: Some(53),
            host: None,
            peer_address: None,
            peer_port: None,
            reason: s(
                "sent to the session's resolver instead, as every DNS query is; its dns event \
                 says what it answered",
            ),
            rule: None,
            regime: None,
        }),
        Line::Network(NetworkLine {
            timestamp: t(),
            pid: 100,
            tgid: 100,
            comm: s("python3"),
            action: s("deny"),
            operation: s("socket"),
            family: s("packet"),
            socket_type: s("raw"),
            protocol: s("raw"),
            address: None,
            port: None,
            host: None,
            peer_address: None,
            peer_port: None,
            reason: s(
                "this socket family reaches the network and is refused while it is restricted",
            ),
            rule: None,
            regime: None,
        }),
        socket_line(
            t(),
            "socket",
            Some(3),
            SocketLine {
                return_value: 3,
                ..tcp_line(SocketAddressLine::default())
            },
        ),
        socket_line(t(), "bind", Some(3), tcp_line(inet("127.0.0.1", 8080))),
        socket_line(
            t(),
            "listen",
            Some(3),
            SocketLine {
                local: Some(inet("127.0.0.1", 8080)),
                ..tcp_line(SocketAddressLine::default())
            },
        ),
        socket_line(
            t(),
            "accept",
            Some(3),
            SocketLine {
                host: Some(s("registry.test")),
                local: Some(inet("127.0.0.1", 8080)),
                return_value: 4,
                ..tcp_line(inet("127.0.0.2", 5000))
            },
        ),
        socket_line(
            t(),
            "connect",
            Some(5),
            SocketLine {
                socket_type: None,
                protocol: None,
                host: Some(s("registry.test")),
                return_value: -115,
                success: false,
                errno: Some(s("EINPROGRESS")),
                ..tcp_line(inet("127.0.0.2", 443))
            },
        ),
        socket_line(
            t(),
            "send",
            Some(6),
            SocketLine {
                family: Some(s("unix")),
                socket_type: None,
                protocol: None,
                return_value: 3,
                ..tcp_line(SocketAddressLine {
                    abstract_name: Some(s("log")),
                    ..SocketAddressLine::default()
                })
            },
        ),
        socket_line(
            t(),
            "connect",
            Some(7),
            SocketLine {
                family: None,
                socket_type: None,
                protocol: None,
                address_unreadable: true,
                return_value: -14,
                success: false,
                errno: Some(s("EFAULT")),
                ..tcp_line(SocketAddressLine::default())
            },
        ),
        Line::Seccomp(SeccompLine {
            timestamp: t(),
            pid: 104,
            tgid: 104,
            comm: s("x32prog"),
            action: s("kill"),
            abi: s("x32"),
            syscall_nr: X32_SYSCALL_BIT | 63,
            syscall: Some(s("uname")),
            reason: s(
                "syscalls through a foreign ABI (x32, i386) could reach denied syscalls under \
                 other numbers",
            ),
        }),
        Line::Seccomp(SeccompLine {
            timestamp: t(),
            pid: 105,
            tgid: 105,
            comm: s("i386prog"),
            action: s("kill"),
            abi: s("i386"),
            syscall_nr: 11,
            syscall: None,
            reason: s(
                "syscalls through a foreign ABI (x32, i386) could reach denied syscalls under \
                 other numbers",
            ),
        }),
        Line::Dns(DnsLine {
            timestamp: s("2026-11-18T22:13:19.123456Z"),
            transport: s("udp"),
            client: s("127.0.0.1:40000"),
            server: None,
            name: s("mzxw6ytb.evil.test"),
            query_type: s("TXT"),
            action: s("deny"),
            response: s("NXDOMAIN"),
            answers: vec![],
            ttl: None,
            rule: None,
            reason: s("no allow_hosts entry covers this name"),
        }),
        Line::Dns(DnsLine {
            timestamp: s("2026-11-18T22:13:19.223456Z"),
            transport: s("udp"),
            client: s("10.0.2.15:40001"),
            server: Some(s("10.0.2.3:53")),
            name: s("registry.npmjs.org"),
            query_type: s("A"),
            action: s("observed"),
            response: s("NOERROR"),
            answers: vec![s("104.16.1.34")],
            ttl: Some(300),
            rule: None,
            reason: s("answered"),
        }),
        Line::Summary(SummaryLine {
            total_syscalls: 11,
            unique_syscalls: 3,
            denied_count: 9,
            denials: DenialCounts {
                files: 3,
                network: 2,
                syscalls: 3,
                processes: 1,
            },
            log_only_count: 1,
            // CMD, plus the one new process (the other fork is a thread).
            process_count: 2,
            duration_ms: 2_345,
            exit_code: 137,
            // The ring buffer's 4, plus none undecodable.
            lost_events: 4,
            incomplete_events: 1,
            ending: s("timed_out"),
            signal: Some(9),
            mode: s("degraded"),
            unenforced: vec![RuleLine {
                kind: s("allow_read"),
                pattern: s("/usr/**"),
                source: s("policy.toml:2:15"),
            }],
            approximated: vec![ApproximatedLine {
                rule: RuleLine {
                    kind: s("allow_read"),
                    pattern: s("/usr/**"),
                    source: s("policy.toml:2:15"),
                },
                how: s("carved out at start"),
            }],
            run_as: Some(RunAs {
                uid: 65534,
                gid: 65534,
                groups: vec![65534],
                user: Some(s("nobody")),
                capabilities: vec![],
            }),
            removed_environment: Some(vec![s("NPM_TOKEN")]),
            dns: Some(DnsSummary {
                answered: 0,
                refused: 1,
                refused_names: vec![s("mzxw6ytb.evil.test")],
                observed: 1,
                observed_names: vec![s("registry.npmjs.org")],
            }),
            syscall_counts: vec![
                SyscallCountLine {
                    syscall: s("read"),
                    count: 7,
                },
                SyscallCountLine {
                    syscall: s("exit_group"),
                    count: 2,
                },
                SyscallCountLine {
                    syscall: s("openat"),
                    count: 2,
                },
            ],
        }),
    ]
}

#[test]
fn every_event_kind_reads_back_as_written() {
    let scratch = Scratch::new("event-log-round-trip");
    let path = scratch.path("events.jsonl");
    let clock = Clock::new();
    let records = kernel_records();

    // Every kind of record the kernel programs send is here.
    let mut kinds: Vec<u32> = records
        .iter()
        .map(|r| u32::from_ne_bytes(r[..4].try_into().unwrap()))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    // DNS packets never reach the log as records: the loader decodes them into the `dns`
    // lines (an observed one is among the lines below).
    let all: Vec<u32> = (1..)
        .map_while(EventKind::from_u32)
        .filter(|&k| k != EventKind::DnsPacket)
        .map(|k| k as u32)
        .collect();
    assert_eq!(kinds, all, "a record of every EventKind");

    let unenforced = [RuleLabel {
        kind: "allow_read",
        pattern: "/usr/**".to_owned(),
        source: "policy.toml:2:15".to_owned(),
    }];
    let summary = summary(&records, &clock, &unenforced);
    let write = |path: &Path, format: Box<dyn LogFormat>, labels: &Labels| {
        let mut log = EventLog::create(path, format).expect("the log is created");
        for (i, record) in records.iter().enumerate() {
            log.append(record);
            // Some records handed over alone, the rest in batches, as the draining thread does.
            if i % 3 == 0 {
                log.hand_over();
            }
        }
        log.append_dns(&sandtrace::output::dns::line(&dns_query(), labels));
        log.append_dns(&sandtrace::output::dns::observed_line(&observed_query()));
        log.finish(&summary).expect("the log is written");
    };
    let jsonl_labels = labels();
    write(
        &path,
        Box::new(JsonlFormat::new(clock, jsonl_labels.clone())),
        &jsonl_labels,
    );
    let capture_path = scratch.path("events.cap");
    let capture_labels = labels();
    write(
        &capture_path,
        Box::new(CaptureFormat::new(clock, &capture_labels)),
        &capture_labels,
    );

    // The capture reads back as the log, and exports to it byte for byte.
    let exported = scratch.path("exported.jsonl");
    assert_eq!(
        capture::export(&capture_path, &exported).expect("the capture exports"),
        (records.len() as u64 + 3, false)
    );
    assert!(
        fs::read(&exported).unwrap() == fs::read(&path).unwrap(),
        "the exported capture differs from the JSONL log"
    );
    let (mut from_log, mut from_capture) = (Vec::new(), Vec::new());
    log::read(&path, |line| from_log.push(line)).unwrap();
    let capture_end =
        log::read(&capture_path, |line| from_capture.push(line)).expect("the capture reads back");
    assert_eq!(capture_end.problems, Vec::<LogProblem>::new());
    assert_eq!(from_capture, from_log);
    assert_eq!(
        Report::from_log(&capture_path).unwrap().to_text(),
        Report::from_log(&path).unwrap().to_text().replace(
            &path.display().to_string(),
            &capture_path.display().to_string()
        )
    );

    let mut lines = Vec::new();
    let end = log::read(&path, |line| lines.push(line)).expect("the log reads back");
    assert_eq!(end.problems, Vec::<LogProblem>::new());
    assert_eq!(
        end.lines,
        records.len() + 3,
        "a line per record, the dns lines, and the summary"
    );

    let timestamps: Vec<String> = records
        .iter()
        .map(|r| {
            let ts_ns = u64::from_ne_bytes(r[16..24].try_into().unwrap());
            humantime::format_rfc3339_micros(clock.wall(ts_ns)).to_string()
        })
        .collect();
    let expected = expected_lines(&timestamps);
    assert_eq!(lines.len(), expected.len());
    for (i, (line, expected)) in lines.iter().zip(&expected).enumerate() {
        assert_eq!(line, expected, "line {}", i + 1);
    }

    // Each line in the file is its schema line, byte for byte.
    let text = fs::read_to_string(&path).unwrap();
    for (written, expected) in text.lines().zip(&expected) {
        assert_eq!(written, serde_json::to_string(expected).unwrap());
    }

    // And `sandtrace report` makes sense of all of it.
    let report = Report::from_log(&path).expect("the report reads the log");
    assert!(report.complete);
    let kinds: Vec<&str> = report.denials.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        [
            "syscall",
            "fork",
            "file",
            "file",
            "file",
            "network",
            "network",
            "seccomp_kill",
            "seccomp_kill",
            "dns"
        ]
    );
    let text = report.to_text();
    for expected in [
        "connect ipv4 tcp registry.test (127.0.0.2:443): allowed 1×",
        "send ipv4 udp 8.8.8.8:53: sent to the session's resolver 1×",
        "dns: 0 queries answered, 1 refused",
        "refused: mzxw6ytb.evil.test",
        "dns: 1 queries seen in the session's traffic",
        "names: registry.npmjs.org",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} in the report:\n{text}"
        );
    }
    let dns = report.dns.expect("the report has the resolver's queries");
    assert_eq!((dns.answered, dns.refused), (0, 1));
    assert_eq!(dns.refused_names, ["mzxw6ytb.evil.test"]);
    assert!(
        report
            .network_decisions
            .iter()
            .any(|d| sandtrace::report::describe_network(d)
                == "connect ipv4 tcp registry.test (127.0.0.2:443)")
    );
    assert_eq!(report.run.ending.as_deref(), Some("timed_out"));
}

/// Logs recorded by real runs read back into the schema and write back to the same line.
/// `trace_only.jsonl` comes from a version whose summary lacked some of today's fields: they
/// read as their defaults, so only its event lines are compared.
#[test]
fn recorded_logs_are_schema_lines() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for (name, summary_as_written) in [("enforce.jsonl", true), ("trace_only.jsonl", false)] {
        let text = fs::read_to_string(golden.join(name)).unwrap();
        let mut kinds = std::collections::HashSet::new();
        for (i, written) in text.lines().enumerate() {
            let line = Line::parse(written)
                .unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1))
                .unwrap_or_else(|| panic!("{name}:{}: a known event type", i + 1));
            kinds.insert(std::mem::discriminant(&line));
            if matches!(line, Line::Summary(_)) && !summary_as_written {
                continue;
            }
            assert_eq!(
                serde_json::to_string(&line).unwrap(),
                written,
                "{name}:{}",
                i + 1
            );
        }
        assert!(kinds.len() >= 3, "{name} has several kinds of line");
    }
}

/// The README's example lines that are whole JSON (not elided with `,...,`) are schema lines
/// as the writer writes them: every field, in order.
#[test]
fn the_readme_examples_are_schema_lines() {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
        .expect("README.md is beside the workspace's crates");
    let mut checked = 0;
    for example in readme.lines().filter(|l| l.starts_with("{\"event_type\":")) {
        if serde_json::from_str::<serde_json::Value>(example).is_err() {
            // Elided: `{"event_type":"seccomp",...,"action":"kill",...}`.
            continue;
        }
        let line = Line::parse(example)
            .unwrap_or_else(|e| panic!("README example {example}: {e}"))
            .unwrap_or_else(|| panic!("README example {example}: a known event type"));
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            example,
            "the README example as the writer would write it"
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} whole examples in the README");
}
