//! Process lifecycle: fork, exec and exit of the session's tasks (scheduler raw tracepoints).

use aya_ebpf::{
    helpers::{bpf_get_current_task, bpf_probe_read_kernel_str_bytes},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sandtrace_common::event::{EventKind, ExecEvent, ExitEvent, ForkEvent};

use crate::{
    emit,
    kernel::{field, pointer},
    launch,
    session::{self, config},
};

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`, in the parent.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
#[inline(always)]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    if !session::current_in_session() {
        return 0;
    }
    let child: *const u8 = ctx.arg(1);
    emit::send(|e: *mut ForkEvent| unsafe {
        (*e).header = emit::header(EventKind::Fork);
        (*e).child_pid = field(child, config!(offsets.task_pid));
        (*e).child_tgid = field(child, config!(offsets.task_tgid));
    });
    0
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
    emit::send(|e: *mut ExecEvent| unsafe {
        (*e).header = emit::header(EventKind::Exec);
        (*e).old_pid = old_pid as u32;
        (*e).regimes = 0;
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

/// `sched_process_exit(struct task_struct *p, ...)`, in the exiting task. Only thread-group
/// leaders are reported: the summary counts processes, not threads.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
#[inline(always)]
pub fn sched_process_exit(_ctx: RawTracePointContext) -> i32 {
    if !session::current_in_session() {
        return 0;
    }
    let header = emit::header(EventKind::Exit);
    if header.pid != header.tgid {
        return 0;
    }
    let task = unsafe { bpf_get_current_task() } as *const u8;
    emit::send(|e: *mut ExitEvent| unsafe {
        (*e).header = header;
        (*e).exit_code = field(task, config!(offsets.task_exit_code));
        (*e)._pad = 0;
    });
    0
}
