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
        Self { denied: table(denied), log_only: table(log_only) }
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

/// True when a raw syscall return value is an error (-4095..=-1).
pub fn is_error(ret: i64) -> bool {
    (-4095..=-1).contains(&ret)
}

/// The errno name for a failed syscall's return value, e.g. `ENOENT`.
pub fn errno_name(ret: i64) -> Option<String> {
    is_error(ret).then(|| format!("{:?}", nix::errno::Errno::from_raw((-ret) as i32)))
}
