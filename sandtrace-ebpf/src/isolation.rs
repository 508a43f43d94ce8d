//! What keeps the session's tasks inside the session, whatever the policy says: they may not
//! trace (or read or write the memory of) the session's init, which runs outside the session
//! cgroup on sandtrace's behalf (nor, in an `[[after_exec]]` regime, a process outside it), they may not write cgroup files, which could move a
//! process out of the session's cgroup and so out of every program's reach, and nothing they
//! do may make the kernel load a module (modprobe runs as root outside the session).

use aya_ebpf::programs::LsmContext;
use sandtrace_common::{
    config::FLAG_ENFORCE_FILES,
    file::{FileOp, Verdict},
    policy::{NO_RULE, RULE_REGIME_SHIFT},
};

use crate::{
    kernel::{field, pointer, scalar_arg},
    path_policy::{Decision, copy_name, errno_of, report},
    regimes,
    session::{self, config, lsm_programs},
};

const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

/// True when `file` lives on a cgroup (v1 or v2) file system.
#[inline(always)]
pub fn on_cgroupfs(file: *const u8) -> bool {
    let inode: *const u8 = pointer(file, config!(offsets.file_f_inode));
    let sb: *const u8 = pointer(inode, config!(offsets.inode_i_sb));
    let magic: u64 = field(sb, config!(offsets.sb_s_magic));
    magic == CGROUP_SUPER_MAGIC || magic == CGROUP2_SUPER_MAGIC
}

lsm_programs! {
    /// `ptrace_access_check(struct task_struct *child, unsigned int mode)`: ptrace attach,
    /// /proc/PID/mem, process_vm_readv/writev, pidfd_getfd and the like.
    ptrace_access_check: hook = "ptrace_access_check", prev = 2, flags = FLAG_ENFORCE_FILES,
        decide_ptrace;
    /// `kernel_module_request(char *kmod_name)`: called by `request_module` in the requesting
    /// task, before the modprobe helper is started (socket families and protocols, binary
    /// formats, crypto algorithms, file systems, ...).
    kernel_module_request: hook = "kernel_module_request", prev = 1,
        flags = FLAG_ENFORCE_FILES, refuse_module_request;
}

#[inline(always)]
fn refuse_module_request(ctx: &LsmContext) -> i32 {
    let name = scalar_arg(ctx, 0) as *const u8;
    let decision = Decision::of(Verdict::DeniedSessionEscape);
    report(FileOp::ModuleRequest, 0, decision, copy_name(name).ok());
    errno_of(decision)
}

/// `PTRACE_MODE_NOAUDIT`: the caller only probes (`/proc/PID/stat`'s addresses, the
/// visibility of /proc entries) and takes a refusal quietly, as the kernel's own audit does.
const PTRACE_MODE_NOAUDIT: u32 = 0x04;

#[inline(always)]
fn decide_ptrace(ctx: &LsmContext) -> i32 {
    let child: *const u8 = ctx.arg(0);
    if session::tgid_in_session(child) == Some(1) {
        let decision = Decision::of(Verdict::DeniedSessionEscape);
        report(FileOp::Ptrace, 0, decision, None);
        return errno_of(decision);
    }
    if regimes::enabled() {
        // A task in a regime may not reach into a process outside it (the package manager
        // holding its token, say): it could read the secrets the regime denies, or make the
        // less confined process act for it. The kernel never asks for the task's own process.
        let mine = regimes::current();
        let target_tgid: u32 = field(child, config!(offsets.task_tgid));
        let outside = mine & !regimes::of_tgid(target_tgid);
        if mine != 0 && outside != 0 {
            let decision = Decision {
                verdict: Verdict::DeniedRegimeTarget,
                rule_kind: (regimes::first(outside) << RULE_REGIME_SHIFT) | 0xff,
                rule_index: NO_RULE,
            };
            let mode: u32 = ctx.arg(1);
            if mode & PTRACE_MODE_NOAUDIT == 0 {
                report(FileOp::Ptrace, 0, decision, None);
            }
            return errno_of(decision);
        }
    }
    0
}
