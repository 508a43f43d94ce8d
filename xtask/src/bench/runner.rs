//! Running the workloads: each under every variant (natively, under sandtrace's modes, under
//! strace), interleaved over the repetitions, each run measured three ways.
//!
//! - End-to-end wall time of the whole command, sandtrace's start-up and teardown included.
//! - In-session time: the workload runs under `xtask bench time`, a wrapper that times it from
//!   inside the traced session, so sandtrace's start-up (seconds when the verifier runs under
//!   emulation) does not hide the per-syscall cost the ratios are about. The start-up workload
//!   is not wrapped: its end-to-end time is the start-up latency.
//! - CPU time (user + system) and peak RSS of the whole process tree, from `wait4`: the loader
//!   and its workload, or strace and its workload. CPU time is less disturbed than wall time
//!   by other jobs on a shared machine.

use std::{
    ffi::OsString,
    fs::{self, File},
    io::{Read as _, Seek as _, SeekFrom},
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitCode, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use super::workloads::{Kind, Workload};
use crate::cargo;

/// How a workload is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    Native,
    /// `sandtrace run --trace-only`: in-kernel counters only, no per-syscall events.
    TraceOnly,
    /// `sandtrace run --trace-only -o FILE`: every syscall as a JSONL line.
    TraceJsonl,
    /// `sandtrace run --trace-only --record FILE`: every syscall into a compact binary
    /// capture, which `sandtrace export` turns into the JSONL `-o` writes (untimed, after the
    /// run, to count what it holds).
    TraceRecord,
    /// `sandtrace run --allow-degraded --policy ALLOW` on a kernel without BPF LSM: seccomp,
    /// cgroup programs and tracing, no LSM hooks.
    Degraded,
    /// `sandtrace run --policy ALLOW` with BPF LSM.
    Enforce,
    /// `strace -f -o /dev/null`: the ptrace baseline.
    Strace,
}

impl Variant {
    /// What runs on a host without BPF LSM.
    pub const HOST: [Variant; 6] = [
        Variant::Native,
        Variant::TraceOnly,
        Variant::TraceJsonl,
        Variant::TraceRecord,
        Variant::Degraded,
        Variant::Strace,
    ];
    /// What runs in the BPF-LSM VM: enforcement against tracing alone, within one boot.
    pub const VM: [Variant; 3] = [Variant::Native, Variant::TraceOnly, Variant::Enforce];

    /// Whether the variant writes every event to a file (whose end its samples read).
    pub fn writes_events(self) -> bool {
        matches!(self, Variant::TraceJsonl | Variant::TraceRecord)
    }

    /// Whether the variant's process is the sandtrace loader.
    pub fn runs_sandtrace(self) -> bool {
        !matches!(self, Variant::Native | Variant::Strace)
    }

    pub fn label(self) -> &'static str {
        match self {
            Variant::Native => "native",
            Variant::TraceOnly => "trace-only",
            Variant::TraceJsonl => "trace-only -o",
            Variant::TraceRecord => "trace-only --record",
            Variant::Degraded => "degraded",
            Variant::Enforce => "enforce",
            Variant::Strace => "strace -f",
        }
    }
}

/// What the runs need besides the workloads.
pub struct Tools {
    pub sandtrace: PathBuf,
    /// This xtask binary, whose `bench time` subcommand is the in-session timer.
    pub timer: PathBuf,
    /// Scratch files: the timer's result, the event log, stderr, the policy, compile output.
    pub scratch: PathBuf,
    /// A policy that allows everything the workloads do (see [`write_allow_policy`]).
    pub policy: PathBuf,
}

impl Tools {
    fn elapsed_file(&self) -> PathBuf {
        self.scratch.join("session-elapsed-ns")
    }

    fn event_log(&self) -> PathBuf {
        self.scratch.join("events.jsonl")
    }

    fn stderr_log(&self) -> PathBuf {
        self.scratch.join("stderr.log")
    }

    /// The capture of the `--record` runs.
    fn capture(&self) -> PathBuf {
        self.scratch.join("events.capture")
    }

    /// The JSONL `sandtrace export` writes from a capture.
    fn exported_log(&self) -> PathBuf {
        self.scratch.join("exported.jsonl")
    }
}

/// Writes the policy the enforcing variants use into `scratch`: everything the workloads do is
/// allowed (reading anything, executing anything, writing the scratch directory and /tmp), so
/// those runs measure the checks and not denials. No `log_only` syscalls: they would send
/// events.
pub fn write_allow_policy(scratch: &Path) -> Result<PathBuf> {
    let scratch_str = scratch
        .to_str()
        .with_context(|| format!("the scratch directory {} is not UTF-8", scratch.display()))?;
    // A JSON string is a valid TOML basic string (same escapes).
    let quoted = serde_json::to_string(scratch_str)?;
    let policy = format!(
        "# Written by `cargo xtask bench`: allows every benchmark workload.\n\
         [filesystem]\n\
         allow_read = [\"/\"]\n\
         allow_write = [\"/tmp\", \"/dev/null\", {quoted}]\n\
         allow_exec = [\"**\"]\n\
         deny = []\n\n\
         [network]\n\
         allow = true\n\n\
         [syscalls]\n\
         deny = []\n\
         log_only = []\n\n\
         [limits]\n\
         timeout = {SESSION_TIMEOUT_SECS}\n"
    );
    let path = scratch.join("allow.toml");
    fs::write(&path, policy).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// sandtrace's session timeout for benchmark runs: far above any run, so that it never cuts one.
const SESSION_TIMEOUT_SECS: u64 = 3600;

/// One measured run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub wall_s: f64,
    /// The workload's own time inside the session; `None` for the start-up workload.
    pub in_session_s: Option<f64>,
    pub cpu_s: f64,
    pub max_rss_kib: u64,
    /// What the `-o` event log (`TraceJsonl`) or the capture (`TraceRecord`, read through
    /// `sandtrace export`) held.
    pub event_log: Option<EventLog>,
}

impl Sample {
    /// The time the ratios compare: in-session where measured, else end-to-end.
    pub fn time_s(&self) -> f64 {
        self.in_session_s.unwrap_or(self.wall_s)
    }
}

/// The end of a JSONL event log (for a capture: of the JSONL `sandtrace export` writes from it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventLog {
    /// Lines before the summary line.
    pub events: u64,
    pub lost_events: u64,
    pub total_syscalls: u64,
    /// From the file's creation (before CMD starts) to its last write (the summary): the window
    /// in which the loader wrote the events. `None` where the file system keeps no creation time.
    /// For a capture, the capture's own window (not the exported file's).
    pub write_window_s: Option<f64>,
    /// The size of the file the run wrote: the `-o` log, or the capture.
    pub bytes: u64,
}

/// All runs of one workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadRuns {
    pub name: String,
    pub description: String,
    pub kind: Kind,
    pub variants: Vec<VariantRuns>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantRuns {
    pub variant: Variant,
    pub samples: Vec<Sample>,
}

impl WorkloadRuns {
    pub fn samples(&self, variant: Variant) -> Option<&[Sample]> {
        self.variants
            .iter()
            .find(|v| v.variant == variant)
            .map(|v| v.samples.as_slice())
    }
}

/// Runs every workload under every variant it does not skip `repetitions` times. A repetition
/// runs each workload under its variants back to back, starting with a different variant each
/// time, so that a slow phase of the machine spreads over the variants instead of landing on
/// one, after an unrecorded native run of the workload that warms the caches it reads.
pub fn run_interleaved(
    workloads: &[Workload],
    variants: &[Variant],
    repetitions: u32,
    tools: &Tools,
) -> Result<Vec<WorkloadRuns>> {
    if variants.iter().any(|v| v.runs_sandtrace()) {
        // Pages sandtrace's binary in (in the VM, from the host share) outside the timings.
        let mut version = Command::new(&tools.sandtrace);
        version.arg("--version").stdout(Stdio::null());
        cargo::run_checked(&mut version)?;
    }
    let mut results: Vec<WorkloadRuns> = workloads
        .iter()
        .map(|w| WorkloadRuns {
            name: w.name.to_owned(),
            description: w.description.clone(),
            kind: w.kind,
            variants: w
                .variants(variants)
                .into_iter()
                .map(|variant| VariantRuns {
                    variant,
                    samples: Vec::new(),
                })
                .collect(),
        })
        .collect();
    for rep in 0..repetitions as usize {
        for (workload, runs) in workloads.iter().zip(&mut results) {
            // Between two repetitions of a workload run minutes of others (strace's), long
            // enough for the kernel to reclaim the caches it reads: warm them again,
            // unrecorded, so that no variant pays for it.
            eprintln!("bench: warming up: {}", workload.description);
            measure(workload, Variant::Native, tools)?;
            let variants = workload.variants(variants);
            for offset in 0..variants.len() {
                let index = (rep + offset) % variants.len();
                let sample = measure(workload, variants[index], tools)?;
                eprintln!(
                    "bench: [{}/{repetitions}] {:<12} {:<19} {:>8.3} s{}",
                    rep + 1,
                    workload.name,
                    variants[index].label(),
                    sample.time_s(),
                    match &sample.event_log {
                        Some(log) if log.lost_events > 0 =>
                            format!("  ({} events lost)", log.lost_events),
                        _ => String::new(),
                    }
                );
                runs.variants[index].samples.push(sample);
            }
        }
    }
    Ok(results)
}

/// Runs `workload` once under `variant`.
fn measure(workload: &Workload, variant: Variant, tools: &Tools) -> Result<Sample> {
    let timed = workload.kind != Kind::StartUp;
    let elapsed_file = tools.elapsed_file();
    let event_log = tools.event_log();
    let capture = tools.capture();
    for stale in [&elapsed_file, &event_log, &capture, &tools.exported_log()] {
        remove_if_present(stale)?;
    }
    let mut argv: Vec<OsString> = Vec::new();
    // The workloads run with the privileges they have natively (root's capabilities): without
    // `--as-root` the session drops them, and `find /usr` fails on the directories only their
    // owners may read, doing other work than the native run.
    match variant {
        Variant::Native => {}
        Variant::TraceOnly | Variant::TraceJsonl | Variant::TraceRecord => {
            argv.extend([tools.sandtrace.as_os_str().into(), "run".into()]);
            argv.push("--as-root".into());
            argv.extend(["--trace-only".into(), "--timeout".into()]);
            argv.push(SESSION_TIMEOUT_SECS.to_string().into());
            if variant == Variant::TraceJsonl {
                argv.extend(["-o".into(), event_log.clone().into_os_string()]);
            }
            if variant == Variant::TraceRecord {
                argv.extend(["--record".into(), capture.clone().into_os_string()]);
            }
            argv.push("--".into());
        }
        Variant::Degraded | Variant::Enforce => {
            argv.extend([tools.sandtrace.as_os_str().into(), "run".into()]);
            argv.push("--as-root".into());
            if variant == Variant::Degraded {
                argv.push("--allow-degraded".into());
            }
            argv.extend(["--policy".into(), tools.policy.clone().into_os_string()]);
            argv.push("--".into());
        }
        Variant::Strace => {
            argv.extend(["strace", "-f", "-o", "/dev/null", "--"].map(OsString::from));
        }
    }
    if timed {
        argv.extend([
            tools.timer.as_os_str().into(),
            "bench".into(),
            "time".into(),
        ]);
        argv.extend(["--into".into(), elapsed_file.clone().into_os_string()]);
        argv.push("--".into());
    }
    argv.extend(workload.argv.iter().cloned());

    let stderr_path = tools.stderr_log();
    let stderr = File::create(&stderr_path)
        .with_context(|| format!("creating {}", stderr_path.display()))?;
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env("TMPDIR", &tools.scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", display_argv(&argv)))?;
    let (status, usage) = wait_with_usage(child.id())
        .with_context(|| format!("waiting for {}", display_argv(&argv)))?;
    let wall = started.elapsed();
    if !status.success() {
        let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
        bail!(
            "{} ({}) failed under {}: {status}\n{}",
            workload.name,
            display_argv(&argv),
            variant.label(),
            tail_lines(&stderr, 30)
        );
    }
    let in_session = if timed {
        let text = fs::read_to_string(&elapsed_file).with_context(|| {
            format!(
                "reading the in-session time {} of {} under {}",
                elapsed_file.display(),
                workload.name,
                variant.label()
            )
        })?;
        let nanos: u64 = text
            .trim()
            .parse()
            .with_context(|| format!("{}: not a number: {text:?}", elapsed_file.display()))?;
        Some(Duration::from_nanos(nanos).as_secs_f64())
    } else {
        None
    };
    let event_log = match variant {
        Variant::TraceJsonl => {
            let log = read_event_log(&event_log)?;
            remove_if_present(&event_log)?;
            Some(log)
        }
        Variant::TraceRecord => {
            let log = read_capture(&capture, tools)?;
            remove_if_present(&capture)?;
            Some(log)
        }
        _ => None,
    };
    Ok(Sample {
        wall_s: wall.as_secs_f64(),
        in_session_s: in_session,
        cpu_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        event_log,
    })
}

/// Reaps `pid` with `wait4`, which also returns the resources it and its reaped descendants
/// used (std's `Child::wait` drops them).
fn wait_with_usage(pid: u32) -> Result<(ExitStatus, libc::rusage)> {
    let pid = libc::pid_t::try_from(pid).context("a process id out of range")?;
    let mut status = 0;
    // SAFETY: rusage is plain old data; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to a local int and rusage.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            return Ok((ExitStatus::from_raw(status), usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4");
        }
    }
}

fn seconds(time: libc::timeval) -> f64 {
    time.tv_sec as f64 + time.tv_usec as f64 / 1e6
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The last `n` lines of `text`.
fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn display_argv(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The summary at the end of a `-o` log: the last line, which may hold a long per-syscall
/// count list but never more than this.
const SUMMARY_LINE_MAX: u64 = 1 << 20;

/// What a `--record` capture holds: `sandtrace export` turns it into JSONL (untimed), whose
/// events and summary [`read_event_log`] reads; the write window and the size are the
/// capture's own.
fn read_capture(capture: &Path, tools: &Tools) -> Result<EventLog> {
    // Before the export, which reads the capture (a file system with atime could touch it).
    let metadata =
        fs::metadata(capture).with_context(|| format!("reading {}", capture.display()))?;
    let exported = tools.exported_log();
    let stderr_path = tools.stderr_log();
    let stderr = File::create(&stderr_path)
        .with_context(|| format!("creating {}", stderr_path.display()))?;
    let mut export = Command::new(&tools.sandtrace);
    export
        .arg("export")
        .arg(capture)
        .arg("-o")
        .arg(&exported)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let status = export
        .status()
        .with_context(|| format!("running {export:?}"))?;
    if !status.success() {
        let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
        bail!("{export:?} failed: {status}\n{}", tail_lines(&stderr, 30));
    }
    let log = read_event_log(&exported)?;
    remove_if_present(&exported)?;
    Ok(EventLog {
        write_window_s: write_window(&metadata),
        bytes: metadata.len(),
        ..log
    })
}

/// From a file's creation to its last write; `None` where the file system keeps no creation
/// time.
fn write_window(metadata: &fs::Metadata) -> Option<f64> {
    let (Ok(created), Ok(modified)) = (metadata.created(), metadata.modified()) else {
        return None;
    };
    modified
        .duration_since(created)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// Counts the events of a JSONL log and reads its summary line.
fn read_event_log(path: &Path) -> Result<EventLog> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let metadata = file.metadata()?;
    let mut lines = 0u64;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        lines += buffer[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    let tail_start = metadata.len().saturating_sub(SUMMARY_LINE_MAX);
    file.seek(SeekFrom::Start(tail_start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let tail = String::from_utf8_lossy(&tail);
    let last = tail
        .trim_end()
        .rsplit('\n')
        .next()
        .filter(|line| !line.is_empty())
        .with_context(|| format!("{} is empty", path.display()))?;
    let summary: serde_json::Value = serde_json::from_str(last).with_context(|| {
        format!(
            "{}: the last line is not the JSON summary (a run cut short?)",
            path.display()
        )
    })?;
    if summary["event_type"] != "summary" {
        bail!(
            "{}: the last line is a {} event, not the summary",
            path.display(),
            summary["event_type"]
        );
    }
    let number = |field: &str| {
        summary[field]
            .as_u64()
            .with_context(|| format!("{}: the summary has no {field}", path.display()))
    };
    Ok(EventLog {
        events: lines.saturating_sub(1),
        lost_events: number("lost_events")?,
        total_syscalls: number("total_syscalls")?,
        write_window_s: write_window(&metadata),
        bytes: metadata.len(),
    })
}

/// `xtask bench time --into FILE -- CMD`: runs CMD, writes how long it took (nanoseconds) to
/// FILE and exits with CMD's status. Inside a sandtrace session this times the workload
/// without sandtrace's start-up and teardown.
#[derive(clap::Args, Debug)]
pub struct TimeArgs {
    #[arg(long, value_name = "FILE")]
    into: PathBuf,
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

pub fn time_command(args: &TimeArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let status = Command::new(&args.command[0])
        .args(&args.command[1..])
        .status()
        .with_context(|| format!("running {}", display_argv(&args.command)))?;
    let elapsed = started.elapsed();
    fs::write(&args.into, elapsed.as_nanos().to_string())
        .with_context(|| format!("writing {}", args.into.display()))?;
    Ok(cargo::exit_code_of(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn event_log_counts_events_and_reads_the_summary() {
        let dir = scratch("log");
        let path = dir.join("events.jsonl");
        fs::write(
            &path,
            "{\"event_type\":\"syscall\"}\n{\"event_type\":\"syscall\"}\n\
             {\"event_type\":\"summary\",\"lost_events\":3,\"total_syscalls\":7}\n",
        )
        .unwrap();
        let log = read_event_log(&path).unwrap();
        assert_eq!((log.events, log.lost_events, log.total_syscalls), (2, 3, 7));
        assert_eq!(log.bytes, fs::metadata(&path).unwrap().len());
        fs::write(&path, "{\"event_type\":\"syscall\"}\n").unwrap();
        let err = read_event_log(&path).unwrap_err();
        assert!(format!("{err:#}").contains("not the summary"), "{err:#}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A stand-in for sandtrace: `run ... [--record FILE] ... -- CMD` writes FILE and runs CMD;
    /// `export CAPTURE -o OUT` writes a two-event log to OUT.
    fn fake_sandtrace(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join("sandtrace");
        fs::write(
            &path,
            r#"#!/bin/sh
if [ "$1" = export ]; then
    [ "$3" = -o ] && [ -f "$2" ] || { echo "bad export: $*" >&2; exit 2; }
    printf '%s\n' '{"event_type":"syscall"}' '{"event_type":"syscall"}' \
        '{"event_type":"summary","lost_events":0,"total_syscalls":5}' > "$4"
    exit 0
fi
[ "$1" = run ] || exit 2
while [ "$1" != -- ]; do
    if [ "$1" = --record ]; then shift; printf 0123456789 > "$1"; fi
    shift
done
shift
exec "$@"
"#,
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn record_runs_read_the_export_and_the_capture_file() {
        let dir = scratch("record");
        let tools = Tools {
            sandtrace: fake_sandtrace(&dir),
            timer: PathBuf::from("/nonexistent/xtask"),
            policy: dir.join("allow.toml"),
            scratch: dir.clone(),
        };
        let workload = Workload {
            name: "start-up",
            description: "/bin/true".to_owned(),
            kind: Kind::StartUp,
            argv: vec!["/bin/true".into()],
            skip: &[],
        };
        let sample = measure(&workload, Variant::TraceRecord, &tools).unwrap();
        let log = sample.event_log.expect("the record run's capture was read");
        // The events and the summary come from the exported JSONL, the size from the capture.
        assert_eq!((log.events, log.lost_events, log.total_syscalls), (2, 0, 5));
        assert_eq!(log.bytes, 10);
        assert!(!tools.capture().exists() && !tools.exported_log().exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn native_runs_report_time_cpu_and_rss() {
        let dir = scratch("native");
        let tools = Tools {
            sandtrace: PathBuf::from("/nonexistent/sandtrace"),
            timer: PathBuf::from("/nonexistent/xtask"),
            policy: dir.join("allow.toml"),
            scratch: dir.clone(),
        };
        let workload = Workload {
            name: "start-up",
            description: "spin".to_owned(),
            kind: Kind::StartUp,
            argv: ["perl", "-e", "my $x = 'a' x 20_000_000; 1 for 1..2_000_000"]
                .map(OsString::from)
                .to_vec(),
            skip: &[],
        };
        let sample = measure(&workload, Variant::Native, &tools).unwrap();
        assert!(sample.cpu_s > 0.0, "{sample:?}");
        assert!(sample.wall_s >= sample.cpu_s * 0.5, "{sample:?}");
        // The 20 MB string is resident at once.
        assert!(sample.max_rss_kib > 19_000, "{sample:?}");
        assert!(sample.in_session_s.is_none());

        let failing = Workload {
            argv: ["sh", "-c", "echo broken >&2; exit 3"]
                .map(OsString::from)
                .to_vec(),
            ..workload
        };
        let err = measure(&failing, Variant::Native, &tools).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("broken") && message.contains("exit status: 3"),
            "{message}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
