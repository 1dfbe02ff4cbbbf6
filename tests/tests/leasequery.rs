//! DHCPv4 leasequery (RFC 4388) against a running daemon, with a leasequery client written here
//! from the RFC (frames built by the tests' own builder, not the server's code): a relay asks
//! by address, by MAC and by client identifier and is answered DHCPLEASEACTIVE with the
//! client's address, hardware address, lease time left and last transaction, as the clients were given them; DHCPLEASEUNASSIGNED for a free address of ours,
//! DHCPLEASEUNKNOWN for an address not ours and a client we do not know; a relay not listed in
//! `[relays] leasequery` gets no answer at all.

use std::{net::Ipv4Addr, time::Duration};

use tests::{
    Daemon, TempDir, TwoHosts,
    frames::{Link, RawClient, Reply, Request, bootp_option},
};

const CONFIG: &str = "[server]\nlease-time = 600\n[[subnet]]\nsubnet = \"198.18.0.0/16\"\n\
    [[subnet.pool]]\nrange = \"198.18.16.1-198.18.16.200\"\n[relays]\nleasequery = [\"198.18.255.0/24\"]\n";

/// A DHCPLEASEQUERY from the relay at `giaddr` (the client host), sent to the server.
fn query(
    net: &TwoHosts,
    link: &mut Link,
    giaddr: Ipv4Addr,
    xid: u32,
    shape: impl FnOnce(&mut Request),
) -> Option<Reply> {
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut r = Request::discover(mac, [0; 6], xid);
    r.options = vec![53, 1, 10];
    r.giaddr = giaddr;
    r.src_ip = net.client_ip;
    r.src_port = 67;
    r.dst_ip = net.server_ip;
    r.dst_mac = TwoHosts::mac(&net.server, &net.server_if);
    shape(&mut r);
    let frame = r.build();
    for _ in 0..3 {
        link.send(&frame);
        if let Some(reply) = link.replies(1, Duration::from_millis(400), |x| x.xid() == xid).pop() {
            return Some(reply);
        }
    }
    None
}

fn ciaddr(r: &Reply) -> Ipv4Addr {
    Ipv4Addr::new(r.bootp[12], r.bootp[13], r.bootp[14], r.bootp[15])
}

fn u32_opt(r: &Reply, code: u8) -> Option<u32> {
    r.option(code).and_then(|v| v.try_into().ok()).map(u32::from_be_bytes)
}

#[test]
fn a_relay_rebuilds_its_table_by_leasequery() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("lq");
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &dir.config(CONFIG)]);
    let mut clients = RawClient::new(&net);
    let (a_mac, b_mac) = ([2, 0x1a, 0, 0, 0, 1], [2, 0x1a, 0, 0, 0, 2]);
    let a = clients.bind(a_mac, "cpe-a");
    let b = clients.bind(b_mac, "cpe-b");
    let mut link = Link::open(&net.client, &net.client_if);
    let relay = net.client_ip;

    // By address: ACTIVE, the client's hardware address, its lease time left and last
    // transaction.
    let r = query(&net, &mut link, relay, 0x4c01, |q| q.ciaddr = a).expect("an answer by address");
    assert_eq!(r.message_type(), Some(13), "DHCPLEASEACTIVE");
    assert_eq!((ciaddr(&r), r.chaddr()), (a, a_mac));
    assert!(u32_opt(&r, 51).is_some_and(|t| t > 590 && t <= 600), "lease time left: {:?}", r.option(51));
    assert!(u32_opt(&r, 91).is_some_and(|t| t < 30), "last transaction: {:?}", r.option(91));
    assert_eq!(r.option(61), Some(&[&[1][..], &a_mac[..]].concat()[..]), "the client identifier it holds by");
    // The server's address in the subnet, as its OFFERs name it (the first of its two there).
    assert!(
        r.server_id().is_some_and(|s| s == Ipv4Addr::new(198, 18, 0, 1) || s == net.server_ip),
        "{:?}",
        r.server_id()
    );
    assert_eq!((r.dst_ip, r.dst_port), (relay, 67), "answered to the relay");
    // By MAC and by client identifier: ACTIVE with the associated addresses.
    let r = query(&net, &mut link, relay, 0x4c02, |q| q.chaddr = b_mac).expect("an answer by MAC");
    assert_eq!((r.message_type(), ciaddr(&r)), (Some(13), b));
    assert_eq!(r.option(92), None, "one address: no associated-ip (as ISC dhcpd answers)");
    let r = query(&net, &mut link, relay, 0x4c03, |q| {
        q.options.extend_from_slice(&[61, 7, 1]);
        q.options.extend_from_slice(&a_mac);
    })
    .expect("an answer by client id");
    assert_eq!((r.message_type(), ciaddr(&r), r.chaddr()), (Some(13), a, a_mac));
    // A free address of ours: UNASSIGNED; one not ours: UNKNOWN; a client we do not know: UNKNOWN.
    let free = Ipv4Addr::new(198, 18, 16, 199);
    let r = query(&net, &mut link, relay, 0x4c04, |q| q.ciaddr = free).expect("an answer");
    assert_eq!((r.message_type(), ciaddr(&r)), (Some(11), free), "DHCPLEASEUNASSIGNED");
    let r = query(&net, &mut link, relay, 0x4c05, |q| q.ciaddr = Ipv4Addr::new(198, 19, 1, 1)).expect("an answer");
    assert_eq!(r.message_type(), Some(12), "DHCPLEASEUNKNOWN");
    let r = query(&net, &mut link, relay, 0x4c06, |q| q.chaddr = [2, 0x1a, 0, 0, 0, 9]).expect("an answer");
    assert_eq!(r.message_type(), Some(12));
    // A released lease is no longer active.
    clients.release(&net, b_mac, b);
    std::thread::sleep(Duration::from_millis(300));
    let r = query(&net, &mut link, relay, 0x4c07, |q| q.ciaddr = b).expect("an answer");
    assert_eq!(r.message_type(), Some(11), "released: unassigned");
    // A relay not allowed to ask: no answer, counted.
    assert!(query(&net, &mut link, Ipv4Addr::new(198, 18, 200, 1), 0x4c08, |q| q.ciaddr = a).is_none());
    assert!(daemon.wait_counters(Duration::from_secs(5), |c| c.worker_sum("drop_untrusted_relay") >= 1));
}

/// A process of the test, killed on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a leasequery answer says, for comparing two servers (which give their clients
/// different addresses): its type, whose address `ciaddr` is (`name` of it), `chaddr`, whether
/// it gives the lease time left, and whose addresses option 92 lists.
type Gist = Option<(Option<u8>, String, [u8; 6], bool, Option<Vec<String>>)>;

fn gist(r: &Option<Reply>, name: &dyn Fn(Ipv4Addr) -> String) -> Gist {
    r.as_ref().map(|r| {
        let assoc = r.option(92).map(|v| v.chunks(4).map(|a| name(Ipv4Addr::new(a[0], a[1], a[2], a[3]))).collect());
        (r.message_type(), name(ciaddr(r)), r.chaddr(), r.option(51).is_some(), assoc)
    })
}

/// The same clients and queries against Debian's ISC dhcpd (`allow leasequery;`) and against
/// dhcp-xdp: every answer agrees in type, address, hardware address, whether the lease time is
/// given and the associated addresses.
#[test]
fn leasequery_answers_agree_with_isc_dhcpd() {
    let run = |server: &str| -> Vec<Gist> {
        let net = TwoHosts::for_dhcp(1);
        let dir = TempDir::new("lqref");
        let _server: Box<dyn std::any::Any> = if server == "dhcpd" {
            let conf = dir.path().join("dhcpd.conf");
            std::fs::write(
                &conf,
                "authoritative;\nping-check false;\nallow leasequery;\ndefault-lease-time 600;\nmax-lease-time 600;\n\
                 subnet 198.18.0.0 netmask 255.255.0.0 { range 198.18.16.1 198.18.16.200; }\n",
            )
            .expect("dhcpd.conf");
            let leases = dir.path().join("dhcpd.leases");
            std::fs::write(&leases, "").expect("dhcpd.leases");
            let child = net
                .server
                .exec(tests::tool("dhcpd", "isc-dhcp-server"))
                .args(["-4", "-f", "-q", "-cf"])
                .arg(&conf)
                .arg("-lf")
                .arg(&leases)
                .arg("-pf")
                .arg(dir.path().join("dhcpd.pid"))
                .arg(&net.server_if)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("dhcpd");
            std::thread::sleep(Duration::from_secs(1));
            Box::new(Killed(child))
        } else {
            Box::new(Daemon::start(&net.server, &net.server_if, &["--config", &dir.config(CONFIG)]))
        };
        let mut clients = RawClient::new(&net);
        let (a_mac, b_mac) = ([2, 0x1b, 0, 0, 0, 1], [2, 0x1b, 0, 0, 0, 2]);
        let a = clients.bind(a_mac, "cpe-a");
        let b = clients.bind(b_mac, "cpe-b");
        let mut link = Link::open(&net.client, &net.client_if);
        let relay = net.client_ip;
        let mut out = vec![];
        let mut xid = 0x4d00;
        let name = |x: Ipv4Addr| match x {
            x if x == a => "a".to_owned(),
            x if x == b => "b".to_owned(),
            x => x.to_string(),
        };
        let mut ask = |shape: &dyn Fn(&mut Request)| {
            xid += 1;
            gist(&query(&net, &mut link, relay, xid, shape), &name)
        };
        out.push(ask(&|q| q.ciaddr = a));
        out.push(ask(&|q| q.ciaddr = b));
        out.push(ask(&|q| q.chaddr = a_mac));
        out.push(ask(&|q| {
            q.options.extend_from_slice(&[61, 7, 1]);
            q.options.extend_from_slice(&b_mac);
        }));
        out.push(ask(&|q| q.ciaddr = Ipv4Addr::new(198, 18, 16, 150)));
        out.push(ask(&|q| q.ciaddr = Ipv4Addr::new(198, 19, 1, 1)));
        out.push(ask(&|q| q.chaddr = [2, 0x1b, 0, 0, 0, 9]));
        out
    };
    let reference = run("dhcpd");
    let ours = run("dhcp-xdp");
    assert!(reference.iter().all(Option::is_some), "dhcpd left queries unanswered: {reference:?}");
    for (i, (r, o)) in reference.iter().zip(&ours).enumerate() {
        assert_eq!(o, r, "query {i}: dhcp-xdp (left) and ISC dhcpd (right) differ");
    }
}

/// Option 82 with a circuit id, a remote id and, when given, a relay id (RFC 6925).
fn rai(circuit: &[u8], remote: &[u8], relay_id: Option<&[u8]>) -> Vec<u8> {
    let mut v = [&[1, circuit.len() as u8][..], circuit, &[2, remote.len() as u8], remote].concat();
    if let Some(id) = relay_id {
        v.extend_from_slice(&[12, id.len() as u8]);
        v.extend_from_slice(id);
    }
    v
}

/// A relayed DORA of `chaddr` through the relay at the client host, on the line `remote`
/// (option 82 remote id) and circuit `circuit`; the address.
fn bind_relayed(net: &TwoHosts, c: &mut RawClient, chaddr: [u8; 6], circuit: &[u8], remote: &[u8]) -> Ipv4Addr {
    bind_with(net, c, chaddr, &rai(circuit, remote, None))
}

/// A relayed DORA of `chaddr` through the relay at the client host, with the option 82 `rai`;
/// the address.
fn bind_with(net: &TwoHosts, c: &mut RawClient, chaddr: [u8; 6], rai: &[u8]) -> Ipv4Addr {
    let relayed = |mut r: Request| {
        r.giaddr = net.client_ip;
        r.src_ip = net.client_ip;
        r.src_port = 67;
        r.dst_ip = net.server_ip;
        r.dst_mac = TwoHosts::mac(&net.server, &net.server_if);
        r.options.extend_from_slice(&[82, rai.len() as u8]);
        r.options.extend_from_slice(rai);
        r
    };
    let offer = c.ask(relayed(Request::discover([0; 6], chaddr, 0)), 2).expect("a relayed offer");
    let mut r = Request::discover([0; 6], chaddr, 0);
    r.options = vec![53, 1, 3, 50, 4];
    r.options.extend_from_slice(&offer.yiaddr().octets());
    r.options.extend_from_slice(&[54, 4]);
    r.options.extend_from_slice(&offer.server_id().expect("server id").octets());
    let ack = c.ask(relayed(r), 5).expect("a relayed ACK");
    ack.yiaddr()
}

/// One message of a bulk answer: its type, `ciaddr`, `chaddr`, and the option 82 it carries.
type Bulk = (u8, Ipv4Addr, [u8; 6], Option<Vec<u8>>);

/// A bulk leasequery (RFC 6926) exchange over TCP: the query framed by its length, the
/// answers until DHCPLEASEQUERYDONE (message type 15); each query's answers, and the status
/// code (option 151) of its DONE.
fn bulk(net: &TwoHosts, queries: Vec<Request>) -> Vec<(Vec<Bulk>, Option<u8>)> {
    net.client.enter(move || {
        let mut s = std::net::TcpStream::connect("198.18.255.1:67").expect("bulk leasequery connection");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut all = vec![];
        for q in queries {
            // The BOOTP message alone: the frame builder's payload past its 42 bytes of headers.
            let frame = q.build();
            let msg = &frame[42..];
            tests::write_framed(&mut s, msg);
            let mut answers = vec![];
            loop {
                let m = tests::read_framed(&mut s);
                let kind = bootp_option(&m, 53).and_then(|v| v.first().copied()).unwrap_or(0);
                if kind == 15 {
                    all.push((answers, bootp_option(&m, 151).and_then(|v| v.first().copied())));
                    break;
                }
                let rai = bootp_option(&m, 82).map(<[u8]>::to_vec);
                answers.push((kind, Ipv4Addr::new(m[12], m[13], m[14], m[15]), m[28..34].try_into().unwrap(), rai));
            }
        }
        all
    })
}

/// Bulk leasequery over TCP: the relay that rebooted gets every lease of its line (by remote
/// id, by circuit id) as DHCPLEASEACTIVE, then DHCPLEASEQUERYDONE, on one connection, with the
/// datapath answering DHCP meanwhile; an RFC 4388 query (by address) works there too.
#[test]
fn a_rebooted_relay_gets_every_lease_of_its_line_over_tcp() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("bulklq");
    let _daemon = Daemon::start(&net.server, &net.server_if, &["--config", &dir.config(CONFIG)]);
    let mut c = RawClient::new(&net);
    let mut line7 = vec![];
    for i in 0..5u8 {
        let mac = [2, 0x1c, 0, 0, 0, i];
        line7.push((bind_relayed(&net, &mut c, mac, b"olt1/1/7", b"line-7"), mac));
    }
    let other = bind_relayed(&net, &mut c, [2, 0x1c, 0, 0, 1, 0], b"olt1/1/8", b"line-8");
    let q = |shape: &dyn Fn(&mut Request)| {
        let mut r = Request::discover([0; 6], [0; 6], 0x5e01);
        r.options = vec![53, 1, 14];
        r.giaddr = net.client_ip;
        shape(&mut r);
        r
    };
    let answers = bulk(
        &net,
        vec![
            q(&|r| r.options.extend_from_slice(&[82, 8, 2, 6, b'l', b'i', b'n', b'e', b'-', b'7'])),
            q(&|r| r.options.extend_from_slice(&[82, 10, 1, 8, b'o', b'l', b't', b'1', b'/', b'1', b'/', b'8'])),
            q(&|r| r.ciaddr = other),
            q(&|r| r.options.extend_from_slice(&[82, 8, 2, 6, b'l', b'i', b'n', b'e', b'-', b'9'])),
        ],
    );
    let mut got: Vec<(Ipv4Addr, [u8; 6])> = answers[0].0.iter().map(|a| (a.1, a.2)).collect();
    got.sort();
    line7.sort();
    assert_eq!(got, line7, "every lease of line-7");
    assert!(answers[0].0.iter().all(|a| a.0 == 13), "{:?}", answers[0]);
    let line7_rai = rai(b"olt1/1/7", b"line-7", None);
    assert!(
        answers[0].0.iter().all(|a| a.3.as_deref() == Some(&line7_rai[..])),
        "option 82 as stored: {:?}",
        answers[0]
    );
    let brief = |i: usize| answers[i].0.iter().map(|a| (a.0, a.1)).collect::<Vec<_>>();
    assert_eq!(brief(1), [(13, other)], "the circuit olt1/1/8");
    assert_eq!(brief(2), [(13, other)], "by address");
    assert!(answers[3].0.is_empty(), "a line with no lease: just DONE");
    assert!(answers[..4].iter().all(|a| a.1 == Some(0)), "DONE with status Success: {answers:?}");
    // DHCP went on meanwhile.
    c.bind([2, 0x1c, 0, 0, 2, 0], "after");
}

/// RFC 6148 and RFC 6926's additions, and option 82 as it was stored: a relay adds its relay id
/// (RFC 6925) beside each line's circuit and remote id; asked over UDP by remote id or relay id
/// it is answered ACTIVE with the line's most recent lease, every address of the line (92) and
/// the option 82 exactly as it sent it; by address too, after SIGKILL and recovery (the
/// journal keeps it); over TCP by relay id it gets every lease given through it, each with
/// its option 82; a query that names nothing is UNKNOWN with status MalformedQuery (151: 3),
/// and a bulk one ends with DONE and that status.
#[test]
fn relays_are_answered_by_remote_and_relay_id_with_their_option_82() {
    use nix::sys::signal::Signal;
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("lq6148");
    let state = TempDir::new("lq6148-state");
    let cfg = dir.config(CONFIG);
    let state_arg = state.path().display().to_string();
    let args = ["--config", cfg.as_str(), "--state-dir", state_arg.as_str()];
    let daemon = Daemon::start(&net.server, &net.server_if, &args);
    let mut c = RawClient::new(&net);
    let line = |i: u8| rai(format!("olt1/1/{i}").as_bytes(), format!("line-{i}").as_bytes(), Some(b"bng-1"));
    let a = bind_with(&net, &mut c, [2, 0x1d, 0, 0, 0, 1], &line(1));
    let a2 = bind_with(&net, &mut c, [2, 0x1d, 0, 0, 0, 2], &line(1));
    let b = bind_with(&net, &mut c, [2, 0x1d, 0, 0, 0, 3], &line(2));
    let other = rai(b"olt2/1/1", b"line-9", Some(b"bng-2"));
    let x = bind_with(&net, &mut c, [2, 0x1d, 0, 0, 0, 9], &other);
    let mut link = Link::open(&net.client, &net.client_if);
    let relay = net.client_ip;
    let by_line = |sub: u8, id: &[u8]| {
        let v = [&[sub, id.len() as u8][..], id].concat();
        move |q: &mut Request| {
            q.options.extend_from_slice(&[82, v.len() as u8]);
            q.options.extend_from_slice(&v);
        }
    };
    // By remote id (RFC 6148): the line's most recent lease, both its addresses, its option 82.
    let r = query(&net, &mut link, relay, 0x6101, by_line(2, b"line-1")).expect("an answer by remote id");
    // (Both were bound within the same second: either is the most recent.)
    assert_eq!(r.message_type(), Some(13));
    assert!([a, a2].contains(&ciaddr(&r)), "a lease of line-1: {}", ciaddr(&r));
    let mut assoc: Vec<Ipv4Addr> =
        r.option(92).unwrap_or_default().chunks(4).map(|o| Ipv4Addr::new(o[0], o[1], o[2], o[3])).collect();
    assoc.sort();
    let mut want = vec![a, a2];
    want.sort();
    assert_eq!(assoc, want, "every address of the line");
    assert_eq!(r.option(82), Some(&line(1)[..]), "option 82 as the relay sent it");
    // By relay id: the relay's most recent lease.
    let r = query(&net, &mut link, relay, 0x6102, by_line(12, b"bng-2")).expect("an answer by relay id");
    assert_eq!((r.message_type(), ciaddr(&r), r.option(82)), (Some(13), x, Some(&other[..])));
    let r = query(&net, &mut link, relay, 0x6103, by_line(2, b"line-5")).expect("an answer");
    assert_eq!(r.message_type(), Some(12), "a line with no lease: DHCPLEASEUNKNOWN");
    // Nothing named: UNKNOWN, MalformedQuery.
    let r = query(&net, &mut link, relay, 0x6104, |_| {}).expect("an answer to an empty query");
    assert_eq!((r.message_type(), r.option(151).and_then(|v| v.first().copied())), (Some(12), Some(3)));
    // Bulk by relay id: every lease given through bng-1, each with its option 82.
    let q = |shape: &dyn Fn(&mut Request)| {
        let mut r = Request::discover([0; 6], [0; 6], 0x6201);
        r.options = vec![53, 1, 14];
        r.giaddr = net.client_ip;
        shape(&mut r);
        r
    };
    let answers = bulk(&net, vec![q(&by_line(12, b"bng-1")), q(&|_| {})]);
    let mut got: Vec<(Ipv4Addr, Option<Vec<u8>>)> = answers[0].0.iter().map(|m| (m.1, m.3.clone())).collect();
    got.sort();
    let mut want = vec![(a, Some(line(1))), (a2, Some(line(1))), (b, Some(line(2)))];
    want.sort();
    assert_eq!(got, want, "every lease through bng-1");
    assert_eq!((answers[0].1, answers[1].0.len(), answers[1].1), (Some(0), 0, Some(3)), "{answers:?}");
    // SIGKILL: the journal kept each lease's option 82.
    daemon.signal_and_wait(Signal::SIGKILL);
    let daemon = Daemon::start(&net.server, &net.server_if, &args);
    let r = query(&net, &mut link, relay, 0x6105, |q| q.ciaddr = b).expect("an answer by address");
    assert_eq!((r.message_type(), r.option(82)), (Some(13), Some(&line(2)[..])), "after SIGKILL and recovery");
    // lease4-get shows it as Kea's extended info.
    let got = daemon.ask("lease4-get", serde_json::json!({ "ip-address": b.to_string() }));
    let hex: String = line(2).iter().map(|v| format!("{v:02X}")).collect();
    assert_eq!(got["arguments"]["user-context"]["ISC"]["relay-agent-info"]["sub-options"], format!("0x{hex}"), "{got}");
}

/// A relay's reboot under load: 300 subscriber lines behind one BNG (its relay id) are bound,
/// then while other clients keep binding (a DORA after another, each timed) the BNG asks for
/// its leases three times over TCP; every answer holds every one of the 300 leases, every DORA
/// of the load is answered, and none waits a second (the lease tables are read a shard at a
/// time: DHCP does not stall behind the stream).
#[test]
fn a_relays_reboot_under_load_loses_nothing_and_stalls_nothing() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("bulklq-load");
    let cfg = CONFIG.replace("198.18.16.200", "198.18.23.250");
    let _daemon = Daemon::start(&net.server, &net.server_if, &["--config", &dir.config(&cfg)]);
    let mut c = RawClient::new(&net);
    let mut circuit: Vec<(Ipv4Addr, [u8; 6])> = (0..300u16)
        .map(|i| {
            let mac = [2, 0x1e, 0, 0, (i >> 8) as u8, i as u8];
            let line = rai(format!("olt9/1/{i}").as_bytes(), format!("line-{i}").as_bytes(), Some(b"bng-9"));
            (bind_with(&net, &mut c, mac, &line), mac)
        })
        .collect();
    circuit.sort();
    // The load: fresh clients, one DORA after another, on a client of its own (its own xids).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = RawClient::new(&net).with_xid(0x0100_0000);
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut bound, mut slowest) = (0u32, Duration::ZERO);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && bound < 1500 {
                let t = std::time::Instant::now();
                load.bind([2, 0x1f, 0, 0, (bound >> 8) as u8, bound as u8], "load");
                slowest = slowest.max(t.elapsed());
                bound += 1;
            }
            (bound, slowest)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let q = || {
        let mut r = Request::discover([0; 6], [0; 6], 0x5f01);
        r.options = vec![53, 1, 14, 82, 7, 12, 5];
        r.options.extend_from_slice(b"bng-9");
        r.giaddr = net.client_ip;
        r
    };
    let answers = bulk(&net, vec![q(), q(), q()]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (bound, slowest) = load.join().expect("every DORA of the load answered");
    for (i, (got, status)) in answers.iter().enumerate() {
        let mut got: Vec<(Ipv4Addr, [u8; 6])> = got.iter().map(|a| (a.1, a.2)).collect();
        got.sort();
        assert_eq!((got.len(), *status), (300, Some(0)), "answer {i}");
        assert_eq!(got, circuit, "answer {i}: every lease given through the BNG");
    }
    println!("load: {bound} DORAs during the bulk answers, the slowest {slowest:?}");
    assert!(bound > 0, "the load ran");
    assert!(slowest < Duration::from_secs(1), "a DORA of the load took {slowest:?} ({bound} bound)");
}
