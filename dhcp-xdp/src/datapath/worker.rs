//! One worker's loop: peek an RX batch, let the handler decide, hold replies that wait for
//! durability, transmit, recycle. It must never block on anything but its own poll(2) and the
//! queue's short fill-ring lock, and never lose a chunk.

use super::{umem::*, *};

/// One worker: its socket's RX/TX rings and what it needs to run.
pub(super) struct Worker {
    pub(super) meta: FrameMeta,
    pub(super) rx: RingRx,
    pub(super) tx: RingTx,
    pub(super) fc: Arc<Mutex<FillComp>>,
    pub(super) area: Arc<Area>,
    pub(super) frame_size: u64,
    pub(super) batch: u32,
    pub(super) spin: Duration,
    pub(super) always_kick: bool,
    pub(super) stats: Arc<WorkerStats>,
    /// Replies that did not fit the TX ring yet (their chunks stay ours).
    pub(super) pending_tx: Vec<XdpDesc>,
    /// This batch's replies that may leave only once its records are durable.
    pub(super) staged: Vec<XdpDesc>,
    /// Replies waiting for their batch's records to be durable (group commit), oldest first,
    /// copied out of their chunks: a store that takes its time holds bytes, never the chunks
    /// the fill and RX rings need.
    pub(super) held: std::collections::VecDeque<HeldReply>,
    /// Buffers of replies that left, for the next ones held.
    pub(super) held_bufs: Vec<Vec<u8>>,
    /// Chunks to give back to the fill ring.
    pub(super) recycle: Vec<u64>,
    /// UMEM addresses of the current batch's frames, in order.
    pub(super) batch_addrs: Vec<u64>,
}

/// Replies a worker holds for durability at the least, in batches (room reserved at start).
pub(super) const HELD_BATCHES: usize = 8;

/// Most replies a worker holds for durability (~400 bytes each: about 100 MB at most); beyond
/// it, the oldest give way. A town's avalanche through one worker: 100 000 REQUESTs waiting for
/// a database that commits 45 000 a second (65 536 dropped a third of them, which then waited
/// 4 s to retransmit).
pub(super) const HELD_CAP: usize = 262_144;

/// A reply held until its ticket is durable: the handler's ticket, when it was held
/// ([`mono_ms`](crate::clock::mono_ms)) and its frame's bytes.
pub(super) struct HeldReply {
    ticket: u64,
    since: u64,
    bytes: Vec<u8>,
}

/// Longest a reply is held for durability: a client that sent its REQUEST this long ago has
/// retransmitted it (RFC 2131: after 4 s ± 1) or given up; its reply is dropped rather than kept.
pub(super) const HELD_MS: u64 = 3_000;

impl Worker {
    pub(super) fn run(mut self, stop: &AtomicBool, handler: &mut dyn Handler) {
        let mut idle_polls = 0u32;
        let mut idle_since = std::time::Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let got = self.step(handler);
            if got > 0 && !self.held.is_empty() {
                // Replies wait for the store's syncer, which this busy worker may be keeping
                // off its CPU (a woken thread waits up to a scheduler slice, ~1.5 ms, for a
                // spinning one): let it run now. Without a runnable thread this returns at once.
                std::thread::yield_now();
            }
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
        self.held.clear();
        self.stats.drops[DropReason::JournalFailed.slot()].fetch_add(unconfirmed, Ordering::Relaxed);
        give_back(&mut self.recycle, &self.stats, self.batch, &mut lock(&self.fc));
    }

    /// One loop iteration; returns the number of frames received.
    pub(super) fn step(&mut self, handler: &mut dyn Handler) -> u32 {
        // Relaxed: a statistic of this worker's own, read by the metrics now and then.
        self.stats.polls.fetch_add(1, Ordering::Relaxed);
        // Recycle under the queue's lock, but never wait for it while others are at it.
        let Self { fc, recycle, stats, batch, .. } = self;
        if let Ok(mut g) = fc.try_lock() {
            give_back(recycle, stats, *batch, &mut g);
        } else if recycle.len() > (*batch * 4) as usize {
            give_back(recycle, stats, *batch, &mut lock(fc));
        }
        self.release_held(handler);
        let got = if self.pending_tx.len() < self.batch as usize { self.receive(handler) } else { 0 };
        // Replies held for a store that does not answer give way, oldest first — beyond the
        // cap, and after HELD_MS, when their clients have retransmitted; those are ACKed once
        // it answers.
        let mut n = self.held.len().saturating_sub(HELD_CAP);
        if let Some(h) = self.held.get(n) {
            let now = crate::clock::mono_ms();
            if now.saturating_sub(h.since) > HELD_MS {
                n += self.held.iter().skip(n).take_while(|h| now.saturating_sub(h.since) > HELD_MS).count();
            }
        }
        if n > 0 {
            for h in self.held.drain(..n) {
                keep_buf(&mut self.held_bufs, h.bytes);
            }
            self.stats.drops[DropReason::JournalStalled.slot()].fetch_add(n as u64, Ordering::Relaxed);
        }
        self.transmit();
        got
    }

    /// Moves replies whose records became durable to the TX queue, each copied into a free
    /// chunk (one comes back for every frame received; when none is free now, the rest wait
    /// for the next step); drops those whose sync failed.
    pub(super) fn release_held(&mut self, handler: &mut dyn Handler) {
        let mut failed = 0u64;
        while let Some(ticket) = self.held.front().map(|h| h.ticket) {
            match handler.settled(ticket) {
                None => break,
                Some(true) => {
                    let Some(addr) = self.free_chunk() else { break };
                    let Some(h) = self.held.pop_front() else { break };
                    let len = h.bytes.len();
                    match self.chunk(addr, len) {
                        Some(chunk) => {
                            chunk.copy_from_slice(&h.bytes);
                            self.pending_tx.push(XdpDesc { addr, len: len as u32, options: 0 });
                        }
                        None => {
                            // Longer than a chunk (cannot happen: it was read from one).
                            self.stats.bad_descriptors.fetch_add(1, Ordering::Relaxed);
                            self.recycle.push(addr);
                        }
                    }
                    keep_buf(&mut self.held_bufs, h.bytes);
                }
                Some(false) => {
                    failed += 1;
                    if let Some(h) = self.held.pop_front() {
                        keep_buf(&mut self.held_bufs, h.bytes);
                    }
                }
            }
        }
        if failed > 0 {
            self.stats.drops[DropReason::JournalFailed.slot()].fetch_add(failed, Ordering::Relaxed);
        }
    }

    pub(super) fn receive(&mut self, handler: &mut dyn Handler) -> u32 {
        let waiting = self.rx.available();
        // Relaxed: a gauge the control loop reads now and then.
        self.stats.rx_backlog.store(u64::from(waiting), Ordering::Relaxed);
        if waiting == 0 {
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
            Release::After(ticket) => {
                let since = crate::clock::mono_ms();
                let staged = std::mem::take(&mut self.staged);
                for d in &staged {
                    let mut bytes = self.held_bufs.pop().unwrap_or_default();
                    bytes.clear();
                    if let Some(frame) = self.chunk(d.addr, d.len as usize) {
                        bytes.extend_from_slice(frame);
                        self.held.push_back(HeldReply { ticket, since, bytes });
                    }
                    // The chunk goes back at once: the reply waits as bytes.
                    self.recycle.push(d.addr);
                }
                self.staged = staged;
                self.staged.clear();
            }
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

    /// A free chunk for a reply that leaves later: one this worker is about to give back, or
    /// one of the queue's spares.
    fn free_chunk(&mut self) -> Option<u64> {
        let addr = match self.recycle.pop() {
            Some(a) => a,
            None => lock(&self.fc).spare.pop()?,
        };
        Some(addr & !(self.frame_size - 1))
    }

    /// The `len` bytes of the UMEM at `addr`, when they lie inside the area.
    fn chunk(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let end = addr.checked_add(len as u64)?;
        if end > self.area.len as u64 || len as u64 > self.frame_size {
            return None;
        }
        // SAFETY: `addr` is a chunk this worker owns — received on its RX ring and not yet put
        // on the TX or fill ring, or taken from its recycle list or the queue's spares — so no
        // one else reads or writes it until it goes on a ring; [addr, addr + len) was just
        // checked to lie inside the mapped UMEM area, which outlives this worker; the slice
        // lives only as long as this borrow of the worker.
        Some(unsafe { std::slice::from_raw_parts_mut(self.area.ptr.as_ptr().add(addr as usize), len) })
    }

    pub(super) fn transmit(&mut self) {
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

    pub(super) fn kick_tx(&mut self) {
        self.stats.tx_wakeup_sendtos.fetch_add(1, Ordering::Relaxed);
        if !kick_tx(&self.tx) {
            self.stats.tx_kick_retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn sleep_until_rx(&self, timeout: Duration) {
        wait_readable(&self.rx, timeout);
    }
}

/// Keeps a held reply's buffer for the next one (a bounded pool).
fn keep_buf(bufs: &mut Vec<Vec<u8>>, buf: Vec<u8>) {
    if bufs.len() < 4096 {
        bufs.push(buf);
    }
}
