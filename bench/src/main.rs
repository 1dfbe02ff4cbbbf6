//! `bench`: the AF_XDP DHCP load generator (`bench gen`) and the side-by-side comparison of
//! dhcp-xdp with Kea, ISC dhcpd and dnsmasq (`bench compare`, run by `cargo xtask bench`).
#![deny(unsafe_code)]

mod compare;
mod generator;
mod plot;
mod takeover;
mod v6;

use std::{net::Ipv4Addr, path::PathBuf, time::Duration};

use anyhow::{Context as _, anyhow};
use clap::{Args, Parser, Subcommand};
use dhcp_xdp::{datapath::BindModeArg, ebpf::XdpModeArg};
use generator::{GenConfig, Relay, Scenario};

#[derive(Parser)]
#[command(about = "dhcp-xdp load-testing rig")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the generator on an interface (in the current network namespace) and prints the
    /// result as JSON on stdout.
    Gen(GenArgs),
    /// Builds the rig and runs dhcp-xdp, the echo ceiling and (where installed) Kea, ISC dhcpd
    /// and dnsmasq under the same generator runs; writes a report to --out.
    Compare(CompareArgs),
    /// DHCPv6 beside DHCPv4 under perfdhcp: dhcp-xdp (v4 DORA and v6 with an address and a
    /// prefix) and kea-dhcp6 at each offered rate; writes a report to --out.
    Compare6(Compare6Args),
}

#[derive(Args, Clone)]
struct Compare6Args {
    /// Offered rates (exchanges per second).
    #[arg(long, value_delimiter = ',', default_value = "2000,5000,10000,20000")]
    rates: Vec<u64>,
    /// Seconds per point.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Distinct clients per point.
    #[arg(long, default_value_t = 20_000)]
    clients: u32,
    /// Where the report goes.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

#[derive(Args, Clone)]
struct CompareArgs {
    /// What each exchange is.
    #[arg(long, value_enum, default_value = "dora")]
    scenario: Scenario,
    /// Seconds per closed-loop run (open-loop points take half).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Distinct simulated clients (the pool holds 130 560 addresses; the perfdhcp check takes
    /// 20 000 more).
    #[arg(long, default_value_t = 40_000)]
    clients: u32,
    /// Closed loop: exchanges outstanding at once.
    #[arg(long, default_value_t = 256)]
    window: u32,
    /// Open-loop points, as fractions of each server's capacity (of its closed-loop maximum with
    /// no capacity search).
    #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,0.75,1.0,1.5,3.0")]
    fractions: Vec<f64>,
    /// dhcp-xdp journal durability.
    #[arg(long, value_enum, default_value = "fsync")]
    durability: compare::Durability,
    /// dhcp-xdp (and echo) workers.
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// Servers to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "echo,dhcp-xdp,dhcp-xdp-pg,kea-mt,kea-pg,kea,dhcpd,dnsmasq"
    )]
    servers: Vec<compare::Server>,
    /// perfdhcp's offered rate for the honesty check (0: skip).
    #[arg(long, default_value_t = 5000)]
    perfdhcp_rate: u64,
    /// DHCPLEASEQUERYs per second a relay sends to `dhcp-xdp-lq` beside DORA.
    #[arg(long, default_value_t = 5000)]
    leasequery_rate: u64,
    /// Clients of the avalanche run against each server (a fresh instance): all boot at once and
    /// retransmit as RFC 2131 says (0: skip). At most the pool, 130 560.
    #[arg(long, default_value_t = 100_000)]
    avalanche: u32,
    /// dhcp-xdp's (and echo's) `--ring-size` in the avalanche runs: rings that hold a town's
    /// first DISCOVERs (with 2 048, a third of 100 000 are lost and wait 4 s to retransmit).
    #[arg(long, default_value_t = 65_536)]
    avalanche_ring_size: u32,
    /// Longest an avalanche run may take, in seconds.
    #[arg(long, default_value_t = 120.0)]
    avalanche_limit: f64,
    /// dhcp-xdp's (and echo's) `--ring-size`: RX/TX ring entries (fill ×2, UMEM chunks ×4).
    #[arg(long, default_value_t = 2048)]
    ring_size: u32,
    /// Seconds of each trial of the capacity search (the highest offered rate at which 99.9 %
    /// of exchanges complete within 1 s; 0: no search).
    #[arg(long, default_value_t = 3.0)]
    search_trial: f64,
    /// Where the report goes.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

#[derive(Args, Clone)]
struct GenArgs {
    /// Interface facing the server.
    #[arg(long)]
    iface: String,
    /// What each exchange is.
    #[arg(long, value_enum, default_value = "dora")]
    scenario: Scenario,
    /// Distinct simulated clients.
    #[arg(long, default_value_t = 10_000)]
    clients: u32,
    /// Open loop: exchanges started per second. 0: closed loop.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Closed loop: exchanges outstanding at once.
    #[arg(long, default_value_t = 256)]
    window: u32,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Milliseconds after which an exchange counts as timed out.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Send a client identifier (option 61).
    #[arg(long)]
    client_id: bool,
    /// Act as a relay with this giaddr (adds option 82); needs --server-ip and --server-mac.
    #[arg(long)]
    relay: Option<Ipv4Addr>,
    /// The server's address (relay mode).
    #[arg(long)]
    server_ip: Option<Ipv4Addr>,
    /// The server's hardware address (relay mode).
    #[arg(long)]
    server_mac: Option<String>,
    /// VLAN tags outer first, e.g. `100` or `10,100` (QinQ: 802.1ad outer, 802.1Q inner).
    #[arg(long, value_delimiter = ',')]
    vlan: Vec<u16>,
    /// First and last address of the pool (`A-B`): every OFFER/ACK must be inside.
    #[arg(long)]
    pool: Option<String>,
    /// The server is `dhcp-xdp --handler reflect`: count echoed frames, skip DHCP checks.
    #[arg(long)]
    echo: bool,
    /// Second byte of every chaddr.
    #[arg(long, default_value_t = 1)]
    run_id: u8,
    /// XDP attach mode of the generator's steering program.
    #[arg(long, value_enum, default_value = "auto")]
    xdp_mode: XdpModeArg,
    /// AF_XDP bind mode.
    #[arg(long, value_enum, default_value = "auto")]
    bind_mode: BindModeArg,
    /// Also write the JSON result to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// DHCPv6: SOLICIT-ADVERTISE-REQUEST-REPLY with an address and a prefix per client
    /// (scenarios dora and discover).
    #[arg(long)]
    dhcp6: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

fn parse_pool(s: &str) -> anyhow::Result<(Ipv4Addr, Ipv4Addr)> {
    let (a, b) = s.split_once('-').ok_or_else(|| anyhow!("--pool wants FIRST-LAST"))?;
    Ok((a.trim().parse()?, b.trim().parse()?))
}

impl GenArgs {
    fn config(&self) -> anyhow::Result<GenConfig> {
        let relay = match self.relay {
            None => None,
            Some(giaddr) => {
                let server_ip = self.server_ip.ok_or_else(|| anyhow!("--relay needs --server-ip"))?;
                let mac = self.server_mac.as_deref().ok_or_else(|| anyhow!("--relay needs --server-mac"))?;
                let server_mac = dhcp_xdp_core::net::parse_mac(mac).context("--server-mac")?;
                Some(Relay { giaddr, server_ip, server_mac })
            }
        };
        let vlans = match self.vlan.as_slice() {
            [] => vec![],
            [v] => vec![(0x8100, *v)],
            [o, i] => vec![(0x88a8, *o), (0x8100, *i)],
            _ => anyhow::bail!("--vlan takes one or two tags"),
        };
        Ok(GenConfig {
            iface: self.iface.clone(),
            scenario: self.scenario,
            clients: self.clients,
            rate: self.rate,
            window: self.window.max(1),
            duration: Duration::from_secs_f64(self.duration),
            timeout: Duration::from_millis(self.timeout_ms),
            client_id: self.client_id,
            relay,
            vlans,
            pool: self.pool.as_deref().map(parse_pool).transpose()?,
            echo: self.echo,
            run_id: self.run_id,
            xdp_mode: self.xdp_mode,
            bind: self.bind_mode,
            progress: !self.quiet,
            dhcp6: self.dhcp6,
        })
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Gen(args) => {
            let result = generator::run(args.config()?)?;
            let text = serde_json::to_string_pretty(&result)?;
            if let Some(path) = &args.json {
                std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            }
            println!("{text}");
            Ok(())
        }
        Cmd::Compare6(a) => {
            let md = v6::run(&v6::Compare6Config { rates: a.rates, secs: a.secs, clients: a.clients, out_dir: a.out })?;
            eprintln!("bench: report written to {}", md.display());
            print!("{}", std::fs::read_to_string(&md)?);
            Ok(())
        }
        Cmd::Compare(a) => {
            let cfg = compare::CompareConfig {
                scenario: a.scenario,
                duration: Duration::from_secs_f64(a.duration),
                clients: a.clients,
                window: a.window,
                fractions: a.fractions,
                durability: a.durability,
                workers: a.workers,
                servers: a.servers,
                perfdhcp_rate: a.perfdhcp_rate,
                leasequery_rate: a.leasequery_rate,
                avalanche: a.avalanche,
                avalanche_limit: Duration::from_secs_f64(a.avalanche_limit),
                search_trial: Duration::from_secs_f64(a.search_trial),
                ring_size: a.ring_size,
                avalanche_ring_size: a.avalanche_ring_size,
                out_dir: a.out,
            };
            let md = compare::run(&cfg)?;
            eprintln!("bench: report written to {}", md.display());
            print!("{}", std::fs::read_to_string(&md)?);
            Ok(())
        }
    }
}
