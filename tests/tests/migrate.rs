//! Moving leases between Kea and dhcp-xdp, with the real kea-dhcp4: clients bind with Kea,
//! its memfile CSV is imported, and the clients renew with dhcp-xdp and keep their addresses;
//! dhcp-xdp's leases are exported to a CSV that kea-dhcp4 loads, and the clients keep their
//! addresses with Kea again.

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

/// kea-dhcp4 on `iface` of `ns` with its lease file at `leases`; stopped on drop.
struct Kea(Child);

impl Kea {
    fn start(ns: &Netns, iface: &str, dir: &Path, leases: &Path) -> Self {
        let conf = dir.join("kea-dhcp4.json");
        let c = json!({ "Dhcp4": {
            "interfaces-config": { "interfaces": [iface], "dhcp-socket-type": "raw" },
            "lease-database": { "type": "memfile", "persist": true, "name": leases.display().to_string(), "lfc-interval": 0 },
            "valid-lifetime": 3600,
            "subnet4": [{ "id": 1, "subnet": "198.18.0.0/16", "pools": [{ "pool": format!("{} - {}", POOL.0, POOL.1) }] }],
            "loggers": [{ "name": "kea-dhcp4", "output_options": [{ "output": "stderr" }], "severity": "WARN" }],
        }});
        std::fs::write(&conf, c.to_string()).expect("kea config");
        let child = ns
            .exec(tool("kea-dhcp4", "kea-dhcp4-server"))
            .arg("-c")
            .arg(&conf)
            .env("KEA_PIDFILE_DIR", dir)
            .env("KEA_LOCKFILE_DIR", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kea-dhcp4");
        Self(child)
    }

    fn stop(mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

impl Drop for Kea {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A RENEWING REQUEST of `chaddr` for `addr`, unicast to the server; the ACKed address.
fn renew(link: &mut Link, mac: [u8; 6], chaddr: [u8; 6], addr: Ipv4Addr, xid: u32) -> Option<Ipv4Addr> {
    let mut r = Request::discover(mac, chaddr, xid);
    r.options = vec![53, 1, 3];
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
