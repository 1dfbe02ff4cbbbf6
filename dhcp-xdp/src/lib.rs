//! dhcp-xdp: the I/O half of the DHCPv4 and DHCPv6 server that answers from AF_XDP sockets. The protocol,
//! lease tables and configuration live in `dhcp-xdp-core` (sans-IO); this crate moves frames,
//! keeps leases on disk and runs the control loop.
//!
//! - [`control`] answers the management channel in Kea's shapes.
//! - [`ebpf`] loads and attaches the XDP steering program and reads its counters.
//! - [`datapath`] owns the AF_XDP sockets and the worker threads (the one room for `unsafe`).
//! - [`handler`] is the interface between datapath and decision-maker, with the reflector.
//!   Its `port` submodule is the single-socket AF_XDP port of the load generator.
//! - [`clock`] is the lease clock (the database's in cluster mode).
//! - [`store`] keeps the lease tables durable: the journal, or the cluster's database.
//! - [`daemon`] is the running daemon: start, the control loop's jobs, stop.
//! - [`serve`] is the state workers and control loop share: configuration and tables, reload,
//!   expiry sweep.
//! - [`serve4`] puts the DHCPv4 engine on the datapath: a handler per worker.
//! - [`iface`] reads the served interface's addresses and queues.
//! - [`privileges`] drops every capability once setup is done.
//! - [`metrics`] serves Prometheus metrics at `/metrics`.
//! - [`statistics`] is the one reading of the message counters both of them render.
//! - [`http`] is the management ports' bounded HTTP server (metrics; Kea 3's HTTP control
//!   socket, over TLS where asked).
//! - [`bulklq`] answers bulk leasequery (RFC 6926) over TCP port 67.
//! - [`forensic`] is the forensic lease log: lease events as JSON lines, and `who` reading them.
//! - [`logging`] sends the daemon's log to the systemd journal or stdout.
#![deny(unsafe_code)]

pub mod bulklq;
pub mod clock;
pub mod control;
pub mod daemon;
#[expect(unsafe_code, reason = "the AF_XDP datapath is the daemon's one room for unsafe code")]
pub mod datapath;
pub mod ebpf;
pub mod forensic;
pub mod handler;
pub mod http;
pub mod iface;
pub mod logging;
pub mod metrics;
pub mod privileges;
pub mod serve;
pub mod serve4;
pub mod serve6;
pub mod statistics;
pub mod store;
