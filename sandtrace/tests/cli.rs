//! The command line itself: help with examples, shell completions and man pages generated
//! from the CLI definition, errors that say what to do, and the progress line (only on a
//! terminal).

mod common;

use std::process::{Command, Stdio};

use common::*;

fn stdout_of(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn help_shows_examples() {
    let help = stdout_of(&["--help"]);
    for expected in [
        "Examples:",
        "sandtrace learn",
        "sandtrace report",
        "completions",
        "man",
    ] {
        assert!(
            help.contains(expected),
            "no {expected:?} in --help:\n{help}"
        );
    }
    let run_help = stdout_of(&["run", "--help"]);
    for expected in ["Examples:", "sandtrace run --trace-only", "Exit status:"] {
        assert!(
            run_help.contains(expected),
            "no {expected:?} in run --help:\n{run_help}"
        );
    }
    let learn_help = stdout_of(&["learn", "--help"]);
    assert!(
        learn_help.contains("--base") && learn_help.contains("Examples:"),
        "{learn_help}"
    );
}

#[test]
fn completions_are_generated_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef sandtrace"),
        ("fish", "complete -c sandtrace"),
        ("elvish", "sandtrace"),
        ("powershell", "sandtrace"),
    ] {
        let script = stdout_of(&["completions", shell]);
        assert!(
            script.contains(marker),
            "{shell} completions lack {marker:?}"
        );
        for subcommand in ["run", "learn", "report", "policy"] {
            assert!(
                script.contains(subcommand),
                "{shell} completions do not know `{subcommand}`"
            );
        }
    }
    let bash = stdout_of(&["completions", "bash"]);
    assert!(bash.contains("--trace-only"), "flags of run are missing");
}

#[test]
fn bash_completion_script_is_valid_bash() {
    let script = stdout_of(&["completions", "bash"]);
    let scratch = Scratch::new("cli-completions");
    let path = scratch.path("sandtrace.bash");
    std::fs::write(&path, script).unwrap();
    let out = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("running bash -n");
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn man_pages_are_generated() {
    let page = stdout_of(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH sandtrace"),
        "{page}"
    );
    assert!(page.contains("learn") && page.contains("report"), "{page}");
    let run_page = stdout_of(&["man", "run"]);
    assert!(run_page.contains(".TH sandtrace-run"), "{run_page}");
    assert!(run_page.contains("trace\\-only"), "{run_page}");
    let check_page = stdout_of(&["man", "policy", "check"]);
    assert!(
        check_page.contains(".TH sandtrace-policy-check"),
        "{check_page}"
    );
}

#[test]
fn man_for_an_unknown_command_lists_the_known_ones() {
    let out = run(&["man", "rnu"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no command `rnu`") && stderr.contains("run, "),
        "{}",
        describe(&out)
    );
}

#[test]
fn learn_will_not_overwrite_a_policy_without_force() {
    let scratch = Scratch::new("cli-learn-exists");
    let policy = scratch.path("policy.toml");
    std::fs::write(&policy, "[network]\nallow = false\n").unwrap();
    let out = run(&["learn", "-o", policy.to_str().unwrap(), "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pass --force"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&policy).unwrap(),
        "[network]\nallow = false\n"
    );
}

#[test]
fn learn_with_an_invalid_base_starts_nothing() {
    let scratch = Scratch::new("cli-learn-bad-base");
    let base = scratch.path("base.toml");
    std::fs::write(&base, "[syscalls]\ndeny = [\"mout\"]\n").unwrap();
    let out = run(&[
        "learn",
        "--base",
        base.to_str().unwrap(),
        "-o",
        scratch.path("out.toml").to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("did you mean \"mount\"") && stderr.contains("nothing was started"),
        "{}",
        describe(&out)
    );
    assert!(!scratch.path("out.toml").exists());
}

/// Runs `sandtrace ARGS` under a pseudo-terminal (script(1)) and returns what it printed.
fn on_a_terminal(args: &str) -> String {
    let out = Command::new("script")
        .args(["-qefc", &format!("{SANDTRACE} {args}"), "/dev/null"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("running script(1)");
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn progress_line_is_drawn_on_a_terminal_and_cleared_before_the_summary() {
    let screen = on_a_terminal("run --trace-only -- sleep 1.6");
    let first = screen
        .find("\rsandtrace: 1.")
        .unwrap_or_else(|| panic!("no progress line in {screen:?}"));
    let line = &screen[first..];
    let line = &line[..line
        .find("\x1b[K")
        .expect("the line ends by erasing the rest")];
    assert!(
        line.contains(" process") && line.contains(" syscalls") && line.contains(" denied"),
        "{line:?}"
    );
    let summary = screen
        .find("sandtrace: `sleep 1.6` exited with status 0")
        .unwrap_or_else(|| panic!("no summary in {screen:?}"));
    let cleared = screen[..summary]
        .rfind("\r\x1b[K")
        .expect("the progress line is erased");
    assert!(
        screen[cleared + 4..summary].is_empty(),
        "something between erasing the line and the summary: {screen:?}"
    );
}

#[test]
fn no_progress_line_without_a_terminal_or_with_streaming() {
    let out = run(&["run", "--trace-only", "--", "sleep", "1.3"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains('\r'), "{stderr:?}");
    let screen = on_a_terminal("run --trace-only -v -- sleep 1.3");
    assert!(!screen.contains("\rsandtrace: 1."), "{screen:?}");
}
