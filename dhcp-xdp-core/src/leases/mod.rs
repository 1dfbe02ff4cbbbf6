//! Lease tables: one shard per worker, O(1) allocation, affinity, and the pools' address
//! ownership.
//!
//! A shard owns its clients' leases (the XDP hash always sends a client to the same worker) and
//! the addresses in its free lists. Every pool address has an owner byte: a shard, the pool's
//! spare set, or "reserved". A shard whose free list runs dry claims a block from the spare set
//! (the one cross-shard lock) or, when the spare set is empty, takes free addresses from another
//! shard it can lock without waiting. Nothing here reads a clock or does I/O: callers pass `now`
//! (Unix seconds) and collect the [`Change`]s to journal.
//!
//! - [`key`]: the client key a lease is kept under.
//! - `directory`: which shard holds a key, for frames that arrive at another one.
//! - `quota`: what one subscriber (chaddr, circuit, remote id) holds and how fast it asks.
//! - [`shard`]: one shard's storage (records, indexes, free lists) and the lease operations.
//! - [`pool`]: address ownership across shards (owner bytes, spare blocks, stealing).
//! - [`prefix`]: DHCPv6 pools (a pool prefix cut into numbered prefixes, or an address range,
//!   O(1) allocation).
//! - [`v6`]: the DHCPv6 lease table (addresses and delegated prefixes by DUID, IAID and type).

use std::{
    collections::VecDeque,
    net::Ipv4Addr,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU8, Ordering},
    },
};

use hashbrown::{HashMap, HashTable};

use crate::config::{Config, Limits};

/// Owner byte of an address in the spare set.
const SPARE: u8 = 255;
/// Owner byte of an address reserved for one client (never allocated dynamically).
const RESERVED: u8 = 254;
/// Most shards (owner bytes below [`RESERVED`]).
pub const MAX_SHARDS: usize = 250;
mod admin;
mod directory;
mod key;
mod pool;
pub mod prefix;
mod quota;
mod shard;
pub mod v6;

use directory::Directory;
#[cfg(test)]
mod tests;

pub use key::ClientKey;
pub use pool::{ClusterBlock, PoolGrants, PoolState};
use quota::Quota;
pub use quota::Tags;
pub use shard::{Shard, ShardGuard};

/// Lease states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LeaseState {
    /// Offered, held until `expires`.
    Offered = 0,
    /// Bound until `expires`.
    Bound = 1,
    /// Released by the client; the address is free but remembered for affinity.
    Released = 2,
    /// Lapsed; free but remembered for affinity.
    Expired = 3,
    /// Declined by a client: on probation until `expires`.
    Declined = 4,
}

impl LeaseState {
    /// From the journal byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Offered,
            1 => Self::Bound,
            2 => Self::Released,
            3 => Self::Expired,
            4 => Self::Declined,
            _ => return None,
        })
    }
}

/// One lease record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Who.
    pub key: ClientKey,
    /// The client's hardware address (routes the record to its shard on restart).
    pub chaddr: [u8; 6],
    /// The address.
    pub addr: Ipv4Addr,
    /// Unix seconds when the state lapses.
    pub expires: u32,
    /// State.
    pub state: LeaseState,
    /// Subnet id.
    pub subnet: u32,
    /// The relay circuit and remote id it was given behind (for the quotas).
    pub tags: Tags,
}

impl Lease {
    /// Whether the address is still held at `now` (offer hold, binding or probation running).
    pub fn holds(&self, now: u32) -> bool {
        match self.state {
            LeaseState::Offered | LeaseState::Bound | LeaseState::Declined => self.expires > now,
            LeaseState::Released | LeaseState::Expired => false,
        }
    }
}

/// A change to journal: the record as it now is, or its removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Insert or replace the record of `key`.
    Upsert(Lease),
    /// Forget the record of this key.
    Remove(ClientKey),
    /// Insert or replace a DHCPv6 lease (of its DUID, IAID, IA type and subnet).
    Upsert6(v6::Lease6),
    /// Forget the DHCPv6 lease of this key.
    Remove6(v6::Key6),
    /// What the record of `key` keeps of its client's last ACKed REQUEST ([`Attr`]; at most
    /// [`MAX_ATTR`] bytes), empty when it has none any more. Journaled only when it changes,
    /// after the record it belongs to; a removal of the record forgets it.
    Attr(Attr, ClientKey, Box<[u8]>),
}

/// What a lease keeps beside its record, taken from the client's last ACKed REQUEST: only
/// records that have one pay for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    /// The host name the client gave: option 81's domain name, else option 12.
    Name = 0,
    /// The relay agent information (option 82) a trusted relay added, as it sent it: what a
    /// leasequery answers with (RFC 4388 §6.4.2) and a relay-id query matches.
    RelayInfo = 1,
}

impl Attr {
    /// Every kind, in the order of [`Shard`]'s maps.
    pub const ALL: [Attr; 2] = [Attr::Name, Attr::RelayInfo];
}

/// Each record's attributes by kind and key (recovery, reloads, imports).
pub type AttrMap = HashMap<(Attr, ClientKey), Box<[u8]>>;

/// One record's attributes, by [`Attr`] (None: it has none of that kind).
pub type Attrs = [Option<Box<[u8]>>; 2];

/// Longest attribute kept with a lease: what fits one journal record beside the longest client
/// key. A longer host name is cut; a longer option 82 is not kept (a cut one would not parse).
pub const MAX_ATTR: usize = 200;

/// Why no address could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// Every pool of the candidate subnets is exhausted.
    #[error("no free address")]
    NoAddress,
    /// The address is held by another client or owned by another shard.
    #[error("address not available to this client")]
    Unavailable,
    /// The client does not hold the address it speaks of (a DECLINE or RELEASE of another's).
    #[error("the client does not hold this address")]
    NotHeld,
    /// A `[limits]` quota is reached.
    #[error("over the limit")]
    OverLimit,
}

/// All shards and pools.
///
/// Shards are laid out as `lanes × groups`: a lane per receive queue, a group per worker of a
/// queue (the XDP program's choice by chaddr hash), so that no two workers ever share a shard
/// lock. A client whose frames reach another shard than the one holding its record (another
/// queue, or its client id behind another chaddr) is decided in the holding shard
/// ([`ShardGuard::home_of`]).
pub struct LeaseDb {
    shards: Vec<Mutex<Shard>>,
    groups: usize,
    /// Key of the XDP program's chaddr hash (`[limits] steering-key`, as the daemon resolved it).
    steering_key: u32,
    pools: Vec<PoolState>,
    retired: std::sync::atomic::AtomicBool,
    /// Sequence of journaled changes (see [`stamp`](Self::stamp)).
    seq: std::sync::atomic::AtomicU64,
    /// Each subnet's lease scope (subnet id, scope), from the configuration.
    scopes: Vec<(u32, u32)>,
    /// The DHCPv6 leases and pools (one lock: v6 is not sharded per worker yet).
    v6: Mutex<v6::Table6>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts of leases by state, and free addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Offers held.
    pub offered: u64,
    /// Bound leases.
    pub bound: u64,
    /// Released or expired records kept for affinity.
    pub remembered: u64,
    /// Declined addresses on probation.
    pub declined: u64,
}

impl LeaseDb {
    /// Builds empty shards and pool states for `cfg`, then re-inserts `leases` (from recovery
    /// or a reload), each into the shard of its chaddr.
    pub fn new(cfg: &Config, shards: usize, leases: impl IntoIterator<Item = Lease>, now: u32) -> Self {
        Self::with_lanes(cfg, 1, shards, leases, now)
    }

    /// [`new`](Self::new) with `lanes × groups` shards (at most [`MAX_SHARDS`]): shard
    /// `lane * groups + group` belongs to worker `group` of receive queue `lane`. Recovered
    /// leases start in lane 0 of their chaddr's group.
    pub fn with_lanes(
        cfg: &Config,
        lanes: usize,
        groups: usize,
        leases: impl IntoIterator<Item = Lease>,
        now: u32,
    ) -> Self {
        let groups = groups.clamp(1, MAX_SHARDS);
        let lanes = lanes.clamp(1, MAX_SHARDS / groups);
        let shards = lanes * groups;
        let directory = (shards > 1).then(|| std::sync::Arc::new(Directory::new()));
        let quota = std::sync::Arc::new(Quota::new());
        let mut pools = vec![];
        for s in &cfg.subnets {
            for p in &s.pools {
                let len = p.len();
                let block = (len / (shards as u32 * 8)).clamp(1, 1024);
                let owner: Vec<AtomicU8> = (0..len).map(|_| AtomicU8::new(SPARE)).collect();
                for r in &s.reservations {
                    if let Some(a) = r.ip
                        && p.contains(a)
                    {
                        owner[(u32::from(a) - u32::from(p.start)) as usize].store(RESERVED, Ordering::Relaxed);
                    }
                }
                // Cluster mode: nothing is spare until this node holds a block of the pool.
                let cluster_block = cfg.cluster.as_ref().map_or(len.max(1), |c| c.block_size);
                let granted = cfg.cluster.as_ref().map(|_| {
                    (0..len.div_ceil(cluster_block)).map(|_| std::sync::atomic::AtomicBool::new(false)).collect()
                });
                let spare: Vec<u32> = if cfg.cluster.is_some() {
                    vec![]
                } else {
                    (0..len.div_ceil(block)).rev().map(|b| b * block).collect()
                };
                pools.push(PoolState {
                    subnet: s.id,
                    start: u32::from(p.start),
                    len,
                    owner,
                    spare: Mutex::new(spare),
                    spare_empty: std::sync::atomic::AtomicBool::new(false),
                    block,
                    declined: std::sync::atomic::AtomicU32::new(0),
                    granted,
                    cluster_block,
                    classes: p.client_classes,
                });
            }
        }
        let db = Self {
            shards: (0..shards)
                .map(|i| {
                    Mutex::new(Shard {
                        id: i as u8,
                        leases: vec![],
                        vacant: vec![],
                        by_key: HashTable::new(),
                        by_addr: HashMap::new(),
                        free: (0..pools.len()).map(|_| VecDeque::new()).collect(),
                        changes: vec![],
                        attrs: [HashMap::new(), HashMap::new()],
                        sweep_cursor: 0,
                        last_found: std::cell::Cell::new(0),
                        directory: directory.clone(),
                        quota: quota.clone(),
                    })
                })
                .collect(),
            groups,
            steering_key: cfg.limits.steering_key.unwrap_or(0),
            pools,
            retired: std::sync::atomic::AtomicBool::new(false),
            seq: std::sync::atomic::AtomicU64::new(1),
            scopes: cfg.subnets.iter().map(|s| (s.id, s.lease_scope)).collect(),
            v6: Mutex::new(v6::Table6::new(cfg, [], now)),
        };
        // Group by shard first, so each shard is locked once and its tables are sized once. A
        // reserved address's lease goes where requests for it are decided.
        let reserved: hashbrown::HashSet<Ipv4Addr> =
            cfg.subnets.iter().flat_map(|s| s.reservations.iter().filter_map(|r| r.ip)).collect();
        let mut per_shard: Vec<Vec<Lease>> = vec![vec![]; db.shards.len()];
        for mut l in leases {
            // Every client key in the scope of its subnet (keys of older formats had none; a
            // reload may have put the subnet into a shared network).
            l.key = l.key.rescoped(cfg.scope_of(l.subnet));
            // Offers carried over by a reload keep their hold; lapsed ones and lapsed
            // probations are gone.
            if matches!(l.state, LeaseState::Offered | LeaseState::Declined) && !l.holds(now) {
                continue;
            }
            // A lease outside every pool and reservation of its subnet (the pool shrank or went)
            // is not renewed any more: the client is told no and moves.
            let placed = cfg.subnets.iter().any(|s| s.id == l.subnet && s.pool_of(l.addr).is_some());
            if !placed && !reserved.contains(&l.addr) {
                continue;
            }
            let home = if reserved.contains(&l.addr) { db.reserved_home(l.addr) } else { db.shard_of(&l.chaddr) };
            per_shard[home].push(l);
        }
        // Shards fill in parallel: each has its own lock, pool owner bytes are atomics.
        let contested: Vec<Lease> = std::thread::scope(|scope| {
            let threads: Vec<_> = per_shard
                .into_iter()
                .enumerate()
                .map(|(shard, list)| {
                    let db = &db;
                    scope.spawn(move || db.fill_shard(shard, list, now))
                })
                .collect();
            threads.into_iter().flat_map(|t| t.join().unwrap_or_default()).collect()
        });
        // An address two shards' records claimed (a remembered record and a binding, after
        // the address moved between shards): the better record goes to the shard that owns the
        // address (requests of its client are redirected there).
        for l in contested {
            let Some((pi, off)) = db.locate(l.addr) else { continue };
            let owner = usize::from(db.pools[pi].owner(off));
            let Some(m) = db.shards.get(owner) else { continue };
            let mut sh = lock(m);
            let better = match sh.by_addr.get(&u32::from(l.addr)) {
                Some(&i) => {
                    let cur = sh.leases[i as usize];
                    (l.holds(now), l.expires) > (cur.holds(now), cur.expires)
                }
                None => true,
            };
            if better {
                sh.put_unjournaled(l);
                sh.changes.clear();
            }
        }
        db
    }

    /// Fills shard `shard` with `list`; returns the records whose address another shard took
    /// first.
    fn fill_shard(&self, shard: usize, list: Vec<Lease>, now: u32) -> Vec<Lease> {
        let mut contested = vec![];
        let mut sh = lock(&self.shards[shard]);
        sh.leases.reserve(list.len());
        sh.by_addr.reserve(list.len());
        sh.reserve_keys(list.len());
        for l in list {
            // A record's address is owned by its shard; a conflict (two records on one address,
            // which a sound journal never holds) keeps the one that expires last.
            if let Some(&other) = sh.by_addr.get(&u32::from(l.addr))
                && sh.leases[other as usize].expires >= l.expires
            {
                continue;
            }
            // Two records of one key (an unscoped record of an older format beside a newer
            // one, or two subnets a reload joined into one shared network): the one held
            // longest stays, the other's address is free again.
            if let Some(i) = sh.find(&l.key) {
                let cur = sh.leases[i as usize];
                if (cur.holds(now), cur.expires) >= (l.holds(now), l.expires) {
                    // Its address was not claimed for it (it stays spare, or another record's).
                    continue;
                }
                // The replaced record's address: on the free list already unless it was held.
                if cur.addr != l.addr
                    && cur.holds(now)
                    && let Some((pi, off)) = self.locate(cur.addr)
                    && self.pools[pi].owner(off) == sh.id
                {
                    sh.free[pi].push_back(u32::from(cur.addr));
                }
            }
            if let Some((pi, off)) = self.locate(l.addr) {
                let owner = &self.pools[pi].owner[off];
                match owner.compare_exchange(SPARE, sh.id, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        if !l.holds(now) {
                            sh.free[pi].push_back(u32::from(l.addr));
                        }
                    }
                    Err(o) if o != RESERVED && o != sh.id => {
                        contested.push(l);
                        continue;
                    }
                    Err(_) => {}
                }
            }
            if l.state == LeaseState::Declined
                && l.holds(now)
                && let Some((pi, _)) = self.locate(l.addr)
            {
                self.pools[pi].declined.fetch_add(1, Ordering::Relaxed);
            }
            sh.put_unjournaled(l);
        }
        // Recovery rebuilds from the journal; nothing here is new to it.
        sh.changes.clear();
        contested
    }

    /// The lease scope of subnet `id` ([`Config::scope_of`]).
    pub fn scope_of(&self, id: u32) -> u32 {
        self.scopes.iter().find(|&&(s, _)| s == id).map_or(id, |&(_, scope)| scope)
    }

    /// `l` with its key in the lease scope of its subnet (a lease read from elsewhere: the
    /// shared database, an edit through the management API).
    pub fn scoped(&self, mut l: Lease) -> Lease {
        l.key = l.key.rescoped(self.scope_of(l.subnet));
        l
    }

    /// The DHCPv6 table, locked (a panic while it was held left it whole: every operation on it
    /// completes before returning). Changes made under this lock are numbered under it.
    pub fn table6(&self) -> MutexGuard<'_, v6::Table6> {
        lock(&self.v6)
    }

    /// Replaces the DHCPv6 table with one for `cfg` holding `leases` where they fit (recovery,
    /// or a reload that changed the v6 pools).
    pub fn restore6(&self, cfg: &Config, leases: Vec<v6::Lease6>, now: u32) {
        *lock(&self.v6) = v6::Table6::new(cfg, leases, now);
    }

    /// Marks this database as replaced (after a reload rebuilt the tables): a worker that
    /// locks one of its shards afterwards must switch to the new one.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Whether [`retire`](Self::retire) was called.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Locks every shard (in order) and returns all records; the guards keep the shards
    /// frozen while a replacement is built.
    pub fn freeze(&self) -> (Vec<ShardGuard<'_>>, Vec<Lease>) {
        let guards: Vec<ShardGuard<'_>> = (0..self.shards.len()).map(|i| self.lock(i)).collect();
        let mut all = vec![];
        for g in &guards {
            all.extend(g.shard.leases.iter().filter(|l| l.key.len != 0).copied());
        }
        (guards, all)
    }

    /// Gives the records of the keys in `attrs` their attributes back (recovery, a reload, an
    /// import; not journaled: they are already).
    pub fn restore_attrs(&self, attrs: &AttrMap) {
        if attrs.is_empty() {
            return;
        }
        for m in &self.shards {
            let mut sh = lock(m);
            let sh = &mut *sh;
            for (i, l) in sh.leases.iter().enumerate() {
                if l.key.len == 0 {
                    continue;
                }
                for a in Attr::ALL {
                    if let Some(v) = attrs.get(&(a, l.key)) {
                        sh.attrs[a as usize].insert(i as u32, v.clone());
                    }
                }
            }
        }
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Workers per lane.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The shard of worker `group` of lane `lane`.
    pub fn shard_index(&self, lane: usize, group: usize) -> usize {
        (lane * self.groups + group % self.groups) % self.shards.len()
    }

    /// The shard a client with this chaddr starts in (lane 0; its group by the XDP program's
    /// keyed hash).
    pub fn shard_of(&self, chaddr: &[u8; 6]) -> usize {
        dhcp_xdp_common::worker_for_chaddr(chaddr, self.steering_key, self.groups as u32) as usize
    }

    /// The shard every request for reserved address `addr` is decided in.
    pub fn reserved_home(&self, addr: Ipv4Addr) -> usize {
        (u32::from(addr).wrapping_mul(0x9e37_79b9) >> 8) as usize % self.shards.len()
    }

    /// Numbers `n` changes about to be journaled, returning the first of `n` consecutive
    /// sequence numbers. Call it under the lock of the shard that made them: the numbers of one
    /// key's changes then increase in the order the changes were made, whichever shard or
    /// journal file they end up in, and replay keeps the highest.
    pub fn stamp(&self, n: usize) -> u64 {
        self.seq.fetch_add(n as u64, Ordering::Relaxed)
    }

    /// `changes` with their sequence numbers, taken now ([`stamp`](Self::stamp): call it
    /// under the lock that ordered them).
    pub fn numbered<I: ExactSizeIterator<Item = Change>>(&self, changes: I) -> impl Iterator<Item = (u64, Change)> {
        let first = self.stamp(changes.len());
        changes.enumerate().map(move |(k, c)| (first + k as u64, c))
    }

    /// The next sequence number [`stamp`](Self::stamp) would hand out.
    pub fn next_seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// Continues the numbering after `seq` (recovery: after the highest number on disk).
    pub fn continue_after(&self, seq: u64) {
        self.seq.fetch_max(seq.saturating_add(1), Ordering::Relaxed);
    }

    /// Locks shard `i` (a worker holds it for one batch; the control loop briefly).
    pub fn lock(&self, i: usize) -> ShardGuard<'_> {
        ShardGuard { db: self, shard: lock(&self.shards[i % self.shards.len()]), asker: shard::Asker::default() }
    }

    fn locate(&self, a: Ipv4Addr) -> Option<(usize, usize)> {
        self.pools.iter().enumerate().find_map(|(i, p)| p.offset(a).map(|o| (i, o)))
    }

    /// All records (for snapshots and reloads).
    pub fn all_leases(&self) -> Vec<Lease> {
        let mut v = vec![];
        for s in &self.shards {
            v.extend(lock(s).leases.iter().filter(|l| l.expires != 0 || l.state != LeaseState::Expired).copied());
        }
        v
    }

    /// Counts by state over all shards.
    pub fn census(&self, now: u32) -> Census {
        let mut c = Census::default();
        for s in &self.shards {
            for l in &lock(s).leases {
                if l.key.len == 0 {
                    continue;
                }
                match l.state {
                    LeaseState::Offered if l.holds(now) => c.offered += 1,
                    LeaseState::Bound if l.holds(now) => c.bound += 1,
                    LeaseState::Declined if l.holds(now) => c.declined += 1,
                    _ => c.remembered += 1,
                }
            }
        }
        c
    }

    /// Bound leases per pool (utilisation), in config order.
    pub fn pool_usage(&self, now: u32) -> Vec<(u32, Ipv4Addr, u32, u64)> {
        let mut used = vec![0u64; self.pools.len()];
        for s in &self.shards {
            for l in &lock(s).leases {
                if l.key.len != 0
                    && l.holds(now)
                    && let Some((pi, _)) = self.locate(l.addr)
                {
                    used[pi] += 1;
                }
            }
        }
        self.pools.iter().zip(used).map(|(p, u)| (p.subnet, Ipv4Addr::from(p.start), p.len, u)).collect()
    }

    /// Expires lapsed bindings, offers and probations in shard `i`, at most `max` records
    /// examined; the changes are returned for the journal, numbered under the shard's lock.
    pub fn sweep(&self, i: usize, now: u32, max: usize) -> Vec<(u64, Change)> {
        let mut g = self.lock(i);
        g.sweep(now, max);
        self.numbered(g.take_changes().into_iter()).collect()
    }
}
