//! XDP steering program: picks DHCPv4-to-server frames off the NIC and redirects them into the
//! AF_XDP socket of the worker that owns the client; everything else goes to the kernel untouched.
//!
//! Parses Ethernet, up to two VLAN tags (802.1Q / 802.1ad), IPv4 honouring IHL and UDP to port
//! 67 (or, loaded with `ROLE = GENERATOR` for the load generator, UDP from port 67). It never
//! modifies a frame. As the server it steers only frames to our MAC or broadcast and to one of
//! our addresses or broadcast (the `CONFIG` map; others pass to the kernel untouched), drops DHCP
//! frames from group source MACs and those over their chaddr's rate (a token bucket per chaddr
//! in an LRU map), and picks the worker by a keyed hash of chaddr. Anything else it does not
//! steer is `XDP_PASS`. Every verdict is counted in a per-CPU array the daemon reads.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    cty::c_void,
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns, bpf_xdp_load_bytes},
    macros::{map, xdp},
    maps::{Array, LruHashMap, PerCpuArray, XskMap},
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use dhcp_xdp_common::{
    ALL_DHCP_RELAY_AGENTS_AND_SERVERS, ALL_DHCP_SERVERS, BOOTP_CHADDR_OFFSET, DHCP_SERVER_PORT, DHCP6_SERVER_PORT,
    LB_MIX, MAX_QUEUES, MAX_SOCKETS_PER_QUEUE, XSK_SLOTS, buckets, chaddr_hash, config, counter, ethertype, role,
    xsk_slot,
};

/// `role::SERVER` (steer frames to port 67) or `role::GENERATOR` (steer frames from port 67);
/// the loader overrides it before the program is verified.
#[unsafe(no_mangle)]
static ROLE: u8 = role::SERVER;

/// AF_XDP sockets, `MAX_SOCKETS_PER_QUEUE` slots per receive queue.
#[map]
static XSKS: XskMap = XskMap::with_max_entries(XSK_SLOTS, 0);

/// Number of sockets bound on each receive queue (0: none, frames go to the kernel).
#[map]
static QUEUE_SOCKETS: Array<u32> = Array::with_max_entries(MAX_QUEUES, 0);

/// Verdict counters, see `dhcp_xdp_common::counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Settings the daemon writes, see `dhcp_xdp_common::config` (all zero: no filtering, no rate
/// limit, hash key 0).
#[map]
static CONFIG: Array<u32> = Array::with_max_entries(config::COUNT, 0);

/// Cluster mode: the load-balancing buckets this node serves, a bit each (see
/// `dhcp_xdp_common::buckets`); the daemon's control loop rewrites it when nodes come and go.
#[map]
static BUCKETS: Array<u32> = Array::with_max_entries(buckets::WORDS, 0);

/// Token bucket per chaddr: [milli-tokens, time of the last refill in ns].
#[map]
static RATE: LruHashMap<u64, [u64; 2]> = LruHashMap::with_max_entries(config::RATE_ENTRIES, 0);

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const IPV4_MIN_HLEN: usize = 20;
const UDP_HLEN: usize = 8;
const IPPROTO_UDP: u8 = 17;

/// Why a frame is not steered; each maps to a counter slot.
#[derive(Clone, Copy)]
enum Pass {
    NotDhcp,
    Malformed,
    Fragment,
    NoSocket,
    NotForUs,
    /// Dropped, not passed: a group source MAC.
    BadSource,
    /// Dropped, not passed: over the chaddr's rate.
    RateLimited,
    /// Dropped, not passed: cluster mode, another node's bucket.
    OtherBucket,
    /// Dropped, not passed: a DISCOVER (or a direct SOLICIT) while the daemon sheds new work.
    Shed,
    /// An IPv6 extension header the program does not walk.
    V6Extension,
}

#[xdp]
pub fn dhcp_xdp(ctx: XdpContext) -> u32 {
    match try_steer(&ctx) {
        Ok(action) => action,
        Err(why) => {
            let slot = match why {
                Pass::NotDhcp => counter::PASSED_NOT_DHCP,
                Pass::Malformed => {
                    debug!(&ctx, "malformed frame on queue {}", ctx.rx_queue_index());
                    counter::MALFORMED
                }
                Pass::Fragment => counter::FRAGMENT,
                Pass::NoSocket => counter::NO_SOCKET,
                Pass::NotForUs => counter::NOT_FOR_US,
                Pass::V6Extension => counter::V6_EXTENSION,
                Pass::BadSource => {
                    count(counter::BAD_SOURCE);
                    return xdp_action::XDP_DROP;
                }
                Pass::RateLimited => {
                    count(counter::RATE_LIMITED);
                    return xdp_action::XDP_DROP;
                }
                Pass::OtherBucket => {
                    count(counter::OTHER_BUCKET);
                    return xdp_action::XDP_DROP;
                }
                Pass::Shed => {
                    count(counter::SHED_DISCOVER);
                    return xdp_action::XDP_DROP;
                }
            };
            count(slot);
            xdp_action::XDP_PASS
        }
    }
}

#[inline(always)]
fn count(slot: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: the pointer comes from a per-CPU array lookup, so it is valid, aligned and only
        // this CPU writes it while this program runs (no preemption inside an XDP program).
        unsafe { *c += 1 };
    }
}

/// Bounds-checked pointer to a `T` at `offset` bytes into the frame.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, Pass> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return Err(Pass::Malformed);
    }
    Ok((start + offset) as *const T)
}

/// Reads a big-endian u16 at `offset`.
#[inline(always)]
fn be16_at(ctx: &XdpContext, offset: usize) -> Result<u16, Pass> {
    let p: *const [u8; 2] = ptr_at(ctx, offset)?;
    // SAFETY: `ptr_at` checked that both bytes lie inside the packet; u8 arrays need no alignment.
    Ok(u16::from_be_bytes(unsafe { *p }))
}

/// Reads a big-endian u32 at `offset`.
#[inline(always)]
fn be32_at(ctx: &XdpContext, offset: usize) -> Result<u32, Pass> {
    let p: *const [u8; 4] = ptr_at(ctx, offset)?;
    // SAFETY: `ptr_at` checked that the four bytes lie inside the packet.
    Ok(u32::from_be_bytes(unsafe { *p }))
}

/// A `CONFIG` slot (0 when unset).
/// Whether to shed this new client's first message: `CONFIG[SHED]` is the share of them the
/// daemon wants dropped, in 65 536ths (0: none, [`config::SHED_ALL`] or more: all); between,
/// each is dropped at random with that probability, so that as many new clients are admitted
/// as the lease store can commit, not all of them in bursts between episodes of none.
#[inline(always)]
fn shed_now() -> bool {
    let shed = setting(config::SHED);
    if shed == 0 {
        return false;
    }
    // SAFETY: a helper without arguments or preconditions.
    shed >= config::SHED_ALL || (unsafe { bpf_get_prandom_u32() } & (config::SHED_ALL - 1)) < shed
}

#[inline(always)]
fn setting(slot: u32) -> u32 {
    CONFIG.get(slot).copied().unwrap_or(0)
}

/// Whether the frame is addressed to us: our MAC or broadcast, and one of our IPv4 addresses
/// or the limited broadcast.
#[inline(always)]
fn for_us(ctx: &XdpContext, l3: usize) -> Result<bool, Pass> {
    let dst_hi = be32_at(ctx, 0)?;
    let dst_lo = u32::from(be16_at(ctx, 4)?);
    let broadcast_mac = dst_hi == u32::MAX && dst_lo == 0xffff;
    if !broadcast_mac && (dst_hi != setting(config::MAC_HI) || dst_lo != setting(config::MAC_LO)) {
        return Ok(false);
    }
    let dst_ip = be32_at(ctx, l3 + 16)?;
    if dst_ip == u32::MAX {
        return Ok(true);
    }
    let n = setting(config::N_ADDRS);
    let mut i = 0;
    while i < config::MAX_ADDRS {
        if i < n && setting(config::ADDRS + i) == dst_ip {
            return Ok(true);
        }
        i += 1;
    }
    Ok(false)
}

/// One frame from `chaddr` against its token bucket: `rate` tokens a second, at most `burst`.
#[inline(always)]
fn within_rate(chaddr: &[u8; 6], rate: u32, burst: u32) -> bool {
    let key = u64::from_be_bytes([0, 0, chaddr[0], chaddr[1], chaddr[2], chaddr[3], chaddr[4], chaddr[5]]);
    // SAFETY: a helper without arguments or preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let full = u64::from(burst.max(1)) * 1000;
    match RATE.get_ptr_mut(&key) {
        Some(b) => {
            // SAFETY: the pointer comes from a map lookup and stays valid during this run; a
            // racing update from another CPU only blurs the count by a frame.
            let b = unsafe { &mut *b };
            // At most 10 s of refill: no overflow, and a long-silent client starts full.
            let elapsed = now.saturating_sub(b[1]).min(10_000_000_000);
            let refill = elapsed * u64::from(rate) / 1_000_000;
            let tokens = (b[0] + refill).min(full);
            b[1] = now;
            if tokens < 1000 {
                b[0] = tokens;
                return false;
            }
            b[0] = tokens - 1000;
            true
        }
        None => {
            let _ = RATE.insert(&key, &[full - 1000, now], 0);
            true
        }
    }
}

#[inline(always)]
fn u8_at(ctx: &XdpContext, offset: usize) -> Result<u8, Pass> {
    let p: *const u8 = ptr_at(ctx, offset)?;
    // SAFETY: `ptr_at` checked that the byte lies inside the packet.
    Ok(unsafe { *p })
}

/// Offset of the options in a BOOTP message (after the 236-byte header and the magic cookie).
const BOOTP_OPTIONS_OFFSET: usize = 240;
/// Offset of `ciaddr` in a BOOTP message.
const BOOTP_CIADDR_OFFSET: usize = 12;
/// Offset of `hlen` in a BOOTP message.
const BOOTP_HLEN_OFFSET: usize = 2;
/// The client identifier option.
const OPTION_CLIENT_ID: u8 = 61;
const OPTION_MESSAGE_TYPE: u8 = 53;
const DHCPDISCOVER: u8 = 1;

/// Copies `len` (1..=`buf.len()`) frame bytes from `at` into `buf` with the
/// `bpf_xdp_load_bytes` helper: offsets found by walking the options are plain arguments to it,
/// not packet pointers the verifier would have to follow through the walk.
#[inline(always)]
fn load_bytes<const N: usize>(ctx: &XdpContext, at: usize, buf: &mut [u8; N], len: usize) -> bool {
    if len == 0 || len > N || len > 255 {
        return false;
    }
    // SAFETY: `buf` is a live stack buffer of N bytes and at most N (and 255) are written; the
    // helper checks the frame bounds itself and fails instead of reading past them.
    unsafe { bpf_xdp_load_bytes(ctx.ctx, at as u32, buf.as_mut_ptr() as *mut c_void, len as u32) == 0 }
}

/// The client's load-balancing bucket: the RFC 3074 hash of its client identifier (option 61)
/// when it sends one among the first options, else of `chaddr` (`hlen` bytes, at most 16).
#[inline(always)]
fn bucket(ctx: &XdpContext, bootp: usize) -> Result<u8, Pass> {
    let mut buf = [0u8; 256];
    let mut key_at = bootp + BOOTP_CHADDR_OFFSET;
    let mut key_len = (u8_at(ctx, bootp + BOOTP_HLEN_OFFSET)? as usize).min(16);
    if let Some((at, len)) = find_option(ctx, bootp, OPTION_CLIENT_ID, 1) {
        (key_at, key_len) = (at, len);
    }
    if key_len == 0 {
        return Ok(0);
    }
    if !load_bytes(ctx, key_at, &mut buf, key_len) {
        return Err(Pass::Malformed);
    }
    // RFC 3074: seeded with the length, over the bytes from the last to the first. The same
    // as `dhcp_xdp_common::lb_hash`, written with a constant loop bound and a masked index for
    // the verifier (the XDP program test checks the two agree).
    let mut h = key_len as u8;
    let mut i = 0;
    while i < 255 {
        if i >= key_len {
            break;
        }
        h = LB_MIX[(h ^ buf[(key_len - 1 - i) & 0xff]) as usize];
        i += 1;
    }
    Ok(h)
}

/// Where the value of option `code` with at least `min_len` bytes starts, and its length,
/// when it is among the first options (`MAX_OPTIONS_SCANNED`, within `MAX_OPTIONS_OFFSET`).
#[inline(always)]
fn find_option(ctx: &XdpContext, bootp: usize, code: u8, min_len: usize) -> Option<(usize, usize)> {
    // Two bytes: a small stack beside `bucket`'s key buffer.
    let mut buf = [0u8; 2];
    let mut off = bootp + BOOTP_OPTIONS_OFFSET;
    let mut n = 0;
    while n < buckets::MAX_OPTIONS_SCANNED {
        n += 1;
        if off > bootp + BOOTP_OPTIONS_OFFSET + buckets::MAX_OPTIONS_OFFSET || !load_bytes(ctx, off, &mut buf, 1) {
            return None;
        }
        let c = buf[0];
        if c == 255 {
            return None;
        }
        if c == 0 {
            off += 1;
            continue;
        }
        if !load_bytes(ctx, off + 1, &mut buf, 1) {
            return None;
        }
        let len = buf[0] as usize;
        if c == code && len >= min_len {
            return Some((off + 2, len));
        }
        off += 2 + len;
    }
    None
}

/// The DHCP message type (option 53) when it is among the first options, else 0.
#[inline(always)]
fn message_type(ctx: &XdpContext, bootp: usize) -> u8 {
    let mut buf = [0u8; 2];
    match find_option(ctx, bootp, OPTION_MESSAGE_TYPE, 0) {
        Some((at, 1)) if load_bytes(ctx, at, &mut buf, 1) => buf[0],
        _ => 0,
    }
}

/// Whether this node serves `bucket` (its bit in the `BUCKETS` map).
#[inline(always)]
fn serves(bucket: u8) -> bool {
    let word = BUCKETS.get(u32::from(bucket) / 32).copied().unwrap_or(0);
    word & (1 << (bucket % 32)) != 0
}

#[inline(always)]
fn try_steer(ctx: &XdpContext) -> Result<u32, Pass> {
    // A frame too short for an Ethernet header is not ours to judge: pass it as not-DHCP.
    let mut proto = be16_at(ctx, 12).map_err(|_| Pass::NotDhcp)?;
    let mut l3 = ETH_HLEN;
    // Up to two VLAN tags, 802.1ad or 802.1Q in either position.
    if proto == ethertype::VLAN_8021Q || proto == ethertype::VLAN_8021AD {
        proto = be16_at(ctx, l3 + 2)?;
        l3 += VLAN_HLEN;
        if proto == ethertype::VLAN_8021Q || proto == ethertype::VLAN_8021AD {
            proto = be16_at(ctx, l3 + 2)?;
            l3 += VLAN_HLEN;
        }
    }
    if proto == ethertype::IPV6 {
        return steer6(ctx, l3);
    }
    if proto != ethertype::IPV4 {
        return Err(Pass::NotDhcp);
    }

    let ver_ihl = u8_at(ctx, l3)?;
    if ver_ihl >> 4 != 4 {
        return Err(Pass::Malformed);
    }
    let ihl = ((ver_ihl & 0x0f) as usize) * 4;
    if ihl < IPV4_MIN_HLEN {
        return Err(Pass::Malformed);
    }
    // The whole IPv4 header, options included, must be present.
    let _: *const [u8; IPV4_MIN_HLEN] = ptr_at(ctx, l3)?;
    if ctx.data() + l3 + ihl > ctx.data_end() {
        return Err(Pass::Malformed);
    }
    if u8_at(ctx, l3 + 9)? != IPPROTO_UDP {
        return Err(Pass::NotDhcp);
    }
    // More-fragments flag or a fragment offset: the kernel reassembles.
    if be16_at(ctx, l3 + 6)? & 0x3fff != 0 {
        return Err(Pass::Fragment);
    }

    let l4 = l3 + ihl;
    // SAFETY: a plain read of a read-only global; volatile so that the loader's override is
    // seen instead of the compile-time value being folded in.
    let role = unsafe { core::ptr::read_volatile(&ROLE) };
    let port_at = if role == role::GENERATOR { l4 } else { l4 + 2 };
    if be16_at(ctx, port_at)? != DHCP_SERVER_PORT {
        return Err(Pass::NotDhcp);
    }
    let _: *const [u8; UDP_HLEN] = ptr_at(ctx, l4)?;

    // Read before chaddr: a bounds check the later, longer one implies would be dropped by the
    // optimiser in a form the verifier cannot follow.
    let ciaddr = be32_at(ctx, l4 + UDP_HLEN + BOOTP_CIADDR_OFFSET)?;
    let dst_ip = be32_at(ctx, l3 + 16)?;
    let chaddr_at = l4 + UDP_HLEN + BOOTP_CHADDR_OFFSET;
    let chaddr: *const [u8; 6] = ptr_at(ctx, chaddr_at)?;
    // SAFETY: `ptr_at` checked that the six chaddr bytes lie inside the packet.
    let chaddr = unsafe { *chaddr };

    if role == role::SERVER {
        if setting(config::FLAGS) & config::FILTER_DEST != 0 && !for_us(ctx, l3)? {
            return Err(Pass::NotForUs);
        }
        // A group source MAC (the I/G bit of its first byte) never sends a DHCP request.
        if u8_at(ctx, 6)? & 1 != 0 {
            return Err(Pass::BadSource);
        }
        let rate = setting(config::RATE);
        if rate > 0 && !within_rate(&chaddr, rate, setting(config::BURST)) {
            return Err(Pass::RateLimited);
        }
        // Cluster mode: a node answers only its buckets' DISCOVERs and broadcast (or relayed)
        // requests; a unicast renewal to one of its addresses is its own whatever the bucket.
        if setting(config::FLAGS) & config::CLUSTER != 0 {
            let renewal = ciaddr != 0 && dst_ip != u32::MAX;
            if !renewal && !serves(bucket(ctx, l4 + UDP_HLEN)?) {
                return Err(Pass::OtherBucket);
            }
        }
        // The daemon's lease store is behind: new clients wait (they retransmit), those with an
        // offer or a lease are served.
        if shed_now() && message_type(ctx, l4 + UDP_HLEN) == DHCPDISCOVER {
            return Err(Pass::Shed);
        }
    }

    redirect(ctx, chaddr_hash(&chaddr, setting(config::HASH_KEY)), counter::REDIRECTED)
}

/// Redirects the frame into the socket its client's `hash` picks on the frame's queue,
/// counting `slot` when that succeeds.
#[inline(always)]
fn redirect(ctx: &XdpContext, hash: u32, slot: u32) -> Result<u32, Pass> {
    let queue = ctx.rx_queue_index();
    if queue >= MAX_QUEUES {
        return Err(Pass::NoSocket);
    }
    let sockets = match QUEUE_SOCKETS.get(queue) {
        Some(&n) if n > 0 => n.min(MAX_SOCKETS_PER_QUEUE),
        _ => return Err(Pass::NoSocket),
    };
    match XSKS.redirect(xsk_slot(queue, hash, sockets), xdp_action::XDP_PASS as u64) {
        Ok(action) => {
            count(slot);
            Ok(action)
        }
        Err(action) => {
            count(counter::REDIRECT_FAILED);
            Ok(action)
        }
    }
}

const IPV6_HLEN: usize = 40;
/// IPv6 next-header values of extension headers (RFC 8200 and the IANA registry): hop-by-hop,
/// routing, destination options, ESP, AH, mobility, HIP, shim6.
const IPV6_EXTENSIONS: [u8; 8] = [0, 43, 60, 50, 51, 135, 139, 140];
const IPV6_FRAGMENT: u8 = 44;
const DHCP6_SOLICIT: u8 = 1;
const DHCP6_RELAY_FORW: u8 = 12;
const DHCP6_RELAY_REPL: u8 = 13;
/// Offset of a relay message's peer-address; its last six bytes key a relayed client.
const DHCP6_RELAY_PEER_TAIL: usize = 2 + 16 + 10;

const DHCP6_OPTION_CLIENTID: u16 = 1;
/// DHCPv6 options looked through for the client id, and the bytes past the header the scan
/// gives up at.
const DHCP6_OPTIONS_SCANNED: u32 = 8;
const DHCP6_OPTIONS_SPAN: usize = 1024;

/// Where the value of DHCPv6 option `code` starts and its length, when it is among the first
/// options of the message whose options start at `from`.
#[inline(always)]
fn find_option6(ctx: &XdpContext, from: usize, code: u16) -> Option<(usize, usize)> {
    let mut hdr = [0u8; 4];
    let mut off = from;
    let mut n = 0;
    while n < DHCP6_OPTIONS_SCANNED {
        n += 1;
        if off > from + DHCP6_OPTIONS_SPAN || !load_bytes(ctx, off, &mut hdr, 4) {
            return None;
        }
        let c = u16::from_be_bytes([hdr[0], hdr[1]]);
        let len = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
        if c == code {
            return Some((off + 4, len));
        }
        off += 4 + len;
    }
    None
}

/// Whether the 16 bytes at `at` are `addr`.
#[inline(always)]
fn ipv6_is(ctx: &XdpContext, at: usize, addr: &[u8; 16]) -> Result<bool, Pass> {
    let w = |i: usize| u32::from_be_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    Ok(be32_at(ctx, at)? == w(0)
        && be32_at(ctx, at + 4)? == w(4)
        && be32_at(ctx, at + 8)? == w(8)
        && be32_at(ctx, at + 12)? == w(12))
}

/// Whether an IPv6 frame is addressed to us: the DHCP multicast groups (on a multicast MAC or
/// ours), or one of our IPv6 addresses on our MAC.
#[inline(always)]
fn for_us6(ctx: &XdpContext, l3: usize) -> Result<bool, Pass> {
    let dst_hi = be32_at(ctx, 0)?;
    let dst_lo = u32::from(be16_at(ctx, 4)?);
    let ours = dst_hi == setting(config::MAC_HI) && dst_lo == setting(config::MAC_LO);
    let dst = l3 + 24;
    if ipv6_is(ctx, dst, &ALL_DHCP_RELAY_AGENTS_AND_SERVERS)? || ipv6_is(ctx, dst, &ALL_DHCP_SERVERS)? {
        // 33:33 is the IPv6 multicast MAC prefix (RFC 2464 §7).
        return Ok(ours || dst_hi >> 16 == 0x3333);
    }
    if !ours {
        return Ok(false);
    }
    let (a, b, c, d) = (be32_at(ctx, dst)?, be32_at(ctx, dst + 4)?, be32_at(ctx, dst + 8)?, be32_at(ctx, dst + 12)?);
    let n = setting(config::N_ADDRS6);
    let mut i = 0;
    while i < config::MAX_ADDRS6 {
        let s = config::ADDRS6 + 4 * i;
        if i < n && setting(s) == a && setting(s + 1) == b && setting(s + 2) == c && setting(s + 3) == d {
            return Ok(true);
        }
        i += 1;
    }
    Ok(false)
}

/// DHCPv6: UDP to port 547 (from it, as the generator) right after the IPv6 header. A client
/// is keyed by the tail of its DUID when it speaks to us directly (by its source MAC if its
/// client id is not among the first options), and by the tail of the relay's peer-address (the
/// client's link-local address) when relayed: that key picks the worker and meets the rate
/// limit. Extension headers and fragments pass to the kernel, counted.
#[inline(always)]
fn steer6(ctx: &XdpContext, l3: usize) -> Result<u32, Pass> {
    // SAFETY: as in `try_steer`: a volatile read of the loader-set global.
    let role = unsafe { core::ptr::read_volatile(&ROLE) };
    // The server takes DHCPv6 only when it serves it; the generator always takes replies.
    if role == role::SERVER && setting(config::FLAGS) & config::DHCP6 == 0 {
        return Err(Pass::NotDhcp);
    }
    if u8_at(ctx, l3)? >> 4 != 6 {
        return Err(Pass::Malformed);
    }
    let next = u8_at(ctx, l3 + 6)?;
    if next == IPV6_FRAGMENT {
        return Err(Pass::Fragment);
    }
    if next != IPPROTO_UDP {
        let mut i = 0;
        while i < IPV6_EXTENSIONS.len() {
            if IPV6_EXTENSIONS[i] == next {
                return Err(Pass::V6Extension);
            }
            i += 1;
        }
        return Err(Pass::NotDhcp);
    }
    let l4 = l3 + IPV6_HLEN;
    let port_at = if role == role::GENERATOR { l4 } else { l4 + 2 };
    if be16_at(ctx, port_at)? != DHCP6_SERVER_PORT {
        return Err(Pass::NotDhcp);
    }
    let _: *const [u8; UDP_HLEN] = ptr_at(ctx, l4)?;
    let msg = l4 + UDP_HLEN;
    let kind = u8_at(ctx, msg)?;
    let key_at = if kind == DHCP6_RELAY_FORW || kind == DHCP6_RELAY_REPL { msg + DHCP6_RELAY_PEER_TAIL } else { 6 };
    let key: *const [u8; 6] = ptr_at(ctx, key_at)?;
    // SAFETY: `ptr_at` checked that the six bytes lie inside the packet.
    let mut key = unsafe { *key };
    // A client's own message: its DUID's last six bytes (the MAC of a DUID-LL/LLT, the tail of
    // another kind) when the client id is among the first options, so that clients behind one
    // MAC (a generator, a CPE's several DUIDs) are told apart.
    if kind != DHCP6_RELAY_FORW && kind != DHCP6_RELAY_REPL {
        if let Some((at, len)) = find_option6(ctx, msg + 4, DHCP6_OPTION_CLIENTID) {
            let mut tail = [0u8; 6];
            if len >= 6 && load_bytes(ctx, at + len - 6, &mut tail, 6) {
                key = tail;
            }
        }
    }
    if role == role::SERVER {
        if setting(config::FLAGS) & config::FILTER_DEST != 0 && !for_us6(ctx, l3)? {
            return Err(Pass::NotForUs);
        }
        if u8_at(ctx, 6)? & 1 != 0 {
            return Err(Pass::BadSource);
        }
        let rate = setting(config::RATE);
        if rate > 0 && !within_rate(&key, rate, setting(config::BURST)) {
            return Err(Pass::RateLimited);
        }
        // A SOLICIT is a new client's first message, as a DISCOVER is (relayed ones are not
        // looked into: a relay's frames are few and its clients' are mostly renewals).
        if kind == DHCP6_SOLICIT && shed_now() {
            return Err(Pass::Shed);
        }
    }
    redirect(ctx, chaddr_hash(&key, setting(config::HASH_KEY)), counter::REDIRECTED_V6)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
