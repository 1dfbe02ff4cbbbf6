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
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
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
