//! Lease lookups and edits for the management API (Kea's `lease4-get*`, `lease4-add`,
//! `-update`, `-del`, `-wipe`). Each takes one shard lock at a time, briefly (a worker waits a
//! lookup at most); edits return their numbered changes for the journal. An address is edited
//! in the shard that owns it, so an edit can never put one address in two shards' hands.

use super::*;

impl LeaseDb {
    /// Every record `keep` accepts, shard by shard.
    pub fn leases_where(&self, keep: impl Fn(&Lease) -> bool) -> Vec<Lease> {
        let mut v = vec![];
        for s in &self.shards {
            v.extend(lock(s).leases.iter().filter(|l| l.key.len != 0 && keep(l)).copied());
        }
        v
    }

    /// Every record `keep` accepts, given its attributes (by [`Attr`]), with them, shard by
    /// shard (one lock of each at a time).
    pub fn leases_with_attrs(&self, keep: impl Fn(&Lease, [Option<&[u8]>; 2]) -> bool) -> Vec<(Lease, Attrs)> {
        let mut v = vec![];
        for s in &self.shards {
            let sh = lock(s);
            for (i, l) in sh.leases.iter().enumerate() {
                if l.key.len == 0 {
                    continue;
                }
                let attrs = Attr::ALL.map(|a| sh.attrs[a as usize].get(&(i as u32)).map(|v| &v[..]));
                if keep(l, attrs) {
                    v.push((*l, attrs.map(|a| a.map(Box::from))));
                }
            }
        }
        v
    }

    /// The attributes of the record of `key` (by [`Attr`]), in whichever shard holds it.
    pub fn attrs_of(&self, key: &ClientKey) -> Attrs {
        self.shards
            .iter()
            .find_map(|s| {
                let sh = lock(s);
                sh.find(key).map(|i| Attr::ALL.map(|a| sh.attrs[a as usize].get(&i).cloned()))
            })
            .unwrap_or_default()
    }

    /// Gives the record of `key` (a row another node wrote) the attribute `a` = `value` (empty:
    /// none), in whichever shard holds it; not journaled (the database has it).
    pub fn absorb_attr(&self, a: Attr, key: &ClientKey, value: &[u8]) {
        for s in &self.shards {
            let mut sh = lock(s);
            if let Some(i) = sh.find(key) {
                let map = &mut sh.attrs[a as usize];
                if value.is_empty() {
                    map.remove(&i);
                } else if map.get(&i).is_none_or(|n| **n != *value) {
                    map.insert(i, value.into());
                }
                return;
            }
        }
    }

    /// The record holding (or last holding) `addr`, and its shard.
    pub fn lease_at(&self, addr: Ipv4Addr) -> Option<(usize, Lease)> {
        let mut found: Option<(usize, Lease)> = None;
        for (i, s) in self.shards.iter().enumerate() {
            let sh = lock(s);
            if let Some(&j) = sh.by_addr.get(&u32::from(addr)) {
                let l = sh.leases[j as usize];
                // A binding beats a record merely remembered elsewhere.
                if found.is_none_or(|(_, f)| {
                    (l.state != LeaseState::Expired, l.expires) > (f.state != LeaseState::Expired, f.expires)
                }) {
                    found = Some((i, l));
                }
            }
        }
        found
    }

    /// The shard an edit of `addr` for a client with `chaddr` belongs in: the one owning the
    /// address (claimed from the spare set for the client's shard when nobody does), the
    /// reserved address's home, or, outside every pool, the client's shard.
    fn shard_for_edit(&self, addr: Ipv4Addr, chaddr: &[u8; 6]) -> usize {
        let home = self.shard_of(chaddr);
        let Some((pi, off)) = self.locate(addr) else { return home };
        let pool = &self.pools[pi];
        match pool.owner(off) {
            RESERVED => self.reserved_home(addr),
            SPARE => {
                let _spare = lock(&pool.spare);
                match pool.owner[off].compare_exchange(SPARE, home as u8, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => home,
                    Err(o) if usize::from(o) < self.shards.len() => usize::from(o),
                    Err(_) => self.reserved_home(addr),
                }
            }
            o => usize::from(o),
        }
    }

    /// Adds (`replace` false: the address must be free, else [`LeaseError::Unavailable`]) or
    /// replaces (`replace` true: a record must exist, else [`LeaseError::NotHeld`]) the lease
    /// `l` on its address, at `now`.
    pub fn admin_put(&self, l: Lease, replace: bool, now: u32) -> Result<Vec<(u64, Change)>, LeaseError> {
        let l = self.scoped(l);
        let existing = self.lease_at(l.addr);
        match (&existing, replace) {
            (Some((_, e)), false)
                if e.holds(now)
                    && matches!(e.state, LeaseState::Bound | LeaseState::Declined | LeaseState::Offered) =>
            {
                return Err(LeaseError::Unavailable);
            }
            (None, true) => return Err(LeaseError::NotHeld),
            _ => {}
        }
        let target = match existing {
            Some((i, _)) if replace => i,
            _ => self.shard_for_edit(l.addr, &l.chaddr),
        };
        let mut g = self.lock(target);
        if let Some(old) = g.get(&l.key)
            && old.addr != l.addr
            && old.holds(now)
        {
            g.push_free(old.addr);
        }
        if let Some(e) = g.by_addr(l.addr)
            && e.key != l.key
        {
            // The record the edit replaces (the same address under another key).
            let i = g.shard.find(&e.key).expect("indexed");
            g.shard.remove_idx(i);
        }
        g.shard.put(l);
        Ok(self.numbered(g.take_changes().into_iter()).collect())
    }

    /// Removes the lease on `addr`; the address is free again.
    pub fn admin_remove(&self, addr: Ipv4Addr) -> Result<Vec<(u64, Change)>, LeaseError> {
        let (shard, l) = self.lease_at(addr).ok_or(LeaseError::NotHeld)?;
        let mut g = self.lock(shard);
        if let Some(i) = g.shard.find(&l.key) {
            g.shard.remove_idx(i);
            g.push_free(addr);
        }
        Ok(self.numbered(g.take_changes().into_iter()).collect())
    }

    /// Removes every lease of subnet `subnet` (every subnet when `None`); returns the changes
    /// and how many leases went.
    pub fn admin_wipe(&self, subnet: Option<u32>) -> (Vec<(u64, Change)>, usize) {
        let mut out = vec![];
        let mut n = 0;
        for i in 0..self.shards.len() {
            let mut g = self.lock(i);
            let doomed: Vec<Lease> = g
                .shard
                .leases
                .iter()
                .filter(|l| l.key.len != 0 && subnet.is_none_or(|s| l.subnet == s))
                .copied()
                .collect();
            for l in &doomed {
                if let Some(j) = g.shard.find(&l.key) {
                    g.shard.remove_idx(j);
                    g.push_free(l.addr);
                    n += 1;
                }
            }
            out.extend(self.numbered(g.take_changes().into_iter()));
        }
        (out, n)
    }
}
