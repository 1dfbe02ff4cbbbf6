//! Lease persistence: an append-only journal per shard plus periodic snapshots.
//!
//! Every record is versioned and checksummed (CRC-32). A batch's changes are written with one
//! `write`; in `fsync` durability its replies leave only after an `fdatasync` that began after
//! that write (group commit: a per-shard syncer thread syncs while the worker goes on, and one
//! sync covers every batch written before it). Snapshots are written to a temporary file,
//! fsynced and renamed; the previous one is kept as a fallback together with the journals since
//! it. Recovery loads the newest valid snapshot, replays the journals after it, truncates a torn
//! or corrupted tail (and says so).

use std::{
    fs::{File, OpenOptions},
    io::{BufWriter, Read as _, Write as _},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use hashbrown::HashMap;

use dhcp_xdp_core::{
    config::Durability,
    leases::{Change, ClientKey, Lease, LeaseDb, LeaseState},
};

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// The system's reason.
        source: std::io::Error,
    },
    /// Recovered leases contradict each other.
    #[error("{0}")]
    Conflict(String),
}

impl From<std::io::Error> for JournalError {
    fn from(source: std::io::Error) -> Self {
        Self::Io { what: "journal I/O".into(), source }
    }
}

/// Names a failed file operation.
fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> JournalError {
    let what = what.into();
    move |source| JournalError::Io { what, source }
}

const REC_MAGIC: u8 = 0xd7;
const REC_VERSION: u8 = 1;
const KIND_UPSERT: u8 = 1;
const KIND_REMOVE: u8 = 2;
const SNAP_MAGIC: &[u8; 8] = b"DXSNAP01";

/// Encodes one change as a journal record.
pub fn encode(c: &Change, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[REC_MAGIC, REC_VERSION, 0, 0]);
    match c {
        Change::Upsert(l) => {
            out[start + 2] = KIND_UPSERT;
            let k = l.key.as_bytes();
            out.push(k.len() as u8);
            out.extend_from_slice(k);
            out.extend_from_slice(&l.chaddr);
            out.extend_from_slice(&l.addr.octets());
            out.extend_from_slice(&l.expires.to_le_bytes());
            out.push(l.state as u8);
            out.extend_from_slice(&l.subnet.to_le_bytes());
        }
        Change::Remove(k) => {
            out[start + 2] = KIND_REMOVE;
            let k = k.as_bytes();
            out.push(k.len() as u8);
            out.extend_from_slice(k);
        }
    }
    out[start + 3] = (out.len() - start - 4) as u8;
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Decodes the record at the start of `b`: the change and its length, or `None` if the bytes
/// are not a whole valid record.
pub fn decode(b: &[u8]) -> Option<(Change, usize)> {
    let (&magic, &version, &kind, &len) = (b.first()?, b.get(1)?, b.get(2)?, b.get(3)?);
    if magic != REC_MAGIC || version != REC_VERSION {
        return None;
    }
    let body_end = 4 + usize::from(len);
    let crc = u32::from_le_bytes(b.get(body_end..body_end + 4)?.try_into().ok()?);
    if crc32fast::hash(&b[..body_end]) != crc {
        return None;
    }
    let p = &b[4..body_end];
    let klen = usize::from(*p.first()?);
    let key = ClientKey::from_bytes(p.get(1..1 + klen)?)?;
    let rest = &p[1 + klen..];
    let change = match kind {
        KIND_UPSERT => {
            if rest.len() != 6 + 4 + 4 + 1 + 4 {
                return None;
            }
            Change::Upsert(Lease {
                key,
                chaddr: rest[0..6].try_into().ok()?,
                addr: Ipv4Addr::new(rest[6], rest[7], rest[8], rest[9]),
                expires: u32::from_le_bytes(rest[10..14].try_into().ok()?),
                state: LeaseState::from_u8(rest[14])?,
                subnet: u32::from_le_bytes(rest[15..19].try_into().ok()?),
            })
        }
        KIND_REMOVE if rest.is_empty() => Change::Remove(key),
        _ => return None,
    };
    Some((change, body_end + 4))
}

struct ShardFile {
    /// Shared with the syncer thread, which writes and syncs it without holding this lock.
    file: Arc<File>,
    /// Encoded records not yet written: the syncer writes them, so a worker never blocks on
    /// the disk (writeback throttling can stall a `write` for long).
    pending: Vec<u8>,
    generation: u64,
    /// Batches handed over by [`Journal::append_grouped`] (its tickets).
    written: u64,
}

/// Group-commit state of one shard's journal: which tickets are durable, which failed.
#[derive(Default)]
struct ShardSync {
    synced: AtomicU64,
    /// Tickets up to this one were in a failed `fdatasync`: their replies never leave.
    failed_through: AtomicU64,
    /// Set when a batch waits for the syncer.
    wanted: Mutex<bool>,
    /// The syncer holds records it took and has not yet written and synced.
    busy: AtomicBool,
    /// Tests: the syncer waits after taking records while this is set.
    #[cfg(test)]
    hold: AtomicBool,
    wake: std::sync::Condvar,
}

/// The journal of one daemon.
pub struct Journal {
    dir: PathBuf,
    durability: Durability,
    shards: Vec<Mutex<ShardFile>>,
    sync: Vec<ShardSync>,
    stop: AtomicBool,
    generation: AtomicU64,
    dirty: AtomicBool,
    records: AtomicU64,
    /// Records appended since the last snapshot.
    pub since_snapshot: AtomicU64,
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The leases (latest state per client).
    pub leases: Vec<Lease>,
    /// Snapshot generation loaded (0: none).
    pub snapshot_gen: u64,
    /// Journal records replayed.
    pub replayed: u64,
    /// Warnings (corruption found and repaired).
    pub warnings: Vec<String>,
}

fn journal_path(dir: &Path, generation: u64, shard: usize) -> PathBuf {
    dir.join(format!("journal-{generation:010}-{shard:03}.log"))
}

fn snapshot_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("snapshot-{generation:010}.snap"))
}

fn list(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<(u64, usize, PathBuf)>, JournalError> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).map_err(io(format!("listing {}", dir.display())))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(mid) = name.strip_prefix(prefix).and_then(|n| n.strip_suffix(suffix)) else { continue };
        let mut parts = mid.split('-');
        let Some(generation) = parts.next().and_then(|g| g.parse().ok()) else { continue };
        let shard = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push((generation, shard, e.path()));
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(format!("fsync of {}", dir.display())))
}

/// Reads a snapshot; `None` if it is damaged.
fn read_snapshot(path: &Path) -> Option<Vec<Lease>> {
    let mut data = vec![];
    File::open(path).ok()?.read_to_end(&mut data).ok()?;
    if data.len() < 8 + 8 + 8 + 4 || &data[..8] != SNAP_MAGIC {
        return None;
    }
    let (body, crc) = data.split_at(data.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let count = u64::from_le_bytes(body[16..24].try_into().ok()?);
    let mut at = 24;
    let mut leases = Vec::with_capacity(count as usize);
    while at < body.len() {
        match decode(&body[at..])? {
            (Change::Upsert(l), n) => {
                leases.push(l);
                at += n;
            }
            _ => return None,
        }
    }
    (leases.len() as u64 == count).then_some(leases)
}

/// Replays one journal file into `state`; truncates it at the first bad record.
fn replay(path: &Path, state: &mut HashMap<ClientKey, Lease>, warnings: &mut Vec<String>) -> Result<u64, JournalError> {
    let mut data = vec![];
    File::open(path)?.read_to_end(&mut data)?;
    let mut at = 0;
    let mut n = 0;
    while at < data.len() {
        match decode(&data[at..]) {
            Some((Change::Upsert(l), len)) => {
                state.insert(l.key, l);
                at += len;
            }
            Some((Change::Remove(k), len)) => {
                state.remove(&k);
                at += len;
            }
            None => {
                warnings.push(format!(
                    "{}: torn or corrupted record at byte {at} of {}; truncated there ({} bytes dropped)",
                    path.display(),
                    data.len(),
                    data.len() - at
                ));
                OpenOptions::new().write(true).open(path)?.set_len(at as u64)?;
                break;
            }
        }
        n += 1;
    }
    Ok(n)
}

impl Journal {
    /// Recovers the state in `dir` (created if missing).
    pub fn recover(dir: &Path) -> Result<Recovery, JournalError> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut r = Recovery::default();
        let mut snapshot: Vec<Lease> = vec![];
        let snaps = list(dir, "snapshot-", ".snap")?;
        for (generation, _, path) in snaps.iter().rev() {
            match read_snapshot(path) {
                Some(leases) => {
                    r.snapshot_gen = *generation;
                    snapshot = leases;
                    break;
                }
                None => r
                    .warnings
                    .push(format!("{}: damaged snapshot ignored, falling back to the previous one", path.display())),
            }
        }
        let journals: Vec<PathBuf> = list(dir, "journal-", ".log")?
            .into_iter()
            .filter(|(generation, _, path)| {
                *generation >= r.snapshot_gen && std::fs::metadata(path).map(|m| m.len() > 0).unwrap_or(true)
            })
            .map(|x| x.2)
            .collect();
        if journals.is_empty() {
            // Clean stop (or nothing since the snapshot): the snapshot is the state.
            r.leases = snapshot;
            return Ok(r);
        }
        let mut state: HashMap<ClientKey, Lease> = HashMap::with_capacity(snapshot.len());
        for l in snapshot {
            state.insert(l.key, l);
        }
        for path in journals {
            r.replayed += replay(&path, &mut state, &mut r.warnings)?;
        }
        r.leases = state.into_values().collect();
        Ok(r)
    }

    /// Opens the journal for `shards` shards, starting a new generation after everything in
    /// `dir`. Call [`snapshot`](Self::snapshot) right after, so the new generation starts from
    /// a snapshot of the recovered state.
    pub fn open(dir: &Path, shards: usize, durability: Durability) -> Result<Arc<Self>, JournalError> {
        let last = list(dir, "journal-", ".log")?
            .iter()
            .map(|x| x.0)
            .chain(list(dir, "snapshot-", ".snap")?.iter().map(|x| x.0))
            .max()
            .unwrap_or(0);
        let generation = last + 1;
        let mut files = vec![];
        for s in 0..shards {
            let path = journal_path(dir, generation, s);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(format!("opening {}", path.display())))?;
            files.push(Mutex::new(ShardFile {
                file: Arc::new(file),
                pending: Vec::with_capacity(64 * 1024),
                generation,
                written: 0,
            }));
        }
        sync_dir(dir)?;
        let j = Arc::new(Self {
            dir: dir.to_owned(),
            durability,
            sync: (0..files.len()).map(|_| ShardSync::default()).collect(),
            stop: AtomicBool::new(false),
            shards: files,
            generation: AtomicU64::new(generation),
            dirty: AtomicBool::new(false),
            records: AtomicU64::new(0),
            since_snapshot: AtomicU64::new(0),
        });
        if durability == Durability::Fsync {
            for s in 0..shards {
                let weak = Arc::downgrade(&j);
                std::thread::Builder::new()
                    .name(format!("journal-sync{s}"))
                    .spawn(move || Self::group_commit(&weak, s))?;
            }
        }
        if durability == Durability::Async {
            let weak = Arc::downgrade(&j);
            std::thread::Builder::new().name("journal-sync".into()).spawn(move || {
                while let Some(j) = weak.upgrade() {
                    if j.dirty.swap(false, Ordering::AcqRel) {
                        for s in &j.shards {
                            let f = s.lock().unwrap_or_else(|p| p.into_inner());
                            let _ = f.file.sync_data();
                        }
                    }
                    drop(j);
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            })?;
        }
        Ok(j)
    }

    /// Appends `changes` of shard `shard` with one write (after any records still waiting for
    /// the syncer), then makes them durable as the durability mode says.
    pub fn append(&self, shard: usize, changes: &[Change]) -> Result<(), JournalError> {
        let file = self.write_now(shard, changes)?;
        match self.durability {
            Durability::Fsync => file.sync_data().map_err(io("journal fdatasync"))?,
            Durability::Async => self.dirty.store(true, Ordering::Release),
        }
        Ok(())
    }

    /// Hands `changes` of shard `shard` over and returns at once. In `fsync` durability the
    /// result is a ticket: the records are durable once [`settled`](Self::settled) says so
    /// (group commit: the shard's syncer thread writes what has accumulated and runs one
    /// `fdatasync` for all of it, while the caller goes on with the next batches). In `async`
    /// durability they are written now and synced in the background (`None`).
    pub fn append_grouped(&self, shard: usize, changes: &[Change]) -> Result<Option<u64>, JournalError> {
        if self.durability == Durability::Async {
            self.write_now(shard, changes)?;
            self.dirty.store(true, Ordering::Release);
            return Ok(None);
        }
        let ticket = {
            let mut f = self.shards[shard % self.shards.len()].lock().unwrap_or_else(|p| p.into_inner());
            self.encode_into(&mut f.pending, changes);
            f.written += 1;
            f.written
        };
        let sync = &self.sync[shard % self.sync.len()];
        *sync.wanted.lock().unwrap_or_else(|p| p.into_inner()) = true;
        sync.wake.notify_one();
        Ok(Some(ticket))
    }

    /// Whether the batch of `ticket` (from [`append_grouped`](Self::append_grouped) on
    /// `shard`) is durable: `Some(true)`, or never will be because its write or `fdatasync`
    /// failed: `Some(false)`; `None` while the syncer works on it.
    pub fn settled(&self, shard: usize, ticket: u64) -> Option<bool> {
        let sync = &self.sync[shard % self.sync.len()];
        if ticket <= sync.failed_through.load(Ordering::Acquire) {
            Some(false)
        } else if ticket <= sync.synced.load(Ordering::Acquire) {
            Some(true)
        } else {
            None
        }
    }

    fn encode_into(&self, buf: &mut Vec<u8>, changes: &[Change]) {
        for c in changes {
            encode(c, buf);
        }
        self.records.fetch_add(changes.len() as u64, Ordering::Relaxed);
        self.since_snapshot.fetch_add(changes.len() as u64, Ordering::Relaxed);
    }

    /// The shard's file, locked, once its syncer holds no records it took but has not written:
    /// whoever writes under this lock then writes after everything handed over before, so the
    /// file keeps the records in the order they were made (replay depends on it).
    fn lock_idle(&self, shard: usize) -> std::sync::MutexGuard<'_, ShardFile> {
        let shard = shard % self.shards.len();
        loop {
            let f = self.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
            if !self.sync[shard].busy.load(Ordering::Acquire) {
                return f;
            }
            drop(f);
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// Writes what waits for the syncer, then `changes`, under the shard's lock (so records
    /// keep their order); returns the file written.
    fn write_now(&self, shard: usize, changes: &[Change]) -> Result<Arc<File>, JournalError> {
        let mut f = self.lock_idle(shard);
        let ShardFile { file, pending, .. } = &mut *f;
        self.encode_into(pending, changes);
        let written = (&**file).write_all(pending).map_err(io("journal write"));
        pending.clear();
        written?;
        Ok(file.clone())
    }

    /// The syncer of one shard: waits for handed-over batches, writes them to the shard's file
    /// and syncs it, then publishes the highest ticket that covers. The bytes, their last ticket
    /// and the file are taken together under the shard's lock, so a sync never vouches for
    /// records it did not write and sync (records written directly by
    /// [`append`](Self::append) meanwhile are synced there, or by the next round).
    fn group_commit(journal: &std::sync::Weak<Self>, shard: usize) {
        let mut bytes = Vec::with_capacity(64 * 1024);
        loop {
            let Some(j) = journal.upgrade() else { return };
            if j.stop.load(Ordering::Acquire) {
                return;
            }
            let sync = &j.sync[shard];
            {
                let wanted = sync.wanted.lock().unwrap_or_else(|p| p.into_inner());
                let (mut wanted, _) = sync
                    .wake
                    .wait_timeout_while(wanted, std::time::Duration::from_millis(100), |w| !*w)
                    .unwrap_or_else(|p| p.into_inner());
                if !*wanted {
                    continue;
                }
                *wanted = false;
            }
            let (target, file) = {
                let mut f = j.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
                std::mem::swap(&mut bytes, &mut f.pending);
                sync.busy.store(true, Ordering::Release);
                (f.written, f.file.clone())
            };
            #[cfg(test)]
            while sync.hold.load(Ordering::Acquire) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            if target > sync.synced.load(Ordering::Acquire) || !bytes.is_empty() {
                let done = (&*file).write_all(&bytes).and_then(|()| file.sync_data());
                bytes.clear();
                match done {
                    Ok(()) => sync.synced.store(target, Ordering::Release),
                    Err(e) => {
                        tracing::error!("lease journal write failed, withholding the replies waiting for it: {e}");
                        sync.failed_through.store(target, Ordering::Release);
                    }
                }
            }
            sync.busy.store(false, Ordering::Release);
        }
    }

    /// Records appended since start.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Writes a snapshot of `db` and starts a new journal generation; removes what the previous
    /// snapshot makes obsolete. Each shard is frozen only while it is copied.
    pub fn snapshot(&self, db: &LeaseDb) -> Result<u64, JournalError> {
        let new_generation = self.generation.load(Ordering::Acquire) + 1;
        let mut leases = vec![];
        for i in 0..db.shard_count() {
            // Copy and rotate under the shard's lock: every change is either in the copy or
            // journaled in the new generation (or both, harmlessly).
            let g = db.lock(i);
            leases.extend(g.records());
            for s in 0..self.shards.len() {
                if s % db.shard_count() != i {
                    continue;
                }
                let mut f = self.lock_idle(s);
                if f.generation != new_generation {
                    // What was written to the old file is durable before the syncer moves on to
                    // the new one (its tickets count writes to both).
                    f.file.sync_data().map_err(io("journal fdatasync before rotation"))?;
                    let path = journal_path(&self.dir, new_generation, s);
                    f.file = Arc::new(
                        OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&path)
                            .map_err(io(format!("opening {}", path.display())))?,
                    );
                    f.generation = new_generation;
                }
            }
            drop(g);
        }
        self.generation.store(new_generation, Ordering::Release);
        self.since_snapshot.store(0, Ordering::Relaxed);
        let tmp = self.dir.join(format!("snapshot-{new_generation:010}.tmp"));
        {
            let mut w = BufWriter::new(File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?);
            let mut hasher = crc32fast::Hasher::new();
            let mut put = |w: &mut BufWriter<File>, b: &[u8]| -> std::io::Result<()> {
                hasher.update(b);
                w.write_all(b)
            };
            put(&mut w, SNAP_MAGIC)?;
            put(&mut w, &new_generation.to_le_bytes())?;
            put(&mut w, &(leases.len() as u64).to_le_bytes())?;
            let mut rec = Vec::with_capacity(64);
            for l in &leases {
                rec.clear();
                encode(&Change::Upsert(*l), &mut rec);
                put(&mut w, &rec)?;
            }
            let crc = hasher.finalize();
            w.write_all(&crc.to_le_bytes())?;
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, snapshot_path(&self.dir, new_generation))?;
        sync_dir(&self.dir)?;
        // Keep this snapshot and the previous one, and the journals since the previous one.
        let snaps = list(&self.dir, "snapshot-", ".snap")?;
        let keep_from = snaps.iter().rev().nth(1).map(|s| s.0).unwrap_or(new_generation);
        for (generation, _, path) in snaps.iter().chain(list(&self.dir, "journal-", ".log")?.iter()) {
            if *generation < keep_from {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(new_generation)
    }

    /// Writes what waits for a syncer and makes everything durable (clean stop); ends the
    /// syncer threads.
    pub fn flush(&self) -> Result<(), JournalError> {
        self.stop.store(true, Ordering::Release);
        for s in 0..self.shards.len() {
            // After what a syncer took is written and synced (by the syncer).
            let mut f = self.lock_idle(s);
            let ShardFile { file, pending, .. } = &mut *f;
            (&**file).write_all(pending).map_err(io("journal write"))?;
            pending.clear();
            file.sync_data().map_err(io("journal fsync"))?;
        }
        Ok(())
    }
}

/// Checks a journal directory's invariants (for tests and `check-journal`).
pub fn verify_unique_addresses(leases: &[Lease], now: u32) -> Result<(), JournalError> {
    let mut seen: HashMap<Ipv4Addr, ClientKey> = HashMap::new();
    for l in leases.iter().filter(|l| l.state == LeaseState::Bound && l.expires > now) {
        if let Some(k) = seen.insert(l.addr, l.key) {
            return Err(JournalError::Conflict(format!("{} bound to both {k:?} and {:?}", l.addr, l.key)));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use dhcp_xdp_core::config::Config;

    fn lease(i: u8, state: LeaseState) -> Lease {
        let mac = [2, 0, 0, 0, 0, i];
        Lease {
            key: ClientKey::hw(1, &mac),
            chaddr: mac,
            addr: Ipv4Addr::new(198, 18, 0, i),
            expires: 5000,
            state,
            subnet: 1,
        }
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dhcp-xdp-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn records_round_trip_and_reject_damage() {
        for c in [Change::Upsert(lease(7, LeaseState::Bound)), Change::Remove(ClientKey::client_id(&[1, 2, 3]))] {
            let mut b = vec![];
            encode(&c, &mut b);
            assert_eq!(decode(&b), Some((c, b.len())));
            for i in 0..b.len() {
                let mut bad = b.clone();
                bad[i] ^= 0x40;
                assert_eq!(decode(&bad), None, "flipped byte {i} accepted");
            }
            for n in 0..b.len() {
                assert_eq!(decode(&b[..n]), None);
            }
        }
    }

    #[test]
    fn journal_replays_and_truncates_a_torn_tail() {
        let dir = tmpdir("torn");
        Journal::recover(&dir).unwrap();
        let j = Journal::open(&dir, 2, Durability::Fsync).unwrap();
        j.append(0, &[Change::Upsert(lease(1, LeaseState::Bound)), Change::Upsert(lease(2, LeaseState::Bound))])
            .unwrap();
        j.append(1, &[Change::Upsert(lease(3, LeaseState::Bound)), Change::Remove(lease(2, LeaseState::Bound).key)])
            .unwrap();
        drop(j);
        // Tear the last record of shard 0's file.
        let path = list(&dir, "journal-", ".log").unwrap().into_iter().find(|x| x.1 == 0).unwrap().2;
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 3).unwrap();
        let r = Journal::recover(&dir).unwrap();
        let mut addrs: Vec<_> = r.leases.iter().map(|l| l.addr.octets()[3]).collect();
        addrs.sort();
        assert_eq!(addrs, vec![1, 3], "lease 2 was torn in shard 0 and removed in shard 1");
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        // Recovery again: the tail is gone, no more warnings.
        assert!(Journal::recover(&dir).unwrap().warnings.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn one_pool() -> Config {
        Config::parse(
            "t",
            "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.1-198.18.0.200\"\n",
        )
        .unwrap()
    }

    /// Polls `f` every millisecond until it gives a value, for up to 5 s.
    pub(crate) fn poll<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if let Some(v) = f() {
                return Some(v);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Waits (up to 5 s) until `ticket` of `shard` settles.
    fn settle(j: &Journal, shard: usize, ticket: u64) -> Option<bool> {
        poll(|| j.settled(shard, ticket))
    }

    #[test]
    fn grouped_appends_settle_in_order_across_a_rotation_and_are_recovered() {
        let dir = tmpdir("group");
        let cfg = one_pool();
        Journal::recover(&dir).unwrap();
        let j = Journal::open(&dir, 2, Durability::Fsync).unwrap();
        let t1 = j.append_grouped(0, &[Change::Upsert(lease(1, LeaseState::Bound))]).unwrap().expect("ticket");
        let t2 = j.append_grouped(0, &[Change::Upsert(lease(2, LeaseState::Bound))]).unwrap().expect("ticket");
        assert!(t2 > t1);
        assert_eq!(j.settled(0, t2 + 1), None, "a ticket not yet written is not durable");
        // A snapshot rotates the files between two grouped appends.
        let db = LeaseDb::new(&cfg, 1, [], 100);
        j.snapshot(&db).unwrap();
        let t3 = j.append_grouped(0, &[Change::Upsert(lease(3, LeaseState::Bound))]).unwrap().expect("ticket");
        let t4 = j.append_grouped(1, &[Change::Upsert(lease(4, LeaseState::Bound))]).unwrap().expect("ticket");
        assert_eq!(settle(&j, 0, t3), Some(true));
        assert_eq!(settle(&j, 1, t4), Some(true));
        assert_eq!((j.settled(0, t1), j.settled(0, t2)), (Some(true), Some(true)), "earlier tickets too");
        j.flush().unwrap();
        drop(j);
        let mut got: Vec<_> = Journal::recover(&dir).unwrap().leases.iter().map(|l| l.addr).collect();
        got.sort();
        let want: Vec<_> = [3, 4].iter().map(|&i| lease(i, LeaseState::Bound).addr).collect();
        assert!(want.iter().all(|a| got.contains(a)), "{got:?}");
        // In async durability nothing waits.
        let dir = tmpdir("group-async");
        Journal::recover(&dir).unwrap();
        let j = Journal::open(&dir, 1, Durability::Async).unwrap();
        assert_eq!(j.append_grouped(0, &[Change::Upsert(lease(1, LeaseState::Bound))]).unwrap(), None);
    }

    /// A record written directly (the control loop's expiry sweep) lands after every record
    /// handed to the syncer before it, even while the syncer is still writing those: replay
    /// keeps the newest.
    #[test]
    fn direct_appends_stay_behind_handed_over_records() {
        let dir = tmpdir("order");
        Journal::recover(&dir).unwrap();
        let j = Journal::open(&dir, 1, Durability::Fsync).unwrap();
        j.sync[0].hold.store(true, Ordering::Release);
        j.append_grouped(0, &[Change::Upsert(lease(1, LeaseState::Bound))]).unwrap();
        let taken = poll(|| j.sync[0].busy.load(Ordering::Acquire).then_some(()));
        assert!(taken.is_some(), "the syncer never took the record");
        // The syncer holds the older record; let it go a little later.
        let release = {
            let j = j.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                j.sync[0].hold.store(false, Ordering::Release);
            })
        };
        j.append(0, &[Change::Upsert(lease(1, LeaseState::Released))]).unwrap();
        release.join().unwrap();
        j.flush().unwrap();
        drop(j);
        let r = Journal::recover(&dir).unwrap();
        assert_eq!(r.leases.len(), 1);
        assert_eq!(r.leases[0].state, LeaseState::Released, "the older record was replayed last");
    }

    #[test]
    fn snapshot_compacts_and_damaged_snapshot_falls_back() {
        let dir = tmpdir("snap");
        let cfg = one_pool();
        Journal::recover(&dir).unwrap();
        let j = Journal::open(&dir, 1, Durability::Fsync).unwrap();
        let db = LeaseDb::new(&cfg, 1, [lease(1, LeaseState::Bound), lease(2, LeaseState::Bound)], 100);
        let g1 = j.snapshot(&db).unwrap();
        j.append(0, &[Change::Upsert(lease(3, LeaseState::Bound))]).unwrap();
        let db2 = LeaseDb::new(
            &cfg,
            1,
            [lease(1, LeaseState::Bound), lease(2, LeaseState::Bound), lease(3, LeaseState::Bound)],
            100,
        );
        let g2 = j.snapshot(&db2).unwrap();
        j.append(0, &[Change::Upsert(lease(4, LeaseState::Bound))]).unwrap();
        assert!(g2 > g1);
        let r = Journal::recover(&dir).unwrap();
        assert_eq!((r.snapshot_gen, r.leases.len()), (g2, 4));
        // Damage the newest snapshot: the previous one plus the journals since it give the same.
        let p = snapshot_path(&dir, g2);
        let mut data = std::fs::read(&p).unwrap();
        let mid = data.len() / 2;
        data[mid] ^= 1;
        std::fs::write(&p, data).unwrap();
        let r = Journal::recover(&dir).unwrap();
        assert_eq!((r.snapshot_gen, r.leases.len()), (g1, 4), "{:?}", r.warnings);
        assert!(r.warnings[0].contains("damaged snapshot"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
