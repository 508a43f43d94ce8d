//! The names the session's resolver handed addresses out for, shared with the output so that
//! network events can say which host an address belongs to.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
};

use sandtrace_common::network::NO_HOST_NAME;

/// Most names, and most addresses, the table keeps (about 100 MB at most): a command under a
/// wildcard entry can ask for endless names.
pub const MAX_NAMES: usize = 1 << 20;

/// Name ids (those of `HostAddress::name` and `NetworkEvent::name`, from 1) and, per address,
/// the last name it was handed out for. Cheap to clone: the clones share one table.
#[derive(Debug, Clone, Default)]
pub struct ResolvedNames(Arc<Mutex<NameTable>>);

#[derive(Debug, Default)]
struct NameTable {
    /// `names[id - 1]`.
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
    by_address: HashMap<IpAddr, u32>,
    /// Every change since the last [`ResolvedNames::take_changes`], once a capture asked for
    /// them ([`ResolvedNames::keep_changes`]).
    changes: Option<Vec<NameChange>>,
}

/// One change of the table, as a capture (`--record`) stores it to name addresses the same
/// way when it is read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameChange {
    /// The name got the next id.
    Name(Arc<str>),
    /// The address was handed out for the name of this id.
    Address(IpAddr, u32),
}

impl NameTable {
    /// Keeps `change` for the capture, if one asked. The capture's writer takes them before
    /// each batch of records, and every query makes a batch (its `dns` line); only a writer
    /// stopped by an error leaves them, so beyond [`MAX_NAMES`] they are dropped: that capture
    /// is reported incomplete anyway.
    fn keep(&mut self, change: NameChange) {
        if let Some(changes) = &mut self.changes
            && changes.len() < MAX_NAMES
        {
            changes.push(change);
        }
    }
}

impl ResolvedNames {
    fn table(&self) -> std::sync::MutexGuard<'_, NameTable> {
        // The table stays consistent through a panic elsewhere: every update is one insert.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The id of `name` (lower case, no trailing dot), given it on first use; `None` when
    /// the table has [`MAX_NAMES`] names and this is not one of them.
    pub fn id(&self, name: &str) -> Option<u32> {
        let mut table = self.table();
        if let Some(&id) = table.ids.get(name) {
            return Some(id);
        }
        if table.names.len() >= MAX_NAMES {
            return None;
        }
        let name: Arc<str> = name.into();
        table.names.push(name.clone());
        let id = table.names.len() as u32;
        table.ids.insert(name.clone(), id);
        table.keep(NameChange::Name(name));
        Some(id)
    }

    /// The name of id `id`; `None` for [`NO_HOST_NAME`] and ids never given.
    pub fn name(&self, id: u32) -> Option<Arc<str>> {
        let index = id.checked_sub(1)? as usize;
        self.table().names.get(index).cloned()
    }

    /// Records that `addr` was handed out for the name `id` (beyond [`MAX_NAMES`] addresses,
    /// new ones go unnamed in the output).
    pub fn handed_out(&self, addr: IpAddr, id: u32) {
        let mut table = self.table();
        let addr = addr.to_canonical();
        if (table.by_address.len() < MAX_NAMES || table.by_address.contains_key(&addr))
            && table.by_address.insert(addr, id) != Some(id)
        {
            table.keep(NameChange::Address(addr, id));
        }
    }

    /// From now on, keeps every change for [`Self::take_changes`]; the first changes taken
    /// make the table as it is now.
    pub fn keep_changes(&self) {
        let mut table = self.table();
        if table.changes.is_none() {
            let mut now: Vec<NameChange> =
                table.names.iter().cloned().map(NameChange::Name).collect();
            now.extend(
                table
                    .by_address
                    .iter()
                    .map(|(&addr, &id)| NameChange::Address(addr, id)),
            );
            table.changes = Some(now);
        }
    }

    /// The changes since the last call (with [`Self::keep_changes`]), oldest first.
    pub fn take_changes(&self) -> Vec<NameChange> {
        self.table()
            .changes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Makes a change read back from a capture; fails when it does not fit the table (a name
    /// whose id is not the next one: the capture is damaged).
    pub fn apply(&self, change: &NameChange) -> Result<(), String> {
        match change {
            NameChange::Name(name) => {
                let expected = self.table().names.len() + 1;
                match self.id(name) {
                    Some(id) if id as usize == expected => Ok(()),
                    _ => Err(format!("the name {name:?} does not take id {expected}")),
                }
            }
            NameChange::Address(addr, id) => {
                self.handed_out(*addr, *id);
                Ok(())
            }
        }
    }

    /// The last name `addr` (either spelling of an IPv4 address) was handed out for.
    pub fn for_address(&self, addr: IpAddr) -> Option<Arc<str>> {
        let id = *self.table().by_address.get(&addr.to_canonical())?;
        self.name(id)
    }

    /// The host a network event is about: the name its deciding `allow_hosts` entry admitted
    /// the address for (`name_id`), or else the last name the address was handed out for.
    pub fn host(&self, name_id: u32, addr: Option<IpAddr>) -> Option<Arc<str>> {
        if name_id != NO_HOST_NAME
            && let Some(name) = self.name(name_id)
        {
            return Some(name);
        }
        self.for_address(addr?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_one_and_addresses_by_last_name() {
        let names = ResolvedNames::default();
        assert_eq!(names.id("a.test"), Some(1));
        assert_eq!(names.id("b.test"), Some(2));
        assert_eq!(names.id("a.test"), Some(1));
        assert_eq!(names.name(NO_HOST_NAME), None);
        assert_eq!(names.name(3), None);
        assert_eq!(names.name(2).as_deref(), Some("b.test"));
        let addr: IpAddr = "10.0.0.1".parse().unwrap();
        names.handed_out(addr, 1);
        names.clone().handed_out(addr, 2);
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(names.for_address(mapped).as_deref(), Some("b.test"));
        assert_eq!(names.host(1, Some(mapped)).as_deref(), Some("a.test"));
        assert_eq!(
            names.host(NO_HOST_NAME, Some(addr)).as_deref(),
            Some("b.test")
        );
        assert_eq!(names.host(NO_HOST_NAME, None), None);
    }
}
