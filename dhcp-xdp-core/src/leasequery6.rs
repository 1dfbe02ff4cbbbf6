//! DHCPv6 leasequery (RFC 5007) and the queries of DHCPv6 bulk leasequery (RFC 5460): a relay
//! or access node asks which client holds an address (or a delegated prefix containing it),
//! what a DUID holds, or — over TCP — every client of a link, of a subscriber line (remote
//! id) or of a relay (relay id), and is answered LEASEQUERY-REPLY with the client's data (its DUID, every address and
//! prefix it holds on the link with the lifetimes left, and its last transaction), the links a
//! client is on when it is on several, or a status saying why not. Sans-IO: the caller checks
//! who may ask, reads the table and puts the reply on the wire.

use std::net::Ipv6Addr;

use crate::{
    config::{Config, in_prefix},
    dhcp6::{self, IaKind, Message, Options, Writer},
    leases::{
        Tags,
        v6::{Lease6, Lease6State},
    },
};

/// Message types (RFC 5007 §4.2, RFC 5460 §5.2).
pub mod msg {
    pub use crate::dhcp6::msg::LEASEQUERY;
    /// The answer (the first of a bulk answer).
    pub const LEASEQUERY_REPLY: u8 = 15;
    /// The end of a bulk answer.
    pub const LEASEQUERY_DONE: u8 = 16;
    /// Each client of a bulk answer after the first.
    pub const LEASEQUERY_DATA: u8 = 17;
}

/// Option codes (RFC 5007 §4.1.2, RFC 5460 §5.1).
pub mod opt {
    /// The query: its type, a link address, the options it needs.
    pub const LQ_QUERY: u16 = 44;
    /// One client's data on one link.
    pub const CLIENT_DATA: u16 = 45;
    /// Seconds since the client's last transaction.
    pub const CLT_TIME: u16 = 46;
    /// The links a client holds leases on (when the query named none and it is on several).
    pub const LQ_CLIENT_LINK: u16 = 48;
    /// A relay's DUID (RFC 5460 §5.4.1).
    pub const RELAY_ID: u16 = 53;
}

/// Query types (RFC 5007 §4.1.2.1, RFC 5460 §5.3).
pub mod query {
    pub const BY_ADDRESS: u8 = 1;
    pub const BY_CLIENTID: u8 = 2;
    pub const BY_RELAY_ID: u8 = 3;
    pub const BY_LINK_ADDRESS: u8 = 4;
    pub const BY_REMOTE_ID: u8 = 5;
}

/// Status codes (RFC 5007 §4.1.3, RFC 5460 §5.5) beside RFC 8415's.
pub mod status {
    pub use crate::dhcp6::status::SUCCESS;
    pub const UNKNOWN_QUERY_TYPE: u16 = 7;
    pub const MALFORMED_QUERY: u16 = 8;
    pub const NOT_CONFIGURED: u16 = 9;
    pub const NOT_ALLOWED: u16 = 10;
}

/// What a query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query6 {
    /// The client holding this address, or a delegated prefix containing it.
    Address(Ipv6Addr),
    /// What this DUID holds.
    ClientId(Vec<u8>),
    /// Every client on the link of the query's link address (bulk only).
    Link,
    /// Every client given leases on the subscriber line with this remote id (option 37's
    /// value: the enterprise number and the id; bulk only).
    RemoteId(Vec<u8>),
    /// Every client given leases through the relay with this relay id (option 53's value, a
    /// DUID; bulk only).
    RelayId(Vec<u8>),
}

/// A LEASEQUERY, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leasequery6 {
    /// Its transaction id.
    pub xid: u32,
    /// The requestor's DUID (its Client Identifier), echoed in the answer.
    pub requestor: Vec<u8>,
    /// The link the query is about (unspecified: every link).
    pub link: Ipv6Addr,
    /// The query, or the status that says why it cannot be answered.
    pub query: Result<Query6, (u16, &'static str)>,
}

/// Reads a LEASEQUERY message; None when `msg` is not one, or names no requestor (nothing to
/// answer to).
pub fn parse(msg: &[u8]) -> Option<Leasequery6> {
    let m = Message::parse(msg).ok()?;
    if m.kind() != msg::LEASEQUERY {
        return None;
    }
    let requestor = m.client_id()?.to_vec();
    let xid = m.transaction_id();
    let malformed = |link, why| {
        Some(Leasequery6 { xid, requestor: requestor.clone(), link, query: Err((status::MALFORMED_QUERY, why)) })
    };
    let Some(q) = m.options().find(opt::LQ_QUERY) else {
        return malformed(Ipv6Addr::UNSPECIFIED, "no OPTION_LQ_QUERY");
    };
    let (Some(&kind), Some(link)) = (q.first(), q.get(1..17).and_then(|b| <[u8; 16]>::try_from(b).ok())) else {
        return malformed(Ipv6Addr::UNSPECIFIED, "OPTION_LQ_QUERY is shorter than 17 bytes");
    };
    let link = Ipv6Addr::from(link);
    let Ok(options) = Options::parse(&q[17..]) else {
        return malformed(link, "the query's options do not parse");
    };
    let query = match kind {
        query::BY_ADDRESS => options
            .find(dhcp6::opt::IAADDR)
            .and_then(|a| a.get(..16))
            .and_then(|a| <[u8; 16]>::try_from(a).ok())
            .map(|a| Query6::Address(a.into()))
            .ok_or((status::MALFORMED_QUERY, "missing OPTION_IAADDR")),
        query::BY_CLIENTID => options
            .find(dhcp6::opt::CLIENTID)
            .filter(|d| !d.is_empty())
            .map(|d| Query6::ClientId(d.to_vec()))
            .ok_or((status::MALFORMED_QUERY, "missing OPTION_CLIENTID")),
        query::BY_LINK_ADDRESS if link.is_unspecified() => Err((status::MALFORMED_QUERY, "no link address")),
        query::BY_LINK_ADDRESS => Ok(Query6::Link),
        query::BY_REMOTE_ID => options
            .find(dhcp6::opt::REMOTE_ID)
            .filter(|d| d.len() > 4)
            .map(|d| Query6::RemoteId(d.to_vec()))
            .ok_or((status::MALFORMED_QUERY, "missing OPTION_REMOTE_ID")),
        query::BY_RELAY_ID => options
            .find(opt::RELAY_ID)
            .filter(|d| !d.is_empty())
            .map(|d| Query6::RelayId(d.to_vec()))
            .ok_or((status::MALFORMED_QUERY, "missing OPTION_RELAY_ID")),
        _ => Err((status::UNKNOWN_QUERY_TYPE, "unknown query-type")),
    };
    Some(Leasequery6 { xid, requestor, link, query })
}

/// One client's leases on one link (subnet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client6 {
    /// Its DUID.
    pub duid: Vec<u8>,
    /// The subnet (link) they are on.
    pub subnet: u32,
    /// Every address and prefix it holds there.
    pub leases: Vec<Lease6>,
}

/// An answer: its status, the clients it is about, or the links one client is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer6 {
    /// The status code and message.
    pub status: (u16, &'static str),
    /// The clients, one per (DUID, link): one for a UDP query, any number in bulk.
    pub clients: Vec<Client6>,
    /// The links (each subnet's prefix) of a client found on several when the query named
    /// no link: then no client data is given (RFC 5007 §4.3.3).
    pub links: Vec<Ipv6Addr>,
}

impl Answer6 {
    fn status(status: (u16, &'static str)) -> Self {
        Self { status, clients: vec![], links: vec![] }
    }
}

/// Whether `l` is held at `now`.
fn active(l: &Lease6, now: u32) -> bool {
    l.state == Lease6State::Bound && l.expires > now && !l.key.duid.is_empty()
}

/// Whether the lease `l` covers `a` (its address, or a prefix containing it).
fn covers(l: &Lease6, a: Ipv6Addr) -> bool {
    if l.key.kind == IaKind::Na { l.addr == a } else { in_prefix(a, l.addr, l.len) }
}

/// Answers `q` from `leases` (the v6 table's) at `now`. `bulk`: the query came over TCP,
/// where a query may name many clients (RFC 5460); over UDP only queries by address and by
/// client id are allowed.
pub fn answer<'a>(
    cfg: &Config,
    leases: impl Iterator<Item = &'a Lease6>,
    q: &Leasequery6,
    now: u32,
    bulk: bool,
) -> Answer6 {
    let query = match &q.query {
        Ok(query) => query,
        Err(st) => return Answer6::status(*st),
    };
    if !bulk && matches!(query, Query6::Link | Query6::RemoteId(_) | Query6::RelayId(_)) {
        return Answer6::status((status::NOT_ALLOWED, "this query-type is for bulk leasequery over TCP"));
    }
    // The link named: its subnet, or NotConfigured.
    let link = match q.link {
        a if a.is_unspecified() => None,
        a => match cfg.subnets6.iter().find(|s| s.contains(a)) {
            Some(s) => Some(s.id),
            None => return Answer6::status((status::NOT_CONFIGURED, "not a configured link")),
        },
    };
    if let Query6::Address(a) = query
        && !cfg.subnets6.iter().any(|s| s.contains(*a) || s.pd_pools.iter().any(|p| p.contains(*a)))
    {
        return Answer6::status((status::NOT_CONFIGURED, "address not in a configured link or pool"));
    }
    let active: Vec<&Lease6> = leases.filter(|l| active(l, now) && link.is_none_or(|s| l.key.subnet == s)).collect();
    // Which clients the query names.
    let named: Vec<(&[u8], u32)> = match query {
        Query6::Address(a) => {
            active.iter().filter(|l| covers(l, *a)).map(|l| (&l.key.duid[..], l.key.subnet)).collect()
        }
        Query6::ClientId(d) => {
            active.iter().filter(|l| l.key.duid[..] == d[..]).map(|l| (&l.key.duid[..], l.key.subnet)).collect()
        }
        Query6::Link => active.iter().map(|l| (&l.key.duid[..], l.key.subnet)).collect(),
        Query6::RemoteId(r) => {
            let tag = Tags::of(r);
            active.iter().filter(|l| l.tags.remote == tag).map(|l| (&l.key.duid[..], l.key.subnet)).collect()
        }
        Query6::RelayId(r) => {
            let tag = Tags::of(r);
            active.iter().filter(|l| l.relay == tag).map(|l| (&l.key.duid[..], l.key.subnet)).collect()
        }
    };
    // Each named client's leases on its link, gathered in one pass over the active leases
    // (a link's bulk answer names every client of it).
    let mut clients: std::collections::BTreeMap<(&[u8], u32), Vec<Lease6>> =
        named.into_iter().map(|k| (k, vec![])).collect();
    for l in &active {
        if let Some(v) = clients.get_mut(&(&l.key.duid[..], l.key.subnet)) {
            v.push((*l).clone());
        }
    }
    if let Query6::ClientId(_) = query
        && link.is_none()
        && clients.len() > 1
    {
        let links =
            clients.keys().filter_map(|(_, s)| cfg.subnets6.iter().find(|x| x.id == *s)).map(|s| s.prefix).collect();
        return Answer6 { status: (status::SUCCESS, "the client is on several links"), clients: vec![], links };
    }
    let clients: Vec<Client6> =
        clients.into_iter().map(|((duid, subnet), leases)| Client6 { duid: duid.to_vec(), subnet, leases }).collect();
    let status = if clients.is_empty() {
        (status::SUCCESS, "no active lease")
    } else {
        (status::SUCCESS, "active lease(s) found")
    };
    Answer6 { status, clients, links: vec![] }
}

/// Writes `c` as OPTION_CLIENT_DATA: its DUID, each address (IAADDR) and prefix (IAPREFIX)
/// with the lifetimes left at `now`, and the seconds since its last transaction (CLT_TIME).
fn client_data(w: &mut Writer<'_>, c: &Client6, now: u32) {
    w.open(opt::CLIENT_DATA);
    w.option(dhcp6::opt::CLIENTID, &c.duid);
    let mut last = 0u32;
    for l in &c.leases {
        let valid = l.expires.saturating_sub(now);
        let preferred = l.preferred.saturating_sub(l.valid.saturating_sub(valid));
        last = last.max(l.expires.saturating_sub(l.valid));
        if l.key.kind == IaKind::Na {
            w.open(dhcp6::opt::IAADDR);
            w.value(&l.addr.octets());
            w.value(&preferred.to_be_bytes());
            w.value(&valid.to_be_bytes());
        } else {
            w.open(dhcp6::opt::IAPREFIX);
            w.value(&preferred.to_be_bytes());
            w.value(&valid.to_be_bytes());
            w.value(&[l.len]);
            w.value(&l.addr.octets());
        }
        w.close();
    }
    w.option(opt::CLT_TIME, &now.saturating_sub(last).to_be_bytes());
    w.close();
}

/// A status code option.
fn status_code(w: &mut Writer<'_>, (code, text): (u16, &str)) {
    w.open(dhcp6::opt::STATUS_CODE);
    w.value(&code.to_be_bytes());
    w.value(text.as_bytes());
    w.close();
}

/// Writes the LEASEQUERY-REPLY to `q` into `out`: the requestor's and our identifiers, the
/// status, and the first client's data (or the client's links). Returns its length.
pub fn write_reply(q: &Leasequery6, server_duid: &[u8], a: &Answer6, now: u32, out: &mut [u8]) -> Option<usize> {
    let mut w = Writer::message(out, msg::LEASEQUERY_REPLY, q.xid);
    w.option(dhcp6::opt::CLIENTID, &q.requestor);
    w.option(dhcp6::opt::SERVERID, server_duid);
    status_code(&mut w, a.status);
    if let Some(c) = a.clients.first() {
        client_data(&mut w, c, now);
    }
    if !a.links.is_empty() {
        w.open(opt::LQ_CLIENT_LINK);
        for l in &a.links {
            w.value(&l.octets());
        }
        w.close();
    }
    w.finish()
}

/// Writes a LEASEQUERY-DATA with the data of client `c` (a bulk answer's clients after the
/// first). Returns its length.
pub fn write_data(q: &Leasequery6, c: &Client6, now: u32, out: &mut [u8]) -> Option<usize> {
    let mut w = Writer::message(out, msg::LEASEQUERY_DATA, q.xid);
    client_data(&mut w, c, now);
    w.finish()
}

/// Writes the LEASEQUERY-DONE that ends a bulk answer. Returns its length.
pub fn write_done(q: &Leasequery6, out: &mut [u8]) -> Option<usize> {
    let mut w = Writer::message(out, msg::LEASEQUERY_DONE, q.xid);
    status_code(&mut w, (status::SUCCESS, "done"));
    w.finish()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::leases::v6::Key6;

    fn cfg() -> Config {
        Config::parse(
            "lq6.toml",
            "[[subnet6]]\nsubnet = \"2001:db8:1::/64\"\nvalid-lifetime = 600\npreferred-lifetime = 400\n\
             [[subnet6.pool]]\nrange = \"2001:db8:1::100-2001:db8:1::1ff\"\n\
             [[subnet6.pd-pool]]\nprefix = \"2001:db8:100::\"\nprefix-len = 48\ndelegated-len = 56\n\
             [[subnet6]]\nsubnet = \"2001:db8:2::/64\"\n[[subnet6.pool]]\nrange = \"2001:db8:2::100-2001:db8:2::1ff\"\n",
        )
        .unwrap()
    }

    fn lease(duid: u8, subnet: u32, kind: IaKind, addr: &str, len: u8, expires: u32, remote: u32) -> Lease6 {
        Lease6 {
            key: Key6 { kind, subnet, duid: Arc::from(&[0, 3, 0, 1, 2, 0, 0, 0, 0, duid][..]), iaid: 1 },
            addr: addr.parse().unwrap(),
            len,
            preferred: 400,
            valid: 600,
            expires,
            state: Lease6State::Bound,
            tags: Tags { circuit: 0, remote },
            relay: 0,
        }
    }

    /// A LEASEQUERY from requestor DUID 0:1:… of `kind` with `options` in its query.
    fn query(kind: u8, link: &str, options: &[u8]) -> Vec<u8> {
        let mut m = vec![msg::LEASEQUERY, 0, 0x12, 0x34];
        m.extend_from_slice(&[0, 1, 0, 4, 0, 3, 0, 9]);
        let link: Ipv6Addr = link.parse().unwrap();
        m.extend_from_slice(&opt::LQ_QUERY.to_be_bytes());
        m.extend_from_slice(&(17 + options.len() as u16).to_be_bytes());
        m.push(kind);
        m.extend_from_slice(&link.octets());
        m.extend_from_slice(options);
        m
    }

    fn iaaddr(a: &str) -> Vec<u8> {
        let a: Ipv6Addr = a.parse().unwrap();
        [&[0, 5, 0, 24][..], &a.octets(), &[0; 8]].concat()
    }

    /// By address (its own, or one inside a delegated prefix), by client id (all it holds on
    /// the link; its links when on several), NotConfigured, MalformedQuery, UnknownQueryType,
    /// and the link and remote-id queries only in bulk; the reply carries the requestor's and
    /// our ids, the status and the client data (DUID, IAADDR/IAPREFIX with lifetimes left,
    /// CLT_TIME), and reads back.
    #[test]
    fn queries_are_answered_from_the_v6_table() {
        let cfg = cfg();
        let now = 10_000;
        let leases = [
            lease(1, 1, IaKind::Na, "2001:db8:1::100", 128, now + 500, 7),
            lease(1, 1, IaKind::Pd, "2001:db8:100:100::", 56, now + 500, 7),
            lease(2, 1, IaKind::Na, "2001:db8:1::101", 128, now + 300, 0),
            lease(2, 2, IaKind::Na, "2001:db8:2::100", 128, now + 300, 0),
            lease(3, 1, IaKind::Na, "2001:db8:1::102", 128, now - 1, 0), // ended
        ];
        let ask = |m: &[u8], bulk: bool| answer(&cfg, leases.iter(), &parse(m).unwrap(), now, bulk);
        let a = ask(&query(query::BY_ADDRESS, "::", &iaaddr("2001:db8:1::100")), false);
        assert_eq!((a.status.0, a.clients.len()), (status::SUCCESS, 1));
        assert_eq!(a.clients[0].leases.len(), 2, "the address and the prefix the client holds on the link");
        let a = ask(&query(query::BY_ADDRESS, "::", &iaaddr("2001:db8:100:100::77")), false);
        assert_eq!(a.clients.first().map(|c| c.duid[9]), Some(1), "an address inside a delegated prefix");
        let a = ask(&query(query::BY_ADDRESS, "::", &iaaddr("2001:db8:1::102")), false);
        assert_eq!((a.status, a.clients.len()), ((status::SUCCESS, "no active lease"), 0), "ended");
        assert_eq!(
            ask(&query(query::BY_ADDRESS, "::", &iaaddr("2001:db8:9::1")), false).status.0,
            status::NOT_CONFIGURED
        );
        assert_eq!(ask(&query(query::BY_ADDRESS, "::", &[]), false).status.0, status::MALFORMED_QUERY);
        // By client id: on two links and none named, the links; with a link, that link's data.
        let duid2 = [&[0, 1, 0, 10][..], &[0, 3, 0, 1, 2, 0, 0, 0, 0, 2]].concat();
        let a = ask(&query(query::BY_CLIENTID, "::", &duid2), false);
        let links: Vec<Ipv6Addr> = vec!["2001:db8:1::".parse().unwrap(), "2001:db8:2::".parse().unwrap()];
        assert_eq!((a.clients.len(), a.links.clone()), (0, links));
        let a = ask(&query(query::BY_CLIENTID, "2001:db8:2::1", &duid2), false);
        assert_eq!(a.clients.iter().map(|c| c.subnet).collect::<Vec<_>>(), [2]);
        assert_eq!(ask(&query(query::BY_CLIENTID, "2001:db8:7::1", &duid2), false).status.0, status::NOT_CONFIGURED);
        assert_eq!(ask(&query(9, "::", &[]), false).status.0, status::UNKNOWN_QUERY_TYPE);
        assert_eq!(ask(&query(query::BY_RELAY_ID, "::", &[]), true).status.0, status::MALFORMED_QUERY);
        // Link and remote-id queries: bulk only.
        assert_eq!(ask(&query(query::BY_LINK_ADDRESS, "2001:db8:1::1", &[]), false).status.0, status::NOT_ALLOWED);
        let a = ask(&query(query::BY_LINK_ADDRESS, "2001:db8:1::1", &[]), true);
        assert_eq!(a.clients.iter().map(|c| (c.duid[9], c.leases.len())).collect::<Vec<_>>(), [(1, 2), (2, 1)]);
        assert_eq!(ask(&query(query::BY_LINK_ADDRESS, "::", &[]), true).status.0, status::MALFORMED_QUERY);
        let remote = [&[0, 37, 0, 9][..], &[0, 0, 0, 9], b"cpe-1"].concat();
        let mut tagged = leases.clone();
        tagged[0].tags.remote = Tags::of(&remote[4..]);
        tagged[1].tags.remote = Tags::of(&remote[4..]);
        let a = answer(&cfg, tagged.iter(), &parse(&query(query::BY_REMOTE_ID, "::", &remote)).unwrap(), now, true);
        assert_eq!(a.clients.iter().map(|c| (c.duid[9], c.leases.len())).collect::<Vec<_>>(), [(1, 2)]);
        // By relay id: the clients whose leases came through that relay.
        let relay_duid = [0, 3, 0, 1, 2, 0xbb, 0, 0, 0, 1];
        tagged[2].relay = Tags::of(&relay_duid);
        tagged[3].relay = Tags::of(&relay_duid);
        let by_relay = [&[0, 53, 0, 10][..], &relay_duid].concat();
        let q = parse(&query(query::BY_RELAY_ID, "::", &by_relay)).unwrap();
        let a = answer(&cfg, tagged.iter(), &q, now, true);
        assert_eq!(a.clients.iter().map(|c| (c.duid[9], c.subnet)).collect::<Vec<_>>(), [(2, 1), (2, 2)]);
        assert_eq!(answer(&cfg, tagged.iter(), &q, now, false).status.0, status::NOT_ALLOWED, "bulk only");

        // The reply reads back.
        let q = parse(&query(query::BY_ADDRESS, "::", &iaaddr("2001:db8:1::100"))).unwrap();
        let a = answer(&cfg, leases.iter(), &q, now, false);
        let mut out = [0u8; 1500];
        let n = write_reply(&q, &[0, 3, 0, 1, 1, 1, 1, 1, 1, 1], &a, now, &mut out).unwrap();
        let m = Message::parse(&out[..n]).unwrap();
        assert_eq!((m.kind(), m.transaction_id()), (msg::LEASEQUERY_REPLY, 0x1234));
        assert_eq!(m.client_id(), Some(&[0, 3, 0, 9][..]), "the requestor's id");
        assert_eq!(m.options().find(dhcp6::opt::STATUS_CODE).map(|s| s[..2].to_vec()), Some(vec![0, 0]));
        let data = Options::parse(m.options().find(opt::CLIENT_DATA).unwrap()).unwrap();
        assert_eq!(data.find(dhcp6::opt::CLIENTID).map(|d| d[9]), Some(1));
        let ia = data.find(dhcp6::opt::IAADDR).unwrap();
        assert_eq!(
            (&ia[..16], &ia[16..20], &ia[20..24]),
            (
                &"2001:db8:1::100".parse::<Ipv6Addr>().unwrap().octets()[..],
                &300u32.to_be_bytes()[..],
                &500u32.to_be_bytes()[..]
            )
        );
        let pd = data.find(dhcp6::opt::IAPREFIX).unwrap();
        assert_eq!((pd[8], &pd[9..25]), (56, &"2001:db8:100:100::".parse::<Ipv6Addr>().unwrap().octets()[..]));
        assert_eq!(data.find(opt::CLT_TIME), Some(&100u32.to_be_bytes()[..]), "given 100 s ago");
        let n = write_done(&q, &mut out).unwrap();
        assert_eq!(Message::parse(&out[..n]).unwrap().kind(), msg::LEASEQUERY_DONE);
        assert_eq!(parse(&out[..n]), None, "not a query");
    }
}
