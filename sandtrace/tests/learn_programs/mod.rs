//! The real programs `sandtrace learn` is tested with, on the host (tests/learn.rs: the
//! learned rules decide every access of a second run) and in the BPF-LSM VM
//! (tests/vm_learn.rs: the kernel enforces the learned policy).
//!
//! Each program runs in a scratch directory that `prepare` puts in the same state before
//! every run. The directory also holds `.env`, a secret the base policy (examples/strict.toml)
//! denies with `**/.env`; each program has a variant that reads it as well. Each also has a
//! file next to one the run uses, which no rule names, and a variant that reads it too: a
//! learned policy must not allow it (it grants what the run used, not the directory).
#![allow(dead_code)] // each test crate uses a different subset

use std::{fs, path::Path, process::Command};

use crate::common::*;

pub const STRICT_BASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/strict.toml");

/// The secret every variant reads.
pub const SECRET: &str = ".env";

pub struct Program {
    pub name: &'static str,
    /// CMD for learning and for the run under the learned policy.
    pub command: Vec<String>,
    /// The same run, also reading [`SECRET`].
    pub with_secret: Vec<String>,
    /// A file (relative to the run's directory) in a directory the run uses, which it does
    /// not read.
    pub neighbour: &'static str,
    /// The same run, also reading [`Program::neighbour`].
    pub with_neighbour: Vec<String>,
    prepare: fn(&Path),
}

impl Program {
    /// Puts `dir` in the state every run starts from.
    pub fn prepare(&self, dir: &Path) {
        fs::write(dir.join(SECRET), "API_TOKEN=do-not-leak\n").unwrap();
        (self.prepare)(dir);
        let neighbour = dir.join(self.neighbour);
        fs::create_dir_all(neighbour.parent().unwrap()).unwrap();
        fs::write(neighbour, "not for this run\n").unwrap();
    }
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

const PYTHON_READS_CONFIG: &str = "import configparser\n\
    c = configparser.ConfigParser()\n\
    c.read('app.conf')\n\
    print(c['app']['name'])\n";

/// Programs the learned policy is known to work for: Python reading a configuration file,
/// tar archiving a directory, tar archiving one file of a tree (`-C`), a shell pipeline of
/// two programs writing a file.
pub fn programs() -> Vec<Program> {
    vec![
        Program {
            name: "python",
            command: strings(&["/usr/bin/python3", "-c", PYTHON_READS_CONFIG]),
            with_secret: vec![
                "/usr/bin/python3".to_owned(),
                "-c".to_owned(),
                format!("{PYTHON_READS_CONFIG}open('{SECRET}').read()\n"),
            ],
            neighbour: "other.conf",
            with_neighbour: vec![
                "/usr/bin/python3".to_owned(),
                "-c".to_owned(),
                format!("{PYTHON_READS_CONFIG}open('other.conf').read()\n"),
            ],
            prepare: |dir| {
                fs::write(dir.join("app.conf"), "[app]\nname = demo\n").unwrap();
            },
        },
        Program {
            name: "tar",
            command: strings(&["tar", "-cf", "archive.tar", "data"]),
            with_secret: strings(&["tar", "-cf", "archive.tar", "data", SECRET]),
            neighbour: "other.txt",
            with_neighbour: strings(&["tar", "-cf", "archive.tar", "data", "other.txt"]),
            prepare: |dir| {
                let _ = fs::remove_file(dir.join("archive.tar"));
                fs::create_dir_all(dir.join("data/sub")).unwrap();
                for (name, text) in [("a.txt", "a\n"), ("b.txt", "b\n"), ("sub/c.txt", "c\n")] {
                    fs::write(dir.join("data").join(name), text).unwrap();
                }
            },
        },
        // One file of a tree, reached through two directories the run only enters.
        Program {
            name: "tar-C",
            command: strings(&["tar", "-cf", "archive.tar", "-C", "tree", "app/config.toml"]),
            with_secret: strings(&[
                "tar",
                "-cf",
                "archive.tar",
                "-C",
                "tree",
                "app/config.toml",
                "../.env",
            ]),
            neighbour: "tree/app/.token",
            with_neighbour: strings(&[
                "tar",
                "-cf",
                "archive.tar",
                "-C",
                "tree",
                "app/config.toml",
                "app/.token",
            ]),
            prepare: |dir| {
                let _ = fs::remove_file(dir.join("archive.tar"));
                fs::create_dir_all(dir.join("tree/app")).unwrap();
                fs::write(dir.join("tree/app/config.toml"), "name = \"demo\"\n").unwrap();
            },
        },
        Program {
            name: "pipeline",
            command: strings(&["sh", "-c", "sort words.txt | uniq -c > counts.txt"]),
            // A pipeline's status is its last command's: `test -s` (a shell builtin) makes an
            // empty result, which a refused sort leaves, fail the run.
            with_secret: vec![
                "sh".to_owned(),
                "-c".to_owned(),
                format!("sort words.txt {SECRET} | uniq -c > counts.txt && test -s counts.txt"),
            ],
            neighbour: "other.txt",
            with_neighbour: vec![
                "sh".to_owned(),
                "-c".to_owned(),
                "sort words.txt other.txt | uniq -c > counts.txt && test -s counts.txt".to_owned(),
            ],
            prepare: |dir| {
                let _ = fs::remove_file(dir.join("counts.txt"));
                fs::write(dir.join("words.txt"), "pear\napple\npear\n").unwrap();
            },
        },
    ]
}

/// git making a repository and a commit. Every git command opens a path given as a string
/// constant of its binary (`/dev/null`) whose page is often not yet mapped when the call
/// starts, so the kernel programs cannot record that path (see tests/vm_learn.rs).
pub fn git() -> Program {
    Program {
        name: "git",
        command: strings(&[
            "sh",
            "-c",
            "git init -q && git add a.txt && git commit -qm first",
        ]),
        with_secret: vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("git init -q && git add a.txt {SECRET} && git commit -qm first"),
        ],
        neighbour: "b.txt",
        with_neighbour: strings(&[
            "sh",
            "-c",
            "git init -q && git add a.txt b.txt && git commit -qm first",
        ]),
        prepare: |dir| {
            let _ = fs::remove_dir_all(dir.join(".git"));
            fs::write(dir.join("a.txt"), "first\n").unwrap();
        },
    }
}

/// `sandtrace ARGS -- CMD` in `dir`, with git's identity set (git refuses to commit without
/// one) and its system configuration ignored.
pub fn sandtrace_in(dir: &Path, args: &[&str], cmd: &[String]) -> std::process::Output {
    sandtrace()
        .current_dir(dir)
        .args(args)
        .arg("--")
        .args(cmd)
        .envs([
            ("GIT_AUTHOR_NAME", "sandtrace"),
            ("GIT_AUTHOR_EMAIL", "sandtrace@example.invalid"),
            ("GIT_COMMITTER_NAME", "sandtrace"),
            ("GIT_COMMITTER_EMAIL", "sandtrace@example.invalid"),
            ("GIT_CONFIG_NOSYSTEM", "1"),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running sandtrace {args:?} -- {cmd:?}: {e}"))
}

/// Learns `program`'s policy from one run in `dir` (trace only) and checks it validates.
pub fn learn(program: &Program, dir: &Path) -> std::path::PathBuf {
    program.prepare(dir);
    let policy = dir.join("learned.toml");
    let out = sandtrace_in(
        dir,
        &[
            "learn",
            "--base",
            STRICT_BASE,
            "-o",
            policy.to_str().unwrap(),
        ],
        &program.command,
    );
    assert!(
        out.status.success(),
        "learning {} failed: {}",
        program.name,
        describe(&out)
    );
    let check = Command::new(SANDTRACE)
        .args(["policy", "check", policy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "the policy learned from {} does not validate: {}\n--- policy:\n{}",
        program.name,
        describe(&check),
        fs::read_to_string(&policy).unwrap_or_default()
    );
    policy
}
