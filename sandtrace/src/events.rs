//! Ring-buffer records decoded into typed events.
//!
//! Decoding allocates nothing: an [`Event`] borrows its text (comm, paths) from the record,
//! since a busy session delivers a million events a second.

use std::{
    borrow::Cow,
    fmt,
    mem::offset_of,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    time::{Duration, SystemTime},
};

use sandtrace_common::{
    event::{
        COMM_LEN, EXEC_ARGV_CAP, EXEC_PATH_CAP, EventHeader, EventKind, ExecEvent, ExitEvent,
        FileEvent, ForkEvent, ForkRefusedEvent, SYSCALL_DENIED, SYSCALL_HAS_PATH, SYSCALL_LOG_ONLY,
        SYSCALL_NO_ENTRY, SYSCALL_NO_RETURN, SYSCALL_PATH_CAP, SYSCALL_PATH_TRUNCATED,
        SeccompKillEvent, SyscallEvent, SyscallPathEvent, X32_SYSCALL_BIT,
    },
    file::{EVENT_PATH_CAP, FileOp, Verdict},
    network::{
        DNS_CAPTURE_CAP, DNS_PACKET_SENT, DnsPacketEvent, NET_LIST_BIND, NET_LIST_CONNECT,
        NET_LIST_HOSTS, NO_NET_RULE, NetOp, NetVerdict, NetworkEvent, SOCKADDR_CAP, SocketEvent,
        SocketOp,
    },
    policy::{KIND_COUNT, MAX_REGIMES, NO_RULE, RULE_REGIME_SHIFT},
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

    /// The wall-clock time of monotonic zero, in nanoseconds since the Unix epoch, as a
    /// capture stores the clock (0 for a clock set before 1970).
    pub fn wall_at_zero_ns(&self) -> u64 {
        self.wall_at_zero
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The clock [`Self::wall_at_zero_ns`] describes.
    pub fn from_wall_at_zero_ns(ns: u64) -> Self {
        Self {
            wall_at_zero: SystemTime::UNIX_EPOCH + Duration::from_nanos(ns),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Text from the kernel (a comm, a path), borrowed from the record: bytes that need not be
/// UTF-8. It is shown lossily, every invalid sequence as U+FFFD, as
/// [`String::from_utf8_lossy`] would.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KernelText<'a>(&'a [u8]);

impl<'a> KernelText<'a> {
    /// The bytes up to the first NUL (all of them without one).
    pub fn until_nul(bytes: &'a [u8]) -> Self {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Self(&bytes[..end])
    }

    /// All the bytes, NULs included (an abstract socket name).
    pub fn from_bytes(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The text, copied only when it is not UTF-8.
    pub fn to_str_lossy(&self) -> Cow<'a, str> {
        String::from_utf8_lossy(self.0)
    }
}

/// An argument list as the kernel lays it out: NUL-terminated strings, one after the other
/// (the last one unterminated when the list was cut).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct ArgList<'a>(&'a [u8]);

impl<'a> ArgList<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    /// Each argument, raw.
    pub fn iter(&self) -> impl Iterator<Item = KernelText<'a>> + 'a {
        let bytes = self.0.strip_suffix(b"\0").unwrap_or(self.0);
        bytes
            .split(|&b| b == 0)
            .filter(move |_| !bytes.is_empty())
            .map(KernelText)
    }
}

impl fmt::Debug for ArgList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl fmt::Display for KernelText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        Ok(())
    }
}

/// Quoted and escaped, as `Debug` shows a `str`.
impl fmt::Debug for KernelText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.to_str_lossy(), f)
    }
}

/// The task an event came from. Ids are in the initial PID namespace (as `ps` on the host
/// shows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task<'a> {
    pub pid: u32,
    pub tgid: u32,
    pub comm: KernelText<'a>,
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
pub struct SyscallRecord<'a> {
    pub nr: u32,
    pub action: SyscallAction,
    pub args: [u64; 6],
    /// `None` for syscalls that do not return (exit, exit_group).
    pub ret: Option<i64>,
    /// `None` when the entry was not recorded (see `SYSCALL_NO_ENTRY`) or the call does not return.
    pub duration: Option<Duration>,
    /// The decoded path argument, if the syscall takes one and it could be read.
    pub path: Option<KernelText<'a>>,
    pub path_truncated: bool,
}

/// Which policy rule decided: its kind (`KIND_INDEX_*`) and index in that kind's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleRef {
    /// The `[[after_exec]]` regime whose rule it is; `None` for the base policy's.
    pub regime: Option<usize>,
    pub kind: usize,
    pub index: usize,
}

/// A file-system or exec decision of the kernel programs.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord<'a> {
    pub op: FileOp,
    /// `KIND_*` bits the operation needed.
    pub needed: u16,
    pub verdict: Verdict,
    pub rule: Option<RuleRef>,
    /// The `[[after_exec]]` regime whose rules decided (a denial), if any.
    pub regime: Option<usize>,
    pub path: KernelText<'a>,
}

/// Which `[network]` list a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetList {
    Connect,
    Bind,
    /// `allow_hosts`: an address the session's resolver handed out for a covered name.
    Hosts,
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
    /// For a decision by an `allow_hosts` entry, the id of the name the address was resolved
    /// from (`crate::dns::ResolvedNames`); `NO_HOST_NAME` otherwise.
    pub name: u32,
    /// For `NetVerdict::DeniedRegime`: the `[[after_exec]]` regime that refused it.
    pub regime: Option<usize>,
}

/// A socket call of a session task, as it returned (see `sandtrace_common::network::SocketEvent`).
#[derive(Debug, Clone, PartialEq)]
pub struct SocketRecord<'a> {
    pub op: SocketOp,
    /// The socket the call was made on; -1 for `socket`.
    pub fd: i32,
    /// The return value: 0 or the new fd, or `-errno`.
    pub ret: i64,
    /// For `socket`: the requested `AF_*` domain, `SOCK_*` type (flags removed) and protocol.
    pub domain: u16,
    pub sock_type: u16,
    pub protocol: u32,
    /// The address bytes read (see `crate::sockaddr::SockAddr::parse`); empty without one.
    pub addr: &'a [u8],
    /// An address was passed but could not be read.
    pub addr_unreadable: bool,
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

    pub fn as_str(self) -> Cow<'static, str> {
        match self {
            Self::X86_64 => "x86_64".into(),
            Self::X32 => "x32".into(),
            Self::I386 => "i386".into(),
            Self::Other(arch) => format!("audit_arch_{arch:#x}").into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventBody<'a> {
    Syscall(SyscallRecord<'a>),
    Fork {
        child_pid: u32,
        child_tgid: u32,
    },
    Exec {
        old_pid: u32,
        /// The path passed to execve, as passed.
        filename: KernelText<'a>,
        /// The `#!` (or binfmt_misc) interpreter of a script; empty for a binary.
        interpreter: KernelText<'a>,
        argv: ArgList<'a>,
        /// The argument list was longer than an event carries: `argv` is its beginning.
        argv_truncated: bool,
        /// The working directory, resolved; empty when the kernel could not rebuild it.
        cwd: KernelText<'a>,
        uid: u32,
        gid: u32,
        /// The `[[after_exec]]` regimes the process is in from this exec on (bit per regime).
        regimes: u32,
    },
    /// `status` is a wait(2) status.
    Exit {
        status: i32,
    },
    File(FileRecord<'a>),
    Network(NetworkRecord),
    /// A fork, vfork or clone refused with this errno (the process limit).
    ForkRefused {
        nr: u32,
        errno: i32,
    },
    SeccompKill(SeccompKillRecord),
    Socket(SocketRecord<'a>),
    /// A DNS packet of the session (its own resolver not running): for the loader's
    /// decoder, never logged as it is.
    DnsPacket(DnsPacketRecord<'a>),
}

/// A packet to or from port 53 (see [`EventBody::DnsPacket`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DnsPacketRecord<'a> {
    /// Sent by the session (a query) or received by it (an answer).
    pub sent: bool,
    pub tcp: bool,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The start of the payload: a datagram, or a piece of a TCP stream (whose messages each
    /// follow their two-byte length).
    pub payload: &'a [u8],
    /// TCP: the sequence number of `payload`'s first byte.
    pub tcp_seq: u32,
    /// The payload was longer than what the kernel copied.
    pub truncated: bool,
}

/// A decoded record; it borrows from the record's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub time: SystemTime,
    pub task: Task<'a>,
    pub body: EventBody<'a>,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

/// Fails unless `bytes` holds a whole `T`.
fn check_len<T>(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError(format!(
            "record of {} bytes is shorter than {} ({} bytes)",
            bytes.len(),
            std::any::type_name::<T>(),
            size_of::<T>()
        )));
    }
    Ok(())
}

fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    check_len::<T>(bytes)?;
    // SAFETY: the length is checked and every type read here is plain old data.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// The `len` bytes at `offset` of a record that holds a whole `T` (a field of `T`, borrowed
/// rather than copied out with the struct).
fn field<T>(bytes: &[u8], offset: usize, len: usize) -> Result<&[u8], DecodeError> {
    check_len::<T>(bytes)?;
    Ok(&bytes[offset..offset + len])
}

fn syscall<'a>(e: &SyscallEvent, path: Option<&'a [u8]>) -> SyscallRecord<'a> {
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
            .map(KernelText::until_nul),
        path_truncated: e.flags & SYSCALL_PATH_TRUNCATED != 0,
    }
}

fn file(bytes: &[u8]) -> Result<FileRecord<'_>, DecodeError> {
    let e: FileEvent = read(bytes)?;
    let op =
        FileOp::from_u32(e.op).ok_or_else(|| DecodeError(format!("unknown file op {}", e.op)))?;
    let verdict = Verdict::from_u16(e.verdict)
        .ok_or_else(|| DecodeError(format!("unknown file verdict {}", e.verdict)))?;
    // NO_RULE (no rule decided) has every bit set: no regime either.
    let regime = (e.rule_kind != NO_RULE)
        .then(|| usize::from(e.rule_kind >> RULE_REGIME_SHIFT).checked_sub(1))
        .flatten()
        .filter(|&r| r < MAX_REGIMES);
    let kind = usize::from(e.rule_kind & ((1 << RULE_REGIME_SHIFT) - 1));
    let rule = (e.rule_index != NO_RULE && kind < KIND_COUNT).then_some(RuleRef {
        regime,
        kind,
        index: e.rule_index as usize,
    });
    let len = (e.path_len as usize).min(e.path.len());
    Ok(FileRecord {
        op,
        needed: e.needed,
        verdict,
        rule,
        regime,
        path: KernelText(field::<FileEvent>(bytes, offset_of!(FileEvent, path), len)?),
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
const IPPROTO_TCP: u8 = 6;

fn network(e: &NetworkEvent) -> Result<NetworkRecord, DecodeError> {
    let op =
        NetOp::from_u16(e.op).ok_or_else(|| DecodeError(format!("unknown network op {}", e.op)))?;
    let verdict = NetVerdict::from_u16(e.verdict)
        .ok_or_else(|| DecodeError(format!("unknown network verdict {}", e.verdict)))?;
    let list = match e.rule_list {
        NET_LIST_CONNECT => NetList::Connect,
        NET_LIST_BIND => NetList::Bind,
        NET_LIST_HOSTS => NetList::Hosts,
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
        name: e.name,
        regime: usize::from(e.regime).checked_sub(1),
    })
}

/// The type bits of socket(2)'s `type` (without `SOCK_NONBLOCK`/`SOCK_CLOEXEC`).
const SOCK_TYPE_MASK: u32 = 0xf;

fn socket(bytes: &[u8]) -> Result<SocketRecord<'_>, DecodeError> {
    let e: SocketEvent = read(bytes)?;
    let op = SocketOp::from_u16(e.op)
        .ok_or_else(|| DecodeError(format!("unknown socket op {}", e.op)))?;
    let copied = usize::from(e.addr_copied).min(SOCKADDR_CAP);
    Ok(SocketRecord {
        op,
        fd: e.fd,
        ret: e.ret,
        domain: e.domain as u16,
        sock_type: (e.sock_type & SOCK_TYPE_MASK) as u16,
        protocol: e.protocol,
        addr: field::<SocketEvent>(bytes, offset_of!(SocketEvent, addr), copied)?,
        addr_unreadable: e.addr_len > 0 && copied == 0,
    })
}

/// Decodes one ring-buffer record.
pub fn decode<'a>(bytes: &'a [u8], clock: &Clock) -> Result<Event<'a>, DecodeError> {
    let header: EventHeader = read(bytes)?;
    let kind = EventKind::from_u32(header.kind)
        .ok_or_else(|| DecodeError(format!("unknown event kind {}", header.kind)))?;
    let body = match kind {
        EventKind::Syscall => EventBody::Syscall(syscall(&read::<SyscallEvent>(bytes)?, None)),
        EventKind::SyscallPath => {
            let path = field::<SyscallPathEvent>(
                bytes,
                offset_of!(SyscallPathEvent, path),
                SYSCALL_PATH_CAP,
            )?;
            EventBody::Syscall(syscall(&read::<SyscallEvent>(bytes)?, Some(path)))
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
            let text =
                |offset: usize, cap: usize, len: u32| -> Result<KernelText<'_>, DecodeError> {
                    let all = field::<ExecEvent>(bytes, offset, cap)?;
                    Ok(KernelText(&all[..(len as usize).min(cap)]))
                };
            EventBody::Exec {
                old_pid: e.old_pid,
                regimes: e.regimes,
                filename: KernelText::until_nul(field::<ExecEvent>(
                    bytes,
                    offset_of!(ExecEvent, filename),
                    EXEC_PATH_CAP,
                )?),
                interpreter: text(
                    offset_of!(ExecEvent, interpreter),
                    EXEC_PATH_CAP,
                    e.interpreter_len,
                )?,
                argv: ArgList(
                    text(offset_of!(ExecEvent, argv), EXEC_ARGV_CAP, e.argv_len)?.as_bytes(),
                ),
                argv_truncated: e.argv_total > e.argv_len,
                cwd: text(offset_of!(ExecEvent, cwd), EVENT_PATH_CAP, e.cwd_len)?,
                uid: e.uid,
                gid: e.gid,
            }
        }
        EventKind::Exit => EventBody::Exit {
            status: read::<ExitEvent>(bytes)?.exit_code as i32,
        },
        EventKind::File => EventBody::File(file(bytes)?),
        EventKind::Network => EventBody::Network(network(&read::<NetworkEvent>(bytes)?)?),
        EventKind::Socket => EventBody::Socket(socket(bytes)?),
        EventKind::ForkRefused => {
            let e: ForkRefusedEvent = read(bytes)?;
            EventBody::ForkRefused {
                nr: e.nr,
                errno: e.errno as i32,
            }
        }
        EventKind::DnsPacket => {
            let e: DnsPacketEvent = read(bytes)?;
            let captured = (e.payload_len as usize).min(DNS_CAPTURE_CAP);
            let data =
                field::<DnsPacketEvent>(bytes, offset_of!(DnsPacketEvent, data), DNS_CAPTURE_CAP)?;
            let endpoint = |words, port| SocketAddr::new(address(words, true), port);
            EventBody::DnsPacket(DnsPacketRecord {
                sent: e.direction == DNS_PACKET_SENT,
                tcp: e.protocol == IPPROTO_TCP,
                src: endpoint(e.src, e.src_port),
                dst: endpoint(e.dst, e.dst_port),
                payload: &data[..captured],
                tcp_seq: e.tcp_seq,
                truncated: captured < e.payload_len as usize,
            })
        }
        EventKind::SeccompKill => {
            let e: SeccompKillEvent = read(bytes)?;
            EventBody::SeccompKill(SeccompKillRecord {
                abi: SyscallAbi::of(e.arch, e.nr),
                nr: e.nr,
            })
        }
    };
    let comm = field::<EventHeader>(bytes, offset_of!(EventHeader, comm), COMM_LEN)?;
    Ok(Event {
        time: clock.wall(header.ts_ns),
        task: Task {
            pid: header.pid,
            tgid: header.tgid,
            comm: KernelText::until_nul(comm),
        },
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: `v` is a live `repr(C)` record of `size_of::<T>()` bytes, read only for the
        // duration of the copy.
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
    fn a_file_decision_names_a_regime_only_when_one_decided() {
        let event = |rule_kind: u16, rule_index: u16| FileEvent {
            header: header(EventKind::File),
            op: FileOp::Open as u32,
            needed: 1,
            verdict: Verdict::DeniedUnlisted as u16,
            rule_kind,
            rule_index,
            path_len: 0,
            path: [0; sandtrace_common::file::EVENT_PATH_CAP],
        };
        let decoded = |e: FileEvent| {
            let bytes = bytes_of(&e);
            let f = file(&bytes).unwrap();
            (f.regime, f.rule)
        };
        // An unlisted path: no rule, no regime (NO_RULE has every bit set).
        assert_eq!(decoded(event(NO_RULE, NO_RULE)), (None, None));
        // The base's deny rule 3; regime 1's deny rule 2; regime 0's narrowed write list.
        assert_eq!(
            decoded(event(3, 3)),
            (
                None,
                Some(RuleRef {
                    regime: None,
                    kind: 3,
                    index: 3
                })
            )
        );
        assert_eq!(
            decoded(event(2 << RULE_REGIME_SHIFT | 3, 2)),
            (
                Some(1),
                Some(RuleRef {
                    regime: Some(1),
                    kind: 3,
                    index: 2
                })
            )
        );
        assert_eq!(
            decoded(event(1 << RULE_REGIME_SHIFT | 1, NO_RULE)),
            (Some(0), None)
        );
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
        let record = bytes_of(&e);
        let ev = decode(&record, &Clock::new()).unwrap();
        assert_eq!(ev.task.comm.as_bytes(), b"ls");
        let EventBody::Syscall(s) = ev.body else {
            panic!("not a syscall: {ev:?}")
        };
        assert_eq!(s.path, Some(KernelText(b"/etc")));
        assert_eq!(s.ret, Some(3));
        assert_eq!(s.duration, Some(Duration::from_micros(2)));
    }

    #[test]
    fn text_is_borrowed_raw_and_shown_lossily() {
        let mut filename = [0u8; EXEC_PATH_CAP];
        filename[..6].copy_from_slice(b"/bin/\xff");
        let mut argv = [0u8; EXEC_ARGV_CAP];
        argv[..10].copy_from_slice(b"sh\0-c\0\0x\xffy");
        let mut cwd = [0u8; EVENT_PATH_CAP];
        cwd[..4].copy_from_slice(b"/srv");
        let mut e = ExecEvent {
            header: header(EventKind::Exec),
            old_pid: 9,
            filename_len: 6,
            regimes: 0,
            uid: 1000,
            gid: 100,
            argv_len: 10,
            argv_total: 20,
            cwd_len: 4,
            interpreter_len: 0,
            filename,
            interpreter: [0; EXEC_PATH_CAP],
            argv,
            cwd,
        };
        e.header.comm[..4].copy_from_slice(b"a\0bc");
        let record = bytes_of(&e);
        let ev = decode(&record, &Clock::new()).unwrap();
        assert_eq!(ev.task.comm.as_bytes(), b"a", "comm ends at its NUL");
        let EventBody::Exec {
            old_pid,
            filename,
            argv,
            argv_truncated,
            cwd,
            interpreter,
            uid,
            ..
        } = ev.body
        else {
            panic!("not an exec: {ev:?}")
        };
        assert_eq!(old_pid, 9);
        let args: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(
            args,
            [&b"sh"[..], b"-c", b"", b"x\xffy"],
            "an empty argument is kept"
        );
        assert!(argv_truncated);
        assert_eq!(cwd.as_bytes(), b"/srv");
        assert!(interpreter.as_bytes().is_empty());
        assert_eq!(uid, 1000);
        assert_eq!(filename.as_bytes(), b"/bin/\xff");
        assert_eq!(filename.to_string(), "/bin/\u{FFFD}");
        assert_eq!(format!("{filename:?}"), "\"/bin/\u{FFFD}\"");
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        assert!(decode(&[0u8; 4], &Clock::new()).is_err());
        let mut h = header(EventKind::Exit);
        h.kind = 99;
        assert!(decode(&bytes_of(&h), &Clock::new()).is_err());
    }
}
