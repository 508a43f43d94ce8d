//! Killing what is in a cgroup and removing it, for v2 and v1 hierarchies alike.
//!
//! [`CreatedCgroup`] owns a directory sandtrace made: whatever path a run takes (an error
//! while loading, a panic, the normal end), the directory is emptied and removed, and a
//! failure to do so is reported instead of ignored. [`create_parent`] also removes what
//! loaders that died (e.g. by SIGKILL) left behind.

use std::{
    fs,
    io::{self, ErrorKind},
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// How long killing a cgroup's processes, and then removing its directory, may take.
const REMOVAL_WAIT: Duration = Duration::from_secs(5);

/// A cgroup directory this process created. [`Self::remove`], or dropping it, kills every
/// process left inside and removes the directory with its sub-cgroups.
#[derive(Debug)]
pub(super) struct CreatedCgroup {
    path: PathBuf,
    removed: bool,
}

impl CreatedCgroup {
    /// Creates the directory `path` (failing with `AlreadyExists` if it is there).
    pub(super) fn create(path: PathBuf) -> io::Result<Self> {
        fs::create_dir(&path)?;
        Ok(Self {
            path,
            removed: false,
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Kills what is left and removes the directory; dropping it afterwards does nothing.
    pub(super) fn remove(&mut self) -> Result<()> {
        self.removed = true;
        remove_tree(&self.path)
    }
}

impl Drop for CreatedCgroup {
    fn drop(&mut self) {
        if !self.removed
            && let Err(e) = remove_tree(&self.path)
        {
            eprintln!("sandtrace: warning: cleaning up after the session: {e:#}");
        }
    }
}

/// Creates `parent` (the `sandtrace` directory of a hierarchy) if it is missing; if it is
/// there, removes the session cgroups in it whose loader is gone.
pub(super) fn create_parent(parent: &Path) -> io::Result<()> {
    match fs::create_dir(parent) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            remove_stale_sessions(parent);
            Ok(())
        }
        result => result,
    }
}

/// Removes session cgroups (`run-<loader pid>-<n>`) left behind by loaders that died: their
/// processes were killed with the loader's PID namespace, only the directories remain (and
/// should anything be left inside, it is killed first).
fn remove_stale_sessions(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if let Some(pid) = loader_pid(&entry.file_name().to_string_lossy())
            && !Path::new(&format!("/proc/{pid}")).exists()
            && let Err(e) = remove_tree(&entry.path())
        {
            eprintln!("sandtrace: warning: removing a stale session cgroup: {e:#}");
        }
    }
}

/// The loader's pid in a session cgroup's name.
fn loader_pid(name: &str) -> Option<u32> {
    name.strip_prefix("run-")?.split('-').next()?.parse().ok()
}

/// Kills every process in `dir` and its sub-cgroups, including ones that called setsid or
/// double-forked, and waits up to `wait` until none is left. `cgroup.kill` where the kernel
/// has it (v2, 5.14+), else SIGKILL to every listed process until none is left (on v2
/// freezing first, so that nothing can fork in between).
pub(super) fn kill_tree(dir: &Path, wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    let kill_file = dir.join("cgroup.kill");
    let have_kill = kill_file.exists();
    let freeze_file = dir.join("cgroup.freeze");
    if !have_kill && freeze_file.exists() {
        let _ = fs::write(freeze_file, "1");
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
                return Err(e).with_context(|| format!("reading the state of {}", dir.display()));
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

/// Whether a process is in `dir` or below: `cgroup.events` on v2; on v1, which has none,
/// whether any `cgroup.procs` of the tree lists one. `NotFound` once `dir` is gone.
fn is_populated(dir: &Path) -> io::Result<bool> {
    match fs::read_to_string(dir.join("cgroup.events")) {
        Ok(events) => Ok(events.lines().any(|l| l == "populated 1")),
        Err(e) if e.kind() == ErrorKind::NotFound && dir.join("cgroup.procs").exists() => {
            Ok(cgroup_tree(dir).iter().any(|d| {
                fs::read_to_string(d.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
            }))
        }
        Err(e) => Err(e),
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
    kill_tree(dir, REMOVAL_WAIT)?;
    for d in cgroup_tree(dir).iter().rev() {
        remove_when_released(d)?;
    }
    Ok(())
}

/// Removes an emptied cgroup directory: it stays busy (`EBUSY`) for a moment while its last
/// tasks are released.
fn remove_when_released(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + REMOVAL_WAIT;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("removing the cgroup {}", dir.display()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_loader_pid_from_session_names() {
        assert_eq!(loader_pid("run-1234-0"), Some(1234));
        assert_eq!(loader_pid("run-1234-17"), Some(1234));
        assert_eq!(loader_pid("run-x-0"), None);
        assert_eq!(loader_pid("other"), None);
    }
}
