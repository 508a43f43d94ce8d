//! Building and running sandtrace through cargo, with the eBPF toolchain in place.

use std::{
    path::PathBuf,
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};

use crate::setup;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// `cargo` with the eBPF toolchain on PATH, run from the workspace root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root())
        .env("PATH", setup::path_with_cargo_bin());
    cmd
}

pub fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// Builds the sandtrace binary and returns its path.
pub fn build_sandtrace(release: bool) -> Result<PathBuf> {
    setup::ensure_ebpf_toolchain()?;
    let mut cmd = cargo();
    cmd.args(["build", "--package", "sandtrace", "--bin", "sandtrace"]);
    if release {
        cmd.arg("--release");
    }
    run_checked(&mut cmd)?;
    let profile = if release { "release" } else { "debug" };
    Ok(target_dir().join(profile).join("sandtrace"))
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds sandtrace and runs it with `args`, returning its exit status.
pub fn run_sandtrace(release: bool, args: &[String]) -> Result<ExitCode> {
    let bin = build_sandtrace(release)?;
    let status = Command::new(&bin)
        .args(args)
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    Ok(exit_code_of(status))
}

pub fn exit_code_of(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(sig)) => ExitCode::from(128 + sig as u8),
        _ => ExitCode::FAILURE,
    }
}
