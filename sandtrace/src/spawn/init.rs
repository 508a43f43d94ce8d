//! What runs in the cloned processes: init (PID 1 of the session's namespace) and, cloned from
//! it, CMD's process up to its execve.
//!
//! Both are copies of the multi-threaded loader made by `clone3` without `CLONE_VM`: only the
//! calling thread exists in them, and another thread may have held any lock (the allocator's,
//! stdio's) at the moment of the clone. So everything here is async-signal-safe:
//! - raw syscalls only, on data prepared before the clone (the [`PreparedCommand`]'s strings
//!   and pointer arrays, the [`CmdSetup`]'s descriptors and filter), which the process's copy
//!   of the loader's memory holds unchanged, or on this stack;
//! - no allocation, no locks, no stdio, nothing that can panic;
//! - every path ends in `execve` or `_exit` (never a return into the loader's code, never its
//!   atexit handlers or destructors).
//!
//! Failures travel as raw errno values ([`Errno`]) and are reported over pipes: init reports
//! to the loader (`report_wr`), CMD's process to init (`cmd_err_wr`).

use std::{os::fd::RawFd, ptr};

use super::{
    CLONE_INTO_CGROUP, CmdSetup, CmdTerminal, PreparedCommand, SetupStage, TAG_EXEC_FAILED,
    TAG_EXITED, TAG_SETUP_FAILED, clone3, errno, raw_pipe, zeroed_clone_args,
};

/// A raw errno value.
type Errno = i32;

/// PID 1 of the session's namespace: prepares the namespace, starts CMD in the session cgroup
/// and reaps until CMD ends. Never returns.
pub(super) fn main(
    cmd: &PreparedCommand,
    cgroup_fd: RawFd,
    alive_rd: RawFd,
    report_wr: RawFd,
    setup: &CmdSetup<'_>,
) -> ! {
    die_with_loader(alive_rd);
    reset_signals();
    keep_out_of_reach();
    let step = |stage: SetupStage, result: Result<(), Errno>| {
        if let Err(errno) = result {
            fail_setup(report_wr, stage, errno);
        }
    };
    step(SetupStage::MountProc, mount_private_proc());
    if setup.memfd_noexec {
        step(SetupStage::MemfdNoexec, refuse_executable_memfds());
    }
    // The seccomp filter refuses every mount syscall to CMD: it cannot uncover them.
    step(SetupStage::HideCgroups, hide_dirs(setup.hidden_dirs));
    // Init's copies are in reach of a root CMD (through /proc/1/fd): the user's terminal goes.
    step(SetupStage::Terminal, replace_terminals(setup.terminal));
    let (cmd_err_rd, cmd_err_wr) = raw_pipe()
        .unwrap_or_else(|errno| fail_setup(report_wr, SetupStage::CloneIntoCgroup, errno));
    let cmd_pid = start_cmd(cmd, setup, cgroup_fd, cmd_err_rd, cmd_err_wr)
        .unwrap_or_else(|errno| fail_setup(report_wr, SetupStage::CloneIntoCgroup, errno));
    close(cmd_err_wr);
    close_all_but(cmd_err_rd, report_wr);
    forward_cmd_failure(cmd_err_rd, report_wr);
    close(cmd_err_rd);
    reap_until_cmd_ends(cmd_pid, report_wr)
}

/// Makes init die with the loader (`PR_SET_PDEATHSIG`), and exits if the loader is already
/// gone: it may have been killed between the clone and the prctl, and then the alive pipe
/// has no writer left.
fn die_with_loader(alive_rd: RawFd) {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let mut pfd = libc::pollfd {
        fd: alive_rd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd on this stack frame, and the count says one.
    if unsafe { libc::poll(&raw mut pfd, 1, 0) } != 0 {
        exit(1);
    }
}

/// Init is a copy of the loader: it holds the loader's descriptors (the session cgroup's
/// directory, BPF maps and programs, ...) and memory, which a root CMD could otherwise reach
/// through `/proc/1/fd` and `/proc/1/mem` (and, with the cgroup directory, leave the session).
/// Not dumpable, they need `CAP_SYS_PTRACE`, which CMD does not have unless `--as-root`
/// (BPF LSM's ptrace check refuses it even then); [`close_all_but`] closes them once CMD runs.
fn keep_out_of_reach() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
}

/// Closes every descriptor from 3 on except `a` and `b`: once CMD's process exists, init needs
/// only its two pipes (and CMD's process has its own copies of what it needs until execve).
fn close_all_but(a: RawFd, b: RawFd) {
    let close_range = |first: u32, last: u32| {
        if first <= last {
            // SAFETY: close_range with integer arguments; it closes only descriptors of this
            // process, and none in the range is in use (the two pipes are outside it).
            unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        }
    };
    let mut next = 3;
    for keep in [a.min(b), a.max(b)] {
        let keep = keep as u32;
        if keep >= next {
            close_range(next, keep.saturating_sub(1));
            next = keep + 1;
        }
    }
    close_range(next, u32::MAX);
}

/// Restores what a freshly exec'd program expects: default signal dispositions (the loader's
/// runtime installs handlers; Rust ignores SIGPIPE) and an empty signal mask.
fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: SIG_DFL installs no handler; signal(2) is async-signal-safe.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    // SAFETY: all-zero is a valid sigset_t, emptied again by sigemptyset; both pointers are
    // to this stack frame, and a null old set is allowed.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const set, ptr::null_mut());
    }
}

/// Makes every mount private to the session's mount namespace (so nothing below propagates
/// to the host) and mounts a fresh /proc, which shows only the session's processes.
fn mount_private_proc() -> Result<(), Errno> {
    // SAFETY: a static NUL-terminated target; source, type and data may be null for a
    // propagation change.
    check(unsafe {
        libc::mount(
            ptr::null(),
            c"/".as_ptr(),
            ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            ptr::null(),
        )
    })?;
    // SAFETY: static NUL-terminated strings; data may be null.
    check(unsafe {
        libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            ptr::null(),
        )
    })
}

/// Sets `vm.memfd_noexec` to 2 in the session's PID namespace (read through its own /proc):
/// every memfd made in the session is sealed non-executable, and asking for an executable one
/// fails. A process of the namespace cannot lower it again.
fn refuse_executable_memfds() -> Result<(), Errno> {
    let path = crate::plan::features::MEMFD_NOEXEC_SYSCTL;
    // SAFETY: a static NUL-terminated path; the descriptor is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: writes one byte from a static string to the descriptor just opened.
    let written = unsafe { libc::write(fd, c"2".as_ptr().cast(), 1) };
    let result = if written == 1 { Ok(()) } else { Err(errno()) };
    close(fd);
    result
}

/// Covers each of `dirs` with an empty read-only tmpfs.
fn hide_dirs(dirs: &[std::ffi::CString]) -> Result<(), Errno> {
    for dir in dirs {
        // SAFETY: `dir` is a C string the loader built before the clone (this process's copy
        // of its memory holds it); the other strings are static and NUL-terminated.
        check(unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                dir.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                c"mode=0555".as_ptr().cast(),
            )
        })?;
    }
    Ok(())
}

/// Clones CMD's process into the session cgroup (`CLONE_INTO_CGROUP`: it is never outside
/// it). Returns its pid; the clone itself runs [`cmd_main`] and never returns here.
fn start_cmd(
    cmd: &PreparedCommand,
    setup: &CmdSetup<'_>,
    cgroup_fd: RawFd,
    cmd_err_rd: RawFd,
    cmd_err_wr: RawFd,
) -> Result<libc::pid_t, Errno> {
    let mut args = zeroed_clone_args();
    args.flags = CLONE_INTO_CGROUP;
    args.cgroup = cgroup_fd as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    // SAFETY: the clone (a copy of init, without CLONE_VM) runs only `cmd_main`, which is
    // async-signal-safe like the rest of this module and ends in execve or _exit.
    let pid = unsafe { clone3(&mut args) };
    if pid < 0 {
        return Err(errno());
    }
    if pid == 0 {
        close(cmd_err_rd);
        cmd_main(cmd, setup, cmd_err_wr);
    }
    Ok(pid as libc::pid_t)
}

/// CMD's process: applies `setup` to itself, in this order, and executes CMD. Never returns.
fn cmd_main(cmd: &PreparedCommand, setup: &CmdSetup<'_>, cmd_err_wr: RawFd) -> ! {
    if let Err(errno) = take_own_terminal(setup.terminal) {
        cmd_failed(cmd_err_wr, SetupStage::Terminal as i32, errno);
    }
    // Before exec: nothing CMD runs escapes the limit.
    if let Some(procs) = setup.join_procs
        && let Err(errno) = join_cgroup(procs)
    {
        cmd_failed(cmd_err_wr, SetupStage::ProcessLimit as i32, errno);
    }
    // As root, in the session's mount namespace and with /proc/self naming this process: the
    // walk saw the files as root, and the grants hold inodes, not names.
    if let Some(landlock) = setup.landlock
        && let Err(e) = crate::landlock::add_grants(landlock.ruleset, landlock.grants)
    {
        cmd_failed(cmd_err_wr, SetupStage::LandlockGrants as i32, e as i32);
    }
    // After the cgroups (joining needs root), before Landlock and seccomp (last before execve).
    if let Some(privileges) = setup.privileges
        && let Err((stage, errno)) = privileges.apply()
    {
        cmd_failed(cmd_err_wr, stage as i32, errno);
    }
    if let Some(landlock) = setup.landlock
        && let Err(e) = crate::landlock::restrict_self(landlock.ruleset)
    {
        cmd_failed(cmd_err_wr, SetupStage::Landlock as i32, e as i32);
    }
    if let Err(errno) = join_new_session_keyring() {
        cmd_failed(cmd_err_wr, SetupStage::SessionKeyring as i32, errno);
    }
    if let Err(errno) = limit_core_dumps() {
        cmd_failed(cmd_err_wr, SetupStage::CoreLimit as i32, errno);
    }
    if let Some(filter) = setup.seccomp
        && let Err(e) = filter.install()
    {
        cmd_failed(cmd_err_wr, SetupStage::Seccomp as i32, e as i32);
    }
    let errno = exec(cmd);
    // Stage 0: execve itself failed.
    cmd_failed(cmd_err_wr, 0, errno)
}

/// Puts the session's pseudo-terminal in place of each standard descriptor that is the user's
/// terminal, in init, so that neither init nor CMD's process (its clone) holds the user's
/// terminal.
fn replace_terminals(terminal: Option<CmdTerminal>) -> Result<(), Errno> {
    let Some(terminal) = terminal else {
        return Ok(());
    };
    for (fd, replace) in (0..).zip(terminal.replaces) {
        // SAFETY: dup2 of a descriptor this process holds onto a standard descriptor. The
        // slave itself is close-on-exec; its copies are not.
        if replace && unsafe { libc::dup2(terminal.slave, fd) } < 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// Replaces the caller's session keyring with a new anonymous one, so that CMD never finds the
/// keys of the session sandtrace was started from (the seccomp baseline refuses the keyring
/// syscalls too).
fn join_new_session_keyring() -> Result<(), Errno> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a null name asks for an anonymous keyring; nothing is read from memory.
    let serial = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            ptr::null::<libc::c_char>(),
        )
    };
    if serial < 0 {
        return Err(errno());
    }
    Ok(())
}

/// Puts CMD's process in a session of its own, in every mode: it never has the user's
/// controlling terminal (nor any, when sandtrace was not started from a terminal). Where it
/// was, the session's pseudo-terminal (already on the standard descriptors that were
/// terminals, see [`replace_terminals`]) becomes CMD's controlling terminal.
fn take_own_terminal(terminal: Option<CmdTerminal>) -> Result<(), Errno> {
    // SAFETY: setsid has no arguments. CMD's process is a fresh clone, no group leader, so
    // this cannot fail with EPERM.
    if unsafe { libc::setsid() } < 0 {
        return Err(errno());
    }
    match terminal {
        // SAFETY: ioctl with integer arguments; 0: never take a terminal from another session.
        Some(terminal) => check(unsafe { libc::ioctl(terminal.slave, libc::TIOCSCTTY, 0) }),
        None => Ok(()),
    }
}

/// Sets RLIMIT_CORE to 1 (soft and hard). A limit of 0 only stops core files: for a pipe
/// `core_pattern` (`|/usr/lib/systemd/systemd-coredump ...`) the kernel ignores the limit and
/// starts the helper, as root outside the session, except when the limit is exactly 1, its
/// guard against crashing helpers (`coredump_pipe` in fs/coredump.c). One byte is also below
/// the smallest core file (a page), so no file is written either. The seccomp baseline keeps
/// CMD from changing it.
fn limit_core_dumps() -> Result<(), Errno> {
    let one = libc::rlimit {
        rlim_cur: 1,
        rlim_max: 1,
    };
    // SAFETY: `one` is on this stack frame; setrlimit only reads it.
    check(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &raw const one) })
}

/// Moves this process into the cgroup whose `cgroup.procs` is open as `procs`.
fn join_cgroup(procs: RawFd) -> Result<(), Errno> {
    // SAFETY: writes one byte from a static string. "0" names the writing process itself.
    if unsafe { libc::write(procs, c"0".as_ptr().cast(), 1) } != 1 {
        return Err(errno());
    }
    Ok(())
}

/// Replaces this process with CMD; returns only if that failed, with the errno.
fn exec(cmd: &PreparedCommand) -> Errno {
    // SAFETY: the program is a NUL-terminated string and argv/envp NULL-terminated arrays of
    // pointers into NUL-terminated strings, all built by `PreparedCommand::new` before the
    // clone and held by `cmd` in this process's copy of the loader's memory.
    unsafe {
        libc::execve(
            cmd.program.as_ptr(),
            cmd.argv_ptrs.as_ptr(),
            cmd.envp_ptrs.as_ptr(),
        )
    };
    errno()
}

/// Tells init why CMD's process did not reach CMD (`stage` 0: execve failed) and exits.
fn cmd_failed(cmd_err_wr: RawFd, stage: i32, errno: Errno) -> ! {
    write_words(cmd_err_wr, &[stage, errno]);
    exit(127)
}

/// Passes a failure report of CMD's process on to the loader. Reads nothing (end of file)
/// when CMD's execve succeeded: the pipe is close-on-exec.
fn forward_cmd_failure(cmd_err_rd: RawFd, report_wr: RawFd) {
    let mut msg = [0i32; 2];
    // SAFETY: `msg` is on this stack frame and has room for the bytes read.
    let len = unsafe { libc::read(cmd_err_rd, msg.as_mut_ptr().cast(), size_of_val(&msg)) };
    if len != size_of_val(&msg) as isize {
        return;
    }
    match SetupStage::from_i32(msg[0]) {
        Some(stage) => report(report_wr, [TAG_SETUP_FAILED, stage as i32, msg[1]]),
        None => report(report_wr, [TAG_EXEC_FAILED, msg[1], 0]),
    }
}

/// Reaps everything (orphans are re-parented to init) until CMD itself ends, reports its wait
/// status and exits. Init's exit tears down the namespace: the kernel kills whatever CMD left
/// running.
fn reap_until_cmd_ends(cmd_pid: libc::pid_t, report_wr: RawFd) -> ! {
    loop {
        let mut status = 0;
        // SAFETY: `status` is on this stack frame.
        let pid = unsafe { libc::waitpid(-1, &raw mut status, libc::__WALL) };
        if pid == cmd_pid {
            report(report_wr, [TAG_EXITED, status, 0]);
            exit(0);
        }
        if pid < 0 && errno() == libc::ECHILD {
            exit(0);
        }
    }
}

/// Reports that setting up the session failed at `stage` and exits.
fn fail_setup(report_wr: RawFd, stage: SetupStage, errno: Errno) -> ! {
    report(report_wr, [TAG_SETUP_FAILED, stage as i32, errno]);
    exit(1)
}

/// One report to the loader (see `Spawned::read_outcome`).
fn report(report_wr: RawFd, words: [i32; 3]) {
    write_words(report_wr, &words);
}

/// Writes `words` in one write(2): a pipe write of up to PIPE_BUF bytes is atomic.
fn write_words(fd: RawFd, words: &[i32]) {
    // SAFETY: the buffer is `words` itself, valid for its size in bytes.
    unsafe { libc::write(fd, words.as_ptr().cast(), size_of_val(words)) };
}

fn close(fd: RawFd) {
    // SAFETY: closes a pipe end this process owns and no longer uses.
    unsafe { libc::close(fd) };
}

/// Ends this process at once: no atexit handlers, no destructors (they would run the loader's
/// code on its copied state).
fn exit(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

/// `Ok` for a syscall that returned 0, else the errno.
fn check(ret: libc::c_int) -> Result<(), Errno> {
    if ret == 0 { Ok(()) } else { Err(errno()) }
}
