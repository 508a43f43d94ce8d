//! What the user explicitly launched: CMD and its `#!`/`env` chain, by resolved path, and the
//! session's first process (the one that execs them).
//!
//! Before that first process execs CMD it is sandtrace's launcher: code of sandtrace's own
//! (`spawn.rs`: joining the process limit's cgroup, Landlock, installing the seccomp filter)
//! that is not CMD's to trace. The syscall programs leave its calls out, all but the exec calls
//! that start CMD (which `strace CMD` shows too).

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};
use sandtrace_common::file::{EXACT_PATH_MAX, PathKey};

use crate::path_policy::{self, Resolved};

/// Resolved paths of CMD and its launch chain.
#[map]
pub static LAUNCH_CHAIN: HashMap<PathKey, u8> = HashMap::with_max_entries(16, 0);
/// Index 0: tgid of the session's first process (set at its first exec).
#[map]
static LAUNCH_TGID: Array<u32> = Array::with_max_entries(1, 0);
/// Index 0: the launcher, by `pid_tgid`, while it runs sandtrace's code: 0 before the session's
/// first syscall, then the thread that made it (the session's first task: the launcher), then
/// [`LAUNCHER_GONE`] once it has exec'd.
#[map]
static LAUNCHER: Array<u64> = Array::with_max_entries(1, 0);
const LAUNCHER_GONE: u64 = u64::MAX;
/// Scratch space for building a `PathKey` (too large for the stack).
#[map]
static KEY_SCRATCH: PerCpuArray<PathKey> = PerCpuArray::with_max_entries(1, 0);

/// The exact-match key of a resolved path; `None` if it is longer than any listed path can be.
#[inline(always)]
pub fn path_key(p: Resolved) -> Option<&'static PathKey> {
    if p.len > EXACT_PATH_MAX {
        return None;
    }
    let key = KEY_SCRATCH.get_ptr_mut(0)?;
    let buf = path_policy::buffer(p.slot)?;
    unsafe {
        (*key).bytes = [0; EXACT_PATH_MAX + 1];
        let src = (*buf)
            .bytes
            .as_ptr()
            .add(path_policy::opaque(p.start) & path_policy::BUF_MASK);
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            (*key).bytes.as_mut_ptr().cast(),
            (path_policy::opaque(p.len) & EXACT_PATH_MAX) as u32,
            src.cast(),
        );
        Some(&*key)
    }
}

/// Whether the path is listed in `map`.
#[inline(always)]
pub fn listed(map: &HashMap<PathKey, u8>, p: Resolved) -> bool {
    path_key(p).is_some_and(|k| unsafe { map.get(k) }.is_some())
}

/// At an exec: true for the session's first process. The first exec in the session comes from
/// it (nothing else runs in the session before CMD), so the first caller claims the slot.
#[inline(always)]
pub fn claim_launch_process() -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(slot) = LAUNCH_TGID.get_ptr_mut(0) else {
        return false;
    };
    unsafe {
        if *slot == 0 {
            *slot = tgid;
        }
        *slot == tgid
    }
}

/// True for the session's first process, once it has exec'd.
#[inline(always)]
pub fn is_launch_process() -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    LAUNCH_TGID.get(0).is_some_and(|&t| t != 0 && t == tgid)
}

/// The launch process reading a file of its own chain (an interpreter reading its script).
#[inline(always)]
pub fn is_launch_read(p: Resolved) -> bool {
    is_launch_process() && listed(&LAUNCH_CHAIN, p)
}

/// At a syscall's entry: whether the current thread (`pid_tgid`) is the launcher. Nothing else
/// runs in the session before the launcher execs CMD, so the first caller is the launcher.
#[inline(always)]
pub fn claim_launcher(pid_tgid: u64) -> bool {
    let Some(slot) = LAUNCHER.get_ptr_mut(0) else {
        return false;
    };
    unsafe {
        if *slot == 0 {
            *slot = pid_tgid;
        }
        *slot == pid_tgid
    }
}

/// Whether the current thread (`pid_tgid`) is the launcher (see [`claim_launcher`]).
#[inline(always)]
pub fn is_launcher(pid_tgid: u64) -> bool {
    LAUNCHER.get(0).is_some_and(|&t| t == pid_tgid)
}

/// At an exec in the session (`sched_process_exec`): the launcher's exec ends its time; CMD
/// runs from here on.
#[inline(always)]
pub fn exec_done() {
    if let Some(slot) = LAUNCHER.get_ptr_mut(0)
        && unsafe { *slot } == bpf_get_current_pid_tgid()
    {
        unsafe { *slot = LAUNCHER_GONE };
    }
}
