//! The client key a lease is kept under: option 61 when the client sends one, else htype +
//! chaddr, and the lease scope (subnet or shared network) the lease is in: a client holds one
//! lease per scope, as Kea keys leases by client and subnet. Plain bytes, hashed and compared in
//! whole words; it must never depend on anything but the request and the subnet it chose.

use std::net::Ipv4Addr;

/// The identity a lease is kept under: option 61 when present, else htype + chaddr; and the
/// lease scope.
///
/// Hashed and compared in whole (unaligned) words; an Ethernet key is built as one word and
/// stored in one go, so reading it back never waits on narrower stores. Not aligned on purpose:
/// at 33 bytes a lease costs about 80 bytes of memory all told; 8-byte alignment made it 95, for
/// no measurable speed.
#[derive(Clone, Copy, Eq)]
pub struct ClientKey {
    pub(super) bytes: [u8; 32],
    pub(super) len: u8,
}

impl std::hash::Hash for ClientKey {
    /// Consistent with `eq`: the bytes past `len` are zero in every key.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u8(self.len);
        state.write(&self.bytes);
    }
}

impl PartialEq for ClientKey {
    /// Word by word (bytes past `len` are always zero): the lease tables compare keys on every
    /// lookup, and a byte-array comparison is a libc call. Always inlined: as a call it costs
    /// more than the comparison (≈ 15 instructions a lookup).
    #[inline(always)]
    fn eq(&self, other: &Self) -> bool {
        let diff = self.words().iter().zip(other.words()).fold(0, |d, (a, b)| d | (a ^ b));
        self.len == other.len && diff == 0
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, data) = match self.client_part() {
            Some((true, d)) => ("id", d),
            Some((false, d)) => ("hw", d),
            None => ("declined", &self.as_bytes()[1..]),
        };
        write!(f, "{kind}:")?;
        for x in data {
            write!(f, "{x:02x}")?;
        }
        if let Some(s) = self.scope() {
            write!(f, "@{s}")?;
        }
        Ok(())
    }
}

/// Key tags (the first byte). Keys of a client carry the lease scope they are held in (the
/// subnet, or the shared network as its lowest subnet id) in their last four bytes, so one
/// client holds one lease per scope and activity in one scope never touches another's lease.
/// Tags 0 and 1 are the unscoped keys older journals, snapshots and databases hold; they are
/// given their scope when read back ([`ClientKey::rescoped`]).
mod tag {
    pub const LEGACY_CLIENT_ID: u8 = 0;
    pub const LEGACY_HW: u8 = 1;
    pub const DECLINED: u8 = 2;
    pub const CLIENT_ID: u8 = 3;
    pub const HW: u8 = 4;
}

impl ClientKey {
    /// `tag`, then `data` (or, when it does not fit beside the scope, its first bytes and a
    /// 64-bit FNV-1a of the whole), then `scope` when given.
    pub(super) fn from_tagged(tag: u8, data: &[u8], scope: Option<u32>) -> Self {
        let room = if scope.is_some() { 27 } else { 31 };
        let mut bytes = [0u8; 32];
        bytes[0] = tag;
        let mut len = if data.len() <= room {
            bytes[1..1 + data.len()].copy_from_slice(data);
            1 + data.len()
        } else {
            // Long identifiers: the leading bytes and a 64-bit FNV-1a of the whole.
            let lead = room - 8;
            bytes[1..1 + lead].copy_from_slice(&data[..lead]);
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in data {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            bytes[1 + lead..1 + room].copy_from_slice(&h.to_be_bytes());
            1 + room
        };
        if let Some(s) = scope {
            bytes[len..len + 4].copy_from_slice(&s.to_le_bytes());
            len += 4;
        }
        Self { len: len as u8, bytes }
    }
    /// Key from a client identifier (option 61), in lease scope `scope`.
    pub fn client_id(id: &[u8], scope: u32) -> Self {
        Self::from_tagged(tag::CLIENT_ID, id, Some(scope))
    }
    /// Key from htype and chaddr, in lease scope `scope`.
    #[inline]
    pub fn hw(htype: u8, chaddr: &[u8], scope: u32) -> Self {
        if let Ok(&[a, b, c, d, e, f]) = <&[u8; 6]>::try_from(chaddr) {
            let mut bytes = [0u8; 32];
            let [s0, s1, s2, s3] = scope.to_le_bytes();
            // Two whole words: stored in one go each, so reading them back never waits on
            // narrower stores.
            bytes[..8].copy_from_slice(&u64::from_le_bytes([tag::HW, htype, a, b, c, d, e, f]).to_le_bytes());
            bytes[8..16].copy_from_slice(&u64::from_le_bytes([s0, s1, s2, s3, 0, 0, 0, 0]).to_le_bytes());
            return Self { len: 12, bytes };
        }
        let n = chaddr.len().min(16);
        let mut data = [0u8; 17];
        data[0] = htype;
        data[1..1 + n].copy_from_slice(&chaddr[..n]);
        Self::from_tagged(tag::HW, &data[..1 + n], Some(scope))
    }
    /// The lease scope of a client's key (None: a declined address, or an unscoped key of an
    /// older format).
    pub fn scope(&self) -> Option<u32> {
        match self.bytes[0] {
            tag::CLIENT_ID | tag::HW if self.len >= 5 => {
                let n = usize::from(self.len);
                Some(u32::from_le_bytes([self.bytes[n - 4], self.bytes[n - 3], self.bytes[n - 2], self.bytes[n - 1]]))
            }
            _ => None,
        }
    }
    /// The client part of the key: its tag kind and identifier bytes, without the scope.
    fn client_part(&self) -> Option<(bool, &[u8])> {
        let b = self.as_bytes();
        match b[0] {
            tag::LEGACY_CLIENT_ID => Some((true, &b[1..])),
            tag::LEGACY_HW => Some((false, &b[1..])),
            tag::CLIENT_ID if b.len() >= 5 => Some((true, &b[1..b.len() - 4])),
            tag::HW if b.len() >= 5 => Some((false, &b[1..b.len() - 4])),
            _ => None,
        }
    }
    /// The client identifier (option 61) this key was made from (its first bytes and a hash
    /// when it was too long to keep whole), None for a key made from chaddr.
    pub fn client_id_bytes(&self) -> Option<&[u8]> {
        self.client_part().filter(|(id, _)| *id).map(|(_, b)| b)
    }
    /// Whether both keys name the same client, in whatever scope.
    pub fn same_client(&self, other: &Self) -> bool {
        match (self.client_part(), other.client_part()) {
            (Some((a, x)), Some((b, y))) => {
                // An older unscoped key of a long identifier kept more leading bytes: compare
                // through a rebuilt scoped key instead.
                a == b && (x == y || self.rescoped(0) == other.rescoped(0))
            }
            _ => self == other,
        }
    }
    /// This client's key in lease scope `scope` (an unscoped key of an older format gets
    /// one). A declined address's key is returned as it is.
    pub fn rescoped(&self, scope: u32) -> Self {
        let b = self.as_bytes();
        match b[0] {
            tag::LEGACY_CLIENT_ID if b.len() == 32 => {
                // 23 leading bytes and the hash of the whole: keep 19 and the same hash.
                let mut k = Self { len: 32, bytes: [0; 32] };
                k.bytes[0] = tag::CLIENT_ID;
                k.bytes[1..20].copy_from_slice(&b[1..20]);
                k.bytes[20..28].copy_from_slice(&b[24..32]);
                k.bytes[28..32].copy_from_slice(&scope.to_le_bytes());
                k
            }
            tag::LEGACY_CLIENT_ID => Self::client_id(&b[1..], scope),
            tag::LEGACY_HW if b.len() >= 2 => Self::hw(b[1], &b[2..], scope),
            tag::CLIENT_ID | tag::HW if b.len() >= 5 => {
                let mut k = *self;
                let n = usize::from(k.len);
                k.bytes[n - 4..n].copy_from_slice(&scope.to_le_bytes());
                k
            }
            _ => *self,
        }
    }
    pub(super) fn words(&self) -> [u64; 4] {
        std::array::from_fn(|i| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&self.bytes[8 * i..8 * i + 8]);
            u64::from_ne_bytes(w)
        })
    }
    /// Key holding a declined address on probation.
    pub fn declined(addr: Ipv4Addr) -> Self {
        Self::from_tagged(tag::DECLINED, &addr.octets(), None)
    }
    /// The encoded key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
    /// Rebuilds a key from [`as_bytes`](Self::as_bytes) output.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.is_empty() || b.len() > 32 {
            return None;
        }
        let mut bytes = [0u8; 32];
        bytes[..b.len()].copy_from_slice(b);
        Some(Self { len: b.len() as u8, bytes })
    }
    /// In-memory table hash (never stored): the four words of the zero-padded key multiplied
    /// independently, then one folded 128-bit multiply to spread every bit over the result.
    pub(super) fn hash64(&self) -> u64 {
        const K: [u64; 4] =
            [0x9e37_79b9_7f4a_7c15, 0xc2b2_ae3d_27d4_eb4f, 0x1656_67b1_9e37_79f9, 0xd6e8_feb8_6659_fd93];
        let mut acc = u64::from(self.len);
        for (w, k) in self.words().into_iter().zip(K) {
            acc ^= w.wrapping_mul(k);
        }
        let m = u128::from(acc ^ 0x2d35_8dcc_aa6c_78a5) * u128::from(0x8bb8_4b93_962e_acc9u64);
        (m as u64) ^ ((m >> 64) as u64)
    }
}
