//! Kernel modules for the guest's initramfs: the drivers the harness needs that a kernel
//! package ships as modules rather than built in, with their dependencies, decompressed
//! (busybox's `insmod` loads plain `.ko` files only).
//!
//! Debian's packages carry no `modules.dep` (depmod runs at install time), so dependencies
//! come from each module's own `.modinfo` section.

use std::{
    collections::{BTreeMap, HashSet},
    fs,
    path::Path,
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use object::{Object as _, ObjectSection as _};

/// What the guest needs from the kernel: virtio PCI transport and serial ports (the command's
/// stdout and stderr), 9p over virtio (the host's filesystem) and overlayfs (a writable tmpfs
/// layer over it).
pub const GUEST_DRIVERS: [&str; 5] = [
    "virtio_pci",
    "virtio_console",
    "9pnet_virtio",
    "9p",
    "overlay",
];

/// Copies the modules among `wanted` (and their dependencies) that the kernel tree at `moddir`
/// (`.../lib/modules/RELEASE`) does not have built in into `dest`, decompressed, and returns
/// their file names in load order (dependencies first).
pub fn install(moddir: &Path, wanted: &[&str], dest: &Path) -> Result<Vec<String>> {
    let tree = ModuleTree::read(moddir)?;
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut installer = Installer {
        tree: &tree,
        dest,
        seen: HashSet::new(),
        load_order: Vec::new(),
    };
    for name in wanted {
        installer.install(&normalize(name))?;
    }
    Ok(installer.load_order)
}

/// Module names treat `-` and `_` alike; the kernel reports them with `_`.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

struct ModuleTree<'a> {
    moddir: &'a Path,
    builtin: HashSet<String>,
    /// Shipped modules by name: their path relative to `moddir`, without compression suffix.
    shipped: BTreeMap<String, String>,
}

impl<'a> ModuleTree<'a> {
    fn read(moddir: &'a Path) -> Result<Self> {
        let list = |file: &str| -> Result<BTreeMap<String, String>> {
            let path = moddir.join(file);
            let text =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok(text
                .lines()
                .filter_map(|line| Some((module_name(line)?, line.to_owned())))
                .collect())
        };
        Ok(Self {
            moddir,
            builtin: list("modules.builtin")?.into_keys().collect(),
            shipped: list("modules.order")?,
        })
    }

    /// The module's ELF image, decompressed if the package ships it compressed.
    fn load(&self, relative: &str) -> Result<Vec<u8>> {
        let plain = self.moddir.join(relative);
        if plain.exists() {
            return fs::read(&plain).with_context(|| format!("reading {}", plain.display()));
        }
        let xz = self.moddir.join(format!("{relative}.xz"));
        if !xz.exists() {
            bail!(
                "{} is listed in modules.order but neither it nor {} exists (only xz-compressed \
                 modules are supported)",
                plain.display(),
                xz.display()
            );
        }
        let out = Command::new("xz")
            .args(["--decompress", "--stdout"])
            .arg(&xz)
            .output()
            .context("running xz (package xz-utils)")?;
        if !out.status.success() {
            bail!(
                "xz could not decompress {}: {}",
                xz.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out.stdout)
    }
}

/// `kernel/fs/9p/9p.ko` -> `9p`.
fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    Some(normalize(file.strip_suffix(".ko")?))
}

struct Installer<'a> {
    tree: &'a ModuleTree<'a>,
    dest: &'a Path,
    seen: HashSet<String>,
    load_order: Vec<String>,
}

impl Installer<'_> {
    fn install(&mut self, name: &str) -> Result<()> {
        if self.tree.builtin.contains(name) || !self.seen.insert(name.to_owned()) {
            return Ok(());
        }
        let Some(relative) = self.tree.shipped.get(name) else {
            bail!(
                "the kernel at {} neither has {name} built in nor ships it as a module; the VM \
                 harness needs it",
                self.tree.moddir.display()
            );
        };
        let image = self.tree.load(relative)?;
        for dependency in
            depends(&image).with_context(|| format!("reading the dependencies of {relative}"))?
        {
            self.install(&dependency)?;
        }
        let file = format!("{name}.ko");
        let target = self.dest.join(&file);
        fs::write(&target, &image).with_context(|| format!("writing {}", target.display()))?;
        self.load_order.push(file);
        Ok(())
    }
}

/// The `depends=` entry of a module's `.modinfo` section: the modules it needs loaded first.
fn depends(image: &[u8]) -> Result<Vec<String>> {
    let elf = object::File::parse(image).context("parsing the module as ELF")?;
    let section = elf
        .section_by_name(".modinfo")
        .context("the module has no .modinfo section")?;
    let data = section.data().context("reading .modinfo")?;
    Ok(data
        .split(|&byte| byte == 0)
        .filter_map(|entry| entry.strip_prefix(b"depends="))
        .flat_map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .map(normalize)
                .collect::<Vec<_>>()
        })
        .filter(|name| !name.is_empty())
        .collect())
}
