//! Real clients (udhcpc, dhclient) behind an 802.1Q access port and behind a QinQ access port
//! (802.1ad outer and 802.1Q inner tag). This kernel has no 802.1Q support, so the tagging is done by a
//! two-port switch of tc programs between client and server (`tests::VlanHosts`); the daemon
//! sees exactly the tagged frames a VLAN sub-interface would send.

use std::time::Duration;

use nix::sys::signal::Signal;
use tests::{
    Capture, Daemon, TempDir, VlanHosts,
    clients::{Dhclient, Udhcpc},
};

const CONFIG: &str = "[[subnet]]\nsubnet = \"198.18.254.0/24\"\n[[subnet.pool]]\nrange = \"198.18.254.100-198.18.254.110\"\n\
     [[subnet]]\nsubnet = \"198.18.10.0/24\"\nvlan = [10]\noptions = { routers = [\"198.18.10.1\"] }\n\
     [[subnet.pool]]\nrange = \"198.18.10.100-198.18.10.110\"\n\
     [[subnet]]\nsubnet = \"198.18.20.0/24\"\nvlan = [100, 20]\noptions = { routers = [\"198.18.20.1\"] }\n\
     [[subnet.pool]]\nrange = \"198.18.20.100-198.18.20.110\"\n";

/// DHCP frames in a capture on the switch's trunk port: (tag bytes, BOOTP op) for each UDP 67/68
/// frame, whatever its tags.
fn dhcp_frames(frames: &[Vec<u8>]) -> Vec<(Vec<u8>, u8)> {
    frames
        .iter()
        .filter_map(|f| {
            let mut l3 = 12;
            while f.get(l3..l3 + 2).is_some_and(|t| t == [0x81, 0] || t == [0x88, 0xa8]) {
                l3 += 4;
            }
            (f.get(l3..l3 + 2)? == [8, 0]).then_some(())?;
            let l4 = l3 + 2 + usize::from(f.get(l3 + 2)? & 0x0f) * 4;
            let ports = (
                u16::from_be_bytes([*f.get(l4)?, *f.get(l4 + 1)?]),
                u16::from_be_bytes([*f.get(l4 + 2)?, *f.get(l4 + 3)?]),
            );
            matches!(ports, (68, 67) | (67, 68)).then(|| (f[12..l3].to_vec(), *f.get(l4 + 8).unwrap_or(&0)))
        })
        .collect()
}

fn run(tags: &[(u16, u16)], prefix: &str, router: &str) {
    let net = VlanHosts::new(tags);
    let dir = TempDir::new("vlancfg");
    let cfg = dir.config(CONFIG);
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let capture = Capture::start(&net.switch, &net.trunk_if);

    let lease = Udhcpc::new().obtain(&net.client, &net.client_if, false, &[]).expect("udhcpc got no lease");
    assert!(lease["ip"].starts_with(prefix), "udhcpc: {lease:?}");
    assert_eq!(lease["router"], router);
    assert_eq!(lease["subnet"], "255.255.255.0");

    let client = Dhclient::new(&net.client, &net.client_if);
    assert!(client.obtain(&net.client), "dhclient -1 failed behind tags {tags:?}");
    let bound = client.wait_for("BOUND", 0, Duration::from_secs(5)).expect("dhclient BOUND");
    assert!(bound["ip"].starts_with(prefix), "dhclient: {bound:?}");
    assert_eq!(bound["routers"], router);
    client.kill();

    // The OFFER and the ACK dhclient was bound by are in the capture.
    capture.wait_for(Duration::from_secs(3), |f| dhcp_frames(f).iter().filter(|(_, op)| *op == 2).count() >= 2);
    let frames = dhcp_frames(&capture.finish());
    let want: Vec<u8> = tags.iter().flat_map(|&(tpid, vid)| [tpid.to_be_bytes(), vid.to_be_bytes()].concat()).collect();
    let requests = frames.iter().filter(|(_, op)| *op == 1).count();
    let replies: Vec<_> = frames.iter().filter(|(_, op)| *op == 2).collect();
    assert!(requests >= 4 && replies.len() >= 4, "captured {requests} requests, {} replies", replies.len());
    assert!(frames.iter().all(|(t, _)| *t == want), "every DHCP frame on the trunk carries {want:02x?}: {frames:02x?}");
    // The server's own kernel still works over the same interface.
    assert!(net.ping_server(), "ping over the trunk");
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(exit.status.success());
    assert_eq!(exit.engine_sum("tx_ack") as usize, replies.len() - exit.engine_sum("tx_offer") as usize);
}

#[test]
fn clients_behind_an_802_1q_access_port_get_their_vlans_subnet() {
    run(&[(0x8100, 10)], "198.18.10.", "198.18.10.1");
}

#[test]
fn clients_behind_a_qinq_access_port_get_their_vlans_subnet() {
    run(&[(0x88a8, 100), (0x8100, 20)], "198.18.20.", "198.18.20.1");
}
