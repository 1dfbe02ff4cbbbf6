//! DHCPv6 end to end: real clients (ISC dhclient `-6`, for an address and for a prefix) against
//! the daemon over a veth pair, and the daemon's own account of what it gave (`lease6-*`,
//! statistics).

use std::{net::Ipv6Addr, time::Duration};

use nix::sys::signal::Signal;
use tests::{Daemon, TempDir, TwoHosts, clients::Dhclient};

const V6: &str = r#"
[[subnet]]
subnet = "198.18.0.0/24"
  [[subnet.pool]]
  range = "198.18.0.100-198.18.0.150"
[[subnet6]]
subnet = "2001:db8:1::/64"
valid-lifetime = 600
preferred-lifetime = 400
renew-timer = 3
rebind-timer = 300
options = { dns-servers = ["2001:db8::53"], domain-search = ["test.example"] }
  [[subnet6.pool]]
  range = "2001:db8:1::100-2001:db8:1::1ff"
  [[subnet6.pd-pool]]
  prefix = "2001:db8:100::"
  prefix-len = 48
  delegated-len = 56
"#;

fn in_pool(s: &str) -> Ipv6Addr {
    let a: Ipv6Addr = s.parse().unwrap_or_else(|_| panic!("not an IPv6 address: {s:?}"));
    let (lo, hi): (Ipv6Addr, Ipv6Addr) = ("2001:db8:1::100".parse().unwrap(), "2001:db8:1::1ff".parse().unwrap());
    assert!((lo..=hi).contains(&a), "{a} outside the pool");
    a
}

fn lease6_all(d: &Daemon) -> Vec<serde_json::Value> {
    d.ask("lease6-get-all", serde_json::json!({}))["arguments"]["leases"].as_array().cloned().unwrap_or_default()
}

fn statistic(d: &Daemon, name: &str) -> u64 {
    let all = d.ask("statistic-get-all", serde_json::json!({}));
    all["arguments"][name][0][0].as_u64().unwrap_or_else(|| panic!("no statistic {name}: {all}"))
}

/// dhclient -6 gets an address from the pool with the DNS servers and search list, renews it
/// at T1 (a RENEW naming it, extended), and releases it; the daemon lists the lease with the
/// client's DUID while it is held and not after.
#[test]
fn dhclient6_gets_an_address_renews_it_and_releases_it() {
    let net = TwoHosts::for_dhcp6(1);
    let dir = TempDir::new("cfg");
    let cfg = dir.config(V6);
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg, "--metrics", "198.18.255.1:9187"]);
    let client = Dhclient::new6(&net.client, &net.client_if, &["-N"]);
    assert!(client.obtain(&net.client), "dhclient -6 -1 failed");
    let bound = client.wait_for("BOUND6", 0, Duration::from_secs(10)).expect("BOUND6 event");
    let ip = in_pool(&bound["ip6"]);
    assert_eq!(bound["dns6"], "2001:db8::53");
    assert_eq!(bound["search6"], "test.example.");
    assert_eq!((bound["preferred6"].as_str(), bound["valid6"].as_str()), ("400", "600"));
    let leases = lease6_all(&daemon);
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(leases[0]["ip-address"], ip.to_string());
    assert_eq!(leases[0]["type"], "IA_NA");
    assert_eq!(leases[0]["valid-lft"], 600);
    let duid = leases[0]["duid"].as_str().unwrap().to_owned();
    let by_duid = daemon.ask("lease6-get-by-duid", serde_json::json!({ "duid": duid }));
    assert_eq!(by_duid["result"], 0, "{by_duid}");
    // RENEW at T1 (3 s): the same address, extended.
    let n = client.events().len();
    let renew = client.wait_for("RENEW6", n, Duration::from_secs(12)).expect("dhclient renewed at T1");
    assert_eq!(renew["ip6"], ip.to_string(), "the renewal keeps the address");
    assert!(statistic(&daemon, "pkt6-renew-received") >= 1);
    client.release(&net.client);
    let released = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        lease6_all(&daemon).is_empty()
    });
    assert!(released, "the lease is gone after RELEASE: {:?}", lease6_all(&daemon));
    assert_eq!(statistic(&daemon, "pkt6-release-received"), 1);
    assert_eq!(statistic(&daemon, "pkt6-solicit-received"), 1);
    assert_eq!(statistic(&daemon, "pkt6-advertise-sent"), 1);
    assert_eq!(statistic(&daemon, "subnet[1].total-nas"), 256);
    // Prometheus: the v6 messages under family="v6", the v6 pools' census.
    let m = |series: &str| tests::metric(&net.server, "198.18.255.1:9187", series).unwrap_or(-1.0);
    assert_eq!(m("dhcp_xdp_packets_received_total{family=\"v6\",type=\"solicit\"}"), 1.0);
    assert_eq!(m("dhcp_xdp_packets_received_total{family=\"v6\",type=\"release\"}"), 1.0);
    assert_eq!(m("dhcp_xdp_packets_sent_total{family=\"v6\",type=\"advertise\"}"), 1.0);
    assert_eq!(m("dhcp_xdp_packets_received_total{family=\"v4\",type=\"discover\"}"), 0.0);
    let total = "dhcp_xdp_subnet6_leases{subnet_id=\"1\",prefix=\"2001:db8:1::/64\",type=\"IA_NA\",state=\"total\"}";
    assert_eq!(m(total), 256.0);
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(exit.status.success(), "{:?}", exit.stderr);
    assert_eq!(exit.xdp_counter("redirected_v6"), exit.worker_sum("rx") - exit.xdp_counter("redirected"));
}

/// dhclient -6 -P gets a /56 from the prefix-delegation pool; a second client (another DUID)
/// gets another; both listed as IA_PD.
#[test]
fn dhclient6_gets_a_delegated_prefix() {
    let net = TwoHosts::for_dhcp6(1);
    let dir = TempDir::new("cfg");
    let cfg = dir.config(V6);
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let first = Dhclient::new6(&net.client, &net.client_if, &["-P"]);
    assert!(first.obtain(&net.client), "dhclient -6 -P -1 failed");
    let bound = first.wait_for("BOUND6", 0, Duration::from_secs(10)).expect("BOUND6 event");
    let prefix = bound["prefix6"].clone();
    assert!(prefix.starts_with("2001:db8:100:") && prefix.ends_with("/56"), "{prefix}");
    first.kill();
    // Another client (its own lease file, so its own DUID) on the same link.
    let second = Dhclient::new6(&net.client, &net.client_if, &["-P"]);
    assert!(second.obtain(&net.client), "second dhclient -6 -P");
    let other = second.wait_for("BOUND6", 0, Duration::from_secs(10)).expect("BOUND6 event")["prefix6"].clone();
    assert_ne!(other, prefix);
    let leases = lease6_all(&daemon);
    assert_eq!(leases.len(), 2, "{leases:?}");
    assert!(leases.iter().all(|l| l["type"] == "IA_PD" && l["prefix-len"] == 56), "{leases:?}");
    let listed: Vec<String> =
        leases.iter().map(|l| format!("{}/{}", l["ip-address"].as_str().unwrap(), l["prefix-len"])).collect();
    assert!(listed.contains(&prefix) && listed.contains(&other), "{listed:?}");
    assert_eq!(statistic(&daemon, "subnet[1].assigned-pds"), 2);
    second.kill();
}

/// The v6 leases are journaled before the REPLY that promises them: a daemon killed with
/// SIGKILL and started again on the same state lists the same address and prefix for the same
/// DUID and IAIDs, keeps its server DUID (the client's RENEW, which names it, is answered and
/// extends the same bindings), and counts what it recovered.
#[test]
fn v6_leases_and_the_server_duid_survive_sigkill() {
    let net = TwoHosts::for_dhcp6(1);
    let dir = TempDir::new("cfg");
    let state = TempDir::new("state");
    let cfg = dir.config(V6);
    let args = ["--config", &cfg, "--state-dir", state.path().to_str().expect("utf8")];
    let daemon = Daemon::start(&net.server, &net.server_if, &args);
    let client = Dhclient::new6(&net.client, &net.client_if, &["-N", "-P"]);
    assert!(client.obtain(&net.client), "dhclient -6 -N -P");
    // dhclient runs its script once per address and once per prefix.
    let (ip, prefix) = client.address_and_prefix(Some("BOUND6"), 0);
    let ip = in_pool(&ip);
    assert!(prefix.ends_with("/56"), "{prefix}");
    let before = lease6_all(&daemon);
    assert_eq!(before.len(), 2, "{before:?}");
    let duid_file = std::fs::read_to_string(state.path().join("server-duid")).expect("server-duid kept");
    let killed = daemon.signal_and_wait(Signal::SIGKILL);
    assert!(!killed.status.success());
    // What the state directory holds, read without a daemon (`dhcp-xdp leases`).
    let out = std::process::Command::new(tests::daemon_bin())
        .args(["leases", "--state-dir"])
        .arg(state.path())
        .output()
        .expect("dhcp-xdp leases");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().filter(|l| l.starts_with("lease6 ") && l.contains("state=Bound")).count(), 2, "{text}");
    let daemon = Daemon::start(&net.server, &net.server_if, &args);
    let after = lease6_all(&daemon);
    let strip = |v: &[serde_json::Value]| -> Vec<(String, u64, String, String, u64)> {
        v.iter()
            .map(|l| {
                (
                    l["ip-address"].as_str().unwrap().to_owned(),
                    l["prefix-len"].as_u64().unwrap(),
                    l["duid"].as_str().unwrap().to_owned(),
                    l["type"].as_str().unwrap().to_owned(),
                    l["iaid"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&after), strip(&before), "recovered lease by lease");
    assert_eq!(std::fs::read_to_string(state.path().join("server-duid")).unwrap(), duid_file);
    // The client's RENEW at T1 names the server DUID: answered, same bindings.
    let n = client.events().len();
    let (renewed_ip, renewed_prefix) = client.address_and_prefix(Some("RENEW6"), n);
    assert_eq!(renewed_ip, ip.to_string(), "RENEW6 answered after the restart");
    assert_eq!(renewed_prefix, prefix);
    assert!(statistic(&daemon, "pkt6-renew-received") >= 1);
    client.kill();
}

/// client ns ── veth ── relay ns (dhcrelay -6; 2001:db8:2::1 / 2001:db8:f::2) ── veth ── server
/// ns (2001:db8:f::1). Nothing leaves the three namespaces.
struct Relayed6(tests::ThreeHosts);

impl std::ops::Deref for Relayed6 {
    type Target = tests::ThreeHosts;
    fn deref(&self) -> &tests::ThreeHosts {
        &self.0
    }
}

impl Relayed6 {
    fn new() -> Self {
        use tests::{ipv6_ready, sh};
        let n = tests::ThreeHosts::new();
        // The daemon needs an IPv4 address on its interface too.
        sh(n.server.ip().args(["addr", "add", "198.18.0.1/24", "dev", &n.server_if]));
        ipv6_ready(&[
            (&n.client, &n.client_if, &[]),
            (&n.relay, &n.relay_down, &["2001:db8:2::1/64"]),
            (&n.relay, &n.relay_up, &["2001:db8:f::2/64"]),
            (&n.server, &n.server_if, &["2001:db8:f::1/64"]),
        ]);
        sh(n.server.ip().args(["-6", "route", "add", "2001:db8:2::/64", "via", "2001:db8:f::2"]));
        Self(n)
    }

    /// `dhcrelay -6` from the client link up to the server; `-I`: with interface-id.
    fn relay(&self, interface_id: bool) -> Dhcrelay6 {
        let mut c = self.relay.exec(tests::tool("dhcrelay", "isc-dhcp-relay"));
        c.args(["-6", "-d", "-q"]);
        if interface_id {
            c.arg("-I");
        }
        c.args(["-l", &self.relay_down, "-u", &format!("2001:db8:f::1%{}", self.relay_up)]);
        let pid = TempDir::new("relay6");
        c.arg("-pf").arg(pid.path().join("pid"));
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        let child = c.spawn().expect("spawn dhcrelay -6");
        std::thread::sleep(Duration::from_millis(500));
        Dhcrelay6(child, pid)
    }
}

/// dhcrelay in the foreground, killed on drop.
struct Dhcrelay6(std::process::Child, #[allow(dead_code)] TempDir);

impl Drop for Dhcrelay6 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Through a real relay (`dhcrelay -6`): the relay's link address chooses the subnet; with
/// `-I` its interface-id chooses the subnet configured with that interface-id instead (ISC
/// dhcrelay sends the number of the downstream interface, 1 for the first `-l`, as four bytes
/// in host order: `01000000` here). The replies go back through the relay (Relay-Repl, interface-id
/// echoed: dhcrelay drops what it cannot match).
#[test]
fn dhclient6_behind_dhcrelay_gets_the_subnet_of_its_link_or_of_its_interface_id() {
    let net = Relayed6::new();
    let dir = TempDir::new("cfg");
    let cfg = dir.config(
        r#"
[relays]
trusted6 = ["2001:db8:f::/64"]
[[subnet]]
subnet = "198.18.0.0/24"
  [[subnet.pool]]
  range = "198.18.0.100-198.18.0.150"
[[subnet6]]
subnet = "2001:db8:2::/64"
id = 20
  [[subnet6.pool]]
  range = "2001:db8:2::100-2001:db8:2::1ff"
[[subnet6]]
subnet = "2001:db8:3::/64"
id = 30
interface-id-hex = "01000000"
  [[subnet6.pool]]
  range = "2001:db8:3::100-2001:db8:3::1ff"
  [[subnet6.pd-pool]]
  prefix = "2001:db8:300::"
  prefix-len = 48
  delegated-len = 60
"#,
    );
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let by_link = {
        let _relay = net.relay(false);
        let client = Dhclient::new6(&net.client, &net.client_if, &["-N"]);
        assert!(client.obtain(&net.client), "dhclient -6 behind the relay");
        let bound = client.wait_for("BOUND6", 0, Duration::from_secs(10)).expect("BOUND6 through the relay");
        client.kill();
        bound["ip6"].clone()
    };
    assert!(by_link.starts_with("2001:db8:2::"), "the link address chose subnet 20: {by_link}");
    let by_interface_id = {
        let _relay = net.relay(true);
        let client = Dhclient::new6(&net.client, &net.client_if, &["-N", "-P"]);
        assert!(client.obtain(&net.client), "dhclient -6 -N -P behind the relay with -I");
        let got = client.address_and_prefix(Some("BOUND6"), 0);
        client.kill();
        got
    };
    assert!(by_interface_id.0.starts_with("2001:db8:3::"), "interface-id chose subnet 30: {by_interface_id:?}");
    assert!(by_interface_id.1.starts_with("2001:db8:300:") && by_interface_id.1.ends_with("/60"));
    let leases = lease6_all(&daemon);
    let subnets: Vec<u64> = leases.iter().map(|l| l["subnet-id"].as_u64().unwrap()).collect();
    assert_eq!(subnets.iter().filter(|s| **s == 20).count(), 1, "{leases:?}");
    assert_eq!(subnets.iter().filter(|s| **s == 30).count(), 2, "{leases:?}");
    assert!(statistic(&daemon, "pkt6-relayed-received") >= 4, "SOLICIT and REQUEST of each, relayed");
    let _ = &net.server;
}

/// WIDE's dhcp6c asks for an address and a prefix in one exchange; the daemon gives both to
/// its DUID, and the client puts a /64 of the delegated /56 on its LAN interface.
#[test]
fn wide_dhcp6c_gets_an_address_and_a_prefix_it_puts_on_its_lan() {
    let net = TwoHosts::for_dhcp6(1);
    // The client's LAN: a veth pair inside its namespace (no dummy driver needed).
    tests::sh(net.client.ip().args(["link", "add", "lan0", "type", "veth", "peer", "name", "lan0p"]));
    tests::sh(net.client.ip().args(["link", "set", "lan0p", "up"]));
    tests::sh(net.client.ip().args(["link", "set", "lan0", "up"]));
    let dir = TempDir::new("cfg");
    let cfg = dir.config(V6);
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let _client = tests::clients::Dhcp6c::spawn(&net.client, &net.client_if, "lan0");
    let mut leases = vec![];
    let both_bound = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        leases = lease6_all(&daemon);
        leases.len() == 2
    });
    assert!(both_bound, "dhcp6c did not bind an address and a prefix: {leases:?}");
    assert_eq!(leases[0]["duid"], leases[1]["duid"], "one client");
    let pd = leases.iter().find(|l| l["type"] == "IA_PD").expect("a prefix");
    let na = leases.iter().find(|l| l["type"] == "IA_NA").expect("an address");
    in_pool(na["ip-address"].as_str().unwrap());
    let prefix: Ipv6Addr = pd["ip-address"].as_str().unwrap().parse().unwrap();
    assert_eq!(pd["prefix-len"], 56);
    // The client configures its LAN from the prefix (sla-id 1: the second /64 of the /56).
    let on_lan = (0..50).find_map(|_| {
        let out = tests::sh(net.client.ip().args(["-6", "-o", "addr", "show", "dev", "lan0", "scope", "global"]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let found = text.split_whitespace().skip_while(|w| *w != "inet6").nth(1).map(str::to_owned);
        if found.is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        found
    });
    let on_lan = on_lan.expect("dhcp6c put no address from the prefix on lan0");
    let a: Ipv6Addr = on_lan.split('/').next().unwrap().parse().unwrap();
    assert_eq!(u128::from(a) >> 72, u128::from(prefix) >> 72, "{a} inside {prefix}/56");
    assert_eq!((u128::from(a) >> 64) & 0xff, 1, "sla-id 1");
}

/// dhcpcd asks for an address and a prefix together (no router on the link: `noipv6rs`);
/// the daemon binds both to its DUID and dhcpcd puts a /64 of the prefix on its LAN.
#[test]
fn dhcpcd_gets_an_address_and_a_prefix_together() {
    let net = TwoHosts::for_dhcp6(1);
    tests::sh(net.client.ip().args(["link", "add", "lan1", "type", "veth", "peer", "name", "lan1p"]));
    tests::sh(net.client.ip().args(["link", "set", "lan1p", "up"]));
    tests::sh(net.client.ip().args(["link", "set", "lan1", "up"]));
    let dir = TempDir::new("cfg");
    let cfg = dir.config(V6);
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let conf =
        format!("noipv6rs\nnohook resolv.conf\nduid\ninterface {}\n  ia_na 1\n  ia_pd 2 lan1/1/64\n", net.client_if);
    let client = tests::clients::Dhcpcd::spawn6(&net.client, &net.client_if, &conf);
    let mut leases = vec![];
    let both_bound = (0..150).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        leases = lease6_all(&daemon);
        leases.len() == 2
    });
    assert!(both_bound, "dhcpcd did not bind an address and a prefix: {leases:?}\n{}", client.log());
    assert_eq!(leases[0]["duid"], leases[1]["duid"], "one client");
    let pd = leases.iter().find(|l| l["type"] == "IA_PD").expect("a prefix");
    let na = leases.iter().find(|l| l["type"] == "IA_NA").expect("an address");
    let addr = in_pool(na["ip-address"].as_str().unwrap());
    let prefix: Ipv6Addr = pd["ip-address"].as_str().unwrap().parse().unwrap();
    // dhcpcd configures the address on its uplink and a /64 of the prefix on its LAN.
    let configured = |ifname: &str| {
        let out = tests::sh(net.client.ip().args(["-6", "-o", "addr", "show", "dev", ifname, "scope", "global"]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ready = (0..50).any(|_| {
        let ok = configured(&net.client_if).contains(&addr.to_string()) && configured("lan1").contains("inet6");
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    assert!(ready, "uplink: {} lan1: {}\n{}", configured(&net.client_if), configured("lan1"), client.log());
    let lan = configured("lan1");
    let a: Ipv6Addr = lan
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(u128::from(a) >> 72, u128::from(prefix) >> 72, "{a} inside {prefix}/56");
}

/// One daemon, both families, no configuration file: zero-config serves the interface's IPv4
/// subnet and its global IPv6 prefix; one client host gets an IPv4 lease (dhclient -4) and an
/// IPv6 one (dhclient -6) from it at the same time.
#[test]
fn a_dual_stack_client_gets_both_families_from_one_zero_config_daemon() {
    let net = TwoHosts::for_dhcp6(1);
    let daemon = Daemon::start(&net.server, &net.server_if, &[]);
    let v4 = Dhclient::new(&net.client, &net.client_if);
    let v6 = Dhclient::new6(&net.client, &net.client_if, &["-N"]);
    let (got4, got6) = std::thread::scope(|s| {
        let a = s.spawn(|| v4.obtain(&net.client));
        let b = s.spawn(|| v6.obtain(&net.client));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(got4 && got6, "dhclient -4: {got4}, dhclient -6: {got6}");
    let bound4 = v4.wait_for("BOUND", 0, Duration::from_secs(10)).expect("BOUND");
    let bound6 = v6.wait_for("BOUND6", 0, Duration::from_secs(10)).expect("BOUND6");
    assert!(bound4["ip"].starts_with("198.18.0."), "{bound4:?}");
    let a: Ipv6Addr = bound6["ip6"].parse().unwrap();
    let (lo, hi): (Ipv6Addr, Ipv6Addr) = ("2001:db8:1::1:0".parse().unwrap(), "2001:db8:1::1:ffff".parse().unwrap());
    assert!((lo..=hi).contains(&a), "{a} from the zero-config v6 pool");
    let v4_leases = daemon.ask("lease4-get-all", serde_json::json!({}));
    assert_eq!(v4_leases["arguments"]["leases"].as_array().map(Vec::len), Some(1), "{v4_leases}");
    assert_eq!(lease6_all(&daemon).len(), 1);
    v4.kill();
    v6.kill();
}

/// A client cannot pose as a relay: a Relay-Forw from outside `[relays] trusted6` (here from the
/// client's own link-local address, claiming the remote-id a reservation gives a prefix to) is
/// dropped and counted, while the same client's own SOLICIT is answered.
#[test]
fn a_forged_relay_forw_from_an_untrusted_source_is_dropped() {
    use tests::frames::{Frame6, Link, dhcp6_message, dhcp6_relay_forw};
    let net = TwoHosts::for_dhcp6(1);
    let dir = TempDir::new("cfg");
    let cfg = dir.config(&format!(
        "[relays]\ntrusted6 = [\"2001:db8:f::/64\"]\n{V6}  [[subnet6.reservation]]\n  remote-id = \"00000de9:6c696e652d37\"\n  prefixes = [\"2001:db8:100:ff00::/56\"]\n"
    ));
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    let duid = vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 0x66];
    let solicit = dhcp6_message(1, 0x42, &[(1, duid.clone()), (25, vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])]);
    let forged = dhcp6_relay_forw(
        0,
        "2001:db8:1::fffe".parse().unwrap(),
        "fe80::66".parse().unwrap(),
        &[(37, vec![0, 0, 0x0d, 0xe9, b'l', b'i', b'n', b'e', b'-', b'7'])],
        &solicit,
    );
    let mut relay_frame = Frame6::to_servers(mac, forged);
    relay_frame.src_port = 547;
    link.send(&relay_frame.build());
    let counted = daemon.wait_counters(Duration::from_secs(5), |c| c.worker_sum("drop_untrusted_relay") == 1);
    assert!(counted, "the forged Relay-Forw was not dropped as untrusted: {:?}", daemon.counters().0["workers"]);
    assert_eq!(statistic(&daemon, "pkt6-advertise-sent"), 0, "nothing answered");
    // The same client asking for itself is answered.
    link.send(&Frame6::to_servers(mac, solicit).build());
    let answered = daemon.wait_counters(Duration::from_secs(5), |c| c.0["messages6"]["pkt6-advertise-sent"] == 1);
    assert!(answered, "{:?}", daemon.counters().0["messages6"]);
}
