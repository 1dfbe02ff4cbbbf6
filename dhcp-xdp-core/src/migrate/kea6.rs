//! Kea's DHCPv6 memfile CSV (`kea-leases6.csv`), in and out. Like the v4 file it is a
//! journal: the last row of an address (or prefix) wins, and a row with `valid_lifetime` 0
//! deletes it.

use std::net::Ipv6Addr;

use hashbrown::HashMap;

use super::Skipped;
use crate::{
    config::{Config, parse_hex},
    dhcp6::IaKind,
    leases::v6::{Key6, Lease6, Lease6State},
    net::colon_hex,
};

/// Kea 2.2's header for v6 leases (later versions add `pool_id`, read and ignored).
pub const KEA_CSV6_HEADER: &str = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,\
                                   prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,\
                                   hwaddr_source";

/// What a v6 import found.
#[derive(Debug, Default)]
pub struct Import6 {
    /// The leases to keep (the last entry of each address or prefix).
    pub leases: Vec<Lease6>,
    /// Held leases not carried over, with the reason (the address in the reason).
    pub skipped: Vec<Skipped>,
    /// Entries that hold nothing at the time of the import (expired, reclaimed, deleted).
    pub unheld: usize,
}

/// Whether `text` is a Kea v6 lease file (its header names `duid` and `iaid`).
pub fn is_kea_csv6(text: &str) -> bool {
    text.lines().next().is_some_and(|h| h.split(',').any(|c| c == "duid") && h.split(',').any(|c| c == "iaid"))
}

/// The key a declined address is kept under (nobody holds it; the same as the table's).
fn declined_key(kind: IaKind, subnet: u32, addr: Ipv6Addr) -> Key6 {
    Key6 { kind, subnet, duid: std::sync::Arc::from(&addr.octets()[..]), iaid: u32::MAX }
}

/// Reads a Kea v6 memfile CSV against `cfg`: each address's last row; deleted rows and leases
/// not held at `now` are left out quietly; a lease whose subnet is not configured, that lies
/// outside the subnet's pools and reservations (an address: outside the subnet), an IA_TA, or
/// a row that does not parse, is reported in [`Import6::skipped`].
pub fn read_kea_csv6(text: &str, cfg: &Config, now: u32) -> Result<Import6, csv::Error> {
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers = r.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let mut out = Import6::default();
    let (Some(a), Some(d), Some(valid), Some(exp), Some(sid), Some(pref), Some(ty), Some(iaid), Some(plen), Some(st)) = (
        col("address"),
        col("duid"),
        col("valid_lifetime"),
        col("expire"),
        col("subnet_id"),
        col("pref_lifetime"),
        col("lease_type"),
        col("iaid"),
        col("prefix_len"),
        col("state"),
    ) else {
        out.skipped.push(Skipped { line: 1, addr: None, why: format!("not a Kea v6 lease file: header {headers:?}") });
        return Ok(out);
    };
    let needed = [a, d, valid, exp, sid, pref, ty, iaid, plen, st].into_iter().max().unwrap_or(0) + 1;
    let mut last: HashMap<(Ipv6Addr, String), (u64, csv::StringRecord)> = HashMap::new();
    for rec in r.records() {
        let rec = rec?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        match rec.get(a).and_then(|v| v.parse::<Ipv6Addr>().ok()) {
            Some(addr) => {
                let len = rec.get(plen).unwrap_or("128").trim().to_owned();
                last.insert((addr, len), (line, rec));
            }
            None => out.skipped.push(Skipped { line, addr: None, why: "no IPv6 address".into() }),
        }
    }
    let mut rows: Vec<_> = last.into_iter().collect();
    rows.sort_by_key(|((addr, len), _)| (u128::from(*addr), len.clone()));
    for ((addr, _), (line, rec)) in rows {
        let skip = |why: String| Skipped { line, addr: None, why: format!("{addr}: {why}") };
        if rec.len() < needed {
            out.skipped.push(skip(format!("truncated row: {} of the {} fields needed", rec.len(), needed)));
            continue;
        }
        let num = |i: usize| rec.get(i).and_then(|v| v.trim().parse::<u64>().ok());
        let valid_lifetime = num(valid).unwrap_or(0);
        if valid_lifetime == 0 {
            out.unheld += 1;
            continue;
        }
        let expires = num(exp).unwrap_or(0).min(u64::from(u32::MAX)) as u32;
        let state = match num(st).unwrap_or(0) {
            0 => Lease6State::Bound,
            1 => Lease6State::Declined,
            _ => {
                out.unheld += 1;
                continue;
            }
        };
        if expires <= now {
            out.unheld += 1;
            continue;
        }
        let (kind, len) = match (num(ty), num(plen)) {
            (Some(0), _) => (IaKind::Na, 128),
            (Some(2), Some(l)) if (1..=128).contains(&l) => (IaKind::Pd, l as u8),
            (Some(1), _) => {
                out.skipped.push(skip("an IA_TA (temporary address): not supported".into()));
                continue;
            }
            _ => {
                out.skipped.push(skip("lease_type or prefix_len does not parse".into()));
                continue;
            }
        };
        let on_subnet = |s: &crate::config::Subnet6| match kind {
            IaKind::Na => s.contains(addr),
            IaKind::Pd => {
                s.pd_pools.iter().any(|p| p.index_of(addr, len).is_some())
                    || s.reservations.iter().any(|r| r.prefixes.contains(&(addr, len)))
            }
        };
        let hint = num(sid).and_then(|v| u32::try_from(v).ok());
        let subnet = hint
            .and_then(|h| cfg.subnets6.iter().find(|s| s.id == h).filter(|s| on_subnet(s)))
            .or_else(|| cfg.subnets6.iter().find(|s| on_subnet(s)));
        let Some(s) = subnet else {
            out.skipped.push(skip("outside every configured subnet6 and its pd-pools".into()));
            continue;
        };
        let key = if state == Lease6State::Declined {
            declined_key(kind, s.id, addr)
        } else {
            let Some(duid) = rec.get(d).and_then(parse_hex).filter(|d| d.len() >= 3 && d.len() <= 130) else {
                out.skipped.push(skip(format!("duid '{}' is not a DUID in hex", rec.get(d).unwrap_or(""))));
                continue;
            };
            let Some(iaid) = num(iaid).and_then(|v| u32::try_from(v).ok()) else {
                out.skipped.push(skip("iaid does not parse".into()));
                continue;
            };
            Key6 { kind, subnet: s.id, duid: std::sync::Arc::from(duid), iaid }
        };
        let valid = u32::try_from(valid_lifetime).unwrap_or(u32::MAX);
        let preferred = num(pref).and_then(|v| u32::try_from(v).ok()).unwrap_or(valid).min(valid);
        out.leases.push(Lease6 {
            key,
            addr,
            len,
            preferred,
            valid,
            expires,
            state,
            tags: Default::default(),
            relay: 0,
        });
    }
    Ok(out)
}

/// Writes bound and declined `leases` as a Kea v6 memfile CSV (Kea 2.2's header): a file
/// kea-dhcp6 loads.
pub fn write_kea_csv6(leases: &[Lease6]) -> String {
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(vec![]);
    let mut sorted: Vec<&Lease6> =
        leases.iter().filter(|l| matches!(l.state, Lease6State::Bound | Lease6State::Declined)).collect();
    sorted.sort_by_key(|l| (u128::from(l.addr), l.len));
    for l in sorted {
        let (duid, state) = match l.state {
            // Kea keeps a declined address under the DUID "00".
            Lease6State::Declined => ("00".to_owned(), "1"),
            _ => (colon_hex(&l.key.duid), "0"),
        };
        let kind = if l.key.kind == IaKind::Na { "0" } else { "2" };
        let _ = w.write_record([
            l.addr.to_string().as_str(),
            &duid,
            &l.valid.to_string(),
            &l.expires.to_string(),
            &l.key.subnet.to_string(),
            &l.preferred.to_string(),
            kind,
            &l.key.iaid.to_string(),
            &l.len.to_string(),
            "0",
            "0",
            "",
            "",
            state,
            "",
            "0",
            "0",
        ]);
    }
    let body = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
    format!("{KEA_CSV6_HEADER}\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::parse(
            "t",
            "[[subnet6]]\nsubnet = \"2001:db8:1::/64\"\nid = 3\n[[subnet6.pool]]\nrange = \"2001:db8:1::100-2001:db8:1::1ff\"\n\
             [[subnet6.pd-pool]]\nprefix = \"2001:db8:100::\"\nprefix-len = 48\ndelegated-len = 56\n",
        )
        .unwrap()
    }

    /// Rows as Kea writes them: last one wins, deletions delete, expired and reclaimed ones are
    /// left to the pool, IA_TA and leases off every subnet are reported; what is written back
    /// reads the same.
    #[test]
    fn keas_v6_rows_are_read_last_one_wins_and_written_back_the_same() {
        let csv = format!(
            "{KEA_CSV6_HEADER}\n\
             2001:db8:1::100,00:03:00:01:02:00:00:00:00:01,4000,1796156859,3,3000,0,1,128,0,0,,,0,,0,0\n\
             2001:db8:1::100,00:03:00:01:02:00:00:00:00:01,4000,1796160000,3,3000,0,1,128,0,0,,,0,,0,0\n\
             2001:db8:100:200::,00:03:00:01:02:00:00:00:00:01,4000,1796156859,3,3000,2,2,56,0,0,,,0,,0,0\n\
             2001:db8:1::101,00:03:00:01:02:00:00:00:00:02,4000,1796156859,3,3000,0,1,128,0,0,,,0,,0,0\n\
             2001:db8:1::101,00:03:00:01:02:00:00:00:00:02,0,1796156859,3,3000,0,1,128,0,0,,,0,,0,0\n\
             2001:db8:1::102,00:03:00:01:02:00:00:00:00:03,4000,1000,3,3000,0,1,128,0,0,,,0,,0,0\n\
             2001:db8:1::103,00:03:00:01:02:00:00:00:00:04,4000,1796156859,3,3000,0,1,128,0,0,,,2,,0,0\n\
             2001:db8:1::104,00,86400,1796156859,3,0,0,0,128,0,0,,,1,,0,0\n\
             2001:db8:1::105,00:03:00:01:02:00:00:00:00:05,4000,1796156859,3,3000,1,1,128,0,0,,,0,,0,0\n\
             2001:db8:9::1,00:03:00:01:02:00:00:00:00:06,4000,1796156859,9,3000,0,1,128,0,0,,,0,,0,0\n\
             2001:db8:1::106,00:03:00:01\n"
        );
        let imp = read_kea_csv6(&csv, &cfg(), 1_796_000_000).unwrap();
        let got: Vec<(String, u8, IaKind, Lease6State, u32)> =
            imp.leases.iter().map(|l| (l.addr.to_string(), l.len, l.key.kind, l.state, l.expires)).collect();
        assert_eq!(
            got,
            vec![
                ("2001:db8:1::100".into(), 128, IaKind::Na, Lease6State::Bound, 1_796_160_000),
                ("2001:db8:1::104".into(), 128, IaKind::Na, Lease6State::Declined, 1_796_156_859),
                ("2001:db8:100:200::".into(), 56, IaKind::Pd, Lease6State::Bound, 1_796_156_859),
            ]
        );
        assert_eq!(imp.unheld, 3, "deleted, expired, reclaimed");
        let why: Vec<&str> = imp.skipped.iter().map(|s| s.why.as_str()).collect();
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(why.iter().any(|w| w.contains("IA_TA")) && why.iter().any(|w| w.contains("outside")));
        assert!(why.iter().any(|w| w.contains("truncated")));
        assert_eq!((imp.leases[0].preferred, imp.leases[0].valid, imp.leases[0].key.iaid), (3000, 4000, 1));
        // Out and in again: the same leases.
        let again = read_kea_csv6(&write_kea_csv6(&imp.leases), &cfg(), 1_796_000_000).unwrap();
        assert_eq!(again.leases, imp.leases);
        assert!(is_kea_csv6(&csv) && !is_kea_csv6(super::super::KEA_CSV_HEADER));
    }
}
