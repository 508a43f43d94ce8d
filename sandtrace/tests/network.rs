//! Network enforcement on this host's kernel, which has no BPF LSM: the cgroup socket programs
//! and the seccomp filter work without it, so these sessions run with `--allow-degraded`.
//! Every test talks to servers on 127.0.0.1 that the test itself runs, outside the session.

mod common;
mod probe;

use std::{
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use common::*;
use probe::{DEADLINE, Expect, Servers, Session};
use serde_json::Value;

/// This host has no BPF LSM: sessions run with what works without it.
const DEGRADED: &str = "--allow-degraded";

fn in_session(name: &str, policy: &str, ops: &[String], extra: &[&str]) -> Session {
    let mut flags = vec![DEGRADED];
    flags.extend_from_slice(extra);
    probe::in_session(name, policy, ops, &flags)
}

fn network_events(events: &[Value]) -> Vec<&Value> {
    of_type(events, "network")
}

/// The network event about `operation` on `address`:`port`, which must exist.
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

const NETWORK_OFF: &str = "[network]\nallow = false\n";
const NETWORK_ON: &str = "[network]\nallow = true\n";

/// socket(2) arguments of the sockets that bypass TCP/UDP.
const RAW_ICMP: &str = "socket 2 3 1"; // AF_INET, SOCK_RAW, IPPROTO_ICMP
const PACKET: &str = "socket 17 3 768"; // AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)
const PING: &str = "socket 2 2 1"; // AF_INET, SOCK_DGRAM, IPPROTO_ICMP
const PACKET_OLD_SPELLING: &str = "socket 2 10 768"; // AF_INET, SOCK_PACKET: a packet socket

fn mapped(addr: SocketAddr) -> SocketAddr {
    format!("[::ffff:{}]:{}", addr.ip(), addr.port())
        .parse()
        .unwrap()
}

#[test]
fn network_off_refuses_every_way_out_and_outside_is_unaffected() {
    let servers = Servers::start();
    let (tcp, udp) = (servers.tcp, servers.udp);
    // Each way out, what the session must get, and whether it works outside the session
    // (ICMP datagram sockets depend on net.ipv4.ping_group_range, checked below).
    let table = [
        (format!("tcp-connect {tcp}"), "EPERM", true),
        (format!("tcp-fastopen {tcp}"), "EPERM", true),
        (format!("udp-send {udp}"), "EPERM", true),
        (format!("udp-connect {udp}"), "EPERM", true),
        (format!("tcp-connect {}", mapped(tcp)), "EPERM", true),
        (format!("udp-send {}", mapped(udp)), "EPERM", true),
        (RAW_ICMP.to_owned(), "EPERM", true),
        (PACKET.to_owned(), "EPERM", true),
        (PACKET_OLD_SPELLING.to_owned(), "EPERM", true),
        (PING.to_owned(), "EPERM", false),
        ("bind 127.0.0.1:0".to_owned(), "EPERM", true),
        // Without BPF LSM the sockets io_uring creates cannot be checked: no io_uring.
        (
            format!("io-uring-connect {tcp}"),
            "io_uring_setup:EPERM",
            true,
        ),
    ];
    let ops: Vec<String> = table.iter().map(|(op, ..)| op.clone()).collect();
    // Root with CAP_NET_RAW: without it the kernel refuses raw sockets before the session's
    // socket programs are asked.
    let s = in_session("net-off", NETWORK_OFF, &ops, &["--as-root"]);
    // Hosts may not offer ICMP datagram sockets at all: then the kernel refuses with EACCES
    // before sandtrace is asked.
    let ping_outside = probe::outside(PING).remove(0);
    for ((op, want, _), got) in table.iter().zip(&s.results) {
        if op == PING && ping_outside != "ok" {
            assert_ne!(got, "ok", "inside the session: {op}");
            continue;
        }
        assert_eq!(got, want, "inside the session: {op}");
    }
    assert_eq!(servers.tcp_accepted(0), 0, "a connection got through");
    assert_eq!(servers.udp_received(0), 0, "a datagram got through");

    // Every refusal is an event naming the address, port, protocol and why.
    let tcp_port = tcp.port();
    let connect = event_for(&s.events, "connect", "127.0.0.1", tcp_port);
    assert_eq!(connect["action"], "deny");
    assert_eq!(connect["protocol"], "tcp");
    assert_eq!(connect["family"], "ipv4");
    assert_eq!(connect["reason"], "network disabled");
    assert!(connect.get("rule").is_none(), "{connect}");
    let connects = network_events(&s.events)
        .into_iter()
        .filter(|e| {
            e["operation"] == "connect" && e["address"] == "127.0.0.1" && e["port"] == tcp_port
        })
        .count();
    assert_eq!(
        connects, 2,
        "connect and TCP Fast Open are both refused at connect"
    );
    let send = event_for(&s.events, "send", "127.0.0.1", udp.port());
    assert_eq!(send["protocol"], "udp");
    let mapped_connect = event_for(&s.events, "connect", "::ffff:127.0.0.1", tcp_port);
    assert_eq!(mapped_connect["family"], "ipv6");
    assert_eq!(mapped_connect["action"], "deny");
    event_for(&s.events, "bind", "127.0.0.1", 0);
    let sockets: Vec<_> = network_events(&s.events)
        .into_iter()
        .filter(|e| e["operation"] == "socket")
        .collect();
    assert!(
        sockets
            .iter()
            .any(|e| e["protocol"] == "icmp" && e["socket_type"] == "raw"),
        "{sockets:#?}"
    );
    assert_eq!(
        sockets.iter().filter(|e| e["family"] == "packet").count(),
        2,
        "AF_PACKET and (AF_INET, SOCK_PACKET): {sockets:#?}"
    );
    let uring = of_type(&s.events, "syscall")
        .into_iter()
        .find(|e| e["syscall"] == "io_uring_setup")
        .expect("an io_uring_setup event");
    assert_eq!(uring["action"], "deny");

    let summary = summary(&s.events);
    let denied_network = network_events(&s.events)
        .iter()
        .filter(|e| e["action"] == "deny")
        .count() as u64;
    assert_eq!(summary["denials"]["network"], denied_network, "{summary}");
    assert!(denied_network >= 10, "{summary}");
    assert_eq!(summary["mode"], "degraded");
    assert_eq!(
        summary["denials"]["syscalls"], 1,
        "io_uring_setup: {summary}"
    );
    assert_eq!(summary["denied_count"], denied_network + 1, "{summary}");

    // The same calls outside any session go through.
    let outside_ops: Vec<&str> = table
        .iter()
        .filter(|(.., outside)| *outside)
        .map(|(op, ..)| op.as_str())
        .collect();
    for (op, got) in outside_ops
        .iter()
        .zip(probe::outside(&outside_ops.join(";")))
    {
        assert_eq!(got, "ok", "outside the session: {op}");
    }
    assert!(
        servers.tcp_accepted(4) >= 4,
        "outside connects reached the server"
    );
    assert!(
        servers.udp_received(2) >= 2,
        "outside datagrams reached the server"
    );
}

#[test]
fn network_allowed_reaches_the_servers() {
    let servers = Servers::start();
    let (tcp, udp) = (servers.tcp, servers.udp);
    let ops = vec![
        format!("tcp-connect {tcp}"),
        format!("tcp-fastopen {tcp}"),
        format!("udp-send {udp}"),
        format!("tcp-connect {}", mapped(tcp)),
        RAW_ICMP.to_owned(),
        format!("io-uring-connect {tcp}"),
    ];
    // A raw ICMP socket needs CAP_NET_RAW.
    let s = in_session("net-on", NETWORK_ON, &ops, &["--as-root"]);
    // Without BPF LSM the seccomp baseline refuses io_uring whatever the network rules: its
    // sockets would pass the baseline's socket checks.
    let (uring, plain) = s.results.split_last().unwrap();
    assert_eq!(uring, "io_uring_setup:EPERM");
    for (op, got) in ops.iter().zip(plain) {
        assert_eq!(got, "ok", "{op}");
    }
    assert_eq!(servers.tcp_accepted(3), 3);
    assert_eq!(servers.udp_received(1), 1);
    assert!(network_events(&s.events).is_empty(), "nothing to decide");
    assert_eq!(summary(&s.events)["denied_count"], 1, "io_uring_setup");
}

#[test]
fn allow_connect_admits_exactly_the_covered_destinations() {
    let servers = Servers::start();
    let (tcp, udp) = (servers.tcp, servers.udp);
    let policy = format!(
        "[network]\nallow = false\nallow_connect = [\"127.0.0.1:{}\", \"10.0.0.0/8:443\"]\n",
        tcp.port()
    );
    let other_address: SocketAddr = format!("127.0.0.2:{}", tcp.port()).parse().unwrap();
    let ops = vec![
        format!("tcp-connect {tcp}"),
        format!("tcp-fastopen {tcp}"),
        format!("tcp-connect {}", mapped(tcp)),
        format!("udp-send {udp}"),
        format!("tcp-connect {other_address}"),
        "bind 127.0.0.1:0".to_owned(),
    ];
    // -v: allowed decisions are reported too.
    let s = in_session("net-rules", &policy, &ops, &["-v"]);
    let want = ["ok", "ok", "ok", "EPERM", "EPERM", "EPERM"];
    for ((op, got), want) in ops.iter().zip(&s.results).zip(want) {
        assert_eq!(got, want, "{op}");
    }
    assert_eq!(servers.tcp_accepted(3), 3);
    assert_eq!(servers.udp_received(0), 0);

    let allowed = event_for(&s.events, "connect", "127.0.0.1", tcp.port());
    assert_eq!(allowed["action"], "allow");
    let rule = &allowed["rule"];
    assert_eq!(rule["kind"], "allow_connect");
    assert_eq!(rule["pattern"], format!("127.0.0.1:{}", tcp.port()));
    assert!(
        rule["source"]
            .as_str()
            .unwrap()
            .ends_with("policy.toml:3:18"),
        "{rule}"
    );
    let mapped_allowed = event_for(&s.events, "connect", "::ffff:127.0.0.1", tcp.port());
    assert_eq!(mapped_allowed["action"], "allow");
    let refused = event_for(&s.events, "send", "127.0.0.1", udp.port());
    assert_eq!(refused["action"], "deny");
    assert_eq!(
        refused["reason"],
        "no allow_connect rule covers this address"
    );
    let elsewhere = event_for(&s.events, "connect", "127.0.0.2", tcp.port());
    assert_eq!(elsewhere["action"], "deny");
    let bind = event_for(&s.events, "bind", "127.0.0.1", 0);
    assert_eq!(bind["reason"], "no allow_bind rule covers this address");
    assert!(
        s.stderr.contains(&format!(
            "allowed tcp connect 127.0.0.1:{} by allow_connect rule",
            tcp.port()
        )),
        "{}",
        s.stderr
    );
}

/// A loopback address of its own for a DNS server and a DNS-over-TLS server: no resolver of
/// the host listens there.
const DNS_SERVER: &str = "127.8.5.3";

#[test]
fn allow_hosts_sends_dns_to_the_session_and_refuses_dns_over_tls_and_only_then() {
    let dns = Servers::bind(&format!("{DNS_SERVER}:853"), &format!("{DNS_SERVER}:53"));
    let rules = format!("allow_connect = [\"{DNS_SERVER}:53\", \"{DNS_SERVER}:853\"]\n");
    let ops = vec![
        format!("udp-send {DNS_SERVER}:53"),
        format!("tcp-connect {DNS_SERVER}:853"),
    ];
    // Without allow_hosts, as before: allow_connect decides, the ports mean nothing.
    let s = in_session("dns-off", &format!("{NETWORK_OFF}{rules}"), &ops, &[]);
    assert_eq!(s.results, ["ok", "ok"]);
    assert_eq!(dns.udp_received(1), 1);
    assert_eq!(dns.tcp_accepted(1), 1);
    assert!(network_events(&s.events).is_empty(), "{:#?}", s.events);

    // With it, the query goes to the session's resolver, not to the server it names, though
    // allow_connect covers that; DNS over TLS is refused whatever allow_connect says.
    let policy = format!("{NETWORK_OFF}{rules}allow_hosts = [\"good.test\"]\n");
    let s = in_session("dns-on", &policy, &ops, &[]);
    assert_eq!(s.results[1], "EPERM");
    assert_eq!(
        dns.udp_received(1),
        1,
        "the query reached the server it named"
    );
    assert_eq!(dns.tcp_accepted(1), 1, "DNS over TLS got through");
    // Both reported without -v: the redirect is the only record of where the query went.
    let redirected = event_for(&s.events, "send", DNS_SERVER, 53);
    assert_ne!(redirected["action"], "deny", "{redirected}");
    let tls = event_for(&s.events, "connect", DNS_SERVER, 853);
    assert_eq!(tls["action"], "deny");
    assert!(
        tls["reason"].as_str().unwrap().contains("DNS over TLS"),
        "{tls}"
    );
}

/// The `HOST_ADDRESSES` map of the session that the sandtrace process `pid` runs, found
/// through the map descriptors that process holds (as bpftool does), wrapped as the session's
/// resolver uses it.
fn session_host_addresses(pid: u32) -> sandtrace::network::host_addresses::HostAddressMap {
    use aya::maps::{HashMap, Map, MapData, MapInfo};
    let fdinfo = std::path::PathBuf::from(format!("/proc/{pid}/fdinfo"));
    for entry in std::fs::read_dir(&fdinfo).expect("reading the loader's fdinfo") {
        let Ok(text) = std::fs::read_to_string(entry.unwrap().path()) else {
            continue;
        };
        let Some(id) = text
            .lines()
            .find_map(|l| l.strip_prefix("map_id:"))
            .map(|id| id.trim().parse::<u32>().unwrap())
        else {
            continue;
        };
        let info = MapInfo::from_id(id).expect("the map's info");
        if info.name_as_str() == Some("HOST_ADDRESSES") {
            let map = Map::from_map_data(MapData::from_id(id).unwrap()).unwrap();
            return sandtrace::network::host_addresses::HostAddressMap::new(
                HashMap::try_from(map).unwrap(),
            );
        }
    }
    panic!("the sandtrace process {pid} holds no HOST_ADDRESSES map");
}

fn monotonic_now_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the current time into `now`, which lives across the call.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(status, 0, "{}", std::io::Error::last_os_error());
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

#[test]
fn addresses_admitted_for_an_allow_hosts_entry_are_reachable_on_its_ports_until_they_expire() {
    use sandtrace::dns::AddressAdmission as _;
    let good = Servers::start();
    let other = Servers::bind("127.0.0.2:0", "127.0.0.2:0");
    assert_ne!(
        good.tcp.port(),
        other.tcp.port(),
        "the test needs two ports"
    );
    let policy = format!(
        "{NETWORK_OFF}allow_hosts = [\"good.test:{}\", \"dgram.test:{}\", \"gone.test\"]\n",
        good.tcp.port(),
        good.udp.port()
    );
    let ops = [
        format!("tcp-connect {}", good.tcp),
        format!("tcp-connect {}", other.tcp),
        format!("udp-send {}", other.udp),
        // Last: it waits for the reply (on the line the wrapper passes on, below).
        format!("udp-send-receive {}", good.udp),
    ];
    // CMD waits until the test has admitted the addresses, as a resolver admits them before
    // it answers, then runs the probe with the same line on its stdin.
    let scratch = Scratch::new("net-hosts");
    let policy_file = scratch.path("policy.toml");
    write_policy(&policy_file, &policy);
    let mut cmd = sandtrace();
    cmd.args([
        "run",
        DEGRADED,
        "--policy",
        policy_file.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "echo PROBE-PORT: 0; read line; echo \"$line\" | exec \"$0\" \"$@\"",
        probe::PROBE,
    ])
    .args(&ops)
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped());
    let mut running = probe::RunningProbe::new(cmd.spawn().expect("starting sandtrace"));
    running.port();
    let mut addresses = session_host_addresses(running.child.id());
    let ip = |s: &SocketAddr| s.ip();
    let later = monotonic_now_ns() + DEADLINE.as_nanos() as u64 * 4;
    // good.test's address on its TCP port; written in IPv4-mapped form, it is the same key.
    addresses
        .admit(
            format!("::ffff:{}", good.tcp.ip()).parse().unwrap(),
            0,
            later,
            7,
        )
        .unwrap();
    // dgram.test's: replies from it arrive on an unconnected socket.
    addresses.admit(ip(&good.udp), 1, u64::MAX, 8).unwrap();
    // The other address: under good.test's entry (another port), and expired under gone.test's.
    addresses.admit(ip(&other.tcp), 0, later, 7).unwrap();
    addresses.admit(ip(&other.tcp), 2, 1, 9).unwrap();
    running.look(Expect::Something);
    let results = running.result();
    assert_eq!(results, ["ok", "EPERM", "EPERM", "send:ok received"]);
    assert_eq!(good.tcp_accepted(1), 1);
    assert_eq!(good.udp_received(1), 1);
    assert_eq!(other.tcp_accepted(0) + other.udp_received(0), 0);
}

fn with_announced_port(
    name: &str,
    policy: &str,
    op: &str,
    expect: Expect,
    poke: impl FnOnce(u16),
) -> (String, Vec<Value>) {
    probe::with_announced_port(name, policy, op, &[DEGRADED], expect, poke)
}

/// How long a connection from outside to a refused session socket is given: the socket drops
/// every SYN, so the attempt times out. The probe's socket is listening before its port is
/// announced, so a connection that may get through needs no retry (it gets [`DEADLINE`]).
const REFUSED_CONNECT: Duration = Duration::from_secs(3);

/// Whether a connection from outside the session reaches the session's listener on `port`
/// within `limit`.
fn connects_from_outside(port: u16, limit: Duration) -> bool {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    TcpStream::connect_timeout(&addr, limit).is_ok()
}

#[test]
fn listening_without_bind_receives_nothing_unless_allowed() {
    let (result, events) = with_announced_port(
        "listen-off",
        NETWORK_OFF,
        "listen-unbound",
        Expect::Nothing,
        |port| {
            assert!(
                !connects_from_outside(port, REFUSED_CONNECT),
                "reached a socket the session listens on without an allowed bind"
            );
        },
    );
    assert_eq!(result, "listen:ok nothing");
    let receive = network_events(&events)
        .into_iter()
        .find(|e| e["operation"] == "receive")
        .unwrap_or_else(|| panic!("no receive event: {events:#?}"));
    assert_eq!(receive["action"], "deny");
    assert_eq!(receive["protocol"], "tcp");
    assert_eq!(receive["address"], "0.0.0.0");
    assert_eq!(receive["peer_address"], "127.0.0.1");

    let (result, _) = with_announced_port(
        "listen-on",
        NETWORK_ON,
        "listen-unbound",
        Expect::Something,
        |port| {
            assert!(
                connects_from_outside(port, DEADLINE),
                "allow = true must let it in"
            );
        },
    );
    assert_eq!(result, "listen:ok accepted");

    let bind_rule = "[network]\nallow = false\nallow_bind = [\"0.0.0.0:*\"]\n";
    let (result, _) = with_announced_port(
        "listen-rule",
        bind_rule,
        "listen-unbound",
        Expect::Something,
        |port| {
            assert!(
                connects_from_outside(port, DEADLINE),
                "allow_bind covers 0.0.0.0:*"
            );
        },
    );
    assert_eq!(result, "listen:ok accepted");
}

#[test]
fn udp_receives_only_replies_from_allowed_destinations() {
    let servers = Servers::start();
    let udp = servers.udp;
    let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let send_from_stranger = |port: u16| {
        stranger
            .send_to(b"unsolicited", ("127.0.0.1", port))
            .expect("sending from outside");
    };
    // A refused send still binds the socket: nothing may arrive on it.
    let (result, _) = with_announced_port(
        "udp-off",
        NETWORK_OFF,
        &format!("udp-send-receive {udp}"),
        Expect::Nothing,
        send_from_stranger,
    );
    assert_eq!(result, "send:EPERM nothing");

    let policy = format!(
        "[network]\nallow = false\nallow_connect = [\"127.0.0.1:{}\"]\n",
        udp.port()
    );
    let (result, _) = with_announced_port(
        "udp-reply",
        &policy,
        &format!("udp-send-receive {udp}"),
        Expect::Something,
        |_| {},
    );
    assert_eq!(
        result, "send:ok received",
        "the server's reply comes from an allowed address"
    );

    // Datagrams from elsewhere are dropped even on a socket that may send.
    let quiet = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let policy = format!(
        "[network]\nallow = false\nallow_connect = [\"127.0.0.1:{}\"]\n",
        quiet.local_addr().unwrap().port()
    );
    let (result, events) = with_announced_port(
        "udp-stranger",
        &policy,
        &format!("udp-send-receive {}", quiet.local_addr().unwrap()),
        Expect::Nothing,
        send_from_stranger,
    );
    assert_eq!(result, "send:ok nothing");
    let receive = network_events(&events)
        .into_iter()
        .find(|e| e["operation"] == "receive")
        .unwrap_or_else(|| panic!("no receive event: {events:#?}"));
    assert_eq!(receive["protocol"], "udp");
    assert_eq!(
        receive["peer_port"],
        stranger.local_addr().unwrap().port(),
        "{receive}"
    );
}

#[test]
fn network_rules_are_validated_like_the_rest_of_the_policy() {
    let scratch = Scratch::new("net-check");
    let check = |text: &str| {
        let file = scratch.path("policy.toml");
        std::fs::write(&file, text).unwrap();
        run(&["policy", "check", file.to_str().unwrap()])
    };
    let out = check(
        "[network]\nallow_connect = [\"example.com:443\", \"10.1.0.0/8:80\", \"[::1]\"]\n\
         allow_bind = [\"127.0.0.1:0\"]\n",
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "policy.toml:2:18",
        "for a host name use [network] allow_hosts",
        "did you mean 10.0.0.0/8?",
        "add the port: [::1]:PORT",
        "policy.toml:3:15",
        "port 0 is not a port",
        "4 errors",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }

    let out = check("[network]\nallow = true\nallow_connect = [\"127.0.0.1:80\"]\n");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("allow_connect has no effect with allow = true"),
        "{}",
        describe(&out)
    );

    let rules = "[network]\nallow_connect = [\"127.0.0.1:8080\", \"*:443\", \"[::ffff:10.0.0.0]/104:53\"]\n\
                 allow_bind = [\"[::1]:3000-3009\"]\n";
    let out = check(rules);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("network: blocked except what these rules allow"),
        "{stdout}"
    );
    for rule in [
        "127.0.0.1:8080",
        "*:443",
        "10.0.0.0/8:53",
        "[::1]:3000-3009",
    ] {
        assert!(
            stdout.contains(&format!("    {rule} ")),
            "{rule} in {stdout}"
        );
    }

    // `policy show` writes the rules so that they parse back to the same rules.
    let file = scratch.path("policy.toml");
    std::fs::write(&file, rules).unwrap();
    let shown = run(&["policy", "show", file.to_str().unwrap()]);
    assert!(shown.status.success(), "{}", describe(&shown));
    let text = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        text.contains(
            "allow_connect = [\n    \"127.0.0.1:8080\",\n    \"*:443\",\n    \"10.0.0.0/8:53\",\n]"
        ),
        "{text}"
    );
    let out = check(&text);
    assert!(out.status.success(), "{}\n{text}", describe(&out));
    // The same rules, in the same lists (their positions in the file differ).
    let rules_of = |report: &str| -> Vec<String> {
        report
            .lines()
            .skip_while(|l| !l.starts_with("network:"))
            .take_while(|l| !l.starts_with("syscalls"))
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
            .collect()
    };
    let again = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        rules_of(&again),
        rules_of(&stdout),
        "the round trip changed the rules"
    );
}

#[test]
fn without_allow_degraded_a_kernel_without_bpf_lsm_is_refused() {
    let out = run(&["run", "--", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("BPF LSM is not available"), "{stderr}");
    assert!(stderr.contains("--allow-degraded"), "{stderr}");
}

#[test]
fn degraded_mode_lists_what_it_approximates_and_does_not_enforce_before_the_command_starts() {
    let scratch = Scratch::new("degraded");
    let policy = scratch.path("policy.toml");
    std::fs::write(
        &policy,
        "[filesystem]\nallow_read = [\"/usr\"]\ndeny = [\"/etc/shadow\"]\n",
    )
    .unwrap();
    let log = scratch.path("events.jsonl");
    // CMD prints a marker: the list must come before it on the shared stderr.
    let out = run(&[
        "run",
        "--allow-degraded",
        "--policy",
        policy.to_str().unwrap(),
        "-o",
        log.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "echo CMD-STARTED >&2",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let started = stderr.find("CMD-STARTED").expect("CMD ran");
    // With Landlock the path rules are enforced, the deny rule approximately; without it, none.
    let landlock = sandtrace::plan::features::landlock_abi().is_ok();
    let (list, expected): (&str, &[&str]) = if landlock {
        (
            "approximated",
            &[
                "[filesystem] (Landlock ABI",
                "approximated: deny /etc/shadow (",
                "NOT enforced: filesystem file metadata",
            ],
        )
    } else {
        (
            "unenforced",
            &[
                "NOT enforced: [filesystem]",
                "allow_read /usr (",
                "deny /etc/shadow (",
            ],
        )
    };
    for line in expected {
        let at = stderr
            .find(line)
            .unwrap_or_else(|| panic!("missing {line:?} in:\n{stderr}"));
        assert!(
            at < started,
            "{line:?} was printed after CMD started:\n{stderr}"
        );
    }
    let events = read_jsonl(&log);
    let summary = summary(&events);
    assert_eq!(summary["mode"], "degraded");
    let listed = summary[list].as_array().unwrap();
    let deny = listed
        .iter()
        .find(|r| r["kind"] == "deny" && r["pattern"] == "/etc/shadow")
        .unwrap_or_else(|| panic!("deny /etc/shadow in {list}: {summary}"));
    assert!(
        deny["source"].as_str().unwrap().contains("policy.toml:3:"),
        "{summary}"
    );
    if landlock {
        assert!(
            deny["how"].as_str().unwrap().contains("carved out"),
            "{summary}"
        );
        let unenforced = summary["unenforced"].as_array().unwrap();
        assert!(
            unenforced.iter().all(|r| r["kind"] == "filesystem"),
            "only what Landlock does not decide: {summary}"
        );
    }
}

#[test]
fn abstract_unix_sockets_outside_the_session_are_out_of_reach() {
    let name = format!("sandtrace-test-abstract-{}", std::process::id());
    let _listener = probe::abstract_listener(&name);
    let ops = vec![
        format!("abstract-connect {name}"),
        "abstract-within".to_owned(),
    ];
    let s = in_session("abstract-off", NETWORK_OFF, &ops, &[]);
    assert_eq!(
        s.results,
        ["EPERM", "ok"],
        "a host service is out of reach, the session's own sockets are not"
    );
    assert_eq!(probe::outside(&ops[0]), ["ok"]);
    let s = in_session("abstract-on", NETWORK_ON, &ops, &[]);
    assert_eq!(s.results, ["ok", "ok"]);
}
