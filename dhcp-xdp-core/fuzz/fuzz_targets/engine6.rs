//! DHCPv6 message → engine6: whatever the bytes (direct or inside relay layers), the engine
//! must not panic, and a reply must be a whole ADVERTISE or REPLY (inside Relay-Repl layers).
#![no_main]

use std::sync::Mutex;

use dhcp_xdp_core::{
    config::Config,
    dhcp6::{Message, Options, msg, opt},
    engine6::{Counter6, Engine6, Server6},
    leases::v6::Table6,
};
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"
[limits]
leases-per-duid = 4
[[subnet6]]
subnet = "2001:db8:1::/64"
options = { dns-servers = ["2001:db8::53"], domain-search = ["example.net"] }
rapid-commit = true
  [[subnet6.pool]]
  range = "2001:db8:1::10-2001:db8:1::1f"
  [[subnet6.pd-pool]]
  prefix = "2001:db8:100::"
  prefix-len = 56
  delegated-len = 60
  [[subnet6.reservation]]
  duid = "00:03:00:01:02:00:00:00:00:99"
  ip-addresses = ["2001:db8:1::99"]
[[subnet6]]
subnet = "2001:db8:2::/64"
interface-id = "olt1"
  [[subnet6.pool]]
  range = "2001:db8:2::10-2001:db8:2::11"
"#;

struct State {
    cfg: Config,
    server: Server6,
    table: Table6,
    engine: Engine6,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut g = STATE.lock().unwrap();
    let st = g.get_or_insert_with(|| {
        let cfg = Config::parse("fuzz", CONFIG).unwrap();
        let table = Table6::new(&cfg, [], 1_000);
        let server = Server6 { duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 0xaa], addrs: vec!["2001:db8:1::1".parse().unwrap()] };
        State { cfg, server, table, engine: Engine6::new() }
    });
    let mut out = [0u8; 1500];
    let mut counts = [0u64; Counter6::COUNT];
    // The table carries over from input to input (state the fuzzer can build up), its clock
    // moving with the first byte.
    let now = 1_000 + u32::from(data.first().copied().unwrap_or(0)) * 60;
    if let Ok(n) = st.engine.handle(now, &st.cfg, &st.server, &mut st.table, data, &mut out, &mut counts) {
        let mut b = &out[..n];
        while b.first() == Some(&msg::RELAY_REPL) {
            let opts = Options::parse(b.get(34..).expect("a whole relay header")).expect("whole relay options");
            b = opts.find(opt::RELAY_MSG).expect("a relay layer holds a message");
        }
        let m = Message::parse(b).expect("a whole reply");
        assert!(matches!(m.kind(), msg::ADVERTISE | msg::REPLY));
    }
    let mut changes = vec![];
    st.table.drain_changes(&mut changes);
    st.table.sweep(now, 64);
});
