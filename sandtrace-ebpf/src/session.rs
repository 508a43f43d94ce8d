//! Which tasks belong to the session, and the per-session configuration.

use aya_ebpf::helpers::generated::bpf_get_current_ancestor_cgroup_id;
use sandtrace_common::config::Config;

/// Written by the loader before the object is loaded (`EbpfLoader::override_global`). It lives
/// in the frozen .rodata map, so the verifier treats its fields as constants (which struct
/// offsets must be for pointer arithmetic on kernel objects).
#[unsafe(no_mangle)]
pub static CONFIG: Config = Config::UNSET;

/// Reads one field of [`CONFIG`], e.g. `config!(offsets.file_f_path)`. Volatile so that the
/// compiler cannot fold the zero initialiser into the code.
macro_rules! config {
    ($($field:tt)+) => {{
        #[allow(unused_unsafe)]
        let value = unsafe { core::ptr::read_volatile(&$crate::session::CONFIG.$($field)+) };
        value
    }};
}
pub(crate) use config;

/// True when the current task is in the session's cgroup or in a cgroup below it.
#[inline(always)]
pub fn current_in_session() -> bool {
    let level = config!(session_cgroup_level);
    // Level 0 is the root cgroup, which is never a session: an unset config matches nothing.
    if level == 0 {
        return false;
    }
    unsafe { bpf_get_current_ancestor_cgroup_id(level as i32) == config!(session_cgroup_id) }
}

#[inline(always)]
pub fn flag(bit: u32) -> bool {
    config!(flags) & bit != 0
}
