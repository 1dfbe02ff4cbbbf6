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

use postgres::Client;

/// The schema version this daemon reads and writes.
pub const SCHEMA_VERSION: i32 = 1;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: nodes, blocks, leases.
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
];

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

/// The schema version in the database (None: no schema table).
pub fn version(client: &mut Client) -> Result<Option<i32>, SchemaError> {
    let exists: bool = client.query_one("SELECT to_regclass('dhcp_xdp_schema') IS NOT NULL", &[])?.get(0);
    if !exists {
        return Ok(None);
    }
    Ok(client.query_opt("SELECT version FROM dhcp_xdp_schema", &[])?.map(|r| r.get(0)))
}

/// Creates the schema table (version 0) when missing, then upgrades to [`SCHEMA_VERSION`].
/// Returns the (from, to) versions.
pub fn init(client: &mut Client) -> Result<(i32, i32), SchemaError> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS dhcp_xdp_schema (version integer NOT NULL);
         INSERT INTO dhcp_xdp_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM dhcp_xdp_schema);",
    )?;
    upgrade(client)
}

/// Applies the migrations past the database's version in one transaction (the schema row is
/// locked, so two upgrades at once run one after the other). Returns the (from, to) versions.
pub fn upgrade(client: &mut Client) -> Result<(i32, i32), SchemaError> {
    if version(client)?.is_none() {
        return Err(SchemaError::Missing);
    }
    let mut tx = client.transaction()?;
    let from: i32 = tx.query_one("SELECT version FROM dhcp_xdp_schema FOR UPDATE", &[])?.get(0);
    if from > SCHEMA_VERSION {
        return Err(SchemaError::New(from));
    }
    for sql in &MIGRATIONS[from as usize..] {
        tx.batch_execute(sql)?;
    }
    tx.execute("UPDATE dhcp_xdp_schema SET version = $1", &[&SCHEMA_VERSION])?;
    tx.commit()?;
    Ok((from, SCHEMA_VERSION))
}

/// What a starting daemon does: an empty database is initialised; an older or newer schema
/// is an error naming the command that fixes it.
pub fn ensure(client: &mut Client) -> Result<(), SchemaError> {
    match version(client)? {
        None => {
            let (_, to) = init(client)?;
            tracing::info!("cluster: empty database, schema version {to} created");
            Ok(())
        }
        Some(v) if v == SCHEMA_VERSION => Ok(()),
        Some(v) if v < SCHEMA_VERSION => Err(SchemaError::Old(v)),
        Some(v) => Err(SchemaError::New(v)),
    }
}
