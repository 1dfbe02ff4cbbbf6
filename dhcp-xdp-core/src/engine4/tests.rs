//! One named test per RFC rule, with an injected clock.
use super::{reply::MIN_BOOTP, *};
use crate::{
    config::Config,
    dhcp4::Message,
    leases::{Lease, LeaseDb},
    testing::Request,
    wire::{Frame, internet_checksum},
};

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xaa];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
const RELAY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x77];
const T0: u32 = 1_000_000;

const CFG: &str = r#"
[server]
offer-hold = 30
decline-probation = 600
bootp = "reservations"
[options]
dns-servers = ["198.18.0.53"]
domain-name = "example.net"
[[subnet]]
subnet = "198.18.0.0/24"
options = { routers = ["198.18.0.1"] }
  [[subnet.pool]]
  range = "198.18.0.100-198.18.0.109"
  [[subnet.reservation]]
  hw-address = "02:00:00:00:00:99"
  ip = "198.18.0.50"
  [[subnet.reservation]]
  client-id = "ff:00:01"
  ip = "198.18.0.51"
[[subnet]]
subnet = "198.18.1.0/24"
authoritative = false
  [[subnet.pool]]
  range = "198.18.1.100-198.18.1.199"
  [[subnet.reservation]]
  circuit-id = "olt1/1/1"
  ip = "198.18.1.10"
  [[subnet.reservation]]
  remote-id = "cpe-42"
  ip = "198.18.1.11"
[[subnet]]
subnet = "198.18.2.0/24"
shared-network = "campus"
  [[subnet.pool]]
  range = "198.18.2.10-198.18.2.10"
[[subnet]]
subnet = "198.18.3.0/24"
shared-network = "campus"
  [[subnet.pool]]
  range = "198.18.3.10-198.18.3.19"
[[subnet]]
subnet = "198.18.4.0/24"
vlan = [100, 20]
  [[subnet.pool]]
  range = "198.18.4.10-198.18.4.19"
  [[subnet.options.classless-routes]]
  destination = "198.19.0.0/16"
  router = "198.18.4.1"
"#;

type Rq = Request;

fn rq(mtype: MessageType) -> Rq {
    Request { end: true, xid: 0xabcd_0001, ..Request::new(mtype).client(CLIENT_MAC) }
}

/// Engine tests relay through one relay to this server.
trait ToUs {
    fn relayed_to_us(self, giaddr: Ipv4Addr) -> Self;
}

impl ToUs for Request {
    fn relayed_to_us(self, giaddr: Ipv4Addr) -> Self {
        self.relayed(giaddr, RELAY_MAC, SERVER)
    }
}

/// A parsed reply.
#[derive(Debug)]
struct Rp {
    frame: Vec<u8>,
}

impl Rp {
    fn f(&self) -> Frame<'_> {
        Frame::new_checked(&self.frame).expect("reply frame parses")
    }
    fn m(&self) -> Message<'_> {
        Message::parse(self.f().payload()).expect("reply message parses")
    }
    fn mtype(&self) -> MessageType {
        self.m().message_type().expect("type")
    }
    fn yiaddr(&self) -> Ipv4Addr {
        self.m().yiaddr()
    }
    fn opt(&self, code: u8) -> Option<Vec<u8>> {
        self.m().single(code).map(<[u8]>::to_vec)
    }
    fn codes(&self) -> Vec<u8> {
        let p = self.f().payload().to_vec();
        let mut out = vec![];
        let mut i = 240;
        while i < p.len() && p[i] != 255 {
            if p[i] == 0 {
                i += 1;
                continue;
            }
            out.push(p[i]);
            i += 2 + usize::from(p[i + 1]);
        }
        out
    }
}

struct H {
    cfg: Config,
    db: LeaseDb,
    server: ServerIdentity,
    engine: Engine,
}

impl H {
    fn new() -> Self {
        Self::with(CFG)
    }
    fn with(src: &str) -> Self {
        let cfg = Config::parse("test.toml", src).unwrap();
        let db = LeaseDb::new(&cfg, 1, [], T0);
        let server = ServerIdentity { mac: SERVER_MAC, addrs: vec![Ipv4Net { addr: SERVER, prefix: 24 }] };
        Self { cfg, db, server, engine: Engine::new() }
    }
    fn send(&mut self, now: u32, r: &Rq) -> Result<Rp, DropReason> {
        let mut buf = r.frame();
        let len = buf.len();
        buf.resize(4096, 0);
        let mut g = self.db.lock(0);
        let (v, _) = self.engine.handle(now, &self.cfg, &self.server, &mut g, &mut buf, len);
        match v {
            Verdict::Reply(n) => {
                buf.truncate(n);
                let rp = Rp { frame: buf };
                assert!(rp.f().udp_checksum_ok(), "UDP checksum");
                let l = rp.f().layout();
                assert_eq!(internet_checksum(&rp.frame[l.l3..l.l4]), 0, "IPv4 checksum");
                assert!(rp.f().payload().len() >= MIN_BOOTP);
                assert_eq!(rp.m().op(), dhcp4::BOOTREPLY);
                assert_eq!(rp.m().xid(), 0xabcd_0001);
                assert_eq!(rp.m().chaddr6(), r.chaddr);
                Ok(rp)
            }
            Verdict::Drop(d) => Err(d),
            Verdict::ReplyWhenDurable(_) => unreachable!("the engine leaves durability to its handler"),
        }
    }
    /// DISCOVER → OFFER → REQUEST → ACK; returns the ACK.
    fn dora(&mut self, now: u32, base: &Rq) -> Rp {
        let mut d = base.clone();
        d.mtype = Some(MessageType::Discover as u8);
        let offer = self.send(now, &d).expect("offer");
        assert_eq!(offer.mtype(), MessageType::Offer);
        let mut r = base.clone();
        r.mtype = Some(MessageType::Request as u8);
        let r = r.ip_opt(opt::REQUESTED_IP, offer.yiaddr()).opt(opt::SERVER_ID, &offer.opt(opt::SERVER_ID).unwrap());
        let ack = self.send(now + 1, &r).expect("ack");
        assert_eq!(ack.mtype(), MessageType::Ack);
        assert_eq!(ack.yiaddr(), offer.yiaddr());
        ack
    }
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

// ---- Counters -------------------------------------------------------------------------

#[test]
fn counters_fill_their_slots_and_have_distinct_names() {
    for (i, c) in MsgCounter::ALL.iter().enumerate() {
        assert_eq!(c.slot(), i, "{c:?} is listed out of slot order");
    }
    let names: std::collections::HashSet<_> = MsgCounter::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(names.len(), MsgCounter::COUNT);
}

#[test]
fn outcomes_name_what_came_in_the_client_state_and_what_went_out() {
    let mut h = H::new();
    let outcome = |h: &mut H, r: &Rq| {
        let mut buf = r.frame();
        let len = buf.len();
        buf.resize(4096, 0);
        h.engine.handle(T0, &h.cfg, &h.server, &mut h.db.lock(0), &mut buf, len).1
    };
    let d = outcome(&mut h, &rq(MessageType::Discover));
    assert_eq!(d, Outcome { rx: MsgCounter::RxDiscover, state: None, tx: Some(MsgCounter::TxOffer) });
    let init_reboot = rq(MessageType::Request).ip_opt(opt::REQUESTED_IP, Ipv4Addr::new(198, 18, 7, 7));
    let r = outcome(&mut h, &init_reboot);
    assert_eq!(r.rx, MsgCounter::RxRequest);
    assert_eq!(r.state, Some(MsgCounter::RxRequestInitReboot));
    assert_eq!(r.tx, Some(MsgCounter::TxNak), "a foreign address on our authoritative subnet");
    let mut garbage = rq(MessageType::Offer);
    garbage.op = 1;
    assert_eq!(outcome(&mut h, &garbage).rx, MsgCounter::RxOther);
}

// ---- Messages -------------------------------------------------------------------------

#[test]
fn discover_gets_offer_with_required_options() {
    let mut h = H::new();
    let o = h.send(T0, &rq(MessageType::Discover)).unwrap();
    assert_eq!(o.mtype(), MessageType::Offer);
    assert_eq!(o.yiaddr(), Ipv4Addr::new(198, 18, 0, 100));
    assert_eq!(o.opt(opt::SERVER_ID), Some(SERVER.octets().to_vec()));
    assert_eq!(o.opt(opt::LEASE_TIME), Some(3600u32.to_be_bytes().to_vec()));
    assert_eq!(o.opt(opt::RENEWAL_TIME), Some(1800u32.to_be_bytes().to_vec()));
    assert_eq!(o.opt(opt::REBINDING_TIME), Some(3150u32.to_be_bytes().to_vec()));
    assert_eq!(o.opt(opt::SUBNET_MASK), Some(vec![255, 255, 255, 0]));
    assert_eq!(o.opt(opt::ROUTERS), Some(vec![198, 18, 0, 1]));
    assert_eq!(o.opt(opt::DNS), Some(vec![198, 18, 0, 53]));
    assert_eq!(o.m().ciaddr(), Ipv4Addr::UNSPECIFIED);
}

#[test]
fn offer_uses_reservation_first() {
    let mut h = H::new();
    let mut r = rq(MessageType::Discover);
    r.chaddr = [2, 0, 0, 0, 0, 0x99];
    assert_eq!(h.send(T0, &r).unwrap().yiaddr(), Ipv4Addr::new(198, 18, 0, 50));
    let r = rq(MessageType::Discover).opt(opt::CLIENT_ID, &[0xff, 0, 1]);
    assert_eq!(h.send(T0, &r).unwrap().yiaddr(), Ipv4Addr::new(198, 18, 0, 51));
}

#[test]
fn offer_returns_previous_address_then_requested_then_allocator() {
    let mut h = H::new();
    let first = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
    // Same client again: its address.
    assert_eq!(h.send(T0 + 5, &rq(MessageType::Discover)).unwrap().yiaddr(), first);
    // Another client asking for a free address gets it; for a taken one, not.
    let mut other = rq(MessageType::Discover);
    other.chaddr = [2, 0, 0, 0, 0, 0x12];
    let want = Ipv4Addr::new(198, 18, 0, 105);
    assert_eq!(h.send(T0, &other.clone().ip_opt(opt::REQUESTED_IP, want)).unwrap().yiaddr(), want);
    other.chaddr = [2, 0, 0, 0, 0, 0x13];
    assert_ne!(h.send(T0, &other.clone().ip_opt(opt::REQUESTED_IP, first)).unwrap().yiaddr(), first);
    // A requested address outside the subnet is ignored.
    other.chaddr = [2, 0, 0, 0, 0, 0x14];
    let o = h.send(T0, &other.ip_opt(opt::REQUESTED_IP, Ipv4Addr::new(198, 19, 9, 9))).unwrap();
    assert!(h.cfg.subnets[0].pools[0].contains(o.yiaddr()));
}

#[test]
fn full_pool_is_a_counted_no_address_drop() {
    let mut h = H::new();
    for i in 0..10u8 {
        let mut r = rq(MessageType::Discover);
        r.chaddr = [2, 1, 0, 0, 0, i];
        h.send(T0, &r).unwrap();
    }
    let mut r = rq(MessageType::Discover);
    r.chaddr = [2, 1, 0, 0, 1, 0];
    assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::NoAddress);
}

#[test]
fn request_selecting_our_server_id_is_acked() {
    let mut h = H::new();
    let ack = h.dora(T0, &rq(MessageType::Discover));
    assert_eq!(ack.opt(opt::LEASE_TIME), Some(3600u32.to_be_bytes().to_vec()));
    let g = h.db.lock(0);
    let l = g.get(&ClientKey::hw(1, &CLIENT_MAC, 1)).unwrap();
    assert_eq!((l.state, l.expires), (LeaseState::Bound, T0 + 1 + 3600));
}

#[test]
fn request_selecting_other_server_drops_silently_and_frees_our_offer() {
    let mut h = H::new();
    let o = h.send(T0, &rq(MessageType::Discover)).unwrap();
    let r = rq(MessageType::Request)
        .ip_opt(opt::REQUESTED_IP, o.yiaddr())
        .ip_opt(opt::SERVER_ID, Ipv4Addr::new(198, 18, 0, 2));
    assert_eq!(h.send(T0 + 1, &r).unwrap_err(), DropReason::OtherServer);
    let mut other = rq(MessageType::Discover);
    other.chaddr = [2, 0, 0, 0, 0, 0x22];
    assert_eq!(
        h.send(T0 + 2, &other.ip_opt(opt::REQUESTED_IP, o.yiaddr())).unwrap().yiaddr(),
        o.yiaddr(),
        "offer withdrawn"
    );
}

#[test]
fn request_selecting_an_address_not_offered_is_naked() {
    let mut h = H::new();
    h.send(T0, &rq(MessageType::Discover)).unwrap();
    let r = rq(MessageType::Request)
        .ip_opt(opt::REQUESTED_IP, Ipv4Addr::new(198, 18, 0, 108))
        .ip_opt(opt::SERVER_ID, SERVER);
    let n = h.send(T0 + 1, &r).unwrap();
    assert_eq!(n.mtype(), MessageType::Nak);
    assert_eq!(n.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(n.opt(opt::LEASE_TIME), None);
    assert_eq!(n.f().dst_ip(), Ipv4Addr::BROADCAST, "NAK without relay is broadcast");
}

#[test]
fn init_reboot_known_client_is_acked() {
    let mut h = H::new();
    let a = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
    let ack = h.send(T0 + 100, &rq(MessageType::Request).ip_opt(opt::REQUESTED_IP, a)).unwrap();
    assert_eq!((ack.mtype(), ack.yiaddr()), (MessageType::Ack, a));
}

#[test]
fn init_reboot_wrong_subnet_naks_when_authoritative() {
    let mut h = H::new();
    let r = rq(MessageType::Request).ip_opt(opt::REQUESTED_IP, Ipv4Addr::new(198, 18, 9, 9));
    assert_eq!(h.send(T0, &r).unwrap().mtype(), MessageType::Nak);
}

#[test]
fn init_reboot_wrong_subnet_is_silent_when_not_authoritative() {
    let mut h = H::new();
    let r = rq(MessageType::Request)
        .ip_opt(opt::REQUESTED_IP, Ipv4Addr::new(198, 18, 9, 9))
        .relayed_to_us(Ipv4Addr::new(198, 18, 1, 1));
    assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::Silent);
}

#[test]
fn init_reboot_for_address_bound_to_another_client_naks() {
    let mut h = H::new();
    let a = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
    let mut r = rq(MessageType::Request).ip_opt(opt::REQUESTED_IP, a);
    r.chaddr = [2, 0, 0, 0, 0, 0x33];
    assert_eq!(h.send(T0 + 1, &r).unwrap().mtype(), MessageType::Nak);
}

#[test]
fn renewing_unicast_is_acked_to_ciaddr() {
    let mut h = H::new();
    let a = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
    let mut r = rq(MessageType::Request);
    r.ciaddr = a;
    r.src_ip = a;
    r.dst_ip = SERVER;
    let ack = h.send(T0 + 1800, &r).unwrap();
    assert_eq!((ack.mtype(), ack.yiaddr(), ack.m().ciaddr()), (MessageType::Ack, a, a));
    assert_eq!((ack.f().dst_ip(), ack.f().dst_port(), ack.f().dst_mac()), (a, 68, CLIENT_MAC));
    let g = h.db.lock(0);
    assert_eq!(g.get(&ClientKey::hw(1, &CLIENT_MAC, 1)).unwrap().expires, T0 + 1800 + 3600, "lease extended");
}

#[test]
fn rebinding_broadcast_is_acked() {
    let mut h = H::new();
    let a = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
    let mut r = rq(MessageType::Request);
    r.ciaddr = a;
    r.src_ip = a;
    let ack = h.send(T0 + 3200, &r).unwrap();
    assert_eq!((ack.mtype(), ack.yiaddr()), (MessageType::Ack, a));
    assert_eq!(ack.f().dst_ip(), a, "ciaddr set: unicast to ciaddr");
}

#[test]
fn renewing_someone_elses_address_naks() {
    let mut h = H::new();
    let a = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
    let mut r = rq(MessageType::Request);
    r.chaddr = [2, 0, 0, 0, 0, 0x44];
    r.ciaddr = a;
    assert_eq!(h.send(T0 + 1, &r).unwrap().mtype(), MessageType::Nak);
}

#[test]
fn decline_puts_address_on_probation_and_client_gets_another() {
    let mut h = H::new();
    let a = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
    let d = rq(MessageType::Decline).ip_opt(opt::REQUESTED_IP, a).ip_opt(opt::SERVER_ID, SERVER);
    assert_eq!(h.send(T0 + 2, &d).unwrap_err(), DropReason::Consumed);
    let b = h.send(T0 + 3, &rq(MessageType::Discover)).unwrap().yiaddr();
    assert_ne!(a, b);
    let mut other = rq(MessageType::Discover);
    other.chaddr = [2, 0, 0, 0, 0, 0x55];
    assert_ne!(h.send(T0 + 4, &other.ip_opt(opt::REQUESTED_IP, a)).unwrap().yiaddr(), a, "on probation");
}

#[test]
fn release_frees_address_but_keeps_affinity() {
    let mut h = H::new();
    let a = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
    let mut r = rq(MessageType::Release).ip_opt(opt::SERVER_ID, SERVER);
    r.ciaddr = a;
    assert_eq!(h.send(T0 + 10, &r).unwrap_err(), DropReason::Consumed);
    assert_eq!(h.db.census(T0 + 10).bound, 0);
    assert_eq!(h.send(T0 + 20, &rq(MessageType::Discover)).unwrap().yiaddr(), a);
}

#[test]
fn inform_acks_configuration_without_lease_or_yiaddr() {
    let mut h = H::new();
    let mut r = rq(MessageType::Inform).opt(opt::PARAMETER_LIST, &[6, 3, 15]);
    r.ciaddr = Ipv4Addr::new(198, 18, 0, 7);
    r.src_ip = r.ciaddr;
    let a = h.send(T0, &r).unwrap();
    assert_eq!(a.mtype(), MessageType::Ack);
    assert_eq!(a.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(a.opt(opt::LEASE_TIME), None);
    assert_eq!(a.opt(opt::DNS), Some(vec![198, 18, 0, 53]));
    assert_eq!(a.f().dst_ip(), r.ciaddr);
    assert_eq!(h.db.census(T0).bound, 0);
}

#[test]
fn bootp_answered_from_reservations_only() {
    let mut h = H::new();
    let mut r = rq(MessageType::Discover);
    r.mtype = None;
    assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::Bootp);
    r.chaddr = [2, 0, 0, 0, 0, 0x99];
    let rep = h.send(T0, &r).unwrap();
    assert_eq!(rep.yiaddr(), Ipv4Addr::new(198, 18, 0, 50));
    assert_eq!(rep.m().message_type(), None);
    let mut h = H::with(&CFG.replace("bootp = \"reservations\"", "bootp = \"ignore\""));
    assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::Bootp);
}

#[test]
fn server_messages_wrong_op_and_long_hlen_are_counted_drops() {
    let mut h = H::new();
    for t in [MessageType::Offer, MessageType::Ack, MessageType::Nak] {
        assert_eq!(h.send(T0, &rq(t)).unwrap_err(), DropReason::NotRequest);
    }
    let mut r = rq(MessageType::Discover);
    r.op = 2;
    assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::NotRequest);
    let mut r = rq(MessageType::Discover);
    r.hlen = 17;
    assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::BadHlen);
    let r = rq(MessageType::Discover).opt(opt::MESSAGE_TYPE, &[1, 2]);
    assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::Malformed, "two option 53");
}

// ---- Addressing (RFC 2131 §4.1) --------------------------------------------------------

#[test]
fn relayed_reply_goes_to_giaddr_port_67_via_request_source_mac() {
    let mut h = H::new();
    let relay = Ipv4Addr::new(198, 18, 1, 1);
    let o = h.send(T0, &rq(MessageType::Discover).relayed_to_us(relay)).unwrap();
    assert_eq!((o.f().dst_ip(), o.f().dst_port(), o.f().dst_mac()), (relay, 67, RELAY_MAC));
    assert_eq!(o.m().giaddr(), relay);
    assert!(h.cfg.subnets[1].contains(o.yiaddr()), "lease from the giaddr's subnet");
}

#[test]
fn nak_through_relay_sets_broadcast_bit() {
    let mut h = H::new();
    let r = rq(MessageType::Request)
        .ip_opt(opt::REQUESTED_IP, Ipv4Addr::new(198, 18, 0, 5))
        .relayed_to_us(Ipv4Addr::new(198, 18, 3, 1));
    let n = h.send(T0, &r).unwrap();
    assert_eq!(n.mtype(), MessageType::Nak);
    assert_eq!(n.m().flags() & FLAG_BROADCAST, FLAG_BROADCAST);
    assert_eq!(n.f().dst_ip(), Ipv4Addr::new(198, 18, 3, 1));
}

#[test]
fn broadcast_flag_means_broadcast_reply() {
    let mut h = H::new();
    let mut r = rq(MessageType::Discover);
    r.flags = FLAG_BROADCAST;
    let o = h.send(T0, &r).unwrap();
    assert_eq!((o.f().dst_ip(), o.f().dst_mac()), (Ipv4Addr::BROADCAST, [0xff; 6]));
}

#[test]
fn no_flag_means_unicast_to_yiaddr_at_chaddr() {
    let mut h = H::new();
    let o = h.send(T0, &rq(MessageType::Discover)).unwrap();
    assert_eq!((o.f().dst_ip(), o.f().dst_mac(), o.f().dst_port()), (o.yiaddr(), CLIENT_MAC, 68));
    assert_eq!((o.f().src_ip(), o.f().src_mac(), o.f().src_port()), (SERVER, SERVER_MAC, 67));
}

// ---- Options ---------------------------------------------------------------------------

#[test]
fn parameter_request_list_order_is_honoured() {
    let mut h = H::new();
    let o = h.send(T0, &rq(MessageType::Discover).opt(opt::PARAMETER_LIST, &[15, 6, 3, 1])).unwrap();
    let codes = o.codes();
    let pos = |c| codes.iter().position(|&x| x == c).unwrap();
    assert!(pos(15) < pos(6) && pos(6) < pos(3), "{codes:?}");
    assert_eq!(codes[0], opt::MESSAGE_TYPE);
}

#[test]
fn cached_option_blocks_give_the_same_replies_as_fresh_ones() {
    // 20 lists (more than the cache holds), each asked three times by one engine: a miss,
    // hits, and misses again after replacement. Every reply equals a fresh engine's.
    let lists: Vec<Vec<u8>> = (0..20)
        .map(|i| {
            let mut l = vec![15, 6, 3, 1, 28, 42];
            l.rotate_left(i % 6);
            l.truncate(6 - i / 6);
            l
        })
        .collect();
    let mut h = H::new();
    for round in 0..3 {
        for (i, l) in lists.iter().enumerate() {
            let mut r = rq(MessageType::Discover).opt(opt::PARAMETER_LIST, l);
            r.chaddr = [2, 0, 0, 0, 1, (i % 8) as u8]; // the pool has 10 addresses
            r.src_mac = r.chaddr;
            let cached = h.send(T0 + round, &r).unwrap();
            let fresh = H::new().send(T0 + round, &r).unwrap();
            let options = |rp: &Rp| rp.f().payload()[field::OPTIONS..].to_vec();
            assert_eq!(options(&cached), options(&fresh), "list {l:?} round {round}");
        }
    }
    // A client without a list gets every configured option, cached the same way.
    let all = h.send(T0, &rq(MessageType::Discover)).unwrap();
    assert_eq!(all.frame, h.send(T0, &rq(MessageType::Discover)).unwrap().frame, "hit = miss");
    assert!(all.opt(opt::DOMAIN_NAME).is_some());
}

#[test]
fn options_too_big_for_a_block_are_still_sent_option_by_option() {
    // Four 255-byte options: more than a cached block holds, less than the reply can.
    let custom: String =
        (200..204).map(|c| format!("[[options.custom]]\ncode = {c}\ntext = \"{}\"\n", "t".repeat(255))).collect();
    let big = CFG.replacen("domain-name = \"example.net\"\n", &format!("domain-name = \"example.net\"\n{custom}"), 1);
    let mut h = H::with(&big);
    let r = rq(MessageType::Discover)
        .opt(opt::PARAMETER_LIST, &[1, 200, 201, 202, 203])
        .opt(opt::MAX_MESSAGE_SIZE, &1500u16.to_be_bytes());
    let first = h.send(T0, &r).unwrap();
    for c in [opt::SUBNET_MASK, 200, 201, 202, 203] {
        assert!(first.opt(c).is_some(), "option {c} missing");
    }
    assert_eq!(first.frame, h.send(T0, &r).unwrap().frame, "the same the second time");
}

#[test]
fn a_new_configuration_is_never_answered_from_old_option_blocks() {
    let mut h = H::new();
    let r = rq(MessageType::Discover).opt(opt::PARAMETER_LIST, &[1, 3, 6]);
    assert_eq!(h.send(T0, &r).unwrap().opt(opt::DNS), Some(vec![198, 18, 0, 53]));
    h.cfg = Config::parse("test.toml", &CFG.replace("198.18.0.53", "198.18.0.54")).unwrap();
    assert_eq!(h.send(T0, &r).unwrap().opt(opt::DNS), Some(vec![198, 18, 0, 54]));
}

#[test]
fn max_message_size_drops_optional_options_not_required_ones() {
    let big = CFG.replace("domain-name = \"example.net\"", &format!("domain-name = \"{}\"", "d".repeat(250)));
    let mut h = H::with(&big);
    let o = h.send(T0, &rq(MessageType::Discover).opt(opt::PARAMETER_LIST, &[15, 6, 3])).unwrap();
    assert!(o.opt(opt::DOMAIN_NAME).is_some(), "fits 548 bytes");
    let limit = 576u16;
    let r = rq(MessageType::Discover)
        .opt(opt::PARAMETER_LIST, &[15, 6, 3, 15])
        .opt(opt::MAX_MESSAGE_SIZE, &limit.to_be_bytes());
    let o = h.send(T0, &r.clone().opt(opt::HOSTNAME, &[b'h'; 200])).unwrap();
    assert!(o.f().payload().len() <= usize::from(limit) - 28);
    for c in [opt::MESSAGE_TYPE, opt::SERVER_ID, opt::LEASE_TIME, opt::SUBNET_MASK] {
        assert!(o.opt(c).is_some(), "required option {c} missing");
    }
}

#[test]
fn client_identifier_is_the_lease_key_and_echoed() {
    let mut h = H::new();
    let base = rq(MessageType::Discover).opt(opt::CLIENT_ID, &[1, 2, 3, 4, 5, 6, 7]);
    let ack = h.dora(T0, &base);
    assert_eq!(ack.opt(opt::CLIENT_ID), Some(vec![1, 2, 3, 4, 5, 6, 7]));
    // Same client id from another NIC: same lease.
    let mut moved = base.clone();
    moved.chaddr = [2, 0, 0, 0, 0, 0x66];
    moved.src_mac = moved.chaddr;
    assert_eq!(h.send(T0 + 5, &moved).unwrap().yiaddr(), ack.yiaddr());
    let g = h.db.lock(0);
    assert!(g.get(&ClientKey::client_id(&[1, 2, 3, 4, 5, 6, 7], 1)).is_some());
}

#[test]
fn relay_agent_information_is_echoed_verbatim_and_last() {
    let mut h = H::new();
    let info = [1, 8, b'o', b'l', b't', b'9', b'/', b'1', b'/', b'1', 2, 3, b'x', b'y', b'z'];
    let o = h
        .send(
            T0,
            &rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &info).relayed_to_us(Ipv4Addr::new(198, 18, 1, 1)),
        )
        .unwrap();
    assert_eq!(o.opt(opt::RELAY_AGENT_INFO), Some(info.to_vec()));
    assert_eq!(o.codes().last(), Some(&opt::RELAY_AGENT_INFO));
}

/// The lease keeps the option 82 its trusted relay added to the ACKed REQUEST, whole (for
/// leasequery), journaled when it changes; a direct client's option 82 (nobody's word) is not
/// kept, nor is an OFFER's.
#[test]
fn the_lease_keeps_the_relays_option_82() {
    let mut h = H::new();
    let relay = Ipv4Addr::new(198, 18, 1, 1);
    let key = ClientKey::hw(1, &CLIENT_MAC, 2);
    let kept =
        |h: &H| (0..h.db.shard_count()).find_map(|i| h.db.lock(i).attr(Attr::RelayInfo, &key).map(<[u8]>::to_vec));
    let info = [1, 4, b'o', b'l', b't', b'1', 2, 3, b'c', b'p', b'e', 12, 4, 198, 18, 1, 1];
    let base = rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &info).relayed_to_us(relay);
    h.send(T0, &base).expect("offer");
    assert_eq!(kept(&h), None, "an offer keeps nothing");
    let ack = h.dora(T0, &base);
    assert_eq!(kept(&h).as_deref(), Some(&info[..]));
    let journaled = |h: &H| {
        (0..h.db.shard_count())
            .flat_map(|i| h.db.lock(i).take_changes())
            .filter(|c| matches!(c, crate::leases::Change::Attr(Attr::RelayInfo, ..)))
            .count()
    };
    assert_eq!(journaled(&h), 1);
    // A renewal through the relay with another remote id takes it; without option 82, none.
    let mut renew = rq(MessageType::Request).relayed_to_us(relay);
    renew.ciaddr = ack.yiaddr();
    let other = [1, 4, b'o', b'l', b't', b'1', 2, 3, b'c', b'p', b'f'];
    h.send(T0 + 10, &renew.clone().opt(opt::RELAY_AGENT_INFO, &other)).expect("ack");
    assert_eq!(kept(&h).as_deref(), Some(&other[..]));
    h.send(T0 + 20, &renew.clone().opt(opt::RELAY_AGENT_INFO, &other)).expect("ack");
    assert_eq!(journaled(&h), 1, "an unchanged option 82 is not journaled again");
    h.send(T0 + 30, &renew).expect("ack");
    assert_eq!(kept(&h), None);
    // A direct client's option 82 is ignored, and not kept.
    let direct = rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &info);
    h.dora(T0, &direct);
    let k = ClientKey::hw(1, &CLIENT_MAC, 1);
    assert!((0..h.db.shard_count()).all(|i| h.db.lock(i).attr(Attr::RelayInfo, &k).is_none()));
}

#[test]
fn circuit_and_remote_id_reservations_are_honoured() {
    let mut h = H::new();
    let relay = Ipv4Addr::new(198, 18, 1, 1);
    let circuit = [1, 8, b'o', b'l', b't', b'1', b'/', b'1', b'/', b'1'];
    let o = h.send(T0, &rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &circuit).relayed_to_us(relay)).unwrap();
    assert_eq!(o.yiaddr(), Ipv4Addr::new(198, 18, 1, 10));
    let mut r = rq(MessageType::Discover)
        .opt(opt::RELAY_AGENT_INFO, &[2, 6, b'c', b'p', b'e', b'-', b'4', b'2'])
        .relayed_to_us(relay);
    r.chaddr = [2, 0, 0, 0, 0, 0x67];
    assert_eq!(h.send(T0, &r).unwrap().yiaddr(), Ipv4Addr::new(198, 18, 1, 11));
}

#[test]
fn relays_among_many_subnets_reach_their_own() {
    // 40 relay subnets (more than a scan handles) in reverse order, each with a pool and a
    // circuit-id reservation: every relay's clients get addresses of its own subnet.
    let src: String = (0..40u8)
        .rev()
        .map(|i| {
            format!(
                "[[subnet]]\nsubnet = \"198.19.{i}.0/24\"\n[[subnet.pool]]\nrange = \"198.19.{i}.100-198.19.{i}.199\"\n\
                 [[subnet.reservation]]\ncircuit-id = \"port{i}\"\nip = \"198.19.{i}.7\"\n"
            )
        })
        .collect();
    let mut h = H::with(&src);
    for i in [0u8, 17, 39] {
        let relay = Ipv4Addr::new(198, 19, i, 1);
        let mut r = rq(MessageType::Discover).relayed_to_us(relay);
        r.chaddr = [2, 0, 0, 0, 2, i];
        let ack = h.dora(T0, &r);
        assert_eq!(ack.yiaddr().octets()[..3], [198, 19, i], "relay {relay}");
        let id = format!("port{i}");
        let circuit = [&[1, id.len() as u8][..], id.as_bytes()].concat();
        let mut c = rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &circuit).relayed_to_us(relay);
        c.chaddr = [2, 0, 0, 0, 3, i];
        assert_eq!(h.send(T0, &c).unwrap().yiaddr(), Ipv4Addr::new(198, 19, i, 7), "circuit port{i}");
    }
    // A direct client: none of these subnets holds our address (198.18.0.1) and none is the
    // only untagged one, so there is no subnet for it; with our own subnet added, that one.
    assert_eq!(h.send(T0, &rq(MessageType::Discover)).unwrap_err(), DropReason::NoSubnet);
    let own = format!(
        "{src}[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.100-198.18.0.109\"\n"
    );
    let mut h = H::with(&own);
    let a = h.send(T0, &rq(MessageType::Discover)).unwrap().yiaddr();
    assert_eq!(a.octets()[..3], [198, 18, 0], "{a}");
}

#[test]
fn link_selection_beats_subnet_selection_beats_giaddr() {
    let mut h = H::new();
    let relay = Ipv4Addr::new(198, 18, 1, 1);
    let ls = [5, 4, 198, 18, 3, 0];
    let r = rq(MessageType::Discover)
        .opt(opt::RELAY_AGENT_INFO, &ls)
        .ip_opt(opt::SUBNET_SELECTION, Ipv4Addr::new(198, 18, 4, 0))
        .relayed_to_us(relay);
    let a = h.send(T0, &r).unwrap().yiaddr();
    assert!(h.cfg.subnets[3].contains(a), "82.5 wins");
    let mut r =
        rq(MessageType::Discover).ip_opt(opt::SUBNET_SELECTION, Ipv4Addr::new(198, 18, 4, 0)).relayed_to_us(relay);
    r.chaddr = [2, 0, 0, 0, 0, 0x68];
    let a = h.send(T0, &r).unwrap().yiaddr();
    assert!(h.cfg.subnets[4].contains(a), "118 beats giaddr");
}

#[test]
fn server_id_override_is_announced_and_accepted() {
    let mut h = H::new();
    let ovr = Ipv4Addr::new(198, 18, 1, 1);
    let info = [11, 4, 198, 18, 1, 1];
    let base = rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &info).relayed_to_us(ovr);
    let o = h.send(T0, &base).unwrap();
    assert_eq!(o.opt(opt::SERVER_ID).map(|v| ip(&v)), Some(ovr));
    let mut r = base.clone();
    r.mtype = Some(MessageType::Request as u8);
    let r = r.ip_opt(opt::REQUESTED_IP, o.yiaddr()).ip_opt(opt::SERVER_ID, ovr);
    assert_eq!(h.send(T0 + 1, &r).unwrap().mtype(), MessageType::Ack);
}

#[test]
fn shared_network_falls_over_to_sibling_subnet() {
    let mut h = H::new();
    let relay = Ipv4Addr::new(198, 18, 2, 1);
    let mut seen = vec![];
    for i in 0..3u8 {
        let mut r = rq(MessageType::Discover).relayed_to_us(relay);
        r.chaddr = [2, 2, 0, 0, 0, i];
        seen.push(h.send(T0, &r).unwrap().yiaddr());
    }
    assert_eq!(seen[0], Ipv4Addr::new(198, 18, 2, 10));
    assert!(h.cfg.subnets[3].contains(seen[1]) && h.cfg.subnets[3].contains(seen[2]), "{seen:?}");
}

#[test]
fn vlan_tags_select_the_subnet_and_routes_are_sent() {
    let mut h = H::new();
    let mut r = rq(MessageType::Discover).opt(opt::PARAMETER_LIST, &[1, 121, 3]);
    r.vlans = vec![100, 20];
    let o = h.send(T0, &r).unwrap();
    assert!(h.cfg.subnets[4].contains(o.yiaddr()));
    assert_eq!(o.f().vlan_ids(), [100, 20], "reply keeps the tags");
    assert_eq!(o.opt(opt::CLASSLESS_ROUTES), Some(vec![16, 198, 19, 198, 18, 4, 1]));
    r.vlans = vec![999];
    assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::NoSubnet);
}

#[test]
fn truncated_and_garbage_frames_never_panic() {
    let mut h = H::new();
    let good = rq(MessageType::Discover).opt(opt::PARAMETER_LIST, &[1, 3, 6]).frame();
    for n in 0..good.len() {
        let mut buf = good[..n].to_vec();
        buf.resize(4096, 0);
        let mut g = h.db.lock(0);
        let (v, _) = h.engine.handle(T0, &h.cfg, &h.server, &mut g, &mut buf, n);
        assert!(matches!(v, Verdict::Drop(_)), "prefix {n} answered");
    }
    // Random bytes behind valid headers: a deterministic xorshift stream.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        let mut f = good.clone();
        let start = 42;
        for b in &mut f[start..] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(7) {
                *b = x as u8;
            }
        }
        let n = f.len();
        f.resize(4096, 0);
        let mut g = h.db.lock(0);
        let (v, _) = h.engine.handle(T0, &h.cfg, &h.server, &mut g, &mut f, n);
        if let Verdict::Reply(len) = v {
            let fr = Frame::new_checked(&f[..len]).expect("reply parses");
            assert!(fr.udp_checksum_ok());
            assert!(Message::parse(fr.payload()).is_ok());
        }
    }
}

// ---- Edge defence (issue 14) ----------------------------------------------------------

/// A direct client (giaddr 0) that fills in the relay's fields — link selection (82.5),
/// subnet selection (118), server-id override (82.11) — picks nothing: it is offered an
/// address of the subnet it is on, and its option 82 is not echoed.
#[test]
fn relay_fields_from_a_direct_client_are_ignored() {
    let mut h = H::new();
    let spoof = rq(MessageType::Discover)
        .opt(opt::RELAY_AGENT_INFO, &[5, 4, 198, 18, 3, 0, 11, 4, 198, 18, 3, 1])
        .ip_opt(opt::SUBNET_SELECTION, Ipv4Addr::new(198, 18, 4, 0));
    let o = h.send(T0, &spoof).unwrap();
    assert!(h.cfg.subnets[0].contains(o.yiaddr()), "{} is not on the client's own subnet", o.yiaddr());
    assert_eq!(o.opt(opt::SERVER_ID).map(|v| ip(&v)), Some(SERVER), "no server-id override");
    assert_eq!(o.opt(opt::RELAY_AGENT_INFO), None, "a client's option 82 is not echoed");
}

/// A direct client claiming a circuit-id reservation through option 82 does not get it; where
/// the operator says an L2 agent inserts option 82 (`trust-direct-option82`), it does.
#[test]
fn direct_option82_counts_only_where_the_operator_trusts_it() {
    let cfg = |trust: bool| {
        format!(
            "[[subnet]]\nsubnet = \"198.18.0.0/24\"\ntrust-direct-option82 = {trust}\n[[subnet.pool]]\nrange = \"198.18.0.100-198.18.0.109\"\n\
             [[subnet.reservation]]\ncircuit-id = \"olt1/1/1\"\nip = \"198.18.0.50\"\n"
        )
    };
    let info = [&[1, 8][..], b"olt1/1/1"].concat();
    let r = rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &info);
    let mut h = H::with(&cfg(false));
    assert_ne!(
        h.send(T0, &r).unwrap().yiaddr(),
        Ipv4Addr::new(198, 18, 0, 50),
        "untrusted option 82 claimed a reservation"
    );
    let mut h = H::with(&cfg(true));
    let o = h.send(T0, &r).unwrap();
    assert_eq!(o.yiaddr(), Ipv4Addr::new(198, 18, 0, 50));
    assert_eq!(o.opt(opt::RELAY_AGENT_INFO), Some(info), "trusted option 82 is echoed");
}

/// giaddr set by a client (source port 68), giaddr of our own interface, a relay outside
/// `[relays] trusted`: dropped and counted, no lease made.
#[test]
fn forged_and_untrusted_relays_are_dropped() {
    let mut h = H::new();
    let mut forged = rq(MessageType::Discover).relayed_to_us(Ipv4Addr::new(198, 18, 1, 1));
    forged.src_mac = CLIENT_MAC;
    let mut f = forged.frame();
    // UDP source port 68: a client, not a relay.
    let l4 = Frame::new_checked(&f).unwrap().layout().l4;
    f[l4..l4 + 2].copy_from_slice(&68u16.to_be_bytes());
    let n = f.len();
    f.resize(4096, 0);
    let (v, _) = h.engine.handle(T0, &h.cfg, &h.server, &mut h.db.lock(0), &mut f, n);
    assert_eq!(v, Verdict::Drop(DropReason::UntrustedRelay));
    let ours = rq(MessageType::Discover).relayed_to_us(SERVER);
    assert_eq!(h.send(T0, &ours).unwrap_err(), DropReason::UntrustedRelay, "giaddr of our own interface");
    let mut h = H::with(&CFG.replace("[server]", "[relays]\ntrusted = [\"198.18.2.0/24\"]\n[server]"));
    let outside = rq(MessageType::Discover).relayed_to_us(Ipv4Addr::new(198, 18, 1, 1));
    assert_eq!(h.send(T0, &outside).unwrap_err(), DropReason::UntrustedRelay);
    let inside = rq(MessageType::Discover).relayed_to_us(Ipv4Addr::new(198, 18, 2, 1));
    assert!(h.send(T0, &inside).is_ok(), "a trusted relay is answered");
    assert!(h.db.all_leases().iter().all(|l| l.addr.octets()[2] == 2), "no lease for the untrusted ones");
}

/// DISCOVER then DECLINE of the offered (never bound) address: refused, the address stays
/// available. DECLINE and RELEASE of another client's binding: refused, the binding stays.
#[test]
fn decline_and_release_only_touch_the_clients_own_binding() {
    let mut h = H::new();
    let o = h.send(T0, &rq(MessageType::Discover)).unwrap().yiaddr();
    let d = rq(MessageType::Decline).ip_opt(opt::REQUESTED_IP, o).ip_opt(opt::SERVER_ID, SERVER);
    assert_eq!(h.send(T0 + 1, &d).unwrap_err(), DropReason::Refused, "an offer is not the client's to decline");
    let mut other = rq(MessageType::Discover);
    other.chaddr = [2, 0, 0, 0, 0, 0x56];
    other.src_mac = other.chaddr;
    // The offer lapses; the address is not on probation: another client gets it.
    assert_eq!(h.send(T0 + 100, &other.clone().ip_opt(opt::REQUESTED_IP, o)).unwrap().yiaddr(), o);
    // The victim binds; the attacker declines and releases it.
    let victim = h.dora(T0 + 200, &rq(MessageType::Discover)).yiaddr();
    let mut attack = rq(MessageType::Decline).ip_opt(opt::REQUESTED_IP, victim).ip_opt(opt::SERVER_ID, SERVER);
    attack.chaddr = [2, 0, 0, 0, 0, 0x66];
    assert_eq!(h.send(T0 + 201, &attack).unwrap_err(), DropReason::Refused);
    let mut release = rq(MessageType::Release).ip_opt(opt::SERVER_ID, SERVER);
    release.chaddr = [2, 0, 0, 0, 0, 0x66];
    release.ciaddr = victim;
    assert_eq!(h.send(T0 + 202, &release).unwrap_err(), DropReason::Refused);
    let key = ClientKey::hw(1, &CLIENT_MAC, 1);
    assert!(h.db.lock(0).get(&key).is_some_and(|l| l.state == LeaseState::Bound && l.addr == victim));
    // A RELEASE naming another server is not ours to act on.
    let forged = rq(MessageType::Release).ip_opt(opt::SERVER_ID, Ipv4Addr::new(198, 18, 0, 9));
    let forged = Request { ciaddr: victim, ..forged };
    assert_eq!(h.send(T0 + 203, &forged).unwrap_err(), DropReason::OtherServer);
    assert!(h.db.lock(0).get(&key).is_some_and(|l| l.state == LeaseState::Bound));
}

/// Bound clients declining one address after another put at most `declined-percent` of the
/// pool on probation; beyond that the address is just released.
#[test]
fn declines_can_take_out_only_a_share_of_a_pool() {
    let mut h = H::with(&CFG.replace("[server]", "[limits]\ndeclined-percent = 20\n[server]"));
    let mut declined = 0;
    for i in 0..10u8 {
        let mut c = rq(MessageType::Discover);
        c.chaddr = [2, 0, 0, 0, 7, i];
        c.src_mac = c.chaddr;
        let a = h.dora(T0, &c).yiaddr();
        let mut d = rq(MessageType::Decline).ip_opt(opt::REQUESTED_IP, a).ip_opt(opt::SERVER_ID, SERVER);
        d.chaddr = c.chaddr;
        match h.send(T0 + 1, &d).unwrap_err() {
            DropReason::Consumed => declined += 1,
            DropReason::OverLimit => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(declined, 2, "20 % of a 10-address pool");
    let on_probation = h.db.all_leases().iter().filter(|l| l.state == LeaseState::Declined).count();
    assert_eq!(on_probation, 2);
}

/// 2 000 DISCOVERs with random MACs behind one relay circuit cannot exhaust the pool for the
/// subscribers on the other circuits of that relay.
#[test]
fn one_circuit_cannot_starve_the_others() {
    let cfg = "[limits]\noffers-per-circuit = 10\n[[subnet]]\nsubnet = \"198.18.1.0/24\"\n[[subnet.pool]]\nrange = \"198.18.1.100-198.18.1.149\"\n";
    let mut h = H::with(cfg);
    let relay = Ipv4Addr::new(198, 18, 1, 1);
    let circuit = |c: &[u8]| [&[1, c.len() as u8][..], c].concat();
    let mut got = 0;
    for i in 0..2000u32 {
        let mut r = rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &circuit(b"attacker")).relayed_to_us(relay);
        r.chaddr = [2, 0xee, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        got += u32::from(h.send(T0, &r).is_ok());
    }
    assert_eq!(got, 10, "offers to one circuit per offer-hold period");
    for i in 0..20u8 {
        let mut r = rq(MessageType::Discover)
            .opt(opt::RELAY_AGENT_INFO, &circuit(format!("subscriber{i}").as_bytes()))
            .relayed_to_us(relay);
        r.chaddr = [2, 0x5b, 0, 0, 0, i];
        assert!(h.send(T0 + 1, &r).is_ok(), "subscriber {i} got nothing");
    }
    // After the offer-hold period the circuit may ask again.
    let mut r = rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &circuit(b"attacker")).relayed_to_us(relay);
    r.chaddr = [2, 0xee, 1, 0, 0, 0];
    assert!(h.send(T0 + 31, &r).is_ok());
}

/// One MAC behind many client ids holds at most `leases-per-mac` addresses; per-circuit and
/// per-remote-id limits count bindings the same way, and a renewal is never refused by them.
#[test]
fn lease_quotas_per_mac_circuit_and_remote_id() {
    let cfg = "[limits]\nleases-per-mac = 2\nleases-per-circuit = 3\nleases-per-remote-id = 1\noffers-per-mac = 100\n\
               [[subnet]]\nsubnet = \"198.18.1.0/24\"\n[[subnet.pool]]\nrange = \"198.18.1.100-198.18.1.149\"\n";
    let mut h = H::with(cfg);
    let mut bound = vec![];
    for i in 0..5u8 {
        let r = rq(MessageType::Discover).opt(opt::CLIENT_ID, &[0xff, i]);
        match h.send(T0, &r) {
            Ok(_) => bound.push(h.dora(T0, &r).yiaddr()),
            Err(e) => assert_eq!(e, DropReason::OverLimit),
        }
    }
    assert_eq!(bound.len(), 2, "leases per MAC");
    let relay = Ipv4Addr::new(198, 18, 1, 1);
    let mut ok = 0;
    for i in 0..5u8 {
        let info = [1, 2, b'c', b'1', 2, 2, b'r', b'0' + i];
        let mut r = rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &info).relayed_to_us(relay);
        r.chaddr = [2, 0x77, 0, 0, 1, i];
        if h.send(T0, &r).is_ok() {
            ok += 1;
            h.dora(T0, &r);
        }
    }
    assert_eq!(ok, 3, "leases per circuit");
    let info = [1, 2, b'c', b'2', 2, 2, b'r', b'0'];
    let mut r = rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &info).relayed_to_us(relay);
    r.chaddr = [2, 0x77, 0, 0, 2, 0];
    assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::OverLimit, "remote id r0 holds its one address");
    // Renewals of what is held are never limited.
    let mut renew = rq(MessageType::Request).opt(opt::CLIENT_ID, &[0xff, 0]);
    renew.ciaddr = bound[0];
    renew.src_ip = bound[0];
    renew.dst_ip = SERVER;
    assert_eq!(h.send(T0 + 100, &renew).unwrap().mtype(), MessageType::Ack);
}

/// The malformed-and-hostile suite (issue 14, item 7): each message is dropped with a reason
/// or answered correctly, counted, and changes no lease it should not; the engine never panics
/// and a reply never exceeds the frame or the client's limit.
#[test]
fn malformed_and_hostile_messages_are_dropped_or_answered_and_change_nothing() {
    let mut h = H::new();
    let victim = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
    let victim_key = ClientKey::hw(1, &CLIENT_MAC, 1);
    let stranger = |r: Rq| {
        let mut r = r;
        r.chaddr = [2, 0, 0, 0, 0, 0xbd];
        r.src_mac = r.chaddr;
        r
    };
    // Overload (52) that points into file and sname, which themselves say 52 again, with an
    // option running off the end of sname: parsed once, no loop.
    let mut over = stranger(rq(MessageType::Discover).opt(opt::OVERLOAD, &[3]));
    over.min_len = 300;
    let mut f = over.frame();
    let payload = Frame::new_checked(&f).unwrap().layout().payload;
    f[payload + 108..payload + 112].copy_from_slice(&[52, 1, 3, 255]);
    f[payload + 44..payload + 48].copy_from_slice(&[52, 1, 3, 12]);
    f[payload + 106] = 15;
    f[payload + 107] = 200;
    let n = f.len();
    f.resize(4096, 0);
    let (v, _) = h.engine.handle(T0 + 1, &h.cfg, &h.server, &mut h.db.lock(0), &mut f, n);
    assert!(matches!(v, Verdict::Reply(_) | Verdict::Drop(_)));
    // 57 with tiny values: the reply is still a whole message within 576 bytes.
    for tiny in [0u16, 1, 64, 300, 575] {
        let r = stranger(rq(MessageType::Discover).opt(opt::MAX_MESSAGE_SIZE, &tiny.to_be_bytes()));
        let o = h.send(T0 + 2, &r).unwrap();
        assert!(o.f().payload().len() <= 576 - 28, "57 = {tiny}");
        assert_eq!(o.mtype(), MessageType::Offer);
    }
    // A parameter request list of every code, twice over (concatenated, RFC 3396).
    let all: Vec<u8> = (1..=254).collect();
    let r =
        stranger(rq(MessageType::Discover).opt(opt::PARAMETER_LIST, &all[..127]).opt(opt::PARAMETER_LIST, &all[127..]));
    let o = h.send(T0 + 3, &r).unwrap();
    assert!(o.f().payload().len() <= 576 - 28);
    // Option 82 of 255 bytes from a relay, with a small 57: the echo never pushes the reply
    // past the client's limit or the frame; required options stay.
    let info: Vec<u8> = [&[1u8, 253][..], &[b'c'; 253][..]].concat();
    let r = stranger(rq(MessageType::Discover))
        .opt(opt::RELAY_AGENT_INFO, &info)
        .opt(opt::MAX_MESSAGE_SIZE, &576u16.to_be_bytes())
        .relayed_to_us(Ipv4Addr::new(198, 18, 1, 1));
    let mut buf = r.frame();
    let n = buf.len();
    buf.resize(n + 200, 0);
    let (v, _) = h.engine.handle(T0 + 4, &h.cfg, &h.server, &mut h.db.lock(0), &mut buf, n);
    match v {
        Verdict::Reply(len) => {
            assert!(len <= buf.len());
            let fr = Frame::new_checked(&buf[..len]).expect("reply");
            assert!(fr.payload().len() <= 576 - 28);
            let m = Message::parse(fr.payload()).expect("reply message");
            assert_eq!(m.single(opt::RELAY_AGENT_INFO), Some(&info[..]), "echoed whole");
        }
        Verdict::Drop(r) => assert_eq!(r, DropReason::NoRoom),
        Verdict::ReplyWhenDurable(_) => unreachable!(),
    }
    // VLAN edges: a priority tag (VID 0) is untagged traffic; VID 4095 selects no subnet.
    let mut prio = stranger(rq(MessageType::Discover));
    prio.vlans = vec![0];
    let got = h.send(T0 + 5, &prio).unwrap().yiaddr();
    assert!(h.cfg.subnets[0].contains(got), "VID 0 is untagged: {got}");
    let mut reserved_vid = stranger(rq(MessageType::Discover));
    reserved_vid.vlans = vec![4095];
    assert_eq!(h.send(T0 + 5, &reserved_vid).unwrap_err(), DropReason::NoSubnet);
    // Every truncation of a relayed frame with option 82: a counted drop, never a reply.
    let full = r.frame();
    for len in 0..full.len() {
        let mut b = full[..len].to_vec();
        b.resize(4096, 0);
        let (v, _) = h.engine.handle(T0 + 6, &h.cfg, &h.server, &mut h.db.lock(0), &mut b, len);
        assert!(matches!(v, Verdict::Drop(_)), "prefix of {len} answered");
    }
    // Through all of it the victim's binding stood.
    let l = h.db.lock(0).get(&victim_key).expect("victim");
    assert_eq!((l.addr, l.state), (victim, LeaseState::Bound));
}

/// `rate-per-circuit`: one circuit's requests beyond its rate in a second are dropped; the
/// next second, and other circuits, are served.
#[test]
fn a_circuit_over_its_rate_is_dropped_in_the_engine() {
    let cfg = "[limits]\nrate-per-circuit = 5\n[[subnet]]\nsubnet = \"198.18.1.0/24\"\n[[subnet.pool]]\nrange = \"198.18.1.100-198.18.1.149\"\n";
    let mut h = H::with(cfg);
    let relay = Ipv4Addr::new(198, 18, 1, 1);
    let from = |circuit: &[u8], i: u8| {
        let mut r =
            rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &[&[1, circuit.len() as u8][..], circuit].concat());
        r.chaddr = [2, 0x44, 0, 0, circuit.len() as u8, i];
        r.relayed_to_us(relay)
    };
    let served = (0..20).filter(|&i| h.send(T0, &from(b"busy", i)).is_ok()).count();
    assert_eq!(served, 5);
    assert_eq!(h.send(T0, &from(b"busy", 30)).unwrap_err(), DropReason::OverLimit);
    assert!(h.send(T0, &from(b"quiet", 0)).is_ok(), "another circuit");
    assert!(h.send(T0 + 1, &from(b"busy", 31)).is_ok(), "the next second");
}

/// One chaddr behind two relays (a router whose internet and IPTV VLANs share a MAC): it holds
/// a lease on each subnet, and activity on one never frees the other. With the first subnet's
/// pool of one address, a second client there gets nothing while the first holds it; both
/// leases survive a rebuild of the tables (reload, restart) and a journal replay.
#[test]
fn one_client_holds_one_lease_per_subnet_and_neither_frees_the_other() {
    let cfg = r#"
[[subnet]]
subnet = "198.18.5.0/24"
  [[subnet.pool]]
  range = "198.18.5.10-198.18.5.10"
[[subnet]]
subnet = "198.18.6.0/24"
  [[subnet.pool]]
  range = "198.18.6.10-198.18.6.19"
"#;
    let mut h = H::with(cfg);
    let (relay_a, relay_b) = (Ipv4Addr::new(198, 18, 5, 1), Ipv4Addr::new(198, 18, 6, 1));
    let on_a = h.dora(T0, &rq(MessageType::Discover).relayed_to_us(relay_a)).yiaddr();
    assert_eq!(on_a, Ipv4Addr::new(198, 18, 5, 10));
    // The same client on subnet B: DISCOVER, REQUEST, then a DISCOVER again (a reboot).
    let on_b = h.dora(T0 + 10, &rq(MessageType::Discover).relayed_to_us(relay_b)).yiaddr();
    assert!(h.cfg.subnets[1].contains(on_b), "{on_b}");
    let again = h.send(T0 + 20, &rq(MessageType::Discover).relayed_to_us(relay_b)).unwrap().yiaddr();
    assert_eq!(again, on_b);
    // Another client on subnet A: the only address is held.
    let mut other = rq(MessageType::Discover).relayed_to_us(relay_a);
    other.chaddr = [2, 0, 0, 0, 0, 0x42];
    assert_eq!(h.send(T0 + 30, &other).unwrap_err(), DropReason::NoAddress);
    // The first client still renews on A (rebinding through the relay).
    let renew = Request { ciaddr: on_a, ..rq(MessageType::Request).relayed_to_us(relay_a) };
    assert_eq!(h.send(T0 + 40, &renew).unwrap().mtype(), MessageType::Ack);
    let bound = |leases: &[Lease]| {
        let mut v: Vec<(Ipv4Addr, u32)> = leases
            .iter()
            .filter(|l| l.state == LeaseState::Bound && l.chaddr == CLIENT_MAC && l.holds(T0 + 50))
            .map(|l| (l.addr, l.subnet))
            .collect();
        v.sort();
        v
    };
    let want = vec![(on_a, 1), (on_b, 2)];
    assert_eq!(bound(&h.db.all_leases()), want);
    // Rebuilt from the records (reload, restart from a snapshot).
    let rebuilt = LeaseDb::new(&h.cfg, 2, h.db.all_leases(), T0 + 50);
    assert_eq!(bound(&rebuilt.all_leases()), want);
    // Replayed from journal records, and the engine still refuses the second client.
    let mut replay = crate::records::Replay::new();
    let mut bytes = vec![];
    for (i, l) in h.db.all_leases().into_iter().enumerate() {
        crate::records::encode(i as u64 + 1, &crate::leases::Change::Upsert(l), &mut bytes);
    }
    replay.file(&bytes);
    let (leases, conflicts) = replay.finish(T0 + 50);
    assert!(conflicts.is_empty(), "{conflicts:?}");
    h.db = LeaseDb::new(&h.cfg, 1, leases, T0 + 50);
    assert_eq!(bound(&h.db.all_leases()), want);
    assert_eq!(h.send(T0 + 60, &other).unwrap_err(), DropReason::NoAddress);
    assert_eq!(h.send(T0 + 70, &renew).unwrap().mtype(), MessageType::Ack);
}

/// A shared network is one scope: the client that holds an address on one of its subnets is
/// given that address again when it asks through another subnet of the network, and holds one
/// lease there, not two.
#[test]
fn a_shared_network_is_one_lease_scope() {
    let mut h = H::new();
    let first = h.dora(T0, &rq(MessageType::Discover).relayed_to_us(Ipv4Addr::new(198, 18, 2, 1))).yiaddr();
    let via_sibling = h.dora(T0 + 10, &rq(MessageType::Discover).relayed_to_us(Ipv4Addr::new(198, 18, 3, 1)));
    assert_eq!(via_sibling.yiaddr(), first);
    let held: Vec<Lease> =
        h.db.all_leases().into_iter().filter(|l| l.chaddr == CLIENT_MAC && l.holds(T0 + 20)).collect();
    assert_eq!(held.len(), 1, "{held:?}");
}

/// Leases written before keys had a scope (older journals and databases) are found by the
/// client that holds them: it renews its own address.
#[test]
fn unscoped_leases_of_older_records_are_renewed_by_their_client() {
    let mut h = H::new();
    let addr = Ipv4Addr::new(198, 18, 0, 105);
    let mut legacy = [0u8; 8];
    legacy[0] = 1; // the unscoped Ethernet key of record version 2: tag, htype, chaddr
    legacy[1] = 1;
    legacy[2..].copy_from_slice(&CLIENT_MAC);
    let l = Lease {
        key: ClientKey::from_bytes(&legacy).unwrap(),
        chaddr: CLIENT_MAC,
        addr,
        expires: T0 + 3600,
        state: LeaseState::Bound,
        subnet: 1,
        tags: Tags::default(),
    };
    h.db = LeaseDb::new(&h.cfg, 1, [l], T0);
    let renew = Request { ciaddr: addr, ..rq(MessageType::Request) };
    let ack = h.send(T0 + 10, &renew).unwrap();
    assert_eq!((ack.mtype(), ack.yiaddr()), (MessageType::Ack, addr));
    assert_eq!(h.send(T0 + 20, &rq(MessageType::Discover)).unwrap().yiaddr(), addr);
    assert_eq!(h.db.all_leases().len(), 1);
}

// ---- Client classes ---------------------------------------------------------------------

const CLASSED: &str = r#"
[options]
dns-servers = ["198.18.0.53"]
domain-name = "example.net"
ntp-servers = ["198.18.0.123"]
[[client-class]]
name = "iptv"
test = "substring(option[60].hex,0,6) == 'IPTVBX'"
options = { domain-name = "iptv.example.net", ntp-servers = ["198.18.0.124"], custom = [{ code = 66, text = "tftp.iptv" }] }
[[client-class]]
name = "pxe"
test = "option[93].exists and not member('iptv')"
next-server = "198.18.0.9"
boot-file-name = "pxelinux.0"
options = { domain-name = "pxe.example.net" }
[[client-class]]
name = "oui"
test = "substring(pkt4.mac, 0, 3) == 0x02aabb"
[[subnet]]
subnet = "198.18.0.0/24"
server-hostname = "boot.example.net"
options = { routers = ["198.18.0.1"], domain-name = "subnet.example.net" }
  [[subnet.pool]]
  range = "198.18.0.100-198.18.0.109"
  client-class = "iptv"
  [[subnet.pool]]
  range = "198.18.0.110-198.18.0.119"
  client-classes = ["pxe", "oui"]
  [[subnet.pool]]
  range = "198.18.0.120-198.18.0.129"
  [[subnet.reservation]]
  hw-address = "02:00:00:00:00:99"
  client-classes = ["pxe"]
  boot-file-name = "special.efi"
"#;

fn text(r: &Rp, range: std::ops::Range<usize>) -> String {
    let b = &r.f().payload()[range];
    String::from_utf8_lossy(&b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]).into_owned()
}

#[test]
fn classes_choose_the_pool_the_options_and_the_boot_fields() {
    let mut h = H::with(CLASSED);
    let prl: &[u8] = &[1, 3, 6, 15, 42, 66];
    // An IPTV box: the IPTV pool; the class's NTP servers and TFTP name, but the subnet's
    // domain name (subnet options outrank class options), and the global DNS servers.
    let stb = rq(MessageType::Discover).client([2, 0, 0, 0, 1, 1]).opt(60, b"IPTVBX-2000").prl(prl);
    let ack = h.dora(T0, &stb);
    assert!((100..110).contains(&ack.yiaddr().octets()[3]), "{}", ack.yiaddr());
    assert_eq!(ack.opt(42), Some(vec![198, 18, 0, 124]), "the class's NTP server, over the global one");
    assert_eq!(ack.opt(66), Some(b"tftp.iptv".to_vec()));
    assert_eq!(ack.opt(15), Some(b"subnet.example.net".to_vec()), "the subnet's domain name outranks the class's");
    assert_eq!(ack.opt(6), Some(vec![198, 18, 0, 53]));
    assert_eq!(text(&ack, dhcp4::field::SNAME), "boot.example.net", "the subnet's server-hostname");
    assert_eq!(text(&ack, dhcp4::field::FILE), "");
    // A PXE client: the PXE pool, next-server and boot file from its class.
    let pxe = rq(MessageType::Discover).client([2, 0, 0, 0, 1, 2]).opt(93, &[0, 7]).prl(prl);
    let ack = h.dora(T0, &pxe);
    assert!((110..120).contains(&ack.yiaddr().octets()[3]), "{}", ack.yiaddr());
    assert_eq!(ack.m().bytes()[dhcp4::field::SIADDR].to_vec(), vec![198, 18, 0, 9]);
    assert_eq!(text(&ack, dhcp4::field::FILE), "pxelinux.0");
    assert_eq!(ack.opt(42), Some(vec![198, 18, 0, 123]), "no class of its sets NTP: the global one");
    // A box that is both: `not member('iptv')` keeps it out of pxe.
    let both = rq(MessageType::Discover).client([2, 0, 0, 0, 1, 3]).opt(60, b"IPTVBX").opt(93, &[0, 7]);
    let ack = h.dora(T0, &both);
    assert!((100..110).contains(&ack.yiaddr().octets()[3]), "{}", ack.yiaddr());
    assert_eq!(text(&ack, dhcp4::field::FILE), "");
    // By MAC prefix: the second pool too.
    let oui = rq(MessageType::Discover).client([2, 0xaa, 0xbb, 0, 0, 1]);
    assert!((110..120).contains(&h.dora(T0, &oui).yiaddr().octets()[3]));
    // An unknown device: the unguarded pool only.
    let other = rq(MessageType::Discover).client([2, 0, 0, 0, 1, 4]).prl(prl);
    let ack = h.dora(T0, &other);
    assert!((120..130).contains(&ack.yiaddr().octets()[3]), "{}", ack.yiaddr());
    assert_eq!(ack.opt(66), None);
    assert_eq!(ack.m().bytes()[dhcp4::field::SIADDR].to_vec(), vec![0; 4]);
    // A reservation puts its host in pxe; its own boot file outranks the class's.
    let known = rq(MessageType::Discover).client([2, 0, 0, 0, 0, 0x99]);
    let ack = h.dora(T0, &known);
    assert!((110..120).contains(&ack.yiaddr().octets()[3]), "{}", ack.yiaddr());
    assert_eq!(text(&ack, dhcp4::field::FILE), "special.efi");
    assert_eq!(ack.m().bytes()[dhcp4::field::SIADDR].to_vec(), vec![198, 18, 0, 9], "next-server from the class");
}

#[test]
fn a_client_out_of_its_pools_class_is_naked_on_renewal_and_a_full_guarded_pool_is_not_overflowed() {
    let mut h = H::with(CLASSED);
    let stb = rq(MessageType::Discover).client([2, 0, 0, 0, 2, 1]).opt(60, b"IPTVBX");
    let addr = h.dora(T0, &stb).yiaddr();
    // The same client renews without its vendor class: no longer an IPTV box.
    let renew = Request { ciaddr: addr, ..rq(MessageType::Request).client([2, 0, 0, 0, 2, 1]) };
    assert_eq!(h.send(T0 + 10, &renew).expect("an answer").mtype(), MessageType::Nak);
    // With it, it is ACKed.
    let renew = renew.opt(60, b"IPTVBX");
    assert_eq!(h.send(T0 + 11, &renew).expect("an answer").mtype(), MessageType::Ack);
    // Nine more IPTV boxes fill the IPTV pool (ten addresses); the next one gets an address
    // of the pool open to every client, as Kea gives it, never one of the PXE pool.
    for i in 2..11u8 {
        let d = rq(MessageType::Discover).client([2, 0, 0, 0, 2, i]).opt(60, b"IPTVBX");
        let r = h.send(T0, &d);
        assert!(r.as_ref().is_ok_and(|o| (100..110).contains(&o.yiaddr().octets()[3])), "box {i}: {r:?}");
    }
    let d = rq(MessageType::Discover).client([2, 0, 0, 0, 2, 11]).opt(60, b"IPTVBX");
    assert_eq!(h.send(T0, &d).map(|r| r.yiaddr()), Ok(Ipv4Addr::new(198, 18, 0, 120)));
    // A class-only configuration: with the open pool full too, an IPTV box gets nothing.
    let only = CLASSED.replace(
        "  [[subnet.pool]]
  range = \"198.18.0.120-198.18.0.129\"
",
        "",
    );
    let mut h = H::with(&only);
    for i in 0..10u8 {
        let d = rq(MessageType::Discover).client([2, 0, 0, 0, 3, i]).opt(60, b"IPTVBX");
        assert!(h.send(T0, &d).is_ok(), "box {i}");
    }
    let d = rq(MessageType::Discover).client([2, 0, 0, 0, 3, 10]).opt(60, b"IPTVBX");
    assert_eq!(h.send(T0, &d).map(|r| r.yiaddr()), Err(DropReason::NoAddress), "the PXE pool is not an IPTV box's");
    let other = rq(MessageType::Discover).client([2, 0, 0, 0, 3, 11]);
    assert_eq!(h.send(T0, &other).map(|r| r.yiaddr()), Err(DropReason::NoAddress), "nothing open to unknown devices");
}

#[test]
fn a_class_sends_its_vendors_options_43_and_125() {
    let src = CLASSED.replace(
        "[[client-class]]\nname = \"oui\"",
        "[[client-class]]\nname = \"cpe\"\ntest = \"option[60].hex == 'dslforum.org'\"\n\
         options = { vendor-encapsulated = [{ code = 1, text = \"http://acs\" }], vivso = [{ enterprise = 3561, suboptions = [{ code = 11, text = \"x\" }] }] }\n\
         [[client-class]]\nname = \"oui\"",
    );
    let mut h = H::with(&src);
    let cpe = rq(MessageType::Discover).client([2, 0, 0, 0, 4, 1]).opt(60, b"dslforum.org").prl(&[1, 43, 125]);
    let ack = h.dora(T0, &cpe);
    assert_eq!(ack.opt(43), Some([&[1, 10][..], b"http://acs"].concat()));
    assert_eq!(ack.opt(125), Some(vec![0, 0, 0x0d, 0xe9, 3, 11, 1, b'x']));
    // Another vendor gets neither.
    let other = rq(MessageType::Discover).client([2, 0, 0, 0, 4, 2]).opt(60, b"other").prl(&[1, 43, 125]);
    let ack = h.dora(T0, &other);
    assert_eq!((ack.opt(43), ack.opt(125)), (None, None));
}

/// The lease keeps the name its client gives: option 81's domain name (canonical wire form
/// with the E flag, ASCII without) before option 12, journaled only when it changes, cleared
/// when the client stops giving one; an OFFER keeps nothing.
#[test]
fn the_lease_keeps_the_clients_host_name() {
    let mut h = H::new();
    let key = ClientKey::hw(1, &CLIENT_MAC, 1);
    let named = |h: &H| h.db.lock(0).attr(Attr::Name, &key).map(<[u8]>::to_vec);
    let names_journaled = |h: &H| {
        h.db.lock(0)
            .take_changes()
            .into_iter()
            .filter(|c| matches!(c, crate::leases::Change::Attr(Attr::Name, ..)))
            .count()
    };
    let base = rq(MessageType::Discover).opt(opt::HOSTNAME, b"cpe-7");
    h.send(T0, &base).expect("offer");
    assert_eq!(named(&h), None, "an offer keeps no name");
    let ack = h.dora(T0, &base);
    assert_eq!(named(&h).as_deref(), Some(&b"cpe-7"[..]));
    assert_eq!(h.engine.kept_name(), Some(&b"cpe-7"[..]), "the forensic log's host name");
    assert_eq!(names_journaled(&h), 1);
    // A renewal with the same name journals none; one with an FQDN (E flag, wire form) takes it.
    let renew = |extra: Option<(u8, &[u8])>| {
        let mut r = rq(MessageType::Request);
        r.ciaddr = ack.yiaddr();
        if let Some((code, v)) = extra {
            r = r.opt(code, v);
        }
        r
    };
    h.send(T0 + 10, &renew(Some((opt::HOSTNAME, b"cpe-7")))).expect("ack");
    assert_eq!(names_journaled(&h), 0, "an unchanged name is not journaled again");
    let fqdn = [&[0x05, 0, 0][..], b"\x05cpe-7\x07example\x03net\x00"].concat();
    h.send(T0 + 20, &renew(Some((opt::CLIENT_FQDN, &fqdn)))).expect("ack");
    assert_eq!(named(&h).as_deref(), Some(&b"cpe-7.example.net"[..]));
    let ascii = [&[0x01, 0, 0][..], b"cpe-7.example.org."].concat();
    h.send(T0 + 30, &renew(Some((opt::CLIENT_FQDN, &ascii)))).expect("ack");
    assert_eq!(named(&h).as_deref(), Some(&b"cpe-7.example.org"[..]));
    assert_eq!(names_journaled(&h), 2);
    h.send(T0 + 40, &renew(None)).expect("ack");
    assert_eq!(named(&h), None, "a client that gives no name any more has none");
    assert_eq!(h.engine.kept_name(), None);
    assert_eq!(names_journaled(&h), 1, "the clearing is journaled");
}
