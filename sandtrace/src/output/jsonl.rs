//! The JSONL event log (`-o FILE`): one JSON object per line, the summary always last.
//!
//! Line shapes (fields in this order):
//! - `{"event_type":"syscall","timestamp","pid","tgid","comm","syscall","syscall_nr","args":{"raw":[6]},
//!   "path"?,"path_truncated"?,"return_value","success","errno"?,"duration_us","action","category"}`
//! - `{"event_type":"process","timestamp","action":"fork"|"exec"|"exited"|"fork_refused","pid","tgid","comm",...}`
//! - `{"event_type":"file",...}` (see `FileLine`)
//! - `{"event_type":"network","timestamp","pid","tgid","comm","action":"allow"|"deny","operation",
//!   "family","socket_type","protocol","address"?,"port"?,"peer_address"?,"peer_port"?,"reason","rule"?}`
//! - `{"event_type":"seccomp","timestamp","pid","tgid","comm","action":"kill","abi","syscall_nr",
//!   "syscall"?,"reason"}`
//! - `{"event_type":"summary",...}` (see `Summary`)

use std::{
    fs::File,
    io::{BufWriter, Write as _},
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::{Context as _, Result};
use serde::{Serialize, Serializer};

use super::{
    Labels, RuleLabel, access_names, errno_name, is_error,
    network::{family_name, op_name, protocol_name, sock_type_name},
    summary::Summary,
};
use crate::{
    events::{Event, EventBody, FileRecord, NetworkRecord, SeccompKillRecord, SyscallRecord},
    syscall_table,
};

/// RFC 3339 with microseconds, UTC.
struct Timestamp(SystemTime);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_micros(self.0))
    }
}

#[derive(Serialize)]
struct RawArgs {
    raw: [u64; 6],
}

#[derive(Serialize)]
struct SyscallLine<'a> {
    event_type: &'static str,
    timestamp: Timestamp,
    pid: u32,
    tgid: u32,
    comm: &'a str,
    syscall: &'a str,
    syscall_nr: u32,
    args: RawArgs,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    path_truncated: bool,
    return_value: Option<i64>,
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<String>,
    duration_us: Option<u64>,
    action: &'static str,
    category: &'static str,
}

#[derive(Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum ProcessDetail<'a> {
    Fork {
        child_pid: u32,
        child_tgid: u32,
    },
    Exec {
        path: &'a str,
        old_pid: u32,
    },
    Exited {
        exit_code: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
    /// A fork the process limit refused.
    ForkRefused {
        syscall: &'a str,
        errno: String,
        reason: &'static str,
    },
}

#[derive(Serialize)]
struct ProcessLine<'a> {
    event_type: &'static str,
    timestamp: Timestamp,
    pid: u32,
    tgid: u32,
    comm: &'a str,
    #[serde(flatten)]
    detail: ProcessDetail<'a>,
}

#[derive(Serialize)]
struct FileLine<'a> {
    event_type: &'static str,
    timestamp: Timestamp,
    pid: u32,
    tgid: u32,
    comm: &'a str,
    /// `allow` or `deny`.
    action: &'static str,
    operation: &'static str,
    access: Vec<&'static str>,
    path: &'a str,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a RuleLabel>,
}

#[derive(Serialize)]
struct NetworkLine<'a> {
    event_type: &'static str,
    timestamp: Timestamp,
    pid: u32,
    tgid: u32,
    comm: &'a str,
    /// `allow` or `deny`.
    action: &'static str,
    operation: &'static str,
    family: String,
    socket_type: String,
    protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_port: Option<u16>,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a RuleLabel>,
}

#[derive(Serialize)]
struct SeccompLine<'a> {
    event_type: &'static str,
    timestamp: Timestamp,
    pid: u32,
    tgid: u32,
    comm: &'a str,
    action: &'static str,
    abi: String,
    syscall_nr: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    syscall: Option<&'static str>,
    reason: &'static str,
}

#[derive(Serialize)]
struct SummaryLine<'a> {
    event_type: &'static str,
    #[serde(flatten)]
    summary: &'a Summary,
}

/// Exit code and terminating signal from a wait(2) status, shell style (128+N for signals).
pub fn decode_wait_status(status: i32) -> (i32, Option<i32>) {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        (128 + sig, Some(sig))
    } else {
        (libc::WEXITSTATUS(status), None)
    }
}

pub struct JsonlWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

impl JsonlWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("creating the event log {}", path.display()))?;
        Ok(Self {
            out: BufWriter::with_capacity(1 << 20, file),
            path: path.to_owned(),
        })
    }

    pub fn write_event(&mut self, event: &Event, labels: &Labels) -> Result<()> {
        let t = &event.task;
        let timestamp = Timestamp(event.time);
        match &event.body {
            EventBody::Syscall(s) => self.line(&syscall_line(event, s)),
            EventBody::File(f) => self.line(&file_line(event, f, labels)),
            EventBody::Network(n) => self.line(&network_line(event, n, labels)),
            EventBody::SeccompKill(k) => self.line(&seccomp_line(event, k)),
            EventBody::ForkRefused { nr, errno } => self.line(&ProcessLine {
                event_type: "process",
                timestamp,
                pid: t.pid,
                tgid: t.tgid,
                comm: &t.comm,
                detail: ProcessDetail::ForkRefused {
                    syscall: syscall_table::name(*nr).unwrap_or("unknown"),
                    errno: format!("{:?}", nix::errno::Errno::from_raw(*errno)),
                    reason: FORK_REFUSED_REASON,
                },
            }),
            EventBody::Fork {
                child_pid,
                child_tgid,
            } => self.line(&ProcessLine {
                event_type: "process",
                timestamp,
                pid: t.pid,
                tgid: t.tgid,
                comm: &t.comm,
                detail: ProcessDetail::Fork {
                    child_pid: *child_pid,
                    child_tgid: *child_tgid,
                },
            }),
            EventBody::Exec { old_pid, filename } => self.line(&ProcessLine {
                event_type: "process",
                timestamp,
                pid: t.pid,
                tgid: t.tgid,
                comm: &t.comm,
                detail: ProcessDetail::Exec {
                    path: filename,
                    old_pid: *old_pid,
                },
            }),
            EventBody::Exit { status } => {
                let (exit_code, signal) = decode_wait_status(*status);
                self.line(&ProcessLine {
                    event_type: "process",
                    timestamp,
                    pid: t.pid,
                    tgid: t.tgid,
                    comm: &t.comm,
                    detail: ProcessDetail::Exited { exit_code, signal },
                })
            }
        }
    }

    /// Writes the summary line and flushes the file to disk.
    pub fn finish(mut self, summary: &Summary) -> Result<()> {
        self.line(&SummaryLine {
            event_type: "summary",
            summary,
        })?;
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.out
            .get_ref()
            .sync_data()
            .with_context(|| format!("syncing {}", self.path.display()))
    }

    fn line<T: Serialize>(&mut self, value: &T) -> Result<()> {
        serde_json::to_writer(&mut self.out, value)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.out
            .write_all(b"\n")
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

fn file_line<'a>(event: &'a Event, f: &'a FileRecord, labels: &'a Labels) -> FileLine<'a> {
    FileLine {
        event_type: "file",
        timestamp: Timestamp(event.time),
        pid: event.task.pid,
        tgid: event.task.tgid,
        comm: &event.task.comm,
        action: if f.verdict.is_denied() {
            "deny"
        } else {
            "allow"
        },
        operation: f.op.as_str(),
        access: access_names(f.needed),
        path: &f.path,
        reason: f.verdict.as_str(),
        rule: f.rule.and_then(|r| labels.file_rules.label(r)),
    }
}

/// Why forks fail with EAGAIN in a session.
pub const FORK_REFUSED_REASON: &str = "max_processes reached (or another process limit)";

fn network_line<'a>(event: &'a Event, n: &'a NetworkRecord, labels: &'a Labels) -> NetworkLine<'a> {
    NetworkLine {
        event_type: "network",
        timestamp: Timestamp(event.time),
        pid: event.task.pid,
        tgid: event.task.tgid,
        comm: &event.task.comm,
        action: if n.verdict.is_denied() {
            "deny"
        } else {
            "allow"
        },
        operation: op_name(n.op),
        family: family_name(n.family),
        socket_type: sock_type_name(n.sock_type),
        protocol: protocol_name(n.protocol, n.sock_type),
        address: n.addr.map(|(a, _)| a.to_string()),
        port: n.addr.map(|(_, p)| p),
        peer_address: n.peer.map(|(a, _)| a.to_string()),
        peer_port: n.peer.map(|(_, p)| p),
        reason: labels.network_rules.reason(n),
        rule: n
            .rule
            .and_then(|(list, index)| labels.network_rules.label(list, index)),
    }
}

fn seccomp_line<'a>(event: &'a Event, k: &SeccompKillRecord) -> SeccompLine<'a> {
    SeccompLine {
        event_type: "seccomp",
        timestamp: Timestamp(event.time),
        pid: event.task.pid,
        tgid: event.task.tgid,
        comm: &event.task.comm,
        action: "kill",
        abi: k.abi.as_str(),
        syscall_nr: k.nr,
        syscall: super::foreign_syscall_name(k),
        reason: super::FOREIGN_ABI_REASON,
    }
}

fn syscall_line<'a>(event: &'a Event, s: &'a SyscallRecord) -> SyscallLine<'a> {
    SyscallLine {
        event_type: "syscall",
        timestamp: Timestamp(event.time),
        pid: event.task.pid,
        tgid: event.task.tgid,
        comm: &event.task.comm,
        syscall: syscall_table::name(s.nr).unwrap_or("unknown"),
        syscall_nr: s.nr,
        args: RawArgs { raw: s.args },
        path: s.path.as_deref(),
        path_truncated: s.path_truncated,
        return_value: s.ret,
        success: !s.ret.is_some_and(is_error),
        errno: s.ret.and_then(errno_name),
        duration_us: s.duration.map(|d| d.as_micros() as u64),
        action: s.action.as_str(),
        category: syscall_table::category(s.nr).as_str(),
    }
}
