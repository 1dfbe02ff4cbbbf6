//! The engine alone on a warm shard: DISCOVER→OFFER and REQUEST→ACK (renewal), frame in, frame
//! out, as the datapath calls it. Target: ≤ 300 ns per message on the project's 2-vCPU VM.

use std::{hint::black_box, net::Ipv4Addr, time::Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dhcp_xdp_core::{
    config::Config,
    dhcp::{MessageType, opt},
    engine::{Engine, ServerIdentity},
    leases::{ClientKey, LeaseDb},
    net::Ipv4Net,
    testing::Request,
    verdict::Verdict,
};

/// A client's broadcast request of type `mtype`, as the datapath receives it.
fn frame(chaddr: [u8; 6], ciaddr: Ipv4Addr, mtype: MessageType) -> Vec<u8> {
    let r = Request::new(mtype).client(chaddr).prl(&[1, 3, 6, 15, 28, 42]).opt(opt::MAX_MESSAGE_SIZE, &[5, 220]);
    Request { xid: 7, ciaddr, src_ip: ciaddr, min_len: 300, ..r }.frame()
}

/// Frames per batch, as the datapath's default `--batch` hands them to the engine.
const BATCH: u64 = 64;

fn bench(c: &mut Criterion) {
    for clients in [1_000u32, 100_000] {
        bench_shard(c, clients);
    }
}

fn bench_shard(c: &mut Criterion, n: u32) {
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
    let mut engine = Engine::new();
    // Warm shard: n bound clients, visited round robin (100 000 do not fit the caches).
    let clients: Vec<[u8; 6]> = (0..n).map(|i| [2, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]).collect();
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
    let discovers: Vec<Vec<u8>> =
        clients.iter().map(|m| frame(*m, Ipv4Addr::UNSPECIFIED, MessageType::Discover)).collect();
    let renewals: Vec<Vec<u8>> = clients.iter().zip(&addr).map(|(m, a)| frame(*m, *a, MessageType::Request)).collect();
    let mut buf = vec![0u8; 4096];
    let mut i = 0usize;
    let mut changes = Vec::with_capacity(64);
    for (what, frames) in [("DISCOVER→OFFER", &discovers), ("REQUEST→ACK renewal", &renewals)] {
        c.bench_function(&format!("engine {what} (warm shard, {n} leases)"), |b| {
            // As a worker calls it under load: the shard locked once per batch of frames, the
            // lease changes collected after each frame.
            b.iter_custom(|iters| {
                let per_batch = BATCH;
                let start = Instant::now();
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(per_batch);
                    left -= batch;
                    let mut g = db.lock(0);
                    for _ in 0..batch {
                        // Round robin without a division per frame (it is not the engine's work).
                        if i == frames.len() {
                            i = 0;
                        }
                        let f = &frames[i];
                        i += 1;
                        buf[..f.len()].copy_from_slice(f);
                        let (v, _) = engine.handle(2_000, &cfg, &server, &mut g, &mut buf, f.len());
                        g.drain_changes(&mut changes);
                        changes.clear();
                        assert!(matches!(v, Verdict::Reply(_)));
                        black_box(v);
                    }
                }
                start.elapsed()
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
