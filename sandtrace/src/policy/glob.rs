//! Path entries and the patterns they resolve to.
//!
//! An entry is matched component by component against a normalised absolute path, and it
//! covers every path that has a *prefix of whole components* matching it: `/usr` covers `/usr`
//! and `/usr/bin/ls` but not `/usrlocal`; `/home/*/.ssh` covers `/home/u/.ssh/id_rsa`.
//! Within one component `*` matches any run of bytes and `?` exactly one byte; neither
//! matches `/`. A component that is exactly `**` matches zero or more whole components, so
//! `**/.env` covers `/.env` and `/a/b/.env`, and `/` or `**` alone cover everything.
//! A component never matches an empty name, so `/*` covers every path except `/` itself.
//!
//! An entry written with a leading `=` covers the paths it matches *and nothing beneath
//! them*: `=/srv/app` covers the directory `/srv/app` itself (opening, listing, entering
//! it) but not `/srv/app/.token`, and `=/srv/app/*` covers the entries of `/srv/app` but
//! not what lies inside them. `learn` writes directories a run only opened this way.

use std::fmt;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use sandtrace_common::policy::MAX_PATH_LEN;

use super::diagnostic::Problem;

/// One component of a pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    /// Exactly these bytes.
    Literal(Vec<u8>),
    /// A name with `*` or `?` in it.
    Glob(Vec<GlobToken>),
    /// `**`: zero or more whole components.
    AnyDepth,
}

/// One element of a [`Component::Glob`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GlobToken {
    Byte(u8),
    /// `?`
    AnyByte,
    /// `*`
    AnyRun,
}

impl Component {
    pub fn is_wildcard(&self) -> bool {
        !matches!(self, Component::Literal(_))
    }

    /// Whether this (non-`**`) component matches one path component.
    fn matches_name(&self, name: &[u8]) -> bool {
        match self {
            Component::Literal(bytes) => bytes == name,
            Component::Glob(tokens) => glob_matches(tokens, name),
            Component::AnyDepth => true,
        }
    }
}

/// Where a written entry is anchored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Anchor {
    /// `/...` and `**/...`
    Root,
    /// `~` and `~/...`: the invoking user's home directory.
    Home,
    /// Anything else (`./x`, `x/y`, `../x`, `*.pem`): the directory sandtrace was started in.
    WorkingDir,
}

#[derive(Clone, Debug)]
enum Part {
    Component(Component),
    Parent,
}

/// A path entry as written in a policy file or on the command line, syntax-checked.
/// Two entries are equal when they are written the same.
#[derive(Clone, Debug)]
pub struct PathEntry {
    text: String,
    anchor: Anchor,
    parts: Vec<Part>,
    /// Written with a leading `=`: the matches only, not what lies beneath them.
    only_itself: bool,
}

impl PartialEq for PathEntry {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for PathEntry {}

const UNSUPPORTED_GLOB_CHARS: &[char] = &['[', ']', '{', '}', '\\'];

impl PathEntry {
    pub fn parse(text: &str) -> Result<Self, Problem> {
        let (only_itself, path) = match text.strip_prefix('=') {
            Some(path) => (true, path),
            None => (false, text),
        };
        if only_itself && path.is_empty() {
            return Err(Problem::new("`=` without a path")
                .with_hint("write `=PATH` for PATH itself and nothing beneath it"));
        }
        let mut entry = Self::parse_path(path)?;
        entry.text = text.to_owned();
        entry.only_itself = only_itself;
        Ok(entry)
    }

    fn parse_path(text: &str) -> Result<Self, Problem> {
        if text.is_empty() {
            return Err(Problem::new("empty path")
                .with_hint("write `/` to mean every path, or remove the entry"));
        }
        if text.contains('\0') {
            return Err(Problem::new(format!("path {text:?} contains a NUL byte")));
        }
        if text.len() > MAX_PATH_LEN {
            return Err(Problem::new(format!(
                "path is {} bytes long, longer than the {MAX_PATH_LEN} bytes a path can have",
                text.len()
            )));
        }
        if let Some(c) = text.chars().find(|c| UNSUPPORTED_GLOB_CHARS.contains(c)) {
            return Err(
                Problem::new(format!("unsupported glob syntax `{c}` in {text:?}")).with_hint(
                    "only `*`, `?` and `**` are supported; write alternatives as separate entries",
                ),
            );
        }
        let (anchor, rest) = if text.starts_with('/') || text == "**" || text.starts_with("**/") {
            (Anchor::Root, text)
        } else if text == "~" || text.starts_with("~/") {
            (Anchor::Home, &text[1..])
        } else if text.starts_with('~') {
            return Err(Problem::new(format!(
                "cannot expand {text:?}: only `~` and `~/` are expanded"
            ))
            .with_hint("write the other user's home directory as an absolute path"));
        } else {
            (Anchor::WorkingDir, text)
        };
        let mut parts = Vec::new();
        for name in rest.split('/') {
            match name {
                "" | "." => {}
                ".." => {
                    if parts
                        .iter()
                        .any(|p| matches!(p, Part::Component(c) if c.is_wildcard()))
                    {
                        return Err(Problem::new(format!(
                            "`..` after a glob component in {text:?} is ambiguous"
                        ))
                        .with_hint("write the path without `..`"));
                    }
                    parts.push(Part::Parent);
                }
                _ => parts.push(Part::Component(parse_component(name, text)?)),
            }
        }
        Ok(Self {
            text: text.to_owned(),
            anchor,
            parts,
            only_itself: false,
        })
    }

    /// Whether the entry was written with a leading `=`.
    pub fn is_only_itself(&self) -> bool {
        self.only_itself
    }

    /// The entry as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The absolute pattern this entry stands for: relative entries are joined to `cwd`,
    /// `~` is replaced by `home`, and `.`, `..` and repeated slashes are resolved lexically.
    pub fn resolve(&self, cwd: &Path, home: Option<&Path>) -> Result<PathPattern, Problem> {
        let base = match self.anchor {
            Anchor::Root => Vec::new(),
            Anchor::WorkingDir => literal_components(cwd, "working directory")?,
            Anchor::Home => {
                let home = home.ok_or_else(|| {
                    Problem::new(format!(
                        "cannot expand `~` in {:?}: the invoking user's home directory is unknown",
                        self.text
                    ))
                    .with_hint("set HOME, or write the path without `~`")
                })?;
                literal_components(home, "home directory")?
            }
        };
        let mut components = base;
        for part in &self.parts {
            match part {
                Part::Component(c) => components.push(c.clone()),
                Part::Parent => {
                    components.pop();
                }
            }
        }
        Ok(if self.only_itself {
            PathPattern::only_itself(components)
        } else {
            PathPattern::new(components)
        })
    }
}

fn parse_component(name: &str, text: &str) -> Result<Component, Problem> {
    if name == "**" {
        return Ok(Component::AnyDepth);
    }
    if name.contains("**") {
        return Err(Problem::new(format!(
            "`**` must be a whole path component, but {text:?} has {name:?}"
        ))
        .with_hint("use `*` within a component, `**` between slashes"));
    }
    if !name.contains(['*', '?']) {
        return Ok(Component::Literal(name.as_bytes().to_vec()));
    }
    Ok(Component::Glob(
        name.bytes()
            .map(|b| match b {
                b'*' => GlobToken::AnyRun,
                b'?' => GlobToken::AnyByte,
                _ => GlobToken::Byte(b),
            })
            .collect(),
    ))
}

/// The components of an absolute directory (the working directory, a home directory), taken
/// literally: glob characters in them are just bytes.
fn literal_components(dir: &Path, what: &str) -> Result<Vec<Component>, Problem> {
    if !dir.is_absolute() {
        return Err(Problem::new(format!(
            "the {what} {} is not an absolute path",
            dir.display()
        )));
    }
    let mut components = Vec::new();
    for name in dir.as_os_str().as_bytes().split(|&b| b == b'/') {
        match name {
            b"" | b"." => {}
            b".." => {
                components.pop();
            }
            _ => components.push(Component::Literal(name.to_vec())),
        }
    }
    Ok(components)
}

/// A resolved, normalised absolute pattern: no `.`/`..`, no repeated or trailing `**`
/// (a trailing `**` adds nothing, since an entry covers what lies beneath it; on a `=` entry
/// it brings that back, so such an entry is an ordinary one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathPattern {
    components: Vec<Component>,
    /// Covers its matches only, not what lies beneath them (a `=` entry).
    only_itself: bool,
}

impl PathPattern {
    /// A pattern covering its matches and everything beneath them.
    pub fn new(components: Vec<Component>) -> Self {
        Self::normalised(components, false)
    }

    /// A pattern covering its matches only (a `=` entry).
    pub fn only_itself(components: Vec<Component>) -> Self {
        Self::normalised(components, true)
    }

    fn normalised(mut components: Vec<Component>, mut only_itself: bool) -> Self {
        components.dedup_by(|a, b| *a == Component::AnyDepth && *b == Component::AnyDepth);
        while components.last() == Some(&Component::AnyDepth) {
            components.pop();
            only_itself = false;
        }
        Self {
            components,
            only_itself,
        }
    }

    /// Whether the pattern leaves out what lies beneath its matches (a `=` entry).
    pub fn is_only_itself(&self) -> bool {
        self.only_itself
    }

    pub fn components(&self) -> &[Component] {
        &self.components
    }

    pub fn has_wildcards(&self) -> bool {
        self.components.iter().any(Component::is_wildcard)
    }

    /// The longest leading run of literal components, as a path (`/` if there is none).
    pub fn literal_prefix(&self) -> PathBuf {
        let mut prefix = PathBuf::from("/");
        for component in &self.components {
            match component {
                Component::Literal(name) => prefix.push(std::ffi::OsStr::from_bytes(name)),
                Component::Glob(_) | Component::AnyDepth => break,
            }
        }
        prefix
    }

    /// The same pattern with its literal prefix replaced by where that prefix resolves to now,
    /// when it goes through a symlink (`/lib64/x` -> `/usr/lib64/x`); `None` otherwise. The
    /// kernel decides on resolved paths, so a rule is applied to both spellings.
    pub fn with_resolved_prefix(&self) -> Option<PathPattern> {
        let prefix = self.literal_prefix();
        if prefix == Path::new("/") {
            return None;
        }
        let resolved = std::fs::canonicalize(&prefix).ok()?;
        if resolved == prefix {
            return None;
        }
        let literal_count = self
            .components
            .iter()
            .take_while(|c| matches!(c, Component::Literal(_)))
            .count();
        let mut components: Vec<Component> = resolved
            .iter()
            .skip(1)
            .map(|name| Component::Literal(name.as_bytes().to_vec()))
            .collect();
        components.extend_from_slice(&self.components[literal_count..]);
        Some(PathPattern::normalised(components, self.only_itself))
    }

    /// The reference matcher: whether this pattern covers `path`, a normalised absolute path.
    /// A path that is not normalised (relative, empty components, trailing slash) is never
    /// covered.
    pub fn covers(&self, path: &[u8]) -> bool {
        split_normalised(path)
            .is_some_and(|names| covers_from(&self.components, &names, self.only_itself))
    }
}

/// The components of a normalised absolute path; `None` if it is not one.
fn split_normalised(path: &[u8]) -> Option<Vec<&[u8]>> {
    let rest = path.strip_prefix(b"/")?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let names: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
    let normalised = names
        .iter()
        .all(|n| !n.is_empty() && *n != b"." && *n != b"..");
    normalised.then_some(names)
}

fn covers_from(pattern: &[Component], names: &[&[u8]], only_itself: bool) -> bool {
    match pattern.split_first() {
        // The pattern matched a prefix: the path is that match or (unless the pattern is
        // only itself) lies beneath it.
        None => !only_itself || names.is_empty(),
        Some((Component::AnyDepth, rest)) => {
            (0..=names.len()).any(|skip| covers_from(rest, &names[skip..], only_itself))
        }
        Some((component, rest)) => names.split_first().is_some_and(|(name, tail)| {
            component.matches_name(name) && covers_from(rest, tail, only_itself)
        }),
    }
}

/// `*`/`?` matching of one name, with the usual backtracking to the last `*`.
fn glob_matches(tokens: &[GlobToken], name: &[u8]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while n < name.len() {
        match tokens.get(t) {
            Some(GlobToken::AnyRun) => {
                last_star = Some((t, n));
                t += 1;
            }
            Some(GlobToken::AnyByte) => {
                t += 1;
                n += 1;
            }
            Some(GlobToken::Byte(b)) if *b == name[n] => {
                t += 1;
                n += 1;
            }
            _ => match last_star {
                Some((star_t, star_n)) => {
                    last_star = Some((star_t, star_n + 1));
                    t = star_t + 1;
                    n = star_n + 1;
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|token| *token == GlobToken::AnyRun)
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.only_itself {
            f.write_str("=")?;
        }
        if self.components.is_empty() {
            return f.write_str("/");
        }
        for component in &self.components {
            f.write_str("/")?;
            match component {
                Component::Literal(name) => f.write_str(&String::from_utf8_lossy(name))?,
                Component::AnyDepth => f.write_str("**")?,
                Component::Glob(tokens) => {
                    let bytes: Vec<u8> = tokens
                        .iter()
                        .map(|token| match token {
                            GlobToken::Byte(b) => *b,
                            GlobToken::AnyByte => b'?',
                            GlobToken::AnyRun => b'*',
                        })
                        .collect();
                    f.write_str(&String::from_utf8_lossy(&bytes))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> PathPattern {
        PathEntry::parse(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
            .resolve(Path::new("/work/proj"), Some(Path::new("/home/u")))
            .unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    #[test]
    fn literal_entries_cover_their_subtree() {
        let usr = pattern("/usr");
        assert!(usr.covers(b"/usr"));
        assert!(usr.covers(b"/usr/bin/ls"));
        assert!(!usr.covers(b"/usrlocal"));
        assert!(!usr.covers(b"/"));
        assert!(pattern("/").covers(b"/"));
        assert!(pattern("/").covers(b"/etc/passwd"));
    }

    #[test]
    fn globs_follow_component_rules() {
        let env = pattern("**/.env");
        assert!(env.covers(b"/.env"));
        assert!(env.covers(b"/a/b/.env"));
        assert!(!env.covers(b"/a/b/.envrc"));
        let ssh = pattern("/home/*/.ssh");
        assert!(ssh.covers(b"/home/u/.ssh/id_rsa"));
        assert!(!ssh.covers(b"/home/.ssh"));
        assert!(!ssh.covers(b"/home/u/v/.ssh"));
        assert!(pattern("**").covers(b"/"));
        assert!(!pattern("/*").covers(b"/"));
        assert!(pattern("/*").covers(b"/x"));
        assert!(pattern("/tmp/f?o*").covers(b"/tmp/fxo"));
        assert!(!pattern("/tmp/f?o*").covers(b"/tmp/fo"));
    }

    #[test]
    fn only_itself_entries_leave_out_what_lies_beneath() {
        let dir = pattern("=/srv/app");
        assert!(dir.covers(b"/srv/app"));
        assert!(!dir.covers(b"/srv/app/.token"));
        assert!(!dir.covers(b"/srv"));
        let entries = pattern("=/srv/app/*");
        assert!(entries.covers(b"/srv/app/x"));
        assert!(!entries.covers(b"/srv/app/x/y"));
        assert!(!entries.covers(b"/srv/app"));
        let any = pattern("=**/node_modules");
        assert!(any.covers(b"/a/node_modules"));
        assert!(!any.covers(b"/a/node_modules/x"));
        assert!(pattern("=/").covers(b"/"));
        assert!(!pattern("=/").covers(b"/etc"));
        assert_eq!(pattern("=./app").to_string(), "=/work/proj/app");
        assert_eq!(pattern("=~").to_string(), "=/home/u");
        // A trailing `**` brings back everything beneath.
        assert_eq!(pattern("=/srv/**").to_string(), "/srv");
        assert!(pattern("=/srv/**").covers(b"/srv/a/b"));
        assert_eq!(PathEntry::parse("=/srv/app").unwrap().as_str(), "=/srv/app");
    }

    #[test]
    fn entries_resolve_and_normalise() {
        assert_eq!(
            pattern("./node_modules").to_string(),
            "/work/proj/node_modules"
        );
        assert_eq!(pattern("../x//./y/").to_string(), "/work/x/y");
        assert_eq!(pattern("~/.ssh").to_string(), "/home/u/.ssh");
        assert_eq!(pattern("~").to_string(), "/home/u");
        assert_eq!(pattern("/../../etc").to_string(), "/etc");
        assert_eq!(pattern("/tmp/**").to_string(), "/tmp");
        assert_eq!(pattern("/a/**/**/b").to_string(), "/a/**/b");
        assert_eq!(pattern("*.pem").to_string(), "/work/proj/*.pem");
    }

    #[test]
    fn working_directory_is_taken_literally() {
        let entry = PathEntry::parse("out").expect("parses");
        let resolved = entry.resolve(Path::new("/w/[x]*"), None).expect("resolves");
        assert!(resolved.covers(b"/w/[x]*/out"));
        assert!(!resolved.covers(b"/w/[x]y/out"));
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "",
            "=",
            "=/a/b**",
            "/a/b**",
            "/a/***",
            "/a/[ab]",
            "/a/{b,c}",
            "~root/x",
            "/a/*/../b",
        ] {
            assert!(PathEntry::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let home = PathEntry::parse("~/x").expect("parses");
        assert!(home.resolve(Path::new("/"), None).is_err());
    }
}
