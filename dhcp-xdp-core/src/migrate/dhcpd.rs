//! ISC dhcpd's lease file (`dhcpd.leases`, dhcpd.leases(5)). dhcpd appends a `lease ADDR { … }`
//! block each time a lease changes, so the last block of an address wins. Times are UTC
//! (`W YYYY/MM/DD HH:MM:SS`), `epoch N` (`db-time-format local`) or `never`.
//!
//! Binding states: `active` (and `bootp`, `reserved`) are held leases; `abandoned` (a DECLINE or
//! a ping conflict) becomes a declined address in probation; `free`, `backup` (free, owned by
//! the failover peer), `expired`, `released` and `reset` hold nothing and go back to the pool.
//! A lease's `uid` becomes its client id, else its `hardware ethernet` address is the key.
//! `client-hostname` becomes the lease's host name, the stashed `option agent.circuit-id` and
//! `agent.remote-id` its option 82; `set` statements are passed over.

use std::net::Ipv4Addr;

use hashbrown::HashMap;

use super::{Import, Skipped};
use crate::{
    config::{Config, parse_hex},
    leases::{ClientKey, Lease, LeaseState},
    net::parse_mac,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    Word(String),
    Str(Vec<u8>),
    Semi,
    Open,
    Close,
}

/// Splits the file into tokens with their 1-based lines; `#` comments are dropped, quoted
/// strings unescaped (`\"`, `\\`, `\ooo` octal, `\xhh`, `\n`, `\t`).
pub(super) fn tokens(text: &str) -> Result<Vec<(u64, Token)>, String> {
    let mut out = vec![];
    let mut line = 1u64;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            ';' => out.push((line, Token::Semi)),
            '{' => out.push((line, Token::Open)),
            '}' => out.push((line, Token::Close)),
            '"' => {
                let start = line;
                let mut s = vec![];
                loop {
                    match chars.next() {
                        None => return Err(format!("line {start}: unterminated string")),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(d @ '0'..='7') => {
                                let mut v = d.to_digit(8).unwrap_or(0);
                                for _ in 0..2 {
                                    if let Some(d) = chars.next_if(|c| c.is_digit(8)) {
                                        v = v * 8 + d.to_digit(8).unwrap_or(0);
                                    }
                                }
                                s.push(v as u8);
                            }
                            Some('x') => {
                                let mut v = 0u32;
                                for _ in 0..2 {
                                    if let Some(d) = chars.next_if(|c| c.is_ascii_hexdigit()) {
                                        v = v * 16 + d.to_digit(16).unwrap_or(0);
                                    }
                                }
                                s.push(v as u8);
                            }
                            Some('n') => s.push(b'\n'),
                            Some('t') => s.push(b'\t'),
                            Some('r') => s.push(b'\r'),
                            Some(c) => s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                            None => return Err(format!("line {start}: unterminated string")),
                        },
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                        }
                    }
                }
                out.push((start, Token::Str(s)));
            }
            c => {
                let mut w = String::from(c);
                while let Some(c) = chars.next_if(|&c| !c.is_whitespace() && !matches!(c, ';' | '{' | '}' | '"' | '#'))
                {
                    w.push(c);
                }
                out.push((line, Token::Word(w)));
            }
        }
    }
    Ok(out)
}

use crate::calendar::days_from_civil;

/// When a `starts`/`ends` statement's words say: `Some(None)` for `never`.
fn time(words: &[&str]) -> Option<Option<u32>> {
    match words {
        ["never"] => Some(None),
        ["epoch", n, ..] => n.parse().ok().map(Some),
        [_weekday, date, clock] => {
            let d: Vec<i64> = date.split('/').map(str::parse).collect::<Result<_, _>>().ok()?;
            let t: Vec<i64> = clock.split(':').map(str::parse).collect::<Result<_, _>>().ok()?;
            let ([y, mo, da], [h, mi, s]) = (d.as_slice(), t.as_slice()) else { return None };
            if !(1..=12).contains(mo) || !(1..=31).contains(da) || *h > 23 || *mi > 59 || *s > 60 {
                return None;
            }
            let secs = days_from_civil(*y, *mo, *da) * 86_400 + h * 3600 + mi * 60 + s;
            u32::try_from(secs).ok().map(Some)
        }
        _ => None,
    }
}

/// One `lease` block, as far as a lease needs it.
#[derive(Debug, Default)]
struct Entry {
    line: u64,
    ends: Option<Option<u32>>,
    state: Option<String>,
    hardware: Option<(String, String)>,
    uid: Option<Vec<u8>>,
    hostname: Option<Vec<u8>>,
    /// Option 82 rebuilt from the stashed `agent.circuit-id` and `agent.remote-id`.
    agent: Vec<u8>,
    bad: Option<String>,
}

impl Entry {
    fn statement(&mut self, st: &[Token]) {
        let words: Vec<&str> = st
            .iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w.as_str()),
                _ => None,
            })
            .collect();
        match words.as_slice() {
            ["ends", rest @ ..] => match time(rest) {
                Some(t) => self.ends = Some(t),
                None => self.bad = Some(format!("'ends {}' is not a time", rest.join(" "))),
            },
            ["binding", "state", s] => self.state = Some(s.to_string()),
            ["abandoned"] => self.state = Some("abandoned".into()),
            ["hardware", kind, mac] => self.hardware = Some((kind.to_string(), mac.to_string())),
            ["option", sub @ ("agent.circuit-id" | "agent.remote-id"), ..] => {
                let v = match st.get(2) {
                    Some(Token::Str(s)) => Some(s.clone()),
                    Some(Token::Word(w)) => parse_hex(w),
                    _ => None,
                };
                if let Some(v) = v.filter(|v| !v.is_empty() && v.len() <= 255) {
                    self.agent.push(if *sub == "agent.circuit-id" { 1 } else { 2 });
                    self.agent.push(v.len() as u8);
                    self.agent.extend_from_slice(&v);
                }
            }
            ["client-hostname", ..] => {
                if let Some(Token::Str(s)) = st.get(1) {
                    self.hostname = Some(s.clone());
                }
            }
            ["uid", ..] => {
                self.uid = match st.get(1) {
                    Some(Token::Str(s)) => Some(s.clone()),
                    Some(Token::Word(w)) => parse_hex(w),
                    _ => None,
                }
            }
            _ => {}
        }
    }
}

/// Reads a `dhcpd.leases` against `cfg` at `now`: each address's last block. Held leases
/// outside every configured pool and reservation, or without an Ethernet address, are reported
/// in [`Import::skipped`]; an `ends never` lease gets its subnet's lease time from `now`.
pub fn read_dhcpd_leases(text: &str, cfg: &Config, now: u32) -> Result<Import, String> {
    let toks = tokens(text)?;
    let mut out = Import::default();
    let mut last: HashMap<Ipv4Addr, Entry> = HashMap::new();
    let mut i = 0;
    while i < toks.len() {
        let (line, ref t) = toks[i];
        let lease_addr = match (t, toks.get(i + 1), toks.get(i + 2)) {
            (Token::Word(w), Some((_, Token::Word(a))), Some((_, Token::Open))) if w == "lease" => Some(a),
            _ => None,
        };
        let Some(a) = lease_addr else {
            i = skip_statement(&toks, i);
            continue;
        };
        let Ok(addr) = a.parse::<Ipv4Addr>() else {
            out.skipped.push(Skipped { line, addr: None, why: format!("'{a}' is not an IPv4 address") });
            i = skip_statement(&toks, i);
            continue;
        };
        // The block's statements, nested blocks (`on expiry { … }`) skipped.
        let mut e = Entry { line, ..Entry::default() };
        let mut j = i + 3;
        let mut st: Vec<Token> = vec![];
        loop {
            match toks.get(j).map(|(_, t)| t) {
                None => return Err(format!("line {line}: lease {addr} is not closed")),
                Some(Token::Close) => break,
                Some(Token::Semi) => {
                    e.statement(&st);
                    st.clear();
                    j += 1;
                }
                Some(Token::Open) => {
                    j = skip_statement(&toks, j);
                    st.clear();
                }
                Some(t) => {
                    st.push(t.clone());
                    j += 1;
                }
            }
        }
        i = j + 1;
        last.insert(addr, e);
    }
    let mut entries: Vec<_> = last.into_iter().collect();
    entries.sort_by_key(|(addr, _)| u32::from(*addr));
    for (addr, e) in entries {
        let skip = |why: String| Skipped { line: e.line, addr: Some(addr), why };
        if let Some(why) = &e.bad {
            out.skipped.push(skip(why.clone()));
            continue;
        }
        let lease_time = cfg.subnet_of(addr).map(|i| cfg.subnets[i].lease_time).unwrap_or(cfg.decline_probation);
        let ends = match e.ends {
            Some(Some(t)) => t,
            Some(None) => now.saturating_add(lease_time),
            None => 0,
        };
        let (state, expires) = match e.state.as_deref() {
            // Files from before binding states: a lease is held until it ends.
            Some("active" | "bootp" | "reserved") | None if ends > now => (LeaseState::Bound, ends),
            Some("abandoned") => (LeaseState::Declined, ends.max(now.saturating_add(cfg.decline_probation))),
            Some("active" | "bootp" | "reserved" | "free" | "backup" | "expired" | "released" | "reset") | None => {
                out.unheld += 1;
                continue;
            }
            Some(other) => {
                out.skipped.push(skip(format!("unknown binding state '{other}'")));
                continue;
            }
        };
        let chaddr = match &e.hardware {
            Some((kind, mac)) if kind == "ethernet" => parse_mac(mac),
            _ => None,
        };
        let key = match (&e.uid, chaddr) {
            // dhcpd forgets the client of an abandoned address; so do we.
            _ if state == LeaseState::Declined => ClientKey::declined(addr),
            (Some(uid), _) if !uid.is_empty() => ClientKey::client_id(uid, 0), // scoped by `Import::admit`
            (_, Some(chaddr)) => ClientKey::hw(1, &chaddr, 0),
            (_, None) => {
                let hw = e.hardware.as_ref().map(|(k, m)| format!("{k} {m}")).unwrap_or_else(|| "none".into());
                out.skipped.push(skip(format!("hardware address '{hw}' is not Ethernet")));
                continue;
            }
        };
        let chaddr = chaddr.unwrap_or_default();
        let lease = Lease { key, chaddr, addr, expires, state, subnet: 0, tags: Default::default() };
        out.admit(cfg, e.line, None, lease, [e.hostname.as_deref().unwrap_or_default(), &e.agent]);
    }
    Ok(out)
}

/// The index after the statement or block starting at `i` (a top-level `failover peer { … }`,
/// `server-duid …;`, a nested `on expiry { … }`).
fn skip_statement(toks: &[(u64, Token)], mut i: usize) -> usize {
    let mut depth = 0usize;
    while let Some((_, t)) = toks.get(i) {
        i += 1;
        match t {
            Token::Open => depth += 1,
            Token::Close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i;
                }
            }
            Token::Semi if depth == 0 => return i,
            _ => {}
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::parse(
            "t",
            "[server]\ndecline-probation = 600\n[[subnet]]\nsubnet = \"198.18.22.0/24\"\nlease-time = 7200\n\
             [[subnet.pool]]\nrange = \"198.18.22.100-198.18.22.199\"\n",
        )
        .unwrap()
    }

    const NOW: u32 = 1_796_160_000; // 2026-12-01 21:20:00 UTC

    #[test]
    fn times_are_utc_dates_epochs_or_never() {
        assert_eq!(time(&["2", "2026/12/01", "21:20:00"]), Some(Some(NOW)));
        assert_eq!(time(&["4", "1970/01/01", "00:00:00"]), Some(Some(0)));
        assert_eq!(time(&["epoch", "1796160000"]), Some(Some(NOW)));
        assert_eq!(time(&["never"]), Some(None));
        assert_eq!(time(&["2", "2026/13/01", "21:20:00"]), None);
        assert_eq!(time(&["soon"]), None);
    }

    #[test]
    fn every_binding_state_is_carried_over_or_left_to_the_pool() {
        let text = r#"
# The format of this file is documented in the dhcpd.leases(5) manual page.
authoring-byte-order little-endian;
server-duid "\000\001\000\001,\302\2223\002\000\000\000\000\001";
failover peer "peer" state { my state normal at 2 2026/12/01 20:00:00; partner state normal at 2 2026/12/01 20:00:00; }

lease 198.18.22.100 {
  starts 2 2026/12/01 20:00:00;
  ends 2 2026/12/01 21:00:00;
  binding state active;
  hardware ethernet 02:aa:00:00:00:00;
}
lease 198.18.22.101 {
  starts 2 2026/12/01 21:00:00;
  ends 2 2026/12/01 23:00:00;
  cltt 2 2026/12/01 21:00:00;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 02:aa:00:00:00:01;
  uid "\001\002\252\000\000\000\001";
  set vendor-class-identifier = "udhcp 1.36.1";
  client-hostname "cpe-1";
  option agent.circuit-id "olt1/1/1";
  option agent.remote-id 63:70:65:2d:31;
  on expiry { set x = "y"; }
}
lease 198.18.22.100 {
  starts 2 2026/12/01 21:00:00;
  ends epoch 1796167200; # Tue Dec 01 23:20:00 2026
  binding state active;
  hardware ethernet 02:aa:00:00:00:00;
  uid 01:02:aa:00:00:00:00;
}
lease 198.18.22.102 { ends 2 2026/12/01 23:00:00; binding state free; hardware ethernet 02:aa:00:00:00:02; }
lease 198.18.22.103 { ends 2 2026/12/01 23:00:00; binding state backup; }
lease 198.18.22.104 { ends 2 2026/12/01 21:30:00; binding state abandoned; }
lease 198.18.22.105 { ends 2 2026/12/01 23:00:00; binding state released; hardware ethernet 02:aa:00:00:00:05; }
lease 198.18.22.106 { ends never; binding state active; hardware ethernet 02:aa:00:00:00:06; }
lease 198.18.22.107 { ends 2 2026/12/01 23:00:00; binding state active; hardware token-ring 00:00:00:00:00:07; }
lease 198.18.22.50 { ends 2 2026/12/01 23:00:00; binding state active; hardware ethernet 02:aa:00:00:00:50; }
lease 198.18.99.1 { ends 2 2026/12/01 23:00:00; binding state active; hardware ethernet 02:aa:00:00:00:99; }
lease 198.18.22.108 { ends 2 2026/12/01 21:00:00; binding state active; hardware ethernet 02:aa:00:00:00:08; }
"#;
        let imp = read_dhcpd_leases(text, &cfg(), NOW).unwrap();
        let got: Vec<(Ipv4Addr, u32, LeaseState, [u8; 6])> =
            imp.leases.iter().map(|l| (l.addr, l.expires, l.state, l.chaddr)).collect();
        let a = |n| Ipv4Addr::new(198, 18, 22, n);
        assert_eq!(
            got,
            vec![
                (a(100), NOW + 7200, LeaseState::Bound, [2, 0xaa, 0, 0, 0, 0]),
                (a(101), NOW + 6000, LeaseState::Bound, [2, 0xaa, 0, 0, 0, 1]),
                (a(104), NOW + 600, LeaseState::Declined, [0; 6]),
                (a(106), NOW + 7200, LeaseState::Bound, [2, 0xaa, 0, 0, 0, 6]),
            ]
        );
        assert_eq!(imp.leases[0].key, ClientKey::client_id(&[1, 2, 0xaa, 0, 0, 0, 0], 1));
        assert_eq!(imp.leases[1].key, ClientKey::client_id(&[1, 2, 0xaa, 0, 0, 0, 1], 1));
        assert_eq!(imp.leases[2].key, ClientKey::declined(a(104)));
        assert_eq!(imp.leases[3].key, ClientKey::hw(1, &[2, 0xaa, 0, 0, 0, 6], 1));
        assert!(imp.leases.iter().all(|l| l.subnet == 1));
        // The stashed agent options become the lease's option 82, and its line's tags.
        let rai = imp.attrs.get(&(crate::leases::Attr::RelayInfo, imp.leases[1].key)).map(|v| v.to_vec());
        assert_eq!(rai.as_deref(), Some(&b"\x01\x08olt1/1/1\x02\x05cpe-1"[..]));
        let tags = crate::leases::Tags {
            circuit: crate::leases::Tags::of(b"olt1/1/1"),
            remote: crate::leases::Tags::of(b"cpe-1"),
        };
        assert_eq!(imp.leases[1].tags, tags);
        assert_eq!(imp.attrs.get(&(crate::leases::Attr::Name, imp.leases[1].key)).map(|v| &v[..]), Some(&b"cpe-1"[..]));
        assert_eq!(imp.unheld, 4, "free, backup, released, ended");
        let skipped: Vec<(Option<Ipv4Addr>, &str)> = imp.skipped.iter().map(|s| (s.addr, s.why.as_str())).collect();
        assert_eq!(
            skipped,
            vec![
                (Some(a(50)), "outside every pool and reservation of subnet 1"),
                (Some(a(107)), "hardware address 'token-ring 00:00:00:00:00:07' is not Ethernet"),
                (Some(Ipv4Addr::new(198, 18, 99, 1)), "outside every configured subnet"),
            ]
        );
    }

    #[test]
    fn broken_files_are_errors_or_reports_never_panics() {
        let c = cfg();
        assert!(read_dhcpd_leases("lease 198.18.22.100 { ends never;", &c, NOW).is_err());
        assert!(read_dhcpd_leases("lease 198.18.22.100 { uid \"abc", &c, NOW).is_err());
        let imp =
            read_dhcpd_leases("lease 198.18.22.300 { }\nlease 198.18.22.101 { ends 2 2026/99/01 00:00:00; }", &c, NOW)
                .unwrap();
        assert_eq!(imp.leases, vec![]);
        assert_eq!(imp.skipped.len(), 2, "{:?}", imp.skipped);
        for junk in ["}", "{", ";;;", "lease", "lease {", "\"", "\\", "lease 1.2.3.4 { { } } }"] {
            let _ = read_dhcpd_leases(junk, &c, NOW);
        }
    }
}
