//! `bench compare`'s takeover figure: two cluster nodes and a throwaway PostgreSQL on a bridged
//! LAN of namespaces; a client bound by node a rebinds (broadcast, every ~120 ms) from the
//! moment a is SIGKILLed until node b ACKs it with its address. Default timing: heartbeat 1 s,
//! takeover after 3 s.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tests::{
    Daemon, TempDir,
    cluster::{Clients, Lan, Postgres, serves_buckets, wait_until},
};

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);

/// One SIGKILL-to-rebind-ACK time.
fn round(r: u8) -> anyhow::Result<Duration> {
    let pg = Postgres::start();
    let lan = Lan::new(&[Some(A), Some(B), None]);
    let dirs = [TempDir::new("dxto"), TempDir::new("dxto")];
    let start = |i: usize, node: &str| {
        let cfg = dirs[i].config(&format!(
            "[cluster]\nnode = \"{node}\"\ndatabase = \"{}\"\n[[subnet]]\nsubnet = \"198.18.0.0/24\"\n\
             [[subnet.pool]]\nrange = \"198.18.0.10-198.18.0.199\"\n",
            pg.url()
        ));
        Daemon::start(&lan.hosts[i].ns, &lan.hosts[i].ifname, &["--config", &cfg, "--workers", "1"])
    };
    let (a, b) = (start(0, "a"), start(1, "b"));
    if !wait_until(Duration::from_secs(15), || serves_buckets(&a, 128) && serves_buckets(&b, 128)) {
        bail!("the two nodes did not divide the buckets in 15 s");
    }
    let mut clients = Clients::new(&lan.hosts[2]);
    let mut on_a = None;
    for i in 0..64u8 {
        if let Some(h) = clients.bind([2, 0xbe, 0, 0, r, i])
            && h.server == A
        {
            on_a = Some(([2, 0xbe, 0, 0, r, i], h));
            break;
        }
    }
    let (chaddr, held) = on_a.context("no client bound by node a")?;
    let killed = Instant::now();
    let _ = a.signal_and_wait(nix::sys::signal::Signal::SIGKILL);
    while killed.elapsed() < Duration::from_secs(30) {
        if clients
            .rebind(chaddr, held.addr, 1)
            .iter()
            .any(|x| x.message_type() == Some(5) && x.yiaddr() == held.addr && x.server_id() == Some(B))
        {
            let t = killed.elapsed();
            let _ = b.signal_and_wait(nix::sys::signal::Signal::SIGTERM);
            return Ok(t);
        }
    }
    bail!("no rebind ACK from node b within 30 s of the SIGKILL")
}

/// `rounds` takeovers; their times and median.
pub fn measure(rounds: u8) -> anyhow::Result<Value> {
    let mut times = vec![];
    for r in 0..rounds {
        let t = round(r)?;
        eprintln!("bench: takeover round {}: first rebind ACK {:.2} s after the SIGKILL", r + 1, t.as_secs_f64());
        times.push(t.as_secs_f64());
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(json!({
        "heartbeat_s": dhcp_xdp_core::config::DEFAULT_HEARTBEAT,
        "takeover_after_s": dhcp_xdp_core::config::DEFAULT_TAKEOVER_AFTER,
        "rounds_s": times,
        "median_s": sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
    }))
}
