//! Zero-copy view of a DHCPv6 message (RFC 8415 §8, §9) and its options: client/server
//! messages, relay messages (Relay-Forw/Relay-Repl, nested up to [`MAX_HOPS`]) and the options
//! a server reads (client and server identifiers, IA_NA, IA_PD and their addresses and
//! prefixes, the option request option, elapsed time, rapid commit, interface-id, remote-id,
//! subscriber-id, status code).
//!
//! [`Message::parse`] checks the header and walks the options once; [`Relayed::parse`] peels the
//! relay layers off a to-server message and keeps each hop's link and peer address,
//! interface-id and remote-id (what chooses the subnet and keys a subscriber line);
//! [`Writer`] writes a reply (nested options, Relay-Repl layers with the interface-id echoed)
//! into a fixed buffer. Nothing allocates; no accessor can panic on any input (fuzzed by the
//! property tests against the `dhcproto` crate's v6 side).

use std::net::Ipv6Addr;

/// Message types (RFC 8415 §7.3).
pub mod msg {
    pub const SOLICIT: u8 = 1;
    pub const ADVERTISE: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const CONFIRM: u8 = 4;
    pub const RENEW: u8 = 5;
    pub const REBIND: u8 = 6;
    pub const REPLY: u8 = 7;
    pub const RELEASE: u8 = 8;
    pub const DECLINE: u8 = 9;
    pub const RECONFIGURE: u8 = 10;
    pub const INFORMATION_REQUEST: u8 = 11;
    pub const RELAY_FORW: u8 = 12;
    pub const RELAY_REPL: u8 = 13;
    /// RFC 5007.
    pub const LEASEQUERY: u8 = 14;
}

/// Option codes (RFC 8415 §21 and the relay options).
pub mod opt {
    pub const CLIENTID: u16 = 1;
    pub const SERVERID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_TA: u16 = 4;
    pub const IAADDR: u16 = 5;
    pub const ORO: u16 = 6;
    pub const PREFERENCE: u16 = 7;
    pub const ELAPSED_TIME: u16 = 8;
    pub const RELAY_MSG: u16 = 9;
    pub const STATUS_CODE: u16 = 13;
    pub const RAPID_COMMIT: u16 = 14;
    pub const USER_CLASS: u16 = 15;
    pub const VENDOR_CLASS: u16 = 16;
    pub const VENDOR_OPTS: u16 = 17;
    pub const INTERFACE_ID: u16 = 18;
    pub const DNS_SERVERS: u16 = 23;
    pub const DOMAIN_LIST: u16 = 24;
    pub const IA_PD: u16 = 25;
    pub const IAPREFIX: u16 = 26;
    /// RFC 4649.
    pub const REMOTE_ID: u16 = 37;
    /// RFC 4580.
    pub const SUBSCRIBER_ID: u16 = 38;
    /// RFC 4704.
    pub const CLIENT_FQDN: u16 = 39;
}

/// Status codes (RFC 8415 §21.13).
pub mod status {
    pub const SUCCESS: u16 = 0;
    pub const UNSPEC_FAIL: u16 = 1;
    pub const NO_ADDRS_AVAIL: u16 = 2;
    pub const NO_BINDING: u16 = 3;
    pub const NOT_ON_LINK: u16 = 4;
    pub const USE_MULTICAST: u16 = 5;
    pub const NO_PREFIX_AVAIL: u16 = 6;
}

/// Most relay layers a to-server message may carry (RFC 8415 §7.6 HOP_COUNT_LIMIT).
pub const MAX_HOPS: usize = 8;

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its fixed header.
    Short,
    /// An option's length runs past the end of its enclosing field.
    BadOption,
    /// A relay message without a Relay Message option, or nested deeper than [`MAX_HOPS`].
    BadRelay,
    /// A relay message where a client's was expected, or the other way round.
    WrongKind,
}

/// The options of one field (a message's, an IA's, a relay's): `(code, data)` in order.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// The options in `field`, checked whole: every option's length lies inside it.
    pub fn parse(field: &'a [u8]) -> Result<Self, Error> {
        let mut rest = field;
        while !rest.is_empty() {
            let (_, _, after) = split_option(rest).ok_or(Error::BadOption)?;
            rest = after;
        }
        Ok(Self { rest: field })
    }

    /// The first option `code`'s data.
    pub fn find(&self, code: u16) -> Option<&'a [u8]> {
        self.filter(|(c, _)| *c == code).map(|(_, d)| d).next()
    }

    /// Every option `code`'s data, in order.
    pub fn all(&self, code: u16) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.filter(move |(c, _)| *c == code).map(|(_, d)| d)
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (code, data, rest) = split_option(self.rest)?;
        self.rest = rest;
        Some((code, data))
    }
}

/// The option at the start of `b`: its code, its data, what follows.
fn split_option(b: &[u8]) -> Option<(u16, &[u8], &[u8])> {
    let code = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
    let len = usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]));
    let data = b.get(4..4 + len)?;
    Some((code, data, &b[4 + len..]))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn addr_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let o: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(o))
}

/// A client/server message (every type but the relay ones).
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    bytes: &'a [u8],
    options: Options<'a>,
}

impl<'a> Message<'a> {
    /// Checks the header (type, 3-byte transaction id) and the options.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let kind = *bytes.first().ok_or(Error::Short)?;
        if bytes.len() < 4 {
            return Err(Error::Short);
        }
        if kind == msg::RELAY_FORW || kind == msg::RELAY_REPL {
            return Err(Error::WrongKind);
        }
        Ok(Self { bytes, options: Options::parse(&bytes[4..])? })
    }

    /// The message type.
    pub fn kind(&self) -> u8 {
        self.bytes[0]
    }

    /// The transaction id (24 bits).
    pub fn transaction_id(&self) -> u32 {
        u32::from_be_bytes([0, self.bytes[1], self.bytes[2], self.bytes[3]])
    }

    /// The options.
    pub fn options(&self) -> Options<'a> {
        self.options
    }

    /// The client's DUID (option 1).
    pub fn client_id(&self) -> Option<&'a [u8]> {
        self.options.find(opt::CLIENTID)
    }

    /// The server's DUID the client names (option 2).
    pub fn server_id(&self) -> Option<&'a [u8]> {
        self.options.find(opt::SERVERID)
    }

    /// Whether the client asks for a two-message exchange (option 14).
    pub fn rapid_commit(&self) -> bool {
        self.options.find(opt::RAPID_COMMIT).is_some()
    }

    /// Elapsed time in hundredths of a second (option 8).
    pub fn elapsed(&self) -> Option<u16> {
        self.options.find(opt::ELAPSED_TIME).and_then(|d| u16_at(d, 0))
    }

    /// The option codes the client asks for (option 6), in order.
    pub fn requested(&self) -> impl Iterator<Item = u16> + 'a {
        let oro = self.options.find(opt::ORO).unwrap_or_default();
        oro.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
    }

    /// The IA_NA options (several per message), each whole.
    pub fn ia_nas(&self) -> impl Iterator<Item = Ia<'a>> + 'a {
        self.options.all(opt::IA_NA).filter_map(|d| Ia::parse(IaKind::Na, d))
    }

    /// The IA_PD options, each whole.
    pub fn ia_pds(&self) -> impl Iterator<Item = Ia<'a>> + 'a {
        self.options.all(opt::IA_PD).filter_map(|d| Ia::parse(IaKind::Pd, d))
    }
}

/// Which kind of identity association.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IaKind {
    /// Non-temporary addresses.
    Na,
    /// Delegated prefixes.
    Pd,
}

/// An IA_NA or IA_PD: its IAID, T1, T2 and sub-options.
#[derive(Debug, Clone, Copy)]
pub struct Ia<'a> {
    /// The kind.
    pub kind: IaKind,
    /// The client's identifier of this IA.
    pub iaid: u32,
    /// T1 and T2 as the client suggests them (seconds; 0: the server's choice).
    pub t1: u32,
    pub t2: u32,
    /// Its options (IAADDR or IAPREFIX, status code).
    pub options: Options<'a>,
}

impl<'a> Ia<'a> {
    /// The IA in an option's `data`, or `None` when it is short or its options are not whole.
    pub fn parse(kind: IaKind, data: &'a [u8]) -> Option<Self> {
        Some(Self {
            kind,
            iaid: u32_at(data, 0)?,
            t1: u32_at(data, 4)?,
            t2: u32_at(data, 8)?,
            options: Options::parse(data.get(12..)?).ok()?,
        })
    }

    /// The addresses (IA_NA) the client names, with the lifetimes it suggests.
    pub fn addresses(&self) -> impl Iterator<Item = IaAddr> + 'a {
        self.options.all(opt::IAADDR).filter_map(IaAddr::parse)
    }

    /// The prefixes (IA_PD) the client names, with the lifetimes and lengths it suggests.
    pub fn prefixes(&self) -> impl Iterator<Item = IaPrefix> + 'a {
        self.options.all(opt::IAPREFIX).filter_map(IaPrefix::parse)
    }
}

/// An IA Address option's fixed part (RFC 8415 §21.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaAddr {
    pub addr: Ipv6Addr,
    pub preferred: u32,
    pub valid: u32,
}

impl IaAddr {
    fn parse(d: &[u8]) -> Option<Self> {
        Some(Self { addr: addr_at(d, 0)?, preferred: u32_at(d, 16)?, valid: u32_at(d, 20)? })
    }
}

/// An IA Prefix option's fixed part (RFC 8415 §21.22).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaPrefix {
    pub preferred: u32,
    pub valid: u32,
    pub len: u8,
    pub prefix: Ipv6Addr,
}

impl IaPrefix {
    fn parse(d: &[u8]) -> Option<Self> {
        Some(Self { preferred: u32_at(d, 0)?, valid: u32_at(d, 4)?, len: *d.get(8)?, prefix: addr_at(d, 9)? })
    }
}

/// One relay layer (RFC 8415 §9): what the relay saw.
#[derive(Debug, Clone, Copy)]
pub struct Hop<'a> {
    /// Its hop count.
    pub hop_count: u8,
    /// The address of the link the client is on (unspecified: use the interface-id).
    pub link: Ipv6Addr,
    /// The address the message came from (the client's, or the previous relay's).
    pub peer: Ipv6Addr,
    /// Its options (without the Relay Message option's content).
    pub options: Options<'a>,
}

impl<'a> Hop<'a> {
    /// Interface-id (option 18), echoed in the reply.
    pub fn interface_id(&self) -> Option<&'a [u8]> {
        self.options.find(opt::INTERFACE_ID)
    }

    /// Remote-id (option 37): the enterprise number and the id.
    pub fn remote_id(&self) -> Option<(u32, &'a [u8])> {
        let d = self.options.find(opt::REMOTE_ID)?;
        Some((u32_at(d, 0)?, d.get(4..)?))
    }

    /// Subscriber-id (option 38).
    pub fn subscriber_id(&self) -> Option<&'a [u8]> {
        self.options.find(opt::SUBSCRIBER_ID)
    }
}

/// A to-server message as the server receives it: the relay layers, outermost first (none for a
/// client on the server's own link), and the client's message inside them.
#[derive(Debug, Clone)]
pub struct Relayed<'a> {
    hops: [Option<Hop<'a>>; MAX_HOPS],
    depth: usize,
    /// The client's message.
    pub message: Message<'a>,
}

impl<'a> Relayed<'a> {
    /// Peels Relay-Forw layers off `bytes` down to the client's message.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let mut hops = [None; MAX_HOPS];
        let mut depth = 0;
        let mut at = bytes;
        loop {
            match at.first() {
                None => return Err(Error::Short),
                Some(&msg::RELAY_FORW) => {
                    if depth == MAX_HOPS {
                        return Err(Error::BadRelay);
                    }
                    if at.len() < 34 {
                        return Err(Error::Short);
                    }
                    let options = Options::parse(&at[34..])?;
                    let hop = Hop {
                        hop_count: at[1],
                        link: addr_at(at, 2).ok_or(Error::Short)?,
                        peer: addr_at(at, 18).ok_or(Error::Short)?,
                        options,
                    };
                    hops[depth] = Some(hop);
                    depth += 1;
                    at = options.find(opt::RELAY_MSG).ok_or(Error::BadRelay)?;
                }
                Some(&msg::RELAY_REPL) => return Err(Error::WrongKind),
                Some(_) => return Ok(Self { hops, depth, message: Message::parse(at)? }),
            }
        }
    }

    /// The relay layers, outermost (the relay that sent it to the server) first.
    pub fn hops(&self) -> impl DoubleEndedIterator<Item = &Hop<'a>> {
        self.hops[..self.depth].iter().flatten()
    }

    /// The relay nearest the client (its link address chooses the subnet), if relayed.
    pub fn first_relay(&self) -> Option<&Hop<'a>> {
        self.depth.checked_sub(1).and_then(|i| self.hops[i].as_ref())
    }
}

/// A DUID's type (RFC 8415 §11): link-layer plus time, enterprise, link-layer, UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuidKind {
    Llt,
    En,
    Ll,
    Uuid,
    Other(u16),
}

/// The type of the DUID in `duid`, if it has one.
pub fn duid_kind(duid: &[u8]) -> Option<DuidKind> {
    Some(match u16_at(duid, 0)? {
        1 => DuidKind::Llt,
        2 => DuidKind::En,
        3 => DuidKind::Ll,
        4 => DuidKind::Uuid,
        n => DuidKind::Other(n),
    })
}

/// Writes a DHCPv6 message into a fixed buffer: a header, options, options nested in options
/// (an IA's addresses, a relay's message) whose lengths are filled in when they are closed.
/// Refuses (returns `false`, writes nothing more) rather than overrun; nothing allocates.
pub struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
    /// Where each open option's length field is.
    open: [usize; MAX_OPEN],
    depth: usize,
    failed: bool,
}

/// Most options open at once (a relay reply's layers, an IA, its address, a status code).
const MAX_OPEN: usize = MAX_HOPS + 4;

impl<'b> Writer<'b> {
    /// A client/server message of type `kind` with transaction id `xid` (24 bits) at the start of
    /// `buf`.
    pub fn message(buf: &'b mut [u8], kind: u8, xid: u32) -> Self {
        let mut w = Self::empty(buf);
        w.inner_message(kind, xid);
        w
    }

    /// A Relay-Repl for `hop` at the start of `buf`: its header, the interface-id it brought
    /// (echoed, RFC 8415 §19.3), and an open Relay Message option for what goes inside.
    pub fn relay_reply(buf: &'b mut [u8], hop: &Hop<'_>) -> Self {
        let mut w = Self::empty(buf);
        w.relay_layer(hop);
        w
    }

    fn empty(buf: &'b mut [u8]) -> Self {
        Self { buf, pos: 0, open: [0; MAX_OPEN], depth: 0, failed: false }
    }

    /// Another Relay-Repl layer inside the open Relay Message option (for a message that came
    /// through several relays: outermost first).
    pub fn relay_layer(&mut self, hop: &Hop<'_>) {
        self.bytes(&[msg::RELAY_REPL, hop.hop_count]);
        self.bytes(&hop.link.octets());
        self.bytes(&hop.peer.octets());
        if let Some(id) = hop.interface_id() {
            self.option(opt::INTERFACE_ID, id);
        }
        self.open(opt::RELAY_MSG);
    }

    /// The client/server header (inside an open Relay Message option, for a relayed reply).
    pub fn inner_message(&mut self, kind: u8, xid: u32) {
        let x = xid.to_be_bytes();
        self.bytes(&[kind, x[1], x[2], x[3]]);
    }

    fn bytes(&mut self, b: &[u8]) {
        if self.failed {
            return;
        }
        match self.buf.get_mut(self.pos..self.pos + b.len()) {
            Some(dst) => {
                dst.copy_from_slice(b);
                self.pos += b.len();
            }
            None => self.failed = true,
        }
    }

    /// An option with its whole value.
    pub fn option(&mut self, code: u16, value: &[u8]) {
        let Ok(len) = u16::try_from(value.len()) else {
            self.failed = true;
            return;
        };
        self.bytes(&code.to_be_bytes());
        self.bytes(&len.to_be_bytes());
        self.bytes(value);
    }

    /// Part of the value of the option open now (an address of a list, …).
    pub fn value(&mut self, b: &[u8]) {
        self.bytes(b);
    }

    /// Opens option `code`; what is written until [`close`](Self::close) is its value.
    pub fn open(&mut self, code: u16) {
        if self.depth == MAX_OPEN {
            self.failed = true;
            return;
        }
        self.bytes(&code.to_be_bytes());
        self.open[self.depth] = self.pos;
        self.depth += 1;
        self.bytes(&[0, 0]);
    }

    /// Closes the innermost open option, filling in its length.
    pub fn close(&mut self) {
        let Some(d) = self.depth.checked_sub(1) else {
            self.failed = true;
            return;
        };
        self.depth = d;
        if self.failed {
            return;
        }
        let at = self.open[d];
        match u16::try_from(self.pos - at - 2) {
            Ok(len) => self.buf[at..at + 2].copy_from_slice(&len.to_be_bytes()),
            Err(_) => self.failed = true,
        }
    }

    /// An IA_NA or IA_PD, opened: its IAID, T1 and T2; its addresses or prefixes and status
    /// follow, then [`close`](Self::close).
    pub fn open_ia(&mut self, kind: IaKind, iaid: u32, t1: u32, t2: u32) {
        self.open(if kind == IaKind::Na { opt::IA_NA } else { opt::IA_PD });
        self.bytes(&iaid.to_be_bytes());
        self.bytes(&t1.to_be_bytes());
        self.bytes(&t2.to_be_bytes());
    }

    /// An IA Address option.
    pub fn ia_addr(&mut self, a: &IaAddr) {
        self.open(opt::IAADDR);
        self.bytes(&a.addr.octets());
        self.bytes(&a.preferred.to_be_bytes());
        self.bytes(&a.valid.to_be_bytes());
        self.close();
    }

    /// An IA Prefix option.
    pub fn ia_prefix(&mut self, p: &IaPrefix) {
        self.open(opt::IAPREFIX);
        self.bytes(&p.preferred.to_be_bytes());
        self.bytes(&p.valid.to_be_bytes());
        self.bytes(&[p.len]);
        self.bytes(&p.prefix.octets());
        self.close();
    }

    /// A Status Code option with its message.
    pub fn status(&mut self, code: u16, message: &str) {
        self.open(opt::STATUS_CODE);
        self.bytes(&code.to_be_bytes());
        self.bytes(message.as_bytes());
        self.close();
    }

    /// Closes what is still open and returns the message's length, or `None` when it did not
    /// fit (or an option was closed that was not open).
    pub fn finish(mut self) -> Option<usize> {
        while self.depth > 0 {
            self.close();
        }
        (!self.failed).then_some(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(code: u16, data: &[u8]) -> Vec<u8> {
        let mut o = code.to_be_bytes().to_vec();
        o.extend_from_slice(&(data.len() as u16).to_be_bytes());
        o.extend_from_slice(data);
        o
    }

    /// A SOLICIT with a DUID-LL, an ORO, elapsed time, rapid commit, two IA_NAs (one naming an
    /// address) and an IA_PD hinting a /56.
    fn solicit() -> Vec<u8> {
        let mut m = vec![msg::SOLICIT, 0x12, 0x34, 0x56];
        m.extend(option(opt::CLIENTID, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1]));
        m.extend(option(opt::ORO, &[0, 23, 0, 24]));
        m.extend(option(opt::ELAPSED_TIME, &[0, 100]));
        m.extend(option(opt::RAPID_COMMIT, &[]));
        m.extend(option(opt::IA_NA, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]));
        let mut ia = vec![0, 0, 0, 2, 0, 0, 0x0e, 0x10, 0, 0, 0x15, 0x18];
        let mut iaaddr = "2001:db8::5".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        iaaddr.extend_from_slice(&[0, 0, 0x1c, 0x20, 0, 0, 0x2a, 0x30]);
        ia.extend(option(opt::IAADDR, &iaaddr));
        m.extend(option(opt::IA_NA, &ia));
        let mut pd = vec![0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut prefix = vec![0, 0, 0, 0, 0, 0, 0, 0, 56];
        prefix.extend_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
        pd.extend(option(opt::IAPREFIX, &prefix));
        m.extend(option(opt::IA_PD, &pd));
        m
    }

    #[test]
    fn a_solicit_reads_whole() {
        let b = solicit();
        let m = Message::parse(&b).unwrap();
        assert_eq!((m.kind(), m.transaction_id()), (msg::SOLICIT, 0x123456));
        assert_eq!(m.client_id(), Some(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 1][..]));
        assert_eq!(duid_kind(m.client_id().unwrap()), Some(DuidKind::Ll));
        assert_eq!(m.requested().collect::<Vec<_>>(), vec![23, 24]);
        assert_eq!((m.elapsed(), m.rapid_commit(), m.server_id()), (Some(100), true, None));
        let nas: Vec<Ia> = m.ia_nas().collect();
        assert_eq!(nas.iter().map(|i| (i.iaid, i.t1, i.t2)).collect::<Vec<_>>(), vec![(1, 0, 0), (2, 3600, 5400)]);
        assert_eq!(
            nas[1].addresses().collect::<Vec<_>>(),
            vec![IaAddr { addr: "2001:db8::5".parse().unwrap(), preferred: 7200, valid: 10800 }]
        );
        let pds: Vec<Ia> = m.ia_pds().collect();
        assert_eq!(pds.len(), 1);
        assert_eq!(pds[0].kind, IaKind::Pd);
        assert_eq!(pds[0].prefixes().next().map(|p| p.len), Some(56));
    }

    #[test]
    fn relayed_twice_the_client_and_each_hop_are_read() {
        let inner = solicit();
        let relay = |link: &str, peer: &str, inner: &[u8], extra: &[Vec<u8>]| {
            let mut r = vec![msg::RELAY_FORW, 0];
            r.extend_from_slice(&link.parse::<Ipv6Addr>().unwrap().octets());
            r.extend_from_slice(&peer.parse::<Ipv6Addr>().unwrap().octets());
            for e in extra {
                r.extend_from_slice(e);
            }
            r.extend(option(opt::RELAY_MSG, inner));
            r
        };
        let near = relay(
            "2001:db8:1::1",
            "fe80::1",
            &inner,
            &[
                option(opt::INTERFACE_ID, b"eth0/1/2"),
                option(opt::REMOTE_ID, &[0, 0, 0x0d, 0xe9, b'l', b'i', b'n', b'e']),
                option(opt::SUBSCRIBER_ID, b"sub-42"),
            ],
        );
        let outer = relay("::", "2001:db8:1::1", &near, &[]);
        let r = Relayed::parse(&outer).unwrap();
        assert_eq!(r.hops().count(), 2);
        let first = r.first_relay().unwrap();
        assert_eq!(first.link, "2001:db8:1::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(first.interface_id(), Some(&b"eth0/1/2"[..]));
        assert_eq!(first.remote_id(), Some((3561, &b"line"[..])));
        assert_eq!(first.subscriber_id(), Some(&b"sub-42"[..]));
        assert_eq!(r.hops().next().unwrap().link, Ipv6Addr::UNSPECIFIED);
        assert_eq!(r.message.transaction_id(), 0x123456);
        // Not relayed: no hop.
        let direct = Relayed::parse(&inner).unwrap();
        assert!(direct.first_relay().is_none());
    }

    #[test]
    fn damaged_messages_are_refused_not_misread() {
        let b = solicit();
        assert_eq!(Message::parse(&b[..3]).unwrap_err(), Error::Short);
        // Cut inside an option.
        assert_eq!(Message::parse(&b[..b.len() - 1]).unwrap_err(), Error::BadOption);
        // A relay message with no Relay Message option.
        let mut r = vec![msg::RELAY_FORW, 0];
        r.extend_from_slice(&[0; 32]);
        assert_eq!(Relayed::parse(&r).unwrap_err(), Error::BadRelay);
        // A Relay-Repl is no request.
        let mut rr = r.clone();
        rr[0] = msg::RELAY_REPL;
        assert_eq!(Relayed::parse(&rr).unwrap_err(), Error::WrongKind);
        // Nested deeper than the hop limit.
        let mut deep = solicit();
        for _ in 0..=MAX_HOPS {
            let mut r = vec![msg::RELAY_FORW, 0];
            r.extend_from_slice(&[0; 32]);
            r.extend(option(opt::RELAY_MSG, &deep));
            deep = r;
        }
        assert_eq!(Relayed::parse(&deep).unwrap_err(), Error::BadRelay);
        // Every truncation of a relayed message is refused or read within bounds (no panic).
        let mut relayed = vec![msg::RELAY_FORW, 0];
        relayed.extend_from_slice(&[0; 32]);
        relayed.extend(option(opt::RELAY_MSG, &b));
        for n in 0..relayed.len() {
            let _ = Relayed::parse(&relayed[..n]);
        }
        // An IA too short for its fixed part is skipped, not misread.
        let mut m = vec![msg::REQUEST, 0, 0, 1];
        m.extend(option(opt::IA_NA, &[0, 0, 0, 1]));
        assert_eq!(Message::parse(&m).unwrap().ia_nas().count(), 0);
    }

    /// A REPLY written for a relayed REQUEST reads back through the view: the relay layer with
    /// its interface-id echoed, the server's message inside with an address, a prefix and a
    /// status code; a buffer too small is refused, not overrun.
    #[test]
    fn a_reply_written_for_a_relay_reads_back() {
        let mut req = vec![msg::RELAY_FORW, 0];
        req.extend_from_slice(&"2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets());
        req.extend_from_slice(&"fe80::2".parse::<Ipv6Addr>().unwrap().octets());
        req.extend(option(opt::INTERFACE_ID, b"ge-0/0/1.100"));
        let mut inner = solicit();
        inner[0] = msg::REQUEST;
        req.extend(option(opt::RELAY_MSG, &inner));
        let got = Relayed::parse(&req).unwrap();
        let hop = got.first_relay().unwrap();
        let mut buf = [0u8; 512];
        let mut w = Writer::relay_reply(&mut buf, hop);
        w.inner_message(msg::REPLY, got.message.transaction_id());
        w.option(opt::SERVERID, &[0, 2, 0, 0, 0x0d, 0xe9, 1]);
        w.option(opt::CLIENTID, got.message.client_id().unwrap());
        let addr = IaAddr { addr: "2001:db8:1::100".parse().unwrap(), preferred: 3000, valid: 4000 };
        w.open_ia(IaKind::Na, 2, 1500, 2400);
        w.ia_addr(&addr);
        w.close();
        let prefix = IaPrefix { preferred: 3000, valid: 4000, len: 56, prefix: "2001:db8:ff00::".parse().unwrap() };
        w.open_ia(IaKind::Pd, 9, 1500, 2400);
        w.ia_prefix(&prefix);
        w.close();
        w.open_ia(IaKind::Na, 1, 0, 0);
        w.status(status::NO_ADDRS_AVAIL, "no addresses");
        let n = w.finish().expect("fits");
        // Read it back: a Relay-Repl around a REPLY.
        assert_eq!(buf[0], msg::RELAY_REPL);
        let options = Options::parse(&buf[34..n]).unwrap();
        assert_eq!(options.find(opt::INTERFACE_ID), Some(&b"ge-0/0/1.100"[..]));
        let reply = Message::parse(options.find(opt::RELAY_MSG).unwrap()).unwrap();
        assert_eq!((reply.kind(), reply.transaction_id()), (msg::REPLY, 0x123456));
        assert_eq!(reply.client_id(), got.message.client_id());
        let nas: Vec<Ia> = reply.ia_nas().collect();
        assert_eq!((nas[0].iaid, nas[0].t1, nas[0].t2), (2, 1500, 2400));
        assert_eq!(nas[0].addresses().collect::<Vec<_>>(), vec![addr]);
        let st = nas[1].options.find(opt::STATUS_CODE).unwrap();
        assert_eq!((u16_at(st, 0), &st[2..]), (Some(status::NO_ADDRS_AVAIL), &b"no addresses"[..]));
        assert_eq!(reply.ia_pds().next().unwrap().prefixes().collect::<Vec<_>>(), vec![prefix]);
        // Too small a buffer: refused at every size short of the whole.
        for size in 0..n {
            let mut small = vec![0u8; size];
            let mut w = Writer::relay_reply(&mut small, hop);
            w.inner_message(msg::REPLY, 1);
            w.option(opt::CLIENTID, got.message.client_id().unwrap());
            w.option(opt::SERVERID, &[0, 2, 0, 0, 0x0d, 0xe9, 1]);
            w.open_ia(IaKind::Na, 2, 1500, 2400);
            w.ia_addr(&addr);
            w.close();
            w.open_ia(IaKind::Pd, 9, 1500, 2400);
            w.ia_prefix(&prefix);
            w.close();
            w.open_ia(IaKind::Na, 1, 0, 0);
            w.status(status::NO_ADDRS_AVAIL, "no addresses");
            assert_eq!(w.finish(), None, "{size} bytes");
        }
        // A close with nothing open is refused.
        let mut b = [0u8; 64];
        let mut w = Writer::message(&mut b, msg::ADVERTISE, 7);
        w.close();
        assert_eq!(w.finish(), None);
    }
}
