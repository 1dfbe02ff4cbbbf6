//! One shard's storage — records, the key and address indexes, free lists, pending changes —
//! and the lease operations the engine performs on a locked shard (offer, bind, release,
//! decline, expiry). Nothing here allocates an address it does not own ([`super::pool`]).

use super::*;

/// One shard's tables.
pub struct Shard {
    pub(super) id: u8,
    pub(super) leases: Vec<Lease>,
    pub(super) vacant: Vec<u32>,
    pub(super) by_key: HashTable<u32>,
    pub(super) by_addr: HashMap<u32, u32>,
    pub(super) free: Vec<VecDeque<u32>>,
    pub(super) changes: Vec<Change>,
    /// Each [`Attr`]'s values, by record index (only records that have one).
    pub(super) attrs: [HashMap<u32, Box<[u8]>>; 2],
    pub(super) sweep_cursor: usize,
    /// Index of the record [`Shard::find`] found last.
    pub(super) last_found: std::cell::Cell<u32>,
    /// Where every shard's keys are, when there is more than one shard.
    pub(super) directory: Option<std::sync::Arc<Directory>>,
    /// Per-subscriber counts (shared by all shards).
    pub(super) quota: std::sync::Arc<Quota>,
}

/// A locked shard with access to the shared pool states.
pub struct ShardGuard<'a> {
    pub(super) db: &'a LeaseDb,
    pub(super) shard: MutexGuard<'a, Shard>,
    /// Who the request being decided comes from, and what it may hold.
    pub(super) asker: Asker,
}

/// The subscriber behind the request being decided ([`ShardGuard::set_asker`]).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Asker {
    pub(super) tags: Tags,
    pub(super) limits: Option<Limits>,
    /// The offer hold: the window new offers are counted in.
    pub(super) hold: u32,
    /// The client classes it belongs to (for pools guarded by `client-class`).
    pub(super) classes: u64,
}

impl Asker {
    /// Whether the asker may have an address of `pool` (its classes allow it).
    #[inline]
    pub(super) fn may_use(&self, pool: &super::pool::PoolState) -> bool {
        pool.classes == 0 || pool.classes & self.classes != 0
    }
}

impl Shard {
    pub(super) fn reserve_keys(&mut self, n: usize) {
        let leases = &self.leases;
        self.by_key.reserve(n, |&j| leases[j as usize].key.hash64());
    }

    pub(super) fn find(&self, key: &ClientKey) -> Option<u32> {
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
    pub(super) fn put(&mut self, l: Lease) -> u32 {
        let idx = self.put_unjournaled(l);
        self.changes.push(Change::Upsert(l));
        idx
    }

    /// Inserts or replaces the record of `l.key`, keeping both indexes right, without a journal
    /// record of its own: offers (a restart forgets them, as clients expect) and recovery. A
    /// remembered record that loses its address is still journaled as removed.
    pub(super) fn put_unjournaled(&mut self, l: Lease) -> u32 {
        let idx = match self.find(&l.key) {
            Some(i) => {
                let old = self.leases[i as usize];
                if quota::counts(&old) {
                    self.quota.adjust(&old, false);
                }
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
                let hash = l.key.hash64();
                self.by_key.insert_unique(hash, i, |&j| leases[j as usize].key.hash64());
                if let Some(d) = &self.directory {
                    d.insert(hash, self.id);
                }
                i
            }
        };
        if quota::counts(&l) {
            self.quota.adjust(&l, true);
        }
        // A previous holder of this address (a remembered record) loses it.
        if let Some(prev) = self.by_addr.insert(u32::from(l.addr), idx)
            && prev != idx
        {
            self.remove_idx(prev);
        }
        idx
    }

    pub(super) fn remove_idx(&mut self, i: u32) {
        let l = self.leases[i as usize];
        if quota::counts(&l) {
            self.quota.adjust(&l, false);
        }
        let hash = l.key.hash64();
        if let Ok(e) = self.by_key.find_entry(hash, |&j| j == i) {
            e.remove();
        }
        if let Some(d) = &self.directory {
            d.remove(hash, self.id);
        }
        if self.by_addr.get(&u32::from(l.addr)) == Some(&i) {
            self.by_addr.remove(&u32::from(l.addr));
        }
        self.leases[i as usize].key = ClientKey { len: 0, bytes: [0; 32] };
        for m in &mut self.attrs {
            m.remove(&i);
        }
        self.vacant.push(i);
        self.changes.push(Change::Remove(l.key));
    }
}

impl ShardGuard<'_> {
    /// This shard's index in its [`LeaseDb`].
    pub fn index(&self) -> usize {
        usize::from(self.shard.id)
    }

    /// Where the request of `key` must be decided, when not here: the shard that holds its
    /// record. `None` when this shard holds it, or no shard does (a new client stays where it
    /// arrived). Costs one lookup here (which the operation that follows reuses); the
    /// directory is consulted only for a key this shard does not hold.
    #[inline]
    pub fn home_of(&self, key: &ClientKey) -> Option<usize> {
        let d = self.shard.directory.as_ref()?;
        if self.shard.find(key).is_some() {
            return None;
        }
        d.get(key.hash64()).filter(|&s| s != self.shard.id).map(usize::from)
    }

    /// Where a request for the reserved address `addr` must be decided, when not here: every
    /// client a reservation matches is decided in the one shard the address maps to, so two of
    /// them can never both hold it.
    #[inline]
    pub fn home_of_reserved(&self, addr: Ipv4Addr) -> Option<usize> {
        self.shard.directory.as_ref()?;
        let home = self.db.reserved_home(addr);
        (home != self.index()).then_some(home)
    }

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

    /// The attribute `a` of the record of `key` (None when it has none).
    pub fn attr(&self, a: Attr, key: &ClientKey) -> Option<&[u8]> {
        self.shard.find(key).and_then(|i| self.shard.attrs[a as usize].get(&i)).map(|n| &n[..])
    }

    /// Whether any record of this shard has the attribute `a`.
    #[inline]
    pub fn has_attr(&self, a: Attr) -> bool {
        !self.shard.attrs[a as usize].is_empty()
    }

    /// The attributes of this shard's records (snapshots, reloads).
    pub fn attrs(&self) -> impl Iterator<Item = (Attr, ClientKey, &[u8])> + '_ {
        let leases = &self.shard.leases;
        Attr::ALL.into_iter().flat_map(move |a| {
            self.shard.attrs[a as usize]
                .iter()
                .filter(|(i, _)| leases[**i as usize].state != LeaseState::Offered)
                .map(move |(i, v)| (a, leases[*i as usize].key, &v[..]))
        })
    }

    /// Keeps `value` (cut to [`MAX_ATTR`](super::MAX_ATTR) bytes; empty: none) as the attribute
    /// `a` of the record of `key`, journaling it when it changed; nothing without a record.
    #[inline]
    pub fn set_attr(&mut self, a: Attr, key: &ClientKey, value: &[u8]) {
        let value = &value[..value.len().min(super::MAX_ATTR)];
        let Some(i) = self.shard.find(key) else { return };
        let map = &mut self.shard.attrs[a as usize];
        match map.get(&i) {
            Some(cur) if **cur == *value => return,
            None if value.is_empty() => return,
            _ => {}
        }
        if value.is_empty() {
            map.remove(&i);
        } else {
            map.insert(i, value.into());
        }
        self.shard.changes.push(Change::Attr(a, *key, value.into()));
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
        // A client keeps what it holds; anything else must be in a block this node holds
        // (cluster mode).
        match self.by_addr(addr) {
            Some(l) if l.key == *key => true,
            Some(l) if l.holds(now) => false,
            _ => pool.granted(off),
        }
    }

    /// Offers an address to `key`: its reserved one, else its current or remembered one when
    /// still free, else `hint` when free, else the next free address of `pools` (indexes into
    /// the flattened pool list of `subnets`), oldest-freed first.
    #[expect(
        clippy::too_many_arguments,
        reason = "a lease's fields are passed as the engine holds them; a struct would be built per message"
    )]
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
        let classes = self.asker.classes;
        let in_subnets = |db: &LeaseDb, a: Ipv4Addr| {
            db.locate(a)
                .filter(|(pi, _)| db.pools[*pi].classes == 0 || db.pools[*pi].classes & classes != 0)
                .map(|(pi, _)| db.pools[pi].subnet)
                .filter(|s| subnets.contains(s))
        };
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
        // A new offer (the client held no address here): within what this subscriber may get.
        if !self.get(key).is_some_and(|l| quota::counts(&l) && l.holds(now)) {
            self.within_limits(now, &chaddr, true)?;
        }
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
            tags: self.asker.tags,
        });
        Ok((addr, subnet))
    }

    /// Who the request about to be decided comes from (its relay circuit and remote id), and
    /// the limits in force; `offer` and `bind` count new holdings against them. Without a call
    /// (tests, tools) nothing is limited. The limits are copied once per lock (they cannot
    /// change while a batch holds it), the tags per request.
    #[inline]
    pub fn set_asker(&mut self, tags: Tags, limits: &Limits, hold: u32) {
        self.asker.tags = tags;
        self.asker.classes = 0;
        if self.asker.limits.is_none() {
            self.asker.limits = Some(*limits);
            self.asker.hold = hold;
        }
    }

    /// The client classes of the asker (after [`set_asker`](Self::set_asker)): pools guarded by
    /// classes it is not in give it no address, and do not keep one it holds.
    pub fn set_asker_classes(&mut self, classes: u64) {
        self.asker.classes = classes;
    }

    /// Whether the asker's classes allow `addr` (outside every pool: yes).
    pub fn pool_allows(&self, addr: Ipv4Addr) -> bool {
        self.db.locate(addr).is_none_or(|(pi, _)| self.asker.may_use(&self.db.pools[pi]))
    }

    /// Whether the asker's circuit may send one more request this second (`[limits]
    /// rate-per-circuit`).
    #[inline]
    pub fn circuit_rate_ok(&self, now: u32) -> bool {
        let c = self.asker.tags.circuit;
        if c == 0 {
            return true;
        }
        match &self.asker.limits {
            Some(l) if l.rate_per_circuit > 0 => self.shard.quota.rate(quota::Who::Circuit(c), now, l.rate_per_circuit),
            _ => true,
        }
    }

    /// Whether a client with `chaddr` and the asker's tags may take one more address (and, for
    /// an offer, one more offer this period); counts the offer when it may.
    fn within_limits(&self, now: u32, chaddr: &[u8; 6], offer: bool) -> Result<(), LeaseError> {
        let Some(l) = self.asker.limits else { return Ok(()) };
        let q = &self.shard.quota;
        let tags = self.asker.tags;
        let held_ok = |who, limit: u32| limit == 0 || q.held(who) < limit;
        let mac = quota::Who::mac(chaddr);
        if !held_ok(mac, l.leases_per_mac)
            || (tags.circuit != 0 && !held_ok(quota::Who::Circuit(tags.circuit), l.leases_per_circuit))
            || (tags.remote != 0 && !held_ok(quota::Who::Remote(tags.remote), l.leases_per_remote_id))
        {
            return Err(LeaseError::OverLimit);
        }
        if offer {
            if tags.circuit != 0
                && !q.offer(quota::Who::Circuit(tags.circuit), now, self.asker.hold, l.offers_per_circuit)
            {
                return Err(LeaseError::OverLimit);
            }
            if !q.offer(mac, now, self.asker.hold, l.offers_per_mac) {
                return Err(LeaseError::OverLimit);
            }
        }
        Ok(())
    }

    /// Binds `addr` to `key` until `now + lease_time`.
    #[expect(
        clippy::too_many_arguments,
        reason = "a lease's fields are passed as the engine holds them; a struct would be built per message"
    )]
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
                let before = *l;
                l.state = LeaseState::Bound;
                l.expires = now.saturating_add(lease_time);
                l.chaddr = chaddr;
                let l = *l;
                if before.chaddr != chaddr && quota::counts(&before) {
                    // A client id renewing from another NIC: its MAC's count moves with it.
                    self.shard.quota.adjust(&before, false);
                    self.shard.quota.adjust(&l, true);
                }
                self.shard.changes.push(Change::Upsert(l));
                return Ok(l);
            }
        }
        self.bind_new(now, key, chaddr, addr, subnet, lease_time, reserved)
    }

    /// [`bind`](Self::bind) of an address the client does not hold yet.
    #[expect(
        clippy::too_many_arguments,
        reason = "a lease's fields are passed as the engine holds them; a struct would be built per message"
    )]
    #[inline(never)]
    pub(super) fn bind_new(
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
        if !self.get(&key).is_some_and(|l| quota::counts(&l) && l.holds(now)) {
            self.within_limits(now, &chaddr, false)?;
        }
        if let Some(old) = self.get(&key)
            && old.addr != addr
            && old.holds(now)
        {
            self.push_free(old.addr);
        }
        let tags = self.asker.tags;
        let l = Lease {
            key,
            chaddr,
            addr,
            expires: now.saturating_add(lease_time),
            state: LeaseState::Bound,
            subnet,
            tags,
        };
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
    ///
    /// Only a binding counts (an address merely offered is the server's to withdraw, and two
    /// packets must not burn an address for a day), and at most `cap_percent` of the pool sits
    /// on probation: beyond it the address is released instead ([`LeaseError::OverLimit`]).
    pub fn decline(
        &mut self,
        key: &ClientKey,
        addr: Ipv4Addr,
        now: u32,
        probation: u32,
        cap_percent: u32,
    ) -> Result<(), LeaseError> {
        let l = match self.get(key) {
            Some(l) if l.addr == addr && l.holds(now) && l.state == LeaseState::Bound => l,
            _ => return Err(LeaseError::NotHeld),
        };
        let pool = self.db.locate(addr).map(|(pi, _)| &self.db.pools[pi]);
        if let Some(p) = pool
            && u64::from(p.declined.load(Ordering::Relaxed)) * 100 >= u64::from(p.len) * u64::from(cap_percent)
        {
            self.release(key, addr, now);
            return Err(LeaseError::OverLimit);
        }
        if let Some(p) = pool {
            p.declined.fetch_add(1, Ordering::Relaxed);
        }
        {
            {
                let i = self.shard.find(key).expect("just found");
                self.shard.remove_idx(i);
                let held = Lease {
                    key: ClientKey::declined(addr),
                    chaddr: l.chaddr,
                    addr,
                    expires: now.saturating_add(probation),
                    state: LeaseState::Declined,
                    subnet: l.subnet,
                    tags: l.tags,
                };
                self.shard.put(held);
            }
        }
        Ok(())
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
                    if let Some((pi, _)) = self.db.locate(l.addr) {
                        let d = &self.db.pools[pi].declined;
                        let _ = d.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
                    }
                    self.push_free(l.addr);
                }
                LeaseState::Released | LeaseState::Expired => {}
            }
        }
    }
}
