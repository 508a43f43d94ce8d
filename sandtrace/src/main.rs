//! The `sandtrace` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser as _;
use sandtrace::{
    cli::{Cli, Command, RunArgs},
    ebpf::{self, LsmSupport},
    network::{self, NetworkRules},
    output::{Labels, terminal::Verbosity},
    policy::{self, CliOverrides, PathDecision},
    seccomp::{SeccompFilter, SocketFamilies},
    session::{self, EnforcePlan, Plan, RulesPlan},
    syscall_table,
};

/// Exit status for usage and policy errors (nothing was started).
const EXIT_USAGE: i32 = 2;

/// Syscalls that would let a process change what paths mean (mounts, a new root) or reach a
/// file without a path check (file handles; `uselib`, whose exec-mode open no exec hook
/// decides). Enforcing mode refuses them whatever the policy says: the path rules could not be
/// trusted otherwise.
const PATH_INTEGRITY_SYSCALLS: &[&str] = &[
    "mount",
    "umount2",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsmount",
    "fspick",
    "mount_setattr",
    "chroot",
    "pivot_root",
    "open_by_handle_at",
    "uselib",
];

/// Syscalls that would let a root process detach or replace sandtrace's own kernel programs
/// (the network and path rules, the event stream): `bpf` can fetch any BPF link by id and
/// detach it. Every enforcing session refuses them.
const PROGRAM_INTEGRITY_SYSCALLS: &[&str] = &["bpf"];

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE as u8 } else { 0 });
        }
    };
    match cli.command {
        Command::Run(args) => ExitCode::from(run(args) as u8),
        Command::Policy(cmd) => policy::command::run_policy_command(&cmd),
        Command::Probe => probe(),
        Command::Learn(args) => ExitCode::from(sandtrace::learn::command(&args) as u8),
        Command::Report(args) => sandtrace::report::command(&args),
        Command::Completions { shell } => {
            sandtrace::cli::write_completions(shell, &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { command } => {
            match sandtrace::cli::write_man_page(&command, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sandtrace: error: {e}");
                    ExitCode::from(EXIT_USAGE as u8)
                }
            }
        }
    }
}

fn run(args: RunArgs) -> i32 {
    let overrides = CliOverrides::from(&args.policy.overrides);
    let prepared = match policy::prepare(args.policy.policy.as_deref(), &overrides) {
        Ok(p) => p,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            eprintln!("sandtrace: nothing was started");
            return EXIT_USAGE;
        }
    };
    let effective = &prepared.effective;
    let degraded = if args.trace_only {
        None
    } else {
        match ebpf::probe_lsm() {
            LsmSupport::Available => None,
            LsmSupport::Unavailable(why) if args.allow_degraded => Some(why),
            LsmSupport::Unavailable(why) => {
                eprintln!(
                    "sandtrace: error: cannot enforce the policy: BPF LSM is not available on \
                     this kernel: {why}\n  hint: use --trace-only to trace without enforcing, \
                     --allow-degraded to enforce everything but the filesystem rules, or see \
                     the README for running sandtrace in the project's BPF-LSM VM"
                );
                return session::EXIT_SANDTRACE_FAILED;
            }
        }
    };
    let (enforce, seccomp, rules) = if args.trace_only {
        (None, None, RulesPlan::default())
    } else {
        let network = NetworkRules::for_policy(effective);
        let mut denied: Vec<u32> = effective
            .denied_syscalls
            .iter()
            .map(|s| s.value.id() as u32)
            .collect();
        denied.extend(
            PATH_INTEGRITY_SYSCALLS
                .iter()
                .chain(PROGRAM_INTEGRITY_SYSCALLS)
                .filter_map(|n| syscall_table::number(n)),
        );
        // Without BPF LSM nothing sees the sockets io_uring creates (the seccomp filter only
        // sees syscalls), so a restricted network takes io_uring away.
        let guard_sockets = degraded.is_some() && network.is_some();
        if guard_sockets {
            denied.extend(syscall_table::number("io_uring_setup"));
        }
        denied.sort_unstable();
        denied.dedup();
        let families = guard_sockets.then_some(SocketFamilies {
            allowed: network::ALLOWED_SOCKET_FAMILIES,
            limit: network::SOCKET_FAMILY_LIMIT,
        });
        let seccomp = match SeccompFilter::build_with_socket_families(&denied, families) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("sandtrace: error: building the seccomp filter: {e:#}");
                return session::EXIT_SANDTRACE_FAILED;
            }
        };
        let log_only: Vec<u32> = effective
            .log_only_syscalls
            .iter()
            .map(|s| s.value.id() as u32)
            .collect();
        let exec_unrestricted = matches!(
            prepared.compiled.decide(b"/"),
            PathDecision::Matched(a) if a.kinds & sandtrace_common::policy::KIND_EXEC != 0
        );
        let enforce = degraded.is_none().then(|| EnforcePlan {
            paths: prepared.compiled.clone(),
            exec_unrestricted,
        });
        let rules = RulesPlan {
            syscall_actions: session::syscall_actions(&denied, &log_only, guard_sockets),
            network,
            max_processes: effective.max_processes.value,
            degraded,
        };
        (enforce, Some(seccomp), rules)
    };
    let labels = if args.trace_only {
        Labels::default()
    } else {
        Labels::for_policy(effective)
    };
    session::run(Plan {
        command: args.command,
        timeout: effective.timeout.value,
        output: args.output,
        verbosity: Verbosity::from_count(args.verbose),
        no_color: args.no_color,
        follow_forks: !args.no_follow_forks,
        ring_buffer_bytes: args.ring_buffer_size,
        enforce,
        seccomp,
        rules,
        labels,
    })
}

fn probe() -> ExitCode {
    match ebpf::probe_lsm() {
        LsmSupport::Available => println!("bpf-lsm: available"),
        LsmSupport::Unavailable(why) => println!("bpf-lsm: unavailable: {why}"),
    }
    ExitCode::SUCCESS
}
