//! The DHCPv4 server engine: pure and deterministic. Given the time, the configuration, the
//! server's identity, a locked lease shard and a request frame, it rewrites the frame into the
//! reply (RFC 2131 / 2132) or returns why there is none.
//!
//! It performs no I/O, reads no clock and allocates nothing per packet: the few request bytes it
//! needs while overwriting the frame are copied into fixed scratch arrays.

use std::net::Ipv4Addr;

use crate::{
    config::{BootpPolicy, Config, RenderedOptions, ReservationKey, Subnet},
    dhcp::{self, FLAG_BROADCAST, Message, MessageError, MessageType, OptionWriter, field, opt, relay},
    handler::{DropReason, Verdict},
    iface::Ipv4Net,
    leases::{ClientKey, LeaseError, LeaseState, ShardGuard},
    wire::{Frame, ReplyAddressing, write_ipv4_udp_headers},
};

/// Who the server is on the link it serves.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    /// The interface's hardware address (L2 source of replies).
    pub mac: [u8; 6],
    /// The interface's IPv4 addresses; the one inside the client's subnet is the server id.
    pub addrs: Vec<Ipv4Net>,
}

impl ServerIdentity {
    fn primary(&self) -> Ipv4Addr {
        self.addrs.first().map(|n| n.addr).unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
    fn is_ours(&self, a: Ipv4Addr) -> bool {
        self.addrs.iter().any(|n| n.addr == a)
    }
}

/// Counters of message types seen and sent, indexed like [`MSG_NAMES`].
pub const MSG_NAMES: [&str; 12] = [
    "rx_discover",
    "rx_request",
    "rx_decline",
    "rx_release",
    "rx_inform",
    "rx_bootp",
    "tx_offer",
    "tx_ack",
    "tx_nak",
    "tx_bootp",
    "tx_inform_ack",
    "rx_other",
];

/// What happened to one message, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Index into [`MSG_NAMES`] of what came in.
    pub rx: usize,
    /// Index into [`MSG_NAMES`] of what went out, if anything.
    pub tx: Option<usize>,
}

/// Everything the engine learned from a request before it overwrites the frame.
struct Req {
    mtype: Option<MessageType>,
    flags: u16,
    htype: u8,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    chaddr: [u8; 6],
    requested: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
    max_size: Option<u16>,
    link_selection: Option<Ipv4Addr>,
    subnet_selection: Option<Ipv4Addr>,
    server_id_override: Option<Ipv4Addr>,
    has_cookie: bool,
}

/// Scratch space copied out of the request (no heap per packet).
pub struct Engine {
    prl: [u8; 256],
    prl_len: usize,
    relay: [u8; 256],
    relay_len: usize,
    client_id: [u8; 256],
    client_id_len: Option<usize>,
    circuit: (usize, usize),
    remote: (usize, usize),
    scratch: [u8; 1024],
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

/// Largest BOOTP message when the client does not say (576 − IP − UDP).
const DEFAULT_MAX_BOOTP: usize = 576 - 28;
/// Replies are padded to the BOOTP minimum (RFC 1542 §3.3 recommends ≥ 300 octets).
const MIN_BOOTP: usize = 300;
/// Most the interface can carry (1500 − IP − UDP).
const MTU_BOOTP: usize = 1500 - 28;

enum Answer {
    Offer { yiaddr: Ipv4Addr, subnet: usize, lease: u32, opts: OptSrc },
    Ack { yiaddr: Ipv4Addr, subnet: usize, lease: u32, opts: OptSrc },
    InformAck { subnet: usize, opts: OptSrc },
    Nak { subnet: Option<usize> },
    Bootp { yiaddr: Ipv4Addr, subnet: usize, opts: OptSrc },
}

/// Which rendered option scope a reply draws from.
#[derive(Clone, Copy)]
enum OptSrc {
    Subnet(usize),
    Pool(usize, usize),
    Reservation(usize, usize),
}

impl Engine {
    /// Fresh scratch.
    pub fn new() -> Self {
        Self {
            prl: [0; 256],
            prl_len: 0,
            relay: [0; 256],
            relay_len: 0,
            client_id: [0; 256],
            client_id_len: None,
            circuit: (0, 0),
            remote: (0, 0),
            scratch: [0; 1024],
        }
    }

    /// Handles one frame: `buf[..len]` is the request; the reply is written into `buf`.
    pub fn handle(
        &mut self,
        now: u32,
        cfg: &Config,
        server: &ServerIdentity,
        shard: &mut ShardGuard<'_>,
        buf: &mut [u8],
        len: usize,
    ) -> (Verdict, Outcome) {
        let other = Outcome { rx: 11, tx: None };
        let Some(req_bytes) = buf.get(..len) else {
            return (Verdict::Drop(DropReason::Malformed), other);
        };
        let frame = match Frame::new_checked(req_bytes) {
            Ok(f) if f.udp_checksum_ok() && f.dst_port() == dhcp_xdp_common::DHCP_SERVER_PORT => f,
            _ => return (Verdict::Drop(DropReason::Malformed), other),
        };
        let layout = frame.layout();
        let (src_mac, vlans) = (frame.src_mac(), frame.vlan_ids());
        let msg = match Message::parse(frame.payload()) {
            Ok(m) => m,
            Err(MessageError::BadHlen) => return (Verdict::Drop(DropReason::BadHlen), other),
            Err(_) => return (Verdict::Drop(DropReason::Malformed), other),
        };
        if msg.op() != dhcp::BOOTREQUEST {
            return (Verdict::Drop(DropReason::NotRequest), other);
        }
        let req = self.extract(&msg);
        let rx = match req.mtype {
            Some(MessageType::Discover) => 0,
            Some(MessageType::Request) => 1,
            Some(MessageType::Decline) => 2,
            Some(MessageType::Release) => 3,
            Some(MessageType::Inform) => 4,
            None if msg.has(opt::MESSAGE_TYPE) => return (Verdict::Drop(DropReason::Malformed), other),
            None => 5,
            Some(_) => return (Verdict::Drop(DropReason::NotRequest), other),
        };
        let out = |tx| Outcome { rx, tx };
        let Some(subnet) = self.select_subnet(cfg, server, &req, vlans) else {
            return (Verdict::Drop(DropReason::NoSubnet), out(None));
        };
        let answer = match self.decide(now, cfg, server, shard, &req, subnet) {
            Ok(a) => a,
            Err(reason) => return (Verdict::Drop(reason), out(None)),
        };
        let tx = match &answer {
            Answer::Offer { .. } => 6,
            Answer::Ack { .. } => 7,
            Answer::Nak { .. } => 8,
            Answer::Bootp { .. } => 9,
            Answer::InformAck { .. } => 10,
        };
        match self.write_reply(cfg, server, &req, &answer, buf, &layout, src_mac) {
            Some(n) => (Verdict::Reply(n), out(Some(tx))),
            None => (Verdict::Drop(DropReason::NoRoom), out(None)),
        }
    }

    fn extract(&mut self, m: &Message<'_>) -> Req {
        self.prl_len = match m.option(opt::PARAMETER_LIST, &mut self.scratch) {
            Some(v) => {
                let n = v.len().min(255);
                self.prl[..n].copy_from_slice(&v[..n]);
                n
            }
            None => 0,
        };
        self.relay_len = match m.option(opt::RELAY_AGENT_INFO, &mut self.scratch) {
            Some(v) if v.len() <= 255 => {
                self.relay[..v.len()].copy_from_slice(v);
                v.len()
            }
            _ => 0,
        };
        self.client_id_len = match m.option(opt::CLIENT_ID, &mut self.scratch) {
            Some(v) if !v.is_empty() && v.len() <= 255 => {
                self.client_id[..v.len()].copy_from_slice(v);
                Some(v.len())
            }
            _ => None,
        };
        let (mut link_selection, mut server_id_override) = (None, None);
        self.circuit = (0, 0);
        self.remote = (0, 0);
        let relay = &self.relay[..self.relay_len];
        let mut at = 0;
        for (code, v) in dhcp::sub_options(relay) {
            let start = at + 2;
            at += 2 + v.len();
            let ip = <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from);
            match code {
                relay::CIRCUIT_ID => self.circuit = (start, v.len()),
                relay::REMOTE_ID => self.remote = (start, v.len()),
                relay::LINK_SELECTION => link_selection = ip,
                relay::SERVER_ID_OVERRIDE => server_id_override = ip,
                _ => {}
            }
        }
        Req {
            mtype: m.message_type(),
            flags: m.flags(),
            htype: m.htype(),
            ciaddr: m.ciaddr(),
            giaddr: m.giaddr(),
            chaddr: m.chaddr6(),
            requested: m.ip_option(opt::REQUESTED_IP),
            server_id: m.ip_option(opt::SERVER_ID),
            max_size: m.max_message_size(),
            link_selection,
            subnet_selection: m.ip_option(opt::SUBNET_SELECTION),
            server_id_override,
            has_cookie: m.has_cookie(),
        }
    }

    fn key(&self, req: &Req) -> ClientKey {
        match self.client_id_len {
            Some(n) => ClientKey::client_id(&self.client_id[..n]),
            None => ClientKey::hw(req.htype, &req.chaddr),
        }
    }

    /// Link selection (RFC 3527) > subnet selection (RFC 3011) > giaddr > ciaddr of a
    /// renewing client > the receiving interface and its VLAN tags.
    fn select_subnet(&self, cfg: &Config, server: &ServerIdentity, req: &Req, vlans: [u16; 2]) -> Option<usize> {
        let containing = |a: Ipv4Addr| cfg.subnets.iter().position(|s| s.contains(a));
        if let Some(a) = req.link_selection {
            return containing(a);
        }
        if let Some(a) = req.subnet_selection {
            return containing(a);
        }
        if !req.giaddr.is_unspecified() {
            return containing(req.giaddr);
        }
        if !req.ciaddr.is_unspecified()
            && let Some(s) = containing(req.ciaddr)
        {
            return Some(s);
        }
        let tags: Vec<u16> = vlans.iter().copied().filter(|&v| v != 0).collect();
        if !tags.is_empty() {
            return cfg.subnets.iter().position(|s| s.vlan == tags);
        }
        let untagged = || cfg.subnets.iter().enumerate().filter(|(_, s)| s.vlan.is_empty());
        untagged()
            .find(|(_, s)| server.addrs.iter().any(|n| s.contains(n.addr)))
            .or_else(|| if untagged().count() == 1 { untagged().next() } else { None })
            .map(|(i, _)| i)
    }

    /// Subnet ids a client on `subnet` may get an address from: its own, then the others of
    /// its shared network.
    fn candidates(cfg: &Config, subnet: usize, out: &mut [u32; 16]) -> usize {
        out[0] = cfg.subnets[subnet].id;
        let mut n = 1;
        if let Some(sn) = cfg.subnets[subnet].shared_network {
            for (i, s) in cfg.subnets.iter().enumerate() {
                if i != subnet && s.shared_network == Some(sn) && n < out.len() {
                    out[n] = s.id;
                    n += 1;
                }
            }
        }
        n
    }

    fn reservation(&self, s: &Subnet, req: &Req) -> Option<usize> {
        let relay = &self.relay[..self.relay_len];
        s.reservations.iter().position(|r| match &r.key {
            ReservationKey::HwAddress(m) => req.htype == 1 && *m == req.chaddr,
            ReservationKey::ClientId(id) => self.client_id_len.is_some_and(|n| id.as_slice() == &self.client_id[..n]),
            ReservationKey::CircuitId(c) => {
                self.circuit.1 > 0 && c.as_slice() == &relay[self.circuit.0..self.circuit.0 + self.circuit.1]
            }
            ReservationKey::RemoteId(c) => {
                self.remote.1 > 0 && c.as_slice() == &relay[self.remote.0..self.remote.0 + self.remote.1]
            }
        })
    }

    fn server_id(cfg: &Config, server: &ServerIdentity, s: &Subnet) -> Ipv4Addr {
        s.server_id
            .or(cfg.server_id)
            .or_else(|| server.addrs.iter().find(|n| s.contains(n.addr)).map(|n| n.addr))
            .unwrap_or_else(|| server.primary())
    }

    fn subnet_index_of(cfg: &Config, a: Ipv4Addr) -> Option<usize> {
        cfg.subnets.iter().position(|s| s.contains(a))
    }

    fn opts_for(cfg: &Config, subnet: usize, addr: Ipv4Addr, reservation: Option<(usize, usize)>) -> OptSrc {
        if let Some((s, r)) = reservation {
            return OptSrc::Reservation(s, r);
        }
        match Self::subnet_index_of(cfg, addr) {
            Some(s) => match cfg.subnets[s].pool_of(addr) {
                Some(p) => OptSrc::Pool(s, p),
                None => OptSrc::Subnet(s),
            },
            None => OptSrc::Subnet(subnet),
        }
    }

    fn decide(
        &mut self,
        now: u32,
        cfg: &Config,
        server: &ServerIdentity,
        shard: &mut ShardGuard<'_>,
        req: &Req,
        subnet: usize,
    ) -> Result<Answer, DropReason> {
        let key = self.key(req);
        let mut cand = [0u32; 16];
        let nc = Self::candidates(cfg, subnet, &mut cand);
        let cand = &cand[..nc];
        let in_cand = |a: Ipv4Addr| Self::subnet_index_of(cfg, a).filter(|&i| cand.contains(&cfg.subnets[i].id));
        // A reservation in any candidate subnet.
        let resv = cand.iter().find_map(|&id| {
            let si = cfg.subnets.iter().position(|s| s.id == id)?;
            self.reservation(&cfg.subnets[si], req).map(|r| (si, r))
        });
        let reserved_ip = resv.and_then(|(s, r)| cfg.subnets[s].reservations[r].ip.map(|a| (a, cfg.subnets[s].id)));
        let sub = &cfg.subnets[subnet];
        let ours = |sid: Ipv4Addr| {
            sid == Self::server_id(cfg, server, sub)
                || Some(sid) == req.server_id_override
                || server.is_ours(sid)
                || Some(sid) == cfg.server_id
        };
        let ack = |shard: &mut ShardGuard<'_>, addr: Ipv4Addr| -> Result<Answer, DropReason> {
            let si = in_cand(addr).ok_or(DropReason::Silent)?;
            let s = &cfg.subnets[si];
            let reserved = reserved_ip.map(|(a, _)| a) == Some(addr);
            match shard.bind(now, key, req.chaddr, addr, s.id, s.lease_time, reserved) {
                Ok(_) => Ok(Answer::Ack {
                    yiaddr: addr,
                    subnet: si,
                    lease: s.lease_time,
                    opts: Self::opts_for(cfg, si, addr, resv),
                }),
                Err(_) => Ok(Answer::Nak { subnet: Some(si) }),
            }
        };
        match req.mtype {
            Some(MessageType::Discover) => {
                match shard.offer(now, cfg.offer_hold, key, req.chaddr, cand, reserved_ip, req.requested) {
                    Ok((addr, sid)) => {
                        let si = cfg.subnets.iter().position(|s| s.id == sid).unwrap_or(subnet);
                        let lease = cfg.subnets[si].lease_time;
                        Ok(Answer::Offer { yiaddr: addr, subnet: si, lease, opts: Self::opts_for(cfg, si, addr, resv) })
                    }
                    Err(LeaseError::NoAddress) => Err(DropReason::NoAddress),
                    Err(LeaseError::Unavailable) => Err(DropReason::NoAddress),
                }
            }
            Some(MessageType::Request) => {
                if let Some(sid) = req.server_id {
                    // SELECTING.
                    if !ours(sid) {
                        shard.forget_offer(&key, now);
                        return Err(DropReason::OtherServer);
                    }
                    let addr = req
                        .requested
                        .or(Some(req.ciaddr).filter(|a| !a.is_unspecified()))
                        .ok_or(DropReason::Malformed)?;
                    match shard.get(&key) {
                        Some(l) if l.addr == addr && l.state != LeaseState::Declined => ack(shard, addr),
                        _ if reserved_ip.map(|(a, _)| a) == Some(addr) => ack(shard, addr),
                        _ => Ok(Answer::Nak { subnet: Some(subnet) }),
                    }
                } else if let Some(addr) = req.requested.filter(|_| req.ciaddr.is_unspecified()) {
                    // INIT-REBOOT.
                    if in_cand(addr).is_none() {
                        return if sub.authoritative {
                            Ok(Answer::Nak { subnet: Some(subnet) })
                        } else {
                            Err(DropReason::Silent)
                        };
                    }
                    self.verify(now, shard, &key, addr, reserved_ip.map(|(a, _)| a), sub.authoritative, ack)
                } else if !req.ciaddr.is_unspecified() {
                    // RENEWING (unicast) or REBINDING (broadcast).
                    let addr = req.ciaddr;
                    if in_cand(addr).is_none() {
                        return if sub.authoritative {
                            Ok(Answer::Nak { subnet: Some(subnet) })
                        } else {
                            Err(DropReason::Silent)
                        };
                    }
                    self.verify(now, shard, &key, addr, reserved_ip.map(|(a, _)| a), sub.authoritative, ack)
                } else {
                    Err(DropReason::Malformed)
                }
            }
            Some(MessageType::Decline) => {
                if req.server_id.is_some_and(|sid| !ours(sid)) {
                    return Err(DropReason::OtherServer);
                }
                let addr = req.requested.ok_or(DropReason::Malformed)?;
                if shard.decline(&key, addr, now, cfg.decline_probation) {
                    Err(DropReason::Consumed)
                } else {
                    Err(DropReason::Silent)
                }
            }
            Some(MessageType::Release) => {
                if req.server_id.is_some_and(|sid| !ours(sid)) {
                    return Err(DropReason::OtherServer);
                }
                if shard.release(&key, req.ciaddr, now) { Err(DropReason::Consumed) } else { Err(DropReason::Silent) }
            }
            Some(MessageType::Inform) => {
                let si = Self::subnet_index_of(cfg, req.ciaddr).unwrap_or(subnet);
                let opts = Self::opts_for(cfg, si, req.ciaddr, resv);
                Ok(Answer::InformAck { subnet: si, opts })
            }
            None => match (cfg.bootp, resv, reserved_ip) {
                (BootpPolicy::Reservations, Some(r), Some((addr, _))) => {
                    let si = r.0;
                    Ok(Answer::Bootp { yiaddr: addr, subnet: si, opts: OptSrc::Reservation(r.0, r.1) })
                }
                _ => Err(DropReason::Bootp),
            },
            Some(_) => Err(DropReason::NotRequest),
        }
    }

    /// INIT-REBOOT / RENEWING / REBINDING: is `addr` still right for this client?
    #[allow(clippy::too_many_arguments)]
    fn verify(
        &self,
        now: u32,
        shard: &mut ShardGuard<'_>,
        key: &ClientKey,
        addr: Ipv4Addr,
        reserved: Option<Ipv4Addr>,
        authoritative: bool,
        ack: impl Fn(&mut ShardGuard<'_>, Ipv4Addr) -> Result<Answer, DropReason>,
    ) -> Result<Answer, DropReason> {
        let nak = || if authoritative { Ok(Answer::Nak { subnet: None }) } else { Err(DropReason::Silent) };
        if let Some(r) = reserved {
            return if r == addr { ack(shard, addr) } else { nak() };
        }
        match shard.get(key) {
            Some(l) if l.addr == addr && l.state != LeaseState::Declined => {
                if l.holds(now) || shard.available(addr, key, now) { ack(shard, addr) } else { nak() }
            }
            Some(l) if l.holds(now) && l.state != LeaseState::Declined => nak(),
            _ => match shard.by_addr(addr) {
                Some(other) if other.key != *key && other.holds(now) => nak(),
                // No record of this client: an authoritative server that owns the free address
                // confirms it (fast recovery after lease loss); otherwise RFC 2131 silence.
                _ if authoritative && shard.available(addr, key, now) => ack(shard, addr),
                _ => Err(DropReason::Silent),
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_reply(
        &self,
        cfg: &Config,
        server: &ServerIdentity,
        req: &Req,
        answer: &Answer,
        buf: &mut [u8],
        layout: &crate::wire::FrameLayout,
        src_mac: [u8; 6],
    ) -> Option<usize> {
        let (mtype, yiaddr, subnet, lease, opts) = match *answer {
            Answer::Offer { yiaddr, subnet, lease, opts } => {
                (Some(MessageType::Offer), yiaddr, Some(subnet), Some(lease), Some(opts))
            }
            Answer::Ack { yiaddr, subnet, lease, opts } => {
                (Some(MessageType::Ack), yiaddr, Some(subnet), Some(lease), Some(opts))
            }
            Answer::InformAck { subnet, opts } => {
                (Some(MessageType::Ack), Ipv4Addr::UNSPECIFIED, Some(subnet), None, Some(opts))
            }
            Answer::Nak { subnet } => (Some(MessageType::Nak), Ipv4Addr::UNSPECIFIED, subnet, None, None),
            Answer::Bootp { yiaddr, subnet, opts } => (None, yiaddr, Some(subnet), None, Some(opts)),
        };
        let nak = mtype == Some(MessageType::Nak);
        let sub = subnet.map(|i| &cfg.subnets[i]);
        let server_ip = sub.map(|s| Self::server_id(cfg, server, s)).unwrap_or_else(|| server.primary());
        let announced_id = req.server_id_override.unwrap_or(server_ip);
        let rendered: Option<&RenderedOptions> = opts.map(|o| match o {
            OptSrc::Subnet(s) => &cfg.subnets[s].options,
            OptSrc::Pool(s, p) => &cfg.subnets[s].pools[p].options,
            OptSrc::Reservation(s, r) => &cfg.subnets[s].reservations[r].options,
        });

        let p = layout.payload;
        let room = buf.len().checked_sub(p)?;
        let max_bootp = req.max_size.map(|m| usize::from(m) - 28).unwrap_or(DEFAULT_MAX_BOOTP).min(MTU_BOOTP).min(room);
        if max_bootp < field::OPTIONS + 4 || buf.len() < p + MIN_BOOTP.max(field::OPTIONS + 4) {
            return None;
        }
        // Fixed header: op, htype/hlen/hops, xid and chaddr stay as the client sent them.
        let b = &mut buf[p..];
        b[field::OP] = dhcp::BOOTREPLY;
        b[field::SECS].fill(0);
        let mut flags = req.flags & FLAG_BROADCAST;
        if nak && !req.giaddr.is_unspecified() {
            flags |= FLAG_BROADCAST;
        }
        b[field::FLAGS].copy_from_slice(&flags.to_be_bytes());
        let ciaddr = if (mtype == Some(MessageType::Ack)) && !req.ciaddr.is_unspecified() {
            req.ciaddr
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        b[field::CIADDR].copy_from_slice(&ciaddr.octets());
        b[field::YIADDR].copy_from_slice(&yiaddr.octets());
        b[field::SIADDR].fill(0);
        b[field::SNAME].fill(0);
        b[field::FILE].fill(0);
        b[field::MAGIC].copy_from_slice(&dhcp::MAGIC_COOKIE);

        let relay = &self.relay[..self.relay_len];
        let relay_room = if relay.is_empty() { 0 } else { OptionWriter::encoded_len(relay.len()) };
        let limit = max_bootp.checked_sub(relay_room)?;
        let mut w = OptionWriter::new(b, field::OPTIONS, limit);
        // Required options first; they must fit.
        if let Some(t) = mtype
            && (!w.put(opt::MESSAGE_TYPE, &[t as u8]) || !w.put(opt::SERVER_ID, &announced_id.octets()))
        {
            return None;
        }
        if let (Some(l), Some(s)) = (lease, sub) {
            let ok = w.put(opt::LEASE_TIME, &l.to_be_bytes())
                && w.put(opt::RENEWAL_TIME, &s.renew_time.to_be_bytes())
                && w.put(opt::REBINDING_TIME, &s.rebind_time.to_be_bytes());
            if !ok {
                return None;
            }
        }
        if let Some(n) = self.client_id_len
            && !w.put(opt::CLIENT_ID, &self.client_id[..n])
        {
            return None;
        }
        if nak {
            // A message saying why helps operators reading client logs; optional.
            let _ = w.put(opt::MESSAGE, b"address not valid for this client on this link");
        } else if let Some(r) = rendered {
            // Subnet mask is required with an address; the rest in the client's order (55),
            // or all configured ones when it sent no list. Optional ones that do not fit are
            // left out.
            if mtype.is_some() || req.has_cookie {
                if let Some(m) = r.get(opt::SUBNET_MASK)
                    && !w.put(opt::SUBNET_MASK, m)
                {
                    return None;
                }
                let skip = |c: u8| {
                    matches!(
                        c,
                        opt::SUBNET_MASK
                            | opt::MESSAGE_TYPE
                            | opt::SERVER_ID
                            | opt::LEASE_TIME
                            | opt::RENEWAL_TIME
                            | opt::REBINDING_TIME
                            | opt::CLIENT_ID
                            | opt::RELAY_AGENT_INFO
                    )
                };
                if self.prl_len > 0 {
                    for &c in &self.prl[..self.prl_len] {
                        if !skip(c)
                            && let Some(v) = r.get(c)
                        {
                            let _ = w.put(c, v);
                        }
                    }
                } else {
                    for &c in r.codes() {
                        if !skip(c)
                            && let Some(v) = r.get(c)
                        {
                            let _ = w.put(c, v);
                        }
                    }
                }
            }
        }
        // Option 82 echoed verbatim, last (RFC 3046 §2.2); its room was kept aside.
        if !relay.is_empty() {
            w.set_limit(max_bootp);
            if !w.put(opt::RELAY_AGENT_INFO, relay) {
                return None;
            }
        }
        let end = w.finish(MIN_BOOTP);
        Self::address_and_headers(server, req, buf, layout, src_mac, server_ip, yiaddr, nak, end)
    }

    /// RFC 2131 §4.1 addressing, then L2–L4 headers.
    #[allow(clippy::too_many_arguments)]
    fn address_and_headers(
        server: &ServerIdentity,
        req: &Req,
        buf: &mut [u8],
        layout: &crate::wire::FrameLayout,
        src_mac: [u8; 6],
        server_ip: Ipv4Addr,
        yiaddr: Ipv4Addr,
        nak: bool,
        bootp_len: usize,
    ) -> Option<usize> {
        let (dst_mac, dst_ip, dst_port) = if !req.giaddr.is_unspecified() {
            (src_mac, req.giaddr, 67)
        } else if nak {
            ([0xff; 6], Ipv4Addr::BROADCAST, 68)
        } else if !req.ciaddr.is_unspecified() {
            (src_mac, req.ciaddr, 68)
        } else if req.flags & FLAG_BROADCAST != 0 || yiaddr.is_unspecified() {
            ([0xff; 6], Ipv4Addr::BROADCAST, 68)
        } else {
            (req.chaddr, yiaddr, 68)
        };
        let addr = ReplyAddressing { dst_mac, src_mac: server.mac, src_ip: server_ip, dst_ip, src_port: 67, dst_port };
        write_ipv4_udp_headers(buf, layout, bootp_len, &addr)
    }
}

/// Unix time in seconds, saturating into u32.
pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}
