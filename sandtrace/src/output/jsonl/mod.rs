//! The JSONL event log (`-o FILE`): one JSON object per line, the summary always last.
//!
//! The lines are defined once, in [`schema`]: `sandtrace report` and `sandtrace learn` read
//! the log back into those types. Event lines are formatted by hand ([`format`], [`json`],
//! [`timestamp`]) on a thread of their own ([`writer`]); the formatter's tests hold every line
//! it writes to the schema, byte for byte.

mod format;
mod json;
pub mod schema;
mod timestamp;
mod writer;

pub use writer::EventLog;

/// Why forks fail with EAGAIN in a session.
pub const FORK_REFUSED_REASON: &str = "max_processes reached (or another process limit)";

/// Exit code and terminating signal from a wait(2) status, shell style (128+N for signals).
pub fn decode_wait_status(status: i32) -> (i32, Option<i32>) {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        (128 + sig, Some(sig))
    } else {
        (libc::WEXITSTATUS(status), None)
    }
}
