//! `dhcp-xdp import`: another server's leases into a state directory.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use dhcp_xdp::{
    clock::unix_now,
    serve::load_config_file,
    store::journal::{self, Journal, StateDir},
};
use dhcp_xdp_core::leases::LeaseDb;

/// Another server's lease file, for `dhcp-xdp import`.
pub enum LeaseFile {
    KeaCsv(PathBuf),
    DhcpdLeases(PathBuf),
}
/// `dhcp-xdp import`: another server's leases into a state directory, next to what it holds
/// already (an address held there keeps its lease; the import's is reported). A Kea CSV of v6
/// leases (its header names `duid` and `iaid`) is imported as such.
pub fn import(dir: &std::path::Path, config: &std::path::Path, source: &LeaseFile) -> anyhow::Result<()> {
    use dhcp_xdp_core::migrate;
    let cfg = load_config_file(config)?;
    let (LeaseFile::KeaCsv(file) | LeaseFile::DhcpdLeases(file)) = source;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let now = unix_now();
    if matches!(source, LeaseFile::KeaCsv(_)) && migrate::is_kea_csv6(&text) {
        return import6(dir, &cfg, file, &text, now);
    }
    let imported = match source {
        LeaseFile::KeaCsv(_) => migrate::read_kea_csv(&text, &cfg, now).map_err(|e| anyhow::anyhow!("{e}")),
        LeaseFile::DhcpdLeases(_) => migrate::read_dhcpd_leases(&text, &cfg, now).map_err(|e| anyhow::anyhow!("{e}")),
    }
    .with_context(|| format!("parsing {}", file.display()))?;
    let state = StateDir::lock(dir)?;
    let rec = journal::recover(&state, now)?;
    let held: std::collections::HashSet<std::net::Ipv4Addr> =
        rec.leases.iter().filter(|l| l.holds(now)).map(|l| l.addr).collect();
    let mut leases = rec.leases.clone();
    let mut n = 0;
    for l in &imported.leases {
        if held.contains(&l.addr) {
            println!("skipped {}: already held in {}", l.addr, dir.display());
        } else {
            leases.push(*l);
            n += 1;
        }
    }
    for s in &imported.skipped {
        let addr = s.addr.map(|a| a.to_string()).unwrap_or_else(|| "?".into());
        println!("skipped {addr} (line {}): {}", s.line, s.why);
    }
    let db = LeaseDb::new(&cfg, 1, leases, now);
    db.restore_attrs(&rec.attrs);
    db.restore_attrs(&imported.attrs);
    db.continue_after(rec.max_seq);
    // The v6 leases the directory holds stay (the snapshot below replaces its journals).
    db.restore6(&cfg, rec.leases6.clone(), now);
    // A one-off writer: plain files (the daemon's spares stay for it).
    let journal = Journal::open(state, 1, cfg.durability, 0)?;
    journal.snapshot(&db)?;
    journal.flush(Duration::from_secs(10))?;
    // What was really written: the imported leases the tables (and so the snapshot) hold.
    let written: std::collections::HashSet<(std::net::Ipv4Addr, dhcp_xdp_core::leases::ClientKey)> =
        db.all_leases().iter().map(|l| (l.addr, l.key)).collect();
    let offered = n;
    let n = imported.leases.iter().filter(|l| !held.contains(&l.addr) && written.contains(&(l.addr, l.key))).count();
    if n < offered {
        println!("{} imported leases were not kept (another record of the same client held them)", offered - n);
    }
    println!(
        "imported {n} leases from {} into {} ({} skipped, {} entries held nothing)",
        file.display(),
        dir.display(),
        imported.skipped.len() + imported.leases.len() - n,
        imported.unheld
    );
    Ok(())
}

/// `dhcp-xdp import --kea-csv` of Kea's v6 lease file (`kea-leases6.csv`): its leases next to
/// what the directory holds (an address or prefix held there keeps its lease).
fn import6(
    dir: &std::path::Path,
    cfg: &dhcp_xdp_core::config::Config,
    file: &std::path::Path,
    text: &str,
    now: u32,
) -> anyhow::Result<()> {
    let imported = dhcp_xdp_core::migrate::read_kea_csv6(text, cfg, now)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("parsing {}", file.display()))?;
    let state = StateDir::lock(dir)?;
    let rec = journal::recover(&state, now)?;
    let held: std::collections::HashSet<(std::net::Ipv6Addr, u8)> =
        rec.leases6.iter().filter(|l| l.expires > now).map(|l| (l.addr, l.len)).collect();
    let mut leases6 = rec.leases6.clone();
    for l in &imported.leases {
        if held.contains(&(l.addr, l.len)) {
            println!("skipped {}/{}: already held in {}", l.addr, l.len, dir.display());
        } else {
            leases6.push(l.clone());
        }
    }
    for s in &imported.skipped {
        println!("skipped (line {}): {}", s.line, s.why);
    }
    let db = LeaseDb::new(cfg, 1, rec.leases.clone(), now);
    db.restore_attrs(&rec.attrs);
    db.continue_after(rec.max_seq);
    db.restore6(cfg, leases6, now);
    let journal = Journal::open(state, 1, cfg.durability, 0)?;
    journal.snapshot(&db)?;
    journal.flush(Duration::from_secs(10))?;
    // What was really written: the imported leases the table (and so the snapshot) holds.
    let n = {
        let t = db.table6();
        imported.leases.iter().filter(|l| t.holder(l.addr, l.len).is_some_and(|h| h.key == l.key)).count()
    };
    println!(
        "imported {n} DHCPv6 leases from {} into {} ({} skipped, {} entries held nothing)",
        file.display(),
        dir.display(),
        imported.skipped.len() + imported.leases.len() - n,
        imported.unheld
    );
    Ok(())
}
