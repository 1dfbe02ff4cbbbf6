//! dhcp-xdp: a DHCPv4 server that answers from AF_XDP sockets.
//!
//! - [`ebpf`] loads and attaches the XDP steering program and reads its counters.
//! - [`datapath`] owns the AF_XDP sockets and the worker threads (the one room for `unsafe`).
//! - [`handler`] is the interface between datapath and decision-maker, with the reflector.
//! - [`wire`] holds zero-copy header views and checksums.
//! - [`iface`] reads the served interface's addresses and queues.
#![deny(unsafe_code)]

pub mod config;
#[allow(unsafe_code, reason = "the AF_XDP datapath is the daemon's one room for unsafe code")]
pub mod datapath;
pub mod dhcp;
pub mod ebpf;
pub mod engine;
pub mod handler;
pub mod iface;
pub mod journal;
pub mod leases;
pub mod serve;
pub mod wire;
