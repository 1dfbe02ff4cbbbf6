//! Leases in and out of other servers' lease files, the way operators move between servers:
//! Kea's memfile CSV ([`kea`], and [`kea6`] for DHCPv6) in and out, ISC dhcpd's `dhcpd.leases` ([`dhcpd`]) in; and
//! Kea's configuration converted to ours ([`convert`]). Sans-IO: text in, leases out, and back.
//! Nothing here may drop a held lease silently: what cannot be carried over is returned with
//! the reason.

pub mod convert;
pub mod dhcpd;
pub mod dhcpd_class;
pub mod kea;
pub mod kea6;

use std::net::Ipv4Addr;

pub use convert::{convert_dhcpd_conf, convert_kea_config};
pub use dhcpd::read_dhcpd_leases;
pub use kea::{KEA_CSV_HEADER, lease_json, read_kea_csv, write_kea_csv};
pub use kea6::{Import6, KEA_CSV6_HEADER, is_kea_csv6, read_kea_csv6, write_kea_csv6};

use crate::{
    config::Config,
    leases::{Attr, Lease, MAX_ATTR, Tags},
};

/// Why a row was not carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line in the file (0: not tied to a line).
    pub line: u64,
    /// The address, when the row had one.
    pub addr: Option<Ipv4Addr>,
    /// Why.
    pub why: String,
}

/// What an import found.
#[derive(Debug, Default)]
pub struct Import {
    /// The leases to keep (the last entry of each address).
    pub leases: Vec<Lease>,
    /// Held leases not carried over, with the reason.
    pub skipped: Vec<Skipped>,
    /// Entries that hold nothing at the time of the import (expired, released, free, deleted):
    /// left to the pool, as the other server would.
    pub unheld: usize,
    /// What the kept leases keep beside them: their clients' host names (Kea's `hostname`,
    /// dhcpd's `client-hostname`) and their relays' option 82 (Kea's `relay-agent-info` in
    /// the user context, dhcpd's `agent.*` options), by kind and the lease's key.
    pub attrs: crate::leases::AttrMap,
}

impl Import {
    /// Keeps `lease` if its address lies in a pool or reservation of `cfg`; its subnet is the
    /// file's `subnet_hint` when that subnet holds the address, else the subnet that does.
    /// Otherwise the lease is reported in [`Import::skipped`].
    fn admit(&mut self, cfg: &Config, line: u64, subnet_hint: Option<u32>, mut lease: Lease, attrs: [&[u8]; 2]) {
        let addr = lease.addr;
        let subnet = match subnet_hint.and_then(|s| cfg.subnet_index(s)).filter(|&i| cfg.subnets[i].contains(addr)) {
            Some(i) => Some(i),
            None => cfg.subnet_of(addr),
        };
        let skip = |why: String| Skipped { line, addr: Some(addr), why };
        let Some(si) = subnet else {
            self.skipped.push(skip("outside every configured subnet".into()));
            return;
        };
        let s = &cfg.subnets[si];
        let reserved = s.reservations.iter().any(|r| r.ip == Some(addr));
        if s.pool_of(addr).is_none() && !reserved {
            self.skipped.push(skip(format!("outside every pool and reservation of subnet {}", s.id)));
            return;
        }
        lease.subnet = s.id;
        // The client's key in the subnet's lease scope: a client with leases on two subnets
        // keeps both.
        lease.key = lease.key.rescoped(s.lease_scope);
        for (a, v) in Attr::ALL.into_iter().zip(attrs) {
            // A host name too long is cut; an option 82 too long is not kept (cut, it would
            // not parse).
            let v = match a {
                Attr::Name => &v[..v.len().min(MAX_ATTR)],
                Attr::RelayInfo if v.len() > MAX_ATTR => &[],
                Attr::RelayInfo => v,
            };
            if !v.is_empty() {
                self.attrs.insert((a, lease.key), v.into());
            }
            if a == Attr::RelayInfo && !v.is_empty() {
                // The line it was given on, for quotas and bulk leasequery.
                lease.tags = Tags::of_relay_info(v);
            }
        }
        self.leases.push(lease);
    }
}
