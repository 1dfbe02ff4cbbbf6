//! Kea's `kea-dhcp4.conf` (and `kea-dhcp6.conf`) and ISC dhcpd's `dhcpd.conf` (and its `subnet6`
//! blocks and v6 hosts, `convert6.rs`) to this server's TOML: the subnets
//! (shared networks flattened, their name kept), pools, reservations, lease times and the
//! options this server supports. What cannot be carried over is listed (by JSON path for Kea,
//! by line for dhcpd), never dropped silently.

use serde_json::{Map, Value};
use toml::{Table, Value as Toml};

use crate::{config::prefix_mask, net::Ipv4Net};

#[path = "convert6.rs"]
mod v6;

/// A converted configuration.
#[derive(Debug, Default)]
pub struct Converted {
    /// The TOML text (`dhcp-xdp check-config` accepts it).
    pub toml: String,
    /// What was not carried over: `path: why`.
    pub not_carried: Vec<String>,
}

/// Removes Kea's comments (`//`, `#` and `/* */` outside strings), which its JSON allows.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if c == '\\' {
                out.extend(chars.next());
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            '/' if chars.peek() == Some(&'/') => while chars.next_if(|&c| c != '\n').is_some() {},
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    // Lines stay where they were, so errors name the file's own line numbers.
                    if c == '\n' {
                        out.push('\n');
                    }
                    prev = c;
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Kea's lease lifetime, timers and `authoritative` (global or per subnet) into `t`.
fn lifetimes(kea: &Map<String, Value>, t: &mut Table) {
    for (k, ours) in [("valid-lifetime", "lease-time"), ("renew-timer", "renew-time"), ("rebind-timer", "rebind-time")]
    {
        if let Some(v) = kea.get(k).and_then(Value::as_i64) {
            t.insert(ours.into(), Toml::Integer(v));
        }
    }
    if let Some(a) = kea.get("authoritative").and_then(Value::as_bool) {
        t.insert("authoritative".into(), Toml::Boolean(a));
    }
}

struct Ctx {
    not_carried: Vec<String>,
}

impl Ctx {
    fn skip(&mut self, path: &str, why: &str) {
        self.not_carried.push(format!("{path}: {why}"));
    }

    /// Kea's `option-data` list into an `options` table.
    fn options(&mut self, path: &str, data: Option<&Value>) -> Option<Table> {
        let list = data?.as_array()?;
        let mut t = Table::new();
        let mut custom = vec![];
        for (i, o) in list.iter().enumerate() {
            let p = format!("{path}.option-data[{i}]");
            let name = o.get("name").and_then(Value::as_str);
            let code = o.get("code").and_then(Value::as_u64);
            let data = o.get("data").and_then(Value::as_str).unwrap_or("");
            let csv = o.get("csv-format").and_then(Value::as_bool).unwrap_or(true);
            if o.get("space").and_then(Value::as_str).is_some_and(|s| s != "dhcp4") {
                self.skip(&p, "options outside the dhcp4 space are not supported");
                continue;
            }
            let list_of = |d: &str| Toml::Array(d.split(',').map(|s| Toml::String(s.trim().into())).collect());
            match (name, code, csv) {
                (Some("routers"), _, true) | (None, Some(3), true) => {
                    t.insert("routers".into(), list_of(data));
                }
                (Some("domain-name-servers"), _, true) | (None, Some(6), true) => {
                    t.insert("dns-servers".into(), list_of(data));
                }
                (Some("ntp-servers"), _, true) | (None, Some(42), true) => {
                    t.insert("ntp-servers".into(), list_of(data));
                }
                (Some("domain-name"), _, true) | (None, Some(15), true) => {
                    t.insert("domain-name".into(), Toml::String(data.into()));
                }
                (_, Some(code @ 1..=254), false) => {
                    let mut c = Table::new();
                    c.insert("code".into(), Toml::Integer(code as i64));
                    c.insert("hex".into(), Toml::String(data.replace([' ', ':'], "")));
                    custom.push(Toml::Table(c));
                }
                _ => self.skip(
                    &p,
                    &format!(
                        "option {} is not one this server knows by name (give it as code with csv-format false)",
                        name.map(str::to_owned).or(code.map(|c| c.to_string())).unwrap_or_default()
                    ),
                ),
            }
        }
        if !custom.is_empty() {
            t.insert("custom".into(), Toml::Array(custom));
        }
        (!t.is_empty()).then_some(t)
    }

    /// Kea's boot fields (`next-server`, `server-hostname`, `boot-file-name`) and class lists
    /// (`client-class`, `client-classes`) of `m` into `t`, where this server has them; returns
    /// the keys it took.
    fn policy(m: &Map<String, Value>, t: &mut Table, guards: bool) -> Vec<&'static str> {
        let mut took = vec![];
        for k in ["next-server", "server-hostname", "boot-file-name"] {
            if let Some(v) = m.get(k).and_then(Value::as_str).filter(|v| !v.is_empty() && *v != "0.0.0.0") {
                t.insert(k.into(), Toml::String(v.into()));
            }
            took.push(k);
        }
        if guards && let Some(c) = m.get("client-class").and_then(Value::as_str) {
            t.insert("client-class".into(), Toml::String(c.into()));
        }
        if let Some(list) = m.get("client-classes").and_then(Value::as_array) {
            let names: Vec<Toml> = list.iter().filter_map(Value::as_str).map(|n| Toml::String(n.into())).collect();
            if !names.is_empty() {
                t.insert("client-classes".into(), Toml::Array(names));
            }
        }
        took.push("client-classes");
        if guards {
            took.push("client-class");
        }
        took
    }

    /// Kea's `client-classes` into `[[client-class]]`: a test this server cannot compile is
    /// listed (with the column) and its class left out.
    fn classes(&mut self, d: &Map<String, Value>) -> Vec<Toml> {
        let mut out = vec![];
        let mut names: Vec<String> = vec![];
        for (i, c) in d.get("client-classes").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let p = format!("Dhcp4.client-classes[{i}]");
            let Some(name) = c.get("name").and_then(Value::as_str) else {
                self.skip(&p, "a class without a name");
                continue;
            };
            let mut t = Table::new();
            t.insert("name".into(), Toml::String(name.into()));
            if let Some(test) = c.get("test").and_then(Value::as_str) {
                if let Err(e) = crate::classify::Expr::parse(test, &names) {
                    self.skip(&format!("{p}.test"), &format!("{e} of `{test}` (class {name} left out)"));
                    continue;
                }
                t.insert("test".into(), Toml::String(test.into()));
            }
            if let Some(o) = self.options(&p, c.get("option-data")) {
                t.insert("options".into(), Toml::Table(o));
            }
            let m = c.as_object().cloned().unwrap_or_default();
            let took = Self::policy(&m, &mut t, false);
            for k in m.keys() {
                if !matches!(k.as_str(), "name" | "test" | "option-data") && !took.contains(&k.as_str()) {
                    self.skip(&format!("{p}.{k}"), "not supported");
                }
            }
            names.push(name.into());
            out.push(Toml::Table(t));
        }
        out
    }

    fn subnet(&mut self, path: &str, s: &Map<String, Value>, shared: Option<&str>) -> Option<Table> {
        let mut t = Table::new();
        let Some(prefix) = s.get("subnet").and_then(Value::as_str) else {
            self.skip(path, "a subnet without `subnet`");
            return None;
        };
        t.insert("subnet".into(), Toml::String(prefix.into()));
        if let Some(id) = s.get("id").and_then(Value::as_i64) {
            t.insert("id".into(), Toml::Integer(id));
        }
        if let Some(name) = shared {
            t.insert("shared-network".into(), Toml::String(name.into()));
        }
        lifetimes(s, &mut t);
        if let Some(o) = self.options(path, s.get("option-data")) {
            t.insert("options".into(), Toml::Table(o));
        }
        let took = Self::policy(s, &mut t, true);
        let mut pools = vec![];
        for (i, p) in s.get("pools").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let pp = format!("{path}.pools[{i}]");
            let Some(range) = p.get("pool").and_then(Value::as_str) else { continue };
            let mut pt = Table::new();
            let Some(range) = pool_range(range) else {
                self.skip(&pp, &format!("pool `{range}` is neither FIRST - LAST nor PREFIX/LEN"));
                continue;
            };
            pt.insert("range".into(), Toml::String(range));
            if let Some(o) = self.options(&pp, p.get("option-data")) {
                pt.insert("options".into(), Toml::Table(o));
            }
            let m = p.as_object().cloned().unwrap_or_default();
            for k in ["client-class", "client-classes"] {
                if let Some(v) = m.get(k) {
                    pt.insert(k.into(), toml::Value::try_from(v).unwrap_or(Toml::String(String::new())));
                }
            }
            for k in p.as_object().into_iter().flat_map(|m| m.keys()) {
                if !matches!(k.as_str(), "pool" | "option-data" | "client-class" | "client-classes") {
                    self.skip(&format!("{pp}.{k}"), "not supported");
                }
            }
            pools.push(Toml::Table(pt));
        }
        if !pools.is_empty() {
            t.insert("pool".into(), Toml::Array(pools));
        }
        let mut res = vec![];
        for (i, r) in s.get("reservations").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let rp = format!("{path}.reservations[{i}]");
            let mut rt = Table::new();
            for (kea, ours) in [
                ("hw-address", "hw-address"),
                ("client-id", "client-id"),
                ("circuit-id", "circuit-id-hex"),
                ("ip-address", "ip"),
                ("hostname", "hostname"),
            ] {
                if let Some(v) = r.get(kea).and_then(Value::as_str) {
                    let v = if ours == "circuit-id-hex" { v.replace(':', "") } else { v.to_owned() };
                    rt.insert(ours.into(), Toml::String(v));
                }
            }
            if let Some(o) = self.options(&rp, r.get("option-data")) {
                rt.insert("options".into(), Toml::Table(o));
            }
            let took = Self::policy(&r.as_object().cloned().unwrap_or_default(), &mut rt, false);
            for k in r.as_object().into_iter().flat_map(|m| m.keys()) {
                if !matches!(
                    k.as_str(),
                    "hw-address" | "client-id" | "circuit-id" | "ip-address" | "hostname" | "option-data"
                ) && !took.contains(&k.as_str())
                {
                    self.skip(&format!("{rp}.{k}"), "not supported");
                }
            }
            res.push(Toml::Table(rt));
        }
        if !res.is_empty() {
            t.insert("reservation".into(), Toml::Array(res));
        }
        for k in s.keys() {
            let known = [
                "subnet",
                "id",
                "valid-lifetime",
                "renew-timer",
                "rebind-timer",
                "authoritative",
                "option-data",
                "pools",
                "reservations",
            ];
            if !known.contains(&k.as_str()) && !took.contains(&k.as_str()) {
                self.skip(&format!("{path}.{k}"), "not supported");
            }
        }
        Some(t)
    }
}

/// A Kea pool (`first - last` or `prefix/len`) as our `first-last`.
fn pool_range(pool: &str) -> Option<String> {
    if let Some((a, b)) = pool.split_once('-') {
        let (a, b): (std::net::Ipv4Addr, std::net::Ipv4Addr) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        return Some(format!("{a}-{b}"));
    }
    let (a, len) = pool.split_once('/')?;
    let (a, len): (std::net::Ipv4Addr, u32) = (a.trim().parse().ok()?, len.trim().parse().ok()?);
    let mask = prefix_mask(len.min(32) as u8);
    let first = u32::from(a) & mask;
    Some(format!("{}-{}", std::net::Ipv4Addr::from(first), std::net::Ipv4Addr::from(first | !mask)))
}

/// Converts Kea's configuration: a `Dhcp4` object (the file `kea-dhcp4 -c` reads) into
/// `[[subnet]]`, a `Dhcp6` object (kea-dhcp6's) into `[[subnet6]]`, or both.
pub fn convert_kea_config(text: &str) -> Result<Converted, String> {
    let v: Value = serde_json::from_str(&strip_comments(text)).map_err(|e| format!("not Kea JSON: {e}"))?;
    let d6 = v.get("Dhcp6").and_then(Value::as_object);
    let empty = Map::new();
    let d = match (v.get("Dhcp4").and_then(Value::as_object), d6) {
        (Some(d), _) => d,
        (None, Some(_)) => &empty,
        (None, None) => return Err("no \"Dhcp4\" or \"Dhcp6\" object: not a Kea server configuration".into()),
    };
    let mut cx = Ctx { not_carried: vec![] };
    let mut root = Table::new();
    if let Some(d6) = d6 {
        let subnets6 = cx.kea_dhcp6(d6);
        if !subnets6.is_empty() {
            root.insert("subnet6".into(), Toml::Array(subnets6));
        }
    }
    let mut server = Table::new();
    lifetimes(d, &mut server);
    if !server.is_empty() {
        root.insert("server".into(), Toml::Table(server));
    }
    if let Some(o) = cx.options("Dhcp4", d.get("option-data")) {
        root.insert("options".into(), Toml::Table(o));
    }
    let classes = cx.classes(d);
    if !classes.is_empty() {
        root.insert("client-class".into(), Toml::Array(classes));
    }
    let mut subnets = vec![];
    for (i, s) in d.get("subnet4").and_then(Value::as_array).into_iter().flatten().enumerate() {
        if let Some(t) = s.as_object().and_then(|s| cx.subnet(&format!("Dhcp4.subnet4[{i}]"), s, None)) {
            subnets.push(Toml::Table(t));
        }
    }
    for (n, net) in d.get("shared-networks").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let name = net.get("name").and_then(Value::as_str).unwrap_or("shared");
        let np = format!("Dhcp4.shared-networks[{n}]");
        for k in net.as_object().into_iter().flat_map(|m| m.keys()) {
            if !matches!(k.as_str(), "name" | "subnet4") {
                cx.skip(&format!("{np}.{k}"), "shared-network level settings are not supported; set them per subnet");
            }
        }
        for (i, s) in net.get("subnet4").and_then(Value::as_array).into_iter().flatten().enumerate() {
            if let Some(t) = s.as_object().and_then(|s| cx.subnet(&format!("{np}.subnet4[{i}]"), s, Some(name))) {
                subnets.push(Toml::Table(t));
            }
        }
    }
    if !subnets.is_empty() {
        root.insert("subnet".into(), Toml::Array(subnets));
    }
    for k in d.keys() {
        match k.as_str() {
            "valid-lifetime" | "renew-timer" | "rebind-timer" | "authoritative" | "option-data" | "subnet4"
            | "shared-networks" | "client-classes" => {}
            "interfaces-config" => cx.skip("Dhcp4.interfaces-config", "the interface is `--iface` of `dhcp-xdp run`"),
            "lease-database" => cx
                .skip("Dhcp4.lease-database", "leases live in --state-dir; move them with `dhcp-xdp import --kea-csv`"),
            "control-socket" => cx.skip("Dhcp4.control-socket", "set [control] socket (the commands are Kea's)"),
            "loggers" => cx.skip("Dhcp4.loggers", "the daemon logs to stderr / the journal"),
            other => cx.skip(&format!("Dhcp4.{other}"), "not supported"),
        }
    }
    let toml = toml::to_string(&root).map_err(|e| e.to_string())?;
    Ok(Converted { toml, not_carried: cx.not_carried })
}

/// A statement of `dhcpd.conf`: its words up to `;`, or a block's head words and body.
#[derive(Debug)]
struct Node {
    line: u64,
    words: Vec<String>,
    body: Option<Vec<Node>>,
}

/// `dhcpd.conf` as a tree of statements (strings as words, commas dropped).
/// The text of the statement starting with `keyword` on line `line` of `text`, after the
/// keyword, up to its `;` (quotes respected): dhcpd's expressions are read from the source, as
/// written, not from the statement's words.
fn statement_at<'t>(text: &'t str, line: u64, keyword: &str) -> Option<&'t str> {
    let start: usize = text.split_inclusive('\n').take(usize::try_from(line).ok()?.checked_sub(1)?).map(str::len).sum();
    let rest = &text[start..];
    let at = rest.match_indices(keyword).map(|(i, _)| i).find(|&i| {
        let before = rest[..i].chars().next_back();
        let after = rest[i + keyword.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '-') && after.is_some_and(char::is_whitespace)
    })?;
    let body = &rest[at + keyword.len()..];
    let mut quoted = false;
    let end = body.char_indices().find(|&(_, c)| {
        if c == '"' {
            quoted = !quoted;
        }
        !quoted && (c == ';' || c == '{')
    })?;
    Some(&body[..end.0])
}

fn dhcpd_tree(text: &str) -> Result<Vec<Node>, String> {
    use super::dhcpd::{Token, tokens};
    /// Blocks deeper than this are refused (real files nest three or four deep); the tree is
    /// built recursively, so a hostile file must not choose the depth.
    const MAX_NESTING: usize = 64;
    /// The statements up to the `}` closing a block opened on line `opened` (none: the file's
    /// top level), `depth` blocks deep.
    fn nodes(toks: &[(u64, Token)], i: &mut usize, opened: Option<u64>, depth: usize) -> Result<Vec<Node>, String> {
        let mut out = vec![];
        let mut words: Vec<String> = vec![];
        let mut line = 0;
        while let Some((l, t)) = toks.get(*i) {
            *i += 1;
            if words.is_empty() {
                line = *l;
            }
            match t {
                Token::Word(w) => words.extend(w.split(',').filter(|w| !w.is_empty()).map(str::to_owned)),
                Token::Str(s) => words.push(String::from_utf8_lossy(s).into_owned()),
                Token::Semi => {
                    if !words.is_empty() {
                        out.push(Node { line, words: std::mem::take(&mut words), body: None });
                    }
                }
                Token::Open if depth >= MAX_NESTING => {
                    return Err(format!("line {l}: blocks nested more than {MAX_NESTING} deep"));
                }
                Token::Open => {
                    let body = nodes(toks, i, Some(*l), depth + 1)?;
                    out.push(Node { line, words: std::mem::take(&mut words), body: Some(body) });
                }
                Token::Close if opened.is_some() => return Ok(out),
                Token::Close => return Err(format!("line {l}: `}}` without `{{`")),
            }
        }
        if let Some(at) = opened {
            return Err(format!("line {at}: a block opened here is not closed"));
        }
        Ok(out)
    }
    let toks = tokens(text)?;
    nodes(&toks, &mut 0, None, 0)
}

impl Ctx {
    fn dhcpd_skip(&mut self, n: &Node, why: &str) {
        self.skip(&format!("line {} `{}`", n.line, n.words.join(" ")), why);
    }

    /// An `option …;` statement into `t` (an `options` table); false if not one we carry.
    fn dhcpd_option(&mut self, n: &Node, t: &mut Table) {
        let ips = |w: &[&str]| Toml::Array(w.iter().map(|s| Toml::String(s.to_string())).collect());
        match n.words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["option", "routers", rest @ ..] => t.insert("routers".into(), ips(rest)),
            ["option", "domain-name-servers", rest @ ..] => t.insert("dns-servers".into(), ips(rest)),
            ["option", "ntp-servers", rest @ ..] => t.insert("ntp-servers".into(), ips(rest)),
            ["option", "domain-name", name] => t.insert("domain-name".into(), Toml::String(name.to_string())),
            _ => {
                self.dhcpd_skip(n, "option not supported (give it as [[options.custom]])");
                None
            }
        };
    }

    /// A `subnet` block: its prefix and its table; its hosts go to `hosts`.
    fn dhcpd_subnet<'a>(
        &mut self,
        n: &'a Node,
        shared: Option<&str>,
        id: i64,
        hosts: &mut Vec<(&'a Node, Table)>,
    ) -> Option<(Ipv4Net, Table)> {
        let (Some(addr), Some(mask)) = (
            n.words.get(1).and_then(|a| a.parse::<std::net::Ipv4Addr>().ok()),
            n.words.get(3).and_then(|m| m.parse::<std::net::Ipv4Addr>().ok()),
        ) else {
            self.dhcpd_skip(n, "not `subnet ADDRESS netmask MASK`");
            return None;
        };
        let net = Ipv4Net { addr, prefix: u32::from(mask).count_ones() as u8 };
        let mut t = Table::new();
        t.insert("subnet".into(), Toml::String(format!("{addr}/{}", net.prefix)));
        t.insert("id".into(), Toml::Integer(id));
        if let Some(name) = shared {
            t.insert("shared-network".into(), Toml::String(name.into()));
        }
        let mut options = Table::new();
        let mut pools = vec![];
        let mut body: Vec<&Node> = n.body.iter().flatten().collect();
        let mut k = 0;
        while k < body.len() {
            let c = body[k];
            k += 1;
            let w: Vec<&str> = c.words.iter().map(String::as_str).collect();
            match (w.as_slice(), &c.body) {
                (["range", "dynamic-bootp", a, b] | ["range", a, b], None) => {
                    let mut p = Table::new();
                    p.insert("range".into(), Toml::String(format!("{a}-{b}")));
                    pools.push(Toml::Table(p));
                }
                (["range", a], None) => {
                    let mut p = Table::new();
                    p.insert("range".into(), Toml::String(format!("{a}-{a}")));
                    pools.push(Toml::Table(p));
                }
                (["pool"], Some(inner)) => {
                    // `allow members of "class"` guards the pool's ranges (Kea's `client-class`).
                    let guard =
                        inner.iter().find_map(|c| match c.words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                            ["allow", "members", "of", class] => Some(class.to_owned()),
                            _ => None,
                        });
                    for c in inner {
                        let w: Vec<&str> = c.words.iter().map(String::as_str).collect();
                        match (w.as_slice(), &c.body) {
                            (["range", "dynamic-bootp", a, b] | ["range", a, b], None) => {
                                let mut p = Table::new();
                                p.insert("range".into(), Toml::String(format!("{a}-{b}")));
                                if let Some(g) = &guard {
                                    p.insert("client-class".into(), Toml::String(g.clone()));
                                }
                                pools.push(Toml::Table(p));
                            }
                            (["allow", "members", "of", _], None) => {}
                            _ => body.push(c),
                        }
                    }
                }
                (["option", ..], None) => self.dhcpd_option(c, &mut options),
                (["default-lease-time", v], None) => {
                    if let Ok(v) = v.parse::<i64>() {
                        t.insert("lease-time".into(), Toml::Integer(v));
                    }
                }
                (["authoritative"], None) => {
                    t.insert("authoritative".into(), Toml::Boolean(true));
                }
                (["not", "authoritative"], None) => {
                    t.insert("authoritative".into(), Toml::Boolean(false));
                }
                (["host", ..], Some(_)) => {
                    if let Some(h) = self.dhcpd_host(c) {
                        hosts.push((c, h));
                    }
                }
                _ => self.dhcpd_skip(c, "not supported"),
            }
        }
        if !options.is_empty() {
            t.insert("options".into(), Toml::Table(options));
        }
        if !pools.is_empty() {
            t.insert("pool".into(), Toml::Array(pools));
        }
        Some((net, t))
    }

    /// A `class` block as a `[[client-class]]`: its `match if` test in Kea's language (a
    /// `match DATA` class gets its test from its subclasses), its options and boot fields.
    /// None (listed) when its test has no counterpart here.
    fn dhcpd_class(&mut self, n: &Node, name: &str, text: &str) -> Option<Table> {
        let mut t = Table::new();
        t.insert("name".into(), Toml::String(name.into()));
        let mut options = Table::new();
        for c in n.body.iter().flatten() {
            let w: Vec<&str> = c.words.iter().map(String::as_str).collect();
            match w.as_slice() {
                ["match", "if", ..] => {
                    let src = statement_at(text, c.line, "match").unwrap_or_default();
                    let src = src.trim_start().strip_prefix("if").unwrap_or(src);
                    match super::dhcpd_class::boolean(src) {
                        Ok(kea) => {
                            t.insert("test".into(), Toml::String(kea));
                        }
                        Err(e) => {
                            self.dhcpd_skip(c, &format!("{e} (class {name} left out)"));
                            return None;
                        }
                    }
                }
                ["match", ..] => {
                    match super::dhcpd_class::data(statement_at(text, c.line, "match").unwrap_or_default()) {
                        // Its subclasses' values make the test.
                        Ok(kea) => {
                            t.insert("match".into(), Toml::String(kea));
                        }
                        Err(e) => {
                            self.dhcpd_skip(c, &format!("{e} (class {name} left out)"));
                            return None;
                        }
                    }
                }
                ["option", ..] => self.dhcpd_option(c, &mut options),
                ["filename", f] => {
                    t.insert("boot-file-name".into(), Toml::String(f.to_string()));
                }
                ["server-name", f] => {
                    t.insert("server-hostname".into(), Toml::String(f.to_string()));
                }
                ["next-server", ip] if ip.parse::<std::net::Ipv4Addr>().is_ok() => {
                    t.insert("next-server".into(), Toml::String(ip.to_string()));
                }
                _ => self.dhcpd_skip(c, &format!("not supported in a class (class {name} carried without it)")),
            }
        }
        if !options.is_empty() {
            t.insert("options".into(), Toml::Table(options));
        }
        Some(t)
    }

    /// `subclass "class" VALUE;` statements: a `match DATA` class matches when DATA is one of
    /// its subclasses' values (their own blocks of options are not carried: listed).
    fn dhcpd_subclasses(&mut self, subclasses: &[&Node], classes: &mut Vec<(String, Table)>, text: &str) {
        let mut values: Vec<(String, String)> = vec![];
        for n in subclasses {
            let parsed = statement_at(text, n.line, "subclass").ok_or("not on its line".to_owned()).and_then(|src| {
                let src = src.trim_start();
                let (class, rest) = match src.strip_prefix('"').and_then(|r| r.split_once('"')) {
                    Some((c, rest)) => (c.to_owned(), rest),
                    None => return Err("`subclass \"class\" value` expected".into()),
                };
                let rest = rest.split('{').next().unwrap_or_default();
                Ok((class, super::dhcpd_class::literal(rest.trim())?))
            });
            match parsed {
                Ok((class, v)) if classes.iter().any(|(c, t)| *c == class && t.contains_key("match")) => {
                    if n.body.as_ref().is_some_and(|b| !b.is_empty()) {
                        self.dhcpd_skip(n, "a subclass's own statements are not carried (its value is)");
                    }
                    values.push((class, v));
                }
                Ok((class, _)) => self.dhcpd_skip(n, &format!("no `match` class `{class}` declared before it")),
                Err(e) => self.dhcpd_skip(n, &e),
            }
        }
        classes.retain_mut(|(name, t)| {
            let Some(Toml::String(data)) = t.remove("match") else { return true };
            let tests: Vec<String> =
                values.iter().filter(|(c, _)| c == name).map(|(_, v)| format!("{data} == {v}")).collect();
            if tests.is_empty() {
                self.skip(&format!("class {name}"), "a `match` class without subclasses (left out)");
                return false;
            }
            t.insert("test".into(), Toml::String(tests.join(" or ")));
            true
        });
    }

    /// A `host` block as a reservation (its subnet is found from `fixed-address` later).
    fn dhcpd_host(&mut self, n: &Node) -> Option<Table> {
        let mut r = Table::new();
        let mut options = Table::new();
        for c in n.body.iter().flatten() {
            let w: Vec<&str> = c.words.iter().map(String::as_str).collect();
            match w.as_slice() {
                ["hardware", "ethernet", mac] => {
                    r.insert("hw-address".into(), Toml::String(mac.to_string()));
                }
                ["fixed-address", ip] if ip.parse::<std::net::Ipv4Addr>().is_ok() => {
                    r.insert("ip".into(), Toml::String(ip.to_string()));
                }
                ["option", "dhcp-client-identifier", id] if id.contains(':') => {
                    r.insert("client-id".into(), Toml::String(id.to_string()));
                }
                ["option", "host-name", name] => {
                    r.insert("hostname".into(), Toml::String(name.to_string()));
                }
                ["option", ..] => self.dhcpd_option(c, &mut options),
                _ => self.dhcpd_skip(c, "not supported in a host"),
            }
        }
        if !options.is_empty() {
            r.insert("options".into(), Toml::Table(options));
        }
        if !r.contains_key("ip") || !(r.contains_key("hw-address") || r.contains_key("client-id")) {
            self.dhcpd_skip(n, "a host needs `hardware ethernet` or a hex client id, and a literal `fixed-address`");
            return None;
        }
        Some(r)
    }
}

/// Converts ISC dhcpd's configuration (`dhcpd.conf`): subnets (in shared networks or not, ids
/// numbered in file order), ranges (in `pool` blocks too), hosts with a literal
/// `fixed-address` as reservations of the subnet holding it, lease times, `authoritative` and
/// the options this server knows.
pub fn convert_dhcpd_conf(text: &str) -> Result<Converted, String> {
    let tree = dhcpd_tree(text)?;
    let mut cx = Ctx { not_carried: vec![] };
    let mut root = Table::new();
    let mut server = Table::new();
    let mut options = Table::new();
    let mut subnets: Vec<(Ipv4Net, Table)> = vec![];
    let mut hosts: Vec<(&Node, Table)> = vec![];
    let mut subnets6: Vec<(std::net::Ipv6Addr, u8, Table)> = vec![];
    let mut hosts6: Vec<(&Node, Table)> = vec![];
    let mut classes: Vec<(String, Table)> = vec![];
    let mut subclasses: Vec<&Node> = vec![];
    let is_v6_host = |n: &Node| {
        n.body.iter().flatten().any(|c| {
            matches!(c.words.first().map(String::as_str), Some("fixed-address6" | "fixed-prefix6" | "host-identifier"))
        })
    };
    for n in &tree {
        let w: Vec<&str> = n.words.iter().map(String::as_str).collect();
        match (w.as_slice(), &n.body) {
            (["subnet6", ..], Some(_)) => {
                let id = subnets6.len() as i64 + 1;
                subnets6.extend(cx.dhcpd_subnet6(n, id, &mut hosts6));
            }
            (["host", ..], Some(_)) if is_v6_host(n) => {
                if let Some(h) = cx.dhcpd_host6(n) {
                    hosts6.push((n, h));
                }
            }
            (["subnet", ..], Some(_)) => {
                let id = subnets.len() as i64 + 1;
                subnets.extend(cx.dhcpd_subnet(n, None, id, &mut hosts));
            }
            (["shared-network", name], Some(body)) => {
                for s in body {
                    if s.words.first().map(String::as_str) == Some("subnet") && s.body.is_some() {
                        let id = subnets.len() as i64 + 1;
                        subnets.extend(cx.dhcpd_subnet(s, Some(name), id, &mut hosts));
                    } else {
                        cx.dhcpd_skip(s, "shared-network level settings are not supported; set them per subnet");
                    }
                }
            }
            (["host", ..], Some(_)) => {
                if let Some(h) = cx.dhcpd_host(n) {
                    hosts.push((n, h));
                }
            }
            (["option", ..], None) => cx.dhcpd_option(n, &mut options),
            (["class", name], Some(_)) => {
                if let Some(c) = cx.dhcpd_class(n, name, text) {
                    classes.push((name.to_string(), c));
                }
            }
            (["subclass", ..], _) => subclasses.push(n),
            (["default-lease-time", v], None) => {
                if let Ok(v) = v.parse::<i64>() {
                    server.insert("lease-time".into(), Toml::Integer(v));
                }
            }
            (["authoritative"], None) => {
                server.insert("authoritative".into(), Toml::Boolean(true));
            }
            _ => cx.dhcpd_skip(n, "not supported"),
        }
    }
    // Each host into the subnet that holds its address.
    for (n, h) in hosts {
        let ip: Option<std::net::Ipv4Addr> = h.get("ip").and_then(Toml::as_str).and_then(|s| s.parse().ok());
        let home = subnets.iter_mut().find(|(net, _)| {
            let mask = prefix_mask(net.prefix);
            ip.is_some_and(|ip| u32::from(ip) & mask == u32::from(net.addr) & mask)
        });
        match home {
            Some((_, s)) => match s.entry("reservation").or_insert_with(|| Toml::Array(vec![])) {
                Toml::Array(a) => a.push(Toml::Table(h)),
                _ => cx.dhcpd_skip(n, "internal: reservation is not a list"),
            },
            None => cx.dhcpd_skip(n, "its fixed-address is in no declared subnet"),
        }
    }
    cx.dhcpd_subclasses(&subclasses, &mut classes, text);
    if !classes.is_empty() {
        root.insert("client-class".into(), Toml::Array(classes.into_iter().map(|(_, t)| Toml::Table(t)).collect()));
    }
    if !server.is_empty() {
        root.insert("server".into(), Toml::Table(server));
    }
    if !options.is_empty() {
        root.insert("options".into(), Toml::Table(options));
    }
    if !subnets.is_empty() {
        root.insert("subnet".into(), Toml::Array(subnets.into_iter().map(|(_, t)| Toml::Table(t)).collect()));
    }
    v6::place_hosts6(&mut cx, &mut subnets6, hosts6);
    if !subnets6.is_empty() {
        root.insert("subnet6".into(), Toml::Array(subnets6.into_iter().map(|(_, _, t)| Toml::Table(t)).collect()));
    }
    let toml = toml::to_string(&root).map_err(|e| e.to_string())?;
    Ok(Converted { toml, not_carried: cx.not_carried })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const KEA: &str = r#"
// A Kea configuration, as operators write them.
{ "Dhcp4": {
    "interfaces-config": { "interfaces": ["eth1"] },
    "valid-lifetime": 4000, "renew-timer": 1000, "rebind-timer": 2000,
    /* global options */
    "option-data": [ { "name": "domain-name-servers", "data": "198.18.0.53, 198.18.0.54" },
                     { "code": 43, "data": "01:04:c6:12:00:01", "csv-format": false },
                     { "name": "boot-file-name", "data": "pxe.0" } ],
    "subnet4": [ {
        "id": 7, "subnet": "198.18.30.0/24",
        "pools": [ { "pool": "198.18.30.100 - 198.18.30.199" }, { "pool": "198.18.30.200 - 198.18.30.210",
                     "option-data": [ { "name": "routers", "data": "198.18.30.2" } ] } ],
        "option-data": [ { "name": "routers", "data": "198.18.30.1" }, { "name": "domain-name", "data": "isp.example" } ],
        "reservations": [ { "hw-address": "02:aa:00:00:00:01", "ip-address": "198.18.30.5", "hostname": "cpe-1" },
                          { "client-id": "01:02:aa:00:00:00:02", "ip-address": "198.18.30.6", "next-server": "198.18.0.9" } ],
        "valid-lifetime": 6000, "match-client-id": false
    } ],
    "shared-networks": [ { "name": "bng-1", "subnet4": [ { "id": 8, "subnet": "198.18.31.0/24",
        "pools": [ { "pool": "198.18.31.0/25" }, { "pool": "nowhere" } ] } ] } ],
    "lease-database": { "type": "memfile" },
    "hooks-libraries": [ { "library": "libdhcp_lease_cmds.so" } ]
} }
"#;

    #[test]
    fn kea_subnets_pools_reservations_and_options_become_a_config_this_server_loads() {
        let c = convert_kea_config(KEA).unwrap();
        let cfg = Config::parse("converted", &c.toml).unwrap_or_else(|e| panic!("{e}\n{}", c.toml));
        assert_eq!(cfg.subnets.len(), 2, "{}", c.toml);
        let s = &cfg.subnets[cfg.subnet_index(7).unwrap()];
        assert_eq!(s.lease_time, 6000);
        assert_eq!(s.reservations.len(), 2);
        assert!(s.pool_of("198.18.30.150".parse().unwrap()).is_some());
        assert!(s.pool_of("198.18.30.205".parse().unwrap()).is_some());
        assert!(cfg.subnets[cfg.subnet_index(8).unwrap()].pool_of("198.18.31.100".parse().unwrap()).is_some());
        assert!(c.toml.contains("shared-network = \"bng-1\""), "{}", c.toml);
        assert!(c.toml.contains("range = \"198.18.31.0-198.18.31.127\""), "{}", c.toml);
        assert!(c.toml.contains("hex = \"0104c6120001\""), "{}", c.toml);
        let not: Vec<&str> = c.not_carried.iter().map(|s| s.split(':').next().unwrap_or("")).collect();
        assert_eq!(
            not,
            vec![
                "Dhcp4.option-data[2]",
                "Dhcp4.subnet4[0].match-client-id",
                "Dhcp4.shared-networks[0].subnet4[0].pools[1]",
                "Dhcp4.hooks-libraries",
                "Dhcp4.interfaces-config",
                "Dhcp4.lease-database",
            ],
            "{:#?}",
            c.not_carried
        );
    }

    #[test]
    fn kea_client_classes_guards_and_boot_fields_are_carried_over() {
        let kea = r#"{ "Dhcp4": {
            "client-classes": [
                { "name": "iptv", "test": "substring(option[60].hex,0,6) == 'IPTVBX'",
                  "option-data": [{ "name": "domain-name", "data": "iptv.example.net" }] },
                { "name": "pxe", "test": "option[93].exists and not member('iptv')",
                  "next-server": "198.18.0.9", "boot-file-name": "pxelinux.0", "only-if-required": false },
                { "name": "v6only", "test": "relay6[0].option[37].hex == 'x'" }
            ],
            "subnet4": [{ "id": 1, "subnet": "198.18.0.0/24", "server-hostname": "boot.example.net",
                "pools": [{ "pool": "198.18.0.100 - 198.18.0.149", "client-class": "iptv" },
                          { "pool": "198.18.0.150 - 198.18.0.199", "client-classes": ["pxe"] }],
                "reservations": [{ "hw-address": "02:00:00:00:00:99", "client-classes": ["pxe"],
                                   "boot-file-name": "special.efi" }] }]
        } }"#;
        let c = convert_kea_config(kea).unwrap();
        let cfg = Config::parse("converted", &c.toml).unwrap_or_else(|e| panic!("{e}\n{}", c.toml));
        assert_eq!(cfg.classes.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["iptv", "pxe"], "{}", c.toml);
        assert_eq!(cfg.classes[1].boot.boot_file_name.as_deref(), Some(&b"pxelinux.0"[..]));
        let s = &cfg.subnets[0];
        assert_eq!((s.pools[0].client_classes, s.pools[1].client_classes), (0b01, 0b10));
        assert_eq!(s.boot.server_hostname.as_deref(), Some(&b"boot.example.net"[..]));
        assert_eq!(s.reservations[0].client_classes, 0b10);
        let not: Vec<&str> = c.not_carried.iter().map(|s| s.split(':').next().unwrap_or("")).collect();
        assert_eq!(
            not,
            ["Dhcp4.client-classes[1].only-if-required", "Dhcp4.client-classes[2].test"],
            "{:#?}",
            c.not_carried
        );
        assert!(
            c.not_carried[1].contains("column 1") && c.not_carried[1].contains("v6only left out"),
            "{:?}",
            c.not_carried
        );
    }

    const DHCPD: &str = r#"
# An operator's dhcpd.conf.
authoritative;
default-lease-time 3600;
max-lease-time 7200;
option domain-name "isp.example";
option domain-name-servers 198.18.0.53, 198.18.0.54;
ddns-update-style none;
subnet 198.18.40.0 netmask 255.255.255.0 {
  range 198.18.40.100 198.18.40.199;
  option routers 198.18.40.1;
  default-lease-time 600;
  pool { range 198.18.40.200 198.18.40.210; deny unknown-clients; }
  host cpe-2 { hardware ethernet 02:aa:00:00:00:02; fixed-address 198.18.40.6; }
}
shared-network bng-1 {
  option routers 198.18.41.1;
  subnet 198.18.41.0 netmask 255.255.255.0 { range dynamic-bootp 198.18.41.10 198.18.41.20; }
}
host cpe-1 { hardware ethernet 02:aa:00:00:00:01; fixed-address 198.18.40.5; option host-name "cpe-1"; }
host far { hardware ethernet 02:aa:00:00:00:09; fixed-address 198.18.99.5; }
host by-name { hardware ethernet 02:aa:00:00:00:08; fixed-address cpe.isp.example; }
"#;

    #[test]
    fn dhcpd_subnets_ranges_hosts_and_options_become_a_config_this_server_loads() {
        let c = convert_dhcpd_conf(DHCPD).unwrap();
        let cfg = Config::parse("converted", &c.toml).unwrap_or_else(|e| panic!("{e}\n{}", c.toml));
        assert_eq!(cfg.subnets.len(), 2, "{}", c.toml);
        let s = &cfg.subnets[cfg.subnet_index(1).unwrap()];
        assert_eq!(s.lease_time, 600);
        assert_eq!(s.reservations.len(), 2, "{}", c.toml);
        for a in ["198.18.40.100", "198.18.40.205"] {
            assert!(s.pool_of(a.parse().unwrap()).is_some(), "{a}");
        }
        assert!(cfg.subnets[cfg.subnet_index(2).unwrap()].pool_of("198.18.41.15".parse().unwrap()).is_some());
        assert!(c.toml.contains("shared-network = \"bng-1\""), "{}", c.toml);
        assert!(c.toml.contains("domain-name = \"isp.example\""), "{}", c.toml);
        let lines: Vec<&str> = c.not_carried.iter().map(|s| s.split('`').next().unwrap_or("").trim()).collect();
        assert_eq!(
            lines,
            vec!["line 5", "line 8", "line 13", "line 17", "line 22", "line 22", "line 21"],
            "{:#?}",
            c.not_carried
        );
    }

    /// dhcpd's classes: `match if` tests in Kea's language, `match` classes tested by their
    /// subclasses' values, options and boot fields, pools guarded by `allow members of`; a test
    /// with no counterpart here, and a `match` class without subclasses, are listed and left out.
    #[test]
    fn dhcpd_classes_become_client_classes() {
        let text = r#"
class "iptv" { match if substring(option vendor-class-identifier, 0, 6) = "IPTVBX"; option domain-name "tv.isp.example"; }
class "pxe" { match if exists client-system; filename "pxelinux.0"; next-server 198.18.0.9; }
class "vendors" { match option vendor-class-identifier; }
subclass "vendors" "docsis3.0";
subclass "vendors" "docsis3.1";
class "cameras" { match if substring(hardware, 1, 3) = 00:11:22; spawn with option agent.circuit-id; }
class "odd" { match if binary-to-ascii(16, 8, ":", hardware) = "x"; }
class "lonely" { match option host-name; }
subclass "nobody" "x";
subnet 198.18.40.0 netmask 255.255.255.0 {
  pool { allow members of "iptv"; range 198.18.40.100 198.18.40.149; }
  range 198.18.40.150 198.18.40.199;
}
"#;
        let c = convert_dhcpd_conf(text).unwrap();
        let cfg = Config::parse("converted", &c.toml).unwrap_or_else(|e| panic!("{e}\n{}", c.toml));
        let names: Vec<&str> = cfg.classes.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["iptv", "pxe", "vendors", "cameras"], "{}", c.toml);
        assert!(c.toml.contains("test = \"substring(option[60].hex,0,6) == 'IPTVBX'\""), "{}", c.toml);
        assert!(
            c.toml.contains("test = \"option[60].hex == 'docsis3.0' or option[60].hex == 'docsis3.1'\""),
            "{}",
            c.toml
        );
        assert!(c.toml.contains("test = \"substring(pkt4.mac,0,3) == 0x001122\""), "{}", c.toml);
        assert_eq!(cfg.classes[1].boot.boot_file_name.as_deref(), Some(&b"pxelinux.0"[..]));
        let s = &cfg.subnets[0];
        assert_eq!(
            s.pools.iter().map(|p| p.client_classes).collect::<Vec<_>>(),
            [0b1, 0],
            "iptv's pool, then anyone's"
        );
        let listed = c.not_carried.join("\n");
        for want in ["line 7", "class lonely", "line 10", "spawn with"] {
            assert!(listed.contains(want), "{want} not listed:\n{listed}");
        }
        assert!(listed.contains("binary-to-ascii") && listed.contains("class odd left out"), "{listed}");
    }

    #[test]
    fn what_is_not_kea_is_an_error() {
        assert!(convert_dhcpd_conf("subnet 198.18.0.0 netmask 255.255.0.0 {").is_err());
        assert!(convert_dhcpd_conf("}").is_err());
        assert!(convert_kea_config("{").is_err());
        assert!(convert_kea_config("{\"DhcpDdns\": {}}").is_err(), "neither Dhcp4 nor Dhcp6");
        assert!(convert_kea_config("{\"Dhcp6\": {}}").is_ok_and(|c| c.toml.trim().is_empty()));
        assert_eq!(strip_comments("{\"a#b\": 1} # c\n// d\n/* e */"), "{\"a#b\": 1} \n\n");
    }
}
