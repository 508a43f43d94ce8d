//! Where the cgroup hierarchies are mounted.
//!
//! Both layouts are handled: pure v2 at `/sys/fs/cgroup`, and the hybrid layout with v2 at
//! `/sys/fs/cgroup/unified` and the v1 controllers (pids among them) beside it.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::{
    PARENT,
    mountinfo::{self, Mount},
};

/// A mounted cgroup v2 hierarchy.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// Where it is mounted, e.g. `/sys/fs/cgroup` or `/sys/fs/cgroup/unified`.
    pub mount_point: PathBuf,
    /// Depth of the mount's root below the real hierarchy root (non-zero inside a cgroup
    /// namespace or when a sub-tree is bind-mounted).
    root_level: u32,
}

impl Hierarchy {
    /// Finds the cgroup v2 mount, preferring `/sys/fs/cgroup` over other mount points.
    pub fn find() -> Result<Self> {
        let mut found: Vec<Self> = mountinfo::mounts()?
            .iter()
            .filter_map(Self::from_mount)
            .collect();
        found.sort_by_key(|h| h.mount_point != Path::new("/sys/fs/cgroup"));
        found.into_iter().next().context(
            "no cgroup v2 hierarchy is mounted; mount one with \
             `mount -t cgroup2 none /sys/fs/cgroup/unified` (hybrid hosts) or boot with a \
             systemd that mounts it at /sys/fs/cgroup",
        )
    }

    /// `Some` for a cgroup2 mount.
    fn from_mount(mount: &Mount) -> Option<Self> {
        (mount.fs_type == "cgroup2").then(|| Self {
            mount_point: mount.mount_point.clone(),
            root_level: Path::new(&mount.root).components().skip(1).count() as u32,
        })
    }

    /// The depth of `dir` (a directory inside this hierarchy) below the hierarchy root.
    pub(super) fn level_of(&self, dir: &Path) -> u32 {
        let rel = dir.strip_prefix(&self.mount_point).unwrap_or(dir);
        self.root_level + rel.components().count() as u32
    }

    /// The directory that holds every session's cgroup in this hierarchy.
    pub(super) fn parent_dir(&self) -> PathBuf {
        self.mount_point.join(PARENT)
    }
}

/// Where a cgroup v1 hierarchy with the pids controller is mounted.
pub(super) fn v1_pids_mount() -> Result<Option<PathBuf>> {
    Ok(mountinfo::mounts()?
        .into_iter()
        .find(is_v1_pids)
        .map(|m| m.mount_point))
}

fn is_v1_pids(mount: &Mount) -> bool {
    mount.fs_type == "cgroup" && mount.has_super_option("pids")
}

/// The fewest directories that cover every mounted cgroup file system (v1 and v2): mounting
/// over them hides every cgroup's `cgroup.procs` from a session (see `spawn`).
pub fn cgroup_mount_cover() -> Result<Vec<PathBuf>> {
    Ok(mount_cover(
        mountinfo::mounts()?
            .into_iter()
            .filter(|m| matches!(m.fs_type.as_str(), "cgroup" | "cgroup2"))
            .map(|m| m.mount_point),
    ))
}

/// The directories of `dirs` that no other one contains. `/sys/fs/cgroup` is one of them
/// when it holds the mounts: a tmpfs there, like systemd's, holds the v1 hierarchies.
fn mount_cover(dirs: impl Iterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = dirs
        .map(|d| match d.parent() {
            Some(parent) if parent == Path::new("/sys/fs/cgroup") => parent.to_path_buf(),
            _ => d,
        })
        .collect();
    dirs.sort();
    dirs.dedup_by(|inner, outer| inner.starts_with(&*outer));
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::mountinfo::parse_line;

    fn hierarchy(line: &str) -> Option<Hierarchy> {
        Hierarchy::from_mount(&parse_line(line).unwrap())
    }

    #[test]
    fn the_mount_cover_keeps_only_outermost_directories() {
        let cover = mount_cover(
            [
                "/sys/fs/cgroup/unified",
                "/sys/fs/cgroup/pids",
                "/run/cg",
                "/run/cg/nested",
                "/sys/fs/cgroup",
            ]
            .into_iter()
            .map(PathBuf::from),
        );
        assert_eq!(
            cover,
            [PathBuf::from("/run/cg"), PathBuf::from("/sys/fs/cgroup")]
        );
    }

    #[test]
    fn parses_hybrid_and_pure_mounts() {
        let hybrid = "35 26 0:30 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate";
        let h = hierarchy(hybrid).unwrap();
        assert_eq!(h.mount_point, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(h.root_level, 0);
        assert_eq!(
            h.level_of(Path::new("/sys/fs/cgroup/unified/sandtrace/run-1-0")),
            2
        );
        let ns = "35 26 0:30 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw";
        let h = hierarchy(ns).unwrap();
        assert_eq!(h.root_level, 2);
        assert_eq!(h.level_of(Path::new("/sys/fs/cgroup/sandtrace/run-1-0")), 4);
        assert!(hierarchy("36 26 0:31 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids").is_none());
    }

    #[test]
    fn finds_v1_pids_mounts() {
        let v1_pids = |line| is_v1_pids(&parse_line(line).unwrap());
        assert!(v1_pids(
            "41 30 0:36 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:20 - cgroup cgroup rw,pids"
        ));
        assert!(!v1_pids(
            "42 30 0:37 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct"
        ));
        assert!(!v1_pids(
            "35 26 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate"
        ));
    }
}
