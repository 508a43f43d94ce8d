//! Resolving allowed names with the host's own resolver configuration (`/etc/resolv.conf`,
//! `/etc/hosts`), through hickory's resolver: it follows CNAME chains and caches answers.

use std::{net::IpAddr, time::Instant};

use anyhow::{Context as _, Result};
use hickory_resolver::{
    TokioResolver,
    proto::rr::{Name, RecordType},
};

/// What the upstream resolvers said about one name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The addresses, and the smallest TTL along the chain that led to them.
    Addresses { addrs: Vec<IpAddr>, ttl: u32 },
    /// The name exists but has no record of the type.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// No answer (timeout, unreachable, SERVFAIL upstream, ...).
    Failed(String),
}

pub struct Upstream(TokioResolver);

impl Upstream {
    /// The host's configuration. Must run inside the resolver's tokio runtime.
    pub fn system() -> Result<Self> {
        let resolver = TokioResolver::builder_tokio()
            .context(
                "reading the host's resolver configuration (/etc/resolv.conf) for the \
                 session's resolver",
            )?
            .build()
            .context("setting up the session's upstream resolver")?;
        Ok(Self(resolver))
    }

    /// Name servers of `config` only, without `/etc/hosts` (tests).
    #[cfg(test)]
    pub fn with_config(config: hickory_resolver::config::ResolverConfig) -> Result<Self> {
        let mut builder = TokioResolver::builder_with_config(
            config,
            hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
        );
        builder.options_mut().use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        Ok(Self(builder.build()?))
    }

    /// The `record_type` (A or AAAA) addresses of `name`, an absolute name: the client did its
    /// own search-domain walk, so none is appended here.
    pub async fn addresses(&self, name: &Name, record_type: RecordType) -> Answer {
        let mut name = name.clone();
        name.set_fqdn(true);
        let lookup = match self.0.lookup(name, record_type).await {
            Ok(lookup) => lookup,
            Err(e) if e.is_nx_domain() => return Answer::NxDomain,
            Err(e) if e.is_no_records_found() => return Answer::NoData,
            Err(e) => return Answer::Failed(e.to_string()),
        };
        let addrs: Vec<IpAddr> = lookup
            .answers()
            .iter()
            .filter(|r| r.record_type() == record_type)
            .filter_map(|r| r.data.ip_addr())
            .collect();
        if addrs.is_empty() {
            return Answer::NoData;
        }
        // Every record of the chain (CNAMEs included) bounds how long the answer holds; a
        // cached answer holds until the cache's deadline.
        let records = lookup.answers().iter().map(|r| r.ttl).min();
        let remaining = lookup
            .valid_until()
            .saturating_duration_since(Instant::now())
            .as_secs();
        let ttl = records
            .unwrap_or(0)
            .min(u32::try_from(remaining).unwrap_or(u32::MAX));
        Answer::Addresses { addrs, ttl }
    }
}
