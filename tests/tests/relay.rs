//! A relay (ISC dhcrelay with option 82) between clients and the server.

use std::{net::Ipv4Addr, process::Stdio, time::Duration};

use nix::sys::signal::Signal;
use tests::{
    Daemon, TempDir, ThreeHosts, TwoHosts,
    clients::Udhcpc,
    frames::{Link, Request},
    sh, tool,
};

/// client ns ── veth ── relay ns (198.18.1.1 / 198.18.0.2) ── veth ── server ns (198.18.0.1).
fn relayed() -> ThreeHosts {
    let n = ThreeHosts::new();
    sh(n.relay.ip().args(["addr", "add", "198.18.1.1/24", "dev", &n.relay_down]));
    sh(n.relay.ip().args(["addr", "add", "198.18.0.2/24", "dev", &n.relay_up]));
    sh(n.server.ip().args(["addr", "add", "198.18.0.1/24", "dev", &n.server_if]));
    n.up();
    sh(n.server.ip().args(["route", "add", "198.18.1.0/24", "via", "198.18.0.2"]));
    sh(n.relay.exec("sysctl").args(["-qw", "net.ipv4.ip_forward=1"]));
    n
}

/// dhcrelay in the foreground, killed on drop.
struct Dhcrelay(std::process::Child);

impl Drop for Dhcrelay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn clients_behind_dhcrelay_get_giaddr_subnet_and_circuit_id_reservation() {
    let net = relayed();
    let dir = TempDir::new("cfg");
    let cfg = dir.config(&format!(
        r#"
[[subnet]]
subnet = "198.18.0.0/24"
  [[subnet.pool]]
  range = "198.18.0.100-198.18.0.110"
[[subnet]]
subnet = "198.18.1.0/24"
options = {{ routers = ["198.18.1.1"] }}
  [[subnet.pool]]
  range = "198.18.1.100-198.18.1.150"
  [[subnet.reservation]]
  circuit-id = "{down}"
  ip = "198.18.1.77"
"#,
        down = net.relay_down
    ));
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    // -a: append option 82 with the downstream interface's name as circuit id; dhcrelay drops
    // replies whose option 82 does not come back intact, so a lease proves the echo.
    let relay = Dhcrelay(
        net.relay
            .exec(tool("dhcrelay", "isc-dhcp-relay"))
            .args(["-4", "-d", "-a", "-id", &net.relay_down, "-iu", &net.relay_up, "198.18.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dhcrelay"),
    );
    std::thread::sleep(Duration::from_millis(700));
    let got = Udhcpc::new().obtain(&net.client, &net.client_if, false, &[]).expect("no lease through the relay");
    assert_eq!(got["ip"], "198.18.1.77", "circuit-id reservation");
    assert_eq!(got["router"], "198.18.1.1", "options of the giaddr's subnet");
    assert_eq!(got["serverid"], "198.18.0.1");
    drop(relay);

    // Link selection (RFC 3527) in a frame built by hand, relayed from 198.18.0.2: the
    // sub-option names 198.18.1.0/24 although giaddr sits in 198.18.0.0/24.
    let relay_mac = TwoHosts::mac(&net.relay, &net.relay_up);
    let server_mac = TwoHosts::mac(&net.server, &net.server_if);
    let mut link = Link::open(&net.relay, &net.relay_up);
    let mut r = Request::discover(relay_mac, [2, 3, 0, 0, 0, 9], 0x77);
    r.dst_mac = server_mac;
    r.src_ip = Ipv4Addr::new(198, 18, 0, 2);
    r.dst_ip = Ipv4Addr::new(198, 18, 0, 1);
    r.src_port = 67;
    r.giaddr = Ipv4Addr::new(198, 18, 0, 2);
    r.options = vec![53, 1, 1, 82, 6, 5, 4, 198, 18, 1, 0];
    link.send(&r.build());
    let reply = link.replies(1, Duration::from_secs(2), |x| x.xid() == 0x77).pop().expect("reply to the relay");
    assert_eq!((reply.dst_ip, reply.dst_port, reply.dst_mac), (Ipv4Addr::new(198, 18, 0, 2), 67, relay_mac));
    let yiaddr = Ipv4Addr::from(<[u8; 4]>::try_from(&reply.bootp[16..20]).expect("4"));
    assert!((Ipv4Addr::new(198, 18, 1, 100)..=Ipv4Addr::new(198, 18, 1, 150)).contains(&yiaddr), "{yiaddr}");
    assert!(reply.bootp.windows(8).any(|w| w == [82, 6, 5, 4, 198, 18, 1, 0]), "option 82 echoed");

    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert_eq!(exit.engine_sum("tx_ack"), 1);
    assert_eq!(exit.engine_sum("tx_offer"), 2);
    let _ = net.client_if.len() + net.relay_up.len();
}
