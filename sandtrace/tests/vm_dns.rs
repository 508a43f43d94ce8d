//! The session's DNS and `allow_hosts` in enforcing mode, in kernels with BPF LSM.
//!
//! Compiled only with the `vm-tests` feature; `cargo xtask vm-test` runs it in QEMU (6.1 and
//! 6.12). The scenarios are the host's (`tests/dns_cases`, run degraded by `tests/dns.rs`);
//! here the session enforces everything, so the probe needs its filesystem rules.

mod common;
mod dns_cases;
mod probe;
mod test_network;

use dns_cases::Mode;

const VM: Mode = Mode {
    policy_prefix: "[filesystem]\nallow_read = [\"/\"]\nallow_exec = [\"/\"]\n",
    flags: &[],
};

#[test]
fn allowed_name_is_reachable_over_tcp_and_udp() {
    dns_cases::allowed_name_is_reachable_over_tcp_and_udp(&VM, "vm-dns-good");
}

#[test]
fn an_entry_with_a_port_allows_only_that_port() {
    dns_cases::an_entry_with_a_port_allows_only_that_port(&VM, "vm-dns-port");
}

#[test]
fn other_names_do_not_resolve_and_their_addresses_are_denied() {
    dns_cases::other_names_do_not_resolve_and_their_addresses_are_denied(&VM, "vm-dns-evil");
}

#[test]
fn an_alias_of_an_allowed_name_is_followed() {
    dns_cases::an_alias_of_an_allowed_name_is_followed(&VM, "vm-dns-alias");
}

#[test]
fn names_in_etc_hosts_follow_the_rules_too() {
    dns_cases::names_in_etc_hosts_follow_the_rules_too(&VM, "vm-dns-hosts");
}

#[test]
fn queries_to_another_resolver_are_answered_by_the_sessions() {
    dns_cases::queries_to_another_resolver_are_answered_by_the_sessions(&VM, "vm-dns-other");
}

#[test]
fn a_secret_in_a_name_reaches_no_server() {
    dns_cases::a_secret_in_a_name_reaches_no_server(&VM, "vm-dns-secret");
}

#[test]
fn dns_over_tls_is_refused() {
    dns_cases::dns_over_tls_is_refused(&VM, "vm-dns-dot");
}
