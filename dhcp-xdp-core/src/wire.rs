//! Zero-copy views over the L2–L4 headers of a DHCP frame: Ethernet, 0–2 VLAN tags, IPv4 (with
//! options) and UDP, plus the checksums a reply needs.
//!
//! [`FrameLayout::parse`] validates once; after that every offset it hands out lies inside the
//! frame, so the accessors index without panicking. Nothing here allocates or performs I/O.

use std::net::{Ipv4Addr, Ipv6Addr};

use dhcp_xdp_common::ethertype;

/// Length of an Ethernet II header.
pub const ETH_HLEN: usize = 14;
/// Length of one VLAN tag.
pub const VLAN_HLEN: usize = 4;
/// Length of an IPv4 header without options.
pub const IPV4_MIN_HLEN: usize = 20;
/// Length of a UDP header.
pub const UDP_HLEN: usize = 8;
/// IANA protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// Why a frame could not be understood as IPv4/UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The frame ends before a header it announces.
    #[error("frame truncated")]
    Truncated,
    /// Ethertype after 0–2 VLAN tags is not IPv4.
    #[error("not IPv4")]
    NotIpv4,
    /// IPv4 version or header length field is invalid.
    #[error("bad IPv4 header")]
    BadIpv4Header,
    /// IPv4 packet is a fragment.
    #[error("IPv4 fragment")]
    Fragment,
    /// Not UDP.
    #[error("not UDP")]
    NotUdp,
    /// IPv4 total length or UDP length disagrees with the frame.
    #[error("length fields inconsistent")]
    BadLength,
    /// Checksum present and wrong.
    #[error("bad checksum")]
    BadChecksum,
}

/// Offsets of the headers of one IPv4/UDP frame, validated against its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLayout {
    /// Number of VLAN tags (0, 1 or 2) between the MAC addresses and the IPv4 ethertype.
    pub vlan_tags: u8,
    /// Offset of the IPv4 header.
    pub l3: usize,
    /// Offset of the UDP header.
    pub l4: usize,
    /// Offset of the UDP payload.
    pub payload: usize,
    /// Length of the UDP payload as the UDP header states it (≤ what the frame holds).
    pub payload_len: usize,
}

fn be16(b: &[u8], at: usize) -> Result<u16, WireError> {
    match b.get(at..at + 2) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(WireError::Truncated),
    }
}

impl FrameLayout {
    /// Validates the Ethernet/VLAN/IPv4/UDP headers of `frame`.
    pub fn parse(frame: &[u8]) -> Result<Self, WireError> {
        let mut proto = be16(frame, 12)?;
        let mut l3 = ETH_HLEN;
        let mut vlan_tags = 0u8;
        while (proto == ethertype::VLAN_8021Q || proto == ethertype::VLAN_8021AD) && vlan_tags < 2 {
            proto = be16(frame, l3 + 2)?;
            l3 += VLAN_HLEN;
            vlan_tags += 1;
        }
        if proto != ethertype::IPV4 {
            return Err(WireError::NotIpv4);
        }
        let ip = frame.get(l3..).ok_or(WireError::Truncated)?;
        if ip.len() < IPV4_MIN_HLEN {
            return Err(WireError::Truncated);
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[0] >> 4 != 4 || ihl < IPV4_MIN_HLEN {
            return Err(WireError::BadIpv4Header);
        }
        if ip.len() < ihl {
            return Err(WireError::Truncated);
        }
        let total_len = usize::from(be16(ip, 2)?);
        if total_len < ihl + UDP_HLEN || total_len > ip.len() {
            return Err(WireError::BadLength);
        }
        if be16(ip, 6)? & 0x3fff != 0 {
            return Err(WireError::Fragment);
        }
        if ip[9] != IPPROTO_UDP {
            return Err(WireError::NotUdp);
        }
        let l4 = l3 + ihl;
        let udp_len = usize::from(be16(frame, l4 + 4)?);
        if udp_len < UDP_HLEN || udp_len > total_len - ihl {
            return Err(WireError::BadLength);
        }
        Ok(Self { vlan_tags, l3, l4, payload: l4 + UDP_HLEN, payload_len: udp_len - UDP_HLEN })
    }

    /// IPv4 header length in bytes.
    pub fn ihl(&self) -> usize {
        self.l4 - self.l3
    }
}

/// Read-only accessors over a frame whose layout was validated by [`FrameLayout::parse`].
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    bytes: &'a [u8],
    layout: FrameLayout,
}

impl<'a> Frame<'a> {
    /// Validates `bytes` and wraps them.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, WireError> {
        let layout = FrameLayout::parse(bytes)?;
        Ok(Self { bytes, layout })
    }

    /// The validated layout.
    pub fn layout(&self) -> FrameLayout {
        self.layout
    }

    fn arr<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[at..at + N]);
        out
    }

    /// Destination MAC address.
    pub fn dst_mac(&self) -> [u8; 6] {
        self.arr(0)
    }
    /// Source MAC address (the next hop that sent the frame).
    pub fn src_mac(&self) -> [u8; 6] {
        self.arr(6)
    }
    /// IPv4 source address.
    pub fn src_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.arr::<4>(self.layout.l3 + 12))
    }
    /// IPv4 destination address.
    pub fn dst_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.arr::<4>(self.layout.l3 + 16))
    }
    /// UDP source port.
    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes(self.arr(self.layout.l4))
    }
    /// UDP destination port.
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes(self.arr(self.layout.l4 + 2))
    }
    /// The VLAN IDs of the tags, outer first (0 where absent).
    pub fn vlan_ids(&self) -> [u16; 2] {
        let mut ids = [0u16; 2];
        for (i, id) in ids.iter_mut().enumerate().take(usize::from(self.layout.vlan_tags)) {
            *id = u16::from_be_bytes(self.arr(ETH_HLEN + i * VLAN_HLEN)) & 0x0fff;
        }
        ids
    }
    /// The UDP payload (the BOOTP message).
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.layout.payload..self.layout.payload + self.layout.payload_len]
    }
    /// Whether the IPv4 header checksum is correct.
    pub fn ipv4_checksum_ok(&self) -> bool {
        // A header is a whole number of 32-bit words (RFC 791): summed a word at a time, no
        // tail. At most 15 words, so 64 bits cannot carry out.
        let (words, rest) = self.bytes[self.layout.l3..self.layout.l4].as_chunks::<4>();
        let sum = words.iter().fold(0u64, |s, w| s + u64::from(u32::from_ne_bytes(*w)));
        rest.is_empty() && !fold64(sum) == 0
    }

    /// Whether the UDP checksum is absent (zero) or correct.
    ///
    /// Not a reason to drop a request: a sender with checksum offload (veth, virtio, the
    /// kernel's own sockets) leaves only the pseudo-header sum in the field, and an AF_XDP
    /// socket cannot see the skb's checksum state. The IPv4 header checksum is always real.
    pub fn udp_checksum_ok(&self) -> bool {
        let l4 = self.layout.l4;
        let stored = u16::from_be_bytes(self.arr(l4 + 6));
        if stored == 0 {
            return true;
        }
        let udp = &self.bytes[l4..self.layout.payload + self.layout.payload_len];
        udp_checksum(self.src_ip(), self.dst_ip(), udp) == 0
    }
}

/// Folds a 32-bit one's-complement accumulator into 16 bits.
fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// One's-complement sum of `bytes` as big-endian 16-bit words, added to `acc` (the caller
/// folds). Words are summed in native byte order eight bytes at a time with end-around carry,
/// folded in constant steps, then converted: RFC 1071 §2 (the sum is independent of byte order
/// up to a swap, and of the word size up to folding). This keeps the UDP checksum of a reply
/// cheap.
fn sum_be16(bytes: &[u8], acc: u32) -> u32 {
    let mut sum: u64 = 0;
    let mut add = |w: u64| {
        let (s, carry) = sum.overflowing_add(w);
        sum = s + u64::from(carry);
    };
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        add(u64::from_ne_bytes(w));
    }
    // The tail, zero-padded to a whole word: a trailing odd byte is the high byte of a
    // big-endian word padded with zero, which it stays at its place in the native word.
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Built byte by byte (a variable-length copy would be a libc call): byte k of the
        // little-endian word, then in native order.
        let tail = rest.iter().enumerate().fold(0u64, |w, (k, &b)| w | u64::from(b) << (8 * k));
        add(u64::from_le(tail));
    }
    u32::from(fold64(sum)) + acc
}

/// A one's-complement sum of native-order words, folded to 16 bits and put in big-endian
/// (RFC 1071 §2: the sum is independent of byte order up to a swap, and of the word size up to
/// folding).
fn fold64(sum: u64) -> u16 {
    // 64 → 32 → 16 bits, each step with its carry folded back in.
    let s = (sum & 0xffff_ffff) + (sum >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    u16::from_be(s as u16)
}

/// The Internet checksum (RFC 1071) of `bytes`. Over a header whose checksum field is already
/// filled in, a correct header yields 0.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    !fold(sum_be16(bytes, 0))
}

/// The UDP checksum over the IPv4 pseudo-header and `udp` (header + payload). Over a datagram
/// with its checksum field filled in, a correct one yields 0.
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    !fold(sum_be16(udp, pseudo_header_sum(src, dst, udp.len())))
}

fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, udp_len: usize) -> u32 {
    word_sum(src) + word_sum(dst) + u32::from(IPPROTO_UDP) + udp_len as u32
}

/// The two 16-bit words of an address, summed.
fn word_sum(a: Ipv4Addr) -> u32 {
    let v = u32::from(a);
    (v >> 16) + (v & 0xffff)
}

/// One's-complement sum of a UDP payload given as the parts of it that may be non-zero: each
/// part is `(offset in the payload, bytes)` with an even offset, and every payload byte outside
/// the parts must be zero. For [`write_ipv4_udp_headers_summed`], so a reply need not sum its
/// zeroed `sname`/`file` and padding.
pub fn payload_sum(parts: &[(usize, &[u8])]) -> u32 {
    parts.iter().fold(0, |acc, &(at, bytes)| {
        debug_assert!(at.is_multiple_of(2), "parts start on word boundaries");
        fold(sum_be16(bytes, acc)).into()
    })
}

/// Addressing of an outgoing IPv4/UDP reply, written by [`write_ipv4_udp_headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyAddressing {
    /// L2 destination.
    pub dst_mac: [u8; 6],
    /// L2 source (our interface).
    pub src_mac: [u8; 6],
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
}

/// Rewrites the headers of a request frame (layout `req`) in place into those of a reply whose
/// UDP payload of `payload_len` bytes already sits at `req.payload`. The VLAN tags are kept, the
/// IPv4 header is rebuilt without options (so the payload moves up if the request had options),
/// both checksums are computed. Returns the reply's frame length, or `None` if `frame` is too
/// short for it.
pub fn write_ipv4_udp_headers(
    frame: &mut [u8],
    req: &FrameLayout,
    payload_len: usize,
    addr: &ReplyAddressing,
) -> Option<usize> {
    write_ipv4_udp_headers_summed(frame, req, payload_len, None, addr)
}

/// [`write_ipv4_udp_headers`] with the payload's one's-complement sum already known
/// ([`payload_sum`]); `None` sums the payload here.
pub fn write_ipv4_udp_headers_summed(
    frame: &mut [u8],
    req: &FrameLayout,
    payload_len: usize,
    payload_sum: Option<u32>,
    addr: &ReplyAddressing,
) -> Option<usize> {
    let l3 = req.l3;
    let l4 = l3 + IPV4_MIN_HLEN;
    let payload = l4 + UDP_HLEN;
    if req.payload + payload_len > frame.len() || payload > req.payload {
        return None;
    }
    // Drop IPv4 options from the reply: shift the payload up to its new place.
    if payload != req.payload {
        frame.copy_within(req.payload..req.payload + payload_len, payload);
    }
    frame[0..6].copy_from_slice(&addr.dst_mac);
    frame[6..12].copy_from_slice(&addr.src_mac);

    // The headers' checksums are summed from the field values (RFC 1071 words), not re-read
    // from the frame: fewer instructions than summing the bytes just written.
    let total = u16::try_from(IPV4_MIN_HLEN + UDP_HLEN + payload_len).ok()?;
    let udp_len = u16::try_from(UDP_HLEN + payload_len).ok()?;
    const VERSION_IHL_TOS: u16 = 0x4500;
    const DONT_FRAGMENT: u16 = 0x4000;
    const TTL_PROTO: u16 = (64 << 8) | IPPROTO_UDP as u16;
    let ip_sum = u32::from(VERSION_IHL_TOS)
        + u32::from(total)
        + u32::from(DONT_FRAGMENT)
        + u32::from(TTL_PROTO)
        + word_sum(addr.src_ip)
        + word_sum(addr.dst_ip);
    let ip = &mut frame[l3..l4];
    ip[0..2].copy_from_slice(&VERSION_IHL_TOS.to_be_bytes());
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&0u16.to_be_bytes()); // identification
    ip[6..8].copy_from_slice(&DONT_FRAGMENT.to_be_bytes());
    ip[8..10].copy_from_slice(&TTL_PROTO.to_be_bytes());
    ip[10..12].copy_from_slice(&(!fold(ip_sum)).to_be_bytes());
    ip[12..16].copy_from_slice(&addr.src_ip.octets());
    ip[16..20].copy_from_slice(&addr.dst_ip.octets());

    let payload_sum = match payload_sum {
        Some(sum) => sum,
        None => u32::from(fold(sum_be16(&frame[payload..payload + payload_len], 0))),
    };
    // Pseudo-header, then the UDP header (ports, length, a zero checksum).
    let udp_sum = pseudo_header_sum(addr.src_ip, addr.dst_ip, usize::from(udp_len))
        + u32::from(addr.src_port)
        + u32::from(addr.dst_port)
        + u32::from(udp_len)
        + payload_sum;
    let mut csum = !fold(udp_sum);
    if csum == 0 {
        csum = 0xffff; // RFC 768: a computed zero is sent as all ones.
    }
    let udp = &mut frame[l4..payload];
    udp[0..2].copy_from_slice(&addr.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&addr.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&csum.to_be_bytes());
    Some(payload + payload_len)
}

/// Length of an IPv6 header.
pub const IPV6_HLEN: usize = 40;

/// Offsets of the headers of one IPv6/UDP frame (UDP right after the IPv6 header, as the XDP
/// program steers them), validated against its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame6Layout {
    /// Offset of the IPv6 header (after 0–2 VLAN tags).
    pub l3: usize,
    /// Offset of the UDP header.
    pub l4: usize,
    /// Offset of the UDP payload.
    pub payload: usize,
    /// Length of the UDP payload as the UDP header states it (≤ what the frame holds).
    pub payload_len: usize,
}

/// Whether the frame's ethertype (after 0–2 VLAN tags) is IPv6.
pub fn is_ipv6(frame: &[u8]) -> bool {
    vlan_walk(frame).is_ok_and(|(proto, _)| proto == ethertype::IPV6)
}

/// The ethertype after 0–2 VLAN tags and the offset of what it announces.
fn vlan_walk(frame: &[u8]) -> Result<(u16, usize), WireError> {
    let mut proto = be16(frame, 12)?;
    let mut l3 = ETH_HLEN;
    let mut tags = 0;
    while (proto == ethertype::VLAN_8021Q || proto == ethertype::VLAN_8021AD) && tags < 2 {
        proto = be16(frame, l3 + 2)?;
        l3 += VLAN_HLEN;
        tags += 1;
    }
    Ok((proto, l3))
}

impl Frame6Layout {
    /// Validates the Ethernet/VLAN/IPv6/UDP headers of `frame`.
    pub fn parse(frame: &[u8]) -> Result<Self, WireError> {
        let (proto, l3) = vlan_walk(frame)?;
        if proto != ethertype::IPV6 {
            return Err(WireError::NotIpv4);
        }
        let ip = frame.get(l3..l3 + IPV6_HLEN).ok_or(WireError::Truncated)?;
        if ip[0] >> 4 != 6 {
            return Err(WireError::BadIpv4Header);
        }
        if ip[6] != IPPROTO_UDP {
            return Err(WireError::NotUdp);
        }
        let ip_payload = usize::from(be16(ip, 4)?);
        let l4 = l3 + IPV6_HLEN;
        if ip_payload < UDP_HLEN || l4 + ip_payload > frame.len() {
            return Err(WireError::BadLength);
        }
        let udp_len = usize::from(be16(frame, l4 + 4)?);
        if udp_len < UDP_HLEN || udp_len > ip_payload {
            return Err(WireError::BadLength);
        }
        Ok(Self { l3, l4, payload: l4 + UDP_HLEN, payload_len: udp_len - UDP_HLEN })
    }

    /// The IPv6 source address.
    pub fn src_ip(&self, frame: &[u8]) -> Ipv6Addr {
        ipv6_at(frame, self.l3 + 8)
    }

    /// The IPv6 destination address.
    pub fn dst_ip(&self, frame: &[u8]) -> Ipv6Addr {
        ipv6_at(frame, self.l3 + 24)
    }

    /// The UDP source port.
    pub fn src_port(&self, frame: &[u8]) -> u16 {
        u16::from_be_bytes([frame[self.l4], frame[self.l4 + 1]])
    }
}

fn ipv6_at(frame: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&frame[at..at + 16]);
    Ipv6Addr::from(o)
}

/// The UDP checksum over the IPv6 pseudo-header (RFC 8200 §8.1) and `udp`; over a datagram
/// with its checksum filled in, a correct one yields 0.
pub fn udp6_checksum(src: Ipv6Addr, dst: Ipv6Addr, udp: &[u8]) -> u16 {
    let words = |a: Ipv6Addr| a.segments().iter().map(|&w| u32::from(w)).sum::<u32>();
    let pseudo = words(src) + words(dst) + udp.len() as u32 + u32::from(IPPROTO_UDP);
    !fold(sum_be16(udp, pseudo))
}

/// Addressing of an outgoing IPv6/UDP reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply6Addressing {
    /// L2 destination.
    pub dst_mac: [u8; 6],
    /// L2 source (our interface).
    pub src_mac: [u8; 6],
    /// IPv6 source.
    pub src_ip: Ipv6Addr,
    /// IPv6 destination.
    pub dst_ip: Ipv6Addr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
}

/// Rewrites the headers of a request frame (layout `req`) in place into those of a reply whose
/// UDP payload of `payload_len` bytes already sits at `req.payload`: VLAN tags kept, IPv6 and
/// UDP headers rebuilt, the UDP checksum (mandatory in IPv6) computed. Returns the frame's
/// length, or `None` if `frame` is too short.
pub fn write_ipv6_udp_headers(
    frame: &mut [u8],
    req: &Frame6Layout,
    payload_len: usize,
    addr: &Reply6Addressing,
) -> Option<usize> {
    let end = req.payload + payload_len;
    if end > frame.len() {
        return None;
    }
    frame[0..6].copy_from_slice(&addr.dst_mac);
    frame[6..12].copy_from_slice(&addr.src_mac);
    let udp_len = UDP_HLEN + payload_len;
    let ip = &mut frame[req.l3..req.l4];
    ip[..4].copy_from_slice(&[0x60, 0, 0, 0]);
    ip[4..6].copy_from_slice(&u16::try_from(udp_len).ok()?.to_be_bytes());
    ip[6] = IPPROTO_UDP;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&addr.src_ip.octets());
    ip[24..40].copy_from_slice(&addr.dst_ip.octets());
    let udp = &mut frame[req.l4..end];
    udp[0..2].copy_from_slice(&addr.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&addr.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    let c = match udp6_checksum(addr.src_ip, addr.dst_ip, udp) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::frame;

    #[test]
    fn parses_untagged_single_and_double_tagged() {
        let p = [7u8; 300];
        for tags in [&[][..], &[(0x8100, 10)][..], &[(0x88a8, 100), (0x8100, 10)][..]] {
            let f = frame(tags, &[], &p);
            let fr = Frame::new_checked(&f).unwrap();
            assert_eq!(usize::from(fr.layout().vlan_tags), tags.len());
            assert_eq!(fr.payload(), &p[..]);
            assert_eq!(fr.dst_port(), 67);
            assert_eq!(fr.dst_ip(), Ipv4Addr::BROADCAST);
            if tags.len() == 2 {
                assert_eq!(fr.vlan_ids(), [100, 10]);
            }
        }
    }

    #[test]
    fn honours_ihl_with_options() {
        let f = frame(&[], &[1, 1, 1, 1, 1, 1, 1, 0], &[9u8; 40]);
        let l = FrameLayout::parse(&f).unwrap();
        assert_eq!(l.ihl(), 28);
        assert_eq!(l.payload_len, 40);
    }

    #[test]
    fn ipv4_header_checksum_is_checked_with_and_without_options() {
        for opts in [&[][..], &[1, 1, 1, 0][..], &[7; 40][..]] {
            let mut f = frame(&[(0x8100, 5)], opts, &[3u8; 60]);
            assert!(Frame::new_checked(&f).unwrap().ipv4_checksum_ok(), "{} option bytes", opts.len());
            assert_eq!(internet_checksum(&f[18..18 + 20 + opts.len()]), 0, "the reference agrees");
            // Any single bit flipped in the header is caught.
            for bit in [0, 77, 8 * (19 + opts.len()) + 7] {
                f[18 + bit / 8] ^= 1 << (bit % 8);
                let bad = Frame::new_checked(&f).map(|fr| fr.ipv4_checksum_ok());
                assert!(bad != Ok(true), "bit {bit} with {} option bytes", opts.len());
                f[18 + bit / 8] ^= 1 << (bit % 8);
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let f = frame(&[(0x8100, 5)], &[1, 1, 1, 0], &[1u8; 50]);
        for n in 0..f.len() {
            assert!(FrameLayout::parse(&f[..n]).is_err(), "prefix {n} accepted");
        }
        assert!(FrameLayout::parse(&f).is_ok());
    }

    #[test]
    fn rejects_fragments_and_bad_lengths() {
        let mut f = frame(&[], &[], &[0u8; 20]);
        f[14 + 6] = 0x20; // more fragments
        assert_eq!(FrameLayout::parse(&f), Err(WireError::Fragment));
        let mut f = frame(&[], &[], &[0u8; 20]);
        f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&500u16.to_be_bytes());
        assert_eq!(FrameLayout::parse(&f), Err(WireError::BadLength));
    }

    #[test]
    fn reply_headers_have_valid_checksums_and_keep_tags() {
        let payload = [0x42u8; 250];
        let mut f = frame(&[(0x88a8, 7), (0x8100, 8)], &[1, 1, 1, 0], &payload);
        f.resize(2048, 0);
        let req = FrameLayout::parse(&f).unwrap();
        let addr = ReplyAddressing {
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(198, 18, 0, 1),
            dst_ip: Ipv4Addr::new(198, 18, 0, 50),
            src_port: 67,
            dst_port: 68,
        };
        let n = write_ipv4_udp_headers(&mut f, &req, payload.len(), &addr).unwrap();
        let fr = Frame::new_checked(&f[..n]).unwrap();
        assert_eq!(fr.vlan_ids(), [7, 8]);
        assert_eq!(fr.payload(), &payload[..]);
        assert_eq!(internet_checksum(&f[fr.layout().l3..fr.layout().l4]), 0);
        assert!(fr.udp_checksum_ok());
        assert_eq!(fr.src_ip(), addr.src_ip);
        assert_eq!(fr.dst_port(), 68);
    }

    #[test]
    fn a_given_payload_sum_gives_the_same_checksum() {
        let mut payload = vec![0u8; 301];
        payload[..44].fill(0x5a);
        payload[236..291].fill(0xc3);
        payload[236] = 0x01;
        let mut f = frame(&[], &[], &payload);
        f.resize(2048, 0);
        let req = FrameLayout::parse(&f).unwrap();
        let addr = ReplyAddressing {
            dst_mac: [0xff; 6],
            src_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(198, 18, 0, 1),
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: 67,
            dst_port: 68,
        };
        let sum = payload_sum(&[(0, &payload[..44]), (236, &payload[236..291])]);
        let n = write_ipv4_udp_headers_summed(&mut f, &req, payload.len(), Some(sum), &addr).unwrap();
        assert!(Frame::new_checked(&f[..n]).unwrap().udp_checksum_ok());
        let mut g = frame(&[], &[], &payload);
        g.resize(2048, 0);
        write_ipv4_udp_headers(&mut g, &req, payload.len(), &addr).unwrap();
        assert_eq!(f[..n], g[..n]);
    }

    #[test]
    fn wide_checksum_matches_the_word_by_word_definition() {
        let mut x: u32 = 12345;
        for len in 0..700 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let mut acc = 0u32;
            for c in data.chunks(2) {
                acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
            assert_eq!(fold(sum_be16(&data, 7)), fold(acc + 7), "length {len}");
        }
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (checksum 220d).
        assert_eq!(internet_checksum(&[0, 1, 0xf2, 3, 0xf4, 0xf5, 0xf6, 0xf7]), 0x220d);
    }
    /// An IPv6 frame behind a VLAN tag, read, answered in place and checked with a checksum
    /// written out here from RFC 8200 §8.1 (sum of 16-bit words of the pseudo-header and the
    /// datagram, folded, inverted).
    #[test]
    fn an_ipv6_udp_frame_is_read_and_answered_with_a_valid_checksum() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1:2".parse().unwrap();
        let payload = [1u8, 0, 0, 7, 0, 8, 0, 2, 0, 0, 9];
        let mut f = vec![0x33, 0x33, 0, 1, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0, 0, 5, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[17, 255]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&[2, 34, 2, 35]);
        f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&payload);
        assert!(is_ipv6(&f));
        let l = Frame6Layout::parse(&f).unwrap();
        assert_eq!((l.l3, l.l4, l.payload, l.payload_len), (18, 58, 66, payload.len()));
        assert_eq!((l.src_ip(&f), l.dst_ip(&f), l.src_port(&f)), (src, dst, 546));
        for cut in [17, 40, 60, 66, f.len() - 1] {
            assert!(Frame6Layout::parse(&f[..cut]).is_err(), "cut at {cut}");
        }
        let mut buf = f.clone();
        buf.resize(200, 0);
        let reply = [7u8, 0, 0, 7, 0, 1, 0, 0];
        buf[l.payload..l.payload + reply.len()].copy_from_slice(&reply);
        let ours: Ipv6Addr = "fe80::aa".parse().unwrap();
        let addr = Reply6Addressing {
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_mac: [2, 0, 0, 0, 0, 0xaa],
            src_ip: ours,
            dst_ip: src,
            src_port: 547,
            dst_port: 546,
        };
        let n = write_ipv6_udp_headers(&mut buf, &l, reply.len(), &addr).unwrap();
        assert_eq!(n, 66 + reply.len());
        let out = Frame6Layout::parse(&buf[..n]).unwrap();
        assert_eq!((out.src_ip(&buf), out.dst_ip(&buf), &buf[12..16]), (ours, src, &[0x81, 0, 0, 5][..]));
        let mut acc: u32 = 0;
        let mut words = |b: &[u8]| {
            for c in b.chunks(2) {
                acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
        };
        words(&ours.octets());
        words(&src.octets());
        words(&((8 + reply.len()) as u32).to_be_bytes());
        words(&[0, 0, 0, 17]);
        words(&buf[58..n]);
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        assert_eq!(acc, 0xffff, "the UDP checksum verifies");
        assert!(write_ipv6_udp_headers(&mut buf[..70], &l, reply.len(), &addr).is_none());
    }
}
