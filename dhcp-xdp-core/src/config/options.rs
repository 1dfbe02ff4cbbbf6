//! Option values: the table a scope configures (global → subnet → pool → reservation, each
//! overriding by code) and its rendered, indexed form the engine reads per reply. A rendered set
//! is never changed after it is built; its id is never reused, so caches keyed by it stay right.

/// Configured option values by code, each stored encoded (value bytes only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionTable {
    values: Vec<(u8, Vec<u8>)>,
}

impl OptionTable {
    /// Value of `code`.
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.values.iter().find(|(c, _)| *c == code).map(|(_, v)| v.as_slice())
    }
    /// Sets (replaces) `code`.
    pub fn set(&mut self, code: u8, value: Vec<u8>) {
        match self.values.iter_mut().find(|(c, _)| *c == code) {
            Some(slot) => slot.1 = value,
            None => self.values.push((code, value)),
        }
    }
    /// `self` overridden by `more` code by code.
    pub fn overlay(&self, more: &OptionTable) -> OptionTable {
        let mut t = self.clone();
        for (c, v) in &more.values {
            t.set(*c, v.clone());
        }
        t
    }
    /// Whether it sets nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// All (code, value) pairs, in the order configured.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &[u8])> {
        self.values.iter().map(|(c, v)| (*c, v.as_slice()))
    }
}

/// Options fully merged for one scope, with a per-code index for O(1) lookup.
#[derive(Debug, Clone)]
pub struct RenderedOptions {
    id: u64,
    index: Box<[u16; 256]>,
    arena: Vec<u8>,
    order: Vec<u8>,
}

/// Source of [`RenderedOptions::id`]: never reused within a process, across reloads too.
static NEXT_RENDERED_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl RenderedOptions {
    /// Freezes a table.
    pub fn new(t: &OptionTable) -> Self {
        let mut index = Box::new([0u16; 256]);
        let mut arena = vec![0u8];
        let mut order = vec![];
        for (c, v) in t.iter() {
            index[usize::from(c)] = arena.len() as u16;
            arena.extend_from_slice(&(v.len() as u16).to_be_bytes());
            arena.extend_from_slice(v);
            order.push(c);
        }
        let id = NEXT_RENDERED_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self { id, index, arena, order }
    }
    /// Identifies this set of options for caches of what is derived from it: two sets with the
    /// same id have the same contents.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Value of `code`.
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        let at = usize::from(self.index[usize::from(code)]);
        if at == 0 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([self.arena[at], self.arena[at + 1]]));
        self.arena.get(at + 2..at + 2 + len)
    }
    /// Codes in configuration order.
    pub fn codes(&self) -> &[u8] {
        &self.order
    }
}

/// Parses `01:02:0a`, `01-02-0a` or `01020a`.
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let clean: String = s.chars().filter(|c| !matches!(c, ':' | '-' | ' ')).collect();
    if clean.is_empty() || !clean.len().is_multiple_of(2) {
        return None;
    }
    (0..clean.len()).step_by(2).map(|i| u8::from_str_radix(&clean[i..i + 2], 16).ok()).collect()
}
