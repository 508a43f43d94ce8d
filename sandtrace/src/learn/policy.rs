//! The whole learned policy: path rules from [`super::paths`], the network only if the run
//! used it, and the base policy's deny list, syscall lists and limits, adjusted so that the
//! learned run would not be refused or killed.

use std::{collections::BTreeMap, path::PathBuf, str::FromStr as _};

use syscalls::Sysno;

use super::paths::{self, LearnedPaths, PathInput};
use crate::{
    policy::{
        ALWAYS_BLOCKED_SYSCALLS, Policy,
        glob::PathPattern,
        model::{EnvironmentRules, ProcessRules},
    },
    report::{
        activity::{Activity, SocketUse},
        log::SummaryLine,
    },
};

/// Syscalls worth a second look in any program: a learned policy logs them when the run used
/// them, so later runs show each call.
const NOTABLE_SYSCALLS: &[&str] = &[
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "bpf",
    "perf_event_open",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "chroot",
    "memfd_create",
    "userfaultfd",
    "io_uring_setup",
    "keyctl",
    "add_key",
    "request_key",
    "personality",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "capset",
];

/// Socket families that work without the network (in an isolated network namespace too).
/// Every other family whose socket the replay saw counts as network use.
const LOCAL_FAMILIES: &[&str] = &["unix", "netlink", "alg", "unknown"];

/// A syscall list entry and why it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallEntry {
    pub syscall: Sysno,
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LearnedPolicy {
    pub paths: LearnedPaths,
    /// The base policy's deny entries, as written.
    pub deny: Vec<String>,
    pub network_allowed: bool,
    /// The socket calls that decided `network_allowed`, e.g. `inet connect: 2 calls`.
    pub network_uses: Vec<String>,
    pub denied_syscalls: Vec<SyscallEntry>,
    pub log_only_syscalls: Vec<SyscallEntry>,
    /// Syscalls the run used that every policy denies: that part of the run will fail.
    pub blocked_but_used: Vec<String>,
    pub timeout_secs: u64,
    pub timeout_note: Option<String>,
    pub max_processes: Option<u32>,
    pub max_processes_note: Option<String>,
    /// The base policy's `[process]` and `[environment]`: the learned run had them, so the
    /// enforced run must too.
    pub process: ProcessRules,
    pub environment: EnvironmentRules,
}

/// What the policy is learned from.
pub struct LearnInput<'a> {
    pub activity: &'a Activity,
    pub summary: &'a SummaryLine,
    /// Most processes alive at once during the run.
    pub peak_processes: u64,
    pub launch_chain: &'a [PathBuf],
    pub base: &'a Policy,
    /// The base policy's deny rules, resolved.
    pub base_deny: &'a [PathPattern],
    /// The timeout the learned run had.
    pub timeout_secs: u64,
    pub home: Option<&'a std::path::Path>,
}

pub fn learn(input: &LearnInput<'_>) -> LearnedPolicy {
    let paths = paths::learn(&PathInput {
        files: &input.activity.files,
        launch_chain: input.launch_chain,
        deny: input.base_deny,
        home: input.home,
    });
    let network_uses: Vec<String> = input
        .activity
        .sockets
        .iter()
        .filter(|((family, _), _)| !LOCAL_FAMILIES.contains(&family.as_str()))
        .map(|((family, call), usage)| describe_socket_use(family, call, usage))
        .collect();

    let used: BTreeMap<&str, u64> = input
        .summary
        .syscall_counts
        .iter()
        .map(|c| (c.syscall.as_str(), c.count))
        .collect();
    let mut denied_syscalls = Vec::new();
    let mut log_only_syscalls: Vec<SyscallEntry> = input
        .base
        .syscalls
        .log_only
        .iter()
        .map(|s| SyscallEntry {
            syscall: s.value,
            note: None,
        })
        .collect();
    let mut blocked_but_used = Vec::new();
    for syscall in input.base.syscalls.deny.iter().map(|s| s.value) {
        match used.get(syscall.name()) {
            Some(&calls) if !ALWAYS_BLOCKED_SYSCALLS.contains(&syscall) => {
                log_only_syscalls.push(SyscallEntry {
                    syscall,
                    note: Some(format!(
                        "the base policy denies it; the run made {calls} calls"
                    )),
                });
            }
            _ => denied_syscalls.push(SyscallEntry {
                syscall,
                note: None,
            }),
        }
    }
    for syscall in ALWAYS_BLOCKED_SYSCALLS {
        if let Some(calls) = used.get(syscall.name()) {
            blocked_but_used.push(format!("{} ({calls} calls)", syscall.name()));
        }
    }
    for name in NOTABLE_SYSCALLS {
        let (Some(&calls), Ok(syscall)) = (used.get(name), Sysno::from_str(name)) else {
            continue;
        };
        let listed = log_only_syscalls.iter().any(|e| e.syscall == syscall)
            || denied_syscalls.iter().any(|e| e.syscall == syscall);
        if !listed {
            log_only_syscalls.push(SyscallEntry {
                syscall,
                note: Some(format!("notable; the run made {calls} calls")),
            });
        }
    }

    // Room for a slower machine: twice the learned run's duration, in whole tens of seconds.
    let needed_secs = (input.summary.duration_ms * 2).div_ceil(10_000) * 10;
    let (timeout_secs, timeout_note) = if needed_secs > input.timeout_secs {
        (
            needed_secs,
            Some(format!(
                "raised from {} s: the learned run took {:.1} s",
                input.timeout_secs,
                input.summary.duration_ms as f64 / 1000.0
            )),
        )
    } else {
        (input.timeout_secs, None)
    };
    let base_max = input.base.limits.max_processes.value;
    let (max_processes, max_processes_note) = match base_max {
        Some(max) if u64::from(max) < input.peak_processes => {
            let peak = u32::try_from(input.peak_processes).unwrap_or(u32::MAX);
            (
                Some(peak),
                Some(format!(
                    "raised from {max}: the learned run had {peak} processes at once"
                )),
            )
        }
        other => (other, None),
    };

    LearnedPolicy {
        paths,
        deny: input
            .base
            .filesystem
            .deny
            .iter()
            .map(|d| d.value.as_str().to_owned())
            .collect(),
        network_allowed: !network_uses.is_empty(),
        network_uses,
        denied_syscalls,
        log_only_syscalls,
        blocked_but_used,
        timeout_secs,
        timeout_note,
        max_processes,
        max_processes_note,
        process: input.base.process.clone(),
        environment: input.base.environment.clone(),
    }
}

fn describe_socket_use(family: &str, call: &str, usage: &SocketUse) -> String {
    let plural = if usage.calls == 1 { "" } else { "s" };
    let mut text = format!("{family} {call}: {} call{plural}", usage.calls);
    if usage.failed > 0 {
        text += &format!(", {} failed", usage.failed);
    }
    text
}
