//! The DHCPv6 half of the conversion: Kea's `Dhcp6` object and dhcpd's `subnet6` blocks and
//! v6 hosts into `[[subnet6]]` sections (pools, pd-pools, reservations by DUID, lifetimes,
//! interface-id, rapid commit, DNS servers, search list, preference). What cannot be carried
//! over is listed, as for v4.

use std::net::Ipv6Addr;

use serde_json::{Map, Value};
use toml::{Table, Value as Toml};

use super::{Ctx, Node};

/// A Kea v6 pool (`first - last` or `prefix/len`) as our `first-last`.
fn pool_range6(pool: &str) -> Option<String> {
    if let Some((a, b)) = pool.split_once('-') {
        let (a, b): (Ipv6Addr, Ipv6Addr) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        return Some(format!("{a}-{b}"));
    }
    let (a, len) = pool.split_once('/')?;
    let (a, len): (Ipv6Addr, u32) = (a.trim().parse().ok()?, len.trim().parse().ok()?);
    if len > 128 {
        return None;
    }
    let host = u128::MAX.checked_shr(len).unwrap_or(0);
    let first = u128::from(a) & !host;
    Some(format!("{}-{}", Ipv6Addr::from(first), Ipv6Addr::from(first | host)))
}

/// The settings Kea allows globally and per subnet that `[[subnet6]]` takes per subnet.
const LIFETIMES6: [(&str, &str); 5] = [
    ("valid-lifetime", "valid-lifetime"),
    ("preferred-lifetime", "preferred-lifetime"),
    ("renew-timer", "renew-timer"),
    ("rebind-timer", "rebind-timer"),
    ("rapid-commit", "rapid-commit"),
];

impl Ctx {
    /// Kea's v6 `option-data` into `t` (the subnet's table: `options`, and `preference`).
    fn options6(&mut self, path: &str, data: Option<&Value>, t: &mut Table) {
        let Some(list) = data.and_then(Value::as_array) else { return };
        let mut o = Table::new();
        let list_of = |d: &str| Toml::Array(d.split(',').map(|s| Toml::String(s.trim().into())).collect());
        for (i, opt) in list.iter().enumerate() {
            let p = format!("{path}.option-data[{i}]");
            let name = opt.get("name").and_then(Value::as_str);
            let code = opt.get("code").and_then(Value::as_u64);
            let data = opt.get("data").and_then(Value::as_str).unwrap_or("");
            match (name, code) {
                (Some("dns-servers"), _) | (None, Some(23)) => {
                    o.insert("dns-servers".into(), list_of(data));
                }
                (Some("domain-search"), _) | (None, Some(24)) => {
                    o.insert("domain-search".into(), list_of(data));
                }
                (Some("preference"), _) | (None, Some(7)) => match data.trim().parse::<u8>() {
                    Ok(v) => {
                        t.insert("preference".into(), Toml::Integer(i64::from(v)));
                    }
                    Err(_) => self.skip(&p, "preference is not a number from 0 to 255"),
                },
                _ => self.skip(
                    &p,
                    &format!(
                        "DHCPv6 option {} is not supported (dns-servers, domain-search and preference are)",
                        name.map(str::to_owned).or(code.map(|c| c.to_string())).unwrap_or_default()
                    ),
                ),
            }
        }
        if !o.is_empty() {
            t.insert("options".into(), Toml::Table(o));
        }
    }

    /// One Kea `subnet6` entry; `global` holds the `Dhcp6`-level lifetimes it inherits.
    fn subnet6(&mut self, path: &str, s: &Map<String, Value>, global: &Table) -> Option<Table> {
        let Some(prefix) = s.get("subnet").and_then(Value::as_str) else {
            self.skip(path, "a subnet6 without `subnet`");
            return None;
        };
        let mut t = global.clone();
        t.insert("subnet".into(), Toml::String(prefix.into()));
        if let Some(id) = s.get("id").and_then(Value::as_i64) {
            t.insert("id".into(), Toml::Integer(id));
        }
        if let Some(iid) = s.get("interface-id").and_then(Value::as_str) {
            t.insert("interface-id".into(), Toml::String(iid.into()));
        }
        for (kea, ours) in LIFETIMES6 {
            match s.get(kea) {
                Some(Value::Number(n)) => {
                    t.insert(ours.into(), Toml::Integer(n.as_i64().unwrap_or(0)));
                }
                Some(Value::Bool(b)) => {
                    t.insert(ours.into(), Toml::Boolean(*b));
                }
                _ => {}
            }
        }
        self.options6(path, s.get("option-data"), &mut t);
        let mut pools = vec![];
        for (i, p) in s.get("pools").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let pp = format!("{path}.pools[{i}]");
            let Some(range) = p.get("pool").and_then(Value::as_str) else { continue };
            match pool_range6(range) {
                Some(r) => {
                    let mut pt = Table::new();
                    pt.insert("range".into(), Toml::String(r));
                    pools.push(Toml::Table(pt));
                }
                None => self.skip(&pp, &format!("pool `{range}` is neither FIRST - LAST nor PREFIX/LEN")),
            }
            for k in p.as_object().into_iter().flat_map(|m| m.keys()).filter(|k| *k != "pool") {
                self.skip(&format!("{pp}.{k}"), "not supported");
            }
        }
        if !pools.is_empty() {
            t.insert("pool".into(), Toml::Array(pools));
        }
        let mut pd = vec![];
        for (i, p) in s.get("pd-pools").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let pp = format!("{path}.pd-pools[{i}]");
            let mut pt = Table::new();
            for k in ["prefix", "prefix-len", "delegated-len"] {
                match p.get(k) {
                    Some(Value::String(v)) => {
                        pt.insert(k.into(), Toml::String(v.clone()));
                    }
                    Some(Value::Number(n)) => {
                        pt.insert(k.into(), Toml::Integer(n.as_i64().unwrap_or(0)));
                    }
                    _ => {}
                }
            }
            for k in p.as_object().into_iter().flat_map(|m| m.keys()) {
                if !matches!(k.as_str(), "prefix" | "prefix-len" | "delegated-len") {
                    self.skip(&format!("{pp}.{k}"), "not supported");
                }
            }
            if pt.len() == 3 {
                pd.push(Toml::Table(pt));
            } else {
                self.skip(&pp, "a pd-pool needs prefix, prefix-len and delegated-len");
            }
        }
        if !pd.is_empty() {
            t.insert("pd-pool".into(), Toml::Array(pd));
        }
        let mut res = vec![];
        for (i, r) in s.get("reservations").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let rp = format!("{path}.reservations[{i}]");
            let mut rt = Table::new();
            if let Some(d) = r.get("duid").and_then(Value::as_str) {
                rt.insert("duid".into(), Toml::String(d.into()));
            }
            for k in ["ip-addresses", "prefixes"] {
                if let Some(list) = r.get(k).and_then(Value::as_array) {
                    let v: Vec<Toml> = list.iter().filter_map(Value::as_str).map(|s| Toml::String(s.into())).collect();
                    rt.insert(k.into(), Toml::Array(v));
                }
            }
            for k in r.as_object().into_iter().flat_map(|m| m.keys()) {
                if !matches!(k.as_str(), "duid" | "ip-addresses" | "prefixes" | "hostname") {
                    self.skip(&format!("{rp}.{k}"), "not supported (DHCPv6 reservations are by duid here)");
                }
            }
            if rt.contains_key("duid") && (rt.contains_key("ip-addresses") || rt.contains_key("prefixes")) {
                res.push(Toml::Table(rt));
            } else {
                self.skip(&rp, "a reservation needs a duid and ip-addresses or prefixes");
            }
        }
        if !res.is_empty() {
            t.insert("reservation".into(), Toml::Array(res));
        }
        for k in s.keys() {
            let known = [
                "subnet",
                "id",
                "interface-id",
                "valid-lifetime",
                "preferred-lifetime",
                "renew-timer",
                "rebind-timer",
                "rapid-commit",
                "option-data",
                "pools",
                "pd-pools",
                "reservations",
            ];
            if !known.contains(&k.as_str()) {
                self.skip(&format!("{path}.{k}"), "not supported");
            }
        }
        Some(t)
    }

    /// Kea's `Dhcp6` object: its subnets (shared networks flattened) as `[[subnet6]]` tables.
    pub(super) fn kea_dhcp6(&mut self, d: &Map<String, Value>) -> Vec<Toml> {
        let mut global = Table::new();
        for (kea, ours) in LIFETIMES6 {
            match d.get(kea) {
                Some(Value::Number(n)) => {
                    global.insert(ours.into(), Toml::Integer(n.as_i64().unwrap_or(0)));
                }
                Some(Value::Bool(b)) => {
                    global.insert(ours.into(), Toml::Boolean(*b));
                }
                _ => {}
            }
        }
        let mut global_options = Table::new();
        self.options6("Dhcp6", d.get("option-data"), &mut global_options);
        let mut subnets = vec![];
        let mut one = |cx: &mut Self, path: String, s: &Value| {
            if let Some(mut t) = s.as_object().and_then(|s| cx.subnet6(&path, s, &global)) {
                // Global options under the subnet's own.
                for (k, v) in &global_options {
                    match (t.get_mut(k), v) {
                        (Some(Toml::Table(mine)), Toml::Table(theirs)) => {
                            for (ok, ov) in theirs {
                                mine.entry(ok.clone()).or_insert_with(|| ov.clone());
                            }
                        }
                        (None, v) => {
                            t.insert(k.clone(), v.clone());
                        }
                        _ => {}
                    }
                }
                subnets.push(Toml::Table(t));
            }
        };
        for (i, s) in d.get("subnet6").and_then(Value::as_array).into_iter().flatten().enumerate() {
            one(self, format!("Dhcp6.subnet6[{i}]"), s);
        }
        for (n, net) in d.get("shared-networks").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let np = format!("Dhcp6.shared-networks[{n}]");
            for k in net.as_object().into_iter().flat_map(|m| m.keys()) {
                if !matches!(k.as_str(), "name" | "subnet6") {
                    self.skip(
                        &format!("{np}.{k}"),
                        "shared-network level settings are not supported; set them per subnet",
                    );
                }
            }
            for (i, s) in net.get("subnet6").and_then(Value::as_array).into_iter().flatten().enumerate() {
                one(self, format!("{np}.subnet6[{i}]"), s);
            }
        }
        for k in d.keys() {
            match k.as_str() {
                "valid-lifetime" | "preferred-lifetime" | "renew-timer" | "rebind-timer" | "rapid-commit"
                | "option-data" | "subnet6" | "shared-networks" => {}
                "interfaces-config" => {
                    self.skip("Dhcp6.interfaces-config", "the interface is `--iface` of `dhcp-xdp run`")
                }
                "lease-database" => self.skip(
                    "Dhcp6.lease-database",
                    "leases live in --state-dir; move them with `dhcp-xdp import --kea-csv` (kea-leases6.csv)",
                ),
                "server-id" => self.skip("Dhcp6.server-id", "the server DUID is made once and kept in --state-dir"),
                "control-socket" => self.skip("Dhcp6.control-socket", "set [control] socket (the commands are Kea's)"),
                "loggers" => self.skip("Dhcp6.loggers", "the daemon logs to stderr / the journal"),
                other => self.skip(&format!("Dhcp6.{other}"), "not supported"),
            }
        }
        subnets
    }

    /// A dhcpd `subnet6 PREFIX { … }` block: `range6` (FIRST LAST, or PREFIX/LEN), `prefix6
    /// FIRST LAST /LEN` (an aligned block of prefixes), the v6 options; hosts inside go to
    /// `hosts`.
    pub(super) fn dhcpd_subnet6<'a>(
        &mut self,
        n: &'a Node,
        id: i64,
        hosts: &mut Vec<(&'a Node, Table)>,
    ) -> Option<(Ipv6Addr, u8, Table)> {
        let Some((addr, len)) = n
            .words
            .get(1)
            .and_then(|w| w.split_once('/'))
            .and_then(|(a, l)| Some((a.parse::<Ipv6Addr>().ok()?, l.parse::<u8>().ok().filter(|l| *l <= 128)?)))
        else {
            self.dhcpd_skip(n, "not `subnet6 PREFIX/LEN`");
            return None;
        };
        let mut t = Table::new();
        t.insert("subnet".into(), Toml::String(format!("{addr}/{len}")));
        t.insert("id".into(), Toml::Integer(id));
        let (mut pools, mut pd, mut options) = (vec![], vec![], Table::new());
        for c in n.body.iter().flatten() {
            let w: Vec<&str> = c.words.iter().map(String::as_str).collect();
            match (w.as_slice(), &c.body) {
                (["range6", a, b], None) if !b.starts_with("temporary") => {
                    let mut p = Table::new();
                    p.insert("range".into(), Toml::String(format!("{a}-{b}")));
                    pools.push(Toml::Table(p));
                }
                (["range6", p], None) => match pool_range6(p) {
                    Some(r) => {
                        let mut pt = Table::new();
                        pt.insert("range".into(), Toml::String(r));
                        pools.push(Toml::Table(pt));
                    }
                    None => self.dhcpd_skip(c, "not a range"),
                },
                (["prefix6", a, b, l], None) => match prefix_block(a, b, l) {
                    Some((p, plen, dlen)) => {
                        let mut pt = Table::new();
                        pt.insert("prefix".into(), Toml::String(p.to_string()));
                        pt.insert("prefix-len".into(), Toml::Integer(i64::from(plen)));
                        pt.insert("delegated-len".into(), Toml::Integer(i64::from(dlen)));
                        pd.push(Toml::Table(pt));
                    }
                    None => self.dhcpd_skip(c, "its prefixes are not one aligned block (a pd-pool is PREFIX/LEN)"),
                },
                (["option", "dhcp6.name-servers", rest @ ..], None) => {
                    let v = rest.iter().map(|s| Toml::String(s.to_string())).collect();
                    options.insert("dns-servers".into(), Toml::Array(v));
                }
                (["option", "dhcp6.domain-search", rest @ ..], None) => {
                    let v = rest.iter().map(|s| Toml::String(s.to_string())).collect();
                    options.insert("domain-search".into(), Toml::Array(v));
                }
                (["option", "dhcp6.preference", v], None) => {
                    if let Ok(v) = v.parse::<u8>() {
                        t.insert("preference".into(), Toml::Integer(i64::from(v)));
                    }
                }
                (["option", "dhcp6.rapid-commit"], None) => {
                    t.insert("rapid-commit".into(), Toml::Boolean(true));
                }
                (["default-lease-time", v], None) => {
                    if let Ok(v) = v.parse::<i64>() {
                        t.insert("valid-lifetime".into(), Toml::Integer(v));
                    }
                }
                (["preferred-lifetime", v], None) => {
                    if let Ok(v) = v.parse::<i64>() {
                        t.insert("preferred-lifetime".into(), Toml::Integer(v));
                    }
                }
                (["host", ..], Some(_)) => {
                    if let Some(h) = self.dhcpd_host6(c) {
                        hosts.push((c, h));
                    }
                }
                _ => self.dhcpd_skip(c, "not supported"),
            }
        }
        if !options.is_empty() {
            t.insert("options".into(), Toml::Table(options));
        }
        if !pools.is_empty() {
            t.insert("pool".into(), Toml::Array(pools));
        }
        if !pd.is_empty() {
            t.insert("pd-pool".into(), Toml::Array(pd));
        }
        Some((addr, len, t))
    }

    /// A dhcpd v6 `host` block (`host-identifier option dhcp6.client-id DUID`, `fixed-address6`,
    /// `fixed-prefix6`) as a reservation by DUID.
    pub(super) fn dhcpd_host6(&mut self, n: &Node) -> Option<Table> {
        let mut r = Table::new();
        let (mut addrs, mut prefixes) = (vec![], vec![]);
        for c in n.body.iter().flatten() {
            let w: Vec<&str> = c.words.iter().map(String::as_str).collect();
            match w.as_slice() {
                ["host-identifier", "option", "dhcp6.client-id", duid] => {
                    r.insert("duid".into(), Toml::String(duid.to_string()));
                }
                ["fixed-address6", a] => addrs.push(Toml::String(a.to_string())),
                ["fixed-prefix6", p] => prefixes.push(Toml::String(p.to_string())),
                _ => self.dhcpd_skip(c, "not supported in a DHCPv6 host"),
            }
        }
        if !addrs.is_empty() {
            r.insert("ip-addresses".into(), Toml::Array(addrs));
        }
        if !prefixes.is_empty() {
            r.insert("prefixes".into(), Toml::Array(prefixes));
        }
        if !r.contains_key("duid") || r.len() < 2 {
            self.dhcpd_skip(n, "a DHCPv6 host needs `host-identifier option dhcp6.client-id` and an address or prefix");
            return None;
        }
        Some(r)
    }
}

/// dhcpd's `prefix6 FIRST LAST /LEN` as a pool prefix: (prefix, prefix-len, delegated-len), when
/// FIRST..LAST is exactly one aligned block of /LEN prefixes.
fn prefix_block(first: &str, last: &str, len: &str) -> Option<(Ipv6Addr, u8, u8)> {
    let (a, b): (Ipv6Addr, Ipv6Addr) = (first.parse().ok()?, last.parse().ok()?);
    let dlen: u8 = len.trim_start_matches('/').parse().ok().filter(|l| *l <= 128)?;
    let (a, b) = (u128::from(a), u128::from(b));
    let host = u128::MAX.checked_shr(u32::from(dlen)).unwrap_or(0);
    // The block spans FIRST to the end of LAST's prefix; its size must be a power of two and
    // FIRST aligned to it.
    let span = (b | host).checked_sub(a)?.checked_add(1)?;
    if !span.is_power_of_two() || a & (span - 1) != 0 {
        return None;
    }
    let plen = 128 - span.trailing_zeros() as u8;
    (plen <= dlen).then_some((Ipv6Addr::from(a), plen, dlen))
}

/// Each v6 host into the subnet6 that holds its first address (or the first subnet6 with a
/// pd-pool for a host with prefixes only).
pub(super) fn place_hosts6(cx: &mut Ctx, subnets: &mut [(Ipv6Addr, u8, Table)], hosts: Vec<(&Node, Table)>) {
    for (n, h) in hosts {
        let first: Option<Ipv6Addr> = h
            .get("ip-addresses")
            .and_then(Toml::as_array)
            .and_then(|a| a.first())
            .and_then(Toml::as_str)
            .and_then(|s| s.parse().ok());
        let home = subnets.iter_mut().find(|(p, l, t)| match first {
            Some(a) => crate::config::in_prefix(a, *p, *l),
            None => t.contains_key("pd-pool"),
        });
        match home {
            Some((_, _, s)) => {
                if let Toml::Array(a) = s.entry("reservation").or_insert_with(|| Toml::Array(vec![])) {
                    a.push(Toml::Table(h));
                }
            }
            None => cx.dhcpd_skip(n, "its fixed-address6 is in no declared subnet6"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{convert_dhcpd_conf, convert_kea_config};
    use crate::config::Config;

    const KEA6: &str = r#"
// kea-dhcp6.conf
{ "Dhcp6": {
    "interfaces-config": { "interfaces": ["eth1"] },
    "valid-lifetime": 4000, "preferred-lifetime": 3000, "renew-timer": 1000, "rebind-timer": 2000,
    "option-data": [ { "name": "dns-servers", "data": "2001:db8::53, 2001:db8::54" } ],
    "subnet6": [ {
        "id": 6, "subnet": "2001:db8:1::/64", "interface-id": "olt1/1/1", "rapid-commit": true,
        "option-data": [ { "name": "domain-search", "data": "example.net" }, { "name": "preference", "data": "200" },
                         { "name": "sip-server-addr", "data": "2001:db8::5" } ],
        "pools": [ { "pool": "2001:db8:1::100 - 2001:db8:1::1ff" }, { "pool": "2001:db8:1::1:0/112" } ],
        "pd-pools": [ { "prefix": "2001:db8:100::", "prefix-len": 40, "delegated-len": 56, "excluded-prefix": "2001:db8:100::", "excluded-prefix-len": 64 } ],
        "reservations": [ { "duid": "00:03:00:01:02:00:00:00:00:99", "ip-addresses": ["2001:db8:1::99"], "prefixes": ["2001:db8:1ff:ff00::/56"] },
                          { "hw-address": "02:00:00:00:00:01", "ip-addresses": ["2001:db8:1::98"] } ]
    } ],
    "lease-database": { "type": "memfile" }
} }
"#;

    #[test]
    fn a_kea_dhcp6_configuration_converts_and_lists_what_it_leaves() {
        let c = convert_kea_config(KEA6).unwrap();
        let cfg = Config::parse("converted", &c.toml).unwrap_or_else(|e| panic!("{e}\n{}", c.toml));
        let s = &cfg.subnets6[0];
        assert_eq!((s.id, s.interface_id.as_deref()), (6, Some(&b"olt1/1/1"[..])));
        assert_eq!(
            (s.valid, s.preferred, s.t1, s.t2, s.rapid_commit, s.preference),
            (4000, 3000, 1000, 2000, true, Some(200))
        );
        assert_eq!(s.dns_servers.len(), 2, "the global DNS servers under the subnet's options");
        assert!(!s.domain_search.is_empty());
        assert_eq!(s.pools.iter().map(|p| p.count()).collect::<Vec<_>>(), vec![256, 65_536]);
        assert_eq!((s.pd_pools[0].count(), s.pd_pools[0].delegated_len()), (65_536, 56));
        assert_eq!(s.reservations.len(), 1);
        let left = c.not_carried.join("\n");
        for what in ["sip-server-addr", "excluded-prefix", "hw-address", "lease-database", "interfaces-config"] {
            assert!(left.contains(what), "{what} not listed:\n{left}");
        }
    }

    #[test]
    fn a_dhcpd6_configuration_converts() {
        let conf = r#"
default-lease-time 4000;
subnet6 2001:db8:1::/64 {
    range6 2001:db8:1::100 2001:db8:1::1ff;
    prefix6 2001:db8:100:: 2001:db8:100:ff00:: /56;
    prefix6 2001:db8:200:100:: 2001:db8:200:ff00:: /56;
    option dhcp6.name-servers 2001:db8::53;
    option dhcp6.domain-search "example.net";
    option dhcp6.rapid-commit;
}
host cpe7 {
    host-identifier option dhcp6.client-id 00:03:00:01:02:00:00:00:00:07;
    fixed-address6 2001:db8:1::77;
    fixed-prefix6 2001:db8:1ff:7700::/56;
}
"#;
        let c = convert_dhcpd_conf(conf).unwrap();
        let cfg = Config::parse("converted", &c.toml).unwrap_or_else(|e| panic!("{e}\n{}", c.toml));
        let s = &cfg.subnets6[0];
        assert_eq!(s.pools[0].count(), 256);
        assert_eq!((s.pd_pools[0].count(), s.pd_pools[0].delegated_len()), (256, 56), "2001:db8:100::/48 in /56s");
        assert!(s.rapid_commit && !s.dns_servers.is_empty() && !s.domain_search.is_empty());
        assert_eq!(s.reservations[0].addresses, vec!["2001:db8:1::77".parse::<std::net::Ipv6Addr>().unwrap()]);
        let left = c.not_carried.join("\n");
        assert!(left.contains("2001:db8:200:100::"), "the unaligned prefix6 is listed: {left}");
    }
}
