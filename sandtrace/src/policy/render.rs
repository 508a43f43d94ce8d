//! Policies as text: a policy as TOML that parses back to the same policy, and the effective
//! policy as a report saying where each rule came from.

use std::fmt::Write as _;
use std::path::Path;

use sandtrace_common::policy::{MAX_CLASSES, MAX_STATES};
use syscalls::Sysno;

use super::compile::CompiledPaths;
use super::environment::BASE_PASSED;
use super::glob::PathPattern;
use super::model::{
    ALWAYS_BLOCKED_SYSCALLS, EnvironmentRules, Located, NetworkList, NetworkRules, PathKind,
    Policy, ProcessRules, Regime,
};
use super::resolve::{EffectivePolicy, EffectiveRegime};
use crate::plan::Mechanisms;

/// `policy` as a complete TOML policy file (every field written out, defaults included),
/// headed by a comment naming `title`.
pub fn policy_to_toml(policy: &Policy, title: &str) -> String {
    let mut out = String::new();
    let always: Vec<&str> = ALWAYS_BLOCKED_SYSCALLS
        .iter()
        .map(syscalls::Sysno::name)
        .collect();
    let _ = writeln!(out, "# {title}");
    let _ = writeln!(
        out,
        "# These syscalls are denied in every policy, listed or not: {}.",
        always.join(", ")
    );
    out.push_str("\n[filesystem]\n");
    for kind in PathKind::ALL {
        let entries = policy.filesystem.entries(kind);
        let texts: Vec<&str> = entries.iter().map(|e| e.value.as_str()).collect();
        write_string_array(&mut out, kind.key(), &texts);
    }
    out.push_str("\n[network]\n");
    write_network(&mut out, &policy.network);
    out.push_str("\n[syscalls]\n");
    write_string_array(&mut out, "deny", &syscall_names(&policy.syscalls.deny));
    write_string_array(
        &mut out,
        "log_only",
        &syscall_names(&policy.syscalls.log_only),
    );
    let _ = writeln!(
        out,
        "\n[limits]\ntimeout = {}",
        policy.limits.timeout_secs.value
    );
    match policy.limits.max_processes.value {
        Some(n) => {
            let _ = writeln!(out, "max_processes = {n}");
        }
        None => out.push_str("# max_processes is not set: no limit on the number of processes.\n"),
    }
    out.push_str(&process_sections_to_toml(
        &policy.process,
        &policy.environment,
    ));
    for regime in &policy.after_exec {
        write_regime(&mut out, regime);
    }
    out
}

/// The keys of a `[network]` table.
fn write_network(out: &mut String, network: &NetworkRules) {
    let _ = writeln!(out, "allow = {}", network.allow.value);
    let address_lists = NetworkList::ALL.map(|list| {
        let rules = network.list(list).iter();
        (
            list.key(),
            rules.map(|r| r.value.to_string()).collect::<Vec<_>>(),
        )
    });
    let hosts = network.allow_hosts.iter();
    let hosts = ("allow_hosts", hosts.map(|r| r.value.to_string()).collect());
    for (key, rules) in address_lists.into_iter().chain([hosts]) {
        // With allow = true the lists must be empty; leave them out rather than write an
        // invalid policy.
        if !network.allow.value || !rules.is_empty() {
            let texts: Vec<&str> = rules.iter().map(String::as_str).collect();
            write_string_array(out, key, &texts);
        }
    }
}

/// One `[[after_exec]]` regime: only the lists it gives (an omitted allow list keeps the
/// base's, which is not the same as an empty one).
fn write_regime(out: &mut String, regime: &Regime) {
    out.push_str("\n[[after_exec]]\n");
    let _ = writeln!(
        out,
        "name = {}",
        toml::Value::String(regime.name.value.clone())
    );
    let programs: Vec<&str> = regime.programs.iter().map(|e| e.value.as_str()).collect();
    write_string_array(out, "programs", &programs);
    out.push_str("\n[after_exec.filesystem]\n");
    for kind in PathKind::ALL {
        if kind == PathKind::Deny || regime.narrows.contains(&kind) {
            let entries = regime.filesystem.entries(kind);
            let texts: Vec<&str> = entries.iter().map(|e| e.value.as_str()).collect();
            write_string_array(out, kind.key(), &texts);
        }
    }
    if let Some(network) = &regime.network {
        out.push_str("\n[after_exec.network]\n");
        write_network(out, network);
    }
}

/// The `[process]` and `[environment]` sections as TOML (`policy show`, `learn`).
pub fn process_sections_to_toml(process: &ProcessRules, environment: &EnvironmentRules) -> String {
    let mut out = String::from(
        "\n[process]\n# Every capability not listed here is removed before the command starts.\n",
    );
    let capabilities: Vec<&str> = process
        .capabilities
        .iter()
        .map(|c| c.value.name())
        .collect();
    write_string_array(&mut out, "capabilities", &capabilities);
    let _ = writeln!(
        out,
        "\n[environment]\n# Passed besides these, every other variable is removed: {}.",
        BASE_PASSED.join(", ")
    );
    let pass: Vec<String> = environment
        .pass
        .iter()
        .map(|p| p.value.to_string())
        .collect();
    let pass: Vec<&str> = pass.iter().map(String::as_str).collect();
    write_string_array(&mut out, "pass", &pass);
    let set: Vec<String> = environment
        .set
        .iter()
        .map(|a| {
            let (name, value) = &a.value;
            format!(
                "{} = {}",
                toml_key(name),
                toml::Value::String(value.clone())
            )
        })
        .collect();
    if set.is_empty() {
        out.push_str("set = {}\n");
    } else {
        let _ = writeln!(out, "set = {{ {} }}", set.join(", "));
    }
    out
}

/// `name` as a TOML key: bare when it may be, quoted otherwise.
fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        name.to_owned()
    } else {
        toml::Value::String(name.to_owned()).to_string()
    }
}

fn syscall_names(syscalls: &[Located<Sysno>]) -> Vec<&'static str> {
    syscalls.iter().map(|s| s.value.name()).collect()
}

fn write_string_array(out: &mut String, key: &str, items: &[&str]) {
    if items.is_empty() {
        let _ = writeln!(out, "{key} = []");
        return;
    }
    let _ = writeln!(out, "{key} = [");
    for item in items {
        let _ = writeln!(out, "    {},", toml::Value::String((*item).to_owned()));
    }
    out.push_str("]\n");
}

/// The report `sandtrace policy check` prints: every effective rule with its origin (and, given
/// `mechanisms`, what enforces it on this kernel), the syscall lists with numbers, the limits,
/// and the size of the compiled automaton.
pub fn effective_report(
    policy: &EffectivePolicy,
    compiled: &CompiledPaths,
    mechanisms: Option<&Mechanisms>,
) -> String {
    let by = |pick: &dyn Fn(&Mechanisms) -> String| mechanisms.map(pick);
    let mut rows = vec![Row::Heading(
        "filesystem (deny overrides every allow; allow_write also grants read; unlisted paths \
         are denied)"
            .to_owned(),
    )];
    for kind in PathKind::ALL {
        let rules = policy.paths.rules(kind);
        if rules.is_empty() {
            rows.push(Row::Heading(format!("  {}: none", kind.key())));
            continue;
        }
        rows.push(Row::Heading(format!("  {}:", kind.key())));
        for rule in rules {
            let mut what = rule.pattern.to_string();
            if what != rule.written {
                let _ = write!(what, "  (written {:?})", rule.written);
            }
            rows.push(Row::Item {
                what: format!("    {what}"),
                origin: rule.origin.to_string(),
                mechanism: by(&|m| m.file[kind.index()].clone()),
            });
            if let Some(note) = symlink_note(&rule.pattern) {
                rows.push(Row::Heading(format!("      note: {note}")));
            }
        }
    }
    rows.push(Row::Item {
        what: format!(
            "network: {}",
            if policy.network_allowed.value {
                "allowed"
            } else if policy.allow_connect.is_empty()
                && policy.allow_bind.is_empty()
                && policy.allow_hosts.is_empty()
            {
                "blocked"
            } else {
                "blocked except what these rules allow"
            }
        ),
        origin: policy.network_allowed.origin.to_string(),
        mechanism: by(&|m| m.network.clone()),
    });
    for ((list, rules), mechanism) in NetworkList::ALL
        .into_iter()
        .zip([&policy.allow_connect, &policy.allow_bind])
        .zip([
            by(&|m| m.allow_connect.clone()),
            by(&|m| m.allow_bind.clone()),
        ])
    {
        if rules.is_empty() {
            rows.push(Row::Heading(format!("  {}: none", list.key())));
            continue;
        }
        let ignored = if policy.network_allowed.value {
            " (not needed: the network is allowed)"
        } else {
            ""
        };
        rows.push(Row::Heading(format!("  {}:{ignored}", list.key())));
        for rule in rules {
            rows.push(Row::Item {
                what: format!("    {}", rule.value),
                origin: rule.origin.to_string(),
                mechanism: mechanism.clone(),
            });
        }
    }
    if policy.allow_hosts.is_empty() {
        rows.push(Row::Heading("  allow_hosts: none".to_owned()));
    } else {
        let ignored = if policy.network_allowed.value {
            " (not needed: the network is allowed)"
        } else {
            ""
        };
        rows.push(Row::Heading(format!("  allow_hosts:{ignored}")));
        for rule in &policy.allow_hosts {
            rows.push(Row::Item {
                what: format!("    {}", rule.value),
                origin: rule.origin.to_string(),
                mechanism: by(&|m| m.allow_hosts.clone()),
            });
        }
    }
    for (title, list, denied) in [
        ("syscalls denied (EPERM)", &policy.denied_syscalls, true),
        ("syscalls logged only", &policy.log_only_syscalls, false),
    ] {
        if list.is_empty() {
            rows.push(Row::Heading(format!("{title}: none")));
            continue;
        }
        rows.push(Row::Heading(format!("{title}:")));
        for syscall in list {
            let nr = syscall.value.id() as u32;
            rows.push(Row::Item {
                what: format!("  {} ({})", syscall.value.name(), syscall.value.id()),
                origin: syscall.origin.to_string(),
                mechanism: by(&|m| {
                    if denied {
                        m.refusing(nr)
                            .unwrap_or("not enforced: not in the filter")
                            .to_owned()
                    } else {
                        m.log_only.clone()
                    }
                }),
            });
        }
    }
    rows.push(Row::Item {
        what: format!("timeout: {} s", policy.timeout.value.as_secs()),
        origin: policy.timeout.origin.to_string(),
        mechanism: by(&|m| m.timeout.clone()),
    });
    rows.push(Row::Item {
        what: match policy.max_processes.value {
            Some(n) => format!("max_processes: {n}"),
            None => "max_processes: unlimited".to_owned(),
        },
        origin: policy.max_processes.origin.to_string(),
        mechanism: by(&|m| m.max_processes.clone()),
    });
    if policy.capabilities.is_empty() {
        rows.push(Row::Heading(
            "process: every capability removed (also for root)".to_owned(),
        ));
    } else {
        rows.push(Row::Heading(
            "process: capabilities kept (every other one is removed):".to_owned(),
        ));
        for capability in &policy.capabilities {
            rows.push(Row::Item {
                what: format!("  {}: {}", capability.value, capability.value.allows()),
                origin: capability.origin.to_string(),
                mechanism: by(&|m| m.capabilities.clone()),
            });
        }
    }
    rows.push(Row::Heading(format!(
        "environment: passed from the caller: {} (every other variable is removed)",
        BASE_PASSED.join(", ")
    )));
    for pattern in &policy.environment.pass {
        rows.push(Row::Item {
            what: format!("  pass {}", pattern.value),
            origin: pattern.origin.to_string(),
            mechanism: None,
        });
    }
    for assignment in &policy.environment.set {
        rows.push(Row::Item {
            what: format!("  set {}", assignment.value.0),
            origin: assignment.origin.to_string(),
            mechanism: None,
        });
    }
    for regime in &policy.regimes {
        regime_rows(&mut rows, regime, policy, by(&|m| m.after_exec.clone()));
    }
    rows.push(Row::Heading(format!(
        "compiled path automaton: {} states, {} byte classes (limits {MAX_STATES} and {MAX_CLASSES})",
        compiled.n_states(),
        compiled.n_classes()
    )));

    if let Some(m) = mechanisms {
        rows.push(Row::Heading(format!(
            "\nenforcement on this kernel: {}",
            m.mode
        )));
        rows.push(Row::Heading(format!("the command runs as: {}", m.run_as)));
        if !m.baseline.is_empty() {
            rows.push(Row::Heading(
                "also refused by seccomp (baseline) in every session of this mode, not policy \
                 rules:"
                    .to_owned(),
            ));
            let mut reasons: Vec<&str> = Vec::new();
            for (_, why) in &m.baseline {
                if !reasons.contains(&why.as_str()) {
                    reasons.push(why);
                }
            }
            for why in reasons {
                let mut names: Vec<&str> = m
                    .baseline
                    .iter()
                    .filter(|(_, w)| w == why)
                    .map(|(name, _)| name.as_str())
                    .collect();
                names.sort_unstable();
                rows.push(Row::Heading(format!("  {}: {why}", names.join(", "))));
            }
        }
        for (hook, why) in &m.missing_hooks {
            rows.push(Row::Heading(format!(
                "BPF LSM hook {hook} missing on this kernel: {why}"
            )));
        }
        // The path rules' own rows say so already.
        for (rule, why) in m.unenforced.iter().filter(|(rule, _)| !is_path_rule(rule)) {
            rows.push(Row::Heading(format!("not enforced: {rule}: {why}")));
        }
        for (rule, how) in &m.approximated {
            rows.push(Row::Heading(format!("approximated: {rule}: {how}")));
        }
    }

    let width = |pick: fn(&Row) -> Option<usize>| rows.iter().filter_map(pick).max().unwrap_or(0);
    let what_width = width(|row| match row {
        Row::Item { what, .. } => Some(what.chars().count()),
        Row::Heading(_) => None,
    });
    let origin_width = width(|row| match row {
        Row::Item { origin, .. } => Some(origin.chars().count()),
        Row::Heading(_) => None,
    });
    let mut out = String::new();
    for row in &rows {
        let _ = match row {
            Row::Heading(text) => writeln!(out, "{text}"),
            Row::Item {
                what,
                origin,
                mechanism: None,
            } => writeln!(out, "{what:what_width$}  {origin}"),
            Row::Item {
                what,
                origin,
                mechanism: Some(mechanism),
            } => writeln!(
                out,
                "{what:what_width$}  {origin:origin_width$}  {mechanism}"
            ),
        };
    }
    out
}

/// The rows of one `[[after_exec]]` regime in the effective report.
fn regime_rows(
    rows: &mut Vec<Row>,
    regime: &EffectiveRegime,
    policy: &EffectivePolicy,
    mechanism: Option<String>,
) {
    rows.push(Row::Item {
        what: format!(
            "after_exec \"{}\": the base policy's rules, and these on top (they only take away)",
            regime.name
        ),
        origin: regime.origin.to_string(),
        mechanism,
    });
    rows.push(Row::Heading("  entered by executing:".to_owned()));
    for rule in &regime.programs {
        rows.push(Row::Item {
            what: format!("    {}", rule.pattern),
            origin: rule.origin.to_string(),
            mechanism: None,
        });
    }
    for kind in PathKind::ALL {
        let rules = regime.paths.rules(kind);
        let heading = match kind {
            PathKind::Deny if rules.is_empty() => continue,
            PathKind::Deny => "  deny (besides the base's):".to_owned(),
            _ if !regime.narrows.contains(&kind) => continue,
            _ => format!(
                "  {} (narrowed: needs the base's and one of these):",
                kind.key()
            ),
        };
        rows.push(Row::Heading(heading));
        for rule in rules {
            rows.push(Row::Item {
                what: format!("    {}", rule.pattern),
                origin: rule.origin.to_string(),
                mechanism: None,
            });
        }
    }
    let network = match &regime.network {
        None => "  network: as the base policy".to_owned(),
        Some(kept) => {
            let mut entries: Vec<String> = Vec::new();
            entries.extend(
                kept.connect
                    .iter()
                    .map(|&i| format!("allow_connect {}", policy.allow_connect[i].value)),
            );
            entries.extend(
                kept.bind
                    .iter()
                    .map(|&i| format!("allow_bind {}", policy.allow_bind[i].value)),
            );
            entries.extend(
                kept.hosts
                    .iter()
                    .map(|&i| format!("allow_hosts {}", policy.allow_hosts[i].value)),
            );
            if entries.is_empty() {
                "  network: none (no connect, send, bind or DNS query is allowed)".to_owned()
            } else {
                format!("  network: only {}", entries.join(", "))
            }
        }
    };
    rows.push(Row::Heading(network));
}

fn is_path_rule(rule: &str) -> bool {
    PathKind::ALL
        .iter()
        .any(|kind| rule.starts_with(&format!("{} ", kind.key())))
}

enum Row {
    Heading(String),
    Item {
        what: String,
        origin: String,
        /// What enforces the rule on this kernel, when known.
        mechanism: Option<String>,
    },
}

/// The kernel matches resolved paths (no symlinks): say so when a rule's literal prefix is
/// a symlink, e.g. `/lib64` on merged-/usr systems.
fn symlink_note(pattern: &PathPattern) -> Option<String> {
    let prefix = pattern.literal_prefix();
    let resolved = std::fs::canonicalize(&prefix).ok()?;
    (resolved != prefix && prefix != Path::new("/")).then(|| {
        format!(
            "{} goes through a symlink (to {} now); the kernel checks resolved paths, so the \
             rule is also applied to the resolved spelling",
            prefix.display(),
            resolved.display()
        )
    })
}
