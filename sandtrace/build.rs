//! Compiles `sandtrace-ebpf` for the bpf target (nightly, `-Z build-std=core`, bpf-linker) and
//! leaves the object in OUT_DIR, from where `src/ebpf.rs` embeds it into the binary.
//! `cargo xtask setup` installs what this needs.

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let package = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "sandtrace-ebpf")
        .ok_or_else(|| anyhow!("sandtrace-ebpf is not in the workspace"))?;
    let root_dir = package
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("sandtrace-ebpf's manifest has no parent directory"))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: package.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the eBPF programs failed; run `cargo xtask setup` to install the nightly \
         rust-src component and bpf-linker",
    )
}
