//! Syscall tracing: raw tracepoints on `sys_enter` / `sys_exit`.
//!
//! `sys_enter` counts the syscall in a per-CPU array (always, for the summary) and, when
//! per-syscall events are enabled, stores the arguments (and a decoded path argument) keyed by
//! thread until `sys_exit` turns them into one ring-buffer event with return value and duration.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user_str_bytes},
    macros::{map, raw_tracepoint},
    maps::{HashMap, PerCpuArray},
    programs::RawTracePointContext,
};
use sandtrace_common::{
    config::FLAG_SYSCALL_EVENTS,
    event::{
        EventKind, MAX_SYSCALL_NR, SYSCALL_COUNT_SLOTS, SYSCALL_HAS_PATH, SYSCALL_NO_ENTRY,
        SYSCALL_NO_RETURN, SYSCALL_PATH_CAP, SYSCALL_PATH_TRUNCATED, SyscallEvent,
        SyscallPathEvent, counter,
    },
    syscall_args::path_arg,
};

use crate::{emit, session};

/// Calls per syscall number, summed over CPUs by the loader for the summary.
#[map]
static SYSCALL_COUNTS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(SYSCALL_COUNT_SLOTS as u32, 0);

const NR_CLONE: u32 = 56;
const NR_FORK: u32 = 57;
const NR_VFORK: u32 = 58;
const NR_CLONE3: u32 = 435;
const NR_EXIT: i64 = 60;
const NR_EXIT_GROUP: i64 = 231;

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
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    if !session::current_in_session() {
        return 0;
    }
    let nr: i64 = ctx.arg(1);
    let slot = if (0..MAX_SYSCALL_NR as i64).contains(&nr) {
        nr as u32
    } else {
        MAX_SYSCALL_NR as u32
    };
    if let Some(c) = SYSCALL_COUNTS.get_ptr_mut(slot) {
        unsafe { *c += 1 };
    }
    if !session::flag(FLAG_SYSCALL_EVENTS) {
        return 0;
    }
    let regs: *const u64 = ctx.arg(0);
    if nr == NR_EXIT || nr == NR_EXIT_GROUP {
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
                );
                (*e).flags = SYSCALL_NO_RETURN;
                for (i, r) in ARG_REGS.iter().enumerate() {
                    (*e).args[i] = reg(regs, *r);
                }
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
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    if !session::flag(FLAG_SYSCALL_EVENTS) || !session::current_in_session() {
        return 0;
    }
    let regs: *const u64 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    let nr = unsafe { reg(regs, REGS_ORIG_AX) } as u32;
    let key = bpf_get_current_pid_tgid();
    let pending = unsafe { PENDING.get(&key) };
    // A new task's first return to user space (clone/fork in the child, returning 0) has no
    // entry: the parent made the call and reports it. Skipping it keeps one event per call.
    if pending.is_none() && ret == 0 && matches!(nr, NR_CLONE | NR_FORK | NR_VFORK | NR_CLONE3) {
        return 0;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    let has_path = pending.is_some_and(|p| p.flags & SYSCALL_HAS_PATH != 0);
    if has_path {
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
                );
                if let Some(p) = pending {
                    (*e).path = p.path;
                }
            }
            entry.submit(0);
        }
    } else if let Some(mut entry) = emit::reserve::<SyscallEvent>() {
        unsafe {
            fill(
                &mut *entry.as_mut_ptr(),
                EventKind::Syscall,
                nr,
                ret,
                now,
                pending,
            )
        };
        entry.submit(0);
    }
    if pending.is_some() {
        let _ = PENDING.remove(&key);
    }
    0
}

#[inline(always)]
fn fill(e: &mut SyscallEvent, kind: EventKind, nr: u32, ret: i64, now: u64, p: Option<&Pending>) {
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
            e.args = [0; 6];
            e.duration_ns = 0;
        }
    }
}
