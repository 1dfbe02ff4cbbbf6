//! Cached option blocks: a scope's reply options encoded once per client parameter request
//! list. It must never answer from a block of another configuration (blocks are keyed by the
//! rendered scope's id, which a reload never reuses).

use super::{
    reply::{put_listed, put_subnet_mask},
    *,
};

/// Cached option blocks per engine.
const BLOCKS: usize = 16;
/// Longest parameter request list whose block is cached.
pub(super) const BLOCK_PRL: usize = 64;
/// Largest cached block.
const BLOCK_BYTES: usize = 1024;

/// One scope's options in one client order, encoded.
struct OptionBlock {
    /// [`RenderedOptions::id`]; 0 while empty.
    scope: u64,
    prl_len: usize,
    /// The list, zero-padded.
    prl: [u8; BLOCK_PRL],
    /// `None`: the options do not fit a block (remembered, so that they are not encoded twice
    /// for every reply).
    len: Option<usize>,
    bytes: [u8; BLOCK_BYTES],
}

/// Reply options of a scope in a client's order, encoded once and reused: the clients of a
/// network send a handful of distinct parameter request lists, so the per-option lookups run
/// once per (scope, list) rather than once per reply. Keyed by [`RenderedOptions::id`], which a
/// reload never reuses, so a new configuration cannot be answered from an old block.
pub(super) struct OptionBlocks {
    entries: Box<[OptionBlock]>,
    next: usize,
    /// The entry the last lookup found.
    last: usize,
}

impl OptionBlocks {
    pub(super) fn new() -> Self {
        let empty = || OptionBlock { scope: 0, prl_len: 0, prl: [0; BLOCK_PRL], len: None, bytes: [0; BLOCK_BYTES] };
        Self { entries: (0..BLOCKS).map(|_| empty()).collect(), next: 0, last: 0 }
    }

    /// The subnet mask and the listed options of `r` in the order of `prl`, built on first use
    /// (round-robin replacement); `None` when the list is too long or the options do not fit a
    /// block. `padded` is the list's head, zero-padded: lists are compared as whole arrays.
    pub(super) fn get(&mut self, r: &RenderedOptions, prl: &[u8], padded: &[u8; BLOCK_PRL]) -> Option<&[u8]> {
        if prl.len() > BLOCK_PRL {
            return None;
        }
        let is = |e: &OptionBlock| e.scope == r.id() && e.prl_len == prl.len() && same_words(&e.prl, padded);
        // Most clients ask what the last one asked.
        let i = if is(&self.entries[self.last]) {
            self.last
        } else if let Some(i) = self.entries.iter().position(is) {
            i
        } else {
            let i = self.next;
            self.next = (i + 1) % BLOCKS;
            let e = &mut self.entries[i];
            let mut w = OptionWriter::new(&mut e.bytes, 0, BLOCK_BYTES);
            let fits = put_subnet_mask(&mut w, r) && put_listed(&mut w, r, prl);
            e.len = fits.then(|| w.position());
            e.prl = *padded;
            e.prl_len = prl.len();
            e.scope = r.id();
            i
        };
        self.last = i;
        let e = &self.entries[i];
        e.len.map(|n| &e.bytes[..n])
    }
}

/// Whether two lists are equal, compared a word at a time (an array comparison would be a libc
/// call).
fn same_words(a: &[u8; BLOCK_PRL], b: &[u8; BLOCK_PRL]) -> bool {
    let (a, b) = (a.as_chunks::<8>().0, b.as_chunks::<8>().0);
    a.iter().zip(b).fold(0, |d, (x, y)| d | (u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y))) == 0
}
