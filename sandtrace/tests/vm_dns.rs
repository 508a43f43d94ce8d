//! The session's DNS and `allow_hosts` in enforcing mode, in kernels with BPF LSM.
//!
//! Compiled only with the `vm-tests` feature; `cargo xtask vm-test` runs it in QEMU (6.1 and
//! 6.12). The scenarios are the host's (`tests/dns_cases`, run degraded by `tests/dns.rs`);
//! here the session enforces everything, so the probe needs its filesystem rules.

mod common;
mod dns_cases;
mod probe;
mod test_network;

use common::{GuestShare, runs_in_this_guest};
use dns_cases::Mode;

const VM: Mode = Mode {
    policy_prefix: "[filesystem]\nallow_read = [\"/\"]\nallow_exec = [\"/\"]\n",
    flags: &[],
};

/// One scenario of `tests/dns_cases` as a test, run in one guest of the suite's.
macro_rules! enforced_case {
    ($name:ident, $scratch:literal) => {
        #[test]
        fn $name() {
            if runs_in_this_guest(stringify!($name), GuestShare::Second) {
                dns_cases::$name(&VM, $scratch);
            }
        }
    };
}

enforced_case!(allowed_name_is_reachable_over_tcp_and_udp, "vm-dns-good");
enforced_case!(an_entry_with_a_port_allows_only_that_port, "vm-dns-port");
enforced_case!(
    other_names_do_not_resolve_and_their_addresses_are_denied,
    "vm-dns-evil"
);
enforced_case!(an_alias_of_an_allowed_name_is_followed, "vm-dns-alias");
enforced_case!(names_in_etc_hosts_follow_the_rules_too, "vm-dns-hosts");
enforced_case!(
    queries_to_another_resolver_are_answered_by_the_sessions,
    "vm-dns-other"
);
enforced_case!(a_secret_in_a_name_reaches_no_server, "vm-dns-secret");
enforced_case!(dns_over_tls_is_refused, "vm-dns-dot");
enforced_case!(
    queries_are_recorded_from_the_traffic_without_the_resolver,
    "vm-dns-traffic"
);
