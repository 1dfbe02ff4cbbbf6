//! The XDP program's parser, verdict by verdict, through BPF_PROG_TEST_RUN on the real kernel
//! verifier and JIT, with crafted and truncated frames.

use aya::{
    Ebpf,
    programs::{TestRun, TestRunOptions, Xdp},
};
use dhcp_xdp::ebpf::{PROGRAM_NAME, load, read_counters, set_queue_sockets};
use dhcp_xdp_common::{counter, role};
use tests::{TwoHosts, frames::Request, require_root};

const XDP_PASS: u32 = 2;

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
