//! Where the lease changes a worker makes go before the reply that promises them leaves, for
//! the whole life of the daemon: recovered into the tables at start, appended per batch and
//! polled by ticket, periodic work (snapshots; a cluster's heartbeats and membership), flushed
//! at a clean stop, with its health in the statistics and metrics.
//!
//! - [`syncer`]: group commit, once for every store (the write/withhold/retry/stall policy).
//! - [`journal`]: the local journal files, snapshots and recovery (the default).
//! - [`cluster`]: the shared PostgreSQL database and the cluster's membership (`[cluster]`).
//! - [`Memory`]: nothing kept (tests, and the reflector).
//! - [`duid`]: the server's DHCPv6 DUID, made once and kept in the state directory.
//!
//! The daemon holds one `Arc<dyn LeaseStore>`, made by [`open`]; nothing outside this module
//! asks which store it is.

pub mod cluster;
pub mod duid;
pub mod hosts;
pub mod journal;
pub mod segments;
pub mod syncer;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64},
    },
    time::Duration,
};

use dhcp_xdp_core::{
    config::Config,
    leases::{Change, LeaseDb},
};
use prometheus_client::{encoding::DescriptorEncoder, registry::Registry};

use crate::{ebpf::Buckets, serve::Shared};

/// Why a store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// The system's reason.
        source: std::io::Error,
    },
    /// Another process holds the state directory.
    #[error("state directory {} is in use by {} (one daemon per state directory)", dir.display(), holder.map(|p| format!("pid {p}")).unwrap_or_else(|| "another process".into()))]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it.
        holder: Option<u32>,
    },
    /// Changes waiting for the disk or the database exceed what is kept in memory: this batch
    /// is not stored.
    #[error("store backlog full ({0} waiting)")]
    Backlog(usize),
    /// The store did not catch up in time (clean stop with a failing disk or database).
    #[error("still has unwritten changes after {0:?}: {1}")]
    Unflushed(Duration, String),
    /// The directory exists and holds what is not a state directory's, or belongs to another
    /// user: it is left alone rather than made private and written into.
    #[error("{} is not a dhcp-xdp state directory ({why}): choose an empty or new directory", dir.display())]
    NotOurs {
        /// The directory.
        dir: PathBuf,
        /// What gave it away.
        why: String,
    },
    /// The cluster's database refused or could not be reached.
    #[error("{0}")]
    Database(String),
}

/// How writing goes, for logs, statistics and metrics.
#[derive(Debug, Default)]
pub struct Health {
    /// A write, sync or commit is failing now.
    pub failing: AtomicBool,
    /// Rounds that failed since start.
    pub failed_rounds: AtomicU64,
    /// Batches whose changes could not even be queued (backlog full).
    pub dropped_batches: AtomicU64,
    /// Rounds made durable.
    pub syncs: AtomicU64,
    /// Total time spent in `fdatasync` (µs; the journal).
    pub sync_us: AtomicU64,
    /// Longest `fdatasync` (µs; the journal).
    pub sync_max_us: AtomicU64,
}

/// The tables a store recovered, and one line saying what it read.
pub struct Recovered {
    /// The lease tables, numbering after the highest change the store holds.
    pub db: LeaseDb,
    /// Leases read.
    pub leases: usize,
    /// What was read, from where, how fast.
    pub report: String,
}

/// A lease store, from recovery to the clean stop.
pub trait LeaseStore: Send + Sync {
    /// What it is, for messages ("lease journal", "lease database").
    fn name(&self) -> &'static str;
    /// The leases it holds, in tables of `lanes` × `workers` shards built for `cfg` (once, at
    /// start, before any append).
    fn recover(&self, cfg: &Config, lanes: usize, workers: usize) -> Result<Recovered, StoreError>;
    /// Hands numbered `changes` to slot `slot`'s syncer and returns at once: a ticket to poll
    /// with [`settled`](Self::settled), or None when nothing will wait (async durability).
    fn append(&self, slot: usize, changes: &[(u64, Change)]) -> Result<Option<u64>, StoreError>;
    /// Whether `ticket`'s batch is durable (`Some(true)`), never will be (`Some(false)`), or
    /// still on its way (`None`).
    fn settled(&self, slot: usize, ticket: u64) -> Option<bool>;
    /// Changes handed over since start.
    fn records(&self) -> u64;
    /// How writing goes.
    fn health(&self) -> &Health;
    /// How far behind the store is: the age of its oldest change not yet durable (zero when
    /// everything handed over is). The daemon sheds new clients' DISCOVERs while it grows.
    fn lag(&self) -> Duration {
        Duration::ZERO
    }
    /// Whether this node may answer anyone now (a cluster node only while its heartbeats
    /// commit).
    fn serving(&self) -> bool {
        true
    }
    /// Whether several daemons share the pools, divided by the XDP program's bucket map (which
    /// [`run`](Self::run) is then given).
    fn shares_pools(&self) -> bool {
        false
    }
    /// Starts the store's own work once the datapath runs and capabilities are gone (a
    /// cluster's heartbeat and membership loop, steering `buckets`).
    fn run(self: Arc<Self>, shared: Arc<Shared>, buckets: Option<Buckets>) -> std::io::Result<()> {
        let _ = (shared, buckets);
        Ok(())
    }
    /// The control loop's periodic work, about once a second, with the configuration and
    /// tables in force (a snapshot when one is due).
    fn tick(&self, cfg: &Config, db: &LeaseDb) {
        let _ = (cfg, db);
    }
    /// Clean stop: waits (up to `timeout`) until everything handed over is durable and leaves
    /// the store compact for the next start; says what it did, or what went wrong.
    fn stop(&self, db: &LeaseDb, timeout: Duration) -> Result<String, String>;
    /// Whether the management API's removal `edit` can mean what it says in this store, before
    /// the tables change: a store shared by several nodes refuses to remove what another live
    /// node serves (its next commit would put it back), saying why, and takes the rows of nodes
    /// that are gone out itself (returned: how many). A store of one node agrees to everything.
    fn admin_removal(&self, edit: AdminRemoval) -> Result<u64, String> {
        let _ = edit;
        Ok(0)
    }
    /// The server's DHCPv6 DUID as this store keeps it (a cluster node's is kept with its node
    /// row: `made` the first time, the stored one ever after); None for a store that keeps
    /// none (the state directory's file is the daemon's).
    fn kept_duid(&self, made: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let _ = made;
        Ok(None)
    }
    /// The reservations added through the management API that this store keeps.
    fn load_hosts(&self) -> Result<Vec<serde_json::Value>, String> {
        Ok(vec![])
    }
    /// Keeps `hosts` (all the API's reservations, Kea's JSON) durably before it returns.
    fn save_hosts(&self, hosts: &[serde_json::Value]) -> Result<(), String> {
        let _ = hosts;
        Err(format!("the {} does not keep reservations added through the API yet", self.name()))
    }
    /// Registers the store's histograms.
    fn register_metrics(&self, registry: &mut Registry) {
        let _ = registry;
    }
    /// Writes the store's counters and gauges at a scrape.
    fn encode_metrics(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let _ = enc;
        Ok(())
    }
    /// How the store is doing, by name, for the statistics lines and `counters-get`: what it
    /// is, changes handed over, and its health (a cluster adds its membership).
    fn status(&self) -> serde_json::Map<String, serde_json::Value> {
        health_status(self)
    }
}

/// The status every store reports: its name, the changes handed over, how far behind it is,
/// and its health.
pub fn health_status<S: LeaseStore + ?Sized>(store: &S) -> serde_json::Map<String, serde_json::Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let h = store.health();
    let mut m = serde_json::Map::new();
    m.insert("name".into(), store.name().into());
    m.insert("records".into(), store.records().into());
    m.insert("lag-ms".into(), (store.lag().as_millis() as u64).into());
    m.insert("failing".into(), h.failing.load(Relaxed).into());
    m.insert("failed-rounds".into(), h.failed_rounds.load(Relaxed).into());
    m.insert("dropped-batches".into(), h.dropped_batches.load(Relaxed).into());
    m.insert("syncs".into(), h.syncs.load(Relaxed).into());
    m.insert("sync-us".into(), h.sync_us.load(Relaxed).into());
    m
}

/// A removal through the management API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRemoval {
    /// `lease4-del` of the lease on this address.
    Lease(std::net::Ipv4Addr),
    /// `lease4-wipe` of this subnet (None: every subnet).
    Subnet(Option<u32>),
    /// `lease6-del` of the lease on this address or prefix (and length).
    Lease6(std::net::Ipv6Addr, u8),
    /// `lease6-wipe` of this subnet (None: every subnet).
    Subnet6(Option<u32>),
}

/// The store `cfg` asks for, with `shards` slots: the cluster's database when it has a
/// `[cluster]` section (this node announced with `addresses`), else the journal in its state
/// directory.
pub fn open(cfg: &Config, shards: usize, addresses: &str) -> Result<Arc<dyn LeaseStore>, StoreError> {
    if cfg.cluster.is_some() {
        let c = cluster::Cluster::start(cfg, shards, addresses).map_err(|e| StoreError::Database(format!("{e:#}")))?;
        return Ok(c);
    }
    let dir = cfg.persist_dir.clone().unwrap_or_default();
    let segment = segments::segment_size(cfg.snapshot_every, shards);
    Ok(journal::JournalStore::open(&dir, shards, cfg.durability, segment)?)
}

/// Keeps nothing: every change is durable at once (tests, and tables no one needs back).
#[derive(Debug, Default)]
pub struct Memory {
    health: Health,
}

impl LeaseStore for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn recover(&self, cfg: &Config, lanes: usize, workers: usize) -> Result<Recovered, StoreError> {
        let db = LeaseDb::with_lanes(cfg, lanes, workers, [], crate::clock::unix_now());
        Ok(Recovered { db, leases: 0, report: "leases: kept in memory only".into() })
    }
    fn append(&self, _: usize, _: &[(u64, Change)]) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    fn settled(&self, _: usize, _: u64) -> Option<bool> {
        Some(true)
    }
    fn records(&self) -> u64 {
        0
    }
    fn health(&self) -> &Health {
        &self.health
    }
    fn stop(&self, _: &LeaseDb, _: Duration) -> Result<String, String> {
        Ok("nothing to flush (memory only)".into())
    }
}
