//! The guest's initramfs: the host's static busybox, the driver modules a kernel needs and
//! `init.sh` as `/init`, in the kernel's `newc` cpio format. It stays uncompressed: the guest
//! would decompress it under emulation, which costs more than reading the larger file.

use std::{
    collections::hash_map::DefaultHasher,
    fs::{self, File},
    hash::{Hash as _, Hasher as _},
    io::{BufWriter, Write},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

const INIT_SCRIPT: &str = include_str!("init.sh");
/// Installed by the `busybox-static` package (see `setup::ensure_vm_packages`); static, so it
/// runs before the host's libraries are reachable.
const BUSYBOX: &str = "/bin/busybox";

/// Returns an initramfs holding the modules in `modules_dir` named by `load_order` (loaded in
/// that order), building it in `dir` unless one with the same contents is there already.
/// Images are named by a fingerprint of their inputs, so a changed `init.sh` or busybox
/// replaces the cached image.
pub fn ensure(dir: &Path, modules_dir: &Path, load_order: &[String]) -> Result<PathBuf> {
    let busybox = fs::metadata(BUSYBOX)
        .with_context(|| format!("{BUSYBOX} is missing: install the busybox-static package"))?;
    let mut fingerprint = DefaultHasher::new();
    (
        INIT_SCRIPT,
        busybox.len(),
        busybox.mtime(),
        busybox.mtime_nsec(),
        load_order,
    )
        .hash(&mut fingerprint);
    for module in load_order {
        let path = modules_dir.join(module);
        let len = fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        len.hash(&mut fingerprint);
    }
    let image = dir.join(format!("initramfs-{:016x}.cpio", fingerprint.finish()));
    if image.exists() {
        return Ok(image);
    }
    remove_stale_images(dir)?;
    let partial = dir.join(format!(".initramfs.{}.partial", std::process::id()));
    write_image(&partial, modules_dir, load_order)
        .with_context(|| format!("building the initramfs {}", image.display()))?;
    fs::rename(&partial, &image)
        .with_context(|| format!("moving {} into place", image.display()))?;
    Ok(image)
}

fn remove_stale_images(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("initramfs-") && name.ends_with(".cpio") {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

fn write_image(path: &Path, modules_dir: &Path, load_order: &[String]) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut cpio = CpioWriter::new(BufWriter::new(file));
    for dir in [
        "bin",
        "dev",
        "etc",
        "lib",
        "lib/modules",
        "mnt",
        "mnt/host",
        "mnt/root",
        "mnt/rw",
        "proc",
        "sys",
    ] {
        cpio.directory(dir)?;
    }
    // The kernel opens /dev/console for init before init can mount devtmpfs.
    cpio.char_device("dev/console", 5, 1)?;
    let busybox = fs::read(BUSYBOX).with_context(|| format!("reading {BUSYBOX}"))?;
    cpio.file("bin/busybox", 0o755, &busybox)?;
    cpio.file("init", 0o755, INIT_SCRIPT.as_bytes())?;
    let mut load_list = String::new();
    for module in load_order {
        let source = modules_dir.join(module);
        let image = fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
        cpio.file(&format!("lib/modules/{module}"), 0o644, &image)?;
        load_list.push_str(module);
        load_list.push('\n');
    }
    cpio.file("etc/modules.load", 0o644, load_list.as_bytes())?;
    cpio.finish()?
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?
        .sync_all()?;
    Ok(())
}

/// Writes the `newc` (SVR4, no checksum) cpio format that the kernel unpacks into its rootfs.
struct CpioWriter<W: Write> {
    out: W,
    next_inode: u32,
    written: usize,
}

impl<W: Write> CpioWriter<W> {
    const FILE: u32 = 0o100_000;
    const DIRECTORY: u32 = 0o040_000;
    const CHAR_DEVICE: u32 = 0o020_000;

    fn new(out: W) -> Self {
        Self {
            out,
            next_inode: 1,
            written: 0,
        }
    }

    fn directory(&mut self, name: &str) -> Result<()> {
        self.entry(name, Self::DIRECTORY | 0o755, 2, (0, 0), &[])
    }

    fn file(&mut self, name: &str, permissions: u32, data: &[u8]) -> Result<()> {
        self.entry(name, Self::FILE | permissions, 1, (0, 0), data)
    }

    fn char_device(&mut self, name: &str, major: u32, minor: u32) -> Result<()> {
        self.entry(name, Self::CHAR_DEVICE | 0o600, 1, (major, minor), &[])
    }

    fn finish(mut self) -> Result<W> {
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[])?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        links: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<()> {
        let inode = self.next_inode;
        self.next_inode += 1;
        let size = u32::try_from(data.len()).context("an initramfs file is larger than 4 GiB")?;
        let name_size = u32::try_from(name.len() + 1).context("file name too long")?;
        let header = format!(
            "070701{inode:08x}{mode:08x}{uid:08x}{gid:08x}{links:08x}{mtime:08x}{size:08x}\
             {major:08x}{minor:08x}{rmajor:08x}{rminor:08x}{name_size:08x}{check:08x}",
            uid = 0,
            gid = 0,
            mtime = 0,
            major = 0,
            minor = 0,
            rmajor = rdev.0,
            rminor = rdev.1,
            check = 0,
        );
        self.write(header.as_bytes())?;
        self.write(name.as_bytes())?;
        self.write(&[0])?;
        self.pad()?;
        self.write(data)?;
        self.pad()
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len();
        Ok(())
    }

    /// Header+name and data each end on a 4-byte boundary.
    fn pad(&mut self) -> Result<()> {
        let padding = (4 - self.written % 4) % 4;
        self.write(&[0; 3][..padding])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_entries_are_aligned_and_end_with_the_trailer() {
        let mut cpio = CpioWriter::new(Vec::new());
        cpio.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        let bytes = cpio.finish().unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("070701"), "{text:?}");
        // Header (110 bytes) + "init\0" padded to 116, then 10 bytes of data padded to 12.
        assert_eq!(&bytes[110..115], b"init\0");
        assert_eq!(&bytes[116..126], b"#!/bin/sh\n");
        assert_eq!(&bytes[128..134], b"070701");
        assert!(text.contains("TRAILER!!!\0"), "{text:?}");
        assert_eq!(bytes.len() % 4, 0);
        // Mode field of the first entry: a regular file with permissions 0755.
        assert_eq!(&bytes[14..22], b"000081ed");
    }
}
