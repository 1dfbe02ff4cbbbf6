//! The DHCPv6 engine's work per message, for instruction counting under callgrind:
//! `valgrind --tool=callgrind --toggle-collect='*engine6_instructions::step*'
//! target/dist/examples/engine6_instructions solicit|renew N`, then total Ir / N.
//!
//! `solicit`: N SOLICITs of new clients (distinct DUIDs), each with an IA_NA and an IA_PD,
//! answered with an ADVERTISE. `renew`: RENEWs of 1 000 bound clients (IA_NA + IA_PD each),
//! round robin, each extending both bindings and leaving two changes to journal.

use dhcp_xdp_core::{
    config::Config,
    dhcp6::{msg, opt},
    engine6::{Counter6, Counts6, Engine6, Server6},
    leases::{Change, v6::Table6},
    verdict::DropReason,
};

const CONFIG: &str = r#"
[[subnet6]]
subnet = "2001:db8:1::/64"
options = { dns-servers = ["2001:db8::53"] }
  [[subnet6.pool]]
  range = "2001:db8:1::1:0-2001:db8:1::ff:ffff"
  [[subnet6.pd-pool]]
  prefix = "2001:db8:100::"
  prefix-len = 40
  delegated-len = 60
"#;

fn option(code: u16, data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// A message of client `n` as dhclient sends it: client id (DUID-LLT), elapsed time, ORO, an
/// IA_NA and an IA_PD (empty: no hints), and our server id when `server` is given.
fn message(kind: u8, n: u32, server: Option<&[u8]>) -> Vec<u8> {
    let mut m = vec![kind, 0x12, 0x34, 0x56];
    let mut duid = vec![0, 1, 0, 1, 0x2f, 0x11, 0x22, 0x33, 2, 0];
    duid.extend_from_slice(&n.to_be_bytes());
    option(opt::CLIENTID, &duid, &mut m);
    if let Some(s) = server {
        option(opt::SERVERID, s, &mut m);
    }
    option(opt::ELAPSED_TIME, &[0, 0], &mut m);
    option(opt::ORO, &[0, 23, 0, 24], &mut m);
    option(opt::IA_NA, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], &mut m);
    option(opt::IA_PD, &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0], &mut m);
    m
}

/// One message through the engine, its changes collected as a worker does.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn step(
    engine: &mut Engine6,
    cfg: &Config,
    server: &Server6,
    table: &mut Table6,
    req: &[u8],
    out: &mut [u8],
    counts: &mut Counts6,
    changes: &mut Vec<Change>,
) -> Result<usize, DropReason> {
    let r = engine.handle(2_000_000, cfg, server, table, req, out, counts);
    table.drain_changes(changes);
    changes.clear();
    r
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "solicit".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let cfg = Config::parse("bench", CONFIG).expect("config");
    let server = Server6 { duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 0xaa], addrs: vec!["2001:db8:1::1".parse().unwrap()] };
    let mut table = Table6::new(&cfg, [], 1_000_000);
    let mut engine = Engine6::new();
    let (mut out, mut counts, mut changes) = (vec![0u8; 1500], [0u64; Counter6::COUNT], Vec::new());
    let frames: Vec<Vec<u8>> = if what == "renew" {
        // 1 000 clients bound first (REQUEST), then renewing round robin.
        for c in 0..1_000 {
            let req = message(msg::REQUEST, c, Some(&server.duid));
            engine.handle(1_000_000, &cfg, &server, &mut table, &req, &mut out, &mut counts).expect("bound");
            table.drain_changes(&mut changes);
        }
        (0..1_000).map(|c| message(msg::RENEW, c, Some(&server.duid))).collect()
    } else {
        (0..n as u32).map(|c| message(msg::SOLICIT, 1_000_000 + c, None)).collect()
    };
    for i in 0..n {
        let r = step(
            &mut engine,
            &cfg,
            &server,
            &mut table,
            &frames[i % frames.len()],
            &mut out,
            &mut counts,
            &mut changes,
        );
        assert!(r.is_ok(), "{r:?}");
    }
    assert_eq!(counts[Counter6::NoAddrsAvail.slot()] + counts[Counter6::NoBinding.slot()], 0);
    println!("{n} {what} messages");
}
