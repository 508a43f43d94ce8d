//! Reading a JSONL event log back (`sandtrace run -o FILE`), line by line.
//!
//! The reader is lenient where a log can legitimately be imperfect and says so: a log whose
//! run was cut short has no summary line and may end in the middle of a line; lines of event
//! types this version does not know are counted and skipped. Each such observation becomes a
//! [`LogProblem`] for the reader's user to see.
//!
//! The line types are the log's schema ([`crate::output::jsonl::schema`]), the same the
//! writer is held to; they are re-exported here for the reader's users.

use std::{
    fs::File,
    io::{BufRead as _, BufReader},
    path::Path,
};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::output::capture::{self, CaptureReader};

pub use crate::output::jsonl::schema::{
    DenialCounts, DnsLine, FileLine, Line, NetworkLine, ProcessChange, ProcessLine, RawArgs,
    RuleLine, SeccompLine, SocketLine, SummaryLine, SyscallCountLine, SyscallLine,
};

impl SyscallLine {
    /// Argument `i` as the C `int` the kernel reads from the register.
    pub fn int_arg(&self, i: usize) -> i32 {
        self.args.raw[i] as u32 as i32
    }

    /// The return value as a file descriptor, when the call succeeded and returned one.
    pub fn returned_fd(&self) -> Option<i32> {
        self.return_value
            .filter(|_| self.success)
            .and_then(|r| i32::try_from(r).ok())
            .filter(|&fd| fd >= 0)
    }
}

/// Something about the log a reader should know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum LogProblem {
    /// No summary line: the run was cut short (sandtrace killed, disk full, still running).
    NoSummary,
    /// The last line is not complete JSON: the log was cut in the middle of a line.
    CutLastLine { line: usize },
    /// A line in the middle of the log is not a sandtrace event.
    InvalidLine { line: usize, error: String },
    /// Lines of an event type this version of sandtrace does not know.
    UnknownEventType { event_type: String, lines: u64 },
    /// Lines after the summary line.
    AfterSummary { lines: u64 },
}

impl std::fmt::Display for LogProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSummary => f.write_str(
                "the log ends without a summary line: the run was cut short, so the numbers \
                 come from the lines present",
            ),
            Self::CutLastLine { line } => {
                write!(
                    f,
                    "line {line} is cut off (the log ends in the middle of it)"
                )
            }
            Self::InvalidLine { line, error } => {
                write!(f, "line {line} is not a sandtrace event ({error}); skipped")
            }
            Self::UnknownEventType { event_type, lines } => write!(
                f,
                "{lines} lines of event type {event_type:?}, which this version does not know; \
                 skipped"
            ),
            Self::AfterSummary { lines } => {
                write!(f, "{lines} lines follow the summary line; skipped")
            }
        }
    }
}

/// What reading a whole log found besides the records.
#[derive(Debug, Default)]
pub struct LogEnd {
    pub problems: Vec<LogProblem>,
    /// Lines read, including skipped ones.
    pub lines: usize,
}

/// Where a log's lines come from: a JSONL log, or a capture's records formatted as the lines
/// `-o` writes.
enum Source {
    Jsonl(BufReader<File>),
    Capture {
        reader: Box<CaptureReader>,
        line: Vec<u8>,
    },
}

impl Source {
    fn open(path: &Path) -> Result<Self> {
        if capture::is_capture(path)? {
            return Ok(Self::Capture {
                reader: Box::new(CaptureReader::open(path)?),
                line: Vec::new(),
            });
        }
        let file = File::open(path)
            .with_context(|| format!("opening the event log {}", path.display()))?;
        Ok(Self::Jsonl(BufReader::with_capacity(1 << 20, file)))
    }

    /// Appends the next line to `text`; 0 at the end.
    fn read_line(&mut self, text: &mut String) -> Result<usize> {
        match self {
            Self::Jsonl(reader) => Ok(reader.read_line(text)?),
            Self::Capture { reader, line } => {
                line.clear();
                if !reader.next_line(line)? {
                    return Ok(0);
                }
                // The formatter writes UTF-8 only (kernel text is shown lossily).
                text.push_str(&String::from_utf8_lossy(line));
                Ok(line.len())
            }
        }
    }

    /// Whether a capture ended inside an entry.
    fn was_cut(&self) -> bool {
        matches!(self, Self::Capture { reader, .. } if reader.was_cut())
    }
}

/// Reads the log (or capture) at `path`, handing every line to `each` in order. Fails only
/// when the file cannot be read or holds no sandtrace event at all.
pub fn read(path: &Path, mut each: impl FnMut(Line)) -> Result<LogEnd> {
    let mut reader = Source::open(path)?;
    let mut end = LogEnd::default();
    let mut unknown: Vec<(String, u64)> = Vec::new();
    let mut after_summary = 0u64;
    let mut seen_summary = false;
    let mut events = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .with_context(|| format!("reading {} after line {}", path.display(), end.lines))?;
        if n == 0 {
            break;
        }
        end.lines += 1;
        let complete = line.ends_with('\n');
        let text = line.trim_end();
        if text.is_empty() {
            continue;
        }
        if seen_summary {
            after_summary += 1;
            continue;
        }
        match Line::parse(text) {
            Ok(Some(line)) => {
                seen_summary = matches!(line, Line::Summary(_));
                events += 1;
                each(line);
            }
            Ok(None) => {
                let event_type = Line::event_type(text).unwrap_or_default();
                match unknown.iter_mut().find(|(t, _)| *t == event_type) {
                    Some((_, count)) => *count += 1,
                    None => unknown.push((event_type, 1)),
                }
            }
            // A line without its newline at the end of the file is one the writer did not finish.
            Err(_) if !complete => end
                .problems
                .push(LogProblem::CutLastLine { line: end.lines }),
            Err(error) => end.problems.push(LogProblem::InvalidLine {
                line: end.lines,
                error: error.to_string(),
            }),
        }
    }
    if reader.was_cut() {
        end.problems.push(LogProblem::CutLastLine {
            line: end.lines + 1,
        });
    }
    if events == 0 {
        anyhow::bail!(
            "{} holds no sandtrace event ({} lines read); is it a log written by `sandtrace run -o`?",
            path.display(),
            end.lines
        );
    }
    end.problems.extend(
        unknown
            .into_iter()
            .map(|(event_type, lines)| LogProblem::UnknownEventType { event_type, lines }),
    );
    if after_summary > 0 {
        end.problems.push(LogProblem::AfterSummary {
            lines: after_summary,
        });
    }
    if !seen_summary {
        end.problems.insert(0, LogProblem::NoSummary);
    }
    Ok(end)
}
