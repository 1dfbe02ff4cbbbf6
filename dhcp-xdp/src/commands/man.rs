//! `dhcp-xdp man`: the manual pages.

use anyhow::Context as _;

use crate::cli::Cli;

/// `dhcp-xdp man`: the manual pages, from the clap definition (section 8: a daemon).
pub fn man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let top = Cli::command();
    let mut pages = vec![("dhcp-xdp".to_string(), top.clone())];
    for sub in top.get_subcommands().filter(|s| s.get_name() != "help") {
        let bin = format!("dhcp-xdp {}", sub.get_name());
        pages.push((format!("dhcp-xdp-{}", sub.get_name()), sub.clone().bin_name(bin)));
    }
    for (name, cmd) in pages {
        let mut roff = vec![];
        clap_mangen::Man::new(cmd).title(&name).section("8").render(&mut roff)?;
        let path = dir.join(format!("{name}.8"));
        std::fs::write(&path, roff).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
