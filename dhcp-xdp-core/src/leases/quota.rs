//! What one subscriber holds and how fast it asks: addresses held (offered or bound) per chaddr,
//! relay circuit and remote id, new offers per offer-hold period, requests per second per
//! circuit. Counts live here, beside the shards, because one subscriber's clients land in many
//! shards. Kept current by the shards themselves (a record that starts or stops holding an
//! address adjusts them), so no scan is needed and a reload keeps them. It must never let a
//! count go below zero, nor be consulted for a client that already holds its address (a
//! renewal never touches it).

use std::sync::{Mutex, MutexGuard};

use hashbrown::HashMap;

use super::{Lease, LeaseState};

/// Parts each table is split into (by tag), so that workers rarely meet on one lock.
const PARTS: usize = 64;

/// What a subscriber is known by, besides its chaddr: hashes of the relay's circuit id and
/// remote id (option 82.1 / 82.2; 0: none). Stored with each lease so that its end can be
/// counted against the same subscriber.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Tags {
    /// Hash of the circuit id (0: none).
    pub circuit: u32,
    /// Hash of the remote id (0: none).
    pub remote: u32,
}

impl Tags {
    /// The tag of an option 82 sub-option value (0 only for an empty one).
    pub fn of(value: &[u8]) -> u32 {
        if value.is_empty() {
            return 0;
        }
        let h = value.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
        h.max(1)
    }

    /// The tags of a whole option 82 (its circuit id, 82.1, and remote id, 82.2).
    pub fn of_relay_info(rai: &[u8]) -> Self {
        let mut t = Self::default();
        for (code, v) in crate::dhcp4::sub_options(rai) {
            match code {
                1 => t.circuit = Self::of(v),
                2 => t.remote = Self::of(v),
                _ => {}
            }
        }
        t
    }
}

/// The counted identities of a lease (or request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Who {
    Mac(u64),
    Circuit(u32),
    Remote(u32),
}

impl Who {
    fn key(self) -> u64 {
        match self {
            Who::Mac(m) => m,
            Who::Circuit(c) => (1 << 62) | u64::from(c),
            Who::Remote(r) => (2 << 62) | u64::from(r),
        }
    }

    pub(super) fn mac(chaddr: &[u8; 6]) -> Self {
        Who::Mac(chaddr.iter().fold(0u64, |a, &b| a << 8 | u64::from(b)))
    }

    /// Everyone `chaddr` + `tags` stands for.
    pub(super) fn all(chaddr: &[u8; 6], tags: Tags) -> impl Iterator<Item = Who> {
        [
            Some(Who::mac(chaddr)),
            (tags.circuit != 0).then_some(Who::Circuit(tags.circuit)),
            (tags.remote != 0).then_some(Who::Remote(tags.remote)),
        ]
        .into_iter()
        .flatten()
    }
}

/// A table of counts by subscriber, split into locked parts.
type Parts<V> = Box<[Mutex<HashMap<u64, V>>]>;

/// Counts per subscriber, shared by all shards.
pub(super) struct Quota {
    held: Parts<u32>,
    /// New offers: (start of the current window, offers in it).
    offers: Parts<(u32, u32)>,
    /// Requests: (the current second, requests in it).
    rate: Parts<(u32, u32)>,
}

fn part<T>(parts: &[Mutex<T>], key: u64) -> MutexGuard<'_, T> {
    let i = (key ^ key >> 29).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58;
    parts[i as usize % parts.len()].lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether a record counts as holding an address for the quotas.
pub(super) fn counts(l: &Lease) -> bool {
    l.key.len != 0 && matches!(l.state, LeaseState::Offered | LeaseState::Bound)
}

impl Quota {
    pub(super) fn new() -> Self {
        fn parts<V>() -> Parts<V> {
            (0..PARTS).map(|_| Mutex::new(HashMap::new())).collect()
        }
        Self { held: parts(), offers: parts(), rate: parts() }
    }

    /// `l` starts (`up`) or stops holding an address.
    pub(super) fn adjust(&self, l: &Lease, up: bool) {
        for who in Who::all(&l.chaddr, l.tags) {
            let k = who.key();
            let mut p = part(&self.held, k);
            if up {
                *p.entry(k).or_insert(0) += 1;
            } else if let Some(n) = p.get_mut(&k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    p.remove(&k);
                }
            }
        }
    }

    /// Addresses `who` holds.
    pub(super) fn held(&self, who: Who) -> u32 {
        let k = who.key();
        part(&self.held, k).get(&k).copied().unwrap_or(0)
    }

    /// Counts one event of `who` in `table`'s window of `window` seconds starting where the
    /// last one did; false (and not counted) when `limit` events are in the window already.
    fn within(table: &Parts<(u32, u32)>, who: Who, now: u32, window: u32, limit: u32) -> bool {
        let k = who.key();
        let mut p = part(table, k);
        let e = p.entry(k).or_insert((now, 0));
        if now.wrapping_sub(e.0) >= window {
            *e = (now, 0);
        }
        if e.1 >= limit {
            return false;
        }
        e.1 += 1;
        // Forget windows long past, a few per call, so the table does not grow without end.
        if p.len() > 4096 {
            p.retain(|_, (start, _)| now.wrapping_sub(*start) < window.max(1) * 4);
        }
        true
    }

    /// A new offer to `who` within `limit` per `window` seconds.
    pub(super) fn offer(&self, who: Who, now: u32, window: u32, limit: u32) -> bool {
        Self::within(&self.offers, who, now, window.max(1), limit)
    }

    /// A request from `who` within `limit` per second (0: no limit).
    pub(super) fn rate(&self, who: Who, now: u32, limit: u32) -> bool {
        limit == 0 || Self::within(&self.rate, who, now, 1, limit)
    }
}
