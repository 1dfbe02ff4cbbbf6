//! Types and constants shared by the XDP program (`dhcp-xdp-ebpf`) and the daemon.
//!
//! Everything here is `no_std`, allocation-free and identical on both sides of the kernel
//! boundary: map sizes, counter slots and the chaddr hash that picks a worker. It must never grow
//! anything that the eBPF verifier could reject (loops over unbounded data, division by a
//! value that may be zero).
#![no_std]

/// Most NIC receive queues the steering program can address.
pub const MAX_QUEUES: u32 = 64;
/// Most AF_XDP sockets (workers) bound to one receive queue.
pub const MAX_SOCKETS_PER_QUEUE: u32 = 64;
/// Size of the XSKMAP: one row of [`MAX_SOCKETS_PER_QUEUE`] slots per queue.
pub const XSK_SLOTS: u32 = MAX_QUEUES * MAX_SOCKETS_PER_QUEUE;

/// The UDP port a DHCPv4 server listens on (BOOTP "bootps").
pub const DHCP_SERVER_PORT: u16 = 67;
/// The UDP port DHCPv6 servers and relay agents listen on.
pub const DHCP6_SERVER_PORT: u16 = 547;
/// The UDP port DHCPv6 clients listen on.
pub const DHCP6_CLIENT_PORT: u16 = 546;
/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1), `ff02::1:2`.
pub const ALL_DHCP_RELAY_AGENTS_AND_SERVERS: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2];
/// All_DHCP_Servers (RFC 8415 §7.1), `ff05::1:3`.
pub const ALL_DHCP_SERVERS: [u8; 16] = [0xff, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3];

/// Which frames the steering program takes (its `ROLE` global, set when loading).
/// The eBPF crate's pinned toolchain (`dhcp-xdp-ebpf/rust-toolchain.toml`), as the daemon's
/// build script and the bootstrap read it.
pub mod toolchain {
    /// The toolchain file, relative to the workspace root.
    pub const FILE: &str = "dhcp-xdp-ebpf/rust-toolchain.toml";

    /// The `channel = "…"` of a rust-toolchain.toml.
    pub fn channel(toml: &str) -> Option<&str> {
        toml.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "channel").then(|| v.trim().trim_matches('"'))
        })
    }
}

pub mod role {
    /// The server: frames to UDP port 67 (client and relay requests).
    pub const SERVER: u8 = 0;
    /// The load generator: frames from UDP port 67 (server replies, to clients or relays).
    pub const GENERATOR: u8 = 1;
}

/// Ethertypes the steering program understands.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer VLAN tag.
    pub const VLAN_8021Q: u16 = 0x8100;
    /// 802.1ad service VLAN tag (outer tag of QinQ).
    pub const VLAN_8021AD: u16 = 0x88a8;
}

/// Offset of `chaddr` inside a BOOTP message (after op, htype, hlen, hops, xid, secs, flags,
/// ciaddr, yiaddr, siaddr, giaddr).
pub const BOOTP_CHADDR_OFFSET: usize = 28;

/// Slots of the per-CPU verdict counter array (`COUNTERS` map).
pub mod counter {
    /// Not a DHCP-to-server frame (other ethertype, protocol or port): passed to the kernel.
    pub const PASSED_NOT_DHCP: u32 = 0;
    /// DHCP frame redirected into an AF_XDP socket.
    pub const REDIRECTED: u32 = 1;
    /// DHCP frame whose XSKMAP slot held no socket: passed to the kernel.
    pub const REDIRECT_FAILED: u32 = 2;
    /// Truncated or inconsistent headers: passed to the kernel, which drops what it must.
    pub const MALFORMED: u32 = 3;
    /// DHCP frame on a queue with no socket bound: passed to the kernel.
    pub const NO_SOCKET: u32 = 4;
    /// IPv4 fragment (first or later): passed to the kernel for reassembly.
    pub const FRAGMENT: u32 = 5;
    /// DHCP frame to another MAC or IPv4 address than ours (unicast to another server, flooded
    /// by a switch; a kernel relay on this NIC): passed to the kernel untouched.
    pub const NOT_FOR_US: u32 = 6;
    /// DHCP frame from a group (broadcast or multicast) source MAC: dropped.
    pub const BAD_SOURCE: u32 = 7;
    /// DHCP frame over its chaddr's rate limit: dropped before it reaches a socket.
    pub const RATE_LIMITED: u32 = 8;
    /// Cluster mode: a DISCOVER or broadcast request of a client whose load-balancing bucket
    /// another node serves: dropped.
    pub const OTHER_BUCKET: u32 = 9;
    /// A DISCOVER while the daemon sheds new work (its lease store is behind): dropped before
    /// it costs anything, so the requests of clients with an offer or a lease are served.
    pub const SHED_DISCOVER: u32 = 10;
    /// An IPv6 frame whose next header is an extension header the program does not walk
    /// (hop-by-hop, routing, destination options, …): passed to the kernel untouched.
    pub const V6_EXTENSION: u32 = 11;
    /// A DHCPv6 frame redirected into an AF_XDP socket ([`REDIRECTED`] counts DHCPv4 only;
    /// every frame moves exactly one slot).
    pub const REDIRECTED_V6: u32 = 12;
    /// Number of counter slots.
    pub const COUNT: u32 = 13;
    /// Names of the slots, in slot order, as the daemon reports them.
    pub const NAMES: [&str; COUNT as usize] = [
        "passed_not_dhcp",
        "redirected",
        "redirect_failed",
        "malformed",
        "no_socket",
        "fragment",
        "not_for_us",
        "bad_source",
        "rate_limited",
        "other_bucket",
        "shed_discover",
        "v6_extension",
        "redirected_v6",
    ];
}

/// Slots of the program's `CONFIG` array (u32 values the daemon writes before steering starts).
pub mod config {
    /// Flags: [`FILTER_DEST`].
    pub const FLAGS: u32 = 0;
    /// Key of the chaddr hash that picks a worker.
    pub const HASH_KEY: u32 = 1;
    /// Frames per second one chaddr may send (0: no limit).
    pub const RATE: u32 = 2;
    /// Frames one chaddr may send at once.
    pub const BURST: u32 = 3;
    /// Our MAC, bytes 0–3 (big-endian).
    pub const MAC_HI: u32 = 4;
    /// Our MAC, bytes 4–5 (big-endian, in the low 16 bits).
    pub const MAC_LO: u32 = 5;
    /// Number of our IPv4 addresses in the slots from [`ADDRS`].
    pub const N_ADDRS: u32 = 6;
    /// Our IPv4 addresses (big-endian), [`MAX_ADDRS`] slots.
    pub const ADDRS: u32 = 7;
    /// Most addresses the destination filter knows.
    pub const MAX_ADDRS: u32 = 8;
    /// While the daemon sheds new work, the share of DISCOVERs (and direct SOLICITs) dropped, in
    /// [`SHED_ALL`]ths: 0 none, `SHED_ALL` every one (set apart from the other slots, which a
    /// reload rewrites).
    pub const SHED: u32 = ADDRS + MAX_ADDRS;
    /// [`SHED`] dropping every DISCOVER (a power of two: the program compares it with the low
    /// bits of a random number).
    pub const SHED_ALL: u32 = 1 << 16;
    /// Number of our IPv6 addresses in the slots from [`ADDRS6`] (unicast DHCPv6 to them is
    /// steered, besides `ff02::1:2` and `ff05::1:3`).
    pub const N_ADDRS6: u32 = SHED + 1;
    /// Our IPv6 addresses, four big-endian words each, [`MAX_ADDRS6`] of them.
    pub const ADDRS6: u32 = N_ADDRS6 + 1;
    /// Most IPv6 addresses the destination filter knows.
    pub const MAX_ADDRS6: u32 = 4;
    /// Number of slots.
    pub const COUNT: u32 = ADDRS6 + 4 * MAX_ADDRS6;
    /// Steer only frames to our MAC or broadcast, and to one of our addresses or broadcast.
    pub const FILTER_DEST: u32 = 1;
    /// Cluster mode: drop requests whose load-balancing bucket is not set in the `BUCKETS`
    /// map, except unicast renewals (ciaddr set, to one of our addresses).
    pub const CLUSTER: u32 = 2;
    /// Steer DHCPv6 too (the daemon serves `[[subnet6]]`); without it DHCPv6 passes to the
    /// kernel as any other IPv6.
    pub const DHCP6: u32 = 4;
    /// Entries of the per-chaddr rate limiter (least recently seen are forgotten first).
    pub const RATE_ENTRIES: u32 = 65_536;
}

/// Load-balancing buckets (RFC 3074): a client's bucket is [`lb_hash`] of its client
/// identifier, or of its hardware address when it sends none.
pub mod buckets {
    /// Number of buckets.
    pub const COUNT: u32 = 256;
    /// u32 words of the `BUCKETS` bitmap map (bucket `b` is bit `b % 32` of word `b / 32`).
    pub const WORDS: u32 = COUNT / 32;
    /// Options the XDP program looks through for the client identifier (61).
    pub const MAX_OPTIONS_SCANNED: u32 = 32;
    /// Bytes past the start of the options the scan gives up at.
    pub const MAX_OPTIONS_OFFSET: usize = 1200;
}

/// The mixing table of RFC 3074 §6: the 256 byte values in pseudo-random order.
pub const LB_MIX: [u8; 256] = [
    251, 175, 119, 215, 81, 14, 79, 191, 103, 49, 181, 143, 186, 157, 0, 232, 31, 32, 55, 60, 152, 58, 17, 237, 174,
    70, 160, 144, 220, 90, 57, 223, 59, 3, 18, 140, 111, 166, 203, 196, 134, 243, 124, 95, 222, 179, 197, 65, 180, 48,
    36, 15, 107, 46, 233, 130, 165, 30, 123, 161, 209, 23, 97, 16, 40, 91, 219, 61, 100, 10, 210, 109, 250, 127, 22,
    138, 29, 108, 244, 67, 207, 9, 178, 204, 74, 98, 126, 249, 167, 116, 34, 77, 193, 200, 121, 5, 20, 113, 71, 35,
    128, 13, 182, 94, 25, 226, 227, 199, 75, 27, 41, 245, 230, 224, 43, 225, 177, 26, 155, 150, 212, 142, 218, 115,
    241, 73, 88, 105, 39, 114, 62, 255, 192, 201, 145, 214, 168, 158, 221, 148, 154, 122, 12, 84, 82, 163, 44, 139,
    228, 236, 205, 242, 217, 11, 187, 146, 159, 64, 86, 239, 195, 42, 106, 198, 118, 112, 184, 172, 87, 2, 173, 117,
    176, 229, 247, 253, 137, 185, 99, 164, 102, 147, 45, 66, 231, 52, 141, 211, 194, 206, 246, 238, 56, 110, 78, 248,
    63, 240, 189, 93, 92, 51, 53, 183, 19, 171, 72, 50, 33, 104, 101, 69, 8, 252, 83, 120, 76, 135, 85, 54, 202, 125,
    188, 213, 96, 235, 136, 208, 162, 129, 190, 132, 156, 38, 47, 1, 7, 254, 24, 4, 216, 131, 89, 21, 28, 133, 37, 153,
    149, 80, 170, 68, 6, 169, 234, 151,
];

/// The RFC 3074 hash (Pearson's, seeded with the length, over the bytes from the last to the
/// first): the client's load-balancing bucket. Kea's HA hook and ISC dhcpd's failover compute
/// the same value.
#[inline(always)]
pub fn lb_hash(key: &[u8]) -> u8 {
    let mut h = key.len() as u8;
    let mut i = key.len();
    while i > 0 {
        i -= 1;
        h = LB_MIX[(h ^ key[i]) as usize];
    }
    h
}

/// FNV-1a over the four bytes of `key` (little-endian) and then the first six bytes of
/// `chaddr` (the Ethernet hardware address).
///
/// The XDP program uses it to choose a worker; the daemon and the bench use the same function
/// to predict which worker (and lease shard) owns a client. The key (random per start unless
/// configured) keeps a client from choosing its worker by choosing its chaddr.
#[inline(always)]
pub fn chaddr_hash(chaddr: &[u8; 6], key: u32) -> u32 {
    let k = key.to_le_bytes();
    let mut h: u32 = 0x811c_9dc5;
    h = (h ^ k[0] as u32).wrapping_mul(0x0100_0193);
    h = (h ^ k[1] as u32).wrapping_mul(0x0100_0193);
    h = (h ^ k[2] as u32).wrapping_mul(0x0100_0193);
    h = (h ^ k[3] as u32).wrapping_mul(0x0100_0193);
    // Unrolled by hand: a fixed-size loop the verifier and the optimiser both like.
    h = (h ^ chaddr[0] as u32).wrapping_mul(0x0100_0193);
    h = (h ^ chaddr[1] as u32).wrapping_mul(0x0100_0193);
    h = (h ^ chaddr[2] as u32).wrapping_mul(0x0100_0193);
    h = (h ^ chaddr[3] as u32).wrapping_mul(0x0100_0193);
    h = (h ^ chaddr[4] as u32).wrapping_mul(0x0100_0193);
    h = (h ^ chaddr[5] as u32).wrapping_mul(0x0100_0193);
    h
}

/// The XSKMAP slot for a frame on `queue` from a client whose chaddr hashes to `hash`, when
/// `sockets` (≥ 1) sockets are bound on that queue.
#[inline(always)]
pub fn xsk_slot(queue: u32, hash: u32, sockets: u32) -> u32 {
    queue * MAX_SOCKETS_PER_QUEUE + hash % sockets
}

/// The worker index within its queue that the XDP program picks for `chaddr` under `key`.
#[inline(always)]
pub fn worker_for_chaddr(chaddr: &[u8; 6], key: u32, sockets: u32) -> u32 {
    chaddr_hash(chaddr, key) % sockets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_values() {
        // FNV-1a 32 over the key's four bytes (little-endian), then "abcdef".
        assert_eq!(chaddr_hash(b"abcdef", 0), 0x1bda_f6fa);
        assert_eq!(chaddr_hash(b"abcdef", 0xdead_beef), 0xb37c_34dc);
    }

    #[test]
    fn another_key_sends_clients_to_other_workers() {
        let chaddrs = (0..64u8).map(|i| [2, 0, 0, 0, 0, i]);
        let moved = chaddrs.filter(|c| worker_for_chaddr(c, 1, 4) != worker_for_chaddr(c, 2, 4)).count();
        assert!(moved > 16, "only {moved} of 64 clients change worker with the key");
    }

    #[test]
    fn the_mixing_table_is_a_permutation() {
        let mut seen = [false; 256];
        for &v in &LB_MIX {
            assert!(!seen[v as usize], "{v} twice");
            seen[v as usize] = true;
        }
    }

    /// Values ISC dhcpd's `loadb_p_hash` (server/failover.c, the RFC 3074 reference code and
    /// its mixing table) gives for these keys, computed with that code and table, not with
    /// ours: a typo in our table or a change in the loop breaks interoperation with dhcpd's and
    /// Kea's load balancing, and this.
    #[test]
    fn lb_hash_agrees_with_dhcpds_loadb_p_hash() {
        let vectors: [(&[u8], u8); 6] = [
            (&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66], 66),
            (&[0x02, 0xc1, 0, 0, 1, 0], 167),
            (&[0x00, 0x0c, 0x29, 0xab, 0xcd, 0xef], 60),
            // A client identifier (type 1 + MAC) and a DUID-LLT based one.
            (&[1, 0x02, 0xaa, 0, 0, 0, 0], 171),
            (&[0, 1, 0, 1, 0x32, 0xa8, 0xe9, 0xcc, 0x0a, 0xe2, 0x92, 0x98, 0xae, 0xc9], 63),
            (
                &[
                    0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
                    27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51,
                    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
                ],
                110,
            ),
        ];
        for (key, want) in vectors {
            assert_eq!(lb_hash(key), want, "{key:02x?}");
        }
        // dhcpd's `loadb_mx_tbl`, fingerprinted (FNV-1a 64 over its 256 bytes in order).
        let mut f: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in &LB_MIX {
            f = (f ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        assert_eq!(f, 0x9a97_d570_ceae_de81, "the mixing table differs from dhcpd's");
    }

    #[test]
    fn lb_hash_follows_rfc_3074() {
        // By hand from the algorithm: the empty key hashes to its length, one byte b to
        // LB_MIX[1 ^ b], two bytes [a, b] to LB_MIX[LB_MIX[2 ^ b] ^ a].
        assert_eq!(lb_hash(&[]), 0);
        assert_eq!(lb_hash(&[0]), LB_MIX[1]);
        assert_eq!(lb_hash(&[0]), 175);
        assert_eq!(lb_hash(&[7, 9]), LB_MIX[(LB_MIX[2 ^ 9] ^ 7) as usize]);
        // Spread: 4096 MACs fill every bucket.
        let mut hit = [false; 256];
        for i in 0..4096u32 {
            hit[lb_hash(&[2, 0, 0, 0, (i >> 8) as u8, i as u8]) as usize] = true;
        }
        assert!(hit.iter().all(|h| *h));
    }

    #[test]
    fn slots_stay_inside_their_queue_row() {
        for q in 0..MAX_QUEUES {
            for n in 1..=MAX_SOCKETS_PER_QUEUE {
                let s = xsk_slot(q, u32::MAX, n);
                assert!(s >= q * MAX_SOCKETS_PER_QUEUE && s < (q + 1) * MAX_SOCKETS_PER_QUEUE);
                assert!(s < XSK_SLOTS);
            }
        }
    }
}
