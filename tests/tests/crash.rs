//! Durability: the daemon under load is killed with SIGKILL at random moments (snapshots run
//! every few dozen records, so some kills land during compaction). After each kill, the offline
//! journal recovery must hold every lease a client saw ACKed, with its address and at least the
//! promised expiry, and no address bound to two clients.
//!
//! The load does not depend on the machine's speed: each round binds at most
//! [`NEW_PER_ROUND`] new clients (the pool holds all rounds' clients) and then keeps the daemon
//! busy renewing the ones it has, until the kill.

use std::{
    collections::HashMap,
    net::Ipv4Addr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use nix::sys::signal::Signal;
use tests::{
    Daemon, TempDir, TwoHosts, check_recovered,
    frames::{Link, Request, dora},
    recovered_leases,
};

/// New clients a round binds at most; four rounds fit the 12 286-address pool.
const NEW_PER_ROUND: u32 = 2_000;
const LEASE_TIME: u64 = 3600;

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// DORA for new clients (at most [`NEW_PER_ROUND`]), then renewals of those, until `stop`;
/// returns chaddr → (address, unix time of the latest ACK).
fn load(mut link: Link, mac: [u8; 6], round: u8, stop: Arc<AtomicBool>) -> HashMap<[u8; 6], (Ipv4Addr, u64)> {
    let mut acked: HashMap<[u8; 6], (Ipv4Addr, u64)> = HashMap::new();
    let mut i: u32 = 0;
    while !stop.load(Ordering::Relaxed) && i < NEW_PER_ROUND {
        let chaddr = [2, 0xc0, round, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let xid = (u32::from(round) << 24) | (i << 1);
        i += 1;
        let d = dora(&mut link, mac, chaddr, xid, Duration::from_millis(200), 1);
        if let (Some(a), true) = (d.offered, d.acked) {
            acked.insert(chaddr, (a, unix_now()));
        }
    }
    // Renewals (RENEWING: ciaddr set, unicast to the server) keep the journal busy.
    let clients: Vec<([u8; 6], Ipv4Addr)> = acked.iter().map(|(c, (a, _))| (*c, *a)).collect();
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) && !clients.is_empty() {
        let (chaddr, addr) = clients[n as usize % clients.len()];
        let xid = 0x4000_0000 | (u32::from(round) << 20) | (n & 0xf_ffff);
        n = n.wrapping_add(1);
        let mut r = Request::discover(mac, chaddr, xid);
        r.options = vec![53, 1, 3];
        r.ciaddr = addr;
        r.src_ip = addr;
        r.dst_ip = Ipv4Addr::new(198, 18, 0, 1);
        link.send(&r.build());
        if let Some(ack) = link.replies(1, Duration::from_millis(200), |r| r.xid() == xid).pop()
            && ack.message_type() == Some(5)
        {
            acked.insert(chaddr, (addr, unix_now()));
        }
    }
    acked
}

#[test]
fn sigkill_under_load_loses_no_acked_lease() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let cfg = dir.config("[server]\nlease-time = 3600\n[persistence]\nsnapshot-every = 40\n[[subnet]]\nsubnet = \"198.18.0.0/16\"\n[[subnet.pool]]\nrange = \"198.18.16.1-198.18.63.254\"\n");
    let state = TempDir::new("state");
    let args = ["--config", &cfg, "--state-dir", state.path().to_str().expect("utf8")];
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut all_acked: HashMap<[u8; 6], (Ipv4Addr, u64)> = HashMap::new();
    // The kill times come from this seed: printed, and taken from DHCP_XDP_CRASH_SEED when set,
    // so a failing run can be replayed.
    let mut seed = std::env::var("DHCP_XDP_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| (u64::from(std::process::id()) ^ unix_now()) | 1);
    eprintln!("crash seed {seed} (DHCP_XDP_CRASH_SEED={seed} replays this run)");
    for round in 0..4u8 {
        let daemon = Daemon::start(&net.server, &net.server_if, &args);
        let stop = Arc::new(AtomicBool::new(false));
        let link = Link::open(&net.client, &net.client_if);
        let s2 = stop.clone();
        let loader = std::thread::spawn(move || load(link, mac, round, s2));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Kill between 0.3 and 1.8 s into the load: across journal appends and snapshots.
        std::thread::sleep(Duration::from_millis(300 + seed % 1500));
        daemon.signal_and_wait(Signal::SIGKILL);
        stop.store(true, Ordering::Relaxed);
        let acked = loader.join().expect("load thread");
        // A kill that lands before the load is under way proves little: each round must have
        // clients bound and renewing (journal appends and snapshots running) when it lands.
        assert!(acked.len() >= 20, "round {round} (seed {seed}): only {} ACKs before the kill", acked.len());
        all_acked.extend(acked);
        let (rec, _) = recovered_leases(state.path());
        eprintln!("round {round}: {} leases ACKed so far, {} recovered", all_acked.len(), rec.len());
        check_recovered(&format!("round {round}"), &all_acked, &rec, LEASE_TIME);
    }
}
