//! `cargo xtask`: sandtrace's setup, build, test and VM automation.
//!
//! Every command installs what it needs first (see [`setup`]), so on a fresh machine
//! `cargo xtask run ...` and `cargo xtask test` are all a user types.

mod bench;
mod cargo;
mod setup;
mod test;
mod vm;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "sandtrace build and test automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the toolchain pieces the eBPF build needs (nightly rust-src, bpf-linker).
    Setup,
    /// Build sandtrace (the kernel programs are compiled and embedded by its build script).
    Build {
        /// Build with optimisations.
        #[arg(long)]
        release: bool,
    },
    /// Build sandtrace and run it with ARGS, e.g. `cargo xtask run -- run -- ls /`.
    Run {
        #[arg(long)]
        release: bool,
        /// Run it inside the project's BPF-LSM VM instead of on this kernel.
        #[arg(long)]
        vm: bool,
        /// With --vm: the kernel to boot (6.1, 6.12, a .deb or a bzImage).
        #[arg(long, requires = "vm", default_value = vm::DEFAULT_SERIES, value_name = "6.1|6.12|PATH")]
        kernel: vm::KernelChoice,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run the whole test suite: host tests, then the BPF-LSM tests in each VM kernel.
    Test,
    /// Boot a BPF-LSM kernel under QEMU and run CMD in it, e.g. `cargo xtask vm -- cat /proc/version`.
    Vm(vm::VmArgs),
    /// Run the tests that need BPF LSM (sandtrace/tests/vm*.rs) inside each supported kernel.
    VmTest(vm::VmTestArgs),
    /// Measure sandtrace's overhead against native runs and strace (results in
    /// target/bench/results.json).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<ExitCode> = match cli.command {
        Command::Setup => setup::ensure_ebpf_toolchain()
            .and_then(|()| setup::ensure_lint_components())
            .map(|()| ExitCode::SUCCESS),
        Command::Build { release } => cargo::build_sandtrace(release).map(|_| ExitCode::SUCCESS),
        Command::Run {
            release,
            vm: false,
            args,
            ..
        } => cargo::run_sandtrace(release, &args),
        Command::Run {
            release,
            vm: true,
            kernel,
            args,
        } => cargo::build_sandtrace(release).and_then(|bin| {
            let argv =
                std::iter::once(bin.into_os_string()).chain(args.into_iter().map(Into::into));
            vm::run_in_kernel(kernel, argv.collect())
        }),
        Command::Test => test::run_all(),
        Command::Vm(args) => vm::run_command(&args),
        Command::VmTest(args) => vm::run_tests(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
