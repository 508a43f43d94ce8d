//! Starting CMD inside the session so that nothing it does escapes the session's lifetime.
//!
//! ```text
//! loader ──clone3(NEWPID|NEWNS|PIDFD)──▶ init (pid 1 of a new PID namespace, loader's cgroup)
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
//!
//! Everything that runs in the cloned children is async-signal-safe: raw syscalls on data
//! prepared before the clone, no allocation, no locks.

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
};

use anyhow::{Context as _, Result};

use crate::seccomp::SeccompFilter;

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
    /// the argument and environment vectors for execve.
    pub fn new(args: &[OsString]) -> Result<Self, PrepareError> {
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
        let envp: Vec<CString> = std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k;
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum SetupStage {
    MountProc = 1,
    CloneIntoCgroup = 2,
    Seccomp = 3,
    ProcessLimit = 4,
    Landlock = 5,
    HideCgroups = 6,
}

impl SetupStage {
    fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            1 => Self::MountProc,
            2 => Self::CloneIntoCgroup,
            3 => Self::Seccomp,
            4 => Self::ProcessLimit,
            5 => Self::Landlock,
            6 => Self::HideCgroups,
            _ => return None,
        })
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::MountProc => "mounting /proc in the session's mount namespace",
            Self::CloneIntoCgroup => "starting the command inside the session cgroup",
            Self::Seccomp => "installing the seccomp filter",
            Self::ProcessLimit => "joining the session's pids cgroup (max_processes)",
            Self::Landlock => "scoping abstract UNIX sockets to the session (Landlock)",
            Self::HideCgroups => "hiding the cgroup file systems from the session",
        }
    }
}

const TAG_EXITED: i32 = 1;
const TAG_EXEC_FAILED: i32 = 2;
const TAG_SETUP_FAILED: i32 = 3;

/// The running session's init process.
pub struct Spawned {
    pub init_pid: libc::pid_t,
    /// Readable when init exits.
    pub init_pidfd: OwnedFd,
    report: File,
    /// Held open so init can tell the loader is alive; see `init_main`.
    _alive: OwnedFd,
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

    /// Kills init, and with it every process of its PID namespace.
    pub fn kill(&self) {
        unsafe { libc::kill(self.init_pid, libc::SIGKILL) };
    }

    /// Reaps init. Call after `init_pidfd` became readable or after `kill`.
    pub fn reap(&self) {
        let mut status = 0;
        unsafe { libc::waitpid(self.init_pid, &mut status, 0) };
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe2");
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn clone3(args: &mut libc::clone_args) -> libc::c_long {
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
    /// A Landlock ruleset to restrict itself to (see `network::abstract_sockets`).
    pub landlock_ruleset: Option<RawFd>,
    pub seccomp: Option<&'a SeccompFilter>,
    /// Directories to cover with an empty read-only tmpfs in the session's mount namespace
    /// (the cgroup file systems, where nothing else keeps CMD from leaving its cgroup).
    pub hidden_dirs: &'a [CString],
}

/// Starts init and, through it, CMD inside `cgroup_fd`, set up by `setup` before execve.
pub fn spawn(cmd: &PreparedCommand, cgroup_fd: RawFd, setup: &CmdSetup<'_>) -> Result<Spawned> {
    let (alive_rd, alive_wr) = pipe()?;
    let (report_rd, report_wr) = pipe()?;
    let mut pidfd: libc::c_int = -1;
    let mut args = zeroed_clone_args();
    args.flags = (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_PIDFD) as u64;
    args.pidfd = &mut pidfd as *mut libc::c_int as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    let pid = clone3(&mut args);
    if pid < 0 {
        return Err(std::io::Error::last_os_error())
            .context("clone3 with a new PID and mount namespace (sandtrace must run as root)");
    }
    if pid == 0 {
        init_main(
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
        init_pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        report: File::from(report_rd),
        _alive: alive_wr,
    })
}

fn report(fd: RawFd, words: [i32; 3]) {
    let mut buf = [0u8; 12];
    for (i, w) in words.iter().enumerate() {
        buf[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
}

/// Reports that setting up CMD's process failed at `stage` (with the current errno) and exits.
fn fail_setup(report_wr: RawFd, stage: SetupStage) -> ! {
    report(report_wr, [TAG_SETUP_FAILED, stage as i32, errno()]);
    unsafe { libc::_exit(1) }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Restores what a freshly exec'd program expects: default signal dispositions (the loader's
/// runtime installs handlers; Rust ignores SIGPIPE) and an empty signal mask.
fn reset_signals() {
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, ptr::null_mut());
    }
}

/// PID 1 of the session's namespace. Never returns.
fn init_main(
    cmd: &PreparedCommand,
    cgroup_fd: RawFd,
    alive_rd: RawFd,
    report_wr: RawFd,
    setup: &CmdSetup<'_>,
) -> ! {
    unsafe {
        // Die with the loader. The loader may already be gone (it was killed between clone and
        // prctl): then the alive pipe has no writer left.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        let mut pfd = libc::pollfd {
            fd: alive_rd,
            events: libc::POLLIN,
            revents: 0,
        };
        if libc::poll(&mut pfd, 1, 0) != 0 {
            libc::_exit(1);
        }
        reset_signals();

        if libc::mount(
            ptr::null(),
            c"/".as_ptr(),
            ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            ptr::null(),
        ) != 0
            || libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                ptr::null(),
            ) != 0
        {
            fail_setup(report_wr, SetupStage::MountProc);
        }
        // The seccomp filter refuses every mount syscall to CMD: it cannot uncover them.
        for dir in setup.hidden_dirs {
            if libc::mount(
                c"tmpfs".as_ptr(),
                dir.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                c"mode=0555".as_ptr().cast(),
            ) != 0
            {
                fail_setup(report_wr, SetupStage::HideCgroups);
            }
        }

        let mut exec_err = [0; 2];
        if libc::pipe2(exec_err.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            fail_setup(report_wr, SetupStage::CloneIntoCgroup);
        }
        let mut args = zeroed_clone_args();
        args.flags = CLONE_INTO_CGROUP;
        args.cgroup = cgroup_fd as u64;
        args.exit_signal = libc::SIGCHLD as u64;
        let child = clone3(&mut args);
        if child < 0 {
            fail_setup(report_wr, SetupStage::CloneIntoCgroup);
        }
        if child == 0 {
            libc::close(exec_err[0]);
            let setup_failed = |stage: SetupStage, errno: i32| -> ! {
                let msg = [stage as i32, errno];
                libc::write(exec_err[1], msg.as_ptr().cast(), 8);
                libc::_exit(127)
            };
            // "0" is the writing process itself. Before exec: nothing CMD runs escapes the
            // limit.
            if let Some(fd) = setup.join_procs
                && libc::write(fd, c"0".as_ptr().cast(), 1) != 1
            {
                setup_failed(SetupStage::ProcessLimit, errno());
            }
            if let Some(ruleset) = setup.landlock_ruleset
                && let Err(e) = crate::network::abstract_sockets::restrict_self(ruleset)
            {
                setup_failed(SetupStage::Landlock, e as i32);
            }
            if let Some(filter) = setup.seccomp
                && let Err(e) = filter.install()
            {
                setup_failed(SetupStage::Seccomp, e as i32);
            }
            libc::execve(
                cmd.program.as_ptr(),
                cmd.argv_ptrs.as_ptr(),
                cmd.envp_ptrs.as_ptr(),
            );
            let msg = [0, errno()];
            libc::write(exec_err[1], msg.as_ptr().cast(), 8);
            libc::_exit(127);
        }
        libc::close(exec_err[1]);
        let mut msg = [0i32; 2];
        if libc::read(exec_err[0], msg.as_mut_ptr().cast(), 8) == 8 {
            match SetupStage::from_i32(msg[0]) {
                Some(stage) => report(report_wr, [TAG_SETUP_FAILED, stage as i32, msg[1]]),
                None => report(report_wr, [TAG_EXEC_FAILED, msg[1], 0]),
            }
        }
        libc::close(exec_err[0]);
        // Reap everything (orphans are re-parented to us) until CMD itself ends. Returning then
        // tears down the namespace: the kernel kills whatever CMD left running.
        loop {
            let mut status = 0;
            let pid = libc::waitpid(-1, &mut status, libc::__WALL);
            if pid == child as libc::pid_t {
                report(report_wr, [TAG_EXITED, status, 0]);
                libc::_exit(0);
            }
            if pid < 0 && errno() == libc::ECHILD {
                libc::_exit(0);
            }
        }
    }
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

    #[test]
    fn resolves_through_path() {
        let cmd = PreparedCommand::new(&["true".into()]).unwrap();
        assert!(cmd.path.is_absolute(), "{}", cmd.path.display());
        assert!(matches!(
            PreparedCommand::new(&["no-such-command-sandtrace".into()]),
            Err(PrepareError::NotFound(_))
        ));
        let plain = std::env::temp_dir().join(format!("sandtrace-plain-{}", std::process::id()));
        std::fs::write(&plain, "data").unwrap();
        let result = PreparedCommand::new(&[plain.clone().into()]);
        std::fs::remove_file(&plain).unwrap();
        assert!(matches!(result, Err(PrepareError::NotExecutable(_))));
    }
}
