//! Journal and snapshot bytes → replay: whatever the bytes, replay must not panic, and after
//! damage to a journal of known records (bytes zeroed, cut, inserted, removed) it must report
//! only leases that were written, each exactly as written.
#![no_main]

use std::net::Ipv4Addr;

use dhcp_xdp_core::{
    leases::{Change, ClientKey, Lease, LeaseState, Tags},
    records::{self, Replay},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        // Raw bytes as a journal file and as a snapshot.
        0 => {
            let mut r = Replay::new();
            let scan = r.file(rest);
            assert!(scan.torn_at.is_none_or(|t| t <= rest.len()));
            let _ = r.finish(1_000);
            if let Some(leases) = records::decode_snapshot(rest) {
                let mut r = Replay::new();
                r.base(leases);
                let _ = r.finish(1_000);
            }
        }
        // Known records, then damage: flips, cuts and insertions chosen by the input.
        _ => {
            let Some((&n, edits)) = rest.split_first() else { return };
            let mut written: Vec<Lease> = vec![];
            let mut bytes = vec![];
            for i in 0..u32::from(n % 64) + 1 {
                let mac = [2, 0, 0, 0, (i >> 3) as u8, i as u8];
                let l = Lease {
                    key: if i % 3 == 0 { ClientKey::client_id(&i.to_be_bytes(), 1) } else { ClientKey::hw(1, &mac, 1) },
                    chaddr: mac,
                    addr: Ipv4Addr::new(198, 18, (i >> 8) as u8, i as u8),
                    expires: 500 + i,
                    state: if i % 5 == 0 { LeaseState::Released } else { LeaseState::Bound },
                    subnet: 1,
                    tags: Tags { circuit: i % 4, remote: 0 },
                };
                written.push(l);
                let c = if i % 7 == 6 { Change::Remove(l.key) } else { Change::Upsert(l) };
                records::encode(u64::from(i) + 1, &c, &mut bytes);
            }
            for e in edits.chunks(3) {
                if bytes.is_empty() {
                    break;
                }
                let at = (usize::from(e[0]) << 8 | usize::from(*e.get(1).unwrap_or(&0))) % bytes.len();
                let v = *e.get(2).unwrap_or(&0);
                // Damage chooses where, never what: zeroed bytes, cuts and gaps cannot forge a
                // record with a matching CRC (which no reader could tell from a real one).
                match v % 4 {
                    0 => bytes[at] = 0,
                    1 => bytes.truncate(at),
                    2 => bytes.insert(at, 0),
                    _ => {
                        bytes.drain(at..(at + usize::from(v % 16)).min(bytes.len()));
                    }
                }
            }
            let mut r = Replay::new();
            r.file(&bytes);
            let (leases, _) = r.finish(0);
            for l in leases {
                assert!(written.contains(&l), "replay reported a lease that was never written: {l:?}");
            }
        }
    }
});
