//! The `sandtrace` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser as _;
use sandtrace::{
    cli::{Cli, Command, RunArgs},
    ebpf::{self, LsmSupport},
    output::{SyscallActions, terminal::Verbosity},
    session::{self, Plan},
};

/// Exit status for usage and policy errors (nothing was started).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match cli.command {
        Command::Run(args) => ExitCode::from(run(args) as u8),
        Command::Policy(cmd) => sandtrace::policy::command::run_policy_command(&cmd),
        Command::Probe => probe(),
    }
}

fn run(args: RunArgs) -> i32 {
    if !args.trace_only {
        match ebpf::probe_lsm() {
            LsmSupport::Available => {
                eprintln!(
                    "sandtrace: error: enforcing mode is not available in this build yet; \
                     use --trace-only to trace without enforcing"
                );
            }
            LsmSupport::Unavailable(why) => {
                eprintln!(
                    "sandtrace: error: cannot enforce the policy: BPF LSM is not available on \
                     this kernel: {why}\n  hint: use --trace-only to trace without enforcing, or \
                     see the README for running sandtrace in the project's BPF-LSM VM"
                );
            }
        }
        return session::EXIT_SANDTRACE_FAILED;
    }
    let timeout = args.policy.timeout.unwrap_or(30);
    session::run(Plan {
        command: args.command,
        timeout: std::time::Duration::from_secs(timeout),
        output: args.output,
        verbosity: Verbosity::from_count(args.verbose),
        no_color: args.no_color,
        follow_forks: !args.no_follow_forks,
        ring_buffer_bytes: args.ring_buffer_size,
        mode: "trace-only",
        seccomp: None,
        actions: SyscallActions::default(),
    })
}

fn probe() -> ExitCode {
    match ebpf::probe_lsm() {
        LsmSupport::Available => println!("bpf-lsm: available"),
        LsmSupport::Unavailable(why) => println!("bpf-lsm: unavailable: {why}"),
    }
    ExitCode::SUCCESS
}
