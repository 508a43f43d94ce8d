//! The resolver's side of the kernel's table of admitted addresses: when each (address,
//! entry) pair it admitted may be used until, so that a later answer only ever extends it.

use std::{collections::HashMap, net::IpAddr, time::Duration};

use super::{AddressAdmission, TableFull};

/// How long an address stays allowed after its answer's TTL ran out. Clients keep answers
/// longer than the TTL says: npm's DNS cache keeps them 5 minutes whatever the TTL, glibc
/// programs reuse an address for as long as they like, and a connection retried after the
/// TTL must not fail because the session's resolver was not asked again.
pub const GRACE: Duration = Duration::from_secs(300);

/// Admitted addresses, in front of the kernel's table.
pub struct Admissions {
    table: Box<dyn AddressAdmission>,
    /// Until when each (address, entry) pair is admitted (`CLOCK_MONOTONIC` ns).
    until: HashMap<(IpAddr, u32), u64>,
}

impl Admissions {
    pub fn new(table: Box<dyn AddressAdmission>) -> Self {
        Self {
            table,
            until: HashMap::new(),
        }
    }

    /// Admits every address of `addrs` for every entry of `rules` until `expires_ns`, for the
    /// name `name`. A pair admitted until later already (an `/etc/hosts` address, or a longer
    /// answer of another name on the same address) keeps its end: answers never shorten
    /// what an earlier answer allowed. When the table is full, its expired entries are swept
    /// and the admission is tried once more.
    pub fn admit(
        &mut self,
        addrs: &[IpAddr],
        rules: &[u32],
        expires_ns: u64,
        name: u32,
    ) -> Result<(), TableFull> {
        for &addr in addrs {
            let addr = addr.to_canonical();
            for &rule in rules {
                if self
                    .until
                    .get(&(addr, rule))
                    .is_some_and(|&t| t >= expires_ns)
                {
                    continue;
                }
                if self.table.admit(addr, rule, expires_ns, name).is_err() {
                    let now = monotonic_ns();
                    self.table.sweep(now);
                    self.until.retain(|_, &mut t| t >= now);
                    self.table.admit(addr, rule, expires_ns, name)?;
                }
                self.until.insert((addr, rule), expires_ns);
            }
        }
        Ok(())
    }
}

/// When an answer with `ttl` seconds given now stops allowing its addresses: after the TTL and
/// [`GRACE`].
pub fn expiry_after(ttl: u32) -> u64 {
    let lifetime = Duration::from_secs(u64::from(ttl)) + GRACE;
    monotonic_ns().saturating_add(lifetime.as_nanos() as u64)
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the kernel programs' clock (`bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

#[cfg(test)]
pub mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// One call of [`AddressAdmission::admit`] that succeeded.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Admitted {
        pub addr: IpAddr,
        pub rule: u32,
        pub expires_ns: u64,
        pub name: u32,
    }

    /// A table of at most `capacity` entries that records what was admitted and swept.
    #[derive(Debug, Clone, Default)]
    pub struct FakeTable {
        pub admitted: Arc<Mutex<Vec<Admitted>>>,
        pub sweeps: Arc<Mutex<Vec<u64>>>,
        pub capacity: usize,
    }

    impl FakeTable {
        pub fn with_capacity(capacity: usize) -> Self {
            Self {
                capacity,
                ..Self::default()
            }
        }

        pub fn admitted(&self) -> Vec<Admitted> {
            self.admitted.lock().unwrap().clone()
        }
    }

    impl AddressAdmission for FakeTable {
        fn admit(
            &mut self,
            addr: IpAddr,
            rule: u32,
            expires_ns: u64,
            name: u32,
        ) -> Result<(), TableFull> {
            let mut admitted = self.admitted.lock().unwrap();
            admitted.retain(|a| (a.addr, a.rule) != (addr, rule));
            if admitted.len() >= self.capacity {
                return Err(TableFull);
            }
            admitted.push(Admitted {
                addr,
                rule,
                expires_ns,
                name,
            });
            Ok(())
        }

        fn sweep(&mut self, now_ns: u64) {
            self.sweeps.lock().unwrap().push(now_ns);
            self.admitted
                .lock()
                .unwrap()
                .retain(|a| a.expires_ns >= now_ns);
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn later_answers_extend_never_shorten() {
        let table = FakeTable::with_capacity(10);
        let mut admissions = Admissions::new(Box::new(table.clone()));
        admissions
            .admit(&[ip("10.0.0.1")], &[0, 2], u64::MAX, 1)
            .unwrap();
        admissions
            .admit(&[ip("::ffff:10.0.0.1")], &[0], 5, 2)
            .unwrap();
        admissions.admit(&[ip("10.0.0.2")], &[0], 5, 2).unwrap();
        admissions.admit(&[ip("10.0.0.2")], &[0], 9, 3).unwrap();
        let admitted = table.admitted();
        assert_eq!(admitted.len(), 3);
        assert!(admitted.iter().any(|a| a.addr == ip("10.0.0.1")
            && a.rule == 0
            && a.expires_ns == u64::MAX
            && a.name == 1));
        assert!(
            admitted
                .iter()
                .any(|a| a.addr == ip("10.0.0.2") && a.expires_ns == 9 && a.name == 3)
        );
    }

    #[test]
    fn a_full_table_is_swept_then_tried_once_more() {
        let table = FakeTable::with_capacity(1);
        let mut admissions = Admissions::new(Box::new(table.clone()));
        // Expired long ago: swept to make room.
        admissions.admit(&[ip("10.0.0.1")], &[0], 1, 1).unwrap();
        admissions
            .admit(&[ip("10.0.0.2")], &[0], u64::MAX, 1)
            .unwrap();
        assert_eq!(table.sweeps.lock().unwrap().len(), 1);
        assert_eq!(
            admissions.admit(&[ip("10.0.0.3")], &[0], u64::MAX, 1),
            Err(TableFull)
        );
        assert_eq!(table.sweeps.lock().unwrap().len(), 2);
        assert!(expiry_after(0) >= monotonic_ns() + GRACE.as_nanos() as u64 - 1_000_000_000);
    }
}
