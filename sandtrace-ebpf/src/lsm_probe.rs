//! A BPF LSM program that decides nothing: the loader loads and attaches it to find out whether
//! this kernel can run BPF LSM programs at all before it promises enforcement.

use aya_ebpf::{macros::lsm, programs::LsmContext};

/// `file_open(struct file *file)`; the last argument is the previous LSM program's verdict,
/// which an LSM program must pass on.
#[lsm(hook = "file_open")]
#[inline(always)]
pub fn lsm_probe(ctx: LsmContext) -> i32 {
    ctx.arg(1)
}
