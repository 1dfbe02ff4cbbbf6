//! The shared database as the lease store of record: a syncer thread and connection per
//! worker takes the worker's batches and commits each round in one prepared statement (a
//! data-modifying CTE for moved keys and one multi-row INSERT … ON CONFLICT over arrays; a
//! DELETE of removed keys before it, in the same transaction, when the round has any), so a
//! round trip is paid per batch of many leases, never per packet. An upsert whose address
//! another client holds is skipped by its `WHERE` (the schema's rule): that round's replies
//! never leave, and the winning row is queued for the control loop to take into the lease
//! tables. A round that fails is dropped, not retried: nothing in it was promised.

use std::{
    net::Ipv4Addr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use dhcp_xdp_core::leases::{Attr, Change, ClientKey, Lease, LeaseState, Tags, v6::Lease6};
use hashbrown::HashMap;
use postgres::{Client, NoTls, Row};

use super::pg6::{self, Round6};
use crate::store::{
    Health, StoreError,
    syncer::{Backend, Round, Syncer},
};

/// The columns every lease query selects, in [`lease_from_row`]'s order.
pub const LEASE_COLUMNS: &str =
    "address, client_key, hwaddr, subnet, expires, state, circuit, remote, node, seq, change, hostname, relay_info";

/// The column of [`LEASE_COLUMNS`] that holds the change number.
pub const CHANGE_COLUMN: usize = 10;

/// The attributes of a lease row (by [`Attr`]; empty: none), with its client's key.
pub fn attrs_from_row(r: &Row) -> Option<(ClientKey, [&[u8]; 2])> {
    Some((ClientKey::from_bytes(r.get::<_, &[u8]>(1))?, [r.get::<_, &[u8]>(11), r.get::<_, &[u8]>(12)]))
}

/// The column of each [`Attr`].
fn attr_column(a: Attr) -> &'static str {
    match a {
        Attr::Name => "hostname",
        Attr::RelayInfo => "relay_info",
    }
}

/// A lease row as a lease (None for a row this daemon cannot read: a foreign key format).
pub fn lease_from_row(r: &Row) -> Option<Lease> {
    let key = ClientKey::from_bytes(r.get::<_, &[u8]>(1))?;
    let hw: &[u8] = r.get(2);
    let mut chaddr = [0u8; 6];
    let n = hw.len().min(6);
    chaddr[..n].copy_from_slice(&hw[..n]);
    Some(Lease {
        key,
        chaddr,
        addr: Ipv4Addr::from(u32::try_from(r.get::<_, i64>(0)).ok()?),
        expires: u32::try_from(r.get::<_, i64>(4)).ok()?,
        state: LeaseState::from_u8(u8::try_from(r.get::<_, i16>(5)).ok()?)?,
        subnet: u32::try_from(r.get::<_, i64>(3)).ok()?,
        tags: Tags { circuit: r.get::<_, i64>(6) as u32, remote: r.get::<_, i64>(7) as u32 },
    })
}

/// A database error as an operator needs it: the server's message, or the connection's
/// reason (`postgres::Error` alone prints just "db error").
pub fn describe(e: &postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("{}: {}", db.severity(), db.message()),
        (None, Some(src)) => format!("{e}: {src}"),
        (None, None) => e.to_string(),
    }
}

/// How long a statement may take before the server cancels it, and how long a TCP peer may stay
/// silent (keepalives, unacknowledged data) before the connection is given up: a node must
/// notice a database that went away in about a takeover's time, not the kernel's hours.
pub const STATEMENT_LIMIT: Duration = Duration::from_secs(5);

/// Connects to `url` (with [`STATEMENT_LIMIT`], and `synchronous_commit = on`).
pub fn connect(url: &str) -> Result<Client, postgres::Error> {
    let mut cfg: postgres::Config = url.parse()?;
    cfg.application_name("dhcp-xdp")
        .connect_timeout(Duration::from_secs(3))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(1))
        .keepalives_interval(Duration::from_secs(1))
        .keepalives_retries(3)
        .tcp_user_timeout(STATEMENT_LIMIT)
        // Durable means durable in the database: whatever the server's or the database's
        // default, a commit returns only once it is flushed (and, with synchronous standbys,
        // received by them).
        .options(&format!("-c statement_timeout={} -c synchronous_commit=on", STATEMENT_LIMIT.as_millis()));
    cfg.connect(NoTls)
}

/// The database as the syncer's backend: a round is one statement (one transaction) on the
/// slot's own connection; a failed round is dropped.
pub(crate) struct Pg {
    url: String,
    node: String,
    /// Upserts the database refused because another client holds the address.
    conflicts: AtomicU64,
    /// The rows that won those conflicts, for the membership loop to absorb.
    winners: Mutex<Vec<Lease>>,
    /// The same for DHCPv6 rows.
    winners6: Mutex<Vec<Lease6>>,
    /// How long a commit took (for the metrics).
    commit_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl Backend for Pg {
    type Pending = Vec<(u64, Change)>;
    type SlotState = ();
    type Target = ();
    type Conn = Option<Conn>;
    const THREAD: &'static str = "pg-sync";
    // About 64 bytes a change in memory: the journal's bound of 64 MiB, counted in changes.
    const MAX_BACKLOG: usize = (64 << 20) / 64;
    // A round the database commits well within the statement limit: a backlog goes in several
    // rounds instead of one that times out whole (and fails every ACK it held).
    const MAX_ROUND: usize = 512;
    const CHANGE_SIZE: usize = 1;
    const RETRY_FAILED: bool = false;

    fn push(pending: &mut Self::Pending, changes: &[(u64, Change)]) {
        pending.extend_from_slice(changes);
    }
    fn size(pending: &Self::Pending) -> usize {
        pending.len()
    }
    fn take(from: &mut Self::Pending, into: &mut Self::Pending) {
        into.append(from);
    }
    fn split_off(pending: &mut Self::Pending, at: usize) -> Self::Pending {
        pending.split_off(at)
    }
    fn clear(pending: &mut Self::Pending) {
        pending.clear();
    }
    fn target(&self, _: usize, _: &mut ()) {}
    fn commit(
        &self,
        _: usize,
        conn: &mut Option<Conn>,
        _: &(),
        batch: &Self::Pending,
        health: &Health,
    ) -> Result<Round, String> {
        let t = Instant::now();
        let result = match conn.as_mut() {
            Some(c) => Ok(c),
            None => Conn::open(&self.url).map(|c| conn.insert(c)),
        }
        .and_then(|c| commit(c, &self.node, batch).map(|refused| (&mut c.client, refused)))
        .and_then(|(c, refused)| {
            // The rows that beat ours, for the lease tables.
            if !refused.v4.is_empty() {
                let addrs: Vec<i64> = refused.v4.iter().map(|a| i64::from(u32::from(*a))).collect();
                let rows = c.query(
                    &format!("SELECT {LEASE_COLUMNS} FROM dhcp_xdp_leases WHERE address = ANY($1)"),
                    &[&addrs],
                )?;
                lock(&self.winners).extend(rows.iter().filter_map(lease_from_row));
            }
            if !refused.v6.is_empty() {
                lock(&self.winners6).extend(pg6::winners(c, &refused.v6)?);
            }
            Ok(refused.v4.len() + refused.v6.len())
        });
        match result {
            Ok(0) => {
                self.commit_seconds.observe(t.elapsed().as_secs_f64());
                health.syncs.fetch_add(1, Ordering::Relaxed);
                Ok(Round::Durable)
            }
            Ok(refused) => {
                // The other rows are in; the batch's replies stay home all the same (the
                // clients ask again and get an answer from the corrected tables).
                self.commit_seconds.observe(t.elapsed().as_secs_f64());
                health.syncs.fetch_add(1, Ordering::Relaxed);
                self.conflicts.fetch_add(refused as u64, Ordering::Relaxed);
                tracing::warn!(
                    "cluster: {refused} lease(s) refused by the database (address held by another client); \
                     their replies withheld"
                );
                Ok(Round::Refused)
            }
            Err(e) => {
                if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
                    *conn = None;
                }
                Err(describe(&e))
            }
        }
    }
    fn failing(&self, slot: usize, reason: &str) -> String {
        format!(
            "cluster: cannot commit leases to the database ({reason}); withholding ACKs until it works, the changes \
             of failed rounds are dropped (syncer {slot})"
        )
    }
    fn recovered(&self, slot: usize, down: Duration) -> String {
        format!("cluster: lease commits succeed again after {down:.1?} (syncer {slot})")
    }
}

/// The database as a lease store (the cluster's [`LeaseStore`](crate::store::LeaseStore) is
/// [`Cluster`](super::Cluster), which adds membership to it).
pub struct PgStore {
    syncer: Arc<Syncer<Pg>>,
    /// Seconds without a heartbeat after which a node counts as gone.
    takeover_after: u32,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PgStore {
    /// A store of `slots` syncers (one per worker, each with its own connection to `url`),
    /// writing rows as node `node`, in a cluster whose nodes count as gone after
    /// `takeover_after` seconds without a heartbeat.
    pub fn open(url: &str, node: &str, slots: usize, takeover_after: u32) -> Result<Arc<Self>, StoreError> {
        let backend = Pg {
            url: url.to_owned(),
            node: node.to_owned(),
            conflicts: AtomicU64::new(0),
            winners: Mutex::new(vec![]),
            winners6: Mutex::new(vec![]),
            commit_seconds: prometheus_client::metrics::histogram::Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.000_1, 2.0, 16),
            ),
        };
        Ok(Arc::new(Self { syncer: Syncer::start(backend, vec![(); slots.max(1)])?, takeover_after }))
    }

    /// Hands numbered `changes` to slot `slot`'s syncer; a ticket to poll.
    pub fn append(&self, slot: usize, changes: &[(u64, Change)]) -> Result<u64, StoreError> {
        self.syncer.append(slot, changes)
    }

    /// Whether `ticket` of `slot` is committed (`Some(true)`), never will be, or pending.
    pub fn settled(&self, slot: usize, ticket: u64) -> Option<bool> {
        self.syncer.settled(slot, ticket)
    }

    /// Changes handed over since start.
    pub fn records(&self) -> u64 {
        self.syncer.records()
    }

    /// The age of the oldest change not yet committed.
    pub fn lag(&self) -> Duration {
        self.syncer.lag()
    }

    /// How committing goes (`failing` while the database cannot be reached or refuses).
    pub fn health(&self) -> &Health {
        &self.syncer.health
    }

    /// Upserts the database refused because another client holds the address.
    pub fn conflicts(&self) -> u64 {
        self.syncer.backend().conflicts.load(Ordering::Relaxed)
    }

    /// The rows that won refused upserts since the last call, for the lease tables.
    pub fn take_winners(&self) -> Vec<Lease> {
        std::mem::take(&mut *lock(&self.syncer.backend().winners))
    }

    /// The v6 rows that won refused upserts since the last call, for the v6 table.
    pub fn take_winners6(&self) -> Vec<Lease6> {
        std::mem::take(&mut *lock(&self.syncer.backend().winners6))
    }

    /// How long commits took.
    pub fn commit_seconds(&self) -> &prometheus_client::metrics::histogram::Histogram {
        &self.syncer.backend().commit_seconds
    }

    /// Waits until everything handed over is committed (or given up) or `timeout` passes,
    /// then stops the syncers.
    pub fn flush(&self, timeout: Duration) -> Result<(), StoreError> {
        self.syncer.flush(timeout)
    }
}

/// The one statement a round commits: its data-modifying CTE (an upserted key's rows on other
/// addresses: the client moved) and the upsert run as one statement, so one round trip and one
/// transaction (one WAL flush) per batch. The DELETE never touches an address the INSERT writes
/// (an anti-join with the round's addresses — a hash, not `NOT address = ANY`, which compares
/// every row with every address of a round), so no row is changed twice. Rows are deleted only when this node
/// wrote them or they hold nothing any more: a key another node has since bound stays.
///
/// The upsert's rule: the same client's row is updated in this node's own order (`seq`), and
/// from another node unless that would shorten a binding other than by a RELEASE (a node that
/// had not yet seen the other's renewal, expiring or renewing from older news); another
/// client's row only once it holds nothing. No node expires a binding the database's clock says
/// still runs, whatever that node's own clock says.
const COMMIT_SQL: &str = "WITH moved AS (
     DELETE FROM dhcp_xdp_leases l
      WHERE l.client_key = ANY($2::bytea[])
        AND NOT EXISTS (SELECT 1 FROM unnest($1::bigint[]) AS w(a) WHERE w.a = l.address)
        AND (l.node = $10 OR l.state IN (2, 3) OR l.expires <= extract(epoch FROM now()))
      RETURNING l.client_key, l.hostname, l.relay_info)
 INSERT INTO dhcp_xdp_leases AS l (address, client_key, hwaddr, subnet, expires, state, circuit, remote, node, seq,
                                   hostname, relay_info)
 SELECT a, k, h, s, e, st, c, r, $10, q,
        coalesce((SELECT m.hostname FROM moved m WHERE m.client_key = t.k LIMIT 1), ''::bytea),
        coalesce((SELECT m.relay_info FROM moved m WHERE m.client_key = t.k LIMIT 1), ''::bytea)
   FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bigint[], $5::bigint[], $6::smallint[],
               $7::bigint[], $8::bigint[], $9::bigint[]) AS t(a, k, h, s, e, st, c, r, q)
 ON CONFLICT (address) DO UPDATE SET client_key = EXCLUDED.client_key, hwaddr = EXCLUDED.hwaddr,
     subnet = EXCLUDED.subnet, expires = EXCLUDED.expires, state = EXCLUDED.state,
     circuit = EXCLUDED.circuit, remote = EXCLUDED.remote, node = EXCLUDED.node, seq = EXCLUDED.seq,
     change = nextval('dhcp_xdp_change'),
     hostname = CASE WHEN l.client_key = EXCLUDED.client_key THEN l.hostname ELSE EXCLUDED.hostname END,
     relay_info = CASE WHEN l.client_key = EXCLUDED.client_key THEN l.relay_info ELSE EXCLUDED.relay_info END
 WHERE ((l.client_key = EXCLUDED.client_key AND l.node = EXCLUDED.node AND l.seq <= EXCLUDED.seq)
    OR (l.client_key = EXCLUDED.client_key AND l.node <> EXCLUDED.node
        AND (EXCLUDED.state = 2 OR l.state <> 1 OR EXCLUDED.expires >= l.expires)))
   AND (EXCLUDED.state <> 3 OR l.state <> 1 OR l.expires <= extract(epoch FROM now()))
    OR (l.client_key <> EXCLUDED.client_key
        AND (l.state NOT IN (0, 1, 4) OR l.expires <= extract(epoch FROM now())))
 RETURNING address";

/// The attributes (host names, option 82) of an [`Attr`]'s column, on the rows of their keys
/// this node writes (after the round's upserts, in the same transaction).
fn attr_sql(a: Attr) -> String {
    let col = attr_column(a);
    format!(
        "UPDATE dhcp_xdp_leases l SET {col} = t.n, change = nextval('dhcp_xdp_change')
           FROM unnest($1::bytea[], $2::bytea[]) AS t(k, n)
          WHERE l.client_key = t.k AND l.node = $3 AND l.{col} <> t.n"
    )
}

/// Removed keys' rows (rounds with removals only; same rule as the moved rows).
const REMOVE_SQL: &str = "DELETE FROM dhcp_xdp_leases
  WHERE client_key = ANY($1::bytea[])
    AND (node = $2 OR state IN (2, 3) OR expires <= extract(epoch FROM now()))";

/// A syncer's connection and its prepared statements.
pub(crate) struct Conn {
    client: Client,
    commit: postgres::Statement,
    remove: postgres::Statement,
    commit6: postgres::Statement,
    remove6: postgres::Statement,
    /// [`attr_sql`] of each [`Attr`].
    attr: [postgres::Statement; 2],
}

impl Conn {
    fn open(url: &str) -> Result<Self, postgres::Error> {
        let mut client = connect(url)?;
        // The statement's plan is made once and cached; made while the table was small it would
        // scan the whole table for the DELETE once it holds every lease. The only scan it needs
        // is the client-key index's.
        client.batch_execute("SET enable_seqscan = off")?;
        let commit = client.prepare(COMMIT_SQL)?;
        let remove = client.prepare(REMOVE_SQL)?;
        let commit6 = client.prepare(pg6::COMMIT6_SQL)?;
        let remove6 = client.prepare(pg6::REMOVE6_SQL)?;
        let attr = [client.prepare(&attr_sql(Attr::Name))?, client.prepare(&attr_sql(Attr::RelayInfo))?];
        Ok(Self { client, commit, remove, commit6, remove6, attr })
    }
}

/// What the database refused in a round (held by another client): v4 addresses, v6 addresses
/// and prefixes (with their lengths).
#[derive(Debug, Default)]
struct Refused {
    v4: Vec<Ipv4Addr>,
    v6: Vec<(Vec<u8>, i16)>,
}

/// Commits `batch` (numbered changes, any order) in one transaction (one statement when it
/// holds only v4 upserts); returns what the database refused.
fn commit(conn: &mut Conn, node: &str, batch: &[(u64, Change)]) -> Result<Refused, postgres::Error> {
    // The newest change of each key wins, then the newest upsert of each address.
    let mut last: HashMap<ClientKey, (u64, Change)> = HashMap::with_capacity(batch.len());
    // Attributes apart: the newest of each key and kind, set once its row is written.
    let mut attrs: HashMap<(Attr, ClientKey), (u64, &[u8])> = HashMap::new();
    for (seq, c) in batch {
        let k = match c {
            Change::Upsert(l) => l.key,
            Change::Remove(k) => *k,
            Change::Attr(a, k, v) => {
                if attrs.get(&(*a, *k)).is_none_or(|(s, _)| s < seq) {
                    attrs.insert((*a, *k), (*seq, &v[..]));
                }
                continue;
            }
            // The v6 changes are the v6 round's.
            Change::Upsert6(_) | Change::Remove6(_) => continue,
        };
        if last.get(&k).is_none_or(|(s, _)| s < seq) {
            last.insert(k, (*seq, c.clone()));
        }
    }
    let mut by_addr: HashMap<Ipv4Addr, (u64, Lease)> = HashMap::with_capacity(last.len());
    let mut removed: Vec<Vec<u8>> = vec![];
    for (seq, c) in last.into_values() {
        match c {
            Change::Upsert(l) => {
                if by_addr.get(&l.addr).is_none_or(|(s, _)| *s < seq) {
                    by_addr.insert(l.addr, (seq, l));
                }
            }
            Change::Remove(k) => removed.push(k.as_bytes().to_vec()),
            Change::Upsert6(_) | Change::Remove6(_) | Change::Attr(..) => {}
        }
    }
    let n = by_addr.len();
    let (mut addr, mut key, mut hw, mut subnet, mut expires, mut state, mut circuit, mut remote, mut seqs) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (seq, l) in by_addr.values() {
        addr.push(i64::from(u32::from(l.addr)));
        key.push(l.key.as_bytes().to_vec());
        hw.push(l.chaddr.to_vec());
        subnet.push(i64::from(l.subnet));
        expires.push(i64::from(l.expires));
        state.push(l.state as i16);
        circuit.push(i64::from(l.tags.circuit));
        remote.push(i64::from(l.tags.remote));
        seqs.push(*seq as i64);
    }
    let params: [&(dyn postgres::types::ToSql + Sync); 10] =
        [&addr, &key, &hw, &subnet, &expires, &state, &circuit, &remote, &seqs, &node];
    let round6 = Round6::of(batch);
    let attr_rows = Attr::ALL.map(|a| -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        attrs.iter().filter(|((b, _), _)| *b == a).map(|((_, k), (_, v))| (k.as_bytes().to_vec(), v.to_vec())).unzip()
    });
    let (applied, v6) = if removed.is_empty() && round6.is_empty() && attrs.is_empty() {
        (conn.client.query(&conn.commit, &params)?, vec![])
    } else {
        // Removed keys go first, wherever they are (a DECLINE removes the client's binding and
        // puts the address on probation under another key in the same batch): one transaction.
        let mut tx = conn.client.transaction()?;
        if !removed.is_empty() {
            tx.execute(&conn.remove, &[&removed, &node])?;
        }
        let applied = if n > 0 { tx.query(&conn.commit, &params)? } else { vec![] };
        for (stmt, (keys, values)) in conn.attr.iter().zip(&attr_rows) {
            if !keys.is_empty() {
                tx.execute(stmt, &[keys, values, &node])?;
            }
        }
        let v6 = round6.commit(&mut tx, (&conn.commit6, &conn.remove6), node)?;
        tx.commit()?;
        (applied, v6)
    };
    if applied.len() == n {
        return Ok(Refused { v4: vec![], v6 });
    }
    let done: hashbrown::HashSet<i64> = applied.iter().map(|r| r.get(0)).collect();
    Ok(Refused { v4: addr.iter().filter(|a| !done.contains(*a)).map(|a| Ipv4Addr::from(*a as u32)).collect(), v6 })
}

impl PgStore {
    /// See [`LeaseStore::admin_removal`](crate::store::LeaseStore::admin_removal).
    pub fn admin_removal(&self, edit: crate::store::AdminRemoval) -> Result<u64, String> {
        use postgres::types::ToSql;

        use crate::store::AdminRemoval;
        let mut c = connect(&self.syncer.backend().url).map_err(|e| format!("the lease database: {}", describe(&e)))?;
        type Args = Vec<Box<dyn ToSql + Sync>>;
        // Which table, which of its rows hold something, and which rows (a condition on the
        // parameters from `$p` on, which `args` fill).
        let (table, holding, filter, args): (&str, &str, fn(u8) -> String, Args) = match edit {
            AdminRemoval::Lease(a) => (
                "dhcp_xdp_leases",
                "l.state IN (0, 1, 4) AND",
                |p| format!("l.address = ${p}"),
                vec![Box::new(i64::from(u32::from(a)))],
            ),
            AdminRemoval::Subnet(s) => (
                "dhcp_xdp_leases",
                "l.state IN (0, 1, 4) AND",
                |p| format!("(${p}::bigint IS NULL OR l.subnet = ${p})"),
                vec![Box::new(s.map(i64::from))],
            ),
            AdminRemoval::Lease6(a, len) => (
                "dhcp_xdp_leases6",
                "",
                |p| format!("l.address = ${p} AND l.plen = ${}", p + 1),
                vec![Box::new(a.octets().to_vec()), Box::new(i16::from(len))],
            ),
            AdminRemoval::Subnet6(s) => (
                "dhcp_xdp_leases6",
                "",
                |p| format!("(${p}::bigint IS NULL OR l.subnet = ${p})"),
                vec![Box::new(s.map(i64::from))],
            ),
        };
        let ttl = f64::from(self.takeover_after);
        let node = &self.syncer.backend().node;
        let db = |e: postgres::Error| format!("the lease database: {}", describe(&e));
        // Rows another live node wrote and still serves: refused, naming the nodes.
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![node, &ttl];
        params.extend(args.iter().map(|a| &**a as &(dyn ToSql + Sync)));
        let live: Vec<(String, i64)> = c
            .query(
                &format!(
                    "SELECT l.node, count(*) FROM {table} l JOIN dhcp_xdp_nodes n ON n.name = l.node
                      WHERE {} AND l.node <> $1 AND {holding} l.expires > extract(epoch FROM now())
                        AND n.heartbeat > now() - make_interval(secs => $2)
                      GROUP BY l.node ORDER BY l.node",
                    filter(3)
                ),
                &params,
            )
            .map_err(db)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if !live.is_empty() {
            let who: Vec<String> = live.iter().map(|(n, k)| format!("{k} on node {n}")).collect();
            return Err(format!(
                "refused: leases written by other live nodes, which serve their clients and would commit them again ({}); \
                 remove them through those nodes",
                who.join(", ")
            ));
        }
        // Rows of nodes that are gone (or that hold nothing): removed here, cluster-wide; this
        // node's own rows go with its commit.
        params.remove(1);
        c.execute(&format!("DELETE FROM {table} l WHERE {} AND l.node <> $1", filter(2)), &params).map_err(db)
    }
}
