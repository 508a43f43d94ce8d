//! Deciding an object the kernel names only by its directory entry: the `inode_*` hooks get a
//! dentry and no mount, so the path is rebuilt through every mount of the current task's mount
//! namespace that shows the dentry's file system, and the operation is allowed only when every
//! such path allows it (a bind mount shows one file under several paths). CMD cannot add
//! mounts (seccomp refuses every mount syscall), so these are the mounts the session started
//! with. A file system no mount of the namespace shows (an internal mount) is denied, as is
//! one with more mounts than can be looked through.
//!
//! Stacked file systems (overlayfs) repeat an operation on their own file, decided already,
//! on the file of the layer below, with the mounter's credentials: those repeats pass (see
//! [`repeated_by_stacked_fs`]).

use aya_ebpf::{
    helpers::{bpf_get_current_task, generated::bpf_loop},
    macros::map,
    maps::PerCpuArray,
};
use sandtrace_common::{
    config::{SB_MOUNTS_LINKED, SB_MOUNTS_LIST},
    file::{FileOp, MAX_SB_MOUNTS, MAX_SESSION_MOUNTS, Verdict},
};

use crate::{
    kernel::{field, pointer},
    path_policy::{Decision, decide, errno_of, rebuild_path, report},
    session::config,
};

/// The walk over one superblock's mounts, shared with the `bpf_loop` callback.
#[repr(C)]
pub struct SessionMounts {
    /// `struct mount` pointers of the session's namespace, `count` of them.
    mounts: [u64; MAX_SESSION_MOUNTS],
    count: u32,
    outcome: u32,
    /// The next mount to look at (null: none), the list's head (`super_block.s_mounts`, for
    /// `SB_MOUNTS_LIST`), the namespace.
    next: u64,
    head: u64,
    ns: u64,
}

#[map]
static SESSION_MOUNTS: PerCpuArray<SessionMounts> = PerCpuArray::with_max_entries(1, 0);

const WALKING: u32 = 0;
const DONE: u32 = 1;

const _: () = assert!(MAX_SESSION_MOUNTS.is_power_of_two());

/// One mount of the superblock: kept when it is in the namespace.
#[inline(never)]
extern "C" fn mount_step(_index: u64, _ctx: *mut core::ffi::c_void) -> i64 {
    let Some(m) = SESSION_MOUNTS.get_ptr_mut(0) else {
        return 1;
    };
    let m = unsafe { &mut *m };
    let mount = m.next;
    if mount == 0 {
        m.outcome = DONE;
        return 1;
    }
    m.next = next_mount(mount, m.head);
    let ns: *const u8 = pointer(mount as *const u8, config!(offsets.mount_mnt_ns));
    if ns as u64 == m.ns {
        let n = m.count as usize;
        if n >= MAX_SESSION_MOUNTS {
            m.outcome = Verdict::DeniedNoMount as u32;
            return 1;
        }
        m.mounts[n & (MAX_SESSION_MOUNTS - 1)] = mount;
        m.count += 1;
    }
    0
}

/// The mount after `mount` on its superblock's list (0: none), `head` being the list's head.
#[inline(always)]
fn next_mount(mount: u64, head: u64) -> u64 {
    let link = mount + config!(offsets.mount_sb_link) as u64;
    // Both layouts keep the next element's address first in the link.
    let next: *const u8 = pointer(link as *const u8, 0);
    if config!(offsets.sb_mounts_layout) == SB_MOUNTS_LINKED {
        return next as u64;
    }
    if next.is_null() || next as u64 == head {
        return 0;
    }
    (next as u64).wrapping_sub(config!(offsets.mount_sb_link) as u64)
}

/// Fills [`SESSION_MOUNTS`] with the mounts of the current task's namespace that show the
/// superblock of `dentry`.
#[inline(always)]
fn find_session_mounts(dentry: *const u8) -> Result<(), Verdict> {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let nsproxy: *const u8 = pointer(task, config!(offsets.task_nsproxy));
    let ns: *const u8 = pointer(nsproxy, config!(offsets.nsproxy_mnt_ns));
    let sb: *const u8 = pointer(dentry, config!(offsets.dentry_d_sb));
    if ns.is_null() || sb.is_null() {
        return Err(Verdict::DeniedUnresolved);
    }
    let head = sb as u64 + config!(offsets.sb_s_mounts) as u64;
    let first: *const u8 = pointer(head as *const u8, 0);
    let first = match config!(offsets.sb_mounts_layout) {
        SB_MOUNTS_LINKED => first as u64,
        SB_MOUNTS_LIST if first.is_null() || first as u64 == head => 0,
        SB_MOUNTS_LIST => (first as u64).wrapping_sub(config!(offsets.mount_sb_link) as u64),
        _ => return Err(Verdict::DeniedNoMount),
    };
    let m = SESSION_MOUNTS
        .get_ptr_mut(0)
        .ok_or(Verdict::DeniedNoPolicy)?;
    let m = unsafe { &mut *m };
    m.count = 0;
    m.outcome = WALKING;
    m.next = first;
    m.head = head;
    m.ns = ns as u64;
    let ret = unsafe {
        bpf_loop(
            MAX_SB_MOUNTS as u32,
            mount_step as *mut core::ffi::c_void,
            core::ptr::null_mut(),
            0,
        )
    };
    match m.outcome {
        _ if ret < 0 => Err(Verdict::DeniedUnresolved),
        DONE => Ok(()),
        // Still walking after the last step: more mounts than can be looked through.
        WALKING => Err(Verdict::DeniedNoMount),
        v => Err(Verdict::from_u16(v as u16).unwrap_or(Verdict::DeniedUnresolved)),
    }
}

/// `task_struct.flags`: an io_uring worker thread.
const PF_IO_WORKER: u32 = 0x10;

/// True while the kernel acts with credentials that are not the task's own (overlayfs
/// copying up or passing an operation on to its upper layer; the task's own call on the
/// overlay file was decided). io_uring workers can run requests with a registered
/// personality, which the task chose: they are decided as usual.
#[inline(always)]
fn repeated_by_stacked_fs() -> bool {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let cred: *const u8 = pointer(task, config!(offsets.task_cred));
    let real: *const u8 = pointer(task, config!(offsets.task_real_cred));
    let flags: u32 = field(task, config!(offsets.task_flags));
    cred != real && flags & PF_IO_WORKER == 0
}

/// Decides `op`, needing `needed`, on the file of `dentry` under every path the session's
/// mounts give it; reports each decision and returns the hook's verdict.
#[inline(always)]
pub fn enforce_dentry(op: FileOp, needed: u16, dentry: *const u8) -> i32 {
    if repeated_by_stacked_fs() {
        return 0;
    }
    if let Err(v) = find_session_mounts(dentry) {
        let d = Decision::of(v);
        report(op, needed, d, None);
        return errno_of(d);
    }
    let mut shown = false;
    for i in 0..MAX_SESSION_MOUNTS {
        let Some(m) = SESSION_MOUNTS.get(0) else {
            break;
        };
        if i >= m.count as usize {
            break;
        }
        let vfsmount = m.mounts[i] + config!(offsets.mount_mnt) as u64;
        match rebuild_path(dentry, vfsmount as *const u8, 0) {
            // The walk met the file system's root, not this mount's: a bind mount of a
            // directory the file is not in.
            Err(Verdict::DeniedUnresolved) => continue,
            Err(v) => {
                let d = Decision::of(v);
                report(op, needed, d, None);
                return errno_of(d);
            }
            Ok(p) => {
                let d = decide(p, needed);
                report(op, needed, d, Some(p));
                if d.verdict.is_denied() {
                    return errno_of(d);
                }
                shown = true;
            }
        }
    }
    if shown {
        return 0;
    }
    let d = Decision::of(Verdict::DeniedNoMount);
    report(op, needed, d, None);
    errno_of(d)
}
