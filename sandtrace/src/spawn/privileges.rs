//! CMD's user and capabilities: what CMD's process applies to itself after joining the
//! cgroups (which needs root) and before Landlock and seccomp (which need no_new_privs and
//! stay last before execve).
//!
//! [`DropPrivileges::new`] runs in the loader; [`DropPrivileges::apply`] runs in CMD's
//! process and is async-signal-safe like the rest of `spawn/init.rs`: raw syscalls on the
//! prepared ids, masks and group list.
//!
//! The order matters:
//! 1. inheritable = the kept capabilities, then the ambient set = exactly them (raising an
//!    ambient capability needs it permitted and inheritable);
//! 2. securebits set and locked (needs CAP_SETPCAP): NOROOT (uid 0 gets no capabilities from
//!    execve), NO_SETUID_FIXUP (step 4's uid change leaves the capability sets alone, so step
//!    5 decides them), KEEP_CAPS off, NO_CAP_AMBIENT_RAISE;
//! 3. the bounding set reduced to the kept capabilities (needs CAP_SETPCAP);
//! 4. groups, gid, uid (needs CAP_SETGID/CAP_SETUID);
//! 5. effective = permitted = inheritable = the kept capabilities: everything else is gone,
//!    for good (the bounding set and the locks keep it from coming back);
//! 6. no_new_privs: no set-user-ID program or file capability can give any back.
//!
//! After execve, a process with an ambient set gets it as permitted and effective, whatever
//! its uid: that is how the kept capabilities survive for a non-root user.

use super::{SetupStage, errno};

/// A raw errno value.
type Errno = i32;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// capabilities(7) "securebits": every flag and its lock but KEEP_CAPS, whose lock keeps it off.
const SECUREBITS_LOCKED: libc::c_ulong = (1 << 0) // NOROOT
    | (1 << 1) // NOROOT_LOCKED
    | (1 << 2) // NO_SETUID_FIXUP
    | (1 << 3) // NO_SETUID_FIXUP_LOCKED
    | (1 << 5) // KEEP_CAPS_LOCKED (KEEP_CAPS, bit 4, off)
    | (1 << 6) // NO_CAP_AMBIENT_RAISE
    | (1 << 7); // NO_CAP_AMBIENT_RAISE_LOCKED
/// Capability numbers fit in two 32-bit words (capset's version 3 layout).
const MAX_CAPABILITIES: u32 = 64;

/// The identity and capabilities CMD's process takes, prepared before the clone.
#[derive(Debug, Clone)]
pub struct DropPrivileges {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
    /// Bit N: capability N is kept.
    keep: u64,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

impl DropPrivileges {
    pub fn new(uid: u32, gid: u32, groups: &[u32], keep: u64) -> Self {
        Self {
            uid,
            gid,
            groups: groups.to_vec(),
            keep,
        }
    }

    /// Takes the identity and drops every capability but the kept ones, in the module's
    /// order. The error names the step that failed.
    pub(super) fn apply(&self) -> Result<(), (SetupStage, Errno)> {
        let mut sets = capget().map_err(|e| (SetupStage::Capabilities, e))?;
        for (i, data) in sets.iter_mut().enumerate() {
            data.inheritable = word(self.keep, i) & data.permitted;
        }
        capset(&sets).map_err(|e| (SetupStage::AmbientCapabilities, e))?;
        self.set_ambient()
            .map_err(|e| (SetupStage::AmbientCapabilities, e))?;
        // SAFETY: prctl with integer arguments only.
        check(unsafe { libc::prctl(libc::PR_SET_SECUREBITS, SECUREBITS_LOCKED, 0, 0, 0) })
            .map_err(|e| (SetupStage::Securebits, e))?;
        self.reduce_bounding_set()
            .map_err(|e| (SetupStage::BoundingSet, e))?;
        self.switch_user()
            .map_err(|e| (SetupStage::SwitchUser, e))?;
        let kept: [CapData; 2] = std::array::from_fn(|i| CapData {
            effective: word(self.keep, i),
            permitted: word(self.keep, i),
            inheritable: word(self.keep, i),
        });
        capset(&kept).map_err(|e| (SetupStage::Capabilities, e))?;
        // SAFETY: prctl with integer arguments only.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
            .map_err(|e| (SetupStage::NoNewPrivs, e))
    }

    /// The ambient set: exactly the kept capabilities.
    fn set_ambient(&self) -> Result<(), Errno> {
        // SAFETY: prctl with integer arguments only.
        check(unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        })?;
        for cap in kept(self.keep) {
            // SAFETY: prctl with integer arguments only.
            check(unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    libc::c_ulong::from(cap),
                    0,
                    0,
                )
            })?;
        }
        Ok(())
    }

    /// Drops every capability but the kept ones from the bounding set, up to the last one
    /// this kernel knows (beyond it, PR_CAPBSET_DROP fails with EINVAL).
    fn reduce_bounding_set(&self) -> Result<(), Errno> {
        for cap in 0..MAX_CAPABILITIES {
            if self.keep & (1 << cap) != 0 {
                continue;
            }
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } != 0
            {
                let e = errno();
                if e == libc::EINVAL {
                    return Ok(());
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Supplementary groups, then gid, then uid: each needs the capability the next one
    /// removes the use of. Raw syscalls, not libc's wrappers: those broadcast the change to
    /// every thread libc believes exists (and take its locks), which in this copy of the
    /// multi-threaded loader would wait forever.
    fn switch_user(&self) -> Result<(), Errno> {
        // SAFETY: the pointer and length describe `groups`, prepared before the clone.
        syscall_ok(unsafe {
            libc::syscall(libc::SYS_setgroups, self.groups.len(), self.groups.as_ptr())
        })?;
        // SAFETY: setresgid and setresuid take integers only.
        syscall_ok(unsafe { libc::syscall(libc::SYS_setresgid, self.gid, self.gid, self.gid) })?;
        // SAFETY: as above.
        syscall_ok(unsafe { libc::syscall(libc::SYS_setresuid, self.uid, self.uid, self.uid) })
    }
}

/// `Ok` for a raw syscall that returned 0, else the errno.
fn syscall_ok(ret: libc::c_long) -> Result<(), Errno> {
    if ret == 0 { Ok(()) } else { Err(errno()) }
}

/// The 32 bits of `mask` capset's data word `i` holds.
fn word(mask: u64, i: usize) -> u32 {
    (mask >> (32 * i)) as u32
}

/// The capability numbers set in `mask`.
fn kept(mask: u64) -> impl Iterator<Item = u32> {
    (0..MAX_CAPABILITIES).filter(move |cap| mask & (1 << cap) != 0)
}

fn capget() -> Result<[CapData; 2], Errno> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: version 3 takes a header and two data structs, both on this stack frame.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    if ret != 0 {
        return Err(errno());
    }
    Ok(data)
}

fn capset(data: &[CapData; 2]) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: version 3 takes a header and two data structs, both valid for the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
    if ret != 0 {
        return Err(errno());
    }
    Ok(())
}

/// `Ok` for a syscall that returned 0, else the errno.
fn check(ret: libc::c_int) -> Result<(), Errno> {
    if ret == 0 { Ok(()) } else { Err(errno()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_split_into_capset_words() {
        let mask = 1 << 10 | 1 << 40;
        assert_eq!((word(mask, 0), word(mask, 1)), (1 << 10, 1 << 8));
        assert_eq!(kept(mask).collect::<Vec<_>>(), vec![10, 40]);
    }
}
