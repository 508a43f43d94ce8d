//! sandtrace: run an untrusted command under a kernel-enforced policy and record everything
//! it does.
//!
//! A run flows through these modules in order: [`cli`] (flags) → policy → [`cgroup`] (the
//! session's cgroup and process limit) → [`kernel_btf`] + [`ebpf`] (configure, load and attach
//! the kernel programs) → [`spawn`] (CMD inside the session) → [`session`] (event loop,
//! timeout, teardown) → [`events`] (ring-buffer records to typed events) → [`output`] (JSONL,
//! terminal, summary).

pub mod cgroup;
pub mod cli;
pub mod ebpf;
pub mod events;
pub mod launch;
pub mod learn;
pub mod network;
pub mod output;
pub mod policy;
pub mod progress;
pub mod report;
pub mod session;
pub mod spawn;

pub mod kernel_btf;
pub mod seccomp;
pub mod syscall_table;
