//! End to end with real DHCP clients: udhcpc, dhclient and dhcpcd against the real daemon over
//! a veth pair, plus restart, DECLINE and INIT-REBOOT checks with crafted frames.

use std::{net::Ipv4Addr, time::Duration};

use nix::sys::signal::Signal;
use tests::{
    Daemon, TempDir, TwoHosts,
    clients::{Dhclient, Dhcpcd, Udhcpc, dhcpcd_oneshot},
    frames::{Link, Request},
    sh,
};

const BASIC: &str = r#"
[server]
lease-time = 600
[options]
dns-servers = ["198.18.0.53"]
domain-name = "test.example"
[[subnet]]
subnet = "198.18.0.0/24"
options = { routers = ["198.18.0.1"] }
  [[subnet.pool]]
  range = "198.18.0.100-198.18.0.150"
"#;

fn in_pool(ip: &str) -> Ipv4Addr {
    let a: Ipv4Addr = ip.parse().unwrap_or_else(|_| panic!("not an address: {ip:?}"));
    assert!((Ipv4Addr::new(198, 18, 0, 100)..=Ipv4Addr::new(198, 18, 0, 150)).contains(&a), "{a} outside the pool");
    a
}

#[test]
fn udhcpc_gets_configured_lease_releases_and_gets_it_back() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let cfg = dir.config(&one_address());
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let client = Udhcpc::new();
    let got = client.obtain(&net.client, &net.client_if, false, &[]).expect("udhcpc got no lease");
    let ip = in_pool(&got["ip"]);
    assert_eq!(got["subnet"], "255.255.255.0");
    assert_eq!(got["router"], "198.18.0.1");
    assert_eq!(got["dns"], "198.18.0.53");
    assert_eq!(got["lease"], "600");
    assert_eq!(got["domain"], "test.example");
    assert_eq!(got["serverid"], "198.18.0.1");
    // Again, releasing on exit: same address (the lease is still ours), then released.
    let again = client.obtain(&net.client, &net.client_if, true, &[]).expect("second lease");
    assert_eq!(in_pool(&again["ip"]), ip);
    // After the release the address is free: another client can have it; once that one
    // releases it too, this client gets it back.
    std::thread::sleep(Duration::from_millis(300));
    another_client_gets_the_released(&net, ip);
    let third = client.obtain(&net.client, &net.client_if, false, &[]).expect("third lease");
    assert_eq!(in_pool(&third["ip"]), ip, "the address is free again");
    assert!(net.ping_server(), "kernel path on the served interface");
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(exit.status.success(), "{:?}", exit.stderr);
    assert_eq!(exit.engine_sum("rx_release"), 2);
    assert_eq!(exit.engine_sum("tx_ack"), 4);
    assert_eq!(exit.leases("bound"), 1);
    // Every request the XDP program redirected was seen by a worker.
    assert_eq!(exit.xdp_counter("redirected"), exit.worker_sum("rx"));
}

#[test]
fn dhclient_gets_lease_renews_at_t1_and_releases() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let cfg =
        dir.config(&one_address().replace("lease-time = 600", "lease-time = 60\nrenew-time = 3\nrebind-time = 50"));
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let client = Dhclient::new(&net.client, &net.client_if);
    assert!(client.obtain(&net.client), "dhclient -1 failed");
    let bound = client.wait_for("BOUND", 0, Duration::from_secs(5)).expect("BOUND event");
    let ip = in_pool(&bound["ip"]);
    assert_eq!(bound["mask"], "255.255.255.0");
    assert_eq!(bound["routers"], "198.18.0.1");
    assert_eq!(bound["dns"], "198.18.0.53");
    assert_eq!(bound["lease"], "60");
    let n = client.events().len();
    let renew = client.wait_for("RENEW", n, Duration::from_secs(12)).expect("dhclient renewed at T1");
    assert_eq!(renew["ip"], bound["ip"], "renewal keeps the address");
    client.release(&net.client);
    std::thread::sleep(Duration::from_millis(500));
    assert!(net.ping_server());
    another_client_gets_the_released(&net, ip);
    // The address is free again and this client gets it back.
    let n = client.events().len();
    assert!(client.obtain(&net.client), "dhclient after its release");
    let again = client
        .wait_for("BOUND", n, Duration::from_secs(5))
        .or_else(|| client.wait_for("REBOOT", n, Duration::from_secs(1)))
        .expect("lease after release");
    assert_eq!(in_pool(&again["ip"]), ip, "affinity after RELEASE");
    client.kill();
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(exit.engine_sum("rx_request_renewing") >= 1, "unicast renewal at T1");
    assert_eq!(exit.engine_sum("rx_release"), 2);
    assert_eq!(exit.engine_sum("tx_nak"), 0);
    assert_eq!(exit.leases("bound"), 1);
}

#[test]
fn dhclient_restarted_with_its_lease_gets_the_same_address() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let cfg = dir.config(BASIC);
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let client = Dhclient::new(&net.client, &net.client_if);
    assert!(client.obtain(&net.client));
    let ip = client.wait_for("BOUND", 0, Duration::from_secs(5)).expect("bound")["ip"].clone();
    client.kill();
    let n = client.events().len();
    assert!(client.obtain(&net.client), "second start");
    let again = client
        .wait_for("REBOOT", n, Duration::from_secs(5))
        .or_else(|| client.wait_for("BOUND", n, Duration::from_secs(1)));
    assert_eq!(again.expect("lease after restart")["ip"], ip);
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert_eq!(exit.engine_sum("tx_nak"), 0);
}

#[test]
fn dhcpcd_configures_address_and_default_route() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let cfg = dir.config(BASIC);
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let out = dhcpcd_oneshot(&net.client, &net.client_if);
    let leased =
        out.lines().find(|l| l.contains("leased 198.18.0.")).unwrap_or_else(|| panic!("dhcpcd output:\n{out}"));
    assert!(leased.ends_with("for 600 seconds"), "lease time: {leased}");
    let ip = in_pool(leased.split_whitespace().find(|w| w.starts_with("198.18.0.")).expect("address"));
    let addrs =
        String::from_utf8_lossy(&sh(net.client.ip().args(["-4", "addr", "show", "dev", &net.client_if])).stdout)
            .into_owned();
    assert!(addrs.contains(&format!("inet {ip}/24")), "address and mask: {addrs}");
    let routes = String::from_utf8_lossy(&sh(net.client.ip().args(["-4", "route"])).stdout).into_owned();
    assert!(routes.contains("default via 198.18.0.1"), "{routes}");
    // dhcpcd's resolv.conf hook wrote the namespace's own file (see `Netns::new`).
    let resolv = std::fs::read_to_string(net.client.etc().join("resolv.conf")).unwrap_or_default();
    assert!(resolv.contains("nameserver 198.18.0.53") && resolv.contains("test.example"), "{resolv}");
    assert!(net.ping_server());
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert_eq!(exit.engine_sum("tx_ack"), 1);
}

/// `cargo xtask run --iface <veth>` without a config file serves the interface's own subnet.
#[test]
fn zero_config_via_xtask_run_serves_udhcpc() {
    let net = TwoHosts::for_dhcp(1);
    let state = TempDir::new("dxstate");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("root").to_path_buf();
    let mut cmd = net.server.exec(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(&root)
        .args(["xtask", "run", "--iface", &net.server_if, "--", "--stats-interval", "0", "--state-dir"])
        .arg(state.path());
    let daemon = Daemon::spawn(cmd, None);
    let got = Udhcpc::new().obtain(&net.client, &net.client_if, false, &[]).expect("no lease in zero-config");
    let ip: Ipv4Addr = got["ip"].parse().expect("ip");
    assert_eq!(ip.octets()[..3], [198, 18, 0], "address from the interface's subnet");
    assert_ne!(ip, Ipv4Addr::new(198, 18, 0, 1), "never the server's own address");
    assert_eq!(got["router"], "198.18.0.1");
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(exit.status.success());
    drop(state);
}

/// A raw client for what real clients do not do on demand (DECLINE, foreign INIT-REBOOT).
struct Raw {
    link: Link,
    mac: [u8; 6],
}

impl Raw {
    fn new(net: &TwoHosts) -> Self {
        Self { link: Link::open(&net.client, &net.client_if), mac: TwoHosts::mac(&net.client, &net.client_if) }
    }
    fn ask(&mut self, r: &Request) -> Option<tests::frames::Reply> {
        self.link.send(&r.build());
        let xid = r.xid;
        self.link.replies(1, Duration::from_secs(2), |x| x.xid() == xid).pop()
    }
    fn dora(&mut self, chaddr: [u8; 6], xid: u32) -> Ipv4Addr {
        let offer = self.ask(&Request::discover(self.mac, chaddr, xid)).expect("offer");
        let yiaddr = Ipv4Addr::from(<[u8; 4]>::try_from(&offer.bootp[16..20]).expect("4"));
        let mut req = Request::discover(self.mac, chaddr, xid + 1);
        req.options = vec![53, 1, 3, 50, 4];
        req.options.extend_from_slice(&yiaddr.octets());
        req.options.extend_from_slice(&[54, 4, 198, 18, 0, 1]);
        let ack = self.ask(&req).expect("ack");
        assert_eq!(ack.message_type(), Some(5), "ACK");
        yiaddr
    }
}

/// Waits (up to 5 s) until the daemon's `status-get` says `field` reached `n`.
fn wait_for_reloads(daemon: &Daemon, field: &str, n: u64) {
    let socket = daemon.socket().to_str().expect("utf8").to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let out = std::process::Command::new(tests::daemon_bin())
            .args(["ctl", "--socket", &socket, "status-get"])
            .output()
            .expect("dhcp-xdp ctl");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if v["arguments"][field].as_u64().is_some_and(|x| x >= n) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{field} never reached {n}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A pool of one address, so that only a RELEASE that took effect lets another client have it.
fn one_address() -> String {
    BASIC.replace("198.18.0.150", "198.18.0.100")
}

/// A client that is not the one that released `ip` binds it (the pool holds only `ip`: a
/// RELEASE the server ignored leaves it nothing), then releases it again.
fn another_client_gets_the_released(net: &TwoHosts, ip: Ipv4Addr) {
    let mut raw = Raw::new(net);
    let chaddr = [2, 0x5e, 0, 0, 0, 1];
    let got = raw.dora(chaddr, 0x5e00);
    assert_eq!(got, ip, "another client got the released address");
    let mut release = Request::discover(raw.mac, chaddr, 0x5e10);
    release.options = vec![53, 1, 7, 54, 4, 198, 18, 0, 1];
    release.ciaddr = ip;
    raw.link.send(&release.build());
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn declined_address_goes_to_probation_and_next_client_gets_another() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let cfg = dir.config(&BASIC.replace("198.18.0.150", "198.18.0.101"));
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg, "--workers", "1"]);
    let mut raw = Raw::new(&net);
    let a = raw.dora([2, 7, 0, 0, 0, 1], 0x100);
    let mut decline = Request::discover(raw.mac, [2, 7, 0, 0, 0, 1], 0x200);
    decline.options = vec![53, 1, 4, 50, 4];
    decline.options.extend_from_slice(&a.octets());
    decline.options.extend_from_slice(&[54, 4, 198, 18, 0, 1]);
    raw.link.send(&decline.build());
    std::thread::sleep(Duration::from_millis(300));
    // The decliner asks again: it is given the other address (a DECLINE the server ignored
    // would leave it its binding, and the same address).
    let b = raw.dora([2, 7, 0, 0, 0, 1], 0x300);
    assert_ne!(a, b, "declined address handed out again");
    // Pool of two: one on probation, one bound → nothing left, even for a client asking for
    // the declined address by name (option 50).
    let mut wants_a = Request::discover(raw.mac, [2, 7, 0, 0, 0, 3], 0x400);
    wants_a.options = vec![53, 1, 1, 50, 4];
    wants_a.options.extend_from_slice(&a.octets());
    assert!(raw.ask(&wants_a).is_none(), "the declined address was offered");
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert_eq!(exit.engine_sum("rx_decline"), 1);
    assert_eq!(exit.leases("declined"), 1);
    assert_eq!(exit.worker_sum("drop_no_address"), 1);
}

#[test]
fn init_reboot_from_another_subnet_naks_when_authoritative_and_is_ignored_otherwise() {
    for (authoritative, expect_nak) in [(true, true), (false, false)] {
        let net = TwoHosts::for_dhcp(1);
        let dir = TempDir::new("cfg");
        let body = BASIC.replace(
            "subnet = \"198.18.0.0/24\"",
            &format!("subnet = \"198.18.0.0/24\"\nauthoritative = {authoritative}"),
        );
        let cfg = dir.config(&body);
        let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
        let mut raw = Raw::new(&net);
        let mut req = Request::discover(raw.mac, [2, 8, 0, 0, 0, 1], 0x500);
        req.options = vec![53, 1, 3, 50, 4, 198, 18, 77, 9];
        let reply = raw.ask(&req);
        assert_eq!(
            reply.as_ref().and_then(|r| r.message_type()) == Some(6),
            expect_nak,
            "authoritative={authoritative}: {reply:?}"
        );
        if !expect_nak {
            assert!(reply.is_none(), "non-authoritative server must stay silent");
        }
        // Then the client starts over and gets a fresh address by DISCOVER.
        let a = raw.dora([2, 8, 0, 0, 0, 1], 0x600);
        in_pool(&a.to_string());
        drop(daemon);
    }
}

#[test]
fn leases_survive_sigterm_and_sigkill_restarts() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let cfg = dir.config(BASIC);
    let state = TempDir::new("state");
    let args = ["--config", cfg.as_str(), "--state-dir", state.path().to_str().expect("utf8")];
    let mut raw = Raw::new(&net);
    let mut daemon = Daemon::start(&net.server, &net.server_if, &args);
    let clients: Vec<[u8; 6]> = (0..5).map(|i| [2, 9, 0, 0, 0, i]).collect();
    let addrs: Vec<Ipv4Addr> = clients.iter().enumerate().map(|(i, c)| raw.dora(*c, 0x1000 + i as u32 * 16)).collect();
    for (round, sig) in [Signal::SIGTERM, Signal::SIGKILL].into_iter().enumerate() {
        daemon.signal_and_wait(sig);
        daemon = Daemon::start(&net.server, &net.server_if, &args);
        let status = daemon.status();
        assert_eq!(status["recovered-leases"].as_u64(), Some(5 + round as u64), "{status}");
        // Renewing (ciaddr set) keeps each address.
        for (i, (c, a)) in clients.iter().zip(&addrs).enumerate() {
            let mut renew = Request::discover(raw.mac, *c, 0x2000 + (round * 16 + i) as u32);
            renew.src_ip = *a;
            renew.ciaddr = *a;
            renew.options = vec![53, 1, 3];
            let ack = raw.ask(&renew).expect("renewal answered");
            assert_eq!(ack.message_type(), Some(5), "renewal ACKed after restart {round}");
            assert_eq!(&ack.bootp[16..20], &a.octets());
        }
        // A new client gets none of the bound addresses.
        let fresh = raw.dora([2, 9, 1, 0, 0, round as u8], 0x3000 + round as u32 * 16);
        assert!(!addrs.contains(&fresh), "{fresh} is still bound to another client");
    }
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert_eq!(exit.leases("bound"), 7);
}

/// Renewals go to a server identifier nobody answers for (a configured override), so they go
/// unanswered; at T2 the client broadcasts a REBINDING request, which the daemon answers.
#[test]
fn dhclient_rebinds_when_renewals_go_unanswered() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let body = BASIC
        .replace("lease-time = 600", "lease-time = 60\nrenew-time = 2\nrebind-time = 5\nserver-id = \"198.18.0.9\"");
    let cfg = dir.config(&body);
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let client = Dhclient::new(&net.client, &net.client_if);
    assert!(client.obtain(&net.client), "dhclient -1 failed");
    let bound = client.wait_for("BOUND", 0, Duration::from_secs(5)).expect("BOUND");
    assert_eq!(bound["server"], "198.18.0.9");
    // dhclient labels the extension RENEW or REBIND depending on its version; what counts is
    // that it was extended while no renewal could reach a server. Its first renewal goes out at
    // T1 (2 s); the next try comes its `initial-interval` (10 s by default) later, past T2, and
    // is the REBINDING broadcast: about 12 s after binding, so allow well beyond that.
    let n = client.events().len();
    let extended = client
        .wait_for("REBIND", n, Duration::from_secs(30))
        .or_else(|| client.events().into_iter().skip(n).find(|e| e["reason"] == "RENEW"))
        .unwrap_or_else(|| panic!("lease not extended: {:?}", client.events()));
    assert_eq!(extended["ip"], bound["ip"]);
    client.kill();
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert_eq!(exit.engine_sum("rx_request_renewing"), 0, "no unicast renewal can reach the daemon");
    assert!(exit.engine_sum("rx_request_rebinding") >= 1, "REBINDING broadcast answered");
    assert!(exit.engine_sum("tx_ack") >= 2);
    assert_eq!(exit.engine_sum("tx_nak"), 0);
}

/// SIGHUP with a valid new file swaps it in (new options reach the next client) without losing
/// leases; an invalid file is refused and the old one keeps serving.
#[test]
fn sighup_reloads_valid_config_and_keeps_old_on_error() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let cfg = dir.config(BASIC);
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let mut raw = Raw::new(&net);
    let a = raw.dora([2, 10, 0, 0, 0, 1], 0x10);
    std::fs::write(&cfg, BASIC.replace("198.18.0.53", "198.18.0.54")).expect("rewrite");
    nix::sys::signal::kill(daemon.pid(), Signal::SIGHUP).expect("hup");
    wait_for_reloads(&daemon, "reloads-applied", 1);
    let got = Udhcpc::new().obtain(&net.client, &net.client_if, false, &[]).expect("lease after reload");
    assert_eq!(got["dns"], "198.18.0.54", "new options in force");
    std::fs::write(&cfg, "[[subnet]]\nsubnet = \"nonsense\"\n").expect("rewrite");
    nix::sys::signal::kill(daemon.pid(), Signal::SIGHUP).expect("hup");
    wait_for_reloads(&daemon, "reloads-rejected", 1);
    // The old configuration still answers, and the first lease is still bound to its client.
    let mut renew = Request::discover(raw.mac, [2, 10, 0, 0, 0, 1], 0x20);
    renew.ciaddr = a;
    renew.src_ip = a;
    renew.options = vec![53, 1, 3];
    let ack = raw.ask(&renew).expect("answered after a rejected reload");
    assert_eq!(ack.message_type(), Some(5));
    // The rejected reload named the file's line and field.
    let last = daemon.status()["last-reload"].as_str().unwrap_or_default().to_owned();
    assert!(last.starts_with("rejected") && last.contains(":2: subnet[0].subnet"), "{last}");
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert_eq!(exit.leases("bound"), 2);
}

/// dhcpcd in the foreground: it renews at T1 (unicast, answered) and, when its renewals cannot
/// reach the server (server identifier nobody owns), rebinds at T2 by broadcast.
#[test]
fn dhcpcd_renews_at_t1_and_rebinds_when_renewals_go_unanswered() {
    for (server_id, expect) in
        [("", "renewing lease"), ("server-id = \"198.18.0.9\"\n", "failed to renew DHCP, rebinding")]
    {
        let net = TwoHosts::for_dhcp(1);
        let dir = TempDir::new("cfg");
        let cfg = dir.config(
            &BASIC
                .replace("lease-time = 600", &format!("lease-time = 60\nrenew-time = 2\nrebind-time = 5\n{server_id}")),
        );
        let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
        let out = net
            .client
            .exec("timeout")
            // dhcpcd has been seen not to exit on timeout's SIGTERM (its privilege-separation
            // processes hung): SIGKILL it 3 s later rather than hang the suite.
            .args(["-k", "3", "12"])
            .arg(tests::tool("dhcpcd", "dhcpcd5"))
            .args(["-4", "-B", "-d", "--noipv4ll", "--noarp", "-t", "10", &net.client_if])
            .output()
            .expect("dhcpcd");
        let _ = std::fs::remove_file(format!("/var/lib/dhcpcd/{}.lease", net.client_if));
        let log = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        let at = log.find(expect).unwrap_or_else(|| panic!("dhcpcd never logged {expect:?}:\n{log}"));
        assert!(log[at..].contains("acknowledged 198.18.0.1"), "no ACK after {expect:?}:\n{log}");
        let exit = daemon.signal_and_wait(Signal::SIGTERM);
        if server_id.is_empty() {
            assert!(exit.engine_sum("rx_request_renewing") >= 1);
        } else {
            assert_eq!(exit.engine_sum("rx_request_renewing"), 0);
            assert!(exit.engine_sum("rx_request_rebinding") >= 1);
        }
        assert_eq!(exit.engine_sum("tx_nak"), 0);
    }
}

/// udhcpc in the foreground renews by unicast at half its lease (busybox ignores option 58), 30 s
/// here, and is answered (RENEWING). When its renewals cannot reach the server (a server
/// identifier nobody owns) it rebinds by broadcast and is answered (REBINDING); to not wait for
/// that at its own pace, it is told to renew now (SIGUSR1). It keeps its address either way.
#[test]
fn udhcpc_renews_at_half_lease_and_rebinds_when_renewals_go_unanswered() {
    for (server_id, state) in [("", "rx_request_renewing"), ("server-id = \"198.18.0.9\"\n", "rx_request_rebinding")] {
        let net = TwoHosts::for_dhcp(1);
        let dir = TempDir::new("cfg");
        let cfg = dir.config(&BASIC.replace("lease-time = 600", &format!("lease-time = 60\n{server_id}")));
        let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
        let client = Udhcpc::new();
        let mut run = client.spawn(&net.client, &net.client_if, &[]);
        let bound = run.wait_event("bound", Duration::from_secs(10)).expect("udhcpc bound");
        let renewed = if server_id.is_empty() {
            run.wait_event("renew", Duration::from_secs(45))
        } else {
            run.signal(Signal::SIGUSR1);
            run.wait_event("renew", Duration::from_secs(15))
        };
        let renewed = renewed.unwrap_or_else(|| panic!("no ACK counted as {state}"));
        assert_eq!(renewed["ip"], bound["ip"], "{state} keeps the address");
        assert_eq!(renewed["lease"], "60");
        drop(run);
        assert!(net.ping_server(), "kernel path on the served interface");
        let exit = daemon.signal_and_wait(Signal::SIGTERM);
        assert!(exit.engine_sum(state) >= 1, "{state}: {:?}", exit.stdout);
        if server_id.is_empty() {
            assert_eq!(exit.engine_sum("rx_request_rebinding"), 0, "answered renewal needs no rebind");
        } else {
            assert_eq!(exit.engine_sum("rx_request_renewing"), 0, "no unicast renewal can reach the daemon");
        }
        assert_eq!(exit.engine_sum("tx_nak"), 0);
        assert_eq!(exit.engine_sum("rx_request"), exit.engine_sum("tx_ack"), "every REQUEST answered");
        assert_eq!(exit.leases("bound"), 1);
    }
}

/// `dhcpcd -k` makes the running dhcpcd send a RELEASE and exit: the lease is freed, and the same
/// client gets the same address back.
#[test]
fn dhcpcd_releases_and_gets_its_address_back() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let cfg = dir.config(&one_address());
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let mut client = Dhcpcd::spawn(&net.client, &net.client_if, &[]);
    let leased = client.wait_log("leased 198.18.0.", Duration::from_secs(10));
    let leased = leased.unwrap_or_else(|| panic!("dhcpcd got no lease:\n{}", client.log()));
    let ip = leased.split_whitespace().find(|w| w.starts_with("198.18.0.")).expect("address in log").to_owned();
    assert!(client.release(&net.client), "dhcpcd -k: no release:\n{}", client.log());
    assert!(client.wait_exit(Duration::from_secs(10)), "dhcpcd did not exit:\n{}", client.log());
    assert!(client.log().contains(&format!("releasing lease of {ip}")), "{}", client.log());
    drop(client);
    another_client_gets_the_released(&net, ip.parse().expect("address"));
    let again = dhcpcd_oneshot(&net.client, &net.client_if);
    assert!(again.contains(&format!("leased {ip} ")), "the address is free again:\n{again}");
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert_eq!(exit.engine_sum("rx_release"), 2, "{:?}", exit.stdout);
    assert_eq!(exit.engine_sum("tx_ack"), 3);
    assert_eq!(exit.leases("bound"), 1);
}

/// Host names are kept with the leases, as Kea keeps them: udhcpc's host name option (`-x
/// hostname:`) and another client's Client FQDN (RFC 4702, wire form) are in `lease4-get` and
/// `lease4-get-all`, through a reload, across SIGKILL (journal and recovery) and in `export`'s
/// Kea CSV.
#[test]
fn leases_keep_the_host_names_clients_give() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let cfg = dir.config(BASIC);
    let state = TempDir::new("state");
    let state_arg = state.path().display().to_string();
    let args = ["--config", cfg.as_str(), "--state-dir", state_arg.as_str()];
    let daemon = Daemon::start(&net.server, &net.server_if, &args);
    let got = Udhcpc::new()
        .obtain(&net.client, &net.client_if, false, &["-x", "hostname:cpe-alpha"])
        .expect("udhcpc got no lease");
    let udhcpc_ip = in_pool(&got["ip"]);
    // A second client, by frames: an FQDN in canonical wire form (the E flag).
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    let fqdn: &[u8] = b"\x51\x19\x05\x00\x00\x08set-top1\x07example\x03net\x00";
    let chaddr = [2, 0x68, 0, 0, 0, 1];
    let ask = |link: &mut Link, options: Vec<u8>, xid: u32| {
        let mut r = Request::discover(mac, chaddr, xid);
        r.options = options;
        (0..5).find_map(|_| {
            link.send(&r.build());
            link.replies(1, Duration::from_millis(500), |x| x.xid() == xid).pop()
        })
    };
    let offer = ask(&mut link, [&[53, 1, 1][..], fqdn].concat(), 0x6801).expect("offer");
    let stb_ip = Ipv4Addr::new(offer.bootp[16], offer.bootp[17], offer.bootp[18], offer.bootp[19]);
    let req = [&[53, 1, 3, 50, 4][..], &stb_ip.octets(), &[54, 4, 198, 18, 0, 1], fqdn].concat();
    assert_eq!(ask(&mut link, req, 0x6802).and_then(|a| a.message_type()), Some(5), "the set-top box is ACKed");

    let hostname = |daemon: &Daemon, ip: Ipv4Addr| {
        let a = daemon.ask("lease4-get", serde_json::json!({ "ip-address": ip.to_string() }));
        a["arguments"]["hostname"].as_str().unwrap_or_else(|| panic!("no lease of {ip}: {a}")).to_owned()
    };
    let expect = [(udhcpc_ip, "cpe-alpha"), (stb_ip, "set-top1.example.net")];
    for (ip, name) in expect {
        assert_eq!(hostname(&daemon, ip), name);
    }
    let all = daemon.ask("lease4-get-all", serde_json::json!({}));
    let names: Vec<&str> =
        all["arguments"]["leases"].as_array().expect("leases").iter().filter_map(|l| l["hostname"].as_str()).collect();
    assert!(names.contains(&"cpe-alpha") && names.contains(&"set-top1.example.net"), "{all}");
    // A reload rebuilds the lease tables: the names go with them.
    assert_eq!(daemon.ask("config-reload", serde_json::json!({}))["result"], 0);
    for (ip, name) in expect {
        assert_eq!(hostname(&daemon, ip), name, "after a reload");
    }
    // SIGKILL: the names come back from the journal.
    daemon.signal_and_wait(Signal::SIGKILL);
    let daemon = Daemon::start(&net.server, &net.server_if, &args);
    for (ip, name) in expect {
        assert_eq!(hostname(&daemon, ip), name, "after SIGKILL and recovery");
    }
    daemon.signal_and_wait(Signal::SIGTERM);
    let out = std::process::Command::new(tests::daemon_bin())
        .args(["export", "--state-dir", &state_arg, "--format", "kea-csv", "--config", &cfg])
        .output()
        .expect("dhcp-xdp export");
    let csv = String::from_utf8_lossy(&out.stdout);
    for (ip, name) in expect {
        // address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,…
        let row = csv.lines().find(|l| l.starts_with(&format!("{ip},"))).unwrap_or_else(|| panic!("{ip}: {csv}"));
        assert_eq!(row.split(',').nth(8), Some(name), "{row}");
    }
}
