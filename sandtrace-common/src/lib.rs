//! Types that cross the kernel/userspace boundary.
//!
//! Everything here is `#[repr(C)]` and laid out identically in the eBPF object and in the
//! loader. Nothing else belongs in this crate.
#![no_std]

pub mod config;
pub mod event;
pub mod file;
pub mod network;
pub mod policy;
pub mod syscall_args;
