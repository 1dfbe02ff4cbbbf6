//! Lease persistence on a local disk: an exclusive state directory, an append-only journal file
//! per worker, periodic snapshots, and recovery. The byte format and replay are
//! [`dhcp_xdp_core::records`]; this module owns the files.
//!
//! The promise: a reply that depends on a record (an ACK) leaves only after an `fdatasync` that
//! covered the record, whatever the disk does. A worker hands a batch's records to its file's
//! syncer thread and goes on (group commit); the syncer writes what accumulated and syncs once
//! for all of it. When a write or sync fails, the file is cut back to its last synced length, the
//! tickets of that round are reported failed (their replies never leave) and the records are
//! kept and written again on the next round: serving resumes by itself when the disk does.
//! Records carry sequence numbers, so their order across files never matters. New journal
//! files, renamed snapshots and the directory are synced before a ticket can depend on them.
//!
//! It must never let a ticket settle as durable for records it did not write and sync, never
//! block a worker on the disk, and never remove a file recovery could still need.

use std::{
    fs::{File, OpenOptions},
    io::{BufWriter, Read as _, Write as _},
    os::unix::fs::{DirBuilderExt as _, FileExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use dhcp_xdp_core::{
    config::{Config, Durability},
    leases::{Change, Lease, LeaseDb},
    records::{self, Conflict, Replay},
};

use super::{
    Health, LeaseStore, Recovered, StoreError,
    segments::Segments,
    syncer::{Backend, Round, Syncer},
};

/// Most bytes of records a file keeps waiting for a failing or stalled disk.
const MAX_BACKLOG: usize = 64 << 20;

/// Whether `name` is a file a state directory holds.
fn is_state_file(name: &str) -> bool {
    name == "lock"
        || name == super::duid::FILE
        || name == format!("{}.tmp", super::duid::FILE)
        || name == super::hosts::FILE
        || name == format!("{}.tmp", super::hosts::FILE)
        || super::segments::is_spare(name)
        || (name.starts_with("journal-") && name.ends_with(".log"))
        || (name.starts_with("snapshot-") && (name.ends_with(".snap") || name.ends_with(".tmp")))
}

/// An existing `dir` is taken only when it is ours: owned by this user, holding nothing but
/// state files (an empty directory, or one a daemon made).
fn check_ours(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt as _;
    let not_ours = |why: String| StoreError::NotOurs { dir: dir.to_owned(), why };
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(format!("reading {}", dir.display()))(e)),
    };
    if !meta.is_dir() {
        return Err(not_ours("not a directory".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(not_ours(format!("owned by uid {}, not {me}", meta.uid())));
    }
    let entries = std::fs::read_dir(dir).map_err(io(format!("listing {}", dir.display())))?;
    for e in entries {
        let e = e.map_err(io(format!("listing {}", dir.display())))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !is_state_file(&name) {
            return Err(not_ours(format!("it holds {name}")));
        }
    }
    Ok(())
}

/// Names a failed file operation.
fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Io { what, source }
}

fn journal_path(dir: &Path, generation: u64, file: usize) -> PathBuf {
    dir.join(format!("journal-{generation:010}-{file:03}.log"))
}

fn snapshot_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("snapshot-{generation:010}.snap"))
}

/// Files named `{prefix}{generation}[-{n}]{suffix}` in `dir`, sorted.
fn list(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<(u64, usize, PathBuf)>, StoreError> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).map_err(io(format!("listing {}", dir.display())))? {
        let e = e.map_err(io(format!("listing {}", dir.display())))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(mid) = name.strip_prefix(prefix).and_then(|n| n.strip_suffix(suffix)) else { continue };
        let mut parts = mid.split('-');
        let Some(generation) = parts.next().and_then(|g| g.parse().ok()) else { continue };
        let n = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push((generation, n, e.path()));
    }
    out.sort();
    Ok(out)
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(format!("fsync of {}", dir.display())))
}

/// A snapshot's temporary file: created 0600 (lease data names subscribers), written from its
/// start.
fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(path)
}

/// The state directory, held exclusively (an `flock` on its `lock` file) by one process for as
/// long as this lives.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Creates `dir` (0700) if missing, tightens it to 0700 if not, and locks it before
    /// anything in it is read. An existing directory that is not ours (another user's, or
    /// holding other files) is refused ([`StoreError::NotOurs`]), never chmod'ed. Another holder: [`StoreError::Locked`] naming its pid.
    pub fn lock(dir: &Path) -> Result<Self, StoreError> {
        check_ours(dir)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(format!("creating {}", dir.display())))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(format!("making {} private", dir.display())))?;
        let path = dir.join("lock");
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io(format!("opening {}", path.display())))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut s = String::new();
                let _ = f.read_to_string(&mut s);
                return Err(StoreError::Locked { dir: dir.to_owned(), holder: s.trim().parse().ok() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(format!("locking {}", path.display()))(e)),
        }
        // The holder's pid, for the message a second daemon prints (best effort: a full disk
        // must not stop the start).
        let _ = f.set_len(0).and_then(|()| f.write_all(format!("{}\n", std::process::id()).as_bytes()));
        Ok(Self { dir: dir.to_owned(), _lock: f })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The leases (latest state per client, one per address).
    pub leases: Vec<Lease>,
    /// The DHCPv6 leases (latest state per key; the table keeps one per address).
    pub leases6: Vec<dhcp_xdp_core::leases::v6::Lease6>,
    /// What the leases keep beside them (their clients' host names, their relays' option 82).
    pub attrs: dhcp_xdp_core::leases::AttrMap,
    /// Snapshot generation loaded (0: none).
    pub snapshot_gen: u64,
    /// Journal records replayed.
    pub replayed: u64,
    /// Highest sequence number on disk: numbering continues after it.
    pub max_seq: u64,
    /// Damage found (and, when recovering for a daemon, the torn tails cut off), conflicts
    /// resolved.
    pub warnings: Vec<String>,
    /// Addresses two clients held; the one changed last was kept.
    pub conflicts: Vec<Conflict>,
}

/// Recovers the leases of a locked state directory for the daemon that holds it: a torn tail
/// (a write the disk never finished) is cut off so that new records follow whole ones.
pub fn recover(state: &StateDir, now: u32) -> Result<Recovery, StoreError> {
    load(&state.dir, true, now)
}

/// Reads the leases of a state directory without changing anything in it (another daemon may
/// be running on it): `dhcp-xdp leases`.
pub fn inspect(dir: &Path, now: u32) -> Result<Recovery, StoreError> {
    load(dir, false, now)
}

fn load(dir: &Path, repair: bool, now: u32) -> Result<Recovery, StoreError> {
    let mut r = Recovery::default();
    let mut replay = Replay::new();
    for (generation, _, path) in list(dir, "snapshot-", ".snap")?.iter().rev() {
        let mut data = vec![];
        let read = File::open(path).and_then(|mut f| f.read_to_end(&mut data));
        match read.ok().and_then(|_| records::decode_snapshot(&data)) {
            Some(leases) => {
                r.snapshot_gen = *generation;
                replay.base(leases);
                break;
            }
            None => r
                .warnings
                .push(format!("{}: damaged snapshot ignored, falling back to the previous one", path.display())),
        }
    }
    for (generation, _, path) in list(dir, "journal-", ".log")? {
        if generation < r.snapshot_gen {
            continue;
        }
        let mut data = vec![];
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(io(format!("reading {}", path.display())))?;
        let scan = replay.file(&data);
        r.replayed += scan.records;
        for (start, end) in &scan.skipped {
            r.warnings.push(format!(
                "{}: damaged bytes {start}..{end} skipped; the valid records after them were replayed",
                path.display()
            ));
        }
        if let Some(at) = scan.torn_at {
            let what = format!("{}: torn record at byte {at} of {}", path.display(), data.len());
            if repair {
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(at as u64))
                    .map_err(io(format!("cutting the torn tail of {}", path.display())))?;
                r.warnings.push(format!("{what}; cut off ({} bytes)", data.len() - at));
            } else {
                r.warnings.push(format!("{what} (left as it is: read-only)"));
            }
        }
    }
    r.max_seq = replay.max_seq;
    r.leases6 = replay.take6();
    r.attrs = replay.take_attrs();
    let (leases, conflicts) = replay.finish(now);
    for c in &conflicts {
        r.warnings.push(format!(
            "{} was held by {:?} and {:?}; kept {:?}, the one changed last",
            c.addr, c.dropped.key, c.kept.key, c.kept.key
        ));
    }
    r.leases = leases;
    r.conflicts = conflicts;
    Ok(r)
}

/// One journal file and how much of it is known good.
pub(crate) struct JournalFile {
    file: File,
    path: PathBuf,
    /// Bytes written and synced: the next round is written here, and after a failed write or
    /// sync the file is cut back to this.
    good_len: AtomicU64,
}

impl JournalFile {
    /// A new journal file at `path`: a preallocated segment when one is ready (its writes then
    /// change no metadata), a plain empty file otherwise. The caller syncs the directory.
    fn create(path: PathBuf, segments: &Segments) -> std::io::Result<Self> {
        if segments.take(&path).is_some() {
            let file = OpenOptions::new().write(true).open(&path)?;
            return Ok(Self { file, path, good_len: AtomicU64::new(0) });
        }
        // A plain file (never one that exists: each generation's names are new; were it there,
        // its records would be kept and written after).
        let file = OpenOptions::new().create(true).write(true).truncate(false).mode(0o600).open(&path)?;
        let len = file.metadata()?.len();
        Ok(Self { file, path, good_len: AtomicU64::new(len) })
    }
}

/// Environment variable naming a file whose contents inject disk faults into the syncers:
/// `write-error`, `sync-error` (EIO) or `stall` (the syncer waits while the file says so).
/// For the fault tests; unset, it costs nothing.
pub const FAULTS_ENV: &str = "DHCP_XDP_JOURNAL_FAULTS";

/// The fault the test hook asks for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Faults {
    None,
    WriteError,
    SyncError,
    Stall,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The journal files as the syncer's backend: a round is one write at the end of the slot's
/// file and one `fdatasync`; a failed round is cut back and written again with the next.
pub(crate) struct Files {
    state: StateDir,
    /// The preallocated segments new journal files are made of.
    segments: Arc<Segments>,
    /// How long each `fdatasync` took (for the metrics).
    sync_seconds: prometheus_client::metrics::histogram::Histogram,
    /// Fault injection for the tests (see [`FAULTS_ENV`]).
    faults: Mutex<Option<PathBuf>>,
}

/// A slot's file (`None` while it could not be created: full disk at start; the syncer
/// retries) and its generation.
pub(crate) struct FileSlot {
    file: Option<Arc<JournalFile>>,
    generation: u64,
}

impl Files {
    fn faults(&self) -> Faults {
        let Some(p) = lock(&self.faults).clone() else { return Faults::None };
        match std::fs::read_to_string(p).as_deref().map(str::trim) {
            Ok("write-error") => Faults::WriteError,
            Ok("sync-error") => Faults::SyncError,
            Ok("stall") => Faults::Stall,
            _ => Faults::None,
        }
    }

    /// Writes `bytes` at the end of `f` and syncs; on failure cuts the file back to its last
    /// good length, so whatever is written next follows whole records.
    fn write_round(&self, f: &JournalFile, bytes: &[u8], health: &Health) -> std::io::Result<()> {
        let mut fault = self.faults();
        while fault == Faults::Stall {
            std::thread::sleep(Duration::from_millis(20));
            fault = self.faults();
        }
        let eio = || std::io::Error::from_raw_os_error(libc::EIO);
        let result = (|| {
            let at = f.good_len.load(Ordering::Acquire);
            if fault == Faults::WriteError {
                // A short write, as a full disk leaves it: half the bytes, then the error.
                f.file.write_all_at(&bytes[..bytes.len() / 2], at)?;
                return Err(eio());
            }
            f.file.write_all_at(bytes, at)?;
            if fault == Faults::SyncError {
                return Err(eio());
            }
            let t = Instant::now();
            f.file.sync_data()?;
            let us = t.elapsed().as_micros() as u64;
            health.syncs.fetch_add(1, Ordering::Relaxed);
            health.sync_us.fetch_add(us, Ordering::Relaxed);
            health.sync_max_us.fetch_max(us, Ordering::Relaxed);
            self.sync_seconds.observe(us as f64 / 1e6);
            Ok(())
        })();
        match result {
            Ok(()) => {
                f.good_len.fetch_add(bytes.len() as u64, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                let good = f.good_len.load(Ordering::Acquire);
                if let Err(t) = f.file.set_len(good) {
                    // Replay skips a partial record anyway; say so and go on.
                    tracing::error!("cutting {} back to {good} bytes: {t}", f.path.display());
                }
                Err(e)
            }
        }
    }
}

impl Backend for Files {
    type Pending = Vec<u8>;
    type SlotState = FileSlot;
    type Target = Option<Arc<JournalFile>>;
    type Conn = ();
    const THREAD: &'static str = "journal-sync";
    const MAX_BACKLOG: usize = MAX_BACKLOG;
    // One write and one sync take the whole backlog: the disk's cost is per sync, not per byte.
    const MAX_ROUND: usize = usize::MAX;
    // A record: ~60 bytes.
    const CHANGE_SIZE: usize = 64;
    const RETRY_FAILED: bool = true;

    fn push(pending: &mut Vec<u8>, changes: &[(u64, Change)]) {
        for (seq, c) in changes {
            records::encode(*seq, c, pending);
        }
    }
    fn size(pending: &Vec<u8>) -> usize {
        pending.len()
    }
    fn take(from: &mut Vec<u8>, into: &mut Vec<u8>) {
        into.append(from);
    }
    fn split_off(pending: &mut Vec<u8>, at: usize) -> Vec<u8> {
        pending.split_off(at)
    }
    fn clear(pending: &mut Vec<u8>) {
        pending.clear();
    }
    fn target(&self, slot: usize, state: &mut FileSlot) -> Option<Arc<JournalFile>> {
        if state.file.is_none() {
            let dir = self.state.path();
            match JournalFile::create(journal_path(dir, state.generation, slot), &self.segments) {
                Ok(new) => {
                    state.file = Some(Arc::new(new));
                    let _ = sync_dir(dir);
                }
                Err(e) => tracing::debug!("journal file {slot} still cannot be created: {e}"),
            }
        }
        state.file.clone()
    }
    fn commit(
        &self,
        _: usize,
        _: &mut (),
        file: &Option<Arc<JournalFile>>,
        bytes: &Vec<u8>,
        health: &Health,
    ) -> Result<Round, String> {
        match file {
            Some(f) => self.write_round(f, bytes, health).map(|()| Round::Durable).map_err(|e| e.to_string()),
            None => Err("journal file not created".into()),
        }
    }
    fn failing(&self, slot: usize, reason: &str) -> String {
        format!("journal {slot}: write or sync failed ({reason}); withholding ACKs until it works")
    }
    fn recovered(&self, slot: usize, down: Duration) -> String {
        format!("journal {slot}: disk writes succeed again after {down:.1?}")
    }
}

/// The journal of one daemon: a file per worker, written by the group-commit syncer, and
/// snapshots.
pub struct Journal {
    syncer: Arc<Syncer<Files>>,
    durability: Durability,
    generation: AtomicU64,
    /// Records appended since the last snapshot.
    pub since_snapshot: AtomicU64,
}

impl Journal {
    /// Opens the journal in a locked state directory with `slots` files (one per worker),
    /// starting a new generation after everything there. Call [`snapshot`](Self::snapshot)
    /// right after. A file that cannot be created (full disk) is retried by its syncer; until
    /// then its tickets do not settle. Journal files are preallocated segments of `segment`
    /// bytes (0: plain files that grow): two generations' worth are kept ready, made now
    /// where none are (a first start) and in the background after.
    pub fn open(state: StateDir, slots: usize, durability: Durability, segment: u64) -> Result<Arc<Self>, StoreError> {
        let dir = state.dir.clone();
        let segments = Segments::start(&dir, segment, 2 * slots.max(1), true)
            .map_err(io(format!("preparing journal segments in {}", dir.display())))?;
        let last = list(&dir, "journal-", ".log")?
            .iter()
            .map(|x| x.0)
            .chain(list(&dir, "snapshot-", ".snap")?.iter().map(|x| x.0))
            .max()
            .unwrap_or(0);
        let generation = last + 1;
        let mut files = vec![];
        for s in 0..slots.max(1) {
            let file = match JournalFile::create(journal_path(&dir, generation, s), &segments) {
                Ok(f) => Some(Arc::new(f)),
                Err(e) => {
                    tracing::error!("creating journal file {s} in {}: {e}; retrying in the background", dir.display());
                    None
                }
            };
            files.push(FileSlot { file, generation });
        }
        if let Err(e) = sync_dir(&dir) {
            tracing::error!("{e}");
        }
        let backend = Files {
            state,
            segments,
            sync_seconds: prometheus_client::metrics::histogram::Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.000_05, 2.0, 16),
            ),
            faults: Mutex::new(std::env::var_os(FAULTS_ENV).map(PathBuf::from)),
        };
        Ok(Arc::new(Self {
            syncer: Syncer::start(backend, files)?,
            durability,
            generation: AtomicU64::new(generation),
            since_snapshot: AtomicU64::new(0),
        }))
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        self.syncer.backend().state.path()
    }

    /// The preallocated segments.
    pub fn segments(&self) -> &Segments {
        &self.syncer.backend().segments
    }

    /// How the disk is doing.
    pub fn health(&self) -> &Health {
        &self.syncer.health
    }

    /// How long each `fdatasync` took.
    pub fn sync_seconds(&self) -> &prometheus_client::metrics::histogram::Histogram {
        &self.syncer.backend().sync_seconds
    }

    /// Hands numbered `changes` to slot `slot`'s syncer and returns at once.
    /// In `fsync` durability the result is a ticket: the records are durable once
    /// [`settled`](Self::settled) says so. In `async` durability they are written and synced
    /// in the background and nothing waits (`None`).
    pub fn append(&self, slot: usize, changes: &[(u64, Change)]) -> Result<Option<u64>, StoreError> {
        let ticket = self.syncer.append(slot, changes)?;
        self.since_snapshot.fetch_add(changes.len() as u64, Ordering::Relaxed);
        Ok((self.durability == Durability::Fsync).then_some(ticket))
    }

    /// Whether the batch of `ticket` (from [`append`](Self::append) on `slot`) is durable:
    /// `Some(true)`; never will be because its round failed: `Some(false)`; `None` while the
    /// syncer works on it.
    pub fn settled(&self, slot: usize, ticket: u64) -> Option<bool> {
        self.syncer.settled(slot, ticket)
    }

    /// Records appended since start.
    pub fn records(&self) -> u64 {
        self.syncer.records()
    }

    /// Clean stop: waits (up to `timeout`) until everything handed over is durable, then ends
    /// the syncers.
    pub fn flush(&self, timeout: Duration) -> Result<(), StoreError> {
        self.syncer.flush(timeout)
    }

    /// Writes a snapshot of `db` and compacts what it makes obsolete. Order: every journal
    /// moves to a new generation first (so a change made after a shard is copied is journaled
    /// in the new generation), then each shard is copied under its lock. A snapshot that fails
    /// leaves no temporary file; the journals since the previous snapshot stay, so recovery
    /// still finds everything.
    pub fn snapshot(&self, db: &LeaseDb) -> Result<u64, StoreError> {
        let dir = self.dir().to_owned();
        let new_generation = self.generation.load(Ordering::Acquire) + 1;
        // Every record numbered from here on may be newer than the copy; the copy's records are
        // numbered `floor` so that journal records from the same moment win ties.
        let floor = db.next_seq();
        let mut created = vec![];
        for s in 0..self.syncer.slots() {
            match JournalFile::create(journal_path(&dir, new_generation, s), self.segments()) {
                Ok(f) => created.push(Arc::new(f)),
                Err(e) => {
                    for f in &created {
                        self.segments().recycle(&f.path);
                    }
                    return Err(io(format!("creating journal generation {new_generation}"))(e));
                }
            }
        }
        sync_dir(&dir)?;
        for (s, f) in created.into_iter().enumerate() {
            self.syncer.with_slot(s, |slot| {
                slot.file = Some(f);
                slot.generation = new_generation;
            });
        }
        self.generation.store(new_generation, Ordering::Release);
        let mut leases: Vec<Change> = vec![];
        let mut attrs: Vec<Change> = vec![];
        for i in 0..db.shard_count() {
            let shard = db.lock(i);
            leases.extend(shard.records().map(Change::Upsert));
            attrs.extend(shard.attrs().map(|(a, k, v)| Change::Attr(a, k, v.into())));
        }
        leases.extend(
            db.table6()
                .leases()
                .filter(|l| l.state != dhcp_xdp_core::leases::v6::Lease6State::Advertised)
                .map(|l| Change::Upsert6(l.clone())),
        );
        // Names after the leases they name (a snapshot's records all share one number).
        leases.append(&mut attrs);
        let tmp = dir.join(format!("snapshot-{new_generation:010}.tmp"));
        let written = Self::write_snapshot(&tmp, new_generation, floor, &leases)
            .and_then(|()| std::fs::rename(&tmp, snapshot_path(&dir, new_generation)));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(format!("writing snapshot {new_generation}"))(e));
        }
        sync_dir(&dir)?;
        self.since_snapshot.store(0, Ordering::Relaxed);
        // Keep this snapshot and the previous one, and the journals since the previous one.
        let snaps = list(&dir, "snapshot-", ".snap")?;
        let keep_from = snaps.iter().rev().nth(1).map(|s| s.0).unwrap_or(new_generation);
        for (generation, _, path) in &snaps {
            if *generation < keep_from {
                let _ = std::fs::remove_file(path);
            }
        }
        // Obsolete journals become spare segments (or go, when enough are spare).
        for (generation, _, path) in list(&dir, "journal-", ".log")? {
            if generation < keep_from {
                self.segments().recycle(&path);
            }
        }
        for (_, _, path) in list(&dir, "snapshot-", ".tmp")? {
            let _ = std::fs::remove_file(path);
        }
        Ok(new_generation)
    }

    fn write_snapshot(path: &Path, generation: u64, floor: u64, leases: &[Change]) -> std::io::Result<()> {
        let mut w = BufWriter::new(create_private(path)?);
        let mut hasher = crc32fast::Hasher::new();
        let mut put = |w: &mut BufWriter<File>, b: &[u8]| -> std::io::Result<()> {
            hasher.update(b);
            w.write_all(b)
        };
        put(&mut w, &records::snapshot_header(generation, leases.len() as u64))?;
        let mut rec = Vec::with_capacity(64);
        for l in leases {
            rec.clear();
            records::encode(floor, l, &mut rec);
            put(&mut w, &rec)?;
        }
        let crc = hasher.finalize();
        w.write_all(&crc.to_le_bytes())?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()
    }
}

/// The journal as the daemon's lease store: the state directory locked and recovered at
/// open (torn tails cut), the tables built from what it held, a snapshot at start, whenever
/// `snapshot-every` records were appended, and at the clean stop.
pub struct JournalStore {
    journal: Arc<Journal>,
    /// What [`open`](Self::open) recovered, until [`recover`](LeaseStore::recover) takes it.
    recovery: Mutex<Option<(Recovery, Instant)>>,
}

impl JournalStore {
    /// Locks `dir`, recovers its leases and opens a journal of `slots` files (preallocated
    /// segments of `segment` bytes; 0: plain files) after them.
    pub fn open(dir: &Path, slots: usize, durability: Durability, segment: u64) -> Result<Arc<Self>, StoreError> {
        let t = Instant::now();
        let state = StateDir::lock(dir)?;
        let rec = recover(&state, crate::clock::unix_now()).map_err(|e| match e {
            StoreError::Io { what, source } => {
                StoreError::Io { what: format!("recovering leases from {}: {what}", dir.display()), source }
            }
            e => e,
        })?;
        let journal = Journal::open(state, slots, durability, segment)?;
        Ok(Arc::new(Self { journal, recovery: Mutex::new(Some((rec, t))) }))
    }

    /// The journal.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }
}

impl LeaseStore for JournalStore {
    fn name(&self) -> &'static str {
        "lease journal"
    }

    fn load_hosts(&self) -> Result<Vec<serde_json::Value>, String> {
        super::hosts::load(self.journal.dir()).map_err(|e| e.to_string())
    }

    fn save_hosts(&self, hosts: &[serde_json::Value]) -> Result<(), String> {
        super::hosts::save(self.journal.dir(), hosts).map_err(|e| e.to_string())
    }

    fn recover(&self, cfg: &Config, lanes: usize, workers: usize) -> Result<Recovered, StoreError> {
        let (rec, t) = lock(&self.recovery).take().unwrap_or_else(|| (Recovery::default(), Instant::now()));
        for w in &rec.warnings {
            tracing::warn!("journal warning: {w}");
        }
        let n = rec.leases.len() + rec.leases6.len();
        let db = LeaseDb::with_lanes(cfg, lanes, workers, rec.leases, crate::clock::unix_now());
        db.restore_attrs(&rec.attrs);
        db.continue_after(rec.max_seq);
        db.restore6(cfg, rec.leases6, crate::clock::unix_now());
        if let Err(e) = self.journal.snapshot(&db) {
            tracing::warn!("journal warning: no snapshot at start ({e}); the journals since the last one stay");
        }
        let report = format!(
            "leases: {n} records recovered from {} (snapshot {}, {} journal records) in {:.0?}; durability {:?}",
            self.journal.dir().display(),
            rec.snapshot_gen,
            rec.replayed,
            t.elapsed(),
            cfg.durability
        );
        Ok(Recovered { db, leases: n, report })
    }

    fn append(&self, slot: usize, changes: &[(u64, Change)]) -> Result<Option<u64>, StoreError> {
        self.journal.append(slot, changes)
    }

    fn settled(&self, slot: usize, ticket: u64) -> Option<bool> {
        self.journal.settled(slot, ticket)
    }

    fn records(&self) -> u64 {
        self.journal.records()
    }

    fn health(&self) -> &Health {
        self.journal.health()
    }

    fn lag(&self) -> Duration {
        self.journal.syncer.lag()
    }

    fn tick(&self, cfg: &Config, db: &LeaseDb) {
        let j = &self.journal;
        if j.since_snapshot.load(Ordering::Relaxed) >= cfg.snapshot_every
            && !j.health().failing.load(Ordering::Relaxed)
            && let Err(e) = j.snapshot(db)
        {
            tracing::error!("snapshot failed (the journals since the last one stay): {e}");
        }
    }

    fn stop(&self, db: &LeaseDb, timeout: Duration) -> Result<String, String> {
        let j = &self.journal;
        match j.flush(timeout).map(|()| j.snapshot(db)) {
            Ok(Ok(generation)) => Ok(format!("journal flushed, snapshot {generation} written")),
            Ok(Err(e)) => Err(format!("journal flushed; snapshot failed (the journals stay): {e}")),
            Err(e) => Err(format!("journal not flushed: {e}; ACKs it held were not sent")),
        }
    }

    fn status(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = super::health_status(self);
        let seg = self.journal.segments();
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        m.insert(
            "segments".into(),
            serde_json::json!({
                "bytes": seg.size(),
                "spare": seg.ready(),
                "preallocated-files": n(&seg.taken),
                "plain-files": n(&seg.plain),
                "made": n(&seg.made),
                "recycled": n(&seg.recycled),
            }),
        );
        m
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "dhcp_xdp_journal_sync_seconds",
            "Time an fdatasync of the lease journal took",
            self.journal.sync_seconds().clone(),
        );
    }

    fn encode_metrics(&self, enc: &mut prometheus_client::encoding::DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use crate::metrics::{counter_family, gauge_family};
        gauge_family(
            enc,
            "dhcp_xdp_journal_failing",
            "1 while lease journal writes fail (ACKs are withheld)",
            [(vec![], f64::from(u8::from(self.health().failing.load(Ordering::Relaxed))))],
        )?;
        let seg = self.journal.segments();
        gauge_family(
            enc,
            "dhcp_xdp_journal_spare_segments",
            "Preallocated journal segments ready for the next generations",
            [(vec![], seg.ready() as f64)],
        )?;
        counter_family(
            enc,
            "dhcp_xdp_journal_files",
            "Journal files started, by kind (preallocated segment, or plain file when no segment was ready)",
            [
                (vec![("kind", "preallocated".to_owned())], seg.taken.load(Ordering::Relaxed)),
                (vec![("kind", "plain".to_owned())], seg.plain.load(Ordering::Relaxed)),
            ],
        )?;
        counter_family(enc, "dhcp_xdp_journal_records", "Lease records journaled", [(vec![], self.records())])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use dhcp_xdp_core::{config::Config, leases::LeaseState};

    use super::*;
    use dhcp_xdp_core::testing::lease;

    pub(crate) fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dhcp-xdp-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// A directory that is not ours is refused and left as it was: one holding other files,
    /// one of another user. An empty one, and one a daemon made, are taken.
    #[test]
    fn a_state_directory_that_is_not_ours_is_refused_not_chmodded() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let d = tmpdir("notours");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.join("notes.txt"), "an operator's file").unwrap();
        let e = StateDir::lock(&d).unwrap_err();
        assert!(matches!(&e, StoreError::NotOurs { why, .. } if why.contains("notes.txt")), "{e}");
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o777, 0o755, "left as it was");
        assert!(!d.join("lock").exists());
        std::fs::remove_file(d.join("notes.txt")).unwrap();
        // Empty: taken (and made private); then it holds only state files: taken again.
        drop(StateDir::lock(&d).unwrap());
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
        std::fs::write(d.join("journal-0000000001-000.log"), b"").unwrap();
        drop(StateDir::lock(&d).unwrap());
        if nix::unistd::geteuid().is_root() {
            // Another user's directory.
            nix::unistd::chown(&d, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            let e = StateDir::lock(&d).unwrap_err();
            assert!(matches!(&e, StoreError::NotOurs { why, .. } if why.contains("uid 65534")), "{e}");
        }
        let _ = std::fs::remove_dir_all(&d);
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
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(v) = f() {
                return Some(v);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The state directory once a dropped journal's syncer has let go of it (its last
    /// reference may end in the syncer thread, a moment after the test's).
    fn relock(dir: &Path) -> StateDir {
        poll(|| StateDir::lock(dir).ok()).expect("the state directory stayed locked")
    }

    /// Waits (up to 5 s) until `ticket` of `slot` settles.
    fn settle(j: &Journal, slot: usize, ticket: u64) -> Option<bool> {
        poll(|| j.settled(slot, ticket))
    }

    fn open(dir: &Path, slots: usize) -> Arc<Journal> {
        let state = StateDir::lock(dir).unwrap();
        recover(&state, 0).unwrap();
        Journal::open(state, slots, Durability::Fsync, 0).unwrap()
    }

    /// `changes` numbered from `first`.
    fn num(first: u64, changes: &[Change]) -> Vec<(u64, Change)> {
        changes.iter().enumerate().map(|(k, c)| (first + k as u64, c.clone())).collect()
    }

    fn up(i: u8, state: LeaseState) -> Change {
        Change::Upsert(lease(i, state))
    }

    fn addrs(r: &Recovery) -> Vec<u8> {
        let mut v: Vec<u8> = r.leases.iter().map(|l| l.addr.octets()[3]).collect();
        v.sort();
        v
    }

    #[test]
    fn the_state_directory_is_private_and_held_by_one_process() {
        let dir = tmpdir("lock");
        let held = StateDir::lock(&dir).unwrap();
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        match StateDir::lock(&dir) {
            Err(StoreError::Locked { dir: d, holder }) => {
                assert_eq!(d, dir);
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("a second lock was not refused: {other:?}"),
        }
        let err = StateDir::lock(&dir).unwrap_err().to_string();
        assert!(err.contains(&dir.display().to_string()) && err.contains("pid"), "{err}");
        let j = Journal::open(held, 1, Durability::Fsync, 0).unwrap();
        let t = j.append(0, &num(1, &[up(1, LeaseState::Bound)])).unwrap().unwrap();
        assert_eq!(settle(&j, 0, t), Some(true));
        j.snapshot(&LeaseDb::new(&one_pool(), 1, [lease(1, LeaseState::Bound)], 100)).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            assert_eq!(e.metadata().unwrap().mode() & 0o777, 0o600, "{}", e.path().display());
        }
        j.flush(Duration::from_secs(5)).unwrap();
        drop(j);
        // Released with the journal: the directory can be taken again.
        drop(relock(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// DHCPv6 leases go through the same journal: appended, copied into a snapshot from the
    /// v6 table, then changed and removed after it, and recovered lease by lease.
    #[test]
    fn v6_leases_are_journaled_snapshotted_and_recovered() {
        use dhcp_xdp_core::{
            dhcp6::IaKind,
            leases::v6::{Ask6, Key6, Lease6State},
        };
        let cfg = Config::parse(
            "t",
            "[[subnet6]]\nsubnet = \"2001:db8:1::/64\"\n[[subnet6.pool]]\nrange = \"2001:db8:1::10-2001:db8:1::20\"\n\
             [[subnet6.pd-pool]]\nprefix = \"2001:db8:100::\"\nprefix-len = 48\ndelegated-len = 56\n",
        )
        .unwrap();
        let dir = tmpdir("v6");
        let j = open(&dir, 1);
        let db = LeaseDb::new(&cfg, 1, [], 100);
        let key = |kind, n: u8| Key6 { kind, subnet: 1, duid: std::sync::Arc::from(&[0, 3, 0, 1, n][..]), iaid: 1 };
        let bind = |k: &Key6| {
            let mut t = db.table6();
            t.bind(&cfg.subnets6[0], Ask6::new(k), true, 0, 100).unwrap();
            let mut c = vec![];
            t.drain_changes(&mut c);
            db.numbered(c.into_iter()).collect::<Vec<_>>()
        };
        let (a1, a2, p1) = (key(IaKind::Na, 1), key(IaKind::Na, 2), key(IaKind::Pd, 1));
        for k in [&a1, &a2, &p1] {
            let t = j.append(0, &bind(k)).unwrap().expect("ticket");
            assert_eq!(settle(&j, 0, t), Some(true));
        }
        j.snapshot(&db).unwrap();
        // After the snapshot: a2 released, a1 declined.
        let a1_addr = db.table6().get(&a1).unwrap().addr;
        let a2_addr = db.table6().get(&a2).unwrap().addr;
        let mut c = vec![];
        {
            let mut t = db.table6();
            assert!(t.release(&a2, a2_addr, 128));
            assert!(t.decline(&a1, a1_addr, 3600, 100));
            t.drain_changes(&mut c);
        }
        let t = j.append(0, &db.numbered(c.into_iter()).collect::<Vec<_>>()).unwrap().expect("ticket");
        assert_eq!(settle(&j, 0, t), Some(true));
        j.flush(Duration::from_secs(5)).unwrap();
        drop(j);
        let r = inspect(&dir, 0).unwrap();
        assert!(r.snapshot_gen > 0, "read from a snapshot and the journal after it");
        let mut got: Vec<(IaKind, u8, std::net::Ipv6Addr, Lease6State)> =
            r.leases6.iter().map(|l| (l.key.kind, l.key.duid.len() as u8, l.addr, l.state)).collect();
        got.sort_by_key(|g| (g.2, g.3 as u8));
        let prefix = db.table6().get(&p1).unwrap().addr;
        assert_eq!(
            got,
            vec![(IaKind::Na, 16, a1_addr, Lease6State::Declined), (IaKind::Pd, 5, prefix, Lease6State::Bound)],
            "the declined address (held by nobody) and the prefix; the released address is gone"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn grouped_appends_settle_and_are_recovered_across_a_snapshot() {
        let dir = tmpdir("group");
        let j = open(&dir, 2);
        let t1 = j.append(0, &num(1, &[up(1, LeaseState::Bound)])).unwrap().expect("ticket");
        let t2 = j.append(0, &num(2, &[up(2, LeaseState::Bound)])).unwrap().expect("ticket");
        assert!(t2 > t1);
        assert_eq!(j.settled(0, t2 + 1), None, "a ticket not yet written is not durable");
        let db = LeaseDb::new(&one_pool(), 1, [], 100);
        j.snapshot(&db).unwrap();
        let t3 = j.append(0, &num(3, &[up(3, LeaseState::Bound)])).unwrap().expect("ticket");
        let t4 = j.append(1, &num(4, &[up(4, LeaseState::Bound)])).unwrap().expect("ticket");
        assert_eq!(settle(&j, 0, t3), Some(true));
        assert_eq!(settle(&j, 1, t4), Some(true));
        assert_eq!((j.settled(0, t1), j.settled(0, t2)), (Some(true), Some(true)), "earlier tickets too");
        j.flush(Duration::from_secs(5)).unwrap();
        drop(j);
        let r = inspect(&dir, 0).unwrap();
        assert!([3, 4].iter().all(|a| addrs(&r).contains(a)), "{:?}", addrs(&r));
        assert_eq!(r.max_seq, 4);
    }

    /// The expiry sweep's record of a lease, numbered before a worker re-bound it, lands in
    /// the file after the worker's: replay keeps the newer (defect 3).
    #[test]
    fn an_older_record_written_later_does_not_win() {
        let dir = tmpdir("order");
        let j = open(&dir, 2);
        let t = j.append(0, &num(10, &[up(1, LeaseState::Bound)])).unwrap().unwrap();
        assert_eq!(settle(&j, 0, t), Some(true));
        let t = j.append(1, &num(9, &[up(1, LeaseState::Expired)])).unwrap().unwrap();
        assert_eq!(settle(&j, 1, t), Some(true));
        let t = j.append(0, &num(8, &[up(1, LeaseState::Released)])).unwrap().unwrap();
        assert_eq!(settle(&j, 0, t), Some(true));
        drop(j);
        let r = inspect(&dir, 0).unwrap();
        assert_eq!(r.leases.len(), 1);
        assert_eq!(r.leases[0].state, LeaseState::Bound);
    }

    /// A failed round cuts the file back, fails its tickets, keeps its records, and the next
    /// round writes them: nothing after the failure is lost, no partial record stays
    /// (defects 1 and 2).
    #[test]
    fn a_failed_write_withholds_its_tickets_and_loses_nothing() {
        let dir = tmpdir("fail");
        let faults = dir.with_extension("faults");
        std::fs::write(&faults, "").unwrap();
        let j = open(&dir, 1);
        *lock(&j.syncer.backend().faults) = Some(faults.clone());
        let ok = j.append(0, &num(1, &[up(1, LeaseState::Bound)])).unwrap().unwrap();
        assert_eq!(settle(&j, 0, ok), Some(true));
        let mut durable = vec![1];
        for (fault, failed, after) in [("write-error", 2, 3), ("sync-error", 4, 5)] {
            std::fs::write(&faults, fault).unwrap();
            let bad = j.append(0, &num(u64::from(failed), &[up(failed, LeaseState::Bound)])).unwrap().unwrap();
            assert_eq!(settle(&j, 0, bad), Some(false), "{fault}: the ACK of a failed round must not leave");
            assert!(j.health().failing.load(Ordering::Relaxed));
            let path = journal_path(&dir, j.generation.load(Ordering::Acquire), 0);
            let len = std::fs::metadata(&path).unwrap().len();
            let r = inspect(&dir, 0).unwrap();
            assert!(r.warnings.is_empty(), "{fault}: the file was not cut back to whole records: {:?}", r.warnings);
            assert_eq!(addrs(&r), durable, "{fault}");
            std::fs::write(&faults, "").unwrap();
            let later = j.append(0, &num(u64::from(after), &[up(after, LeaseState::Bound)])).unwrap().unwrap();
            assert_eq!(settle(&j, 0, later), Some(true), "{fault}: serving resumes when the disk does");
            assert!(!j.health().failing.load(Ordering::Relaxed));
            assert!(std::fs::metadata(&path).unwrap().len() > len);
            let r = inspect(&dir, 0).unwrap();
            durable.extend([failed, after]);
            assert_eq!(addrs(&r), durable, "{fault}: the failed round's record is written with the next");
            assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        }
        let _ = std::fs::remove_file(&faults);
    }

    #[test]
    fn a_stalled_disk_holds_tickets_without_blocking_appends() {
        let dir = tmpdir("stall");
        let faults = dir.with_extension("faults");
        std::fs::write(&faults, "stall").unwrap();
        let j = open(&dir, 1);
        *lock(&j.syncer.backend().faults) = Some(faults.clone());
        let t0 = Instant::now();
        let mut tickets = vec![];
        for i in 1..=50u8 {
            tickets.push(j.append(0, &num(u64::from(i), &[up(i, LeaseState::Bound)])).unwrap().unwrap());
        }
        assert!(t0.elapsed() < Duration::from_millis(500), "appends blocked on the stalled disk");
        std::thread::sleep(Duration::from_millis(200));
        assert!(tickets.iter().all(|&t| j.settled(0, t).is_none()), "nothing settles while the disk stalls");
        std::fs::write(&faults, "").unwrap();
        assert!(tickets.iter().all(|&t| settle(&j, 0, t) == Some(true)));
        assert_eq!(inspect(&dir, 0).unwrap().leases.len(), 50);
        let _ = std::fs::remove_file(&faults);
    }

    #[test]
    fn snapshot_compacts_and_damaged_snapshot_falls_back() {
        let dir = tmpdir("snap");
        let cfg = one_pool();
        let j = open(&dir, 1);
        let db = LeaseDb::new(&cfg, 1, [lease(1, LeaseState::Bound), lease(2, LeaseState::Bound)], 100);
        let g1 = j.snapshot(&db).unwrap();
        let t = j.append(0, &num(db.stamp(1), &[up(3, LeaseState::Bound)])).unwrap().unwrap();
        assert_eq!(settle(&j, 0, t), Some(true));
        let db2 = LeaseDb::new(
            &cfg,
            1,
            [lease(1, LeaseState::Bound), lease(2, LeaseState::Bound), lease(3, LeaseState::Bound)],
            100,
        );
        db2.continue_after(db.next_seq());
        let g2 = j.snapshot(&db2).unwrap();
        let t = j.append(0, &num(db2.stamp(1), &[up(4, LeaseState::Bound)])).unwrap().unwrap();
        assert_eq!(settle(&j, 0, t), Some(true));
        assert!(g2 > g1);
        let r = inspect(&dir, 0).unwrap();
        assert_eq!((r.snapshot_gen, r.leases.len()), (g2, 4));
        // Damage the newest snapshot: the previous one plus the journals since it give the same.
        let p = snapshot_path(&dir, g2);
        let mut data = std::fs::read(&p).unwrap();
        let mid = data.len() / 2;
        data[mid] ^= 1;
        std::fs::write(&p, data).unwrap();
        let r = inspect(&dir, 0).unwrap();
        assert_eq!((r.snapshot_gen, r.leases.len()), (g1, 4), "{:?}", r.warnings);
        assert!(r.warnings[0].contains("damaged snapshot"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_tail_is_cut_by_the_daemon_and_left_alone_by_inspection() {
        let dir = tmpdir("torn");
        let j = open(&dir, 2);
        let a = j.append(0, &num(1, &[up(1, LeaseState::Bound), up(2, LeaseState::Bound)])).unwrap().unwrap();
        let b =
            j.append(1, &num(3, &[up(3, LeaseState::Bound), Change::Remove(lease(2, LeaseState::Bound).key)])).unwrap();
        assert_eq!(settle(&j, 0, a), Some(true));
        assert_eq!(settle(&j, 1, b.unwrap()), Some(true));
        j.flush(Duration::from_secs(5)).unwrap();
        drop(j);
        let path = list(&dir, "journal-", ".log").unwrap().into_iter().rev().find(|x| x.1 == 0).unwrap().2;
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 3).unwrap();
        let r = inspect(&dir, 0).unwrap();
        assert_eq!(addrs(&r), vec![1, 3], "lease 2 was torn in file 0 and removed in file 1");
        assert!(r.warnings[0].contains("read-only"), "{:?}", r.warnings);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len - 3, "inspection changed the file");
        let state = relock(&dir);
        let r = recover(&state, 0).unwrap();
        assert_eq!(addrs(&r), vec![1, 3]);
        assert!(r.warnings[0].contains("cut off"), "{:?}", r.warnings);
        assert!(recover(&state, 0).unwrap().warnings.is_empty(), "the tail is gone");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_snapshot_leaves_no_temporary_file_and_loses_nothing() {
        let dir = tmpdir("snapfail");
        let cfg = one_pool();
        let j = open(&dir, 1);
        let db = LeaseDb::new(&cfg, 1, [lease(1, LeaseState::Bound)], 100);
        j.snapshot(&db).unwrap();
        let t = j.append(0, &num(db.stamp(1), &[up(2, LeaseState::Bound)])).unwrap().unwrap();
        assert_eq!(settle(&j, 0, t), Some(true));
        // A directory where the snapshot's temporary file must go makes the write fail.
        let next = j.generation.load(Ordering::Acquire) + 1;
        let blocker = dir.join(format!("snapshot-{next:010}.tmp"));
        std::fs::create_dir(&blocker).unwrap();
        std::fs::write(blocker.join("x"), "").unwrap();
        assert!(j.snapshot(&db).is_err());
        std::fs::remove_file(blocker.join("x")).unwrap();
        std::fs::remove_dir(&blocker).unwrap();
        let t = j.append(0, &num(db.stamp(1), &[up(3, LeaseState::Bound)])).unwrap().unwrap();
        assert_eq!(settle(&j, 0, t), Some(true));
        assert!(list(&dir, "snapshot-", ".tmp").unwrap().is_empty());
        assert_eq!(addrs(&inspect(&dir, 0).unwrap()), vec![1, 2, 3]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// One record damaged in the middle of a journal file costs that record only: recovery
    /// reports it and replays the records after it.
    #[test]
    fn a_record_damaged_in_the_middle_costs_only_itself() {
        let dir = tmpdir("middle");
        let j = open(&dir, 1);
        for i in 1..=5u8 {
            let t = j.append(0, &num(u64::from(i), &[up(i, LeaseState::Bound)])).unwrap().unwrap();
            assert_eq!(settle(&j, 0, t), Some(true));
        }
        j.flush(Duration::from_secs(5)).unwrap();
        drop(j);
        let path = list(&dir, "journal-", ".log").unwrap().pop().unwrap().2;
        let mut data = std::fs::read(&path).unwrap();
        let rec = data.len() / 5;
        data[2 * rec + rec / 2] ^= 0xff;
        std::fs::write(&path, &data).unwrap();
        let r = inspect(&dir, 0).unwrap();
        assert_eq!(addrs(&r), vec![1, 2, 4, 5]);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("skipped"), "{:?}", r.warnings);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Journal files made of preallocated segments: written in place (the file never grows),
    /// replaced by spares at each generation, the obsolete ones recycled; recovery reads the
    /// zeros after the last record as the unwritten end (no warning), a record torn before
    /// them as torn, and a failed write is cut back and written again.
    #[test]
    fn a_preallocated_journal_is_written_in_place_and_recovered_whole() {
        use crate::store::segments::segment_size;
        let dir = tmpdir("segment");
        let faults = dir.with_extension("faults");
        std::fs::write(&faults, "").unwrap();
        let size = segment_size(1, 1);
        let state = StateDir::lock(&dir).unwrap();
        recover(&state, 0).unwrap();
        let j = Journal::open(state, 1, Durability::Fsync, size).unwrap();
        *lock(&j.syncer.backend().faults) = Some(faults.clone());
        assert_eq!(j.segments().taken.load(Ordering::Relaxed), 1, "the first file is a spare");
        let path = || journal_path(&dir, j.generation.load(Ordering::Acquire), 0);
        for i in 1..=20u8 {
            let t = j.append(0, &num(u64::from(i), &[up(i, LeaseState::Bound)])).unwrap().unwrap();
            assert_eq!(settle(&j, 0, t), Some(true));
        }
        assert_eq!(std::fs::metadata(path()).unwrap().len(), size, "written in place, not appended");
        let r = inspect(&dir, 0).unwrap();
        assert_eq!(addrs(&r), (1..=20).collect::<Vec<_>>());
        assert!(r.warnings.is_empty(), "the zeros after the records are no damage: {:?}", r.warnings);
        // A new generation takes a spare; the snapshot's compaction recycles what it obsoletes.
        let db = LeaseDb::new(&one_pool(), 1, (1..=20).map(|i| lease(i, LeaseState::Bound)), 100);
        db.continue_after(20);
        for _ in 0..3 {
            assert!(poll(|| (j.segments().ready() > 0).then_some(())).is_some(), "no spare made ready");
            j.snapshot(&db).unwrap();
        }
        assert_eq!(j.segments().taken.load(Ordering::Relaxed), 4);
        assert_eq!(j.segments().plain.load(Ordering::Relaxed), 0);
        assert_eq!(std::fs::metadata(path()).unwrap().len(), size);
        assert!(poll(|| (j.segments().recycled.load(Ordering::Relaxed) >= 1).then_some(())).is_some());
        // A failed write is cut back (the segment's zeros after it go with it) and written
        // again with the next round.
        std::fs::write(&faults, "write-error").unwrap();
        let bad = j.append(0, &num(db.stamp(1), &[up(21, LeaseState::Bound)])).unwrap().unwrap();
        assert_eq!(settle(&j, 0, bad), Some(false));
        std::fs::write(&faults, "").unwrap();
        let good = j.append(0, &num(db.stamp(1), &[up(22, LeaseState::Bound)])).unwrap().unwrap();
        assert_eq!(settle(&j, 0, good), Some(true));
        let r = inspect(&dir, 0).unwrap();
        assert_eq!(addrs(&r), (1..=22).collect::<Vec<_>>());
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        // A crash mid-write in a segment: half a record, then the zeros. Inspection reports it
        // torn and leaves it; the daemon's recovery cuts it.
        assert!(poll(|| (j.segments().ready() > 0).then_some(())).is_some(), "no spare made ready");
        let db2 = LeaseDb::new(&one_pool(), 1, (1..=22).map(|i| lease(i, LeaseState::Bound)), 100);
        db2.continue_after(db.next_seq());
        j.snapshot(&db2).unwrap();
        let t = j.append(0, &num(db2.stamp(1), &[up(23, LeaseState::Bound)])).unwrap().unwrap();
        assert_eq!(settle(&j, 0, t), Some(true));
        drop(j);
        let state = relock(&dir);
        let last = list(&dir, "journal-", ".log").unwrap().pop().unwrap().2;
        let mut rec = vec![];
        records::encode(99, &Change::Upsert(lease(24, LeaseState::Bound)), &mut rec);
        let end = records::Replay::new().file(&std::fs::read(&last).unwrap()).unwritten_from.expect("a zero tail");
        let f = OpenOptions::new().write(true).open(&last).unwrap();
        f.write_all_at(&rec[..rec.len() / 2], end as u64).unwrap();
        let r = inspect(&dir, 0).unwrap();
        assert_eq!(addrs(&r), (1..=23).collect::<Vec<_>>());
        assert!(r.warnings.len() == 1 && r.warnings[0].contains("torn"), "{:?}", r.warnings);
        let r = recover(&state, 0).unwrap();
        assert_eq!(addrs(&r), (1..=23).collect::<Vec<_>>());
        assert_eq!(std::fs::metadata(&last).unwrap().len(), end as u64, "the torn tail was cut");
        let _ = std::fs::remove_file(&faults);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
