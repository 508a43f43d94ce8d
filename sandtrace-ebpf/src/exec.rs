//! Exec enforcement: `bprm_check_security`, called for the file being executed and again for
//! each `#!` interpreter, whatever the route (execve, execveat with an empty path or an O_PATH
//! descriptor, a memfd, io_uring).
//!
//! CMD and its launch chain (its `#!` interpreters, and what `env` starts) are the user's
//! explicit choice: the loader lists their resolved paths, and the session's first process may
//! exec them. Everything else needs `allow_exec`. Running the dynamic loader directly is denied unless
//! every exec is allowed: the loader would map the program it is given without an exec check.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{lsm, map},
    maps::{Array, HashMap, PerCpuArray},
    programs::LsmContext,
};
use sandtrace_common::{
    config::{FLAG_ENFORCE_FILES, FLAG_EXEC_UNRESTRICTED},
    file::{EXACT_PATH_MAX, FileOp, PathKey, Verdict},
};

use crate::{
    path_policy::{self, Decision, NEED_EXEC, Resolved, decide, errno_of, report, resolve_path},
    session::{self, config},
};

/// Resolved paths of CMD and its launch chain.
#[map]
static LAUNCH_CHAIN: HashMap<PathKey, u8> = HashMap::with_max_entries(16, 0);
/// Resolved paths of the system's dynamic loaders (ld-linux*.so).
#[map]
static DYNAMIC_LOADERS: HashMap<PathKey, u8> = HashMap::with_max_entries(16, 0);
/// Index 0: tgid of the session's first process (set at its first exec).
#[map]
static LAUNCH_TGID: Array<u32> = Array::with_max_entries(1, 0);
/// Scratch space for building a `PathKey` (too large for the stack).
#[map]
static KEY_SCRATCH: PerCpuArray<PathKey> = PerCpuArray::with_max_entries(1, 0);

/// The exact-match key of a resolved path; `None` if it is longer than any listed path can be.
#[inline(always)]
fn path_key(p: Resolved) -> Option<&'static PathKey> {
    if p.len > EXACT_PATH_MAX {
        return None;
    }
    let key = KEY_SCRATCH.get_ptr_mut(0)?;
    let buf = path_policy::buffer(p.slot)?;
    unsafe {
        (*key).bytes = [0; EXACT_PATH_MAX + 1];
        let src = (*buf).bytes.as_ptr().add(p.start & path_policy::BUF_MASK);
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            (*key).bytes.as_mut_ptr().cast(),
            (p.len & EXACT_PATH_MAX) as u32,
            src.cast(),
        );
        Some(&*key)
    }
}

/// True for the session's first process, which the first exec in the session comes from.
#[inline(always)]
fn is_launch_process() -> bool {
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

/// `bprm_check_security(struct linux_binprm *bprm)`.
#[lsm(hook = "bprm_check_security")]
pub fn bprm_check_security(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(1);
    if prev != 0 || !session::flag(FLAG_ENFORCE_FILES) || !session::current_in_session() {
        return prev;
    }
    let bprm: *const u8 = ctx.arg(0);
    // A direct load keeps the verifier's type for `file` (needed by d_path).
    let file: *const u8 =
        unsafe { core::ptr::read_volatile(bprm.add(config!(offsets.bprm_file) as usize).cast()) };
    let f_path = unsafe { file.add(config!(offsets.file_f_path) as usize) };
    let path = resolve_path(f_path, 0);
    let decision = match path {
        Err(v) => Decision::of(v),
        Ok(p) => {
            let key = path_key(p);
            let listed =
                |map: &HashMap<PathKey, u8>| key.is_some_and(|k| unsafe { map.get(k) }.is_some());
            if is_launch_process() && listed(&LAUNCH_CHAIN) {
                Decision::of(Verdict::AllowedLaunch)
            } else if !session::flag(FLAG_EXEC_UNRESTRICTED) && listed(&DYNAMIC_LOADERS) {
                Decision::of(Verdict::DeniedDynamicLoader)
            } else {
                decide(p, NEED_EXEC)
            }
        }
    };
    report(FileOp::Exec, NEED_EXEC, decision, path.ok());
    errno_of(decision)
}
