//! `sandtrace learn` on the host (trace-only: this kernel cannot enforce). For real programs,
//! the learned policy validates, and its compiled rules (the tables the kernel programs walk)
//! allow every access of a second run of the same command, while the variant that also reads
//! a secret, or a new path, is denied. tests/vm_learn.rs has the kernel enforce the same
//! policies.

mod common;
mod learn_programs;

use std::{
    ffi::OsString,
    fs,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use common::*;
use learn_programs::*;
use sandtrace::{
    launch,
    policy::{self, Access, CliOverrides, Verdict},
    report::{
        activity::{PathNaming, Replay, resolve_on_host},
        log,
    },
    spawn::PreparedCommand,
};

/// Traces `cmd` in `dir` and returns every access the policy at `policy` would refuse, as
/// (path, access, verdict). CMD's own launch chain, which sandtrace always lets CMD's process
/// execute, is not counted.
fn refused(policy_file: &Path, dir: &Path, cmd: &[String]) -> Vec<(PathBuf, Access, Verdict)> {
    let log_path = dir.join("rerun.jsonl");
    let out = sandtrace_in(
        dir,
        &["run", "--trace-only", "-o", log_path.to_str().unwrap()],
        cmd,
    );
    assert!(
        log_path.exists(),
        "no log from tracing {cmd:?}: {}",
        describe(&out)
    );
    let prepared = policy::prepare(
        Some(policy_file),
        &CliOverrides::default(),
        std::env::var_os("HOME").map(PathBuf::from).as_deref(),
    )
    .unwrap_or_else(|d| panic!("{} does not validate: {d}", policy_file.display()));
    let mut replay = Replay::new(PathNaming::Resolved {
        start_dir: dir.to_owned(),
    });
    log::read(&log_path, |record| replay.record(&record)).expect("reading the log");
    let activity = replay.finish();
    let argv: Vec<OsString> = cmd.iter().map(OsString::from).collect();
    let program = PreparedCommand::new(&argv, &[]).expect("CMD exists").path;
    let chain: Vec<PathBuf> = launch::launch_chain(&program, &argv[1..])
        .iter()
        .map(|p| resolve_on_host(p))
        .collect();
    let mut refused = Vec::new();
    for (path, usage) in &activity.files {
        let launched = usage.exec_by_others == 0 && chain.contains(path);
        let decision = prepared.compiled.decide(path.as_os_str().as_bytes());
        for (needed, access) in [
            (usage.read > 0, Access::Read),
            (usage.write > 0, Access::Write),
            (usage.exec() > 0 && !launched, Access::Exec),
        ] {
            if needed && !decision.allows(access) {
                refused.push((path.clone(), access, decision.verdict(access)));
            }
        }
    }
    refused
}

/// Paths the kernel programs could not record are missing from both runs alike, so this
/// compares what the trace names; tests/vm_learn.rs has the kernel decide everything.
#[test]
fn learned_policies_allow_a_second_run_and_deny_a_secret() {
    for program in programs().into_iter().chain([git()]) {
        let scratch = Scratch::new(&format!("learn-{}", program.name));
        let dir = scratch.0.as_path();
        let policy_file = learn(&program, dir);
        let text = fs::read_to_string(&policy_file).unwrap();

        program.prepare(dir);
        let refused_again = refused(&policy_file, dir, &program.command);
        assert!(
            refused_again.is_empty(),
            "{}: the learned policy refuses part of a second run: {refused_again:?}\n--- policy:\n{text}",
            program.name
        );

        program.prepare(dir);
        let secret = dir.join(SECRET);
        let refused_secret = refused(&policy_file, dir, &program.with_secret);
        let denied_by_rule = refused_secret
            .iter()
            .any(|(path, _, verdict)| *path == secret && matches!(verdict, Verdict::Denied { .. }));
        assert!(
            denied_by_rule,
            "{}: reading {} is not denied by a deny rule: {refused_secret:?}\n--- policy:\n{text}",
            program.name,
            secret.display()
        );
    }
}

/// The learned rules grant what the run used, not the directories it used them in: a file
/// next to one the run read (`tar -C DIR app/config.toml` and `DIR/app/.token`) is refused.
#[test]
fn a_file_next_to_what_the_run_used_is_refused() {
    for program in programs().into_iter().chain([git()]) {
        let scratch = Scratch::new(&format!("learn-neighbour-{}", program.name));
        let dir = scratch.0.as_path();
        let policy_file = learn(&program, dir);
        let text = fs::read_to_string(&policy_file).unwrap();
        program.prepare(dir);
        let neighbour = resolve_on_host(&dir.join(program.neighbour));
        let refused = refused(&policy_file, dir, &program.with_neighbour);
        assert!(
            refused.contains(&(neighbour.clone(), Access::Read, Verdict::Unlisted)),
            "{}: reading {} is not refused: {refused:?}\n--- policy:\n{text}",
            program.name,
            neighbour.display()
        );
    }
}

#[test]
fn a_new_path_is_denied() {
    let programs = programs();
    let python = &programs[0];
    let scratch = Scratch::new("learn-new-path");
    let dir = scratch.0.as_path();
    let policy_file = learn(python, dir);
    python.prepare(dir);
    let mut cmd = python.command.clone();
    cmd[2].push_str("open('/etc/hostname').read()\n");
    let refused = refused(&policy_file, dir, &cmd);
    let hostname = resolve_on_host(Path::new("/etc/hostname"));
    assert_eq!(
        refused,
        [(hostname, Access::Read, Verdict::Unlisted)],
        "only the new path should be refused"
    );
}

#[test]
fn learned_policy_lists_what_the_run_used_and_explains_it() {
    let scratch = Scratch::new("learn-explain");
    let dir = scratch.0.as_path();
    fs::create_dir_all(dir.join("out")).unwrap();
    fs::write(dir.join("in.txt"), "data\n").unwrap();
    let policy_file = dir.join("p.toml");
    let log_file = dir.join("kept.jsonl");
    let out = sandtrace_in(
        dir,
        &[
            "learn",
            "-o",
            policy_file.to_str().unwrap(),
            "--log",
            log_file.to_str().unwrap(),
        ],
        &[
            "sh".to_owned(),
            "-c".to_owned(),
            "cat in.txt > out/copy.txt && mkdir -p out/made/deeper && touch out/made/deeper/x \
             && ls / > /dev/null"
                .to_owned(),
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert!(log_file.exists(), "--log did not keep the event log");
    let text = fs::read_to_string(&policy_file).unwrap();
    let dir_text = dir.to_str().unwrap();
    let entry = |path: &str, comment: &str| {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("\"{path}\",")))
            .unwrap_or_else(|| panic!("no entry {path:?} in:\n{text}"));
        assert!(
            line.contains(&format!("# {comment}")),
            "entry {path:?} is not explained as {comment:?}: {line:?}"
        );
    };
    entry(&format!("{dir_text}/in.txt"), "read");
    entry(&format!("{dir_text}/out/copy.txt"), "written");
    entry(&format!("{dir_text}/out/made"), "directory the run created");
    let cat = resolve_on_host(Path::new("/usr/bin/cat"));
    entry(cat.to_str().unwrap(), "executed");
    // Listing / is used but never allowed.
    assert!(
        text.contains("#   read / (a rule for / would allow everything)"),
        "{text}"
    );
    // No base: nothing denied, no network, only the always-blocked syscalls.
    assert!(text.contains("deny = []\n"), "{text}");
    assert!(text.contains("\nallow = false\n"), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sandtrace: wrote") && stderr.contains("sandtrace run --policy"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_run_killed_by_the_timeout_teaches_nothing() {
    let scratch = Scratch::new("learn-timeout");
    let policy_file = scratch.path("p.toml");
    let out = sandtrace_in(
        &scratch.0,
        &[
            "learn",
            "--timeout",
            "1",
            "-o",
            policy_file.to_str().unwrap(),
        ],
        &["sleep".to_owned(), "5".to_owned()],
    );
    assert_eq!(out.status.code(), Some(124), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("longer --timeout"),
        "{}",
        describe(&out)
    );
    assert!(!policy_file.exists(), "a policy was written");
}

#[test]
fn the_network_is_allowed_only_when_the_run_used_it() {
    let scratch = Scratch::new("learn-network");
    let dir = scratch.0.as_path();
    let learn_from = |name: &str, code: &str| {
        let policy_file = dir.join(name);
        let cmd = [
            "/usr/bin/python3".to_owned(),
            "-c".to_owned(),
            code.to_owned(),
        ];
        let out = sandtrace_in(dir, &["learn", "-o", policy_file.to_str().unwrap()], &cmd);
        assert!(out.status.success(), "{}", describe(&out));
        fs::read_to_string(&policy_file).unwrap()
    };
    // A refused connection to a closed local port is a network attempt all the same.
    let connects = learn_from(
        "connects.toml",
        "import socket\nsocket.socket().connect_ex(('127.0.0.1', 9))\n",
    );
    assert!(connects.contains("\nallow = true\n"), "{connects}");
    assert!(
        connects.contains("# The run used the network (ipv4 connect: 1 call, 1 failed)"),
        "{connects}"
    );
    // A Unix socket pair works without the network.
    let local = learn_from(
        "local.toml",
        "import socket\na, b = socket.socketpair()\na.send(b'x')\nb.recv(1)\n",
    );
    assert!(local.contains("\nallow = false\n"), "{local}");
}
