//! Trace accuracy on the host's real kernel: `sandtrace run` counts the same syscalls as
//! `strace -f` on deterministic programs, names signal returns, and leaves out the launcher's
//! own calls before CMD's exec.
//!
//! The programs are chosen so that nothing legitimately differs between the two tracers:
//! - each makes the same calls on every run (fixed files, fixed directory, the same
//!   environment for both tracers, no timing; perl with a fixed hash seed): a program's
//!   allocations, and so its `brk` calls, vary with its hash seed and its environment's size;
//! - none has a signal interrupt a blocking call: under ptrace, a signal the program ignores
//!   (an unhandled SIGCHLD, say) still stops the tracee and so restarts the call it was
//!   blocked in, which strace then shows twice; the forking program blocks SIGCHLD instead;
//! - vDSO calls (`clock_gettime`, ...) are not syscalls to either tracer.
//!
//! strace shows a command's calls from its `execve` on, as sandtrace does: what runs before
//! (strace's fork, sandtrace's launcher) is the tracer's own.

mod common;

use std::{collections::BTreeMap, fs, path::Path, process::Stdio};

use common::*;
use serde_json::Value;

const STRACE: &str = "/usr/bin/strace";

/// Whether strace is installed; prints the skip otherwise.
fn strace_or_skip(test: &str) -> bool {
    if Path::new(STRACE).exists() {
        return true;
    }
    println!("skipped {test}: {STRACE} is not installed");
    false
}

type Counts = BTreeMap<String, u64>;

/// The calls of one `strace -f -qq -o` log, by name. A call is counted at the line where it
/// starts: `PID name(...`; the lines that resume it (`<... name resumed>`), signals (`---`) and
/// exits (`+++`) are not calls.
fn parse_strace(log: &str) -> Counts {
    let mut counts = Counts::new();
    for line in log.lines() {
        let rest = line
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        if rest.starts_with("<...") || rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            !name.is_empty() && rest[name.len()..].starts_with('('),
            "unexpected strace line: {line}"
        );
        *counts.entry(name).or_default() += 1;
    }
    counts
}

/// Environment variables both tracers give the programs.
type Env<'a> = &'a [(&'a str, &'a str)];

/// The environment both tracers start with, besides the test's `Env`: the same bytes on every
/// machine, since a program's allocations (and so its `brk` calls) can depend on its
/// environment's size. `NO_COLOR` is what `common::sandtrace` sets.
const BASE_ENV: Env<'static> = &[("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), ("NO_COLOR", "1")];

/// Gives strace (and so its tracee, which inherits them) what sandtrace gives CMD: default
/// signal dispositions and an empty mask. A test run in the background of a non-interactive
/// shell inherits SIGINT and SIGQUIT ignored, and `sh` makes fewer `rt_sigaction` calls then.
fn default_signals(command: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: signal(2) and sigprocmask(2) are async-signal-safe; the set lives on this stack.
    unsafe {
        command.pre_exec(|| {
            for sig in 1..libc::SIGRTMAX() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&raw mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &raw const set, std::ptr::null_mut());
            Ok(())
        })
    }
}

/// Per-syscall counts of `strace -f` running `cmd` (which must succeed).
fn strace_counts(scratch: &Scratch, env: Env<'_>, cmd: &[&str]) -> Counts {
    let log = scratch.path("strace.txt");
    let out = default_signals(&mut std::process::Command::new(STRACE))
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .arg("--")
        .args(cmd)
        .env_clear()
        .envs(BASE_ENV.iter().chain(env).copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running strace: {e}"));
    assert!(out.status.success(), "strace {cmd:?}: {}", describe(&out));
    let text = fs::read_to_string(&log).unwrap_or_else(|e| panic!("reading the strace log: {e}"));
    parse_strace(&text)
}

/// Runs `sandtrace run FLAGS -o LOG -- CMD` (which must succeed) and returns its events.
fn sandtrace_events(scratch: &Scratch, flags: &[&str], env: Env<'_>, cmd: &[&str]) -> Vec<Value> {
    let log = scratch.path("events.jsonl");
    // `--keep-env`: the program gets exactly the environment strace gives it.
    let mut args = vec!["run", "--keep-env"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["-o", log.to_str().unwrap(), "--"]);
    args.extend_from_slice(cmd);
    let out = sandtrace()
        .args(&args)
        .env_clear()
        .envs(BASE_ENV.iter().chain(env).copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running sandtrace {args:?}: {e}"));
    assert!(
        out.status.success(),
        "sandtrace {args:?}: {}",
        describe(&out)
    );
    read_jsonl(&log)
}

/// The per-syscall counts of a sandtrace log, asserting that its syscall lines and the
/// summary's kernel counts agree and that every line is named.
fn sandtrace_counts(events: &[Value]) -> Counts {
    let summary = summary(events);
    assert_eq!(summary["lost_events"], 0, "events were lost: {summary}");
    assert_eq!(summary["incomplete_events"], 0, "{summary}");
    let mut lines = Counts::new();
    for s in of_type(events, "syscall") {
        let name = s["syscall"].as_str().expect("a syscall name");
        assert_ne!(name, "unknown", "an unnamed syscall line: {s}");
        *lines.entry(name.to_owned()).or_default() += 1;
    }
    let counted: Counts = summary["syscall_counts"]
        .as_array()
        .expect("syscall_counts")
        .iter()
        .map(|c| {
            let name = c["syscall"].as_str().unwrap().to_owned();
            (name, c["count"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        lines, counted,
        "the syscall lines disagree with the summary's counts"
    );
    lines
}

/// Names whose counts differ, with both counts, for the failure message.
fn differences(sandtrace: &Counts, strace: &Counts) -> String {
    let mut names: Vec<&String> = sandtrace.keys().chain(strace.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| {
            let (a, b) = (
                sandtrace.get(n).copied().unwrap_or(0),
                strace.get(n).copied().unwrap_or(0),
            );
            (a != b).then(|| format!("  {n}: sandtrace {a}, strace {b}\n"))
        })
        .collect()
}

/// Runs `cmd` under strace and under sandtrace (`setup` first, before each) and asserts equal
/// per-syscall counts.
fn assert_counts_equal(
    name: &str,
    flags: &[&str],
    env: Env<'_>,
    cmd: &[&str],
    setup: impl Fn(&Scratch),
) {
    let scratch = Scratch::new(name);
    setup(&scratch);
    let expected = strace_counts(&scratch, env, cmd);
    setup(&scratch);
    let events = sandtrace_events(&scratch, flags, env, cmd);
    let got = sandtrace_counts(&events);
    assert!(
        got == expected,
        "{cmd:?} ({flags:?}): per-syscall counts differ from strace -f:\n{}",
        differences(&got, &expected)
    );
}

#[test]
fn true_makes_the_calls_strace_counts() {
    if !strace_or_skip("true_makes_the_calls_strace_counts") {
        return;
    }
    assert_counts_equal(
        "strace-true",
        &["--trace-only"],
        &[],
        &["/bin/true"],
        |_| {},
    );
}

#[test]
fn ls_of_a_small_directory_makes_the_calls_strace_counts() {
    if !strace_or_skip("ls_of_a_small_directory_makes_the_calls_strace_counts") {
        return;
    }
    let scratch = Scratch::new("strace-ls-dir");
    let dir = scratch.path("dir");
    fs::create_dir(&dir).unwrap();
    for f in ["a", "b", "c"] {
        fs::write(dir.join(f), f).unwrap();
    }
    let dir = dir.to_str().unwrap().to_owned();
    assert_counts_equal(
        "strace-ls",
        &["--trace-only"],
        &[],
        &["ls", "-l", &dir],
        |_| {},
    );
}

#[test]
fn a_shell_redirection_makes_the_calls_strace_counts() {
    if !strace_or_skip("a_shell_redirection_makes_the_calls_strace_counts") {
        return;
    }
    let scratch = Scratch::new("strace-sh-file");
    let file = scratch.path("out.txt");
    let script = format!("echo x > {}", file.display());
    // The file is removed before each run: both create it.
    assert_counts_equal(
        "strace-sh",
        &["--trace-only"],
        &[],
        &["sh", "-c", &script],
        |_| {
            let _ = fs::remove_file(&file);
        },
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), "x\n");
}

/// The shell's handler runs twice: two signal returns.
const SIGNAL_SCRIPT: &str = "trap : USR1; kill -USR1 $$; kill -USR1 $$";

#[test]
fn a_program_returning_from_signal_handlers_makes_the_calls_strace_counts() {
    if !strace_or_skip("a_program_returning_from_signal_handlers_makes_the_calls_strace_counts") {
        return;
    }
    assert_counts_equal(
        "strace-signal",
        &["--trace-only"],
        &[],
        &["sh", "-c", SIGNAL_SCRIPT],
        |_| {},
    );
}

#[test]
fn a_forking_program_makes_the_calls_strace_counts() {
    if !strace_or_skip("a_forking_program_makes_the_calls_strace_counts") {
        return;
    }
    // SIGCHLD is blocked so that the child's exit cannot interrupt the parent's wait (see the
    // module comment). The child makes calls of its own before exiting.
    let script = "use POSIX; sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGCHLD)); \
                  my $pid = fork; if ($pid == 0) { getppid; getppid; POSIX::_exit(0) } \
                  waitpid($pid, 0) == $pid or die";
    assert_counts_equal(
        "strace-fork",
        &["--trace-only"],
        &[("PERL_HASH_SEED", "0"), ("PERL_PERTURB_KEYS", "0")],
        &["perl", "-e", script],
        |_| {},
    );
}

#[test]
fn the_launchers_setup_calls_are_not_counted_for_cmd() {
    // With --allow-degraded the launcher joins the process limit's cgroup, restricts itself
    // with Landlock and installs the seccomp filter before it execs CMD: none of that is CMD's.
    if !strace_or_skip("the_launchers_setup_calls_are_not_counted_for_cmd") {
        return;
    }
    assert_counts_equal(
        "strace-degraded",
        &["--allow-degraded"],
        &[],
        &["/bin/true"],
        |_| {},
    );
}

#[test]
fn a_signal_return_is_logged_as_rt_sigreturn() {
    let scratch = Scratch::new("rt-sigreturn");
    let events = sandtrace_events(
        &scratch,
        &["--trace-only"],
        &[],
        &["sh", "-c", SIGNAL_SCRIPT],
    );
    let counts = sandtrace_counts(&events);
    assert_eq!(counts.get("rt_sigreturn"), Some(&2), "{counts:?}");
    for s in of_type(&events, "syscall")
        .into_iter()
        .filter(|s| s["syscall"] == "rt_sigreturn")
    {
        assert_eq!(s["syscall_nr"], 15, "{s}");
        assert_eq!(s["category"], "signal", "{s}");
        assert!(s["duration_us"].is_u64(), "no entry time: {s}");
    }
}

#[test]
fn the_first_call_logged_is_cmds_exec() {
    // Also in degraded mode, where the launcher makes the most calls of its own.
    for flags in [&["--trace-only"][..], &["--allow-degraded"][..]] {
        let scratch = Scratch::new("first-call");
        let events = sandtrace_events(&scratch, flags, &[], &["/bin/true"]);
        let syscalls = of_type(&events, "syscall");
        let first = syscalls.first().expect("no syscall lines");
        assert_eq!(first["syscall"], "execve", "{flags:?}: {first}");
        assert_eq!(first["path"], "/bin/true", "{flags:?}: {first}");
        assert_eq!(first["success"], true, "{flags:?}: {first}");
        let execs = syscalls.iter().filter(|s| s["syscall"] == "execve").count();
        assert_eq!(execs, 1, "{flags:?}");
    }
}
