//! The `socket` lines in enforcing mode, in kernels with BPF LSM: the same calls as the host
//! test (`tests/sockets.rs`) are recorded under a restricted network, and a connect the
//! policy denies shows in both records: the `socket` line with the caller's `EPERM`, the
//! `network` line with the rules' decision.
//!
//! Compiled only with the `vm-tests` feature; `cargo xtask vm-test` runs it in QEMU.

mod common;
mod probe;
mod socket_calls;

use common::*;
use serde_json::Value;

#[test]
fn socket_calls_are_recorded_under_enforcement_denials_included() {
    probe::loopback_up();
    let scratch = Scratch::new("vm-sockets");
    let policy = scratch.path("policy.toml");
    let network = "allow = false\nallow_connect = [\"127.0.0.1:*\"]\n\
                   allow_bind = [\"127.0.0.1:*\"]";
    std::fs::write(&policy, socket_calls::policy(&scratch.0, network)).unwrap();
    let flags = ["--policy", policy.to_str().unwrap()];
    let Some(calls) = socket_calls::run_in_session(&scratch, &flags, Some("127.0.0.9:9")) else {
        return skip(
            "socket_calls_are_recorded_under_enforcement_denials_included",
            "no python3",
            InCi::Guaranteed,
        );
    };
    assert_eq!(summary(&calls.events)["mode"], "enforce");
    calls.check_every_call();
    let denied = &calls.made["denied"];
    assert_eq!(denied["errno"], 1, "EPERM: {denied}");
    calls.line(
        "connect",
        &denied["fd"],
        &[
            ("address", Value::from("127.0.0.9")),
            ("port", 9.into()),
            ("success", false.into()),
            ("return_value", (-1).into()),
            ("errno", "EPERM".into()),
        ],
    );
    let decision = of_type(&calls.events, "network")
        .into_iter()
        .find(|n| n["operation"] == "connect" && n["address"] == "127.0.0.9")
        .unwrap_or_else(|| panic!("no network line for the denied connect"));
    assert_eq!(decision["action"], "deny", "{decision}");
    assert_eq!(decision["port"], 9, "{decision}");
}
