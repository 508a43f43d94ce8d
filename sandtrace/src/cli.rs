//! The command line, defined in one place: every subcommand and flag with its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "sandtrace",
    version,
    about = "Run an untrusted command under a kernel-enforced policy and record everything it does",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run CMD in its own cgroup session, enforce the policy and trace it.
    Run(RunArgs),
    /// Validate and print policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Report what this kernel supports (BPF LSM, cgroup v2, BTF), one line per capability.
    Probe,
}

/// Flags that select and adjust the policy of `run`.
#[derive(Args, Debug, Clone, Default)]
pub struct PolicyFlags {
    /// Policy file (TOML). Without it a built-in restrictive default applies
    /// (`sandtrace policy show --default` prints it).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: PolicyOverrideFlags,
}

/// Flags merged into the policy; shared by `run` and `policy check`.
#[derive(Args, Debug, Clone, Default)]
pub struct PolicyOverrideFlags {
    /// Allow reading and writing PATH and everything beneath it (repeatable).
    #[arg(long = "allow-path", value_name = "PATH")]
    pub allow_path: Vec<PathBuf>,
    /// Allow network access (overrides `[network] allow`).
    #[arg(long)]
    pub allow_net: bool,
    /// Allow executing any file that is readable under the policy.
    #[arg(long)]
    pub allow_exec: bool,
    /// Kill the whole session after SECONDS (overrides `[limits] timeout`; default 30).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub policy: PolicyFlags,
    /// Write every event as one JSON object per line to FILE.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only trace; enforce nothing (works on kernels without BPF LSM).
    #[arg(long)]
    pub trace_only: bool,
    /// Trace the processes CMD starts, not only CMD itself (the default).
    #[arg(long, overrides_with = "no_follow_forks")]
    pub follow_forks: bool,
    /// Trace only CMD's own process; its children are still confined by the policy.
    #[arg(long)]
    pub no_follow_forks: bool,
    /// Disable colours (also when NO_COLOR is set).
    #[arg(long)]
    pub no_color: bool,
    /// Stream events to the terminal: -v process and denial events, -vv also syscalls with
    /// errors, -vvv every syscall.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Size of the kernel-to-loader ring buffer in bytes (a power of two, at least 4096).
    /// Larger buffers lose fewer events under bursts.
    #[arg(long, value_name = "BYTES", default_value_t = crate::ebpf::DEFAULT_RING_BUFFER_BYTES,
          value_parser = parse_ring_buffer_size)]
    pub ring_buffer_size: u32,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy file and print the effective policy after merging the flags, with
    /// where each rule came from.
    Check {
        /// The policy file to check.
        file: PathBuf,
        #[command(flatten)]
        overrides: PolicyOverrideFlags,
    },
    /// Print a policy as TOML that parses back to the same policy.
    Show {
        /// The policy file to print.
        #[arg(required_unless_present = "default", conflicts_with = "default")]
        file: Option<PathBuf>,
        /// Print the built-in default policy.
        #[arg(long)]
        default: bool,
    },
}

fn parse_ring_buffer_size(s: &str) -> Result<u32, String> {
    let v: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if v < 4096 || !v.is_power_of_two() {
        return Err(format!("{v} is not a power of two of at least 4096"));
    }
    Ok(v)
}
