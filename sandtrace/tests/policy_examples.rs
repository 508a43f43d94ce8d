//! Every example policy in `examples/` loads, resolves, compiles, survives `policy show`
//! unchanged, and decides the paths its comments promise.

use std::path::{Path, PathBuf};

use sandtrace::policy::{
    Access, CliOverrides, EffectivePolicy, PreparedPolicy, compile, load, parse, render, resolve,
};

const CWD: &str = "/work/project";
const HOME: &str = "/home/dev";

fn example_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn prepared(name: &str) -> PreparedPolicy {
    let path = example_path(name);
    let policy = load(&path).unwrap_or_else(|d| panic!("{name} does not load:\n{d}"));
    let effective = resolve(
        &policy,
        &CliOverrides::default(),
        Path::new(CWD),
        Some(Path::new(HOME)),
    )
    .unwrap_or_else(|d| panic!("{name} does not resolve:\n{d}"));
    let compiled = compile(&effective).unwrap_or_else(|d| panic!("{name} does not compile:\n{d}"));
    PreparedPolicy {
        effective,
        compiled,
    }
}

/// Asserts the compiled form decides `path` for `access` as expected, and agrees with the
/// reference matcher.
fn assert_access(name: &str, policy: &PreparedPolicy, path: &str, access: Access, allowed: bool) {
    let decision = policy.compiled.decide(path.as_bytes());
    let reference = sandtrace::policy::decide_by_rules(&policy.effective, path.as_bytes());
    assert_eq!(
        decision, reference,
        "{name}: compiled and reference differ on {path}"
    );
    assert_eq!(
        decision.allows(access),
        allowed,
        "{name}: {access:?} {path}: expected {}, got {:?}",
        if allowed { "allowed" } else { "denied" },
        decision.verdict(access)
    );
}

fn syscall_names(list: &[sandtrace::policy::Located<syscalls::Sysno>]) -> Vec<&'static str> {
    list.iter().map(|s| s.value.name()).collect()
}

const EXAMPLES: [&str; 5] = [
    "strict.toml",
    "permissive.toml",
    "npm_audit.toml",
    "pnpm_audit.toml",
    "composer_audit.toml",
];

#[test]
fn every_example_is_listed_and_commented() {
    let mut found: Vec<String> = std::fs::read_dir(example_path(""))
        .expect("examples/ is readable")
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".toml"))
        .collect();
    found.sort();
    let mut expected: Vec<String> = EXAMPLES
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    expected.sort();
    assert_eq!(
        found, expected,
        "examples/ holds exactly the documented policies"
    );
    for name in EXAMPLES {
        let text = std::fs::read_to_string(example_path(name)).expect("example is readable");
        assert!(
            text.starts_with(&format!("# {name}:")),
            "{name} starts with a comment naming it"
        );
        prepared(name);
    }
}

#[test]
fn show_output_parses_back_to_the_same_policy() {
    for name in EXAMPLES {
        let original = load(&example_path(name)).unwrap_or_else(|d| panic!("{name}:\n{d}"));
        let shown = render::policy_to_toml(&original, name);
        let reparsed = parse::parse(Path::new("shown.toml"), shown.clone())
            .unwrap_or_else(|d| panic!("`policy show` of {name} does not parse:\n{d}\n{shown}"));
        assert_eq!(
            reparsed, original,
            "{name}: round trip changed the policy:\n{shown}"
        );
        let shown_again = render::policy_to_toml(&reparsed, name);
        assert_eq!(shown_again, shown, "{name}: showing is stable");
    }
    let default = sandtrace::policy::Policy::builtin_default();
    let shown = render::policy_to_toml(&default, "default");
    let reparsed = parse::parse(Path::new("default.toml"), shown.clone())
        .unwrap_or_else(|d| panic!("the default policy does not parse back:\n{d}\n{shown}"));
    assert_eq!(reparsed, default);
}

#[test]
fn strict_confines_to_system_libraries_and_output() {
    let p = prepared("strict.toml");
    let n = "strict.toml";
    assert_access(
        n,
        &p,
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        Access::Read,
        true,
    );
    assert_access(
        n,
        &p,
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        Access::Write,
        false,
    );
    assert_access(n, &p, "/usr/bin/ls", Access::Exec, false);
    assert_access(
        n,
        &p,
        "/work/project/output/report.txt",
        Access::Write,
        true,
    );
    assert_access(n, &p, "/work/project/output/report.txt", Access::Read, true);
    assert_access(n, &p, "/work/project/output/.env", Access::Read, false);
    assert_access(n, &p, "/work/project/src/main.rs", Access::Read, false);
    assert_access(n, &p, "/etc/shadow", Access::Read, false);
    assert_access(n, &p, "/etc/passwd", Access::Read, false);
    assert!(!p.effective.network_allowed.value);
    let denied = syscall_names(&p.effective.denied_syscalls);
    for name in ["mount", "ptrace", "reboot", "kexec_load", "pivot_root"] {
        assert!(denied.contains(&name), "strict denies {name}: {denied:?}");
    }
    assert_eq!(
        syscall_names(&p.effective.log_only_syscalls),
        ["mmap", "mprotect"]
    );
    assert_eq!(p.effective.timeout.value.as_secs(), 30);
}

#[test]
fn permissive_reads_and_executes_everything_and_writes_tmp() {
    let p = prepared("permissive.toml");
    let n = "permissive.toml";
    assert_access(n, &p, "/", Access::Read, true);
    assert_access(n, &p, "/home/dev/.ssh/id_rsa", Access::Read, true);
    assert_access(n, &p, "/opt/tool/bin/tool", Access::Exec, true);
    assert_access(n, &p, "/tmp/build/out.o", Access::Write, true);
    assert_access(n, &p, "/var/tmp/x", Access::Write, true);
    assert_access(n, &p, "/etc/passwd", Access::Write, false);
    assert!(p.effective.network_allowed.value);
    assert_eq!(
        syscall_names(&p.effective.log_only_syscalls),
        ["mmap", "mprotect", "connect", "bind"]
    );
}

/// The package-manager policies share a shape: system libraries and the project readable,
/// their own outputs writable, only the tool and its runtime executable, secrets denied.
/// What a process in the example's first `[[after_exec]]` regime (the install scripts) may do:
/// `(path, access, allowed)`.
fn assert_script_access(name: &str, p: &PreparedPolicy, expected: &[(&str, Access, bool)]) {
    let regime = &p.effective.regimes[0];
    for &(path, access, allowed) in expected {
        let decision = p.compiled.decide(path.as_bytes());
        assert_eq!(
            decision,
            sandtrace::policy::decide_by_rules(&p.effective, path.as_bytes()),
            "{name}: compiled and reference differ on {path}"
        );
        assert_eq!(
            decision.allows_in(access, &[(0, &regime.narrows)]),
            allowed,
            "{name}: a script's {access:?} {path}: expected {}",
            if allowed { "allowed" } else { "denied" }
        );
    }
}

/// What every package manager's scripts may and may not do besides their own files.
const SCRIPT_COMMON: &[(&str, Access, bool)] = &[
    ("/usr/lib/x86_64-linux-gnu/libc.so.6", Access::Read, true),
    ("/work/project/package.json", Access::Read, true),
    ("/work/project/.env", Access::Read, false),
    ("/work/project/.env.local", Access::Read, false),
    ("/home/dev/.ssh/id_rsa", Access::Read, false),
    ("/home/dev/.bashrc", Access::Write, false),
    ("/home/dev/.profile", Access::Write, false),
    (
        "/home/dev/.config/systemd/user/evil.service",
        Access::Write,
        false,
    ),
    ("/etc/cron.d/evil", Access::Write, false),
    ("/work/project/src/index.js", Access::Write, false),
    ("/tmp/build.log", Access::Write, true),
    ("/dev/null", Access::Write, true),
    ("/usr/bin/curl", Access::Exec, false),
    ("/usr/bin/wget", Access::Exec, false),
    ("/usr/bin/bash", Access::Exec, false),
    ("/usr/bin/dash", Access::Exec, true),
];

fn assert_package_manager_policy(
    name: &str,
    writable: &[&str],
    executable: &[&str],
    not_executable: &[&str],
    script: &[(&str, Access, bool)],
) {
    let p = prepared(name);
    assert_script_access(name, &p, SCRIPT_COMMON);
    assert_script_access(name, &p, script);
    // Entering the regime: its shells, and nothing the manager itself runs.
    let enters = |path: &str| match p.compiled.decide(path.as_bytes()) {
        sandtrace::policy::PathDecision::Matched(a) => {
            a.regime_kinds[0] & sandtrace_common::policy::KIND_ENTER != 0
        }
        sandtrace::policy::PathDecision::TooLong => false,
    };
    assert!(enters("/usr/bin/dash") && enters("/usr/bin/bash"), "{name}");
    for path in executable {
        assert!(
            !enters(path),
            "{name}: executing {path} enters the scripts' regime"
        );
    }
    assert_access(
        name,
        &p,
        "/usr/lib/x86_64-linux-gnu/libssl.so.3",
        Access::Read,
        true,
    );
    assert_access(name, &p, "/etc/resolv.conf", Access::Read, true);
    assert_access(
        name,
        &p,
        "/etc/ssl/certs/ca-certificates.crt",
        Access::Read,
        true,
    );
    assert_access(name, &p, "/work/project/README.md", Access::Read, true);
    assert_access(name, &p, "/work/project/README.md", Access::Write, false);
    assert_access(name, &p, "/tmp/x", Access::Write, true);
    for path in writable {
        assert_access(name, &p, path, Access::Write, true);
    }
    for path in executable {
        assert_access(name, &p, path, Access::Exec, true);
    }
    for path in not_executable {
        assert_access(name, &p, path, Access::Exec, false);
    }
    for secret in [
        "/home/dev/.ssh/id_ed25519",
        "/home/other/.ssh/authorized_keys",
        "/root/.ssh/id_rsa",
        "/etc/shadow",
        "/work/project/.env",
        "/work/project/packages/a/.env",
        "/work/project/.git/config",
        "/home/dev/.aws/credentials",
    ] {
        assert_access(name, &p, secret, Access::Read, false);
    }
    assert!(
        !p.effective.network_allowed.value,
        "{name}: the network is restricted to the registry's names"
    );
    let hosts: Vec<String> = p
        .effective
        .allow_hosts
        .iter()
        .map(|h| h.value.to_string())
        .collect();
    assert!(
        !hosts.is_empty() && hosts.iter().all(|h| h.ends_with(":443")),
        "{name}: registry names over HTTPS only: {hosts:?}"
    );
    assert!(
        p.effective.allow_connect.is_empty(),
        "{name}: no raw addresses"
    );
    let denied = syscall_names(&p.effective.denied_syscalls);
    for syscall in ["mount", "umount2", "ptrace"] {
        assert!(denied.contains(&syscall), "{name} denies {syscall}");
    }
    let mut logged = syscall_names(&p.effective.log_only_syscalls);
    logged.sort_unstable();
    assert_eq!(logged, ["bind", "connect", "execve"], "{name}");
}

#[test]
fn npm_audit_allows_npm_and_its_outputs_only() {
    assert_package_manager_policy(
        "npm_audit.toml",
        &[
            "/work/project/node_modules/left-pad/index.js",
            "/work/project/package-lock.json",
            "/home/dev/.npm/_cacache/index",
        ],
        &["/usr/bin/node", "/usr/lib/node_modules/npm/bin/npm-cli.js"],
        &["/usr/bin/curl", "/work/project/node_modules/.bin/evil"],
        &[
            ("/usr/bin/node", Access::Exec, true),
            (
                "/work/project/node_modules/esbuild/bin/esbuild",
                Access::Write,
                true,
            ),
            ("/home/dev/.npmrc", Access::Read, false),
            ("/work/project/.npmrc", Access::Read, false),
            ("/home/dev/.npm/_cacache/index", Access::Read, false),
            (
                "/usr/lib/node_modules/npm/bin/npm-cli.js",
                Access::Exec,
                false,
            ),
        ],
    );
}

#[test]
fn pnpm_audit_allows_pnpm_and_its_outputs_only() {
    assert_package_manager_policy(
        "pnpm_audit.toml",
        &[
            "/work/project/node_modules/.pnpm/lock.yaml",
            "/work/project/pnpm-lock.yaml",
            "/home/dev/.local/share/pnpm/store/v3/files/00/abc",
        ],
        &["/usr/bin/node", "/usr/lib/node_modules/pnpm/bin/pnpm.cjs"],
        &["/usr/bin/curl", "/work/project/node_modules/.bin/evil"],
        &[
            ("/usr/bin/node", Access::Exec, true),
            (
                "/work/project/node_modules/.pnpm/esbuild@0.25.0/x",
                Access::Write,
                true,
            ),
            ("/home/dev/.npmrc", Access::Read, false),
            (
                "/home/dev/.local/share/pnpm/store/v3/files/00/abc",
                Access::Write,
                false,
            ),
        ],
    );
}

#[test]
fn composer_audit_allows_composer_and_its_outputs_only() {
    assert_package_manager_policy(
        "composer_audit.toml",
        &[
            "/work/project/vendor/autoload.php",
            "/work/project/composer.lock",
            "/home/dev/.cache/composer/files/x.zip",
        ],
        &["/usr/bin/composer", "/usr/bin/php", "/usr/bin/php8.2"],
        &["/usr/bin/unzip", "/work/project/vendor/bin/evil"],
        &[
            ("/usr/bin/php8.2", Access::Exec, true),
            ("/usr/bin/stty", Access::Exec, true),
            (
                "/work/project/vendor/acme/lib/build.txt",
                Access::Write,
                true,
            ),
            ("/home/dev/.config/composer/auth.json", Access::Read, false),
            ("/work/project/auth.json", Access::Read, false),
            ("/home/dev/.cache/composer/files/x.zip", Access::Read, false),
        ],
    );
}

#[test]
fn effective_policy_report_names_every_origin() {
    let p = prepared("strict.toml");
    let report = render::effective_report(&p.effective, &p.compiled, None);
    let example = example_path("strict.toml");
    let file = example.display();
    for expected in [
        "/work/project/output  (written \"./output\")".to_owned(),
        format!("{file}:10:16"),
        "kexec_load (246)".to_owned(),
        "always blocked".to_owned(),
        "timeout: 30 s".to_owned(),
        "max_processes: unlimited".to_owned(),
        "compiled path automaton:".to_owned(),
    ] {
        assert!(
            report.contains(&expected),
            "report lacks {expected:?}:\n{report}"
        );
    }
    let effective: &EffectivePolicy = &p.effective;
    assert!(
        effective
            .denied_syscalls
            .windows(2)
            .all(|w| w[0].value.id() < w[1].value.id())
    );
}

/// `policy check`'s third column: what enforces each rule, as the session plan decides it for
/// the kernel.
#[test]
fn effective_policy_report_names_every_mechanism() {
    use sandtrace::plan::{EventDetail, KernelFeatures, ModeFlags, PidsController, SessionPlan};
    let p = prepared("strict.toml");
    let detail = EventDetail::for_output(false, sandtrace::output::terminal::Verbosity::Quiet);
    let degraded = ModeFlags {
        trace_only: false,
        allow_degraded: true,
    };
    let line = |report: &str, what: &str| -> String {
        report
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line with {what:?}:\n{report}"))
            .to_owned()
    };
    for (bpf_lsm, landlock_abi, file_mechanism, network_mechanism) in [
        (Ok(()), Ok(6), "BPF LSM file_open", "BPF LSM socket_create"),
        (
            Err("off".to_owned()),
            Ok(6),
            "Landlock ABI 6",
            "seccomp (socket families, io_uring)",
        ),
        (
            Err("off".to_owned()),
            Err("disabled".to_owned()),
            "not enforced: BPF LSM is not available, nor Landlock",
            "seccomp (socket families, io_uring)",
        ),
    ] {
        let features = KernelFeatures {
            bpf_lsm,
            landlock_abi,
            pids: PidsController::CgroupV1,
            memfd_noexec: true,
            missing_lsm_hooks: Vec::new(),
        };
        let plan = SessionPlan::new(
            &p,
            degraded,
            detail,
            &features,
            &sandtrace::plan::ProcessInputs::gather(Default::default()).expect("own user"),
        )
        .expect("a plan");
        let report = render::effective_report(&p.effective, &p.compiled, Some(&plan.mechanisms()));
        for (row, mechanism) in [
            ("/usr  ", file_mechanism),
            ("network: blocked", network_mechanism),
            ("ptrace (101)", "seccomp (EPERM)"),
            ("mprotect (10)", "raw tracepoints"),
            ("timeout: 30 s", "sandtrace kills"),
            ("  bpf: ", "program integrity"),
            ("  clone3: ", "CLONE_INTO_CGROUP"),
            ("add_key, keyctl, request_key: ", "baseline: keyrings"),
            (
                "ioctl (TIOCSTI",
                "baseline: TIOCSTI and TIOCLINUX type into the terminal",
            ),
            ("io_uring_setup: ", "baseline: without BPF LSM"),
        ] {
            if row.starts_with("io_uring") && file_mechanism.starts_with("BPF LSM") {
                assert!(
                    !report.contains(row),
                    "io_uring stays with BPF LSM:\n{report}"
                );
                continue;
            }
            assert!(
                line(&report, row).contains(mechanism),
                "{row}: {mechanism}\n{report}"
            );
        }
    }
}
