//! The JSONL event log (`-o FILE`): one JSON object per line, the summary always last.
//!
//! The lines are defined once, in [`schema`]: `sandtrace report` and `sandtrace learn` read
//! the log back into those types. Event lines are formatted by hand ([`format`], [`json`],
//! [`timestamp`]) on the event log's own thread ([`crate::output::event_log`]); the
//! formatter's tests hold every line it writes to the schema, byte for byte.

mod format;
mod json;
pub mod schema;
mod timestamp;

use anyhow::{Context as _, Result, anyhow};

use self::format::LineFormat;
use crate::{
    events::{self, Clock},
    output::{Labels, event_log::LogFormat},
};

/// The JSONL log: every record decoded (again: the draining thread decoded it before) and
/// formatted as its line.
pub struct JsonlFormat {
    format: LineFormat,
    clock: Clock,
    labels: Labels,
}

impl JsonlFormat {
    pub fn new(clock: Clock, labels: Labels) -> Self {
        Self {
            format: LineFormat::new(),
            clock,
            labels,
        }
    }

    /// Appends the line of one ring-buffer record.
    pub fn format_record(&mut self, out: &mut Vec<u8>, record: &[u8]) -> Result<()> {
        let event = events::decode(record, &self.clock)
            .map_err(|e| anyhow!("an event record no longer decodes: {}", e.0))?;
        self.format
            .line(out, &event, &self.labels)
            .context("formatting an event line")
    }
}

impl LogFormat for JsonlFormat {
    fn start(&mut self, _out: &mut Vec<u8>) -> Result<()> {
        Ok(())
    }

    fn record(&mut self, out: &mut Vec<u8>, record: &[u8]) -> Result<()> {
        self.format_record(out, record)
    }

    fn line(&mut self, out: &mut Vec<u8>, line: &[u8]) {
        out.extend_from_slice(line);
    }
}

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
