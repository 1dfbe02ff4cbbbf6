//! The forensic lease log against a running daemon: the lines match what the clients were given
//! (bound with their MAC, client id and host name, renewed, released, declined); `dhcp-xdp who`
//! answers who held an address at a time and what a MAC held; files rotate at their size and
//! are read across; a full log disk loses lines, counted and shown, never a lease, and the log
//! resumes when there is room; lines written before a SIGKILL are there after it.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use dhcp_xdp_core::calendar::iso8601;
use nix::sys::signal::Signal;
use serde_json::Value;
use tests::{Daemon, SmallDisk, TempDir, TwoHosts, daemon_bin, frames::RawClient};

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs()
}

const CONFIG: &str = "[server]\nlease-time = 600\n[[subnet]]\nsubnet = \"198.18.0.0/16\"\n[[subnet.pool]]\nrange = \"198.18.16.1-198.18.16.200\"\n";

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn who(log: &Path, args: &[&str]) -> String {
    let out = Command::new(daemon_bin()).arg("who").arg("--log").arg(log).args(args).output().expect("dhcp-xdp who");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn forensic(d: &Daemon) -> Value {
    d.counters().0["forensic-log"].clone()
}

/// Bound, renewed and released leases are lines with what the client sent; `who` finds the
/// holder at a time inside the binding and nobody after the release; a MAC's addresses too.
/// Lines written before a SIGKILL are there after it.
#[test]
fn lease_events_are_lines_and_who_answers_from_them() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("forensic");
    let log = dir.path().join("logs/leases.jsonl");
    let cfg = dir.config(&format!("{CONFIG}[forensic-log]\npath = \"{}\"\nfsync-interval-ms = 100\n", log.display()));
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let mut c = RawClient::new(&net);
    let (a_mac, b_mac) = ([2, 0xf0, 0, 0, 0, 1], [2, 0xf0, 0, 0, 0, 2]);
    let a = c.bind(a_mac, "cpe-a");
    let t_bound = unix_now();
    let b = c.bind(b_mac, "cpe-b");
    std::thread::sleep(Duration::from_millis(1100));
    c.renew(&net, a_mac, a);
    std::thread::sleep(Duration::from_millis(1100));
    c.release(&net, b_mac, b);
    assert!(
        daemon.wait_counters(Duration::from_secs(5), |f| f.0["forensic-log"]["written"] == 4),
        "{}",
        forensic(&daemon)
    );
    let got = lines(&log);
    let events: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|l| (l["event"].as_str().unwrap(), l["address"].as_str().unwrap(), l["hw-address"].as_str().unwrap()))
        .collect();
    let (a_s, b_s) = (a.to_string(), b.to_string());
    assert_eq!(
        events,
        [
            ("bound", a_s.as_str(), "02:f0:00:00:00:01"),
            ("bound", b_s.as_str(), "02:f0:00:00:00:02"),
            ("renewed", a_s.as_str(), "02:f0:00:00:00:01"),
            ("released", b_s.as_str(), "02:f0:00:00:00:02")
        ],
        "{got:#?}"
    );
    assert_eq!(got[0]["hostname"], "cpe-a");
    assert_eq!(got[0]["client-id"], "01:02:f0:00:00:00:01");
    assert_eq!(got[0]["valid-lft"], 600);
    assert!(got[0]["node"].as_str().is_some_and(|n| !n.is_empty()));
    // who: b's address was b's while bound, nobody's after the release; a's MAC holds a now.
    let during = iso8601(t_bound);
    assert!(who(&log, &["--address", &b_s, "--at", &during]).contains("02:f0:00:00:00:02"));
    let after = who(&log, &["--address", &b_s, "--at", &iso8601(unix_now() + 1)]);
    assert!(after.contains("nobody"), "{after}");
    let mac = who(&log, &["--mac", "02:f0:00:00:00:01"]);
    assert!(mac.contains(&a_s) && mac.contains("renewed"), "{mac}");
    // SIGKILL: what was written is there.
    let _ = daemon.signal_and_wait(Signal::SIGKILL);
    assert_eq!(lines(&log).len(), 4);
}

/// Files rotate at `rotate-size`, `keep` old ones are kept, and `who` reads across them.
#[test]
fn the_log_rotates_and_who_reads_the_rotated_files() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("forensic");
    let log = dir.path().join("leases.jsonl");
    let cfg = dir
        .config(&format!("{CONFIG}[forensic-log]\npath = \"{}\"\nrotate-size = \"2KiB\"\nkeep = 3\n", log.display()));
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let mut c = RawClient::new(&net);
    let mut held = vec![];
    for i in 0..12u8 {
        let mac = [2, 0xf1, 0, 0, 0, i];
        held.push((mac, c.bind(mac, &format!("host-{i}"))));
    }
    assert!(daemon.wait_counters(Duration::from_secs(5), |f| f.0["forensic-log"]["written"] == 12));
    let rotated: Vec<_> =
        (1..=5).map(|n| dir.path().join(format!("leases.jsonl.{n}"))).filter(|p| p.exists()).collect();
    assert!(!rotated.is_empty() && rotated.len() <= 3, "rotated files: {rotated:?}");
    for p in &rotated {
        assert!(std::fs::metadata(p).unwrap().len() >= 2048, "{p:?} rotated before its size");
    }
    // The last binding is in the current file, an older one in a rotated file: both found.
    let newest = held.last().unwrap();
    assert!(who(&log, &["--address", &newest.1.to_string()]).contains("02:f1:00:00:00:0b"));
    let lines_all: usize = rotated.iter().chain(std::iter::once(&log)).map(|p| lines(p).len()).sum();
    let oldest_kept = held.len() - lines_all;
    let (mac, addr) = held[oldest_kept];
    let out = who(&log, &["--address", &addr.to_string()]);
    assert!(out.contains(&dhcp_xdp_core::net::colon_hex(&mac)), "{out}");
}

/// A full log disk: leases go on (every client bound), the lines are lost, counted and shown
/// (`failing`); with room again the log resumes.
#[test]
fn a_full_log_disk_loses_lines_not_leases() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("forensic");
    let disk = SmallDisk::new(256);
    let log = disk.path().join("leases.jsonl");
    let cfg = dir.config(&format!(
        "{CONFIG}[metrics]\nlisten = \"198.18.255.1:9101\"\n[forensic-log]\npath = \"{}\"\nfsync-interval-ms = 50\n",
        log.display()
    ));
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let mut c = RawClient::new(&net);
    c.bind([2, 0xf2, 0, 0, 0, 0], "before");
    assert!(daemon.wait_counters(Duration::from_secs(5), |f| f.0["forensic-log"]["written"] == 1));
    disk.fill();
    let t = Instant::now();
    for i in 1..40u8 {
        // Every one bound: the log is not on the leases' path.
        c.bind([2, 0xf2, 0, 0, 0, i], &format!("host-name-long-enough-to-fill-{i}"));
    }
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(
        daemon.wait_counters(Duration::from_secs(5), |f| f.0["forensic-log"]["failing"] == true
            && f.0["forensic-log"]["lost"].as_u64() > Some(0)),
        "{}",
        forensic(&daemon)
    );
    assert_eq!(tests::metric(&net.server, "198.18.255.1:9101", "dhcp_xdp_forensic_log_failing{}"), Some(1.0));
    disk.empty();
    c.bind([2, 0xf2, 0, 0, 1, 0], "after");
    assert!(
        daemon.wait_counters(Duration::from_secs(5), |f| f.0["forensic-log"]["failing"] == false),
        "{}",
        forensic(&daemon)
    );
    assert!(lines(&log).iter().any(|l| l["hostname"] == "after"), "the log resumed");
}

/// A daemon serving a DHCPv6 subnet (an address pool and a /56 pd-pool, with `lifetimes`)
/// with its forensic log, and a real client (ISC dhclient -6 -N -P) bound by it; the log's path.
fn bound6(lifetimes: &str) -> (TwoHosts, TempDir, PathBuf, Daemon, tests::clients::Dhclient) {
    let net = TwoHosts::for_dhcp6(1);
    let dir = TempDir::new("forensic6");
    let log = dir.path().join("leases.jsonl");
    let cfg = dir.config(&format!(
        "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.100-198.18.0.150\"\n\
         [[subnet6]]\nsubnet = \"2001:db8:1::/64\"\n{lifetimes}\
         [[subnet6.pool]]\nrange = \"2001:db8:1::100-2001:db8:1::1ff\"\n\
         [[subnet6.pd-pool]]\nprefix = \"2001:db8:100::\"\nprefix-len = 48\ndelegated-len = 56\n\
         [forensic-log]\npath = \"{}\"\nfsync-interval-ms = 100\n",
        log.display()
    ));
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let client = tests::clients::Dhclient::new6(&net.client, &net.client_if, &["-N", "-P"]);
    assert!(client.obtain(&net.client), "dhclient -6 -N -P");
    (net, dir, log, daemon, client)
}

/// DHCPv6 leases in the log: a real client (ISC dhclient -6 with an address and a prefix) is
/// bound — an address line and a prefix line with its DUID and IAID — and releases both; `who`
/// names the holder of the address and of the prefix while bound, and nobody after.
#[test]
fn dhcpv6_addresses_and_prefixes_are_lines_too() {
    let (net, _dir, log, daemon, client) = bound6("valid-lifetime = 600\npreferred-lifetime = 400\n");
    let (ip, prefix) = client.address_and_prefix(Some("BOUND6"), 0);
    let during = iso8601(unix_now());
    assert!(
        daemon.wait_counters(Duration::from_secs(5), |f| f.0["forensic-log"]["written"] == 2),
        "{}",
        forensic(&daemon)
    );
    let got = lines(&log);
    let (p, len) = prefix.split_once('/').expect("prefix/len");
    let addr_line = got.iter().find(|l| l["address"] == ip.as_str()).expect("a line for the address");
    let prefix_line = got.iter().find(|l| l["address"] == p).expect("a line for the prefix");
    assert_eq!((addr_line["event"].as_str(), prefix_line["event"].as_str()), (Some("bound"), Some("bound")));
    assert_eq!(prefix_line["prefix-len"].to_string(), len);
    assert_eq!(addr_line["duid"], prefix_line["duid"], "one client");
    assert!(addr_line["duid"].as_str().is_some_and(|d| d.len() > 8) && addr_line["valid-lft"] == 600, "{addr_line}");
    client.release(&net.client);
    assert!(
        daemon.wait_counters(Duration::from_secs(5), |f| f.0["forensic-log"]["written"] == 4),
        "the release: {}",
        forensic(&daemon)
    );
    assert_eq!(lines(&log).iter().filter(|l| l["event"] == "released").count(), 2);
    let duid = addr_line["duid"].as_str().unwrap().to_owned();
    for what in [ip.as_str(), p] {
        assert!(who(&log, &["--address", what, "--at", &during]).contains(&duid), "{what} while bound");
        std::thread::sleep(Duration::from_millis(1100));
        assert!(who(&log, &["--address", what]).contains("nobody"), "{what} after the release");
    }
}

/// DHCPv6 leases that end are lines too: a real client (dhclient -6 with an address and a
/// prefix, 4 s valid lifetime) is killed once bound; the sweep ends both leases, each an
/// `expired` line with the client's DUID, and `who` then names nobody.
#[test]
fn dhcpv6_leases_that_end_are_expired_lines() {
    let (_net, _dir, log, daemon, client) =
        bound6("valid-lifetime = 4\npreferred-lifetime = 3\nrenew-timer = 2\nrebind-timer = 3\n");
    client.kill();
    let (ip, prefix) = client.address_and_prefix(Some("BOUND6"), 0);
    let (p, _) = prefix.split_once('/').expect("prefix/len");
    let expired = |what: &str| lines(&log).into_iter().find(|l| l["event"] == "expired" && l["address"] == what);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while (expired(&ip).is_none() || expired(p).is_none()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (a, b) = (expired(&ip), expired(p));
    assert!(a.is_some() && b.is_some(), "no expiry lines for {ip} and {p}: {:#?}", lines(&log));
    let bound = lines(&log).into_iter().find(|l| l["event"] == "bound" && l["address"] == ip.as_str()).expect("bound");
    assert_eq!(a.as_ref().map(|l| l["duid"].clone()), Some(bound["duid"].clone()), "the client's DUID");
    assert_eq!(b.map(|l| l["duid"].clone()), Some(bound["duid"].clone()));
    std::thread::sleep(Duration::from_millis(1100));
    assert!(who(&log, &["--address", &ip]).contains("nobody"), "after the expiry");
    drop(daemon);
}
