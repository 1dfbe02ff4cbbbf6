//! The engine alone on a warm shard: DISCOVER→OFFER and REQUEST→ACK (renewal), frame in, frame
//! out, as the datapath calls it. Target: ≤ 300 ns per message on the project's 2-vCPU VM.

use std::{hint::black_box, time::Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dhcp_xdp_core::{engine4::Engine, testing::WarmShard, verdict::Verdict};

/// Frames per batch, as the datapath's default `--batch` hands them to the engine.
const BATCH: u64 = 64;

fn bench(c: &mut Criterion) {
    for clients in [1_000u32, 100_000] {
        bench_shard(c, clients);
    }
}

fn bench_shard(c: &mut Criterion, n: u32) {
    // Warm shard: n bound clients, visited round robin (100 000 do not fit the caches).
    let WarmShard { cfg, db, server, discovers, renewals } = WarmShard::new(n);
    let mut engine = Engine::new();
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
