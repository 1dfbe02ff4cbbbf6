//! The membership machines' driver: it sends the heartbeats and runs the SQL; what to do is
//! decided by [`dhcp_xdp_core::membership`] ([`Heartbeats`], [`Membership`]).
//!
//! Two threads, each with its own connection and schedule: the heartbeat (so no other work —
//! takeover reads, pulls, block claims — can make it late), and the membership loop, which
//! carries out the rounds, balancing and stand-downs, retried at its next turn when the
//! database fails.

use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use dhcp_xdp_common::buckets;
use dhcp_xdp_core::{
    leases::LeaseDb,
    membership::{Action, Beat, HeartbeatEvent, Heartbeats, Membership},
};
use postgres::Client;

use super::{
    Cluster,
    pg::{self, CHANGE_COLUMN, LEASE_COLUMNS, connect, lease_from_row},
    pg6::{CHANGE6_COLUMN, LEASE6_COLUMNS, lease6_from_row},
};
use crate::{clock::mono_ms, ebpf::Buckets, serve::Shared};

/// Whether this node may serve, as the heartbeat machine last said: the heartbeat thread writes
/// it, the membership loop and every worker's batch read it.
#[derive(Debug, Default)]
pub struct Liveness {
    /// [`mono_ms`] until which this node may serve (0: not serving).
    serve_until: AtomicU64,
    /// The live nodes at the last heartbeat, sorted.
    live: Mutex<Vec<String>>,
    /// Another daemon took this node's name.
    taken: AtomicBool,
    /// The node (re)joined since the membership loop last looked.
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

    /// Publishes what the machine says.
    fn publish(&self, h: &mut Heartbeats) {
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = h.live().to_vec();
        if h.take_rejoined() {
            self.rejoined.store(true, Ordering::Release);
        }
        self.taken.store(h.taken(), Ordering::Release);
        self.serve_until.store(h.serve_until(), Ordering::Release);
    }
}

/// Reads the database's clock between two of the host's (Unix milliseconds).
pub(super) fn read_clock(c: &mut Client) -> Result<(i64, i64, i64), postgres::Error> {
    let before = crate::clock::host_millis();
    let db_ms: f64 = c.query_one("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8", &[])?.get(0);
    let after = crate::clock::host_millis();
    Ok((before, db_ms as i64, after))
}

/// Carries out the heartbeat machine's clock events: the lease clock runs by the database's.
pub(super) fn clock_events(cluster: &Cluster, events: &[HeartbeatEvent]) {
    for e in events {
        match e {
            HeartbeatEvent::ClockOffset(ms) => {
                crate::clock::set_lease_clock_offset_ms(*ms);
                cluster.status.clock_offset_ms.store(*ms, Ordering::Relaxed);
            }
            HeartbeatEvent::ClockSkew(ms) => tracing::warn!(
                "cluster: this host's clock is {:.1} s {} the database's; lease times follow the database",
                ms.abs() as f64 / 1000.0,
                if *ms > 0 { "behind" } else { "ahead of" }
            ),
            _ => {}
        }
    }
}

/// The heartbeat thread.
pub(super) struct HeartbeatDriver {
    pub(super) cluster: Arc<Cluster>,
    pub(super) client: Option<Client>,
}

impl HeartbeatDriver {
    pub(super) fn run(mut self) {
        let cfg = self.cluster.cfg.clone();
        let every = Duration::from_secs(u64::from(cfg.heartbeat));
        let cluster = self.cluster.clone();
        loop {
            let start = mono_ms();
            let mut h = cluster.heartbeats.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(HeartbeatEvent::Paused(ms)) = h.sending(start) {
                tracing::warn!(
                    "cluster: this node was paused for {:.1} s, longer than takeover-after: rejoining",
                    ms as f64 / 1000.0
                );
            }
            let beat = self.beat();
            cluster.status.database_up.store(matches!(beat, Beat::Live { .. }), Ordering::Relaxed);
            let events = h.outcome(start, mono_ms(), beat);
            cluster.liveness.publish(&mut h);
            cluster.status.nodes.store(h.live().len() as u32, Ordering::Relaxed);
            drop(h);
            clock_events(&cluster, &events);
            for e in events {
                match e {
                    HeartbeatEvent::Taken { host, pid } => {
                        tracing::error!(
                            "cluster: node name '{}' was taken by another daemon (host {host}, pid {pid}): standing \
                             down and stopping",
                            cfg.node
                        );
                        if let Err(e) = signal_hook::low_level::raise(signal_hook::consts::SIGTERM) {
                            tracing::error!("cluster: could not stop: {e}");
                        }
                        return;
                    }
                    HeartbeatEvent::Joined(live) => tracing::info!(
                        "cluster: joined as {} (live nodes: {}); serving from the next heartbeat",
                        cfg.node,
                        live.join(", ")
                    ),
                    HeartbeatEvent::DatabaseDown(reason) => tracing::error!(
                        "cluster: database unreachable ({reason}); no ACK leaves until a commit succeeds"
                    ),
                    HeartbeatEvent::DatabaseBack(ms) => {
                        tracing::info!("cluster: database reachable again after {:.1?}", Duration::from_millis(ms))
                    }
                    _ => {}
                }
            }
            let spent = Duration::from_millis(mono_ms().saturating_sub(start));
            std::thread::sleep(every.saturating_sub(spent).max(Duration::from_millis(10)));
        }
    }

    /// One heartbeat: our row (under our instance), the database's clock, the live nodes.
    fn beat(&mut self) -> Beat {
        match self.try_beat() {
            Ok(b) => b,
            Err(e) => {
                if self.client.as_ref().is_none_or(Client::is_closed) {
                    self.client = None;
                }
                Beat::Failed(pg::describe(&e))
            }
        }
    }

    fn try_beat(&mut self) -> Result<Beat, postgres::Error> {
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
                Some(r) => return Ok(Beat::Taken { host: r.get(0), pid: r.get(1) }),
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
        let clock = read_clock(c)?;
        let nodes: Vec<String> = c
            .query(
                "SELECT name FROM dhcp_xdp_nodes WHERE heartbeat > now() - make_interval(secs => $1) ORDER BY name",
                &[&takeover],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(Beat::Live { nodes, clock })
    }
}

/// Takes lease rows (from a query selecting [`LEASE_COLUMNS`]) into the tables; returns how many.
fn absorb_rows(db: &LeaseDb, rows: &[postgres::Row], now: u32) -> usize {
    for r in rows {
        if let Some(l) = lease_from_row(r) {
            let key = db.scoped(l).key;
            db.absorb(l, now);
            if let Some((_, values)) = pg::attrs_from_row(r) {
                for (a, v) in dhcp_xdp_core::leases::Attr::ALL.into_iter().zip(values) {
                    db.absorb_attr(a, &key, v);
                }
            }
        }
    }
    rows.len()
}

/// Takes v6 lease rows (from a query selecting [`LEASE6_COLUMNS`]) into the v6 table; returns
/// how many.
fn absorb_rows6(rt: &crate::serve::Runtime, rows: &[postgres::Row], now: u32) -> usize {
    let mut t = rt.table6();
    for l in rows.iter().filter_map(lease6_from_row) {
        t.absorb(&rt.cfg, l, now);
    }
    rows.len()
}

/// A `taken-over` line in the forensic log for every binding of the silent node `from` still
/// held at `now` (its rows, read for the takeover).
fn log_taken_over(
    log: &crate::forensic::ForensicLog,
    rows: &[postgres::Row],
    rows6: &[postgres::Row],
    from: &str,
    now: u32,
) {
    for r in rows {
        if let (Some(l), Some((_, attrs))) = (lease_from_row(r), pg::attrs_from_row(r))
            && l.state == dhcp_xdp_core::leases::LeaseState::Bound
            && l.holds(now)
        {
            log.taken_over(now, &l, attrs, from);
        }
    }
    for l in rows6.iter().filter_map(lease6_from_row) {
        if l.state == dhcp_xdp_core::leases::v6::Lease6State::Bound && l.expires > now {
            log.taken_over6(now, &l, from);
        }
    }
}

fn ip_i64(a: Ipv4Addr) -> i64 {
    i64::from(u32::from(a))
}

fn ips(rows: &[postgres::Row]) -> Vec<Ipv4Addr> {
    rows.iter().map(|r| Ipv4Addr::from(r.get::<_, i64>(0) as u32)).collect()
}

/// The membership loop: carries out [`Membership`]'s actions.
pub(super) struct MembershipDriver {
    cluster: Arc<Cluster>,
    shared: Arc<Shared>,
    buckets: Buckets,
    client: Option<Client>,
    m: Membership,
    /// The lease tables the blocks were registered and granted for (a reload replaces them).
    tables: Option<Arc<LeaseDb>>,
    /// Change numbers: leases with a higher one are read at the next pull. Two pulls back, so
    /// a transaction that took its number before a later one but committed after is still read.
    seen: [i64; 2],
    /// The same for the v6 rows.
    seen6: [i64; 2],
    /// The buckets last served (the v6 table is told them again when a reload replaced it).
    served: dhcp_xdp_core::membership::BucketBits,
    /// When the last round ran.
    last_round: Option<Instant>,
    /// When the last balancing ran.
    balanced_at: Instant,
}

impl MembershipDriver {
    pub(super) fn new(cluster: Arc<Cluster>, shared: Arc<Shared>, buckets: Buckets) -> Self {
        let m = Membership::new(cluster.params());
        Self {
            cluster,
            shared,
            buckets,
            client: None,
            m,
            tables: None,
            seen: [0, 0],
            seen6: [0, 0],
            served: [0; buckets::WORDS as usize],
            last_round: None,
            balanced_at: Instant::now(),
        }
    }

    pub(super) fn run(mut self) {
        let heartbeat = Duration::from_secs(u64::from(self.cluster.cfg.heartbeat));
        let liveness = self.cluster.liveness.clone();
        loop {
            if liveness.taken.load(Ordering::Acquire) {
                let acts = self.m.stand_down(false);
                self.carry_out(acts);
                return;
            }
            // Leases another commit beat: into the tables at once.
            let winners = self.cluster.store.take_winners();
            if !winners.is_empty() {
                let rt = self.shared.runtime();
                let now = crate::clock::unix_now();
                for l in winners {
                    rt.db.absorb(l, now);
                }
            }
            let winners6 = self.cluster.store.take_winners6();
            if !winners6.is_empty() {
                let rt = self.shared.runtime();
                let now = crate::clock::unix_now();
                let mut t = rt.table6();
                for l in winners6 {
                    t.absorb(&rt.cfg, l, now);
                }
            }
            if !liveness.serving() {
                // Not live (joining, lapsed, paused): nothing served, nothing allocated.
                let rejoined = liveness.rejoined.swap(false, Ordering::AcqRel);
                let acts = self.m.stand_down(rejoined);
                self.carry_out(acts);
                self.tables = None;
            } else if self.last_round.is_none_or(|t| t.elapsed() >= heartbeat) {
                self.last_round = Some(Instant::now());
                let rt = self.shared.runtime();
                if self.tables.as_ref().is_none_or(|d| !Arc::ptr_eq(d, &rt.db)) {
                    self.m.tables_replaced();
                    self.tables = Some(rt.db.clone());
                    rt.table6().serve_buckets(&self.served);
                }
                // Reservations another node added or removed: in force here too.
                if let Err(e) = self.sync_hosts() {
                    tracing::debug!("cluster: reservations: {}", pg::describe(&e));
                }
                // A round that failed part-way is not counted: it is retried in full next time
                // (a first pull included).
                let acts = self.m.round(&liveness.live());
                if self.carry_out(acts) && self.balance() {
                    let acts = self.m.round_done();
                    self.carry_out(acts);
                }
            } else if self.balanced_at.elapsed() >= Duration::from_millis(250)
                && self.tables.as_ref().is_some_and(|d| Arc::ptr_eq(d, &self.shared.runtime().db))
            {
                self.balance();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Claims or returns blocks as the machine says; whether that went through.
    fn balance(&mut self) -> bool {
        self.balanced_at = Instant::now();
        let rt = self.shared.runtime();
        let (pools, busy) = rt.db.granted_usage(crate::clock::unix_now());
        let acts = self.m.balance(mono_ms(), &pools, |b| busy.contains_key(&b));
        self.carry_out(acts)
    }

    /// Carries out `actions` (and those their results bring) in order; a database failure
    /// drops the rest until the next turn. Returns whether all went through.
    fn carry_out(&mut self, actions: Vec<Action>) -> bool {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        let ok = loop {
            let Some(a) = queue.pop_front() else { break true };
            match self.act(a) {
                Ok(more) => {
                    for (i, m) in more.into_iter().enumerate() {
                        queue.insert(i, m);
                    }
                }
                Err(e) => {
                    tracing::debug!("cluster: membership: {}", pg::describe(&e));
                    if self.client.as_ref().is_none_or(Client::is_closed) {
                        self.client = None;
                    }
                    break false;
                }
            }
        };
        self.cluster.status.blocks.store(self.m.held().len() as u32, Ordering::Relaxed);
        ok
    }

    fn client_mut(&mut self) -> Result<&mut Client, postgres::Error> {
        if self.client.is_none() {
            self.client = Some(connect(&self.cluster.cfg.database)?);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// One action; returns those its result brings.
    fn act(&mut self, a: Action) -> Result<Vec<Action>, postgres::Error> {
        let cfg = self.cluster.cfg.clone();
        let node = cfg.node.as_str();
        let ttl = f64::from(cfg.takeover_after);
        let rt = self.shared.runtime();
        let now = crate::clock::unix_now();
        match a {
            Action::SetBuckets(bits) => match self.buckets.set(&bits) {
                Ok(()) => {
                    // DHCPv6 clients are divided in the v6 engine (their DUID may sit inside
                    // relay layers), and so are the v6 pools' stripes.
                    rt.table6().serve_buckets(&bits);
                    self.served = bits;
                    let n: u32 = bits.iter().map(|w| w.count_ones()).sum();
                    self.cluster.status.buckets.store(n, Ordering::Relaxed);
                    tracing::info!(
                        "cluster: serving {n} of {} buckets (live nodes: {})",
                        buckets::COUNT,
                        self.m.live().join(", ")
                    );
                }
                Err(e) => {
                    self.m.buckets_failed();
                    tracing::error!("cluster: writing the bucket map: {e}");
                }
            },
            Action::Joined(n) => tracing::info!("cluster: node {n} joined; buckets divided again"),
            Action::TakeOver(n) => {
                // Its clients rebind to us: have every lease it wrote in the tables.
                let rows = self
                    .client_mut()?
                    .query(&format!("SELECT {LEASE_COLUMNS} FROM dhcp_xdp_leases WHERE node = $1"), &[&n])?;
                let rows6 = self
                    .client_mut()?
                    .query(&format!("SELECT {LEASE6_COLUMNS} FROM dhcp_xdp_leases6 WHERE node = $1"), &[&n])?;
                let read = absorb_rows(&rt.db, &rows, now) + absorb_rows6(&rt, &rows6, now);
                if let Some(log) = self.shared.forensic.get() {
                    log_taken_over(log, &rows, &rows6, &n, now);
                }
                self.cluster.status.takeovers.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "cluster: node {n} silent for {}s: taking over its buckets and blocks ({read} of its leases read)",
                    cfg.takeover_after
                );
            }
            Action::Pull => {
                self.pull(&rt.db, now)?;
                self.pull6(&rt, now)?;
            }
            Action::ForgetPulled => {
                self.seen = [0, 0];
                self.seen6 = [0, 0];
            }
            Action::RenewBlocks { register, live, index } => {
                let size = i64::from(cfg.block_size);
                let c = self.client_mut()?;
                if register {
                    let all = rt.db.cluster_blocks();
                    let firsts: Vec<i64> = all.iter().map(|b| ip_i64(b.first)).collect();
                    let sizes: Vec<i32> = all.iter().map(|b| b.len as i32).collect();
                    let subnets: Vec<i64> = all.iter().map(|b| i64::from(b.subnet)).collect();
                    c.execute(
                        "INSERT INTO dhcp_xdp_blocks (first_addr, size, subnet)
                         SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[]) ON CONFLICT (first_addr) DO NOTHING",
                        &[&firsts, &sizes, &subnets],
                    )?;
                }
                let mine: BTreeSet<Ipv4Addr> = ips(&c.query(
                    "UPDATE dhcp_xdp_blocks SET expires = now() + make_interval(secs => $2) WHERE owner = $1
                     RETURNING first_addr",
                    &[&node, &ttl],
                )?)
                .into_iter()
                .collect();
                // A silent node's blocks (lapsed while owned): shared out among the live nodes.
                let taken = ips(&c.query(
                    "UPDATE dhcp_xdp_blocks SET owner = $1, expires = now() + make_interval(secs => $2)
                     WHERE first_addr IN (SELECT first_addr FROM dhcp_xdp_blocks
                         WHERE owner IS NOT NULL AND owner <> $1 AND expires < now()
                           AND (first_addr / $3) % $4 = $5 FOR UPDATE SKIP LOCKED)
                     RETURNING first_addr",
                    &[&node, &ttl, &size, &i64::from(live), &i64::from(index)],
                )?);
                if !taken.is_empty() {
                    tracing::info!("cluster: took over {} block(s) of silent nodes", taken.len());
                }
                return Ok(self.m.renewed(mine, taken));
            }
            Action::Take(blocks) => {
                // Blocks newly ours: their leases first (whoever wrote them), then their addresses.
                let size = i64::from(cfg.block_size);
                let lo: Vec<i64> = blocks.iter().map(|a| ip_i64(*a)).collect();
                let rows = self.client_mut()?.query(
                    &format!(
                        "SELECT {LEASE_COLUMNS} FROM dhcp_xdp_leases l JOIN unnest($1::bigint[]) AS b(f)
                         ON l.address >= b.f AND l.address < b.f + $2"
                    ),
                    &[&lo, &size],
                )?;
                absorb_rows(&rt.db, &rows, now);
                for b in blocks {
                    rt.db.grant(b, now);
                }
            }
            Action::Grant(blocks) => {
                for b in blocks {
                    rt.db.grant(b, now);
                }
            }
            Action::Revoke(blocks) => {
                for b in blocks {
                    rt.db.revoke(b);
                }
            }
            Action::Claim { first, last, count } => {
                let got = ips(&self.client_mut()?.query(
                    "UPDATE dhcp_xdp_blocks SET owner = $1, expires = now() + make_interval(secs => $2)
                     WHERE first_addr IN (SELECT first_addr FROM dhcp_xdp_blocks
                         WHERE first_addr BETWEEN $3 AND $4 AND (owner IS NULL OR expires < now())
                         ORDER BY owner IS NOT NULL, first_addr LIMIT $5 FOR UPDATE SKIP LOCKED)
                     RETURNING first_addr",
                    &[&node, &ttl, &ip_i64(first), &ip_i64(last), &i64::from(count)],
                )?);
                return Ok(self.m.claimed(got));
            }
            Action::Return(blocks) => {
                let returned: Vec<i64> = blocks.iter().map(|b| ip_i64(*b)).collect();
                self.client_mut()?.execute(
                    "UPDATE dhcp_xdp_blocks SET owner = NULL, expires = NULL WHERE first_addr = ANY($1) AND owner = $2",
                    &[&returned, &node],
                )?;
            }
            Action::StoodDown => tracing::warn!(
                "cluster: not live: serving no buckets and no blocks until the heartbeats say it is again"
            ),
        }
        Ok(vec![])
    }

    /// Takes in the leases other nodes committed since the last pull. There is no index on the
    /// change number (one would make every renewal a non-HOT update, writing every index: a
    /// third of the database's throughput), so this scans the table; it runs every
    /// [`PULL_EVERY`](dhcp_xdp_core::membership::PULL_EVERY) heartbeats. Nothing depends on it
    /// being fresher: a takeover reads the silent node's rows, a start reads them all, a
    /// claimed block's rows are read with it, and the database refuses what stale tables would
    /// get wrong.
    fn pull(&mut self, db: &LeaseDb, now: u32) -> Result<(), postgres::Error> {
        self.seen = self
            .pull_rows("dhcp_xdp_leases", LEASE_COLUMNS, CHANGE_COLUMN, self.seen, |rows| absorb_rows(db, rows, now))?;
        Ok(())
    }

    /// Reads the rows of `table` other nodes changed past `seen` (change numbers two pulls
    /// back: a transaction that took its number before a later one but committed after is
    /// still read), in bounded steps, handing each step to `absorb`; the new `seen`.
    fn pull_rows(
        &mut self,
        table: &str,
        columns: &str,
        change_column: usize,
        seen: [i64; 2],
        mut absorb: impl FnMut(&[postgres::Row]) -> usize,
    ) -> Result<[i64; 2], postgres::Error> {
        /// Rows a statement reads at most: a pull of a whole table after a rejoin goes in
        /// bounded steps, each its own statement within the statement limit.
        const BATCH: i64 = 20_000;
        let node = self.cluster.cfg.node.clone();
        let (mut cursor, mut top) = (seen[0], seen[1]);
        loop {
            let rows = self.client_mut()?.query(
                &format!("SELECT {columns} FROM {table} WHERE change > $1 AND node <> $2 ORDER BY change LIMIT $3"),
                &[&cursor, &node, &BATCH],
            )?;
            let Some(last) = rows.last().map(|r| r.get::<_, i64>(change_column)) else { break };
            cursor = last;
            top = top.max(last);
            let read = absorb(&rows);
            self.cluster.status.absorbed.fetch_add(read as u64, Ordering::Relaxed);
            if (rows.len() as i64) < BATCH {
                break;
            }
        }
        Ok([seen[1], top])
    }

    /// Takes in the reservations document when another node changed it (a version this node
    /// has not put in force); one that does not fit this node's configuration is logged.
    fn sync_hosts(&mut self) -> Result<(), postgres::Error> {
        use std::sync::atomic::Ordering as O;
        let version: i64 = self.client_mut()?.query_one("SELECT version FROM dhcp_xdp_hosts", &[])?.get(0);
        if version == self.cluster.hosts_version.load(O::Acquire) {
            return Ok(());
        }
        let shared = self.shared.clone();
        let _reconfiguring = shared.reconfigure.lock().unwrap_or_else(|p| p.into_inner());
        let read = super::read_hosts(self.client_mut()?)?;
        let (hosts, version) = match read {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("cluster: {e}");
                return Ok(());
            }
        };
        let cfg = self.shared.runtime().cfg.clone();
        match cfg.with_hosts(&hosts) {
            Ok(next) => {
                self.cluster.hosts_version.store(version, O::Release);
                let msg = crate::serve::reload(&self.shared, next);
                tracing::info!("cluster: reservations changed by another node ({} now): {msg}", hosts.len());
            }
            Err(e) => {
                self.cluster.hosts_version.store(version, O::Release);
                tracing::error!(
                    "cluster: the reservations another node saved do not fit this node's configuration: {e}"
                );
            }
        }
        Ok(())
    }

    /// [`pull`](Self::pull) for the v6 rows.
    fn pull6(&mut self, rt: &crate::serve::Runtime, now: u32) -> Result<(), postgres::Error> {
        self.seen6 = self.pull_rows("dhcp_xdp_leases6", LEASE6_COLUMNS, CHANGE6_COLUMN, self.seen6, |rows| {
            absorb_rows6(rt, rows, now)
        })?;
        Ok(())
    }
}
