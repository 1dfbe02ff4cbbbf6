//! The AF_XDP datapath: per receive queue one UMEM shared by N sockets, one pinned worker thread
//! per socket, batched RX → handler → TX from the same frame, completion recycling.
//!
//! This module is the one room for `unsafe` in the daemon (UMEM memory, raw ring kicks); every
//! block says why it is sound. It must never block a worker on anything but its own poll(2), and
//! never lose a frame: every UMEM chunk is at any time in exactly one of fill ring, RX ring, a
//! worker's hands, TX ring, completion ring or the queue's spare list.

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

use anyhow::{Context as _, anyhow, bail};
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig, User, xdp::XdpDesc};

use crate::{
    ebpf::Steering,
    handler::{DropReason, FrameMeta, Handler, Job, Release, Verdict},
};

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
}

impl WorkerStats {
    /// `name=value` pairs, space separated.
    pub fn render(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = format!(
            "rx={} tx={} rx_empty_polls={} fill_starved_polls={} tx_ring_full={} tx_wakeup_sendtos={} tx_kick_retries={} bad_descriptors={}",
            g(&self.rx_frames),
            g(&self.tx_frames),
            g(&self.rx_empty_polls),
            g(&self.fill_starved_polls),
            g(&self.tx_ring_full),
            g(&self.tx_wakeup_sendtos),
            g(&self.tx_kick_retries),
            g(&self.bad_descriptors)
        );
        for reason in DropReason::ALL {
            s.push_str(&format!(" {}={}", reason.name(), g(&self.drops[reason.slot()])));
        }
        s
    }
}

/// Anonymous page-aligned memory registered as a UMEM.
struct Area {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the area is plain memory; which thread may touch which chunk is governed by ring
// ownership (a chunk belongs to exactly one party at a time), not by the pointer's thread.
unsafe impl Send for Area {}
// SAFETY: as above; shared references only hand out raw pointers, never `&[u8]` to the whole.
unsafe impl Sync for Area {}

impl Area {
    fn new(len: usize) -> anyhow::Result<Self> {
        // SAFETY: an anonymous private mapping with no address hint has no preconditions; the
        // result is checked against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            bail!("mmap of {len} bytes for the UMEM: {}", std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| anyhow!("mmap returned NULL"))?;
        Ok(Self { ptr, len })
    }

    fn as_slice_ptr(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len)
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; every socket using this area as
        // UMEM has been closed before (the area is the last field dropped, see `QueueDatapath`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Fill and completion rings of one queue, shared by its workers, and the chunks not in any ring.
struct FillComp {
    fq: DeviceQueue,
    spare: Vec<u64>,
    need_wakeup: bool,
}

impl FillComp {
    /// Moves completions to the spare list and as much of it as fits into the fill ring.
    /// Returns false when the kernel is left with no chunk to receive into.
    fn recycle(&mut self, batch: u32) -> bool {
        {
            let mut done = self.fq.complete(batch * 4);
            while let Some(addr) = done.read() {
                self.spare.push(addr);
            }
            done.release();
        }
        if self.spare.is_empty() {
            return self.fq.pending() > 0;
        }
        fill_from(&mut self.fq, &mut self.spare);
        if self.need_wakeup && self.fq.needs_wakeup() {
            self.fq.wake();
        }
        self.fq.pending() > 0
    }
}

/// One worker: its socket's RX/TX rings and what it needs to run.
struct Worker {
    meta: FrameMeta,
    rx: RingRx,
    tx: RingTx,
    fc: Arc<Mutex<FillComp>>,
    area: Arc<Area>,
    frame_size: u64,
    batch: u32,
    spin: Duration,
    always_kick: bool,
    stats: Arc<WorkerStats>,
    /// Replies that did not fit the TX ring yet (their chunks stay ours).
    pending_tx: Vec<XdpDesc>,
    /// This batch's replies that may leave only once its records are durable.
    staged: Vec<XdpDesc>,
    /// Replies waiting for their batch's records to be durable (group commit), with the
    /// handler's ticket, oldest first.
    held: std::collections::VecDeque<(u64, XdpDesc)>,
    /// Chunks to give back to the fill ring.
    recycle: Vec<u64>,
    /// UMEM addresses of the current batch's frames, in order.
    batch_addrs: Vec<u64>,
}

/// Most replies a worker holds for durability before it stops taking new frames (batches).
const HELD_BATCHES: usize = 8;

fn lock(m: &Mutex<FillComp>) -> MutexGuard<'_, FillComp> {
    // A worker that panicked while holding the lock left the rings consistent (every ring
    // operation commits or rolls back on drop), so the data is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands a worker's dropped chunks to the queue and refills the fill ring.
fn give_back(recycle: &mut Vec<u64>, stats: &WorkerStats, batch: u32, fc: &mut FillComp) {
    fc.spare.append(recycle);
    if !fc.recycle(batch) {
        stats.fill_starved_polls.fetch_add(1, Ordering::Relaxed);
    }
}

/// Moves as many chunks of `spare` as fit into the fill ring; returns how many.
fn fill_from(fq: &mut DeviceQueue, spare: &mut Vec<u64>) -> u32 {
    let want = u32::try_from(spare.len()).unwrap_or(u32::MAX);
    let mut fill = fq.fill(want);
    // Insert from the tail so that exactly the inserted chunks can be truncated off.
    let n = fill.insert(spare.iter().rev().copied());
    fill.commit();
    drop(fill);
    let keep = spare.len() - n as usize;
    spare.truncate(keep);
    n
}

/// Copy-mode TX (and zero-copy with need_wakeup) only moves on a syscall. Returns false when
/// the kick failed (EAGAIN/EBUSY/ENOBUFS …): the frames stay on the ring for the next kick.
fn kick_tx(tx: &RingTx) -> bool {
    // SAFETY: a zero-length sendto with null buffer and address on our own AF_XDP socket fd,
    // which stays open for the lifetime of `tx`.
    let r = unsafe { libc::sendto(tx.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    r >= 0
}

/// Sleeps until the RX ring has a frame or `timeout` passes.
fn wait_readable(rx: &RingRx, timeout: Duration) {
    let mut pfd = libc::pollfd { fd: rx.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd on the stack, count 1; the fd is ours and open.
    unsafe { libc::poll(&mut pfd, 1, ms) };
}

/// Bytes from a received descriptor's start to the end of its chunk, or `None` when the
/// descriptor lies outside the UMEM area of `area_len` bytes (which would be a kernel bug).
fn rx_room(desc: &XdpDesc, frame_size: u64, area_len: usize) -> Option<usize> {
    let chunk_end = (desc.addr & !(frame_size - 1)) + frame_size;
    if chunk_end > area_len as u64 || u64::from(desc.len) > chunk_end - desc.addr {
        return None;
    }
    Some((chunk_end - desc.addr) as usize)
}

impl Worker {
    fn run(mut self, stop: &AtomicBool, handler: &mut dyn Handler) {
        let mut idle_polls = 0u32;
        let mut idle_since = std::time::Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let got = self.step(handler);
            if got == 0 && self.pending_tx.is_empty() && self.tx.pending() == 0 {
                if !self.held.is_empty() {
                    // Replies wait for a sync that takes a while: let the syncer and others run.
                    std::thread::sleep(Duration::from_micros(20));
                    continue;
                }
                // Read the clock only every 64 empty polls.
                idle_polls = idle_polls.wrapping_add(1);
                if idle_polls == 1 {
                    idle_since = std::time::Instant::now();
                } else if idle_polls.is_multiple_of(64) && idle_since.elapsed() > self.spin {
                    self.sleep_until_rx(Duration::from_millis(50));
                }
            } else {
                idle_polls = 0;
            }
        }
        // Drain: steering to this socket was switched off before `stop`; answer what is already
        // in the RX ring and push every reply out (once durable), within a bounded time.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            let got = self.step(handler);
            if got == 0 && self.pending_tx.is_empty() && self.held.is_empty() && self.tx.pending() == 0 {
                break;
            }
            if got == 0 && !self.held.is_empty() {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
        // Replies whose records were not confirmed durable in time never leave.
        let unconfirmed = self.held.len() as u64;
        self.recycle.extend(self.held.drain(..).map(|(_, d)| d.addr));
        self.stats.drops[DropReason::JournalFailed.slot()].fetch_add(unconfirmed, Ordering::Relaxed);
        give_back(&mut self.recycle, &self.stats, self.batch, &mut lock(&self.fc));
    }

    /// One loop iteration; returns the number of frames received.
    fn step(&mut self, handler: &mut dyn Handler) -> u32 {
        // Recycle under the queue's lock, but never wait for it while others are at it.
        let Self { fc, recycle, stats, batch, .. } = self;
        if let Ok(mut g) = fc.try_lock() {
            give_back(recycle, stats, *batch, &mut g);
        } else if recycle.len() > (*batch * 4) as usize {
            give_back(recycle, stats, *batch, &mut lock(fc));
        }
        self.release_held(handler);
        let room =
            self.pending_tx.len() < self.batch as usize && self.held.len() < self.batch as usize * (HELD_BATCHES - 1);
        let got = if room { self.receive(handler) } else { 0 };
        self.transmit();
        got
    }

    /// Moves replies whose records became durable to the TX queue; drops those whose sync
    /// failed.
    fn release_held(&mut self, handler: &mut dyn Handler) {
        let mut failed = 0u64;
        while let Some(&(ticket, desc)) = self.held.front() {
            match handler.settled(ticket) {
                None => break,
                Some(true) => self.pending_tx.push(desc),
                Some(false) => {
                    failed += 1;
                    self.recycle.push(desc.addr);
                }
            }
            self.held.pop_front();
        }
        if failed > 0 {
            self.stats.drops[DropReason::JournalFailed.slot()].fetch_add(failed, Ordering::Relaxed);
        }
    }

    fn receive(&mut self, handler: &mut dyn Handler) -> u32 {
        if self.rx.available() == 0 {
            self.stats.rx_empty_polls.fetch_add(1, Ordering::Relaxed);
            return 0;
        }
        let mut rx = self.rx.receive(self.batch);
        let mut got = 0u32;
        let mut drops = [0u64; DropReason::COUNT];
        handler.begin_batch();
        // The batch's frames go to the handler together (the engine locks its shard once).
        self.batch_addrs.clear();
        let mut jobs = Vec::with_capacity(self.batch as usize);
        while let Some(desc) = rx.read() {
            got += 1;
            let Some(room) = rx_room(&desc, self.frame_size, self.area.len) else {
                self.stats.bad_descriptors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            // SAFETY: the kernel handed this chunk to us through the RX ring, so until we put it
            // on the TX or fill ring no one else reads or writes it; [addr, addr + room) was just
            // checked to lie inside the mapped UMEM area, which outlives this worker. Chunks of
            // one batch are distinct descriptors, so the slices do not overlap.
            let buf = unsafe { std::slice::from_raw_parts_mut(self.area.ptr.as_ptr().add(desc.addr as usize), room) };
            jobs.push(Job { buf, len: desc.len as usize, verdict: Verdict::Drop(DropReason::NotForUs) });
            self.batch_addrs.push(desc.addr);
        }
        handler.handle_batch(&self.meta, &mut jobs);
        for (job, &addr) in jobs.iter().zip(&self.batch_addrs) {
            let room = job.buf.len();
            match job.verdict {
                Verdict::Reply(n) if n <= room && n > 0 => {
                    self.pending_tx.push(XdpDesc { addr, len: n as u32, options: 0 });
                }
                Verdict::ReplyWhenDurable(n) if n <= room && n > 0 => {
                    self.staged.push(XdpDesc { addr, len: n as u32, options: 0 });
                }
                Verdict::Reply(_) | Verdict::ReplyWhenDurable(_) => {
                    drops[DropReason::NoRoom.slot()] += 1;
                    self.recycle.push(addr);
                }
                Verdict::Drop(reason) => {
                    drops[reason.slot()] += 1;
                    self.recycle.push(addr);
                }
            }
        }
        drop(jobs);
        rx.release();
        drop(rx);
        // Durability before transmission: replies that promise a lease leave only once the
        // handler has made its record durable.
        match handler.end_batch() {
            Release::Now => self.pending_tx.append(&mut self.staged),
            Release::Withhold => {
                for d in self.staged.drain(..) {
                    drops[DropReason::JournalFailed.slot()] += 1;
                    self.recycle.push(d.addr);
                }
            }
            Release::After(ticket) => self.held.extend(self.staged.drain(..).map(|d| (ticket, d))),
        }
        if got == 0 {
            self.stats.rx_empty_polls.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.rx_frames.fetch_add(u64::from(got), Ordering::Relaxed);
            for (c, n) in self.stats.drops.iter().zip(drops) {
                if n > 0 {
                    c.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
        got
    }

    fn transmit(&mut self) {
        if !self.pending_tx.is_empty() {
            let want = u32::try_from(self.pending_tx.len()).unwrap_or(u32::MAX);
            let mut w = self.tx.transmit(want);
            let n = w.insert(self.pending_tx.iter().copied());
            w.commit();
            drop(w);
            self.pending_tx.drain(..n as usize);
            self.stats.tx_frames.fetch_add(u64::from(n), Ordering::Relaxed);
            if !self.pending_tx.is_empty() {
                self.stats.tx_ring_full.fetch_add(1, Ordering::Relaxed);
            }
        }
        if self.tx.pending() > 0 && (self.always_kick || self.tx.needs_wakeup()) {
            self.kick_tx();
        }
    }

    fn kick_tx(&mut self) {
        self.stats.tx_wakeup_sendtos.fetch_add(1, Ordering::Relaxed);
        if !kick_tx(&self.tx) {
            self.stats.tx_kick_retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn sleep_until_rx(&self, timeout: Duration) {
        wait_readable(&self.rx, timeout);
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

/// Socket setup of one queue before its workers start.
struct QueueSetup {
    umem: Umem,
    area: Arc<Area>,
    fc: DeviceQueue,
    spare: Vec<u64>,
    rings: Vec<(RingRx, RingTx)>,
    users: Vec<User>,
}

fn errno(e: xdpilone::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.get_raw())
}

fn setup_queue(
    ifname: &str,
    queue: u32,
    workers: u32,
    cfg: &DatapathConfig,
    mode: BoundMode,
) -> Result<QueueSetup, std::io::Error> {
    let area = Arc::new(
        Area::new(cfg.frame_size as usize * cfg.frames_per_queue as usize)
            .map_err(|e| std::io::Error::other(e.to_string()))?,
    );
    let umem_cfg = UmemConfig {
        fill_size: cfg.fill_size,
        complete_size: cfg.fill_size,
        frame_size: cfg.frame_size,
        headroom: 0,
        flags: 0,
    };
    // SAFETY: the area is page aligned (fresh mmap), sized for `frames_per_queue` chunks, and kept
    // alive in `QueueDatapath` until after the UMEM and every socket using it are closed.
    let umem = unsafe { Umem::new(umem_cfg, area.as_slice_ptr()) }.map_err(errno)?;
    let mut info = IfInfo::invalid();
    let cname = CString::new(ifname).map_err(|e| std::io::Error::other(e.to_string()))?;
    info.from_name(&cname).map_err(errno)?;
    info.set_queue(queue);

    let ring = NonZeroU32::new(cfg.ring_size);
    let first_flags = SocketConfig::XDP_BIND_NEED_WAKEUP
        | match mode {
            BoundMode::Copy => SocketConfig::XDP_BIND_COPY,
            BoundMode::ZeroCopy => SocketConfig::XDP_BIND_ZEROCOPY,
        };
    let sock0 = Socket::with_shared(&info, &umem).map_err(errno)?;
    let mut fc = umem.fq_cq(&sock0).map_err(errno)?;
    let mut users = vec![
        umem.rx_tx(&sock0, &SocketConfig { rx_size: ring, tx_size: ring, bind_flags: first_flags }).map_err(errno)?,
    ];
    for _ in 1..workers {
        let s = Socket::new(&info).map_err(errno)?;
        // Sockets sharing the UMEM bind with flags 0: the kernel refuses copy/zero-copy/wakeup
        // flags next to XDP_SHARED_UMEM.
        users.push(umem.rx_tx(&s, &SocketConfig { rx_size: ring, tx_size: ring, bind_flags: 0 }).map_err(errno)?);
    }

    // Every chunk starts in the spare list; fill the ring before any traffic can arrive.
    let mut spare: Vec<u64> =
        (0..u64::from(cfg.frames_per_queue)).rev().map(|i| i * u64::from(cfg.frame_size)).collect();
    spare.reserve(cfg.frames_per_queue as usize);
    fill_from(&mut fc, &mut spare);

    let mut rings = Vec::with_capacity(users.len());
    for (i, user) in users.iter().enumerate() {
        umem.bind(user).map_err(|e| {
            let e = errno(e);
            std::io::Error::new(e.kind(), format!("bind of socket {i} on queue {queue}: {e}"))
        })?;
        rings.push((user.map_rx().map_err(errno)?, user.map_tx().map_err(errno)?));
    }
    Ok(QueueSetup { umem, area, fc, spare, rings, users })
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
    ) -> anyhow::Result<Self> {
        if workers_per_queue == 0 || workers_per_queue > dhcp_xdp_common::MAX_SOCKETS_PER_QUEUE {
            bail!("workers per queue must be 1..={}", dhcp_xdp_common::MAX_SOCKETS_PER_QUEUE);
        }
        if !cfg.frame_size.is_power_of_two() || cfg.frame_size < 2048 {
            bail!("frame size must be a power of two ≥ 2048");
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
                        .with_context(|| format!("AF_XDP setup of {ifname} queue {queue} in copy mode"))?
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("AF_XDP setup of {ifname} queue {queue} in {mode} mode"));
                }
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
                        worker.run(&stop, handler.as_mut());
                    })
                    .context("spawning worker thread")?;
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
    #[allow(clippy::type_complexity)]
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

/// One AF_XDP socket with a UMEM of its own, for a program that originates frames and receives
/// the answers (the load generator): the chunks that fit the fill ring receive, the rest
/// transmit and come back through the completion ring.
///
/// Field order is drop order: rings and socket close before the UMEM, the memory goes last.
pub struct Port {
    rx: RingRx,
    tx: RingTx,
    fq: DeviceQueue,
    users: Vec<User>,
    _umem: Umem,
    area: Arc<Area>,
    /// The mode the socket bound in.
    pub mode: BoundMode,
    frame_size: u64,
    tx_free: Vec<u64>,
    rx_done: Vec<u64>,
    staged: Vec<XdpDesc>,
    always_kick: bool,
    /// Descriptors outside the UMEM (would be a kernel bug): dropped.
    pub bad_descriptors: u64,
}

impl Port {
    /// Binds one socket on `queue` of `ifname`. `cfg.frames_per_queue` should be about twice
    /// `cfg.fill_size`: what does not fit the fill ring is the transmit pool.
    pub fn open(ifname: &str, queue: u32, bind: BindModeArg, cfg: DatapathConfig) -> anyhow::Result<Self> {
        let first = if bind == BindModeArg::Copy { BoundMode::Copy } else { BoundMode::ZeroCopy };
        let (setup, mode) = match setup_queue(ifname, queue, 1, &cfg, first) {
            Ok(s) => (s, first),
            Err(e) if bind == BindModeArg::Auto => {
                tracing::info!("zero-copy bind on {ifname} queue {queue} refused ({e}); using copy mode");
                let s = setup_queue(ifname, queue, 1, &cfg, BoundMode::Copy)
                    .with_context(|| format!("AF_XDP setup of {ifname} queue {queue} in copy mode"))?;
                (s, BoundMode::Copy)
            }
            Err(e) => return Err(e).with_context(|| format!("AF_XDP setup of {ifname} queue {queue} in {first} mode")),
        };
        let QueueSetup { umem, area, fc, spare, mut rings, users } = setup;
        let (rx, tx) = rings.pop().ok_or_else(|| anyhow!("no socket rings"))?;
        if spare.is_empty() {
            bail!("no UMEM chunks left for transmission: frames_per_queue must exceed fill_size");
        }
        Ok(Self {
            rx,
            tx,
            fq: fc,
            users,
            _umem: umem,
            area,
            mode,
            frame_size: u64::from(cfg.frame_size),
            tx_free: spare,
            rx_done: Vec::with_capacity(cfg.fill_size as usize),
            staged: Vec::with_capacity(cfg.ring_size as usize),
            always_kick: mode == BoundMode::Copy,
            bad_descriptors: 0,
        })
    }

    /// The socket's descriptor, for the XSKMAP (the socket is bound already).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.rx.as_raw_fd()
    }

    /// Chunks free for transmission right now (after reclaiming completions).
    pub fn tx_room(&mut self) -> usize {
        self.reclaim();
        self.tx_free.len()
    }

    fn reclaim(&mut self) {
        let mut done = self.fq.complete(u32::try_from(self.tx_free.capacity()).unwrap_or(u32::MAX));
        while let Some(addr) = done.read() {
            self.tx_free.push(addr);
        }
        done.release();
    }

    /// Transmits up to `max` frames, each written by `build` into a fresh chunk (returning the
    /// frame's length, or `None` to stop early). `build` is called only for frames that have a
    /// chunk and a TX ring slot. Returns how many were queued.
    pub fn send(&mut self, max: usize, mut build: impl FnMut(&mut [u8]) -> Option<usize>) -> usize {
        self.reclaim();
        let room = self.frame_size as usize;
        let want = u32::try_from(max.min(self.tx_free.len())).unwrap_or(u32::MAX);
        let mut sent = 0;
        if want > 0 {
            let mut w = self.tx.transmit(want);
            let slots = w.capacity() as usize;
            while self.staged.len() < slots {
                let Some(addr) = self.tx_free.pop() else { break };
                // SAFETY: `addr` is a chunk start from our own free list (every chunk lies
                // inside the mapped area, which outlives `self`); a chunk on that list is in no
                // ring, so nobody else reads or writes it until we put it on the TX ring below.
                let buf = unsafe { std::slice::from_raw_parts_mut(self.area.ptr.as_ptr().add(addr as usize), room) };
                match build(buf) {
                    Some(len) if len > 0 && len <= room => {
                        self.staged.push(XdpDesc { addr, len: len as u32, options: 0 });
                    }
                    _ => {
                        self.tx_free.push(addr);
                        break;
                    }
                }
            }
            // Every staged frame has a reserved slot.
            sent = w.insert(self.staged.drain(..)) as usize;
            w.commit();
        }
        if self.tx.pending() > 0 && (self.always_kick || self.tx.needs_wakeup()) {
            // A failed kick leaves the frames on the ring for the next call.
            kick_tx(&self.tx);
        }
        sent
    }

    /// Passes up to `max` received frames to `f` and gives their chunks back to the kernel.
    /// Returns how many were received.
    pub fn recv(&mut self, max: u32, mut f: impl FnMut(&[u8])) -> u32 {
        let mut got = 0;
        if self.rx.available() > 0 {
            let mut rx = self.rx.receive(max);
            while let Some(desc) = rx.read() {
                got += 1;
                if rx_room(&desc, self.frame_size, self.area.len).is_none() {
                    self.bad_descriptors += 1;
                    continue;
                }
                // SAFETY: the kernel handed this chunk over through the RX ring and gets it back
                // only through the fill ring below, after `f` returned; the range was just
                // checked to lie inside the mapped area, which outlives `self`.
                let frame = unsafe {
                    std::slice::from_raw_parts(self.area.ptr.as_ptr().add(desc.addr as usize), desc.len as usize)
                };
                f(frame);
                self.rx_done.push(desc.addr & !(self.frame_size - 1));
            }
            rx.release();
        }
        if !self.rx_done.is_empty() {
            fill_from(&mut self.fq, &mut self.rx_done);
            if self.fq.needs_wakeup() {
                self.fq.wake();
            }
        }
        got
    }

    /// Sleeps until a frame is ready to receive or `timeout` passes.
    pub fn wait_rx(&self, timeout: Duration) {
        wait_readable(&self.rx, timeout);
    }

    /// The kernel's counters of the socket (XDP_STATISTICS), rendered.
    pub fn kernel_stats(&self) -> String {
        self.users.first().map(render_xsk_stats).unwrap_or_default()
    }
}
