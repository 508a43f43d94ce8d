//! The ring buffer to userspace and the in-kernel loss counters.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use sandtrace_common::event::{COMM_LEN, EventHeader, EventKind, counter};

/// Default size; the loader resizes it before load (`--ring-buffer-size`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Per-CPU event-loss and overflow counters, indexed by `counter::*`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

#[inline(always)]
pub fn count(index: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(index) {
        unsafe { *c += 1 };
    }
}

/// Fills a header for the current task.
#[inline(always)]
pub fn header(kind: EventKind) -> EventHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    EventHeader {
        kind: kind as u32,
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        _pad: 0,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        comm: bpf_get_current_comm().unwrap_or([0; COMM_LEN]),
    }
}

/// Reserves room for one `T` in the ring buffer, counting the loss when it is full.
/// Callers fill every field of the entry and submit it.
#[inline(always)]
pub fn reserve<T: 'static>() -> Option<aya_ebpf::maps::ring_buf::RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count(counter::RINGBUF_LOST);
    }
    entry
}
