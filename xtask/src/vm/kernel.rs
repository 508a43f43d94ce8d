//! Kernels to boot: which one the user chose, and making it ready (downloaded, unpacked to
//! what booting needs, paired with an initramfs) in the cache, once per package version.
//!
//! Cache layout under `setup::cache_dir()/vm/`:
//! - `kernels/PACKAGE_VERSION/`: `vmlinux` (the ELF kernel, booted through its PVH entry) or,
//!   when the kernel cannot boot that way, `vmlinuz`; `config`, `release`, `modules/*.ko` with
//!   their load order in `modules.load`, and `initramfs-FINGERPRINT.cpio`;
//! - `builtin-drivers/initramfs-FINGERPRINT.cpio`: the module-less initramfs for bzImages.

use std::{
    fs,
    path::{Path, PathBuf},
    str::FromStr,
};

use anyhow::{Context as _, Result, bail};

use super::{
    apt::{self, KernelPackage},
    bzimage::BzImage,
    initramfs, modules,
};
use crate::setup;

/// The kernel series `vm-test` boots by default: Debian's long-term-support kernels.
pub const SUPPORTED_SERIES: [&str; 2] = ["6.1", "6.12"];
/// The series `cargo xtask vm` boots without `--kernel`: the newest, and the faster to boot.
pub const DEFAULT_SERIES: &str = "6.12";

/// The guest's LSMs, BPF LSM included: older kernels such as Debian's 6.1 leave `bpf` out of
/// their default list. The same list as on the project's hosts keeps guests comparable.
pub const LSM_LIST: &str = "lockdown,capability,landlock,bpf";

#[derive(Debug, Clone)]
pub enum KernelChoice {
    /// A kernel series such as `6.12`: the newest Debian package of it.
    Series(String),
    /// A Debian `linux-image-*.deb` file.
    Deb(PathBuf),
    /// A bzImage with the guest's drivers built in.
    Image(PathBuf),
}

impl FromStr for KernelChoice {
    type Err = anyhow::Error;

    fn from_str(arg: &str) -> Result<Self> {
        let is_series = arg.split('.').count() == 2
            && arg
                .split('.')
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
        if is_series {
            return Ok(Self::Series(arg.to_owned()));
        }
        let path = PathBuf::from(arg);
        if !path.is_file() {
            bail!("--kernel {arg}: neither a kernel series like 6.12 nor an existing file");
        }
        if path.extension().is_some_and(|ext| ext == "deb") {
            Ok(Self::Deb(path))
        } else {
            Ok(Self::Image(path))
        }
    }
}

/// A kernel ready to boot.
#[derive(Debug)]
pub struct Kernel {
    /// `uname -r` in the guest, like `6.1.0-56-amd64`.
    pub release: String,
    /// Where it came from, for messages: the package and version, or the image file.
    pub origin: String,
    pub image: PathBuf,
    pub initramfs: PathBuf,
}

/// Makes the chosen kernel ready, downloading and unpacking it on first use.
pub fn prepare(choice: &KernelChoice) -> Result<Kernel> {
    match choice {
        KernelChoice::Series(series) => {
            match prepare_package(&apt::newest_in_series(series)?, None) {
                // Stale package lists name files the mirror has dropped: refresh them, look again.
                Err(err) if setup::apt_get_update()? => {
                    eprintln!("xtask: {err:#}\nxtask: retrying with refreshed package lists");
                    prepare_package(&apt::newest_in_series(series)?, None)
                }
                prepared => prepared,
            }
        }
        KernelChoice::Deb(deb) => prepare_package(&KernelPackage::of_deb(deb)?, Some(deb)),
        KernelChoice::Image(image) => prepare_image(image),
    }
}

fn vm_cache() -> PathBuf {
    setup::cache_dir().join("vm")
}

/// A Debian package, from `deb` or else downloaded with apt.
fn prepare_package(package: &KernelPackage, deb: Option<&Path>) -> Result<Kernel> {
    let origin = format!("{} {}", package.name, package.version);
    let dir = vm_cache().join("kernels").join(package.cache_key());
    if !dir.exists() {
        unpack_package(package, deb, &dir).with_context(|| format!("preparing {origin}"))?;
    }
    let read = |file: &str| {
        let path = dir.join(file);
        fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (remove {} to prepare the kernel again)",
                path.display(),
                dir.display()
            )
        })
    };
    let release = read("release")?.trim().to_owned();
    let load_order: Vec<String> = read("modules.load")?
        .lines()
        .filter(|module| !module.is_empty())
        .map(str::to_owned)
        .collect();
    let initramfs = initramfs::ensure(&dir, &dir.join("modules"), &load_order)?;
    let pvh_kernel = dir.join("vmlinux");
    let image = if pvh_kernel.exists() {
        pvh_kernel
    } else {
        dir.join("vmlinuz")
    };
    Ok(Kernel {
        release,
        origin,
        image,
        initramfs,
    })
}

/// Unpacks what booting `package` needs into `dir`, through a private staging directory that is
/// renamed into place, so an interrupted or concurrent preparation never leaves half a kernel.
fn unpack_package(package: &KernelPackage, deb: Option<&Path>, dir: &Path) -> Result<()> {
    let parent = dir
        .parent()
        .expect("kernel directories live under the cache");
    let staging = StagingDir::create(parent, &package.cache_key())?;
    let download = staging.path.join("download");
    let tree = staging.path.join("tree");
    let kernel = staging.path.join("kernel");
    for path in [&download, &tree, &kernel] {
        fs::create_dir(path).with_context(|| format!("creating {}", path.display()))?;
    }
    let deb = match deb {
        Some(deb) => deb.to_owned(),
        None => {
            eprintln!(
                "xtask: downloading {} {} (once; cached in {})",
                package.name,
                package.version,
                parent.display()
            );
            apt::download(package, &download)?
        }
    };
    apt::extract(&deb, &tree)?;

    let release = single_entry(&tree.join("lib/modules"))?;
    let config = tree.join(format!("boot/config-{release}"));
    let config_text =
        fs::read_to_string(&config).with_context(|| format!("reading {}", config.display()))?;
    if !config_text.lines().any(|line| line == "CONFIG_BPF_LSM=y") {
        bail!(
            "{} {} is not built with CONFIG_BPF_LSM=y",
            package.name,
            package.version
        );
    }
    let vmlinuz = tree.join(format!("boot/vmlinuz-{release}"));
    if !BzImage::read(&vmlinuz)?.write_pvh_kernel(&staging.path, &kernel.join("vmlinux"))? {
        fs::copy(&vmlinuz, kernel.join("vmlinuz"))
            .with_context(|| format!("copying {}", vmlinuz.display()))?;
    }
    fs::copy(&config, kernel.join("config"))
        .with_context(|| format!("copying {}", config.display()))?;
    let load_order = modules::install(
        &tree.join("lib/modules").join(&release),
        &modules::GUEST_DRIVERS,
        &kernel.join("modules"),
    )?;
    let load_list: String = load_order
        .iter()
        .map(|module| format!("{module}\n"))
        .collect();
    fs::write(kernel.join("modules.load"), load_list)?;
    fs::write(kernel.join("release"), format!("{release}\n"))?;

    match fs::rename(&kernel, dir) {
        Ok(()) => Ok(()),
        // Another xtask prepared the same kernel meanwhile; theirs is as good as ours.
        Err(_) if dir.join("release").exists() => Ok(()),
        Err(err) => Err(err).with_context(|| format!("moving the kernel into {}", dir.display())),
    }
}

/// The only entry of `dir` (a package installs modules for exactly one kernel release).
fn single_entry(dir: &Path) -> Result<String> {
    let names: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("reading {} (is this a linux-image package?)", dir.display()))?
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    match names.as_slice() {
        [name] => Ok(name.clone()),
        _ => bail!(
            "expected one kernel release in {}, found {names:?}",
            dir.display()
        ),
    }
}

/// A directory under the cache removed on drop, whether preparation finished or failed.
struct StagingDir {
    path: PathBuf,
}

impl StagingDir {
    fn create(parent: &Path, key: &str) -> Result<Self> {
        let path = parent.join(format!(".{key}.{}.partial", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path)
                .with_context(|| format!("removing the stale {}", path.display()))?;
        }
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A bzImage: boots with an initramfs without modules, so the guest's drivers must be built in.
fn prepare_image(image: &Path) -> Result<Kernel> {
    let release = BzImage::read(image)?.release()?;
    let dir = vm_cache().join("builtin-drivers");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let initramfs = initramfs::ensure(&dir, &dir, &[])?;
    let image =
        fs::canonicalize(image).with_context(|| format!("resolving {}", image.display()))?;
    Ok(Kernel {
        release,
        origin: image.display().to_string(),
        image,
        initramfs,
    })
}
