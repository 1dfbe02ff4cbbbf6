//! Delegated-prefix pools (DHCPv6 prefix delegation, RFC 8415 §6.3): a pool prefix (`prefix`,
//! `prefix-len`) cut into prefixes of `delegated-len`, numbered 0..count, and an O(1)
//! allocator over those numbers. An IA_NA pool's address range is numbered the same way (each
//! address a /128), so one allocator serves both.
//!
//! Numbers, not addresses, are what a pool keeps: the n-th delegated prefix is the pool prefix
//! with n in the bits between `prefix-len` and `delegated-len`, so a number fits the same owner
//! bytes and free lists the v4 pools keep per address.

use std::net::Ipv6Addr;

/// Most delegated prefixes one pool may hold (2^24: a /40 cut into /64s, a /32 into /56s).
pub const MAX_PREFIXES: u32 = 1 << 24;

/// Why a prefix pool was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixError {
    /// `prefix-len` above 128, or `delegated-len` not between `prefix-len` and 128.
    Lengths,
    /// The pool prefix has bits set beyond `prefix-len`.
    HostBits,
    /// More than [`MAX_PREFIXES`] delegated prefixes (or addresses in a range).
    TooMany,
    /// An address range whose first address is above its last.
    Order,
}

impl std::fmt::Display for PrefixError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Lengths => "delegated-len must lie between prefix-len and 128",
            Self::HostBits => "the prefix has bits set beyond prefix-len",
            Self::TooMany => "the pool holds more than 2^24 delegated prefixes or addresses",
            Self::Order => "the range's first address is above its last",
        })
    }
}

impl std::error::Error for PrefixError {}

/// A pool prefix cut into delegated prefixes, or a range of addresses (each a /128), numbered
/// from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixRange {
    base: u128,
    count: u32,
    delegated: u8,
}

impl PrefixRange {
    /// `prefix`/`len` cut into prefixes of `delegated` bits.
    pub fn new(prefix: Ipv6Addr, len: u8, delegated: u8) -> Result<Self, PrefixError> {
        if len > 128 || delegated < len || delegated > 128 {
            return Err(PrefixError::Lengths);
        }
        let base = u128::from(prefix);
        if len < 128 && base & (u128::MAX >> len) != 0 {
            return Err(PrefixError::HostBits);
        }
        if u32::from(delegated - len) > MAX_PREFIXES.trailing_zeros() {
            return Err(PrefixError::TooMany);
        }
        Ok(Self { base, count: 1 << (delegated - len), delegated })
    }

    /// The addresses `first..=last` (an IA_NA pool's `range`).
    pub fn addresses(first: Ipv6Addr, last: Ipv6Addr) -> Result<Self, PrefixError> {
        let (a, b) = (u128::from(first), u128::from(last));
        if a > b {
            return Err(PrefixError::Order);
        }
        if b - a >= u128::from(MAX_PREFIXES) {
            return Err(PrefixError::TooMany);
        }
        Ok(Self { base: a, count: (b - a) as u32 + 1, delegated: 128 })
    }

    /// How many delegated prefixes (addresses) it holds.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether `addr` lies in the range (for a prefix pool: inside the pool prefix).
    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        let a = u128::from(addr);
        let shift = 128 - u32::from(self.delegated);
        a >= self.base && (a - self.base).checked_shr(shift).unwrap_or(0) < u128::from(self.count)
    }

    /// The length of each delegated prefix.
    pub fn delegated_len(&self) -> u8 {
        self.delegated
    }

    /// The `n`-th delegated prefix (`n` below [`count`](Self::count)).
    pub fn nth(&self, n: u32) -> Option<Ipv6Addr> {
        (n < self.count()).then(|| {
            let shift = 128 - u32::from(self.delegated);
            // A /128 delegation shifts by 0; a shift of 128 (a /0 delegated whole) only occurs
            // for n == 0. The base of a prefix pool has no bits below its length, so adding is
            // setting them; an address range may start anywhere.
            Ipv6Addr::from(self.base + u128::from(n).checked_shl(shift).unwrap_or(0))
        })
    }

    /// The number of `prefix`/`len` in this pool, when it is one of its delegated prefixes.
    pub fn index_of(&self, prefix: Ipv6Addr, len: u8) -> Option<u32> {
        if len != self.delegated {
            return None;
        }
        let p = u128::from(prefix);
        if p < self.base || p & u128::MAX.checked_shr(u32::from(self.delegated)).unwrap_or(0) != 0 {
            return None;
        }
        let n = (p - self.base).checked_shr(128 - u32::from(self.delegated)).unwrap_or(0);
        u32::try_from(n).ok().filter(|&n| n < self.count())
    }
}

/// Stripes a pool's numbers are dealt into: number `n` is in stripe `n % STRIPES`. In cluster
/// mode a stripe is allocated only by the node that serves the load-balancing bucket of the
/// same number, so nodes never contend for a v6 number and a takeover moves the address space
/// with the clients.
pub const STRIPES: usize = 256;

/// Stripes a node may allocate from (bit `s % 32` of word `s / 32`, as the bucket map).
pub type Stripes = [u32; STRIPES / 32];

/// Every stripe.
pub const ALL_STRIPES: Stripes = [u32::MAX; STRIPES / 32];

/// O(1) allocation of a pool's delegated prefixes by number: per stripe a stack of free
/// numbers, a bit per stripe that has any, and a bit per number (a number is never handed out
/// twice, nor released twice).
#[derive(Debug, Clone)]
pub struct PrefixPool {
    range: PrefixRange,
    /// Free numbers per stripe, and numbers `take` has taken since they were pushed (skipped
    /// when popped).
    free: Vec<Vec<u32>>,
    /// Stripes whose stack is not empty.
    stocked: Stripes,
    /// The stripe the next allocation looks at first (round robin: lowest numbers first).
    cursor: usize,
    used: Vec<u64>,
    taken: u32,
}

impl PrefixPool {
    /// Every prefix of `range` free; the lowest numbers are handed out first.
    pub fn new(range: PrefixRange) -> Self {
        let n = range.count();
        let stripes = (n as usize).min(STRIPES);
        let mut free: Vec<Vec<u32>> = (0..stripes).map(|s| (s as u32..n).step_by(STRIPES).rev().collect()).collect();
        free.shrink_to_fit();
        let mut stocked = [0u32; STRIPES / 32];
        for s in 0..stripes {
            stocked[s / 32] |= 1 << (s % 32);
        }
        Self { range, free, stocked, cursor: 0, used: vec![0; (n as usize).div_ceil(64)], taken: 0 }
    }

    /// The range.
    pub fn range(&self) -> &PrefixRange {
        &self.range
    }

    /// Free prefixes.
    pub fn available(&self) -> usize {
        (self.range.count() - self.taken) as usize
    }

    fn bit(&self, n: u32) -> bool {
        self.used[(n / 64) as usize] & (1 << (n % 64)) != 0
    }

    fn set(&mut self, n: u32, on: bool) {
        if on {
            self.taken += 1;
        } else {
            self.taken -= 1;
        }
        let w = &mut self.used[(n / 64) as usize];
        if on {
            *w |= 1 << (n % 64);
        } else {
            *w &= !(1 << (n % 64));
        }
    }

    /// The first stripe at or after the cursor (wrapping) that has free numbers and is in
    /// `allowed`.
    fn next_stripe(&self, allowed: &Stripes) -> Option<usize> {
        let (w, b) = (self.cursor / 32, self.cursor % 32);
        if self.stocked[w] & allowed[w] & (1 << b) != 0 {
            return Some(self.cursor);
        }
        let words = STRIPES / 32;
        let (w0, b0) = (self.cursor / 32, self.cursor % 32);
        for i in 0..=words {
            let w = (w0 + i) % words;
            let mut bits = self.stocked[w] & allowed[w];
            if i == 0 {
                bits &= u32::MAX << b0;
            } else if i == words {
                bits &= !(u32::MAX << b0);
            }
            if bits != 0 {
                return Some(w * 32 + bits.trailing_zeros() as usize);
            }
        }
        None
    }

    /// A free prefix (its number and address) of the stripes in `allowed`, or `None` when they
    /// are exhausted (NoPrefixAvail).
    pub fn allocate(&mut self, allowed: &Stripes) -> Option<(u32, Ipv6Addr)> {
        while let Some(s) = self.next_stripe(allowed) {
            while let Some(n) = self.free[s].pop() {
                // A number taken by `take` since it was freed stays taken.
                if !self.bit(n) {
                    self.set(n, true);
                    if self.free[s].is_empty() {
                        self.stocked[s / 32] &= !(1 << (s % 32));
                    }
                    self.cursor = (s + 1) % STRIPES;
                    return self.range.nth(n).map(|p| (n, p));
                }
            }
            self.stocked[s / 32] &= !(1 << (s % 32));
        }
        None
    }

    /// Takes the given prefix (a client's hint, a reservation, a lease recovered): `false`
    /// when it is not of this pool or already taken.
    pub fn take(&mut self, prefix: Ipv6Addr, len: u8) -> bool {
        match self.range.index_of(prefix, len) {
            Some(n) if !self.bit(n) => {
                self.set(n, true);
                true
            }
            _ => false,
        }
    }

    /// Takes a client's hint when it is free and of a stripe in `allowed` (in cluster mode a
    /// node takes no number of another node's stripe, even when asked for it).
    pub fn take_hint(&mut self, prefix: Ipv6Addr, len: u8, allowed: &Stripes) -> bool {
        match self.range.index_of(prefix, len) {
            Some(n) if allowed[n as usize % STRIPES / 32] & (1 << (n as usize % 32)) != 0 => self.take(prefix, len),
            _ => false,
        }
    }

    /// Gives prefix number `n` back: `false` when it was not taken.
    pub fn release(&mut self, n: u32) -> bool {
        if n >= self.range.count() || !self.bit(n) {
            return false;
        }
        self.set(n, false);
        let s = n as usize % STRIPES;
        self.free[s].push(n);
        self.stocked[s / 32] |= 1 << (s % 32);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn a_48_cut_into_56s_numbers_its_prefixes() {
        let r = PrefixRange::new(v6("2001:db8:100::"), 48, 56).unwrap();
        assert_eq!(r.count(), 256);
        assert_eq!(r.nth(0), Some(v6("2001:db8:100::")));
        assert_eq!(r.nth(1), Some(v6("2001:db8:100:100::")));
        assert_eq!(r.nth(255), Some(v6("2001:db8:100:ff00::")));
        assert_eq!(r.nth(256), None);
        assert_eq!(r.index_of(v6("2001:db8:100:ff00::"), 56), Some(255));
        // Another length, another pool, host bits below the delegated length: not ours.
        assert_eq!(r.index_of(v6("2001:db8:100:ff00::"), 60), None);
        assert_eq!(r.index_of(v6("2001:db8:101::"), 56), None);
        assert_eq!(r.index_of(v6("2001:db8:100:ff00::1"), 56), None);
        // Every number maps back to itself.
        assert!((0..r.count()).all(|n| r.index_of(r.nth(n).unwrap(), 56) == Some(n)));
    }

    #[test]
    fn bad_pools_are_refused_with_the_reason() {
        assert_eq!(PrefixRange::new(v6("2001:db8::"), 56, 48), Err(PrefixError::Lengths));
        assert_eq!(PrefixRange::new(v6("2001:db8::"), 48, 129), Err(PrefixError::Lengths));
        assert_eq!(PrefixRange::new(v6("2001:db8::1"), 48, 56), Err(PrefixError::HostBits));
        assert_eq!(PrefixRange::new(v6("2001:db8::"), 32, 64), Err(PrefixError::TooMany));
        assert!(PrefixRange::new(v6("2001:db8::"), 40, 64).is_ok(), "2^24 is the most");
        // Edge lengths: a whole /128 pool of one, and ::/0 cut into /24s.
        let one = PrefixRange::new(v6("2001:db8::5"), 128, 128).unwrap();
        assert_eq!((one.count(), one.nth(0)), (1, Some(v6("2001:db8::5"))));
        assert_eq!(one.index_of(v6("2001:db8::5"), 128), Some(0));
        let all = PrefixRange::new(Ipv6Addr::UNSPECIFIED, 0, 24).unwrap();
        assert_eq!(all.nth(all.count() - 1), Some(v6("ffff:ff00::")));
        assert_eq!(all.index_of(v6("ffff:ff00::"), 24), Some(all.count() - 1));
    }

    #[test]
    fn an_address_range_numbers_its_addresses() {
        let r = PrefixRange::addresses(v6("2001:db8:1::1fe"), v6("2001:db8:1::201")).unwrap();
        assert_eq!((r.count(), r.delegated_len()), (4, 128));
        assert_eq!(r.nth(0), Some(v6("2001:db8:1::1fe")));
        assert_eq!(r.nth(3), Some(v6("2001:db8:1::201")));
        assert_eq!(r.nth(4), None);
        assert_eq!(r.index_of(v6("2001:db8:1::200"), 128), Some(2));
        assert_eq!(r.index_of(v6("2001:db8:1::1fd"), 128), None);
        assert_eq!(r.index_of(v6("2001:db8:1::202"), 128), None);
        assert!(r.contains(v6("2001:db8:1::1ff")) && !r.contains(v6("2001:db8:1::202")));
        assert_eq!(PrefixRange::addresses(v6("2001:db8::2"), v6("2001:db8::1")), Err(PrefixError::Order));
        assert_eq!(PrefixRange::addresses(v6("2001:db8::"), v6("2001:db8::1:0:0")), Err(PrefixError::TooMany));
        let p = PrefixRange::new(v6("2001:db8:100::"), 48, 56).unwrap();
        assert!(p.contains(v6("2001:db8:100:ff00::1")) && !p.contains(v6("2001:db8:101::")));
    }

    #[test]
    fn the_pool_hands_each_prefix_out_once_and_takes_it_back_once() {
        let mut p = PrefixPool::new(PrefixRange::new(v6("2001:db8:200::"), 56, 60).unwrap());
        assert_eq!(p.available(), 16);
        // A client's hint (or a recovered lease) is taken first; allocation skips it.
        assert!(p.take(v6("2001:db8:200:0::"), 60));
        assert!(!p.take(v6("2001:db8:200:0::"), 60), "taken twice");
        let got: Vec<(u32, Ipv6Addr)> = std::iter::from_fn(|| p.allocate(&ALL_STRIPES)).collect();
        assert_eq!(got.len(), 15, "exhausted after the other 15");
        assert_eq!(got[0], (1, v6("2001:db8:200:10::")));
        assert_eq!(p.allocate(&ALL_STRIPES), None, "NoPrefixAvail");
        assert!(p.release(3));
        assert!(!p.release(3), "released twice");
        assert!(!p.release(99), "not of this pool");
        assert_eq!(p.allocate(&ALL_STRIPES), Some((3, v6("2001:db8:200:30::"))));
        // A number freed and then taken by a hint is not handed out again.
        assert!(p.release(5));
        assert!(p.take(v6("2001:db8:200:50::"), 60));
        assert_eq!(p.allocate(&ALL_STRIPES), None);
    }

    #[test]
    fn stripes_divide_a_pool_between_nodes_without_overlap() {
        // Two nodes: the even stripes and the odd ones (as bucket b mod 2 divides them).
        let even: Stripes = [0x5555_5555; STRIPES / 32];
        let odd: Stripes = [0xaaaa_aaaa; STRIPES / 32];
        let range = PrefixRange::addresses(v6("2001:db8::"), v6("2001:db8::3ff")).unwrap();
        let (mut a, mut b) = (PrefixPool::new(range), PrefixPool::new(range));
        let got_a: Vec<u32> = std::iter::from_fn(|| a.allocate(&even).map(|(n, _)| n)).collect();
        let got_b: Vec<u32> = std::iter::from_fn(|| b.allocate(&odd).map(|(n, _)| n)).collect();
        assert_eq!(got_a.len(), 512);
        assert_eq!(got_b.len(), 512);
        assert!(got_a.iter().all(|n| n % 2 == 0) && got_b.iter().all(|n| n % 2 == 1));
        assert_eq!(&got_a[..3], &[0, 2, 4], "lowest first within the allowed stripes");
        // A takeover: node a now serves every stripe and finds b's share free in its own table.
        assert_eq!(a.allocate(&ALL_STRIPES).map(|(n, _)| n % 2), Some(1));
        // A released number comes back in its stripe only.
        assert!(b.release(7));
        assert_eq!(b.allocate(&odd).map(|(n, _)| n), Some(7));
        assert_eq!(b.allocate(&odd), None);
        // No stripe allowed: nothing.
        assert!(a.release(0));
        assert_eq!(a.allocate(&[0; STRIPES / 32]), None);
        assert_eq!(a.available(), 1024 - 513 + 1);
    }
}
