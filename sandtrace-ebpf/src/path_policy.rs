//! Deciding a path against the compiled policy: resolving the kernel's own path of an object
//! into a per-CPU buffer, walking the policy automaton over it, and reporting the verdict.
//!
//! Everything is bounded: paths longer than `MAX_PATH_LEN`, or deeper than `MAX_WALK_DEPTH`
//! where they are rebuilt from directory entries, are denied; missing tables deny.

use aya_ebpf::{
    bindings::path as kernel_path,
    helpers::generated::{self, bpf_d_path, bpf_probe_read_kernel_str},
    macros::map,
    maps::{Array, PerCpuArray},
};
use sandtrace_common::{
    config::FLAG_FILE_EVENTS_ALL,
    event::{EventKind, FileEvent},
    file::{FileOp, MAX_WALK_DEPTH, MAX_WALK_MOUNTS, Verdict},
    policy::{
        DEAD_STATE, KIND_DENY, KIND_EXEC, KIND_INDEX_DENY, KIND_INDEX_EXEC, KIND_INDEX_READ,
        KIND_INDEX_WRITE, KIND_READ, KIND_WRITE, MAX_PATH_LEN, MAX_REGIMES, MAX_STATES, NO_RULE,
        PathAccept, PathDfaHeader, RULE_REGIME_SHIFT,
    },
};

use crate::{
    emit,
    kernel::pointer,
    regimes,
    session::{self, config},
};

#[map]
static PATH_DFA_HEADER: Array<PathDfaHeader> = Array::with_max_entries(1, 0);
/// One row of 256 next states per state: the byte classes are expanded by the loader so that a
/// step costs one lookup.
#[map]
static PATH_DFA_ROWS: Array<[u16; 256]> = Array::with_max_entries(MAX_STATES as u32, 0);
#[map]
static PATH_DFA_ACCEPT: Array<PathAccept> = Array::with_max_entries(MAX_STATES as u32, 0);
/// For states from which some continuation of the path reaches a deny rule, bit 0 for a base
/// rule and bit `1 + r` for a rule of regime `r`: moving such a directory elsewhere would take
/// denied paths out of their rule's reach.
#[map]
static PATH_DFA_DENY_AHEAD: Array<u8> = Array::with_max_entries(MAX_STATES as u32, 0);

/// Scratch size: a power of two, so masked offsets stay inside, plus room for one name.
pub const BUF_SIZE: usize = 8192;
pub const BUF_MASK: usize = BUF_SIZE - 1;
const NAME_MAX: usize = 256;
/// Where rebuilt paths end: room after them for `/` and one name.
const REBUILT_END: usize = BUF_SIZE - NAME_MAX - 1;

#[repr(C)]
pub struct PathBuf {
    pub bytes: [u8; BUF_SIZE + NAME_MAX],
}

/// Two buffers per CPU: rename and link decide on two paths at once.
#[map]
static PATH_BUFS: PerCpuArray<PathBuf> = PerCpuArray::with_max_entries(2, 0);

/// A path in a buffer: `bytes[start..start + len]`.
#[derive(Clone, Copy)]
pub struct Resolved {
    pub slot: u32,
    pub start: usize,
    pub len: usize,
}

#[derive(Clone, Copy)]
pub struct Decision {
    pub verdict: Verdict,
    pub rule_kind: u16,
    pub rule_index: u16,
}

impl Decision {
    pub const fn of(verdict: Verdict) -> Self {
        Self {
            verdict,
            rule_kind: NO_RULE,
            rule_index: NO_RULE,
        }
    }
}

#[inline(always)]
pub fn buffer(slot: u32) -> Option<*mut PathBuf> {
    PATH_BUFS.get_ptr_mut(slot)
}

/// `d_path` of a kernel `struct path` (which must be a BTF pointer the verifier trusts).
#[inline(always)]
pub fn resolve_path(path: *const u8, slot: u32) -> Result<Resolved, Verdict> {
    let buf = buffer(slot).ok_or(Verdict::DeniedNoPolicy)?;
    let ret = unsafe {
        bpf_d_path(
            path as *mut kernel_path,
            (*buf).bytes.as_mut_ptr().cast(),
            (MAX_PATH_LEN + 1) as u32,
        )
    };
    if ret == -36 {
        // ENAMETOOLONG
        return Err(Verdict::DeniedTooLong);
    }
    if ret <= 0 {
        return Err(Verdict::DeniedUnresolved);
    }
    // d_path's length counts the NUL.
    Ok(Resolved {
        slot,
        start: 0,
        len: (ret as usize - 1) & BUF_MASK,
    })
}

/// Appends `/NAME` of `dentry` to a resolved directory path (`/` alone gets no extra slash).
#[inline(always)]
pub fn append_name(dir: Resolved, dentry: *const u8) -> Result<Resolved, Verdict> {
    let buf = buffer(dir.slot).ok_or(Verdict::DeniedNoPolicy)?;
    let name: *const u8 = pointer(dentry, config!(offsets.dentry_d_name_name));
    if dir.len > MAX_PATH_LEN || dir.start > REBUILT_END {
        return Err(Verdict::DeniedTooLong);
    }
    let mut end = dir.start + dir.len;
    if dir.len != 1 {
        unsafe { (*buf).bytes[opaque(end) & BUF_MASK] = b'/' };
        end += 1;
    }
    end += unsafe { read_str_at(buf, end, NAME_MAX, name)? };
    let len = end - dir.start;
    if len > MAX_PATH_LEN {
        return Err(Verdict::DeniedTooLong);
    }
    Ok(Resolved {
        slot: dir.slot,
        start: dir.start,
        len,
    })
}

/// A kernel string that is not a path (a module's name), copied into buffer 0 so that
/// [`report`] can carry it.
#[inline(always)]
pub fn copy_name(name: *const u8) -> Result<Resolved, Verdict> {
    let buf = buffer(0).ok_or(Verdict::DeniedNoPolicy)?;
    let len = unsafe { read_str_at(buf, 0, NAME_MAX, name)? };
    Ok(Resolved {
        slot: 0,
        start: 0,
        len,
    })
}

/// State of one path rebuild, shared with the `bpf_loop` callback. It lives in a map, not on
/// the stack: values loaded from a map are unknown to the verifier, so it checks one step once
/// instead of following the walk's exact positions step by step.
#[repr(C)]
pub struct Rebuild {
    /// Current dentry and `struct mount`.
    dentry: u64,
    mount: u64,
    root_mnt: u64,
    root_dentry: u64,
    /// Start of the path written so far (it ends at `REBUILT_END`).
    pos: u64,
    slot: u32,
    /// 0 while walking, 1 when done, else a `Verdict` to fail with.
    outcome: u32,
}

#[map]
static REBUILD: PerCpuArray<Rebuild> = PerCpuArray::with_max_entries(1, 0);

const REBUILD_WALKING: u32 = 0;
const REBUILD_DONE: u32 = 1;

/// One step up: cross a mount point, or prepend `/name` of the current dentry.
#[inline(never)]
extern "C" fn rebuild_step(_index: u64, _ctx: *mut core::ffi::c_void) -> i64 {
    let Some(r) = REBUILD.get_ptr_mut(0) else {
        return 1;
    };
    let r = unsafe { &mut *r };
    let Some(buf) = buffer(r.slot) else {
        r.outcome = Verdict::DeniedNoPolicy as u32;
        return 1;
    };
    let mount_offset = config!(offsets.mount_mnt) as usize;
    let mnt = r.mount as *const u8;
    let d = r.dentry as *const u8;
    let vfs = unsafe { mnt.add(mount_offset) };
    let at_root = r.dentry == r.root_dentry && vfs as u64 == r.root_mnt;
    let mnt_root: *const u8 = pointer(vfs, config!(offsets.vfsmount_mnt_root));
    if at_root || d == mnt_root {
        let parent: *const u8 = pointer(mnt, config!(offsets.mount_mnt_parent));
        if at_root || parent == mnt || parent.is_null() {
            r.outcome = REBUILD_DONE;
            return 1;
        }
        r.dentry = pointer::<u8>(mnt, config!(offsets.mount_mnt_mountpoint)) as u64;
        r.mount = parent as u64;
        return 0;
    }
    let parent: *const u8 = pointer(d, config!(offsets.dentry_d_parent));
    if parent == d || parent.is_null() {
        // A root that is not a mount root: a detached tree, with no path to decide on.
        r.outcome = Verdict::DeniedUnresolved as u32;
        return 1;
    }
    let name: *const u8 = pointer(d, config!(offsets.dentry_d_name_name));
    // The name's length first (read into the spare tail), then the name in place.
    let n = match unsafe { read_str_at(buf, BUF_SIZE, NAME_MAX, name) } {
        Ok(n) => n,
        Err(v) => {
            r.outcome = v as u32;
            return 1;
        }
    };
    let pos = r.pos as usize;
    if n == 0 || pos > REBUILT_END || pos < n + 1 + (REBUILT_END - MAX_PATH_LEN) {
        r.outcome = Verdict::DeniedTooLong as u32;
        return 1;
    }
    let new_pos = pos - (n + 1);
    unsafe {
        if let Err(v) = read_str_at(buf, new_pos + 1, n + 1, name) {
            r.outcome = v as u32;
            return 1;
        }
        (*buf).bytes[opaque(new_pos) & BUF_MASK] = b'/';
        // The name's NUL landed on the separator of the component after it.
        if pos < REBUILT_END {
            (*buf).bytes[opaque(pos) & BUF_MASK] = b'/';
        }
    }
    r.pos = new_pos as u64;
    r.dentry = parent as u64;
    0
}

/// Rebuilds the path of `dentry` on the mount `vfsmount` as `d_path` would, by walking parents
/// and crossing mount points up to the task's root, for hooks where the verifier does not
/// allow `d_path` (creation by mknod/open, the source of a hard link). The path is written
/// backwards, ending at `REBUILT_END` so that a name can still be appended.
#[inline(always)]
pub fn rebuild_path(
    dentry: *const u8,
    vfsmount: *const u8,
    slot: u32,
) -> Result<Resolved, Verdict> {
    let packed = sandtrace_rebuild_path(dentry as u64, vfsmount as u64, slot);
    if packed >> 63 != 0 {
        return Err(Verdict::from_u16(packed as u16).unwrap_or(Verdict::DeniedUnresolved));
    }
    Ok(Resolved {
        slot,
        start: (packed >> 32) as usize & BUF_MASK,
        len: packed as u32 as usize,
    })
}

/// [`rebuild_path`] as one scalar: `start << 32 | len`, or bit 63 and a `Verdict`. A global
/// BPF function, verified once per program (see [`sandtrace_decide_path`]).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn sandtrace_rebuild_path(dentry: u64, vfsmount: u64, slot: u32) -> u64 {
    match rebuild(dentry as *const u8, vfsmount as *const u8, slot & 1) {
        Ok(p) => (p.start as u64) << 32 | p.len as u64,
        Err(v) => 1 << 63 | v as u64,
    }
}

#[inline(always)]
fn rebuild(dentry: *const u8, vfsmount: *const u8, slot: u32) -> Result<Resolved, Verdict> {
    let buf = buffer(slot).ok_or(Verdict::DeniedNoPolicy)?;
    let task = unsafe { aya_ebpf::helpers::bpf_get_current_task() } as *const u8;
    let fs: *const u8 = pointer(task, config!(offsets.task_fs));
    let root = unsafe { fs.add(config!(offsets.fs_root) as usize) };
    let r = REBUILD.get_ptr_mut(0).ok_or(Verdict::DeniedNoPolicy)?;
    let r = unsafe { &mut *r };
    *r = Rebuild {
        dentry: dentry as u64,
        mount: unsafe { vfsmount.sub(config!(offsets.mount_mnt) as usize) } as u64,
        root_mnt: pointer::<u8>(root, config!(offsets.path_mnt)) as u64,
        root_dentry: pointer::<u8>(root, config!(offsets.path_dentry)) as u64,
        pos: REBUILT_END as u64,
        slot,
        outcome: REBUILD_WALKING,
    };
    let ret = unsafe {
        generated::bpf_loop(
            (MAX_WALK_DEPTH + MAX_WALK_MOUNTS) as u32,
            rebuild_step as *mut core::ffi::c_void,
            core::ptr::null_mut(),
            0,
        )
    };
    if ret < 0 {
        return Err(Verdict::DeniedUnresolved);
    }
    match r.outcome {
        REBUILD_DONE => {}
        // Still walking after the last step: too deep to decide.
        REBUILD_WALKING => return Err(Verdict::DeniedTooLong),
        v => return Err(Verdict::from_u16(v as u16).unwrap_or(Verdict::DeniedUnresolved)),
    }
    let mut pos = r.pos as usize;
    if pos >= REBUILT_END {
        // The root itself.
        pos = REBUILT_END - 1;
        unsafe { (*buf).bytes[opaque(pos) & BUF_MASK] = b'/' };
    }
    let pos = pos & BUF_MASK;
    Ok(Resolved {
        slot,
        start: pos,
        len: REBUILT_END.saturating_sub(pos),
    })
}

/// Reads a NUL-terminated kernel string of at most `size` bytes (`NAME_MAX` at most, NUL
/// included) to `bytes[at..]`; returns its length without the NUL.
#[inline(always)]
unsafe fn read_str_at(
    buf: *mut PathBuf,
    at: usize,
    size: usize,
    src: *const u8,
) -> Result<usize, Verdict> {
    // The compiler may prove these bounds from earlier checks and drop them, while older
    // verifiers (6.1) cannot follow that proof: hide the values so the checks stay.
    let (at, size) = (opaque(at), opaque(size));
    if size > NAME_MAX || at > BUF_SIZE {
        return Err(Verdict::DeniedTooLong);
    }
    let ret = unsafe {
        bpf_probe_read_kernel_str(
            (*buf).bytes.as_mut_ptr().add(at).cast(),
            size as u32,
            src.cast(),
        )
    };
    if ret <= 0 {
        return Err(Verdict::DeniedUnresolved);
    }
    Ok(ret as usize - 1)
}

/// `v`, with everything the compiler knows about it forgotten.
#[inline(always)]
pub fn opaque(v: usize) -> usize {
    unsafe { core::ptr::read_volatile(&v) }
}

/// State of one automaton walk, shared with the `bpf_loop` callback.
#[repr(C)]
struct Walk {
    slot: u32,
    start: u32,
    len: u32,
    state: u32,
    failed: u32,
}

/// Bytes one `walk_step` consumes: a callback per byte would cost more than the steps.
const WALK_STRIDE: usize = 8;

/// One step of the walk: consume bytes `index * WALK_STRIDE` onwards. Returns 1 to stop
/// early (end of path, dead state, or a missing table).
#[inline(never)]
extern "C" fn walk_step(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    let w = unsafe { &mut *(ctx as *mut Walk) };
    let first = index as usize * WALK_STRIDE;
    if first >= w.len as usize || w.state == DEAD_STATE as u32 {
        return 1;
    }
    let Some(buf) = buffer(w.slot) else {
        w.failed = 1;
        return 1;
    };
    // Constant bounds: the compiler unrolls the loop, which the verifier then checks once.
    for k in 0..WALK_STRIDE {
        let i = first + k;
        if i >= w.len as usize {
            return 1;
        }
        let byte = unsafe { (*buf).bytes[opaque(w.start as usize + i) & BUF_MASK] };
        let Some(row) = PATH_DFA_ROWS.get(w.state) else {
            w.failed = 1;
            return 1;
        };
        w.state = row[byte as usize] as u32;
        if w.state == DEAD_STATE as u32 {
            return 1;
        }
    }
    0
}

/// Walks the automaton over the path (with `bpf_loop`: a path of `MAX_PATH_LEN` bytes is
/// too many iterations for the verifier to unroll); returns the final state.
#[inline(always)]
fn walk(p: Resolved) -> Result<u32, Verdict> {
    let header = PATH_DFA_HEADER.get(0).ok_or(Verdict::DeniedNoPolicy)?;
    if header.n_states == 0 {
        return Err(Verdict::DeniedNoPolicy);
    }
    if p.len > MAX_PATH_LEN {
        return Err(Verdict::DeniedTooLong);
    }
    let mut w = Walk {
        slot: p.slot,
        start: p.start as u32,
        len: p.len as u32,
        state: header.start as u32,
        failed: 0,
    };
    // The session's /proc shows the task's own directory as /proc/<pid>: decide it as
    // /proc/self, which is how policies name it.
    if let Some(prefix) = own_proc_prefix(p) {
        for &b in PROC_SELF {
            let row = PATH_DFA_ROWS.get(w.state).ok_or(Verdict::DeniedNoPolicy)?;
            w.state = row[b as usize] as u32;
        }
        w.start += prefix as u32;
        w.len -= prefix as u32;
    }
    let ret = unsafe {
        generated::bpf_loop(
            MAX_PATH_LEN.div_ceil(WALK_STRIDE) as u32,
            walk_step as *mut core::ffi::c_void,
            (&mut w as *mut Walk).cast(),
            0,
        )
    };
    if ret < 0 || w.failed != 0 {
        return Err(Verdict::DeniedNoPolicy);
    }
    Ok(w.state)
}

const PROC_SELF: &[u8; 10] = b"/proc/self";
/// Longest decimal pid.
const PID_DIGITS: usize = 10;

/// The current process's id as the session's /proc shows it: its thread-group leader's id at
/// the session's PID namespace level.
#[inline(always)]
fn own_proc_pid() -> Option<u64> {
    let task = unsafe { aya_ebpf::helpers::bpf_get_current_task() } as *const u8;
    session::tgid_in_session(task).map(|nr| nr as u64)
}

/// If the path is `/proc/<own pid>` or lies below it, the length of that prefix.
#[inline(always)]
fn own_proc_prefix(p: Resolved) -> Option<usize> {
    let buf = buffer(p.slot)?;
    let at = |i: usize| unsafe { (*buf).bytes[opaque(p.start + i) & BUF_MASK] };
    if p.len < PROC_SELF.len() - 3 || b"/proc/".iter().enumerate().any(|(i, &b)| at(i) != b) {
        return None;
    }
    let mut n: u64 = 0;
    let mut digits = 0;
    for i in 0..PID_DIGITS {
        let b = at(6 + i);
        if 6 + i >= p.len || !b.is_ascii_digit() {
            break;
        }
        n = n * 10 + (b - b'0') as u64;
        digits += 1;
    }
    let end = 6 + digits;
    if digits == 0 || (end < p.len && at(end) != b'/') {
        return None;
    }
    (own_proc_pid()? == n).then_some(end)
}

/// How `d_path` names the objects that are no file-system path and that a task reaches only
/// through a descriptor it already holds (reopening one through /proc/self/fd).
const PSEUDO_PREFIXES: [&[u8]; 3] = [b"pipe:[", b"socket:[", b"anon_inode:"];

/// True for a pipe, socket or anonymous inode. Other names that do not start with `/` (the
/// namespace files behind /proc/PID/ns, say) are decided like paths, which no rule names:
/// denied.
#[inline(always)]
fn is_pseudo(p: Resolved) -> bool {
    let Some(buf) = buffer(p.slot) else {
        return false;
    };
    PSEUDO_PREFIXES.iter().any(|prefix| {
        p.len >= prefix.len()
            && prefix.iter().enumerate().all(|(i, &b)| {
                let byte = unsafe { (*buf).bytes[opaque(p.start + i) & BUF_MASK] };
                byte == b
            })
    })
}

/// Decides whether the path allows every access in `needed` (`KIND_*` bits).
#[inline(always)]
pub fn decide(p: Resolved, needed: u16) -> Decision {
    decide_at(p, needed).0
}

/// [`decide`], also returning the automaton state the path ended in (`None` for pseudo paths
/// and failures).
#[inline(always)]
pub fn decide_at(p: Resolved, needed: u16) -> (Decision, Option<u32>) {
    let packed = sandtrace_decide_path(p.slot, p.start as u32, p.len as u32, needed as u32);
    let verdict = Verdict::from_u16(packed as u16).unwrap_or(Verdict::DeniedNoPolicy);
    let decision = Decision {
        verdict,
        rule_kind: (packed >> 16) as u16,
        rule_index: (packed >> 32) as u16,
    };
    let state = (packed >> 48) as u32;
    (decision, (state != 0).then(|| state - 1))
}

/// The decision for a path as one scalar: verdict, rule kind and rule index in the low three
/// 16-bit fields, the final automaton state + 1 (0: none) in the top one.
///
/// A global BPF function: the verifier checks it once per program, on its own, instead of
/// once per call site in every caller's state (which made programs slow to load).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn sandtrace_decide_path(slot: u32, start: u32, len: u32, needed: u32) -> u64 {
    let p = Resolved {
        slot: slot & 1,
        start: opaque(start as usize) & BUF_MASK,
        len: len as usize,
    };
    let pack = |d: Decision, state: Option<u32>| {
        d.verdict as u64
            | (d.rule_kind as u64) << 16
            | (d.rule_index as u64) << 32
            | (state.map_or(0, |s| s as u64 + 1) & 0xffff) << 48
    };
    if is_pseudo(p) {
        return pack(Decision::of(Verdict::AllowedPseudo), None);
    }
    let state = match walk(p) {
        Ok(s) => s,
        Err(v) => return pack(Decision::of(v), None),
    };
    match PATH_DFA_ACCEPT.get(state) {
        Some(accept) => {
            let mut decision = verdict_of(accept, needed as u16);
            // A base denial stands; what the base allows, the task's regimes may still deny.
            if !decision.verdict.is_denied() && regimes::enabled() {
                let mask = regimes::current();
                if mask != 0
                    && let Some(denied) = regime_verdict(accept, needed as u16, mask)
                {
                    decision = denied;
                }
            }
            pack(decision, Some(state))
        }
        None => pack(Decision::of(Verdict::DeniedNoPolicy), None),
    }
}

/// `rule_kind` of a regime's rule in events: the regime (index + 1) above the kind.
#[inline(always)]
const fn regime_rule_kind(regime: usize, kind_index: usize) -> u16 {
    ((regime as u16 + 1) << RULE_REGIME_SHIFT) | kind_index as u16
}

/// What the regimes of `mask` (a task's) make of an access the base rules allow: a deny rule
/// of one of them denies; a kind one of them narrows needs a rule of that regime's own
/// (read is satisfied by a read or a write rule, as in the base). `None`: allowed.
#[inline(always)]
fn regime_verdict(a: &PathAccept, needed: u16, mask: u32) -> Option<Decision> {
    // Deny rules first, in every regime: they name the rule that decided.
    for r in 0..MAX_REGIMES {
        if mask & (1 << r) != 0 && a.regime_kinds[r] as u16 & KIND_DENY != 0 {
            return Some(Decision {
                verdict: Verdict::DeniedRule,
                rule_kind: regime_rule_kind(r, KIND_INDEX_DENY),
                rule_index: a.regime_first_rule[r][KIND_INDEX_DENY],
            });
        }
    }
    for r in 0..MAX_REGIMES {
        if mask & (1 << r) == 0 {
            continue;
        }
        let narrowed = needed & regimes::regime(r).narrows;
        let kinds = a.regime_kinds[r] as u16;
        let missing = if narrowed & KIND_EXEC != 0 && kinds & KIND_EXEC == 0 {
            KIND_INDEX_EXEC
        } else if narrowed & KIND_WRITE != 0 && kinds & KIND_WRITE == 0 {
            KIND_INDEX_WRITE
        } else if narrowed & KIND_READ != 0 && kinds & (KIND_READ | KIND_WRITE) == 0 {
            KIND_INDEX_READ
        } else {
            continue;
        };
        return Some(Decision {
            verdict: Verdict::DeniedRegime,
            rule_kind: regime_rule_kind(r, missing),
            rule_index: NO_RULE,
        });
    }
    None
}

/// The `PathAccept::regime_kinds` of the state the path ends in (which regimes' rules match
/// it, and which regimes executing it enters, `KIND_ENTER`); `None` when the path cannot be
/// decided (a pseudo path, a missing or malformed table).
#[inline(always)]
pub fn regime_kinds(p: Resolved) -> Option<[u8; MAX_REGIMES]> {
    let (_, state) = decide_at(p, 0);
    PATH_DFA_ACCEPT.get(state?).map(|a| a.regime_kinds)
}

#[inline(always)]
fn verdict_of(a: &PathAccept, needed: u16) -> Decision {
    if a.kinds & KIND_DENY != 0 {
        return Decision {
            verdict: Verdict::DeniedRule,
            rule_kind: KIND_INDEX_DENY as u16,
            rule_index: a.first_rule[KIND_INDEX_DENY],
        };
    }
    let unlisted = Decision::of(Verdict::DeniedUnlisted);
    let mut decided = Decision::of(Verdict::Allowed);
    if needed & KIND_EXEC != 0 {
        if a.kinds & KIND_EXEC == 0 {
            return unlisted;
        }
        decided.rule_kind = KIND_INDEX_EXEC as u16;
        decided.rule_index = a.first_rule[KIND_INDEX_EXEC];
    }
    if needed & KIND_WRITE != 0 {
        if a.kinds & KIND_WRITE == 0 {
            return unlisted;
        }
        decided.rule_kind = KIND_INDEX_WRITE as u16;
        decided.rule_index = a.first_rule[KIND_INDEX_WRITE];
    }
    if needed & KIND_READ != 0 && needed & KIND_WRITE == 0 {
        // Write implies read.
        if a.kinds & KIND_READ != 0 {
            decided.rule_kind = KIND_INDEX_READ as u16;
            decided.rule_index = a.first_rule[KIND_INDEX_READ];
        } else if a.kinds & KIND_WRITE != 0 {
            decided.rule_kind = KIND_INDEX_WRITE as u16;
            decided.rule_index = a.first_rule[KIND_INDEX_WRITE];
        } else {
            return unlisted;
        }
    }
    decided
}

/// Whether moving a directory from the path that ended in `from` to the one that ended in `to`
/// could take a denied path out of its rule's reach (or, with `exchange`, the other way): when
/// a deny rule can match below `from` and the two directories do not lead to the same automaton
/// state (the same state decides every path below alike).
#[inline(always)]
pub fn moves_denied(from: u32, to: u32, exchange: bool) -> bool {
    let below = |state: u32| {
        PATH_DFA_ROWS
            .get(state)
            .map(|row| row[b'/' as usize] as u32)
    };
    let (Some(from), Some(to)) = (below(from), below(to)) else {
        return true;
    };
    if from == to {
        return false;
    }
    // Bit 0: a base deny rule ahead; bit 1 + r: one of regime r's (counted for its tasks).
    let wanted = 1 | regimes::current() << 1;
    let ahead = |state: u32| {
        PATH_DFA_DENY_AHEAD
            .get(state)
            .is_none_or(|&a| a as u32 & wanted != 0)
    };
    ahead(from) || (exchange && ahead(to))
}

/// Sends a file event for denials, or for every decision with `FLAG_FILE_EVENTS_ALL`.
/// Enforcement never waits on this: a full ring buffer only counts a lost event.
#[inline(always)]
pub fn report(op: FileOp, needed: u16, d: Decision, p: Option<Resolved>) {
    if !d.verdict.is_denied() && !session::flag(FLAG_FILE_EVENTS_ALL) {
        return;
    }
    // Packed inside the arm that has a path, and made opaque there: packed after the match,
    // the compiler may compute from the undefined fields of `None` and select the result away,
    // leaving a register no path wrote, which the verifier refuses (`!read_ok`).
    let path = match p {
        Some(p) => {
            opaque((p.slot as usize) << 48 | (p.start & 0xff_ffff) << 24 | (p.len & 0xff_ffff))
                as u64
        }
        None => 0,
    };
    sandtrace_report_file(
        (op as u64) << 16 | needed as u64,
        d.verdict as u64 | (d.rule_kind as u64) << 16 | (d.rule_index as u64) << 32,
        path,
    );
}

/// [`report`] with its arguments packed into scalars: `op << 16 | needed`, `verdict |
/// rule_kind << 16 | rule_index << 32`, and `slot << 48 | start << 24 | len` (len 0: no
/// path). A global BPF function, verified once per program (see [`sandtrace_decide_path`]).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn sandtrace_report_file(op_needed: u64, decision: u64, path: u64) -> u64 {
    let Some(mut entry) = emit::reserve::<FileEvent>() else {
        return 0;
    };
    let e = entry.as_mut_ptr();
    let (slot, start, len) = (
        (path >> 48) as u32,
        (path >> 24) as usize & 0xff_ffff,
        path as usize & 0xff_ffff,
    );
    unsafe {
        (*e).header = emit::header(EventKind::File);
        (*e).op = (op_needed >> 16) as u32;
        (*e).needed = op_needed as u16;
        (*e).verdict = decision as u16;
        (*e).rule_kind = (decision >> 16) as u16;
        (*e).rule_index = (decision >> 32) as u16;
        (*e).path[0] = 0;
        (*e).path_len = copy_path(
            core::ptr::addr_of_mut!((*e).path).cast::<u8>(),
            Resolved { slot, start, len },
        );
    }
    emit::submit(entry);
    0
}

/// Copies the rebuilt path `p` (at most `MAX_PATH_LEN` bytes) to `dst`, which has room for
/// `EVENT_PATH_CAP`; returns the bytes copied (0 for an empty path or a failed copy).
#[inline(always)]
pub fn copy_path(dst: *mut u8, p: Resolved) -> u32 {
    let Some(buf) = buffer(p.slot & 1) else {
        return 0;
    };
    if p.len == 0 {
        return 0;
    }
    let len = if p.len > MAX_PATH_LEN {
        MAX_PATH_LEN
    } else {
        p.len
    };
    unsafe {
        let src = (*buf).bytes.as_ptr().add(opaque(p.start) & BUF_MASK);
        if generated::bpf_probe_read_kernel(dst.cast(), len as u32, src.cast()) == 0 {
            len as u32
        } else {
            0
        }
    }
}

/// The LSM return value for a decision: 0 or -EACCES.
#[inline(always)]
pub fn errno_of(d: Decision) -> i32 {
    if d.verdict.is_denied() { -13 } else { 0 }
}

/// Convenience for the common case: decide `p` (or the resolution error), report, return errno.
#[inline(always)]
pub fn enforce(op: FileOp, needed: u16, p: Result<Resolved, Verdict>) -> i32 {
    let (d, shown) = match p {
        Ok(p) => (decide(p, needed), Some(p)),
        Err(v) => (Decision::of(v), None),
    };
    report(op, needed, d, shown);
    errno_of(d)
}

pub const NEED_READ: u16 = KIND_READ;
pub const NEED_WRITE: u16 = KIND_WRITE;
pub const NEED_EXEC: u16 = KIND_EXEC;
