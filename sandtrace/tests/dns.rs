//! The session's DNS and `allow_hosts` on this host's kernel, which has no BPF LSM: the cgroup
//! socket programs that redirect DNS and follow names need none, so these sessions run with
//! `--allow-degraded`. The scenarios are in `tests/dns_cases` (the VM runs them too, in
//! `tests/vm_dns.rs`); each runs in a network namespace and with name configuration of the
//! test's own (`tests/test_network`).

mod common;
mod dns_cases;
mod probe;
mod test_network;

use dns_cases::Mode;

const HOST: Mode = Mode {
    policy_prefix: "",
    flags: &["--allow-degraded"],
};

#[test]
fn allowed_name_is_reachable_over_tcp_and_udp() {
    dns_cases::allowed_name_is_reachable_over_tcp_and_udp(&HOST, "dns-good");
}

#[test]
fn an_entry_with_a_port_allows_only_that_port() {
    dns_cases::an_entry_with_a_port_allows_only_that_port(&HOST, "dns-port");
}

#[test]
fn other_names_do_not_resolve_and_their_addresses_are_denied() {
    dns_cases::other_names_do_not_resolve_and_their_addresses_are_denied(&HOST, "dns-evil");
}

#[test]
fn an_alias_of_an_allowed_name_is_followed() {
    dns_cases::an_alias_of_an_allowed_name_is_followed(&HOST, "dns-alias");
}

#[test]
fn names_in_etc_hosts_follow_the_rules_too() {
    dns_cases::names_in_etc_hosts_follow_the_rules_too(&HOST, "dns-hosts");
}

#[test]
fn queries_to_another_resolver_are_answered_by_the_sessions() {
    dns_cases::queries_to_another_resolver_are_answered_by_the_sessions(&HOST, "dns-other");
}

#[test]
fn a_secret_in_a_name_reaches_no_server() {
    dns_cases::a_secret_in_a_name_reaches_no_server(&HOST, "dns-secret");
}

#[test]
fn queries_are_recorded_from_the_traffic_without_the_resolver() {
    dns_cases::queries_are_recorded_from_the_traffic_without_the_resolver(&HOST, "dns-traffic");
}

#[test]
fn dns_over_tls_is_refused() {
    dns_cases::dns_over_tls_is_refused(&HOST, "dns-dot");
}

/// A daemon that resolves names for its clients over a UNIX socket (systemd-resolved, also
/// through D-Bus, and nscd) would look up any name past the session's resolver: with
/// `allow_hosts`, their directories are empty in the session. `/run/dbus` is the one this
/// machine has; without `allow_hosts` the session sees it as it is.
#[test]
fn resolving_daemons_directories_are_empty_in_sessions_with_allow_hosts() {
    const DIR: &str = "/run/dbus";
    let outside: Vec<_> = std::fs::read_dir(DIR)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    if outside.is_empty() {
        common::skip(
            "resolving_daemons_directories_are_empty_in_sessions_with_allow_hosts",
            &format!("{DIR} is missing or empty on this machine"),
            common::InCi::MayLack,
        );
        return;
    }
    for (network, empty) in [
        ("allow = false\nallow_hosts = [\"good.test\"]\n", true),
        ("allow = false\n", false),
    ] {
        let scratch = common::Scratch::new("dns-daemons");
        let policy = scratch.path("policy.toml");
        common::write_policy(&policy, &format!("[network]\n{network}"));
        let out = common::run(&[
            "run",
            "--allow-degraded",
            "--policy",
            policy.to_str().unwrap(),
            "--",
            "/bin/ls",
            "-A",
            DIR,
        ]);
        assert!(out.status.success(), "{}", common::describe(&out));
        let listed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            listed.trim().is_empty(),
            empty,
            "{network}: {DIR} lists {listed:?} in the session, {outside:?} outside"
        );
    }
}
