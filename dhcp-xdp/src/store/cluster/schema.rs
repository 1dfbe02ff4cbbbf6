//! The shared database's schema: versioned migrations, applied by `dhcp-xdp db init|upgrade`
//! (and by a daemon that finds an empty database), checked by every daemon at start.
//!
//! The lease table has as few indexes as the hot statement allows (address, client key) and
//! room on its pages (fillfactor 70): a renewal changes only columns no index covers, so it is a
//! HOT update that writes no index at all — this alone took the one-node rate from 66 000 to
//! 99 000 exchanges/s. Reading a silent node's rows at a takeover, and the periodic pull of
//! other nodes' changes, scan the table instead.
//!
//! One row per address (`address` is the primary key) makes two lease rows on one address
//! impossible; the `dhcp_xdp_guard` trigger refuses any update that would hand an address a
//! client holds to another client, whoever writes. The daemons' own upserts skip such rows
//! (their `WHERE` is the trigger's rule), so a conflict shows as a row not returned instead of
//! an aborted batch.
//!
//! Creating and upgrading the schema is serialised by an advisory lock held across the check of
//! the version and the migration: nodes started together (after a power cut) never see a schema
//! half made, and one that finds a migration in progress waits for it.

use dhcp_xdp_core::leases::ClientKey;
use postgres::{Client, Transaction};

/// The schema version this daemon reads and writes.
pub const SCHEMA_VERSION: i32 = 8;

/// The advisory lock every schema check, creation and upgrade holds ("dhcpxdp\0").
const SCHEMA_LOCK: i64 = 0x6468_6370_7864_7000;

/// One step of the schema.
enum Migration {
    Sql(&'static str),
    Code(fn(&mut Transaction<'_>) -> Result<(), postgres::Error>),
}

/// Migration `i` (its steps in order) takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&[Migration]] = &[
    // 0 → 1: nodes, blocks, leases.
    &[Migration::Sql(
        r#"
CREATE SEQUENCE dhcp_xdp_change;
CREATE TABLE dhcp_xdp_nodes (
    name text PRIMARY KEY,
    heartbeat timestamptz NOT NULL,
    started timestamptz NOT NULL,
    addresses text NOT NULL DEFAULT ''
);
CREATE TABLE dhcp_xdp_blocks (
    first_addr bigint PRIMARY KEY CHECK (first_addr >= 0 AND first_addr < 4294967296),
    size integer NOT NULL CHECK (size > 0),
    subnet bigint NOT NULL,
    owner text,
    expires timestamptz
);
CREATE TABLE dhcp_xdp_leases (
    address bigint PRIMARY KEY CHECK (address >= 0 AND address < 4294967296),
    client_key bytea NOT NULL,
    hwaddr bytea NOT NULL,
    subnet bigint NOT NULL,
    expires bigint NOT NULL,
    state smallint NOT NULL,
    circuit bigint NOT NULL DEFAULT 0,
    remote bigint NOT NULL DEFAULT 0,
    node text NOT NULL,
    seq bigint NOT NULL,
    change bigint NOT NULL DEFAULT nextval('dhcp_xdp_change')
) WITH (fillfactor = 70);
CREATE INDEX dhcp_xdp_leases_client ON dhcp_xdp_leases (client_key);
CREATE FUNCTION dhcp_xdp_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.client_key <> NEW.client_key AND OLD.state IN (0, 1, 4)
       AND OLD.expires > extract(epoch FROM now()) THEN
        RAISE EXCEPTION 'address % is held by another client until %', NEW.address, OLD.expires
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER dhcp_xdp_guard BEFORE UPDATE ON dhcp_xdp_leases
    FOR EACH ROW WHEN (OLD.client_key IS DISTINCT FROM NEW.client_key) EXECUTE FUNCTION dhcp_xdp_guard();
"#,
    )],
    // 1 → 2: client keys carry the lease scope (one lease per client per subnet); a node's row
    // names the running daemon that holds the name (instance id, host, pid) and the pools and
    // block size it serves.
    &[
        Migration::Sql(
            "ALTER TABLE dhcp_xdp_nodes ADD COLUMN instance text NOT NULL DEFAULT '',
             ADD COLUMN host text NOT NULL DEFAULT '', ADD COLUMN pid integer NOT NULL DEFAULT 0,
             ADD COLUMN pools text NOT NULL DEFAULT '';",
        ),
        Migration::Code(scope_keys),
    ],
    // 2 → 3: DHCPv6 leases (addresses and delegated prefixes) and each node's DUID.
    &[Migration::Sql(super::pg6::MIGRATION_SQL)],
    // 3 → 4: reservations added through the management API, one document every node reads,
    // versioned so that an edit based on an old one is refused.
    &[Migration::Sql(
        "CREATE TABLE dhcp_xdp_hosts (
             one boolean PRIMARY KEY DEFAULT true CHECK (one),
             hosts text NOT NULL DEFAULT '[]',
             version bigint NOT NULL DEFAULT 0
         );
         INSERT INTO dhcp_xdp_hosts DEFAULT VALUES;",
    )],
    // 4 → 5: the host name each client gave (option 81's domain name, else option 12).
    &[Migration::Sql("ALTER TABLE dhcp_xdp_leases ADD COLUMN hostname bytea NOT NULL DEFAULT ''::bytea;")],
    // 5 → 6: the option 82 a trusted relay added to the client's last REQUEST (leasequery).
    &[Migration::Sql("ALTER TABLE dhcp_xdp_leases ADD COLUMN relay_info bytea NOT NULL DEFAULT ''::bytea;")],
    // 6 → 7: the forensic lease log of every node (`[forensic-log] database = true`): a line per
    // lease event, found by address and time.
    &[Migration::Sql(
        "CREATE TABLE dhcp_xdp_lease_log (
             id bigserial PRIMARY KEY,
             ts timestamptz NOT NULL,
             event text NOT NULL,
             address text NOT NULL,
             line jsonb NOT NULL
         );
         CREATE INDEX dhcp_xdp_lease_log_address ON dhcp_xdp_lease_log (address, ts);
         CREATE INDEX dhcp_xdp_lease_log_ts ON dhcp_xdp_lease_log (ts);",
    )],
    // 7 → 8: the tag of the relay id a DHCPv6 lease was given through (bulk leasequery).
    &[Migration::Sql("ALTER TABLE dhcp_xdp_leases6 ADD COLUMN relay bigint NOT NULL DEFAULT 0;")],
];

/// Version 2: every unscoped client key (tags 0 and 1) is rewritten in the scope of its row's
/// subnet. A daemon whose configuration puts that subnet into a shared network rescopes its
/// rows at start ([`rescope_shared_networks`]).
fn scope_keys(tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
    let rows = tx.query(
        "SELECT address, client_key, subnet FROM dhcp_xdp_leases WHERE get_byte(client_key, 0) IN (0, 1)",
        &[],
    )?;
    let (mut addrs, mut keys) = (vec![], vec![]);
    for r in &rows {
        let Some(k) = ClientKey::from_bytes(r.get::<_, &[u8]>(1)) else { continue };
        let Ok(subnet) = u32::try_from(r.get::<_, i64>(2)) else { continue };
        addrs.push(r.get::<_, i64>(0));
        keys.push(k.rescoped(subnet).as_bytes().to_vec());
    }
    rewrite_keys(tx, &addrs, &keys)?;
    Ok(())
}

/// Gives the rows at `addrs` the client keys `keys` (the same clients, in another scope), with
/// the guard trigger set aside: it fires on a changed key, and the same client in its scope is
/// not another client. Returns how many rows changed.
fn rewrite_keys(tx: &mut Transaction<'_>, addrs: &[i64], keys: &[Vec<u8>]) -> Result<u64, postgres::Error> {
    if addrs.is_empty() {
        return Ok(0);
    }
    tx.batch_execute("ALTER TABLE dhcp_xdp_leases DISABLE TRIGGER dhcp_xdp_guard")?;
    let n = tx.execute(
        "UPDATE dhcp_xdp_leases l SET client_key = t.k FROM unnest($1::bigint[], $2::bytea[]) AS t(a, k)
          WHERE l.address = t.a",
        &[&addrs, &keys],
    )?;
    tx.batch_execute("ALTER TABLE dhcp_xdp_leases ENABLE TRIGGER dhcp_xdp_guard")?;
    Ok(n)
}

/// Rows of subnets that `scopes` (subnet id → lease scope) put in another scope than their key
/// has (a subnet of a shared network, upgraded from version 1 with its own id as scope) get the
/// configured one. Returns how many rows changed.
pub fn rescope_shared_networks(client: &mut Client, scopes: &[(u32, u32)]) -> Result<u64, postgres::Error> {
    let mut n = 0;
    let mut tx = client.transaction()?;
    for &(subnet, scope) in scopes.iter().filter(|(id, scope)| id != scope) {
        let rows = tx.query(
            "SELECT address, client_key FROM dhcp_xdp_leases WHERE subnet = $1 AND get_byte(client_key, 0) IN (3, 4)",
            &[&i64::from(subnet)],
        )?;
        let (mut addrs, mut keys) = (vec![], vec![]);
        for r in &rows {
            let Some(k) = ClientKey::from_bytes(r.get::<_, &[u8]>(1)) else { continue };
            if k.scope() != Some(scope) {
                addrs.push(r.get::<_, i64>(0));
                keys.push(k.rescoped(scope).as_bytes().to_vec());
            }
        }
        n += rewrite_keys(&mut tx, &addrs, &keys)?;
    }
    tx.commit()?;
    Ok(n)
}

/// Schema problems and database errors.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// No schema at all.
    #[error("the database has no dhcp-xdp schema: run `dhcp-xdp db init --database URL`")]
    Missing,
    /// An older schema.
    #[error(
        "the database schema is version {0}, this daemon needs {SCHEMA_VERSION}: run `dhcp-xdp db upgrade --database URL`"
    )]
    Old(i32),
    /// A newer schema than this daemon knows.
    #[error("the database schema is version {0}, newer than this daemon's {SCHEMA_VERSION}: upgrade the daemon")]
    New(i32),
    /// The database said no.
    #[error("{0}")]
    Db(#[from] postgres::Error),
}

/// Runs `f` in a transaction holding the schema lock (waiting for another holder, with no
/// statement limit: a long migration by another node is waited for, not failed).
fn locked<T>(
    client: &mut Client,
    f: impl FnOnce(&mut Transaction<'_>) -> Result<T, SchemaError>,
) -> Result<T, SchemaError> {
    let mut tx = client.transaction()?;
    tx.batch_execute("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = '15min'")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    let out = f(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

/// The schema version in the database (None: no schema table).
pub fn version(client: &mut Client) -> Result<Option<i32>, SchemaError> {
    locked(client, read_version)
}

fn read_version(tx: &mut Transaction<'_>) -> Result<Option<i32>, SchemaError> {
    let exists: bool = tx.query_one("SELECT to_regclass('dhcp_xdp_schema') IS NOT NULL", &[])?.get(0);
    if !exists {
        return Ok(None);
    }
    Ok(tx.query_opt("SELECT version FROM dhcp_xdp_schema", &[])?.map(|r| r.get(0)))
}

fn create(tx: &mut Transaction<'_>) -> Result<(i32, i32), SchemaError> {
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS dhcp_xdp_schema (version integer NOT NULL);
         INSERT INTO dhcp_xdp_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM dhcp_xdp_schema);",
    )?;
    migrate(tx)
}

/// Applies the migrations past the database's version. Returns the (from, to) versions.
fn migrate(tx: &mut Transaction<'_>) -> Result<(i32, i32), SchemaError> {
    let from: i32 = tx.query_one("SELECT version FROM dhcp_xdp_schema FOR UPDATE", &[])?.get(0);
    if from > SCHEMA_VERSION {
        return Err(SchemaError::New(from));
    }
    for m in MIGRATIONS[from.max(0) as usize..].iter().flat_map(|steps| steps.iter()) {
        match m {
            Migration::Sql(sql) => tx.batch_execute(sql)?,
            Migration::Code(f) => f(tx)?,
        }
    }
    tx.execute("UPDATE dhcp_xdp_schema SET version = $1", &[&SCHEMA_VERSION])?;
    Ok((from, SCHEMA_VERSION))
}

/// Creates the schema table (version 0) when missing, then upgrades to [`SCHEMA_VERSION`].
/// Returns the (from, to) versions.
pub fn init(client: &mut Client) -> Result<(i32, i32), SchemaError> {
    locked(client, create)
}

/// Applies the migrations past the database's version in one transaction, under the schema
/// lock. Returns the (from, to) versions.
pub fn upgrade(client: &mut Client) -> Result<(i32, i32), SchemaError> {
    locked(client, |tx| match read_version(tx)? {
        None => Err(SchemaError::Missing),
        Some(_) => migrate(tx),
    })
}

/// What a starting daemon does: an empty database is initialised; an older or newer schema
/// is an error naming the command that fixes it. Under the schema lock, so a daemon started
/// beside another that is creating the schema waits and finds it made.
pub fn ensure(client: &mut Client) -> Result<(), SchemaError> {
    locked(client, |tx| match read_version(tx)? {
        None => {
            let (_, to) = create(tx)?;
            tracing::info!("cluster: empty database, schema version {to} created");
            Ok(())
        }
        Some(v) if v == SCHEMA_VERSION => Ok(()),
        Some(v) if v < SCHEMA_VERSION => Err(SchemaError::Old(v)),
        Some(v) => Err(SchemaError::New(v)),
    })
}

/// A node's row as `dhcp-xdp db status` shows it.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// The node's name.
    pub name: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age: f64,
    /// The addresses it announced.
    pub addresses: String,
    /// The host and pid of the daemon that holds the name.
    pub host: String,
    /// The daemon's process id.
    pub pid: i32,
    /// Blocks it holds.
    pub blocks: i64,
    /// Bindings it wrote that still run.
    pub bound: i64,
}

/// What `dhcp-xdp db status` shows.
#[derive(Debug, Clone)]
pub struct Status {
    /// Every node row, by name.
    pub nodes: Vec<NodeStatus>,
    /// Address blocks.
    pub blocks: i64,
    /// Blocks no node holds.
    pub unowned_blocks: i64,
    /// Lease rows.
    pub lease_rows: i64,
    /// DHCPv6 lease rows (addresses and prefixes).
    pub lease6_rows: i64,
}

/// Nodes, blocks and leases, read in one go (the schema must be current).
pub fn status(c: &mut Client) -> Result<Status, postgres::Error> {
    let nodes = c
        .query(
            "SELECT n.name, extract(epoch FROM now() - n.heartbeat)::float8, n.addresses, n.host, n.pid,
                    (SELECT count(*) FROM dhcp_xdp_blocks b WHERE b.owner = n.name AND b.expires > now()),
                    (SELECT count(*) FROM dhcp_xdp_leases l WHERE l.node = n.name AND l.state = 1
                        AND l.expires > extract(epoch FROM now()))
             FROM dhcp_xdp_nodes n ORDER BY n.name",
            &[],
        )?
        .iter()
        .map(|r| NodeStatus {
            name: r.get(0),
            heartbeat_age: r.get(1),
            addresses: r.get(2),
            host: r.get(3),
            pid: r.get(4),
            blocks: r.get(5),
            bound: r.get(6),
        })
        .collect();
    let r = c.query_one(
        "SELECT (SELECT count(*) FROM dhcp_xdp_blocks), (SELECT count(*) FROM dhcp_xdp_blocks WHERE owner IS NULL),
                (SELECT count(*) FROM dhcp_xdp_leases), (SELECT count(*) FROM dhcp_xdp_leases6)",
        &[],
    )?;
    Ok(Status { nodes, blocks: r.get(0), unowned_blocks: r.get(1), lease_rows: r.get(2), lease6_rows: r.get(3) })
}
