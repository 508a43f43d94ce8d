//! /proc/self/mountinfo: which file systems are mounted where.

use std::{fs, path::PathBuf};

use anyhow::{Context as _, Result};

/// One mount, from one line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The file-system type, e.g. `cgroup2`.
    pub fs_type: String,
    /// The root of the mount within its file system (`/` unless a sub-tree is mounted).
    pub root: String,
    /// Where it is mounted, unescaped.
    pub mount_point: PathBuf,
    /// The per-superblock options, e.g. `rw,pids` for a v1 pids hierarchy.
    pub super_options: String,
}

impl Mount {
    /// Whether `option` is one of the per-superblock options.
    pub fn has_super_option(&self, option: &str) -> bool {
        self.super_options.split(',').any(|o| o == option)
    }
}

/// The mounts of this process's mount namespace.
pub fn mounts() -> Result<Vec<Mount>> {
    let text =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(text.lines().filter_map(parse_line).collect())
}

/// Parses one mountinfo line; `None` if it is malformed.
pub fn parse_line(line: &str) -> Option<Mount> {
    // "36 25 0:31 / /sys/fs/cgroup rw,nosuid ... shared:9 - cgroup2 cgroup2 rw,..."
    // Optional fields (shared:9, ...) come before " - "; every field is escaped, so neither
    // side holds a separator of its own.
    let (left, right) = line.split_once(" - ")?;
    let mut left = left.split_whitespace().skip(3);
    let root = unescape(left.next()?);
    let mount_point = PathBuf::from(unescape(left.next()?));
    let mut right = right.split_whitespace();
    let fs_type = unescape(right.next()?);
    let super_options = right.nth(1).map(unescape).unwrap_or_default();
    Some(Mount {
        fs_type,
        root,
        mount_point,
        super_options,
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_on_both_sides_of_the_separator() {
        let line = "41 30 0:36 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:20 - \
                    cgroup cgroup rw,pids";
        let mount = parse_line(line).unwrap();
        assert_eq!(
            mount,
            Mount {
                fs_type: "cgroup".into(),
                root: "/".into(),
                mount_point: "/sys/fs/cgroup/pids".into(),
                super_options: "rw,pids".into(),
            }
        );
        assert!(mount.has_super_option("pids"));
        assert!(!mount.has_super_option("pid"));
        // No optional fields at all.
        let bare =
            parse_line("35 26 0:30 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw").unwrap();
        assert_eq!(bare.root, "/docker/abc");
        assert_eq!(bare.fs_type, "cgroup2");
        assert!(parse_line("35 26 0:30 / /mnt rw cgroup2").is_none());
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/a\134"), r"/a\");
        let mount = parse_line(r"1 2 0:3 / /run/my\040cg rw - cgroup2 none rw").unwrap();
        assert_eq!(mount.mount_point, PathBuf::from("/run/my cg"));
    }
}
