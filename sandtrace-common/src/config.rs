//! Per-session configuration written into the eBPF object's `CONFIG` global before load.

/// Name of the global in the eBPF object that holds a [`Config`].
pub const CONFIG_SYMBOL: &str = "CONFIG";

/// Set in [`Config::flags`]: send one ring-buffer event per completed syscall.
/// Without it only the in-kernel per-syscall counters are updated.
pub const FLAG_SYSCALL_EVENTS: u32 = 1 << 0;
/// Enforce the compiled path policy in the file and exec LSM programs.
pub const FLAG_ENFORCE_FILES: u32 = 1 << 1;
/// Report every file decision, not only denials (`-v`).
pub const FLAG_FILE_EVENTS_ALL: u32 = 1 << 2;
/// Every exec is allowed (`--allow-exec`, or `allow_exec` covering `/`); running the dynamic
/// loader directly is then allowed too.
pub const FLAG_EXEC_UNRESTRICTED: u32 = 1 << 3;
/// Report every network decision, not only denials (`-v`).
pub const FLAG_NETWORK_EVENTS_ALL: u32 = 1 << 4;
/// The session's resolver runs (`[network] allow_hosts`): DNS is redirected to `Config::dns`,
/// DNS over TLS refused, and addresses it handed out are allowed (`HOST_ADDRESSES`).
pub const FLAG_SESSION_DNS: u32 = 1 << 5;

/// The session's policy allows the network (`[network] allow = true`) but a regime restricts
/// it: the network programs run, and let tasks in no restricting regime do anything.
pub const FLAG_BASE_NETWORK_OPEN: u32 = 1 << 6;
/// The policy has `[[after_exec]]` regimes (`Config::regimes`): tasks are tracked by regime.
pub const FLAG_REGIMES: u32 = 1 << 7;
/// The session's DNS traffic is recorded (`EventKind::DnsPacket`): its resolver does not run,
/// so packets to and from port 53 are the only record of the names it looks up.
pub const FLAG_DNS_CAPTURE: u32 = 1 << 8;
/// Landlock holds the filesystem rules (no BPF LSM): a path syscall of the session that fails
/// with EACCES is reported whether or not per-syscall events are on, since Landlock's refusals
/// are otherwise unrecorded (see `syscall_args::landlock_refuses`).
pub const FLAG_FILE_REFUSALS: u32 = 1 << 9;

/// In [`RegimeConfig::network`]: the regime has a `[network]` section; its tasks may use only
/// the network rules it keeps (`keep_rules`), and DNS only if it keeps an `allow_hosts` entry.
pub const REGIME_NET_RESTRICTED: u16 = 1;

/// One `[[after_exec]]` regime as the kernel programs apply it to the tasks in it. Which
/// programs enter it and its own path rules are in the path automaton
/// ([`crate::policy::PathAccept::regime_kinds`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegimeConfig {
    /// `KIND_READ | KIND_WRITE | KIND_EXEC` bits: the allow lists the regime narrows. A
    /// read, write or exec of such a kind needs a matching rule of the regime too.
    pub narrows: u16,
    /// `REGIME_NET_*` bits.
    pub network: u16,
    pub _pad: u32,
    /// Per `NET_LIST_*` (connect, bind, hosts): bit `i` set when the regime keeps kernel rule
    /// `i` of that list (the `NetRule` index in its array; for hosts, the `allow_hosts` entry).
    pub keep_rules: [u64; crate::network::NET_LIST_COUNT],
}

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
    /// `linux_binprm.file`
    pub bprm_file: u32,
    /// `file.f_path`
    pub file_f_path: u32,
    /// `file.f_mode`
    pub file_f_mode: u32,
    /// `file.f_inode`
    pub file_f_inode: u32,
    /// `inode.i_ino`
    pub inode_i_ino: u32,
    /// `inode.i_sb`
    pub inode_i_sb: u32,
    /// `super_block.s_dev`
    pub sb_s_dev: u32,
    /// `path.mnt`
    pub path_mnt: u32,
    /// `path.dentry`
    pub path_dentry: u32,
    /// `dentry.d_parent`
    pub dentry_d_parent: u32,
    /// `dentry.d_name.name`
    pub dentry_d_name_name: u32,
    /// `dentry.d_inode`
    pub dentry_d_inode: u32,
    /// `vfsmount.mnt_root`
    pub vfsmount_mnt_root: u32,
    /// `file.f_flags`
    pub file_f_flags: u32,
    /// `mount.mnt` (the `vfsmount` embedded in `struct mount`)
    pub mount_mnt: u32,
    /// `mount.mnt_parent`
    pub mount_mnt_parent: u32,
    /// `mount.mnt_mountpoint`
    pub mount_mnt_mountpoint: u32,
    /// `task_struct.fs`
    pub task_fs: u32,
    /// `fs_struct.root`
    pub fs_root: u32,
    /// `inode.i_mode`
    pub inode_i_mode: u32,
    /// `task_struct.group_leader`
    pub task_group_leader: u32,
    /// `task_struct.thread_pid`
    pub task_thread_pid: u32,
    /// `pid.level`
    pub pid_level: u32,
    /// `pid.numbers`
    pub pid_numbers: u32,
    /// `sizeof(struct upid)`
    pub upid_size: u32,
    /// `upid.nr`
    pub upid_nr: u32,
    /// `socket.sk`
    pub socket_sk: u32,
    /// `unix_sock.path` (the socket file of a pathname UNIX socket)
    pub unix_sock_path: u32,
    /// `super_block.s_magic`
    pub sb_s_magic: u32,
    /// `dentry.d_sb`
    pub dentry_d_sb: u32,
    /// `super_block.s_mounts`: the superblock's mounts, laid out as `sb_mounts_layout` says
    pub sb_s_mounts: u32,
    /// The link from one mount of a superblock to the next: `mount.mnt_instance` (a
    /// `list_head`) or `mount.mnt_next_for_sb` (a pointer)
    pub mount_sb_link: u32,
    /// `SB_MOUNTS_*`: how `sb_s_mounts` and `mount_sb_link` link a superblock's mounts
    pub sb_mounts_layout: u32,
    /// `mount.mnt_ns`
    pub mount_mnt_ns: u32,
    /// `task_struct.nsproxy`
    pub task_nsproxy: u32,
    /// `nsproxy.mnt_ns`
    pub nsproxy_mnt_ns: u32,
    /// `iattr.ia_valid`
    pub iattr_ia_valid: u32,
    /// `task_struct.flags`
    pub task_flags: u32,
    /// `task_struct.cred`
    pub task_cred: u32,
    /// `task_struct.real_cred`
    pub task_real_cred: u32,
    /// `task_struct.signal`
    pub task_signal: u32,
    /// `signal_struct.live.counter`: the thread group's tasks that have not exited yet
    pub signal_live: u32,
    /// `linux_binprm.interp`
    pub bprm_interp: u32,
    /// `task_struct.mm`
    pub task_mm: u32,
    /// `mm_struct.arg_start` (`arg_end` follows it)
    pub mm_arg_start: u32,
    /// `mm_struct.arg_end`
    pub mm_arg_end: u32,
    /// `fs_struct.pwd`
    pub fs_pwd: u32,
}

/// [`KernelOffsets::sb_mounts_layout`]: this kernel links a superblock's mounts in a way the
/// programs do not know; whatever must find them is denied.
pub const SB_MOUNTS_UNKNOWN: u32 = 0;
/// A circular `list_head` in the superblock, threaded through `mount.mnt_instance`.
pub const SB_MOUNTS_LIST: u32 = 1;
/// A pointer to the first mount in the superblock, then `mount.mnt_next_for_sb` (Linux 6.16+).
pub const SB_MOUNTS_LINKED: u32 = 2;

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
    /// Nesting level of the session's PID namespace (the initial namespace is 0): the session's
    /// /proc names processes by their ids at this level.
    pub session_pid_ns_level: u32,
    pub _pad: u32,
    /// The session's resolver, with `FLAG_SESSION_DNS`.
    pub dns: crate::network::DnsRedirect,
    /// With `FLAG_REGIMES`: how many of `regimes` the policy has.
    pub n_regimes: u32,
    pub _pad2: u32,
    pub regimes: [RegimeConfig; crate::policy::MAX_REGIMES],
    pub offsets: KernelOffsets,
}

impl Config {
    /// All zero: matches no cgroup, so the programs do nothing until the loader sets it.
    pub const UNSET: Self = Self {
        session_cgroup_id: 0,
        session_cgroup_level: 0,
        flags: 0,
        session_pid_ns_level: 0,
        _pad: 0,
        dns: crate::network::DnsRedirect {
            addr4: [0; 4],
            addr6: [0; 4],
            port: 0,
            _pad: 0,
            _pad2: 0,
        },
        n_regimes: 0,
        _pad2: 0,
        regimes: [RegimeConfig {
            narrows: 0,
            network: 0,
            _pad: 0,
            keep_rules: [0; crate::network::NET_LIST_COUNT],
        }; crate::policy::MAX_REGIMES],
        offsets: KernelOffsets::UNSET,
    };
}

impl KernelOffsets {
    pub const UNSET: Self = Self {
        task_pid: 0,
        task_tgid: 0,
        task_exit_code: 0,
        task_real_parent: 0,
        bprm_filename: 0,
        bprm_file: 0,
        file_f_path: 0,
        file_f_mode: 0,
        file_f_inode: 0,
        inode_i_ino: 0,
        inode_i_sb: 0,
        sb_s_dev: 0,
        path_mnt: 0,
        path_dentry: 0,
        dentry_d_parent: 0,
        dentry_d_name_name: 0,
        dentry_d_inode: 0,
        vfsmount_mnt_root: 0,
        file_f_flags: 0,
        mount_mnt: 0,
        mount_mnt_parent: 0,
        mount_mnt_mountpoint: 0,
        task_fs: 0,
        fs_root: 0,
        inode_i_mode: 0,
        task_group_leader: 0,
        task_thread_pid: 0,
        pid_level: 0,
        pid_numbers: 0,
        upid_size: 0,
        upid_nr: 0,
        socket_sk: 0,
        unix_sock_path: 0,
        sb_s_magic: 0,
        dentry_d_sb: 0,
        sb_s_mounts: 0,
        mount_sb_link: 0,
        sb_mounts_layout: 0,
        mount_mnt_ns: 0,
        task_nsproxy: 0,
        nsproxy_mnt_ns: 0,
        iattr_ia_valid: 0,
        task_flags: 0,
        task_cred: 0,
        task_real_cred: 0,
        task_signal: 0,
        signal_live: 0,
        bprm_interp: 0,
        task_mm: 0,
        mm_arg_start: 0,
        mm_arg_end: 0,
        fs_pwd: 0,
    };
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]` and made of integers (and arrays of them) only: every bit pattern
// is a valid value, and the kernel side reads the same layout.
unsafe impl aya::Pod for Config {}
