//! The client key a lease is kept under: option 61 when the client sends one, else htype +
//! chaddr. Plain bytes, hashed and compared in whole words; it must never depend on anything but
//! the request.

use std::net::Ipv4Addr;

/// The identity a lease is kept under: option 61 when present, else htype + chaddr.
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
        let b = self.as_bytes();
        write!(f, "{}:", if b.first() == Some(&0) { "id" } else { "hw" })?;
        for x in b.iter().skip(1) {
            write!(f, "{x:02x}")?;
        }
        Ok(())
    }
}

impl ClientKey {
    pub(super) fn from_tagged(tag: u8, data: &[u8]) -> Self {
        let mut bytes = [0u8; 32];
        bytes[0] = tag;
        if data.len() <= 31 {
            bytes[1..1 + data.len()].copy_from_slice(data);
            return Self { len: 1 + data.len() as u8, bytes };
        }
        // Long identifiers: 23 leading bytes and a 64-bit FNV-1a of the whole.
        bytes[1..24].copy_from_slice(&data[..23]);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        bytes[24..32].copy_from_slice(&h.to_be_bytes());
        Self { len: 32, bytes }
    }
    /// Key from a client identifier (option 61).
    pub fn client_id(id: &[u8]) -> Self {
        Self::from_tagged(0, id)
    }
    /// Key from htype and chaddr.
    #[inline]
    pub fn hw(htype: u8, chaddr: &[u8]) -> Self {
        if let Ok(&[a, b, c, d, e, f]) = <&[u8; 6]>::try_from(chaddr) {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&u64::from_le_bytes([1, htype, a, b, c, d, e, f]).to_le_bytes());
            return Self { len: 8, bytes };
        }
        let n = chaddr.len().min(16);
        let mut bytes = [0u8; 32];
        bytes[0] = 1;
        bytes[1] = htype;
        bytes[2..2 + n].copy_from_slice(&chaddr[..n]);
        Self { len: 2 + n as u8, bytes }
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
        Self::from_tagged(2, &addr.octets())
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
