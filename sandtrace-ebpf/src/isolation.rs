//! What keeps the session's tasks inside the session, whatever the policy says: they may not
//! trace (or read or write the memory of) the session's init, which runs outside the session
//! cgroup on sandtrace's behalf, and they may not write cgroup files, which could move a
//! process out of the session's cgroup and so out of every program's reach.

use aya_ebpf::{helpers::bpf_probe_read_kernel, macros::lsm, programs::LsmContext};
use sandtrace_common::{
    config::FLAG_ENFORCE_FILES,
    file::{FileOp, Verdict},
};

use crate::{
    path_policy::{Decision, errno_of, report},
    session::{self, config},
};

const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

#[inline(always)]
fn field<T: Default + Copy>(base: *const u8, offset: u32) -> T {
    unsafe { bpf_probe_read_kernel(base.add(offset as usize).cast::<T>()).unwrap_or_default() }
}

/// True when `file` lives on a cgroup (v1 or v2) file system.
#[inline(always)]
pub fn on_cgroupfs(file: *const u8) -> bool {
    let inode: *const u8 = field::<usize>(file, config!(offsets.file_f_inode)) as *const u8;
    let sb: *const u8 = field::<usize>(inode, config!(offsets.inode_i_sb)) as *const u8;
    let magic: u64 = field(sb, config!(offsets.sb_s_magic));
    magic == CGROUP_SUPER_MAGIC || magic == CGROUP2_SUPER_MAGIC
}

/// The id of `task`'s process in the session's PID namespace (0 if it has none there).
#[inline(always)]
fn session_tgid(task: *const u8) -> i32 {
    let leader: *const u8 = field::<usize>(task, config!(offsets.task_group_leader)) as *const u8;
    let pid: *const u8 = field::<usize>(leader, config!(offsets.task_thread_pid)) as *const u8;
    let level: u32 = field(pid, config!(offsets.pid_level));
    let want = config!(session_pid_ns_level);
    if pid.is_null() || level < want {
        return 0;
    }
    let numbers = config!(offsets.pid_numbers) + want * config!(offsets.upid_size);
    field(pid, numbers + config!(offsets.upid_nr))
}

/// `ptrace_access_check(struct task_struct *child, unsigned int mode)`: ptrace attach,
/// /proc/PID/mem, process_vm_readv/writev, pidfd_getfd and the like.
#[lsm(hook = "ptrace_access_check")]
#[inline(always)]
pub fn ptrace_access_check(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(2);
    if prev != 0 || !session::flag(FLAG_ENFORCE_FILES) || !session::current_in_session() {
        return prev;
    }
    let child: *const u8 = ctx.arg(0);
    if session_tgid(child) != 1 {
        return 0;
    }
    let decision = Decision::of(Verdict::DeniedSessionEscape);
    report(FileOp::Ptrace, 0, decision, None);
    errno_of(decision)
}
