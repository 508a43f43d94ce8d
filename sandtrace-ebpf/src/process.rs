//! Process lifecycle: fork, exec and exit of the session's tasks (scheduler raw tracepoints),
//! and with them the processes' regimes (`crate::regimes`): inherited on fork, entered on exec,
//! forgotten when the whole thread group has exited.

use aya_ebpf::{
    helpers::{bpf_get_current_task, bpf_probe_read_kernel_str_bytes},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sandtrace_common::{
    event::{EventKind, ExecEvent, ExitEvent, ForkEvent},
    policy::{KIND_ENTER, MAX_REGIMES},
};

use crate::{
    emit,
    kernel::{field, pointer},
    launch, path_policy, regimes,
    session::{self, config},
};

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`, in the parent,
/// before the child first runs.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
#[inline(always)]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    if !session::current_in_session() {
        return 0;
    }
    let child: *const u8 = ctx.arg(1);
    let child_pid: u32 = field(child, config!(offsets.task_pid));
    let child_tgid: u32 = field(child, config!(offsets.task_tgid));
    if regimes::enabled() {
        inherit_regimes(child_tgid);
    }
    emit::send(|e: *mut ForkEvent| unsafe {
        (*e).header = emit::header(EventKind::Fork);
        (*e).child_pid = child_pid;
        (*e).child_tgid = child_tgid;
    });
    0
}

/// A new process (not a thread: threads share their process's entry) is in its creator's
/// regimes. An entry left under the child's tgid (a process whose exit went unseen) is
/// dropped when the creator is in none.
#[inline(always)]
fn inherit_regimes(child_tgid: u32) {
    let parent_tgid = regimes::current_tgid();
    if child_tgid == parent_tgid || child_tgid == 0 {
        return;
    }
    let mask = regimes::of_tgid(parent_tgid);
    if mask != 0 {
        regimes::set(child_tgid, mask);
    } else {
        regimes::forget(child_tgid);
    }
}

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`,
/// after the new image is in place (comm is already the new program's).
#[raw_tracepoint(tracepoint = "sched_process_exec")]
#[inline(always)]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    if !session::current_in_session() {
        return 0;
    }
    launch::exec_done();
    let old_pid: u64 = ctx.arg(1);
    let bprm: *const u8 = ctx.arg(2);
    let mask = if regimes::enabled() {
        enter_regimes(bprm)
    } else {
        0
    };
    emit::send(|e: *mut ExecEvent| unsafe {
        (*e).header = emit::header(EventKind::Exec);
        (*e).old_pid = old_pid as u32;
        (*e).regimes = mask;
        (*e)._pad = 0;
        let filename: *const u8 = pointer(bprm, config!(offsets.bprm_filename));
        (*e).filename_len = match bpf_probe_read_kernel_str_bytes(filename, &mut (*e).filename) {
            Ok(s) => s.len() as u32,
            Err(_) => {
                (*e).filename[0] = 0;
                0
            }
        };
    });
    0
}

/// Adds the regimes whose `programs` match the executed image (`bprm->file`; for a `#!`
/// script, its interpreter) to the current process's, and returns the process's regimes.
/// An image whose path cannot be rebuilt or decided enters every regime.
#[inline(always)]
fn enter_regimes(bprm: *const u8) -> u32 {
    let tgid = regimes::current_tgid();
    let before = regimes::of_tgid(tgid);
    let file: *const u8 = pointer(bprm, config!(offsets.bprm_file));
    let f_path = unsafe { file.add(config!(offsets.file_f_path) as usize) };
    let dentry: *const u8 = pointer(f_path, config!(offsets.path_dentry));
    let mnt: *const u8 = pointer(f_path, config!(offsets.path_mnt));
    let kinds = if file.is_null() || dentry.is_null() || mnt.is_null() {
        None
    } else {
        path_policy::rebuild_path(dentry, mnt, 0)
            .ok()
            .and_then(path_policy::regime_kinds)
    };
    let entered = match kinds {
        Some(kinds) => {
            let mut entered = 0;
            for (r, k) in kinds.iter().enumerate().take(MAX_REGIMES) {
                if k & KIND_ENTER != 0 {
                    entered |= 1 << r;
                }
            }
            entered & regimes::all()
        }
        None => regimes::all(),
    };
    let mask = before | entered;
    if mask != before {
        regimes::set(tgid, mask);
    }
    mask
}

/// `sched_process_exit(struct task_struct *p, ...)`, in the exiting task, after it has left
/// its thread group's count of live tasks (`signal->live`). Only thread-group leaders are
/// reported: the summary counts processes, not threads.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
#[inline(always)]
pub fn sched_process_exit(_ctx: RawTracePointContext) -> i32 {
    if !session::current_in_session() {
        return 0;
    }
    let task = unsafe { bpf_get_current_task() } as *const u8;
    if regimes::enabled() {
        forget_if_group_dead(task);
    }
    let header = emit::header(EventKind::Exit);
    if header.pid != header.tgid {
        return 0;
    }
    emit::send(|e: *mut ExitEvent| unsafe {
        (*e).header = header;
        (*e).exit_code = field(task, config!(offsets.task_exit_code));
        (*e)._pad = 0;
    });
    0
}

/// Forgets the process's regimes once its last task exits. `signal->live` is decremented
/// before this tracepoint and never rises again once 0 (only a live thread of the group can
/// add one), so exactly the last tasks to exit see 0; the pid is freed only later, so no new
/// process can hold the number yet. An unreadable count keeps the entry (deny more).
#[inline(always)]
fn forget_if_group_dead(task: *const u8) {
    let signal: *const u8 = pointer(task, config!(offsets.task_signal));
    if signal.is_null() {
        return;
    }
    if let Some(0) = crate::kernel::try_field::<i32>(signal, config!(offsets.signal_live)) {
        regimes::forget(regimes::current_tgid());
    }
}
