//! Raw frames for the tests: a BOOTP/DHCP request builder (written independently of the
//! daemon's own wire code) and an AF_PACKET link to send and catch frames on an interface.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender};

use crate::Netns;

/// What goes into a test request frame.
#[derive(Debug, Clone)]
pub struct Request {
    /// L2 source (the sender's interface).
    pub src_mac: [u8; 6],
    /// L2 destination.
    pub dst_mac: [u8; 6],
    /// VLAN tags outer first: (TPID, VLAN ID).
    pub vlans: Vec<(u16, u16)>,
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// IPv4 option bytes (length a multiple of 4).
    pub ip_options: Vec<u8>,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// BOOTP op (1 request).
    pub op: u8,
    /// Transaction id.
    pub xid: u32,
    /// `ciaddr`.
    pub ciaddr: Ipv4Addr,
    /// `giaddr`.
    pub giaddr: Ipv4Addr,
    /// Client hardware address.
    pub chaddr: [u8; 6],
    /// DHCP options after the magic cookie (End is appended).
    pub options: Vec<u8>,
}

impl Request {
    /// A broadcast DHCPDISCOVER from `src_mac` for client `chaddr`.
    pub fn discover(src_mac: [u8; 6], chaddr: [u8; 6], xid: u32) -> Self {
        Self {
            src_mac,
            dst_mac: [0xff; 6],
            vlans: vec![],
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            ip_options: vec![],
            src_port: 68,
            dst_port: 67,
            op: 1,
            xid,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            options: vec![53, 1, 1],
        }
    }

    /// The frame bytes, with valid IPv4 and UDP checksums.
    pub fn build(&self) -> Vec<u8> {
        let mut bootp = vec![0u8; 236];
        bootp[0] = self.op;
        bootp[1] = 1;
        bootp[2] = 6;
        bootp[4..8].copy_from_slice(&self.xid.to_be_bytes());
        bootp[10..12].copy_from_slice(&0x8000u16.to_be_bytes());
        bootp[12..16].copy_from_slice(&self.ciaddr.octets());
        bootp[24..28].copy_from_slice(&self.giaddr.octets());
        bootp[28..34].copy_from_slice(&self.chaddr);
        bootp.extend_from_slice(&[99, 130, 83, 99]);
        bootp.extend_from_slice(&self.options);
        bootp.push(255);
        while bootp.len() < 300 {
            bootp.push(0);
        }
        let mut f = Vec::with_capacity(400);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for &(tpid, vid) in &self.vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&vid.to_be_bytes());
        }
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let ihl = 20 + self.ip_options.len();
        let l3 = f.len();
        f.push(0x40 | (ihl / 4) as u8);
        f.push(0);
        f.extend_from_slice(&((ihl + 8 + bootp.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&self.src_ip.octets());
        f.extend_from_slice(&self.dst_ip.octets());
        f.extend_from_slice(&self.ip_options);
        let c = checksum(&f[l3..l3 + ihl], 0);
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        let l4 = f.len();
        f.extend_from_slice(&self.src_port.to_be_bytes());
        f.extend_from_slice(&self.dst_port.to_be_bytes());
        f.extend_from_slice(&((8 + bootp.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&bootp);
        let mut pseudo = 0u32;
        for c in self.src_ip.octets().chunks(2).chain(self.dst_ip.octets().chunks(2)) {
            pseudo += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        pseudo += 17 + (8 + bootp.len()) as u32;
        let mut c = checksum(&f[l4..], pseudo);
        if c == 0 {
            c = 0xffff;
        }
        f[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
        f
    }
}

/// An IPv6/UDP frame carrying `payload` (a DHCPv6 message, built by the caller), with a valid
/// UDP checksum; built independently of the daemon's wire code.
#[derive(Debug, Clone)]
pub struct Frame6 {
    /// L2 source.
    pub src_mac: [u8; 6],
    /// L2 destination.
    pub dst_mac: [u8; 6],
    /// VLAN tags outer first: (TPID, VLAN ID).
    pub vlans: Vec<(u16, u16)>,
    /// IPv6 source.
    pub src_ip: std::net::Ipv6Addr,
    /// IPv6 destination.
    pub dst_ip: std::net::Ipv6Addr,
    /// Next header of the IPv6 header (17: UDP right after it).
    pub next_header: u8,
    /// Bytes between the IPv6 header and the UDP header (extension headers, as the caller
    /// builds them).
    pub extension: Vec<u8>,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

impl Frame6 {
    /// A client's message to `ff02::1:2` from link-local `fe80::<mac>` (33:33:00:01:00:02).
    pub fn to_servers(src_mac: [u8; 6], payload: Vec<u8>) -> Self {
        let mut ll = [0u8; 16];
        ll[..2].copy_from_slice(&[0xfe, 0x80]);
        ll[10..].copy_from_slice(&src_mac);
        Self {
            src_mac,
            dst_mac: [0x33, 0x33, 0, 1, 0, 2],
            vlans: vec![],
            src_ip: ll.into(),
            dst_ip: "ff02::1:2".parse().expect("address"),
            next_header: 17,
            extension: vec![],
            src_port: 546,
            dst_port: 547,
            payload,
        }
    }

    /// The frame bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(128 + self.payload.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for &(tpid, vid) in &self.vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&vid.to_be_bytes());
        }
        f.extend_from_slice(&0x86ddu16.to_be_bytes());
        let udp_len = 8 + self.payload.len();
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((self.extension.len() + udp_len) as u16).to_be_bytes());
        f.push(self.next_header);
        f.push(64);
        f.extend_from_slice(&self.src_ip.octets());
        f.extend_from_slice(&self.dst_ip.octets());
        f.extend_from_slice(&self.extension);
        let l4 = f.len();
        f.extend_from_slice(&self.src_port.to_be_bytes());
        f.extend_from_slice(&self.dst_port.to_be_bytes());
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&self.payload);
        let mut pseudo = 0u32;
        for c in self.src_ip.octets().chunks(2).chain(self.dst_ip.octets().chunks(2)) {
            pseudo += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        pseudo += 17 + udp_len as u32;
        let mut c = checksum(&f[l4..], pseudo);
        if c == 0 {
            c = 0xffff;
        }
        f[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
        f
    }
}

/// A DHCPv6 message: type, transaction id and options (code, value) in order.
pub fn dhcp6_message(kind: u8, xid: u32, options: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&xid.to_be_bytes()[1..]);
    for (code, value) in options {
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(&(value.len() as u16).to_be_bytes());
        m.extend_from_slice(value);
    }
    m
}

/// A Relay-Forw around `inner` (RFC 8415 §9.1): hop count, link and peer addresses, and the
/// relay's options before the Relay Message option.
pub fn dhcp6_relay_forw(
    hops: u8,
    link: std::net::Ipv6Addr,
    peer: std::net::Ipv6Addr,
    options: &[(u16, Vec<u8>)],
    inner: &[u8],
) -> Vec<u8> {
    let mut m = vec![12, hops];
    m.extend_from_slice(&link.octets());
    m.extend_from_slice(&peer.octets());
    for (code, value) in options.iter().chain(std::iter::once(&(9u16, inner.to_vec()))) {
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(&(value.len() as u16).to_be_bytes());
        m.extend_from_slice(value);
    }
    m
}

/// RFC 1071 checksum of `b` starting from accumulator `acc`.
pub fn checksum(b: &[u8], mut acc: u32) -> u16 {
    for c in b.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// A received reply, untagged (the kernel strips VLAN tags before packet sockets see them; tests
/// check tags by listening on VLAN sub-interfaces).
#[derive(Debug, Clone)]
pub struct Reply {
    /// L2 destination.
    pub dst_mac: [u8; 6],
    /// L2 source.
    pub src_mac: [u8; 6],
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// Whether the IPv4 header checksum verifies.
    pub ip_checksum_ok: bool,
    /// Whether the UDP checksum verifies (or is absent).
    pub udp_checksum_ok: bool,
    /// The BOOTP message.
    pub bootp: Vec<u8>,
}

impl Reply {
    /// Parses an untagged IPv4/UDP frame carrying a BOOTREPLY; `None` for anything else.
    pub fn parse(f: &[u8]) -> Option<Self> {
        if f.get(12..14)? != [8, 0] {
            return None;
        }
        let ip = f.get(14..)?;
        let ihl = usize::from(*ip.first()? & 15) * 4;
        if *ip.get(9)? != 17 || ihl < 20 {
            return None;
        }
        let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
        let udp = ip.get(ihl..total)?;
        let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let bootp = udp.get(8..)?.to_vec();
        if bootp.first() != Some(&2) {
            return None;
        }
        let mut pseudo = 0u32;
        for c in src_ip.octets().chunks(2).chain(dst_ip.octets().chunks(2)) {
            pseudo += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        pseudo += 17 + udp.len() as u32;
        let stored = u16::from_be_bytes([udp[6], udp[7]]);
        Some(Self {
            dst_mac: f[0..6].try_into().ok()?,
            src_mac: f[6..12].try_into().ok()?,
            src_ip,
            dst_ip,
            src_port: u16::from_be_bytes([udp[0], udp[1]]),
            dst_port: u16::from_be_bytes([udp[2], udp[3]]),
            ip_checksum_ok: checksum(&ip[..ihl], 0) == 0,
            udp_checksum_ok: stored == 0 || checksum(udp, pseudo) == 0,
            bootp,
        })
    }

    /// The DHCP message type (option 53) in the options field, if any.
    pub fn message_type(&self) -> Option<u8> {
        self.option(53)?.first().copied()
    }

    /// The value of option `code`, if present.
    pub fn option(&self, code: u8) -> Option<&[u8]> {
        bootp_option(&self.bootp, code)
    }

    /// The server identifier (option 54).
    pub fn server_id(&self) -> Option<Ipv4Addr> {
        let v = self.option(54)?;
        Some(Ipv4Addr::new(*v.first()?, *v.get(1)?, *v.get(2)?, *v.get(3)?))
    }

    /// `yiaddr`.
    pub fn yiaddr(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.bootp[16], self.bootp[17], self.bootp[18], self.bootp[19])
    }

    /// Transaction id.
    pub fn xid(&self) -> u32 {
        u32::from_be_bytes([self.bootp[4], self.bootp[5], self.bootp[6], self.bootp[7]])
    }

    /// Client hardware address.
    pub fn chaddr(&self) -> [u8; 6] {
        let mut c = [0u8; 6];
        c.copy_from_slice(&self.bootp[28..34]);
        c
    }

    /// `sname` as text up to its first NUL.
    pub fn sname(&self) -> String {
        let s = &self.bootp[44..108];
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        String::from_utf8_lossy(&s[..end]).into_owned()
    }

    /// The worker named in a reflect reply's `sname` (`… worker=N`).
    pub fn reflect_worker(&self) -> Option<u32> {
        self.sname().split_whitespace().find_map(|w| w.strip_prefix("worker=")?.parse().ok())
    }
}

/// An AF_PACKET socket on one interface of a namespace.
pub struct Link {
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
}

impl Link {
    /// Opens a packet socket on `ifname` inside `ns`.
    pub fn open(ns: &Netns, ifname: &str) -> Self {
        let ifname = ifname.to_owned();
        let (tx, rx) = ns.enter(move || {
            let iface = pnet_datalink::interfaces()
                .into_iter()
                .find(|i| i.name == ifname)
                .unwrap_or_else(|| panic!("no interface {ifname}"));
            let cfg = Config { read_timeout: Some(Duration::from_millis(50)), ..Config::default() };
            match pnet_datalink::channel(&iface, cfg) {
                Ok(Channel::Ethernet(tx, rx)) => (tx, rx),
                Ok(_) => panic!("unexpected channel type"),
                Err(e) => panic!("packet socket on {ifname}: {e}"),
            }
        });
        Self { tx, rx }
    }

    /// Sends one frame.
    pub fn send(&mut self, frame: &[u8]) {
        match self.tx.send_to(frame, None) {
            Some(Ok(())) => {}
            other => panic!("send failed: {other:?}"),
        }
    }

    /// Collects DHCPv6 messages from servers for which `keep` is true until `want` of them
    /// arrived or `limit` passed.
    pub fn replies6(&mut self, want: usize, limit: Duration, mut keep: impl FnMut(&Reply6) -> bool) -> Vec<Reply6> {
        let deadline = Instant::now() + limit;
        let mut out = vec![];
        while out.len() < want && Instant::now() < deadline {
            if let Ok(f) = self.rx.next()
                && let Some(r) = Reply6::parse(f)
                && keep(&r)
            {
                out.push(r);
            }
        }
        out
    }

    /// Collects replies for which `keep` is true until `want` of them arrived or `limit` passed.
    pub fn replies(&mut self, want: usize, limit: Duration, mut keep: impl FnMut(&Reply) -> bool) -> Vec<Reply> {
        let deadline = Instant::now() + limit;
        let mut out = vec![];
        while out.len() < want && Instant::now() < deadline {
            if let Ok(f) = self.rx.next()
                && let Some(r) = Reply::parse(f)
                && keep(&r)
            {
                out.push(r);
            }
        }
        out
    }
}

/// A DHCPv6 message received in an untagged IPv6/UDP frame (to port 546 or 547).
#[derive(Debug, Clone)]
pub struct Reply6 {
    /// L2 source.
    pub src_mac: [u8; 6],
    /// IPv6 source.
    pub src_ip: std::net::Ipv6Addr,
    /// The DHCPv6 message.
    pub message: Vec<u8>,
}

impl Reply6 {
    /// Parses an untagged IPv6 frame with UDP right after the header from port 547; `None` for
    /// anything else.
    pub fn parse(f: &[u8]) -> Option<Self> {
        if f.get(12..14)? != [0x86, 0xdd] || *f.get(20)? != 17 {
            return None;
        }
        let ip = f.get(14..)?;
        let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
        let udp = ip.get(40..)?;
        if u16::from_be_bytes([*udp.first()?, *udp.get(1)?]) != 547 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
        Some(Self { src_mac: f[6..12].try_into().ok()?, src_ip: src.into(), message: udp.get(8..len)?.to_vec() })
    }

    /// The message type.
    pub fn kind(&self) -> u8 {
        self.message.first().copied().unwrap_or(0)
    }

    /// The transaction id.
    pub fn xid(&self) -> u32 {
        self.message.get(1..4).map_or(0, |x| u32::from_be_bytes([0, x[0], x[1], x[2]]))
    }

    /// The top-level options (code, value).
    pub fn options(&self) -> Vec<(u16, &[u8])> {
        dhcp6_options(self.message.get(4..).unwrap_or_default())
    }

    /// The first top-level option `code`.
    pub fn option(&self, code: u16) -> Option<&[u8]> {
        self.options().into_iter().find(|(c, _)| *c == code).map(|(_, v)| v)
    }

    /// The address of the first IA_NA (option 3 → 5), if it holds one.
    pub fn ia_na_address(&self) -> Option<std::net::Ipv6Addr> {
        let ia = self.option(3)?;
        let (_, a) = dhcp6_options(ia.get(12..)?).into_iter().find(|(c, _)| *c == 5)?;
        Some(<[u8; 16]>::try_from(a.get(..16)?).ok()?.into())
    }

    /// The prefix of the first IA_PD (option 25 → 26), if it holds one.
    pub fn ia_pd_prefix(&self) -> Option<(std::net::Ipv6Addr, u8)> {
        let ia = self.option(25)?;
        let (_, p) = dhcp6_options(ia.get(12..)?).into_iter().find(|(c, _)| *c == 26)?;
        Some((<[u8; 16]>::try_from(p.get(9..25)?).ok()?.into(), *p.get(8)?))
    }
}

/// DHCPv6 options in `b` (code, value), up to the first that does not fit.
pub fn dhcp6_options(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = vec![];
    while b.len() >= 4 {
        let code = u16::from_be_bytes([b[0], b[1]]);
        let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
        let Some(v) = b.get(4..4 + len) else { break };
        out.push((code, v));
        b = &b[4 + len..];
    }
    out
}

/// What one DORA exchange of [`dora`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dora {
    /// The address offered, if an OFFER came.
    pub offered: Option<Ipv4Addr>,
    /// Whether an ACK came for it.
    pub acked: bool,
}

/// DISCOVER → OFFER → REQUEST → ACK for client `chaddr` through `link` (frames from
/// `src_mac`), the server being 198.18.0.1. Each message is sent up to `tries` times, `wait`
/// apart, as a client retransmits.
pub fn dora(link: &mut Link, src_mac: [u8; 6], chaddr: [u8; 6], xid: u32, wait: Duration, tries: u32) -> Dora {
    let mut out = Dora { offered: None, acked: false };
    for _ in 0..tries {
        link.send(&Request::discover(src_mac, chaddr, xid).build());
        if let Some(offer) = link.replies(1, wait, |r| r.xid() == xid && r.message_type() == Some(2)).pop() {
            out.offered = Some(Ipv4Addr::new(offer.bootp[16], offer.bootp[17], offer.bootp[18], offer.bootp[19]));
            break;
        }
    }
    let Some(yiaddr) = out.offered else { return out };
    let mut req = Request::discover(src_mac, chaddr, xid ^ 1);
    req.options = vec![53, 1, 3, 50, 4];
    req.options.extend_from_slice(&yiaddr.octets());
    req.options.extend_from_slice(&[54, 4, 198, 18, 0, 1]);
    let frame = req.build();
    for _ in 0..tries {
        link.send(&frame);
        if let Some(ack) = link.replies(1, wait, |r| r.xid() == xid ^ 1).pop() {
            out.acked = ack.message_type() == Some(5);
            break;
        }
    }
    out
}

/// DHCPv4 clients speaking raw frames through the client side of [`TwoHosts`]: whole
/// exchanges with host names and client ids, renewals and releases to the server.
pub struct RawClient {
    link: Link,
    mac: [u8; 6],
    xid: u32,
}

impl RawClient {
    /// Clients on `net`'s client side.
    pub fn new(net: &crate::TwoHosts) -> Self {
        Self {
            link: Link::open(&net.client, &net.client_if),
            mac: crate::TwoHosts::mac(&net.client, &net.client_if),
            xid: 0x7100,
        }
    }

    /// Sends `r` (a new xid, up to four times) until a reply of type `want` comes.
    pub fn ask(&mut self, mut r: Request, want: u8) -> Option<Reply> {
        self.xid += 1;
        r.xid = self.xid;
        let xid = self.xid;
        for _ in 0..4 {
            self.link.send(&r.build());
            if let Some(x) = self
                .link
                .replies(1, Duration::from_millis(500), |x| x.xid() == xid && x.message_type() == Some(want))
                .pop()
            {
                return Some(x);
            }
        }
        None
    }

    /// The same client with its transaction ids from `xid` on (a second client on one link
    /// must not take the first one's answers).
    pub fn with_xid(mut self, xid: u32) -> Self {
        self.xid = xid;
        self
    }

    /// DORA of `chaddr` with host name `host` and client id 01:chaddr; the address.
    pub fn bind(&mut self, chaddr: [u8; 6], host: &str) -> Ipv4Addr {
        let mut extra = vec![12, host.len() as u8];
        extra.extend_from_slice(host.as_bytes());
        extra.extend_from_slice(&[61, 7, 1]);
        extra.extend_from_slice(&chaddr);
        let mut d = Request::discover(self.mac, chaddr, 0);
        d.options.extend_from_slice(&extra);
        let offer = self.ask(d, 2).expect("an offer");
        let mut r = Request::discover(self.mac, chaddr, 0);
        r.options = vec![53, 1, 3, 50, 4];
        r.options.extend_from_slice(&offer.yiaddr().octets());
        r.options.extend_from_slice(&[54, 4]);
        r.options.extend_from_slice(&offer.server_id().expect("server id").octets());
        r.options.extend_from_slice(&extra);
        let ack = self.ask(r, 5).expect("an ACK");
        ack.yiaddr()
    }

    /// RENEWING of `addr` (unicast REQUEST with ciaddr), answered by an ACK.
    pub fn renew(&mut self, net: &crate::TwoHosts, chaddr: [u8; 6], addr: Ipv4Addr) {
        let mut r = Request::discover(self.mac, chaddr, 0);
        r.options = vec![53, 1, 3, 61, 7, 1];
        r.options.extend_from_slice(&chaddr);
        r.ciaddr = addr;
        r.src_ip = addr;
        r.dst_ip = net.server_ip;
        r.dst_mac = crate::TwoHosts::mac(&net.server, &net.server_if);
        assert!(self.ask(r, 5).is_some(), "renewal of {addr} not ACKed");
    }

    /// RELEASE of `addr` (no answer).
    pub fn release(&mut self, net: &crate::TwoHosts, chaddr: [u8; 6], addr: Ipv4Addr) {
        let mut r = Request::discover(self.mac, chaddr, 0);
        r.options = vec![53, 1, 7, 61, 7, 1];
        r.options.extend_from_slice(&chaddr);
        r.options.extend_from_slice(&[54, 4]);
        r.options.extend_from_slice(&net.server_ip.octets());
        r.ciaddr = addr;
        r.src_ip = addr;
        r.dst_ip = net.server_ip;
        r.dst_mac = crate::TwoHosts::mac(&net.server, &net.server_if);
        self.xid += 1;
        r.xid = self.xid;
        self.link.send(&r.build());
    }
}

/// The value of option `code` in the BOOTP message `bootp` (its options past the magic
/// cookie), if present.
pub fn bootp_option(bootp: &[u8], code: u8) -> Option<&[u8]> {
    let o = bootp.get(240..)?;
    let mut i = 0;
    while i + 1 < o.len() && o[i] != 255 {
        if o[i] == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(o[i + 1]);
        if o[i] == code {
            return o.get(i + 2..i + 2 + len);
        }
        i += 2 + len;
    }
    None
}
