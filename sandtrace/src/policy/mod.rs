//! The policy: the user's contract with the sandbox.
//!
//! A policy file is parsed with positions and validated strictly ([`parse`], [`validate`]);
//! merged with the command-line flags and resolved against the working directory and home
//! directory into the [`EffectivePolicy`] the session enforces ([`resolve`]); and its path
//! rules are compiled into the automaton the kernel evaluates ([`compile`]). Every error is
//! collected and reported with its position ([`diagnostic`]); nothing runs with a policy that
//! has one.

pub mod capability;
pub mod command;
pub mod compile;
pub mod decision;
pub mod diagnostic;
pub mod environment;
pub mod glob;
pub mod hosts;
pub mod model;
pub mod network;
pub mod parse;
pub mod render;
pub mod resolve;
mod suggest;
pub mod validate;

use std::path::Path;

pub use compile::{CompiledPaths, compile};
pub use decision::{Access, PathDecision, Verdict, decide_by_rules};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use model::{ALWAYS_BLOCKED_SYSCALLS, DEFAULT_TIMEOUT, Located, Origin, PathKind, Policy};
pub use parse::load;
pub use resolve::{CliOverrides, EffectivePolicy, PathRule, PathRules, resolve};

use diagnostic::{Location, Problem};

/// A policy ready to enforce: resolved, and its path rules compiled.
#[derive(Clone, Debug)]
pub struct PreparedPolicy {
    pub effective: EffectivePolicy,
    pub compiled: CompiledPaths,
}

/// Everything `sandtrace run` and `sandtrace policy check` do before starting anything: load
/// `policy_file` (or take the built-in default), merge `overrides`, resolve paths against the
/// current directory and `home` (that of the user CMD runs as, for `~`), and compile.
pub fn prepare(
    policy_file: Option<&Path>,
    overrides: &CliOverrides,
    home: Option<&Path>,
) -> Result<PreparedPolicy, Diagnostics> {
    let policy = match policy_file {
        Some(path) => load(path)?,
        None => Policy::builtin_default(),
    };
    let cwd = std::env::current_dir().map_err(|e| {
        Problem::new(format!("cannot determine the working directory: {e}"))
            .with_hint(
                "relative policy paths are resolved against it; run from an existing directory",
            )
            .at(Location::Unpositioned)
    })?;
    let effective = resolve(&policy, overrides, &cwd, home)?;
    let compiled = compile(&effective)?;
    Ok(PreparedPolicy {
        effective,
        compiled,
    })
}
