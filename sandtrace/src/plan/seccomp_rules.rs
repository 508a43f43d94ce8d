//! Which syscalls the seccomp filter refuses, and why each one is there.

use crate::{policy::EffectivePolicy, syscall_table};

use super::{PlanError, seccomp_baseline};

/// Syscalls that would let a process change what paths mean (mounts, a new root) or reach a
/// file without a path check (file handles; `uselib`, whose exec-mode open no exec hook
/// decides). Every enforcing session refuses them whatever the policy says: the path rules
/// could not be trusted otherwise. (`pivot_root` belongs here too; it is always blocked.)
pub const PATH_INTEGRITY: &[&str] = &[
    "mount",
    "umount2",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsmount",
    "fspick",
    "mount_setattr",
    "chroot",
    "open_by_handle_at",
    "uselib",
];

/// Syscalls that would let a root process detach or replace sandtrace's own kernel programs
/// (the network and path rules, the event stream): `bpf` can fetch any BPF link by id and
/// detach it.
pub const PROGRAM_INTEGRITY: &[&str] = &["bpf"];

/// How the filter refuses a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// Fails with `EPERM`.
    Eperm,
    /// Fails with `ENOSYS`, as if the kernel lacked it, so that libc falls back to an older
    /// call the filter can inspect.
    Enosys,
}

/// Why a syscall is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompReason {
    /// `[syscalls] deny`; where the entry came from.
    Policy(String),
    /// Denied in every policy ([`crate::policy::ALWAYS_BLOCKED_SYSCALLS`]).
    AlwaysBlocked,
    /// [`PATH_INTEGRITY`].
    PathIntegrity,
    /// [`PROGRAM_INTEGRITY`].
    ProgramIntegrity,
    /// The seccomp baseline of every mode ([`super::seccomp_baseline`]), and why.
    Baseline(&'static str),
    /// `clone3`: its flags live in memory, where the filter cannot see `CLONE_INTO_CGROUP`
    /// (which would start a child outside the session cgroup).
    CgroupEscape,
}

impl SeccompReason {
    /// One line for `policy check` and the README.
    pub fn describe(&self) -> String {
        match self {
            SeccompReason::Policy(origin) => format!("[syscalls] deny ({origin})"),
            SeccompReason::AlwaysBlocked => "always blocked".to_owned(),
            SeccompReason::PathIntegrity => {
                "path integrity: could change what paths mean or open files without a path check"
                    .to_owned()
            }
            SeccompReason::ProgramIntegrity => {
                "program integrity: could detach sandtrace's kernel programs".to_owned()
            }
            SeccompReason::Baseline(why) => format!("baseline: {why}"),
            SeccompReason::CgroupEscape => {
                "CLONE_INTO_CGROUP could start a child outside the session (ENOSYS: libc falls \
                 back to clone)"
                    .to_owned()
            }
        }
    }
}

/// One syscall the filter refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompRule {
    pub nr: u32,
    pub name: &'static str,
    pub refusal: Refusal,
    pub reason: SeccompReason,
}

/// The syscalls a session's filter refuses, sorted by number, one rule each. `policy` is
/// `None` when tracing only: then the always-blocked syscalls and the baseline are all.
/// Without BPF LSM (`no_lsm`) io_uring is refused too. The first reason in this order wins:
/// policy, always blocked, path integrity, program integrity, baseline; `clone3` always
/// fails with `ENOSYS`.
pub fn rules(
    policy: Option<&EffectivePolicy>,
    no_lsm: bool,
) -> Result<Vec<SeccompRule>, PlanError> {
    let always: Vec<u32> = crate::policy::ALWAYS_BLOCKED_SYSCALLS
        .iter()
        .map(|s| s.id() as u32)
        .collect();
    let mut rules: Vec<SeccompRule> = Vec::new();
    let mut add = |nr: u32, reason: SeccompReason| -> Result<(), PlanError> {
        if rules.iter().any(|r| r.nr == nr) {
            return Ok(());
        }
        let name = syscall_table::name(nr).ok_or_else(|| {
            PlanError::Seccomp(format!(
                "cannot deny syscall number {nr}: it is not an x86_64 syscall"
            ))
        })?;
        let refusal = if name == "clone3" {
            Refusal::Enosys
        } else {
            Refusal::Eperm
        };
        rules.push(SeccompRule {
            nr,
            name,
            refusal,
            reason,
        });
        Ok(())
    };
    for syscall in policy.iter().flat_map(|p| &p.denied_syscalls) {
        let nr = syscall.value.id() as u32;
        let reason = if always.contains(&nr) {
            SeccompReason::AlwaysBlocked
        } else {
            SeccompReason::Policy(syscall.origin.to_string())
        };
        add(nr, reason)?;
    }
    for &nr in &always {
        add(nr, SeccompReason::AlwaysBlocked)?;
    }
    let number = |name: &str| syscall_table::number(name).expect("an x86_64 syscall");
    if policy.is_some() {
        for name in PATH_INTEGRITY {
            add(number(name), SeccompReason::PathIntegrity)?;
        }
        for name in PROGRAM_INTEGRITY {
            add(number(name), SeccompReason::ProgramIntegrity)?;
        }
    }
    for (names, why) in seccomp_baseline::UNCONDITIONAL {
        for name in *names {
            add(number(name), SeccompReason::Baseline(why))?;
        }
    }
    if no_lsm {
        add(
            number(seccomp_baseline::IO_URING),
            SeccompReason::Baseline(seccomp_baseline::IO_URING_WHY),
        )?;
    }
    add(number("clone3"), SeccompReason::CgroupEscape)?;
    rules.sort_by_key(|r| r.nr);
    Ok(rules)
}
