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
    os::fd::{AsRawFd as _, OwnedFd, RawFd},
    path::Path,
};

use anyhow::{Context as _, Result, bail};

use super::{
    Hierarchy, PARENT, SessionCgroup,
    cleanup::{self, CreatedCgroup},
    hierarchy::v1_pids_mount,
};
use crate::plan::PidsController;

/// The limit in force for one session. Dropping it removes the v1 cgroup (if any), killing
/// what is left inside first.
#[derive(Debug)]
pub struct ProcessLimit {
    max: u32,
    /// The hybrid layout's v1 pids cgroup.
    v1: Option<V1Cgroup>,
}

#[derive(Debug)]
struct V1Cgroup {
    /// Its `cgroup.procs`, open for writing.
    procs: OwnedFd,
    cgroup: CreatedCgroup,
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
        cleanup::create_parent(&parent)
            .with_context(|| format!("creating the pids cgroup {}", parent.display()))?;
        let dir = parent.join(name);
        // From here on, an error drops `cgroup`, which removes the directory again.
        let cgroup = CreatedCgroup::create(dir.clone())
            .with_context(|| format!("creating the pids cgroup {}", dir.display()))?;
        let procs_path = dir.join("cgroup.procs");
        let procs = nix::fcntl::open(
            &procs_path,
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .with_context(|| format!("opening {}", procs_path.display()))?;
        write_max(&dir, max)?;
        Ok(Self {
            max,
            v1: Some(V1Cgroup { procs, cgroup }),
        })
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
            Some(v1) => v1.cgroup.remove(),
            None => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::testing;

    #[test]
    fn dropping_a_v1_limit_kills_what_is_inside_and_removes_it() {
        let Some((hierarchy, session)) = testing::session() else {
            return;
        };
        let limit = ProcessLimit::apply(&hierarchy, &session, 5).unwrap();
        assert_eq!(limit.max(), 5);
        let Some(v1) = &limit.v1 else {
            println!("skipped: the pids controller is on cgroup v2 on this host");
            return;
        };
        let dir = v1.cgroup.path().to_path_buf();
        assert_eq!(dir.file_name(), session.path().file_name());
        assert_eq!(
            fs::read_to_string(dir.join("pids.max")).unwrap().trim(),
            "5"
        );
        let mut sleeper = testing::Sleeper::start_in(&dir);
        // An error path of the loader: the limit goes out of scope without `remove`.
        drop(limit);
        assert!(!dir.exists(), "{} is left behind", dir.display());
        assert_eq!(sleeper.killed_by(), Some(libc::SIGKILL));
        session.remove().unwrap();
    }
}
