//! What the event log knows of the session's sockets, by process and fd, from the socket
//! events before: the family, type and protocol `socket` created it with (an accepted socket:
//! its listener's) and the local address of its `bind`, so that a `connect`, `listen` or
//! `accept` line names them.
//!
//! A best effort, in the order the events arrive: `close` is not recorded, so an entry lasts
//! until `socket` or `accept` returns its fd again (a fd reused by `open`, `dup2` or a received
//! `SCM_RIGHTS` keeps a stale entry); sockets that reach a fd any other way (`dup`,
//! `socketpair`, `SCM_RIGHTS`, created before the session) are unknown, and their lines name
//! only what the call's own address says. A new process starts with a copy of its parent's
//! entries.

use std::{borrow::Cow, collections::HashMap};

use crate::{
    events::{Event, EventBody, SocketRecord},
    sockaddr::{AF_INET, AF_INET6, SockAddr},
};
use sandtrace_common::network::SocketOp;

/// Most sockets remembered; later ones are unknown (memory stays bounded).
const MAX_SOCKETS: usize = 1 << 16;

const SOCK_STREAM: u16 = 1;
const SOCK_DGRAM: u16 = 2;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;

/// One socket as its events described it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownSocket {
    /// `AF_*`.
    pub domain: u16,
    /// `SOCK_*`.
    pub sock_type: u16,
    /// The protocol, the default one named (`tcp` for an IPv4/IPv6 stream socket); for a
    /// netlink socket its `NETLINK_*` family.
    pub protocol: u32,
    /// The address of its successful `bind`, as passed.
    pub local: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
pub struct SocketTable {
    by_fd: HashMap<(u32, i32), KnownSocket>,
}

impl SocketTable {
    /// Takes in one event (in log order); for a socket event, returns what is known of the
    /// socket the call was made on (for `socket`, the one it created).
    pub fn observe(&mut self, event: &Event<'_>) -> Option<&KnownSocket> {
        let tgid = event.task.tgid;
        match &event.body {
            EventBody::Socket(s) => self.socket_call(tgid, s),
            EventBody::Fork {
                child_pid,
                child_tgid,
            } if child_pid == child_tgid => {
                let inherited: Vec<_> = self
                    .by_fd
                    .iter()
                    .filter(|((owner, _), _)| *owner == tgid)
                    .map(|(&(_, fd), known)| ((*child_tgid, fd), known.clone()))
                    .collect();
                for (key, known) in inherited {
                    self.insert(key, known);
                }
                None
            }
            // The thread-group leader's exit (the only one reported): the process's fds close
            // (or soon will, with its last thread).
            EventBody::Exit { .. } => {
                self.by_fd.retain(|(owner, _), _| *owner != tgid);
                None
            }
            _ => None,
        }
    }

    fn socket_call(&mut self, tgid: u32, s: &SocketRecord<'_>) -> Option<&KnownSocket> {
        let succeeded = s.ret >= 0;
        let fd = match s.op {
            SocketOp::Socket if succeeded => {
                let key = (tgid, s.ret as i32);
                self.by_fd.remove(&key);
                self.insert(key, created(s));
                key.1
            }
            SocketOp::Socket => return None,
            SocketOp::Bind if succeeded => {
                if let Some(known) = self.by_fd.get_mut(&(tgid, s.fd)) {
                    known.local = Some(s.addr.to_vec());
                }
                s.fd
            }
            SocketOp::Accept if succeeded => {
                let accepted = self.by_fd.get(&(tgid, s.fd)).cloned();
                let key = (tgid, s.ret as i32);
                self.by_fd.remove(&key);
                if let Some(listener) = accepted {
                    self.insert(key, listener);
                }
                s.fd
            }
            _ => s.fd,
        };
        self.by_fd.get(&(tgid, fd))
    }

    fn insert(&mut self, key: (u32, i32), known: KnownSocket) {
        if self.by_fd.len() < MAX_SOCKETS || self.by_fd.contains_key(&key) {
            self.by_fd.insert(key, known);
        }
    }
}

/// What a socket line says of its socket: for `socket`, what the call asked for (whether or
/// not it succeeded); otherwise what the table knows.
pub fn described<'k>(
    s: &SocketRecord<'_>,
    known: Option<&'k KnownSocket>,
) -> Option<Cow<'k, KnownSocket>> {
    match s.op {
        SocketOp::Socket => Some(Cow::Owned(created(s))),
        _ => known.map(Cow::Borrowed),
    }
}

/// The socket a line is about: the one the call was made on, or the one `socket` created
/// (`None` when it failed).
pub fn socket_fd(s: &SocketRecord<'_>) -> Option<i32> {
    match s.op {
        SocketOp::Socket => (s.ret >= 0).then_some(s.ret as i32),
        _ => Some(s.fd),
    }
}

/// For `listen` and `accept`: the socket's local address, from its `bind`.
pub fn local_address<'k>(
    s: &SocketRecord<'_>,
    known: Option<&'k KnownSocket>,
) -> Option<SockAddr<'k>> {
    match s.op {
        SocketOp::Listen | SocketOp::Accept => SockAddr::parse(known?.local.as_deref()?),
        _ => None,
    }
}

/// A socket as `socket` created it, its default protocol named.
fn created(s: &SocketRecord<'_>) -> KnownSocket {
    let inet = matches!(s.domain, AF_INET | AF_INET6);
    let protocol = match (s.protocol, s.sock_type) {
        (0, SOCK_STREAM) if inet => IPPROTO_TCP,
        (0, SOCK_DGRAM) if inet => IPPROTO_UDP,
        (protocol, _) => protocol,
    };
    KnownSocket {
        domain: s.domain,
        sock_type: s.sock_type,
        protocol,
        local: None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::events::{KernelText, Task};

    fn event(tgid: u32, body: EventBody<'static>) -> Event<'static> {
        Event {
            time: UNIX_EPOCH,
            task: Task {
                pid: tgid,
                tgid,
                comm: KernelText::until_nul(b"t"),
            },
            body,
        }
    }

    fn call(op: SocketOp, fd: i32, ret: i64) -> EventBody<'static> {
        EventBody::Socket(SocketRecord {
            op,
            fd,
            ret,
            domain: AF_INET6,
            sock_type: SOCK_DGRAM,
            protocol: 0,
            addr: b"",
            addr_unreadable: false,
        })
    }

    #[test]
    fn a_new_process_inherits_its_parents_sockets_until_it_exits() {
        let mut table = SocketTable::default();
        let udp = KnownSocket {
            domain: AF_INET6,
            sock_type: SOCK_DGRAM,
            protocol: IPPROTO_UDP,
            local: None,
        };
        let created = table.observe(&event(10, call(SocketOp::Socket, -1, 5)));
        assert_eq!(created, Some(&udp));
        let fork = EventBody::Fork {
            child_pid: 11,
            child_tgid: 11,
        };
        assert_eq!(table.observe(&event(10, fork)), None);
        let child_send = event(11, call(SocketOp::Send, 5, 1));
        assert_eq!(table.observe(&child_send), Some(&udp));
        // Another process's fd 5 is not this socket.
        assert_eq!(table.observe(&event(12, call(SocketOp::Send, 5, 1))), None);
        table.observe(&event(11, EventBody::Exit { status: 0 }));
        assert_eq!(table.observe(&child_send), None);
        assert_eq!(
            table.observe(&event(10, call(SocketOp::Send, 5, 1))),
            Some(&udp)
        );
    }
}
