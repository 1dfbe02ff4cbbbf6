//! One reading of the counters, so a count has one definition:
//!
//! - [`Snapshot`]: the message counters (received and sent by type, every engine counter,
//!   drops by reason), from the engine's per-shard counters and the workers' drop counters;
//!   the control channel's Kea statistics and the Prometheus metrics render it.
//! - [`Report`]: the snapshot with the XDP program's verdicts, every worker's counters, the
//!   lease census, the lease store's status and the pools' use, read by the control loop; the
//!   statistics lines in the log and the control channel's `counters-get` render it.

use std::sync::{Arc, atomic::Ordering};

use dhcp_xdp_core::{engine4::MsgCounter, engine6::Counter6, verdict::DropReason};

use serde_json::{Map, Value, json};

use crate::{datapath::WorkerStats, ebpf::Steering, handler::FrameMeta, serve::Shared};

/// DHCP message types received, with their counter.
const RECEIVED: [(&str, MsgCounter); 6] = [
    ("discover", MsgCounter::RxDiscover),
    ("request", MsgCounter::RxRequest),
    ("decline", MsgCounter::RxDecline),
    ("release", MsgCounter::RxRelease),
    ("inform", MsgCounter::RxInform),
    ("bootp", MsgCounter::RxBootp),
];

/// The counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Messages received by type (`discover` … `bootp`).
    pub received: Vec<(&'static str, u64)>,
    /// Every message received, of whatever type.
    pub received_all: u64,
    /// Replies sent by type (`offer`, `ack` — INFORM's too —, `nak`, `bootp`).
    pub sent: Vec<(&'static str, u64)>,
    /// Frames that got no reply, by reason.
    pub drops: Vec<(DropReason, u64)>,
    /// Every engine counter (`rx_discover`, `rx_request_renewing`, `tx_ack` …), summed over
    /// the shards.
    pub messages: Vec<(&'static str, u64)>,
    /// Every DHCPv6 engine counter (`pkt6-solicit-received` …), summed over the workers.
    pub messages6: Vec<(&'static str, u64)>,
}

impl Snapshot {
    /// Reads the counters of `shared`'s shards and of `workers`.
    pub fn take(shared: &Shared, workers: &[(FrameMeta, Arc<WorkerStats>)]) -> Self {
        let engine = |c: MsgCounter| shared.stats.iter().map(|s| s.get(c)).sum::<u64>();
        let drop = |r: DropReason| workers.iter().map(|(_, w)| w.drops[r.slot()].load(Ordering::Relaxed)).sum::<u64>();
        Self {
            received: RECEIVED.iter().map(|&(t, c)| (t, engine(c))).collect(),
            // The REQUEST sub-kinds (renewing, rebinding, …) are counted in `request` too.
            received_all: MsgCounter::ALL
                .iter()
                .filter(|c| c.name().starts_with("rx_") && !c.name().starts_with("rx_request_"))
                .map(|c| engine(*c))
                .sum(),
            sent: vec![
                ("offer", engine(MsgCounter::TxOffer)),
                ("ack", engine(MsgCounter::TxAck) + engine(MsgCounter::TxInformAck)),
                ("nak", engine(MsgCounter::TxNak)),
                ("bootp", engine(MsgCounter::TxBootp)),
            ],
            drops: DropReason::ALL.iter().map(|&r| (r, drop(r))).collect(),
            messages: MsgCounter::ALL.iter().map(|&c| (c.name(), engine(c))).collect(),
            messages6: Counter6::ALL
                .iter()
                .map(|&c| (c.name(), shared.stats.iter().map(|s| s.counts6[c.slot()].load(Ordering::Relaxed)).sum()))
                .collect(),
        }
    }

    /// Received messages of type `t`.
    pub fn received(&self, t: &str) -> u64 {
        self.received.iter().find(|(n, _)| *n == t).map_or(0, |(_, v)| *v)
    }

    /// Frames dropped for `r`.
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.drops.iter().find(|(d, _)| *d == r).map_or(0, |(_, v)| *v)
    }
}

/// One worker's counters, with the kernel's statistics of its socket.
#[derive(Debug, Clone)]
pub struct WorkerReport {
    /// Its queue.
    pub queue: u32,
    /// Its number on the queue.
    pub worker: u32,
    /// Its counters by name.
    pub values: Vec<(&'static str, u64)>,
    /// The kernel's `XDP_STATISTICS` of its socket, as `name=value` pairs.
    pub kernel: String,
}

/// Everything the daemon counts, at one moment.
#[derive(Debug, Clone)]
pub struct Report {
    /// The XDP program's verdicts (Err: why they could not be read).
    pub xdp: Result<Vec<(&'static str, u64)>, String>,
    /// Every worker.
    pub workers: Vec<WorkerReport>,
    /// The message counters.
    pub snapshot: Snapshot,
    /// Leases by state: bound, offered, declined, remembered.
    pub leases: [(&'static str, u64); 4],
    /// The lease store's status.
    pub store: Map<String, Value>,
    /// Per pool: subnet, first address, size, addresses in use.
    pub pools: Vec<(u32, std::net::Ipv4Addr, u32, u64)>,
    /// Whether new clients' DISCOVERs are being shed now, how many times shedding started, and
    /// the share of them admitted (0 to 1).
    pub shedding: (bool, u64, f64),
    /// The forensic lease log's status (Null without one).
    pub forensic: Value,
}

impl Report {
    /// Reads everything: `steering` for the verdicts, `kernel` the sockets' statistics.
    pub fn take(
        shared: &Shared,
        steering: &Steering,
        workers: &[(FrameMeta, Arc<WorkerStats>)],
        kernel: &[(u32, u32, String)],
    ) -> Self {
        let rt = shared.runtime();
        let now = crate::clock::unix_now();
        let c = rt.db.census(now);
        Self {
            xdp: steering.counters().map(|c| c.values()).map_err(|e| format!("{e:#}")),
            workers: workers
                .iter()
                .map(|(m, w)| WorkerReport {
                    queue: m.queue,
                    worker: m.worker,
                    values: w.values(),
                    kernel: kernel
                        .iter()
                        .find(|k| k.0 == m.queue && k.1 == m.worker)
                        .map(|k| k.2.clone())
                        .unwrap_or_default(),
                })
                .collect(),
            snapshot: Snapshot::take(shared, workers),
            leases: [
                ("bound", c.bound),
                ("offered", c.offered),
                ("declined", c.declined),
                ("remembered", c.remembered),
            ],
            store: shared.store.status(),
            pools: rt.db.pool_usage(now),
            shedding: (
                shared.shedding.load(Ordering::Relaxed),
                shared.shed_episodes.load(Ordering::Relaxed),
                shared.admitted_share(),
            ),
            forensic: shared.forensic.get().map_or(Value::Null, |f| f.status()),
        }
    }

    /// The statistics lines for the log, each starting `what: `.
    pub fn lines(&self, what: &str) -> Vec<String> {
        let pairs = |v: &[(&str, u64)]| v.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(" ");
        let mut out = vec![];
        match &self.xdp {
            Ok(v) => out.push(format!("{what}: xdp {}", pairs(v))),
            Err(e) => out.push(format!("{what}: xdp counters unavailable: {e}")),
        }
        for w in &self.workers {
            out.push(format!("{what}: q{} w{} {} {}", w.queue, w.worker, pairs(&w.values), w.kernel));
        }
        out.push(format!("{what}: messages {}", pairs(&self.snapshot.messages)));
        if self.snapshot.messages6.iter().any(|(_, v)| *v > 0) {
            out.push(format!("{what}: messages6 {}", pairs(&self.snapshot.messages6)));
        }
        out.push(format!("{what}: leases {}", pairs(&self.leases)));
        let store: Vec<String> =
            self.store.iter().map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"'))).collect();
        out.push(format!("{what}: store {}", store.join(" ")));
        out.push(format!(
            "{what}: shedding active={} episodes={} admitted={:.2}",
            self.shedding.0, self.shedding.1, self.shedding.2
        ));
        for (subnet, start, len, used) in &self.pools {
            out.push(format!(
                "{what}: pool subnet={subnet} start={start} size={len} used={used} ({:.1}%)",
                *used as f64 * 100.0 / f64::from((*len).max(1))
            ));
        }
        out
    }

    /// The report as the control channel's `counters-get` answers it.
    pub fn to_json(&self) -> Value {
        let obj = |v: &[(&str, u64)]| Value::Object(v.iter().map(|(n, v)| ((*n).to_owned(), json!(v))).collect());
        json!({
            "xdp": match &self.xdp { Ok(v) => obj(v), Err(e) => json!({ "unavailable": e }) },
            "workers": self.workers.iter().map(|w| {
                let mut o = json!({ "queue": w.queue, "worker": w.worker, "kernel": w.kernel });
                if let (Value::Object(o), Value::Object(v)) = (&mut o, obj(&w.values)) {
                    o.extend(v);
                }
                o
            }).collect::<Vec<_>>(),
            "messages": obj(&self.snapshot.messages),
            "messages6": obj(&self.snapshot.messages6),
            "leases": obj(&self.leases),
            "store": Value::Object(self.store.clone()),
            "shedding": { "active": self.shedding.0, "episodes": self.shedding.1, "admitted": self.shedding.2 },
            "forensic-log": self.forensic,
            "pools": self.pools.iter().map(|(s, start, len, used)| json!({
                "subnet-id": s, "start": start.to_string(), "size": len, "used": used
            })).collect::<Vec<_>>(),
        })
    }
}
