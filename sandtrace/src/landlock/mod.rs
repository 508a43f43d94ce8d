//! Landlock: the filesystem rules on kernels without BPF LSM, and the scoping of abstract UNIX
//! sockets in every mode.
//!
//! CMD's process restricts itself, right before `execve`, to one Landlock domain that every
//! process it starts inherits and none can leave. The domain may:
//! - **handle filesystem rights** (`--allow-degraded` where BPF LSM is missing): only what the
//!   ruleset grants is allowed. Landlock only grants, on whole trees, so [`carve`] computes the
//!   grants from the policy's automaton and the files that exist at start: every allowed tree
//!   minus the denied paths in it (see `carve` for what that cannot cover);
//! - **scope abstract UNIX sockets** (ABI 6, Linux 6.12) while the network is restricted.
//!   Abstract sockets (`@name`) have no file and no path rule and are not seen by the IPv4/IPv6
//!   programs; they live in the network namespace, which the session shares with the host, so
//!   a host service listening on one (an X server's `@/tmp/.X11-unix/X0`, container runtimes)
//!   would be reachable. Scoped, CMD can connect and send only to abstract sockets created
//!   inside the session. This works with and without BPF LSM.

pub mod carve;
pub mod refusals;

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd as _, OwnedFd, RawFd};

use anyhow::{Result, bail};
use nix::errno::Errno;

/// `LANDLOCK_ACCESS_FS_*`.
pub mod access {
    pub const EXECUTE: u64 = 1 << 0;
    pub const WRITE_FILE: u64 = 1 << 1;
    pub const READ_FILE: u64 = 1 << 2;
    pub const READ_DIR: u64 = 1 << 3;
    pub const REMOVE_DIR: u64 = 1 << 4;
    pub const REMOVE_FILE: u64 = 1 << 5;
    pub const MAKE_CHAR: u64 = 1 << 6;
    pub const MAKE_DIR: u64 = 1 << 7;
    pub const MAKE_REG: u64 = 1 << 8;
    pub const MAKE_SOCK: u64 = 1 << 9;
    pub const MAKE_FIFO: u64 = 1 << 10;
    pub const MAKE_BLOCK: u64 = 1 << 11;
    pub const MAKE_SYM: u64 = 1 << 12;
    /// ABI 2: renaming and linking across directories.
    pub const REFER: u64 = 1 << 13;
    /// ABI 3: truncate(2), ftruncate(2) and `O_TRUNC`.
    pub const TRUNCATE: u64 = 1 << 14;

    /// The rights that apply to a file that is not a directory.
    pub const FILE: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE;
    /// Creating entries (never device nodes: those are refused whatever the path).
    pub const MAKE: u64 = MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO | MAKE_SYM;
}

/// The first ABI with [`access::REFER`]: before it, files never move between directories.
pub const REFER_ABI: u32 = 2;
/// The first ABI with [`access::TRUNCATE`]: before it, truncation is not decided.
pub const TRUNCATE_ABI: u32 = 3;

/// The filesystem rights a ruleset handles on a kernel of Landlock ABI `abi`: every right of
/// the policy's kinds the ABI has. `IOCTL_DEV` (ABI 5) is not handled: the path rules do not
/// decide ioctls (the seccomp baseline refuses the dangerous ones).
pub fn handled_fs(abi: u32) -> u64 {
    use access::*;
    let mut handled = EXECUTE
        | WRITE_FILE
        | READ_FILE
        | READ_DIR
        | REMOVE_DIR
        | REMOVE_FILE
        | MAKE
        | MAKE_CHAR
        | MAKE_BLOCK;
    if abi >= REFER_ABI {
        handled |= REFER;
    }
    if abi >= TRUNCATE_ABI {
        handled |= TRUNCATE;
    }
    handled
}

/// `struct landlock_ruleset_attr` (ABI 6 and later; older kernels accept it while the fields
/// they lack are zero).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the UAPI).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

const LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1;
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;

/// A Landlock ruleset made by the loader and filled and entered by CMD's process.
#[derive(Debug)]
pub struct Ruleset {
    fd: OwnedFd,
}

impl Ruleset {
    /// A ruleset handling `handled_fs` (0: no filesystem rule) and, with
    /// `scope_abstract_sockets`, scoping abstract UNIX sockets; the session plan checks that
    /// the kernel's ABI offers both.
    pub fn create(handled_fs: u64, scope_abstract_sockets: bool) -> Result<Self> {
        let attr = RulesetAttr {
            handled_access_fs: handled_fs,
            handled_access_net: 0,
            scoped: if scope_abstract_sockets {
                LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
            } else {
                0
            },
        };
        // SAFETY: `attr` is a valid ruleset attribute of the size given.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &raw const attr,
                size_of::<RulesetAttr>(),
                0u32,
            )
        };
        if fd < 0 {
            bail!("creating the session's Landlock ruleset: {}", Errno::last());
        }
        // SAFETY: a new descriptor that nothing else owns; Landlock rulesets are close-on-exec.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(Self { fd })
    }

    /// The descriptor CMD's process fills ([`add_grants`]) and enters ([`restrict_self`]).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The session's Landlock domain as the loader prepares it: the ruleset, and the grants CMD's
/// process adds to it before it restricts itself.
#[derive(Debug)]
pub struct SessionDomain {
    pub ruleset: Ruleset,
    pub grants: Vec<PathGrant>,
    /// The directory entries the carve looked at.
    pub walked: u64,
}

impl SessionDomain {
    /// The domain of a session: the filesystem rules of `files` (carved now, plus exec and
    /// read on `launch`, the files CMD's exec needs: its launch chain and the dynamic loaders)
    /// and, with `scope_abstract_sockets`, the scoping. `None` when neither applies.
    pub fn prepare(
        files: Option<&crate::plan::LandlockFiles>,
        launch: &[std::path::PathBuf],
        scope_abstract_sockets: bool,
    ) -> Result<Option<Self>> {
        use std::os::unix::ffi::OsStrExt as _;
        if files.is_none() && !scope_abstract_sockets {
            return Ok(None);
        }
        let handled = files.map_or(0, |f| f.handled);
        let (mut grants, mut walked) = (Vec::new(), 0);
        if let Some(files) = files {
            let carved = carve::carve(&files.paths, handled, carve::Limits::DEFAULT)?;
            (grants, walked) = (carved.grants, carved.entries);
            let exec = (access::EXECUTE | access::READ_FILE) & handled;
            grants.extend(launch.iter().filter_map(|path| {
                Some(PathGrant {
                    path: CString::new(path.as_os_str().as_bytes()).ok()?,
                    access: exec,
                })
            }));
        }
        Ok(Some(Self {
            ruleset: Ruleset::create(handled, scope_abstract_sockets)?,
            grants,
            walked,
        }))
    }
}

/// One grant as CMD's process adds it: the rights `access` on `path` and everything beneath.
/// A path under `/proc/self` names the directory of CMD's process in the session's `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGrant {
    pub path: CString,
    pub access: u64,
}

/// In CMD's process (single-threaded, before `execve`; async-signal-safe: raw syscalls only):
/// adds every grant to `ruleset`. A grant's path is opened without following symlinks, so a
/// directory replaced by a link since the walk is not granted; a path that no longer exists,
/// or that this process cannot reach, is skipped: both grant less, never more.
pub fn add_grants(ruleset: RawFd, grants: &[PathGrant]) -> Result<(), Errno> {
    for grant in grants {
        let Some(fd) = open_beneath(&grant.path)? else {
            continue;
        };
        // SAFETY: all-zero is a valid `stat`, filled by fstat on a descriptor this owns.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open; `st` is a valid buffer.
        let ok = unsafe { libc::fstat(fd.as_raw_fd(), &raw mut st) } == 0;
        let mut allowed = grant.access;
        if !ok || st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            // The walk saw a directory that is a file now, or a file grant: file rights only.
            allowed &= access::FILE;
        }
        if allowed == 0 {
            continue;
        }
        let attr = PathBeneathAttr {
            allowed_access: allowed,
            parent_fd: fd.as_raw_fd(),
        };
        // SAFETY: `attr` is a valid rule attribute naming an open descriptor.
        let added = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset,
                LANDLOCK_RULE_PATH_BENEATH,
                &raw const attr,
                0u32,
            )
        };
        if added != 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Opens `path` with `O_PATH`, refusing symlinks on the way; `/proc/self` itself (a link the
/// kernel makes to the caller's own directory) is followed. `None` where the path is gone or
/// was replaced by a link.
fn open_beneath(path: &CString) -> Result<Option<OwnedFd>, Errno> {
    let bytes = path.as_bytes();
    let (dir, rest): (Option<OwnedFd>, &std::ffi::CStr) = match bytes.strip_prefix(b"/proc/self") {
        Some(tail) if tail.is_empty() || tail.starts_with(b"/") => {
            // SAFETY: a static C string; the descriptor returned is owned below.
            let fd = unsafe {
                libc::open(
                    c"/proc/self".as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return skip_or_fail(Errno::last());
            }
            // SAFETY: a new descriptor of this process's own.
            let dir = unsafe { OwnedFd::from_raw_fd(fd) };
            let offset = b"/proc/self".len() + usize::from(!tail.is_empty());
            let rest = &path.as_bytes_with_nul()[offset..];
            let rest = std::ffi::CStr::from_bytes_with_nul(rest).expect("a suffix of a C string");
            if rest.is_empty() {
                return Ok(Some(dir));
            }
            (Some(dir), rest)
        }
        _ => (None, path.as_c_str()),
    };
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_NO_SYMLINKS,
    };
    let at = dir.as_ref().map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: `rest` is a C string, `how` a valid open_how of the size given.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            at,
            rest.as_ptr(),
            &raw const how,
            size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return skip_or_fail(Errno::last());
    }
    // SAFETY: a new descriptor that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
}

/// `struct open_how` (libc's cannot be built: it is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// The errors of a path that changed since the walk (or that CMD's user cannot reach) skip
/// the grant; others end the setup.
fn skip_or_fail(errno: Errno) -> Result<Option<OwnedFd>, Errno> {
    match errno {
        Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::EACCES | Errno::EXDEV => Ok(None),
        other => Err(other),
    }
}

/// Puts the calling thread (CMD's process before `execve`, single-threaded) into the ruleset's
/// domain. Async-signal-safe: two raw syscalls. The domain is inherited by every descendant and
/// cannot be left.
pub fn restrict_self(ruleset: RawFd) -> Result<(), Errno> {
    // SAFETY: plain syscalls on a descriptor prepared by `Ruleset::create`.
    unsafe {
        // Landlock needs no_new_privs (or CAP_SYS_ADMIN); the seccomp filter sets it anyway.
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(Errno::last());
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) != 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}
