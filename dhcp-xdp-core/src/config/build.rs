//! Validation: each file section becomes its runtime type through one `TryFrom`, given the
//! place it sits in (for errors naming file, line and field) and the scope it inherits. Nothing
//! here keeps a reference to the file; the result is self-contained.

use std::{net::Ipv4Addr, str::FromStr};

use toml::Spanned;

use super::{
    BootpPolicy, ClusterConfig, Config, ConfigError, DEFAULT_DECLINE_PROBATION, DEFAULT_LEASE, DEFAULT_OFFER_HOLD,
    DEFAULT_SNAPSHOT_EVERY, Durability, Limits, OptionTable, Pool, RenderedOptions, Reservation, ReservationIndex,
    ReservationKey, Subnet, SubnetIndex,
    file::{
        ClusterSection, CustomOption, FileConfig, LimitsSection, OptionsSection, PersistenceSection, PoolSection,
        RelaysSection, ReservationSection, ServerSection, SubnetSection,
    },
    options::parse_hex,
    prefix_mask,
};
use crate::{dhcp4::opt, net::Ipv4Net};

/// The text being validated, for error places.
pub(super) struct Ctx<'a> {
    pub(super) file: &'a str,
    pub(super) src: &'a str,
    /// Option definitions: the standard ones and `[[option-def]]`.
    pub(super) defs: Vec<super::optdef::OptionDef>,
}

impl Ctx<'_> {
    pub(super) fn err(
        &self,
        span: Option<std::ops::Range<usize>>,
        field: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let line = span.map(|s| self.src[..s.start.min(self.src.len())].matches('\n').count() + 1).unwrap_or(0);
        ConfigError { file: self.file.to_owned(), line, field: field.to_owned(), message: message.into() }
    }

    pub(super) fn ip(&self, s: &Spanned<String>, field: &str) -> Result<Ipv4Addr, ConfigError> {
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
}

/// One section of the file to validate: where it is, and what it inherits.
pub(super) struct Section<'a, T, P = ()> {
    ctx: &'a Ctx<'a>,
    /// Dotted field path of the section, e.g. `subnet[0].pool[1]`.
    field: String,
    item: &'a T,
    parent: P,
}

impl<'a, T> Section<'a, T> {
    pub(super) fn new(ctx: &'a Ctx<'a>, field: impl Into<String>, item: &'a T) -> Self {
        Self { ctx, field: field.into(), item, parent: () }
    }
}

impl<'a, T, P> Section<'a, T, P> {
    fn child<U, Q>(&self, field: String, item: &'a U, parent: Q) -> Section<'a, U, Q> {
        Section { ctx: self.ctx, field, item, parent }
    }
    fn err(&self, span: Option<std::ops::Range<usize>>, sub: &str, message: impl Into<String>) -> ConfigError {
        let field = if sub.is_empty() { self.field.clone() } else { format!("{}.{sub}", self.field) };
        self.ctx.err(span, &field, message)
    }
    fn options(&self, o: &'a OptionsSection) -> Result<OptionTable, ConfigError> {
        OptionTable::try_from(self.child(format!("{}.options", self.field), o, ()))
    }
}

impl TryFrom<Section<'_, OptionsSection>> for OptionTable {
    type Error = ConfigError;

    fn try_from(sec: Section<'_, OptionsSection>) -> Result<Self, ConfigError> {
        let (ctx, o, field) = (sec.ctx, sec.item, &sec.field);
        let mut t = OptionTable::default();
        let ips = |list: &Vec<Spanned<String>>, name: &str| -> Result<Vec<u8>, ConfigError> {
            let mut v = vec![];
            for (i, s) in list.iter().enumerate() {
                v.extend_from_slice(&ctx.ip(s, &format!("{field}.{name}[{i}]"))?.octets());
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
                let dest = ctx.net(&r.destination, &format!("{f}.destination"))?;
                let gw = ctx.ip(&r.router, &format!("{f}.router"))?;
                // RFC 3442: width, significant octets of the destination, router.
                v.push(dest.prefix);
                v.extend_from_slice(&dest.addr.octets()[..usize::from(dest.prefix.div_ceil(8))]);
                v.extend_from_slice(&gw.octets());
            }
            t.set(opt::CLASSLESS_ROUTES, v);
        }
        for (i, c) in o.custom.iter().enumerate() {
            let f = format!("{field}.custom[{i}]");
            let (code, value) = custom_value(ctx, &f, c, true)?;
            if matches!(code, 0 | 255 | opt::MESSAGE_TYPE | opt::SERVER_ID | opt::OVERLOAD | opt::RELAY_AGENT_INFO) {
                return Err(ctx.err(
                    span_of(c),
                    &format!("{f}.code"),
                    format!("option {code} is set by the server itself"),
                ));
            }
            t.set(code, value);
        }
        let subs = |list: &[CustomOption], f: &str| -> Result<Vec<(u8, Vec<u8>)>, ConfigError> {
            list.iter().enumerate().map(|(i, c)| custom_value(ctx, &format!("{f}[{i}]"), c, false)).collect()
        };
        if !o.vendor_encapsulated.is_empty() {
            let f = format!("{field}.vendor-encapsulated");
            let v = super::optdef::sub_options(&subs(&o.vendor_encapsulated, &f)?)
                .map_err(|e| ctx.err(span_of(&o.vendor_encapsulated[0]), &f, e))?;
            t.set(opt::VENDOR_SPECIFIC, v);
        }
        if !o.vivso.is_empty() {
            let f = format!("{field}.vivso");
            let mut vendors = vec![];
            for (i, v) in o.vivso.iter().enumerate() {
                let sf = format!("{f}[{i}].suboptions");
                let data = super::optdef::sub_options(&subs(&v.suboptions, &sf)?)
                    .map_err(|e| ctx.err(Some(v.enterprise.span()), &sf, e))?;
                vendors.push((*v.enterprise.get_ref(), data));
            }
            let v = super::optdef::vivso(&vendors).map_err(|e| ctx.err(Some(o.vivso[0].enterprise.span()), &f, e))?;
            t.set(opt::VIVSO, v);
        }
        Ok(t)
    }
}

/// Where an option entry is (its code, else its name, else its data), for messages.
fn span_of(c: &CustomOption) -> Option<std::ops::Range<usize>> {
    c.code
        .as_ref()
        .map(Spanned::span)
        .or_else(|| c.name.as_ref().map(Spanned::span))
        .or_else(|| c.data.as_ref().map(Spanned::span))
}

/// An option entry's code and encoded value: `data` in the type of its definition (by `name`,
/// else by `code`; `[[option-def]]` or a standard option), or one typed field (`ip`, `text`,
/// `hex`, `fqdn`, `bool`, `u8`, `u16`, `u32`). `defined`: options (not sub-options) may be named
/// and given as `data`.
fn custom_value(ctx: &Ctx<'_>, f: &str, c: &CustomOption, defined: bool) -> Result<(u8, Vec<u8>), ConfigError> {
    let def = if let Some(n) = &c.name {
        if !defined {
            return Err(ctx.err(Some(n.span()), &format!("{f}.name"), "sub-options are given by code"));
        }
        Some(ctx.defs.iter().rev().find(|d| d.name == *n.get_ref()).ok_or_else(|| {
            ctx.err(
                Some(n.span()),
                &format!("{f}.name"),
                format!("no option named '{}' ([[option-def]] defines one)", n.get_ref()),
            )
        })?)
    } else {
        None
    };
    let code = match (c.code.as_ref().map(|c| *c.get_ref()), def) {
        (Some(code), Some(d)) if code != d.code => {
            return Err(ctx.err(span_of(c), f, format!("option '{}' has code {}, not {code}", d.name, d.code)));
        }
        (Some(code), _) => code,
        (None, Some(d)) => d.code,
        (None, None) => return Err(ctx.err(None, f, "give a code (or a name)")),
    };
    let mut vals = vec![];
    if let Some(data) = &c.data {
        if !defined {
            return Err(ctx.err(
                Some(data.span()),
                &format!("{f}.data"),
                "sub-options take a typed value (text, hex, ip, …)",
            ));
        }
        let d = def.or_else(|| ctx.defs.iter().rev().find(|d| d.code == code)).ok_or_else(|| {
            ctx.err(
                Some(data.span()),
                &format!("{f}.data"),
                format!("option {code} has no definition: give [[option-def]], or a typed value"),
            )
        })?;
        vals.push(d.encode(data.get_ref()).map_err(|e| ctx.err(Some(data.span()), &format!("{f}.data"), e))?);
    }
    if let Some(list) = &c.ip {
        let mut v = vec![];
        for (i, s) in list.iter().enumerate() {
            v.extend_from_slice(&ctx.ip(s, &format!("{f}.ip[{i}]"))?.octets());
        }
        vals.push(v);
    }
    if let Some(s) = &c.text {
        vals.push(s.as_bytes().to_vec());
    }
    if let Some(h) = &c.hex {
        vals.push(ctx.hex(h, &format!("{f}.hex"))?);
    }
    if let Some(n) = &c.fqdn {
        let mut v = vec![];
        super::optdef::fqdn(n.get_ref(), &mut v).map_err(|e| ctx.err(Some(n.span()), &format!("{f}.fqdn"), e))?;
        vals.push(v);
    }
    if let Some(b) = c.bool {
        vals.push(vec![u8::from(b)]);
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
        return Err(ctx.err(span_of(c), f, "give exactly one of data, ip, text, hex, fqdn, bool, u8, u16, u32"));
    }
    let v = vals.pop().unwrap_or_default();
    if v.len() > 255 {
        return Err(ctx.err(span_of(c), f, format!("the value is {} bytes; an option holds at most 255", v.len())));
    }
    Ok((code, v))
}

/// `[[option-def]]`: the standard definitions, then the configured ones (a configured one
/// named like a standard one, or with its code, is used instead).
fn option_defs(
    ctx: &Ctx<'_>,
    sections: &[super::file::OptionDefSection],
) -> Result<Vec<super::optdef::OptionDef>, ConfigError> {
    let mut defs = super::optdef::standard();
    for (i, d) in sections.iter().enumerate() {
        let f = format!("option-def[{i}]");
        let code = *d.code.get_ref();
        if matches!(code, 0 | 255 | opt::MESSAGE_TYPE | opt::SERVER_ID | opt::OVERLOAD | opt::RELAY_AGENT_INFO) {
            return Err(ctx.err(
                Some(d.code.span()),
                &format!("{f}.code"),
                format!("option {code} is the server's own"),
            ));
        }
        let def = super::optdef::OptionDef::new(
            d.name.get_ref(),
            code,
            d.ty.get_ref(),
            d.record_types.as_deref(),
            d.array.unwrap_or(false),
        )
        .map_err(|e| ctx.err(Some(d.ty.span()), &format!("{f}.type"), e))?;
        defs.push(def);
    }
    Ok(defs)
}

/// `[forensic-log]`, with sizes as bytes or with a unit (`"100MiB"`, `"2GB"`, `"512KiB"`).
fn forensic(
    ctx: &Ctx<'_>,
    section: &Spanned<super::file::ForensicLogSection>,
    cluster: bool,
) -> Result<super::ForensicConfig, ConfigError> {
    let f = section.get_ref();
    let at = Some(section.span());
    let rotate_size = match &f.rotate_size {
        None => 100 << 20,
        Some(v) => {
            let bad = || ctx.err(Some(v.span()), "forensic-log.rotate-size", "a size such as 104857600 or \"100MiB\"");
            match v.get_ref() {
                toml::Value::Integer(n) => u64::try_from(*n).map_err(|_| bad())?,
                toml::Value::String(s) => {
                    let s = s.trim();
                    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
                    let n: u64 = s[..split].parse().map_err(|_| bad())?;
                    let unit = match s[split..].trim() {
                        "" | "B" => 1,
                        "KiB" => 1 << 10,
                        "MiB" => 1 << 20,
                        "GiB" => 1 << 30,
                        "KB" | "kB" => 1_000,
                        "MB" => 1_000_000,
                        "GB" => 1_000_000_000,
                        _ => return Err(bad()),
                    };
                    n.checked_mul(unit).ok_or_else(bad)?
                }
                _ => return Err(bad()),
            }
        }
    };
    if rotate_size < 1024 {
        return Err(ctx.err(None, "forensic-log.rotate-size", "at least 1024 bytes"));
    }
    let sink = match (&f.path, f.database.unwrap_or(false)) {
        (Some(p), false) => super::ForensicSink::File(p.clone()),
        (None, true) if cluster => super::ForensicSink::Database,
        (None, true) => {
            return Err(ctx.err(
                at,
                "forensic-log.database",
                "the log goes to the cluster database: [cluster] is needed",
            ));
        }
        (Some(_), true) => return Err(ctx.err(at, "forensic-log.path", "give path or database = true, not both")),
        (None, false) => return Err(ctx.err(at, "forensic-log.path", "give path, or database = true in cluster mode")),
    };
    Ok(super::ForensicConfig {
        sink,
        rotate_size,
        keep: f.keep.unwrap_or(30).max(1),
        fsync_interval_ms: f.fsync_interval_ms.unwrap_or(1000),
        keep_days: f.keep_days.unwrap_or(0),
    })
}

/// What `[server]` sets for the whole configuration, and the defaults subnets inherit.
pub(super) struct ServerSettings {
    pub(super) server_id: Option<Ipv4Addr>,
    pub(super) offer_hold: u32,
    pub(super) decline_probation: u32,
    pub(super) bootp: BootpPolicy,
    pub(super) defaults: SubnetDefaults,
}

/// What a subnet inherits unless it says otherwise.
#[derive(Debug, Clone, Copy)]
pub(super) struct SubnetDefaults {
    pub(super) lease_time: u32,
    pub(super) renew_time: Option<u32>,
    pub(super) rebind_time: Option<u32>,
    pub(super) authoritative: bool,
}

impl Default for SubnetDefaults {
    fn default() -> Self {
        Self { lease_time: DEFAULT_LEASE, renew_time: None, rebind_time: None, authoritative: true }
    }
}

impl TryFrom<Section<'_, ServerSection>> for ServerSettings {
    type Error = ConfigError;

    fn try_from(sec: Section<'_, ServerSection>) -> Result<Self, ConfigError> {
        let s = sec.item;
        let lease_time = s.lease_time.as_ref().map(|v| *v.get_ref()).unwrap_or(DEFAULT_LEASE);
        if lease_time < 60 {
            return Err(sec.err(s.lease_time.as_ref().map(|v| v.span()), "lease-time", "must be at least 60 seconds"));
        }
        let server_id = s.server_id.as_ref().map(|v| sec.ctx.ip(v, "server.server-id")).transpose()?;
        let bootp = match s.bootp.as_ref().map(|b| b.get_ref().as_str()) {
            None | Some("ignore") => BootpPolicy::Ignore,
            Some("reservations") => BootpPolicy::Reservations,
            Some(other) => {
                return Err(sec.err(
                    s.bootp.as_ref().map(|b| b.span()),
                    "bootp",
                    format!("`{other}`: expected \"ignore\" or \"reservations\""),
                ));
            }
        };
        Ok(Self {
            server_id,
            offer_hold: s.offer_hold.unwrap_or(DEFAULT_OFFER_HOLD).max(1),
            decline_probation: s.decline_probation.unwrap_or(DEFAULT_DECLINE_PROBATION),
            bootp,
            defaults: SubnetDefaults {
                lease_time,
                renew_time: s.renew_time.as_ref().map(|v| *v.get_ref()),
                rebind_time: s.rebind_time.as_ref().map(|v| *v.get_ref()),
                authoritative: s.authoritative.unwrap_or(true),
            },
        })
    }
}

impl TryFrom<Section<'_, RelaysSection>> for Vec<Ipv4Net> {
    type Error = ConfigError;

    fn try_from(sec: Section<'_, RelaysSection>) -> Result<Self, ConfigError> {
        let mut out = vec![];
        for (i, n) in sec.item.trusted.iter().flatten().enumerate() {
            out.push(sec.ctx.net(n, &format!("{}.trusted[{i}]", sec.field))?);
        }
        Ok(out)
    }
}

impl TryFrom<Section<'_, LimitsSection>> for Limits {
    type Error = ConfigError;

    fn try_from(sec: Section<'_, LimitsSection>) -> Result<Self, ConfigError> {
        let l = sec.item;
        let d = Limits::default();
        let at_least_one = |v: &Option<Spanned<u32>>, name: &str, default: u32| match v {
            Some(s) if *s.get_ref() == 0 => {
                Err(sec.err(Some(s.span()), name, "offers are always bounded: give at least 1"))
            }
            Some(s) => Ok(*s.get_ref()),
            None => Ok(default),
        };
        let declined_percent = match &l.declined_percent {
            Some(s) if *s.get_ref() > 100 => {
                return Err(sec.err(Some(s.span()), "declined-percent", "a share of the pool: 0 to 100"));
            }
            Some(s) => *s.get_ref(),
            None => d.declined_percent,
        };
        Ok(Limits {
            leases_per_mac: l.leases_per_mac.unwrap_or(d.leases_per_mac),
            leases_per_circuit: l.leases_per_circuit.unwrap_or(d.leases_per_circuit),
            leases_per_remote_id: l.leases_per_remote_id.unwrap_or(d.leases_per_remote_id),
            leases_per_duid: l.leases_per_duid.unwrap_or(d.leases_per_duid),
            offers_per_mac: at_least_one(&l.offers_per_mac, "offers-per-mac", d.offers_per_mac)?,
            offers_per_circuit: at_least_one(&l.offers_per_circuit, "offers-per-circuit", d.offers_per_circuit)?,
            rate_per_mac: l.rate_per_mac.unwrap_or(d.rate_per_mac),
            burst_per_mac: l.burst_per_mac.unwrap_or(d.burst_per_mac).max(1),
            rate_per_circuit: l.rate_per_circuit.unwrap_or(d.rate_per_circuit),
            declined_percent,
            steering_key: l.steering_key,
        })
    }
}

impl TryFrom<Section<'_, PersistenceSection>> for Durability {
    type Error = ConfigError;

    fn try_from(sec: Section<'_, PersistenceSection>) -> Result<Self, ConfigError> {
        let d = &sec.item.durability;
        match d.as_ref().map(|d| d.get_ref().as_str()) {
            None | Some("fsync") => Ok(Durability::Fsync),
            Some("async") => Ok(Durability::Async),
            Some(other) => Err(sec.err(
                d.as_ref().map(|d| d.span()),
                "durability",
                format!("`{other}`: expected \"fsync\" or \"async\""),
            )),
        }
    }
}

impl TryFrom<Section<'_, Spanned<ClusterSection>>> for ClusterConfig {
    type Error = ConfigError;

    fn try_from(sec: Section<'_, Spanned<ClusterSection>>) -> Result<Self, ConfigError> {
        let c = sec.item.get_ref();
        let node = match &c.node {
            Some(n) if !n.get_ref().trim().is_empty() && n.get_ref().len() <= 64 => n.get_ref().trim().to_owned(),
            Some(n) => return Err(sec.err(Some(n.span()), "node", "a node name of 1 to 64 characters")),
            None => return Err(sec.err(Some(sec.item.span()), "node", "required: this responder's unique name")),
        };
        let database = match &c.database {
            Some(d) if d.get_ref().starts_with("postgresql://") || d.get_ref().starts_with("postgres://") => {
                d.get_ref().clone()
            }
            Some(d) => {
                return Err(sec.err(
                    Some(d.span()),
                    "database",
                    "a libpq URL like postgresql:///dhcp?host=/run/postgresql",
                ));
            }
            None => return Err(sec.err(Some(sec.item.span()), "database", "required: the PostgreSQL URL")),
        };
        let heartbeat = c.heartbeat.as_ref().map_or(super::DEFAULT_HEARTBEAT, |h| *h.get_ref());
        if heartbeat == 0 {
            return Err(sec.err(c.heartbeat.as_ref().map(|h| h.span()), "heartbeat", "at least 1 second"));
        }
        let takeover_after = c.takeover_after.as_ref().map_or(super::DEFAULT_TAKEOVER_AFTER, |t| *t.get_ref());
        if takeover_after <= heartbeat {
            return Err(sec.err(
                c.takeover_after.as_ref().map(|t| t.span()),
                "takeover-after",
                format!("{takeover_after} s: must be longer than the heartbeat ({heartbeat} s)"),
            ));
        }
        let block_size = c.block_size.as_ref().map_or(super::DEFAULT_BLOCK_SIZE, |b| *b.get_ref());
        if !(1..=65_536).contains(&block_size) {
            return Err(sec.err(c.block_size.as_ref().map(|b| b.span()), "block-size", "1 to 65536 addresses"));
        }
        Ok(Self { node, database, heartbeat, takeover_after, block_size })
    }
}

/// What a subnet section is validated against: the scope it inherits and the subnets before it.
pub(super) struct SubnetScope<'a> {
    index: usize,
    defaults: SubnetDefaults,
    options: &'a OptionTable,
    earlier: &'a [Subnet],
    shared: &'a mut Vec<String>,
    classes: &'a [super::ClientClass],
}

impl TryFrom<Section<'_, SubnetSection, SubnetScope<'_>>> for Subnet {
    type Error = ConfigError;

    fn try_from(sec: Section<'_, SubnetSection, SubnetScope<'_>>) -> Result<Self, ConfigError> {
        let (sub, scope) = (sec.item, &sec.parent);
        let net = sec.ctx.net(&sub.subnet, &format!("{}.subnet", sec.field))?;
        let id = sub.id.unwrap_or(scope.index as u32 + 1);
        for (oi, other) in scope.earlier.iter().enumerate() {
            if other.id == id {
                return Err(sec.err(Some(sub.subnet.span()), "id", format!("id {id} already used by subnet[{oi}]")));
            }
            let shorter = other.net.prefix.min(net.prefix);
            if u32::from(other.net.addr) & prefix_mask(shorter) == u32::from(net.addr) & prefix_mask(shorter) {
                return Err(sec.err(
                    Some(sub.subnet.span()),
                    "subnet",
                    format!("overlaps subnet[{oi}] {}/{}", other.net.addr, other.net.prefix),
                ));
            }
        }
        let d = scope.defaults;
        let defaults = SubnetDefaults {
            lease_time: sub.lease_time.unwrap_or(d.lease_time),
            renew_time: sub.renew_time.or(d.renew_time),
            rebind_time: sub.rebind_time.or(d.rebind_time),
            authoritative: sub.authoritative.unwrap_or(d.authoritative),
        };
        let own = Subnet::options_over(net, &OptionTable::default()).overlay(&sec.options(&sub.options)?);
        let table = scope.options.overlay(&own);
        let mut subnet = Subnet::with_scope(id, net, defaults, &table)
            .map_err(|message| sec.err(Some(sub.subnet.span()), "", message))?;
        let classes = scope.classes;
        subnet.client_classes = super::classes::bits(
            sec.ctx,
            &sec.field,
            classes,
            sub.client_class.as_ref(),
            sub.client_classes.as_deref(),
        )?;
        subnet.boot = super::classes::boot(
            sec.ctx,
            &sec.field,
            sub.next_server.as_ref(),
            sub.server_hostname.as_ref(),
            sub.boot_file_name.as_ref(),
        )?;
        if let Some(v) = &sub.vlan {
            if v.get_ref().len() > 2 || v.get_ref().iter().any(|&id| id == 0 || id > 4094) {
                return Err(sec.err(Some(v.span()), "vlan", "one or two VLAN IDs (1–4094), outer first"));
            }
            subnet.vlan = v.get_ref().clone();
        }
        subnet.server_id =
            sub.server_id.as_ref().map(|v| sec.ctx.ip(v, &format!("{}.server-id", sec.field))).transpose()?;
        subnet.trust_direct_option82 = sub.trust_direct_option82.unwrap_or(false);
        for (pi, p) in sub.pool.iter().enumerate() {
            let field = format!("{}.pool[{pi}]", sec.field);
            let mut pool = Pool::try_from(sec.child(field.clone(), p, (&subnet, &table)))?;
            pool.own_options =
                own.overlay(&OptionTable::try_from(sec.child(format!("{field}.options"), &p.options, ()))?);
            pool.client_classes =
                super::classes::bits(sec.ctx, &field, classes, p.client_class.as_ref(), p.client_classes.as_deref())?;
            if let Some(o) = subnet.pools.iter().position(|q| q.start <= pool.end && pool.start <= q.end) {
                return Err(sec.ctx.err(
                    Some(p.range.span()),
                    &format!("{}.pool[{pi}].range", sec.field),
                    format!("overlaps pool[{o}]"),
                ));
            }
            subnet.pools.push(pool);
        }
        for (ri, r) in sub.reservation.iter().enumerate() {
            let field = format!("{}.reservation[{ri}]", sec.field);
            let mut res = Reservation::try_from(sec.child(field.clone(), r, (&subnet, &table, sub.subnet.span())))?;
            let mut own_r = own.overlay(&OptionTable::try_from(sec.child(format!("{field}.options"), &r.options, ()))?);
            if let Some(h) = &r.hostname {
                own_r.set(opt::HOSTNAME, h.as_bytes().to_vec());
            }
            res.own_options = own_r;
            res.client_classes = super::classes::bits(sec.ctx, &field, classes, None, r.client_classes.as_deref())?;
            res.boot = super::classes::boot(
                sec.ctx,
                &field,
                r.next_server.as_ref(),
                r.server_hostname.as_ref(),
                r.boot_file_name.as_ref(),
            )?;
            if let (Some(a), Some(sp)) = (res.ip, r.ip.as_ref())
                && subnet.reservations.iter().any(|x| x.ip == Some(a))
            {
                return Err(sec.ctx.err(Some(sp.span()), &format!("{field}.ip"), format!("{a} is reserved twice")));
            }
            subnet.reservations.push(res);
        }
        subnet.reservation_index = ReservationIndex::new(&subnet.reservations);
        subnet.own_options = own;
        if let Some(name) = &sub.shared_network {
            let shared = &mut *sec.parent.shared;
            subnet.shared_network = Some(match shared.iter().position(|s| s == name) {
                Some(i) => i,
                None => {
                    shared.push(name.clone());
                    shared.len() - 1
                }
            });
        }
        Ok(subnet)
    }
}

impl TryFrom<Section<'_, PoolSection, (&Subnet, &OptionTable)>> for Pool {
    type Error = ConfigError;

    fn try_from(sec: Section<'_, PoolSection, (&Subnet, &OptionTable)>) -> Result<Self, ConfigError> {
        let (p, (subnet, table)) = (sec.item, sec.parent);
        let (start, end) = parse_range(p.range.get_ref()).ok_or_else(|| {
            sec.err(
                Some(p.range.span()),
                "range",
                format!("`{}` is not a range like 198.18.0.10-198.18.0.200", p.range.get_ref()),
            )
        })?;
        if start > end || !subnet.contains(start) || !subnet.contains(end) {
            return Err(sec.err(
                Some(p.range.span()),
                "range",
                format!("{start}-{end} must be ascending and inside {}/{}", subnet.net.addr, subnet.net.prefix),
            ));
        }
        let pt = table.overlay(&sec.options(&p.options)?);
        Ok(Pool {
            start,
            end,
            options: RenderedOptions::new(&pt),
            own_options: OptionTable::default(),
            client_classes: 0,
        })
    }
}

type ReservationParent<'a> = (&'a Subnet, &'a OptionTable, std::ops::Range<usize>);

impl TryFrom<Section<'_, ReservationSection, ReservationParent<'_>>> for Reservation {
    type Error = ConfigError;

    fn try_from(sec: Section<'_, ReservationSection, ReservationParent<'_>>) -> Result<Self, ConfigError> {
        let (r, (subnet, table, subnet_span)) = (sec.item, (sec.parent.0, sec.parent.1, sec.parent.2.clone()));
        let (ctx, rf) = (sec.ctx, &sec.field);
        let mut keys = vec![];
        if let Some(h) = &r.hw_address {
            let b = ctx.hex(h, &format!("{rf}.hw-address"))?;
            let mac: [u8; 6] =
                b.try_into().map_err(|_| ctx.err(Some(h.span()), &format!("{rf}.hw-address"), "needs six bytes"))?;
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
            return Err(sec.err(
                Some(subnet_span),
                "",
                "give exactly one of hw-address, client-id, circuit-id(-hex), remote-id(-hex)",
            ));
        }
        let ip = r.ip.as_ref().map(|v| ctx.ip(v, &format!("{rf}.ip"))).transpose()?;
        if let (Some(a), Some(sp)) = (ip, r.ip.as_ref())
            && !subnet.contains(a)
        {
            return Err(sec.err(
                Some(sp.span()),
                "ip",
                format!("{a} is outside {}/{}", subnet.net.addr, subnet.net.prefix),
            ));
        }
        let mut rt = table.overlay(&sec.options(&r.options)?);
        if let Some(h) = &r.hostname {
            rt.set(opt::HOSTNAME, h.as_bytes().to_vec());
        }
        Ok(Reservation {
            key: keys.remove(0),
            ip,
            options: RenderedOptions::new(&rt),
            own_options: OptionTable::default(),
            client_classes: 0,
            boot: super::BootFields::default(),
            api: None,
        })
    }
}

fn parse_range(s: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let (a, b) = s.split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

impl Config {
    /// Validates TOML text `src` (named `file` in errors).
    pub fn parse(file: &str, src: &str) -> Result<Self, ConfigError> {
        let bare = Ctx { file, src, defs: vec![] };
        let fc: FileConfig = toml::from_str(src).map_err(|e| {
            let msg = e.message().to_owned();
            bare.err(e.span(), "-", msg)
        })?;
        let ctx = Ctx { file, src, defs: option_defs(&bare, &fc.option_def)? };
        let server = ServerSettings::try_from(Section::new(&ctx, "server", &fc.server))?;
        let durability = Durability::try_from(Section::new(&ctx, "persistence", &fc.persistence))?;
        let global = OptionTable::try_from(Section::new(&ctx, "options", &fc.options))?;
        let trusted_relays = Vec::<Ipv4Net>::try_from(Section::new(&ctx, "relays", &fc.relays))?;
        let limits = Limits::try_from(Section::new(&ctx, "limits", &fc.limits))?;
        let cluster = match &fc.cluster {
            Some(c) => Some(ClusterConfig::try_from(Section::new(&ctx, "cluster", c))?),
            None => None,
        };
        let classes = super::classes::build(&ctx, &fc.client_class)?;
        let mut shared = vec![];
        let mut subnets: Vec<Subnet> = vec![];
        for (si, sub) in fc.subnet.iter().enumerate() {
            let scope = SubnetScope {
                index: si,
                defaults: server.defaults,
                options: &global,
                earlier: &subnets,
                shared: &mut shared,
                classes: &classes,
            };
            let subnet =
                Subnet::try_from(Section { ctx: &ctx, field: format!("subnet[{si}]"), item: sub, parent: scope })?;
            subnets.push(subnet);
        }
        set_lease_scopes(&mut subnets);
        Ok(Self {
            source: file.to_owned(),
            shared_networks: shared,
            server_id: server.server_id,
            offer_hold: server.offer_hold,
            decline_probation: server.decline_probation,
            bootp: server.bootp,
            persist_dir: fc.persistence.dir.clone(),
            durability,
            snapshot_every: fc.persistence.snapshot_every.unwrap_or(DEFAULT_SNAPSHOT_EVERY).max(1),
            trusted_relays,
            trusted_relays6: super::v6::trusted6(&ctx, "trusted6", fc.relays.trusted6.as_deref())?,
            leasequery6_from: super::v6::trusted6(&ctx, "leasequery6", fc.relays.leasequery6.as_deref())?,
            leasequery_from: fc
                .relays
                .leasequery
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, n)| ctx.net(n, &format!("relays.leasequery[{i}]")))
                .collect::<Result<_, _>>()?,
            limits,
            control_socket: fc.control.socket.clone(),
            forensic_log: match &fc.forensic_log {
                Some(f) => Some(forensic(&ctx, f, fc.cluster.is_some())?),
                None => None,
            },
            control_http: match &fc.control.http {
                Some(h) => {
                    let l = &h.get_ref().listen;
                    let listen = l.get_ref().parse().map_err(|_| {
                        ctx.err(
                            Some(l.span()),
                            "control.http.listen",
                            format!("`{}` is not an address:port", l.get_ref()),
                        )
                    })?;
                    let users = h.get_ref().users.iter().map(|u| (u.user.clone(), u.password_file.clone())).collect();
                    let tls = h.get_ref().tls.as_ref().map(|t| super::ControlTls {
                        cert_file: t.cert_file.clone(),
                        key_file: t.key_file.clone(),
                        trust_anchor: t.trust_anchor.clone(),
                        cert_required: t.cert_required.unwrap_or(true),
                    });
                    Some(super::ControlHttp { listen, users, tls })
                }
                None => None,
            },
            metrics_listen: match &fc.metrics.listen {
                Some(l) => Some(l.get_ref().parse().map_err(|_| {
                    ctx.err(Some(l.span()), "metrics.listen", format!("`{}` is not an address:port", l.get_ref()))
                })?),
                None => None,
            },
            cluster,
            subnets6: super::v6::build(&ctx, &fc.subnet6)?,
            class_options: classes
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.options.is_empty())
                .fold(0, |m, (i, _)| m | 1 << i),
            class_boot: classes.iter().enumerate().filter(|(_, c)| !c.boot.is_empty()).fold(0, |m, (i, _)| m | 1 << i),
            boot_fields: classes.iter().any(|c| !c.boot.is_empty())
                || subnets.iter().any(|s| !s.boot.is_empty() || s.reservations.iter().any(|r| !r.boot.is_empty())),
            classes,
            global_options: global,
            option_defs: ctx.defs.clone(),
            index: SubnetIndex::new(&subnets),
            subnets,
        })
    }
}

/// Each subnet's lease scope: its own id, or the lowest id of its shared network.
pub(super) fn set_lease_scopes(subnets: &mut [Subnet]) {
    let scopes: Vec<u32> = subnets
        .iter()
        .map(|s| match s.shared_network {
            Some(n) => subnets.iter().filter(|o| o.shared_network == Some(n)).map(|o| o.id).min().unwrap_or(s.id),
            None => s.id,
        })
        .collect();
    for (s, scope) in subnets.iter_mut().zip(scopes) {
        s.lease_scope = scope;
    }
}
