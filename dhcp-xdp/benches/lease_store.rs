//! Lease store figures: memory per lease (indexes included) at 1 M and 10 M leases, journal
//! throughput with one fsync per batch (on plain files that grow, and on preallocated
//! segments), and recovery time. Prints a small table.
//!
//! `cargo bench -p dhcp-xdp --bench lease_store -- 10000000` for the 10 M row (default: 1 M).

use std::{net::Ipv4Addr, time::Instant};

use dhcp_xdp::store::{
    journal::{self, Journal, StateDir},
    segments::segment_size,
};
use dhcp_xdp_core::{
    config::{Config, Durability},
    leases::{Change, ClientKey, Lease, LeaseDb, LeaseState, Tags},
};

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 4096
}

fn leases(n: u32) -> Vec<Lease> {
    (0..n)
        .map(|i| {
            let mac = [2, (i >> 24) as u8, (i >> 16) as u8, (i >> 8) as u8, i as u8, 0x42];
            let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + i + 1);
            Lease {
                key: ClientKey::hw(1, &mac, 1),
                chaddr: mac,
                addr,
                expires: 2_000_000_000,
                state: LeaseState::Bound,
                subnet: 1,
                tags: Tags::default(),
            }
        })
        .collect()
}

fn main() {
    let sizes: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![1_000_000] } else { sizes };
    println!(
        "| leases | bytes/lease (RSS, tables + pools + indexes) | build | journal leases/s (fsync per 64), plain file | \
         the same, preallocated segment | snapshot | recovery |"
    );
    println!("|---|---|---|---|---|---|---|");
    for n in sizes {
        // A /8-sized pool for the addresses (still "documentation" of the layout only: this
        // never touches the network).
        let prefix = 32 - (u32::BITS - (n + 2).leading_zeros()) as u8;
        let cfg = Config::parse(
            "bench",
            &format!(
                "[[subnet]]\nsubnet = \"10.0.0.0/{prefix}\"\n[[subnet.pool]]\nrange = \"10.0.0.1-{}\"\n",
                Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + n + 1)
            ),
        )
        .expect("config");
        let input = leases(n);
        let before = rss_bytes();
        let t = Instant::now();
        let db = LeaseDb::new(&cfg, 2, input.iter().copied(), 1_000);
        let build = t.elapsed();
        let per_lease = (rss_bytes().saturating_sub(before)) as f64 / f64::from(n);

        let dir = std::env::temp_dir().join(format!("dhcp-xdp-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut rates = vec![];
        let mut last = None;
        // Plain files first, then segments preallocated for a generation of 100 000 records.
        for segment in [0, segment_size(100_000, 1)] {
            drop(last.take());
            let state = StateDir::lock(&dir).expect("dir");
            let j = Journal::open(state, 1, Durability::Fsync, segment).expect("journal");
            let batches = 2_000usize;
            let t = Instant::now();
            for chunk in input.chunks(64).take(batches) {
                // One batch, then wait for its fdatasync (as an ACK does).
                let changes: Vec<(u64, Change)> = chunk.iter().map(|l| (db.stamp(1), Change::Upsert(*l))).collect();
                let ticket = j.append(0, &changes).expect("append").expect("ticket");
                while j.settled(0, ticket).is_none() {
                    std::hint::spin_loop();
                }
            }
            rates.push((batches * 64) as f64 / t.elapsed().as_secs_f64());
            j.flush(std::time::Duration::from_secs(10)).expect("flush");
            last = Some(j);
        }
        let j = last.expect("a journal");
        let t = Instant::now();
        j.snapshot(&db).expect("snapshot");
        let snap = t.elapsed();
        j.flush(std::time::Duration::from_secs(10)).expect("flush");
        drop(j);
        let t = Instant::now();
        let rec = journal::inspect(&dir, 1_000).expect("recover");
        let db2 = LeaseDb::new(&cfg, 2, rec.leases, 1_000);
        let recovery = t.elapsed();
        assert_eq!(db2.census(1_000).bound, u64::from(n));
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "| {n} | {per_lease:.0} | {build:.2?} | {:.0} | {:.0} | {snap:.2?} | {recovery:.2?} |",
            rates[0], rates[1]
        );
    }
}
