//! Which tasks belong to the session, and the per-session configuration.

use aya_ebpf::helpers::generated::bpf_get_current_ancestor_cgroup_id;
use sandtrace_common::config::Config;

/// Written by the loader before the object is loaded (`EbpfLoader::set_global`).
#[unsafe(no_mangle)]
static CONFIG: Config = Config {
    session_cgroup_id: 0,
    session_cgroup_level: 0,
    flags: 0,
    offsets: sandtrace_common::config::KernelOffsets {
        task_pid: 0,
        task_tgid: 0,
        task_exit_code: 0,
        task_real_parent: 0,
        bprm_filename: 0,
        _pad: 0,
    },
};

/// The session configuration. Read volatile so that the compiler cannot fold the zero
/// initialiser into the code: the real values are patched into .rodata at load time.
#[inline(always)]
pub fn config() -> Config {
    unsafe { core::ptr::read_volatile(&CONFIG) }
}

/// True when the current task is in the session's cgroup or in a cgroup below it.
#[inline(always)]
pub fn current_in_session() -> bool {
    let cfg = config();
    // Level 0 is the root cgroup, which is never a session: an unset config matches nothing.
    if cfg.session_cgroup_level == 0 {
        return false;
    }
    unsafe {
        bpf_get_current_ancestor_cgroup_id(cfg.session_cgroup_level as i32) == cfg.session_cgroup_id
    }
}

#[inline(always)]
pub fn flag(bit: u32) -> bool {
    config().flags & bit != 0
}
