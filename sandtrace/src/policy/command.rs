//! `sandtrace policy check` and `sandtrace policy show`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::diagnostic::{Diagnostics, Location, Problem};
use super::model::Policy;
use super::resolve::CliOverrides;
use super::{parse, prepare, render};
use crate::cli::PolicyCommand;

/// Exit status of a policy command whose policy is invalid (and of `run` with such a policy).
pub const EXIT_INVALID_POLICY: u8 = 2;
/// Exit status when the output could not be written.
pub const EXIT_OUTPUT_FAILED: u8 = 1;

/// Runs a `sandtrace policy` subcommand, printing to stdout and diagnostics to stderr.
pub fn run_policy_command(command: &PolicyCommand) -> ExitCode {
    let status = execute(
        command,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    ExitCode::from(status)
}

/// Runs a `sandtrace policy` subcommand with the given output streams; returns the exit status:
/// 0, [`EXIT_INVALID_POLICY`] or [`EXIT_OUTPUT_FAILED`].
pub fn execute(command: &PolicyCommand, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let result = match command {
        PolicyCommand::Check { file, overrides } => check(file, &CliOverrides::from(overrides)),
        PolicyCommand::Show { file, default } => show(file.as_deref(), *default),
    };
    match result {
        Ok(text) => match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => 0,
            Err(e) => {
                let _ = writeln!(err, "error: cannot write the output: {e}");
                EXIT_OUTPUT_FAILED
            }
        },
        Err(diagnostics) => {
            let _ = writeln!(err, "{diagnostics}");
            EXIT_INVALID_POLICY
        }
    }
}

fn check(file: &Path, overrides: &CliOverrides) -> Result<String, Diagnostics> {
    let prepared = prepare(Some(file), overrides)?;
    Ok(format!(
        "{}: valid\n\n{}",
        file.display(),
        render::effective_report(&prepared.effective, &prepared.compiled)
    ))
}

fn show(file: Option<&Path>, default: bool) -> Result<String, Diagnostics> {
    match (file, default) {
        (None, true) => Ok(render::policy_to_toml(
            &Policy::builtin_default(),
            "sandtrace's built-in default policy (used when --policy is not given)",
        )),
        (Some(file), false) => {
            let policy = parse::load(file)?;
            Ok(render::policy_to_toml(
                &policy,
                &format!(
                    "policy from {}, with every default written out",
                    file.display()
                ),
            ))
        }
        _ => Err(Problem::new("give either a policy FILE or --default")
            .at(Location::Unpositioned)
            .into()),
    }
}
