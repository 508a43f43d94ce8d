//! What a run produces: the JSONL event log, the terminal stream, and the end-of-run summary.

pub mod capture;
pub mod command_line;
pub mod dns;
pub mod event_log;
pub mod jsonl;
pub mod summary;
pub mod terminal;

pub mod network;
pub mod sockets;

pub use crate::events::SyscallAction;

/// The policy's file rules as the output names them: per kind (`KIND_INDEX_*`), in the
/// kernel's rule order, the pattern as written and where it came from.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FileRules {
    pub by_kind: [Vec<RuleLabel>; sandtrace_common::policy::KIND_COUNT],
    /// The same for each `[[after_exec]]` regime's own rules, in policy order.
    pub regimes: Vec<[Vec<RuleLabel>; sandtrace_common::policy::KIND_COUNT]>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleLabel {
    pub kind: &'static str,
    pub pattern: String,
    pub source: String,
}

/// A rule the session enforces only approximately, and how (Landlock, see
/// `crate::landlock::carve`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Approximated {
    #[serde(flatten)]
    pub rule: RuleLabel,
    pub how: String,
}

/// Read back from a capture's header: the kind is one of the policy's list names.
impl<'de> serde::Deserialize<'de> for RuleLabel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use crate::policy::{PathKind, model::NetworkList};
        #[derive(serde::Deserialize)]
        struct Written {
            kind: String,
            pattern: String,
            source: String,
        }
        let w = Written::deserialize(d)?;
        let kind = PathKind::ALL
            .map(PathKind::key)
            .into_iter()
            .chain(NetworkList::ALL.map(NetworkList::key))
            .chain([network::HOSTS_KIND])
            .find(|kind| *kind == w.kind)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown rule kind {:?}", w.kind)))?;
        Ok(Self {
            kind,
            pattern: w.pattern,
            source: w.source,
        })
    }
}

impl FileRules {
    pub fn label(&self, rule: crate::events::RuleRef) -> Option<&RuleLabel> {
        let by_kind = match rule.regime {
            None => &self.by_kind,
            Some(r) => self.regimes.get(r)?,
        };
        by_kind.get(rule.kind)?.get(rule.index)
    }
}

/// The labels of one set of resolved path rules, per kind.
fn path_rule_labels(
    paths: &crate::policy::resolve::PathRules,
) -> [Vec<RuleLabel>; sandtrace_common::policy::KIND_COUNT] {
    use crate::policy::PathKind;
    PathKind::ALL.map(|kind| {
        paths
            .rules(kind)
            .iter()
            .map(|r| RuleLabel {
                kind: kind.key(),
                pattern: r.written.clone(),
                source: r.origin.to_string(),
            })
            .collect()
    })
}

/// What the outputs need to know about the policy to label events; a capture's header holds
/// it, but for the names, which it stores as they change.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Labels {
    pub file_rules: FileRules,
    pub network_rules: network::NetworkRules,
    /// The names the session's resolver handed addresses out for (filled while it runs):
    /// network events name their host with it.
    #[serde(skip)]
    pub names: crate::dns::ResolvedNames,
    /// The `[[after_exec]]` regimes' names, in policy order (bit `i` of a regime mask).
    pub regime_names: Vec<String>,
}

impl Labels {
    /// Labels for a session enforcing `policy`.
    pub fn for_policy(policy: &crate::policy::EffectivePolicy) -> Self {
        let file_rules = FileRules {
            by_kind: path_rule_labels(&policy.paths),
            regimes: policy
                .regimes
                .iter()
                .map(|r| path_rule_labels(&r.paths))
                .collect(),
        };
        Self {
            file_rules,
            network_rules: network::NetworkRules::for_policy(policy),
            names: crate::dns::ResolvedNames::default(),
            regime_names: policy.regimes.iter().map(|r| r.name.clone()).collect(),
        }
    }

    /// The name of regime `index`, for events.
    pub fn regime_name(&self, index: usize) -> &str {
        self.regime_names
            .get(index)
            .map_or("unknown regime", String::as_str)
    }

    /// The names of the regimes in `mask`, in policy order.
    pub fn regimes_in(&self, mask: u32) -> Vec<&str> {
        (0..self.regime_names.len())
            .filter(|&i| mask & (1 << i) != 0)
            .map(|i| self.regime_name(i))
            .collect()
    }
}

/// Why the seccomp filter kills processes that use another syscall ABI.
pub const FOREIGN_ABI_REASON: &str = "syscalls through a foreign ABI (x32, i386) could reach \
                                      denied syscalls under other numbers";

/// The x86_64 name of an x32 syscall (x32 shares the x86_64 table below its marker bit).
pub fn foreign_syscall_name(k: &crate::events::SeccompKillRecord) -> Option<&'static str> {
    use crate::events::SyscallAbi;
    match k.abi {
        SyscallAbi::X32 => {
            crate::syscall_table::name(k.nr & !sandtrace_common::event::X32_SYSCALL_BIT)
        }
        SyscallAbi::X86_64 => crate::syscall_table::name(k.nr),
        SyscallAbi::I386 | SyscallAbi::Other(_) => None,
    }
}

/// A file decision as people read it: `open read+write`, and `exec` rather than `exec exec`
/// (an exec needs exactly the access it is named after).
pub fn operation_and_access<S: AsRef<str>>(operation: &str, access: &[S]) -> String {
    let access: Vec<&str> = access.iter().map(AsRef::as_ref).collect();
    let access = access.join("+");
    if access.is_empty() || access == operation {
        operation.to_owned()
    } else {
        format!("{operation} {access}")
    }
}

/// Names of the `KIND_*` bits in `needed`, e.g. `["read", "write"]`.
pub fn access_names(needed: u16) -> impl Iterator<Item = &'static str> {
    use sandtrace_common::policy::{KIND_EXEC, KIND_READ, KIND_WRITE};
    [
        (KIND_READ, "read"),
        (KIND_WRITE, "write"),
        (KIND_EXEC, "exec"),
    ]
    .into_iter()
    .filter(move |(bit, _)| needed & bit != 0)
    .map(|(_, name)| name)
}

/// True when a raw syscall return value is an error (-4095..=-1).
pub fn is_error(ret: i64) -> bool {
    (-4095..=-1).contains(&ret)
}

/// The errno name for a failed syscall's return value, e.g. `ENOENT`.
pub fn errno_name(ret: i64) -> Option<&'static str> {
    is_error(ret).then(|| errno_str((-ret) as i32))
}

/// The name of a positive errno value as `nix` spells it (`ENOENT`, `UnknownErrno`), from a
/// table built once: failed syscalls are frequent and their names are needed per event.
pub fn errno_str(errno: i32) -> &'static str {
    // Every errno is below this (the kernel's error returns are -4095..=-1).
    const TABLE_LEN: i32 = 4096;
    static NAMES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        (0..TABLE_LEN)
            .map(|e| format!("{:?}", nix::errno::Errno::from_raw(e)))
            .collect()
    });
    let index = if (0..TABLE_LEN).contains(&errno) {
        errno as usize
    } else {
        // Out of range is unknown, like the table's unnamed entries.
        0
    };
    &NAMES[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_are_nix_names() {
        for errno in (-3..200).chain([4095, 4096, 100_000, i32::MAX]) {
            assert_eq!(
                errno_str(errno),
                format!("{:?}", nix::errno::Errno::from_raw(errno)),
                "errno {errno}"
            );
        }
        assert_eq!(errno_name(-2), Some("ENOENT"));
        assert_eq!(errno_name(-4096), None);
        assert_eq!(errno_name(0), None);
    }

    #[test]
    fn a_decision_names_its_access_once() {
        assert_eq!(operation_and_access("exec", &["exec"]), "exec");
        assert_eq!(
            operation_and_access("open", &["read", "write"]),
            "open read+write"
        );
        assert_eq!(operation_and_access::<&str>("unlink", &[]), "unlink");
    }
}
