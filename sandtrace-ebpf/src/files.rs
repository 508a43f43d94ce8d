//! File-system enforcement: BPF LSM programs on every hook that reaches a file by path.
//!
//! Each program decides on the kernel's own path of the object (`d_path`, or the directory's
//! path plus the entry name for hooks on directory entries), so symlinks, `..`, relative opens,
//! `/proc/self/fd` and `/proc/PID/root` cannot disguise it. Tasks outside the session and
//! sessions without `FLAG_ENFORCE_FILES` pass straight through.

use aya_ebpf::programs::LsmContext;
use sandtrace_common::{config::FLAG_ENFORCE_FILES, file::FileOp};

use crate::{
    kernel::{field, pointer, scalar_arg},
    path_policy::{
        self, Decision, NEED_READ, NEED_WRITE, append_name, decide, decide_at, enforce, errno_of,
        moves_denied, rebuild_path, report, resolve_path,
    },
    session::{config, lsm_programs},
};

const FMODE_READ: u32 = 0x1;
const FMODE_WRITE: u32 = 0x2;
/// Set (in f_mode and f_flags) only by the kernel's own opens for exec; open(2) cannot set it.
const FMODE_EXEC: u32 = 0x20;
const RENAME_EXCHANGE: u32 = 1 << 1;
const S_IFMT: u16 = 0o170000;
const S_IFDIR: u16 = 0o040000;
const S_IFCHR: u16 = 0o020000;
const S_IFBLK: u16 = 0o060000;
const O_TRUNC: u32 = 0o1000;

lsm_programs! {
    /// `file_open(struct file *file)`: by the open mode. Opens the kernel makes to execute a file
    /// are decided by `bprm_check_security` instead.
    file_open: hook = "file_open", prev = 1, flags = FLAG_ENFORCE_FILES, decide_open;
    /// `path_truncate(const struct path *path)`.
    path_truncate: hook = "path_truncate", prev = 1, flags = FLAG_ENFORCE_FILES,
        |ctx| enforce(FileOp::Truncate, NEED_WRITE, rebuilt(ctx.arg(0), 0));
    /// `path_unlink(const struct path *dir, struct dentry *dentry)`.
    path_unlink: hook = "path_unlink", prev = 2, flags = FLAG_ENFORCE_FILES,
        |ctx| entry_in_dir(ctx, FileOp::Unlink);
    /// `path_mkdir(const struct path *dir, struct dentry *dentry, umode_t mode)`.
    path_mkdir: hook = "path_mkdir", prev = 3, flags = FLAG_ENFORCE_FILES,
        |ctx| entry_in_dir(ctx, FileOp::Mkdir);
    /// `path_rmdir(const struct path *dir, struct dentry *dentry)`.
    path_rmdir: hook = "path_rmdir", prev = 2, flags = FLAG_ENFORCE_FILES,
        |ctx| entry_in_dir(ctx, FileOp::Rmdir);
    /// `path_mknod(const struct path *dir, struct dentry *dentry, umode_t mode,
    /// unsigned int dev)`: also every regular file created by open(O_CREAT). Device nodes are
    /// refused whatever the path: opening one reaches the device, not the path's contents.
    path_mknod: hook = "path_mknod", prev = 4, flags = FLAG_ENFORCE_FILES, decide_mknod;
    /// `path_symlink(const struct path *dir, struct dentry *dentry, const char *old_name)`: the
    /// link's own path needs write; what it points to is decided when it is followed.
    path_symlink: hook = "path_symlink", prev = 3, flags = FLAG_ENFORCE_FILES,
        |ctx| entry_in_dir(ctx, FileOp::Symlink);
    /// `path_link(struct dentry *old_dentry, const struct path *new_dir,
    /// struct dentry *new_dentry)`. A hard link is a second name for the same file, so the
    /// source must be writable (else a link in a writable directory would make a read-only file
    /// writable) and not denied; the new name needs write.
    path_link: hook = "path_link", prev = 3, flags = FLAG_ENFORCE_FILES, decide_link;
    /// `path_rename(const struct path *old_dir, struct dentry *old_dentry,
    /// const struct path *new_dir, struct dentry *new_dentry, unsigned int flags)`: both names
    /// need write, and a moved directory must not carry denied paths out from under their rule.
    path_rename: hook = "path_rename", prev = 5, flags = FLAG_ENFORCE_FILES, decide_rename;
    /// `path_chmod(const struct path *path, umode_t mode)`.
    path_chmod: hook = "path_chmod", prev = 2, flags = FLAG_ENFORCE_FILES,
        |ctx| enforce(FileOp::Chmod, NEED_WRITE, rebuilt(ctx.arg(0), 0));
    /// `path_chown(const struct path *path, kuid_t uid, kgid_t gid)`.
    path_chown: hook = "path_chown", prev = 3, flags = FLAG_ENFORCE_FILES,
        |ctx| enforce(FileOp::Chown, NEED_WRITE, rebuilt(ctx.arg(0), 0));
}

#[inline(always)]
fn decide_open(ctx: &LsmContext) -> i32 {
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
pub(crate) fn rebuilt(
    path: *const u8,
    slot: u32,
) -> Result<path_policy::Resolved, sandtrace_common::file::Verdict> {
    let mnt: *const u8 = pointer(path, config!(offsets.path_mnt));
    let dentry: *const u8 = pointer(path, config!(offsets.path_dentry));
    rebuild_path(dentry, mnt, slot)
}

#[inline(always)]
fn decide_mknod(ctx: &LsmContext) -> i32 {
    let mode = scalar_arg(ctx, 2) as u16 & S_IFMT;
    let device = match mode {
        S_IFCHR => FileOp::MknodChar,
        S_IFBLK => FileOp::MknodBlock,
        _ => return entry_in_dir(ctx, FileOp::Create),
    };
    let dir: *const u8 = ctx.arg(0);
    let dentry: *const u8 = ctx.arg(1);
    let d = Decision::of(sandtrace_common::file::Verdict::DeniedDeviceNode);
    let shown = rebuilt(dir, 0).and_then(|p| append_name(p, dentry)).ok();
    report(device, 0, d, shown);
    errno_of(d)
}

#[inline(always)]
fn decide_link(ctx: &LsmContext) -> i32 {
    // Read as a plain number: the verifier lets only scalars into the global function that
    // rebuilds the path.
    let old_dentry = scalar_arg(ctx, 0) as *const u8;
    let new_dir: *const u8 = ctx.arg(1);
    let new_dentry: *const u8 = ctx.arg(2);
    let vfsmount: *const u8 = pointer(new_dir, config!(offsets.path_mnt));
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

#[inline(always)]
fn decide_rename(ctx: &LsmContext) -> i32 {
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
    let inode: *const u8 = pointer(dentry, config!(offsets.dentry_d_inode));
    !inode.is_null() && field::<u16>(inode, config!(offsets.inode_i_mode)) & S_IFMT == S_IFDIR
}
