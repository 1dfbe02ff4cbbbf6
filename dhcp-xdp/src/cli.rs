//! The command line: `dhcp-xdp run` and the offline subcommands (clap definitions only; each
//! subcommand's work is in `commands/`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use dhcp_xdp::{
    daemon::{HandlerKind, Options},
    datapath::{BindModeArg, DatapathConfig},
    ebpf::XdpModeArg,
};

#[derive(Parser, Debug)]
#[command(name = "dhcp-xdp", version, about = "DHCPv4 and DHCPv6 server answering from AF_XDP sockets")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Attach to an interface and answer DHCP frames until SIGINT/SIGTERM.
    Run(RunArgs),
    /// Validate a configuration file and print what was understood.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
    /// Send one command to a running daemon's control channel (what kea-shell is to Kea) and
    /// print the answer: `leases` and `stats` as tables, anything else (Kea's command names,
    /// e.g. `lease4-get '{"ip-address": "198.18.0.10"}'`) as JSON.
    Ctl {
        /// The control socket [default: the only one in /run/dhcp-xdp].
        #[arg(long)]
        socket: Option<PathBuf>,
        /// `leases`, `stats`, or a command of `list-commands`.
        command: String,
        /// The command's arguments as a JSON object.
        arguments: Option<String>,
    },
    /// Import leases into a state directory (no daemon may hold it): from Kea's memfile CSV
    /// (`kea-leases4.csv`, or `kea-leases6.csv`: told by its header) or ISC dhcpd's
    /// `dhcpd.leases`; leases outside the configured pools are reported, not imported.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["kea_csv", "dhcpd_leases"])))]
    Import {
        /// The state directory (`--state-dir` of `run`).
        #[arg(long)]
        state_dir: PathBuf,
        /// The configuration the daemon will run with (subnets and pools).
        #[arg(long)]
        config: PathBuf,
        /// Kea's lease file.
        #[arg(long)]
        kea_csv: Option<PathBuf>,
        /// ISC dhcpd's lease file (active leases are imported, abandoned addresses as
        /// declined; free, backup, expired and released bindings stay in the pool).
        #[arg(long)]
        dhcpd_leases: Option<PathBuf>,
    },
    /// Export the leases of a state directory (read-only; a daemon may hold it).
    Export {
        /// The state directory.
        #[arg(long)]
        state_dir: PathBuf,
        /// `kea-csv` (a file kea-dhcp4 loads), `kea-csv6` (a file kea-dhcp6 loads) or `json`.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// The configuration, for each subnet's lease time in Kea's `valid_lifetime` [default:
        /// 3600 s].
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Convert Kea's or ISC dhcpd's configuration (DHCPv4, and DHCPv6: Kea's `Dhcp6`, dhcpd's
    /// `subnet6` and v6 hosts) into this server's TOML (on stdout),
    /// listing what it could not carry over (in comments at the top and on stderr).
    #[command(group(clap::ArgGroup::new("source").required(true).args(["kea_config", "dhcpd_conf"])))]
    Convert {
        /// The kea-dhcp4 configuration file (JSON, comments allowed as Kea allows them).
        #[arg(long)]
        kea_config: Option<PathBuf>,
        /// ISC dhcpd's configuration file (dhcpd.conf).
        #[arg(long)]
        dhcpd_conf: Option<PathBuf>,
    },
    /// Write the manual pages generated from this command line (dhcp-xdp.8 and one
    /// dhcp-xdp-COMMAND.8 per command) into a directory.
    Man {
        /// Where to write them.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Recover the lease journal of a state directory (offline) and print every lease.
    Leases {
        /// The state directory (`--state-dir` of `run`).
        #[arg(long)]
        state_dir: PathBuf,
    },
    /// Who held an address (or what a MAC or a circuit held) at a time, from the forensic lease
    /// log (`[forensic-log]`: its file, whose rotated files are read too, or the cluster
    /// database's table).
    Who {
        /// The log file.
        #[arg(long, group = "source", required = true)]
        log: Option<PathBuf>,
        /// The cluster database the log is kept in (`database = true`), as a libpq URL.
        #[arg(long, group = "source", required = true)]
        database: Option<String>,
        /// The address asked about (IPv4, or an IPv6 address or delegated prefix).
        #[arg(long, group = "what")]
        address: Option<std::net::IpAddr>,
        /// A hardware address: the addresses it held.
        #[arg(long, group = "what")]
        mac: Option<String>,
        /// A relay circuit id (as text, or hex with colons): the addresses held on that line.
        #[arg(long, group = "what")]
        circuit: Option<String>,
        /// When (RFC 3339, UTC: `2026-12-01T10:00:00Z`); without it, now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Cluster mode's PostgreSQL schema: `init` creates it (in an empty database), `upgrade`
    /// migrates an older one, `status` shows the version, nodes, blocks and leases.
    Db {
        /// `init`, `upgrade` or `status`.
        #[arg(value_enum)]
        action: DbAction,
        /// The database, as a libpq URL (`postgresql:///dhcp?host=/run/postgresql`).
        #[arg(long)]
        database: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DbAction {
    Init,
    Upgrade,
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Kea's DHCPv4 memfile CSV (`kea-leases4.csv`).
    KeaCsv,
    /// Kea's DHCPv6 memfile CSV (`kea-leases6.csv`).
    #[value(name = "kea-csv6")]
    KeaCsv6,
    /// Kea's lease objects (DHCPv4).
    Json,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Interface to serve.
    #[arg(long)]
    pub iface: String,
    /// Configuration file (TOML). Without one, the interface's own subnet is served.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Lease journal directory (overrides the file's persistence.dir;
    /// default /var/lib/dhcp-xdp/<iface>).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Worker threads (AF_XDP sockets) per receive queue [default: usable cores].
    #[arg(long)]
    pub workers: Option<u32>,
    /// Receive queues to bind, comma separated [default: all].
    #[arg(long, value_delimiter = ',')]
    pub queues: Option<Vec<u32>>,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    pub xdp_mode: XdpModeArg,
    /// AF_XDP bind mode.
    #[arg(long, value_enum, default_value_t = BindModeArg::Auto)]
    pub bind_mode: BindModeArg,
    /// What answers frames: the DHCP `engine`, or `reflect` (turns each BOOTREQUEST back into a
    /// BOOTREPLY to its sender: a plumbing check).
    #[arg(long, value_enum, default_value_t = HandlerKind::Engine)]
    pub handler: HandlerKind,
    /// Most frames a worker takes per batch (one journal write per batch).
    #[arg(long, default_value_t = DatapathConfig::default().batch)]
    pub batch: u32,
    /// Entries of each socket's RX and TX ring (a power of two, 512 to 65 536); the fill ring
    /// gets twice as many and the queue's UMEM four times as many 4 KiB chunks (the default
    /// 2 048: 32 MiB a queue). A burst beyond what the RX ring holds while the workers catch up
    /// is dropped by the kernel: an edge that expects every subscriber at once (a power cut, a
    /// BNG reboot) sizes it for the burst.
    #[arg(long, default_value_t = DatapathConfig::default().ring_size, value_parser = ring_size)]
    pub ring_size: u32,
    /// Microseconds a worker keeps polling after its last frame before it sleeps in poll(2)
    /// (waking a sleeping worker costs up to a millisecond on a VM: higher is lower latency at
    /// low rates, and more CPU).
    #[arg(long, default_value_t = DatapathConfig::default().spin.as_micros() as u64)]
    pub spin_us: u64,
    /// Seconds between statistics lines in the log (0: only at exit).
    #[arg(long, default_value_t = 60)]
    pub stats_interval: u64,
    /// Log level of the XDP program's aya-log output (0 off, 1 error … 5 trace).
    #[arg(long, default_value_t = 0)]
    pub ebpf_log_level: u8,
    /// The management channel (Kea's control channel shapes; mode 0600) [default:
    /// /run/dhcp-xdp/<iface>.sock].
    #[arg(long)]
    pub control_socket: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (overrides `[metrics] listen`).
    #[arg(long)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Key of the XDP program's chaddr hash (overrides the file's `[limits] steering-key`;
    /// default: random at each start, so no client can choose its worker).
    #[arg(long)]
    pub steering_key: Option<u32>,
    /// Where the log goes: `auto` is the systemd journal when systemd connected stdout to it,
    /// else stdout (one line per event; `RUST_LOG` filters, default `info`).
    #[arg(long, value_enum, default_value_t = dhcp_xdp::logging::LogTarget::Auto)]
    pub log: dhcp_xdp::logging::LogTarget,
    /// Fault injection for tests: a worker panics on a frame with this BOOTP xid.
    #[arg(long, hide = true, value_parser = parse_hex_u32)]
    pub fault_panic_on_xid: Option<u32>,
}

fn parse_hex_u32(s: &str) -> Result<u32, String> {
    let t = s.trim_start_matches("0x");
    u32::from_str_radix(t, 16).map_err(|e| format!("{s}: {e}"))
}

impl RunArgs {
    /// The daemon's options.
    pub fn options(self) -> Options {
        Options {
            iface: self.iface,
            config: self.config,
            state_dir: self.state_dir,
            workers: self.workers,
            queues: self.queues,
            xdp_mode: self.xdp_mode,
            bind_mode: self.bind_mode,
            handler: self.handler,
            batch: self.batch,
            ring_size: self.ring_size,
            spin: std::time::Duration::from_micros(self.spin_us),
            stats_interval: std::time::Duration::from_secs(self.stats_interval),
            ebpf_log_level: self.ebpf_log_level,
            control_socket: self.control_socket,
            metrics: self.metrics,
            steering_key: self.steering_key,
            fault_panic_on_xid: self.fault_panic_on_xid,
        }
    }
}

/// `--ring-size`: a power of two from 512 to 65 536.
fn ring_size(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if n.is_power_of_two() && (512..=65_536).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is not a power of two from 512 to 65536"))
    }
}
