//! The DHCPv6 view and writer against the `dhcproto` crate's v6 side: random client messages
//! encoded by dhcproto read the same through [`dhcp_xdp_core::dhcp6`], relayed ones read back
//! what was written around them, replies the writer writes decode the same in dhcproto; random
//! bytes never make the view panic.

use std::net::Ipv6Addr;

use dhcp_xdp_core::dhcp6::{self, Message, Relayed};
use dhcproto::{
    Decodable, Decoder, Encodable, Encoder,
    v6::{self, DhcpOption, MessageType, OptionCode},
};
use proptest::prelude::*;

/// An IA_NA as dhcproto writes it: IAID, T1, T2 and maybe an address with its lifetimes.
type IaNa = (u32, u32, u32, Option<([u8; 16], u32, u32)>);

fn encode(m: &v6::Message) -> Vec<u8> {
    let mut out = vec![];
    m.encode(&mut Encoder::new(&mut out)).expect("dhcproto encodes");
    out
}

fn message(kind: MessageType, xid: u32, duid: &[u8], ias: &[IaNa], oro: &[u16], elapsed: u16) -> v6::Message {
    let mut m = v6::Message::new(kind);
    m.set_xid_num(xid);
    let opts = m.opts_mut();
    opts.insert(DhcpOption::ClientId(duid.to_vec()));
    opts.insert(DhcpOption::ElapsedTime(elapsed));
    if !oro.is_empty() {
        opts.insert(DhcpOption::ORO(v6::ORO { opts: oro.iter().map(|&c| OptionCode::from(c)).collect() }));
    }
    for &(id, t1, t2, addr) in ias {
        let mut sub = v6::DhcpOptions::new();
        if let Some((a, preferred_life, valid_life)) = addr {
            sub.insert(DhcpOption::IAAddr(v6::IAAddr {
                addr: Ipv6Addr::from(a),
                preferred_life,
                valid_life,
                opts: v6::DhcpOptions::new(),
            }));
        }
        opts.insert(DhcpOption::IANA(v6::IANA { id, t1, t2, opts: sub }));
    }
    m
}

fn kind() -> impl Strategy<Value = (MessageType, u8)> {
    prop_oneof![
        Just((MessageType::Solicit, dhcp6::msg::SOLICIT)),
        Just((MessageType::Request, dhcp6::msg::REQUEST)),
        Just((MessageType::Renew, dhcp6::msg::RENEW)),
        Just((MessageType::Rebind, dhcp6::msg::REBIND)),
        Just((MessageType::Release, dhcp6::msg::RELEASE)),
        Just((MessageType::InformationRequest, dhcp6::msg::INFORMATION_REQUEST)),
    ]
}

fn ia() -> impl Strategy<Value = IaNa> {
    (any::<u32>(), any::<u32>(), any::<u32>(), proptest::option::of((any::<[u8; 16]>(), any::<u32>(), any::<u32>())))
}

proptest! {
    #[test]
    fn client_messages_read_as_dhcproto_wrote_them(
        (kind, code) in kind(),
        xid in 0u32..(1 << 24),
        duid in prop::collection::vec(any::<u8>(), 2..40),
        ias in prop::collection::vec(ia(), 0..4),
        oro in prop::collection::vec(prop_oneof![Just(23u16), Just(24), Just(17), Just(39), Just(82)], 0..5),
        elapsed in any::<u16>(),
    ) {
        let theirs = message(kind, xid, &duid, &ias, &oro, elapsed);
        let bytes = encode(&theirs);
        let m = Message::parse(&bytes).expect("the view reads what dhcproto wrote");
        prop_assert_eq!(m.kind(), code);
        prop_assert_eq!(m.transaction_id(), xid);
        prop_assert_eq!(m.client_id(), Some(&duid[..]));
        prop_assert_eq!(m.elapsed(), Some(elapsed));
        prop_assert_eq!(m.requested().collect::<Vec<_>>(), oro);
        // dhcproto keeps its options sorted (IA_NAs among themselves too): compare as sets.
        let mut ours: Vec<IaNa> = m
            .ia_nas()
            .map(|i| {
                let a = i.addresses().next().map(|a| (a.addr.octets(), a.preferred, a.valid));
                (i.iaid, i.t1, i.t2, a)
            })
            .collect();
        let mut ias = ias;
        ours.sort_unstable();
        ias.sort_unstable();
        prop_assert_eq!(ours, ias);
    }

    /// dhcproto 0.15 reads a Relay Message option's content as another relay message, so the
    /// relay layer here is written by hand around a client message dhcproto wrote.
    #[test]
    fn relayed_messages_read_back_what_was_written(
        xid in 0u32..(1 << 24),
        duid in prop::collection::vec(any::<u8>(), 2..40),
        link in any::<[u8; 16]>(),
        peer in any::<[u8; 16]>(),
        interface_id in prop::collection::vec(any::<u8>(), 1..20),
        hops in 1usize..=dhcp6::MAX_HOPS,
    ) {
        let mut bytes = encode(&message(MessageType::Solicit, xid, &duid, &[], &[], 0));
        for hop in 0..hops {
            let mut r = vec![dhcp6::msg::RELAY_FORW, hop as u8];
            r.extend_from_slice(&link);
            r.extend_from_slice(&peer);
            r.extend_from_slice(&dhcp6::opt::INTERFACE_ID.to_be_bytes());
            r.extend_from_slice(&(interface_id.len() as u16).to_be_bytes());
            r.extend_from_slice(&interface_id);
            r.extend_from_slice(&dhcp6::opt::RELAY_MSG.to_be_bytes());
            r.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            r.extend_from_slice(&bytes);
            bytes = r;
        }
        let r = Relayed::parse(&bytes).expect("the view reads it");
        prop_assert_eq!(r.hops().count(), hops);
        let hop = r.first_relay().expect("relayed");
        prop_assert_eq!(hop.hop_count, 0);
        prop_assert_eq!(hop.link, Ipv6Addr::from(link));
        prop_assert_eq!(hop.peer, Ipv6Addr::from(peer));
        prop_assert_eq!(hop.interface_id(), Some(&interface_id[..]));
        prop_assert_eq!(r.message.transaction_id(), xid);
        prop_assert_eq!(r.message.client_id(), Some(&duid[..]));
    }

    /// What the writer writes, dhcproto reads the same.
    #[test]
    fn replies_the_writer_writes_read_in_dhcproto(
        xid in 0u32..(1 << 24),
        duid in prop::collection::vec(any::<u8>(), 2..40),
        (iaid, t1, t2) in (any::<u32>(), any::<u32>(), any::<u32>()),
        (addr, preferred, valid) in (any::<[u8; 16]>(), any::<u32>(), any::<u32>()),
    ) {
        let mut buf = [0u8; 512];
        let mut w = dhcp6::Writer::message(&mut buf, dhcp6::msg::REPLY, xid);
        w.option(dhcp6::opt::CLIENTID, &duid);
        w.open_ia(dhcp6::IaKind::Na, iaid, t1, t2);
        w.ia_addr(&dhcp6::IaAddr { addr: Ipv6Addr::from(addr), preferred, valid });
        w.close();
        let n = w.finish().expect("fits");
        let theirs = v6::Message::decode(&mut Decoder::new(&buf[..n])).expect("dhcproto decodes our reply");
        prop_assert_eq!(theirs.msg_type(), MessageType::Reply);
        prop_assert_eq!(theirs.xid_num(), xid);
        let mut client = None;
        let mut ia = None;
        for o in theirs.opts().iter() {
            match o {
                DhcpOption::ClientId(d) => client = Some(d.clone()),
                DhcpOption::IANA(i) => ia = Some(i.clone()),
                _ => {}
            }
        }
        prop_assert_eq!(client, Some(duid));
        let ia = ia.expect("an IA_NA");
        prop_assert_eq!((ia.id, ia.t1, ia.t2), (iaid, t1, t2));
        let a = ia.opts.iter().find_map(|o| if let DhcpOption::IAAddr(a) = o { Some(a.clone()) } else { None });
        let a = a.expect("an IA address");
        prop_assert_eq!((a.addr, a.preferred_life, a.valid_life), (Ipv6Addr::from(addr), preferred, valid));
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(r) = Relayed::parse(&bytes) {
            let _ = (r.hops().count(), r.message.client_id(), r.message.requested().count());
            for ia in r.message.ia_nas().chain(r.message.ia_pds()) {
                let _ = (ia.addresses().count(), ia.prefixes().count());
            }
        }
    }
}
