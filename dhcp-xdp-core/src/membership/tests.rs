use std::collections::{BTreeMap, BTreeSet};

use super::*;

const HB: u64 = 1000;
const TAKEOVER: u64 = 3000;
const BLOCK: u32 = 16;

fn params(node: &str) -> Params {
    Params { node: node.into(), heartbeat_ms: HB, takeover_after_ms: TAKEOVER, block_size: BLOCK }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn live(nodes: &[&str]) -> Beat {
    Beat::Live { nodes: names(nodes), clock: (1_000_000, 1_000_010, 1_000_020) }
}

fn count(bits: &BucketBits) -> u32 {
    bits.iter().map(|w| w.count_ones()).sum()
}

#[test]
fn buckets_are_divided_among_live_nodes_by_name() {
    let nodes = names(&["a", "b", "c"]);
    let bits: Vec<_> = nodes.iter().map(|n| bucket_bits(&nodes, n)).collect();
    for ((a, b), c) in bits[0].iter().zip(&bits[1]).zip(&bits[2]) {
        assert_eq!(a | b | c, u32::MAX, "every bucket served");
        assert_eq!((a & b, b & c, a & c), (0, 0, 0), "no bucket twice");
    }
    assert_eq!((count(&bits[0]), count(&bits[1]), count(&bits[2])), (86, 85, 85));
    assert_eq!(bucket_bits(&nodes, "z"), [0; 8], "a node not live serves nothing");
    assert_eq!(bucket_bits(&nodes[..1], "a"), [u32::MAX; 8], "alone, it serves all");
}

#[test]
fn a_node_serves_from_its_second_heartbeat_until_takeover_less_half_a_heartbeat() {
    let mut h = Heartbeats::new(params("a"));
    assert!(!h.serving(0));
    assert_eq!(h.sending(0), None);
    let ev = h.outcome(0, 5, live(&["a"]));
    assert!(ev.contains(&HeartbeatEvent::Joined(names(&["a"]))), "{ev:?}");
    assert!(!h.serving(10), "not from the first heartbeat");
    assert!(h.take_rejoined() || h.live() == names(&["a"]));
    h.sending(HB);
    let ev = h.outcome(HB, HB + 5, live(&["a"]));
    assert!(!ev.iter().any(|e| matches!(e, HeartbeatEvent::Joined(_))));
    assert!(h.serving(HB + 10));
    assert_eq!(h.serve_until(), HB + TAKEOVER - HB / 2, "from when the heartbeat was sent");
    assert!(!h.serving(HB + TAKEOVER - HB / 2), "lapsed without another heartbeat");
}

#[test]
fn a_partitioned_node_stops_serving_before_the_others_take_over_and_rejoins_after() {
    let mut h = Heartbeats::new(params("a"));
    for t in [0, HB] {
        h.sending(t);
        h.outcome(t, t, live(&["a", "b"]));
    }
    h.take_rejoined();
    assert!(h.serving(HB + 1));
    // The database goes away: every heartbeat fails.
    let mut down_reported = 0;
    let mut t = 2 * HB;
    while t < 6 * HB {
        h.sending(t);
        for e in h.outcome(t, t, Beat::Failed("connection refused".into())) {
            if matches!(e, HeartbeatEvent::DatabaseDown(_)) {
                down_reported += 1;
            }
        }
        // The others count it gone once its last heartbeat (sent at HB) is TAKEOVER old.
        if t >= HB + TAKEOVER {
            assert!(!h.serving(t), "still serving at {t} after the others took over");
        }
        t += HB;
    }
    assert_eq!(down_reported, 1, "reported once");
    assert!(h.take_rejoined(), "a lapse is a rejoin");
    // Back: two heartbeats before it serves again.
    h.sending(t);
    let ev = h.outcome(t, t + 3, live(&["a", "b"]));
    assert!(ev.iter().any(|e| matches!(e, HeartbeatEvent::DatabaseBack(_))), "{ev:?}");
    assert!(ev.iter().any(|e| matches!(e, HeartbeatEvent::Joined(_))), "{ev:?}");
    assert!(!h.serving(t + 5));
    h.sending(t + HB);
    h.outcome(t + HB, t + HB, live(&["a", "b"]));
    assert!(h.serving(t + HB + 1));
}

#[test]
fn a_pause_longer_than_takeover_after_is_a_rejoin() {
    let mut h = Heartbeats::new(params("a"));
    for t in [0, HB] {
        h.sending(t);
        h.outcome(t, t, live(&["a"]));
    }
    h.take_rejoined();
    // SIGSTOP for twice takeover-after: the next heartbeat notices the gap.
    let resumed = HB + 2 * TAKEOVER;
    assert!(!h.serving(resumed), "the deadline passed while paused");
    assert_eq!(h.sending(resumed), Some(HeartbeatEvent::Paused(2 * TAKEOVER)));
    assert!(h.take_rejoined());
    h.outcome(resumed, resumed, live(&["a"]));
    assert!(!h.serving(resumed + 1), "not from the first heartbeat after the pause");
    // A gap just under takeover-after is no pause.
    h.sending(resumed + TAKEOVER);
    h.outcome(resumed + TAKEOVER, resumed + TAKEOVER, live(&["a"]));
    assert!(h.serving(resumed + TAKEOVER + 1));
    assert!(!h.take_rejoined());
}

#[test]
fn a_taken_name_stands_the_node_down() {
    let mut h = Heartbeats::new(params("a"));
    for t in [0, HB] {
        h.sending(t);
        h.outcome(t, t, live(&["a"]));
    }
    let ev = h.outcome(2 * HB, 2 * HB, Beat::Taken { host: "other".into(), pid: 7 });
    assert_eq!(ev, vec![HeartbeatEvent::Taken { host: "other".into(), pid: 7 }]);
    assert!(h.taken() && !h.serving(2 * HB));
}

#[test]
fn the_lease_clock_follows_the_database_and_a_skew_is_reported_once() {
    let mut h = Heartbeats::new(params("a"));
    // The database reads 15 min behind this host's clock (this node runs ahead).
    let ahead = |host: i64| (host, host - 900_000, host + 20);
    let ev = h.clock(ahead(1_000_000));
    assert_eq!(ev, vec![HeartbeatEvent::ClockOffset(-900_010), HeartbeatEvent::ClockSkew(-900_010)]);
    let ev = h.outcome(0, 0, Beat::Live { nodes: names(&["a"]), clock: ahead(2_000_000) });
    assert!(ev.contains(&HeartbeatEvent::ClockOffset(-900_010)));
    assert!(!ev.iter().any(|e| matches!(e, HeartbeatEvent::ClockSkew(_))), "reported once: {ev:?}");
    // Corrected, then skewed again: reported again.
    assert_eq!(h.clock((0, 510, 20)), vec![HeartbeatEvent::ClockOffset(500)]);
    assert_eq!(h.clock((0, 2010, 20)), vec![HeartbeatEvent::ClockOffset(2000), HeartbeatEvent::ClockSkew(2000)]);
}

#[test]
fn a_round_takes_over_silent_nodes_and_divides_buckets_among_the_live() {
    let mut m = Membership::new(params("b"));
    let first = m.round(&names(&["a", "b"]));
    assert_eq!(first[0], Action::Pull, "a (re)joined node reads every change first");
    assert!(matches!(first[1], Action::SetBuckets(b) if count(&b) == 128));
    assert_eq!(first[2], Action::RenewBlocks { register: true, live: 2, index: 1 });
    assert!(!first.iter().any(|a| matches!(a, Action::Joined(_) | Action::TakeOver(_))), "{first:?}");
    m.renewed(BTreeSet::new(), vec![]);
    m.round_done();
    // c joins.
    let acts = m.round(&names(&["a", "b", "c"]));
    assert!(acts.contains(&Action::Joined("c".into())), "{acts:?}");
    assert!(acts.iter().any(|a| matches!(a, Action::SetBuckets(b) if count(b) == 85)), "{acts:?}");
    assert!(acts.contains(&Action::RenewBlocks { register: false, live: 3, index: 1 }));
    m.round_done();
    // a dies.
    let acts = m.round(&names(&["b", "c"]));
    assert_eq!(acts[0], Action::TakeOver("a".into()));
    assert!(acts.contains(&Action::RenewBlocks { register: false, live: 2, index: 0 }));
    m.round_done();
    // The same live nodes: the bucket map is not written again.
    let acts = m.round(&names(&["b", "c"]));
    assert!(!acts.iter().any(|a| matches!(a, Action::SetBuckets(_))), "{acts:?}");
}

#[test]
fn a_pull_runs_after_a_rejoin_and_every_pull_every_rounds() {
    let mut m = Membership::new(params("a"));
    let mut pulls = vec![];
    for r in 0..25u32 {
        let acts = [m.round(&names(&["a"])), m.round_done()].concat();
        if acts.contains(&Action::Pull) {
            pulls.push(r);
        }
    }
    assert_eq!(pulls, vec![0, 9, 19]);
    let down = m.stand_down(true);
    assert!(down.contains(&Action::ForgetPulled));
    assert_eq!(m.round(&names(&["a"]))[0], Action::Pull, "read again in full after a rejoin");
}

#[test]
fn a_stand_down_gives_everything_up_once() {
    let mut m = Membership::new(params("a"));
    m.round(&names(&["a"]));
    let b1 = Ipv4Addr::new(198, 18, 0, 0);
    let acts = m.renewed(BTreeSet::from([b1]), vec![Ipv4Addr::new(198, 18, 0, 16)]);
    assert_eq!(acts, vec![Action::Grant(vec![b1]), Action::Take(vec![Ipv4Addr::new(198, 18, 0, 16)])]);
    let down = m.stand_down(false);
    assert_eq!(down[0], Action::StoodDown);
    assert!(down.contains(&Action::Revoke(vec![b1, Ipv4Addr::new(198, 18, 0, 16)])), "{down:?}");
    assert!(down.contains(&Action::SetBuckets([0; 8])));
    assert!(m.held().is_empty());
    assert_eq!(m.stand_down(false), vec![], "nothing more to give up, nothing written again");
    // Renewed while away: a block someone else took is revoked here.
    m.round(&names(&["a"]));
    m.renewed(BTreeSet::from([b1]), vec![]);
    let acts = m.renewed(BTreeSet::new(), vec![]);
    assert_eq!(acts, vec![Action::Revoke(vec![b1])]);
}

#[test]
fn balancing_claims_what_the_rate_needs_and_returns_idle_blocks() {
    let mut m = Membership::new(params("a"));
    m.round(&names(&["a", "b"]));
    let (first, last) = (Ipv4Addr::new(198, 18, 0, 0), Ipv4Addr::new(198, 18, 3, 255));
    let pool = |held: u64, used: u64| PoolGrants { first, last, held, used };
    // Nothing held: claim half this node's share (1024 / 2 nodes / 2 = 256 → 16 blocks).
    assert_eq!(m.balance(0, &[pool(0, 0)], |_| false), vec![Action::Claim { first, last, count: 16 }]);
    let got: Vec<Ipv4Addr> = (0..16u32).map(|i| Ipv4Addr::from(u32::from(first) + i * BLOCK)).collect();
    assert_eq!(m.claimed(got.clone()), vec![Action::Take(got.clone())]);
    // 200 new clients in 250 ms: 800/s, two heartbeats' worth is 1600: claim more.
    let acts = m.balance(250, &[pool(256, 200)], |_| true);
    assert_eq!(acts, vec![Action::Claim { first, last, count: (1600 - 56u64).div_ceil(16) as u32 }]);
    // Quiet, and far more free than needed: one idle block goes back.
    let mut m2 = Membership::new(params("a"));
    m2.round(&names(&["a", "b"]));
    m2.claimed(got.clone());
    let idle = got[3];
    let acts = m2.balance(0, &[pool(1024, 0)], |b| b != idle);
    assert_eq!(acts, vec![Action::Revoke(vec![idle]), Action::Return(vec![idle])]);
    assert!(!m2.held().contains(&idle));
}

// --- A cluster of nodes against a database that does what the daemon's SQL does. ---

/// The database: node heartbeats, and blocks with owner and expiry (monotonic ms; one clock).
struct Db {
    heartbeats: BTreeMap<String, u64>,
    blocks: BTreeMap<Ipv4Addr, (Option<String>, u64)>,
}

impl Db {
    fn new(pool: (Ipv4Addr, Ipv4Addr)) -> Self {
        let blocks = (u32::from(pool.0)..=u32::from(pool.1))
            .step_by(BLOCK as usize)
            .map(|a| (Ipv4Addr::from(a), (None, 0)))
            .collect();
        Self { heartbeats: BTreeMap::new(), blocks }
    }

    fn beat(&mut self, node: &str, now: u64) -> Vec<String> {
        self.heartbeats.insert(node.into(), now);
        self.heartbeats.iter().filter(|(_, t)| now.saturating_sub(**t) < TAKEOVER).map(|(n, _)| n.clone()).collect()
    }

    fn renew(&mut self, node: &str, live: u32, index: u32, now: u64) -> (BTreeSet<Ipv4Addr>, Vec<Ipv4Addr>) {
        let mut mine = BTreeSet::new();
        let mut taken = vec![];
        for (first, (owner, expires)) in self.blocks.iter_mut() {
            match owner {
                Some(o) if o == node => {
                    *expires = now + TAKEOVER;
                    mine.insert(*first);
                }
                Some(_) if *expires < now && (u32::from(*first) / BLOCK) % live == index => {
                    *owner = Some(node.into());
                    *expires = now + TAKEOVER;
                    taken.push(*first);
                }
                _ => {}
            }
        }
        (mine, taken)
    }

    fn claim(&mut self, node: &str, first: Ipv4Addr, last: Ipv4Addr, count: u32, now: u64) -> Vec<Ipv4Addr> {
        let mut free: Vec<(bool, Ipv4Addr)> = self
            .blocks
            .iter()
            .filter(|(b, (o, e))| (first..=last).contains(*b) && (o.is_none() || *e < now))
            .map(|(b, (o, _))| (o.is_some(), *b))
            .collect();
        free.sort();
        free.truncate(count as usize);
        for (_, b) in &free {
            self.blocks.insert(*b, (Some(node.into()), now + TAKEOVER));
        }
        free.into_iter().map(|(_, b)| b).collect()
    }

    fn give_back(&mut self, node: &str, blocks: &[Ipv4Addr]) {
        for b in blocks {
            if let Some((owner, _)) = self.blocks.get_mut(b)
                && owner.as_deref() == Some(node)
            {
                *owner = None;
            }
        }
    }
}

/// One node: its two machines, the blocks granted in its tables, its bucket map.
struct Node {
    name: String,
    hb: Heartbeats,
    m: Membership,
    granted: BTreeSet<Ipv4Addr>,
    buckets: BucketBits,
    /// Heartbeats go out at `phase` + k × HB.
    phase: u64,
    /// Reaches the database.
    reachable: bool,
    /// Running (a paused or dead node does nothing).
    running: bool,
    takeovers: Vec<String>,
}

struct Cluster {
    db: Db,
    nodes: Vec<Node>,
    pool: (Ipv4Addr, Ipv4Addr),
    now: u64,
}

impl Cluster {
    fn new(n: usize) -> Self {
        let pool = (Ipv4Addr::new(198, 18, 0, 0), Ipv4Addr::new(198, 18, 3, 255));
        let nodes = (0..n)
            .map(|i| {
                let name = format!("n{i}");
                Node {
                    hb: Heartbeats::new(params(&name)),
                    m: Membership::new(params(&name)),
                    name,
                    granted: BTreeSet::new(),
                    buckets: [0; 8],
                    phase: (i as u64 * 130) % HB,
                    reachable: true,
                    running: true,
                    takeovers: vec![],
                }
            })
            .collect();
        Self { db: Db::new(pool), nodes, pool, now: 0 }
    }

    fn node(&mut self, name: &str) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.name == name).expect("node")
    }

    fn apply(db: &mut Db, n: &mut Node, acts: Vec<Action>, now: u64) {
        let mut queue: std::collections::VecDeque<Action> = acts.into();
        while let Some(a) = queue.pop_front() {
            match a {
                Action::SetBuckets(b) => n.buckets = b,
                Action::TakeOver(x) => n.takeovers.push(x),
                Action::RenewBlocks { live, index, .. } => {
                    let (mine, taken) = db.renew(&n.name, live, index, now);
                    queue.extend(n.m.renewed(mine, taken));
                }
                Action::Take(bs) | Action::Grant(bs) => n.granted.extend(bs),
                Action::Revoke(bs) => bs.iter().for_each(|b| {
                    n.granted.remove(b);
                }),
                Action::Claim { first, last, count } => {
                    let got = db.claim(&n.name, first, last, count, now);
                    queue.extend(n.m.claimed(got));
                }
                Action::Return(bs) => db.give_back(&n.name, &bs),
                Action::Pull | Action::ForgetPulled | Action::Joined(_) | Action::StoodDown => {}
            }
        }
    }

    /// Runs every node's heartbeat (and, when serving, its round and balancing) that falls in
    /// the next `ms`, 10 ms at a time, checking the invariants at every step.
    fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 10;
            let now = self.now;
            let pool = self.pool;
            for n in self.nodes.iter_mut().filter(|n| n.running) {
                if now % HB != n.phase {
                    continue;
                }
                n.hb.sending(now);
                let beat = if n.reachable {
                    Beat::Live { nodes: self.db.beat(&n.name, now), clock: (now as i64, now as i64, now as i64) }
                } else {
                    Beat::Failed("unreachable".into())
                };
                n.hb.outcome(now, now, beat);
                if n.hb.serving(now) && n.reachable {
                    let live = n.hb.live().to_vec();
                    let mut acts = n.m.round(&live);
                    Self::apply(&mut self.db, n, std::mem::take(&mut acts), now);
                    let held = n.granted.len() as u64 * u64::from(BLOCK);
                    let grants = [PoolGrants { first: pool.0, last: pool.1, held, used: 0 }];
                    let acts = n.m.balance(now, &grants, |_| false);
                    Self::apply(&mut self.db, n, acts, now);
                    let acts = n.m.round_done();
                    Self::apply(&mut self.db, n, acts, now);
                } else if !n.hb.serving(now) {
                    let rejoined = n.hb.take_rejoined();
                    let acts = n.m.stand_down(rejoined);
                    Self::apply(&mut self.db, n, acts, now);
                }
            }
            self.check_blocks();
        }
    }

    fn serving(&self) -> Vec<&Node> {
        self.nodes.iter().filter(|n| n.running && n.hb.serving(self.now)).collect()
    }

    /// No block is given out by two serving nodes, ever.
    fn check_blocks(&self) {
        let mut seen: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
        for n in self.serving() {
            for b in &n.granted {
                if let Some(other) = seen.insert(*b, &n.name) {
                    panic!("at {} ms block {b} is granted by {other} and {}", self.now, n.name);
                }
            }
        }
    }

    /// Settled: every bucket is served by exactly one serving node, and only serving nodes
    /// have buckets; every serving node holds blocks.
    fn check_settled(&self, expect_serving: &[&str]) {
        let serving: Vec<&str> = self.serving().iter().map(|n| n.name.as_str()).collect();
        assert_eq!(serving, expect_serving, "at {} ms", self.now);
        let mut union = [0u32; 8];
        for n in self.nodes.iter().filter(|n| n.running) {
            if !n.hb.serving(self.now) {
                assert_eq!(n.buckets, [0; 8], "{} is not live but serves buckets", n.name);
                assert!(n.granted.is_empty(), "{} is not live but grants blocks", n.name);
                continue;
            }
            for (u, w) in union.iter_mut().zip(n.buckets) {
                assert_eq!(*u & w, 0, "a bucket served twice at {} ms", self.now);
                *u |= w;
            }
            assert!(!n.granted.is_empty(), "{} serves but holds no block", n.name);
        }
        assert_eq!(union, [u32::MAX; 8], "a bucket nobody serves at {} ms", self.now);
    }
}

fn all(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Start, a death and its takeover, a rejoin, a partition and a pause, for `n` nodes.
fn life_of_a_cluster(n: usize) {
    let mut c = Cluster::new(n);
    let everyone = all(n);
    c.run(4 * HB);
    c.check_settled(&strs(&everyone));
    // The last node dies (SIGKILL): after takeover-after the others serve its buckets and
    // have taken its blocks.
    let dead = everyone[n - 1].clone();
    c.node(&dead).running = false;
    c.run(TAKEOVER + 3 * HB);
    c.check_settled(&strs(&everyone[..n - 1]));
    assert!(c.nodes.iter().any(|x| x.takeovers.contains(&dead)), "nobody took over {dead}");
    let blocks_of_dead = c.db.blocks.values().filter(|(o, _)| o.as_deref() == Some(dead.as_str())).count();
    assert_eq!(blocks_of_dead, 0, "its blocks were shared out");
    // It restarts (new machines, as a new process): it serves again from its second heartbeat.
    let d = c.node(&dead);
    d.hb = Heartbeats::new(params(&dead));
    d.m = Membership::new(params(&dead));
    d.granted.clear();
    d.buckets = [0; 8];
    d.running = true;
    c.run(4 * HB);
    c.check_settled(&strs(&everyone));
    // The first node loses the database (a partition): it stops serving before anyone takes
    // its blocks (checked at every step), the others divide its buckets.
    let cut = everyone[0].clone();
    c.node(&cut).reachable = false;
    c.run(TAKEOVER + 3 * HB);
    c.check_settled(&strs(&everyone[1..]));
    c.node(&cut).reachable = true;
    c.run(4 * HB);
    c.check_settled(&strs(&everyone));
    // The second node is paused (SIGSTOP) for twice takeover-after, then resumes.
    let paused = everyone[1].clone();
    c.node(&paused).running = false;
    c.run(2 * TAKEOVER);
    let others: Vec<String> = everyone.iter().filter(|x| **x != paused).cloned().collect();
    c.check_settled(&strs(&others));
    c.node(&paused).running = true;
    // Resumed: it must not serve on its old deadline, nor before its second heartbeat.
    let now = c.now;
    assert!(!c.node(&paused).hb.serving(now));
    c.run(HB + 10);
    let now = c.now;
    assert!(!c.node(&paused).hb.serving(now), "served from the first heartbeat after the pause");
    c.run(4 * HB);
    c.check_settled(&strs(&everyone));
}

#[test]
fn three_nodes_start_lose_one_take_over_rejoin_partition_and_pause() {
    life_of_a_cluster(3);
}

#[test]
fn five_nodes_start_lose_one_take_over_rejoin_partition_and_pause() {
    life_of_a_cluster(5);
}

#[test]
fn one_node_alone_serves_everything() {
    life_of_a_cluster(2);
    let mut c = Cluster::new(1);
    c.run(3 * HB);
    c.check_settled(&["n0"]);
    assert_eq!(c.nodes[0].buckets, [u32::MAX; 8]);
}
