//! The durability promise under disk faults and a second process: a disk that fills up and
//! empties again, injected write errors, a disk that stalls, and a second daemon on the same
//! state directory. Each ends with SIGKILL and recovery checked lease by lease: every ACK a
//! client saw is recovered (address, bound, expiry at least as promised), no address is bound
//! twice. While the disk fails, ACKs are withheld and OFFERs keep coming.

use std::{
    collections::HashMap,
    net::Ipv4Addr,
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use nix::sys::signal::Signal;
use tests::{
    Daemon, SmallDisk, TempDir, TwoHosts, check_recovered, daemon_bin,
    frames::{Link, Request, dora},
    recovered_leases,
};

const LEASE_TIME: u64 = 3600;
const CONFIG: &str = "[server]\nlease-time = 3600\n[persistence]\nsnapshot-every = 50\n[[subnet]]\nsubnet = \"198.18.0.0/16\"\n[[subnet.pool]]\nrange = \"198.18.16.1-198.18.31.254\"\n";

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Phase `phase` of a test: `n` new clients try DORA (each message sent up to `tries` times,
/// `wait` apart); returns how many got an OFFER, and the ACKed ones.
fn clients_waiting(
    link: &mut Link,
    mac: [u8; 6],
    phase: u8,
    n: u32,
    tries: u32,
    wait: Duration,
) -> (u32, HashMap<[u8; 6], (Ipv4Addr, u64)>) {
    let mut offers = 0;
    let mut acked = HashMap::new();
    for i in 0..n {
        let chaddr = [2, 0xd0, phase, 0, (i >> 8) as u8, i as u8];
        let d = dora(link, mac, chaddr, (u32::from(phase) << 24) | (i << 1), wait, tries);
        offers += u32::from(d.offered.is_some());
        if let (Some(a), true) = (d.offered, d.acked) {
            acked.insert(chaddr, (a, unix_now()));
        }
    }
    (offers, acked)
}

/// [`clients_waiting`] 300 ms apart.
fn clients(link: &mut Link, mac: [u8; 6], phase: u8, n: u32, tries: u32) -> (u32, HashMap<[u8; 6], (Ipv4Addr, u64)>) {
    clients_waiting(link, mac, phase, n, tries, Duration::from_millis(300))
}

/// DISCOVERs the XDP program shed so far (the daemon sheds them while its journal is behind).
fn shed(d: &Daemon) -> u64 {
    d.counters().xdp("shed_discover")
}

fn start(net: &TwoHosts, cfg: &str, state: &std::path::Path, faults: Option<&std::path::Path>) -> Daemon {
    let mut cmd = net.server.exec(daemon_bin());
    cmd.args(["run", "--iface", &net.server_if, "--stats-interval", "0", "--config", cfg, "--state-dir"]).arg(state);
    if let Some(f) = faults {
        cmd.env("DHCP_XDP_JOURNAL_FAULTS", f);
    }
    Daemon::spawn(cmd, None)
}

/// The scenario: state on a small tmpfs, clients binding, the file system filled,
/// clients binding (no ACK may leave), emptied, clients binding again, SIGKILL. Every ACKed
/// lease must be recovered — before this was fixed, every lease ACKed after the space came back
/// was lost.
#[test]
fn a_disk_that_fills_up_and_empties_loses_no_acked_lease() {
    let net = TwoHosts::for_dhcp(1);
    let disk = SmallDisk::new(1024);
    let state = disk.path().join("state");
    let dir = TempDir::new("cfg");
    let cfg = dir.config(CONFIG);
    let daemon = start(&net, &cfg, &state, None);
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    let mut acked = HashMap::new();
    let (_, before) = clients(&mut link, mac, 1, 60, 3);
    assert!(before.len() >= 55, "only {} of 60 bound on a healthy disk", before.len());
    acked.extend(before);

    disk.fill();
    // The journal files' last pages still take a few dozen records each; then writes fail and
    // the daemon sheds new clients' DISCOVERs (no ACK could follow their OFFERs).
    let shed_before = shed(&daemon);
    let (offers, during) = clients_waiting(&mut link, mac, 2, 160, 1, Duration::from_millis(100));
    let shed_during = shed(&daemon) - shed_before;
    assert!(
        u64::from(offers) + shed_during >= 150,
        "every DISCOVER is answered or shed while the disk is full ({offers} OFFERs, {shed_during} shed, of 160)"
    );
    assert!(shed_during > 0, "nothing was shed while the journal could not write");
    assert!(during.len() < 150, "{} of 160 ACKed on a full disk", during.len());
    let store = daemon.counters().0["store"].clone();
    assert!(
        store["failing"] == true && store["failed-rounds"].as_u64() > Some(0),
        "the daemon does not say its journal fails: {store}"
    );
    // An ACK that left while the disk was full (into a page's slack) must be durable all the
    // same: recovery checks those too.
    acked.extend(during);

    disk.empty();
    let (_, after) = clients(&mut link, mac, 3, 60, 4);
    assert!(after.len() >= 55, "serving did not resume when the space came back ({} of 60)", after.len());
    acked.extend(after);

    let store = daemon.counters().0["store"].clone();
    assert!(store["failing"] == false, "the daemon does not say its journal works again: {store}");
    daemon.signal_and_wait(Signal::SIGKILL);
    let (rec, warnings) = recovered_leases(&state);
    eprintln!("{} ACKed, {} recovered; warnings {warnings:?}", acked.len(), rec.len());
    check_recovered("disk full and back", &acked, &rec, LEASE_TIME);
}

/// A journal of preallocated segments: its files are spares zero-filled before use, written
/// in place. A disk that fills up then stops no lease — the records go into blocks the segment
/// already has — and every ACK is recovered after SIGKILL.
#[test]
fn a_preallocated_journal_keeps_acking_when_the_disk_fills() {
    let net = TwoHosts::for_dhcp(1);
    let disk = SmallDisk::new(32 * 1024);
    let state = disk.path().join("state");
    let dir = TempDir::new("cfg");
    // 5 000 records a generation: segments of 1 MiB.
    let cfg = dir.config(&CONFIG.replace("snapshot-every = 50", "snapshot-every = 5000"));
    let daemon = start(&net, &cfg, &state, None);
    let segments = || daemon.counters().0["store"]["segments"].clone();
    let seg = segments();
    assert_eq!(seg["bytes"], 1 << 20, "{seg}");
    assert_eq!(seg["plain-files"], 0, "every journal file so far is a segment: {seg}");
    assert!(seg["preallocated-files"].as_u64() >= Some(2), "the start's files and the snapshot's: {seg}");
    // The files the start's snapshot made obsolete come back as spares.
    assert!(
        tests::cluster::wait_until(Duration::from_secs(10), || segments()["spare"].as_u64() >= Some(1)),
        "no spare segment: {}",
        segments()
    );
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    let (_, mut acked) = clients(&mut link, mac, 1, 40, 3);
    assert!(acked.len() >= 38, "only {} of 40 bound", acked.len());

    disk.fill();
    let (_, during) = clients(&mut link, mac, 2, 100, 3);
    assert!(during.len() >= 95, "only {} of 100 ACKed on a full disk with preallocated segments", during.len());
    let store = daemon.counters().0["store"].clone();
    assert!(store["failing"] == false && store["failed-rounds"] == 0, "{store}");
    acked.extend(during);
    // Written in place: no journal file grew past its segment.
    for e in std::fs::read_dir(&state).expect("state dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("journal-") {
            assert_eq!(e.metadata().expect("journal").len(), 1 << 20, "{name} is not its segment");
        }
    }
    daemon.signal_and_wait(Signal::SIGKILL);
    disk.empty();
    let (rec, warnings) = recovered_leases(&state);
    assert!(warnings.is_empty(), "recovery warned: {warnings:?}");
    check_recovered("preallocated journal, disk full", &acked, &rec, LEASE_TIME);
}

/// A daemon started on a state directory whose disk is already full: it starts (no snapshot,
/// journal files retried), OFFERs flow, ACKs wait; once space returns it ACKs, and every ACK
/// is recovered after SIGKILL — the leases of the previous run too.
#[test]
fn a_daemon_started_on_a_full_disk_serves_and_acks_once_space_returns() {
    let net = TwoHosts::for_dhcp(1);
    let disk = SmallDisk::new(1024);
    let state = disk.path().join("state");
    let dir = TempDir::new("cfg");
    let cfg = dir.config(CONFIG);
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    // A previous run's leases, then a clean stop.
    let first = start(&net, &cfg, &state, None);
    let (_, mut acked) = clients(&mut link, mac, 1, 20, 3);
    assert!(acked.len() >= 18);
    first.signal_and_wait(Signal::SIGTERM);
    disk.fill();
    let daemon = start(&net, &cfg, &state, None);
    let shed_before = shed(&daemon);
    let (offers, during) = clients_waiting(&mut link, mac, 2, 160, 1, Duration::from_millis(100));
    let shed_during = shed(&daemon) - shed_before;
    assert!(
        u64::from(offers) + shed_during >= 150,
        "DISCOVERs on a full disk answered or shed: {offers} OFFERs, {shed_during} shed, of 160"
    );
    assert!(during.len() < 150, "{} of 160 ACKed on a full disk", during.len());
    acked.extend(during);
    disk.empty();
    let (_, after) = clients(&mut link, mac, 3, 30, 4);
    assert!(after.len() >= 28, "ACKs did not resume ({} of 30)", after.len());
    acked.extend(after);
    daemon.signal_and_wait(Signal::SIGKILL);
    let (rec, _) = recovered_leases(&state);
    check_recovered("full at start", &acked, &rec, LEASE_TIME);
}

/// A daemon whose journal faults the test injects through a hook file (empty: none).
struct Hooked {
    net: TwoHosts,
    state: TempDir,
    _faults: TempDir,
    hook: std::path::PathBuf,
    _cfg: TempDir,
    daemon: Daemon,
    /// The client link's source MAC.
    mac: [u8; 6],
}

impl Hooked {
    fn start() -> Self {
        Self::with_config(CONFIG)
    }

    fn with_config(config: &str) -> Self {
        let net = TwoHosts::for_dhcp(1);
        let state = TempDir::new("state");
        let faults = TempDir::new("faults");
        let hook = faults.path().join("faults");
        std::fs::write(&hook, "").expect("hook");
        let dir = TempDir::new("cfg");
        let cfg = dir.config(config);
        let daemon = start(&net, &cfg, state.path(), Some(&hook));
        let mac = TwoHosts::mac(&net.client, &net.client_if);
        Self { net, state, _faults: faults, hook, _cfg: dir, daemon, mac }
    }
}

/// Injected write errors, then a disk whose syncs stall: ACKs are withheld (each DISCOVER
/// answered or shed) and resume by themselves; after SIGKILL every ACKed lease is there.
#[test]
fn injected_write_errors_and_stalls_withhold_acks_until_the_disk_recovers() {
    // The TempDirs stay bound (removed on drop): `_faults`, `_cfg`.
    let Hooked { net, state, _faults, hook, _cfg, daemon, mac } = Hooked::start();
    let mut link = Link::open(&net.client, &net.client_if);
    let mut acked = HashMap::new();
    let (_, ok) = clients(&mut link, mac, 1, 30, 3);
    assert!(ok.len() >= 28, "{} of 30 bound on a healthy disk", ok.len());
    acked.extend(ok);

    for (phase, fault) in [(2u8, "write-error"), (4, "sync-error"), (6, "stall")] {
        std::fs::write(&hook, fault).expect("hook");
        let shed_before = shed(&daemon);
        let (offers, during) = clients(&mut link, mac, phase, 20, 1);
        let shed_during = shed(&daemon) - shed_before;
        assert!(
            u64::from(offers) + shed_during >= 18,
            "{fault}: every DISCOVER answered or shed ({offers} OFFERs, {shed_during} shed, of 20)"
        );
        assert!(during.is_empty(), "{fault}: {} ACKs left without a durable record", during.len());
        std::fs::write(&hook, "").expect("hook");
        let (_, again) = clients(&mut link, mac, phase + 1, 20, 4);
        assert!(again.len() >= 18, "{fault}: ACKs did not resume ({} of 20)", again.len());
        acked.extend(again);
    }
    daemon.signal_and_wait(Signal::SIGKILL);
    let (rec, _) = recovered_leases(state.path());
    check_recovered("injected faults", &acked, &rec, LEASE_TIME);
}

/// Overload: a journal that falls behind (its syncs stall) makes the daemon shed a growing
/// share of new clients' DISCOVERs in the XDP program, soon all of them, while a renewal of a bound client still reaches the engine and
/// is ACKed as soon as its record is durable; when the journal catches up, DISCOVERs are
/// answered again.
#[test]
fn a_store_that_falls_behind_sheds_new_clients_first_and_keeps_renewals() {
    // The TempDirs stay bound (removed on drop): `_faults`, `_cfg`.
    let Hooked { net, state: _state, _faults, hook, _cfg, daemon, mac } = Hooked::start();
    let mut link = Link::open(&net.client, &net.client_if);
    let (_, bound) = clients(&mut link, mac, 1, 5, 3);
    assert_eq!(bound.len(), 5, "bound on a healthy disk");
    assert_eq!(daemon.counters().0["shedding"]["active"], false);

    // The disk stalls: one more client's ACK waits for it, and the journal falls behind.
    std::fs::write(&hook, "stall").expect("hook");
    let late = dora(&mut link, mac, [2, 0xd0, 2, 0, 0, 1], 0x0200_0000, Duration::from_millis(300), 1);
    assert!(late.offered.is_some() && !late.acked, "{late:?}");
    assert!(
        daemon.wait_counters(Duration::from_secs(3), |c| c.0["shedding"]["active"] == true),
        "the daemon did not start shedding: {}",
        daemon.counters().0
    );
    // The share admitted halves every tick while the journal stays behind, down to none.
    assert!(
        daemon.wait_counters(Duration::from_secs(2), |c| c.0["shedding"]["admitted"].as_f64() == Some(0.0)),
        "new clients still admitted with the journal stalled: {}",
        daemon.counters().0
    );
    // New clients: dropped in XDP, never reaching the engine.
    let before = daemon.counters();
    for i in 0..10u32 {
        link.send(&Request::discover(mac, [2, 0xd0, 3, 0, 0, i as u8], 0x0300_0000 | i).build());
    }
    let offers = link.replies(10, Duration::from_millis(500), |r| r.message_type() == Some(2));
    assert!(offers.is_empty(), "{} OFFERs while shedding", offers.len());
    assert!(
        daemon.wait_counters(Duration::from_secs(2), |c| c.xdp("shed_discover") >= before.xdp("shed_discover") + 10),
        "the DISCOVERs were not shed"
    );
    assert_eq!(
        daemon.counters().engine("rx_discover"),
        before.engine("rx_discover"),
        "a shed DISCOVER reached the engine"
    );
    // A bound client renews: its REQUEST reaches the engine now and is ACKed once durable.
    let (chaddr, (addr, _)) = bound.iter().next().map(|(c, a)| (*c, *a)).expect("a bound client");
    let mut renew = Request::discover(mac, chaddr, 0x0400_0000);
    renew.ciaddr = addr;
    renew.src_ip = addr;
    renew.dst_ip = Ipv4Addr::new(198, 18, 0, 1);
    renew.dst_mac = TwoHosts::mac(&net.server, &net.server_if);
    renew.options = vec![53, 1, 3];
    link.send(&renew.build());
    assert!(
        daemon.wait_counters(Duration::from_secs(2), |c| c.engine("rx_request_renewing")
            > before.engine("rx_request_renewing")),
        "the renewal did not reach the engine while shedding"
    );
    std::fs::write(&hook, "").expect("hook");
    let ack = link.replies(1, Duration::from_secs(3), |r| r.xid() == 0x0400_0000);
    assert_eq!(ack.first().and_then(|r| r.message_type()), Some(5), "the renewal was not ACKed once durable");
    // Caught up: the share admitted grows back to all, new clients bind again.
    assert!(
        daemon.wait_counters(Duration::from_secs(3), |c| c.0["shedding"]["active"] == false
            && c.0["shedding"]["admitted"].as_f64() == Some(1.0)),
        "shedding did not stop: {}",
        daemon.counters().0
    );
    let (_, again) = clients(&mut link, mac, 5, 10, 3);
    assert_eq!(again.len(), 10, "new clients after the overload");
    assert!(daemon.counters().0["shedding"]["episodes"].as_u64() >= Some(1));
}

/// A store that stalls while more REQUESTs wait than the worker's UMEM has chunks: the replies
/// wait as bytes, not in chunks, so the rings keep turning, every REQUEST is taken, none is
/// dropped, and when the disk answers every ACK leaves.
#[test]
fn more_replies_wait_for_a_stalled_store_than_the_rings_have_chunks() {
    // 6 000 clients: more than the 8 192 chunks of a queue's UMEM leave once the fill ring has
    // its 4 096; a pool that holds them all; no per-source limits (one test link sends all).
    const N: u32 = 6000;
    let config = CONFIG.replace("198.18.16.1-198.18.31.254", "198.18.16.1-198.18.63.254").replace(
        "[[subnet]]",
        "[limits]\noffers-per-circuit = 1000000\noffers-per-mac = 1000000\nrate-per-mac = 0\n[[subnet]]",
    );
    let _rcvbuf = tests::RcvbufDefault::at_least(16 << 20);
    // The TempDirs stay bound (removed on drop): `_faults`, `_cfg`.
    let Hooked { net, state: _state, _faults, hook, _cfg, daemon, mac } = Hooked::with_config(&config);
    let mut link = Link::open(&net.client, &net.client_if);
    let chaddr = |i: u32| [2, 0xd5, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    // Offers for everyone, in bursts the test's socket can take.
    let mut offered = HashMap::new();
    for start in (0..N).step_by(250) {
        for i in start..(start + 250).min(N) {
            link.send(&Request::discover(mac, chaddr(i), 0x5000_0000 | i).build());
        }
        let mut want = 250usize;
        for r in link.replies(250, Duration::from_secs(3), |r| r.message_type() == Some(2)) {
            offered.insert(r.xid() & 0xffff, r.yiaddr());
            want -= 1;
        }
        assert_eq!(want, 0, "OFFERs missing for the clients from {start}");
    }
    std::fs::write(&hook, "stall").expect("hook");
    let before = daemon.counters();
    for i in 0..N {
        let mut req = Request::discover(mac, chaddr(i), 0x6000_0000 | i);
        req.options = vec![53, 1, 3, 50, 4];
        req.options.extend_from_slice(&offered[&i].octets());
        req.options.extend_from_slice(&[54, 4, 198, 18, 0, 1]);
        link.send(&req.build());
        if i % 200 == 199 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let taken = || daemon.counters().engine("rx_request_selecting") - before.engine("rx_request_selecting");
    assert!(
        tests::cluster::wait_until(Duration::from_secs(5), || taken() >= u64::from(N)),
        "the worker stopped taking REQUESTs while their replies waited: {} of {N}",
        taken()
    );
    assert!(link.replies(1, Duration::from_millis(300), |r| r.message_type() == Some(5)).is_empty(), "an ACK left");
    std::fs::write(&hook, "").expect("hook");
    let acks = link.replies(N as usize, Duration::from_secs(10), |r| r.message_type() == Some(5) && r.xid() >> 28 == 6);
    let after = daemon.counters();
    let sent = after.worker_sum("tx") - before.worker_sum("tx");
    assert!(sent >= u64::from(N), "{sent} replies left of {N} ACKs (the test's socket got {})", acks.len());
    assert_eq!(after.worker_sum("drop_journal_stalled"), 0, "held replies were dropped");
    // What the test's one socket could take of the burst (its buffer is capped by rmem_max, so
    // it may lose some; the daemon's counters above are the measure): each ACK carries the
    // address its client was offered, copied back out of the bytes it waited as.
    assert!(!acks.is_empty(), "no ACK reached the client");
    for a in &acks {
        assert_eq!(a.yiaddr(), offered[&(a.xid() & 0xffff)], "an ACK with another client's address");
    }
}

/// Two daemons (two interfaces) on one state directory: the second exits at once, naming the
/// directory and the first one's pid; the first keeps serving and loses nothing.
#[test]
fn a_second_daemon_on_the_same_state_directory_is_refused() {
    let a = TwoHosts::for_dhcp(1);
    let b = TwoHosts::for_dhcp(1);
    let state = TempDir::new("state");
    let dir = TempDir::new("cfg");
    let cfg = dir.config(CONFIG);
    let first = start(&a, &cfg, state.path(), None);
    let mac = TwoHosts::mac(&a.client, &a.client_if);
    let mut link = Link::open(&a.client, &a.client_if);
    let (_, mut acked) = clients(&mut link, mac, 1, 20, 3);
    let t = std::time::Instant::now();
    let out = b
        .server
        .exec(daemon_bin())
        .args(["run", "--iface", &b.server_if, "--config", &cfg, "--state-dir"])
        .arg(state.path())
        .output()
        .expect("second daemon");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second daemon started: {err}");
    assert!(t.elapsed() < Duration::from_secs(10), "the second daemon did not exit at once");
    assert!(err.contains(&state.path().display().to_string()), "{err}");
    assert!(err.contains(&format!("pid {}", first.pid())), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    let (_, more) = clients(&mut link, mac, 2, 20, 3);
    assert!(more.len() >= 18, "the first daemon stopped serving");
    acked.extend(more);
    first.signal_and_wait(Signal::SIGKILL);
    let (rec, _) = recovered_leases(state.path());
    check_recovered("second daemon", &acked, &rec, LEASE_TIME);
    // `dhcp-xdp leases` reads a directory a daemon holds without changing it.
    let d = start(&a, &cfg, state.path(), None);
    let (rec2, _) = recovered_leases(state.path());
    assert_eq!(rec2.len(), rec.len());
    let out = Command::new(daemon_bin()).args(["leases", "--state-dir"]).arg(state.path()).output().expect("leases");
    assert!(out.status.success());
    drop(d);
}
