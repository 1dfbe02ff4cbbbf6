//! The engine's work per message, for instruction counting under callgrind (the stable measure
//! on noisy machines): `valgrind --tool=callgrind --toggle-collect='*engine_instructions::step*'
//! target/dist/examples/engine_instructions discover|renew N`, then total Ir / N. The same warm
//! shard as the engine bench (1 000 bound clients, round robin, the shard locked per batch of 64).

use std::net::Ipv4Addr;

use dhcp_xdp_core::{
    config::Config,
    dhcp::{MessageType, opt},
    engine::{Engine, ServerIdentity},
    leases::{Change, ClientKey, LeaseDb, ShardGuard},
    net::Ipv4Net,
    testing::Request,
    verdict::Verdict,
};

fn frame(chaddr: [u8; 6], ciaddr: Ipv4Addr, mtype: MessageType) -> Vec<u8> {
    let r = Request::new(mtype).client(chaddr).prl(&[1, 3, 6, 15, 28, 42]).opt(opt::MAX_MESSAGE_SIZE, &[5, 220]);
    Request { xid: 7, ciaddr, src_ip: ciaddr, min_len: 300, ..r }.frame()
}

/// One message through the engine, its changes collected as a worker does.
#[inline(never)]
fn step(
    engine: &mut Engine,
    cfg: &Config,
    server: &ServerIdentity,
    g: &mut ShardGuard<'_>,
    buf: &mut [u8],
    len: usize,
    changes: &mut Vec<Change>,
) -> Verdict {
    let (v, _) = engine.handle(2_000, cfg, server, g, buf, len);
    g.drain_changes(changes);
    changes.clear();
    v
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "discover".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let cfg = Config::parse(
        "bench",
        "[options]\ndns-servers = [\"198.18.0.53\"]\ndomain-name = \"example.net\"\n[[subnet]]\nsubnet = \"198.18.0.0/15\"\noptions = { routers = [\"198.18.0.1\"] }\n[[subnet.pool]]\nrange = \"198.18.1.0-198.19.255.254\"\n",
    )
    .expect("config");
    let db = LeaseDb::new(&cfg, 1, [], 1_000);
    let server = ServerIdentity {
        mac: [2, 0, 0, 0, 0, 1],
        addrs: vec![Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 1), prefix: 15 }],
    };
    let clients: Vec<[u8; 6]> = (0..1_000u32).map(|i| [2, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]).collect();
    let mut addr = vec![];
    {
        let mut g = db.lock(0);
        for m in &clients {
            let k = ClientKey::hw(1, m);
            let (a, s) = g.offer(1_000, 30, &k, *m, &[1], None, None).expect("offer");
            g.bind(1_000, k, *m, a, s, 86_400, false).expect("bind");
            addr.push(a);
        }
        g.take_changes();
    }
    let frames: Vec<Vec<u8>> = match what.as_str() {
        "renew" => clients.iter().zip(&addr).map(|(m, a)| frame(*m, *a, MessageType::Request)).collect(),
        _ => clients.iter().map(|m| frame(*m, Ipv4Addr::UNSPECIFIED, MessageType::Discover)).collect(),
    };
    let mut engine = Engine::new();
    let mut buf = vec![0u8; 4096];
    let mut changes = Vec::with_capacity(64);
    let mut i = 0;
    let mut left = n;
    while left > 0 {
        let batch = left.min(64);
        left -= batch;
        let mut g = db.lock(0);
        for _ in 0..batch {
            let f = &frames[i % frames.len()];
            i += 1;
            buf[..f.len()].copy_from_slice(f);
            let v = step(&mut engine, &cfg, &server, &mut g, &mut buf, f.len(), &mut changes);
            assert!(matches!(v, Verdict::Reply(_)));
        }
    }
    println!("{n} {what} messages");
}
