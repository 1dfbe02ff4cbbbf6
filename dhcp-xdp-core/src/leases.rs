//! Lease tables: one shard per worker, O(1) allocation, affinity, and the pools' address
//! ownership.
//!
//! A shard owns its clients' leases (the XDP hash always sends a client to the same worker) and
//! the addresses in its free lists. Every pool address has an owner byte: a shard, the pool's
//! spare set, or "reserved". A shard whose free list runs dry claims a block from the spare set
//! (the one cross-shard lock) or, when the spare set is empty, takes free addresses from another
//! shard it can lock without waiting. Nothing here reads a clock or does I/O: callers pass `now`
//! (Unix seconds) and collect the [`Change`]s to journal.

use std::{
    collections::VecDeque,
    net::Ipv4Addr,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU8, Ordering},
    },
};

use hashbrown::{HashMap, HashTable};

use crate::config::Config;

/// Owner byte of an address in the spare set.
const SPARE: u8 = 255;
/// Owner byte of an address reserved for one client (never allocated dynamically).
const RESERVED: u8 = 254;
/// Most shards (owner bytes below [`RESERVED`]).
pub const MAX_SHARDS: usize = 250;

/// The identity a lease is kept under: option 61 when present, else htype + chaddr.
///
/// Hashed and compared in whole (unaligned) words; an Ethernet key is built as one word and
/// stored in one go, so reading it back never waits on narrower stores. Not aligned on purpose:
/// at 33 bytes a lease costs about 80 bytes of memory all told; 8-byte alignment made it 95, for
/// no measurable speed.
#[derive(Clone, Copy, Eq)]
pub struct ClientKey {
    bytes: [u8; 32],
    len: u8,
}

impl std::hash::Hash for ClientKey {
    /// Consistent with `eq`: the bytes past `len` are zero in every key.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u8(self.len);
        state.write(&self.bytes);
    }
}

impl PartialEq for ClientKey {
    /// Word by word (bytes past `len` are always zero): the lease tables compare keys on every
    /// lookup, and a byte-array comparison is a libc call.
    fn eq(&self, other: &Self) -> bool {
        let diff = self.words().iter().zip(other.words()).fold(0, |d, (a, b)| d | (a ^ b));
        self.len == other.len && diff == 0
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.as_bytes();
        write!(f, "{}:", if b.first() == Some(&0) { "id" } else { "hw" })?;
        for x in b.iter().skip(1) {
            write!(f, "{x:02x}")?;
        }
        Ok(())
    }
}

impl ClientKey {
    fn from_tagged(tag: u8, data: &[u8]) -> Self {
        let mut bytes = [0u8; 32];
        bytes[0] = tag;
        if data.len() <= 31 {
            bytes[1..1 + data.len()].copy_from_slice(data);
            return Self { len: 1 + data.len() as u8, bytes };
        }
        // Long identifiers: 23 leading bytes and a 64-bit FNV-1a of the whole.
        bytes[1..24].copy_from_slice(&data[..23]);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        bytes[24..32].copy_from_slice(&h.to_be_bytes());
        Self { len: 32, bytes }
    }
    /// Key from a client identifier (option 61).
    pub fn client_id(id: &[u8]) -> Self {
        Self::from_tagged(0, id)
    }
    /// Key from htype and chaddr.
    #[inline]
    pub fn hw(htype: u8, chaddr: &[u8]) -> Self {
        if let Ok(&[a, b, c, d, e, f]) = <&[u8; 6]>::try_from(chaddr) {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&u64::from_le_bytes([1, htype, a, b, c, d, e, f]).to_le_bytes());
            return Self { len: 8, bytes };
        }
        let n = chaddr.len().min(16);
        let mut bytes = [0u8; 32];
        bytes[0] = 1;
        bytes[1] = htype;
        bytes[2..2 + n].copy_from_slice(&chaddr[..n]);
        Self { len: 2 + n as u8, bytes }
    }
    fn words(&self) -> [u64; 4] {
        std::array::from_fn(|i| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&self.bytes[8 * i..8 * i + 8]);
            u64::from_ne_bytes(w)
        })
    }
    /// Key holding a declined address on probation.
    pub fn declined(addr: Ipv4Addr) -> Self {
        Self::from_tagged(2, &addr.octets())
    }
    /// The encoded key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
    /// Rebuilds a key from [`as_bytes`](Self::as_bytes) output.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.is_empty() || b.len() > 32 {
            return None;
        }
        let mut bytes = [0u8; 32];
        bytes[..b.len()].copy_from_slice(b);
        Some(Self { len: b.len() as u8, bytes })
    }
    /// In-memory table hash (never stored): the four words of the zero-padded key multiplied
    /// independently, then one folded 128-bit multiply to spread every bit over the result.
    fn hash64(&self) -> u64 {
        const K: [u64; 4] =
            [0x9e37_79b9_7f4a_7c15, 0xc2b2_ae3d_27d4_eb4f, 0x1656_67b1_9e37_79f9, 0xd6e8_feb8_6659_fd93];
        let mut acc = u64::from(self.len);
        for (w, k) in self.words().into_iter().zip(K) {
            acc ^= w.wrapping_mul(k);
        }
        let m = u128::from(acc ^ 0x2d35_8dcc_aa6c_78a5) * u128::from(0x8bb8_4b93_962e_acc9u64);
        (m as u64) ^ ((m >> 64) as u64)
    }
}

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Insert or replace the record of `key`.
    Upsert(Lease),
    /// Forget the record of this key.
    Remove(ClientKey),
}

/// Why no address could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// Every pool of the candidate subnets is exhausted.
    #[error("no free address")]
    NoAddress,
    /// The address is held by another client or owned by another shard.
    #[error("address not available to this client")]
    Unavailable,
}

/// Shared per-pool state: owner bytes and the spare set of blocks.
pub struct PoolState {
    /// Subnet id.
    pub subnet: u32,
    /// First address.
    pub start: u32,
    /// Number of addresses.
    pub len: u32,
    owner: Vec<AtomicU8>,
    spare: Mutex<Vec<u32>>,
    /// Set once the spare set is empty, so shards stop taking its lock for nothing.
    spare_empty: std::sync::atomic::AtomicBool,
    block: u32,
}

impl PoolState {
    fn offset(&self, a: Ipv4Addr) -> Option<usize> {
        let a = u32::from(a);
        (a >= self.start && a - self.start < self.len).then(|| (a - self.start) as usize)
    }
    fn owner(&self, off: usize) -> u8 {
        // Relaxed: an owner byte only changes hands under the spare lock or the two shards'
        // locks, which order it with everything else the new owner does.
        self.owner[off].load(Ordering::Relaxed)
    }
}

/// One shard's tables.
pub struct Shard {
    id: u8,
    leases: Vec<Lease>,
    vacant: Vec<u32>,
    by_key: HashTable<u32>,
    by_addr: HashMap<u32, u32>,
    free: Vec<VecDeque<u32>>,
    changes: Vec<Change>,
    sweep_cursor: usize,
    /// Index of the record [`Shard::find`] found last.
    last_found: std::cell::Cell<u32>,
}

/// All shards and pools.
pub struct LeaseDb {
    shards: Vec<Mutex<Shard>>,
    pools: Vec<PoolState>,
    retired: std::sync::atomic::AtomicBool,
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
        let shards = shards.clamp(1, MAX_SHARDS);
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
                let spare: Vec<u32> = (0..len.div_ceil(block)).rev().map(|b| b * block).collect();
                pools.push(PoolState {
                    subnet: s.id,
                    start: u32::from(p.start),
                    len,
                    owner,
                    spare: Mutex::new(spare),
                    spare_empty: std::sync::atomic::AtomicBool::new(false),
                    block,
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
                        sweep_cursor: 0,
                        last_found: std::cell::Cell::new(0),
                    })
                })
                .collect(),
            pools,
            retired: std::sync::atomic::AtomicBool::new(false),
        };
        // Group by shard first, so each shard is locked once and its tables are sized once.
        let mut per_shard: Vec<Vec<Lease>> = vec![vec![]; db.shards.len()];
        for l in leases {
            if l.state == LeaseState::Offered || !l.holds(now) && l.state == LeaseState::Declined {
                continue;
            }
            if !cfg.subnets.iter().any(|s| s.id == l.subnet && s.contains(l.addr)) {
                continue;
            }
            per_shard[db.shard_of(&l.chaddr)].push(l);
        }
        // Shards fill in parallel: each has its own lock, pool owner bytes are atomics.
        std::thread::scope(|scope| {
            for (shard, list) in per_shard.into_iter().enumerate() {
                let db = &db;
                scope.spawn(move || db.fill_shard(shard, list, now));
            }
        });
        db
    }

    fn fill_shard(&self, shard: usize, list: Vec<Lease>, now: u32) {
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
            if let Some((pi, off)) = self.locate(l.addr) {
                let owner = &self.pools[pi].owner[off];
                match owner.compare_exchange(SPARE, sh.id, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        if !l.holds(now) {
                            sh.free[pi].push_back(u32::from(l.addr));
                        }
                    }
                    Err(o) if o != RESERVED && o != sh.id => continue,
                    Err(_) => {}
                }
            }
            sh.put_unjournaled(l);
        }
        // Recovery rebuilds from the journal; nothing here is new to it.
        sh.changes.clear();
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

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard owning the client with this chaddr (same hash as the XDP program).
    pub fn shard_of(&self, chaddr: &[u8; 6]) -> usize {
        dhcp_xdp_common::worker_for_chaddr(chaddr, self.shards.len() as u32) as usize
    }

    /// Locks shard `i` (a worker holds it for one batch; the control loop briefly).
    pub fn lock(&self, i: usize) -> ShardGuard<'_> {
        ShardGuard { db: self, shard: lock(&self.shards[i % self.shards.len()]) }
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
    /// examined; the changes are returned for the journal.
    pub fn sweep(&self, i: usize, now: u32, max: usize) -> Vec<Change> {
        let mut g = self.lock(i);
        g.sweep(now, max);
        g.take_changes()
    }
}

/// A locked shard with access to the shared pool states.
pub struct ShardGuard<'a> {
    db: &'a LeaseDb,
    shard: MutexGuard<'a, Shard>,
}

impl Shard {
    fn reserve_keys(&mut self, n: usize) {
        let leases = &self.leases;
        self.by_key.reserve(n, |&j| leases[j as usize].key.hash64());
    }

    fn find(&self, key: &ClientKey) -> Option<u32> {
        // Lookups come in pairs (the engine reads a client's record, then binds it), so the
        // last hit is tried first. A stale index cannot mislead: a removed record's key is
        // cleared, and a key is held by one record at most.
        let last = self.last_found.get();
        if self.leases.get(last as usize).is_some_and(|l| l.key == *key) {
            return Some(last);
        }
        let leases = &self.leases;
        let i = *self.by_key.find(key.hash64(), |&i| leases[i as usize].key == *key)?;
        self.last_found.set(i);
        Some(i)
    }

    /// Inserts or replaces the record of `l.key` and journals it.
    fn put(&mut self, l: Lease) -> u32 {
        let idx = self.put_unjournaled(l);
        self.changes.push(Change::Upsert(l));
        idx
    }

    /// Inserts or replaces the record of `l.key`, keeping both indexes right, without a journal
    /// record of its own: offers (a restart forgets them, as clients expect) and recovery. A
    /// remembered record that loses its address is still journaled as removed.
    fn put_unjournaled(&mut self, l: Lease) -> u32 {
        let idx = match self.find(&l.key) {
            Some(i) => {
                let old = self.leases[i as usize];
                if old.addr != l.addr && self.by_addr.get(&u32::from(old.addr)) == Some(&i) {
                    self.by_addr.remove(&u32::from(old.addr));
                }
                self.leases[i as usize] = l;
                i
            }
            None => {
                let i = match self.vacant.pop() {
                    Some(i) => {
                        self.leases[i as usize] = l;
                        i
                    }
                    None => {
                        self.leases.push(l);
                        (self.leases.len() - 1) as u32
                    }
                };
                let leases = &self.leases;
                self.by_key.insert_unique(l.key.hash64(), i, |&j| leases[j as usize].key.hash64());
                i
            }
        };
        // A previous holder of this address (a remembered record) loses it.
        if let Some(prev) = self.by_addr.insert(u32::from(l.addr), idx)
            && prev != idx
        {
            self.remove_idx(prev);
        }
        idx
    }

    fn remove_idx(&mut self, i: u32) {
        let l = self.leases[i as usize];
        let hash = l.key.hash64();
        if let Ok(e) = self.by_key.find_entry(hash, |&j| j == i) {
            e.remove();
        }
        if self.by_addr.get(&u32::from(l.addr)) == Some(&i) {
            self.by_addr.remove(&u32::from(l.addr));
        }
        self.leases[i as usize].key = ClientKey { len: 0, bytes: [0; 32] };
        self.vacant.push(i);
        self.changes.push(Change::Remove(l.key));
    }
}

impl ShardGuard<'_> {
    /// Every record of this shard (snapshots).
    pub fn records(&self) -> impl Iterator<Item = Lease> + '_ {
        self.shard.leases.iter().filter(|l| l.key.len != 0 && l.state != LeaseState::Offered).copied()
    }

    /// The record of `key`.
    pub fn get(&self, key: &ClientKey) -> Option<Lease> {
        self.shard.find(key).map(|i| self.shard.leases[i as usize])
    }

    /// The record holding `addr` in this shard.
    pub fn by_addr(&self, addr: Ipv4Addr) -> Option<Lease> {
        self.shard.by_addr.get(&u32::from(addr)).map(|&i| self.shard.leases[i as usize])
    }

    /// Changes made since the last call (to journal).
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.shard.changes)
    }

    /// Appends the changes made since the last call to `out`.
    pub fn drain_changes(&mut self, out: &mut Vec<Change>) {
        out.append(&mut self.shard.changes);
    }

    /// Whether `addr` can be given to `key` now: inside a pool, owned by this shard (or
    /// claimable from the spare set), not held by another client. Reserved addresses are the
    /// caller's business.
    pub fn available(&mut self, addr: Ipv4Addr, key: &ClientKey, now: u32) -> bool {
        let Some((pi, off)) = self.db.locate(addr) else {
            return false;
        };
        let pool = &self.db.pools[pi];
        let me = self.shard.id;
        match pool.owner(off) {
            o if o == me => {}
            SPARE => {
                // Claim this one address out of the spare set.
                let _spare = lock(&pool.spare);
                if pool.owner[off].compare_exchange(SPARE, me, Ordering::Relaxed, Ordering::Relaxed).is_err() {
                    return false;
                }
            }
            _ => return false,
        }
        match self.by_addr(addr) {
            Some(l) => l.key == *key || !l.holds(now),
            None => true,
        }
    }

    /// Offers an address to `key`: its reserved one, else its current or remembered one when
    /// still free, else `hint` when free, else the next free address of `pools` (indexes into
    /// the flattened pool list of `subnets`), oldest-freed first.
    #[allow(clippy::too_many_arguments)]
    pub fn offer(
        &mut self,
        now: u32,
        hold: u32,
        key: &ClientKey,
        chaddr: [u8; 6],
        subnets: &[u32],
        // By reference: a by-value copy of this pair waits on the narrower stores that built it.
        reserved: Option<&(Ipv4Addr, u32)>,
        hint: Option<Ipv4Addr>,
    ) -> Result<(Ipv4Addr, u32), LeaseError> {
        // Fast path: the client still holds an address in one of these subnets (an offer not yet
        // taken, or a binding): offer it again without touching its state — a bound lease stays
        // bound until its REQUEST, an offer gets a fresh hold.
        if reserved.is_none()
            && let Some(i) = self.shard.find(key)
        {
            let l = &mut self.shard.leases[i as usize];
            if matches!(l.state, LeaseState::Offered | LeaseState::Bound) && l.holds(now) && subnets.contains(&l.subnet)
            {
                if l.state == LeaseState::Offered {
                    l.expires = now.saturating_add(hold);
                }
                return Ok((l.addr, l.subnet));
            }
        }
        let in_subnets =
            |db: &LeaseDb, a: Ipv4Addr| db.locate(a).map(|(pi, _)| db.pools[pi].subnet).filter(|s| subnets.contains(s));
        let pick = if let Some(&(a, subnet)) = reserved {
            match self.by_addr(a) {
                Some(l) if l.key != *key && l.holds(now) => return Err(LeaseError::Unavailable),
                _ => Some((a, subnet)),
            }
        } else if let Some(l) = self.get(key).filter(|l| l.state != LeaseState::Declined)
            && let Some(s) = in_subnets(self.db, l.addr)
            && self.available(l.addr, key, now)
        {
            Some((l.addr, s))
        } else if let Some(h) = hint
            && let Some(s) = in_subnets(self.db, h)
            && self.available(h, key, now)
        {
            Some((h, s))
        } else {
            None
        };
        let (addr, subnet) = match pick {
            Some(p) => p,
            None => self.allocate(now, subnets)?,
        };
        // The client's old address, if it was still held, goes back to the free list.
        if let Some(old) = self.get(key)
            && old.addr != addr
            && old.holds(now)
        {
            self.push_free(old.addr);
        }
        self.shard.put_unjournaled(Lease {
            key: *key,
            chaddr,
            addr,
            expires: now.saturating_add(hold),
            state: LeaseState::Offered,
            subnet,
        });
        Ok((addr, subnet))
    }

    /// Binds `addr` to `key` until `now + lease_time`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn bind(
        &mut self,
        now: u32,
        key: ClientKey,
        chaddr: [u8; 6],
        addr: Ipv4Addr,
        subnet: u32,
        lease_time: u32,
        reserved: bool,
    ) -> Result<Lease, LeaseError> {
        // Fast path (inlined, so a caller that ignores the record does not copy it):
        // confirming or renewing the address this client holds.
        if let Some(i) = self.shard.find(&key) {
            let l = &mut self.shard.leases[i as usize];
            if l.addr == addr
                && l.subnet == subnet
                && matches!(l.state, LeaseState::Offered | LeaseState::Bound)
                && l.holds(now)
            {
                l.state = LeaseState::Bound;
                l.expires = now.saturating_add(lease_time);
                l.chaddr = chaddr;
                let l = *l;
                self.shard.changes.push(Change::Upsert(l));
                return Ok(l);
            }
        }
        self.bind_new(now, key, chaddr, addr, subnet, lease_time, reserved)
    }

    /// [`bind`](Self::bind) of an address the client does not hold yet.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn bind_new(
        &mut self,
        now: u32,
        key: ClientKey,
        chaddr: [u8; 6],
        addr: Ipv4Addr,
        subnet: u32,
        lease_time: u32,
        reserved: bool,
    ) -> Result<Lease, LeaseError> {
        if !reserved && !self.available(addr, &key, now) {
            return Err(LeaseError::Unavailable);
        }
        if reserved
            && let Some(l) = self.by_addr(addr)
            && l.key != key
            && l.holds(now)
        {
            return Err(LeaseError::Unavailable);
        }
        if let Some(old) = self.get(&key)
            && old.addr != addr
            && old.holds(now)
        {
            self.push_free(old.addr);
        }
        let l = Lease { key, chaddr, addr, expires: now.saturating_add(lease_time), state: LeaseState::Bound, subnet };
        self.shard.put(l);
        Ok(l)
    }

    /// Client gave `addr` back: the address is free again, the record stays for affinity.
    pub fn release(&mut self, key: &ClientKey, addr: Ipv4Addr, now: u32) -> bool {
        match self.get(key) {
            Some(mut l) if l.addr == addr && l.holds(now) => {
                l.state = LeaseState::Released;
                l.expires = now;
                self.shard.put(l);
                self.push_free(addr);
                true
            }
            _ => false,
        }
    }

    /// Client found `addr` in use: it goes on probation until `now + probation`, and the client
    /// will be offered another one.
    pub fn decline(&mut self, key: &ClientKey, addr: Ipv4Addr, now: u32, probation: u32) -> bool {
        match self.get(key) {
            Some(l) if l.addr == addr && l.holds(now) => {
                let i = self.shard.find(key).expect("just found");
                self.shard.remove_idx(i);
                let held = Lease {
                    key: ClientKey::declined(addr),
                    chaddr: l.chaddr,
                    addr,
                    expires: now.saturating_add(probation),
                    state: LeaseState::Declined,
                    subnet: l.subnet,
                };
                self.shard.put(held);
                true
            }
            _ => false,
        }
    }

    /// Forgets an offer (the client chose another server).
    pub fn forget_offer(&mut self, key: &ClientKey, now: u32) {
        if let Some(l) = self.get(key)
            && l.state == LeaseState::Offered
            && l.holds(now)
        {
            let mut l2 = l;
            l2.state = LeaseState::Expired;
            l2.expires = now;
            self.shard.put_unjournaled(l2);
            self.push_free(l.addr);
        }
    }

    fn push_free(&mut self, addr: Ipv4Addr) {
        if let Some((pi, off)) = self.db.locate(addr)
            && self.db.pools[pi].owner(off) == self.shard.id
        {
            let shard = &mut *self.shard;
            let q = &mut shard.free[pi];
            q.push_back(u32::from(addr));
            // Lazy deletion leaves stale entries (addresses taken again while listed); compact
            // when they could outnumber the pool: amortised O(1).
            if q.len() > 64 && q.len() > 2 * self.db.pools[pi].len as usize {
                let (leases, by_addr) = (&shard.leases, &shard.by_addr);
                let mut seen = hashbrown::HashSet::new();
                q.retain(|a| {
                    let taken = by_addr.get(a).is_some_and(|&i| {
                        matches!(
                            leases[i as usize].state,
                            LeaseState::Bound | LeaseState::Offered | LeaseState::Declined
                        )
                    });
                    !taken && seen.insert(*a)
                });
            }
        }
    }

    /// Next free address of the candidate subnets' pools.
    fn allocate(&mut self, now: u32, subnets: &[u32]) -> Result<(Ipv4Addr, u32), LeaseError> {
        for &subnet in subnets {
            for pi in 0..self.db.pools.len() {
                if self.db.pools[pi].subnet != subnet {
                    continue;
                }
                if let Some(a) = self.pop_free(pi, now) {
                    return Ok((a, subnet));
                }
            }
        }
        Err(LeaseError::NoAddress)
    }

    fn pop_free(&mut self, pi: usize, now: u32) -> Option<Ipv4Addr> {
        // Never-used addresses first: while the spare set has blocks, an address remembered for
        // a departed client's affinity waits behind fresh ones.
        if let Some(&front) = self.shard.free[pi].front()
            && self.shard.by_addr.contains_key(&front)
            && !self.db.pools[pi].spare_empty.load(Ordering::Relaxed)
        {
            self.claim_block(pi);
        }
        for _round in 0..3 {
            while let Some(a) = self.shard.free[pi].pop_front() {
                let addr = Ipv4Addr::from(a);
                let pool = &self.db.pools[pi];
                let Some(off) = pool.offset(addr) else {
                    continue;
                };
                if pool.owner(off) != self.shard.id {
                    continue;
                }
                match self.by_addr(addr) {
                    Some(l) if l.holds(now) => continue,
                    _ => return Some(addr),
                }
            }
            if !self.claim_block(pi) && !self.steal(pi, now) {
                return None;
            }
        }
        None
    }

    /// Moves one block of the pool's spare set into this shard's free list.
    fn claim_block(&mut self, pi: usize) -> bool {
        let pool = &self.db.pools[pi];
        if pool.spare_empty.load(Ordering::Relaxed) {
            return false;
        }
        let me = self.shard.id;
        let mut spare = lock(&pool.spare);
        while let Some(b) = spare.pop() {
            let end = (b + pool.block).min(pool.len);
            let mut got = false;
            // Fresh addresses go to the front, in ascending order.
            for off in (b..end).rev() {
                if pool.owner[off as usize].compare_exchange(SPARE, me, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                    self.shard.free[pi].push_front(pool.start + off);
                    got = true;
                }
            }
            if got {
                return true;
            }
        }
        pool.spare_empty.store(true, Ordering::Relaxed);
        false
    }

    /// Takes up to a block's worth of free addresses from another shard that is not busy.
    fn steal(&mut self, pi: usize, now: u32) -> bool {
        let pool = &self.db.pools[pi];
        let me = self.shard.id;
        let mut got = false;
        for (i, other) in self.db.shards.iter().enumerate() {
            if i == usize::from(me) {
                continue;
            }
            let Ok(mut o) = other.try_lock() else {
                continue;
            };
            let mut taken = 0;
            while taken < pool.block
                && let Some(a) = o.free[pi].pop_front()
            {
                let Some(off) = pool.offset(Ipv4Addr::from(a)) else {
                    continue;
                };
                let held = o.by_addr.get(&a).map(|&j| o.leases[j as usize].holds(now)).unwrap_or(false);
                if held || pool.owner(off) != o.id {
                    continue;
                }
                if let Some(&j) = o.by_addr.get(&a) {
                    o.remove_idx(j);
                }
                pool.owner[off].store(me, Ordering::Relaxed);
                self.shard.free[pi].push_back(a);
                taken += 1;
                got = true;
            }
            if got {
                break;
            }
        }
        got
    }

    /// Expiry step, see [`LeaseDb::sweep`].
    pub fn sweep(&mut self, now: u32, max: usize) {
        let n = self.shard.leases.len();
        if n == 0 {
            return;
        }
        for _ in 0..max.min(n) {
            let i = self.shard.sweep_cursor % n;
            self.shard.sweep_cursor = (i + 1) % n;
            let l = self.shard.leases[i];
            if l.key.len == 0 || l.holds(now) {
                continue;
            }
            match l.state {
                LeaseState::Bound => {
                    let mut e = l;
                    e.state = LeaseState::Expired;
                    self.shard.put(e);
                    self.push_free(l.addr);
                }
                LeaseState::Offered => {
                    let mut e = l;
                    e.state = LeaseState::Expired;
                    self.shard.put_unjournaled(e);
                    self.push_free(l.addr);
                }
                LeaseState::Declined => {
                    self.shard.remove_idx(i as u32);
                    self.push_free(l.addr);
                }
                LeaseState::Released | LeaseState::Expired => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Ipv4Net;

    fn cfg(prefix_pool: &str) -> Config {
        Config::parse(
            "t.toml",
            &format!("[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"{prefix_pool}\"\n[[subnet.reservation]]\nhw-address = \"02:00:00:00:00:ee\"\nip = \"198.18.0.12\"\n"),
        )
        .unwrap()
    }

    fn key(i: u8) -> (ClientKey, [u8; 6]) {
        let mac = [2, 0, 0, 0, 1, i];
        (ClientKey::hw(1, &mac), mac)
    }

    #[test]
    fn ethernet_keys_encode_like_any_other_hardware_key() {
        let mac = [2, 0, 0, 0, 1, 9];
        let k = ClientKey::hw(1, &mac);
        assert_eq!(k.as_bytes(), &[1, 1, 2, 0, 0, 0, 1, 9]);
        assert_eq!(ClientKey::from_bytes(k.as_bytes()), Some(k));
        assert_eq!(k.hash64(), ClientKey::from_bytes(k.as_bytes()).unwrap().hash64());
        assert_ne!(k, ClientKey::hw(6, &mac), "htype is part of the key");
        let long = ClientKey::hw(32, &[7; 16]);
        assert_eq!(long.as_bytes().len(), 18);
        assert_ne!(ClientKey::hw(1, &[2, 0, 0, 0, 1, 9, 0]), k, "hlen is part of the key");
    }

    #[test]
    fn offer_bind_release_keeps_affinity() {
        let c = cfg("198.18.0.10-198.18.0.20");
        let db = LeaseDb::new(&c, 1, [], 1000);
        let mut g = db.lock(0);
        let (k, mac) = key(1);
        let (a, s) = g.offer(1000, 30, &k, mac, &[1], None, None).unwrap();
        assert_eq!(s, 1);
        assert_eq!(g.take_changes(), vec![], "offers are not journaled");
        let l = g.bind(1001, k, mac, a, 1, 3600, false).unwrap();
        assert_eq!(l.expires, 4601);
        assert_eq!(g.take_changes(), vec![Change::Upsert(l)]);
        assert!(g.release(&k, a, 1002));
        // Others take addresses; the released one is offered again to its client while free.
        for i in 2..5 {
            let (k2, m2) = key(i);
            let (b, _) = g.offer(1003, 30, &k2, m2, &[1], None, None).unwrap();
            assert_ne!(b, a, "freed address is reused last (FIFO)");
        }
        assert_eq!(g.offer(1004, 30, &k, mac, &[1], None, None).unwrap().0, a);
    }

    #[test]
    fn discover_from_a_bound_client_does_not_downgrade_its_lease() {
        let c = cfg("198.18.0.10-198.18.0.20");
        let db = LeaseDb::new(&c, 1, [], 0);
        let mut g = db.lock(0);
        let (k, m) = key(1);
        let (a, _) = g.offer(0, 30, &k, m, &[1], None, None).unwrap();
        g.bind(0, k, m, a, 1, 3600, false).unwrap();
        assert_eq!(g.offer(10, 30, &k, m, &[1], None, None).unwrap().0, a);
        let l = g.get(&k).unwrap();
        assert_eq!((l.state, l.expires), (LeaseState::Bound, 3600));
        g.sweep(100, 10);
        assert_eq!(g.get(&k).unwrap().state, LeaseState::Bound, "still bound after the offer hold");
        let renewed = g.bind(1000, k, m, a, 1, 3600, false).unwrap();
        assert_eq!(renewed.expires, 4600);
    }

    #[test]
    fn hint_is_honoured_when_free_and_refused_when_held() {
        let c = cfg("198.18.0.10-198.18.0.20");
        let db = LeaseDb::new(&c, 2, [], 0);
        let mut g = db.lock(0);
        let (k1, m1) = key(1);
        let want = Ipv4Addr::new(198, 18, 0, 15);
        assert_eq!(g.offer(0, 30, &k1, m1, &[1], None, Some(want)).unwrap().0, want);
        g.bind(1, k1, m1, want, 1, 100, false).unwrap();
        let (k2, m2) = key(2);
        assert_ne!(g.offer(2, 30, &k2, m2, &[1], None, Some(want)).unwrap().0, want);
        assert!(!g.available(Ipv4Addr::new(198, 18, 0, 12), &k2, 2), "reserved addresses are never dynamic");
    }

    #[test]
    fn full_pool_says_no_address_and_expiry_frees() {
        let c = cfg("198.18.0.10-198.18.0.13"); // .12 reserved → 3 dynamic addresses
        let db = LeaseDb::new(&c, 1, [], 0);
        let mut g = db.lock(0);
        for i in 0..3 {
            let (k, m) = key(i);
            let (a, _) = g.offer(0, 30, &k, m, &[1], None, None).unwrap();
            g.bind(0, k, m, a, 1, 100, false).unwrap();
        }
        let (k, m) = key(9);
        assert_eq!(g.offer(1, 30, &k, m, &[1], None, None), Err(LeaseError::NoAddress));
        g.take_changes();
        g.sweep(200, 100);
        assert!(g.take_changes().iter().all(|c| matches!(c, Change::Upsert(l) if l.state == LeaseState::Expired)));
        assert!(g.offer(201, 30, &k, m, &[1], None, None).is_ok());
    }

    #[test]
    fn unrequested_offers_lapse_and_return() {
        let c = cfg("198.18.0.10-198.18.0.10");
        let db = LeaseDb::new(&c, 1, [], 0);
        let mut g = db.lock(0);
        let (k1, m1) = key(1);
        let (k2, m2) = key(2);
        g.offer(0, 30, &k1, m1, &[1], None, None).unwrap();
        assert_eq!(g.offer(10, 30, &k2, m2, &[1], None, None), Err(LeaseError::NoAddress));
        g.sweep(31, 10);
        assert!(g.offer(31, 30, &k2, m2, &[1], None, None).is_ok());
    }

    #[test]
    fn decline_puts_address_on_probation() {
        let c = cfg("198.18.0.10-198.18.0.11");
        let db = LeaseDb::new(&c, 1, [], 0);
        let mut g = db.lock(0);
        let (k, m) = key(1);
        let (a, _) = g.offer(0, 30, &k, m, &[1], None, None).unwrap();
        g.bind(0, k, m, a, 1, 100, false).unwrap();
        assert!(g.decline(&k, a, 5, 1000));
        let (b, _) = g.offer(6, 30, &k, m, &[1], None, None).unwrap();
        assert_ne!(a, b, "declined address not offered again");
        let (k2, m2) = key(2);
        assert_eq!(g.offer(7, 30, &k2, m2, &[1], None, None), Err(LeaseError::NoAddress));
        g.sweep(2000, 10);
        g.sweep(2000, 10);
        assert_eq!(g.offer(2001, 30, &k2, m2, &[1], None, None).unwrap().0, a, "probation over");
    }

    #[test]
    fn shards_share_a_small_pool_by_blocks_and_stealing() {
        let c = cfg("198.18.0.10-198.18.0.19"); // 9 dynamic
        let db = LeaseDb::new(&c, 2, [], 0);
        let mut got = hashbrown::HashSet::new();
        for i in 0..9u8 {
            let mut g = db.lock(usize::from(i % 2));
            let (k, m) = key(i);
            let (a, _) = g.offer(0, 30, &k, m, &[1], None, None).expect("pool not full yet");
            g.bind(0, k, m, a, 1, 100, false).unwrap();
            assert!(got.insert(a), "{a} handed out twice");
        }
        let mut g = db.lock(0);
        let (k, m) = key(99);
        assert_eq!(g.offer(0, 30, &k, m, &[1], None, None), Err(LeaseError::NoAddress));
    }

    #[test]
    fn recovery_rehomes_records_and_keeps_them_bound() {
        let c = cfg("198.18.0.10-198.18.0.30");
        let (k, m) = key(7);
        let l = Lease {
            key: k,
            chaddr: m,
            addr: Ipv4Addr::new(198, 18, 0, 25),
            expires: 500,
            state: LeaseState::Bound,
            subnet: 1,
        };
        let db = LeaseDb::new(&c, 3, [l], 100);
        let s = db.shard_of(&m);
        let mut g = db.lock(s);
        assert_eq!(g.get(&k), Some(l));
        let (k2, _) = key(8);
        assert!(!g.available(l.addr, &k2, 101));
        drop(g);
        assert_eq!(db.census(100).bound, 1);
        let _ = Ipv4Net { addr: Ipv4Addr::LOCALHOST, prefix: 8 };
    }

    #[test]
    fn allocation_stays_fast_in_a_nearly_full_pool() {
        let c = Config::parse(
            "t",
            "[[subnet]]\nsubnet = \"198.18.0.0/15\"\n[[subnet.pool]]\nrange = \"198.18.0.1-198.19.255.254\"\n",
        )
        .unwrap();
        let db = LeaseDb::new(&c, 1, [], 0);
        let mut g = db.lock(0);
        let n = 131_070u32;
        for i in 0..n - 100 {
            let mac = [2, 1, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            let k = ClientKey::hw(1, &mac);
            let (a, _) = g.offer(0, 30, &k, mac, &[1], None, None).unwrap();
            g.bind(0, k, mac, a, 1, 1000, false).unwrap();
        }
        g.take_changes();
        let t = std::time::Instant::now();
        for i in 0..100u32 {
            let mac = [2, 9, 0, 0, 0, i as u8];
            g.offer(0, 30, &ClientKey::hw(1, &mac), mac, &[1], None, None).unwrap();
        }
        assert!(t.elapsed() < std::time::Duration::from_millis(50), "last 100 allocations took {:?}", t.elapsed());
        let mac = [2, 9, 9, 9, 9, 9];
        assert_eq!(g.offer(0, 30, &ClientKey::hw(1, &mac), mac, &[1], None, None), Err(LeaseError::NoAddress));
    }
}
