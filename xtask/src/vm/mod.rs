//! The VM harness: boots real BPF-LSM kernels under QEMU (software emulation, no KVM) with the
//! host's filesystem shared in, so enforcement is tested on kernels that load LSM programs
//! whatever the host runs.
//!
//! - [`kernel`] finds, downloads and caches Debian kernel packages ([`apt`]), unpacks their
//!   ELF kernel for direct boot ([`bzimage`]), picks the modules the guest needs ([`modules`])
//!   and pairs each kernel with an [`initramfs`];
//! - [`qemu`] boots one and runs one command in it;
//! - [`suite`] is `cargo xtask vm-test`: the `vm-tests` integration tests in every kernel.

mod apt;
mod bzimage;
mod initramfs;
mod kernel;
mod modules;
mod qemu;
mod suite;

use std::{ffi::OsString, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context as _, Result, bail};

pub use self::kernel::{DEFAULT_SERIES, KernelChoice};
pub use self::suite::{VmTestArgs, run as run_tests};
use crate::setup;

/// Host variables the guest command inherits; everything else starts empty, as on a fresh boot.
const PASSED_ENV: [&str; 10] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "TERM",
    "NO_COLOR",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "RUST_LOG",
    "RUST_TEST_THREADS",
];

/// A generous bound for one boot: a test run under emulation is slow, a hang must still end.
const DEFAULT_TIMEOUT_SECS: u64 = 600;

#[derive(clap::Args)]
pub struct VmArgs {
    /// Kernel to boot: a Debian series (6.1, 6.12; the newest package of it is used), a
    /// linux-image .deb file, or a bzImage with virtio-pci, 9p and overlayfs built in.
    #[arg(long, default_value = kernel::DEFAULT_SERIES, value_name = "6.1|6.12|PATH")]
    kernel: KernelChoice,
    /// Share the host directory DIR read-write at the same path in the guest (repeatable).
    /// Everything else the guest writes lands in a tmpfs and is gone after the run.
    #[arg(long, value_name = "DIR")]
    share: Vec<PathBuf>,
    /// Set NAME=VALUE in the command's environment (repeatable).
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_env_assignment)]
    env: Vec<(String, OsString)>,
    /// Kill the VM and fail after SECS seconds (boot included).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TIMEOUT_SECS)]
    timeout: u64,
    /// Copy the guest's serial console (kernel messages, init) to stderr while it runs.
    #[arg(long)]
    console: bool,
    /// The command to run in the guest, as root, in the current directory.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// Runs `argv` in the chosen kernel with the defaults of `cargo xtask vm` (for
/// `cargo xtask run --vm`).
pub fn run_in_kernel(kernel: KernelChoice, argv: Vec<OsString>) -> Result<ExitCode> {
    run_command(&VmArgs {
        kernel,
        share: Vec::new(),
        env: Vec::new(),
        timeout: DEFAULT_TIMEOUT_SECS,
        console: false,
        command: argv,
    })
}

/// `cargo xtask vm`: runs the command in the chosen kernel and returns its exit status.
pub fn run_command(args: &VmArgs) -> Result<ExitCode> {
    setup::ensure_vm_packages()?;
    let kernel = kernel::prepare(&args.kernel)?;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let mut env = guest_env();
    env.extend(args.env.iter().cloned());
    let exit = qemu::run(&qemu::GuestCommand {
        kernel: &kernel,
        argv: &args.command,
        cwd: &cwd,
        env: &env,
        shares: &args.share,
        timeout: Duration::from_secs(args.timeout),
        show_console: args.console,
        output: qemu::Output::Live,
    })?;
    Ok(ExitCode::from(exit.code))
}

/// Those of `dirs` that lie where the guest has its own empty tmpfs (/tmp, /run), as the
/// files of a clone in /tmp do: a guest command that needs them must share them in. A
/// directory inside another one listed needs no share of its own.
pub fn hidden_in_guest(dirs: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = dirs
        .into_iter()
        .filter(|d| d.starts_with("/tmp") || d.starts_with("/run"))
        .collect();
    dirs.sort();
    dirs.dedup_by(|inner, outer| inner.starts_with(&*outer));
    dirs
}

/// The environment the guest command starts with: [`PASSED_ENV`] taken from the host.
fn guest_env() -> Vec<(String, OsString)> {
    PASSED_ENV
        .iter()
        .filter_map(|name| Some((name.to_string(), std::env::var_os(name)?)))
        .collect()
}

fn parse_env_assignment(arg: &str) -> Result<(String, OsString)> {
    let Some((name, value)) = arg.split_once('=') else {
        bail!("expected NAME=VALUE, got {arg:?}");
    };
    if name.is_empty() || !name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) {
        bail!("{name:?} is not a valid environment variable name");
    }
    Ok((name.to_owned(), value.into()))
}
