//! Syscall tracing: raw tracepoints on `sys_enter` / `sys_exit`.
//!
//! When per-syscall events are enabled, `sys_enter` stores the arguments (and a decoded path
//! argument) keyed by thread until `sys_exit` turns them into one ring-buffer event with return
//! value and duration. `sys_exit` counts every syscall in a per-CPU array (always, for the
//! summary): a syscall the seccomp filter refuses never reaches `sys_enter`, but it does reach
//! `sys_exit`. (`exit` and `exit_group` never return: `sys_enter` counts and reports them.)
//!
//! Syscalls the policy denies or lists as `log_only` (the loader's `SYSCALL_ACTIONS` map) are
//! reported whether or not per-syscall events are on. `sys_exit` also reports forks refused
//! with `EAGAIN` (`max_processes`), and `signal_generate` reports processes the seccomp filter
//! kills for using a foreign syscall ABI.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user_str_bytes},
    macros::{map, raw_tracepoint},
    maps::{Array, HashMap, PerCpuArray},
    programs::RawTracePointContext,
};
use sandtrace_common::{
    config::FLAG_SYSCALL_EVENTS,
    event::{
        EventKind, ForkRefusedEvent, MAX_SYSCALL_NR, SYSCALL_COUNT_SLOTS, SYSCALL_DENIED,
        SYSCALL_HAS_PATH, SYSCALL_LOG_ONLY, SYSCALL_NO_ENTRY, SYSCALL_NO_RETURN, SYSCALL_PATH_CAP,
        SYSCALL_PATH_TRUNCATED, SeccompKillEvent, SyscallEvent, SyscallPathEvent, counter,
        syscall_action,
    },
    syscall_args::path_arg,
};

use crate::{emit, network, session};

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
const SIGSYS: i32 = 31;
/// `si_code` of the SIGSYS the seccomp filter's kill action sends.
const SYS_SECCOMP: i32 = 1;

/// A syscall between entry and exit.
#[repr(C)]
struct Pending {
    ts_ns: u64,
    args: [u64; 6],
    flags: u32,
    _pad: u32,
    path: [u8; SYSCALL_PATH_CAP],
}

/// In-flight syscalls keyed by `pid_tgid`. When full, the exit event is still sent, flagged
/// `SYSCALL_NO_ENTRY`, and the overflow is counted.
#[map]
static PENDING: HashMap<u64, Pending> = HashMap::with_max_entries(16384, 0);

/// Per-CPU scratch space to build a `Pending` (too large for the 512-byte BPF stack).
#[map]
static SCRATCH: PerCpuArray<Pending> = PerCpuArray::with_max_entries(1, 0);

// x86_64 `struct pt_regs` (an architecture ABI, identical in every kernel version).
const REGS_R10: usize = 7;
const REGS_R9: usize = 8;
const REGS_R8: usize = 9;
const REGS_DX: usize = 12;
const REGS_SI: usize = 13;
const REGS_DI: usize = 14;
const REGS_ORIG_AX: usize = 15;
const ARG_REGS: [usize; 6] = [REGS_DI, REGS_SI, REGS_DX, REGS_R10, REGS_R8, REGS_R9];

#[inline(always)]
unsafe fn reg(regs: *const u64, index: usize) -> u64 {
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(regs.add(index)).unwrap_or(0) }
}

#[raw_tracepoint(tracepoint = "sys_enter")]
#[inline(always)]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    if !session::current_in_session() {
        return 0;
    }
    let nr: i64 = ctx.arg(1);
    let slot = count_slot(nr as u32);
    let never_returns = nr == NR_EXIT || nr == NR_EXIT_GROUP;
    if never_returns {
        count(slot);
    }
    if !session::flag(FLAG_SYSCALL_EVENTS) && action_of(slot) == syscall_action::NONE {
        return 0;
    }
    let regs: *const u64 = ctx.arg(0);
    if never_returns {
        // These never reach sys_exit: report them now.
        if let Some(mut entry) = emit::reserve::<SyscallEvent>() {
            let e = entry.as_mut_ptr();
            unsafe {
                fill(
                    &mut *e,
                    EventKind::Syscall,
                    nr as u32,
                    0,
                    bpf_ktime_get_ns(),
                    None,
                    regs,
                );
                (*e).flags = SYSCALL_NO_RETURN | action_flags(action_of(slot));
            }
            entry.submit(0);
        }
        return 0;
    }
    let Some(p) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let p = unsafe { &mut *p };
    p.ts_ns = unsafe { bpf_ktime_get_ns() };
    for (i, r) in ARG_REGS.iter().enumerate() {
        p.args[i] = unsafe { reg(regs, *r) };
    }
    p.flags = 0;
    if let Some(idx) = path_arg(nr as u32) {
        let user = p.args[idx] as *const u8;
        if let Ok(s) = unsafe { bpf_probe_read_user_str_bytes(user, &mut p.path) } {
            p.flags |= SYSCALL_HAS_PATH;
            // A string that filled the buffer was most likely cut.
            if s.len() >= SYSCALL_PATH_CAP - 1 {
                p.flags |= SYSCALL_PATH_TRUNCATED;
            }
        }
    }
    if PENDING.insert(&bpf_get_current_pid_tgid(), p, 0).is_err() {
        emit::count(counter::PENDING_FULL);
    }
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
#[inline(always)]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    if !session::current_in_session() {
        return 0;
    }
    let regs: *const u64 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    let nr = unsafe { reg(regs, REGS_ORIG_AX) } as u32;
    let is_fork = matches!(nr, NR_CLONE | NR_FORK | NR_VFORK | NR_CLONE3);
    // A new task's first return to user space (clone/fork in the child, returning 0): the
    // parent made the call, and counts and reports it. Skipping it keeps one count per call.
    if is_fork && ret == 0 {
        return 0;
    }
    count(count_slot(nr));
    if is_fork && ret == -EAGAIN {
        report_refused_fork(nr);
    }
    let action = action_of(nr);
    if !session::flag(FLAG_SYSCALL_EVENTS) && action == syscall_action::NONE {
        return 0;
    }
    let key = bpf_get_current_pid_tgid();
    let pending = unsafe { PENDING.get(&key) };
    if action == syscall_action::SOCKET_FAMILY {
        let (sock_type, protocol) = unsafe { (reg(regs, REGS_SI), reg(regs, REGS_DX)) };
        let family =
            network::created_family(unsafe { reg(regs, REGS_DI) } as u32, sock_type as u32);
        // A syscall with an action always leaves an entry in sys_enter; without one the
        // seccomp filter refused it. IPv4/IPv6 refusals come from the cgroup programs, which
        // report them themselves.
        if pending.is_none() && ret == -EPERM && !network::family_allowed(family) {
            network::report_refused_family(family, sock_type as u32, protocol as u32);
        }
        if !session::flag(FLAG_SYSCALL_EVENTS) {
            if pending.is_some() {
                let _ = PENDING.remove(&key);
            }
            return 0;
        }
    }
    let action_flags = action_flags(action);
    let now = unsafe { bpf_ktime_get_ns() };
    let has_path = pending.is_some_and(|p| p.flags & SYSCALL_HAS_PATH != 0);
    // A path string in memory not yet paged in cannot be read at entry (bpf_probe_read_user
    // does not fault); the syscall has paged it in by now. Not after an exec: the memory the
    // argument pointed to is gone.
    let reread = match (pending, path_arg(nr)) {
        (Some(p), Some(index)) if !has_path && nr != NR_EXECVE && nr != NR_EXECVEAT => {
            Some(p.args[index] as *const u8)
        }
        _ => None,
    };
    if has_path || reread.is_some() {
        if let Some(mut entry) = emit::reserve::<SyscallPathEvent>() {
            let e = entry.as_mut_ptr();
            unsafe {
                fill(
                    &mut (*e).syscall,
                    EventKind::SyscallPath,
                    nr,
                    ret,
                    now,
                    pending,
                    regs,
                );
                (*e).syscall.flags |= action_flags;
                match (pending, reread) {
                    (Some(p), None) => (*e).path = p.path,
                    (_, Some(user)) => {
                        let dst = core::ptr::addr_of_mut!((*e).path).cast::<u8>();
                        let n = aya_ebpf::helpers::generated::bpf_probe_read_user_str(
                            dst.cast(),
                            SYSCALL_PATH_CAP as u32,
                            user.cast(),
                        );
                        if n > 0 {
                            (*e).syscall.flags |= SYSCALL_HAS_PATH;
                            if n as usize >= SYSCALL_PATH_CAP {
                                (*e).syscall.flags |= SYSCALL_PATH_TRUNCATED;
                            }
                        } else {
                            (*e).path[0] = 0;
                        }
                    }
                    (None, None) => (*e).path[0] = 0,
                }
            }
            entry.submit(0);
        }
    } else if let Some(mut entry) = emit::reserve::<SyscallEvent>() {
        let e = entry.as_mut_ptr();
        unsafe {
            fill(&mut *e, EventKind::Syscall, nr, ret, now, pending, regs);
            (*e).flags |= action_flags;
        };
        entry.submit(0);
    }
    if pending.is_some() {
        let _ = PENDING.remove(&key);
    }
    0
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
    if let Some(mut entry) = emit::reserve::<ForkRefusedEvent>() {
        let e = entry.as_mut_ptr();
        unsafe {
            (*e).header = emit::header(EventKind::ForkRefused);
            (*e).nr = nr;
            (*e).errno = EAGAIN as u32;
        }
        entry.submit(0);
    }
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
    let field = |offset: usize| unsafe {
        aya_ebpf::helpers::bpf_probe_read_kernel(info.add(offset).cast::<u32>()).unwrap_or(0)
    };
    if field(8) as i32 != SYS_SECCOMP {
        return 0;
    }
    if let Some(mut entry) = emit::reserve::<SeccompKillEvent>() {
        let e = entry.as_mut_ptr();
        unsafe {
            (*e).header = emit::header(EventKind::SeccompKill);
            (*e).nr = field(24);
            (*e).arch = field(28);
        }
        entry.submit(0);
    }
    0
}

/// Fills a syscall event from its entry record or, without one, from the registers at exit
/// (which still hold the arguments).
#[inline(always)]
fn fill(
    e: &mut SyscallEvent,
    kind: EventKind,
    nr: u32,
    ret: i64,
    now: u64,
    p: Option<&Pending>,
    regs: *const u64,
) {
    e.header = emit::header(kind);
    e.header.ts_ns = now;
    e.nr = nr;
    e.ret = ret;
    match p {
        Some(p) => {
            e.header.ts_ns = p.ts_ns;
            e.flags = p.flags;
            e.args = p.args;
            e.duration_ns = now.saturating_sub(p.ts_ns);
        }
        None => {
            e.flags = SYSCALL_NO_ENTRY;
            for (i, r) in ARG_REGS.iter().enumerate() {
                e.args[i] = unsafe { reg(regs, *r) };
            }
            e.duration_ns = 0;
        }
    }
}
