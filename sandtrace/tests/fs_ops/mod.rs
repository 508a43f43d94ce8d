//! The file-system operations both enforcement suites run: the BPF LSM one in the VM
//! (`vm_files.rs`) and the Landlock one on the host (`landlock_files.rs`).
//!
//! The operations run inside a sandtrace session as CMD: the `sandtrace-test-fs-ops` helper
//! binary (`tests/helpers/fs_ops.rs`) performs the operations given as its arguments with raw
//! syscalls and prints one result line per operation. Expectations come from the policy
//! library's own decision for each path, so the kernel is checked against the policy model.
#![allow(dead_code)] // each suite uses a different subset

use std::{
    fs,
    os::{
        fd::AsRawFd as _,
        unix::{ffi::OsStrExt as _, fs::PermissionsExt as _, process::CommandExt as _},
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use sandtrace::policy::{self, Access, CliOverrides, PathDecision};
use serde_json::Value;

use crate::common::*;

/// The helper binary performing the operations.
pub const FS_OPS: &str = env!("CARGO_BIN_EXE_sandtrace-test-fs-ops");
pub const RESULT_TAG: &str = "FS-OP-RESULT";

/// One file-system operation, sent to the helper as one tab-separated argument.
#[derive(Clone, Debug)]
pub enum Op {
    OpenRead(PathBuf),
    OpenWrite(PathBuf),
    Create(PathBuf),
    Truncate(PathBuf),
    Unlink(PathBuf),
    Mkdir(PathBuf),
    Rmdir(PathBuf),
    Mknod(PathBuf),
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    Link {
        from: PathBuf,
        to: PathBuf,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
    },
    Chmod(PathBuf),
    Chown(PathBuf),
    Exec(PathBuf),
    /// Re-open an inherited descriptor through /proc/self/fd.
    ReopenFd(i32),
    /// `openat2` of `name` in `dir` with these RESOLVE_* flags.
    Openat2 {
        dir: PathBuf,
        name: PathBuf,
        resolve: u64,
    },
    /// `name_to_handle_at` + `open_by_handle_at`.
    OpenByHandle(PathBuf),
    /// IORING_OP_OPENAT.
    IoUringOpen(PathBuf),
    /// O_PATH open, then a read open through /proc/self/fd.
    OPathReopen(PathBuf),
    /// Copy a binary into a memfd and execveat it with AT_EMPTY_PATH.
    ExecMemfd(PathBuf),
    /// Run `program` through the dynamic loader.
    ExecViaLoader(PathBuf),
    /// A new mount namespace (and user namespace with `user_ns`), then a bind mount of
    /// `source` over `target`, then a read of `target`.
    UnshareBind {
        source: PathBuf,
        target: PathBuf,
        user_ns: bool,
    },
    Chroot(PathBuf),
    /// PTRACE_ATTACH to a process of the session's PID namespace (then detach).
    PtraceAttach(i32),
    /// The `bpf` syscall (a BPF_PROG_GET_NEXT_ID query).
    Bpf,
    /// Create `depth` nested directories named `name` under `base` (relative steps), then
    /// open `file` at the bottom for reading.
    OpenDeep {
        base: PathBuf,
        name: String,
        depth: usize,
        file: String,
    },
}

impl Op {
    pub fn encode(&self) -> String {
        let p = |p: &Path| p.display().to_string();
        match self {
            Op::OpenRead(x) => format!("open_read\t{}", p(x)),
            Op::OpenWrite(x) => format!("open_write\t{}", p(x)),
            Op::Create(x) => format!("create\t{}", p(x)),
            Op::Truncate(x) => format!("truncate\t{}", p(x)),
            Op::Unlink(x) => format!("unlink\t{}", p(x)),
            Op::Mkdir(x) => format!("mkdir\t{}", p(x)),
            Op::Rmdir(x) => format!("rmdir\t{}", p(x)),
            Op::Mknod(x) => format!("mknod\t{}", p(x)),
            Op::Symlink { target, link } => format!("symlink\t{}\t{}", p(target), p(link)),
            Op::Link { from, to } => format!("link\t{}\t{}", p(from), p(to)),
            Op::Rename { from, to } => format!("rename\t{}\t{}", p(from), p(to)),
            Op::Chmod(x) => format!("chmod\t{}", p(x)),
            Op::Chown(x) => format!("chown\t{}", p(x)),
            Op::Exec(x) => format!("exec\t{}", p(x)),
            Op::ReopenFd(fd) => format!("reopen_fd\t{fd}"),
            Op::Openat2 { dir, name, resolve } => {
                format!("openat2\t{}\t{}\t{resolve}", p(dir), p(name))
            }
            Op::OpenByHandle(x) => format!("open_by_handle\t{}", p(x)),
            Op::IoUringOpen(x) => format!("io_uring_open\t{}", p(x)),
            Op::OPathReopen(x) => format!("o_path_reopen\t{}", p(x)),
            Op::ExecMemfd(x) => format!("exec_memfd\t{}", p(x)),
            Op::ExecViaLoader(x) => format!("exec_via_loader\t{}", p(x)),
            Op::UnshareBind {
                source,
                target,
                user_ns,
            } => format!(
                "unshare_bind\t{}\t{}\t{}",
                p(source),
                p(target),
                if *user_ns { "user" } else { "mount" }
            ),
            Op::Chroot(x) => format!("chroot\t{}", p(x)),
            Op::PtraceAttach(pid) => format!("ptrace_attach\t{pid}"),
            Op::Bpf => "bpf".to_owned(),
            Op::OpenDeep {
                base,
                name,
                depth,
                file,
            } => {
                format!("open_deep\t{}\t{name}\t{depth}\t{file}", p(base))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The test side.

/// What one session of operations produced.
pub struct Session {
    pub results: Vec<String>,
    pub events: Vec<Value>,
    pub describe: String,
}

/// Runs the operations as CMD of `sandtrace run ARGS`, in `cwd`, with `fd3` (if any) inherited
/// as descriptor 3.
pub fn run_ops(
    args: &[&str],
    cwd: &Path,
    ops: &[Op],
    log: &Path,
    fd3: Option<&fs::File>,
) -> Session {
    let script: Vec<String> = ops.iter().map(Op::encode).collect();
    let mut cmd = sandtrace();
    cmd.arg("run")
        .args(args)
        .args(["-o", log.to_str().unwrap(), "--"])
        .arg(FS_OPS)
        .args(&script)
        .current_dir(cwd)
        .stdin(Stdio::null());
    if let Some(file) = fd3 {
        let raw = file.as_raw_fd();
        // SAFETY: the closure runs between fork and exec and makes only async-signal-safe
        // calls (fcntl, dup2) on a descriptor that `file` keeps open until the child is spawned.
        unsafe {
            cmd.pre_exec(move || {
                // dup2 onto itself would keep close-on-exec: clear the flag instead.
                let ok = if raw == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0) == 0
                } else {
                    libc::dup2(raw, 3) == 3
                };
                if !ok {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = cmd.output().expect("running sandtrace");
    let describe = describe(&out);
    let mut results = vec![String::new(); ops.len()];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(at) = line.find(RESULT_TAG) else {
            continue;
        };
        let fields: Vec<&str> = line[at..].split('\t').collect();
        if fields.len() == 3 {
            results[fields[1].parse::<usize>().unwrap()] = fields[2].to_owned();
        }
    }
    assert!(
        results.iter().all(|r| !r.is_empty()),
        "the helper did not report every operation (ops {script:?})\n{describe}"
    );
    Session {
        results,
        events: read_jsonl(log),
        describe,
    }
}

/// Creates the file `file` at the bottom of `depth` nested directories `name` below `base`,
/// made with relative steps (outside any session, by the helper).
pub fn create_deep(base: &Path, name: &str, depth: usize, file: &str) {
    let op = format!("make_deep\t{}\t{name}\t{depth}\t{file}", base.display());
    let out = Command::new(FS_OPS)
        .arg(&op)
        .stdin(Stdio::null())
        .output()
        .expect("running the fs-ops helper");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{RESULT_TAG}\t0\tok"),
        "creating {file} at depth {depth}: {}",
        describe(&out)
    );
}

pub fn deny_events<'a>(events: &'a [Value], path: &Path) -> Vec<&'a Value> {
    of_type(events, "file")
        .into_iter()
        .filter(|e| e["action"] == "deny" && e["path"] == path.to_str().unwrap())
        .collect()
}

/// Whether the session recorded the denial of `case`: at its event path, or at another path it
/// needs that the policy denies.
pub fn denial_recorded(matrix: &Matrix, case: &Case, events: &[Value]) -> bool {
    !deny_events(events, &case.event_path).is_empty()
        || case.needs.iter().skip(1).any(|(access, path)| {
            !matrix.reference.allows(*access, path) && !deny_events(events, path).is_empty()
        })
}

/// Copies /bin/true to `path` as an executable.
pub fn make_executable(path: &Path) {
    fs::copy("/bin/true", path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The home directory `~` stands for: that of the user the command runs as.
pub fn cmd_home() -> Option<PathBuf> {
    sandtrace::plan::ProcessInputs::gather(Default::default())
        .expect("sandtrace's own user")
        .identity
        .home()
        .map(Path::to_path_buf)
}

/// The policy's decision for `access` to `path` (the reference the kernel must agree with).
pub struct Reference {
    compiled: policy::CompiledPaths,
}

impl Reference {
    pub fn new(policy_file: &Path, extra: &CliOverrides, cwd: &Path) -> Self {
        let policy = policy::load(policy_file).expect("example policy loads");
        let home = cmd_home();
        let effective = policy::resolve(&policy, extra, cwd, home.as_deref()).unwrap();
        Self {
            compiled: policy::compile(&effective).unwrap(),
        }
    }

    pub fn allows(&self, access: Access, path: &Path) -> bool {
        let decision: PathDecision = self.compiled.decide(path.as_os_str().as_bytes());
        decision.allows(access)
    }

    pub fn denies_by_rule(&self, path: &Path) -> bool {
        matches!(
            self.compiled.decide(path.as_os_str().as_bytes()),
            PathDecision::Matched(a) if a.kinds & sandtrace_common::policy::KIND_DENY != 0
        )
    }
}

/// One row of the matrix: an operation, the paths whose decisions it needs, and the path a
/// denial event names.
pub struct Case {
    pub op: Op,
    pub needs: Vec<(Access, PathBuf)>,
    pub event_path: PathBuf,
}

/// Every operation on one target directory `dir` (created beforehand, outside the session).
pub fn cases_in(dir: &Path, file_name: &str) -> Vec<Case> {
    let file = |op: &str| {
        let d = dir.join(op);
        fs::create_dir_all(&d).unwrap();
        let f = d.join(file_name);
        fs::write(&f, "data").unwrap();
        f
    };
    let fresh = |op: &str| {
        let d = dir.join(op);
        fs::create_dir_all(&d).unwrap();
        d.join(file_name)
    };
    let mut cases = Vec::new();
    let mut simple = |op: Op, access: Access, path: PathBuf| {
        cases.push(Case {
            op,
            needs: vec![(access, path.clone())],
            event_path: path,
        });
    };
    let p = file("open_read");
    simple(Op::OpenRead(p.clone()), Access::Read, p);
    let p = file("open_write");
    simple(Op::OpenWrite(p.clone()), Access::Write, p);
    let p = fresh("create");
    simple(Op::Create(p.clone()), Access::Write, p);
    let p = file("truncate");
    simple(Op::Truncate(p.clone()), Access::Write, p);
    let p = file("unlink");
    simple(Op::Unlink(p.clone()), Access::Write, p);
    let p = fresh("mkdir");
    simple(Op::Mkdir(p.clone()), Access::Write, p);
    let p = fresh("rmdir");
    fs::create_dir(&p).unwrap();
    simple(Op::Rmdir(p.clone()), Access::Write, p);
    let p = fresh("mknod");
    simple(Op::Mknod(p.clone()), Access::Write, p);
    let p = fresh("symlink");
    simple(
        Op::Symlink {
            target: "/etc/hostname".into(),
            link: p.clone(),
        },
        Access::Write,
        p,
    );
    let p = file("chmod");
    simple(Op::Chmod(p.clone()), Access::Write, p);
    let p = file("chown");
    simple(Op::Chown(p.clone()), Access::Write, p);
    let p = fresh("exec");
    make_executable(&p);
    simple(Op::Exec(p.clone()), Access::Exec, p);
    let from = file("link");
    let to = from.with_extension("hardlink");
    cases.push(Case {
        op: Op::Link {
            from: from.clone(),
            to: to.clone(),
        },
        needs: vec![(Access::Write, from.clone()), (Access::Write, to)],
        event_path: from,
    });
    let from = file("rename");
    let to = from.with_extension("renamed");
    cases.push(Case {
        op: Op::Rename {
            from: from.clone(),
            to: to.clone(),
        },
        needs: vec![(Access::Write, from.clone()), (Access::Write, to)],
        event_path: from,
    });
    cases
}

/// A writable directory of the policy to test in: its first literal `allow_write` rule under
/// `cwd` or in /tmp (made unique below /tmp).
pub fn writable_dir(policy_file: &Path, cwd: &Path, scratch: &Scratch) -> PathBuf {
    let policy = policy::load(policy_file).unwrap();
    let effective = policy::resolve(
        &policy,
        &CliOverrides::default(),
        cwd,
        cmd_home().as_deref(),
    )
    .unwrap();
    for rule in effective.paths.rules(policy::PathKind::Write) {
        if rule.pattern.has_wildcards() {
            continue;
        }
        let dir = rule.pattern.literal_prefix();
        if dir.starts_with(cwd) {
            return dir;
        }
        if dir == Path::new("/tmp") {
            return scratch.path("in-tmp");
        }
    }
    panic!(
        "{}: no literal allow_write rule below the working directory or /tmp",
        policy_file.display()
    );
}

/// The example policies, sorted.
pub fn example_policies() -> Vec<PathBuf> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut policies: Vec<PathBuf> = fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    policies.sort();
    assert!(policies.len() >= 5, "{policies:?}");
    policies
}

/// One example policy's matrix: every operation in an allowed (writable) directory, on denied
/// names inside it, and in an unlisted directory, with the policy's decisions as reference.
pub struct Matrix {
    pub scratch: Scratch,
    pub cwd: PathBuf,
    pub reference: Reference,
    pub cases: Vec<Case>,
    unlisted: PathBuf,
}

impl Matrix {
    pub fn new(policy_file: &Path) -> Self {
        let scratch = Scratch::new("matrix");
        let cwd = scratch.path("project");
        fs::create_dir_all(&cwd).unwrap();
        let reference = Reference::new(policy_file, &CliOverrides::default(), &cwd);
        let writable = writable_dir(policy_file, &cwd, &scratch);
        // Unlisted: outside /tmp and the working directory, created as root before the run.
        let unlisted = Path::new("/srv").join(format!("sandtrace-unlisted-{}", std::process::id()));
        let mut cases = cases_in(&writable.join("allowed"), "file");
        // Denied inside an allowed tree: every example denies `**/.env` except permissive,
        // which denies nothing.
        if reference.denies_by_rule(&writable.join(".env")) {
            cases.extend(cases_in(&writable.join("denied"), ".env"));
        }
        cases.extend(cases_in(&unlisted, "file"));
        Self {
            scratch,
            cwd,
            reference,
            cases,
            unlisted,
        }
    }

    /// Runs every case under `policy_file` with `extra` flags.
    pub fn run(&self, policy_file: &Path, extra: &[&str]) -> Session {
        let ops: Vec<Op> = self.cases.iter().map(|c| c.op.clone()).collect();
        let mut args = vec!["--policy", policy_file.to_str().unwrap()];
        args.extend_from_slice(extra);
        run_ops(
            &args,
            &self.cwd,
            &ops,
            &self.scratch.path("events.jsonl"),
            None,
        )
    }

    /// Whether the policy allows `case`.
    pub fn allows(&self, case: &Case) -> bool {
        case.needs
            .iter()
            .all(|(access, path)| self.reference.allows(*access, path))
    }
}

/// Fails with every wrong decision of a matrix run (the last entry: the failing session).
pub fn assert_no_wrong_decisions(failures: &[String], checked: usize) {
    assert!(
        failures.is_empty(),
        "{} of {checked} decisions wrong:\n{}",
        failures.len() - 1,
        failures.join("\n")
    );
}

impl Drop for Matrix {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.unlisted);
    }
}

/// The escape attempts, under `examples/strict.toml` with a writable work directory holding a
/// denied secret (`**/.env`).
pub struct Escapes {
    pub scratch: Scratch,
    pub work: PathBuf,
    pub secret: PathBuf,
    pub ops: Vec<(Op, &'static str)>,
}

pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;
pub const RESOLVE_CACHED: u64 = 0x20;

pub fn escapes() -> Escapes {
    let scratch = Scratch::new("escapes");
    let work = scratch.path("work");
    fs::create_dir_all(work.join("dir")).unwrap();
    fs::create_dir_all(work.join("public")).unwrap();
    let secret = work.join(".env");
    fs::write(&secret, "TOKEN=hunter2").unwrap();
    fs::write(work.join("dir/.env"), "TOKEN=hunter2").unwrap();
    fs::write(work.join("public/readme"), "hello").unwrap();
    create_deep(&work, "d", 300, ".env");
    create_deep(&work, "d", 300, "plain");
    create_deep(&work, &"x".repeat(200), 25, "plain");
    let mut ops = vec![
        (Op::OpenRead(secret.clone()), "reading the secret"),
        (
            Op::Symlink {
                target: secret.clone(),
                link: work.join("sl"),
            },
            "creating a symlink to it (allowed)",
        ),
        (Op::OpenRead(work.join("sl")), "reading through a symlink"),
        (
            Op::Link {
                from: secret.clone(),
                to: work.join("hl"),
            },
            "hard-linking the secret",
        ),
        (
            Op::OpenRead(work.join("hl")),
            "reading the secret through a hard link",
        ),
        // Allowed: `**/.env` decides `dir2/.env` exactly as `dir/.env`, so nothing escapes.
        (
            Op::Rename {
                from: work.join("dir"),
                to: work.join("dir2"),
            },
            "renaming the secret's parent (allowed)",
        ),
        (
            Op::OpenRead(work.join("dir2/.env")),
            "reading the secret after renaming its parent",
        ),
        (
            Op::ReopenFd(3),
            "reopening an inherited descriptor through /proc/self/fd",
        ),
        (Op::OpenByHandle(secret.clone()), "open_by_handle_at"),
        (Op::IoUringOpen(secret.clone()), "io_uring IORING_OP_OPENAT"),
        (Op::OPathReopen(secret.clone()), "O_PATH then /proc/self/fd"),
        (
            Op::OpenRead("/proc/self/ns/net".into()),
            "opening a namespace file (readable /proc/self, but no file-system path)",
        ),
        (Op::ExecMemfd("/bin/true".into()), "execveat of a memfd"),
        (
            Op::ExecViaLoader("/usr/bin/true".into()),
            "running a binary through ld.so",
        ),
        (
            Op::UnshareBind {
                source: secret.clone(),
                target: work.join("public/readme"),
                user_ns: true,
            },
            "bind mount in a new user+mount namespace",
        ),
        (
            Op::UnshareBind {
                source: secret.clone(),
                target: work.join("public/readme"),
                user_ns: false,
            },
            "bind mount in a new mount namespace",
        ),
        (Op::Chroot(work.clone()), "chroot"),
        (
            Op::OpenDeep {
                base: work.clone(),
                name: "d".into(),
                depth: 300,
                file: ".env".into(),
            },
            "a secret 300 directories deep",
        ),
        (
            Op::OpenDeep {
                base: work.clone(),
                name: "d".into(),
                depth: 300,
                file: "plain".into(),
            },
            "an allowed file 300 directories deep (allowed)",
        ),
        (
            Op::OpenDeep {
                base: work.clone(),
                name: "x".repeat(200),
                depth: 25,
                file: "plain".into(),
            },
            "a path of 5000 bytes",
        ),
    ];
    for (flag, name) in [
        (RESOLVE_NO_XDEV, "openat2 RESOLVE_NO_XDEV"),
        (RESOLVE_NO_MAGICLINKS, "openat2 RESOLVE_NO_MAGICLINKS"),
        (RESOLVE_NO_SYMLINKS, "openat2 RESOLVE_NO_SYMLINKS"),
        (RESOLVE_BENEATH, "openat2 RESOLVE_BENEATH"),
        (RESOLVE_IN_ROOT, "openat2 RESOLVE_IN_ROOT"),
        (RESOLVE_CACHED, "openat2 RESOLVE_CACHED"),
    ] {
        ops.push((
            Op::Openat2 {
                dir: work.clone(),
                name: ".env".into(),
                resolve: flag,
            },
            name,
        ));
    }
    Escapes {
        scratch,
        work,
        secret,
        ops,
    }
}

pub fn strict_policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/strict.toml")
}

/// Runs the escape attempts under strict with `extra` flags; `trace_only` adds `--trace-only`.
pub fn run_escapes(extra: &[&str], trace_only: bool) -> (Escapes, Session) {
    let e = escapes();
    let strict = strict_policy();
    // The attacker is root with every capability (open_by_handle_at, mounts, chroot need
    // them): the path rules must hold against it.
    let mut args = vec![
        "--policy",
        strict.to_str().unwrap(),
        "--allow-path",
        e.work.to_str().unwrap(),
        "--as-root",
    ];
    args.extend_from_slice(extra);
    if trace_only {
        args.push("--trace-only");
    }
    let inherited = fs::File::open(&e.secret).unwrap();
    let ops: Vec<Op> = e.ops.iter().map(|(op, _)| op.clone()).collect();
    let log = e.scratch.path(if trace_only {
        "traced.jsonl"
    } else {
        "enforced.jsonl"
    });
    let session = run_ops(&args, &e.scratch.0, &ops, &log, Some(&inherited));
    (e, session)
}

/// Runs a `#!/usr/bin/env sh` script ending in `tail` as CMD under strict with `extra` flags,
/// without and with `--allow-exec`: the launch chain (the script, env, sh) runs either way, a
/// later exec only with `--allow-exec`. Returns the second run's stdout.
pub fn check_launch_chain(extra: &[&str], tail: &str) -> String {
    let scratch = Scratch::new("launch");
    let script = scratch.path("build.sh");
    fs::write(
        &script,
        format!("#!/usr/bin/env sh\necho launched\n/usr/bin/true && echo ran-true\n{tail}"),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let strict = strict_policy();
    let session = |allow_exec: bool| {
        let mut args = vec!["run", "--policy", strict.to_str().unwrap()];
        args.extend_from_slice(extra);
        if allow_exec {
            args.push("--allow-exec");
        }
        args.extend(["--", script.to_str().unwrap()]);
        let out = run(&args);
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            describe(&out),
        )
    };
    let (stdout, out) = session(false);
    assert!(stdout.contains("launched"), "the script did not run: {out}");
    assert!(
        !stdout.contains("ran-true"),
        "a later exec ran without allow_exec: {out}"
    );
    let (stdout, out) = session(true);
    assert!(
        stdout.contains("ran-true"),
        "--allow-exec did not allow the exec: {out}"
    );
    stdout
}

/// Under strict with `extra` flags, `/proc/self` is readable and another process's `/proc`
/// entry is not.
pub fn check_proc_self(extra: &[&str]) {
    let scratch = Scratch::new("procself");
    let strict = strict_policy();
    let mut args = vec!["run", "--policy", strict.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend(["--", "/usr/bin/head", "-c", "5", "/proc/self/status"]);
    let out = run(&args);
    assert!(out.status.success(), "{}", describe(&out));
    let mut args = vec!["--policy", strict.to_str().unwrap()];
    args.extend_from_slice(extra);
    let ops = [Op::OpenRead("/proc/1/status".into())];
    let session = run_ops(&args, &scratch.0, &ops, &scratch.path("p.jsonl"), None);
    assert_eq!(session.results, ["EACCES"], "{}", session.describe);
}
