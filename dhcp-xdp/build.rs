//! Builds the XDP program (`dhcp-xdp-ebpf`) with the nightly toolchain and bpf-linker, so that
//! `src/ebpf.rs` can embed it. `cargo xtask run|test` installs both when they are missing.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let meta = cargo_metadata()?;
    let ebpf = meta
        .iter()
        .find(|(name, _)| name == "dhcp-xdp-ebpf")
        .ok_or_else(|| anyhow!("dhcp-xdp-ebpf package not found in the workspace"))?;
    // The pinned nightly of the eBPF crate (its rust-toolchain.toml names it).
    let file = std::path::Path::new(&ebpf.1).join("rust-toolchain.toml");
    println!("cargo:rerun-if-changed={}", file.display());
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let channel = dhcp_xdp_common::toolchain::channel(&text)
        .ok_or_else(|| anyhow!("{} names no channel", file.display()))?
        .to_owned();
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "dhcp-xdp-ebpf",
            root_dir: &ebpf.1,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&channel),
    )
    .with_context(|| format!("building the XDP program needs the {channel} toolchain with rust-src and bpf-linker: run `cargo xtask test` or `cargo xtask run`, which install them"))
}

/// The eBPF crate sits next to this one; no need for the full cargo-metadata machinery.
fn cargo_metadata() -> anyhow::Result<Vec<(String, String)>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("manifest dir has no parent"))?
        .join("dhcp-xdp-ebpf");
    Ok(vec![("dhcp-xdp-ebpf".to_owned(), dir.display().to_string())])
}
