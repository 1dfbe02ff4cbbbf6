//! A single AF_XDP socket with a UMEM of its own, for a program that originates frames (the
//! load generator). Shares the UMEM primitives with the daemon's datapath; never used by it.

use super::{umem::*, *};

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
    pub fn open(ifname: &str, queue: u32, bind: BindModeArg, cfg: DatapathConfig) -> Result<Self, DatapathError> {
        let setup_err = |mode, source| DatapathError::Setup { ifname: ifname.to_owned(), queue, mode, source };
        let first = if bind == BindModeArg::Copy { BoundMode::Copy } else { BoundMode::ZeroCopy };
        let (setup, mode) = match setup_queue(ifname, queue, 1, &cfg, first) {
            Ok(s) => (s, first),
            Err(e) if bind == BindModeArg::Auto => {
                tracing::info!("zero-copy bind on {ifname} queue {queue} refused ({e}); using copy mode");
                let s =
                    setup_queue(ifname, queue, 1, &cfg, BoundMode::Copy).map_err(|e| setup_err(BoundMode::Copy, e))?;
                (s, BoundMode::Copy)
            }
            Err(e) => return Err(setup_err(first, e)),
        };
        let QueueSetup { umem, area, fc, spare, mut rings, users } = setup;
        let (rx, tx) = rings.pop().ok_or(DatapathError::Config("no socket rings"))?;
        if spare.is_empty() {
            return Err(DatapathError::Config(
                "no UMEM chunks left for transmission: frames_per_queue must exceed fill_size",
            ));
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
