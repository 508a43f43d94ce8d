//! From the files a run used to the fewest path rules that allow exactly that, collapsed into
//! directories where the run's own behaviour says a directory is the unit.
//!
//! The collapsing rules (documented in the README, "Learning a policy"):
//!
//! 1. Paths are resolved as the kernel resolves them (see [`PathNaming::Resolved`]).
//! 2. A path a `deny` rule of the base policy covers gets no allow rule: it stays denied.
//! 3. **exec**: every program the run executed, exactly, plus the `#!` interpreters of
//!    scripts; never a directory. CMD and its launch chain, executed by CMD's own process,
//!    need no rule (sandtrace always allows them).
//! 4. **write**: a path beneath a directory the run created (`mkdir`) is covered by the
//!    topmost such directory; a path written that no longer exists at the end (a temporary
//!    file, or one renamed away to a name the trace does not record) is covered by its
//!    directory; any other path written is listed exactly.
//! 5. **read**: every path read or opened as a directory, exactly, unless a write rule
//!    covers it (write implies read).
//! 6. Then, per kind: a directory in which the run used at least [`COLLAPSE_AT`] entries
//!    directly becomes one rule for the whole directory, unless it is protected: `/`, a
//!    top-level directory (`/etc`, `/home`, `/usr`, ...), the invoking user's home directory
//!    or one of its ancestors, or a wildcard component. The system's scratch directories
//!    (`/tmp`, `/var/tmp`, `/dev/shm`) may become write rules for temporary files.
//! 7. Rules covered by another rule of the same kind are dropped.
//! 8. A path that cannot be written as a policy entry (a name with `*?[]{}\` or bytes that
//!    are not UTF-8) is covered by its deepest directory that can; `/` is never a rule.

use std::{
    collections::{BTreeMap, HashSet},
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use sandtrace_common::policy::MAX_PATH_LEN;

use crate::{
    launch,
    policy::{PathKind, glob::PathPattern},
    report::activity::{FileUse, resolve_on_host},
};

/// A directory in which the run used this many entries directly becomes one rule.
pub const COLLAPSE_AT: usize = 3;

/// Where programs put files with generated names.
const SCRATCH_DIRS: &[&str] = &["/tmp", "/var/tmp", "/dev/shm"];

/// Why a learned rule is there; rendered as its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The run read this file.
    Read,
    /// The run opened this directory (to list it, or to reach what lies beneath it).
    Directory,
    /// The run wrote, created, removed or changed this path.
    Written,
    /// The run wrote this path, which no longer exists; its directory is protected, so a
    /// later run that picks another name will be denied.
    Gone,
    /// The run created this directory and everything it wrote beneath it.
    CreatedDirectory,
    /// The run created and removed (or renamed) entries here: their names are generated.
    Temporary,
    /// The run used at least [`COLLAPSE_AT`] entries directly in this directory.
    Collapsed,
    /// The run executed this program.
    Executed,
    /// The `#!` interpreter of an executed script.
    Interpreter,
    /// The run named a path longer than the trace records beneath this directory.
    Cut,
    /// The run used a path beneath this directory whose name cannot be written in a policy.
    Unwritable,
}

/// One learned rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedRule {
    pub path: PathBuf,
    pub reason: Reason,
    /// How many paths the run used that this rule covers.
    pub covers: usize,
}

impl LearnedRule {
    /// Whether the rule covers its path only, not what lies beneath it (written `=PATH`): a
    /// directory the run only opened grants nothing inside it.
    pub fn only_itself(&self) -> bool {
        self.reason == Reason::Directory
    }

    /// The rule as a policy entry.
    pub fn entry(&self) -> String {
        let path = self.path.display();
        if self.only_itself() {
            format!("={path}")
        } else {
            path.to_string()
        }
    }

    fn covers(&self, path: &Path) -> bool {
        if self.only_itself() {
            path == self.path
        } else {
            path.starts_with(&self.path)
        }
    }
}

/// An access the learned policy does not allow, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub path: PathBuf,
    pub kind: PathKind,
    pub why: LeftOutWhy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftOutWhy {
    /// A deny rule of the base policy covers it.
    Denied,
    /// A rule for `/` would allow everything.
    Root,
    /// Longer than a policy can decide on.
    TooLong,
}

/// The path rules of a learned policy.
#[derive(Debug, Clone, Default)]
pub struct LearnedPaths {
    pub read: Vec<LearnedRule>,
    pub write: Vec<LearnedRule>,
    pub exec: Vec<LearnedRule>,
    pub left_out: Vec<LeftOut>,
}

/// What the path rules are learned from.
pub struct PathInput<'a> {
    /// Resolved paths and what the run did with them.
    pub files: &'a BTreeMap<PathBuf, FileUse>,
    /// CMD and its launch chain, resolved.
    pub launch_chain: &'a [PathBuf],
    /// The base policy's deny rules, resolved.
    pub deny: &'a [PathPattern],
    /// The invoking user's home directory.
    pub home: Option<&'a Path>,
}

impl LearnedPaths {
    pub fn rules(&self, kind: PathKind) -> &[LearnedRule] {
        match kind {
            PathKind::Read => &self.read,
            PathKind::Write => &self.write,
            PathKind::Exec => &self.exec,
            PathKind::Deny => &[],
        }
    }
}

/// Learns the path rules (see the module documentation).
pub fn learn(input: &PathInput<'_>) -> LearnedPaths {
    let mut left_out = Vec::new();
    let mut admit = |path: &Path, kind: PathKind| -> bool {
        let why = if input
            .deny
            .iter()
            .any(|d| d.covers(path.as_os_str().as_bytes()))
        {
            LeftOutWhy::Denied
        } else if path == Path::new("/") {
            LeftOutWhy::Root
        } else if path.as_os_str().len() > MAX_PATH_LEN {
            LeftOutWhy::TooLong
        } else {
            return true;
        };
        left_out.push(LeftOut {
            path: path.to_owned(),
            kind,
            why,
        });
        false
    };

    let mut exec = BTreeMap::new();
    for (path, usage) in input.files.iter().filter(|(_, u)| u.exec() > 0) {
        let launched = usage.exec_by_others == 0 && input.launch_chain.contains(path);
        if launched || !admit(path, PathKind::Exec) {
            continue;
        }
        exec.insert(path.clone(), Reason::Executed);
        // The kernel checks each `#!` interpreter of a script as an execution too.
        for interpreter in launch::launch_chain(path, &[]).iter().skip(1) {
            let interpreter = resolve_on_host(interpreter);
            if admit(&interpreter, PathKind::Exec) {
                exec.entry(interpreter).or_insert(Reason::Interpreter);
            }
        }
    }

    let created_dirs: HashSet<&Path> = input
        .files
        .iter()
        .filter(|(_, u)| u.created_dir)
        .map(|(p, _)| p.as_path())
        .collect();
    let mut write = BTreeMap::new();
    for (path, usage) in input.files.iter().filter(|(_, u)| u.write > 0) {
        if !admit(path, PathKind::Write) {
            continue;
        }
        let topmost_created = path
            .ancestors()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find(|a| created_dirs.contains(a));
        let (rule, reason) = if let Some(dir) = topmost_created {
            (dir.to_owned(), Reason::CreatedDirectory)
        } else if usage.cut {
            (path.clone(), Reason::Cut)
        } else if path.symlink_metadata().is_err() {
            match path.parent() {
                Some(dir) if !is_protected(dir, input.home) || is_scratch(dir) => {
                    (dir.to_owned(), Reason::Temporary)
                }
                _ => (path.clone(), Reason::Gone),
            }
        } else {
            (path.clone(), Reason::Written)
        };
        insert_writable(&mut write, rule, reason);
    }
    let write = collapse(write, |dir| {
        !is_protected(dir, input.home) || is_scratch(dir)
    });

    let mut read = BTreeMap::new();
    for (path, usage) in input.files.iter().filter(|(_, u)| u.read > 0) {
        if covered(&write, path) || !admit(path, PathKind::Read) {
            continue;
        }
        let reason = if usage.cut {
            Reason::Cut
        } else if usage.directory || path.is_dir() {
            Reason::Directory
        } else {
            Reason::Read
        };
        insert_writable(&mut read, path.clone(), reason);
    }
    let read = collapse(read, |dir| !is_protected(dir, input.home));

    let mut learned = LearnedPaths {
        read,
        write,
        exec: exec
            .into_iter()
            .map(|(path, reason)| LearnedRule {
                path,
                reason,
                covers: 0,
            })
            .collect(),
        left_out,
    };
    count_coverage(&mut learned, input.files);
    learned
}

/// Adds `path`, or its deepest ancestor that can be written as a policy entry.
fn insert_writable(rules: &mut BTreeMap<PathBuf, Reason>, path: PathBuf, reason: Reason) {
    let writable = path
        .ancestors()
        .find(|a| is_writable(a))
        .unwrap_or(Path::new("/"));
    if writable == Path::new("/") {
        return;
    }
    if writable == path {
        rules.entry(path).or_insert(reason);
    } else {
        rules
            .entry(writable.to_owned())
            .or_insert(Reason::Unwritable);
    }
}

/// Whether `path` can be a policy entry as it is: valid UTF-8 without glob syntax, except the
/// `*` components that name the session's /proc (`/proc/*/...`).
fn is_writable(path: &Path) -> bool {
    let Some(text) = path.to_str() else {
        return false;
    };
    if text.contains('\u{FFFD}') {
        return false;
    }
    let proc_glob = text.starts_with("/proc/");
    path.iter().all(|name| {
        let name = name.to_str().unwrap_or_default();
        (proc_glob && name == "*") || !name.contains(['*', '?', '[', ']', '{', '}', '\\'])
    })
}

/// Collapses directories with at least [`COLLAPSE_AT`] entries (where `may_collapse` lets
/// it), then drops rules another rule covers.
fn collapse(
    entries: BTreeMap<PathBuf, Reason>,
    may_collapse: impl Fn(&Path) -> bool,
) -> Vec<LearnedRule> {
    let mut per_dir: BTreeMap<&Path, usize> = BTreeMap::new();
    for path in entries.keys() {
        if let Some(dir) = path.parent() {
            *per_dir.entry(dir).or_default() += 1;
        }
    }
    let collapsed: Vec<PathBuf> = per_dir
        .into_iter()
        .filter(|&(dir, n)| n >= COLLAPSE_AT && may_collapse(dir))
        .map(|(dir, _)| dir.to_owned())
        .collect();
    let mut candidates = entries;
    for dir in collapsed {
        // A collapsed directory is allowed whole, also when the run opened it itself.
        candidates
            .entry(dir)
            .and_modify(|reason| {
                if *reason == Reason::Directory {
                    *reason = Reason::Collapsed;
                }
            })
            .or_insert(Reason::Collapsed);
    }
    // Ancestors sort before what lies beneath them.
    let mut kept: Vec<LearnedRule> = Vec::new();
    let mut kept_subtrees: HashSet<PathBuf> = HashSet::new();
    for (path, reason) in candidates {
        if path.ancestors().skip(1).any(|a| kept_subtrees.contains(a)) {
            continue;
        }
        let rule = LearnedRule {
            path,
            reason,
            covers: 0,
        };
        if !rule.only_itself() {
            kept_subtrees.insert(rule.path.clone());
        }
        kept.push(rule);
    }
    kept
}

/// Whether a rule in `rules` covers `path`.
fn covered(rules: &[LearnedRule], path: &Path) -> bool {
    rules.iter().any(|r| r.covers(path))
}

/// Fills in `covers`: how many of the run's paths each rule covers.
fn count_coverage(learned: &mut LearnedPaths, files: &BTreeMap<PathBuf, FileUse>) {
    for (path, usage) in files {
        let kinds: [(&mut Vec<LearnedRule>, bool); 3] = [
            (&mut learned.read, usage.read > 0),
            (&mut learned.write, usage.write > 0),
            (&mut learned.exec, usage.exec() > 0),
        ];
        for (rules, used) in kinds {
            if let Some(rule) = rules
                .iter_mut()
                .filter(|r| used && r.covers(path))
                .max_by_key(|r| r.path.as_os_str().len())
            {
                rule.covers += 1;
            }
        }
    }
}

/// Directories never allowed whole unless the run opened them itself: allowing them would
/// allow far more than any one program's files.
fn is_protected(dir: &Path, home: Option<&Path>) -> bool {
    dir.components().count() <= 2
        || home.is_some_and(|home| home.starts_with(dir))
        || dir
            .file_name()
            .is_some_and(|name| name.as_bytes().contains(&b'*'))
}

fn is_scratch(dir: &Path) -> bool {
    SCRATCH_DIRS.iter().any(|s| dir == Path::new(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::glob::PathEntry;

    fn uses(list: &[(&str, FileUse)]) -> BTreeMap<PathBuf, FileUse> {
        list.iter()
            .map(|(p, u)| (PathBuf::from(p), u.clone()))
            .collect()
    }

    fn read() -> FileUse {
        FileUse {
            read: 1,
            ..FileUse::default()
        }
    }

    fn written() -> FileUse {
        FileUse {
            write: 1,
            ..FileUse::default()
        }
    }

    fn paths(rules: &[LearnedRule]) -> Vec<&str> {
        rules.iter().map(|r| r.path.to_str().unwrap()).collect()
    }

    fn learn_from(files: &BTreeMap<PathBuf, FileUse>, deny: &[&str]) -> LearnedPaths {
        let deny: Vec<PathPattern> = deny
            .iter()
            .map(|d| {
                PathEntry::parse(d)
                    .unwrap()
                    .resolve(Path::new("/"), None)
                    .unwrap()
            })
            .collect();
        learn(&PathInput {
            files,
            launch_chain: &[],
            deny: &deny,
            home: Some(Path::new("/home/u")),
        })
    }

    #[test]
    fn a_directory_the_run_only_opened_grants_nothing_inside_it() {
        // `tar -cf out.tar -C /srv/d app/config.toml`: /srv/d/app/.token stays denied.
        let opened = FileUse {
            read: 1,
            directory: true,
            ..FileUse::default()
        };
        let files = uses(&[
            ("/srv/d", opened.clone()),
            ("/srv/d/app", opened),
            ("/srv/d/app/config.toml", read()),
        ]);
        let learned = learn_from(&files, &[]);
        let entries: Vec<String> = learned.read.iter().map(LearnedRule::entry).collect();
        assert_eq!(
            entries,
            ["=/srv/d", "=/srv/d/app", "/srv/d/app/config.toml"]
        );
        let patterns: Vec<PathPattern> = entries
            .iter()
            .map(|e| {
                PathEntry::parse(e)
                    .unwrap()
                    .resolve(Path::new("/"), None)
                    .unwrap()
            })
            .collect();
        let allowed = |path: &[u8]| patterns.iter().any(|p| p.covers(path));
        assert!(allowed(b"/srv/d/app/config.toml"));
        assert!(allowed(b"/srv/d/app"));
        assert!(!allowed(b"/srv/d/app/.token"));
        assert!(!allowed(b"/srv/d/other"));
        assert!(learned.read.iter().all(|r| r.covers == 1), "{learned:?}");
    }

    #[test]
    fn collapses_a_directory_with_enough_entries_but_not_a_protected_one() {
        let files = uses(&[
            ("/opt/app/lib/a.so", read()),
            ("/opt/app/lib/b.so", read()),
            ("/opt/app/lib/c.so", read()),
            ("/opt/app/conf", read()),
            ("/etc/hosts", read()),
            ("/etc/passwd", read()),
            ("/etc/group", read()),
            ("/home/u/.a", read()),
            ("/home/u/.b", read()),
            ("/home/u/.c", read()),
        ]);
        let learned = learn_from(&files, &[]);
        assert_eq!(
            paths(&learned.read),
            [
                "/etc/group",
                "/etc/hosts",
                "/etc/passwd",
                "/home/u/.a",
                "/home/u/.b",
                "/home/u/.c",
                "/opt/app/conf",
                "/opt/app/lib",
            ]
        );
        let lib = learned
            .read
            .iter()
            .find(|r| r.path.ends_with("lib"))
            .unwrap();
        assert_eq!((lib.reason.clone(), lib.covers), (Reason::Collapsed, 3));
    }

    #[test]
    fn denied_paths_and_root_are_left_out() {
        let files = uses(&[
            ("/home/u/.ssh/id_rsa", read()),
            (
                "/",
                FileUse {
                    read: 1,
                    directory: true,
                    ..FileUse::default()
                },
            ),
            ("/srv/data/x", read()),
        ]);
        let learned = learn_from(&files, &["/home/*/.ssh"]);
        assert_eq!(paths(&learned.read), ["/srv/data/x"]);
        let why: Vec<LeftOutWhy> = learned.left_out.iter().map(|l| l.why).collect();
        assert_eq!(why, [LeftOutWhy::Root, LeftOutWhy::Denied]);
    }

    #[test]
    fn writes_beneath_a_created_directory_collapse_into_it() {
        let dir =
            std::env::temp_dir().join(format!("sandtrace-learn-paths-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("repo/.git/objects/ab")).unwrap();
        std::fs::write(dir.join("kept.txt"), "x").unwrap();
        let p = |rel: &str| dir.join(rel).to_str().unwrap().to_owned();
        let files = uses(&[
            (
                &p("repo/.git"),
                FileUse {
                    write: 1,
                    created_dir: true,
                    ..FileUse::default()
                },
            ),
            (
                &p("repo/.git/objects/ab"),
                FileUse {
                    write: 1,
                    created_dir: true,
                    ..FileUse::default()
                },
            ),
            (&p("repo/.git/objects/ab/cdef"), written()),
            (&p("repo/.git/index.lock"), written()),
            (
                &p("kept.txt"),
                FileUse {
                    read: 1,
                    write: 1,
                    ..FileUse::default()
                },
            ),
            (&p("repo/.git/HEAD"), read()),
        ]);
        let learned = learn_from(&files, &[]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(paths(&learned.write), [p("kept.txt"), p("repo/.git")]);
        assert_eq!(learned.write[1].reason, Reason::CreatedDirectory);
        assert!(learned.read.is_empty(), "{:?}", learned.read);
    }

    #[test]
    fn temporary_files_allow_their_directory_unless_it_is_protected() {
        let files = uses(&[
            ("/tmp/tmpab12cd", written()),
            ("/home/u/.bashrc.swp", written()),
            ("/srv/out/part-1.tmp", written()),
        ]);
        let learned = learn_from(&files, &[]);
        assert_eq!(
            paths(&learned.write),
            ["/home/u/.bashrc.swp", "/srv/out", "/tmp"]
        );
        let reasons: Vec<Reason> = learned.write.iter().map(|r| r.reason.clone()).collect();
        assert_eq!(
            reasons,
            [Reason::Gone, Reason::Temporary, Reason::Temporary]
        );
    }

    #[test]
    fn names_with_glob_characters_are_covered_by_their_directory() {
        let files = uses(&[
            ("/srv/a/b[1].txt", read()),
            ("/proc/*/stat", read()),
            ("/proc/self/status", read()),
        ]);
        let learned = learn_from(&files, &[]);
        assert_eq!(
            paths(&learned.read),
            ["/proc/*/stat", "/proc/self/status", "/srv/a"]
        );
        assert_eq!(learned.read[2].reason, Reason::Unwritable);
    }
}
