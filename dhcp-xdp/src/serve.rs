//! Glue between the datapath and the engine: one [`EngineHandler`] per worker, the runtime that
//! reloads swap, and the control loop's periodic work (expiry sweep, statistics).

use std::sync::{
    Arc, RwLock,
    atomic::{AtomicU64, Ordering},
};

use dhcp_xdp_core::{
    config::{Config, ConfigError},
    engine::{Engine, MsgCounter, ServerIdentity},
    leases::{Change, LeaseDb},
};

use crate::{
    handler::{DropReason, FrameMeta, Handler, Job, Release, Verdict},
    journal::Journal,
};

/// Unix time in seconds, saturating into u32: the one clock the engine's callers read.
pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

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
    /// Lease tables built for it.
    pub db: Arc<LeaseDb>,
}

/// What every worker and the control loop share.
pub struct Shared {
    current: RwLock<Arc<Runtime>>,
    /// Server identity (interface MAC and addresses).
    pub server: ServerIdentity,
    /// Per-worker message counters, by shard.
    pub stats: Vec<Arc<EngineStats>>,
    /// The lease journal (None: memory only).
    pub journal: Option<Arc<Journal>>,
}

impl Shared {
    /// New shared state.
    pub fn new(rt: Runtime, server: ServerIdentity, shards: usize, journal: Option<Arc<Journal>>) -> Self {
        Self {
            current: RwLock::new(Arc::new(rt)),
            server,
            stats: (0..shards).map(|_| Arc::new(EngineStats::default())).collect(),
            journal,
        }
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
}

/// Message counters of one worker.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// One slot per [`MsgCounter`].
    pub counts: [AtomicU64; MsgCounter::COUNT],
}

impl EngineStats {
    /// The value of one counter.
    pub fn get(&self, c: MsgCounter) -> u64 {
        self.counts[c.slot()].load(Ordering::Relaxed)
    }

    /// `name=value` pairs.
    pub fn render(&self) -> String {
        MsgCounter::ALL.iter().map(|c| format!("{}={}", c.name(), self.get(*c))).collect::<Vec<_>>().join(" ")
    }
}

/// The engine as a datapath handler for one worker.
pub struct EngineHandler {
    shared: Arc<Shared>,
    shard: usize,
    engine: Box<Engine>,
    rt: Arc<Runtime>,
    now: u32,
    changes: Vec<Change>,
    stats: Arc<EngineStats>,
}

impl EngineHandler {
    /// Handler for the worker `meta` (its shard is its worker index).
    pub fn new(shared: Arc<Shared>, meta: FrameMeta) -> Self {
        let rt = shared.runtime();
        let shard = meta.worker as usize % rt.db.shard_count();
        let stats = shared.stats[shard % shared.stats.len()].clone();
        Self { shared, shard, engine: Box::new(Engine::new()), rt, now: 0, changes: Vec::with_capacity(256), stats }
    }
}

impl Handler for EngineHandler {
    fn begin_batch(&mut self) {
        self.now = unix_now();
        self.rt = self.shared.runtime();
    }

    fn handle(&mut self, meta: &FrameMeta, buf: &mut [u8], len: usize) -> Verdict {
        let mut job = [Job { buf, len, verdict: Verdict::Drop(DropReason::NotForUs) }];
        self.handle_batch(meta, &mut job);
        job[0].verdict
    }

    /// The shard is locked once for the batch and the counters are added once: a control-plane
    /// reader waits a batch at most, and a frame costs no atomic operation of its own.
    fn handle_batch(&mut self, _meta: &FrameMeta, jobs: &mut [Job<'_>]) {
        let mut shard = self.rt.db.lock(self.shard);
        if self.rt.db.is_retired() {
            // A reload rebuilt the tables while we waited for this lock.
            drop(shard);
            self.rt = self.shared.runtime();
            shard = self.rt.db.lock(self.shard);
        }
        let mut counts = [0u64; MsgCounter::COUNT];
        for job in jobs.iter_mut() {
            let (verdict, outcome) =
                self.engine.handle(self.now, &self.rt.cfg, &self.shared.server, &mut shard, job.buf, job.len);
            let before = self.changes.len();
            shard.drain_changes(&mut self.changes);
            // A reply after which the lease store changed (an ACK) waits until the change is
            // durable; others (OFFERs, NAKs, INFORM ACKs) need not.
            job.verdict = match verdict {
                Verdict::Reply(n) if self.changes.len() > before => Verdict::ReplyWhenDurable(n),
                v => v,
            };
            for c in [Some(outcome.rx), outcome.state, outcome.tx].into_iter().flatten() {
                counts[c.slot()] += 1;
            }
        }
        drop(shard);
        for (c, n) in self.stats.counts.iter().zip(counts) {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    fn end_batch(&mut self) -> Release {
        if self.changes.is_empty() {
            return Release::Now;
        }
        let release = match &self.shared.journal {
            Some(j) => match j.append_grouped(self.shard, &self.changes) {
                Ok(Some(ticket)) => Release::After(ticket),
                Ok(None) => Release::Now,
                Err(e) => {
                    tracing::error!("lease journal write failed, withholding replies: {e:#}");
                    Release::Withhold
                }
            },
            None => Release::Now,
        };
        self.changes.clear();
        release
    }

    fn settled(&mut self, ticket: u64) -> Option<bool> {
        self.shared.journal.as_ref().map_or(Some(true), |j| j.settled(self.shard, ticket))
    }
}

/// One step of the control loop's expiry work over every shard; journals what it changed.
pub fn sweep(shared: &Shared, max_per_shard: usize) -> usize {
    let rt = shared.runtime();
    let now = unix_now();
    let mut n = 0;
    for i in 0..rt.db.shard_count() {
        let changes = rt.db.sweep(i, now, max_per_shard);
        n += changes.len();
        if let (Some(j), false) = (&shared.journal, changes.is_empty())
            && let Err(e) = j.append(i, &changes)
        {
            tracing::error!("journaling expiries: {e:#}");
        }
    }
    n
}

/// Replaces the configuration; rebuilds the lease tables (keeping every lease) only when the
/// pools changed. Returns a one-line account.
pub fn reload(shared: &Shared, cfg: Config) -> String {
    let old = shared.runtime();
    let same_pools = old.cfg.subnets.len() == cfg.subnets.len()
        && old.cfg.subnets.iter().zip(&cfg.subnets).all(|(a, b)| {
            a.id == b.id
                && a.pools.len() == b.pools.len()
                && a.pools.iter().zip(&b.pools).all(|(p, q)| p.start == q.start && p.end == q.end)
        });
    let cfg = Arc::new(cfg);
    if same_pools {
        shared.swap(Runtime { cfg, db: old.db.clone() });
        return "configuration replaced (pools unchanged, lease tables kept)".into();
    }
    let (guards, leases) = old.db.freeze();
    let n = leases.len();
    let db = Arc::new(LeaseDb::new(&cfg, old.db.shard_count(), leases, unix_now()));
    shared.swap(Runtime { cfg, db });
    old.db.retire();
    drop(guards);
    format!("configuration replaced, lease tables rebuilt for the new pools ({n} records carried over)")
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use dhcp_xdp_core::{
        leases::{ClientKey, LeaseState},
        net::Ipv4Net,
    };

    fn cfg(end: u8) -> Config {
        Config::parse(
            "t",
            &format!(
                "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.10-198.18.0.{end}\"\n"
            ),
        )
        .expect("config")
    }

    /// Runtime state over `shards` shards of `cfg(20)`, with the server at 198.18.0.1/24.
    fn shared(shards: usize, journal: Option<Arc<crate::journal::Journal>>) -> (Arc<LeaseDb>, Arc<Shared>) {
        let c = cfg(20);
        let db = Arc::new(LeaseDb::new(&c, shards, [], 100));
        let server =
            ServerIdentity { mac: [0; 6], addrs: vec![Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 1), prefix: 24 }] };
        let shared = Shared::new(Runtime { cfg: Arc::new(c), db: db.clone() }, server, shards, journal);
        (db, Arc::new(shared))
    }

    /// A request frame with `options` from 02:00:00:00:00:01, in a 2 KiB chunk, and its length.
    fn request(options: &[u8]) -> (Vec<u8>, usize) {
        let mut f = dhcp_xdp_core::testing::frame(&[], &[], &dhcp_xdp_core::testing::msg(options));
        let len = f.len();
        f.resize(2048, 0);
        (f, len)
    }

    /// OFFERs leave at once; an ACK waits for its lease record to be durable (group commit).
    #[test]
    fn only_replies_that_promise_a_lease_wait_for_the_journal() {
        let dir = std::env::temp_dir().join(format!("dhcp-xdp-serve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        crate::journal::Journal::recover(&dir).expect("recover");
        let journal =
            crate::journal::Journal::open(&dir, 1, dhcp_xdp_core::config::Durability::Fsync).expect("journal");
        let (_, shared) = shared(1, Some(journal));
        let meta = FrameMeta { queue: 0, worker: 0 };
        let mut h = EngineHandler::new(shared, meta);
        let ask = |h: &mut EngineHandler, options: &[u8]| {
            let (mut f, len) = request(options);
            h.handle(&meta, &mut f, len)
        };
        h.begin_batch();
        assert!(matches!(ask(&mut h, &[53, 1, 1, 255]), Verdict::Reply(_)), "OFFER");
        assert_eq!(h.end_batch(), Release::Now, "nothing to make durable");
        h.begin_batch();
        let offer = ask(&mut h, &[53, 1, 1, 255]);
        assert!(matches!(offer, Verdict::Reply(_)), "{offer:?}");
        let request = [&[53, 1, 3, 50, 4, 198, 18, 0, 10, 54, 4, 198, 18, 0, 1][..], &[255]].concat();
        assert!(matches!(ask(&mut h, &request), Verdict::ReplyWhenDurable(_)), "ACK");
        let Release::After(ticket) = h.end_batch() else { panic!("the ACK's record is not being synced") };
        assert_eq!(crate::journal::tests::poll(|| h.settled(ticket)), Some(true), "ticket {ticket}");
    }

    #[test]
    fn a_batch_gets_a_verdict_per_frame_and_is_counted_once() {
        let (db, shared) = shared(1, None);
        let meta = FrameMeta { queue: 0, worker: 0 };
        let mut h = EngineHandler::new(shared.clone(), meta);
        // An address to ask for: offer one first.
        h.begin_batch();
        let (mut d, len) = request(&[53, 1, 1, 255]);
        assert!(matches!(h.handle(&meta, &mut d, len), Verdict::Reply(_)));
        assert!(h.end_batch() == Release::Now);
        let offered = db.lock(0).get(&ClientKey::hw(1, &[2, 0, 0, 0, 0, 1])).expect("offered").addr;
        let selecting = [&[53, 1, 3, 50, 4][..], &offered.octets(), &[54, 4, 198, 18, 0, 1, 255]].concat();
        let (mut a, la) = request(&selecting);
        let (mut b, lb) = request(&[53, 1, 1, 255]);
        let mut garbage = vec![0u8; 64];
        h.begin_batch();
        let mut jobs = [
            Job { buf: &mut a, len: la, verdict: Verdict::Drop(DropReason::NotForUs) },
            Job { buf: &mut garbage, len: 64, verdict: Verdict::Drop(DropReason::NotForUs) },
            Job { buf: &mut b, len: lb, verdict: Verdict::Drop(DropReason::NotForUs) },
        ];
        h.handle_batch(&meta, &mut jobs);
        let verdicts: Vec<_> = jobs.iter().map(|j| j.verdict).collect();
        assert!(matches!(verdicts[0], Verdict::ReplyWhenDurable(_)), "ACK: {verdicts:?}");
        assert_eq!(verdicts[1], Verdict::Drop(DropReason::Malformed));
        assert!(matches!(verdicts[2], Verdict::Reply(_)), "OFFER again: {verdicts:?}");
        assert_eq!(h.end_batch(), Release::Now, "no journal: durable at once");
        let counts = shared.stats[0].render();
        for want in ["rx_discover=2", "rx_request=1", "tx_offer=2", "tx_ack=1", "rx_other=1", "rx_request_selecting=1"]
        {
            assert!(counts.split(' ').any(|c| c == want), "{want} in {counts}");
        }
        assert!(db.lock(0).get(&ClientKey::hw(1, &[2, 0, 0, 0, 0, 1])).is_some_and(|l| l.state == LeaseState::Bound));
    }

    #[test]
    fn reload_with_new_pools_rebuilds_tables_and_keeps_every_lease() {
        let (db, shared) = shared(2, None);
        let mut bound = vec![];
        for i in 0..6u8 {
            let mac = [2, 0, 0, 0, 0, i];
            let mut g = db.lock(db.shard_of(&mac));
            let k = ClientKey::hw(1, &mac);
            let (a, s) = g.offer(100, 30, &k, mac, &[1], None, None).expect("offer");
            g.bind(100, k, mac, a, s, 3600, false).expect("bind");
            bound.push((k, mac, a));
        }
        // Same pools: tables kept.
        assert!(reload(&shared, cfg(20)).contains("kept"));
        assert!(Arc::ptr_eq(&shared.runtime().db, &db));
        // Grown pool: rebuilt, old tables retired, every lease carried over.
        assert!(reload(&shared, cfg(40)).contains("rebuilt"));
        let rt = shared.runtime();
        assert!(db.is_retired() && !Arc::ptr_eq(&rt.db, &db));
        for (k, mac, a) in bound {
            let g = rt.db.lock(rt.db.shard_of(&mac));
            assert_eq!(g.get(&k).map(|l| l.addr), Some(a));
        }
        assert_eq!(rt.db.census(200).bound, 6);
        assert_eq!(rt.db.pool_usage(200)[0].2, 31);
    }
}
