//! What the session's resolver reports about each query it answered.

use std::{fmt, net::IpAddr, net::SocketAddr, time::SystemTime};

/// How a query reached the resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// Whether the name was one the policy lets the session resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An `allow_hosts` entry covers the name: it was resolved upstream.
    Allow,
    /// Refused without asking anyone: no entry covers the name, or the query was malformed or
    /// of a kind the resolver does not answer.
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// The response codes the resolver answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    Refused,
}

impl Response {
    /// As DNS tools spell it: `NOERROR`, `NXDOMAIN`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoError => "NOERROR",
            Self::FormErr => "FORMERR",
            Self::ServFail => "SERVFAIL",
            Self::NxDomain => "NXDOMAIN",
            Self::Refused => "REFUSED",
        }
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One query and the resolver's answer to it.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsQuery {
    /// When the answer was sent.
    pub time: SystemTime,
    pub transport: Transport,
    /// The client's address as the resolver sees it (a session socket; the kernel rewrote its
    /// destination, not its source).
    pub client: SocketAddr,
    /// As asked, without the trailing dot; empty when the query was malformed.
    pub name: String,
    /// `A`, `AAAA`, `TXT`, `TYPE65`, ...; empty when the query was malformed.
    pub query_type: String,
    pub decision: Decision,
    pub response: Response,
    /// The addresses handed out (and admitted to the kernel).
    pub answers: Vec<IpAddr>,
    /// Of the answer, in seconds (the smallest along its CNAME chain).
    pub ttl: Option<u32>,
    /// The first `allow_hosts` entry covering the name (index in the policy's list).
    pub rule: Option<usize>,
    pub reason: String,
}
