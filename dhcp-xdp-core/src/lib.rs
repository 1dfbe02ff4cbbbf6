//! dhcp-xdp-core: the half of dhcp-xdp that needs no operating system.
//!
//! - [`wire`]: zero-copy Ethernet/VLAN/IPv4/UDP views and the checksums a reply needs.
//! - [`dhcp4`]: the BOOTP/DHCPv4 message view and the bounded options writer.
//! - [`dhcp6`]: the DHCPv6 message view (RFC 8415): client and relay messages, IAs, relay hops.
//! - [`engine4`]: the RFC 2131 server — request in, reply written in place, verdict out.
//! - [`engine6`]: the RFC 8415 server — IA_NA and IA_PD, relayed or direct, reply out.
//! - [`membership`]: cluster membership as state machines (heartbeats, buckets, blocks).
//! - [`leases`]: lease shards, pools and their address ownership, the changes to journal.
//! - [`config`]: the TOML file as written and the validated runtime configuration.
//! - [`verdict`]: what became of a frame (reply, reply once durable, drop with a reason).
//! - [`migrate`]: leases in and out of Kea's memfile CSV (and Kea's lease object), in from ISC dhcpd's `dhcpd.leases`.
//! - [`net`]: small addressing value types.
//! - [`records`]: the lease store's byte format (journal records, snapshots) and replay.
//! - [`calendar`]: Gregorian dates to days since the epoch and back (dhcpd dates, Kea stamps).
//!
//! Nothing here performs I/O, reads a clock, spawns a thread or uses `unsafe`: time comes in as
//! a parameter, frames as byte slices, configuration as text. That keeps every RFC rule a unit
//! test with an injected clock, and lets this crate build and test on stable without the eBPF
//! toolchain.
#![forbid(unsafe_code)]

pub mod calendar;
pub mod classify;
pub mod config;
pub mod dhcp4;
pub mod dhcp6;
pub mod engine4;
pub mod engine6;
pub mod leasequery;
pub mod leasequery6;
pub mod leases;
pub mod membership;
pub mod migrate;
pub mod net;
pub mod records;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod verdict;
pub mod wire;
