//! The AF_XDP DHCP load generator: simulated clients, their exchanges, and a check of every
//! reply.
//!
//! One thread, one AF_XDP socket on queue 0 of the interface (the XDP program, loaded in its
//! generator role, steers every frame from UDP port 67 into it). Client `i` has chaddr
//! `02:<run>:<i as 32 bits>` and uses xid `epoch << 24 | i`, so a reply finds its client and
//! exchange in O(1) and a late reply to an abandoned exchange is recognised as stale.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, HashMap, VecDeque},
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use dhcp_xdp::{
    datapath::{BindModeArg, DatapathConfig, Port},
    ebpf::{Steering, XdpModeArg},
    iface::Interface,
};
use dhcp_xdp_core::{
    dhcp4::{FLAG_BROADCAST, Message, MessageType, OptionWriter, field, opt},
    wire::{FrameLayout, ReplyAddressing, write_ipv4_udp_headers},
};
use hdrhistogram::Histogram;
use serde_json::json;

/// Most clients: the client index lives in the low 24 bits of the xid.
pub const MAX_CLIENTS: u32 = 1 << 24;

/// What each exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// DISCOVER → OFFER → REQUEST → ACK.
    Dora,
    /// DISCOVER → OFFER only.
    Discover,
    /// REQUEST (renewing, unicast with ciaddr) → ACK from clients bound in a preparation phase.
    Renew,
    /// A full DORA followed by a RELEASE.
    Release,
    /// Unbound clients do DORA; bound ones renew (70 %) or release (30 %).
    Mixed,
    /// Every client starts DORA at once (as after a power cut); lost exchanges are retried
    /// until all are bound or the duration ends.
    Avalanche,
}

impl Scenario {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dora => "dora",
            Self::Discover => "discover",
            Self::Renew => "renew",
            Self::Release => "release",
            Self::Mixed => "mixed",
            Self::Avalanche => "avalanche",
        }
    }
}

/// Simulating a relay agent: requests come from `giaddr` with option 82.
#[derive(Debug, Clone, Copy)]
pub struct Relay {
    /// The relay's address (must be on the generator's interface when the server ARPs for it).
    pub giaddr: Ipv4Addr,
    /// The server's address.
    pub server_ip: Ipv4Addr,
    /// The server's hardware address.
    pub server_mac: [u8; 6],
}

/// One run of the generator.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Interface to send and receive on.
    pub iface: String,
    /// What each exchange is.
    pub scenario: Scenario,
    /// Distinct simulated clients.
    pub clients: u32,
    /// Open loop: exchanges started per second. 0: closed loop.
    pub rate: u64,
    /// Closed loop: exchanges outstanding at once.
    pub window: u32,
    /// Measured time.
    pub duration: Duration,
    /// An exchange not completed after this long is a timeout.
    pub timeout: Duration,
    /// Send option 61 (a client identifier unlike the chaddr).
    pub client_id: bool,
    /// Requests come through a simulated relay.
    pub relay: Option<Relay>,
    /// VLAN tags, outer first: (TPID, VLAN ID).
    pub vlans: Vec<(u16, u16)>,
    /// Addresses every OFFER/ACK must fall in (inclusive).
    pub pool: Option<(Ipv4Addr, Ipv4Addr)>,
    /// The server is the echo handler (`--handler reflect`): any BOOTREPLY with the right xid
    /// and chaddr answers, no DHCP checks.
    pub echo: bool,
    /// Second byte of every chaddr: keeps runs against the same server apart.
    pub run_id: u8,
    /// XDP attach mode for the generator's own steering program.
    pub xdp_mode: XdpModeArg,
    /// AF_XDP bind mode.
    pub bind: BindModeArg,
    /// Print a progress line every second (stderr).
    pub progress: bool,
    /// DHCPv6 instead: SOLICIT → ADVERTISE → REQUEST → REPLY with an IA_NA and an IA_PD per
    /// client, from its link-local address to ff02::1:2 (scenarios `dora` and `discover`).
    pub dhcp6: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Phase {
    #[default]
    Idle,
    Discovering,
    Requesting,
    Renewing,
}

#[derive(Debug, Clone, Copy, Default)]
struct Client {
    started_ns: u64,
    /// Address bound by our last ACK (0: none).
    addr: u32,
    /// Address of the OFFER being requested.
    offered: u32,
    phase: Phase,
    epoch: u8,
    /// Exchanges (and restarts) this client began: what a deadline is for. The xid's `epoch`
    /// wraps after 256, well within a timeout at closed-loop rates, so a deadline left from an
    /// earlier exchange must not be taken for the current one's.
    serial: u32,
    /// Transmissions of this exchange so far (an avalanche's retransmission schedule).
    attempt: u8,
    /// Release right after the ACK.
    then_release: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Discover,
    Select,
    Renew,
    /// Releasing this address (the client forgets it when the RELEASE is queued).
    Release(u32),
}

/// What the frame builder needs besides the client.
struct Template {
    mac: [u8; 6],
    vlans: Vec<(u16, u16)>,
    relay: Option<Relay>,
    client_id: bool,
    run_id: u8,
    server_ip: Ipv4Addr,
    server_mac: [u8; 6],
    /// DHCPv6 (see [`GenConfig::dhcp6`]).
    dhcp6: bool,
    /// The DHCPv6 server's DUID, from the first ADVERTISE (a REQUEST names it).
    server_duid: Vec<u8>,
}

/// Counters of a run.
#[derive(Debug, Default, Clone)]
struct Counts {
    started: u64,
    completed: u64,
    offers: u64,
    acks: u64,
    naks: u64,
    timeouts: u64,
    retransmits: u64,
    releases: u64,
    stale: u64,
    sent: u64,
    received: u64,
    not_dhcp: u64,
    no_idle_client: u64,
    /// Open loop: starts that were due while the generator's own transmit queue was full (it
    /// could not put them on the wire in time; not offered, not counted as timeouts).
    unsent: u64,
    /// Answers to leasequeries sent beside the run (by another socket of the rig).
    leasequery_answers: u64,
    failures: BTreeMap<&'static str, u64>,
}

/// The generator's state.
struct Gen {
    cfg: GenConfig,
    tpl: Template,
    clients: Vec<Client>,
    queue: VecDeque<(u32, Out)>,
    /// Exchange deadlines, earliest first (an avalanche's retransmission intervals differ
    /// per client).
    deadlines: BinaryHeap<Reverse<(u64, u32, u32)>>,
    owner: HashMap<u32, u32>,
    outstanding: u32,
    /// Clients holding an address.
    bound: u32,
    cursor: u32,
    /// Next client to bring up in an avalanche or the preparation.
    once_next: u32,
    rng: u64,
    counts: Counts,
    first_failures: Vec<String>,
    latency: Histogram<u64>,
    server_known: bool,
    /// Exchanges of this kind only (renew scenario: renewals, preparation is not measured).
    preparing: bool,
    /// When (ns since the measured run began) 99 % and all of the clients were bound.
    bound_99_ns: Option<u64>,
    bound_all_ns: Option<u64>,
    /// DHCPv6: what each client was advertised (address, prefix, prefix length).
    offered6: Vec<(u128, u128, u8)>,
    /// DHCPv6: who holds each address.
    owner6: HashMap<u128, u32>,
}

/// RFC 2131 §4.1: a client retransmits after 4 s, then 8 s, 16 s, 32 s, and 64 s from then on,
/// each randomised by ±1 s (`jitter` is a random number). In nanoseconds.
pub fn retransmission_delay_ns(attempt: u8, jitter: u64) -> u64 {
    let base = 4_000_000_000u64 << u32::from(attempt.min(4));
    base - 1_000_000_000 + jitter % 2_000_000_001
}

fn chaddr(run: u8, idx: u32) -> [u8; 6] {
    let i = idx.to_be_bytes();
    [0x02, run, i[0], i[1], i[2], i[3]]
}

fn relay_info(idx: u32, run: u8) -> [u8; 14] {
    let c = chaddr(run, idx);
    let circuit = (idx % 4096).to_be_bytes();
    [1, 4, circuit[0], circuit[1], circuit[2], circuit[3], 2, 6, c[0], c[1], c[2], c[3], c[4], c[5]]
}

/// An address for echo runs (never sent to: it only fills option 50 and ciaddr).
fn echo_addr(idx: u32) -> u32 {
    u32::from(Ipv4Addr::new(198, 19, 0, 0)) | (idx & 0xffff)
}

const PRL: [u8; 9] = [1, 3, 6, 15, 28, 51, 54, 58, 59];

/// Client `idx`'s DUID-LL (its chaddr): a reply's client id names the client.
fn duid6(run: u8, idx: u32) -> [u8; 10] {
    let c = chaddr(run, idx);
    [0, 3, 0, 1, c[0], c[1], c[2], c[3], c[4], c[5]]
}

/// The DHCPv6 transaction id of client `idx` in its `epoch`: 24 bits, the epoch above the low
/// 16 bits of the index (the client itself is named by its DUID).
fn xid6(idx: u32, epoch: u8) -> u32 {
    u32::from(epoch) << 16 | (idx & 0xffff)
}

/// Writes the DHCPv6 SOLICIT (`Out::Discover`) or REQUEST (`Out::Select`, naming what was
/// advertised, `hint`) of client `idx`; returns the frame's length (0: not built).
fn build6(buf: &mut [u8], tpl: &Template, idx: u32, c: &Client, out: Out, hint: (u128, u128, u8)) -> usize {
    use dhcp_xdp_core::{
        dhcp6::{IaAddr, IaKind, IaPrefix, Writer, msg, opt},
        wire::{Frame6Layout, Reply6Addressing, write_ipv6_udp_headers},
    };
    let kind = match out {
        Out::Discover => msg::SOLICIT,
        Out::Select => msg::REQUEST,
        _ => return 0,
    };
    let mut l3 = 12;
    for &(tpid, vid) in &tpl.vlans {
        buf[l3..l3 + 2].copy_from_slice(&tpid.to_be_bytes());
        buf[l3 + 2..l3 + 4].copy_from_slice(&vid.to_be_bytes());
        l3 += 4;
    }
    buf[l3..l3 + 2].copy_from_slice(&0x86ddu16.to_be_bytes());
    l3 += 2;
    let payload = l3 + 48;
    let Some(b) = buf.get_mut(payload..) else { return 0 };
    let mut w = Writer::message(b, kind, xid6(idx, c.epoch));
    w.option(opt::CLIENTID, &duid6(tpl.run_id, idx));
    if kind == msg::REQUEST {
        w.option(opt::SERVERID, &tpl.server_duid);
    }
    w.option(opt::ELAPSED_TIME, &[0, 0]);
    w.option(opt::ORO, &[0, 23]);
    w.open_ia(IaKind::Na, 1, 0, 0);
    if kind == msg::REQUEST {
        w.ia_addr(&IaAddr { addr: hint.0.into(), preferred: 0, valid: 0 });
    }
    w.close();
    w.open_ia(IaKind::Pd, 2, 0, 0);
    if kind == msg::REQUEST {
        w.ia_prefix(&IaPrefix { preferred: 0, valid: 0, len: hint.2, prefix: hint.1.into() });
    }
    w.close();
    let Some(n) = w.finish() else { return 0 };
    let ch = chaddr(tpl.run_id, idx);
    let mut ll = [0u8; 16];
    ll[..2].copy_from_slice(&[0xfe, 0x80]);
    ll[10..].copy_from_slice(&ch);
    let layout = Frame6Layout { l3, l4: l3 + 40, payload, payload_len: n };
    let addr = Reply6Addressing {
        dst_mac: [0x33, 0x33, 0, 1, 0, 2],
        src_mac: tpl.mac,
        src_ip: ll.into(),
        dst_ip: "ff02::1:2".parse().unwrap_or(std::net::Ipv6Addr::UNSPECIFIED),
        src_port: 546,
        dst_port: 547,
    };
    write_ipv6_udp_headers(buf, &layout, n, &addr).unwrap_or(0)
}

/// Writes the request `out` of client `idx` into `buf`; returns its length (0 if it does not fit).
fn build(buf: &mut [u8], tpl: &Template, idx: u32, c: &Client, out: Out, hint6: (u128, u128, u8)) -> usize {
    if tpl.dhcp6 {
        return build6(buf, tpl, idx, c, out, hint6);
    }
    let unicast = matches!(out, Out::Renew | Out::Release(_));
    let ciaddr = if let Out::Release(a) = out { a } else { c.addr };
    let mut l3 = 12;
    for &(tpid, vid) in &tpl.vlans {
        buf[l3..l3 + 2].copy_from_slice(&tpid.to_be_bytes());
        buf[l3 + 2..l3 + 4].copy_from_slice(&vid.to_be_bytes());
        l3 += 4;
    }
    buf[l3..l3 + 2].copy_from_slice(&0x0800u16.to_be_bytes());
    l3 += 2;
    let payload = l3 + 28;
    let b = &mut buf[payload..];
    if b.len() < 548 {
        return 0;
    }
    b[..field::OPTIONS].fill(0);
    b[field::OP] = 1;
    b[field::HTYPE] = 1;
    b[field::HLEN] = 6;
    let xid = u32::from(c.epoch) << 24 | idx;
    b[field::XID].copy_from_slice(&xid.to_be_bytes());
    let ch = chaddr(tpl.run_id, idx);
    b[field::CHADDR][..6].copy_from_slice(&ch);
    let relayed = tpl.relay.filter(|_| !unicast);
    if let Some(r) = relayed {
        b[field::HOPS] = 1;
        b[field::GIADDR].copy_from_slice(&r.giaddr.octets());
    } else if !unicast {
        b[field::FLAGS].copy_from_slice(&FLAG_BROADCAST.to_be_bytes());
    }
    if unicast {
        b[field::CIADDR].copy_from_slice(&ciaddr.to_be_bytes());
    }
    b[field::MAGIC].copy_from_slice(&dhcp_xdp_core::dhcp4::MAGIC_COOKIE);
    let mut w = OptionWriter::new(b, field::OPTIONS, 548);
    let ty = match out {
        Out::Discover => MessageType::Discover,
        Out::Select | Out::Renew => MessageType::Request,
        Out::Release(_) => MessageType::Release,
    };
    let mut ok = w.put(opt::MESSAGE_TYPE, &[ty as u8]);
    if tpl.client_id {
        let i = idx.to_be_bytes();
        ok &= w.put(opt::CLIENT_ID, &[0, b'g', tpl.run_id, i[0], i[1], i[2], i[3]]);
    }
    match out {
        Out::Select => {
            ok &= w.put(opt::REQUESTED_IP, &c.offered.to_be_bytes());
            ok &= w.put(opt::SERVER_ID, &tpl.server_ip.octets());
        }
        Out::Release(_) => ok &= w.put(opt::SERVER_ID, &tpl.server_ip.octets()),
        Out::Discover | Out::Renew => {}
    }
    if !matches!(out, Out::Release(_)) {
        ok &= w.put(opt::PARAMETER_LIST, &PRL);
    }
    if relayed.is_some() {
        ok &= w.put(opt::RELAY_AGENT_INFO, &relay_info(idx, tpl.run_id));
    }
    if !ok {
        return 0;
    }
    let payload_len = w.finish(300);
    let (src_ip, dst_ip, src_port, dst_mac) = match (relayed, unicast) {
        (Some(r), _) => (r.giaddr, r.server_ip, 67, r.server_mac),
        (None, true) => (Ipv4Addr::from(ciaddr), tpl.server_ip, 68, tpl.server_mac),
        (None, false) => (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, 68, [0xff; 6]),
    };
    let layout = FrameLayout { vlan_tags: tpl.vlans.len() as u8, l3, l4: l3 + 20, payload, payload_len };
    let addr = ReplyAddressing { dst_mac, src_mac: tpl.mac, src_ip, dst_ip, src_port, dst_port: 67 };
    write_ipv4_udp_headers(buf, &layout, payload_len, &addr).unwrap_or(0)
}

impl Gen {
    fn now_ns(t0: Instant) -> u64 {
        t0.elapsed().as_nanos() as u64
    }

    fn fail(&mut self, what: &'static str, detail: impl FnOnce() -> String) {
        *self.counts.failures.entry(what).or_default() += 1;
        if self.first_failures.len() < 10 {
            self.first_failures.push(format!("{what}: {}", detail()));
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Starts the next exchange of an idle client; false when every client is busy.
    fn start_one(&mut self, now: u64) -> bool {
        let n = self.cfg.clients;
        let scenario = if self.preparing { Scenario::Dora } else { self.cfg.scenario };
        // An avalanche (and the preparation) brings every client up once, in index order;
        // lost exchanges are retried by `expire`.
        let once = self.preparing || scenario == Scenario::Avalanche;
        let mut tries = if once { 1 } else { self.outstanding.min(n - 1) + 1 };
        while tries > 0 {
            tries -= 1;
            if once && self.once_next >= n {
                return false;
            }
            let idx = if once { self.once_next } else { self.cursor };
            if once {
                self.once_next += 1;
            } else {
                self.cursor = if self.cursor + 1 == n { 0 } else { self.cursor + 1 };
            }
            let bound = self.clients[idx as usize].addr != 0;
            if self.clients[idx as usize].phase != Phase::Idle || (once && bound) {
                continue;
            }
            let out = match scenario {
                Scenario::Renew if bound => Out::Renew,
                Scenario::Mixed if bound => {
                    if self.random() % 10 < 7 {
                        Out::Renew
                    } else {
                        Out::Release(self.clients[idx as usize].addr)
                    }
                }
                _ => Out::Discover,
            };
            let c = &mut self.clients[idx as usize];
            c.epoch = c.epoch.wrapping_add(1);
            c.serial = c.serial.wrapping_add(1);
            c.started_ns = now;
            c.then_release = scenario == Scenario::Release;
            self.counts.started += 1;
            match out {
                Out::Release(_) => {
                    // No reply to wait for: the exchange is the RELEASE itself.
                    self.release(idx);
                    self.counts.completed += 1;
                    return true;
                }
                Out::Renew => c.phase = Phase::Renewing,
                _ => c.phase = Phase::Discovering,
            }
            c.attempt = 0;
            let serial = c.serial;
            self.outstanding += 1;
            let wait = self.wait_ns(0);
            self.deadlines.push(Reverse((now + wait, idx, serial)));
            self.queue.push_back((idx, out));
            return true;
        }
        false
    }

    /// How long an exchange's transmission `attempt` waits for its answer: the RFC 2131
    /// schedule in an avalanche, the fixed timeout otherwise.
    fn wait_ns(&mut self, attempt: u8) -> u64 {
        if self.cfg.scenario == Scenario::Avalanche && !self.preparing {
            let jitter = self.random();
            retransmission_delay_ns(attempt, jitter)
        } else {
            self.cfg.timeout.as_nanos() as u64
        }
    }

    /// A client starts over with a DISCOVER and a new transaction id (after silence or a NAK),
    /// as its transmission `attempt`.
    fn restart(&mut self, idx: u32, now: u64, attempt: u8) {
        let c = &mut self.clients[idx as usize];
        c.epoch = c.epoch.wrapping_add(1);
        c.serial = c.serial.wrapping_add(1);
        c.phase = Phase::Discovering;
        c.attempt = attempt;
        let serial = c.serial;
        let wait = self.wait_ns(attempt);
        self.deadlines.push(Reverse((now + wait, idx, serial)));
        self.queue.push_back((idx, Out::Discover));
    }

    fn finish(&mut self, idx: u32) {
        self.clients[idx as usize].phase = Phase::Idle;
        self.outstanding -= 1;
    }

    /// Queues a RELEASE of the client's address and forgets the address.
    fn release(&mut self, idx: u32) {
        let addr = self.clients[idx as usize].addr;
        self.queue.push_back((idx, Out::Release(addr)));
        self.counts.releases += 1;
        self.unbind(idx);
    }

    fn bind(&mut self, idx: u32, addr: u32) {
        let c = &mut self.clients[idx as usize];
        if c.addr == 0 {
            self.bound += 1;
        }
        c.addr = addr;
    }

    fn unbind(&mut self, idx: u32) {
        let c = &mut self.clients[idx as usize];
        if c.addr != 0 {
            self.bound -= 1;
            if self.owner.get(&c.addr) == Some(&idx) {
                self.owner.remove(&c.addr);
            }
        }
        c.addr = 0;
    }

    fn expire(&mut self, now: u64) {
        while let Some(&Reverse((deadline, idx, serial))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            let c = self.clients[idx as usize];
            if c.serial != serial || c.phase == Phase::Idle {
                continue;
            }
            if self.cfg.scenario == Scenario::Avalanche || self.preparing {
                // A real client retries: start over with a new transaction, waiting longer.
                self.counts.retransmits += 1;
                self.restart(idx, now, c.attempt.saturating_add(1));
            } else {
                self.counts.timeouts += 1;
                self.finish(idx);
            }
        }
    }

    /// Checks one received DHCPv6 frame (ADVERTISE or REPLY) and moves its client on.
    fn on_frame6(&mut self, frame: &[u8], now: u64) {
        use dhcp_xdp_core::{
            dhcp6::{Message as Message6, msg},
            wire::Frame6Layout,
        };
        let Ok(layout) = Frame6Layout::parse(frame) else {
            self.counts.not_dhcp += 1;
            return;
        };
        let Ok(m) = Message6::parse(&frame[layout.payload..layout.payload + layout.payload_len]) else {
            self.fail("malformed reply", || format!("{} bytes", frame.len()));
            return;
        };
        let Some(cid) = m.client_id().filter(|c| c.len() == 10 && c[..4] == [0, 3, 0, 1] && c[5] == self.cfg.run_id)
        else {
            self.fail("reply without our client id", || format!("type {}", m.kind()));
            return;
        };
        let idx = u32::from_be_bytes([cid[6], cid[7], cid[8], cid[9]]);
        if idx >= self.cfg.clients {
            self.fail("unknown client", || format!("client {idx}"));
            return;
        }
        let c = self.clients[idx as usize];
        if m.transaction_id() != xid6(idx, c.epoch) || c.phase == Phase::Idle {
            self.counts.stale += 1;
            return;
        }
        let na = m.ia_nas().find_map(|ia| ia.addresses().next()).map(|a| u128::from(a.addr));
        let pd = m.ia_pds().find_map(|ia| ia.prefixes().next()).map(|p| (u128::from(p.prefix), p.len));
        let (Some(addr), Some((prefix, len))) = (na, pd) else {
            self.fail("an IA without its address or prefix", || format!("client {idx}, type {}", m.kind()));
            return self.finish(idx);
        };
        match (c.phase, m.kind()) {
            (Phase::Discovering, msg::ADVERTISE) => {
                self.counts.offers += 1;
                if !self.server_known
                    && let Some(sid) = m.server_id()
                {
                    self.tpl.server_duid = sid.to_vec();
                    self.server_known = true;
                }
                if self.cfg.scenario == Scenario::Discover && !self.preparing {
                    return self.complete(idx, now);
                }
                self.offered6[idx as usize] = (addr, prefix, len);
                self.clients[idx as usize].phase = Phase::Requesting;
                self.queue.push_back((idx, Out::Select));
            }
            (Phase::Requesting, msg::REPLY) => {
                self.counts.acks += 1;
                let (a, p, _) = self.offered6[idx as usize];
                if (addr, prefix) != (a, p) {
                    self.fail("REPLY for another address or prefix than requested", || format!("client {idx}"));
                    return self.finish(idx);
                }
                if let Some(&other) = self.owner6.get(&addr)
                    && other != idx
                {
                    self.fail("address bound to two clients", || {
                        format!("{} to clients {other} and {idx}", std::net::Ipv6Addr::from(addr))
                    });
                    return self.finish(idx);
                }
                self.owner6.insert(addr, idx);
                // `addr` marks a bound client (the v4 field; any non-zero value).
                self.bind(idx, 1);
                self.complete(idx, now);
            }
            (phase, ty) => {
                self.fail("unexpected message type", || format!("client {idx} in {phase:?} got DHCPv6 {ty}"));
                self.finish(idx);
            }
        }
    }

    /// Checks one received frame and moves its client on.
    fn on_frame(&mut self, frame: &[u8], now: u64) {
        self.counts.received += 1;
        if self.tpl.dhcp6 {
            return self.on_frame6(frame, now);
        }
        let Ok(layout) = FrameLayout::parse(frame) else {
            self.counts.not_dhcp += 1;
            return;
        };
        let Some(bootp) = frame.get(layout.payload..layout.payload + layout.payload_len) else {
            self.counts.not_dhcp += 1;
            return;
        };
        let Ok(m) = Message::parse(bootp) else {
            self.fail("malformed reply", || format!("{} bytes", frame.len()));
            return;
        };
        if m.op() != dhcp_xdp_core::dhcp4::BOOTREPLY {
            self.counts.not_dhcp += 1;
            return;
        }
        if let Some(&[t]) = m.single(dhcp_xdp_core::dhcp4::opt::MESSAGE_TYPE)
            && (dhcp_xdp_core::leasequery::LEASEUNASSIGNED..=dhcp_xdp_core::leasequery::LEASEACTIVE).contains(&t)
        {
            // An answer to the leasequeries sent beside this run (bench compare's dhcp-xdp-lq).
            self.counts.leasequery_answers += 1;
            return;
        }
        let xid = m.xid();
        let (idx, epoch) = (xid & (MAX_CLIENTS - 1), (xid >> 24) as u8);
        if idx >= self.cfg.clients {
            self.fail("unknown xid", || format!("xid {xid:#x}"));
            return;
        }
        if m.chaddr6() != chaddr(self.cfg.run_id, idx) {
            self.fail("chaddr does not match xid", || format!("xid {xid:#x} chaddr {:02x?}", m.chaddr6()));
            return;
        }
        let c = self.clients[idx as usize];
        if c.epoch != epoch || c.phase == Phase::Idle {
            self.counts.stale += 1;
            return;
        }
        let tags_ok = {
            let mut at = 12;
            self.tpl.vlans.iter().all(|&(tpid, vid)| {
                let ok = frame[at..at + 2] == tpid.to_be_bytes() && frame[at + 2..at + 4] == vid.to_be_bytes();
                at += 4;
                ok
            }) && usize::from(layout.vlan_tags) == self.tpl.vlans.len()
        };
        if !tags_ok {
            self.fail("VLAN tags differ from the request's", || format!("client {idx}"));
            return self.finish(idx);
        }
        if self.cfg.echo {
            return self.on_echo(idx, c, now);
        }
        if self.tpl.relay.is_some() && c.phase != Phase::Renewing {
            let mut scratch = [0u8; 64];
            if m.option(opt::RELAY_AGENT_INFO, &mut scratch) != Some(&relay_info(idx, self.cfg.run_id)[..]) {
                self.fail("option 82 not echoed", || format!("client {idx}"));
                return self.finish(idx);
            }
        }
        let ty = m.message_type();
        let yiaddr = u32::from(m.yiaddr());
        match (c.phase, ty) {
            (Phase::Discovering, Some(MessageType::Offer)) => {
                self.counts.offers += 1;
                if !self.offer_or_ack_ok(&m, idx) {
                    return self.finish(idx);
                }
                if !self.server_known {
                    // Unicast renewals and releases go to the server that answered.
                    if let Some(sid) = m.ip_option(opt::SERVER_ID) {
                        self.tpl.server_ip = sid;
                        self.tpl.server_mac.copy_from_slice(&frame[6..12]);
                        self.server_known = true;
                    }
                }
                if self.cfg.scenario == Scenario::Discover && !self.preparing {
                    self.complete(idx, now);
                } else {
                    let c = &mut self.clients[idx as usize];
                    c.offered = yiaddr;
                    c.phase = Phase::Requesting;
                    self.queue.push_back((idx, Out::Select));
                }
            }
            (Phase::Requesting | Phase::Renewing, Some(MessageType::Ack)) => {
                self.counts.acks += 1;
                if !self.offer_or_ack_ok(&m, idx) {
                    return self.finish(idx);
                }
                let expected = if c.phase == Phase::Requesting { c.offered } else { c.addr };
                if yiaddr != expected {
                    self.fail("ACK for another address than requested", || {
                        format!("client {idx}: asked {} got {}", Ipv4Addr::from(expected), Ipv4Addr::from(yiaddr))
                    });
                    return self.finish(idx);
                }
                if let Some(&other) = self.owner.get(&yiaddr)
                    && other != idx
                    && self.clients[other as usize].addr == yiaddr
                {
                    self.fail("address bound to two clients", || {
                        format!("{} to clients {other} and {idx}", Ipv4Addr::from(yiaddr))
                    });
                    return self.finish(idx);
                }
                if c.addr != yiaddr {
                    self.unbind(idx);
                }
                self.owner.insert(yiaddr, idx);
                self.bind(idx, yiaddr);
                if c.then_release && !self.preparing {
                    self.release(idx);
                }
                self.complete(idx, now);
            }
            (Phase::Requesting | Phase::Renewing, Some(MessageType::Nak)) => {
                self.counts.naks += 1;
                self.unbind(idx);
                if self.cfg.scenario == Scenario::Avalanche && !self.preparing {
                    // RFC 2131 §3.1: a NAKed client restarts with a new DISCOVER.
                    self.restart(idx, now, 0);
                } else {
                    self.finish(idx);
                }
            }
            (phase, ty) => {
                self.fail("unexpected message type", || format!("client {idx} in {phase:?} got {ty:?}"));
                self.finish(idx);
            }
        }
    }

    fn on_echo(&mut self, idx: u32, c: Client, now: u64) {
        let scenario = if self.preparing { Scenario::Dora } else { self.cfg.scenario };
        match c.phase {
            Phase::Discovering if scenario != Scenario::Discover => {
                self.counts.offers += 1;
                let c = &mut self.clients[idx as usize];
                c.offered = echo_addr(idx);
                c.phase = Phase::Requesting;
                self.queue.push_back((idx, Out::Select));
            }
            Phase::Discovering => {
                self.counts.offers += 1;
                self.complete(idx, now);
            }
            Phase::Requesting | Phase::Renewing => {
                self.counts.acks += 1;
                self.bind(idx, echo_addr(idx));
                if c.then_release && !self.preparing {
                    self.release(idx);
                }
                self.complete(idx, now);
            }
            Phase::Idle => {}
        }
    }

    fn offer_or_ack_ok(&mut self, m: &Message<'_>, idx: u32) -> bool {
        let yiaddr = m.yiaddr();
        if let Some((first, last)) = self.cfg.pool
            && !(first..=last).contains(&yiaddr)
        {
            self.fail("address outside the pool", || format!("client {idx} got {yiaddr}"));
            return false;
        }
        for code in [opt::SERVER_ID, opt::LEASE_TIME, opt::SUBNET_MASK] {
            if !m.has(code) {
                self.fail("required option missing", || format!("client {idx}: option {code}"));
                return false;
            }
        }
        true
    }

    fn complete(&mut self, idx: u32, now: u64) {
        let started = self.clients[idx as usize].started_ns;
        if !self.preparing {
            self.counts.completed += 1;
            let _ = self.latency.record(now.saturating_sub(started).max(1));
        }
        self.finish(idx);
    }
}

/// The outcome of a run, as JSON.
pub type GenResult = serde_json::Value;

/// Runs the generator as `cfg` says and returns its result.
pub fn run(cfg: GenConfig) -> anyhow::Result<GenResult> {
    if cfg.clients == 0 || cfg.clients > MAX_CLIENTS {
        bail!("--clients must be 1..={MAX_CLIENTS}");
    }
    if cfg.vlans.len() > 2 {
        bail!("at most two VLAN tags");
    }
    if cfg.dhcp6 && (cfg.echo || cfg.relay.is_some() || !matches!(cfg.scenario, Scenario::Dora | Scenario::Discover)) {
        bail!("--dhcp6 runs the dora or discover scenario, directly (no relay, no echo)");
    }
    let iface = Interface::lookup(&cfg.iface)?;
    let mut steering = Steering::attach_role(iface.index, cfg.xdp_mode, 0, dhcp_xdp_common::role::GENERATOR)
        .context("attaching the generator's XDP program")?;
    let dp = DatapathConfig { frames_per_queue: 16384, fill_size: 8192, ring_size: 4096, ..DatapathConfig::default() };
    let mut port = Port::open(&cfg.iface, 0, cfg.bind, dp)?;
    steering.insert_socket(0, 0, port.fd())?;
    steering.set_queue_sockets(0, 1)?;

    let (server_ip, server_mac) =
        cfg.relay.map(|r| (r.server_ip, r.server_mac)).unwrap_or((Ipv4Addr::BROADCAST, [0xff; 6]));
    let tpl = Template {
        mac: iface.mac,
        vlans: cfg.vlans.clone(),
        relay: cfg.relay,
        client_id: cfg.client_id,
        run_id: cfg.run_id,
        server_ip,
        server_mac,
        dhcp6: cfg.dhcp6,
        server_duid: vec![],
    };
    let mut g = Gen {
        clients: vec![Client::default(); cfg.clients as usize],
        queue: VecDeque::with_capacity(4096),
        deadlines: BinaryHeap::with_capacity(4096),
        owner: HashMap::with_capacity(cfg.clients as usize),
        outstanding: 0,
        bound: 0,
        cursor: 0,
        once_next: 0,
        rng: 0x9e37_79b9_7f4a_7c15 ^ u64::from(cfg.run_id),
        counts: Counts::default(),
        first_failures: vec![],
        latency: Histogram::new_with_bounds(1, 60_000_000_000, 3).context("histogram")?,
        server_known: cfg.relay.is_some(),
        preparing: cfg.scenario == Scenario::Renew,
        bound_99_ns: None,
        bound_all_ns: None,
        offered6: if cfg.dhcp6 { vec![(0, 0, 0); cfg.clients as usize] } else { vec![] },
        owner6: HashMap::new(),
        tpl,
        cfg,
    };

    let cpu0 = cpu_seconds();
    if g.preparing {
        let t = Instant::now();
        drive(&mut g, &mut port, Duration::from_secs(120), true)?;
        let bound = g.bound;
        if g.cfg.progress {
            eprintln!(
                "bench: preparation bound {bound} of {} clients in {:.1} s",
                g.cfg.clients,
                t.elapsed().as_secs_f64()
            );
        }
        if bound == 0 {
            bail!("preparation bound no client: is the server answering?");
        }
        g.preparing = false;
        g.once_next = 0;
        g.counts = Counts::default();
        g.first_failures.clear();
        g.latency.reset();
    }
    let cpu1 = cpu_seconds();
    let duration = g.cfg.duration;
    let elapsed = drive(&mut g, &mut port, duration, false)?;
    let cpu2 = cpu_seconds();
    let kernel = port.kernel_stats();
    let xdp: Vec<String> = steering.counters()?.values().iter().map(|(n, v)| format!("xdp_{n}={v}")).collect();
    let xdp = xdp.join(" ");
    let c = &g.counts;
    let secs = elapsed.as_secs_f64();
    let h = &g.latency;
    let q = |p: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(p) as f64 / 1000.0 };
    let failures: u64 = c.failures.values().sum();
    Ok(json!({
        "scenario": g.cfg.scenario.name(),
        "mode": if g.cfg.rate == 0 { "closed" } else { "open" },
        "offered_rate": g.cfg.rate,
        "window": g.cfg.window,
        "clients": g.cfg.clients,
        "duration_s": secs,
        "started": c.started,
        "completed": c.completed,
        "exchanges_per_s": c.completed as f64 / secs,
        "offers": c.offers,
        "acks": c.acks,
        "naks": c.naks,
        "releases": c.releases,
        "timeouts": c.timeouts,
        "retransmits": c.retransmits,
        "stale_replies": c.stale,
        "frames_sent": c.sent,
        "frames_received": c.received,
        "not_dhcp_frames": c.not_dhcp,
        "no_idle_client": c.no_idle_client,
        "unsent": c.unsent,
        "leasequery_answers": c.leasequery_answers,
        "check_failures": failures,
        "failures_by_check": c.failures,
        "first_failures": g.first_failures,
        "bound_clients": g.bound,
        "bound_99_percent_s": g.bound_99_ns.map(|n| n as f64 / 1e9),
        "bound_all_s": g.bound_all_ns.map(|n| n as f64 / 1e9),
        "latency_us": { "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": h.max() as f64 / 1000.0, "samples": h.len() },
        "generator_cpu_s": cpu2 - cpu1,
        "preparation_cpu_s": cpu1 - cpu0,
        "bind_mode": port.mode.to_string(),
        "xsk": kernel,
        "xdp": xdp,
        "bad_descriptors": port.bad_descriptors,
    }))
}

/// This process's user + system CPU seconds.
pub fn cpu_seconds() -> f64 {
    let r = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF);
    r.map(|r| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(r.user_time()) + t(r.system_time())
    })
    .unwrap_or(0.0)
}

/// Open loop: frames the generator's transmit queue may hold before a start that is due is
/// given up (counted as unsent). Without a bound, a generator that cannot send as fast as it
/// starts (it shares two vCPUs with the server) queues new DISCOVERs, and the REQUESTs behind
/// them, for seconds: every exchange then times out in the generator, not in the server, and
/// a server that is merely slower than the offered rate looks collapsed. 2 048 frames are a few
/// milliseconds of the rig's rate.
const OPEN_LOOP_QUEUE: usize = 2048;

/// Runs the loop for `duration` (then waits up to the timeout for what is outstanding);
/// `until_bound` ends it early when every client is bound (preparation). Returns the time
/// measured.
fn drive(g: &mut Gen, port: &mut Port, duration: Duration, until_bound: bool) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let end = duration.as_nanos() as u64;
    let timeout = g.cfg.timeout.as_nanos() as u64;
    let interval = 1_000_000_000u64.checked_div(g.cfg.rate).unwrap_or(0);
    let mut next_start = 0u64;
    let mut next_progress = 1_000_000_000u64;
    let mut last_completed = 0u64;
    let avalanche = g.cfg.scenario == Scenario::Avalanche && !g.preparing;
    let bound_target = if until_bound || avalanche { g.cfg.clients } else { u32::MAX };
    let mut stopped_at = None;
    loop {
        let now = Gen::now_ns(t0);
        if stopped_at.is_none() && (now >= end || g.bound >= bound_target) {
            stopped_at = Some(now);
        }
        g.expire(now);
        let running = stopped_at.is_none();
        if running {
            if until_bound || avalanche || g.cfg.rate == 0 {
                // An avalanche has every client outstanding at once, as fast as the ring takes them.
                let window = if avalanche { g.cfg.clients } else { g.cfg.window };
                while g.outstanding < window && g.queue.len() < 4096 {
                    if !g.start_one(now) {
                        break;
                    }
                }
            } else {
                let mut burst = 0;
                while next_start <= now && burst < 1024 {
                    if g.queue.len() >= OPEN_LOOP_QUEUE {
                        g.counts.unsent += 1;
                    } else if !g.start_one(now) {
                        g.counts.no_idle_client += 1;
                    }
                    next_start += interval;
                    burst += 1;
                }
                if next_start + 1_000_000_000 < now {
                    // More than a second behind: the generator itself is the limit.
                    next_start = now;
                }
            }
        }
        let Gen { queue, clients, tpl, counts, offered6, .. } = g;
        let sent = port.send(queue.len().min(256), |buf| {
            let (idx, out) = queue.pop_front()?;
            let hint6 = offered6.get(idx as usize).copied().unwrap_or_default();
            let n = build(buf, tpl, idx, &clients[idx as usize], out, hint6);
            (n > 0).then_some(n)
        });
        counts.sent += sent as u64;
        let got = port.recv(256, |frame| g.on_frame(frame, now));
        if avalanche {
            // How long it took the clients to be bound.
            if g.bound_99_ns.is_none() && u64::from(g.bound) * 100 >= u64::from(g.cfg.clients) * 99 {
                g.bound_99_ns = Some(now);
            }
            if g.bound_all_ns.is_none() && g.bound >= g.cfg.clients {
                g.bound_all_ns = Some(now);
            }
        }
        if let Some(stop) = stopped_at
            && ((g.outstanding == 0 && g.queue.is_empty()) || now > stop + timeout)
        {
            if g.cfg.progress {
                eprintln!();
            }
            return Ok(Duration::from_nanos(stop));
        }
        if sent == 0 && got == 0 {
            let wait = if running && interval > 0 {
                Duration::from_nanos(next_start.saturating_sub(now).min(1_000_000))
            } else {
                Duration::from_millis(1)
            };
            if g.queue.is_empty() || port.tx_room() == 0 {
                port.wait_rx(wait.max(Duration::from_micros(1)));
            }
        }
        if g.cfg.progress && now >= next_progress {
            let c = &g.counts;
            eprint!(
                "\rbench: {:>4.0} s  {:>9} exchanges ({:>8}/s)  offers {} acks {} naks {} timeouts {} failures {}   ",
                now as f64 / 1e9,
                c.completed,
                c.completed - last_completed,
                c.offers,
                c.acks,
                c.naks,
                c.timeouts,
                c.failures.values().sum::<u64>()
            );
            last_completed = c.completed;
            next_progress += 1_000_000_000;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::retransmission_delay_ns;

    #[test]
    fn retransmissions_follow_rfc_2131() {
        let s = 1_000_000_000u64;
        for (attempt, base) in [(0u8, 4), (1, 8), (2, 16), (3, 32), (4, 64), (5, 64), (200, 64)] {
            for jitter in [0, 1, 999_999_999, 1_000_000_000, 2_000_000_000, u64::MAX] {
                let d = retransmission_delay_ns(attempt, jitter);
                assert!((base - 1) * s <= d && d <= (base + 1) * s, "attempt {attempt}: {d} ns outside {base} s ± 1 s");
            }
        }
        assert_ne!(retransmission_delay_ns(0, 7), retransmission_delay_ns(0, 1_234_567_890), "randomised");
    }
}
