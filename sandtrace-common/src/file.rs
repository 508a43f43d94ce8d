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
