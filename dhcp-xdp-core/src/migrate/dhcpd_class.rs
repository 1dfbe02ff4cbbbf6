//! ISC dhcpd's class expressions (dhcp-eval(5)) in Kea's expression language, which
//! `[[client-class]]` tests are written in: `match if` booleans (`=`, `!=`, `and`, `or`, `not`,
//! `exists`, parentheses) over data expressions (`option NAME`, `substring`, `suffix`,
//! `concat`, `hardware`, string and colon-hex literals, the relay agent's `agent.circuit-id`
//! and `agent.remote-id`). What has no counterpart here (`binary-to-ascii`, `pick-first-value`,
//! regular expressions, `leased-address`, …) is an error naming it, and the class is listed as
//! not carried over.

/// The option codes dhcpd's names stand for, beyond Kea's own names (which are the same for
/// the standard options).
fn option_code(name: &str) -> Option<String> {
    match name {
        "agent.circuit-id" => Some("relay4[1]".into()),
        "agent.remote-id" => Some("relay4[2]".into()),
        "agent.link-selection" => Some("relay4[5]".into()),
        "agent.relay-id" => Some("relay4[12]".into()),
        _ => crate::config::optdef::standard()
            .into_iter()
            .find(|d| d.name == name)
            .map(|d| d.code)
            .or_else(|| DHCPD_NAMES.iter().find(|(n, _)| *n == name).map(|&(_, c)| c))
            .map(|code| format!("option[{code}]")),
    }
}

/// dhcpd's names of options a class typically matches on that the option table names
/// otherwise (or not at all).
const DHCPD_NAMES: &[(&str, u8)] = &[
    ("dhcp-requested-address", 50),
    ("dhcp-message-type", 53),
    ("dhcp-parameter-request-list", 55),
    ("vendor-class-identifier", 60),
    ("dhcp-client-identifier", 61),
    ("user-class", 77),
    ("fqdn", 81),
    ("pxe-system-type", 93),
    ("client-system", 93),
    ("client-ndi", 94),
    ("uuid-guid", 97),
    ("vivco", 124),
    ("vivso", 125),
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(Vec<u8>),
    Hex(Vec<u8>),
    Num(i64),
    Punct(char),
    Ne,
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let b = src.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' | b')' | b',' | b'=' => {
                out.push(Tok::Punct(char::from(c)));
                i += 1;
            }
            b'!' if b.get(i + 1) == Some(&b'=') => {
                out.push(Tok::Ne);
                i += 2;
            }
            b'"' => {
                let mut s = vec![];
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err("a string is not closed".into()),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            s.push(*b.get(i + 1).ok_or("a string is not closed")?);
                            i += 2;
                        }
                        Some(&x) => {
                            s.push(x);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push(Tok::Str(s));
            }
            _ => {
                let start = i;
                while i < b.len()
                    && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'(' | b')' | b',' | b'=' | b'"' | b'!')
                {
                    i += 1;
                }
                let w = &src[start..i];
                if w.is_empty() {
                    return Err(format!("unexpected `{}`", char::from(c)));
                }
                // Colon-separated hex (`00:11:22`, `1:0:c:29`) is data; a bare number is a number.
                if w.contains(':') {
                    let bytes: Option<Vec<u8>> = w.split(':').map(|h| u8::from_str_radix(h, 16).ok()).collect();
                    out.push(Tok::Hex(bytes.ok_or_else(|| format!("`{w}` is not colon-separated hex"))?));
                } else if let Ok(n) = w.parse::<i64>() {
                    out.push(Tok::Num(n));
                } else {
                    out.push(Tok::Word(w.to_owned()));
                }
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

/// A data expression: Kea's text of it, or for dhcpd's `hardware` (its type byte, then the
/// MAC) a marker that `substring` and `=` turn into `pkt4.mac`.
enum Data {
    Kea(String),
    Hardware,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }

    fn expect(&mut self, p: char) -> Result<(), String> {
        match self.next() {
            Some(Tok::Punct(c)) if c == p => Ok(()),
            other => Err(format!("`{p}` expected, found {other:?}")),
        }
    }

    fn or(&mut self) -> Result<String, String> {
        let mut e = self.and()?;
        while self.word("or") {
            self.at += 1;
            e = format!("({e}) or ({})", self.and()?);
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<String, String> {
        let mut e = self.not()?;
        while self.word("and") {
            self.at += 1;
            e = format!("({e}) and ({})", self.not()?);
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<String, String> {
        if self.word("not") {
            self.at += 1;
            return Ok(format!("not ({})", self.not()?));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<String, String> {
        if self.peek() == Some(&Tok::Punct('(')) {
            self.at += 1;
            let e = self.or()?;
            self.expect(')')?;
            return Ok(e);
        }
        if self.word("exists") {
            self.at += 1;
            let Some(Tok::Word(name)) = self.next() else { return Err("an option name after `exists`".into()) };
            let opt = option_code(&name).ok_or_else(|| format!("unknown option `{name}`"))?;
            return Ok(format!("{opt}.exists"));
        }
        let left = self.data()?;
        let negate = match self.next() {
            Some(Tok::Punct('=')) => false,
            Some(Tok::Ne) => true,
            other => return Err(format!("`=` or `!=` expected, found {other:?}")),
        };
        let right = self.data()?;
        let eq = match (left, right) {
            (Data::Kea(a), Data::Kea(b)) => format!("{a} == {b}"),
            // `hardware = 1:MAC`: an Ethernet client with that MAC.
            (Data::Hardware, Data::Kea(b)) | (Data::Kea(b), Data::Hardware) => match b.strip_prefix("0x01") {
                Some(mac) if mac.len() == 12 => format!("pkt4.mac == 0x{mac}"),
                _ => return Err("`hardware` compared with anything but 1:MAC".into()),
            },
            (Data::Hardware, Data::Hardware) => "true".into(),
        };
        Ok(if negate { format!("not ({eq})") } else { eq })
    }

    fn num(&mut self) -> Result<i64, String> {
        match self.next() {
            Some(Tok::Num(n)) => Ok(n),
            other => Err(format!("a number expected, found {other:?}")),
        }
    }

    fn kea(&mut self) -> Result<String, String> {
        match self.data()? {
            Data::Kea(s) => Ok(s),
            Data::Hardware => {
                Err("`hardware` is only carried in `substring(hardware, 1, n)` or `hardware = 1:MAC`".into())
            }
        }
    }

    fn data(&mut self) -> Result<Data, String> {
        match self.next() {
            Some(Tok::Str(s)) => {
                if s.iter().all(|&c| c.is_ascii_graphic() && c != b'\'' || c == b' ') {
                    Ok(Data::Kea(format!("'{}'", String::from_utf8_lossy(&s))))
                } else {
                    Ok(Data::Kea(format!("0x{}", s.iter().map(|b| format!("{b:02x}")).collect::<String>())))
                }
            }
            Some(Tok::Hex(h)) => {
                Ok(Data::Kea(format!("0x{}", h.iter().map(|b| format!("{b:02x}")).collect::<String>())))
            }
            Some(Tok::Word(w)) => match w.as_str() {
                "option" => {
                    let Some(Tok::Word(name)) = self.next() else { return Err("an option name after `option`".into()) };
                    let opt = option_code(&name).ok_or_else(|| format!("unknown option `{name}`"))?;
                    Ok(Data::Kea(format!("{opt}.hex")))
                }
                "hardware" => Ok(Data::Hardware),
                "substring" => {
                    self.expect('(')?;
                    let d = self.data()?;
                    self.expect(',')?;
                    let off = self.num()?;
                    self.expect(',')?;
                    let len = self.num()?;
                    self.expect(')')?;
                    match d {
                        Data::Kea(d) => Ok(Data::Kea(format!("substring({d},{off},{len})"))),
                        // dhcpd's `hardware` starts with the type byte.
                        Data::Hardware if off >= 1 => Ok(Data::Kea(format!("substring(pkt4.mac,{},{len})", off - 1))),
                        Data::Hardware => Err("`substring(hardware, 0, …)` includes the hardware type".into()),
                    }
                }
                "suffix" => {
                    self.expect('(')?;
                    let d = self.kea()?;
                    self.expect(',')?;
                    let len = self.num()?;
                    self.expect(')')?;
                    Ok(Data::Kea(format!("substring({d},-{len},all)")))
                }
                "concat" => {
                    self.expect('(')?;
                    let a = self.kea()?;
                    self.expect(',')?;
                    let b = self.kea()?;
                    self.expect(')')?;
                    Ok(Data::Kea(format!("concat({a},{b})")))
                }
                other => Err(format!("`{other}` has no counterpart here")),
            },
            other => Err(format!("a data expression expected, found {other:?}")),
        }
    }
}

/// dhcpd's `match if` boolean expression `src` in Kea's language.
pub fn boolean(src: &str) -> Result<String, String> {
    let mut p = Parser { toks: lex(src)?, at: 0 };
    let e = p.or()?;
    match p.peek() {
        None => Ok(e),
        Some(t) => Err(format!("unexpected {t:?} after the expression")),
    }
}

/// dhcpd's `match DATA` (the key its subclasses are matched by) in Kea's language.
pub fn data(src: &str) -> Result<String, String> {
    let mut p = Parser { toks: lex(src)?, at: 0 };
    let d = p.kea()?;
    match p.peek() {
        None => Ok(d),
        Some(t) => Err(format!("unexpected {t:?} after the expression")),
    }
}

/// A subclass's value (`subclass "name" VALUE;`: a string or colon-hex) in Kea's language.
pub fn literal(src: &str) -> Result<String, String> {
    let mut p = Parser { toks: lex(src)?, at: 0 };
    match (p.data()?, p.peek()) {
        (Data::Kea(s), None) if s.starts_with('\'') || s.starts_with("0x") => Ok(s),
        _ => Err(format!("`{src}` is not a string or colon-hex value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dhcpd_expressions_become_keas() {
        assert_eq!(
            boolean(r#"substring(option vendor-class-identifier, 0, 6) = "IPTVBX""#).unwrap(),
            "substring(option[60].hex,0,6) == 'IPTVBX'"
        );
        assert_eq!(boolean("substring(hardware, 1, 3) = 00:11:22").unwrap(), "substring(pkt4.mac,0,3) == 0x001122");
        assert_eq!(boolean("hardware = 1:2:aa:0:0:0:1").unwrap(), "pkt4.mac == 0x02aa00000001");
        assert_eq!(
            boolean(r#"exists agent.circuit-id and not (option agent.remote-id = "x")"#).unwrap(),
            "(relay4[1].exists) and (not (relay4[2].hex == 'x'))"
        );
        assert_eq!(
            boolean(r#"option user-class = "iPXE" or suffix(option host-name, 3) != "-tv""#).unwrap(),
            "(option[77].hex == 'iPXE') or (not (substring(option[12].hex,-3,all) == '-tv'))"
        );
        assert_eq!(data("option dhcp-client-identifier").unwrap(), "option[61].hex");
        assert_eq!(literal("1:2:aa:0:0:0:1").unwrap(), "0x0102aa00000001");
        assert_eq!(literal(r#""cpe""#).unwrap(), "'cpe'");
        for bad in [
            "binary-to-ascii(16, 8, \":\", hardware) = \"x\"",
            "option no-such-option = \"x\"",
            "substring(option host-name, 0) = \"x\"",
            "option host-name ~= \"^a\"",
            "(exists host-name",
        ] {
            assert!(boolean(bad).is_err(), "{bad}");
        }
        // Every translation is one this server compiles.
        for src in [
            r#"substring(option vendor-class-identifier, 0, 6) = "IPTVBX""#,
            "substring(hardware, 1, 3) = 00:11:22",
            r#"exists agent.circuit-id and not (option agent.remote-id = "x")"#,
        ] {
            let kea = boolean(src).unwrap();
            crate::classify::Expr::parse(&kea, &[]).unwrap_or_else(|e| panic!("{kea}: {e}"));
        }
    }
}
