//! x86_64 syscall names, numbers and coarse categories.
//!
//! Numbering comes from the `syscalls` crate's x86_64 table, whatever the build host: the
//! kernel programs and seccomp filters only target x86_64.
//!
//! A syscall's [`Category`] depends on the syscall alone, never on its arguments: `openat`
//! is `file_read` even with `O_WRONLY`, and `write` is `file_write` even on a socket. The
//! categories summarise what a traced program did; enforcement never relies on them.

use serde::Serialize;
use syscalls::x86_64::Sysno;

/// What kind of resource a syscall touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Opens, reads or inspects files and directories (also changes the working directory
    /// and watches files).
    FileRead,
    /// Writes, creates, removes, renames or changes the attributes of files; also changes
    /// the mount table or the root directory.
    FileWrite,
    /// Sockets.
    Network,
    /// Creates, runs, waits for or reaps processes and threads, or changes their identity,
    /// limits, scheduling or namespaces.
    Process,
    /// Maps, protects or advises memory, or reads/writes another process's memory.
    Memory,
    /// Pipes, futexes, System V and POSIX IPC, event fds.
    Ipc,
    /// Sends, waits for or handles signals.
    Signal,
    /// Clocks, timers and sleeps.
    Time,
    /// Everything else: generic file-descriptor operations (close, dup, fcntl, ioctl, poll),
    /// asynchronous I/O, BPF, keys, modules, system administration.
    Other,
}

impl Category {
    /// The snake_case name, as serialised.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FileRead => "file_read",
            Self::FileWrite => "file_write",
            Self::Network => "network",
            Self::Process => "process",
            Self::Memory => "memory",
            Self::Ipc => "ipc",
            Self::Signal => "signal",
            Self::Time => "time",
            Self::Other => "other",
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn sysno(nr: u32) -> Option<Sysno> {
    Sysno::new(usize::try_from(nr).ok()?)
}

/// Name of x86_64 syscall `nr`.
pub fn name(nr: u32) -> Option<&'static str> {
    sysno(nr).map(|s| s.name())
}

/// Number of the x86_64 syscall called `name` (as in `man 2`, e.g. `"openat"`).
pub fn number(name: &str) -> Option<u32> {
    name.parse::<Sysno>().ok().map(|s| s.id() as u32)
}

/// Every x86_64 syscall, by increasing number.
pub fn all() -> impl Iterator<Item = (u32, &'static str)> {
    // Walks the numbers rather than `Sysno::iter()`, which stops before the table's last entry.
    (Sysno::first().id()..=Sysno::last().id())
        .filter_map(|nr| sysno(nr as u32).map(|s| (nr as u32, s.name())))
}

/// The category of syscall `nr`; unknown numbers are [`Category::Other`].
pub fn category(nr: u32) -> Category {
    use Sysno::*;
    let Some(sysno) = sysno(nr) else {
        return Category::Other;
    };
    match sysno {
        read | pread64 | readv | preadv | preadv2 | open | openat | openat2 | open_tree
        | open_by_handle_at | name_to_handle_at | stat | fstat | lstat | newfstatat | statx
        | statfs | fstatfs | access | faccessat | faccessat2 | readlink | readlinkat | getdents
        | getdents64 | lseek | getcwd | chdir | fchdir | getxattr | lgetxattr | fgetxattr
        | getxattrat | listxattr | llistxattr | flistxattr | listxattrat | file_getattr
        | readahead | cachestat | inotify_init | inotify_init1 | inotify_add_watch
        | inotify_rm_watch | fanotify_init | fanotify_mark | statmount | listmount | ustat
        | sysfs | lookup_dcookie | uselib => Category::FileRead,

        write | pwrite64 | writev | pwritev | pwritev2 | creat | truncate | ftruncate
        | fallocate | unlink | unlinkat | rename | renameat | renameat2 | link | linkat
        | symlink | symlinkat | mkdir | mkdirat | rmdir | mknod | mknodat | chmod | fchmod
        | fchmodat | fchmodat2 | chown | fchown | lchown | fchownat | utime | utimes
        | futimesat | utimensat | setxattr | lsetxattr | fsetxattr | setxattrat | removexattr
        | lremovexattr | fremovexattr | removexattrat | file_setattr | fsync | fdatasync | sync
        | syncfs | sync_file_range | copy_file_range | sendfile | mount | umount2
        | mount_setattr | move_mount | fsopen | fsconfig | fsmount | fspick | open_tree_attr
        | pivot_root | chroot | quotactl | quotactl_fd | swapon | swapoff | acct => {
            Category::FileWrite
        }

        socket | connect | accept | accept4 | bind | listen | sendto | recvfrom | sendmsg
        | recvmsg | sendmmsg | recvmmsg | shutdown | getsockname | getpeername | setsockopt
        | getsockopt => Category::Network,

        fork
        | vfork
        | clone
        | clone3
        | execve
        | execveat
        | exit
        | exit_group
        | wait4
        | waitid
        | getpid
        | getppid
        | gettid
        | getuid
        | geteuid
        | getgid
        | getegid
        | setuid
        | setgid
        | setreuid
        | setregid
        | setresuid
        | getresuid
        | setresgid
        | getresgid
        | setfsuid
        | setfsgid
        | getgroups
        | setgroups
        | setsid
        | getsid
        | setpgid
        | getpgid
        | getpgrp
        | capget
        | capset
        | prctl
        | arch_prctl
        | personality
        | unshare
        | setns
        | ptrace
        | seccomp
        | set_tid_address
        | set_robust_list
        | get_robust_list
        | rseq
        | getrlimit
        | setrlimit
        | prlimit64
        | getrusage
        | times
        | getpriority
        | setpriority
        | ioprio_get
        | ioprio_set
        | sched_yield
        | sched_setparam
        | sched_getparam
        | sched_setscheduler
        | sched_getscheduler
        | sched_get_priority_max
        | sched_get_priority_min
        | sched_rr_get_interval
        | sched_setaffinity
        | sched_getaffinity
        | sched_setattr
        | sched_getattr
        | umask
        | kcmp
        | pidfd_open
        | pidfd_getfd
        | landlock_create_ruleset
        | landlock_add_rule
        | landlock_restrict_self
        | lsm_get_self_attr
        | lsm_set_self_attr
        | lsm_list_modules
        | modify_ldt
        | getcpu => Category::Process,

        mmap
        | munmap
        | mprotect
        | mremap
        | brk
        | msync
        | mincore
        | madvise
        | mlock
        | mlock2
        | munlock
        | mlockall
        | munlockall
        | remap_file_pages
        | mbind
        | set_mempolicy
        | get_mempolicy
        | set_mempolicy_home_node
        | migrate_pages
        | move_pages
        | membarrier
        | memfd_create
        | memfd_secret
        | pkey_mprotect
        | pkey_alloc
        | pkey_free
        | process_madvise
        | process_mrelease
        | process_vm_readv
        | process_vm_writev
        | userfaultfd
        | map_shadow_stack
        | mseal => Category::Memory,

        pipe | pipe2 | socketpair | splice | tee | vmsplice | futex | futex_waitv | futex_wake
        | futex_wait | futex_requeue | eventfd | eventfd2 | shmget | shmat | shmdt | shmctl
        | semget | semop | semtimedop | semctl | msgget | msgsnd | msgrcv | msgctl | mq_open
        | mq_unlink | mq_timedsend | mq_timedreceive | mq_notify | mq_getsetattr => Category::Ipc,

        kill | tkill | tgkill | pidfd_send_signal | rt_sigaction | rt_sigprocmask
        | rt_sigreturn | rt_sigpending | rt_sigtimedwait | rt_sigqueueinfo | rt_tgsigqueueinfo
        | rt_sigsuspend | sigaltstack | pause | signalfd | signalfd4 => Category::Signal,

        nanosleep | clock_nanosleep | clock_gettime | clock_settime | clock_getres
        | clock_adjtime | gettimeofday | settimeofday | time | adjtimex | alarm | getitimer
        | setitimer | timer_create | timer_settime | timer_gettime | timer_getoverrun
        | timer_delete | timerfd_create | timerfd_settime | timerfd_gettime => Category::Time,

        _ => Category::Other,
    }
}

/// Edit distance (insertions, deletions, substitutions) between `a` and `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The syscall name closest to the unknown `name`, for "did you mean" hints: within one
/// edit per three characters (at least one), ties going to the lower syscall number.
pub fn closest(name: &str) -> Option<&'static str> {
    let max_distance = (name.chars().count() / 3).max(1);
    all()
        .map(|(_, candidate)| (edit_distance(name, candidate), candidate))
        .filter(|&(distance, _)| distance <= max_distance)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for (nr, n) in [
            (0, "read"),
            (2, "open"),
            (59, "execve"),
            (257, "openat"),
            (435, "clone3"),
        ] {
            assert_eq!(name(nr), Some(n), "name of {nr}");
            assert_eq!(number(n), Some(nr), "number of {n}");
        }
        assert_eq!(name(400), None, "336..=423 is a hole in the x86_64 table");
        assert_eq!(
            name(0x4000_0000),
            None,
            "x32 numbers are not x86_64 syscalls"
        );
        assert_eq!(number("no_such_syscall"), None);
        assert_eq!(
            number("OPENAT"),
            None,
            "names are case-sensitive, as in the kernel"
        );
    }

    #[test]
    fn all_is_sorted_complete_and_consistent() {
        let table: Vec<_> = all().collect();
        assert!(
            table.windows(2).all(|w| w[0].0 < w[1].0),
            "not strictly increasing"
        );
        assert_eq!(table.first(), Some(&(0, "read")));
        assert_eq!(
            table.last().map(|&(nr, n)| (nr, n)),
            Some((Sysno::last().id() as u32, Sysno::last().name()))
        );
        assert_eq!(table.len(), Sysno::count());
        for (nr, n) in table {
            assert_eq!(number(n), Some(nr), "{n}");
        }
    }

    #[test]
    fn categories() {
        let expect = [
            ("openat", Category::FileRead),
            ("read", Category::FileRead),
            ("stat", Category::FileRead),
            ("write", Category::FileWrite),
            ("unlink", Category::FileWrite),
            ("rename", Category::FileWrite),
            ("mkdir", Category::FileWrite),
            ("chmod", Category::FileWrite),
            ("truncate", Category::FileWrite),
            ("mount", Category::FileWrite),
            ("socket", Category::Network),
            ("connect", Category::Network),
            ("sendto", Category::Network),
            ("clone", Category::Process),
            ("clone3", Category::Process),
            ("execve", Category::Process),
            ("exit_group", Category::Process),
            ("wait4", Category::Process),
            ("mmap", Category::Memory),
            ("brk", Category::Memory),
            ("pipe2", Category::Ipc),
            ("futex", Category::Ipc),
            ("kill", Category::Signal),
            ("rt_sigaction", Category::Signal),
            ("clock_nanosleep", Category::Time),
            ("ioctl", Category::Other),
            ("bpf", Category::Other),
        ];
        for (n, want) in expect {
            let nr = number(n).unwrap_or_else(|| panic!("{n} is an x86_64 syscall"));
            assert_eq!(category(nr), want, "category of {n}");
        }
        assert_eq!(category(100_000), Category::Other);
    }

    /// `sandtrace_common::syscall_args` is written with bare numbers (it is `no_std` and
    /// shared with the kernel programs); check them against the names, in both directions.
    #[test]
    fn path_arg_numbers_match_the_syscall_names() {
        use sandtrace_common::syscall_args::path_arg;
        let first_path_arg = [
            (
                0,
                &[
                    "open",
                    "stat",
                    "lstat",
                    "access",
                    "execve",
                    "truncate",
                    "chdir",
                    "rename",
                    "mkdir",
                    "rmdir",
                    "creat",
                    "link",
                    "unlink",
                    "readlink",
                    "chmod",
                    "chown",
                    "lchown",
                    "utime",
                    "mknod",
                    "uselib",
                    "statfs",
                    "chroot",
                    "setxattr",
                    "lsetxattr",
                    "getxattr",
                    "lgetxattr",
                    "listxattr",
                    "llistxattr",
                    "removexattr",
                    "lremovexattr",
                    "utimes",
                    "umount2",
                    "swapon",
                    "swapoff",
                    "acct",
                    "pivot_root",
                ][..],
            ),
            (
                1,
                &[
                    "symlink",
                    "mount",
                    "quotactl",
                    "inotify_add_watch",
                    "openat",
                    "mkdirat",
                    "mknodat",
                    "fchownat",
                    "futimesat",
                    "newfstatat",
                    "unlinkat",
                    "renameat",
                    "linkat",
                    "readlinkat",
                    "fchmodat",
                    "faccessat",
                    "utimensat",
                    "name_to_handle_at",
                    "execveat",
                    "renameat2",
                    "statx",
                    "open_tree",
                    "move_mount",
                    "fspick",
                    "openat2",
                    "faccessat2",
                    "mount_setattr",
                    "fchmodat2",
                    "setxattrat",
                    "getxattrat",
                    "listxattrat",
                    "removexattrat",
                    "open_tree_attr",
                    "file_getattr",
                    "file_setattr",
                ][..],
            ),
            (2, &["symlinkat"][..]),
            (4, &["fanotify_mark"][..]),
        ];
        let mut expected = std::collections::HashMap::new();
        for (index, names) in first_path_arg {
            for n in names {
                let nr = number(n).unwrap_or_else(|| panic!("{n} is an x86_64 syscall"));
                assert_eq!(path_arg(nr), Some(index), "path argument of {n} ({nr})");
                expected.insert(nr, index);
            }
        }
        for (nr, n) in all() {
            if let Some(index) = path_arg(nr) {
                assert_eq!(
                    expected.get(&nr),
                    Some(&index),
                    "{n} ({nr}) has path argument {index}"
                );
            }
        }
    }

    #[test]
    fn category_serialises_as_snake_case() {
        for c in [
            Category::FileRead,
            Category::FileWrite,
            Category::Ipc,
            Category::Other,
        ] {
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        assert_eq!(Category::FileRead.as_str(), "file_read");
        assert_eq!(Category::FileWrite.to_string(), "file_write");
    }

    #[test]
    fn closest_suggests_near_misses_only() {
        assert_eq!(closest("mout"), Some("mount"));
        assert_eq!(closest("opnat"), Some("openat"));
        assert_eq!(closest("exceve"), Some("execve"));
        assert_eq!(closest("unlnk"), Some("unlink"));
        assert_eq!(closest("zzzzzzzzzz"), None);
        assert_eq!(closest(""), None);
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("mount", "mount"), 0);
    }
}
