//! Kea's memfile CSV (`kea-leases4.csv`). Kea's file is a journal: the last row of an address
//! wins, and a row with `valid_lifetime` 0 deletes it.

use std::net::Ipv4Addr;

use hashbrown::HashMap;

use super::{Import, Skipped};
use crate::{
    config::{Config, parse_hex},
    leases::{Attr, AttrMap, ClientKey, Lease, LeaseState},
    net::{colon_hex, parse_mac},
};

/// Kea 2.2's header (later versions add `pool_id`, which is read and ignored).
pub const KEA_CSV_HEADER: &str =
    "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context";

/// Reads a Kea memfile CSV against `cfg`: each address's last row; deleted rows and leases no
/// longer held at `now` are left out quietly (Kea itself forgets them); a lease outside every
/// configured pool and reservation, or with an address or hardware address that does not parse,
/// is reported in [`Import::skipped`].
pub fn read_kea_csv(text: &str, cfg: &Config, now: u32) -> Result<Import, csv::Error> {
    // Kea's CSV has no quoting (a comma inside a field is written "&#x2c"): a quote is text.
    let mut r = csv::ReaderBuilder::new().flexible(true).quoting(false).from_reader(text.as_bytes());
    let headers = r.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(a), Some(hw), Some(cid), Some(valid), Some(exp), Some(sid), Some(st)) = (
        col("address"),
        col("hwaddr"),
        col("client_id"),
        col("valid_lifetime"),
        col("expire"),
        col("subnet_id"),
        col("state"),
    ) else {
        let mut out = Import::default();
        out.skipped.push(Skipped { line: 1, addr: None, why: format!("not a Kea lease file: header {headers:?}") });
        return Ok(out);
    };
    let host = col("hostname");
    let context = col("user_context");
    let mut last: HashMap<Ipv4Addr, (u64, csv::StringRecord)> = HashMap::new();
    let mut out = Import::default();
    for rec in r.records() {
        let rec = rec?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        match rec.get(a).and_then(|v| v.parse::<Ipv4Addr>().ok()) {
            Some(addr) => {
                last.insert(addr, (line, rec));
            }
            None => out.skipped.push(Skipped { line, addr: None, why: "no IPv4 address".into() }),
        }
    }
    let mut rows: Vec<_> = last.into_iter().collect();
    rows.sort_by_key(|(addr, _)| u32::from(*addr));
    for (addr, (line, rec)) in rows {
        let skip = |why: String| Skipped { line, addr: Some(addr), why };
        let needed = [a, hw, cid, valid, exp, sid, st].into_iter().max().unwrap_or(0) + 1;
        if rec.len() < needed {
            // A damaged (cut) row is reported, not read as a deletion.
            out.skipped.push(skip(format!("truncated row: {} of the {} fields needed", rec.len(), needed)));
            continue;
        }
        let num = |i: usize| rec.get(i).and_then(|v| v.trim().parse::<u64>().ok());
        let valid_lifetime = num(valid).unwrap_or(0);
        if valid_lifetime == 0 {
            out.unheld += 1; // deleted
            continue;
        }
        let expires = num(exp).unwrap_or(0).min(u64::from(u32::MAX)) as u32;
        let state = match num(st).unwrap_or(0) {
            0 => LeaseState::Bound,
            1 => LeaseState::Declined,
            _ => LeaseState::Expired,
        };
        if expires <= now || state == LeaseState::Expired {
            out.unheld += 1; // no longer held: Kea would reclaim it too
            continue;
        }
        let chaddr = rec.get(hw).and_then(parse_mac);
        let key = match (rec.get(cid).filter(|c| !c.is_empty()).map(parse_hex), chaddr) {
            // Kea forgets the client of a declined address (empty hwaddr); so do we.
            _ if state == LeaseState::Declined => ClientKey::declined(addr),
            (Some(Some(id)), _) => ClientKey::client_id(&id, 0), // scoped by `Import::admit`
            (Some(None), _) => {
                out.skipped.push(skip(format!("client id '{}' is not hex", rec.get(cid).unwrap_or(""))));
                continue;
            }
            (None, Some(chaddr)) => ClientKey::hw(1, &chaddr, 0),
            (None, None) => {
                out.skipped.push(skip(format!("hardware address '{}' is not Ethernet", rec.get(hw).unwrap_or(""))));
                continue;
            }
        };
        let chaddr = chaddr.unwrap_or_default();
        let hint = num(sid).and_then(|s| u32::try_from(s).ok());
        // Kea writes commas in a host name as "&#x2c" (its CSV escape).
        let name = host.and_then(|i| rec.get(i)).unwrap_or("").replace("&#x2c", ",");
        let relay = context.and_then(|i| rec.get(i)).and_then(relay_info_of).unwrap_or_default();
        let lease = Lease { key, chaddr, addr, expires, state, subnet: 0, tags: Default::default() };
        out.admit(cfg, line, hint, lease, [name.as_bytes(), &relay]);
    }
    Ok(out)
}

/// The valid lifetime Kea shows for `l` (its subnet's lease time, the decline probation for a
/// declined address): with it `expire − valid` is the last transaction time (`cltt`).
fn valid_lifetime(l: &Lease, cfg: &Config) -> u32 {
    match l.state {
        LeaseState::Declined => cfg.decline_probation,
        _ => cfg.subnet_index(l.subnet).map(|i| cfg.subnets[i].lease_time).unwrap_or(3600),
    }
    .max(1)
}

/// Kea's state number: 0 default (bound), 1 declined, 2 expired-reclaimed.
fn kea_state(l: &Lease) -> u8 {
    match l.state {
        LeaseState::Bound | LeaseState::Offered => 0,
        LeaseState::Declined => 1,
        LeaseState::Released | LeaseState::Expired => 2,
    }
}

/// The option 82 kept in a Kea user context (a CSV `user_context` column, its comma escape
/// undone): `{"ISC": {"relay-agent-info": {"sub-options": "0x…"}}}`, or the older
/// `"relay-agent-info": "0x…"`. None without one, or one that is not hex.
fn relay_info_of(context: &str) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_str(&context.replace("&#x2c", ",")).ok()?;
    let rai = &v["ISC"]["relay-agent-info"];
    let hex = rai["sub-options"].as_str().or(rai.as_str())?;
    parse_hex(hex.trim_start_matches("0x").trim_start_matches("0X"))
}

/// Kea's user context for a lease that keeps the option 82 `rai` (its `store-extended-info`
/// shape: the sub-options in hex after `0x`).
fn user_context(rai: &[u8]) -> serde_json::Value {
    let hex: String = rai.iter().map(|b| format!("{b:02X}")).collect();
    serde_json::json!({ "ISC": { "relay-agent-info": { "sub-options": format!("0x{hex}") } } })
}

/// `l` as Kea's lease object (`lease4-get` and every list of the control channel, and
/// `dhcp-xdp export --format json`): one definition of the shape for all of them. `attr`
/// gives what the lease keeps beside it (its host name, its relay's option 82: Kea's user
/// context).
pub fn lease_json(l: &Lease, attr: impl Fn(Attr) -> Option<Box<[u8]>>, cfg: &Config) -> serde_json::Value {
    let hostname = attr(Attr::Name);
    let hostname = hostname.as_deref();
    let valid = valid_lifetime(l, cfg);
    let mut v = serde_json::json!({
        "ip-address": l.addr.to_string(),
        "hw-address": colon_hex(&l.chaddr),
        "valid-lft": valid,
        "cltt": l.expires.saturating_sub(valid),
        "subnet-id": l.subnet,
        "fqdn-fwd": false,
        "fqdn-rev": false,
        "hostname": String::from_utf8_lossy(hostname.unwrap_or_default()),
        "state": kea_state(l),
    });
    if let Some(id) = l.key.client_id_bytes() {
        v["client-id"] = serde_json::json!(colon_hex(id));
    }
    if let Some(rai) = attr(Attr::RelayInfo) {
        v["user-context"] = user_context(&rai);
    }
    v
}

/// Writes `leases` as a Kea memfile CSV (Kea 2.2's header), with each subnet's lease time of
/// `cfg` as `valid_lifetime` (Kea needs it; `expire` is kept as it is).
pub fn write_kea_csv(leases: &[Lease], attrs: &AttrMap, cfg: &Config) -> String {
    let mut w = csv::WriterBuilder::new().has_headers(false).quote_style(csv::QuoteStyle::Never).from_writer(vec![]);
    let mut sorted: Vec<&Lease> =
        leases.iter().filter(|l| matches!(l.state, LeaseState::Bound | LeaseState::Declined)).collect();
    sorted.sort_by_key(|l| u32::from(l.addr));
    for l in sorted {
        let valid = valid_lifetime(l, cfg);
        let client_id = l.key.client_id_bytes().map(colon_hex).unwrap_or_default();
        let state = kea_state(l).to_string();
        let name = attrs
            .get(&(Attr::Name, l.key))
            // No quoting in Kea's CSV: a control character in a name (a line break) would
            // end the row.
            .map(|n| String::from_utf8_lossy(n).replace(',', "&#x2c").replace(|c: char| c.is_control(), "?"))
            .unwrap_or_default();
        let context = attrs
            .get(&(Attr::RelayInfo, l.key))
            .map(|r| user_context(r).to_string().replace(',', "&#x2c"))
            .unwrap_or_default();
        let _ = w.write_record([
            l.addr.to_string().as_str(),
            &colon_hex(&l.chaddr),
            &client_id,
            &valid.to_string(),
            &l.expires.to_string(),
            &l.subnet.to_string(),
            "0",
            "0",
            &name,
            state.as_str(),
            &context,
        ]);
    }
    let body = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
    format!("{KEA_CSV_HEADER}\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::parse(
            "t",
            "[[subnet]]\nsubnet = \"198.18.21.0/24\"\n[[subnet.pool]]\nrange = \"198.18.21.100-198.18.21.199\"\n\
             [[subnet.reservation]]\nhw-address = \"02:aa:00:00:00:09\"\nip = \"198.18.21.9\"\n",
        )
        .unwrap()
    }

    #[test]
    fn keas_journal_rows_are_read_last_one_wins_and_deletions_delete() {
        let csv = format!(
            "{KEA_CSV_HEADER}\n\
             198.18.21.100,02:aa:00:00:00:00,,3600,1796156859,1,0,0,,0,\n\
             198.18.21.101,02:aa:00:00:00:01,01:02:03,3600,1796156859,1,0,0,host1,0,\n\
             198.18.21.100,02:aa:00:00:00:00,,3600,1796160000,1,0,0,,0,\n\
             198.18.21.102,02:aa:00:00:00:02,,3600,1796156859,1,0,0,,0,\n\
             198.18.21.102,02:aa:00:00:00:02,,0,1796156859,1,0,0,,0,\n\
             198.18.21.103,02:aa:00:00:00:03,,3600,1000,1,0,0,,0,\n\
             198.18.21.104,,,86400,1796156859,1,0,0,,1,\n\
             198.18.21.9,02:aa:00:00:00:09,,3600,1796156859,1,0,0,,0,\n\
             198.18.21.50,02:aa:00:00:00:50,,3600,1796156859,1,0,0,,0,\n\
             198.18.99.5,02:aa:00:00:00:99,,3600,1796156859,7,0,0,,0,\n"
        );
        let imp = read_kea_csv(&csv, &cfg(), 1_796_000_000).unwrap();
        let got: Vec<(Ipv4Addr, u32, LeaseState)> = imp.leases.iter().map(|l| (l.addr, l.expires, l.state)).collect();
        assert_eq!(
            got,
            vec![
                (Ipv4Addr::new(198, 18, 21, 9), 1_796_156_859, LeaseState::Bound),
                (Ipv4Addr::new(198, 18, 21, 100), 1_796_160_000, LeaseState::Bound),
                (Ipv4Addr::new(198, 18, 21, 101), 1_796_156_859, LeaseState::Bound),
                (Ipv4Addr::new(198, 18, 21, 104), 1_796_156_859, LeaseState::Declined),
            ]
        );
        assert_eq!(imp.leases[2].key, ClientKey::client_id(&[1, 2, 3], 1));
        let skipped: Vec<(Option<Ipv4Addr>, &str)> = imp.skipped.iter().map(|s| (s.addr, s.why.as_str())).collect();
        assert_eq!(
            skipped,
            vec![
                (Some(Ipv4Addr::new(198, 18, 21, 50)), "outside every pool and reservation of subnet 1"),
                (Some(Ipv4Addr::new(198, 18, 99, 5)), "outside every configured subnet"),
            ]
        );
    }

    /// One MAC with a lease on each of two subnets (two VLANs of one router): both rows are
    /// kept, each in its subnet's scope, and both stay in the tables built from them.
    #[test]
    fn a_client_with_leases_on_two_subnets_keeps_both() {
        let c = Config::parse(
            "t",
            "[[subnet]]\nsubnet = \"198.18.21.0/24\"\n[[subnet.pool]]\nrange = \"198.18.21.100-198.18.21.199\"\n\
             [[subnet]]\nsubnet = \"198.18.22.0/24\"\n[[subnet.pool]]\nrange = \"198.18.22.100-198.18.22.199\"\n",
        )
        .unwrap();
        let csv = format!(
            "{KEA_CSV_HEADER}\n\
             198.18.21.100,02:aa:00:00:00:07,,3600,1796156859,1,0,0,,0,\n\
             198.18.22.100,02:aa:00:00:00:07,,3600,1796156859,2,0,0,,0,\n"
        );
        let imp = read_kea_csv(&csv, &c, 1_796_000_000).unwrap();
        let keys: Vec<ClientKey> = imp.leases.iter().map(|l| l.key).collect();
        assert_eq!(
            keys,
            vec![ClientKey::hw(1, &[2, 0xaa, 0, 0, 0, 7], 1), ClientKey::hw(1, &[2, 0xaa, 0, 0, 0, 7], 2)]
        );
        let db = crate::leases::LeaseDb::new(&c, 1, imp.leases.clone(), 1_796_000_000);
        assert_eq!(db.all_leases().len(), 2, "both kept in the tables");
    }

    /// Kea's lease object: valid-lft from the subnet (the probation for a declined address),
    /// cltt = expiry − valid-lft, client-id only when the key is one, Kea's state numbers.
    #[test]
    fn the_lease_object_has_keas_shape() {
        let c = cfg();
        let csv = format!(
            "{KEA_CSV_HEADER}\n198.18.21.101,02:aa:00:00:00:01,01:02:03,3600,1796156859,1,0,0,,0,\n\
             198.18.21.102,,,86400,1796156859,1,0,0,,1,\n"
        );
        let imp = read_kea_csv(&csv, &c, 1).unwrap();
        let bound = lease_json(&imp.leases[0], |_| None, &c);
        let lt = u64::from(c.subnets[0].lease_time);
        assert_eq!(bound["ip-address"], "198.18.21.101");
        assert_eq!(bound["hw-address"], "02:aa:00:00:00:01");
        assert_eq!(bound["client-id"], "01:02:03");
        assert_eq!(bound["valid-lft"], lt);
        assert_eq!(bound["cltt"], 1_796_156_859 - lt);
        assert_eq!((bound["subnet-id"].clone(), bound["state"].clone()), (serde_json::json!(1), serde_json::json!(0)));
        let declined = lease_json(&imp.leases[1], |_| None, &c);
        assert_eq!(declined["state"], 1);
        assert_eq!(declined["valid-lft"], u64::from(c.decline_probation));
        assert!(declined.get("client-id").is_none());
    }

    #[test]
    fn written_files_read_back_the_same() {
        let c = cfg();
        let csv = format!("{KEA_CSV_HEADER}\n198.18.21.101,02:aa:00:00:00:01,01:02:03,3600,1796156859,1,0,0,,0,\n");
        let imp = read_kea_csv(&csv, &c, 1).unwrap();
        let out = write_kea_csv(&imp.leases, &imp.attrs, &c);
        assert!(out.starts_with(KEA_CSV_HEADER));
        assert!(out.contains("198.18.21.101,02:aa:00:00:00:01,01:02:03,3600,1796156859,1,0,0,,0,"), "{out}");
        assert_eq!(read_kea_csv(&out, &c, 1).unwrap().leases, imp.leases);
    }

    /// The hostname column comes in with the lease (Kea's comma escape undone) and goes out the
    /// same way; lease4-get shows it.
    #[test]
    fn host_names_come_and_go_with_the_csv() {
        let c = cfg();
        let csv = format!(
            "{KEA_CSV_HEADER}\n198.18.21.101,02:aa:00:00:00:01,,3600,1796156859,1,0,0,cpe-1.example.net,0,\n\
             198.18.21.102,02:aa:00:00:00:02,,3600,1796156859,1,0,0,odd&#x2cname,0,\n\
             198.18.21.103,02:aa:00:00:00:03,,3600,1796156859,1,0,0,,0,\n"
        );
        let imp = read_kea_csv(&csv, &c, 1).unwrap();
        assert_eq!(imp.leases.len(), 3, "{:?}", imp.skipped);
        let name =
            |i: usize| imp.attrs.get(&(Attr::Name, imp.leases[i].key)).map(|n| String::from_utf8_lossy(n).into_owned());
        assert_eq!(
            (name(0).as_deref(), name(1).as_deref(), name(2)),
            (Some("cpe-1.example.net"), Some("odd,name"), None)
        );
        assert_eq!(
            lease_json(&imp.leases[0], |a| imp.attrs.get(&(a, imp.leases[0].key)).cloned(), &c)["hostname"],
            "cpe-1.example.net"
        );
        let out = write_kea_csv(&imp.leases, &imp.attrs, &c);
        assert!(out.contains(",1,0,0,cpe-1.example.net,0,") && out.contains(",0,0,odd&#x2cname,0,"), "{out}");
        assert_eq!(read_kea_csv(&out, &c, 1).unwrap().attrs, imp.attrs);
    }

    /// Kea's extended info (`store-extended-info`: the relay's option 82 in the user context,
    /// both of its shapes) comes in as the lease's option 82 and its line's tags, and goes out
    /// the same way; lease4-get shows it as Kea does.
    #[test]
    fn relay_agent_info_comes_and_goes_with_the_user_context() {
        let c = cfg();
        let csv = format!(
            "{KEA_CSV_HEADER}\n198.18.21.101,02:aa:00:00:00:01,,3600,1796156859,1,0,0,,0,\
             {{ \"ISC\": {{ \"relay-agent-info\": {{ \"sub-options\": \"0x0104AABBCCDD0203637065\"&#x2c \"remote-id\": \"637065\" }} }} }}\n\
             198.18.21.102,02:aa:00:00:00:02,,3600,1796156859,1,0,0,,0,{{ \"ISC\": {{ \"relay-agent-info\": \"0x020178\" }} }}\n\
             198.18.21.103,02:aa:00:00:00:03,,3600,1796156859,1,0,0,,0,{{ \"ISC\": {{ \"relay-agent-info\": \"zz\" }} }}\n"
        );
        let imp = read_kea_csv(&csv, &c, 1).unwrap();
        assert_eq!(imp.leases.len(), 3, "{:?}", imp.skipped);
        let rai = |i: usize| imp.attrs.get(&(Attr::RelayInfo, imp.leases[i].key)).map(|v| v.to_vec());
        let first = [1, 4, 0xaa, 0xbb, 0xcc, 0xdd, 2, 3, b'c', b'p', b'e'];
        assert_eq!((rai(0).as_deref(), rai(1).as_deref(), rai(2)), (Some(&first[..]), Some(&[2, 1, b'x'][..]), None));
        assert_eq!(imp.leases[0].tags.remote, crate::leases::Tags::of(b"cpe"));
        let json = lease_json(&imp.leases[0], |a| imp.attrs.get(&(a, imp.leases[0].key)).cloned(), &c);
        assert_eq!(json["user-context"]["ISC"]["relay-agent-info"]["sub-options"], "0x0104AABBCCDD0203637065");
        let out = write_kea_csv(&imp.leases, &imp.attrs, &c);
        let again = read_kea_csv(&out, &c, 1).unwrap();
        assert_eq!((again.attrs, again.leases), (imp.attrs, imp.leases));
    }
}
