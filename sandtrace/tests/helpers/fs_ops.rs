//! The file-system helper the VM tests (`tests/vm_files.rs`) run as CMD inside sessions:
//! each argument is one operation, its fields separated by tabs (`open_read\t/path`, see
//! `Op::encode` there); it performs them with raw syscalls and prints one line
//! `FS-OP-RESULT\tINDEX\tOUTCOME` per operation (`ok` or the errno's name).
//!
//! Not a test and not installed: built for the tests through the `test-helpers` feature.

// This program is the untrusted command: it makes raw syscalls, with the arguments an escape
// attempt would choose, as its whole purpose. Each call passes pointers to live buffers it owns;
// what the kernel does with the rest is what the tests check.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::{
    ffi::CString,
    fs,
    io::Write as _,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::process::CommandExt as _,
    },
    path::Path,
    process::Command,
};

const RESULT_TAG: &str = "FS-OP-RESULT";

fn main() {
    let ops: Vec<String> = std::env::args().skip(1).collect();
    if ops.is_empty() {
        eprintln!("usage: sandtrace-test-fs-ops OPERATION...  (a helper of sandtrace's tests)");
        std::process::exit(2);
    }
    let mut stdout = std::io::stdout().lock();
    for (index, op) in ops.iter().enumerate() {
        let fields: Vec<&str> = op.split('\t').collect();
        let outcome = match perform(&fields) {
            Ok(()) => "ok".to_owned(),
            Err(errno) => format!("{errno:?}"),
        };
        writeln!(stdout, "{RESULT_TAG}\t{index}\t{outcome}").unwrap();
        stdout.flush().unwrap();
    }
}

type Errno = nix::errno::Errno;

fn c(path: &str) -> CString {
    CString::new(path).expect("no NUL in test paths")
}

fn check(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
}

fn open(path: &str, flags: i32) -> Result<OwnedFd, Errno> {
    let fd = check(unsafe { libc::open(c(path).as_ptr(), flags | libc::O_CLOEXEC, 0o644) }.into())?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Runs `exec` in a forked child; the child's exit status is the errno of a failed exec (or
/// the program's own status).
fn in_child(exec: impl FnOnce() -> Errno) -> Result<(), Errno> {
    match unsafe { libc::fork() } {
        -1 => Err(Errno::last()),
        0 => {
            let errno = exec();
            unsafe { libc::_exit(errno as i32) }
        }
        pid => {
            let mut status = 0;
            unsafe { libc::waitpid(pid, &mut status, 0) };
            match libc::WEXITSTATUS(status) {
                0 => Ok(()),
                code => Err(Errno::from_raw(code)),
            }
        }
    }
}

/// Walks (with `create`, makes) `depth` nested directories `name` below `base` with relative
/// steps, so no single syscall sees the whole path.
fn descend(base: &str, name: &str, depth: usize, create: bool) -> Result<OwnedFd, Errno> {
    let mut dir = open(base, libc::O_PATH | libc::O_DIRECTORY)?;
    let name = c(name);
    for _ in 0..depth {
        if create {
            unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) };
        }
        let next = check(
            unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY,
                )
            }
            .into(),
        )?;
        dir = unsafe { OwnedFd::from_raw_fd(next as i32) };
    }
    Ok(dir)
}

fn perform(f: &[&str]) -> Result<(), Errno> {
    let arg = |i: usize| f[i];
    match f[0] {
        "open_read" => open(arg(1), libc::O_RDONLY).map(drop),
        "open_write" => open(arg(1), libc::O_WRONLY).map(drop),
        "create" => open(arg(1), libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL).map(drop),
        "truncate" => check(unsafe { libc::truncate(c(arg(1)).as_ptr(), 0) }.into()).map(drop),
        "unlink" => check(unsafe { libc::unlink(c(arg(1)).as_ptr()) }.into()).map(drop),
        "mkdir" => check(unsafe { libc::mkdir(c(arg(1)).as_ptr(), 0o755) }.into()).map(drop),
        "rmdir" => check(unsafe { libc::rmdir(c(arg(1)).as_ptr()) }.into()).map(drop),
        "mknod" => {
            check(unsafe { libc::mknod(c(arg(1)).as_ptr(), libc::S_IFIFO | 0o644, 0) }.into())
                .map(drop)
        }
        "symlink" => {
            check(unsafe { libc::symlink(c(arg(1)).as_ptr(), c(arg(2)).as_ptr()) }.into()).map(drop)
        }
        "link" => {
            check(unsafe { libc::link(c(arg(1)).as_ptr(), c(arg(2)).as_ptr()) }.into()).map(drop)
        }
        "rename" => {
            check(unsafe { libc::rename(c(arg(1)).as_ptr(), c(arg(2)).as_ptr()) }.into()).map(drop)
        }
        "chmod" => check(unsafe { libc::chmod(c(arg(1)).as_ptr(), 0o600) }.into()).map(drop),
        "chown" => check(unsafe { libc::chown(c(arg(1)).as_ptr(), 0, 0) }.into()).map(drop),
        "exec" => {
            let path = arg(1).to_owned();
            in_child(move || {
                let err = Command::new(&path).exec();
                Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO))
            })
        }
        "reopen_fd" => open(&format!("/proc/self/fd/{}", arg(1)), libc::O_RDONLY).map(drop),
        "openat2" => {
            let dir = open(arg(1), libc::O_PATH | libc::O_DIRECTORY)?;
            let mut how: libc::open_how = unsafe { std::mem::zeroed() };
            how.flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
            how.resolve = arg(3).parse().unwrap();
            let fd = check(unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    dir.as_raw_fd(),
                    c(arg(2)).as_ptr(),
                    &how as *const libc::open_how,
                    size_of::<libc::open_how>(),
                )
            })?;
            drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
            Ok(())
        }
        "open_by_handle" => {
            #[repr(C)]
            struct Handle {
                bytes: u32,
                kind: i32,
                data: [u8; 128],
            }
            let mut handle = Handle {
                bytes: 128,
                kind: 0,
                data: [0; 128],
            };
            let mut mount_id = 0;
            check(unsafe {
                libc::syscall(
                    libc::SYS_name_to_handle_at,
                    libc::AT_FDCWD,
                    c(arg(1)).as_ptr(),
                    &mut handle as *mut Handle,
                    &mut mount_id as *mut i32,
                    0,
                )
            })?;
            let parent = Path::new(arg(1)).parent().expect("an absolute path");
            let mount = open(parent.to_str().unwrap(), libc::O_RDONLY | libc::O_DIRECTORY)?;
            let fd = check(unsafe {
                libc::syscall(
                    libc::SYS_open_by_handle_at,
                    mount.as_raw_fd(),
                    &mut handle as *mut Handle,
                    libc::O_RDONLY,
                )
            })?;
            drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
            Ok(())
        }
        "io_uring_open" => {
            use io_uring::{IoUring, opcode, types};
            let mut ring =
                IoUring::new(4).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap()))?;
            let path = c(arg(1));
            let entry = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
                .flags(libc::O_RDONLY | libc::O_CLOEXEC)
                .build();
            unsafe { ring.submission().push(&entry).expect("queue has room") };
            ring.submit_and_wait(1)
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap()))?;
            let result = ring.completion().next().expect("one completion").result();
            if result < 0 {
                return Err(Errno::from_raw(-result));
            }
            drop(unsafe { OwnedFd::from_raw_fd(result) });
            Ok(())
        }
        "o_path_reopen" => {
            let fd = open(arg(1), libc::O_PATH)?;
            open(&format!("/proc/self/fd/{}", fd.as_raw_fd()), libc::O_RDONLY).map(drop)
        }
        "exec_memfd" => {
            let bytes = fs::read(arg(1)).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap()))?;
            let fd = check(unsafe { libc::memfd_create(c("payload").as_ptr(), 0) }.into())? as i32;
            let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
            assert_eq!(written as usize, bytes.len());
            in_child(move || {
                let argv = [c("payload"), c("--version")];
                let argv: Vec<*const libc::c_char> = argv
                    .iter()
                    .map(|a| a.as_ptr())
                    .chain([std::ptr::null()])
                    .collect();
                let envp: [*const libc::c_char; 1] = [std::ptr::null()];
                unsafe {
                    libc::syscall(
                        libc::SYS_execveat,
                        fd,
                        c("").as_ptr(),
                        argv.as_ptr(),
                        envp.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    )
                };
                Errno::last()
            })
        }
        "exec_via_loader" => {
            let program = arg(1).to_owned();
            in_child(move || {
                let err = Command::new("/lib64/ld-linux-x86-64.so.2")
                    .arg(&program)
                    .exec();
                Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO))
            })
        }
        "unshare_bind" => {
            let (source, target) = (c(arg(1)), c(arg(2)));
            let with_user_ns = arg(3) == "user";
            in_child(move || unsafe {
                let flags = if with_user_ns {
                    libc::CLONE_NEWUSER | libc::CLONE_NEWNS
                } else {
                    libc::CLONE_NEWNS
                };
                if libc::unshare(flags) != 0 {
                    return Errno::last();
                }
                if with_user_ns {
                    // Map root to itself so the new namespace's root may use its files.
                    for (file, map) in [
                        ("/proc/self/setgroups", "deny"),
                        ("/proc/self/uid_map", "0 0 1"),
                        ("/proc/self/gid_map", "0 0 1"),
                    ] {
                        if fs::write(file, map).is_err() {
                            return Errno::last();
                        }
                    }
                }
                let (no_type, no_data) = (std::ptr::null(), std::ptr::null());
                let root = c("/");
                libc::mount(
                    no_type,
                    root.as_ptr(),
                    no_type,
                    libc::MS_REC | libc::MS_PRIVATE,
                    no_data,
                );
                if libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    no_type,
                    libc::MS_BIND,
                    no_data,
                ) != 0
                {
                    return Errno::last();
                }
                // The bind mount is in place: read the secret through the allowed name.
                match open(target.to_str().unwrap(), libc::O_RDONLY) {
                    Ok(_) => Errno::UnknownErrno, // 0: success
                    Err(e) => e,
                }
            })
        }
        // In a child: a successful chroot must not move the helper's own root.
        "chroot" => {
            let dir = c(arg(1));
            in_child(move || unsafe {
                if libc::chroot(dir.as_ptr()) != 0 {
                    Errno::last()
                } else {
                    Errno::UnknownErrno
                }
            })
        }
        "open_deep" => {
            let dir = descend(arg(1), arg(2), arg(3).parse().unwrap(), false)?;
            let fd = check(
                unsafe {
                    libc::openat(
                        dir.as_raw_fd(),
                        c(arg(4)).as_ptr(),
                        libc::O_RDONLY | libc::O_CLOEXEC,
                    )
                }
                .into(),
            )?;
            drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
            Ok(())
        }
        "ptrace_attach" => {
            let pid: libc::pid_t = arg(1).parse().unwrap();
            check(unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) })?;
            let mut status = 0;
            unsafe {
                libc::waitpid(pid, &mut status, libc::__WALL);
                libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
            }
            Ok(())
        }
        "bpf" => {
            // BPF_PROG_GET_NEXT_ID from 0: the first step of finding sandtrace's programs.
            let mut attr = [0u32; 4];
            check(unsafe {
                libc::syscall(libc::SYS_bpf, 11, attr.as_mut_ptr(), size_of_val(&attr))
            })
            .map(drop)
        }
        "make_deep" => {
            let dir = descend(arg(1), arg(2), arg(3).parse().unwrap(), true)?;
            let fd = check(
                unsafe {
                    libc::openat(
                        dir.as_raw_fd(),
                        c(arg(4)).as_ptr(),
                        libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
                        0o644,
                    )
                }
                .into(),
            )?;
            drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
            Ok(())
        }
        "setxattr" => {
            let value = arg(3).as_bytes();
            check(
                unsafe {
                    libc::setxattr(
                        c(arg(1)).as_ptr(),
                        c(arg(2)).as_ptr(),
                        value.as_ptr().cast(),
                        value.len(),
                        0,
                    )
                }
                .into(),
            )
            .map(drop)
        }
        "removexattr" => {
            check(unsafe { libc::removexattr(c(arg(1)).as_ptr(), c(arg(2)).as_ptr()) }.into())
                .map(drop)
        }
        "set_acl" => {
            let acl = access_acl(arg(2).parse().unwrap());
            let name = c("system.posix_acl_access");
            check(
                unsafe {
                    libc::setxattr(
                        c(arg(1)).as_ptr(),
                        name.as_ptr(),
                        acl.as_ptr().cast(),
                        acl.len(),
                        0,
                    )
                }
                .into(),
            )
            .map(drop)
        }
        "set_flags" => {
            let file = open(arg(1), libc::O_RDONLY)?;
            let mut flags: libc::c_long = 0;
            check(unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_GETFLAGS, &mut flags) }.into())?;
            flags |= arg(2).parse::<libc::c_long>().unwrap();
            check(unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_SETFLAGS, &flags) }.into())
                .map(drop)
        }
        "set_times" => {
            let secs: libc::time_t = arg(2).parse().unwrap();
            let times = [libc::timespec {
                tv_sec: secs,
                tv_nsec: 0,
            }; 2];
            check(
                unsafe { libc::utimensat(libc::AT_FDCWD, c(arg(1)).as_ptr(), times.as_ptr(), 0) }
                    .into(),
            )
            .map(drop)
        }
        "watch" => {
            let fd = check(unsafe { libc::inotify_init1(libc::IN_CLOEXEC) }.into())?;
            let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            check(
                unsafe {
                    libc::inotify_add_watch(fd.as_raw_fd(), c(arg(1)).as_ptr(), libc::IN_ALL_EVENTS)
                }
                .into(),
            )
            .map(drop)
        }
        "mknod_char" => {
            let (major, minor) = (arg(2).parse().unwrap(), arg(3).parse().unwrap());
            let dev = libc::makedev(major, minor);
            check(unsafe { libc::mknod(c(arg(1)).as_ptr(), libc::S_IFCHR | 0o600, dev) }.into())
                .map(drop)
        }
        "socket" => {
            let [family, kind, protocol] = [1, 2, 3].map(|i| arg(i).parse::<i32>().unwrap());
            let fd = check(unsafe { libc::socket(family, kind, protocol) }.into())?;
            drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
            Ok(())
        }
        other => panic!("unknown operation {other}"),
    }
}

const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;

/// The `system.posix_acl_access` value of a minimal ACL (owner, group, others) that amounts to
/// `mode`: setting it changes the file's mode without chmod.
fn access_acl(mode: u32) -> Vec<u8> {
    const VERSION: u32 = 2;
    const UNDEFINED_ID: u32 = u32::MAX;
    let mut acl = VERSION.to_le_bytes().to_vec();
    // ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER with the mode's three permission triplets.
    for (tag, shift) in [(0x01u16, 6), (0x04, 3), (0x20, 0)] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&(((mode >> shift) & 7) as u16).to_le_bytes());
        acl.extend_from_slice(&UNDEFINED_ID.to_le_bytes());
    }
    acl
}
