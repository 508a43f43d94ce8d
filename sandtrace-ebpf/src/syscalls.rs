//! Syscall tracing: raw tracepoints on `sys_enter` / `sys_exit`.
//!
//! When per-syscall events are enabled, `sys_enter` stores the entry time by thread until
//! `sys_exit` turns the call into one ring-buffer event with arguments (still in the registers
//! at exit), decoded path argument, return value and duration.
//!
//! `sys_enter` counts every syscall in a per-CPU array for the summary, except those the
//! seccomp filter refuses, which never reach it: `sys_exit` counts those (the loader marks
//! them in `SYSCALL_ACTIONS`). `sys_exit` returns for calls without any such work before the
//! session check, so that the second program costs the machine's other syscalls little.
//! `exit` and `exit_group` never return: `sys_enter` reports them.
//!
//! Syscalls the policy denies or lists as `log_only` (the loader's `SYSCALL_ACTIONS` map) are
//! reported whether or not per-syscall events are on. `sys_exit` also reports forks refused
//! with `EAGAIN` (`max_processes`), and `signal_generate` reports processes the seccomp filter
//! kills for using a foreign syscall ABI.
//!
//! `sys_exit` also records the session's socket calls, in every mode (see [`sockets`]), and
//! when Landlock holds the filesystem rules (`FLAG_FILE_REFUSALS`) it reports every path call
//! Landlock decides that failed with EACCES: the loader turns it into the file denial.
//!
//! Calls of sandtrace's launcher before it execs CMD are left out (see [`launch`]), so that the
//! counts and events are CMD's own, as `strace CMD` shows them.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user_str_bytes},
    macros::{map, raw_tracepoint},
    maps::{Array, HashMap, PerCpuArray},
    programs::RawTracePointContext,
};
use sandtrace_common::{
    config::{FLAG_FILE_REFUSALS, FLAG_SYSCALL_EVENTS},
    event::{
        EventKind, ForkRefusedEvent, MAX_SYSCALL_NR, SYSCALL_COUNT_SLOTS, SYSCALL_DENIED,
        SYSCALL_HAS_PATH, SYSCALL_LOG_ONLY, SYSCALL_NO_ENTRY, SYSCALL_NO_RETURN, SYSCALL_PATH_CAP,
        SYSCALL_PATH_TRUNCATED, SeccompKillEvent, SyscallEvent, SyscallPathEvent, counter,
        syscall_action,
    },
    syscall_args::{landlock_refuses, path_arg},
};

use crate::{emit, kernel, launch, network, session, sockets};

/// Completed calls per syscall number, summed over CPUs by the loader for the summary.
#[map]
static SYSCALL_COUNTS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(SYSCALL_COUNT_SLOTS as u32, 0);

/// What the policy does with each syscall number (`syscall_action::*`); all `NONE` when
/// tracing only.
#[map]
static SYSCALL_ACTIONS: Array<u8> = Array::with_max_entries(MAX_SYSCALL_NR as u32, 0);

#[inline(always)]
fn action_of(nr: u32) -> u8 {
    SYSCALL_ACTIONS
        .get(nr)
        .copied()
        .unwrap_or(syscall_action::NONE)
}

const NR_CLONE: u32 = 56;
const NR_FORK: u32 = 57;
const NR_VFORK: u32 = 58;
const NR_CLONE3: u32 = 435;
const NR_EXECVE: u32 = 59;
const NR_EXECVEAT: u32 = 322;
const NR_EXIT: i64 = 60;
const NR_EXIT_GROUP: i64 = 231;
const EAGAIN: i64 = 11;
const EPERM: i64 = 1;
const EACCES: i64 = 13;
const SIGSYS: i32 = 31;
/// `si_code` of the SIGSYS the seccomp filter's kill action sends.
const SYS_SECCOMP: i32 = 1;

/// A syscall between entry and exit: what only the entry knows.
#[repr(C)]
struct Pending {
    /// The thread's `pid_tgid`; 0 when the slot is free.
    owner: u64,
    ts_ns: u64,
    nr: u32,
    _pad: u32,
}

/// In-flight syscalls, one slot per thread id modulo the size (a hash map costs a lock and a
/// free list on every syscall, several times more than an array slot). Two session threads
/// whose ids collide and whose syscalls overlap displace each other: the displaced call's exit
/// event is then sent flagged `SYSCALL_NO_ENTRY`, and the displacement is counted.
#[map]
static PENDING: Array<Pending> = Array::with_max_entries(PENDING_SLOTS, 0);
const PENDING_SLOTS: u32 = 1 << 15;

/// The arguments of an exec, read at entry: a successful exec replaces the registers and the
/// memory they pointed to.
#[repr(C)]
struct ExecPath {
    args: [u64; 6],
    /// `SYSCALL_HAS_PATH`, `SYSCALL_PATH_TRUNCATED`.
    flags: u32,
    path: [u8; SYSCALL_PATH_CAP],
}

/// Path arguments of `execve`/`execveat` in flight: after a successful exec the memory they
/// were read from is gone. Other syscalls' paths are read at exit, straight into the event.
#[map]
static EXEC_PATHS: HashMap<u64, ExecPath> = HashMap::with_max_entries(4096, 0);

/// Per-CPU scratch space to read an exec path (too large for the 512-byte BPF stack).
#[map]
static SCRATCH: PerCpuArray<ExecPath> = PerCpuArray::with_max_entries(1, 0);

/// x86_64 `struct pt_regs` from `r10` to `orig_ax` (an architecture ABI, identical in every
/// kernel version), read with one helper call.
#[derive(Clone, Copy)]
#[repr(C)]
struct SyscallRegs {
    r10: u64,
    r9: u64,
    r8: u64,
    _ax: u64,
    _cx: u64,
    dx: u64,
    si: u64,
    di: u64,
    orig_ax: u64,
}
/// Index of `r10` in `struct pt_regs`, counted in u64 words.
const REGS_R10: usize = 7;

impl SyscallRegs {
    #[inline(always)]
    fn read(regs: *const u64) -> Self {
        kernel::try_field(regs.cast(), (REGS_R10 * 8) as u32).unwrap_or(Self {
            r10: 0,
            r9: 0,
            r8: 0,
            _ax: 0,
            _cx: 0,
            dx: 0,
            si: 0,
            di: 0,
            orig_ax: u64::MAX,
        })
    }

    /// The syscall's arguments in order.
    #[inline(always)]
    fn args(&self) -> [u64; 6] {
        [self.di, self.si, self.dx, self.r10, self.r8, self.r9]
    }
}

#[inline(always)]
fn slot_of(pid_tgid: u64) -> u32 {
    (pid_tgid as u32) & (PENDING_SLOTS - 1)
}

#[inline(always)]
fn is_exec(nr: u32) -> bool {
    nr == NR_EXECVE || nr == NR_EXECVEAT
}

#[raw_tracepoint(tracepoint = "sys_enter")]
#[inline(always)]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    if !session::current_in_session() {
        return 0;
    }
    let nr: i64 = ctx.arg(1);
    let pid_tgid = bpf_get_current_pid_tgid();
    if launch::claim_launcher(pid_tgid) && !is_exec(nr as u32) {
        return 0;
    }
    let slot = count_slot(nr as u32);
    let never_returns = nr == NR_EXIT || nr == NR_EXIT_GROUP;
    count(slot);
    if !session::flag(FLAG_SYSCALL_EVENTS) && action_of(slot) == syscall_action::NONE {
        return 0;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    if never_returns {
        // These never reach sys_exit: report them now.
        emit::send(|e: *mut SyscallEvent| {
            let regs = SyscallRegs::read(ctx.arg(0));
            unsafe {
                (*e).header = emit::header_at(EventKind::Syscall, now);
                (*e).nr = nr as u32;
                (*e).ret = 0;
                (*e).args = regs.args();
                (*e).duration_ns = 0;
                (*e).flags = SYSCALL_NO_RETURN | action_flags(action_of(slot));
            }
        });
        return 0;
    }
    let nr = nr as u32;
    if is_exec(nr) {
        remember_exec_path(ctx.arg(0), nr, pid_tgid);
    }
    let Some(p) = PENDING.get_ptr_mut(slot_of(pid_tgid)) else {
        return 0;
    };
    let p = unsafe { &mut *p };
    if p.owner != 0 && p.owner != pid_tgid {
        emit::count(counter::PENDING_FULL);
    }
    p.owner = pid_tgid;
    p.ts_ns = now;
    p.nr = nr;
    0
}

/// Stores the arguments of an exec at entry, for its exit event.
#[inline(always)]
fn remember_exec_path(regs: *const u64, nr: u32, pid_tgid: u64) {
    let (Some(index), Some(buf)) = (path_arg(nr), SCRATCH.get_ptr_mut(0)) else {
        return;
    };
    let buf = unsafe { &mut *buf };
    buf.args = SyscallRegs::read(regs).args();
    let user = buf.args[index] as *const u8;
    buf.flags = 0;
    if let Ok(path) = unsafe { bpf_probe_read_user_str_bytes(user, &mut buf.path) } {
        buf.flags = SYSCALL_HAS_PATH;
        // A string that filled the buffer was most likely cut.
        if path.len() >= SYSCALL_PATH_CAP - 1 {
            buf.flags |= SYSCALL_PATH_TRUNCATED;
        }
    }
    if EXEC_PATHS.insert(pid_tgid, buf, 0).is_err() {
        emit::count(counter::PENDING_FULL);
    }
}

/// Takes this thread's entry record, freeing the slot: the syscall number and entry time.
#[inline(always)]
fn take_pending(pid_tgid: u64) -> Option<(u32, u64)> {
    let p = PENDING.get_ptr_mut(slot_of(pid_tgid))?;
    let p = unsafe { &mut *p };
    if p.owner != pid_tgid {
        return None;
    }
    p.owner = 0;
    Some((p.nr, p.ts_ns))
}

#[raw_tracepoint(tracepoint = "sys_exit")]
#[inline(always)]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    let regs = SyscallRegs::read(ctx.arg(0));
    // A signal return restores the registers of the code the signal interrupted, `orig_ax`
    // set to -1 (no syscall to restart): only the entry knows the call.
    let restored = regs.orig_ax == u64::MAX;
    let exit_nr = regs.orig_ax as u32;
    let exit_action = action_of(exit_nr);
    let events = session::flag(FLAG_SYSCALL_EVENTS);
    let ret: i64 = ctx.arg(1);
    // Landlock's refusals leave no other trace: the loader reports them from the failed call.
    let refused_file =
        ret == -EACCES && landlock_refuses(exit_nr) && session::flag(FLAG_FILE_REFUSALS);
    // Most calls have nothing to do here: decided before the session check, the costliest
    // step for calls that are not the session's.
    if !restored
        && !events
        && !refused_file
        && exit_action == syscall_action::NONE
        && !is_fork(exit_nr)
        && !sockets::is_recorded(exit_nr)
    {
        return 0;
    }
    if !session::current_in_session() {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if launch::is_launcher(pid_tgid) && !is_exec(exit_nr) {
        return 0;
    }
    // A restored call's `exit_nr` (-1) is none of these: its registers hold no arguments.
    if sockets::is_recorded(exit_nr) {
        sockets::record(exit_nr, regs.args(), ret);
    }
    let pending = take_pending(pid_tgid);
    let (nr, action) = match pending {
        Some((nr, _)) if restored => (nr, action_of(nr)),
        // Without an entry (it had nothing to record, or was displaced): nothing to do without
        // events; with them the call is reported unnamed.
        None if restored && !events => return 0,
        _ => (exit_nr, exit_action),
    };
    let entered_at = pending.and_then(|(entry_nr, ts)| (entry_nr == nr).then_some(ts));
    let is_fork = is_fork(nr);
    // A syscall with an action always leaves an entry in sys_enter; the seccomp filter runs
    // before sys_enter, so a call refused for its arguments has none. (A call whose entry
    // another thread displaced and that failed with EPERM by itself reads as refused too.)
    let refused_by_args = entered_at.is_none() && ret == -EPERM;
    let action = match action {
        syscall_action::DENY_BY_ARGS if refused_by_args => syscall_action::DENY,
        syscall_action::DENY_BY_ARGS => syscall_action::NONE,
        other => other,
    };
    // A new task's first return to user space (clone/fork in the child, returning 0): the
    // parent made the call and reports it.
    if is_fork && ret == 0 {
        return 0;
    }
    if matches!(action, syscall_action::DENY | syscall_action::REFUSED) {
        count(count_slot(nr));
    }
    if is_fork && ret == -EAGAIN {
        report_refused_fork(nr);
    }
    if !events && !refused_file && matches!(action, syscall_action::NONE | syscall_action::REFUSED)
    {
        return 0;
    }
    let exec_path = if is_exec(nr) {
        let path = unsafe { EXEC_PATHS.get(pid_tgid) };
        if path.is_some() {
            let _ = EXEC_PATHS.remove(pid_tgid);
        }
        path
    } else {
        None
    };
    if action == syscall_action::SOCKET_FAMILY {
        // The cgroup programs and BPF LSM report their own refusals, which have an entry.
        if refused_by_args {
            count(count_slot(nr));
            let family = network::created_family(regs.di as u32, regs.si as u32);
            network::report_baseline_refusal(family, regs.si as u32, regs.dx as u32);
        }
        if !events {
            return 0;
        }
    }
    let now = unsafe { bpf_ktime_get_ns() };
    let mut flags = action_flags(action);
    if entered_at.is_none() {
        flags |= SYSCALL_NO_ENTRY;
    }
    let Some(index) = path_arg(nr) else {
        emit::send(|e: *mut SyscallEvent| {
            fill(unsafe { &mut *e }, nr, ret, now, entered_at, &regs, flags);
        });
        return 0;
    };
    emit::send(|e: *mut SyscallPathEvent| unsafe {
        fill(&mut (*e).syscall, nr, ret, now, entered_at, &regs, flags);
        (*e).syscall.header.kind = EventKind::SyscallPath as u32;
        let dst = core::ptr::addr_of_mut!((*e).path).cast::<u8>();
        // Paths are read at exit: the call has paged the string in (bpf_probe_read_user
        // does not fault pages in at entry), and only an exec frees its memory.
        match exec_path {
            Some(exec) => {
                (*e).syscall.args = exec.args;
                (*e).path = exec.path;
                (*e).syscall.flags |= exec.flags;
            }
            // A failed exec still has the memory its path was in.
            None if is_exec(nr) && ret >= 0 => (*e).path[0] = 0,
            None => {
                let n = aya_ebpf::helpers::generated::bpf_probe_read_user_str(
                    dst.cast(),
                    SYSCALL_PATH_CAP as u32,
                    (regs.args()[index] as *const u8).cast(),
                );
                if n > 0 {
                    (*e).syscall.flags |= SYSCALL_HAS_PATH;
                    // A string that filled the buffer was most likely cut.
                    if n as usize >= SYSCALL_PATH_CAP {
                        (*e).syscall.flags |= SYSCALL_PATH_TRUNCATED;
                    }
                } else {
                    (*e).path[0] = 0;
                }
            }
        }
    });
    0
}

#[inline(always)]
fn is_fork(nr: u32) -> bool {
    matches!(nr, NR_CLONE | NR_FORK | NR_VFORK | NR_CLONE3)
}

/// The `SYSCALL_COUNTS` slot of a syscall number: numbers outside the table share the last.
#[inline(always)]
fn count_slot(nr: u32) -> u32 {
    if nr < MAX_SYSCALL_NR as u32 {
        nr
    } else {
        MAX_SYSCALL_NR as u32
    }
}

#[inline(always)]
fn count(slot: u32) {
    if let Some(c) = SYSCALL_COUNTS.get_ptr_mut(slot) {
        unsafe { *c += 1 };
    }
}

/// The `SyscallEvent::flags` bits that mark an action.
#[inline(always)]
fn action_flags(action: u8) -> u32 {
    match action {
        syscall_action::DENY => SYSCALL_DENIED,
        syscall_action::LOG_ONLY => SYSCALL_LOG_ONLY,
        _ => 0,
    }
}

/// Reports a fork, vfork or clone that failed with EAGAIN: the pids controller's limit.
#[inline(always)]
fn report_refused_fork(nr: u32) {
    emit::send(|e: *mut ForkRefusedEvent| unsafe {
        (*e).header = emit::header(EventKind::ForkRefused);
        (*e).nr = nr;
        (*e).errno = EAGAIN as u32;
    });
}

/// `signal_generate(int sig, struct kernel_siginfo *info, struct task_struct *task, int group,
/// int result)`. The seccomp filter's kill action (foreign syscall ABIs: x32, i386) sends the
/// calling task a SIGSYS with `si_code == SYS_SECCOMP`, from that task's context.
#[raw_tracepoint(tracepoint = "signal_generate")]
#[inline(always)]
pub fn seccomp_kill(ctx: RawTracePointContext) -> i32 {
    let sig: u64 = ctx.arg(0);
    if sig as i32 != SIGSYS || !session::current_in_session() {
        return 0;
    }
    // struct kernel_siginfo is the user ABI's siginfo_t: si_code at 8; the _sigsys member
    // of the union at 16 holds the call address, then the syscall number and audit arch.
    let info: *const u8 = ctx.arg(1);
    let field = |offset: u32| kernel::field::<u32>(info, offset);
    if field(8) as i32 != SYS_SECCOMP {
        return 0;
    }
    emit::send(|e: *mut SeccompKillEvent| unsafe {
        (*e).header = emit::header(EventKind::SeccompKill);
        (*e).nr = field(24);
        (*e).arch = field(28);
    });
    0
}

/// Fills a syscall event; the arguments come from the registers at exit, which still hold
/// them.
#[inline(always)]
fn fill(
    e: &mut SyscallEvent,
    nr: u32,
    ret: i64,
    now: u64,
    entered_at: Option<u64>,
    regs: &SyscallRegs,
    flags: u32,
) {
    e.header = emit::header_at(EventKind::Syscall, entered_at.unwrap_or(now));
    e.nr = nr;
    e.ret = ret;
    e.args = regs.args();
    e.flags = flags;
    e.duration_ns = entered_at.map_or(0, |t| now.saturating_sub(t));
}
