//! Which shard holds a client's record, for the frames that arrive elsewhere: a renewal that
//! RSS put on another queue, a client id seen behind a second chaddr. Consulted only when a
//! shard does not hold the key itself, updated only when a record is created or removed, so a
//! returning client on its usual worker never touches it. It must never be trusted blindly: an
//! entry is a hint (checked under the named shard's lock), never a lease.

use std::sync::Mutex;

use hashbrown::HashMap;

/// Parts the directory is split into (by key hash), so that workers rarely meet on one lock.
const PARTS: usize = 64;

/// Key hash → shard index.
pub(super) struct Directory {
    parts: Box<[Mutex<HashMap<u64, u8>>]>,
}

impl Directory {
    pub(super) fn new() -> Self {
        Self { parts: (0..PARTS).map(|_| Mutex::new(HashMap::new())).collect() }
    }

    fn part(&self, hash: u64) -> std::sync::MutexGuard<'_, HashMap<u64, u8>> {
        // The low bits pick the hashbrown bucket; the high ones pick the part.
        self.parts[(hash >> 58) as usize % PARTS].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The record of the key with this hash now lives in `shard`.
    pub(super) fn insert(&self, hash: u64, shard: u8) {
        self.part(hash).insert(hash, shard);
    }

    /// `shard` no longer holds the record of the key with this hash (an entry naming another
    /// shard is left alone: that one holds it now).
    pub(super) fn remove(&self, hash: u64, shard: u8) {
        let mut p = self.part(hash);
        if p.get(&hash) == Some(&shard) {
            p.remove(&hash);
        }
    }

    /// The shard that last took the key with this hash.
    pub(super) fn get(&self, hash: u64) -> Option<u8> {
        self.part(hash).get(&hash).copied()
    }
}
