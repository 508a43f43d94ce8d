//! The embedded kernel object: configuring it for a session, loading it, attaching programs.

mod path_tables;

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{Lsm, RawTracePoint},
};
use sandtrace_common::{
    config::{CONFIG_SYMBOL, Config, FLAG_DNS_CAPTURE, FLAG_REGIMES},
    event::counter,
    file::PathKey,
};

use std::os::fd::BorrowedFd;

use crate::{
    kernel_btf::{self, KernelBtf},
    network::host_addresses::HostAddressMap,
    plan::ProgramPlan,
    policy::CompiledPaths,
};

/// The eBPF object built by build.rs from `sandtrace-ebpf`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sandtrace"));

/// Default ring-buffer size: room for about 65k syscall events, some 60 ms of the fastest
/// event stream one process makes. Its pages count twice in the loader's RSS (the kernel maps
/// the data area twice so that records never wrap).
pub const DEFAULT_RING_BUFFER_BYTES: u32 = 8 * 1024 * 1024;

/// Raw tracepoints and the programs attached to them, in attach order.
pub const TRACEPOINTS: &[(&str, &str)] = &[
    ("sched_process_fork", "sched_process_fork"),
    ("sched_process_exec", "sched_process_exec"),
    ("sched_process_exit", "sched_process_exit"),
    ("sys_enter", "sys_enter"),
    ("sys_exit", "sys_exit"),
    ("seccomp_kill", "signal_generate"),
];

/// BPF LSM programs that enforce the path policy and keep the session in, by hook. Truncation
/// through a descriptor (O_TRUNC, ftruncate) is decided at open, which needs write for it.
pub const LSM_PROGRAMS: &[&str] = &[
    "file_open",
    "path_truncate",
    "path_unlink",
    "path_mkdir",
    "path_rmdir",
    "path_mknod",
    "path_symlink",
    "path_link",
    "path_rename",
    "path_chmod",
    "path_chown",
    "bprm_check_security",
    "ptrace_access_check",
    // Pathname UNIX sockets: connecting is decided by the socket file's path.
    "unix_stream_connect",
    "unix_may_send",
    "kernel_module_request",
    // Metadata and watches (sandtrace-ebpf/src/metadata.rs).
    "path_notify",
    "file_ioctl",
    "inode_setxattr",
    "inode_removexattr",
    "inode_setattr",
];

/// BPF LSM programs for hooks older kernels lack, attached where the kernel has them, with
/// what decides the same operations where it does not.
pub const OPTIONAL_LSM_PROGRAMS: &[(&str, &str)] = &[
    (
        "inode_set_acl",
        "Linux 6.2+; before, POSIX ACLs are set as the system.posix_acl_* extended attributes, \
         which inode_setxattr decides",
    ),
    (
        "inode_remove_acl",
        "Linux 6.2+; before, POSIX ACLs are removed as extended attributes, which \
         inode_removexattr decides",
    ),
];

/// The optional hooks ([`OPTIONAL_LSM_PROGRAMS`]) this kernel lacks.
pub fn missing_optional_hooks(kernel: &KernelBtf) -> Vec<&'static str> {
    OPTIONAL_LSM_PROGRAMS
        .iter()
        .map(|&(hook, _)| hook)
        .filter(|hook| !kernel.has_function(&format!("bpf_lsm_{hook}")))
        .collect()
}

/// The program that implements `hook` on this kernel: a hook whose arguments changed between
/// kernels has one program per argument list.
pub fn program_for(hook: &'static str, kernel: &KernelBtf) -> &'static str {
    match hook {
        // Linux 6.8 added the idmap argument in front.
        "inode_setattr" if kernel.function_params("bpf_lsm_inode_setattr") == Some(2) => {
            "inode_setattr_no_idmap"
        }
        _ => hook,
    }
}

/// Why an optional hook may be missing and what covers for it.
pub fn optional_hook_note(hook: &str) -> &'static str {
    OPTIONAL_LSM_PROGRAMS
        .iter()
        .find(|&&(h, _)| h == hook)
        .map_or("", |&(_, note)| note)
}

/// What the LSM programs enforce.
pub struct Enforcement<'a> {
    pub paths: &'a CompiledPaths,
    /// CMD and its `#!`/`env` chain: the session's first process may exec these.
    pub launch_chain: Vec<PathKey>,
    /// The system's dynamic loaders, which may not be run directly.
    pub dynamic_loaders: Vec<PathKey>,
    /// `(hook, program)` for every BPF LSM program to attach, in order (see [`program_for`]).
    pub lsm_programs: Vec<(&'static str, &'static str)>,
}

/// The loaded, attached programs of one session. Dropping it detaches everything.
pub struct SessionPrograms {
    ebpf: Ebpf,
}

impl SessionPrograms {
    /// Loads the object with `config` and attaches what `plan` lists: the tracing programs,
    /// the syscall actions, with `enforcement` the path policy maps and the LSM programs
    /// (whose hooks [`check_lsm_hooks`] has found), and the network programs on `cgroup` (the
    /// session cgroup's directory).
    /// Everything is in place when this returns; CMD must not start before.
    pub fn load(
        config: &Config,
        ring_buffer_bytes: u32,
        plan: &ProgramPlan,
        enforcement: Option<&Enforcement<'_>>,
        cgroup: BorrowedFd<'_>,
    ) -> Result<Self> {
        let regimes = config.flags & FLAG_REGIMES != 0;
        let mut loader = EbpfLoader::new();
        loader
            .btf(Some(kernel_btf::aya_btf()?))
            .override_global(CONFIG_SYMBOL, config, true)
            .map_max_entries("EVENTS", ring_buffer_bytes);
        if !regimes {
            // Never used: no need for its preallocated room.
            loader.map_max_entries("REGIME_OF", 1);
        }
        let mut ebpf = loader
            .load(OBJECT)
            .context("loading the eBPF object (are you root? is the kernel 5.8 or newer?)")?;
        // Before the tracepoints: the exec tracepoint walks the automaton to enter regimes.
        // With BPF LSM the enforcement below fills it; without, it is filled for that alone.
        if regimes
            && enforcement.is_none()
            && let Some(paths) = &plan.regime_paths
        {
            fill_path_tables(&mut ebpf, paths)?;
        }
        // Before the tracepoints: a syscall must not go unreported in between.
        {
            let mut actions: Array<_, u8> =
                Array::try_from(map_mut(&mut ebpf, "SYSCALL_ACTIONS")?)?;
            for &(nr, action) in &plan.syscall_actions {
                actions
                    .set(nr, action, 0)
                    .with_context(|| format!("marking syscall {nr} in SYSCALL_ACTIONS"))?;
            }
        }
        for (program, tracepoint) in TRACEPOINTS {
            let prog: &mut RawTracePoint = ebpf
                .program_mut(program)
                .ok_or_else(|| anyhow!("program {program} missing from the eBPF object"))?
                .try_into()?;
            prog.load()
                .with_context(|| format!("loading the {program} program"))?;
            prog.attach(tracepoint).with_context(|| {
                format!("attaching {program} to the raw tracepoint {tracepoint}")
            })?;
        }
        if let Some(enforcement) = enforcement {
            fill_policy_maps(&mut ebpf, enforcement)?;
            attach_lsm_programs(&mut ebpf, &enforcement.lsm_programs)?;
        }
        if let Some(network) = &plan.network {
            crate::network::attach(&mut ebpf, network, cgroup, enforcement.is_some())?;
        }
        if plan.config_flags & FLAG_DNS_CAPTURE != 0 {
            crate::network::attach_dns_capture(&mut ebpf, cgroup, plan.network.is_some())?;
        }
        Ok(Self { ebpf })
    }

    /// Takes the ring buffer that carries events to userspace.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>> {
        let map = self.ebpf.take_map("EVENTS").context("EVENTS map missing")?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Takes the kernel's table of addresses the session's resolver hands out, for the
    /// resolver to fill.
    pub fn take_host_addresses(&mut self) -> Result<HostAddressMap> {
        let map = self
            .ebpf
            .take_map("HOST_ADDRESSES")
            .context("HOST_ADDRESSES map missing")?;
        Ok(HostAddressMap::new(HashMap::try_from(map)?))
    }

    /// Calls per syscall number (index = number), summed over CPUs.
    pub fn syscall_counts(&self) -> Result<Vec<u64>> {
        sum_per_cpu(&self.ebpf, "SYSCALL_COUNTS")
    }

    /// Events the kernel side could not deliver: ring buffer full.
    pub fn lost_events(&self) -> Result<u64> {
        Ok(sum_per_cpu(&self.ebpf, "COUNTERS")?[counter::RINGBUF_LOST as usize])
    }

    /// Syscall entries that could not be recorded (pending map full).
    pub fn pending_overflows(&self) -> Result<u64> {
        Ok(sum_per_cpu(&self.ebpf, "COUNTERS")?[counter::PENDING_FULL as usize])
    }
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name)
        .with_context(|| format!("{name} map missing from the eBPF object"))
}

fn fill_policy_maps(ebpf: &mut Ebpf, enforcement: &Enforcement<'_>) -> Result<()> {
    for (name, keys) in [
        ("LAUNCH_CHAIN", &enforcement.launch_chain),
        ("DYNAMIC_LOADERS", &enforcement.dynamic_loaders),
    ] {
        let mut m: HashMap<_, PathKey, u8> = HashMap::try_from(map_mut(ebpf, name)?)?;
        for key in keys {
            m.insert(key, 1, 0)
                .with_context(|| format!("filling the policy map {name}"))?;
        }
    }
    fill_path_tables(ebpf, enforcement.paths)
}

/// The path automaton's maps (see `sandtrace-ebpf/src/path_policy.rs`).
fn fill_path_tables(ebpf: &mut Ebpf, paths: &CompiledPaths) -> Result<()> {
    let rows = path_tables::expanded_rows(paths);
    let ahead = path_tables::deny_ahead(paths.accept(), &rows);
    let context = |what: &str| format!("filling the policy map {what}");
    {
        let mut m: Array<_, [u16; 256]> = Array::try_from(map_mut(ebpf, "PATH_DFA_ROWS")?)?;
        for (state, row) in rows.iter().enumerate() {
            m.set(state as u32, row, 0)
                .with_context(|| context("PATH_DFA_ROWS"))?;
        }
    }
    {
        let mut m: Array<_, sandtrace_common::policy::PathAccept> =
            Array::try_from(map_mut(ebpf, "PATH_DFA_ACCEPT")?)?;
        for (state, accept) in paths.accept().iter().enumerate() {
            m.set(state as u32, accept, 0)
                .with_context(|| context("PATH_DFA_ACCEPT"))?;
        }
    }
    {
        let mut m: Array<_, u8> = Array::try_from(map_mut(ebpf, "PATH_DFA_DENY_AHEAD")?)?;
        for (state, flag) in ahead.iter().enumerate() {
            m.set(state as u32, flag, 0)
                .with_context(|| context("PATH_DFA_DENY_AHEAD"))?;
        }
    }
    // The header last: until it is set the programs deny everything (fail closed).
    let mut m: Array<_, sandtrace_common::policy::PathDfaHeader> =
        Array::try_from(map_mut(ebpf, "PATH_DFA_HEADER")?)?;
    m.set(0, paths.header(), 0)
        .with_context(|| context("PATH_DFA_HEADER"))?;
    Ok(())
}

/// Fails unless the kernel has every LSM hook the path policy needs.
pub fn check_lsm_hooks(kernel: &KernelBtf) -> Result<()> {
    for hook in LSM_PROGRAMS {
        if !kernel.has_function(&format!("bpf_lsm_{hook}")) {
            anyhow::bail!(
                "this kernel has no `{hook}` LSM hook (CONFIG_SECURITY_PATH may be off); \
                 sandtrace cannot enforce the path policy here"
            );
        }
    }
    Ok(())
}

fn attach_lsm_programs(ebpf: &mut Ebpf, programs: &[(&str, &str)]) -> Result<()> {
    let btf = kernel_btf::aya_btf()?;
    for (hook, program) in programs {
        let prog: &mut Lsm = ebpf
            .program_mut(program)
            .ok_or_else(|| anyhow!("program {program} missing from the eBPF object"))?
            .try_into()?;
        prog.load(hook, btf)
            .with_context(|| format!("loading the BPF LSM program for the {hook} hook"))?;
        prog.attach()
            .with_context(|| format!("attaching the BPF LSM program to {hook}"))?;
    }
    Ok(())
}

fn sum_per_cpu(ebpf: &Ebpf, name: &str) -> Result<Vec<u64>> {
    let map = ebpf
        .map(name)
        .with_context(|| format!("{name} map missing"))?;
    let array: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map)?;
    array
        .iter()
        .map(|values| Ok(values?.iter().sum()))
        .collect::<Result<Vec<u64>>>()
        .with_context(|| format!("reading {name}"))
}

/// Whether this kernel can load and attach BPF LSM programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LsmSupport {
    Available,
    Unavailable(String),
}

/// Finds out by loading and attaching the no-op `lsm_probe` program, after checking the
/// cheaper preconditions so that the reason given is the most precise one.
pub fn probe_lsm() -> LsmSupport {
    let active = active_lsms();
    if let Some(list) = &active
        && !list.split(',').any(|l| l == "bpf")
    {
        return LsmSupport::Unavailable(format!(
            "`bpf` is not in the active LSM list ({list}); boot with `lsm={list},bpf` \
             (kernel command line) on a kernel built with CONFIG_BPF_LSM=y"
        ));
    }
    match try_attach_probe() {
        Ok(()) => LsmSupport::Available,
        Err(e) => {
            let detail = format!("{e:#}");
            let hint = if detail.contains("Operation not permitted") || detail.contains("EPERM") {
                "this kernel refuses BPF programs that need BPF trampolines (LSM, fentry); \
                 use a kernel with BPF trampoline support and BPF LSM"
            } else if active.is_none() {
                "the active LSM list could not be read from securityfs; the kernel may lack \
                 CONFIG_BPF_LSM"
            } else {
                "the kernel rejected a minimal BPF LSM program"
            };
            LsmSupport::Unavailable(format!(
                "{hint} (loading a BPF LSM program failed: {detail})"
            ))
        }
    }
}

fn try_attach_probe() -> Result<()> {
    let btf = kernel_btf::aya_btf()?;
    // Only the probe program is loaded: shrink the large maps the object creates anyway.
    let mut loader = EbpfLoader::new();
    loader.btf(Some(btf));
    loader.map_max_entries("EVENTS", 4096);
    for map in [
        "PENDING",
        "PATH_DFA_ROWS",
        "PATH_DFA_ACCEPT",
        "PATH_DFA_DENY_AHEAD",
        "HOST_ADDRESSES",
        "DNS_PEERS",
        "REGIME_OF",
    ] {
        loader.map_max_entries(map, 1);
    }
    let mut ebpf = loader.load(OBJECT)?;
    let prog: &mut Lsm = ebpf
        .program_mut("lsm_probe")
        .context("lsm_probe missing from the eBPF object")?
        .try_into()?;
    prog.load("file_open", btf)?;
    prog.attach()?;
    Ok(())
}

/// The active LSM list from securityfs, mounting it if needed.
fn active_lsms() -> Option<String> {
    const LSM: &str = "/sys/kernel/security/lsm";
    if std::fs::metadata(LSM).is_err() {
        let _ = nix::mount::mount(
            Some("securityfs"),
            "/sys/kernel/security",
            Some("securityfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        );
    }
    std::fs::read_to_string(LSM)
        .ok()
        .map(|s| s.trim().to_owned())
}
