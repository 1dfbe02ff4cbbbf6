//! Configuration: the TOML file as written and the validated runtime form the engine reads.
//! Every error names the file, the line and the field, and says what is wrong.
//!
//! - [`file`]: the serde "wire" structs, one per section.
//! - [`build`]: one `TryFrom` per section, file struct → runtime type.
//! - [`options`]: option tables per scope and their rendered form.
//! - `v6`: `[[subnet6]]`, DHCPv6 subnets, address and prefix pools, reservations.
//!
//! Runtime types are immutable once built; a reload builds a new [`Config`] and swaps it whole.
//! Nothing here reads files: callers pass the text.

use std::{net::Ipv4Addr, path::PathBuf};

use crate::{
    dhcp4::opt,
    net::{Ipv4Net, colon_hex},
};

mod build;
mod classes;
mod file;
pub mod hosts;
pub mod optdef;
mod options;
#[cfg(test)]
mod tests;
mod v6;

use build::SubnetDefaults;
pub use options::{OptionTable, RenderedOptions, parse_hex};
pub use v6::{Reservation6, Reservation6Key, Subnet6, dns_wire, in_prefix};

/// Lease time when none is configured (s).
const DEFAULT_LEASE: u32 = 3600;
/// How long an OFFER holds its address when not configured (s).
const DEFAULT_OFFER_HOLD: u32 = 30;
/// Probation of a declined address when not configured (s).
const DEFAULT_DECLINE_PROBATION: u32 = 86_400;
/// Journal records between snapshots when not configured.
const DEFAULT_SNAPSHOT_EVERY: u64 = 100_000;

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
    /// The same without the global options (client classes' options come between them).
    pub own_options: OptionTable,
    /// Classes the reservation puts its client in (bits of [`Config::classes`]).
    pub client_classes: u64,
    /// Boot fields given to its client.
    pub boot: BootFields,
    /// Added through the management API (`reservation-add`): the host as it was given. None
    /// for the configuration file's.
    pub api: Option<serde_json::Value>,
}

/// `[forensic-log]`: where lease events are written, how files rotate and how often they are
/// synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForensicConfig {
    /// Where the lines go.
    pub sink: ForensicSink,
    /// Bytes after which the file is rotated (default 100 MiB).
    pub rotate_size: u64,
    /// Rotated files kept (default 30).
    pub keep: usize,
    /// Milliseconds between syncs of what was written (default 1000): between the database's
    /// inserts, in database mode.
    pub fsync_interval_ms: u64,
    /// Database mode: days a line is kept (0: forever).
    pub keep_days: u32,
}

/// Where the forensic log's lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForensicSink {
    /// A file of JSON lines, rotated by size.
    File(PathBuf),
    /// The cluster database's `dhcp_xdp_lease_log` table (`database = true`; cluster mode).
    Database,
}

/// `[control] http`: where the HTTP control socket listens and who may use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlHttp {
    /// Address and port.
    pub listen: std::net::SocketAddr,
    /// Users (name, password file); none: anyone who reaches the port.
    pub users: Vec<(String, PathBuf)>,
    /// TLS (Kea's names): the server's certificate chain and key (PEM), and the CA whose
    /// client certificates are accepted (`trust-anchor`), required unless `cert-required` is
    /// false. None: plain HTTP.
    pub tls: Option<ControlTls>,
}

/// `[control] http.tls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlTls {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM CA certificates client certificates must chain to.
    pub trust_anchor: Option<PathBuf>,
    /// Whether a client must present a certificate (with a trust anchor; default true).
    pub cert_required: bool,
}

/// BOOTP's fixed boot fields as a scope sets them (Kea's `next-server`, `server-hostname`,
/// `boot-file-name`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootFields {
    /// `siaddr`.
    pub next_server: Option<Ipv4Addr>,
    /// `sname` (at most 63 bytes).
    pub server_hostname: Option<Vec<u8>>,
    /// `file` (at most 127 bytes).
    pub boot_file_name: Option<Vec<u8>>,
}

impl BootFields {
    /// Whether it sets any field.
    pub fn is_empty(&self) -> bool {
        self.next_server.is_none() && self.server_hostname.is_none() && self.boot_file_name.is_none()
    }

    /// `self` where it sets a field, else `under`'s.
    pub fn or(&self, under: &BootFields) -> BootFields {
        BootFields {
            next_server: self.next_server.or(under.next_server),
            server_hostname: self.server_hostname.clone().or_else(|| under.server_hostname.clone()),
            boot_file_name: self.boot_file_name.clone().or_else(|| under.boot_file_name.clone()),
        }
    }
}

/// A client class (`[[client-class]]`): the clients its test matches (or that a reservation
/// puts in it), and what they get — options, boot fields, and the pools and subnets guarded
/// by it.
#[derive(Debug, Clone)]
pub struct ClientClass {
    /// Its name.
    pub name: String,
    /// Its test, compiled (None: only reservations put clients in it).
    pub test: Option<crate::classify::Expr>,
    /// Its options (between the subnet's and the global ones, as Kea orders them).
    pub options: OptionTable,
    /// Its boot fields (over the subnet's, under a reservation's).
    pub boot: BootFields,
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
    /// The same without the global options.
    pub own_options: OptionTable,
    /// Classes that may draw from it (bits of [`Config::classes`]; 0: every client).
    pub client_classes: u64,
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
    /// The lease scope: a client holds one lease per scope. The subnet's own id, or for a
    /// subnet of a shared network the lowest id among that network's subnets.
    pub lease_scope: u32,
    /// Server identifier to announce (default: the interface address).
    pub server_id: Option<Ipv4Addr>,
    /// Options (global overlaid with the subnet's).
    pub options: RenderedOptions,
    /// Option 82 from directly attached clients (giaddr 0) is trusted: an L2 access switch
    /// inserts it. Otherwise it is ignored and not echoed.
    pub trust_direct_option82: bool,
    /// Reservations (indexed by `reservation_index` when the configuration is built).
    pub reservations: Vec<Reservation>,
    /// The reservations by key.
    pub reservation_index: ReservationIndex,
    /// The subnet's options without the global ones.
    pub own_options: OptionTable,
    /// Classes whose clients may be on it (bits of [`Config::classes`]; 0: every client).
    pub client_classes: u64,
    /// Its boot fields.
    pub boot: BootFields,
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
    pub(super) fn new(reservations: &[Reservation]) -> Self {
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
    /// A subnet with no pools or reservations yet, its options `table` (see
    /// [`options_over`](Self::options_over)) and its lease times from `d`; an error says why the
    /// times do not fit.
    fn with_scope(id: u32, net: Ipv4Net, d: SubnetDefaults, table: &OptionTable) -> Result<Self, String> {
        let lease = d.lease_time;
        let renew = d.renew_time.unwrap_or(lease / 2);
        let rebind = d.rebind_time.unwrap_or(lease / 8 * 7);
        if !(renew < rebind && rebind < lease) {
            return Err(format!("need renew-time ({renew}) < rebind-time ({rebind}) < lease-time ({lease})"));
        }
        Ok(Self {
            id,
            net,
            pools: vec![],
            authoritative: d.authoritative,
            lease_time: lease,
            renew_time: renew,
            rebind_time: rebind,
            vlan: vec![],
            shared_network: None,
            lease_scope: id,
            server_id: None,
            trust_direct_option82: false,
            options: RenderedOptions::new(table),
            reservations: vec![],
            reservation_index: ReservationIndex::default(),
            own_options: OptionTable::default(),
            client_classes: 0,
            boot: BootFields::default(),
        })
    }

    /// The options a subnet on `net` starts from: `inherited`, with the subnet mask and
    /// broadcast address of `net` (the subnet's own options are overlaid on this).
    fn options_over(net: Ipv4Net, inherited: &OptionTable) -> OptionTable {
        let mut t = inherited.clone();
        t.set(opt::SUBNET_MASK, prefix_mask(net.prefix).to_be_bytes().to_vec());
        t.set(opt::BROADCAST, (u32::from(net.addr) | !prefix_mask(net.prefix)).to_be_bytes().to_vec());
        t
    }

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
    /// Relays whose fields are honoured (giaddr inside one of these); empty: any relay.
    pub trusted_relays: Vec<Ipv4Net>,
    /// DHCPv6 relays whose Relay-Forw is answered (source address inside one of these
    /// prefixes, `[relays] trusted6`); empty: any relay.
    pub trusted_relays6: Vec<(std::net::Ipv6Addr, u8)>,
    /// Who may ask leasequeries (`[relays] leasequery`; none: nobody).
    pub leasequery_from: Vec<Ipv4Net>,
    /// Who may ask DHCPv6 leasequeries (`[relays] leasequery6`, prefixes; none: nobody).
    pub leasequery6_from: Vec<(std::net::Ipv6Addr, u8)>,
    /// What one subscriber may hold and send.
    pub limits: Limits,
    /// The management channel's socket (`[control] socket`; the command line overrides it).
    pub control_socket: Option<PathBuf>,
    /// Kea 3's HTTP control socket (`[control] http`).
    pub control_http: Option<ControlHttp>,
    /// The forensic lease log (`[forensic-log]`).
    pub forensic_log: Option<ForensicConfig>,
    /// Where Prometheus metrics are served (`[metrics] listen`; the command line overrides it).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Cluster mode (`[cluster]`): PostgreSQL is the lease store of record, shared with other
    /// nodes. None: the local journal.
    pub cluster: Option<ClusterConfig>,
    /// DHCPv6 subnets (`[[subnet6]]`).
    pub subnets6: Vec<Subnet6>,
    /// Client classes, in the order they are evaluated (`[[client-class]]`).
    pub classes: Vec<ClientClass>,
    /// The global options (`[options]`), which client classes' options override.
    pub global_options: OptionTable,
    /// Option definitions: the standard options' and `[[option-def]]`.
    pub option_defs: Vec<optdef::OptionDef>,
    /// Bits of the classes that set options.
    pub class_options: u64,
    /// Bits of the classes that set boot fields.
    pub class_boot: u64,
    /// Whether any class, subnet or reservation sets a boot field (replies write them only
    /// then).
    pub boot_fields: bool,
    /// Subnets by address and by id.
    index: SubnetIndex,
}

/// `[cluster]`: this node's name, the shared PostgreSQL database, and the timing of heartbeats
/// and takeover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Unique name of this responder.
    pub node: String,
    /// libpq connection URL (`postgresql://…`, `host=` may name a unix socket directory).
    pub database: String,
    /// Seconds between heartbeats (and block-lease renewals).
    pub heartbeat: u32,
    /// Seconds without a peer's heartbeat after which the survivors take its buckets and
    /// blocks.
    pub takeover_after: u32,
    /// Addresses per block a node claims (pools are cut into blocks of this size).
    pub block_size: u32,
}

/// Default `[cluster] heartbeat` (s).
pub const DEFAULT_HEARTBEAT: u32 = 1;
/// Default `[cluster] takeover-after` (s).
pub const DEFAULT_TAKEOVER_AFTER: u32 = 3;
/// Default `[cluster] block-size` (addresses).
pub const DEFAULT_BLOCK_SIZE: u32 = 64;

/// What one subscriber may hold and send (`[limits]`). A limit of 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Addresses (offered or bound) one chaddr may hold, whatever client ids it sends.
    pub leases_per_mac: u32,
    /// Addresses one relay circuit (option 82.1) may hold.
    pub leases_per_circuit: u32,
    /// Addresses one remote id (option 82.2) may hold.
    pub leases_per_remote_id: u32,
    /// DHCPv6 leases (addresses and prefixes, in all subnets) one DUID may hold; 0: no limit.
    pub leases_per_duid: u32,
    /// New offers to one chaddr per offer-hold period (never unlimited).
    pub offers_per_mac: u32,
    /// New offers to one circuit per offer-hold period (never unlimited).
    pub offers_per_circuit: u32,
    /// Frames per second one chaddr may send; the XDP program drops the rest (0: no limit).
    pub rate_per_mac: u32,
    /// Frames one chaddr may send at once above its rate.
    pub burst_per_mac: u32,
    /// Requests per second one circuit may send; the engine drops the rest (0: no limit).
    pub rate_per_circuit: u32,
    /// Share of a pool (percent) that may sit on probation after DECLINEs.
    pub declined_percent: u32,
    /// Key of the XDP program's worker hash (None: random at each start).
    pub steering_key: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            leases_per_mac: 0,
            leases_per_circuit: 0,
            leases_per_remote_id: 0,
            leases_per_duid: 16,
            offers_per_mac: 16,
            offers_per_circuit: 256,
            rate_per_mac: 50,
            burst_per_mac: 100,
            rate_per_circuit: 0,
            declined_percent: 10,
            steering_key: None,
        }
    }
}

/// Up to this many subnets a scan beats the index.
const SMALL: usize = 8;

/// Per-packet subnet lookups, built with the configuration: a relay network of thousands of
/// subnets costs a binary search, not a scan.
#[derive(Debug, Clone, Default)]
pub(super) struct SubnetIndex {
    /// (network, broadcast, subnet index), sorted; subnets never overlap (validated).
    ranges: Vec<(u32, u32, usize)>,
    by_id: hashbrown::HashMap<u32, usize>,
    /// The only subnet without VLAN tags, if there is exactly one.
    sole_untagged: Option<usize>,
}

impl SubnetIndex {
    pub(super) fn new(subnets: &[Subnet]) -> Self {
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

impl Config {
    /// Zero-config: serve the interface's own subnet; pool = the subnet minus network, broadcast
    /// and the interface's address; router and DNS = the interface's address. Built as values,
    /// with the defaults a file without settings gets.
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
        let err =
            |message: String| ConfigError { file: "zero-config".into(), line: 0, field: iface_name.into(), message };
        if ranges.is_empty() {
            return Err(err(format!(
                "{}/{} leaves no address to hand out; give a config file",
                addr.addr, addr.prefix
            )));
        }
        let mut global = OptionTable::default();
        global.set(opt::ROUTERS, addr.addr.octets().to_vec());
        global.set(opt::DNS, addr.addr.octets().to_vec());
        let net = Ipv4Net { addr: Ipv4Addr::from(net), prefix: addr.prefix };
        let table = Subnet::options_over(net, &global);
        let mut subnet = Subnet::with_scope(1, net, SubnetDefaults::default(), &table).map_err(err)?;
        subnet.pools = ranges
            .iter()
            .map(|&(a, b)| Pool {
                start: a.into(),
                end: b.into(),
                options: RenderedOptions::new(&table),
                own_options: OptionTable::default(),
                client_classes: 0,
            })
            .collect();
        let subnets = vec![subnet];
        Ok(Self {
            source: format!("zero-config from {iface_name} {}/{}", addr.addr, addr.prefix),
            shared_networks: vec![],
            server_id: None,
            offer_hold: DEFAULT_OFFER_HOLD,
            decline_probation: DEFAULT_DECLINE_PROBATION,
            bootp: BootpPolicy::Ignore,
            persist_dir: None,
            durability: Durability::Fsync,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            trusted_relays: vec![],
            trusted_relays6: vec![],
            leasequery_from: vec![],
            leasequery6_from: vec![],
            limits: Limits::default(),
            control_socket: None,
            control_http: None,
            forensic_log: None,
            metrics_listen: None,
            cluster: None,
            subnets6: vec![],
            classes: vec![],
            global_options: OptionTable::default(),
            option_defs: optdef::standard(),
            class_options: 0,
            class_boot: 0,
            boot_fields: false,
            index: SubnetIndex::new(&subnets),
            subnets,
        })
    }

    /// Zero-config for DHCPv6: when the interface has a global address in a prefix of /48 to
    /// /64, serve that prefix with a pool of 65 536 addresses from `::1:0` (past the low
    /// addresses routers and servers are usually given, and past our own when it lies there).
    /// Nothing to delegate: prefix delegation needs a configured pd-pool.
    pub fn with_zero_config6(mut self, addrs: &[(std::net::Ipv6Addr, u8)]) -> Self {
        let Some(&(addr, len)) =
            addrs.iter().find(|(a, l)| (48..=64).contains(l) && a.segments()[0] & 0xe000 == 0x2000)
        else {
            return self;
        };
        let mask = u128::MAX << (128 - u32::from(len));
        let net = u128::from(addr) & mask;
        let mut first = net + 0x1_0000;
        let last = net + 0x1_ffff;
        if (first..=last).contains(&u128::from(addr)) {
            first = u128::from(addr) + 1;
        }
        let Ok(pool) = crate::leases::prefix::PrefixRange::addresses(first.into(), last.into()) else {
            return self;
        };
        self.subnets6.push(Subnet6 {
            id: 1,
            prefix: net.into(),
            prefix_len: len,
            interface_id: None,
            valid: v6::DEFAULT_VALID,
            preferred: v6::DEFAULT_PREFERRED,
            t1: v6::DEFAULT_PREFERRED / 2,
            t2: v6::DEFAULT_PREFERRED / 5 * 4,
            rapid_commit: false,
            preference: None,
            dns_servers: vec![],
            domain_search: vec![],
            pools: vec![pool],
            pd_pools: vec![],
            reservations: vec![],
        });
        self.source = format!("{} and {}/{len}", self.source, std::net::Ipv6Addr::from(net));
        self
    }

    /// Whether a DHCPv6 Relay-Forw from `src` is answered (`[relays] trusted6`, or any when
    /// that is empty).
    pub fn relay6_trusted(&self, src: std::net::Ipv6Addr) -> bool {
        self.trusted_relays6.is_empty() || self.trusted_relays6.iter().any(|&(p, l)| in_prefix(src, p, l))
    }

    /// Whether a DHCPv6 leasequery from `src` may be answered: listed in `[relays]
    /// leasequery6` (nobody when the list is empty).
    pub fn leasequery6_allowed(&self, src: std::net::Ipv6Addr) -> bool {
        self.leasequery6_from.iter().any(|&(p, l)| in_prefix(src, p, l))
    }

    /// Whether a leasequery from `addr` (its giaddr) may be answered: listed in `[relays]
    /// leasequery` (nobody when the list is empty).
    pub fn leasequery_allowed(&self, addr: Ipv4Addr) -> bool {
        self.leasequery_from.iter().any(|n| {
            let m = prefix_mask(n.prefix);
            u32::from(addr) & m == u32::from(n.addr) & m
        })
    }

    /// Whether a relay with this giaddr is one whose fields are honoured.
    pub fn relay_trusted(&self, giaddr: Ipv4Addr) -> bool {
        self.trusted_relays.is_empty()
            || self.trusted_relays.iter().any(|n| {
                let m = prefix_mask(n.prefix);
                u32::from(giaddr) & m == u32::from(n.addr) & m
            })
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

    /// The lease scope of subnet `id` (see [`Subnet::lease_scope`]); an unknown subnet is its
    /// own scope.
    pub fn scope_of(&self, id: u32) -> u32 {
        self.subnet_index(id).map_or(id, |i| self.subnets[i].lease_scope)
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

    /// The names of the classes whose bits are set in `bits` (a guard's, a reservation's), in
    /// the order they are defined.
    pub fn class_names(&self, bits: u64) -> Vec<&str> {
        self.classes.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, c)| c.name.as_str()).collect()
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
        let l = &self.limits;
        let n = |v: u32| if v == 0 { "unlimited".to_owned() } else { v.to_string() };
        s += &format!(
            "  limits: leases per mac {}, per circuit {}, per remote id {}; offers per mac {}, per circuit {} per {} s; \
             rate per mac {} (burst {}), per circuit {}; declined ≤ {} % of a pool\n",
            n(l.leases_per_mac),
            n(l.leases_per_circuit),
            n(l.leases_per_remote_id),
            l.offers_per_mac,
            l.offers_per_circuit,
            self.offer_hold,
            n(l.rate_per_mac),
            l.burst_per_mac,
            n(l.rate_per_circuit),
            l.declined_percent
        );
        let relays: Vec<String> = self.trusted_relays.iter().map(|r| format!("{}/{}", r.addr, r.prefix)).collect();
        s += &format!(
            "  trusted relays: {}\n",
            if relays.is_empty() { "any (giaddr from UDP port 67)".to_owned() } else { relays.join(", ") }
        );
        let names = |bits: u64| self.class_names(bits).join(" or ");
        for c in &self.classes {
            let mut what = vec![];
            if !c.options.is_empty() {
                what.push(format!("options {:?}", c.options.iter().map(|(code, _)| code).collect::<Vec<_>>()));
            }
            if !c.boot.is_empty() {
                what.push("boot fields".to_owned());
            }
            s += &format!(
                "  class {}: {}{}\n",
                c.name,
                c.test.as_ref().map_or("(by reservation only)".to_owned(), |t| format!("test `{}`", t.source)),
                if what.is_empty() { String::new() } else { format!("; sets {}", what.join(", ")) }
            );
        }
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
            if sub.client_classes != 0 {
                s += &format!("    only for class {}\n", names(sub.client_classes));
            }
            for p in &sub.pools {
                let only =
                    if p.client_classes == 0 { String::new() } else { format!(", class {}", names(p.client_classes)) };
                s += &format!("    pool {}-{} ({} addresses{only})\n", p.start, p.end, p.len());
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
        if !self.subnets6.is_empty() {
            let relays: Vec<String> = self.trusted_relays6.iter().map(|(p, l)| format!("{p}/{l}")).collect();
            s += &format!(
                "  DHCPv6: leases per DUID {}; trusted relays: {}\n",
                n(l.leases_per_duid),
                if relays.is_empty() { "any".to_owned() } else { relays.join(", ") }
            );
        }
        for sub in &self.subnets6 {
            s += &format!(
                "  subnet6 {} {}/{}: valid {} s, preferred {} s (T1 {}, T2 {}){}{}\n",
                sub.id,
                sub.prefix,
                sub.prefix_len,
                sub.valid,
                sub.preferred,
                sub.t1,
                sub.t2,
                sub.interface_id.as_ref().map(|i| format!(", interface-id {}", colon_hex(i))).unwrap_or_default(),
                if sub.rapid_commit { ", rapid commit" } else { "" },
            );
            for p in &sub.pools {
                let last = p.nth(p.count() - 1).unwrap_or(std::net::Ipv6Addr::UNSPECIFIED);
                s += &format!("    pool {}-{last} ({} addresses)\n", p.nth(0).unwrap_or(last), p.count());
            }
            for p in &sub.pd_pools {
                let first = p.nth(0).unwrap_or(std::net::Ipv6Addr::UNSPECIFIED);
                s += &format!("    pd-pool from {first}: {} prefixes of /{}\n", p.count(), p.delegated_len());
            }
            for r in &sub.reservations {
                s += &format!("    reservation {:?} → {:?} {:?}\n", r.key, r.addresses, r.prefixes);
            }
        }
        s
    }
}
