//! The session's cgroup v2 directory: creation under a `sandtrace` parent, killing every
//! process in it, and removal.
//!
//! Both layouts are handled: pure v2 at `/sys/fs/cgroup` and the hybrid layout with v2 at
//! `/sys/fs/cgroup/unified`. The v2 hierarchy is found through /proc/self/mountinfo.

use std::{
    fs,
    io::{self, ErrorKind},
    os::{
        fd::{AsRawFd as _, OwnedFd},
        unix::fs::MetadataExt as _,
    },
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// Name of the parent directory that holds every session's cgroup.
const PARENT: &str = "sandtrace";

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
        let mountinfo =
            fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
        let mut found: Vec<Self> = mountinfo.lines().filter_map(parse_cgroup2_mount).collect();
        found.sort_by_key(|h| h.mount_point != Path::new("/sys/fs/cgroup"));
        found.into_iter().next().context(
            "no cgroup v2 hierarchy is mounted; mount one with \
             `mount -t cgroup2 none /sys/fs/cgroup/unified` (hybrid hosts) or boot with a \
             systemd that mounts it at /sys/fs/cgroup",
        )
    }

    /// The depth of `dir` (a directory inside this hierarchy) below the hierarchy root.
    fn level_of(&self, dir: &Path) -> u32 {
        let rel = dir.strip_prefix(&self.mount_point).unwrap_or(dir);
        self.root_level + rel.components().count() as u32
    }

    fn parent_dir(&self) -> PathBuf {
        self.mount_point.join(PARENT)
    }
}

/// Parses one mountinfo line; `Some` for cgroup2 mounts.
fn parse_cgroup2_mount(line: &str) -> Option<Hierarchy> {
    let (fs_type, root, mount_point) = parse_mount(line)?;
    if fs_type != "cgroup2" {
        return None;
    }
    let root_level = Path::new(root).components().skip(1).count() as u32;
    Some(Hierarchy {
        mount_point,
        root_level,
    })
}

/// One mountinfo line as (file-system type, root of the mount, mount point).
fn parse_mount(line: &str) -> Option<(&str, &str, PathBuf)> {
    // "36 25 0:31 / /sys/fs/cgroup rw,nosuid ... shared:9 - cgroup2 cgroup2 rw,..."
    let (left, right) = line.split_once(" - ")?;
    let fs_type = right.split_whitespace().next()?;
    let mut fields = left.split_whitespace().skip(3);
    let root = fields.next()?;
    let mount_point = PathBuf::from(unescape_mountinfo(fields.next()?));
    Some((fs_type, root, mount_point))
}

/// The fewest directories that cover every mounted cgroup file system (v1 and v2): mounting
/// over them hides every cgroup's `cgroup.procs` from a session (see `spawn`).
pub fn cgroup_mount_cover() -> Result<Vec<PathBuf>> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(mount_cover(mountinfo.lines().filter_map(|line| {
        let (fs_type, _, mount_point) = parse_mount(line)?;
        matches!(fs_type, "cgroup" | "cgroup2").then_some(mount_point)
    })))
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

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v as char);
            i += 4;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// One session's cgroup. Dropping it kills what is left inside and removes the directory.
#[derive(Debug)]
pub struct SessionCgroup {
    path: PathBuf,
    dir: OwnedFd,
    id: u64,
    level: u32,
    removed: bool,
}

impl SessionCgroup {
    /// Creates `<hierarchy>/sandtrace/run-<pid>-<n>`, after removing leftovers of sessions whose
    /// loader is gone.
    pub fn create(hierarchy: &Hierarchy) -> Result<Self> {
        let parent = hierarchy.parent_dir();
        match fs::create_dir(&parent) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => remove_stale_sessions(&parent),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "creating the cgroup {} (sandtrace must run as root with a writable \
                         cgroup v2 hierarchy)",
                        parent.display()
                    )
                });
            }
        }
        let pid = std::process::id();
        for n in 0..1000 {
            let path = parent.join(format!("run-{pid}-{n}"));
            match fs::create_dir(&path) {
                Ok(()) => return Self::open(hierarchy, path),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("creating the cgroup {}", path.display()));
                }
            }
        }
        bail!(
            "could not find a free session cgroup name under {}",
            parent.display()
        )
    }

    fn open(hierarchy: &Hierarchy, path: PathBuf) -> Result<Self> {
        let meta = fs::metadata(&path).with_context(|| format!("stat {}", path.display()))?;
        let dir = nix::fcntl::open(
            &path,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            level: hierarchy.level_of(&path),
            // The cgroup id the kernel reports (bpf_get_current_cgroup_id) is the kernfs node
            // id, which is the directory's inode number on 64-bit kernels.
            id: meta.ino(),
            path,
            dir,
            removed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kernel's id for this cgroup (what `bpf_get_current_cgroup_id` returns).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Depth below the hierarchy root, for `bpf_get_current_ancestor_cgroup_id`.
    pub fn level(&self) -> u32 {
        self.level
    }

    /// A descriptor of the directory, for `clone3(CLONE_INTO_CGROUP)`.
    pub fn dir_fd(&self) -> std::os::fd::RawFd {
        self.dir.as_raw_fd()
    }

    /// Kills every process in the cgroup and its descendants, including ones that called
    /// setsid or double-forked, and waits until it is empty.
    pub fn kill_all(&self, wait: Duration) -> Result<()> {
        kill_tree(&self.path, wait)
    }

    /// Kills what is left and removes the directory.
    pub fn remove(mut self) -> Result<()> {
        self.removed = true;
        remove_tree(&self.path)
    }
}

impl Drop for SessionCgroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_tree(&self.path);
        }
    }
}

fn is_populated(dir: &Path) -> io::Result<bool> {
    let events = fs::read_to_string(dir.join("cgroup.events"))?;
    Ok(events.lines().any(|l| l == "populated 1"))
}

/// `cgroup.kill` where the kernel has it (5.14+), else SIGKILL to every listed process until
/// none is left (freezing first so that nothing can fork in between).
fn kill_tree(dir: &Path, wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    let kill_file = dir.join("cgroup.kill");
    let have_kill = kill_file.exists();
    if !have_kill {
        let _ = fs::write(dir.join("cgroup.freeze"), "1");
    }
    loop {
        if have_kill {
            fs::write(&kill_file, "1")
                .with_context(|| format!("writing {}", kill_file.display()))?;
        } else {
            kill_listed_processes(dir);
        }
        match is_populated(dir) {
            Ok(false) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}/cgroup.events", dir.display()));
            }
            Ok(true) => {}
        }
        if Instant::now() >= deadline {
            bail!(
                "processes remain in {} after SIGKILL (stuck in uninterruptible sleep?)",
                dir.display()
            );
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn kill_listed_processes(dir: &Path) {
    for d in cgroup_tree(dir) {
        if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// `dir` and every cgroup below it, parents before their children.
fn cgroup_tree(dir: &Path) -> Vec<PathBuf> {
    let mut tree = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = fs::read_dir(&d) {
            stack.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        tree.push(d);
    }
    tree
}

/// Kills everything in `dir` and removes it with its sub-cgroups (deepest first).
fn remove_tree(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    kill_tree(dir, Duration::from_secs(5))?;
    let dirs = cgroup_tree(dir);
    for d in dirs.iter().rev() {
        // An emptied cgroup can stay busy for a moment while its last tasks are reaped.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::NotFound => break,
                Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("removing cgroup {}", d.display()));
                }
            }
        }
    }
    Ok(())
}

/// Removes session cgroups left behind by loaders that died (e.g. by SIGKILL): their
/// processes were already killed through the PID namespace, only the directories remain.
fn remove_stale_sessions(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("run-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = remove_tree(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let h = parse_cgroup2_mount(hybrid).unwrap();
        assert_eq!(h.mount_point, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(h.root_level, 0);
        assert_eq!(
            h.level_of(Path::new("/sys/fs/cgroup/unified/sandtrace/run-1-0")),
            2
        );
        let ns = "35 26 0:30 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw";
        let h = parse_cgroup2_mount(ns).unwrap();
        assert_eq!(h.root_level, 2);
        assert_eq!(h.level_of(Path::new("/sys/fs/cgroup/sandtrace/run-1-0")), 4);
        assert!(
            parse_cgroup2_mount("36 26 0:31 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids")
                .is_none()
        );
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
    }
}
