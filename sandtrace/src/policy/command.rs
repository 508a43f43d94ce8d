//! `sandtrace policy check` and `sandtrace policy show`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::diagnostic::{Diagnostics, Location, Problem};
use super::model::Policy;
use super::resolve::CliOverrides;
use super::{parse, prepare, render};
use crate::exit::{OUTPUT_FAILED, USAGE};
use crate::plan::{
    EventDetail, KernelFeatures, ModeFlags, ProcessFlags, ProcessInputs, SessionPlan,
};

/// A `sandtrace policy` subcommand.
#[derive(Debug, Clone)]
pub enum PolicyRequest {
    /// Validate `file` merged with `overrides`; print the effective policy and what enforces
    /// each rule on this kernel.
    Check {
        file: PathBuf,
        overrides: CliOverrides,
    },
    /// Print a policy file (or the built-in default) as complete TOML.
    Show {
        file: Option<PathBuf>,
        default: bool,
    },
}

/// Runs a `sandtrace policy` subcommand, printing to stdout and diagnostics to stderr.
pub fn run_policy_command(request: &PolicyRequest) -> ExitCode {
    let features = match request {
        PolicyRequest::Check { .. } => KernelFeatures::probe(true),
        PolicyRequest::Show { .. } => KernelFeatures::probe(false),
    };
    let status = execute(
        request,
        &features,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    ExitCode::from(status)
}

/// Runs a `sandtrace policy` subcommand on a kernel offering `features`, with the given output
/// streams; returns the exit status: 0, [`USAGE`] (an invalid policy) or [`OUTPUT_FAILED`].
pub fn execute(
    request: &PolicyRequest,
    features: &KernelFeatures,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let result = match request {
        PolicyRequest::Check { file, overrides } => check(file, overrides, features),
        PolicyRequest::Show { file, default } => show(file.as_deref(), *default),
    };
    match result {
        Ok(text) => match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => 0,
            Err(e) => {
                let _ = writeln!(err, "error: cannot write the output: {e}");
                OUTPUT_FAILED
            }
        },
        Err(diagnostics) => {
            let _ = writeln!(err, "{diagnostics}");
            USAGE
        }
    }
}

fn check(
    file: &Path,
    overrides: &CliOverrides,
    features: &KernelFeatures,
) -> Result<String, Diagnostics> {
    // Who `sandtrace run` would run the command as here (through sudo: the user who ran it).
    let process = ProcessInputs::gather(ProcessFlags::default())
        .map_err(|e| Problem::new(e).at(Location::Unpositioned))?;
    let prepared = prepare(Some(file), overrides, process.identity.home())?;
    // As `sandtrace run` would plan it here: enforcing, or degraded without BPF LSM.
    let flags = ModeFlags {
        trace_only: false,
        allow_degraded: true,
    };
    let detail = EventDetail::for_output(false, crate::output::terminal::Verbosity::Quiet);
    let plan = SessionPlan::new(&prepared, flags, detail, features, &process);
    let mechanisms = plan.as_ref().ok().map(SessionPlan::mechanisms);
    let mut text = format!(
        "{}: valid\n\n{}",
        file.display(),
        render::effective_report(&prepared.effective, &prepared.compiled, mechanisms.as_ref())
    );
    if let Err(e) = plan {
        text.push_str(&format!(
            "\non this host `sandtrace run` refuses this policy: {e}\n"
        ));
    }
    Ok(text)
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
