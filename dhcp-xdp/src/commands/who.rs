//! `dhcp-xdp who`: answers from the forensic lease log who held an address at a time, or
//! which addresses a MAC or a subscriber line held then.

use std::path::Path;

use dhcp_xdp::forensic::{Entry, holder_at, read, read_database};
use dhcp_xdp_core::{calendar::parse_iso8601, net::colon_hex};

/// A circuit id as the log writes it (hex with colons): given so, or as text.
fn circuit_hex(c: &str) -> String {
    if dhcp_xdp_core::config::parse_hex(c).is_some() && c.contains(':') {
        c.to_lowercase()
    } else {
        colon_hex(c.as_bytes())
    }
}

fn describe(e: &Entry) -> String {
    let f = &e.fields;
    let mut parts = vec![format!(
        "{} {} since {}",
        f["address"].as_str().unwrap_or("?"),
        f["event"].as_str().unwrap_or("?"),
        f["ts"].as_str().unwrap_or("?")
    )];
    if let Some(l) = f.get("prefix-len").and_then(|v| v.as_u64()) {
        parts[0] = parts[0].replacen(' ', &format!("/{l} "), 1);
    }
    for k in
        ["hw-address", "client-id", "duid", "iaid", "circuit-id", "remote-id", "relay", "hostname", "expires", "node"]
    {
        match f.get(k) {
            Some(serde_json::Value::String(v)) => parts.push(format!("{k} {v}")),
            Some(serde_json::Value::Number(n)) => parts.push(format!("{k} {n}")),
            _ => {}
        }
    }
    parts.join(", ")
}

/// Where the log is.
pub enum Source<'a> {
    /// A file (and its rotated ones).
    File(&'a Path),
    /// The cluster database (a libpq URL).
    Database(&'a str),
}

/// Prints the answer; an error when the log cannot be read or the time is not one.
pub fn who(
    source: Source<'_>,
    address: Option<std::net::IpAddr>,
    mac: Option<String>,
    circuit: Option<String>,
    at: Option<&str>,
) -> anyhow::Result<()> {
    let at = match at {
        Some(t) => parse_iso8601(t).ok_or_else(|| anyhow::anyhow!("`{t}` is not a time like 2026-12-01T10:00:00Z"))?,
        None => u64::from(dhcp_xdp::clock::unix_now()),
    };
    let (key, want) = match (&mac, &circuit) {
        (Some(m), _) => ("hw-address", m.to_lowercase()),
        (None, Some(c)) => ("circuit-id", circuit_hex(c)),
        (None, None) => ("address", address.map(|a| a.to_string()).unwrap_or_default()),
    };
    let entries = match source {
        Source::File(log) => read(log).map_err(|e| anyhow::anyhow!("reading {}: {e}", log.display()))?,
        // The lines of the address asked about, or of every address the MAC or line was seen with.
        Source::Database(url) => read_database(url, key, &want, at)
            .map_err(|e| anyhow::anyhow!("reading the forensic log in the database: {e}"))?,
    };
    if let Some(a) = address {
        match holder_at(&entries, &a.to_string(), at) {
            Some(e) => println!("{}", describe(e)),
            None => println!("{a}: held by nobody at {}", dhcp_xdp_core::calendar::iso8601(at)),
        }
        return Ok(());
    }
    if key == "address" {
        anyhow::bail!("give --address, --mac or --circuit");
    }
    // Every address the MAC or line was seen with, and who held it at that time.
    let mut addresses: Vec<&str> = entries
        .iter()
        .filter(|e| e.fields[key] == want.as_str())
        .filter_map(|e| e.fields["address"].as_str())
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    let mut any = false;
    for a in addresses {
        if let Some(e) = holder_at(&entries, a, at).filter(|e| e.fields[key] == want.as_str()) {
            println!("{}", describe(e));
            any = true;
        }
    }
    if !any {
        println!("{key} {want}: held nothing at {}", dhcp_xdp_core::calendar::iso8601(at));
    }
    Ok(())
}
