//! Cluster membership as state machines, without I/O: what a node decides from its heartbeats
//! and the database's node and block rows. The daemon's driver (`dhcp-xdp`'s
//! `store::cluster`) sends the heartbeats and runs the SQL; these machines decide.
//!
//! - [`Heartbeats`]: whether this node may serve. Heartbeat outcomes in (the live nodes and the
//!   database's clock, another daemon holding the name, or a failure), with the monotonic time
//!   each was sent; out: the serving deadline, (re)joins, the lease clock's offset, stand-downs.
//!   A node serves only while its last committed heartbeat is younger than takeover-after less
//!   half a heartbeat (before that, others take its buckets), and after a (re)join — a start, a
//!   lapse, a pause of the process longer than takeover-after — only from its second heartbeat:
//!   by then every other node has seen its row and given its buckets up.
//! - [`Membership`]: what a serving node holds. The live nodes in, once a heartbeat; out: the
//!   bucket map (bucket `b` is served by live node `b mod n`, in name order), takeovers of
//!   silent nodes, block renewals, claims and returns, pulls of other nodes' changes, and the
//!   stand-down of a node that is not live.
//!
//! Why an address is never held twice does not rest on these: the database has one row per
//! address and refuses to move a row another client holds. Buckets and blocks only keep nodes
//! from contending.

use std::{collections::BTreeSet, net::Ipv4Addr};

use dhcp_xdp_common::buckets;

use crate::leases::PoolGrants;

/// Heartbeats between two pulls of other nodes' lease changes.
pub const PULL_EVERY: u32 = 10;

/// A bucket bitmap, as the XDP program's map holds it.
pub type BucketBits = [u32; buckets::WORDS as usize];

/// A cluster's timing and this node's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// This node's name.
    pub node: String,
    /// Milliseconds between heartbeats.
    pub heartbeat_ms: u64,
    /// Milliseconds without a heartbeat after which a node counts as gone.
    pub takeover_after_ms: u64,
    /// Addresses per block.
    pub block_size: u32,
}

/// The bucket bitmap of node `me` among the sorted live `nodes` (none if it is not among them).
pub fn bucket_bits(nodes: &[String], me: &str) -> BucketBits {
    let mut bits = [0u32; buckets::WORDS as usize];
    if let Some(i) = nodes.iter().position(|n| n == me) {
        for b in 0..buckets::COUNT as usize {
            if b % nodes.len() == i {
                bits[b / 32] |= 1 << (b % 32);
            }
        }
    }
    bits
}

/// What one heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    /// Committed. `nodes`: the live nodes as the database says (sorted); `clock`: the host's
    /// clock before the database's clock was read, the database's clock, the host's clock
    /// after (Unix milliseconds).
    Live {
        /// The live nodes.
        nodes: Vec<String>,
        /// (host before, database, host after), Unix milliseconds.
        clock: (i64, i64, i64),
    },
    /// Another daemon (host, pid) holds this node's name.
    Taken {
        /// Its host.
        host: String,
        /// Its pid.
        pid: i32,
    },
    /// The database could not be reached or refused.
    Failed(String),
}

/// What the heartbeat machine wants said or done.
#[derive(Debug, Clone, PartialEq)]
pub enum HeartbeatEvent {
    /// The process was paused for this many milliseconds, longer than takeover-after: others
    /// have taken its buckets; it rejoins before it answers anyone.
    Paused(u64),
    /// First heartbeat after a (re)join: serving from the next.
    Joined(Vec<String>),
    /// Another daemon took the name: stand down and stop.
    Taken {
        /// Its host.
        host: String,
        /// Its pid.
        pid: i32,
    },
    /// The lease clock runs this many milliseconds ahead of the host's (the database's time).
    ClockOffset(i64),
    /// The offset crossed a second (logged once until it comes back under).
    ClockSkew(i64),
    /// Heartbeats started failing, for this reason.
    DatabaseDown(String),
    /// Heartbeats commit again after this many milliseconds.
    DatabaseBack(u64),
}

/// Whether this node may serve, from its heartbeats (see the module's description).
#[derive(Debug, Clone)]
pub struct Heartbeats {
    params: Params,
    /// Monotonic milliseconds until which this node may serve (0: not serving).
    serve_until: u64,
    /// Heartbeats committed since the last (re)join.
    beats: u32,
    /// When the last heartbeat was sent.
    last_sent: Option<u64>,
    /// The live nodes at the last heartbeat.
    live: Vec<String>,
    /// Another daemon took the name.
    taken: bool,
    /// A (re)join happened since [`take_rejoined`](Self::take_rejoined) last looked.
    rejoined: bool,
    /// Since when heartbeats fail.
    down_since: Option<u64>,
    /// An offset above a second was reported and has not come back under it since.
    skew_reported: bool,
}

impl Heartbeats {
    /// Not serving, not joined.
    pub fn new(params: Params) -> Self {
        Self {
            params,
            serve_until: 0,
            beats: 0,
            last_sent: None,
            live: vec![],
            taken: false,
            rejoined: false,
            down_since: None,
            skew_reported: false,
        }
    }

    /// Whether this node may answer anyone at monotonic `now`.
    pub fn serving(&self, now: u64) -> bool {
        now < self.serve_until
    }

    /// The monotonic deadline of serving (0: not serving).
    pub fn serve_until(&self) -> u64 {
        self.serve_until
    }

    /// The live nodes at the last committed heartbeat (this one included), sorted.
    pub fn live(&self) -> &[String] {
        &self.live
    }

    /// Whether another daemon took the name.
    pub fn taken(&self) -> bool {
        self.taken
    }

    /// Whether a (re)join happened since the last call.
    pub fn take_rejoined(&mut self) -> bool {
        std::mem::take(&mut self.rejoined)
    }

    fn rejoin(&mut self) {
        self.serve_until = 0;
        self.beats = 0;
        self.rejoined = true;
    }

    /// A heartbeat is being sent at monotonic `now`: a gap since the last one longer than
    /// takeover-after is a pause, and the node rejoins.
    pub fn sending(&mut self, now: u64) -> Option<HeartbeatEvent> {
        let paused =
            self.last_sent.map(|prev| now.saturating_sub(prev)).filter(|&gap| gap > self.params.takeover_after_ms);
        self.last_sent = Some(now);
        paused.map(|gap| {
            self.rejoin();
            HeartbeatEvent::Paused(gap)
        })
    }

    /// A reading of the database's clock between two of the host's (Unix milliseconds): the
    /// lease clock's offset, measured against the middle of the round trip, and a skew above
    /// a second reported once (again after it came back under a second).
    pub fn clock(&mut self, (before, db, after): (i64, i64, i64)) -> Vec<HeartbeatEvent> {
        let offset = db - before.midpoint(after);
        let mut out = vec![HeartbeatEvent::ClockOffset(offset)];
        if offset.abs() > 1000 {
            if !std::mem::replace(&mut self.skew_reported, true) {
                out.push(HeartbeatEvent::ClockSkew(offset));
            }
        } else {
            self.skew_reported = false;
        }
        out
    }

    /// The heartbeat sent at monotonic `sent` had outcome `beat`, known at monotonic `now`.
    pub fn outcome(&mut self, sent: u64, now: u64, beat: Beat) -> Vec<HeartbeatEvent> {
        let mut out = vec![];
        match beat {
            Beat::Taken { host, pid } => {
                self.serve_until = 0;
                self.taken = true;
                out.push(HeartbeatEvent::Taken { host, pid });
            }
            Beat::Live { mut nodes, clock } => {
                out.extend(self.clock(clock));
                if !nodes.contains(&self.params.node) {
                    nodes.push(self.params.node.clone());
                    nodes.sort();
                }
                self.live = nodes;
                if let Some(since) = self.down_since.take() {
                    out.push(HeartbeatEvent::DatabaseBack(now.saturating_sub(since)));
                }
                self.beats += 1;
                if self.beats >= 2 {
                    // From the moment this heartbeat was sent: conservative.
                    self.serve_until =
                        sent + self.params.takeover_after_ms.saturating_sub(self.params.heartbeat_ms / 2);
                } else {
                    out.push(HeartbeatEvent::Joined(self.live.clone()));
                }
            }
            Beat::Failed(reason) => {
                if self.down_since.is_none() {
                    self.down_since = Some(now);
                    out.push(HeartbeatEvent::DatabaseDown(reason));
                }
                // Past the deadline the others take over: a rejoin is due when it answers.
                if !self.serving(now) && self.beats > 0 {
                    self.rejoin();
                }
            }
        }
        out
    }
}

/// What the membership machine wants done, in order. Those that read the database hand their
/// result back ([`Membership::renewed`], [`Membership::claimed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Serve exactly these buckets (the XDP program's map).
    SetBuckets(BucketBits),
    /// A node joined (informational).
    Joined(String),
    /// A node went silent: read every lease it wrote into the tables (its clients rebind here).
    TakeOver(String),
    /// Read the lease changes other nodes committed since the last pull.
    Pull,
    /// Forget what was pulled: the next pull reads every change again.
    ForgetPulled,
    /// Register the pools' blocks when `register` (new tables), renew the blocks this node
    /// holds, and take its share of silent nodes' blocks (those whose `first / block_size mod
    /// live == index`); hand the result to [`Membership::renewed`].
    RenewBlocks {
        /// Register the pools' blocks first.
        register: bool,
        /// Live nodes.
        live: u32,
        /// This node's place among them.
        index: u32,
    },
    /// Read the leases in these blocks into the tables, then grant their addresses here.
    Take(Vec<Ipv4Addr>),
    /// Grant these blocks' addresses here (again: a no-op for blocks already granted).
    Grant(Vec<Ipv4Addr>),
    /// Stop giving out these blocks' addresses here.
    Revoke(Vec<Ipv4Addr>),
    /// Claim up to `count` blocks between `first` and `last` (unowned first); hand the result
    /// to [`Membership::claimed`].
    Claim {
        /// The pool's first address.
        first: Ipv4Addr,
        /// Its last.
        last: Ipv4Addr,
        /// Blocks wanted.
        count: u32,
    },
    /// Give these blocks back in the database (revoked here already).
    Return(Vec<Ipv4Addr>),
    /// The node gave up its buckets and blocks: not live (informational).
    StoodDown,
}

/// What a serving node holds, and what it decides once a heartbeat and between heartbeats.
#[derive(Debug, Clone)]
pub struct Membership {
    params: Params,
    /// The live nodes this machine last acted on.
    live: Vec<String>,
    /// Blocks held (by first address), as the database last confirmed.
    held: BTreeSet<Ipv4Addr>,
    /// Bucket bitmap last asked for.
    served: Option<BucketBits>,
    /// The tables in force had their blocks registered and granted.
    registered: bool,
    /// Rounds since the last (re)join.
    rounds: u32,
    /// Addresses held by leases per pool at the last balancing, and when that was.
    used: Vec<u64>,
    balanced_at: Option<u64>,
}

impl Membership {
    /// Holding nothing.
    pub fn new(params: Params) -> Self {
        Self {
            params,
            live: vec![],
            held: BTreeSet::new(),
            served: None,
            registered: false,
            rounds: 0,
            used: vec![],
            balanced_at: None,
        }
    }

    /// Blocks held.
    pub fn held(&self) -> &BTreeSet<Ipv4Addr> {
        &self.held
    }

    /// The live nodes acted on last.
    pub fn live(&self) -> &[String] {
        &self.live
    }

    /// Writing the bucket map failed: it is asked for again at the next round.
    pub fn buckets_failed(&mut self) {
        self.served = None;
    }

    /// A reload replaced the lease tables: their blocks are registered and granted again.
    pub fn tables_replaced(&mut self) {
        self.registered = false;
    }

    /// Not live (joining, lapsed, paused, taken): nothing served, nothing allocated. `rejoined`:
    /// a (re)join happened, so whatever happened meanwhile is read again in full once it serves.
    pub fn stand_down(&mut self, rejoined: bool) -> Vec<Action> {
        let mut out = vec![];
        let serving_any = self.served.is_some_and(|b| b.iter().any(|w| *w != 0));
        if !self.held.is_empty() || serving_any {
            out.push(Action::StoodDown);
        }
        if !self.held.is_empty() {
            out.push(Action::Revoke(std::mem::take(&mut self.held).into_iter().collect()));
        }
        if self.served != Some([0; buckets::WORDS as usize]) {
            self.served = Some([0; buckets::WORDS as usize]);
            out.push(Action::SetBuckets([0; buckets::WORDS as usize]));
        }
        self.live.clear();
        self.registered = false;
        if rejoined {
            self.rounds = 0;
            out.push(Action::ForgetPulled);
        }
        out
    }

    /// Once a heartbeat, while serving, with the live nodes it saw: takeovers of nodes that
    /// went silent, the first pull after a (re)join, the bucket map, then the blocks
    /// ([`Action::RenewBlocks`], whose result goes to [`renewed`](Self::renewed)).
    pub fn round(&mut self, live: &[String]) -> Vec<Action> {
        let mut out = vec![];
        let first = self.live.is_empty();
        for n in &self.live {
            if !live.contains(n) {
                out.push(Action::TakeOver(n.clone()));
            }
        }
        if !first {
            for n in live {
                if !self.live.contains(n) {
                    out.push(Action::Joined(n.clone()));
                }
            }
        }
        self.live = live.to_vec();
        // A (re)joined node reads everything first: other nodes' changes since it left.
        if self.rounds == 0 {
            out.push(Action::Pull);
        }
        let bits = bucket_bits(live, &self.params.node);
        if self.served != Some(bits) {
            self.served = Some(bits);
            out.push(Action::SetBuckets(bits));
        }
        let index = live.iter().position(|n| *n == self.params.node).unwrap_or(0);
        out.push(Action::RenewBlocks {
            register: !self.registered,
            live: live.len().max(1) as u32,
            index: index as u32,
        });
        out
    }

    /// The database renewed `mine` (the blocks it says are ours) and gave us `taken` (silent
    /// nodes' blocks): blocks someone else took while we were away are revoked, ours granted,
    /// the taken ones read and granted.
    pub fn renewed(&mut self, mine: BTreeSet<Ipv4Addr>, taken: Vec<Ipv4Addr>) -> Vec<Action> {
        let mut out = vec![];
        let lost: Vec<Ipv4Addr> = self.held.difference(&mine).copied().collect();
        if !lost.is_empty() {
            out.push(Action::Revoke(lost));
        }
        if !mine.is_empty() {
            out.push(Action::Grant(mine.iter().copied().collect()));
        }
        self.held = mine;
        self.registered = true;
        if !taken.is_empty() {
            self.held.extend(taken.iter().copied());
            out.push(Action::Take(taken));
        }
        out
    }

    /// The end of a round: a pull every [`PULL_EVERY`] rounds.
    pub fn round_done(&mut self) -> Vec<Action> {
        self.rounds = self.rounds.wrapping_add(1);
        if self.rounds.is_multiple_of(PULL_EVERY) { vec![Action::Pull] } else { vec![] }
    }

    /// Keeps enough free addresses in hand per pool, at monotonic `now`, from `pools` (this
    /// node's share of each) and `busy` (whether a lease holds an address of a held block):
    /// claims blocks (unowned first) when fewer are free than the last allocation rate needs
    /// for two heartbeats (and at least half what is in use, and half its share of the pool),
    /// hands back one block no lease holds when more than twice that is free.
    pub fn balance(&mut self, now: u64, pools: &[PoolGrants], busy: impl Fn(Ipv4Addr) -> bool) -> Vec<Action> {
        let block = u64::from(self.params.block_size.max(1));
        let elapsed = (now.saturating_sub(self.balanced_at.unwrap_or(now)) as f64 / 1000.0).max(0.05);
        self.balanced_at = Some(now);
        let heartbeat_s = self.params.heartbeat_ms as f64 / 1000.0;
        let mut out = vec![];
        let mut returned = vec![];
        for (i, p) in pools.iter().enumerate() {
            let before = self.used.get(i).copied().unwrap_or(p.used);
            let per_s = p.used.saturating_sub(before) as f64 / elapsed;
            // Two heartbeats at the recent rate, half again what is in use, and a floor of half
            // this node's share of the pool: a burst of new clients at start finds addresses in
            // hand instead of waiting for claims (a dropped DISCOVER costs the client a
            // retransmission), and half the pool stays unowned for whoever grows.
            let size = u64::from(u32::from(p.last) - u32::from(p.first) + 1);
            let share = size / (2 * self.live.len().max(1) as u64);
            let floor = share.max(block);
            let want = floor.max((2.0 * per_s * heartbeat_s) as u64).max(p.used / 2);
            let free = p.held.saturating_sub(p.used);
            if free < want {
                let count = (want - free).div_ceil(block);
                out.push(Action::Claim { first: p.first, last: p.last, count: count.min(u64::from(u32::MAX)) as u32 });
            } else if free > 2 * want + block
                && let Some(b) = self.held.iter().find(|b| (p.first..=p.last).contains(*b) && !busy(**b)).copied()
            {
                // Ungranted here first: no client is given one of its addresses from now on.
                self.held.remove(&b);
                returned.push(b);
            }
        }
        self.used = pools.iter().map(|p| p.used).collect();
        if !returned.is_empty() {
            out.push(Action::Revoke(returned.clone()));
            out.push(Action::Return(returned));
        }
        out
    }

    /// The database gave us `blocks` for a claim: read their leases and grant them.
    pub fn claimed(&mut self, blocks: Vec<Ipv4Addr>) -> Vec<Action> {
        if blocks.is_empty() {
            return vec![];
        }
        self.held.extend(blocks.iter().copied());
        vec![Action::Take(blocks)]
    }
}

#[cfg(test)]
mod tests;
