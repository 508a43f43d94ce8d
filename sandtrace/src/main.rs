//! The `sandtrace` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser as _;
use sandtrace::{
    cli::{Cli, Command, RunArgs},
    ebpf::{self, LsmSupport},
    output::{Labels, terminal::Verbosity},
    policy::{self, CliOverrides, PathDecision},
    seccomp::SeccompFilter,
    session::{self, EnforcePlan, Plan},
    syscall_table,
};

/// Exit status for usage and policy errors (nothing was started).
const EXIT_USAGE: i32 = 2;

/// Syscalls that would let a process change what paths mean (mounts, a new root) or reach a
/// file without a path (file handles). Enforcing mode refuses them whatever the policy says:
/// the path rules could not be trusted otherwise.
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
];

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
    let mut denied: Vec<u32> = effective
        .denied_syscalls
        .iter()
        .map(|s| s.value.id() as u32)
        .collect();
    let (enforce, seccomp) = if args.trace_only {
        (None, None)
    } else {
        if let LsmSupport::Unavailable(why) = ebpf::probe_lsm() {
            eprintln!(
                "sandtrace: error: cannot enforce the policy: BPF LSM is not available on this \
                 kernel: {why}\n  hint: use --trace-only to trace without enforcing, or see the \
                 README for running sandtrace in the project's BPF-LSM VM"
            );
            return session::EXIT_SANDTRACE_FAILED;
        }
        denied.extend(
            PATH_INTEGRITY_SYSCALLS
                .iter()
                .filter_map(|n| syscall_table::number(n)),
        );
        denied.sort_unstable();
        denied.dedup();
        let seccomp = match SeccompFilter::build(&denied) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("sandtrace: error: building the seccomp filter: {e:#}");
                return session::EXIT_SANDTRACE_FAILED;
            }
        };
        let exec_unrestricted = matches!(
            prepared.compiled.decide(b"/"),
            PathDecision::Matched(a) if a.kinds & sandtrace_common::policy::KIND_EXEC != 0
        );
        (
            Some(EnforcePlan {
                paths: prepared.compiled.clone(),
                exec_unrestricted,
            }),
            Some(seccomp),
        )
    };
    let labels = if args.trace_only {
        Labels::default()
    } else {
        Labels::for_policy(effective, &denied)
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
