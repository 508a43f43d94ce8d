//! A learned policy as a commented TOML policy file.

use std::fmt::Write as _;

use super::{
    paths::{COLLAPSE_AT, LearnedRule, LeftOutWhy, Reason},
    policy::{LearnedPolicy, SyscallEntry},
};
use crate::policy::PathKind;

/// What the header says about the run.
pub struct Provenance<'a> {
    /// CMD as the user typed it.
    pub command: &'a str,
    /// The base policy file, if one was given.
    pub base: Option<&'a str>,
    pub exit_code: i32,
    pub duration_ms: u64,
    pub processes: u64,
    pub syscalls: u64,
    /// Accesses whose path the replay could not name.
    pub unresolved: u64,
}

pub fn render(p: &LearnedPolicy, from: &Provenance<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Learned by `sandtrace learn` from one run of: {}",
        one_line(from.command)
    );
    let _ = writeln!(
        out,
        "# (exit status {}, {:.2} s, {} process{}, {} syscalls; traced, nothing enforced).",
        from.exit_code,
        from.duration_ms as f64 / 1000.0,
        from.processes,
        if from.processes == 1 { "" } else { "es" },
        from.syscalls
    );
    match from.base {
        Some(base) => {
            let _ = writeln!(
                out,
                "# Base policy: {base}\n# (its deny list, syscall lists and limits are kept; the \
                 allow lists are learned)."
            );
        }
        None => out.push_str("# No base policy: nothing but what the run used is allowed.\n"),
    }
    let _ = write!(
        out,
        "#
# The allow lists hold what the run used and nothing else, as the kernel names it (symlinks
# resolved). A rule covers the path it names and everything beneath it. A directory in which
# the run used {COLLAPSE_AT} or more entries is allowed whole, except /, top-level directories and
# your home directory; a directory the run created is writable whole. CMD itself (and its #!
# interpreters) may always run. See \"Learning a policy\" in the README.
#
# Review it, then: sandtrace policy check FILE; sandtrace run --policy FILE -- CMD
"
    );
    if from.unresolved > 0 {
        let _ = writeln!(
            out,
            "#\n# Warning: {} accesses could not be named from the trace (see `sandtrace report` \
             of the log); the run may need rules for them.",
            from.unresolved
        );
    }

    out.push_str("\n[filesystem]\n");
    for kind in [PathKind::Read, PathKind::Write, PathKind::Exec] {
        rule_list(&mut out, kind.key(), p.paths.rules(kind));
    }
    if p.deny.is_empty() {
        out.push_str("deny = []\n");
    } else {
        out.push_str("# From the base policy: denied even where an allow rule covers them.\n");
        let entries: Vec<(String, String)> =
            p.deny.iter().map(|d| (d.clone(), String::new())).collect();
        array(&mut out, "deny", &entries);
    }
    let left_out: Vec<String> = p
        .paths
        .left_out
        .iter()
        .map(|l| {
            let why = match l.why {
                LeftOutWhy::Denied => "a deny rule covers it",
                LeftOutWhy::Root => "a rule for / would allow everything",
                LeftOutWhy::TooLong => "longer than a policy can decide on",
            };
            let path = one_line(&l.path.to_string_lossy());
            format!("#   {} {path} ({why})", access_word(l.kind))
        })
        .collect();
    if !left_out.is_empty() {
        out.push_str(
            "# Not allowed although the run used them, so these accesses will be denied:\n",
        );
        for line in left_out {
            let _ = writeln!(out, "{line}");
        }
    }

    out.push_str("\n[network]\n");
    if p.network_allowed {
        let _ = writeln!(
            out,
            "# The run used the network ({}); the trace does not record addresses.",
            p.network_uses.join("; ")
        );
    } else {
        out.push_str("# The run made no network connection: it runs without a network.\n");
    }
    let _ = writeln!(out, "allow = {}", p.network_allowed);

    out.push_str("\n[syscalls]\n");
    if !p.blocked_but_used.is_empty() {
        let _ = writeln!(
            out,
            "# The run used syscalls that every policy denies, so that part of it will fail: {}.",
            p.blocked_but_used.join(", ")
        );
    }
    array(&mut out, "deny", &syscall_entries(&p.denied_syscalls));
    array(&mut out, "log_only", &syscall_entries(&p.log_only_syscalls));

    out.push_str("\n[limits]\n");
    if let Some(note) = &p.timeout_note {
        let _ = writeln!(out, "# {note}");
    }
    let _ = writeln!(out, "timeout = {}", p.timeout_secs);
    if let Some(note) = &p.max_processes_note {
        let _ = writeln!(out, "# {note}");
    }
    if let Some(max) = p.max_processes {
        let _ = writeln!(out, "max_processes = {max}");
    }
    // From the base policy: the learned run was run this way, so the enforced run must be.
    out.push_str(&crate::policy::render::process_sections_to_toml(
        &p.process,
        &p.environment,
    ));
    out
}

/// `text` with control characters escaped, so that it fits in one comment line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn access_word(kind: PathKind) -> &'static str {
    match kind {
        PathKind::Read => "read",
        PathKind::Write => "write",
        PathKind::Exec => "exec",
        PathKind::Deny => "deny",
    }
}

fn rule_list(out: &mut String, key: &str, rules: &[LearnedRule]) {
    let entries: Vec<(String, String)> = rules.iter().map(|r| (r.entry(), explain(r))).collect();
    array(out, key, &entries);
}

fn explain(rule: &LearnedRule) -> String {
    let n = rule.covers;
    let beneath = |what: &str| {
        if n > 1 {
            format!("{what} ({n} paths)")
        } else {
            what.to_owned()
        }
    };
    match rule.reason {
        Reason::Read => "read".to_owned(),
        Reason::Written => "written".to_owned(),
        Reason::Gone => "written; no longer exists (a new name here would be denied)".to_owned(),
        Reason::Directory => "directory the run opened (itself only)".to_owned(),
        Reason::CreatedDirectory => beneath("directory the run created"),
        Reason::Temporary => beneath("temporary files created and removed here"),
        Reason::Collapsed => format!("{n} paths used in this directory"),
        Reason::Executed => "executed".to_owned(),
        Reason::Interpreter => "interpreter of an executed script".to_owned(),
        Reason::Cut => beneath("beneath: a path longer than the trace records"),
        Reason::Unwritable => beneath("beneath: a name a policy cannot spell"),
    }
}

fn syscall_entries(entries: &[SyscallEntry]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|e| {
            (
                e.syscall.name().to_owned(),
                e.note.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// `key = [...]` with one entry a line, each followed by its comment (aligned).
fn array(out: &mut String, key: &str, entries: &[(String, String)]) {
    if entries.is_empty() {
        let _ = writeln!(out, "{key} = []");
        return;
    }
    let quoted: Vec<String> = entries
        .iter()
        .map(|(value, _)| format!("{},", toml::Value::String(value.clone())))
        .collect();
    let width = quoted.iter().map(|q| q.chars().count()).max().unwrap_or(0);
    let _ = writeln!(out, "{key} = [");
    for (q, (_, comment)) in quoted.iter().zip(entries) {
        if comment.is_empty() {
            let _ = writeln!(out, "    {q}");
        } else {
            let _ = writeln!(out, "    {q:width$}  # {comment}");
        }
    }
    out.push_str("]\n");
}
