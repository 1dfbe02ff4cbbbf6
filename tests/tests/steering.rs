//! The XDP program and the AF_XDP datapath on the real kernel: the daemon binary runs in one
//! namespace, frames come from another over a veth pair.

use std::{
    collections::{HashMap, HashSet},
    net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

use nix::sys::signal::Signal;
use tests::{
    Capture, Daemon, TwoHosts,
    frames::{Link, Request},
    xdp_attached,
};

fn chaddr(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x5a, b[0], b[1], b[2], b[3]]
}

/// Sends one request per (chaddr, xid) and returns the replies matched to them.
fn exchange(link: &mut Link, reqs: &[Request]) -> Vec<tests::frames::Reply> {
    for r in reqs {
        link.send(&r.build());
    }
    let xids: HashSet<u32> = reqs.iter().map(|r| r.xid).collect();
    link.replies(reqs.len(), Duration::from_secs(3), |r| xids.contains(&r.xid()))
}

#[test]
fn dhcp_frames_untagged_reach_workers_and_come_back() {
    let net = TwoHosts::new(1);
    let daemon = Daemon::start(&net.server, &net.server_if, &["--handler", "reflect", "--workers", "2"]);
    let client_mac = TwoHosts::mac(&net.client, &net.client_if);
    let server_mac = TwoHosts::mac(&net.server, &net.server_if);
    let mut link = Link::open(&net.client, &net.client_if);
    let reqs: Vec<Request> = (0..32).map(|i| Request::discover(client_mac, chaddr(i), 0x100 + i)).collect();
    let replies = exchange(&mut link, &reqs);
    assert_eq!(replies.len(), 32, "every DISCOVER must be answered");
    for r in &replies {
        assert_eq!(r.dst_mac, client_mac, "reply goes to the request's L2 source");
        assert_eq!(r.src_mac, server_mac);
        assert_eq!(r.src_ip, net.server_ip);
        assert_eq!(r.dst_ip, Ipv4Addr::BROADCAST);
        assert_eq!((r.src_port, r.dst_port), (67, 68));
        assert!(r.ip_checksum_ok && r.udp_checksum_ok, "checksums of {r:?}");
        assert!(r.sname().starts_with("dhcp-xdp reflect queue=0"), "sname {:?}", r.sname());
    }
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(exit.status.success(), "daemon failed: {:?}", exit.stderr);
    assert_eq!(exit.xdp_counter("redirected"), 32);
    assert_eq!(exit.worker_sum("rx"), 32);
    assert_eq!(exit.worker_sum("tx"), 32);
    assert!(!xdp_attached(&net.server, &net.server_if), "XDP program left behind after SIGTERM");
}

#[test]
fn same_client_always_reaches_the_same_worker() {
    let net = TwoHosts::new(1);
    let daemon = Daemon::start(
        &net.server,
        &net.server_if,
        &["--handler", "reflect", "--workers", "2", "--steering-key", "3735928559"],
    );
    let client_mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    let mut seen: HashMap<[u8; 6], HashSet<u32>> = HashMap::new();
    for round in 0..3u32 {
        let reqs: Vec<Request> = (0..40).map(|i| Request::discover(client_mac, chaddr(i), round * 1000 + i)).collect();
        for r in exchange(&mut link, &reqs) {
            let w = r.reflect_worker().expect("worker in sname");
            assert_eq!(
                w,
                dhcp_xdp_common::worker_for_chaddr(&r.chaddr(), 0xdead_beef, 2),
                "XDP hash and common hash disagree"
            );
            seen.entry(r.chaddr()).or_default().insert(w);
        }
    }
    assert_eq!(seen.len(), 40);
    assert!(seen.values().all(|ws| ws.len() == 1), "a client moved between workers: {seen:?}");
    let used: HashSet<u32> = seen.values().flatten().copied().collect();
    assert_eq!(used.len(), 2, "40 clients should spread over both workers");
    drop(daemon);
}

/// How many of `frames` carry transaction id `xid`.
fn with_xid(frames: &[Vec<u8>], xid: u32) -> usize {
    frames.iter().filter(|f| f.windows(4).any(|w| w == xid.to_be_bytes())).count()
}

/// Replies must carry the request's VLAN tags: captured with tcpdump (libpcap restores the tag
/// the kernel strips on receive), compared byte for byte.
#[test]
fn vlan_tags_802_1q_and_qinq_are_steered_and_kept_in_replies() {
    let net = TwoHosts::new(1);
    let daemon = Daemon::start(&net.server, &net.server_if, &["--handler", "reflect", "--workers", "1"]);
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let capture = Capture::start(&net.client, &net.client_if);
    let mut raw = Link::open(&net.client, &net.client_if);
    let mut single = Request::discover(mac, chaddr(1), 0xa1);
    single.vlans = vec![(0x8100, 10)];
    let mut double = Request::discover(mac, chaddr(2), 0xa2);
    double.vlans = vec![(0x88a8, 100), (0x8100, 20)];
    raw.send(&single.build());
    raw.send(&double.build());
    // Each request and its reply (the frames carrying its xid).
    capture.wait_for(Duration::from_secs(3), |f| [single.xid, double.xid].iter().all(|x| with_xid(f, *x) >= 2));
    let frames = capture.finish();
    let reply_for = |xid: u32, tags: &[u8]| {
        frames
            .iter()
            .find(|f| {
                let bootp = 12 + tags.len() + 2 + 20 + 8;
                f.len() > bootp + 8 && f[bootp] == 2 && f[bootp + 4..bootp + 8] == xid.to_be_bytes()
            })
            .map(|f| f[12..12 + tags.len()].to_vec())
    };
    assert_eq!(
        reply_for(0xa1, &[0x81, 0, 0, 10]),
        Some(vec![0x81, 0, 0, 10]),
        "802.1Q reply tags, {} frames captured",
        frames.len()
    );
    assert_eq!(
        reply_for(0xa2, &[0x88, 0xa8, 0, 100, 0x81, 0, 0, 20]),
        Some(vec![0x88, 0xa8, 0, 100, 0x81, 0, 0, 20]),
        "QinQ reply tags"
    );
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert_eq!(exit.xdp_counter("redirected"), 2);
}

#[test]
fn other_traffic_still_reaches_the_kernel() {
    let net = TwoHosts::new(1);
    let daemon = Daemon::start(&net.server, &net.server_if, &[]);
    // ARP + ICMP echo.
    assert!(net.ping_server(), "ping through the interface fails while XDP is attached");
    // TCP.
    let listener = net.server.enter(|| TcpListener::bind("198.18.0.1:7001").expect("tcp bind"));
    let accept = std::thread::spawn(move || listener.accept().map(|_| ()));
    net.client
        .enter(|| TcpStream::connect_timeout(&"198.18.0.1:7001".parse().expect("addr"), Duration::from_secs(3)))
        .expect("TCP connect through the interface");
    accept.join().expect("accept thread").expect("accept");
    // UDP to a port other than 67.
    let server_sock = net.server.enter(|| UdpSocket::bind("198.18.0.1:5353").expect("udp bind"));
    server_sock.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let client_sock = net.client.enter(|| UdpSocket::bind("198.18.0.2:0").expect("udp bind"));
    client_sock.send_to(b"hello", "198.18.0.1:5353").expect("udp send");
    let mut buf = [0u8; 16];
    let (n, _) = server_sock.recv_from(&mut buf).expect("UDP to port 5353 must reach the kernel");
    assert_eq!(&buf[..n], b"hello");
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(exit.xdp_counter("passed_not_dhcp") >= 4, "ARP, ICMP, TCP and UDP are counted as passed");
    assert_eq!(exit.xdp_counter("redirected"), 0);
    assert!(net.ping_server(), "ping after the daemon stopped");
}

/// Only queue 0 has sockets; DHCP frames that land on queue 1 go to the kernel, where a plain
/// UDP socket on port 67 receives them.
#[test]
fn queue_without_socket_falls_back_to_kernel() {
    let net = TwoHosts::new(2);
    let daemon =
        Daemon::start(&net.server, &net.server_if, &["--handler", "reflect", "--queues", "0", "--workers", "1"]);
    let kernel67 = net.server.enter(|| UdpSocket::bind("0.0.0.0:67").expect("bind :67"));
    kernel67.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    // Distinct UDP source ports give distinct flow hashes, which veth spreads over its queues.
    let reqs: Vec<Request> = (0..64u32)
        .map(|i| {
            let mut r = Request::discover(mac, chaddr(i), 0x5000 + i);
            r.src_port = 10_000 + i as u16;
            r
        })
        .collect();
    let answered = exchange(&mut link, &reqs).len() as u64;
    let mut to_kernel = 0u64;
    let mut buf = [0u8; 1500];
    while kernel67.recv_from(&mut buf).is_ok() {
        to_kernel += 1;
    }
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert_eq!(answered + to_kernel, 64, "every frame is answered or delivered to the kernel");
    assert!(answered > 0 && to_kernel > 0, "answered {answered}, kernel {to_kernel}: flows did not spread");
    assert_eq!(exit.xdp_counter("no_socket"), to_kernel);
    assert_eq!(exit.xdp_counter("redirected"), answered);
}

#[test]
fn no_xdp_program_left_after_sigkill() {
    let net = TwoHosts::new(1);
    let daemon = Daemon::start(&net.server, &net.server_if, &[]);
    assert!(xdp_attached(&net.server, &net.server_if), "program attached while running");
    let exit = daemon.signal_and_wait(Signal::SIGKILL);
    assert!(!exit.status.success());
    assert!(!xdp_attached(&net.server, &net.server_if), "XDP program left behind after SIGKILL");
    assert!(net.ping_server());
}

#[test]
fn worker_panic_stops_daemon_and_detaches() {
    let net = TwoHosts::new(1);
    let mut daemon =
        Daemon::start(&net.server, &net.server_if, &["--handler", "reflect", "--fault-panic-on-xid", "0xdead"]);
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    link.send(&Request::discover(mac, chaddr(7), 0xdead).build());
    let exit = daemon.wait(Duration::from_secs(10));
    assert!(!exit.status.success(), "a dead worker must fail the daemon");
    assert!(exit.stderr.iter().any(|l| l.contains("fault injection")), "{:?}", exit.stderr);
    assert!(!xdp_attached(&net.server, &net.server_if), "XDP program left behind after a worker panic");
    assert!(net.ping_server());
}

#[test]
fn sigint_is_a_clean_stop_too() {
    let net = TwoHosts::new(1);
    let daemon = Daemon::start(&net.server, &net.server_if, &[]);
    let exit = daemon.signal_and_wait(Signal::SIGINT);
    assert!(exit.status.success());
    assert!(!xdp_attached(&net.server, &net.server_if), "the XDP program stayed attached");
}

#[test]
fn startup_reports_queues_sockets_and_modes() {
    let net = TwoHosts::new(2);
    let daemon = Daemon::start(
        &net.server,
        &net.server_if,
        &["--handler", "reflect", "--workers", "2", "--xdp-mode", "native", "--bind-mode", "copy"],
    );
    let status = daemon.status();
    assert_eq!((status["xdp-mode"].as_str(), status["af-xdp"].as_str()), (Some("Driver"), Some("copy")), "{status}");
    let workers: Vec<(u64, u64)> = daemon.counters().0["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| (w["queue"].as_u64().unwrap_or(99), w["worker"].as_u64().unwrap_or(99)))
        .collect();
    assert_eq!(workers, vec![(0, 0), (0, 1), (1, 0), (1, 1)], "two queues, two sockets each");
    drop(daemon);
    // Zero-copy forced on veth must fail with a clear error rather than silently copy.
    let out = net
        .server
        .exec(tests::daemon_bin())
        .args(["run", "--iface", &net.server_if, "--bind-mode", "zero-copy", "--handler", "reflect"])
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zero-copy") && err.contains("not supported"), "{err}");
    assert!(!xdp_attached(&net.server, &net.server_if));
}

#[test]
fn generic_skb_mode_steers_too() {
    let net = TwoHosts::new(1);
    let daemon =
        Daemon::start(&net.server, &net.server_if, &["--handler", "reflect", "--xdp-mode", "skb", "--workers", "1"]);
    let status = daemon.status();
    assert_eq!(status["xdp-mode"].as_str(), Some("Skb"), "{status}");
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    let reqs: Vec<Request> = (0..8).map(|i| Request::discover(mac, chaddr(i), 0x900 + i)).collect();
    assert_eq!(exchange(&mut link, &reqs).len(), 8);
    assert!(net.ping_server());
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(exit.status.success());
    assert!(!xdp_attached(&net.server, &net.server_if));
}

/// Crafted tagged frames straight on the wire (real clients behind tags: `vlan_clients.rs`):
/// the engine picks the subnet configured for the tags, and the
/// OFFER comes back with the same tags (captured with tcpdump, which restores stripped tags).
#[test]
fn tagged_clients_get_their_vlans_subnet_with_tags_kept() {
    let net = TwoHosts::new(1);
    let dir = tests::TempDir::new("cfg");
    let cfg = dir.config("[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.100-198.18.0.110\"\n\
         [[subnet]]\nsubnet = \"198.18.10.0/24\"\nvlan = [10]\n[[subnet.pool]]\nrange = \"198.18.10.100-198.18.10.110\"\n\
         [[subnet]]\nsubnet = \"198.18.20.0/24\"\nvlan = [100, 20]\n[[subnet.pool]]\nrange = \"198.18.20.100-198.18.20.110\"\n");
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let capture = Capture::start(&net.client, &net.client_if);
    let mut raw = Link::open(&net.client, &net.client_if);
    let mut single = Request::discover(mac, chaddr(11), 0xb1);
    single.vlans = vec![(0x8100, 10)];
    let mut double = Request::discover(mac, chaddr(12), 0xb2);
    double.vlans = vec![(0x88a8, 100), (0x8100, 20)];
    raw.send(&single.build());
    raw.send(&double.build());
    // Each request and its reply (the frames carrying its xid).
    capture.wait_for(Duration::from_secs(3), |f| [single.xid, double.xid].iter().all(|x| with_xid(f, *x) >= 2));
    let frames = capture.finish();
    let offer = |xid: u32, tags: usize| {
        frames
            .iter()
            .find(|f| {
                let b = 14 + tags + 20 + 8;
                f.len() > b + 20 && f[b] == 2 && f[b + 4..b + 8] == xid.to_be_bytes()
            })
            .map(|f| {
                (
                    f[12..12 + tags].to_vec(),
                    Ipv4Addr::new(
                        f[14 + tags + 28 + 16],
                        f[14 + tags + 28 + 17],
                        f[14 + tags + 28 + 18],
                        f[14 + tags + 28 + 19],
                    ),
                )
            })
    };
    let (t1, a1) = offer(0xb1, 4).expect("OFFER for the 802.1Q client");
    assert_eq!(t1, vec![0x81, 0, 0, 10]);
    assert_eq!(a1.octets()[..3], [198, 18, 10]);
    let (t2, a2) = offer(0xb2, 8).expect("OFFER for the QinQ client");
    assert_eq!(t2, vec![0x88, 0xa8, 0, 100, 0x81, 0, 0, 20]);
    assert_eq!(a2.octets()[..3], [198, 18, 20]);
    assert!(net.ping_server());
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert_eq!(exit.engine_sum("tx_offer"), 2);
}
