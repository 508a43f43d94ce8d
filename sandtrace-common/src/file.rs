//! File-system and exec decisions of the LSM programs, as reported in [`crate::event::FileEvent`].

use crate::policy::MAX_PATH_LEN;

/// Room for the longest path the policy decides on, plus `/name` appended by the
/// directory-entry hooks, plus the NUL.
pub const PATH_BUF_LEN: usize = MAX_PATH_LEN + 256 + 1;
/// Path bytes carried by a file event.
pub const EVENT_PATH_CAP: usize = MAX_PATH_LEN + 1;
/// Deepest directory nesting walked when a path is rebuilt from directory entries (every
/// hook but `file_open` and `bprm_check_security`). Deeper paths are denied.
pub const MAX_WALK_DEPTH: usize = 256;
/// Mount points crossed at most while rebuilding a path.
pub const MAX_WALK_MOUNTS: usize = 32;
/// Mounts of one superblock (in every namespace) looked through to find those of the
/// session's mount namespace; a superblock with more is denied.
pub const MAX_SB_MOUNTS: usize = 256;
/// Mounts of the session's namespace that may show one superblock; more are denied.
pub const MAX_SESSION_MOUNTS: usize = 8;

/// The operation an LSM program decided on.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileOp {
    Open = 1,
    Exec = 2,
    Truncate = 3,
    Create = 4,
    Unlink = 5,
    Mkdir = 6,
    Rmdir = 7,
    Mknod = 8,
    Symlink = 9,
    Link = 10,
    LinkSource = 11,
    RenameFrom = 12,
    RenameTo = 13,
    Chmod = 14,
    Chown = 15,
    /// Connecting or sending to a UNIX socket through its file (a pathname socket).
    Connect = 16,
    /// ptrace, /proc/PID/mem, process_vm_*, pidfd_getfd of another process.
    Ptrace = 17,
    /// Creating a character device node (refused whatever the path).
    MknodChar = 18,
    /// Creating a block device node (refused whatever the path).
    MknodBlock = 19,
    /// The kernel asked to load a module for the session; the event's path is the module's
    /// name (`net-pf-5`, `binfmt-0000`), not a file.
    ModuleRequest = 20,
    /// An inotify, fanotify or dnotify watch on the path.
    Watch = 21,
    /// Inode flags (`chattr`: FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR).
    SetFlags = 22,
    SetXattr = 23,
    RemoveXattr = 24,
    /// A POSIX ACL (Linux 6.2+; before, ACLs are set as xattrs).
    SetAcl = 25,
    RemoveAcl = 26,
    /// Access or modification times (utimensat and the like).
    SetTimes = 27,
}

impl FileOp {
    pub fn from_u32(v: u32) -> Option<Self> {
        use FileOp::*;
        Some(match v {
            1 => Open,
            2 => Exec,
            3 => Truncate,
            4 => Create,
            5 => Unlink,
            6 => Mkdir,
            7 => Rmdir,
            8 => Mknod,
            9 => Symlink,
            10 => Link,
            11 => LinkSource,
            12 => RenameFrom,
            13 => RenameTo,
            14 => Chmod,
            15 => Chown,
            16 => Connect,
            17 => Ptrace,
            18 => MknodChar,
            19 => MknodBlock,
            20 => ModuleRequest,
            21 => Watch,
            22 => SetFlags,
            23 => SetXattr,
            24 => RemoveXattr,
            25 => SetAcl,
            26 => RemoveAcl,
            27 => SetTimes,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        use FileOp::*;
        match self {
            Open => "open",
            Exec => "exec",
            Truncate => "truncate",
            Create => "create",
            Unlink => "unlink",
            Mkdir => "mkdir",
            Rmdir => "rmdir",
            Mknod => "mknod",
            Symlink => "symlink",
            Link => "link",
            LinkSource => "link_source",
            RenameFrom => "rename_from",
            RenameTo => "rename_to",
            Chmod => "chmod",
            Chown => "chown",
            Connect => "connect",
            Ptrace => "ptrace",
            MknodChar => "mknod_char",
            MknodBlock => "mknod_block",
            ModuleRequest => "module_request",
            Watch => "watch",
            SetFlags => "set_flags",
            SetXattr => "setxattr",
            RemoveXattr => "removexattr",
            SetAcl => "set_acl",
            RemoveAcl => "remove_acl",
            SetTimes => "set_times",
        }
    }
}

/// Why an operation was allowed or denied.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An allow rule of the needed kind covers the path and no deny rule does.
    Allowed = 0,
    /// CMD's own exec, or its `#!`/`env` interpreter chain: the user's explicit choice.
    AllowedLaunch = 1,
    /// A pipe, socket or anonymous inode (`pipe:[..]`, `socket:[..]`, `anon_inode:..`),
    /// reopened through a descriptor the process already holds: no file-system path.
    AllowedPseudo = 2,
    /// A `deny` rule covers the path.
    DeniedRule = 10,
    /// No allow rule of the needed kind covers the path.
    DeniedUnlisted = 11,
    /// The path is longer than the policy can decide on (`MAX_PATH_LEN`), or deeper than
    /// `MAX_WALK_DEPTH` where it had to be rebuilt.
    DeniedTooLong = 12,
    /// The kernel could not produce the path.
    DeniedUnresolved = 13,
    /// Renaming or linking would move a path that a deny rule covers, or could cover below it.
    DeniedMovesDenied = 14,
    /// Running the dynamic loader directly would map a program without an exec check.
    DeniedDynamicLoader = 15,
    /// The policy tables are missing or malformed (fail closed).
    DeniedNoPolicy = 16,
    /// Would reach outside the session whatever the policy says: writing a cgroup file (to
    /// move a process out of the session's cgroup), or tracing the session's init.
    DeniedSessionEscape = 17,
    /// Creating a character or block device node: never allowed in an enforcing session
    /// (opening it would reach the device whatever path it was made at).
    DeniedDeviceNode = 18,
    /// An object known only by its directory entry (xattrs, ACLs, times) that no mount of the
    /// session's mount namespace shows, or that too many mounts show to decide.
    DeniedNoMount = 19,
    /// A fanotify mark on a whole mount or file system: it would report on paths the policy
    /// denies.
    DeniedWideWatch = 20,
    /// The task is in a regime (`[[after_exec]]`) that narrows the needed kind, and no rule of
    /// the regime's own covers the path (`rule_kind` names the regime and the kind).
    DeniedRegime = 21,
    /// Tracing, or reading or writing the memory of, a process that is not in every regime the
    /// acting task is in (ptrace, /proc/PID/mem and environ, process_vm_*, pidfd_getfd): a
    /// regime's task may not reach into the less confined processes of the session.
    /// `rule_kind`'s high byte names the regime (index + 1, as for `DeniedRegime`); its low byte
    /// is `0xff` (no kind), and `rule_index` is `NO_RULE`.
    DeniedRegimeTarget = 22,
    /// Landlock held the filesystem rules (no BPF LSM) and the call failed with EACCES; a `deny`
    /// rule covers the path. Made by the loader from the failed call: Landlock reports nothing.
    RefusedRule = 23,
    /// As [`Verdict::RefusedRule`], and no allow rule of the needed kind covers the path.
    RefusedUnlisted = 24,
    /// As [`Verdict::RefusedRule`], but the path could not be placed (relative to a directory
    /// of a process that had already ended, or cut at `SYSCALL_PATH_CAP`): Landlock, or the
    /// file's permissions, refused it.
    RefusedUnplaced = 25,
}

impl Verdict {
    pub fn from_u16(v: u16) -> Option<Self> {
        use Verdict::*;
        Some(match v {
            0 => Allowed,
            1 => AllowedLaunch,
            2 => AllowedPseudo,
            10 => DeniedRule,
            11 => DeniedUnlisted,
            12 => DeniedTooLong,
            13 => DeniedUnresolved,
            14 => DeniedMovesDenied,
            15 => DeniedDynamicLoader,
            16 => DeniedNoPolicy,
            17 => DeniedSessionEscape,
            18 => DeniedDeviceNode,
            19 => DeniedNoMount,
            20 => DeniedWideWatch,
            21 => DeniedRegime,
            22 => DeniedRegimeTarget,
            23 => RefusedRule,
            24 => RefusedUnlisted,
            25 => RefusedUnplaced,
            _ => return None,
        })
    }

    pub fn is_denied(self) -> bool {
        self as u16 >= 10
    }

    pub fn as_str(self) -> &'static str {
        use Verdict::*;
        match self {
            Allowed => "allowed",
            AllowedLaunch => "allowed: the launched command",
            AllowedPseudo => "allowed: a pipe, socket or anonymous inode",
            DeniedRule => "denied by rule",
            DeniedUnlisted => "denied: no allow rule covers it",
            DeniedTooLong => "denied: path too long or too deep",
            DeniedUnresolved => "denied: path could not be resolved",
            DeniedMovesDenied => "denied: would move a denied path",
            DeniedDynamicLoader => "denied: running the dynamic loader directly",
            DeniedNoPolicy => "denied: no policy loaded",
            DeniedSessionEscape => "denied: would reach outside the session",
            DeniedDeviceNode => "denied: device nodes cannot be created",
            DeniedNoMount => "denied: no mount of the session shows the file, or too many do",
            DeniedWideWatch => "denied: a watch on a whole mount or file system",
            DeniedRegime => "denied: the regime's own rules do not cover it",
            DeniedRegimeTarget => "denied: the target process is not in the regime",
            RefusedRule => "denied by rule; Landlock refused the call",
            RefusedUnlisted => "denied: no allow rule covers it; Landlock refused the call",
            RefusedUnplaced => {
                "refused with EACCES, the path not placed: Landlock or the file's permissions"
            }
        }
    }
}

/// Longest path (without the NUL) of a file the exec policy names exactly: the launch chain
/// and the dynamic loaders.
pub const EXACT_PATH_MAX: usize = 255;

/// A path as an exact-match map key: the bytes, zero-padded. Paths, not inode numbers,
/// because overlay and network file systems report other inode identities to `stat` than the
/// kernel objects carry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PathKey {
    pub bytes: [u8; EXACT_PATH_MAX + 1],
}

impl PathKey {
    /// `None` for paths longer than [`EXACT_PATH_MAX`].
    pub fn new(path: &[u8]) -> Option<Self> {
        if path.len() > EXACT_PATH_MAX {
            return None;
        }
        let mut bytes = [0; EXACT_PATH_MAX + 1];
        bytes[..path.len()].copy_from_slice(path);
        Some(Self { bytes })
    }
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]` and made of integers (and arrays of them) only: every bit pattern
// is a valid value, and the kernel side reads the same layout.
unsafe impl aya::Pod for PathKey {}
