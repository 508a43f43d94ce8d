//! Process lifecycle: fork, exec and exit of the session's tasks (scheduler raw tracepoints),
//! and with them the processes' regimes (`crate::regimes`): inherited on fork, entered on exec,
//! forgotten when the whole thread group has exited.

use aya_ebpf::{
    helpers::{
        bpf_get_current_task, bpf_get_current_uid_gid, bpf_probe_read_kernel_str_bytes, generated,
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sandtrace_common::{
    event::{EXEC_ARGV_CAP, EventKind, ExecEvent, ExitEvent, ForkEvent},
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
    // Rebuilt before the ring-buffer entry is reserved (slot 0 is free again once the regimes
    // are decided).
    let cwd = working_directory();
    emit::send(|e: *mut ExecEvent| unsafe {
        (*e).header = emit::header(EventKind::Exec);
        (*e).old_pid = old_pid as u32;
        (*e).regimes = mask;
        let uid_gid = bpf_get_current_uid_gid();
        (*e).uid = uid_gid as u32;
        (*e).gid = (uid_gid >> 32) as u32;
        let filename: *const u8 = pointer(bprm, config!(offsets.bprm_filename));
        (*e).filename_len = read_str(filename, &mut (*e).filename);
        // `interp` is `filename` itself unless a binary format (`#!`, binfmt_misc) named an
        // interpreter.
        let interp: *const u8 = pointer(bprm, config!(offsets.bprm_interp));
        (*e).interpreter[0] = 0;
        (*e).interpreter_len = if interp.is_null() || interp == filename {
            0
        } else {
            read_str(interp, &mut (*e).interpreter)
        };
        read_argv(e);
        (*e).cwd[0] = 0;
        (*e).cwd_len = match cwd {
            Some(p) => path_policy::copy_path(core::ptr::addr_of_mut!((*e).cwd).cast(), p),
            None => 0,
        };
    });
    0
}

/// Reads the NUL-terminated kernel string at `src` into `dst`; returns its length (0 when it
/// cannot be read).
#[inline(always)]
fn read_str(src: *const u8, dst: &mut [u8]) -> u32 {
    match unsafe { bpf_probe_read_kernel_str_bytes(src, dst) } {
        Ok(s) => s.len() as u32,
        Err(_) => {
            dst[0] = 0;
            0
        }
    }
}

/// Copies the new image's argument list (`mm->arg_start..arg_end`, NUL-separated strings on
/// its stack, just written by the exec) into the event, cut at `EXEC_ARGV_CAP` bytes.
#[inline(always)]
fn read_argv(e: *mut ExecEvent) {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let mm: *const u8 = pointer(task, config!(offsets.task_mm));
    let (start, end): (u64, u64) = if mm.is_null() {
        (0, 0)
    } else {
        (
            field(mm, config!(offsets.mm_arg_start)),
            field(mm, config!(offsets.mm_arg_end)),
        )
    };
    let total = end.saturating_sub(start);
    unsafe {
        (*e).argv_total = total.min(u32::MAX as u64) as u32;
        (*e).argv_len = 0;
        (*e).argv[0] = 0;
    }
    if total == 0 {
        return;
    }
    let len = if total > EXEC_ARGV_CAP as u64 {
        EXEC_ARGV_CAP as u32
    } else {
        total as u32
    };
    let dst = unsafe { core::ptr::addr_of_mut!((*e).argv) }.cast::<core::ffi::c_void>();
    // SAFETY: `dst` is the event's `argv`, `len` at most its size.
    if unsafe { generated::bpf_probe_read_user(dst, len, start as *const core::ffi::c_void) } == 0 {
        unsafe { (*e).argv_len = len };
    }
}

/// The current task's working directory (`fs->pwd`), rebuilt in path slot 0.
#[inline(always)]
fn working_directory() -> Option<path_policy::Resolved> {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let fs: *const u8 = pointer(task, config!(offsets.task_fs));
    if fs.is_null() {
        return None;
    }
    let pwd = unsafe { fs.add(config!(offsets.fs_pwd) as usize) };
    let dentry: *const u8 = pointer(pwd, config!(offsets.path_dentry));
    let mnt: *const u8 = pointer(pwd, config!(offsets.path_mnt));
    if dentry.is_null() || mnt.is_null() {
        return None;
    }
    path_policy::rebuild_path(dentry, mnt, 0).ok()
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
