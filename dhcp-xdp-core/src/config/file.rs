//! The configuration file as written: serde "wire" structs, one per TOML section, with spans
//! for error messages. Nothing here validates; [`super::build`] turns them into runtime types.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileConfig {
    #[serde(default)]
    pub(super) server: ServerSection,
    #[serde(default)]
    pub(super) persistence: PersistenceSection,
    #[serde(default)]
    pub(super) options: OptionsSection,
    #[serde(default)]
    pub(super) subnet: Vec<SubnetSection>,
    #[serde(default)]
    pub(super) subnet6: Vec<super::v6::Subnet6Section>,
    #[serde(default)]
    pub(super) relays: RelaysSection,
    #[serde(default)]
    pub(super) limits: LimitsSection,
    #[serde(default)]
    pub(super) control: ControlSection,
    #[serde(default)]
    pub(super) metrics: MetricsSection,
    pub(super) cluster: Option<Spanned<ClusterSection>>,
    #[serde(default)]
    pub(super) client_class: Vec<ClientClassSection>,
    #[serde(default)]
    pub(super) option_def: Vec<OptionDefSection>,
    pub(super) forensic_log: Option<Spanned<ForensicLogSection>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ForensicLogSection {
    pub(super) path: Option<PathBuf>,
    pub(super) database: Option<bool>,
    pub(super) rotate_size: Option<Spanned<toml::Value>>,
    pub(super) keep: Option<usize>,
    pub(super) keep_days: Option<u32>,
    pub(super) fsync_interval_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct OptionDefSection {
    pub(super) name: Spanned<String>,
    pub(super) code: Spanned<u8>,
    #[serde(rename = "type")]
    pub(super) ty: Spanned<String>,
    pub(super) record_types: Option<String>,
    pub(super) array: Option<bool>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct VivsoSection {
    pub(super) enterprise: Spanned<u32>,
    #[serde(default)]
    pub(super) suboptions: Vec<CustomOption>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ClientClassSection {
    pub(super) name: Spanned<String>,
    pub(super) test: Option<Spanned<String>>,
    pub(super) next_server: Option<Spanned<String>>,
    pub(super) server_hostname: Option<Spanned<String>>,
    pub(super) boot_file_name: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) options: OptionsSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ClusterSection {
    pub(super) node: Option<Spanned<String>>,
    pub(super) database: Option<Spanned<String>>,
    pub(super) heartbeat: Option<Spanned<u32>>,
    pub(super) takeover_after: Option<Spanned<u32>>,
    pub(super) block_size: Option<Spanned<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct MetricsSection {
    pub(super) listen: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ControlSection {
    pub(super) socket: Option<PathBuf>,
    pub(super) http: Option<Spanned<ControlHttpSection>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ControlHttpSection {
    pub(super) listen: Spanned<String>,
    #[serde(default)]
    pub(super) users: Vec<ControlUserSection>,
    pub(super) tls: Option<ControlTlsSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ControlTlsSection {
    pub(super) cert_file: PathBuf,
    pub(super) key_file: PathBuf,
    pub(super) trust_anchor: Option<PathBuf>,
    pub(super) cert_required: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ControlUserSection {
    pub(super) user: String,
    pub(super) password_file: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RelaysSection {
    pub(super) trusted: Option<Vec<Spanned<String>>>,
    pub(super) leasequery: Option<Vec<Spanned<String>>>,
    pub(super) trusted6: Option<Vec<Spanned<String>>>,
    pub(super) leasequery6: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct LimitsSection {
    pub(super) leases_per_mac: Option<u32>,
    pub(super) leases_per_circuit: Option<u32>,
    pub(super) leases_per_remote_id: Option<u32>,
    pub(super) leases_per_duid: Option<u32>,
    pub(super) offers_per_mac: Option<Spanned<u32>>,
    pub(super) offers_per_circuit: Option<Spanned<u32>>,
    pub(super) rate_per_mac: Option<u32>,
    pub(super) burst_per_mac: Option<u32>,
    pub(super) rate_per_circuit: Option<u32>,
    pub(super) declined_percent: Option<Spanned<u32>>,
    pub(super) steering_key: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ServerSection {
    pub(super) server_id: Option<Spanned<String>>,
    pub(super) lease_time: Option<Spanned<u32>>,
    pub(super) renew_time: Option<Spanned<u32>>,
    pub(super) rebind_time: Option<Spanned<u32>>,
    pub(super) offer_hold: Option<u32>,
    pub(super) decline_probation: Option<u32>,
    pub(super) authoritative: Option<bool>,
    pub(super) bootp: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct PersistenceSection {
    pub(super) dir: Option<PathBuf>,
    pub(super) durability: Option<Spanned<String>>,
    pub(super) snapshot_every: Option<u64>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct OptionsSection {
    pub(super) routers: Option<Vec<Spanned<String>>>,
    pub(super) dns_servers: Option<Vec<Spanned<String>>>,
    pub(super) domain_name: Option<String>,
    pub(super) ntp_servers: Option<Vec<Spanned<String>>>,
    pub(super) classless_routes: Option<Vec<RouteSection>>,
    #[serde(default)]
    pub(super) custom: Vec<CustomOption>,
    /// Option 43's sub-options.
    #[serde(default)]
    pub(super) vendor_encapsulated: Vec<CustomOption>,
    /// Option 125, per enterprise.
    #[serde(default)]
    pub(super) vivso: Vec<VivsoSection>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RouteSection {
    pub(super) destination: Spanned<String>,
    pub(super) router: Spanned<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct CustomOption {
    pub(super) code: Option<Spanned<u8>>,
    pub(super) name: Option<Spanned<String>>,
    /// The value in the option's type, as Kea's `data`.
    pub(super) data: Option<Spanned<String>>,
    pub(super) bool: Option<bool>,
    pub(super) fqdn: Option<Spanned<String>>,
    pub(super) ip: Option<Vec<Spanned<String>>>,
    pub(super) text: Option<String>,
    pub(super) hex: Option<Spanned<String>>,
    pub(super) u8: Option<u8>,
    pub(super) u16: Option<u16>,
    pub(super) u32: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct SubnetSection {
    pub(super) subnet: Spanned<String>,
    pub(super) id: Option<u32>,
    pub(super) authoritative: Option<bool>,
    pub(super) lease_time: Option<u32>,
    pub(super) renew_time: Option<u32>,
    pub(super) rebind_time: Option<u32>,
    pub(super) vlan: Option<Spanned<Vec<u16>>>,
    pub(super) shared_network: Option<String>,
    pub(super) server_id: Option<Spanned<String>>,
    pub(super) trust_direct_option82: Option<bool>,
    pub(super) client_class: Option<Spanned<String>>,
    pub(super) client_classes: Option<Vec<Spanned<String>>>,
    pub(super) next_server: Option<Spanned<String>>,
    pub(super) server_hostname: Option<Spanned<String>>,
    pub(super) boot_file_name: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) options: OptionsSection,
    #[serde(default)]
    pub(super) pool: Vec<PoolSection>,
    #[serde(default)]
    pub(super) reservation: Vec<ReservationSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct PoolSection {
    pub(super) range: Spanned<String>,
    pub(super) client_class: Option<Spanned<String>>,
    pub(super) client_classes: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) options: OptionsSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ReservationSection {
    pub(super) hw_address: Option<Spanned<String>>,
    pub(super) client_id: Option<Spanned<String>>,
    pub(super) circuit_id: Option<String>,
    pub(super) circuit_id_hex: Option<Spanned<String>>,
    pub(super) remote_id: Option<String>,
    pub(super) remote_id_hex: Option<Spanned<String>>,
    pub(super) ip: Option<Spanned<String>>,
    pub(super) hostname: Option<String>,
    pub(super) client_classes: Option<Vec<Spanned<String>>>,
    pub(super) next_server: Option<Spanned<String>>,
    pub(super) server_hostname: Option<Spanned<String>>,
    pub(super) boot_file_name: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) options: OptionsSection,
}
