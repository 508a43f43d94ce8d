//! The BPF-LSM part of the benchmark: enforcing runs need a kernel that loads LSM programs, so
//! they run in the project's VM. Timings under software emulation compare only within one
//! boot, so a single boot runs the native, trace-only and enforcing runs side by side: the host
//! starts `cargo xtask vm` with this xtask binary's hidden `bench guest` command, which runs
//! them and prints its results as one JSON line on stdout.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use super::{
    fresh_dir,
    runner::{self, Tools, Variant, WorkloadRuns},
    workloads::{self, Kind, Sizes},
};
use crate::vm;

/// What one boot measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuestReport {
    /// The guest kernel's release (`uname -r`).
    pub kernel: String,
    pub workloads: Vec<WorkloadRuns>,
}

/// A bound on one boot, per repetition (about two minutes each here: every enforcing run
/// spends seconds in the verifier under emulation), with room for a slower machine.
const VM_TIMEOUT_SECS_PER_REPETITION: u64 = 600;

/// Boots `kernel` and runs the VM part there with `xtask`, a copy of this binary; `quick`
/// runs only the start-up workload.
pub fn run_in_vm(
    xtask: &Path,
    kernel: &str,
    sandtrace: &Path,
    repetitions: u32,
    quick: bool,
) -> Result<GuestReport> {
    let mut command = Command::new(xtask);
    command
        .args(["vm", "--kernel", kernel, "--timeout"])
        .arg((VM_TIMEOUT_SECS_PER_REPETITION * u64::from(repetitions + 1)).to_string());
    // The copies of both binaries live in the benchmark's scratch directory, which may lie
    // where the guest has a tmpfs of its own (a clone in /tmp).
    let binary_dirs = [xtask, sandtrace].map(|p| p.parent().unwrap_or(p).to_path_buf());
    for dir in vm::hidden_in_guest(binary_dirs) {
        command.arg("--share").arg(dir);
    }
    command
        .arg("--")
        .arg(xtask)
        .args(["bench", "guest", "--sandtrace"])
        .arg(sandtrace)
        .arg("--repetitions")
        .arg(repetitions.to_string());
    if quick {
        command.arg("--quick");
    }
    // The guest runs in the same directory, which must exist there: `/` always does.
    command
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!("the benchmark in the VM failed ({})", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .context("the benchmark in the VM printed no results")?;
    serde_json::from_str(line).context("parsing the VM's benchmark results")
}

/// `xtask bench guest`: the VM side.
#[derive(clap::Args, Debug)]
pub struct GuestArgs {
    #[arg(long, value_name = "PATH")]
    sandtrace: PathBuf,
    #[arg(long, value_name = "N")]
    repetitions: u32,
    #[arg(long)]
    quick: bool,
}

pub fn run_guest(args: &GuestArgs) -> Result<ExitCode> {
    // The guest's temp directory is its own tmpfs: scratch files never touch the host share,
    // where every open is a round trip to the host.
    let scratch = fresh_dir(&std::env::temp_dir().join("sandtrace-bench"))?;
    let tools = Tools {
        sandtrace: args.sandtrace.clone(),
        timer: std::env::current_exe().context("locating the xtask binary")?,
        policy: runner::write_allow_policy(&scratch)?,
        scratch,
    };
    let mut workloads = workloads::prepare(&Sizes::vm(), &tools.scratch)?;
    if args.quick {
        workloads.retain(|w| w.kind == Kind::StartUp);
    }
    let runs = runner::run_interleaved(&workloads, &Variant::VM, args.repetitions, &tools)?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("reading /proc/sys/kernel/osrelease")?
        .trim()
        .to_owned();
    let report = GuestReport {
        kernel,
        workloads: runs,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}
