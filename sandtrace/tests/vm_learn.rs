//! `sandtrace learn` followed by the learned policy enforced by BPF LSM: for real programs,
//! the same command succeeds under the policy learned from it, with nothing denied, while a
//! variant that also reads a secret is denied by the base policy's deny rule, and ones that
//! read a file next to what the run used or a new path are denied because no rule allows them.
//!
//! Needs a BPF-LSM kernel: compiled only with the `vm-tests` feature and run inside QEMU (see
//! tests/vm.rs). Learning happens in the guest too (trace only), in a scratch directory on
//! the guest's tmpfs, so the paths learned are the paths enforced.

mod common;
mod learn_programs;

use std::path::Path;

use common::*;
use learn_programs::*;
use serde_json::Value;

/// Runs `cmd` in `dir` under `policy`, enforcing, and returns (exit code, event log).
fn enforced(dir: &Path, policy: &Path, cmd: &[String], log_name: &str) -> (i32, Vec<Value>) {
    let log = dir.join(log_name);
    let out = sandtrace_in(
        dir,
        &[
            "run",
            "--policy",
            policy.to_str().unwrap(),
            "-o",
            log.to_str().unwrap(),
        ],
        cmd,
    );
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("sandtrace was killed: {}", describe(&out)));
    assert!(log.exists(), "no event log: {}", describe(&out));
    (code, read_jsonl(&log))
}

fn file_denials(events: &[Value]) -> Vec<&Value> {
    of_type(events, "file")
        .into_iter()
        .filter(|f| f["action"] == "deny")
        .collect()
}

/// Learns `program`'s policy, then checks that the kernel lets the same run succeed with
/// nothing denied, denies the variant reading the secret by the deny rule, and the variant
/// reading a file next to what the run used as unlisted.
fn learn_and_enforce(program: &Program) {
    let scratch = Scratch::new(&format!("vm-learn-{}", program.name));
    let dir = std::fs::canonicalize(&scratch.0).unwrap();
    let policy = learn(program, &dir);
    let text = std::fs::read_to_string(&policy).unwrap();

    program.prepare(&dir);
    let (code, events) = enforced(&dir, &policy, &program.command, "same.jsonl");
    assert_eq!(
        (code, file_denials(&events)),
        (0, Vec::<&Value>::new()),
        "{}: the same run under the learned policy\n--- policy:\n{text}",
        program.name
    );
    assert_eq!(summary(&events)["mode"], "enforce", "{}", program.name);

    program.prepare(&dir);
    let (code, events) = enforced(&dir, &policy, &program.with_secret, "secret.jsonl");
    let secret = dir.join(SECRET);
    let denied = file_denials(&events);
    assert!(
        denied.iter().any(|d| d["path"] == secret.to_str().unwrap()
            && d["rule"]["kind"] == "deny"
            && d["rule"]["pattern"] == "**/.env"),
        "{}: reading {} was not denied by the deny rule: {denied:?}",
        program.name,
        secret.display()
    );
    assert_ne!(
        code, 0,
        "{}: the run reading the secret succeeded",
        program.name
    );

    // A learned policy grants what the run used, not the directories it used it in: a file
    // next to one the run read, which no rule names, is denied.
    program.prepare(&dir);
    let (code, events) = enforced(&dir, &policy, &program.with_neighbour, "neighbour.jsonl");
    let neighbour = dir.join(program.neighbour);
    let denied = file_denials(&events);
    assert!(
        denied
            .iter()
            .any(|d| d["path"] == neighbour.to_str().unwrap()
                && d["reason"] == "denied: no allow rule covers it"),
        "{}: reading {} was not denied as unlisted: {denied:#?}\n--- policy:\n{text}",
        program.name,
        neighbour.display()
    );
    assert_ne!(code, 0, "{}: the run reading it succeeded", program.name);
}

#[test]
fn learned_policies_let_the_same_run_succeed_and_deny_a_secret() {
    if !runs_in_this_guest(
        "learned_policies_let_the_same_run_succeed_and_deny_a_secret",
        GuestShare::First,
    ) {
        return;
    }
    for program in programs() {
        learn_and_enforce(&program);
    }
}

/// git opens `/dev/null` through a string constant of its binary whose page is often not
/// mapped yet when `openat` starts: the path is only readable at `sys_exit`, which the kernel
/// programs retry.
#[test]
fn git_under_its_learned_policy() {
    if !runs_in_this_guest("git_under_its_learned_policy", GuestShare::First) {
        return;
    }
    learn_and_enforce(&git());
}

#[test]
fn a_new_path_is_denied_under_the_learned_policy() {
    if !runs_in_this_guest(
        "a_new_path_is_denied_under_the_learned_policy",
        GuestShare::First,
    ) {
        return;
    }
    let programs = programs();
    let python = &programs[0];
    let scratch = Scratch::new("vm-learn-new-path");
    let dir = std::fs::canonicalize(&scratch.0).unwrap();
    let policy = learn(python, &dir);
    python.prepare(&dir);
    let mut cmd = python.command.clone();
    cmd[2].push_str("open('/etc/hostname').read()\n");
    let (code, events) = enforced(&dir, &policy, &cmd, "new-path.jsonl");
    let hostname = std::fs::canonicalize("/etc/hostname").unwrap();
    let denied = file_denials(&events);
    assert!(
        denied
            .iter()
            .any(|d| d["path"] == hostname.to_str().unwrap()
                && d["reason"] == "denied: no allow rule covers it"),
        "reading {} was not denied as unlisted: {denied:?}",
        hostname.display()
    );
    assert_eq!(
        denied.len(),
        1,
        "more than the new path was denied: {denied:?}"
    );
    assert_ne!(code, 0);
}
