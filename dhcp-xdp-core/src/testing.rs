//! The one request-frame builder of the tests: BOOTP/DHCP messages and the Ethernet/VLAN/IPv4/UDP
//! frames around them, as clients and relays send them. Used by the unit tests, the property
//! tests, the engine bench and the fuzz target (feature `test-support`).
//!
//! It must stay a plain encoder that trusts its caller (it builds malformed frames on request);
//! it never checks anything the engine is under test for. Replies are checked against
//! `tests::frames`, which is kept independent of this on purpose.

use std::net::Ipv4Addr;

use crate::{
    dhcp4::{BOOTREQUEST, MAGIC_COOKIE, MessageType, opt},
    wire::internet_checksum,
};

/// A client's default hardware address in these frames.
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
/// The transaction id of these frames unless set.
pub const XID: u32 = 0x1234_5678;

/// A BOOTREQUEST under construction, with the frame that carries it. Fields are public so a test
/// can break any of them.
#[derive(Debug, Clone)]
pub struct Request {
    /// Option 53, written first when set.
    pub mtype: Option<u8>,
    /// BOOTP `op`.
    pub op: u8,
    /// BOOTP `hlen`.
    pub hlen: u8,
    /// BOOTP `xid`.
    pub xid: u32,
    /// BOOTP `flags`.
    pub flags: u16,
    /// Also known as `ciaddr`.
    pub ciaddr: Ipv4Addr,
    /// Also known as `giaddr`.
    pub giaddr: Ipv4Addr,
    /// The first six bytes of `chaddr`.
    pub chaddr: [u8; 6],
    /// Encoded options after option 53, in order.
    pub options: Vec<u8>,
    /// Whether an End option (255) closes the options.
    pub end: bool,
    /// The BOOTP message is zero-padded to this length.
    pub min_len: usize,
    /// L2 source.
    pub src_mac: [u8; 6],
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// VLAN ids, outermost first (two: 802.1ad outside 802.1Q).
    pub vlans: Vec<u16>,
    /// IPv4 header option bytes (a multiple of four).
    pub ip_options: Vec<u8>,
}

impl Request {
    /// A direct client's broadcast request of type `mtype` from [`CLIENT_MAC`].
    pub fn new(mtype: MessageType) -> Self {
        Self { mtype: Some(mtype as u8), ..Self::bootp_only() }
    }

    /// A BOOTREQUEST with no options at all (not even an End option).
    pub fn bootp_only() -> Self {
        Self {
            mtype: None,
            op: BOOTREQUEST,
            hlen: 6,
            xid: XID,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: CLIENT_MAC,
            options: vec![],
            end: false,
            min_len: 0,
            src_mac: CLIENT_MAC,
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            vlans: vec![],
            ip_options: vec![],
        }
    }

    /// Same client hardware address in `chaddr` and as L2 source.
    pub fn client(mut self, mac: [u8; 6]) -> Self {
        self.chaddr = mac;
        self.src_mac = mac;
        self
    }

    /// Appends option `code` with value `v` (End is added by [`bootp`](Self::bootp)).
    pub fn opt(mut self, code: u8, v: &[u8]) -> Self {
        self.options.push(code);
        self.options.push(u8::try_from(v.len()).unwrap_or(u8::MAX));
        self.options.extend_from_slice(v);
        self.end = true;
        self
    }

    /// Appends an option holding one address.
    pub fn ip_opt(self, code: u8, a: Ipv4Addr) -> Self {
        self.opt(code, &a.octets())
    }

    /// Appends a parameter request list.
    pub fn prl(self, codes: &[u8]) -> Self {
        self.opt(opt::PARAMETER_LIST, codes)
    }

    /// Appends encoded option bytes as they are (no End added for them).
    pub fn raw_options(mut self, bytes: &[u8]) -> Self {
        self.options.extend_from_slice(bytes);
        self
    }

    /// As forwarded by the relay at `giaddr` (L2 source `relay_mac`) to `server`.
    pub fn relayed(mut self, giaddr: Ipv4Addr, relay_mac: [u8; 6], server: Ipv4Addr) -> Self {
        self.giaddr = giaddr;
        self.src_mac = relay_mac;
        self.src_ip = giaddr;
        self.dst_ip = server;
        self
    }

    /// The BOOTP message.
    pub fn bootp(&self) -> Vec<u8> {
        let mut b = vec![0u8; 240];
        b[0] = self.op;
        b[1] = 1;
        b[2] = self.hlen;
        b[4..8].copy_from_slice(&self.xid.to_be_bytes());
        b[10..12].copy_from_slice(&self.flags.to_be_bytes());
        b[12..16].copy_from_slice(&self.ciaddr.octets());
        b[24..28].copy_from_slice(&self.giaddr.octets());
        b[28..34].copy_from_slice(&self.chaddr);
        b[236..240].copy_from_slice(&MAGIC_COOKIE);
        if let Some(t) = self.mtype {
            b.extend_from_slice(&[opt::MESSAGE_TYPE, 1, t]);
        }
        b.extend_from_slice(&self.options);
        if self.end || self.mtype.is_some() {
            b.push(opt::END);
        }
        if b.len() < self.min_len {
            b.resize(self.min_len, 0);
        }
        b
    }

    /// The whole frame: Ethernet (broadcast destination), the VLAN tags, IPv4 and UDP (from 68,
    /// or 67 when relayed, to 67, no UDP checksum) around [`bootp`](Self::bootp).
    pub fn frame(&self) -> Vec<u8> {
        let sport = if self.giaddr.is_unspecified() { 68 } else { 67 };
        let tags = vlan_tags(&self.vlans);
        let l3 = Encap { src_mac: self.src_mac, tags: &tags, ip_options: &self.ip_options, ..Encap::default() };
        Encap { src_ip: self.src_ip, dst_ip: self.dst_ip, src_port: sport, ..l3 }.frame(&self.bootp())
    }
}

/// Tags for VLAN ids, outermost first: with two, the outer one is 802.1ad (QinQ).
pub fn vlan_tags(vids: &[u16]) -> Vec<(u16, u16)> {
    vids.iter().enumerate().map(|(i, v)| (if i == 0 && vids.len() == 2 { 0x88a8 } else { 0x8100 }, *v)).collect()
}

/// The headers around a UDP payload.
#[derive(Debug, Clone, Copy)]
pub struct Encap<'a> {
    /// L2 source (the destination is broadcast).
    pub src_mac: [u8; 6],
    /// (TPID, TCI) pairs, outermost first.
    pub tags: &'a [(u16, u16)],
    /// IPv4 header options.
    pub ip_options: &'a [u8],
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
}

impl Default for Encap<'_> {
    fn default() -> Self {
        Self {
            src_mac: CLIENT_MAC,
            tags: &[],
            ip_options: &[],
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: 68,
            dst_port: 67,
        }
    }
}

impl Encap<'_> {
    /// `payload` in these headers, with a correct IPv4 header checksum and UDP checksum 0.
    pub fn frame(&self, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&self.src_mac);
        for &(tpid, vid) in self.tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&vid.to_be_bytes());
        }
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let ihl = 20 + self.ip_options.len();
        let total = u16::try_from(ihl + 8 + payload.len()).unwrap_or(u16::MAX);
        let l3 = f.len();
        f.push(0x40 | u8::try_from(ihl / 4).unwrap_or(0x0f));
        f.push(0);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&self.src_ip.octets());
        f.extend_from_slice(&self.dst_ip.octets());
        f.extend_from_slice(self.ip_options);
        let c = internet_checksum(&f[l3..l3 + ihl]);
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&self.src_port.to_be_bytes());
        f.extend_from_slice(&self.dst_port.to_be_bytes());
        f.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap_or(u16::MAX).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f
    }
}

/// A direct client's broadcast frame (0.0.0.0:68 → 255.255.255.255:67) with `tags` VLAN tags
/// and `ip_opts` IPv4 option bytes around `payload`.
pub fn frame(tags: &[(u16, u16)], ip_opts: &[u8], payload: &[u8]) -> Vec<u8> {
    Encap { tags, ip_options: ip_opts, ..Encap::default() }.frame(payload)
}

/// A BOOTREQUEST from [`CLIENT_MAC`] with [`XID`] whose options field is `options` exactly.
pub fn msg(options: &[u8]) -> Vec<u8> {
    Request::bootp_only().raw_options(options).bootp()
}

/// A bound lease of client `02:00:00:00:00:i` on 198.18.0.i in subnet 1, expiring at 5000, for
/// the lease store's and the journal's tests.
pub fn lease(i: u8, state: crate::leases::LeaseState) -> crate::leases::Lease {
    let mac = [2, 0, 0, 0, 0, i];
    crate::leases::Lease {
        key: crate::leases::ClientKey::hw(1, &mac, 1),
        chaddr: mac,
        addr: Ipv4Addr::new(198, 18, 0, i),
        expires: 5000,
        state,
        subnet: 1,
        tags: crate::leases::Tags::default(),
    }
}

/// The engine bench's state: a /15 with one pool, a server at 198.18.0.1, and `n` clients bound
/// in shard 0 (at time 1 000, for a day), with a DISCOVER and a renewal frame for each.
pub struct WarmShard {
    /// The configuration.
    pub cfg: crate::config::Config,
    /// One shard holding the clients.
    pub db: crate::leases::LeaseDb,
    /// The server.
    pub server: crate::engine4::ServerIdentity,
    /// A DISCOVER of each client (broadcast, 57 = 1500, a six-code list).
    pub discovers: Vec<Vec<u8>>,
    /// A renewal of each client (REQUEST with ciaddr).
    pub renewals: Vec<Vec<u8>>,
}

impl WarmShard {
    /// `n` bound clients.
    pub fn new(n: u32) -> Self {
        Self::with_policy(n, false)
    }

    /// `n` bound clients; with `policy`, 20 client classes (tests on the vendor class, the
    /// client architecture, the relay's circuit, the MAC prefix, each setting options or boot
    /// fields; the clients here match the last) and 10 reservations by MAC (other clients'):
    /// the cost the issue bounds.
    pub fn with_policy(n: u32, policy: bool) -> Self {
        let mut src = String::from(
            "[options]\ndns-servers = [\"198.18.0.53\"]\ndomain-name = \"example.net\"\n[[subnet]]\nsubnet = \"198.18.0.0/15\"\n\
             options = { routers = [\"198.18.0.1\"] }\n[[subnet.pool]]\nrange = \"198.18.1.0-198.19.255.254\"\n",
        );
        if policy {
            for i in 0..10 {
                src.push_str(&format!(
                    "[[subnet.reservation]]\nhw-address = \"02:ee:00:00:00:{i:02x}\"\nip = \"198.18.0.{}\"\n",
                    10 + i
                ));
            }
            let mut classes = String::new();
            for i in 0..19 {
                let test = match i % 4 {
                    0 => format!("substring(option[60].hex,0,6) == 'VEND{i:02}'"),
                    1 => format!("option[93].exists and option[93].hex == 0x00{i:02x}"),
                    2 => format!("relay4[1].hex == 'olt{i}/1/1'"),
                    _ => format!("substring(pkt4.mac,0,3) == 0x02ee{i:02x}"),
                };
                classes.push_str(&format!(
                    "[[client-class]]\nname = \"c{i}\"\ntest = \"{test}\"\noptions = {{ ntp-servers = [\"198.18.0.{i}\"] }}\n"
                ));
            }
            classes.push_str(
                "[[client-class]]\nname = \"cpe\"\ntest = \"substring(pkt4.mac,0,2) == 0x0200 and not member('c3')\"\n\
                 boot-file-name = \"cpe.cfg\"\noptions = { domain-name = \"cpe.example.net\" }\n",
            );
            src = classes + &src;
        }
        let cfg = crate::config::Config::parse("bench", &src).expect("config");
        let db = crate::leases::LeaseDb::new(&cfg, 1, [], 1_000);
        let server = crate::engine4::ServerIdentity {
            mac: [2, 0, 0, 0, 0, 1],
            addrs: vec![crate::net::Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 1), prefix: 15 }],
        };
        let clients: Vec<[u8; 6]> = (0..n).map(|i| [2, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]).collect();
        let mut addrs = vec![];
        {
            let mut g = db.lock(0);
            for m in &clients {
                let k = crate::leases::ClientKey::hw(1, m, 1);
                let (a, s) = g.offer(1_000, 30, &k, *m, &[1], None, None).expect("offer");
                g.bind(1_000, k, *m, a, s, 86_400, false).expect("bind");
                addrs.push(a);
            }
            g.take_changes();
        }
        let frame = |chaddr: [u8; 6], ciaddr: Ipv4Addr, mtype: MessageType| {
            let r =
                Request::new(mtype).client(chaddr).prl(&[1, 3, 6, 15, 28, 42]).opt(opt::MAX_MESSAGE_SIZE, &[5, 220]);
            Request { xid: 7, ciaddr, src_ip: ciaddr, min_len: 300, ..r }.frame()
        };
        let discovers = clients.iter().map(|m| frame(*m, Ipv4Addr::UNSPECIFIED, MessageType::Discover)).collect();
        let renewals = clients.iter().zip(&addrs).map(|(m, a)| frame(*m, *a, MessageType::Request)).collect();
        Self { cfg, db, server, discovers, renewals }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{dhcp4::Message, wire::Frame};

    #[test]
    fn built_frames_parse_back() {
        let r = Request::new(MessageType::Request)
            .client([2, 0, 0, 0, 0, 7])
            .ip_opt(opt::REQUESTED_IP, Ipv4Addr::new(198, 18, 0, 9))
            .relayed(Ipv4Addr::new(198, 18, 1, 1), [2, 0, 0, 0, 0, 0x77], Ipv4Addr::new(198, 18, 0, 1));
        let r = Request { vlans: vec![100, 20], min_len: 300, ..r };
        let f = r.frame();
        let fr = Frame::new_checked(&f).unwrap();
        assert!(fr.ipv4_checksum_ok());
        assert_eq!(fr.vlan_ids(), [100, 20]);
        assert_eq!((fr.src_port(), fr.dst_port()), (67, 67));
        assert_eq!(fr.payload().len(), 300);
        let m = Message::parse(fr.payload()).unwrap();
        assert_eq!(m.message_type(), Some(MessageType::Request));
        assert_eq!(m.giaddr(), Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(m.ip_option(opt::REQUESTED_IP), Some(Ipv4Addr::new(198, 18, 0, 9)));
        assert_eq!(m.chaddr(), &[2, 0, 0, 0, 0, 7]);
    }

    #[test]
    fn msg_is_exactly_the_options_given() {
        let b = msg(&[53, 1, 1]);
        assert_eq!(b.len(), 243);
        assert_eq!(&b[240..], &[53, 1, 1]);
    }
}
