//! What changes a file without opening, creating or removing it, decided by path as the other
//! file hooks do: extended attributes and ACLs (an ACL changes who may open a file without a
//! chmod), inode flags (`chattr`: immutable, append-only, ...), timestamps, and watches, which
//! report the names and activity in the watched directory. Changing or removing needs write
//! access to the file's path, a watch read access to the watched path. Mode, owner and size
//! are decided by `path_chmod`, `path_chown`, `path_truncate` and `file_open` (files.rs).

use aya_ebpf::programs::LsmContext;
use sandtrace_common::{
    config::FLAG_ENFORCE_FILES,
    file::{FileOp, Verdict},
};

use crate::{
    files::rebuilt,
    kernel::{field, scalar_arg},
    mounts::enforce_dentry,
    path_policy::{Decision, NEED_READ, NEED_WRITE, enforce, errno_of, report},
    session::{config, lsm_programs},
};

/// `_IOW('f', 2, long)` and `_IOW('f', 2, int)`: set the inode flags (ext4, btrfs, xfs, ...).
const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
const FS_IOC32_SETFLAGS: u32 = 0x4004_6602;
/// `_IOW('X', 32, struct fsxattr)`: set the extended inode flags and project id.
const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;
/// `enum fsnotify_obj_type`: a mark on one inode; the others cover a mount or a superblock.
const FSNOTIFY_OBJ_TYPE_INODE: u32 = 0;
const ATTR_SIZE: u32 = 1 << 3;
const ATTR_ATIME: u32 = 1 << 4;
const ATTR_MTIME: u32 = 1 << 5;

lsm_programs! {
    /// `path_notify(const struct path *path, u64 mask, unsigned int obj_type)`: inotify,
    /// fanotify and dnotify watches.
    path_notify: hook = "path_notify", prev = 3, flags = FLAG_ENFORCE_FILES, decide_watch;
    /// `file_ioctl(struct file *file, unsigned int cmd, unsigned long arg)`: the inode flag
    /// ioctls; every other ioctl passes.
    file_ioctl: hook = "file_ioctl", prev = 3, flags = FLAG_ENFORCE_FILES, decide_ioctl;
    /// `inode_setxattr(idmap, struct dentry *dentry, const char *name, const void *value,
    /// size_t size, int flags)`; before Linux 6.2 also every POSIX ACL.
    inode_setxattr: hook = "inode_setxattr", prev = 6, flags = FLAG_ENFORCE_FILES,
        |ctx| enforce_dentry(FileOp::SetXattr, NEED_WRITE, scalar_arg(ctx, 1) as *const u8);
    /// `inode_removexattr(idmap, struct dentry *dentry, const char *name)`.
    inode_removexattr: hook = "inode_removexattr", prev = 3, flags = FLAG_ENFORCE_FILES,
        |ctx| enforce_dentry(FileOp::RemoveXattr, NEED_WRITE, scalar_arg(ctx, 1) as *const u8);
    /// `inode_set_acl(idmap, struct dentry *dentry, const char *acl_name,
    /// struct posix_acl *kacl)` (Linux 6.2+).
    inode_set_acl: hook = "inode_set_acl", prev = 4, flags = FLAG_ENFORCE_FILES,
        |ctx| enforce_dentry(FileOp::SetAcl, NEED_WRITE, scalar_arg(ctx, 1) as *const u8);
    /// `inode_remove_acl(idmap, struct dentry *dentry, const char *acl_name)` (Linux 6.2+).
    inode_remove_acl: hook = "inode_remove_acl", prev = 3, flags = FLAG_ENFORCE_FILES,
        |ctx| enforce_dentry(FileOp::RemoveAcl, NEED_WRITE, scalar_arg(ctx, 1) as *const u8);
    /// `inode_setattr(idmap, struct dentry *dentry, struct iattr *attr)` (Linux 6.8+).
    inode_setattr: hook = "inode_setattr", prev = 3, flags = FLAG_ENFORCE_FILES,
        |ctx| decide_times(scalar_arg(ctx, 1), scalar_arg(ctx, 2));
    /// `inode_setattr(struct dentry *dentry, struct iattr *attr)`, before Linux 6.8. The
    /// loader picks the program matching the kernel's prototype.
    inode_setattr_no_idmap: hook = "inode_setattr", prev = 2, flags = FLAG_ENFORCE_FILES,
        |ctx| decide_times(scalar_arg(ctx, 0), scalar_arg(ctx, 1));
}

/// Only timestamps are decided here: a size change (truncation) sets the times too, and was
/// decided by path already.
#[inline(always)]
fn decide_times(dentry: u64, attr: u64) -> i32 {
    let valid: u32 = field(attr as *const u8, config!(offsets.iattr_ia_valid));
    if valid & (ATTR_ATIME | ATTR_MTIME) == 0 || valid & ATTR_SIZE != 0 {
        return 0;
    }
    enforce_dentry(FileOp::SetTimes, NEED_WRITE, dentry as *const u8)
}

#[inline(always)]
fn decide_watch(ctx: &LsmContext) -> i32 {
    let path: *const u8 = ctx.arg(0);
    let obj_type: u32 = ctx.arg(2);
    if obj_type != FSNOTIFY_OBJ_TYPE_INODE {
        let d = Decision::of(Verdict::DeniedWideWatch);
        report(FileOp::Watch, NEED_READ, d, rebuilt(path, 0).ok());
        return errno_of(d);
    }
    enforce(FileOp::Watch, NEED_READ, rebuilt(path, 0))
}

#[inline(always)]
fn decide_ioctl(ctx: &LsmContext) -> i32 {
    let cmd = scalar_arg(ctx, 1) as u32;
    if !matches!(cmd, FS_IOC_SETFLAGS | FS_IOC32_SETFLAGS | FS_IOC_FSSETXATTR) {
        return 0;
    }
    let file = scalar_arg(ctx, 0) as *const u8;
    let f_path = (file as u64 + config!(offsets.file_f_path) as u64) as *const u8;
    enforce(FileOp::SetFlags, NEED_WRITE, rebuilt(f_path, 0))
}
