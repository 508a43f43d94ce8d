//! What a run produces: the JSONL event log, the terminal stream, and the end-of-run summary.

pub mod jsonl;
pub mod summary;
pub mod terminal;

/// How a syscall was treated by the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallAction {
    Allow,
    /// Refused by the seccomp filter (EPERM).
    Deny,
    /// Allowed, and reported even at default verbosity.
    LogOnly,
}

impl SyscallAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::LogOnly => "log_only",
        }
    }
}

/// Classifies syscall events by the policy's `[syscalls]` lists.
#[derive(Debug, Clone, Default)]
pub struct SyscallActions {
    denied: Vec<bool>,
    log_only: Vec<bool>,
}

impl SyscallActions {
    pub fn new(denied: &[u32], log_only: &[u32]) -> Self {
        let table = |nrs: &[u32]| {
            let mut t = vec![false; sandtrace_common::event::MAX_SYSCALL_NR];
            for &nr in nrs {
                if let Some(slot) = t.get_mut(nr as usize) {
                    *slot = true;
                }
            }
            t
        };
        Self {
            denied: table(denied),
            log_only: table(log_only),
        }
    }

    pub fn of(&self, nr: u32) -> SyscallAction {
        let is = |t: &[bool]| t.get(nr as usize).copied().unwrap_or(false);
        if is(&self.denied) {
            SyscallAction::Deny
        } else if is(&self.log_only) {
            SyscallAction::LogOnly
        } else {
            SyscallAction::Allow
        }
    }
}

/// The policy's file rules as the output names them: per kind (`KIND_INDEX_*`), in the
/// kernel's rule order, the pattern as written and where it came from.
#[derive(Debug, Clone, Default)]
pub struct FileRules {
    pub by_kind: [Vec<RuleLabel>; sandtrace_common::policy::KIND_COUNT],
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleLabel {
    pub kind: &'static str,
    pub pattern: String,
    pub source: String,
}

impl FileRules {
    pub fn label(&self, rule: crate::events::RuleRef) -> Option<&RuleLabel> {
        self.by_kind.get(rule.kind)?.get(rule.index)
    }
}

/// What the outputs need to know about the policy to label events.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    pub syscalls: SyscallActions,
    pub file_rules: FileRules,
}

impl Labels {
    /// Labels for a session enforcing `policy`, with `denied` the syscall numbers the seccomp
    /// filter refuses.
    pub fn for_policy(policy: &crate::policy::EffectivePolicy, denied: &[u32]) -> Self {
        use crate::policy::PathKind;
        let log_only: Vec<u32> = policy
            .log_only_syscalls
            .iter()
            .map(|s| s.value.id() as u32)
            .collect();
        let mut file_rules = FileRules::default();
        for kind in PathKind::ALL {
            file_rules.by_kind[kind.index()] = policy
                .paths
                .rules(kind)
                .iter()
                .map(|r| RuleLabel {
                    kind: match kind {
                        PathKind::Read => "allow_read",
                        PathKind::Write => "allow_write",
                        PathKind::Exec => "allow_exec",
                        PathKind::Deny => "deny",
                    },
                    pattern: r.written.clone(),
                    source: r.origin.to_string(),
                })
                .collect();
        }
        Self {
            syscalls: SyscallActions::new(denied, &log_only),
            file_rules,
        }
    }
}

/// Names of the `KIND_*` bits in `needed`, e.g. `["read", "write"]`.
pub fn access_names(needed: u16) -> Vec<&'static str> {
    use sandtrace_common::policy::{KIND_EXEC, KIND_READ, KIND_WRITE};
    [
        (KIND_READ, "read"),
        (KIND_WRITE, "write"),
        (KIND_EXEC, "exec"),
    ]
    .into_iter()
    .filter(|(bit, _)| needed & bit != 0)
    .map(|(_, name)| name)
    .collect()
}

/// True when a raw syscall return value is an error (-4095..=-1).
pub fn is_error(ret: i64) -> bool {
    (-4095..=-1).contains(&ret)
}

/// The errno name for a failed syscall's return value, e.g. `ENOENT`.
pub fn errno_name(ret: i64) -> Option<String> {
    is_error(ret).then(|| format!("{:?}", nix::errno::Errno::from_raw((-ret) as i32)))
}
