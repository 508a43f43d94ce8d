//! The cgroups a session lives in: its cgroup v2 directory (every kernel program filters on
//! it) and, for `[limits] max_processes`, its pids cgroup.
//!
//! * [`mountinfo`]: which file systems are mounted where (/proc/self/mountinfo).
//! * [`hierarchy`]: the cgroup hierarchies found there ([`Hierarchy`], the v1 pids mount,
//!   [`cgroup_mount_cover`]).
//! * [`session`]: the session's v2 cgroup ([`SessionCgroup`]).
//! * [`pids`]: the process limit ([`ProcessLimit`]).
//! * [`cleanup`]: killing what is in a cgroup, removing it (with the retries the kernel needs),
//!   the guard that removes a created cgroup on every path, and removal of the cgroups of
//!   loaders that died.
//!
//! Every cgroup sandtrace creates is `<hierarchy>/sandtrace/run-<loader pid>-<n>`.

mod cleanup;
pub mod hierarchy;
pub mod mountinfo;
pub mod pids;
pub mod session;

pub use hierarchy::{Hierarchy, cgroup_mount_cover};
pub use pids::ProcessLimit;
pub use session::SessionCgroup;

/// Name of the directory, in each hierarchy, that holds every session's cgroup.
const PARENT: &str = "sandtrace";

#[cfg(test)]
pub(crate) mod testing {
    use std::{
        fs,
        os::unix::process::ExitStatusExt as _,
        path::Path,
        process::{Child, Command, Stdio},
        thread,
        time::{Duration, Instant},
    };

    use super::{Hierarchy, SessionCgroup};

    /// Tests that need root (creating cgroups, starting processes in them) call this first.
    pub(crate) fn have_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return true;
        }
        println!("skipped: needs root");
        false
    }

    /// A session cgroup where sandtrace would create one; `None` (skipped) without root.
    pub(crate) fn session() -> Option<(Hierarchy, SessionCgroup)> {
        if !have_root() {
            return None;
        }
        let hierarchy = Hierarchy::find().unwrap();
        let cgroup = SessionCgroup::create(&hierarchy).unwrap();
        Some((hierarchy, cgroup))
    }

    /// Whether a process is in the v2 cgroup `dir` or below.
    pub(crate) fn populated(dir: &Path) -> bool {
        fs::read_to_string(dir.join("cgroup.events"))
            .unwrap()
            .lines()
            .any(|l| l == "populated 1")
    }

    /// Waits until a process is in the v2 cgroup `dir`, for as long as a loaded machine may
    /// need to start one.
    pub(crate) fn wait_until_populated(dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !populated(dir) {
            assert!(
                Instant::now() < deadline,
                "nothing started in {}",
                dir.display()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// A `sleep` moved into the cgroup `dir`. Killed when dropped, should the test fail
    /// before it is.
    pub(crate) struct Sleeper(Child);

    impl Sleeper {
        pub(crate) fn start_in(dir: &Path) -> Self {
            let child = Command::new("sleep")
                .arg("1000")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let sleeper = Self(child);
            fs::write(dir.join("cgroup.procs"), sleeper.0.id().to_string()).unwrap();
            sleeper
        }

        /// The signal that ended it, once it has ended.
        pub(crate) fn killed_by(&mut self) -> Option<i32> {
            self.0.wait().unwrap().signal()
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
