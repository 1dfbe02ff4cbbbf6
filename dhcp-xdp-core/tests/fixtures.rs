//! Byte fixtures of real client packets (captured with tcpdump in a namespace from dhclient,
//! udhcpc and dhcpcd talking to this server), parsed, answered, and decoded differentially
//! against the `dhcproto` crate.

use std::net::Ipv4Addr;

use dhcp_xdp_core::{
    config::Config,
    dhcp4::{Message, MessageType, opt},
    engine4::{Engine, ServerIdentity},
    leases::LeaseDb,
    net::Ipv4Net,
    verdict::Verdict,
    wire::Frame,
};
use dhcproto::{Decodable, Decoder, v4};

mod common;
use common::differential;

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{name}.bin"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const CLIENTS: [&str; 3] = ["dhclient", "udhcpc", "dhcpcd"];

#[test]
fn real_client_packets_parse_and_agree_with_dhcproto() {
    for c in CLIENTS {
        for kind in ["discover", "request"] {
            let f = fixture(&format!("{c}-{kind}"));
            let frame = Frame::new_checked(&f).unwrap_or_else(|e| panic!("{c}-{kind}: {e}"));
            assert_eq!(frame.dst_port(), 67);
            let m = Message::parse(frame.payload()).expect("message");
            let want = if kind == "discover" { MessageType::Discover } else { MessageType::Request };
            assert_eq!(m.message_type(), Some(want), "{c}-{kind}");
            differential(frame.payload());
        }
    }
}

#[test]
fn real_client_packets_are_answered() {
    for c in CLIENTS {
        // The pool starts at the address the captured REQUEST asks for, so a fresh server
        // offers exactly that one.
        let req = fixture(&format!("{c}-request"));
        let asked = Message::parse(Frame::new_checked(&req).expect("frame").payload())
            .expect("message")
            .ip_option(opt::REQUESTED_IP)
            .expect("captured REQUEST carries option 50");
        let cfg = Config::parse(
            "t",
            &format!("[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"{asked}-198.18.0.200\"\n"),
        )
        .expect("config");
        let db = LeaseDb::new(&cfg, 1, [], 1_000);
        let server = ServerIdentity {
            mac: [2, 0, 0, 0, 0, 1],
            addrs: vec![Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 1), prefix: 24 }],
        };
        let mut engine = Engine::new();
        let mut expect = [MessageType::Offer, MessageType::Ack].into_iter();
        for kind in ["discover", "request"] {
            let mut buf = fixture(&format!("{c}-{kind}"));
            let len = buf.len();
            buf.resize(4096, 0);
            let mut g = db.lock(0);
            let (v, _) = engine.handle(1_000, &cfg, &server, &mut g, &mut buf, len);
            let Verdict::Reply(n) = v else { panic!("{c}-{kind}: {v:?}") };
            let reply = Frame::new_checked(&buf[..n]).expect("reply frame");
            let m = Message::parse(reply.payload()).expect("reply message");
            assert_eq!(m.message_type(), expect.next(), "{c}-{kind}");
            assert_eq!(m.yiaddr(), asked, "{c}-{kind}");
            differential_reply(reply.payload());
        }
    }
}

/// dhcproto decodes our replies too.
fn differential_reply(bootp: &[u8]) {
    let theirs = v4::Message::decode(&mut Decoder::new(bootp)).expect("dhcproto decodes our reply");
    let ours = Message::parse(bootp).expect("ours");
    assert_eq!(theirs.yiaddr(), ours.yiaddr());
    assert_eq!(u8::from(theirs.opcode()), 2);
}
