//! Moving leases between Kea and dhcp-xdp, with the real kea-dhcp4: clients bind with Kea,
//! its memfile CSV is imported, and the clients renew with dhcp-xdp and keep their addresses;
//! dhcp-xdp's leases are exported to a CSV that kea-dhcp4 loads, and the clients keep their
//! addresses with Kea again. And off ISC dhcpd: the `dhcpd.leases` the real dhcpd wrote (active,
//! released and abandoned bindings, a uid and a hostname) is imported and the clients keep
//! their addresses with dhcp-xdp.

use std::{
    net::Ipv4Addr,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use nix::sys::signal::Signal;
use serde_json::json;
use tests::{
    Daemon, Netns, TempDir, TwoHosts, daemon_bin,
    frames::{Link, Request, dora},
    tool,
};

const POOL: (&str, &str) = ("198.18.16.1", "198.18.16.200");
const CONFIG: &str = "[server]\nlease-time = 3600\n[[subnet]]\nsubnet = \"198.18.0.0/16\"\nid = 1\n[[subnet.pool]]\nrange = \"198.18.16.1-198.18.16.200\"\n";

/// A server process of a test (kea-dhcp4, dhcpd): SIGTERM on [`Server::stop`], killed on drop.
struct Server(Child);

impl Server {
    fn stop(mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// kea-dhcp4 on `iface` of `ns` with its lease file at `leases`.
struct Kea;

impl Kea {
    fn start(ns: &Netns, iface: &str, dir: &Path, leases: &Path) -> Server {
        let conf = dir.join("kea-dhcp4.json");
        let c = json!({ "Dhcp4": {
            "interfaces-config": { "interfaces": [iface], "dhcp-socket-type": "raw" },
            "lease-database": { "type": "memfile", "persist": true, "name": leases.display().to_string(), "lfc-interval": 0 },
            "valid-lifetime": 3600,
            "subnet4": [{ "id": 1, "subnet": "198.18.0.0/16", "pools": [{ "pool": format!("{} - {}", POOL.0, POOL.1) }] }],
            "loggers": [{ "name": "kea-dhcp4", "output_options": [{ "output": "stderr" }], "severity": "WARN" }],
        }});
        spawn_kea(ns, ("kea-dhcp4", "kea-dhcp4-server"), &conf, &c, dir)
    }
}

/// Kea's server `bin` (of Debian package `.1`) in `ns` with configuration `c` written to
/// `conf`, its pid and lock files in `dir`.
fn spawn_kea(ns: &Netns, (bin, package): (&str, &str), conf: &Path, c: &serde_json::Value, dir: &Path) -> Server {
    std::fs::write(conf, c.to_string()).expect("kea config");
    let child = ns
        .exec(tool(bin, package))
        .arg("-c")
        .arg(conf)
        .env("KEA_PIDFILE_DIR", dir)
        .env("KEA_LOCKFILE_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    Server(child)
}

/// kea-dhcp6 on `iface` of `ns` (2001:db8:1::/64, an address pool and a /56 pd-pool; T1 3 s,
/// T2 6 s) with its lease file at `leases`.
fn kea6(ns: &Netns, iface: &str, dir: &Path, leases: &Path) -> Server {
    let conf = dir.join("kea-dhcp6.json");
    let c = json!({ "Dhcp6": {
        "interfaces-config": { "interfaces": [iface] },
        "lease-database": { "type": "memfile", "persist": true, "name": leases.display().to_string(), "lfc-interval": 0 },
        "server-id": { "type": "LLT", "persist": false },
        "renew-timer": 3, "rebind-timer": 6, "preferred-lifetime": 300, "valid-lifetime": 600,
        "subnet6": [{
            "id": 1, "subnet": "2001:db8:1::/64", "interface": iface,
            "pools": [{ "pool": "2001:db8:1::100 - 2001:db8:1::1ff" }],
            "pd-pools": [{ "prefix": "2001:db8:100::", "prefix-len": 48, "delegated-len": 56 }],
        }],
        "loggers": [{ "name": "kea-dhcp6", "output_options": [{ "output": "stderr" }], "severity": "WARN" }],
    }});
    spawn_kea(ns, ("kea-dhcp6", "kea-dhcp6-server"), &conf, &c, dir)
}

const CONFIG6: &str = "[[subnet]]\nsubnet = \"198.18.0.0/16\"\n[[subnet.pool]]\nrange = \"198.18.16.1-198.18.16.200\"\n\
    [[subnet6]]\nsubnet = \"2001:db8:1::/64\"\nid = 1\nrenew-timer = 3\nrebind-timer = 6\npreferred-lifetime = 300\n\
    valid-lifetime = 600\n[[subnet6.pool]]\nrange = \"2001:db8:1::100-2001:db8:1::1ff\"\n\
    [[subnet6.pd-pool]]\nprefix = \"2001:db8:100::\"\nprefix-len = 48\ndelegated-len = 56\n";

/// DHCPv6 leases move from the real kea-dhcp6 to dhcp-xdp and back: a client (dhclient -6
/// -N -P) binds an address and a prefix with Kea; Kea's kea-leases6.csv is imported (next to a
/// v4 import, which must not lose them); the client, whose RENEW names Kea's DUID and goes
/// unanswered, REBINDs with dhcp-xdp and keeps both; exported as a CSV kea-dhcp6 loads, the
/// client keeps both with Kea again.
#[test]
fn v6_leases_move_from_kea_to_dhcp_xdp_and_back() {
    let net = TwoHosts::for_dhcp6(1);
    let dir = TempDir::new("migrate6");
    let kea_leases = dir.path().join("kea-leases6.csv");
    let kea = kea6(&net.server, &net.server_if, dir.path(), &kea_leases);
    let client = tests::clients::Dhclient::new6(&net.client, &net.client_if, &["-N", "-P"]);
    assert!(client.obtain(&net.client), "dhclient -6 with Kea");
    let (ip, prefix) = client.address_and_prefix(Some("BOUND6"), 0);
    kea.stop();
    let csv = std::fs::read_to_string(&kea_leases).expect("Kea's v6 lease file");

    let state = TempDir::new("state6");
    let cfg = dir.config(CONFIG6);
    let import = |file: &Path| {
        let out = Command::new(daemon_bin())
            .args(["import", "--state-dir"])
            .arg(state.path())
            .args(["--config", &cfg, "--kea-csv"])
            .arg(file)
            .output()
            .expect("dhcp-xdp import");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        text
    };
    let text = import(&kea_leases);
    assert!(text.contains("imported 2 DHCPv6 leases"), "{text}\n{csv}");
    // A v4 import afterwards (its snapshot replaces the journals) keeps the v6 leases.
    let v4 = dir.path().join("kea-leases4.csv");
    std::fs::write(
        &v4,
        format!(
            "{}\n198.18.16.7,02:00:00:00:00:07,,3600,2000000000,1,0,0,,0,\n",
            dhcp_xdp_core::migrate::KEA_CSV_HEADER
        ),
    )
    .expect("v4 csv");
    assert!(import(&v4).contains("imported 1 leases"));

    let state_arg = state.path().display().to_string();
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg, "--state-dir", &state_arg]);
    let listed = daemon.ask("lease6-get-all", json!({}));
    assert_eq!(listed["arguments"]["leases"].as_array().map(Vec::len), Some(2), "{listed}");
    // Kea's server id is not ours: the RENEW is not answered; the REBIND (T2, 6 s) is, with the
    // same address and prefix.
    let n = client.events().len();
    let (ip2, prefix2) = client.address_and_prefix(Some("REBIND6"), n);
    assert_eq!((ip2, prefix2), (ip.clone(), prefix.clone()), "kept with dhcp-xdp");
    client.kill();
    daemon.signal_and_wait(Signal::SIGTERM);

    let out = Command::new(daemon_bin())
        .args(["export", "--state-dir"])
        .arg(state.path())
        .args(["--format", "kea-csv6"])
        .output()
        .expect("dhcp-xdp export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported = dir.path().join("exported-leases6.csv");
    std::fs::write(&exported, &out.stdout).expect("write");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.lines().any(|l| l.starts_with(&format!("{ip},"))), "{ip} not exported: {text}");
    let kea = kea6(&net.server, &net.server_if, dir.path(), &exported);
    // With Kea again (its new server id: the client rebinds): the same address and prefix.
    let again = tests::clients::Dhclient::new6(&net.client, &net.client_if, &["-N", "-P"]);
    std::fs::copy(&client.lease_file, &again.lease_file).expect("the client's lease file");
    assert!(again.obtain(&net.client), "dhclient -6 with Kea again");
    let got = again.address_and_prefix(None, 0);
    assert_eq!(got, (ip, prefix), "kept with Kea");
    kea.stop();
}

/// ISC dhcpd on `iface` of `ns` with its lease file at `leases`.
struct Dhcpd;

impl Dhcpd {
    fn start(ns: &Netns, iface: &str, dir: &Path, leases: &Path) -> Server {
        let conf = dir.join("dhcpd.conf");
        std::fs::write(
            &conf,
            format!(
                "authoritative;\nping-check false;\ndefault-lease-time 3600;\nmax-lease-time 3600;\n\
                 subnet 198.18.0.0 netmask 255.255.0.0 {{ range {} {}; }}\n",
                POOL.0, POOL.1
            ),
        )
        .expect("dhcpd.conf");
        std::fs::write(leases, "").expect("dhcpd.leases");
        let child = ns
            .exec(tool("dhcpd", "isc-dhcp-server"))
            .args(["-4", "-f", "-d", "-q", "-cf"])
            .arg(&conf)
            .arg("-lf")
            .arg(leases)
            .arg("-pf")
            .arg(dir.join("dhcpd.pid"))
            .arg(iface)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dhcpd");
        Server(child)
    }
}

/// DISCOVER → OFFER → REQUEST → ACK for `chaddr` with `extra` options in both messages; the
/// ACKed address.
fn dora_with(link: &mut Link, mac: [u8; 6], chaddr: [u8; 6], xid: u32, extra: &[u8]) -> Option<Ipv4Addr> {
    let ask = |link: &mut Link, options: Vec<u8>, xid: u32| {
        let mut r = Request::discover(mac, chaddr, xid);
        r.options = options;
        (0..8).find_map(|_| {
            link.send(&r.build());
            link.replies(1, Duration::from_millis(700), |x| x.xid() == xid).pop()
        })
    };
    let offer = ask(link, [&[53, 1, 1][..], extra].concat(), xid)?;
    let yiaddr = Ipv4Addr::new(offer.bootp[16], offer.bootp[17], offer.bootp[18], offer.bootp[19]);
    let mut req = vec![53, 1, 3, 50, 4];
    req.extend_from_slice(&yiaddr.octets());
    req.extend_from_slice(&[54, 4, 198, 18, 0, 1]);
    req.extend_from_slice(extra);
    let ack = ask(link, req, xid ^ 1)?;
    (ack.message_type() == Some(5)).then_some(yiaddr)
}

/// A RENEWING REQUEST of `chaddr` for `addr`, unicast to the server; the ACKed address.
fn renew(link: &mut Link, mac: [u8; 6], chaddr: [u8; 6], addr: Ipv4Addr, xid: u32) -> Option<Ipv4Addr> {
    renew_with(link, mac, chaddr, addr, xid, &[])
}

/// [`renew`] with `extra` options (a client id).
fn renew_with(
    link: &mut Link,
    mac: [u8; 6],
    chaddr: [u8; 6],
    addr: Ipv4Addr,
    xid: u32,
    extra: &[u8],
) -> Option<Ipv4Addr> {
    let mut r = Request::discover(mac, chaddr, xid);
    r.options = [&[53, 1, 3][..], extra].concat();
    r.ciaddr = addr;
    r.src_ip = addr;
    r.dst_ip = Ipv4Addr::new(198, 18, 0, 1);
    for _ in 0..5 {
        link.send(&r.build());
        if let Some(ack) = link.replies(1, Duration::from_millis(500), |x| x.xid() == xid).pop() {
            return (ack.message_type() == Some(5))
                .then(|| Ipv4Addr::new(ack.bootp[16], ack.bootp[17], ack.bootp[18], ack.bootp[19]));
        }
    }
    None
}

#[test]
fn leases_move_from_kea_to_dhcp_xdp_and_back() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("migrate");
    let cfg = dir.config(CONFIG);
    let kea_leases = dir.path().join("kea-leases4.csv");
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    let clients: Vec<[u8; 6]> = (1..=3).map(|i| [2, 0x6b, 0, 0, 0, i]).collect();

    // Clients bind with Kea.
    let kea = Kea::start(&net.server, &net.server_if, dir.path(), &kea_leases);
    let mut bound = vec![];
    for (i, c) in clients.iter().enumerate() {
        let d = dora(&mut link, mac, *c, 0x800 + i as u32 * 2, Duration::from_millis(700), 8);
        assert!(d.acked, "Kea did not bind client {i}: {d:?}");
        bound.push(d.offered.expect("address"));
    }
    kea.stop();
    let csv = std::fs::read_to_string(&kea_leases).expect("Kea's lease file");
    assert!(csv.lines().count() >= 4, "{csv}");

    // Imported into dhcp-xdp's state directory.
    let state = TempDir::new("state");
    let out = Command::new(daemon_bin())
        .args(["import", "--state-dir"])
        .arg(state.path())
        .args(["--config", &cfg, "--kea-csv"])
        .arg(&kea_leases)
        .output()
        .expect("dhcp-xdp import");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("imported 3 leases"), "{text}");

    let (rec, _) = tests::recovered_leases(state.path());
    for (c, a) in clients.iter().zip(&bound) {
        assert_eq!(rec.get(c).map(|l| (l.addr, l.state.as_str())), Some((*a, "Bound")), "{rec:?}");
    }

    // The clients renew with dhcp-xdp and keep their addresses; a newcomer asking for one of
    // them is offered another.
    let state_arg = state.path().display().to_string();
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg, "--state-dir", &state_arg]);
    let mut grab = Request::discover(mac, [2, 0x6b, 0, 0, 0, 8], 0x8f0);
    grab.options = vec![53, 1, 1, 50, 4];
    grab.options.extend_from_slice(&bound[0].octets());
    link.send(&grab.build());
    let offer = link.replies(1, Duration::from_secs(2), |x| x.xid() == 0x8f0).pop().expect("offer to the newcomer");
    let offered = Ipv4Addr::new(offer.bootp[16], offer.bootp[17], offer.bootp[18], offer.bootp[19]);
    assert!(!bound.contains(&offered), "an imported address was offered to another client: {offered}");
    for (i, (c, a)) in clients.iter().zip(&bound).enumerate() {
        assert_eq!(renew(&mut link, mac, *c, *a, 0x900 + i as u32), Some(*a), "client {i} with dhcp-xdp");
    }
    daemon.signal_and_wait(Signal::SIGTERM);

    // Exported back to a CSV that kea-dhcp4 loads: the clients keep their addresses with Kea.
    let out = Command::new(daemon_bin())
        .args(["export", "--state-dir"])
        .arg(state.path())
        .args(["--format", "kea-csv", "--config", &cfg])
        .output()
        .expect("dhcp-xdp export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported = dir.path().join("exported-leases4.csv");
    std::fs::write(&exported, &out.stdout).expect("write");
    let text = String::from_utf8_lossy(&out.stdout);
    for a in &bound {
        assert!(text.lines().any(|l| l.starts_with(&format!("{a},"))), "{a} not exported: {text}");
    }
    let kea = Kea::start(&net.server, &net.server_if, dir.path(), &exported);
    for (i, (c, a)) in clients.iter().zip(&bound).enumerate() {
        assert_eq!(renew(&mut link, mac, *c, *a, 0xa00 + i as u32), Some(*a), "client {i} with Kea again");
    }
    // A new client gets none of the three addresses from Kea: it knows they are taken.
    let d = dora(&mut link, mac, [2, 0x6b, 0, 0, 0, 9], 0xb00, Duration::from_millis(700), 8);
    assert!(d.offered.is_some_and(|a| !bound.contains(&a)), "{d:?}");
    kea.stop();
}

#[test]
fn leases_move_from_isc_dhcpd_to_dhcp_xdp() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("migrate-dhcpd");
    let cfg = dir.config(CONFIG);
    let lease_file = dir.path().join("dhcpd.leases");
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    let c: Vec<[u8; 6]> = (1..=4).map(|i| [2, 0x6c, 0, 0, 0, i]).collect();
    // The third client sends a client id (dhcpd's uid) and a hostname.
    let uid: &[u8] = &[61, 7, 1, 2, 0x6c, 0, 0, 0, 3, 12, 5, b'c', b'p', b'e', b'-', b'3'];
    let server_id = [54, 4, 198, 18, 0, 1];

    // Four clients bind with dhcpd; the second releases, the fourth declines (abandoned).
    let dhcpd = Dhcpd::start(&net.server, &net.server_if, dir.path(), &lease_file);
    let extra = |i: usize| if i == 2 { uid } else { &[][..] };
    let bound: Vec<Ipv4Addr> = (0..4)
        .map(|i| {
            dora_with(&mut link, mac, c[i], 0xc00 + i as u32 * 2, extra(i))
                .unwrap_or_else(|| panic!("dhcpd did not bind client {i}"))
        })
        .collect();
    let mut release = Request::discover(mac, c[1], 0xd01);
    release.options = [&[53, 1, 7][..], &server_id].concat();
    release.ciaddr = bound[1];
    release.src_ip = bound[1];
    release.dst_ip = Ipv4Addr::new(198, 18, 0, 1);
    link.send(&release.build());
    let mut decline = Request::discover(mac, c[3], 0xd03);
    decline.options = [&[53, 1, 4, 50, 4][..], &bound[3].octets(), &server_id].concat();
    link.send(&decline.build());
    let written = || std::fs::read_to_string(&lease_file).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !(written().contains("binding state free") && written().contains("binding state abandoned")) {
        assert!(std::time::Instant::now() < deadline, "dhcpd did not record the RELEASE and DECLINE:\n{}", written());
        std::thread::sleep(Duration::from_millis(100));
    }
    dhcpd.stop();
    let text = written();
    assert!(text.contains("uid \"") && text.contains("client-hostname \"cpe-3\""), "{text}");

    // Imported: two held leases and the abandoned address; the released one stays in the pool.
    let state = TempDir::new("state");
    let out = Command::new(daemon_bin())
        .args(["import", "--state-dir"])
        .arg(state.path())
        .args(["--config", &cfg, "--dhcpd-leases"])
        .arg(&lease_file)
        .output()
        .expect("dhcp-xdp import");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("imported 3 leases"), "{report}\n{text}");
    let (rec, _) = tests::recovered_leases(state.path());
    assert_eq!(rec.get(&c[0]).map(|l| (l.addr, l.state.as_str())), Some((bound[0], "Bound")), "{rec:?}");
    assert_eq!(rec.get(&c[2]).map(|l| (l.addr, l.state.as_str())), Some((bound[2], "Bound")), "{rec:?}");
    assert!(rec.values().any(|l| l.addr == bound[3] && l.state == "Declined"), "{rec:?}");
    assert!(!rec.values().any(|l| l.addr == bound[1]), "the released address was imported: {rec:?}");

    // With dhcp-xdp: the bound clients keep their addresses (the third by its client id); a
    // newcomer asking for the abandoned address gets another.
    let state_arg = state.path().display().to_string();
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg, "--state-dir", &state_arg]);
    // dhcpd's client-hostname came with the lease.
    let got = daemon.ask("lease4-get", json!({ "ip-address": bound[2].to_string() }));
    assert_eq!(got["arguments"]["hostname"], "cpe-3", "{got}");
    assert_eq!(renew(&mut link, mac, c[0], bound[0], 0xe00), Some(bound[0]), "client 0 with dhcp-xdp");
    assert_eq!(renew_with(&mut link, mac, c[2], bound[2], 0xe02, &uid[..9]), Some(bound[2]), "client 2 with dhcp-xdp");
    let mut grab = Request::discover(mac, [2, 0x6c, 0, 0, 0, 9], 0xe10);
    grab.options = [&[53, 1, 1, 50, 4][..], &bound[3].octets()].concat();
    link.send(&grab.build());
    let offer = link.replies(1, Duration::from_secs(2), |x| x.xid() == 0xe10).pop().expect("offer to the newcomer");
    let offered = Ipv4Addr::new(offer.bootp[16], offer.bootp[17], offer.bootp[18], offer.bootp[19]);
    assert!(offered != bound[3] && offered != bound[0] && offered != bound[2], "offered a held address: {offered}");
    daemon.signal_and_wait(Signal::SIGTERM);
}

#[test]
fn a_kea_configuration_converts_to_one_this_server_accepts() {
    let dir = TempDir::new("convert");
    let kea_conf = dir.path().join("kea-dhcp4.conf");
    std::fs::write(
        &kea_conf,
        r#"// An operator's Kea configuration.
{ "Dhcp4": {
    "interfaces-config": { "interfaces": [] },
    "valid-lifetime": 4000, "renew-timer": 1000, "rebind-timer": 2000,
    "option-data": [ { "name": "domain-name-servers", "data": "198.18.0.53, 198.18.0.54" } ],
    "subnet4": [ {
        "id": 7, "subnet": "198.18.30.0/24",
        "pools": [ { "pool": "198.18.30.100 - 198.18.30.199" } ],
        "option-data": [ { "name": "routers", "data": "198.18.30.1" } ],
        "reservations": [ { "hw-address": "02:aa:00:00:00:01", "ip-address": "198.18.30.5", "hostname": "cpe-1" } ]
    } ],
    "shared-networks": [ { "name": "bng-1", "subnet4": [ { "id": 8, "subnet": "198.18.31.0/24",
        "pools": [ { "pool": "198.18.31.0/25" } ] } ] } ],
    "expired-leases-processing": { "reclaim-timer-wait-time": 10 }
} }
"#,
    )
    .expect("kea config");
    // The real Kea accepts it.
    let check =
        Command::new(tool("kea-dhcp4", "kea-dhcp4-server")).arg("-t").arg(&kea_conf).output().expect("kea-dhcp4 -t");
    assert!(
        check.status.success(),
        "kea-dhcp4 -t: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let out = Command::new(daemon_bin()).args(["convert", "--kea-config"]).arg(&kea_conf).output().expect("convert");
    let toml = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{errors}");
    assert!(errors.contains("not carried over: Dhcp4.expired-leases-processing"), "{errors}");
    assert!(toml.contains("#   Dhcp4.expired-leases-processing"), "{toml}");
    let converted = dir.config(&toml);
    let check = Command::new(daemon_bin()).args(["check-config", &converted]).output().expect("check-config");
    let described = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{toml}\n{}", String::from_utf8_lossy(&check.stderr));
    for want in ["198.18.30.100", "198.18.30.199", "198.18.31.0", "198.18.31.127", "198.18.30.5", "bng-1"] {
        assert!(described.contains(want), "{want} missing from:\n{described}");
    }
}

#[test]
fn an_isc_dhcpd_configuration_converts_to_one_this_server_accepts() {
    let dir = TempDir::new("convert-dhcpd");
    let conf = dir.path().join("dhcpd.conf");
    std::fs::write(
        &conf,
        "authoritative;\ndefault-lease-time 3600;\nmax-lease-time 7200;\n\
         option domain-name-servers 198.18.0.53, 198.18.0.54;\n\
         class \"iptv\" { match if substring(option vendor-class-identifier, 0, 6) = \"IPTVBX\"; filename \"tv.bin\"; }\n\
         class \"vendors\" { match option vendor-class-identifier; }\nsubclass \"vendors\" \"docsis3.0\";\n\
         subnet 198.18.40.0 netmask 255.255.255.0 {\n  range 198.18.40.100 198.18.40.199;\n  option routers 198.18.40.1;\n\
         pool { allow members of \"iptv\"; range 198.18.40.200 198.18.40.210; }\n}\n\
         shared-network bng-1 {\n  subnet 198.18.41.0 netmask 255.255.255.0 { range 198.18.41.10 198.18.41.20; }\n}\n\
         host cpe-1 { hardware ethernet 02:aa:00:00:00:01; fixed-address 198.18.40.5; }\n",
    )
    .expect("dhcpd.conf");
    // The real dhcpd accepts it.
    let check =
        Command::new(tool("dhcpd", "isc-dhcp-server")).args(["-4", "-t", "-cf"]).arg(&conf).output().expect("dhcpd -t");
    assert!(check.status.success(), "dhcpd -t: {}", String::from_utf8_lossy(&check.stderr));

    let out = Command::new(daemon_bin()).args(["convert", "--dhcpd-conf"]).arg(&conf).output().expect("convert");
    let toml = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{errors}");
    assert!(errors.contains("not carried over: line 3 `max-lease-time 7200`"), "{errors}");
    let converted = dir.config(&toml);
    let check = Command::new(daemon_bin()).args(["check-config", &converted]).output().expect("check-config");
    let described = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{toml}\n{}", String::from_utf8_lossy(&check.stderr));
    for want in
        ["198.18.40.100", "198.18.40.210", "198.18.41.10", "198.18.40.5", "bng-1", "option 6 = c6:12:00:35:c6:12:00:36"]
    {
        assert!(described.contains(want), "{want} missing from:\n{described}");
    }
    // dhcpd's classes (which the real dhcpd accepted above) as client classes, the pool guarded.
    for want in [
        "test = \"substring(option[60].hex,0,6) == 'IPTVBX'\"",
        "test = \"option[60].hex == 'docsis3.0'\"",
        "client-class = \"iptv\"",
        "boot-file-name = \"tv.bin\"",
    ] {
        assert!(toml.contains(want), "{want} missing from:\n{toml}");
    }
}

/// A lease that keeps its relay's option 82 goes to Kea as Kea keeps it (`store-extended-info`:
/// the user context's `ISC.relay-agent-info.sub-options`): imported from a Kea CSV that has it,
/// shown by `dhcp-xdp leases`, exported with it, and the real kea-dhcp4 loads the exported file
/// — a newcomer asking for that address is offered another, as it is when Kea holds the lease.
#[test]
fn relay_agent_info_goes_to_kea_and_kea_loads_it() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("migrate-rai");
    let cfg = dir.config(CONFIG);
    let held = Ipv4Addr::new(198, 18, 16, 150);
    let expire = u64::from(dhcp_xdp::clock::unix_now()) + 3000;
    // Option 82: circuit id "olt1/1/1", remote id "cpe-r".
    let csv = format!(
        "{}\n{held},02:6d:00:00:00:01,,3600,{expire},1,0,0,cpe-r,0,\
         {{ \"ISC\": {{ \"relay-agent-info\": {{ \"sub-options\": \"0x01086F6C74312F312F3102056370652D72\" }} }} }}\n",
        dhcp_xdp_core::migrate::KEA_CSV_HEADER
    );
    let kea_csv = dir.path().join("with-rai.csv");
    std::fs::write(&kea_csv, csv).expect("csv");
    let state = TempDir::new("state");
    let out = Command::new(daemon_bin())
        .args(["import", "--state-dir"])
        .arg(state.path())
        .args(["--config", &cfg, "--kea-csv"])
        .arg(&kea_csv)
        .output()
        .expect("dhcp-xdp import");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(daemon_bin()).args(["leases", "--state-dir"]).arg(state.path()).output().expect("leases");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("relay-info=01:08:6f:6c:74:31:2f:31:2f:31:02:05:63:70:65:2d:72"), "{listed}");
    let out = Command::new(daemon_bin())
        .args(["export", "--state-dir"])
        .arg(state.path())
        .args(["--format", "kea-csv", "--config", &cfg])
        .output()
        .expect("dhcp-xdp export");
    let exported_text = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = exported_text.lines().find(|l| l.starts_with(&format!("{held},"))).expect("the lease exported");
    assert!(row.contains("relay-agent-info") && row.contains("0x01086F6C74312F312F3102056370652D72"), "{row}");
    let exported = dir.path().join("exported-leases4.csv");
    std::fs::write(&exported, &exported_text).expect("write");
    let kea = Kea::start(&net.server, &net.server_if, dir.path(), &exported);
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    let mut grab = Request::discover(mac, [2, 0x6d, 0, 0, 0, 9], 0xe01);
    grab.options = vec![53, 1, 1, 50, 4];
    grab.options.extend_from_slice(&held.octets());
    let offer = (0..5).find_map(|_| {
        link.send(&grab.build());
        link.replies(1, Duration::from_millis(700), |x| x.xid() == 0xe01).pop()
    });
    let offer = offer.expect("Kea offers the newcomer an address");
    let offered = Ipv4Addr::new(offer.bootp[16], offer.bootp[17], offer.bootp[18], offer.bootp[19]);
    assert_ne!(offered, held, "Kea loaded the lease with its relay agent info: the address is taken");
    kea.stop();
}
