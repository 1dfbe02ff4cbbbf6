//! Durability: the daemon under load is killed with SIGKILL at random moments (snapshots run
//! every few dozen records, so some kills land during compaction). After each kill, the offline
//! journal recovery must hold every lease a client saw ACKed, with its address and at least the
//! promised expiry, and no address bound to two clients.

use std::{
    collections::HashMap,
    net::Ipv4Addr,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use nix::sys::signal::Signal;
use tests::{
    Daemon, TempDir, TwoHosts, daemon_bin,
    frames::{Link, Request},
};

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// DORA for distinct clients until `stop`; returns chaddr → (address, unix time the ACK arrived).
fn load(mut link: Link, mac: [u8; 6], round: u8, stop: Arc<AtomicBool>) -> HashMap<[u8; 6], (Ipv4Addr, u64)> {
    let mut acked = HashMap::new();
    let mut i: u32 = 0;
    while !stop.load(Ordering::Relaxed) && i < 60_000 {
        let chaddr = [2, 0xc0, round, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let xid = (u32::from(round) << 24) | (i << 1);
        i += 1;
        link.send(&Request::discover(mac, chaddr, xid).build());
        let Some(offer) = link.replies(1, Duration::from_millis(200), |r| r.xid() == xid).pop() else { continue };
        let yiaddr: [u8; 4] = offer.bootp[16..20].try_into().expect("4");
        let mut req = Request::discover(mac, chaddr, xid | 1);
        req.options = vec![53, 1, 3, 50, 4];
        req.options.extend_from_slice(&yiaddr);
        req.options.extend_from_slice(&[54, 4, 198, 18, 0, 1]);
        link.send(&req.build());
        if let Some(ack) = link.replies(1, Duration::from_millis(200), |r| r.xid() == xid | 1).pop()
            && ack.message_type() == Some(5)
        {
            acked.insert(chaddr, (Ipv4Addr::from(yiaddr), unix_now()));
        }
    }
    acked
}

/// `dhcp-xdp leases` output: chaddr → (address, state, expires).
fn recovered(state: &TempDir) -> HashMap<[u8; 6], (Ipv4Addr, String, u64)> {
    let out = Command::new(daemon_bin()).args(["leases", "--state-dir"]).arg(state.path()).output().expect("leases");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut m = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("lease ")) {
        let kv: HashMap<&str, &str> = line.split_whitespace().filter_map(|w| w.split_once('=')).collect();
        let mac = dhcp_xdp_core::net::parse_mac(kv["chaddr"]).expect("mac");
        m.insert(
            mac,
            (kv["addr"].parse().expect("addr"), kv["state"].to_owned(), kv["expires"].parse().expect("expires")),
        );
    }
    m
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
    let mut seed = u64::from(std::process::id()) ^ unix_now();
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
        assert!(!acked.is_empty(), "round {round}: no ACK before the kill");
        all_acked.extend(acked);
        let rec = recovered(&state);
        eprintln!("round {round}: {} leases ACKed so far, {} recovered", all_acked.len(), rec.len());
        for (chaddr, (addr, t)) in &all_acked {
            let (a, st, exp) =
                rec.get(chaddr).unwrap_or_else(|| panic!("round {round}: ACKed lease of {chaddr:02x?} lost"));
            assert_eq!(a, addr, "round {round}: address of {chaddr:02x?}");
            assert_eq!(st, "Bound");
            assert!(*exp + 1 >= t + 3600, "round {round}: expiry {exp} earlier than promised {}", t + 3600);
        }
        let mut owners: HashMap<Ipv4Addr, [u8; 6]> = HashMap::new();
        for (chaddr, (a, st, _)) in &rec {
            if st == "Bound" {
                assert!(owners.insert(*a, *chaddr).is_none(), "{a} bound to two clients");
            }
        }
    }
}
