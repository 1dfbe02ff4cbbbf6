//! Zero-copy view of a BOOTP/DHCPv4 message and its options, and a bounded options writer.
//!
//! [`Message::parse`] validates the fixed header and walks the options once — the options field,
//! then `file` and `sname` when option 52 (overload) says so — recording where the options a
//! server always reads first occur. Options that occur several times are concatenated on demand
//! (RFC 3396) into a caller-provided buffer. No accessor can panic after `parse`, nothing allocates.

use std::net::Ipv4Addr;

/// Byte ranges of the fixed BOOTP header (RFC 2131 §2, figure 1).
pub mod field {
    use std::ops::Range;
    /// Message op code: 1 BOOTREQUEST, 2 BOOTREPLY.
    pub const OP: usize = 0;
    /// Hardware address type (1 = Ethernet).
    pub const HTYPE: usize = 1;
    /// Hardware address length.
    pub const HLEN: usize = 2;
    /// Relay hops.
    pub const HOPS: usize = 3;
    /// Transaction id.
    pub const XID: Range<usize> = 4..8;
    /// Seconds since the client began.
    pub const SECS: Range<usize> = 8..10;
    /// Flags (bit 15: broadcast).
    pub const FLAGS: Range<usize> = 10..12;
    /// Client IP address, also known as `ciaddr`.
    pub const CIADDR: Range<usize> = 12..16;
    /// "Your" (client) address, also known as `yiaddr`.
    pub const YIADDR: Range<usize> = 16..20;
    /// Next server, also known as `siaddr`.
    pub const SIADDR: Range<usize> = 20..24;
    /// Relay agent address, also known as `giaddr`.
    pub const GIADDR: Range<usize> = 24..28;
    /// Client hardware address, also known as `chaddr`.
    pub const CHADDR: Range<usize> = 28..44;
    /// Server host name.
    pub const SNAME: Range<usize> = 44..108;
    /// Boot file name.
    pub const FILE: Range<usize> = 108..236;
    /// Magic cookie 99.130.83.99.
    pub const MAGIC: Range<usize> = 236..240;
    /// Start of the options field.
    pub const OPTIONS: usize = 240;
}

/// The DHCP magic cookie.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// BOOTREQUEST op code.
pub const BOOTREQUEST: u8 = 1;
/// BOOTREPLY op code.
pub const BOOTREPLY: u8 = 2;
/// Broadcast bit of `flags`.
pub const FLAG_BROADCAST: u16 = 0x8000;

/// Option codes used by the server.
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTERS: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const BROADCAST: u8 = 28;
    pub const NTP: u8 = 42;
    pub const VENDOR_SPECIFIC: u8 = 43;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const CLIENT_FQDN: u8 = 81;
    pub const RELAY_AGENT_INFO: u8 = 82;
    pub const VIVSO: u8 = 125;
    pub const SUBNET_SELECTION: u8 = 118;
    pub const CLASSLESS_ROUTES: u8 = 121;
    pub const END: u8 = 255;
}

/// Relay agent information sub-options (RFC 3046, 3527, 5107).
pub mod relay {
    pub const CIRCUIT_ID: u8 = 1;
    pub const REMOTE_ID: u8 = 2;
    pub const LINK_SELECTION: u8 = 5;
    pub const SERVER_ID_OVERRIDE: u8 = 11;
    /// The relay's own identity (RFC 6925).
    pub const RELAY_ID: u8 = 12;
}

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl MessageType {
    /// From the option's value byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            _ => return None,
        })
    }
}

/// Why a BOOTP message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Shorter than the fixed header.
    #[error("message shorter than the BOOTP header")]
    Truncated,
    /// An option's length runs past its area.
    #[error("option runs past the end of its area")]
    BadOption,
    /// hlen above 16.
    #[error("hardware address length above 16")]
    BadHlen,
}

/// Where one area (options field, file, sname) of the message lies.
#[derive(Debug, Clone, Copy)]
struct Area {
    start: u16,
    end: u16,
}

/// Codes whose first occurrence [`Message::parse`] records, so that the engine reads them
/// without walking the options again: the ones every request is asked for.
const TRACKED: [u8; 11] = [
    opt::OVERLOAD,
    opt::MESSAGE_TYPE,
    opt::REQUESTED_IP,
    opt::SERVER_ID,
    opt::PARAMETER_LIST,
    opt::MAX_MESSAGE_SIZE,
    opt::CLIENT_ID,
    opt::RELAY_AGENT_INFO,
    opt::SUBNET_SELECTION,
    // The name a lease keeps, looked for in every REQUEST that is ACKed.
    opt::HOSTNAME,
    opt::CLIENT_FQDN,
];
/// Marks an untracked code in [`SLOT`].
const UNTRACKED: u8 = u8::MAX;
/// Index into [`TRACKED`] of each code.
const SLOT: [u8; 256] = {
    let mut t = [UNTRACKED; 256];
    let mut i = 0;
    while i < TRACKED.len() {
        t[TRACKED[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// A validated BOOTP/DHCP message.
///
/// The index is small on purpose (it is built for every packet): where the first occurrence of
/// each [tracked](TRACKED) code lies and which of them occur more than once. Other codes are
/// found by walking the options.
#[derive(Clone)]
pub struct Message<'a> {
    b: &'a [u8],
    /// Offset of the length byte of each tracked code's first occurrence; 0 when absent.
    first: [u16; TRACKED.len()],
    /// Bit `i`: tracked code `i` occurs more than once.
    repeated: u16,
    areas: [Area; 3],
    n_areas: u8,
    has_cookie: bool,
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("op", &self.op())
            .field("xid", &format_args!("{:#x}", self.xid()))
            .field("type", &self.message_type())
            .finish()
    }
}

impl<'a> Message<'a> {
    /// Validates the fixed header and indexes the options.
    #[inline]
    pub fn parse(b: &'a [u8]) -> Result<Self, MessageError> {
        if b.len() < field::MAGIC.start {
            return Err(MessageError::Truncated);
        }
        if b[field::HLEN] > 16 {
            return Err(MessageError::BadHlen);
        }
        let mut m = Self {
            b,
            first: [0; TRACKED.len()],
            repeated: 0,
            areas: [Area { start: 0, end: 0 }; 3],
            n_areas: 0,
            has_cookie: false,
        };
        // A BOOTP message without the cookie has no options (RFC 951 vendor area).
        if b.len() < field::OPTIONS || b[field::MAGIC] != MAGIC_COOKIE {
            return Ok(m);
        }
        m.has_cookie = true;
        let end = b.len().min(u16::MAX as usize);
        m.scan(field::OPTIONS, end)?;
        // Option overload: file first, then sname (RFC 2131 §4.1).
        if let Some(&[v]) = m.single(opt::OVERLOAD) {
            if v & 1 != 0 {
                m.scan(field::FILE.start, field::FILE.end)?;
            }
            if v & 2 != 0 {
                m.scan(field::SNAME.start, field::SNAME.end)?;
            }
        }
        Ok(m)
    }

    fn scan(&mut self, start: usize, end: usize) -> Result<(), MessageError> {
        if usize::from(self.n_areas) < self.areas.len() {
            self.areas[usize::from(self.n_areas)] = Area { start: start as u16, end: end as u16 };
            self.n_areas += 1;
        }
        let mut i = start;
        while i < end {
            let code = self.b[i];
            match code {
                opt::PAD => i += 1,
                opt::END => break,
                _ => {
                    let Some(&len) = self.b.get(i + 1) else {
                        return Err(MessageError::BadOption);
                    };
                    let vend = i + 2 + usize::from(len);
                    if vend > end {
                        return Err(MessageError::BadOption);
                    }
                    let slot = usize::from(SLOT[usize::from(code)]);
                    if let Some(first) = self.first.get_mut(slot) {
                        if *first == 0 {
                            // Areas end below 64 KiB (`parse` clamps them).
                            *first = (i + 1) as u16;
                        } else {
                            self.repeated |= 1 << slot;
                        }
                    }
                    i = vend;
                }
            }
        }
        Ok(())
    }

    /// Offsets of the length bytes of every occurrence of `code`, in order (RFC 3396).
    fn occurrences(&self, code: u8) -> impl Iterator<Item = usize> + '_ {
        self.walk().filter(move |&(c, _)| c == code).map(|(_, at)| at)
    }

    /// Every option occurrence in the scanned areas as (code, offset of its length byte).
    fn walk(&self) -> Walk<'a> {
        Walk { b: self.b, areas: self.areas, n_areas: self.n_areas, area: 0, i: usize::from(self.areas[0].start) }
    }

    /// The value whose length byte is at `at`.
    #[inline(always)]
    fn value_at(&self, at: usize) -> Option<&'a [u8]> {
        let len = usize::from(*self.b.get(at)?);
        self.b.get(at + 1..at + 1 + len)
    }

    /// Every option occurrence, in order, as (code, offset of its value in [`bytes`](Self::bytes),
    /// its length) (overloaded sname/file areas too).
    pub fn option_offsets(&self) -> impl Iterator<Item = (u8, usize, usize)> + '_ {
        self.walk().filter_map(|(c, at)| self.value_at(at).map(|v| (c, at + 1, v.len())))
    }

    /// The message bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.b
    }
    /// `op`.
    pub fn op(&self) -> u8 {
        self.b[field::OP]
    }
    /// `htype`.
    pub fn htype(&self) -> u8 {
        self.b[field::HTYPE]
    }
    /// `hlen`.
    pub fn hlen(&self) -> u8 {
        self.b[field::HLEN]
    }
    /// `xid`.
    pub fn xid(&self) -> u32 {
        u32::from_be_bytes([self.b[4], self.b[5], self.b[6], self.b[7]])
    }
    /// `flags`.
    pub fn flags(&self) -> u16 {
        u16::from_be_bytes([self.b[10], self.b[11]])
    }
    fn ip(&self, at: usize) -> Ipv4Addr {
        // The fixed header was length-checked by `parse`.
        self.b.get(at..at + 4).and_then(|v| <[u8; 4]>::try_from(v).ok()).map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from)
    }
    /// `ciaddr`.
    pub fn ciaddr(&self) -> Ipv4Addr {
        self.ip(field::CIADDR.start)
    }
    /// `yiaddr`.
    pub fn yiaddr(&self) -> Ipv4Addr {
        self.ip(field::YIADDR.start)
    }
    /// `giaddr`.
    pub fn giaddr(&self) -> Ipv4Addr {
        self.ip(field::GIADDR.start)
    }
    /// `chaddr`, `hlen` bytes of it.
    pub fn chaddr(&self) -> &'a [u8] {
        &self.b[field::CHADDR.start..field::CHADDR.start + usize::from(self.hlen())]
    }
    /// The first six bytes of `chaddr` (the Ethernet address).
    pub fn chaddr6(&self) -> [u8; 6] {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.b[28..34]);
        m
    }
    /// Whether the options field started with the magic cookie.
    pub fn has_cookie(&self) -> bool {
        self.has_cookie
    }

    /// Value of `code` if it occurs exactly once.
    #[inline(always)]
    pub fn single(&self, code: u8) -> Option<&'a [u8]> {
        let slot = usize::from(SLOT[usize::from(code)]);
        match self.first.get(slot) {
            Some(&0) => None,
            Some(&at) if self.repeated & (1 << slot) == 0 => self.value_at(usize::from(at)),
            Some(_) => None,
            None => self.single_untracked(code),
        }
    }

    #[inline(never)]
    fn single_untracked(&self, code: u8) -> Option<&'a [u8]> {
        let mut all = self.occurrences(code);
        let at = all.next()?;
        if all.next().is_some() {
            return None;
        }
        self.value_at(at)
    }

    /// Whether `code` is present at all.
    pub fn has(&self, code: u8) -> bool {
        match self.first.get(usize::from(SLOT[usize::from(code)])) {
            Some(&at) => at != 0,
            None => self.occurrences(code).next().is_some(),
        }
    }

    /// Value of `code`: a slice of the message when it occurs once, else the concatenation of
    /// all its occurrences in `scratch` (RFC 3396). `None` when absent or longer than `scratch`.
    #[inline(always)]
    pub fn option<'s>(&self, code: u8, scratch: &'s mut [u8]) -> Option<&'s [u8]>
    where
        'a: 's,
    {
        let slot = usize::from(SLOT[usize::from(code)]);
        match self.first.get(slot) {
            Some(_) if self.repeated & (1 << slot) == 0 => self.single(code),
            _ => self.concatenated(code, scratch),
        }
    }

    /// All occurrences of `code` concatenated into `scratch` (RFC 3396); the value itself when
    /// it occurs once.
    #[inline(never)]
    fn concatenated<'s>(&self, code: u8, scratch: &'s mut [u8]) -> Option<&'s [u8]>
    where
        'a: 's,
    {
        if self.occurrences(code).nth(1).is_none() {
            return self.single(code);
        }
        let mut n = 0;
        for at in self.occurrences(code) {
            let v = self.value_at(at)?;
            scratch.get_mut(n..n + v.len())?.copy_from_slice(v);
            n += v.len();
        }
        Some(&scratch[..n])
    }

    /// Option 53.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.single(opt::MESSAGE_TYPE) {
            Some(&[t]) => MessageType::from_u8(t),
            _ => None,
        }
    }

    /// An option holding one IPv4 address.
    pub fn ip_option(&self, code: u8) -> Option<Ipv4Addr> {
        match self.single(code) {
            Some(&[a, b, c, d]) => Some(Ipv4Addr::new(a, b, c, d)),
            _ => None,
        }
    }

    /// Option 57 (maximum DHCP message size), if sane (≥ 576).
    pub fn max_message_size(&self) -> Option<u16> {
        match self.single(opt::MAX_MESSAGE_SIZE) {
            Some(&[a, b]) => Some(u16::from_be_bytes([a, b])).filter(|&v| v >= 576),
            _ => None,
        }
    }
}

/// Walks the options of the areas [`Message::parse`] validated.
struct Walk<'a> {
    b: &'a [u8],
    areas: [Area; 3],
    n_areas: u8,
    area: u8,
    i: usize,
}

impl Iterator for Walk<'_> {
    type Item = (u8, usize);
    fn next(&mut self) -> Option<(u8, usize)> {
        while self.area < self.n_areas {
            let end = usize::from(self.areas[usize::from(self.area)].end);
            while self.i < end {
                match self.b[self.i] {
                    opt::PAD => self.i += 1,
                    opt::END => break,
                    c => {
                        let at = self.i + 1;
                        self.i += 2 + usize::from(self.b[at]);
                        return Some((c, at));
                    }
                }
            }
            self.area += 1;
            self.i = self.areas.get(usize::from(self.area)).map_or(0, |a| usize::from(a.start));
        }
        None
    }
}

/// Iterates over the sub-options of a relay agent information option (code, value).
pub fn sub_options(value: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut i = 0;
    std::iter::from_fn(move || {
        let code = *value.get(i)?;
        let len = usize::from(*value.get(i + 1)?);
        let v = value.get(i + 2..i + 2 + len)?;
        i += 2 + len;
        Some((code, v))
    })
}

/// Writes options into a fixed area; refuses (returns false) rather than overrun. One byte is
/// always kept for the End option.
pub struct OptionWriter<'b> {
    buf: &'b mut [u8],
    pos: usize,
    limit: usize,
}

impl<'b> OptionWriter<'b> {
    /// A writer over `buf[start..limit]`.
    pub fn new(buf: &'b mut [u8], start: usize, limit: usize) -> Self {
        let limit = limit.min(buf.len());
        Self { buf, pos: start, limit }
    }

    /// Raises (or lowers) the limit, within the buffer: used to release room kept aside for an
    /// option that must come last.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(self.buf.len());
    }

    /// Where the next option (or End) goes.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes still free (not counting the reserved End byte).
    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.pos + 1)
    }

    /// Space an option of `len` value bytes takes, split into 255-byte fragments (RFC 3396).
    pub fn encoded_len(len: usize) -> usize {
        if len == 0 { 2 } else { len + 2 * len.div_ceil(255) }
    }

    /// Appends option `code` with `value`, split into fragments if longer than 255 bytes.
    #[must_use]
    pub fn put(&mut self, code: u8, value: &[u8]) -> bool {
        // Common case: one fragment.
        if let Ok(len) = u8::try_from(value.len()) {
            let end = self.pos + 2 + value.len();
            // One byte stays reserved for End.
            if end >= self.limit {
                return false;
            }
            let Some(dst) = self.buf.get_mut(self.pos..end) else { return false };
            dst[0] = code;
            dst[1] = len;
            dst[2..].copy_from_slice(value);
            self.pos = end;
            return true;
        }
        if Self::encoded_len(value.len()) > self.remaining() {
            return false;
        }
        if value.is_empty() {
            self.buf[self.pos] = code;
            self.buf[self.pos + 1] = 0;
            self.pos += 2;
            return true;
        }
        for chunk in value.chunks(255) {
            self.buf[self.pos] = code;
            self.buf[self.pos + 1] = chunk.len() as u8;
            self.buf[self.pos + 2..self.pos + 2 + chunk.len()].copy_from_slice(chunk);
            self.pos += 2 + chunk.len();
        }
        true
    }

    /// Appends a pre-encoded run of options (code, len, value …) as is.
    #[must_use]
    pub fn put_raw(&mut self, encoded: &[u8]) -> bool {
        if encoded.len() > self.remaining() {
            return false;
        }
        self.buf[self.pos..self.pos + encoded.len()].copy_from_slice(encoded);
        self.pos += encoded.len();
        true
    }

    /// Writes End and pads with zeros up to `min_end`; returns the end offset.
    pub fn finish(self, min_end: usize) -> usize {
        self.buf[self.pos] = opt::END;
        let mut end = self.pos + 1;
        let pad_to = min_end.min(self.buf.len());
        if end < pad_to {
            self.buf[end..pad_to].fill(0);
            end = pad_to;
        }
        end
    }
}

/// The name a client gives itself, as text, into `out` (cut to its length); its length. The
/// domain name of its Client FQDN option (81, RFC 4702: canonical wire form with the E flag,
/// ASCII without; a trailing root label or dot dropped) if it has one, else its Host Name
/// option (12); 0 with neither.
pub fn client_name(m: &Message<'_>, scratch: &mut [u8], out: &mut [u8]) -> usize {
    if let Some(v) = m.option(opt::CLIENT_FQDN, scratch)
        && v.len() > 3
    {
        let (flags, name) = (v[0], &v[3..]);
        let mut n = 0;
        if flags & 0x04 != 0 {
            // Labels, each after its length, up to the root label (or the end: a partial name).
            let mut at = 0;
            while let Some(&len) = name.get(at) {
                let len = usize::from(len);
                let Some(label) = name.get(at + 1..at + 1 + len).filter(|_| len > 0 && len < 64) else { break };
                let dot = usize::from(n > 0);
                if n + dot + len > out.len() {
                    break;
                }
                if dot == 1 {
                    out[n] = b'.';
                }
                out[n + dot..n + dot + len].copy_from_slice(label);
                n += dot + len;
                at += 1 + len;
            }
        } else {
            let text = name.strip_suffix(b".").unwrap_or(name);
            n = text.len().min(out.len());
            out[..n].copy_from_slice(&text[..n]);
        }
        if n > 0 {
            return n;
        }
    }
    match m.option(opt::HOSTNAME, scratch) {
        Some(v) => {
            let n = v.len().min(out.len());
            out[..n].copy_from_slice(&v[..n]);
            n
        }
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::msg;

    #[test]
    fn parses_header_and_options() {
        let b = msg(&[53, 1, 1, 0, 0, 50, 4, 198, 18, 0, 9, 55, 3, 1, 3, 6, 255, 9, 9]);
        let m = Message::parse(&b).unwrap();
        assert_eq!(m.xid(), 0x1234_5678);
        assert_eq!(m.message_type(), Some(MessageType::Discover));
        assert_eq!(m.ip_option(opt::REQUESTED_IP), Some(Ipv4Addr::new(198, 18, 0, 9)));
        assert_eq!(m.single(opt::PARAMETER_LIST), Some(&[1u8, 3, 6][..]));
        assert!(!m.has(9), "bytes after End are not options");
        assert_eq!(m.chaddr(), &[2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn tolerates_missing_end_but_not_overrun() {
        let b = msg(&[53, 1, 3]);
        assert_eq!(Message::parse(&b).unwrap().message_type(), Some(MessageType::Request));
        let b = msg(&[53, 1, 3, 12, 10, b'a']);
        assert_eq!(Message::parse(&b).unwrap_err(), MessageError::BadOption);
        let b = msg(&[53]);
        assert_eq!(Message::parse(&b).unwrap_err(), MessageError::BadOption);
    }

    #[test]
    fn rejects_short_and_long_hlen() {
        assert_eq!(Message::parse(&[0u8; 100]).unwrap_err(), MessageError::Truncated);
        let mut b = msg(&[255]);
        b[2] = 17;
        assert_eq!(Message::parse(&b).unwrap_err(), MessageError::BadHlen);
    }

    #[test]
    fn overload_puts_options_in_file_then_sname() {
        let mut b = msg(&[53, 1, 1, 52, 1, 3, 255]);
        b[108..112].copy_from_slice(&[12, 2, b'h', b'i']);
        b[112] = 255;
        b[44..50].copy_from_slice(&[15, 4, b'a', b'.', b'b', b'c']);
        b[50] = 255;
        let m = Message::parse(&b).unwrap();
        assert_eq!(m.single(opt::HOSTNAME), Some(&b"hi"[..]));
        assert_eq!(m.single(opt::DOMAIN_NAME), Some(&b"a.bc"[..]));
        // Without the overload option the same bytes are just file and sname.
        let mut plain = b.clone();
        plain[240..247].copy_from_slice(&[53, 1, 1, 0, 0, 0, 255]);
        assert!(!Message::parse(&plain).unwrap().has(opt::HOSTNAME));
    }

    #[test]
    fn split_options_are_concatenated_rfc3396() {
        let b = msg(&[53, 1, 1, 82, 3, 1, 1, b'a', 55, 1, 1, 82, 4, 2, 2, b'x', b'y', 255]);
        let m = Message::parse(&b).unwrap();
        let mut scratch = [0u8; 64];
        assert_eq!(m.option(opt::RELAY_AGENT_INFO, &mut scratch), Some(&[1u8, 1, b'a', 2, 2, b'x', b'y'][..]));
        assert_eq!(m.single(opt::RELAY_AGENT_INFO), None);
        let mut tiny = [0u8; 3];
        assert_eq!(m.option(opt::RELAY_AGENT_INFO, &mut tiny), None, "too long for scratch");
    }

    #[test]
    fn indexed_and_walked_codes_agree() {
        // 55 (indexed) and 12 (found by walking) each split in two, 53 repeated, 50 only in
        // the overloaded file field: the index and the walk must give the same answers.
        let mut b = msg(&[53, 1, 1, 55, 2, 1, 3, 12, 2, b'h', b'o', 52, 1, 1, 55, 1, 6, 12, 1, b'x', 53, 1, 3, 255]);
        b[108..115].copy_from_slice(&[50, 4, 198, 18, 0, 7, 255]);
        let m = Message::parse(&b).unwrap();
        let mut scratch = [0u8; 16];
        assert_eq!(m.option(opt::PARAMETER_LIST, &mut scratch), Some(&[1u8, 3, 6][..]));
        assert_eq!(m.option(opt::HOSTNAME, &mut scratch), Some(&b"hox"[..]));
        assert_eq!((m.single(opt::PARAMETER_LIST), m.single(opt::HOSTNAME)), (None, None));
        assert_eq!(m.message_type(), None, "53 twice counts as absent");
        assert!(m.has(opt::MESSAGE_TYPE) && m.has(opt::HOSTNAME) && !m.has(opt::CLIENT_ID) && !m.has(9));
        assert_eq!(m.ip_option(opt::REQUESTED_IP), Some(Ipv4Addr::new(198, 18, 0, 7)));
        assert_eq!(m.option(opt::OVERLOAD, &mut scratch), Some(&[1u8][..]));
    }

    #[test]
    fn many_distinct_codes_are_all_found() {
        // 40 distinct one-byte options (codes 100..140), then a repeated one and option 53.
        let mut o = vec![];
        for c in 100u8..140 {
            o.extend_from_slice(&[c, 1, c]);
        }
        o.extend_from_slice(&[130, 1, b'x', 53, 1, 3, 255]);
        let b = msg(&o);
        let m = Message::parse(&b).unwrap();
        assert_eq!(m.message_type(), Some(MessageType::Request));
        for c in (100u8..140).filter(|&c| c != 130) {
            assert_eq!(m.single(c), Some(&[c][..]), "code {c}");
        }
        let mut scratch = [0u8; 8];
        assert_eq!(m.single(130), None, "repeated");
        assert_eq!(m.option(130, &mut scratch), Some(&[130, b'x'][..]));
        assert!(!m.has(99) && m.single(99).is_none());
    }

    #[test]
    fn sub_options_iterate_and_stop_at_garbage() {
        let v = [1, 2, b'c', b'1', 5, 4, 198, 18, 1, 0, 9];
        let subs: Vec<_> = sub_options(&v).collect();
        assert_eq!(subs, vec![(1, &b"c1"[..]), (5, &[198u8, 18, 1, 0][..])]);
    }

    #[test]
    fn writer_never_overruns_and_splits_long_values() {
        let mut buf = [0u8; 20];
        let mut w = OptionWriter::new(&mut buf, 0, 20);
        assert!(w.put(53, &[2]));
        assert!(w.put(54, &[1, 2, 3, 4]));
        assert!(!w.put(12, &[b'x'; 20]), "does not fit");
        assert!(w.put(12, &[b'x'; 8]));
        assert_eq!(w.remaining(), 0);
        assert!(!w.put(1, &[]));
        let end = w.finish(0);
        assert_eq!(end, 20);
        assert_eq!(buf[19], 255);

        let mut big = vec![0u8; 700];
        let long = vec![7u8; 300];
        let mut w = OptionWriter::new(&mut big, 0, 700);
        assert!(w.put(121, &long));
        let end = w.finish(0);
        assert_eq!(end, 300 + 4 + 1);
        let mut b = msg(&[]);
        b.extend_from_slice(&big[..end]);
        let m = Message::parse(&b).unwrap();
        let mut scratch = [0u8; 600];
        assert_eq!(m.option(121, &mut scratch), Some(&long[..]));
    }
}
