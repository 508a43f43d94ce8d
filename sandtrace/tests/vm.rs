//! Integration tests that need a kernel with BPF LSM active.
//!
//! Compiled only with the `vm-tests` feature, so a host run never counts them as passed;
//! `cargo xtask vm-test` builds them and runs them as root inside QEMU in each supported kernel
//! (see the README's VM section). Scratch files belong on the guest's tmpfs (`/tmp`, which
//! `common::Scratch` uses): the host's files reach the guest over a slow 9p share.

mod common;

use std::fs;

use common::*;

#[test]
fn bpf_is_an_active_lsm() {
    let path = "/sys/kernel/security/lsm";
    let lsms = fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    assert!(
        lsms.trim().split(',').any(|lsm| lsm == "bpf"),
        "bpf is not among the active LSMs {lsms:?}: the kernel needs CONFIG_BPF_LSM=y and bpf in lsm="
    );
}

#[test]
fn probe_loads_and_attaches_a_bpf_lsm_program() {
    let out = run(&["probe"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|line| line.trim() == "bpf-lsm: available"),
        "sandtrace probe does not report BPF LSM as available: {}",
        describe(&out)
    );
}

#[test]
fn trace_only_logs_a_complete_session() {
    let scratch = Scratch::new("vm-trace");
    let log = scratch.path("events.jsonl");
    let out = run(&[
        "run",
        "--trace-only",
        "-o",
        log.to_str().unwrap(),
        "--",
        "/bin/true",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let events = read_jsonl(&log);
    let summary = summary(&events);
    assert_eq!(summary["lost_events"], 0, "events were lost: {summary}");
    assert_eq!(summary["exit_code"], 0, "{summary}");
    let execs: Vec<_> = of_type(&events, "process")
        .into_iter()
        .filter(|p| p["action"] == "exec")
        .collect();
    assert_eq!(execs.len(), 1, "expected one exec of /bin/true: {execs:?}");
    assert_eq!(execs[0]["path"], "/bin/true");
    assert!(
        !of_type(&events, "syscall").is_empty(),
        "no syscall events in {}",
        log.display()
    );
}
