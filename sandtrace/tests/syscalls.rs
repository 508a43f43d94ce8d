//! `[syscalls]` in whole sessions on this host's kernel (no BPF LSM, so `--allow-degraded`):
//! denied syscalls fail with EPERM inside the session only, the x32 alias of a denied syscall
//! kills the caller, and denied and `log_only` calls are reported without per-syscall tracing.

mod common;
mod probe;

use std::process::{Output, Stdio};

use common::*;
use serde_json::Value;

/// The syscalls denied in every policy.
const ALWAYS_BLOCKED: [&str; 10] = [
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "init_module",
    "finit_module",
    "delete_module",
    "acct",
    "pivot_root",
];

/// Runs the probe operation `op` in a session under `policy`; `log` adds `-o`, `flags` go
/// before `--`.
fn in_session(scratch: &Scratch, policy: &str, op: &str, log: bool, flags: &[&str]) -> Output {
    let policy_file = scratch.path("policy.toml");
    write_policy(&policy_file, policy);
    let log_file = scratch.path("events.jsonl");
    let mut args = vec![
        "run".to_owned(),
        "--allow-degraded".to_owned(),
        "--policy".to_owned(),
        policy_file.to_str().unwrap().to_owned(),
    ];
    if log {
        args.extend(["-o".to_owned(), log_file.to_str().unwrap().to_owned()]);
    }
    args.extend(flags.iter().map(std::string::ToString::to_string));
    args.push("--".to_owned());
    args.extend(probe::command_line(op));
    sandtrace()
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running sandtrace {args:?}: {e}"))
}

/// `name=outcome` pairs of a `syscalls` probe result.
fn outcomes(result: &str) -> Vec<(String, String)> {
    result
        .split_whitespace()
        .map(|pair| {
            let (name, outcome) = pair.split_once('=').expect("name=outcome");
            (name.to_owned(), outcome.to_owned())
        })
        .collect()
}

#[test]
fn every_denied_syscall_fails_with_eperm_inside_the_session_only() {
    let scratch = Scratch::new("sys-deny");
    let listed = ["uname", "getcwd", "chdir", "ptrace", "sysinfo", "umount2"];
    let policy = format!(
        "[syscalls]\ndeny = [{}]\n",
        listed
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let all: Vec<&str> = listed.iter().chain(&ALWAYS_BLOCKED).copied().collect();
    let op = format!("syscalls {}", all.join(" "));
    let out = in_session(&scratch, &policy, &op, true, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let result = probe::results_of(&out).expect("a result").remove(0);
    for (name, outcome) in outcomes(&result) {
        assert_eq!(outcome, "EPERM", "{name} inside the session ({result})");
    }
    // Outside, the same calls reach the kernel, which refuses their harmless arguments
    // differently.
    let outside = probe::outside(&format!("syscalls {}", listed.join(" "))).remove(0);
    for (name, outcome) in outcomes(&outside) {
        assert_ne!(outcome, "EPERM", "{name} outside the session ({outside})");
    }

    let events = read_jsonl(&scratch.path("events.jsonl"));
    let denied: Vec<&Value> = of_type(&events, "syscall")
        .into_iter()
        .filter(|e| e["action"] == "deny")
        .collect();
    for name in &all {
        let e = denied
            .iter()
            .find(|e| e["syscall"] == *name)
            .unwrap_or_else(|| panic!("no deny event for {name}"));
        assert_eq!(e["errno"], "EPERM", "{e}");
    }
    let summary = summary(&events);
    assert_eq!(
        summary["denials"]["syscalls"],
        denied.len() as u64,
        "{summary}"
    );
    assert!(denied.len() >= all.len(), "{summary}");
    // Refused calls never reach sys_enter; they are counted all the same.
    let counted = |name: &str| {
        summary["syscall_counts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["syscall"] == name)
            .map_or(0, |c| c["count"].as_u64().unwrap())
    };
    assert!(counted("uname") >= 1 && counted("reboot") >= 1, "{summary}");
    assert_eq!(
        summary["total_syscalls"].as_u64().unwrap(),
        of_type(&events, "syscall").len() as u64,
        "every counted syscall has its line"
    );
}

#[test]
fn the_x32_alias_of_a_denied_syscall_kills_the_caller() {
    let scratch = Scratch::new("sys-x32");
    let out = in_session(
        &scratch,
        "[syscalls]\ndeny = [\"uname\"]\n",
        "x32 uname",
        true,
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGSYS),
        "CMD must be killed by SIGSYS:\n{}",
        describe(&out)
    );
    assert_eq!(
        probe::results_of(&out),
        None,
        "the call returned:\n{}",
        describe(&out)
    );
    let events = read_jsonl(&scratch.path("events.jsonl"));
    let kills = of_type(&events, "seccomp");
    assert_eq!(kills.len(), 1, "{kills:#?}");
    let kill = kills[0];
    assert_eq!(kill["action"], "kill");
    assert_eq!(kill["abi"], "x32");
    assert_eq!(kill["syscall"], "uname");
    assert_eq!(kill["syscall_nr"], 0x4000_0000u64 + 63);
    let summary = summary(&events);
    assert_eq!(summary["signal"], libc::SIGSYS, "{summary}");
    assert_eq!(summary["denials"]["syscalls"], 1, "{summary}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("killed by the seccomp filter: x32 syscall"),
        "{stderr}"
    );

    // Outside, the kernel answers the x32 call itself (ENOSYS where x32 is compiled out).
    let outside = probe::outside("x32 uname").remove(0);
    assert!(!outside.is_empty());
}

#[test]
fn denied_and_log_only_calls_are_reported_at_default_verbosity() {
    let scratch = Scratch::new("sys-report");
    let policy = "[syscalls]\ndeny = [\"sysinfo\"]\nlog_only = [\"getppid\"]\n";
    // No -o and no -vv: per-syscall events are off, yet these are reported: denials at the
    // default verbosity, log_only calls from -v on, and both in the summary.
    let op = "syscalls getppid getppid sysinfo sched_yield";
    let out = in_session(&scratch, policy, op, false, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = |text: &str, needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("sysinfo = -1 EPERM") && l.contains("[denied]")),
        "{stderr}"
    );
    // (The operations are the probe's arguments, so the exit line names them too.)
    assert_eq!(lines(&stderr, "] getppid = "), 0, "{stderr}");
    assert!(stderr.contains("denied       1 (syscalls 1)"), "{stderr}");
    assert!(stderr.contains("log_only     2 calls"), "{stderr}");

    let out = in_session(&scratch, policy, op, false, &["-v"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The second call repeats the first's line: counted under it.
    assert_eq!(lines(&stderr, "] getppid = "), 1, "{stderr}");
    assert_eq!(
        lines(&stderr, "(the line above 1 more time)"),
        1,
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .filter(|l| l.contains("] getppid = "))
            .all(|l| l.contains("[log_only]")),
        "{stderr}"
    );
    assert_eq!(
        lines(&stderr, "] sched_yield = "),
        0,
        "unlisted syscalls stay quiet: {stderr}"
    );

    // In the event log they are marked.
    let out = in_session(&scratch, policy, "syscalls getppid sysinfo", true, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let events = read_jsonl(&scratch.path("events.jsonl"));
    let getppid: Vec<&Value> = of_type(&events, "syscall")
        .into_iter()
        .filter(|e| e["syscall"] == "getppid")
        .collect();
    assert!(!getppid.is_empty());
    assert!(
        getppid.iter().all(|e| e["action"] == "log_only"),
        "{getppid:#?}"
    );
    let sysinfo = of_type(&events, "syscall")
        .into_iter()
        .find(|e| e["syscall"] == "sysinfo")
        .expect("a sysinfo line");
    assert_eq!(sysinfo["action"], "deny");
    let summary = summary(&events);
    assert_eq!(summary["log_only_count"], getppid.len() as u64, "{summary}");
}

#[test]
fn calls_the_seccomp_filter_refuses_are_counted_once() {
    // Refused calls never reach sys_enter, which counts every other call: sys_exit counts
    // them, the policy's denials and clone3 (which every session refuses with ENOSYS).
    let scratch = Scratch::new("sys-refused-count");
    let policy = "[syscalls]\ndeny = [\"sysinfo\"]\n";
    let op = "syscalls clone3 clone3 sysinfo getppid getppid getppid";
    let out = in_session(&scratch, policy, op, true, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let result = probe::results_of(&out).expect("a result").remove(0);
    assert_eq!(
        outcomes(&result),
        [
            ("clone3", "ENOSYS"),
            ("clone3", "ENOSYS"),
            ("sysinfo", "EPERM"),
            ("getppid", "ok"),
            ("getppid", "ok"),
            ("getppid", "ok"),
        ]
        .map(|(n, o)| (n.to_owned(), o.to_owned())),
        "{result}"
    );
    let events = read_jsonl(&scratch.path("events.jsonl"));
    let summary = summary(&events);
    let count = |name: &str| {
        summary["syscall_counts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["syscall"] == name)
            .map_or(0, |c| c["count"].as_u64().unwrap())
    };
    // At least the probe's two (the test harness's thread start tries clone3 too).
    assert!(count("clone3") >= 2, "{summary}");
    assert_eq!(count("sysinfo"), 1, "{summary}");
    assert!(count("getppid") >= 3, "{summary}");
    let lines = |name: &str| {
        of_type(&events, "syscall")
            .into_iter()
            .filter(|e| e["syscall"] == name)
            .count() as u64
    };
    assert_eq!(
        lines("clone3"),
        count("clone3"),
        "one line per counted call"
    );
    assert_eq!(
        lines("sysinfo"),
        count("sysinfo"),
        "one line per counted call"
    );
}
