//! `[[after_exec]]` regimes: which of them each process of the session is in.
//!
//! A process enters a regime when it executes one of the regime's `programs` (the path
//! automaton marks those paths with `KIND_ENTER`, see [`crate::path_policy::regime_kinds`]),
//! inherits its parent's regimes when it is forked, and never leaves one. The state is kept per
//! thread group (`REGIME_OF`, keyed by the tgid in the initial PID namespace), so threads and
//! io_uring workers share their process's regimes. Only processes in at least one regime have
//! an entry. Everything here is off unless `FLAG_REGIMES` is set.
//!
//! Fail closed: when the map cannot take a process (full), or the path of an executed image
//! cannot be decided, the programs deny more, never less: `REGIME_OVERFLOW` makes every task of
//! the session count as in every regime, and an undecidable exec enters every regime.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::map,
    maps::{Array, HashMap},
};
use sandtrace_common::{
    config::{FLAG_REGIMES, REGIME_NET_RESTRICTED, RegimeConfig},
    policy::MAX_REGIMES,
};

use crate::session::{self, config};

/// Most processes in a regime at once. Not LRU: evicting a process would take it out of its
/// regimes; a full map sets `REGIME_OVERFLOW` instead.
pub const MAX_REGIME_PROCESSES: u32 = 65536;

/// The regime mask (bit `r`: regime `r`) of each process in at least one regime, by tgid.
#[map]
static REGIME_OF: HashMap<u32, u32> = HashMap::with_max_entries(MAX_REGIME_PROCESSES, 0);

/// 1 once `REGIME_OF` could not take a process: from then on every task of the session counts
/// as in every regime.
#[map]
static REGIME_OVERFLOW: Array<u32> = Array::with_max_entries(1, 0);

/// Whether the session tracks regimes at all.
#[inline(always)]
pub fn enabled() -> bool {
    session::flag(FLAG_REGIMES)
}

/// The mask of every regime the policy has (`Config::n_regimes` of them).
#[inline(always)]
pub fn all() -> u32 {
    let n = config!(n_regimes);
    if n >= MAX_REGIMES as u32 {
        (1 << MAX_REGIMES) - 1
    } else {
        (1 << n) - 1
    }
}

#[inline(always)]
fn overflowed() -> bool {
    REGIME_OVERFLOW.get(0).is_some_and(|&v| v != 0)
}

#[inline(always)]
fn set_overflow() {
    if let Some(v) = REGIME_OVERFLOW.get_ptr_mut(0) {
        // SAFETY: a pointer to a live map value.
        unsafe { *v = 1 };
    }
}

/// The regimes of the process `tgid` (initial PID namespace). Only meaningful with
/// [`enabled`].
#[inline(always)]
pub fn of_tgid(tgid: u32) -> u32 {
    if overflowed() {
        return all();
    }
    // SAFETY: the value is copied out at once.
    unsafe { REGIME_OF.get(&tgid).copied().unwrap_or(0) & all() }
}

/// The tgid of the current task in the initial PID namespace.
#[inline(always)]
pub fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// The regimes of the current task's process; 0 without [`enabled`].
#[inline(always)]
pub fn current() -> u32 {
    if !enabled() {
        return 0;
    }
    of_tgid(current_tgid())
}

/// Records that process `tgid` is in the regimes `mask` (non-zero); a full map fails closed.
#[inline(always)]
pub fn set(tgid: u32, mask: u32) {
    if REGIME_OF.insert(&tgid, &mask, 0).is_err() {
        set_overflow();
    }
}

/// Forgets process `tgid` (it is in no regime, or it is gone).
#[inline(always)]
pub fn forget(tgid: u32) {
    // Absent already is fine.
    let _ = REGIME_OF.remove(&tgid);
}

/// Regime `r`'s configuration (`r < MAX_REGIMES`).
#[inline(always)]
pub fn regime(r: usize) -> RegimeConfig {
    // Volatile, as `config!` reads: the compiler must not fold the zero initialiser.
    // SAFETY: a read of a field of a static.
    unsafe { core::ptr::read_volatile(&session::CONFIG.regimes[r & (MAX_REGIMES - 1)]) }
}

/// The regimes of `mask` that restrict the network (`REGIME_NET_RESTRICTED`).
#[inline(always)]
pub fn net_restricting(mask: u32) -> u32 {
    let mut out = 0;
    for r in 0..MAX_REGIMES {
        if mask & (1 << r) != 0 && regime(r).network & REGIME_NET_RESTRICTED != 0 {
            out |= 1 << r;
        }
    }
    out
}

/// The rules of network list `list` that every regime of `mask` keeps (all ones for none).
#[inline(always)]
pub fn kept_by_all(mask: u32, list: usize) -> u64 {
    let mut kept = u64::MAX;
    for r in 0..MAX_REGIMES {
        if mask & (1 << r) != 0 {
            kept &= regime(r).keep_rules[list % sandtrace_common::network::NET_LIST_COUNT];
        }
    }
    kept
}

/// The first regime of `mask` that does not keep rule `index` of network list `list`, as its
/// index + 1 (the events' numbering); the first regime of `mask` when `index` is `None`;
/// 0 when every regime keeps it.
#[inline(always)]
pub fn first_not_keeping(mask: u32, list: usize, index: Option<u32>) -> u16 {
    for r in 0..MAX_REGIMES {
        if mask & (1 << r) == 0 {
            continue;
        }
        let keeps = match index {
            Some(i) => {
                regime(r).keep_rules[list % sandtrace_common::network::NET_LIST_COUNT]
                    & (1u64 << (i & 63))
                    != 0
            }
            None => false,
        };
        if !keeps {
            return r as u16 + 1;
        }
    }
    0
}

/// The first regime of `mask` that keeps no rule of network list `list`, as index + 1; 0 when
/// each keeps one.
#[inline(always)]
pub fn first_keeping_none(mask: u32, list: usize) -> u16 {
    for r in 0..MAX_REGIMES {
        if mask & (1 << r) != 0
            && regime(r).keep_rules[list % sandtrace_common::network::NET_LIST_COUNT] == 0
        {
            return r as u16 + 1;
        }
    }
    0
}

/// The lowest regime of `mask` as index + 1 (0 for none).
#[inline(always)]
pub fn first(mask: u32) -> u16 {
    // A loop, not `trailing_zeros`: the BPF backend has no count-trailing-zeros.
    for r in 0..MAX_REGIMES {
        if mask & (1 << r) != 0 {
            return r as u16 + 1;
        }
    }
    0
}
