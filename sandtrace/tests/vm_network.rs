//! Network, syscall and process-limit enforcement in enforcing mode, in kernels with BPF LSM.
//!
//! Compiled only with the `vm-tests` feature; `cargo xtask vm-test` runs it in QEMU (6.1 and
//! 6.12). The same probe as the host tests (`tests/probe`) runs as CMD; here sessions enforce
//! everything, and BPF LSM adds the `socket_create` check that covers io_uring's sockets, so
//! io_uring stays available. The guest is pure cgroup v2: `max_processes` uses the session
//! cgroup's own `pids.max`.

mod common;
mod probe;

use std::{
    fs,
    net::{SocketAddr, TcpStream},
    process::Stdio,
    time::{Duration, Instant},
};

use common::*;
use probe::{Expect, Servers, Session};
use serde_json::Value;

/// The probe is the test executable: it must be readable and executable. Nothing else about
/// files matters here.
const FILES: &str = "[filesystem]\nallow_read = [\"/\"]\nallow_exec = [\"/\"]\n";

fn policy(rest: &str) -> String {
    format!("{FILES}{rest}")
}

fn in_session(name: &str, rest: &str, ops: &[String], flags: &[&str]) -> Session {
    probe::loopback_up();
    let s = probe::in_session(name, &policy(rest), ops, flags);
    assert_eq!(summary(&s.events)["mode"], "enforce");
    s
}

fn network_events(events: &[Value]) -> Vec<&Value> {
    of_type(events, "network")
}

fn event_for<'a>(events: &'a [Value], operation: &str, address: &str, port: u16) -> &'a Value {
    network_events(events)
        .into_iter()
        .find(|e| e["operation"] == operation && e["address"] == address && e["port"] == port)
        .unwrap_or_else(|| {
            panic!(
                "no {operation} event for {address}:{port} among {:#?}",
                network_events(events)
            )
        })
}

fn mapped(addr: SocketAddr) -> SocketAddr {
    format!("[::ffff:{}]:{}", addr.ip(), addr.port())
        .parse()
        .unwrap()
}

const NETWORK_OFF: &str = "[network]\nallow = false\n";
const RAW_ICMP: &str = "socket 2 3 1";
const PACKET: &str = "socket 17 3 768";
const PACKET_VIA_IO_URING: &str = "io-uring-socket 17 3 768";
const PACKET_OLD_SPELLING: &str = "socket 2 10 768"; // AF_INET, SOCK_PACKET
const VSOCK: &str = "socket 40 1 0";

#[test]
fn network_off_refuses_every_way_out_including_io_uring() {
    probe::loopback_up();
    let servers = Servers::start();
    let (tcp, udp) = (servers.tcp, servers.udp);
    let ops = vec![
        format!("tcp-connect {tcp}"),
        format!("tcp-fastopen {tcp}"),
        format!("udp-send {udp}"),
        format!("udp-connect {udp}"),
        format!("tcp-connect {}", mapped(tcp)),
        format!("udp-send {}", mapped(udp)),
        RAW_ICMP.to_owned(),
        PACKET.to_owned(),
        "bind 127.0.0.1:0".to_owned(),
        format!("io-uring-connect {tcp}"),
        PACKET_VIA_IO_URING.to_owned(),
        PACKET_OLD_SPELLING.to_owned(),
        VSOCK.to_owned(),
    ];
    // Root with CAP_NET_RAW: without it the kernel refuses a raw socket before the session's
    // socket programs are asked.
    let s = in_session("vm-net-off", NETWORK_OFF, &ops, &["--as-root"]);
    for (op, got) in ops.iter().zip(&s.results) {
        assert_eq!(got, "EPERM", "inside the session: {op}");
    }
    assert_eq!(servers.tcp_accepted(0), 0, "a connection got through");
    assert_eq!(servers.udp_received(0), 0, "a datagram got through");

    let connects = network_events(&s.events)
        .into_iter()
        .filter(|e| {
            e["operation"] == "connect" && e["address"] == "127.0.0.1" && e["port"] == tcp.port()
        })
        .count();
    assert_eq!(connects, 3, "connect, TCP Fast Open and io_uring's connect");
    let mapped_connect = event_for(&s.events, "connect", "::ffff:127.0.0.1", tcp.port());
    assert_eq!(mapped_connect["reason"], "network disabled");
    event_for(&s.events, "send", "127.0.0.1", udp.port());
    event_for(&s.events, "bind", "127.0.0.1", 0);
    let families: Vec<&Value> = network_events(&s.events)
        .into_iter()
        .filter(|e| e["operation"] == "socket")
        .map(|e| &e["family"])
        .collect();
    for family in ["ipv4", "packet", "vsock"] {
        assert!(
            families.iter().any(|f| *f == family),
            "{family}: {families:?}"
        );
    }
    assert_eq!(
        families.iter().filter(|f| **f == "packet").count(),
        3,
        "socket(2) in both spellings (the seccomp baseline) and io_uring (socket_create)"
    );
    let summary = summary(&s.events);
    assert_eq!(summary["denials"]["network"], 13, "{summary}");

    // Outside the session the same calls go through.
    let outside_ops = &ops[..12];
    for (op, got) in outside_ops
        .iter()
        .zip(probe::outside(&outside_ops.join(";")))
    {
        assert_eq!(got, "ok", "outside the session: {op}");
    }
}

#[test]
fn allowed_network_and_allow_connect_rules() {
    probe::loopback_up();
    let servers = Servers::start();
    let (tcp, udp) = (servers.tcp, servers.udp);
    let ops = vec![
        format!("tcp-connect {tcp}"),
        format!("tcp-fastopen {tcp}"),
        format!("udp-send {udp}"),
        format!("tcp-connect {}", mapped(tcp)),
        format!("io-uring-connect {tcp}"),
        RAW_ICMP.to_owned(),
    ];
    // A raw ICMP socket needs CAP_NET_RAW.
    let s = in_session(
        "vm-net-on",
        "[network]\nallow = true\n",
        &ops,
        &["--as-root"],
    );
    for (op, got) in ops.iter().zip(&s.results) {
        assert_eq!(got, "ok", "{op}");
    }
    assert_eq!(servers.tcp_accepted(4), 4);
    assert_eq!(servers.udp_received(1), 1);

    let rules = format!(
        "[network]\nallow = false\nallow_connect = [\"127.0.0.1:{}\"]\n",
        tcp.port()
    );
    let s = in_session("vm-net-rules", &rules, &ops, &[]);
    let want = ["ok", "ok", "EPERM", "ok", "ok", "EPERM"];
    for ((op, got), want) in ops.iter().zip(&s.results).zip(want) {
        assert_eq!(got, want, "{op}");
    }
    let refused = event_for(&s.events, "send", "127.0.0.1", udp.port());
    assert_eq!(
        refused["reason"],
        "no allow_connect rule covers this address"
    );
}

#[test]
fn allow_hosts_network_sends_dns_of_every_form_to_the_session() {
    probe::loopback_up();
    // On a loopback address of its own, covered by allow_connect: only the redirect keeps
    // queries from these servers.
    let server = "127.8.5.3";
    let dns = Servers::bind(&format!("{server}:53"), &format!("{server}:53"));
    let tls = Servers::bind(&format!("{server}:853"), &format!("{server}:853"));
    let ops = vec![
        format!("udp-send [::ffff:{server}]:53"),
        format!("tcp-connect {server}:53"),
        format!("io-uring-connect {server}:53"),
        format!("tcp-connect [::ffff:{server}]:853"),
        format!("udp-send {server}:853"),
    ];
    let policy = format!(
        "[network]\nallow = false\nallow_connect = [\"{server}:*\"]\n\
         allow_hosts = [\"good.test\"]\n"
    );
    let s = in_session("vm-net-dns", &policy, &ops, &[]);
    // DNS over TLS, and over QUIC (UDP 853), is refused whatever allow_connect says.
    assert_eq!(s.results[3..], ["EPERM", "EPERM"], "{:?}", s.results);
    assert_eq!(
        dns.udp_received(0),
        0,
        "a UDP query reached the server it named"
    );
    assert_eq!(
        dns.tcp_accepted(0),
        0,
        "a TCP query reached the server it named"
    );
    assert_eq!(tls.tcp_accepted(0) + tls.udp_received(0), 0);
    // An IPv6 socket's send to an IPv4-mapped address reaches the IPv4 program.
    for operation in ["send", "connect"] {
        let redirected = event_for(&s.events, operation, server, 53);
        assert_ne!(redirected["action"], "deny", "{redirected}");
    }
}

#[test]
fn listening_without_bind_receives_nothing() {
    probe::loopback_up();
    let (result, events) = probe::with_announced_port(
        "vm-listen",
        &policy(NETWORK_OFF),
        "listen-unbound",
        &[],
        Expect::Nothing,
        |port| {
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            // The socket drops every SYN: the attempt times out.
            assert!(
                TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_err(),
                "reached a socket the session listens on without an allowed bind"
            );
        },
    );
    assert_eq!(result, "listen:ok nothing");
    assert!(
        network_events(&events)
            .iter()
            .any(|e| e["operation"] == "receive" && e["action"] == "deny"),
        "{events:#?}"
    );
}

#[test]
fn denied_syscalls_fail_and_the_x32_alias_kills() {
    let scratch = Scratch::new("vm-sys");
    let policy_file = scratch.path("policy.toml");
    fs::write(
        &policy_file,
        policy("[syscalls]\ndeny = [\"uname\", \"sysinfo\"]\nlog_only = [\"getppid\"]\n"),
    )
    .unwrap();
    let run_probe = |op: &str| {
        let mut args = vec![
            "run".to_owned(),
            "--policy".to_owned(),
            policy_file.to_str().unwrap().to_owned(),
            "--".to_owned(),
        ];
        args.extend(probe::command_line(op));
        sandtrace()
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run_probe("syscalls uname sysinfo reboot getppid");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        probe::results_of(&out).unwrap()[0],
        "uname=EPERM sysinfo=EPERM reboot=EPERM getppid=ok"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("log_only     1 calls"), "{stderr}");
    assert!(stderr.contains("denied       3 (syscalls 3)"), "{stderr}");

    let out = run_probe("x32 uname");
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGSYS),
        "{}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("killed by the seccomp filter: x32 syscall 1073741887 (uname)"),
        "{stderr}"
    );
}

#[test]
fn max_processes_uses_the_v2_pids_controller() {
    let scratch = Scratch::new("vm-pids");
    let policy_file = scratch.path("policy.toml");
    fs::write(&policy_file, policy("[limits]\nmax_processes = 6\n")).unwrap();
    let mut args = vec![
        "run".to_owned(),
        "--policy".to_owned(),
        policy_file.to_str().unwrap().to_owned(),
        "--".to_owned(),
    ];
    args.extend(probe::command_line("fork-until-refused"));
    let out = sandtrace()
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let result = probe::results_of(&out).unwrap().remove(0);
    let field = |name: &str| -> u64 {
        result
            .split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {result}"))
    };
    assert_eq!(field("forked") + field("threads"), 6, "{result}");
    assert!(result.ends_with("refused=EAGAIN"), "{result}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(forks 1)"),
        "{}",
        describe(&out)
    );

    // A fork bomb stays within the limit and the session ends at its timeout.
    fs::write(
        &policy_file,
        policy("[limits]\nmax_processes = 10\ntimeout = 3\n"),
    )
    .unwrap();
    let mut started = Started::spawn(sandtrace().args([
        "run",
        "--policy",
        policy_file.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        // The bomb runs in a subshell: CMD's own shell forks once, before the bomb exists,
        // so no refused fork of its own ends it early ("Cannot fork", status 2).
        "(b() { b | b & }; b); exec sleep 60",
    ]));
    let loader = started.child.id();
    let spawned = Instant::now();
    // The timeout counts from the session's start, which an emulated guest on a loaded host
    // delays by tens of seconds: time the session from when its cgroup first shows up.
    let mut session_seen: Option<Instant> = None;
    let (mut peak, mut samples) = (0u64, 0);
    while started.child.try_wait().unwrap().is_none() {
        for dir in session_cgroups_of(loader) {
            if let Some(n) = fs::read_to_string(dir.join("pids.current"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                peak = peak.max(n);
                samples += 1;
                session_seen.get_or_insert_with(Instant::now);
            }
        }
        // 3 s of timeout, then teardown; the margins only matter when the timeout is broken.
        match session_seen {
            Some(seen) => assert!(
                seen.elapsed() < Duration::from_secs(120),
                "the session outlived its timeout"
            ),
            None => assert!(
                spawned.elapsed() < Duration::from_secs(600),
                "the session did not start within 600 s"
            ),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = started.wait();
    assert_eq!(out.status.code(), Some(124), "{}", describe(&out));
    assert!(
        samples > 5,
        "pids.current of the session cgroup was never read"
    );
    assert!(peak <= 10, "peak of {peak} tasks under max_processes = 10");
    // Sampling can miss the peak on a loaded host; a refused fork proves the bomb reached it.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(forks "),
        "no refused fork was reported: {}",
        describe(&out)
    );
    assert!(session_cgroups_of(loader).is_empty());
}

#[test]
fn pathname_unix_sockets_follow_the_path_rules() {
    let scratch = Scratch::new("vm-unix");
    let stream = scratch.path("stream.sock");
    let datagram = scratch.path("datagram.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&stream).unwrap();
    let _receiver = std::os::unix::net::UnixDatagram::bind(&datagram).unwrap();
    let ops = vec![
        format!("unix-connect {}", stream.display()),
        format!("unix-send {}", datagram.display()),
    ];
    // Readable is not enough: connecting to a socket writes to it. Refused like any file
    // access, with EACCES.
    let s = probe::in_session(
        "vm-unix-ro",
        &policy("[network]\nallow = true\n"),
        &ops,
        &[],
    );
    assert_eq!(s.results, ["EACCES", "EACCES"]);
    let connects: Vec<&Value> = of_type(&s.events, "file")
        .into_iter()
        .filter(|e| e["operation"] == "connect")
        .collect();
    for path in [&stream, &datagram] {
        let e = connects
            .iter()
            .find(|e| e["path"] == path.to_str().unwrap())
            .unwrap_or_else(|| panic!("no connect event for {}: {connects:#?}", path.display()));
        assert_eq!(e["action"], "deny");
        assert_eq!(e["access"], serde_json::json!(["write"]));
    }

    let writable = format!(
        "{FILES}allow_write = [\"{}\"]\n[network]\nallow = true\n",
        scratch.0.display()
    );
    let s = probe::in_session("vm-unix-rw", &writable, &ops, &[]);
    assert_eq!(s.results, ["ok", "ok"]);
}

#[test]
fn abstract_unix_sockets_are_scoped_where_landlock_can() {
    use sandtrace::plan::features::{LANDLOCK_SCOPING_ABI, landlock_abi};
    let name = format!("sandtrace-vm-abstract-{}", std::process::id());
    let _listener = probe::abstract_listener(&name);
    let ops = vec![
        format!("abstract-connect {name}"),
        "abstract-within".to_owned(),
    ];
    let s = probe::in_session("vm-abstract", &policy(NETWORK_OFF), &ops, &[]);
    let summary = summary(&s.events);
    let unenforced = summary["unenforced"].as_array().unwrap();
    match landlock_abi() {
        Ok(abi) if abi >= LANDLOCK_SCOPING_ABI => {
            assert_eq!(s.results, ["EPERM", "ok"]);
            assert!(unenforced.is_empty(), "{summary}");
        }
        // Before Linux 6.12 the gap is said out loud, before CMD starts and in the summary.
        _ => {
            assert_eq!(s.results, ["ok", "ok"]);
            assert!(
                s.stderr
                    .contains("warning: abstract UNIX sockets outside the session stay reachable"),
                "{}",
                s.stderr
            );
            assert_eq!(unenforced.len(), 1, "{summary}");
            assert_eq!(unenforced[0]["kind"], "network");
        }
    }
}
