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
    /// Number of counter slots.
    pub const COUNT: u32 = 6;
    /// Names of the slots, in slot order, as the daemon reports them.
    pub const NAMES: [&str; COUNT as usize] =
        ["passed_not_dhcp", "redirected", "redirect_failed", "malformed", "no_socket", "fragment"];
}

/// FNV-1a over the first six bytes of `chaddr` (the Ethernet hardware address).
///
/// The XDP program uses it to choose a worker; the daemon and the bench use the same function
/// to predict which worker (and lease shard) owns a client.
#[inline(always)]
pub fn chaddr_hash(chaddr: &[u8; 6]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
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

/// The worker index within its queue that the XDP program picks for `chaddr`.
#[inline(always)]
pub fn worker_for_chaddr(chaddr: &[u8; 6], sockets: u32) -> u32 {
    chaddr_hash(chaddr) % sockets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_values() {
        // FNV-1a 32 of "" is the offset basis; of the six bytes "abcdef" is 0xff478a2a.
        assert_eq!(chaddr_hash(b"abcdef"), 0xff47_8a2a);
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
