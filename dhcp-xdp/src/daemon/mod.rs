//! The running daemon as a type: [`Daemon::start`] attaches the XDP program, recovers the
//! lease store, starts the workers and the management ports and drops every capability;
//! [`Daemon::tick`] runs the control loop's jobs that are due ([`jobs`]); [`Daemon::stop`]
//! drains the workers, flushes the store and detaches the program. `dhcp-xdp run` is
//! `Daemon::start(options)?.run()`.

pub mod jobs;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use dhcp_xdp_core::{config::Config, engine4::ServerIdentity, net::colon_hex, wire::Frame};
use sd_notify::NotifyState;

use crate::{
    control::{ActionRequest, Control},
    datapath::{BindModeArg, Datapath, DatapathConfig},
    ebpf::{SteerSettings, Steering, XdpModeArg},
    handler::{FrameMeta, Handler, Reflect, Release, Verdict},
    iface::Interface,
    serve::{Facts, Runtime, Shared, load_config_file},
    serve4::EngineHandler,
    statistics::Report,
};

/// What answers frames: the DHCP engine, or the reflector (turns each BOOTREQUEST back into
/// a BOOTREPLY to its sender: a plumbing check). The command line's help says so; the variants
/// carry no doc comments of their own, which clap would add to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[expect(missing_docs, reason = "described on the type, for the command line's help")]
pub enum HandlerKind {
    Engine,
    Reflect,
}

/// How to run: the command line of `dhcp-xdp run`, parsed.
#[derive(Debug, Clone)]
pub struct Options {
    /// Interface to serve.
    pub iface: String,
    /// Configuration file (None: the interface's own subnet).
    pub config: Option<PathBuf>,
    /// Lease journal directory (overrides the file's).
    pub state_dir: Option<PathBuf>,
    /// Worker threads per receive queue (None: usable cores).
    pub workers: Option<u32>,
    /// Receive queues to bind (None: all).
    pub queues: Option<Vec<u32>>,
    /// XDP attach mode.
    pub xdp_mode: XdpModeArg,
    /// AF_XDP bind mode.
    pub bind_mode: BindModeArg,
    /// What answers frames.
    pub handler: HandlerKind,
    /// Most frames a worker takes per batch.
    pub batch: u32,
    /// Entries of each socket's RX and TX ring (fill ring ×2, UMEM chunks ×4).
    pub ring_size: u32,
    /// How long a worker polls after its last frame before it sleeps.
    pub spin: Duration,
    /// Time between statistics lines in the log (zero: only at exit).
    pub stats_interval: Duration,
    /// Log level of the XDP program's aya-log output (0 off).
    pub ebpf_log_level: u8,
    /// The control socket (None: the file's, else /run/dhcp-xdp/<iface>.sock).
    pub control_socket: Option<PathBuf>,
    /// Prometheus listener (overrides the file's).
    pub metrics: Option<std::net::SocketAddr>,
    /// Key of the XDP program's worker hash (overrides the file's; None: random).
    pub steering_key: Option<u32>,
    /// Fault injection for tests: a worker panics on a frame with this BOOTP xid.
    pub fault_panic_on_xid: Option<u32>,
}

/// What a [`tick`](Daemon::tick) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// Keep going.
    Running,
    /// A clean stop was asked for (signal, `shutdown`).
    Stop,
    /// Something the daemon cannot serve without failed (a worker died).
    Failed(String),
}

/// The running daemon.
pub struct Daemon {
    opts: Options,
    iface: Interface,
    steering: Steering,
    datapath: Datapath,
    /// Configuration, tables, store and counters (the reflector's: an empty table, kept in
    /// memory).
    shared: Arc<Shared>,
    steering_key: u32,
    ebpf_logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    actions: mpsc::Receiver<ActionRequest>,
    xdp_snapshot: crate::metrics::XdpSnapshot,
    term: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    jobs: jobs::Jobs,
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

impl Daemon {
    /// Attaches, recovers and starts everything; returns once the daemon answers DHCP (and
    /// systemd has been told so).
    pub fn start(opts: Options) -> anyhow::Result<Self> {
        let iface = Interface::lookup(&opts.iface)?;
        let server = iface.primary_ipv4()?;
        let (queues, workers) = sockets(&opts, &iface)?;
        let (term, hup) = signals()?;

        let vlan = check_vlan_tags(&opts, &iface)?;
        let mut steering = Steering::attach(iface.index, opts.xdp_mode, opts.ebpf_log_level)
            .with_context(|| format!("attaching to {}", iface.name))?;
        let ebpf_logger = if opts.ebpf_log_level > 0 {
            Some(aya_log::EbpfLogger::init(steering.ebpf_mut()).context("starting the eBPF logger")?)
        } else {
            None
        };

        let (mac, ip, fault) = (iface.mac, server.addr, opts.fault_panic_on_xid);
        // The key of the worker hash: the command line's, else the file's, else random. Fixed
        // for the daemon's life (a reload keeps it).
        let fallback_key = opts.steering_key.unwrap_or_else(random_key);
        let (shared, recovered) = match opts.handler {
            HandlerKind::Engine => start_engine(&opts, &iface, &queues, workers, fallback_key)?,
            HandlerKind::Reflect => start_reflector(&iface, &queues, workers, fallback_key)?,
        };
        let steering_key = shared.runtime().cfg.limits.steering_key.unwrap_or(fallback_key);
        // What the XDP program filters and limits by, before any socket is announced to it.
        let limits = shared.runtime().cfg.limits;
        let shares_pools = shared.store.shares_pools();
        let serves_v6 = !shared.runtime().cfg.subnets6.is_empty();
        steering.configure(&steer_settings(&iface, &limits, steering_key, shares_pools, serves_v6))?;
        // Pools shared by several daemons: the bucket map goes to the store's membership loop,
        // which starts once the capabilities are gone; until its first heartbeat the node
        // serves no bucket.
        let buckets = if shares_pools { Some(steering.take_buckets()?) } else { None };
        let engine_shared = shared.clone();
        let handler = opts.handler;
        let datapath = Datapath::start(
            &iface.name,
            &queues,
            workers,
            opts.bind_mode,
            DatapathConfig {
                batch: opts.batch.clamp(1, 1024),
                spin: opts.spin,
                ring_size: opts.ring_size,
                fill_size: 2 * opts.ring_size,
                frames_per_queue: 4 * opts.ring_size,
                ..DatapathConfig::default()
            },
            &mut steering,
            |meta| -> Box<dyn Handler> {
                let inner: Box<dyn Handler> = match handler {
                    HandlerKind::Engine => Box::new(EngineHandler::new(engine_shared.clone(), meta)),
                    HandlerKind::Reflect => Box::new(Reflect::new(mac, ip)),
                };
                match fault {
                    Some(xid) => Box::new(PanicOnXid { xid, inner }),
                    None => inner,
                }
            },
        )?;

        // The management channel's socket is made now (its directory may need creating); its
        // thread starts after the capabilities are gone.
        let control_path = opts
            .control_socket
            .clone()
            .or_else(|| shared.runtime().cfg.control_socket.clone())
            .unwrap_or_else(|| PathBuf::from("/run/dhcp-xdp").join(format!("{}.sock", iface.name)));
        let control_listener =
            Control::bind(&control_path).with_context(|| format!("control socket {}", control_path.display()))?;
        // Kea 3's HTTP control socket: bound now (a low port needs the capability), its users'
        // passwords read now (their files may be readable by root only).
        let control_http = match shared.runtime().cfg.control_http.clone() {
            Some(h) => {
                let listener = crate::metrics::bind(h.listen).with_context(|| format!("control http {}", h.listen))?;
                let users = crate::control::http::users(&h.users)?;
                let tls =
                    h.tls.as_ref().map(crate::control::http::tls_config).transpose().context("control http tls")?;
                Some((listener, users, h.listen, tls))
            }
            None => None,
        };
        // The forensic lease log: its file opened now (its directory may be root's).
        if let Some(f) = shared.runtime().cfg.forensic_log.clone() {
            let node = match &shared.runtime().cfg.cluster {
                Some(c) => c.node.clone(),
                None => std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned(),
            };
            let to = match &f.sink {
                dhcp_xdp_core::config::ForensicSink::File(p) => p.display().to_string(),
                dhcp_xdp_core::config::ForensicSink::Database => "the cluster database".to_owned(),
            };
            let database = shared.runtime().cfg.cluster.as_ref().map(|c| c.database.clone());
            let log = crate::forensic::ForensicLog::start(&f, node, database.as_deref())
                .with_context(|| format!("forensic log in {to}"))?;
            let _ = shared.forensic.set(log);
            tracing::info!("forensic log: lease events to {to}");
        }
        // Bulk leasequery (TCP 67, and 547 for DHCPv6: privileged ports, bound now) when someone
        // may ask, on every address of the host: a relay may reach the server by any of them.
        let listen = |wanted: bool, addr: std::net::SocketAddr| -> anyhow::Result<Option<std::net::TcpListener>> {
            if !wanted {
                return Ok(None);
            }
            Ok(Some(std::net::TcpListener::bind(addr).with_context(|| format!("bulk leasequery on {addr}"))?))
        };
        let asked = shared.runtime().cfg.clone();
        let bulk_lq = listen(
            !asked.leasequery_from.is_empty(),
            (std::net::Ipv4Addr::UNSPECIFIED, dhcp_xdp_common::DHCP_SERVER_PORT).into(),
        )?;
        let bulk_lq6 = listen(
            !asked.leasequery6_from.is_empty(),
            (std::net::Ipv6Addr::UNSPECIFIED, dhcp_xdp_common::DHCP6_SERVER_PORT).into(),
        )?;
        let metrics_addr = opts.metrics.or_else(|| shared.runtime().cfg.metrics_listen);
        let metrics_listener = match metrics_addr {
            Some(a) => Some(crate::metrics::bind(a).with_context(|| format!("metrics listener {a}"))?),
            None => None,
        };
        let xdp_snapshot: crate::metrics::XdpSnapshot = Arc::default();
        // Sockets bound and announced, program configured: the main thread (control loop) drops
        // every capability too (see `privileges`).
        crate::privileges::drop_for_this_thread().context("dropping capabilities")?;
        shared.store.clone().run(shared.clone(), buckets).context("starting the lease store's own work")?;
        let _ = shared.facts.set(Facts {
            xdp_mode: format!("{:?}", steering.mode()),
            af_xdp: datapath.mode.to_string(),
            handler: format!("{:?}", opts.handler).to_lowercase(),
            vlan: vlan.clone(),
            recovered_leases: recovered.0,
            recovered: recovered.1,
        });
        let (action_tx, actions) = mpsc::channel::<ActionRequest>();
        let control = Arc::new(Control::new(shared.clone(), datapath.stats().to_vec(), action_tx));
        control.clone().serve(control_listener, &control_path).context("starting the control channel")?;
        tracing::info!("control: Kea control channel on {}", control_path.display());
        if let Some((listener, users, addr, tls)) = control_http {
            let n = users.len();
            let scheme = if tls.is_some() { "https" } else { "http" };
            crate::control::http::serve(listener, control.clone(), users, tls)
                .context("starting the HTTP control socket")?;
            tracing::info!(
                "control: Kea HTTP control socket on {scheme}://{addr}/ ({})",
                if n == 0 { "no authentication".to_owned() } else { format!("basic authentication, {n} user(s)") }
            );
        }
        if let Some(listener) = bulk_lq6 {
            crate::bulklq::serve6(listener, shared.clone()).context("starting DHCPv6 bulk leasequery")?;
            tracing::info!("leasequery: DHCPv6 bulk leasequery (RFC 5460) on TCP port 547");
        }
        if let Some(listener) = bulk_lq {
            crate::bulklq::serve(listener, shared.clone()).context("starting bulk leasequery")?;
            tracing::info!("leasequery: bulk leasequery (RFC 6926) on TCP port 67");
        }
        if let (Some(l), Some(a)) = (metrics_listener, metrics_addr) {
            let registry = crate::metrics::registry(shared.clone(), datapath.stats().to_vec(), xdp_snapshot.clone());
            crate::metrics::serve(l, registry).context("starting the metrics listener")?;
            tracing::info!("metrics: http://{a}/metrics");
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
            opts.handler,
        );
        tracing::info!("ready: answering DHCP on {}", iface.name);
        // systemd (Type=notify): ready once the program is attached and the sockets answer; the
        // watchdog is fed by the control loop while every worker lives. Without NOTIFY_SOCKET
        // these do nothing.
        let _ = sd_notify::notify(
            false,
            &[NotifyState::Ready, NotifyState::Status(&format!("answering DHCP on {}", iface.name))],
        );
        let jobs = jobs::Jobs::new(opts.stats_interval);
        Ok(Self {
            opts,
            iface,
            steering,
            datapath,
            shared,
            steering_key,
            ebpf_logger,
            actions,
            xdp_snapshot,
            term,
            hup,
            jobs,
        })
    }

    /// Runs the control loop until a stop is asked for or something fails, then stops.
    pub fn run(mut self) -> anyhow::Result<()> {
        let failure = loop {
            // Every 10 ms: overload must be noticed before the replies workers hold run out.
            std::thread::sleep(Duration::from_millis(10));
            match self.tick() {
                Tick::Running => {}
                Tick::Stop => break None,
                Tick::Failed(why) => break Some(why),
            }
        };
        self.stop(failure)
    }

    /// One pass of the control loop: the jobs that are due.
    pub fn tick(&mut self) -> Tick {
        if self.term.load(Ordering::Relaxed) {
            return Tick::Stop;
        }
        jobs::Requests::run(self);
        jobs::Sweep::run(self);
        jobs::StoreTick::run(self);
        jobs::Shed::run(self);
        if let Some(l) = self.ebpf_logger.as_mut() {
            l.flush();
        }
        if let Some(dead) = self.datapath.dead_worker() {
            return Tick::Failed(format!("worker q{} w{} died", dead.queue, dead.worker));
        }
        jobs::Watchdog::run(self);
        jobs::StatsLine::run(self);
        if self.term.load(Ordering::Relaxed) { Tick::Stop } else { Tick::Running }
    }

    /// Clean stop (after `failure`, if any): drains the workers, flushes the lease store,
    /// detaches the XDP program.
    pub fn stop(self, failure: Option<String>) -> anyhow::Result<()> {
        let Self { iface, mut steering, datapath, shared, .. } = self;
        let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
        if failure.is_none() {
            tracing::info!("stopping: signal received, draining workers");
        }
        let kernel_stats = datapath.kernel_stats();
        let (panicked, worker_stats) = datapath.stop(&mut steering);
        for line in Report::take(&shared, &steering, &worker_stats, &kernel_stats).lines("final stats") {
            tracing::info!("{line}");
        }
        match shared.store.stop(&shared.runtime().db, Duration::from_secs(5)) {
            Ok(done) => tracing::info!("{done}"),
            Err(e) => tracing::warn!("{e}"),
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

    /// Everything the daemon counts, now.
    pub fn report(&self) -> Report {
        Report::take(&self.shared, &self.steering, self.datapath.stats(), &self.datapath.kernel_stats())
    }
}

/// The receive queues to bind (the command line's, checked, else all) and the workers per
/// queue (the command line's, else one per usable core).
fn sockets(opts: &Options, iface: &Interface) -> anyhow::Result<(Vec<u32>, u32)> {
    let queues = match &opts.queues {
        Some(q) => {
            if let Some(bad) = q.iter().find(|&&q| q >= iface.rx_queues) {
                bail!("{} has {} receive queues; queue {bad} does not exist", iface.name, iface.rx_queues);
            }
            q.clone()
        }
        None => (0..iface.rx_queues.min(dhcp_xdp_common::MAX_QUEUES)).collect(),
    };
    let workers = opts
        .workers
        .unwrap_or_else(|| core_count().try_into().unwrap_or(1))
        .clamp(1, dhcp_xdp_common::MAX_SOCKETS_PER_QUEUE);
    Ok((queues, workers))
}

/// The stop (SIGINT, SIGTERM) and reload (SIGHUP) flags the control loop polls.
fn signals() -> anyhow::Result<(Arc<AtomicBool>, Arc<AtomicBool>)> {
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone()).context("installing signal handler")?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()).context("installing SIGHUP handler")?;
    Ok((term, hup))
}

/// VLAN tags must reach the XDP program in the frame (see `iface::keep_vlan_tags`): refused
/// when they may not and the configuration selects subnets by VLAN.
/// Returns what was found, for `status-get`.
fn check_vlan_tags(opts: &Options, iface: &Interface) -> anyhow::Result<String> {
    use crate::iface::VlanTags;
    let vlan_subnets = match (&opts.handler, &opts.config) {
        (HandlerKind::Engine, Some(p)) => {
            load_config_file(p).map(|c| c.subnets.iter().any(|s| !s.vlan.is_empty())).unwrap_or(false)
        }
        _ => false,
    };
    Ok(match crate::iface::keep_vlan_tags(&iface.name) {
        VlanTags::InFrame => "tags in frame".into(),
        VlanTags::TurnedOff(f) => {
            tracing::info!(
                "vlan: {} turned off on {} so that VLAN tags reach the XDP program",
                f.join(", "),
                iface.name
            );
            format!("turned off: {}", f.join(", "))
        }
        VlanTags::Stripped(why) | VlanTags::Unknown(why) if vlan_subnets => {
            bail!(
                "{}: VLAN tags may not reach the XDP program ({why}); the configuration selects subnets by VLAN, \
                 which would then serve the wrong subnet",
                iface.name
            );
        }
        VlanTags::Stripped(why) | VlanTags::Unknown(why) => {
            tracing::warn!(
                "vlan: warning: VLAN tags may not reach the XDP program on {} ({why}); no VLAN subnet is configured",
                iface.name
            );
            format!("may not reach the program: {why}")
        }
    })
}

/// The configuration in force: the file (or zero-config), the command line's overrides, and
/// the steering key — `Some(k)`: the daemon's (a reload keeps it); `None` at start: the command
/// line's, else the file's, else `fallback`.
fn load_config(opts: &Options, iface: &Interface, key: Option<u32>, fallback: u32) -> anyhow::Result<Config> {
    let mut cfg = match &opts.config {
        Some(p) => load_config_file(p)?,
        None => Config::zero_config(&iface.name, iface.primary_ipv4()?)?.with_zero_config6(&iface.ipv6),
    };
    cfg.limits.steering_key = Some(key.or(opts.steering_key).or(cfg.limits.steering_key).unwrap_or(fallback));
    if let Some(d) = &opts.state_dir {
        cfg.persist_dir = Some(d.clone());
    }
    if cfg.persist_dir.is_none() {
        cfg.persist_dir = Some(PathBuf::from("/var/lib/dhcp-xdp").join(&iface.name));
    }
    Ok(cfg)
}

/// The shared state, and how many leases were recovered with what the store said of it.
type Started = (Arc<Shared>, (usize, String));

/// Opens the lease store the configuration asks for, recovers its leases into tables of a lane
/// per queue and a shard per worker, and shares them with the workers.
fn start_engine(
    opts: &Options,
    iface: &Interface,
    queues: &[u32],
    workers: u32,
    fallback_key: u32,
) -> anyhow::Result<Started> {
    let cfg = load_config(opts, iface, None, fallback_key)?;
    let server = ServerIdentity { mac: iface.mac, addrs: iface.ipv4.clone() };
    let shards = queues.len() * workers as usize;
    let addrs: Vec<String> = iface.ipv4.iter().map(|n| n.addr.to_string()).collect();
    let store = crate::store::open(&cfg, shards, &addrs.join(" "))?;
    // Reservations added through the API are the store's: part of the configuration from here.
    let hosts = store.load_hosts().map_err(|e| anyhow::anyhow!("reservations added through the API: {e}"))?;
    let cfg = cfg.with_hosts(&hosts).map_err(|e| anyhow::anyhow!("reservations added through the API: {e}"))?;
    let recovered = store.recover(&cfg, queues.len(), workers as usize)?;
    tracing::info!("{}", recovered.report);
    print!("{}", cfg.describe());
    // The DHCPv6 DUID: kept by the cluster database or in the state directory (made there the
    // first time).
    let now = u64::from(crate::clock::unix_now());
    let kept = match cfg.subnets6.is_empty() {
        true => None,
        false => store
            .kept_duid(&crate::store::duid::link_layer_time(iface.mac, now))
            .map_err(|e| anyhow::anyhow!("keeping the DHCPv6 DUID: {e}"))?,
    };
    let duid = match (kept, &cfg.persist_dir, cfg.subnets6.is_empty()) {
        (Some(d), ..) => d,
        (None, _, true) | (None, None, _) => crate::store::duid::link_layer(iface.mac),
        (None, Some(dir), false) => crate::store::duid::load_or_create(dir, iface.mac, now)?,
    };
    let server6 = dhcp_xdp_core::engine6::Server6 { duid, addrs: iface.global6() };
    let rt = Runtime::new(Arc::new(cfg), Arc::new(recovered.db));
    let shared = Shared::new(rt, server, queues, store).with_v6(server6, iface.link_local6());
    Ok((Arc::new(shared), (recovered.leases, recovered.report)))
}

/// The reflector's shared state: the interface's own subnet as configuration (for the control
/// channel's answers), an empty table kept in memory, no per-chaddr rate (it is a plumbing
/// check and the bench's echo ceiling).
fn start_reflector(iface: &Interface, queues: &[u32], workers: u32, key: u32) -> anyhow::Result<Started> {
    let mut cfg = Config::zero_config(&iface.name, iface.primary_ipv4()?)?;
    cfg.limits = dhcp_xdp_core::config::Limits { rate_per_mac: 0, steering_key: Some(key), ..Default::default() };
    let server = ServerIdentity { mac: iface.mac, addrs: iface.ipv4.clone() };
    let store: Arc<dyn crate::store::LeaseStore> = Arc::new(crate::store::Memory::default());
    let r = store.recover(&cfg, queues.len(), workers as usize)?;
    let rt = Runtime::new(Arc::new(cfg), Arc::new(r.db));
    Ok((Arc::new(Shared::new(rt, server, queues, store)), (r.leases, r.report)))
}

/// A steering key nobody outside can guess: from the standard library's per-process random
/// hash state.
fn random_key() -> u32 {
    use std::hash::BuildHasher as _;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id()) as u32
}

/// The XDP program's settings: our MAC and addresses for the destination filter, the hash key,
/// the per-chaddr rate, and whether buckets divide the clients among nodes.
pub(super) fn steer_settings(
    iface: &Interface,
    limits: &dhcp_xdp_core::config::Limits,
    key: u32,
    shares_pools: bool,
    serves_v6: bool,
) -> SteerSettings {
    SteerSettings {
        mac: iface.mac,
        addrs: iface.ipv4.iter().map(|n| n.addr).collect(),
        filter_destination: true,
        hash_key: key,
        rate_per_mac: limits.rate_per_mac,
        burst_per_mac: limits.burst_per_mac,
        cluster: shares_pools,
        dhcp6: serves_v6,
        addrs6: iface.global6(),
    }
}

fn core_count() -> usize {
    core_affinity::get_core_ids().map(|c| c.len()).unwrap_or(1).max(1)
}
