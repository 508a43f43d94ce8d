//! `cargo xtask test`: the whole suite.

use std::process::ExitCode;

use anyhow::Result;

use crate::{cargo, setup};

pub fn run_all() -> Result<ExitCode> {
    setup::ensure_ebpf_toolchain()?;
    cargo::run_checked(cargo::cargo().args(["test", "--workspace"]))?;
    Ok(ExitCode::SUCCESS)
}
