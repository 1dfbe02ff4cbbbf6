//! The DHCPv4 server engine: pure and deterministic. Given the time, the configuration, the
//! server's identity, a locked lease shard and a request frame, it rewrites the frame into the
//! reply (RFC 2131 / 2132) or returns why there is none.
//!
//! It performs no I/O, reads no clock and allocates nothing per packet: the few request bytes it
//! needs while overwriting the frame are copied into fixed scratch arrays.
//!
//! - [`request`]: what the engine copies out of a request before it overwrites the frame.
//! - [`decide`]: subnet selection and the RFC 2131 decision (offer, ack, nak, silence).
//! - [`reply`]: the reply written in place, §4.1 addressing, headers and checksums.
//! - [`blocks`]: the cache of encoded option blocks per (scope, parameter request list).

use std::net::Ipv4Addr;

use crate::{
    config::{BootpPolicy, Config, RenderedOptions, Subnet},
    dhcp4::{self, FLAG_BROADCAST, Message, MessageError, MessageType, OptionWriter, field, opt, relay},
    leases::{Attr, ClientKey, LeaseError, LeaseState, ShardGuard, Tags},
    net::Ipv4Net,
    verdict::{DropReason, Verdict},
    wire::{self, Frame, ReplyAddressing},
};

mod blocks;
mod classes;
mod decide;
mod reply;
mod request;
#[cfg(test)]
mod tests;

use blocks::OptionBlocks;

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

    /// Our server identifier toward `peer` (a relay, a leasequery requester): the one the
    /// subnet holding it announces to its clients ([`Engine::server_id`]'s rule), else the
    /// configured one, else the interface's first address.
    pub fn id_facing(&self, cfg: &Config, peer: Ipv4Addr) -> Ipv4Addr {
        match cfg.subnet_of(peer) {
            Some(i) => Engine::server_id(cfg, self, &cfg.subnets[i]),
            None => cfg.server_id.unwrap_or_else(|| self.primary()),
        }
    }
}

/// The message counters of one engine, by name: what came in, the client state of a REQUEST
/// (RFC 2131 §4.3.2), what went out. The discriminant is the counter's slot in an array of
/// [`MsgCounter::COUNT`]; the name comes from the variant, so reordering cannot mislabel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum MsgCounter {
    /// DISCOVER received.
    RxDiscover,
    /// REQUEST received.
    RxRequest,
    /// DECLINE received.
    RxDecline,
    /// RELEASE received.
    RxRelease,
    /// INFORM received.
    RxInform,
    /// BOOTP request (no option 53) received.
    RxBootp,
    /// OFFER sent.
    TxOffer,
    /// ACK with a lease sent.
    TxAck,
    /// NAK sent.
    TxNak,
    /// BOOTP reply sent.
    TxBootp,
    /// ACK to an INFORM sent.
    TxInformAck,
    /// Anything else that reached the engine (malformed, not a request).
    RxOther,
    /// REQUEST in SELECTING state (option 54 present).
    RxRequestSelecting,
    /// REQUEST in INIT-REBOOT state (no server id, no ciaddr).
    RxRequestInitReboot,
    /// REQUEST in RENEWING state (ciaddr, unicast).
    RxRequestRenewing,
    /// REQUEST in REBINDING state (ciaddr, broadcast).
    RxRequestRebinding,
}

impl MsgCounter {
    /// Number of counters.
    pub const COUNT: usize = 16;
    /// Every counter, in slot order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::RxDiscover,
        Self::RxRequest,
        Self::RxDecline,
        Self::RxRelease,
        Self::RxInform,
        Self::RxBootp,
        Self::TxOffer,
        Self::TxAck,
        Self::TxNak,
        Self::TxBootp,
        Self::TxInformAck,
        Self::RxOther,
        Self::RxRequestSelecting,
        Self::RxRequestInitReboot,
        Self::RxRequestRenewing,
        Self::RxRequestRebinding,
    ];

    /// The counter's slot in an array of [`COUNT`](Self::COUNT).
    pub const fn slot(self) -> usize {
        self as usize
    }

    /// The name printed in statistics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::RxDiscover => "rx_discover",
            Self::RxRequest => "rx_request",
            Self::RxDecline => "rx_decline",
            Self::RxRelease => "rx_release",
            Self::RxInform => "rx_inform",
            Self::RxBootp => "rx_bootp",
            Self::TxOffer => "tx_offer",
            Self::TxAck => "tx_ack",
            Self::TxNak => "tx_nak",
            Self::TxBootp => "tx_bootp",
            Self::TxInformAck => "tx_inform_ack",
            Self::RxOther => "rx_other",
            Self::RxRequestSelecting => "rx_request_selecting",
            Self::RxRequestInitReboot => "rx_request_init_reboot",
            Self::RxRequestRenewing => "rx_request_renewing",
            Self::RxRequestRebinding => "rx_request_rebinding",
        }
    }
}

/// What happened to one message, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// What came in.
    pub rx: MsgCounter,
    /// For a REQUEST, the client state it was sent in.
    pub state: Option<MsgCounter>,
    /// What went out, if anything.
    pub tx: Option<MsgCounter>,
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
    /// The name the client of an ACKed REQUEST gives (see [`dhcp4::client_name`]).
    name: [u8; crate::leases::MAX_ATTR],
    /// The length of the name the lease of the last message ACKed keeps (0: none).
    kept: usize,
    blocks: OptionBlocks,
    /// The shard the last request must be decided in instead (see [`Engine::take_redirect`]).
    redirect: Option<usize>,
    /// Client classes: the request's, and the options composed for them.
    cls: classes::ClassState,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

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
            name: [0; crate::leases::MAX_ATTR],
            kept: 0,
            blocks: OptionBlocks::new(),
            cls: classes::ClassState::default(),
            redirect: None,
        }
    }

    /// The host name the lease of the message just handled keeps, when it was an ACKed REQUEST
    /// whose client gave one (the forensic log's `hostname`).
    pub fn kept_name(&self) -> Option<&[u8]> {
        (self.kept > 0).then(|| &self.name[..self.kept])
    }

    /// After a [`DropReason::Redirected`]: the shard whose lock the caller must take to decide
    /// that frame (call [`handle`](Self::handle) again with it; the frame is unchanged).
    pub fn take_redirect(&mut self) -> Option<usize> {
        self.redirect.take()
    }

    /// Handles one frame: `buf[..len]` is the request; the reply is written into `buf`. When
    /// the client's record belongs to another shard the verdict is
    /// `Drop(Redirected)` and [`take_redirect`](Self::take_redirect) names the shard; nothing
    /// was changed.
    pub fn handle(
        &mut self,
        now: u32,
        cfg: &Config,
        server: &ServerIdentity,
        shard: &mut ShardGuard<'_>,
        buf: &mut [u8],
        len: usize,
    ) -> (Verdict, Outcome) {
        let other = Outcome { rx: MsgCounter::RxOther, state: None, tx: None };
        self.kept = 0;
        let Some(req_bytes) = buf.get(..len) else {
            return (Verdict::Drop(DropReason::Malformed), other);
        };
        let frame = match Frame::new_checked(req_bytes) {
            Ok(f) if f.ipv4_checksum_ok() && f.dst_port() == dhcp_xdp_common::DHCP_SERVER_PORT => f,
            _ => return (Verdict::Drop(DropReason::Malformed), other),
        };
        let layout = frame.layout();
        let (src_mac, vlans, to_broadcast) = (frame.src_mac(), frame.vlan_ids(), frame.dst_ip().is_broadcast());
        let src_port = frame.src_port();
        // Matched by reference: moving a parsed message out of its `Result` costs a copy
        // that stalls on store forwarding.
        let parsed = Message::parse(frame.payload());
        let msg = match &parsed {
            Ok(m) => m,
            Err(MessageError::BadHlen) => return (Verdict::Drop(DropReason::BadHlen), other),
            Err(_) => return (Verdict::Drop(DropReason::Malformed), other),
        };
        if msg.op() != dhcp4::BOOTREQUEST {
            return (Verdict::Drop(DropReason::NotRequest), other);
        }
        let mut req = self.extract(msg);
        let rx = match req.mtype {
            Some(MessageType::Discover) => MsgCounter::RxDiscover,
            Some(MessageType::Request) => MsgCounter::RxRequest,
            Some(MessageType::Decline) => MsgCounter::RxDecline,
            Some(MessageType::Release) => MsgCounter::RxRelease,
            Some(MessageType::Inform) => MsgCounter::RxInform,
            None if msg.single(opt::MESSAGE_TYPE) == Some(&[crate::leasequery::LEASEQUERY][..]) => {
                return (Verdict::Drop(DropReason::LeaseQuery), other);
            }
            None if msg.has(opt::MESSAGE_TYPE) => return (Verdict::Drop(DropReason::Malformed), other),
            None => MsgCounter::RxBootp,
            Some(_) => return (Verdict::Drop(DropReason::NotRequest), other),
        };
        // RFC 2131 §4.3.2: the client state a REQUEST was sent in.
        let state = (req.mtype == Some(MessageType::Request)).then(|| {
            if req.server_id.is_some() {
                MsgCounter::RxRequestSelecting
            } else if req.ciaddr.is_unspecified() {
                MsgCounter::RxRequestInitReboot
            } else if to_broadcast {
                MsgCounter::RxRequestRebinding
            } else {
                MsgCounter::RxRequestRenewing
            }
        });
        let out = |tx| Outcome { rx, state, tx };
        // Relay fields are a relay's word: honoured only from a trusted relay, ignored from a
        // client (RFC 3046 §2.1, RFC 3527 §4, RFC 5107 §5).
        let relayed = !req.giaddr.is_unspecified();
        if relayed {
            if src_port != dhcp_xdp_common::DHCP_SERVER_PORT
                || server.is_ours(req.giaddr)
                || !cfg.relay_trusted(req.giaddr)
            {
                return (Verdict::Drop(DropReason::UntrustedRelay), out(None));
            }
        } else {
            req.link_selection = None;
            req.subnet_selection = None;
            req.server_id_override = None;
        }
        let Some(subnet) = self.select_subnet(cfg, server, &req, vlans) else {
            return (Verdict::Drop(DropReason::NoSubnet), out(None));
        };
        if !relayed && !cfg.subnets[subnet].trust_direct_option82 {
            // Option 82 from a directly attached client: nobody inserted it for us. Ignored
            // (no reservation or quota by it) and not echoed.
            self.relay_len = 0;
            self.circuit = (0, 0);
            self.remote = (0, 0);
        }
        if cfg.classes.is_empty() {
            self.cls.now = crate::classify::Classes::default();
        } else {
            self.classify(cfg, msg, &req, subnet);
        }
        let decided = self.decide(now, cfg, server, shard, &req, subnet);
        let answer = match &decided {
            Ok(a) => a,
            Err(reason) => return (Verdict::Drop(*reason), out(None)),
        };
        if matches!(answer, Answer::Ack { .. }) && req.mtype == Some(MessageType::Request) {
            let named = msg.has(opt::HOSTNAME) || msg.has(opt::CLIENT_FQDN) || shard.has_attr(Attr::Name);
            let relayed = self.relay_len > 0 || shard.has_attr(Attr::RelayInfo);
            if named || relayed {
                self.keep_attrs(cfg, msg, &req, subnet, shard, named, relayed);
            }
        }
        let tx = match answer {
            Answer::Offer { .. } => MsgCounter::TxOffer,
            Answer::Ack { .. } => MsgCounter::TxAck,
            Answer::Nak { .. } => MsgCounter::TxNak,
            Answer::Bootp { .. } => MsgCounter::TxBootp,
            Answer::InformAck { .. } => MsgCounter::TxInformAck,
        };
        match self.write_reply(cfg, server, &req, answer, buf, &layout, src_mac) {
            Some(n) => (Verdict::Reply(n), out(Some(tx))),
            None => (Verdict::Drop(DropReason::NoRoom), out(None)),
        }
    }
}

impl Engine {
    /// What the lease of an ACKed REQUEST keeps beside it: the name the client gives (or its
    /// lack), as Kea's does, and the option 82 its relay added, for leasequery (none when too
    /// long to keep whole). Out of line: most renewals have neither.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn keep_attrs(
        &mut self,
        cfg: &Config,
        msg: &Message<'_>,
        req: &Req,
        subnet: usize,
        shard: &mut ShardGuard<'_>,
        named: bool,
        relayed: bool,
    ) {
        let key = self.key(req, cfg.subnets[subnet].lease_scope);
        if named {
            let n = dhcp4::client_name(msg, &mut self.scratch, &mut self.name);
            shard.set_attr(Attr::Name, &key, &self.name[..n]);
            self.kept = n.min(crate::leases::MAX_ATTR);
        }
        if relayed {
            let n = if self.relay_len <= crate::leases::MAX_ATTR { self.relay_len } else { 0 };
            shard.set_attr(Attr::RelayInfo, &key, &self.relay[..n]);
        }
    }
}
