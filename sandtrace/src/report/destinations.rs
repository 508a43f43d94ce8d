//! Where the run tried to reach: every attempt on a remote address, grouped by destination
//! (host name when known, else address) and port, with the processes that tried it.
//!
//! An attempt is a [`Contact`], whatever line reported it: the `socket` lines (every connect
//! and send with an address, in every mode) and the kernel's network decisions (`network`
//! lines, connects and sends). Where the log has socket lines, they count the attempts and
//! the decisions add only their denials and redirects, so that nothing is counted twice. Addresses without a host
//! name are named from the answers the session's resolver handed out (`dns` lines); answers
//! seen in the session's DNS traffic name nothing, since the command's own server may lie.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::{
    ProcessNode, ProcessRef,
    log::{DnsLine, NetworkLine, SocketLine},
};

/// One attempt to reach a remote address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Contact {
    pub tgid: u32,
    pub protocol: String,
    pub address: String,
    pub port: Option<u16>,
    pub host: Option<String>,
    /// `allow`, `deny` or `redirect` (a decision); `ok` or `failed` (a call).
    pub action: String,
    /// From a `socket` line (the call), not a `network` line (the decision).
    pub call: bool,
}

impl Contact {
    /// The destination a network decision names; `None` for local addresses (`bind`,
    /// `receive`) and `socket` calls.
    pub fn from_network(n: &NetworkLine) -> Option<Self> {
        if !matches!(n.operation.as_str(), "connect" | "send") {
            return None;
        }
        Some(Self {
            tgid: n.tgid,
            protocol: n.protocol.clone(),
            address: n.address.clone()?,
            port: n.port,
            host: n.host.clone(),
            action: n.action.clone(),
            call: false,
        })
    }

    /// The destination of a connect or send to an IPv4 or IPv6 address.
    pub fn from_socket(s: &SocketLine) -> Option<Self> {
        if !matches!(s.operation.as_str(), "connect" | "send") {
            return None;
        }
        Some(Self {
            tgid: s.tgid,
            protocol: s
                .protocol
                .clone()
                .or_else(|| s.socket_type.clone())
                .unwrap_or_default(),
            address: s.address.address.clone()?,
            port: s.address.port,
            host: s.host.clone(),
            action: if s.success { "ok" } else { "failed" }.to_owned(),
            call: true,
        })
    }
}

/// A destination, with every process that tried it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    /// The host name, when the policy or the session's resolver named the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The addresses tried (one, unless a host name resolved to several).
    pub addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub protocol: String,
    pub attempts: u64,
    pub denied: u64,
    /// Sent to the session's resolver instead (DNS queries).
    pub redirected: u64,
    pub processes: Vec<ProcessRef>,
}

/// A destination's name (host name, else address), port and protocol.
type GroupKey = (String, Option<u16>, String);

/// Collects contacts and resolver answers while the log is read.
#[derive(Debug, Default)]
pub struct Destinations {
    contacts: BTreeMap<Contact, u64>,
    /// Address → the last name the resolver handed it out for.
    answered: HashMap<String, String>,
}

impl Destinations {
    pub fn add(&mut self, contact: Contact) {
        *self.contacts.entry(contact).or_default() += 1;
    }

    pub fn answer(&mut self, d: &DnsLine) {
        // An observed answer is what the command's own server claimed: it names nothing.
        if d.action == "observed" {
            return;
        }
        for address in &d.answers {
            self.answered.insert(address.clone(), d.name.clone());
        }
    }

    /// Grouped, most attempted first (then by name).
    pub fn finish(self, nodes: &[ProcessNode]) -> Vec<Destination> {
        let by_pid: HashMap<u32, &ProcessNode> = nodes.iter().map(|n| (n.pid, n)).collect();
        let calls_seen = self.contacts.keys().any(|c| c.call);
        let mut groups: BTreeMap<GroupKey, (Destination, BTreeSet<u32>)> = BTreeMap::new();
        for (contact, count) in self.contacts {
            let host = contact
                .host
                .clone()
                .or_else(|| self.answered.get(&contact.address).cloned());
            let key = (
                host.clone().unwrap_or_else(|| contact.address.clone()),
                contact.port,
                contact.protocol.clone(),
            );
            let (d, pids) = groups.entry(key).or_insert_with(|| {
                let destination = Destination {
                    host,
                    addresses: Vec::new(),
                    port: contact.port,
                    protocol: contact.protocol.clone(),
                    attempts: 0,
                    denied: 0,
                    redirected: 0,
                    processes: Vec::new(),
                };
                (destination, BTreeSet::new())
            });
            if !d.addresses.contains(&contact.address) {
                d.addresses.push(contact.address.clone());
            }
            if contact.call || !calls_seen {
                d.attempts += count;
            }
            match contact.action.as_str() {
                "deny" => d.denied += count,
                "redirect" => d.redirected += count,
                _ => {}
            }
            pids.insert(contact.tgid);
        }
        let mut list: Vec<Destination> = groups
            .into_values()
            .map(|(mut d, pids)| {
                d.processes = pids
                    .into_iter()
                    .map(|pid| ProcessRef::find(&by_pid, pid))
                    .collect();
                d
            })
            .collect();
        list.sort_by_key(|d| std::cmp::Reverse(d.attempts));
        list
    }
}
