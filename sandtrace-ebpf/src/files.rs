//! File-system enforcement: BPF LSM programs on every hook that reaches a file by path.
//!
//! Each program decides on the kernel's own path of the object (`d_path`, or the directory's
//! path plus the entry name for hooks on directory entries), so symlinks, `..`, relative opens,
//! `/proc/self/fd` and `/proc/PID/root` cannot disguise it. Tasks outside the session and
//! sessions without `FLAG_ENFORCE_FILES` pass straight through.

use aya_ebpf::{helpers::bpf_probe_read_kernel, macros::lsm, programs::LsmContext};
use sandtrace_common::{config::FLAG_ENFORCE_FILES, file::FileOp};

use crate::{
    path_policy::{
        self, Decision, NEED_READ, NEED_WRITE, append_name, decide, decide_at, enforce, errno_of,
        moves_denied, rebuild_path, report, resolve_path,
    },
    session::{self, config},
};

const FMODE_READ: u32 = 0x1;
const FMODE_WRITE: u32 = 0x2;
/// Set (in f_mode and f_flags) only by the kernel's own opens for exec; open(2) cannot set it.
const FMODE_EXEC: u32 = 0x20;
const RENAME_EXCHANGE: u32 = 1 << 1;
const S_IFMT: u16 = 0o170000;
const S_IFDIR: u16 = 0o040000;
const O_TRUNC: u32 = 0o1000;

/// Whether this program should decide: a session task with file enforcement on, and no earlier
/// LSM already refused (its verdict must be passed on).
#[inline(always)]
fn applies(prev: i32) -> bool {
    prev == 0 && session::flag(FLAG_ENFORCE_FILES) && session::current_in_session()
}

/// Argument `n` of the hook as a plain number rather than a typed kernel pointer.
#[inline(always)]
fn scalar_arg(ctx: &LsmContext, n: usize) -> u64 {
    let args = aya_ebpf::EbpfContext::as_ptr(ctx) as *const u64;
    unsafe { bpf_probe_read_kernel(args.add(n)).unwrap_or(0) }
}

#[inline(always)]
fn field<T: Default + Copy>(base: *const u8, offset: u32) -> T {
    unsafe { bpf_probe_read_kernel(base.add(offset as usize).cast::<T>()).unwrap_or_default() }
}

/// `file_open(struct file *file)`: by the open mode. Opens the kernel makes to execute a file
/// are decided by `bprm_check_security` instead.
#[lsm(hook = "file_open")]
#[inline(always)]
pub fn file_open(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(1);
    if !applies(prev) {
        return prev;
    }
    let file: *const u8 = ctx.arg(0);
    let mode: u32 = field(file, config!(offsets.file_f_mode));
    let flags: u32 = field(file, config!(offsets.file_f_flags));
    if (mode | flags) & FMODE_EXEC != 0 {
        return 0;
    }
    // Whatever the policy allows: writing cgroup files could move a task out of the session.
    if mode & FMODE_WRITE != 0 && crate::isolation::on_cgroupfs(file) {
        let d = Decision::of(sandtrace_common::file::Verdict::DeniedSessionEscape);
        let f_path = unsafe { file.add(config!(offsets.file_f_path) as usize) };
        report(FileOp::Open, NEED_WRITE, d, resolve_path(f_path, 0).ok());
        return errno_of(d);
    }
    let mut needed = 0;
    if mode & FMODE_READ != 0 {
        needed |= NEED_READ;
    }
    // O_TRUNC truncates even with O_RDONLY. (ftruncate needs a descriptor opened for write,
    // so it was decided here too; `file_truncate` cannot resolve paths.)
    if mode & FMODE_WRITE != 0 || flags & O_TRUNC != 0 {
        needed |= NEED_WRITE;
    }
    if needed == 0 {
        // Opens without read or write access (ioctl-only opens of devices, mode 3).
        needed = NEED_READ;
    }
    let f_path = unsafe { file.add(config!(offsets.file_f_path) as usize) };
    let path = resolve_path(f_path, 0);
    if let Ok(p) = path
        && needed == NEED_READ
        && crate::launch::is_launch_read(p)
    {
        let d = Decision::of(sandtrace_common::file::Verdict::AllowedLaunch);
        report(FileOp::Open, needed, d, Some(p));
        return 0;
    }
    enforce(FileOp::Open, needed, path)
}

/// `path_truncate(const struct path *path)`.
#[lsm(hook = "path_truncate")]
#[inline(always)]
pub fn path_truncate(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(1);
    if !applies(prev) {
        return prev;
    }
    enforce(FileOp::Truncate, NEED_WRITE, rebuilt(ctx.arg(0), 0))
}

/// Decides a new or removed directory entry: `dir` + `/` + the entry's name, needing write.
#[inline(always)]
fn entry_in_dir(ctx: &LsmContext, op: FileOp) -> i32 {
    let dir: *const u8 = ctx.arg(0);
    let dentry: *const u8 = ctx.arg(1);
    enforce(
        op,
        NEED_WRITE,
        rebuilt(dir, 0).and_then(|d| append_name(d, dentry)),
    )
}

/// The path of a `struct path`, rebuilt without `d_path`: the `path_*` hooks may not call
/// `d_path` on every kernel (6.1 allows it only in `file_open` and `bprm_check_security`).
#[inline(always)]
fn rebuilt(
    path: *const u8,
    slot: u32,
) -> Result<path_policy::Resolved, sandtrace_common::file::Verdict> {
    let mnt: *const u8 = field::<usize>(path, config!(offsets.path_mnt)) as *const u8;
    let dentry: *const u8 = field::<usize>(path, config!(offsets.path_dentry)) as *const u8;
    rebuild_path(dentry, mnt, slot)
}

/// `path_unlink(const struct path *dir, struct dentry *dentry)`.
#[lsm(hook = "path_unlink")]
#[inline(always)]
pub fn path_unlink(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(2);
    if !applies(prev) {
        return prev;
    }
    entry_in_dir(&ctx, FileOp::Unlink)
}

/// `path_mkdir(const struct path *dir, struct dentry *dentry, umode_t mode)`.
#[lsm(hook = "path_mkdir")]
#[inline(always)]
pub fn path_mkdir(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(3);
    if !applies(prev) {
        return prev;
    }
    entry_in_dir(&ctx, FileOp::Mkdir)
}

/// `path_rmdir(const struct path *dir, struct dentry *dentry)`.
#[lsm(hook = "path_rmdir")]
#[inline(always)]
pub fn path_rmdir(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(2);
    if !applies(prev) {
        return prev;
    }
    entry_in_dir(&ctx, FileOp::Rmdir)
}

/// `path_mknod(const struct path *dir, struct dentry *dentry, umode_t mode, unsigned int dev)`:
/// also every regular file created by open(O_CREAT).
#[lsm(hook = "path_mknod")]
#[inline(always)]
pub fn path_mknod(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(4);
    if !applies(prev) {
        return prev;
    }
    entry_in_dir(&ctx, FileOp::Create)
}

/// `path_symlink(const struct path *dir, struct dentry *dentry, const char *old_name)`: the
/// link's own path needs write; what it points to is decided when it is followed.
#[lsm(hook = "path_symlink")]
#[inline(always)]
pub fn path_symlink(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(3);
    if !applies(prev) {
        return prev;
    }
    entry_in_dir(&ctx, FileOp::Symlink)
}

/// `path_link(struct dentry *old_dentry, const struct path *new_dir, struct dentry *new_dentry)`.
/// A hard link is a second name for the same file, so the source must be writable (else a
/// link in a writable directory would make a read-only file writable) and not denied; the new
/// name needs write.
#[lsm(hook = "path_link")]
#[inline(always)]
pub fn path_link(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(3);
    if !applies(prev) {
        return prev;
    }
    // Read as a plain number: the verifier lets only scalars into the global function that
    // rebuilds the path.
    let old_dentry = scalar_arg(&ctx, 0) as *const u8;
    let new_dir: *const u8 = ctx.arg(1);
    let new_dentry: *const u8 = ctx.arg(2);
    let vfsmount: *const u8 = field::<usize>(new_dir, config!(offsets.path_mnt)) as *const u8;
    let (source, shown) = match rebuild_path(old_dentry, vfsmount, 1) {
        Ok(p) => (decide(p, NEED_WRITE), Some(p)),
        Err(v) => (Decision::of(v), None),
    };
    report(FileOp::LinkSource, NEED_WRITE, source, shown);
    if source.verdict.is_denied() {
        return errno_of(source);
    }
    enforce(
        FileOp::Link,
        NEED_WRITE,
        rebuilt(new_dir, 0).and_then(|d| append_name(d, new_dentry)),
    )
}

/// `path_rename(const struct path *old_dir, struct dentry *old_dentry,
/// const struct path *new_dir, struct dentry *new_dentry, unsigned int flags)`: both names need
/// write, and a moved directory must not carry denied paths out from under their rule.
#[lsm(hook = "path_rename")]
#[inline(always)]
pub fn path_rename(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(5);
    if !applies(prev) {
        return prev;
    }
    let old_dir: *const u8 = ctx.arg(0);
    let old_dentry: *const u8 = ctx.arg(1);
    let new_dir: *const u8 = ctx.arg(2);
    let new_dentry: *const u8 = ctx.arg(3);
    let flags: u64 = ctx.arg(4);
    let (from, from_state, shown) =
        match rebuilt(old_dir, 0).and_then(|d| append_name(d, old_dentry)) {
            Ok(p) => {
                let (d, state) = decide_at(p, NEED_WRITE);
                (d, state, Some(p))
            }
            Err(v) => (Decision::of(v), None, None),
        };
    if from.verdict.is_denied() {
        report(FileOp::RenameFrom, NEED_WRITE, from, shown);
        return errno_of(from);
    }
    let (mut to, to_state, to_shown) =
        match rebuilt(new_dir, 1).and_then(|d| append_name(d, new_dentry)) {
            Ok(p) => {
                let (d, state) = decide_at(p, NEED_WRITE);
                (d, state, Some(p))
            }
            Err(v) => (Decision::of(v), None, None),
        };
    let exchange = flags as u32 & RENAME_EXCHANGE != 0;
    if !to.verdict.is_denied() && (is_dir(old_dentry) || (exchange && is_dir(new_dentry))) {
        let moved = match (from_state, to_state) {
            (Some(f), Some(t)) => moves_denied(f, t, exchange),
            // A pseudo path on either side: nothing below it is decided by path.
            _ => false,
        };
        if moved {
            to = Decision::of(sandtrace_common::file::Verdict::DeniedMovesDenied);
        }
    }
    report(FileOp::RenameFrom, NEED_WRITE, from, shown);
    report(FileOp::RenameTo, NEED_WRITE, to, to_shown);
    errno_of(to)
}

/// Whether a directory entry is a directory (by its inode's mode).
#[inline(always)]
fn is_dir(dentry: *const u8) -> bool {
    let inode: *const u8 = field::<usize>(dentry, config!(offsets.dentry_d_inode)) as *const u8;
    !inode.is_null() && field::<u16>(inode, config!(offsets.inode_i_mode)) & S_IFMT == S_IFDIR
}

/// `path_chmod(const struct path *path, umode_t mode)`.
#[lsm(hook = "path_chmod")]
#[inline(always)]
pub fn path_chmod(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(2);
    if !applies(prev) {
        return prev;
    }
    enforce(FileOp::Chmod, NEED_WRITE, rebuilt(ctx.arg(0), 0))
}

/// `path_chown(const struct path *path, kuid_t uid, kgid_t gid)`.
#[lsm(hook = "path_chown")]
#[inline(always)]
pub fn path_chown(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(3);
    if !applies(prev) {
        return prev;
    }
    enforce(FileOp::Chown, NEED_WRITE, rebuilt(ctx.arg(0), 0))
}
