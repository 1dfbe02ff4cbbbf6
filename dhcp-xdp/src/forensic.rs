//! The forensic lease log (`[forensic-log]`): every lease event — bound, renewed, released,
//! declined, expired, taken over by a cluster node — as one JSON line, for the question a regulator asks months later: who
//! held this address at that time?
//!
//! Never on the datapath's critical path: a worker hands a small fixed-size record to a bounded
//! queue (a full queue drops the record and counts it; it never waits), and a thread of its own
//! formats, writes, rotates (by size, keeping `keep` old files) and syncs (`fsync-interval-ms`).
//! A log disk that fills up or fails does not stop leases: the lines are counted as lost, the
//! failure is logged once and shown (`counters-get`, metrics) until writing works again.
//!
//! The line format (documented in the README, for tools to read):
//! `{"ts":"2026-12-07T16:00:00Z","event":"bound","address":"198.18.0.10","hw-address":"02:…",
//! "client-id":"01:…","circuit-id":"…","remote-id":"…","relay":"198.18.0.1","subnet-id":1,
//! "valid-lft":3600,"expires":"2026-12-07T17:00:00Z","hostname":"…","node":"…"}` (and
//! `"from-node"` on a `taken-over` line) — fields that do not apply are left out.

use std::{
    io::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    time::{Duration, Instant},
};

use dhcp_xdp_core::{
    calendar::iso8601,
    config::{ForensicConfig, ForensicSink},
    dhcp4::{self, Message},
    engine4::{MsgCounter, Outcome},
    verdict::{DropReason, Verdict},
};
use serde_json::{Value, json};

/// Records waiting for the writer before new ones are dropped.
const QUEUE: usize = 65_536;

/// What happened to a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A client got it (SELECTING, INIT-REBOOT).
    Bound,
    /// A client kept it (RENEWING, REBINDING).
    Renewed,
    /// Its client gave it back.
    Released,
    /// Its client found it in use.
    Declined,
    /// It ran out.
    Expired,
    /// A cluster node took it over from a silent node (whose clients now renew with it).
    TakenOver,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bound => "bound",
            Kind::Renewed => "renewed",
            Kind::Released => "released",
            Kind::Declined => "declined",
            Kind::Expired => "expired",
            Kind::TakenOver => "taken-over",
        }
    }
}

/// A few bytes held inline (an identifier, a host name), cut at 64.
#[derive(Debug, Clone, Copy)]
pub struct Small {
    len: u8,
    b: [u8; 64],
}

impl Small {
    fn of(v: Option<&[u8]>) -> Self {
        let mut s = Self { len: 0, b: [0; 64] };
        if let Some(v) = v {
            let n = v.len().min(64);
            s.b[..n].copy_from_slice(&v[..n]);
            s.len = n as u8;
        }
        s
    }
    /// The bytes (None when empty).
    pub fn get(&self) -> Option<&[u8]> {
        (self.len > 0).then(|| &self.b[..usize::from(self.len)])
    }
}

/// One lease event, as a worker or the sweep hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    kind: Kind,
    at: u64,
    addr: Ipv4Addr,
    chaddr: [u8; 6],
    client_id: Small,
    circuit: Small,
    remote: Small,
    relay: Ipv4Addr,
    subnet: u32,
    lease: u32,
    hostname: Small,
    /// A DHCPv6 lease: its address or prefix (and length), the client's DUID and the IA's id.
    v6: Option<(std::net::Ipv6Addr, u8, u32)>,
    duid: Small,
    /// The node a lease was taken over from.
    from: Small,
}

impl Event {
    /// A DHCPv6 lease's event.
    fn v6(kind: Kind, at: u64, l: &dhcp_xdp_core::leases::v6::Lease6, lease: u32, duid: Option<&[u8]>) -> Self {
        Self {
            kind,
            at,
            addr: Ipv4Addr::UNSPECIFIED,
            chaddr: [0; 6],
            client_id: Small::of(None),
            circuit: Small::of(None),
            remote: Small::of(None),
            relay: Ipv4Addr::UNSPECIFIED,
            subnet: l.key.subnet,
            lease,
            hostname: Small::of(None),
            v6: Some((l.addr, l.len, l.key.iaid)),
            duid: Small::of(duid),
            from: Small::of(None),
        }
    }
}

/// The log: the workers' side of the queue and what the writer reports.
pub struct ForensicLog {
    tx: SyncSender<Event>,
    /// Lines written.
    pub written: AtomicU64,
    /// Records dropped: the queue was full, or the file could not be written.
    pub lost: AtomicU64,
    /// Writing fails now (a full or failing disk).
    pub failing: AtomicBool,
}

impl ForensicLog {
    /// Opens (appends to) the log of `cfg` and starts its writer; `node` names this server in
    /// every line; `database` is the cluster's, where `cfg` sends the lines there.
    pub fn start(cfg: &ForensicConfig, node: String, database: Option<&str>) -> std::io::Result<Arc<Self>> {
        let (path, file, db) = match (&cfg.sink, database) {
            (ForensicSink::File(path), _) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                (path.clone(), Some(open(path)?), None)
            }
            (ForensicSink::Database, Some(url)) => (
                PathBuf::from("the cluster database"),
                None,
                Some(Db { url: url.to_owned(), client: None, batch: vec![], keep_days: cfg.keep_days, pruned: None }),
            ),
            (ForensicSink::Database, None) => return Err(std::io::Error::other("no cluster database to log to")),
        };
        let (tx, rx) = sync_channel(QUEUE);
        let log =
            Arc::new(Self { tx, written: AtomicU64::new(0), lost: AtomicU64::new(0), failing: AtomicBool::new(false) });
        let writer = Writer {
            log: log.clone(),
            path,
            rotate_size: cfg.rotate_size,
            keep: cfg.keep,
            sync_every: Duration::from_millis(cfg.fsync_interval_ms),
            size: file.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len()),
            file,
            node: Value::from(node).to_string(),
            db,
            buf: String::with_capacity(FILE_BATCH + 1024),
            pending: 0,
        };
        std::thread::Builder::new().name("forensic-log".into()).spawn(move || writer.run(rx))?;
        Ok(log)
    }

    /// Hands `e` to the writer; never waits (a full queue drops it, counted).
    pub fn record(&self, e: Event) {
        match self.tx.try_send(e) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The event a DHCPv4 exchange made, from the frame as it is after the engine (the ACK it
    /// wrote, or the RELEASE/DECLINE it consumed) and the host name the lease keeps (option
    /// 81's domain name, else option 12): bound or renewed on an ACK of a REQUEST, released,
    /// declined. Nothing for anything else.
    pub fn dhcp4(&self, now: u64, frame: &[u8], verdict: Verdict, outcome: &Outcome, hostname: Option<&[u8]>) {
        let kind = match (outcome.rx, outcome.tx, verdict) {
            (MsgCounter::RxRequest, Some(MsgCounter::TxAck), _) => match outcome.state {
                Some(MsgCounter::RxRequestRenewing | MsgCounter::RxRequestRebinding) => Kind::Renewed,
                _ => Kind::Bound,
            },
            (MsgCounter::RxRelease, _, Verdict::Drop(DropReason::Consumed)) => Kind::Released,
            (MsgCounter::RxDecline, _, Verdict::Drop(DropReason::Consumed)) => Kind::Declined,
            _ => return,
        };
        let len = match verdict {
            Verdict::Reply(n) | Verdict::ReplyWhenDurable(n) => n,
            Verdict::Drop(_) => frame.len(),
        };
        let Some(f) = frame.get(..len).and_then(|f| dhcp_xdp_core::wire::Frame::new_checked(f).ok()) else { return };
        let Ok(m) = Message::parse(f.payload()) else { return };
        let addr = match kind {
            Kind::Bound | Kind::Renewed => m.yiaddr(),
            Kind::Released => m.ciaddr(),
            _ => m.ip_option(dhcp4::opt::REQUESTED_IP).unwrap_or(m.ciaddr()),
        };
        let relay = m.single(dhcp4::opt::RELAY_AGENT_INFO);
        let lease = m.single(dhcp4::opt::LEASE_TIME).and_then(|v| v.try_into().ok()).map(u32::from_be_bytes);
        let sub = |code| relay.and_then(|r| dhcp4::sub_options(r).find(|(c, _)| *c == code).map(|(_, v)| v));
        self.record(Event {
            kind,
            at: now,
            addr,
            chaddr: m.chaddr6(),
            client_id: Small::of(m.single(dhcp4::opt::CLIENT_ID)),
            circuit: Small::of(sub(1)),
            remote: Small::of(sub(2)),
            relay: m.giaddr(),
            subnet: 0,
            lease: lease.unwrap_or(0),
            hostname: Small::of(hostname),
            v6: None,
            duid: Small::of(None),
            from: Small::of(None),
        });
    }

    /// An expiry the sweep made.
    pub fn expired(&self, now: u64, l: &dhcp_xdp_core::leases::Lease) {
        self.record(Event {
            kind: Kind::Expired,
            at: now,
            addr: l.addr,
            chaddr: l.chaddr,
            client_id: Small::of(None),
            circuit: Small::of(None),
            remote: Small::of(None),
            relay: Ipv4Addr::UNSPECIFIED,
            subnet: l.subnet,
            lease: 0,
            hostname: Small::of(None),
            v6: None,
            duid: Small::of(None),
            from: Small::of(None),
        });
    }

    /// A binding this cluster node took over from the silent node `from`: still held, by the
    /// same client, now this node's to renew (`valid-lft` is what is left of it).
    pub fn taken_over(&self, now: u32, l: &dhcp_xdp_core::leases::Lease, attrs: [&[u8]; 2], from: &str) {
        let [name, rai] = attrs;
        let sub = |code| dhcp4::sub_options(rai).find(|(c, _)| *c == code).map(|(_, v)| v);
        self.record(Event {
            kind: Kind::TakenOver,
            at: u64::from(now),
            addr: l.addr,
            chaddr: l.chaddr,
            client_id: Small::of(l.key.client_id_bytes()),
            circuit: Small::of(sub(1)),
            remote: Small::of(sub(2)),
            relay: Ipv4Addr::UNSPECIFIED,
            subnet: l.subnet,
            lease: l.expires.saturating_sub(now),
            hostname: Small::of((!name.is_empty()).then_some(name)),
            v6: None,
            duid: Small::of(None),
            from: Small::of(Some(from.as_bytes())),
        });
    }

    /// A DHCPv6 lease this cluster node took over from the silent node `from`.
    pub fn taken_over6(&self, now: u32, l: &dhcp_xdp_core::leases::v6::Lease6, from: &str) {
        let e = Event::v6(Kind::TakenOver, u64::from(now), l, l.expires.saturating_sub(now), Some(&l.key.duid[..]));
        self.record(Event { from: Small::of(Some(from.as_bytes())), ..e });
    }

    /// A DHCPv6 lease (or a declined address's probation) the sweep ended.
    pub fn expired6(&self, now: u64, l: &dhcp_xdp_core::leases::v6::Lease6) {
        let declined = l.state == dhcp_xdp_core::leases::v6::Lease6State::Declined;
        self.record(Event::v6(Kind::Expired, now, l, 0, (!declined).then_some(&l.key.duid[..])));
    }

    /// The events of a DHCPv6 exchange (message type `kind` of the client's message), from the
    /// lease changes it made: every lease bound (REQUEST, SOLICIT with Rapid Commit) or renewed
    /// (RENEW, REBIND), released or declined.
    pub fn dhcp6(&self, now: u64, kind: u8, changes: &[dhcp_xdp_core::leases::Change]) {
        use dhcp_xdp_core::{dhcp6::msg, leases::Change};
        for c in changes {
            let (k, l) = match (kind, c) {
                (msg::RENEW | msg::REBIND, Change::Upsert6(l)) => (Kind::Renewed, l),
                (msg::DECLINE, Change::Upsert6(l)) => (Kind::Declined, l),
                (_, Change::Upsert6(l)) if l.state == dhcp_xdp_core::leases::v6::Lease6State::Bound => (Kind::Bound, l),
                _ => continue,
            };
            let lease = if k == Kind::Declined { 0 } else { l.valid };
            // A declined address is kept under no client's DUID.
            self.record(Event::v6(k, now, l, lease, (k != Kind::Declined).then_some(&l.key.duid[..])));
        }
    }

    /// A DHCPv6 RELEASE of what `released` names (the client's own leases, removed).
    pub fn released6(&self, now: u64, released: &[dhcp_xdp_core::leases::v6::Lease6]) {
        for l in released {
            self.record(Event::v6(Kind::Released, now, l, 0, Some(&l.key.duid[..])));
        }
    }

    /// Status for `counters-get`.
    pub fn status(&self) -> Value {
        json!({
            "written": self.written.load(Ordering::Relaxed),
            "lost": self.lost.load(Ordering::Relaxed),
            "failing": self.failing.load(Ordering::Relaxed),
        })
    }
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// The rotated file `n` of `path` (`leases.jsonl.1` is the newest old one).
pub fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Appends `secs` as RFC 3339 UTC: the last few are kept formatted (a line's events come in
/// the same second, and its leases mostly end in the same second too).
fn push_time(out: &mut String, secs: u64) {
    thread_local! {
        /// The last few times formatted, and the slot the next new one takes.
        static RECENT: std::cell::RefCell<([(u64, String); 4], usize)> = Default::default();
    }
    RECENT.with_borrow_mut(|(recent, next)| {
        let slot = match recent.iter().position(|(t, f)| *t == secs && !f.is_empty()) {
            Some(i) => i,
            None => {
                let i = *next;
                *next = (i + 1) % recent.len();
                recent[i] = (secs, iso8601(secs));
                i
            }
        };
        out.push_str(&recent[slot].1);
    });
}

/// Appends `n` in decimal.
fn push_u32(out: &mut String, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// Appends `a` in dotted decimal.
fn push_ipv4(out: &mut String, a: Ipv4Addr) {
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_u32(out, u32::from(o));
    }
}

/// An event as its JSON line; `node` is the node's name as a JSON string (quoted, escaped).
fn line(e: &Event, node: &str) -> String {
    let mut s = String::with_capacity(320);
    line_into(&mut s, e, node);
    s
}

/// Appends `e` as its JSON line (no newline) to `out`: written field by field, without a map
/// or a string per field (the writer formats a line per lease event at DORA rates). `node` is
/// the node's name as a JSON string.
fn line_into(out: &mut String, e: &Event, node: &str) {
    use std::fmt::Write as _;
    // Hex with colons, straight into `out`.
    fn hex(out: &mut String, key: &str, b: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":\"");
        for (i, x) in b.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            out.push(char::from(DIGITS[usize::from(x >> 4)]));
            out.push(char::from(DIGITS[usize::from(x & 15)]));
        }
        out.push('"');
    }
    // A string from outside (a host name, a node's name): escaped as JSON.
    fn text(out: &mut String, key: &str, v: &[u8]) {
        let v = String::from_utf8_lossy(v);
        let _ = write!(out, ",\"{key}\":{}", Value::from(v.as_ref()));
    }
    out.push_str("{\"ts\":\"");
    push_time(out, e.at);
    out.push_str("\",\"event\":\"");
    out.push_str(e.kind.name());
    out.push('"');
    match e.v6 {
        Some((a, len, iaid)) => {
            let _ = write!(out, ",\"address\":\"{a}\"");
            if len < 128 {
                let _ = write!(out, ",\"prefix-len\":{len}");
            }
            let _ = write!(out, ",\"iaid\":{iaid}");
            if let Some(d) = e.duid.get() {
                hex(out, "duid", d);
            }
        }
        None => {
            out.push_str(",\"address\":\"");
            push_ipv4(out, e.addr);
            out.push('"');
            hex(out, "hw-address", &e.chaddr);
        }
    }
    for (k, v) in [("client-id", &e.client_id), ("circuit-id", &e.circuit), ("remote-id", &e.remote)] {
        if let Some(b) = v.get() {
            hex(out, k, b);
        }
    }
    if !e.relay.is_unspecified() {
        out.push_str(",\"relay\":\"");
        push_ipv4(out, e.relay);
        out.push('"');
    }
    if e.subnet != 0 {
        out.push_str(",\"subnet-id\":");
        push_u32(out, e.subnet);
    }
    if e.lease > 0 {
        out.push_str(",\"valid-lft\":");
        push_u32(out, e.lease);
        out.push_str(",\"expires\":\"");
        push_time(out, e.at + u64::from(e.lease));
        out.push('"');
    }
    if let Some(h) = e.hostname.get() {
        text(out, "hostname", h);
    }
    out.push_str(",\"node\":");
    out.push_str(node);
    if let Some(f) = e.from.get() {
        text(out, "from-node", f);
    }
    out.push('}');
}

/// The writer thread's state.
struct Writer {
    log: Arc<ForensicLog>,
    path: PathBuf,
    rotate_size: u64,
    keep: usize,
    sync_every: Duration,
    size: u64,
    file: Option<std::fs::File>,
    /// This node's name, as a JSON string.
    node: String,
    /// Database mode: where the lines go instead of the file.
    db: Option<Db>,
    /// Lines formatted and not yet written, and how many.
    buf: String,
    pending: u64,
}

/// How often the writer takes what is queued while events keep coming.
const DRAIN_EVERY: Duration = Duration::from_millis(2);

/// Bytes of lines gathered before they are written whatever else is queued.
const FILE_BATCH: usize = 256 * 1024;

/// Lines on their way to the cluster database's `dhcp_xdp_lease_log`, inserted a batch at a
/// time (at each sync, or when [`DB_BATCH`] are waiting) on a connection of the writer's own.
struct Db {
    url: String,
    client: Option<postgres::Client>,
    /// (unix time, event, address, line).
    batch: Vec<(i64, &'static str, String, String)>,
    keep_days: u32,
    /// When lines older than `keep_days` were last deleted.
    pruned: Option<Instant>,
}

/// Lines that wait for the database before they are inserted whatever the sync interval.
const DB_BATCH: usize = 4096;

impl Db {
    /// Inserts the waiting lines (one statement); how many, or why not. A failed batch is
    /// lost (counted by the caller) and the connection made again next time.
    fn flush(&mut self) -> Result<usize, String> {
        if self.batch.is_empty() {
            return Ok(0);
        }
        let batch = std::mem::take(&mut self.batch);
        let n = batch.len();
        let client = match &mut self.client {
            Some(c) => c,
            None => self.client.insert(crate::store::cluster::pg::connect(&self.url).map_err(|e| e.to_string())?),
        };
        let (mut ts, mut event, mut address, mut line) = (vec![], vec![], vec![], vec![]);
        for (t, e, a, l) in batch {
            ts.push(t);
            event.push(e);
            address.push(a);
            line.push(l);
        }
        let r = client.execute(
            "INSERT INTO dhcp_xdp_lease_log (ts, event, address, line)
             SELECT to_timestamp(t), e, a, l::jsonb FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS x(t, e, a, l)",
            &[&ts, &event, &address, &line],
        );
        if let Err(e) = r {
            self.client = None;
            return Err(crate::store::cluster::pg::describe(&e));
        }
        if self.keep_days > 0 && self.pruned.is_none_or(|p| p.elapsed() >= Duration::from_secs(3600)) {
            self.pruned = Some(Instant::now());
            let days = i32::try_from(self.keep_days).unwrap_or(i32::MAX);
            if let Some(c) = &mut self.client
                && let Err(e) =
                    c.execute("DELETE FROM dhcp_xdp_lease_log WHERE ts < now() - make_interval(days => $1)", &[&days])
            {
                tracing::warn!("forensic log: deleting lines older than {} days: {e}", self.keep_days);
            }
        }
        Ok(n)
    }
}

impl Writer {
    fn run(mut self, rx: Receiver<Event>) {
        let mut synced = Instant::now();
        let mut dirty = false;
        loop {
            match rx.recv_timeout(self.sync_every.max(Duration::from_millis(10))) {
                Ok(e) => {
                    self.write(&e);
                    dirty = true;
                    // Whatever else is queued, in the same write; while events keep coming, the
                    // writer takes them every few milliseconds without waiting on the queue, so
                    // that a worker's send never has to wake it (a system call per event).
                    loop {
                        while let Ok(e) = rx.try_recv() {
                            self.write(&e);
                        }
                        self.flush();
                        if synced.elapsed() >= self.sync_every {
                            break;
                        }
                        std::thread::sleep(DRAIN_EVERY);
                        match rx.try_recv() {
                            Ok(e) => self.write(&e),
                            Err(_) => break,
                        }
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    self.flush();
                    self.sync();
                    return;
                }
            }
            if dirty && synced.elapsed() >= self.sync_every {
                self.sync();
                synced = Instant::now();
                dirty = false;
            }
        }
    }

    fn fail(&self, what: &str, e: &dyn std::fmt::Display) {
        if !self.log.failing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "forensic log {}: {what}: {e}; lease events are lost until it works again (leases are not affected)",
                self.path.display()
            );
        }
    }

    fn write(&mut self, e: &Event) {
        if let Some(db) = &mut self.db {
            let address = match e.v6 {
                Some((a, _, _)) => a.to_string(),
                None => e.addr.to_string(),
            };
            db.batch.push((e.at as i64, e.kind.name(), address, line(e, &self.node)));
            if db.batch.len() >= DB_BATCH {
                self.sync();
            }
            return;
        }
        line_into(&mut self.buf, e, &self.node);
        self.buf.push('\n');
        self.pending += 1;
        if self.buf.len() >= FILE_BATCH || self.size + self.buf.len() as u64 >= self.rotate_size {
            self.flush();
        }
    }

    /// Appends the lines formatted since the last call to the file in one write; a write cut
    /// short (a full disk) is cut back off, so the file holds whole lines only, and its lines
    /// are counted lost. Rotates the file when it has grown to `rotate_size`.
    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let n = std::mem::take(&mut self.pending);
        if self.file.is_none() {
            match open(&self.path) {
                Ok(f) => {
                    self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
                    self.file = Some(f);
                }
                Err(err) => {
                    self.fail("opening", &err);
                    self.log.lost.fetch_add(n, Ordering::Relaxed);
                    self.buf.clear();
                    return;
                }
            }
        }
        let Some(f) = self.file.as_mut() else { return };
        match f.write_all(self.buf.as_bytes()) {
            Ok(()) => {
                self.size += self.buf.len() as u64;
                self.log.written.fetch_add(n, Ordering::Relaxed);
                if self.log.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("forensic log {}: writing again", self.path.display());
                }
            }
            Err(err) => {
                let _ = f.set_len(self.size);
                self.fail("writing", &err);
                self.log.lost.fetch_add(n, Ordering::Relaxed);
                // Start over on a fresh handle next time.
                self.file = None;
            }
        }
        self.buf.clear();
        if self.size >= self.rotate_size {
            self.rotate();
        }
    }

    fn sync(&mut self) {
        if let Some(db) = &mut self.db {
            let n = db.batch.len() as u64;
            match db.flush() {
                Ok(n) => {
                    self.log.written.fetch_add(n as u64, Ordering::Relaxed);
                    if n > 0 && self.log.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!("forensic log in the cluster database: writing again");
                    }
                }
                Err(e) => {
                    self.log.lost.fetch_add(n, Ordering::Relaxed);
                    self.fail("inserting", &e);
                }
            }
            return;
        }
        if let Some(f) = self.file.as_mut()
            && let Err(e) = f.sync_data()
        {
            self.fail("syncing", &e);
        }
    }

    /// The file is synced and becomes `.1` (older ones shift; the oldest past `keep` goes).
    fn rotate(&mut self) {
        self.sync();
        self.file = None;
        let _ = std::fs::remove_file(rotated(&self.path, self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
        }
        if let Err(e) = std::fs::rename(&self.path, rotated(&self.path, 1)) {
            self.fail("rotating", &e);
        }
        self.size = 0;
    }
}

/// A line of the log, read back.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Unix time.
    pub at: u64,
    /// The line's fields.
    pub fields: Value,
}

/// Every line of the log at `path` and its rotated files, oldest first (lines that do not parse
/// are skipped).
pub fn read(path: &Path) -> std::io::Result<Vec<Entry>> {
    let mut files: Vec<PathBuf> = (1..10_000).map(|n| rotated(path, n)).take_while(|p| p.exists()).collect();
    files.reverse();
    files.push(path.to_owned());
    let mut out = vec![];
    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for l in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(l) else { continue };
            let Some(at) = v.get("ts").and_then(Value::as_str).and_then(dhcp_xdp_core::calendar::parse_iso8601) else {
                continue;
            };
            out.push(Entry { at, fields: v });
        }
    }
    out.sort_by_key(|e| e.at);
    Ok(out)
}

/// The lines of the log in the cluster database at `url` up to `at` that `who` needs: those of
/// the address `want` (`key` "address"), or of every address a line with `key` = `want` (a
/// hardware address, a circuit id) names; oldest first.
pub fn read_database(url: &str, key: &str, want: &str, at: u64) -> Result<Vec<Entry>, String> {
    let mut c = crate::store::cluster::pg::connect(url).map_err(|e| crate::store::cluster::pg::describe(&e))?;
    let at = at as i64;
    let rows = if key == "address" {
        c.query(
            "SELECT extract(epoch FROM ts)::bigint, line::text FROM dhcp_xdp_lease_log
              WHERE address = $1 AND ts <= to_timestamp($2::bigint) ORDER BY ts, id",
            &[&want, &at],
        )
    } else {
        c.query(
            "SELECT extract(epoch FROM ts)::bigint, line::text FROM dhcp_xdp_lease_log
              WHERE address IN (SELECT address FROM dhcp_xdp_lease_log WHERE line ->> $1 = $2)
                AND ts <= to_timestamp($3::bigint) ORDER BY ts, id",
            &[&key, &want, &at],
        )
    }
    .map_err(|e| crate::store::cluster::pg::describe(&e))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let fields = serde_json::from_str(r.get::<_, &str>(1)).ok()?;
            Some(Entry { at: u64::try_from(r.get::<_, i64>(0)).ok()?, fields })
        })
        .collect())
}

/// Who held `address` at `at`: the last event of that address at or before `at` when it is a
/// binding that runs past `at`.
pub fn holder_at<'e>(entries: &'e [Entry], address: &str, at: u64) -> Option<&'e Entry> {
    let last = entries.iter().rev().find(|e| e.at <= at && e.fields["address"] == address)?;
    let bound = matches!(last.fields["event"].as_str(), Some("bound" | "renewed" | "taken-over"));
    let runs = last.fields["valid-lft"].as_u64().is_some_and(|l| last.at + l >= at);
    (bound && runs).then_some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line is one JSON object with the fields that apply, identifiers in hex with colons,
    /// text from outside (a host name, a node's name) escaped.
    #[test]
    fn lines_are_json_with_the_fields_that_apply() {
        let e = Event {
            kind: Kind::TakenOver,
            at: 1_796_000_000,
            addr: Ipv4Addr::new(198, 18, 0, 10),
            chaddr: [2, 0xf0, 0, 0, 0, 1],
            client_id: Small::of(Some(&[1, 2, 0xf0, 0, 0, 0, 1])),
            circuit: Small::of(Some(b"olt1")),
            remote: Small::of(None),
            relay: Ipv4Addr::new(198, 18, 0, 1),
            subnet: 3,
            lease: 600,
            hostname: Small::of(Some(b"cpe \"a\"\n")),
            v6: None,
            duid: Small::of(None),
            from: Small::of(Some(b"edge-2")),
        };
        let v: Value = serde_json::from_str(&line(&e, "\"edge-1\"")).expect("JSON");
        assert_eq!(
            v,
            json!({
                "ts": "2026-11-30T00:53:20Z", "event": "taken-over", "address": "198.18.0.10",
                "hw-address": "02:f0:00:00:00:01", "client-id": "01:02:f0:00:00:00:01", "circuit-id": "6f:6c:74:31",
                "relay": "198.18.0.1", "subnet-id": 3, "valid-lft": 600, "expires": "2026-11-30T01:03:20Z",
                "hostname": "cpe \"a\"\n", "node": "edge-1", "from-node": "edge-2"
            })
        );
        let l6 = dhcp_xdp_core::leases::v6::Lease6 {
            key: dhcp_xdp_core::leases::v6::Key6 {
                kind: dhcp_xdp_core::dhcp6::IaKind::Pd,
                subnet: 1,
                duid: Arc::from(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 9][..]),
                iaid: 7,
            },
            addr: "2001:db8:100:100::".parse().unwrap(),
            len: 56,
            preferred: 400,
            valid: 600,
            expires: 1_796_000_600,
            state: dhcp_xdp_core::leases::v6::Lease6State::Bound,
            tags: Default::default(),
            relay: 0,
        };
        let v: Value =
            serde_json::from_str(&line(&Event::v6(Kind::Bound, 1_796_000_000, &l6, 600, Some(&l6.key.duid)), "\"n\""))
                .expect("JSON");
        assert_eq!(
            (&v["address"], &v["prefix-len"], &v["iaid"], &v["duid"], v.get("hw-address")),
            (&json!("2001:db8:100:100::"), &json!(56), &json!(7), &json!("00:03:00:01:02:00:00:00:00:09"), None)
        );
    }
}
