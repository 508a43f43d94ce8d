//! The command line, defined in one place: every subcommand and flag with its help text.

use std::path::PathBuf;

use clap::{Args, CommandFactory as _, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "sandtrace",
    version,
    about = "Run an untrusted command under a kernel-enforced policy and record everything it does",
    propagate_version = true,
    after_help = EXAMPLES
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
    /// Report what this kernel offers a session (BPF LSM, Landlock, the pids controller), one
    /// line per feature.
    Probe,
    /// Run CMD traced (nothing enforced) and write the policy that lets exactly that run
    /// succeed.
    #[command(after_help = LEARN_EXAMPLES)]
    Learn(LearnArgs),
    /// Summarise an event log written by `run -o` (or a capture of `run --record`):
    /// processes, files, network, denials.
    Report(ReportArgs),
    /// Write the JSONL event log of a capture (`run --record`): the lines `run -o` writes.
    Export(ExportArgs),
    /// Print a shell completion script (e.g. `sandtrace completions bash >
    /// /etc/bash_completion.d/sandtrace`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of sandtrace or of one of its commands, e.g.
    /// `sandtrace man > sandtrace.1`, `sandtrace man run > sandtrace-run.1`.
    Man {
        /// The command, e.g. `run` or `policy check`.
        #[arg(value_name = "COMMAND")]
        command: Vec<String>,
    },
}

const EXAMPLES: &str = "\
Examples:
  Trace a build, enforce nothing, keep the events:
    sandtrace run --trace-only -o events.jsonl -- make
  Confine an unknown binary:
    sandtrace run --policy examples/strict.toml -- ./tool
  Learn a policy from one run of it:
    sandtrace learn --base examples/strict.toml -o tool.toml -- ./tool
  Summarise a recorded run:
    sandtrace report events.jsonl
  Capture a busy run compactly, then read it:
    sandtrace run --trace-only --record build.cap -- make
    sandtrace report build.cap
    sandtrace export build.cap -o build.jsonl
  Validate a policy:
    sandtrace policy check tool.toml";

const RUN_EXAMPLES: &str = "\
Examples:
  Under the built-in default policy:
    sandtrace run -- ls /usr
  Under a policy, with one more writable directory:
    sandtrace run --policy examples/strict.toml --allow-path ./out -- ./tool
  Trace only, stream failed syscalls, keep a log:
    sandtrace run --trace-only -vv -o events.jsonl -- python3 app.py
  With the network and a longer timeout:
    sandtrace run --policy p.toml --allow-net --timeout 300 -- npm install

Exit status: CMD's own; 124 when the timeout killed it; 125 when sandtrace
failed; 126 when CMD could not be executed, 127 when it was not found; 2 for
an invalid policy.";

const LEARN_EXAMPLES: &str = "\
Examples:
  Learn from one run, then run it again under the learned policy:
    sandtrace learn --base examples/strict.toml -o tar.toml -- tar -czf out.tgz src
    sandtrace run --policy tar.toml -- tar -czf out.tgz src
  Keep the event log to read it with `sandtrace report`:
    sandtrace learn -o app.toml --log app.jsonl -- python3 app.py

The base policy contributes its deny list, syscall lists and limits; the
allow lists are learned. See the README (\"Learning a policy\") for how the
paths a run used become rules.";

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
#[command(after_help = RUN_EXAMPLES)]
pub struct RunArgs {
    #[command(flatten)]
    pub policy: PolicyFlags,
    /// Write every event as one JSON object per line to FILE.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write every event to FILE as a compact binary capture: the kernel's records, copied
    /// (faster than -o, and about half its size). `sandtrace report` reads it as it is;
    /// `sandtrace export FILE -o OUT` writes the JSONL log -o would have written.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Only trace; enforce no policy rule, only the seccomp baseline of every mode (works on
    /// kernels without BPF LSM).
    #[arg(long)]
    pub trace_only: bool,
    /// On a kernel without BPF LSM, run anyway with every rule that does not need it (network,
    /// syscalls, max_processes, timeout) and the filesystem rules enforced by Landlock where the
    /// kernel has it (approximately: what is approximated or not enforced is listed before CMD
    /// starts and in the summary; without Landlock they are not enforced). Without this flag
    /// such a kernel is refused.
    #[arg(long, conflicts_with = "trace_only")]
    pub allow_degraded: bool,
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
    #[command(flatten)]
    pub process: ProcessArgs,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

/// How CMD's process is run: its user, capabilities and environment (in every mode).
#[derive(Args, Debug, Clone, Default)]
pub struct ProcessArgs {
    /// Run CMD as USER (a name or uid), with GROUP (a name or gid) as its group, and USER's
    /// supplementary groups and home. Default: the user who ran sudo; root (without
    /// capabilities) otherwise.
    #[arg(long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Run CMD as root with every capability sandtrace has (only the policy's rules confine
    /// it). Default: every capability is removed except `[process] capabilities`.
    #[arg(long, conflicts_with = "user")]
    pub as_root: bool,
    /// Pass the caller's variable NAME to CMD as well (repeatable). Default: only PATH, HOME,
    /// USER, LOGNAME, SHELL, LANG, LC_*, TERM, TZ, TMPDIR and what `[environment]` passes.
    #[arg(long = "pass-env", value_name = "NAME", value_parser = parse_env_name)]
    pub pass_env: Vec<String>,
    /// Pass the caller's whole environment to CMD.
    #[arg(long)]
    pub keep_env: bool,
}

fn parse_env_name(s: &str) -> Result<String, String> {
    crate::policy::environment::check_name(s)
        .map(|()| s.to_owned())
        .map_err(|problem| problem.message)
}

impl From<&ProcessArgs> for crate::plan::ProcessFlags {
    fn from(args: &ProcessArgs) -> Self {
        Self {
            user: args.user.clone(),
            as_root: args.as_root,
            pass_env: args.pass_env.clone(),
            keep_env: args.keep_env,
        }
    }
}

#[derive(Args, Debug)]
pub struct LearnArgs {
    /// Policy to start from: its deny list, syscall lists and limits are kept, its allow
    /// lists are replaced by what the run used.
    #[arg(long, value_name = "FILE")]
    pub base: Option<PathBuf>,
    /// Where to write the learned policy.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Keep the run's event log in FILE (otherwise it is deleted).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Kill the traced run after SECONDS (default: the base policy's timeout, or 30).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Disable colours (also when NO_COLOR is set).
    #[arg(long)]
    pub no_color: bool,
    /// Size of the kernel-to-loader ring buffer in bytes (a power of two, at least 4096).
    /// A lost event can mean a missing rule, so learning fails when events are lost.
    #[arg(long, value_name = "BYTES", default_value_t = crate::ebpf::DEFAULT_RING_BUFFER_BYTES,
          value_parser = parse_ring_buffer_size)]
    pub ring_buffer_size: u32,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The event log (`sandtrace run -o FILE`) or capture (`--record FILE`); one cut short
    /// (no summary line) is read too.
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The capture (`sandtrace run --record FILE`).
    pub capture: PathBuf,
    /// Where to write the JSONL log.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// For people.
    Text,
    /// One JSON object, for machines.
    Json,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy file and print the effective policy after merging the flags, with
    /// where each rule came from and what enforces it on this kernel.
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

/// Writes the completion script for `shell`, generated from these definitions.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "sandtrace", out);
}

/// Writes the man page of `sandtrace` (no `path`) or of the command at `path` (`["policy",
/// "check"]` is sandtrace-policy-check(1)), generated from these definitions.
pub fn write_man_page(path: &[String], out: &mut dyn std::io::Write) -> Result<(), String> {
    let mut command = Cli::command();
    command.build();
    let mut name = "sandtrace".to_owned();
    for part in path {
        let known: Vec<String> = command
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .map(|c| c.get_name().to_owned())
            .collect();
        command = command
            .find_subcommand(part)
            .filter(|c| c.get_name() != "help")
            .cloned()
            .ok_or_else(|| {
                format!(
                    "`{name}` has no command `{part}`; its commands are: {}",
                    known.join(", ")
                )
            })?;
        name = format!("{name}-{part}");
    }
    let command = command
        .name(name)
        .bin_name(format!("sandtrace {}", path.join(" ")).trim_end());
    clap_mangen::Man::new(command)
        .render(out)
        .map_err(|e| format!("writing the man page: {e}"))
}

impl From<&PolicyOverrideFlags> for crate::policy::CliOverrides {
    fn from(flags: &PolicyOverrideFlags) -> Self {
        Self {
            allow_paths: flags.allow_path.clone(),
            allow_net: flags.allow_net,
            allow_exec: flags.allow_exec,
            timeout_secs: flags.timeout,
        }
    }
}

impl RunArgs {
    /// The run as the library takes it.
    pub fn to_options(&self) -> crate::plan::RunOptions {
        crate::plan::RunOptions {
            policy_file: self.policy.policy.clone(),
            overrides: (&self.policy.overrides).into(),
            mode: crate::plan::ModeFlags {
                trace_only: self.trace_only,
                allow_degraded: self.allow_degraded,
            },
            output: self.output.clone(),
            record: self.record.clone(),
            verbosity: crate::output::terminal::Verbosity::from_count(self.verbose),
            no_color: self.no_color,
            follow_forks: !self.no_follow_forks,
            ring_buffer_bytes: self.ring_buffer_size,
            process: (&self.process).into(),
            command: self.command.clone(),
        }
    }
}

impl PolicyCommand {
    /// The policy command as the library takes it.
    pub fn to_request(&self) -> crate::policy::command::PolicyRequest {
        use crate::policy::command::PolicyRequest;
        match self {
            PolicyCommand::Check { file, overrides } => PolicyRequest::Check {
                file: file.clone(),
                overrides: overrides.into(),
            },
            PolicyCommand::Show { file, default } => PolicyRequest::Show {
                file: file.clone(),
                default: *default,
            },
        }
    }
}
