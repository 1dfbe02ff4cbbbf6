//! One reading of the message counters (received and sent by type, drops by reason), taken
//! from the engine's per-shard counters and the workers' drop counters: the control channel's
//! Kea statistics and the Prometheus metrics both render this, so a count has one definition.

use std::sync::{Arc, atomic::Ordering};

use dhcp_xdp_core::{engine::MsgCounter, verdict::DropReason};

use crate::{datapath::WorkerStats, handler::FrameMeta, serve::Shared};

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
