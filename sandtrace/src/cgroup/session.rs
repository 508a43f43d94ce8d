//! The session's cgroup v2 directory: created under the hierarchy's `sandtrace` parent, CMD is
//! born in it, every kernel program filters on its id, and it is removed with whatever is left
//! inside when the session ends.

use std::{
    io::ErrorKind,
    os::{
        fd::{AsRawFd as _, OwnedFd, RawFd},
        unix::fs::MetadataExt as _,
    },
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, RecvTimeoutError},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use super::{
    Hierarchy,
    cleanup::{self, CreatedCgroup},
};

/// One session's cgroup. Dropping it kills what is left inside and removes the directory.
#[derive(Debug)]
pub struct SessionCgroup {
    dir: OwnedFd,
    id: u64,
    level: u32,
    cgroup: CreatedCgroup,
}

impl SessionCgroup {
    /// Creates `<hierarchy>/sandtrace/run-<pid>-<n>`, after removing leftovers of sessions whose
    /// loader is gone.
    pub fn create(hierarchy: &Hierarchy) -> Result<Self> {
        let parent = hierarchy.parent_dir();
        cleanup::create_parent(&parent).with_context(|| {
            format!(
                "creating the cgroup {} (sandtrace must run as root with a writable cgroup v2 \
                 hierarchy)",
                parent.display()
            )
        })?;
        let pid = std::process::id();
        for n in 0..1000 {
            let path = parent.join(format!("run-{pid}-{n}"));
            match CreatedCgroup::create(path.clone()) {
                // From here on, an error drops `cgroup`, which removes the directory again.
                Ok(cgroup) => return Self::open(hierarchy, cgroup),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
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

    fn open(hierarchy: &Hierarchy, cgroup: CreatedCgroup) -> Result<Self> {
        let path = cgroup.path();
        let meta = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
        let dir = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            level: hierarchy.level_of(path),
            // The cgroup id the kernel reports (bpf_get_current_cgroup_id) is the kernfs node
            // id, which is the directory's inode number on 64-bit kernels.
            id: meta.ino(),
            dir,
            cgroup,
        })
    }

    pub fn path(&self) -> &Path {
        self.cgroup.path()
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
    pub fn dir_fd(&self) -> RawFd {
        self.dir.as_raw_fd()
    }

    /// Kills every process in the cgroup and its descendants, including ones that called
    /// setsid or double-forked, and waits until it is empty.
    pub fn kill_all(&self, wait: Duration) -> Result<()> {
        cleanup::kill_tree(self.path(), wait)
    }

    /// Kills what is left and removes the directory.
    pub fn remove(mut self) -> Result<()> {
        self.cgroup.remove()
    }

    /// Kills everything in the cgroup from a thread of its own once `after` has passed, unless
    /// the timer is dropped first. The session's timeout must hold even when the event loop is
    /// stuck (writing to a stderr pipe nobody reads, say).
    pub fn kill_after(&self, after: Duration, wait: Duration) -> Result<KillTimer> {
        let (cancel, cancelled) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let path = self.path().to_path_buf();
        let thread = std::thread::Builder::new()
            .name("session-timeout".to_owned())
            .spawn({
                let fired = Arc::clone(&fired);
                move || {
                    if let Err(RecvTimeoutError::Timeout) = cancelled.recv_timeout(after) {
                        fired.store(true, Ordering::SeqCst);
                        // Teardown kills again and reports a failure.
                        let _ = cleanup::kill_tree(&path, wait);
                    }
                }
            })
            .context("starting the session's timeout thread")?;
        Ok(KillTimer {
            cancel: Some(cancel),
            fired,
            thread: Some(thread),
        })
    }
}

/// See [`SessionCgroup::kill_after`].
#[derive(Debug)]
pub struct KillTimer {
    cancel: Option<mpsc::Sender<()>>,
    fired: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl KillTimer {
    /// Whether the timer killed the session.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for KillTimer {
    fn drop(&mut self) {
        // A dropped sender wakes the thread before its time.
        drop(self.cancel.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, process::Command};

    use super::*;
    use crate::cgroup::testing::{Sleeper, populated, session};

    #[test]
    fn the_kill_timer_kills_at_its_time_and_not_once_dropped() {
        let Some((_, cgroup)) = session() else {
            return;
        };
        let mut sleeper = Sleeper::start_in(cgroup.path());
        // Dropped before its time: nothing happens.
        drop(
            cgroup
                .kill_after(Duration::from_secs(3600), Duration::from_secs(5))
                .unwrap(),
        );
        assert!(populated(cgroup.path()));
        let timer = cgroup
            .kill_after(Duration::from_millis(1), Duration::from_secs(5))
            .unwrap();
        assert_eq!(sleeper.killed_by(), Some(libc::SIGKILL));
        // `fired` is set before the kill.
        assert!(timer.fired());
        cgroup.remove().unwrap();
    }

    #[test]
    fn dropping_a_session_cgroup_kills_what_is_inside_and_removes_it() {
        let Some((_, cgroup)) = session() else {
            return;
        };
        let path = cgroup.path().to_path_buf();
        let mut sleeper = Sleeper::start_in(&path);
        // A sub-cgroup, as a CMD with access to the cgroup file system could make.
        let nested = path.join("nested");
        fs::create_dir(&nested).unwrap();
        let mut nested_sleeper = Sleeper::start_in(&nested);
        assert!(populated(&path));
        // An error path of the loader: the guard goes out of scope without `remove`.
        let failing = || -> Result<()> {
            let _cgroup = cgroup;
            bail!("loading failed")
        };
        assert!(failing().is_err());
        assert!(!path.exists(), "{} is left behind", path.display());
        // Both were killed by SIGKILL.
        assert_eq!(sleeper.killed_by(), Some(libc::SIGKILL));
        assert_eq!(nested_sleeper.killed_by(), Some(libc::SIGKILL));
    }

    #[test]
    fn remove_empties_and_removes_and_a_later_drop_does_nothing() {
        let Some((hierarchy, cgroup)) = session() else {
            return;
        };
        let path = cgroup.path().to_path_buf();
        assert!(path.starts_with(hierarchy.parent_dir()));
        assert_eq!(fs::metadata(&path).unwrap().ino(), cgroup.id());
        let mut sleeper = Sleeper::start_in(&path);
        cgroup.kill_all(Duration::from_secs(5)).unwrap();
        assert!(!populated(&path));
        assert_eq!(sleeper.killed_by(), Some(libc::SIGKILL));
        cgroup.remove().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn the_cgroups_of_dead_loaders_are_removed() {
        let Some((hierarchy, cgroup)) = session() else {
            return;
        };
        // A loader that has exited (and was reaped): its pid names no process.
        let mut dead = Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        let stale = hierarchy.parent_dir().join(format!("run-{dead_pid}-0"));
        if Path::new(&format!("/proc/{dead_pid}")).exists() {
            println!("skipped: pid {dead_pid} was reused at once");
            return;
        }
        fs::create_dir(&stale).unwrap();
        let second = SessionCgroup::create(&hierarchy).unwrap();
        assert!(!stale.exists(), "{} is left behind", stale.display());
        assert!(cgroup.path().exists(), "a live loader's cgroup was removed");
        drop((cgroup, second));
    }
}
