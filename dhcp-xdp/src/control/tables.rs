//! Answers as tables for people (`dhcp-xdp ctl leases`, `ctl stats`).

use super::*;

/// A lease list answer as a table: address, hardware address, client id, state, expiry.
pub fn lease_table(answer: &Value) -> String {
    let mut out = format!("{:<16} {:<18} {:<24} {:<9} {}\n", "address", "hw-address", "client-id", "state", "expires");
    let leases = answer["arguments"]["leases"].as_array().cloned().unwrap_or_default();
    for l in &leases {
        let state = match l["state"].as_u64() {
            Some(0) => "bound",
            Some(1) => "declined",
            _ => "expired",
        };
        let expires = l["cltt"].as_u64().unwrap_or(0) + l["valid-lft"].as_u64().unwrap_or(0);
        out += &format!(
            "{:<16} {:<18} {:<24} {:<9} {}\n",
            l["ip-address"].as_str().unwrap_or("?"),
            l["hw-address"].as_str().unwrap_or(""),
            l["client-id"].as_str().unwrap_or("-"),
            state,
            timestamp(UNIX_EPOCH + Duration::from_secs(expires)).get(..19).unwrap_or("")
        );
    }
    out += &format!("{} leases\n", leases.len());
    out
}

/// A statistics answer as `name value` lines, sorted by name.
pub fn stats_table(answer: &Value) -> String {
    let mut rows: Vec<(String, u64)> = answer["arguments"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v[0][0].as_u64().unwrap_or(0))).collect())
        .unwrap_or_default();
    rows.sort();
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter().map(|(k, v)| format!("{k:<width$} {v}\n")).collect()
}
