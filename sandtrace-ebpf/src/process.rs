//! Process lifecycle: fork, exec and exit of the session's tasks (scheduler raw tracepoints).
//!
//! Kernel struct fields are read at offsets taken from the running kernel's BTF
//! (`Config::offsets`), never hard-coded.

use aya_ebpf::{
    helpers::{bpf_get_current_task, bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sandtrace_common::event::{EventKind, ExecEvent, ExitEvent, ForkEvent};

use crate::{emit, session};

#[inline(always)]
unsafe fn read_field<T: Copy + Default>(base: *const u8, offset: u32) -> T {
    unsafe { bpf_probe_read_kernel(base.add(offset as usize).cast::<T>()).unwrap_or_default() }
}

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`, in the parent.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
#[inline(always)]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    if !session::current_in_session() {
        return 0;
    }
    let child: *const u8 = ctx.arg(1);
    if let Some(mut entry) = emit::reserve::<ForkEvent>() {
        let e = entry.as_mut_ptr();
        unsafe {
            (*e).header = emit::header(EventKind::Fork);
            (*e).child_pid = read_field(child, session::config!(offsets.task_pid));
            (*e).child_tgid = read_field(child, session::config!(offsets.task_tgid));
        }
        emit::submit(entry);
    }
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
    let old_pid: u64 = ctx.arg(1);
    let bprm: *const u8 = ctx.arg(2);
    if let Some(mut entry) = emit::reserve::<ExecEvent>() {
        let e = entry.as_mut_ptr();
        unsafe {
            (*e).header = emit::header(EventKind::Exec);
            (*e).old_pid = old_pid as u32;
            let filename: *const u8 =
                read_field::<usize>(bprm, session::config!(offsets.bprm_filename)) as *const u8;
            (*e).filename_len = match bpf_probe_read_kernel_str_bytes(filename, &mut (*e).filename)
            {
                Ok(s) => s.len() as u32,
                Err(_) => {
                    (*e).filename[0] = 0;
                    0
                }
            };
        }
        emit::submit(entry);
    }
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
    if let Some(mut entry) = emit::reserve::<ExitEvent>() {
        let e = entry.as_mut_ptr();
        unsafe {
            (*e).header = header;
            (*e).exit_code = read_field(task, session::config!(offsets.task_exit_code));
            (*e)._pad = 0;
        }
        emit::submit(entry);
    }
    0
}
