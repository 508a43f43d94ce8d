//! `cargo xtask test`: the whole suite. The lint gate runs first (`cargo fmt --check`, then
//! clippy with warnings as errors); then the host tests; the tests that need BPF LSM (compiled
//! only with the `vm-tests` feature, so absent from the host run) then run inside each
//! supported kernel, and the run ends with `vm-test`'s `N passed, M failed` line.

use std::process::ExitCode;

use anyhow::{Context as _, Result};

use crate::{cargo, setup, vm};

pub fn run_all() -> Result<ExitCode> {
    setup::ensure_ebpf_toolchain()?;
    setup::ensure_lint_components()?;
    lint()?;
    cargo::run_checked(cargo::cargo().args(["test", "--workspace"]))
        .context("the host tests failed; the VM tests were not run")?;
    vm::run_tests(&vm::VmTestArgs::default())
}

/// The lint gate: formatting, then clippy over every target of the host crates.
///
/// `sandtrace-ebpf` is excluded from clippy: it builds only for the bpf target (its binary
/// brings its own panic handler, which a host build rejects with "duplicate lang item
/// `panic_impl`"); rustfmt does check it, and rustc's warnings for it show in `sandtrace`'s
/// build output.
fn lint() -> Result<()> {
    cargo::run_checked(cargo::cargo().args(["fmt", "--all", "--", "--check"])).context(
        "the lint gate failed: the code is not formatted as rustfmt wants; run `cargo fmt --all` \
         and commit the result (no test was run)",
    )?;
    cargo::run_checked(cargo::cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "sandtrace-ebpf",
        "--all-targets",
        // The VM tests and the test helpers are behind features: lint them too.
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))
    .context(
        "the lint gate failed: clippy reports warnings (shown above); fix them, or run \
         `cargo clippy --fix --workspace --exclude sandtrace-ebpf --all-targets --all-features` \
         for the ones it can fix (no test was run)",
    )
}
