//! The filesystem rules under Landlock: `--allow-degraded` on a kernel without BPF LSM (this
//! host's). The same operations and policies as the BPF LSM suite (`fs_ops/`), with the
//! differences the session lists as approximated or not enforced, and nothing else.
//!
//! These tests read the operations' results, the summary's `approximated` and `unenforced`
//! lists, and the file denials the loader makes of the calls Landlock refused.

mod common;
mod fs_ops;

use std::{
    fs,
    path::Path,
    sync::{PoisonError, RwLock, RwLockReadGuard},
};

use common::*;
use fs_ops::*;
use sandtrace::policy::Access;
use serde_json::Value;

/// The carve-limit test fills a directory of the system's temporary directory with 17,000
/// files, which the other tests' carves would walk (their policies read /tmp, with deny rules
/// in it) and refuse: it runs alone (write), the others beside each other (read).
static TEMP_DIR_CARVES: RwLock<()> = RwLock::new(());

/// [`landlock_available`], and while the guard lives the carve-limit test does not run.
fn landlock_host(test: &str) -> Option<RwLockReadGuard<'static, ()>> {
    let guard = TEMP_DIR_CARVES
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    landlock_available(test).then_some(guard)
}

/// Whether this host runs the Landlock path: Landlock present, and `--allow-degraded` meaning
/// degraded (a host with BPF LSM enforces with it instead). Reports the skip otherwise.
fn landlock_available(test: &str) -> bool {
    if let Err(why) = sandtrace::plan::features::landlock_abi() {
        skip(
            test,
            &format!("Landlock is not available: {why}"),
            InCi::MayLack,
        );
        return false;
    }
    let out = run(&["run", "--allow-degraded", "--", "/bin/true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.contains("(degraded)") {
        skip(
            test,
            "this kernel has BPF LSM: --allow-degraded does not use Landlock here",
            InCi::MayLack,
        );
        return false;
    }
    true
}

/// `sandtrace run --allow-degraded --policy POLICY -- CMD...`, to completion.
fn run_degraded(policy: &Path, cmd: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "--allow-degraded",
        "--policy",
        policy.to_str().unwrap(),
        "--",
    ];
    args.extend_from_slice(cmd);
    run(&args)
}

fn summary(events: &[Value]) -> &Value {
    of_type(events, "summary")
        .into_iter()
        .next()
        .expect("the log ends with a summary")
}

/// Whether the summary's list `list` has an entry whose pattern contains `pattern`.
fn lists(summary: &Value, list: &str, pattern: &str) -> bool {
    summary[list].as_array().is_some_and(|rules| {
        rules
            .iter()
            .any(|r| r["pattern"].as_str().is_some_and(|p| p.contains(pattern)))
    })
}

/// A case Landlock decides differently from the policy, as the session lists it: a new name a
/// deny rule matches, made in a directory the policy lets CMD write (creating an entry is a
/// right of the directory; the carve denies only the paths that exist at start). A same-
/// directory hard link of a denied file is such a new name: it gives no access to the file (its
/// directory grants no read beneath, as it holds a denied file).
fn approximated(matrix: &Matrix, case: &Case) -> bool {
    let creates = matches!(
        case.op,
        Op::Create(_) | Op::Mkdir(_) | Op::Mknod(_) | Op::Symlink { .. } | Op::Link { .. }
    );
    let (_, made) = case.needs.last().expect("every case needs a path");
    creates
        && case
            .needs
            .iter()
            .any(|(_, path)| matrix.reference.denies_by_rule(path))
        && made
            .parent()
            .is_some_and(|dir| matrix.reference.allows(Access::Write, dir))
}

/// A rename or link that Landlock refused for its destination: the loader places only a call's
/// first path (the source), which the policy lets it change, so no denial names it.
fn refused_for_its_second_path(matrix: &Matrix, case: &Case) -> bool {
    let (access, first) = &case.needs[0];
    case.needs.len() > 1 && matrix.reference.allows(*access, first)
}

#[test]
fn every_example_policy_decides_every_operation_under_landlock_as_the_policy_says() {
    let test = "every_example_policy_decides_every_operation_under_landlock_as_the_policy_says";
    let Some(_carves) = landlock_host(test) else {
        return;
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    for policy_file in &example_policies() {
        let mut approximations = 0;
        let matrix = Matrix::new(policy_file);
        let session = matrix.run(policy_file, &["--allow-degraded"]);
        let summary = summary(&session.events);
        for (case, result) in matrix.cases.iter().zip(&session.results) {
            // Not decided by Landlock, and listed so (checked below).
            if matches!(case.op, Op::Chmod(_) | Op::Chown(_)) {
                continue;
            }
            checked += 1;
            let allowed = matrix.allows(case);
            let expected = if allowed {
                "ok"
            } else if approximated(&matrix, case) {
                approximations += 1;
                "ok"
            } else {
                "EACCES"
            };
            if result != expected {
                failures.push(format!(
                    "{}: {:?}: got {result}, expected {expected} (policy: {})",
                    policy_file.display(),
                    case.op,
                    if allowed { "allow" } else { "deny" }
                ));
            } else if expected == "EACCES"
                && !denial_recorded(&matrix, case, &session.events)
                && !refused_for_its_second_path(&matrix, case)
            {
                failures.push(format!(
                    "{}: {:?}: refused without a file denial in the log",
                    policy_file.display(),
                    case.op
                ));
            }
        }
        if !lists(summary, "unenforced", "file metadata") {
            failures.push(format!(
                "{}: the summary does not list file metadata as unenforced",
                policy_file.display()
            ));
        }
        if approximations > 0 && !lists(summary, "approximated", ".env") {
            failures.push(format!(
                "{}: the summary does not list the deny rule as approximated",
                policy_file.display()
            ));
        }
        if !failures.is_empty() {
            failures.push(session.describe.clone());
            break;
        }
    }
    assert_no_wrong_decisions(&failures, checked);
    assert!(checked > 100, "only {checked} decisions checked");
}

/// The escape attempts of the BPF LSM suite that Landlock decides otherwise, as listed in the
/// session's `approximated` list; every other one must fail.
const DIFFERENT_UNDER_LANDLOCK: [&str; 4] = [
    // A new name in the secret's directory, which grants no read beneath it (it holds the
    // secret): reading the link is refused (checked).
    "hard-linking the secret",
    // Landlock does not see the namespace file system; setns is refused by seccomp.
    "opening a namespace file (readable /proc/self, but no file-system path)",
    // Landlock checks the ELF interpreter as an exec, so the loader is executable.
    "running a binary through ld.so",
    // Decided by inode: an allowed file is allowed however long its path.
    "a path of 5000 bytes",
];

#[test]
fn escape_attempts_fail_under_landlock_and_succeed_when_only_traced() {
    let test = "escape_attempts_fail_under_landlock_and_succeed_when_only_traced";
    let Some(_carves) = landlock_host(test) else {
        return;
    };
    let (e, enforced) = run_escapes(&["--allow-degraded"], false);
    let (_, traced) = run_escapes(&[], true);
    let mut problems = Vec::new();
    for (((op, what), enforced), traced) in e.ops.iter().zip(&enforced.results).zip(&traced.results)
    {
        if DIFFERENT_UNDER_LANDLOCK.contains(what) || what.ends_with("(allowed)") {
            if enforced != "ok" {
                problems.push(format!("{what}: expected ok, got {enforced}"));
            }
            continue;
        }
        if enforced == "ok" {
            problems.push(format!("ESCAPE: {what} succeeded under Landlock: {op:?}"));
        }
        // The baseline refuses namespaces and io_uring in every mode; the rest must work
        // when only traced, or the failure above proves nothing.
        if traced != "ok" && !traced.contains("EPERM") {
            problems.push(format!("{what}: failed even with --trace-only ({traced})"));
        }
    }
    let summary = summary(&enforced.events);
    if !lists(summary, "approximated", "dynamic loader") {
        problems.push("the summary does not list running the dynamic loader".to_owned());
    }
    assert!(
        problems.is_empty(),
        "{}\n--- Landlock run\n{}\n--- traced run\n{}",
        problems.join("\n"),
        enforced.describe,
        traced.describe
    );
    drop(e);
}

#[test]
fn the_launched_script_runs_and_later_execs_need_allow_exec_under_landlock() {
    let test = "the_launched_script_runs_and_later_execs_need_allow_exec_under_landlock";
    let Some(_carves) = landlock_host(test) else {
        return;
    };
    let stdout = check_launch_chain(
        &["--allow-degraded"],
        "head -c 4 /proc/self/status && echo read-proc-self\n",
    );
    // /proc/self is granted on CMD's own process only (listed as approximated).
    assert!(
        !stdout.contains("read-proc-self"),
        "a child of CMD read its /proc/self: {stdout}"
    );
}

#[test]
fn proc_self_rules_cover_the_process_own_proc_directory_under_landlock() {
    if let Some(_carves) =
        landlock_host("proc_self_rules_cover_the_process_own_proc_directory_under_landlock")
    {
        check_proc_self(&["--allow-degraded"]);
    }
}

#[test]
fn a_carve_beyond_landlock_limits_refuses_to_start() {
    let test = "a_carve_beyond_landlock_limits_refuses_to_start";
    let _alone = TEMP_DIR_CARVES
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    if !landlock_available(test) {
        return;
    }
    let scratch = Scratch::new("landlock-limit");
    // A secret among 17,000 readable files: each needs a grant of its own (their directory
    // holds a denied file), more than the carve allows.
    let crowded = scratch.path("crowded");
    fs::create_dir(&crowded).unwrap();
    for i in 0..17_000 {
        fs::write(crowded.join(format!("f{i}")), "").unwrap();
    }
    fs::write(crowded.join(".env"), "TOKEN=hunter2").unwrap();
    let policy = scratch.path("policy.toml");
    fs::write(
        &policy,
        format!(
            "[filesystem]\nallow_read = [\"/usr\", \"/lib\", \"/lib64\", \"/etc\", \"{}\"]\n\
             allow_write = [\"{}\"]\ndeny = [\"**/.env\"]\n",
            crowded.display(),
            scratch.path("out").display()
        ),
    )
    .unwrap();
    let marker = scratch.path("out/ran");
    fs::create_dir(scratch.path("out")).unwrap();
    let out = run_degraded(&policy, &["/usr/bin/touch", marker.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        stderr.contains("refusing to start rather than grant more")
            && stderr.contains(crowded.to_str().unwrap()),
        "{}",
        describe(&out)
    );
    assert!(!Path::new(&marker).exists(), "CMD ran: {}", describe(&out));
}

#[test]
fn landlock_refusals_are_recorded_as_the_denials_the_policy_explains() {
    let test = "landlock_refusals_are_recorded_as_the_denials_the_policy_explains";
    let Some(_carves) = landlock_host(test) else {
        return;
    };
    let scratch = Scratch::new("landlock-refusals");
    let project = scratch.path("project");
    fs::create_dir(&project).unwrap();
    fs::write(project.join(".env"), "TOKEN=hunter2").unwrap();
    fs::write(project.join("README"), "hello").unwrap();
    // Allowed by the policy, refused by its own permissions (CMD has no CAP_DAC_OVERRIDE).
    let locked = project.join("locked");
    fs::write(&locked, "x").unwrap();
    fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let policy = scratch.path("policy.toml");
    fs::write(
        &policy,
        format!(
            "[filesystem]\nallow_read = [\"/usr\", \"/lib\", \"/lib64\", \"/etc/ld.so.cache\", \"/etc/locale.alias\", \"{}\"]\n\
             deny = [\"**/.env\"]\n",
            project.display()
        ),
    )
    .unwrap();
    let log = scratch.path("events.jsonl");
    let session = |extra: &[&str]| {
        let mut cmd = sandtrace();
        cmd.current_dir(&project)
            .args([
                "run",
                "--allow-degraded",
                "--policy",
                policy.to_str().unwrap(),
            ])
            .args(extra)
            // A relative path (placed in CMD's working directory), an absolute one, a file
            // the policy allows, one its permissions refuse, and a write nothing allows.
            .args([
                "--",
                "/usr/bin/cat",
                ".env",
                "README",
                "locked",
                "/etc/hostname",
            ])
            .stdin(std::process::Stdio::null());
        cmd.output().unwrap()
    };
    let out = session(&["-o", log.to_str().unwrap()]);
    let events = read_jsonl(&log);
    let denials: Vec<(String, String)> = of_type(&events, "file")
        .into_iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let project = fs::canonicalize(&project).unwrap();
    assert_eq!(
        denials,
        [
            (
                project.join(".env").display().to_string(),
                "denied by rule; Landlock refused the call".to_owned()
            ),
            (
                "/etc/hostname".to_owned(),
                "denied: no allow rule covers it; Landlock refused the call".to_owned()
            ),
        ],
        "{}",
        describe(&out)
    );
    let env = &of_type(&events, "file")[0];
    assert_eq!(env["rule"]["pattern"], "**/.env", "{env}");
    assert_eq!(env["access"], serde_json::json!(["read"]), "{env}");
    let summary = summary(&events);
    assert_eq!(summary["denials"]["files"], 2, "{summary}");
    // Without a log too: counted, and shown on the terminal.
    let out = session(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("denied open read") && stderr.contains("by deny rule `**/.env`"),
        "{}",
        describe(&out)
    );
    assert!(
        stderr.contains("denied       2 (files 2)"),
        "{}",
        describe(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hello"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_refusal_repeated_in_a_loop_is_shown_once_with_a_count() {
    let test = "a_refusal_repeated_in_a_loop_is_shown_once_with_a_count";
    let Some(_carves) = landlock_host(test) else {
        return;
    };
    let Some(perl) = find_program("perl") else {
        skip(test, "perl is not installed", InCi::Guaranteed);
        return;
    };
    let scratch = Scratch::new("landlock-repeats");
    let policy = scratch.path("policy.toml");
    fs::write(
        &policy,
        "[filesystem]\nallow_read = [\"/usr\", \"/lib\", \"/lib64\", \"/etc/ld.so.cache\", \
         \"/etc/locale.alias\", \"/dev/null\", \"/dev/urandom\"]\n",
    )
    .unwrap();
    let perl = perl.to_str().unwrap();
    let out = run_degraded(
        &policy,
        &[
            perl,
            "-e",
            "for (1..50) { open(my $f, '<', '/etc/hostname') and die 'opened' }",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("denied open read \"/etc/hostname\""))
        .collect();
    assert_eq!(lines.len(), 1, "{}", describe(&out));
    assert!(
        stderr.contains("(the line above 49 more times)") && stderr.contains("(files 50)"),
        "{}",
        describe(&out)
    );
}
