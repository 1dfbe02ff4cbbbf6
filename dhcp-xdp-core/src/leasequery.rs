//! DHCPv4 leasequery (RFC 4388, with RFC 6148's query by remote id and RFC 6926's by relay id
//! and status codes): a relay (a BNG, an access node) that lost its table of subscribers asks
//! who holds an address, or what a MAC, a client identifier or a subscriber line holds, and is
//! answered DHCPLEASEACTIVE (with the lease's remaining time, the client's last transaction,
//! the option 82 its relay added, and for client and line queries every address it holds),
//! DHCPLEASEUNASSIGNED (an address of ours nobody holds) or DHCPLEASEUNKNOWN (not ours, a
//! client we do not know, or a query that names nothing). Sans-IO: the caller checks who may
//! ask and puts the reply on the wire.

use std::net::Ipv4Addr;

use crate::{
    config::Config,
    dhcp4::{self, Message, OptionWriter, field, opt, relay},
    leases::{Attrs, Lease, LeaseDb, LeaseState, Tags},
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
/// DHCPLEASEQUERYDONE: the end of a bulk answer (RFC 6926 §6.1; 16 is RFC 7724's
/// DHCPACTIVELEASEQUERY).
pub const LEASEQUERYDONE: u8 = 15;
/// Option 151, status-code (RFC 6926 §6.2.2): a code, then a UTF-8 message.
pub const STATUS_CODE: u8 = 151;

/// The codes of option 151 (RFC 6926 §6.2.2).
pub mod status {
    /// The query was answered.
    pub const SUCCESS: u8 = 0;
    /// The query names nothing to look for.
    pub const MALFORMED_QUERY: u8 = 3;
}

/// What a query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `ciaddr`.
    Address(Ipv4Addr),
    /// Option 61.
    ClientId(Vec<u8>),
    /// `chaddr` (Ethernet).
    Mac([u8; 6]),
    /// Every lease given on a subscriber line with this remote id (sub-option 2 of the
    /// query's option 82; RFC 6148).
    RemoteId(Vec<u8>),
    /// Every lease given on this circuit (sub-option 1 of the query's option 82).
    CircuitId(Vec<u8>),
    /// Every lease given through the relay with this relay id (sub-option 12 of the query's
    /// option 82; RFC 6925, RFC 6926 §7.2).
    RelayId(Vec<u8>),
}

/// The line a query's option 82 names: its relay id, else its remote id, else its circuit id.
fn line_of(m: &Message<'_>) -> Option<Query> {
    let rai = m.single(opt::RELAY_AGENT_INFO)?;
    let find = |code: u8| dhcp4::sub_options(rai).find(|&(c, v)| c == code && !v.is_empty()).map(|(_, v)| v.to_vec());
    find(relay::RELAY_ID)
        .map(Query::RelayId)
        .or_else(|| find(relay::REMOTE_ID).map(Query::RemoteId))
        .or_else(|| find(relay::CIRCUIT_ID).map(Query::CircuitId))
}

/// The query of a DHCPBULKLEASEQUERY: a relay, remote or circuit id in its option 82 (every
/// lease of that relay or line), else as [`query_of`].
pub fn bulk_query_of(m: &Message<'_>) -> Option<Query> {
    line_of(m).or_else(|| query_of(m))
}

/// The query of a DHCPLEASEQUERY message (`ciaddr` first, then a client identifier, then
/// `chaddr`, as RFC 4388 §6.1 orders them, then the line its option 82 names, RFC 6148); None
/// when it names nothing.
pub fn query_of(m: &Message<'_>) -> Option<Query> {
    if !m.ciaddr().is_unspecified() {
        return Some(Query::Address(m.ciaddr()));
    }
    if let Some(id) = m.single(opt::CLIENT_ID) {
        return Some(Query::ClientId(id.to_vec()));
    }
    if m.hlen() == 6 && m.htype() == 1 && m.chaddr6() != [0; 6] {
        return Some(Query::Mac(m.chaddr6()));
    }
    line_of(m)
}

/// A lease an answer is about, with what it keeps beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The lease.
    pub lease: Lease,
    /// The option 82 its relay added to the client's last REQUEST.
    pub relay_info: Option<Box<[u8]>>,
    /// The host name its client gave.
    pub name: Option<Box<[u8]>>,
}

impl Held {
    fn of(lease: Lease, [name, relay_info]: Attrs) -> Self {
        Self { lease, relay_info, name }
    }
}

/// Whether `l` is held at `now`.
fn active(l: &Lease, now: u32) -> bool {
    l.state == LeaseState::Bound && l.holds(now)
}

/// The answer for a client's (or a line's) active leases: ACTIVE with the most recent and
/// every address; UNKNOWN when there is none.
fn held(mut leases: Vec<Held>) -> Answer {
    leases.sort_by_key(|h| std::cmp::Reverse(h.lease.expires));
    let associated = leases.iter().map(|h| h.lease.addr).collect();
    match leases.into_iter().next() {
        Some(h) => Answer { kind: LEASEACTIVE, held: Some(h), associated, status: None },
        None => Answer::of(LEASEUNKNOWN),
    }
}

/// Every active lease given on the relay or line `q` names, most recent first; empty for
/// other queries. A lease that keeps its relay's option 82 is matched by it exactly; one that
/// does not (recorded before option 82 was kept) by the tag of its remote or circuit id.
pub fn line_leases(db: &LeaseDb, q: &Query, now: u32) -> Vec<Held> {
    let (code, id, tag_of): (u8, &[u8], fn(&Tags) -> u32) = match q {
        Query::RemoteId(r) => (relay::REMOTE_ID, r, |t| t.remote),
        Query::CircuitId(c) => (relay::CIRCUIT_ID, c, |t| t.circuit),
        Query::RelayId(r) => (relay::RELAY_ID, r, |_| 0),
        _ => return vec![],
    };
    let tag = Tags::of(id);
    let mut v: Vec<Held> = db
        .leases_with_attrs(|l, [_, rai]| {
            active(l, now)
                && match rai {
                    Some(rai) => dhcp4::sub_options(rai).any(|(c, v)| c == code && v == id),
                    None => tag != 0 && tag_of(&l.tags) == tag,
                }
        })
        .into_iter()
        .map(|(l, attrs)| Held::of(l, attrs))
        .collect();
    v.sort_by_key(|h| std::cmp::Reverse(h.lease.expires));
    v
}

/// The answer: its message type, the lease it is about (ACTIVE), every address the client
/// (or line) holds, and a status.
#[derive(Debug, Clone)]
pub struct Answer {
    /// LEASEACTIVE, LEASEUNASSIGNED or LEASEUNKNOWN.
    pub kind: u8,
    /// The lease (ACTIVE only): the most recent one for a client with several.
    pub held: Option<Held>,
    /// The bound addresses of the client or line (queries other than by address).
    pub associated: Vec<Ipv4Addr>,
    /// Option 151's code and message, when the answer carries one.
    pub status: Option<(u8, &'static str)>,
}

impl Answer {
    /// An answer of `kind` about no lease.
    fn of(kind: u8) -> Self {
        Self { kind, held: None, associated: vec![], status: None }
    }

    /// The answer to a query that names nothing: UNKNOWN, MalformedQuery.
    pub fn malformed() -> Self {
        Self {
            status: Some((status::MALFORMED_QUERY, "the query names no address, client or line")),
            ..Self::of(LEASEUNKNOWN)
        }
    }

    /// ACTIVE for `h` alone (a bulk answer's leases, one message each).
    pub fn active(h: Held) -> Self {
        Self { kind: LEASEACTIVE, held: Some(h), associated: vec![], status: None }
    }
}

/// Answers `q` from `db` at `now`.
pub fn answer(cfg: &Config, db: &LeaseDb, q: &Query, now: u32) -> Answer {
    match q {
        Query::Address(a) => match db.lease_at(*a).map(|(_, l)| l).filter(|l| active(l, now)) {
            Some(l) => Answer {
                kind: LEASEACTIVE,
                held: Some(Held::of(l, db.attrs_of(&l.key))),
                associated: vec![],
                status: None,
            },
            None if cfg.subnet_of(*a).is_some() => Answer::of(LEASEUNASSIGNED),
            None => Answer::of(LEASEUNKNOWN),
        },
        Query::ClientId(id) => held(client_leases(db, now, |l| l.key.client_id_bytes() == Some(&id[..]))),
        Query::Mac(mac) => held(client_leases(db, now, |l| l.chaddr == *mac)),
        Query::RemoteId(_) | Query::CircuitId(_) | Query::RelayId(_) => held(line_leases(db, q, now)),
    }
}

/// The active leases `is_client` accepts.
fn client_leases(db: &LeaseDb, now: u32, is_client: impl Fn(&Lease) -> bool) -> Vec<Held> {
    db.leases_with_attrs(|l, _| active(l, now) && is_client(l)).into_iter().map(|(l, a)| Held::of(l, a)).collect()
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

/// Option 151's value: the code, then the message.
fn put_status(w: &mut OptionWriter<'_>, (code, text): (u8, &str)) -> bool {
    let mut v = Vec::with_capacity(1 + text.len());
    v.push(code);
    v.extend_from_slice(text.as_bytes());
    w.put(STATUS_CODE, &v)
}

/// Writes the reply to the query `req` (a BOOTP message) into `out`: a BOOTREPLY with the
/// query's xid and giaddr, `ciaddr` and `chaddr` of the lease for ACTIVE, the lease time left
/// (51), the client's last transaction (91), the client identifier the lease is held by (61),
/// the host name (12) when the query's parameter list asks for it, the associated addresses
/// (92, when there is more than one), the status (151) when the answer has one, `server_id`
/// (54), and last the option 82 the lease keeps (RFC 4388 §6.4.2). Returns its length.
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
    match &a.held {
        Some(h) => {
            out[field::CIADDR].copy_from_slice(&h.lease.addr.octets());
            out[field::CHADDR.start..field::CHADDR.start + 6].copy_from_slice(&h.lease.chaddr);
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
    if let Some(h) = &a.held {
        let l = &h.lease;
        let left = l.expires.saturating_sub(now);
        ok &= w.put(opt::LEASE_TIME, &left.to_be_bytes());
        // The last transaction: when the lease was last given (its end less the lease time).
        let lease_time = cfg.subnet_index(l.subnet).map_or(0, |i| cfg.subnets[i].lease_time);
        let since = now.saturating_sub(l.expires.saturating_sub(lease_time));
        ok &= w.put(CLIENT_LAST_TRANSACTION_TIME, &since.to_be_bytes());
        if let Some(id) = l.key.client_id_bytes() {
            ok &= w.put(opt::CLIENT_ID, id);
        }
        let asked = req.single(opt::PARAMETER_LIST).unwrap_or_default();
        if let Some(name) = h.name.as_deref().filter(|_| asked.contains(&opt::HOSTNAME)) {
            ok &= w.put(opt::HOSTNAME, name);
        }
    }
    // Only when the client holds more than the address already in ciaddr (as ISC dhcpd).
    if a.associated.len() > 1 {
        let list: Vec<u8> = a.associated.iter().take(63).flat_map(|a| a.octets()).collect();
        ok &= w.put(ASSOCIATED_IP, &list);
    }
    if let Some(st) = a.status {
        ok &= put_status(&mut w, st);
    }
    if let Some(rai) = a.held.as_ref().and_then(|h| h.relay_info.as_deref()) {
        ok &= w.put(opt::RELAY_AGENT_INFO, rai);
    }
    if !ok {
        return None;
    }
    Some(w.finish(300))
}

/// The DHCPLEASEQUERYDONE that ends a bulk answer to `req`, with its status (151).
pub fn write_done(req: &Message<'_>, server_id: Ipv4Addr, status: (u8, &str), out: &mut [u8]) -> Option<usize> {
    reply_head(req, out)?;
    out[field::MAGIC].copy_from_slice(&dhcp4::MAGIC_COOKIE);
    let limit = out.len().min(576 - 28);
    let mut w = OptionWriter::new(out, field::OPTIONS, limit);
    (w.put(opt::MESSAGE_TYPE, &[LEASEQUERYDONE])
        && w.put(opt::SERVER_ID, &server_id.octets())
        && put_status(&mut w, status))
    .then_some(())?;
    Some(w.finish(300))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::{Attr, ClientKey, Tags};

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
        assert_eq!(a.held.as_ref().map(|h| h.lease.addr), Some(Ipv4Addr::new(198, 18, 1, 15)), "the most recent lease");
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

    /// Lines are found by the option 82 the leases keep (relay id, remote id, circuit id: the
    /// whole value, not a hash), or by the tag of a lease recorded without one; ACTIVE carries
    /// the option 82 as stored (last), the host name when asked, and every address of the line;
    /// a query that names nothing is UNKNOWN with MalformedQuery.
    #[test]
    fn lines_are_answered_from_the_option_82_the_leases_keep() {
        let cfg = Config::parse(
            "lq.toml",
            "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.10-198.18.0.20\"\n",
        )
        .unwrap();
        let rai = |remote: &[u8], relay_id: &[u8]| -> Vec<u8> {
            [&[1, 4][..], b"olt1", &[2, remote.len() as u8], remote, &[12, relay_id.len() as u8], relay_id].concat()
        };
        let lease = |i: u8, expires: u32, tags: Tags| Lease {
            key: ClientKey::hw(1, &[2, 0, 0, 0, 0, i], 1),
            chaddr: [2, 0, 0, 0, 0, i],
            addr: Ipv4Addr::new(198, 18, 0, 10 + i),
            expires,
            state: LeaseState::Bound,
            subnet: 1,
            tags,
        };
        let line_a = rai(b"cpe-a", b"bng1");
        let line_b = rai(b"cpe-b", b"bng1");
        let (a1, a2, b1) = (
            lease(1, 5000, Tags::of_relay_info(&line_a)),
            lease(2, 6000, Tags::of_relay_info(&line_a)),
            lease(3, 7000, Tags::of_relay_info(&line_b)),
        );
        // Recorded before option 82 was kept: its tags only.
        let old = lease(4, 5500, Tags { circuit: 0, remote: Tags::of(b"cpe-a") });
        let db = LeaseDb::new(&cfg, 2, [a1, a2, b1, old], 1000);
        let mut attrs = crate::leases::AttrMap::new();
        attrs.insert((Attr::RelayInfo, a1.key), line_a.clone().into());
        attrs.insert((Attr::RelayInfo, a2.key), line_a.clone().into());
        attrs.insert((Attr::Name, a2.key), b"cpe-a-router"[..].into());
        attrs.insert((Attr::RelayInfo, b1.key), line_b.clone().into());
        db.restore_attrs(&attrs);
        let addrs =
            |q: Query| -> Vec<u8> { line_leases(&db, &q, 1000).iter().map(|h| h.lease.addr.octets()[3]).collect() };
        assert_eq!(addrs(Query::RemoteId(b"cpe-a".to_vec())), vec![12, 14, 11]);
        assert_eq!(addrs(Query::RemoteId(b"cpe-b".to_vec())), vec![13]);
        assert_eq!(addrs(Query::RelayId(b"bng1".to_vec())), vec![13, 12, 11], "the old lease kept no relay id");
        assert_eq!(addrs(Query::RelayId(b"bng2".to_vec())), Vec::<u8>::new());
        assert_eq!(addrs(Query::CircuitId(b"olt1".to_vec())), vec![13, 12, 11]);

        // A UDP query by remote id (RFC 6148), with the host name asked for.
        let q = crate::testing::Request::new(crate::dhcp4::MessageType::Discover)
            .opt(opt::RELAY_AGENT_INFO, &[2, 5, b'c', b'p', b'e', b'-', b'a'])
            .opt(opt::PARAMETER_LIST, &[opt::HOSTNAME])
            .bootp();
        let mut raw = q.clone();
        raw[field::CHADDR].fill(0);
        let m = Message::parse(&raw).unwrap();
        let query = query_of(&m).unwrap();
        assert_eq!(query, Query::RemoteId(b"cpe-a".to_vec()));
        let a = answer(&cfg, &db, &query, 1000);
        let mut out = [0u8; 576];
        let n = write_reply(&cfg, &m, &a, Ipv4Addr::new(198, 18, 0, 1), 1000, &mut out).unwrap();
        let r = Message::parse(&out[..n]).unwrap();
        assert_eq!(r.single(opt::MESSAGE_TYPE), Some(&[LEASEACTIVE][..]));
        assert_eq!(r.ciaddr(), Ipv4Addr::new(198, 18, 0, 12), "the most recent lease of the line");
        assert_eq!(r.single(opt::HOSTNAME), Some(&b"cpe-a-router"[..]));
        assert_eq!(r.single(opt::RELAY_AGENT_INFO), Some(&line_a[..]));
        assert_eq!(r.single(ASSOCIATED_IP), Some(&[198, 18, 0, 12, 198, 18, 0, 14, 198, 18, 0, 11][..]));

        // Nothing named: UNKNOWN with MalformedQuery.
        let mut empty = crate::testing::Request::new(crate::dhcp4::MessageType::Discover).bootp();
        empty[field::CHADDR].fill(0);
        let m = Message::parse(&empty).unwrap();
        assert_eq!(query_of(&m), None);
        let n = write_reply(&cfg, &m, &Answer::malformed(), Ipv4Addr::new(198, 18, 0, 1), 1000, &mut out).unwrap();
        let r = Message::parse(&out[..n]).unwrap();
        assert_eq!(r.single(opt::MESSAGE_TYPE), Some(&[LEASEUNKNOWN][..]));
        assert_eq!(r.single(STATUS_CODE).map(|v| v[0]), Some(status::MALFORMED_QUERY));
        let n = write_done(&m, Ipv4Addr::new(198, 18, 0, 1), (status::SUCCESS, "done"), &mut out).unwrap();
        let r = Message::parse(&out[..n]).unwrap();
        assert_eq!(r.single(opt::MESSAGE_TYPE), Some(&[LEASEQUERYDONE][..]));
        assert_eq!(r.single(STATUS_CODE), Some(&b"\x00done"[..]));
    }
}
