//! `[[after_exec]]` regimes on this host's kernel (no BPF LSM, so `--allow-degraded`): regimes
//! are tracked in the kernel the same way, and their `[network]` holds; their `[filesystem]`
//! is not enforced, and the run says so. The VM suite (`tests/vm_regimes.rs`) covers the rest.

mod common;
mod probe;

use std::{
    net::TcpListener,
    path::Path,
    process::{Output, Stdio},
};

use common::*;

const BASH: &str = "/usr/bin/bash";
const DASH: &str = "/usr/bin/dash";

/// How many connections reached `listener`: once the session is over, every connect that
/// succeeded waits in its backlog.
fn connections(listener: &TcpListener) -> usize {
    listener.set_nonblocking(true).unwrap();
    std::iter::from_fn(|| listener.accept().ok()).count()
}

/// Runs bash (the base) with `script(connect)` under `policy_text(port)` in a degraded session,
/// where `connect` runs the probe against a listener on `port`; returns the output and how many
/// connections reached the listener. `None` (skipped) without bash and dash.
fn run_regime_session(
    name: &str,
    policy_text: impl Fn(u16) -> String,
    script: impl Fn(&str) -> String,
    log: Option<&Path>,
) -> Option<(Output, usize)> {
    for program in [BASH, DASH] {
        if !Path::new(program).exists() {
            skip(name, &format!("no {program}"), InCi::MayLack);
            return None;
        }
    }
    let scratch = Scratch::new(name);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let policy = scratch.path("policy.toml");
    write_policy(&policy, &policy_text(port));
    let connect = format!("{} 'tcp-connect 127.0.0.1:{port}'", probe::PROBE);
    let mut command = sandtrace();
    command
        .args(["run", "--allow-degraded", "--policy"])
        .arg(&policy);
    if let Some(log) = log {
        command.arg("-o").arg(log);
    }
    let out = command
        .args(["--", BASH, "-c", &script(&connect)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let arrived = connections(&listener);
    Some((out, arrived))
}

/// The result of every probe run, in order (one `PROBE-RESULT` line each).
fn probe_results(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("PROBE-RESULT: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_regime_without_network_holds_its_processes_and_not_the_others() {
    let scratch = Scratch::new("regime-net-log");
    let log = scratch.path("events.jsonl");
    // The base process (bash) connects, then its dash child (in the regime) twice: directly
    // and from a grandchild, then the base again.
    let Some((out, arrived)) = run_regime_session(
        "regime-net",
        |port| {
            format!(
                "[network]\nallow = false\nallow_connect = [\"127.0.0.1:{port}\"]\n\
                 [[after_exec]]\nname = \"scripts\"\nprograms = [\"{DASH}\"]\n\
                 [after_exec.network]\nallow = false\n"
            )
        },
        |connect| format!("{connect}; {DASH} -c \"{connect}; ({connect})\"; {connect}"),
        Some(&log),
    ) else {
        return;
    };
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        probe_results(&out),
        ["ok", "EPERM", "EPERM", "ok"],
        "{}",
        describe(&out)
    );
    // Checked from outside: two connections, the base's.
    assert_eq!(arrived, 2, "{}", describe(&out));
    let events = read_jsonl(&log);
    let refused: Vec<_> = of_type(&events, "network")
        .into_iter()
        .filter(|e| e["action"] == "deny")
        .collect();
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert!(
        refused.iter().all(|e| e["regime"] == "scripts"),
        "{refused:#?}"
    );
    let entered = of_type(&events, "process")
        .into_iter()
        .filter(|e| e["action"] == "exec" && e["path"] == DASH)
        .count();
    assert_eq!(entered, 1);
}

#[test]
fn a_regime_takes_the_network_away_from_its_processes_under_an_open_base() {
    let Some((out, arrived)) = run_regime_session(
        "regime-open",
        |_| {
            format!(
                "[network]\nallow = true\n[[after_exec]]\nprograms = [\"{DASH}\"]\n\
                 [after_exec.network]\nallow = false\n"
            )
        },
        |connect| format!("{connect}; {DASH} -c \"{connect}\""),
        None,
    ) else {
        return;
    };
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(probe_results(&out), ["ok", "EPERM"], "{}", describe(&out));
    assert_eq!(arrived, 1, "{}", describe(&out));
}

#[test]
fn a_command_that_enters_a_regime_itself_is_warned_about() {
    if !Path::new(DASH).exists() {
        skip("regime warning", "no dash", InCi::MayLack);
        return;
    }
    let scratch = Scratch::new("regime-cmd");
    let policy = scratch.path("policy.toml");
    write_policy(
        &policy,
        &format!(
            "[network]\nallow = true\n[[after_exec]]\nname = \"scripts\"\n\
             programs = [\"{DASH}\"]\n[after_exec.network]\nallow = false\n"
        ),
    );
    let run_cmd = |cmd: &str| {
        let out = sandtrace()
            .args(["run", "--allow-degraded", "--policy"])
            .arg(&policy)
            .args(["--", cmd, "-c", "true"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // CMD itself is one of the regime's programs.
    let warned = run_cmd(DASH);
    assert!(
        warned.contains(&format!("{DASH} enters the after_exec regime scripts")),
        "{warned}"
    );
    if Path::new(BASH).exists() {
        assert!(!run_cmd(BASH).contains("after_exec regime"));
    }
}
