//! The `dhcp-xdp` daemon: command line, start-up report, signal handling and clean stop.
#![deny(unsafe_code)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use dhcp_xdp::{
    datapath::{BindModeArg, Datapath, DatapathConfig},
    ebpf::{Steering, XdpModeArg},
    handler::{DropReason, FrameMeta, Handler, Reflect, Verdict},
    iface::Interface,
    wire::Frame,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "dhcp-xdp",
    version,
    about = "DHCPv4 server answering from AF_XDP sockets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach to an interface and answer DHCP frames until SIGINT/SIGTERM.
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Interface to serve.
    #[arg(long)]
    iface: String,
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
    /// What answers frames. `reflect` turns each BOOTREQUEST back into a BOOTREPLY to its sender
    /// (a plumbing check until the DHCP engine lands).
    #[arg(long, value_enum, default_value_t = HandlerKind::Reflect)]
    handler: HandlerKind,
    /// Seconds between statistics lines in the log (0: only at exit).
    #[arg(long, default_value_t = 60)]
    stats_interval: u64,
    /// Log level of the XDP program's aya-log output (0 off, 1 error … 5 trace).
    #[arg(long, default_value_t = 0)]
    ebpf_log_level: u8,
    /// Fault injection for tests: a worker panics on a frame with this BOOTP xid.
    #[arg(long, hide = true, value_parser = parse_hex_u32)]
    fault_panic_on_xid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum HandlerKind {
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

impl<H: Handler> Handler for PanicOnXid<H> {
    fn handle(&mut self, meta: &FrameMeta, buf: &mut [u8], len: usize) -> Verdict {
        if let Some(req) = buf.get(..len)
            && let Ok(f) = Frame::new_checked(req)
            && let Some(xid) = f.payload().get(4..8)
            && xid == self.xid.to_be_bytes()
        {
            panic!(
                "fault injection: worker q{} w{} saw xid {:#x}",
                meta.queue, meta.worker, self.xid
            );
        }
        self.inner.handle(meta, buf, len)
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
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
                bail!(
                    "{} has {} receive queues; queue {bad} does not exist",
                    iface.name,
                    iface.rx_queues
                );
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

    let mut steering = Steering::attach(iface.index, args.xdp_mode, args.ebpf_log_level)
        .with_context(|| format!("attaching to {}", iface.name))?;
    let mut ebpf_logger = if args.ebpf_log_level > 0 {
        Some(aya_log::EbpfLogger::init(steering.ebpf_mut()).context("starting the eBPF logger")?)
    } else {
        None
    };

    let (mac, ip, fault) = (iface.mac, server.addr, args.fault_panic_on_xid);
    let HandlerKind::Reflect = args.handler;
    let datapath = Datapath::start(
        &iface.name,
        &queues,
        workers,
        args.bind_mode,
        DatapathConfig::default(),
        &mut steering,
        |_meta| -> Box<dyn Handler> {
            let reflect = Reflect::new(mac, ip);
            match fault {
                Some(xid) => Box::new(PanicOnXid {
                    xid,
                    inner: reflect,
                }),
                None => Box::new(reflect),
            }
        },
    )?;

    let layout: Vec<String> = datapath
        .queues()
        .map(|(q, n)| format!("q{q}×{n}"))
        .collect();
    println!(
        "dhcp-xdp: {} (ifindex {}, {}, {}/{}) xdp={:?} af_xdp={} queues={} sockets={} [{}] handler={:?}",
        iface.name,
        iface.index,
        mac_string(&iface.mac),
        server.addr,
        server.prefix,
        steering.mode(),
        datapath.mode,
        queues.len(),
        datapath.stats().len(),
        layout.join(" "),
        args.handler,
    );
    println!("ready: answering DHCP on {}", iface.name);

    let mut last_stats = Instant::now();
    let mut failure = None;
    while !term.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(l) = ebpf_logger.as_mut() {
            l.flush();
        }
        if let Some(dead) = datapath.dead_worker() {
            failure = Some(format!("worker q{} w{} died", dead.queue, dead.worker));
            break;
        }
        if args.stats_interval > 0
            && last_stats.elapsed() >= Duration::from_secs(args.stats_interval)
        {
            last_stats = Instant::now();
            report(&steering, &datapath, false);
        }
    }
    if failure.is_none() {
        println!("stopping: signal received, draining workers");
    }
    report(&steering, &datapath, true);
    let panicked = datapath.stop(&mut steering);
    steering.detach()?;
    println!("stopped: XDP program detached from {}", iface.name);
    if let Some(f) = failure {
        bail!("{f}; {} worker(s) panicked", panicked.len());
    }
    if !panicked.is_empty() {
        bail!("{} worker(s) panicked while stopping", panicked.len());
    }
    Ok(())
}

fn report(steering: &Steering, datapath: &Datapath, last: bool) {
    let xdp = match steering.counters() {
        Ok(c) => c.render(),
        Err(e) => format!("xdp counters unavailable: {e:#}"),
    };
    let what = if last { "final stats" } else { "stats" };
    println!("{what}: {xdp}");
    for (meta, s) in datapath.stats() {
        println!("{what}: q{} w{} {}", meta.queue, meta.worker, s.render());
    }
    let _ = DropReason::COUNT;
}

fn core_count() -> usize {
    core_affinity::get_core_ids()
        .map(|c| c.len())
        .unwrap_or(1)
        .max(1)
}

fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
