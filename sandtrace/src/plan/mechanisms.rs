//! What enforces each rule of a plan, in words, for `sandtrace policy check`.

use sandtrace_common::policy::{
    KIND_COUNT, KIND_INDEX_DENY, KIND_INDEX_EXEC, KIND_INDEX_READ, KIND_INDEX_WRITE,
};

use super::{Mode, PidsController, Refusal, SeccompReason, SessionPlan, process::Privileges};

/// The mechanism behind every kind of rule in one plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanisms {
    /// The mode, and what it means on this kernel.
    pub mode: String,
    /// By `KIND_INDEX_*`.
    pub file: [String; KIND_COUNT],
    /// `[network] allow`.
    pub network: String,
    pub allow_connect: String,
    pub allow_bind: String,
    pub allow_hosts: String,
    /// `[[after_exec]]` regimes: how a process enters one, and what applies its rules.
    pub after_exec: String,
    /// `(syscall number, mechanism)` for every refused syscall.
    pub refused: Vec<(u32, String)>,
    pub log_only: String,
    pub timeout: String,
    pub max_processes: String,
    /// Syscalls refused although the policy does not list them: `(name, why)`; a syscall
    /// refused for some arguments only names them (`ioctl (TIOCSTI, ...)`).
    pub baseline: Vec<(String, String)>,
    /// `(rule, why)` for every rule this session cannot enforce.
    pub unenforced: Vec<(String, String)>,
    /// `(rule, how)` for every rule this session enforces only approximately (Landlock).
    pub approximated: Vec<(String, String)>,
    /// The kernel programs attached, in order.
    pub programs: Vec<&'static str>,
    /// `(hook, what decides its operations instead)` for every optional BPF LSM hook this
    /// kernel lacks.
    pub missing_hooks: Vec<(&'static str, &'static str)>,
    /// `[process] capabilities`: how the others are removed.
    pub capabilities: String,
    /// Who the command runs as.
    pub run_as: String,
}

impl Mechanisms {
    pub(super) fn of(plan: &SessionPlan) -> Self {
        let not_enforced = |why: &str| format!("not enforced: {why}");
        let mode = match &plan.mode {
            Mode::Enforce => "enforce (BPF LSM available)".to_owned(),
            Mode::Degraded(why) => format!(
                "degraded: BPF LSM is not available ({why}); `sandtrace run` refuses this kernel \
                 unless given --allow-degraded{}",
                match &plan.landlock_files {
                    Some(landlock) => format!(
                        ", which enforces the filesystem rules with Landlock ABI {}",
                        landlock.abi
                    ),
                    None =>
                        ", which enforces no filesystem rule (nor is Landlock available)".to_owned(),
                }
            ),
            Mode::TraceOnly => {
                "trace-only: no policy rule is enforced (the seccomp baseline is)".to_owned()
            }
        };
        let mut file: [String; KIND_COUNT] = Default::default();
        match &plan.mode {
            Mode::Enforce => {
                file[KIND_INDEX_READ] = "BPF LSM file_open, path_notify (watches)".to_owned();
                file[KIND_INDEX_WRITE] =
                    "BPF LSM file_open, path_truncate/unlink/mkdir/rmdir/mknod/symlink/link/\
                     rename/chmod/chown, inode_setxattr/removexattr/set_acl/remove_acl, \
                     inode_setattr (times), file_ioctl (inode flags)"
                        .to_owned();
                file[KIND_INDEX_EXEC] = "BPF LSM bprm_check_security".to_owned();
                file[KIND_INDEX_DENY] = "BPF LSM, every file and exec hook".to_owned();
            }
            Mode::Degraded(_) => match &plan.landlock_files {
                Some(landlock) => {
                    let abi = landlock.abi;
                    file[KIND_INDEX_READ] =
                        format!("Landlock ABI {abi} (READ_FILE, READ_DIR), granted at start");
                    file[KIND_INDEX_WRITE] = format!(
                        "Landlock ABI {abi} (WRITE_FILE, MAKE_*, REMOVE_*{}{}), granted at start; \
                         metadata not enforced",
                        if abi >= crate::landlock::REFER_ABI {
                            ", REFER"
                        } else {
                            ""
                        },
                        if abi >= crate::landlock::TRUNCATE_ABI {
                            ", TRUNCATE"
                        } else {
                            ""
                        }
                    );
                    file[KIND_INDEX_EXEC] =
                        format!("Landlock ABI {abi} (EXECUTE, with READ_FILE), granted at start");
                    file[KIND_INDEX_DENY] = format!(
                        "Landlock ABI {abi}, approximated: carved out of the allowed trees at \
                         start"
                    );
                }
                None => {
                    file = std::array::from_fn(|_| {
                        not_enforced("BPF LSM is not available, nor Landlock")
                    });
                }
            },
            Mode::TraceOnly => file = std::array::from_fn(|_| not_enforced("trace-only")),
        }
        let (network, allow_connect, allow_bind) = match (&plan.mode, &plan.programs.network) {
            (Mode::TraceOnly, _) => (
                not_enforced("trace-only"),
                not_enforced("trace-only"),
                not_enforced("trace-only"),
            ),
            (_, None) => (
                "nothing to enforce: the network is allowed".to_owned(),
                "not needed: the network is allowed".to_owned(),
                "not needed: the network is allowed".to_owned(),
            ),
            (mode, Some(_)) => (
                match mode {
                    Mode::Enforce => {
                        "cgroup sock_addr/sock/skb programs, BPF LSM socket_create".to_owned()
                    }
                    _ => "cgroup sock_addr/sock/skb programs, seccomp (socket families, io_uring)"
                        .to_owned(),
                },
                "cgroup connect4/connect6/sendmsg4/sendmsg6".to_owned(),
                "cgroup bind4/bind6".to_owned(),
            ),
        };
        let allow_hosts = match (&plan.mode, &plan.resolver) {
            (Mode::TraceOnly, _) => not_enforced("trace-only"),
            (_, None) => "not needed: the network is allowed".to_owned(),
            (_, Some(_)) => "session resolver (DNS redirected to it), cgroup connect4/6 and \
                             sendmsg4/6 on the addresses it hands out"
                .to_owned(),
        };
        let after_exec = match &plan.mode {
            Mode::TraceOnly => not_enforced("trace-only"),
            Mode::Enforce => "entered at exec (raw tracepoint sched_process_exec), kept per \
                              process in the kernel and inherited on fork; paths: the BPF LSM \
                              hooks above; network: the cgroup socket programs"
                .to_owned(),
            Mode::Degraded(_) => "entered at exec (raw tracepoint sched_process_exec), kept \
                                  per process in the kernel; only [network] applies (cgroup \
                                  socket programs): without BPF LSM its [filesystem] is not \
                                  enforced"
                .to_owned(),
        };
        let mut refused = Vec::new();
        let mut baseline = Vec::new();
        for rule in plan.seccomp.iter().flat_map(|s| &s.rules) {
            let errno = match rule.refusal {
                Refusal::Eperm => "EPERM",
                Refusal::Enosys => "ENOSYS",
            };
            let mechanism = match rule.reason {
                SeccompReason::Baseline(_) => format!("seccomp (baseline, {errno})"),
                _ => format!("seccomp ({errno})"),
            };
            refused.push((rule.nr, mechanism));
            if !matches!(
                rule.reason,
                SeccompReason::Policy(_) | SeccompReason::AlwaysBlocked
            ) {
                baseline.push((rule.name.to_owned(), rule.reason.describe()));
            }
        }
        for rule in plan.seccomp.iter().flat_map(|s| &s.arg_rules) {
            if !refused.iter().any(|(nr, _)| *nr == rule.nr) {
                baseline.push((
                    format!("{} ({})", rule.name, rule.refused),
                    SeccompReason::Baseline(rule.why).describe(),
                ));
            }
        }
        let log_only = match plan.mode {
            Mode::TraceOnly => not_enforced("trace-only"),
            _ => "raw tracepoints sys_enter/sys_exit (reported, allowed)".to_owned(),
        };
        let max_processes = match &plan.max_processes {
            None if plan.mode == Mode::TraceOnly => not_enforced("trace-only"),
            None => "no limit".to_owned(),
            Some((_, PidsController::CgroupV2)) => "pids cgroup (v2)".to_owned(),
            Some((_, PidsController::CgroupV1)) => "pids cgroup (v1 hierarchy)".to_owned(),
            Some((_, PidsController::Missing(why))) => not_enforced(why),
        };
        Self {
            mode,
            file,
            network,
            allow_connect,
            allow_bind,
            allow_hosts,
            after_exec,
            refused,
            log_only,
            timeout: "sandtrace kills the session (PID namespace and cgroup)".to_owned(),
            max_processes,
            baseline,
            programs: plan.programs.attached(),
            missing_hooks: plan
                .programs
                .paths
                .iter()
                .flat_map(|p| &p.missing_hooks)
                .map(|&hook| (hook, crate::ebpf::optional_hook_note(hook)))
                .collect(),
            capabilities: match plan.process.privileges {
                Privileges::AsRoot => "not removed: --as-root".to_owned(),
                Privileges::Confined(_) => "kept in the ambient set; every other capability \
                                            removed (capset, bounding set, securebits locked, \
                                            no_new_privs), in every mode"
                    .to_owned(),
            },
            run_as: plan.process.identity.describe(),
            approximated: plan
                .approximated
                .iter()
                .map(|a| (format!("{} {}", a.rule.kind, a.rule.pattern), a.how.clone()))
                .collect(),
            unenforced: plan
                .unenforced
                .iter()
                .map(|u| {
                    (
                        format!("{} {}", u.rule.kind, u.rule.pattern),
                        u.reason.clone(),
                    )
                })
                .collect(),
        }
    }

    /// The mechanism refusing syscall `nr`, if any.
    pub fn refusing(&self, nr: u32) -> Option<&str> {
        self.refused
            .iter()
            .find(|(n, _)| *n == nr)
            .map(|(_, m)| m.as_str())
    }
}
