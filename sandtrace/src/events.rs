//! Ring-buffer records decoded into typed events.

use std::time::{Duration, SystemTime};

use std::net::{IpAddr, Ipv6Addr};

use sandtrace_common::{
    event::{
        EventHeader, EventKind, ExecEvent, ExitEvent, FileEvent, ForkEvent, ForkRefusedEvent,
        SYSCALL_DENIED, SYSCALL_HAS_PATH, SYSCALL_LOG_ONLY, SYSCALL_NO_ENTRY, SYSCALL_NO_RETURN,
        SYSCALL_PATH_TRUNCATED, SeccompKillEvent, SyscallEvent, SyscallPathEvent, X32_SYSCALL_BIT,
    },
    file::{FileOp, Verdict},
    network::{NET_LIST_BIND, NET_LIST_CONNECT, NO_NET_RULE, NetOp, NetVerdict, NetworkEvent},
    policy::{KIND_COUNT, NO_RULE},
};

/// Converts the kernel's CLOCK_MONOTONIC timestamps to wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_zero: SystemTime,
}

impl Clock {
    pub fn new() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec; CLOCK_MONOTONIC always exists.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let mono = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
        Self {
            wall_at_zero: SystemTime::now() - mono,
        }
    }

    pub fn wall(&self, monotonic_ns: u64) -> SystemTime {
        self.wall_at_zero + Duration::from_nanos(monotonic_ns)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// The task an event came from. Ids are in the initial PID namespace (as `ps` on the host
/// shows them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
}

/// How the policy treated a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallAction {
    Allow,
    /// Refused by the seccomp filter (EPERM).
    Deny,
    /// Allowed, and reported even at default verbosity.
    LogOnly,
}

impl SyscallAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::LogOnly => "log_only",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyscallRecord {
    pub nr: u32,
    pub action: SyscallAction,
    pub args: [u64; 6],
    /// `None` for syscalls that do not return (exit, exit_group).
    pub ret: Option<i64>,
    /// `None` when the entry was not recorded (see `SYSCALL_NO_ENTRY`) or the call does not return.
    pub duration: Option<Duration>,
    /// The decoded path argument, if the syscall takes one and it could be read.
    pub path: Option<String>,
    pub path_truncated: bool,
}

/// Which policy rule decided: its kind (`KIND_INDEX_*`) and index in that kind's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleRef {
    pub kind: usize,
    pub index: usize,
}

/// A file-system or exec decision of the kernel programs.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    pub op: FileOp,
    /// `KIND_*` bits the operation needed.
    pub needed: u16,
    pub verdict: Verdict,
    pub rule: Option<RuleRef>,
    pub path: String,
}

/// Which `[network]` list a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetList {
    Connect,
    Bind,
}

/// A network decision of the kernel programs.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkRecord {
    pub op: NetOp,
    pub verdict: NetVerdict,
    /// `AF_*`.
    pub family: u16,
    /// `SOCK_*`.
    pub sock_type: u16,
    /// `IPPROTO_*`.
    pub protocol: u16,
    /// The address and port the rules were checked against (none for socket creation).
    pub addr: Option<(IpAddr, u16)>,
    /// For [`NetOp::Receive`]: where the packet came from, if it could be read.
    pub peer: Option<(IpAddr, u16)>,
    /// The list whose rule decided, and the rule's index in it.
    pub rule: Option<(NetList, usize)>,
    /// The list the decision was checked against (for messages about denials).
    pub list: NetList,
}

/// The seccomp filter's foreign-ABI kill.
#[derive(Debug, Clone, PartialEq)]
pub struct SeccompKillRecord {
    pub abi: SyscallAbi,
    /// The number as that ABI numbers it.
    pub nr: u32,
}

/// The syscall ABI a call came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallAbi {
    X86_64,
    X32,
    I386,
    /// Another `AUDIT_ARCH_*` value.
    Other(u32),
}

impl SyscallAbi {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;

    fn of(arch: u32, nr: u32) -> Self {
        match arch {
            Self::AUDIT_ARCH_X86_64 if nr & X32_SYSCALL_BIT != 0 => Self::X32,
            Self::AUDIT_ARCH_X86_64 => Self::X86_64,
            Self::AUDIT_ARCH_I386 => Self::I386,
            other => Self::Other(other),
        }
    }

    pub fn as_str(self) -> String {
        match self {
            Self::X86_64 => "x86_64".into(),
            Self::X32 => "x32".into(),
            Self::I386 => "i386".into(),
            Self::Other(arch) => format!("audit_arch_{arch:#x}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    Syscall(SyscallRecord),
    Fork {
        child_pid: u32,
        child_tgid: u32,
    },
    Exec {
        old_pid: u32,
        filename: String,
    },
    /// `status` is a wait(2) status.
    Exit {
        status: i32,
    },
    File(FileRecord),
    Network(NetworkRecord),
    /// A fork, vfork or clone refused with this errno (the process limit).
    ForkRefused {
        nr: u32,
        errno: i32,
    },
    SeccompKill(SeccompKillRecord),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time: SystemTime,
    pub task: Task,
    pub body: EventBody,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError(format!(
            "record of {} bytes is shorter than {} ({} bytes)",
            bytes.len(),
            std::any::type_name::<T>(),
            size_of::<T>()
        )));
    }
    // SAFETY: the length is checked and every type read here is plain old data.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Bytes up to the first NUL, as UTF-8 (lossy: paths need not be UTF-8).
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn task(h: &EventHeader) -> Task {
    Task {
        pid: h.pid,
        tgid: h.tgid,
        comm: c_string(&h.comm),
    }
}

fn syscall(e: &SyscallEvent, path: Option<&[u8]>) -> SyscallRecord {
    let no_return = e.flags & SYSCALL_NO_RETURN != 0;
    SyscallRecord {
        nr: e.nr,
        action: if e.flags & SYSCALL_DENIED != 0 {
            SyscallAction::Deny
        } else if e.flags & SYSCALL_LOG_ONLY != 0 {
            SyscallAction::LogOnly
        } else {
            SyscallAction::Allow
        },
        args: e.args,
        ret: (!no_return).then_some(e.ret),
        duration: (!no_return && e.flags & SYSCALL_NO_ENTRY == 0)
            .then(|| Duration::from_nanos(e.duration_ns)),
        path: path
            .filter(|_| e.flags & SYSCALL_HAS_PATH != 0)
            .map(c_string),
        path_truncated: e.flags & SYSCALL_PATH_TRUNCATED != 0,
    }
}

fn file(e: &FileEvent) -> Result<FileRecord, DecodeError> {
    let op =
        FileOp::from_u32(e.op).ok_or_else(|| DecodeError(format!("unknown file op {}", e.op)))?;
    let verdict = Verdict::from_u16(e.verdict)
        .ok_or_else(|| DecodeError(format!("unknown file verdict {}", e.verdict)))?;
    let rule =
        (e.rule_index != NO_RULE && (e.rule_kind as usize) < KIND_COUNT).then_some(RuleRef {
            kind: e.rule_kind as usize,
            index: e.rule_index as usize,
        });
    let len = (e.path_len as usize).min(e.path.len());
    Ok(FileRecord {
        op,
        needed: e.needed,
        verdict,
        rule,
        path: String::from_utf8_lossy(&e.path[..len]).into_owned(),
    })
}

/// An address in the kernel's IPv6 form (four network-order words), shown as IPv4 for IPv4
/// sockets.
fn address(words: [u32; 4], ipv4_socket: bool) -> IpAddr {
    let mut octets = [0u8; 16];
    for (i, w) in words.iter().enumerate() {
        octets[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    let v6 = Ipv6Addr::from(octets);
    match v6.to_ipv4_mapped() {
        Some(v4) if ipv4_socket => IpAddr::V4(v4),
        _ => IpAddr::V6(v6),
    }
}

const AF_INET: u16 = 2;

fn network(e: &NetworkEvent) -> Result<NetworkRecord, DecodeError> {
    let op =
        NetOp::from_u16(e.op).ok_or_else(|| DecodeError(format!("unknown network op {}", e.op)))?;
    let verdict = NetVerdict::from_u16(e.verdict)
        .ok_or_else(|| DecodeError(format!("unknown network verdict {}", e.verdict)))?;
    let list = match e.rule_list {
        NET_LIST_CONNECT => NetList::Connect,
        NET_LIST_BIND => NetList::Bind,
        other => return Err(DecodeError(format!("unknown network rule list {other}"))),
    };
    let ipv4 = e.family == AF_INET;
    let addr = (op != NetOp::Socket).then(|| (address(e.addr, ipv4), e.port));
    // A packet source that could not be read is all zero.
    let peer = (op == NetOp::Receive && (e.peer != [0; 4] || e.peer_port != 0))
        .then(|| (address(e.peer, ipv4), e.peer_port));
    Ok(NetworkRecord {
        op,
        verdict,
        family: e.family,
        sock_type: e.sock_type,
        protocol: e.protocol,
        addr,
        peer,
        rule: (e.rule != NO_NET_RULE).then_some((list, e.rule as usize)),
        list,
    })
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8], clock: &Clock) -> Result<Event, DecodeError> {
    let header: EventHeader = read(bytes)?;
    let kind = EventKind::from_u32(header.kind)
        .ok_or_else(|| DecodeError(format!("unknown event kind {}", header.kind)))?;
    let body = match kind {
        EventKind::Syscall => EventBody::Syscall(syscall(&read::<SyscallEvent>(bytes)?, None)),
        EventKind::SyscallPath => {
            let e: SyscallPathEvent = read(bytes)?;
            EventBody::Syscall(syscall(&e.syscall, Some(&e.path)))
        }
        EventKind::Fork => {
            let e: ForkEvent = read(bytes)?;
            EventBody::Fork {
                child_pid: e.child_pid,
                child_tgid: e.child_tgid,
            }
        }
        EventKind::Exec => {
            let e: ExecEvent = read(bytes)?;
            EventBody::Exec {
                old_pid: e.old_pid,
                filename: c_string(&e.filename),
            }
        }
        EventKind::Exit => EventBody::Exit {
            status: read::<ExitEvent>(bytes)?.exit_code as i32,
        },
        EventKind::File => EventBody::File(file(&read::<FileEvent>(bytes)?)?),
        EventKind::Network => EventBody::Network(network(&read::<NetworkEvent>(bytes)?)?),
        EventKind::ForkRefused => {
            let e: ForkRefusedEvent = read(bytes)?;
            EventBody::ForkRefused {
                nr: e.nr,
                errno: e.errno as i32,
            }
        }
        EventKind::SeccompKill => {
            let e: SeccompKillEvent = read(bytes)?;
            EventBody::SeccompKill(SeccompKillRecord {
                abi: SyscallAbi::of(e.arch, e.nr),
                nr: e.nr,
            })
        }
    };
    Ok(Event {
        time: clock.wall(header.ts_ns),
        task: task(&header),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn header(kind: EventKind) -> EventHeader {
        let mut comm = [0u8; 16];
        comm[..2].copy_from_slice(b"ls");
        EventHeader {
            kind: kind as u32,
            pid: 10,
            tgid: 10,
            _pad: 0,
            ts_ns: 5,
            comm,
        }
    }

    #[test]
    fn decodes_a_path_syscall() {
        let mut path = [0u8; 256];
        path[..4].copy_from_slice(b"/etc");
        let e = SyscallPathEvent {
            syscall: SyscallEvent {
                header: header(EventKind::SyscallPath),
                nr: 257,
                flags: SYSCALL_HAS_PATH,
                args: [1, 2, 3, 4, 5, 6],
                ret: 3,
                duration_ns: 2000,
            },
            path,
        };
        let ev = decode(&bytes_of(&e), &Clock::new()).unwrap();
        assert_eq!(ev.task.comm, "ls");
        let EventBody::Syscall(s) = ev.body else {
            panic!("not a syscall: {ev:?}")
        };
        assert_eq!(s.path.as_deref(), Some("/etc"));
        assert_eq!(s.ret, Some(3));
        assert_eq!(s.duration, Some(Duration::from_micros(2)));
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        assert!(decode(&[0u8; 4], &Clock::new()).is_err());
        let mut h = header(EventKind::Exit);
        h.kind = 99;
        assert!(decode(&bytes_of(&h), &Clock::new()).is_err());
    }
}
