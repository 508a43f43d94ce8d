//! What an `open` asks of its file, from its flags (x86_64 values), as the kernel decides it:
//! read by the log's replay (`report`, `learn`) and by the loader for Landlock's refusals.

pub const AT_FDCWD: i32 = -100;
pub const O_WRONLY: u64 = 0o1;
pub const O_RDWR: u64 = 0o2;
pub const O_CREAT: u64 = 0o100;
pub const O_TRUNC: u64 = 0o1000;
const O_ACCMODE: u64 = 0o3;
const O_PATH: u64 = 0o10000000;

/// A kind of access the policy decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenAccess {
    Read,
    Write,
    ReadWrite,
    /// Decided by nothing (`O_PATH`).
    None,
}

/// The access an open with `flags` needs.
pub fn open_access(flags: u64) -> OpenAccess {
    if flags & O_PATH != 0 {
        return OpenAccess::None;
    }
    let write = flags & O_TRUNC != 0 || flags & O_CREAT != 0;
    match (flags & O_ACCMODE, write) {
        (O_WRONLY, _) => OpenAccess::Write,
        (O_RDWR, _) | (_, true) => OpenAccess::ReadWrite,
        // O_RDONLY, and mode 3 (ioctl-only), which the kernel decides as a read.
        _ => OpenAccess::Read,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_name_the_access() {
        assert_eq!(open_access(0), OpenAccess::Read);
        assert_eq!(open_access(3), OpenAccess::Read);
        assert_eq!(open_access(O_WRONLY | O_TRUNC), OpenAccess::Write);
        assert_eq!(open_access(O_RDWR), OpenAccess::ReadWrite);
        assert_eq!(open_access(O_CREAT), OpenAccess::ReadWrite);
        assert_eq!(open_access(O_PATH | O_RDWR), OpenAccess::None);
    }
}
