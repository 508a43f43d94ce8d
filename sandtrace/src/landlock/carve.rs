//! The grants of the session's Landlock ruleset, carved from the policy's automaton and the
//! files that exist when the session starts.
//!
//! Landlock grants rights on a file or on a whole tree and cannot take any back, while the
//! policy's deny rules override its allow rules. So the loader walks, from `/`, the trees in
//! which the automaton says the decision varies, and grants each tree whole where everything
//! beneath it is decided alike (the automaton proves it for every possible name, or the walk
//! for every existing one), and otherwise grants its entries one by one, down to the denied
//! paths, which get nothing. Where the automaton shows that nothing beneath a directory can be
//! allowed, or that everything is decided alike, nothing is read from the disk.
//!
//! The rights of a tree are those every existing entry beneath it has, which the Landlock
//! rights map to as follows (`R`, `W`, `X`: read, write, exec; write implies read):
//! - `READ_DIR` on a directory: `R` on it and on every directory beneath (listing a directory
//!   does not reveal a denied file's contents, but a denied directory's names);
//! - `MAKE_*` (new entries, never device nodes): `W` on it and every directory beneath;
//! - `REMOVE_DIR` / `REMOVE_FILE`: `W` on every directory / non-directory beneath;
//! - `READ_FILE`, `WRITE_FILE` + `TRUNCATE`, `EXECUTE` (+ `READ_FILE`, which the kernel's exec
//!   open needs): `R`, `W`, `X` on every non-directory beneath;
//! - `REFER` (rename and link across directories): all of `MAKE_*` and `REMOVE_*`.
//!
//! Names created later get the rights of their directory's grant, which are those of the allow
//! rules covering every name there (the automaton without its deny rules): a name a deny rule
//! matches, created after the start inside a writable directory, is not denied. That, and a
//! directory listed or changed only if everything beneath it may be, are the approximations
//! the session reports.
//!
//! Limits fail closed: more than [`Limits::grants`] grants, a walk of more than
//! [`Limits::entries`] entries or deeper than [`Limits::depth`] directories refuses the session.

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use sandtrace_common::policy::{KIND_DENY, KIND_EXEC, KIND_READ, KIND_WRITE, PathAccept};

use super::{PathGrant, access};
use crate::policy::CompiledPaths;

/// The policy's rights on a path, as bits.
type Rights = u8;
const READ: Rights = 1;
const WRITE: Rights = 2;
const EXEC: Rights = 4;

/// How far a carve may go before the session is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Grants in the ruleset (each holds a reference to an inode in the kernel).
    pub grants: usize,
    /// Directory entries looked at.
    pub entries: u64,
    /// Directories below `/` (the walk holds a descriptor for each).
    pub depth: usize,
}

impl Limits {
    pub const DEFAULT: Self = Self {
        grants: 16_384,
        entries: 1_000_000,
        depth: 512,
    };
}

/// Why no ruleset could be carved.
#[derive(Debug)]
pub enum CarveError {
    TooManyGrants { limit: usize, at: PathBuf },
    TooManyEntries { limit: u64, at: PathBuf },
    TooDeep { limit: usize, at: PathBuf },
    Walk { at: PathBuf, errno: Errno },
}

impl fmt::Display for CarveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = "hint: narrow the allow rules or the deny rules that reach into this tree, \
                    or run on a kernel with BPF LSM (which decides by path, with no carve-out)";
        match self {
            CarveError::TooManyGrants { limit, at } => write!(
                f,
                "cannot enforce the filesystem rules with Landlock: carving the deny rules out of \
                 the allowed trees needs more than {limit} grants (below {}); refusing to start \
                 rather than grant more\n  {hint}",
                at.display()
            ),
            CarveError::TooManyEntries { limit, at } => write!(
                f,
                "cannot enforce the filesystem rules with Landlock: carving the deny rules out of \
                 the allowed trees would look at more than {limit} directory entries (at {}); \
                 refusing to start rather than grant more\n  {hint}",
                at.display()
            ),
            CarveError::TooDeep { limit, at } => write!(
                f,
                "cannot enforce the filesystem rules with Landlock: {} is more than {limit} \
                 directories deep in a tree the deny rules reach into; refusing to start rather \
                 than grant more\n  {hint}",
                at.display()
            ),
            CarveError::Walk { at, errno } => write!(
                f,
                "cannot enforce the filesystem rules with Landlock: walking {}: {errno}",
                at.display()
            ),
        }
    }
}

impl std::error::Error for CarveError {}

/// The grants of a carve, and how much it looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carved {
    pub grants: Vec<PathGrant>,
    pub entries: u64,
}

/// Carves the grants for `paths` from the file system as it is now, restricted to the rights
/// `handled` (the kernel's ABI).
pub fn carve(paths: &CompiledPaths, handled: u64, limits: Limits) -> Result<Carved, CarveError> {
    let mut walker = Walker {
        paths,
        reach: Reach::new(paths),
        handled,
        limits,
        entries: 0,
    };
    let root_state = paths.step(paths.start(), b"/");
    // SAFETY: a static C string; the descriptor is owned below.
    let fd = unsafe {
        libc::open(
            c"/".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(CarveError::Walk {
            at: PathBuf::from("/"),
            errno: Errno::last(),
        });
    }
    // SAFETY: a new descriptor that nothing else owns.
    let root = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut path = b"/".to_vec();
    let node = walker.directory(root, &mut path, root_state, root_state, 0)?;
    let mut grants = Vec::with_capacity(node.pending.len() + 1);
    if node.grant != 0 {
        grants.push(grant(b"/", node.grant));
    }
    grants.extend(node.pending);
    Ok(Carved {
        grants,
        entries: walker.entries,
    })
}

fn grant(path: &[u8], access: u64) -> PathGrant {
    PathGrant {
        path: CString::new(path).expect("directory entries hold no NUL byte"),
        access,
    }
}

/// The rights of one automaton state: with its deny rules, and of its allow rules alone.
fn rights(accept: &PathAccept) -> (Rights, Rights) {
    let mut allowed = 0;
    if accept.kinds & (KIND_READ | KIND_WRITE) != 0 {
        allowed |= READ;
    }
    if accept.kinds & KIND_WRITE != 0 {
        allowed |= WRITE;
    }
    if accept.kinds & KIND_EXEC != 0 {
        allowed |= EXEC;
    }
    let decided = if accept.kinds & KIND_DENY != 0 {
        0
    } else {
        allowed
    };
    (decided, allowed)
}

/// Per automaton state, over every state reachable from it (itself included): the rights all
/// of them have (with and without the deny rules) and the rights any of them has.
struct Reach {
    decided: Vec<Rights>,
    all: Vec<Rights>,
    all_allowed: Vec<Rights>,
    any: Vec<Rights>,
}

impl Reach {
    fn new(paths: &CompiledPaths) -> Self {
        let n = paths.n_states();
        let classes = paths.n_classes();
        let mut predecessors: Vec<Vec<u16>> = vec![Vec::new(); n];
        for (at, row) in paths.transitions().chunks(classes).enumerate() {
            let at = u16::try_from(at).expect("at most MAX_STATES states");
            for &next in row {
                let list = &mut predecessors[usize::from(next)];
                if list.last() != Some(&at) {
                    list.push(at);
                }
            }
        }
        let (decided, allowed): (Vec<Rights>, Vec<Rights>) =
            paths.accept().iter().map(rights).unzip();
        // The states from which a state satisfying `seed` can be reached.
        let reaching = |seed: &dyn Fn(usize) -> bool| {
            let mut mark = vec![false; n];
            let mut queue: Vec<usize> = (0..n).filter(|&s| seed(s)).collect();
            for &s in &queue {
                mark[s] = true;
            }
            while let Some(s) = queue.pop() {
                for &p in &predecessors[s] {
                    if !mark[usize::from(p)] {
                        mark[usize::from(p)] = true;
                        queue.push(usize::from(p));
                    }
                }
            }
            mark
        };
        let mut all = vec![0; n];
        let mut all_allowed = vec![0; n];
        let mut any = vec![0; n];
        for bit in [READ, WRITE, EXEC] {
            let lacking = reaching(&|s| decided[s] & bit == 0);
            let lacking_allowed = reaching(&|s| allowed[s] & bit == 0);
            let having = reaching(&|s| decided[s] & bit != 0);
            for s in 0..n {
                if !lacking[s] {
                    all[s] |= bit;
                }
                if !lacking_allowed[s] {
                    all_allowed[s] |= bit;
                }
                if having[s] {
                    any[s] |= bit;
                }
            }
        }
        Self {
            decided,
            all,
            all_allowed,
            any,
        }
    }
}

/// What the walk found for one entry.
struct Node {
    /// The rights on the entry itself.
    own: Rights,
    /// The rights every directory / non-directory strictly beneath it has.
    dirs_below: Rights,
    files_below: Rights,
    /// The Landlock rights it is granted (those of its parent at least).
    grant: u64,
    /// Grants beneath it that add to `grant`.
    pending: Vec<PathGrant>,
}

struct Walker<'a> {
    paths: &'a CompiledPaths,
    reach: Reach,
    handled: u64,
    limits: Limits,
    entries: u64,
}

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

impl Walker<'_> {
    fn directory_grant(&self, own: Rights, dirs: Rights, files: Rights) -> u64 {
        use access::*;
        let mut grant = 0;
        if own & dirs & READ != 0 {
            grant |= READ_DIR;
        }
        if own & dirs & WRITE != 0 {
            grant |= MAKE;
        }
        if dirs & WRITE != 0 {
            grant |= REMOVE_DIR;
        }
        if files & WRITE != 0 {
            grant |= REMOVE_FILE;
        }
        if own & dirs & files & WRITE != 0 {
            grant |= REFER;
        }
        (grant | self.file_grant(files)) & self.handled
    }

    fn file_grant(&self, rights: Rights) -> u64 {
        use access::*;
        let mut grant = 0;
        if rights & READ != 0 {
            grant |= READ_FILE;
        }
        if rights & WRITE != 0 {
            grant |= WRITE_FILE | TRUNCATE;
        }
        if rights & EXEC != 0 {
            grant |= EXECUTE | READ_FILE;
        }
        grant & self.handled
    }

    /// A directory whose contents the automaton decides alone: `below` for everything in it.
    fn decided_directory(&self, own: Rights, below: Rights) -> Node {
        Node {
            own,
            dirs_below: below,
            files_below: below,
            grant: self.directory_grant(own, below, below),
            pending: Vec::new(),
        }
    }

    /// Walks the directory open as `dir`, at `path`, in automaton state `state` (its path) and
    /// `prefix` (its path and a `/`: its entries' names follow).
    fn directory(
        &mut self,
        dir: OwnedFd,
        path: &mut Vec<u8>,
        state: u16,
        prefix: u16,
        depth: usize,
    ) -> Result<Node, CarveError> {
        let own = self.reach.decided[usize::from(state)];
        let (all, any) = (
            self.reach.all[usize::from(prefix)],
            self.reach.any[usize::from(prefix)],
        );
        if all == any {
            return Ok(self.decided_directory(own, all));
        }
        let in_proc_root = path != b"/" && is_proc_root(&dir);
        let mut dir = Dir::from_fd(dir).map_err(|errno| walk_error(path, errno))?;
        let mut names: Vec<(CString, Option<Type>)> = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|errno| walk_error(path, errno))?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            self.entries += 1;
            if self.entries > self.limits.entries {
                return Err(CarveError::TooManyEntries {
                    limit: self.limits.entries,
                    at: to_path(path),
                });
            }
            names.push((name.to_owned(), entry.file_type()));
        }
        // Names made later: what the allow rules give every name here.
        let fresh = self.reach.all_allowed[usize::from(prefix)];
        let (mut dirs_below, mut files_below) = (fresh, fresh);
        // The entries that may need a grant of their own: name, what was found, directory.
        let mut children: Vec<(CString, Node, bool)> = Vec::new();
        let parent_len = path.len();
        for (name, file_type) in names {
            let bytes = name.as_bytes();
            // The session's /proc shows other processes under other numbers.
            if in_proc_root && bytes.iter().all(u8::is_ascii_digit) {
                continue;
            }
            let child_state = self.paths.step(prefix, bytes);
            let child_own = self.reach.decided[usize::from(child_state)];
            if path.len() > 1 {
                path.push(b'/');
            }
            path.extend_from_slice(bytes);
            let file_type = match file_type {
                Some(t) => Some(t),
                None => stat_type(dir.as_raw_fd(), &name),
            };
            // `/proc/self` is CMD's own directory in the session: walked as the loader's.
            let follow = in_proc_root && bytes == b"self";
            let is_dir = file_type == Some(Type::Directory) || follow;
            if is_dir {
                if depth + 1 > self.limits.depth {
                    return Err(CarveError::TooDeep {
                        limit: self.limits.depth,
                        at: to_path(path),
                    });
                }
                let child_prefix = self.paths.next(child_state, b'/');
                let child = match open_directory(dir.as_raw_fd(), &name, follow, path)? {
                    Some(fd) => self.directory(fd, path, child_state, child_prefix, depth + 1)?,
                    // Unreadable: what the automaton alone says of every name in it.
                    None => {
                        self.decided_directory(child_own, self.reach.all[usize::from(child_prefix)])
                    }
                };
                dirs_below &= child.own & child.dirs_below;
                files_below &= child.files_below;
                if child.grant != 0 || !child.pending.is_empty() {
                    children.push((name, child, true));
                }
            } else {
                // A symlink is removed like a file, and opened as its target.
                files_below &= child_own;
                if file_type != Some(Type::Symlink) {
                    let grant = self.file_grant(child_own);
                    if grant != 0 {
                        children.push((
                            name,
                            Node {
                                own: child_own,
                                dirs_below: 0,
                                files_below: 0,
                                grant,
                                pending: Vec::new(),
                            },
                            false,
                        ));
                    }
                }
            }
            path.truncate(parent_len);
        }
        let grant = self.directory_grant(own, dirs_below, files_below);
        let mut pending = Vec::new();
        for (name, child, is_dir) in children {
            let applicable = if is_dir { u64::MAX } else { access::FILE };
            if child.grant & applicable & !grant != 0 {
                let mut child_path = path.clone();
                if child_path.len() > 1 {
                    child_path.push(b'/');
                }
                child_path.extend_from_slice(name.as_bytes());
                pending.push(self::grant(&child_path, child.grant & applicable));
            }
            pending.extend(child.pending);
            if pending.len() > self.limits.grants {
                return Err(CarveError::TooManyGrants {
                    limit: self.limits.grants,
                    at: to_path(path),
                });
            }
        }
        Ok(Node {
            own,
            dirs_below,
            files_below,
            grant,
            pending,
        })
    }
}

fn to_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

fn walk_error(path: &[u8], errno: Errno) -> CarveError {
    CarveError::Walk {
        at: to_path(path),
        errno,
    }
}

fn is_proc_root(dir: &OwnedFd) -> bool {
    // SAFETY: all-zero is a valid statfs buffer, filled by fstatfs on an open descriptor.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    let ok = unsafe { libc::fstatfs(dir.as_raw_fd(), &raw mut fs) } == 0;
    ok && fs.f_type as i64 == PROC_SUPER_MAGIC
}

/// The type of `name` in `dir` where the directory entry does not say.
fn stat_type(dir: RawFd, name: &CStr) -> Option<Type> {
    // SAFETY: all-zero is a valid stat buffer, filled by fstatat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is a C string, `st` a valid buffer, `dir` an open directory.
    if unsafe { libc::fstatat(dir, name.as_ptr(), &raw mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return None;
    }
    Some(match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Type::Directory,
        libc::S_IFLNK => Type::Symlink,
        _ => Type::File,
    })
}

/// Opens the directory `name` in `dir` (not through a symlink unless `follow`). `None` where
/// it cannot be read (gone, not a directory any more, a mount this root cannot enter); running
/// out of descriptors or memory ends the walk.
fn open_directory(
    dir: RawFd,
    name: &CStr,
    follow: bool,
    path: &[u8],
) -> Result<Option<OwnedFd>, CarveError> {
    let mut flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    // SAFETY: `name` is a C string and `dir` an open directory.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags) };
    if fd >= 0 {
        // SAFETY: a new descriptor that nothing else owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    match Errno::last() {
        errno @ (Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM) => Err(walk_error(path, errno)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landlock::handled_fs;
    use crate::policy::{CliOverrides, compile, parse::parse, resolve};
    use access::*;
    use std::collections::BTreeMap;
    use std::fs;
    use std::path::Path;

    /// A scratch tree under the system's temporary directory.
    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("sandtrace-carve-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(fs::canonicalize(dir).unwrap())
        }

        fn file(&self, rel: &str) -> &Self {
            let p = self.0.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "x").unwrap();
            self
        }

        fn dir(&self, rel: &str) -> &Self {
            fs::create_dir_all(self.0.join(rel)).unwrap();
            self
        }

        fn at(&self, rel: &str) -> String {
            if rel.is_empty() {
                self.0.display().to_string()
            } else {
                self.0.join(rel).display().to_string()
            }
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn compiled(toml: &str) -> CompiledPaths {
        let policy = parse(Path::new("test.toml"), toml.to_owned()).unwrap();
        let effective =
            resolve::resolve(&policy, &CliOverrides::default(), Path::new("/"), None).unwrap();
        compile(&effective).unwrap()
    }

    /// The grants of `toml` below `tree`, by path relative to it.
    fn grants(
        toml: &str,
        tree: &Tree,
        limits: Limits,
    ) -> Result<BTreeMap<String, u64>, CarveError> {
        let carved = carve(&compiled(toml), handled_fs(7), limits)?;
        let root = tree.0.as_os_str().as_bytes();
        Ok(carved
            .grants
            .into_iter()
            .filter_map(|g| {
                let path = g.path.as_bytes();
                let rel = path.strip_prefix(root)?;
                let rel = rel.strip_prefix(b"/").unwrap_or(rel);
                Some((String::from_utf8(rel.to_vec()).unwrap(), g.access))
            })
            .collect())
    }

    const READ_TREE: u64 = READ_FILE | READ_DIR;
    const WRITE_TREE: u64 =
        READ_FILE | READ_DIR | WRITE_FILE | TRUNCATE | MAKE | REMOVE_DIR | REMOVE_FILE | REFER;

    #[test]
    fn a_tree_without_deny_rules_is_granted_whole_without_a_walk() {
        let t = Tree::new("whole");
        t.file("a/b/c").file("d");
        let toml = format!("[filesystem]\nallow_write = [\"{}\"]\n", t.at(""));
        let carved = carve(&compiled(&toml), handled_fs(7), Limits::DEFAULT).unwrap();
        let ours: Vec<_> = carved
            .grants
            .iter()
            .filter(|g| g.path.as_bytes().starts_with(t.0.as_os_str().as_bytes()))
            .collect();
        assert_eq!(ours.len(), 1, "{:?}", carved.grants);
        assert_eq!(ours[0].access, WRITE_TREE);
    }

    #[test]
    fn denied_paths_are_carved_out_of_an_allowed_tree() {
        let t = Tree::new("deny");
        t.file("README")
            .file("src/main.rs")
            .file("src/.env")
            .file("docs/guide/intro.md")
            .dir(".ssh")
            .file(".ssh/id_rsa");
        let toml = format!(
            "[filesystem]\nallow_read = [\"{}\"]\ndeny = [\"**/.env\", \"{}\"]\n",
            t.at(""),
            t.at(".ssh")
        );
        let g = grants(&toml, &t, Limits::DEFAULT).unwrap();
        // The root holds a denied directory: nothing on it whole; its other entries whole.
        assert_eq!(g.get(""), None, "{g:?}");
        assert_eq!(g["README"], READ_FILE);
        assert_eq!(g["docs"], READ_TREE);
        // src holds a denied file: it can be listed, its other files are granted one by one.
        assert_eq!(g["src"], READ_DIR);
        assert_eq!(g["src/main.rs"], READ_FILE);
        assert!(!g.contains_key("src/.env") && !g.keys().any(|k| k.starts_with(".ssh")));
    }

    #[test]
    fn a_writable_directory_holding_a_denied_file_keeps_it_from_removal() {
        let t = Tree::new("write");
        t.file("out/.env").file("out/log").dir("out/sub");
        let toml = format!(
            "[filesystem]\nallow_write = [\"{}\"]\ndeny = [\"**/.env\"]\n",
            t.at("out")
        );
        let g = grants(&toml, &t, Limits::DEFAULT).unwrap();
        let out = g["out"];
        assert_eq!(
            out & (REMOVE_FILE | REFER | READ_FILE | WRITE_FILE),
            0,
            "{out:#x}"
        );
        assert_ne!(out & (MAKE_REG | READ_DIR | REMOVE_DIR), 0, "{out:#x}");
        assert_eq!(g["out/log"], READ_FILE | WRITE_FILE | TRUNCATE);
        assert_eq!(g["out/sub"], WRITE_TREE);
    }

    #[test]
    fn exec_rules_grant_execute_and_the_read_an_exec_needs() {
        let t = Tree::new("exec");
        t.file("bin/tool").file("lib/data");
        let toml = format!(
            "[filesystem]\nallow_read = [\"{}\"]\nallow_exec = [\"{}\"]\n",
            t.at(""),
            t.at("bin")
        );
        let g = grants(&toml, &t, Limits::DEFAULT).unwrap();
        assert_eq!(g[""], READ_TREE);
        assert_eq!(g["bin"], READ_TREE | EXECUTE);
    }

    #[test]
    fn only_itself_rules_grant_a_file_and_not_a_directorys_contents() {
        let t = Tree::new("only");
        t.file("app/config.toml").file("app/.token");
        let toml = format!(
            "[filesystem]\nallow_read = [\"={}\", \"{}\"]\n",
            t.at("app"),
            t.at("app/config.toml")
        );
        let g = grants(&toml, &t, Limits::DEFAULT).unwrap();
        assert_eq!(g.get("app"), None, "{g:?}");
        assert_eq!(g["app/config.toml"], READ_FILE);
        assert!(!g.contains_key("app/.token"));
    }

    #[test]
    fn globs_in_allow_rules_are_expanded_over_what_exists() {
        let t = Tree::new("glob");
        t.file("home/a/project/x")
            .file("home/b/project/y")
            .file("home/b/other/z");
        let toml = format!(
            "[filesystem]\nallow_read = [\"{}/home/*/project\"]\n",
            t.at("")
        );
        let g = grants(&toml, &t, Limits::DEFAULT).unwrap();
        assert_eq!(g["home/a/project"], READ_TREE);
        assert_eq!(g["home/b/project"], READ_TREE);
        assert_eq!(g.len(), 2, "{g:?}");
    }

    #[test]
    fn a_carve_beyond_the_limits_is_refused() {
        let t = Tree::new("limit");
        for i in 0..20 {
            t.file(&format!("many/f{i}"));
        }
        t.file("many/.env");
        let toml = format!(
            "[filesystem]\nallow_read = [\"{}\"]\ndeny = [\"**/.env\"]\n",
            t.at("many")
        );
        let limits = Limits {
            grants: 10,
            ..Limits::DEFAULT
        };
        let err = grants(&toml, &t, limits).unwrap_err();
        assert!(
            matches!(err, CarveError::TooManyGrants { limit: 10, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("refusing to start"), "{err}");
        // `many` is one directory deeper than the tree.
        let depth = t.0.components().count() - 1;
        let limits = Limits {
            depth,
            ..Limits::DEFAULT
        };
        let err = grants(&toml, &t, limits).unwrap_err();
        assert!(matches!(err, CarveError::TooDeep { .. }), "{err}");
    }
}
