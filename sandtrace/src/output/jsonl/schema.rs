//! The JSONL event log's lines, defined once: what `sandtrace run -o FILE` writes and what
//! `sandtrace report` and `sandtrace learn` read back.
//!
//! Every line is one JSON object whose `event_type` says which of these it is ([`Line`]).
//! Fields appear in the order they are declared here. The writer formats event lines by hand
//! for speed (`super::format`); its tests require every line it writes to deserialize into
//! these types and serialize back to the same bytes, so the two cannot drift apart. The
//! summary line is serialized from [`SummaryLine`] itself.
//!
//! Reading is lenient in two ways: fields this version does not know are ignored, and fields
//! marked `#[serde(default)]` may be absent (logs of earlier versions lack some of them).

use serde::{Deserialize, Serialize};

use crate::output::{
    RuleLabel,
    summary::{Denials, DnsSummary, Ending, RunAs, Summary, SyscallCount},
};

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event_type", rename_all = "snake_case")]
pub enum Line {
    Syscall(SyscallLine),
    Process(ProcessLine),
    File(FileLine),
    Network(NetworkLine),
    Socket(SocketLine),
    Seccomp(SeccompLine),
    Dns(DnsLine),
    /// Always the last line of a complete log.
    Summary(SummaryLine),
}

/// One completed syscall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallLine {
    /// RFC 3339, UTC, microseconds: when the call entered the kernel (when it returned for
    /// calls whose entry was not recorded).
    pub timestamp: String,
    /// The thread, as the host numbers it.
    pub pid: u32,
    /// The process (thread group), as the host numbers it.
    pub tgid: u32,
    #[serde(default)]
    pub comm: String,
    /// The x86_64 name, `unknown` for a number outside the table.
    pub syscall: String,
    #[serde(default)]
    pub syscall_nr: u32,
    pub args: RawArgs,
    /// The decoded path argument of a path-taking syscall, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The path argument was longer than the kernel side keeps (255 bytes) and was cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
    /// The raw return value; `null` for syscalls that do not return (`exit`, `exit_group`).
    pub return_value: Option<i64>,
    /// False when `return_value` is an error (-4095..=-1).
    pub success: bool,
    /// The error's name (`ENOENT`), for failed calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// `null` when the call does not return or its entry was not recorded.
    #[serde(default)]
    pub duration_us: Option<u64>,
    /// `allow`, `deny` (refused by the seccomp filter) or `log_only`.
    pub action: String,
    /// `file_read`, `file_write`, `network`, `process`, `memory`, `ipc`, `signal`, `time` or
    /// `other`, by syscall.
    #[serde(default)]
    pub category: String,
}

/// The six argument registers of a syscall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawArgs {
    pub raw: [u64; 6],
}

/// A process or thread starting, executing a program or ending, or a fork refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessLine {
    pub timestamp: String,
    pub pid: u32,
    pub tgid: u32,
    #[serde(default)]
    pub comm: String,
    #[serde(flatten)]
    pub change: ProcessChange,
}

/// What happened to the process, by its `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ProcessChange {
    /// A new process (`child_pid == child_tgid`) or thread.
    Fork { child_pid: u32, child_tgid: u32 },
    /// A program executed: `path` as the kernel resolved it; `old_pid` is the thread's id
    /// before the exec (it differs when a thread other than the leader execs).
    Exec {
        path: String,
        #[serde(default)]
        old_pid: u32,
        /// The `#!` (or binfmt_misc) interpreter, for a script.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interpreter: Option<String>,
        /// The arguments (absent when the list is empty); the beginning of them when
        /// `argv_truncated`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        argv: Vec<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        argv_truncated: bool,
        /// The working directory, resolved (absent when the kernel could not rebuild it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
        /// Real user and group id after the exec.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gid: Option<u32>,
        /// The `[[after_exec]]` regimes (names) the process is in from this exec on.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        regimes: Vec<String>,
    },
    /// A process ended: its exit code, or 128+N and `signal` N when a signal killed it.
    Exited {
        exit_code: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
    /// A fork, vfork or clone refused by the process limit.
    ForkRefused {
        syscall: String,
        #[serde(default)]
        errno: String,
        #[serde(default)]
        reason: String,
    },
}

/// The policy rule that decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleLine {
    /// `allow_read`, `allow_write`, `allow_exec`, `deny`, `allow_connect`, `allow_bind` or
    /// `allow_hosts`.
    pub kind: String,
    /// As written in the policy.
    pub pattern: String,
    /// Where it was written (`FILE:LINE:COLUMN`, or the command-line flag).
    pub source: String,
}

impl From<&RuleLabel> for RuleLine {
    fn from(rule: &RuleLabel) -> Self {
        let RuleLabel {
            kind,
            pattern,
            source,
        } = rule;
        Self {
            kind: (*kind).to_owned(),
            pattern: pattern.clone(),
            source: source.clone(),
        }
    }
}

/// A rule enforced only approximately, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproximatedLine {
    #[serde(flatten)]
    pub rule: RuleLine,
    pub how: String,
}

/// One file or exec decision of the BPF LSM programs (enforcing runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLine {
    pub timestamp: String,
    pub pid: u32,
    pub tgid: u32,
    #[serde(default)]
    pub comm: String,
    /// `allow` or `deny`.
    pub action: String,
    /// `open`, `exec`, `create`, `unlink`, `mkdir`, `rmdir`, `mknod`, `symlink`, `link`,
    /// `link_source`, `rename_from`, `rename_to`, `truncate`, `chmod`, `chown`, `connect`,
    /// `ptrace`, `mknod_char`, `mknod_block`, `module_request` (`path` is the module's name),
    /// `watch`, `set_flags`, `setxattr`, `removexattr`, `set_acl`, `remove_acl` or `set_times`.
    pub operation: String,
    /// What the operation needed: `read`, `write`, `exec`.
    #[serde(default)]
    pub access: Vec<String>,
    pub path: String,
    pub reason: String,
    /// Absent when no rule decided (an unlisted path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleLine>,
    /// The `[[after_exec]]` regime whose rules denied it (its name); absent for the base's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regime: Option<String>,
}

/// One network decision of the cgroup socket programs (enforcing runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkLine {
    pub timestamp: String,
    /// 0 for `receive`, which comes from packet processing rather than from a process.
    #[serde(default)]
    pub pid: u32,
    pub tgid: u32,
    #[serde(default)]
    pub comm: String,
    /// `allow`, `deny`, or `redirect` (a DNS query sent to the session's resolver instead of
    /// its destination; the resolver's `dns` line says what it answered).
    pub action: String,
    /// `connect`, `send`, `bind`, `socket` or `receive`.
    pub operation: String,
    pub family: String,
    #[serde(default)]
    pub socket_type: String,
    #[serde(default)]
    pub protocol: String,
    /// What the rules were checked against: the destination of a connect or send, the local
    /// address of a bind or receive; absent for `socket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The host name of `address`: the name an `allow_hosts` entry allowed it for, or the
    /// last name the session's resolver handed the address out for; absent for addresses it
    /// never handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// For `receive`: where the packet came from, when that could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<u16>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleLine>,
    /// The `[[after_exec]]` regime that refused it (its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regime: Option<String>,
}

/// One socket call (`socket`, `connect`, `sendto`/`sendmsg` with a destination, `bind`,
/// `listen`, `accept`) of a session process, in every mode, as it returned: a record of what
/// the caller passed, not a decision (a `network` line says what the rules decided).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketLine {
    pub timestamp: String,
    pub pid: u32,
    pub tgid: u32,
    #[serde(default)]
    pub comm: String,
    /// `socket`, `connect`, `send`, `bind`, `listen` or `accept`.
    pub operation: String,
    /// The socket the call was made on; for `socket`, the one it created (absent when it
    /// failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    /// `ipv4`, `ipv6`, `unix`, `netlink`, ... (as on `network` lines): the address's family,
    /// else the socket's; absent when neither is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// `stream`, `dgram`, ... and `tcp`, `udp`, ... (the default protocol named), from the
    /// `socket` call that created the fd; absent when the log has not seen it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// For a netlink socket, its `NETLINK_*` family: `route`, `audit`, `generic`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netlink_family: Option<String>,
    /// The call's address: the destination of a connect or send, the address of a bind, the
    /// peer of an accepted connection.
    #[serde(flatten)]
    pub address: SocketAddressLine,
    /// An address was passed but could not be read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub address_unreadable: bool,
    /// The name the session's resolver last handed `address` out for (sessions with
    /// `allow_hosts`); absent for addresses it never handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// For `listen` and `accept`: the socket's local address, from its `bind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<SocketAddressLine>,
    /// 0 or the new fd (`socket`, `accept`), or the negated errno.
    pub return_value: i64,
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
}

/// A socket address in the fields of its family; all absent for none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketAddressLine {
    /// IPv4 or IPv6 (an IPv4-mapped IPv6 address as `::ffff:a.b.c.d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// A pathname UNIX socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// An abstract UNIX socket's name, without the leading NUL.
    #[serde(default, rename = "abstract", skip_serializing_if = "Option::is_none")]
    pub abstract_name: Option<String>,
    /// A UNIX address without a name (an unbound peer, an autobind).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unnamed: bool,
    /// A netlink address: the port id (0: the kernel) and multicast groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netlink_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netlink_groups: Option<u32>,
}

/// A process the seccomp filter killed for a syscall through a foreign ABI (x32, i386).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompLine {
    pub timestamp: String,
    #[serde(default)]
    pub pid: u32,
    pub tgid: u32,
    #[serde(default)]
    pub comm: String,
    /// `kill`.
    #[serde(default)]
    pub action: String,
    /// `x86_64`, `x32`, `i386` or `audit_arch_0x...`.
    pub abi: String,
    /// As that ABI numbers it.
    pub syscall_nr: u32,
    /// The x86_64 name, where the ABI shares the x86_64 table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscall: Option<String>,
    pub reason: String,
}

/// One query the session's resolver answered (sessions with `allow_hosts`), or, without the
/// resolver, one query seen in the session's traffic (`action` `observed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsLine {
    /// When the answer was sent (observed: when the query was).
    pub timestamp: String,
    /// `udp` or `tcp`.
    pub transport: String,
    /// The querying socket, `ADDRESS:PORT` (the kernel redirected its query, whatever
    /// resolver address it was sent to).
    pub client: String,
    /// Observed queries: the server asked, `ADDRESS:PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// As asked, without the trailing dot; empty for a malformed query.
    pub name: String,
    /// `A`, `AAAA`, `TXT`, `TYPE65`, ...; empty for a malformed query.
    pub query_type: String,
    /// `allow` (an `allow_hosts` entry covers the name: resolved upstream), `deny`, or
    /// `observed` (seen in the session's traffic; sandtrace decided nothing).
    pub action: String,
    /// `NOERROR`, `NXDOMAIN`, `SERVFAIL`, `REFUSED` or `FORMERR` (observed: any code, as
    /// `RCODE<N>` when it has no name; empty when no answer came).
    pub response: String,
    /// The addresses handed out (CNAME chains flattened: the name asked has them).
    #[serde(default)]
    pub answers: Vec<String>,
    /// Of the answer, in seconds: the smallest along its CNAME chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// The `allow_hosts` entry that covers the name (the first, when several do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleLine>,
    pub reason: String,
}

/// The summary that ends a complete log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryLine {
    pub total_syscalls: u64,
    pub unique_syscalls: u64,
    /// The sum of `denials`.
    pub denied_count: u64,
    #[serde(default)]
    pub denials: DenialCounts,
    /// Calls of `log_only` syscalls.
    #[serde(default)]
    pub log_only_count: u64,
    /// CMD plus every process created inside the session.
    pub process_count: u64,
    pub duration_ms: u64,
    /// sandtrace's own exit status.
    pub exit_code: i32,
    pub lost_events: u64,
    #[serde(default)]
    pub incomplete_events: u64,
    /// `exited`, `timed_out`, `interrupted` or `start_failed`.
    pub ending: String,
    /// The signal that killed CMD, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// `trace-only`, `enforce` or `degraded`.
    pub mode: String,
    /// Rules of the policy the session did not enforce (`degraded`).
    #[serde(default)]
    pub unenforced: Vec<RuleLine>,
    /// Rules enforced only approximately (`degraded` with Landlock), and how.
    #[serde(default)]
    pub approximated: Vec<ApproximatedLine>,
    /// Who CMD ran as, and the capabilities it kept (`["all"]`: `--as-root`); absent in logs
    /// of versions before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<RunAs>,
    /// The names of the caller's environment variables CMD did not get; absent like `run_as`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_environment: Option<Vec<String>>,
    /// The session resolver's queries; absent when it did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsSummary>,
    /// Most frequent first.
    #[serde(default)]
    pub syscall_counts: Vec<SyscallCountLine>,
}

/// Denials by what refused them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenialCounts {
    pub files: u64,
    pub network: u64,
    pub syscalls: u64,
    pub processes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallCountLine {
    pub syscall: String,
    pub count: u64,
}

impl From<&Summary> for SummaryLine {
    fn from(summary: &Summary) -> Self {
        // Destructured without `..`: a field added to `Summary` does not compile until it is
        // given its place in the log.
        let Summary {
            total_syscalls,
            unique_syscalls,
            denied_count,
            denials:
                Denials {
                    files,
                    network,
                    syscalls,
                    processes,
                },
            log_only_count,
            process_count,
            duration_ms,
            exit_code,
            lost_events,
            incomplete_events,
            ending,
            signal,
            mode,
            unenforced,
            approximated,
            run_as,
            removed_environment,
            dns,
            syscall_counts,
        } = summary;
        Self {
            total_syscalls: *total_syscalls,
            unique_syscalls: *unique_syscalls,
            denied_count: *denied_count,
            denials: DenialCounts {
                files: *files,
                network: *network,
                syscalls: *syscalls,
                processes: *processes,
            },
            log_only_count: *log_only_count,
            process_count: *process_count,
            duration_ms: *duration_ms,
            exit_code: *exit_code,
            lost_events: *lost_events,
            incomplete_events: *incomplete_events,
            ending: match ending {
                Ending::Exited => "exited",
                Ending::TimedOut => "timed_out",
                Ending::Interrupted => "interrupted",
                Ending::StartFailed => "start_failed",
            }
            .to_owned(),
            signal: *signal,
            mode: (*mode).to_owned(),
            unenforced: unenforced.iter().map(RuleLine::from).collect(),
            approximated: approximated
                .iter()
                .map(|a| ApproximatedLine {
                    rule: RuleLine::from(&a.rule),
                    how: a.how.clone(),
                })
                .collect(),
            run_as: Some(run_as.clone()),
            removed_environment: Some(removed_environment.clone()),
            dns: dns.clone(),
            syscall_counts: syscall_counts
                .iter()
                .map(|SyscallCount { syscall, count }| SyscallCountLine {
                    syscall: syscall.clone(),
                    count: *count,
                })
                .collect(),
        }
    }
}

impl Line {
    /// Parses one line of the log: `Ok(None)` for a JSON object with an `event_type` this
    /// version does not know. Reads the type first and then the one struct it names, which is
    /// quicker than serde's buffering of internally tagged enums.
    pub fn parse(text: &str) -> Result<Option<Self>, serde_json::Error> {
        #[derive(Deserialize)]
        struct EventType<'a> {
            #[serde(borrow)]
            event_type: std::borrow::Cow<'a, str>,
        }
        let EventType { event_type } = serde_json::from_str(text)?;
        Ok(Some(match &*event_type {
            "syscall" => Self::Syscall(serde_json::from_str(text)?),
            "process" => Self::Process(serde_json::from_str(text)?),
            "file" => Self::File(serde_json::from_str(text)?),
            "network" => Self::Network(serde_json::from_str(text)?),
            "socket" => Self::Socket(serde_json::from_str(text)?),
            "seccomp" => Self::Seccomp(serde_json::from_str(text)?),
            "dns" => Self::Dns(serde_json::from_str(text)?),
            "summary" => Self::Summary(serde_json::from_str(text)?),
            _ => return Ok(None),
        }))
    }

    /// The `event_type` of an object, whatever else it holds (`None` if it has none).
    pub fn event_type(text: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct EventType {
            event_type: String,
        }
        serde_json::from_str::<EventType>(text)
            .ok()
            .map(|t| t.event_type)
    }

    /// When the event happened (RFC 3339); `None` for the summary.
    pub fn timestamp(&self) -> Option<&str> {
        match self {
            Self::Syscall(s) => Some(&s.timestamp),
            Self::Process(p) => Some(&p.timestamp),
            Self::File(f) => Some(&f.timestamp),
            Self::Network(n) => Some(&n.timestamp),
            Self::Socket(s) => Some(&s.timestamp),
            Self::Seccomp(k) => Some(&k.timestamp),
            Self::Dns(d) => Some(&d.timestamp),
            Self::Summary(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::output::Approximated;
    use crate::output::summary::{RunResult, Tally};

    fn summary(ending: Ending, signal: Option<i32>, unenforced: &[RuleLabel]) -> Summary {
        // An approximated rule wherever one is unenforced: both lists round-trip.
        let approximated: Vec<Approximated> = unenforced
            .iter()
            .map(|rule| Approximated {
                rule: rule.clone(),
                how: "carved out at start".to_owned(),
            })
            .collect();
        let mut counts = vec![0u64; 300];
        counts[0] = 4;
        counts[257] = 9;
        Tally::default().finish(
            &counts,
            3,
            2,
            RunResult {
                duration: Duration::from_millis(1234),
                exit_code: 137,
                signal,
                ending,
                mode: "degraded",
                unenforced,
                approximated: &approximated,
                run_as: RunAs {
                    uid: 65534,
                    gid: 65534,
                    groups: vec![65534, 27],
                    user: Some("nobody".to_owned()),
                    capabilities: vec!["CAP_NET_BIND_SERVICE".to_owned()],
                },
                removed_environment: &["NPM_TOKEN".to_owned(), "SSH_AUTH_SOCK".to_owned()],
            },
        )
    }

    /// The summary line is what serializing `Summary` itself gave before the schema existed.
    #[test]
    fn the_summary_line_is_the_summary_serialized() {
        #[derive(Serialize)]
        struct Previous<'a> {
            event_type: &'static str,
            #[serde(flatten)]
            summary: &'a Summary,
        }
        let rule = RuleLabel {
            kind: "allow_read",
            pattern: "/usr/**".to_owned(),
            source: "policy.toml:2:15".to_owned(),
        };
        for ending in [
            Ending::Exited,
            Ending::TimedOut,
            Ending::Interrupted,
            Ending::StartFailed,
        ] {
            for (signal, unenforced) in [(None, vec![]), (Some(9), vec![rule.clone()])] {
                let summary = summary(ending, signal, &unenforced);
                let line = Line::Summary(SummaryLine::from(&summary));
                let text = serde_json::to_string(&line).unwrap();
                assert_eq!(
                    text,
                    serde_json::to_string(&Previous {
                        event_type: "summary",
                        summary: &summary,
                    })
                    .unwrap()
                );
                assert_eq!(Line::parse(&text).unwrap(), Some(line.clone()));
                assert_eq!(serde_json::from_str::<Line>(&text).unwrap(), line);
            }
        }
    }

    #[test]
    fn unknown_event_types_and_fields() {
        assert_eq!(
            Line::parse(r#"{"event_type":"future","x":1}"#).unwrap(),
            None
        );
        assert!(Line::parse(r#"{"no_type":1}"#).is_err());
        assert!(Line::parse(r#"{"event_type":"syscall"}"#).is_err());
        assert_eq!(
            Line::event_type(r#"{"event_type":"future","x":1}"#).as_deref(),
            Some("future")
        );
        // A field this version does not know is ignored.
        let line = Line::parse(
            r#"{"event_type":"process","timestamp":"t","pid":1,"tgid":1,"comm":"sh","action":"fork","child_pid":2,"child_tgid":2,"new":true}"#,
        )
        .unwrap();
        assert_eq!(
            line,
            Some(Line::Process(ProcessLine {
                timestamp: "t".to_owned(),
                pid: 1,
                tgid: 1,
                comm: "sh".to_owned(),
                change: ProcessChange::Fork {
                    child_pid: 2,
                    child_tgid: 2
                },
            }))
        );
    }
}
