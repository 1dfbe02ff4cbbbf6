//! Shared by the integration tests: differential decoding against `dhcproto`.
#![allow(dead_code, reason = "each test binary uses part of this module")]

use dhcp_xdp_core::dhcp4::{Message, opt};
use dhcproto::{
    Decodable, Decoder,
    v4::{self, DhcpOption, OptionCode},
};

/// Our decode and dhcproto's agree on every field and option both understand.
pub fn differential(bootp: &[u8]) {
    let ours = Message::parse(bootp).expect("our parser accepts it");
    let theirs = v4::Message::decode(&mut Decoder::new(bootp)).expect("dhcproto accepts it");
    assert_eq!(ours.xid(), theirs.xid());
    assert_eq!(ours.flags(), u16::from(theirs.flags()));
    assert_eq!(ours.ciaddr(), theirs.ciaddr());
    assert_eq!(ours.yiaddr(), theirs.yiaddr());
    assert_eq!(ours.giaddr(), theirs.giaddr());
    assert_eq!(ours.chaddr(), theirs.chaddr());
    let t = theirs.opts();
    let mt = t.get(OptionCode::MessageType).map(|o| match o {
        DhcpOption::MessageType(m) => u8::from(*m),
        _ => 0,
    });
    assert_eq!(ours.message_type().map(|m| m as u8), mt);
    for code in [opt::REQUESTED_IP, opt::SERVER_ID] {
        let theirs_ip = t.get(OptionCode::from(code)).and_then(|o| match o {
            DhcpOption::RequestedIpAddress(a) | DhcpOption::ServerIdentifier(a) => Some(*a),
            _ => None,
        });
        assert_eq!(ours.ip_option(code), theirs_ip, "option {code}");
    }
    let prl = t.get(OptionCode::ParameterRequestList).map(|o| match o {
        DhcpOption::ParameterRequestList(v) => v.iter().map(|c| u8::from(*c)).collect::<Vec<u8>>(),
        _ => vec![],
    });
    let mut scratch = [0u8; 600];
    assert_eq!(ours.option(opt::PARAMETER_LIST, &mut scratch).map(<[u8]>::to_vec), prl);
    let cid = t.get(OptionCode::ClientIdentifier).map(|o| match o {
        DhcpOption::ClientIdentifier(v) => v.clone(),
        _ => vec![],
    });
    assert_eq!(ours.option(opt::CLIENT_ID, &mut scratch).map(<[u8]>::to_vec), cid);
    let host = t.get(OptionCode::Hostname).map(|o| match o {
        DhcpOption::Hostname(h) => h.as_bytes().to_vec(),
        _ => vec![],
    });
    assert_eq!(ours.single(opt::HOSTNAME).map(<[u8]>::to_vec), host);
    let max = t.get(OptionCode::MaxMessageSize).map(|o| match o {
        DhcpOption::MaxMessageSize(m) => *m,
        _ => 0,
    });
    assert_eq!(ours.single(opt::MAX_MESSAGE_SIZE).map(|v| u16::from_be_bytes([v[0], v[1]])), max);
}
