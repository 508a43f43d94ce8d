//! Files written outside the directory CMD started in (the working directory of its first
//! exec), which an install or build should not need.
//!
//! Terminals and `/dev/null` are left out. Temporary directories (`/tmp`, `/var/tmp`,
//! `/dev/shm`) are outside too and are listed, marked `temporary`, so that a reader can set
//! them apart from writes that persist.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use serde::Serialize;

use super::{FileRow, ProcessNode, ProcessRef};

const TEMPORARY_DIRS: &[&str] = &["/tmp", "/var/tmp", "/dev/shm"];

/// Writes to these reach no file.
fn is_terminal_or_null(path: &Path) -> bool {
    [
        "/dev/null",
        "/dev/tty",
        "/dev/zero",
        "/dev/full",
        "/dev/console",
    ]
    .iter()
    .any(|p| path == Path::new(p))
        || path.starts_with("/dev/pts")
}

/// The temporary directory `path` is in, if any.
pub fn temporary_dir(path: &Path) -> Option<&'static str> {
    TEMPORARY_DIRS
        .iter()
        .copied()
        .find(|dir| path.starts_with(dir))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutsideWrite {
    pub path: PathBuf,
    /// Under `/tmp`, `/var/tmp` or `/dev/shm`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
    pub processes: Vec<ProcessRef>,
}

/// The writes outside `start_dir`, in path order. Paths the replay named relative to it
/// (`./...`) are inside; `../...` are outside.
pub fn find(start_dir: &Path, files: &[FileRow], nodes: &[ProcessNode]) -> Vec<OutsideWrite> {
    let by_pid: HashMap<u32, &ProcessNode> = nodes.iter().map(|n| (n.pid, n)).collect();
    let inside = |path: &Path| {
        if path.is_absolute() {
            path.starts_with(start_dir)
        } else {
            !path.starts_with("..")
        }
    };
    files
        .iter()
        .filter(|f| f.usage.write > 0 && !inside(&f.path) && !is_terminal_or_null(&f.path))
        .map(|f| OutsideWrite {
            path: f.path.clone(),
            temporary: temporary_dir(&f.path).is_some(),
            processes: f
                .usage
                .written_by
                .iter()
                .map(|&pid| ProcessRef::find(&by_pid, pid))
                .collect(),
        })
        .collect()
}
