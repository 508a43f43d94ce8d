//! Installs, idempotently, what building the kernel programs needs: the nightly toolchain with
//! `rust-src` (for `-Z build-std=core`) and `bpf-linker` built against the LLVM that the
//! nightly toolchain itself ships (Debian's LLVM is too old); and the Debian packages sandtrace
//! links against.

use std::{
    env,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// The bpf-linker release known to work with the aya crates this workspace pins.
const BPF_LINKER_VERSION: &str = "0.13.0";
const NIGHTLY: &str = "nightly";
/// Debian packages the VM harness runs on the host: QEMU, the static busybox that becomes the
/// guest's early userland, and xz and zstd to unpack compressed kernels and modules.
const VM_PACKAGES: [&str; 4] = ["qemu-system-x86", "busybox-static", "xz-utils", "zstd"];
/// Debian packages building sandtrace needs: libseccomp's static library, which sandtrace
/// links (see `.cargo/config.toml`) to generate its seccomp filter.
const BUILD_PACKAGES: [&str; 1] = ["libseccomp-dev"];
/// Debian packages the benchmark's workloads and baseline run: perl drives the
/// microbenchmarks, gcc is the compile workload, strace the ptrace baseline.
const BENCH_PACKAGES: [&str; 3] = ["perl", "gcc", "strace"];
/// Debian packages the package-manager tests run in the VM (`tests/vm_package_managers.rs`):
/// composer 2 and the PHP it runs on. npm and node come with the machine (Debian's `nodejs`
/// and `npm` when they do not); pnpm comes from the npm registry ([`PNPM_MAJOR`]).
const PACKAGE_MANAGER_PACKAGES: [&str; 2] = ["composer", "php-cli"];
/// The pnpm release line the package-manager tests install (`npm install -g pnpm@12`).
const PNPM_MAJOR: &str = "12";

/// `~/.cargo/bin`, where `cargo install` puts bpf-linker.
pub fn cargo_bin_dir() -> PathBuf {
    match env::var_os("CARGO_HOME") {
        Some(home) => PathBuf::from(home).join("bin"),
        None => home_dir().join(".cargo/bin"),
    }
}

pub fn home_dir() -> PathBuf {
    env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Where xtask keeps what it downloads or generates (LLVM prefix, VM kernels, ...).
pub fn cache_dir() -> PathBuf {
    match env::var_os("XDG_CACHE_HOME") {
        Some(dir) => PathBuf::from(dir).join("sandtrace"),
        None => home_dir().join(".cache/sandtrace"),
    }
}

/// PATH with cargo's bin directory first, so the eBPF build finds bpf-linker.
pub fn path_with_cargo_bin() -> std::ffi::OsString {
    let mut dirs = vec![cargo_bin_dir()];
    if let Some(path) = env::var_os("PATH") {
        dirs.extend(env::split_paths(&path));
    }
    env::join_paths(dirs).expect("PATH entries contain no separator")
}

/// Runs `cmd` and returns its standard output; a failure carries its standard error.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn status(cmd: &mut Command) -> Result<()> {
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed ({st})");
    }
    Ok(())
}

pub fn ensure_ebpf_toolchain() -> Result<()> {
    ensure_apt_packages(&BUILD_PACKAGES, "to build sandtrace")?;
    ensure_nightly_rust_src()?;
    ensure_bpf_linker()
}

/// Adds clippy and rustfmt to the default toolchain when missing (the lint gate of
/// `cargo xtask test` runs them).
pub fn ensure_lint_components() -> Result<()> {
    let installed = output(Command::new("rustup").args(["component", "list", "--installed"]))
        .context("rustup is required to install clippy and rustfmt (https://rustup.rs)")?;
    let missing: Vec<&str> = ["clippy", "rustfmt"]
        .into_iter()
        .filter(|component| !installed.lines().any(|l| l.starts_with(component)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "xtask: adding {} (the lint gate runs them)",
        missing.join(" and ")
    );
    status(
        Command::new("rustup")
            .args(["component", "add"])
            .args(&missing),
    )
    .with_context(|| format!("adding {} with rustup", missing.join(" and ")))
}

fn ensure_nightly_rust_src() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).context(
        "rustup is required to build the kernel programs (https://rustup.rs); install it first",
    )?;
    if !toolchains.lines().any(|l| l.starts_with("nightly-")) {
        eprintln!("xtask: installing the nightly toolchain (needed for the eBPF build)");
        status(Command::new("rustup").args([
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))
        .context("installing the nightly toolchain")?;
    }
    let components = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]))?;
    if !components.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: adding rust-src to the nightly toolchain (for -Z build-std=core)");
        status(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            NIGHTLY,
        ]))
        .context("adding the rust-src component to the nightly toolchain")?;
    }
    Ok(())
}

fn installed_bpf_linker_version() -> Option<String> {
    let linker = cargo_bin_dir().join("bpf-linker");
    let out = Command::new(linker).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1).map(str::to_owned)
}

fn ensure_bpf_linker() -> Result<()> {
    if installed_bpf_linker_version().as_deref() == Some(BPF_LINKER_VERSION) {
        return Ok(());
    }
    let sysroot =
        output(Command::new("rustc").args([&format!("+{NIGHTLY}"), "--print", "sysroot"]))?;
    let libdir = Path::new(sysroot.trim()).join("lib");
    let (lib, major) = find_shared_llvm(&libdir)?;
    // bpf-linker links against `libLLVM.so` under LLVM_PREFIX/lib; point that at the
    // toolchain's own copy, under both the generic and the versioned name.
    let prefix = cache_dir().join("llvm");
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    let file_name = lib.file_name().expect("library path has a file name");
    for name in [std::ffi::OsStr::new("libLLVM.so"), file_name] {
        let link = prefix_lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&lib, &link)
            .with_context(|| format!("linking {} to {}", link.display(), lib.display()))?;
    }
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against {} (about 2 minutes, once)",
        lib.display()
    );
    status(
        Command::new("cargo")
            .args([
                &format!("+{NIGHTLY}"),
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .env("LLVM_PREFIX", &prefix)
            .env("LD_LIBRARY_PATH", &prefix_lib),
    )
    .context("installing bpf-linker (needs crates.io and a C compiler)")?;
    match installed_bpf_linker_version() {
        Some(v) if v == BPF_LINKER_VERSION => Ok(()),
        other => bail!(
            "bpf-linker {BPF_LINKER_VERSION} was installed but `{} --version` reports {other:?}",
            cargo_bin_dir().join("bpf-linker").display()
        ),
    }
}

/// Finds `libLLVM.so.<major>.<minor>-rust-...` in the toolchain's lib directory.
fn find_shared_llvm(libdir: &Path) -> Result<(PathBuf, u32)> {
    let entries =
        std::fs::read_dir(libdir).with_context(|| format!("reading {}", libdir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix("libLLVM.so.")
            && let Some(major) = rest.split('.').next().and_then(|m| m.parse().ok())
        {
            return Ok((entry.path(), major));
        }
    }
    bail!(
        "no shared LLVM library (libLLVM.so.N...) in {}: the nightly toolchain normally ships \
         one; reinstall it with `rustup toolchain install nightly`",
        libdir.display()
    )
}

/// Installs the Debian packages the VM harness needs (see [`VM_PACKAGES`]) when any is missing.
pub fn ensure_vm_packages() -> Result<()> {
    ensure_apt_packages(&VM_PACKAGES, "by the VM harness")
}

/// Installs the Debian packages the benchmark needs (see [`BENCH_PACKAGES`]) when any is
/// missing.
pub fn ensure_bench_packages() -> Result<()> {
    ensure_apt_packages(&BENCH_PACKAGES, "by the benchmark")
}

/// Installs what the package-manager tests run (see [`PACKAGE_MANAGER_PACKAGES`]): composer
/// and php from Debian, npm and node from Debian when the machine has no npm, and pnpm
/// [`PNPM_MAJOR`] globally from the npm registry (as `npm install -g pnpm` puts it, in
/// `/usr/lib/node_modules/pnpm`, which the example policies name) when no such pnpm runs.
pub fn ensure_package_managers() -> Result<()> {
    ensure_apt_packages(&PACKAGE_MANAGER_PACKAGES, "by the package-manager tests")?;
    if !program_runs("npm") {
        ensure_apt_packages(&["nodejs", "npm"], "by the package-manager tests")?;
    }
    let pnpm_version = output(Command::new("pnpm").arg("--version")).unwrap_or_default();
    if pnpm_version.split('.').next() == Some(PNPM_MAJOR) {
        return Ok(());
    }
    eprintln!("xtask: installing pnpm {PNPM_MAJOR} with npm (needed by the package-manager tests)");
    status(Command::new("npm").args([
        "install",
        "--global",
        "--no-audit",
        "--no-fund",
        &format!("pnpm@{PNPM_MAJOR}"),
    ]))
    .context("installing pnpm with `npm install --global` (needs root and the npm registry)")?;
    output(Command::new("pnpm").arg("--version"))
        .map(drop)
        .context("pnpm does not run after `npm install --global pnpm`")
}

fn program_runs(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success())
}

/// Installs whichever of `packages` are not installed yet; `needed` completes "needed ...".
fn ensure_apt_packages(packages: &[&str], needed: &str) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| !deb_installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {} (needed {needed})", missing.join(" "));
    apt_get_update()?;
    run_apt_get(|| {
        let mut cmd = apt_get();
        cmd.args(["install", "--yes", "--no-install-recommends", "--quiet"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    })
    .with_context(|| {
        format!(
            "installing {} with apt-get (needs root on Debian)",
            missing.join(" ")
        )
    })
}

fn deb_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["--show", "--showformat=${db:Status-Status}", package])
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout == b"installed")
}

/// Refreshes apt's package lists, at most once per xtask run: callers use it when a package
/// they look for is missing, which a stale or never-fetched list explains. Returns whether it
/// refreshed them now (false: this run already did).
pub fn apt_get_update() -> Result<bool> {
    static DONE: OnceLock<()> = OnceLock::new();
    if DONE.get().is_some() {
        return Ok(false);
    }
    eprintln!("xtask: refreshing apt's package lists (apt-get update)");
    run_apt_get(|| {
        let mut cmd = apt_get();
        cmd.args(["update", "--quiet"]);
        cmd
    })
    .context("running apt-get update (needs root and a network connection)")?;
    let _ = DONE.set(());
    Ok(true)
}

/// How long apt-get waits for another apt or dpkg (a fresh machine often runs one at boot).
const APT_LOCK_WAIT: Duration = Duration::from_secs(600);

/// `apt-get` waiting up to [`APT_LOCK_WAIT`] for dpkg's lock instead of failing at once.
pub fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.arg("--option")
        .arg(format!("DPkg::Lock::Timeout={}", APT_LOCK_WAIT.as_secs()));
    cmd
}

/// Runs the apt-get command `make` builds, copying its standard error through; when it fails
/// because another process holds one of apt's locks (`DPkg::Lock::Timeout` covers dpkg's
/// lock, not the package lists' or the archive cache's), runs it again every few seconds
/// until [`APT_LOCK_WAIT`] has passed.
pub fn run_apt_get(make: impl Fn() -> Command) -> Result<()> {
    let started = Instant::now();
    loop {
        let mut cmd = make();
        cmd.stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("running {cmd:?}"))?;
        let mut locked = false;
        for line in BufReader::new(child.stderr.take().expect("stderr is piped")).lines() {
            let Ok(line) = line else { break };
            locked |= line.contains("Could not get lock") || line.contains("Unable to lock");
            eprintln!("{line}");
        }
        let st = child
            .wait()
            .with_context(|| format!("waiting for {cmd:?}"))?;
        if st.success() {
            return Ok(());
        }
        if !locked || started.elapsed() >= APT_LOCK_WAIT {
            bail!("{cmd:?} failed ({st})");
        }
        eprintln!("xtask: another apt or dpkg holds its lock; trying again in 5 s");
        std::thread::sleep(Duration::from_secs(5));
    }
}
