//! Cluster mode (`[cluster]`): responders that share pools through PostgreSQL.
//!
//! - [`pg`]: the database as the lease store of record (group commit per worker).
//! - [`schema`]: the versioned schema, `dhcp-xdp db init|upgrade`.
//! - `driver`: the heartbeat and membership threads, carrying out what the core's membership
//!   machines ([`dhcp_xdp_core::membership`]) decide.
//! - this module: the cluster as a lease store, the node's instance and its claim on its name.
//!
//! Every heartbeat a node writes its row in
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

mod driver;
pub mod pg;
pub mod pg6;
pub mod schema;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use dhcp_xdp_core::{
    config::ClusterConfig,
    leases::LeaseDb,
    membership::{Heartbeats, Params},
};
pub use driver::Liveness;
pub use pg::PgStore;
use pg::{LEASE_COLUMNS, connect, lease_from_row};
use postgres::Client;

use crate::{
    ebpf::Buckets,
    serve::Shared,
    store::{AdminRemoval, Health, LeaseStore, Recovered, StoreError},
};

/// The membership machines' parameters from `[cluster]`.
fn params(cfg: &ClusterConfig) -> Params {
    Params {
        node: cfg.node.clone(),
        heartbeat_ms: u64::from(cfg.heartbeat) * 1000,
        takeover_after_ms: u64::from(cfg.takeover_after) * 1000,
        block_size: cfg.block_size,
    }
}

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
    /// Whether it may serve, as its heartbeats say (published by the heartbeat thread).
    pub liveness: Arc<Liveness>,
    /// The version of the reservations document this node has in force.
    pub(crate) hosts_version: std::sync::atomic::AtomicI64,
    /// The heartbeat machine (the heartbeat thread's; the start feeds it the first clock).
    heartbeats: std::sync::Mutex<Heartbeats>,
    /// The leases read at start and the highest change number this node wrote, with when the
    /// start began, until [`recover`](LeaseStore::recover) builds the tables from them.
    initial: std::sync::Mutex<Option<Initial>>,
}

/// What a start read from the database, for [`recover`](LeaseStore::recover).
struct Initial {
    leases: Vec<dhcp_xdp_core::leases::Lease>,
    attrs: dhcp_xdp_core::leases::AttrMap,
    leases6: Vec<dhcp_xdp_core::leases::v6::Lease6>,
    max_seq: u64,
    started: Instant,
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

/// The pools and block size a node serves, as one line every node of a cluster must agree on
/// ("block-size 16; subnet 1: 198.18.0.10-198.18.0.199, …").
pub fn layout(cfg: &dhcp_xdp_core::config::Config) -> String {
    let block = cfg.cluster.as_ref().map_or(0, |c| c.block_size);
    let mut subnets: Vec<String> = cfg
        .subnets
        .iter()
        .map(|s| {
            let pools: Vec<String> = s.pools.iter().map(|p| format!("{}-{}", p.start, p.end)).collect();
            format!("subnet {}: {}", s.id, pools.join(" "))
        })
        .collect();
    // DHCPv6 pools are divided by stripe (number mod 256, as the buckets): nodes must number
    // them alike.
    subnets.extend(cfg.subnets6.iter().map(|s| {
        let pools: Vec<String> = s
            .pools
            .iter()
            .chain(&s.pd_pools)
            .filter_map(|r| Some(format!("{}/{}x{}", r.nth(0)?, r.delegated_len(), r.count())))
            .collect();
        format!("subnet6 {}: {}", s.id, pools.join(" "))
    }));
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

impl Cluster {
    /// The membership machines' parameters.
    fn params(&self) -> Params {
        params(&self.cfg)
    }

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
        let mut heartbeats = Heartbeats::new(params(cfg));
        // Lease times are the database's from the first lease read on.
        let status = Status::default();
        let clock = heartbeats.clock(driver::read_clock(&mut c)?);
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
        c.batch_execute("ANALYZE dhcp_xdp_leases6")?;
        let rows = c.query(&format!("SELECT {LEASE_COLUMNS} FROM dhcp_xdp_leases"), &[])?;
        let leases: Vec<_> = rows.iter().filter_map(lease_from_row).collect();
        let attrs: dhcp_xdp_core::leases::AttrMap = rows
            .iter()
            .filter_map(pg::attrs_from_row)
            .flat_map(|(k, values)| {
                dhcp_xdp_core::leases::Attr::ALL.into_iter().zip(values).map(move |(a, v)| ((a, k), v))
            })
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k, v.into()))
            .collect();
        let rows = c.query(&format!("SELECT {} FROM dhcp_xdp_leases6", pg6::LEASE6_COLUMNS), &[])?;
        let leases6: Vec<_> = rows.iter().filter_map(pg6::lease6_from_row).collect();
        // Change numbers go on from the highest this node wrote, in either table.
        let max_seq: i64 = c
            .query_one(
                "SELECT greatest((SELECT coalesce(max(seq), 0) FROM dhcp_xdp_leases WHERE node = $1),
                                 (SELECT coalesce(max(seq), 0) FROM dhcp_xdp_leases6 WHERE node = $1))",
                &[&cfg.node],
            )?
            .get(0);
        let store = PgStore::open(&cfg.database, &cfg.node, slots, cfg.takeover_after)
            .context("starting the database syncers")?;
        let cluster = Arc::new(Self {
            cfg: cfg.clone(),
            store,
            status,
            instance,
            liveness: Arc::new(Liveness::default()),
            hosts_version: std::sync::atomic::AtomicI64::new(-1),
            heartbeats: std::sync::Mutex::new(heartbeats),
            initial: std::sync::Mutex::new(Some(Initial {
                leases,
                attrs,
                leases6,
                max_seq: max_seq.max(0) as u64,
                started: t,
            })),
        });
        driver::clock_events(&cluster, &clock);
        Ok(cluster)
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
            driver::HeartbeatDriver { cluster: me, client: None }.run();
        })?;
        let me = self.clone();
        std::thread::Builder::new().name("cluster".into()).spawn(move || {
            if let Err(e) = crate::privileges::drop_for_this_thread() {
                tracing::warn!("cluster: could not drop capabilities: {e}");
            }
            driver::MembershipDriver::new(me, shared, buckets).run();
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
        let Initial { leases, attrs, leases6, max_seq, started: t } =
            self.initial.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or(Initial {
                leases: vec![],
                attrs: Default::default(),
                leases6: vec![],
                max_seq: 0,
                started: Instant::now(),
            });
        let n = leases.len() + leases6.len();
        let now = crate::clock::unix_now();
        let db = LeaseDb::with_lanes(cfg, lanes, workers, leases, now);
        db.restore_attrs(&attrs);
        db.restore6(cfg, leases6, now);
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
        Ok(Recovered { db, leases: n, report })
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

    fn lag(&self) -> Duration {
        self.store.lag()
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

    fn load_hosts(&self) -> Result<Vec<serde_json::Value>, String> {
        let mut c = connect(&self.cfg.database).map_err(|e| pg::describe(&e))?;
        let (hosts, version) = read_hosts(&mut c).map_err(|e| pg::describe(&e))??;
        self.hosts_version.store(version, Ordering::Release);
        Ok(hosts)
    }

    /// Replaces the document of reservations if nobody changed it since this node read it.
    fn save_hosts(&self, hosts: &[serde_json::Value]) -> Result<(), String> {
        let mut c = connect(&self.cfg.database).map_err(|e| pg::describe(&e))?;
        let text = serde_json::Value::Array(hosts.to_vec()).to_string();
        let known = self.hosts_version.load(Ordering::Acquire);
        let row = c
            .query_opt(
                "UPDATE dhcp_xdp_hosts SET hosts = $1, version = version + 1 WHERE version = $2 RETURNING version",
                &[&text, &known],
            )
            .map_err(|e| pg::describe(&e))?;
        match row {
            Some(r) => {
                self.hosts_version.store(r.get(0), Ordering::Release);
                Ok(())
            }
            None => Err("another node changed the reservations meanwhile; this node takes them in within a \
                         heartbeat: ask again"
                .into()),
        }
    }

    fn kept_duid(&self, made: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let mut c = connect(&self.cfg.database).map_err(|e| pg::describe(&e))?;
        let row = c
            .query_one(
                "UPDATE dhcp_xdp_nodes SET duid = coalesce(duid, $2) WHERE name = $1 RETURNING duid",
                &[&self.cfg.node, &made],
            )
            .map_err(|e| pg::describe(&e))?;
        Ok(Some(row.get(0)))
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

    fn status(&self) -> serde_json::Map<String, serde_json::Value> {
        let s = &self.status;
        let mut m = crate::store::health_status(self);
        for (k, v) in [
            ("node", self.cfg.node.clone().into()),
            ("database-up", s.database_up.load(Ordering::Relaxed).into()),
            ("serving", self.liveness.serving().into()),
            ("nodes", s.nodes.load(Ordering::Relaxed).into()),
            ("buckets", s.buckets.load(Ordering::Relaxed).into()),
            ("blocks", s.blocks.load(Ordering::Relaxed).into()),
            ("takeovers", s.takeovers.load(Ordering::Relaxed).into()),
            ("absorbed", s.absorbed.load(Ordering::Relaxed).into()),
            ("conflicts", self.store.conflicts().into()),
            ("clock-offset-ms", s.clock_offset_ms.load(Ordering::Relaxed).into()),
        ] {
            m.insert(k.into(), v);
        }
        m
    }
}

/// The reservations document and its version.
pub(super) fn read_hosts(c: &mut Client) -> Result<Result<(Vec<serde_json::Value>, i64), String>, postgres::Error> {
    let r = c.query_one("SELECT hosts, version FROM dhcp_xdp_hosts", &[])?;
    let (text, version): (String, i64) = (r.get(0), r.get(1));
    Ok(serde_json::from_str(&text).map(|h| (h, version)).map_err(|e| format!("the reservations document: {e}")))
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

#[cfg(test)]
mod tests {
    use super::*;

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
