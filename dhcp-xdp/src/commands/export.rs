//! `dhcp-xdp export` and `dhcp-xdp leases`: a state directory's leases, read-only.

use anyhow::Context as _;
use dhcp_xdp::{clock::unix_now, serve::load_config_file, store::journal};
use dhcp_xdp_core::{config::Config, leases::Attr, net::colon_hex};

use crate::cli::ExportFormat;

/// `dhcp-xdp export`: a state directory's leases as Kea's CSV or as JSON, on stdout.
pub fn export(dir: &std::path::Path, format: ExportFormat, config: Option<&std::path::Path>) -> anyhow::Result<()> {
    let cfg = match config {
        Some(p) => load_config_file(p)?,
        None => Config::parse("defaults", "")?,
    };
    let now = unix_now();
    let rec = journal::inspect(dir, now).with_context(|| format!("reading {}", dir.display()))?;
    let held: Vec<_> = rec.leases.iter().filter(|l| l.holds(now)).copied().collect();
    match format {
        ExportFormat::KeaCsv => print!("{}", dhcp_xdp_core::migrate::write_kea_csv(&held, &rec.attrs, &cfg)),
        ExportFormat::KeaCsv6 => {
            let held6: Vec<_> = rec.leases6.iter().filter(|l| l.expires > now).cloned().collect();
            print!("{}", dhcp_xdp_core::migrate::write_kea_csv6(&held6));
        }
        ExportFormat::Json => {
            // Kea's lease object, and `expire` (cltt + valid-lft) as the CSV has it.
            let leases: Vec<serde_json::Value> = held
                .iter()
                .map(|l| {
                    let mut v = dhcp_xdp_core::migrate::lease_json(l, |a| rec.attrs.get(&(a, l.key)).cloned(), &cfg);
                    v["expire"] = serde_json::json!(l.expires);
                    v
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "leases": leases })).unwrap_or_default());
        }
    }
    Ok(())
}
pub fn dump_leases(dir: &std::path::Path) -> anyhow::Result<()> {
    let rec = journal::inspect(dir, unix_now()).with_context(|| format!("reading {}", dir.display()))?;
    for w in &rec.warnings {
        println!("warning: {w}");
    }
    let mut leases = rec.leases;
    leases.sort_by_key(|l| u32::from(l.addr));
    for l in &leases {
        let attr = |a| rec.attrs.get(&(a, l.key));
        println!(
            "lease addr={} chaddr={} state={:?} expires={} subnet={} key={:?}{}{}",
            l.addr,
            colon_hex(&l.chaddr),
            l.state,
            l.expires,
            l.subnet,
            l.key,
            attr(Attr::Name).map(|n| format!(" hostname={:?}", String::from_utf8_lossy(n))).unwrap_or_default(),
            attr(Attr::RelayInfo).map(|r| format!(" relay-info={}", colon_hex(r))).unwrap_or_default()
        );
    }
    let mut leases6 = rec.leases6;
    leases6.sort_by_key(|l| (u128::from(l.addr), l.len));
    for l in &leases6 {
        println!(
            "lease6 addr={}/{} type={:?} duid={} iaid={} state={:?} expires={} subnet={}",
            l.addr,
            l.len,
            l.key.kind,
            colon_hex(&l.key.duid),
            l.key.iaid,
            l.state,
            l.expires,
            l.key.subnet
        );
    }
    println!(
        "{} leases, {} DHCPv6 leases (snapshot {}, {} journal records replayed)",
        leases.len(),
        leases6.len(),
        rec.snapshot_gen,
        rec.replayed
    );
    Ok(())
}
