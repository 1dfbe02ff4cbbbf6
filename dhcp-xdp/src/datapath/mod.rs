//! The AF_XDP datapath: per receive queue one UMEM shared by N sockets, one pinned worker thread
//! per socket, batched RX → handler → TX from the same frame, completion recycling.
//!
//! This module is the one room for `unsafe` in the daemon (UMEM memory, raw ring kicks); every
//! block says why it is sound. It must never block a worker on anything but its own poll(2), and
//! never lose a frame: every UMEM chunk is at any time in exactly one of fill ring, RX ring, a
//! worker's hands, TX ring, completion ring or the queue's spare list.
//!
//! - [`umem`]: the UMEM area, the shared fill/completion rings, socket setup, ring kicks.
//! - [`worker`]: one worker's loop (RX batch → handler → held for durability → TX).
//! - [`port`]: a single socket with a UMEM of its own, for the load generator.

use std::{
    ffi::CString,
    num::NonZeroU32,
    ptr::NonNull,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig, User, xdp::XdpDesc};

use crate::{
    ebpf::{EbpfError, Steering},
    handler::{DropReason, FrameMeta, Handler, Job, Release, Verdict},
};

mod port;
mod umem;
mod worker;

pub use port::Port;
use umem::{Area, FillComp, QueueSetup, setup_queue};
use worker::{HELD_BATCHES, Worker};

/// Why the datapath (or a port) could not start.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// A size or count outside what the rings allow.
    #[error("{0}")]
    Config(&'static str),
    /// Socket, UMEM or ring setup failed.
    #[error("AF_XDP setup of {ifname} queue {queue} in {mode} mode: {source}")]
    Setup {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
        /// The mode tried.
        mode: BoundMode,
        /// The kernel's reason.
        source: std::io::Error,
    },
    /// A worker thread could not be started.
    #[error("spawning worker thread: {0}")]
    Spawn(std::io::Error),
    /// The steering program refused a socket.
    #[error(transparent)]
    Steering(#[from] EbpfError),
}

/// `--bind-mode`: how AF_XDP sockets bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BindModeArg {
    /// Zero-copy when the driver supports it, else copy mode.
    Auto,
    /// Copy mode (works on every driver, veth included).
    Copy,
    /// Zero-copy only; fail if the driver cannot.
    ZeroCopy,
}

/// The mode the sockets actually bound in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundMode {
    /// Frames are copied between driver buffers and the UMEM.
    Copy,
    /// The driver DMAs straight into the UMEM.
    ZeroCopy,
}

impl std::fmt::Display for BoundMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Copy => "copy",
            Self::ZeroCopy => "zero-copy",
        })
    }
}

/// Sizes of rings and UMEM.
#[derive(Debug, Clone, Copy)]
pub struct DatapathConfig {
    /// Bytes per UMEM chunk (power of two).
    pub frame_size: u32,
    /// Chunks per queue's UMEM.
    pub frames_per_queue: u32,
    /// Entries of the fill and completion rings (power of two).
    pub fill_size: u32,
    /// Entries of each socket's RX and TX ring (power of two).
    pub ring_size: u32,
    /// Most frames handled per loop iteration.
    pub batch: u32,
    /// How long a worker keeps polling its rings after the last frame before it sleeps in
    /// poll(2). Waking a sleeping thread costs up to a millisecond on a VM, so a latency-bound
    /// deployment with cores of its own keeps workers polling through load pauses (`--spin-us
    /// 1000`); the default (20 µs) gives the cores back to other processes quickly.
    pub spin: Duration,
}

impl Default for DatapathConfig {
    fn default() -> Self {
        Self {
            frame_size: 4096,
            frames_per_queue: 8192,
            fill_size: 4096,
            ring_size: 2048,
            batch: 64,
            spin: Duration::from_micros(20),
        }
    }
}

/// Why-no-work and traffic counters of one worker (xdp-tools style).
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Frames taken from the RX ring.
    pub rx_frames: AtomicU64,
    /// Replies put on the TX ring.
    pub tx_frames: AtomicU64,
    /// Frames dropped by the handler, per [`DropReason`].
    pub drops: [AtomicU64; DropReason::COUNT],
    /// Loop iterations that found the RX ring empty.
    pub rx_empty_polls: AtomicU64,
    /// Loop iterations (with or without frames).
    pub polls: AtomicU64,
    /// Recycling passes after which the fill ring held no chunk for the kernel (it drops
    /// frames while that lasts).
    pub fill_starved_polls: AtomicU64,
    /// Iterations that could not place every reply on a full TX ring.
    pub tx_ring_full: AtomicU64,
    /// sendto(2) kicks of the TX ring.
    pub tx_wakeup_sendtos: AtomicU64,
    /// Kicks that returned EAGAIN/EBUSY/ENOBUFS (retried on the next loop).
    pub tx_kick_retries: AtomicU64,
    /// Descriptors outside the UMEM (would be a kernel bug): dropped.
    pub bad_descriptors: AtomicU64,
    /// Frames that waited in the RX ring when the worker last looked (a gauge), and the ring's
    /// entries: a ring that stays full means more arrives than the worker can handle.
    pub rx_backlog: AtomicU64,
    pub rx_ring_entries: AtomicU64,
}

impl WorkerStats {
    /// How full the RX ring was when the worker last looked (0 to 1).
    pub fn rx_fill(&self) -> f64 {
        let entries = self.rx_ring_entries.load(Ordering::Relaxed);
        if entries == 0 { 0.0 } else { self.rx_backlog.load(Ordering::Relaxed) as f64 / entries as f64 }
    }
}

impl WorkerStats {
    /// Every counter by name (the drops as `drop_<reason>`).
    pub fn values(&self) -> Vec<(&'static str, u64)> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut v = vec![
            ("rx", g(&self.rx_frames)),
            ("tx", g(&self.tx_frames)),
            ("rx_empty_polls", g(&self.rx_empty_polls)),
            ("fill_starved_polls", g(&self.fill_starved_polls)),
            ("tx_ring_full", g(&self.tx_ring_full)),
            ("tx_wakeup_sendtos", g(&self.tx_wakeup_sendtos)),
            ("tx_kick_retries", g(&self.tx_kick_retries)),
            ("bad_descriptors", g(&self.bad_descriptors)),
        ];
        v.extend(DropReason::ALL.iter().map(|r| (r.name(), g(&self.drops[r.slot()]))));
        v
    }
}

/// Everything one queue owns. Field order is drop order: threads are joined before this is
/// dropped, then the UMEM socket closes, then the memory is unmapped.
struct QueueDatapath {
    queue: u32,
    workers: u32,
    users: Vec<User>,
    _umem: Umem,
    _area: Arc<Area>,
}

/// A running datapath.
pub struct Datapath {
    /// The mode the sockets bound in.
    pub mode: BoundMode,
    stop: Arc<AtomicBool>,
    threads: Vec<(FrameMeta, JoinHandle<()>)>,
    stats: Vec<(FrameMeta, Arc<WorkerStats>)>,
    queues: Vec<QueueDatapath>,
}

impl Datapath {
    /// Binds `workers_per_queue` sockets on each of `queues` of `ifname`, registers them with the
    /// steering program and starts one pinned worker per socket, each with its own handler from
    /// `make_handler`.
    pub fn start(
        ifname: &str,
        queues: &[u32],
        workers_per_queue: u32,
        bind: BindModeArg,
        cfg: DatapathConfig,
        steering: &mut Steering,
        mut make_handler: impl FnMut(FrameMeta) -> Box<dyn Handler>,
    ) -> Result<Self, DatapathError> {
        if workers_per_queue == 0 || workers_per_queue > dhcp_xdp_common::MAX_SOCKETS_PER_QUEUE {
            return Err(DatapathError::Config("workers per queue must be 1..=64"));
        }
        if !cfg.frame_size.is_power_of_two() || cfg.frame_size < 2048 {
            return Err(DatapathError::Config("frame size must be a power of two ≥ 2048"));
        }
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut dp = Datapath { mode: BoundMode::Copy, stop, threads: vec![], stats: vec![], queues: vec![] };
        let mut mode = match bind {
            BindModeArg::Copy => BoundMode::Copy,
            BindModeArg::Auto | BindModeArg::ZeroCopy => BoundMode::ZeroCopy,
        };
        for &queue in queues {
            let setup = match setup_queue(ifname, queue, workers_per_queue, &cfg, mode) {
                Ok(s) => s,
                Err(e) if bind == BindModeArg::Auto && mode == BoundMode::ZeroCopy => {
                    tracing::info!("zero-copy bind on {ifname} queue {queue} refused ({e}); using copy mode");
                    mode = BoundMode::Copy;
                    setup_queue(ifname, queue, workers_per_queue, &cfg, mode)
                        .map_err(|source| DatapathError::Setup { ifname: ifname.to_owned(), queue, mode, source })?
                }
                Err(source) => return Err(DatapathError::Setup { ifname: ifname.to_owned(), queue, mode, source }),
            };
            dp.mode = mode;
            let QueueSetup { umem, area, fc, spare, rings, users } = setup;
            let fc = Arc::new(Mutex::new(FillComp { fq: fc, spare, need_wakeup: true }));
            for (w, (rx, tx)) in rings.into_iter().enumerate() {
                let worker = w as u32;
                // Bound already: now the socket may go into the XSKMAP.
                steering.insert_socket(queue, worker, rx.as_raw_fd())?;
                let meta = FrameMeta { queue, worker };
                let stats = Arc::new(WorkerStats::default());
                stats.rx_ring_entries.store(u64::from(cfg.ring_size), Ordering::Relaxed);
                dp.stats.push((meta, stats.clone()));
                let mut handler = make_handler(meta);
                let core = cores.get(dp.threads.len() % cores.len().max(1)).copied();
                let worker = Worker {
                    meta,
                    rx,
                    tx,
                    fc: fc.clone(),
                    area: area.clone(),
                    frame_size: u64::from(cfg.frame_size),
                    batch: cfg.batch,
                    spin: cfg.spin,
                    always_kick: mode == BoundMode::Copy || w > 0,
                    stats,
                    pending_tx: Vec::with_capacity(cfg.batch as usize * 2),
                    staged: Vec::with_capacity(cfg.batch as usize),
                    held: std::collections::VecDeque::with_capacity(cfg.batch as usize * HELD_BATCHES),
                    held_bufs: Vec::new(),
                    recycle: Vec::with_capacity(cfg.batch as usize * 8),
                    batch_addrs: Vec::with_capacity(cfg.batch as usize),
                };
                let stop = dp.stop.clone();
                let handle = std::thread::Builder::new()
                    .name(format!("xdp-q{queue}-w{}", meta.worker))
                    .spawn(move || {
                        if let Some(core) = core {
                            core_affinity::set_for_current(core);
                        }
                        // The socket is bound and in the XSKMAP: nothing here needs a
                        // capability any more.
                        if let Err(e) = crate::privileges::drop_for_this_thread() {
                            tracing::warn!("worker q{queue} w{}: could not drop capabilities: {e}", meta.worker);
                        }
                        worker.run(&stop, handler.as_mut());
                    })
                    .map_err(DatapathError::Spawn)?;
                dp.threads.push((meta, handle));
            }
            steering.set_queue_sockets(queue, workers_per_queue)?;
            dp.queues.push(QueueDatapath { queue, workers: workers_per_queue, users, _umem: umem, _area: area });
        }
        Ok(dp)
    }

    /// The kernel's own counters of each socket (XDP_STATISTICS): frames it dropped because
    /// the RX ring was full or the fill ring empty, invalid descriptors.
    pub fn kernel_stats(&self) -> Vec<(u32, u32, String)> {
        let mut out = vec![];
        for q in &self.queues {
            for (w, u) in q.users.iter().enumerate() {
                let text = render_xsk_stats(u);
                out.push((q.queue, w as u32, text));
            }
        }
        out
    }

    /// Queues and their worker counts.
    pub fn queues(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.queues.iter().map(|q| (q.queue, q.workers))
    }

    /// The first worker that ended on its own (a panic), if any.
    pub fn dead_worker(&self) -> Option<FrameMeta> {
        self.threads.iter().find(|(_, h)| h.is_finished()).map(|(m, _)| *m)
    }

    /// Per-worker statistics.
    pub fn stats(&self) -> &[(FrameMeta, Arc<WorkerStats>)] {
        &self.stats
    }

    /// Stops taking frames (steering off), lets workers drain and joins them. Returns the
    /// workers that panicked and every worker's final statistics.
    pub fn stop(mut self, steering: &mut Steering) -> (Vec<FrameMeta>, Vec<(FrameMeta, Arc<WorkerStats>)>) {
        for q in &self.queues {
            if let Err(e) = steering.set_queue_sockets(q.queue, 0) {
                tracing::error!("switching queue {} back to the kernel: {e:#}", q.queue);
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        let mut panicked = vec![];
        for (meta, h) in self.threads.drain(..) {
            if h.join().is_err() {
                panicked.push(meta);
            }
        }
        (panicked, std::mem::take(&mut self.stats))
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for (_, h) in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

fn render_xsk_stats(u: &User) -> String {
    match u.statistics_v2() {
        Ok(s) => format!(
            "xsk_rx_dropped={} xsk_rx_ring_full={} xsk_fill_ring_empty={} xsk_rx_invalid={} xsk_tx_invalid={} xsk_tx_ring_empty={}",
            s.rx_dropped,
            s.rx_ring_full,
            s.rx_fill_ring_empty_descs,
            s.rx_invalid_descs,
            s.tx_invalid_descs,
            s.tx_ring_empty_descs
        ),
        Err(e) => format!("xsk statistics unavailable: {e}"),
    }
}
