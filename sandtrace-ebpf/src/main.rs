//! sandtrace's kernel programs, grouped by what they observe or enforce.
//!
//! Every program first checks that the current task belongs to the session's cgroup
//! (see [`session`]); tasks elsewhere on the host return at once. BPF LSM programs are declared
//! with `session::lsm_programs!`, which gives them all the same prologue; kernel objects are
//! read through [`kernel`].
//!
//! Program functions are `#[inline(always)]`: the aya macros wrap each in an entry point, and
//! kernels before 6.2 reject a separate (global) function taking the program's context.
#![no_std]
#![no_main]

mod dns_capture;
mod dns_redirect;
mod emit;
mod exec;
mod files;
mod isolation;
mod kernel;
mod launch;
mod lsm_probe;
mod metadata;
mod mounts;
mod network;
mod packet;
mod path_policy;
mod process;
mod regimes;
mod session;
mod sockets;
mod syscalls;

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
