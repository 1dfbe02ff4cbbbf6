//! DHCPv4 leasequery (RFC 4388): a relay (a BNG, an access node) that lost its table of
//! subscribers asks who holds an address, or what a MAC or a client identifier holds, and is
//! answered DHCPLEASEACTIVE (with the lease's remaining time, the client's last transaction
//! and, for MAC and client-id queries, every address the client holds), DHCPLEASEUNASSIGNED
//! (an address of ours nobody holds) or DHCPLEASEUNKNOWN (not ours, or a client we do not
//! know). Sans-IO: the caller checks who may ask and puts the reply on the wire.

use std::net::Ipv4Addr;

use crate::{
    config::Config,
    dhcp4::{self, Message, OptionWriter, field, opt},
    leases::{Lease, LeaseDb, LeaseState},
};

/// DHCPLEASEQUERY (RFC 4388 §6.1).
pub const LEASEQUERY: u8 = 10;
/// DHCPLEASEUNASSIGNED.
pub const LEASEUNASSIGNED: u8 = 11;
/// DHCPLEASEUNKNOWN.
pub const LEASEUNKNOWN: u8 = 12;
/// DHCPLEASEACTIVE.
pub const LEASEACTIVE: u8 = 13;
/// Option 91, client-last-transaction-time (seconds ago).
pub const CLIENT_LAST_TRANSACTION_TIME: u8 = 91;
/// Option 92, associated-ip (every address the client holds).
pub const ASSOCIATED_IP: u8 = 92;

/// DHCPBULKLEASEQUERY (RFC 6926 §6.1).
pub const BULKLEASEQUERY: u8 = 14;
/// DHCPLEASEQUERYDONE: the end of a bulk answer.
pub const LEASEQUERYDONE: u8 = 16;

/// What a query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `ciaddr`.
    Address(Ipv4Addr),
    /// Option 61.
    ClientId(Vec<u8>),
    /// `chaddr` (Ethernet).
    Mac([u8; 6]),
    /// Every lease given on a subscriber line with this remote id (bulk: sub-option 2 of the
    /// query's option 82).
    RemoteId(Vec<u8>),
    /// Every lease given on this circuit (bulk: sub-option 1 of the query's option 82).
    CircuitId(Vec<u8>),
}

/// The query of a DHCPBULKLEASEQUERY: a remote or circuit id in its option 82 (every lease
/// of that line), else as [`query_of`].
pub fn bulk_query_of(m: &Message<'_>) -> Option<Query> {
    if let Some(rai) = m.single(opt::RELAY_AGENT_INFO) {
        for (code, v) in dhcp4::sub_options(rai) {
            match code {
                2 => return Some(Query::RemoteId(v.to_vec())),
                1 => return Some(Query::CircuitId(v.to_vec())),
                _ => {}
            }
        }
    }
    query_of(m)
}

/// The answer for a client's (or a line's) active leases: ACTIVE with the most recent, and with
/// every address when `associated`; UNKNOWN when there is none.
fn held(mut leases: Vec<Lease>, associated: bool) -> (u8, Option<Lease>, Vec<Ipv4Addr>) {
    leases.sort_by_key(|l| std::cmp::Reverse(l.expires));
    let addrs = if associated { leases.iter().map(|l| l.addr).collect() } else { vec![] };
    match leases.first() {
        Some(l) => (LEASEACTIVE, Some(*l), addrs),
        None => (LEASEUNKNOWN, None, vec![]),
    }
}

/// Every active lease of the subscriber line `q` names (by the tag of its remote or circuit id,
/// which the leases keep), most recent first; empty for other queries.
pub fn line_leases(db: &LeaseDb, q: &Query, now: u32) -> Vec<Lease> {
    let (tag, remote) = match q {
        Query::RemoteId(r) => (crate::leases::Tags::of(r), true),
        Query::CircuitId(c) => (crate::leases::Tags::of(c), false),
        _ => return vec![],
    };
    let mut held = db.leases_where(|l| {
        l.state == LeaseState::Bound
            && l.holds(now)
            && tag != 0
            && (if remote { l.tags.remote } else { l.tags.circuit }) == tag
    });
    held.sort_by_key(|l| std::cmp::Reverse(l.expires));
    held
}

/// The query of a DHCPLEASEQUERY message (`ciaddr` first, then a client identifier, then
/// `chaddr`, as RFC 4388 §6.1 orders them); None when it names nothing.
pub fn query_of(m: &Message<'_>) -> Option<Query> {
    if !m.ciaddr().is_unspecified() {
        return Some(Query::Address(m.ciaddr()));
    }
    if let Some(id) = m.single(opt::CLIENT_ID) {
        return Some(Query::ClientId(id.to_vec()));
    }
    (m.hlen() == 6 && m.htype() == 1 && m.chaddr6() != [0; 6]).then(|| Query::Mac(m.chaddr6()))
}

/// The answer: its message type, the lease it is about (ACTIVE), and every address the client
/// holds (MAC and client-id queries).
#[derive(Debug, Clone)]
pub struct Answer {
    /// LEASEACTIVE, LEASEUNASSIGNED or LEASEUNKNOWN.
    pub kind: u8,
    /// The lease (ACTIVE only): the most recent one for a client with several.
    pub lease: Option<Lease>,
    /// The client's bound addresses (MAC and client-id queries).
    pub associated: Vec<Ipv4Addr>,
}

/// Answers `q` from `db` at `now`.
pub fn answer(cfg: &Config, db: &LeaseDb, q: &Query, now: u32) -> Answer {
    let active = |l: &Lease| l.state == LeaseState::Bound && l.holds(now);
    let (kind, lease, associated) = match q {
        Query::Address(a) => match db.lease_at(*a).map(|(_, l)| l).filter(active) {
            Some(l) => (LEASEACTIVE, Some(l), vec![]),
            None if cfg.subnet_of(*a).is_some() => (LEASEUNASSIGNED, None, vec![]),
            None => (LEASEUNKNOWN, None, vec![]),
        },
        Query::ClientId(id) => held(db.leases_where(|l| active(l) && l.key.client_id_bytes() == Some(&id[..])), true),
        Query::Mac(mac) => held(db.leases_where(|l| active(l) && l.chaddr == *mac), true),
        Query::RemoteId(_) | Query::CircuitId(_) => held(line_leases(db, q, now), false),
    };
    Answer { kind, lease, associated }
}

/// The fixed part every answer to `req` starts with in `out` (at least 300 bytes): a
/// BOOTREPLY for Ethernet with the query's xid and giaddr, the rest zero.
fn reply_head(req: &Message<'_>, out: &mut [u8]) -> Option<()> {
    let b = req.bytes();
    out.get_mut(..300)?.fill(0);
    out[field::OP] = dhcp4::BOOTREPLY;
    out[field::HTYPE] = 1;
    out[field::HLEN] = 6;
    out[field::XID].copy_from_slice(b.get(field::XID)?);
    out[field::GIADDR].copy_from_slice(b.get(field::GIADDR)?);
    Some(())
}

/// Writes the reply to the query `req` (a BOOTP message) into `out`: a BOOTREPLY with the
/// query's xid and giaddr, `ciaddr` and `chaddr` of the lease for ACTIVE, the lease time left
/// (51), the client's last transaction (91), the associated addresses (92, when it holds
/// more than one), the client
/// identifier the lease is held by (61), and `server_id` (54). Returns its length.
pub fn write_reply(
    cfg: &Config,
    req: &Message<'_>,
    a: &Answer,
    server_id: Ipv4Addr,
    now: u32,
    out: &mut [u8],
) -> Option<usize> {
    let b = req.bytes();
    reply_head(req, out)?;
    match &a.lease {
        Some(l) => {
            out[field::CIADDR].copy_from_slice(&l.addr.octets());
            out[field::CHADDR.start..field::CHADDR.start + 6].copy_from_slice(&l.chaddr);
        }
        None => {
            // The query's own fields, as it asked (RFC 4388 §6.4).
            out[field::CIADDR].copy_from_slice(b.get(field::CIADDR)?);
            out[field::HTYPE] = req.htype();
            out[field::HLEN] = req.hlen();
            out[field::CHADDR].copy_from_slice(b.get(field::CHADDR)?);
        }
    }
    out[field::MAGIC].copy_from_slice(&dhcp4::MAGIC_COOKIE);
    let limit = out.len().min(576 - 28);
    let mut w = OptionWriter::new(out, field::OPTIONS, limit);
    let mut ok = w.put(opt::MESSAGE_TYPE, &[a.kind]) && w.put(opt::SERVER_ID, &server_id.octets());
    if let Some(l) = &a.lease {
        let left = l.expires.saturating_sub(now);
        ok &= w.put(opt::LEASE_TIME, &left.to_be_bytes());
        // The last transaction: when the lease was last given (its end less the lease time).
        let lease_time = cfg.subnet_index(l.subnet).map_or(0, |i| cfg.subnets[i].lease_time);
        let since = now.saturating_sub(l.expires.saturating_sub(lease_time));
        ok &= w.put(CLIENT_LAST_TRANSACTION_TIME, &since.to_be_bytes());
        if let Some(id) = l.key.client_id_bytes() {
            ok &= w.put(opt::CLIENT_ID, id);
        }
    }
    // Only when the client holds more than the address already in ciaddr (as ISC dhcpd).
    if a.associated.len() > 1 {
        let list: Vec<u8> = a.associated.iter().take(63).flat_map(|a| a.octets()).collect();
        ok &= w.put(ASSOCIATED_IP, &list);
    }
    if !ok {
        return None;
    }
    Some(w.finish(300))
}

/// The DHCPLEASEQUERYDONE that ends a bulk answer to `req`.
pub fn write_done(req: &Message<'_>, server_id: Ipv4Addr, out: &mut [u8]) -> Option<usize> {
    reply_head(req, out)?;
    out[field::MAGIC].copy_from_slice(&dhcp4::MAGIC_COOKIE);
    let limit = out.len().min(576 - 28);
    let mut w = OptionWriter::new(out, field::OPTIONS, limit);
    (w.put(opt::MESSAGE_TYPE, &[LEASEQUERYDONE]) && w.put(opt::SERVER_ID, &server_id.octets())).then_some(())?;
    Some(w.finish(300))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::{ClientKey, Tags};

    #[test]
    fn a_client_on_two_subnets_is_answered_with_both_addresses() {
        let cfg = Config::parse(
            "lq.toml",
            "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.10-198.18.0.20\"\n\
             [[subnet]]\nsubnet = \"198.18.1.0/24\"\n[[subnet.pool]]\nrange = \"198.18.1.10-198.18.1.20\"\n",
        )
        .unwrap();
        let mac = [2, 0, 0, 0, 0, 7];
        let lease = |subnet: u32, addr: [u8; 4], expires: u32| Lease {
            key: ClientKey::hw(1, &mac, subnet),
            chaddr: mac,
            addr: addr.into(),
            expires,
            state: LeaseState::Bound,
            subnet,
            tags: Tags::default(),
        };
        let db = LeaseDb::new(&cfg, 1, [lease(1, [198, 18, 0, 12], 5000), lease(2, [198, 18, 1, 15], 6000)], 1000);
        let a = answer(&cfg, &db, &Query::Mac(mac), 1000);
        assert_eq!(a.kind, LEASEACTIVE);
        assert_eq!(a.lease.map(|l| l.addr), Some(Ipv4Addr::new(198, 18, 1, 15)), "the most recent lease");
        let q = crate::testing::Request::new(crate::dhcp4::MessageType::Discover).client(mac).bootp();
        let m = Message::parse(&q).unwrap();
        let mut out = [0u8; 576];
        let n = write_reply(&cfg, &m, &a, Ipv4Addr::new(198, 18, 0, 1), 1000, &mut out).unwrap();
        let r = Message::parse(&out[..n]).unwrap();
        assert_eq!(r.single(ASSOCIATED_IP), Some(&[198, 18, 1, 15, 198, 18, 0, 12][..]));
        assert_eq!(r.single(opt::LEASE_TIME), Some(&5000u32.to_be_bytes()[..]));
        assert_eq!(r.ciaddr(), Ipv4Addr::new(198, 18, 1, 15));
        // Nothing of it after both ended.
        assert_eq!(answer(&cfg, &db, &Query::Mac(mac), 7000).kind, LEASEUNKNOWN);
        assert_eq!(answer(&cfg, &db, &Query::Address(Ipv4Addr::new(198, 18, 0, 12)), 7000).kind, LEASEUNASSIGNED);
    }
}
