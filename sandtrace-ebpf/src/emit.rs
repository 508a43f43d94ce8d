//! The ring buffer to userspace and the in-kernel loss counters.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::map,
    maps::{PerCpuArray, RingBuf, ring_buf::RingBufEntry},
};
use sandtrace_common::event::{COMM_LEN, EventHeader, EventKind, counter};

/// Default size; the loader resizes it before load (`--ring-buffer-size`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Per-CPU event-loss and overflow counters, indexed by `counter::*`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

#[inline(always)]
pub fn count(index: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(index) {
        unsafe { *c += 1 };
    }
}

/// Fills a header for the current task, stamped now.
#[inline(always)]
pub fn header(kind: EventKind) -> EventHeader {
    header_at(kind, unsafe { bpf_ktime_get_ns() })
}

/// Fills a header for the current task, stamped `ts_ns` (CLOCK_MONOTONIC).
#[inline(always)]
pub fn header_at(kind: EventKind, ts_ns: u64) -> EventHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    EventHeader {
        kind: kind as u32,
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        _pad: 0,
        ts_ns,
        comm: bpf_get_current_comm().unwrap_or([0; COMM_LEN]),
    }
}

/// Reserves room for one `T` in the ring buffer, counting the loss when it is full.
/// Callers fill every field of the entry and submit it.
#[inline(always)]
pub fn reserve<T: 'static>() -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count(counter::RINGBUF_LOST);
    }
    entry
}

/// Sends one `T`: reserves it (counting the loss when the ring is full), has `fill` write every
/// field of it, and publishes it.
#[inline(always)]
pub fn send<T: 'static>(fill: impl FnOnce(*mut T)) {
    if let Some(mut entry) = reserve::<T>() {
        fill(entry.as_mut_ptr());
        submit(entry);
    }
}

/// Publishes a reserved entry. The reader is woken only once a quarter of the ring holds
/// unread data: a wakeup per event (the kernel's default whenever the reader has caught up)
/// costs more than writing the event, and the loader also drains on a short timer, so events
/// never wait long below the threshold.
#[inline(always)]
pub fn submit<T>(entry: RingBufEntry<T>) {
    let unread = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    let size = EVENTS.query(BPF_RB_RING_SIZE as u64);
    let wakeup = if unread >= size / 4 {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(wakeup as u64);
}
