//! sandtrace's exit statuses, defined once, and the error that maps onto them.
//!
//! `sandtrace run` exits with CMD's own status when CMD ran; the statuses below say why it did
//! not, or did not finish (they follow timeout(1) and the shells' conventions).

use crate::{policy::Diagnostics, spawn::PrepareError};

/// The output could not be written (`policy`, `report`), or `report`'s log could not be read.
pub const OUTPUT_FAILED: u8 = 1;
/// Usage errors and invalid policies: nothing was started.
pub const USAGE: u8 = 2;
/// The timeout killed the session.
pub const TIMEOUT: u8 = 124;
/// sandtrace itself failed.
pub const SANDTRACE_FAILED: u8 = 125;
/// CMD was found but could not be executed.
pub const CANNOT_EXECUTE: u8 = 126;
/// CMD was not found.
pub const NOT_FOUND: u8 = 127;

/// Why a command of sandtrace failed, each kind with its exit status.
#[derive(Debug)]
pub enum Error {
    /// The policy (file or flags) is invalid; the diagnostics say where.
    InvalidPolicy(Diagnostics),
    /// A usage error, e.g. an output file that exists.
    Usage(String),
    /// CMD cannot be started (not found, not executable, not a valid string).
    Command(PrepareError),
    /// This kernel cannot enforce what was asked, or sandtrace failed.
    Failed(anyhow::Error),
}

impl Error {
    pub fn exit_status(&self) -> u8 {
        match self {
            Error::InvalidPolicy(_) | Error::Usage(_) => USAGE,
            Error::Command(PrepareError::NotFound(_)) => NOT_FOUND,
            Error::Command(PrepareError::NotExecutable(_)) => CANNOT_EXECUTE,
            Error::Command(PrepareError::Invalid(_)) => USAGE,
            Error::Failed(_) => SANDTRACE_FAILED,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidPolicy(diagnostics) => {
                write!(f, "{diagnostics}\nsandtrace: nothing was started")
            }
            Error::Usage(why) => write!(f, "sandtrace: error: {why}"),
            Error::Command(e) => write!(f, "sandtrace: error: {e}"),
            Error::Failed(e) => write!(f, "sandtrace: error: {e:#}"),
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Failed(e)
    }
}

impl From<Diagnostics> for Error {
    fn from(d: Diagnostics) -> Self {
        Error::InvalidPolicy(d)
    }
}
