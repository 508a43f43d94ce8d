//! `sandtrace report FILE.jsonl`: a recorded run, summarised for people (text) or machines
//! (`--format json`): what is worth a look, the process tree, files by kind of access (reads
//! by process), writes outside the directory CMD started in, destinations and other network
//! attempts, denials with the rule that fired, the busiest syscalls and lost events.
//!
//! [`log`] reads the log back; [`activity`] replays it into the files and sockets the run
//! used, which `sandtrace learn` turns into a policy.

pub mod activity;
mod destinations;
pub mod log;
mod outside_start_dir;
mod text;
mod worth_a_look;

pub use text::shell_quote;

use std::{
    collections::{BTreeMap, HashMap},
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::SystemTime,
};

use anyhow::Result;
use serde::Serialize;

use self::{
    activity::{Activity, FileUse, PathNaming, Replay, SocketUse, UnresolvedAccess},
    destinations::{Contact, Destinations},
    log::{Line, LogProblem, ProcessChange, RuleLine, SummaryLine, SyscallCountLine},
    worth_a_look::DeniedAccesses,
};
pub use self::{
    destinations::Destination, outside_start_dir::OutsideWrite, worth_a_look::WorthALook,
};
use crate::{
    cli::{ReportArgs, ReportFormat},
    output::{command_line::command_line, operation_and_access},
};

/// How many of the busiest syscalls a report lists.
const TOP_SYSCALLS: usize = 12;

/// A recorded run, summarised.
#[derive(Debug, Serialize)]
pub struct Report {
    pub log: PathBuf,
    /// The log ends with its summary line.
    pub complete: bool,
    pub problems: Vec<LogProblem>,
    pub run: RunOutline,
    /// Shells and downloaders started inside the run, persistence writes, credential reads
    /// and processes killed at the end (see [`worth_a_look`]).
    pub worth_a_look: Vec<WorthALook>,
    /// In the order they first appear; each names its parent and children by pid.
    pub processes: Vec<ProcessNode>,
    /// By path, as the processes named them (relative paths, `./...`, are relative to the
    /// directory CMD started in).
    pub files: Vec<FileRow>,
    /// Writes outside `run.start_dir`; empty when the log does not record it.
    pub writes_outside_start_dir: Vec<OutsideWrite>,
    /// Remote addresses the run tried, grouped by host name or address and port.
    pub destinations: Vec<Destination>,
    /// Socket calls, from the syscall lines (addresses are not in them).
    pub network: Vec<NetworkRow>,
    /// The kernel's network decisions, with addresses (enforcing runs only).
    pub network_decisions: Vec<NetworkDecision>,
    /// The session resolver's queries (runs with `allow_hosts`); absent when it did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsReport>,
    pub denials: Vec<Denial>,
    pub top_syscalls: Vec<SyscallCountLine>,
    pub unresolved: Vec<UnresolvedAccess>,
    pub unresolved_count: u64,
}

/// How the run went: from the summary line, or counted from the lines present.
#[derive(Debug, Serialize)]
pub struct RunOutline {
    /// The first program CMD's process executed.
    pub command: Option<String>,
    /// The directory CMD started in: the working directory of its first exec (absent in logs
    /// older than exec events' `cwd`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_dir: Option<String>,
    /// `trace-only` or `enforce`; unknown without a summary.
    pub mode: Option<String>,
    /// `exited`, `timed_out`, `interrupted`, `start_failed`; unknown without a summary.
    pub ending: Option<String>,
    /// Who CMD ran as; unknown without a summary (and in logs older than the field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as: Option<crate::output::summary::RunAs>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// From the summary; without one, from the first to the last event.
    pub duration_ms: Option<u64>,
    pub process_count: u64,
    pub total_syscalls: u64,
    pub unique_syscalls: u64,
    pub denied_count: u64,
    /// Events the ring buffer dropped; unknown without a summary.
    pub lost_events: Option<u64>,
    /// Syscall events without arguments (the kernel's table of in-flight calls was full).
    pub incomplete_events: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExecRecord {
    /// As passed to execve.
    pub path: String,
    /// The `#!` interpreter, for a script.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    pub argv: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub argv_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
}

/// A process as the report names it: its pid and the command line of a program it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessRef {
    pub pid: u32,
    /// The arguments, shell-quoted; the program's path when the log has no arguments; the
    /// command name in brackets when it executed nothing the log shows.
    pub command: String,
}

impl ProcessRef {
    /// Process `pid` by its last program; `pid N` when the log never showed it.
    fn find(by_pid: &HashMap<u32, &ProcessNode>, pid: u32) -> Self {
        match by_pid.get(&pid) {
            Some(node) => node.reference(),
            None => Self {
                pid,
                command: format!("pid {pid}"),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessNode {
    /// The process id (thread-group id) in the initial PID namespace.
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<u32>,
    /// The last command name the process had.
    pub comm: String,
    /// Programs the process executed, in order.
    pub execs: Vec<ExecRecord>,
    /// Threads it started.
    pub threads: u64,
    /// `None` when the log has no exit for it (still running when the log ended).
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub children: Vec<u32>,
    /// How many programs the parent had executed when it started this process: the parent's
    /// program then is the one that started it.
    #[serde(skip)]
    parent_execs: usize,
}

impl ProcessNode {
    /// The process as it was running its last program.
    fn reference(&self) -> ProcessRef {
        self.reference_after(self.execs.len())
    }

    /// The process as it was after executing its first `execs` programs.
    fn reference_after(&self, execs: usize) -> ProcessRef {
        let command = match execs.checked_sub(1).map(|i| &self.execs[i]) {
            None => format!("[{}]", self.comm),
            Some(e) if e.argv.is_empty() => e.path.clone(),
            Some(e) => command_line(&e.argv, e.argv_truncated),
        };
        ProcessRef {
            pid: self.pid,
            command,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FileRow {
    pub path: PathBuf,
    #[serde(flatten)]
    pub usage: FileUse,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkRow {
    pub family: String,
    pub call: String,
    #[serde(flatten)]
    pub usage: SocketUse,
}

/// Kernel network decisions of one kind (enforcing runs), grouped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkDecision {
    /// `allow` or `deny`.
    pub action: String,
    pub operation: String,
    pub family: String,
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The host name the session's resolver handed the address out for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub count: u64,
}

/// What the session's resolver answered: from the `dns` lines, or from the summary when the
/// log has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DnsReport {
    pub answered: u64,
    pub refused: u64,
    /// Distinct, in the order first refused (from the summary: at most its first 20).
    pub refused_names: Vec<String>,
    /// Distinct names answered with addresses, in the order first answered.
    pub answered_names: Vec<String>,
    /// Without the session's resolver: the queries seen in the session's traffic.
    pub observed: u64,
    /// Distinct, in the order first seen.
    pub observed_names: Vec<String>,
}

/// Equal denials, grouped: a file or network decision of the kernel programs, a syscall the
/// seccomp filter refused, a process it killed, or a fork the process limit refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    /// `file`, `network`, `dns`, `syscall`, `seccomp_kill` or `fork`.
    pub kind: &'static str,
    /// What was refused, e.g. `open read /etc/shadow`.
    pub what: String,
    /// Why: the reason the kernel programs gave.
    pub why: String,
    /// The policy rule that fired, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleLine>,
    pub count: u64,
    /// The first process denied.
    pub pid: u32,
    pub comm: String,
    /// The command line the first process denied was running (for a denied exec: the one
    /// that tried it; the denied program's arguments are not in the log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// Collects a report while the log is read.
struct Builder {
    replay: Replay,
    nodes: Vec<ProcessNode>,
    index: HashMap<u32, usize>,
    denials: Vec<Denial>,
    network_decisions: Vec<NetworkDecision>,
    destinations: Destinations,
    denied_accesses: DeniedAccesses,
    /// Processes killed by SIGKILL after CMD's process had exited: the session's end.
    killed_at_end: Vec<u32>,
    /// `None` until the first `dns` line.
    dns: Option<DnsReport>,
    syscall_lines: BTreeMap<String, u64>,
    summary: Option<SummaryLine>,
    first_time: Option<SystemTime>,
    last_time: Option<SystemTime>,
}

impl Builder {
    fn node(&mut self, tgid: u32, comm: &str) -> &mut ProcessNode {
        let i = *self.index.entry(tgid).or_insert_with(|| {
            self.nodes.push(ProcessNode {
                pid: tgid,
                parent: None,
                comm: comm.to_owned(),
                execs: Vec::new(),
                threads: 0,
                exit_code: None,
                signal: None,
                children: Vec::new(),
                parent_execs: 0,
            });
            self.nodes.len() - 1
        });
        &mut self.nodes[i]
    }

    fn record(&mut self, record: Line) {
        if let Some(t) = record
            .timestamp()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
        {
            self.first_time.get_or_insert(t);
            self.last_time = Some(t);
        }
        self.replay.record(&record);
        match record {
            Line::Syscall(s) => {
                *self.syscall_lines.entry(s.syscall.clone()).or_default() += 1;
                self.node(s.tgid, &s.comm).comm.clone_from(&s.comm);
                if s.action == "deny" {
                    self.deny(Denial {
                        kind: "syscall",
                        what: format!("syscall {}", s.syscall),
                        why: "refused by the policy's seccomp filter (EPERM)".to_owned(),
                        rule: None,
                        count: 1,
                        pid: s.tgid,
                        comm: s.comm,
                        command: None,
                    });
                }
            }
            Line::Process(p) => {
                self.node(p.tgid, &p.comm).comm.clone_from(&p.comm);
                match p.change {
                    ProcessChange::Fork {
                        child_pid,
                        child_tgid,
                    } if child_pid == child_tgid => {
                        let comm = p.comm.clone();
                        let parent_execs = self.node(p.tgid, &comm).execs.len();
                        let child = self.node(child_tgid, &comm);
                        child.parent = Some(p.tgid);
                        child.parent_execs = parent_execs;
                        self.node(p.tgid, &comm).children.push(child_tgid);
                    }
                    ProcessChange::Fork { .. } => self.node(p.tgid, &p.comm).threads += 1,
                    ProcessChange::Exec {
                        path,
                        interpreter,
                        argv,
                        argv_truncated,
                        cwd,
                        uid,
                        ..
                    } => {
                        self.node(p.tgid, &p.comm).execs.push(ExecRecord {
                            path,
                            interpreter,
                            argv,
                            argv_truncated,
                            cwd,
                            uid,
                        });
                    }
                    ProcessChange::Exited { exit_code, signal } => {
                        let cmd_exited = self.nodes.first().is_some_and(|n| n.exit_code.is_some());
                        if cmd_exited && signal == Some(libc::SIGKILL) {
                            self.killed_at_end.push(p.tgid);
                        }
                        let node = self.node(p.tgid, &p.comm);
                        node.exit_code = Some(exit_code);
                        node.signal = signal;
                    }
                    ProcessChange::ForkRefused {
                        syscall, reason, ..
                    } => self.deny(Denial {
                        kind: "fork",
                        what: format!("new process ({syscall})"),
                        why: reason,
                        rule: None,
                        count: 1,
                        pid: p.tgid,
                        comm: p.comm,
                        command: None,
                    }),
                }
            }
            Line::File(f) => {
                self.denied_accesses.record(&f);
                if f.action == "deny" {
                    self.deny(Denial {
                        kind: "file",
                        what: format!(
                            "{} {}",
                            operation_and_access(&f.operation, &f.access),
                            f.path
                        ),
                        why: f.reason,
                        rule: f.rule,
                        count: 1,
                        pid: f.tgid,
                        comm: f.comm,
                        command: None,
                    });
                }
            }
            Line::Network(n) => {
                if let Some(contact) = Contact::from_network(&n) {
                    self.destinations.add(contact);
                }
                let decision = NetworkDecision {
                    action: n.action,
                    operation: n.operation,
                    family: n.family,
                    protocol: n.protocol,
                    address: n.address,
                    port: n.port,
                    host: n.host,
                    count: 1,
                };
                if decision.action == "deny" {
                    self.deny(Denial {
                        kind: "network",
                        what: describe_network(&decision),
                        why: n.reason,
                        rule: n.rule,
                        count: 1,
                        pid: n.tgid,
                        comm: n.comm,
                        command: None,
                    });
                }
                let same = |d: &NetworkDecision| {
                    NetworkDecision {
                        count: 1,
                        ..d.clone()
                    } == decision
                };
                match self.network_decisions.iter_mut().find(|d| same(d)) {
                    Some(d) => d.count += 1,
                    None => self.network_decisions.push(decision),
                }
            }
            Line::Seccomp(k) => self.deny(Denial {
                kind: "seccomp_kill",
                what: format!(
                    "syscall {} ({} ABI)",
                    k.syscall.unwrap_or_else(|| k.syscall_nr.to_string()),
                    k.abi
                ),
                why: k.reason,
                rule: None,
                count: 1,
                pid: k.tgid,
                comm: k.comm,
                command: None,
            }),
            Line::Dns(d) => {
                let dns = self.dns.get_or_insert_default();
                let seen = |names: &[String]| names.contains(&d.name);
                if d.action == "observed" {
                    dns.observed += 1;
                    if !d.name.is_empty() && !seen(&dns.observed_names) {
                        dns.observed_names.push(d.name);
                    }
                } else if d.action == "deny" {
                    dns.refused += 1;
                    if !d.name.is_empty() && !seen(&dns.refused_names) {
                        dns.refused_names.push(d.name.clone());
                    }
                    self.deny(Denial {
                        kind: "dns",
                        what: format!("dns {} {}", d.name, d.query_type),
                        why: d.reason,
                        rule: d.rule,
                        count: 1,
                        // The resolver knows the querying socket, not its process.
                        pid: 0,
                        comm: String::new(),
                        command: None,
                    });
                } else {
                    self.destinations.answer(&d);
                    dns.answered += 1;
                    if !d.answers.is_empty() && !seen(&dns.answered_names) {
                        dns.answered_names.push(d.name);
                    }
                }
            }
            Line::Summary(s) => self.summary = Some(s),
            // The calls themselves: destinations count their attempts from these.
            Line::Socket(s) => {
                if let Some(contact) = Contact::from_socket(&s) {
                    self.destinations.add(contact);
                }
            }
        }
    }

    /// Adds a denial to the group of equal ones; a new group names the command line its
    /// process was running.
    fn deny(&mut self, mut denial: Denial) {
        let same = |d: &Denial| {
            d.kind == denial.kind
                && d.what == denial.what
                && d.why == denial.why
                && d.rule == denial.rule
        };
        match self.denials.iter_mut().find(|d| same(d)) {
            Some(d) => d.count += 1,
            None => {
                denial.command = self
                    .index
                    .get(&denial.pid)
                    .map(|&i| &self.nodes[i])
                    .filter(|n| !n.execs.is_empty())
                    .map(|n| n.reference().command);
                self.denials.push(denial);
            }
        }
    }

    fn finish(self, log: &Path, problems: Vec<LogProblem>) -> Report {
        let activity: Activity = self.replay.finish();
        let first_exec = self.nodes.first().and_then(|n| n.execs.first());
        let command = first_exec.map(|e| e.path.clone());
        let start_dir = first_exec.and_then(|e| e.cwd.clone());
        let denied_lines = self.denials.iter().map(|d| d.count).sum();
        let dns = self.dns.or_else(|| {
            let summary = self.summary.as_ref()?.dns.as_ref()?;
            Some(DnsReport {
                answered: summary.answered,
                refused: summary.refused,
                refused_names: summary.refused_names.clone(),
                answered_names: Vec::new(),
                observed: summary.observed,
                observed_names: summary.observed_names.clone(),
            })
        });
        let run = match &self.summary {
            Some(s) => RunOutline {
                command,
                start_dir,
                mode: Some(s.mode.clone()),
                ending: Some(s.ending.clone()),
                run_as: s.run_as.clone(),
                exit_code: Some(s.exit_code),
                signal: s.signal,
                duration_ms: Some(s.duration_ms),
                process_count: s.process_count,
                total_syscalls: s.total_syscalls,
                unique_syscalls: s.unique_syscalls,
                denied_count: s.denied_count,
                lost_events: Some(s.lost_events),
                incomplete_events: Some(s.incomplete_events),
            },
            None => RunOutline {
                command,
                start_dir,
                mode: None,
                ending: None,
                run_as: None,
                exit_code: self.nodes.first().and_then(|n| n.exit_code),
                signal: self.nodes.first().and_then(|n| n.signal),
                duration_ms: match (self.first_time, self.last_time) {
                    (Some(first), Some(last)) => last
                        .duration_since(first)
                        .ok()
                        .map(|d| d.as_millis() as u64),
                    _ => None,
                },
                process_count: self.nodes.len() as u64,
                total_syscalls: self.syscall_lines.values().sum(),
                unique_syscalls: self.syscall_lines.len() as u64,
                denied_count: denied_lines,
                lost_events: None,
                incomplete_events: None,
            },
        };
        let top_syscalls = match &self.summary {
            Some(s) => s
                .syscall_counts
                .iter()
                .take(TOP_SYSCALLS)
                .cloned()
                .collect(),
            None => {
                let mut counts: Vec<SyscallCountLine> = self
                    .syscall_lines
                    .into_iter()
                    .map(|(syscall, count)| SyscallCountLine { syscall, count })
                    .collect();
                counts.sort_by(|a, b| b.count.cmp(&a.count).then(a.syscall.cmp(&b.syscall)));
                counts.truncate(TOP_SYSCALLS);
                counts
            }
        };
        let files: Vec<FileRow> = activity
            .files
            .into_iter()
            .map(|(path, usage)| FileRow { path, usage })
            .collect();
        let worth_a_look = worth_a_look::find(
            &self.nodes,
            &files,
            &self.denied_accesses,
            &self.killed_at_end,
        );
        let writes_outside_start_dir = match &run.start_dir {
            Some(dir) => outside_start_dir::find(Path::new(dir), &files, &self.nodes),
            None => Vec::new(),
        };
        let destinations = self.destinations.finish(&self.nodes);
        Report {
            log: log.to_owned(),
            complete: self.summary.is_some(),
            problems,
            run,
            worth_a_look,
            processes: self.nodes,
            files,
            writes_outside_start_dir,
            destinations,
            network: activity
                .sockets
                .into_iter()
                .map(|((family, call), usage)| NetworkRow {
                    family,
                    call,
                    usage,
                })
                .collect(),
            network_decisions: self.network_decisions,
            dns,
            denials: self.denials,
            top_syscalls,
            unresolved: activity.unresolved,
            unresolved_count: activity.unresolved_count,
        }
    }
}

impl Report {
    /// Reads the log at `path` and summarises it.
    pub fn from_log(path: &Path) -> Result<Self> {
        let mut builder = Builder {
            replay: Replay::new(PathNaming::AsNamed),
            nodes: Vec::new(),
            index: HashMap::new(),
            denials: Vec::new(),
            network_decisions: Vec::new(),
            destinations: Destinations::default(),
            denied_accesses: DeniedAccesses::default(),
            killed_at_end: Vec::new(),
            dns: None,
            syscall_lines: BTreeMap::new(),
            summary: None,
            first_time: None,
            last_time: None,
        };
        let end = log::read(path, |record| builder.record(record))?;
        Ok(builder.finish(path, end.problems))
    }

    /// The report for people.
    pub fn to_text(&self) -> String {
        text::render(self)
    }

    /// The report for machines: one JSON object.
    pub fn to_json(&self) -> String {
        let mut out = serde_json::to_string_pretty(self).expect("a report serialises");
        out.push('\n');
        out
    }
}

/// `connect inet tcp 127.0.0.1:80`, or with the host name the session's resolver handed the
/// address out for, `connect ipv4 tcp registry.npmjs.org (104.16.1.34:443)`, as the report
/// names a network decision.
pub fn describe_network(d: &NetworkDecision) -> String {
    let mut text = format!("{} {} {}", d.operation, d.family, d.protocol);
    let endpoint = match (&d.address, d.port) {
        (Some(a), Some(p)) if a.contains(':') => format!("[{a}]:{p}"),
        (Some(a), Some(p)) => format!("{a}:{p}"),
        (Some(a), None) => a.clone(),
        _ => return text,
    };
    match &d.host {
        Some(host) => text += &format!(" {host} ({endpoint})"),
        None => text += &format!(" {endpoint}"),
    }
    text
}

/// Runs `sandtrace report`; the report goes to stdout, errors to stderr.
pub fn command(args: &ReportArgs) -> ExitCode {
    let report = match Report::from_log(&args.file) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sandtrace: error: {e:#}");
            eprintln!(
                "  hint: record a log with `sandtrace run -o FILE -- CMD`, then run \
                 `sandtrace report FILE`"
            );
            return ExitCode::from(crate::exit::OUTPUT_FAILED);
        }
    };
    let text = match args.format {
        ReportFormat::Text => report.to_text(),
        ReportFormat::Json => report.to_json(),
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sandtrace: error: writing the report: {e}");
            ExitCode::from(crate::exit::OUTPUT_FAILED)
        }
    }
}
