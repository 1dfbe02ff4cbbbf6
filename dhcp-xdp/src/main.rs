//! The `dhcp-xdp` daemon: command line, start-up report, signal handling and clean stop.
#![deny(unsafe_code)]

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use dhcp_xdp::{
    control::{Action, ActionRequest, Control},
    datapath::{BindModeArg, Datapath, DatapathConfig, WorkerStats},
    ebpf::{SteerSettings, Steering, XdpModeArg},
    handler::{FrameMeta, Handler, Reflect, Release, Verdict},
    iface::Interface,
    journal::{self, Journal, StateDir},
    serve::{self, EngineHandler, Runtime, Shared, load_config_file, unix_now},
};
use dhcp_xdp_core::{config::Config, engine::ServerIdentity, leases::LeaseDb, net::colon_hex, wire::Frame};
use sd_notify::NotifyState;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "dhcp-xdp", version, about = "DHCPv4 server answering from AF_XDP sockets")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    /// (`kea-leases4.csv`) or ISC dhcpd's `dhcpd.leases`; leases outside the configured pools
    /// are reported, not imported.
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
        /// `kea-csv` (a file kea-dhcp4 loads) or `json`.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// The configuration, for each subnet's lease time in Kea's `valid_lifetime` [default:
        /// 3600 s].
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Convert Kea's or ISC dhcpd's DHCPv4 configuration into this server's TOML (on stdout),
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
enum DbAction {
    Init,
    Upgrade,
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    KeaCsv,
    Json,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Interface to serve.
    #[arg(long)]
    iface: String,
    /// Configuration file (TOML). Without one, the interface's own subnet is served.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Lease journal directory (overrides the file's persistence.dir;
    /// default /var/lib/dhcp-xdp/<iface>).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Worker threads (AF_XDP sockets) per receive queue [default: usable cores].
    #[arg(long)]
    workers: Option<u32>,
    /// Receive queues to bind, comma separated [default: all].
    #[arg(long, value_delimiter = ',')]
    queues: Option<Vec<u32>>,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    xdp_mode: XdpModeArg,
    /// AF_XDP bind mode.
    #[arg(long, value_enum, default_value_t = BindModeArg::Auto)]
    bind_mode: BindModeArg,
    /// What answers frames: the DHCP `engine`, or `reflect` (turns each BOOTREQUEST back into a
    /// BOOTREPLY to its sender: a plumbing check).
    #[arg(long, value_enum, default_value_t = HandlerKind::Engine)]
    handler: HandlerKind,
    /// Most frames a worker takes per batch (one journal write per batch).
    #[arg(long, default_value_t = DatapathConfig::default().batch)]
    batch: u32,
    /// Microseconds a worker keeps polling after its last frame before it sleeps in poll(2)
    /// (waking a sleeping worker costs up to a millisecond on a VM: higher is lower latency at
    /// low rates, and more CPU).
    #[arg(long, default_value_t = DatapathConfig::default().spin.as_micros() as u64)]
    spin_us: u64,
    /// Seconds between statistics lines in the log (0: only at exit).
    #[arg(long, default_value_t = 60)]
    stats_interval: u64,
    /// Log level of the XDP program's aya-log output (0 off, 1 error … 5 trace).
    #[arg(long, default_value_t = 0)]
    ebpf_log_level: u8,
    /// The management channel (Kea's control channel shapes; mode 0600) [default:
    /// /run/dhcp-xdp/<iface>.sock].
    #[arg(long)]
    control_socket: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (overrides `[metrics] listen`).
    #[arg(long)]
    metrics: Option<std::net::SocketAddr>,
    /// Key of the XDP program's chaddr hash (overrides the file's `[limits] steering-key`;
    /// default: random at each start, so no client can choose its worker).
    #[arg(long)]
    steering_key: Option<u32>,
    /// Where the log goes: `auto` is the systemd journal when systemd connected stdout to it,
    /// else stdout (one line per event; `RUST_LOG` filters, default `info`).
    #[arg(long, value_enum, default_value_t = dhcp_xdp::logging::LogTarget::Auto)]
    log: dhcp_xdp::logging::LogTarget,
    /// Fault injection for tests: a worker panics on a frame with this BOOTP xid.
    #[arg(long, hide = true, value_parser = parse_hex_u32)]
    fault_panic_on_xid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum HandlerKind {
    Engine,
    Reflect,
}

fn parse_hex_u32(s: &str) -> Result<u32, String> {
    let t = s.trim_start_matches("0x");
    u32::from_str_radix(t, 16).map_err(|e| format!("{s}: {e}"))
}

/// Panics on one chosen xid, otherwise delegates: proves that a dying worker takes the XDP
/// program down with the daemon.
struct PanicOnXid<H> {
    xid: u32,
    inner: H,
}

impl<H: Handler + ?Sized> Handler for PanicOnXid<Box<H>> {
    fn begin_batch(&mut self) {
        self.inner.begin_batch();
    }
    fn end_batch(&mut self) -> Release {
        self.inner.end_batch()
    }
    fn settled(&mut self, ticket: u64) -> Option<bool> {
        self.inner.settled(ticket)
    }
    fn handle(&mut self, meta: &FrameMeta, buf: &mut [u8], len: usize) -> Verdict {
        if let Some(req) = buf.get(..len)
            && let Ok(f) = Frame::new_checked(req)
            && let Some(xid) = f.payload().get(4..8)
            && xid == self.xid.to_be_bytes()
        {
            panic!("fault injection: worker q{} w{} saw xid {:#x}", meta.queue, meta.worker, self.xid);
        }
        self.inner.handle(meta, buf, len)
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Run(args) => dhcp_xdp::logging::init(args.log),
        _ => dhcp_xdp::logging::init_stderr(),
    }
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::CheckConfig { file } => match load_config_file(&file) {
            Ok(c) => {
                print!("{}", c.describe());
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
        Command::Leases { state_dir } => dump_leases(&state_dir),
        Command::Ctl { socket, command, arguments } => ctl(socket, &command, arguments.as_deref()),
        Command::Import { state_dir, config, kea_csv, dhcpd_leases } => match (kea_csv, dhcpd_leases) {
            (Some(f), _) => import(&state_dir, &config, &LeaseFile::KeaCsv(f)),
            (None, Some(f)) => import(&state_dir, &config, &LeaseFile::DhcpdLeases(f)),
            (None, None) => Err(anyhow::anyhow!("--kea-csv or --dhcpd-leases is needed")),
        },
        Command::Export { state_dir, format, config } => export(&state_dir, format, config.as_deref()),
        Command::Man { dir } => man_pages(&dir),
        Command::Db { action, database } => db(action, &database),
        Command::Convert { kea_config, dhcpd_conf } => match (kea_config, dhcpd_conf) {
            (Some(f), _) => convert(&f, dhcp_xdp_core::migrate::convert_kea_config),
            (None, Some(f)) => convert(&f, dhcp_xdp_core::migrate::convert_dhcpd_conf),
            (None, None) => Err(anyhow::anyhow!("--kea-config or --dhcpd-conf is needed")),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dhcp-xdp: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let iface = Interface::lookup(&args.iface)?;
    let server = iface.primary_ipv4()?;
    let queues = match &args.queues {
        Some(q) => {
            if let Some(bad) = q.iter().find(|&&q| q >= iface.rx_queues) {
                bail!("{} has {} receive queues; queue {bad} does not exist", iface.name, iface.rx_queues);
            }
            q.clone()
        }
        None => (0..iface.rx_queues.min(dhcp_xdp_common::MAX_QUEUES)).collect(),
    };
    let workers = args
        .workers
        .unwrap_or_else(|| core_count().try_into().unwrap_or(1))
        .clamp(1, dhcp_xdp_common::MAX_SOCKETS_PER_QUEUE);

    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone()).context("installing signal handler")?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()).context("installing SIGHUP handler")?;

    // VLAN tags must reach the XDP program in the frame (see `iface::keep_vlan_tags`).
    let vlan_subnets = match (&args.handler, &args.config) {
        (HandlerKind::Engine, Some(p)) => {
            load_config_file(p).map(|c| c.subnets.iter().any(|s| !s.vlan.is_empty())).unwrap_or(false)
        }
        _ => false,
    };
    match dhcp_xdp::iface::keep_vlan_tags(&iface.name) {
        dhcp_xdp::iface::VlanTags::InFrame => {}
        dhcp_xdp::iface::VlanTags::TurnedOff(f) => {
            tracing::info!(
                "vlan: {} turned off on {} so that VLAN tags reach the XDP program",
                f.join(", "),
                iface.name
            );
        }
        dhcp_xdp::iface::VlanTags::Stripped(why) | dhcp_xdp::iface::VlanTags::Unknown(why) if vlan_subnets => {
            bail!(
                "{}: VLAN tags may not reach the XDP program ({why}); the configuration selects subnets by VLAN, \
                 which would then serve the wrong subnet",
                iface.name
            );
        }
        dhcp_xdp::iface::VlanTags::Stripped(why) | dhcp_xdp::iface::VlanTags::Unknown(why) => {
            tracing::warn!(
                "vlan: warning: VLAN tags may not reach the XDP program on {} ({why}); no VLAN subnet is configured",
                iface.name
            );
        }
    }
    let mut steering = Steering::attach(iface.index, args.xdp_mode, args.ebpf_log_level)
        .with_context(|| format!("attaching to {}", iface.name))?;
    let mut ebpf_logger = if args.ebpf_log_level > 0 {
        Some(aya_log::EbpfLogger::init(steering.ebpf_mut()).context("starting the eBPF logger")?)
    } else {
        None
    };

    let (mac, ip, fault) = (iface.mac, server.addr, args.fault_panic_on_xid);
    // The key of the worker hash: the command line's, else the file's, else random. Fixed for
    // the daemon's life (a reload keeps it).
    let fallback_key = args.steering_key.unwrap_or_else(random_key);
    let shared = match args.handler {
        HandlerKind::Engine => Some(start_engine(&args, &iface, &queues, workers, fallback_key)?),
        HandlerKind::Reflect => None,
    };
    let steering_key = shared.as_ref().and_then(|sh| sh.runtime().cfg.limits.steering_key).unwrap_or(fallback_key);
    // What the XDP program filters and limits by, before any socket is announced to it.
    // The reflector is a plumbing check (and the bench's echo ceiling): no per-chaddr rate.
    let limits = shared
        .as_ref()
        .map(|sh| sh.runtime().cfg.limits)
        .unwrap_or(dhcp_xdp_core::config::Limits { rate_per_mac: 0, ..Default::default() });
    let cluster = shared.as_ref().and_then(|sh| sh.cluster.clone());
    steering.configure(&steer_settings(&iface, &limits, steering_key, cluster.is_some()))?;
    // Cluster mode: the bucket map goes to the membership loop, which starts once the
    // capabilities are gone; until its first heartbeat the node serves no bucket.
    let buckets = match &cluster {
        Some(_) => Some(steering.take_buckets()?),
        None => None,
    };
    let engine_shared = shared.clone();
    let datapath = Datapath::start(
        &iface.name,
        &queues,
        workers,
        args.bind_mode,
        DatapathConfig {
            batch: args.batch.clamp(1, 1024),
            spin: Duration::from_micros(args.spin_us),
            ..DatapathConfig::default()
        },
        &mut steering,
        |meta| -> Box<dyn Handler> {
            let inner: Box<dyn Handler> = match &engine_shared {
                Some(sh) => Box::new(EngineHandler::new(sh.clone(), meta)),
                None => Box::new(Reflect::new(mac, ip)),
            };
            match fault {
                Some(xid) => Box::new(PanicOnXid { xid, inner }),
                None => inner,
            }
        },
    )?;

    // The management channel's socket is made now (its directory may need creating); its
    // thread starts after the capabilities are gone.
    let control_path = args
        .control_socket
        .clone()
        .or_else(|| shared.as_ref().and_then(|sh| sh.runtime().cfg.control_socket.clone()))
        .unwrap_or_else(|| PathBuf::from("/run/dhcp-xdp").join(format!("{}.sock", iface.name)));
    let control_listener = match &shared {
        Some(_) => {
            Some(Control::bind(&control_path).with_context(|| format!("control socket {}", control_path.display()))?)
        }
        None => None,
    };
    let metrics_addr = args.metrics.or_else(|| shared.as_ref().and_then(|sh| sh.runtime().cfg.metrics_listen));
    let metrics_listener = match metrics_addr {
        Some(a) => Some(dhcp_xdp::metrics::bind(a).with_context(|| format!("metrics listener {a}"))?),
        None => None,
    };
    let xdp_snapshot: dhcp_xdp::metrics::XdpSnapshot = Arc::default();
    // Sockets bound and announced, program configured: the main thread (control loop) drops
    // every capability too (see `privileges`).
    dhcp_xdp::privileges::drop_for_this_thread().context("dropping capabilities")?;
    if let (Some(cl), Some(sh), Some(b)) = (&cluster, &shared, buckets) {
        cl.run(sh.clone(), b).context("starting the cluster membership loop")?;
    }
    let (action_tx, actions) = std::sync::mpsc::channel::<ActionRequest>();
    if let (Some(sh), Some(listener)) = (&shared, control_listener) {
        let control = Arc::new(Control::new(sh.clone(), datapath.stats().to_vec(), action_tx));
        control.serve(listener, &control_path).context("starting the control channel")?;
        tracing::info!("control: Kea control channel on {}", control_path.display());
        if let (Some(l), Some(a)) = (metrics_listener, metrics_addr) {
            let registry = dhcp_xdp::metrics::registry(sh.clone(), datapath.stats().to_vec(), xdp_snapshot.clone());
            dhcp_xdp::metrics::serve(l, registry).context("starting the metrics listener")?;
            tracing::info!("metrics: http://{a}/metrics");
        }
    }
    let layout: Vec<String> = datapath.queues().map(|(q, n)| format!("q{q}×{n}")).collect();
    tracing::info!(
        "dhcp-xdp: {} (ifindex {}, {}, {}/{}) xdp={:?} af_xdp={} queues={} sockets={} [{}] handler={:?}",
        iface.name,
        iface.index,
        colon_hex(&iface.mac),
        server.addr,
        server.prefix,
        steering.mode(),
        datapath.mode,
        queues.len(),
        datapath.stats().len(),
        layout.join(" "),
        args.handler,
    );
    tracing::info!("ready: answering DHCP on {}", iface.name);
    // systemd (Type=notify): ready once the program is attached and the sockets answer; the
    // watchdog is fed by the control loop while every worker lives. Without NOTIFY_SOCKET
    // these do nothing.
    let _ = sd_notify::notify(
        false,
        &[NotifyState::Ready, NotifyState::Status(&format!("answering DHCP on {}", iface.name))],
    );
    // sd_watchdog_enabled(3): WATCHDOG_USEC, for this process when WATCHDOG_PID names it or is
    // absent; fed at half the interval.
    let watchdog = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|u| u.parse::<u64>().ok())
        .filter(|_| std::env::var("WATCHDOG_PID").map_or(true, |p| p == std::process::id().to_string()))
        .map(|u| Duration::from_micros(u / 2));
    let mut last_watchdog = Instant::now();

    let mut last_stats = Instant::now();
    let mut last_sweep = Instant::now();
    let mut failure = None;
    while !term.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(sh) = &shared {
            let mut reloads = vec![];
            if hup.swap(false, Ordering::Relaxed) {
                reloads.push(None);
            }
            while let Ok((action, reply)) = actions.try_recv() {
                match action {
                    Action::Reload => reloads.push(Some(reply)),
                    Action::Shutdown => {
                        let _ = reply.send(serde_json::json!({ "result": 0, "text": "Shutting down." }));
                        term.store(true, Ordering::Relaxed);
                    }
                }
            }
            for reply in reloads {
                let mut reloading = vec![NotifyState::Reloading];
                reloading.extend(NotifyState::monotonic_usec_now().ok());
                let _ = sd_notify::notify(false, &reloading);
                let outcome = reload(sh, &args, &iface, steering_key);
                let _ = sd_notify::notify(false, &[NotifyState::Ready]);
                let limits = sh.runtime().cfg.limits;
                if let Err(e) = steering.configure(&steer_settings(&iface, &limits, steering_key, cluster.is_some())) {
                    tracing::warn!("reload: the XDP program kept its old limits: {e}");
                }
                if let Some(r) = reply {
                    let _ = r.send(match outcome {
                        Ok(_) => serde_json::json!({ "result": 0, "text": "Configuration successful." }),
                        Err(e) => serde_json::json!({ "result": 1, "text": format!("Config reload failed: {e}") }),
                    });
                }
            }
            if last_sweep.elapsed() >= Duration::from_secs(1) {
                last_sweep = Instant::now();
                if let Ok(c) = steering.counters() {
                    *xdp_snapshot.lock().unwrap_or_else(|p| p.into_inner()) = c.0;
                }
                serve::sweep(sh, 4096);
                if let Some(j) = &sh.journal
                    && j.since_snapshot.load(Ordering::Relaxed) >= sh.runtime().cfg.snapshot_every
                    && !j.health.failing.load(Ordering::Relaxed)
                    && let Err(e) = j.snapshot(&sh.runtime().db)
                {
                    tracing::error!("snapshot failed (the journals since the last one stay): {e}");
                }
            }
        }
        if let Some(l) = ebpf_logger.as_mut() {
            l.flush();
        }
        if let Some(dead) = datapath.dead_worker() {
            failure = Some(format!("worker q{} w{} died", dead.queue, dead.worker));
            break;
        }
        if let Some(every) = watchdog
            && last_watchdog.elapsed() >= every
        {
            last_watchdog = Instant::now();
            let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
        }
        if args.stats_interval > 0 && last_stats.elapsed() >= Duration::from_secs(args.stats_interval) {
            last_stats = Instant::now();
            report_datapath("stats", &steering, datapath.stats(), &datapath.kernel_stats());
            if let Some(sh) = &shared {
                report_engine(sh, false);
            }
        }
    }
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
    if failure.is_none() {
        tracing::info!("stopping: signal received, draining workers");
    }
    let kernel_stats = datapath.kernel_stats();
    let (panicked, worker_stats) = datapath.stop(&mut steering);
    report_datapath("final stats", &steering, &worker_stats, &kernel_stats);
    if let Some(sh) = &shared {
        report_engine(sh, true);
        if let Some(cl) = &sh.cluster {
            match cl.store.flush(Duration::from_secs(5)) {
                Ok(()) => tracing::info!("cluster: every lease change committed"),
                Err(e) => tracing::warn!("cluster: {e}; ACKs it held were not sent"),
            }
        }
        if let Some(j) = &sh.journal {
            match j.flush(Duration::from_secs(5)).map(|()| j.snapshot(&sh.runtime().db)) {
                Ok(Ok(generation)) => tracing::info!("journal flushed, snapshot {generation} written"),
                Ok(Err(e)) => tracing::warn!("journal flushed; snapshot failed (the journals stay): {e}"),
                Err(e) => tracing::warn!("journal not flushed: {e}; ACKs it held were not sent"),
            }
        }
    }
    steering.detach()?;
    tracing::info!("stopped: XDP program detached from {}", iface.name);
    if let Some(f) = failure {
        bail!("{f}; {} worker(s) panicked", panicked.len());
    }
    if !panicked.is_empty() {
        bail!("{} worker(s) panicked while stopping", panicked.len());
    }
    Ok(())
}

/// XDP verdicts and per-worker counters (with the kernel's socket statistics).
fn report_datapath(
    what: &str,
    steering: &Steering,
    workers: &[(FrameMeta, Arc<WorkerStats>)],
    kernel: &[(u32, u32, String)],
) {
    match steering.counters() {
        Ok(c) => tracing::info!("{what}: {}", c.render()),
        Err(e) => tracing::info!("{what}: xdp counters unavailable: {e:#}"),
    }
    for (meta, s) in workers {
        let k = kernel.iter().find(|k| k.0 == meta.queue && k.1 == meta.worker).map(|k| k.2.as_str()).unwrap_or("");
        tracing::info!("{what}: q{} w{} {} {k}", meta.queue, meta.worker, s.render());
    }
}

fn report_engine(sh: &Shared, last: bool) {
    let what = if last { "final stats" } else { "stats" };
    for (i, s) in sh.stats.iter().enumerate() {
        tracing::info!("{what}: shard{i} {}", s.render());
    }
    let rt = sh.runtime();
    let now = unix_now();
    let c = rt.db.census(now);
    tracing::info!(
        "{what}: leases bound={} offered={} declined={} remembered={} journal_records={}",
        c.bound,
        c.offered,
        c.declined,
        c.remembered,
        sh.store.as_ref().map(|j| j.records()).unwrap_or(0)
    );
    if let Some(cl) = &sh.cluster {
        let s = &cl.status;
        tracing::info!(
            "{what}: cluster node={} database_up={} nodes={} buckets={} blocks={} takeovers={} absorbed={} \
             conflicts={} commit_failures={}",
            cl.cfg.node,
            s.database_up.load(Ordering::Relaxed),
            s.nodes.load(Ordering::Relaxed),
            s.buckets.load(Ordering::Relaxed),
            s.blocks.load(Ordering::Relaxed),
            s.takeovers.load(Ordering::Relaxed),
            s.absorbed.load(Ordering::Relaxed),
            cl.store.conflicts.load(Ordering::Relaxed),
            cl.store.health.failed_rounds.load(Ordering::Relaxed),
        );
    }
    for (subnet, start, len, used) in rt.db.pool_usage(now) {
        tracing::info!(
            "{what}: pool subnet={subnet} start={start} size={len} used={used} ({:.1}%)",
            used as f64 * 100.0 / f64::from(len.max(1))
        );
    }
}

/// `dhcp-xdp db`: the cluster database's schema.
fn db(action: DbAction, url: &str) -> anyhow::Result<()> {
    use dhcp_xdp::cluster::{redact, schema, store::connect};
    let mut c = connect(url).with_context(|| format!("connecting to {}", redact(url)))?;
    // A migration of a large lease table may take longer than a daemon's statements may.
    c.batch_execute("SET statement_timeout = 0")?;
    match action {
        DbAction::Init | DbAction::Upgrade => {
            let (from, to) = if action == DbAction::Init { schema::init(&mut c)? } else { schema::upgrade(&mut c)? };
            if from == to {
                println!("schema already at version {to}");
            } else {
                println!("schema upgraded from version {from} to {to}");
            }
        }
        DbAction::Status => {
            let Some(v) = schema::version(&mut c)? else { bail!(schema::SchemaError::Missing) };
            println!("schema version {v} (this daemon: {})", schema::SCHEMA_VERSION);
            for w in dhcp_xdp::cluster::durability_warnings(&mut c)? {
                println!("warning: {w}");
            }
            if v != schema::SCHEMA_VERSION {
                return Ok(());
            }
            for r in c.query(
                "SELECT n.name, extract(epoch FROM now() - n.heartbeat)::float8, n.addresses, n.host, n.pid,
                        (SELECT count(*) FROM dhcp_xdp_blocks b WHERE b.owner = n.name AND b.expires > now()),
                        (SELECT count(*) FROM dhcp_xdp_leases l WHERE l.node = n.name AND l.state = 1
                            AND l.expires > extract(epoch FROM now()))
                 FROM dhcp_xdp_nodes n ORDER BY n.name",
                &[],
            )? {
                println!(
                    "node {} heartbeat {:.1}s ago addresses [{}] host {} pid {} blocks {} bound {}",
                    r.get::<_, String>(0),
                    r.get::<_, f64>(1),
                    r.get::<_, String>(2),
                    r.get::<_, String>(3),
                    r.get::<_, i32>(4),
                    r.get::<_, i64>(5),
                    r.get::<_, i64>(6)
                );
            }
            let r = c.query_one(
                "SELECT (SELECT count(*) FROM dhcp_xdp_blocks), (SELECT count(*) FROM dhcp_xdp_blocks WHERE owner IS NULL),
                        (SELECT count(*) FROM dhcp_xdp_leases)",
                &[],
            )?;
            println!(
                "blocks {} (unowned {}) lease rows {}",
                r.get::<_, i64>(0),
                r.get::<_, i64>(1),
                r.get::<_, i64>(2)
            );
        }
    }
    Ok(())
}

/// `dhcp-xdp ctl`: one command to the control channel; exits non-zero when the daemon says it
/// failed (result 1) or does not know the command (2).
fn ctl(socket: Option<PathBuf>, command: &str, arguments: Option<&str>) -> anyhow::Result<()> {
    let socket = match socket {
        Some(s) => s,
        None => {
            let found: Vec<PathBuf> = std::fs::read_dir("/run/dhcp-xdp")
                .map(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
                        .collect()
                })
                .unwrap_or_default();
            match found.as_slice() {
                [one] => one.clone(),
                [] => bail!("no control socket in /run/dhcp-xdp: give --socket"),
                _ => bail!("several control sockets in /run/dhcp-xdp: give --socket"),
            }
        }
    };
    let kea_command = match command {
        "leases" => "lease4-get-all",
        "stats" => "statistic-get-all",
        c => c,
    };
    let args: serde_json::Value = match arguments {
        Some(a) => serde_json::from_str(a).with_context(|| format!("arguments are not a JSON object: {a}"))?,
        None => serde_json::json!({}),
    };
    let answer = dhcp_xdp::control::request(&socket, &serde_json::json!({ "command": kea_command, "arguments": args }))
        .with_context(|| format!("talking to {}", socket.display()))?;
    match command {
        "leases" => print!("{}", dhcp_xdp::control::lease_table(&answer)),
        "stats" => print!("{}", dhcp_xdp::control::stats_table(&answer)),
        _ => println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default()),
    }
    match answer["result"].as_u64() {
        Some(0 | 3) => Ok(()),
        _ => bail!("{}", answer["text"].as_str().unwrap_or("failed")),
    }
}

/// `dhcp-xdp convert`: another server's configuration as ours.
fn convert(
    file: &std::path::Path,
    with: fn(&str) -> Result<dhcp_xdp_core::migrate::convert::Converted, String>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let c =
        with(&text).map_err(|e| anyhow::anyhow!("{e}")).with_context(|| format!("converting {}", file.display()))?;
    println!("# Converted from {} by dhcp-xdp convert.", file.display());
    if !c.not_carried.is_empty() {
        println!("# Not carried over:");
    }
    for n in &c.not_carried {
        println!("#   {n}");
        eprintln!("not carried over: {n}");
    }
    print!("\n{}", c.toml);
    Ok(())
}

/// `dhcp-xdp man`: the manual pages, from the clap definition (section 8: a daemon).
fn man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let top = Cli::command();
    let mut pages = vec![("dhcp-xdp".to_string(), top.clone())];
    for sub in top.get_subcommands().filter(|s| s.get_name() != "help") {
        let bin = format!("dhcp-xdp {}", sub.get_name());
        pages.push((format!("dhcp-xdp-{}", sub.get_name()), sub.clone().bin_name(bin)));
    }
    for (name, cmd) in pages {
        let mut roff = vec![];
        clap_mangen::Man::new(cmd).title(&name).section("8").render(&mut roff)?;
        let path = dir.join(format!("{name}.8"));
        std::fs::write(&path, roff).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Another server's lease file, for `dhcp-xdp import`.
enum LeaseFile {
    KeaCsv(PathBuf),
    DhcpdLeases(PathBuf),
}

/// `dhcp-xdp import`: another server's leases into a state directory, next to what it holds
/// already (an address held there keeps its lease; the import's is reported).
fn import(dir: &std::path::Path, config: &std::path::Path, source: &LeaseFile) -> anyhow::Result<()> {
    use dhcp_xdp_core::migrate;
    let cfg = load_config_file(config)?;
    let (LeaseFile::KeaCsv(file) | LeaseFile::DhcpdLeases(file)) = source;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let now = unix_now();
    let imported = match source {
        LeaseFile::KeaCsv(_) => migrate::read_kea_csv(&text, &cfg, now).map_err(|e| anyhow::anyhow!("{e}")),
        LeaseFile::DhcpdLeases(_) => migrate::read_dhcpd_leases(&text, &cfg, now).map_err(|e| anyhow::anyhow!("{e}")),
    }
    .with_context(|| format!("parsing {}", file.display()))?;
    let state = StateDir::lock(dir)?;
    let rec = journal::recover(&state, now)?;
    let held: std::collections::HashSet<std::net::Ipv4Addr> =
        rec.leases.iter().filter(|l| l.holds(now)).map(|l| l.addr).collect();
    let mut leases = rec.leases.clone();
    let mut n = 0;
    for l in &imported.leases {
        if held.contains(&l.addr) {
            println!("skipped {}: already held in {}", l.addr, dir.display());
        } else {
            leases.push(*l);
            n += 1;
        }
    }
    for s in &imported.skipped {
        let addr = s.addr.map(|a| a.to_string()).unwrap_or_else(|| "?".into());
        println!("skipped {addr} (line {}): {}", s.line, s.why);
    }
    let db = LeaseDb::new(&cfg, 1, leases, now);
    db.continue_after(rec.max_seq);
    let journal = Journal::open(state, 1, cfg.durability)?;
    journal.snapshot(&db)?;
    journal.flush(Duration::from_secs(10))?;
    // What was really written: the imported leases the tables (and so the snapshot) hold.
    let written: std::collections::HashSet<(std::net::Ipv4Addr, dhcp_xdp_core::leases::ClientKey)> =
        db.all_leases().iter().map(|l| (l.addr, l.key)).collect();
    let offered = n;
    let n = imported.leases.iter().filter(|l| !held.contains(&l.addr) && written.contains(&(l.addr, l.key))).count();
    if n < offered {
        println!("{} imported leases were not kept (another record of the same client held them)", offered - n);
    }
    println!(
        "imported {n} leases from {} into {} ({} skipped, {} entries held nothing)",
        file.display(),
        dir.display(),
        imported.skipped.len() + imported.leases.len() - n,
        imported.unheld
    );
    Ok(())
}

/// `dhcp-xdp export`: a state directory's leases as Kea's CSV or as JSON, on stdout.
fn export(dir: &std::path::Path, format: ExportFormat, config: Option<&std::path::Path>) -> anyhow::Result<()> {
    let cfg = match config {
        Some(p) => load_config_file(p)?,
        None => Config::parse("defaults", "")?,
    };
    let now = unix_now();
    let rec = journal::inspect(dir, now).with_context(|| format!("reading {}", dir.display()))?;
    let held: Vec<_> = rec.leases.iter().filter(|l| l.holds(now)).copied().collect();
    match format {
        ExportFormat::KeaCsv => print!("{}", dhcp_xdp_core::migrate::write_kea_csv(&held, &cfg)),
        ExportFormat::Json => {
            // Kea's lease object, and `expire` (cltt + valid-lft) as the CSV has it.
            let leases: Vec<serde_json::Value> = held
                .iter()
                .map(|l| {
                    let mut v = dhcp_xdp_core::migrate::lease_json(l, &cfg);
                    v["expire"] = serde_json::json!(l.expires);
                    v
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "leases": leases })).unwrap_or_default());
        }
    }
    Ok(())
}

fn dump_leases(dir: &std::path::Path) -> anyhow::Result<()> {
    let rec = journal::inspect(dir, unix_now()).with_context(|| format!("reading {}", dir.display()))?;
    for w in &rec.warnings {
        println!("warning: {w}");
    }
    let mut leases = rec.leases;
    leases.sort_by_key(|l| u32::from(l.addr));
    for l in &leases {
        println!(
            "lease addr={} chaddr={} state={:?} expires={} subnet={} key={:?}",
            l.addr,
            colon_hex(&l.chaddr),
            l.state,
            l.expires,
            l.subnet,
            l.key
        );
    }
    println!("{} leases (snapshot {}, {} journal records replayed)", leases.len(), rec.snapshot_gen, rec.replayed);
    Ok(())
}

/// The configuration in force: the file (or zero-config), the command line's overrides, and
/// the steering key — `Some(k)`: the daemon's (a reload keeps it); `None` at start: the command
/// line's, else the file's, else `fallback`.
fn load_config(args: &RunArgs, iface: &Interface, key: Option<u32>, fallback: u32) -> anyhow::Result<Config> {
    let mut cfg = match &args.config {
        Some(p) => load_config_file(p)?,
        None => Config::zero_config(&iface.name, iface.primary_ipv4()?)?,
    };
    cfg.limits.steering_key = Some(key.or(args.steering_key).or(cfg.limits.steering_key).unwrap_or(fallback));
    if let Some(d) = &args.state_dir {
        cfg.persist_dir = Some(d.clone());
    }
    if cfg.persist_dir.is_none() {
        cfg.persist_dir = Some(PathBuf::from("/var/lib/dhcp-xdp").join(&iface.name));
    }
    Ok(cfg)
}

/// Locks the state directory, recovers its leases into tables of a lane per queue and a shard per
/// worker, and opens the journal (a file per worker). A disk that cannot take a snapshot now
/// (full) does not stop the start: the journals stay, and ACKs wait until records can be written.
fn start_engine(
    args: &RunArgs,
    iface: &Interface,
    queues: &[u32],
    workers: u32,
    fallback_key: u32,
) -> anyhow::Result<Arc<Shared>> {
    let cfg = load_config(args, iface, None, fallback_key)?;
    let server = ServerIdentity { mac: iface.mac, addrs: iface.ipv4.clone() };
    if let Some(cl) = cfg.cluster.clone() {
        // Cluster mode: the database is the store of record; no state directory.
        let t = Instant::now();
        let shards = queues.len() * workers as usize;
        let addrs: Vec<String> = iface.ipv4.iter().map(|n| n.addr.to_string()).collect();
        let (cluster, leases, max_seq) = dhcp_xdp::cluster::Cluster::start(&cfg, shards, &addrs.join(" "))?;
        let n = leases.len();
        let db = LeaseDb::with_lanes(&cfg, queues.len(), workers as usize, leases, unix_now());
        db.continue_after(max_seq);
        tracing::info!(
            "cluster: node {} on {}: {n} lease rows read in {:.0?}; blocks of {} addresses, heartbeat {}s, \
             takeover after {}s",
            cl.node,
            dhcp_xdp::cluster::redact(&cl.database),
            t.elapsed(),
            cl.block_size,
            cl.heartbeat,
            cl.takeover_after
        );
        print!("{}", cfg.describe());
        let rt = Runtime { cfg: Arc::new(cfg), db: Arc::new(db) };
        return Ok(Arc::new(Shared::new(rt, server, queues, None).with_cluster(cluster)));
    }
    let dir = cfg.persist_dir.clone().unwrap_or_default();
    let t = Instant::now();
    let state = StateDir::lock(&dir)?;
    let now = unix_now();
    let rec = journal::recover(&state, now).with_context(|| format!("recovering leases from {}", dir.display()))?;
    for w in &rec.warnings {
        tracing::warn!("journal warning: {w}");
    }
    let n = rec.leases.len();
    let db = LeaseDb::with_lanes(&cfg, queues.len(), workers as usize, rec.leases, now);
    db.continue_after(rec.max_seq);
    let db = Arc::new(db);
    let journal = Journal::open(state, db.shard_count(), cfg.durability)?;
    if let Err(e) = journal.snapshot(&db) {
        tracing::warn!("journal warning: no snapshot at start ({e}); the journals since the last one stay");
    }
    tracing::info!(
        "leases: {n} records recovered from {} (snapshot {}, {} journal records) in {:.0?}; durability {:?}",
        dir.display(),
        rec.snapshot_gen,
        rec.replayed,
        t.elapsed(),
        cfg.durability
    );
    print!("{}", cfg.describe());
    Ok(Arc::new(Shared::new(Runtime { cfg: Arc::new(cfg), db }, server, queues, Some(journal))))
}

/// Reloads the configuration (SIGHUP, `config-reload`); says what happened.
fn reload(sh: &Shared, args: &RunArgs, iface: &Interface, steering_key: u32) -> Result<String, String> {
    let outcome = reload_config(sh, args, iface, steering_key);
    sh.reloads.record(outcome.is_ok());
    outcome
}

fn reload_config(sh: &Shared, args: &RunArgs, iface: &Interface, steering_key: u32) -> Result<String, String> {
    match load_config(args, iface, Some(steering_key), steering_key) {
        Ok(cfg) if cfg.cluster != sh.runtime().cfg.cluster => {
            let msg = "the [cluster] section cannot change while the daemon runs (restart it); old configuration kept";
            tracing::warn!("reload: rejected: {msg}");
            Err(msg.to_owned())
        }
        Ok(cfg) => {
            let msg = serve::reload(sh, cfg);
            tracing::info!("reload: {msg}");
            Ok(msg)
        }
        Err(e) => {
            tracing::warn!("reload: rejected, old configuration kept: {e:#}");
            Err(format!("{e:#}"))
        }
    }
}

/// A steering key nobody outside can guess: from the standard library's per-process random
/// hash state.
fn random_key() -> u32 {
    use std::hash::BuildHasher as _;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id()) as u32
}

/// The XDP program's settings: our MAC and addresses for the destination filter, the hash key,
/// the per-chaddr rate.
fn steer_settings(iface: &Interface, limits: &dhcp_xdp_core::config::Limits, key: u32, cluster: bool) -> SteerSettings {
    SteerSettings {
        mac: iface.mac,
        addrs: iface.ipv4.iter().map(|n| n.addr).collect(),
        filter_destination: true,
        hash_key: key,
        rate_per_mac: limits.rate_per_mac,
        burst_per_mac: limits.burst_per_mac,
        cluster,
    }
}

fn core_count() -> usize {
    core_affinity::get_core_ids().map(|c| c.len()).unwrap_or(1).max(1)
}
