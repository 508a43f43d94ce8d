//! `[limits] max_processes`: the kernel's pids cgroup controller bounds the number of live tasks
//! (processes and threads) in the session. A fork, vfork or clone beyond the limit fails with
//! `EAGAIN`, so a fork bomb stalls at the limit instead of exhausting the host; the kernel
//! programs report every refused fork (`sys_exit`).
//!
//! Where the controller lives depends on the host's cgroup layout:
//! - cgroup v2 offers `pids` (pure v2, the usual layout): `+pids` is enabled down to the
//!   `sandtrace` parent and `pids.max` set on the session cgroup itself. CMD is born in it.
//! - the hybrid layout binds `pids` to a v1 hierarchy (`/sys/fs/cgroup/pids`): sandtrace
//!   creates `<pids>/sandtrace/<session name>` and CMD's process writes itself into it right
//!   before `execve`, through a descriptor opened here, so nothing CMD runs is ever outside it.
//!
//! The pids controller rather than a BPF program: it is the kernel's own, exact accounting
//! (no race between counting and forking), it works without BPF LSM, and its refusal is an
//! ordinary `EAGAIN` that programs handle.

use std::{
    fs,
    io::ErrorKind,
    os::fd::{AsRawFd as _, OwnedFd, RawFd},
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    cgroup::{Hierarchy, SessionCgroup},
    plan::PidsController,
};

/// Name of the v1 parent directory, as for the v2 session cgroups.
const PARENT: &str = "sandtrace";

/// The limit in force for one session. Dropping it removes the v1 cgroup (if any).
#[derive(Debug)]
pub struct ProcessLimit {
    max: u32,
    /// The hybrid layout's v1 pids cgroup, and its `cgroup.procs` open for writing.
    v1: Option<V1Cgroup>,
}

#[derive(Debug)]
struct V1Cgroup {
    dir: PathBuf,
    procs: OwnedFd,
    removed: bool,
}

impl ProcessLimit {
    /// Limits `session` to `max` live tasks. After this returns, a process started inside the
    /// session cgroup is limited (v2), or is once it writes itself to [`Self::join_fd`] (v1).
    pub fn apply(hierarchy: &Hierarchy, session: &SessionCgroup, max: u32) -> Result<Self> {
        if v2_offers_pids(&hierarchy.mount_point) {
            enable_v2_pids(&hierarchy.mount_point, session.path())?;
            write_max(session.path(), max)?;
            return Ok(Self { max, v1: None });
        }
        let Some(mount) = v1_pids_mount()? else {
            bail!(
                "[limits] max_processes needs the pids cgroup controller, but the cgroup v2 \
                 hierarchy at {} does not offer it and no cgroup v1 pids hierarchy is mounted; \
                 mount one (`mount -t cgroup -o pids none /sys/fs/cgroup/pids`) or remove \
                 max_processes",
                hierarchy.mount_point.display()
            );
        };
        let name = session
            .path()
            .file_name()
            .context("the session cgroup has no name")?;
        let parent = mount.join(PARENT);
        match fs::create_dir(&parent) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => remove_stale_sessions(&parent),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("creating the pids cgroup {}", parent.display()));
            }
        }
        let dir = parent.join(name);
        fs::create_dir(&dir)
            .with_context(|| format!("creating the pids cgroup {}", dir.display()))?;
        let procs_path = dir.join("cgroup.procs");
        let procs = match nix::fcntl::open(
            &procs_path,
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                return Err(e).with_context(|| format!("opening {}", procs_path.display()));
            }
        };
        // From here on, dropping `limit` removes the directory again.
        let limit = Self {
            max,
            v1: Some(V1Cgroup {
                dir: dir.clone(),
                procs,
                removed: false,
            }),
        };
        write_max(&dir, max)?;
        Ok(limit)
    }

    pub fn max(&self) -> u32 {
        self.max
    }

    /// On the hybrid layout, the `cgroup.procs` descriptor CMD's process must write `0` to
    /// (itself) before `execve`; `None` when being in the session cgroup is enough.
    pub fn join_fd(&self) -> Option<RawFd> {
        self.v1.as_ref().map(|v1| v1.procs.as_raw_fd())
    }

    /// Removes the v1 cgroup. Call once the session's processes are gone.
    pub fn remove(mut self) -> Result<()> {
        match self.v1.as_mut() {
            Some(v1) => v1.remove(),
            None => Ok(()),
        }
    }
}

impl V1Cgroup {
    fn remove(&mut self) -> Result<()> {
        self.removed = true;
        remove_dir_when_empty(&self.dir)
    }
}

impl Drop for V1Cgroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_dir_when_empty(&self.dir);
        }
    }
}

/// Where this host offers the pids controller, for the session plan.
pub fn controller() -> PidsController {
    let hierarchy = match Hierarchy::find() {
        Ok(h) => h,
        Err(e) => return PidsController::Missing(format!("{e:#}")),
    };
    if v2_offers_pids(&hierarchy.mount_point) {
        return PidsController::CgroupV2;
    }
    match v1_pids_mount() {
        Ok(Some(_)) => PidsController::CgroupV1,
        Ok(None) => PidsController::Missing(format!(
            "the cgroup v2 hierarchy at {} does not offer the pids controller and no cgroup v1 \
             pids hierarchy is mounted; mount one (`mount -t cgroup -o pids none \
             /sys/fs/cgroup/pids`) or remove max_processes",
            hierarchy.mount_point.display()
        )),
        Err(e) => PidsController::Missing(format!("{e:#}")),
    }
}

fn write_max(dir: &Path, max: u32) -> Result<()> {
    let file = dir.join("pids.max");
    fs::write(&file, max.to_string()).with_context(|| format!("writing {}", file.display()))
}

/// Whether the v2 hierarchy's root offers the pids controller.
fn v2_offers_pids(mount_point: &Path) -> bool {
    fs::read_to_string(mount_point.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|name| name == "pids"))
}

/// Enables `pids` in `subtree_control` of every cgroup from the mount point down to the
/// session's parent, so that the session cgroup gets `pids.max`.
fn enable_v2_pids(mount_point: &Path, session: &Path) -> Result<()> {
    let parent = session
        .parent()
        .context("the session cgroup has no parent")?;
    let below = parent.strip_prefix(mount_point).with_context(|| {
        format!(
            "{} is not below the cgroup v2 mount {}",
            parent.display(),
            mount_point.display()
        )
    })?;
    let mut dir = mount_point.to_path_buf();
    let mut chain = vec![dir.clone()];
    for component in below.components() {
        dir.push(component);
        chain.push(dir.clone());
    }
    for dir in chain {
        let control = dir.join("cgroup.subtree_control");
        let enabled = fs::read_to_string(&control)
            .with_context(|| format!("reading {}", control.display()))?;
        if enabled.split_whitespace().any(|c| c == "pids") {
            continue;
        }
        fs::write(&control, "+pids").with_context(|| {
            format!(
                "enabling the pids controller in {} (needed for [limits] max_processes)",
                control.display()
            )
        })?;
    }
    Ok(())
}

/// Where a cgroup v1 hierarchy with the pids controller is mounted, from mountinfo.
fn v1_pids_mount() -> Result<Option<PathBuf>> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(mountinfo.lines().find_map(parse_v1_pids_mount))
}

/// The mount point of a mountinfo line for a v1 cgroup hierarchy that has `pids`.
fn parse_v1_pids_mount(line: &str) -> Option<PathBuf> {
    // "41 30 0:36 / /sys/fs/cgroup/pids rw,nosuid shared:20 - cgroup cgroup rw,pids"
    let (left, right) = line.split_once(" - ")?;
    let mut right = right.split_whitespace();
    if right.next()? != "cgroup" {
        return None;
    }
    let options = right.nth(1)?;
    if !options.split(',').any(|o| o == "pids") {
        return None;
    }
    let mount_point = left.split_whitespace().nth(4)?;
    // mountinfo escapes space, tab, newline and backslash as octal; such mount points are
    // not worth supporting here.
    (!mount_point.contains('\\')).then(|| PathBuf::from(mount_point))
}

/// Removes v1 session directories whose loader is gone (killed before it could clean up).
fn remove_stale_sessions(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let loader = name
            .to_str()
            .and_then(|n| n.strip_prefix("run-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = loader
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            // Its processes died with the loader's PID namespace; only the directory is left.
            let _ = fs::remove_dir(entry.path());
        }
    }
}

/// Removes an emptied cgroup directory; it stays busy for a moment while its last tasks are
/// reaped.
fn remove_dir_when_empty(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("removing the pids cgroup {}", dir.display()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_v1_pids_mounts() {
        let pids = "41 30 0:36 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:20 - cgroup cgroup rw,pids";
        assert_eq!(
            parse_v1_pids_mount(pids),
            Some(PathBuf::from("/sys/fs/cgroup/pids"))
        );
        let cpu = "42 30 0:37 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct";
        assert_eq!(parse_v1_pids_mount(cpu), None);
        let v2 = "35 26 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate";
        assert_eq!(parse_v1_pids_mount(v2), None);
    }
}
