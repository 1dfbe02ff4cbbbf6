//! DHCPv6 leases: one per (DUID, IAID, IA type, subnet), each an address (IA_NA, a /128) or a
//! delegated prefix (IA_PD), drawn in O(1) from the subnet's pools ([`PrefixPool`]) or given by
//! a reservation. Sans-IO like the v4 tables: callers pass `now` and collect the changes.
//!
//! One table serves every v6 subnet (the daemon keeps it behind one lock; v6 is not yet sharded
//! per worker as v4 is). A number in a pool is taken while a lease, an advertisement or a
//! declined address holds it, and given back when that ends (release, expiry sweep).

use std::{net::Ipv6Addr, sync::Arc};

use hashbrown::HashMap;

use super::{
    Change, Tags,
    prefix::{PrefixPool, STRIPES, Stripes},
};
use crate::{
    config::{Config, Subnet6},
    dhcp6::IaKind,
};

/// What a v6 lease is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Lease6State {
    /// Advertised (not committed): held until `expires`, not stored.
    Advertised = 1,
    /// Bound until `expires` (the valid lifetime's end).
    Bound = 2,
    /// Declined by its client: kept out of use until `expires`.
    Declined = 3,
}

impl Lease6State {
    /// From its stored byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Advertised,
            2 => Self::Bound,
            3 => Self::Declined,
            _ => return None,
        })
    }
}

/// Who holds a v6 lease: the IA (type and IAID) of a client (DUID) in a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key6 {
    /// IA_NA or IA_PD.
    pub kind: IaKind,
    /// Subnet id.
    pub subnet: u32,
    /// The client's DUID (empty for a declined address, which nobody holds).
    pub duid: Arc<[u8]>,
    /// The IA's id.
    pub iaid: u32,
}

/// One v6 lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease6 {
    /// Its holder.
    pub key: Key6,
    /// The address, or the delegated prefix.
    pub addr: Ipv6Addr,
    /// 128 for an address, the prefix length for a prefix.
    pub len: u8,
    /// Preferred and valid lifetimes granted (s).
    pub preferred: u32,
    pub valid: u32,
    /// Unix time it ends.
    pub expires: u32,
    /// Its state.
    pub state: Lease6State,
    /// The subscriber line it was given on: the relay's interface-id (as `circuit`) and
    /// remote-id (0: none), for the per-line quotas.
    pub tags: Tags,
    /// The relay it was given through: the tag of its relay id (option 53, RFC 5460; 0: none),
    /// for bulk leasequery by relay id.
    pub relay: u32,
}

/// Why nothing could be bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind6Error {
    /// The subnet's pools (of this IA's type) are exhausted, and nothing is reserved for it.
    NoneAvailable,
    /// The client's DUID, or its subscriber line, holds its quota of leases already.
    OverLimit,
}

/// One subnet's addresses (IA_NA) or prefixes (IA_PD), by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census6 {
    /// Subnet id.
    pub subnet: u32,
    /// Addresses or prefixes.
    pub kind: IaKind,
    /// In its pools.
    pub total: u64,
    /// Bound now.
    pub assigned: u64,
    /// Declined, on probation.
    pub declined: u64,
}

/// What a client asks of one IA.
#[derive(Debug, Clone, Copy)]
pub struct Ask6<'a> {
    /// Whose.
    pub key: &'a Key6,
    /// Addresses or prefixes it names (hints in SOLICIT/REQUEST, holdings in RENEW/REBIND).
    pub hints: &'a [(Ipv6Addr, u8)],
    /// What is reserved for it in this subnet (addresses for IA_NA, prefixes for IA_PD).
    pub reserved: &'a [(Ipv6Addr, u8)],
    /// Most leases and advertisements its DUID may hold in all (`[limits] leases-per-duid`;
    /// 0: no limit): a new IA beyond it gets nothing.
    pub max_per_duid: u32,
    /// Its subscriber line (the relay's interface-id and remote-id, hashed).
    pub tags: Tags,
    /// The tag of its relay's relay id (0: none).
    pub relay: u32,
    /// Most leases one interface-id and one remote-id may hold (`[limits] leases-per-circuit`,
    /// `leases-per-remote-id`; 0: no limit).
    pub max_per_line: (u32, u32),
}

impl<'a> Ask6<'a> {
    /// What a client of `key` with no hints, reservation, quota or line asks.
    pub fn new(key: &'a Key6) -> Self {
        Self { key, hints: &[], reserved: &[], max_per_duid: 0, tags: Tags::default(), relay: 0, max_per_line: (0, 0) }
    }
}

#[derive(Debug, Default)]
struct SubnetPools {
    na: Vec<PrefixPool>,
    pd: Vec<PrefixPool>,
}

impl SubnetPools {
    fn of(&mut self, kind: IaKind) -> &mut Vec<PrefixPool> {
        match kind {
            IaKind::Na => &mut self.na,
            IaKind::Pd => &mut self.pd,
        }
    }
}

/// A lease's end in the calendar (ordered by time only, earliest first in the heap).
#[derive(Debug)]
struct Due(u32, Key6);

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        self.0 == o.0
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Due {
    /// Reversed: the max-heap's top is the earliest end.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.0.cmp(&self.0)
    }
}

/// Every v6 lease and pool.
#[derive(Debug, Default)]
pub struct Table6 {
    leases: HashMap<Key6, Lease6>,
    by_addr: HashMap<(Ipv6Addr, u8), Key6>,
    /// Leases (and advertisements) each DUID holds, declined addresses not counted.
    per_duid: HashMap<Arc<[u8]>, u32>,
    /// Declined addresses or prefixes per subnet and type.
    declined: HashMap<(u32, IaKind), u32>,
    /// Leases and advertisements per interface-id tag and per remote-id tag.
    per_circuit: HashMap<u32, u32>,
    per_remote: HashMap<u32, u32>,
    /// When each lease ends, earliest first: the expiry sweep takes what is due in O(log n)
    /// instead of looking at every lease (an entry whose lease has changed since is stale and
    /// skipped).
    calendar: std::collections::BinaryHeap<Due>,
    pools: HashMap<u32, SubnetPools>,
    changes: Vec<Change>,
    /// Load-balancing buckets (and pool stripes) this node does *not* serve: none outside
    /// cluster mode; in cluster mode every one until the membership loop says which it
    /// serves ([`serve_buckets`](Self::serve_buckets)).
    not_served: Stripes,
}

impl Table6 {
    /// Tables for `cfg`'s v6 subnets (reserved addresses and prefixes taken out of the pools),
    /// holding `leases` (recovered, or kept over a reload) where they still fit.
    pub fn new(cfg: &Config, leases: impl IntoIterator<Item = Lease6>, now: u32) -> Self {
        let mut t = Self::default();
        if cfg.cluster.is_some() {
            t.not_served = [u32::MAX; STRIPES / 32];
        }
        for s in &cfg.subnets6 {
            let mut p = SubnetPools {
                na: s.pools.iter().map(|r| PrefixPool::new(*r)).collect(),
                pd: s.pd_pools.iter().map(|r| PrefixPool::new(*r)).collect(),
            };
            for r in &s.reservations {
                for a in &r.addresses {
                    p.na.iter_mut().any(|pool| pool.take(*a, 128));
                }
                for (a, l) in &r.prefixes {
                    p.pd.iter_mut().any(|pool| pool.take(*a, *l));
                }
            }
            t.pools.insert(s.id, p);
        }
        for l in leases {
            if l.expires > now && l.state != Lease6State::Advertised {
                t.restore(cfg, l);
            }
        }
        t
    }

    /// Puts a recovered lease back: `false` (dropped) when its subnet is gone, it lies outside
    /// the subnet's pools and reservations (and, for an address, outside the subnet), or another
    /// lease holds its address.
    fn restore(&mut self, cfg: &Config, l: Lease6) -> bool {
        let Some(s) = cfg.subnets6.iter().find(|s| s.id == l.key.subnet) else { return false };
        if self.by_addr.contains_key(&(l.addr, l.len)) || !s.may_hold(l.key.kind, l.addr, l.len) {
            return false;
        }
        // Its number, when a pool holds it (a reserved or merely on-link one has none; a pool's
        // number is taken only with an address index entry, so a free holder means a free
        // number).
        if !s.reserves(l.key.kind, l.addr, l.len) {
            self.pools.entry(s.id).or_default().of(l.key.kind).iter_mut().any(|p| p.take(l.addr, l.len));
        }
        self.by_addr.insert((l.addr, l.len), l.key.clone());
        self.insert_lease(l);
        true
    }

    /// Inserts or replaces the lease of its key (the caller keeps `by_addr`).
    fn insert_lease(&mut self, l: Lease6) {
        self.calendar.push(Due(l.expires, l.key.clone()));
        let declined = l.state == Lease6State::Declined;
        let (duid, at, tags) = (l.key.duid.clone(), (l.key.subnet, l.key.kind), l.tags);
        if let Some(old) = self.leases.insert(l.key.clone(), l) {
            // Replaced in place: a declined record stays declined (its key is its address);
            // the line it is counted on may change.
            debug_assert_eq!(old.state == Lease6State::Declined, declined);
            if !declined && old.tags != tags {
                self.count_line(old.tags, false);
                self.count_line(tags, true);
            }
            return;
        }
        if declined {
            *self.declined.entry(at).or_default() += 1;
        } else {
            *self.per_duid.entry(duid).or_default() += 1;
            self.count_line(tags, true);
        }
    }

    /// Counts a lease on its line's tags in (`add`) or out.
    fn count_line(&mut self, tags: Tags, add: bool) {
        for (map, tag) in [(&mut self.per_circuit, tags.circuit), (&mut self.per_remote, tags.remote)] {
            if tag == 0 {
                continue;
            }
            if add {
                *map.entry(tag).or_default() += 1;
            } else if let Some(n) = map.get_mut(&tag) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&tag);
                }
            }
        }
    }

    /// Removes the lease of `key` (the caller keeps `by_addr`).
    fn remove_lease(&mut self, key: &Key6) -> Option<Lease6> {
        let l = self.leases.remove(key)?;
        if l.state == Lease6State::Declined {
            if let Some(n) = self.declined.get_mut(&(l.key.subnet, l.key.kind)) {
                *n = n.saturating_sub(1);
            }
        } else {
            if let Some(n) = self.per_duid.get_mut(&l.key.duid) {
                *n -= 1;
                if *n == 0 {
                    self.per_duid.remove(&l.key.duid);
                }
            }
            self.count_line(l.tags, false);
        }
        Some(l)
    }

    /// Cluster mode: serves the clients of the buckets whose bits are set (bucket `b`: bit `b %
    /// 32` of word `b / 32`, the RFC 3074 hash of the DUID) and allocates only the pool numbers
    /// of the same stripes (number `n` is in stripe `n % 256`): the node that serves a bucket
    /// is the only one that hands out its stripe, so nodes never contend for a number, and a
    /// takeover moves the address space with the clients.
    pub fn serve_buckets(&mut self, bits: &Stripes) {
        self.not_served = bits.map(|w| !w);
    }

    /// The buckets served (every one outside cluster mode), to carry over to a rebuilt table.
    pub fn served(&self) -> Stripes {
        self.not_served.map(|w| !w)
    }

    /// Whether this node serves the client of `duid` (always, outside cluster mode): whether
    /// it serves the RFC 3074 bucket of the DUID.
    pub fn serves_client(&self, duid: &[u8]) -> bool {
        if self.not_served == [0; STRIPES / 32] {
            return true;
        }
        let bucket = dhcp_xdp_common::lb_hash(duid);
        self.not_served[usize::from(bucket) / 32] & (1 << (bucket % 32)) == 0
    }

    /// Declined addresses or prefixes on probation in a subnet's pools of one type.
    pub fn declined(&self, subnet: u32, kind: IaKind) -> u32 {
        self.declined.get(&(subnet, kind)).copied().unwrap_or(0)
    }

    /// Every lease (bound, advertised, declined).
    pub fn leases(&self) -> impl Iterator<Item = &Lease6> {
        self.leases.values()
    }

    /// The lease of `key`.
    pub fn get(&self, key: &Key6) -> Option<&Lease6> {
        self.leases.get(key)
    }

    /// Who holds `addr`/`len`.
    pub fn holder(&self, addr: Ipv6Addr, len: u8) -> Option<&Lease6> {
        self.by_addr.get(&(addr, len)).and_then(|k| self.leases.get(k))
    }

    /// Moves the changes made since the last call into `out`.
    pub fn drain_changes(&mut self, out: &mut Vec<Change>) {
        out.append(&mut self.changes);
    }

    /// Free numbers in a subnet's pools of one type.
    pub fn available(&self, subnet: u32, kind: IaKind) -> usize {
        self.pools
            .get(&subnet)
            .map(|p| match kind {
                IaKind::Na => p.na.iter().map(PrefixPool::available).sum(),
                IaKind::Pd => p.pd.iter().map(PrefixPool::available).sum(),
            })
            .unwrap_or(0)
    }

    /// Whether `addr`/`len` may go to `key` now: free (or expired), or already its own.
    fn free_for(&self, key: &Key6, addr: Ipv6Addr, len: u8, now: u32) -> bool {
        match self.by_addr.get(&(addr, len)) {
            None => true,
            Some(k) if k == key => true,
            Some(k) => self.leases.get(k).is_some_and(|l| l.expires <= now && l.state != Lease6State::Declined),
        }
    }

    /// Gives `addr`/`len` back to its pool (nothing for a reserved one, which no pool holds).
    fn give_back(&mut self, subnet: u32, kind: IaKind, addr: Ipv6Addr, len: u8) {
        if let Some(p) = self.pools.get_mut(&subnet) {
            for pool in p.of(kind).iter_mut() {
                if let Some(n) = pool.range().index_of(addr, len) {
                    pool.release(n);
                    return;
                }
            }
        }
    }

    /// Drops the record of `key` and whatever it held.
    fn forget(&mut self, key: &Key6) -> Option<Lease6> {
        let l = self.remove_lease(key)?;
        self.by_addr.remove(&(l.addr, l.len));
        self.give_back(l.key.subnet, l.key.kind, l.addr, l.len);
        Some(l)
    }

    /// Binds (or advertises, `commit == false`) one IA in `subnet`: its current lease if it
    /// has one, else a reservation, a hint it may have, or the next free number of a pool.
    /// Advertisements are held `hold` seconds and not stored; a commit is a [`Change::Upsert6`].
    pub fn bind(
        &mut self,
        subnet: &Subnet6,
        ask: Ask6<'_>,
        commit: bool,
        hold: u32,
        now: u32,
    ) -> Result<Lease6, Bind6Error> {
        let key = ask.key;
        if !self.leases.contains_key(key) {
            let full = |limit: u32, held: Option<&u32>| limit > 0 && held.copied().unwrap_or(0) >= limit;
            if full(ask.max_per_duid, self.per_duid.get(&key.duid))
                || (ask.tags.circuit != 0 && full(ask.max_per_line.0, self.per_circuit.get(&ask.tags.circuit)))
                || (ask.tags.remote != 0 && full(ask.max_per_line.1, self.per_remote.get(&ask.tags.remote)))
            {
                return Err(Bind6Error::OverLimit);
            }
        }
        let is_reserved = |a: Ipv6Addr, l: u8| ask.reserved.contains(&(a, l));
        // Its current lease, unless a reservation now says otherwise.
        let current = self.leases.get(key).filter(|l| l.state != Lease6State::Declined).map(|l| (l.addr, l.len));
        let keep = current.filter(|&(a, l)| ask.reserved.is_empty() || is_reserved(a, l));
        let chosen = match keep {
            Some(c) => Some(c),
            None => {
                // A lease the reservation no longer allows is given up first.
                if current.is_some()
                    && let Some(l) = self.forget(key)
                    && l.state == Lease6State::Bound
                {
                    self.changes.push(Change::Remove6(l.key));
                }
                self.choose(subnet, key, ask, now)
            }
        };
        let Some((addr, len)) = chosen else { return Err(Bind6Error::NoneAvailable) };
        let (preferred, valid) = (subnet.preferred, subnet.valid);
        let lease = Lease6 {
            key: key.clone(),
            addr,
            len,
            preferred,
            valid,
            expires: now.saturating_add(if commit { valid } else { hold.min(valid) }),
            state: if commit { Lease6State::Bound } else { Lease6State::Advertised },
            tags: ask.tags,
            relay: ask.relay,
        };
        // An advertisement does not shorten a binding the client already has.
        if !commit
            && let Some(l) = self.leases.get(key)
            && l.state == Lease6State::Bound
            && l.addr == addr
            && l.expires > now
        {
            return Ok(l.clone());
        }
        self.by_addr.insert((addr, len), key.clone());
        self.insert_lease(lease.clone());
        if commit {
            self.changes.push(Change::Upsert6(lease.clone()));
        }
        Ok(lease)
    }

    /// A reservation, a hint, or a pool's next free number for an IA without a lease.
    fn choose(&mut self, subnet: &Subnet6, key: &Key6, ask: Ask6<'_>, now: u32) -> Option<(Ipv6Addr, u8)> {
        for &(a, l) in ask.reserved {
            if self.free_for(key, a, l, now) {
                self.evict(a, l);
                return Some((a, l));
            }
        }
        if !ask.reserved.is_empty() {
            return None;
        }
        let allowed = self.not_served.map(|w| !w);
        for &(a, l) in ask.hints {
            let len = if key.kind == IaKind::Na { 128 } else { l };
            if !self.by_addr.contains_key(&(a, len))
                && self
                    .pools
                    .entry(subnet.id)
                    .or_default()
                    .of(key.kind)
                    .iter_mut()
                    .any(|p| p.take_hint(a, len, &allowed))
            {
                return Some((a, len));
            }
        }
        loop {
            let pools = self.pools.entry(subnet.id).or_default().of(key.kind);
            if let Some(found) =
                pools.iter_mut().find_map(|p| p.allocate(&allowed).map(|(_, a)| (a, p.range().delegated_len())))
            {
                return Some(found);
            }
            // Exhausted: give back what has ended (a bounded number at a time) and try again.
            if self.reclaim(now) == 0 {
                return None;
            }
        }
    }

    /// Removes an expired holder of `addr`/`len` (its number stays taken: it changes hands).
    fn evict(&mut self, addr: Ipv6Addr, len: u8) {
        if let Some(k) = self.by_addr.remove(&(addr, len))
            && let Some(l) = self.remove_lease(&k)
            && l.state == Lease6State::Bound
        {
            self.changes.push(Change::Remove6(l.key));
        }
    }

    /// Gives back leases, advertisements and declined addresses that have ended (of any
    /// subnet: due is due), a bounded number at a time; how many.
    fn reclaim(&mut self, now: u32) -> usize {
        self.sweep(now, 256)
    }

    /// Extends the lease of `key` if it holds `addr`/`len` (RENEW, REBIND): `None` when it does
    /// not (the caller answers with lifetimes 0 or NoBinding).
    pub fn extend(&mut self, subnet: &Subnet6, key: &Key6, addr: Ipv6Addr, len: u8, now: u32) -> Option<Lease6> {
        let l = self.leases.get_mut(key)?;
        if l.addr != addr || (key.kind == IaKind::Pd && l.len != len) || l.state == Lease6State::Declined {
            return None;
        }
        l.state = Lease6State::Bound;
        l.preferred = subnet.preferred;
        l.valid = subnet.valid;
        l.expires = now.saturating_add(subnet.valid);
        let l = l.clone();
        self.calendar.push(Due(l.expires, l.key.clone()));
        self.changes.push(Change::Upsert6(l.clone()));
        Some(l)
    }

    /// Releases what `key` holds if it is `addr`/`len`: `false` when it holds no such thing.
    pub fn release(&mut self, key: &Key6, addr: Ipv6Addr, len: u8) -> bool {
        match self.leases.get(key) {
            Some(l)
                if l.addr == addr && (key.kind == IaKind::Na || l.len == len) && l.state != Lease6State::Declined =>
            {
                if let Some(l) = self.forget(key) {
                    self.changes.push(Change::Remove6(l.key));
                }
                true
            }
            _ => false,
        }
    }

    /// The client of `key` declines `addr` (RFC 8415 §18.3.8): it is kept out of use for
    /// `probation` seconds under a key nobody holds. `false` when `key` does not hold it.
    pub fn decline(&mut self, key: &Key6, addr: Ipv6Addr, probation: u32, now: u32) -> bool {
        match self.leases.get(key) {
            Some(l) if l.addr == addr && l.state != Lease6State::Declined => {
                let Some(mut l) = self.remove_lease(key) else { return false };
                self.changes.push(Change::Remove6(l.key.clone()));
                // Keyed by the address itself so that it is unique.
                let declined = Key6 {
                    kind: l.key.kind,
                    subnet: l.key.subnet,
                    duid: Arc::from(&l.addr.octets()[..]),
                    iaid: u32::MAX,
                };
                l.key = declined.clone();
                l.state = Lease6State::Declined;
                l.expires = now.saturating_add(probation);
                self.by_addr.insert((l.addr, l.len), declined);
                self.insert_lease(l.clone());
                self.changes.push(Change::Upsert6(l));
                true
            }
            _ => false,
        }
    }

    /// Expiry: gives back at most `max` leases, advertisements and declined addresses that
    /// have ended; the changes say which stored ones went.
    pub fn sweep(&mut self, now: u32, max: usize) -> usize {
        self.sweep_into(now, max, None)
    }

    /// [`sweep`](Self::sweep), also handing the stored leases that ended (not advertisements)
    /// to `ended` (the forensic log's expiry lines).
    pub fn sweep_into(&mut self, now: u32, max: usize, mut ended: Option<&mut Vec<Lease6>>) -> usize {
        let mut n = 0;
        while n < max && self.calendar.peek().is_some_and(|d| d.0 <= now) {
            let Some(Due(end, key)) = self.calendar.pop() else { break };
            if self.leases.get(&key).is_none_or(|l| l.expires != end) {
                continue; // changed since: a later entry stands for it
            }
            if let Some(l) = self.forget(&key)
                && l.state != Lease6State::Advertised
            {
                self.changes.push(Change::Remove6(l.key.clone()));
                if let Some(e) = ended.as_mut() {
                    e.push(l);
                }
            }
            n += 1;
        }
        n
    }

    /// Per subnet and IA type: what its pools hold, and how many of those (or reserved) are
    /// bound and declined at `now`.
    pub fn census(&self, cfg: &Config, now: u32) -> Vec<Census6> {
        let mut out: Vec<Census6> = cfg
            .subnets6
            .iter()
            .flat_map(|s| {
                [IaKind::Na, IaKind::Pd].map(|kind| Census6 {
                    subnet: s.id,
                    kind,
                    total: s.capacity(kind),
                    assigned: 0,
                    declined: 0,
                })
            })
            .collect();
        for l in self.leases.values().filter(|l| l.expires > now) {
            if let Some(c) = out.iter_mut().find(|c| c.subnet == l.key.subnet && c.kind == l.key.kind) {
                match l.state {
                    Lease6State::Bound => c.assigned += 1,
                    Lease6State::Declined => c.declined += 1,
                    Lease6State::Advertised => {}
                }
            }
        }
        out
    }

    /// Management (`lease6-del`): forgets the lease on `addr`/`len` (a declined address too),
    /// as a stored removal; `false` when nothing holds it.
    pub fn admin_remove(&mut self, addr: Ipv6Addr, len: u8) -> bool {
        let Some(key) = self.by_addr.get(&(addr, len)).cloned() else { return false };
        match self.forget(&key) {
            Some(l) if l.state != Lease6State::Advertised => {
                self.changes.push(Change::Remove6(l.key));
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Management (`lease6-wipe`): forgets every lease of `subnet` (all subnets: `None`); how
    /// many stored ones went.
    pub fn admin_wipe(&mut self, subnet: Option<u32>) -> usize {
        let keys: Vec<Key6> = self.leases.keys().filter(|k| subnet.is_none_or(|s| k.subnet == s)).cloned().collect();
        let mut n = 0;
        for k in keys {
            if let Some(l) = self.forget(&k)
                && l.state != Lease6State::Advertised
            {
                self.changes.push(Change::Remove6(l.key));
                n += 1;
            }
        }
        n
    }

    /// Management (`lease6-add`, `lease6-update`): puts `lease` in, as stored. An add is refused
    /// when its key already has a lease; an update when it has none; both when another key
    /// holds the address, or the address (prefix) is neither in a pool of its subnet nor
    /// inside the subnet (addresses) — the error says which.
    pub fn admin_put(&mut self, cfg: &Config, lease: Lease6, replace: bool, now: u32) -> Result<(), String> {
        let Some(s) = cfg.subnets6.iter().find(|s| s.id == lease.key.subnet) else {
            return Err(format!("no subnet6 with id {}", lease.key.subnet));
        };
        if !s.may_hold(lease.key.kind, lease.addr, lease.len) {
            return Err(format!("{}/{} lies outside subnet {} and its pools", lease.addr, lease.len, s.id));
        }
        match (self.leases.contains_key(&lease.key), replace) {
            (true, false) => return Err("a lease with this DUID, IAID and type exists already".into()),
            (false, true) => return Err("no such lease".into()),
            _ => {}
        }
        if let Some(holder) = self.by_addr.get(&(lease.addr, lease.len))
            && *holder != lease.key
            && self.leases.get(holder).is_some_and(|l| l.expires > now)
        {
            return Err(format!("{}/{} is held by another client", lease.addr, lease.len));
        }
        if let Some(holder) = self.by_addr.get(&(lease.addr, lease.len)).cloned() {
            self.forget(&holder);
        }
        self.forget(&lease.key);
        if !self.restore(cfg, lease.clone()) {
            return Err(format!("{}/{} could not be taken from its pool", lease.addr, lease.len));
        }
        self.changes.push(Change::Upsert6(lease));
        Ok(())
    }

    /// Cluster mode: takes in a lease row another node committed (or that beat ours), unless
    /// this table knows better — the same lease ending no earlier — or the row holds nothing
    /// any more. Nothing is recorded: the database it came from has it.
    pub fn absorb(&mut self, cfg: &Config, l: Lease6, now: u32) {
        if l.expires <= now
            || self.leases.get(&l.key).is_some_and(|e| e.addr == l.addr && e.len == l.len && e.expires >= l.expires)
        {
            return;
        }
        self.apply(cfg, Change::Upsert6(l));
    }

    /// Applies a recovered or replicated change (replay): upserts replace, removes forget.
    pub fn apply(&mut self, cfg: &Config, c: Change) {
        match c {
            Change::Upsert6(l) => {
                self.forget(&l.key);
                let holder = self.by_addr.get(&(l.addr, l.len)).cloned();
                if let Some(k) = holder {
                    self.forget(&k);
                }
                self.restore(cfg, l);
            }
            Change::Remove6(k) => {
                self.forget(&k);
            }
            Change::Upsert(_) | Change::Remove(_) | Change::Attr(..) => {}
        }
    }
}

#[cfg(test)]
#[path = "v6_tests.rs"]
mod tests;
