//! The session plan: one pure stage that decides everything a run applies.
//!
//! [`SessionPlan::new`] lowers the effective policy, the run's flags and what the kernel offers
//! ([`KernelFeatures`], probed separately in [`features`]) into one object: the seccomp rules
//! with why each is there, the kernel programs to attach, the network rules, the limits, how
//! CMD's process is run ([`process`]: its user, capabilities and environment, gathered by
//! [`accounts`] like the features), and the rules this session cannot enforce with the
//! reason. It makes no syscall and touches no kernel object, so every mode and policy can be
//! tested without root or BPF; the session ([`crate::session`]) only carries the plan out, and
//! `sandtrace policy check` prints it ([`Mechanisms`]).

pub mod accounts;
pub mod features;
mod mechanisms;
pub mod process;
mod seccomp_baseline;
mod seccomp_rules;

use std::{path::PathBuf, time::Duration};

use sandtrace_common::{
    config::{
        FLAG_BASE_NETWORK_OPEN, FLAG_DNS_CAPTURE, FLAG_ENFORCE_FILES, FLAG_EXEC_UNRESTRICTED,
        FLAG_FILE_EVENTS_ALL, FLAG_FILE_REFUSALS, FLAG_NETWORK_EVENTS_ALL, FLAG_REGIMES,
        FLAG_SESSION_DNS, FLAG_SYSCALL_EVENTS, REGIME_NET_RESTRICTED, RegimeConfig,
    },
    event::syscall_action,
    network::NET_LIST_COUNT,
    policy::{KIND_ENTER, KIND_EXEC},
};

pub use features::{KernelFeatures, PidsController};
pub use mechanisms::Mechanisms;
pub use process::{Identity, ProcessFlags, ProcessInputs, ProcessPlan};
pub use seccomp_baseline::{ArgCheck, ArgRule};
pub use seccomp_rules::{Refusal, SeccompReason, SeccompRule};

use crate::{
    network::NetworkRules,
    output::{Labels, RuleLabel, terminal::Verbosity},
    policy::{CompiledPaths, PathDecision, PreparedPolicy, hosts::HostRule},
};

/// How much of the policy a session enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Every rule, the path rules with BPF LSM.
    Enforce,
    /// `--allow-degraded` on a kernel without BPF LSM (the reason): everything that works
    /// without it.
    Degraded(String),
    /// `--trace-only`: nothing is enforced.
    TraceOnly,
}

impl Mode {
    /// The name the summary and the event log use.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Degraded(_) => "degraded",
            Mode::TraceOnly => "trace-only",
        }
    }
}

/// The run's flags that shape the plan (the rest of `sandtrace run`'s flags are in
/// [`RunOptions`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModeFlags {
    pub trace_only: bool,
    pub allow_degraded: bool,
}

/// What the user asked `sandtrace run` for, without the command-line parser's types.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub policy_file: Option<PathBuf>,
    pub overrides: crate::policy::CliOverrides,
    pub mode: ModeFlags,
    pub output: Option<PathBuf>,
    /// The binary capture (`--record`).
    pub record: Option<PathBuf>,
    pub verbosity: Verbosity,
    pub no_color: bool,
    pub follow_forks: bool,
    pub ring_buffer_bytes: u32,
    /// Who CMD runs as, its capabilities and environment.
    pub process: ProcessFlags,
    pub command: Vec<std::ffi::OsString>,
}

/// Why no session can be planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// BPF LSM is missing (why) and `--allow-degraded` was not given; the kernel's Landlock
    /// ABI, which `--allow-degraded` would enforce the filesystem rules with.
    NeedsBpfLsm(String, Option<u32>),
    /// A rule the policy sets cannot be enforced on this host; refusing is safer than
    /// running without it.
    Unenforceable(String),
    /// The seccomp rules could not be put together (an unknown syscall number).
    Seccomp(String),
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::NeedsBpfLsm(why, landlock) => write!(
                f,
                "cannot enforce the policy: BPF LSM is not available on this kernel: {why}\n  \
                 hint: --allow-degraded enforces {} and the network, syscall and process \
                 rules (it lists what it approximates before the command starts); \
                 --trace-only traces without enforcing; the README shows how to run sandtrace \
                 in the project's BPF-LSM VM",
                match landlock {
                    Some(abi) => format!(
                        "the filesystem rules here with Landlock ABI {abi} (deny rules carved \
                         out of the allowed trees at start)"
                    ),
                    None => "no filesystem rule here (Landlock is not available either)".to_owned(),
                }
            ),
            PlanError::Unenforceable(why) | PlanError::Seccomp(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for PlanError {}

/// The seccomp filter a session installs in CMD's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompPlan {
    /// Syscalls refused whatever their arguments: sorted by number, one rule per syscall.
    pub rules: Vec<SeccompRule>,
    /// The baseline's syscalls refused for some arguments (sorted by number); the filter
    /// leaves out those `rules` refuse anyway.
    pub arg_rules: Vec<ArgRule>,
}

impl SeccompPlan {
    /// The filter of a session: `policy` is `None` when tracing only.
    fn new(
        policy: Option<&crate::policy::EffectivePolicy>,
        no_lsm: bool,
    ) -> Result<Self, PlanError> {
        Ok(Self {
            rules: seccomp_rules::rules(policy, no_lsm)?,
            arg_rules: seccomp_baseline::arg_rules(),
        })
    }
}

/// What the BPF LSM programs enforce.
#[derive(Debug, Clone)]
pub struct PathEnforcement {
    pub paths: CompiledPaths,
    /// Every exec is allowed, so running the dynamic loader directly is too.
    pub exec_unrestricted: bool,
    /// Optional hooks ([`crate::ebpf::OPTIONAL_LSM_PROGRAMS`]) this kernel lacks.
    pub missing_hooks: Vec<&'static str>,
}

/// The kernel programs of the session and what they are configured to do.
#[derive(Debug, Clone)]
pub struct ProgramPlan {
    /// `Config::flags`.
    pub config_flags: u32,
    /// `(syscall number, syscall_action::*)`: syscalls reported whatever the verbosity.
    pub syscall_actions: Vec<(u32, u8)>,
    /// The BPF LSM file and exec programs, with the policy they enforce.
    pub paths: Option<PathEnforcement>,
    /// The cgroup socket programs, with the rules they enforce (and, in enforcing mode, the
    /// BPF LSM `socket_create` program).
    pub network: Option<NetworkRules>,
    /// `[[after_exec]]` regimes as the kernel applies them (`Config::regimes`), in policy
    /// order; empty without regimes (or when tracing only).
    pub regimes: Vec<RegimeConfig>,
    /// Without BPF LSM (degraded mode, so `paths` is `None`): the path automaton all the same,
    /// which the exec tracepoint walks to enter regimes (the loader fills its maps only with
    /// `FLAG_REGIMES`). Without it every exec would enter every regime (fail closed).
    pub regime_paths: Option<CompiledPaths>,
}

impl ProgramPlan {
    /// The regimes (bit per regime) that executing the file at `path` (resolved) enters.
    pub fn regimes_entered_by(&self, path: &[u8]) -> u32 {
        let compiled = self
            .paths
            .as_ref()
            .map(|p| &p.paths)
            .or(self.regime_paths.as_ref());
        match compiled.map(|c| c.decide(path)) {
            Some(PathDecision::Matched(accept)) => (0..self.regimes.len())
                .filter(|&r| accept.regime_kinds[r] & KIND_ENTER != 0)
                .fold(0, |mask, r| mask | 1 << r),
            _ => 0,
        }
    }

    /// The BPF LSM programs of the path policy: the required ones, then the optional ones
    /// this kernel has.
    pub fn lsm_programs(&self) -> Vec<&'static str> {
        use crate::ebpf::{LSM_PROGRAMS, OPTIONAL_LSM_PROGRAMS};
        let Some(paths) = &self.paths else {
            return Vec::new();
        };
        let optional = OPTIONAL_LSM_PROGRAMS
            .iter()
            .map(|&(hook, _)| hook)
            .filter(|hook| !paths.missing_hooks.contains(hook));
        LSM_PROGRAMS.iter().copied().chain(optional).collect()
    }

    /// The kernel programs the session attaches, in attach order.
    pub fn attached(&self) -> Vec<&'static str> {
        use crate::{ebpf, network};
        let mut names: Vec<&'static str> = ebpf::TRACEPOINTS
            .iter()
            .map(|&(program, _)| program)
            .collect();
        names.extend(self.lsm_programs());
        if self.network.is_some() {
            names.extend(network::SOCK_ADDR_PROGRAMS);
            names.extend(
                self.network
                    .iter()
                    .filter(|n| n.session_dns())
                    .flat_map(|_| network::DNS_PROGRAMS),
            );
            names.extend([network::SOCK_CREATE_PROGRAM, network::INGRESS_PROGRAM]);
            if self.paths.is_some() {
                names.push(network::SOCKET_CREATE_LSM_PROGRAM);
            }
        }
        names
    }
}

/// A rule of the policy that this session does not enforce, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unenforced {
    pub rule: RuleLabel,
    pub reason: String,
}

pub use crate::output::Approximated;

/// The filesystem rules as Landlock enforces them: `--allow-degraded` on a kernel without BPF
/// LSM and with Landlock. The grants are carved at start ([`crate::landlock::carve`]).
#[derive(Debug, Clone)]
pub struct LandlockFiles {
    pub abi: u32,
    /// The rights the ruleset handles ([`crate::landlock::handled_fs`]).
    pub handled: u64,
    /// The automaton the grants are carved from.
    pub paths: CompiledPaths,
}

/// Everything one `sandtrace run` applies, decided before anything starts.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    pub mode: Mode,
    /// `None` when tracing only.
    pub seccomp: Option<SeccompPlan>,
    pub programs: ProgramPlan,
    /// `[limits] max_processes`, and the controller that enforces it.
    pub max_processes: Option<(u32, PidsController)>,
    pub timeout: Duration,
    /// CMD restricts itself to a Landlock domain that scopes abstract UNIX sockets.
    pub scope_abstract_sockets: bool,
    /// Degraded mode with Landlock: the filesystem rules, as far as Landlock can express them.
    pub landlock_files: Option<LandlockFiles>,
    /// The rules enforced only approximately (Landlock), and how.
    pub approximated: Vec<Approximated>,
    /// Init sets the session PID namespace's `vm.memfd_noexec` to 2 (no executable memfds):
    /// with Landlock, which does not see memfds, nothing else refuses executing one.
    pub memfd_noexec: bool,
    /// Degraded mode: the cgroup file systems are covered in CMD's mount namespace, or a root
    /// CMD could leave the session cgroup.
    pub hide_cgroup_mounts: bool,
    pub unenforced: Vec<Unenforced>,
    /// Labels for the events.
    pub labels: Labels,
    /// Who CMD runs as, with which capabilities and environment: the same in every mode.
    pub process: ProcessPlan,
    /// The session's resolver (`[network] allow_hosts` while the network is restricted).
    pub resolver: Option<ResolverPlan>,
}

/// The kernel's form of the policy's `[[after_exec]]` regimes (`Config::regimes`).
fn regime_configs(
    effective: &crate::policy::EffectivePolicy,
    network: Option<&NetworkRules>,
) -> Vec<RegimeConfig> {
    effective
        .regimes
        .iter()
        .map(|regime| RegimeConfig {
            narrows: regime
                .narrows
                .iter()
                .fold(0, |bits, kind| bits | kind.bit()),
            network: if regime.network.is_some() {
                REGIME_NET_RESTRICTED
            } else {
                0
            },
            _pad: 0,
            keep_rules: match (network, &regime.network) {
                (Some(rules), Some(kept)) => rules.kept_by(kept),
                _ => [0; NET_LIST_COUNT],
            },
        })
        .collect()
}

/// Whether a regime has rules of its own for paths (deny, or a narrowed list).
fn has_path_rules(regime: &crate::policy::resolve::EffectiveRegime) -> bool {
    !regime.narrows.is_empty() || !regime.paths.rules(crate::policy::PathKind::Deny).is_empty()
}

/// What the session's resolver answers (`crate::dns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverPlan {
    /// `allow_hosts`, in policy order: an entry's index is its rule number in the kernel's
    /// tables and in events.
    pub rules: Vec<HostRule>,
}

impl ResolverPlan {
    /// Daemons that resolve names for their clients over a UNIX socket, past the session's
    /// resolver: their directories are covered in CMD's mount namespace (glibc then falls
    /// back to DNS, which the kernel sends to the session's resolver). Without BPF LSM,
    /// connecting to a pathname UNIX socket is not confined, and systemd-resolved (directly or
    /// through D-Bus), nscd or avahi (mDNS, for glibc's `nss-mdns`) would look up any name, a
    /// secret in it, for the command.
    pub const RESOLVING_DAEMON_DIRS: &'static [&'static str] = &[
        "/run/systemd/resolve",
        "/run/nscd",
        "/run/dbus",
        "/run/avahi-daemon",
    ];
}

/// What Landlock (ABI `abi`) enforces of the path rules only approximately, and what it does
/// not decide at all.
fn landlock_limits(
    labels: &Labels,
    abi: u32,
    memfd_noexec: bool,
) -> (Vec<Approximated>, Vec<Unenforced>) {
    use crate::policy::PathKind;
    let mut approximated: Vec<Approximated> = Vec::new();
    let mut add = |rule: &RuleLabel, how: &str| {
        if !approximated.iter().any(|a| &a.rule == rule) {
            approximated.push(Approximated {
                rule: rule.clone(),
                how: how.to_owned(),
            });
        }
    };
    for rule in &labels.file_rules.by_kind[PathKind::Deny.index()] {
        add(
            rule,
            "Landlock: carved out of the allowed trees at start, so the paths it matches that \
             exist then are denied; a name it matches created later in a writable directory is \
             not, and a directory holding a denied path is listed or changed directly only as \
             far as the denied path allows",
        );
    }
    for kind in [PathKind::Read, PathKind::Write, PathKind::Exec] {
        for rule in &labels.file_rules.by_kind[kind.index()] {
            if rule.pattern.starts_with("/proc/self") {
                add(
                    rule,
                    "Landlock: granted on the /proc directory of CMD's first process only (a \
                     rule holds an inode, not a name); its children cannot use /proc/self",
                );
            } else if kind == PathKind::Exec {
                add(
                    rule,
                    "Landlock: what may be executed may also be read (the kernel's exec opens \
                     the file for reading)",
                );
            }
        }
    }
    let general = |pattern: &str| RuleLabel {
        kind: "filesystem",
        pattern: pattern.to_owned(),
        source: format!("Landlock ABI {abi}"),
    };
    approximated.push(Approximated {
        rule: general("paths that do not exist at start"),
        how: "Landlock grants existing files and trees: a path an allow rule names that does \
              not exist when CMD starts can be created only inside a directory writable as a \
              whole"
            .to_owned(),
    });
    approximated.push(Approximated {
        rule: general("running the dynamic loader directly"),
        how: "allowed: Landlock checks the ELF interpreter as an exec, so it is executable, and \
              `ld.so PROGRAM` maps any readable PROGRAM"
            .to_owned(),
    });
    approximated.push(Approximated {
        rule: general("namespace files (/proc/self/ns/*)"),
        how: "openable where /proc/self is readable (Landlock does not see the namespace file \
              system); entering one (setns) is refused by the seccomp baseline"
            .to_owned(),
    });
    if !memfd_noexec {
        approximated.push(Approximated {
            rule: general("executing a memfd"),
            how: "allowed: Landlock does not see memfds, and this kernel has no \
                  vm.memfd_noexec (Linux 6.3) to refuse executable ones"
                .to_owned(),
        });
    }
    approximated.push(Approximated {
        rule: general("the launch chain (CMD, its #! interpreters)"),
        how: "executable by every process of the session, not only the first".to_owned(),
    });
    if abi < crate::landlock::REFER_ABI {
        approximated.push(Approximated {
            rule: general("renames and links across directories"),
            how: format!(
                "refused whatever the rules say (Landlock ABI {abi} has no REFER right; ABI 2, \
                 Linux 5.19)"
            ),
        });
    }
    let mut unenforced = vec![Unenforced {
        rule: general("file metadata: chmod, chown, extended attributes, ACLs, times, inode flags"),
        reason: "Landlock does not decide these; the command's user and capabilities do".to_owned(),
    }];
    unenforced.push(Unenforced {
        rule: general("inotify and fanotify watches"),
        reason: "Landlock does not decide watches".to_owned(),
    });
    if abi < crate::landlock::TRUNCATE_ABI {
        unenforced.push(Unenforced {
            rule: general("truncate"),
            reason: format!(
                "Landlock ABI {abi} has no TRUNCATE right (ABI 3, Linux 6.2): truncating by \
                 path or O_TRUNC is not decided"
            ),
        });
    }
    (approximated, unenforced)
}

/// How the run's output shapes what the kernel side reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventDetail {
    /// One event per syscall (`-o`, or `-vv` and more).
    pub syscalls: bool,
    /// Every file and network decision, not only denials (`-v` and more).
    pub all_decisions: bool,
}

impl EventDetail {
    pub fn for_output(output: bool, verbosity: Verbosity) -> Self {
        Self {
            syscalls: output || verbosity >= Verbosity::FailedSyscalls,
            all_decisions: verbosity >= Verbosity::Processes,
        }
    }
}

impl SessionPlan {
    /// Plans a session of `policy` with `flags` on a kernel offering `features`, CMD run as
    /// `process` says.
    pub fn new(
        policy: &PreparedPolicy,
        flags: ModeFlags,
        detail: EventDetail,
        features: &KernelFeatures,
        process: &ProcessInputs,
    ) -> Result<Self, PlanError> {
        let mode = if flags.trace_only {
            Mode::TraceOnly
        } else {
            match &features.bpf_lsm {
                Ok(()) => Mode::Enforce,
                Err(why) if flags.allow_degraded => Mode::Degraded(why.clone()),
                Err(why) => {
                    let landlock = features.landlock_abi.as_ref().ok().copied();
                    return Err(PlanError::NeedsBpfLsm(why.clone(), landlock));
                }
            }
        };
        let traced = Self::trace_only(
            policy.effective.timeout.value,
            detail,
            ProcessPlan::new(process, &policy.effective),
        );
        if mode == Mode::TraceOnly {
            return Ok(traced);
        }
        let mut config_flags = traced.programs.config_flags;

        let effective = &policy.effective;
        let labels = Labels::for_policy(effective);
        let mut unenforced = Vec::new();
        let mut approximated = Vec::new();
        let mut landlock_files = None;
        let mut memfd_noexec = false;
        let network = NetworkRules::for_policy(effective);
        let degraded = matches!(mode, Mode::Degraded(_));
        let seccomp = SeccompPlan::new(Some(effective), degraded)?;
        let log_only: Vec<u32> = effective
            .log_only_syscalls
            .iter()
            .map(|s| s.value.id() as u32)
            .collect();
        let syscall_actions = syscall_actions(&seccomp, &log_only);

        let paths = match &mode {
            Mode::Enforce => {
                config_flags |= FLAG_ENFORCE_FILES;
                if detail.all_decisions {
                    config_flags |= FLAG_FILE_EVENTS_ALL;
                }
                let exec_unrestricted = matches!(
                    policy.compiled.decide(b"/"),
                    PathDecision::Matched(a) if a.kinds & KIND_EXEC != 0
                );
                if exec_unrestricted {
                    config_flags |= FLAG_EXEC_UNRESTRICTED;
                }
                Some(PathEnforcement {
                    paths: policy.compiled.clone(),
                    exec_unrestricted,
                    missing_hooks: features.missing_lsm_hooks.clone(),
                })
            }
            Mode::Degraded(_) => {
                match &features.landlock_abi {
                    Ok(abi) => {
                        let abi = *abi;
                        config_flags |= FLAG_FILE_REFUSALS;
                        landlock_files = Some(LandlockFiles {
                            abi,
                            handled: crate::landlock::handled_fs(abi),
                            paths: policy.compiled.clone(),
                        });
                        memfd_noexec = features.memfd_noexec;
                        let (approx, not_decided) = landlock_limits(&labels, abi, memfd_noexec);
                        approximated = approx;
                        unenforced.extend(not_decided);
                    }
                    Err(landlock) => {
                        // Once each: a rule through a symlink is compiled twice under one label.
                        for rule in labels.file_rules.by_kind.iter().flatten() {
                            if !unenforced.iter().any(|u: &Unenforced| &u.rule == rule) {
                                unenforced.push(Unenforced {
                                    rule: rule.clone(),
                                    reason: format!(
                                        "BPF LSM is not available, nor Landlock ({landlock})"
                                    ),
                                });
                            }
                        }
                    }
                }
                None
            }
            Mode::TraceOnly => unreachable!("returned above"),
        };

        let scope_abstract_sockets = match (&network, &features.landlock_abi) {
            // Landlock's scope would hold every task; with the base network open only the
            // regimes' tasks are restricted.
            (None, _) => false,
            (Some(rules), _) if rules.base_open => false,
            (Some(_), Ok(abi)) if *abi >= features::LANDLOCK_SCOPING_ABI => true,
            (Some(_), landlock) => {
                let why = match landlock {
                    Ok(abi) => format!(
                        "Landlock ABI {abi} has no scoping (needs ABI {}, Linux 6.12)",
                        features::LANDLOCK_SCOPING_ABI
                    ),
                    Err(why) => why.clone(),
                };
                unenforced.push(Unenforced {
                    rule: RuleLabel {
                        kind: "network",
                        pattern: "abstract UNIX sockets outside the session".to_owned(),
                        source: why.clone(),
                    },
                    reason: why,
                });
                false
            }
        };

        let resolver = match &network {
            Some(rules) if rules.session_dns() => {
                config_flags |= FLAG_SESSION_DNS;
                Some(ResolverPlan {
                    rules: effective
                        .allow_hosts
                        .iter()
                        .map(|r| r.value.clone())
                        .collect(),
                })
            }
            _ => None,
        };
        if resolver.is_none() {
            config_flags |= FLAG_DNS_CAPTURE;
        }

        if network.as_ref().is_some_and(|n| n.base_open) {
            config_flags |= FLAG_BASE_NETWORK_OPEN;
        }
        let regimes = regime_configs(effective, network.as_ref());
        if !regimes.is_empty() {
            config_flags |= FLAG_REGIMES;
            if paths.is_none() {
                for regime in effective.regimes.iter().filter(|r| has_path_rules(r)) {
                    unenforced.push(Unenforced {
                        rule: RuleLabel {
                            kind: "after_exec",
                            pattern: format!("{} [filesystem]", regime.name),
                            source: regime.origin.to_string(),
                        },
                        reason: "BPF LSM is not available: of the regime, only [network] \
                                 applies"
                            .to_owned(),
                    });
                }
            }
        }

        let max_processes = match effective.max_processes.value {
            None => None,
            Some(max) => match &features.pids {
                PidsController::Missing(why) => {
                    return Err(PlanError::Unenforceable(format!(
                        "[limits] max_processes = {max} cannot be enforced: {why}"
                    )));
                }
                controller => Some((max, controller.clone())),
            },
        };

        Ok(Self {
            hide_cgroup_mounts: degraded,
            mode,
            seccomp: Some(seccomp),
            programs: ProgramPlan {
                config_flags,
                syscall_actions,
                paths,
                network,
                // Without BPF LSM the automaton is still needed: it says which execs enter a
                // regime.
                regime_paths: (degraded && !regimes.is_empty()).then(|| policy.compiled.clone()),
                regimes,
            },
            max_processes,
            timeout: effective.timeout.value,
            scope_abstract_sockets,
            landlock_files,
            approximated,
            memfd_noexec,
            unenforced,
            labels,
            process: traced.process,
            resolver,
        })
    }

    /// A session that enforces no policy rule and kills CMD after `timeout`; its seccomp
    /// filter is the baseline of every mode, and CMD is run as `process` says all the same.
    pub fn trace_only(timeout: Duration, detail: EventDetail, process: ProcessPlan) -> Self {
        let seccomp = SeccompPlan::new(None, true).expect("the baseline names x86_64 syscalls");
        let syscall_actions = syscall_actions(&seccomp, &[]);
        // Without the session's resolver its DNS is recorded from its traffic.
        let mut config_flags = FLAG_DNS_CAPTURE;
        if detail.syscalls {
            config_flags |= FLAG_SYSCALL_EVENTS;
        }
        if detail.all_decisions {
            config_flags |= FLAG_NETWORK_EVENTS_ALL;
        }
        Self {
            mode: Mode::TraceOnly,
            seccomp: Some(seccomp),
            programs: ProgramPlan {
                config_flags,
                syscall_actions,
                paths: None,
                network: None,
                regimes: Vec::new(),
                regime_paths: None,
            },
            max_processes: None,
            timeout,
            scope_abstract_sockets: false,
            landlock_files: None,
            approximated: Vec::new(),
            memfd_noexec: false,
            hide_cgroup_mounts: false,
            unenforced: Vec::new(),
            labels: Labels::default(),
            process,
            resolver: None,
        }
    }

    /// The unenforced rules as the summary lists them.
    pub fn unenforced_labels(&self) -> Vec<RuleLabel> {
        self.unenforced.iter().map(|u| u.rule.clone()).collect()
    }

    /// The mechanism behind every rule, for `sandtrace policy check`.
    pub fn mechanisms(&self) -> Mechanisms {
        Mechanisms::of(self)
    }
}

/// The `SYSCALL_ACTIONS` entries: `log_only`, every refused syscall (a refusal overrides a
/// `log_only` listing: the call never runs; `clone3`'s [`Refusal::Enosys`] is counted, not
/// reported, unless the policy denies it), and the syscalls refused for some arguments
/// (`socket`/`socketpair`, whose refusals are network events, and the others).
fn syscall_actions(seccomp: &SeccompPlan, log_only: &[u32]) -> Vec<(u32, u8)> {
    let mut actions: std::collections::BTreeMap<u32, u8> = log_only
        .iter()
        .map(|&nr| (nr, syscall_action::LOG_ONLY))
        .collect();
    for rule in &seccomp.rules {
        let action = match (rule.refusal, &rule.reason) {
            (Refusal::Enosys, SeccompReason::Policy(_)) | (Refusal::Eperm, _) => {
                syscall_action::DENY
            }
            (Refusal::Enosys, _) => syscall_action::REFUSED,
        };
        actions.insert(rule.nr, action);
    }
    for rule in &seccomp.arg_rules {
        let action = match rule.name {
            "socket" | "socketpair" => syscall_action::SOCKET_FAMILY,
            _ => syscall_action::DENY_BY_ARGS,
        };
        actions.entry(rule.nr).or_insert(action);
    }
    actions.into_iter().collect()
}

#[cfg(test)]
mod tests;
