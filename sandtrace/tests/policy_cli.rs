//! Command-line merging and the `sandtrace policy check` / `policy show` commands.

use std::path::{Path, PathBuf};

use clap::Parser as _;
use sandtrace::cli::{Cli, Command};
use sandtrace::exit::USAGE as EXIT_INVALID_POLICY;
use sandtrace::plan::{KernelFeatures, PidsController};
use sandtrace::policy::command::execute;
use sandtrace::policy::{
    Access, CliOverrides, Origin, PathKind, Policy, Verdict, compile, load, parse, prepare, resolve,
};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// Runs `sandtrace ARGS...` through clap and the policy command; returns (status, stdout,
/// stderr).
fn sandtrace(args: &[&str]) -> (u8, String, String) {
    let cli = Cli::try_parse_from(std::iter::once("sandtrace").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"));
    let Command::Policy(command) = cli.command else {
        panic!("{args:?} is not a policy command");
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = execute(&command.to_request(), &bpf_lsm_kernel(), &mut out, &mut err);
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("output is UTF-8");
    (status, text(out), text(err))
}

fn strict_resolved(overrides: &CliOverrides) -> sandtrace::policy::EffectivePolicy {
    let policy = load(&example("strict.toml")).unwrap_or_else(|d| panic!("{d}"));
    resolve(
        &policy,
        overrides,
        Path::new("/work/project"),
        Some(Path::new("/home/dev")),
    )
    .unwrap_or_else(|d| panic!("{d}"))
}

#[test]
fn allow_path_adds_read_and_write() {
    let overrides = CliOverrides {
        allow_paths: vec!["data".into(), "~/cache".into()],
        ..CliOverrides::default()
    };
    let effective = strict_resolved(&overrides);
    let compiled = compile(&effective).unwrap_or_else(|d| panic!("{d}"));
    for path in ["/work/project/data/in.csv", "/home/dev/cache/x"] {
        let decision = compiled.decide(path.as_bytes());
        assert!(decision.allows(Access::Read), "{path} readable");
        assert!(decision.allows(Access::Write), "{path} writable");
        assert!(!decision.allows(Access::Exec), "{path} not executable");
    }
    let from_flag: Vec<String> = effective
        .paths
        .rules(PathKind::Write)
        .iter()
        .filter(|r| matches!(r.origin, Origin::Flag("--allow-path")))
        .map(|r| r.pattern.to_string())
        .collect();
    assert_eq!(from_flag, ["/work/project/data", "/home/dev/cache"]);
}

#[test]
fn allow_exec_makes_everything_readable_executable_but_not_denied_paths() {
    let without =
        compile(&strict_resolved(&CliOverrides::default())).unwrap_or_else(|d| panic!("{d}"));
    assert!(!without.decide(b"/usr/bin/ls").allows(Access::Exec));
    let overrides = CliOverrides {
        allow_exec: true,
        ..CliOverrides::default()
    };
    let effective = strict_resolved(&overrides);
    let compiled = compile(&effective).unwrap_or_else(|d| panic!("{d}"));
    assert!(compiled.decide(b"/usr/bin/ls").allows(Access::Exec));
    assert!(
        compiled
            .decide(b"/work/project/output/tool")
            .allows(Access::Exec)
    );
    assert!(
        !compiled.decide(b"/opt/tool").allows(Access::Exec),
        "unreadable stays unexecutable"
    );
    assert!(matches!(
        compiled
            .decide(b"/work/project/output/.env")
            .verdict(Access::Exec),
        Verdict::Denied { .. }
    ));
}

#[test]
fn allow_net_and_timeout_override_only_when_given() {
    let plain = strict_resolved(&CliOverrides::default());
    assert!(!plain.network_allowed.value);
    assert_eq!(plain.timeout.value.as_secs(), 30);
    assert!(matches!(plain.timeout.origin, Origin::File(_)));

    let overrides = CliOverrides {
        allow_net: true,
        timeout_secs: Some(5),
        ..CliOverrides::default()
    };
    let merged = strict_resolved(&overrides);
    assert!(merged.network_allowed.value);
    assert!(matches!(
        merged.network_allowed.origin,
        Origin::Flag("--allow-net")
    ));
    assert_eq!(merged.timeout.value.as_secs(), 5);
    assert!(matches!(merged.timeout.origin, Origin::Flag("--timeout")));
}

#[test]
fn invalid_flags_are_rejected_with_exit_status_2() {
    let strict = example("strict.toml");
    let file = strict.to_str().expect("UTF-8 path");
    let (status, out, err) = sandtrace(&["policy", "check", file, "--timeout", "0"]);
    assert_eq!(status, EXIT_INVALID_POLICY, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("error: --timeout must be at least 1 second, not 0"),
        "{err}"
    );

    let (status, _, err) = sandtrace(&["policy", "check", file, "--allow-path", "/x/**y"]);
    assert_eq!(status, EXIT_INVALID_POLICY, "{err}");
    assert!(
        err.contains("error: --allow-path /x/**y: `**` must be a whole path component"),
        "{err}"
    );
}

#[test]
fn missing_policy_file_is_exit_status_2() {
    let (status, out, err) = sandtrace(&["policy", "check", "/nonexistent/policy.toml"]);
    assert_eq!(status, EXIT_INVALID_POLICY);
    assert!(out.is_empty());
    assert!(
        err.contains("cannot read policy file /nonexistent/policy.toml"),
        "{err}"
    );
}

#[test]
fn check_prints_the_effective_policy_with_origins() {
    let strict = example("strict.toml");
    let file = strict.to_str().expect("UTF-8 path");
    let (status, out, err) = sandtrace(&[
        "policy",
        "check",
        file,
        "--allow-path",
        "/srv/data",
        "--allow-net",
        "--timeout",
        "9",
    ]);
    assert_eq!(status, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    let cwd = std::env::current_dir().expect("cwd");
    let lines: Vec<&str> = out.lines().collect();
    let line_with = |needle: &str| -> &str {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
    };
    assert_eq!(lines[0], format!("{file}: valid"));
    assert!(line_with("/usr ").contains(&format!("{file}:8:15")));
    assert!(line_with("/srv/data").contains("--allow-path"));
    assert!(line_with(&format!("{}/output", cwd.display())).contains(&format!("{file}:10:16")));
    assert!(line_with("network: allowed").contains("--allow-net"));
    assert!(line_with("timeout: 9 s").contains("--timeout"));
    assert!(line_with("mount (165)").contains(&format!("{file}:22:9")));
    assert!(line_with("kexec_file_load (320)").contains("always blocked"));
    assert!(line_with("max_processes: unlimited").contains("default"));
    // The third column: what enforces each rule on the (BPF-LSM) kernel given to `execute`.
    assert!(line_with("/usr ").contains("BPF LSM file_open"));
    assert!(line_with("network: allowed").contains("nothing to enforce"));
    assert!(line_with("mount (165)").contains("seccomp (EPERM)"));
    assert!(line_with("max_processes: unlimited").contains("no limit"));
    assert!(line_with("enforcement on this kernel:").contains("enforce (BPF LSM available)"));
}

#[test]
fn show_prints_toml_that_parses_back() {
    for name in ["strict.toml", "npm_audit.toml"] {
        let path = example(name);
        let (status, out, err) = sandtrace(&["policy", "show", path.to_str().expect("UTF-8")]);
        assert_eq!(status, 0, "{err}");
        let original = load(&path).unwrap_or_else(|d| panic!("{d}"));
        let reparsed = parse::parse(Path::new("shown.toml"), out.clone())
            .unwrap_or_else(|d| panic!("{d}\n{out}"));
        assert_eq!(reparsed, original, "{out}");
    }
    let (status, out, err) = sandtrace(&["policy", "show", "--default"]);
    assert_eq!(status, 0, "{err}");
    let reparsed = parse::parse(Path::new("default.toml"), out.clone())
        .unwrap_or_else(|d| panic!("{d}\n{out}"));
    assert_eq!(reparsed, Policy::builtin_default());
}

#[test]
fn show_needs_exactly_one_of_file_and_default() {
    assert!(Cli::try_parse_from(["sandtrace", "policy", "show"]).is_err());
    assert!(Cli::try_parse_from(["sandtrace", "policy", "show", "x.toml", "--default"]).is_err());
}

#[test]
fn the_builtin_default_is_restrictive() {
    let prepared = prepare(None, &CliOverrides::default(), None).unwrap_or_else(|d| panic!("{d}"));
    let decide = |path: &str| prepared.compiled.decide(path.as_bytes());
    assert!(decide("/usr/lib/x86_64-linux-gnu/libc.so.6").allows(Access::Read));
    assert!(decide("/etc/ld.so.cache").allows(Access::Read));
    assert!(decide("/usr/bin/ls").allows(Access::Exec));
    assert!(!decide("/tmp/x").allows(Access::Write));
    assert!(!decide("/tmp/x").allows(Access::Read));
    assert!(!decide("/etc/passwd").allows(Access::Read));
    assert!(
        !decide("/usr/lib/x").allows(Access::Write),
        "nothing is writable"
    );
    assert!(!prepared.effective.network_allowed.value);
    assert_eq!(prepared.effective.timeout.value.as_secs(), 30);
    assert_eq!(prepared.effective.max_processes.value, None);
    let denied: Vec<&str> = prepared
        .effective
        .denied_syscalls
        .iter()
        .map(|s| s.value.name())
        .collect();
    for always in sandtrace::policy::ALWAYS_BLOCKED_SYSCALLS {
        assert!(
            denied.contains(&always.name()),
            "{} is denied: {denied:?}",
            always.name()
        );
    }
    assert!(prepared.effective.log_only_syscalls.is_empty());
}

/// `policy check` reports the mechanisms of a kernel with BPF LSM, Landlock and cgroup v2 pids.
fn bpf_lsm_kernel() -> KernelFeatures {
    KernelFeatures {
        bpf_lsm: Ok(()),
        landlock_abi: Ok(6),
        memfd_noexec: true,
        pids: PidsController::CgroupV2,
        missing_lsm_hooks: Vec::new(),
    }
}
