//! Linux capabilities by name, for `[process] capabilities`: the few a policy may let CMD keep
//! (every other one is removed before CMD starts), with what each allows.

use std::fmt;

use super::diagnostic::Problem;
use super::suggest::closest;

/// One capability, by its number in `<linux/capability.h>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capability(u8);

/// `(name, what holding it allows)`, indexed by capability number (capabilities(7)).
const CAPABILITIES: [(&str, &str); 41] = [
    ("CAP_CHOWN", "change the owner and group of any file"),
    (
        "CAP_DAC_OVERRIDE",
        "read, write and execute any file whatever its permissions",
    ),
    (
        "CAP_DAC_READ_SEARCH",
        "read any file and list any directory whatever their permissions, and open files by handle",
    ),
    (
        "CAP_FOWNER",
        "act as the owner of any file (chmod, timestamps, ACLs, extended attributes)",
    ),
    (
        "CAP_FSETID",
        "keep set-user-ID and set-group-ID bits when changing files",
    ),
    ("CAP_KILL", "send signals to processes of any user"),
    ("CAP_SETGID", "take any group ID and supplementary groups"),
    ("CAP_SETUID", "take any user ID, root's included"),
    (
        "CAP_SETPCAP",
        "change the capability bounding set and securebits, and grant capabilities",
    ),
    (
        "CAP_LINUX_IMMUTABLE",
        "set and clear the immutable and append-only file flags",
    ),
    ("CAP_NET_BIND_SERVICE", "bind to ports below 1024"),
    ("CAP_NET_BROADCAST", "broadcast and listen to multicast"),
    (
        "CAP_NET_ADMIN",
        "configure the host's network: interfaces, routes, firewall rules",
    ),
    (
        "CAP_NET_RAW",
        "open raw and packet sockets: forge any packet, see all traffic",
    ),
    ("CAP_IPC_LOCK", "lock memory (mlock, huge pages)"),
    (
        "CAP_IPC_OWNER",
        "bypass the permissions of System V IPC objects",
    ),
    ("CAP_SYS_MODULE", "load and unload kernel modules"),
    (
        "CAP_SYS_RAWIO",
        "raw I/O: I/O ports, /dev/mem, raw disk access",
    ),
    ("CAP_SYS_CHROOT", "chroot and change mount namespaces"),
    (
        "CAP_SYS_PTRACE",
        "trace and read the memory of any process it can see",
    ),
    ("CAP_SYS_PACCT", "turn process accounting on and off"),
    (
        "CAP_SYS_ADMIN",
        "nearly everything root can: mount, namespaces, hostname, keyrings, BPF, swap",
    ),
    ("CAP_SYS_BOOT", "reboot and load a new kernel"),
    (
        "CAP_SYS_NICE",
        "raise priorities and change the scheduling of any process",
    ),
    (
        "CAP_SYS_RESOURCE",
        "exceed resource limits, quotas and reserved disk space",
    ),
    ("CAP_SYS_TIME", "set the system clock"),
    ("CAP_SYS_TTY_CONFIG", "configure and hang up terminals"),
    ("CAP_MKNOD", "create device nodes"),
    ("CAP_LEASE", "take leases on files it does not own"),
    ("CAP_AUDIT_WRITE", "write records to the kernel audit log"),
    ("CAP_AUDIT_CONTROL", "configure kernel auditing"),
    ("CAP_SETFCAP", "set capabilities on files"),
    (
        "CAP_MAC_OVERRIDE",
        "override mandatory access control (Smack)",
    ),
    ("CAP_MAC_ADMIN", "configure mandatory access control"),
    ("CAP_SYSLOG", "read and clear the kernel log"),
    ("CAP_WAKE_ALARM", "set alarms that wake the system"),
    ("CAP_BLOCK_SUSPEND", "keep the system from suspending"),
    (
        "CAP_AUDIT_READ",
        "read the audit log through a multicast netlink socket",
    ),
    (
        "CAP_PERFMON",
        "system-wide performance monitoring (perf events of every process)",
    ),
    ("CAP_BPF", "load BPF programs and create BPF maps"),
    (
        "CAP_CHECKPOINT_RESTORE",
        "checkpoint and restore: choose the pids of new processes, read other processes' maps",
    ),
];

impl Capability {
    /// The capability called `name` (capabilities(7); case is ignored, the `CAP_` prefix may
    /// be left out).
    pub fn parse(name: &str) -> Result<Self, Problem> {
        let upper = name.to_ascii_uppercase();
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        if let Some(number) = CAPABILITIES.iter().position(|(n, _)| *n == full) {
            return Ok(Self(number as u8));
        }
        let problem = Problem::new(format!("unknown capability {name:?}"));
        Err(match closest(&full, CAPABILITIES.iter().map(|(n, _)| *n)) {
            Some(known) => problem.with_hint(format!("did you mean \"{known}\"?")),
            None => {
                problem.with_hint("use the names of capabilities(7), e.g. \"CAP_NET_BIND_SERVICE\"")
            }
        })
    }

    pub fn name(self) -> &'static str {
        CAPABILITIES[usize::from(self.0)].0
    }

    /// What holding it allows, for the warning a policy granting it prints.
    pub fn allows(self) -> &'static str {
        CAPABILITIES[usize::from(self.0)].1
    }

    /// Its number, the bit it has in the kernel's capability sets.
    pub fn number(self) -> u32 {
        u32::from(self.0)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        let bind = Capability::parse("CAP_NET_BIND_SERVICE").unwrap();
        assert_eq!((bind.number(), bind.name()), (10, "CAP_NET_BIND_SERVICE"));
        assert_eq!(Capability::parse("net_bind_service").unwrap(), bind);
        assert_eq!(
            Capability::parse("CAP_CHECKPOINT_RESTORE")
                .unwrap()
                .number(),
            40
        );
        assert_eq!(Capability::parse("CAP_SYS_ADMIN").unwrap().number(), 21);
        let typo = Capability::parse("CAP_NET_BIND_SERVIC").unwrap_err();
        assert!(typo.message.contains("unknown capability"), "{typo:?}");
        assert_eq!(
            typo.hint.as_deref(),
            Some("did you mean \"CAP_NET_BIND_SERVICE\"?")
        );
        assert!(Capability::parse("CAP_EVERYTHING").is_err());
    }
}
