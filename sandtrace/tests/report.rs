//! `sandtrace report` on recorded logs (tests/golden/*.jsonl), compared with the expected text
//! and JSON reports beside them. Set SANDTRACE_BLESS=1 to rewrite the expected files after a
//! deliberate change, and review the diff.
//!
//! The logs are real runs: `trace_only.jsonl` (a shell changing directory, writing, creating
//! directories and exiting 3, traced on the host), `enforce.jsonl` (the same kind of shell
//! under an enforced policy in the BPF-LSM VM: a deny-rule denial, unlisted-path denials, a
//! syscall refused by seccomp and a refused TCP connect), and `truncated.jsonl` (trace_only.jsonl cut in the middle of
//! a line, as a killed sandtrace leaves it: no summary line).

mod common;

use std::{fs, path::Path, process::Stdio};

use common::*;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");

/// Runs `sandtrace report NAME.jsonl ARGS` from the golden directory.
fn report(name: &str, args: &[&str]) -> String {
    let out = sandtrace()
        .current_dir(GOLDEN)
        .arg("report")
        .arg(format!("{name}.jsonl"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running sandtrace report {name}: {e}"));
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        out.stderr.is_empty(),
        "report wrote to stderr: {}",
        describe(&out)
    );
    String::from_utf8(out.stdout).expect("the report is UTF-8")
}

fn assert_golden(actual: &str, expected_file: &str) {
    let path = Path::new(GOLDEN).join(expected_file);
    if std::env::var_os("SANDTRACE_BLESS").is_some() {
        fs::write(&path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e} (run with SANDTRACE_BLESS=1 to create it)",
            path.display()
        )
    });
    if actual != expected {
        let first = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or_else(|| actual.lines().count().min(expected.lines().count()));
        panic!(
            "{} differs from the report, first at line {}:\n  expected: {:?}\n  actual:   {:?}\n\
             --- whole report:\n{actual}",
            path.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first),
        );
    }
}

fn golden(name: &str) {
    assert_golden(&report(name, &[]), &format!("{name}.txt"));
    let json = report(name, &["--format", "json"]);
    serde_json::from_str::<serde_json::Value>(&json)
        .unwrap_or_else(|e| panic!("--format json of {name} is not JSON: {e}\n{json}"));
    assert_golden(&json, &format!("{name}.json"));
}

#[test]
fn trace_only_log() {
    golden("trace_only");
}

#[test]
fn enforced_log_with_denials() {
    golden("enforce");
}

#[test]
fn truncated_log() {
    golden("truncated");
}

#[test]
fn trace_only_report_names_what_the_shell_did() {
    let text = report("trace_only", &[]);
    for expected in [
        "exited with status 3",
        // `cd sub && cat ../conf.txt > out.txt && mkdir -p made/deeper`: dash changes
        // directory by absolute path, and the rest is replayed through the working directory.
        "    /tmp/gold/work/conf.txt\n",
        "    /tmp/gold/work/sub/out.txt  (created)\n",
        "    /tmp/gold/work/sub/made  (directory, created directory)\n",
        "    /tmp/gold/work/sub/made/deeper  (created directory)\n",
        "    /usr/bin/cat\n",
        "no events lost",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
}

#[test]
fn enforced_report_names_the_rules_that_fired() {
    let text = report("enforce", &[]);
    for expected in [
        "open read /tmp/gold/work/secret.txt: deny rule \"**/secret.txt\" \
         (/tmp/gold/enforce-policy.toml:5:9)",
        "create write /tmp/gold/work/nope.txt: denied: no allow rule covers it",
        "syscall chroot: refused by the policy's seccomp filter",
        "connect ipv4 tcp 127.0.0.1:9: no allow_connect rule covers this address",
        "    connect ipv4 tcp 127.0.0.1:9: denied 1×",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
}

#[test]
fn truncated_report_says_the_log_was_cut() {
    let text = report("truncated", &[]);
    for expected in [
        "the log ends without a summary line",
        "line 301 is cut off",
        "lost events unknown",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&report("truncated", &["--format", "json"])).unwrap();
    assert_eq!(json["complete"], false, "{json}");
}

#[test]
fn a_missing_log_is_an_error_that_says_what_to_do() {
    let out = run(&["report", "/nonexistent/events.jsonl"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/events.jsonl") && stderr.contains("sandtrace run -o"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_file_that_is_not_a_log_is_rejected() {
    let scratch = Scratch::new("report-not-a-log");
    let path = scratch.path("notes.txt");
    fs::write(&path, "hello\nworld\n").unwrap();
    let out = run(&["report", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no sandtrace event"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_report_says_who_the_command_ran_as() {
    let scratch = Scratch::new("report-run-as");
    let log = scratch.path("events.jsonl");
    let log = log.to_str().unwrap();
    // As root without sudo, whatever the environment the tests run in.
    let sandtrace_as_root = |args: &[&str]| {
        sandtrace()
            .args(args)
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .env_remove("SUDO_USER")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = sandtrace_as_root(&["run", "--trace-only", "-o", log, "--", "true"]);
    assert!(out.status.success(), "{}", describe(&out));
    let report = |args: &[&str]| {
        let out = sandtrace_as_root(&[&["report", log][..], args].concat());
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8(out.stdout).expect("the report is UTF-8")
    };
    let text = report(&[]);
    assert!(
        text.contains("ran as uid 0 (root), gid 0, capabilities: none"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&report(&["--format", "json"])).unwrap();
    assert_eq!(json["run"]["run_as"]["uid"], 0, "{json}");
    assert_eq!(
        json["run"]["run_as"]["capabilities"],
        serde_json::json!([]),
        "{json}"
    );
}
