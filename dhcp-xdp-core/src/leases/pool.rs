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
}

impl PoolState {
    pub(super) fn offset(&self, a: Ipv4Addr) -> Option<usize> {
        let a = u32::from(a);
        (a >= self.start && a - self.start < self.len).then(|| (a - self.start) as usize)
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

    /// Next free address of the candidate subnets' pools.
    pub(super) fn allocate(&mut self, now: u32, subnets: &[u32]) -> Result<(Ipv4Addr, u32), LeaseError> {
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
}
