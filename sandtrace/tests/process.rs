//! How CMD's process is run, checked from outside the session, in `--trace-only` and
//! `--allow-degraded` sessions (neither needs BPF LSM): the user it runs as (through sudo,
//! `--user`), its capabilities (none by default, `[process] capabilities`, `--as-root`) and its
//! environment (`[environment]`, `--pass-env`, `--keep-env`).

mod common;
mod probe;

use std::{
    collections::BTreeMap,
    fs,
    net::{Ipv4Addr, TcpListener},
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::Path,
    process::{Output, Stdio},
};

use common::*;
use serde_json::Value;

const MODES: [&str; 2] = ["--trace-only", "--allow-degraded"];
/// `nobody`, present on every Linux system this runs on; the tests check its passwd entry.
const NOBODY: u32 = 65534;
/// `[process]`, `[environment]`: a policy that lets the test commands run in degraded mode.
const ALL_ALLOWED: &str = "[filesystem]\nallow_read = [\"/\"]\nallow_write = [\"/tmp\"]\n\
                           allow_exec = [\"/\"]\n[network]\nallow = true\n";

/// Whether this test can run: it must be root (sandtrace needs it) and `nobody` must be 65534.
fn can_run(test: &str) -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        skip(test, "needs root", InCi::Guaranteed);
        return false;
    }
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(NOBODY)) {
        Ok(Some(user)) if user.name == "nobody" => true,
        _ => {
            skip(test, "no user nobody with uid 65534", InCi::MayLack);
            false
        }
    }
}

/// A run of `sh -c SCRIPT` under sandtrace in `mode` with `flags`, `policy` (text) and `env`
/// added to sandtrace's environment; its log's events.
struct Run {
    out: Output,
    events: Vec<Value>,
}

fn run_sh(
    scratch: &Scratch,
    mode: &str,
    flags: &[&str],
    policy: &str,
    env: &[(&str, &str)],
    script: &str,
) -> Run {
    let policy_file = scratch.path("policy.toml");
    fs::write(&policy_file, format!("{ALL_ALLOWED}{policy}")).unwrap();
    let log = scratch.path("events.jsonl");
    let _ = fs::remove_file(&log);
    let mut cmd = sandtrace();
    cmd.args(["run", mode, "--policy"])
        .arg(&policy_file)
        .arg("-o")
        .arg(&log)
        .args(flags)
        .args(["--", "sh", "-c", script])
        .current_dir(&scratch.0)
        .stdin(Stdio::null())
        .envs(env.iter().copied());
    let out = cmd.output().expect("running sandtrace");
    let events = if log.exists() {
        read_jsonl(&log)
    } else {
        Vec::new()
    };
    Run { out, events }
}

impl Run {
    fn ok(self, what: &str) -> Self {
        assert!(self.out.status.success(), "{what}: {}", describe(&self.out));
        self
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// `Name: value` lines of /proc/self/status that CMD printed.
    fn status(&self) -> BTreeMap<String, String> {
        self.stdout()
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    v.split_whitespace().collect::<Vec<_>>().join(" "),
                )
            })
            .collect()
    }

    fn run_as(&self) -> &Value {
        &summary(&self.events)["run_as"]
    }
}

/// Prints CMD's ids, capabilities and no_new_privs as `Name: value` lines.
const SHOW_STATUS: &str =
    "grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status";

/// A scratch directory CMD can write to whatever its user.
fn open_scratch(name: &str) -> Scratch {
    let scratch = Scratch::new(name);
    fs::set_permissions(&scratch.0, fs::Permissions::from_mode(0o777)).unwrap();
    scratch
}

const SUDO_NOBODY: [(&str, &str); 3] = [
    ("SUDO_UID", "65534"),
    ("SUDO_GID", "65534"),
    ("SUDO_USER", "nobody"),
];

#[test]
fn through_sudo_the_command_runs_as_the_invoking_user_and_creates_its_files() {
    if !can_run("through_sudo_the_command_runs_as_the_invoking_user") {
        return;
    }
    for mode in MODES {
        let scratch = open_scratch("sudo");
        let created = scratch.path("created");
        let script = format!(
            "{SHOW_STATUS}; touch {}; echo HOME: $HOME; echo USER: $USER",
            created.display()
        );
        let run = run_sh(&scratch, mode, &[], "", &SUDO_NOBODY, &script).ok(mode);
        let status = run.status();
        assert_eq!(
            status["Uid"], "65534 65534 65534 65534",
            "{mode}: {status:?}"
        );
        assert_eq!(
            status["Gid"], "65534 65534 65534 65534",
            "{mode}: {status:?}"
        );
        assert_eq!(status["Groups"], "65534", "{mode}: {status:?}");
        assert_eq!(status["CapEff"], "0000000000000000", "{mode}");
        // nobody's passwd entry, not sandtrace's HOME.
        assert_eq!(status["HOME"], "/nonexistent", "{mode}");
        assert_eq!(status["USER"], "nobody", "{mode}");
        // Checked from outside: the file belongs to the invoking user.
        let meta = fs::metadata(&created).expect("CMD created the file");
        assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY), "{mode}");
        let run_as = run.run_as();
        assert_eq!(run_as["uid"], NOBODY, "{mode}: {run_as}");
        assert_eq!(run_as["user"], "nobody", "{mode}: {run_as}");
        assert_eq!(run_as["capabilities"], serde_json::json!([]), "{mode}");
        assert!(
            run.stderr()
                .contains("ran as       uid 65534 (nobody), gid 65534, capabilities: none"),
            "{mode}: {}",
            run.stderr()
        );
    }
}

#[test]
fn user_flag_chooses_the_user_and_group() {
    if !can_run("user_flag_chooses_the_user_and_group") {
        return;
    }
    let scratch = open_scratch("user-flag");
    let run = run_sh(
        &scratch,
        "--trace-only",
        &["--user", "nobody:0"],
        "",
        &[],
        SHOW_STATUS,
    )
    .ok("--user nobody:0");
    let status = run.status();
    assert_eq!(status["Uid"], "65534 65534 65534 65534", "{status:?}");
    assert_eq!(status["Gid"], "0 0 0 0", "{status:?}");
    let out = run_sh(
        &scratch,
        "--trace-only",
        &["--user", "no-such-user-st"],
        "",
        &[],
        "true",
    )
    .out;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no user named"),
        "{}",
        describe(&out)
    );
}

#[test]
fn root_without_sudo_keeps_uid_0_without_any_capability() {
    if !can_run("root_without_sudo_keeps_uid_0_without_any_capability") {
        return;
    }
    for mode in MODES {
        let scratch = open_scratch("root");
        // Root-only effects, each possible for the test (root with capabilities) itself:
        // reading another user's 0600 file and giving a file away.
        let secret = scratch.path("secret");
        fs::write(&secret, "the secret\n").unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
        nix::unistd::chown(&secret, Some(NOBODY.into()), Some(NOBODY.into())).unwrap();
        let mine = scratch.path("mine");
        fs::write(&mine, "").unwrap();
        let script = format!(
            "{SHOW_STATUS}; cat {} && echo READ: yes; chown 65534 {} && echo CHOWN: yes; true",
            secret.display(),
            mine.display()
        );
        let run = run_sh(&scratch, mode, &[], "", &[], &script).ok(mode);
        let status = run.status();
        assert_eq!(status["Uid"], "0 0 0 0", "{mode}");
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(status[set], "0000000000000000", "{mode}: {set}");
        }
        assert_eq!(status["NoNewPrivs"], "1", "{mode}");
        assert!(
            !run.stdout().contains("the secret"),
            "{mode}: {}",
            run.stdout()
        );
        assert!(
            !status.contains_key("READ") && !status.contains_key("CHOWN"),
            "{mode}"
        );
        // From outside: the file is still root's.
        assert_eq!(fs::metadata(&mine).unwrap().uid(), 0, "{mode}");

        // With --as-root the same script does both, and says so.
        let run = run_sh(&scratch, mode, &["--as-root"], "", &[], &script).ok(mode);
        let status = run.status();
        assert_eq!(status["READ"], "yes", "{mode}: {status:?}");
        assert_eq!(status["CHOWN"], "yes", "{mode}: {status:?}");
        assert_eq!(fs::metadata(&mine).unwrap().uid(), NOBODY, "{mode}");
        assert_eq!(
            status["CapEff"],
            own_status("CapEff"),
            "{mode}: sandtrace's own"
        );
        assert_eq!(
            run.run_as()["capabilities"],
            serde_json::json!(["all"]),
            "{mode}"
        );
        assert!(
            run.stderr().contains("capabilities: all (--as-root)"),
            "{mode}"
        );
        assert!(run.stderr().contains("warning: --as-root"), "{mode}");
    }
}

/// A field of this test process's /proc/self/status.
fn own_status(name: &str) -> String {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap()
}

/// A free TCP port below 1024 on loopback, found by binding it (as root) and letting it go.
fn free_privileged_port() -> Option<u16> {
    (600..1024).find(|&port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok())
}

#[test]
fn a_policy_capability_survives_execve_for_root_and_for_a_user() {
    if !can_run("a_policy_capability_survives_execve_for_root_and_for_a_user") {
        return;
    }
    let Some(port) = free_privileged_port() else {
        skip(
            "a_policy_capability_survives_execve",
            "no free port below 1024",
            InCi::MayLack,
        );
        return;
    };
    let bind = format!("bind 127.0.0.1:{port}");
    assert_eq!(probe::outside(&bind), ["ok"], "outside, as root");
    // One argument per operation.
    let probe = format!("{} '{bind}'", probe::PROBE);
    let script = format!("{SHOW_STATUS}; {probe}");
    let keep = "[process]\ncapabilities = [\"CAP_NET_BIND_SERVICE\"]\n";
    for mode in MODES {
        for (who, env) in [("root", &[][..]), ("nobody", &SUDO_NOBODY[..])] {
            let scratch = open_scratch("caps");
            let what = format!("{mode}, {who}");
            let run = run_sh(&scratch, mode, &[], keep, env, &script).ok(&what);
            let status = run.status();
            for set in ["CapPrm", "CapEff", "CapAmb", "CapBnd"] {
                assert_eq!(status[set], "0000000000000400", "{what}: {set}");
            }
            assert_eq!(status["NoNewPrivs"], "1", "{what}");
            assert!(
                run.stdout().contains("PROBE-RESULT: ok"),
                "{what}: {}",
                run.stdout()
            );
            assert_eq!(
                run.run_as()["capabilities"],
                serde_json::json!(["CAP_NET_BIND_SERVICE"]),
                "{what}"
            );
            assert!(
                run.stderr()
                    .contains("keeps CAP_NET_BIND_SERVICE: it may bind to ports below 1024"),
                "{what}"
            );
            // Without the capability the same bind is refused by the kernel.
            let run = run_sh(&scratch, mode, &[], "", env, &probe).ok(&what);
            assert!(
                run.stdout().contains("PROBE-RESULT: EACCES"),
                "{what}: {}",
                run.stdout()
            );
        }
    }
}

#[test]
fn an_unknown_capability_is_an_error_at_its_position() {
    let scratch = Scratch::new("unknown-cap");
    let policy = scratch.path("p.toml");
    fs::write(&policy, "[process]\ncapabilities = [\"CAP_NET_BIND\"]\n").unwrap();
    let out = run(&["policy", "check", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown capability \"CAP_NET_BIND\""),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:2:17", policy.display())),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
fn policy_check_and_show_print_the_process_and_environment() {
    let scratch = Scratch::new("check-process");
    let policy = scratch.path("p.toml");
    fs::write(
        &policy,
        "[process]\ncapabilities = [\"CAP_NET_BIND_SERVICE\"]\n[environment]\npass = [\"NODE_*\"]\nset = { CI = \"1\" }\n",
    )
    .unwrap();
    let out = run(&["policy", "check", policy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("CAP_NET_BIND_SERVICE: bind to ports below 1024"),
        "{text}"
    );
    assert!(text.contains("pass NODE_*"), "{text}");
    assert!(text.contains("set CI"), "{text}");
    assert!(text.contains("the command runs as: uid"), "{text}");
    let out = run(&["policy", "show", policy.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("capabilities = [\n    \"CAP_NET_BIND_SERVICE\",\n]"),
        "{text}"
    );
    assert!(text.contains("set = { CI = \"1\" }"), "{text}");
    // What `show` prints parses back.
    let shown = scratch.path("shown.toml");
    fs::write(&shown, text.as_bytes()).unwrap();
    let again = run(&["policy", "show", shown.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout)
            .lines()
            .skip(1)
            .collect::<Vec<_>>(),
        text.lines().skip(1).collect::<Vec<_>>()
    );
}

/// `env` of CMD as `NAME=value` lines.
fn vars_of(run: &Run) -> BTreeMap<String, String> {
    run.stdout()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn the_environment_is_filtered_and_removed_names_are_listed() {
    if !can_run("the_environment_is_filtered_and_removed_names_are_listed") {
        return;
    }
    let secrets = [
        ("SANDTRACE_TEST_TOKEN", "hunter2"),
        ("SANDTRACE_TEST_OTHER", "other"),
        ("NPM_TOKEN", "npm-secret"),
    ];
    for mode in MODES {
        let scratch = open_scratch("env");
        let run = run_sh(&scratch, mode, &[], "", &secrets, "env").ok(mode);
        let vars = vars_of(&run);
        for (name, value) in secrets {
            assert!(
                !vars.contains_key(name),
                "{mode}: {name} reached the command"
            );
            assert!(!run.stdout().contains(value), "{mode}");
            // Named (never with the value) before CMD starts, in the summary and the log.
            assert!(!run.stderr().contains(value), "{mode}");
            let before = run
                .stderr()
                .lines()
                .find(|l| l.contains("environment: removed"))
                .map(str::to_owned)
                .unwrap_or_default();
            assert!(before.contains(name), "{mode}: {}", run.stderr());
            let removed = &summary(&run.events)["removed_environment"];
            assert!(
                removed.as_array().unwrap().iter().any(|n| n == name),
                "{mode}: {removed}"
            );
        }
        assert!(vars.contains_key("PATH"), "{mode}: the base passes");

        // A pattern, a value, one more name by flag.
        let policy =
            "[environment]\npass = [\"SANDTRACE_TEST_T*\"]\nset = { GREETING = \"hi there\" }\n";
        let run = run_sh(
            &scratch,
            mode,
            &["--pass-env", "NPM_TOKEN"],
            policy,
            &secrets,
            "env",
        )
        .ok(mode);
        let vars = vars_of(&run);
        assert_eq!(
            vars.get("SANDTRACE_TEST_TOKEN").map(String::as_str),
            Some("hunter2"),
            "{mode}"
        );
        assert_eq!(
            vars.get("NPM_TOKEN").map(String::as_str),
            Some("npm-secret"),
            "{mode}"
        );
        assert_eq!(
            vars.get("GREETING").map(String::as_str),
            Some("hi there"),
            "{mode}"
        );
        assert!(!vars.contains_key("SANDTRACE_TEST_OTHER"), "{mode}");

        // Everything.
        let run = run_sh(&scratch, mode, &["--keep-env"], "", &secrets, "env").ok(mode);
        let vars = vars_of(&run);
        for (name, value) in secrets {
            assert_eq!(
                vars.get(name).map(String::as_str),
                Some(value),
                "{mode}: --keep-env"
            );
        }
        assert_eq!(
            summary(&run.events)["removed_environment"],
            serde_json::json!([])
        );
    }
    // Names are checked.
    let out = run(&["run", "--trace-only", "--pass-env", "A=B", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn under_sudo_tilde_is_the_invoking_users_home() {
    if !can_run("under_sudo_tilde_is_the_invoking_users_home") {
        return;
    }
    let scratch = Scratch::new("tilde");
    let policy = scratch.path("p.toml");
    fs::write(&policy, "[filesystem]\ndeny = [\"~/.ssh\"]\n").unwrap();
    let out = sandtrace()
        .args(["policy", "check", policy.to_str().unwrap()])
        .envs(SUDO_NOBODY)
        .env("HOME", "/root")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/nonexistent/.ssh"), "{text}");
}

#[test]
fn the_users_command_can_open_its_terminal() {
    if !can_run("the_users_command_can_open_its_terminal") {
        return;
    }
    if !Path::new("/usr/bin/script").exists() {
        skip(
            "the_users_command_can_open_its_terminal",
            "script(1) is not installed",
            InCi::MayLack,
        );
        return;
    }
    // script(1) gives sandtrace a terminal; CMD, as nobody, opens its own again as /dev/tty.
    let line = format!(
        "{SANDTRACE} run --trace-only -- sh -c 'echo via-tty > /dev/tty; stat -c owner=%u /proc/self/fd/0'"
    );
    let out = std::process::Command::new("/usr/bin/script")
        .args(["-qec", &line, "/dev/null"])
        .envs(SUDO_NOBODY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(text.contains("via-tty"), "{text}");
    assert!(text.contains("owner=65534"), "{text}");
}
