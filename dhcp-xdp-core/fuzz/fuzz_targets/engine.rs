//! Frame → engine: whatever the bytes, the engine must not panic, and a reply must parse.
#![no_main]

use std::{net::Ipv4Addr, sync::OnceLock};

use dhcp_xdp_core::{
    config::Config,
    dhcp4::Message,
    engine4::{Engine, ServerIdentity},
    leases::LeaseDb,
    net::Ipv4Net,
    testing::Request,
    verdict::Verdict,
    wire::Frame,
};
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"
[server]
bootp = "reservations"
[[subnet]]
subnet = "198.18.0.0/24"
  [[subnet.pool]]
  range = "198.18.0.10-198.18.0.40"
  [[subnet.reservation]]
  hw-address = "02:00:00:00:00:99"
  ip = "198.18.0.5"
[[subnet]]
subnet = "198.18.1.0/24"
shared-network = "x"
authoritative = false
  [[subnet.pool]]
  range = "198.18.1.10-198.18.1.12"
  [[subnet.reservation]]
  circuit-id = "c1"
  ip = "198.18.1.5"
[[subnet]]
subnet = "198.18.2.0/24"
shared-network = "x"
vlan = [10]
  [[subnet.pool]]
  range = "198.18.2.10-198.18.2.12"
"#;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const RELAY: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);

struct State {
    cfg: Config,
    db: LeaseDb,
    server: ServerIdentity,
}

fn state() -> &'static State {
    static S: OnceLock<State> = OnceLock::new();
    S.get_or_init(|| {
        let cfg = Config::parse("fuzz", CONFIG).expect("config");
        let db = LeaseDb::new(&cfg, 2, [], 1_000);
        let server = ServerIdentity { mac: [2, 0, 0, 0, 0, 1], addrs: vec![Ipv4Net { addr: SERVER, prefix: 24 }] };
        State { cfg, db, server }
    })
}

fuzz_target!(|data: &[u8]| {
    // First byte: the clock and shard, and (top bit) whether the rest is a whole frame or the
    // options of a well-formed request built around them (which reaches the engine's decisions
    // far more often than random headers do). State carries over between runs, so sequences of
    // messages are explored too.
    let Some((&t, rest)) = data.split_first() else { return };
    let built;
    let frame = if t & 0x80 == 0 {
        rest
    } else {
        let Some((&chaddr_last, options)) = rest.split_first() else { return };
        let r = Request::bootp_only().client([2, 0, 0, 0, 0, chaddr_last]).raw_options(options);
        built = if chaddr_last & 1 == 0 { r.frame() } else { r.relayed(RELAY, [2, 0, 0, 0, 0, 0x77], SERVER).frame() };
        &built
    };
    let s = state();
    let mut buf = vec![0u8; 4096];
    let len = frame.len().min(buf.len());
    buf[..len].copy_from_slice(&frame[..len]);
    let mut engine = Engine::new();
    let now = 1_000 + u32::from(t) * 7;
    let mut g = s.db.lock(usize::from(t & 1));
    let (v, _) = engine.handle(now, &s.cfg, &s.server, &mut g, &mut buf, len);
    g.sweep(now, 4);
    if let Verdict::Reply(n) = v {
        let f = Frame::new_checked(&buf[..n]).expect("reply frame parses");
        assert!(f.udp_checksum_ok() && f.ipv4_checksum_ok());
        Message::parse(f.payload()).expect("reply message parses");
    }
});
