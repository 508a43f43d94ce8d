//! The `socket` lines of the event log on the host's kernel (no BPF LSM): every socket call
//! is recorded with its decoded address and result whatever the session enforces, with
//! `--trace-only` and under a policy whose network is fully allowed (where no network rule
//! decides, so no `network` line is written).

mod common;
mod socket_calls;

use common::*;

#[test]
fn every_socket_call_is_recorded_when_tracing_only() {
    let scratch = Scratch::new("sockets-trace");
    let Some(calls) = socket_calls::run_in_session(&scratch, &["--trace-only"], None) else {
        return skip(
            "every_socket_call_is_recorded_when_tracing_only",
            "no python3",
            InCi::Guaranteed,
        );
    };
    calls.check_every_call();
    assert_eq!(summary(&calls.events)["mode"], "trace-only");
}

#[test]
fn every_socket_call_is_recorded_when_the_policy_allows_the_network() {
    let scratch = Scratch::new("sockets-allowed");
    let policy = scratch.path("policy.toml");
    std::fs::write(&policy, socket_calls::policy(&scratch.0, "allow = true")).unwrap();
    let flags = ["--allow-degraded", "--policy", policy.to_str().unwrap()];
    let Some(calls) = socket_calls::run_in_session(&scratch, &flags, None) else {
        return skip(
            "every_socket_call_is_recorded_when_the_policy_allows_the_network",
            "no python3",
            InCi::Guaranteed,
        );
    };
    calls.check_every_call();
    assert!(
        of_type(&calls.events, "network").is_empty(),
        "no rule decided: {:#?}",
        of_type(&calls.events, "network")
    );
}
