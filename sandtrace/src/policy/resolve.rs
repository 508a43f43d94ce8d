//! From a written policy and the command-line flags to the effective policy: relative paths
//! joined to the working directory, `~` expanded, paths normalised, flags merged, lists
//! deduplicated and the always-blocked syscalls added.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sandtrace_common::network::{MAX_HOST_RULES, MAX_NET_RULES};
use sandtrace_common::policy::{KIND_COUNT, MAX_RULES_PER_KIND};
use syscalls::Sysno;

use super::capability::Capability;
use super::diagnostic::{Diagnostics, Location, Problem};
use super::glob::{PathEntry, PathPattern};
use super::hosts::HostRule;
use super::model::{
    ALWAYS_BLOCKED_SYSCALLS, EnvironmentRules, Located, NetworkList, NetworkRules, Origin,
    PathKind, Policy,
};
use super::network::{AddressMatch, AddressRule};
use super::validate;

/// The command-line flags that adjust a policy.
#[derive(Clone, Debug, Default)]
pub struct CliOverrides {
    /// `--allow-path`: each path (and what lies beneath it) becomes readable and writable.
    pub allow_paths: Vec<PathBuf>,
    /// `--allow-net`: network access is allowed whatever the policy says.
    pub allow_net: bool,
    /// `--allow-exec`: everything readable becomes executable.
    pub allow_exec: bool,
    /// `--timeout`: replaces `[limits] timeout` when given.
    pub timeout_secs: Option<u64>,
}

/// One resolved filesystem rule.
#[derive(Clone, Debug)]
pub struct PathRule {
    pub pattern: PathPattern,
    /// The entry as the user wrote it.
    pub written: String,
    pub origin: Origin,
}

/// The resolved filesystem rules, one deduplicated list per kind. A rule's index in its list
/// is what the compiled form reports as the deciding rule.
#[derive(Clone, Debug, Default)]
pub struct PathRules {
    by_kind: [Vec<PathRule>; KIND_COUNT],
}

impl PathRules {
    pub fn rules(&self, kind: PathKind) -> &[PathRule] {
        &self.by_kind[kind.index()]
    }

    /// Adds `rule` unless an equal pattern is already listed for `kind` (the first one keeps
    /// its place and origin). A rule whose literal prefix goes through a symlink is added a
    /// second time with the prefix resolved, since the kernel sees resolved paths.
    fn add(&mut self, kind: PathKind, rule: PathRule) {
        let resolved = rule.pattern.with_resolved_prefix().map(|pattern| PathRule {
            pattern,
            written: rule.written.clone(),
            origin: rule.origin.clone(),
        });
        for rule in std::iter::once(rule).chain(resolved) {
            let rules = &mut self.by_kind[kind.index()];
            if !rules.iter().any(|r| r.pattern == rule.pattern) {
                rules.push(rule);
            }
        }
    }
}

/// The policy a session enforces.
#[derive(Clone, Debug)]
pub struct EffectivePolicy {
    pub paths: PathRules,
    pub network_allowed: Located<bool>,
    /// `[network] allow_connect`, deduplicated; only in force while the network is not allowed.
    pub allow_connect: Vec<Located<AddressRule>>,
    /// `[network] allow_bind`, deduplicated; only in force while the network is not allowed.
    pub allow_bind: Vec<Located<AddressRule>>,
    /// `[network] allow_hosts`, deduplicated, at most [`MAX_HOST_RULES`]; only in force while
    /// the network is not allowed.
    pub allow_hosts: Vec<Located<HostRule>>,
    /// Sorted by number, deduplicated; includes [`ALWAYS_BLOCKED_SYSCALLS`].
    pub denied_syscalls: Vec<Located<Sysno>>,
    /// Sorted by number, deduplicated.
    pub log_only_syscalls: Vec<Located<Sysno>>,
    pub timeout: Located<Duration>,
    pub max_processes: Located<Option<u32>>,
    /// `[process] capabilities`, sorted by number, deduplicated.
    pub capabilities: Vec<Located<Capability>>,
    /// `[environment]`, as written.
    pub environment: EnvironmentRules,
    /// `[[after_exec]]`, in policy order.
    pub regimes: Vec<EffectiveRegime>,
}

/// Merges `cli` into `policy` and resolves every path against `cwd` (absolute) and `home`.
pub fn resolve(
    policy: &Policy,
    cli: &CliOverrides,
    cwd: &Path,
    home: Option<&Path>,
) -> Result<EffectivePolicy, Diagnostics> {
    let mut diagnostics = Diagnostics::new();
    // A `Policy` can be built in code as well as parsed; check it the same way.
    for diagnostic in validate::syscall_lists(&policy.syscalls) {
        diagnostics.push(diagnostic);
    }
    for diagnostic in validate::network_lists(&policy.network) {
        diagnostics.push(diagnostic);
    }

    let mut paths = PathRules::default();
    for kind in PathKind::ALL {
        for entry in policy.filesystem.entries(kind) {
            match entry.value.resolve(cwd, home) {
                Ok(pattern) => paths.add(
                    kind,
                    PathRule {
                        pattern,
                        written: entry.value.as_str().to_owned(),
                        origin: entry.origin.clone(),
                    },
                ),
                Err(problem) => diagnostics.push(problem.at(entry.origin.location())),
            }
        }
    }
    for path in &cli.allow_paths {
        match allow_path_pattern(path, cwd, home) {
            Ok((written, pattern)) => {
                for kind in [PathKind::Read, PathKind::Write] {
                    let rule = PathRule {
                        pattern: pattern.clone(),
                        written: written.clone(),
                        origin: Origin::Flag("--allow-path"),
                    };
                    paths.add(kind, rule);
                }
            }
            Err(problem) => diagnostics.push(problem.at(Location::Unpositioned)),
        }
    }
    if cli.allow_exec {
        let readable: Vec<PathRule> = [PathKind::Read, PathKind::Write]
            .into_iter()
            .flat_map(|kind| paths.rules(kind).iter().cloned())
            .collect();
        for rule in readable {
            paths.add(
                PathKind::Exec,
                PathRule {
                    origin: Origin::Flag("--allow-exec"),
                    ..rule
                },
            );
        }
    }

    for kind in PathKind::ALL {
        if let Some(excess) = paths.rules(kind).get(MAX_RULES_PER_KIND) {
            let problem = Problem::new(format!(
                "more than {MAX_RULES_PER_KIND} distinct {} rules (limit MAX_RULES_PER_KIND)",
                kind.key()
            ))
            .with_hint(format!(
                "this is rule {}; cover several paths with one parent directory or glob",
                MAX_RULES_PER_KIND + 1
            ));
            diagnostics.push(problem.at(excess.origin.location()));
        }
    }

    let network_allowed = if cli.allow_net {
        Located::new(true, Origin::Flag("--allow-net"))
    } else {
        policy.network.allow.clone()
    };

    let [allow_connect, allow_bind] = NetworkList::ALL.map(|list| {
        let mut unique: Vec<Located<AddressRule>> = Vec::new();
        for rule in policy.network.list(list) {
            if !unique.iter().any(|r| r.value == rule.value) {
                unique.push(rule.clone());
            }
        }
        unique
    });
    for (list, rules) in NetworkList::ALL
        .into_iter()
        .zip([&allow_connect, &allow_bind])
    {
        // `*` covers IPv4 and IPv6, which the kernel keeps as two rules.
        let kernel_rules = |rule: &Located<AddressRule>| match rule.value.address {
            AddressMatch::Any => 2,
            AddressMatch::Network { .. } => 1,
        };
        let mut used = 0;
        if let Some(excess) = rules.iter().find(|rule| {
            used += kernel_rules(rule);
            used > MAX_NET_RULES
        }) {
            let problem = Problem::new(format!(
                "more than {MAX_NET_RULES} [network] {} rules (limit MAX_NET_RULES; `*` counts \
                 twice, once per IP version)",
                list.key()
            ))
            .with_hint("cover several addresses with one network (10.0.0.0/8) or port range");
            diagnostics.push(problem.at(excess.origin.location()));
        }
    }

    let mut allow_hosts: Vec<Located<HostRule>> = Vec::new();
    for rule in &policy.network.allow_hosts {
        if !allow_hosts.iter().any(|r| r.value == rule.value) {
            allow_hosts.push(rule.clone());
        }
    }
    if let Some(excess) = allow_hosts.get(MAX_HOST_RULES) {
        let problem = Problem::new(format!(
            "more than {MAX_HOST_RULES} [network] allow_hosts entries (limit MAX_HOST_RULES)"
        ))
        .with_hint("cover several names of one domain with *.domain");
        diagnostics.push(problem.at(excess.origin.location()));
    }

    let always_blocked = ALWAYS_BLOCKED_SYSCALLS
        .iter()
        .map(|&sysno| Located::new(sysno, Origin::AlwaysBlocked));
    let denied_syscalls = sorted_unique(always_blocked.chain(policy.syscalls.deny.iter().cloned()));
    let log_only_syscalls = sorted_unique(policy.syscalls.log_only.iter().cloned());

    let timeout_secs = match cli.timeout_secs {
        Some(secs) => match validate::timeout_secs(i128::from(secs)) {
            Ok(secs) => Located::new(secs, Origin::Flag("--timeout")),
            Err(problem) => {
                let problem = Problem {
                    message: format!("--timeout {}", problem.message),
                    hint: problem.hint,
                };
                diagnostics.push(problem.at(Location::Unpositioned));
                policy.limits.timeout_secs.clone()
            }
        },
        None => policy.limits.timeout_secs.clone(),
    };

    let mut effective = EffectivePolicy {
        paths,
        network_allowed,
        allow_connect,
        allow_bind,
        allow_hosts,
        denied_syscalls,
        log_only_syscalls,
        timeout: Located::new(Duration::from_secs(timeout_secs.value), timeout_secs.origin),
        max_processes: policy.limits.max_processes.clone(),
        capabilities: {
            let mut unique: Vec<Located<Capability>> = Vec::new();
            for capability in &policy.process.capabilities {
                if !unique.iter().any(|c| c.value == capability.value) {
                    unique.push(capability.clone());
                }
            }
            unique.sort_by_key(|c| c.value);
            unique
        },
        environment: policy.environment.clone(),
        regimes: Vec::new(),
    };
    effective.regimes = resolve_regimes(policy, &effective, cli, cwd, home, &mut diagnostics);
    diagnostics.into_result(effective)
}

/// One `[[after_exec]]` regime, resolved.
#[derive(Clone, Debug)]
pub struct EffectiveRegime {
    pub name: String,
    pub origin: Origin,
    /// The regime's own rules: `deny`, and the allow lists of the kinds in `narrows`.
    pub paths: PathRules,
    /// Executing one of these enters the regime.
    pub programs: Vec<PathRule>,
    /// The allow lists it narrows: an access of such a kind needs a rule of the regime too.
    pub narrows: Vec<PathKind>,
    /// `None`: the base's network rules apply unchanged; otherwise only the base entries kept.
    pub network: Option<KeptNetwork>,
}

/// The base policy's network entries a regime keeps: indices into `allow_connect`,
/// `allow_bind` and `allow_hosts` of the [`EffectivePolicy`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeptNetwork {
    pub connect: Vec<usize>,
    pub bind: Vec<usize>,
    pub hosts: Vec<usize>,
}

/// Resolves the `[[after_exec]]` regimes against the resolved base policy.
fn resolve_regimes(
    policy: &Policy,
    base: &EffectivePolicy,
    cli: &CliOverrides,
    cwd: &Path,
    home: Option<&Path>,
    diagnostics: &mut Diagnostics,
) -> Vec<EffectiveRegime> {
    let mut regimes: Vec<EffectiveRegime> = Vec::new();
    for regime in &policy.after_exec {
        if regimes.iter().any(|r| r.name == regime.name.value) {
            let problem = Problem::new(format!(
                "two [[after_exec]] regimes are named \"{}\"",
                regime.name.value
            ))
            .with_hint("give each regime its own name: events name the regime that decided");
            diagnostics.push(problem.at(regime.name.origin.location()));
        }
        let resolve_entry = |entry: &Located<PathEntry>, diagnostics: &mut Diagnostics| match entry
            .value
            .resolve(cwd, home)
        {
            Ok(pattern) => Some(PathRule {
                pattern,
                written: entry.value.as_str().to_owned(),
                origin: entry.origin.clone(),
            }),
            Err(problem) => {
                diagnostics.push(problem.at(entry.origin.location()));
                None
            }
        };
        let mut paths = PathRules::default();
        for kind in PathKind::ALL {
            for entry in regime.filesystem.entries(kind) {
                if let Some(rule) = resolve_entry(entry, diagnostics) {
                    paths.add(kind, rule);
                }
            }
            if let Some(excess) = paths.rules(kind).get(MAX_RULES_PER_KIND) {
                let problem = Problem::new(format!(
                    "more than {MAX_RULES_PER_KIND} distinct {} rules in [{}] (limit \
                     MAX_RULES_PER_KIND)",
                    kind.key(),
                    regime.name.value
                ));
                diagnostics.push(problem.at(excess.origin.location()));
            }
        }
        // The programs are matched against the executed file's resolved path, like exec rules.
        let mut programs = PathRules::default();
        for entry in &regime.programs {
            if let Some(rule) = resolve_entry(entry, diagnostics) {
                programs.add(PathKind::Exec, rule);
            }
        }
        let network = regime
            .network
            .as_ref()
            .and_then(|rules| kept_network(rules, base, cli, diagnostics));
        regimes.push(EffectiveRegime {
            name: regime.name.value.clone(),
            origin: regime.at.origin.clone(),
            paths,
            programs: programs.rules(PathKind::Exec).to_vec(),
            narrows: regime.narrows.clone(),
            network,
        });
    }
    regimes
}

/// The base entries a regime's `[network]` keeps; an entry the base lacks is an error (a
/// regime only takes away). `None` when the regime leaves the network as the base has it.
fn kept_network(
    rules: &NetworkRules,
    base: &EffectivePolicy,
    cli: &CliOverrides,
    diagnostics: &mut Diagnostics,
) -> Option<KeptNetwork> {
    if cli.allow_net {
        // `--allow-net` allows the network whatever the policy says, regimes included.
        return None;
    }
    if rules.allow.value {
        if !base.network_allowed.value {
            let problem = Problem::new(
                "a regime's [network] allow = true would grant what the base policy does not \
                 (its [network] allow is false)",
            )
            .with_hint("a regime only takes away: list the base's entries it keeps, or none");
            diagnostics.push(problem.at(rules.allow.origin.location()));
        }
        return None;
    }
    let mut kept = KeptNetwork::default();
    let mut keep =
        |key: &str, found: Option<usize>, origin: &Origin, into: &mut Vec<usize>| match found {
            Some(index) => into.push(index),
            None => {
                let hint = if base.network_allowed.value {
                    "the base policy allows all network and so has no lists: a regime can only \
                     take the network away (allow = false, no entries)"
                        .to_owned()
                } else {
                    format!(
                        "a regime only takes away: add the entry to the base's [network] {key} \
                         first, or drop it here"
                    )
                };
                let problem = Problem::new(format!(
                    "a regime's [network] {key} entry would grant what the base policy does \
                     not: the base's {key} has no such entry"
                ))
                .with_hint(hint);
                diagnostics.push(problem.at(origin.location()));
            }
        };
    for (list, into) in [
        (NetworkList::Connect, &mut kept.connect),
        (NetworkList::Bind, &mut kept.bind),
    ] {
        let base_list = match list {
            NetworkList::Connect => &base.allow_connect,
            NetworkList::Bind => &base.allow_bind,
        };
        for rule in rules.list(list) {
            let found = base_list.iter().position(|r| r.value == rule.value);
            keep(list.key(), found, &rule.origin, into);
        }
    }
    for rule in &rules.allow_hosts {
        let found = base.allow_hosts.iter().position(|r| r.value == rule.value);
        keep("allow_hosts", found, &rule.origin, &mut kept.hosts);
    }
    for list in [&mut kept.connect, &mut kept.bind, &mut kept.hosts] {
        list.sort_unstable();
        list.dedup();
    }
    Some(kept)
}

fn allow_path_pattern(
    path: &Path,
    cwd: &Path,
    home: Option<&Path>,
) -> Result<(String, PathPattern), Problem> {
    let text = path.to_str().ok_or_else(|| {
        Problem::new(format!("--allow-path {}: not valid UTF-8", path.display()))
            .with_hint("policies name paths in UTF-8; rename the path or allow its parent")
    })?;
    let pattern = PathEntry::parse(text)
        .and_then(|entry| entry.resolve(cwd, home))
        .map_err(|problem| Problem {
            message: format!("--allow-path {text}: {}", problem.message),
            hint: problem.hint,
        })?;
    Ok((text.to_owned(), pattern))
}

/// Sorted by syscall number; of duplicates the first keeps its origin.
fn sorted_unique(syscalls: impl Iterator<Item = Located<Sysno>>) -> Vec<Located<Sysno>> {
    let mut unique: Vec<Located<Sysno>> = Vec::new();
    for syscall in syscalls {
        if !unique.iter().any(|s| s.value == syscall.value) {
            unique.push(syscall);
        }
    }
    unique.sort_by_key(|s| s.value.id());
    unique
}
