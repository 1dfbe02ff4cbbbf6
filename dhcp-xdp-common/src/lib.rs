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

/// Which frames the steering program takes (its `ROLE` global, set when loading).
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
    /// Number of counter slots.
    pub const COUNT: u32 = 9;
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
    /// Number of slots.
    pub const COUNT: u32 = ADDRS + MAX_ADDRS;
    /// Steer only frames to our MAC or broadcast, and to one of our addresses or broadcast.
    pub const FILTER_DEST: u32 = 1;
    /// Entries of the per-chaddr rate limiter (least recently seen are forgotten first).
    pub const RATE_ENTRIES: u32 = 65_536;
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
