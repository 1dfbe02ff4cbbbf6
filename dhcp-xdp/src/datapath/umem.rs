//! UMEM primitives: the page-aligned area registered with the kernel, the fill and completion
//! rings one queue's sockets share, socket setup and binding, and the raw ring operations
//! (fill, kick, wait). Every chunk handed out here must be in exactly one place at a time.

use super::*;

/// Anonymous page-aligned memory registered as a UMEM.
pub(super) struct Area {
    pub(super) ptr: NonNull<u8>,
    pub(super) len: usize,
}

// SAFETY: the area is plain memory; which thread may touch which chunk is governed by ring
// ownership (a chunk belongs to exactly one party at a time), not by the pointer's thread.
unsafe impl Send for Area {}
// SAFETY: as above; shared references only hand out raw pointers, never `&[u8]` to the whole.
unsafe impl Sync for Area {}

impl Area {
    pub(super) fn new(len: usize) -> std::io::Result<Self> {
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
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| std::io::Error::other("mmap returned NULL"))?;
        Ok(Self { ptr, len })
    }

    pub(super) fn as_slice_ptr(&self) -> NonNull<[u8]> {
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
pub(super) struct FillComp {
    pub(super) fq: DeviceQueue,
    pub(super) spare: Vec<u64>,
    pub(super) need_wakeup: bool,
}

impl FillComp {
    /// Moves completions to the spare list and as much of it as fits into the fill ring.
    /// Returns false when the kernel is left with no chunk to receive into.
    pub(super) fn recycle(&mut self, batch: u32) -> bool {
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

pub(super) fn lock(m: &Mutex<FillComp>) -> MutexGuard<'_, FillComp> {
    // A worker that panicked while holding the lock left the rings consistent (every ring
    // operation commits or rolls back on drop), so the data is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands a worker's dropped chunks to the queue and refills the fill ring.
pub(super) fn give_back(recycle: &mut Vec<u64>, stats: &WorkerStats, batch: u32, fc: &mut FillComp) {
    fc.spare.append(recycle);
    if !fc.recycle(batch) {
        stats.fill_starved_polls.fetch_add(1, Ordering::Relaxed);
    }
}

/// Moves as many chunks of `spare` as fit into the fill ring; returns how many.
pub(super) fn fill_from(fq: &mut DeviceQueue, spare: &mut Vec<u64>) -> u32 {
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
pub(super) fn kick_tx(tx: &RingTx) -> bool {
    // SAFETY: a zero-length sendto with null buffer and address on our own AF_XDP socket fd,
    // which stays open for the lifetime of `tx`.
    let r = unsafe { libc::sendto(tx.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    r >= 0
}

/// Sleeps until the RX ring has a frame or `timeout` passes.
pub(super) fn wait_readable(rx: &RingRx, timeout: Duration) {
    let mut pfd = libc::pollfd { fd: rx.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd on the stack, count 1; the fd is ours and open.
    unsafe { libc::poll(&mut pfd, 1, ms) };
}

/// Bytes from a received descriptor's start to the end of its chunk, or `None` when the
/// descriptor lies outside the UMEM area of `area_len` bytes (which would be a kernel bug).
pub(super) fn rx_room(desc: &XdpDesc, frame_size: u64, area_len: usize) -> Option<usize> {
    let chunk_end = (desc.addr & !(frame_size - 1)) + frame_size;
    if chunk_end > area_len as u64 || u64::from(desc.len) > chunk_end - desc.addr {
        return None;
    }
    Some((chunk_end - desc.addr) as usize)
}

/// Socket setup of one queue before its workers start.
pub(super) struct QueueSetup {
    pub(super) umem: Umem,
    pub(super) area: Arc<Area>,
    pub(super) fc: DeviceQueue,
    pub(super) spare: Vec<u64>,
    pub(super) rings: Vec<(RingRx, RingTx)>,
    pub(super) users: Vec<User>,
}

pub(super) fn errno(e: xdpilone::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.get_raw())
}

pub(super) fn setup_queue(
    ifname: &str,
    queue: u32,
    workers: u32,
    cfg: &DatapathConfig,
    mode: BoundMode,
) -> Result<QueueSetup, std::io::Error> {
    let area = Arc::new(Area::new(cfg.frame_size as usize * cfg.frames_per_queue as usize)?);
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
