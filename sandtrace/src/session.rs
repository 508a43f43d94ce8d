//! One `sandtrace run`: carries out a [`SessionPlan`]. The session cgroup, the kernel
//! programs, CMD, the event loop, the timeout and signals, and a teardown that leaves nothing
//! behind.
//!
//! The lifecycle is three steps on one [`Session`]: [`Session::start`] builds everything in
//! order (each piece owned by a guard whose `Drop` undoes it, so an error at any step leaves
//! no cgroup, program or process behind), [`Session::wait`] runs the event loop until CMD ends,
//! the timeout fires or a signal arrives, and [`Session::finish`] kills what is left, drains the
//! last events and writes the summary.

use std::{
    ffi::{CString, OsString},
    os::fd::BorrowedFd,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use sandtrace_common::{config::Config, network::DnsRedirect};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{Signal, SignalKind, signal},
};

use crate::{
    cgroup::{Hierarchy, ProcessLimit, SessionCgroup},
    dns::{BoundResolver, DnsQuery, DnsTraffic, ObservedQuery, RunningResolver},
    ebpf::{Enforcement, SessionPrograms},
    events::{self, Clock, EventBody},
    exit, kernel_btf,
    landlock::{SessionDomain, refusals::Refusals},
    launch,
    output::{
        Labels,
        capture::CaptureFormat,
        event_log::EventLog,
        jsonl::{JsonlFormat, decode_wait_status},
        summary::{Ending, RunAs, RunResult, Summary, Tally},
        terminal::{Terminal, Verbosity},
    },
    plan::{Mode, ResolverPlan, RunOptions, SessionPlan},
    progress::Progress,
    pty::{Relay, SessionTerminal},
    seccomp::SeccompFilter,
    spawn::{self, CmdSetup, DropPrivileges, LandlockSetup, Outcome, PreparedCommand, Spawned},
};

/// How long an event may wait in the ring buffer below the kernel's wakeup threshold.
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);
/// How long teardown waits for the session's processes to die after `cgroup.kill`.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How many events one turn of the event loop takes from the ring buffer. A session that
/// produces events faster than they are written (a fork bomb retrying refused forks) would
/// otherwise keep the loop in one drain and starve the timeout and the signals.
const DRAIN_BATCH: usize = 16 * 1024;

/// Runs CMD under `plan` and returns sandtrace's exit status: CMD's own, or one of
/// [`crate::exit`]'s.
pub fn run(options: &RunOptions, plan: &SessionPlan) -> Result<i32, exit::Error> {
    let cmd = PreparedCommand::new(&options.command, &plan.process.environment.vars)
        .map_err(exit::Error::Command)?;
    let privileges = plan.process.privileges.kept_mask().map(|keep| {
        let account = &plan.process.identity.account;
        DropPrivileges::new(account.uid, account.gid, &account.groups, keep)
    });
    let seccomp = plan
        .seccomp
        .as_ref()
        .map(SeccompFilter::build)
        .transpose()
        .context("building the seccomp filter")?;
    let terminal = Terminal::new(options.verbosity, options.no_color);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the event loop")?;
    let status = runtime.block_on(async {
        let mut session = Session::start(
            options,
            plan,
            &cmd,
            seccomp.as_ref(),
            privileges.as_ref(),
            &terminal,
        )
        .await?;
        let ending = session.wait().await?;
        session.finish(ending)
    })?;
    Ok(status)
}

/// A started session. Field order is teardown order on an error path: CMD (and its PID
/// namespace, killed by `Spawned`'s drop) first, then the programs, then the cgroups.
struct Session<'a> {
    /// Borrows `child`'s pidfd: declared (so dropped) first.
    init_exit: AsyncFd<std::os::fd::RawFd>,
    child: Spawned,
    /// Reads CMD's terminal until its last holder closed it: dropped after `child`.
    relay: Option<Relay>,
    ring: AsyncFd<RingBuf<MapData>>,
    /// The session's resolver, when the policy has `allow_hosts`: its queries are events.
    resolver: Option<RunningResolver>,
    programs: SessionPrograms,
    /// The Landlock ruleset CMD's process fills and enters: kept open until it has.
    _landlock: Option<SessionDomain>,
    process_limit: Option<ProcessLimit>,
    cgroup: SessionCgroup,
    sinks: Sinks<'a>,
    signals: Signals,
    started: Instant,
    plan: &'a SessionPlan,
    options: &'a RunOptions,
    cmd: &'a PreparedCommand,
}

/// The signals that end a session early, and SIGWINCH for CMD's terminal.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
    /// Ends the session too: its default action would leave a relayed terminal in raw mode.
    quit: Signal,
    window_change: Signal,
}

impl Signals {
    fn install() -> Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("installing a SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing a SIGTERM handler")?,
            hangup: signal(SignalKind::hangup()).context("installing a SIGHUP handler")?,
            quit: signal(SignalKind::quit()).context("installing a SIGQUIT handler")?,
            window_change: signal(SignalKind::window_change())
                .context("installing a SIGWINCH handler")?,
        })
    }
}

/// How the event loop ended when it was not CMD's own exit: the ending, the exit status.
type EarlyEnd = Option<(Ending, i32)>;

impl<'a> Session<'a> {
    /// Builds the session in order and starts CMD in it. Everything that enforces the plan is
    /// in place before CMD's first instruction.
    async fn start(
        options: &'a RunOptions,
        plan: &'a SessionPlan,
        cmd: &'a PreparedCommand,
        seccomp: Option<&SeccompFilter>,
        privileges: Option<&DropPrivileges>,
        terminal: &'a Terminal,
    ) -> Result<Self> {
        let hierarchy = Hierarchy::find()?;
        let cgroup = SessionCgroup::create(&hierarchy)?;
        let process_limit = plan
            .max_processes
            .as_ref()
            .map(|(max, _)| ProcessLimit::apply(&hierarchy, &cgroup, *max))
            .transpose()?;
        // Bound before the programs load: they are configured with its address.
        let resolver = plan
            .resolver
            .as_ref()
            .map(|_| BoundResolver::bind())
            .transpose()?;
        let dns = resolver
            .as_ref()
            .map_or_else(DnsRedirect::default, BoundResolver::redirect);
        let mut programs = load_programs(options, plan, cmd, &cgroup, dns)?;
        // Started before CMD: its first query finds the resolver answering, and every address
        // is admitted to the kernel's table before the answer that hands it out.
        let resolver = match (resolver, &plan.resolver) {
            (Some(bound), Some(resolver_plan)) => Some(bound.start(
                resolver_plan.rules.clone(),
                Box::new(programs.take_host_addresses()?),
                plan.labels.names.clone(),
            )?),
            _ => None,
        };
        let landlock = SessionDomain::prepare(
            plan.landlock_files.as_ref(),
            &launch_files(options, cmd),
            plan.scope_abstract_sockets,
        )?;
        report_plan(terminal, plan, cmd, landlock.as_ref());
        let ring = programs.take_events()?;
        // SAFETY: the ring buffer owns its fd and outlives the registration.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(std::io::Error::from)
            .context("watching the ring buffer")?;
        let sinks = Sinks::new(options, plan, terminal)?;
        // Before CMD starts: a signal from here on must tear the session down.
        let signals = Signals::install()?;
        let mut hidden_dirs = if plan.hide_cgroup_mounts {
            hidden_cgroup_dirs()?
        } else {
            Vec::new()
        };
        if plan.resolver.is_some() {
            hidden_dirs.extend(resolving_daemon_dirs()?);
        }
        let terminal = SessionTerminal::open()?;
        if let Some(terminal) = &terminal {
            terminal.give_to(plan.process.identity.account.uid)?;
        }
        let setup = CmdSetup {
            hidden_dirs: &hidden_dirs,
            join_procs: process_limit.as_ref().and_then(ProcessLimit::join_fd),
            memfd_noexec: plan.memfd_noexec,
            landlock: landlock.as_ref().map(|domain| LandlockSetup {
                ruleset: domain.ruleset.fd(),
                grants: &domain.grants,
            }),
            seccomp,
            privileges,
            terminal: terminal.as_ref().map(SessionTerminal::cmd_side),
        };
        let started = Instant::now();
        let child = spawn::spawn(cmd, cgroup.dir_fd(), &setup)?;
        // SAFETY: the pidfd is owned by `child`, which outlives the registration (both are
        // fields of the session, `init_exit` dropped first).
        let init_exit = unsafe {
            AsyncFd::register_with_interest(
                std::os::fd::AsRawFd::as_raw_fd(&child.init_pidfd),
                Interest::READABLE,
            )
        }
        .map_err(std::io::Error::from)
        .context("watching the session's init process")?;
        // Last: on an error path before it, nothing waits for CMD's terminal to be released.
        // Ctrl-Z freezes the session; a kernel without the cgroup freezer lets it run on.
        let relay = terminal
            .map(|t| {
                t.relay(
                    std::fs::File::options()
                        .write(true)
                        .open(cgroup.path().join("cgroup.freeze"))
                        .ok(),
                )
            })
            .transpose()?;
        Ok(Self {
            child,
            relay,
            init_exit,
            ring,
            resolver,
            programs,
            _landlock: landlock,
            process_limit,
            cgroup,
            sinks,
            signals,
            started,
            plan,
            options,
            cmd,
        })
    }

    /// The event loop: until CMD ends (`None`), the timeout or a signal.
    async fn wait(&mut self) -> Result<EarlyEnd> {
        let deadline = tokio::time::sleep(self.plan.timeout);
        tokio::pin!(deadline);
        // The same deadline from a thread of its own, for when this loop is stuck.
        let backstop = self.cgroup.kill_after(self.plan.timeout, KILL_WAIT)?;
        let timed_out = Some((Ending::TimedOut, i32::from(exit::TIMEOUT)));
        let mut progress_ticker = tokio::time::interval(Progress::REFRESH);
        // The kernel wakes the loader only once the ring buffer is a quarter full (emit.rs in
        // sandtrace-ebpf); slower streams are drained on this tick.
        let mut drain_ticker = tokio::time::interval(DRAIN_INTERVAL);
        drain_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let signaled = |sig: i32| Some((Ending::Interrupted, 128 + sig));
        if self.resolver.is_some() {
            self.sinks.tally.count_dns_queries();
        }
        let ending = loop {
            tokio::select! {
                guard = self.ring.readable_mut() => {
                    let mut guard = guard.context("waiting for events")?;
                    // With events left the buffer stays "ready", so the next turn takes more,
                    // after select! has given the other branches their chance.
                    if drain(guard.get_inner_mut(), &mut self.sinks, DRAIN_BATCH) {
                        guard.clear_ready();
                    }
                }
                _ = drain_ticker.tick() => {
                    drain(self.ring.get_mut(), &mut self.sinks, DRAIN_BATCH);
                }
                Some(query) = next_dns_query(&mut self.resolver) => self.sinks.dns_query(&query),
                _ = self.init_exit.readable() => break if backstop.fired() { timed_out } else { None },
                _ = progress_ticker.tick(), if self.sinks.progress.is_enabled() => {
                    let syscalls =
                        self.programs.syscall_counts().map(|c| c.iter().sum()).unwrap_or(0);
                    self.sinks.progress.draw(syscalls);
                }
                _ = &mut deadline => break timed_out,
                _ = self.signals.interrupt.recv() => break signaled(libc::SIGINT),
                _ = self.signals.terminate.recv() => break signaled(libc::SIGTERM),
                _ = self.signals.hangup.recv() => break signaled(libc::SIGHUP),
                _ = self.signals.quit.recv() => break signaled(libc::SIGQUIT),
                _ = self.signals.window_change.recv() => {
                    if let Some(relay) = &self.relay {
                        relay.resize();
                    }
                }
            }
        };
        self.sinks.progress.clear();
        Ok(ending)
    }

    /// Kills whatever is left of the session, drains the last events, writes the summary and
    /// removes the cgroups; returns sandtrace's exit status.
    fn finish(mut self, early: EarlyEnd) -> Result<i32> {
        // Whatever ended the session, nothing of it may outlive this point.
        self.child.kill();
        let kill_result = self.cgroup.kill_all(KILL_WAIT);
        self.child.reap();
        let duration = self.started.elapsed();
        // No process of the session holds its terminal any more: the relay writes out the
        // rest of CMD's output and gives the user's terminal back before the summary.
        if let Some(relay) = self.relay.take() {
            relay.finish();
        }
        let (ending, exit_code, signal) = match early {
            Some((ending, code)) => (ending, code, None),
            None => self.outcome(),
        };
        if ending == Ending::TimedOut {
            self.sinks.terminal.note(&format!(
                "timeout of {} s reached; killed the session",
                self.plan.timeout.as_secs()
            ));
        }
        // Every session task is gone, so every event is in the ring buffer: take the rest.
        drain(self.ring.get_mut(), &mut self.sinks, usize::MAX);
        self.sinks.unanswered_dns();
        if let Some(mut resolver) = self.resolver.take() {
            resolver.stop();
            while let Some(query) = resolver.try_next() {
                self.sinks.dns_query(&query);
            }
        }
        let unenforced = self.plan.unenforced_labels();
        let summary: Summary = self.sinks.tally.finish(
            &self.programs.syscall_counts()?,
            self.programs.lost_events()?,
            self.programs.pending_overflows()?,
            RunResult {
                duration,
                exit_code,
                signal,
                ending,
                mode: self.plan.mode.name(),
                unenforced: &unenforced,
                approximated: &self.plan.approximated,
                run_as: RunAs::of(&self.plan.process),
                removed_environment: &self.plan.process.environment.removed,
            },
        );
        // Both logs are finished before either failure is reported.
        let log_failures: Vec<anyhow::Error> = std::mem::take(&mut self.sinks.logs)
            .into_iter()
            .filter_map(|log| log.finish(&summary).err())
            .collect();
        self.sinks.terminal.summary(
            &summary,
            &display_command(&self.options.command),
            self.options.output.as_deref(),
            self.options.record.as_deref(),
        );
        let Self {
            programs,
            cgroup,
            process_limit,
            sinks,
            ..
        } = self;
        drop(programs);
        kill_result?;
        cgroup.remove()?;
        if let Some(limit) = process_limit {
            limit.remove()?;
        }
        for e in &log_failures {
            sinks
                .terminal
                .note(&format!("error: the event log is incomplete: {e:#}"));
        }
        if !log_failures.is_empty() {
            return Ok(i32::from(exit::SANDTRACE_FAILED));
        }
        Ok(exit_code)
    }

    /// What init reported about CMD: `(ending, exit status, signal)`.
    fn outcome(&mut self) -> (Ending, i32, Option<i32>) {
        let terminal = self.sinks.terminal;
        match self.child.read_outcome() {
            Some(Outcome::Exited(status)) => {
                let (code, signal) = decode_wait_status(status);
                (Ending::Exited, code, signal)
            }
            Some(Outcome::ExecFailed(errno)) => {
                terminal.note(&format!(
                    "error: executing {}: {}",
                    self.cmd.path.display(),
                    spawn::describe_errno(errno)
                ));
                let code = if errno == libc::ENOENT {
                    exit::NOT_FOUND
                } else {
                    exit::CANNOT_EXECUTE
                };
                (Ending::StartFailed, i32::from(code), None)
            }
            Some(Outcome::SetupFailed(stage, errno)) => {
                terminal.note(&format!(
                    "error: {} failed: {}",
                    stage.describe(),
                    spawn::describe_errno(errno)
                ));
                (Ending::StartFailed, i32::from(exit::SANDTRACE_FAILED), None)
            }
            None => {
                terminal
                    .note("error: the session's init process died without reporting CMD's status");
                (Ending::StartFailed, i32::from(exit::SANDTRACE_FAILED), None)
            }
        }
    }
}

/// Configures, loads and attaches the session's kernel programs as the plan says; `dns` is
/// where the session's resolver listens (with `FLAG_SESSION_DNS`).
fn load_programs(
    options: &RunOptions,
    plan: &SessionPlan,
    cmd: &PreparedCommand,
    cgroup: &SessionCgroup,
    dns: DnsRedirect,
) -> Result<SessionPrograms> {
    let (offsets, lsm_programs) = {
        let btf = kernel_btf::KernelBtf::from_sys_fs()?;
        if plan.programs.paths.is_some() {
            crate::ebpf::check_lsm_hooks(&btf)?;
        }
        let programs: Vec<_> = plan
            .programs
            .lsm_programs()
            .into_iter()
            .map(|hook| (hook, crate::ebpf::program_for(hook, &btf)))
            .collect();
        (kernel_btf::kernel_offsets(&btf)?, programs)
        // Dropped here: loading parses the BTF again (aya's reader), and holding both would
        // add a third to the loader's peak memory.
    };
    let config = Config {
        session_cgroup_id: cgroup.id(),
        session_cgroup_level: cgroup.level(),
        flags: plan.programs.config_flags,
        session_pid_ns_level: spawn::own_pid_ns_level() + 1,
        _pad: 0,
        dns,
        n_regimes: u32::try_from(plan.programs.regimes.len()).expect("at most MAX_REGIMES"),
        _pad2: 0,
        regimes: std::array::from_fn(|i| plan.programs.regimes.get(i).copied().unwrap_or_default()),
        offsets,
    };
    let enforcement = plan.programs.paths.as_ref().map(|e| {
        let chain = launch_chain(options, cmd);
        Enforcement {
            paths: &e.paths,
            launch_chain: chain.iter().filter_map(|p| launch::path_key(p)).collect(),
            dynamic_loaders: launch::dynamic_loaders(&chain)
                .iter()
                .filter_map(|p| launch::path_key(p))
                .collect(),
            lsm_programs,
        }
    });
    // SAFETY: `cgroup` owns the descriptor and outlives the programs' attachment (the session
    // drops its programs before its cgroup).
    let cgroup_fd = unsafe { BorrowedFd::borrow_raw(cgroup.dir_fd()) };
    SessionPrograms::load(
        &config,
        options.ring_buffer_bytes,
        &plan.programs,
        enforcement.as_ref(),
        cgroup_fd,
    )
}

/// CMD's launch chain: the program and the `#!` interpreters its exec runs.
fn launch_chain(options: &RunOptions, cmd: &PreparedCommand) -> Vec<std::path::PathBuf> {
    launch::launch_chain(&cmd.path, options.command.get(1..).unwrap_or_default())
}

/// The files CMD's first exec needs under Landlock, resolved: its launch chain and the dynamic
/// loaders (the kernel opens an ELF interpreter as an exec).
fn launch_files(options: &RunOptions, cmd: &PreparedCommand) -> Vec<std::path::PathBuf> {
    let chain = launch_chain(options, cmd);
    let mut files: Vec<_> = chain
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    files.extend(launch::dynamic_loaders(&chain));
    files
}

/// With BPF LSM, isolation.rs keeps CMD out of the cgroup files; without it they are hidden,
/// or a root CMD could leave the session's cgroup and with it the network rules and the
/// process limit.
fn hidden_cgroup_dirs() -> Result<Vec<CString>> {
    crate::cgroup::cgroup_mount_cover()?
        .into_iter()
        .map(|dir| CString::new(dir.into_os_string().into_encoded_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .context("a cgroup mount point contains a NUL byte")
}

/// The directories of [`ResolverPlan::RESOLVING_DAEMON_DIRS`] this host has, as the kernel
/// finds them (`/var/run` and `/etc/resolv.conf`'s directory are often links).
fn resolving_daemon_dirs() -> Result<Vec<CString>> {
    let mut dirs: Vec<CString> = Vec::new();
    for dir in ResolverPlan::RESOLVING_DAEMON_DIRS {
        let Ok(dir) = std::fs::canonicalize(dir) else {
            continue;
        };
        if !dir.is_dir() {
            continue;
        }
        let dir = CString::new(dir.into_os_string().into_encoded_bytes())
            .context("a resolving daemon's directory contains a NUL byte")?;
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    Ok(dirs)
}

/// Says, before CMD starts, who it runs as, which capabilities it keeps, which variables it
/// does not get, and what the session does not enforce.
fn report_plan(
    terminal: &Terminal,
    plan: &SessionPlan,
    cmd: &PreparedCommand,
    landlock: Option<&SessionDomain>,
) {
    let process = &plan.process;
    // The kernel matches the resolved path (/bin/sh is /usr/bin/dash).
    let resolved = std::fs::canonicalize(&cmd.path).unwrap_or_else(|_| cmd.path.clone());
    let entered = plan
        .programs
        .regimes_entered_by(resolved.as_os_str().as_encoded_bytes());
    if entered != 0 {
        terminal.note(&format!(
            "warning: {} enters the after_exec regime {}: the whole session, CMD included, is \
             held to it; start the program the regime is for from a program it does not list",
            resolved.display(),
            plan.labels.regimes_in(entered).join(", ")
        ));
    }
    for warning in process.capability_warnings() {
        terminal.note(&warning);
    }
    if !process.environment.removed.is_empty() {
        terminal.note(&format!(
            "environment: removed {} variables (pass one with --pass-env NAME or [environment] \
             pass): {}",
            process.environment.removed.len(),
            process.environment.removed.join(", ")
        ));
    }
    if let Mode::Degraded(why) = &plan.mode {
        report_degraded(terminal, why, plan, landlock);
    }
    for u in &plan.unenforced {
        if u.rule.kind == "network" {
            terminal.note(&format!(
                "warning: {} stay reachable: {}",
                u.rule.pattern, u.reason
            ));
        }
    }
}

/// Says, before CMD starts, what a degraded session does and does not enforce.
fn report_degraded(
    terminal: &Terminal,
    why: &str,
    plan: &SessionPlan,
    landlock: Option<&SessionDomain>,
) {
    terminal.note(&format!(
        "warning: --allow-degraded: BPF LSM is not available ({why}); enforcing only what works \
         without it"
    ));
    let mut enforced = vec!["[syscalls] deny (seccomp)"];
    if plan.programs.network.is_some() {
        enforced.push("[network] (cgroup socket programs and seccomp)");
    }
    if plan.max_processes.is_some() {
        enforced.push("[limits] max_processes (pids cgroup)");
    }
    enforced.push("[limits] timeout");
    enforced.push("the session cgroup (the cgroup file systems are hidden from the command)");
    let files: Vec<_> = plan
        .unenforced
        .iter()
        .filter(|u| u.rule.kind != "network")
        .collect();
    if let (Some(files_plan), Some(domain)) = (&plan.landlock_files, landlock) {
        let carved = format!(
            "[filesystem] (Landlock ABI {}: {} grants, carved from {} directory entries at start)",
            files_plan.abi,
            domain.grants.len(),
            domain.walked
        );
        enforced.push(&carved);
        terminal.note(&format!("enforced: {}", enforced.join(", ")));
        for a in &plan.approximated {
            terminal.note(&format!(
                "approximated: {} {} ({}): {}",
                a.rule.kind, a.rule.pattern, a.rule.source, a.how
            ));
        }
        for u in files {
            terminal.note(&format!(
                "NOT enforced: {} {}: {}",
                u.rule.kind, u.rule.pattern, u.reason
            ));
        }
    } else {
        terminal.note(&format!("enforced: {}", enforced.join(", ")));
        report_unenforced_files(terminal, &files);
    }
    if plan.programs.network.is_some() {
        terminal.note(
            "io_uring is unavailable to the command (io_uring_setup fails with EPERM): \
             without BPF LSM, sandtrace cannot check the sockets io_uring creates",
        );
    }
}

/// Degraded without Landlock: the path rules have no effect.
fn report_unenforced_files(terminal: &Terminal, files: &[&crate::plan::Unenforced]) {
    terminal.note(&format!(
        "NOT enforced: [filesystem]: the command may read, write and execute whatever its user \
         may; {}",
        match files.len() {
            0 => "the policy lists no path rules".to_owned(),
            n => format!("these {n} rules have no effect:"),
        }
    ));
    for u in files {
        terminal.note(&format!(
            "  {} {} ({})",
            u.rule.kind, u.rule.pattern, u.rule.source
        ));
    }
}

/// Where the event stream goes.
struct Sinks<'a> {
    clock: Clock,
    /// The JSONL log (`-o`) and the capture (`--record`), those asked for.
    logs: Vec<EventLog>,
    terminal: &'a Terminal,
    labels: &'a Labels,
    tally: Tally,
    follow_forks: bool,
    root_tgid: Option<u32>,
    progress: Progress,
    dns_traffic: DnsTraffic,
    /// With Landlock holding the filesystem rules: its refusals, made file denials.
    refusals: Option<Refusals>,
}

impl<'a> Sinks<'a> {
    fn new(options: &RunOptions, plan: &'a SessionPlan, terminal: &'a Terminal) -> Result<Self> {
        let clock = Clock::new();
        let labels = &plan.labels;
        Ok(Self {
            clock,
            logs: Self::logs(options, clock, labels)?,
            terminal,
            labels,
            tally: Tally::default(),
            follow_forks: options.follow_forks,
            root_tgid: None,
            progress: Progress::new(options.verbosity == Verbosity::Quiet, Instant::now()),
            dns_traffic: DnsTraffic::default(),
            refusals: plan
                .landlock_files
                .as_ref()
                .map(|files| Refusals::new(files.paths.clone())),
        })
    }

    /// The event logs `options` asks for, created.
    fn logs(options: &RunOptions, clock: Clock, labels: &Labels) -> Result<Vec<EventLog>> {
        let jsonl = options.output.as_deref().map(|path| {
            let format = JsonlFormat::new(clock, labels.clone());
            EventLog::create(path, Box::new(format))
        });
        let capture = options.record.as_deref().map(|path| {
            let format = CaptureFormat::new(clock, labels);
            EventLog::create(path, Box::new(format))
        });
        jsonl.into_iter().chain(capture).collect()
    }

    fn record(&mut self, bytes: &[u8]) {
        let Ok(event) = events::decode(bytes, &self.clock) else {
            self.tally.count_undecodable();
            return;
        };
        if let EventBody::DnsPacket(packet) = &event.body {
            for query in self.dns_traffic.observe(event.time, packet) {
                self.observed_dns(&query);
            }
            return;
        }
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
        for log in &mut self.logs {
            log.append(bytes);
        }
        if let Some(denial) = self
            .refusals
            .as_mut()
            .and_then(|refusals| refusals.file_event(bytes, &event))
        {
            self.record(&denial);
        }
    }

    /// A query the session's resolver answered: counted, shown and logged.
    fn dns_query(&mut self, query: &DnsQuery) {
        self.tally.observe_dns(query);
        self.terminal.dns(query, self.labels);
        let line = crate::output::dns::line(query, self.labels);
        for log in &mut self.logs {
            log.append_dns(&line);
        }
    }

    /// A query seen in the session's traffic: counted, shown and logged.
    fn observed_dns(&mut self, query: &ObservedQuery) {
        // Its answers name no address in network or socket lines: they are whatever the
        // command's own server (which may be the command's accomplice) claimed, while those
        // names stand for what sandtrace's resolver found.
        self.tally.observe_dns_traffic(query);
        self.terminal.observed_dns(query);
        let line = crate::output::dns::observed_line(query);
        for log in &mut self.logs {
            log.append_dns(&line);
        }
    }

    /// The session has ended: the queries no answer came for.
    fn unanswered_dns(&mut self) {
        for query in self.dns_traffic.finish() {
            self.observed_dns(&query);
        }
    }

    /// The ring buffer is empty for now.
    fn drained(&mut self) {
        for log in &mut self.logs {
            log.hand_over();
        }
        if let Some(refusals) = &mut self.refusals {
            refusals.batch_done();
        }
    }
}

/// The next query of the session's resolver; never, without one.
async fn next_dns_query(resolver: &mut Option<RunningResolver>) -> Option<DnsQuery> {
    match resolver {
        Some(resolver) => resolver.next().await,
        None => std::future::pending().await,
    }
}

/// Records up to `limit` events from the ring buffer; true when it is empty.
fn drain(ring: &mut RingBuf<MapData>, sinks: &mut Sinks<'_>, limit: usize) -> bool {
    let mut taken = 0;
    let emptied = loop {
        if taken == limit {
            break false;
        }
        match ring.next() {
            Some(item) => sinks.record(&item),
            None => break true,
        }
        taken += 1;
    };
    sinks.drained();
    emptied
}

fn display_command(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
