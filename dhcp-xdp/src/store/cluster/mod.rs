//! Cluster mode (`[cluster]`): responders that share pools through PostgreSQL.
//!
//! - [`pg`]: the database as the lease store of record (group commit per worker).
//! - [`schema`]: the versioned schema, `dhcp-xdp db init|upgrade`.
//! - this module: the membership loop. Every heartbeat a node writes its row in
//!   `dhcp_xdp_nodes`, reads which nodes are live (a heartbeat younger than `takeover-after`),
//!   and divides the 256 RFC 3074 buckets among them in name order (bucket `b` is served by
//!   live node `b mod n`), writing its share into the XDP program's `BUCKETS` map. It renews
//!   the address blocks it holds in `dhcp_xdp_blocks`, claims more when its free addresses run
//!   low, returns idle ones, and takes the blocks of a node whose heartbeat stopped (with that
//!   node's leases read from the database). Between heartbeats it takes in the leases other
//!   nodes committed, so any node can answer any client's rebind with its own address.
//!
//! Why an address is never held twice: the database has one row per address, and neither the
//! daemons' upserts nor any other writer (a trigger) can move a row another client holds;
//! a worker's ACK leaves only after its row committed. Blocks and buckets only keep nodes
//! from contending; a node that lost the database cannot commit, so it cannot promise.

pub mod pg;
pub mod schema;

use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use dhcp_xdp_common::buckets;
use dhcp_xdp_core::{config::ClusterConfig, leases::LeaseDb};
pub use pg::PgStore;
use pg::{LEASE_COLUMNS, connect, lease_from_row};
use postgres::Client;

use crate::{
    ebpf::Buckets,
    serve::Shared,
    store::{AdminRemoval, Health, LeaseStore, Recovered, StoreError},
};

/// Heartbeats between two pulls of other nodes' lease changes.
const PULL_EVERY: u32 = 10;

/// What the membership loop knows, for logs, statistics and metrics.
#[derive(Debug, Default)]
pub struct Status {
    /// The database answered the last heartbeat.
    pub database_up: AtomicBool,
    /// Buckets this node serves now.
    pub buckets: AtomicU32,
    /// Blocks this node holds now.
    pub blocks: AtomicU32,
    /// Live nodes (this one included) at the last heartbeat.
    pub nodes: AtomicU32,
    /// Nodes whose buckets and blocks this node took over since start.
    pub takeovers: AtomicU64,
    /// Leases other nodes committed that this node took in.
    pub absorbed: AtomicU64,
    /// The database's clock minus this host's, in milliseconds, at the last heartbeat.
    pub clock_offset_ms: std::sync::atomic::AtomicI64,
    /// An offset above a second was logged (and has not come back under it since).
    clock_offset_logged: AtomicBool,
}

/// This node's part in the cluster.
pub struct Cluster {
    /// `[cluster]` as configured at start.
    pub cfg: ClusterConfig,
    /// The database's side of the lease store.
    pub store: Arc<PgStore>,
    /// What the membership loop knows.
    pub status: Status,
    /// This running daemon, as its node row names it.
    pub instance: Instance,
    /// Whether it may serve, as its heartbeats say.
    pub liveness: Arc<Liveness>,
    /// The leases read at start and the highest change number this node wrote, with when the
    /// start began, until [`recover`](LeaseStore::recover) builds the tables from them.
    initial: std::sync::Mutex<Option<(Vec<dhcp_xdp_core::leases::Lease>, u64, Instant)>>,
}

/// The running daemon that holds a node name: a random id, the host and the pid, recorded in
/// the node's row beside its heartbeat. Two daemons never hold one name: a second one refuses
/// to start while the first beats, and one whose row another instance took stands down and
/// stops.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Random, new at every start.
    pub id: String,
    /// The host name.
    pub host: String,
    /// The process id.
    pub pid: i32,
}

impl Instance {
    fn new() -> Self {
        let mut b = [0u8; 16];
        if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
            let _ = std::io::Read::read_exact(&mut f, &mut b);
        }
        // Time and pid as well: unique even if the random source failed.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let id = format!("{:032x}{:x}{:x}", u128::from_le_bytes(b), t, std::process::id());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned();
        Self { id, host, pid: std::process::id() as i32 }
    }

    /// Takes the node's row for this instance. A row of another instance whose heartbeat is
    /// younger than `takeover-after` is watched until it lapses (a daemon that crashed or was
    /// killed a moment ago: its name is free once the others would take over) or moves (a
    /// daemon that runs: this one refuses to start, saying which).
    fn claim(&self, c: &mut Client, cfg: &ClusterConfig, addresses: &str, pools: &str) -> anyhow::Result<()> {
        // Nodes that divide blocks must agree on them: a node whose pools or block size differ
        // from a live node's is refused before it takes part.
        let ttl = f64::from(cfg.takeover_after);
        if let Some(r) = c.query_opt(
            "SELECT name, pools FROM dhcp_xdp_nodes WHERE name <> $1 AND pools <> '' AND pools <> $2
               AND heartbeat > now() - make_interval(secs => $3) ORDER BY name LIMIT 1",
            &[&cfg.node, &pools, &ttl],
        )? {
            let (name, theirs): (String, String) = (r.get(0), r.get(1));
            anyhow::bail!(
                "this node's pools or block size differ from live node {name}'s, so they cannot share blocks:\n  \
                 node {name}: {theirs}\n  this node: {pools}\nserve the same pools with the same block-size on every node"
            );
        }
        let deadline = Instant::now() + Duration::from_secs(u64::from(cfg.takeover_after) + 2);
        let mut first_beat: Option<f64> = None;
        loop {
            let mut tx = c.transaction()?;
            let row = tx.query_opt(
                "SELECT instance, host, pid, extract(epoch FROM heartbeat)::float8,
                        extract(epoch FROM now() - heartbeat)::float8
                   FROM dhcp_xdp_nodes WHERE name = $1 FOR UPDATE",
                &[&cfg.node],
            )?;
            let live_other = row.as_ref().filter(|r| {
                let other: String = r.get(0);
                !other.is_empty() && other != self.id && r.get::<_, f64>(4) < f64::from(cfg.takeover_after)
            });
            match live_other {
                None => {
                    tx.execute(
                        "INSERT INTO dhcp_xdp_nodes (name, heartbeat, started, addresses, instance, host, pid, pools)
                         VALUES ($1, now(), now(), $2, $3, $4, $5, $6)
                         ON CONFLICT (name) DO UPDATE SET heartbeat = now(), started = now(), addresses = $2,
                             instance = $3, host = $4, pid = $5, pools = $6",
                        &[&cfg.node, &addresses, &self.id, &self.host, &self.pid, &pools],
                    )?;
                    tx.commit()?;
                    return Ok(());
                }
                Some(r) => {
                    let (host, pid, beat, age): (String, i32, f64, f64) = (r.get(1), r.get(2), r.get(3), r.get(4));
                    tx.commit()?;
                    let moved = first_beat.is_some_and(|b| beat > b);
                    if moved || Instant::now() >= deadline {
                        anyhow::bail!(
                            "node name '{}' is held by a running daemon (instance on host {host}, pid {pid}, heartbeat {age:.1} s ago): stop that one or give this one another name",
                            cfg.node
                        );
                    }
                    first_beat.get_or_insert(beat);
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}

/// How far the database's clock runs ahead of this host's (milliseconds, negative: behind),
/// measured against the middle of one round trip.
pub fn measure_clock_offset(c: &mut Client) -> Result<i64, postgres::Error> {
    let before = crate::serve::host_millis();
    let db_ms: f64 = c.query_one("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8", &[])?.get(0);
    let after = crate::serve::host_millis();
    Ok(db_ms as i64 - (before + after) / 2)
}

/// Measures the database's clock against this host's and runs the lease clock by it; keeps the
/// offset for the metrics and logs it once when above one second (again after it came back
/// under a second).
fn sync_clock(c: &mut Client, status: &Status) -> Result<(), postgres::Error> {
    let ms = measure_clock_offset(c)?;
    crate::serve::set_lease_clock_offset_ms(ms);
    status.clock_offset_ms.store(ms, Ordering::Relaxed);
    let logged = &status.clock_offset_logged;
    if ms.abs() > 1000 {
        if !logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "cluster: this host's clock is {:.1} s {} the database's; lease times follow the database",
                ms.abs() as f64 / 1000.0,
                if ms > 0 { "behind" } else { "ahead of" }
            );
        }
    } else {
        logged.store(false, Ordering::Relaxed);
    }
    Ok(())
}

/// The pools and block size a node serves, as one line every node of a cluster must agree on
/// ("block-size 16; subnet 1: 198.18.0.10-198.18.0.199, …").
pub fn layout(cfg: &dhcp_xdp_core::config::Config) -> String {
    let block = cfg.cluster.as_ref().map_or(0, |c| c.block_size);
    let subnets: Vec<String> = cfg
        .subnets
        .iter()
        .map(|s| {
            let pools: Vec<String> = s.pools.iter().map(|p| format!("{}-{}", p.start, p.end)).collect();
            format!("subnet {}: {}", s.id, pools.join(" "))
        })
        .collect();
    format!("block-size {block}; {}", subnets.join("; "))
}

/// What can lose an ACKed lease in the database itself: `fsync` off, and streaming standbys a
/// failover could promote that are not synchronous. Each as one line for the log and `db status`.
pub fn durability_warnings(c: &mut Client) -> Result<Vec<String>, postgres::Error> {
    let r = c.query_one(
        "SELECT current_setting('fsync'), current_setting('synchronous_standby_names'),
                (SELECT count(*) FROM pg_stat_replication),
                (SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum'))",
        &[],
    )?;
    let (fsync, standby_names, standbys, sync): (String, String, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
    let mut w = vec![];
    if fsync != "on" {
        w.push(format!(
            "the database runs with fsync = {fsync}: a crash of its server can lose leases that were ACKed \
             (set fsync = on)"
        ));
    }
    if standbys > 0 && (standby_names.trim().is_empty() || sync == 0) {
        w.push(format!(
            "the database has {standbys} streaming standby(s) and none is synchronous: a failover to one can lose \
             leases that were ACKed (set synchronous_standby_names)"
        ));
    }
    Ok(w)
}

/// The bucket bitmap of node `me` among the sorted live `nodes` (none if it is not among them).
pub fn bucket_bits(nodes: &[String], me: &str) -> [u32; buckets::WORDS as usize] {
    let mut bits = [0u32; buckets::WORDS as usize];
    if let Some(i) = nodes.iter().position(|n| n == me) {
        for b in 0..buckets::COUNT as usize {
            if b % nodes.len() == i {
                bits[b / 32] |= 1 << (b % 32);
            }
        }
    }
    bits
}

/// Takes lease rows (from a query selecting [`LEASE_COLUMNS`]) into the tables; returns how many.
fn absorb_rows(db: &LeaseDb, rows: &[postgres::Row], now: u32) -> usize {
    for l in rows.iter().filter_map(lease_from_row) {
        db.absorb(l, now);
    }
    rows.len()
}

fn ip_i64(a: Ipv4Addr) -> i64 {
    i64::from(u32::from(a))
}

impl Cluster {
    /// Connects, makes sure of the schema, registers this node and the blocks of `cfg`'s pools,
    /// reads every lease in the database (for [`recover`](LeaseStore::recover)), and starts the
    /// lease store with `slots` syncers.
    pub fn start(config: &dhcp_xdp_core::config::Config, slots: usize, addresses: &str) -> anyhow::Result<Arc<Self>> {
        let t = Instant::now();
        let cfg = config.cluster.as_ref().context("no [cluster] section")?;
        let scopes: Vec<(u32, u32)> = config.subnets.iter().map(|s| (s.id, s.lease_scope)).collect();
        let pools = layout(config);
        let mut c = connect(&cfg.database).with_context(|| format!("connecting to {}", redact(&cfg.database)))?;
        schema::ensure(&mut c)?;
        // Lease times are the database's from the first lease read on.
        let status = Status::default();
        sync_clock(&mut c, &status)?;
        for w in durability_warnings(&mut c)? {
            tracing::warn!("cluster: {w}");
        }
        let instance = Instance::new();
        instance.claim(&mut c, cfg, addresses, &pools)?;
        let rescoped = schema::rescope_shared_networks(&mut c, &scopes)?;
        if rescoped > 0 {
            tracing::info!("cluster: {rescoped} lease rows put in the lease scope of their shared network");
        }
        // Fresh statistics, so the syncers' cached plans fit the table as it is (autovacuum keeps
        // them fresh from here).
        c.batch_execute("ANALYZE dhcp_xdp_leases")?;
        let rows = c.query(&format!("SELECT {LEASE_COLUMNS} FROM dhcp_xdp_leases"), &[])?;
        let leases: Vec<_> = rows.iter().filter_map(lease_from_row).collect();
        let max_seq: i64 =
            c.query_one("SELECT coalesce(max(seq), 0) FROM dhcp_xdp_leases WHERE node = $1", &[&cfg.node])?.get(0);
        let store = PgStore::open(&cfg.database, &cfg.node, slots, cfg.takeover_after)
            .context("starting the database syncers")?;
        Ok(Arc::new(Self {
            cfg: cfg.clone(),
            store,
            status,
            instance,
            liveness: Arc::new(Liveness::default()),
            initial: std::sync::Mutex::new(Some((leases, max_seq.max(0) as u64, t))),
        }))
    }

    /// Starts the heartbeat (a thread with its own connection and schedule) and the membership
    /// loop (another, with its own connection) that keeps `buckets` and the lease tables of
    /// `shared` in step with the cluster.
    fn start_membership(self: &Arc<Self>, shared: Arc<Shared>, buckets: Buckets) -> std::io::Result<()> {
        let me = self.clone();
        std::thread::Builder::new().name("heartbeat".into()).spawn(move || {
            if let Err(e) = crate::privileges::drop_for_this_thread() {
                tracing::warn!("cluster: could not drop capabilities: {e}");
            }
            Heartbeat { cluster: me, client: None, down_since: None }.run();
        })?;
        let me = self.clone();
        std::thread::Builder::new().name("cluster".into()).spawn(move || {
            if let Err(e) = crate::privileges::drop_for_this_thread() {
                tracing::warn!("cluster: could not drop capabilities: {e}");
            }
            Membership::new(me, shared, buckets).run();
        })?;
        Ok(())
    }
}

/// The cluster as the daemon's lease store: the database's rows are the leases, each worker's
/// batch is one commit, and the node serves only while its heartbeats commit.
impl LeaseStore for Cluster {
    fn name(&self) -> &'static str {
        "lease database"
    }

    fn recover(
        &self,
        cfg: &dhcp_xdp_core::config::Config,
        lanes: usize,
        workers: usize,
    ) -> Result<Recovered, StoreError> {
        let (leases, max_seq, t) =
            self.initial.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or((vec![], 0, Instant::now()));
        let n = leases.len();
        let db = LeaseDb::with_lanes(cfg, lanes, workers, leases, crate::serve::unix_now());
        db.continue_after(max_seq);
        let c = &self.cfg;
        let report = format!(
            "cluster: node {} on {}: {n} lease rows read in {:.0?}; blocks of {} addresses, heartbeat {}s, \
             takeover after {}s",
            c.node,
            redact(&c.database),
            t.elapsed(),
            c.block_size,
            c.heartbeat,
            c.takeover_after
        );
        Ok(Recovered { db, report })
    }

    fn append(&self, slot: usize, changes: &[(u64, dhcp_xdp_core::leases::Change)]) -> Result<Option<u64>, StoreError> {
        self.store.append(slot, changes).map(Some)
    }

    fn settled(&self, slot: usize, ticket: u64) -> Option<bool> {
        self.store.settled(slot, ticket)
    }

    fn records(&self) -> u64 {
        self.store.records()
    }

    fn health(&self) -> &Health {
        self.store.health()
    }

    #[inline]
    fn serving(&self) -> bool {
        self.liveness.serving()
    }

    fn shares_pools(&self) -> bool {
        true
    }

    fn run(self: Arc<Self>, shared: Arc<Shared>, buckets: Option<Buckets>) -> std::io::Result<()> {
        let buckets =
            buckets.ok_or_else(|| std::io::Error::other("cluster mode needs the XDP program's bucket map"))?;
        self.start_membership(shared, buckets)
    }

    fn stop(&self, _: &LeaseDb, timeout: Duration) -> Result<String, String> {
        match self.store.flush(timeout) {
            Ok(()) => Ok("cluster: every lease change committed".into()),
            Err(e) => Err(format!("cluster: {e}; ACKs it held were not sent")),
        }
    }

    fn admin_removal(&self, edit: AdminRemoval) -> Result<u64, String> {
        self.store.admin_removal(edit)
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "dhcp_xdp_cluster_commit_seconds",
            "Time a batch commit to the cluster database took",
            self.store.commit_seconds().clone(),
        );
    }

    fn encode_metrics(&self, enc: &mut prometheus_client::encoding::DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use crate::metrics::{counter_family, gauge_family};
        let st = &self.status;
        let flag = |b: &AtomicBool| f64::from(u8::from(b.load(Ordering::Relaxed)));
        let node = || vec![("node", self.cfg.node.clone())];
        gauge_family(
            enc,
            "dhcp_xdp_cluster_database_up",
            "1 while the cluster database answers heartbeats",
            [(node(), flag(&st.database_up))],
        )?;
        gauge_family(
            enc,
            "dhcp_xdp_cluster_commit_failing",
            "1 while lease commits to the cluster database fail (ACKs are withheld)",
            [(node(), flag(&self.health().failing))],
        )?;
        gauge_family(
            enc,
            "dhcp_xdp_cluster_clock_offset_seconds",
            "The database's clock minus this host's (lease times follow the database)",
            [(node(), st.clock_offset_ms.load(Ordering::Relaxed) as f64 / 1000.0)],
        )?;
        for (name, help, v) in [
            ("dhcp_xdp_cluster_nodes", "Live nodes, this one included", &st.nodes),
            ("dhcp_xdp_cluster_buckets", "Load-balancing buckets (of 256) this node serves", &st.buckets),
            ("dhcp_xdp_cluster_blocks", "Address blocks this node holds", &st.blocks),
        ] {
            gauge_family(enc, name, help, [(node(), f64::from(v.load(Ordering::Relaxed)))])?;
        }
        for (name, help, v) in [
            (
                "dhcp_xdp_cluster_takeovers",
                "Silent nodes whose buckets and blocks this node took",
                st.takeovers.load(Ordering::Relaxed),
            ),
            (
                "dhcp_xdp_cluster_leases_absorbed",
                "Lease rows of other nodes taken into the tables",
                st.absorbed.load(Ordering::Relaxed),
            ),
            (
                "dhcp_xdp_cluster_conflicts",
                "Lease commits refused: address held by another client",
                self.store.conflicts(),
            ),
            (
                "dhcp_xdp_cluster_commit_failures",
                "Commit rounds that failed",
                self.health().failed_rounds.load(Ordering::Relaxed),
            ),
            ("dhcp_xdp_cluster_lease_changes", "Lease changes handed to the database", self.records()),
        ] {
            counter_family(enc, name, help, [(node(), v)])?;
        }
        Ok(())
    }

    fn status_line(&self) -> Option<String> {
        let s = &self.status;
        Some(format!(
            "cluster node={} database_up={} nodes={} buckets={} blocks={} takeovers={} absorbed={} conflicts={} \
             commit_failures={}",
            self.cfg.node,
            s.database_up.load(Ordering::Relaxed),
            s.nodes.load(Ordering::Relaxed),
            s.buckets.load(Ordering::Relaxed),
            s.blocks.load(Ordering::Relaxed),
            s.takeovers.load(Ordering::Relaxed),
            s.absorbed.load(Ordering::Relaxed),
            self.store.conflicts(),
            self.health().failed_rounds.load(Ordering::Relaxed),
        ))
    }
}

/// A database address without its password, for messages, in every form libpq takes: a URL's
/// `user:password@`, a URL's `password=` parameter, and `password=` among `key=value` words
/// (quoted or not).
pub fn redact(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let mut out = url[..scheme_end + 3].to_owned();
        let authority = &rest[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let user = authority[..at].split_once(':').map_or(&authority[..at], |(u, _)| u);
                out.push_str(user);
                if authority[..at].contains(':') {
                    out.push_str(":…");
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        let tail = &rest[authority_end..];
        match tail.split_once('?') {
            Some((path, query)) => {
                out.push_str(path);
                out.push('?');
                let params: Vec<String> = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=…"),
                        _ => kv.to_owned(),
                    })
                    .collect();
                out.push_str(&params.join("&"));
            }
            None => out.push_str(tail),
        }
        return out;
    }
    // key = value words; a value may be 'quoted' with \' and \\ escapes.
    let b = url.as_bytes();
    let mut out = String::with_capacity(url.len());
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            out.push(b[i] as char);
            i += 1;
            continue;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &url[key_start..i];
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= b.len() || b[j] != b'=' {
            out.push_str(key);
            continue;
        }
        j += 1;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        let value_start = j;
        if j < b.len() && b[j] == b'\'' {
            j += 1;
            while j < b.len() && b[j] != b'\'' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            j = (j + 1).min(b.len());
        } else {
            while j < b.len() && !b[j].is_ascii_whitespace() {
                j += 1;
            }
        }
        out.push_str(key);
        out.push('=');
        if key.eq_ignore_ascii_case("password") {
            out.push('…');
        } else {
            out.push_str(&url[value_start..j.min(url.len())]);
        }
        i = j;
    }
    out
}

/// The membership loop's state.
struct Membership {
    cluster: Arc<Cluster>,
    shared: Arc<Shared>,
    buckets: Buckets,
    client: Option<Client>,
    /// Bucket bitmap written last.
    served: Option<[u32; buckets::WORDS as usize]>,
    /// Live nodes as the heartbeat thread last read them, when this loop last acted on them.
    live: Vec<String>,
    /// Blocks held (by first address), as the database last confirmed.
    held: BTreeSet<Ipv4Addr>,
    /// The lease tables the blocks were registered and granted for (a reload replaces them).
    db: Option<Arc<LeaseDb>>,
    /// Change numbers: leases with a higher one are read at the next pull. Two pulls back, so
    /// a transaction that took its number before a later one but committed after is still read.
    seen: [i64; 2],
    /// When the periodic work (takeovers, blocks, pull) last ran, and how many times.
    last_round: Option<Instant>,
    rounds: u32,
    /// Addresses held by leases per pool at the last balancing, and when that was.
    used: Vec<u64>,
    balanced_at: Instant,
}

/// Milliseconds on the monotonic clock since the first call (the liveness deadline's clock: a
/// pause of the process, or a wrong wall clock, cannot move it backwards).
fn mono_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Whether this node may serve, as its heartbeats say: the heartbeat thread writes it, the
/// membership loop and every worker's batch read it.
///
/// A node serves only while its last committed heartbeat is younger than takeover-after less
/// half a heartbeat (before that, others take its buckets), and after a (re)join — a start, a
/// lapse, a pause of the process longer than takeover-after — only from its second heartbeat:
/// by then every other node has seen its row and given its buckets up.
#[derive(Debug, Default)]
pub struct Liveness {
    /// [`mono_ms`] until which this node may serve (0: not serving).
    serve_until: AtomicU64,
    /// Heartbeats committed since the last (re)join.
    beats: AtomicU32,
    /// The live nodes at the last heartbeat, sorted.
    live: std::sync::Mutex<Vec<String>>,
    /// Another daemon took this node's name.
    taken: AtomicBool,
    /// The node (re)joined since the membership loop last looked: its tables are refreshed.
    rejoined: AtomicBool,
}

impl Liveness {
    /// Whether this node may answer anyone now.
    #[inline]
    pub fn serving(&self) -> bool {
        mono_ms() < self.serve_until.load(Ordering::Acquire)
    }

    fn live(&self) -> Vec<String> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn rejoin(&self) {
        self.serve_until.store(0, Ordering::Release);
        self.beats.store(0, Ordering::Relaxed);
        self.rejoined.store(true, Ordering::Relaxed);
    }
}

/// What one heartbeat found.
enum Beat {
    /// Committed; the live nodes.
    Live(Vec<String>),
    /// Another daemon (host, pid) holds this node's name.
    Taken(String, i32),
}

/// The heartbeat: its own thread, connection and schedule, so no other work (takeover reads,
/// pulls, block claims) can make it late.
struct Heartbeat {
    cluster: Arc<Cluster>,
    client: Option<Client>,
    down_since: Option<Instant>,
}

impl Heartbeat {
    fn run(mut self) {
        let cfg = self.cluster.cfg.clone();
        let every = Duration::from_secs(u64::from(cfg.heartbeat));
        let takeover_ms = u64::from(cfg.takeover_after) * 1000;
        let cluster = self.cluster.clone();
        let (status, liveness) = (&cluster.status, &cluster.liveness);
        let mut last_round: Option<u64> = None;
        loop {
            let start = mono_ms();
            if let Some(prev) = last_round
                && start.saturating_sub(prev) > takeover_ms
            {
                // The process was paused (SIGSTOP, a stalled VM) past takeover-after: others
                // have taken its buckets and blocks; it rejoins before it answers anyone.
                tracing::warn!(
                    "cluster: this node was paused for {:.1} s, longer than takeover-after: rejoining",
                    start.saturating_sub(prev) as f64 / 1000.0
                );
                liveness.rejoin();
            }
            last_round = Some(start);
            match self.beat() {
                Ok(Beat::Taken(host, pid)) => {
                    tracing::error!(
                        "cluster: node name '{}' was taken by another daemon (host {host}, pid {pid}): standing down \
                         and stopping",
                        cfg.node
                    );
                    liveness.serve_until.store(0, Ordering::Release);
                    liveness.taken.store(true, Ordering::Release);
                    if let Err(e) = signal_hook::low_level::raise(signal_hook::consts::SIGTERM) {
                        tracing::error!("cluster: could not stop: {e}");
                    }
                    return;
                }
                Ok(Beat::Live(live)) => {
                    *liveness.live.lock().unwrap_or_else(|p| p.into_inner()) = live.clone();
                    status.nodes.store(live.len() as u32, Ordering::Relaxed);
                    status.database_up.store(true, Ordering::Relaxed);
                    if let Some(since) = self.down_since.take() {
                        tracing::info!("cluster: database reachable again after {:.1?}", since.elapsed());
                    }
                    let beats = liveness.beats.fetch_add(1, Ordering::AcqRel) + 1;
                    if beats >= 2 {
                        // From the moment this heartbeat was sent: conservative.
                        let until = start + takeover_ms.saturating_sub(u64::from(cfg.heartbeat) * 500);
                        liveness.serve_until.store(until, Ordering::Release);
                    } else {
                        tracing::info!(
                            "cluster: joined as {} (live nodes: {}); serving from the next heartbeat",
                            cfg.node,
                            live.join(", ")
                        );
                    }
                }
                Err(e) => {
                    status.database_up.store(false, Ordering::Relaxed);
                    if self.client.as_ref().is_none_or(Client::is_closed) {
                        self.client = None;
                    }
                    if self.down_since.is_none() {
                        self.down_since = Some(Instant::now());
                        tracing::error!(
                            "cluster: database unreachable ({}); no ACK leaves until a commit succeeds",
                            pg::describe(&e)
                        );
                    }
                    // Past the deadline the others take over: a rejoin is due when it answers.
                    if !liveness.serving() && liveness.beats.load(Ordering::Relaxed) > 0 {
                        liveness.rejoin();
                    }
                }
            }
            let spent = Duration::from_millis(mono_ms().saturating_sub(start));
            std::thread::sleep(every.saturating_sub(spent).max(Duration::from_millis(10)));
        }
    }

    /// One heartbeat: our row (under our instance), the clock offset, the live nodes.
    fn beat(&mut self) -> Result<Beat, postgres::Error> {
        let cfg = &self.cluster.cfg;
        let inst = &self.cluster.instance;
        if self.client.is_none() {
            self.client = Some(connect(&cfg.database)?);
        }
        let c = self.client.as_mut().expect("connected above");
        let takeover = f64::from(cfg.takeover_after);
        if c.execute(
            "UPDATE dhcp_xdp_nodes SET heartbeat = now() WHERE name = $1 AND instance = $2",
            &[&cfg.node, &inst.id],
        )? == 0
        {
            match c.query_opt("SELECT host, pid FROM dhcp_xdp_nodes WHERE name = $1", &[&cfg.node])? {
                // Another daemon took this name (this one was paused past takeover-after, or
                // its heartbeats could not commit): it serves the buckets now.
                Some(r) => return Ok(Beat::Taken(r.get(0), r.get(1))),
                // Our row was removed by hand: put it back.
                None => {
                    c.execute(
                        "INSERT INTO dhcp_xdp_nodes (name, heartbeat, started, instance, host, pid)
                         VALUES ($1, now(), now(), $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                        &[&cfg.node, &inst.id, &inst.host, &inst.pid],
                    )?;
                }
            }
        }
        sync_clock(c, &self.cluster.status)?;
        let mut live: Vec<String> = c
            .query(
                "SELECT name FROM dhcp_xdp_nodes WHERE heartbeat > now() - make_interval(secs => $1) ORDER BY name",
                &[&takeover],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !live.contains(&cfg.node) {
            live.push(cfg.node.clone());
            live.sort();
        }
        Ok(Beat::Live(live))
    }
}

impl Membership {
    fn new(cluster: Arc<Cluster>, shared: Arc<Shared>, buckets: Buckets) -> Self {
        Self {
            cluster,
            shared,
            buckets,
            client: None,
            served: None,
            live: vec![],
            held: BTreeSet::new(),
            db: None,
            seen: [0, 0],
            last_round: None,
            rounds: 0,
            used: vec![],
            balanced_at: Instant::now(),
        }
    }

    fn run(mut self) {
        let heartbeat = Duration::from_secs(u64::from(self.cluster.cfg.heartbeat));
        let liveness = self.cluster.liveness.clone();
        loop {
            if liveness.taken.load(Ordering::Acquire) {
                self.stand_down();
                return;
            }
            // Leases another commit beat: into the tables at once.
            let winners = self.cluster.store.take_winners();
            if !winners.is_empty() {
                let rt = self.shared.runtime();
                let now = crate::serve::unix_now();
                for l in winners {
                    rt.db.absorb(l, now);
                }
            }
            if !liveness.serving() {
                // Not live (joining, lapsed, paused): nothing served, nothing allocated.
                self.stand_down();
                if liveness.rejoined.swap(false, Ordering::AcqRel) {
                    // Whatever happened meanwhile is read again in full once it serves.
                    self.seen = [0, 0];
                    self.rounds = 0;
                }
            } else if self.last_round.is_none_or(|t| t.elapsed() >= heartbeat) {
                self.last_round = Some(Instant::now());
                if let Err(e) = self.round() {
                    tracing::debug!("cluster: membership round: {}", pg::describe(&e));
                    if self.client.as_ref().is_none_or(Client::is_closed) {
                        self.client = None;
                    }
                }
            } else if self.balanced_at.elapsed() >= Duration::from_millis(250) {
                let rt = self.shared.runtime();
                if self.db.as_ref().is_some_and(|d| Arc::ptr_eq(d, &rt.db))
                    && let Err(e) = self.balance(&rt.db, crate::serve::unix_now())
                {
                    tracing::debug!("cluster: balancing blocks: {}", pg::describe(&e));
                    self.client = None;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Gives up buckets and blocks locally (not live: joining, lapsed or paused).
    fn stand_down(&mut self) {
        if !self.held.is_empty() || self.served.is_some_and(|b| b.iter().any(|w| *w != 0)) {
            tracing::warn!("cluster: not live: serving no buckets and no blocks until the heartbeats say it is again");
        }
        let db = self.shared.runtime().db.clone();
        for b in std::mem::take(&mut self.held) {
            db.revoke(b);
        }
        self.set_buckets([0; buckets::WORDS as usize]);
        self.cluster.status.blocks.store(0, Ordering::Relaxed);
        self.live.clear();
        self.db = None;
    }

    fn set_buckets(&mut self, bits: [u32; buckets::WORDS as usize]) {
        if self.served == Some(bits) {
            return;
        }
        match self.buckets.set(&bits) {
            Ok(()) => {
                self.served = Some(bits);
                let n: u32 = bits.iter().map(|w| w.count_ones()).sum();
                self.cluster.status.buckets.store(n, Ordering::Relaxed);
                tracing::info!(
                    "cluster: serving {n} of {} buckets (live nodes: {})",
                    buckets::COUNT,
                    self.live.join(", ")
                );
            }
            Err(e) => tracing::error!("cluster: writing the bucket map: {e}"),
        }
    }

    /// The periodic work of a live node, once a heartbeat: the buckets of the live nodes, the
    /// leases of nodes that went silent, our blocks, other nodes' changes (incrementally, in
    /// batches). A failure is retried next time; the heartbeat never waits for it.
    fn round(&mut self) -> Result<(), postgres::Error> {
        let cfg = self.cluster.cfg.clone();
        let live = self.cluster.liveness.live();
        let gone: Vec<String> = self.live.iter().filter(|n| !live.contains(n)).cloned().collect();
        let joined: Vec<String> = live.iter().filter(|n| !self.live.contains(n)).cloned().collect();
        let first = self.live.is_empty();
        self.live = live.clone();
        if !first {
            for n in &joined {
                tracing::info!("cluster: node {n} joined; buckets divided again");
            }
        }
        let rt = self.shared.runtime();
        let now = crate::serve::unix_now();
        for n in &gone {
            // Its clients rebind to us: have every lease it wrote in the tables.
            let rows = self
                .client_mut()?
                .query(&format!("SELECT {LEASE_COLUMNS} FROM dhcp_xdp_leases WHERE node = $1"), &[n])?;
            let read = absorb_rows(&rt.db, &rows, now);
            self.cluster.status.takeovers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "cluster: node {n} silent for {}s: taking over its buckets and blocks ({read} of its leases read)",
                cfg.takeover_after
            );
        }
        // A (re)joined node reads everything first: other nodes' changes since it left.
        if self.rounds == 0 {
            self.pull(&rt.db, now)?;
        }
        self.set_buckets(bucket_bits(&live, &cfg.node));
        self.blocks(&rt.db, now)?;
        self.balance(&rt.db, now)?;
        self.rounds = self.rounds.wrapping_add(1);
        if self.rounds.is_multiple_of(PULL_EVERY) {
            self.pull(&rt.db, now)?;
        }
        Ok(())
    }

    fn client_mut(&mut self) -> Result<&mut Client, postgres::Error> {
        if self.client.is_none() {
            self.client = Some(connect(&self.cluster.cfg.database)?);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Registers the pools' blocks (after a start or reload), renews ours and takes a share of
    /// a silent node's (with their leases). Every heartbeat.
    fn blocks(&mut self, db: &Arc<LeaseDb>, now: u32) -> Result<(), postgres::Error> {
        let cfg = self.cluster.cfg.clone();
        let node = cfg.node.as_str();
        let ttl = f64::from(cfg.takeover_after);
        let size = i64::from(cfg.block_size);
        let fresh_tables = self.db.as_ref().is_none_or(|d| !Arc::ptr_eq(d, db));
        let (n, idx) = (self.live.len().max(1) as i64, self.live.iter().position(|x| x == node).unwrap_or(0) as i64);
        let c = self.client_mut()?;
        if fresh_tables {
            let all = db.cluster_blocks();
            let firsts: Vec<i64> = all.iter().map(|b| ip_i64(b.first)).collect();
            let sizes: Vec<i32> = all.iter().map(|b| b.len as i32).collect();
            let subnets: Vec<i64> = all.iter().map(|b| i64::from(b.subnet)).collect();
            c.execute(
                "INSERT INTO dhcp_xdp_blocks (first_addr, size, subnet)
                 SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[]) ON CONFLICT (first_addr) DO NOTHING",
                &[&firsts, &sizes, &subnets],
            )?;
        }
        let mine: BTreeSet<Ipv4Addr> = c
            .query(
                "UPDATE dhcp_xdp_blocks SET expires = now() + make_interval(secs => $2) WHERE owner = $1
                 RETURNING first_addr",
                &[&node, &ttl],
            )?
            .iter()
            .map(|r| Ipv4Addr::from(r.get::<_, i64>(0) as u32))
            .collect();
        // A silent node's blocks (lapsed while owned): shared out among the live nodes.
        let taken: Vec<Ipv4Addr> = c
            .query(
                "UPDATE dhcp_xdp_blocks SET owner = $1, expires = now() + make_interval(secs => $2)
                 WHERE first_addr IN (SELECT first_addr FROM dhcp_xdp_blocks
                     WHERE owner IS NOT NULL AND owner <> $1 AND expires < now()
                       AND (first_addr / $3) % $4 = $5 FOR UPDATE SKIP LOCKED)
                 RETURNING first_addr",
                &[&node, &ttl, &size, &n, &idx],
            )?
            .iter()
            .map(|r| Ipv4Addr::from(r.get::<_, i64>(0) as u32))
            .collect();
        if !taken.is_empty() {
            tracing::info!("cluster: took over {} block(s) of silent nodes", taken.len());
        }
        // Blocks someone else took while we were away are no longer ours.
        for b in self.held.difference(&mine) {
            db.revoke(*b);
        }
        // Granted here (again, after a reload or a stand-down; a no-op for blocks already held).
        for b in &mine {
            db.grant(*b, now);
        }
        self.held = mine;
        self.take(db, &taken, now)?;
        self.db = Some(db.clone());
        Ok(())
    }

    /// Blocks newly ours: their leases first (whoever wrote them), then their addresses.
    fn take(&mut self, db: &LeaseDb, blocks: &[Ipv4Addr], now: u32) -> Result<(), postgres::Error> {
        if blocks.is_empty() {
            return Ok(());
        }
        let size = i64::from(self.cluster.cfg.block_size);
        let lo: Vec<i64> = blocks.iter().map(|a| ip_i64(*a)).collect();
        let rows = self.client_mut()?.query(
            &format!(
                "SELECT {LEASE_COLUMNS} FROM dhcp_xdp_leases l JOIN unnest($1::bigint[]) AS b(f)
                 ON l.address >= b.f AND l.address < b.f + $2"
            ),
            &[&lo, &size],
        )?;
        absorb_rows(db, &rows, now);
        for b in blocks {
            db.grant(*b, now);
            self.held.insert(*b);
        }
        self.cluster.status.blocks.store(self.held.len() as u32, Ordering::Relaxed);
        Ok(())
    }

    /// Keeps enough free addresses in hand per pool: claims blocks (unowned first) when fewer
    /// are free than the last allocation rate needs for two heartbeats (and at least half what
    /// is in use, and half its share of the pool), hands back one block no lease holds when
    /// more than twice that is free. Several times a heartbeat, so a burst of new clients waits
    /// a fraction of a second.
    fn balance(&mut self, db: &Arc<LeaseDb>, now: u32) -> Result<(), postgres::Error> {
        let cfg = self.cluster.cfg.clone();
        let node = cfg.node.as_str();
        let ttl = f64::from(cfg.takeover_after);
        let block = u64::from(cfg.block_size);
        let (pools, busy) = db.granted_usage(now);
        let elapsed = self.balanced_at.elapsed().as_secs_f64().max(0.05);
        self.balanced_at = Instant::now();
        let mut claimed = vec![];
        let mut returned = vec![];
        for (i, p) in pools.iter().enumerate() {
            let (lo, hi, held, used) = (p.first, p.last, p.held, p.used);
            let before = self.used.get(i).copied().unwrap_or(used);
            let per_s = used.saturating_sub(before) as f64 / elapsed;
            // Two heartbeats at the recent rate, half again what is in use, and a floor of half
            // this node's share of the pool: a burst of new clients at start finds addresses in
            // hand instead of waiting for claims (a dropped DISCOVER costs the client a
            // retransmission), and half the pool stays unowned for whoever grows.
            let share = u64::from(u32::from(hi) - u32::from(lo) + 1) / (2 * self.live.len().max(1) as u64);
            let floor = share.max(block);
            let want = floor.max((2.0 * per_s * f64::from(cfg.heartbeat)) as u64).max(used / 2);
            let free = held.saturating_sub(used);
            if free < want {
                let k = (want - free).div_ceil(block) as i64;
                let c = self.client_mut()?;
                claimed.extend(
                    c.query(
                        "UPDATE dhcp_xdp_blocks SET owner = $1, expires = now() + make_interval(secs => $2)
                         WHERE first_addr IN (SELECT first_addr FROM dhcp_xdp_blocks
                             WHERE first_addr BETWEEN $3 AND $4 AND (owner IS NULL OR expires < now())
                             ORDER BY owner IS NOT NULL, first_addr LIMIT $5 FOR UPDATE SKIP LOCKED)
                         RETURNING first_addr",
                        &[&node, &ttl, &ip_i64(lo), &ip_i64(hi), &k],
                    )?
                    .iter()
                    .map(|r| Ipv4Addr::from(r.get::<_, i64>(0) as u32)),
                );
            } else if free > 2 * want + block
                && let Some(b) = self.held.iter().find(|b| (lo..=hi).contains(*b) && !busy.contains_key(*b)).copied()
            {
                // Ungranted here first: no client is given one of its addresses from now on.
                db.revoke(b);
                self.held.remove(&b);
                returned.push(ip_i64(b));
            }
        }
        self.used = pools.iter().map(|p| p.used).collect();
        if !returned.is_empty() {
            self.client_mut()?.execute(
                "UPDATE dhcp_xdp_blocks SET owner = NULL, expires = NULL WHERE first_addr = ANY($1) AND owner = $2",
                &[&returned, &node],
            )?;
        }
        self.take(db, &claimed, now)?;
        self.cluster.status.blocks.store(self.held.len() as u32, Ordering::Relaxed);
        Ok(())
    }

    /// Takes in the leases other nodes committed since the last pull. There is no index on the
    /// change number (one would make every renewal a non-HOT update, writing every index: a
    /// third of the database's throughput), so this scans the table; it runs every
    /// [`PULL_EVERY`] heartbeats. Nothing depends on it being fresher: a takeover reads the
    /// silent node's rows, a start reads them all, a claimed block's rows are read with it,
    /// and the database refuses what stale tables would get wrong.
    fn pull(&mut self, db: &LeaseDb, now: u32) -> Result<(), postgres::Error> {
        /// Rows a statement reads at most: a pull of a whole table after a rejoin goes in
        /// bounded steps, each its own statement within the statement limit.
        const BATCH: i64 = 20_000;
        let node = self.cluster.cfg.node.clone();
        let (mut cursor, mut top) = (self.seen[0], self.seen[1]);
        loop {
            let rows = self.client_mut()?.query(
                &format!(
                    "SELECT {LEASE_COLUMNS} FROM dhcp_xdp_leases WHERE change > $1 AND node <> $2
                      ORDER BY change LIMIT $3"
                ),
                &[&cursor, &node, &BATCH],
            )?;
            let Some(last) = rows.last().map(|r| r.get::<_, i64>(10)) else { break };
            cursor = last;
            top = top.max(last);
            let read = absorb_rows(db, &rows, now);
            self.cluster.status.absorbed.fetch_add(read as u64, Ordering::Relaxed);
            if (rows.len() as i64) < BATCH {
                break;
            }
        }
        self.seen = [self.seen[1], top];
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_divided_among_live_nodes_by_name() {
        let nodes: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let bits: Vec<_> = nodes.iter().map(|n| bucket_bits(&nodes, n)).collect();
        for ((a, b), c) in bits[0].iter().zip(&bits[1]).zip(&bits[2]) {
            assert_eq!(a | b | c, u32::MAX, "every bucket served");
            assert_eq!((a & b, b & c, a & c), (0, 0, 0), "no bucket twice");
        }
        let count = |b: &[u32; 8]| b.iter().map(|w| w.count_ones()).sum::<u32>();
        assert_eq!((count(&bits[0]), count(&bits[1]), count(&bits[2])), (86, 85, 85));
        assert_eq!(bucket_bits(&nodes, "z"), [0; 8], "a node not live serves nothing");
        assert_eq!(bucket_bits(&nodes[..1], "a"), [u32::MAX; 8], "alone, it serves all");
    }

    #[test]
    fn passwords_are_left_out_of_messages() {
        assert_eq!(redact("postgresql://dhcp:secret@db/dhcp"), "postgresql://dhcp:…@db/dhcp");
        assert_eq!(redact("postgresql:///dhcp?host=/run/postgresql"), "postgresql:///dhcp?host=/run/postgresql");
        assert_eq!(redact("postgres://u:p@ss:w@db:5432/x"), "postgres://u:…@db:5432/x", "an @ in the password");
        assert_eq!(
            redact("postgresql://dhcp@db/dhcp?sslmode=require&password=secret&x=1"),
            "postgresql://dhcp@db/dhcp?sslmode=require&password=…&x=1"
        );
        assert_eq!(redact("host=db user=dhcp password=secret dbname=x"), "host=db user=dhcp password=… dbname=x");
        assert_eq!(redact("host=db password = 'se cr\\'et' dbname=x"), "host=db password=… dbname=x");
        for url in [
            "postgresql://a:topsecret@h/d",
            "postgresql://a@h/d?password=topsecret",
            "password=topsecret host=h",
            "host=h password='top secret'",
        ] {
            assert!(!redact(url).contains("secret"), "{url} -> {}", redact(url));
        }
    }
}
