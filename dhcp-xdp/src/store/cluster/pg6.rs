//! DHCPv6 leases in the shared database (`dhcp_xdp_leases6`, schema version 3): one row per
//! address or delegated prefix (the primary key is the address and its length), with the same
//! rules as the v4 rows — the `dhcp_xdp_guard6` trigger refuses to give a row another client
//! holds to anyone else, the daemons' upserts carry that rule in their `WHERE`, so a conflict is
//! a row not returned and the round's replies stay home.
//!
//! A client's key is its IA: (DUID, IAID, IA type, subnet). Declined addresses are rows under a
//! key nobody holds (the address itself as DUID, IAID 2^32 − 1), kept until probation ends.

use std::net::Ipv6Addr;

use dhcp_xdp_core::{
    dhcp6::IaKind,
    leases::{
        Change, Tags,
        v6::{Key6, Lease6, Lease6State},
    },
};
use hashbrown::HashMap;
use postgres::{Row, Statement, Transaction};

/// The columns every v6 lease query selects, in [`lease6_from_row`]'s order.
pub const LEASE6_COLUMNS: &str = "address, plen, kind, duid, iaid, subnet, preferred, valid, expires, state, circuit, remote, node, seq, change, relay";

/// The column of [`LEASE6_COLUMNS`] that holds the change number.
pub const CHANGE6_COLUMN: usize = 14;

fn kind_code(k: IaKind) -> i16 {
    match k {
        IaKind::Na => 0,
        IaKind::Pd => 1,
    }
}

/// A v6 lease row as a lease (None for a row this daemon cannot read).
pub fn lease6_from_row(r: &Row) -> Option<Lease6> {
    let addr: [u8; 16] = r.get::<_, &[u8]>(0).try_into().ok()?;
    let kind = match r.get::<_, i16>(2) {
        0 => IaKind::Na,
        1 => IaKind::Pd,
        _ => return None,
    };
    let u = |i: usize| u32::try_from(r.get::<_, i64>(i)).ok();
    Some(Lease6 {
        key: Key6 { kind, subnet: u(5)?, duid: std::sync::Arc::from(r.get::<_, &[u8]>(3)), iaid: u(4)? },
        addr: Ipv6Addr::from(addr),
        len: u8::try_from(r.get::<_, i16>(1)).ok().filter(|l| *l <= 128)?,
        preferred: u(6)?,
        valid: u(7)?,
        expires: u(8)?,
        state: Lease6State::from_u8(u8::try_from(r.get::<_, i16>(9)).ok()?)?,
        tags: Tags { circuit: r.get::<_, i64>(10) as u32, remote: r.get::<_, i64>(11) as u32 },
        relay: r.get::<_, i64>(15) as u32,
    })
}

/// Migration 2 → 3: the v6 lease table, its client index and guard, and a node's DHCPv6 DUID
/// (made once per node name and kept with it, so that clients keep talking to the same server
/// across restarts and reinstalls).
pub const MIGRATION_SQL: &str = r#"
CREATE TABLE dhcp_xdp_leases6 (
    address bytea NOT NULL CHECK (length(address) = 16),
    plen smallint NOT NULL CHECK (plen BETWEEN 0 AND 128),
    kind smallint NOT NULL,
    duid bytea NOT NULL,
    iaid bigint NOT NULL,
    subnet bigint NOT NULL,
    preferred bigint NOT NULL,
    valid bigint NOT NULL,
    expires bigint NOT NULL,
    state smallint NOT NULL,
    circuit bigint NOT NULL DEFAULT 0,
    remote bigint NOT NULL DEFAULT 0,
    node text NOT NULL,
    seq bigint NOT NULL,
    change bigint NOT NULL DEFAULT nextval('dhcp_xdp_change'),
    PRIMARY KEY (address, plen)
) WITH (fillfactor = 70);
CREATE INDEX dhcp_xdp_leases6_client ON dhcp_xdp_leases6 (duid, iaid, kind, subnet);
CREATE FUNCTION dhcp_xdp_guard6() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.expires > extract(epoch FROM now()) THEN
        RAISE EXCEPTION 'prefix %/% is held by another client until %', NEW.address, NEW.plen, OLD.expires
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER dhcp_xdp_guard6 BEFORE UPDATE ON dhcp_xdp_leases6
    FOR EACH ROW WHEN ((OLD.duid, OLD.iaid, OLD.kind, OLD.subnet) IS DISTINCT FROM
                       (NEW.duid, NEW.iaid, NEW.kind, NEW.subnet))
    EXECUTE FUNCTION dhcp_xdp_guard6();
ALTER TABLE dhcp_xdp_nodes ADD COLUMN duid bytea;
"#;

/// One statement per round (as for v4): the rows an upserted IA holds elsewhere (it moved) go,
/// then the upsert. The rule: the same IA's row is updated in this node's own order (`seq`),
/// and from another node unless that would shorten its binding; another client's row only once
/// it holds nothing (its end has passed by the database's clock). Rows are deleted only when
/// this node wrote them or they hold nothing any more.
pub const COMMIT6_SQL: &str = "WITH moved AS (
     DELETE FROM dhcp_xdp_leases6 l
      USING unnest($3::bytea[], $4::bigint[], $5::smallint[], $6::bigint[]) AS m(d, i, k, s)
      WHERE l.duid = m.d AND l.iaid = m.i AND l.kind = m.k AND l.subnet = m.s
        AND NOT EXISTS (SELECT 1 FROM unnest($1::bytea[], $2::smallint[]) AS w(a, p)
                         WHERE w.a = l.address AND w.p = l.plen)
        AND (l.node = $14 OR l.expires <= extract(epoch FROM now())))
 INSERT INTO dhcp_xdp_leases6 AS l (address, plen, duid, iaid, kind, subnet, preferred, valid, expires, state,
                                    circuit, remote, node, seq, relay)
 SELECT a, p, d, i, k, s, pr, v, e, st, c, r, $14, q, rl
   FROM unnest($1::bytea[], $2::smallint[], $3::bytea[], $4::bigint[], $5::smallint[], $6::bigint[],
               $7::bigint[], $8::bigint[], $9::bigint[], $10::smallint[], $11::bigint[], $12::bigint[],
               $13::bigint[], $15::bigint[]) AS t(a, p, d, i, k, s, pr, v, e, st, c, r, q, rl)
 ON CONFLICT (address, plen) DO UPDATE SET duid = EXCLUDED.duid, iaid = EXCLUDED.iaid, kind = EXCLUDED.kind,
     subnet = EXCLUDED.subnet, preferred = EXCLUDED.preferred, valid = EXCLUDED.valid,
     expires = EXCLUDED.expires, state = EXCLUDED.state, circuit = EXCLUDED.circuit, remote = EXCLUDED.remote,
     node = EXCLUDED.node, seq = EXCLUDED.seq, relay = EXCLUDED.relay, change = nextval('dhcp_xdp_change')
 WHERE ((l.duid, l.iaid, l.kind, l.subnet) = (EXCLUDED.duid, EXCLUDED.iaid, EXCLUDED.kind, EXCLUDED.subnet)
        AND ((l.node = EXCLUDED.node AND l.seq <= EXCLUDED.seq)
             OR (l.node <> EXCLUDED.node AND EXCLUDED.expires >= l.expires)))
    OR ((l.duid, l.iaid, l.kind, l.subnet) IS DISTINCT FROM (EXCLUDED.duid, EXCLUDED.iaid, EXCLUDED.kind, EXCLUDED.subnet)
        AND l.expires <= extract(epoch FROM now()))
 RETURNING address, plen";

/// Removed IAs' rows (rounds with removals only; same rule as the moved rows).
pub const REMOVE6_SQL: &str = "DELETE FROM dhcp_xdp_leases6 l
  USING unnest($1::bytea[], $2::bigint[], $3::smallint[], $4::bigint[]) AS m(d, i, k, s)
  WHERE l.duid = m.d AND l.iaid = m.i AND l.kind = m.k AND l.subnet = m.s
    AND (l.node = $5 OR l.expires <= extract(epoch FROM now()))";

/// The v6 part of a round: the newest change of each IA, then the newest upsert of each
/// address or prefix.
#[derive(Debug, Default)]
pub struct Round6 {
    upserts: Vec<(u64, Lease6)>,
    removed: Vec<Key6>,
}

impl Round6 {
    /// The v6 changes of `batch` (numbered, any order), newest of each IA.
    pub fn of(batch: &[(u64, Change)]) -> Self {
        let mut last: HashMap<&Key6, (u64, &Change)> = HashMap::new();
        for (seq, c) in batch {
            let k = match c {
                Change::Upsert6(l) => &l.key,
                Change::Remove6(k) => k,
                Change::Upsert(_) | Change::Remove(_) | Change::Attr(..) => continue,
            };
            if last.get(k).is_none_or(|(s, _)| s < seq) {
                last.insert(k, (*seq, c));
            }
        }
        let mut by_addr: HashMap<(Ipv6Addr, u8), (u64, Lease6)> = HashMap::new();
        let mut removed = vec![];
        for (seq, c) in last.into_values() {
            match c {
                Change::Upsert6(l) => {
                    if by_addr.get(&(l.addr, l.len)).is_none_or(|(s, _)| *s < seq) {
                        by_addr.insert((l.addr, l.len), (seq, l.clone()));
                    }
                }
                Change::Remove6(k) => removed.push(k.clone()),
                Change::Upsert(_) | Change::Remove(_) | Change::Attr(..) => {}
            }
        }
        Self { upserts: by_addr.into_values().collect(), removed }
    }

    /// Nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removed.is_empty()
    }

    /// Commits the round in `tx` as node `node` with the prepared [`COMMIT6_SQL`] and
    /// [`REMOVE6_SQL`]: the removals, then the upserts. Returns the addresses (prefixes) whose
    /// upsert the database refused (held by another client).
    pub fn commit(
        &self,
        tx: &mut Transaction<'_>,
        (commit, remove): (&Statement, &Statement),
        node: &str,
    ) -> Result<Vec<(Vec<u8>, i16)>, postgres::Error> {
        if !self.removed.is_empty() {
            let (d, i, k, s) = key_arrays(self.removed.iter());
            tx.execute(remove, &[&d, &i, &k, &s, &node])?;
        }
        if self.upserts.is_empty() {
            return Ok(vec![]);
        }
        let ls = || self.upserts.iter().map(|(_, l)| l);
        let addr: Vec<Vec<u8>> = ls().map(|l| l.addr.octets().to_vec()).collect();
        let plen: Vec<i16> = ls().map(|l| i16::from(l.len)).collect();
        let (d, i, k, s) = key_arrays(ls().map(|l| &l.key));
        let pr: Vec<i64> = ls().map(|l| i64::from(l.preferred)).collect();
        let v: Vec<i64> = ls().map(|l| i64::from(l.valid)).collect();
        let e: Vec<i64> = ls().map(|l| i64::from(l.expires)).collect();
        let st: Vec<i16> = ls().map(|l| l.state as i16).collect();
        let c: Vec<i64> = ls().map(|l| i64::from(l.tags.circuit)).collect();
        let r: Vec<i64> = ls().map(|l| i64::from(l.tags.remote)).collect();
        let q: Vec<i64> = self.upserts.iter().map(|(seq, _)| *seq as i64).collect();
        let rl: Vec<i64> = ls().map(|l| i64::from(l.relay)).collect();
        let applied = tx.query(commit, &[&addr, &plen, &d, &i, &k, &s, &pr, &v, &e, &st, &c, &r, &q, &node, &rl])?;
        if applied.len() == addr.len() {
            return Ok(vec![]);
        }
        let done: hashbrown::HashSet<(Vec<u8>, i16)> =
            applied.iter().map(|row| (row.get::<_, Vec<u8>>(0), row.get::<_, i16>(1))).collect();
        Ok(addr.into_iter().zip(plen).filter(|a| !done.contains(a)).collect())
    }
}

/// A v6 key's columns as arrays (DUID, IAID, type, subnet).
fn key_arrays<'a>(keys: impl Iterator<Item = &'a Key6>) -> (Vec<Vec<u8>>, Vec<i64>, Vec<i16>, Vec<i64>) {
    let (mut d, mut i, mut k, mut s) = (vec![], vec![], vec![], vec![]);
    for key in keys {
        d.push(key.duid.to_vec());
        i.push(i64::from(key.iaid));
        k.push(kind_code(key.kind));
        s.push(i64::from(key.subnet));
    }
    (d, i, k, s)
}

/// The rows that beat refused upserts `refused` (address, length), read in `c`.
pub fn winners(c: &mut postgres::Client, refused: &[(Vec<u8>, i16)]) -> Result<Vec<Lease6>, postgres::Error> {
    let (a, p): (Vec<Vec<u8>>, Vec<i16>) = refused.iter().cloned().unzip();
    let rows = c.query(
        &format!(
            "SELECT {LEASE6_COLUMNS} FROM dhcp_xdp_leases6 l JOIN unnest($1::bytea[], $2::smallint[]) AS w(a, p)
               ON l.address = w.a AND l.plen = w.p"
        ),
        &[&a, &p],
    )?;
    Ok(rows.iter().filter_map(lease6_from_row).collect())
}
