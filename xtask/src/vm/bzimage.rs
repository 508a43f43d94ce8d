//! Reading an x86 bzImage (what `/boot/vmlinuz-*` is): the release string in its setup header,
//! and the compressed ELF kernel it wraps.
//!
//! The harness boots that ELF kernel through its PVH entry point when it has one: the guest
//! then skips decompressing itself, which under emulation costs about a second for zstd and
//! three or more for xz (Debian's 6.1).

use std::{
    fs::{self, File},
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};
use object::read::elf::{ElfFile64, ProgramHeader as _};

/// `XEN_ELFNOTE_PHYS32_ENTRY`: the PVH entry point QEMU needs to boot an ELF kernel.
const PVH_ENTRY_NOTE: u32 = 18;

pub struct BzImage {
    bytes: Vec<u8>,
    path: String,
}

impl BzImage {
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let image = Self {
            bytes,
            path: path.display().to_string(),
        };
        if image.bytes.get(0x202..0x206) != Some(b"HdrS") {
            bail!("{} is not a bzImage (no HdrS setup header)", image.path);
        }
        Ok(image)
    }

    fn u16_at(&self, offset: usize) -> Result<u16> {
        let bytes = self
            .bytes
            .get(offset..offset + 2)
            .with_context(|| self.truncated())?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    fn u32_at(&self, offset: usize) -> Result<u32> {
        let bytes = self
            .bytes
            .get(offset..offset + 4)
            .with_context(|| self.truncated())?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("four bytes")))
    }

    fn truncated(&self) -> String {
        format!("{} is a truncated bzImage", self.path)
    }

    /// The kernel release (`uname -r`), from the header's `kernel_version` string.
    pub fn release(&self) -> Result<String> {
        let start = usize::from(self.u16_at(0x20e)?) + 0x200;
        let version = self.bytes.get(start..).with_context(|| self.truncated())?;
        let end = version
            .iter()
            .position(|&b| b == 0 || b == b' ')
            .with_context(|| self.truncated())?;
        Ok(String::from_utf8_lossy(&version[..end]).into_owned())
    }

    /// Writes the ELF kernel inside to `dest` and returns true when QEMU can boot it directly:
    /// its compression is one the host can undo (xz, zstd) and it has a PVH entry point.
    /// `scratch` is a directory for the compressed payload.
    pub fn write_pvh_kernel(&self, scratch: &Path, dest: &Path) -> Result<bool> {
        let setup_sectors = match self.bytes.get(0x1f1).with_context(|| self.truncated())? {
            0 => 4,
            n => usize::from(*n),
        };
        let offset = (setup_sectors + 1) * 512 + self.u32_at(0x248)? as usize;
        let length = self.u32_at(0x24c)? as usize;
        let payload = self
            .bytes
            .get(offset..offset + length)
            .with_context(|| self.truncated())?;
        // The build appends the uncompressed size (4 bytes) to the compressed stream.
        let (tool, args, stream): (_, &[&str], _) = match payload {
            [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => (
                "xz",
                &["--decompress", "--stdout", "--single-stream"],
                payload,
            ),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => (
                "zstd",
                &["--decompress", "--stdout", "--quiet"],
                &payload[..length - 4],
            ),
            _ => return Ok(false),
        };
        let compressed = scratch.join("payload");
        fs::write(&compressed, stream)
            .with_context(|| format!("writing {}", compressed.display()))?;
        let output = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
        let status = Command::new(tool)
            .args(args)
            .arg(&compressed)
            .stdout(Stdio::from(output))
            .status()
            .with_context(|| format!("running {tool} (packages xz-utils and zstd)"))?;
        fs::remove_file(&compressed)?;
        if !status.success() {
            bail!(
                "{tool} could not decompress the kernel inside {} ({status})",
                self.path
            );
        }
        let elf = fs::read(dest).with_context(|| format!("reading {}", dest.display()))?;
        if has_pvh_entry(&elf)
            .with_context(|| format!("reading the ELF kernel inside {}", self.path))?
        {
            return Ok(true);
        }
        fs::remove_file(dest)?;
        Ok(false)
    }
}

fn has_pvh_entry(elf: &[u8]) -> Result<bool> {
    let file = ElfFile64::<object::Endianness>::parse(elf)?;
    let endian = file.endian();
    for header in file.elf_program_headers() {
        let Some(mut notes) = header.notes(endian, elf)? else {
            continue;
        };
        while let Some(note) = notes.next()? {
            if note.name() == b"Xen" && note.n_type(endian) == PVH_ENTRY_NOTE {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
