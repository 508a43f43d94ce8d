//! Which tasks belong to the session, the per-session configuration, and the prologue every
//! BPF LSM program starts with ([`lsm_hook`]).

use aya_ebpf::{helpers::generated::bpf_get_current_ancestor_cgroup_id, programs::LsmContext};
use sandtrace_common::config::Config;

use crate::kernel;

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

/// Defines BPF LSM programs, one per line: `NAME: hook = "HOOK", prev = N, flags = FLAGS,
/// DECIDE;`, where `N` is the hook's argument holding the previous verdict, `FLAGS` the
/// configuration bits the program needs (`0`: none) and `DECIDE` a function of the
/// `&LsmContext` that decides the call. Each program is [`lsm_hook`]'s prologue, then `DECIDE`.
macro_rules! lsm_programs {
    ($($(#[$doc:meta])* $name:ident: hook = $hook:tt, prev = $prev:tt, flags = $flags:expr,
        $decide:expr;)+) => {$(
        $(#[$doc])*
        #[aya_ebpf::macros::lsm(hook = $hook)]
        #[inline(always)]
        pub fn $name(ctx: aya_ebpf::programs::LsmContext) -> i32 {
            $crate::session::lsm_hook(&ctx, $prev, $flags, $decide)
        }
    )+};
}
pub(crate) use lsm_programs;

/// The prologue of every BPF LSM program. `prev`, the hook's argument `prev_arg` (its last), is
/// the verdict of the LSM programs before this one: a refusal is passed on undecided. Otherwise
/// `decide` runs when every bit of `flags` is set in the session's configuration (`0`: always)
/// and the current task is in the session; tasks elsewhere on the host pass.
#[inline(always)]
pub fn lsm_hook(
    ctx: &LsmContext,
    prev_arg: usize,
    flags: u32,
    decide: impl FnOnce(&LsmContext) -> i32,
) -> i32 {
    let prev: i32 = ctx.arg(prev_arg);
    // `flags` is a constant at every call: its test folds away for 0.
    if prev != 0 || (flags != 0 && config!(flags) & flags != flags) || !current_in_session() {
        return prev;
    }
    decide(ctx)
}

/// The id of `task`'s process in the session's PID namespace (its thread-group leader's id at
/// that level); `None` if it has none there.
#[inline(always)]
pub fn tgid_in_session(task: *const u8) -> Option<i32> {
    let leader: *const u8 = kernel::pointer(task, config!(offsets.task_group_leader));
    let pid: *const u8 = kernel::pointer(leader, config!(offsets.task_thread_pid));
    let level: u32 = kernel::try_field(pid, config!(offsets.pid_level))?;
    let want = config!(session_pid_ns_level);
    if pid.is_null() || level < want {
        return None;
    }
    let numbers = config!(offsets.pid_numbers) + want * config!(offsets.upid_size);
    kernel::try_field(pid, numbers + config!(offsets.upid_nr))
}
