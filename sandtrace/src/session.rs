//! One `sandtrace run`: the session cgroup, the kernel programs, CMD, the event loop, the
//! timeout and signals, and a teardown that leaves nothing behind.

use std::{
    ffi::OsString,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use sandtrace_common::config::{
    Config, FLAG_ENFORCE_FILES, FLAG_EXEC_UNRESTRICTED, FLAG_FILE_EVENTS_ALL,
    FLAG_NETWORK_EVENTS_ALL, FLAG_SYSCALL_EVENTS,
};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};

use crate::{
    cgroup::{Hierarchy, ProcessLimit, SessionCgroup},
    ebpf::{Enforcement, SessionPrograms, SessionRules},
    events::{self, Clock},
    kernel_btf, launch,
    network::{
        NetworkRules,
        abstract_sockets::{AbstractSocketScope, Unsupported},
    },
    output::{
        Labels, RuleLabel,
        jsonl::{EventLog, decode_wait_status},
        summary::{Ending, RunResult, Summary, Tally},
        terminal::{Terminal, Verbosity},
    },
    policy::CompiledPaths,
    progress::Progress,
    seccomp::SeccompFilter,
    spawn::{self, CmdSetup, Outcome, PreparedCommand},
};

/// How long an event may wait in the ring buffer below the kernel's wakeup threshold.
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

/// Exit status when the timeout killed the session (as timeout(1)).
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit status when sandtrace itself failed.
pub const EXIT_SANDTRACE_FAILED: i32 = 125;
/// Exit status when CMD was found but could not be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// Exit status when CMD was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Everything a session needs, decided before anything starts.
pub struct Plan {
    pub command: Vec<OsString>,
    pub timeout: Duration,
    pub output: Option<PathBuf>,
    pub verbosity: Verbosity,
    pub no_color: bool,
    pub follow_forks: bool,
    pub ring_buffer_bytes: u32,
    /// The compiled path policy, enforced by BPF LSM; `None` traces only or runs degraded.
    pub enforce: Option<EnforcePlan>,
    pub seccomp: Option<SeccompFilter>,
    /// What is enforced without BPF LSM; all empty (the default) when tracing only.
    pub rules: RulesPlan,
    pub labels: Labels,
}

/// The rules enforced by seccomp, the cgroup programs and the pids controller.
#[derive(Default)]
pub struct RulesPlan {
    /// `(syscall number, syscall_action::*)`, reported whatever the verbosity.
    pub syscall_actions: Vec<(u32, u8)>,
    /// `None` when the network is allowed.
    pub network: Option<NetworkRules>,
    pub max_processes: Option<u32>,
    /// `--allow-degraded` on a kernel without BPF LSM: why BPF LSM is unavailable. The path
    /// rules are then listed as not enforced before CMD starts and in the summary.
    pub degraded: Option<String>,
}

/// What the LSM programs enforce, beyond the compiled paths that `launch` adds to.
pub struct EnforcePlan {
    pub paths: CompiledPaths,
    /// Every exec is allowed, so running the dynamic loader directly is too.
    pub exec_unrestricted: bool,
}

impl Plan {
    fn mode(&self) -> &'static str {
        if self.enforce.is_some() {
            "enforce"
        } else if self.rules.degraded.is_some() {
            "degraded"
        } else {
            "trace-only"
        }
    }

    /// The policy's rules this session does not enforce: in degraded mode, every path rule
    /// (once each: a rule through a symlink is compiled twice under one label).
    fn unenforced(&self) -> Vec<RuleLabel> {
        let mut rules: Vec<RuleLabel> = Vec::new();
        if self.rules.degraded.is_some() {
            for rule in self.labels.file_rules.by_kind.iter().flatten() {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
        rules
    }
}

/// Runs the session and returns sandtrace's exit status.
pub fn run(plan: Plan) -> i32 {
    let terminal = Terminal::new(plan.verbosity, plan.no_color);
    let cmd = match PreparedCommand::new(&plan.command) {
        Ok(cmd) => cmd,
        Err(e) => {
            terminal.note(&format!("error: {e}"));
            return match e {
                spawn::PrepareError::NotExecutable(_) => EXIT_CANNOT_EXECUTE,
                spawn::PrepareError::NotFound(_) => EXIT_NOT_FOUND,
                spawn::PrepareError::Invalid(_) => 2,
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            terminal.note(&format!("error: starting the event loop: {e}"));
            return EXIT_SANDTRACE_FAILED;
        }
    };
    match runtime.block_on(run_session(&plan, &cmd, &terminal)) {
        Ok(code) => code,
        Err(e) => {
            terminal.note(&format!("error: {e:#}"));
            EXIT_SANDTRACE_FAILED
        }
    }
}

/// Where the event stream goes.
struct Sinks<'a> {
    clock: Clock,
    jsonl: Option<EventLog>,
    terminal: &'a Terminal,
    labels: &'a Labels,
    tally: Tally,
    follow_forks: bool,
    root_tgid: Option<u32>,
    progress: Progress,
}

impl Sinks<'_> {
    fn record(&mut self, bytes: &[u8]) {
        let event = match events::decode(bytes, &self.clock) {
            Ok(event) => event,
            Err(_) => {
                self.tally.count_undecodable();
                return;
            }
        };
        // The first event of the session comes from CMD's own process.
        let root = *self.root_tgid.get_or_insert(event.task.tgid);
        if !self.follow_forks && event.task.tgid != root {
            return;
        }
        self.tally.observe(&event);
        self.progress.observe(&event);
        self.terminal.event(&event, self.labels);
        // The log's own thread decodes the record again and formats it. A write error stops
        // only the log: CMD stays confined, and the end of the run reports the error.
        if let Some(log) = &mut self.jsonl {
            log.append(bytes);
        }
    }

    /// The ring buffer is empty for now.
    fn drained(&mut self) {
        if let Some(log) = &mut self.jsonl {
            log.hand_over();
        }
    }
}

fn drain(ring: &mut RingBuf<MapData>, sinks: &mut Sinks<'_>) {
    while let Some(item) = ring.next() {
        sinks.record(&item);
    }
    sinks.drained();
}

async fn run_session(plan: &Plan, cmd: &PreparedCommand, terminal: &Terminal) -> Result<i32> {
    let hierarchy = Hierarchy::find()?;
    let cgroup = SessionCgroup::create(&hierarchy)?;
    let process_limit = plan
        .rules
        .max_processes
        .map(|max| ProcessLimit::apply(&hierarchy, &cgroup, max))
        .transpose()?;
    let offsets = {
        let btf = kernel_btf::KernelBtf::from_sys_fs()?;
        if plan.enforce.is_some() {
            crate::ebpf::check_lsm_hooks(&btf)?;
        }
        kernel_btf::kernel_offsets(&btf)?
        // Dropped here: loading parses the BTF again (aya's reader), and holding both would
        // add a third to the loader's peak memory.
    };
    let mut flags = 0;
    if plan.output.is_some() || plan.verbosity >= Verbosity::FailedSyscalls {
        flags |= FLAG_SYSCALL_EVENTS;
    }
    if plan.verbosity >= Verbosity::Processes {
        flags |= FLAG_NETWORK_EVENTS_ALL;
    }
    let enforcement = plan.enforce.as_ref().map(|e| {
        flags |= FLAG_ENFORCE_FILES;
        if e.exec_unrestricted {
            flags |= FLAG_EXEC_UNRESTRICTED;
        }
        if plan.verbosity >= Verbosity::Processes {
            flags |= FLAG_FILE_EVENTS_ALL;
        }
        let chain = launch::launch_chain(&cmd.path, plan.command.get(1..).unwrap_or_default());
        Enforcement {
            paths: &e.paths,
            launch_chain: chain.iter().filter_map(|p| launch::path_key(p)).collect(),
            dynamic_loaders: launch::dynamic_loaders(&chain),
        }
    });
    let config = Config {
        session_cgroup_id: cgroup.id(),
        session_cgroup_level: cgroup.level(),
        flags,
        session_pid_ns_level: spawn::own_pid_ns_level() + 1,
        _pad: 0,
        offsets,
    };
    let rules = SessionRules {
        syscall_actions: plan.rules.syscall_actions.clone(),
        process_limit: plan.rules.max_processes.is_some(),
        // SAFETY: `cgroup` owns the descriptor and outlives the programs' attachment.
        network: plan.rules.network.as_ref().map(|n| {
            (n, unsafe {
                std::os::fd::BorrowedFd::borrow_raw(cgroup.dir_fd())
            })
        }),
    };
    let mut programs = SessionPrograms::load(
        &config,
        plan.ring_buffer_bytes,
        enforcement.as_ref(),
        &rules,
    )?;
    // A restricted network also keeps abstract UNIX sockets inside the session, where the
    // kernel can (Landlock scoping).
    let abstract_scope = match &plan.rules.network {
        Some(_) => Some(AbstractSocketScope::new()?),
        None => None,
    };
    let mut unenforced = plan.unenforced();
    if let Some(why) = &plan.rules.degraded {
        report_degraded(terminal, why, plan, &unenforced);
    }
    if let Some(Err(Unsupported(why))) = &abstract_scope {
        terminal.note(&format!(
            "warning: abstract UNIX sockets outside the session stay reachable: {why}"
        ));
        unenforced.push(RuleLabel {
            kind: "network",
            pattern: "abstract UNIX sockets outside the session".to_owned(),
            source: why.clone(),
        });
    }
    let ring = programs.take_events()?;
    // SAFETY: the ring buffer owns its fd and outlives the registration.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(std::io::Error::from)
        .context("watching the ring buffer")?;
    let clock = Clock::new();
    let mut sinks = Sinks {
        clock,
        jsonl: plan
            .output
            .as_deref()
            .map(|path| EventLog::create(path, clock, plan.labels.clone()))
            .transpose()?,
        terminal,
        labels: &plan.labels,
        tally: Tally::default(),
        follow_forks: plan.follow_forks,
        root_tgid: None,
        progress: Progress::new(plan.verbosity == Verbosity::Quiet, Instant::now()),
    };
    // Handlers first: a signal between here and the end of the session must tear it down.
    let mut sigint = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing a SIGHUP handler")?;

    let started = Instant::now();
    // With BPF LSM, isolation.rs keeps CMD out of the cgroup files; without it they are
    // hidden, or a root CMD could leave the session's cgroup and with it the network rules
    // and the process limit.
    let hidden_dirs = match plan.rules.degraded {
        Some(_) => crate::cgroup::cgroup_mount_cover()?
            .into_iter()
            .map(|dir| std::ffi::CString::new(dir.into_os_string().into_encoded_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .context("a cgroup mount point contains a NUL byte")?,
        None => Vec::new(),
    };
    let setup = CmdSetup {
        hidden_dirs: &hidden_dirs,
        join_procs: process_limit.as_ref().and_then(ProcessLimit::join_fd),
        landlock_ruleset: match &abstract_scope {
            Some(Ok(scope)) => Some(scope.fd()),
            _ => None,
        },
        seccomp: plan.seccomp.as_ref(),
    };
    let mut child = spawn::spawn(cmd, cgroup.dir_fd(), &setup)?;
    // SAFETY: the pidfd is owned by `child`, which outlives the registration.
    let init_exit = unsafe {
        AsyncFd::register_with_interest(
            std::os::fd::AsRawFd::as_raw_fd(&child.init_pidfd),
            Interest::READABLE,
        )
    }
    .map_err(std::io::Error::from)
    .context("watching the session's init process")?;
    let deadline = tokio::time::sleep(plan.timeout);
    tokio::pin!(deadline);

    let mut progress_ticker = tokio::time::interval(Progress::REFRESH);
    // The kernel wakes the loader only once the ring buffer is a quarter full (emit.rs in
    // sandtrace-ebpf); slower streams are drained on this tick.
    let mut drain_ticker = tokio::time::interval(DRAIN_INTERVAL);
    drain_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ending = loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting for events")?;
                drain(guard.get_inner_mut(), &mut sinks);
                guard.clear_ready();
            }
            _ = drain_ticker.tick() => drain(ring.get_mut(), &mut sinks),
            _ = init_exit.readable() => break None,
            _ = progress_ticker.tick(), if sinks.progress.is_enabled() => {
                let syscalls = programs.syscall_counts().map(|c| c.iter().sum()).unwrap_or(0);
                sinks.progress.draw(syscalls);
            }
            _ = &mut deadline => break Some((Ending::TimedOut, EXIT_TIMEOUT, None)),
            _ = sigint.recv() => break Some((Ending::Interrupted, 128 + libc::SIGINT, None)),
            _ = sigterm.recv() => break Some((Ending::Interrupted, 128 + libc::SIGTERM, None)),
            _ = sighup.recv() => break Some((Ending::Interrupted, 128 + libc::SIGHUP, None)),
        }
    };
    sinks.progress.clear();
    // Whatever ended the session, nothing of it may outlive this point.
    child.kill();
    let kill_result = cgroup.kill_all(Duration::from_secs(5));
    child.reap();
    let duration = started.elapsed();
    drop(init_exit);

    let (ending, exit_code, signal) = match ending {
        Some(e) => e,
        None => match child.read_outcome() {
            Some(Outcome::Exited(status)) => {
                let (code, signal) = decode_wait_status(status);
                (Ending::Exited, code, signal)
            }
            Some(Outcome::ExecFailed(errno)) => {
                terminal.note(&format!(
                    "error: executing {}: {}",
                    cmd.path.display(),
                    spawn::describe_errno(errno)
                ));
                let code = if errno == libc::ENOENT {
                    EXIT_NOT_FOUND
                } else {
                    EXIT_CANNOT_EXECUTE
                };
                (Ending::StartFailed, code, None)
            }
            Some(Outcome::SetupFailed(stage, errno)) => {
                terminal.note(&format!(
                    "error: {} failed: {}",
                    stage.describe(),
                    spawn::describe_errno(errno)
                ));
                (Ending::StartFailed, EXIT_SANDTRACE_FAILED, None)
            }
            None => {
                terminal
                    .note("error: the session's init process died without reporting CMD's status");
                (Ending::StartFailed, EXIT_SANDTRACE_FAILED, None)
            }
        },
    };
    if ending == Ending::TimedOut {
        terminal.note(&format!(
            "timeout of {} s reached; killed the session",
            plan.timeout.as_secs()
        ));
    }

    // Every session task is gone, so every event is in the ring buffer: take the rest.
    drain(ring.get_mut(), &mut sinks);
    let summary: Summary = sinks.tally.finish(
        &programs.syscall_counts()?,
        programs.lost_events()?,
        programs.pending_overflows()?,
        RunResult {
            duration,
            exit_code,
            signal,
            ending,
            mode: plan.mode(),
            unenforced: &unenforced,
        },
    );
    let failure = sinks
        .jsonl
        .take()
        .and_then(|log| log.finish(&summary).err());
    terminal.summary(
        &summary,
        &display_command(&plan.command),
        plan.output.as_deref(),
    );
    drop(programs);
    kill_result?;
    cgroup.remove()?;
    if let Some(limit) = process_limit {
        limit.remove()?;
    }
    if let Some(e) = failure {
        terminal.note(&format!("error: the event log is incomplete: {e:#}"));
        return Ok(EXIT_SANDTRACE_FAILED);
    }
    Ok(exit_code)
}

/// The `SYSCALL_ACTIONS` entries for a session with a seccomp filter: `denied` (refused by the
/// filter), `log_only`, `clone3` (which the filter always refuses, so that the kernel side
/// counts it; a `log_only` listing of it has no calls to report), and with `socket_families`
/// (the filter refuses some socket families) `socket`/`socketpair`, whose refusals are then
/// network denials.
pub fn syscall_actions(denied: &[u32], log_only: &[u32], socket_families: bool) -> Vec<(u32, u8)> {
    use sandtrace_common::event::syscall_action;
    let mut actions: Vec<(u32, u8)> = denied
        .iter()
        .map(|&nr| (nr, syscall_action::DENY))
        .chain(log_only.iter().map(|&nr| (nr, syscall_action::LOG_ONLY)))
        .collect();
    if socket_families {
        for name in ["socket", "socketpair"] {
            let nr = crate::syscall_table::number(name).expect("an x86_64 syscall");
            if !denied.contains(&nr) && !log_only.contains(&nr) {
                actions.push((nr, syscall_action::SOCKET_FAMILY));
            }
        }
    }
    let clone3 = crate::syscall_table::number("clone3").expect("an x86_64 syscall");
    if !denied.contains(&clone3) {
        actions.retain(|&(nr, _)| nr != clone3);
        actions.push((clone3, syscall_action::REFUSED));
    }
    actions
}

/// Says, before CMD starts, what a degraded session does and does not enforce.
fn report_degraded(terminal: &Terminal, why: &str, plan: &Plan, unenforced: &[RuleLabel]) {
    terminal.note(&format!(
        "warning: --allow-degraded: BPF LSM is not available ({why}); enforcing only what works \
         without it"
    ));
    let mut enforced = vec!["[syscalls] deny (seccomp)"];
    if plan.rules.network.is_some() {
        enforced.push("[network] (cgroup socket programs and seccomp)");
    }
    if plan.rules.max_processes.is_some() {
        enforced.push("[limits] max_processes (pids cgroup)");
    }
    enforced.push("[limits] timeout");
    enforced.push("the session cgroup (the cgroup file systems are hidden from the command)");
    terminal.note(&format!("enforced: {}", enforced.join(", ")));
    terminal.note(&format!(
        "NOT enforced: [filesystem]: the command may read, write and execute whatever its user \
         may; {}",
        match unenforced.len() {
            0 => "the policy lists no path rules".to_owned(),
            n => format!("these {n} rules have no effect:"),
        }
    ));
    for rule in unenforced {
        terminal.note(&format!(
            "  {} {} ({})",
            rule.kind, rule.pattern, rule.source
        ));
    }
    if plan.rules.network.is_some() {
        terminal.note(
            "io_uring is unavailable to the command (io_uring_setup fails with EPERM): \
             without BPF LSM, sandtrace cannot check the sockets io_uring creates",
        );
    }
}

fn display_command(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
