//! The seccomp baseline: what every session refuses in every mode, `--trace-only` included,
//! because it is how the command is run, not a policy rule. Each entry reaches outside the
//! session (the host's clock, keyrings, kernel log, I/O ports, terminal, devices, namespaces,
//! kernel modules) and no sandboxed build or package tool needs it. The reference is Docker's
//! default seccomp profile (moby/profiles `seccomp/default.json`, a container without
//! capabilities) and bubblewrap's terminal filter.
//!
//! Deliberately not here (Docker allows them too): `name_to_handle_at` (a handle alone opens
//! nothing; `open_by_handle_at` is path integrity), `kcmp`, `pidfd_getfd`, `ptrace` and
//! `process_vm_*` (the kernel's ptrace check, within the session's PID namespace),
//! `sethostname`/`setdomainname` (the session has its own UTS namespace), SysV IPC (its own IPC
//! namespace), `nfsservctl` (gone from the kernel: `ENOSYS` already).

use crate::syscall_table;

/// Syscalls refused whatever their arguments, grouped by why.
pub const UNCONDITIONAL: &[(&[&str], &str)] = &[
    (
        &["add_key", "keyctl", "request_key"],
        "keyrings are not namespaced (the user's keys, key types the kernel loads modules for)",
    ),
    (
        &["perf_event_open"],
        "performance events observe the whole machine and the kernel",
    ),
    (
        &["syslog"],
        "the kernel log: reading and clearing it, the console log level",
    ),
    (
        &["ioperm", "iopl"],
        "direct access to the machine's I/O ports",
    ),
    (
        &["userfaultfd"],
        "stalls the kernel in the middle of a copy from memory, a tool of kernel exploits",
    ),
    (
        &["settimeofday", "clock_settime", "clock_adjtime", "adjtimex"],
        "the system clock is the host's (read-only adjtimex too: its modes are in memory)",
    ),
    (&["setns"], "entering other namespaces"),
    (
        &["quotactl", "quotactl_fd"],
        "the host's file system quotas",
    ),
    (
        &["lookup_dcookie"],
        "a profiler's kernel interface (Docker refuses it without CAP_SYS_ADMIN)",
    ),
    (
        &["fanotify_init"],
        "watches on whole file systems, whose permission events stall the host's processes",
    ),
    (&["vhangup"], "hangs up the terminal"),
];

/// `io_uring_setup` where nothing checks what io_uring does: without BPF LSM its sockets
/// (`IORING_OP_SOCKET`) pass the seccomp socket checks, which see only socket(2).
pub const IO_URING: &str = "io_uring_setup";
/// Why [`IO_URING`] is refused (trace-only and degraded sessions).
pub const IO_URING_WHY: &str = "without BPF LSM nothing checks the sockets io_uring creates (IORING_OP_SOCKET passes the \
     seccomp socket checks)";

/// One test of a syscall argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgCheck {
    /// `(low 32 bits of arg & mask) == value`. The kernel reads these arguments as 32-bit
    /// ints, so the upper half must not matter (CVE-2017-5226-style bypasses of a 64-bit
    /// comparison).
    Masked { arg: u8, mask: u32, value: u32 },
    /// The whole 64-bit argument is greater than `value`: garbage in the upper half counts
    /// as large, which only ever refuses more.
    Above { arg: u8, value: u32 },
}

impl ArgCheck {
    fn equal(arg: u8, value: u32) -> Self {
        Self::Masked {
            arg,
            mask: u32::MAX,
            value,
        }
    }

    /// Whether `args` pass this check (the filter's decision, for the plan's tests).
    #[cfg(test)]
    pub fn holds(&self, args: &[u64; 6]) -> bool {
        match *self {
            Self::Masked { arg, mask, value } => args[arg as usize] as u32 & mask == value,
            Self::Above { arg, value } => args[arg as usize] > u64::from(value),
        }
    }
}

/// A syscall refused (`EPERM`) for some arguments only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgRule {
    pub nr: u32,
    pub name: &'static str,
    /// Which calls are refused, in words.
    pub refused: &'static str,
    pub why: &'static str,
    /// Refused when every check of any one case holds.
    pub cases: Vec<Vec<ArgCheck>>,
}

impl ArgRule {
    fn new(
        name: &'static str,
        refused: &'static str,
        why: &'static str,
        cases: Vec<Vec<ArgCheck>>,
    ) -> Self {
        Self {
            nr: syscall_table::number(name).expect("an x86_64 syscall"),
            name,
            refused,
            why,
            cases,
        }
    }

    /// Whether the filter refuses a call with `args`.
    #[cfg(test)]
    pub fn refuses(&self, args: &[u64; 6]) -> bool {
        self.cases
            .iter()
            .any(|case| case.iter().all(|check| check.holds(args)))
    }
}

const CLONE_NEWNS: u32 = 0x0002_0000;
const CLONE_NEWCGROUP: u32 = 0x0200_0000;
const CLONE_NEWUTS: u32 = 0x0400_0000;
const CLONE_NEWIPC: u32 = 0x0800_0000;
const CLONE_NEWUSER: u32 = 0x1000_0000;
const CLONE_NEWPID: u32 = 0x2000_0000;
const CLONE_NEWNET: u32 = 0x4000_0000;
/// Only in `unshare`: in clone(2)'s flags this bit belongs to the exit signal (the low byte).
const CLONE_NEWTIME: u32 = 0x80;
const CLONE_NEW: [u32; 7] = [
    CLONE_NEWNS,
    CLONE_NEWCGROUP,
    CLONE_NEWUTS,
    CLONE_NEWIPC,
    CLONE_NEWUSER,
    CLONE_NEWPID,
    CLONE_NEWNET,
];

const S_IFMT: u32 = 0o170_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;

/// Terminal ioctls: TIOCSTI pushes input into the terminal (which the user's shell reads once
/// sandtrace exits), TIOCLINUX can do the same through the console's selection, TIOCSETD
/// makes the kernel load a line discipline module (an unprivileged autoload).
const TERMINAL_IOCTLS: [u32; 3] = [0x5412, 0x541c, 0x5423];
/// Socket ioctls any process may make on any socket, that load the bridge, 802.1q and DLCI
/// modules when those are missing (`br_ioctl_call`, `vlan_ioctl_hook`, `dlci_ioctl_hook`).
const AUTOLOAD_IOCTLS: [u32; 10] = [
    0x8940, 0x8941, // SIOCGIFBR, SIOCSIFBR
    0x89a0, 0x89a1, 0x89a2, 0x89a3, // SIOCBRADDBR, SIOCBRDELBR, SIOCBRADDIF, SIOCBRDELIF
    0x8982, 0x8983, // SIOCGIFVLAN, SIOCSIFVLAN
    0x8980, 0x8981, // SIOCADDDLCI, SIOCDELDLCI
];

/// personality(2) values Docker allows: Linux, 32-bit Linux, either with UNAME26, and the
/// query. Everything else (READ_IMPLIES_EXEC, MMAP_PAGE_ZERO, ADDR_NO_RANDOMIZE, ...) weakens
/// the memory protections exploits rely on.
const PERSONALITIES: [u32; 5] = [0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// CMD's process sets it to 1 before execve (`spawn/init.rs`).
const RLIMIT_CORE: u32 = libc::RLIMIT_CORE;

const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const SOCK_RAW: u32 = 3;
/// The type bits of socket(2)'s `type` argument (the rest are SOCK_NONBLOCK / SOCK_CLOEXEC).
const SOCK_TYPE_MASK: u32 = 0xf;
const IPPROTO_ICMP: u32 = 1;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const IPPROTO_ICMPV6: u32 = 58;
const NETLINK_ROUTE: u32 = 0;

/// Socket families the baseline lets socket(2) create.
pub const SOCKET_FAMILIES: [u32; 4] = [
    libc::AF_UNIX as u32,
    libc::AF_INET as u32,
    libc::AF_INET6 as u32,
    libc::AF_NETLINK as u32,
];

/// The argument-dependent rules of the baseline.
pub fn arg_rules() -> Vec<ArgRule> {
    let bits = |arg: u8, bits: &[u32]| -> Vec<Vec<ArgCheck>> {
        bits.iter()
            .map(|&bit| {
                vec![ArgCheck::Masked {
                    arg,
                    mask: bit,
                    value: bit,
                }]
            })
            .collect()
    };
    let equal_any = |arg: u8, values: &[u32]| -> Vec<Vec<ArgCheck>> {
        values
            .iter()
            .map(|&v| vec![ArgCheck::equal(arg, v)])
            .collect()
    };
    let device_nodes = |arg: u8| -> Vec<Vec<ArgCheck>> {
        [S_IFCHR, S_IFBLK]
            .iter()
            .map(|&kind| {
                vec![ArgCheck::Masked {
                    arg,
                    mask: S_IFMT,
                    value: kind,
                }]
            })
            .collect()
    };
    const NAMESPACES: &str = "creating namespaces: a user namespace gives the command \
                              capabilities over new kernel interfaces (and file system module \
                              autoload); the session's own namespaces are set up by sandtrace";
    const DEVICES: &str = "device nodes reach hardware and kernel memory past the path rules \
                           (FIFOs and regular files stay allowed)";
    let mut unshare_bits = CLONE_NEW.to_vec();
    unshare_bits.push(CLONE_NEWTIME);
    let mut ioctls = TERMINAL_IOCTLS.to_vec();
    ioctls.extend(AUTOLOAD_IOCTLS);
    let mut rules = vec![
        ArgRule::new(
            "clone",
            "flags with CLONE_NEW*",
            NAMESPACES,
            bits(0, &CLONE_NEW),
        ),
        ArgRule::new(
            "unshare",
            "flags with CLONE_NEW*",
            NAMESPACES,
            bits(0, &unshare_bits),
        ),
        ArgRule::new(
            "mknod",
            "character and block devices",
            DEVICES,
            device_nodes(1),
        ),
        ArgRule::new(
            "mknodat",
            "character and block devices",
            DEVICES,
            device_nodes(2),
        ),
        ArgRule::new(
            "ioctl",
            "TIOCSTI, TIOCLINUX, TIOCSETD, bridge/VLAN/DLCI socket ioctls",
            "TIOCSTI and TIOCLINUX type into the terminal; the others make the kernel load \
             modules",
            equal_any(1, &ioctls),
        ),
        ArgRule::new(
            "personality",
            "values other than 0, 0x8, 0x20000, 0x20008 and the query 0xffffffff",
            "READ_IMPLIES_EXEC, MMAP_PAGE_ZERO, ADDR_NO_RANDOMIZE and the like weaken memory \
             protections",
            outside(0, u32::MAX, &PERSONALITIES)
                .into_iter()
                .map(|c| vec![c])
                .collect(),
        ),
    ];
    const CORE_LIMIT: &str = "RLIMIT_CORE stays 1, the one value at which the kernel starts no core \
                              dump helper (a pipe core_pattern ignores 0)";
    rules.push(ArgRule::new(
        "setrlimit",
        "RLIMIT_CORE",
        CORE_LIMIT,
        vec![vec![ArgCheck::equal(0, RLIMIT_CORE)]],
    ));
    rules.push(ArgRule::new(
        "prlimit64",
        "setting RLIMIT_CORE",
        CORE_LIMIT,
        vec![vec![
            ArgCheck::equal(1, RLIMIT_CORE),
            ArgCheck::Above { arg: 2, value: 0 },
        ]],
    ));
    for name in ["socket", "socketpair"] {
        rules.push(ArgRule::new(
            name,
            "families other than AF_UNIX, AF_INET/AF_INET6 (TCP, UDP, ICMP, raw) and \
             AF_NETLINK (NETLINK_ROUTE)",
            "the kernel loads modules for missing families and protocols (SCTP, DCCP, \
             AppleTalk, genetlink families, ...) as root outside the session",
            socket_cases(),
        ));
    }
    rules.sort_by_key(|r| r.nr);
    rules
}

/// The socket(2) arguments `(family, type, protocol)` the kernel may need a module for.
/// Allowed: AF_UNIX (any type), AF_NETLINK with NETLINK_ROUTE (rtnetlink is always built in;
/// NETLINK_GENERIC is not allowed: a family lookup loads `net-pf-16-proto-16-family-NAME`),
/// and AF_INET/AF_INET6 stream sockets with protocol 0 or TCP, datagram sockets with 0, UDP
/// or ICMP (ping), and raw sockets of any protocol (the built-in raw protocol serves every
/// number; they need CAP_NET_RAW). Other IPv4/IPv6 types and protocols (SCTP, DCCP, MPTCP,
/// UDP-Lite, SOCK_PACKET) make `inet_create` request a module before any permission check.
fn socket_cases() -> Vec<Vec<ArgCheck>> {
    let mut cases: Vec<Vec<ArgCheck>> = outside(0, u32::MAX, &SOCKET_FAMILIES)
        .into_iter()
        .map(|c| vec![c])
        .collect();
    let inet = [
        (libc::AF_INET as u32, IPPROTO_ICMP),
        (libc::AF_INET6 as u32, IPPROTO_ICMPV6),
    ];
    for (family, icmp) in inet {
        let family = ArgCheck::equal(0, family);
        for sock_type in outside(1, SOCK_TYPE_MASK, &[SOCK_STREAM, SOCK_DGRAM, SOCK_RAW]) {
            cases.push(vec![family, sock_type]);
        }
        for (sock_type, protocols) in [
            (SOCK_STREAM, vec![0, IPPROTO_TCP]),
            (SOCK_DGRAM, vec![0, IPPROTO_UDP, icmp]),
        ] {
            let sock_type = ArgCheck::Masked {
                arg: 1,
                mask: SOCK_TYPE_MASK,
                value: sock_type,
            };
            for protocol in outside(2, u32::MAX, &protocols) {
                cases.push(vec![family, sock_type, protocol]);
            }
        }
    }
    let netlink = ArgCheck::equal(0, libc::AF_NETLINK as u32);
    for protocol in outside(2, u32::MAX, &[NETLINK_ROUTE]) {
        cases.push(vec![netlink, protocol]);
    }
    cases
}

/// Checks that together hold exactly for the values of `arg` outside `allowed`, comparing
/// the bits of `width` (a low mask: `0xf`, `u32::MAX`). Each gap between allowed values
/// becomes aligned power-of-two blocks (one masked comparison each); with `width` = all 32
/// bits, the gap above the largest allowed value is one [`ArgCheck::Above`] instead.
fn outside(arg: u8, width: u32, allowed: &[u32]) -> Vec<ArgCheck> {
    let mut allowed: Vec<u64> = allowed.iter().map(|&v| u64::from(v)).collect();
    allowed.sort_unstable();
    allowed.dedup();
    let end = u64::from(width) + 1;
    let mut checks = Vec::new();
    let mut next = 0u64;
    for &value in &allowed {
        blocks(arg, width, next, value, &mut checks);
        next = value + 1;
    }
    if next < end {
        if width == u32::MAX && next > 0 {
            checks.push(ArgCheck::Above {
                arg,
                value: (next - 1) as u32,
            });
        } else {
            blocks(arg, width, next, end, &mut checks);
        }
    }
    checks
}

/// Masked comparisons covering exactly `[from, to)`.
fn blocks(arg: u8, width: u32, mut from: u64, to: u64, out: &mut Vec<ArgCheck>) {
    while from < to {
        // The largest aligned block starting at `from` that ends by `to`.
        let mut size = if from == 0 {
            1u64 << 32
        } else {
            1u64 << from.trailing_zeros()
        };
        while from + size > to {
            size >>= 1;
        }
        out.push(ArgCheck::Masked {
            arg,
            mask: width & !((size - 1) as u32),
            value: from as u32,
        });
        from += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: [u64; 3]) -> [u64; 6] {
        [a[0], a[1], a[2], 0, 0, 0]
    }

    #[test]
    fn outside_matches_exactly_the_values_not_allowed() {
        for allowed in [
            vec![],
            vec![0],
            vec![1, 2, 3],
            vec![0, 6],
            vec![15],
            vec![0, 5, 7, 8, 12],
        ] {
            let checks = outside(1, 0xf, &allowed);
            for v in 0..16u64 {
                let hit = checks.iter().any(|c| c.holds(&args([0, v, 0])));
                assert_eq!(hit, !allowed.contains(&(v as u32)), "{allowed:?}: {v}");
            }
            // The bits above the width do not matter.
            for v in 0..16u64 {
                let hit = checks.iter().any(|c| c.holds(&args([0, v | 0x30, 0])));
                assert_eq!(
                    hit,
                    !allowed.contains(&(v as u32)),
                    "{allowed:?}: {v} | 0x30"
                );
            }
        }
        let personality = outside(0, u32::MAX, &PERSONALITIES);
        for v in [
            0u64,
            1,
            7,
            8,
            9,
            0x2_0000,
            0x2_0008,
            0x40_0000,
            0x1_0000,
            0xffff_fffe,
            0xffff_ffff,
            0x1_0000_0000,
        ] {
            let hit = personality.iter().any(|c| c.holds(&args([v, 0, 0])));
            assert_eq!(hit, !PERSONALITIES.contains(&(v as u32)), "{v:#x}");
        }
    }

    fn rule(name: &str) -> ArgRule {
        arg_rules().into_iter().find(|r| r.name == name).unwrap()
    }

    #[test]
    fn sockets_that_could_load_a_module_are_refused() {
        let socket = rule("socket");
        let (unix, inet, inet6, netlink) = (1, 2, 10, 16);
        for allowed in [
            [unix, 1, 0],
            [unix, 2, 0],
            [unix, 5, 0],
            [inet, 1, 0],
            [inet, 1, 6],
            [inet, 1 | 0x80000, 6], // SOCK_CLOEXEC
            [inet, 2, 0],
            [inet, 2, 17],
            [inet, 2, 1],
            [inet, 3, 1],
            [inet, 3, 255],
            [inet6, 1, 6],
            [inet6, 2, 58],
            [inet6, 3, 58],
            [netlink, 3, 0],
            [netlink, 2, 0],
        ] {
            assert!(!socket.refuses(&args(allowed)), "{allowed:?}");
        }
        for refused in [
            [0, 1, 0],
            [5, 2, 0],  // AppleTalk
            [9, 5, 0],  // X.25
            [17, 3, 0], // packet
            [40, 1, 0], // vsock
            [46, 1, 0],
            [1000, 1, 0],
            [inet | 1 << 32, 1, 0],
            [inet, 1, 132],  // SCTP
            [inet, 5, 0],    // SOCK_SEQPACKET: SCTP's module is looked up
            [inet, 6, 0],    // DCCP
            [inet, 10, 768], // SOCK_PACKET
            [inet, 1, 262],  // MPTCP
            [inet, 2, 136],  // UDP-Lite
            [inet, 2, 58],
            [inet6, 2, 1],
            [inet6, 1, 132],
            [inet, 1, 6 | 1 << 32],
            [netlink, 3, 16], // NETLINK_GENERIC
            [netlink, 3, 12], // NETLINK_NETFILTER
            [netlink, 3, 4],  // NETLINK_SOCK_DIAG
        ] {
            assert!(socket.refuses(&args(refused)), "{refused:?}");
        }
    }

    #[test]
    fn namespaces_devices_terminals_and_personalities() {
        let clone = rule("clone");
        assert!(!clone.refuses(&args([0x0100_0011, 0, 0]))); // fork(): CHILD_*TID | SIGCHLD
        assert!(!clone.refuses(&args([0x0000_0081, 0, 0]))); // exit signal bit 0x80
        assert!(clone.refuses(&args([0x1000_0011, 0, 0])));
        assert!(clone.refuses(&args([0x1_2000_0011, 0, 0])));
        let unshare = rule("unshare");
        assert!(unshare.refuses(&args([0x80, 0, 0])));
        assert!(!unshare.refuses(&args([0x200, 0, 0]))); // CLONE_FS
        let mknodat = rule("mknodat");
        assert!(mknodat.refuses(&args([0, 0, 0o020_666])));
        assert!(mknodat.refuses(&args([0, 0, 0o060_600])));
        assert!(!mknodat.refuses(&args([0, 0, 0o010_644]))); // FIFO
        assert!(!mknodat.refuses(&args([0, 0, 0o100_644]))); // regular file
        assert!(!mknodat.refuses(&args([0, 0, 0o000_644])));
        let ioctl = rule("ioctl");
        assert!(ioctl.refuses(&args([0, 0x5412, 0])));
        assert!(ioctl.refuses(&args([0, 0xffff_ffff_0000_5412, 0])));
        assert!(ioctl.refuses(&args([0, 0x541c, 0])));
        assert!(!ioctl.refuses(&args([0, 0x5401, 0]))); // TCGETS
        let prlimit = rule("prlimit64");
        assert!(prlimit.refuses(&args([0, 4, 0x7ffd_0000])));
        assert!(!prlimit.refuses(&args([0, 4, 0]))); // getrlimit
        assert!(!prlimit.refuses(&args([0, 7, 0x7ffd_0000])));
        let personality = rule("personality");
        assert!(personality.refuses(&args([0x40_0000, 0, 0])));
        assert!(!personality.refuses(&args([0xffff_ffff, 0, 0])));
    }
}
