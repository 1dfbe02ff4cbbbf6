//! The `lease6-*` commands (DHCPv6): reads from the v6 lease table in Kea's lease6 shape.

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
    Ok(Key6 { kind, subnet, duid: duid.into_boxed_slice(), iaid })
}
