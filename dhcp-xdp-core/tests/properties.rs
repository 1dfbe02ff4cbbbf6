//! Property tests: random messages decode the same as `dhcproto` does, and every reply the
//! engine emits parses back cleanly and obeys RFC 2131 §4.1 addressing.

use std::net::Ipv4Addr;

use dhcp_xdp_core::{
    config::Config,
    dhcp4::{FLAG_BROADCAST, Message, MessageType},
    engine4::{Engine, ServerIdentity},
    leases::LeaseDb,
    net::Ipv4Net,
    testing::Request,
    verdict::Verdict,
    wire::Frame,
};
use proptest::prelude::*;

mod common;

fn option() -> impl Strategy<Value = (u8, Vec<u8>)> {
    prop_oneof![
        (1u8..=8).prop_map(|t| (53u8, vec![t])),
        any::<[u8; 4]>().prop_map(|a| (50u8, a.to_vec())),
        any::<[u8; 4]>().prop_map(|a| (54u8, a.to_vec())),
        prop::collection::vec(1u8..=254, 1..40).prop_map(|v| (55u8, v)),
        prop::collection::vec(any::<u8>(), 2..40).prop_map(|v| (61u8, v)),
        "[a-z0-9-]{1,30}".prop_map(|h| (12u8, h.into_bytes())),
        (576u16..=1500).prop_map(|m| (57u8, m.to_be_bytes().to_vec())),
        (224u8..=254, prop::collection::vec(any::<u8>(), 0..30)),
    ]
}

/// A BOOTREQUEST from `chaddr` carrying the first occurrence of each option code (dhcproto keeps
/// the last of duplicates where RFC 3396 joins them).
fn request(flags: u16, ciaddr: [u8; 4], giaddr: [u8; 4], chaddr: [u8; 6], opts: &[(u8, Vec<u8>)]) -> Request {
    let mut r = Request {
        flags,
        ciaddr: ciaddr.into(),
        giaddr: giaddr.into(),
        end: true,
        ..Request::bootp_only().client(chaddr)
    };
    let mut seen = std::collections::HashSet::new();
    for (c, v) in opts {
        if seen.insert(*c) {
            r = r.opt(*c, v);
        }
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_agrees_with_dhcproto(
        flags in any::<u16>(), ciaddr in any::<[u8; 4]>(), giaddr in any::<[u8; 4]>(), chaddr in any::<[u8; 6]>(),
        opts in prop::collection::vec(option(), 0..10),
    ) {
        let b = request(flags & 0x8000, ciaddr, giaddr, chaddr, &opts).bootp();
        common::differential(&b);
    }

    #[test]
    fn random_bytes_never_panic_the_parser(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
        poke(&bytes);
    }

    /// A valid fixed header and magic cookie, then random option bytes (random codes and
    /// lengths, overloads, pads, missing ends): what the option walk and the accessors see.
    #[test]
    fn random_options_never_panic_the_parser(
        header in prop::collection::vec(any::<u8>(), 236),
        options in prop::collection::vec(prop_oneof![any::<u8>(), Just(0u8), Just(255), Just(52), Just(53), Just(82)], 0..600),
    ) {
        let mut b = header;
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b.extend_from_slice(&[99, 130, 83, 99]);
        b.extend_from_slice(&options);
        let parsed = Message::parse(&b).is_ok();
        poke(&b);
        // A well-formed walk (the options with a valid length each, then the end) must parse.
        let mut walked = b[..240].to_vec();
        for chunk in options.chunks(7).filter(|c| !matches!(c[0], 0 | 52 | 255)) {
            walked.push(chunk[0]);
            walked.push((chunk.len() - 1) as u8);
            walked.extend_from_slice(&chunk[1..]);
        }
        walked.push(255);
        prop_assert!(Message::parse(&walked).is_ok(), "a well-formed message was refused (raw parse: {})", parsed);
        poke(&walked);
    }
}

/// Parses `bytes` and reads every option every way.
fn poke(bytes: &[u8]) {
    if let Ok(m) = Message::parse(bytes) {
        let mut scratch = [0u8; 1024];
        for code in 0..=255u8 {
            let _ = m.option(code, &mut scratch);
            let _ = m.single(code);
        }
        let _ = m.message_type();
    }
}

const CONFIG: &str = r#"
[[subnet]]
subnet = "198.18.0.0/24"
  [[subnet.pool]]
  range = "198.18.0.10-198.18.0.30"
[[subnet]]
subnet = "198.18.1.0/24"
  [[subnet.pool]]
  range = "198.18.1.10-198.18.1.200"
"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn every_reply_parses_and_follows_rfc2131_addressing(
        mtype in prop_oneof![Just(1u8), Just(3), Just(4), Just(7), Just(8)],
        broadcast in any::<bool>(),
        ci in prop_oneof![Just(0u8), 10u8..40],
        relayed in any::<bool>(),
        requested in proptest::option::of(5u8..40),
        server_id in proptest::option::of(prop_oneof![Just([198u8, 18, 0, 1]), Just([198, 18, 0, 9])]),
        chaddr_last in 0u8..8,
        extra in prop::collection::vec(option(), 0..6),
        clients_before in 0usize..25,
    ) {
        let cfg = Config::parse("t", CONFIG).expect("config");
        let db = LeaseDb::new(&cfg, 1, [], 1_000);
        let server = ServerIdentity { mac: [2, 0, 0, 0, 0, 1], addrs: vec![Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 1), prefix: 24 }] };
        let mut engine = Engine::new();
        // Some other clients first, to fill the pool to a random level.
        for i in 0..clients_before {
            let mut f = request(0, [0; 4], [0; 4], [2, 9, 9, 0, 0, i as u8], &[(53, vec![1])]).frame();
            let n = f.len();
            f.resize(4096, 0);
            let _ = engine.handle(1_000, &cfg, &server, &mut db.lock(0), &mut f, n);
        }
        let giaddr = if relayed { [198, 18, 1, 1] } else { [0; 4] };
        let ciaddr = if ci == 0 { [0; 4] } else { [198, 18, 0, ci] };
        let mut opts = vec![(53u8, vec![mtype])];
        if let Some(r) = requested { opts.push((50, vec![198, 18, 0, r])); }
        if let Some(s) = server_id { opts.push((54, s.to_vec())); }
        opts.extend(extra.into_iter().filter(|(c, _)| *c != 53));
        let chaddr = [2, 0, 0, 0, 0, chaddr_last];
        let src_mac = if relayed { [2, 7, 7, 7, 7, 7] } else { chaddr };
        let src_ip = if relayed { Ipv4Addr::from(giaddr) } else { Ipv4Addr::from(ciaddr) };
        let r = request(if broadcast { FLAG_BROADCAST } else { 0 }, ciaddr, giaddr, chaddr, &opts);
        let mut f = Request { src_mac, src_ip, ..r }.frame();
        let n = f.len();
        f.resize(4096, 0);
        let (v, _) = engine.handle(1_001, &cfg, &server, &mut db.lock(0), &mut f, n);
        // What RFC 2131 says must be answered is answered: a DISCOVER while its pool has room
        // (subnet 0 holds 21 addresses, subnet 1 191), an INFORM with ciaddr.
        let must_answer = (mtype == 1 && (relayed || clients_before < 20)) || (mtype == 8 && ci != 0);
        prop_assert!(!must_answer || matches!(v, Verdict::Reply(_)), "no answer: {:?}", v);
        if let Verdict::Reply(len) = v {
            let r = Frame::new_checked(&f[..len]).expect("reply frame parses");
            prop_assert!(r.udp_checksum_ok() && r.ipv4_checksum_ok());
            let m = Message::parse(r.payload()).expect("reply message parses");
            prop_assert_eq!(m.op(), 2);
            prop_assert_eq!(m.xid(), 0x1234_5678);
            prop_assert_eq!(m.chaddr6(), chaddr);
            let max = opts.iter().find(|(c, _)| *c == 57).map(|(_, v)| usize::from(u16::from_be_bytes([v[0], v[1]])) - 28).unwrap_or(548);
            prop_assert!(r.payload().len() <= max.max(300), "reply of {} bytes over the client's limit {}", r.payload().len(), max);
            let nak = m.message_type() == Some(MessageType::Nak);
            let (dst_ip, dst_port, dst_mac) = (r.dst_ip(), r.dst_port(), r.dst_mac());
            if relayed {
                prop_assert_eq!((dst_ip, dst_port, dst_mac), (Ipv4Addr::from(giaddr), 67, src_mac));
                if nak { prop_assert!(m.flags() & FLAG_BROADCAST != 0); }
            } else if nak {
                prop_assert_eq!((dst_ip, dst_mac), (Ipv4Addr::BROADCAST, [0xff; 6]));
            } else if ci != 0 {
                prop_assert_eq!((dst_ip, dst_port, dst_mac), (Ipv4Addr::from(ciaddr), 68, src_mac));
            } else if broadcast || m.yiaddr().is_unspecified() {
                prop_assert_eq!((dst_ip, dst_mac), (Ipv4Addr::BROADCAST, [0xff; 6]));
            } else {
                prop_assert_eq!((dst_ip, dst_mac), (m.yiaddr(), chaddr));
            }
            if matches!(m.message_type(), Some(MessageType::Offer | MessageType::Ack)) && mtype != 8 {
                prop_assert!(cfg.subnets.iter().any(|s| s.pools.iter().any(|p| p.contains(m.yiaddr()))));
            }
        }
    }
}
