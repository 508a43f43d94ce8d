//! One event as one JSON line, written by hand into a reusable buffer: at a million events a
//! second a serializer's per-field work and per-event allocations are most of the cost.
//! The fields, their order and their spelling are the log's format (see the module above).

use anyhow::Result;

use super::{FORK_REFUSED_REASON, decode_wait_status, json, timestamp::Timestamps};
use crate::{
    events::{
        Event, EventBody, FileRecord, NetworkRecord, SeccompKillRecord, SocketRecord, SyscallRecord,
    },
    output::{
        FOREIGN_ABI_REASON, Labels, RuleLabel, access_names, errno_name, errno_str,
        foreign_syscall_name, is_error,
        network::{
            action_name, family_name, op_name, protocol_name, sock_type_name, socket_op_name,
        },
        sockets::{KnownSocket, SocketTable, described, local_address, socket_fd},
    },
    sockaddr::{AF_NETLINK, SockAddr, netlink_family_name},
    syscall_table,
};

/// Formats events; keeps what is reused from one line to the next.
pub struct LineFormat {
    timestamps: Timestamps,
    /// What earlier socket lines said of each socket.
    sockets: SocketTable,
}

impl LineFormat {
    pub fn new() -> Self {
        Self {
            timestamps: Timestamps::new(),
            sockets: SocketTable::default(),
        }
    }

    /// Appends `event` as one line, newline included. Fails only for an event time outside
    /// what RFC 3339 timestamps can show, and then appends nothing.
    pub fn line(&mut self, out: &mut Vec<u8>, event: &Event<'_>, labels: &Labels) -> Result<()> {
        let start = out.len();
        self.append_line(out, event, labels)
            .inspect_err(|_| out.truncate(start))
    }

    fn append_line(&mut self, out: &mut Vec<u8>, event: &Event<'_>, labels: &Labels) -> Result<()> {
        let event_type = match event.body {
            EventBody::Syscall(_) => "syscall",
            EventBody::File(_) => "file",
            EventBody::Network(_) => "network",
            EventBody::Socket(_) => "socket",
            EventBody::SeccompKill(_) => "seccomp",
            EventBody::DnsPacket(_) => {
                anyhow::bail!("a DNS packet is logged as the dns line the loader decodes from it")
            }
            EventBody::Fork { .. }
            | EventBody::Exec { .. }
            | EventBody::Exit { .. }
            | EventBody::ForkRefused { .. } => "process",
        };
        let known = self.sockets.observe(event);
        json::raw(out, "{\"event_type\":\"");
        json::raw(out, event_type);
        json::raw(out, "\",\"timestamp\":\"");
        self.timestamps.write(out, event.time)?;
        json::raw(out, "\",\"pid\":");
        json::integer(out, event.task.pid);
        json::raw(out, ",\"tgid\":");
        json::integer(out, event.task.tgid);
        json::raw(out, ",\"comm\":");
        json::kernel_text(out, event.task.comm);
        match &event.body {
            EventBody::Syscall(s) => syscall(out, s),
            EventBody::File(f) => file(out, f, labels),
            EventBody::Network(n) => network(out, n, labels),
            EventBody::Socket(s) => socket(out, s, known, labels),
            EventBody::SeccompKill(k) => seccomp_kill(out, k),
            EventBody::DnsPacket(_) => unreachable!("refused above"),
            EventBody::Fork {
                child_pid,
                child_tgid,
            } => {
                json::raw(out, ",\"action\":\"fork\",\"child_pid\":");
                json::integer(out, *child_pid);
                json::raw(out, ",\"child_tgid\":");
                json::integer(out, *child_tgid);
            }
            EventBody::Exec {
                old_pid,
                filename,
                interpreter,
                argv,
                argv_truncated,
                cwd,
                uid,
                gid,
                regimes,
            } => {
                json::raw(out, ",\"action\":\"exec\",\"path\":");
                json::kernel_text(out, *filename);
                json::raw(out, ",\"old_pid\":");
                json::integer(out, *old_pid);
                if !interpreter.as_bytes().is_empty() {
                    json::raw(out, ",\"interpreter\":");
                    json::kernel_text(out, *interpreter);
                }
                for (i, arg) in argv.iter().enumerate() {
                    json::raw(out, if i == 0 { ",\"argv\":[" } else { "," });
                    json::kernel_text(out, arg);
                }
                if argv.iter().next().is_some() {
                    json::raw(out, "]");
                }
                if *argv_truncated {
                    json::raw(out, ",\"argv_truncated\":true");
                }
                if !cwd.as_bytes().is_empty() {
                    json::raw(out, ",\"cwd\":");
                    json::kernel_text(out, *cwd);
                }
                json::raw(out, ",\"uid\":");
                json::integer(out, *uid);
                json::raw(out, ",\"gid\":");
                json::integer(out, *gid);
                if *regimes != 0 {
                    json::raw(out, ",\"regimes\":[");
                    for (i, name) in labels.regimes_in(*regimes).into_iter().enumerate() {
                        if i > 0 {
                            json::raw(out, ",");
                        }
                        json::string(out, name);
                    }
                    json::raw(out, "]");
                }
            }
            EventBody::Exit { status } => {
                let (exit_code, signal) = decode_wait_status(*status);
                json::raw(out, ",\"action\":\"exited\",\"exit_code\":");
                json::integer(out, exit_code);
                if let Some(signal) = signal {
                    json::raw(out, ",\"signal\":");
                    json::integer(out, signal);
                }
            }
            EventBody::ForkRefused { nr, errno } => {
                json::raw(out, ",\"action\":\"fork_refused\",\"syscall\":");
                json::string(out, syscall_table::name(*nr).unwrap_or("unknown"));
                json::raw(out, ",\"errno\":");
                json::string(out, errno_str(*errno));
                json::raw(out, ",\"reason\":");
                json::string(out, FORK_REFUSED_REASON);
            }
        }
        json::raw(out, "}\n");
        Ok(())
    }
}

fn syscall(out: &mut Vec<u8>, s: &SyscallRecord<'_>) {
    json::raw(out, ",\"syscall\":");
    json::string(out, syscall_table::name(s.nr).unwrap_or("unknown"));
    json::raw(out, ",\"syscall_nr\":");
    json::integer(out, s.nr);
    json::raw(out, ",\"args\":{\"raw\":[");
    for (i, arg) in s.args.iter().enumerate() {
        if i > 0 {
            json::raw(out, ",");
        }
        json::integer(out, *arg);
    }
    json::raw(out, "]}");
    if let Some(path) = s.path {
        json::raw(out, ",\"path\":");
        json::kernel_text(out, path);
    }
    if s.path_truncated {
        json::raw(out, ",\"path_truncated\":true");
    }
    json::raw(out, ",\"return_value\":");
    optional_integer(out, s.ret);
    json::raw(out, ",\"success\":");
    json::boolean(out, !s.ret.is_some_and(is_error));
    if let Some(errno) = s.ret.and_then(errno_name) {
        json::raw(out, ",\"errno\":");
        json::string(out, errno);
    }
    json::raw(out, ",\"duration_us\":");
    optional_integer(out, s.duration.map(|d| d.as_micros() as u64));
    json::raw(out, ",\"action\":");
    json::string(out, s.action.as_str());
    json::raw(out, ",\"category\":");
    json::string(out, syscall_table::category(s.nr).as_str());
}

/// The `action` and `operation` fields of a file or network decision.
fn decision(out: &mut Vec<u8>, action: &str, operation: &str) {
    json::raw(out, ",\"action\":");
    json::string(out, action);
    json::raw(out, ",\"operation\":");
    json::string(out, operation);
}

fn file(out: &mut Vec<u8>, f: &FileRecord<'_>, labels: &Labels) {
    let action = if f.verdict.is_denied() {
        "deny"
    } else {
        "allow"
    };
    decision(out, action, f.op.as_str());
    json::raw(out, ",\"access\":[");
    for (i, name) in access_names(f.needed).enumerate() {
        if i > 0 {
            json::raw(out, ",");
        }
        json::string(out, name);
    }
    json::raw(out, "],\"path\":");
    json::kernel_text(out, f.path);
    json::raw(out, ",\"reason\":");
    json::string(out, f.verdict.as_str());
    if let Some(rule) = f.rule.and_then(|r| labels.file_rules.label(r)) {
        rule_label(out, rule);
    }
    regime(out, f.regime, labels);
}

fn regime(out: &mut Vec<u8>, regime: Option<usize>, labels: &Labels) {
    if let Some(r) = regime {
        json::raw(out, ",\"regime\":");
        json::string(out, labels.regime_name(r));
    }
}

fn network(out: &mut Vec<u8>, n: &NetworkRecord, labels: &Labels) {
    decision(out, action_name(n.verdict), op_name(n.op));
    json::raw(out, ",\"family\":");
    json::string(out, &family_name(n.family));
    json::raw(out, ",\"socket_type\":");
    json::string(out, &sock_type_name(n.sock_type));
    json::raw(out, ",\"protocol\":");
    json::string(out, &protocol_name(n.protocol, n.sock_type));
    for ((address_key, port_key), endpoint) in [
        ((",\"address\":\"", ",\"port\":"), n.addr),
        ((",\"peer_address\":\"", ",\"peer_port\":"), n.peer),
    ] {
        if let Some((address, port)) = endpoint {
            use std::io::Write as _;
            json::raw(out, address_key);
            // An address has nothing to escape; writing to a Vec cannot fail.
            let _ = write!(out, "{address}");
            json::raw(out, "\"");
            json::raw(out, port_key);
            json::integer(out, port);
            if address_key.starts_with(",\"address")
                && let Some(host) = labels.names.host(n.name, Some(address))
            {
                json::raw(out, ",\"host\":");
                json::string(out, &host);
            }
        }
    }
    json::raw(out, ",\"reason\":");
    json::string(out, labels.network_rules.reason(n));
    if let Some(rule) = n
        .rule
        .and_then(|(list, index)| labels.network_rules.label(list, index))
    {
        rule_label(out, rule);
    }
    regime(out, n.regime, labels);
}

fn socket(out: &mut Vec<u8>, s: &SocketRecord<'_>, known: Option<&KnownSocket>, labels: &Labels) {
    json::raw(out, ",\"operation\":");
    json::string(out, socket_op_name(s.op));
    if let Some(fd) = socket_fd(s) {
        json::raw(out, ",\"fd\":");
        json::integer(out, fd);
    }
    let addr = SockAddr::parse(s.addr);
    let socket = described(s, known);
    if let Some(family) = addr
        .map(|a| a.family())
        .or(socket.as_ref().map(|k| k.domain))
    {
        json::raw(out, ",\"family\":");
        json::string(out, &family_name(family));
    }
    if let Some(k) = &socket {
        json::raw(out, ",\"socket_type\":");
        json::string(out, &sock_type_name(k.sock_type));
        if k.domain == AF_NETLINK {
            json::raw(out, ",\"netlink_family\":");
            json::string(out, &netlink_family_name(k.protocol));
        } else {
            json::raw(out, ",\"protocol\":");
            json::string(out, &protocol_name(k.protocol as u16, k.sock_type));
        }
    }
    address_fields(out, addr, true);
    if s.addr_unreadable {
        json::raw(out, ",\"address_unreadable\":true");
    }
    if let Some(SockAddr::Inet(a)) = addr
        && let Some(host) = labels.names.for_address(a.ip())
    {
        json::raw(out, ",\"host\":");
        json::string(out, &host);
    }
    if let Some(local) = local_address(s, known) {
        json::raw(out, ",\"local\":{");
        address_fields(out, Some(local), false);
        json::raw(out, "}");
    }
    json::raw(out, ",\"return_value\":");
    json::integer(out, s.ret);
    json::raw(out, ",\"success\":");
    json::boolean(out, !is_error(s.ret));
    if let Some(errno) = errno_name(s.ret) {
        json::raw(out, ",\"errno\":");
        json::string(out, errno);
    }
}

/// The fields of a socket address (`schema::SocketAddressLine`), each after a comma but the
/// first when `after_others` is false (the first field of an object).
fn address_fields(out: &mut Vec<u8>, addr: Option<SockAddr<'_>>, after_others: bool) {
    let mut first = !after_others;
    let mut key = |out: &mut Vec<u8>, name: &str| {
        json::raw(out, if first { "\"" } else { ",\"" });
        first = false;
        json::raw(out, name);
        json::raw(out, "\":");
    };
    match addr {
        Some(SockAddr::Inet(a)) => {
            use std::io::Write as _;
            key(out, "address");
            // An address has nothing to escape; writing to a Vec cannot fail.
            let _ = write!(out, "\"{}\"", a.ip());
            key(out, "port");
            json::integer(out, a.port());
        }
        Some(SockAddr::UnixPath(path)) => {
            key(out, "path");
            json::kernel_text(out, path);
        }
        Some(SockAddr::UnixAbstract(name)) => {
            key(out, "abstract");
            json::kernel_text(out, name);
        }
        Some(SockAddr::UnixUnnamed) => {
            key(out, "unnamed");
            json::boolean(out, true);
        }
        Some(SockAddr::Netlink { pid, groups }) => {
            key(out, "netlink_pid");
            json::integer(out, pid);
            key(out, "netlink_groups");
            json::integer(out, groups);
        }
        Some(SockAddr::Other { .. }) | None => {}
    }
}

fn seccomp_kill(out: &mut Vec<u8>, k: &SeccompKillRecord) {
    json::raw(out, ",\"action\":\"kill\",\"abi\":");
    json::string(out, &k.abi.as_str());
    json::raw(out, ",\"syscall_nr\":");
    json::integer(out, k.nr);
    if let Some(name) = foreign_syscall_name(k) {
        json::raw(out, ",\"syscall\":");
        json::string(out, name);
    }
    json::raw(out, ",\"reason\":");
    json::string(out, FOREIGN_ABI_REASON);
}

/// The `rule` field.
fn rule_label(out: &mut Vec<u8>, rule: &RuleLabel) {
    json::raw(out, ",\"rule\":{\"kind\":");
    json::string(out, rule.kind);
    json::raw(out, ",\"pattern\":");
    json::string(out, &rule.pattern);
    json::raw(out, ",\"source\":");
    json::string(out, &rule.source);
    json::raw(out, "}");
}

/// A number, or `null`.
fn optional_integer(out: &mut Vec<u8>, n: Option<impl itoa::Integer>) {
    match n {
        Some(n) => json::integer(out, n),
        None => json::raw(out, "null"),
    }
}

#[cfg(test)]
mod tests {
    //! The hand-written lines against the schema: each line must be, byte for byte, the
    //! schema's line for the event serialized by serde, and must read back into it.

    use std::{
        net::{IpAddr, Ipv4Addr, Ipv6Addr},
        path::Path,
        time::{Duration, SystemTime, UNIX_EPOCH},
    };

    use sandtrace_common::{
        file::{FileOp, Verdict},
        network::{NO_HOST_NAME, NetOp, NetVerdict, SocketOp},
    };

    use super::{super::schema, *};
    use crate::{
        dns::ResolvedNames,
        events::{ArgList, KernelText, NetList, RuleRef, SyscallAbi, SyscallAction, Task},
        output::{FileRules, network::NetworkRules},
        policy::{CliOverrides, parse::parse, resolve},
    };

    fn timestamp(time: SystemTime) -> String {
        humantime::format_rfc3339_micros(time).to_string()
    }

    fn errno(errno: i32) -> String {
        format!("{:?}", nix::errno::Errno::from_raw(errno))
    }

    /// The schema's line for `event`, derived from the event without the hand formatter's
    /// helpers where it can be.
    fn schema_line(event: &Event<'_>, labels: &Labels, sockets: &mut SocketTable) -> schema::Line {
        let known = sockets.observe(event).cloned();
        use schema::{
            FileLine, Line, NetworkLine, ProcessChange, ProcessLine, RawArgs, RuleLine,
            SeccompLine, SocketLine, SyscallLine,
        };
        let comm = event.task.comm.to_str_lossy().into_owned();
        let (pid, tgid) = (event.task.pid, event.task.tgid);
        let timestamp = timestamp(event.time);
        let process = |change| {
            Line::Process(ProcessLine {
                timestamp: timestamp.clone(),
                pid,
                tgid,
                comm: comm.clone(),
                change,
            })
        };
        match &event.body {
            EventBody::Syscall(s) => Line::Syscall(SyscallLine {
                timestamp,
                pid,
                tgid,
                comm,
                syscall: syscall_table::name(s.nr).unwrap_or("unknown").to_owned(),
                syscall_nr: s.nr,
                args: RawArgs { raw: s.args },
                path: s.path.map(|p| p.to_str_lossy().into_owned()),
                path_truncated: s.path_truncated,
                return_value: s.ret,
                success: !s.ret.is_some_and(|r| (-4095..=-1).contains(&r)),
                errno: s
                    .ret
                    .filter(|r| (-4095..=-1).contains(r))
                    .map(|r| errno((-r) as i32)),
                duration_us: s.duration.map(|d| d.as_micros() as u64),
                action: s.action.as_str().to_owned(),
                category: syscall_table::category(s.nr).as_str().to_owned(),
            }),
            EventBody::File(f) => Line::File(FileLine {
                timestamp,
                pid,
                tgid,
                comm,
                action: if f.verdict.is_denied() {
                    "deny"
                } else {
                    "allow"
                }
                .to_owned(),
                operation: f.op.as_str().to_owned(),
                access: access_names(f.needed).map(str::to_owned).collect(),
                path: f.path.to_str_lossy().into_owned(),
                reason: f.verdict.as_str().to_owned(),
                rule: f
                    .rule
                    .and_then(|r| labels.file_rules.label(r))
                    .map(RuleLine::from),
                regime: f.regime.map(|r| labels.regime_name(r).to_owned()),
            }),
            EventBody::Network(n) => Line::Network(NetworkLine {
                timestamp,
                pid,
                tgid,
                comm,
                action: match n.verdict {
                    NetVerdict::RedirectedDns => "redirect",
                    v if v.is_denied() => "deny",
                    _ => "allow",
                }
                .to_owned(),
                operation: op_name(n.op).to_owned(),
                family: family_name(n.family).into_owned(),
                socket_type: sock_type_name(n.sock_type).into_owned(),
                protocol: protocol_name(n.protocol, n.sock_type).into_owned(),
                address: n.addr.map(|(a, _)| a.to_string()),
                port: n.addr.map(|(_, p)| p),
                host: n
                    .addr
                    .and_then(|(a, _)| labels.names.host(n.name, Some(a)))
                    .map(|h| h.to_string()),
                peer_address: n.peer.map(|(a, _)| a.to_string()),
                peer_port: n.peer.map(|(_, p)| p),
                reason: labels.network_rules.reason(n).to_owned(),
                rule: n
                    .rule
                    .and_then(|(list, index)| labels.network_rules.label(list, index))
                    .map(RuleLine::from),
                regime: n.regime.map(|r| labels.regime_name(r).to_owned()),
            }),
            EventBody::Socket(s) => {
                let addr = SockAddr::parse(s.addr);
                let socket = described(s, known.as_ref());
                let netlink = socket.as_ref().is_some_and(|k| k.domain == AF_NETLINK);
                let failed = (-4095..=-1).contains(&s.ret);
                Line::Socket(SocketLine {
                    timestamp,
                    pid,
                    tgid,
                    comm,
                    operation: socket_op_name(s.op).to_owned(),
                    fd: socket_fd(s),
                    family: addr
                        .map(|a| a.family())
                        .or(socket.as_ref().map(|k| k.domain))
                        .map(|f| family_name(f).into_owned()),
                    socket_type: socket
                        .as_ref()
                        .map(|k| sock_type_name(k.sock_type).into_owned()),
                    protocol: socket
                        .as_ref()
                        .filter(|_| !netlink)
                        .map(|k| protocol_name(k.protocol as u16, k.sock_type).into_owned()),
                    netlink_family: socket
                        .as_ref()
                        .filter(|_| netlink)
                        .map(|k| netlink_family_name(k.protocol).into_owned()),
                    address: address_line(addr),
                    address_unreadable: s.addr_unreadable,
                    host: match addr {
                        Some(SockAddr::Inet(a)) => {
                            labels.names.for_address(a.ip()).map(|h| h.to_string())
                        }
                        _ => None,
                    },
                    local: local_address(s, known.as_ref()).map(|a| address_line(Some(a))),
                    return_value: s.ret,
                    success: !failed,
                    errno: failed.then(|| errno((-s.ret) as i32)),
                })
            }
            EventBody::DnsPacket(_) => unreachable!("never written: decoded into dns lines"),
            EventBody::SeccompKill(k) => Line::Seccomp(SeccompLine {
                timestamp,
                pid,
                tgid,
                comm,
                action: "kill".to_owned(),
                abi: k.abi.as_str().into_owned(),
                syscall_nr: k.nr,
                syscall: foreign_syscall_name(k).map(str::to_owned),
                reason: FOREIGN_ABI_REASON.to_owned(),
            }),
            EventBody::ForkRefused { nr, errno: e } => process(ProcessChange::ForkRefused {
                syscall: syscall_table::name(*nr).unwrap_or("unknown").to_owned(),
                errno: errno(*e),
                reason: FORK_REFUSED_REASON.to_owned(),
            }),
            EventBody::Fork {
                child_pid,
                child_tgid,
            } => process(ProcessChange::Fork {
                child_pid: *child_pid,
                child_tgid: *child_tgid,
            }),
            EventBody::Exec {
                old_pid,
                filename,
                interpreter,
                argv,
                argv_truncated,
                cwd,
                uid,
                gid,
                regimes,
            } => process(ProcessChange::Exec {
                path: filename.to_str_lossy().into_owned(),
                old_pid: *old_pid,
                interpreter: (!interpreter.as_bytes().is_empty())
                    .then(|| interpreter.to_str_lossy().into_owned()),
                argv: argv.iter().map(|a| a.to_str_lossy().into_owned()).collect(),
                argv_truncated: *argv_truncated,
                cwd: (!cwd.as_bytes().is_empty()).then(|| cwd.to_str_lossy().into_owned()),
                uid: Some(*uid),
                gid: Some(*gid),
                regimes: labels
                    .regimes_in(*regimes)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            }),
            EventBody::Exit { status } => {
                let (exit_code, signal) = decode_wait_status(*status);
                process(ProcessChange::Exited { exit_code, signal })
            }
        }
    }

    fn address_line(addr: Option<SockAddr<'_>>) -> schema::SocketAddressLine {
        let mut line = schema::SocketAddressLine::default();
        match addr {
            Some(SockAddr::Inet(a)) => {
                line.address = Some(a.ip().to_string());
                line.port = Some(a.port());
            }
            Some(SockAddr::UnixPath(p)) => line.path = Some(p.to_str_lossy().into_owned()),
            Some(SockAddr::UnixAbstract(n)) => {
                line.abstract_name = Some(n.to_str_lossy().into_owned());
            }
            Some(SockAddr::UnixUnnamed) => line.unnamed = true,
            Some(SockAddr::Netlink { pid, groups }) => {
                line.netlink_pid = Some(pid);
                line.netlink_groups = Some(groups);
            }
            Some(SockAddr::Other { .. }) | None => {}
        }
        line
    }

    /// Which body an event has, numbered; `BODY_KINDS` of them.
    fn body_kind(body: &EventBody<'_>) -> usize {
        match body {
            EventBody::Syscall(_) => 0,
            EventBody::Fork { .. } => 1,
            EventBody::Exec { .. } => 2,
            EventBody::Exit { .. } => 3,
            EventBody::File(_) => 4,
            EventBody::Network(_) => 5,
            EventBody::ForkRefused { .. } => 6,
            EventBody::SeccompKill(_) => 7,
            EventBody::Socket(_) => 8,
            EventBody::DnsPacket(_) => unreachable!("never written: decoded into dns lines"),
        }
    }
    const BODY_KINDS: usize = 9;

    /// File rules and `[network]` rules to label events with.
    fn labels() -> Labels {
        let policy = parse(
            Path::new("test.toml"),
            "[network]\nallow = false\nallow_connect = [\"127.0.0.1:80\"]\n\
             allow_bind = [\"[::1]:8080\"]\nallow_hosts = [\"*.registry.test:443\"]\n"
                .to_owned(),
        )
        .expect("the test policy parses");
        let effective = resolve(&policy, &CliOverrides::default(), Path::new("/"), None)
            .expect("the test policy resolves");
        let rule = |kind, pattern: &str| RuleLabel {
            kind,
            pattern: pattern.to_owned(),
            source: "policy.toml:3 \"quoted\"".to_owned(),
        };
        Labels {
            file_rules: FileRules {
                by_kind: [
                    vec![rule("allow_read", "/usr/**")],
                    vec![rule("allow_write", "/tmp/ä\\x")],
                    vec![],
                    vec![rule("deny", "**/.env"), rule("deny", "/etc/shadow")],
                ],
                regimes: Vec::new(),
            },
            network_rules: NetworkRules::for_policy(&effective),
            names: resolved_names(),
            regime_names: Vec::new(),
        }
    }

    /// `cdn.registry.test` (id 1) handed out 10.1.2.3, `other.registry.test` (id 2) 127.0.0.1.
    fn resolved_names() -> ResolvedNames {
        let names = ResolvedNames::default();
        let cdn = names.id("cdn.registry.test").unwrap();
        names.handed_out(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), cdn);
        let other = names.id("other.registry.test").unwrap();
        names.handed_out(IpAddr::V4(Ipv4Addr::LOCALHOST), other);
        names
    }

    /// A comm a process may set itself (prctl PR_SET_NAME): quotes, escapes, control
    /// characters and bytes that are not UTF-8.
    const ODD_COMM: &[u8] = b"a\"b\\c\n\t\x01\x7f\xff\xc3\xa9\0tail";

    fn syscall(nr: u32, ret: Option<i64>, duration_ns: Option<u64>) -> EventBody<'static> {
        EventBody::Syscall(SyscallRecord {
            nr,
            action: SyscallAction::Allow,
            args: [0, 1, u64::MAX, 0x7fff_0000_1000, 42, 7],
            ret,
            duration: duration_ns.map(Duration::from_nanos),
            path: None,
            path_truncated: false,
        })
    }

    fn path_syscall(
        path: &'static [u8],
        truncated: bool,
        action: SyscallAction,
    ) -> EventBody<'static> {
        let EventBody::Syscall(openat) = syscall(257, Some(-13), Some(1_999)) else {
            unreachable!("a syscall body")
        };
        EventBody::Syscall(SyscallRecord {
            path: Some(KernelText::until_nul(path)),
            path_truncated: truncated,
            action,
            ..openat
        })
    }

    fn file(
        verdict: Verdict,
        rule: Option<(usize, usize)>,
        path: &'static [u8],
    ) -> EventBody<'static> {
        EventBody::File(FileRecord {
            op: if verdict.is_denied() {
                FileOp::Open
            } else {
                FileOp::Create
            },
            needed: 3,
            verdict,
            rule: rule.map(|(kind, index)| RuleRef {
                regime: None,
                kind,
                index,
            }),
            regime: None,
            path: KernelText::until_nul(path),
        })
    }

    /// One event of every line type and of every optional field, with text that needs
    /// escaping, at times that cross seconds and days.
    fn sample_events() -> Vec<Event<'static>> {
        let v4 = Some((IpAddr::V4(Ipv4Addr::LOCALHOST), 80));
        let v6 = Some((IpAddr::V6(Ipv6Addr::LOCALHOST), 8080));
        let v4_in_v6 = Some((IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped()), 443));
        let connect = NetworkRecord {
            op: NetOp::Connect,
            verdict: NetVerdict::Allowed,
            family: 2,
            sock_type: 1,
            protocol: 6,
            addr: v4,
            peer: None,
            rule: Some((NetList::Connect, 0)),
            list: NetList::Connect,
            name: NO_HOST_NAME,
            regime: None,
        };
        let denied = NetworkRecord {
            verdict: NetVerdict::DeniedNoRule,
            rule: None,
            ..connect.clone()
        };
        let bodies = [
            syscall(110, Some(4242), Some(1_999)),
            // No entry record: no duration.
            syscall(0, Some(3), None),
            // exit_group: neither a return value nor a duration.
            syscall(231, None, None),
            // Errors, the error range's edges, and returns outside it (not errnos).
            syscall(257, Some(-2), Some(0)),
            syscall(257, Some(-1), Some(1_000)),
            syscall(257, Some(-4095), Some(u64::MAX)),
            syscall(257, Some(-4096), Some(5)),
            syscall(257, Some(i64::MIN), Some(5)),
            // A number outside the table.
            syscall(9999, Some(0), Some(5)),
            path_syscall(b"/etc/passwd\0junk", false, SyscallAction::Deny),
            path_syscall(ODD_COMM, true, SyscallAction::LogOnly),
            path_syscall(b"", false, SyscallAction::Allow),
            EventBody::Fork {
                child_pid: 12,
                child_tgid: 12,
            },
            EventBody::Exec {
                old_pid: 11,
                filename: KernelText::until_nul(b"/usr/bin/\"odd\"\xfe"),
                interpreter: KernelText::until_nul(b""),
                argv: ArgList::new(b"odd\0--x=\"q\"\0\0\xff\0"),
                argv_truncated: false,
                cwd: KernelText::until_nul(b"/srv/\xc3\xa4"),
                uid: 1000,
                gid: 1000,
                regimes: 0,
            },
            EventBody::Exec {
                old_pid: 12,
                filename: KernelText::until_nul(b"./run.sh"),
                interpreter: KernelText::until_nul(b"/bin/sh"),
                argv: ArgList::new(b"/bin/sh\0./run.sh\0a-long-argu"),
                argv_truncated: true,
                cwd: KernelText::until_nul(b""),
                uid: 0,
                gid: 0,
                regimes: 0,
            },
            EventBody::Exit { status: 3 << 8 },
            EventBody::Exit {
                status: libc::SIGKILL,
            },
            EventBody::ForkRefused { nr: 56, errno: 11 },
            EventBody::ForkRefused {
                nr: 9999,
                errno: 100_000,
            },
            file(Verdict::DeniedRule, Some((3, 1)), b"/etc/shadow"),
            file(Verdict::Allowed, Some((1, 0)), b"/tmp/\xc3\xa4\\x\n\xff"),
            file(Verdict::DeniedUnlisted, None, b"/bin/sh"),
            // A rule index the labels do not know.
            file(Verdict::AllowedLaunch, Some((2, 9)), b""),
            EventBody::Network(connect.clone()),
            EventBody::Network(NetworkRecord {
                family: 10,
                addr: v4_in_v6,
                ..denied.clone()
            }),
            EventBody::Network(NetworkRecord {
                op: NetOp::Bind,
                family: 10,
                sock_type: 2,
                protocol: 17,
                addr: v6,
                rule: Some((NetList::Bind, 0)),
                list: NetList::Bind,
                ..connect.clone()
            }),
            EventBody::Network(NetworkRecord {
                op: NetOp::Socket,
                verdict: NetVerdict::DeniedSocketKind,
                sock_type: 3,
                protocol: 0,
                addr: None,
                ..denied.clone()
            }),
            EventBody::Network(NetworkRecord {
                op: NetOp::Socket,
                verdict: NetVerdict::DeniedFamily,
                family: 99,
                sock_type: 77,
                protocol: 999,
                addr: None,
                ..denied.clone()
            }),
            EventBody::Network(NetworkRecord {
                op: NetOp::Receive,
                peer: v4,
                list: NetList::Bind,
                ..denied.clone()
            }),
            // A rule index the labels do not know.
            EventBody::Network(NetworkRecord {
                rule: Some((NetList::Bind, 5)),
                ..connect.clone()
            }),
            // Allowed by an allow_hosts entry: the host is the event's name (id 1), not the
            // last one the address was handed out for.
            EventBody::Network(NetworkRecord {
                addr: Some((IpAddr::V4(Ipv4Addr::LOCALHOST), 443)),
                rule: Some((NetList::Hosts, 0)),
                list: NetList::Hosts,
                name: 1,
                ..connect.clone()
            }),
            // A name id the table does not have: the address's last name.
            EventBody::Network(NetworkRecord {
                addr: Some((IpAddr::V4(Ipv4Addr::LOCALHOST), 443)),
                rule: Some((NetList::Hosts, 0)),
                list: NetList::Hosts,
                name: 99,
                ..connect.clone()
            }),
            EventBody::Network(NetworkRecord {
                verdict: NetVerdict::RedirectedDns,
                protocol: 17,
                sock_type: 2,
                addr: Some((IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)), 53)),
                rule: None,
                ..connect.clone()
            }),
            EventBody::Network(NetworkRecord {
                verdict: NetVerdict::DeniedDnsOverTls,
                addr: Some((IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)), 853)),
                ..denied.clone()
            }),
            EventBody::Network(NetworkRecord {
                verdict: NetVerdict::DeniedDnsNoResolver,
                family: 10,
                addr: Some((IpAddr::V6(Ipv6Addr::LOCALHOST), 53)),
                ..denied.clone()
            }),
            // Denied on another port than its entry's: the address's last name.
            EventBody::Network(NetworkRecord {
                addr: Some((IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), 22)),
                list: NetList::Hosts,
                ..denied.clone()
            }),
            EventBody::SeccompKill(SeccompKillRecord {
                abi: SyscallAbi::X86_64,
                nr: 59,
            }),
            EventBody::SeccompKill(SeccompKillRecord {
                abi: SyscallAbi::X32,
                nr: 0x4000_0001,
            }),
            EventBody::SeccompKill(SeccompKillRecord {
                abi: SyscallAbi::I386,
                nr: 11,
            }),
            EventBody::SeccompKill(SeccompKillRecord {
                abi: SyscallAbi::Other(0xdead),
                nr: 4000,
            }),
        ]
        .into_iter()
        .chain(socket_calls());
        let start = UNIX_EPOCH + Duration::from_secs(1_795_039_999);
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Event {
                // Steps of about 3 hours, with changing microseconds.
                time: start + Duration::from_nanos(i as u64 * 11_111_111_111_111),
                task: Task {
                    pid: 4_000_001,
                    tgid: if i == 1 { 0 } else { 4_000_000 },
                    comm: KernelText::until_nul(if i % 2 == 0 { b"perl" } else { ODD_COMM }),
                },
                body,
            })
            .collect()
    }

    fn socket_call(op: SocketOp, fd: i32, ret: i64, addr: &'static [u8]) -> EventBody<'static> {
        EventBody::Socket(SocketRecord {
            op,
            fd,
            ret,
            domain: 0,
            sock_type: 0,
            protocol: 0,
            addr,
            addr_unreadable: false,
        })
    }

    fn socket_created(domain: u16, sock_type: u16, protocol: u32, ret: i64) -> EventBody<'static> {
        EventBody::Socket(SocketRecord {
            domain,
            sock_type,
            protocol,
            ..match socket_call(SocketOp::Socket, -1, ret, b"") {
                EventBody::Socket(s) => s,
                _ => unreachable!("a socket body"),
            }
        })
    }

    /// Socket calls in an order that exercises the socket table: a TCP listener bound, listening
    /// and accepting, destinations of every family, sockets the log never saw created, and
    /// failures.
    fn socket_calls() -> Vec<EventBody<'static>> {
        use SocketOp::*;
        const LOOPBACK_8080: &[u8] = b"\x02\x00\x1f\x90\x7f\x00\x00\x01\0\0\0\0\0\0\0\0";
        // 10.1.2.3:5555, handed out for cdn.registry.test.
        const PEER: &[u8] = b"\x02\x00\x15\xb3\x0a\x01\x02\x03\0\0\0\0\0\0\0\0";
        const MAPPED_443: &[u8] =
            b"\x0a\x00\x01\xbb\0\0\0\0\0\0\0\0\0\0\0\0\0\0\xff\xff\x0a\x01\x02\x03\0\0\0\0";
        const V6_LOOPBACK_53: &[u8] =
            b"\x0a\x00\x00\x35\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x05\0\0\0";
        vec![
            socket_created(2, 1, 0, 3),
            socket_call(Bind, 3, 0, LOOPBACK_8080),
            socket_call(Listen, 3, 0, b""),
            socket_call(Accept, 3, 4, PEER),
            // The accepted socket is its listener's kind.
            socket_call(Send, 4, -32, V6_LOOPBACK_53),
            socket_call(Connect, 5, -111, MAPPED_443),
            socket_created(16, 3, 0, 7),
            socket_call(Bind, 7, 0, b"\x10\x00\0\0\0\0\0\0\x01\0\0\0"),
            socket_created(1, 1, 0, 8),
            socket_call(Connect, 8, -2, b"\x01\x00/run/\"q\"\xff.sock\0junk"),
            socket_call(Connect, 8, 0, b"\x01\x00\0ab\0\n\xff"),
            socket_call(Bind, 8, 0, b"\x01\x00"),
            // An unnamed local address.
            socket_call(Listen, 8, 0, b""),
            socket_created(10, 2, 0, -97),
            socket_created(99, 77, 999, 9),
            socket_call(Listen, 12, -9, b""),
            socket_call(Send, 6, 4, b"\x11\x00\x08\x00"),
            EventBody::Socket(SocketRecord {
                addr_unreadable: true,
                ..match socket_call(Connect, 3, -14, b"") {
                    EventBody::Socket(s) => s,
                    _ => unreachable!("a socket body"),
                }
            }),
        ]
    }

    #[test]
    fn every_line_is_its_schema_line() {
        let labels = labels();
        let mut format = LineFormat::new();
        let mut sockets = SocketTable::default();
        let mut out = Vec::new();
        for event in sample_events() {
            out.clear();
            format.line(&mut out, &event, &labels).unwrap();
            let text = String::from_utf8(out.clone()).expect("a line is UTF-8");
            let line = text
                .strip_suffix('\n')
                .unwrap_or_else(|| panic!("{text:?} ends in a newline"));
            assert!(!line.contains('\n'), "one line: {text:?}");
            let expected = schema_line(&event, &labels, &mut sockets);
            assert_eq!(
                line,
                serde_json::to_string(&expected).unwrap(),
                "the line for {event:?}"
            );
            let read = schema::Line::parse(line)
                .unwrap_or_else(|e| panic!("{e}: {line}"))
                .unwrap_or_else(|| panic!("a known event type: {line}"));
            assert_eq!(read, expected, "{line} read back");
            // Serde's own reading of the tagged enum agrees.
            assert_eq!(
                serde_json::from_str::<schema::Line>(line).unwrap(),
                expected
            );
            // And nothing in the line is left out of the schema.
            assert_eq!(
                serde_json::to_value(&read).unwrap(),
                serde_json::from_str::<serde_json::Value>(line).unwrap(),
                "{line} written back"
            );
        }
    }

    #[test]
    fn the_samples_have_every_kind_of_event() {
        let mut seen = [false; BODY_KINDS];
        for event in sample_events() {
            seen[body_kind(&event.body)] = true;
        }
        assert_eq!(seen, [true; BODY_KINDS]);
    }

    #[test]
    fn a_line_that_fails_leaves_nothing_behind() {
        let mut event = sample_events().remove(0);
        event.time = UNIX_EPOCH - Duration::from_secs(1);
        let mut out = b"earlier line\n".to_vec();
        LineFormat::new()
            .line(&mut out, &event, &Labels::default())
            .expect_err("a time before 1970 has no RFC 3339 timestamp");
        assert_eq!(out, b"earlier line\n");
    }
}
