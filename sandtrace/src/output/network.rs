//! Names and wording for network events, shared by the JSONL log and the terminal.

use std::borrow::Cow;

use sandtrace_common::network::{NetOp, NetVerdict, SocketOp};

use super::RuleLabel;
use crate::{
    events::{NetList, NetworkRecord},
    policy::{EffectivePolicy, Located, hosts::HostRule, model::NetworkList, network::AddressRule},
};

/// The policy's `[network]` rules as events name them.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NetworkRules {
    connect: Vec<RuleLabel>,
    bind: Vec<RuleLabel>,
    hosts: Vec<RuleLabel>,
}

impl NetworkRules {
    pub fn for_policy(policy: &EffectivePolicy) -> Self {
        Self {
            connect: labels(NetworkList::Connect, &policy.allow_connect),
            bind: labels(NetworkList::Bind, &policy.allow_bind),
            hosts: policy.allow_hosts.iter().map(host_label).collect(),
        }
    }

    pub fn label(&self, list: NetList, index: usize) -> Option<&RuleLabel> {
        match list {
            NetList::Connect => self.connect.get(index),
            NetList::Bind => self.bind.get(index),
            NetList::Hosts => self.hosts.get(index),
        }
    }

    /// Whether the policy has any address rule (otherwise the network is simply off).
    fn any(&self) -> bool {
        !self.connect.is_empty() || !self.bind.is_empty() || !self.hosts.is_empty()
    }

    /// Why the kernel decided as it did, in words.
    pub fn reason(&self, n: &NetworkRecord) -> &'static str {
        match n.verdict {
            NetVerdict::Allowed if n.list == NetList::Hosts => {
                "the session's resolver handed this address out for a name the rule covers"
            }
            NetVerdict::Allowed => "allowed by rule",
            NetVerdict::DeniedSocketKind => {
                "only TCP and UDP sockets may be created while the network is restricted"
            }
            NetVerdict::DeniedFamily => {
                "this socket family reaches the network and is refused while it is restricted"
            }
            NetVerdict::DeniedBaseline => {
                "this socket family or protocol is refused in every session: the kernel could \
                 load a module for it"
            }
            NetVerdict::RedirectedDns => {
                "sent to the session's resolver instead, as every DNS query is; its dns event \
                 says what it answered"
            }
            NetVerdict::DeniedDnsOverTls => {
                "DNS over TLS (port 853) is refused: names resolve through the session's \
                 resolver only"
            }
            NetVerdict::DeniedDnsNoResolver => {
                "an IPv6-only DNS query, and the session's resolver has no IPv6 address (the \
                 host has no IPv6 loopback)"
            }
            NetVerdict::DeniedRegime => {
                "the process is in an after_exec regime whose [network] does not keep a rule \
                 that allows this"
            }
            NetVerdict::DeniedNoRule if !self.any() => "network disabled",
            NetVerdict::DeniedNoRule => match (n.op, n.list) {
                (NetOp::Receive, _) => {
                    "receiving on an address no allow_bind rule covers (listen or receive \
                     without an allowed bind)"
                }
                (_, NetList::Bind) => "no allow_bind rule covers this address",
                (_, NetList::Connect | NetList::Hosts) if !self.hosts.is_empty() => {
                    "no allow_connect rule covers this address, and the session's resolver did \
                     not hand it out for a name an allow_hosts entry covers on this port"
                }
                (_, NetList::Connect | NetList::Hosts) => {
                    "no allow_connect rule covers this address"
                }
            },
        }
    }
}

fn labels(list: NetworkList, rules: &[Located<AddressRule>]) -> Vec<RuleLabel> {
    rules
        .iter()
        .map(|r| RuleLabel {
            kind: list.key(),
            pattern: r.value.to_string(),
            source: r.origin.to_string(),
        })
        .collect()
}

/// The rule kind of `allow_hosts` entries.
pub const HOSTS_KIND: &str = "allow_hosts";

fn host_label(rule: &Located<HostRule>) -> RuleLabel {
    RuleLabel {
        kind: HOSTS_KIND,
        pattern: rule.value.to_string(),
        source: rule.origin.to_string(),
    }
}

/// `allow`, `deny`, or `redirect` for a DNS query sent to the session's resolver.
pub fn action_name(verdict: NetVerdict) -> &'static str {
    match verdict {
        NetVerdict::RedirectedDns => "redirect",
        v if v.is_denied() => "deny",
        _ => "allow",
    }
}

pub fn op_name(op: NetOp) -> &'static str {
    match op {
        NetOp::Connect => "connect",
        NetOp::Send => "send",
        NetOp::Bind => "bind",
        NetOp::Socket => "socket",
        NetOp::Receive => "receive",
    }
}

pub fn socket_op_name(op: SocketOp) -> &'static str {
    match op {
        SocketOp::Socket => "socket",
        SocketOp::Connect => "connect",
        SocketOp::Send => "send",
        SocketOp::Bind => "bind",
        SocketOp::Listen => "listen",
        SocketOp::Accept => "accept",
    }
}

/// `tcp`, `udp`, `icmp`, ...; `raw` for raw sockets of an unnamed protocol.
pub fn protocol_name(protocol: u16, sock_type: u16) -> Cow<'static, str> {
    const SOCK_RAW: u16 = 3;
    match protocol {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        136 => "udplite".into(),
        262 => "mptcp".into(),
        255 => "raw".into(),
        0 if sock_type == SOCK_RAW => "raw".into(),
        0 => "default".into(),
        other => format!("protocol {other}").into(),
    }
}

/// `ipv4`, `ipv6`, `packet`, ...
pub fn family_name(family: u16) -> Cow<'static, str> {
    match family {
        1 => "unix".into(),
        2 => "ipv4".into(),
        10 => "ipv6".into(),
        16 => "netlink".into(),
        17 => "packet".into(),
        29 => "can".into(),
        30 => "tipc".into(),
        31 => "bluetooth".into(),
        38 => "alg".into(),
        40 => "vsock".into(),
        41 => "kcm".into(),
        43 => "smc".into(),
        44 => "xdp".into(),
        45 => "mctp".into(),
        other => format!("family {other}").into(),
    }
}

/// `stream`, `dgram`, `raw`, ...
pub fn sock_type_name(sock_type: u16) -> Cow<'static, str> {
    match sock_type {
        1 => "stream".into(),
        2 => "dgram".into(),
        3 => "raw".into(),
        4 => "rdm".into(),
        5 => "seqpacket".into(),
        6 => "dccp".into(),
        10 => "packet".into(),
        other => format!("type {other}").into(),
    }
}

/// `127.0.0.1:80`, `[::1]:80`.
pub fn endpoint(addr: std::net::IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}
