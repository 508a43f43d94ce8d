//! The session's resolver: every DNS query of the session (UDP and TCP to port 53 of any
//! address) is sent here by the kernel's connect and sendmsg programs
//! (`sandtrace-ebpf/src/network.rs`). It answers the names `[network] allow_hosts` covers by
//! resolving them with the host's own configuration, refuses every other name, and admits the
//! addresses it hands out to the kernel before it answers, so that the connect that follows
//! finds them.
//!
//! Without the resolver (no `allow_hosts`), the session's DNS is recorded from its traffic
//! instead ([`DnsTraffic`]).

mod admission;
mod bind;
mod event;
mod hosts_file;
mod message;
mod names;
mod server;
mod traffic;
mod upstream;

use std::net::IpAddr;

pub use admission::GRACE;
pub use bind::BoundResolver;
pub use event::{Decision, DnsQuery, Response, Transport};
pub use names::{NameChange, ResolvedNames};
pub use server::RunningResolver;
pub use traffic::{DnsTraffic, ObservedQuery};

/// Where the resolver admits the addresses it hands out: the kernel's `HOST_ADDRESSES` map in
/// a session (`crate::network::host_addresses`), a plain map in tests.
pub trait AddressAdmission: Send {
    /// Allows connects and sends to `addr` on the ports of `allow_hosts` entry `rule` until
    /// `expires_ns` (`CLOCK_MONOTONIC` nanoseconds; `u64::MAX` for no end). `name` is the id
    /// of the name it was resolved from in the resolver's name table.
    fn admit(
        &mut self,
        addr: IpAddr,
        rule: u32,
        expires_ns: u64,
        name: u32,
    ) -> Result<(), TableFull>;
    /// Removes the entries that expired before `now_ns`.
    fn sweep(&mut self, now_ns: u64);
}

/// The kernel's table of admitted addresses is full (`MAX_HOST_ADDRESSES`): the resolver
/// refuses the answer rather than hand out an address the kernel would not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;
