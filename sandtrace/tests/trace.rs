//! `sandtrace run --trace-only` (degraded where a test needs a denial) on the host's real
//! kernel: the JSONL log, exact syscall counts, session isolation, exit statuses, and a session
//! lifetime that nothing escapes.

mod common;
mod probe;

use std::{
    io::Write as _,
    os::unix::process::ExitStatusExt as _,
    process::Stdio,
    time::{Duration, Instant},
};

use common::*;
use serde_json::Value;

fn trace_to_log(scratch: &Scratch, cmd: &[&str]) -> (std::process::Output, Vec<Value>) {
    let log = scratch.path("events.jsonl");
    let mut args = vec!["run", "--trace-only", "-o", log.to_str().unwrap(), "--"];
    args.extend_from_slice(cmd);
    let out = run(&args);
    let events = read_jsonl(&log);
    (out, events)
}

/// Every line parses, the summary is last, and its counts agree with the lines.
fn assert_consistent_log(events: &[Value]) {
    let summary = summary(events);
    let syscalls = of_type(events, "syscall");
    let processes = of_type(events, "process");
    assert_eq!(summary["lost_events"], 0, "events were lost: {summary}");
    assert_eq!(
        summary["total_syscalls"].as_u64().unwrap(),
        syscalls.len() as u64,
        "summary total_syscalls disagrees with the number of syscall lines"
    );
    let distinct: std::collections::BTreeSet<_> = syscalls
        .iter()
        .map(|s| s["syscall"].as_str().unwrap())
        .collect();
    assert_eq!(
        summary["unique_syscalls"].as_u64().unwrap(),
        distinct.len() as u64
    );
    let new_processes = processes
        .iter()
        .filter(|p| p["action"] == "fork" && p["child_pid"] == p["child_tgid"])
        .count() as u64;
    assert_eq!(
        summary["process_count"].as_u64().unwrap(),
        1 + new_processes
    );
    for s in &syscalls {
        for key in [
            "timestamp",
            "pid",
            "tgid",
            "syscall",
            "syscall_nr",
            "return_value",
            "success",
            "duration_us",
            "action",
            "category",
        ] {
            assert!(s.get(key).is_some(), "syscall line lacks {key}: {s}");
        }
        assert_eq!(s["args"]["raw"].as_array().map(Vec::len), Some(6), "{s}");
    }
    for key in [
        "total_syscalls",
        "unique_syscalls",
        "denied_count",
        "process_count",
        "duration_ms",
        "exit_code",
        "lost_events",
    ] {
        assert!(summary.get(key).is_some(), "summary lacks {key}: {summary}");
    }
}

#[test]
fn true_produces_a_consistent_log() {
    let scratch = Scratch::new("true");
    let (out, events) = trace_to_log(&scratch, &["/bin/true"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_consistent_log(&events);
    let execs: Vec<_> = of_type(&events, "process")
        .into_iter()
        .filter(|p| p["action"] == "exec")
        .collect();
    assert_eq!(execs.len(), 1, "{execs:?}");
    assert_eq!(execs[0]["path"], "/bin/true");
    assert_eq!(summary(&events)["exit_code"], 0);
}

#[test]
fn ls_produces_a_consistent_log_with_paths() {
    let scratch = Scratch::new("ls");
    let (out, events) = trace_to_log(&scratch, &["ls", "/"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("usr"),
        "ls output lost: {}",
        describe(&out)
    );
    assert_consistent_log(&events);
    let opened_root = of_type(&events, "syscall")
        .iter()
        .any(|s| s["syscall"] == "openat" && s["path"] == "/");
    assert!(opened_root, "no openat of / with a decoded path");
}

/// Runs perl making `k` getpid syscalls; returns the getpid events and all events.
fn getpid_events(k: u32) -> (usize, Vec<Value>) {
    let scratch = Scratch::new(&format!("getpid{k}"));
    let script = format!("syscall(39) for 1..{k};");
    let (out, events) = trace_to_log(&scratch, &["perl", "-e", &script]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_consistent_log(&events);
    let n = of_type(&events, "syscall")
        .iter()
        .filter(|s| s["syscall"] == "getpid")
        .count();
    (n, events)
}

#[test]
fn exactly_k_getpid_calls_give_exactly_k_events_and_nothing_from_outside() {
    // Busy processes outside the session must not show up in its log.
    let mut noise = std::process::Command::new("perl")
        .args(["-e", "syscall(39) while 1"])
        .spawn()
        .expect("starting a noise process");
    let (baseline, _) = getpid_events(0);
    let (with_k, events) = getpid_events(5000);
    noise.kill().ok();
    noise.wait().ok();
    assert_eq!(
        with_k - baseline,
        5000,
        "getpid events: {with_k} with the loop, {baseline} without"
    );
    let noise_pid = u64::from(noise.id());
    assert!(
        events.iter().all(|e| e["tgid"].as_u64() != Some(noise_pid)),
        "an event came from the noise process outside the session"
    );
    // Every event comes from CMD's process or a process it created.
    let root = events[0]["tgid"].as_u64().unwrap();
    let mut session: std::collections::HashSet<u64> = [root].into();
    for e in &events {
        if e["action"] == "fork" {
            session.insert(e["child_tgid"].as_u64().unwrap());
        }
        if let Some(tgid) = e["tgid"].as_u64() {
            assert!(
                session.contains(&tgid),
                "event from tgid {tgid} outside the session: {e}"
            );
        }
    }
}

#[test]
fn events_lost_to_a_full_ring_buffer_are_counted() {
    let scratch = Scratch::new("lost");
    let log = scratch.path("t.jsonl");
    let out = run(&[
        "run",
        "--trace-only",
        "--ring-buffer-size",
        "4096",
        "-o",
        log.to_str().unwrap(),
        "--",
        "perl",
        "-e",
        "syscall(39) for 1..200000",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let events = read_jsonl(&log);
    let summary = summary(&events);
    let total = summary["total_syscalls"].as_u64().unwrap();
    let lost = summary["lost_events"].as_u64().unwrap();
    let lines = of_type(&events, "syscall").len() as u64;
    assert!(
        lost > 0,
        "a 4 KiB ring buffer lost nothing of {total} syscalls?"
    );
    assert!(
        lines < total && lines + lost >= total,
        "lines {lines} + lost {lost} vs total {total}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lost events"),
        "{}",
        describe(&out)
    );
}

#[test]
fn exit_status_conventions() {
    let code = |args: &[&str]| {
        let out = run(args);
        (out.status.code(), describe(&out))
    };
    let (c, d) = code(&["run", "--trace-only", "--", "sh", "-c", "exit 7"]);
    assert_eq!(c, Some(7), "{d}");
    let (c, d) = code(&["run", "--trace-only", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(c, Some(128 + 9), "{d}");
    let (c, d) = code(&["run", "--trace-only", "--", "no-such-command-for-sandtrace"]);
    assert_eq!(c, Some(127), "{d}");
    assert!(d.contains("command not found"), "{d}");
    let scratch = Scratch::new("exit-status");
    let plain = scratch.path("not-executable");
    std::fs::write(&plain, "data").unwrap();
    let (c, d) = code(&["run", "--trace-only", "--", plain.to_str().unwrap()]);
    assert_eq!(c, Some(126), "{d}");
    let (c, d) = code(&["run", "--no-such-flag", "--", "true"]);
    assert_eq!(c, Some(2), "{d}");
}

#[test]
fn stdio_passes_through_untouched() {
    let mut child = sandtrace()
        .args(["run", "--trace-only", "--", "sh", "-c", "cat; echo err >&2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nworld\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(out.stdout, b"hello\nworld\n", "{}", describe(&out));
    // After the names of the variables CMD does not get, printed before it starts.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let cmd_err = match stderr.strip_prefix("sandtrace: environment: removed") {
        Some(rest) => rest.split_once('\n').map_or("", |(_, after)| after),
        None => &stderr,
    };
    assert!(cmd_err.starts_with("err\n"), "{}", describe(&out));
}

#[test]
fn timeout_kills_setsid_and_double_forked_processes() {
    let marker = "1000.4242";
    let script = format!(
        "setsid sh -c 'sleep {marker} & sleep {marker} &' ; (sleep {marker} &) ; sleep {marker}"
    );
    let scratch = Scratch::new("timeout");
    let log = scratch.path("t.jsonl");
    let started = Instant::now();
    let out = run(&[
        "run",
        "--trace-only",
        "--timeout",
        "2",
        "-o",
        log.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(out.status.code(), Some(124), "{}", describe(&out));
    // Not a speed check (the machine may be busy): the session must end at its timeout, not
    // when its 1000 s sleeps do.
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        processes_with(marker).is_empty(),
        "left behind: {:?}",
        processes_with(marker)
    );
    let events = read_jsonl(&log);
    assert_eq!(summary(&events)["ending"], "timed_out");
    assert_eq!(summary(&events)["exit_code"], 124);
}

#[test]
fn the_timeout_holds_while_sandtrace_cannot_write_to_its_stderr() {
    // CMD fills the stderr pipe that it shares with sandtrace (nobody reads it) and makes
    // sandtrace report denials until its end: sandtrace's next write blocks, and with it its
    // event loop. The session must still end at its timeout. The marker is the shell's $0.
    let marker = "sandtrace-stuck-stderr";
    let scratch = Scratch::new("timeout-stuck");
    let policy = scratch.path("policy.toml");
    write_policy(&policy, "[network]\nallow = false\n");
    // A new port each time: every attempt is a denial line of its own.
    let connect = format!("{} 'tcp-connect 192.0.2.1:'$port", probe::PROBE);
    let script = format!(
        "head -c 200000 /dev/zero >&2 & port=1; \
         while :; do {connect}; port=$((port % 60000 + 1)); done"
    );
    let (reader, writer) = std::io::pipe().unwrap();
    let mut loader = sandtrace()
        .args(["run", "--allow-degraded", "--timeout", "5", "--policy"])
        .arg(&policy)
        .args(["--", "sh", "-c", &script, marker])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(writer)
        .spawn()
        .unwrap();
    // The loader's own command line holds the marker too.
    let cmd_processes = || {
        let mut found = processes_with(marker);
        found.retain(|&pid| pid != loader.id());
        found
    };
    assert!(
        wait_until(Duration::from_secs(120), || !cmd_processes().is_empty()),
        "CMD did not start"
    );
    assert!(
        wait_until(Duration::from_secs(120), || cmd_processes().is_empty()),
        "CMD outlived its timeout while sandtrace was blocked: {:?}",
        cmd_processes()
    );
    assert_eq!(
        loader.try_wait().unwrap(),
        None,
        "sandtrace was not blocked: the test proves nothing"
    );
    // Reading the pipe lets sandtrace finish.
    let stderr = std::thread::spawn(move || std::io::read_to_string(reader));
    let status = loader.wait().unwrap();
    let stderr = String::from_utf8_lossy(stderr.join().unwrap().unwrap().as_bytes()).into_owned();
    assert_eq!(status.code(), Some(124), "{}", stderr.replace('\0', ""));
}

#[test]
fn sigkill_of_the_loader_leaves_no_session_process() {
    let marker = "1001.4242";
    let script = format!("setsid sh -c 'sleep {marker} &' ; (sleep {marker} &) ; sleep {marker}");
    let mut loader = sandtrace()
        .args(["run", "--trace-only", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(120), || processes_with(marker).len()
            >= 3),
        "the session's processes never started"
    );
    loader.kill().unwrap(); // SIGKILL
    loader.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || processes_with(marker)
            .is_empty()),
        "session processes survived the loader: {:?}",
        processes_with(marker)
    );
    // The next run removes the dead loader's cgroup.
    let out = run(&["run", "--trace-only", "--", "true"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        session_cgroups_of(loader.id()).is_empty(),
        "stale cgroup: {:?}",
        session_cgroups_of(loader.id())
    );
}

#[test]
fn sigint_stops_the_session_cleanly() {
    let marker = "1002.4242";
    let scratch = Scratch::new("sigint");
    let log = scratch.path("t.jsonl");
    let mut loader = sandtrace()
        .args([
            "run",
            "--trace-only",
            "-o",
            log.to_str().unwrap(),
            "--",
            "sh",
            "-c",
        ])
        .arg(format!("setsid sleep {marker} & sleep {marker}"))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(120), || processes_with(
        marker
    )
    .len()
        >= 2));
    // SAFETY: kill has no memory preconditions; the loader is our own child, not yet reaped.
    unsafe { libc::kill(loader.id() as i32, libc::SIGINT) };
    let status = loader.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(status.signal().is_none());
    assert!(
        processes_with(marker).is_empty(),
        "left behind: {:?}",
        processes_with(marker)
    );
    let events = read_jsonl(&log);
    assert_eq!(summary(&events)["ending"], "interrupted");
    assert!(session_cgroups_of(loader.id()).is_empty());
}

/// Init is a copy of the loader, so it held the loader's descriptors, among them the session
/// cgroup's directory: a root CMD could write itself into the parent cgroup through
/// `/proc/1/fd/N/../cgroup.procs` and leave the trace. Init now closes them and is not dumpable.
#[test]
fn cmd_cannot_leave_the_session_through_inits_descriptors() {
    let script = "ls /proc/1/fd/ 2>&1; \
                  for f in /proc/1/fd/*; do \
                    for d in $f $f/.. $f/../..; do echo $$ > $d/cgroup.procs 2>/dev/null; done; \
                  done; grep '^0::' /proc/self/cgroup";
    let out = run(&["run", "--trace-only", "--", "sh", "-c", script]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cgroup = stdout.lines().last().unwrap_or_default();
    assert!(
        cgroup.contains("/sandtrace/run-"),
        "CMD left the session cgroup: {stdout}"
    );
}

#[test]
fn the_session_cgroup_is_removed_after_every_kind_of_run() {
    for (args, code) in [
        (&["run", "--trace-only", "--", "true"][..], 0),
        (&["run", "--trace-only", "--", "sh", "-c", "exit 3"], 3),
        (
            &["run", "--trace-only", "--", "sh", "-c", "kill -9 $$"],
            137,
        ),
        (
            &["run", "--trace-only", "--timeout", "1", "--", "sleep", "30"],
            124,
        ),
        (
            &["run", "--trace-only", "--", "sh", "-c", "sleep 30 & exit 0"],
            0,
        ),
    ] {
        let child = sandtrace()
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            describe(&out)
        );
        assert!(
            session_cgroups_of(pid).is_empty(),
            "{args:?} left {:?}",
            session_cgroups_of(pid)
        );
    }
}

#[test]
fn enforcing_mode_is_refused_where_bpf_lsm_cannot_load() {
    let probe = run(&["probe"]);
    if String::from_utf8_lossy(&probe.stdout).contains("bpf-lsm: available") {
        skip(
            "enforcing_mode_is_refused_where_bpf_lsm_cannot_load",
            "this kernel has BPF LSM; the VM suite covers enforcing mode",
            InCi::MayLack,
        );
        return;
    }
    let out = run(&["run", "--", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BPF LSM is not available"), "{err}");
    assert!(err.contains("--trace-only"), "{err}");
}

/// The exec records of a real run carry what an auditor reads first: the argument list (every
/// argument, empty and quoted ones included), the working directory, the user and group, and
/// a script's `#!` interpreter; a list longer than an event holds is cut and flagged.
#[test]
fn exec_events_carry_argv_cwd_ids_and_the_interpreter() {
    let scratch = Scratch::new("exec-fields");
    let dir = std::fs::canonicalize(&scratch.0).unwrap();
    let script = dir.join("run.sh");
    std::fs::write(&script, "#!/bin/sh\nexec /bin/true \"$@\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = dir.join("events.jsonl");
    let long = "x".repeat(3000);
    let out = sandtrace()
        .current_dir(&dir)
        .args(["run", "--trace-only", "--user", "nobody", "-o"])
        .arg(&log)
        .args(["--", "./run.sh", "a b", "", "it's"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let events = read_jsonl(&log);
    let execs: Vec<&Value> = of_type(&events, "process")
        .into_iter()
        .filter(|e| e["action"] == "exec")
        .collect();
    let context = format!("{execs:#?}\n{}", describe(&out));
    let script_exec = execs
        .iter()
        .find(|e| e["interpreter"] == "/bin/sh")
        .unwrap_or_else(|| panic!("no exec of the script: {context}"));
    let script = script.to_str().unwrap();
    assert!(
        script_exec["path"] == "./run.sh" || script_exec["path"] == script,
        "{context}"
    );
    let argv = &script_exec["argv"];
    assert_eq!(argv[0], "/bin/sh", "{context}");
    assert_eq!(
        argv.as_array().unwrap()[2..],
        ["a b", "", "it's"],
        "{context}"
    );
    assert_eq!(script_exec["cwd"], dir.to_str().unwrap(), "{context}");
    assert_eq!(script_exec["uid"], 65534, "{context}");
    assert!(script_exec.get("argv_truncated").is_none(), "{context}");
    let true_exec = execs
        .iter()
        .find(|e| e["path"] == "/bin/true")
        .unwrap_or_else(|| panic!("no exec of /bin/true: {context}"));
    assert_eq!(
        true_exec["argv"],
        serde_json::json!(["/bin/true", "a b", "", "it's"]),
        "{context}"
    );
    assert!(true_exec.get("interpreter").is_none(), "{context}");

    // A list longer than an event carries: its beginning, flagged.
    let out = sandtrace()
        .current_dir(&dir)
        .args(["run", "--trace-only", "-o"])
        .arg(dir.join("long.jsonl"))
        .args(["--", "/bin/true", "short", &long])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let events = read_jsonl(&dir.join("long.jsonl"));
    let exec = of_type(&events, "process")
        .into_iter()
        .find(|e| e["action"] == "exec" && e["argv"][0] == "/bin/true")
        .unwrap_or_else(|| panic!("no exec of /bin/true: {}", describe(&out)));
    assert_eq!(exec["argv_truncated"], true, "{exec:#}");
    assert_eq!(exec["argv"][1], "short", "{exec:#}");
    let cut = exec["argv"][2].as_str().unwrap();
    assert!(
        cut.len() < long.len() && long.starts_with(cut),
        "the cut argument is the long one's beginning: {exec:#}"
    );
    assert_eq!(exec["uid"], 0, "{exec:#}");
}
