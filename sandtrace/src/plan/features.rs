//! What the running kernel and host offer a session: probed once, before planning.

use nix::errno::Errno;

/// The first Landlock ABI that scopes abstract UNIX sockets (Linux 6.12).
pub const LANDLOCK_SCOPING_ABI: u32 = 6;

/// Where the pids controller that enforces `[limits] max_processes` lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidsController {
    /// Offered by the cgroup v2 hierarchy (pure v2, the usual layout).
    CgroupV2,
    /// Bound to a cgroup v1 hierarchy (the hybrid layout).
    CgroupV1,
    /// Not available, and why.
    Missing(String),
}

/// The kernel's features a plan depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFeatures {
    /// BPF LSM programs load and attach; otherwise why not.
    pub bpf_lsm: Result<(), String>,
    /// The Landlock ABI version; otherwise why Landlock is unavailable.
    pub landlock_abi: Result<u32, String>,
    pub pids: PidsController,
    /// The optional BPF LSM hooks ([`crate::ebpf::OPTIONAL_LSM_PROGRAMS`]) this kernel lacks
    /// (probed with `bpf_lsm`; empty when it was not).
    pub missing_lsm_hooks: Vec<&'static str>,
    /// The kernel has the per-PID-namespace `vm.memfd_noexec` sysctl (Linux 6.3).
    pub memfd_noexec: bool,
}

impl KernelFeatures {
    /// Probes this kernel. `bpf_lsm` is probed only when `need_bpf_lsm` (loading a BPF program
    /// takes root and some time); otherwise it reads as unavailable with that reason.
    pub fn probe(need_bpf_lsm: bool) -> Self {
        let bpf_lsm = if !nix::unistd::geteuid().is_root() {
            Err("not probed: loading a BPF program needs root".to_owned())
        } else if need_bpf_lsm {
            match crate::ebpf::probe_lsm() {
                crate::ebpf::LsmSupport::Available => Ok(()),
                crate::ebpf::LsmSupport::Unavailable(why) => Err(why),
            }
        } else {
            Err("not probed (tracing only)".to_owned())
        };
        // Parsed only with BPF LSM: the hooks matter for nothing else, and parsing costs time.
        let missing_lsm_hooks = match bpf_lsm
            .as_ref()
            .ok()
            .map(|()| crate::kernel_btf::KernelBtf::from_sys_fs())
        {
            Some(Ok(btf)) => crate::ebpf::missing_optional_hooks(&btf),
            _ => Vec::new(),
        };
        Self {
            bpf_lsm,
            landlock_abi: landlock_abi(),
            pids: crate::cgroup::pids::controller(),
            missing_lsm_hooks,
            memfd_noexec: MEMFD_NOEXEC_SYSCTL
                .to_str()
                .is_ok_and(|path| std::path::Path::new(path).exists()),
        }
    }
}

impl KernelFeatures {
    /// One line per feature, as `sandtrace probe` prints them.
    pub fn report(&self) -> String {
        let bpf_lsm = match &self.bpf_lsm {
            Ok(()) => "available".to_owned(),
            Err(why) => format!("unavailable: {why}"),
        };
        let landlock = match &self.landlock_abi {
            Ok(abi) => format!("ABI {abi}"),
            Err(why) => format!("unavailable: {why}"),
        };
        let pids = match &self.pids {
            PidsController::CgroupV2 => "cgroup v2".to_owned(),
            PidsController::CgroupV1 => "cgroup v1 hierarchy".to_owned(),
            PidsController::Missing(why) => format!("unavailable: {why}"),
        };
        let mut out = format!("bpf-lsm: {bpf_lsm}\n");
        for hook in &self.missing_lsm_hooks {
            let note = crate::ebpf::optional_hook_note(hook);
            out.push_str(&format!("bpf-lsm-hook-missing: {hook} ({note})\n"));
        }
        out.push_str(&format!("landlock: {landlock}\npids-controller: {pids}\n"));
        out
    }
}

/// Where a PID namespace's `vm.memfd_noexec` is set (by a process inside it).
pub const MEMFD_NOEXEC_SYSCTL: &std::ffi::CStr = c"/proc/sys/vm/memfd_noexec";

/// The running kernel's Landlock ABI version.
pub fn landlock_abi() -> Result<u32, String> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_ulong = 1;
    // SAFETY: the version query takes no attribute and creates nothing.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if abi < 0 {
        return Err(match Errno::last() {
            Errno::ENOSYS => "the kernel has no Landlock".to_owned(),
            Errno::EOPNOTSUPP => "Landlock is disabled (not in the lsm= boot list)".to_owned(),
            other => format!("querying Landlock failed: {other}"),
        });
    }
    Ok(abi as u32)
}
