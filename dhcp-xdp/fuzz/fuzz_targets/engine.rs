//! Frame → engine: whatever the bytes, the engine must not panic, and a reply must parse.
#![no_main]

use std::{net::Ipv4Addr, sync::OnceLock};

use dhcp_xdp::{
    config::Config,
    dhcp::Message,
    engine::{Engine, ServerIdentity},
    handler::Verdict,
    iface::Ipv4Net,
    leases::LeaseDb,
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
        let server = ServerIdentity { mac: [2, 0, 0, 0, 0, 1], addrs: vec![Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 1), prefix: 24 }] };
        State { cfg, db, server }
    })
}

fuzz_target!(|data: &[u8]| {
    // First byte: the clock and shard; the rest: the frame. State carries over between runs,
    // so sequences of messages are explored too.
    let Some((&t, frame)) = data.split_first() else { return };
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
