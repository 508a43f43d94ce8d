//! `cargo xtask test`: the whole suite. The host tests run first; the tests that need BPF LSM
//! (compiled only with the `vm-tests` feature, so absent from the host run) then run inside
//! each supported kernel, and the run ends with `vm-test`'s `N passed, M failed` line.

use std::process::ExitCode;

use anyhow::{Context as _, Result};

use crate::{cargo, setup, vm};

pub fn run_all() -> Result<ExitCode> {
    setup::ensure_ebpf_toolchain()?;
    cargo::run_checked(cargo::cargo().args(["test", "--workspace"]))
        .context("the host tests failed; the VM tests were not run")?;
    vm::run_tests(&vm::VmTestArgs::default())
}
