//! The plan for every mode and every example policy, without root or BPF.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use sandtrace_common::{
    config::{
        FLAG_BASE_NETWORK_OPEN, FLAG_ENFORCE_FILES, FLAG_EXEC_UNRESTRICTED, FLAG_FILE_EVENTS_ALL,
        FLAG_REGIMES, FLAG_SESSION_DNS, FLAG_SYSCALL_EVENTS, REGIME_NET_RESTRICTED,
    },
    event::syscall_action,
    policy::{KIND_DENY, KIND_ENTER, KIND_WRITE},
};

use super::{
    process::{Account, Accounts, IdentitySource, Privileges},
    *,
};
use crate::{
    policy::{self, PathKind},
    syscall_table,
};

const EXAMPLES: &[&str] = &[
    "strict.toml",
    "permissive.toml",
    "npm_audit.toml",
    "pnpm_audit.toml",
    "composer_audit.toml",
];

fn nr(name: &str) -> u32 {
    syscall_table::number(name).unwrap_or_else(|| panic!("{name} is an x86_64 syscall"))
}

fn prepared_from(path: &Path, text: Option<&str>) -> PreparedPolicy {
    let policy = match text {
        Some(text) => policy::parse::parse(path, text.to_owned()),
        None => policy::load(path),
    }
    .unwrap_or_else(|d| panic!("{d}"));
    let effective = policy::resolve(
        &policy,
        &policy::CliOverrides::default(),
        Path::new("/work/project"),
        Some(Path::new("/home/dev")),
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let compiled = policy::compile(&effective).unwrap_or_else(|d| panic!("{d}"));
    PreparedPolicy {
        effective,
        compiled,
    }
}

fn example(name: &str) -> PreparedPolicy {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "examples", name]
        .iter()
        .collect();
    prepared_from(&path, None)
}

fn inline(text: &str) -> PreparedPolicy {
    prepared_from(Path::new("inline.toml"), Some(text))
}

/// A BPF-LSM kernel of today: Landlock with scoping, pids in cgroup v2.
fn bpf_lsm_kernel() -> KernelFeatures {
    KernelFeatures {
        bpf_lsm: Ok(()),
        landlock_abi: Ok(6),
        memfd_noexec: true,
        pids: PidsController::CgroupV2,
        missing_lsm_hooks: Vec::new(),
    }
}

/// A kernel like these machines': no BPF LSM, hybrid cgroups.
fn no_lsm_kernel() -> KernelFeatures {
    KernelFeatures {
        bpf_lsm: Err("BPF LSM is off".to_owned()),
        landlock_abi: Ok(7),
        memfd_noexec: true,
        pids: PidsController::CgroupV1,
        missing_lsm_hooks: Vec::new(),
    }
}

/// A kernel without BPF LSM and without Landlock (off in the `lsm=` list).
fn no_lsm_no_landlock_kernel() -> KernelFeatures {
    KernelFeatures {
        landlock_abi: Err("Landlock is disabled".to_owned()),
        memfd_noexec: false,
        ..no_lsm_kernel()
    }
}

fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    vars.iter().map(|(n, v)| (n.into(), v.into())).collect()
}

/// What a caller's environment holds: the base, tool settings, and secrets.
const CALLER_ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/bin:/bin"),
    ("HOME", "/root"),
    ("USER", "root"),
    ("LC_ALL", "C.UTF-8"),
    ("npm_config_cache", "/tmp/npm"),
    ("NPM_TOKEN", "secret-npm"),
    ("SANDTRACE_TEST_TOKEN", "secret"),
    ("SUDO_UID", "1000"),
    ("SUDO_USER", "dev"),
];

fn root_account() -> Account {
    Account {
        name: Some("root".to_owned()),
        uid: 0,
        gid: 0,
        groups: vec![0],
        home: Some(PathBuf::from("/root")),
        shell: Some(PathBuf::from("/bin/bash")),
    }
}

fn dev_account() -> Account {
    Account {
        name: Some("dev".to_owned()),
        uid: 1000,
        gid: 1000,
        groups: vec![27, 1000],
        home: Some(PathBuf::from("/home/dev")),
        shell: Some(PathBuf::from("/bin/zsh")),
    }
}

/// sandtrace started by root without sudo.
fn root_caller() -> ProcessInputs {
    inputs(None, ProcessFlags::default())
}

/// sandtrace started through sudo by `dev`, with `flags`.
fn sudo_caller(flags: ProcessFlags) -> ProcessInputs {
    inputs(Some(dev_account()), flags)
}

fn inputs(sudo: Option<Account>, flags: ProcessFlags) -> ProcessInputs {
    let accounts = Accounts {
        caller: root_account(),
        sudo,
        requested: None,
    };
    ProcessInputs {
        identity: Identity::choose(&accounts, flags.as_root),
        caller_env: env(CALLER_ENV),
        flags,
    }
}

const QUIET: EventDetail = EventDetail {
    syscalls: false,
    all_decisions: false,
};

struct Case {
    name: &'static str,
    flags: ModeFlags,
    features: fn() -> KernelFeatures,
    mode: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "enforce",
        flags: ModeFlags {
            trace_only: false,
            allow_degraded: false,
        },
        features: bpf_lsm_kernel,
        mode: "enforce",
    },
    Case {
        name: "enforce, --allow-degraded on a BPF-LSM kernel",
        flags: ModeFlags {
            trace_only: false,
            allow_degraded: true,
        },
        features: bpf_lsm_kernel,
        mode: "enforce",
    },
    Case {
        name: "degraded",
        flags: ModeFlags {
            trace_only: false,
            allow_degraded: true,
        },
        features: no_lsm_kernel,
        mode: "degraded",
    },
    Case {
        name: "degraded, without Landlock",
        flags: ModeFlags {
            trace_only: false,
            allow_degraded: true,
        },
        features: no_lsm_no_landlock_kernel,
        mode: "degraded",
    },
    Case {
        name: "trace-only",
        flags: ModeFlags {
            trace_only: true,
            allow_degraded: false,
        },
        features: no_lsm_kernel,
        mode: "trace-only",
    },
];

/// The plan of an enforcing session of `policy` on `features`, CMD started by root.
fn enforcing_plan(policy: &PreparedPolicy, features: &KernelFeatures) -> SessionPlan {
    SessionPlan::new(
        policy,
        ModeFlags::default(),
        QUIET,
        features,
        &root_caller(),
    )
    .expect("a plan")
}

#[test]
fn every_mode_and_example_policy() {
    for case in CASES {
        for name in EXAMPLES {
            let policy = example(name);
            let plan = SessionPlan::new(
                &policy,
                case.flags,
                QUIET,
                &(case.features)(),
                &root_caller(),
            )
            .unwrap_or_else(|e| panic!("{name}, {}: {e}", case.name));
            let what = format!("{name}, {}", case.name);
            assert_eq!(plan.mode.name(), case.mode, "{what}");
            assert_eq!(plan.timeout, policy.effective.timeout.value, "{what}");
            check_baseline(&plan, &what);
            match plan.mode {
                Mode::TraceOnly => check_trace_only(&plan, &what),
                Mode::Enforce => {
                    check_confined(&plan, &policy, &what);
                    check_enforcing(&plan, &what);
                }
                Mode::Degraded(_) => {
                    check_confined(&plan, &policy, &what);
                    check_degraded(&plan, &policy, &what);
                }
            }
        }
    }
}

/// What every mode refuses: the baseline, reported when refused.
fn check_baseline(plan: &SessionPlan, what: &str) {
    let seccomp = plan
        .seccomp
        .as_ref()
        .expect("a seccomp filter in every mode");
    let actions = &plan.programs.syscall_actions;
    let mechanisms = plan.mechanisms();
    for (names, why) in seccomp_baseline::UNCONDITIONAL {
        for name in *names {
            let rule = seccomp
                .rules
                .iter()
                .find(|r| r.name == *name)
                .unwrap_or_else(|| panic!("{what}: {name} is refused"));
            assert_eq!(rule.refusal, Refusal::Eperm, "{what}: {name}");
            assert!(
                matches!(rule.reason, SeccompReason::Baseline(w) if w == *why)
                    || matches!(rule.reason, SeccompReason::Policy(_)),
                "{what}: {name}: {:?}",
                rule.reason
            );
            assert!(
                actions.contains(&(nr(name), syscall_action::DENY)),
                "{what}: {name} reported"
            );
        }
    }
    assert_eq!(
        mechanisms.refusing(nr("keyctl")),
        Some("seccomp (baseline, EPERM)"),
        "{what}"
    );
    assert_eq!(seccomp.arg_rules, seccomp_baseline::arg_rules(), "{what}");
    for (name, action) in [
        ("ioctl", syscall_action::DENY_BY_ARGS),
        ("clone", syscall_action::DENY_BY_ARGS),
        ("mknodat", syscall_action::DENY_BY_ARGS),
        ("socket", syscall_action::SOCKET_FAMILY),
        ("socketpair", syscall_action::SOCKET_FAMILY),
    ] {
        assert!(actions.contains(&(nr(name), action)), "{what}: {name}");
    }
    assert!(
        mechanisms
            .baseline
            .iter()
            .any(|(name, why)| name.starts_with("ioctl (TIOCSTI") && why.starts_with("baseline: ")),
        "{what}: {:?}",
        mechanisms.baseline
    );
    // Without BPF LSM nothing checks io_uring's sockets; with it, io_uring stays.
    let io_uring = seccomp.rules.iter().any(|r| r.name == "io_uring_setup");
    assert_eq!(
        io_uring,
        plan.mode != Mode::Enforce,
        "{what}: io_uring_setup"
    );
}

fn check_trace_only(plan: &SessionPlan, what: &str) {
    let seccomp = plan.seccomp.as_ref().expect("the baseline");
    assert!(
        seccomp.rules.iter().all(|r| matches!(
            r.reason,
            SeccompReason::Baseline(_) | SeccompReason::AlwaysBlocked | SeccompReason::CgroupEscape
        )),
        "{what}: no policy or path integrity rule: {:?}",
        seccomp.rules
    );
    assert!(
        !seccomp
            .rules
            .iter()
            .any(|r| r.name == "mount" || r.name == "bpf")
    );
    assert!(plan.programs.paths.is_none(), "{what}: no path enforcement");
    assert!(plan.programs.network.is_none(), "{what}: no network rules");
    assert!(plan.max_processes.is_none(), "{what}");
    assert!(plan.unenforced.is_empty(), "{what}");
    assert!(
        !plan.hide_cgroup_mounts && !plan.scope_abstract_sockets,
        "{what}"
    );
}

/// What enforcing and degraded sessions share: the seccomp baseline, network and limits.
fn check_confined(plan: &SessionPlan, policy: &PreparedPolicy, what: &str) {
    let seccomp = plan.seccomp.as_ref().expect("a seccomp filter");
    let rules = &seccomp.rules;
    assert!(
        rules.windows(2).all(|w| w[0].nr < w[1].nr),
        "{what}: sorted, one rule per syscall"
    );
    let rule = |name: &str| {
        rules
            .iter()
            .find(|r| r.nr == nr(name))
            .unwrap_or_else(|| panic!("{what}: {name} is refused"))
    };
    for denied in &policy.effective.denied_syscalls {
        let r = rule(denied.value.name());
        assert!(
            matches!(
                r.reason,
                SeccompReason::Policy(_) | SeccompReason::AlwaysBlocked
            ),
            "{what}: {} refused for the policy, not {:?}",
            r.name,
            r.reason
        );
    }
    for always in crate::policy::ALWAYS_BLOCKED_SYSCALLS {
        assert_eq!(rule(always.name()).refusal, Refusal::Eperm, "{what}");
    }
    for name in seccomp_rules::PATH_INTEGRITY
        .iter()
        .chain(seccomp_rules::PROGRAM_INTEGRITY)
    {
        assert_eq!(rule(name).refusal, Refusal::Eperm, "{what}: {name}");
    }
    assert_eq!(
        rule("bpf").reason,
        SeccompReason::ProgramIntegrity,
        "{what}"
    );
    let clone3 = rule("clone3");
    assert_eq!(clone3.refusal, Refusal::Enosys, "{what}");
    assert_eq!(clone3.reason, SeccompReason::CgroupEscape, "{what}");
    assert!(
        plan.programs
            .syscall_actions
            .contains(&(nr("clone3"), syscall_action::REFUSED)),
        "{what}: clone3 counted"
    );
    for logged in &policy.effective.log_only_syscalls {
        assert!(
            plan.programs
                .syscall_actions
                .contains(&(logged.value.id() as u32, syscall_action::LOG_ONLY)),
            "{what}: {} logged",
            logged.value.name()
        );
    }
    assert_eq!(
        plan.programs.network.is_some(),
        !policy.effective.network_allowed.value,
        "{what}: network programs exactly when the network is restricted"
    );
    assert_eq!(
        plan.scope_abstract_sockets,
        plan.programs.network.is_some() && plan.unenforced.iter().all(|u| u.rule.kind != "network"),
        "{what}: abstract sockets scoped with a restricted network (Landlock 6+)"
    );
    assert_eq!(
        plan.max_processes.as_ref().map(|(n, _)| *n),
        policy.effective.max_processes.value,
        "{what}"
    );
}

fn check_enforcing(plan: &SessionPlan, what: &str) {
    let paths = plan.programs.paths.as_ref().expect("path enforcement");
    assert_ne!(plan.programs.config_flags & FLAG_ENFORCE_FILES, 0, "{what}");
    assert_eq!(
        plan.programs.config_flags & FLAG_FILE_EVENTS_ALL,
        0,
        "{what}: quiet"
    );
    assert!(plan.unenforced.is_empty(), "{what}: {:?}", plan.unenforced);
    assert!(
        !plan.hide_cgroup_mounts,
        "{what}: BPF LSM guards the cgroup files"
    );
    assert_eq!(
        paths.exec_unrestricted,
        plan.programs.config_flags & FLAG_EXEC_UNRESTRICTED != 0,
        "{what}"
    );
    let mechanisms = plan.mechanisms();
    assert!(
        mechanisms.file.iter().all(|m| m.starts_with("BPF LSM")),
        "{what}"
    );
}

fn check_degraded(plan: &SessionPlan, policy: &PreparedPolicy, what: &str) {
    assert!(plan.programs.paths.is_none(), "{what}: no BPF LSM");
    assert_eq!(plan.programs.config_flags & FLAG_ENFORCE_FILES, 0, "{what}");
    assert!(plan.hide_cgroup_mounts, "{what}");
    let mechanisms = plan.mechanisms();
    let Some(landlock) = &plan.landlock_files else {
        check_degraded_without_landlock(plan, policy, what);
        return;
    };
    assert_eq!(landlock.handled, crate::landlock::handled_fs(landlock.abi));
    assert!(plan.memfd_noexec, "{what}: executable memfds refused");
    for kind in PathKind::ALL {
        for rule in policy.effective.paths.rules(kind) {
            assert!(
                !plan
                    .unenforced
                    .iter()
                    .any(|u| u.rule.pattern == rule.written),
                "{what}: {} {} enforced by Landlock",
                kind.key(),
                rule.written
            );
            let approximated = plan
                .approximated
                .iter()
                .any(|a| a.rule.pattern == rule.written);
            assert_eq!(
                approximated,
                kind == PathKind::Deny
                    || kind == PathKind::Exec
                    || rule.written.starts_with("/proc/self"),
                "{what}: {} {} listed as approximated",
                kind.key(),
                rule.written
            );
        }
    }
    for listed in ["running the dynamic loader directly", "namespace files"] {
        assert!(
            plan.approximated
                .iter()
                .any(|a| a.rule.pattern.starts_with(listed)),
            "{what}: {listed} approximated"
        );
    }
    assert!(
        plan.unenforced
            .iter()
            .any(|u| u.rule.pattern.starts_with("file metadata")),
        "{what}: metadata not enforced"
    );
    assert!(
        mechanisms
            .file
            .iter()
            .all(|m| m.starts_with(&format!("Landlock ABI {}", landlock.abi))),
        "{what}: {:?}",
        mechanisms.file
    );
    assert!(mechanisms.mode.contains("Landlock"), "{what}");
}

fn check_degraded_without_landlock(plan: &SessionPlan, policy: &PreparedPolicy, what: &str) {
    assert!(!plan.memfd_noexec && plan.approximated.is_empty(), "{what}");
    for kind in PathKind::ALL {
        for rule in policy.effective.paths.rules(kind) {
            assert!(
                plan.unenforced
                    .iter()
                    .any(|u| u.rule.pattern == rule.written && u.reason.contains("nor Landlock")),
                "{what}: {} {} listed as not enforced",
                kind.key(),
                rule.written
            );
        }
    }
    assert!(
        plan.mechanisms()
            .file
            .iter()
            .all(|m| m.starts_with("not enforced")),
        "{what}"
    );
}

#[test]
fn landlock_of_an_old_kernel_lists_what_its_abi_lacks() {
    let features = KernelFeatures {
        landlock_abi: Ok(1),
        memfd_noexec: false,
        ..no_lsm_kernel()
    };
    let plan = SessionPlan::new(
        &example("strict.toml"),
        ModeFlags {
            trace_only: false,
            allow_degraded: true,
        },
        QUIET,
        &features,
        &root_caller(),
    )
    .expect("a degraded plan");
    let landlock = plan
        .landlock_files
        .as_ref()
        .expect("Landlock ABI 1 is used");
    assert_eq!(
        landlock.handled & (crate::landlock::access::REFER | crate::landlock::access::TRUNCATE),
        0,
        "ABI 1 handles neither REFER nor TRUNCATE"
    );
    assert!(!plan.memfd_noexec);
    let approximated = |pattern: &str| {
        plan.approximated
            .iter()
            .any(|a| a.rule.pattern.starts_with(pattern))
    };
    assert!(approximated("renames and links across directories"));
    assert!(approximated("executing a memfd"));
    assert!(plan.unenforced.iter().any(|u| u.rule.pattern == "truncate"));
    // Scoping needs ABI 6: listed too.
    assert!(plan.unenforced.iter().any(|u| u.rule.kind == "network"));
}

#[test]
fn enforcing_needs_bpf_lsm_unless_degraded_is_allowed() {
    let err = SessionPlan::new(
        &example("strict.toml"),
        ModeFlags::default(),
        QUIET,
        &no_lsm_kernel(),
        &root_caller(),
    )
    .expect_err("no BPF LSM");
    assert!(matches!(&err, PlanError::NeedsBpfLsm(why, Some(7)) if why == "BPF LSM is off"));
    assert!(err.to_string().contains("Landlock ABI 7"), "{err}");
    assert!(err.to_string().contains("--allow-degraded"), "{err}");
}

#[test]
fn a_process_limit_without_a_pids_controller_refuses_to_start() {
    let policy = inline("[limits]\nmax_processes = 20\n");
    let mut features = bpf_lsm_kernel();
    features.pids = PidsController::Missing("no pids controller here".to_owned());
    let err = SessionPlan::new(
        &policy,
        ModeFlags::default(),
        QUIET,
        &features,
        &root_caller(),
    )
    .expect_err("fail closed");
    assert!(
        matches!(&err, PlanError::Unenforceable(why) if why.contains("max_processes = 20")),
        "{err}"
    );
    let plan = SessionPlan::new(
        &policy,
        ModeFlags::default(),
        QUIET,
        &bpf_lsm_kernel(),
        &root_caller(),
    )
    .expect("pids in cgroup v2");
    assert_eq!(plan.max_processes, Some((20, PidsController::CgroupV2)));
    assert_eq!(plan.mechanisms().max_processes, "pids cgroup (v2)");
}

#[test]
fn abstract_sockets_without_landlock_scoping_are_listed_as_unenforced() {
    let mut features = bpf_lsm_kernel();
    features.landlock_abi = Ok(4);
    let plan = enforcing_plan(&example("strict.toml"), &features);
    assert!(!plan.scope_abstract_sockets);
    let [u] = plan.unenforced.as_slice() else {
        panic!("one unenforced rule: {:?}", plan.unenforced);
    };
    assert_eq!(u.rule.kind, "network");
    assert!(u.reason.contains("ABI 4"), "{}", u.reason);
    // With the network allowed there is nothing to scope, and nothing to report.
    let plan = enforcing_plan(&example("permissive.toml"), &features);
    assert!(plan.unenforced.is_empty());
}

#[test]
fn allow_hosts_runs_the_session_resolver_while_the_network_is_restricted() {
    let hosts =
        inline("[network]\nallow = false\nallow_hosts = [\"good.test\", \"*.cdn.test:443\"]\n");
    for (features, flags) in [
        (bpf_lsm_kernel(), ModeFlags::default()),
        (
            no_lsm_kernel(),
            ModeFlags {
                allow_degraded: true,
                ..ModeFlags::default()
            },
        ),
    ] {
        let plan =
            SessionPlan::new(&hosts, flags, QUIET, &features, &root_caller()).expect("a plan");
        let resolver = plan.resolver.as_ref().expect("the resolver runs");
        let rules: Vec<String> = resolver.rules.iter().map(ToString::to_string).collect();
        assert_eq!(
            rules,
            ["good.test", "*.cdn.test:443"],
            "{}",
            plan.mode.name()
        );
        assert_ne!(plan.programs.config_flags & FLAG_SESSION_DNS, 0);
        assert!(plan.mechanisms().allow_hosts.contains("resolver"));
    }
    let traced = SessionPlan::new(
        &hosts,
        ModeFlags {
            trace_only: true,
            ..ModeFlags::default()
        },
        QUIET,
        &bpf_lsm_kernel(),
        &root_caller(),
    )
    .expect("a plan");
    assert!(traced.resolver.is_none());
    assert_eq!(traced.programs.config_flags & FLAG_SESSION_DNS, 0);
    assert!(traced.mechanisms().allow_hosts.starts_with("not enforced"));
    // Without allow_hosts, DNS follows allow_connect as before.
    let plan = enforcing_plan(&example("strict.toml"), &bpf_lsm_kernel());
    assert!(plan.resolver.is_none());
    assert_eq!(plan.programs.config_flags & FLAG_SESSION_DNS, 0);
}

#[test]
fn allow_hosts_with_the_network_allowed_is_a_located_error() {
    let text = "[network]\nallow = true\nallow_hosts = [\"good.test\"]\n";
    let errors = policy::parse::parse(Path::new("inline.toml"), text.to_owned())
        .expect_err("allow_hosts needs allow = false")
        .to_string();
    assert!(errors.contains("inline.toml:3"), "{errors}");
    assert!(
        errors.contains("allow_hosts cannot be used with allow = true"),
        "{errors}"
    );
    let errors = policy::parse::parse(
        Path::new("inline.toml"),
        "[network]\nallow_hosts = [\"10.0.0.1\", \"*\"]\n".to_owned(),
    )
    .expect_err("an address and `*` are not host names")
    .to_string();
    assert!(errors.contains("allow_connect"), "{errors}");
    assert!(errors.contains("allow = true"), "{errors}");
}

#[test]
fn allow_hosts_redirects_the_sessions_dns_and_attaches_its_programs() {
    let with_hosts = inline("[network]\nallow = false\nallow_hosts = [\"a.test:443\"]\n");
    let without = inline("[network]\nallow = false\nallow_connect = [\"10.0.0.1:443\"]\n");
    for (policy, dns) in [(&with_hosts, true), (&without, false)] {
        let plan = enforcing_plan(policy, &bpf_lsm_kernel());
        assert_eq!(plan.programs.config_flags & FLAG_SESSION_DNS != 0, dns);
        let attached = plan.programs.attached();
        for program in crate::network::DNS_PROGRAMS {
            assert_eq!(attached.contains(program), dns, "{program}");
        }
    }
}

#[test]
fn optional_lsm_hooks_the_kernel_lacks_are_not_attached_and_are_reported() {
    let strict = example("strict.toml");
    let plan = enforcing_plan(&strict, &bpf_lsm_kernel());
    let attached = plan.programs.attached();
    for hook in [
        "kernel_module_request",
        "path_notify",
        "inode_setattr",
        "inode_set_acl",
    ] {
        assert!(attached.contains(&hook), "{hook} in {attached:?}");
    }
    assert!(plan.mechanisms().missing_hooks.is_empty());

    let mut features = bpf_lsm_kernel();
    features.missing_lsm_hooks = vec!["inode_set_acl", "inode_remove_acl"];
    let plan = enforcing_plan(&strict, &features);
    let attached = plan.programs.attached();
    assert!(!attached.contains(&"inode_set_acl"), "{attached:?}");
    assert!(attached.contains(&"inode_setxattr"), "{attached:?}");
    let missing = plan.mechanisms().missing_hooks;
    assert_eq!(
        missing.iter().map(|(hook, _)| *hook).collect::<Vec<_>>(),
        ["inode_set_acl", "inode_remove_acl"]
    );
    assert!(missing[0].1.contains("inode_setxattr"), "{missing:?}");
    // Nothing goes unenforced: before Linux 6.2 setxattr decides ACLs.
    assert!(plan.unenforced.is_empty(), "{:?}", plan.unenforced);
}

#[test]
fn a_policy_deny_of_clone3_is_a_denial_and_still_enosys() {
    let policy = inline("[syscalls]\ndeny = [\"clone3\", \"uname\"]\nlog_only = [\"mmap\"]\n");
    let plan = enforcing_plan(&policy, &bpf_lsm_kernel());
    let seccomp = plan.seccomp.as_ref().unwrap();
    let clone3 = seccomp.rules.iter().find(|r| r.name == "clone3").unwrap();
    assert_eq!(clone3.refusal, Refusal::Enosys);
    assert!(matches!(clone3.reason, SeccompReason::Policy(_)));
    let actions = &plan.programs.syscall_actions;
    assert!(actions.contains(&(nr("clone3"), syscall_action::DENY)));
    assert!(actions.contains(&(nr("uname"), syscall_action::DENY)));
    assert!(actions.contains(&(nr("mmap"), syscall_action::LOG_ONLY)));
    assert!(
        actions.windows(2).all(|w| w[0].0 < w[1].0),
        "one action per syscall: {actions:?}"
    );
}

#[test]
fn the_baseline_lists_do_not_overlap_the_always_blocked_ones() {
    let baseline = seccomp_baseline::UNCONDITIONAL
        .iter()
        .flat_map(|(names, _)| names.iter())
        .chain([&seccomp_baseline::IO_URING]);
    let mut seen = Vec::new();
    for name in seccomp_rules::PATH_INTEGRITY
        .iter()
        .chain(seccomp_rules::PROGRAM_INTEGRITY)
        .chain(baseline)
    {
        assert!(!seen.contains(name), "{name} is listed twice");
        seen.push(name);
        assert!(
            !crate::policy::ALWAYS_BLOCKED_SYSCALLS
                .iter()
                .any(|s| s.name() == *name),
            "{name} is listed twice"
        );
    }
}

#[test]
fn event_detail_sets_the_kernel_flags() {
    let policy = example("strict.toml");
    let loud = EventDetail::for_output(true, Verbosity::Processes);
    let plan = SessionPlan::new(
        &policy,
        ModeFlags::default(),
        loud,
        &bpf_lsm_kernel(),
        &root_caller(),
    )
    .unwrap();
    let flags = plan.programs.config_flags;
    assert_ne!(flags & FLAG_SYSCALL_EVENTS, 0);
    assert_ne!(flags & FLAG_FILE_EVENTS_ALL, 0);
    let traced = SessionPlan::trace_only(plan.timeout, loud, plan.process.clone());
    assert_ne!(traced.programs.config_flags & FLAG_SYSCALL_EVENTS, 0);
    assert_eq!(traced.programs.config_flags & FLAG_ENFORCE_FILES, 0);
}

fn var<'p>(plan: &'p SessionPlan, name: &str) -> Option<&'p str> {
    plan.process
        .environment
        .vars
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.to_str().unwrap())
}

#[test]
fn under_sudo_every_mode_runs_the_command_as_the_user_without_capabilities() {
    for case in CASES {
        for name in EXAMPLES {
            let what = format!("{name}, {}", case.name);
            let plan = SessionPlan::new(
                &example(name),
                case.flags,
                QUIET,
                &(case.features)(),
                &sudo_caller(ProcessFlags::default()),
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            let process = &plan.process;
            assert_eq!(process.identity.source, IdentitySource::Sudo, "{what}");
            assert_eq!(process.identity.account, dev_account(), "{what}");
            assert_eq!(process.privileges, Privileges::Confined(vec![]), "{what}");
            assert_eq!(process.privileges.kept_mask(), Some(0), "{what}");
            // The identity's variables are the user's, not the caller's.
            assert_eq!(var(&plan, "HOME"), Some("/home/dev"), "{what}");
            assert_eq!(var(&plan, "USER"), Some("dev"), "{what}");
            assert_eq!(var(&plan, "LOGNAME"), Some("dev"), "{what}");
            assert_eq!(var(&plan, "SHELL"), Some("/bin/zsh"), "{what}");
            assert_eq!(var(&plan, "PATH"), Some("/usr/bin:/bin"), "{what}");
            assert_eq!(var(&plan, "LC_ALL"), Some("C.UTF-8"), "{what}");
            // Secrets and sudo's own variables are removed, by name.
            let removed = &process.environment.removed;
            for secret in ["NPM_TOKEN", "SANDTRACE_TEST_TOKEN", "SUDO_UID", "SUDO_USER"] {
                assert_eq!(var(&plan, secret), None, "{what}: {secret}");
                assert!(removed.iter().any(|r| r == secret), "{what}: {secret}");
            }
            assert!(removed.windows(2).all(|w| w[0] < w[1]), "{what}: sorted");
            // npm's settings reach npm under the npm policies only.
            let npm = *name == "npm_audit.toml" || *name == "pnpm_audit.toml";
            assert_eq!(var(&plan, "npm_config_cache").is_some(), npm, "{what}");
        }
    }
}

#[test]
fn root_without_sudo_keeps_uid_0_but_no_capabilities() {
    for case in CASES {
        let plan = SessionPlan::new(
            &example("strict.toml"),
            case.flags,
            QUIET,
            &(case.features)(),
            &root_caller(),
        )
        .unwrap();
        assert_eq!(
            plan.process.identity.account,
            root_account(),
            "{}",
            case.name
        );
        assert_eq!(plan.process.identity.source, IdentitySource::Caller);
        assert_eq!(plan.process.privileges, Privileges::Confined(vec![]));
        // sandtrace's own HOME stays.
        assert_eq!(var(&plan, "HOME"), Some("/root"));
    }
}

#[test]
fn as_root_keeps_root_and_every_capability() {
    for case in CASES {
        let flags = ProcessFlags {
            as_root: true,
            ..ProcessFlags::default()
        };
        let plan = SessionPlan::new(
            &example("strict.toml"),
            case.flags,
            QUIET,
            &(case.features)(),
            &sudo_caller(flags),
        )
        .unwrap();
        assert_eq!(
            plan.process.identity.account,
            root_account(),
            "{}",
            case.name
        );
        assert_eq!(plan.process.privileges, Privileges::AsRoot);
        assert_eq!(plan.process.privileges.kept_mask(), None);
        assert_eq!(plan.process.privileges.names(), ["all"]);
    }
}

#[test]
fn policy_capabilities_are_kept_and_warned_about() {
    let policy =
        inline("[process]\ncapabilities = [\"CAP_NET_BIND_SERVICE\", \"net_bind_service\"]\n");
    for case in CASES {
        let plan = SessionPlan::new(
            &policy,
            case.flags,
            QUIET,
            &(case.features)(),
            &sudo_caller(ProcessFlags::default()),
        )
        .unwrap();
        let bind = crate::policy::capability::Capability::parse("CAP_NET_BIND_SERVICE").unwrap();
        assert_eq!(plan.process.privileges, Privileges::Confined(vec![bind]));
        assert_eq!(plan.process.privileges.kept_mask(), Some(1 << 10));
        let warnings = plan.process.capability_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("ports below 1024"), "{warnings:?}");
    }
}

#[test]
fn the_environment_passes_what_the_policy_and_flags_name() {
    let policy = inline(
        "[environment]\npass = [\"SANDTRACE_*\"]\nset = { NODE_ENV = \"production\", HOME = \"/srv\" }\n",
    );
    let plan = |flags: ProcessFlags| {
        SessionPlan::new(
            &policy,
            ModeFlags {
                trace_only: true,
                allow_degraded: false,
            },
            QUIET,
            &no_lsm_kernel(),
            &sudo_caller(flags),
        )
        .unwrap()
    };
    let default = plan(ProcessFlags::default());
    assert_eq!(var(&default, "SANDTRACE_TEST_TOKEN"), Some("secret"));
    assert_eq!(var(&default, "NODE_ENV"), Some("production"));
    // `set` wins over the identity's variables.
    assert_eq!(var(&default, "HOME"), Some("/srv"));
    assert_eq!(var(&default, "NPM_TOKEN"), None);
    let passed = plan(ProcessFlags {
        pass_env: vec!["NPM_TOKEN".to_owned()],
        ..ProcessFlags::default()
    });
    assert_eq!(var(&passed, "NPM_TOKEN"), Some("secret-npm"));
    assert!(
        !passed
            .process
            .environment
            .removed
            .contains(&"NPM_TOKEN".to_owned())
    );
    let kept = plan(ProcessFlags {
        keep_env: true,
        ..ProcessFlags::default()
    });
    assert!(kept.process.environment.removed.is_empty());
    assert_eq!(var(&kept, "SUDO_USER"), Some("dev"));
    // Still the user's identity.
    assert_eq!(var(&kept, "USER"), Some("dev"));
}

#[test]
fn invalid_process_and_environment_sections_are_located_errors() {
    for (text, message, position, hint) in [
        (
            "[process]\ncapabilities = [\"CAP_NET_BIND_SERVIC\"]\n",
            "error: [process] capabilities: unknown capability",
            "inline.toml:2:17",
            "did you mean \"CAP_NET_BIND_SERVICE\"?",
        ),
        (
            "[environment]\npass = [\"A=B\"]\n",
            "error: [environment] pass: \"A=B\": a variable name cannot contain `=`",
            "inline.toml:2:9",
            "separates a variable",
        ),
        (
            "[environment]\nset = { \"A=B\" = \"x\" }\n",
            "error: [environment] set: \"A=B\"",
            "inline.toml:2:9",
            "separates a variable",
        ),
        (
            "[environment]\nset = { A = \"x\\u0000\" }\n",
            "error: [environment] set: the value of A contains a NUL",
            "inline.toml:2:9",
            "",
        ),
    ] {
        let err = policy::parse::parse(Path::new("inline.toml"), text.to_owned())
            .expect_err(text)
            .to_string();
        assert!(err.contains(message), "{text}: {err}");
        assert!(err.contains(&format!("--> {position}\n")), "{text}: {err}");
        assert!(err.contains(hint), "{text}: {err}");
    }
}

#[test]
fn after_exec_regimes_are_planned_with_the_rules_they_keep() {
    let policy = inline(
        "[filesystem]\nallow_read = [\"/usr\"]\nallow_write = [\"/tmp\"]\n\
         allow_exec = [\"/usr/bin\"]\n\
         [network]\nallow = false\nallow_connect = [\"*:443\", \"10.0.0.1:80\"]\n\
         allow_hosts = [\"a.test\", \"b.test\"]\n\
         [[after_exec]]\nname = \"scripts\"\nprograms = [\"/usr/bin/dash\"]\n\
         [after_exec.filesystem]\nallow_write = [\"/tmp/build\"]\ndeny = [\"/usr/secret\"]\n\
         [after_exec.network]\nallow_connect = [\"*:443\"]\nallow_hosts = [\"b.test\"]\n\
         [[after_exec]]\nprograms = [\"/usr/bin/make\"]\n",
    );
    let plan = enforcing_plan(&policy, &bpf_lsm_kernel());
    assert_ne!(plan.programs.config_flags & FLAG_REGIMES, 0);
    assert_eq!(plan.programs.config_flags & FLAG_BASE_NETWORK_OPEN, 0);
    let [scripts, make] = plan.programs.regimes.as_slice() else {
        panic!("two regimes: {:?}", plan.programs.regimes);
    };
    assert_eq!(scripts.narrows, KIND_WRITE);
    assert_eq!(scripts.network, REGIME_NET_RESTRICTED);
    // `*:443` is two kernel rules (IPv4, IPv6), both kept; 10.0.0.1:80 (rule 2) is not.
    assert_eq!(scripts.keep_rules, [0b011, 0, 0b10]);
    assert_eq!(
        (make.narrows, make.network, make.keep_rules),
        (0, 0, [0; 3])
    );
    // The regime's rules are in the automaton, and its programs enter it.
    let PathDecision::Matched(dash) = policy.compiled.decide(b"/usr/bin/dash") else {
        panic!("decided");
    };
    assert_eq!(dash.regime_kinds, [KIND_ENTER, 0, 0, 0]);
    let PathDecision::Matched(secret) = policy.compiled.decide(b"/usr/secret/key") else {
        panic!("decided");
    };
    assert_eq!(u16::from(secret.regime_kinds[0]), KIND_DENY);
    assert_eq!(plan.labels.regime_names, ["scripts", "after_exec #2"]);
    assert!(plan.unenforced.is_empty(), "{:?}", plan.unenforced);

    // Without BPF LSM only the regime's network applies; its path rules are reported.
    let degraded = SessionPlan::new(
        &policy,
        ModeFlags {
            trace_only: false,
            allow_degraded: true,
        },
        QUIET,
        &no_lsm_kernel(),
        &root_caller(),
    )
    .expect("a plan");
    assert_eq!(degraded.programs.regimes.len(), 2);
    let reported: Vec<&str> = degraded
        .unenforced
        .iter()
        .filter(|u| u.rule.kind == "after_exec")
        .map(|u| u.rule.pattern.as_str())
        .collect();
    assert_eq!(reported, ["scripts [filesystem]"]);
}

#[test]
fn a_regime_restricting_an_open_network_runs_the_network_programs_for_it() {
    let policy = inline(
        "[network]\nallow = true\n[[after_exec]]\nprograms = [\"/usr/bin/dash\"]\n\
         [after_exec.network]\nallow = false\n",
    );
    let plan = enforcing_plan(&policy, &bpf_lsm_kernel());
    let network = plan.programs.network.as_ref().expect("network programs");
    assert!(network.base_open && network.connect.is_empty());
    assert_ne!(plan.programs.config_flags & FLAG_BASE_NETWORK_OPEN, 0);
    assert!(
        !plan.scope_abstract_sockets,
        "the base's tasks keep abstract sockets"
    );
    assert!(plan.resolver.is_none());
}

#[test]
fn a_regime_that_would_grant_more_than_the_base_is_a_located_error() {
    let prepare = |text: &str| {
        let policy = policy::parse::parse(Path::new("inline.toml"), text.to_owned())
            .map_err(|d| d.to_string())?;
        let effective = policy::resolve(
            &policy,
            &policy::CliOverrides::default(),
            Path::new("/work"),
            None,
        )
        .map_err(|d| d.to_string())?;
        policy::compile(&effective)
            .map(|_| ())
            .map_err(|d| d.to_string())
    };
    let regime = "[[after_exec]]\nprograms = [\"/usr/bin/dash\"]\n";
    let base =
        "[filesystem]\nallow_write = [\"/tmp\"]\n[network]\nallow_connect = [\"10.0.0.1:80\"]\n";
    for (extra, expected) in [
        (
            "[after_exec.filesystem]\nallow_write = [\"/tmp/**\", \"/var/*/x\"]\n",
            "for example /var/",
        ),
        (
            "[after_exec.network]\nallow_connect = [\"10.0.0.2:80\"]\n",
            "the base's allow_connect has no such entry",
        ),
        (
            "[after_exec.network]\nallow = true\n",
            "would grant what the base policy does not",
        ),
    ] {
        let errors = prepare(&format!("{base}{regime}{extra}")).expect_err(extra);
        assert!(errors.contains(expected), "{extra}: {errors}");
        assert!(
            errors.contains("inline.toml:"),
            "{extra}: located: {errors}"
        );
    }
    // Narrower is fine, and so is a regime's own deny rule anywhere.
    prepare(&format!(
        "{base}{regime}[after_exec.filesystem]\nallow_write = [\"/tmp/build\"]\n\
         deny = [\"/etc\"]\n[after_exec.network]\nallow_connect = [\"10.0.0.1:80\"]\n"
    ))
    .expect("a narrower regime");
    let five = format!("{base}{}", regime.repeat(5));
    assert!(
        prepare(&five)
            .expect_err("five regimes")
            .contains("more than 4")
    );
}
