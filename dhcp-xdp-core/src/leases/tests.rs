//! Lease table rules with an injected clock: affinity, holds, probation, blocks and stealing,
//! what a rebuild keeps.
use super::*;
use crate::net::Ipv4Net;

fn cfg(prefix_pool: &str) -> Config {
    Config::parse(
        "t.toml",
        &format!("[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"{prefix_pool}\"\n[[subnet.reservation]]\nhw-address = \"02:00:00:00:00:ee\"\nip = \"198.18.0.12\"\n"),
    )
    .unwrap()
}

fn key(i: u8) -> (ClientKey, [u8; 6]) {
    let mac = [2, 0, 0, 0, 1, i];
    (ClientKey::hw(1, &mac, 1), mac)
}

#[test]
fn ethernet_keys_encode_like_any_other_hardware_key() {
    let mac = [2, 0, 0, 0, 1, 9];
    let k = ClientKey::hw(1, &mac, 1);
    assert_eq!(k.as_bytes(), &[4, 1, 2, 0, 0, 0, 1, 9, 1, 0, 0, 0]);
    assert_eq!(k, ClientKey::hw(1, &[2, 0, 0, 0, 1, 9, 7][..6], 1), "built the same way from any slice");
    assert_eq!(ClientKey::from_bytes(k.as_bytes()), Some(k));
    assert_eq!(k.hash64(), ClientKey::from_bytes(k.as_bytes()).unwrap().hash64());
    assert_ne!(k, ClientKey::hw(6, &mac, 1), "htype is part of the key");
    let long = ClientKey::hw(32, &[7; 16], 1);
    assert_eq!(long.as_bytes().len(), 22);
    assert_eq!(long.scope(), Some(1));
    assert_ne!(k, ClientKey::hw(1, &mac, 2), "the lease scope is part of the key");
    assert!(k.same_client(&ClientKey::hw(1, &mac, 2)));
    assert_eq!(k.rescoped(2), ClientKey::hw(1, &mac, 2));
    assert_ne!(ClientKey::hw(1, &[2, 0, 0, 0, 1, 9, 0], 1), k, "hlen is part of the key");
}

#[test]
fn offer_bind_release_keeps_affinity() {
    let c = cfg("198.18.0.10-198.18.0.20");
    let db = LeaseDb::new(&c, 1, [], 1000);
    let mut g = db.lock(0);
    let (k, mac) = key(1);
    let (a, s) = g.offer(1000, 30, &k, mac, &[1], None, None).unwrap();
    assert_eq!(s, 1);
    assert_eq!(g.take_changes(), vec![], "offers are not journaled");
    let l = g.bind(1001, k, mac, a, 1, 3600, false).unwrap();
    assert_eq!(l.expires, 4601);
    assert_eq!(g.take_changes(), vec![Change::Upsert(l)]);
    assert!(g.release(&k, a, 1002));
    // Others take addresses; the released one is offered again to its client while free.
    for i in 2..5 {
        let (k2, m2) = key(i);
        let (b, _) = g.offer(1003, 30, &k2, m2, &[1], None, None).unwrap();
        assert_ne!(b, a, "freed address is reused last (FIFO)");
    }
    assert_eq!(g.offer(1004, 30, &k, mac, &[1], None, None).unwrap().0, a);
}

#[test]
fn discover_from_a_bound_client_does_not_downgrade_its_lease() {
    let c = cfg("198.18.0.10-198.18.0.20");
    let db = LeaseDb::new(&c, 1, [], 0);
    let mut g = db.lock(0);
    let (k, m) = key(1);
    let (a, _) = g.offer(0, 30, &k, m, &[1], None, None).unwrap();
    g.bind(0, k, m, a, 1, 3600, false).unwrap();
    assert_eq!(g.offer(10, 30, &k, m, &[1], None, None).unwrap().0, a);
    let l = g.get(&k).unwrap();
    assert_eq!((l.state, l.expires), (LeaseState::Bound, 3600));
    g.sweep(100, 10);
    assert_eq!(g.get(&k).unwrap().state, LeaseState::Bound, "still bound after the offer hold");
    let renewed = g.bind(1000, k, m, a, 1, 3600, false).unwrap();
    assert_eq!(renewed.expires, 4600);
}

#[test]
fn hint_is_honoured_when_free_and_refused_when_held() {
    let c = cfg("198.18.0.10-198.18.0.20");
    let db = LeaseDb::new(&c, 2, [], 0);
    let mut g = db.lock(0);
    let (k1, m1) = key(1);
    let want = Ipv4Addr::new(198, 18, 0, 15);
    assert_eq!(g.offer(0, 30, &k1, m1, &[1], None, Some(want)).unwrap().0, want);
    g.bind(1, k1, m1, want, 1, 100, false).unwrap();
    let (k2, m2) = key(2);
    assert_ne!(g.offer(2, 30, &k2, m2, &[1], None, Some(want)).unwrap().0, want);
    assert!(!g.available(Ipv4Addr::new(198, 18, 0, 12), &k2, 2), "reserved addresses are never dynamic");
}

#[test]
fn full_pool_says_no_address_and_expiry_frees() {
    let c = cfg("198.18.0.10-198.18.0.13"); // .12 reserved → 3 dynamic addresses
    let db = LeaseDb::new(&c, 1, [], 0);
    let mut g = db.lock(0);
    for i in 0..3 {
        let (k, m) = key(i);
        let (a, _) = g.offer(0, 30, &k, m, &[1], None, None).unwrap();
        g.bind(0, k, m, a, 1, 100, false).unwrap();
    }
    let (k, m) = key(9);
    assert_eq!(g.offer(1, 30, &k, m, &[1], None, None), Err(LeaseError::NoAddress));
    g.take_changes();
    g.sweep(200, 100);
    assert!(g.take_changes().iter().all(|c| matches!(c, Change::Upsert(l) if l.state == LeaseState::Expired)));
    assert!(g.offer(201, 30, &k, m, &[1], None, None).is_ok());
}

#[test]
fn unrequested_offers_lapse_and_return() {
    let c = cfg("198.18.0.10-198.18.0.10");
    let db = LeaseDb::new(&c, 1, [], 0);
    let mut g = db.lock(0);
    let (k1, m1) = key(1);
    let (k2, m2) = key(2);
    g.offer(0, 30, &k1, m1, &[1], None, None).unwrap();
    assert_eq!(g.offer(10, 30, &k2, m2, &[1], None, None), Err(LeaseError::NoAddress));
    g.sweep(31, 10);
    assert!(g.offer(31, 30, &k2, m2, &[1], None, None).is_ok());
}

#[test]
fn decline_puts_address_on_probation() {
    let c = cfg("198.18.0.10-198.18.0.11");
    let db = LeaseDb::new(&c, 1, [], 0);
    let mut g = db.lock(0);
    let (k, m) = key(1);
    let (a, _) = g.offer(0, 30, &k, m, &[1], None, None).unwrap();
    g.bind(0, k, m, a, 1, 100, false).unwrap();
    assert_eq!(g.decline(&k, a, 5, 1000, 100), Ok(()));
    let (b, _) = g.offer(6, 30, &k, m, &[1], None, None).unwrap();
    assert_ne!(a, b, "declined address not offered again");
    let (k2, m2) = key(2);
    assert_eq!(g.offer(7, 30, &k2, m2, &[1], None, None), Err(LeaseError::NoAddress));
    g.sweep(2000, 10);
    g.sweep(2000, 10);
    assert_eq!(g.offer(2001, 30, &k2, m2, &[1], None, None).unwrap().0, a, "probation over");
}

#[test]
fn shards_share_a_small_pool_by_blocks_and_stealing() {
    let c = cfg("198.18.0.10-198.18.0.19"); // 9 dynamic
    let db = LeaseDb::new(&c, 2, [], 0);
    let mut got = hashbrown::HashSet::new();
    for i in 0..9u8 {
        let mut g = db.lock(usize::from(i % 2));
        let (k, m) = key(i);
        let (a, _) = g.offer(0, 30, &k, m, &[1], None, None).expect("pool not full yet");
        g.bind(0, k, m, a, 1, 100, false).unwrap();
        assert!(got.insert(a), "{a} handed out twice");
    }
    let mut g = db.lock(0);
    let (k, m) = key(99);
    assert_eq!(g.offer(0, 30, &k, m, &[1], None, None), Err(LeaseError::NoAddress));
}

#[test]
fn recovery_rehomes_records_and_keeps_them_bound() {
    let c = cfg("198.18.0.10-198.18.0.30");
    let (k, m) = key(7);
    let l = Lease {
        key: k,
        chaddr: m,
        addr: Ipv4Addr::new(198, 18, 0, 25),
        expires: 500,
        state: LeaseState::Bound,
        subnet: 1,
        tags: Tags::default(),
    };
    let db = LeaseDb::new(&c, 3, [l], 100);
    let s = db.shard_of(&m);
    let mut g = db.lock(s);
    assert_eq!(g.get(&k), Some(l));
    let (k2, _) = key(8);
    assert!(!g.available(l.addr, &k2, 101));
    drop(g);
    assert_eq!(db.census(100).bound, 1);
    let _ = Ipv4Net { addr: Ipv4Addr::LOCALHOST, prefix: 8 };
}

#[test]
fn allocation_stays_fast_in_a_nearly_full_pool() {
    let c = Config::parse(
        "t",
        "[[subnet]]\nsubnet = \"198.18.0.0/15\"\n[[subnet.pool]]\nrange = \"198.18.0.1-198.19.255.254\"\n",
    )
    .unwrap();
    let db = LeaseDb::new(&c, 1, [], 0);
    let mut g = db.lock(0);
    let n = 131_070u32;
    for i in 0..n - 100 {
        let mac = [2, 1, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let k = ClientKey::hw(1, &mac, 1);
        let (a, _) = g.offer(0, 30, &k, mac, &[1], None, None).unwrap();
        g.bind(0, k, mac, a, 1, 1000, false).unwrap();
    }
    g.take_changes();
    let t = std::time::Instant::now();
    for i in 0..100u32 {
        let mac = [2, 9, 0, 0, 0, i as u8];
        g.offer(0, 30, &ClientKey::hw(1, &mac, 1), mac, &[1], None, None).unwrap();
    }
    assert!(t.elapsed() < std::time::Duration::from_millis(50), "last 100 allocations took {:?}", t.elapsed());
    let mac = [2, 9, 9, 9, 9, 9];
    assert_eq!(g.offer(0, 30, &ClientKey::hw(1, &mac, 1), mac, &[1], None, None), Err(LeaseError::NoAddress));
}

/// What a rebuild keeps: leases in a pool, on a reserved address, offers still held; not
/// leases outside every pool and reservation (a shrunk pool), lapsed offers or probations.
#[test]
fn a_rebuild_keeps_what_the_new_pools_hold_and_nothing_outside() {
    let c = cfg("198.18.0.10-198.18.0.30");
    let lease = |i: u8, addr: u8, state| {
        let (key, chaddr) = key(i);
        Lease {
            key,
            chaddr,
            addr: Ipv4Addr::new(198, 18, 0, addr),
            expires: 500,
            state,
            subnet: 1,
            tags: Tags::default(),
        }
    };
    let inside = lease(1, 20, LeaseState::Bound);
    let reserved = lease(2, 12, LeaseState::Bound);
    let outside = lease(3, 40, LeaseState::Bound);
    let offered = lease(4, 21, LeaseState::Offered);
    let lapsed_offer = Lease { expires: 50, ..lease(5, 22, LeaseState::Offered) };
    let db = LeaseDb::with_lanes(&c, 2, 2, [inside, reserved, outside, offered, lapsed_offer], 100);
    let all = db.all_leases();
    let has = |l: &Lease| all.iter().any(|x| x.key == l.key);
    assert!(has(&inside) && has(&reserved) && has(&offered), "{all:?}");
    assert!(!has(&outside), "a lease outside every pool is not carried over");
    assert!(!has(&lapsed_offer));
    // The reserved address's lease sits where requests for it are decided.
    let home = db.reserved_home(reserved.addr);
    assert!(db.lock(home).get(&reserved.key).is_some());
}

/// Two records on one address (which recovery may hand over after a crash): the one holding it
/// wins, whichever shard each would go to.
#[test]
fn recovery_never_lets_a_remembered_record_shadow_a_binding() {
    let c = cfg("198.18.0.10-198.18.0.30");
    for (a, b) in [(7u8, 8u8), (8, 7), (9, 200), (200, 9)] {
        let (ka, ma) = key(a);
        let (kb, mb) = key(b);
        let addr = Ipv4Addr::new(198, 18, 0, 25);
        let old = Lease {
            key: ka,
            chaddr: ma,
            addr,
            expires: 50,
            state: LeaseState::Released,
            subnet: 1,
            tags: Tags::default(),
        };
        let bound = Lease {
            key: kb,
            chaddr: mb,
            addr,
            expires: 500,
            state: LeaseState::Bound,
            subnet: 1,
            tags: Tags::default(),
        };
        let db = LeaseDb::with_lanes(&c, 1, 4, [old, bound], 100);
        let holders: Vec<usize> = (0..db.shard_count()).filter(|&i| db.lock(i).get(&kb) == Some(bound)).collect();
        assert_eq!(holders.len(), 1, "{a} vs {b}");
        // Requests of the bound client reach it: where they arrive, or redirected there.
        let arrives = db.shard_of(&mb);
        if holders[0] != arrives {
            assert_eq!(db.lock(arrives).home_of(&kb), Some(holders[0]), "{a} vs {b}");
        }
        for i in 0..db.shard_count() {
            assert!(!db.lock(i).available(addr, &ka, 101), "{a} vs {b}: shard {i} would hand the address out");
        }
    }
}

fn cluster_cfg() -> Config {
    Config::parse(
        "t.toml",
        "[cluster]\nnode = \"a\"\ndatabase = \"postgresql:///d\"\nblock-size = 16\n[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.100-198.18.0.163\"\n",
    )
    .unwrap()
}

/// Cluster mode: nothing is handed out until a block is granted; only granted blocks' addresses
/// go to new clients; a revoked block gives no new address but its clients keep theirs; a
/// lease absorbed from the database takes its address out of this node's hands.
#[test]
fn cluster_blocks_gate_what_new_clients_get() {
    let c = cluster_cfg();
    let db = LeaseDb::new(&c, 2, [], 1000);
    let blocks = db.cluster_blocks();
    assert_eq!(blocks.len(), 4);
    assert_eq!((blocks[1].first, blocks[1].len, blocks[1].subnet), (Ipv4Addr::new(198, 18, 0, 116), 16, 1));
    let (k, m) = key(1);
    assert_eq!(db.lock(0).offer(1000, 30, &k, m, &[1], None, None), Err(LeaseError::NoAddress));
    assert!(!db.grant(Ipv4Addr::new(198, 18, 0, 117), 1000), "not a block start");
    assert!(db.grant(blocks[1].first, 1000));
    assert!(!db.grant(blocks[1].first, 1000), "granted once");
    let in_block = |a: Ipv4Addr| (116..132).contains(&a.octets()[3]);
    let mut bound = vec![];
    for i in 0..16u8 {
        let (k, m) = key(i);
        let shard = db.shard_of(&m);
        let mut g = db.lock(shard);
        let (a, _) = g.offer(1000, 30, &k, m, &[1], None, None).expect("an address of the granted block");
        assert!(in_block(a), "{a}");
        bound.push((shard, k, m, g.bind(1000, k, m, a, 1, 3600, false).unwrap()));
    }
    let (k, m) = key(99);
    assert_eq!(db.lock(db.shard_of(&m)).offer(1000, 30, &k, m, &[1], None, None), Err(LeaseError::NoAddress));
    // A requested address outside the held blocks is not available to a new client.
    assert!(!db.lock(0).available(Ipv4Addr::new(198, 18, 0, 100), &k, 1000));
    let (pools, busy) = db.granted_usage(1000);
    let range = (Ipv4Addr::new(198, 18, 0, 100), Ipv4Addr::new(198, 18, 0, 163));
    assert_eq!(pools, vec![PoolGrants { first: range.0, last: range.1, held: 16, used: 16 }]);
    assert_eq!(busy.get(&blocks[1].first), Some(&16));
    // Revoked: holders renew, nobody new gets in even after a release.
    assert!(db.revoke(blocks[1].first));
    let (shard, k0, m0, l0) = bound[0];
    assert_eq!(db.lock(shard).bind(1010, k0, m0, l0.addr, 1, 3600, false).unwrap().addr, l0.addr);
    assert!(db.lock(shard).release(&k0, l0.addr, 1011));
    assert_eq!(db.lock(db.shard_of(&m)).offer(1012, 30, &k, m, &[1], None, None), Err(LeaseError::NoAddress));
    // Granted again: the released address is free for the newcomer.
    assert!(db.grant(blocks[1].first, 1013));
    let (a, _) = db.lock(db.shard_of(&m)).offer(1013, 30, &k, m, &[1], None, None).unwrap();
    assert_eq!(a, l0.addr);
    // Another node's lease, absorbed: its address is held and never offered here.
    assert!(db.grant(blocks[2].first, 1014));
    let (fk, fm) = key(200);
    let foreign = Lease {
        key: fk,
        chaddr: fm,
        addr: blocks[2].first,
        expires: 5000,
        state: LeaseState::Bound,
        subnet: 1,
        tags: Tags::default(),
    };
    db.absorb(foreign, 1014);
    assert_eq!(db.lease_at(blocks[2].first).map(|x| x.1), Some(foreign));
    // Older news of the same client (an earlier expiry) is not taken; newer is.
    db.absorb(Lease { expires: 4000, ..foreign }, 1014);
    assert_eq!(db.lease_at(blocks[2].first).map(|x| x.1.expires), Some(5000));
    db.absorb(Lease { expires: 6000, ..foreign }, 1014);
    assert_eq!(db.lease_at(blocks[2].first).map(|x| x.1.expires), Some(6000));
    for i in 100..115u8 {
        let (k, m) = key(i);
        let (a, _) = db.lock(db.shard_of(&m)).offer(1014, 30, &k, m, &[1], None, None).unwrap();
        assert_ne!(a, blocks[2].first, "absorbed lease's address offered to client {i}");
    }
}
