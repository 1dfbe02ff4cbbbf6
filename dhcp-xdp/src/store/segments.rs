//! Preallocated journal segments, as PostgreSQL keeps its WAL: a journal file starts life as a
//! spare (`spare-NNNNNNNNNN.log`) already zero-filled to the segment size and synced, so the
//! journal's writes overwrite blocks the file has and its `fdatasync` flushes data and no file
//! metadata (no size change, no block allocation, no file-system journal commit). A generation
//! takes a spare per slot by renaming it; the files a snapshot makes obsolete are not removed
//! but recycled — renamed to `spare-….tmp`, zero-filled again over the blocks they have, synced
//! and renamed ready — by a background thread, never on a worker's or the syncer's path.
//!
//! Replay reads a zero tail as a segment's unwritten end
//! ([`Scan::unwritten_from`](dhcp_xdp_core::records::Scan)), so a spare is never mistaken for
//! damage, and a recycled file holds no old record by the time it is a journal again: it is
//! renamed ready only after its zeros are synced.
//!
//! Spares never take the space the journal needs: a new one is made only while the file system
//! keeps [`HEADROOM`] segments free besides it; a generation without a spare gets a plain file
//! that grows as it is written (what the journal did before), and a full disk then behaves as
//! before. A generation that outgrows its segment goes on appending.

use std::{
    fs::OpenOptions,
    os::unix::fs::{FileExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    sync::{
        Arc, Condvar, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

/// Free segments the file system must keep besides a new spare for one to be made.
pub const HEADROOM: u64 = 4;
/// Segments are written in chunks of this, each synced, so that making a spare never puts a
/// burst of dirty pages in front of the journal's own flushes.
const CHUNK: usize = 1 << 20;
/// Bytes one journal record takes at most (records are ~60 bytes): what sizes a segment.
const RECORD_BYTES: u64 = 80;
/// Segment size bounds.
const MIN_SEGMENT: u64 = 1 << 20;
const MAX_SEGMENT: u64 = 64 << 20;

/// The segment size for a journal of `slots` files that starts a generation every
/// `snapshot_every` records: what a slot writes in a generation, with room to spare, in whole
/// MiB between 1 and 64 MiB.
pub fn segment_size(snapshot_every: u64, slots: usize) -> u64 {
    let per_slot = snapshot_every.saturating_mul(RECORD_BYTES) / slots.max(1) as u64;
    let with_room = per_slot.saturating_add(per_slot / 4);
    with_room.div_ceil(MIN_SEGMENT).saturating_mul(MIN_SEGMENT).clamp(MIN_SEGMENT, MAX_SEGMENT)
}

/// Whether `name` is a spare's file name (ready or being filled).
pub fn is_spare(name: &str) -> bool {
    name.starts_with("spare-") && (name.ends_with(".log") || name.ends_with(".tmp"))
}

fn spare_path(dir: &Path, n: u64, ready: bool) -> PathBuf {
    dir.join(format!("spare-{n:010}.{}", if ready { "log" } else { "tmp" }))
}

/// Spare files by number.
type Numbered = Vec<(u64, PathBuf)>;

/// The spares in `dir`: (ready, being filled), each sorted by number.
fn spares(dir: &Path) -> (Numbered, Numbered) {
    let (mut ready, mut filling) = (vec![], vec![]);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(n) = name.strip_prefix("spare-").and_then(|n| n.get(..10)).and_then(|n| n.parse().ok()) else {
            continue;
        };
        if name.ends_with(".log") {
            ready.push((n, e.path()));
        } else if name.ends_with(".tmp") {
            filling.push((n, e.path()));
        }
    }
    ready.sort();
    filling.sort();
    (ready, filling)
}

/// Bytes free for this user on the file system of `dir`.
fn free_bytes(dir: &Path) -> u64 {
    nix::sys::statvfs::statvfs(dir).map_or(0, |s| s.blocks_available() * s.fragment_size())
}

/// Zero-fills `path` to `size` (overwriting what it held, cutting what is beyond) and syncs it.
fn fill(path: &Path, size: u64) -> std::io::Result<()> {
    let f = OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
    let zeros = vec![0u8; CHUNK];
    let mut at = 0;
    while at < size {
        let n = (size - at).min(CHUNK as u64) as usize;
        f.write_all_at(&zeros[..n], at)?;
        f.sync_data()?;
        at += n as u64;
    }
    if f.metadata()?.len() > size {
        f.set_len(size)?;
    }
    f.sync_all()
}

/// The spares of one state directory and the thread that keeps them ready.
pub struct Segments {
    dir: PathBuf,
    /// Segment size (0: preallocation off).
    size: u64,
    /// Spares kept ready.
    want: usize,
    next: AtomicU64,
    wanted: Mutex<bool>,
    wake: Condvar,
    stop: AtomicBool,
    /// Spares made from new files, spares made from recycled journals, journal files that
    /// were spares, journal files made plain (no spare ready).
    pub made: AtomicU64,
    pub recycled: AtomicU64,
    pub taken: AtomicU64,
    pub plain: AtomicU64,
}

impl Segments {
    /// The spares of `dir` (segments of `size` bytes, `want` kept ready; `size` 0: none made or
    /// taken). The
    /// spares a previous run left are kept; those it was filling are filled again. With
    /// `now`, as many as the space allows are made before this returns (a first start);
    /// the rest are made by the background thread.
    pub fn start(dir: &Path, size: u64, want: usize, now: bool) -> std::io::Result<Arc<Self>> {
        let (ready, filling) = spares(dir);
        let next = ready.iter().chain(&filling).map(|x| x.0 + 1).max().unwrap_or(1);
        let s = Arc::new(Self {
            dir: dir.to_owned(),
            size,
            want,
            next: AtomicU64::new(next),
            wanted: Mutex::new(false),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            made: AtomicU64::new(0),
            recycled: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            plain: AtomicU64::new(0),
        });
        if size == 0 {
            // Off (a one-off writer such as `import`): spares are left for the daemon.
            return Ok(s);
        }
        if now {
            s.replenish();
        }
        let weak = Arc::downgrade(&s);
        std::thread::Builder::new().name("journal-segments".into()).spawn(move || Self::run(&weak))?;
        Ok(s)
    }

    /// Segment size in bytes (0: preallocation off).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Spares ready now.
    pub fn ready(&self) -> usize {
        if self.size == 0 { 0 } else { spares(&self.dir).0.len() }
    }

    /// A ready spare renamed to `path` (the caller syncs the directory), or `None` when none
    /// is ready (the caller makes a plain file).
    pub fn take(&self, path: &Path) -> Option<()> {
        if self.size == 0 {
            return None;
        }
        // No poke: the files this generation makes obsolete are about to be recycled, which
        // costs no new blocks; the thread makes new spares on its next round if still short.
        let taken = spares(&self.dir).0.into_iter().find_map(|(_, spare)| std::fs::rename(&spare, path).ok());
        match taken {
            Some(()) => {
                self.taken.fetch_add(1, Ordering::Relaxed);
                Some(())
            }
            None => {
                self.plain.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Gives an obsolete journal file back: recycled as a spare when fewer than wanted are
    /// ready or being filled (it is zero-filled in the background), removed otherwise.
    pub fn recycle(&self, path: &Path) {
        let (ready, filling) = spares(&self.dir);
        if self.size > 0 && ready.len() + filling.len() < self.want {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            if std::fs::rename(path, spare_path(&self.dir, n, false)).is_ok() {
                self.poke();
                return;
            }
        }
        let _ = std::fs::remove_file(path);
    }

    fn poke(&self) {
        *self.wanted.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_one();
    }

    /// Ends the background thread (it also ends when this is dropped).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.poke();
    }

    /// Fills the spares being filled, then makes new ones while fewer than wanted are ready and
    /// the space allows; returns whether every step succeeded.
    fn replenish(&self) -> bool {
        let (ready, filling) = spares(&self.dir);
        let mut have = ready.len();
        for (n, tmp) in filling {
            if self.stop.load(Ordering::Acquire) {
                return true;
            }
            // A recycled file shorter than a segment grows: that takes space too.
            let len = std::fs::metadata(&tmp).map_or(0, |m| m.len());
            let room = self.size.saturating_sub(len) == 0 || free_bytes(&self.dir) >= HEADROOM * self.size;
            if have >= self.want || !room {
                let _ = std::fs::remove_file(&tmp);
                continue;
            }
            if !self.ready_up(&tmp, n, "recycling") {
                return false;
            }
            self.recycled.fetch_add(1, Ordering::Relaxed);
            have += 1;
        }
        while have < self.want && !self.stop.load(Ordering::Acquire) {
            if free_bytes(&self.dir) < (HEADROOM + 1) * self.size {
                return true;
            }
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let tmp = spare_path(&self.dir, n, false);
            if !self.ready_up(&tmp, n, "preallocating") {
                return false;
            }
            self.made.fetch_add(1, Ordering::Relaxed);
            have += 1;
        }
        true
    }

    /// Zero-fills spare `n` being filled at `tmp` and renames it ready, durably; whether it
    /// worked (a failure is logged as `doing` it, and the file removed).
    fn ready_up(&self, tmp: &Path, n: u64, doing: &str) -> bool {
        let done = fill(tmp, self.size)
            .and_then(|()| std::fs::rename(tmp, spare_path(&self.dir, n, true)))
            .map_err(|e| e.to_string())
            .and_then(|()| super::journal::sync_dir(&self.dir).map_err(|e| e.to_string()));
        if let Err(e) = done {
            tracing::debug!("{doing} journal segment {}: {e}", tmp.display());
            let _ = std::fs::remove_file(tmp);
            return false;
        }
        true
    }

    fn run(me: &Weak<Self>) {
        if let Err(e) = crate::privileges::drop_for_this_thread() {
            tracing::warn!("journal-segments: could not drop capabilities: {e}");
        }
        let mut backoff = Duration::from_secs(1);
        loop {
            let Some(s) = me.upgrade() else { return };
            {
                let wanted = s.wanted.lock().unwrap_or_else(|p| p.into_inner());
                let (mut wanted, _) = s
                    .wake
                    .wait_timeout_while(wanted, backoff, |w| !*w && !s.stop.load(Ordering::Acquire))
                    .unwrap_or_else(|p| p.into_inner());
                *wanted = false;
            }
            if s.stop.load(Ordering::Acquire) {
                return;
            }
            backoff = if s.replenish() { Duration::from_secs(1) } else { (backoff * 2).min(Duration::from_secs(30)) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_holds_a_generation_of_its_slot_in_whole_mib() {
        // 100 000 records a generation over one slot: 8 MB and a quarter, in whole MiB.
        assert_eq!(segment_size(100_000, 1), 10 << 20);
        assert_eq!(segment_size(100_000, 4), 3 << 20);
        assert_eq!(segment_size(1, 1), MIN_SEGMENT);
        assert_eq!(segment_size(u64::MAX, 1), MAX_SEGMENT);
    }

    #[test]
    fn spares_are_made_taken_and_recycled_zeroed() {
        let dir = crate::store::journal::tests::tmpdir("segments");
        std::fs::create_dir_all(&dir).unwrap();
        let s = Segments::start(&dir, MIN_SEGMENT, 2, true).unwrap();
        assert_eq!(s.ready(), 2, "made at start");
        assert_eq!(s.made.load(Ordering::Relaxed), 2);
        let j = dir.join("journal-a.log");
        s.take(&j).unwrap();
        let data = std::fs::read(&j).unwrap();
        assert_eq!(data.len() as u64, MIN_SEGMENT);
        assert!(data.iter().all(|&b| b == 0), "a spare is zeros");
        // Written, then obsolete: recycled, zero-filled again, ready again.
        std::fs::write(&j, [0xd7u8; 300]).unwrap();
        s.recycle(&j);
        assert!(!j.exists());
        let ready = crate::store::journal::tests::poll(|| (s.recycled.load(Ordering::Relaxed) == 1).then_some(()));
        assert!(ready.is_some(), "the recycled file was not made ready");
        assert_eq!((s.ready(), s.made.load(Ordering::Relaxed)), (2, 2), "no new file was needed");
        for (_, p) in spares(&dir).0 {
            let data = std::fs::read(&p).unwrap();
            assert_eq!(data.len() as u64, MIN_SEGMENT);
            assert!(data.iter().all(|&b| b == 0), "{} holds old bytes", p.display());
        }
        // Enough spares: an obsolete file is removed.
        let k = dir.join("journal-b.log");
        std::fs::write(&k, b"x").unwrap();
        s.recycle(&k);
        assert!(!k.exists());
        assert_eq!(spares(&dir).0.len() + spares(&dir).1.len(), 2);
        s.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_spare_is_made_where_the_space_is_short() {
        let dir = crate::store::journal::tests::tmpdir("segments-space");
        std::fs::create_dir_all(&dir).unwrap();
        // A segment larger than a fraction of the free space: none is made, a take says so.
        let huge = free_bytes(&dir) / HEADROOM + MIN_SEGMENT;
        let s = Segments::start(&dir, huge, 1, true).unwrap();
        assert_eq!(s.ready(), 0);
        assert!(s.take(&dir.join("journal-a.log")).is_none());
        assert_eq!(s.plain.load(Ordering::Relaxed), 1);
        s.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
