//! Exec enforcement: `bprm_check_security`, called for the file being executed and again for
//! each `#!` interpreter, whatever the route (execve, execveat with an empty path or an O_PATH
//! descriptor, a memfd, io_uring).
//!
//! CMD and its launch chain (its `#!` interpreters, and what `env` starts) are the user's
//! explicit choice: the loader lists their resolved paths, and the session's first process may
//! exec them. Everything else needs `allow_exec`. Running the dynamic loader directly is denied unless
//! every exec is allowed: the loader would map the program it is given without an exec check.

use aya_ebpf::{macros::map, maps::HashMap, programs::LsmContext};
use sandtrace_common::{
    config::{FLAG_ENFORCE_FILES, FLAG_EXEC_UNRESTRICTED},
    file::{FileOp, PathKey, Verdict},
};

use crate::{
    launch::{self, LAUNCH_CHAIN},
    path_policy::{Decision, NEED_EXEC, decide, errno_of, report, resolve_path},
    session::{self, config, lsm_programs},
};

/// Resolved paths of the system's dynamic loaders (ld-linux*.so).
#[map]
static DYNAMIC_LOADERS: HashMap<PathKey, u8> = HashMap::with_max_entries(16, 0);

lsm_programs! {
    /// `bprm_check_security(struct linux_binprm *bprm)`.
    bprm_check_security: hook = "bprm_check_security", prev = 1, flags = FLAG_ENFORCE_FILES,
        decide_exec;
}

#[inline(always)]
fn decide_exec(ctx: &LsmContext) -> i32 {
    let bprm: *const u8 = ctx.arg(0);
    // A direct load keeps the verifier's type for `file` (needed by d_path).
    let file: *const u8 =
        unsafe { core::ptr::read_volatile(bprm.add(config!(offsets.bprm_file) as usize).cast()) };
    let f_path = unsafe { file.add(config!(offsets.file_f_path) as usize) };
    let path = resolve_path(f_path, 0);
    let decision = match path {
        Err(v) => Decision::of(v),
        Ok(p) => {
            if launch::claim_launch_process() && launch::listed(&LAUNCH_CHAIN, p) {
                Decision::of(Verdict::AllowedLaunch)
            } else if !session::flag(FLAG_EXEC_UNRESTRICTED) && launch::listed(&DYNAMIC_LOADERS, p)
            {
                Decision::of(Verdict::DeniedDynamicLoader)
            } else {
                decide(p, NEED_EXEC)
            }
        }
    };
    report(FileOp::Exec, NEED_EXEC, decision, path.ok());
    errno_of(decision)
}
