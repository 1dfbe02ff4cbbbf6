//! The DHCPv4 engine on the datapath: one [`EngineHandler`] per worker (on its own shard,
//! with frames of clients held elsewhere decided under the holding shard's lock) and its
//! message counters. It must never hold two shard locks at once, nor let a reply that promises
//! a lease leave before the lease store says its change is durable.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use dhcp_xdp_core::{
    engine4::{Engine, MsgCounter},
    leases::Change,
};

use crate::{
    clock::unix_now,
    handler::{DropReason, FrameMeta, Handler, Job, Release, Verdict},
    serve::{Runtime, Shared},
};

/// Message counters of one worker.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// One slot per [`MsgCounter`].
    pub counts: [AtomicU64; MsgCounter::COUNT],
    /// One slot per DHCPv6 [`Counter6`](dhcp_xdp_core::engine6::Counter6).
    pub counts6: [AtomicU64; dhcp_xdp_core::engine6::Counter6::COUNT],
}

impl EngineStats {
    /// The value of one counter.
    pub fn get(&self, c: MsgCounter) -> u64 {
        self.counts[c.slot()].load(Ordering::Relaxed)
    }

    /// `name=value` pairs.
    pub fn render(&self) -> String {
        MsgCounter::ALL.iter().map(|c| format!("{}={}", c.name(), self.get(*c))).collect::<Vec<_>>().join(" ")
    }
}

/// The engine as a datapath handler for one worker.
pub struct EngineHandler {
    shared: Arc<Shared>,
    shard: usize,
    engine: Box<Engine>,
    rt: Arc<Runtime>,
    now: u32,
    /// Changes of the frames being decided under one lock.
    changes: Vec<Change>,
    /// This batch's changes, numbered.
    stamped: Vec<(u64, Change)>,
    /// Frames of this batch to decide in another shard: (job index, shard).
    redirects: Vec<(usize, usize)>,
    stats: Arc<EngineStats>,
    /// Cluster mode: this node is not live (joining, lapsed, resumed from a pause) for this
    /// batch: it answers nobody.
    standby: bool,
    /// The DHCPv6 side.
    v6: crate::serve6::Handler6,
    /// This batch's DHCPv4 frames (indexes into the jobs).
    v4_jobs: Vec<usize>,
    /// This batch's leasequeries (indexes into the jobs), answered after the engine's frames.
    leasequeries: Vec<usize>,
}

impl EngineHandler {
    /// Handler for the worker `meta`, on its own shard.
    pub fn new(shared: Arc<Shared>, meta: FrameMeta) -> Self {
        let rt = shared.runtime();
        let shard = shared.shard_of_worker(&meta);
        let stats = shared.stats[shard % shared.stats.len()].clone();
        Self {
            shared,
            shard,
            engine: Box::new(Engine::new()),
            standby: false,
            rt,
            now: 0,
            changes: Vec::with_capacity(256),
            stamped: Vec::with_capacity(256),
            redirects: Vec::new(),
            stats,
            v6: Default::default(),
            v4_jobs: Vec::with_capacity(256),
            leasequeries: Vec::new(),
        }
    }

    /// Decides `jobs[i]` for every `i` in `which` under the lock of shard `shard` (the worker's
    /// own, or one its frames were redirected to), and numbers their changes under that lock.
    fn decide_in(
        &mut self,
        shard: usize,
        jobs: &mut [Job<'_>],
        which: &[usize],
        counts: &mut [u64; MsgCounter::COUNT],
        own: bool,
    ) {
        let mut g = self.rt.db.lock(shard);
        if self.rt.db.is_retired() {
            // A reload rebuilt the tables while we waited for this lock.
            drop(g);
            self.rt = self.shared.runtime();
            g = self.rt.db.lock(shard);
        }
        let forensic = self.shared.forensic.get();
        for &i in which {
            let job = &mut jobs[i];
            let (verdict, outcome) =
                self.engine.handle(self.now, &self.rt.cfg, &self.shared.server, &mut g, job.buf, job.len);
            if verdict == Verdict::Drop(DropReason::LeaseQuery) {
                // Answered after the batch, with no shard held (it may look at every one).
                self.leasequeries.push(i);
                continue;
            }
            if let Some(log) = forensic {
                log.dhcp4(u64::from(self.now), job.buf, verdict, &outcome, self.engine.kept_name());
            }
            if verdict == Verdict::Drop(DropReason::Redirected) {
                match self.engine.take_redirect() {
                    Some(home) if own => {
                        // Decided after this batch, in the shard that holds the client.
                        self.redirects.push((i, home));
                        continue;
                    }
                    _ => {}
                }
            }
            let before = self.changes.len();
            g.drain_changes(&mut self.changes);
            // A reply after which the lease store changed (an ACK) waits until the change is
            // durable; others (OFFERs, NAKs, INFORM ACKs) need not.
            job.verdict = match verdict {
                Verdict::Reply(n) if self.changes.len() > before => Verdict::ReplyWhenDurable(n),
                v => v,
            };
            for c in [Some(outcome.rx), outcome.state, outcome.tx].into_iter().flatten() {
                counts[c.slot()] += 1;
            }
        }
        // Numbered under the lock that ordered them: one counter update per lock taken.
        if !self.changes.is_empty() {
            self.stamped.extend(self.rt.db.numbered(self.changes.drain(..)));
        }
    }
}

impl EngineHandler {
    /// A DHCPLEASEQUERY (RFC 4388) in `buf[..len]`: from a relay listed in `[relays]
    /// leasequery` (and trusted, from port 67), answered to its giaddr from every shard, the
    /// reply written over the query; anyone else's is dropped.
    fn leasequery(&self, buf: &mut [u8], len: usize) -> Verdict {
        use dhcp_xdp_core::{leasequery, wire};
        let cfg = &self.rt.cfg;
        let mut reply = [0u8; 576];
        let (layout, src_mac, giaddr, n, server_id) = {
            let Some(frame) = buf.get(..len).and_then(|b| wire::Frame::new_checked(b).ok()) else {
                return Verdict::Drop(DropReason::Malformed);
            };
            let Ok(m) = dhcp_xdp_core::dhcp4::Message::parse(frame.payload()) else {
                return Verdict::Drop(DropReason::Malformed);
            };
            let giaddr = m.giaddr();
            if giaddr.is_unspecified()
                || frame.src_port() != dhcp_xdp_common::DHCP_SERVER_PORT
                || !cfg.leasequery_allowed(giaddr)
                || !cfg.relay_trusted(giaddr)
            {
                return Verdict::Drop(DropReason::UntrustedRelay);
            }
            let answer = match leasequery::query_of(&m) {
                Some(q) => leasequery::answer(cfg, &self.rt.db, &q, self.now),
                None => leasequery::Answer::malformed(),
            };
            let server_id = self.shared.server.id_facing(cfg, giaddr);
            let Some(n) = leasequery::write_reply(cfg, &m, &answer, server_id, self.now, &mut reply) else {
                return Verdict::Drop(DropReason::NoRoom);
            };
            (frame.layout(), frame.src_mac(), giaddr, n, server_id)
        };
        let Some(dst) = buf.get_mut(layout.payload..layout.payload + n) else {
            return Verdict::Drop(DropReason::NoRoom);
        };
        dst.copy_from_slice(&reply[..n]);
        let addr = wire::ReplyAddressing {
            dst_mac: src_mac,
            src_mac: self.shared.server.mac,
            src_ip: server_id,
            dst_ip: giaddr,
            src_port: dhcp_xdp_common::DHCP_SERVER_PORT,
            dst_port: dhcp_xdp_common::DHCP_SERVER_PORT,
        };
        match wire::write_ipv4_udp_headers(buf, &layout, n, &addr) {
            Some(len) => Verdict::Reply(len),
            None => Verdict::Drop(DropReason::NoRoom),
        }
    }
}

impl Handler for EngineHandler {
    fn begin_batch(&mut self) {
        self.now = unix_now();
        self.rt = self.shared.runtime();
        self.standby = !self.shared.store.serving();
    }

    fn handle(&mut self, meta: &FrameMeta, buf: &mut [u8], len: usize) -> Verdict {
        let mut job = [Job { buf, len, verdict: Verdict::Drop(DropReason::NotForUs) }];
        self.handle_batch(meta, &mut job);
        job[0].verdict
    }

    /// The worker's shard is locked once for the batch and the counters are added once: a
    /// control-plane reader waits a batch at most, and a frame costs no atomic operation of its
    /// own. Frames of clients held by another shard are decided afterwards under that shard's
    /// lock, one lock at a time (never two: no deadlock).
    fn handle_batch(&mut self, _meta: &FrameMeta, jobs: &mut [Job<'_>]) {
        if self.standby {
            for j in jobs.iter_mut() {
                j.verdict = Verdict::Drop(DropReason::Standby);
            }
            return;
        }
        let mut counts = [0u64; MsgCounter::COUNT];
        let mut v4 = std::mem::take(&mut self.v4_jobs);
        v4.clear();
        for (i, j) in jobs.iter_mut().enumerate() {
            if dhcp_xdp_core::wire::is_ipv6(&j.buf[..j.len.min(j.buf.len())]) {
                j.verdict = self.v6.handle(self.now, &self.shared, &self.rt, j.buf, j.len, &mut self.stamped);
            } else {
                v4.push(i);
            }
        }
        if v4.len() < jobs.len() {
            self.v6.flush_counts(&self.stats);
        }
        self.decide_in(self.shard, jobs, &v4, &mut counts, true);
        self.v4_jobs = v4;
        if !self.redirects.is_empty() {
            let mut redirects = std::mem::take(&mut self.redirects);
            redirects.sort_unstable_by_key(|r| r.1);
            for group in redirects.chunk_by(|a, b| a.1 == b.1) {
                let which: Vec<usize> = group.iter().map(|r| r.0).collect();
                self.decide_in(group[0].1, jobs, &which, &mut counts, false);
            }
            redirects.clear();
            self.redirects = redirects;
        }
        if !self.leasequeries.is_empty() {
            let queries = std::mem::take(&mut self.leasequeries);
            for &i in &queries {
                let j = &mut jobs[i];
                j.verdict = self.leasequery(j.buf, j.len);
            }
            self.leasequeries = queries;
            self.leasequeries.clear();
        }
        for (c, n) in self.stats.counts.iter().zip(counts) {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    fn end_batch(&mut self) -> Release {
        if self.stamped.is_empty() {
            return Release::Now;
        }
        let store = &self.shared.store;
        let release = match store.append(self.shard, &self.stamped) {
            Ok(Some(ticket)) => Release::After(ticket),
            Ok(None) => Release::Now,
            Err(e) => {
                tracing::error!("{}: {e}; withholding replies", store.name());
                Release::Withhold
            }
        };
        self.stamped.clear();
        release
    }

    fn settled(&mut self, ticket: u64) -> Option<bool> {
        self.shared.store.settled(self.shard, ticket)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use dhcp_xdp_core::{
        config::Config,
        engine4::ServerIdentity,
        leases::{ClientKey, LeaseDb, LeaseState},
        net::Ipv4Net,
    };

    use super::*;
    use crate::{serve::reload, store::LeaseStore};

    fn cfg(end: u8) -> Config {
        Config::parse(
            "t",
            &format!(
                "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.10-198.18.0.{end}\"\n"
            ),
        )
        .expect("config")
    }

    /// Runtime state over `shards` shards (one queue) of `cfg(20)`, with the server at
    /// 198.18.0.1/24.
    fn shared(shards: usize, store: Option<Arc<dyn LeaseStore>>) -> (Arc<LeaseDb>, Arc<Shared>) {
        shared_on(&[0], shards, cfg(20), store)
    }

    /// Runtime state for `workers` workers on each of `queues`.
    fn shared_on(
        queues: &[u32],
        workers: usize,
        c: Config,
        store: Option<Arc<dyn LeaseStore>>,
    ) -> (Arc<LeaseDb>, Arc<Shared>) {
        let db = Arc::new(LeaseDb::with_lanes(&c, queues.len(), workers, [], 100));
        let server =
            ServerIdentity { mac: [0; 6], addrs: vec![Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 1), prefix: 24 }] };
        let store = store.unwrap_or_else(|| Arc::new(crate::store::Memory::default()));
        let shared = Shared::new(Runtime::new(Arc::new(c), db.clone()), server, queues, store);
        (db, Arc::new(shared))
    }

    /// A request frame with `options` from 02:00:00:00:00:01, in a 2 KiB chunk, and its length.
    fn request(options: &[u8]) -> (Vec<u8>, usize) {
        let mut f = dhcp_xdp_core::testing::frame(&[], &[], &dhcp_xdp_core::testing::msg(options));
        let len = f.len();
        f.resize(2048, 0);
        (f, len)
    }

    /// OFFERs leave at once; an ACK waits for its lease record to be durable (group commit).
    #[test]
    fn only_replies_that_promise_a_lease_wait_for_the_journal() {
        let dir = crate::store::journal::tests::tmpdir("serve");
        let journal = crate::store::journal::JournalStore::open(&dir, 1, dhcp_xdp_core::config::Durability::Fsync, 0)
            .expect("journal");
        let (_, shared) = shared(1, Some(journal));
        let meta = FrameMeta { queue: 0, worker: 0 };
        let mut h = EngineHandler::new(shared, meta);
        let ask = |h: &mut EngineHandler, options: &[u8]| {
            let (mut f, len) = request(options);
            h.handle(&meta, &mut f, len)
        };
        h.begin_batch();
        assert!(matches!(ask(&mut h, &[53, 1, 1, 255]), Verdict::Reply(_)), "OFFER");
        assert_eq!(h.end_batch(), Release::Now, "nothing to make durable");
        h.begin_batch();
        let offer = ask(&mut h, &[53, 1, 1, 255]);
        assert!(matches!(offer, Verdict::Reply(_)), "{offer:?}");
        let request = [&[53, 1, 3, 50, 4, 198, 18, 0, 10, 54, 4, 198, 18, 0, 1][..], &[255]].concat();
        assert!(matches!(ask(&mut h, &request), Verdict::ReplyWhenDurable(_)), "ACK");
        let Release::After(ticket) = h.end_batch() else { panic!("the ACK's record is not being synced") };
        assert_eq!(crate::store::journal::tests::poll(|| h.settled(ticket)), Some(true), "ticket {ticket}");
    }

    #[test]
    fn a_batch_gets_a_verdict_per_frame_and_is_counted_once() {
        let (db, shared) = shared(1, None);
        let meta = FrameMeta { queue: 0, worker: 0 };
        let mut h = EngineHandler::new(shared.clone(), meta);
        // An address to ask for: offer one first.
        h.begin_batch();
        let (mut d, len) = request(&[53, 1, 1, 255]);
        assert!(matches!(h.handle(&meta, &mut d, len), Verdict::Reply(_)));
        assert!(h.end_batch() == Release::Now);
        let offered = db.lock(0).get(&ClientKey::hw(1, &[2, 0, 0, 0, 0, 1], 1)).expect("offered").addr;
        let selecting = [&[53, 1, 3, 50, 4][..], &offered.octets(), &[54, 4, 198, 18, 0, 1, 255]].concat();
        let (mut a, la) = request(&selecting);
        let (mut b, lb) = request(&[53, 1, 1, 255]);
        let mut garbage = vec![0u8; 64];
        h.begin_batch();
        let mut jobs = [
            Job { buf: &mut a, len: la, verdict: Verdict::Drop(DropReason::NotForUs) },
            Job { buf: &mut garbage, len: 64, verdict: Verdict::Drop(DropReason::NotForUs) },
            Job { buf: &mut b, len: lb, verdict: Verdict::Drop(DropReason::NotForUs) },
        ];
        h.handle_batch(&meta, &mut jobs);
        let verdicts: Vec<_> = jobs.iter().map(|j| j.verdict).collect();
        assert!(matches!(verdicts[0], Verdict::ReplyWhenDurable(_)), "ACK: {verdicts:?}");
        assert_eq!(verdicts[1], Verdict::Drop(DropReason::Malformed));
        assert!(matches!(verdicts[2], Verdict::Reply(_)), "OFFER again: {verdicts:?}");
        assert_eq!(h.end_batch(), Release::Now, "no journal: durable at once");
        let counts = shared.stats[0].render();
        for want in ["rx_discover=2", "rx_request=1", "tx_offer=2", "tx_ack=1", "rx_other=1", "rx_request_selecting=1"]
        {
            assert!(counts.split(' ').any(|c| c == want), "{want} in {counts}");
        }
        assert!(
            db.lock(0).get(&ClientKey::hw(1, &[2, 0, 0, 0, 0, 1], 1)).is_some_and(|l| l.state == LeaseState::Bound)
        );
    }

    #[test]
    fn reload_with_new_pools_rebuilds_tables_and_keeps_every_lease() {
        let (db, shared) = shared(2, None);
        let mut bound = vec![];
        for i in 0..6u8 {
            let mac = [2, 0, 0, 0, 0, i];
            let mut g = db.lock(db.shard_of(&mac));
            let k = ClientKey::hw(1, &mac, 1);
            let (a, s) = g.offer(100, 30, &k, mac, &[1], None, None).expect("offer");
            g.bind(100, k, mac, a, s, 3600, false).expect("bind");
            bound.push((k, mac, a));
        }
        // Same pools: tables kept.
        assert!(reload(&shared, cfg(20)).contains("kept"));
        assert!(Arc::ptr_eq(&shared.runtime().db, &db));
        // Grown pool: rebuilt, old tables retired, every lease carried over.
        assert!(reload(&shared, cfg(40)).contains("rebuilt"));
        let rt = shared.runtime();
        assert!(db.is_retired() && !Arc::ptr_eq(&rt.db, &db));
        for (k, mac, a) in bound {
            let g = rt.db.lock(rt.db.shard_of(&mac));
            assert_eq!(g.get(&k).map(|l| l.addr), Some(a));
        }
        assert_eq!(rt.db.census(200).bound, 6);
        assert_eq!(rt.db.pool_usage(200)[0].2, 31);
    }

    /// A reload keeps every v6 lease still on its link: when only the v4 pools change (the
    /// tables rebuilt, the v6 table copied while held) and when the v6 pools change (the v6 table
    /// rebuilt in place); leases of a link no longer served are dropped.
    #[test]
    fn reload_keeps_v6_leases_whichever_tables_are_rebuilt() {
        use dhcp_xdp_core::{
            dhcp6::IaKind,
            leases::v6::{Ask6, Key6},
        };
        let v6 = |end: &str| {
            format!(
                "[[subnet6]]\nsubnet = \"2001:db8:1::/64\"\n[[subnet6.pool]]\nrange = \"2001:db8:1::10-2001:db8:1::{end}\"\n"
            )
        };
        let with6 = |end4: u8, end6: &str| {
            let text = format!(
                "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.10-198.18.0.{end4}\"\n{}",
                v6(end6)
            );
            Config::parse("t", &text).expect("config")
        };
        let (db, shared) = shared_on(&[0], 1, with6(20, "20"), None);
        let key = |n: u8| Key6 { kind: IaKind::Na, subnet: 1, duid: Arc::from(&[0, 3, 0, 1, n][..]), iaid: 1 };
        let mut addrs = vec![];
        for n in 0..3 {
            let rt = shared.runtime();
            let k = key(n);
            let ask = Ask6::new(&k);
            let now = crate::clock::unix_now();
            addrs.push(rt.table6().bind(&rt.cfg.subnets6[0], ask, true, 0, now).expect("bind").addr);
        }
        // The v4 pool grows: tables rebuilt, every v6 lease carried over.
        assert!(reload(&shared, with6(40, "20")).contains("rebuilt"));
        let rt = shared.runtime();
        assert!(db.is_retired());
        assert_eq!(
            (0..3).map(|n| rt.table6().get(&key(n)).map(|l| l.addr)).collect::<Vec<_>>(),
            addrs.iter().copied().map(Some).collect::<Vec<_>>()
        );
        // The v6 pool shrinks to its first address: the leases stay (they are on the link, as
        // Kea keeps them; only new ones come from the smaller pool).
        assert!(reload(&shared, with6(40, "10")).contains("kept"));
        let rt = shared.runtime();
        assert_eq!((0..3).filter(|n| rt.table6().get(&key(*n)).is_some()).count(), 3);
        // The link moves: leases no longer on it are dropped.
        let text = "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.10-198.18.0.40\"\n\
                    [[subnet6]]\nsubnet = \"2001:db8:2::/64\"\n[[subnet6.pool]]\nrange = \"2001:db8:2::10-2001:db8:2::20\"\n";
        let moved = Config::parse("t", text).expect("config");
        assert!(reload(&shared, moved).contains("kept"));
        let rt = shared.runtime();
        assert_eq!((0..3).filter(|n| rt.table6().get(&key(*n)).is_some()).count(), 0);
    }

    /// A request from `mac` with `options` (client id and type among them), relayed or not.
    fn from(mac: [u8; 6], ciaddr: Ipv4Addr, options: &[u8]) -> (Vec<u8>, usize) {
        use dhcp_xdp_core::testing::Request;
        let r = Request { ciaddr, src_ip: ciaddr, ..Request::bootp_only().client(mac).raw_options(options) };
        let mut f = r.frame();
        let len = f.len();
        f.resize(2048, 0);
        (f, len)
    }

    fn yiaddr(buf: &[u8], n: usize) -> Ipv4Addr {
        let f = dhcp_xdp_core::wire::Frame::new_checked(&buf[..n]).expect("reply frame");
        dhcp_xdp_core::dhcp4::Message::parse(f.payload()).expect("reply").yiaddr()
    }

    fn reply_len(v: Verdict) -> usize {
        match v {
            Verdict::Reply(n) | Verdict::ReplyWhenDurable(n) => n,
            Verdict::Drop(r) => panic!("no reply: {r:?}"),
        }
    }

    /// Two queues with two workers each: four shards, and a worker of one queue runs while the
    /// same-numbered worker of the other holds its lock (issue 12, item 6).
    #[test]
    fn workers_of_two_queues_never_share_a_shard_lock() {
        let (db, shared) = shared_on(&[0, 3], 2, cfg(40), None);
        assert_eq!(db.shard_count(), 4);
        let metas = [(0, 0), (0, 1), (3, 0), (3, 1)].map(|(queue, worker)| FrameMeta { queue, worker });
        let shards: std::collections::HashSet<usize> = metas.iter().map(|m| shared.shard_of_worker(m)).collect();
        assert_eq!(shards.len(), 4, "every worker has a shard of its own");
        // Worker 0 of queue 0 holds its shard (as during a batch) …
        let held = db.lock(shared.shard_of_worker(&metas[0]));
        // … and worker 0 of queue 3 answers a new client meanwhile.
        let other = metas[2];
        let mut h = EngineHandler::new(shared.clone(), other);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            h.begin_batch();
            let (mut f, len) = from([2, 0, 0, 0, 9, 9], Ipv4Addr::UNSPECIFIED, &[53, 1, 1, 255]);
            let v = h.handle(&other, &mut f, len);
            h.end_batch();
            let _ = tx.send(v);
        });
        let v = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("the other queue's worker was blocked");
        assert!(matches!(v, Verdict::Reply(_)), "{v:?}");
        drop(held);
    }

    /// A client bound through one queue renews through another (RSS hashes its unicast
    /// renewal elsewhere): the renewal is decided where its lease lives, and keeps the address.
    #[test]
    fn a_renewal_arriving_on_another_queue_keeps_the_address() {
        let (db, shared) = shared_on(&[0, 1], 1, cfg(40), None);
        let (q0, q1) = (FrameMeta { queue: 0, worker: 0 }, FrameMeta { queue: 1, worker: 0 });
        let mac = [2, 0, 0, 0, 7, 7];
        let mut h0 = EngineHandler::new(shared.clone(), q0);
        h0.begin_batch();
        let (mut d, len) = from(mac, Ipv4Addr::UNSPECIFIED, &[53, 1, 1, 255]);
        let n = reply_len(h0.handle(&q0, &mut d, len));
        let addr = yiaddr(&d, n);
        let sel = [&[53, 1, 3, 50, 4][..], &addr.octets(), &[54, 4, 198, 18, 0, 1, 255]].concat();
        let (mut r, len) = from(mac, Ipv4Addr::UNSPECIFIED, &sel);
        let n = reply_len(h0.handle(&q0, &mut r, len));
        assert_eq!(yiaddr(&r, n), addr);
        h0.end_batch();
        let mut h1 = EngineHandler::new(shared.clone(), q1);
        h1.begin_batch();
        let (mut renew, len) = from(mac, addr, &[53, 1, 3, 255]);
        let v = h1.handle(&q1, &mut renew, len);
        assert!(matches!(v, Verdict::ReplyWhenDurable(_)), "renewal through queue 1: {v:?}");
        assert_eq!(yiaddr(&renew, reply_len(v)), addr);
        h1.end_batch();
        let holders: Vec<usize> = (0..db.shard_count())
            .filter(|&i| db.lock(i).get(&ClientKey::hw(1, &mac, 1)).is_some_and(|l| l.state == LeaseState::Bound))
            .collect();
        assert_eq!(holders, vec![shared.shard_of_worker(&q0)], "one lease, where it was made");
    }

    /// One client id behind two chaddrs that hash to different workers is one lease (defect 4).
    #[test]
    fn a_client_id_behind_two_chaddrs_is_one_lease() {
        let (db, shared) = shared_on(&[0], 2, cfg(40), None);
        // Two MACs that the XDP hash sends to different workers.
        let macs: Vec<[u8; 6]> = (0..=255u8).map(|i| [2, 0, 0, 0, 1, i]).collect();
        let a = macs[0];
        let b = *macs.iter().find(|m| db.shard_of(m) != db.shard_of(&a)).expect("two groups");
        let (wa, wb) = (
            FrameMeta { queue: 0, worker: db.shard_of(&a) as u32 },
            FrameMeta { queue: 0, worker: db.shard_of(&b) as u32 },
        );
        let cid = [61, 4, 0xff, 1, 2, 3];
        let mut ha = EngineHandler::new(shared.clone(), wa);
        let mut hb = EngineHandler::new(shared.clone(), wb);
        ha.begin_batch();
        let (mut d, len) = from(a, Ipv4Addr::UNSPECIFIED, &[&[53, 1, 1][..], &cid, &[255]].concat());
        let n = reply_len(ha.handle(&wa, &mut d, len));
        let first = yiaddr(&d, n);
        ha.end_batch();
        hb.begin_batch();
        let (mut d, len) = from(b, Ipv4Addr::UNSPECIFIED, &[&[53, 1, 1][..], &cid, &[255]].concat());
        let n = reply_len(hb.handle(&wb, &mut d, len));
        let second = yiaddr(&d, n);
        assert_eq!(second, first, "the same client id is offered its address, whichever worker hears it");
        hb.end_batch();
        let key = ClientKey::client_id(&cid[2..], 1);
        let records = (0..db.shard_count()).filter(|&i| db.lock(i).get(&key).is_some()).count();
        assert_eq!(records, 1);
    }

    /// Two chaddrs (on different workers) matching one circuit-id reservation: only one of them
    /// is bound to the reserved address (defect 4).
    #[test]
    fn a_reserved_address_is_never_bound_to_two_clients() {
        let c = Config::parse(
            "t",
            "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.10-198.18.0.40\"\n\
             [[subnet.reservation]]\ncircuit-id = \"olt1/1/1\"\nip = \"198.18.0.5\"\n",
        )
        .expect("config");
        let (db, shared) = shared_on(&[0], 2, c, None);
        let (relay, server) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 1));
        let ask = |h: &mut EngineHandler, meta: FrameMeta, mac: [u8; 6], mtype: u8| {
            let opts = [
                &[53, 1, mtype][..],
                &[50, 4, 198, 18, 0, 5, 54, 4, 198, 18, 0, 1],
                &[82, 10, 1, 8],
                b"olt1/1/1",
                &[255],
            ]
            .concat();
            let r = dhcp_xdp_core::testing::Request::bootp_only().client(mac).raw_options(&opts).relayed(
                relay,
                [2, 0, 0, 0, 0, 0x77],
                server,
            );
            let mut f = r.frame();
            let len = f.len();
            f.resize(2048, 0);
            h.begin_batch();
            let v = h.handle(&meta, &mut f, len);
            h.end_batch();
            match v {
                Verdict::Reply(n) | Verdict::ReplyWhenDurable(n) => {
                    let fr = dhcp_xdp_core::wire::Frame::new_checked(&f[..n]).expect("frame");
                    let m = dhcp_xdp_core::dhcp4::Message::parse(fr.payload()).expect("reply");
                    Some((m.message_type(), m.yiaddr()))
                }
                Verdict::Drop(_) => None,
            }
        };
        let macs: Vec<[u8; 6]> = (0..=255u8).map(|i| [2, 0, 0, 0, 2, i]).collect();
        let a = macs[0];
        let b = *macs.iter().find(|m| db.shard_of(m) != db.shard_of(&a)).expect("two groups");
        let (wa, wb) = (
            FrameMeta { queue: 0, worker: db.shard_of(&a) as u32 },
            FrameMeta { queue: 0, worker: db.shard_of(&b) as u32 },
        );
        let mut ha = EngineHandler::new(shared.clone(), wa);
        let mut hb = EngineHandler::new(shared.clone(), wb);
        use dhcp_xdp_core::dhcp4::MessageType::{Ack, Nak};
        let reserved = Ipv4Addr::new(198, 18, 0, 5);
        assert_eq!(ask(&mut ha, wa, a, 3), Some((Some(Ack), reserved)));
        let second = ask(&mut hb, wb, b, 3);
        assert!(matches!(second, Some((Some(Nak), _)) | None), "the second client got {second:?}");
        let bound: Vec<_> = (0..db.shard_count())
            .flat_map(|i| {
                db.lock(i).records().filter(|l| l.addr == reserved && l.state == LeaseState::Bound).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(bound.len(), 1, "{bound:?}");
    }

    /// Reservations changed with the pools unchanged: the tables are rebuilt, so the newly
    /// reserved address is no longer handed out dynamically (defect 5).
    #[test]
    fn reload_with_new_reservations_rebuilds_the_tables() {
        let (db, shared) = shared(1, None);
        let with_reservation = Config::parse(
            "t",
            "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.10-198.18.0.20\"\n\
             [[subnet.reservation]]\nhw-address = \"02:00:00:00:00:99\"\nip = \"198.18.0.10\"\n",
        )
        .expect("config");
        assert!(reload(&shared, with_reservation).contains("rebuilt"));
        let rt = shared.runtime();
        assert!(db.is_retired() && !Arc::ptr_eq(&rt.db, &db));
        let mut g = rt.db.lock(0);
        // Eleven addresses, one reserved: ten new clients get the other ten, the eleventh nothing.
        let mut offered = vec![];
        for i in 0..11u8 {
            let mac = [2, 0, 0, 0, 5, i];
            match g.offer(200, 30, &ClientKey::hw(1, &mac, 1), mac, &[1], None, None) {
                Ok((a, _)) => offered.push(a),
                Err(e) => assert_eq!((i, e), (10, dhcp_xdp_core::leases::LeaseError::NoAddress)),
            }
        }
        assert_eq!(offered.len(), 10, "{offered:?}");
        assert!(!offered.contains(&Ipv4Addr::new(198, 18, 0, 10)), "the reserved address was offered: {offered:?}");
    }
}
