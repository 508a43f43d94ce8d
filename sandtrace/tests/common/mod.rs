//! Helpers shared by the integration tests: running the real sandtrace binary and reading its
//! JSONL log. Tests panic with context instead of returning errors.
#![allow(dead_code)] // each test crate uses a different subset

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;

pub const SANDTRACE: &str = env!("CARGO_BIN_EXE_sandtrace");

/// The `[filesystem]` section of a test policy that is about other rules: the whole file
/// system, as the VM suite's give. In a degraded session on a host with Landlock (these
/// machines) the path rules hold as they do under BPF LSM.
pub const WHOLE_FILESYSTEM: &str =
    "[filesystem]\nallow_read = [\"/\"]\nallow_write = [\"/\"]\nallow_exec = [\"/\"]\n";

/// Writes the test policy `text` to `path`, with [`WHOLE_FILESYSTEM`] appended where it has
/// no `[filesystem]` section (appended: the positions the tests check stay the same).
pub fn write_policy(path: &Path, text: &str) {
    let text = if text.contains("[filesystem]") {
        text.to_owned()
    } else {
        format!("{text}\n{WHOLE_FILESYSTEM}")
    };
    fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// A fresh scratch directory under the system temp dir, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        // Unique within the process too: tests of one binary run in parallel, often with
        // the same name.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sandtrace-test-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn sandtrace() -> Command {
    let mut cmd = Command::new(SANDTRACE);
    cmd.env("NO_COLOR", "1");
    cmd
}

/// Runs `sandtrace ARGS` to completion with stdin closed.
pub fn run(args: &[&str]) -> Output {
    sandtrace()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running sandtrace {args:?}: {e}"))
}

/// A sandtrace started in the background (stdin and stdout null) whose stderr is read as it
/// comes: a test that polls the child while a chatty session (a fork bomb's "Cannot fork")
/// fills an unread pipe would block sandtrace's last write and wait for it forever.
pub struct Started {
    pub child: Child,
    stderr: std::thread::JoinHandle<Vec<u8>>,
}

impl Started {
    pub fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting sandtrace");
        let mut pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            text
        });
        Self { child, stderr }
    }

    /// Waits for sandtrace and everything it wrote to stderr.
    pub fn wait(mut self) -> Output {
        let status = self.child.wait().unwrap();
        Output {
            status,
            stdout: Vec::new(),
            stderr: self.stderr.join().unwrap(),
        }
    }
}

pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Parses every line of a JSONL log, panicking with the line number on invalid JSON.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{}:{}: invalid JSON ({e}): {line}", path.display(), i + 1)
            })
        })
        .collect()
}

pub fn of_type<'a>(events: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event_type"] == event_type)
        .collect()
}

/// The summary line, asserting it is the last line and the only summary.
pub fn summary(events: &[Value]) -> &Value {
    let last = events.last().expect("empty event log");
    assert_eq!(
        last["event_type"], "summary",
        "the last line is not the summary: {last}"
    );
    assert_eq!(
        of_type(events, "summary").len(),
        1,
        "more than one summary line"
    );
    last
}

/// Pids of live processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("reading /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) {
                found.push(pid);
            }
        }
    }
    found
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The session cgroup directories a loader with this pid created that still exist.
pub fn session_cgroups_of(loader_pid: u32) -> Vec<PathBuf> {
    let mut left = Vec::new();
    for root in [
        "/sys/fs/cgroup/sandtrace",
        "/sys/fs/cgroup/unified/sandtrace",
    ] {
        if let Ok(entries) = fs::read_dir(root) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("run-{loader_pid}-"))
                {
                    left.push(e.path());
                }
            }
        }
    }
    left
}

/// Whether a prerequisite that a test lacks is one the project's CI always provides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InCi {
    /// CI provides it (root, the tools `cargo xtask setup` installs): with `CI` set, its
    /// absence is a failure, not a skip.
    Guaranteed,
    /// It depends on the machine (the kernel's BPF LSM, for one).
    MayLack,
}

/// Reports that `test` cannot run here: prints `skipped: TEST: WHY` on stderr, so that a skip
/// is never mistaken for a pass; the caller then returns. Panics instead when the missing
/// prerequisite is [`InCi::Guaranteed`] and the `CI` environment variable is set.
pub fn skip(test: &str, why: &str, in_ci: InCi) {
    if in_ci == InCi::Guaranteed && std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{test}: {why} (CI is set, and CI must provide this)");
    }
    eprintln!("skipped: {test}: {why}");
}

/// Which of the VM suite's side-by-side guests runs the heavy end-to-end scenarios (real
/// package managers, learned policies, the session's DNS). Their kernel side is checked in
/// every kernel by the suite's other tests (programs loading in every mode, the rules'
/// matrix), so each scenario runs in one guest only, and the guests finish together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestShare {
    /// Learned policies (the longest set; the first guest boots the slower 6.1).
    First,
    /// npm, pnpm, composer, DNS.
    Second,
}

/// This guest's place in the VM suite, `(index, count)`: `cargo xtask vm-test` sets
/// `SANDTRACE_VM_SHARD=INDEX/COUNT` in each guest; `None` outside it (a test run by hand).
pub fn guest_shard() -> Option<(usize, usize)> {
    let shard = std::env::var("SANDTRACE_VM_SHARD").ok()?;
    let parsed = shard
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|&(i, n)| i < n);
    match parsed {
        Some(shard) => Some(shard),
        None => panic!("SANDTRACE_VM_SHARD={shard:?} is not INDEX/COUNT"),
    }
}

/// Whether `test`, in `share`, runs in this guest (with one kernel, every share runs there;
/// outside the VM suite, everything runs). Prints why when it does not.
pub fn runs_in_this_guest(test: &str, share: GuestShare) -> bool {
    let Some((index, count)) = guest_shard() else {
        return true;
    };
    let wanted = share as usize % count;
    if wanted == index {
        return true;
    }
    eprintln!(
        "skipped: {test}: runs in guest {wanted} of the suite's {count}, this is guest {index} \
         (SANDTRACE_VM_SHARD)"
    );
    false
}

/// The items of `all` this guest takes: every `count`-th from its `index` (everything outside
/// the VM suite). Says which it leaves to the other guests.
pub fn this_guests_part<T: std::fmt::Debug>(test: &str, all: Vec<T>) -> Vec<T> {
    let Some((index, count)) = guest_shard() else {
        return all;
    };
    let (mine, others): (Vec<_>, Vec<_>) = all
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % count == index);
    if !others.is_empty() {
        let others: Vec<T> = others.into_iter().map(|(_, t)| t).collect();
        eprintln!(
            "{test}: guest {index} of {count} (SANDTRACE_VM_SHARD); left to the other guests: \
             {others:?}"
        );
    }
    mine.into_iter().map(|(_, t)| t).collect()
}

/// The first `name` on PATH, if any.
pub fn find_program(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}
