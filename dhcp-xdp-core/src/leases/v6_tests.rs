//! The v6 table on its own: recovery, replay, expiry and the pools' numbers.

use super::*;

const NOW: u32 = 500_000;

fn cfg() -> Config {
    Config::parse(
        "t.toml",
        r#"
[[subnet6]]
subnet = "2001:db8:1::/64"
valid-lifetime = 100
preferred-lifetime = 50
  [[subnet6.pool]]
  range = "2001:db8:1::10-2001:db8:1::11"
  [[subnet6.pd-pool]]
  prefix = "2001:db8:100::"
  prefix-len = 56
  delegated-len = 57
"#,
    )
    .unwrap()
}

fn key(kind: IaKind, n: u8) -> Key6 {
    Key6 { kind, subnet: 1, duid: std::sync::Arc::from(&[0, 3, 0, 1, n][..]), iaid: 1 }
}

fn bind(t: &mut Table6, c: &Config, k: &Key6, now: u32) -> Option<Lease6> {
    t.bind(&c.subnets6[0], Ask6::new(k), true, 30, now).ok()
}

#[test]
fn recovered_leases_keep_their_numbers_and_expired_ones_are_not_restored() {
    let c = cfg();
    let mut t = Table6::new(&c, [], NOW);
    let a = bind(&mut t, &c, &key(IaKind::Na, 1), NOW).unwrap();
    let p = bind(&mut t, &c, &key(IaKind::Pd, 1), NOW).unwrap();
    assert_eq!((p.addr, p.len), ("2001:db8:100::".parse().unwrap(), 57));
    let mut stored = vec![];
    t.drain_changes(&mut stored);
    assert_eq!(stored.len(), 2);
    // A restart: the table rebuilt from what was stored, plus one lease that has expired.
    let mut expired = a.clone();
    expired.key = key(IaKind::Na, 2);
    expired.addr = "2001:db8:1::11".parse().unwrap();
    expired.expires = NOW - 1;
    let mut r = Table6::new(&c, [a.clone(), p.clone(), expired], NOW);
    assert_eq!(r.get(&key(IaKind::Na, 1)), Some(&a));
    assert_eq!(r.available(1, IaKind::Na), 1, "the expired lease's address is free again");
    assert_eq!(r.available(1, IaKind::Pd), 1);
    // Its address is not handed out twice.
    let other = bind(&mut r, &c, &key(IaKind::Na, 3), NOW).unwrap();
    assert_ne!(other.addr, a.addr);
    assert!(bind(&mut r, &c, &key(IaKind::Na, 4), NOW).is_none(), "exhausted");
}

#[test]
fn replay_applies_upserts_and_removes_by_key() {
    let c = cfg();
    let mut t = Table6::new(&c, [], NOW);
    let a = bind(&mut t, &c, &key(IaKind::Na, 1), NOW).unwrap();
    let mut changes = vec![];
    t.drain_changes(&mut changes);
    assert!(t.release(&key(IaKind::Na, 1), a.addr, 128));
    t.drain_changes(&mut changes);
    let mut r = Table6::new(&c, [], NOW);
    r.apply(&c, changes[0].clone());
    assert_eq!(r.holder(a.addr, 128).map(|l| l.key.clone()), Some(key(IaKind::Na, 1)));
    r.apply(&c, changes[1].clone());
    assert!(r.holder(a.addr, 128).is_none());
    assert_eq!(r.available(1, IaKind::Na), 2);
}

#[test]
fn the_sweep_gives_back_ended_leases_and_advertisements_and_stores_only_leases() {
    let c = cfg();
    let mut t = Table6::new(&c, [], NOW);
    bind(&mut t, &c, &key(IaKind::Na, 1), NOW).unwrap();
    let adv = t.bind(
        &c.subnets6[0],
        Ask6 {
            key: &key(IaKind::Na, 2),
            hints: &[],
            reserved: &[],
            max_per_duid: 0,
            tags: Default::default(),
            relay: 0,
            max_per_line: (0, 0),
        },
        false,
        30,
        NOW,
    );
    assert_eq!(adv.map(|l| l.state), Ok(Lease6State::Advertised));
    let mut changes = vec![];
    t.drain_changes(&mut changes);
    assert_eq!(changes.len(), 1, "the advertisement is not stored");
    assert_eq!(t.sweep(NOW + 31, 10), 1, "the advertisement ends first");
    t.drain_changes(&mut changes);
    assert_eq!(changes.len(), 1, "its end is not stored either");
    assert_eq!(t.sweep(NOW + 101, 10), 1);
    t.drain_changes(&mut changes);
    assert!(matches!(changes.last(), Some(Change::Remove6(k)) if *k == key(IaKind::Na, 1)));
    assert_eq!(t.available(1, IaKind::Na), 2);
}

#[test]
fn an_exhausted_pool_takes_back_expired_leases_when_asked() {
    let c = cfg();
    let mut t = Table6::new(&c, [], NOW);
    bind(&mut t, &c, &key(IaKind::Na, 1), NOW).unwrap();
    bind(&mut t, &c, &key(IaKind::Na, 2), NOW).unwrap();
    assert!(bind(&mut t, &c, &key(IaKind::Na, 3), NOW + 50).is_none());
    // Past their valid lifetime, without a sweep in between.
    assert!(bind(&mut t, &c, &key(IaKind::Na, 3), NOW + 101).is_some());
}

/// The sweep takes what is due from the calendar: a lease extended since is not taken at its
/// old end, and no more than `max` go per call.
#[test]
fn the_sweep_skips_leases_extended_since_and_is_bounded() {
    let c = cfg();
    let mut t = Table6::new(&c, [], NOW);
    let a = bind(&mut t, &c, &key(IaKind::Na, 1), NOW).unwrap();
    bind(&mut t, &c, &key(IaKind::Na, 2), NOW).unwrap();
    bind(&mut t, &c, &key(IaKind::Pd, 1), NOW).unwrap();
    // Client 1 renews at NOW + 60: its lease now ends at NOW + 160.
    assert!(t.extend(&c.subnets6[0], &key(IaKind::Na, 1), a.addr, 128, NOW + 60).is_some());
    // At NOW + 100 the other two are due; one per call.
    assert_eq!(t.sweep(NOW + 100, 1), 1);
    assert_eq!(t.sweep(NOW + 100, 10), 1);
    assert_eq!(t.sweep(NOW + 100, 10), 0, "the renewed lease is not due");
    assert!(t.get(&key(IaKind::Na, 1)).is_some());
    assert_eq!(t.sweep(NOW + 161, 10), 1);
    assert!(t.get(&key(IaKind::Na, 1)).is_none());
}
