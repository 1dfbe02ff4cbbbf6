//! The XDP program's parser, verdict by verdict, through BPF_PROG_TEST_RUN on the real kernel
//! verifier and JIT, with crafted and truncated frames.

use aya::{
    Ebpf,
    programs::{TestRun, TestRunOptions, Xdp},
};
use dhcp_xdp::ebpf::{
    PROGRAM_NAME, SteerSettings, configure, load, read_counters, set_buckets, set_queue_sockets, set_shed,
};
use dhcp_xdp_common::{buckets, config, counter, lb_hash, role};
use tests::{
    TwoHosts,
    frames::{Frame6, Request, dhcp6_message, dhcp6_relay_forw},
    require_root,
};

const XDP_PASS: u32 = 2;
const XDP_DROP: u32 = 1;

struct Prog {
    ebpf: Ebpf,
}

impl Prog {
    fn load() -> Self {
        Self::load_role(role::SERVER)
    }

    fn load_role(role: u8) -> Self {
        require_root();
        Self { ebpf: load(0, role).expect("load XDP program") }
    }

    fn xdp(&self) -> &Xdp {
        self.ebpf.program(PROGRAM_NAME).expect("program").try_into().expect("xdp")
    }

    /// Runs the program over `frame` (optionally with an xdp_md context) and returns its action
    /// and the counter slot that moved (exactly one must move).
    fn run(&mut self, frame: &[u8], ctx: Option<(u32, u32)>) -> (u32, u32) {
        let before = read_counters(&self.ebpf).expect("counters");
        let mut out = vec![0u8; frame.len() + 64];
        let md: Vec<u8> = ctx
            .map(|(ifindex, queue)| {
                [0u32, frame.len() as u32, 0, ifindex, queue, 0].iter().flat_map(|v| v.to_ne_bytes()).collect()
            })
            .unwrap_or_default();
        let res = self
            .xdp()
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: ctx.map(|_| md.as_slice()),
                ..TestRunOptions::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        assert_eq!(&out[..res.data_size_out as usize], frame, "the program must not modify frames");
        let after = read_counters(&self.ebpf).expect("counters");
        let moved: Vec<u32> = (0..counter::COUNT).filter(|&s| after.get(s) != before.get(s)).collect();
        assert_eq!(moved.len(), 1, "exactly one counter per frame, moved: {moved:?}");
        assert_eq!(after.get(moved[0]) - before.get(moved[0]), 1);
        (res.return_value, moved[0])
    }
}

fn discover() -> Request {
    Request::discover([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], 7)
}

#[test]
fn dhcp_with_no_socket_on_the_queue_passes_to_kernel() {
    let mut p = Prog::load();
    assert_eq!(p.run(&discover().build(), None), (XDP_PASS, counter::NO_SOCKET));
}

#[test]
fn dhcp_with_zero_one_two_vlan_tags_and_ip_options_is_steered() {
    let mut p = Prog::load();
    set_queue_sockets(&mut p.ebpf, 0, 1).expect("set");
    let mut cases = vec![];
    for vlans in [vec![], vec![(0x8100, 5)], vec![(0x88a8, 100), (0x8100, 5)], vec![(0x8100, 1), (0x8100, 2)]] {
        for opts in [vec![], vec![1, 1, 1, 0], vec![7; 40]] {
            let mut r = discover();
            r.vlans = vlans.clone();
            r.ip_options = opts;
            cases.push(r);
        }
    }
    for r in cases {
        // A slot row exists but holds no socket: the redirect fails over to the kernel. (A real
        // socket in the slot is exercised by the steering tests.)
        assert_eq!(p.run(&r.build(), None), (XDP_PASS, counter::REDIRECT_FAILED), "{r:?}");
    }
}

#[test]
fn everything_else_passes_untouched() {
    let mut p = Prog::load();
    set_queue_sockets(&mut p.ebpf, 0, 1).expect("set");
    let base = discover().build();
    let mut cases: Vec<(&str, Vec<u8>, u32)> = vec![];
    let mut arp = base[..42].to_vec();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    cases.push(("arp", arp, counter::PASSED_NOT_DHCP));
    let mut ipv6 = base.clone();
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    cases.push(("ipv6", ipv6, counter::PASSED_NOT_DHCP));
    let mut tcp = base.clone();
    tcp[14 + 9] = 6;
    cases.push(("tcp", tcp, counter::PASSED_NOT_DHCP));
    for port in [68u16, 53, 6767] {
        let mut r = discover();
        r.dst_port = port;
        cases.push(("udp other port", r.build(), counter::PASSED_NOT_DHCP));
    }
    let mut three_tags = discover();
    three_tags.vlans = vec![(0x88a8, 1), (0x8100, 2), (0x8100, 3)];
    cases.push(("three VLAN tags", three_tags.build(), counter::PASSED_NOT_DHCP));
    let mut mf = base.clone();
    mf[14 + 6] = 0x20;
    cases.push(("first fragment (MF)", mf, counter::FRAGMENT));
    let mut later = base.clone();
    later[14 + 7] = 0x10;
    cases.push(("later fragment", later, counter::FRAGMENT));
    let mut v6hdr = base.clone();
    v6hdr[14] = 0x65;
    cases.push(("IPv4 ethertype, version 6", v6hdr, counter::MALFORMED));
    let mut ihl4 = base.clone();
    ihl4[14] = 0x44;
    cases.push(("IHL 4", ihl4, counter::MALFORMED));
    let mut ihl15 = base[..14 + 40].to_vec();
    ihl15[14] = 0x4f;
    cases.push(("IHL 15 beyond the frame", ihl15, counter::MALFORMED));
    for (name, frame, slot) in cases {
        assert_eq!(p.run(&frame, None), (XDP_PASS, slot), "{name}");
    }
}

#[test]
fn every_truncation_passes_as_malformed() {
    let mut p = Prog::load();
    set_queue_sockets(&mut p.ebpf, 0, 1).expect("set");
    let mut r = discover();
    r.vlans = vec![(0x88a8, 9), (0x8100, 10)];
    r.ip_options = vec![1, 1, 1, 0];
    let frame = r.build();
    let chaddr_end = 14 + 8 + 24 + 8 + 28 + 6;
    // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.
    for len in 14..chaddr_end {
        assert_eq!(p.run(&frame[..len], None), (XDP_PASS, counter::MALFORMED), "prefix of {len} bytes");
    }
    assert_eq!(p.run(&frame[..chaddr_end], None), (XDP_PASS, counter::REDIRECT_FAILED));
}

/// The rx queue decides the XSKMAP row: a queue with no sockets passes even when another queue
/// has them. Needs a real two-queue device for `ingress_ifindex`.
#[test]
fn queue_index_selects_the_socket_row() {
    let net = TwoHosts::new(2);
    let ifname = net.server_if.clone();
    net.server.enter(move || {
        let ifindex = nix::net::if_::if_nametoindex(ifname.as_str()).expect("ifindex");
        let mut p = Prog::load();
        set_queue_sockets(&mut p.ebpf, 0, 2).expect("set");
        let f = discover().build();
        assert_eq!(p.run(&f, Some((ifindex, 0))), (XDP_PASS, counter::REDIRECT_FAILED));
        assert_eq!(p.run(&f, Some((ifindex, 1))), (XDP_PASS, counter::NO_SOCKET));
        set_queue_sockets(&mut p.ebpf, 1, 1).expect("set");
        assert_eq!(p.run(&f, Some((ifindex, 1))), (XDP_PASS, counter::REDIRECT_FAILED));
    });
}

/// Loaded for the load generator, the program takes server replies (from port 67, to a client
/// at 68 or a relay at 67) and passes requests; loaded for the server, the reverse.
#[test]
fn role_decides_between_requests_and_replies() {
    let mut to_client = discover();
    (to_client.src_port, to_client.dst_port) = (67, 68);
    let mut to_relay = discover();
    (to_relay.src_port, to_relay.dst_port) = (67, 67);
    let request = discover();
    let mut gen_ = Prog::load_role(role::GENERATOR);
    set_queue_sockets(&mut gen_.ebpf, 0, 1).expect("set");
    assert_eq!(gen_.run(&to_client.build(), None), (XDP_PASS, counter::REDIRECT_FAILED));
    assert_eq!(gen_.run(&to_relay.build(), None), (XDP_PASS, counter::REDIRECT_FAILED));
    assert_eq!(gen_.run(&request.build(), None), (XDP_PASS, counter::PASSED_NOT_DHCP));
    let mut server = Prog::load();
    set_queue_sockets(&mut server.ebpf, 0, 1).expect("set");
    assert_eq!(server.run(&to_client.build(), None), (XDP_PASS, counter::PASSED_NOT_DHCP));
    assert_eq!(server.run(&to_relay.build(), None), (XDP_PASS, counter::REDIRECT_FAILED));
    assert_eq!(server.run(&request.build(), None), (XDP_PASS, counter::REDIRECT_FAILED));
}

/// The server's settings in these tests: MAC 02:00:00:00:00:aa, address 198.18.0.1.
fn settings(rate: u32, burst: u32) -> SteerSettings {
    SteerSettings {
        mac: [2, 0, 0, 0, 0, 0xaa],
        addrs: vec![std::net::Ipv4Addr::new(198, 18, 0, 1), std::net::Ipv4Addr::new(198, 18, 9, 1)],
        filter_destination: true,
        hash_key: 7,
        rate_per_mac: rate,
        burst_per_mac: burst,
        cluster: false,
        dhcp6: true,
        addrs6: vec!["2001:db8::1".parse().expect("address")],
    }
}

/// The bitmap serving exactly `served`.
fn bucket_bits(served: &[u8]) -> [u32; buckets::WORDS as usize] {
    let mut bits = [0u32; buckets::WORDS as usize];
    for &b in served {
        bits[usize::from(b) / 32] |= 1 << (b % 32);
    }
    bits
}

/// Cluster mode: the program computes the RFC 3074 bucket of the client identifier (found
/// behind other options and pads) or, without one, of chaddr, and drops DISCOVERs and
/// broadcast requests of buckets this node does not serve; unicast renewals to us pass
/// whatever their bucket.
#[test]
fn cluster_mode_drops_other_nodes_buckets_in_xdp() {
    let mut p = Prog::load();
    set_queue_sockets(&mut p.ebpf, 0, 1).expect("set");
    let steered = (XDP_PASS, counter::REDIRECT_FAILED);
    let dropped = (XDP_DROP, counter::OTHER_BUCKET);
    let chaddr = [2, 0, 0, 0, 0, 2];
    let by_mac = lb_hash(&chaddr);
    let client_id: Vec<u8> = [1u8].iter().chain(&[0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10]).copied().collect();
    let by_id = lb_hash(&client_id);
    assert_ne!(by_mac, by_id, "pick a client id in another bucket than the chaddr");
    let mut with_id = discover();
    with_id.options = vec![53, 1, 1, 0, 0, 12, 3, b'a', b'b', b'c', 55, 2, 1, 3, 61, client_id.len() as u8];
    with_id.options.extend(&client_id);
    let mut long_id = discover();
    long_id.options = vec![53, 1, 1, 61, 255];
    long_id.options.extend((0..255u32).map(|i| (i * 7) as u8));
    let by_long = lb_hash(&long_id.options[5..]);
    let mut renewal = discover();
    renewal.ciaddr = [198, 18, 0, 77].into();
    renewal.src_ip = renewal.ciaddr;
    renewal.dst_mac = [2, 0, 0, 0, 0, 0xaa];
    renewal.dst_ip = [198, 18, 0, 1].into();
    let mut rebind = discover();
    rebind.ciaddr = [198, 18, 0, 77].into();
    rebind.src_ip = rebind.ciaddr;

    // Not in cluster mode: nothing is filtered by bucket.
    configure(&mut p.ebpf, &settings(0, 1)).expect("configure");
    assert_eq!(p.run(&discover().build(), None), steered);
    configure(&mut p.ebpf, &SteerSettings { cluster: true, ..settings(0, 1) }).expect("configure");
    // No bucket served: only the unicast renewal gets through.
    set_buckets(&mut p.ebpf, &bucket_bits(&[])).expect("buckets");
    assert_eq!(p.run(&discover().build(), None), dropped, "DISCOVER without client id");
    assert_eq!(p.run(&with_id.build(), None), dropped, "DISCOVER with client id");
    assert_eq!(p.run(&rebind.build(), None), dropped, "broadcast rebind");
    assert_eq!(p.run(&renewal.build(), None), steered, "unicast renewal");
    // The chaddr's bucket: the frame without client id passes, the one with it does not.
    set_buckets(&mut p.ebpf, &bucket_bits(&[by_mac])).expect("buckets");
    assert_eq!(p.run(&discover().build(), None), steered, "chaddr bucket {by_mac}");
    assert_eq!(p.run(&rebind.build(), None), steered, "rebind, chaddr bucket");
    assert_eq!(p.run(&with_id.build(), None), dropped, "the client id decides, not chaddr");
    set_buckets(&mut p.ebpf, &bucket_bits(&[by_id, by_long])).expect("buckets");
    assert_eq!(p.run(&with_id.build(), None), steered, "client id bucket {by_id}");
    assert_eq!(p.run(&long_id.build(), None), steered, "255-byte client id, bucket {by_long}");
    assert_eq!(p.run(&discover().build(), None), dropped);
    // Every bucket served: all pass.
    set_buckets(&mut p.ebpf, &[u32::MAX; buckets::WORDS as usize]).expect("buckets");
    for f in [discover(), with_id, long_id, rebind, renewal] {
        assert_eq!(p.run(&f.build(), None), steered);
    }
}

/// Frames unicast to another MAC or another address (to another server, flooded by a switch,
/// or to a kernel relay on this NIC) pass to the kernel untouched; broadcasts and frames to us
/// are steered.
#[test]
fn only_frames_addressed_to_us_are_steered() {
    let mut p = Prog::load();
    set_queue_sockets(&mut p.ebpf, 0, 1).expect("set");
    configure(&mut p.ebpf, &settings(0, 1)).expect("configure");
    let us = [2, 0, 0, 0, 0, 0xaa];
    let frame = |dst_mac: [u8; 6], dst_ip: [u8; 4]| {
        let mut r = discover();
        r.dst_mac = dst_mac;
        r.dst_ip = dst_ip.into();
        r.build()
    };
    let steered = (XDP_PASS, counter::REDIRECT_FAILED);
    let passed = (XDP_PASS, counter::NOT_FOR_US);
    assert_eq!(p.run(&frame([0xff; 6], [255; 4]), None), steered, "broadcast");
    assert_eq!(p.run(&frame(us, [198, 18, 0, 1]), None), steered, "unicast to us");
    assert_eq!(p.run(&frame(us, [198, 18, 9, 1]), None), steered, "our second address");
    assert_eq!(p.run(&frame(us, [255; 4]), None), steered, "broadcast IP to our MAC");
    assert_eq!(p.run(&frame([2, 0, 0, 0, 0, 0xbb], [198, 18, 0, 2]), None), passed, "to another server");
    assert_eq!(p.run(&frame([0xff; 6], [198, 18, 0, 2]), None), passed, "another address, broadcast MAC");
    assert_eq!(p.run(&frame(us, [198, 18, 0, 2]), None), passed, "another address, our MAC");
    assert_eq!(p.run(&frame([2, 0, 0, 0, 0, 0xbb], [255; 4]), None), passed, "another MAC");
}

/// A DHCP frame from a broadcast or multicast source MAC is dropped and counted.
#[test]
fn group_source_macs_are_dropped() {
    let mut p = Prog::load();
    set_queue_sockets(&mut p.ebpf, 0, 1).expect("set");
    for src in [[0xff; 6], [1, 0, 0x5e, 0, 0, 1], [3, 0, 0, 0, 0, 1]] {
        let mut r = discover();
        r.src_mac = src;
        assert_eq!(p.run(&r.build(), None), (XDP_DROP, counter::BAD_SOURCE), "{src:02x?}");
    }
}

/// One chaddr over its rate is dropped before it reaches a socket; another chaddr is not.
#[test]
fn a_chaddr_over_its_rate_is_dropped_in_xdp() {
    let mut p = Prog::load();
    set_queue_sockets(&mut p.ebpf, 0, 1).expect("set");
    configure(&mut p.ebpf, &settings(1, 3)).expect("configure");
    let flood = discover().build();
    for i in 0..3 {
        assert_eq!(p.run(&flood, None), (XDP_PASS, counter::REDIRECT_FAILED), "frame {i} within the burst");
    }
    for i in 0..20 {
        assert_eq!(p.run(&flood, None), (XDP_DROP, counter::RATE_LIMITED), "frame {} over the rate", i + 3);
    }
    let mut other = discover();
    other.chaddr = [2, 0, 0, 0, 0, 3];
    assert_eq!(p.run(&other.build(), None), (XDP_PASS, counter::REDIRECT_FAILED), "another chaddr");
    // After a second, one more token.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(p.run(&flood, None), (XDP_PASS, counter::REDIRECT_FAILED));
    assert_eq!(p.run(&flood, None), (XDP_DROP, counter::RATE_LIMITED));
}

/// Overload: while the daemon sheds, DISCOVERs are dropped in XDP — option 53 found wherever it
/// is among the first options — and every other request goes on as before; a frame without a
/// message type, or whose options end early, is not taken for a DISCOVER.
#[test]
fn while_shedding_discovers_are_dropped_and_other_requests_go_on() {
    let mut p = Prog::load();
    let with = |options: Vec<u8>| {
        let mut r = discover();
        r.options = options;
        r.build()
    };
    let discover_first = with(vec![53, 1, 1]);
    let discover_later = with(vec![0, 0, 61, 7, 1, 2, 0, 0, 0, 0, 9, 55, 3, 1, 3, 6, 53, 1, 1]);
    let request = with(vec![53, 1, 3, 50, 4, 198, 18, 0, 10]);
    let renewal = with(vec![53, 1, 3]);
    let no_type = with(vec![55, 2, 1, 3]);
    let cut_short = {
        let mut f = with(vec![61, 200]);
        f.truncate(f.len() - 1);
        f
    };
    // Not shedding: everything goes to the sockets (none bound here).
    for f in [&discover_first, &discover_later, &request] {
        assert_eq!(p.run(f, None), (XDP_PASS, counter::NO_SOCKET));
    }
    set_shed(&mut p.ebpf, config::SHED_ALL).expect("shed");
    assert_eq!(p.run(&discover_first, None), (XDP_DROP, counter::SHED_DISCOVER));
    assert_eq!(p.run(&discover_later, None), (XDP_DROP, counter::SHED_DISCOVER));
    for f in [&request, &renewal, &no_type] {
        assert_eq!(p.run(f, None), (XDP_PASS, counter::NO_SOCKET), "only DISCOVERs are shed");
    }
    let (action, _) = p.run(&cut_short, None);
    assert_eq!(action, XDP_PASS, "options cut short are not a DISCOVER");
    set_shed(&mut p.ebpf, 0).expect("unshed");
    assert_eq!(p.run(&discover_first, None), (XDP_PASS, counter::NO_SOCKET));

    // A share: each DISCOVER dropped at random with that probability (a quarter here; 2 000
    // frames put the count within a few percent of it), every REQUEST still steered.
    set_shed(&mut p.ebpf, config::SHED_ALL / 4).expect("shed a quarter");
    let shed = (0..2000).filter(|_| p.run(&discover_first, None) == (XDP_DROP, counter::SHED_DISCOVER)).count();
    assert!((400..=600).contains(&shed), "{shed} of 2 000 DISCOVERs shed at a quarter");
    for _ in 0..200 {
        assert_eq!(p.run(&request, None), (XDP_PASS, counter::NO_SOCKET), "a REQUEST shed");
    }
    set_shed(&mut p.ebpf, 0).expect("unshed");
}

/// A DHCPv6 SOLICIT from client MAC 02:00:00:00:00:01 to ff02::1:2.
fn solicit() -> Frame6 {
    let duid = vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1];
    let ia_na = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    Frame6::to_servers([2, 0, 0, 0, 0, 1], dhcp6_message(1, 0x1234, &[(1, duid), (8, vec![0, 0]), (3, ia_na)]))
}

/// DHCPv6 is steered only when the daemon serves it: UDP to 547 right after the IPv6 header,
/// to the DHCP groups or one of our addresses, with the VLAN tags DHCPv4 may have, relayed or
/// not; everything else IPv6 (ND, other UDP, client-port traffic) passes untouched, extension
/// headers and fragments counted apart; every truncation is malformed; group sources are
/// dropped; the rate limit and shedding (of SOLICITs) apply as to DHCPv4.
#[test]
fn dhcp6_to_servers_is_steered_and_other_ipv6_passes() {
    let mut p = Prog::load();
    set_queue_sockets(&mut p.ebpf, 0, 1).expect("set");
    let steered = (XDP_PASS, counter::REDIRECT_FAILED);
    configure(&mut p.ebpf, &SteerSettings { dhcp6: false, ..settings(0, 1) }).expect("configure");
    assert_eq!(p.run(&solicit().build(), None), (XDP_PASS, counter::PASSED_NOT_DHCP), "DHCPv6 not served");
    configure(&mut p.ebpf, &settings(0, 1)).expect("configure");
    assert_eq!(p.run(&solicit().build(), None), steered, "SOLICIT to ff02::1:2");
    for vlans in [vec![(0x8100, 5)], vec![(0x88a8, 100), (0x8100, 5)]] {
        let mut f = solicit();
        f.vlans = vlans;
        assert_eq!(p.run(&f.build(), None), steered, "{:?}", f.vlans);
    }
    let us = [2, 0, 0, 0, 0, 0xaa];
    let mut unicast = solicit();
    unicast.dst_mac = us;
    unicast.dst_ip = "2001:db8::1".parse().expect("address");
    assert_eq!(p.run(&unicast.build(), None), steered, "unicast to our address");
    let mut all_servers = solicit();
    all_servers.dst_ip = "ff05::1:3".parse().expect("address");
    all_servers.dst_mac = [0x33, 0x33, 0, 1, 0, 3];
    assert_eq!(p.run(&all_servers.build(), None), steered, "to ff05::1:3");
    let inner = solicit().payload;
    let link: std::net::Ipv6Addr = "2001:db8:1::1".parse().expect("address");
    let mut relayed = solicit();
    relayed.payload = dhcp6_relay_forw(0, link, "fe80::1".parse().expect("address"), &[(18, b"olt1".to_vec())], &inner);
    relayed.src_port = 547;
    relayed.dst_mac = us;
    relayed.dst_ip = "2001:db8::1".parse().expect("address");
    assert_eq!(p.run(&relayed.build(), None), steered, "Relay-Forw");

    let not_for_us = (XDP_PASS, counter::NOT_FOR_US);
    let mut other = unicast.clone();
    other.dst_ip = "2001:db8::2".parse().expect("address");
    assert_eq!(p.run(&other.build(), None), not_for_us, "another server's address");
    let mut other_mac = solicit();
    other_mac.dst_mac = [2, 0, 0, 0, 0, 0xbb];
    assert_eq!(p.run(&other_mac.build(), None), not_for_us, "the group on another unicast MAC");

    let passed = (XDP_PASS, counter::PASSED_NOT_DHCP);
    let mut nd = solicit();
    nd.next_header = 58;
    nd.payload = vec![133, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(p.run(&nd.build(), None), passed, "ICMPv6 router solicitation");
    for port in [546u16, 53, 67] {
        let mut f = solicit();
        f.dst_port = port;
        assert_eq!(p.run(&f.build(), None), passed, "UDP to port {port}");
    }
    let mut hop_by_hop = solicit();
    hop_by_hop.next_header = 0;
    hop_by_hop.extension = vec![17, 0, 5, 2, 0, 0, 1, 0];
    assert_eq!(p.run(&hop_by_hop.build(), None), (XDP_PASS, counter::V6_EXTENSION), "hop-by-hop header");
    let mut fragment = solicit();
    fragment.next_header = 44;
    fragment.extension = vec![17, 0, 0, 1, 0, 0, 0, 9];
    assert_eq!(p.run(&fragment.build(), None), (XDP_PASS, counter::FRAGMENT), "fragment header");

    let whole = solicit().build();
    let message_at = 14 + 40 + 8;
    for len in 14..=message_at {
        assert_eq!(p.run(&whole[..len], None), (XDP_PASS, counter::MALFORMED), "cut at {len}");
    }
    let short_relay = relayed.build();
    assert_eq!(p.run(&short_relay[..message_at + 20], None), (XDP_PASS, counter::MALFORMED), "relay cut short");

    let mut group_source = solicit();
    group_source.src_mac = [3, 0, 0, 0, 0, 1];
    assert_eq!(p.run(&group_source.build(), None), (XDP_DROP, counter::BAD_SOURCE));

    set_shed(&mut p.ebpf, config::SHED_ALL).expect("shed");
    assert_eq!(p.run(&solicit().build(), None), (XDP_DROP, counter::SHED_DISCOVER), "SOLICIT shed");
    let mut request = solicit();
    request.payload[0] = 3;
    assert_eq!(p.run(&request.build(), None), steered, "REQUEST not shed");
    let mut renew = solicit();
    renew.payload[0] = 5;
    assert_eq!(p.run(&renew.build(), None), steered, "RENEW not shed");
    set_shed(&mut p.ebpf, 0).expect("unshed");

    configure(&mut p.ebpf, &settings(1, 2)).expect("configure");
    let flood = solicit().build();
    for _ in 0..2 {
        assert_eq!(p.run(&flood, None), steered);
    }
    assert_eq!(p.run(&flood, None), (XDP_DROP, counter::RATE_LIMITED), "one client over its rate");
    // A client is its DUID: the same DUID from another MAC is the same client; another DUID
    // behind the same MAC (a generator, a CPE) is another.
    let mut moved = solicit();
    moved.src_mac = [2, 0, 0, 0, 0, 9];
    assert_eq!(p.run(&moved.build(), None), (XDP_DROP, counter::RATE_LIMITED), "the same DUID");
    let another = Frame6::to_servers(
        [2, 0, 0, 0, 0, 1],
        dhcp6_message(1, 0x1235, &[(8, vec![0, 0]), (1, vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 7])]),
    );
    assert_eq!(p.run(&another.build(), None), steered, "another DUID, same MAC");
    // No client id among the first options: keyed by the source MAC.
    let late_id: Vec<(u16, Vec<u8>)> =
        (0..8).map(|i| (16 + i, vec![0; 4])).chain([(1, vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1])]).collect();
    let mut by_mac = Frame6::to_servers([2, 0, 0, 0, 0, 0x42], dhcp6_message(1, 0x1236, &late_id));
    assert_eq!(p.run(&by_mac.build(), None), steered, "keyed by a fresh MAC");
    // A DUID-LL ends with the MAC: keyed by the DUID or by the MAC, a device is one client.
    by_mac.src_mac = [2, 0, 0, 0, 0, 1];
    assert_eq!(p.run(&by_mac.build(), None), (XDP_DROP, counter::RATE_LIMITED), "the DUID-LL's own MAC");
}

/// The generator takes DHCPv6 replies (from port 547), not requests, whether or not its
/// settings name DHCPv6 (the load generator leaves them unset).
#[test]
fn the_generator_takes_dhcp6_replies() {
    let mut p = Prog::load_role(role::GENERATOR);
    set_queue_sockets(&mut p.ebpf, 0, 1).expect("set");
    let mut reply = solicit();
    reply.payload[0] = 7;
    (reply.src_port, reply.dst_port) = (547, 546);
    assert_eq!(p.run(&reply.build(), None), (XDP_PASS, counter::REDIRECT_FAILED));
    assert_eq!(p.run(&solicit().build(), None), (XDP_PASS, counter::PASSED_NOT_DHCP));
}
