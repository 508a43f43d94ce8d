//! Reading a JSONL event log back (`sandtrace run -o FILE`), line by line.
//!
//! The reader is lenient where a log can legitimately be imperfect and says so: a log whose
//! run was cut short has no summary line and may end in the middle of a line; lines of event
//! types this version does not know are counted and skipped. Each such observation becomes a
//! [`LogProblem`] for the reader's user to see.

use std::{
    fs::File,
    io::{BufRead as _, BufReader},
    path::Path,
};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

/// One syscall line.
#[derive(Debug, Clone, Deserialize)]
pub struct SyscallLine {
    pub timestamp: String,
    pub pid: u32,
    pub tgid: u32,
    #[serde(default)]
    pub comm: String,
    pub syscall: String,
    pub args: RawArgs,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub path_truncated: bool,
    /// `None` for syscalls that do not return (`exit_group`).
    pub return_value: Option<i64>,
    pub success: bool,
    #[serde(default)]
    pub errno: Option<String>,
    /// `allow`, `deny` (refused by seccomp) or `log_only`.
    pub action: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RawArgs {
    pub raw: [u64; 6],
}

impl Record {
    /// When the event happened (RFC 3339); `None` for the summary.
    pub fn timestamp(&self) -> Option<&str> {
        match self {
            Record::Syscall(s) => Some(&s.timestamp),
            Record::Process(p) => Some(&p.timestamp),
            Record::File(f) => Some(&f.timestamp),
            Record::Network(n) => Some(&n.timestamp),
            Record::Seccomp(k) => Some(&k.timestamp),
            Record::Summary(_) => None,
        }
    }
}

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

/// One process line: `fork`, `exec` or `exited`.
#[derive(Debug, Clone, Deserialize)]
pub struct ProcessLine {
    pub timestamp: String,
    pub pid: u32,
    pub tgid: u32,
    #[serde(default)]
    pub comm: String,
    #[serde(flatten)]
    pub change: ProcessChange,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ProcessChange {
    Fork {
        child_pid: u32,
        child_tgid: u32,
    },
    Exec {
        path: String,
        /// Present when the kernel side records the arguments.
        #[serde(default)]
        argv: Option<Vec<String>>,
    },
    Exited {
        exit_code: i32,
        #[serde(default)]
        signal: Option<i32>,
    },
    /// A fork the process limit refused.
    ForkRefused {
        syscall: String,
        #[serde(default)]
        reason: String,
    },
}

/// The policy rule a file decision names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RuleLine {
    pub kind: String,
    pub pattern: String,
    pub source: String,
}

/// One file decision of the LSM programs (enforcing runs only).
#[derive(Debug, Clone, Deserialize)]
pub struct FileLine {
    pub timestamp: String,
    pub pid: u32,
    pub tgid: u32,
    #[serde(default)]
    pub comm: String,
    /// `allow` or `deny`.
    pub action: String,
    pub operation: String,
    #[serde(default)]
    pub access: Vec<String>,
    pub path: String,
    pub reason: String,
    #[serde(default)]
    pub rule: Option<RuleLine>,
}

/// One network decision of the cgroup socket programs (enforcing runs).
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkLine {
    pub timestamp: String,
    pub tgid: u32,
    #[serde(default)]
    pub comm: String,
    /// `allow` or `deny`.
    pub action: String,
    pub operation: String,
    pub family: String,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    pub reason: String,
    #[serde(default)]
    pub rule: Option<RuleLine>,
}

/// A process the seccomp filter killed (a syscall through a foreign ABI).
#[derive(Debug, Clone, Deserialize)]
pub struct SeccompLine {
    pub timestamp: String,
    pub tgid: u32,
    #[serde(default)]
    pub comm: String,
    pub abi: String,
    pub syscall_nr: u32,
    #[serde(default)]
    pub syscall: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SyscallCountLine {
    pub syscall: String,
    pub count: u64,
}

/// The summary line that ends a complete log.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SummaryLine {
    pub total_syscalls: u64,
    pub unique_syscalls: u64,
    pub denied_count: u64,
    pub process_count: u64,
    pub duration_ms: u64,
    pub exit_code: i32,
    pub lost_events: u64,
    #[serde(default)]
    pub incomplete_events: u64,
    /// `exited`, `timed_out`, `interrupted` or `start_failed`.
    pub ending: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub mode: String,
    #[serde(default)]
    pub syscall_counts: Vec<SyscallCountLine>,
}

/// One line of the log.
#[derive(Debug, Clone)]
pub enum Record {
    Syscall(SyscallLine),
    Process(ProcessLine),
    File(FileLine),
    Network(NetworkLine),
    Seccomp(SeccompLine),
    Summary(SummaryLine),
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

#[derive(Deserialize)]
struct EventType {
    event_type: String,
}

/// Reads the log at `path`, handing every record to `each` in order. Fails only when the file
/// cannot be read or holds no sandtrace event at all.
pub fn read(path: &Path, mut each: impl FnMut(Record)) -> Result<LogEnd> {
    let file =
        File::open(path).with_context(|| format!("opening the event log {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
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
        match parse_line(text) {
            Ok(Some(record)) => {
                seen_summary = matches!(record, Record::Summary(_));
                events += 1;
                each(record);
            }
            Ok(None) => {
                let event_type = serde_json::from_str::<EventType>(text)
                    .map(|t| t.event_type)
                    .unwrap_or_default();
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
                error,
            }),
        }
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

/// One line: `Ok(None)` for a well-formed event of an unknown type.
fn parse_line(text: &str) -> Result<Option<Record>, String> {
    let event_type: EventType = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let record = match event_type.event_type.as_str() {
        "syscall" => serde_json::from_str(text).map(Record::Syscall),
        "process" => serde_json::from_str(text).map(Record::Process),
        "file" => serde_json::from_str(text).map(Record::File),
        "network" => serde_json::from_str(text).map(Record::Network),
        "seccomp" => serde_json::from_str(text).map(Record::Seccomp),
        "summary" => serde_json::from_str(text).map(Record::Summary),
        _ => return Ok(None),
    };
    record.map(Some).map_err(|e| e.to_string())
}
