//! Landlock's refusals, recorded. Landlock tells nobody what it refuses: the command's call just
//! fails with EACCES. So while it holds the filesystem rules, `sys_exit` reports every call of
//! the session that Landlock decides and that failed with EACCES
//! (`syscall_args::landlock_refuses`), and [`Refusals`] turns each into the file denial the
//! policy explains: a [`FileEvent`] like those of the BPF LSM programs, which the summary,
//! the terminal and the event logs then take as they take those.
//!
//! A call the policy allows is left as it is (its own file permissions refused it, or one of
//! the approximations listed at start did); one whose path cannot be placed is reported as
//! refused without a rule.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};

use sandtrace_common::event::{EventHeader, EventKind, FileEvent, SYSCALL_PATH_CAP};
use sandtrace_common::file::{EVENT_PATH_CAP, FileOp, Verdict};
use sandtrace_common::policy::{KIND_EXEC, KIND_INDEX_DENY, KIND_READ, KIND_WRITE, NO_RULE};

use crate::events::{Event, EventBody, SyscallRecord};
use crate::open_flags::{AT_FDCWD, O_CREAT, O_TRUNC, O_WRONLY, OpenAccess, open_access};
use crate::policy::CompiledPaths;
use crate::policy::decision::{Access, Verdict as PathVerdict};
use crate::report::activity::{lexical, resolve_on_host};

const EACCES: i64 = 13;
const AT_REMOVEDIR: u64 = 0x200;

/// Turns the session's failed path calls into file denials (see the module's text).
pub struct Refusals {
    paths: CompiledPaths,
    /// Each live process's working directory as of its exec (or its parent's, for a fork that
    /// has not exec'd): where a relative path of a process that has already ended is placed.
    cwd_at_exec: HashMap<u32, PathBuf>,
    /// The paths this batch of records already resolved: a command that fails the same call
    /// in a loop would otherwise cost the loader a path walk each time. Kept for one batch
    /// ([`Refusals::batch_done`]), so a link changed since is seen soon after.
    resolved: HashMap<PathBuf, PathBuf>,
}

/// Paths remembered within one batch, at most.
const BATCH_PATHS: usize = 4096;

/// What a call asks of its path.
struct Request {
    op: FileOp,
    /// `KIND_*` bits, as the LSM programs report them.
    needed: u16,
    /// The access the policy is asked about; `None`: read, or else write (openat2, whose flags
    /// are in user memory).
    access: Option<Access>,
    /// Index of the directory-fd argument the path is relative to, if the call has one.
    dirfd: Option<usize>,
    /// The call reaches what a symlink at the path points to (open, exec, truncate); the others
    /// make or remove the name itself.
    follows_link: bool,
}

impl Refusals {
    pub fn new(paths: CompiledPaths) -> Self {
        Self {
            paths,
            cwd_at_exec: HashMap::new(),
            resolved: HashMap::new(),
        }
    }

    /// The ring buffer is empty for now: what was resolved may have changed by the next.
    pub fn batch_done(&mut self) {
        self.resolved.clear();
    }

    /// Follows the processes' working directories, and returns the file denial that `event`
    /// (decoded from `record`) stands for, as a ring-buffer record.
    pub fn file_event(&mut self, record: &[u8], event: &Event) -> Option<Vec<u8>> {
        let tgid = event.task.tgid;
        let syscall = match &event.body {
            EventBody::Exec { cwd, .. } => {
                let cwd = Path::new(OsStr::from_bytes(cwd.as_bytes()));
                if cwd.is_absolute() {
                    self.cwd_at_exec.insert(tgid, cwd.to_owned());
                }
                return None;
            }
            EventBody::Fork {
                child_pid,
                child_tgid,
            } if child_pid == child_tgid => {
                if let Some(cwd) = self.cwd_at_exec.get(&tgid).cloned() {
                    self.cwd_at_exec.insert(*child_tgid, cwd);
                }
                return None;
            }
            EventBody::Exit { .. } => {
                self.cwd_at_exec.remove(&tgid);
                return None;
            }
            EventBody::Syscall(s) if s.ret == Some(-EACCES) => s,
            _ => return None,
        };
        let request = request(syscall)?;
        let header = header(record)?;
        let (verdict, rule, path) = match self.place(header.pid, tgid, syscall, &request) {
            Some(path) => {
                let (verdict, rule) = self.decide(&path, &request)?;
                (verdict, rule, path.into_os_string().into_vec())
            }
            None => (
                Verdict::RefusedUnplaced,
                NO_RULE,
                syscall
                    .path
                    .map(|p| p.as_bytes().to_vec())
                    .unwrap_or_default(),
            ),
        };
        Some(file_record(header, &request, verdict, rule, &path))
    }

    /// The absolute path of the call's path argument, symlinks resolved as far as it exists;
    /// `None` when it cannot be known.
    fn place(
        &mut self,
        pid: u32,
        tgid: u32,
        syscall: &SyscallRecord,
        request: &Request,
    ) -> Option<PathBuf> {
        let given = syscall.path?;
        if syscall.path_truncated {
            return None;
        }
        let given = Path::new(OsStr::from_bytes(given.as_bytes()));
        let joined = if given.is_absolute() {
            given.to_owned()
        } else {
            let dirfd = request.dirfd.map_or(AT_FDCWD, |i| syscall.args[i] as i32);
            let base = if dirfd == AT_FDCWD {
                fs::read_link(format!("/proc/{pid}/cwd"))
                    .ok()
                    .or_else(|| self.cwd_at_exec.get(&tgid).cloned())?
            } else {
                fs::read_link(format!("/proc/{pid}/fd/{dirfd}")).ok()?
            };
            base.join(given)
        };
        let normal = lexical(&joined);
        if normal.starts_with("/proc") {
            return Some(through_own_proc(pid, tgid, normal));
        }
        let (dir, name) = match (request.follows_link, normal.parent(), normal.file_name()) {
            (false, Some(dir), Some(name)) => (dir.to_owned(), Some(name.to_owned())),
            _ => (normal, None),
        };
        let resolved = match self.resolved.get(&dir) {
            Some(done) => done.clone(),
            None => {
                let done = resolve_on_host(&dir);
                if self.resolved.len() >= BATCH_PATHS {
                    self.resolved.clear();
                }
                self.resolved.insert(dir, done.clone());
                done
            }
        };
        Some(match name {
            Some(name) => resolved.join(name),
            None => resolved,
        })
    }

    /// The policy's verdict on `path` for `request`, and the rule behind it (`NO_RULE`);
    /// `None` when the policy allows it.
    fn decide(&self, path: &Path, request: &Request) -> Option<(Verdict, u16)> {
        let decision = self.paths.decide(path.as_os_str().as_bytes());
        let verdict = match request.access {
            Some(access) => decision.verdict(access),
            None => match decision.verdict(Access::Read) {
                PathVerdict::Allowed { .. } => decision.verdict(Access::Write),
                refused => refused,
            },
        };
        match verdict {
            PathVerdict::Allowed { .. } => None,
            PathVerdict::Denied { rule } => Some((Verdict::RefusedRule, rule as u16)),
            PathVerdict::Unlisted => Some((Verdict::RefusedUnlisted, NO_RULE)),
            PathVerdict::TooLong => Some((Verdict::RefusedUnplaced, NO_RULE)),
        }
    }
}

/// A /proc path as the kernel resolved it for thread `pid` of process `tgid`. The loader's /proc
/// is not the session's (its process ids are others), but `/proc/self` and `/proc/thread-self`
/// are the caller's own, whose links (`fd/N`, `cwd`, `exe`, `root`) the loader can follow
/// while it lives: through one, the call reached the file it names.
fn through_own_proc(pid: u32, tgid: u32, normal: PathBuf) -> PathBuf {
    let own = if let Ok(rest) = normal.strip_prefix("/proc/self") {
        Path::new(&format!("/proc/{tgid}")).join(rest)
    } else if let Ok(rest) = normal.strip_prefix("/proc/thread-self") {
        Path::new(&format!("/proc/{tgid}/task/{pid}")).join(rest)
    } else {
        return normal;
    };
    match fs::canonicalize(own) {
        Ok(target) if !target.starts_with("/proc") => target,
        _ => normal,
    }
}

/// What the call `s` asks of its path; `None` for calls Landlock does not decide.
fn request(s: &SyscallRecord) -> Option<Request> {
    let write = |op, dirfd| Request {
        op,
        needed: KIND_WRITE,
        access: Some(Access::Write),
        dirfd,
        follows_link: op == FileOp::Truncate,
    };
    let open = |flags: u64, dirfd| {
        let (needed, access) = match open_access(flags) {
            OpenAccess::Read => (KIND_READ, Access::Read),
            OpenAccess::Write => (KIND_WRITE, Access::Write),
            OpenAccess::ReadWrite => (KIND_READ | KIND_WRITE, Access::Write),
            // Landlock does not decide O_PATH opens.
            OpenAccess::None => return None,
        };
        Some(Request {
            op: FileOp::Open,
            needed,
            access: Some(access),
            dirfd,
            follows_link: true,
        })
    };
    let exec = |dirfd| Request {
        op: FileOp::Exec,
        needed: KIND_EXEC,
        access: Some(Access::Exec),
        dirfd,
        follows_link: true,
    };
    Some(match s.nr {
        2 => return open(s.args[1], None),
        257 => return open(s.args[2], Some(0)),
        85 => return open(O_WRONLY | O_CREAT | O_TRUNC, None),
        437 => Request {
            op: FileOp::Open,
            needed: KIND_READ,
            access: None,
            dirfd: Some(0),
            follows_link: true,
        },
        59 => exec(None),
        322 => exec(Some(0)),
        76 => write(FileOp::Truncate, None),
        83 => write(FileOp::Mkdir, None),
        258 => write(FileOp::Mkdir, Some(0)),
        84 => write(FileOp::Rmdir, None),
        87 => write(FileOp::Unlink, None),
        263 if s.args[2] & AT_REMOVEDIR != 0 => write(FileOp::Rmdir, Some(0)),
        263 => write(FileOp::Unlink, Some(0)),
        82 => write(FileOp::RenameFrom, None),
        264 | 316 => write(FileOp::RenameFrom, Some(0)),
        86 => write(FileOp::LinkSource, None),
        265 => write(FileOp::LinkSource, Some(0)),
        88 => write(FileOp::Symlink, None),
        266 => write(FileOp::Symlink, Some(1)),
        133 => write(FileOp::Mknod, None),
        259 => write(FileOp::Mknod, Some(0)),
        _ => return None,
    })
}

fn header(record: &[u8]) -> Option<EventHeader> {
    (record.len() >= size_of::<EventHeader>())
        // SAFETY: the length is checked; the header is plain old data.
        .then(|| unsafe { std::ptr::read_unaligned(record.as_ptr().cast::<EventHeader>()) })
}

/// The ring-buffer record of a file denial, stamped as the failed call was.
fn file_record(
    header: EventHeader,
    request: &Request,
    verdict: Verdict,
    rule: u16,
    path: &[u8],
) -> Vec<u8> {
    let len = path.len().min(EVENT_PATH_CAP - 1);
    // Field by field into zeroed storage: FileEvent ends in padding (its path is 4097 bytes),
    // which a struct value may leave undefined but a record must not.
    let mut event = std::mem::MaybeUninit::<FileEvent>::zeroed();
    let e = event.as_mut_ptr();
    // SAFETY: each write stays within `event`'s own fields; every byte of it is then
    // initialised (fields written or left zero, padding zero), so reading it as bytes is sound.
    unsafe {
        (&raw mut (*e).header).write(EventHeader {
            kind: EventKind::File as u32,
            ..header
        });
        (&raw mut (*e).op).write(request.op as u32);
        (&raw mut (*e).needed).write(request.needed);
        (&raw mut (*e).verdict).write(verdict as u16);
        (&raw mut (*e).rule_kind).write(if rule == NO_RULE {
            NO_RULE
        } else {
            KIND_INDEX_DENY as u16
        });
        (&raw mut (*e).rule_index).write(rule);
        (&raw mut (*e).path_len).write(len as u32);
        std::ptr::copy_nonoverlapping(path.as_ptr(), (&raw mut (*e).path).cast::<u8>(), len);
        std::slice::from_raw_parts(event.as_ptr().cast::<u8>(), size_of::<FileEvent>()).to_vec()
    }
}

const _: () = assert!(SYSCALL_PATH_CAP < EVENT_PATH_CAP);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Clock, KernelText, Task, decode};
    use crate::open_flags::O_RDWR;
    use crate::policy::{CliOverrides, compile, parse::parse, resolve};
    use sandtrace_common::event::{
        SYSCALL_HAS_PATH, SYSCALL_PATH_TRUNCATED, SyscallEvent, SyscallPathEvent,
    };
    use std::time::SystemTime;

    /// A process id no process has (above the largest `pid_max`).
    const GONE: u32 = 1 << 23;

    fn refusals(toml: &str) -> Refusals {
        let policy = parse(Path::new("test.toml"), toml.to_owned()).unwrap();
        let effective =
            resolve::resolve(&policy, &CliOverrides::default(), Path::new("/"), None).unwrap();
        Refusals::new(compile(&effective).unwrap())
    }

    const POLICY: &str = "[filesystem]\nallow_read = [\"/etc\", \"/usr\"]\n\
                          deny = [\"/etc/shadow\", \"**/.env\"]\n";

    /// The record `sys_exit` sends for call `nr` of process `pid` with `args` and `path`.
    fn failed_call(pid: u32, nr: u32, args: [u64; 6], path: &[u8], ret: i64) -> Vec<u8> {
        let mut bytes = [0u8; SYSCALL_PATH_CAP];
        bytes[..path.len()].copy_from_slice(path);
        let mut comm = [0u8; 16];
        comm[..3].copy_from_slice(b"cat");
        let e = SyscallPathEvent {
            syscall: SyscallEvent {
                header: EventHeader {
                    kind: EventKind::SyscallPath as u32,
                    pid,
                    tgid: pid,
                    _pad: 0,
                    ts_ns: 7,
                    comm,
                },
                nr,
                flags: SYSCALL_HAS_PATH
                    | if path.len() == SYSCALL_PATH_CAP - 1 {
                        SYSCALL_PATH_TRUNCATED
                    } else {
                        0
                    },
                args,
                ret,
                duration_ns: 0,
            },
            path: bytes,
        };
        // SAFETY: plain old data.
        unsafe {
            std::slice::from_raw_parts((&raw const e).cast::<u8>(), size_of::<SyscallPathEvent>())
        }
        .to_vec()
    }

    /// The file denial `refusals` makes of `record`: op, needed, verdict, rule, path.
    fn denial(
        refusals: &mut Refusals,
        record: &[u8],
    ) -> Option<(FileOp, u16, Verdict, Option<usize>, String)> {
        let clock = Clock::new();
        let event = decode(record, &clock).unwrap();
        let made = refusals.file_event(record, &event)?;
        let made = decode(&made, &clock).unwrap();
        assert_eq!(made.task.pid, event.task.pid);
        assert_eq!(made.time, event.time);
        let EventBody::File(f) = made.body else {
            panic!("not a file event: {made:?}");
        };
        Some((
            f.op,
            f.needed,
            f.verdict,
            f.rule.map(|r| r.index),
            f.path.to_str_lossy().into_owned(),
        ))
    }

    const AT: u64 = AT_FDCWD as u64;

    #[test]
    fn a_refused_open_is_the_denial_the_policy_explains() {
        let mut r = refusals(POLICY);
        let open =
            |path: &[u8], flags: u64| failed_call(GONE, 257, [AT, 0, flags, 0, 0, 0], path, -13);
        assert_eq!(
            denial(&mut r, &open(b"/etc/shadow", 0)),
            Some((
                FileOp::Open,
                KIND_READ,
                Verdict::RefusedRule,
                Some(0),
                "/etc/shadow".into()
            ))
        );
        assert_eq!(
            denial(&mut r, &open(b"/etc//./hostname", O_WRONLY | O_TRUNC)),
            Some((
                FileOp::Open,
                KIND_WRITE,
                Verdict::RefusedUnlisted,
                None,
                "/etc/hostname".into()
            ))
        );
        assert_eq!(
            denial(&mut r, &open(b"/srv/x", O_RDWR)).map(|d| (d.1, d.2)),
            Some((KIND_READ | KIND_WRITE, Verdict::RefusedUnlisted))
        );
        // Allowed by the policy: the file's permissions refused it, not Landlock.
        assert_eq!(denial(&mut r, &open(b"/etc/hostname", 0)), None);
        // Another error, or a call Landlock does not decide (stat).
        assert_eq!(
            denial(
                &mut r,
                &failed_call(GONE, 257, [AT, 0, 0, 0, 0, 0], b"/etc/shadow", -2)
            ),
            None
        );
        assert_eq!(
            denial(&mut r, &failed_call(GONE, 4, [0; 6], b"/etc/shadow", -13)),
            None
        );
    }

    #[test]
    fn execs_and_changes_ask_for_their_own_access() {
        let mut r =
            refusals("[filesystem]\nallow_write = [\"/tmp\"]\nallow_exec = [\"/usr/bin/true\"]\n");
        let exec = failed_call(GONE, 59, [0; 6], b"/usr/bin/sh", -13);
        assert_eq!(
            denial(&mut r, &exec).map(|d| (d.0, d.1, d.2)),
            Some((FileOp::Exec, KIND_EXEC, Verdict::RefusedUnlisted))
        );
        let unlinkat = |flags| failed_call(GONE, 263, [AT, 0, flags, 0, 0, 0], b"/etc/x", -13);
        assert_eq!(
            denial(&mut r, &unlinkat(0)).map(|d| d.0),
            Some(FileOp::Unlink)
        );
        assert_eq!(
            denial(&mut r, &unlinkat(AT_REMOVEDIR)).map(|d| d.0),
            Some(FileOp::Rmdir)
        );
        // symlinkat(target, dirfd, linkpath): the new name is the path.
        let symlink = failed_call(GONE, 266, [0, AT, 0, 0, 0, 0], b"/etc/link", -13);
        assert_eq!(
            denial(&mut r, &symlink).map(|d| (d.0, d.4)),
            Some((FileOp::Symlink, "/etc/link".into()))
        );
        assert_eq!(
            denial(&mut r, &failed_call(GONE, 83, [0; 6], b"/tmp/new", -13)),
            None
        );
    }

    #[test]
    fn relative_paths_are_placed_in_the_process_working_directory() {
        let mut r = refusals(POLICY);
        // A live process: its /proc entry says where it is (this test's own).
        let me = std::process::id();
        let cwd = fs::canonicalize(".").unwrap();
        let here = failed_call(me, 2, [0; 6], b"sub/.env", -13);
        assert_eq!(
            denial(&mut r, &here).map(|d| (d.2, d.4)),
            Some((
                Verdict::RefusedRule,
                cwd.join("sub/.env").display().to_string()
            ))
        );
        // An ended process: where it was at its exec; its forks inherit that.
        let relative = |pid| failed_call(pid, 257, [AT, 0, 0, 0, 0, 0], b"../etc/shadow", -13);
        assert_eq!(
            denial(&mut r, &relative(GONE)).map(|d| d.2),
            Some(Verdict::RefusedUnplaced)
        );
        let task = |tgid| Task {
            pid: tgid,
            tgid,
            comm: KernelText::from_bytes(b"sh"),
        };
        let exec = Event {
            time: SystemTime::now(),
            task: task(GONE),
            body: EventBody::Exec {
                old_pid: GONE,
                filename: KernelText::from_bytes(b"/bin/sh"),
                interpreter: KernelText::from_bytes(b""),
                argv: crate::events::ArgList::new(b"sh\0"),
                argv_truncated: false,
                cwd: KernelText::from_bytes(b"/usr"),
                uid: 0,
                gid: 0,
                regimes: 0,
            },
        };
        assert!(r.file_event(&[], &exec).is_none());
        let fork = Event {
            time: SystemTime::now(),
            task: task(GONE),
            body: EventBody::Fork {
                child_pid: GONE + 1,
                child_tgid: GONE + 1,
            },
        };
        assert!(r.file_event(&[], &fork).is_none());
        for pid in [GONE, GONE + 1] {
            assert_eq!(
                denial(&mut r, &relative(pid)).map(|d| (d.2, d.4)),
                Some((Verdict::RefusedRule, "/etc/shadow".into()))
            );
        }
        let exit = Event {
            time: SystemTime::now(),
            task: task(GONE),
            body: EventBody::Exit { status: 0 },
        };
        assert!(r.file_event(&[], &exit).is_none());
        assert_eq!(
            denial(&mut r, &relative(GONE)).map(|d| d.2),
            Some(Verdict::RefusedUnplaced)
        );
        // Relative to a directory descriptor of an ended process: not placed, given as it was.
        let at_fd = failed_call(GONE, 257, [5, 0, 0, 0, 0, 0], b"shadow", -13);
        assert_eq!(
            denial(&mut r, &at_fd).map(|d| (d.2, d.4)),
            Some((Verdict::RefusedUnplaced, "shadow".into()))
        );
    }

    #[test]
    fn a_file_reached_through_proc_self_is_the_file() {
        let dir = std::env::temp_dir().join(format!("sandtrace-refusals-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let secret = fs::canonicalize(&dir).unwrap().join(".env");
        fs::write(&secret, "TOKEN=x").unwrap();
        let open = fs::File::open(&secret).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&open);
        let me = std::process::id();
        let mut r = refusals(POLICY);
        for link in [
            format!("/proc/self/fd/{fd}"),
            format!("/proc/thread-self/fd/{fd}"),
        ] {
            let call = failed_call(me, 257, [AT, 0, 0, 0, 0, 0], link.as_bytes(), -13);
            assert_eq!(
                denial(&mut r, &call).map(|d| (d.2, d.4)),
                Some((Verdict::RefusedRule, secret.display().to_string())),
                "{link}"
            );
        }
        // Another /proc entry is decided as named.
        let status = failed_call(me, 257, [AT, 0, 0, 0, 0, 0], b"/proc/self/status", -13);
        assert_eq!(
            denial(&mut r, &status).map(|d| d.4),
            Some("/proc/self/status".into())
        );
        drop(open);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlink_is_followed_by_the_calls_that_follow_it() {
        let dir =
            std::env::temp_dir().join(format!("sandtrace-refusals-link-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let dir = fs::canonicalize(&dir).unwrap();
        let link = dir.join("link");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
        let mut r = refusals(POLICY);
        let path = link.as_os_str().as_bytes();
        let open = failed_call(GONE, 257, [AT, 0, 0, 0, 0, 0], path, -13);
        assert_eq!(
            denial(&mut r, &open).map(|d| (d.2, d.4)),
            Some((Verdict::RefusedRule, "/etc/shadow".into()))
        );
        // unlink removes the link, not the file it points to.
        let unlink = failed_call(GONE, 87, [0; 6], path, -13);
        assert_eq!(
            denial(&mut r, &unlink).map(|d| (d.2, d.4)),
            Some((Verdict::RefusedUnlisted, link.display().to_string()))
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cut_path_is_not_placed() {
        let mut r = refusals(POLICY);
        let long = vec![b'a'; SYSCALL_PATH_CAP - 1];
        let mut path = b"/etc/".to_vec();
        path.extend_from_slice(&long[5..]);
        let cut = failed_call(GONE, 2, [0; 6], &path, -13);
        assert_eq!(
            denial(&mut r, &cut).map(|d| d.2),
            Some(Verdict::RefusedUnplaced)
        );
    }
}
