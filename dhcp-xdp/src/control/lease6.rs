//! The `lease6-*` commands (DHCPv6) in Kea's lease6 shape: reads from the v6 lease table, edits
//! made durable in the lease store before the answer (as a REPLY is).

use std::net::Ipv6Addr;

use dhcp_xdp_core::{
    dhcp6::IaKind,
    leases::v6::{Key6, Lease6, Lease6State},
    net::colon_hex,
};

use super::*;

/// Kea's name of an IA type.
fn type_name(k: IaKind) -> &'static str {
    match k {
        IaKind::Na => "IA_NA",
        IaKind::Pd => "IA_PD",
    }
}

/// A lease in Kea's lease6 shape.
fn lease6_json(l: &Lease6) -> Value {
    json!({
        "ip-address": l.addr.to_string(),
        "prefix-len": l.len,
        "type": type_name(l.key.kind),
        "duid": colon_hex(&l.key.duid),
        "iaid": l.key.iaid,
        "subnet-id": l.key.subnet,
        "valid-lft": l.valid,
        "preferred-lft": l.preferred,
        "cltt": l.expires.saturating_sub(l.valid),
        "state": if l.state == Lease6State::Declined { 1 } else { 0 },
        "fqdn-fwd": false,
        "fqdn-rev": false,
        "hostname": "",
    })
}

impl Control {
    /// Bound and declined v6 leases that have not ended, by address.
    fn leases6(&self, keep: impl Fn(&Lease6) -> bool) -> Vec<Lease6> {
        let now = unix_now();
        let rt = self.shared.runtime();
        let t = rt.table6();
        let mut v: Vec<Lease6> =
            t.leases().filter(|l| l.state != Lease6State::Advertised && l.expires > now && keep(l)).cloned().collect();
        v.sort_by_key(|l| (u128::from(l.addr), l.len));
        v
    }

    pub(super) fn lease6_get_all(&self, args: &Value) -> Value {
        let subnets: Option<Vec<u64>> =
            args.get("subnets").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_u64).collect());
        let leases = self.leases6(|l| subnets.as_ref().is_none_or(|s| s.contains(&u64::from(l.key.subnet))));
        if leases.is_empty() {
            return with_args(3, "0 IPv6 lease(s) found.", json!({ "leases": [] }));
        }
        let n = leases.len();
        with_args(
            0,
            format!("{n} IPv6 lease(s) found."),
            json!({ "leases": leases.iter().map(lease6_json).collect::<Vec<_>>() }),
        )
    }

    pub(super) fn lease6_get(&self, args: &Value) -> Value {
        let found = if let Some(a) = args.get("ip-address").and_then(Value::as_str) {
            let Ok(addr) = a.parse::<Ipv6Addr>() else { return answer(1, format!("'{a}' is not an IPv6 address")) };
            self.leases6(|l| l.addr == addr).into_iter().next()
        } else {
            let key = match key6(args) {
                Ok(k) => k,
                Err(e) => return answer(1, e),
            };
            self.leases6(|l| l.key == key).into_iter().next()
        };
        match found {
            Some(l) => with_args(0, "IPv6 lease found.", lease6_json(&l)),
            None => answer(3, "Lease not found."),
        }
    }

    pub(super) fn lease6_get_by_duid(&self, args: &Value) -> Value {
        let Some(d) = args.get("duid").and_then(Value::as_str).and_then(dhcp_xdp_core::config::parse_hex) else {
            return answer(1, "lease6-get-by-duid takes a duid in hex");
        };
        let leases = self.leases6(|l| *l.key.duid == *d);
        let n = leases.len();
        with_args(
            if n == 0 { 3 } else { 0 },
            format!("{n} IPv6 lease(s) found."),
            json!({ "leases": leases.iter().map(lease6_json).collect::<Vec<_>>() }),
        )
    }
}

impl Control {
    /// Runs `edit` on the v6 table and makes what it changed durable before answering (as a
    /// REPLY waits): the changes are numbered under the table's lock.
    fn edit6<T>(&self, edit: impl FnOnce(&mut dhcp_xdp_core::leases::v6::Table6) -> T) -> Result<T, String> {
        let rt = self.shared.runtime();
        let (out, stamped) = {
            let mut t = rt.table6();
            let out = edit(&mut t);
            let mut changes = vec![];
            t.drain_changes(&mut changes);
            let stamped: Vec<(u64, Change)> = rt.db.numbered(changes.into_iter()).collect();
            (out, stamped)
        };
        self.make_durable(&stamped)?;
        Ok(out)
    }

    pub(super) fn lease6_del(&self, args: &Value) -> Value {
        let target = if let Some(a) = args.get("ip-address").and_then(Value::as_str) {
            let Ok(addr) = a.parse::<Ipv6Addr>() else { return answer(1, format!("'{a}' is not an IPv6 address")) };
            let len = args.get("prefix-len").and_then(Value::as_u64).map_or(128, |l| l.min(128) as u8);
            // An address, or the prefix starting there (its length from the lease when not given).
            self.leases6(|l| l.addr == addr && (l.len == len || args.get("prefix-len").is_none()))
                .into_iter()
                .next()
                .map(|l| (l.addr, l.len))
        } else {
            match key6(args) {
                Ok(k) => self.leases6(|l| l.key == k).into_iter().next().map(|l| (l.addr, l.len)),
                Err(e) => return answer(1, e),
            }
        };
        let Some((addr, len)) = target else { return answer(3, "IPv6 lease not found.") };
        // In cluster mode: refused when another live node serves it; a gone node's row goes now.
        let elsewhere = match self.shared.store.admin_removal(crate::store::AdminRemoval::Lease6(addr, len)) {
            Ok(n) => n,
            Err(why) => return answer(1, why),
        };
        match self.edit6(|t| t.admin_remove(addr, len)) {
            Ok(true) => answer(0, "IPv6 lease deleted."),
            Ok(false) if elsewhere > 0 => answer(0, "IPv6 lease deleted."),
            Ok(false) => answer(3, "IPv6 lease not found."),
            Err(e) => answer(1, e),
        }
    }

    pub(super) fn lease6_wipe(&self, args: &Value) -> Value {
        let subnet = args.get("subnet-id").and_then(Value::as_u64).filter(|&s| s != 0).map(|s| s as u32);
        let what = subnet.map(|s| s.to_string()).unwrap_or_else(|| "all".into());
        let elsewhere = match self.shared.store.admin_removal(crate::store::AdminRemoval::Subnet6(subnet)) {
            Ok(n) => n as usize,
            Err(why) => return answer(1, why),
        };
        match self.edit6(|t| t.admin_wipe(subnet)).map(|n| n.max(elsewhere)) {
            Ok(0) => answer(3, format!("Deleted 0 IPv6 lease(s) from subnet(s) {what}")),
            Ok(n) => answer(0, format!("Deleted {n} IPv6 lease(s) from subnet(s) {what}")),
            Err(e) => answer(1, e),
        }
    }

    pub(super) fn lease6_put(&self, args: &Value, replace: bool) -> Value {
        let rt = self.shared.runtime();
        let Some(addr) = args.get("ip-address").and_then(Value::as_str).and_then(|a| a.parse::<Ipv6Addr>().ok()) else {
            return answer(1, "ip-address is missing or not an IPv6 address");
        };
        let mut a = args.clone();
        let subnet = match args.get("subnet-id").and_then(Value::as_u64).filter(|&s| s != 0) {
            Some(s) => s,
            None => {
                match rt.cfg.subnets6.iter().find(|s| s.contains(addr) || s.pd_pools.iter().any(|p| p.contains(addr))) {
                    Some(s) => u64::from(s.id),
                    None => return answer(1, format!("no subnet6 holds {addr}")),
                }
            }
        };
        a["subnet-id"] = json!(subnet);
        let key = match key6(&a) {
            Ok(k) => k,
            Err(_) => return answer(1, "lease6-add takes ip-address, duid, iaid, type (IA_NA, IA_PD) and subnet-id"),
        };
        let len = match key.kind {
            IaKind::Na => 128,
            IaKind::Pd => match args.get("prefix-len").and_then(Value::as_u64).filter(|l| (1..=128).contains(l)) {
                Some(l) => l as u8,
                None => return answer(1, "an IA_PD lease takes prefix-len"),
            },
        };
        let Some(s) = rt.cfg.subnets6.iter().find(|s| s.id == key.subnet) else {
            return answer(1, format!("no subnet6 with id {}", key.subnet));
        };
        let secs = |name: &str, default: u32| -> Result<u32, Value> {
            match args.get(name) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| answer(1, format!("{name} {v} is not a number of seconds from 0 to {}", u32::MAX))),
            }
        };
        let (valid, preferred) = match (secs("valid-lft", s.valid), secs("preferred-lft", s.preferred)) {
            (Ok(v), Ok(p)) => (v, p.min(v)),
            (Err(e), _) | (_, Err(e)) => return e,
        };
        let now = unix_now();
        let state = if args.get("state").and_then(Value::as_u64) == Some(1) {
            Lease6State::Declined
        } else {
            Lease6State::Bound
        };
        let lease = Lease6 {
            key,
            addr,
            len,
            preferred,
            valid,
            expires: now.saturating_add(valid),
            state,
            tags: Default::default(),
            relay: 0,
        };
        let cfg = rt.cfg.clone();
        match self.edit6(|t| t.admin_put(&cfg, lease, replace, now)) {
            Ok(Ok(())) if replace => answer(0, "IPv6 lease updated."),
            Ok(Ok(())) => answer(0, format!("Lease for address {addr}, subnet-id {subnet} added.")),
            Ok(Err(e)) if e == "no such lease" => {
                answer(3, format!("failed to update the lease with address {addr}: no such lease"))
            }
            Ok(Err(e)) => answer(1, e),
            Err(e) => answer(1, e),
        }
    }
}

/// The key a `lease6-get` names: `duid`, `iaid`, `type` (default IA_NA) and `subnet-id`.
fn key6(args: &Value) -> Result<Key6, String> {
    let usage = "lease6-get takes ip-address, or duid, iaid, subnet-id and type";
    let duid = args.get("duid").and_then(Value::as_str).and_then(dhcp_xdp_core::config::parse_hex).ok_or(usage)?;
    let iaid = args.get("iaid").and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok()).ok_or(usage)?;
    let subnet = args.get("subnet-id").and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok()).ok_or(usage)?;
    let kind = match args.get("type").and_then(Value::as_str).unwrap_or("IA_NA") {
        "IA_NA" => IaKind::Na,
        "IA_PD" => IaKind::Pd,
        other => return Err(format!("type '{other}' is neither IA_NA nor IA_PD")),
    };
    Ok(Key6 { kind, subnet, duid: std::sync::Arc::from(duid), iaid })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dhcp_xdp_core::{engine4::ServerIdentity, leases::LeaseDb};
    use serde_json::json;

    use super::super::tests::call;
    use super::*;
    use crate::serve::{Runtime, Shared};

    fn control6() -> Arc<Control> {
        let cfg = Config::parse(
            "t",
            "[[subnet6]]\nsubnet = \"2001:db8:1::/64\"\nid = 5\n[[subnet6.pool]]\nrange = \"2001:db8:1::10-2001:db8:1::20\"\n\
             [[subnet6.pd-pool]]\nprefix = \"2001:db8:100::\"\nprefix-len = 48\ndelegated-len = 56\n",
        )
        .unwrap();
        let db = Arc::new(LeaseDb::new(&cfg, 1, [], 100));
        let server = ServerIdentity { mac: [0; 6], addrs: vec![] };
        let shared = Arc::new(Shared::new(
            Runtime::new(Arc::new(cfg), db),
            server,
            &[0],
            Arc::new(crate::store::Memory::default()),
        ));
        let (tx, _rx) = std::sync::mpsc::channel();
        Arc::new(Control::new(shared, vec![], tx))
    }

    /// `config-get` shows the v6 subnets in Kea's `Dhcp6` names, and the description names them.
    #[test]
    fn config_get_shows_the_v6_subnets() {
        let c = control6();
        let a = call(&c, "config-get", json!({}));
        let s = &a["arguments"]["Dhcp6"]["subnet6"][0];
        assert_eq!((s["id"].clone(), s["subnet"].clone()), (json!(5), json!("2001:db8:1::/64")), "{a}");
        assert_eq!(s["pools"][0]["pool"], "2001:db8:1::10 - 2001:db8:1::20");
        assert_eq!(s["pd-pools"][0], json!({ "prefix": "2001:db8:100::", "prefix-len": 48, "delegated-len": 56 }));
        assert!(a["arguments"]["dhcp-xdp"]["described"].as_str().unwrap().contains("subnet6 5 2001:db8:1::/64"));
    }

    /// Kea's lease6 commands: add (address and prefix), refused twice or on another's address
    /// or off the link, get by address and by key, update, delete by address and by key, wipe.
    #[test]
    fn lease6_leases_are_added_found_updated_deleted_and_wiped() {
        let c = control6();
        let na = json!({ "ip-address": "2001:db8:1::15", "duid": "00:03:00:01:02:00:00:00:00:01", "iaid": 7, "type": "IA_NA" });
        let add = call(&c, "lease6-add", na.clone());
        assert_eq!(add["result"], 0, "{add}");
        assert_eq!(add["text"], "Lease for address 2001:db8:1::15, subnet-id 5 added.");
        assert_eq!(call(&c, "lease6-add", na.clone())["result"], 1, "the same key twice");
        let other = json!({ "ip-address": "2001:db8:1::15", "duid": "00:03:00:01:02:00:00:00:00:02", "iaid": 1 });
        let taken = call(&c, "lease6-add", other);
        assert!(taken["result"] == 1 && taken["text"].as_str().unwrap().contains("held by another"), "{taken}");
        let off = json!({ "ip-address": "2001:db8:9::1", "duid": "00:03:00:01:02:00:00:00:00:03", "iaid": 1, "subnet-id": 5 });
        assert_eq!(call(&c, "lease6-add", off)["result"], 1, "off the link");
        let pd = json!({ "ip-address": "2001:db8:100:200::", "prefix-len": 56, "duid": "00:03:00:01:02:00:00:00:00:01", "iaid": 8, "type": "IA_PD", "valid-lft": 900 });
        assert_eq!(call(&c, "lease6-add", pd)["result"], 0);
        let got = call(&c, "lease6-get", json!({ "ip-address": "2001:db8:1::15" }));
        assert_eq!((got["result"].clone(), got["arguments"]["iaid"].clone()), (json!(0), json!(7)), "{got}");
        let by_key = call(
            &c,
            "lease6-get",
            json!({ "duid": "00:03:00:01:02:00:00:00:00:01", "iaid": 8, "type": "IA_PD", "subnet-id": 5 }),
        );
        assert_eq!(by_key["arguments"]["valid-lft"], 900, "{by_key}");
        assert_eq!(by_key["arguments"]["prefix-len"], 56);
        let mut moved = na.clone();
        moved["ip-address"] = json!("2001:db8:1::16");
        assert_eq!(call(&c, "lease6-update", moved)["result"], 0);
        assert_eq!(call(&c, "lease6-get", json!({ "ip-address": "2001:db8:1::15" }))["result"], 3, "moved away");
        let mut nobody = na.clone();
        nobody["iaid"] = json!(99);
        assert_eq!(call(&c, "lease6-update", nobody)["result"], 3);
        assert_eq!(call(&c, "lease6-get-all", json!({}))["arguments"]["leases"].as_array().unwrap().len(), 2);
        assert_eq!(call(&c, "lease6-del", json!({ "ip-address": "2001:db8:1::16" }))["result"], 0);
        assert_eq!(call(&c, "lease6-del", json!({ "ip-address": "2001:db8:1::16" }))["result"], 3);
        let wipe = call(&c, "lease6-wipe", json!({ "subnet-id": 5 }));
        assert_eq!(
            (wipe["result"].clone(), wipe["text"].clone()),
            (json!(0), json!("Deleted 1 IPv6 lease(s) from subnet(s) 5"))
        );
        assert_eq!(call(&c, "lease6-get-all", json!({}))["result"], 3);
        // The pool's numbers came back: the whole pool is free.
        assert_eq!(c.shared.runtime().table6().available(5, IaKind::Pd), 256);
    }
}
