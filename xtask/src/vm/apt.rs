//! Debian's kernel packages through apt: finding the newest of a series by name, downloading
//! and unpacking one. Names carry an ABI number or the full version and change with every
//! kernel update, so they are looked up at run time rather than written down.

use std::{
    cmp::Ordering,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo::run_checked, setup};

/// One build of a Debian kernel image package.
#[derive(Debug, Clone)]
pub struct KernelPackage {
    pub name: String,
    pub version: String,
}

impl KernelPackage {
    /// Names the package's build uniquely and is safe as a file name.
    pub fn cache_key(&self) -> String {
        format!("{}_{}", self.name, self.version).replace(':', "%3a")
    }

    /// The fields of a local `.deb` file.
    pub fn of_deb(deb: &Path) -> Result<Self> {
        let fields = setup::output(
            Command::new("dpkg-deb")
                .arg("--field")
                .arg(deb)
                .args(["Package", "Version"]),
        )
        .with_context(|| format!("reading the package fields of {}", deb.display()))?;
        let field = |key: &str| {
            fields
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(": "))
                .map(str::to_owned)
                .with_context(|| format!("{} has no {key} field", deb.display()))
        };
        Ok(Self {
            name: field("Package")?,
            version: field("Version")?,
        })
    }
}

/// The newest generic, unsigned amd64 image of kernel series `series` (like `6.1`) that apt can
/// install, refreshing apt's lists once if none is known.
pub fn newest_in_series(series: &str) -> Result<KernelPackage> {
    if let Some(package) = newest_known(series)? {
        return Ok(package);
    }
    setup::apt_get_update()?;
    newest_known(series)?.with_context(|| {
        format!(
            "apt knows no package linux-image-{series}.*-amd64-unsigned: add an apt source that \
             has Linux {series} (see the README's VM section), or pass --kernel PATH to a .deb"
        )
    })
}

fn newest_known(series: &str) -> Result<Option<KernelPackage>> {
    let pattern = format!("^linux-image-{}\\.", series.replace('.', "\\."));
    // One apt call for names and versions: each call loads apt's whole cache (half a second).
    let records = setup::output(Command::new("apt-cache").args([
        "search",
        "--names-only",
        "--full",
        &pattern,
    ]))
    .context("looking up kernel packages with apt-cache (the VM harness needs Debian's apt)")?;
    Ok(records
        .split("\n\n")
        .filter_map(|record| {
            let field = |key: &str| {
                record
                    .lines()
                    .find_map(|line| line.strip_prefix(key))
                    .map(str::to_owned)
            };
            Some(KernelPackage {
                name: field("Package: ")?,
                version: field("Version: ")?,
            })
        })
        .filter(|package| is_generic_image(&package.name, series))
        .max_by(|a, b| {
            natural_cmp(&a.name, &b.name).then_with(|| natural_cmp(&a.version, &b.version))
        }))
}

/// Whether `name` is `linux-image-SERIES.N-ABI-amd64-unsigned` (Debian 12's naming) or
/// `linux-image-SERIES.N+debR-amd64-unsigned` (newer kernels' naming), and not a cloud, rt or
/// debug flavour.
fn is_generic_image(name: &str, series: &str) -> bool {
    let Some(rest) = name
        .strip_prefix("linux-image-")
        .and_then(|rest| rest.strip_suffix("-amd64-unsigned"))
        .and_then(|rest| rest.strip_prefix(series))
        .and_then(|rest| rest.strip_prefix('.'))
    else {
        return false;
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let minor_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (minor, tail) = rest.split_at(minor_end);
    all_digits(minor)
        && (tail.strip_prefix('-').is_some_and(all_digits)
            || tail.strip_prefix("+deb").is_some_and(all_digits))
}

/// Orders strings by their runs of digits as numbers, so `6.1.0-9` sorts before `6.1.0-56`.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        let (Some(ca), Some(cb)) = (a.chars().next(), b.chars().next()) else {
            return a.len().cmp(&b.len());
        };
        let ordering = if ca.is_ascii_digit() && cb.is_ascii_digit() {
            let (na, ra) = split_digits(a);
            let (nb, rb) = split_digits(b);
            (a, b) = (ra, rb);
            let (na, nb) = (na.trim_start_matches('0'), nb.trim_start_matches('0'));
            na.len().cmp(&nb.len()).then_with(|| na.cmp(nb))
        } else {
            (a, b) = (&a[ca.len_utf8()..], &b[cb.len_utf8()..]);
            ca.cmp(&cb)
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
}

fn split_digits(s: &str) -> (&str, &str) {
    s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()))
}

/// Downloads `package` into `dir` and returns the `.deb`'s path.
pub fn download(package: &KernelPackage, dir: &Path) -> Result<PathBuf> {
    let spec = format!("{}={}", package.name, package.version);
    setup::run_apt_get(|| {
        let mut cmd = setup::apt_get();
        // Root downloads into a directory the `_apt` user may not write: say it is fine.
        cmd.args([
            "download",
            "--quiet",
            "--quiet",
            "--option",
            "APT::Sandbox::User=root",
        ])
        .arg(&spec)
        .current_dir(dir);
        cmd
    })
    .with_context(|| format!("downloading {spec} with apt-get"))?;
    let mut debs = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "deb"));
    match (debs.next(), debs.next()) {
        (Some(deb), None) => Ok(deb),
        _ => bail!(
            "apt-get download {spec} did not leave exactly one .deb in {}",
            dir.display()
        ),
    }
}

/// Unpacks the files of `deb` under `dir`.
pub fn extract(deb: &Path, dir: &Path) -> Result<()> {
    run_checked(Command::new("dpkg-deb").arg("--extract").arg(deb).arg(dir))
        .with_context(|| format!("unpacking {}", deb.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_images_of_both_naming_schemes_match_their_series_only() {
        assert!(is_generic_image(
            "linux-image-6.1.0-56-amd64-unsigned",
            "6.1"
        ));
        assert!(is_generic_image(
            "linux-image-6.12.117+deb12-amd64-unsigned",
            "6.12"
        ));
        assert!(!is_generic_image(
            "linux-image-6.12.117+deb12-amd64-unsigned",
            "6.1"
        ));
        assert!(!is_generic_image(
            "linux-image-6.1.0-56-cloud-amd64-unsigned",
            "6.1"
        ));
        assert!(!is_generic_image(
            "linux-image-6.1.0-56-rt-amd64-unsigned",
            "6.1"
        ));
        assert!(!is_generic_image("linux-image-6.1.0-56-amd64", "6.1"));
        assert!(!is_generic_image("linux-image-6.1.0-56-amd64-dbg", "6.1"));
    }

    #[test]
    fn natural_order_compares_numbers_by_value() {
        let mut names = vec![
            "linux-image-6.1.0-56-amd64-unsigned",
            "linux-image-6.1.0-9-amd64-unsigned",
            "linux-image-6.1.0-100-amd64-unsigned",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "linux-image-6.1.0-9-amd64-unsigned",
                "linux-image-6.1.0-56-amd64-unsigned",
                "linux-image-6.1.0-100-amd64-unsigned",
            ]
        );
        assert_eq!(
            natural_cmp("6.12.117+deb12", "6.12.115+deb12"),
            Ordering::Greater
        );
    }
}
