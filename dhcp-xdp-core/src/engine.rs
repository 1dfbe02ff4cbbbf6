//! The DHCPv4 server engine: pure and deterministic. Given the time, the configuration, the
//! server's identity, a locked lease shard and a request frame, it rewrites the frame into the
//! reply (RFC 2131 / 2132) or returns why there is none.
//!
//! It performs no I/O, reads no clock and allocates nothing per packet: the few request bytes it
//! needs while overwriting the frame are copied into fixed scratch arrays.

use std::net::Ipv4Addr;

use crate::{
    config::{BootpPolicy, Config, RenderedOptions, Subnet},
    dhcp::{self, FLAG_BROADCAST, Message, MessageError, MessageType, OptionWriter, field, opt, relay},
    leases::{ClientKey, LeaseError, LeaseState, ShardGuard},
    net::Ipv4Net,
    verdict::{DropReason, Verdict},
    wire::{self, Frame, ReplyAddressing},
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
pub const MSG_NAMES: [&str; 16] = [
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
    "rx_request_selecting",
    "rx_request_init_reboot",
    "rx_request_renewing",
    "rx_request_rebinding",
];

/// What happened to one message, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Index into [`MSG_NAMES`] of what came in.
    pub rx: usize,
    /// For a REQUEST, index into [`MSG_NAMES`] of the client state it was sent in.
    pub state: Option<usize>,
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
    blocks: OptionBlocks,
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
            blocks: OptionBlocks::new(),
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
        let other = Outcome { rx: 11, state: None, tx: None };
        let Some(req_bytes) = buf.get(..len) else {
            return (Verdict::Drop(DropReason::Malformed), other);
        };
        let frame = match Frame::new_checked(req_bytes) {
            Ok(f) if f.ipv4_checksum_ok() && f.dst_port() == dhcp_xdp_common::DHCP_SERVER_PORT => f,
            _ => return (Verdict::Drop(DropReason::Malformed), other),
        };
        let layout = frame.layout();
        let (src_mac, vlans, to_broadcast) = (frame.src_mac(), frame.vlan_ids(), frame.dst_ip().is_broadcast());
        // Matched by reference: moving a parsed message out of its `Result` costs a copy
        // that stalls on store forwarding.
        let parsed = Message::parse(frame.payload());
        let msg = match &parsed {
            Ok(m) => m,
            Err(MessageError::BadHlen) => return (Verdict::Drop(DropReason::BadHlen), other),
            Err(_) => return (Verdict::Drop(DropReason::Malformed), other),
        };
        if msg.op() != dhcp::BOOTREQUEST {
            return (Verdict::Drop(DropReason::NotRequest), other);
        }
        let req = self.extract(msg);
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
        // RFC 2131 §4.3.2: the client state a REQUEST was sent in.
        let state = (req.mtype == Some(MessageType::Request)).then(|| {
            if req.server_id.is_some() {
                12
            } else if req.ciaddr.is_unspecified() {
                13
            } else if to_broadcast {
                15
            } else {
                14
            }
        });
        let out = |tx| Outcome { rx, state, tx };
        let Some(subnet) = self.select_subnet(cfg, server, &req, vlans) else {
            return (Verdict::Drop(DropReason::NoSubnet), out(None));
        };
        let decided = self.decide(now, cfg, server, shard, &req, subnet);
        let answer = match &decided {
            Ok(a) => a,
            Err(reason) => return (Verdict::Drop(*reason), out(None)),
        };
        let tx = match answer {
            Answer::Offer { .. } => 6,
            Answer::Ack { .. } => 7,
            Answer::Nak { .. } => 8,
            Answer::Bootp { .. } => 9,
            Answer::InformAck { .. } => 10,
        };
        match self.write_reply(cfg, server, &req, answer, buf, &layout, src_mac) {
            Some(n) => (Verdict::Reply(n), out(Some(tx))),
            None => (Verdict::Drop(DropReason::NoRoom), out(None)),
        }
    }

    /// Picks out what the engine uses: the options the parse indexed, so no second walk. Options
    /// that must occur once (53, 50, 54, 57, 118) count as absent when repeated, as
    /// [`Message::single`] says; the others are concatenated (RFC 3396).
    fn extract(&mut self, m: &Message<'_>) -> Req {
        let ip = |code| m.single(code).and_then(|v| <[u8; 4]>::try_from(v).ok()).map(Ipv4Addr::from);
        let mut req = Req {
            mtype: m.message_type(),
            flags: m.flags(),
            htype: m.htype(),
            ciaddr: m.ciaddr(),
            giaddr: m.giaddr(),
            chaddr: m.chaddr6(),
            requested: ip(opt::REQUESTED_IP),
            server_id: ip(opt::SERVER_ID),
            max_size: m.max_message_size(),
            link_selection: None,
            subnet_selection: ip(opt::SUBNET_SELECTION),
            server_id_override: None,
            has_cookie: m.has_cookie(),
        };
        self.prl_len = 0;
        self.relay_len = 0;
        self.client_id_len = None;
        // The head of the list stays zero-padded: the option-block cache compares it whole.
        self.prl[..BLOCK_PRL].fill(0);
        if let Some(v) = m.option(opt::PARAMETER_LIST, &mut self.scratch) {
            self.prl_len = v.len().min(255);
            self.prl[..self.prl_len].copy_from_slice(&v[..self.prl_len]);
        }
        if let Some(v) = m.option(opt::CLIENT_ID, &mut self.scratch)
            && !v.is_empty()
            && v.len() <= 255
        {
            self.client_id[..v.len()].copy_from_slice(v);
            self.client_id_len = Some(v.len());
        }
        if let Some(v) = m.option(opt::RELAY_AGENT_INFO, &mut self.scratch)
            && v.len() <= 255
        {
            self.relay[..v.len()].copy_from_slice(v);
            self.relay_len = v.len();
        }
        self.circuit = (0, 0);
        self.remote = (0, 0);
        let ip = |v: &[u8]| <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from);
        let mut at = 0;
        for (code, v) in dhcp::sub_options(&self.relay[..self.relay_len]) {
            let start = at + 2;
            at += 2 + v.len();
            match code {
                relay::CIRCUIT_ID => self.circuit = (start, v.len()),
                relay::REMOTE_ID => self.remote = (start, v.len()),
                relay::LINK_SELECTION => req.link_selection = ip(v),
                relay::SERVER_ID_OVERRIDE => req.server_id_override = ip(v),
                _ => {}
            }
        }
        req
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
        let containing = |a: Ipv4Addr| cfg.subnet_of(a);
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
        let tags: &[u16] = match vlans {
            [0, _] => &[],
            [_, 0] => &vlans[..1],
            _ => &vlans,
        };
        if !tags.is_empty() {
            return cfg.subnets.iter().position(|s| s.vlan == tags);
        }
        // The first untagged subnet (in configuration order) holding one of our addresses, else
        // the only untagged subnet.
        server
            .addrs
            .iter()
            .filter_map(|n| cfg.subnet_of(n.addr))
            .filter(|&i| cfg.subnets[i].vlan.is_empty())
            .min()
            .or(cfg.sole_untagged())
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
        if s.reservation_index.is_empty() {
            return None;
        }
        let relay = &self.relay[..self.relay_len];
        let client_id = self.client_id_len.map_or(&[][..], |n| &self.client_id[..n]);
        let (circuit, remote) = (&relay[self.circuit.0..][..self.circuit.1], &relay[self.remote.0..][..self.remote.1]);
        s.reservation_index.find((req.htype == 1).then_some(req.chaddr), client_id, circuit, remote)
    }

    fn server_id(cfg: &Config, server: &ServerIdentity, s: &Subnet) -> Ipv4Addr {
        s.server_id
            .or(cfg.server_id)
            .or_else(|| server.addrs.iter().find(|n| s.contains(n.addr)).map(|n| n.addr))
            .unwrap_or_else(|| server.primary())
    }

    /// The scope of an address that may lie outside every subnet (INFORM's ciaddr): the
    /// reservation's, else its own subnet's, else `subnet`'s.
    fn opts_for(cfg: &Config, subnet: usize, addr: Ipv4Addr, reservation: Option<(usize, usize)>) -> OptSrc {
        match (reservation, cfg.subnet_of(addr)) {
            (None, Some(s)) => Self::opts_in(cfg, s, addr, None),
            _ => Self::opts_in(cfg, subnet, addr, reservation),
        }
    }

    /// The scope of `addr`, which lies in subnet `s`: the reservation's, else its pool's, else
    /// the subnet's.
    fn opts_in(cfg: &Config, s: usize, addr: Ipv4Addr, reservation: Option<(usize, usize)>) -> OptSrc {
        if let Some((s, r)) = reservation {
            return OptSrc::Reservation(s, r);
        }
        match cfg.subnets[s].pool_of(addr) {
            Some(p) => OptSrc::Pool(s, p),
            None => OptSrc::Subnet(s),
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
        let in_cand = |a: Ipv4Addr| cfg.subnet_of(a).filter(|&i| cand.contains(&cfg.subnets[i].id));
        // A reservation in any candidate subnet.
        let resv = cand.iter().find_map(|&id| {
            let si = cfg.subnet_index(id)?;
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
        // ACK `addr`, which lies in candidate subnet `si`, if the lease store binds it.
        let ack = |shard: &mut ShardGuard<'_>, addr: Ipv4Addr, si: usize| -> Result<Answer, DropReason> {
            let s = &cfg.subnets[si];
            let reserved = reserved_ip.map(|(a, _)| a) == Some(addr);
            match shard.bind(now, key, req.chaddr, addr, s.id, s.lease_time, reserved) {
                Ok(_) => Ok(Answer::Ack {
                    yiaddr: addr,
                    subnet: si,
                    lease: s.lease_time,
                    opts: Self::opts_in(cfg, si, addr, resv),
                }),
                Err(_) => Ok(Answer::Nak { subnet: Some(si) }),
            }
        };
        match req.mtype {
            Some(MessageType::Discover) => {
                match shard.offer(now, cfg.offer_hold, &key, req.chaddr, cand, reserved_ip.as_ref(), req.requested) {
                    Ok((addr, sid)) => {
                        let si = cfg.subnet_index(sid).unwrap_or(subnet);
                        let lease = cfg.subnets[si].lease_time;
                        Ok(Answer::Offer { yiaddr: addr, subnet: si, lease, opts: Self::opts_in(cfg, si, addr, resv) })
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
                    let si = in_cand(addr).ok_or(DropReason::Silent);
                    match shard.get(&key) {
                        Some(l) if l.addr == addr && l.state != LeaseState::Declined => ack(shard, addr, si?),
                        _ if reserved_ip.map(|(a, _)| a) == Some(addr) => ack(shard, addr, si?),
                        _ => Ok(Answer::Nak { subnet: Some(subnet) }),
                    }
                } else if let Some(addr) = if req.ciaddr.is_unspecified() { req.requested } else { Some(req.ciaddr) } {
                    // INIT-REBOOT (requested address, no ciaddr), or RENEWING (unicast) and
                    // REBINDING (broadcast) with ciaddr.
                    let Some(si) = in_cand(addr) else {
                        return if sub.authoritative {
                            Ok(Answer::Nak { subnet: Some(subnet) })
                        } else {
                            Err(DropReason::Silent)
                        };
                    };
                    let reserved = reserved_ip.map(|(a, _)| a);
                    self.verify(now, shard, &key, addr, reserved, sub.authoritative, |shard| ack(shard, addr, si))
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
                let si = cfg.subnet_of(req.ciaddr).unwrap_or(subnet);
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
        ack: impl Fn(&mut ShardGuard<'_>) -> Result<Answer, DropReason>,
    ) -> Result<Answer, DropReason> {
        let nak = || if authoritative { Ok(Answer::Nak { subnet: None }) } else { Err(DropReason::Silent) };
        if let Some(r) = reserved {
            return if r == addr { ack(shard) } else { nak() };
        }
        match shard.get(key) {
            Some(l) if l.addr == addr && l.state != LeaseState::Declined => {
                if l.holds(now) || shard.available(addr, key, now) { ack(shard) } else { nak() }
            }
            Some(l) if l.holds(now) && l.state != LeaseState::Declined => nak(),
            _ => match shard.by_addr(addr) {
                Some(other) if other.key != *key && other.holds(now) => nak(),
                // No record of this client: an authoritative server that owns the free address
                // confirms it (fast recovery after lease loss); otherwise RFC 2131 silence.
                _ if authoritative && shard.available(addr, key, now) => ack(shard),
                _ => Err(DropReason::Silent),
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_reply(
        &mut self,
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
                let prl = &self.prl[..self.prl_len];
                let cached = self.prl.first_chunk().and_then(|head| self.blocks.get(r, prl, head));
                if !cached.is_some_and(|block| w.put_raw(block)) {
                    // Not cached or too big for this reply: option by option.
                    if !put_subnet_mask(&mut w, r) {
                        return None;
                    }
                    let _ = put_listed(&mut w, r, prl);
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
        let live_end = w.position() + 1;
        let end = w.finish(MIN_BOOTP);
        // Only the fixed fields up to chaddr and the options can be non-zero: sname, file and
        // the padding were zeroed above. The two parts are widened into those zeros to whole
        // 8-byte words, which the sum takes without a byte-by-byte tail.
        let live = &buf[p..];
        let options_end = live_end.next_multiple_of(8).min(end);
        let sum = wire::payload_sum(&[
            (0, &live[..field::SNAME.start + 4]),
            (field::MAGIC.start - 4, &live[field::MAGIC.start - 4..options_end]),
        ]);
        Self::address_and_headers(server, req, buf, layout, src_mac, server_ip, yiaddr, nak, (end, sum))
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
        (bootp_len, bootp_sum): (usize, u32),
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
        wire::write_ipv4_udp_headers_summed(buf, layout, bootp_len, Some(bootp_sum), &addr)
    }
}

/// Options a scope never supplies to a reply: the engine writes these itself (or, for the
/// subnet mask, first).
fn engine_written(code: u8) -> bool {
    matches!(
        code,
        opt::SUBNET_MASK
            | opt::MESSAGE_TYPE
            | opt::SERVER_ID
            | opt::LEASE_TIME
            | opt::RENEWAL_TIME
            | opt::REBINDING_TIME
            | opt::CLIENT_ID
            | opt::RELAY_AGENT_INFO
    )
}

/// The subnet mask, required with an address: false if the scope has one and it does not fit.
fn put_subnet_mask(w: &mut OptionWriter<'_>, r: &RenderedOptions) -> bool {
    r.get(opt::SUBNET_MASK).is_none_or(|m| w.put(opt::SUBNET_MASK, m))
}

/// The scope's other options in the client's order (55), or all configured ones when it sent
/// no list; optional ones that do not fit are left out. True if all fitted.
fn put_listed(w: &mut OptionWriter<'_>, r: &RenderedOptions, prl: &[u8]) -> bool {
    let codes = if prl.is_empty() { r.codes() } else { prl };
    let mut all = true;
    for &c in codes {
        if !engine_written(c)
            && let Some(v) = r.get(c)
        {
            all &= w.put(c, v);
        }
    }
    all
}

/// Cached option blocks per engine.
const BLOCKS: usize = 16;
/// Longest parameter request list whose block is cached.
const BLOCK_PRL: usize = 64;
/// Largest cached block.
const BLOCK_BYTES: usize = 1024;

/// One scope's options in one client order, encoded.
struct OptionBlock {
    /// [`RenderedOptions::id`]; 0 while empty.
    scope: u64,
    prl_len: usize,
    /// The list, zero-padded.
    prl: [u8; BLOCK_PRL],
    /// `None`: the options do not fit a block (remembered, so that they are not encoded twice
    /// for every reply).
    len: Option<usize>,
    bytes: [u8; BLOCK_BYTES],
}

/// Reply options of a scope in a client's order, encoded once and reused: the clients of a
/// network send a handful of distinct parameter request lists, so the per-option lookups run
/// once per (scope, list) rather than once per reply. Keyed by [`RenderedOptions::id`], which a
/// reload never reuses, so a new configuration cannot be answered from an old block.
struct OptionBlocks {
    entries: Box<[OptionBlock]>,
    next: usize,
    /// The entry the last lookup found.
    last: usize,
}

impl OptionBlocks {
    fn new() -> Self {
        let empty = || OptionBlock { scope: 0, prl_len: 0, prl: [0; BLOCK_PRL], len: None, bytes: [0; BLOCK_BYTES] };
        Self { entries: (0..BLOCKS).map(|_| empty()).collect(), next: 0, last: 0 }
    }

    /// The subnet mask and the listed options of `r` in the order of `prl`, built on first use
    /// (round-robin replacement); `None` when the list is too long or the options do not fit a
    /// block. `padded` is the list's head, zero-padded: lists are compared as whole arrays.
    fn get(&mut self, r: &RenderedOptions, prl: &[u8], padded: &[u8; BLOCK_PRL]) -> Option<&[u8]> {
        if prl.len() > BLOCK_PRL {
            return None;
        }
        let is = |e: &OptionBlock| e.scope == r.id() && e.prl_len == prl.len() && same_words(&e.prl, padded);
        // Most clients ask what the last one asked.
        let i = if is(&self.entries[self.last]) {
            self.last
        } else if let Some(i) = self.entries.iter().position(is) {
            i
        } else {
            let i = self.next;
            self.next = (i + 1) % BLOCKS;
            let e = &mut self.entries[i];
            let mut w = OptionWriter::new(&mut e.bytes, 0, BLOCK_BYTES);
            let fits = put_subnet_mask(&mut w, r) && put_listed(&mut w, r, prl);
            e.len = fits.then(|| w.position());
            e.prl = *padded;
            e.prl_len = prl.len();
            e.scope = r.id();
            i
        };
        self.last = i;
        let e = &self.entries[i];
        e.len.map(|n| &e.bytes[..n])
    }
}

/// Whether two lists are equal, compared a word at a time (an array comparison would be a libc
/// call).
fn same_words(a: &[u8; BLOCK_PRL], b: &[u8; BLOCK_PRL]) -> bool {
    let (a, b) = (a.as_chunks::<8>().0, b.as_chunks::<8>().0);
    a.iter().zip(b).fold(0, |d, (x, y)| d | (u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y))) == 0
}

#[cfg(test)]
mod tests {
    //! One named test per RFC rule, with an injected clock.
    use super::*;
    use crate::{
        config::Config,
        dhcp::Message,
        leases::LeaseDb,
        testing::Request,
        wire::{Frame, internet_checksum},
    };

    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xaa];
    const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
    const RELAY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x77];
    const T0: u32 = 1_000_000;

    const CFG: &str = r#"
[server]
offer-hold = 30
decline-probation = 600
bootp = "reservations"
[options]
dns-servers = ["198.18.0.53"]
domain-name = "example.net"
[[subnet]]
subnet = "198.18.0.0/24"
options = { routers = ["198.18.0.1"] }
  [[subnet.pool]]
  range = "198.18.0.100-198.18.0.109"
  [[subnet.reservation]]
  hw-address = "02:00:00:00:00:99"
  ip = "198.18.0.50"
  [[subnet.reservation]]
  client-id = "ff:00:01"
  ip = "198.18.0.51"
[[subnet]]
subnet = "198.18.1.0/24"
authoritative = false
  [[subnet.pool]]
  range = "198.18.1.100-198.18.1.199"
  [[subnet.reservation]]
  circuit-id = "olt1/1/1"
  ip = "198.18.1.10"
  [[subnet.reservation]]
  remote-id = "cpe-42"
  ip = "198.18.1.11"
[[subnet]]
subnet = "198.18.2.0/24"
shared-network = "campus"
  [[subnet.pool]]
  range = "198.18.2.10-198.18.2.10"
[[subnet]]
subnet = "198.18.3.0/24"
shared-network = "campus"
  [[subnet.pool]]
  range = "198.18.3.10-198.18.3.19"
[[subnet]]
subnet = "198.18.4.0/24"
vlan = [100, 20]
  [[subnet.pool]]
  range = "198.18.4.10-198.18.4.19"
  [[subnet.options.classless-routes]]
  destination = "198.19.0.0/16"
  router = "198.18.4.1"
"#;

    type Rq = Request;

    fn rq(mtype: MessageType) -> Rq {
        Request { end: true, xid: 0xabcd_0001, ..Request::new(mtype).client(CLIENT_MAC) }
    }

    /// Engine tests relay through one relay to this server.
    trait ToUs {
        fn relayed_to_us(self, giaddr: Ipv4Addr) -> Self;
    }

    impl ToUs for Request {
        fn relayed_to_us(self, giaddr: Ipv4Addr) -> Self {
            self.relayed(giaddr, RELAY_MAC, SERVER)
        }
    }

    /// A parsed reply.
    #[derive(Debug)]
    struct Rp {
        frame: Vec<u8>,
    }

    impl Rp {
        fn f(&self) -> Frame<'_> {
            Frame::new_checked(&self.frame).expect("reply frame parses")
        }
        fn m(&self) -> Message<'_> {
            Message::parse(self.f().payload()).expect("reply message parses")
        }
        fn mtype(&self) -> MessageType {
            self.m().message_type().expect("type")
        }
        fn yiaddr(&self) -> Ipv4Addr {
            self.m().yiaddr()
        }
        fn opt(&self, code: u8) -> Option<Vec<u8>> {
            self.m().single(code).map(<[u8]>::to_vec)
        }
        fn codes(&self) -> Vec<u8> {
            let p = self.f().payload().to_vec();
            let mut out = vec![];
            let mut i = 240;
            while i < p.len() && p[i] != 255 {
                if p[i] == 0 {
                    i += 1;
                    continue;
                }
                out.push(p[i]);
                i += 2 + usize::from(p[i + 1]);
            }
            out
        }
    }

    struct H {
        cfg: Config,
        db: LeaseDb,
        server: ServerIdentity,
        engine: Engine,
    }

    impl H {
        fn new() -> Self {
            Self::with(CFG)
        }
        fn with(src: &str) -> Self {
            let cfg = Config::parse("test.toml", src).unwrap();
            let db = LeaseDb::new(&cfg, 1, [], T0);
            let server = ServerIdentity { mac: SERVER_MAC, addrs: vec![Ipv4Net { addr: SERVER, prefix: 24 }] };
            Self { cfg, db, server, engine: Engine::new() }
        }
        fn send(&mut self, now: u32, r: &Rq) -> Result<Rp, DropReason> {
            let mut buf = r.frame();
            let len = buf.len();
            buf.resize(4096, 0);
            let mut g = self.db.lock(0);
            let (v, _) = self.engine.handle(now, &self.cfg, &self.server, &mut g, &mut buf, len);
            match v {
                Verdict::Reply(n) => {
                    buf.truncate(n);
                    let rp = Rp { frame: buf };
                    assert!(rp.f().udp_checksum_ok(), "UDP checksum");
                    let l = rp.f().layout();
                    assert_eq!(internet_checksum(&rp.frame[l.l3..l.l4]), 0, "IPv4 checksum");
                    assert!(rp.f().payload().len() >= MIN_BOOTP);
                    assert_eq!(rp.m().op(), dhcp::BOOTREPLY);
                    assert_eq!(rp.m().xid(), 0xabcd_0001);
                    assert_eq!(rp.m().chaddr6(), r.chaddr);
                    Ok(rp)
                }
                Verdict::Drop(d) => Err(d),
                Verdict::ReplyWhenDurable(_) => unreachable!("the engine leaves durability to its handler"),
            }
        }
        /// DISCOVER → OFFER → REQUEST → ACK; returns the ACK.
        fn dora(&mut self, now: u32, base: &Rq) -> Rp {
            let mut d = base.clone();
            d.mtype = Some(MessageType::Discover as u8);
            let offer = self.send(now, &d).expect("offer");
            assert_eq!(offer.mtype(), MessageType::Offer);
            let mut r = base.clone();
            r.mtype = Some(MessageType::Request as u8);
            let r =
                r.ip_opt(opt::REQUESTED_IP, offer.yiaddr()).opt(opt::SERVER_ID, &offer.opt(opt::SERVER_ID).unwrap());
            let ack = self.send(now + 1, &r).expect("ack");
            assert_eq!(ack.mtype(), MessageType::Ack);
            assert_eq!(ack.yiaddr(), offer.yiaddr());
            ack
        }
    }

    fn ip(b: &[u8]) -> Ipv4Addr {
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    // ---- Messages -------------------------------------------------------------------------

    #[test]
    fn discover_gets_offer_with_required_options() {
        let mut h = H::new();
        let o = h.send(T0, &rq(MessageType::Discover)).unwrap();
        assert_eq!(o.mtype(), MessageType::Offer);
        assert_eq!(o.yiaddr(), Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(o.opt(opt::SERVER_ID), Some(SERVER.octets().to_vec()));
        assert_eq!(o.opt(opt::LEASE_TIME), Some(3600u32.to_be_bytes().to_vec()));
        assert_eq!(o.opt(opt::RENEWAL_TIME), Some(1800u32.to_be_bytes().to_vec()));
        assert_eq!(o.opt(opt::REBINDING_TIME), Some(3150u32.to_be_bytes().to_vec()));
        assert_eq!(o.opt(opt::SUBNET_MASK), Some(vec![255, 255, 255, 0]));
        assert_eq!(o.opt(opt::ROUTERS), Some(vec![198, 18, 0, 1]));
        assert_eq!(o.opt(opt::DNS), Some(vec![198, 18, 0, 53]));
        assert_eq!(o.m().ciaddr(), Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn offer_uses_reservation_first() {
        let mut h = H::new();
        let mut r = rq(MessageType::Discover);
        r.chaddr = [2, 0, 0, 0, 0, 0x99];
        assert_eq!(h.send(T0, &r).unwrap().yiaddr(), Ipv4Addr::new(198, 18, 0, 50));
        let r = rq(MessageType::Discover).opt(opt::CLIENT_ID, &[0xff, 0, 1]);
        assert_eq!(h.send(T0, &r).unwrap().yiaddr(), Ipv4Addr::new(198, 18, 0, 51));
    }

    #[test]
    fn offer_returns_previous_address_then_requested_then_allocator() {
        let mut h = H::new();
        let first = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
        // Same client again: its address.
        assert_eq!(h.send(T0 + 5, &rq(MessageType::Discover)).unwrap().yiaddr(), first);
        // Another client asking for a free address gets it; for a taken one, not.
        let mut other = rq(MessageType::Discover);
        other.chaddr = [2, 0, 0, 0, 0, 0x12];
        let want = Ipv4Addr::new(198, 18, 0, 105);
        assert_eq!(h.send(T0, &other.clone().ip_opt(opt::REQUESTED_IP, want)).unwrap().yiaddr(), want);
        other.chaddr = [2, 0, 0, 0, 0, 0x13];
        assert_ne!(h.send(T0, &other.clone().ip_opt(opt::REQUESTED_IP, first)).unwrap().yiaddr(), first);
        // A requested address outside the subnet is ignored.
        other.chaddr = [2, 0, 0, 0, 0, 0x14];
        let o = h.send(T0, &other.ip_opt(opt::REQUESTED_IP, Ipv4Addr::new(198, 19, 9, 9))).unwrap();
        assert!(h.cfg.subnets[0].pools[0].contains(o.yiaddr()));
    }

    #[test]
    fn full_pool_is_a_counted_no_address_drop() {
        let mut h = H::new();
        for i in 0..10u8 {
            let mut r = rq(MessageType::Discover);
            r.chaddr = [2, 1, 0, 0, 0, i];
            h.send(T0, &r).unwrap();
        }
        let mut r = rq(MessageType::Discover);
        r.chaddr = [2, 1, 0, 0, 1, 0];
        assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::NoAddress);
    }

    #[test]
    fn request_selecting_our_server_id_is_acked() {
        let mut h = H::new();
        let ack = h.dora(T0, &rq(MessageType::Discover));
        assert_eq!(ack.opt(opt::LEASE_TIME), Some(3600u32.to_be_bytes().to_vec()));
        let g = h.db.lock(0);
        let l = g.get(&ClientKey::hw(1, &CLIENT_MAC)).unwrap();
        assert_eq!((l.state, l.expires), (LeaseState::Bound, T0 + 1 + 3600));
    }

    #[test]
    fn request_selecting_other_server_drops_silently_and_frees_our_offer() {
        let mut h = H::new();
        let o = h.send(T0, &rq(MessageType::Discover)).unwrap();
        let r = rq(MessageType::Request)
            .ip_opt(opt::REQUESTED_IP, o.yiaddr())
            .ip_opt(opt::SERVER_ID, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(h.send(T0 + 1, &r).unwrap_err(), DropReason::OtherServer);
        let mut other = rq(MessageType::Discover);
        other.chaddr = [2, 0, 0, 0, 0, 0x22];
        assert_eq!(
            h.send(T0 + 2, &other.ip_opt(opt::REQUESTED_IP, o.yiaddr())).unwrap().yiaddr(),
            o.yiaddr(),
            "offer withdrawn"
        );
    }

    #[test]
    fn request_selecting_an_address_not_offered_is_naked() {
        let mut h = H::new();
        h.send(T0, &rq(MessageType::Discover)).unwrap();
        let r = rq(MessageType::Request)
            .ip_opt(opt::REQUESTED_IP, Ipv4Addr::new(198, 18, 0, 108))
            .ip_opt(opt::SERVER_ID, SERVER);
        let n = h.send(T0 + 1, &r).unwrap();
        assert_eq!(n.mtype(), MessageType::Nak);
        assert_eq!(n.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(n.opt(opt::LEASE_TIME), None);
        assert_eq!(n.f().dst_ip(), Ipv4Addr::BROADCAST, "NAK without relay is broadcast");
    }

    #[test]
    fn init_reboot_known_client_is_acked() {
        let mut h = H::new();
        let a = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
        let ack = h.send(T0 + 100, &rq(MessageType::Request).ip_opt(opt::REQUESTED_IP, a)).unwrap();
        assert_eq!((ack.mtype(), ack.yiaddr()), (MessageType::Ack, a));
    }

    #[test]
    fn init_reboot_wrong_subnet_naks_when_authoritative() {
        let mut h = H::new();
        let r = rq(MessageType::Request).ip_opt(opt::REQUESTED_IP, Ipv4Addr::new(198, 18, 9, 9));
        assert_eq!(h.send(T0, &r).unwrap().mtype(), MessageType::Nak);
    }

    #[test]
    fn init_reboot_wrong_subnet_is_silent_when_not_authoritative() {
        let mut h = H::new();
        let r = rq(MessageType::Request)
            .ip_opt(opt::REQUESTED_IP, Ipv4Addr::new(198, 18, 9, 9))
            .relayed_to_us(Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::Silent);
    }

    #[test]
    fn init_reboot_for_address_bound_to_another_client_naks() {
        let mut h = H::new();
        let a = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
        let mut r = rq(MessageType::Request).ip_opt(opt::REQUESTED_IP, a);
        r.chaddr = [2, 0, 0, 0, 0, 0x33];
        assert_eq!(h.send(T0 + 1, &r).unwrap().mtype(), MessageType::Nak);
    }

    #[test]
    fn renewing_unicast_is_acked_to_ciaddr() {
        let mut h = H::new();
        let a = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
        let mut r = rq(MessageType::Request);
        r.ciaddr = a;
        r.src_ip = a;
        r.dst_ip = SERVER;
        let ack = h.send(T0 + 1800, &r).unwrap();
        assert_eq!((ack.mtype(), ack.yiaddr(), ack.m().ciaddr()), (MessageType::Ack, a, a));
        assert_eq!((ack.f().dst_ip(), ack.f().dst_port(), ack.f().dst_mac()), (a, 68, CLIENT_MAC));
        let g = h.db.lock(0);
        assert_eq!(g.get(&ClientKey::hw(1, &CLIENT_MAC)).unwrap().expires, T0 + 1800 + 3600, "lease extended");
    }

    #[test]
    fn rebinding_broadcast_is_acked() {
        let mut h = H::new();
        let a = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
        let mut r = rq(MessageType::Request);
        r.ciaddr = a;
        r.src_ip = a;
        let ack = h.send(T0 + 3200, &r).unwrap();
        assert_eq!((ack.mtype(), ack.yiaddr()), (MessageType::Ack, a));
        assert_eq!(ack.f().dst_ip(), a, "ciaddr set: unicast to ciaddr");
    }

    #[test]
    fn renewing_someone_elses_address_naks() {
        let mut h = H::new();
        let a = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
        let mut r = rq(MessageType::Request);
        r.chaddr = [2, 0, 0, 0, 0, 0x44];
        r.ciaddr = a;
        assert_eq!(h.send(T0 + 1, &r).unwrap().mtype(), MessageType::Nak);
    }

    #[test]
    fn decline_puts_address_on_probation_and_client_gets_another() {
        let mut h = H::new();
        let a = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
        let d = rq(MessageType::Decline).ip_opt(opt::REQUESTED_IP, a).ip_opt(opt::SERVER_ID, SERVER);
        assert_eq!(h.send(T0 + 2, &d).unwrap_err(), DropReason::Consumed);
        let b = h.send(T0 + 3, &rq(MessageType::Discover)).unwrap().yiaddr();
        assert_ne!(a, b);
        let mut other = rq(MessageType::Discover);
        other.chaddr = [2, 0, 0, 0, 0, 0x55];
        assert_ne!(h.send(T0 + 4, &other.ip_opt(opt::REQUESTED_IP, a)).unwrap().yiaddr(), a, "on probation");
    }

    #[test]
    fn release_frees_address_but_keeps_affinity() {
        let mut h = H::new();
        let a = h.dora(T0, &rq(MessageType::Discover)).yiaddr();
        let mut r = rq(MessageType::Release).ip_opt(opt::SERVER_ID, SERVER);
        r.ciaddr = a;
        assert_eq!(h.send(T0 + 10, &r).unwrap_err(), DropReason::Consumed);
        assert_eq!(h.db.census(T0 + 10).bound, 0);
        assert_eq!(h.send(T0 + 20, &rq(MessageType::Discover)).unwrap().yiaddr(), a);
    }

    #[test]
    fn inform_acks_configuration_without_lease_or_yiaddr() {
        let mut h = H::new();
        let mut r = rq(MessageType::Inform).opt(opt::PARAMETER_LIST, &[6, 3, 15]);
        r.ciaddr = Ipv4Addr::new(198, 18, 0, 7);
        r.src_ip = r.ciaddr;
        let a = h.send(T0, &r).unwrap();
        assert_eq!(a.mtype(), MessageType::Ack);
        assert_eq!(a.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(a.opt(opt::LEASE_TIME), None);
        assert_eq!(a.opt(opt::DNS), Some(vec![198, 18, 0, 53]));
        assert_eq!(a.f().dst_ip(), r.ciaddr);
        assert_eq!(h.db.census(T0).bound, 0);
    }

    #[test]
    fn bootp_answered_from_reservations_only() {
        let mut h = H::new();
        let mut r = rq(MessageType::Discover);
        r.mtype = None;
        assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::Bootp);
        r.chaddr = [2, 0, 0, 0, 0, 0x99];
        let rep = h.send(T0, &r).unwrap();
        assert_eq!(rep.yiaddr(), Ipv4Addr::new(198, 18, 0, 50));
        assert_eq!(rep.m().message_type(), None);
        let mut h = H::with(&CFG.replace("bootp = \"reservations\"", "bootp = \"ignore\""));
        assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::Bootp);
    }

    #[test]
    fn server_messages_wrong_op_and_long_hlen_are_counted_drops() {
        let mut h = H::new();
        for t in [MessageType::Offer, MessageType::Ack, MessageType::Nak] {
            assert_eq!(h.send(T0, &rq(t)).unwrap_err(), DropReason::NotRequest);
        }
        let mut r = rq(MessageType::Discover);
        r.op = 2;
        assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::NotRequest);
        let mut r = rq(MessageType::Discover);
        r.hlen = 17;
        assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::BadHlen);
        let r = rq(MessageType::Discover).opt(opt::MESSAGE_TYPE, &[1, 2]);
        assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::Malformed, "two option 53");
    }

    // ---- Addressing (RFC 2131 §4.1) --------------------------------------------------------

    #[test]
    fn relayed_reply_goes_to_giaddr_port_67_via_request_source_mac() {
        let mut h = H::new();
        let relay = Ipv4Addr::new(198, 18, 1, 1);
        let o = h.send(T0, &rq(MessageType::Discover).relayed_to_us(relay)).unwrap();
        assert_eq!((o.f().dst_ip(), o.f().dst_port(), o.f().dst_mac()), (relay, 67, RELAY_MAC));
        assert_eq!(o.m().giaddr(), relay);
        assert!(h.cfg.subnets[1].contains(o.yiaddr()), "lease from the giaddr's subnet");
    }

    #[test]
    fn nak_through_relay_sets_broadcast_bit() {
        let mut h = H::new();
        let r = rq(MessageType::Request)
            .ip_opt(opt::REQUESTED_IP, Ipv4Addr::new(198, 18, 0, 5))
            .relayed_to_us(Ipv4Addr::new(198, 18, 3, 1));
        let n = h.send(T0, &r).unwrap();
        assert_eq!(n.mtype(), MessageType::Nak);
        assert_eq!(n.m().flags() & FLAG_BROADCAST, FLAG_BROADCAST);
        assert_eq!(n.f().dst_ip(), Ipv4Addr::new(198, 18, 3, 1));
    }

    #[test]
    fn broadcast_flag_means_broadcast_reply() {
        let mut h = H::new();
        let mut r = rq(MessageType::Discover);
        r.flags = FLAG_BROADCAST;
        let o = h.send(T0, &r).unwrap();
        assert_eq!((o.f().dst_ip(), o.f().dst_mac()), (Ipv4Addr::BROADCAST, [0xff; 6]));
    }

    #[test]
    fn no_flag_means_unicast_to_yiaddr_at_chaddr() {
        let mut h = H::new();
        let o = h.send(T0, &rq(MessageType::Discover)).unwrap();
        assert_eq!((o.f().dst_ip(), o.f().dst_mac(), o.f().dst_port()), (o.yiaddr(), CLIENT_MAC, 68));
        assert_eq!((o.f().src_ip(), o.f().src_mac(), o.f().src_port()), (SERVER, SERVER_MAC, 67));
    }

    // ---- Options ---------------------------------------------------------------------------

    #[test]
    fn parameter_request_list_order_is_honoured() {
        let mut h = H::new();
        let o = h.send(T0, &rq(MessageType::Discover).opt(opt::PARAMETER_LIST, &[15, 6, 3, 1])).unwrap();
        let codes = o.codes();
        let pos = |c| codes.iter().position(|&x| x == c).unwrap();
        assert!(pos(15) < pos(6) && pos(6) < pos(3), "{codes:?}");
        assert_eq!(codes[0], opt::MESSAGE_TYPE);
    }

    #[test]
    fn cached_option_blocks_give_the_same_replies_as_fresh_ones() {
        // 20 lists (more than the cache holds), each asked three times by one engine: a miss,
        // hits, and misses again after replacement. Every reply equals a fresh engine's.
        let lists: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                let mut l = vec![15, 6, 3, 1, 28, 42];
                l.rotate_left(i % 6);
                l.truncate(6 - i / 6);
                l
            })
            .collect();
        let mut h = H::new();
        for round in 0..3 {
            for (i, l) in lists.iter().enumerate() {
                let mut r = rq(MessageType::Discover).opt(opt::PARAMETER_LIST, l);
                r.chaddr = [2, 0, 0, 0, 1, (i % 8) as u8]; // the pool has 10 addresses
                r.src_mac = r.chaddr;
                let cached = h.send(T0 + round, &r).unwrap();
                let fresh = H::new().send(T0 + round, &r).unwrap();
                let options = |rp: &Rp| rp.f().payload()[field::OPTIONS..].to_vec();
                assert_eq!(options(&cached), options(&fresh), "list {l:?} round {round}");
            }
        }
        // A client without a list gets every configured option, cached the same way.
        let all = h.send(T0, &rq(MessageType::Discover)).unwrap();
        assert_eq!(all.frame, h.send(T0, &rq(MessageType::Discover)).unwrap().frame, "hit = miss");
        assert!(all.opt(opt::DOMAIN_NAME).is_some());
    }

    #[test]
    fn options_too_big_for_a_block_are_still_sent_option_by_option() {
        // Four 255-byte options: more than a cached block holds, less than the reply can.
        let custom: String =
            (200..204).map(|c| format!("[[options.custom]]\ncode = {c}\ntext = \"{}\"\n", "t".repeat(255))).collect();
        let big =
            CFG.replacen("domain-name = \"example.net\"\n", &format!("domain-name = \"example.net\"\n{custom}"), 1);
        let mut h = H::with(&big);
        let r = rq(MessageType::Discover)
            .opt(opt::PARAMETER_LIST, &[1, 200, 201, 202, 203])
            .opt(opt::MAX_MESSAGE_SIZE, &1500u16.to_be_bytes());
        let first = h.send(T0, &r).unwrap();
        for c in [opt::SUBNET_MASK, 200, 201, 202, 203] {
            assert!(first.opt(c).is_some(), "option {c} missing");
        }
        assert_eq!(first.frame, h.send(T0, &r).unwrap().frame, "the same the second time");
    }

    #[test]
    fn a_new_configuration_is_never_answered_from_old_option_blocks() {
        let mut h = H::new();
        let r = rq(MessageType::Discover).opt(opt::PARAMETER_LIST, &[1, 3, 6]);
        assert_eq!(h.send(T0, &r).unwrap().opt(opt::DNS), Some(vec![198, 18, 0, 53]));
        h.cfg = Config::parse("test.toml", &CFG.replace("198.18.0.53", "198.18.0.54")).unwrap();
        assert_eq!(h.send(T0, &r).unwrap().opt(opt::DNS), Some(vec![198, 18, 0, 54]));
    }

    #[test]
    fn max_message_size_drops_optional_options_not_required_ones() {
        let big = CFG.replace("domain-name = \"example.net\"", &format!("domain-name = \"{}\"", "d".repeat(250)));
        let mut h = H::with(&big);
        let o = h.send(T0, &rq(MessageType::Discover).opt(opt::PARAMETER_LIST, &[15, 6, 3])).unwrap();
        assert!(o.opt(opt::DOMAIN_NAME).is_some(), "fits 548 bytes");
        let limit = 576u16;
        let r = rq(MessageType::Discover)
            .opt(opt::PARAMETER_LIST, &[15, 6, 3, 15])
            .opt(opt::MAX_MESSAGE_SIZE, &limit.to_be_bytes());
        let o = h.send(T0, &r.clone().opt(opt::HOSTNAME, &[b'h'; 200])).unwrap();
        assert!(o.f().payload().len() <= usize::from(limit) - 28);
        for c in [opt::MESSAGE_TYPE, opt::SERVER_ID, opt::LEASE_TIME, opt::SUBNET_MASK] {
            assert!(o.opt(c).is_some(), "required option {c} missing");
        }
    }

    #[test]
    fn client_identifier_is_the_lease_key_and_echoed() {
        let mut h = H::new();
        let base = rq(MessageType::Discover).opt(opt::CLIENT_ID, &[1, 2, 3, 4, 5, 6, 7]);
        let ack = h.dora(T0, &base);
        assert_eq!(ack.opt(opt::CLIENT_ID), Some(vec![1, 2, 3, 4, 5, 6, 7]));
        // Same client id from another NIC: same lease.
        let mut moved = base.clone();
        moved.chaddr = [2, 0, 0, 0, 0, 0x66];
        moved.src_mac = moved.chaddr;
        assert_eq!(h.send(T0 + 5, &moved).unwrap().yiaddr(), ack.yiaddr());
        let g = h.db.lock(0);
        assert!(g.get(&ClientKey::client_id(&[1, 2, 3, 4, 5, 6, 7])).is_some());
    }

    #[test]
    fn relay_agent_information_is_echoed_verbatim_and_last() {
        let mut h = H::new();
        let info = [1, 8, b'o', b'l', b't', b'9', b'/', b'1', b'/', b'1', 2, 3, b'x', b'y', b'z'];
        let o = h
            .send(
                T0,
                &rq(MessageType::Discover)
                    .opt(opt::RELAY_AGENT_INFO, &info)
                    .relayed_to_us(Ipv4Addr::new(198, 18, 1, 1)),
            )
            .unwrap();
        assert_eq!(o.opt(opt::RELAY_AGENT_INFO), Some(info.to_vec()));
        assert_eq!(o.codes().last(), Some(&opt::RELAY_AGENT_INFO));
    }

    #[test]
    fn circuit_and_remote_id_reservations_are_honoured() {
        let mut h = H::new();
        let relay = Ipv4Addr::new(198, 18, 1, 1);
        let circuit = [1, 8, b'o', b'l', b't', b'1', b'/', b'1', b'/', b'1'];
        let o =
            h.send(T0, &rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &circuit).relayed_to_us(relay)).unwrap();
        assert_eq!(o.yiaddr(), Ipv4Addr::new(198, 18, 1, 10));
        let mut r = rq(MessageType::Discover)
            .opt(opt::RELAY_AGENT_INFO, &[2, 6, b'c', b'p', b'e', b'-', b'4', b'2'])
            .relayed_to_us(relay);
        r.chaddr = [2, 0, 0, 0, 0, 0x67];
        assert_eq!(h.send(T0, &r).unwrap().yiaddr(), Ipv4Addr::new(198, 18, 1, 11));
    }

    #[test]
    fn relays_among_many_subnets_reach_their_own() {
        // 40 relay subnets (more than a scan handles) in reverse order, each with a pool and a
        // circuit-id reservation: every relay's clients get addresses of its own subnet.
        let src: String = (0..40u8)
            .rev()
            .map(|i| {
                format!(
                    "[[subnet]]\nsubnet = \"198.19.{i}.0/24\"\n[[subnet.pool]]\nrange = \"198.19.{i}.100-198.19.{i}.199\"\n\
                     [[subnet.reservation]]\ncircuit-id = \"port{i}\"\nip = \"198.19.{i}.7\"\n"
                )
            })
            .collect();
        let mut h = H::with(&src);
        for i in [0u8, 17, 39] {
            let relay = Ipv4Addr::new(198, 19, i, 1);
            let mut r = rq(MessageType::Discover).relayed_to_us(relay);
            r.chaddr = [2, 0, 0, 0, 2, i];
            let ack = h.dora(T0, &r);
            assert_eq!(ack.yiaddr().octets()[..3], [198, 19, i], "relay {relay}");
            let id = format!("port{i}");
            let circuit = [&[1, id.len() as u8][..], id.as_bytes()].concat();
            let mut c = rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &circuit).relayed_to_us(relay);
            c.chaddr = [2, 0, 0, 0, 3, i];
            assert_eq!(h.send(T0, &c).unwrap().yiaddr(), Ipv4Addr::new(198, 19, i, 7), "circuit port{i}");
        }
        // A direct client: none of these subnets holds our address (198.18.0.1) and none is the
        // only untagged one, so there is no subnet for it; with our own subnet added, that one.
        assert_eq!(h.send(T0, &rq(MessageType::Discover)).unwrap_err(), DropReason::NoSubnet);
        let own = format!(
            "{src}[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.100-198.18.0.109\"\n"
        );
        let mut h = H::with(&own);
        let a = h.send(T0, &rq(MessageType::Discover)).unwrap().yiaddr();
        assert_eq!(a.octets()[..3], [198, 18, 0], "{a}");
    }

    #[test]
    fn link_selection_beats_subnet_selection_beats_giaddr() {
        let mut h = H::new();
        let relay = Ipv4Addr::new(198, 18, 1, 1);
        let ls = [5, 4, 198, 18, 3, 0];
        let r = rq(MessageType::Discover)
            .opt(opt::RELAY_AGENT_INFO, &ls)
            .ip_opt(opt::SUBNET_SELECTION, Ipv4Addr::new(198, 18, 4, 0))
            .relayed_to_us(relay);
        let a = h.send(T0, &r).unwrap().yiaddr();
        assert!(h.cfg.subnets[3].contains(a), "82.5 wins");
        let mut r =
            rq(MessageType::Discover).ip_opt(opt::SUBNET_SELECTION, Ipv4Addr::new(198, 18, 4, 0)).relayed_to_us(relay);
        r.chaddr = [2, 0, 0, 0, 0, 0x68];
        let a = h.send(T0, &r).unwrap().yiaddr();
        assert!(h.cfg.subnets[4].contains(a), "118 beats giaddr");
    }

    #[test]
    fn server_id_override_is_announced_and_accepted() {
        let mut h = H::new();
        let ovr = Ipv4Addr::new(198, 18, 1, 1);
        let info = [11, 4, 198, 18, 1, 1];
        let base = rq(MessageType::Discover).opt(opt::RELAY_AGENT_INFO, &info).relayed_to_us(ovr);
        let o = h.send(T0, &base).unwrap();
        assert_eq!(o.opt(opt::SERVER_ID).map(|v| ip(&v)), Some(ovr));
        let mut r = base.clone();
        r.mtype = Some(MessageType::Request as u8);
        let r = r.ip_opt(opt::REQUESTED_IP, o.yiaddr()).ip_opt(opt::SERVER_ID, ovr);
        assert_eq!(h.send(T0 + 1, &r).unwrap().mtype(), MessageType::Ack);
    }

    #[test]
    fn shared_network_falls_over_to_sibling_subnet() {
        let mut h = H::new();
        let relay = Ipv4Addr::new(198, 18, 2, 1);
        let mut seen = vec![];
        for i in 0..3u8 {
            let mut r = rq(MessageType::Discover).relayed_to_us(relay);
            r.chaddr = [2, 2, 0, 0, 0, i];
            seen.push(h.send(T0, &r).unwrap().yiaddr());
        }
        assert_eq!(seen[0], Ipv4Addr::new(198, 18, 2, 10));
        assert!(h.cfg.subnets[3].contains(seen[1]) && h.cfg.subnets[3].contains(seen[2]), "{seen:?}");
    }

    #[test]
    fn vlan_tags_select_the_subnet_and_routes_are_sent() {
        let mut h = H::new();
        let mut r = rq(MessageType::Discover).opt(opt::PARAMETER_LIST, &[1, 121, 3]);
        r.vlans = vec![100, 20];
        let o = h.send(T0, &r).unwrap();
        assert!(h.cfg.subnets[4].contains(o.yiaddr()));
        assert_eq!(o.f().vlan_ids(), [100, 20], "reply keeps the tags");
        assert_eq!(o.opt(opt::CLASSLESS_ROUTES), Some(vec![16, 198, 19, 198, 18, 4, 1]));
        r.vlans = vec![999];
        assert_eq!(h.send(T0, &r).unwrap_err(), DropReason::NoSubnet);
    }

    #[test]
    fn truncated_and_garbage_frames_never_panic() {
        let mut h = H::new();
        let good = rq(MessageType::Discover).opt(opt::PARAMETER_LIST, &[1, 3, 6]).frame();
        for n in 0..good.len() {
            let mut buf = good[..n].to_vec();
            buf.resize(4096, 0);
            let mut g = h.db.lock(0);
            let (v, _) = h.engine.handle(T0, &h.cfg, &h.server, &mut g, &mut buf, n);
            assert!(matches!(v, Verdict::Drop(_)), "prefix {n} answered");
        }
        // Random bytes behind valid headers: a deterministic xorshift stream.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut f = good.clone();
            let start = 42;
            for b in &mut f[start..] {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x.is_multiple_of(7) {
                    *b = x as u8;
                }
            }
            let n = f.len();
            f.resize(4096, 0);
            let mut g = h.db.lock(0);
            let (v, _) = h.engine.handle(T0, &h.cfg, &h.server, &mut g, &mut f, n);
            if let Verdict::Reply(len) = v {
                let fr = Frame::new_checked(&f[..len]).expect("reply parses");
                assert!(fr.udp_checksum_ok());
                assert!(Message::parse(fr.payload()).is_ok());
            }
        }
    }
}
