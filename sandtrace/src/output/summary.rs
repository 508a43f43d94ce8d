//! The end-of-run summary: counted from events as they arrive plus the kernel's counters.

use std::time::Duration;

use serde::Serialize;

use sandtrace_common::event::MAX_SYSCALL_NR;

use super::{RuleLabel, SyscallAction};
use crate::{
    dns::{Decision, DnsQuery, ObservedQuery},
    events::{Event, EventBody},
    syscall_table,
};

/// How the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// CMD exited or was killed by a signal; see `exit_code`.
    Exited,
    /// The timeout killed the session.
    TimedOut,
    /// sandtrace was interrupted (Ctrl-C, SIGTERM, SIGHUP) and killed the session.
    Interrupted,
    /// CMD could not be started.
    StartFailed,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyscallCount {
    pub syscall: String,
    pub count: u64,
}

/// Denials by what refused them; `Summary::denied_count` is their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Denials {
    /// File and exec operations (BPF LSM).
    pub files: u64,
    /// Connects, sends, binds, sockets and received packets (network rules).
    pub network: u64,
    /// Syscalls the seccomp filter refused or killed a process for.
    pub syscalls: u64,
    /// Forks refused by the process limit.
    pub processes: u64,
}

impl Denials {
    pub fn total(&self) -> u64 {
        self.files + self.network + self.syscalls + self.processes
    }
}

/// The last line of the JSONL log and the source of the terminal summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub total_syscalls: u64,
    pub unique_syscalls: u64,
    pub denied_count: u64,
    pub denials: Denials,
    /// Calls of `log_only` syscalls.
    pub log_only_count: u64,
    pub process_count: u64,
    pub duration_ms: u64,
    pub exit_code: i32,
    pub lost_events: u64,
    /// Syscall events delivered without arguments and duration because the kernel's table of
    /// in-flight syscalls was full.
    pub incomplete_events: u64,
    pub ending: Ending,
    /// Signal that killed CMD, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// `trace-only`, `enforce` or `degraded` (`--allow-degraded`: some rules not enforced).
    pub mode: &'static str,
    /// Rules of the policy this session did not enforce (see `mode`).
    pub unenforced: Vec<RuleLabel>,
    /// Rules enforced only approximately (Landlock, in `degraded` mode), and how.
    pub approximated: Vec<super::Approximated>,
    /// Who CMD ran as.
    pub run_as: RunAs,
    /// The caller's variables CMD did not get, by name.
    pub removed_environment: Vec<String>,
    /// The session resolver's queries, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsSummary>,
    /// Per-syscall call counts, most frequent first.
    pub syscall_counts: Vec<SyscallCount>,
}

/// Most refused names a summary lists (a command can ask for endless names; the counts are
/// complete, the event log has every query).
pub const MAX_REFUSED_NAMES: usize = 20;

/// What the session's resolver answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DnsSummary {
    /// Queries for names an `allow_hosts` entry covers (resolved upstream; failures too).
    pub answered: u64,
    /// Queries refused: names no entry covers (NXDOMAIN), malformed or refused queries.
    pub refused: u64,
    /// The distinct names refused, in the order first refused, at most
    /// [`MAX_REFUSED_NAMES`].
    #[serde(default)]
    pub refused_names: Vec<String>,
    /// Without the session's resolver: the queries seen in the session's traffic.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observed: u64,
    /// The distinct names of those queries, in the order first seen, at most
    /// [`MAX_REFUSED_NAMES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observed_names: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Adds `name` to `names` unless it is empty, already there, or the list is full.
fn remember(names: &mut Vec<String>, name: &str) {
    if !name.is_empty() && names.len() < MAX_REFUSED_NAMES && !names.iter().any(|n| n == name) {
        names.push(name.to_owned());
    }
}

impl DnsSummary {
    fn count(&mut self, query: &DnsQuery) {
        match query.decision {
            Decision::Allow => self.answered += 1,
            Decision::Deny => {
                self.refused += 1;
                remember(&mut self.refused_names, &query.name);
            }
        }
    }
}

/// Counts what the event stream shows while the session runs.
#[derive(Debug, Default)]
pub struct Tally {
    forks: u64,
    denials: Denials,
    log_only: u64,
    undecodable: u64,
    /// `None` unless the session's resolver runs.
    dns: Option<DnsSummary>,
}

impl Tally {
    pub fn observe(&mut self, event: &Event) {
        match &event.body {
            // A new process, not a new thread of an existing one.
            EventBody::Fork {
                child_pid,
                child_tgid,
            } if child_pid == child_tgid => self.forks += 1,
            EventBody::File(f) if f.verdict.is_denied() => self.denials.files += 1,
            EventBody::Network(n) if n.verdict.is_denied() => self.denials.network += 1,
            EventBody::Syscall(s) => match s.action {
                SyscallAction::Deny => self.denials.syscalls += 1,
                SyscallAction::LogOnly => self.log_only += 1,
                SyscallAction::Allow => {}
            },
            EventBody::SeccompKill(_) => self.denials.syscalls += 1,
            EventBody::ForkRefused { .. } => self.denials.processes += 1,
            _ => {}
        }
    }

    /// The session's resolver runs: the summary reports its queries, even none.
    pub fn count_dns_queries(&mut self) {
        self.dns.get_or_insert_default();
    }

    pub fn observe_dns(&mut self, query: &DnsQuery) {
        self.dns.get_or_insert_default().count(query);
    }

    pub fn observe_dns_traffic(&mut self, query: &ObservedQuery) {
        let dns = self.dns.get_or_insert_default();
        dns.observed += 1;
        remember(&mut dns.observed_names, &query.name);
    }

    /// The resolver's queries so far, if it runs.
    pub fn dns(&self) -> Option<&DnsSummary> {
        self.dns.as_ref()
    }

    pub fn count_undecodable(&mut self) {
        self.undecodable += 1;
    }

    /// `syscall_counts` is indexed by syscall number, as the kernel counted them.
    pub fn finish(
        &self,
        syscall_counts: &[u64],
        ring_buffer_lost: u64,
        incomplete_events: u64,
        run: RunResult<'_>,
    ) -> Summary {
        let mut counts: Vec<SyscallCount> = syscall_counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(nr, &count)| SyscallCount {
                syscall: match syscall_table::name(nr as u32) {
                    Some(name) => name.to_owned(),
                    // The kernel's last slot counts numbers outside the x86_64 table.
                    None if nr == MAX_SYSCALL_NR => "out_of_range".to_owned(),
                    None => format!("syscall_{nr}"),
                },
                count,
            })
            .collect();
        counts.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.syscall.cmp(&b.syscall))
        });
        Summary {
            total_syscalls: counts.iter().map(|c| c.count).sum(),
            unique_syscalls: counts.len() as u64,
            denied_count: self.denials.total(),
            denials: self.denials,
            log_only_count: self.log_only,
            // CMD itself plus every process created inside the session.
            process_count: u64::from(run.ending != Ending::StartFailed) + self.forks,
            duration_ms: run.duration.as_millis() as u64,
            exit_code: run.exit_code,
            lost_events: ring_buffer_lost + self.undecodable,
            incomplete_events,
            ending: run.ending,
            signal: run.signal,
            mode: run.mode,
            unenforced: run.unenforced.to_vec(),
            approximated: run.approximated.to_vec(),
            run_as: run.run_as,
            removed_environment: run.removed_environment.to_vec(),
            dns: self.dns.clone(),
            syscall_counts: counts,
        }
    }
}

/// Who CMD ran as, and the capabilities it kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The user's name, when it has a passwd entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The capabilities it kept (`[process] capabilities`), or `["all"]` with `--as-root`.
    pub capabilities: Vec<String>,
}

impl RunAs {
    pub fn of(process: &crate::plan::ProcessPlan) -> Self {
        let account = &process.identity.account;
        Self {
            uid: account.uid,
            gid: account.gid,
            groups: account.groups.clone(),
            user: account.name.clone(),
            capabilities: process.privileges.names(),
        }
    }

    /// `uid 65534 (nobody), gid 65534, capabilities: none`.
    pub fn describe(&self) -> String {
        let name = self
            .user
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let capabilities = match self.capabilities.as_slice() {
            [] => "none".to_owned(),
            [all] if all == "all" => "all (--as-root)".to_owned(),
            kept => kept.join(", "),
        };
        format!(
            "uid {}{name}, gid {}, capabilities: {capabilities}",
            self.uid, self.gid
        )
    }
}

/// What the session runner knows when the session is over.
#[derive(Debug, Clone)]
pub struct RunResult<'a> {
    pub duration: Duration,
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub ending: Ending,
    pub mode: &'static str,
    pub unenforced: &'a [RuleLabel],
    pub approximated: &'a [super::Approximated],
    pub run_as: RunAs,
    pub removed_environment: &'a [String],
}
