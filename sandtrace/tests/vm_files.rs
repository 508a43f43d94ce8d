//! File-system and exec enforcement on a real BPF-LSM kernel (run by `cargo xtask vm-test`).
//!
//! The operations and their reference decisions are in `fs_ops/` (shared with the Landlock
//! suite). Every escape test also runs the same operations with `--trace-only`, proving that
//! they fail because of enforcement and not because of a broken setup.

mod common;
mod fs_ops;

use std::fs;

use common::*;
use fs_ops::*;

#[test]
fn every_example_policy_decides_every_operation_as_the_policy_says() {
    // Every policy in one of the two kernels: each kernel's hooks and offsets are checked by
    // the rest of the suite in both.
    let policies = this_guests_part(
        "every_example_policy_decides_every_operation_as_the_policy_says",
        example_policies(),
    );
    assert!(!policies.is_empty());
    let mut failures = Vec::new();
    let mut checked = 0;
    for policy_file in &policies {
        let matrix = Matrix::new(policy_file);
        let session = matrix.run(policy_file, &[]);
        for (case, result) in matrix.cases.iter().zip(&session.results) {
            checked += 1;
            let allowed = matrix.allows(case);
            let expected = if allowed { "ok" } else { "EACCES" };
            if result != expected {
                failures.push(format!(
                    "{}: {:?}: got {result}, policy says {expected}",
                    policy_file.display(),
                    case.op
                ));
            } else if !allowed && !denial_recorded(&matrix, case, &session.events) {
                failures.push(format!(
                    "{}: {:?}: denied without a deny event",
                    policy_file.display(),
                    case.op
                ));
            }
        }
        if !failures.is_empty() {
            failures.push(session.describe.clone());
            break;
        }
    }
    assert_no_wrong_decisions(&failures, checked);
}

/// Escape attempts the seccomp baseline refuses in every mode: namespace creation, and
/// io_uring where no BPF LSM checks it (tracing).
const REFUSED_IN_EVERY_MODE: [&str; 3] = [
    "bind mount in a new user+mount namespace",
    "bind mount in a new mount namespace",
    "io_uring IORING_OP_OPENAT",
];

#[test]
fn escape_attempts_fail_under_strict_and_succeed_when_only_traced() {
    let (e, enforced) = run_escapes(&[], false);
    let mut problems = Vec::new();
    for ((_, what), result) in e.ops.iter().zip(&enforced.results) {
        let must_fail = !what.ends_with("(allowed)");
        if must_fail && result == "ok" {
            problems.push(format!("ESCAPE: {what} succeeded under enforcement"));
        }
        if !must_fail && result != "ok" {
            problems.push(format!("{what}: expected ok, got {result}"));
        }
    }
    assert!(
        !deny_events(&enforced.events, &e.secret).is_empty(),
        "no deny event names the secret {}\n{}",
        e.secret.display(),
        enforced.describe
    );
    // The 5000-byte path is denied because it is too long to decide, and says so.
    let too_long = of_type(&enforced.events, "file").into_iter().any(|ev| {
        ev["action"] == "deny"
            && ev["reason"]
                .as_str()
                .is_some_and(|r| r.contains("too long"))
    });
    if !too_long {
        problems.push("no denial says a path was too long to decide".to_owned());
    }
    let (e2, traced) = run_escapes(&[], true);
    for ((op, what), result) in e2.ops.iter().zip(&traced.results) {
        // The seccomp baseline refuses these in every mode, tracing included.
        if REFUSED_IN_EVERY_MODE.contains(what) {
            if !result.contains("EPERM") {
                problems.push(format!("{what}: not refused with --trace-only ({result})"));
            }
            continue;
        }
        // Under tracing the same attempts work, which shows the denials above come from
        // enforcement. (The deep secret's file is created in this run.)
        if result != "ok" {
            problems.push(format!(
                "{what}: failed even with --trace-only ({result}): {op:?}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n--- enforced run\n{}\n--- traced run\n{}",
        problems.join("\n"),
        enforced.describe,
        traced.describe
    );
}

#[test]
fn running_the_dynamic_loader_directly_is_denied_even_where_it_may_execute() {
    let scratch = Scratch::new("ldso");
    let policy = scratch.path("policy.toml");
    fs::write(
        &policy,
        "[filesystem]\nallow_read = [\"/usr\", \"/proc/self\", \"/dev/null\"]\nallow_exec = [\"/usr/lib\", \"/usr/bin/true\"]\n",
    )
    .unwrap();
    let ops = [
        Op::ExecViaLoader("/usr/bin/id".into()),
        Op::Exec("/usr/bin/true".into()),
    ];
    let session = run_ops(
        &["--policy", policy.to_str().unwrap()],
        &scratch.0,
        &ops,
        &scratch.path("l.jsonl"),
        None,
    );
    assert_eq!(session.results, ["EACCES", "ok"], "{}", session.describe);
    let reason = of_type(&session.events, "file").into_iter().any(|ev| {
        ev["reason"]
            .as_str()
            .is_some_and(|r| r.contains("dynamic loader"))
    });
    assert!(
        reason,
        "the denial does not name the dynamic loader\n{}",
        session.describe
    );
}

#[test]
fn the_launched_script_and_its_env_interpreter_run_but_later_execs_need_allow_exec() {
    check_launch_chain(&[], "");
}

#[test]
fn proc_self_rules_cover_the_process_own_proc_directory() {
    check_proc_self(&[]);
}

#[test]
fn leaving_the_session_is_denied_even_where_the_policy_allows_everything() {
    let scratch = Scratch::new("session-escape");
    let policy = scratch.path("everything.toml");
    fs::write(
        &policy,
        "[filesystem]\nallow_read = [\"/\"]\nallow_write = [\"/\"]\nallow_exec = [\"**\"]\n[network]\nallow = true\n",
    )
    .unwrap();
    let ops = [
        (
            Op::OpenWrite("/sys/fs/cgroup/cgroup.procs".into()),
            "writing cgroup.procs",
        ),
        (Op::PtraceAttach(1), "tracing the session's init"),
        (Op::Bpf, "the bpf syscall"),
    ];
    let list: Vec<Op> = ops.iter().map(|(op, _)| op.clone()).collect();
    // As root with every capability, which each of these needs to succeed when traced.
    let enforced = run_ops(
        &["--policy", policy.to_str().unwrap(), "--as-root"],
        &scratch.0,
        &list,
        &scratch.path("e.jsonl"),
        None,
    );
    let traced = run_ops(
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--trace-only",
            "--as-root",
        ],
        &scratch.0,
        &list,
        &scratch.path("t.jsonl"),
        None,
    );
    let mut problems = Vec::new();
    for (((_, what), enforced), traced) in ops.iter().zip(&enforced.results).zip(&traced.results) {
        if enforced == "ok" {
            problems.push(format!("ESCAPE: {what} succeeded under enforcement"));
        }
        if traced != "ok" {
            problems.push(format!("{what}: failed even with --trace-only ({traced})"));
        }
    }
    let named = of_type(&enforced.events, "file")
        .into_iter()
        .filter(|ev| {
            ev["reason"]
                .as_str()
                .is_some_and(|r| r.contains("outside the session"))
        })
        .count();
    if named < 2 {
        problems.push(format!(
            "{named} denials say they would reach outside the session, expected 2"
        ));
    }
    assert!(
        problems.is_empty(),
        "{}\n--- enforced\n{}\n--- traced\n{}",
        problems.join("\n"),
        enforced.describe,
        traced.describe
    );
}
