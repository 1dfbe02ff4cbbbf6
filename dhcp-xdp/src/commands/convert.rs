//! `dhcp-xdp convert`: another server's configuration as ours.

use anyhow::Context as _;

/// `dhcp-xdp convert`: another server's configuration as ours.
pub fn convert(
    file: &std::path::Path,
    with: fn(&str) -> Result<dhcp_xdp_core::migrate::convert::Converted, String>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let c =
        with(&text).map_err(|e| anyhow::anyhow!("{e}")).with_context(|| format!("converting {}", file.display()))?;
    println!("# Converted from {} by dhcp-xdp convert.", file.display());
    if !c.not_carried.is_empty() {
        println!("# Not carried over:");
    }
    for n in &c.not_carried {
        println!("#   {n}");
        eprintln!("not carried over: {n}");
    }
    print!("\n{}", c.toml);
    Ok(())
}
