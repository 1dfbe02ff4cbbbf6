//! DHCPv6 configuration: `[[subnet6]]` with address pools, prefix-delegation pools and
//! reservations, as written (serde sections) and validated (runtime types). Names follow Kea's
//! `Dhcp6` where it has one.
//!
//! ```toml
//! [[subnet6]]
//! subnet = "2001:db8:1::/64"
//! interface-id = "olt1/1/1"            # a relay's interface-id selects this subnet
//! options = { dns-servers = ["2001:db8::53"], domain-search = ["example.net"] }
//!   [[subnet6.pool]]
//!   range = "2001:db8:1::100-2001:db8:1::1ff"
//!   [[subnet6.pd-pool]]
//!   prefix = "2001:db8:100::"
//!   prefix-len = 40
//!   delegated-len = 56
//!   [[subnet6.reservation]]
//!   remote-id = "00000de9:6c696e652d37"
//!   prefixes = ["2001:db8:1ff:ff00::/56"]
//! ```

use std::net::Ipv6Addr;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, build::Ctx};
use crate::{dhcp6::IaKind, leases::prefix::PrefixRange};

/// Valid lifetime when none is configured (s), as Kea's default.
pub const DEFAULT_VALID: u32 = 7200;
/// Preferred lifetime when none is configured (s).
pub const DEFAULT_PREFERRED: u32 = 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct Subnet6Section {
    subnet: Spanned<String>,
    id: Option<u32>,
    interface_id: Option<String>,
    interface_id_hex: Option<Spanned<String>>,
    valid_lifetime: Option<u32>,
    preferred_lifetime: Option<Spanned<u32>>,
    renew_timer: Option<Spanned<u32>>,
    rebind_timer: Option<Spanned<u32>>,
    rapid_commit: Option<bool>,
    preference: Option<u8>,
    #[serde(default)]
    options: Options6Section,
    #[serde(default)]
    pool: Vec<Pool6Section>,
    #[serde(default)]
    pd_pool: Vec<PdPoolSection>,
    #[serde(default)]
    reservation: Vec<Reservation6Section>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options6Section {
    dns_servers: Option<Vec<Spanned<String>>>,
    domain_search: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Pool6Section {
    range: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PdPoolSection {
    prefix: Spanned<String>,
    prefix_len: Spanned<u8>,
    delegated_len: Spanned<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Reservation6Section {
    duid: Option<Spanned<String>>,
    remote_id: Option<Spanned<String>>,
    interface_id: Option<String>,
    interface_id_hex: Option<Spanned<String>>,
    subscriber_id: Option<String>,
    subscriber_id_hex: Option<Spanned<String>>,
    #[serde(default)]
    ip_addresses: Vec<Spanned<String>>,
    #[serde(default)]
    prefixes: Vec<Spanned<String>>,
}

/// What a DHCPv6 reservation is keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation6Key {
    /// The client's DUID (option 1).
    Duid(Vec<u8>),
    /// A relay's remote-id (option 37): the enterprise number (4 bytes) and the id.
    RemoteId(Vec<u8>),
    /// A relay's interface-id (option 18).
    InterfaceId(Vec<u8>),
    /// A relay's subscriber-id (option 38).
    SubscriberId(Vec<u8>),
}

/// A DHCPv6 reservation: the addresses and prefixes one client (or subscriber line) gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation6 {
    /// Who.
    pub key: Reservation6Key,
    /// Addresses for its IA_NA (the first one that is free).
    pub addresses: Vec<Ipv6Addr>,
    /// Prefixes for its IA_PD.
    pub prefixes: Vec<(Ipv6Addr, u8)>,
}

/// A validated `[[subnet6]]`.
#[derive(Debug, Clone)]
pub struct Subnet6 {
    /// Subnet id (unique among the v6 subnets).
    pub id: u32,
    /// The link's prefix.
    pub prefix: Ipv6Addr,
    /// Its length.
    pub prefix_len: u8,
    /// A relay's interface-id that selects this subnet.
    pub interface_id: Option<Vec<u8>>,
    /// Lifetimes and timers (s): T1 ≤ T2 ≤ preferred ≤ valid.
    pub valid: u32,
    pub preferred: u32,
    pub t1: u32,
    pub t2: u32,
    /// Answer a SOLICIT with Rapid Commit by a REPLY (RFC 8415 §18.3.1).
    pub rapid_commit: bool,
    /// Preference option value sent in ADVERTISE, if any.
    pub preference: Option<u8>,
    /// DNS recursive name servers (option 23).
    pub dns_servers: Vec<Ipv6Addr>,
    /// Domain search list (option 24), already in RFC 1035 wire form.
    pub domain_search: Vec<u8>,
    /// Address pools.
    pub pools: Vec<PrefixRange>,
    /// Delegated-prefix pools.
    pub pd_pools: Vec<PrefixRange>,
    /// Reservations.
    pub reservations: Vec<Reservation6>,
}

impl Subnet6 {
    /// Whether `a` lies in the link's prefix.
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        in_prefix(a, self.prefix, self.prefix_len)
    }

    /// The pools of one IA type: address ranges, or delegated-prefix pools.
    pub fn pools_of(&self, kind: IaKind) -> &[PrefixRange] {
        match kind {
            IaKind::Na => &self.pools,
            IaKind::Pd => &self.pd_pools,
        }
    }

    /// Addresses (or prefixes) its pools of one type hold.
    pub fn capacity(&self, kind: IaKind) -> u64 {
        self.pools_of(kind).iter().map(|p| u64::from(p.count())).sum()
    }

    /// Whether `addr`/`len` is reserved here for an IA of `kind`.
    pub fn reserves(&self, kind: IaKind, addr: Ipv6Addr, len: u8) -> bool {
        self.reservations.iter().any(|r| match kind {
            IaKind::Na => r.addresses.contains(&addr),
            IaKind::Pd => r.prefixes.contains(&(addr, len)),
        })
    }

    /// Whether a lease of `kind` on `addr`/`len` may stand here: in a pool, reserved, or (an
    /// address) anywhere on the link, as management may put it.
    pub fn may_hold(&self, kind: IaKind, addr: Ipv6Addr, len: u8) -> bool {
        let len = if kind == IaKind::Na { 128 } else { len };
        self.pools_of(kind).iter().any(|p| p.index_of(addr, len).is_some())
            || self.reserves(kind, addr, len)
            || (kind == IaKind::Na && self.contains(addr))
    }
}

/// Whether `a` lies in `prefix`/`len`.
pub fn in_prefix(a: Ipv6Addr, prefix: Ipv6Addr, len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len.min(128))) };
    u128::from(a) & mask == u128::from(prefix) & mask
}

/// A domain name in RFC 1035 wire form (labels, then the root), or `None` if a label is empty
/// or longer than 63 bytes.
pub fn dns_wire(name: &str, out: &mut Vec<u8>) -> Option<()> {
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Some(())
}

fn hex_loose(s: &str) -> Option<Vec<u8>> {
    let digits: String = s.chars().filter(|c| !matches!(c, ':' | '-' | ' ')).collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok()).collect()
}

impl Ctx<'_> {
    fn ip6(&self, s: &Spanned<String>, field: &str) -> Result<Ipv6Addr, ConfigError> {
        s.get_ref()
            .trim()
            .parse()
            .map_err(|_| self.err(Some(s.span()), field, format!("`{}` is not an IPv6 address", s.get_ref())))
    }

    fn prefix6(&self, s: &Spanned<String>, field: &str) -> Result<(Ipv6Addr, u8), ConfigError> {
        let bad =
            || self.err(Some(s.span()), field, format!("`{}` is not an IPv6 prefix like 2001:db8::/56", s.get_ref()));
        let (a, l) = s.get_ref().split_once('/').ok_or_else(bad)?;
        let len: u8 = l.trim().parse().map_err(|_| bad())?;
        let a: Ipv6Addr = a.trim().parse().map_err(|_| bad())?;
        if len > 128 || (len < 128 && u128::from(a) & (u128::MAX >> len) != 0) {
            return Err(self.err(Some(s.span()), field, format!("`{}` has bits set beyond /{len}", s.get_ref())));
        }
        Ok((a, len))
    }

    fn hex6(&self, s: &Spanned<String>, field: &str) -> Result<Vec<u8>, ConfigError> {
        hex_loose(s.get_ref())
            .ok_or_else(|| self.err(Some(s.span()), field, format!("`{}` is not hex bytes", s.get_ref())))
    }
}

/// `[relays] trusted6`: the prefixes DHCPv6 relays may send from.
pub(super) fn trusted6(
    ctx: &Ctx<'_>,
    field: &str,
    list: Option<&[Spanned<String>]>,
) -> Result<Vec<(Ipv6Addr, u8)>, ConfigError> {
    let mut out = vec![];
    for (i, p) in list.into_iter().flatten().enumerate() {
        out.push(ctx.prefix6(p, &format!("relays.{field}[{i}]"))?);
    }
    Ok(out)
}

/// Validates the `[[subnet6]]` sections.
pub(super) fn build(ctx: &Ctx<'_>, sections: &[Subnet6Section]) -> Result<Vec<Subnet6>, ConfigError> {
    let mut out: Vec<Subnet6> = vec![];
    for (si, s) in sections.iter().enumerate() {
        let field = format!("subnet6[{si}]");
        let f = |sub: &str| format!("{field}.{sub}");
        let (prefix, prefix_len) = ctx.prefix6(&s.subnet, &f("subnet"))?;
        let id = s.id.unwrap_or(si as u32 + 1);
        if out.iter().any(|o| o.id == id) {
            return Err(ctx.err(Some(s.subnet.span()), &f("id"), format!("subnet id {id} is used twice")));
        }
        let interface_id = match (&s.interface_id, &s.interface_id_hex) {
            (Some(t), None) => Some(t.as_bytes().to_vec()),
            (None, Some(h)) => Some(ctx.hex6(h, &f("interface-id-hex"))?),
            (None, None) => None,
            (Some(_), Some(h)) => {
                return Err(ctx.err(Some(h.span()), &f("interface-id-hex"), "give interface-id or interface-id-hex"));
            }
        };
        if let Some(iid) = &interface_id
            && out.iter().any(|o| o.interface_id.as_ref() == Some(iid))
        {
            return Err(ctx.err(Some(s.subnet.span()), &f("interface-id"), "another subnet6 has this interface-id"));
        }
        let valid = s.valid_lifetime.unwrap_or(DEFAULT_VALID);
        let preferred = s.preferred_lifetime.as_ref().map(|p| *p.get_ref()).unwrap_or(DEFAULT_PREFERRED.min(valid));
        let t1 = s.renew_timer.as_ref().map(|p| *p.get_ref()).unwrap_or(preferred / 2);
        let t2 = s.rebind_timer.as_ref().map(|p| *p.get_ref()).unwrap_or(preferred / 5 * 4);
        if preferred > valid {
            let span = s.preferred_lifetime.as_ref().map(|p| p.span());
            return Err(ctx.err(
                span,
                &f("preferred-lifetime"),
                format!("{preferred} is above valid-lifetime {valid}"),
            ));
        }
        if t1 > t2 || t2 > preferred {
            let span = s.renew_timer.as_ref().or(s.rebind_timer.as_ref()).map(|p| p.span());
            return Err(ctx.err(
                span,
                &f("renew-timer"),
                format!("renew-timer {t1} ≤ rebind-timer {t2} ≤ preferred-lifetime {preferred} must hold"),
            ));
        }
        let mut dns_servers = vec![];
        for (i, d) in s.options.dns_servers.iter().flatten().enumerate() {
            dns_servers.push(ctx.ip6(d, &f(&format!("options.dns-servers[{i}]")))?);
        }
        let mut domain_search = vec![];
        for (i, d) in s.options.domain_search.iter().flatten().enumerate() {
            dns_wire(d.get_ref(), &mut domain_search).ok_or_else(|| {
                ctx.err(Some(d.span()), &f(&format!("options.domain-search[{i}]")), "not a domain name")
            })?;
        }
        let mut pools = vec![];
        for (pi, p) in s.pool.iter().enumerate() {
            let pf = f(&format!("pool[{pi}].range"));
            let bad = || {
                ctx.err(
                    Some(p.range.span()),
                    &pf,
                    format!("`{}` is not a range like 2001:db8::100-2001:db8::1ff", p.range.get_ref()),
                )
            };
            let (a, b) = p.range.get_ref().split_once('-').ok_or_else(bad)?;
            let (a, b): (Ipv6Addr, Ipv6Addr) =
                (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
            if !in_prefix(a, prefix, prefix_len) || !in_prefix(b, prefix, prefix_len) {
                return Err(ctx.err(Some(p.range.span()), &pf, format!("{a}-{b} is not inside {prefix}/{prefix_len}")));
            }
            let r = PrefixRange::addresses(a, b).map_err(|e| ctx.err(Some(p.range.span()), &pf, e.to_string()))?;
            pools.push(r);
        }
        let mut pd_pools = vec![];
        for (pi, p) in s.pd_pool.iter().enumerate() {
            let pf = f(&format!("pd-pool[{pi}]"));
            let a = ctx.ip6(&p.prefix, &format!("{pf}.prefix"))?;
            let r = PrefixRange::new(a, *p.prefix_len.get_ref(), *p.delegated_len.get_ref())
                .map_err(|e| ctx.err(Some(p.prefix.span()), &pf, e.to_string()))?;
            pd_pools.push(r);
        }
        let earlier: Vec<&PrefixRange> = out.iter().flat_map(|o| o.pools.iter().chain(&o.pd_pools)).collect();
        let mine: Vec<&PrefixRange> = pools.iter().chain(&pd_pools).collect();
        for (i, a) in mine.iter().enumerate() {
            if let Some(b) = earlier.iter().chain(&mine[..i]).find(|b| overlap(a, b)) {
                return Err(ctx.err(
                    Some(s.subnet.span()),
                    &field,
                    format!("pool {} overlaps pool {}", show(a), show(b)),
                ));
            }
        }
        let mut reservations = vec![];
        for (ri, r) in s.reservation.iter().enumerate() {
            let rf = f(&format!("reservation[{ri}]"));
            let mut keys = vec![];
            if let Some(d) = &r.duid {
                keys.push(Reservation6Key::Duid(ctx.hex6(d, &format!("{rf}.duid"))?));
            }
            if let Some(d) = &r.remote_id {
                let b = ctx.hex6(d, &format!("{rf}.remote-id"))?;
                if b.len() < 5 {
                    return Err(ctx.err(
                        Some(d.span()),
                        &format!("{rf}.remote-id"),
                        "an enterprise number (4 bytes) and an id",
                    ));
                }
                keys.push(Reservation6Key::RemoteId(b));
            }
            if let Some(t) = &r.interface_id {
                keys.push(Reservation6Key::InterfaceId(t.as_bytes().to_vec()));
            }
            if let Some(h) = &r.interface_id_hex {
                keys.push(Reservation6Key::InterfaceId(ctx.hex6(h, &format!("{rf}.interface-id-hex"))?));
            }
            if let Some(t) = &r.subscriber_id {
                keys.push(Reservation6Key::SubscriberId(t.as_bytes().to_vec()));
            }
            if let Some(h) = &r.subscriber_id_hex {
                keys.push(Reservation6Key::SubscriberId(ctx.hex6(h, &format!("{rf}.subscriber-id-hex"))?));
            }
            if keys.len() != 1 {
                return Err(ctx.err(
                    Some(s.subnet.span()),
                    &rf,
                    "give exactly one of duid, remote-id, interface-id(-hex), subscriber-id(-hex)",
                ));
            }
            let mut addresses = vec![];
            for (i, a) in r.ip_addresses.iter().enumerate() {
                let af = format!("{rf}.ip-addresses[{i}]");
                let ip = ctx.ip6(a, &af)?;
                if !in_prefix(ip, prefix, prefix_len) {
                    return Err(ctx.err(Some(a.span()), &af, format!("{ip} is outside {prefix}/{prefix_len}")));
                }
                addresses.push(ip);
            }
            let mut prefixes = vec![];
            for (i, p) in r.prefixes.iter().enumerate() {
                prefixes.push(ctx.prefix6(p, &format!("{rf}.prefixes[{i}]"))?);
            }
            if addresses.is_empty() && prefixes.is_empty() {
                return Err(ctx.err(Some(s.subnet.span()), &rf, "reserves nothing: give ip-addresses or prefixes"));
            }
            reservations.push(Reservation6 { key: keys.remove(0), addresses, prefixes });
        }
        for (i, r) in reservations.iter().enumerate() {
            let clash = reservations[..i].iter().find(|o| {
                o.key == r.key
                    || o.addresses.iter().any(|a| r.addresses.contains(a))
                    || o.prefixes.iter().any(|p| r.prefixes.contains(p))
            });
            if clash.is_some() {
                return Err(ctx.err(
                    Some(s.subnet.span()),
                    &f(&format!("reservation[{i}]")),
                    "its key, an address or a prefix is reserved twice",
                ));
            }
        }
        out.push(Subnet6 {
            id,
            prefix,
            prefix_len,
            interface_id,
            valid,
            preferred,
            t1,
            t2,
            rapid_commit: s.rapid_commit.unwrap_or(false),
            preference: s.preference,
            dns_servers,
            domain_search,
            pools,
            pd_pools,
            reservations,
        });
    }
    Ok(out)
}

fn bounds(r: &PrefixRange) -> (u128, u128) {
    let first = r.nth(0).map(u128::from).unwrap_or(0);
    let last = r.nth(r.count() - 1).map(u128::from).unwrap_or(0);
    let span = u128::MAX.checked_shr(u32::from(r.delegated_len())).unwrap_or(0);
    (first, last | span)
}

fn overlap(a: &PrefixRange, b: &PrefixRange) -> bool {
    let ((a0, a1), (b0, b1)) = (bounds(a), bounds(b));
    a0 <= b1 && b0 <= a1
}

fn show(r: &PrefixRange) -> String {
    let (a, b) = bounds(r);
    format!("{}-{}", Ipv6Addr::from(a), Ipv6Addr::from(b))
}
