//! Reading kernel objects. Struct fields are read at offsets taken from the running kernel's
//! BTF (`Config::offsets`, read with `session::config!`), never hard-coded; an unreadable
//! field reads as 0 (a null pointer), which every caller treats as "absent".
//! Also the caller's memory ([`user`]), whose layouts are the user ABI.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_probe_read_kernel, bpf_probe_read_user},
};

/// The `T` at `base + offset` in kernel memory, `None` where it cannot be read.
#[inline(always)]
pub fn try_field<T: Copy>(base: *const u8, offset: u32) -> Option<T> {
    unsafe { bpf_probe_read_kernel(base.add(offset as usize).cast::<T>()).ok() }
}

/// The `T` at `base + offset` in kernel memory, 0 where it cannot be read.
#[inline(always)]
pub fn field<T: Default + Copy>(base: *const u8, offset: u32) -> T {
    unsafe { bpf_probe_read_kernel(base.add(offset as usize).cast::<T>()).unwrap_or_default() }
}

/// The pointer at `base + offset` in kernel memory, null where it cannot be read. The result
/// is a plain number to the verifier: it may be read through, never dereferenced directly.
#[inline(always)]
pub fn pointer<T>(base: *const u8, offset: u32) -> *const T {
    unsafe {
        bpf_probe_read_kernel(base.add(offset as usize).cast::<*const T>())
            .unwrap_or(core::ptr::null())
    }
}

/// Argument `n` of a BTF program (LSM hook, `tp_btf`) as a plain number rather than a typed
/// kernel pointer: the verifier lets only scalars into global functions.
#[inline(always)]
pub fn scalar_arg<C: EbpfContext>(ctx: &C, n: usize) -> u64 {
    let args = ctx.as_ptr() as *const u64;
    unsafe { bpf_probe_read_kernel(args.add(n)).unwrap_or(0) }
}

/// The `T` at `addr` in the current task's memory, `None` where it cannot be read (not
/// mapped, or not paged in: the helper cannot fault pages in).
#[inline(always)]
pub fn user<T: Copy>(addr: u64) -> Option<T> {
    unsafe { bpf_probe_read_user(addr as *const T).ok() }
}
