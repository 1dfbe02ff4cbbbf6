//! The DHCPv6 server (RFC 8415), sans-IO: a to-server message (direct, or inside any number of
//! Relay-Forw layers) in, the reply out (wrapped in the matching Relay-Repl layers), the lease
//! table changed through [`Table6`] and the changes left there for the caller to make durable.
//!
//! - SOLICIT → ADVERTISE, or REPLY when the client asks for Rapid Commit and the subnet allows
//!   it; REQUEST → REPLY; RENEW and REBIND extend (or re-create, when the address is free and
//!   on the link); RELEASE and DECLINE; CONFIRM says whether the addresses are on the link;
//!   INFORMATION-REQUEST gets the configured options.
//! - IA_NA and IA_PD, several per message, each with its own status when it gets nothing
//!   (NoAddrsAvail, NoPrefixAvail, NoBinding); T1/T2 and lifetimes from the subnet.
//! - The subnet: a relay's interface-id, else its link address; a direct client is on the
//!   link of one of the server's addresses (or the only subnet without an interface-id).
//! - Reservations by DUID, or by the relay's remote-id, subscriber-id or interface-id.
//!
//! Not supported yet: Reconfigure, IA_TA, authentication, unicast option.

use std::net::Ipv6Addr;

use crate::{
    config::{Config, Reservation6, Reservation6Key, Subnet6},
    dhcp6::{Ia, IaAddr, IaKind, IaPrefix, Message, Relayed, Writer, msg, opt, status},
    leases::{
        Tags,
        v6::{Ask6, Bind6Error, Key6, Lease6State, Table6},
    },
    verdict::DropReason,
};

/// What the engine counts per message, beside the drop reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter6 {
    RxSolicit,
    RxRequest,
    RxConfirm,
    RxRenew,
    RxRebind,
    RxRelease,
    RxDecline,
    RxInformationRequest,
    /// Messages that came through at least one relay.
    RxRelayed,
    TxAdvertise,
    TxReply,
    /// IAs answered without an address / prefix / binding.
    NoAddrsAvail,
    NoPrefixAvail,
    NoBinding,
    /// CONFIRMs answered NotOnLink.
    NotOnLink,
    /// IAs refused because their DUID holds `[limits] leases-per-duid` already.
    OverLimit,
    /// Addresses a DECLINE named that were not taken out of use: the subnet has
    /// `[limits] declined-percent` of its addresses on probation already.
    DeclineRefused,
}

impl Counter6 {
    /// Number of counters.
    pub const COUNT: usize = 17;
    /// Every counter, in slot order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::RxSolicit,
        Self::RxRequest,
        Self::RxConfirm,
        Self::RxRenew,
        Self::RxRebind,
        Self::RxRelease,
        Self::RxDecline,
        Self::RxInformationRequest,
        Self::RxRelayed,
        Self::TxAdvertise,
        Self::TxReply,
        Self::NoAddrsAvail,
        Self::NoPrefixAvail,
        Self::NoBinding,
        Self::NotOnLink,
        Self::OverLimit,
        Self::DeclineRefused,
    ];

    /// Its slot.
    pub const fn slot(self) -> usize {
        self as usize
    }

    /// Its name in statistics (Kea's `pkt6-…` where Kea has one).
    pub const fn name(self) -> &'static str {
        match self {
            Self::RxSolicit => "pkt6-solicit-received",
            Self::RxRequest => "pkt6-request-received",
            Self::RxConfirm => "pkt6-confirm-received",
            Self::RxRenew => "pkt6-renew-received",
            Self::RxRebind => "pkt6-rebind-received",
            Self::RxRelease => "pkt6-release-received",
            Self::RxDecline => "pkt6-decline-received",
            Self::RxInformationRequest => "pkt6-infrequest-received",
            Self::RxRelayed => "pkt6-relayed-received",
            Self::TxAdvertise => "pkt6-advertise-sent",
            Self::TxReply => "pkt6-reply-sent",
            Self::NoAddrsAvail => "v6-ia-na-no-addrs-avail",
            Self::NoPrefixAvail => "v6-ia-pd-no-prefix-avail",
            Self::NoBinding => "v6-ia-no-binding",
            Self::NotOnLink => "v6-confirm-not-on-link",
            Self::OverLimit => "v6-over-limit",
            Self::DeclineRefused => "v6-decline-refused",
        }
    }
}

/// Counts of one batch (or one message), by [`Counter6`] slot.
pub type Counts6 = [u64; Counter6::COUNT];

/// Who the server is on this link.
#[derive(Debug, Clone)]
pub struct Server6 {
    /// Its DUID (option 2), kept in the state across restarts.
    pub duid: Vec<u8>,
    /// Its global IPv6 addresses on the served interface (a direct client's link).
    pub addrs: Vec<Ipv6Addr>,
}

/// How long an ADVERTISE holds what it offers (s).
pub const ADVERTISE_HOLD: u32 = 30;
/// Probation of a declined address (s).
pub const DECLINE_PROBATION: u32 = 86_400;

/// The DHCPv6 engine of one worker: scratch lists reused from message to message.
#[derive(Debug, Default)]
pub struct Engine6 {
    hints: Vec<(Ipv6Addr, u8)>,
    reserved: Vec<(Ipv6Addr, u8)>,
}

/// The subnet of a message: the nearest relay's interface-id, else its link address (not
/// link-local or unspecified); for a direct client, the subnet of one of our addresses, else the
/// only subnet without an interface-id.
pub fn select_subnet<'c>(cfg: &'c Config, relayed: &Relayed<'_>, server: &Server6) -> Option<&'c Subnet6> {
    if let Some(hop) = relayed.first_relay() {
        if let Some(iid) = hop.interface_id()
            && let Some(s) = cfg.subnets6.iter().find(|s| s.interface_id.as_deref() == Some(iid))
        {
            return Some(s);
        }
        let link = hop.link;
        if link.is_unspecified() || link.is_unicast_link_local() {
            return None;
        }
        return cfg.subnets6.iter().find(|s| s.contains(link));
    }
    if let Some(s) = server.addrs.iter().find_map(|a| cfg.subnets6.iter().find(|s| s.contains(*a))) {
        return Some(s);
    }
    let mut plain = cfg.subnets6.iter().filter(|s| s.interface_id.is_none());
    plain.next().filter(|_| plain.next().is_none())
}

/// The reservation of this client in `subnet`: by DUID, else by what a relay says of its line
/// (remote-id, subscriber-id, interface-id; the relay nearest the client first).
fn reservation<'c>(subnet: &'c Subnet6, duid: &[u8], relayed: &Relayed<'_>) -> Option<&'c Reservation6> {
    let hops = || relayed.hops().rev();
    subnet.reservations.iter().find(|r| match &r.key {
        Reservation6Key::Duid(d) => d == duid,
        Reservation6Key::RemoteId(id) => hops().any(|h| h.options.find(opt::REMOTE_ID) == Some(id)),
        Reservation6Key::SubscriberId(id) => hops().any(|h| h.subscriber_id() == Some(id)),
        Reservation6Key::InterfaceId(id) => hops().any(|h| h.interface_id() == Some(id)),
    })
}

/// A writer for the reply of `kind` to the message in `relayed`: inside Relay-Repl layers
/// mirroring its Relay-Forw layers.
fn reply_writer<'b>(out: &'b mut [u8], relayed: &Relayed<'_>, kind: u8, xid: u32) -> Writer<'b> {
    let mut hops = relayed.hops();
    match hops.next() {
        None => Writer::message(out, kind, xid),
        Some(first) => {
            let mut w = Writer::relay_reply(out, first);
            for h in hops {
                w.relay_layer(h);
            }
            w.inner_message(kind, xid);
            w
        }
    }
}

fn count(counts: &mut Counts6, c: Counter6) {
    counts[c.slot()] += 1;
}

impl Engine6 {
    /// A new engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers the DHCPv6 message `req` (the UDP payload) into `out`: the reply's length, or
    /// why there is none. Lease changes stay in `table` for the caller to drain.
    #[allow(clippy::too_many_arguments)]
    pub fn handle(
        &mut self,
        now: u32,
        cfg: &Config,
        server: &Server6,
        table: &mut Table6,
        req: &[u8],
        out: &mut [u8],
        counts: &mut Counts6,
    ) -> Result<usize, DropReason> {
        let relayed = Relayed::parse(req).map_err(|_| DropReason::Malformed)?;
        let m = relayed.message;
        if relayed.first_relay().is_some() {
            count(counts, Counter6::RxRelayed);
        }
        let rx = match m.kind() {
            msg::SOLICIT => Counter6::RxSolicit,
            msg::REQUEST => Counter6::RxRequest,
            msg::CONFIRM => Counter6::RxConfirm,
            msg::RENEW => Counter6::RxRenew,
            msg::REBIND => Counter6::RxRebind,
            msg::RELEASE => Counter6::RxRelease,
            msg::DECLINE => Counter6::RxDecline,
            msg::INFORMATION_REQUEST => Counter6::RxInformationRequest,
            _ => return Err(DropReason::NotRequest),
        };
        count(counts, rx);
        // RFC 8415 §16: which messages must, or must not, carry a client and a server id.
        let client = m.client_id();
        let ours = m.server_id().map(|s| s == server.duid.as_slice());
        let has_ia = m.options().any(|(c, _)| matches!(c, opt::IA_NA | opt::IA_TA | opt::IA_PD));
        let valid = match m.kind() {
            msg::SOLICIT | msg::REBIND | msg::CONFIRM => client.is_some() && ours.is_none(),
            msg::REQUEST | msg::RENEW | msg::RELEASE | msg::DECLINE => client.is_some() && ours.is_some(),
            _ => ours != Some(false) && !has_ia,
        };
        if ours == Some(false) {
            return Err(DropReason::OtherServer);
        }
        // A DUID is 2 bytes of type and at most 128 of identifier (RFC 8415 §11.1).
        if !valid || client.is_some_and(|c| c.len() < 3 || c.len() > crate::records::MAX_DUID) {
            return Err(DropReason::Malformed);
        }
        // Cluster mode: a client that did not name this server is another node's unless its
        // DUID's bucket is ours (one that names us chose us, as a v4 unicast renewal does).
        if ours.is_none()
            && let Some(c) = client
            && !table.serves_client(c)
        {
            return Err(DropReason::OtherBucket);
        }
        let subnet = select_subnet(cfg, &relayed, server);
        let xid = m.transaction_id();
        match m.kind() {
            msg::INFORMATION_REQUEST => {
                let mut w = reply_writer(out, &relayed, msg::REPLY, xid);
                if let Some(c) = client {
                    w.option(opt::CLIENTID, c);
                }
                w.option(opt::SERVERID, &server.duid);
                if let Some(s) = subnet {
                    requested_options(&mut w, &m, s);
                }
                count(counts, Counter6::TxReply);
                w.finish().ok_or(DropReason::NoRoom)
            }
            msg::CONFIRM => {
                let Some(s) = subnet else { return Err(DropReason::NoSubnet) };
                let mut addrs: Vec<Ipv6Addr> = vec![];
                for ia in m.ia_nas() {
                    addrs.extend(ia.addresses().map(|a| a.addr));
                }
                if addrs.is_empty() {
                    // §18.3.3: nothing to confirm, no reply.
                    return Err(DropReason::Silent);
                }
                let on_link = addrs.iter().all(|a| s.contains(*a));
                let mut w = reply_writer(out, &relayed, msg::REPLY, xid);
                w.option(opt::CLIENTID, client.unwrap_or_default());
                w.option(opt::SERVERID, &server.duid);
                if on_link {
                    w.status(status::SUCCESS, "all addresses are on this link");
                } else {
                    count(counts, Counter6::NotOnLink);
                    w.status(status::NOT_ON_LINK, "an address is not on this link");
                }
                count(counts, Counter6::TxReply);
                w.finish().ok_or(DropReason::NoRoom)
            }
            kind => {
                let Some(s) = subnet else { return Err(DropReason::NoSubnet) };
                let duid = client.unwrap_or_default();
                let resv = reservation(s, duid, &relayed);
                let rapid = kind == msg::SOLICIT && m.rapid_commit() && s.rapid_commit;
                let reply_kind = if kind == msg::SOLICIT && !rapid { msg::ADVERTISE } else { msg::REPLY };
                let mut w = reply_writer(out, &relayed, reply_kind, xid);
                w.option(opt::CLIENTID, duid);
                w.option(opt::SERVERID, &server.duid);
                let (tags, relay) = line_tags(&relayed);
                let limits = Limits6 {
                    per_duid: cfg.limits.leases_per_duid,
                    per_line: (cfg.limits.leases_per_circuit, cfg.limits.leases_per_remote_id),
                    declined_percent: cfg.limits.declined_percent,
                    tags,
                    relay,
                };
                // One copy of the DUID for the message, shared by its IAs' keys.
                let key_duid: std::sync::Arc<[u8]> = std::sync::Arc::from(duid);
                for ia in m.ia_nas().chain(m.ia_pds()) {
                    self.ia(now, s, table, &mut w, (kind, rapid), &key_duid, &ia, resv, limits, counts);
                }
                match kind {
                    msg::RELEASE => w.status(status::SUCCESS, "released"),
                    msg::DECLINE => w.status(status::SUCCESS, "declined"),
                    _ => {}
                }
                if rapid {
                    w.option(opt::RAPID_COMMIT, &[]);
                }
                if let (msg::ADVERTISE, Some(p)) = (reply_kind, s.preference) {
                    w.option(opt::PREFERENCE, &[p]);
                }
                requested_options(&mut w, &m, s);
                count(counts, if reply_kind == msg::ADVERTISE { Counter6::TxAdvertise } else { Counter6::TxReply });
                w.finish().ok_or(DropReason::NoRoom)
            }
        }
    }

    /// One IA of a SOLICIT, REQUEST, RENEW, REBIND, RELEASE or DECLINE, answered into `w`.
    #[allow(clippy::too_many_arguments)]
    fn ia(
        &mut self,
        now: u32,
        s: &Subnet6,
        table: &mut Table6,
        w: &mut Writer<'_>,
        (kind, rapid): (u8, bool),
        duid: &std::sync::Arc<[u8]>,
        ia: &Ia<'_>,
        resv: Option<&Reservation6>,
        limits: Limits6,
        counts: &mut Counts6,
    ) {
        let Limits6 { per_duid: max_per_duid, per_line: max_per_line, declined_percent, tags, relay } = limits;
        let key = Key6 { kind: ia.kind, subnet: s.id, duid: duid.clone(), iaid: ia.iaid };
        self.hints.clear();
        match ia.kind {
            IaKind::Na => self.hints.extend(ia.addresses().map(|a| (a.addr, 128))),
            IaKind::Pd => self.hints.extend(ia.prefixes().map(|p| (p.prefix, p.len))),
        }
        self.reserved.clear();
        if let Some(r) = resv {
            match ia.kind {
                IaKind::Na => self.reserved.extend(r.addresses.iter().map(|a| (*a, 128))),
                IaKind::Pd => self.reserved.extend(r.prefixes.iter().copied()),
            }
        }
        let unavailable = match ia.kind {
            IaKind::Na => (status::NO_ADDRS_AVAIL, Counter6::NoAddrsAvail, "no addresses available"),
            IaKind::Pd => (status::NO_PREFIX_AVAIL, Counter6::NoPrefixAvail, "no prefixes available"),
        };
        let ask =
            Ask6 { key: &key, hints: &self.hints, reserved: &self.reserved, max_per_duid, tags, relay, max_per_line };
        match kind {
            msg::SOLICIT | msg::REQUEST => {
                let commit = kind == msg::REQUEST || rapid;
                match table.bind(s, ask, commit, ADVERTISE_HOLD, now) {
                    Ok(l) => {
                        w.open_ia(ia.kind, ia.iaid, s.t1, s.t2);
                        grant(w, ia.kind, l.addr, l.len, l.preferred, l.valid);
                        w.close();
                    }
                    Err(Bind6Error::OverLimit) => {
                        count(counts, Counter6::OverLimit);
                        ia_status(w, ia, unavailable.0, "this client holds as many leases as it may");
                    }
                    Err(Bind6Error::NoneAvailable) => {
                        count(counts, unavailable.1);
                        ia_status(w, ia, unavailable.0, unavailable.2);
                    }
                }
            }
            msg::RENEW | msg::REBIND => {
                let held = table.get(&key).filter(|l| l.state != Lease6State::Declined);
                let lease = match held.map(|l| (l.addr, l.len)) {
                    Some((a, l)) if self.reserved.is_empty() || self.reserved.contains(&(a, l)) => {
                        table.extend(s, &key, a, l, now)
                    }
                    _ => {
                        // Re-created only on what the client names (a server that lost its
                        // state), or a reservation; never a new address it did not ask for.
                        if self.hints.is_empty() && self.reserved.is_empty() {
                            None
                        } else {
                            table.bind(s, ask, true, 0, now).ok().filter(|l| {
                                self.reserved.contains(&(l.addr, l.len)) || self.hints.iter().any(|h| h.0 == l.addr)
                            })
                        }
                    }
                };
                match lease {
                    Some(l) => {
                        w.open_ia(ia.kind, ia.iaid, s.t1, s.t2);
                        grant(w, ia.kind, l.addr, l.len, l.preferred, l.valid);
                        for &(a, len) in self.hints.iter().filter(|h| h.0 != l.addr) {
                            grant(w, ia.kind, a, len, 0, 0);
                        }
                        w.close();
                    }
                    None if kind == msg::REBIND && !self.hints.is_empty() => {
                        // §18.3.5: what it names is not its own here: lifetimes 0.
                        w.open_ia(ia.kind, ia.iaid, 0, 0);
                        for &(a, len) in &self.hints {
                            grant(w, ia.kind, a, len, 0, 0);
                        }
                        w.close();
                    }
                    None => no_binding(w, ia, counts),
                }
            }
            msg::RELEASE | msg::DECLINE => {
                let mut done = false;
                // At most `declined-percent` of the subnet's addresses on probation: a client
                // that declines everything cannot empty the pools.
                let room = |t: &Table6| {
                    u64::from(t.declined(s.id, IaKind::Na)) * 100 < s.capacity(IaKind::Na) * u64::from(declined_percent)
                };
                for &(a, len) in &self.hints {
                    done |= if kind == msg::RELEASE {
                        table.release(&key, a, len)
                    } else if ia.kind == IaKind::Na && table.get(&key).is_some_and(|l| l.addr == a) && !room(table) {
                        count(counts, Counter6::DeclineRefused);
                        ia_status(w, ia, status::UNSPEC_FAIL, "too many addresses of this link are declined");
                        return;
                    } else {
                        ia.kind == IaKind::Na && table.decline(&key, a, DECLINE_PROBATION, now)
                    };
                }
                if !done {
                    no_binding(w, ia, counts);
                }
            }
            _ => {}
        }
    }
}

/// What limits one message's IAs: the quotas in force and the subscriber line it came on.
#[derive(Debug, Clone, Copy)]
struct Limits6 {
    per_duid: u32,
    /// Per interface-id, per remote-id.
    per_line: (u32, u32),
    declined_percent: u32,
    tags: Tags,
    /// The tag of the relay id of the relay nearest the client that gives one (0: none).
    relay: u32,
}

/// The subscriber line of a relayed message: the interface-id and the remote-id the relay
/// nearest the client (or the nearest one that has it) added, hashed as option 82's are; and
/// the tag of the relay id (option 53) of the nearest relay that gives one.
fn line_tags(relayed: &Relayed<'_>) -> (Tags, u32) {
    let circuit = relayed.hops().rev().find_map(|h| h.interface_id()).map_or(0, Tags::of);
    let remote = relayed.hops().rev().find_map(|h| h.options.find(opt::REMOTE_ID)).map_or(0, Tags::of);
    let relay =
        relayed.hops().rev().find_map(|h| h.options.find(crate::leasequery6::opt::RELAY_ID)).map_or(0, Tags::of);
    (Tags { circuit, remote }, relay)
}

/// The IA answered with no lease and a status code (T1 and T2 0).
fn ia_status(w: &mut Writer<'_>, ia: &Ia<'_>, code: u16, message: &str) {
    w.open_ia(ia.kind, ia.iaid, 0, 0);
    w.status(code, message);
    w.close();
}

fn no_binding(w: &mut Writer<'_>, ia: &Ia<'_>, counts: &mut Counts6) {
    count(counts, Counter6::NoBinding);
    ia_status(w, ia, status::NO_BINDING, "no binding for this IA");
}

fn grant(w: &mut Writer<'_>, kind: IaKind, addr: Ipv6Addr, len: u8, preferred: u32, valid: u32) {
    match kind {
        IaKind::Na => w.ia_addr(&IaAddr { addr, preferred, valid }),
        IaKind::Pd => w.ia_prefix(&IaPrefix { preferred, valid, len, prefix: addr }),
    }
}

/// The configured options the client asks for in its ORO (DNS servers, domain search list).
fn requested_options(w: &mut Writer<'_>, m: &Message<'_>, s: &Subnet6) {
    for code in m.requested() {
        match code {
            opt::DNS_SERVERS if !s.dns_servers.is_empty() => {
                w.open(opt::DNS_SERVERS);
                for a in &s.dns_servers {
                    w.value(&a.octets());
                }
                w.close();
            }
            opt::DOMAIN_LIST if !s.domain_search.is_empty() => w.option(opt::DOMAIN_LIST, &s.domain_search),
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "engine6_tests.rs"]
mod tests;
