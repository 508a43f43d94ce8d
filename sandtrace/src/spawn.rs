//! Starting CMD inside the session so that nothing it does escapes the session's lifetime.
//!
//! ```text
//! loader ──clone3(NEWPID|NEWNS|NEWIPC|NEWUTS|PIDFD)──▶ init (pid 1, loader's cgroup)
//!                                          └─clone3(INTO_CGROUP)──▶ CMD (session cgroup) ─execve
//! ```
//!
//! * CMD is born inside the session cgroup (`CLONE_INTO_CGROUP`): every BPF program, already
//!   attached and filtering on that cgroup, sees it from its first instruction. There is no
//!   window in which it runs outside.
//! * init has `PR_SET_PDEATHSIG(SIGKILL)`: if the loader dies, even by SIGKILL, init dies and the
//!   kernel kills every process of its PID namespace, including ones that called setsid or
//!   double-forked.
//! * init stays outside the session cgroup, so its own bookkeeping is not traced.
//! * A fresh /proc is mounted in a private mount namespace so CMD sees only its own processes.
//! * The session has its own IPC namespace (SysV IPC, POSIX message queues) and UTS namespace
//!   (a hostname set inside stays inside).
//! * [`Spawned`] owns the running session: dropping it kills and reaps init, so no error path
//!   leaves a process behind.
//!
//! Everything that runs in the cloned children is async-signal-safe: raw syscalls on data
//! prepared before the clone, no allocation, no locks (that code lives in `spawn/init.rs`).

use std::{
    ffi::{CString, OsStr, OsString},
    fs::File,
    io::Read as _,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
        unix::ffi::OsStrExt as _,
    },
    path::{Path, PathBuf},
    ptr,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context as _, Result};

use crate::seccomp::SeccompFilter;

mod init;
mod privileges;

pub use privileges::DropPrivileges;

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// CMD, resolved and converted for execve before any process is created.
pub struct PreparedCommand {
    program: CString,
    /// The resolved executable, for messages.
    pub path: PathBuf,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
}

/// Why CMD could not be started.
#[derive(Debug)]
pub enum PrepareError {
    NotFound(OsString),
    NotExecutable(PathBuf),
    Invalid(String),
}

impl std::fmt::Display for PrepareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound(name) => write!(
                f,
                "{}: command not found (searched PATH; give a path such as ./{0} for a file in \
                 the current directory)",
                name.to_string_lossy()
            ),
            Self::NotExecutable(path) => {
                write!(f, "{}: is not an executable file", path.display())
            }
            Self::Invalid(why) => f.write_str(why),
        }
    }
}

impl PreparedCommand {
    /// Resolves `args[0]` like a shell does (PATH search unless it contains a slash) and builds
    /// the argument vector and, from `env`, the environment for execve.
    pub fn new(args: &[OsString], env: &[(OsString, OsString)]) -> Result<Self, PrepareError> {
        let name = args
            .first()
            .ok_or_else(|| PrepareError::Invalid("no command given".into()))?;
        let path = resolve_program(name)?;
        let cstr = |s: &OsStr| {
            CString::new(s.as_bytes()).map_err(|_| {
                PrepareError::Invalid(format!("{}: contains a NUL byte", s.to_string_lossy()))
            })
        };
        let program = cstr(path.as_os_str())?;
        let argv: Vec<CString> = args.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?;
        let envp: Vec<CString> = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.clone();
                kv.push("=");
                kv.push(v);
                cstr(&kv)
            })
            .collect::<Result<_, _>>()?;
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(ptr::null()))
                .collect()
        };
        Ok(Self {
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            program,
            path,
            _argv: argv,
            _envp: envp,
        })
    }
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn resolve_program(name: &OsStr) -> Result<PathBuf, PrepareError> {
    if name.as_bytes().contains(&b'/') {
        let path = PathBuf::from(name);
        if !path.exists() {
            return Err(PrepareError::NotFound(name.to_owned()));
        }
        if !is_executable_file(&path) {
            return Err(PrepareError::NotExecutable(path));
        }
        return Ok(path);
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&search)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable_file(candidate))
        .ok_or_else(|| PrepareError::NotFound(name.to_owned()))
}

/// What init reports about CMD over the report pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// CMD ended; a wait(2) status.
    Exited(i32),
    /// execve of CMD failed with this errno.
    ExecFailed(i32),
    /// Setting up CMD's process failed before execve.
    SetupFailed(SetupStage, i32),
}

/// A step of the session's setup, in init or in CMD's process. Reported over pipes as its
/// number, which starts at 1: 0 stands for execve itself failing (see `init::cmd_main`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum SetupStage {
    MountProc = 1,
    CloneIntoCgroup,
    Seccomp,
    ProcessLimit,
    Landlock,
    LandlockGrants,
    MemfdNoexec,
    HideCgroups,
    AmbientCapabilities,
    Securebits,
    BoundingSet,
    SwitchUser,
    Capabilities,
    NoNewPrivs,
    Terminal,
    SessionKeyring,
    CoreLimit,
}

impl SetupStage {
    const ALL: [Self; 17] = [
        Self::MountProc,
        Self::CloneIntoCgroup,
        Self::Seccomp,
        Self::ProcessLimit,
        Self::Landlock,
        Self::LandlockGrants,
        Self::MemfdNoexec,
        Self::HideCgroups,
        Self::AmbientCapabilities,
        Self::Securebits,
        Self::BoundingSet,
        Self::SwitchUser,
        Self::Capabilities,
        Self::NoNewPrivs,
        Self::Terminal,
        Self::SessionKeyring,
        Self::CoreLimit,
    ];

    fn from_i32(v: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|&stage| stage as i32 == v)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::MountProc => "mounting /proc in the session's mount namespace",
            Self::CloneIntoCgroup => "starting the command inside the session cgroup",
            Self::Seccomp => "installing the seccomp filter",
            Self::ProcessLimit => "joining the session's pids cgroup (max_processes)",
            Self::Landlock => {
                "entering the session's Landlock domain (filesystem rules, abstract UNIX socket \
                 scoping)"
            }
            Self::LandlockGrants => "adding the filesystem grants to the Landlock ruleset",
            Self::MemfdNoexec => {
                "refusing executable memfds in the session (vm.memfd_noexec = 2 in its PID \
                 namespace)"
            }
            Self::HideCgroups => "hiding the cgroup file systems from the session",
            Self::AmbientCapabilities => {
                "keeping [process] capabilities across execve (the ambient set; sandtrace \
                 itself must hold them)"
            }
            Self::Securebits => "locking the securebits (no capabilities for root on execve)",
            Self::BoundingSet => "removing capabilities from the bounding set",
            Self::SwitchUser => "switching to the command's user and groups",
            Self::Capabilities => "removing the command's capabilities",
            Self::NoNewPrivs => "setting no_new_privs",
            Self::Terminal => "giving the command a session and a terminal of its own",
            Self::SessionKeyring => "giving the command a new session keyring",
            Self::CoreLimit => {
                "setting RLIMIT_CORE to 1 (no core dump, no core dump helper outside the session)"
            }
        }
    }
}

const TAG_EXITED: i32 = 1;
const TAG_EXEC_FAILED: i32 = 2;
const TAG_SETUP_FAILED: i32 = 3;

/// The running session's init process. Dropping it kills init, and with it every process of
/// the session's PID namespace, and reaps it, unless that was done already: no error path of
/// the loader leaves a process behind.
pub struct Spawned {
    pub init_pid: libc::pid_t,
    /// Readable when init exits.
    pub init_pidfd: OwnedFd,
    report: File,
    /// Held open so init can tell the loader is alive; see `init::die_with_loader`.
    _alive: OwnedFd,
    /// Init was reaped: its pid may name another process now.
    reaped: AtomicBool,
}

impl Spawned {
    /// Reads init's report. `None` when init died without reporting (it was killed).
    pub fn read_outcome(&mut self) -> Option<Outcome> {
        let mut buf = [0u8; 12];
        let mut outcome = None;
        // Init may report ExecFailed/SetupFailed followed by nothing, or Exited.
        while self.report.read_exact(&mut buf).is_ok() {
            let word = |i: usize| i32::from_ne_bytes(buf[i * 4..i * 4 + 4].try_into().unwrap());
            outcome = match word(0) {
                TAG_EXITED => Some(Outcome::Exited(word(1))),
                TAG_EXEC_FAILED => Some(Outcome::ExecFailed(word(1))),
                TAG_SETUP_FAILED => {
                    SetupStage::from_i32(word(1)).map(|stage| Outcome::SetupFailed(stage, word(2)))
                }
                _ => None,
            };
            if let Some(Outcome::ExecFailed(_) | Outcome::SetupFailed(..)) = outcome {
                break;
            }
        }
        outcome
    }

    /// Kills init, and with it every process of its PID namespace. Does nothing once init is
    /// reaped.
    pub fn kill(&self) {
        if self.reaped.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: the pidfd is owned by `self`; a null siginfo is allowed (the kernel fills in
        // that of a kill(2)). Through the pidfd the signal cannot reach a process that reused
        // init's pid.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.init_pidfd.as_raw_fd(),
                libc::SIGKILL,
                ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }

    /// Reaps init, waiting for it to end. Call after `init_pidfd` became readable or after
    /// `kill`. Does nothing the second time.
    pub fn reap(&self) {
        if self.reaped.swap(true, Ordering::AcqRel) {
            return;
        }
        loop {
            let mut status = 0;
            // SAFETY: `status` is on this stack frame; init is our child and not yet reaped,
            // so its pid still names it.
            let pid = unsafe { libc::waitpid(self.init_pid, &raw mut status, 0) };
            if pid >= 0 || errno() != libc::EINTR {
                break;
            }
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
        self.reap();
    }
}

/// A pipe, both ends close-on-exec, as raw descriptors (for the cloned processes too).
fn raw_pipe() -> Result<(RawFd, RawFd), i32> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 stores.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(errno());
    }
    Ok((fds[0], fds[1]))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let (rd, wr) = raw_pipe()
        .map_err(std::io::Error::from_raw_os_error)
        .context("pipe2")?;
    // SAFETY: pipe2 just created both descriptors; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(rd), OwnedFd::from_raw_fd(wr)) })
}

/// The clone3 syscall.
///
/// # Safety
///
/// Without `CLONE_VM` in `args`, the new process is a copy of this multi-threaded one in
/// which only the calling thread exists. Where this returns 0 (in the new process), the
/// caller must run only async-signal-safe code (see `spawn/init.rs`) and end in execve or
/// _exit. Pointers in `args` must be valid for the kernel to write to.
unsafe fn clone3(args: &mut libc::clone_args) -> libc::c_long {
    // SAFETY: `args` is a valid clone_args and the size passed is its size; the rest is the
    // caller's promise.
    unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    }
}

fn zeroed_clone_args() -> libc::clone_args {
    // SAFETY: clone_args is plain integers; all-zero is its documented default.
    unsafe { std::mem::zeroed() }
}

/// What CMD's process applies to itself right before execve, in this order. Everything is
/// prepared by the loader; the child only makes raw syscalls on it.
#[derive(Default)]
pub struct CmdSetup<'a> {
    /// A v1 `cgroup.procs` open for writing, to join (see `cgroup::ProcessLimit`).
    pub join_procs: Option<RawFd>,
    /// CMD's user and capabilities; `None` keeps sandtrace's (`--as-root`).
    pub privileges: Option<&'a DropPrivileges>,
    /// Init sets the session's `vm.memfd_noexec` to 2 (see `SessionPlan::memfd_noexec`).
    pub memfd_noexec: bool,
    /// The Landlock ruleset to fill and restrict itself to (see `crate::landlock`).
    pub landlock: Option<LandlockSetup<'a>>,
    pub seccomp: Option<&'a SeccompFilter>,
    /// Directories to cover with an empty read-only tmpfs in the session's mount namespace
    /// (the cgroup file systems, where nothing else keeps CMD from leaving its cgroup).
    pub hidden_dirs: &'a [CString],
    /// The session's pseudo-terminal, where sandtrace was started from a terminal.
    pub terminal: Option<CmdTerminal>,
}

/// A Landlock ruleset made by the loader, and the grants CMD's process adds to it.
#[derive(Clone, Copy)]
pub struct LandlockSetup<'a> {
    pub ruleset: RawFd,
    pub grants: &'a [crate::landlock::PathGrant],
}

/// The pseudo-terminal CMD's process takes as its controlling terminal and puts on the standard
/// descriptors that were terminals (see `crate::pty`).
#[derive(Clone, Copy)]
pub struct CmdTerminal {
    /// The slave, opened with `O_NOCTTY` by the loader; CMD's process makes it its controlling
    /// terminal.
    pub slave: RawFd,
    /// Which of stdin, stdout and stderr it replaces.
    pub replaces: [bool; 3],
}

/// Starts init and, through it, CMD inside `cgroup_fd`, set up by `setup` before execve.
pub fn spawn(cmd: &PreparedCommand, cgroup_fd: RawFd, setup: &CmdSetup<'_>) -> Result<Spawned> {
    let (alive_rd, alive_wr) = pipe()?;
    let (report_rd, report_wr) = pipe()?;
    let mut pidfd: libc::c_int = -1;
    let mut args = zeroed_clone_args();
    args.flags = (libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_PIDFD) as u64;
    args.pidfd = &raw mut pidfd as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    // SAFETY: the new process runs only `init::main`, which is async-signal-safe and never
    // returns; `args.pidfd` points to `pidfd` on this stack frame.
    let pid = unsafe { clone3(&mut args) };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context(
            "clone3 with new PID, mount, IPC and UTS namespaces (sandtrace must run as root)",
        );
    }
    if pid == 0 {
        init::main(
            cmd,
            cgroup_fd,
            alive_rd.as_raw_fd(),
            report_wr.as_raw_fd(),
            setup,
        );
    }
    drop(alive_rd);
    drop(report_wr);
    Ok(Spawned {
        init_pid: pid as libc::pid_t,
        // SAFETY: with CLONE_PIDFD, the successful clone3 stored a new descriptor for init in
        // `pidfd`; nothing else owns it.
        init_pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        report: File::from(report_rd),
        _alive: alive_wr,
        reaped: AtomicBool::new(false),
    })
}

/// The current errno.
fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The nesting level of sandtrace's own PID namespace (0 for the initial one), from the number
/// of ids in `NSpid` of /proc/self/status. The session's namespace is one deeper.
pub fn own_pid_ns_level() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .map(|ids| ids.split_whitespace().count().saturating_sub(1) as u32)
        })
        .unwrap_or(0)
}

/// The text of an errno, for messages.
pub fn describe_errno(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::{
        SessionCgroup,
        testing::{populated, session, wait_until_populated},
    };

    fn start(cgroup: &SessionCgroup, args: &[&str], setup: &CmdSetup<'_>) -> Spawned {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        let cmd = PreparedCommand::new(&args, &env).unwrap();
        spawn(&cmd, cgroup.dir_fd(), setup).unwrap()
    }

    #[test]
    fn a_session_dropped_without_reaping_leaves_no_process() {
        let Some((_, cgroup)) = session() else {
            return;
        };
        let child = start(&cgroup, &["sleep", "1000"], &CmdSetup::default());
        // CMD runs, in the session cgroup.
        wait_until_populated(cgroup.path());
        let init_pid = child.init_pid;
        // An error path of the loader: `child` goes out of scope without kill or reap.
        drop(child);
        // Init was reaped (it is no child of ours any more)...
        let mut status = 0;
        // SAFETY: `status` is on this stack frame.
        let waited = unsafe { libc::waitpid(init_pid, &raw mut status, libc::WNOHANG) };
        assert_eq!((waited, errno()), (-1, libc::ECHILD));
        // ...and CMD died with init's namespace.
        assert!(!populated(cgroup.path()));
        cgroup.remove().unwrap();
    }

    #[test]
    fn kill_and_reap_may_be_called_again_and_a_killed_init_reports_nothing() {
        let Some((_, cgroup)) = session() else {
            return;
        };
        let mut child = start(&cgroup, &["sleep", "1000"], &CmdSetup::default());
        wait_until_populated(cgroup.path());
        child.kill();
        child.reap();
        assert!(!populated(cgroup.path()));
        child.kill();
        child.reap();
        assert_eq!(child.read_outcome(), None);
    }

    #[test]
    fn reports_how_cmd_ended() {
        let Some((_, cgroup)) = session() else {
            return;
        };
        let mut child = start(&cgroup, &["sh", "-c", "exit 3"], &CmdSetup::default());
        let outcome = child.read_outcome();
        child.reap();
        let Some(Outcome::Exited(status)) = outcome else {
            panic!("{outcome:?}");
        };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3,
            "{status:#x}"
        );
    }

    #[test]
    fn reports_the_setup_step_that_failed_with_its_errno() {
        let Some((_, cgroup)) = session() else {
            return;
        };
        // In init: hiding a directory that does not exist.
        let missing = [CString::new("/nonexistent-sandtrace-hidden-dir").unwrap()];
        let setup = CmdSetup {
            hidden_dirs: &missing,
            ..CmdSetup::default()
        };
        let mut child = start(&cgroup, &["true"], &setup);
        assert_eq!(
            child.read_outcome(),
            Some(Outcome::SetupFailed(SetupStage::HideCgroups, libc::ENOENT))
        );
        drop(child);
        // In CMD's process: joining a cgroup through a descriptor not open for writing.
        let read_only = File::open("/dev/null").unwrap();
        let setup = CmdSetup {
            join_procs: Some(read_only.as_raw_fd()),
            ..CmdSetup::default()
        };
        let mut child = start(&cgroup, &["true"], &setup);
        assert_eq!(
            child.read_outcome(),
            Some(Outcome::SetupFailed(SetupStage::ProcessLimit, libc::EBADF))
        );
    }

    #[test]
    fn setup_stages_round_trip() {
        for stage in SetupStage::ALL {
            assert_eq!(SetupStage::from_i32(stage as i32), Some(stage));
        }
        assert_eq!(SetupStage::from_i32(0), None);
    }

    #[test]
    fn resolves_through_path() {
        let cmd = PreparedCommand::new(&["true".into()], &[]).unwrap();
        assert!(cmd.path.is_absolute(), "{}", cmd.path.display());
        assert!(matches!(
            PreparedCommand::new(&["no-such-command-sandtrace".into()], &[]),
            Err(PrepareError::NotFound(_))
        ));
        let plain = std::env::temp_dir().join(format!("sandtrace-plain-{}", std::process::id()));
        std::fs::write(&plain, "data").unwrap();
        let result = PreparedCommand::new(&[plain.clone().into()], &[]);
        std::fs::remove_file(&plain).unwrap();
        assert!(matches!(result, Err(PrepareError::NotExecutable(_))));
    }
}
