//! Edge defence on the wire: least privilege after setup, frames for another server left to
//! the kernel, a flooding chaddr dropped in XDP while others are served, relay fields from a
//! direct client ignored.

use std::{net::Ipv4Addr, time::Duration};

use nix::sys::signal::Signal;
use tests::{
    Daemon, TempDir, TwoHosts,
    frames::{Link, Request, dora},
};

/// `CapEff` and `CapPrm` of every thread of `pid`.
fn thread_caps(pid: i32) -> Vec<(String, u64, u64)> {
    let mut out = vec![];
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let t = t.expect("task").path();
        let status = std::fs::read_to_string(t.join("status")).unwrap_or_default();
        let cap = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex"))
                .unwrap_or(u64::MAX)
        };
        let comm = std::fs::read_to_string(t.join("comm")).unwrap_or_default().trim().to_owned();
        out.push((comm, cap("CapEff:"), cap("CapPrm:")));
    }
    out
}

/// After the XDP program is attached and the sockets bound, no thread of the daemon holds a
/// capability; it still serves, reloads and stops cleanly (the program is detached).
#[test]
fn every_thread_drops_its_capabilities_after_setup() {
    // Started without capabilities the daemon would have none to drop, and this would prove
    // nothing.
    tests::require_root();
    let own = thread_caps(std::process::id() as i32);
    assert!(own.iter().any(|(_, eff, _)| *eff != 0), "the test runs without capabilities: {own:?}");
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let cfg =
        dir.config("[[subnet]]\nsubnet = \"198.18.0.0/16\"\n[[subnet.pool]]\nrange = \"198.18.16.1-198.18.16.200\"\n");
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg, "--workers", "2"]);
    let pid = daemon.pid().as_raw();
    let caps = thread_caps(pid);
    assert!(caps.len() >= 4, "main, two workers, journal syncers: {caps:?}");
    for (comm, eff, prm) in &caps {
        assert_eq!((*eff, *prm), (0, 0), "thread {comm} kept capabilities {eff:x}/{prm:x}");
    }
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    let d = dora(&mut link, mac, [2, 0xca, 0, 0, 0, 1], 0x100, Duration::from_millis(500), 3);
    assert!(d.acked, "no lease without capabilities: {d:?}");
    let _ = nix::sys::signal::kill(daemon.pid(), Signal::SIGHUP);
    let reloaded = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        daemon.ask("status-get", serde_json::json!({}))["arguments"]["reloads-applied"] == 1
    });
    assert!(reloaded, "reload without capabilities: {}", daemon.status());
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(exit.status.success(), "{:?}", exit.stderr);
    assert!(!tests::xdp_attached(&net.server, &net.server_if), "XDP program left behind");
}

/// A DISCOVER unicast to another MAC (a frame a switch flooded) or to another address is not
/// answered: it passes to the kernel, counted.
#[test]
fn frames_for_another_server_are_left_to_the_kernel() {
    let net = TwoHosts::for_dhcp(1);
    let daemon = Daemon::start(&net.server, &net.server_if, &[]);
    let server_mac = TwoHosts::mac(&net.server, &net.server_if);
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    let mut to_other_mac = Request::discover(mac, [2, 0xcb, 0, 0, 0, 1], 0x200);
    to_other_mac.dst_mac = [2, 0x99, 0, 0, 0, 1];
    to_other_mac.dst_ip = Ipv4Addr::new(198, 18, 255, 99);
    let mut to_other_ip = Request::discover(mac, [2, 0xcb, 0, 0, 0, 2], 0x201);
    to_other_ip.dst_mac = server_mac;
    to_other_ip.dst_ip = Ipv4Addr::new(198, 18, 255, 99);
    for r in [&to_other_mac, &to_other_ip] {
        link.send(&r.build());
        assert!(link.replies(1, Duration::from_millis(500), |x| x.xid() == r.xid).is_empty(), "answered {r:?}");
    }
    let ok = Request::discover(mac, [2, 0xcb, 0, 0, 0, 3], 0x202);
    link.send(&ok.build());
    assert_eq!(link.replies(1, Duration::from_secs(2), |x| x.xid() == 0x202).len(), 1, "a broadcast is answered");
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert_eq!(exit.xdp_counter("not_for_us"), 2);
}

/// One chaddr sending 300 DISCOVERs as fast as it can is cut to its rate in XDP; another
/// client is served meanwhile.
#[test]
fn a_flooding_chaddr_is_cut_to_its_rate_in_xdp() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let cfg = dir.config(
        "[limits]\nrate-per-mac = 5\nburst-per-mac = 10\n[[subnet]]\nsubnet = \"198.18.0.0/16\"\n[[subnet.pool]]\nrange = \"198.18.16.1-198.18.16.200\"\n",
    );
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    for i in 0..300u32 {
        link.send(&Request::discover(mac, [2, 0xcc, 0, 0, 0, 1], 0x300 + i).build());
    }
    let flood_replies = link.replies(300, Duration::from_secs(1), |x| x.chaddr() == [2, 0xcc, 0, 0, 0, 1]).len();
    let d = dora(&mut link, mac, [2, 0xcc, 0, 0, 0, 2], 0x1000, Duration::from_millis(500), 3);
    assert!(d.acked, "another client was not served during the flood");
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(flood_replies <= 20, "{flood_replies} replies to a flooding chaddr (burst 10, 5/s)");
    assert!(exit.xdp_counter("rate_limited") >= 270, "dropped in XDP: {}", exit.xdp_counter("rate_limited"));
    assert!(exit.worker_sum("rx") < 40, "the flood reached the sockets: {}", exit.worker_sum("rx"));
}

/// rx VLAN offload (on by default on veth as on mlx5, ice, i40e, ixgbe) strips tags before
/// XDP sees them: the daemon turns it off at start and says so.
#[test]
fn vlan_tag_stripping_is_turned_off_at_start() {
    let net = TwoHosts::for_dhcp(1);
    let ethtool = tests::tool("ethtool", "ethtool");
    tests::sh(net.server.exec(&ethtool).args(["-K", &net.server_if, "rxvlan", "on"]));
    let daemon = Daemon::start(&net.server, &net.server_if, &[]);
    let vlan = daemon.status()["vlan"].as_str().unwrap_or_default().to_owned();
    assert!(vlan.starts_with("turned off") && vlan.contains("rx-vlan-offload"), "{vlan}");
    let k = tests::sh(net.server.exec(&ethtool).args(["-k", &net.server_if]));
    let k = String::from_utf8_lossy(&k.stdout);
    assert!(k.lines().any(|l| l.trim() == "rx-vlan-offload: off"), "{k}");
    drop(daemon);
}
