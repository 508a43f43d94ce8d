//! `cargo xtask vm-test`: builds the integration tests that need BPF LSM (the `vm*` test
//! targets, compiled only with the `vm-tests` feature) and runs them inside each kernel,
//! counting libtest's results.

use std::{
    ffi::OsString,
    io::Write as _,
    path::PathBuf,
    process::{ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    kernel::{self, KernelChoice, SUPPORTED_SERIES},
    qemu,
};
use crate::{cargo, setup};

#[derive(clap::Args, Default)]
pub struct VmTestArgs {
    /// Kernel to test in (repeatable; default: every supported series, 6.1 and 6.12).
    #[arg(long, value_name = "6.1|6.12|PATH")]
    kernel: Vec<KernelChoice>,
    /// Kill a kernel's test run and count it as failed after SECS seconds (boot included;
    /// default 1800).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Copy each guest's serial console to stderr while it runs.
    #[arg(long)]
    console: bool,
    /// Arguments for the test executables, like a test-name filter or `--nocapture`.
    #[arg(last = true, value_name = "TEST_ARGS")]
    test_args: Vec<OsString>,
}

/// The whole suite in one kernel, boot included: a hung guest fails the run after this (a
/// backstop for a hang, well above the 15-20 minutes a guest takes on a busy 2-core machine).
const SUITE_TIMEOUT_SECS: u64 = 2700;

/// Tells each guest which share of the suite's kernel-independent tests is its own, as
/// `INDEX/COUNT` (0-based, COUNT guests side by side): tests that check the example policies
/// with real applications (`tests/vm_package_managers.rs`), whose kernel side every kernel
/// already runs in other tests, are split over the guests instead of run in each, so that
/// the guests, which run side by side, take about as long.
pub const SHARD_ENV: &str = "SANDTRACE_VM_SHARD";

/// libtest's counts from one or more `test result:` lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    passed: u64,
    failed: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
    }
}

pub fn run(args: &VmTestArgs) -> Result<ExitCode> {
    setup::ensure_vm_packages()?;
    setup::ensure_package_managers()?;
    let executables = build_test_executables()?;
    let choices = if args.kernel.is_empty() {
        SUPPORTED_SERIES
            .map(|series| KernelChoice::Series(series.to_owned()))
            .to_vec()
    } else {
        args.kernel.clone()
    };
    // Prepare (download) every kernel first: a missing one fails before any test time is spent.
    let kernels = choices
        .iter()
        .map(kernel::prepare)
        .collect::<Result<Vec<_>>>()?;

    let (argv, cwd) = test_command(&executables, &args.test_args);
    let shares = super::hidden_in_guest([cargo::workspace_root(), cargo::target_dir()]);
    let env = super::guest_env();
    let timeout = Duration::from_secs(args.timeout.unwrap_or(SUITE_TIMEOUT_SECS));
    // One VM per kernel, side by side: emulation runs each guest on one host thread, so on a
    // machine with a core per kernel this halves the wall time. Each guest's output is
    // printed when it finishes, so the kernels' results do not interleave.
    let outcomes: Vec<(Result<qemu::GuestExit>, f64)> = std::thread::scope(|scope| {
        let runs: Vec<_> = kernels
            .iter()
            .enumerate()
            .map(|(index, kernel)| {
                eprintln!(
                    "xtask: vm-test: starting kernel {} ({})",
                    kernel.release, kernel.origin
                );
                let mut env = env.clone();
                env.push((
                    SHARD_ENV.to_owned(),
                    format!("{index}/{}", kernels.len()).into(),
                ));
                let (argv, cwd, shares) = (&argv, &cwd, &shares);
                scope.spawn(move || {
                    let started = Instant::now();
                    let outcome = qemu::run(&qemu::GuestCommand {
                        kernel,
                        argv,
                        cwd,
                        env: &env,
                        shares,
                        timeout,
                        show_console: args.console,
                        output: qemu::Output::Captured,
                    });
                    (outcome, started.elapsed().as_secs_f64())
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| run.join().expect("a VM thread panicked"))
            .collect()
    });
    let mut summary = Vec::new();
    let mut total = Counts::default();
    for (kernel, (outcome, seconds)) in kernels.iter().zip(outcomes) {
        eprintln!(
            "xtask: vm-test: ==== kernel {} ({}) ====",
            kernel.release, kernel.origin
        );
        let counts = match outcome {
            Ok(exit) => {
                let _ = std::io::stderr().write_all(&exit.stderr);
                let _ = std::io::stdout().write_all(&exit.stdout);
                let mut counts = parse_libtest_counts(&String::from_utf8_lossy(&exit.stdout));
                if exit.code != 0 && counts.failed == 0 {
                    eprintln!(
                        "xtask: vm-test: the tests exited with status {} in kernel {} without \
                         reporting a failed test; counting one failure",
                        exit.code, kernel.release
                    );
                    counts.failed += 1;
                }
                counts
            }
            Err(err) => {
                eprintln!("xtask: vm-test: kernel {}: {err:#}", kernel.release);
                Counts {
                    passed: 0,
                    failed: 1,
                }
            }
        };
        summary.push(format!(
            "kernel {}: {} passed, {} failed ({seconds:.1} s)",
            kernel.release, counts.passed, counts.failed
        ));
        total.add(counts);
    }

    println!();
    for line in summary {
        println!("{line}");
    }
    if total.passed + total.failed == 0 {
        eprintln!(
            "xtask: vm-test: no test ran (does the filter match any test in sandtrace/tests/vm*.rs?)"
        );
    }
    println!("{} passed, {} failed", total.passed, total.failed);
    Ok(if total.failed == 0 && total.passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Builds the VM test targets (`sandtrace/tests/vm*.rs`, each gated by the `vm-tests`
/// feature) and returns their executables.
fn build_test_executables() -> Result<Vec<PathBuf>> {
    setup::ensure_ebpf_toolchain()?;
    let mut build = cargo::cargo();
    build
        .args([
            "test",
            "--package",
            "sandtrace",
            "--features",
            "vm-tests",
            "--test",
            "vm*",
        ])
        .args(["--no-run", "--message-format", "json-render-diagnostics"])
        .stdout(Stdio::piped());
    let out = build
        .spawn()
        .and_then(std::process::Child::wait_with_output)
        .with_context(|| format!("running {build:?}"))?;
    if !out.status.success() {
        bail!("building the VM tests failed ({})", out.status);
    }
    let executables = test_executables(&String::from_utf8_lossy(&out.stdout))?;
    if executables.is_empty() {
        bail!("cargo built no test executable for sandtrace's `vm*` test targets");
    }
    Ok(executables)
}

/// The test executables among cargo's JSON messages.
fn test_executables(messages: &str) -> Result<Vec<PathBuf>> {
    let mut executables = Vec::new();
    for line in messages.lines().filter(|line| line.starts_with('{')) {
        let message: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("parsing cargo's message {line}"))?;
        let is_test =
            message["reason"] == "compiler-artifact" && message["profile"]["test"] == true;
        if let (true, Some(executable)) = (is_test, message["executable"].as_str()) {
            executables.push(PathBuf::from(executable));
        }
    }
    Ok(executables)
}

/// The guest command running every executable with `test_args`, from the package directory as
/// `cargo test` does; it fails when any executable fails.
fn test_command(executables: &[PathBuf], test_args: &[OsString]) -> (Vec<OsString>, PathBuf) {
    let mut script = b"status=0\n".to_vec();
    for executable in executables {
        script.extend_from_slice(&qemu::shell_quote(executable.as_os_str()));
        script.extend_from_slice(b" \"$@\" || status=1\n");
    }
    script.extend_from_slice(b"exit $status\n");
    let mut argv: Vec<OsString> = vec!["/bin/sh".into(), "-c".into()];
    argv.push(std::os::unix::ffi::OsStringExt::from_vec(script));
    argv.push("vm-test".into());
    argv.extend(test_args.iter().cloned());
    (argv, cargo::workspace_root().join("sandtrace"))
}

/// Sums libtest's `test result: ok. 2 passed; 0 failed; 0 ignored; ...` lines.
fn parse_libtest_counts(output: &str) -> Counts {
    let mut counts = Counts::default();
    for line in output.lines() {
        let Some(result) = line.trim().strip_prefix("test result: ") else {
            continue;
        };
        for field in result.split([';', '.']).map(str::trim) {
            let number = |suffix| field.strip_suffix(suffix)?.trim().parse::<u64>().ok();
            if let Some(n) = number(" passed") {
                counts.passed += n;
            } else if let Some(n) = number(" failed") {
                counts.failed += n;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_result_lines_are_summed() {
        let output = "running 3 tests\n\
            test a ... ok\n\
            test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.50s\n\
            \n\
            test result: ok. 4 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.00s\n";
        assert_eq!(
            parse_libtest_counts(output),
            Counts {
                passed: 6,
                failed: 1
            }
        );
        assert_eq!(parse_libtest_counts("no tests here\n"), Counts::default());
    }

    #[test]
    fn test_executables_come_from_test_artifacts_only() {
        let messages = r#"{"reason":"compiler-artifact","profile":{"test":false},"executable":"/t/sandtrace"}
{"reason":"compiler-artifact","profile":{"test":true},"executable":"/t/deps/vm-123"}
{"reason":"compiler-artifact","profile":{"test":true},"executable":null}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            test_executables(messages).unwrap(),
            [PathBuf::from("/t/deps/vm-123")]
        );
    }
}
