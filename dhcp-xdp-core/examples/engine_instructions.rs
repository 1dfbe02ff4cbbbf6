//! The engine's work per message, for instruction counting under callgrind (the stable measure
//! on noisy machines): `valgrind --tool=callgrind --toggle-collect='*engine_instructions::step*'
//! target/dist/examples/engine_instructions discover|renew N`, then total Ir / N. The same warm
//! shard as the engine bench (1 000 bound clients, round robin, the shard locked per batch of 64).
//! A third argument `policy` adds 20 client classes and 10 reservations (`WarmShard::with_policy`).

use dhcp_xdp_core::{
    config::Config,
    engine4::{Engine, ServerIdentity},
    leases::{Change, ShardGuard},
    testing::WarmShard,
    verdict::Verdict,
};

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
    let policy = args.next().as_deref() == Some("policy");
    let WarmShard { cfg, db, server, discovers, renewals } = WarmShard::with_policy(1_000, policy);
    let frames = if what == "renew" { renewals } else { discovers };
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
