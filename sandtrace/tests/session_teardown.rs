//! A session that fails part-way through its start leaves nothing behind: no cgroup (v2 session
//! or v1 pids), no process. Checked from outside, on this host (trace and degraded sessions
//! need no BPF LSM).

mod common;

use std::{fs, path::Path, process::Stdio};

use common::{Scratch, describe, sandtrace};

/// Where session cgroups live on the layouts sandtrace supports.
const PARENTS: &[&str] = &[
    "/sys/fs/cgroup/sandtrace",
    "/sys/fs/cgroup/unified/sandtrace",
    "/sys/fs/cgroup/pids/sandtrace",
];

/// The session cgroups a sandtrace with process id `pid` created and did not remove.
fn left_behind(pid: u32) -> Vec<String> {
    let prefix = format!("run-{pid}-");
    PARENTS
        .iter()
        .filter_map(|parent| fs::read_dir(parent).ok())
        .flat_map(std::iter::Iterator::flatten)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|path| path.display().to_string())
        .collect()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The event log cannot be created: by then the session cgroup (and the pids cgroup of
/// `max_processes`) exist and the kernel programs are loaded; the error must undo all of it.
#[test]
fn a_start_that_fails_after_the_cgroups_exist_removes_them() {
    if !is_root() {
        eprintln!("skipped: a_start_that_fails_after_the_cgroups_exist_removes_them: needs root");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        return;
    }
    let scratch = Scratch::new("teardown");
    let policy = scratch.path("limit.toml");
    fs::write(&policy, "[limits]\nmax_processes = 16\n").unwrap();
    let log = scratch.path("no-such-dir/events.jsonl");
    for mode in ["--trace-only", "--allow-degraded"] {
        let mut args = vec![mode, "--policy", policy.to_str().unwrap()];
        if mode == "--trace-only" {
            args.truncate(1);
        }
        let child = sandtrace()
            .arg("run")
            .args(&args)
            .args(["-o", log.to_str().unwrap(), "--", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting sandtrace");
        let pid = child.id();
        let out = child.wait_with_output().expect("waiting for sandtrace");
        assert_eq!(out.status.code(), Some(125), "{mode}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("events.jsonl"),
            "{mode}: the error names the log: {stderr}"
        );
        assert!(!Path::new(&log).exists());
        assert_eq!(
            left_behind(pid),
            Vec::<String>::new(),
            "{mode}: {}",
            describe(&out)
        );
    }
}
