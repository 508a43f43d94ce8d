//! Abstract UNIX sockets (`@name`): no file, no path rule, and not seen by the IPv4/IPv6
//! programs; they live in the network namespace, which the session shares with the host. A
//! host service listening on one (an X server's `@/tmp/.X11-unix/X0`, container runtimes)
//! would be reachable from a session whose network is restricted.
//!
//! Landlock's scoping (ABI 6, Linux 6.12) closes that: CMD's process restricts itself, right
//! before `execve`, to a Landlock domain that handles no file or network access but scopes
//! abstract UNIX sockets, so it and everything it starts can connect and send only to abstract
//! sockets created inside the session. It works with and without BPF LSM.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};

use anyhow::{Result, bail};
use nix::errno::Errno;

/// `struct landlock_ruleset_attr` (ABI 6 and later).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

const LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1;

/// A Landlock ruleset that only scopes abstract UNIX sockets, ready for CMD's process.
#[derive(Debug)]
pub struct AbstractSocketScope {
    ruleset: OwnedFd,
}

impl AbstractSocketScope {
    /// Creates the ruleset. The kernel must offer Landlock scoping (ABI
    /// [`crate::plan::features::LANDLOCK_SCOPING_ABI`]); the session plan checks that.
    pub fn create() -> Result<Self> {
        let attr = RulesetAttr {
            handled_access_fs: 0,
            handled_access_net: 0,
            scoped: LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET,
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
            bail!(
                "creating the Landlock ruleset that scopes abstract UNIX sockets: {}",
                Errno::last()
            );
        }
        // SAFETY: a new descriptor that nothing else owns; Landlock rulesets are close-on-exec.
        let ruleset = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(Self { ruleset })
    }

    /// The descriptor to hand to [`restrict_self`] in CMD's process.
    pub fn fd(&self) -> RawFd {
        self.ruleset.as_raw_fd()
    }
}

/// Puts the calling thread (CMD's process before `execve`, single-threaded) into the ruleset's
/// domain. Async-signal-safe: two raw syscalls. The domain is inherited by every descendant and
/// cannot be left.
pub fn restrict_self(ruleset: RawFd) -> std::result::Result<(), Errno> {
    // SAFETY: plain syscalls on a descriptor prepared by `AbstractSocketScope::new`.
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
