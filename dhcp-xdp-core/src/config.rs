//! Configuration: the TOML file as written ("wire" structs) and the validated runtime form the
//! engine reads. Every error names the file, the line and the field, and says what is wrong.
//!
//! Runtime types are immutable once built; a reload builds a new [`Config`] and swaps it whole.

use std::{collections::HashMap, net::Ipv4Addr, path::PathBuf, str::FromStr};

use serde::Deserialize;
use toml::Spanned;

use crate::{
    dhcp::opt,
    net::{Ipv4Net, colon_hex},
};

/// A configuration error with its place.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct ConfigError {
    /// File name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// Dotted field path, e.g. `subnet[0].pool[1].range`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// Wire structs (what the file says)

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    persistence: PersistenceSection,
    #[serde(default)]
    options: OptionsSection,
    #[serde(default)]
    subnet: Vec<SubnetSection>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ServerSection {
    server_id: Option<Spanned<String>>,
    lease_time: Option<Spanned<u32>>,
    renew_time: Option<Spanned<u32>>,
    rebind_time: Option<Spanned<u32>>,
    offer_hold: Option<u32>,
    decline_probation: Option<u32>,
    authoritative: Option<bool>,
    bootp: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PersistenceSection {
    dir: Option<PathBuf>,
    durability: Option<Spanned<String>>,
    snapshot_every: Option<u64>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct OptionsSection {
    routers: Option<Vec<Spanned<String>>>,
    dns_servers: Option<Vec<Spanned<String>>>,
    domain_name: Option<String>,
    ntp_servers: Option<Vec<Spanned<String>>>,
    classless_routes: Option<Vec<RouteSection>>,
    #[serde(default)]
    custom: Vec<CustomOption>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RouteSection {
    destination: Spanned<String>,
    router: Spanned<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CustomOption {
    code: Spanned<u8>,
    ip: Option<Vec<Spanned<String>>>,
    text: Option<String>,
    hex: Option<Spanned<String>>,
    u8: Option<u8>,
    u16: Option<u16>,
    u32: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SubnetSection {
    subnet: Spanned<String>,
    id: Option<u32>,
    authoritative: Option<bool>,
    lease_time: Option<u32>,
    renew_time: Option<u32>,
    rebind_time: Option<u32>,
    vlan: Option<Spanned<Vec<u16>>>,
    shared_network: Option<String>,
    server_id: Option<Spanned<String>>,
    #[serde(default)]
    options: OptionsSection,
    #[serde(default)]
    pool: Vec<PoolSection>,
    #[serde(default)]
    reservation: Vec<ReservationSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PoolSection {
    range: Spanned<String>,
    #[serde(default)]
    options: OptionsSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ReservationSection {
    hw_address: Option<Spanned<String>>,
    client_id: Option<Spanned<String>>,
    circuit_id: Option<String>,
    circuit_id_hex: Option<Spanned<String>>,
    remote_id: Option<String>,
    remote_id_hex: Option<Spanned<String>>,
    ip: Option<Spanned<String>>,
    hostname: Option<String>,
    #[serde(default)]
    options: OptionsSection,
}

// ---------------------------------------------------------------------------------------------
// Runtime types

/// Configured option values by code, each stored encoded (value bytes only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionTable {
    values: Vec<(u8, Vec<u8>)>,
}

impl OptionTable {
    /// Value of `code`.
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.values.iter().find(|(c, _)| *c == code).map(|(_, v)| v.as_slice())
    }
    /// Sets (replaces) `code`.
    pub fn set(&mut self, code: u8, value: Vec<u8>) {
        match self.values.iter_mut().find(|(c, _)| *c == code) {
            Some(slot) => slot.1 = value,
            None => self.values.push((code, value)),
        }
    }
    /// `self` overridden by `more` code by code.
    pub fn overlay(&self, more: &OptionTable) -> OptionTable {
        let mut t = self.clone();
        for (c, v) in &more.values {
            t.set(*c, v.clone());
        }
        t
    }
    /// All (code, value) pairs, in the order configured.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &[u8])> {
        self.values.iter().map(|(c, v)| (*c, v.as_slice()))
    }
}

/// Options fully merged for one scope, with a per-code index for O(1) lookup.
#[derive(Debug, Clone)]
pub struct RenderedOptions {
    id: u64,
    index: Box<[u16; 256]>,
    arena: Vec<u8>,
    order: Vec<u8>,
}

/// Source of [`RenderedOptions::id`]: never reused within a process, across reloads too.
static NEXT_RENDERED_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl RenderedOptions {
    /// Freezes a table.
    pub fn new(t: &OptionTable) -> Self {
        let mut index = Box::new([0u16; 256]);
        let mut arena = vec![0u8];
        let mut order = vec![];
        for (c, v) in t.iter() {
            index[usize::from(c)] = arena.len() as u16;
            arena.extend_from_slice(&(v.len() as u16).to_be_bytes());
            arena.extend_from_slice(v);
            order.push(c);
        }
        let id = NEXT_RENDERED_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self { id, index, arena, order }
    }
    /// Identifies this set of options for caches of what is derived from it: two sets with the
    /// same id have the same contents.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Value of `code`.
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        let at = usize::from(self.index[usize::from(code)]);
        if at == 0 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([self.arena[at], self.arena[at + 1]]));
        self.arena.get(at + 2..at + 2 + len)
    }
    /// Codes in configuration order.
    pub fn codes(&self) -> &[u8] {
        &self.order
    }
}

/// What to do with BOOTP (no option 53) requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootpPolicy {
    /// Ignore them (counted).
    Ignore,
    /// Answer clients that have a reservation with an address.
    Reservations,
}

/// Journal durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// An ACK leaves only after its lease record is fsynced (group commit across batches).
    Fsync,
    /// Records are written per batch but fsynced in the background: faster, an ACK may be
    /// lost on power failure.
    Async,
}

/// What a reservation matches on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReservationKey {
    /// chaddr (Ethernet).
    HwAddress([u8; 6]),
    /// Option 61.
    ClientId(Vec<u8>),
    /// Option 82 sub-option 1.
    CircuitId(Vec<u8>),
    /// Option 82 sub-option 2.
    RemoteId(Vec<u8>),
}

/// A reservation.
#[derive(Debug, Clone)]
pub struct Reservation {
    /// Match.
    pub key: ReservationKey,
    /// Fixed address (inside the subnet), if any.
    pub ip: Option<Ipv4Addr>,
    /// Options (subnet's overlaid with the reservation's).
    pub options: RenderedOptions,
}

/// An address range of a subnet.
#[derive(Debug, Clone)]
pub struct Pool {
    /// First address.
    pub start: Ipv4Addr,
    /// Last address (inclusive).
    pub end: Ipv4Addr,
    /// Options (subnet's overlaid with the pool's).
    pub options: RenderedOptions,
}

impl Pool {
    /// Number of addresses.
    pub fn len(&self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }
    /// Never empty (validated), but clippy likes the pair.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Whether `a` is inside.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        self.start <= a && a <= self.end
    }
}

/// A subnet.
#[derive(Debug, Clone)]
pub struct Subnet {
    /// Stable id (journal records name it).
    pub id: u32,
    /// Network.
    pub net: Ipv4Net,
    /// Pools.
    pub pools: Vec<Pool>,
    /// NAK requests for addresses that are wrong here.
    pub authoritative: bool,
    /// Lease time (s).
    pub lease_time: u32,
    /// T1 (s).
    pub renew_time: u32,
    /// T2 (s).
    pub rebind_time: u32,
    /// VLAN IDs (outer first) direct clients arrive with; empty: untagged / any.
    pub vlan: Vec<u16>,
    /// Index of the shared network this subnet belongs to.
    pub shared_network: Option<usize>,
    /// Server identifier to announce (default: the interface address).
    pub server_id: Option<Ipv4Addr>,
    /// Options (global overlaid with the subnet's).
    pub options: RenderedOptions,
    /// Reservations (indexed by `reservation_index` when the configuration is built).
    pub reservations: Vec<Reservation>,
    /// The reservations by key.
    pub reservation_index: ReservationIndex,
}

/// A subnet's reservations by each kind of key, built with the configuration, so that a request
/// costs one lookup per key it carries however many reservations there are. A key maps to the
/// first reservation that has it (configuration order decides, as it would in a scan).
#[derive(Debug, Clone, Default)]
pub struct ReservationIndex {
    /// Any reservations at all (none is the common case, checked first).
    any: bool,
    hw: hashbrown::HashMap<[u8; 6], usize>,
    client_id: hashbrown::HashMap<Vec<u8>, usize>,
    circuit_id: hashbrown::HashMap<Vec<u8>, usize>,
    remote_id: hashbrown::HashMap<Vec<u8>, usize>,
}

impl ReservationIndex {
    fn new(reservations: &[Reservation]) -> Self {
        let mut x = Self { any: !reservations.is_empty(), ..Self::default() };
        for (i, r) in reservations.iter().enumerate() {
            let _ = match &r.key {
                ReservationKey::HwAddress(m) => x.hw.entry(*m).or_insert(i),
                ReservationKey::ClientId(k) => x.client_id.entry(k.clone()).or_insert(i),
                ReservationKey::CircuitId(k) => x.circuit_id.entry(k.clone()).or_insert(i),
                ReservationKey::RemoteId(k) => x.remote_id.entry(k.clone()).or_insert(i),
            };
        }
        x
    }

    /// Whether the subnet has no reservations.
    pub fn is_empty(&self) -> bool {
        !self.any
    }

    /// The first reservation matching any of the request's keys (empty ones match nothing).
    pub fn find(&self, hw: Option<[u8; 6]>, client_id: &[u8], circuit_id: &[u8], remote_id: &[u8]) -> Option<usize> {
        if !self.any {
            return None;
        }
        self.lookup(hw, client_id, circuit_id, remote_id)
    }

    #[inline(never)]
    fn lookup(&self, hw: Option<[u8; 6]>, client_id: &[u8], circuit_id: &[u8], remote_id: &[u8]) -> Option<usize> {
        let in_map = |m: &hashbrown::HashMap<Vec<u8>, usize>, k: &[u8]| {
            if k.is_empty() || m.is_empty() { None } else { m.get(k).copied() }
        };
        let by_hw = hw.filter(|_| !self.hw.is_empty()).and_then(|m| self.hw.get(&m).copied());
        [
            by_hw,
            in_map(&self.client_id, client_id),
            in_map(&self.circuit_id, circuit_id),
            in_map(&self.remote_id, remote_id),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl Subnet {
    /// Whether `a` is inside the subnet.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let mask = prefix_mask(self.net.prefix);
        u32::from(a) & mask == u32::from(self.net.addr) & mask
    }
    /// The pool holding `a`.
    pub fn pool_of(&self, a: Ipv4Addr) -> Option<usize> {
        self.pools.iter().position(|p| p.contains(a))
    }
}

/// Validated runtime configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (`zero-config` without a file).
    pub source: String,
    /// Subnets. The lookup indexes are built from them with the configuration: read them, do
    /// not change them afterwards.
    pub subnets: Vec<Subnet>,
    /// Names of shared networks.
    pub shared_networks: Vec<String>,
    /// Server identifier override for all subnets.
    pub server_id: Option<Ipv4Addr>,
    /// How long an OFFER holds its address (s).
    pub offer_hold: u32,
    /// Probation of a declined address (s).
    pub decline_probation: u32,
    /// BOOTP handling.
    pub bootp: BootpPolicy,
    /// Journal directory (None: leases in memory only).
    pub persist_dir: Option<PathBuf>,
    /// Journal durability.
    pub durability: Durability,
    /// Journal records between snapshots.
    pub snapshot_every: u64,
    /// Subnets by address and by id.
    index: SubnetIndex,
}

/// Up to this many subnets a scan beats the index.
const SMALL: usize = 8;

/// Per-packet subnet lookups, built with the configuration: a relay network of thousands of
/// subnets costs a binary search, not a scan.
#[derive(Debug, Clone, Default)]
struct SubnetIndex {
    /// (network, broadcast, subnet index), sorted; subnets never overlap (validated).
    ranges: Vec<(u32, u32, usize)>,
    by_id: hashbrown::HashMap<u32, usize>,
    /// The only subnet without VLAN tags, if there is exactly one.
    sole_untagged: Option<usize>,
}

impl SubnetIndex {
    fn new(subnets: &[Subnet]) -> Self {
        let mut ranges: Vec<_> = subnets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mask = prefix_mask(s.net.prefix);
                let net = u32::from(s.net.addr) & mask;
                (net, net | !mask, i)
            })
            .collect();
        ranges.sort_unstable();
        let mut untagged = subnets.iter().enumerate().filter(|(_, s)| s.vlan.is_empty()).map(|(i, _)| i);
        let sole_untagged = untagged.next().filter(|_| untagged.next().is_none());
        Self { ranges, by_id: subnets.iter().enumerate().map(|(i, s)| (s.id, i)).collect(), sole_untagged }
    }
}

/// Netmask of a prefix length.
pub fn prefix_mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) }
}

struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Option<std::ops::Range<usize>>, field: &str, message: impl Into<String>) -> ConfigError {
        let line = span.map(|s| self.src[..s.start.min(self.src.len())].matches('\n').count() + 1).unwrap_or(0);
        ConfigError { file: self.file.to_owned(), line, field: field.to_owned(), message: message.into() }
    }

    fn ip(&self, s: &Spanned<String>, field: &str) -> Result<Ipv4Addr, ConfigError> {
        Ipv4Addr::from_str(s.get_ref().trim())
            .map_err(|_| self.err(Some(s.span()), field, format!("`{}` is not an IPv4 address", s.get_ref())))
    }

    fn net(&self, s: &Spanned<String>, field: &str) -> Result<Ipv4Net, ConfigError> {
        let bad =
            || self.err(Some(s.span()), field, format!("`{}` is not an IPv4 prefix like 198.18.0.0/24", s.get_ref()));
        let (a, p) = s.get_ref().split_once('/').ok_or_else(bad)?;
        let addr = Ipv4Addr::from_str(a.trim()).map_err(|_| bad())?;
        let prefix: u8 = p.trim().parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Ipv4Net { addr: Ipv4Addr::from(u32::from(addr) & prefix_mask(prefix)), prefix })
    }

    fn hex(&self, s: &Spanned<String>, field: &str) -> Result<Vec<u8>, ConfigError> {
        parse_hex(s.get_ref()).ok_or_else(|| {
            self.err(Some(s.span()), field, format!("`{}` is not hex bytes like 01:02:0a or 01020a", s.get_ref()))
        })
    }

    fn options(&self, o: &OptionsSection, field: &str) -> Result<OptionTable, ConfigError> {
        let mut t = OptionTable::default();
        let ips = |list: &Vec<Spanned<String>>, name: &str| -> Result<Vec<u8>, ConfigError> {
            let mut v = vec![];
            for (i, s) in list.iter().enumerate() {
                v.extend_from_slice(&self.ip(s, &format!("{field}.{name}[{i}]"))?.octets());
            }
            Ok(v)
        };
        if let Some(r) = &o.routers {
            t.set(opt::ROUTERS, ips(r, "routers")?);
        }
        if let Some(r) = &o.dns_servers {
            t.set(opt::DNS, ips(r, "dns-servers")?);
        }
        if let Some(d) = &o.domain_name {
            t.set(opt::DOMAIN_NAME, d.as_bytes().to_vec());
        }
        if let Some(r) = &o.ntp_servers {
            t.set(opt::NTP, ips(r, "ntp-servers")?);
        }
        if let Some(routes) = &o.classless_routes {
            let mut v = vec![];
            for (i, r) in routes.iter().enumerate() {
                let f = format!("{field}.classless-routes[{i}]");
                let dest = self.net(&r.destination, &format!("{f}.destination"))?;
                let gw = self.ip(&r.router, &format!("{f}.router"))?;
                // RFC 3442: width, significant octets of the destination, router.
                v.push(dest.prefix);
                v.extend_from_slice(&dest.addr.octets()[..usize::from(dest.prefix.div_ceil(8))]);
                v.extend_from_slice(&gw.octets());
            }
            t.set(opt::CLASSLESS_ROUTES, v);
        }
        for (i, c) in o.custom.iter().enumerate() {
            let f = format!("{field}.custom[{i}]");
            let code = *c.code.get_ref();
            if matches!(code, 0 | 255 | opt::MESSAGE_TYPE | opt::SERVER_ID | opt::OVERLOAD | opt::RELAY_AGENT_INFO) {
                return Err(self.err(
                    Some(c.code.span()),
                    &format!("{f}.code"),
                    format!("option {code} is set by the server itself"),
                ));
            }
            let mut vals = vec![];
            if let Some(list) = &c.ip {
                vals.push(ips(list, &format!("custom[{i}].ip"))?);
            }
            if let Some(s) = &c.text {
                vals.push(s.as_bytes().to_vec());
            }
            if let Some(h) = &c.hex {
                vals.push(self.hex(h, &format!("{f}.hex"))?);
            }
            if let Some(v) = c.u8 {
                vals.push(vec![v]);
            }
            if let Some(v) = c.u16 {
                vals.push(v.to_be_bytes().to_vec());
            }
            if let Some(v) = c.u32 {
                vals.push(v.to_be_bytes().to_vec());
            }
            if vals.len() != 1 {
                return Err(self.err(Some(c.code.span()), &f, "give exactly one of ip, text, hex, u8, u16, u32"));
            }
            t.set(code, vals.pop().unwrap_or_default());
        }
        Ok(t)
    }
}

/// Parses `01:02:0a`, `01-02-0a` or `01020a`.
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let clean: String = s.chars().filter(|c| !matches!(c, ':' | '-' | ' ')).collect();
    if clean.is_empty() || !clean.len().is_multiple_of(2) {
        return None;
    }
    (0..clean.len()).step_by(2).map(|i| u8::from_str_radix(&clean[i..i + 2], 16).ok()).collect()
}

fn parse_range(s: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let (a, b) = s.split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

const DEFAULT_LEASE: u32 = 3600;

impl Config {
    /// Validates TOML text `src` (named `file` in errors).
    pub fn parse(file: &str, src: &str) -> Result<Self, ConfigError> {
        let ctx = Ctx { file, src };
        let fc: FileConfig = toml::from_str(src).map_err(|e| {
            let msg = e.message().to_owned();
            ctx.err(e.span(), "-", msg)
        })?;
        Self::build(&ctx, fc)
    }

    fn build(ctx: &Ctx<'_>, fc: FileConfig) -> Result<Self, ConfigError> {
        let s = &fc.server;
        let lease_time = s.lease_time.as_ref().map(|v| *v.get_ref()).unwrap_or(DEFAULT_LEASE);
        if lease_time < 60 {
            return Err(ctx.err(
                s.lease_time.as_ref().map(|v| v.span()),
                "server.lease-time",
                "must be at least 60 seconds",
            ));
        }
        let server_id = s.server_id.as_ref().map(|v| ctx.ip(v, "server.server-id")).transpose()?;
        let bootp = match s.bootp.as_ref().map(|b| b.get_ref().as_str()) {
            None | Some("ignore") => BootpPolicy::Ignore,
            Some("reservations") => BootpPolicy::Reservations,
            Some(other) => {
                return Err(ctx.err(
                    s.bootp.as_ref().map(|b| b.span()),
                    "server.bootp",
                    format!("`{other}`: expected \"ignore\" or \"reservations\""),
                ));
            }
        };
        let durability = match fc.persistence.durability.as_ref().map(|d| d.get_ref().as_str()) {
            None | Some("fsync") => Durability::Fsync,
            Some("async") => Durability::Async,
            Some(other) => {
                return Err(ctx.err(
                    fc.persistence.durability.as_ref().map(|d| d.span()),
                    "persistence.durability",
                    format!("`{other}`: expected \"fsync\" or \"async\""),
                ));
            }
        };
        let global = ctx.options(&fc.options, "options")?;
        let mut shared: Vec<String> = vec![];
        let mut subnets: Vec<Subnet> = vec![];
        let mut ids = HashMap::new();
        for (si, sub) in fc.subnet.iter().enumerate() {
            let f = format!("subnet[{si}]");
            let net = ctx.net(&sub.subnet, &format!("{f}.subnet"))?;
            let id = sub.id.unwrap_or(si as u32 + 1);
            if let Some(prev) = ids.insert(id, si) {
                return Err(ctx.err(
                    Some(sub.subnet.span()),
                    &format!("{f}.id"),
                    format!("id {id} already used by subnet[{prev}]"),
                ));
            }
            for (oi, other) in subnets.iter().enumerate() {
                let shorter = other.net.prefix.min(net.prefix);
                if u32::from(other.net.addr) & prefix_mask(shorter) == u32::from(net.addr) & prefix_mask(shorter) {
                    return Err(ctx.err(
                        Some(sub.subnet.span()),
                        &format!("{f}.subnet"),
                        format!("overlaps subnet[{oi}] {}/{}", other.net.addr, other.net.prefix),
                    ));
                }
            }
            let lease = sub.lease_time.or(s.lease_time.as_ref().map(|v| *v.get_ref())).unwrap_or(DEFAULT_LEASE);
            let renew = sub.renew_time.or(s.renew_time.as_ref().map(|v| *v.get_ref())).unwrap_or(lease / 2);
            let rebind = sub.rebind_time.or(s.rebind_time.as_ref().map(|v| *v.get_ref())).unwrap_or(lease / 8 * 7);
            if !(renew < rebind && rebind < lease) {
                return Err(ctx.err(
                    Some(sub.subnet.span()),
                    &f,
                    format!("need renew-time ({renew}) < rebind-time ({rebind}) < lease-time ({lease})"),
                ));
            }
            let mut table = global.clone();
            table.set(opt::SUBNET_MASK, prefix_mask(net.prefix).to_be_bytes().to_vec());
            table.set(opt::BROADCAST, (u32::from(net.addr) | !prefix_mask(net.prefix)).to_be_bytes().to_vec());
            let table = table.overlay(&ctx.options(&sub.options, &format!("{f}.options"))?);
            let mut subnet = Subnet {
                id,
                net,
                pools: vec![],
                authoritative: sub.authoritative.or(s.authoritative).unwrap_or(true),
                lease_time: lease,
                renew_time: renew,
                rebind_time: rebind,
                vlan: sub.vlan.as_ref().map(|v| v.get_ref().clone()).unwrap_or_default(),
                shared_network: sub.shared_network.as_ref().map(|n| match shared.iter().position(|s| s == n) {
                    Some(i) => i,
                    None => {
                        shared.push(n.clone());
                        shared.len() - 1
                    }
                }),
                server_id: sub.server_id.as_ref().map(|v| ctx.ip(v, &format!("{f}.server-id"))).transpose()?,
                options: RenderedOptions::new(&table),
                reservations: vec![],
                reservation_index: ReservationIndex::default(),
            };
            if let Some(v) = &sub.vlan
                && (v.get_ref().len() > 2 || v.get_ref().iter().any(|&id| id == 0 || id > 4094))
            {
                return Err(ctx.err(Some(v.span()), &format!("{f}.vlan"), "one or two VLAN IDs (1–4094), outer first"));
            }
            for (pi, p) in sub.pool.iter().enumerate() {
                let pf = format!("{f}.pool[{pi}].range");
                let (start, end) = parse_range(p.range.get_ref()).ok_or_else(|| {
                    ctx.err(
                        Some(p.range.span()),
                        &pf,
                        format!("`{}` is not a range like 198.18.0.10-198.18.0.200", p.range.get_ref()),
                    )
                })?;
                if start > end || !subnet.contains(start) || !subnet.contains(end) {
                    return Err(ctx.err(
                        Some(p.range.span()),
                        &pf,
                        format!("{start}-{end} must be ascending and inside {}/{}", net.addr, net.prefix),
                    ));
                }
                if let Some(o) = subnet.pools.iter().position(|q| q.start <= end && start <= q.end) {
                    return Err(ctx.err(Some(p.range.span()), &pf, format!("overlaps pool[{o}]")));
                }
                let pt = table.overlay(&ctx.options(&p.options, &format!("{f}.pool[{pi}].options"))?);
                subnet.pools.push(Pool { start, end, options: RenderedOptions::new(&pt) });
            }
            for (ri, r) in sub.reservation.iter().enumerate() {
                let rf = format!("{f}.reservation[{ri}]");
                let mut keys = vec![];
                if let Some(h) = &r.hw_address {
                    let b = ctx.hex(h, &format!("{rf}.hw-address"))?;
                    let mac: [u8; 6] = b
                        .try_into()
                        .map_err(|_| ctx.err(Some(h.span()), &format!("{rf}.hw-address"), "needs six bytes"))?;
                    keys.push(ReservationKey::HwAddress(mac));
                }
                if let Some(c) = &r.client_id {
                    keys.push(ReservationKey::ClientId(ctx.hex(c, &format!("{rf}.client-id"))?));
                }
                if let Some(c) = &r.circuit_id {
                    keys.push(ReservationKey::CircuitId(c.as_bytes().to_vec()));
                }
                if let Some(c) = &r.circuit_id_hex {
                    keys.push(ReservationKey::CircuitId(ctx.hex(c, &format!("{rf}.circuit-id-hex"))?));
                }
                if let Some(c) = &r.remote_id {
                    keys.push(ReservationKey::RemoteId(c.as_bytes().to_vec()));
                }
                if let Some(c) = &r.remote_id_hex {
                    keys.push(ReservationKey::RemoteId(ctx.hex(c, &format!("{rf}.remote-id-hex"))?));
                }
                if keys.len() != 1 {
                    return Err(ctx.err(
                        Some(sub.subnet.span()),
                        &rf,
                        "give exactly one of hw-address, client-id, circuit-id(-hex), remote-id(-hex)",
                    ));
                }
                let ip = r.ip.as_ref().map(|v| ctx.ip(v, &format!("{rf}.ip"))).transpose()?;
                if let (Some(a), Some(sp)) = (ip, r.ip.as_ref())
                    && !subnet.contains(a)
                {
                    return Err(ctx.err(
                        Some(sp.span()),
                        &format!("{rf}.ip"),
                        format!("{a} is outside {}/{}", net.addr, net.prefix),
                    ));
                }
                if let (Some(a), Some(sp)) = (ip, r.ip.as_ref())
                    && subnet.reservations.iter().any(|x| x.ip == Some(a))
                {
                    return Err(ctx.err(Some(sp.span()), &format!("{rf}.ip"), format!("{a} is reserved twice")));
                }
                let mut rt = table.overlay(&ctx.options(&r.options, &format!("{rf}.options"))?);
                if let Some(h) = &r.hostname {
                    rt.set(opt::HOSTNAME, h.as_bytes().to_vec());
                }
                subnet.reservations.push(Reservation { key: keys.remove(0), ip, options: RenderedOptions::new(&rt) });
            }
            subnet.reservation_index = ReservationIndex::new(&subnet.reservations);
            subnets.push(subnet);
        }
        Ok(Self {
            source: ctx.file.to_owned(),
            shared_networks: shared,
            server_id,
            offer_hold: s.offer_hold.unwrap_or(30).max(1),
            decline_probation: s.decline_probation.unwrap_or(86_400),
            bootp,
            persist_dir: fc.persistence.dir.clone(),
            durability,
            snapshot_every: fc.persistence.snapshot_every.unwrap_or(100_000).max(1),
            index: SubnetIndex::new(&subnets),
            subnets,
        })
    }

    /// Zero-config: serve the interface's own subnet; pool = the subnet minus network, broadcast
    /// and the interface's address; router and DNS = the interface's address.
    pub fn zero_config(iface_name: &str, addr: Ipv4Net) -> Result<Self, ConfigError> {
        let mask = prefix_mask(addr.prefix);
        let net = u32::from(addr.addr) & mask;
        let bcast = net | !mask;
        let me = u32::from(addr.addr);
        let mut ranges = vec![];
        if addr.prefix <= 30 {
            let (first, last) = (net + 1, bcast - 1);
            if me > first {
                ranges.push((first, me - 1));
            }
            if me < last {
                ranges.push((me + 1, last));
            }
        }
        if ranges.is_empty() {
            return Err(ConfigError {
                file: "zero-config".into(),
                line: 0,
                field: iface_name.into(),
                message: format!("{}/{} leaves no address to hand out; give a config file", addr.addr, addr.prefix),
            });
        }
        let pools: String = ranges
            .iter()
            .map(|(a, b)| format!("[[subnet.pool]]\nrange = \"{}-{}\"\n", Ipv4Addr::from(*a), Ipv4Addr::from(*b)))
            .collect();
        let src = format!(
            "[options]\nrouters = [\"{me}\"]\ndns-servers = [\"{me}\"]\n[[subnet]]\nsubnet = \"{n}/{p}\"\n{pools}",
            me = addr.addr,
            n = Ipv4Addr::from(net),
            p = addr.prefix
        );
        let mut c = Self::parse(&format!("zero-config({iface_name})"), &src)?;
        c.source = format!("zero-config from {iface_name} {}/{}", addr.addr, addr.prefix);
        Ok(c)
    }

    /// Index of the subnet with id `id`.
    pub fn subnet_index(&self, id: u32) -> Option<usize> {
        if self.subnets.len() <= SMALL {
            return self.subnets.iter().position(|s| s.id == id);
        }
        self.index.by_id.get(&id).copied()
    }

    /// The only subnet without VLAN tags, if there is exactly one.
    pub fn sole_untagged(&self) -> Option<usize> {
        self.index.sole_untagged
    }

    /// Index of the subnet holding `a`.
    pub fn subnet_of(&self, a: Ipv4Addr) -> Option<usize> {
        if self.subnets.len() <= SMALL {
            return self.subnets.iter().position(|s| s.contains(a));
        }
        let a = u32::from(a);
        let r = &self.index.ranges;
        // The last range starting at or below `a`.
        let i = r.partition_point(|&(start, _, _)| start <= a).checked_sub(1)?;
        let (_, end, s) = r[i];
        (a <= end).then_some(s)
    }

    /// A human-readable account of what was understood (`check-config`).
    pub fn describe(&self) -> String {
        let mut s = format!("configuration from {}\n", self.source);
        s += &format!(
            "  offer hold {} s, decline probation {} s, bootp {:?}, persistence {} ({:?})\n",
            self.offer_hold,
            self.decline_probation,
            self.bootp,
            self.persist_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "off (memory only)".into()),
            self.durability
        );
        for sub in &self.subnets {
            s += &format!(
                "  subnet {} {}/{}: lease {} s (T1 {}, T2 {}), {}authoritative{}{}\n",
                sub.id,
                sub.net.addr,
                sub.net.prefix,
                sub.lease_time,
                sub.renew_time,
                sub.rebind_time,
                if sub.authoritative { "" } else { "not " },
                if sub.vlan.is_empty() { String::new() } else { format!(", VLAN {:?}", sub.vlan) },
                sub.shared_network.map(|i| format!(", shared network {}", self.shared_networks[i])).unwrap_or_default(),
            );
            for p in &sub.pools {
                s += &format!("    pool {}-{} ({} addresses)\n", p.start, p.end, p.len());
            }
            for c in sub.options.codes() {
                s += &format!("    option {c} = {}\n", colon_hex(sub.options.get(*c).unwrap_or_default()));
            }
            for r in &sub.reservations {
                s += &format!(
                    "    reservation {:?} → {}\n",
                    r.key,
                    r.ip.map(|a| a.to_string()).unwrap_or_else(|| "options only".into())
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[server]
lease-time = 7200
offer-hold = 20
bootp = "reservations"

[options]
dns-servers = ["198.18.0.53"]
domain-name = "example.net"

[[subnet]]
subnet = "198.18.0.0/24"
options = { routers = ["198.18.0.1"] }
  [[subnet.pool]]
  range = "198.18.0.100-198.18.0.199"
  [[subnet.pool]]
  range = "198.18.0.200-198.18.0.210"
  options = { dns-servers = ["198.18.0.54"] }
  [[subnet.reservation]]
  hw-address = "02:00:00:00:00:99"
  ip = "198.18.0.50"
  [[subnet.reservation]]
  circuit-id = "eth0/1/1"
  ip = "198.18.0.51"

[[subnet]]
subnet = "198.18.1.0/24"
authoritative = false
vlan = [100, 20]
shared-network = "campus"
  [[subnet.pool]]
  range = "198.18.1.10-198.18.1.20"
  [[subnet.options.custom]]
  code = 150
  ip = ["198.18.0.9"]
  [[subnet.options.classless-routes]]
  destination = "198.19.0.0/16"
  router = "198.18.1.1"
"#;

    #[test]
    fn sample_is_understood() {
        let c = Config::parse("sample.toml", SAMPLE).unwrap();
        assert_eq!(c.subnets.len(), 2);
        let s0 = &c.subnets[0];
        assert_eq!(s0.lease_time, 7200);
        assert_eq!((s0.renew_time, s0.rebind_time), (3600, 6300));
        assert_eq!(s0.options.get(opt::SUBNET_MASK), Some(&[255, 255, 255, 0][..]));
        assert_eq!(s0.options.get(opt::BROADCAST), Some(&[198, 18, 0, 255][..]));
        assert_eq!(s0.options.get(opt::DNS), Some(&[198, 18, 0, 53][..]));
        assert_eq!(s0.pools[1].options.get(opt::DNS), Some(&[198, 18, 0, 54][..]), "pool scope overrides");
        assert_eq!(s0.pools[1].options.get(opt::ROUTERS), Some(&[198, 18, 0, 1][..]), "subnet scope inherited");
        assert_eq!(s0.reservations[1].key, ReservationKey::CircuitId(b"eth0/1/1".to_vec()));
        let s1 = &c.subnets[1];
        assert!(!s1.authoritative);
        assert_eq!(s1.vlan, vec![100, 20]);
        assert_eq!(s1.options.get(150), Some(&[198, 18, 0, 9][..]));
        assert_eq!(s1.options.get(opt::CLASSLESS_ROUTES), Some(&[16, 198, 19, 198, 18, 1, 1][..]));
        assert_eq!(c.bootp, BootpPolicy::Reservations);
        assert!(c.describe().contains("pool 198.18.0.100-198.18.0.199 (100 addresses)"));
    }

    fn err(src: &str) -> ConfigError {
        Config::parse("bad.toml", src).unwrap_err()
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = err("[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.10-198.18.1.20\"\n");
        assert_eq!((e.file.as_str(), e.line, e.field.as_str()), ("bad.toml", 4, "subnet[0].pool[0].range"));
        assert!(e.to_string().starts_with("bad.toml:4: subnet[0].pool[0].range: "), "{e}");
        let e = err("[server]\nlease-tim = 5\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unknown field"), "{e}");
        let e = err("[options]\ndns-servers = [\"198.18.0.300\"]\n");
        assert_eq!((e.line, e.field.as_str()), (2, "options.dns-servers[0]"));
        let e = err("[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet]]\nsubnet = \"198.18.0.128/25\"\n");
        assert!(e.message.contains("overlaps subnet[0]"), "{e}");
        assert_eq!(e.line, 4);
        let e = err("[server]\nlease-time = 10\n");
        assert_eq!((e.line, e.field.as_str()), (2, "server.lease-time"));
        let e = err("[[subnet]]\nsubnet = \"198.18.0.0/24\"\nrenew-time = 3000\nrebind-time = 2000\n");
        assert!(e.message.contains("renew-time"), "{e}");
        let e = err(
            "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.reservation]]\nhw-address = \"02:00\"\nip = \"198.18.0.5\"\n",
        );
        assert_eq!(e.field, "subnet[0].reservation[0].hw-address");
    }

    #[test]
    fn subnets_are_found_by_address_and_id_among_many() {
        // 300 /24s given in shuffled order with ids not following it: the indexed lookups
        // must agree with a scan everywhere, gaps and edges included.
        let mut order: Vec<u32> = (0..300).collect();
        order.sort_by_key(|i| (i * 7919) % 300);
        let src: String = order
            .iter()
            .map(|&i| {
                let net = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + ((2 * i) << 8));
                format!("[[subnet]]\nid = {}\nsubnet = \"{net}/24\"\n", 1000 - i)
            })
            .collect();
        let c = Config::parse("many.toml", &src).unwrap();
        assert!(c.subnets.len() > SMALL);
        for probe in (0..=u32::from(Ipv4Addr::new(198, 20, 0, 0)) - u32::from(Ipv4Addr::new(198, 18, 0, 0))).step_by(61)
        {
            let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + probe);
            assert_eq!(c.subnet_of(a), c.subnets.iter().position(|s| s.contains(a)), "{a}");
        }
        for edge in [Ipv4Addr::new(198, 18, 0, 0), Ipv4Addr::new(198, 18, 0, 255), Ipv4Addr::new(198, 18, 1, 0)] {
            assert_eq!(c.subnet_of(edge), c.subnets.iter().position(|s| s.contains(edge)), "{edge}");
        }
        assert_eq!(c.subnet_of(Ipv4Addr::new(198, 17, 255, 255)), None);
        for (i, s) in c.subnets.iter().enumerate() {
            assert_eq!(c.subnet_index(s.id), Some(i));
        }
        assert_eq!(c.subnet_index(1), None);
        assert_eq!(c.sole_untagged(), None, "300 untagged subnets");
    }

    #[test]
    fn the_first_matching_reservation_wins_whatever_its_key() {
        let c = Config::parse(
            "r.toml",
            "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n\
             [[subnet.reservation]]\ncircuit-id = \"olt1\"\nip = \"198.18.0.10\"\n\
             [[subnet.reservation]]\nhw-address = \"02:00:00:00:00:01\"\nip = \"198.18.0.11\"\n\
             [[subnet.reservation]]\nhw-address = \"02:00:00:00:00:01\"\nip = \"198.18.0.12\"\n\
             [[subnet.reservation]]\nclient-id = \"01:02\"\nip = \"198.18.0.13\"\n",
        )
        .unwrap();
        assert_eq!(c.sole_untagged(), Some(0));
        let x = &c.subnets[0].reservation_index;
        let mac = Some([2, 0, 0, 0, 0, 1]);
        assert_eq!(x.find(mac, &[], &[], &[]), Some(1), "the first of two equal keys");
        assert_eq!(x.find(mac, &[], b"olt1", &[]), Some(0), "configuration order across kinds");
        assert_eq!(x.find(None, &[1, 2], &[], &[]), Some(3));
        assert_eq!(x.find(Some([2, 0, 0, 0, 0, 2]), &[1], b"olt", b"olt1"), None, "remote id is not circuit id");
        assert_eq!(x.find(None, &[], &[], &[]), None);
    }

    #[test]
    fn zero_config_serves_the_interface_subnet_minus_itself() {
        let c = Config::zero_config("eth1", Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 1), prefix: 24 }).unwrap();
        let s = &c.subnets[0];
        assert_eq!(s.pools.len(), 1);
        assert_eq!((s.pools[0].start, s.pools[0].end), (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 254)));
        assert_eq!(s.options.get(opt::ROUTERS), Some(&[198, 18, 0, 1][..]));
        assert_eq!(s.options.get(opt::DNS), Some(&[198, 18, 0, 1][..]));
        let c = Config::zero_config("eth1", Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 77), prefix: 24 }).unwrap();
        assert_eq!(c.subnets[0].pools.len(), 2);
        assert!(Config::zero_config("eth1", Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 1), prefix: 32 }).is_err());
    }
}
