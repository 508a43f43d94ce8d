//! Which argument of a syscall is a user-space path, so the kernel side can decode it.
//!
//! x86_64 numbering only: sandtrace's kernel programs and seccomp filters target x86_64.

/// Index of the first path argument of syscall `nr`, if it takes one.
pub const fn path_arg(nr: u32) -> Option<usize> {
    Some(match nr {
        // open, stat, lstat, access, execve, truncate, chdir, rename, mkdir, rmdir, creat,
        // link, unlink, readlink, chmod, chown, lchown, utime, mknod, chroot, uselib, statfs,
        // setxattr..removexattr families on paths, utimes
        2 | 4 | 6 | 21 | 59 | 76 | 80 | 82 | 83 | 84 | 85 | 86 | 87 | 89 | 90 | 92 | 94 | 132
        | 133 | 161 | 134 | 137 | 188 | 189 | 191 | 192 | 194 | 195 | 197 | 198 | 235 => 0,
        // symlink(target, linkpath): the new name is the path being created
        88 => 1,
        // openat, mkdirat, mknodat, fchownat, futimesat, newfstatat, unlinkat, renameat,
        // linkat, readlinkat, fchmodat, faccessat, utimensat, name_to_handle_at, execveat,
        // renameat2, statx, open_tree, move_mount, fspick, mount_setattr, openat2, faccessat2,
        // fchmodat2, setxattrat, getxattrat, listxattrat, removexattrat, open_tree_attr,
        // file_getattr, file_setattr
        257 | 258 | 259 | 260 | 261 | 262 | 263 | 264 | 265 | 267 | 268 | 269 | 280 | 303 | 322
        | 316 | 332 | 428 | 429 | 433 | 442 | 437 | 439 | 452 | 463 | 464 | 465 | 466 | 467
        | 468 | 469 => 1,
        // inotify_add_watch(fd, pathname, mask)
        254 => 1,
        // quotactl(cmd, special, ...): the block device
        179 => 1,
        // fanotify_mark(fd, flags, mask, dirfd, pathname)
        301 => 4,
        // symlinkat(target, newdirfd, linkpath)
        266 => 2,
        // mount(source, target, ...): the mount point
        165 => 1,
        // umount2, swapon, swapoff, acct, pivot_root
        166 | 167 | 168 | 163 | 155 => 0,
        _ => return None,
    })
}

/// Whether Landlock decides syscall `nr` on its path argument ([`path_arg`]), failing it with
/// EACCES when it refuses: the calls that open, execute, create, remove, rename, link or
/// truncate a path. (Landlock refuses a rename or link that would move a file out of its
/// rights with EXDEV, which is also the ordinary answer across mounts: not included.)
pub const fn landlock_refuses(nr: u32) -> bool {
    // open, creat, openat, openat2, execve, execveat, truncate, mkdir, mkdirat, rmdir, unlink,
    // unlinkat, rename, renameat, renameat2, link, linkat, symlink, symlinkat, mknod, mknodat
    matches!(
        nr,
        2 | 85
            | 257
            | 437
            | 59
            | 322
            | 76
            | 83
            | 258
            | 84
            | 87
            | 263
            | 82
            | 264
            | 316
            | 86
            | 265
            | 88
            | 266
            | 133
            | 259
    )
}

#[cfg(test)]
mod tests {
    use super::{landlock_refuses, path_arg};

    #[test]
    fn common_path_syscalls() {
        assert_eq!(path_arg(2), Some(0)); // open
        assert_eq!(path_arg(257), Some(1)); // openat
        assert_eq!(path_arg(59), Some(0)); // execve
        assert_eq!(path_arg(322), Some(1)); // execveat
        assert_eq!(path_arg(266), Some(2)); // symlinkat
        assert_eq!(path_arg(39), None); // getpid
        assert_eq!(path_arg(254), Some(1)); // inotify_add_watch
        assert_eq!(path_arg(301), Some(4)); // fanotify_mark
        assert_eq!(path_arg(464), Some(1)); // getxattrat
    }

    #[test]
    fn every_call_landlock_refuses_has_a_path() {
        for nr in 0..512 {
            assert!(!landlock_refuses(nr) || path_arg(nr).is_some(), "{nr}");
        }
        assert!(landlock_refuses(257)); // openat
        assert!(!landlock_refuses(4)); // stat: Landlock does not decide metadata reads
    }
}
