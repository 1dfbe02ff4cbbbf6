//! The lease store's byte format and its replay: journal records (versioned, CRC-32, each
//! numbered by the sequence of changes), snapshots, and the rebuilding of the lease table from
//! them. Sans-IO: the daemon reads and writes the files; this turns bytes into leases.
//!
//! Replay must never report a lease that was not written, and never silently lose the records
//! after a damaged one: a bad stretch is skipped up to the next valid record and reported.
//! Records are applied by sequence number (the highest wins for a key), so their order across
//! files, or within one, does not matter.

use std::net::{Ipv4Addr, Ipv6Addr};

use hashbrown::HashMap;

use crate::{
    dhcp6::IaKind,
    leases::{
        Attr, AttrMap, Change, ClientKey, Lease, LeaseState, MAX_ATTR, Tags,
        v6::{Key6, Lease6, Lease6State},
    },
};

const REC_MAGIC: u8 = 0xd7;
/// Version 2 records carry the change's sequence number and the lease's quota tags; version 1
/// records (neither) are still read, as number 0 (their order decides among themselves).
const REC_VERSION: u8 = 2;
const KIND_UPSERT: u8 = 1;
const KIND_REMOVE: u8 = 2;
/// A DHCPv6 lease (version 2 only).
const KIND_UPSERT6: u8 = 3;
/// The removal of a DHCPv6 lease.
const KIND_REMOVE6: u8 = 4;
/// A client's host name (version 2 only).
const KIND_NAME: u8 = 5;
/// The option 82 a relay added to a client's request (version 2 only).
const KIND_RELAY_INFO: u8 = 6;
/// Snapshot files start with this.
pub const SNAP_MAGIC: &[u8; 8] = b"DXSNAP01";
/// Snapshot header: magic, generation, record count.
pub const SNAP_HEADER: usize = 8 + 8 + 8;

/// Encodes change number `seq` as a journal record.
pub fn encode(seq: u64, c: &Change, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[REC_MAGIC, REC_VERSION, 0, 0]);
    out.extend_from_slice(&seq.to_le_bytes());
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
            out.extend_from_slice(&l.tags.circuit.to_le_bytes());
            out.extend_from_slice(&l.tags.remote.to_le_bytes());
        }
        Change::Remove(k) => {
            out[start + 2] = KIND_REMOVE;
            let k = k.as_bytes();
            out.push(k.len() as u8);
            out.extend_from_slice(k);
        }
        Change::Upsert6(l) => {
            out[start + 2] = KIND_UPSERT6;
            key6(&l.key, out);
            out.extend_from_slice(&l.addr.octets());
            out.push(l.len);
            out.extend_from_slice(&l.preferred.to_le_bytes());
            out.extend_from_slice(&l.valid.to_le_bytes());
            out.extend_from_slice(&l.expires.to_le_bytes());
            out.push(l.state as u8);
            out.extend_from_slice(&l.tags.circuit.to_le_bytes());
            out.extend_from_slice(&l.tags.remote.to_le_bytes());
            out.extend_from_slice(&l.relay.to_le_bytes());
        }
        Change::Remove6(k) => {
            out[start + 2] = KIND_REMOVE6;
            key6(k, out);
        }
        Change::Attr(a, k, value) => {
            out[start + 2] = match a {
                Attr::Name => KIND_NAME,
                Attr::RelayInfo => KIND_RELAY_INFO,
            };
            let k = k.as_bytes();
            out.push(k.len() as u8);
            out.extend_from_slice(k);
            out.extend_from_slice(&value[..value.len().min(MAX_ATTR)]);
        }
    }
    out[start + 3] = (out.len() - start - 4) as u8;
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// A v6 key: IA type, subnet, IAID, DUID (length first; at most [`MAX_DUID`] bytes, which the
/// engine enforces, so that a record stays within its one-byte length).
fn key6(k: &Key6, out: &mut Vec<u8>) {
    out.push(match k.kind {
        IaKind::Na => 0,
        IaKind::Pd => 1,
    });
    out.extend_from_slice(&k.subnet.to_le_bytes());
    out.extend_from_slice(&k.iaid.to_le_bytes());
    let d = &k.duid[..k.duid.len().min(MAX_DUID)];
    out.push(d.len() as u8);
    out.extend_from_slice(d);
}

/// Longest DUID kept (RFC 8415 §11.1: 2 bytes of type and at most 128 of identifier).
pub const MAX_DUID: usize = 130;

fn read_key6(p: &[u8]) -> Option<(Key6, &[u8])> {
    let kind = match *p.first()? {
        0 => IaKind::Na,
        1 => IaKind::Pd,
        _ => return None,
    };
    let subnet = u32::from_le_bytes(p.get(1..5)?.try_into().ok()?);
    let iaid = u32::from_le_bytes(p.get(5..9)?.try_into().ok()?);
    let n = usize::from(*p.get(9)?);
    let duid = std::sync::Arc::from(p.get(10..10 + n)?);
    Some((Key6 { kind, subnet, duid, iaid }, &p[10 + n..]))
}

fn decode6(kind: u8, p: &[u8]) -> Option<Change> {
    let (key, rest) = read_key6(p)?;
    match kind {
        KIND_REMOVE6 if rest.is_empty() => Some(Change::Remove6(key)),
        // Written before the relay's tag was kept: 38 bytes (none); since, 42.
        KIND_UPSERT6 if rest.len() == 16 + 1 + 12 + 1 + 8 || rest.len() == 16 + 1 + 12 + 1 + 12 => {
            let u = |at: usize| u32::from_le_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
            let addr: [u8; 16] = rest[..16].try_into().ok()?;
            Some(Change::Upsert6(Lease6 {
                key,
                addr: Ipv6Addr::from(addr),
                len: rest[16],
                preferred: u(17),
                valid: u(21),
                expires: u(25),
                state: Lease6State::from_u8(rest[29])?,
                tags: Tags { circuit: u(30), remote: u(34) },
                relay: if rest.len() > 38 { u(38) } else { 0 },
            }))
        }
        _ => None,
    }
}

/// Decodes the record at the start of `b`: its sequence number, the change and its length, or
/// `None` if the bytes are not a whole valid record.
pub fn decode(b: &[u8]) -> Option<(u64, Change, usize)> {
    let (&magic, &version, &kind, &len) = (b.first()?, b.get(1)?, b.get(2)?, b.get(3)?);
    if magic != REC_MAGIC || !(1..=REC_VERSION).contains(&version) {
        return None;
    }
    let body_end = 4 + usize::from(len);
    let crc = u32::from_le_bytes(b.get(body_end..body_end + 4)?.try_into().ok()?);
    if crc32fast::hash(&b[..body_end]) != crc {
        return None;
    }
    let (seq, p) = match version {
        1 => (0, &b[4..body_end]),
        _ => (u64::from_le_bytes(b.get(4..12)?.try_into().ok()?), b.get(12..body_end)?),
    };
    if kind == KIND_UPSERT6 || kind == KIND_REMOVE6 {
        return (version == 2).then(|| decode6(kind, p)).flatten().map(|c| (seq, c, body_end + 4));
    }
    let klen = usize::from(*p.first()?);
    let key = ClientKey::from_bytes(p.get(1..1 + klen)?)?;
    let rest = &p[1 + klen..];
    let change = match kind {
        KIND_UPSERT => {
            const V1: usize = 6 + 4 + 4 + 1 + 4;
            let tags = match (version, rest.len()) {
                (1, V1) => Tags::default(),
                (2, n) if n == V1 + 8 => Tags {
                    circuit: u32::from_le_bytes(rest[V1..V1 + 4].try_into().ok()?),
                    remote: u32::from_le_bytes(rest[V1 + 4..V1 + 8].try_into().ok()?),
                },
                _ => return None,
            };
            Change::Upsert(Lease {
                key,
                chaddr: rest[0..6].try_into().ok()?,
                addr: Ipv4Addr::new(rest[6], rest[7], rest[8], rest[9]),
                expires: u32::from_le_bytes(rest[10..14].try_into().ok()?),
                state: LeaseState::from_u8(rest[14])?,
                subnet: u32::from_le_bytes(rest[15..19].try_into().ok()?),
                tags,
            })
        }
        KIND_REMOVE if rest.is_empty() => Change::Remove(key),
        KIND_NAME if version == 2 && rest.len() <= MAX_ATTR => Change::Attr(Attr::Name, key, rest.into()),
        KIND_RELAY_INFO if version == 2 && rest.len() <= MAX_ATTR => Change::Attr(Attr::RelayInfo, key, rest.into()),
        _ => return None,
    };
    Some((seq, change, body_end + 4))
}

/// The header of a snapshot of `count` records of generation `generation`; the records follow
/// (each `encode`d: an upsert, or a lease's host name after the leases) and a CRC-32 of
/// everything before it ends the file.
pub fn snapshot_header(generation: u64, count: u64) -> [u8; SNAP_HEADER] {
    let mut h = [0u8; SNAP_HEADER];
    h[..8].copy_from_slice(SNAP_MAGIC);
    h[8..16].copy_from_slice(&generation.to_le_bytes());
    h[16..24].copy_from_slice(&count.to_le_bytes());
    h
}

/// A snapshot's leases with their sequence numbers, or `None` if the file is damaged in any
/// way (it is all or nothing: a damaged snapshot is replaced by the previous one).
pub fn decode_snapshot(data: &[u8]) -> Option<Vec<(u64, Change)>> {
    if data.len() < SNAP_HEADER + 4 || &data[..8] != SNAP_MAGIC {
        return None;
    }
    let (body, crc) = data.split_at(data.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let count = u64::from_le_bytes(body[16..24].try_into().ok()?);
    let mut at = SNAP_HEADER;
    let mut leases = Vec::with_capacity(usize::try_from(count).ok()?.min(body.len() / 16));
    while at < body.len() {
        match decode(&body[at..])? {
            (seq, c @ (Change::Upsert(_) | Change::Upsert6(_) | Change::Attr(..)), n) => {
                leases.push((seq, c));
                at += n;
            }
            _ => return None,
        }
    }
    (leases.len() as u64 == count).then_some(leases)
}

/// What one journal file held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Valid records applied.
    pub records: u64,
    /// Damaged stretches `[start, end)` skipped because valid records follow them.
    pub skipped: Vec<(usize, usize)>,
    /// Where the valid data ends: a damaged tail from here on holds no valid record (a torn
    /// last write); `None` when the file ends with a whole record or with zeros.
    pub torn_at: Option<usize>,
    /// Where the zeros of a preallocated segment's unwritten end start (a journal file is
    /// zero-filled before it is used, so that writing it changes no file metadata): no damage.
    pub unwritten_from: Option<usize>,
}

/// Two clients held one address; the one changed last was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// The address.
    pub addr: Ipv4Addr,
    /// The lease kept.
    pub kept: Lease,
    /// The lease dropped.
    pub dropped: Lease,
}

/// An attribute's value and the number of the change that gave it.
type Numbered = (u64, Box<[u8]>);

/// The lease table being rebuilt from a snapshot and journals.
#[derive(Debug, Default)]
pub struct Replay {
    state: HashMap<ClientKey, (u64, Option<Lease>)>,
    state6: HashMap<Key6, (u64, Option<Lease6>)>,
    /// Each key's latest attributes, and the number of its latest removal: an attribute
    /// numbered before it belonged to a record that is gone.
    attrs: HashMap<(Attr, ClientKey), Numbered>,
    removed: HashMap<ClientKey, u64>,
    /// Highest sequence number seen.
    pub max_seq: u64,
}

impl Replay {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts from a snapshot's leases.
    pub fn base(&mut self, snapshot: Vec<(u64, Change)>) {
        self.state.reserve(snapshot.len());
        for (seq, c) in snapshot {
            self.apply(seq, c);
        }
    }

    /// Applies one change: it wins unless the key already has a higher-numbered one (equal
    /// numbers: the later applied wins, which keeps unnumbered version 1 records in file
    /// order).
    pub fn apply(&mut self, seq: u64, c: Change) {
        self.max_seq = self.max_seq.max(seq);
        let (key, value) = match c {
            Change::Upsert(l) => (l.key, Some(l)),
            Change::Remove(k) => {
                let r = self.removed.entry(k).or_default();
                *r = (*r).max(seq);
                (k, None)
            }
            Change::Attr(a, k, value) => {
                if self.attrs.get(&(a, k)).is_none_or(|cur| cur.0 <= seq) {
                    self.attrs.insert((a, k), (seq, value));
                }
                return;
            }
            Change::Upsert6(l) => return Self::newer(&mut self.state6, l.key.clone(), seq, Some(l)),
            Change::Remove6(k) => return Self::newer(&mut self.state6, k, seq, None),
        };
        match self.state.get_mut(&key) {
            Some(cur) if cur.0 > seq => {}
            Some(cur) => *cur = (seq, value),
            None => {
                self.state.insert(key, (seq, value));
            }
        }
    }

    fn newer<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, (u64, Option<V>)>, key: K, seq: u64, value: Option<V>) {
        match map.get_mut(&key) {
            Some(cur) if cur.0 > seq => {}
            Some(cur) => *cur = (seq, value),
            None => {
                map.insert(key, (seq, value));
            }
        }
    }

    /// The DHCPv6 leases replayed (the caller's table resolves who holds an address).
    pub fn take6(&mut self) -> Vec<Lease6> {
        let mut v: Vec<(u64, Lease6)> =
            std::mem::take(&mut self.state6).into_values().filter_map(|(s, l)| l.map(|l| (s, l))).collect();
        // Newest first: the table keeps the first holder of an address it is given, so the one
        // changed last wins.
        v.sort_by_key(|(s, _)| std::cmp::Reverse(*s));
        v.into_iter().map(|(_, l)| l).collect()
    }

    /// Applies every valid record of one journal file's bytes; a damaged stretch is skipped up
    /// to the next valid record.
    pub fn file(&mut self, data: &[u8]) -> Scan {
        let mut scan = Scan::default();
        let mut at = 0;
        while at < data.len() {
            if let Some((seq, c, n)) = decode(&data[at..]) {
                self.apply(seq, c);
                scan.records += 1;
                at += n;
                continue;
            }
            if data[at..].iter().all(|&b| b == 0) {
                scan.unwritten_from = Some(at);
                break;
            }
            // Resynchronise: the next offset where a whole valid record starts.
            match (at + 1..data.len()).find(|&p| data[p] == REC_MAGIC && decode(&data[p..]).is_some()) {
                Some(next) => {
                    scan.skipped.push((at, next));
                    at = next;
                }
                None => {
                    scan.torn_at = Some(at);
                    break;
                }
            }
        }
        scan
    }

    /// The attributes replayed, of the keys whose record they belonged to is still there (not
    /// removed after the attribute was given; empty ones are none). Call before
    /// [`finish`](Self::finish).
    pub fn take_attrs(&mut self) -> AttrMap {
        let removed = std::mem::take(&mut self.removed);
        let state = &self.state;
        std::mem::take(&mut self.attrs)
            .into_iter()
            .filter(|((_, k), (seq, value))| {
                !value.is_empty()
                    && removed.get(k).is_none_or(|r| r < seq)
                    && state.get(k).is_some_and(|(_, l)| l.is_some())
            })
            .map(|(k, (_, value))| (k, value))
            .collect()
    }

    /// The leases, and the conflicts resolved: where two records hold one address at `now`,
    /// the one numbered higher (changed last) is kept; records that no longer hold an address
    /// someone else holds are dropped silently (they were only remembered for affinity).
    pub fn finish(self, now: u32) -> (Vec<Lease>, Vec<Conflict>) {
        let mut by_addr: HashMap<Ipv4Addr, (u64, Lease)> = HashMap::with_capacity(self.state.len());
        let mut conflicts = vec![];
        for (seq, l) in self.state.into_values().filter_map(|(s, l)| l.map(|l| (s, l))) {
            match by_addr.get_mut(&l.addr) {
                None => {
                    by_addr.insert(l.addr, (seq, l));
                }
                Some(cur) => {
                    let (new_holds, cur_holds) = (l.holds(now), cur.1.holds(now));
                    let new_wins = (new_holds, seq) > (cur_holds, cur.0);
                    let (kept, dropped) = if new_wins { (l, cur.1) } else { (cur.1, l) };
                    if new_holds && cur_holds {
                        conflicts.push(Conflict { addr: l.addr, kept, dropped });
                    }
                    if new_wins {
                        *cur = (seq, l);
                    }
                }
            }
        }
        (by_addr.into_values().map(|(_, l)| l).collect(), conflicts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn lease(i: u8, state: LeaseState) -> Lease {
        Lease { tags: Tags { circuit: 7, remote: 0 }, ..testing::lease(i, state) }
    }

    #[test]
    fn records_round_trip_and_reject_damage() {
        let longest_key = ClientKey::client_id(&[9; 64], 1);
        for c in [
            Change::Upsert(lease(7, LeaseState::Bound)),
            Change::Remove(ClientKey::client_id(&[1, 2, 3], 1)),
            Change::Attr(Attr::Name, lease(7, LeaseState::Bound).key, b"cpe-7.example.net"[..].into()),
            Change::Attr(Attr::Name, longest_key, vec![b'a'; MAX_ATTR].into()),
            Change::Attr(Attr::Name, longest_key, Box::default()),
            Change::Attr(Attr::RelayInfo, longest_key, vec![1; MAX_ATTR].into()),
            Change::Attr(Attr::RelayInfo, lease(7, LeaseState::Bound).key, b"\x01\x04olt1\x02\x02ab"[..].into()),
        ] {
            let mut b = vec![];
            encode(42, &c, &mut b);
            assert_eq!(decode(&b), Some((42, c, b.len())));
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
    fn version_1_records_are_read_in_file_order() {
        // A version 1 record: no sequence number.
        let l = lease(3, LeaseState::Bound);
        let mut v2 = vec![];
        encode(0, &Change::Upsert(l), &mut v2);
        let l = Lease { tags: Tags::default(), ..l };
        let mut v2 = vec![];
        encode(0, &Change::Upsert(l), &mut v2);
        let mut v1 = vec![REC_MAGIC, 1, v2[2], v2[3] - 16];
        v1.extend_from_slice(&v2[12..v2.len() - 12]);
        let crc = crc32fast::hash(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&v1), Some((0, Change::Upsert(l), v1.len())));
        let mut r = Replay::new();
        let released = Lease { state: LeaseState::Released, ..l };
        let mut file = v1.clone();
        let mut rel = vec![];
        encode(0, &Change::Upsert(released), &mut rel);
        file.extend_from_slice(&rel);
        r.file(&file);
        assert_eq!(r.finish(0).0, vec![released]);
    }

    #[test]
    fn the_highest_number_wins_whatever_the_order() {
        let mut r = Replay::new();
        let bound = lease(1, LeaseState::Bound);
        let expired = Lease { state: LeaseState::Expired, ..bound };
        // The sweep's older record (5) lands after the worker's newer one (9).
        r.apply(9, Change::Upsert(bound));
        r.apply(5, Change::Upsert(expired));
        r.apply(4, Change::Remove(bound.key));
        assert_eq!(r.finish(0).0, vec![bound]);
    }

    #[test]
    fn a_damaged_record_in_the_middle_costs_only_itself() {
        let mut b = vec![];
        let mut ends = vec![];
        for i in 1..=5 {
            encode(u64::from(i), &Change::Upsert(lease(i, LeaseState::Bound)), &mut b);
            ends.push(b.len());
        }
        // Damage record 3 (bytes ends[1]..ends[2]).
        b[ends[1] + 9] ^= 0xff;
        let mut r = Replay::new();
        let scan = r.file(&b);
        assert_eq!(scan.records, 4);
        assert_eq!(scan.skipped, vec![(ends[1], ends[2])]);
        assert_eq!(scan.torn_at, None);
        let mut got: Vec<u8> = r.finish(0).0.iter().map(|l| l.addr.octets()[3]).collect();
        got.sort();
        assert_eq!(got, vec![1, 2, 4, 5]);
        // A torn tail is reported where it starts.
        let mut r = Replay::new();
        let scan = r.file(&b[..ends[4] - 3]);
        assert_eq!(scan.torn_at, Some(ends[3]));
    }

    /// A preallocated segment: whole records, then the zeros it was filled with. The zeros are
    /// its unwritten end, not damage; a torn record before them still is.
    #[test]
    fn a_zero_filled_tail_is_unwritten_not_torn() {
        let mut b = vec![];
        for i in 1..=3 {
            encode(u64::from(i), &Change::Upsert(lease(i, LeaseState::Bound)), &mut b);
        }
        let end = b.len();
        let mut segment = b.clone();
        segment.resize(end + 4096, 0);
        let scan = Replay::new().file(&segment);
        assert_eq!((scan.records, scan.torn_at, scan.unwritten_from), (3, None, Some(end)));
        assert!(scan.skipped.is_empty());
        // A record torn in the middle (its first half written), zeros after it.
        let mut torn = b.clone();
        encode(4, &Change::Upsert(lease(4, LeaseState::Bound)), &mut torn);
        torn.truncate(end + (torn.len() - end) / 2);
        torn.resize(end + 4096, 0);
        let scan = Replay::new().file(&torn);
        assert_eq!((scan.records, scan.torn_at, scan.unwritten_from), (3, Some(end), None));
        // Nothing written yet.
        let scan = Replay::new().file(&[0; 64]);
        assert_eq!((scan.records, scan.torn_at, scan.unwritten_from), (0, None, Some(0)));
    }

    #[test]
    fn conflicts_keep_the_lease_changed_last() {
        let a = lease(1, LeaseState::Bound);
        let b = Lease { key: ClientKey::hw(1, &[2, 0, 0, 0, 0, 9], 1), chaddr: [2, 0, 0, 0, 0, 9], ..a };
        let old = Lease { key: ClientKey::hw(1, &[2, 0, 0, 0, 0, 8], 1), state: LeaseState::Expired, expires: 10, ..a };
        let mut r = Replay::new();
        r.apply(7, Change::Upsert(b));
        r.apply(3, Change::Upsert(a));
        r.apply(9, Change::Upsert(old));
        let (leases, conflicts) = r.finish(100);
        assert_eq!(leases, vec![b]);
        assert_eq!(conflicts, vec![Conflict { addr: a.addr, kept: b, dropped: a }]);
    }

    #[test]
    fn snapshots_are_all_or_nothing() {
        let leases = [lease(1, LeaseState::Bound), lease(2, LeaseState::Declined)];
        let mut data = snapshot_header(4, 2).to_vec();
        for l in &leases {
            encode(11, &Change::Upsert(*l), &mut data);
        }
        let crc = crc32fast::hash(&data);
        data.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_snapshot(&data), Some(leases.iter().map(|l| (11, Change::Upsert(*l))).collect()));
        for i in [0, 9, 30, data.len() - 1] {
            let mut bad = data.clone();
            bad[i] ^= 1;
            assert_eq!(decode_snapshot(&bad), None, "byte {i}");
        }
        assert_eq!(decode_snapshot(&data[..data.len() - 1]), None);
    }

    fn lease6(n: u8, kind: IaKind, addr: &str, len: u8, duid_len: usize) -> Lease6 {
        Lease6 {
            key: Key6 { kind, subnet: 3, duid: vec![n; duid_len].into(), iaid: 7 },
            addr: addr.parse().unwrap(),
            len,
            preferred: 300,
            valid: 600,
            expires: 1_000 + u32::from(n),
            state: Lease6State::Bound,
            tags: Tags { circuit: 7, remote: u32::from(n) },
            relay: u32::from(n) * 3,
        }
    }

    /// A v6 record written before the relay's tag was kept (38 bytes after the key) is still
    /// read, with no relay.
    #[test]
    fn v6_records_without_the_relay_tag_are_read() {
        let l = lease6(5, IaKind::Pd, "2001:db8:100:500::", 56, 10);
        let mut b = vec![];
        encode(9, &Change::Upsert6(l.clone()), &mut b);
        // Cut the 4 bytes of the relay's tag, then set the length and the CRC again.
        let body_end = b.len() - 4;
        let mut old = b[..body_end - 4].to_vec();
        old[3] -= 4;
        let crc = crc32fast::hash(&old);
        old.extend_from_slice(&crc.to_le_bytes());
        let (seq, c, n) = decode(&old).expect("the older record");
        assert_eq!((seq, n), (9, old.len()));
        assert_eq!(c, Change::Upsert6(Lease6 { relay: 0, ..l }));
    }

    /// v6 records round-trip (the longest DUID included), replay keeps the newest per key,
    /// and a snapshot holds both families.
    #[test]
    fn v6_records_round_trip_and_replay_newest_first() {
        let a = lease6(1, IaKind::Na, "2001:db8::10", 128, 10);
        let p = lease6(2, IaKind::Pd, "2001:db8:100::", 56, MAX_DUID);
        let mut bytes = vec![];
        for (seq, c) in
            [(5, Change::Upsert6(a.clone())), (6, Change::Upsert6(p.clone())), (7, Change::Remove6(a.key.clone()))]
        {
            let at = bytes.len();
            encode(seq, &c, &mut bytes);
            assert_eq!(decode(&bytes[at..]), Some((seq, c, bytes.len() - at)));
        }
        let mut r = Replay::new();
        let scan = r.file(&bytes);
        assert_eq!((scan.records, scan.torn_at), (3, None));
        assert_eq!(r.take6(), vec![p.clone()], "the address lease was removed after it was bound");
        // Damage in a v6 record costs only that record.
        let mut bad = bytes.clone();
        bad[20] ^= 0xff;
        let mut r = Replay::new();
        assert_eq!(r.file(&bad).records, 2);
        // A snapshot of both families.
        let v4 = lease(1, LeaseState::Bound);
        let mut data = snapshot_header(2, 2).to_vec();
        encode(4, &Change::Upsert(v4), &mut data);
        encode(4, &Change::Upsert6(p.clone()), &mut data);
        let crc = crc32fast::hash(&data);
        data.extend_from_slice(&crc.to_le_bytes());
        let mut r = Replay::new();
        r.base(decode_snapshot(&data).expect("a whole snapshot"));
        assert_eq!(r.take6(), vec![p]);
        assert_eq!(r.finish(0).0, vec![v4]);
    }

    /// A host name belongs to the record it was given with: kept across renewals (journaled
    /// only when it changes), the newest wins, gone with a removal of the record (a name given
    /// again after that counts), none when empty; a snapshot carries names after the leases.
    #[test]
    fn names_follow_their_record() {
        let (a, b, c) = (lease(1, LeaseState::Bound), lease(2, LeaseState::Bound), lease(3, LeaseState::Bound));
        let name = |s: &str| -> Box<[u8]> { s.as_bytes().into() };
        let mut r = Replay::new();
        r.apply(1, Change::Upsert(a));
        r.apply(2, Change::Attr(Attr::Name, a.key, name("old")));
        r.apply(5, Change::Attr(Attr::Name, a.key, name("a-host")));
        r.apply(9, Change::Upsert(a)); // a renewal: the name stays
        r.apply(3, Change::Attr(Attr::Name, a.key, name("older"))); // an older record read later loses
        r.apply(1, Change::Upsert(b));
        r.apply(2, Change::Attr(Attr::Name, b.key, name("b-host")));
        r.apply(4, Change::Remove(b.key)); // b's record is gone, and its name with it
        r.apply(6, Change::Upsert(b)); // b again, without a name
        r.apply(1, Change::Upsert(c));
        r.apply(2, Change::Attr(Attr::Name, c.key, name("c-host")));
        r.apply(3, Change::Attr(Attr::Name, c.key, name(""))); // c stopped giving one
        let d = ClientKey::client_id(&[4], 1);
        r.apply(2, Change::Attr(Attr::Name, d, name("no record")));
        // Another kind of attribute of the same record is kept apart.
        r.apply(7, Change::Attr(Attr::RelayInfo, a.key, name("\x02\x03rid")));
        let attrs = r.take_attrs();
        assert_eq!(attrs.len(), 2, "{attrs:?}");
        assert_eq!(attrs.get(&(Attr::Name, a.key)).map(|n| &n[..]), Some(&b"a-host"[..]));
        assert_eq!(attrs.get(&(Attr::RelayInfo, a.key)).map(|n| &n[..]), Some(&b"\x02\x03rid"[..]));

        let mut data = snapshot_header(1, 2).to_vec();
        encode(11, &Change::Upsert(a), &mut data);
        encode(11, &Change::Attr(Attr::Name, a.key, name("a-host")), &mut data);
        let crc = crc32fast::hash(&data);
        data.extend_from_slice(&crc.to_le_bytes());
        let mut r = Replay::new();
        r.base(decode_snapshot(&data).expect("a snapshot with a name"));
        assert_eq!(r.take_attrs().get(&(Attr::Name, a.key)).map(|n| &n[..]), Some(&b"a-host"[..]));
    }
}
