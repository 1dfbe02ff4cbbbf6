//! Address ownership across shards: every pool address has an owner byte (a shard, the spare
//! set, or reserved); a shard allocates only addresses it owns, claims blocks from the spare set
//! when it runs dry, and steals free addresses from a shard it can lock without waiting. An owner
//! byte changes hands only under the spare lock or both shards' locks.

use super::*;

/// Shared per-pool state: owner bytes and the spare set of blocks.
pub struct PoolState {
    /// Subnet id.
    pub subnet: u32,
    /// First address.
    pub start: u32,
    /// Number of addresses.
    pub len: u32,
    pub(super) owner: Vec<AtomicU8>,
    pub(super) spare: Mutex<Vec<u32>>,
    /// Set once the spare set is empty, so shards stop taking its lock for nothing.
    pub(super) spare_empty: std::sync::atomic::AtomicBool,
    pub(super) block: u32,
    /// Addresses of this pool on probation after a DECLINE (kept by decline, the sweep and
    /// the rebuild; read to cap how much of the pool DECLINEs can take out).
    pub(super) declined: std::sync::atomic::AtomicU32,
    /// Cluster mode: which of the pool's cluster blocks (`cluster_block` addresses each) this
    /// node holds in the shared database; only their addresses are handed to new clients.
    /// None outside cluster mode: every address may be.
    pub(super) granted: Option<Vec<std::sync::atomic::AtomicBool>>,
    pub(super) cluster_block: u32,
    /// Client classes that may draw from it (`client-class`; 0: every client).
    pub(super) classes: u64,
}

impl PoolState {
    pub(super) fn offset(&self, a: Ipv4Addr) -> Option<usize> {
        let a = u32::from(a);
        (a >= self.start && a - self.start < self.len).then(|| (a - self.start) as usize)
    }
    /// Whether a new client may be given the address at `off`: always outside cluster mode,
    /// else while this node holds its block.
    pub(super) fn granted(&self, off: usize) -> bool {
        self.granted
            .as_ref()
            .is_none_or(|g| g.get(off / self.cluster_block as usize).is_some_and(|b| b.load(Ordering::Acquire)))
    }
    pub(super) fn owner(&self, off: usize) -> u8 {
        // Relaxed: an owner byte only changes hands under the spare lock or the two shards'
        // locks, which order it with everything else the new owner does.
        self.owner[off].load(Ordering::Relaxed)
    }
}

impl ShardGuard<'_> {
    pub(super) fn push_free(&mut self, addr: Ipv4Addr) {
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

    /// Next free address of the candidate subnets' pools the asker's classes may draw from.
    pub(super) fn allocate(&mut self, now: u32, subnets: &[u32]) -> Result<(Ipv4Addr, u32), LeaseError> {
        for &subnet in subnets {
            for pi in 0..self.db.pools.len() {
                if self.db.pools[pi].subnet != subnet || !self.asker.may_use(&self.db.pools[pi]) {
                    continue;
                }
                if let Some(a) = self.pop_free(pi, now) {
                    return Ok((a, subnet));
                }
            }
        }
        Err(LeaseError::NoAddress)
    }

    pub(super) fn pop_free(&mut self, pi: usize, now: u32) -> Option<Ipv4Addr> {
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
                if pool.owner(off) != self.shard.id || !pool.granted(off) {
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
    pub(super) fn claim_block(&mut self, pi: usize) -> bool {
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
                if pool.granted(off as usize)
                    && pool.owner[off as usize]
                        .compare_exchange(SPARE, me, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
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
    pub(super) fn steal(&mut self, pi: usize, now: u32) -> bool {
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
                if held || pool.owner(off) != o.id || !pool.granted(off) {
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
}

/// One cluster block: `len` addresses from `first`, in pool `pool` of subnet `subnet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterBlock {
    /// Subnet id.
    pub subnet: u32,
    /// First address.
    pub first: Ipv4Addr,
    /// Number of addresses.
    pub len: u32,
}

/// One pool's share in a node's hands (cluster mode), from [`LeaseDb::granted_usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGrants {
    /// The pool's first address.
    pub first: Ipv4Addr,
    /// Its last address.
    pub last: Ipv4Addr,
    /// Addresses in the blocks this node holds.
    pub held: u64,
    /// Of those, how many a lease holds now.
    pub used: u64,
}

impl LeaseDb {
    /// Every cluster block of every pool (empty outside cluster mode).
    pub fn cluster_blocks(&self) -> Vec<ClusterBlock> {
        let mut v = vec![];
        for p in self.pools.iter().filter(|p| p.granted.is_some()) {
            let mut off = 0;
            while off < p.len {
                let len = p.cluster_block.min(p.len - off);
                v.push(ClusterBlock { subnet: p.subnet, first: Ipv4Addr::from(p.start + off), len });
                off += p.cluster_block;
            }
        }
        v
    }

    fn block_of(&self, first: Ipv4Addr) -> Option<(usize, usize)> {
        let (pi, off) = self.locate(first)?;
        let p = &self.pools[pi];
        p.granted.as_ref()?;
        (off % p.cluster_block as usize == 0).then_some((pi, off / p.cluster_block as usize))
    }

    /// Cluster mode: this node now holds the block starting at `first`; its free addresses
    /// become available to new clients. Returns whether it was not held before (false also for
    /// an address that starts no block).
    pub fn grant(&self, first: Ipv4Addr, now: u32) -> bool {
        let Some((pi, bi)) = self.block_of(first) else { return false };
        let pool = &self.pools[pi];
        let Some(flags) = &pool.granted else { return false };
        if flags[bi].swap(true, Ordering::AcqRel) {
            return false;
        }
        let start = bi as u32 * pool.cluster_block;
        let end = (start + pool.cluster_block).min(pool.len);
        // Addresses nobody owns go back to the spare set (by local block starts inside this
        // cluster block); those a shard owns go back on its free list.
        let mut by_shard: Vec<Vec<u32>> = vec![vec![]; self.shards.len()];
        let mut spare_starts = vec![];
        for off in start..end {
            match pool.owner(off as usize) {
                SPARE if spare_starts.last().is_none_or(|&b: &u32| off >= b + pool.block) => spare_starts.push(off),
                SPARE => {}
                o if usize::from(o) < self.shards.len() => by_shard[usize::from(o)].push(pool.start + off),
                _ => {}
            }
        }
        if !spare_starts.is_empty() {
            let mut spare = lock(&pool.spare);
            spare.extend(spare_starts.iter().rev());
            pool.spare_empty.store(false, Ordering::Relaxed);
        }
        for (i, addrs) in by_shard.into_iter().enumerate().filter(|(_, a)| !a.is_empty()) {
            let mut g = self.lock(i);
            for a in addrs {
                let addr = Ipv4Addr::from(a);
                if !g.by_addr(addr).is_some_and(|l| l.holds(now)) {
                    g.push_free(addr);
                }
            }
        }
        true
    }

    /// Cluster mode: this node no longer holds the block at `first`; no new client is given
    /// one of its addresses (clients holding one keep it). Returns whether it was held.
    pub fn revoke(&self, first: Ipv4Addr) -> bool {
        let Some((pi, bi)) = self.block_of(first) else { return false };
        self.pools[pi].granted.as_ref().is_some_and(|g| g[bi].swap(false, Ordering::AcqRel))
    }

    /// Cluster mode: per pool in config order, its range, the addresses of held blocks and how
    /// many of them a lease holds now: what a node compares to decide to claim or return
    /// blocks. Also returns, per held block (by first address), how many of its addresses a
    /// lease holds.
    pub fn granted_usage(&self, now: u32) -> (Vec<PoolGrants>, hashbrown::HashMap<Ipv4Addr, u32>) {
        let mut busy: hashbrown::HashMap<Ipv4Addr, u32> = hashbrown::HashMap::new();
        let mut used = vec![0u64; self.pools.len()];
        for s in &self.shards {
            for l in &lock(s).leases {
                if l.key.len == 0 || !l.holds(now) {
                    continue;
                }
                if let Some((pi, off)) = self.locate(l.addr) {
                    let p = &self.pools[pi];
                    if p.granted.is_some() && p.granted(off) {
                        used[pi] += 1;
                        let first = p.start + (off as u32 / p.cluster_block) * p.cluster_block;
                        *busy.entry(Ipv4Addr::from(first)).or_default() += 1;
                    }
                }
            }
        }
        let pools = self
            .pools
            .iter()
            .zip(used)
            .map(|(p, used)| {
                let held: u64 = p.granted.as_ref().map_or(0, |g| {
                    g.iter()
                        .enumerate()
                        .filter(|(_, b)| b.load(Ordering::Acquire))
                        .map(|(i, _)| u64::from(p.cluster_block.min(p.len - i as u32 * p.cluster_block)))
                        .sum()
                });
                PoolGrants {
                    first: Ipv4Addr::from(p.start),
                    last: Ipv4Addr::from(p.start + p.len.saturating_sub(1)),
                    held,
                    used,
                }
            })
            .collect();
        (pools, busy)
    }

    /// Cluster mode: takes in a lease another node committed (read from the shared database):
    /// it replaces whatever this node remembered on that address, without a change to commit.
    ///
    /// A row of the same client on the same address that ends no later than what this node
    /// holds is older news (this node renewed it since, and its own commit is on the way or
    /// done): it is not taken, so the tables never step back in time — except a binding the
    /// tables expired and the database kept.
    pub fn absorb(&self, l: Lease, now: u32) {
        let l = self.scoped(l);
        let existing = self.lease_at(l.addr);
        // Unless the row still holds the address and this node's record no longer does (an
        // expiry the database refused: its clock says the binding runs).
        if existing.is_some_and(|(_, e)| {
            e == l || (e.key == l.key && e.expires >= l.expires && (e.holds(now) || !l.holds(now)))
        }) {
            return;
        }
        // Nothing to journal: the database this came from has it.
        let _ = self.admin_put(l, existing.is_some(), now);
    }
}
