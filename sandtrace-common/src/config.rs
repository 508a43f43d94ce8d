//! Per-session configuration written into the eBPF object's `CONFIG` global before load.

/// Name of the global in the eBPF object that holds a [`Config`].
pub const CONFIG_SYMBOL: &str = "CONFIG";

/// Set in [`Config::flags`]: send one ring-buffer event per completed syscall.
/// Without it only the in-kernel per-syscall counters are updated.
pub const FLAG_SYSCALL_EVENTS: u32 = 1 << 0;

/// Offsets of kernel struct fields, read from the running kernel's BTF by the loader.
/// aya-ebpf has no CO-RE, so nothing kernel-internal is hard-coded in the programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `task_struct.pid`
    pub task_pid: u32,
    /// `task_struct.tgid`
    pub task_tgid: u32,
    /// `task_struct.exit_code`
    pub task_exit_code: u32,
    /// `task_struct.real_parent`
    pub task_real_parent: u32,
    /// `linux_binprm.filename`
    pub bprm_filename: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Inode number of the session's cgroup v2 directory (what
    /// `bpf_get_current_cgroup_id` returns for a task directly inside it).
    pub session_cgroup_id: u64,
    /// Depth of the session cgroup below the v2 root (the root is level 0). Tasks in
    /// sub-cgroups of the session are matched through their ancestor at this level.
    pub session_cgroup_level: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    pub offsets: KernelOffsets,
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for Config {}
