//! The DHCPv6 engine message by message: requests built by hand here, replies read back with
//! the `dhcproto` crate (an independent decoder) after the relay layers are peeled by hand.

use std::net::Ipv6Addr;

use dhcproto::{
    Decodable, Decoder,
    v6::{self, DhcpOption, MessageType, OptionCode, Status},
};

use super::*;
use crate::leases::{Change, v6::Lease6State};

const NOW: u32 = 1_000_000;
const SERVER_DUID: &[u8] = &[0, 2, 0, 0, 0x0d, 0xe9, 1, 2, 3, 4];

fn v6a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn config(extra: &str) -> Config {
    let src = format!(
        r#"
[[subnet6]]
subnet = "2001:db8:1::/64"
preferred-lifetime = 3000
valid-lifetime = 4000
renew-timer = 1000
rebind-timer = 2000
preference = 7
options = {{ dns-servers = ["2001:db8::53"], domain-search = ["example.net"] }}
  [[subnet6.pool]]
  range = "2001:db8:1::100-2001:db8:1::1ff"
  [[subnet6.pd-pool]]
  prefix = "2001:db8:100::"
  prefix-len = 48
  delegated-len = 56
  [[subnet6.reservation]]
  duid = "00:03:00:01:02:00:00:00:00:99"
  ip-addresses = ["2001:db8:1::99"]
[[subnet6]]
subnet = "2001:db8:2::/64"
interface-id = "olt1/1/1"
rapid-commit = true
  [[subnet6.pool]]
  range = "2001:db8:2::10-2001:db8:2::10"
  [[subnet6.pd-pool]]
  prefix = "2001:db8:200::"
  prefix-len = 56
  delegated-len = 60
  [[subnet6.reservation]]
  remote-id = "00000de9:6c696e652d37"
  prefixes = ["2001:db8:1ff:ff00::/56"]
{extra}
"#
    );
    Config::parse("test.toml", &src).unwrap()
}

fn option(code: u16, data: &[u8]) -> Vec<u8> {
    let mut o = code.to_be_bytes().to_vec();
    o.extend_from_slice(&(data.len() as u16).to_be_bytes());
    o.extend_from_slice(data);
    o
}

fn duid(n: u8) -> Vec<u8> {
    vec![0, 3, 0, 1, 2, 0, 0, 0, 0, n]
}

fn ia_na(iaid: u32, addr: Option<Ipv6Addr>) -> Vec<u8> {
    let mut d = iaid.to_be_bytes().to_vec();
    d.extend_from_slice(&[0; 8]);
    if let Some(a) = addr {
        let mut x = a.octets().to_vec();
        x.extend_from_slice(&[0; 8]);
        d.extend(option(opt::IAADDR, &x));
    }
    option(opt::IA_NA, &d)
}

fn ia_pd(iaid: u32, prefix: Option<(Ipv6Addr, u8)>) -> Vec<u8> {
    let mut d = iaid.to_be_bytes().to_vec();
    d.extend_from_slice(&[0; 8]);
    if let Some((p, l)) = prefix {
        let mut x = vec![0; 8];
        x.push(l);
        x.extend_from_slice(&p.octets());
        d.extend(option(opt::IAPREFIX, &x));
    }
    option(opt::IA_PD, &d)
}

/// A client message: type, xid 0x00abcd, and the options given (already encoded).
fn message(kind: u8, options: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![kind, 0, 0xab, 0xcd];
    for o in options {
        m.extend_from_slice(o);
    }
    m
}

fn relay_forw(link: Ipv6Addr, peer: Ipv6Addr, options: &[Vec<u8>], inner: &[u8]) -> Vec<u8> {
    let mut m = vec![msg::RELAY_FORW, 0];
    m.extend_from_slice(&link.octets());
    m.extend_from_slice(&peer.octets());
    for o in options {
        m.extend_from_slice(o);
    }
    m.extend(option(opt::RELAY_MSG, inner));
    m
}

struct Rig {
    cfg: Config,
    server: Server6,
    table: Table6,
    engine: Engine6,
    counts: Counts6,
}

impl Rig {
    fn new(cfg: Config) -> Self {
        let table = Table6::new(&cfg, [], NOW);
        let server = Server6 { duid: SERVER_DUID.to_vec(), addrs: vec![v6a("2001:db8:1::1")] };
        Self { cfg, server, table, engine: Engine6::new(), counts: [0; Counter6::COUNT] }
    }

    fn raw(&mut self, req: &[u8], now: u32) -> Result<Vec<u8>, DropReason> {
        let mut out = vec![0u8; 1500];
        let n = self.engine.handle(now, &self.cfg, &self.server, &mut self.table, req, &mut out, &mut self.counts)?;
        out.truncate(n);
        Ok(out)
    }

    fn ask(&mut self, req: &[u8]) -> v6::Message {
        let out = self.raw(req, NOW).expect("a reply");
        v6::Message::decode(&mut Decoder::new(&out)).expect("dhcproto decodes the reply")
    }

    fn changes(&mut self) -> Vec<crate::leases::Change> {
        let mut v = vec![];
        self.table.drain_changes(&mut v);
        v
    }
}

fn server_id() -> Vec<u8> {
    option(opt::SERVERID, SERVER_DUID)
}

fn ianas(m: &v6::Message) -> Vec<v6::IANA> {
    m.opts()
        .get_all(OptionCode::IANA)
        .unwrap_or_default()
        .iter()
        .filter_map(|o| if let DhcpOption::IANA(i) = o { Some(i.clone()) } else { None })
        .collect()
}

fn iapds(m: &v6::Message) -> Vec<v6::IAPD> {
    m.opts()
        .get_all(OptionCode::IAPD)
        .unwrap_or_default()
        .iter()
        .filter_map(|o| if let DhcpOption::IAPD(i) = o { Some(i.clone()) } else { None })
        .collect()
}

fn addr_of(ia: &v6::IANA) -> Option<(Ipv6Addr, u32, u32)> {
    match ia.opts.get(OptionCode::IAAddr) {
        Some(DhcpOption::IAAddr(a)) => Some((a.addr, a.preferred_life, a.valid_life)),
        _ => None,
    }
}

fn prefix_of(ia: &v6::IAPD) -> Option<(Ipv6Addr, u8, u32, u32)> {
    match ia.opts.get(OptionCode::IAPrefix) {
        Some(DhcpOption::IAPrefix(p)) => Some((p.prefix_ip, p.prefix_len, p.preferred_lifetime, p.valid_lifetime)),
        _ => None,
    }
}

fn status_in(opts: &v6::DhcpOptions) -> Option<Status> {
    match opts.get(OptionCode::StatusCode) {
        Some(DhcpOption::StatusCode(s)) => Some(s.status),
        _ => None,
    }
}

#[test]
fn solicit_is_advertised_an_address_and_a_prefix_and_request_binds_them() {
    let mut r = Rig::new(config(""));
    let oro = option(opt::ORO, &[0, 23, 0, 24]);
    let solicit =
        message(msg::SOLICIT, &[option(opt::CLIENTID, &duid(1)), oro.clone(), ia_na(1, None), ia_pd(2, None)]);
    let adv = r.ask(&solicit);
    assert_eq!(adv.msg_type(), MessageType::Advertise);
    assert_eq!(adv.xid_num(), 0xabcd);
    assert_eq!(adv.opts().get(OptionCode::ClientId), Some(&DhcpOption::ClientId(duid(1))));
    assert_eq!(adv.opts().get(OptionCode::ServerId), Some(&DhcpOption::ServerId(SERVER_DUID.to_vec())));
    assert_eq!(adv.opts().get(OptionCode::Preference), Some(&DhcpOption::Preference(7)));
    assert_eq!(
        adv.opts().get(OptionCode::DomainNameServers),
        Some(&DhcpOption::DomainNameServers(vec![v6a("2001:db8::53")]))
    );
    assert!(adv.opts().get(OptionCode::DomainSearchList).is_some(), "domain search list asked for and configured");
    let na = &ianas(&adv)[0];
    assert_eq!((na.id, na.t1, na.t2), (1, 1000, 2000));
    let (a, pref, valid) = addr_of(na).expect("an address");
    assert_eq!((a, pref, valid), (v6a("2001:db8:1::100"), 3000, 4000));
    let pd = &iapds(&adv)[0];
    assert_eq!((pd.id, pd.t1, pd.t2), (2, 1000, 2000));
    let (p, len, ..) = prefix_of(pd).expect("a prefix");
    assert_eq!((p, len), (v6a("2001:db8:100::"), 56));
    assert!(r.changes().is_empty(), "an ADVERTISE promises nothing to store");
    assert_eq!(r.counts[Counter6::TxAdvertise.slot()], 1);

    // The REQUEST names the advertised address and prefix and gets them.
    let request = message(
        msg::REQUEST,
        &[option(opt::CLIENTID, &duid(1)), server_id(), ia_na(1, Some(a)), ia_pd(2, Some((p, 56)))],
    );
    let reply = r.ask(&request);
    assert_eq!(reply.msg_type(), MessageType::Reply);
    assert_eq!(addr_of(&ianas(&reply)[0]).map(|x| x.0), Some(a));
    assert_eq!(prefix_of(&iapds(&reply)[0]).map(|x| (x.0, x.1)), Some((p, 56)));
    let stored = r.changes();
    assert_eq!(stored.len(), 2, "both IAs stored: {stored:?}");
    for c in &stored {
        let Change::Upsert6(l) = c else { panic!("{c:?}") };
        assert_eq!((l.state, l.expires), (Lease6State::Bound, NOW + 4000));
        assert_eq!(&*l.key.duid, &duid(1)[..]);
    }
    // Another client gets other ones.
    let other = r.ask(&message(msg::SOLICIT, &[option(opt::CLIENTID, &duid(2)), ia_na(1, None), ia_pd(1, None)]));
    assert_eq!(addr_of(&ianas(&other)[0]).map(|x| x.0), Some(v6a("2001:db8:1::101")));
    assert_eq!(prefix_of(&iapds(&other)[0]).map(|x| x.0), Some(v6a("2001:db8:100:100::")));
    assert!(other.opts().get(OptionCode::DomainNameServers).is_none(), "DNS only when asked for");
}

#[test]
fn several_ias_of_one_client_each_get_their_own() {
    let mut r = Rig::new(config(""));
    let req = message(
        msg::REQUEST,
        &[option(opt::CLIENTID, &duid(3)), server_id(), ia_na(1, None), ia_na(2, None), ia_pd(7, None), ia_pd(8, None)],
    );
    let reply = r.ask(&req);
    let addrs: Vec<_> = ianas(&reply).iter().map(|i| (i.id, addr_of(i).unwrap().0)).collect();
    assert_eq!(addrs.len(), 2);
    assert_ne!(addrs[0].1, addrs[1].1);
    let prefixes: Vec<_> = iapds(&reply).iter().map(|i| (i.id, prefix_of(i).unwrap().0)).collect();
    assert_eq!(prefixes.len(), 2);
    assert_ne!(prefixes[0].1, prefixes[1].1);
    // Asked again, the same.
    let again = r.ask(&req);
    assert_eq!(ianas(&again).iter().map(|i| (i.id, addr_of(i).unwrap().0)).collect::<Vec<_>>(), addrs);
}

#[test]
fn rapid_commit_is_honoured_only_where_configured() {
    let mut r = Rig::new(config(""));
    let rc = option(opt::RAPID_COMMIT, &[]);
    // Subnet 1 (direct) does not allow it: ADVERTISE.
    let adv = r.ask(&message(msg::SOLICIT, &[option(opt::CLIENTID, &duid(4)), rc.clone(), ia_na(1, None)]));
    assert_eq!(adv.msg_type(), MessageType::Advertise);
    // Subnet 2 (by interface-id) allows it: REPLY with Rapid Commit, the lease stored.
    let inner = message(msg::SOLICIT, &[option(opt::CLIENTID, &duid(4)), rc, ia_na(1, None)]);
    let relayed = relay_forw(Ipv6Addr::UNSPECIFIED, v6a("fe80::4"), &[option(opt::INTERFACE_ID, b"olt1/1/1")], &inner);
    let reply = peel(&r.raw(&relayed, NOW).unwrap(), 1);
    assert_eq!(reply.msg_type(), MessageType::Reply);
    assert_eq!(reply.opts().get(OptionCode::RapidCommit), Some(&DhcpOption::RapidCommit));
    assert_eq!(addr_of(&ianas(&reply)[0]).map(|x| x.0), Some(v6a("2001:db8:2::10")));
    assert_eq!(r.changes().len(), 1);
}

/// Peels `layers` Relay-Repl layers off by hand (checking each) and decodes the message inside.
fn peel(mut b: &[u8], layers: usize) -> v6::Message {
    for _ in 0..layers {
        assert_eq!(b[0], msg::RELAY_REPL, "a Relay-Repl layer");
        b = relay_option(b, opt::RELAY_MSG).expect("a Relay Message option");
    }
    v6::Message::decode(&mut Decoder::new(b)).expect("dhcproto decodes the inner reply")
}

fn relay_option(layer: &[u8], code: u16) -> Option<&[u8]> {
    let mut rest = &layer[34..];
    while rest.len() >= 4 {
        let c = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if c == code {
            return rest.get(4..4 + len);
        }
        rest = &rest[4 + len..];
    }
    None
}

#[test]
fn relayed_twice_the_reply_goes_back_through_both_layers_with_their_interface_ids() {
    let mut r = Rig::new(config(""));
    let inner = message(msg::SOLICIT, &[option(opt::CLIENTID, &duid(5)), ia_pd(1, None)]);
    let remote = option(opt::REMOTE_ID, &[0, 0, 0x0d, 0xe9, b'l', b'i', b'n', b'e', b'-', b'7']);
    let near =
        relay_forw(Ipv6Addr::UNSPECIFIED, v6a("fe80::5"), &[option(opt::INTERFACE_ID, b"olt1/1/1"), remote], &inner);
    let mut outer = relay_forw(v6a("2001:db8:ff::1"), v6a("fe80::99"), &[option(opt::INTERFACE_ID, b"agg-3")], &near);
    outer[1] = 1;
    let out = r.raw(&outer, NOW).expect("a reply");
    assert_eq!((out[0], out[1]), (msg::RELAY_REPL, 1), "the outer layer's hop count");
    assert_eq!(&out[2..18], &v6a("2001:db8:ff::1").octets(), "link address echoed");
    assert_eq!(&out[18..34], &v6a("fe80::99").octets(), "peer address echoed");
    assert_eq!(relay_option(&out, opt::INTERFACE_ID), Some(&b"agg-3"[..]));
    let near_reply = relay_option(&out, opt::RELAY_MSG).unwrap();
    assert_eq!(relay_option(near_reply, opt::INTERFACE_ID), Some(&b"olt1/1/1"[..]));
    assert_eq!(&near_reply[18..34], &v6a("fe80::5").octets());
    let adv = peel(&out, 2);
    assert_eq!(adv.msg_type(), MessageType::Advertise);
    // The subnet by the near relay's interface-id, the prefix by its remote-id's reservation.
    assert_eq!(prefix_of(&iapds(&adv)[0]).map(|p| (p.0, p.1)), Some((v6a("2001:db8:1ff:ff00::"), 56)));
    assert_eq!(r.counts[Counter6::RxRelayed.slot()], 1);
}

#[test]
fn the_relays_link_address_chooses_the_subnet_and_an_unknown_link_is_dropped() {
    let mut r = Rig::new(config(""));
    let inner = message(msg::SOLICIT, &[option(opt::CLIENTID, &duid(6)), ia_na(1, None)]);
    let on_1 = relay_forw(v6a("2001:db8:1::fffe"), v6a("fe80::6"), &[], &inner);
    let adv = peel(&r.raw(&on_1, NOW).unwrap(), 1);
    assert!(addr_of(&ianas(&adv)[0]).unwrap().0.segments()[2] == 1, "from subnet 2001:db8:1::/64");
    let elsewhere = relay_forw(v6a("2001:db8:9::1"), v6a("fe80::6"), &[], &inner);
    assert_eq!(r.raw(&elsewhere, NOW), Err(DropReason::NoSubnet));
    let link_local = relay_forw(v6a("fe80::1"), v6a("fe80::6"), &[option(opt::INTERFACE_ID, b"nope")], &inner);
    assert_eq!(r.raw(&link_local, NOW), Err(DropReason::NoSubnet));
}

#[test]
fn an_exhausted_pool_answers_no_addrs_avail_in_the_ia_and_no_prefix_avail() {
    let mut r = Rig::new(config(""));
    let ask = |n: u8| {
        let inner =
            message(msg::REQUEST, &[option(opt::CLIENTID, &duid(n)), server_id(), ia_na(1, None), ia_pd(2, None)]);
        relay_forw(Ipv6Addr::UNSPECIFIED, v6a("fe80::7"), &[option(opt::INTERFACE_ID, b"olt1/1/1")], &inner)
    };
    let first = peel(&r.raw(&ask(10), NOW).unwrap(), 1);
    assert!(addr_of(&ianas(&first)[0]).is_some());
    // The /56 is cut into 16 /60s: 15 more clients get one each, then none is left.
    for n in 11..26 {
        let reply = peel(&r.raw(&ask(n), NOW).unwrap(), 1);
        assert!(prefix_of(&iapds(&reply)[0]).is_some(), "client {n}");
    }
    let second = peel(&r.raw(&ask(30), NOW).unwrap(), 1);
    let na = &ianas(&second)[0];
    assert_eq!((addr_of(na), status_in(&na.opts)), (None, Some(Status::NoAddrsAvail)));
    let pd = &iapds(&second)[0];
    assert_eq!((prefix_of(pd), status_in(&pd.opts)), (None, Some(Status::NoPrefixAvail)));
    assert_eq!(r.counts[Counter6::NoAddrsAvail.slot()], 16);
    assert_eq!(r.counts[Counter6::NoPrefixAvail.slot()], 1);
}

#[test]
fn renew_and_rebind_extend_what_is_held_and_say_no_binding_otherwise() {
    let mut r = Rig::new(config(""));
    let req = message(msg::REQUEST, &[option(opt::CLIENTID, &duid(8)), server_id(), ia_na(1, None)]);
    let a = addr_of(&ianas(&r.ask(&req))[0]).unwrap().0;
    r.changes();
    let later = NOW + 1000;
    let renew = message(msg::RENEW, &[option(opt::CLIENTID, &duid(8)), server_id(), ia_na(1, Some(a))]);
    let out = r.raw(&renew, later).unwrap();
    let reply = v6::Message::decode(&mut Decoder::new(&out)).unwrap();
    assert_eq!(addr_of(&ianas(&reply)[0]), Some((a, 3000, 4000)));
    match &r.changes()[..] {
        [Change::Upsert6(l)] => assert_eq!(l.expires, later + 4000),
        other => panic!("{other:?}"),
    }
    // An IA the server knows nothing of, naming nothing: NoBinding.
    let unknown = message(msg::RENEW, &[option(opt::CLIENTID, &duid(8)), server_id(), ia_na(9, None)]);
    let reply = r.ask(&unknown);
    assert_eq!(status_in(&ianas(&reply)[0].opts), Some(Status::NoBinding));
    // REBIND of an address that is not on this link: lifetimes 0.
    let off_link = message(msg::REBIND, &[option(opt::CLIENTID, &duid(8)), ia_na(5, Some(v6a("2001:db8:7::1")))]);
    let reply = r.ask(&off_link);
    assert_eq!(addr_of(&ianas(&reply)[0]), Some((v6a("2001:db8:7::1"), 0, 0)));
    // A server that lost its state re-creates the binding a RENEW names, when it is free.
    let mut fresh = Rig::new(config(""));
    let reply = fresh.ask(&renew);
    assert_eq!(addr_of(&ianas(&reply)[0]).map(|x| x.0), Some(a));
    assert_eq!(fresh.changes().len(), 1);
    // A RENEW must name us; a REBIND must not name any server.
    let wrong =
        message(msg::RENEW, &[option(opt::CLIENTID, &duid(8)), option(opt::SERVERID, &[0, 3, 9]), ia_na(1, Some(a))]);
    assert_eq!(r.raw(&wrong, NOW), Err(DropReason::OtherServer));
    let no_server = message(msg::RENEW, &[option(opt::CLIENTID, &duid(8)), ia_na(1, Some(a))]);
    assert_eq!(r.raw(&no_server, NOW), Err(DropReason::Malformed));
}

#[test]
fn a_released_address_goes_to_the_next_client_and_a_declined_one_does_not() {
    let mut r = Rig::new(config(""));
    let bind = |r: &mut Rig, n: u8| {
        let req = message(msg::REQUEST, &[option(opt::CLIENTID, &duid(n)), server_id(), ia_na(1, None)]);
        addr_of(&ianas(&r.ask(&req))[0]).map(|x| x.0)
    };
    let a = bind(&mut r, 20).unwrap();
    let release = message(msg::RELEASE, &[option(opt::CLIENTID, &duid(20)), server_id(), ia_na(1, Some(a))]);
    let reply = r.ask(&release);
    assert_eq!(status_in(reply.opts()), Some(Status::Success));
    assert!(ianas(&reply).is_empty(), "nothing to say per IA when it was released");
    r.changes();
    // Released twice: NoBinding in the IA.
    let reply = r.ask(&release);
    assert_eq!(status_in(&ianas(&reply)[0].opts), Some(Status::NoBinding));
    // The released address is free again; the pool goes round its numbers (stripe by stripe),
    // so the next client gets the next one, not the address just given up.
    assert_eq!(r.table.available(1, IaKind::Na), 256);
    let b = bind(&mut r, 21).unwrap();
    assert_eq!(b, v6a("2001:db8:1::101"));
    let decline = message(msg::DECLINE, &[option(opt::CLIENTID, &duid(21)), server_id(), ia_na(1, Some(b))]);
    let reply = r.ask(&decline);
    assert_eq!(status_in(reply.opts()), Some(Status::Success));
    assert_eq!(r.table.holder(b, 128).map(|l| l.state), Some(Lease6State::Declined));
    let c = bind(&mut r, 21).unwrap();
    assert_ne!(c, b, "a declined address is not handed out again");
    // After probation the sweep gives it back.
    r.table.sweep(NOW + DECLINE_PROBATION + 1, 100);
    assert!(r.table.holder(b, 128).is_none());
}

#[test]
fn a_duid_reservation_is_given_and_no_one_else_gets_it() {
    let mut r = Rig::new(config(""));
    let reserved = vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 0x99];
    let adv = r.ask(&message(msg::SOLICIT, &[option(opt::CLIENTID, &reserved), ia_na(1, None)]));
    assert_eq!(addr_of(&ianas(&adv)[0]).map(|x| x.0), Some(v6a("2001:db8:1::99")));
    // Another client hinting the reserved address gets a pool address instead.
    let hint =
        r.ask(&message(msg::SOLICIT, &[option(opt::CLIENTID, &duid(40)), ia_na(1, Some(v6a("2001:db8:1::99")))]));
    assert_ne!(addr_of(&ianas(&hint)[0]).map(|x| x.0), Some(v6a("2001:db8:1::99")));
}

#[test]
fn confirm_and_information_request() {
    let mut r = Rig::new(config(""));
    let on = message(msg::CONFIRM, &[option(opt::CLIENTID, &duid(9)), ia_na(1, Some(v6a("2001:db8:1::123")))]);
    assert_eq!(status_in(r.ask(&on).opts()), Some(Status::Success));
    let off = message(msg::CONFIRM, &[option(opt::CLIENTID, &duid(9)), ia_na(1, Some(v6a("2001:db8:5::1")))]);
    assert_eq!(status_in(r.ask(&off).opts()), Some(Status::NotOnLink));
    let nothing = message(msg::CONFIRM, &[option(opt::CLIENTID, &duid(9)), ia_na(1, None)]);
    assert_eq!(r.raw(&nothing, NOW), Err(DropReason::Silent));
    let info = message(msg::INFORMATION_REQUEST, &[option(opt::ORO, &[0, 23])]);
    let reply = r.ask(&info);
    assert_eq!(reply.msg_type(), MessageType::Reply);
    assert_eq!(
        reply.opts().get(OptionCode::DomainNameServers),
        Some(&DhcpOption::DomainNameServers(vec![v6a("2001:db8::53")]))
    );
    assert!(ianas(&reply).is_empty());
    let with_ia = message(msg::INFORMATION_REQUEST, &[ia_na(1, None)]);
    assert_eq!(r.raw(&with_ia, NOW), Err(DropReason::Malformed));
    assert!(r.changes().is_empty());
}

#[test]
fn server_messages_and_garbage_are_dropped_with_a_reason() {
    let mut r = Rig::new(config(""));
    for kind in [msg::ADVERTISE, msg::REPLY, msg::RECONFIGURE, msg::RELAY_REPL] {
        let m = message(kind, &[option(opt::CLIENTID, &duid(1))]);
        let got = r.raw(&m, NOW);
        assert!(matches!(got, Err(DropReason::NotRequest) | Err(DropReason::Malformed)), "{kind}: {got:?}");
    }
    assert_eq!(r.raw(&[1, 0], NOW), Err(DropReason::Malformed));
    assert_eq!(r.raw(&message(msg::SOLICIT, &[ia_na(1, None)]), NOW), Err(DropReason::Malformed), "no client id");
    let mut cut = message(msg::SOLICIT, &[option(opt::CLIENTID, &duid(1)), ia_na(1, None)]);
    cut.pop();
    assert_eq!(r.raw(&cut, NOW), Err(DropReason::Malformed));
    // A reply that does not fit the buffer is refused, not truncated.
    let m = message(msg::SOLICIT, &[option(opt::CLIENTID, &duid(1)), ia_na(1, None)]);
    let mut small = [0u8; 40];
    let got = r.engine.handle(NOW, &r.cfg, &r.server, &mut r.table, &m, &mut small, &mut r.counts);
    assert_eq!(got, Err(DropReason::NoRoom));
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    /// A valid message of each kind the engine answers, to mutate.
    fn seeds() -> Vec<Vec<u8>> {
        let cid = option(opt::CLIENTID, &duid(1));
        let sid = server_id();
        let na = ia_na(1, Some(v6a("2001:db8:1::100")));
        let pd = ia_pd(2, Some((v6a("2001:db8:100::"), 56)));
        let inner = message(msg::SOLICIT, &[cid.clone(), na.clone(), pd.clone()]);
        vec![
            inner.clone(),
            message(msg::REQUEST, &[cid.clone(), sid.clone(), na.clone(), pd.clone()]),
            message(msg::RENEW, &[cid.clone(), sid.clone(), na.clone()]),
            message(msg::REBIND, &[cid.clone(), pd.clone()]),
            message(msg::RELEASE, &[cid.clone(), sid.clone(), na.clone()]),
            message(msg::DECLINE, &[cid.clone(), sid, na.clone()]),
            message(msg::CONFIRM, &[cid, na]),
            message(msg::INFORMATION_REQUEST, &[option(opt::ORO, &[0, 23])]),
            relay_forw(Ipv6Addr::UNSPECIFIED, v6a("fe80::1"), &[option(opt::INTERFACE_ID, b"olt1/1/1")], &inner),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

        /// Mutated and truncated messages never panic the engine; whatever it answers is a
        /// whole message (a reply, or Relay-Repl layers around one) of the right kind.
        #[test]
        fn mutated_messages_get_a_whole_reply_or_a_counted_drop(
            seed in 0usize..9,
            flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..6),
            cut in any::<u16>(),
            tail in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut r = Rig::new(config(""));
            let mut m = seeds()[seed].clone();
            for (at, x) in flips {
                let i = usize::from(at) % m.len();
                m[i] ^= x;
            }
            m.truncate(usize::from(cut) % (m.len() + 1));
            m.extend(tail);
            if let Ok(out) = r.raw(&m, NOW) {
                let mut b = &out[..];
                while b.first() == Some(&msg::RELAY_REPL) {
                    b = relay_option(b, opt::RELAY_MSG).expect("a relay layer holds a message");
                }
                let reply = crate::dhcp6::Message::parse(b).expect("a whole message");
                prop_assert!(matches!(reply.kind(), msg::ADVERTISE | msg::REPLY));
            }
        }

        /// Random bytes: never a panic.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut r = Rig::new(config(""));
            let _ = r.raw(&bytes, NOW);
        }
    }
}

/// Edge defences: a DUID gets at most `leases-per-duid` IAs (then NoAddrsAvail in the IA,
/// counted); DECLINEs take at most `declined-percent` of a subnet's addresses out of use.
#[test]
fn one_duid_cannot_take_the_pool_and_declines_cannot_empty_it() {
    let mut r = Rig::new(config("[limits]\nleases-per-duid = 2\ndeclined-percent = 1\n"));
    let req = message(
        msg::REQUEST,
        &[option(opt::CLIENTID, &duid(50)), server_id(), ia_na(1, None), ia_na(2, None), ia_na(3, None)],
    );
    let reply = r.ask(&req);
    let got: Vec<Option<Status>> =
        ianas(&reply).iter().map(|i| addr_of(i).map(|_| Status::Success).or(status_in(&i.opts))).collect();
    assert_eq!(got, vec![Some(Status::Success), Some(Status::Success), Some(Status::NoAddrsAvail)]);
    assert_eq!(r.counts[Counter6::OverLimit.slot()], 1);
    // Its two keep renewing; another DUID is not affected.
    assert_eq!(ianas(&r.ask(&req)).iter().filter(|i| addr_of(i).is_some()).count(), 2);
    let other = r.ask(&message(msg::REQUEST, &[option(opt::CLIENTID, &duid(51)), server_id(), ia_na(1, None)]));
    assert!(addr_of(&ianas(&other)[0]).is_some());
    // 1 % of the 256 addresses: 3 on probation at most; the fourth DECLINE is refused (the
    // address stays the client's).
    let mut refused = 0;
    for n in 60..64u8 {
        let req = message(msg::REQUEST, &[option(opt::CLIENTID, &duid(n)), server_id(), ia_na(1, None)]);
        let a = addr_of(&ianas(&r.ask(&req))[0]).unwrap().0;
        let decline = message(msg::DECLINE, &[option(opt::CLIENTID, &duid(n)), server_id(), ia_na(1, Some(a))]);
        let reply = r.ask(&decline);
        if ianas(&reply).first().is_some_and(|i| status_in(&i.opts) == Some(Status::UnspecFail)) {
            refused += 1;
            assert_eq!(r.table.holder(a, 128).map(|l| l.state), Some(Lease6State::Bound));
        }
    }
    assert_eq!((refused, r.table.declined(1, IaKind::Na)), (1, 3));
    assert_eq!(r.counts[Counter6::DeclineRefused.slot()], 1);
}

/// Per-line quotas: `leases-per-remote-id` (and `leases-per-circuit`, by the relay's
/// interface-id) count v6 leases of every DUID behind one subscriber line.
#[test]
fn a_subscriber_line_holds_at_most_its_quota_of_v6_leases() {
    let mut r = Rig::new(config("[limits]\nleases-per-remote-id = 2\n"));
    let ask = |r: &mut Rig, n: u8, line: &[u8]| {
        let inner = message(msg::REQUEST, &[option(opt::CLIENTID, &duid(n)), server_id(), ia_na(1, None)]);
        let relayed = relay_forw(
            v6a("2001:db8:1::fffe"),
            v6a("fe80::9"),
            &[
                option(opt::REMOTE_ID, &[&[0, 0, 0x0d, 0xe9][..], line].concat()),
                option(crate::leasequery6::opt::RELAY_ID, &RELAY_DUID),
            ],
            &inner,
        );
        let reply = peel(&r.raw(&relayed, NOW).unwrap(), 1);
        addr_of(&ianas(&reply)[0]).map(|x| x.0)
    };
    assert!(ask(&mut r, 70, b"line-1").is_some());
    assert!(ask(&mut r, 71, b"line-1").is_some());
    assert_eq!(ask(&mut r, 72, b"line-1"), None, "a third device on the line");
    assert!(ask(&mut r, 73, b"line-2").is_some(), "another line");
    assert!(ask(&mut r, 70, b"line-1").is_some(), "a device that holds one keeps it");
    assert_eq!(r.counts[Counter6::OverLimit.slot()], 1);
    // The stored lease carries its line, and its relay's id (bulk leasequery by relay id).
    let mut changes = vec![];
    r.table.drain_changes(&mut changes);
    let relay = crate::leases::Tags::of(&RELAY_DUID);
    assert!(
        changes.iter().all(|c| matches!(c, Change::Upsert6(l) if l.tags.remote != 0 && l.relay == relay)),
        "{changes:?}"
    );
}

/// The relay id (option 53) the test's relay adds.
const RELAY_DUID: [u8; 10] = [0, 3, 0, 1, 2, 0xbb, 0, 0, 0, 1];

#[test]
fn in_cluster_mode_a_client_of_another_nodes_bucket_is_left_to_it_unless_it_names_us() {
    let cluster = "[cluster]\nnode = \"a\"\ndatabase = \"postgresql:///dhcp\"\n";
    let mut r = Rig::new(config(cluster));
    let solicit = |n: u8| message(msg::SOLICIT, &[option(opt::CLIENTID, &duid(n)), ia_na(1, None), ia_pd(2, None)]);
    // Until the membership loop says which buckets are ours, none is.
    assert_eq!(r.raw(&solicit(1), NOW), Err(DropReason::OtherBucket));
    // Serving the even buckets: a client whose DUID hashes to an odd one is another node's.
    let even = [0x5555_5555u32; 8];
    r.table.serve_buckets(&even);
    let bucket = |n: u8| dhcp_xdp_common::lb_hash(&duid(n));
    let mine = (0..=255u8).find(|n| bucket(*n) % 2 == 0).unwrap();
    let theirs = (0..=255u8).find(|n| bucket(*n) % 2 == 1).unwrap();
    assert_eq!(r.raw(&solicit(theirs), NOW), Err(DropReason::OtherBucket));
    let adv = r.ask(&solicit(mine));
    // Only numbers of the served stripes are handed out: the pool's first address and the
    // first /56 are number 0 (stripe 0, ours); after them number 2 (stripe 1 is not ours).
    assert_eq!(addr_of(&ianas(&adv)[0]).map(|x| x.0), Some(v6a("2001:db8:1::100")));
    let second = r.ask(&message(msg::SOLICIT, &[option(opt::CLIENTID, &duid(mine)), ia_na(5, None)]));
    assert_eq!(addr_of(&ianas(&second)[0]).map(|x| x.0), Some(v6a("2001:db8:1::102")));
    // A hint in another node's stripe is not taken: the client gets one of ours.
    let hinted =
        r.ask(&message(msg::SOLICIT, &[option(opt::CLIENTID, &duid(mine)), ia_na(6, Some(v6a("2001:db8:1::103")))]));
    assert_eq!(addr_of(&ianas(&hinted)[0]).map(|x| x.0), Some(v6a("2001:db8:1::104")));
    // A REQUEST that names this server is answered whatever its bucket: the client chose us.
    let request =
        message(msg::REQUEST, &[option(opt::CLIENTID, &duid(theirs)), server_id(), ia_na(1, None), ia_pd(2, None)]);
    let reply = r.ask(&request);
    let na = addr_of(&ianas(&reply)[0]).expect("an address").0;
    assert_eq!(r.table.holder(na, 128).map(|l| &*l.key.duid), Some(&duid(theirs)[..]));
    // Every bucket again (a takeover): the odd client is served.
    r.table.serve_buckets(&[u32::MAX; 8]);
    assert!(r.raw(&solicit(theirs), NOW).is_ok());
}
