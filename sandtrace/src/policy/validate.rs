//! The rules a policy's values must follow, shared by policy files and command-line flags.

use std::str::FromStr as _;

use syscalls::Sysno;

use super::diagnostic::{Diagnostic, Problem};
use super::model::{
    ALWAYS_BLOCKED_SYSCALLS, Located, MAX_TIMEOUT_SECS, NetworkList, NetworkRules, SyscallRules,
};
use super::suggest::closest;

/// The syscall called `name` on the architecture sandtrace runs on.
pub fn syscall(name: &str) -> Result<Sysno, Problem> {
    if let Ok(sysno) = Sysno::from_str(name) {
        return Ok(sysno);
    }
    let problem = Problem::new(format!(
        "unknown syscall \"{name}\" on {}",
        std::env::consts::ARCH
    ));
    Err(match closest(name, Sysno::iter().map(|s| s.name())) {
        Some(known) => problem.with_hint(format!("did you mean \"{known}\"?")),
        None => problem.with_hint("use the kernel's name for it, as in `man 2 syscalls`"),
    })
}

/// A timeout in whole seconds: at least 1, at most [`MAX_TIMEOUT_SECS`]. Messages read after
/// the name of the setting ("[limits] timeout", "--timeout").
pub fn timeout_secs(value: i128) -> Result<u64, Problem> {
    if value < 1 {
        return Err(
            Problem::new(format!("must be at least 1 second, not {value}"))
                .with_hint("it is the number of seconds after which the whole session is killed"),
        );
    }
    u64::try_from(value)
        .ok()
        .filter(|&secs| secs <= MAX_TIMEOUT_SECS)
        .ok_or_else(|| {
            Problem::new(format!(
                "must be at most one year ({MAX_TIMEOUT_SECS} seconds), not {value}"
            ))
        })
}

/// A process limit: at least 1, at most `u32::MAX`. Messages read after the name of the
/// setting.
pub fn max_processes(value: i128) -> Result<u32, Problem> {
    if value < 1 {
        return Err(Problem::new(format!("must be at least 1, not {value}"))
            .with_hint("the command itself is a process; remove the key for no limit"));
    }
    u32::try_from(value).map_err(|_| {
        Problem::new(format!("must be at most {}, not {value}", u32::MAX))
            .with_hint("remove the key for no limit")
    })
}

/// Rules across the two syscall lists: no syscall may be both denied and only logged, and
/// the always-blocked syscalls cannot be only logged.
pub fn syscall_lists(rules: &SyscallRules) -> Vec<Diagnostic> {
    let denied = |sysno: Sysno| rules.deny.iter().find(|d| d.value == sysno);
    rules
        .log_only
        .iter()
        .filter_map(|logged: &Located<Sysno>| {
            let name = logged.value.name();
            let problem = if let Some(deny) = denied(logged.value) {
                Problem::new(format!("syscall \"{name}\" is in both deny and log_only")).with_hint(
                    format!("it is denied at {}; keep it in one list only", deny.origin),
                )
            } else if ALWAYS_BLOCKED_SYSCALLS.contains(&logged.value) {
                Problem::new(format!(
                    "syscall \"{name}\" is always blocked and cannot be log_only"
                ))
                .with_hint("remove it from log_only; sandtrace denies it in every policy")
            } else {
                return None;
            };
            Some(problem.at(logged.origin.location()))
        })
        .collect()
}

/// Rules across the `[network]` keys: address rules only make sense with `allow = false`
/// (with `allow = true` every address is allowed already, and a rule that can never matter
/// is a misunderstanding worth pointing out).
pub fn network_lists(rules: &NetworkRules) -> Vec<Diagnostic> {
    if !rules.allow.value {
        return Vec::new();
    }
    let hosts = rules.allow_hosts.first().map(|first| {
        Problem::new("[network] allow_hosts cannot be used with allow = true")
            .with_hint(format!(
                "allow = true (at {}) lets the command reach every host and resolve every name; \
                 set allow = false so that only the names in allow_hosts resolve and connect",
                rules.allow.origin
            ))
            .at(first.origin.location())
    });
    NetworkList::ALL
        .into_iter()
        .filter_map(|list| {
            let first = rules.list(list).first()?;
            let problem = Problem::new(format!(
                "[network] {} has no effect with allow = true",
                list.key()
            ))
            .with_hint(format!(
                "allow = true (at {}) already allows every address; set allow = false to allow \
                 only the listed addresses, or remove {}",
                rules.allow.origin,
                list.key()
            ));
            Some(problem.at(first.origin.location()))
        })
        .chain(hosts)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_names_are_checked_with_suggestions() {
        assert_eq!(syscall("mount"), Ok(Sysno::mount));
        let problem = syscall("mout").expect_err("mout is not a syscall");
        assert_eq!(problem.hint.as_deref(), Some("did you mean \"mount\"?"));
        let problem = syscall("frobnicate_everything").expect_err("not a syscall");
        assert!(problem.hint.expect("has a hint").contains("man 2 syscalls"));
    }

    #[test]
    fn limits_are_range_checked() {
        assert!(timeout_secs(0).is_err());
        assert!(timeout_secs(-5).is_err());
        assert_eq!(timeout_secs(30), Ok(30));
        assert!(timeout_secs(i128::from(MAX_TIMEOUT_SECS) + 1).is_err());
        assert!(max_processes(0).is_err());
        assert_eq!(max_processes(64), Ok(64));
        assert!(max_processes(i128::from(u32::MAX) + 1).is_err());
    }
}
