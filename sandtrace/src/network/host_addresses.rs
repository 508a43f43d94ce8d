//! The kernel's table of addresses the session's resolver handed out (`HOST_ADDRESSES`,
//! `sandtrace-ebpf/src/network.rs`): connects and sends to an address there are allowed on the
//! ports of its `allow_hosts` entry until the entry expires. The resolver fills it through
//! [`AddressAdmission`] before it answers.

use std::{collections::HashMap as StdHashMap, net::IpAddr};

use aya::maps::{HashMap, MapData, MapError};
use sandtrace_common::network::{HostAddress, HostAddressKey};

use crate::{
    dns::{AddressAdmission, TableFull},
    policy::network::canonical,
};

/// `HOST_ADDRESSES`, taken out of the session's eBPF object
/// (`SessionPrograms::take_host_addresses`).
pub struct HostAddressMap {
    map: HashMap<MapData, HostAddressKey, HostAddress>,
    /// The keys in `map` with their expiry, so that [`AddressAdmission::sweep`] needs no walk
    /// over the kernel map (whose iteration restarts when an entry goes away under it).
    admitted: StdHashMap<HostAddressKey, u64>,
}

impl HostAddressMap {
    pub fn new(map: HashMap<MapData, HostAddressKey, HostAddress>) -> Self {
        Self {
            map,
            admitted: StdHashMap::new(),
        }
    }
}

/// The kernel's key for `addr` under `allow_hosts` entry `rule`: the address in the programs'
/// IPv6 form, an IPv4-mapped IPv6 address as the IPv4 address it maps (the programs see a
/// connect to either as the same destination).
pub fn key(addr: IpAddr, rule: u32) -> HostAddressKey {
    HostAddressKey {
        addr: super::words(canonical(addr)),
        rule,
    }
}

impl AddressAdmission for HostAddressMap {
    /// An address admitted again under the same entry keeps the later expiry (and its name):
    /// several names, or answers with different TTLs, may share one address, and each client
    /// may connect until its own answer expires.
    ///
    /// Every failure is reported as [`TableFull`] (the kernel says `E2BIG` when the table is
    /// full): the address is then not admitted, and the resolver must not hand it out.
    fn admit(
        &mut self,
        addr: IpAddr,
        rule: u32,
        expires_ns: u64,
        name: u32,
    ) -> Result<(), TableFull> {
        let key = key(addr, rule);
        if self
            .admitted
            .get(&key)
            .is_some_and(|&admitted| admitted >= expires_ns)
        {
            return Ok(());
        }
        let value = HostAddress {
            expires_ns,
            name,
            _pad: 0,
        };
        self.map.insert(key, value, 0).map_err(|_| TableFull)?;
        self.admitted.insert(key, expires_ns);
        Ok(())
    }

    fn sweep(&mut self, now_ns: u64) {
        // The programs allow an entry while `expires_ns > now`: at `now_ns` these are dead.
        let expired: Vec<HostAddressKey> = self
            .admitted
            .iter()
            .filter(|&(_, &expires_ns)| expires_ns <= now_ns)
            .map(|(key, _)| *key)
            .collect();
        for key in expired {
            match self.map.remove(&key) {
                Ok(()) => {}
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                // Kept for the next sweep: the programs ignore it meanwhile, it only holds
                // its place in the table.
                Err(_) => continue,
            }
            self.admitted.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandtrace_common::network::V4_MAPPED_WORD;

    fn word(bytes: [u8; 4]) -> u32 {
        u32::from_ne_bytes(bytes)
    }

    #[test]
    fn ipv4_addresses_are_keyed_in_the_programs_ipv4_mapped_form() {
        let k = key("192.0.2.7".parse().unwrap(), 3);
        assert_eq!(k.addr, [0, 0, V4_MAPPED_WORD, word([192, 0, 2, 7])]);
        assert_eq!(k.rule, 3);
    }

    #[test]
    fn an_ipv4_mapped_ipv6_address_is_the_ipv4_address() {
        assert_eq!(
            key("::ffff:192.0.2.7".parse().unwrap(), 1),
            key("192.0.2.7".parse().unwrap(), 1)
        );
    }

    #[test]
    fn ipv6_addresses_are_their_bytes_in_network_order() {
        let k = key("2001:db8::1:2".parse().unwrap(), 0);
        assert_eq!(
            k.addr,
            [word([0x20, 0x01, 0x0d, 0xb8]), 0, 0, word([0, 1, 0, 2])]
        );
        // Not mistaken for IPv4: neither the IPv4-compatible form nor NAT64's prefix.
        assert_ne!(
            key("::192.0.2.7".parse().unwrap(), 0).addr[2],
            V4_MAPPED_WORD
        );
        assert_ne!(
            key("64:ff9b::192.0.2.7".parse().unwrap(), 0),
            key("192.0.2.7".parse().unwrap(), 0)
        );
    }

    #[test]
    fn the_same_address_under_two_entries_is_two_keys() {
        let addr = "192.0.2.7".parse().unwrap();
        assert_ne!(key(addr, 0), key(addr, 1));
    }
}
