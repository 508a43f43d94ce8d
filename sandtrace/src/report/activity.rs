//! What a run did with files and sockets, derived from its syscall and process lines.
//!
//! A syscall line carries the path argument as the process passed it, often relative to its
//! working directory or to a directory descriptor. To name the file, this module replays each
//! process's working directory (`chdir`, `fchdir`) and descriptor table (`open*`, `dup*`,
//! `fcntl(F_DUPFD)`, `close`, `close_range`, `socket`, `accept`, close-on-exec at `exec`,
//! copied at `fork`) from the log, in log order.
//!
//! Only successful calls count, and only calls the kernel's file policy decides on: opens
//! (read, write or both, by their flags), executions, and entries created, removed, renamed,
//! linked or changed (mode, owner, size). `stat`, `access`, `readlink` and `O_PATH` opens are
//! not decided by the policy and are not counted.
//!
//! Limits (documented in the README): a descriptor the log never showed being opened
//! (inherited, received over a socket, created by `pipe`/`socketpair`, or opened by an
//! `openat2`/`io_uring` the replay does not decode) is unknown, and a path relative to it is
//! reported as unresolved; `rename` and `link` record only their first path (the new name is
//! not in the log); processes sharing a descriptor table or working directory without being
//! threads (`clone(CLONE_FILES | CLONE_FS)`) are replayed as if they did not share it; lost
//! events leave gaps.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs,
    path::{Component, Path, PathBuf},
};

use serde::Serialize;

use super::log::{Line, ProcessChange, ProcessLine, SyscallLine};
use crate::open_flags::{AT_FDCWD, O_CREAT, O_TRUNC, O_WRONLY, OpenAccess, open_access};
use crate::output::network::family_name;

const AT_EMPTY_PATH: u64 = 0x1000;
const O_DIRECTORY: u64 = 0o200000;
const O_CLOEXEC: u64 = 0o2000000;
const F_DUPFD: i32 = 0;
const F_DUPFD_CLOEXEC: i32 = 1030;
const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;

/// How paths are named in the result.
#[derive(Debug, Clone)]
pub enum PathNaming {
    /// As the processes named them, joined to the replayed working directory and normalised
    /// lexically. The directory CMD started in is not in the log, so paths relative to it
    /// start with `./`. For reports: the result depends on the log alone.
    AsNamed,
    /// Resolved on this machine as the kernel resolves them when it enforces: absolute,
    /// symlinks followed (for a path that no longer exists, its nearest existing ancestor),
    /// CMD's start directory given. The session's own `/proc` is named as policies name it:
    /// `/proc/self/...` for the process itself, `/proc/*/...` for others.
    Resolved { start_dir: PathBuf },
}

/// What the run did with one path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileUse {
    /// Successful opens for reading.
    pub read: u64,
    /// Successful opens for writing and changes to the entry (create, remove, rename, link,
    /// mode, owner, size).
    pub write: u64,
    /// Executions by CMD's own process (the first process of the session).
    pub exec_by_cmd: u64,
    /// Executions by any other process.
    pub exec_by_others: u64,
    /// Opened with `O_DIRECTORY` (listed, or used to reach entries beneath it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub directory: bool,
    /// Created by `mkdir`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub created_dir: bool,
    /// Opened with `O_CREAT`, or made by `mknod` or `symlink`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub created: bool,
    /// Removed, or renamed away (to a name the log does not record).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
    /// The process named a longer path that the trace cut; this is the deepest directory of
    /// it that the log shows.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
    /// The processes (pids) that read it.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub read_by: BTreeSet<u32>,
    /// The processes (pids) that wrote or changed it.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub written_by: BTreeSet<u32>,
}

impl FileUse {
    pub fn exec(&self) -> u64 {
        self.exec_by_cmd + self.exec_by_others
    }

    fn read_by(&mut self, tgid: u32) {
        self.read += 1;
        self.read_by.insert(tgid);
    }

    fn written_by(&mut self, tgid: u32) {
        self.write += 1;
        self.written_by.insert(tgid);
    }
}

/// Socket calls of one kind on sockets of one address family.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SocketUse {
    pub calls: u64,
    pub failed: u64,
    /// Error names of the failed calls, with counts.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
}

/// Why a path could not be named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unresolved {
    /// Relative to a directory descriptor the log never showed being opened.
    UnknownDirectory,
    /// `/proc/self/fd/N` or `/dev/fd/N` of a descriptor the log never showed being opened.
    UnknownDescriptor,
    /// The syscall succeeded but its line has no path: the kernel programs could not read the
    /// argument when the call started (its page was not yet in memory).
    NotRecorded,
}

impl Unresolved {
    pub fn describe(self) -> &'static str {
        match self {
            Self::UnknownDirectory => {
                "relative to a directory descriptor whose opening the log does not show"
            }
            Self::UnknownDescriptor => {
                "a /proc/self/fd or /dev/fd name of a descriptor whose opening the log does not show"
            }
            Self::NotRecorded => {
                "the trace could not read the path argument (its memory was not yet paged in \
                 when the call started)"
            }
        }
    }
}

/// An access whose path could not be named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnresolvedAccess {
    pub syscall: String,
    /// The path argument as the process passed it.
    pub path: String,
    pub why: Unresolved,
}

/// Keeps this many unresolved accesses as examples; the rest are only counted.
const UNRESOLVED_EXAMPLES: usize = 20;

/// Everything derived from one log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Activity {
    /// By path (see [`PathNaming`]).
    pub files: BTreeMap<PathBuf, FileUse>,
    /// By address family (`ipv4`, `ipv6`, `unix`, ...) and call (`connect`, `bind`,
    /// `sendto` with an address, `listen`).
    pub sockets: BTreeMap<(String, String), SocketUse>,
    pub unresolved: Vec<UnresolvedAccess>,
    pub unresolved_count: u64,
}

#[derive(Debug, Clone)]
enum Descriptor {
    /// A file opened by path (the name is as [`PathNaming`] says).
    File {
        path: PathBuf,
        cloexec: bool,
    },
    Socket {
        family: i32,
        cloexec: bool,
    },
}

impl Descriptor {
    fn cloexec(&self) -> bool {
        match self {
            Self::File { cloexec, .. } | Self::Socket { cloexec, .. } => *cloexec,
        }
    }

    fn with_cloexec(&self, cloexec: bool) -> Self {
        match self.clone() {
            Self::File { path, .. } => Self::File { path, cloexec },
            Self::Socket { family, .. } => Self::Socket { family, cloexec },
        }
    }
}

/// A process as the replay knows it. Threads share their process's state (keyed by tgid).
#[derive(Debug, Clone)]
struct ProcessState {
    cwd: PathBuf,
    fds: HashMap<i32, Descriptor>,
    /// The program it last executed, which `/proc/self/exe` names.
    exe: Option<PathBuf>,
}

/// Replays a log into an [`Activity`]; feed it every record in order.
pub struct Replay {
    naming: PathNaming,
    processes: HashMap<u32, ProcessState>,
    first_tgid: Option<u32>,
    resolved: HashMap<PathBuf, PathBuf>,
    activity: Activity,
}

impl Replay {
    pub fn new(naming: PathNaming) -> Self {
        Self {
            naming,
            processes: HashMap::new(),
            first_tgid: None,
            resolved: HashMap::new(),
            activity: Activity::default(),
        }
    }

    pub fn finish(self) -> Activity {
        self.activity
    }

    pub fn record(&mut self, record: &Line) {
        match record {
            Line::Syscall(s) => {
                self.first_tgid.get_or_insert(s.tgid);
                self.socket_call(s);
                self.syscall(s);
            }
            Line::Process(p) => {
                self.first_tgid.get_or_insert(p.tgid);
                self.process(p);
            }
            Line::File(_)
            | Line::Network(_)
            | Line::Socket(_)
            | Line::Seccomp(_)
            | Line::Dns(_)
            | Line::Summary(_) => {}
        }
    }

    fn start_dir(&self) -> PathBuf {
        match &self.naming {
            PathNaming::AsNamed => PathBuf::from("."),
            PathNaming::Resolved { start_dir } => start_dir.clone(),
        }
    }

    /// The state of process `tgid`; one the log never showed starting (CMD itself, or one
    /// whose fork event was lost) starts in CMD's start directory with no known descriptors.
    fn state(&mut self, tgid: u32) -> &mut ProcessState {
        let start = self.start_dir();
        self.processes.entry(tgid).or_insert_with(|| ProcessState {
            cwd: start,
            fds: HashMap::new(),
            exe: None,
        })
    }

    fn process(&mut self, p: &ProcessLine) {
        match &p.change {
            ProcessChange::Fork {
                child_pid,
                child_tgid,
            } if child_pid == child_tgid && *child_tgid != p.tgid => {
                let copy = self.state(p.tgid).clone();
                self.processes.insert(*child_tgid, copy);
            }
            ProcessChange::Fork { .. }
            | ProcessChange::Exited { .. }
            | ProcessChange::ForkRefused { .. } => {}
            ProcessChange::Exec { path, .. } => {
                let by_cmd = self.first_tgid == Some(p.tgid);
                let program = self.name(p.tgid, "execve", None, path);
                if let Some(program) = &program {
                    let entry = self.activity.files.entry(program.clone()).or_default();
                    if by_cmd {
                        entry.exec_by_cmd += 1;
                    } else {
                        entry.exec_by_others += 1;
                    }
                }
                let state = self.state(p.tgid);
                state.fds.retain(|_, d| !d.cloexec());
                state.exe = program;
            }
        }
    }

    fn syscall(&mut self, s: &SyscallLine) {
        if !s.success {
            return;
        }
        let tgid = s.tgid;
        let a = &s.args.raw;
        match s.syscall.as_str() {
            "open" => self.open(s, None, a[1]),
            "openat" => self.open(s, Some(s.int_arg(0)), a[2]),
            // The flags are in a struct the log does not hold: counted as a read.
            "openat2" => self.open(s, Some(s.int_arg(0)), 0),
            "creat" => self.open(s, None, O_CREAT | O_WRONLY | O_TRUNC),
            "chdir" => {
                if let Some(dir) = self.name_arg(s, None) {
                    self.state(tgid).cwd = dir;
                }
            }
            "fchdir" => {
                if let Some(Descriptor::File { path, .. }) =
                    self.state(tgid).fds.get(&s.int_arg(0)).cloned()
                {
                    self.state(tgid).cwd = path;
                }
            }
            "mkdir" => self.change(s, None, |u| u.created_dir = true),
            "mkdirat" => self.change(s, Some(s.int_arg(0)), |u| u.created_dir = true),
            "mknod" | "symlink" => self.change(s, None, |u| u.created = true),
            "mknodat" => self.change(s, Some(s.int_arg(0)), |u| u.created = true),
            // symlinkat(target, newdirfd, linkpath): the log holds linkpath.
            "symlinkat" => self.change(s, Some(s.int_arg(1)), |u| u.created = true),
            "rmdir" | "unlink" | "rename" => self.change(s, None, |u| u.removed = true),
            "unlinkat" | "renameat" | "renameat2" => {
                self.change(s, Some(s.int_arg(0)), |u| u.removed = true);
            }
            "link" | "truncate" | "chmod" | "chown" | "lchown" => self.change(s, None, |_| {}),
            "linkat" | "fchmodat" | "fchmodat2" | "fchownat" => {
                let empty_path = match s.syscall.as_str() {
                    "linkat" | "fchownat" => a[4] & AT_EMPTY_PATH != 0,
                    _ => false,
                };
                if empty_path && s.path.as_deref() == Some("") {
                    self.change_fd(tgid, s.int_arg(0));
                } else {
                    self.change(s, Some(s.int_arg(0)), |_| {});
                }
            }
            "fchmod" | "fchown" => self.change_fd(tgid, s.int_arg(0)),
            "dup" => self.dup(tgid, s.int_arg(0), s.returned_fd(), Some(false)),
            "dup2" => self.dup(tgid, s.int_arg(0), Some(s.int_arg(1)), Some(false)),
            "dup3" => self.dup(
                tgid,
                s.int_arg(0),
                Some(s.int_arg(1)),
                Some(a[2] & O_CLOEXEC != 0),
            ),
            "fcntl" => match s.int_arg(1) {
                F_DUPFD => self.dup(tgid, s.int_arg(0), s.returned_fd(), Some(false)),
                F_DUPFD_CLOEXEC => self.dup(tgid, s.int_arg(0), s.returned_fd(), Some(true)),
                _ => {}
            },
            "close" => {
                self.state(tgid).fds.remove(&s.int_arg(0));
            }
            "close_range" => {
                let (first, last) = (a[0].min(i32::MAX as u64) as i32, a[1]);
                let fds = &mut self.state(tgid).fds;
                let in_range = |fd: i32| fd >= first && fd as u64 <= last;
                if a[2] & CLOSE_RANGE_CLOEXEC != 0 {
                    for (_, d) in fds.iter_mut().filter(|(fd, _)| in_range(**fd)) {
                        *d = d.with_cloexec(true);
                    }
                } else {
                    fds.retain(|fd, _| !in_range(*fd));
                }
            }
            "socket" => {
                if let Some(fd) = s.returned_fd() {
                    // SOCK_CLOEXEC is O_CLOEXEC.
                    let d = Descriptor::Socket {
                        family: s.int_arg(0),
                        cloexec: a[1] & O_CLOEXEC != 0,
                    };
                    self.state(tgid).fds.insert(fd, d);
                }
            }
            "accept" | "accept4" => {
                let listening = self.state(tgid).fds.get(&s.int_arg(0)).cloned();
                if let (Some(fd), Some(Descriptor::Socket { family, .. })) =
                    (s.returned_fd(), listening)
                {
                    let cloexec = s.syscall == "accept4" && a[3] & O_CLOEXEC != 0;
                    self.state(tgid)
                        .fds
                        .insert(fd, Descriptor::Socket { family, cloexec });
                }
            }
            _ => {}
        }
    }

    /// Socket calls are counted whether they succeed or not: a failed connect is a network
    /// attempt too.
    fn socket_call(&mut self, s: &SyscallLine) {
        let operation = match s.syscall.as_str() {
            "connect" | "bind" | "listen" => s.syscall.as_str(),
            // Only with a destination address: a send on a connected socket was counted
            // at its connect.
            "sendto" if s.args.raw[4] != 0 => "sendto",
            _ => return,
        };
        let family = match self.state(s.tgid).fds.get(&s.int_arg(0)) {
            Some(Descriptor::Socket { family, .. }) => u16::try_from(*family)
                .map(|f| family_name(f).into_owned())
                .unwrap_or_else(|_| format!("family {family}")),
            _ => "unknown".to_owned(),
        };
        let entry = self
            .activity
            .sockets
            .entry((family, operation.to_owned()))
            .or_default();
        entry.calls += 1;
        if !s.success {
            entry.failed += 1;
            let errno = s.errno.clone().unwrap_or_else(|| "error".to_owned());
            *entry.errors.entry(errno).or_default() += 1;
        }
    }

    fn open(&mut self, s: &SyscallLine, dirfd: Option<i32>, flags: u64) {
        let need = open_access(flags);
        let Some(path) = self.name_arg(s, dirfd) else {
            return;
        };
        if let Some(fd) = s.returned_fd() {
            let d = Descriptor::File {
                path: path.clone(),
                cloexec: flags & O_CLOEXEC != 0,
            };
            self.state(s.tgid).fds.insert(fd, d);
        }
        if need == OpenAccess::None {
            return;
        }
        let cut = s.path_truncated;
        let entry = self.activity.files.entry(path).or_default();
        entry.cut |= cut;
        match need {
            OpenAccess::Read => entry.read_by(s.tgid),
            OpenAccess::Write => entry.written_by(s.tgid),
            OpenAccess::ReadWrite => {
                entry.read_by(s.tgid);
                entry.written_by(s.tgid);
            }
            OpenAccess::None => {}
        }
        entry.directory |= flags & O_DIRECTORY != 0;
        entry.created |= flags & O_CREAT != 0;
    }

    /// A change to the entry named by the path argument (relative to `dirfd`).
    fn change(&mut self, s: &SyscallLine, dirfd: Option<i32>, mark: impl FnOnce(&mut FileUse)) {
        if let Some(path) = self.name_arg(s, dirfd) {
            let cut = s.path_truncated;
            let entry = self.activity.files.entry(path).or_default();
            entry.written_by(s.tgid);
            entry.cut |= cut;
            mark(entry);
        }
    }

    /// A change to the file open as `fd`.
    fn change_fd(&mut self, tgid: u32, fd: i32) {
        if let Some(Descriptor::File { path, .. }) = self.state(tgid).fds.get(&fd).cloned() {
            self.activity
                .files
                .entry(path)
                .or_default()
                .written_by(tgid);
        }
    }

    fn dup(&mut self, tgid: u32, from: i32, to: Option<i32>, cloexec: Option<bool>) {
        let Some(to) = to else { return };
        let fds = &mut self.state(tgid).fds;
        match (fds.get(&from).cloned(), cloexec) {
            (Some(d), Some(cloexec)) => {
                fds.insert(to, d.with_cloexec(cloexec));
            }
            (Some(d), None) => {
                fds.insert(to, d);
            }
            // The target now refers to something unknown.
            (None, _) => {
                fds.remove(&to);
            }
        }
    }

    /// The name of the path argument of `s`; a cut path names its deepest complete directory.
    fn name_arg(&mut self, s: &SyscallLine, dirfd: Option<i32>) -> Option<PathBuf> {
        let Some(given) = s.path.as_deref() else {
            return self.unresolved(&s.syscall, "", Unresolved::NotRecorded);
        };
        let given = if s.path_truncated {
            // Everything up to the last `/` is whole; what follows it was cut.
            match given.rfind('/') {
                Some(0) => "/",
                Some(i) => &given[..i],
                None => ".",
            }
        } else {
            given
        };
        self.name(s.tgid, &s.syscall, dirfd, given)
    }

    /// Names `given` (relative to `dirfd`, or to the working directory when `None` or
    /// `AT_FDCWD`) for process `tgid`. `None` when it cannot be named (recorded).
    fn name(
        &mut self,
        tgid: u32,
        syscall: &str,
        dirfd: Option<i32>,
        given: &str,
    ) -> Option<PathBuf> {
        let state = self.state(tgid);
        let joined = if given.starts_with('/') {
            PathBuf::from(given)
        } else {
            match dirfd {
                None | Some(AT_FDCWD) => state.cwd.join(given),
                Some(fd) => match state.fds.get(&fd) {
                    Some(Descriptor::File { path, .. }) => path.join(given),
                    _ => return self.unresolved(syscall, given, Unresolved::UnknownDirectory),
                },
            }
        };
        let normal = lexical(&joined);
        // /proc's links to a process's files lead the kernel to those files.
        if let Some(link) = magic_link(&normal) {
            let state = self.state(tgid);
            let target = match link {
                MagicLink::Descriptor(fd, rest) => match state.fds.get(&fd) {
                    Some(Descriptor::File { path, .. }) => Some(path.join(rest)),
                    _ => None,
                },
                MagicLink::Exe => state.exe.clone(),
                MagicLink::Cwd(rest) => Some(state.cwd.join(rest)),
                MagicLink::Root(rest) => Some(Path::new("/").join(rest)),
            };
            return match target {
                Some(target) => Some(lexical(&target)),
                None => self.unresolved(syscall, given, Unresolved::UnknownDescriptor),
            };
        }
        Some(match &self.naming {
            PathNaming::AsNamed => normal,
            PathNaming::Resolved { .. } => match proc_name(&normal) {
                Some(name) => name,
                None => {
                    if let Some(done) = self.resolved.get(&normal) {
                        return Some(done.clone());
                    }
                    let done = resolve_on_host(&normal);
                    self.resolved.insert(normal, done.clone());
                    done
                }
            },
        })
    }

    fn unresolved(&mut self, syscall: &str, given: &str, why: Unresolved) -> Option<PathBuf> {
        self.activity.unresolved_count += 1;
        if self.activity.unresolved.len() < UNRESOLVED_EXAMPLES {
            self.activity.unresolved.push(UnresolvedAccess {
                syscall: syscall.to_owned(),
                path: given.to_owned(),
                why,
            });
        }
        None
    }
}

/// `.` and `..` resolved and repeated slashes dropped, without looking at the file system.
/// A relative path keeps a leading `./` (or its leading `..`s).
pub fn lexical(path: &Path) -> PathBuf {
    let absolute = path.has_root();
    let mut names: Vec<&std::ffi::OsStr> = Vec::new();
    let mut ups = 0usize;
    for component in path.components() {
        match component {
            Component::Normal(name) => names.push(name),
            Component::ParentDir => {
                if names.pop().is_none() && !absolute {
                    ups += 1;
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let mut out = if absolute {
        PathBuf::from("/")
    } else if ups == 0 {
        PathBuf::from(".")
    } else {
        PathBuf::new()
    };
    for _ in 0..ups {
        out.push("..");
    }
    out.extend(names);
    out
}

/// A link of the process's own /proc directory that the kernel follows to another file.
#[derive(Debug, PartialEq, Eq)]
enum MagicLink {
    /// `/proc/self/fd/N[/rest]`, `/dev/fd/N`, `/dev/stdin|stdout|stderr`.
    Descriptor(i32, PathBuf),
    /// `/proc/self/exe`.
    Exe,
    /// `/proc/self/cwd[/rest]`.
    Cwd(PathBuf),
    /// `/proc/self/root[/rest]`.
    Root(PathBuf),
}

fn magic_link(path: &Path) -> Option<MagicLink> {
    let text = path.to_str()?;
    let split = |rest: &str| {
        let (head, tail) = rest.split_once('/').unwrap_or((rest, ""));
        (head.to_owned(), PathBuf::from(tail))
    };
    for prefix in ["/proc/self/fd/", "/proc/thread-self/fd/", "/dev/fd/"] {
        if let Some(rest) = text.strip_prefix(prefix) {
            let (number, tail) = split(rest);
            return Some(MagicLink::Descriptor(number.parse().ok()?, tail));
        }
    }
    let std = |fd| Some(MagicLink::Descriptor(fd, PathBuf::new()));
    match text {
        "/dev/stdin" => return std(0),
        "/dev/stdout" => return std(1),
        "/dev/stderr" => return std(2),
        "/proc/self/exe" => return Some(MagicLink::Exe),
        _ => {}
    }
    let (head, tail) = split(text.strip_prefix("/proc/self/")?);
    match head.as_str() {
        "cwd" => Some(MagicLink::Cwd(tail)),
        "root" => Some(MagicLink::Root(tail)),
        _ => None,
    }
}

/// How a policy names a path in the session's own `/proc`, which this machine's `/proc` does
/// not show: the process's own directory is `/proc/self` (the kernel programs decide it under
/// that name), a thread's is `/proc/self/task/*`, another process's is `/proc/*`. `None` for
/// paths outside `/proc`.
fn proc_name(path: &Path) -> Option<PathBuf> {
    let rest = path.strip_prefix("/proc").ok()?;
    let mut names = rest.iter();
    let Some(first) = names.next() else {
        return Some(PathBuf::from("/proc"));
    };
    let tail: PathBuf = names.collect();
    let first = first.to_str().unwrap_or_default();
    let head = if first == "self" {
        PathBuf::from("/proc/self")
    } else if first == "thread-self" {
        PathBuf::from("/proc/self/task/*")
    } else if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) {
        PathBuf::from("/proc/*")
    } else {
        PathBuf::from("/proc").join(first)
    };
    Some(if tail.as_os_str().is_empty() {
        head
    } else {
        head.join(tail)
    })
}

/// `path` with every symlink resolved, as the kernel resolves it. For a path that no longer
/// exists, the nearest existing ancestor is resolved and the rest appended.
pub fn resolve_on_host(path: &Path) -> PathBuf {
    if let Ok(resolved) = fs::canonicalize(path) {
        return resolved;
    }
    let mut components = path.components();
    match components.next_back() {
        Some(Component::Normal(name)) => resolve_on_host(components.as_path()).join(name),
        Some(Component::ParentDir) => {
            let mut parent = resolve_on_host(components.as_path());
            parent.pop();
            parent
        }
        Some(Component::CurDir) => resolve_on_host(components.as_path()),
        Some(Component::RootDir | Component::Prefix(_)) | None => lexical(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_normalisation() {
        assert_eq!(lexical(Path::new("/a/./b//../c")), Path::new("/a/c"));
        assert_eq!(lexical(Path::new("/..")), Path::new("/"));
        assert_eq!(lexical(Path::new("./x/../y")), Path::new("./y"));
        assert_eq!(lexical(Path::new("./../y")), Path::new("../y"));
        assert_eq!(lexical(Path::new(".")), Path::new("."));
    }

    #[test]
    fn proc_names() {
        let name = |p: &str| proc_name(Path::new(p)).map(|p| p.display().to_string());
        assert_eq!(
            name("/proc/self/status").as_deref(),
            Some("/proc/self/status")
        );
        assert_eq!(name("/proc/123/stat").as_deref(), Some("/proc/*/stat"));
        assert_eq!(
            name("/proc/thread-self/attr/current").as_deref(),
            Some("/proc/self/task/*/attr/current")
        );
        assert_eq!(name("/proc/meminfo").as_deref(), Some("/proc/meminfo"));
        assert_eq!(name("/procfoo"), None);
        assert_eq!(name("/usr/lib"), None);
    }

    #[test]
    fn magic_links() {
        let link = |p: &str| magic_link(Path::new(p));
        assert_eq!(
            link("/proc/self/fd/7"),
            Some(MagicLink::Descriptor(7, PathBuf::new()))
        );
        assert_eq!(
            link("/dev/fd/3/sub"),
            Some(MagicLink::Descriptor(3, PathBuf::from("sub")))
        );
        assert_eq!(
            link("/dev/stdin"),
            Some(MagicLink::Descriptor(0, PathBuf::new()))
        );
        assert_eq!(link("/proc/self/exe"), Some(MagicLink::Exe));
        assert_eq!(
            link("/proc/self/cwd/a"),
            Some(MagicLink::Cwd(PathBuf::from("a")))
        );
        assert_eq!(
            link("/proc/self/root"),
            Some(MagicLink::Root(PathBuf::new()))
        );
        assert_eq!(link("/proc/self/fdinfo/3"), None);
        assert_eq!(link("/proc/self/status"), None);
    }

    #[test]
    fn resolves_missing_paths_through_their_existing_ancestor() {
        let resolved = resolve_on_host(Path::new("/lib64/no-such-dir/../no-such-file"));
        let lib64 = fs::canonicalize("/lib64").unwrap();
        assert_eq!(resolved, lib64.join("no-such-file"));
    }
}
