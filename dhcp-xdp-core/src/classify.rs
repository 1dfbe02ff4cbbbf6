//! Client classification: Kea's expression language (the subset operators use to tell devices
//! apart), parsed once into a compiled form — a postfix program of typed operations with its
//! literals — and evaluated per packet on a reused stack and arena, without allocating once
//! warm and without looking at text.
//!
//! Supported, written as Kea writes them:
//! - string values: `'text'`, `0x0a0b`, integers (4 bytes, network order, as Kea), IPv4
//!   addresses (`192.0.2.1`, 4 bytes); `option[N].hex`, `option[N].text` (for string and
//!   address options), `relay4[N].hex`/`.text` (sub-option N of the relay agent information),
//!   `pkt4.mac`, `pkt4.hlen`, `pkt4.htype`, `pkt4.ciaddr`, `pkt4.giaddr`, `pkt4.yiaddr`,
//!   `pkt4.siaddr`, `pkt4.msgtype`, `pkt4.transid`; `substring(s, start, length|all)`,
//!   `concat(a, b)`, `a + b`, `hexstring(s, separator)`, `lcase(s)`, `ucase(s)`,
//!   `ifelse(condition, a, b)`; `(s)`;
//! - conditions: `a == b`, `option[N].exists`, `relay4[N].exists`, `member('class')` (a class
//!   defined earlier, or `KNOWN`/`UNKNOWN`: whether the client has a reservation), `not`,
//!   `and`, `or`, `(c)`.
//!
//! Options may be named by number or by a few standard names (`host-name`,
//! `vendor-class-identifier`, `dhcp-client-identifier`, `user-class`, …). What Kea has beyond
//! this (`relay6`, `pkt6`, `vendor[…]`, `split`, the integer-to-text functions, `match`) is an
//! error naming its position.

use std::net::Ipv4Addr;

/// Most classes one configuration may define (membership is a bit set).
pub const MAX_CLASSES: usize = 64;

/// Built-in class bits (after the configured ones' indexes): `KNOWN`, `UNKNOWN`.
const KNOWN: u16 = u16::MAX;
const UNKNOWN: u16 = u16::MAX - 1;

/// A syntax or meaning error in an expression, with the column (1-based, in characters) where
/// it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ExprError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

/// A fixed field of a DHCPv4 packet (`pkt4.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field4 {
    /// `pkt4.mac`: chaddr, hlen bytes of it.
    Mac,
    /// `pkt4.hlen` (4 bytes).
    Hlen,
    /// `pkt4.htype` (4 bytes).
    Htype,
    /// `pkt4.ciaddr`.
    Ciaddr,
    /// `pkt4.giaddr`.
    Giaddr,
    /// `pkt4.yiaddr`.
    Yiaddr,
    /// `pkt4.siaddr`.
    Siaddr,
    /// `pkt4.msgtype`: option 53 (4 bytes; 0 when absent).
    Msgtype,
    /// `pkt4.transid` (4 bytes).
    Transid,
}

/// What an expression reads from a request.
pub trait Packet {
    /// Top-level option `code` (its value), if present.
    fn option(&self, code: u8) -> Option<&[u8]>;
    /// Sub-option `code` of the relay agent information option (82), if present.
    fn relay_option(&self, code: u8) -> Option<&[u8]>;
    /// A fixed field's bytes, written into `out`; returns how many (at most 16).
    fn field(&self, f: Field4, out: &mut [u8; 16]) -> usize;
    /// `pkt4.mac` as it is in the packet (the first hlen bytes of chaddr).
    fn mac(&self) -> &[u8] {
        &[]
    }
}

/// One operation of a compiled expression (postfix: operands first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Literal `n` of the program.
    Lit(u16),
    /// An option's value (empty when absent).
    Opt(u8),
    /// An option's value as text: an address option in dotted form.
    OptAddrText(u8),
    /// Whether an option is present.
    OptExists(u8),
    /// A relay sub-option's value (empty when absent).
    Relay(u8),
    /// Whether a relay sub-option is present.
    RelayExists(u8),
    /// A fixed field.
    Field(Field4),
    /// Kea's substring: start, length (`None`: all).
    Substring(i32, Option<i32>),
    /// Two strings joined.
    Concat,
    /// Binary as hex digits, joined by the literal separator `n`.
    HexString,
    /// ASCII lower case.
    Lcase,
    /// ASCII upper case.
    Ucase,
    /// Two strings equal.
    Eq,
    /// Boolean not.
    Not,
    /// Boolean and.
    And,
    /// Boolean or.
    Or,
    /// The condition, then two strings: the first if it holds.
    IfElse,
    /// Membership of class `n` (or `KNOWN`/`UNKNOWN`).
    Member(u16),
}

/// A compiled expression: a condition (a class's `test`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    ops: Vec<Op>,
    lits: Vec<Vec<u8>>,
    /// The source, for messages.
    pub source: String,
    /// The options it reads (bit per code; relay sub-options count as option 82).
    reads: [u64; 4],
    /// Its value for a packet that has none of those options, when that is all it depends
    /// on (it reads no fixed field and no class membership): such a test is not evaluated
    /// for a packet without them.
    when_absent: Option<bool>,
    /// The same test as a small tree, when it has the shape most tests have (comparisons of
    /// an option, a relay sub-option or the MAC, or a part of one, with a literal; `exists`;
    /// `member`; joined by and/or/not): evaluated without the stack.
    fast: Option<Fast>,
}

/// What a fast test reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    Opt(u8),
    Relay(u8),
    Mac,
}

/// A test in the common shapes, as a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fast {
    /// `substring(src, start, len) == lit` (or the whole of `src` with `len` None).
    Eq {
        src: Src,
        start: i32,
        len: Option<i32>,
        lit: Vec<u8>,
    },
    Exists(Src),
    Member(u16),
    Not(Box<Fast>),
    And(Box<Fast>, Box<Fast>),
    Or(Box<Fast>, Box<Fast>),
}

/// A node while [`Fast`] is recognised from the postfix program.
enum Node {
    Src(Src, i32, Option<i32>),
    Lit(Vec<u8>),
    Test(Fast),
}

impl Fast {
    /// The tree of `ops`, when every operation is of the shapes above.
    fn of(ops: &[Op], lits: &[Vec<u8>]) -> Option<Fast> {
        let mut st: Vec<Node> = vec![];
        for op in ops {
            let n = match *op {
                Op::Opt(c) => Node::Src(Src::Opt(c), 0, None),
                Op::Relay(c) => Node::Src(Src::Relay(c), 0, None),
                Op::Field(Field4::Mac) => Node::Src(Src::Mac, 0, None),
                Op::Lit(i) => Node::Lit(lits[usize::from(i)].clone()),
                Op::Substring(start, len) => match st.pop()? {
                    Node::Src(src, 0, None) => Node::Src(src, start, len),
                    _ => return None,
                },
                Op::OptExists(c) => Node::Test(Fast::Exists(Src::Opt(c))),
                Op::RelayExists(c) => Node::Test(Fast::Exists(Src::Relay(c))),
                Op::Member(i) => Node::Test(Fast::Member(i)),
                Op::Eq => match (st.pop()?, st.pop()?) {
                    (Node::Lit(lit), Node::Src(src, start, len)) | (Node::Src(src, start, len), Node::Lit(lit)) => {
                        Node::Test(Fast::Eq { src, start, len, lit })
                    }
                    _ => return None,
                },
                Op::Not => match st.pop()? {
                    Node::Test(t) => Node::Test(Fast::Not(Box::new(t))),
                    _ => return None,
                },
                Op::And | Op::Or => match (st.pop()?, st.pop()?) {
                    (Node::Test(b), Node::Test(a)) if *op == Op::And => Node::Test(Fast::And(Box::new(a), Box::new(b))),
                    (Node::Test(b), Node::Test(a)) => Node::Test(Fast::Or(Box::new(a), Box::new(b))),
                    _ => return None,
                },
                _ => return None,
            };
            st.push(n);
        }
        match (st.pop(), st.is_empty()) {
            (Some(Node::Test(t)), true) => Some(t),
            _ => None,
        }
    }

    fn eval(&self, pkt: &impl Packet, classes: Classes) -> bool {
        match self {
            Fast::Eq { src, start, len, lit } => {
                let v = match *src {
                    Src::Opt(c) => pkt.option(c).unwrap_or_default(),
                    Src::Relay(c) => pkt.relay_option(c).unwrap_or_default(),
                    Src::Mac => pkt.mac(),
                };
                let (from, n) = substring(v.len(), *start, *len);
                v[from..from + n] == lit[..]
            }
            Fast::Exists(Src::Opt(c)) => pkt.option(*c).is_some(),
            Fast::Exists(Src::Relay(c)) => pkt.relay_option(*c).is_some(),
            Fast::Exists(Src::Mac) => true,
            Fast::Member(KNOWN) => classes.known,
            Fast::Member(UNKNOWN) => !classes.known,
            Fast::Member(i) => classes.has(usize::from(*i)),
            Fast::Not(t) => !t.eval(pkt, classes),
            Fast::And(a, b) => a.eval(pkt, classes) && b.eval(pkt, classes),
            Fast::Or(a, b) => a.eval(pkt, classes) || b.eval(pkt, classes),
        }
    }
}

/// A packet with no option, no relay information and zero fields (to fold tests).
struct Empty;

impl Packet for Empty {
    fn option(&self, _: u8) -> Option<&[u8]> {
        None
    }
    fn relay_option(&self, _: u8) -> Option<&[u8]> {
        None
    }
    fn field(&self, _: Field4, out: &mut [u8; 16]) -> usize {
        out[..4].fill(0);
        4
    }
}

/// Deepest evaluation stack an expression may need (checked when it is compiled).
pub const MAX_DEPTH: usize = 16;

/// A value on the evaluation stack: bytes of the packet or of a literal, bytes made in the
/// arena, or a condition.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Slice(&'a [u8]),
    Arena(u32, u32),
    Bool(bool),
}

/// Reusable evaluation state: the arena for values an expression makes (concatenations, hex
/// and case conversions, fields), which keeps its capacity.
#[derive(Debug, Default)]
pub struct Evaluator {
    arena: Vec<u8>,
}

/// Class membership: bit `i` for configured class `i`, plus whether the client is known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Classes {
    /// Configured classes matched.
    pub bits: u64,
    /// The client has a reservation.
    pub known: bool,
}

impl Classes {
    /// Whether configured class `i` matched.
    pub fn has(&self, i: usize) -> bool {
        i < MAX_CLASSES && self.bits & (1 << i) != 0
    }
}

/// The bytes of `v` (a condition has none).
fn bytes<'v>(arena: &'v [u8], v: &Val<'v>) -> &'v [u8] {
    match *v {
        Val::Slice(s) => s,
        Val::Arena(s, l) => &arena[s as usize..(s + l) as usize],
        Val::Bool(_) => &[],
    }
}

/// Appends the bytes of `v` to the arena.
fn append(arena: &mut Vec<u8>, v: Val<'_>) {
    match v {
        Val::Slice(s) => arena.extend_from_slice(s),
        Val::Arena(s, l) => arena.extend_from_within(s as usize..(s + l) as usize),
        Val::Bool(_) => {}
    }
}

impl Evaluator {
    /// Evaluates `e` against `pkt`, with the classes matched so far.
    pub fn eval<'a>(&mut self, e: &'a Expr, pkt: &'a impl Packet, classes: Classes) -> bool {
        if let Some(f) = &e.fast {
            return f.eval(pkt, classes);
        }
        self.eval_stack(e, pkt, classes)
    }

    /// Evaluates `e` on the stack (any expression).
    fn eval_stack<'a>(&mut self, e: &'a Expr, pkt: &'a impl Packet, classes: Classes) -> bool {
        let mut stack = [Val::Bool(false); MAX_DEPTH];
        let mut sp = 0usize;
        self.arena.clear();
        // The compiler checked the depth and the operand types: a pop never underflows and
        // finds what its operation needs.
        macro_rules! push {
            ($v:expr) => {{
                stack[sp] = $v;
                sp += 1;
            }};
        }
        macro_rules! pop {
            () => {{
                sp -= 1;
                stack[sp]
            }};
        }
        for op in &e.ops {
            match *op {
                Op::Lit(i) => push!(Val::Slice(&e.lits[usize::from(i)])),
                Op::Opt(c) => push!(Val::Slice(pkt.option(c).unwrap_or_default())),
                Op::OptAddrText(c) => {
                    // Dotted quads joined by commas, written straight into the arena.
                    let start = self.arena.len();
                    for (i, a) in pkt.option(c).unwrap_or_default().chunks_exact(4).enumerate() {
                        if i > 0 {
                            self.arena.push(b',');
                        }
                        for (k, octet) in a.iter().enumerate() {
                            if k > 0 {
                                self.arena.push(b'.');
                            }
                            if *octet >= 100 {
                                self.arena.push(b'0' + octet / 100);
                            }
                            if *octet >= 10 {
                                self.arena.push(b'0' + octet / 10 % 10);
                            }
                            self.arena.push(b'0' + octet % 10);
                        }
                    }
                    push!(Val::Arena(start as u32, (self.arena.len() - start) as u32));
                }
                Op::OptExists(c) => push!(Val::Bool(pkt.option(c).is_some())),
                Op::Relay(c) => push!(Val::Slice(pkt.relay_option(c).unwrap_or_default())),
                Op::RelayExists(c) => push!(Val::Bool(pkt.relay_option(c).is_some())),
                Op::Field(f) => {
                    let mut buf = [0u8; 16];
                    let n = pkt.field(f, &mut buf).min(16);
                    let start = self.arena.len();
                    self.arena.extend_from_slice(&buf[..n]);
                    push!(Val::Arena(start as u32, n as u32));
                }
                Op::Substring(start, len) => {
                    let v = pop!();
                    push!(match v {
                        Val::Slice(s) => {
                            let (from, n) = substring(s.len(), start, len);
                            Val::Slice(&s[from..from + n])
                        }
                        Val::Arena(s, l) => {
                            let (from, n) = substring(l as usize, start, len);
                            Val::Arena(s + from as u32, n as u32)
                        }
                        b @ Val::Bool(_) => b,
                    });
                }
                Op::Concat => {
                    let (b, a) = (pop!(), pop!());
                    let start = self.arena.len();
                    append(&mut self.arena, a);
                    append(&mut self.arena, b);
                    push!(Val::Arena(start as u32, (self.arena.len() - start) as u32));
                }
                Op::HexString => {
                    let (sep, v) = (pop!(), pop!());
                    // Both into the arena first, then the digits after them.
                    let vs = self.arena.len();
                    append(&mut self.arena, v);
                    let ss = self.arena.len();
                    append(&mut self.arena, sep);
                    let (vl, sl) = (ss - vs, self.arena.len() - ss);
                    let start = self.arena.len();
                    for i in 0..vl {
                        if i > 0 {
                            self.arena.extend_from_within(ss..ss + sl);
                        }
                        let b = self.arena[vs + i];
                        const HEX: &[u8; 16] = b"0123456789abcdef";
                        self.arena.push(HEX[usize::from(b >> 4)]);
                        self.arena.push(HEX[usize::from(b & 15)]);
                    }
                    push!(Val::Arena(start as u32, (self.arena.len() - start) as u32));
                }
                Op::Lcase | Op::Ucase => {
                    let v = pop!();
                    let start = self.arena.len();
                    append(&mut self.arena, v);
                    for b in &mut self.arena[start..] {
                        *b = if *op == Op::Lcase { b.to_ascii_lowercase() } else { b.to_ascii_uppercase() };
                    }
                    push!(Val::Arena(start as u32, (self.arena.len() - start) as u32));
                }
                Op::Eq => {
                    let (b, a) = (pop!(), pop!());
                    push!(Val::Bool(bytes(&self.arena, &a) == bytes(&self.arena, &b)));
                }
                Op::Not => {
                    let v = pop!();
                    push!(Val::Bool(matches!(v, Val::Bool(false))));
                }
                Op::And => {
                    let (b, a) = (pop!(), pop!());
                    push!(Val::Bool(matches!((a, b), (Val::Bool(true), Val::Bool(true)))));
                }
                Op::Or => {
                    let (b, a) = (pop!(), pop!());
                    push!(Val::Bool(matches!(a, Val::Bool(true)) || matches!(b, Val::Bool(true))));
                }
                Op::IfElse => {
                    let (no, yes, cond) = (pop!(), pop!(), pop!());
                    push!(if matches!(cond, Val::Bool(true)) { yes } else { no });
                }
                Op::Member(KNOWN) => push!(Val::Bool(classes.known)),
                Op::Member(UNKNOWN) => push!(Val::Bool(!classes.known)),
                Op::Member(i) => push!(Val::Bool(classes.has(usize::from(i)))),
            }
        }
        sp == 1 && matches!(stack[0], Val::Bool(true))
    }
}

/// Kea's substring of a string of `len` bytes: the (offset, length) taken.
fn substring(len: usize, start: i32, length: Option<i32>) -> (usize, usize) {
    let n = len as i64;
    let mut start = i64::from(start);
    if start >= n || start < -n {
        return (0, 0);
    }
    if start < 0 {
        start += n;
    }
    let mut length = length.map_or(n, i64::from);
    if length < 0 {
        length = -length;
        if length <= start {
            start -= length;
        } else {
            length = start;
            start = 0;
        }
    }
    let take = length.min(n - start).max(0);
    (start as usize, take as usize)
}

/// Standard DHCPv4 option names an expression may use (Kea's names).
const OPTION_NAMES: &[(&str, u8)] = &[
    ("subnet-mask", 1),
    ("routers", 3),
    ("domain-name-servers", 6),
    ("host-name", 12),
    ("domain-name", 15),
    ("vendor-encapsulated-options", 43),
    ("dhcp-requested-address", 50),
    ("dhcp-lease-time", 51),
    ("dhcp-message-type", 53),
    ("dhcp-server-identifier", 54),
    ("dhcp-parameter-request-list", 55),
    ("vendor-class-identifier", 60),
    ("dhcp-client-identifier", 61),
    ("tftp-server-name", 66),
    ("boot-file-name", 67),
    ("user-class", 77),
    ("fqdn", 81),
    ("dhcp-agent-options", 82),
    ("client-system", 93),
    ("client-ndi", 94),
    ("uuid-guid", 97),
    ("vivco-suboptions", 124),
    ("vivso-suboptions", 125),
];

/// Options whose value is text (`.text` gives it as it is).
const TEXT_OPTIONS: &[u8] = &[12, 14, 15, 17, 18, 40, 56, 60, 62, 64, 66, 67, 77];
/// Options whose value is one or more IPv4 addresses (`.text` gives them dotted).
const ADDRESS_OPTIONS: &[u8] = &[
    1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 28, 32, 41, 42, 44, 45, 48, 49, 50, 54, 65, 68, 69, 70, 71, 72, 73, 74, 75, 76,
    118,
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(Vec<u8>),
    Int(i64),
    Ip(Ipv4Addr),
    Ident(String),
    Punct(&'static str),
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    let err = |at: usize, m: String| ExprError { column: at + 1, message: m };
    while i < chars.len() {
        let c = chars[i];
        let at = i;
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let end =
                chars[i + 1..].iter().position(|&x| x == '\'').ok_or_else(|| err(at, "unterminated string".into()))?;
            let s: String = chars[i + 1..i + 1 + end].iter().collect();
            out.push((Tok::Str(s.into_bytes()), at));
            i += end + 2;
        } else if c == '0' && chars.get(i + 1).is_some_and(|x| *x == 'x' || *x == 'X') {
            let digits: String = chars[i + 2..].iter().take_while(|x| x.is_ascii_hexdigit()).collect();
            if digits.is_empty() {
                return Err(err(at, "0x must be followed by hex digits".into()));
            }
            // An odd count has an implied leading zero (Kea's rule).
            let padded = if digits.len() % 2 == 1 { format!("0{digits}") } else { digits.clone() };
            let bytes =
                (0..padded.len()).step_by(2).map(|k| u8::from_str_radix(&padded[k..k + 2], 16).unwrap_or(0)).collect();
            out.push((Tok::Str(bytes), at));
            i += 2 + digits.len();
        } else if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let word: String = chars[i..]
                .iter()
                .enumerate()
                .take_while(|(k, x)| x.is_ascii_digit() || **x == '.' || (*k == 0 && **x == '-'))
                .map(|(_, x)| *x)
                .collect();
            i += word.len();
            if word.contains('.') {
                let ip: Ipv4Addr = word.parse().map_err(|_| err(at, format!("`{word}` is not an IPv4 address")))?;
                out.push((Tok::Ip(ip), at));
            } else {
                let n: i64 = word.parse().map_err(|_| err(at, format!("`{word}` is not an integer")))?;
                out.push((Tok::Int(n), at));
            }
        } else if c.is_ascii_alphabetic() {
            let word: String =
                chars[i..].iter().take_while(|x| x.is_ascii_alphanumeric() || **x == '-' || **x == '_').collect();
            i += word.len();
            out.push((Tok::Ident(word), at));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let p = if two == "==" {
                "=="
            } else {
                match c {
                    '(' => "(",
                    ')' => ")",
                    '[' => "[",
                    ']' => "]",
                    '.' => ".",
                    ',' => ",",
                    '+' => "+",
                    _ => return Err(err(at, format!("unexpected `{c}`"))),
                }
            };
            i += p.len();
            out.push((Tok::Punct(p), at));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
    ops: Vec<Op>,
    lits: Vec<Vec<u8>>,
    /// Class names defined before this expression (for `member`).
    classes: &'a [String],
}

type PResult<T> = Result<T, ExprError>;

impl Parser<'_> {
    fn col(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |t| t.1) + 1
    }
    fn fail<T>(&self, m: impl Into<String>) -> PResult<T> {
        Err(ExprError { column: self.col(), message: m.into() })
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }
    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(x)) if x == w)
    }
    fn expect(&mut self, p: &str) -> PResult<()> {
        if self.is_punct(p) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(format!("expected `{p}`"))
        }
    }
    fn expect_word(&mut self, w: &str) -> PResult<()> {
        if self.is_word(w) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(format!("expected `{w}`"))
        }
    }
    fn lit(&mut self, b: Vec<u8>) -> PResult<()> {
        if self.lits.len() >= usize::from(u16::MAX) {
            return self.fail("too many literals");
        }
        self.lits.push(b);
        self.ops.push(Op::Lit((self.lits.len() - 1) as u16));
        Ok(())
    }
    fn int(&mut self) -> PResult<i64> {
        match self.peek() {
            Some(Tok::Int(n)) => {
                let n = *n;
                self.pos += 1;
                Ok(n)
            }
            _ => self.fail("expected an integer"),
        }
    }

    fn condition(&mut self) -> PResult<()> {
        self.and()?;
        while self.is_word("or") {
            self.pos += 1;
            self.and()?;
            self.ops.push(Op::Or);
        }
        Ok(())
    }

    fn and(&mut self) -> PResult<()> {
        self.unary()?;
        while self.is_word("and") {
            self.pos += 1;
            self.unary()?;
            self.ops.push(Op::And);
        }
        Ok(())
    }

    fn unary(&mut self) -> PResult<()> {
        if self.is_word("not") {
            self.pos += 1;
            self.unary()?;
            self.ops.push(Op::Not);
            return Ok(());
        }
        if self.is_punct("(") {
            // A parenthesised condition, or a parenthesised string compared: try the first.
            let (pos, ops, lits) = (self.pos, self.ops.len(), self.lits.len());
            self.pos += 1;
            if self.condition().is_ok() && self.is_punct(")") {
                self.pos += 1;
                if !self.is_punct("==") && !self.is_punct("+") {
                    return Ok(());
                }
            }
            self.pos = pos;
            self.ops.truncate(ops);
            self.lits.truncate(lits);
        }
        // option[N].exists, relay4[N].exists, member('c'), or a comparison.
        if (self.is_word("option") || self.is_word("relay4")) && self.exists_follows() {
            let relay = self.is_word("relay4");
            self.pos += 1;
            let code = self.code(relay)?;
            self.expect(".")?;
            self.expect_word("exists")?;
            self.ops.push(if relay { Op::RelayExists(code) } else { Op::OptExists(code) });
            return Ok(());
        }
        if self.is_word("member") {
            self.pos += 1;
            self.expect("(")?;
            let at = self.col();
            let name = match self.peek() {
                Some(Tok::Str(s)) => String::from_utf8_lossy(s).into_owned(),
                _ => return self.fail("member takes a class name in quotes"),
            };
            self.pos += 1;
            self.expect(")")?;
            let id = match name.as_str() {
                "KNOWN" => KNOWN,
                "UNKNOWN" => UNKNOWN,
                _ => match self.classes.iter().position(|c| *c == name) {
                    Some(i) => i as u16,
                    None => {
                        return Err(ExprError {
                            column: at,
                            message: format!("class '{name}' is not defined before this one"),
                        });
                    }
                },
            };
            self.ops.push(Op::Member(id));
            return Ok(());
        }
        self.string()?;
        if !self.is_punct("==") {
            return self.fail("expected `==` (a condition is needed here)");
        }
        self.pos += 1;
        self.string()?;
        self.ops.push(Op::Eq);
        Ok(())
    }

    /// Whether the tokens from here are `X [ N ] . exists`.
    fn exists_follows(&self) -> bool {
        matches!(self.toks.get(self.pos + 4..self.pos + 6), Some([(Tok::Punct("."), _), (Tok::Ident(w), _)]) if w == "exists")
    }

    /// `[ N ]` after `option` or `relay4`: an option code (or a standard name for options).
    fn code(&mut self, relay: bool) -> PResult<u8> {
        self.expect("[")?;
        let code = match self.peek().cloned() {
            Some(Tok::Int(n)) if (0..=255).contains(&n) => n as u8,
            Some(Tok::Ident(name)) if !relay => match OPTION_NAMES.iter().find(|(n, _)| *n == name) {
                Some((_, c)) => *c,
                None => return self.fail(format!("unknown option name `{name}` (use its code)")),
            },
            _ => return self.fail("expected an option code from 0 to 255"),
        };
        self.pos += 1;
        self.expect("]")?;
        Ok(code)
    }

    fn string(&mut self) -> PResult<()> {
        self.term()?;
        while self.is_punct("+") {
            self.pos += 1;
            self.term()?;
            self.ops.push(Op::Concat);
        }
        Ok(())
    }

    fn term(&mut self) -> PResult<()> {
        let Some(t) = self.peek().cloned() else { return self.fail("unexpected end of expression") };
        match t {
            Tok::Str(s) => {
                self.pos += 1;
                self.lit(s)
            }
            Tok::Int(n) => {
                self.pos += 1;
                match u32::try_from(n) {
                    Ok(v) => self.lit(v.to_be_bytes().to_vec()),
                    Err(_) => self.fail("an integer here must lie between 0 and 4294967295"),
                }
            }
            Tok::Ip(a) => {
                self.pos += 1;
                self.lit(a.octets().to_vec())
            }
            Tok::Punct("(") => {
                self.pos += 1;
                self.string()?;
                self.expect(")")
            }
            Tok::Ident(w) => self.word(&w),
            Tok::Punct(p) => self.fail(format!("unexpected `{p}`")),
        }
    }

    fn word(&mut self, w: &str) -> PResult<()> {
        match w {
            "option" | "relay4" => {
                let relay = w == "relay4";
                self.pos += 1;
                let code = self.code(relay)?;
                self.expect(".")?;
                let repr = match self.peek() {
                    Some(Tok::Ident(r)) if r == "hex" || r == "text" => r.clone(),
                    Some(Tok::Ident(r)) if r == "exists" => return self.fail("`.exists` is a condition, not a value"),
                    _ => return self.fail("expected `hex`, `text` or `exists`"),
                };
                if repr == "text" && !TEXT_OPTIONS.contains(&code) && !ADDRESS_OPTIONS.contains(&code) && !relay {
                    return self
                        .fail(format!("option[{code}].text is supported for text and address options only: use .hex"));
                }
                self.pos += 1;
                self.ops.push(match (relay, repr.as_str()) {
                    (true, _) => Op::Relay(code),
                    (false, "text") if ADDRESS_OPTIONS.contains(&code) => Op::OptAddrText(code),
                    (false, _) => Op::Opt(code),
                });
                Ok(())
            }
            "pkt4" => {
                self.pos += 1;
                self.expect(".")?;
                let f = match self.peek() {
                    Some(Tok::Ident(f)) => match f.as_str() {
                        "mac" => Field4::Mac,
                        "hlen" => Field4::Hlen,
                        "htype" => Field4::Htype,
                        "ciaddr" => Field4::Ciaddr,
                        "giaddr" => Field4::Giaddr,
                        "yiaddr" => Field4::Yiaddr,
                        "siaddr" => Field4::Siaddr,
                        "msgtype" => Field4::Msgtype,
                        "transid" => Field4::Transid,
                        other => return self.fail(format!("unknown pkt4 field `{other}`")),
                    },
                    _ => return self.fail("expected a pkt4 field"),
                };
                self.pos += 1;
                self.ops.push(Op::Field(f));
                Ok(())
            }
            "substring" => {
                self.pos += 1;
                self.expect("(")?;
                self.string()?;
                self.expect(",")?;
                let start = self.int()?;
                self.expect(",")?;
                let len = if self.is_word("all") {
                    self.pos += 1;
                    None
                } else {
                    Some(self.int()?)
                };
                self.expect(")")?;
                let fits = |n: i64| i32::try_from(n).ok();
                match (fits(start), len.map(fits)) {
                    (Some(s), None) => self.ops.push(Op::Substring(s, None)),
                    (Some(s), Some(Some(l))) => self.ops.push(Op::Substring(s, Some(l))),
                    _ => return self.fail("substring's start or length is out of range"),
                }
                Ok(())
            }
            "concat" | "hexstring" => {
                self.pos += 1;
                self.expect("(")?;
                self.string()?;
                self.expect(",")?;
                self.string()?;
                self.expect(")")?;
                self.ops.push(if w == "concat" { Op::Concat } else { Op::HexString });
                Ok(())
            }
            "lcase" | "ucase" => {
                self.pos += 1;
                self.expect("(")?;
                self.string()?;
                self.expect(")")?;
                self.ops.push(if w == "lcase" { Op::Lcase } else { Op::Ucase });
                Ok(())
            }
            "ifelse" => {
                self.pos += 1;
                self.expect("(")?;
                self.condition()?;
                self.expect(",")?;
                self.string()?;
                self.expect(",")?;
                self.string()?;
                self.expect(")")?;
                self.ops.push(Op::IfElse);
                Ok(())
            }
            "relay6" | "pkt6" | "vendor" | "vendor-class" | "split" | "sifelse" | "match" | "pkt" | "addrtotext"
            | "int8totext" | "int16totext" | "int32totext" | "uint8totext" | "uint16totext" | "uint32totext" => {
                self.fail(format!("`{w}` is not supported by dhcp-xdp (see the README's list)"))
            }
            other => self.fail(format!("unexpected `{other}`")),
        }
    }
}

impl Expr {
    /// Parses and compiles a condition; `classes` are the names of the classes defined before
    /// (which `member` may name).
    pub fn parse(src: &str, classes: &[String]) -> Result<Self, ExprError> {
        let toks = lex(src)?;
        let end = src.chars().count();
        let mut p = Parser { toks, pos: 0, end, ops: vec![], lits: vec![], classes };
        p.condition()?;
        if p.pos < p.toks.len() {
            return p.fail("unexpected text after the expression");
        }
        let mut reads = [0u64; 4];
        let mut fixed = true;
        for op in &p.ops {
            match *op {
                Op::Opt(c) | Op::OptAddrText(c) | Op::OptExists(c) => reads[usize::from(c) / 64] |= 1 << (c % 64),
                Op::Relay(_) | Op::RelayExists(_) => reads[82 / 64] |= 1 << (82 % 64),
                Op::Field(_) | Op::Member(_) => fixed = false,
                _ => {}
            }
        }
        let fast = Fast::of(&p.ops, &p.lits);
        let mut e = Self { ops: p.ops, lits: p.lits, source: src.to_owned(), reads, when_absent: None, fast };
        if e.depth() > MAX_DEPTH {
            return Err(ExprError {
                column: 1,
                message: format!("the expression nests deeper than {MAX_DEPTH} values: split it into classes"),
            });
        }
        if fixed {
            e.when_absent = Some(Evaluator::default().eval(&e, &Empty, Classes::default()));
        }
        Ok(e)
    }

    /// Its value without evaluating it, when the packet has none of the options it reads
    /// (`present`: a bit per option code the packet has) and nothing else decides it.
    #[inline]
    pub fn settled(&self, present: &[u64; 4]) -> Option<bool> {
        let r = &self.reads;
        let any = (r[0] & present[0]) | (r[1] & present[1]) | (r[2] & present[2]) | (r[3] & present[3]);
        if any == 0 { self.when_absent } else { None }
    }

    /// The deepest the evaluation stack gets.
    fn depth(&self) -> usize {
        let (mut d, mut max) = (0usize, 0usize);
        for op in &self.ops {
            d = match op {
                Op::Lit(_)
                | Op::Opt(_)
                | Op::OptAddrText(_)
                | Op::OptExists(_)
                | Op::Relay(_)
                | Op::RelayExists(_)
                | Op::Field(_)
                | Op::Member(_) => d + 1,
                Op::Substring(..) | Op::Lcase | Op::Ucase | Op::Not => d,
                Op::Concat | Op::HexString | Op::Eq | Op::And | Op::Or => d.saturating_sub(1),
                Op::IfElse => d.saturating_sub(2),
            };
            max = max.max(d);
        }
        max
    }
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
