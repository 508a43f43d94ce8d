//! `sandtrace learn`: run CMD traced (nothing enforced), replay its event log into the files,
//! sockets and syscalls it used ([`crate::report::activity`]), and write the policy that lets
//! exactly that run succeed ([`policy`], [`paths`], [`render`]).
//!
//! Before the policy is written it is parsed, resolved and compiled like any policy file, and
//! every access of the run is checked against the compiled rules: a learned policy that would
//! not validate, or would deny part of the run it was learned from (beyond the accesses the
//! base policy's deny list keeps denied), is a bug and is not written.

pub mod paths;
pub mod policy;
mod render;

use std::{
    ffi::OsString,
    fs,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Result, bail};

use self::{paths::LeftOutWhy, render::Provenance};
use crate::{
    cli::LearnArgs,
    exit, launch,
    output::{terminal::Terminal, terminal::Verbosity},
    plan::{
        EventDetail, ModeFlags, ProcessFlags, ProcessInputs, ProcessPlan, RunOptions, SessionPlan,
    },
    policy::{
        self as policy_mod, Access, CliOverrides, CompiledPaths, PathKind, Policy,
        glob::PathPattern,
    },
    report::{
        activity::{Activity, PathNaming, Replay, resolve_on_host},
        log::{self, Line, ProcessChange, SummaryLine},
        shell_quote,
    },
    session,
    spawn::PreparedCommand,
};

const EXIT_USAGE: i32 = exit::USAGE as i32;
const EXIT_SANDTRACE_FAILED: i32 = exit::SANDTRACE_FAILED as i32;

/// Runs `sandtrace learn` and returns its exit status: CMD's when a policy was written,
/// otherwise [`EXIT_USAGE`] (bad arguments or base policy) or [`EXIT_SANDTRACE_FAILED`].
pub fn command(args: &LearnArgs) -> i32 {
    let terminal = Terminal::new(Verbosity::Quiet, args.no_color);
    if args.output.exists() && !args.force {
        terminal.note(&format!(
            "error: {} exists; pass --force to replace it, or choose another -o FILE",
            args.output.display()
        ));
        return EXIT_USAGE;
    }
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            terminal.note(&format!(
                "error: cannot determine the working directory: {e}; run from an existing \
                 directory"
            ));
            return EXIT_USAGE;
        }
    };
    // The same world as `sandtrace run` gives the command: its user, capabilities and
    // environment (from the base policy).
    let process = match ProcessInputs::gather(ProcessFlags::default()) {
        Ok(process) => process,
        Err(e) => {
            terminal.note(&format!("error: {e}"));
            return EXIT_USAGE;
        }
    };
    let home = process.identity.home().map(Path::to_path_buf);
    let base = match args.base.as_deref().map(policy_mod::load).transpose() {
        Ok(base) => base.unwrap_or_default(),
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            terminal.note("nothing was started");
            return EXIT_USAGE;
        }
    };
    let overrides = CliOverrides {
        timeout_secs: args.timeout,
        ..CliOverrides::default()
    };
    let effective = match policy_mod::resolve(&base, &overrides, &cwd, home.as_deref()) {
        Ok(e) => e,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            terminal.note("nothing was started");
            return EXIT_USAGE;
        }
    };
    let base_deny: Vec<PathPattern> = effective
        .paths
        .rules(PathKind::Deny)
        .iter()
        .map(|r| r.pattern.clone())
        .collect();
    let timeout = effective.timeout.value;

    // Made empty before the run: a log left by an earlier run must not be learned from.
    let log = match &args.log {
        Some(path) => fs::File::create(path).map(|_| EventLog::Kept(path.clone())),
        None => EventLog::temporary(),
    };
    let log = match log {
        Ok(log) => log,
        Err(e) => {
            let place = args.log.clone().unwrap_or_else(std::env::temp_dir);
            terminal.note(&format!(
                "error: creating the event log at {}: {e}; pass --log FILE to put it somewhere \
                 writable",
                place.display()
            ));
            return EXIT_SANDTRACE_FAILED;
        }
    };
    let options = RunOptions {
        policy_file: None,
        overrides,
        mode: ModeFlags {
            trace_only: true,
            allow_degraded: false,
        },
        output: Some(log.path().to_owned()),
        record: None,
        verbosity: Verbosity::Quiet,
        no_color: args.no_color,
        follow_forks: true,
        ring_buffer_bytes: args.ring_buffer_size,
        process: process.flags.clone(),
        command: args.command.clone(),
    };
    let plan = SessionPlan::trace_only(
        timeout,
        EventDetail::for_output(true, Verbosity::Quiet),
        ProcessPlan::new(&process, &effective),
    );
    let status = match session::run(&options, &plan) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("{e}");
            i32::from(e.exit_status())
        }
    };
    // An empty log: the session never started, and has said why.
    if fs::metadata(log.path()).map_or(true, |m| m.len() == 0) {
        return status;
    }
    let trace = match RunTrace::read(log.path(), &cwd) {
        Ok(trace) => trace,
        Err(e) => {
            terminal.note(&format!("error: nothing learned: {e:#}"));
            return status.max(1);
        }
    };
    if let Err(e) = trace.check_complete(timeout.as_secs()) {
        terminal.note(&format!("error: nothing learned: {e:#}"));
        return if status == 0 {
            EXIT_SANDTRACE_FAILED
        } else {
            status
        };
    }
    let summary = trace.summary.as_ref().expect("checked complete");

    let launch_chain = resolved_launch_chain(&args.command);
    let learned = policy::learn(&policy::LearnInput {
        activity: &trace.activity,
        summary,
        peak_processes: trace.peak_processes,
        launch_chain: &launch_chain,
        base: &base,
        base_deny: &base_deny,
        timeout_secs: timeout.as_secs(),
        home: home.as_deref(),
    });
    let text = render::render(
        &learned,
        &Provenance {
            command: &display_command(&args.command),
            base: args.base.as_deref().and_then(Path::to_str),
            exit_code: summary.exit_code,
            duration_ms: summary.duration_ms,
            processes: summary.process_count,
            syscalls: summary.total_syscalls,
            unresolved: trace.activity.unresolved_count,
        },
    );
    if let Err(e) = verify(
        &text,
        &args.output,
        &cwd,
        home.as_deref(),
        &trace.activity,
        &learned,
        &launch_chain,
    ) {
        terminal.note(&format!(
            "internal error: the learned policy is wrong, so it was not written: {e:#}"
        ));
        return EXIT_SANDTRACE_FAILED;
    }
    if let Err(e) = fs::write(&args.output, &text) {
        terminal.note(&format!(
            "error: writing the learned policy to {}: {e}",
            args.output.display()
        ));
        return EXIT_SANDTRACE_FAILED;
    }

    let paths = &learned.paths;
    terminal.note(&format!(
        "wrote {}: {} allow_read, {} allow_write, {} allow_exec rules, network {}",
        args.output.display(),
        paths.read.len(),
        paths.write.len(),
        paths.exec.len(),
        if learned.network_allowed { "on" } else { "off" }
    ));
    let denied = paths
        .left_out
        .iter()
        .filter(|l| l.why == LeftOutWhy::Denied)
        .count();
    if !paths.left_out.is_empty() {
        terminal.note(&format!(
            "  {} accesses of the run stay denied ({denied} by the base policy's deny list); \
             see the comments in {}",
            paths.left_out.len(),
            args.output.display()
        ));
    }
    if trace.activity.unresolved_count > 0 {
        terminal.note(&format!(
            "  warning: {} accesses could not be named from the trace; the policy may lack \
             rules for them (keep the log with --log FILE and run `sandtrace report FILE`)",
            trace.activity.unresolved_count
        ));
    }
    if summary.exit_code != 0 {
        terminal.note(&format!(
            "  warning: CMD exited with status {}; the policy allows exactly that run",
            summary.exit_code
        ));
    }
    terminal.note(&format!(
        "  next: sandtrace policy check {0}; sandtrace run --policy {0} -- {1}",
        args.output.display(),
        display_command(&args.command)
    ));
    summary.exit_code
}

/// Where the learned run's events go: a file the user asked to keep, or a temporary one.
enum EventLog {
    Kept(PathBuf),
    Temporary(PathBuf),
}

impl EventLog {
    /// A new, empty file in the temporary directory, made here so that no file or symlink
    /// planted at its name is written through (the sticky temporary directory keeps others
    /// from replacing it afterwards).
    fn temporary() -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "sandtrace-learn-{}-{nanos}.jsonl",
            std::process::id()
        ));
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Self::Temporary(path))
    }

    fn path(&self) -> &Path {
        match self {
            Self::Kept(p) | Self::Temporary(p) => p,
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        if let Self::Temporary(path) = self {
            let _ = fs::remove_file(path);
        }
    }
}

/// The learned run, replayed from its log.
struct RunTrace {
    activity: Activity,
    summary: Option<SummaryLine>,
    peak_processes: u64,
}

impl RunTrace {
    fn read(log: &Path, start_dir: &Path) -> Result<Self> {
        let mut replay = Replay::new(PathNaming::Resolved {
            start_dir: start_dir.to_owned(),
        });
        let mut summary = None;
        let (mut alive, mut peak) = (1u64, 1u64);
        log::read(log, |record| {
            replay.record(&record);
            match record {
                Line::Process(p) => match p.change {
                    ProcessChange::Fork {
                        child_pid,
                        child_tgid,
                    } if child_pid == child_tgid => {
                        alive += 1;
                        peak = peak.max(alive);
                    }
                    ProcessChange::Exited { .. } => alive = alive.saturating_sub(1),
                    _ => {}
                },
                Line::Summary(s) => summary = Some(s),
                Line::Syscall(_)
                | Line::File(_)
                | Line::Network(_)
                | Line::Socket(_)
                | Line::Seccomp(_)
                | Line::Dns(_) => {}
            }
        })?;
        Ok(Self {
            activity: replay.finish(),
            summary,
            peak_processes: peak,
        })
    }

    /// A policy can only be learned from a run that ended by itself with every event seen.
    fn check_complete(&self, timeout_secs: u64) -> Result<()> {
        let Some(s) = &self.summary else {
            bail!("the event log has no summary line: the run did not finish");
        };
        match s.ending.as_str() {
            "exited" => {}
            "timed_out" => bail!(
                "the run was killed by the timeout after {timeout_secs} s, so a policy learned \
                 from it would not let it finish; learn again with a longer --timeout"
            ),
            "interrupted" => bail!("the run was interrupted before it finished"),
            _ => bail!("CMD could not be started"),
        }
        if s.lost_events > 0 || s.incomplete_events > 0 {
            bail!(
                "{} events were lost and {} syscall events lack their arguments, so accesses \
                 may be missing; learn again with a larger --ring-buffer-size",
                s.lost_events,
                s.incomplete_events
            );
        }
        Ok(())
    }
}

/// CMD and the interpreters and programs it is launched through, resolved: sandtrace allows
/// CMD's own process to execute them whatever the policy says.
fn resolved_launch_chain(command: &[OsString]) -> Vec<PathBuf> {
    let Ok(prepared) = PreparedCommand::new(command, &[]) else {
        return Vec::new();
    };
    launch::launch_chain(&prepared.path, command.get(1..).unwrap_or_default())
        .iter()
        .map(|p| resolve_on_host(p))
        .collect()
}

/// Checks that `text` is a valid policy and allows every access of the run the learned
/// policy is meant to allow.
fn verify(
    text: &str,
    file: &Path,
    cwd: &Path,
    home: Option<&Path>,
    activity: &Activity,
    learned: &policy::LearnedPolicy,
    launch_chain: &[PathBuf],
) -> Result<()> {
    let diagnostics_text = |d: policy_mod::Diagnostics| anyhow::anyhow!("{d}");
    let parsed: Policy =
        policy_mod::parse::parse(file, text.to_owned()).map_err(diagnostics_text)?;
    let effective = policy_mod::resolve(&parsed, &CliOverrides::default(), cwd, home)
        .map_err(diagnostics_text)?;
    let compiled: CompiledPaths = policy_mod::compile(&effective).map_err(diagnostics_text)?;
    let left_out = |path: &Path, kind: PathKind| {
        learned
            .paths
            .left_out
            .iter()
            .any(|l| l.path == path && l.kind == kind)
    };
    for (path, usage) in &activity.files {
        let launched = usage.exec_by_others == 0 && launch_chain.contains(path);
        let needs = [
            (usage.read > 0, Access::Read, PathKind::Read),
            (usage.write > 0, Access::Write, PathKind::Write),
            (usage.exec() > 0 && !launched, Access::Exec, PathKind::Exec),
        ];
        for (_, access, kind) in needs.into_iter().filter(|(needed, ..)| *needed) {
            if left_out(path, kind) {
                continue;
            }
            let decision = compiled.decide(path.as_os_str().as_bytes());
            if !decision.allows(access) {
                bail!(
                    "it does not allow {access:?} of {} ({:?})",
                    path.display(),
                    decision.verdict(access)
                );
            }
        }
    }
    Ok(())
}

fn display_command(args: &[OsString]) -> String {
    args.iter()
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}
