//! DHCPv6 leasequery (RFC 5007) and bulk leasequery (RFC 5460) against a running daemon, with a
//! requestor written here from the RFCs (messages built and read by this file, not the
//! server's code): a real client (ISC dhclient -6 with an address and a delegated prefix) is
//! bound, and a requestor on its link asks by address, by an address inside the delegated
//! prefix and by the client's DUID over UDP, and by link address and DUID over TCP; the answers
//! carry what the client was given (its DUID, its address and prefix with their lifetimes,
//! its last transaction); a requestor not listed in `[relays] leasequery6` gets no answer.

use std::{
    net::{Ipv6Addr, SocketAddr, UdpSocket},
    time::Duration,
};

use tests::{Daemon, TempDir, TwoHosts};

/// The requestor's own address (allowed), and another one on the link (not allowed).
const REQUESTOR: &str = "2001:db8:1::99";
const STRANGER: &str = "2001:db8:1::55";

const LEASEQUERY: u8 = 14;
const LEASEQUERY_REPLY: u8 = 15;
const LEASEQUERY_DONE: u8 = 16;
const LEASEQUERY_DATA: u8 = 17;
const OPTION_CLIENTID: u16 = 1;
const OPTION_IAADDR: u16 = 5;
const OPTION_STATUS_CODE: u16 = 13;
const OPTION_IAPREFIX: u16 = 26;
const OPTION_LQ_QUERY: u16 = 44;
const OPTION_CLIENT_DATA: u16 = 45;
const OPTION_CLT_TIME: u16 = 46;

/// The options in `b`, in order.
fn options(mut b: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = vec![];
    while b.len() >= 4 {
        let code = u16::from_be_bytes([b[0], b[1]]);
        let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
        let Some(v) = b.get(4..4 + len) else { break };
        out.push((code, v.to_vec()));
        b = &b[4 + len..];
    }
    out
}

fn find(opts: &[(u16, Vec<u8>)], code: u16) -> Option<&[u8]> {
    opts.iter().find(|(c, _)| *c == code).map(|(_, v)| &v[..])
}

/// A LEASEQUERY with transaction id `xid` of `kind` about `link`, its query options `q`.
fn leasequery(xid: u32, kind: u8, link: Ipv6Addr, q: &[u8]) -> Vec<u8> {
    let x = xid.to_be_bytes();
    let mut m = vec![LEASEQUERY, x[1], x[2], x[3]];
    // The requestor's DUID: DUID-LL of a made-up MAC.
    m.extend_from_slice(&[0, 1, 0, 10, 0, 3, 0, 1, 2, 0x99, 0, 0, 0, 1]);
    m.extend_from_slice(&OPTION_LQ_QUERY.to_be_bytes());
    m.extend_from_slice(&(17 + q.len() as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(&link.octets());
    m.extend_from_slice(q);
    m
}

fn iaaddr(a: Ipv6Addr) -> Vec<u8> {
    [&[0, 5, 0, 24][..], &a.octets(), &[0; 8]].concat()
}

fn clientid(duid: &[u8]) -> Vec<u8> {
    [&[0, 1][..], &(duid.len() as u16).to_be_bytes(), duid].concat()
}

/// What a client's data says: its DUID, its addresses (with valid lifetime left), its
/// prefixes (prefix, length, valid lifetime left), its last transaction.
#[derive(Debug)]
struct ClientData {
    duid: Vec<u8>,
    addrs: Vec<(Ipv6Addr, u32)>,
    prefixes: Vec<(Ipv6Addr, u8, u32)>,
    clt: Option<u32>,
}

fn client_data(v: &[u8]) -> ClientData {
    let o = options(v);
    let u32_at = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let addr_at = |b: &[u8], at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&b[at..at + 16]).unwrap());
    ClientData {
        duid: find(&o, OPTION_CLIENTID).unwrap_or_default().to_vec(),
        addrs: o.iter().filter(|(c, _)| *c == OPTION_IAADDR).map(|(_, v)| (addr_at(v, 0), u32_at(v, 20))).collect(),
        prefixes: o
            .iter()
            .filter(|(c, _)| *c == OPTION_IAPREFIX)
            .map(|(_, v)| (addr_at(v, 9), v[8], u32_at(v, 4)))
            .collect(),
        clt: find(&o, OPTION_CLT_TIME).map(|v| u32_at(v, 0)),
    }
}

/// One answer message: its type, its status code (when it has one), its client data.
#[derive(Debug)]
struct Answer {
    kind: u8,
    status: Option<u16>,
    data: Option<ClientData>,
}

fn answer(m: &[u8]) -> Answer {
    let o = options(&m[4..]);
    Answer {
        kind: m[0],
        status: find(&o, OPTION_STATUS_CODE).map(|s| u16::from_be_bytes([s[0], s[1]])),
        data: find(&o, OPTION_CLIENT_DATA).map(client_data),
    }
}

/// Sends `q` over UDP from `from` to the server; its answer, if one comes.
fn ask_udp(net: &TwoHosts, from: &str, q: Vec<u8>) -> Option<Answer> {
    let from: Ipv6Addr = from.parse().unwrap();
    net.client.enter(move || {
        let s = UdpSocket::bind(SocketAddr::from((from, 0))).expect("requestor socket");
        s.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
        let server = SocketAddr::from(("2001:db8:1::1".parse::<Ipv6Addr>().unwrap(), 547));
        let mut buf = [0u8; 1500];
        for _ in 0..3 {
            s.send_to(&q, server).expect("send");
            if let Ok((n, _)) = s.recv_from(&mut buf)
                && buf[1..4] == q[1..4]
            {
                return Some(answer(&buf[..n]));
            }
        }
        None
    })
}

/// Sends each query over one TCP connection (RFC 5460 framing) and reads its answers until
/// LEASEQUERY-DONE (or a REPLY with an error status, which ends that query's answer).
fn ask_tcp(net: &TwoHosts, queries: Vec<Vec<u8>>) -> Vec<Vec<Answer>> {
    net.client.enter(move || {
        let server = SocketAddr::from(("2001:db8:1::1".parse::<Ipv6Addr>().unwrap(), 547));
        let mut s = std::net::TcpStream::connect(server).expect("bulk leasequery connection");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut all = vec![];
        for q in queries {
            tests::write_framed(&mut s, &q);
            let mut answers = vec![];
            loop {
                let m = tests::read_framed(&mut s);
                assert_eq!(m[1..4], q[1..4], "the query's transaction id");
                let a = answer(&m);
                let end = a.kind == LEASEQUERY_DONE || (a.kind == LEASEQUERY_REPLY && a.status.is_some_and(|s| s != 0));
                answers.push(a);
                if end {
                    break;
                }
            }
            all.push(answers);
        }
        all
    })
}

fn hex(s: &str) -> Vec<u8> {
    s.split(':').map(|b| u8::from_str_radix(b, 16).expect("hex")).collect()
}

#[test]
fn a_requestor_finds_dhcpv6_clients_by_address_prefix_duid_and_link() {
    let net = TwoHosts::for_dhcp6(1);
    let dir = TempDir::new("lq6");
    let cfg = dir.config(&format!(
        "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.100-198.18.0.150\"\n\
         [[subnet6]]\nsubnet = \"2001:db8:1::/64\"\nvalid-lifetime = 600\npreferred-lifetime = 400\nrapid-commit = true\n\
         [[subnet6.pool]]\nrange = \"2001:db8:1::100-2001:db8:1::1ff\"\n\
         [[subnet6.pd-pool]]\nprefix = \"2001:db8:100::\"\nprefix-len = 48\ndelegated-len = 56\n\
         [relays]\nleasequery6 = [\"{REQUESTOR}/128\"]\n"
    ));
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let client = tests::clients::Dhclient::new6(&net.client, &net.client_if, &["-N", "-P"]);
    assert!(client.obtain(&net.client), "dhclient -6 -N -P");
    let (ip, prefix) = client.address_and_prefix(Some("BOUND6"), 0);
    let ip: Ipv6Addr = ip.parse().expect("an address");
    let (p, len) = prefix.split_once('/').expect("prefix/len");
    let (p, len): (Ipv6Addr, u8) = (p.parse().expect("a prefix"), len.parse().expect("a length"));
    let leases = daemon.ask("lease6-get-all", serde_json::json!({}));
    let duid = hex(leases["arguments"]["leases"][0]["duid"].as_str().unwrap_or_else(|| panic!("{leases}")));
    for a in [REQUESTOR, STRANGER] {
        tests::sh(net.client.exec("ip").args([
            "-6",
            "addr",
            "add",
            &format!("{a}/64"),
            "dev",
            &net.client_if,
            "nodad",
        ]));
    }
    let zero = Ipv6Addr::UNSPECIFIED;

    // By address: the client's DUID, its address and prefix with the lifetimes left.
    let check = |a: &Answer, what: &str| {
        assert_eq!((a.kind, a.status), (LEASEQUERY_REPLY, Some(0)), "{what}: {a:?}");
        let d = a.data.as_ref().unwrap_or_else(|| panic!("{what}: no client data: {a:?}"));
        assert_eq!(d.duid, duid, "{what}");
        assert_eq!(d.addrs.iter().map(|x| x.0).collect::<Vec<_>>(), [ip], "{what}");
        assert_eq!(d.prefixes.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(), [(p, len)], "{what}");
        assert!(d.addrs[0].1 > 500 && d.addrs[0].1 <= 600, "{what}: valid lifetime left {:?}", d.addrs);
        assert!(d.clt.is_some_and(|t| t < 60), "{what}: last transaction {:?}", d.clt);
    };
    let a = ask_udp(&net, REQUESTOR, leasequery(0x10, 1, zero, &iaaddr(ip))).expect("an answer by address");
    check(&a, "by address");
    // An address inside the delegated prefix names its holder too (RFC 5007 §4.1.2.1).
    let inside = Ipv6Addr::from(u128::from(p) | 0x77);
    let a = ask_udp(&net, REQUESTOR, leasequery(0x11, 1, zero, &iaaddr(inside))).expect("an answer");
    check(&a, "by an address in the prefix");
    // By the client's DUID.
    let a = ask_udp(&net, REQUESTOR, leasequery(0x12, 2, zero, &clientid(&duid))).expect("an answer by DUID");
    check(&a, "by DUID");
    // A free address of the link: success, nobody; one outside every link: NotConfigured (9);
    // no address: MalformedQuery (8); a link query over UDP: NotAllowed (10).
    let free: Ipv6Addr = "2001:db8:1::1fe".parse().unwrap();
    let a = ask_udp(&net, REQUESTOR, leasequery(0x13, 1, zero, &iaaddr(free))).expect("an answer");
    assert_eq!((a.status, a.data.is_none()), (Some(0), true), "{a:?}");
    let a = ask_udp(&net, REQUESTOR, leasequery(0x14, 1, zero, &iaaddr("2001:db8:9::1".parse().unwrap())));
    assert_eq!(a.and_then(|a| a.status), Some(9));
    let a = ask_udp(&net, REQUESTOR, leasequery(0x15, 1, zero, &[]));
    assert_eq!(a.and_then(|a| a.status), Some(8));
    let link: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    assert_eq!(ask_udp(&net, REQUESTOR, leasequery(0x16, 4, link, &[])).and_then(|a| a.status), Some(10));
    // Someone not listed: no answer, counted.
    assert!(ask_udp(&net, STRANGER, leasequery(0x17, 1, zero, &iaaddr(ip))).is_none());
    assert!(daemon.wait_counters(Duration::from_secs(5), |c| c.worker_sum("drop_untrusted_relay") >= 1));

    // (The stranger's address goes, so that TCP connects from the requestor's.)
    tests::sh(net.client.exec("ip").args(["-6", "addr", "del", &format!("{STRANGER}/64"), "dev", &net.client_if]));
    // Bulk over TCP: by link address (every client of the link: here one) and by DUID, on
    // one connection; each a REPLY with the client's data, then DONE.
    let got = ask_tcp(&net, vec![leasequery(0x20, 4, link, &[]), leasequery(0x21, 2, zero, &clientid(&duid))]);
    for (answers, what) in got.iter().zip(["by link", "by DUID"]) {
        assert_eq!(
            answers.iter().map(|a| a.kind).collect::<Vec<_>>(),
            [LEASEQUERY_REPLY, LEASEQUERY_DONE],
            "{what}: {answers:?}"
        );
        check(&answers[0], what);
    }
    // A second client on the link (the first stopped, its lease still held): a bulk query by
    // link now has a DATA message for it.
    client.kill();
    let other = tests::clients::Dhclient::new6(&net.client, &net.client_if, &["-N"]);
    let other_duid = [0, 3, 0, 1, 2, 0x98, 0, 0, 0, 7];
    other.set_duid(&other_duid);
    assert!(other.obtain(&net.client), "a second dhclient -6 -N");
    let got = ask_tcp(&net, vec![leasequery(0x22, 4, link, &[])]);
    let kinds: Vec<u8> = got[0].iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [LEASEQUERY_REPLY, LEASEQUERY_DATA, LEASEQUERY_DONE], "{:?}", got[0]);
    let mut duids: Vec<Vec<u8>> = got[0].iter().filter_map(|a| a.data.as_ref().map(|d| d.duid.clone())).collect();
    duids.sort();
    let mut want = vec![duid.clone(), other_duid.to_vec()];
    want.sort();
    assert_eq!(duids, want, "both clients of the link");

    // A relay that adds its relay id (option 53, RFC 5460) to a client's Rapid Commit SOLICIT:
    // a bulk query by that relay id finds the client, and only it.
    let relay_id: [u8; 10] = [0, 3, 0, 1, 2, 0xbb, 0, 0, 0, 1];
    let relayed_duid: [u8; 10] = [0, 3, 0, 1, 2, 0x97, 0, 0, 0, 9];
    let mut inner = vec![1, 0, 0x77, 0x01]; // SOLICIT
    inner.extend_from_slice(&clientid(&relayed_duid));
    inner.extend_from_slice(&[0, 14, 0, 0]); // Rapid Commit
    inner.extend_from_slice(&[0, 3, 0, 12, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0]); // IA_NA 5
    let mut forw = vec![12, 0];
    forw.extend_from_slice(&"2001:db8:1::".parse::<Ipv6Addr>().unwrap().octets());
    forw.extend_from_slice(&"fe80::97".parse::<Ipv6Addr>().unwrap().octets());
    forw.extend_from_slice(&[0, 9]);
    forw.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    forw.extend_from_slice(&inner);
    forw.extend_from_slice(&[0, 53, 0, relay_id.len() as u8]);
    forw.extend_from_slice(&relay_id);
    let replied = net.client.enter(move || {
        let s = UdpSocket::bind(SocketAddr::from((REQUESTOR.parse::<Ipv6Addr>().unwrap(), 547))).expect("relay socket");
        s.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
        let server = SocketAddr::from(("2001:db8:1::1".parse::<Ipv6Addr>().unwrap(), 547));
        let mut buf = [0u8; 1500];
        (0..3).any(|_| {
            s.send_to(&forw, server).expect("send");
            s.recv_from(&mut buf).is_ok_and(|(n, _)| n > 34 && buf[0] == 13)
        })
    });
    assert!(replied, "a Relay-Repl to the relay");
    let by_relay = [&[0, 53, 0, relay_id.len() as u8][..], &relay_id].concat();
    let got = ask_tcp(&net, vec![leasequery(0x23, 3, zero, &by_relay)]);
    assert_eq!(got[0].iter().map(|a| a.kind).collect::<Vec<_>>(), [LEASEQUERY_REPLY, LEASEQUERY_DONE], "{:?}", got[0]);
    assert_eq!(got[0][0].data.as_ref().map(|d| d.duid.clone()), Some(relayed_duid.to_vec()), "{:?}", got[0]);
}
