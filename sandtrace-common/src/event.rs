//! Records sent from the kernel programs to the loader over the `EVENTS` ring buffer.
//!
//! Every record starts with an [`EventHeader`]; its `kind` says which struct follows.

/// Longest path (including the NUL) a syscall event carries. Longer paths are cut and
/// flagged with [`SYSCALL_PATH_TRUNCATED`].
pub const SYSCALL_PATH_CAP: usize = 256;
/// Longest exec filename an exec event carries.
pub const EXEC_PATH_CAP: usize = 256;
/// Bytes of the argument list (NUL-separated, as on the new image's stack) an exec event
/// carries; a longer list is cut there and flagged (`argv_total` > `argv_len`).
pub const EXEC_ARGV_CAP: usize = 2048;
pub const COMM_LEN: usize = 16;

/// x86_64 syscall numbers are below this.
pub const MAX_SYSCALL_NR: usize = 512;
/// Slots in the per-syscall counter map: one per number, plus a last slot counting numbers
/// outside the table (x32 aliases, garbage).
pub const SYSCALL_COUNT_SLOTS: usize = MAX_SYSCALL_NR + 1;

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Syscall = 1,
    SyscallPath = 2,
    Fork = 3,
    Exec = 4,
    Exit = 5,
    File = 6,
    Network = 7,
    ForkRefused = 8,
    SeccompKill = 9,
    DnsPacket = 10,
    Socket = 11,
}

impl EventKind {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Syscall,
            2 => Self::SyscallPath,
            3 => Self::Fork,
            4 => Self::Exec,
            5 => Self::Exit,
            6 => Self::File,
            7 => Self::Network,
            8 => Self::ForkRefused,
            9 => Self::SeccompKill,
            10 => Self::DnsPacket,
            11 => Self::Socket,
            _ => return None,
        })
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    /// An [`EventKind`] as `u32`.
    pub kind: u32,
    /// Thread id in the initial PID namespace.
    pub pid: u32,
    /// Thread-group (process) id in the initial PID namespace.
    pub tgid: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the event happened.
    pub ts_ns: u64,
    pub comm: [u8; COMM_LEN],
}

/// Set in [`SyscallEvent::flags`] when `path` holds the syscall's decoded path argument.
pub const SYSCALL_HAS_PATH: u32 = 1 << 0;
/// Set when the path argument was longer than [`SYSCALL_PATH_CAP`] and was cut.
pub const SYSCALL_PATH_TRUNCATED: u32 = 1 << 1;
/// Set when the entry record was missing (the syscall started before tracing, another
/// thread's call displaced it, or the seccomp filter refused the call, which skips
/// `sys_enter`): `duration_ns` is then zero and `header.ts_ns` is the time of exit.
pub const SYSCALL_NO_ENTRY: u32 = 1 << 2;
/// Set for syscalls that never return (`exit`, `exit_group`): the event is sent at entry and
/// `ret` / `duration_ns` are meaningless.
pub const SYSCALL_NO_RETURN: u32 = 1 << 3;

/// Set when the policy denies this syscall: the seccomp filter refused it with `EPERM`.
pub const SYSCALL_DENIED: u32 = 1 << 4;
/// Set when the policy lists this syscall as `log_only`.
pub const SYSCALL_LOG_ONLY: u32 = 1 << 5;

/// Values of the per-syscall-number action map the loader fills (`SYSCALL_ACTIONS`). Syscalls
/// with an action are reported even when per-syscall events are off.
pub mod syscall_action {
    /// Nothing beyond tracing.
    pub const NONE: u8 = 0;
    /// Refused by the seccomp filter with `EPERM` (which skips the `sys_enter` tracepoint).
    pub const DENY: u8 = 1;
    /// Allowed, and reported.
    pub const LOG_ONLY: u8 = 2;
    /// `socket`/`socketpair`, which the seccomp baseline refuses for families and protocols
    /// the kernel could load a module for: a call that fails with `EPERM` without an entry
    /// record was refused, and is reported as a network denial.
    pub const SOCKET_FAMILY: u8 = 3;
    /// Refused by the seccomp filter without a policy rule (`clone3`, with `ENOSYS`): counted,
    /// not reported.
    pub const REFUSED: u8 = 4;
    /// Refused by the seccomp filter for some arguments only (the baseline's `ioctl`,
    /// `clone`, `mknod`, ...): a call that fails with `EPERM` without an entry record was
    /// refused, and is reported as [`DENY`] is.
    pub const DENY_BY_ARGS: u8 = 5;
}

/// One completed syscall (`EventKind::Syscall`). `header.ts_ns` is the time of entry.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SyscallEvent {
    pub header: EventHeader,
    pub nr: u32,
    pub flags: u32,
    pub args: [u64; 6],
    pub ret: i64,
    pub duration_ns: u64,
}

/// A completed syscall whose path argument was decoded (`EventKind::SyscallPath`). A separate
/// kind keeps the common path-less record small.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SyscallPathEvent {
    pub syscall: SyscallEvent,
    /// NUL-terminated.
    pub path: [u8; SYSCALL_PATH_CAP],
}

/// A new task (process or thread) created by a task of the session.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ForkEvent {
    pub header: EventHeader,
    pub child_pid: u32,
    pub child_tgid: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// pid before the exec (differs from `header.pid` when a non-leader thread execs).
    pub old_pid: u32,
    pub filename_len: u32,
    /// The regimes (`[[after_exec]]`, bit per regime) the process is in after the exec: the
    /// ones it was in, and the ones whose `programs` the new image matches.
    pub regimes: u32,
    /// Real user and group id after the exec.
    pub uid: u32,
    pub gid: u32,
    /// Bytes of `argv` in use, and the size of the whole argument list (`mm->arg_end -
    /// arg_start`): more than `argv_len` when the list was cut.
    pub argv_len: u32,
    pub argv_total: u32,
    /// Bytes of `cwd` in use; 0 when the working directory could not be rebuilt.
    pub cwd_len: u32,
    /// Bytes of `interpreter` in use: the `#!` interpreter (`bprm->interp`) of a script, 0
    /// for a binary.
    pub interpreter_len: u32,
    /// The path CMD passed to execve (`bprm->filename`), NUL-terminated.
    pub filename: [u8; EXEC_PATH_CAP],
    /// NUL-terminated.
    pub interpreter: [u8; EXEC_PATH_CAP],
    /// The arguments, each NUL-terminated.
    pub argv: [u8; EXEC_ARGV_CAP],
    /// The working directory, resolved as file paths are.
    pub cwd: [u8; crate::file::EVENT_PATH_CAP],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExitEvent {
    pub header: EventHeader,
    /// `task_struct.exit_code`: wait(2) status encoding (`code << 8 | signal`).
    pub exit_code: u32,
    pub _pad: u32,
}

/// A fork, vfork or clone (process or thread) that failed with `EAGAIN`: the session reached
/// `max_processes` (`EventKind::ForkRefused`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ForkRefusedEvent {
    pub header: EventHeader,
    /// The syscall number (clone, fork, vfork, clone3).
    pub nr: u32,
    /// The positive errno.
    pub errno: u32,
}

/// The seccomp filter killed a process for entering the kernel through a foreign syscall ABI
/// (x32, i386 `int 0x80`) (`EventKind::SeccompKill`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SeccompKillEvent {
    pub header: EventHeader,
    /// The syscall number as that ABI numbers it (x32 numbers include `X32_SYSCALL_BIT`).
    pub nr: u32,
    /// The `AUDIT_ARCH_*` value of the ABI.
    pub arch: u32,
}

/// x32 syscall numbers are x86_64 numbers with this bit set.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Indices into the `COUNTERS` per-CPU array.
pub mod counter {
    /// Ring-buffer reservations that failed (events lost).
    pub const RINGBUF_LOST: u32 = 0;
    /// sys_enter records displaced by another thread's (their slot is shared) or not stored
    /// (an exec's arguments, map full); the matching syscall event then lacks its duration
    /// (an exec's: its path and arguments).
    pub const PENDING_FULL: u32 = 1;
    pub const COUNT: u32 = 2;
}

/// A file-system or exec decision of the LSM programs (`EventKind::File`). Sent for every
/// denial, and for every decision when `FLAG_FILE_EVENTS_ALL` is set.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileEvent {
    pub header: EventHeader,
    /// A [`crate::file::FileOp`] as `u32`.
    pub op: u32,
    /// `KIND_*` bits (crate::policy) the operation needed.
    pub needed: u16,
    /// A [`crate::file::Verdict`] as `u16`.
    pub verdict: u16,
    /// `KIND_INDEX_*` of the rule that decided, and its index in that kind's list
    /// (`NO_RULE` when none did, e.g. an unlisted path).
    pub rule_kind: u16,
    pub rule_index: u16,
    /// Bytes of `path` in use, without the NUL.
    pub path_len: u32,
    pub path: [u8; crate::file::EVENT_PATH_CAP],
}
