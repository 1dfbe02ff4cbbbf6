//! Group commit, once for every store: a worker hands its batch of numbered changes to its
//! slot and goes on with a ticket; the slot's syncer thread takes what accumulated, commits it
//! in one round through a [`Backend`] (the journal: one write and one `fdatasync`; the
//! database: one statement), and publishes the highest ticket that round covered as durable —
//! or as failed, when the round failed (those replies never leave).
//!
//! The policy lives here and nowhere else: a round's changes, ticket and target are taken
//! together under the slot's lock, so a round never vouches for changes it did not commit;
//! a round takes whole batches up to the backend's [`Backend::MAX_ROUND`] (at least one), so a
//! backlog is committed in rounds the store can do in time instead of one round that times out
//! whole; changes waiting beyond the backend's bound are refused ([`StoreError::Backlog`])
//! rather than held without limit; a failed round's changes are kept for the next round or
//! dropped, as the backend says ([`Backend::RETRY_FAILED`]); failures back off from 10 ms to
//! 1 s and are logged once per distinct reason; a stop ends the syncers once nothing is left.
//! How far behind the store is — the age of its oldest change not yet durable, or the time it
//! needs for what waits at the cost its rounds have shown, whichever is longer — is
//! [`Syncer::lag`].

use std::{
    collections::VecDeque,
    sync::{
        Arc, Condvar, Mutex, MutexGuard, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use dhcp_xdp_core::leases::Change;

use super::{Health, StoreError};

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Every change is durable.
    Durable,
    /// Committed, but the backend refused some changes (another client holds the address):
    /// the round's replies stay home all the same; nothing is retried.
    Refused,
}

/// Where a store's rounds go: the journal files, or the database.
pub trait Backend: Send + Sync + Sized + 'static {
    /// Changes waiting, in the backend's form (encoded records, or numbered changes).
    type Pending: Default + Send;
    /// What a slot keeps besides its changes (the journal: its file and generation), under
    /// the slot's lock.
    type SlotState: Send;
    /// What a round is committed to, taken with its changes under the slot's lock.
    type Target: Send;
    /// A syncer thread's own state (the database: its connection).
    type Conn: Default + Send;
    /// Names a slot's syncer in thread names and messages ("journal-sync", "pg-sync").
    const THREAD: &'static str;
    /// Most of [`size`](Self::size) a slot keeps waiting for a failing or stalled target.
    const MAX_BACKLOG: usize;
    /// Most of [`size`](Self::size) one round takes (whole batches; at least one).
    const MAX_ROUND: usize;
    /// About how much of [`size`](Self::size) one change takes (a record's bytes, or 1).
    const CHANGE_SIZE: usize;
    /// Whether a failed round's changes are written with the next round (the journal: a
    /// change is never lost) or dropped (the database: replayed after a partition they could
    /// undo what another node did meanwhile; none was promised).
    const RETRY_FAILED: bool;

    /// Adds numbered changes to what waits.
    fn push(pending: &mut Self::Pending, changes: &[(u64, Change)]);
    /// How much waits, in the unit of [`MAX_BACKLOG`](Self::MAX_BACKLOG).
    fn size(pending: &Self::Pending) -> usize;
    /// Moves everything from `from` to the end of `into`.
    fn take(from: &mut Self::Pending, into: &mut Self::Pending);
    /// Splits off and returns what follows the first `at` units of `pending`.
    fn split_off(pending: &mut Self::Pending, at: usize) -> Self::Pending;
    /// Forgets what waits.
    fn clear(pending: &mut Self::Pending);
    /// The target of the next round (under the slot's lock; may repair it, e.g. create a file
    /// that could not be created before).
    fn target(&self, slot: usize, state: &mut Self::SlotState) -> Self::Target;
    /// Commits `batch` to `target`: one round.
    fn commit(
        &self,
        slot: usize,
        conn: &mut Self::Conn,
        target: &Self::Target,
        batch: &Self::Pending,
        health: &Health,
    ) -> Result<Round, String>;
    /// The message logged when rounds start failing for `reason`.
    fn failing(&self, slot: usize, reason: &str) -> String;
    /// The message logged when rounds succeed again after `down`.
    fn recovered(&self, slot: usize, down: Duration) -> String;
}

/// Group-commit state of one slot: the tickets its syncer made durable or gave up on, and the
/// syncer's wake-up.
#[derive(Default)]
struct SlotSync {
    synced: AtomicU64,
    /// Tickets up to this one were in a failed round: their replies never leave.
    failed_through: AtomicU64,
    wanted: Mutex<bool>,
    wake: Condvar,
    /// How much the syncer took and has not yet made durable.
    backlog: AtomicU64,
    /// [`mono_ms`](crate::clock::mono_ms) when the oldest change the syncer took and has not
    /// yet made durable was handed over (0: none).
    in_flight_since: AtomicU64,
    /// What a round costs, learnt from the successful ones: a fixed part (µs: a sync, a round
    /// trip; from small rounds) and a part per unit of size (ns; from larger ones).
    round_fixed_us: AtomicU64,
    round_unit_ns: AtomicU64,
}

/// Rounds of at most this many changes teach a round's fixed cost; larger ones its cost per
/// unit of size.
const SMALL_ROUND: u64 = 8;

impl SlotSync {
    /// Learns from a successful round of `size` units (`change_size` a change) that took `us`
    /// µs (moving averages, weight 1/8).
    fn learn(&self, size: u64, change_size: u64, us: u64) {
        let avg = |old: u64, new: u64| if old == 0 { new } else { (old * 7 + new) / 8 };
        let fixed = self.round_fixed_us.load(Ordering::Relaxed);
        if size <= SMALL_ROUND * change_size || fixed == 0 {
            self.round_fixed_us.store(avg(fixed, us).max(1), Ordering::Relaxed);
        } else {
            let per = us.saturating_sub(fixed).saturating_mul(1000) / size;
            self.round_unit_ns.store(avg(self.round_unit_ns.load(Ordering::Relaxed), per), Ordering::Relaxed);
        }
    }

    /// How long committing `waiting` units takes: as many rounds as they fill, each its fixed
    /// cost, and each unit its own.
    fn drain_us(&self, waiting: u64, max_round: u64) -> u64 {
        if waiting == 0 {
            return 0;
        }
        let rounds = waiting.div_ceil(max_round);
        rounds.saturating_mul(self.round_fixed_us.load(Ordering::Relaxed))
            + waiting.saturating_mul(self.round_unit_ns.load(Ordering::Relaxed)) / 1000
    }
}

impl SlotSync {
    fn settled(&self, ticket: u64) -> Option<bool> {
        if ticket <= self.failed_through.load(Ordering::Acquire) {
            Some(false)
        } else if ticket <= self.synced.load(Ordering::Acquire) {
            Some(true)
        } else {
            None
        }
    }

    fn poke(&self) {
        *lock(&self.wanted) = true;
        self.wake.notify_one();
    }

    /// Waits until poked, stopped or `wait` passes; clears the request.
    fn wait(&self, wait: Duration, stop: &AtomicBool) {
        let wanted = lock(&self.wanted);
        let (mut wanted, _) = self
            .wake
            .wait_timeout_while(wanted, wait, |w| !*w && !stop.load(Ordering::Acquire))
            .unwrap_or_else(|p| p.into_inner());
        *wanted = false;
    }
}

/// A slot: changes not yet taken by the syncer, the last ticket handed out, the backend's state.
struct Slot<B: Backend> {
    pending: B::Pending,
    /// Where each batch in `pending` ends (in size units) and its ticket.
    ends: VecDeque<(usize, u64)>,
    /// [`mono_ms`](crate::clock::mono_ms) when the oldest change in `pending` was handed over
    /// (0: none).
    pending_since: u64,
    written: u64,
    state: B::SlotState,
}

impl<B: Backend> Slot<B> {
    /// Takes whole batches from the front of `pending`, up to `max` units (at least one batch;
    /// all of them when `max` is `usize::MAX`), onto `into`; returns the last ticket taken and
    /// when the oldest of them was handed over.
    fn take_round(&mut self, into: &mut B::Pending, max: usize) -> (u64, u64) {
        let since = std::mem::take(&mut self.pending_since);
        let all = max == usize::MAX || self.ends.back().is_none_or(|&(end, _)| end <= max);
        if all {
            self.ends.clear();
            B::take(&mut self.pending, into);
            return (self.written, since);
        }
        let mut cut = 0;
        let mut ticket = 0;
        while let Some(&(end, t)) = self.ends.front() {
            if cut > 0 && end > max {
                break;
            }
            (cut, ticket) = (end, t);
            self.ends.pop_front();
        }
        let mut rest = B::split_off(&mut self.pending, cut);
        std::mem::swap(&mut self.pending, &mut rest);
        B::take(&mut rest, into);
        for e in &mut self.ends {
            e.0 -= cut;
        }
        // What stays waited as long as what was taken (a close enough bound).
        self.pending_since = since;
        (ticket, since)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A backend's slots and their syncer threads.
pub struct Syncer<B: Backend> {
    backend: B,
    slots: Vec<Mutex<Slot<B>>>,
    sync: Vec<SlotSync>,
    stop: AtomicBool,
    records: AtomicU64,
    /// How committing goes.
    pub health: Health,
}

impl<B: Backend> Syncer<B> {
    /// Slots with the given states, a syncer thread each. The threads hold the syncer weakly:
    /// they end when it is dropped (or stopped and drained).
    pub fn start(backend: B, states: Vec<B::SlotState>) -> Result<Arc<Self>, StoreError> {
        let s = Arc::new(Self {
            backend,
            sync: states.iter().map(|_| SlotSync::default()).collect(),
            slots: states
                .into_iter()
                .map(|state| {
                    Mutex::new(Slot {
                        pending: B::Pending::default(),
                        ends: VecDeque::new(),
                        pending_since: 0,
                        written: 0,
                        state,
                    })
                })
                .collect(),
            stop: AtomicBool::new(false),
            records: AtomicU64::new(0),
            health: Health::default(),
        });
        for slot in 0..s.slots.len() {
            let weak = Arc::downgrade(&s);
            std::thread::Builder::new()
                .name(format!("{}{slot}", B::THREAD))
                .spawn(move || Self::run(&weak, slot))
                .map_err(|source| StoreError::Io { what: format!("starting {}{slot}", B::THREAD), source })?;
        }
        Ok(s)
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// How many slots (a syncer thread each).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Runs `f` on slot `slot`'s backend state under its lock.
    pub fn with_slot<R>(&self, slot: usize, f: impl FnOnce(&mut B::SlotState) -> R) -> R {
        f(&mut lock(&self.slots[slot]).state)
    }

    /// Hands numbered `changes` to `slot`'s syncer and returns at once with their ticket.
    pub fn append(&self, slot: usize, changes: &[(u64, Change)]) -> Result<u64, StoreError> {
        let slot = slot % self.slots.len();
        let ticket = {
            let mut f = lock(&self.slots[slot]);
            let backlog = B::size(&f.pending) + self.sync[slot].backlog.load(Ordering::Relaxed) as usize;
            if backlog > B::MAX_BACKLOG {
                self.health.dropped_batches.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::Backlog(backlog));
            }
            if B::size(&f.pending) == 0 {
                f.pending_since = crate::clock::mono_ms().max(1);
            }
            B::push(&mut f.pending, changes);
            f.written += 1;
            let (end, ticket) = (B::size(&f.pending), f.written);
            f.ends.push_back((end, ticket));
            ticket
        };
        self.records.fetch_add(changes.len() as u64, Ordering::Relaxed);
        self.sync[slot].poke();
        Ok(ticket)
    }

    /// Whether `ticket` of `slot` is durable (`Some(true)`), never will be (`Some(false)`), or
    /// still on its way (`None`).
    pub fn settled(&self, slot: usize, ticket: u64) -> Option<bool> {
        self.sync[slot % self.sync.len()].settled(ticket)
    }

    /// How far behind the store is: the age of its oldest change not yet durable, or — when
    /// longer — the time its slowest slot needs to commit what waits, at the cost its rounds
    /// have shown (a fixed part per round, a part per change: so a burst counts as soon as it
    /// is handed over, not once it has aged). Zero when everything handed over is durable.
    pub fn lag(&self) -> Duration {
        let now = crate::clock::mono_ms();
        let mut oldest = u64::MAX;
        let mut drain_us = 0u64;
        for (slot, sync) in self.slots.iter().zip(&self.sync) {
            let (pending_since, pending) = {
                let f = lock(slot);
                (f.pending_since, B::size(&f.pending) as u64)
            };
            for t in [pending_since, sync.in_flight_since.load(Ordering::Acquire)] {
                if t > 0 {
                    oldest = oldest.min(t);
                }
            }
            let waiting = pending + sync.backlog.load(Ordering::Relaxed);
            drain_us = drain_us.max(sync.drain_us(waiting, B::MAX_ROUND as u64));
        }
        let age = if oldest == u64::MAX { 0 } else { now.saturating_sub(oldest) };
        Duration::from_millis(age).max(Duration::from_micros(drain_us))
    }

    /// Changes handed over since start.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Whether everything `slot` was handed is done with: durable, or (when failed rounds are
    /// dropped) given up.
    fn drained(&self, slot: usize) -> bool {
        let f = lock(&self.slots[slot]);
        let sync = &self.sync[slot];
        let done = if B::RETRY_FAILED {
            sync.synced.load(Ordering::Acquire)
        } else {
            sync.synced.load(Ordering::Acquire).max(sync.failed_through.load(Ordering::Acquire))
        };
        B::size(&f.pending) == 0 && sync.backlog.load(Ordering::Relaxed) == 0 && done >= f.written
    }

    /// Waits until every slot is [drained](Self::drained) or `timeout` passes.
    pub fn wait(&self, timeout: Duration) -> Result<(), StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            let behind: Vec<String> =
                (0..self.slots.len()).filter(|&s| !self.drained(s)).map(|s| format!("{}{s}", B::THREAD)).collect();
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StoreError::Unflushed(timeout, behind.join(", ")));
            }
            self.sync.iter().for_each(SlotSync::poke);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Clean stop: waits (up to `timeout`) until everything handed over is done with, then
    /// ends the syncers.
    pub fn flush(&self, timeout: Duration) -> Result<(), StoreError> {
        let r = self.wait(timeout);
        self.stop.store(true, Ordering::Release);
        self.sync.iter().for_each(SlotSync::poke);
        r
    }

    /// One slot's syncer: waits for handed-over batches, commits them (with what a failed
    /// round left, when the backend retries), and publishes the highest ticket covered.
    fn run(me: &Weak<Self>, slot: usize) {
        // Writing the store's own files or talking to its database needs no capability.
        if let Err(e) = crate::privileges::drop_for_this_thread() {
            tracing::warn!("{}{slot}: could not drop capabilities: {e}", B::THREAD);
        }
        let mut batch = B::Pending::default();
        let mut conn = B::Conn::default();
        let mut backoff = Duration::from_millis(10);
        let mut failing_since: Option<(Instant, String)> = None;
        loop {
            let Some(s) = me.upgrade() else { return };
            let sync = &s.sync[slot];
            sync.wait(if B::size(&batch) == 0 { Duration::from_millis(100) } else { backoff }, &s.stop);
            let (target, dest) = {
                let mut f = lock(&s.slots[slot]);
                // A retried round goes again as it was, with what came since.
                let max = if B::size(&batch) > 0 { usize::MAX } else { B::MAX_ROUND };
                let (target, since) = f.take_round(&mut batch, max);
                if since > 0 && sync.in_flight_since.load(Ordering::Relaxed) == 0 {
                    sync.in_flight_since.store(since, Ordering::Release);
                }
                let dest = s.backend.target(slot, &mut f.state);
                // A round cut short: the rest goes next, without waiting for a poke.
                if target < f.written {
                    sync.poke();
                }
                (target, dest)
            };
            sync.backlog.store(B::size(&batch) as u64, Ordering::Relaxed);
            let stopping = s.stop.load(Ordering::Acquire);
            if B::size(&batch) == 0
                && target <= sync.synced.load(Ordering::Acquire).max(sync.failed_through.load(Ordering::Acquire))
            {
                if stopping {
                    return;
                }
                continue;
            }
            let started = Instant::now();
            match s.backend.commit(slot, &mut conn, &dest, &batch, &s.health) {
                Ok(round) => {
                    sync.learn(B::size(&batch) as u64, B::CHANGE_SIZE as u64, started.elapsed().as_micros() as u64);
                    match round {
                        Round::Durable => sync.synced.store(target, Ordering::Release),
                        Round::Refused => sync.failed_through.store(target, Ordering::Release),
                    }
                    B::clear(&mut batch);
                    backoff = Duration::from_millis(10);
                    if let Some((since, _)) = failing_since.take() {
                        s.health.failing.store(false, Ordering::Relaxed);
                        tracing::info!("{}", s.backend.recovered(slot, since.elapsed()));
                    }
                }
                Err(reason) => {
                    // This round's replies never leave.
                    sync.failed_through.store(target, Ordering::Release);
                    if !B::RETRY_FAILED {
                        B::clear(&mut batch);
                    }
                    s.health.failed_rounds.fetch_add(1, Ordering::Relaxed);
                    s.health.failing.store(true, Ordering::Relaxed);
                    if failing_since.as_ref().is_none_or(|(_, m)| *m != reason) {
                        tracing::error!("{}", s.backend.failing(slot, &reason));
                        failing_since = Some((failing_since.map_or_else(Instant::now, |f| f.0), reason));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    if stopping {
                        return;
                    }
                }
            }
            sync.backlog.store(B::size(&batch) as u64, Ordering::Relaxed);
            if B::size(&batch) == 0 {
                sync.in_flight_since.store(0, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU8;

    use dhcp_xdp_core::{leases::LeaseState, testing::lease};

    use super::*;

    /// A backend that records what each round committed and fails while told to.
    struct Fake<const RETRY: bool> {
        fail: AtomicU8,
        committed: Mutex<Vec<Vec<u64>>>,
    }

    impl<const RETRY: bool> Backend for Fake<RETRY> {
        type Pending = Vec<u64>;
        type SlotState = ();
        type Target = ();
        type Conn = ();
        const THREAD: &'static str = "fake-sync";
        const MAX_BACKLOG: usize = 4;
        const MAX_ROUND: usize = 3;
        const CHANGE_SIZE: usize = 1;
        const RETRY_FAILED: bool = RETRY;
        fn push(p: &mut Vec<u64>, changes: &[(u64, Change)]) {
            p.extend(changes.iter().map(|c| c.0));
        }
        fn size(p: &Vec<u64>) -> usize {
            p.len()
        }
        fn take(from: &mut Vec<u64>, into: &mut Vec<u64>) {
            into.append(from);
        }
        fn split_off(p: &mut Vec<u64>, at: usize) -> Vec<u64> {
            p.split_off(at)
        }
        fn clear(p: &mut Vec<u64>) {
            p.clear();
        }
        fn target(&self, _: usize, _: &mut ()) {}
        fn commit(&self, _: usize, _: &mut (), _: &(), batch: &Vec<u64>, _: &Health) -> Result<Round, String> {
            // 2: a target that takes its time (the round waits until told otherwise); 3: every
            // round takes 100 ms.
            while self.fail.load(Ordering::Relaxed) == 2 {
                std::thread::sleep(Duration::from_millis(1));
            }
            if self.fail.load(Ordering::Relaxed) == 3 {
                std::thread::sleep(Duration::from_millis(100));
            }
            if self.fail.load(Ordering::Relaxed) == 1 {
                return Err("told to".into());
            }
            lock(&self.committed).push(batch.clone());
            Ok(Round::Durable)
        }
        fn failing(&self, slot: usize, reason: &str) -> String {
            format!("fake {slot}: {reason}")
        }
        fn recovered(&self, slot: usize, _: Duration) -> String {
            format!("fake {slot} again")
        }
    }

    fn change(seq: u64) -> [(u64, Change); 1] {
        [(seq, Change::Upsert(lease(1, LeaseState::Bound)))]
    }

    fn settle<B: Backend>(s: &Syncer<B>, ticket: u64) -> Option<bool> {
        crate::store::journal::tests::poll(|| s.settled(0, ticket))
    }

    fn run<const RETRY: bool>() -> (Vec<Vec<u64>>, Arc<Syncer<Fake<RETRY>>>) {
        let s = Syncer::start(Fake::<RETRY> { fail: AtomicU8::new(0), committed: Mutex::new(vec![]) }, vec![()])
            .expect("syncer");
        let t = s.append(0, &change(1)).expect("append");
        assert_eq!(settle(&s, t), Some(true));
        s.backend().fail.store(1, Ordering::Relaxed);
        let t = s.append(0, &change(2)).expect("append");
        assert_eq!(settle(&s, t), Some(false), "a failed round's ticket never settles as durable");
        assert!(s.health.failing.load(Ordering::Relaxed));
        s.backend().fail.store(0, Ordering::Relaxed);
        let t = s.append(0, &change(3)).expect("append");
        assert_eq!(settle(&s, t), Some(true), "serving resumes when the target does");
        assert!(!s.health.failing.load(Ordering::Relaxed));
        s.flush(Duration::from_secs(5)).expect("flush");
        let committed = lock(&s.backend().committed).clone();
        (committed, s)
    }

    #[test]
    fn a_retrying_backend_writes_a_failed_rounds_changes_with_the_next() {
        let (committed, _) = run::<true>();
        assert_eq!(committed, vec![vec![1], vec![2, 3]]);
    }

    #[test]
    fn a_dropping_backend_forgets_a_failed_rounds_changes() {
        let (committed, _) = run::<false>();
        assert_eq!(committed, vec![vec![1], vec![3]]);
    }

    #[test]
    fn a_full_backlog_refuses_the_batch_without_blocking() {
        let s = Syncer::start(Fake::<true> { fail: AtomicU8::new(1), committed: Mutex::new(vec![]) }, vec![()])
            .expect("syncer");
        let mut refused = 0;
        for seq in 0..20 {
            match s.append(0, &change(seq)) {
                Ok(_) => {}
                Err(StoreError::Backlog(n)) => {
                    assert!(n > 4);
                    refused += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(refused > 0, "the backlog bound was not applied");
        assert_eq!(s.health.dropped_batches.load(Ordering::Relaxed), refused);
        assert!(s.flush(Duration::from_millis(100)).is_err(), "a failing target does not flush");
    }

    /// A backlog built up behind a slow round goes in rounds of whole batches of at most
    /// `MAX_ROUND` (here 3), not in one; the lag is the age of the oldest change not yet durable.
    #[test]
    fn a_backlog_goes_in_rounds_of_whole_batches_and_the_lag_says_how_far_behind() {
        let s = Syncer::start(Fake::<false> { fail: AtomicU8::new(2), committed: Mutex::new(vec![]) }, vec![()])
            .expect("syncer");
        assert_eq!(s.lag(), Duration::ZERO);
        let first = s.append(0, &change(1)).expect("append");
        // The first round is under way (and held); four more batches queue behind it.
        assert!(crate::store::journal::tests::poll(|| (s.sync[0].in_flight_since.load(Ordering::Relaxed) > 0).then_some(())).is_some());
        let tickets: Vec<u64> = (2..=5).map(|seq| s.append(0, &change(seq)).expect("append")).collect();
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.lag() >= Duration::from_millis(50), "lag {:?}", s.lag());
        s.backend().fail.store(0, Ordering::Relaxed);
        for t in std::iter::once(first).chain(tickets) {
            assert_eq!(settle(&s, t), Some(true), "ticket {t}");
        }
        assert_eq!(lock(&s.backend().committed).clone(), vec![vec![1], vec![2, 3, 4], vec![5]]);
        assert!(
            crate::store::journal::tests::poll(|| (s.lag() == Duration::ZERO).then_some(())).is_some(),
            "caught up"
        );
        s.flush(Duration::from_secs(5)).expect("flush");
    }

    /// A burst behind a store whose rounds each take 100 ms counts at once — as many rounds as
    /// it fills, at the cost rounds have shown (what shedding needs to act before the burst
    /// has aged) — not only once its oldest change is old.
    #[test]
    fn the_lag_counts_a_burst_at_the_pace_of_the_last_round() {
        let s = Syncer::start(Fake::<false> { fail: AtomicU8::new(3), committed: Mutex::new(vec![]) }, vec![()])
            .expect("syncer");
        let t = s.append(0, &change(1)).expect("append");
        assert_eq!(settle(&s, t), Some(true));
        assert!(crate::store::journal::tests::poll(|| (s.lag() == Duration::ZERO).then_some(())).is_some());
        // One round of one change under way (≈100 ms), three more batches behind it: two rounds
        // of at most three.
        let handed = Instant::now();
        let tickets: Vec<u64> = (2..=5).map(|seq| s.append(0, &change(seq)).expect("append")).collect();
        let lag = s.lag();
        assert!(handed.elapsed() < Duration::from_millis(50), "the test was too slow to tell");
        assert!(lag >= Duration::from_millis(190), "a burst of two 100 ms rounds said {lag:?}");
        for t in tickets {
            assert_eq!(settle(&s, t), Some(true), "ticket {t}");
        }
        s.flush(Duration::from_secs(5)).expect("flush");
    }

    /// A round's cost is learnt as a fixed part (from small rounds) and a part per unit (from
    /// larger ones), so that many small rounds do not make a big backlog look short, nor a few
    /// slow small rounds make a backlog look long.
    #[test]
    fn a_rounds_cost_is_a_fixed_part_and_a_part_per_change() {
        let sync = SlotSync::default();
        for _ in 0..40 {
            sync.learn(4, 1, 3_000);
        }
        for _ in 0..40 {
            sync.learn(500, 1, 13_000);
        }
        let fixed = sync.round_fixed_us.load(Ordering::Relaxed);
        let per = sync.round_unit_ns.load(Ordering::Relaxed);
        assert!((2_900..=3_100).contains(&fixed), "fixed {fixed} µs");
        assert!((19_000..=21_000).contains(&per), "per change {per} ns");
        // 10 000 changes in rounds of 512: 20 rounds of 3 ms and 10 000 × 20 µs.
        let d = sync.drain_us(10_000, 512);
        assert!((250_000..=270_000).contains(&d), "{d} µs");
        assert_eq!(sync.drain_us(0, 512), 0);
        // One round takes everything (the journal): one fixed part.
        assert!((2_900..=3_300).contains(&sync.drain_us(10, u64::MAX)));
    }
}
