//! What every worker and the control loop share: the configuration and lease tables in force
//! (swapped whole by a reload), the lease store, the counters, and the control loop's periodic
//! work on the tables (expiry sweep). The DHCPv4 engine's handler is [`crate::serve4`].

use std::sync::{Arc, RwLock, atomic::Ordering};

use dhcp_xdp_core::{
    config::{Config, ConfigError},
    engine4::ServerIdentity,
    engine6::Server6,
    leases::{LeaseDb, v6::Table6},
};

use crate::{clock::unix_now, handler::FrameMeta, serve4::EngineStats, store::LeaseStore};

/// Reads and validates the configuration file at `path`.
pub fn load_config_file(path: &std::path::Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        field: "-".into(),
        message: format!("cannot read: {e}"),
    })?;
    Config::parse(&file, &src)
}

/// Configuration and lease tables in force; replaced whole by a reload.
pub struct Runtime {
    /// Validated configuration.
    pub cfg: Arc<Config>,
    /// Lease tables built for it (the DHCPv6 table among them).
    pub db: Arc<LeaseDb>,
}

impl Runtime {
    /// `cfg` and its tables.
    pub fn new(cfg: Arc<Config>, db: Arc<LeaseDb>) -> Self {
        Self { cfg, db }
    }

    /// The v6 table, locked.
    pub fn table6(&self) -> std::sync::MutexGuard<'_, Table6> {
        self.db.table6()
    }
}

/// What every worker and the control loop share.
pub struct Shared {
    current: RwLock<Arc<Runtime>>,
    /// Server identity (interface MAC and addresses).
    pub server: ServerIdentity,
    /// The receive queues served, in lane order: worker `w` of `queues[l]` owns shard
    /// `l × workers + w`.
    pub queues: Vec<u32>,
    /// Per-shard message counters.
    pub stats: Vec<Arc<EngineStats>>,
    /// Where changes go before the replies that promise them (see [`crate::store`]).
    pub store: Arc<dyn LeaseStore>,
    /// Configuration reloads so far (SIGHUP, `config-reload`).
    pub reloads: Reloads,
    /// What the start found, once the datapath runs (for `status-get`).
    pub facts: std::sync::OnceLock<Facts>,
    /// The forensic lease log, when `[forensic-log]` asks for one.
    pub forensic: std::sync::OnceLock<Arc<crate::forensic::ForensicLog>>,
    /// Held by whoever builds a configuration from the one in force and puts it in force (a
    /// reload of the file, a reservation edit, the cluster's reservations), so that none of
    /// them loses another's change.
    pub reconfigure: std::sync::Mutex<()>,
    /// New clients' DISCOVERs are being shed in the XDP program (the lease store is behind).
    pub shedding: std::sync::atomic::AtomicBool,
    /// Times shedding started since start.
    pub shed_episodes: std::sync::atomic::AtomicU64,
    /// The share of new clients' DISCOVERs admitted, in
    /// [`SHED_ALL`](dhcp_xdp_common::config::SHED_ALL)ths (all but while shedding).
    pub admitted: std::sync::atomic::AtomicU32,
    /// DHCPv6 identity: the server DUID and the interface's global addresses.
    pub server6: Server6,
    /// The interface's link-local address (the source of replies to clients on the link).
    pub link_local6: Option<std::net::Ipv6Addr>,
}

/// What the daemon's start found, as `status-get` reports it.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// How the XDP program is attached (`Drv`, `Skb`).
    pub xdp_mode: String,
    /// How the AF_XDP sockets are bound (`copy`, `zero-copy`).
    pub af_xdp: String,
    /// What answers frames (`engine`, `reflect`).
    pub handler: String,
    /// Whether VLAN tags reach the XDP program (and what was turned off for it).
    pub vlan: String,
    /// Leases the store held at start.
    pub recovered_leases: usize,
    /// What the store said it recovered.
    pub recovered: String,
}

/// Configuration reloads: how many were applied and refused, and when the last was applied.
#[derive(Debug)]
pub struct Reloads {
    /// Applied.
    pub applied: std::sync::atomic::AtomicU64,
    /// Refused (the old configuration kept).
    pub rejected: std::sync::atomic::AtomicU64,
    /// When the configuration in force was loaded.
    pub since: std::sync::Mutex<std::time::Instant>,
    /// What the last reload said (empty: none yet).
    pub last: std::sync::Mutex<String>,
}

impl Default for Reloads {
    fn default() -> Self {
        Self {
            applied: Default::default(),
            rejected: Default::default(),
            since: std::sync::Mutex::new(std::time::Instant::now()),
            last: std::sync::Mutex::new(String::new()),
        }
    }
}

impl Reloads {
    /// Counts one reload's outcome and keeps what it said.
    pub fn record(&self, outcome: &Result<String, String>) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = match outcome {
            Ok(m) => m.clone(),
            Err(e) => format!("rejected: {e}"),
        };
        if outcome.is_ok() {
            self.applied.fetch_add(1, Ordering::Relaxed);
            *self.since.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
        } else {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Seconds the configuration in force has been (Kea's `status-get` "reload").
    pub fn age_secs(&self) -> u64 {
        self.since.lock().unwrap_or_else(|p| p.into_inner()).elapsed().as_secs()
    }
}

impl Shared {
    /// New shared state for the workers of `queues` (the runtime's tables have a lane per
    /// queue).
    pub fn new(rt: Runtime, server: ServerIdentity, queues: &[u32], store: Arc<dyn LeaseStore>) -> Self {
        let shards = rt.db.shard_count();
        Self {
            current: RwLock::new(Arc::new(rt)),
            server,
            queues: queues.to_vec(),
            stats: (0..shards).map(|_| Arc::new(EngineStats::default())).collect(),
            store,
            reloads: Reloads::default(),
            facts: std::sync::OnceLock::new(),
            forensic: std::sync::OnceLock::new(),
            reconfigure: std::sync::Mutex::new(()),
            shedding: Default::default(),
            shed_episodes: Default::default(),
            admitted: std::sync::atomic::AtomicU32::new(dhcp_xdp_common::config::SHED_ALL),
            server6: Server6 { duid: vec![], addrs: vec![] },
            link_local6: None,
        }
    }

    /// With a DHCPv6 identity.
    pub fn with_v6(self, server6: Server6, link_local6: Option<std::net::Ipv6Addr>) -> Self {
        Self { server6, link_local6, ..self }
    }

    /// The share of new clients' DISCOVERs admitted now (0 to 1; 1 but while shedding).
    pub fn admitted_share(&self) -> f64 {
        f64::from(self.admitted.load(std::sync::atomic::Ordering::Relaxed))
            / f64::from(dhcp_xdp_common::config::SHED_ALL)
    }

    /// The runtime in force.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Installs a new runtime.
    pub fn swap(&self, rt: Runtime) -> Arc<Runtime> {
        let mut g = self.current.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *g, Arc::new(rt))
    }

    /// The shard of the worker `meta`: its own, shared with no other worker.
    pub fn shard_of_worker(&self, meta: &FrameMeta) -> usize {
        let lane = self.queues.iter().position(|&q| q == meta.queue).unwrap_or(0);
        self.runtime().db.shard_index(lane, meta.worker as usize)
    }
}

/// One step of the control loop's expiry work over every shard; hands what it changed to the
/// journal (numbered under each shard's lock, so a worker's later change of the same lease
/// wins on replay whatever lands in the file first).
pub fn sweep(shared: &Shared, max_per_shard: usize) -> usize {
    let rt = shared.runtime();
    let now = unix_now();
    let mut n = 0;
    for i in 0..rt.db.shard_count() {
        let changes = rt.db.sweep(i, now, max_per_shard);
        n += changes.len();
        if let Some(log) = shared.forensic.get() {
            for (_, c) in &changes {
                if let dhcp_xdp_core::leases::Change::Upsert(l) = c
                    && l.state == dhcp_xdp_core::leases::LeaseState::Expired
                {
                    log.expired(u64::from(now), l);
                }
            }
        }
        if !changes.is_empty()
            && let Err(e) = shared.store.append(i, &changes)
        {
            tracing::error!("{}: expiries not stored: {e}", shared.store.name());
        }
    }
    let log = shared.forensic.get();
    let mut ended = vec![];
    let stamped: Vec<_> = {
        let mut t = rt.table6();
        n += t.sweep_into(now, max_per_shard, log.is_some().then_some(&mut ended));
        let mut changes = vec![];
        t.drain_changes(&mut changes);
        rt.db.numbered(changes.into_iter()).collect()
    };
    if let Some(log) = log {
        for l in &ended {
            log.expired6(u64::from(now), l);
        }
    }
    if !stamped.is_empty()
        && let Err(e) = shared.store.append(0, &stamped)
    {
        tracing::error!("{}: v6 expiries not stored: {e}", shared.store.name());
    }
    n
}

/// Whether two configurations give the lease tables the same shape: same pools, and the same
/// reserved addresses (their owner bytes are set when the tables are built).
fn same_tables(a: &Config, b: &Config) -> bool {
    let reserved = |c: &Config| -> Vec<_> {
        c.subnets.iter().flat_map(|s| s.reservations.iter().filter_map(|r| r.ip).map(move |ip| (s.id, ip))).collect()
    };
    a.subnets.len() == b.subnets.len()
        && a.subnets.iter().zip(&b.subnets).all(|(a, b)| {
            a.id == b.id
                && a.pools.len() == b.pools.len()
                && a.pools.iter().zip(&b.pools).all(|(p, q)| {
                    p.start == q.start && p.end == q.end && p.client_classes == q.client_classes
                })
        })
        && reserved(a) == reserved(b)
        // The lease tables keep each pool's class guard as bits of the class list.
        && a.classes.iter().map(|c| &c.name).eq(b.classes.iter().map(|c| &c.name))
}

/// Whether two configurations give the v6 table the same shape: same subnets, pools and
/// reservations.
fn same_tables6(a: &Config, b: &Config) -> bool {
    a.subnets6.len() == b.subnets6.len()
        && a.subnets6.iter().zip(&b.subnets6).all(|(a, b)| {
            a.id == b.id && a.pools == b.pools && a.pd_pools == b.pd_pools && a.reservations == b.reservations
        })
}

/// Replaces the configuration; rebuilds the lease tables (keeping every lease and offer still
/// inside a pool or reservation) only when the pools or reserved addresses changed. Returns a
/// one-line account.
pub fn reload(shared: &Shared, cfg: Config) -> String {
    let old = shared.runtime();
    let cfg = Arc::new(cfg);
    if same_tables(&old.cfg, &cfg) {
        if !same_tables6(&old.cfg, &cfg) {
            // Rebuilt in place under its lock: workers see the old table or the new one.
            let mut t = old.table6();
            let leases: Vec<_> = t.leases().cloned().collect();
            let served = t.served();
            *t = Table6::new(&cfg, leases, unix_now());
            t.serve_buckets(&served);
        }
        shared.swap(Runtime { cfg, db: old.db.clone() });
        return "configuration replaced (pools and reservations unchanged, lease tables kept)".into();
    }
    // The v6 table is held from the copy of its leases until the old tables are retired, as the
    // shards are: no v6 change lands in the old table after its copy (a worker that then locks
    // it finds it retired and takes the new one).
    let t6 = old.table6();
    let leases6: Vec<_> = t6.leases().cloned().collect();
    let (guards, leases) = old.db.freeze();
    let attrs: dhcp_xdp_core::leases::AttrMap =
        guards.iter().flat_map(|g| g.attrs().map(|(a, k, v)| ((a, k), Box::from(v)))).collect();
    let n = leases.len();
    let db = LeaseDb::with_lanes(&cfg, old.db.shard_count() / old.db.groups(), old.db.groups(), leases, unix_now());
    db.restore_attrs(&attrs);
    db.continue_after(old.db.next_seq());
    db.restore6(&cfg, leases6, unix_now());
    db.table6().serve_buckets(&t6.served());
    let kept = db.census(unix_now());
    let kept = kept.bound + kept.offered + kept.declined + kept.remembered;
    shared.swap(Runtime { cfg, db: Arc::new(db) });
    old.db.retire();
    drop(guards);
    drop(t6);
    format!(
        "configuration replaced, lease tables rebuilt for the new pools and reservations ({kept} of {n} records kept; \
         the others lie outside every pool and reservation now and are renewed no more)"
    )
}
