//! `cargo xtask bench`: what sandtrace costs. Each workload runs natively, under
//! `sandtrace run --trace-only` (alone, with `-o` and with `--record`), under
//! `--allow-degraded` with a policy that allows it, and under `strace -f` (the ptrace
//! baseline) on this host; natively, traced and enforced with BPF LSM in the project's VM.
//! Runs are interleaved and repeated; medians and ratios to native are printed and written to
//! `target/bench/results.json`.
//!
//! - [`workloads`]: the programs measured and their sizes;
//! - [`runner`]: the variants, one measured run, the interleaving, the in-session timer;
//! - [`guest`]: the VM part, one boot running the BPF-LSM variants side by side;
//! - [`report`]: medians, ratios, issues 7's and 16's targets, the tables and the JSON.
//!
//! Nothing here asserts a timing: the targets are reported as met or missed.

mod guest;
mod report;
mod runner;
mod workloads;

use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;

use self::{
    report::{Machine, Results, VmOutcome},
    runner::{Tools, Variant},
    workloads::Sizes,
};
use crate::{cargo, setup, vm};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    internal: Option<Internal>,
    /// Tiny sizes, one repetition, only the start-up workload in the VM, with the debug
    /// build: checks that the harness works in about a minute; the numbers mean nothing.
    #[arg(long)]
    quick: bool,
    /// Runs of each workload under each variant on the host (default 5, 1 with --quick).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    repetitions: Option<u32>,
    /// Runs of each workload under each variant in the VM (default 5, 1 with --quick): every
    /// enforcing run there spends seconds loading the programs under emulation.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    vm_repetitions: Option<u32>,
    /// Skip the VM part (the enforcing runs with BPF LSM).
    #[arg(long)]
    no_vm: bool,
    /// The kernel the VM part boots.
    #[arg(long, default_value = vm::DEFAULT_SERIES, value_name = "6.1|6.12|PATH")]
    kernel: String,
    /// Where results.json (and, while it runs, the scratch directory `work`) go
    /// [default: target/bench].
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// The benchmark's own helpers, run by the benchmark rather than by people.
#[derive(Subcommand)]
enum Internal {
    /// The VM part, inside the guest.
    #[command(hide = true)]
    Guest(guest::GuestArgs),
    /// Runs CMD and writes its duration to a file: the in-session timer.
    #[command(hide = true)]
    Time(runner::TimeArgs),
}

pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    match &args.internal {
        Some(Internal::Guest(guest)) => guest::run_guest(guest),
        Some(Internal::Time(time)) => runner::time_command(time),
        None => bench(args).map(|()| ExitCode::SUCCESS),
    }
}

fn bench(args: &BenchArgs) -> Result<()> {
    setup::ensure_bench_packages()?;
    // --quick only checks the harness: the debug build the tests already made will do, and
    // spares the suite a release build of its own.
    let sandtrace = cargo::build_sandtrace(!args.quick)?;
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| cargo::target_dir().join("bench"));
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    // Absolute: the policy names the scratch directory, and sandtrace resolves it.
    let out_dir =
        fs::canonicalize(&out_dir).with_context(|| format!("resolving {}", out_dir.display()))?;
    let scratch = fresh_dir(&out_dir.join("work"))?;
    // The runs use copies of sandtrace and of this binary (the in-session timer, and the VM
    // part's runner): either may be rebuilt while the benchmark runs. /proc/self/exe still
    // reads when this binary's file has already been replaced.
    let sandtrace = snapshot(&sandtrace, &scratch.join("sandtrace"))?;
    let xtask = snapshot(Path::new("/proc/self/exe"), &scratch.join("xtask"))?;
    let repetitions = args.repetitions.unwrap_or(if args.quick { 1 } else { 5 });
    let vm_repetitions = args
        .vm_repetitions
        .unwrap_or(if args.quick { 1 } else { 5 });
    let mut machine = Machine::observe();

    let tools = Tools {
        sandtrace: sandtrace.clone(),
        timer: xtask.clone(),
        policy: runner::write_allow_policy(&scratch)?,
        scratch: scratch.clone(),
    };
    let workloads = workloads::prepare(&Sizes::host(args.quick), &scratch)?;
    let host = runner::run_interleaved(&workloads, &Variant::HOST, repetitions, &tools)?;

    let vm = if args.no_vm {
        VmOutcome::Skipped
    } else {
        eprintln!(
            "bench: the BPF-LSM part, in the VM (kernel {})",
            args.kernel
        );
        match guest::run_in_vm(&xtask, &args.kernel, &sandtrace, vm_repetitions, args.quick) {
            Ok(report) => VmOutcome::measured(report, vm_repetitions),
            Err(err) => VmOutcome::Failed {
                error: format!("{err:#}"),
            },
        }
    };
    machine.finish();

    let vm_failed = matches!(vm, VmOutcome::Failed { .. });
    let results = Results::new(args.quick, repetitions, machine, &host, vm);
    let json = out_dir.join("results.json");
    results.write_json(&json)?;
    println!("{}", results.render());
    println!("Results: {}", json.display());
    fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    if vm_failed {
        bail!(
            "the VM part failed (see above); the host's results are in {}",
            json.display()
        );
    }
    Ok(())
}

/// Copies the executable `from` to `to`.
fn snapshot(from: &Path, to: &Path) -> Result<PathBuf> {
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(to.to_path_buf())
}

/// `path` as a new empty directory (whatever an earlier run left there is removed).
fn fresh_dir(path: &Path) -> Result<PathBuf> {
    if path.exists() {
        fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
    }
    fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(path.to_path_buf())
}
