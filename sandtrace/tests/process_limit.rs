//! `[limits] max_processes` on this host's kernel (no BPF LSM, so `--allow-degraded`): the
//! pids controller (here the hybrid layout's v1 hierarchy) bounds the session's live tasks,
//! refused forks fail with EAGAIN and are reported, and a fork bomb is contained.

mod common;
mod probe;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use common::*;
use serde_json::Value;

/// Where the session's pids cgroup of loader `pid` lives: the v1 pids hierarchy on hybrid
/// hosts, the session's own v2 cgroup on pure v2 hosts.
fn pids_cgroups_of(pid: u32) -> Vec<PathBuf> {
    let mut found = session_cgroups_of(pid);
    if let Ok(entries) = fs::read_dir("/sys/fs/cgroup/pids/sandtrace") {
        found.extend(
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("run-{pid}-"))
                })
                .map(|e| e.path()),
        );
    }
    found.retain(|dir| dir.join("pids.current").exists());
    found
}

fn read_number(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn write_policy(scratch: &Scratch, text: &str) -> String {
    let path = scratch.path("policy.toml");
    common::write_policy(&path, text);
    path.to_str().unwrap().to_owned()
}

#[test]
fn forks_beyond_the_limit_fail_with_eagain_and_are_reported() {
    let scratch = Scratch::new("pids-exact");
    let policy = write_policy(&scratch, "[limits]\nmax_processes = 6\n");
    let log = scratch.path("events.jsonl");
    let mut args = vec![
        "run".to_owned(),
        "--allow-degraded".to_owned(),
        "--policy".to_owned(),
        policy,
        "-o".to_owned(),
        log.to_str().unwrap().to_owned(),
        "--".to_owned(),
    ];
    args.extend(probe::command_line("fork-until-refused"));
    let out = sandtrace()
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let result = probe::results_of(&out).expect("a result").remove(0);
    let field = |name: &str| -> String {
        result
            .split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {result}"))
            .to_owned()
    };
    let forked: u64 = field("forked").parse().unwrap();
    let threads: u64 = field("threads").parse().unwrap();
    assert_eq!(field("refused"), "EAGAIN", "{result}");
    // Every task counts: the probe's own threads and the children it forked.
    assert_eq!(forked + threads, 6, "{result}");

    let events = read_jsonl(&log);
    let refused: Vec<&Value> = of_type(&events, "process")
        .into_iter()
        .filter(|e| e["action"] == "fork_refused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(refused[0]["errno"], "EAGAIN");
    assert!(refused[0]["syscall"] == "clone" || refused[0]["syscall"] == "fork");
    let summary = summary(&events);
    assert_eq!(summary["denials"]["processes"], 1, "{summary}");
    assert!(pids_cgroups_of(std::process::id()).is_empty());
}

#[test]
fn a_fork_bomb_never_exceeds_max_processes_and_ends_at_the_timeout() {
    let scratch = Scratch::new("pids-bomb");
    let policy = write_policy(&scratch, "[limits]\nmax_processes = 10\ntimeout = 3\n");
    let log = scratch.path("events.jsonl");
    let marker = format!("sandtrace-bomb-{}", std::process::id());
    // The classic bomb: every call starts two more in the background. It runs in a subshell, so
    // CMD's own shell forks once, before the bomb exists (a refused fork of its own would end it
    // early: "Cannot fork", status 2), then waits, so the session lasts until the timeout
    // whatever happens to the bomb. $0 carries the marker so leftovers can be found.
    let bomb = "(b() { b | b & }; b); exec sleep 60";
    let mut started = Started::spawn(sandtrace().args([
        "run",
        "--allow-degraded",
        "--policy",
        &policy,
        "-o",
        log.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        bomb,
        &marker,
    ]));
    let loader = started.child.id();
    let spawned = Instant::now();
    // The timeout counts from the session's start, which a loaded machine delays: time the
    // session from when its pids cgroup first shows up.
    let mut session_seen: Option<Instant> = None;
    let mut peak_tasks = 0;
    let mut samples = 0;
    // Count the session's tasks from outside, twice: the pids controller's own count and the
    // tasks listed in the session's cgroups.
    while started.child.try_wait().unwrap().is_none() {
        for dir in pids_cgroups_of(loader) {
            if let Some(n) = read_number(&dir.join("pids.current")) {
                peak_tasks = peak_tasks.max(n);
                samples += 1;
                session_seen.get_or_insert_with(Instant::now);
            }
        }
        for dir in session_cgroups_of(loader) {
            if let Ok(threads) = fs::read_to_string(dir.join("cgroup.threads")) {
                peak_tasks = peak_tasks.max(threads.lines().count() as u64);
            }
        }
        // 3 s of timeout, then teardown; the margins only matter when the timeout is broken.
        match session_seen {
            Some(seen) => assert!(
                seen.elapsed() < Duration::from_secs(60),
                "the session outlived its timeout"
            ),
            None => assert!(
                spawned.elapsed() < Duration::from_secs(120),
                "the session did not start within 120 s"
            ),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = started.wait();
    assert!(samples > 10, "the session's pids cgroup was never seen");
    assert!(
        peak_tasks <= 10,
        "{peak_tasks} live tasks under max_processes = 10"
    );
    assert_eq!(out.status.code(), Some(124), "{}", describe(&out));

    let events = read_jsonl(&log);
    let summary = summary(&events);
    assert_eq!(summary["ending"], "timed_out", "{summary}");
    let refused = of_type(&events, "process")
        .into_iter()
        .filter(|e| e["action"] == "fork_refused")
        .count() as u64;
    // Sampling can miss the peak on a loaded machine; a refused fork proves the bomb reached it.
    assert!(refused > 0, "no refused fork was reported");
    assert!(
        summary["denials"]["processes"].as_u64().unwrap() >= refused,
        "{summary}"
    );
    // Nothing of the session is left: processes, v2 and v1 cgroups.
    assert!(
        wait_until(Duration::from_secs(60), || processes_with(&marker)
            .is_empty()),
        "bomb processes outlived the session: {:?}",
        processes_with(&marker)
    );
    assert!(session_cgroups_of(loader).is_empty());
    assert!(pids_cgroups_of(loader).is_empty());
}

#[test]
fn a_degraded_session_cannot_leave_its_cgroup_and_with_it_the_limit() {
    // Without BPF LSM nothing checks writes to cgroup files: the session must not see them.
    let scratch = Scratch::new("pids-escape");
    let policy = write_policy(&scratch, "[limits]\nmax_processes = 20\n");
    let script = "for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/unified/cgroup.procs \
                  /sys/fs/cgroup/pids/cgroup.procs /sys/fs/cgroup/pids/sandtrace/cgroup.procs; do \
                  (echo 0 > $f) 2>/dev/null && echo LEFT-THROUGH $f; done; \
                  echo ENTRIES $(ls -A /sys/fs/cgroup | wc -l); cat /proc/self/cgroup";
    let out = run(&[
        "run",
        "--allow-degraded",
        "--policy",
        &policy,
        "--",
        "/bin/sh",
        "-c",
        script,
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("LEFT-THROUGH"), "{}", describe(&out));
    assert!(stdout.contains("ENTRIES 0"), "{}", describe(&out));
    let v2 = stdout
        .lines()
        .find(|l| l.starts_with("0::"))
        .unwrap_or_else(|| panic!("no cgroup v2 line\n{}", describe(&out)));
    assert!(v2.contains("/sandtrace/run-"), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cgroup file systems are hidden"),
        "{}",
        describe(&out)
    );
}
