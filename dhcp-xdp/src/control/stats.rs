//! The `statistic-*` commands in Kea's names, rendered from the one statistics snapshot
//! ([`crate::statistics::Snapshot`]), and the address census per subnet and pool that the
//! metrics share.

use super::*;

impl Control {
    /// Every statistic, Kea's names, before the reset baseline is taken off.
    pub(super) fn raw_statistics(&self) -> Vec<(String, u64)> {
        let snap = crate::statistics::Snapshot::take(&self.shared, &self.workers);
        let drops = |r: DropReason| snap.dropped(r);
        let mut out = vec![];
        out.push(("pkt4-received".to_owned(), snap.received_all));
        // Kea names the DHCP types; BOOTP requests count in pkt4-received only.
        for &(n, v) in snap.received.iter().filter(|(n, _)| *n != "bootp") {
            out.push((format!("pkt4-{n}-received"), v));
        }
        out.push(("pkt4-sent".to_owned(), snap.sent.iter().map(|(_, v)| v).sum::<u64>()));
        for &(n, v) in snap.sent.iter().filter(|(n, _)| *n != "bootp") {
            out.push((format!("pkt4-{n}-sent"), v));
        }
        out.push(("pkt4-parse-failed".to_owned(), drops(DropReason::Malformed)));
        let dropped: u64 = DropReason::ALL.iter().filter(|r| **r != DropReason::Consumed).map(|r| drops(*r)).sum();
        out.push(("pkt4-receive-drop".to_owned(), dropped));
        out.push(("v4-allocation-fail".to_owned(), drops(DropReason::NoAddress)));
        for &(n, v) in &snap.messages6 {
            out.push((n.to_owned(), v));
        }
        // Kea's v6 names: total-nas / assigned-nas for addresses, total-pds / assigned-pds for
        // prefixes, declined-addresses.
        let rt = self.shared.runtime();
        for c in rt.table6().census(&rt.cfg, unix_now()) {
            let kind = if c.kind == dhcp_xdp_core::dhcp6::IaKind::Na { "nas" } else { "pds" };
            out.push((format!("subnet[{}].total-{kind}", c.subnet), c.total));
            out.push((format!("subnet[{}].assigned-{kind}", c.subnet), c.assigned));
            if kind == "nas" {
                out.push((format!("subnet[{}].declined-addresses", c.subnet), c.declined));
            }
        }
        for s in subnet_census(&self.shared, unix_now()) {
            out.push((format!("subnet[{}].total-addresses", s.id), s.total));
            out.push((format!("subnet[{}].assigned-addresses", s.id), s.assigned));
            out.push((format!("subnet[{}].declined-addresses", s.id), s.declined));
            for (pi, p) in s.pools.iter().enumerate() {
                out.push((format!("subnet[{}].pool[{pi}].total-addresses", s.id), p.total));
                out.push((format!("subnet[{}].pool[{pi}].assigned-addresses", s.id), p.assigned));
                out.push((format!("subnet[{}].pool[{pi}].declined-addresses", s.id), p.declined));
            }
        }
        out
    }

    /// Statistics after the last reset (counters only: address counts are states, not
    /// counters, and are never reset).
    pub(super) fn statistics(&self) -> Vec<(String, u64)> {
        let base = self.baseline.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.raw_statistics()
            .into_iter()
            .map(|(n, v)| {
                let b =
                    if n.starts_with("pkt4-") || n.starts_with("v4-") || n.starts_with("pkt6-") || n.starts_with("v6-")
                    {
                        base.iter().find(|(m, _)| *m == n).map(|(_, b)| *b).unwrap_or(0)
                    } else {
                        0
                    };
                (n, v.saturating_sub(b))
            })
            .collect()
    }

    pub(super) fn statistic_get(&self, args: &Value) -> Value {
        let Some(name) = args.get("name").and_then(Value::as_str) else { return answer(1, "name is missing") };
        let ts = timestamp(SystemTime::now());
        match self.statistics().into_iter().find(|(n, _)| n == name) {
            Some((n, v)) => with_args(0, "", json!({ n: [[v, ts]] })),
            None => with_args(0, "", json!({})),
        }
    }

    pub(super) fn statistic_get_all(&self) -> Value {
        let ts = timestamp(SystemTime::now());
        let mut m = serde_json::Map::new();
        for (n, v) in self.statistics() {
            m.insert(n, json!([[v, ts]]));
        }
        with_args(0, "", Value::Object(m))
    }
}

/// Addresses of one pool by state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolCensus {
    /// `first-last`.
    pub range: String,
    /// Addresses in the pool.
    pub total: u64,
    /// Bound now.
    pub assigned: u64,
    /// On probation now.
    pub declined: u64,
}

/// Addresses of one subnet's pools by state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetCensus {
    /// Subnet id.
    pub id: u32,
    /// `network/prefix`.
    pub prefix: String,
    /// Addresses in its pools.
    pub total: u64,
    /// Bound now.
    pub assigned: u64,
    /// On probation now.
    pub declined: u64,
    /// Per pool, in configuration order.
    pub pools: Vec<PoolCensus>,
}

/// Addresses per subnet and pool by state at `now` (one shard lock at a time).
pub fn subnet_census(shared: &Shared, now: u32) -> Vec<SubnetCensus> {
    let rt = shared.runtime();
    let leases = rt.db.leases_where(|l| l.holds(now) && matches!(l.state, LeaseState::Bound | LeaseState::Declined));
    let count = |f: &dyn Fn(&Lease) -> bool, state| leases.iter().filter(|l| l.state == state && f(l)).count() as u64;
    rt.cfg
        .subnets
        .iter()
        .map(|s| SubnetCensus {
            id: s.id,
            prefix: format!("{}/{}", s.net.addr, s.net.prefix),
            total: s.pools.iter().map(|p| u64::from(p.len())).sum(),
            assigned: count(&|l| l.subnet == s.id, LeaseState::Bound),
            declined: count(&|l| l.subnet == s.id, LeaseState::Declined),
            pools: s
                .pools
                .iter()
                .map(|p| PoolCensus {
                    range: format!("{}-{}", p.start, p.end),
                    total: u64::from(p.len()),
                    assigned: count(&|l| p.contains(l.addr), LeaseState::Bound),
                    declined: count(&|l| p.contains(l.addr), LeaseState::Declined),
                })
                .collect(),
        })
        .collect()
}
