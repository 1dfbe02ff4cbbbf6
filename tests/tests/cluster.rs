//! Cluster mode on the real thing: a throwaway PostgreSQL, two responders and a client host on
//! a bridged LAN of namespaces. The nodes split the clients by RFC 3074 bucket (never both
//! answering one DISCOVER); a SIGKILLed node's clients rebind to the survivor and keep their
//! addresses; new clients bind; the node rejoins and the buckets are divided again; a node cut
//! off from the database ACKs nothing while the other takes over. Throughout, the database and
//! the clients' own view show no address held by two clients.

use std::{
    collections::HashMap,
    net::Ipv4Addr,
    process::Command,
    time::{Duration, Instant},
};

use dhcp_xdp_common::lb_hash;
use dhcp_xdp_core::leases::ClientKey;
use nix::sys::signal::Signal;
use tests::{
    Daemon, TempDir,
    cluster::{Clients, Held, Lan, Postgres, Relay, wait_until},
    daemon_bin,
    frames::Reply,
    metric,
};

const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);

fn config(dir: &TempDir, node: &str, url: &str) -> String {
    config_pool(dir, node, url, "198.18.0.10-198.18.0.199")
}

fn config_pool(dir: &TempDir, node: &str, url: &str, range: &str) -> String {
    dir.config(&format!(
        "[server]\nlease-time = 600\n\
         [cluster]\nnode = \"{node}\"\ndatabase = \"{url}\"\nheartbeat = 1\ntakeover-after = 3\nblock-size = 16\n\
         [[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"{range}\"\n"
    ))
}

/// The LAN: node a, node b, and a client host.
fn lan() -> Lan {
    Lan::new(&[Some(A_IP), Some(B_IP), None])
}

fn start(lan: &Lan, i: usize, cfg: &str) -> Daemon {
    Daemon::start(&lan.hosts[i].ns, &lan.hosts[i].ifname, &["--config", cfg, "--workers", "1"])
}

/// Runs a daemon on host `i` that is expected to refuse to start: it must exit unsuccessfully;
/// returns what it wrote to stderr.
fn refused_start(lan: &Lan, i: usize, cfg: &str) -> String {
    let out = lan.hosts[i]
        .ns
        .exec(daemon_bin())
        .args(["run", "--iface", &lan.hosts[i].ifname, "--config", cfg, "--workers", "1"])
        .output()
        .expect("run");
    assert!(!out.status.success(), "the daemon started: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lease store's status as the daemon reports it (`counters-get`).
fn store(d: &Daemon) -> serde_json::Value {
    d.counters().0["store"].clone()
}

/// Waits until the daemon's store status satisfies `f`.
fn wait_store(d: &Daemon, what: &str, limit: Duration, f: impl Fn(&serde_json::Value) -> bool) {
    assert!(d.wait_counters(limit, |c| f(&c.0["store"])), "{what} not seen in {limit:?}: {}", store(d));
}

/// Waits until the daemon has applied or rejected `n` reloads, as `status-get` says.
fn wait_reloads(d: &Daemon, field: &str, n: u64) {
    assert!(
        wait_until(Duration::from_secs(5), || {
            d.ask("status-get", serde_json::json!({}))["arguments"][field].as_u64().is_some_and(|x| x >= n)
        }),
        "{field} never reached {n}: {}",
        d.status()
    );
}

/// The node a client with `chaddr` (no client id) belongs to while both are live: bucket
/// `lb_hash(chaddr)`, even buckets to "a".
fn expected_server(chaddr: &[u8; 6]) -> Ipv4Addr {
    if lb_hash(chaddr).is_multiple_of(2) { A_IP } else { B_IP }
}

fn chaddr(group: u8, i: u8) -> [u8; 6] {
    [2, 0xc1, 0, 0, group, i]
}

/// The lease rows that hold an address now: address → (client key, node).
fn held_rows(pg: &Postgres) -> HashMap<Ipv4Addr, (Vec<u8>, String)> {
    pg.client()
        .query(
            "SELECT address, client_key, node FROM dhcp_xdp_leases
             WHERE state IN (0, 1, 4) AND expires > extract(epoch FROM now())",
            &[],
        )
        .expect("lease rows")
        .iter()
        .map(|r| (Ipv4Addr::from(r.get::<_, i64>(0) as u32), (r.get(1), r.get(2))))
        .collect()
}

/// Every client's address is its own in the database, and no address appears twice among the
/// clients.
fn check_no_address_twice(pg: &Postgres, held: &HashMap<[u8; 6], Held>) {
    let rows = held_rows(pg);
    let mut seen: HashMap<Ipv4Addr, [u8; 6]> = HashMap::new();
    for (c, h) in held {
        if let Some(other) = seen.insert(h.addr, *c) {
            panic!("{} held by clients {other:02x?} and {c:02x?}", h.addr);
        }
        let (key, node) = rows.get(&h.addr).unwrap_or_else(|| panic!("no row holds {} of {c:02x?}", h.addr));
        assert_eq!(
            key.as_slice(),
            ClientKey::hw(1, c, 1).as_bytes(),
            "row of {} (node {node}) is another client's",
            h.addr
        );
    }
}

/// Waits until each daemon says it serves `n` of the 256 buckets.
fn wait_for_buckets(daemons: &[&Daemon], n: u32) {
    for d in daemons {
        wait_store(d, &format!("serving {n} of 256 buckets"), Duration::from_secs(10), |s| s["buckets"] == n);
    }
}

/// Each of `which` rebinds: exactly one ACK comes, from `server(client)`, with its address.
fn rebind_each(
    clients: &mut Clients,
    held: &mut HashMap<[u8; 6], Held>,
    which: &[[u8; 6]],
    server: impl Fn(&[u8; 6]) -> Ipv4Addr,
    when: &str,
) {
    for c in which {
        let h = held[c];
        let replies = clients.rebind(*c, h.addr, 8);
        let acks: Vec<&Reply> = replies.iter().filter(|r| r.message_type() == Some(5)).collect();
        assert_eq!(acks.len(), 1, "{c:02x?} {when}: {} ACKs", acks.len());
        assert_eq!((acks[0].yiaddr(), acks[0].server_id()), (h.addr, Some(server(c))), "{c:02x?} {when}");
        held.insert(*c, Held { addr: h.addr, server: server(c) });
    }
}

/// `n` new clients (chaddr group `group`) bind, every one by `server`.
fn bind_new(clients: &mut Clients, held: &mut HashMap<[u8; 6], Held>, group: u8, n: u8, server: Ipv4Addr) {
    for i in 0..n {
        let c = chaddr(group, i);
        let h = clients.bind(c).unwrap_or_else(|| panic!("new client {i} of group {group} not bound"));
        assert_eq!(h.server, server, "new client {i} of group {group}");
        held.insert(c, h);
    }
}

/// `n` new clients of chaddr group `group` bind while both nodes serve, each by the node its
/// bucket belongs to; returns them and those of a.
fn bind_split(clients: &mut Clients, group: u8, n: u8) -> (HashMap<[u8; 6], Held>, Vec<[u8; 6]>) {
    let mut held: HashMap<[u8; 6], Held> = HashMap::new();
    for i in 0..n {
        let c = chaddr(group, i);
        let h = clients.bind(c).unwrap_or_else(|| panic!("client {i} of group {group} not bound"));
        assert_eq!(h.server, expected_server(&c), "client {i} of group {group} answered by the other node");
        held.insert(c, h);
    }
    let on_a: Vec<[u8; 6]> = held.iter().filter(|(_, h)| h.server == A_IP).map(|(c, _)| *c).collect();
    assert!(!on_a.is_empty() && on_a.len() < held.len(), "both nodes answer: {} of {} on a", on_a.len(), held.len());
    (held, on_a)
}

/// Both nodes serve, split by bucket; SIGKILL one while the other is kept busy; its clients
/// rebind to the survivor with their addresses; new clients bind; the killed node rejoins,
/// the buckets are divided again and it answers its clients with their addresses.
#[test]
fn two_nodes_split_the_clients_and_survive_a_sigkill() {
    let pg = Postgres::start();
    let lan = lan();
    let dir = TempDir::new("dxcl");
    let (cfg_a, cfg_b) = (config(&dir, "a", &pg.url()), {
        let d = TempDir::new("dxcl");
        let c = config(&d, "b", &pg.url());
        (d, c)
    });
    let (dir_b, cfg_b) = cfg_b;
    // b keeps a forensic log: what it takes over from a is a line of its own.
    let log_b = dir_b.path().join("leases.jsonl");
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().append(true).open(&cfg_b).expect("b's config");
        writeln!(f, "[forensic-log]\npath = \"{}\"\nfsync-interval-ms = 100", log_b.display()).expect("b's config");
    }
    let a = start(&lan, 0, &cfg_a);
    let b = start(&lan, 1, &cfg_b);
    wait_for_buckets(&[&a, &b], 128);
    let mut clients = Clients::new(&lan.hosts[2]);
    let (mut held, on_a) = bind_split(&mut clients, 1, 48);
    check_no_address_twice(&pg, &held);

    // Load on both (every client renews with its server, from a second socket) while a dies:
    // a's answers stop, b's go on; no answer is ever anything but an ACK of the same address.
    let all: Vec<([u8; 6], Held)> = held.iter().map(|(c, h)| (*c, *h)).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, macs) = (stop.clone(), [(A_IP, lan.hosts[0].mac), (B_IP, lan.hosts[1].mac)]);
        let mut cl = Clients::new(&lan.hosts[2]);
        cl.xid = 0x0800_0000;
        std::thread::spawn(move || {
            let (mut acks_b, mut other) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (c, h) in &all {
                    let mac = macs.iter().find(|m| m.0 == h.server).map(|m| m.1).expect("server mac");
                    for r in cl.renew(*c, h.addr, h.server, mac) {
                        match r.message_type() {
                            Some(5) if r.yiaddr() == h.addr => acks_b += u32::from(h.server == B_IP),
                            _ => other += 1,
                        }
                    }
                }
            }
            (acks_b, other)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    let _ = a.signal_and_wait(Signal::SIGKILL);
    // Its first client rebinds until the survivor answers: the takeover time.
    let (first, first_held) = (on_a[0], held[&on_a[0]]);
    let mut ack = None;
    while killed.elapsed() < Duration::from_secs(20) && ack.is_none() {
        ack = clients.rebind(first, first_held.addr, 1).into_iter().find(|r| r.message_type() == Some(5));
    }
    let ack = ack.expect("no rebind ACK within 20 s of the SIGKILL");
    println!("takeover: first rebind ACK {:.2?} after SIGKILL", killed.elapsed());
    assert_eq!((ack.yiaddr(), ack.server_id()), (first_held.addr, Some(B_IP)));
    wait_store(&b, "b's takeover of a", Duration::from_secs(5), |s| s["takeovers"].as_u64() >= Some(1));
    // Every binding a held is a `taken-over` line in b's forensic log, from a, by b.
    let taken = |want: usize| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log_b)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .filter(|l: &serde_json::Value| l["event"] == "taken-over")
                .collect();
            if lines.len() >= want || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let lines = taken(on_a.len());
    for c in &on_a {
        let addr = held[c].addr.to_string();
        let l = lines.iter().find(|l| l["address"] == addr.as_str()).unwrap_or_else(|| panic!("{addr}: {lines:?}"));
        assert_eq!((l["from-node"].as_str(), l["node"].as_str()), (Some("a"), Some("b")), "{l}");
        assert!(l["valid-lft"].as_u64().is_some_and(|v| v > 0 && v <= 600), "{l}");
    }
    rebind_each(&mut clients, &mut held, &on_a, |_| B_IP, "after the takeover");
    // New clients: all on b now, on free addresses.
    bind_new(&mut clients, &mut held, 2, 16, B_IP);
    check_no_address_twice(&pg, &held);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acks, other) = load.join().expect("load thread");
    assert!(acks > 0 && other == 0, "renewals during the takeover: {acks} ACKs from b, {other} other answers");

    // Rejoin: a comes back with every lease from the database and takes its buckets again.
    let a = start(&lan, 0, &cfg_a);
    wait_store(&b, "a joining again", Duration::from_secs(10), |s| s["nodes"] == 2);
    wait_for_buckets(&[&a, &b], 128);
    let everyone: Vec<[u8; 6]> = held.keys().copied().collect();
    rebind_each(&mut clients, &mut held, &everyone, expected_server, "after the rejoin");
    check_no_address_twice(&pg, &held);
    for d in [a, b] {
        let exit = d.signal_and_wait(Signal::SIGTERM);
        assert!(exit.status.success(), "{}", exit.stderr.join("\n"));
        let store = exit.counters.expect("counters read at the stop").0["store"].clone();
        assert!(store["failing"] == false && store["dropped-batches"] == 0, "{store}");
    }
    // Every lease the clients hold is a row of theirs after both stopped.
    check_no_address_twice(&pg, &held);
}

/// A node cut off from the database ACKs nothing (its clients' renewals go unanswered) and
/// stands down; the other takes its buckets and blocks and answers its clients' rebinds with
/// their addresses; mended, the node rejoins.
#[test]
fn a_node_cut_off_from_the_database_promises_nothing() {
    let pg = Postgres::start();
    let relay = Relay::new(&pg.socket_dir);
    let lan = lan();
    let (da, db) = (TempDir::new("dxcl"), TempDir::new("dxcl"));
    let a = Daemon::start(
        &lan.hosts[0].ns,
        &lan.hosts[0].ifname,
        &[
            "--config",
            &config(&da, "a", &pg.url_via(relay.dir.path())),
            "--workers",
            "1",
            "--metrics",
            "198.18.0.2:9187",
        ],
    );
    let b = start(&lan, 1, &config(&db, "b", &pg.url()));
    let gauge = |name: &str| metric(&lan.hosts[0].ns, "198.18.0.2:9187", &format!("{name}{{node=\"a\"}}"));
    assert_eq!(
        (gauge("dhcp_xdp_cluster_database_up"), gauge("dhcp_xdp_cluster_commit_failing")),
        (Some(1.0), Some(0.0))
    );
    wait_for_buckets(&[&a, &b], 128);
    let mut clients = Clients::new(&lan.hosts[2]);
    let (mut held, on_a) = bind_split(&mut clients, 3, 32);

    relay.cut();
    let a_mac = lan.hosts[0].mac;
    // Renewals to a: it cannot commit, so it must not ACK (and they do reach it: its engine
    // counts them, or, once a has stood down when its last heartbeat's deadline passed, its
    // workers drop them as `standby` before the engine sees them).
    let requests = || {
        let m = |name: &str| metric(&lan.hosts[0].ns, "198.18.0.2:9187", name).unwrap_or(0.0);
        m("dhcp_xdp_packets_received_total{family=\"v4\",type=\"request\"}")
            + m("dhcp_xdp_drops_total{reason=\"standby\"}")
    };
    let before = requests();
    let t = Instant::now();
    let mut sent = 0;
    while t.elapsed() < Duration::from_secs(2) {
        let c = on_a[0];
        let replies = clients.renew(c, held[&c].addr, A_IP, a_mac);
        assert!(!replies.iter().any(|r| r.message_type() == Some(5)), "a ACKed without the database");
        sent += 3;
    }
    assert!(
        wait_until(Duration::from_secs(3), || requests() >= before + f64::from(sent) * 0.8),
        "the renewals did not reach a: {} of {sent} counted",
        requests() - before
    );
    wait_store(&a, "a's failing commits", Duration::from_secs(5), |s| s["failing"] == true);
    assert_eq!(gauge("dhcp_xdp_cluster_commit_failing"), Some(1.0), "the metrics say a cannot commit");
    assert!(wait_until(Duration::from_secs(5), || gauge("dhcp_xdp_cluster_database_up") == Some(0.0)));
    assert!(wait_until(Duration::from_secs(5), || gauge("dhcp_xdp_cluster_buckets") == Some(0.0)), "a stood down");
    wait_store(&a, "a standing down", Duration::from_secs(10), |s| s["buckets"] == 0 && s["serving"] == false);
    wait_store(&b, "b's takeover of a", Duration::from_secs(10), |s| s["takeovers"].as_u64() >= Some(1));
    rebind_each(&mut clients, &mut held, &on_a, |_| B_IP, "during the partition");
    bind_new(&mut clients, &mut held, 4, 8, B_IP);
    check_no_address_twice(&pg, &held);

    relay.mend();
    wait_store(&a, "a's database again", Duration::from_secs(10), |s| s["database-up"] == true);
    assert!(wait_until(Duration::from_secs(5), || gauge("dhcp_xdp_cluster_database_up") == Some(1.0)));
    wait_for_buckets(&[&a, &b], 128);
    let everyone: Vec<[u8; 6]> = held.keys().copied().collect();
    rebind_each(&mut clients, &mut held, &everyone, expected_server, "after the partition");
    check_no_address_twice(&pg, &held);
}

/// `dhcp-xdp db`: status of an empty database names `db init`; a daemon refuses an older
/// schema naming `db upgrade`, which brings it to the current version; the schema's trigger
/// refuses to hand a held address to another client whoever writes.
#[test]
fn the_schema_is_created_checked_and_upgraded() {
    let pg = Postgres::start();
    let db =
        |action: &str| Command::new(daemon_bin()).args(["db", action, "--database", &pg.url()]).output().expect("run");
    let out = db("status");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("db init"), "{out:?}");
    // An old schema (version 0: the schema table only): the daemon names the fix.
    pg.client()
        .batch_execute(
            "CREATE TABLE dhcp_xdp_schema (version integer NOT NULL); INSERT INTO dhcp_xdp_schema VALUES (0);",
        )
        .expect("old schema");
    let lan = Lan::new(&[Some(A_IP)]);
    let dir = TempDir::new("dxcl");
    let cfg = config(&dir, "a", &pg.url());
    let said = refused_start(&lan, 0, &cfg);
    assert!(said.contains("dhcp-xdp db upgrade"), "{said}");
    let out = db("upgrade");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("from version 0 to 8"), "{out:?}");
    let out = db("init");
    assert!(String::from_utf8_lossy(&out.stdout).contains("already at version 8"), "{out:?}");
    let out = db("status");
    assert!(String::from_utf8_lossy(&out.stdout).contains("schema version 8"), "{out:?}");
    // One row per address; a held address cannot be moved to another client by anyone.
    let mut c = pg.client();
    c.batch_execute(
        "INSERT INTO dhcp_xdp_leases (address, client_key, hwaddr, subnet, expires, state, node, seq)
         VALUES (3323068426, '\\x0101', '\\x01', 1, extract(epoch FROM now())::bigint + 600, 1, 'x', 1)",
    )
    .expect("a lease row");
    let err = c
        .execute("UPDATE dhcp_xdp_leases SET client_key = '\\x0102' WHERE address = 3323068426", &[])
        .expect_err("moving a held address to another client");
    let msg = err.as_db_error().map(|e| e.message().to_owned()).unwrap_or_default();
    assert!(msg.contains("held by another client"), "{err:?}");
    let err = c
        .batch_execute(
            "INSERT INTO dhcp_xdp_leases (address, client_key, hwaddr, subnet, expires, state, node, seq)
             VALUES (3323068426, '\\x0103', '\\x01', 1, 0, 1, 'y', 1)",
        )
        .expect_err("a second row on one address");
    let msg = err.as_db_error().map(|e| e.message().to_owned()).unwrap_or_default();
    assert!(msg.contains("duplicate key"), "{err:?}");
    drop(lan);
}

/// Real clients (busybox udhcpc on hosts of their own) through the pair: each is answered by
/// the node its own identifiers hash to — the client identifier udhcpc sends, or chaddr with
/// `-C` — its lease is the database's row for that client, with the host name it gave, no two
/// share an address, and a RELEASE reaches the row. The last client keeps its lease: the other
/// node, which did not answer it, shows it with its host name (taken from the database).
#[test]
fn real_clients_bind_through_the_cluster() {
    let pg = Postgres::start();
    let lan = Lan::new(&[Some(A_IP), Some(B_IP), None, None, None, None]);
    let (da, db) = (TempDir::new("dxcl"), TempDir::new("dxcl"));
    let a = start(&lan, 0, &config(&da, "a", &pg.url()));
    let b = start(&lan, 1, &config(&db, "b", &pg.url()));
    wait_for_buckets(&[&a, &b], 128);
    let mut seen: HashMap<Ipv4Addr, usize> = HashMap::new();
    for (i, host) in lan.hosts.iter().enumerate().skip(2) {
        // The last host sends no client identifier: its bucket comes from chaddr.
        let with_id = i != lan.hosts.len() - 1;
        let key = if with_id {
            let id: Vec<u8> = [1u8].iter().chain(&host.mac).copied().collect();
            (lb_hash(&id), ClientKey::client_id(&id, 1))
        } else {
            (lb_hash(&host.mac), ClientKey::hw(1, &host.mac, 1))
        };
        let expected = if key.0.is_multiple_of(2) { A_IP } else { B_IP };
        let name = format!("cpe-{i}");
        let hostname = format!("hostname:{name}");
        let extra: Vec<&str> = if with_id { vec!["-x", &hostname] } else { vec!["-C", "-x", &hostname] };
        let release = with_id;
        let udhcpc = tests::clients::Udhcpc::new();
        let got =
            udhcpc.obtain(&host.ns, &host.ifname, release, &extra).unwrap_or_else(|| panic!("host {i}: no lease"));
        let addr: Ipv4Addr = got["ip"].parse().expect("ip");
        assert_eq!(got["serverid"], expected.to_string(), "host {i} (bucket {}) answered by the other node", key.0);
        if let Some(other) = seen.insert(addr, i) {
            panic!("{addr} given to hosts {other} and {i}");
        }
        // udhcpc has released it (SIGTERM with -R): the row says so, and it is this client's,
        // with its name.
        let state = if release { 2 } else { 1 };
        assert!(
            wait_until(Duration::from_secs(5), || {
                pg.client()
                    .query_opt(
                        "SELECT client_key, state, hostname FROM dhcp_xdp_leases WHERE address = $1",
                        &[&i64::from(u32::from(addr))],
                    )
                    .expect("row")
                    .is_some_and(|r| {
                        r.get::<_, Vec<u8>>(0) == key.1.as_bytes()
                            && r.get::<_, i16>(1) == state
                            && r.get::<_, Vec<u8>>(2) == name.as_bytes()
                    })
            }),
            "host {i}: no row of its own (state {state}, named {name}) for {addr}"
        );
        if !release {
            // Nodes pull each other's rows every tenth heartbeat (1 s).
            let other = if expected == A_IP { &b } else { &a };
            assert!(
                wait_until(Duration::from_secs(15), || {
                    other.ask("lease4-get", serde_json::json!({ "ip-address": addr.to_string() }))["arguments"]["hostname"]
                        == name.as_str()
                }),
                "host {i}: the node that did not answer it does not show {addr} named {name}"
            );
        }
    }
}

/// Operating a node: an API edit (`lease4-add` through the control channel) is in the
/// database when it is answered; a DECLINE puts the address on probation there; a reload that changes the pools rebuilds the lease tables, and
/// the node registers the new blocks, grants its own again and goes on binding; a reload that
/// changes `[cluster]` is refused (the old configuration stays).
#[test]
fn a_cluster_node_is_operated_like_any_other() {
    let pg = Postgres::start();
    let lan = Lan::new(&[Some(A_IP), None, None]);
    let dir = TempDir::new("dxcl");
    let cfg = config(&dir, "a", &pg.url());
    let socket = dir.path().join("control.sock");
    let socket = socket.to_str().expect("utf8");
    let a = Daemon::start(
        &lan.hosts[0].ns,
        &lan.hosts[0].ifname,
        &["--config", &cfg, "--workers", "1", "--control-socket", socket],
    );
    wait_for_buckets(&[&a], 256);
    // An API edit is committed to the database before it is answered.
    let out = Command::new(daemon_bin())
        .args(["ctl", "--socket", socket, "lease4-add"])
        .arg(r#"{"ip-address": "198.18.0.150", "hw-address": "02:bb:00:00:00:01"}"#)
        .output()
        .expect("dhcp-xdp ctl");
    assert!(out.status.success(), "{out:?}");
    let row = pg
        .client()
        .query_opt(
            "SELECT client_key, node FROM dhcp_xdp_leases WHERE address = $1",
            &[&i64::from(u32::from(Ipv4Addr::new(198, 18, 0, 150)))],
        )
        .expect("query");
    assert!(
        row.is_some_and(|r| r.get::<_, Vec<u8>>(0) == ClientKey::hw(1, &[2, 0xbb, 0, 0, 0, 1], 1).as_bytes()
            && r.get::<_, String>(1) == "a"),
        "lease4-add not in the database when answered"
    );
    let mut clients = Clients::new(&lan.hosts[2]);
    let mut held: HashMap<[u8; 6], Held> = HashMap::new();
    bind_new(&mut clients, &mut held, 5, 6, A_IP);
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(&cfg, text.replace("198.18.0.10-198.18.0.199", "198.18.0.10-198.18.0.229")).expect("write");
    let _ = nix::sys::signal::kill(a.pid(), Signal::SIGHUP);
    wait_reloads(&a, "reloads-applied", 1);
    let blocks =
        || -> i64 { pg.client().query_one("SELECT count(*) FROM dhcp_xdp_blocks", &[]).expect("blocks").get(0) };
    assert!(wait_until(Duration::from_secs(5), || blocks() == 14), "the widened pool's blocks: {}", blocks());
    bind_new(&mut clients, &mut held, 6, 6, A_IP);
    let everyone: Vec<[u8; 6]> = held.keys().copied().collect();
    rebind_each(&mut clients, &mut held, &everyone, |_| A_IP, "after the reload");
    check_no_address_twice(&pg, &held);
    // A DECLINE: the client's binding goes, the address is on probation in the database.
    let (c, h) = held.iter().map(|(c, h)| (*c, *h)).next().expect("a client");
    let mut decline = tests::frames::Request::discover(lan.hosts[2].mac, c, 0x0dec_0001);
    decline.options = vec![53, 1, 4, 50, 4];
    decline.options.extend_from_slice(&h.addr.octets());
    decline.options.extend_from_slice(&[54, 4]);
    decline.options.extend_from_slice(&A_IP.octets());
    let mut link = tests::frames::Link::open(&lan.hosts[2].ns, &lan.hosts[2].ifname);
    link.send(&decline.build());
    let state = || -> Option<i16> {
        pg.client()
            .query_opt("SELECT state FROM dhcp_xdp_leases WHERE address = $1", &[&i64::from(u32::from(h.addr))])
            .expect("query")
            .map(|r| r.get(0))
    };
    assert!(wait_until(Duration::from_secs(5), || state() == Some(4)), "declined row: {:?}", state());
    held.remove(&c);
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(&cfg, text.replace("block-size = 16", "block-size = 32")).expect("write");
    let _ = nix::sys::signal::kill(a.pid(), Signal::SIGHUP);
    wait_reloads(&a, "reloads-rejected", 1);
    let last = a.status()["last-reload"].as_str().unwrap_or_default().to_owned();
    assert!(last.contains("the [cluster] section cannot change"), "{last}");
    bind_new(&mut clients, &mut held, 7, 4, A_IP);
    check_no_address_twice(&pg, &held);
}

/// Nodes started together on an empty database (after a power cut) both start: creating the
/// schema is serialised, and one that finds it being made waits. Eight at once, each on its own
/// connection; before the advisory lock, some saw version 0 and gave up.
#[test]
fn nodes_that_start_together_on_an_empty_database_all_start() {
    let pg = Postgres::start();
    let url = pg.url();
    let go = std::sync::Arc::new(std::sync::Barrier::new(8));
    let results: Vec<String> = (0..8)
        .map(|_| {
            let (url, go) = (url.clone(), go.clone());
            std::thread::spawn(move || {
                let mut c = dhcp_xdp::store::cluster::pg::connect(&url).expect("connect");
                go.wait();
                dhcp_xdp::store::cluster::schema::ensure(&mut c).map_err(|e| e.to_string())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .filter_map(|t| t.join().expect("thread").err())
        .collect();
    assert!(results.is_empty(), "some nodes could not start: {results:?}");
    let v: i32 = pg.client().query_one("SELECT version FROM dhcp_xdp_schema", &[]).expect("version").get(0);
    assert_eq!(v, dhcp_xdp::store::cluster::schema::SCHEMA_VERSION);
}

/// Durable in the database too: the daemon's sessions commit synchronously whatever the
/// database's default, and a server running with fsync off is named by `db status` (and warned
/// about at start).
#[test]
fn the_database_is_asked_to_be_durable_and_warned_about_when_it_is_not() {
    let pg = Postgres::start();
    let mut admin = pg.client();
    admin.batch_execute("ALTER DATABASE dhcp SET synchronous_commit = off").expect("alter database");
    let mut c = dhcp_xdp::store::cluster::pg::connect(&pg.url()).expect("connect");
    let sc: String = c.query_one("SHOW synchronous_commit", &[]).expect("show").get(0);
    assert_eq!(sc, "on", "a syncer session commits synchronously");
    assert!(dhcp_xdp::store::cluster::durability_warnings(&mut c).expect("warnings").is_empty());
    let out = Command::new(daemon_bin()).args(["db", "init", "--database", &pg.url()]).output().expect("run");
    assert!(out.status.success(), "{out:?}");
    admin.batch_execute("ALTER SYSTEM SET fsync = off").expect("fsync off");
    admin.batch_execute("SELECT pg_reload_conf()").expect("reload");
    assert!(wait_until(Duration::from_secs(10), || {
        let mut c = dhcp_xdp::store::cluster::pg::connect(&pg.url()).expect("connect");
        dhcp_xdp::store::cluster::durability_warnings(&mut c)
            .expect("warnings")
            .iter()
            .any(|w| w.contains("fsync = off"))
    }));
    let out = Command::new(daemon_bin()).args(["db", "status", "--database", &pg.url()]).output().expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("warning: the database runs with fsync = off"), "{out:?}");
}

/// One lease per client per subnet in the database too: the same chaddr holds a row on each of
/// two subnets, and moving its lease within one subnet (the "moved key" delete) never deletes
/// its row on the other. Read back, both leases are in the tables.
#[test]
fn a_client_holds_a_row_per_subnet_and_moving_one_keeps_the_other() {
    use dhcp_xdp_core::leases::{Change, Lease, LeaseState, Tags};
    let pg = Postgres::start();
    let mut c = dhcp_xdp::store::cluster::pg::connect(&pg.url()).expect("connect");
    dhcp_xdp::store::cluster::schema::ensure(&mut c).expect("schema");
    let store = dhcp_xdp::store::cluster::PgStore::open(&pg.url(), "a", 1, 3).expect("store");
    let mac = [2, 0xd0, 0, 0, 0, 1];
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
    let lease = |addr: Ipv4Addr, subnet: u32| Lease {
        key: ClientKey::hw(1, &mac, subnet),
        chaddr: mac,
        addr,
        expires: now + 600,
        state: LeaseState::Bound,
        subnet,
        tags: Tags::default(),
    };
    let (a, b1, b2) = (Ipv4Addr::new(198, 18, 5, 10), Ipv4Addr::new(198, 18, 6, 10), Ipv4Addr::new(198, 18, 6, 11));
    let commit = |seq: u64, l: Lease| {
        let t = store.append(0, &[(seq, Change::Upsert(l))]).expect("append");
        assert!(wait_until(Duration::from_secs(10), || store.settled(0, t).is_some()));
        assert_eq!(store.settled(0, t), Some(true), "committed");
    };
    commit(1, lease(a, 1));
    commit(2, lease(b1, 2));
    commit(3, lease(b2, 2));
    let rows = held_rows(&pg);
    let mut held: Vec<Ipv4Addr> = rows.keys().copied().collect();
    held.sort();
    assert_eq!(held, vec![a, b2], "the subnet-1 row stays; the subnet-2 lease moved");
    assert_eq!(rows[&a].0, ClientKey::hw(1, &mac, 1).as_bytes());
    assert_eq!(rows[&b2].0, ClientKey::hw(1, &mac, 2).as_bytes());
}

/// A node name is held by one daemon: a second daemon started with a live node's name refuses
/// to start and names the one that holds it; a daemon paused past takeover-after whose name
/// another daemon took meanwhile stands down and stops when it resumes.
#[test]
fn a_node_name_is_held_by_one_daemon() {
    let pg = Postgres::start();
    let lan = lan();
    let (da, db) = (TempDir::new("dxcl"), TempDir::new("dxcl"));
    let a = start(&lan, 0, &config(&da, "a", &pg.url()));
    wait_for_buckets(&[&a], 256);
    // A second daemon named a refuses to start.
    let said = refused_start(&lan, 1, &config(&db, "a", &pg.url()));
    assert!(
        said.contains("node name 'a' is held by a running daemon") && said.contains(&format!("pid {}", a.pid())),
        "{said}"
    );
    assert_eq!(store(&a)["buckets"], 256, "the first keeps serving");
    // Paused past takeover-after: another daemon may take the name; the paused one, resumed,
    // stands down and stops instead of serving the same buckets.
    nix::sys::signal::kill(a.pid(), Signal::SIGSTOP).expect("SIGSTOP");
    let b = start(&lan, 1, &config(&db, "a", &pg.url()));
    wait_for_buckets(&[&b], 256);
    let owner: i32 =
        pg.client().query_one("SELECT pid FROM dhcp_xdp_nodes WHERE name = 'a'", &[]).expect("node row").get(0);
    assert_eq!(owner, b.pid().as_raw());
    nix::sys::signal::kill(a.pid(), Signal::SIGCONT).expect("SIGCONT");
    let mut a = a;
    let _stopped = a.wait(Duration::from_secs(20));
    assert_eq!(store(&b)["buckets"], 256);
}

/// No node's clock decides a lease: node b runs 15 minutes ahead (libfaketime), beyond the
/// 10-minute lease time. Its lease times are the database's (its offset is a metric); when a
/// dies, b takes in a's leases and does not expire them by its own clock: every client of a
/// rebinds to b with its own address, new clients get other addresses, no address twice.
#[test]
fn a_node_minutes_ahead_decides_no_lease() {
    let faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(std::path::Path::new(faketime).is_file(), "libfaketime not found: install the Debian package faketime");
    let pg = Postgres::start();
    let lan = lan();
    let (da, db) = (TempDir::new("dxcl"), TempDir::new("dxcl"));
    // 48 addresses (three blocks): after the takeover, new clients can only be given a's
    // clients' addresses if b wrongly expired them.
    let range = "198.18.0.10-198.18.0.57";
    let a = start(&lan, 0, &config_pool(&da, "a", &pg.url(), range));
    let mut cmd = lan.hosts[1].ns.exec(daemon_bin());
    cmd.args(["run", "--iface", &lan.hosts[1].ifname, "--stats-interval", "0"])
        .args(["--config", &config_pool(&db, "b", &pg.url(), range), "--workers", "1", "--metrics", "198.18.0.3:9187"])
        .env("LD_PRELOAD", faketime)
        .env("FAKETIME", "+15m")
        .env("DONT_FAKE_MONOTONIC", "1");
    let b = Daemon::spawn(cmd, None);
    wait_for_buckets(&[&a, &b], 128);
    let offset = metric(&lan.hosts[1].ns, "198.18.0.3:9187", "dhcp_xdp_cluster_clock_offset_seconds{node=\"b\"}");
    assert!(offset.is_some_and(|o| (-905.0..=-895.0).contains(&o)), "b's clock offset: {offset:?}");
    let mut clients = Clients::new(&lan.hosts[2]);
    let (mut held, on_a) = bind_split(&mut clients, 1, 24);
    // Every lease time in the database is the database's: none ends past its now + lease time.
    let late: i64 = pg
        .client()
        .query_one("SELECT count(*) FROM dhcp_xdp_leases WHERE expires > extract(epoch FROM now()) + 600 + 5", &[])
        .expect("rows")
        .get(0);
    assert_eq!(late, 0, "lease rows ending after the database's now + lease time");
    // b has taken in a's leases (its pull of other nodes' changes) and run expiry sweeps over
    // them by its own clock for a while before a dies.
    let absorbed = || {
        metric(&lan.hosts[1].ns, "198.18.0.3:9187", "dhcp_xdp_cluster_leases_absorbed_total{node=\"b\"}").unwrap_or(0.0)
    };
    assert!(wait_until(Duration::from_secs(30), || absorbed() >= on_a.len() as f64), "b never read a's leases");
    std::thread::sleep(Duration::from_secs(3));
    let _ = a.signal_and_wait(Signal::SIGKILL);
    wait_for_buckets(&[&b], 256);
    // Several expiry sweeps of b (one a second) over a's leases.
    std::thread::sleep(Duration::from_secs(3));
    // New clients take what is free (24 addresses, no more).
    let mut new = 0;
    for i in 0..32 {
        let c = chaddr(2, i);
        if let Some(h) = clients.bind(c) {
            assert_eq!(h.server, B_IP);
            assert!(held.values().all(|o| o.addr != h.addr), "new client {i} got {}, held by another", h.addr);
            held.insert(c, h);
            new += 1;
        }
    }
    assert!(new > 0 && new <= 24, "{new} new clients bound in 24 free addresses");
    rebind_each(&mut clients, &mut held, &on_a, |_| B_IP, "after the takeover by a node 15 min ahead");
    check_no_address_twice(&pg, &held);
}

/// `dhcp-xdp ctl` through `socket`: the answer as JSON (exit status aside: result 1 exits 1).
fn ctl(socket: &str, command: &str, args: &str) -> serde_json::Value {
    let out = Command::new(daemon_bin()).args(["ctl", "--socket", socket, command, args]).output().expect("ctl");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{command}: {e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

/// Removals through the management API mean what they say in a cluster: a lease another live
/// node serves is refused (naming it) rather than "deleted" and brought back by that node's
/// next commit; a node's own lease, and the lease of a node that is gone, are deleted in the
/// database. A node whose pools or block size differ from a live node's is refused at start.
#[test]
fn cluster_removals_act_cluster_wide_or_are_refused() {
    let pg = Postgres::start();
    let lan = lan();
    let (da, db) = (TempDir::new("dxcl"), TempDir::new("dxcl"));
    let socket = |d: &TempDir| d.path().join("control.sock").to_str().expect("utf8").to_owned();
    let (sa, sb) = (socket(&da), socket(&db));
    let a = Daemon::start(
        &lan.hosts[0].ns,
        &lan.hosts[0].ifname,
        &["--config", &config(&da, "a", &pg.url()), "--workers", "1", "--control-socket", &sa],
    );
    // Other pools: refused while a is live, naming the difference.
    let other = config_pool(&db, "b", &pg.url(), "198.18.0.10-198.18.0.99");
    let said = refused_start(&lan, 1, &other);
    assert!(said.contains("differ from live node a's"), "{said}");
    assert!(said.contains("198.18.0.10-198.18.0.99") && said.contains("198.18.0.10-198.18.0.199"), "{said}");
    let b = Daemon::start(
        &lan.hosts[1].ns,
        &lan.hosts[1].ifname,
        &["--config", &config(&db, "b", &pg.url()), "--workers", "1", "--control-socket", &sb],
    );
    wait_for_buckets(&[&a, &b], 128);
    let mut clients = Clients::new(&lan.hosts[2]);
    let (held, on_a) = bind_split(&mut clients, 7, 24);
    let on_a: Vec<Ipv4Addr> = on_a.iter().map(|c| held[c].addr).collect();
    assert!(on_a.len() >= 3, "{} of a's", on_a.len());
    let row = |addr: Ipv4Addr| held_rows(&pg).contains_key(&addr);
    // a's lease through b: refused, kept.
    let del = |s: &str, addr: Ipv4Addr| ctl(s, "lease4-del", &format!(r#"{{"ip-address": "{addr}"}}"#));
    let refused = del(&sb, on_a[0]);
    assert_eq!(refused["result"], 1, "{refused}");
    assert!(refused["text"].as_str().unwrap().contains("node a"), "{refused}");
    assert!(row(on_a[0]), "the refused lease is still in the database");
    let wipe = ctl(&sb, "lease4-wipe", r#"{"subnet-id": 1}"#);
    assert_eq!(wipe["result"], 1, "{wipe}");
    assert!(row(on_a[0]));
    // a's lease through a: deleted in the database.
    assert_eq!(del(&sa, on_a[0])["result"], 0);
    assert!(wait_until(Duration::from_secs(3), || !row(on_a[0])), "deleted through its node, still in the database");
    // a gone: its lease through b is deleted cluster-wide.
    let _ = a.signal_and_wait(Signal::SIGKILL);
    wait_for_buckets(&[&b], 256);
    let gone = del(&sb, on_a[1]);
    assert_eq!(gone["result"], 0, "{gone}");
    assert!(wait_until(Duration::from_secs(3), || !row(on_a[1])), "a gone node's lease still in the database");
    // Several pulls later it has not come back.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!row(on_a[1]));
    assert_eq!(ctl(&sb, "lease4-get", &format!(r#"{{"ip-address": "{}"}}"#, on_a[1]))["result"], 3);
}

/// A node paused (SIGSTOP) for twice takeover-after while its clients go on: the other takes
/// over; resumed (SIGCONT), the paused node rejoins before it answers anyone — the requests
/// queued in its sockets meanwhile get no answer from it, no DISCOVER gets two OFFERs, no
/// client is NAKed for the address it holds, no address is held twice.
#[test]
fn a_paused_node_rejoins_before_it_answers() {
    let pg = Postgres::start();
    let lan = lan();
    let (da, db) = (TempDir::new("dxcl"), TempDir::new("dxcl"));
    let a = start(&lan, 0, &config(&da, "a", &pg.url()));
    let b = start(&lan, 1, &config(&db, "b", &pg.url()));
    wait_for_buckets(&[&a, &b], 128);
    let mut clients = Clients::new(&lan.hosts[2]);
    let (mut held, on_a) = bind_split(&mut clients, 8, 24);
    nix::sys::signal::kill(a.pid(), Signal::SIGSTOP).expect("SIGSTOP");
    let paused = Instant::now();
    // While a is stopped its XDP program still queues its buckets' requests in its sockets.
    wait_store(&b, "b's takeover of a", Duration::from_secs(10), |s| s["takeovers"].as_u64() >= Some(1));
    rebind_each(&mut clients, &mut held, &on_a, |_| B_IP, "while a is paused");
    bind_new(&mut clients, &mut held, 9, 12, B_IP);
    while paused.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut watch = tests::frames::Link::open(&lan.hosts[2].ns, &lan.hosts[2].ifname);
    nix::sys::signal::kill(a.pid(), Signal::SIGCONT).expect("SIGCONT");
    // Whatever a sends right after it resumes answers a request it queued while stopped.
    let stale = watch.replies(64, Duration::from_millis(1500), |r| r.server_id() == Some(A_IP));
    assert!(stale.is_empty(), "a answered {} queued requests after its pause", stale.len());
    // Clients go on throughout a's rejoin: one OFFER per DISCOVER (Clients::bind checks), no
    // NAK for a held address.
    let t = Instant::now();
    let mut round = 0u8;
    while t.elapsed() < Duration::from_secs(4) {
        for (c, h) in held.clone() {
            let replies = clients.rebind(c, h.addr, 1);
            assert!(!replies.iter().any(|r| r.message_type() == Some(6)), "{c:02x?} NAKed for {}", h.addr);
            if let Some(ack) = replies.iter().find(|r| r.message_type() == Some(5)) {
                assert_eq!(ack.yiaddr(), h.addr, "{c:02x?}");
                held.insert(c, Held { addr: h.addr, server: ack.server_id().expect("server id") });
            }
        }
        let c = chaddr(10, round);
        round += 1;
        if let Some(h) = clients.bind(c) {
            held.insert(c, h);
        }
        check_no_address_twice(&pg, &held);
    }
    wait_for_buckets(&[&a, &b], 128);
    let everyone: Vec<[u8; 6]> = held.keys().copied().collect();
    rebind_each(&mut clients, &mut held, &everyone, expected_server, "after a rejoined");
    check_no_address_twice(&pg, &held);
}

/// DHCPv6 in the cluster: what one v6 client got (its address and delegated prefix) and which
/// server (DUID) gave it.
#[derive(Debug, Clone, PartialEq)]
struct Held6 {
    addr: std::net::Ipv6Addr,
    prefix: (std::net::Ipv6Addr, u8),
    server: Vec<u8>,
}

/// The v6 configuration of a node: one subnet, an address pool and a pool of /56s.
fn config6(dir: &TempDir, node: &str, url: &str) -> String {
    dir.config(&format!(
        "[cluster]\nnode = \"{node}\"\ndatabase = \"{url}\"\nheartbeat = 1\ntakeover-after = 3\n\
         [[subnet6]]\nsubnet = \"2001:db8:1::/64\"\nvalid-lifetime = 600\npreferred-lifetime = 400\n\
         [[subnet6.pool]]\nrange = \"2001:db8:1::1000-2001:db8:1::1fff\"\n\
         [[subnet6.pd-pool]]\nprefix = \"2001:db8:100::\"\nprefix-len = 40\ndelegated-len = 56\n"
    ))
}

/// DHCPv6 clients speaking through one raw socket of a host (each its own DUID).
struct Clients6 {
    link: tests::frames::Link,
    mac: [u8; 6],
    xid: u32,
}

impl Clients6 {
    fn duid(i: u16) -> Vec<u8> {
        let [hi, lo] = i.to_be_bytes();
        vec![0, 3, 0, 1, 2, 0xc6, 0, 0, hi, lo]
    }

    fn ia_na(addr: Option<std::net::Ipv6Addr>) -> (u16, Vec<u8>) {
        let mut v = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        if let Some(a) = addr {
            v.extend_from_slice(&[0, 5, 0, 24]);
            v.extend_from_slice(&a.octets());
            v.extend_from_slice(&[0; 8]);
        }
        (3, v)
    }

    fn ia_pd(prefix: Option<(std::net::Ipv6Addr, u8)>) -> (u16, Vec<u8>) {
        let mut v = vec![0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0];
        if let Some((p, len)) = prefix {
            v.extend_from_slice(&[0, 26, 0, 25, 0, 0, 0, 0, 0, 0, 0, 0, len]);
            v.extend_from_slice(&p.octets());
        }
        (25, v)
    }

    /// Sends `kind` with `options` (up to `tries` times) and returns every server message of its
    /// transaction within the wait.
    fn ask(&mut self, kind: u8, options: &[(u16, Vec<u8>)], tries: u32, want: u8) -> Vec<tests::frames::Reply6> {
        for _ in 0..tries {
            self.xid = (self.xid + 1) & 0xff_ffff;
            let xid = self.xid;
            let m = tests::frames::dhcp6_message(kind, xid, options);
            self.link.send(&tests::frames::Frame6::to_servers(self.mac, m).build());
            let got = self.link.replies6(4, Duration::from_millis(150), |r| r.xid() == xid);
            if got.iter().any(|r| r.kind() == want) {
                return got;
            }
        }
        vec![]
    }

    /// SOLICIT (IA_NA + IA_PD) → ADVERTISE → REQUEST → REPLY; panics if two servers advertise.
    fn bind(&mut self, i: u16) -> Option<Held6> {
        let id = (1u16, Self::duid(i));
        let ads = self.ask(1, &[id.clone(), Self::ia_na(None), Self::ia_pd(None)], 12, 2);
        let servers: std::collections::HashSet<Vec<u8>> =
            ads.iter().filter_map(|r| r.option(2).map(<[u8]>::to_vec)).collect();
        assert!(servers.len() <= 1, "client {i}: ADVERTISEs from {} servers", servers.len());
        let ad = ads.iter().find(|r| r.kind() == 2)?;
        let (addr, prefix, server) = (ad.ia_na_address()?, ad.ia_pd_prefix()?, ad.option(2)?.to_vec());
        let opts = [id, (2, server.clone()), Self::ia_na(Some(addr)), Self::ia_pd(Some(prefix))];
        let replies = self.ask(3, &opts, 6, 7);
        let reply = replies.iter().find(|r| r.kind() == 7)?;
        assert_eq!((reply.ia_na_address(), reply.ia_pd_prefix()), (Some(addr), Some(prefix)), "client {i}");
        Some(Held6 { addr, prefix, server })
    }

    /// REBIND (no server id) of what `h` holds; the REPLYs.
    fn rebind(&mut self, i: u16, h: &Held6, tries: u32) -> Vec<tests::frames::Reply6> {
        let opts = [(1u16, Self::duid(i)), Self::ia_na(Some(h.addr)), Self::ia_pd(Some(h.prefix))];
        self.ask(6, &opts, tries, 7)
    }
}

/// The v6 rows that hold something now: (address, length) → (DUID, node).
fn held_rows6(pg: &Postgres) -> HashMap<(std::net::Ipv6Addr, u8), (Vec<u8>, String)> {
    pg.client()
        .query("SELECT address, plen, duid, node FROM dhcp_xdp_leases6 WHERE expires > extract(epoch FROM now())", &[])
        .expect("v6 lease rows")
        .iter()
        .map(|r| {
            let a: [u8; 16] = r.get::<_, Vec<u8>>(0).try_into().expect("16 bytes");
            ((a.into(), r.get::<_, i16>(1) as u8), (r.get(2), r.get(3)))
        })
        .collect()
}

/// Every v6 client's address and prefix are rows of its own in the database, and none is held
/// by two clients.
fn check_v6_rows(pg: &Postgres, held: &HashMap<u16, Held6>) {
    let rows = held_rows6(pg);
    let mut seen: HashMap<(std::net::Ipv6Addr, u8), u16> = HashMap::new();
    for (i, h) in held {
        for what in [(h.addr, 128), h.prefix] {
            if let Some(other) = seen.insert(what, *i) {
                panic!("{what:?} held by v6 clients {other} and {i}");
            }
            let (duid, node) = rows.get(&what).unwrap_or_else(|| panic!("no row holds {what:?} of client {i}"));
            assert_eq!(*duid, Clients6::duid(*i), "row of {what:?} (node {node}) is another client's");
        }
    }
}

/// Two nodes serve DHCPv6 from one database: each v6 client is answered by the node its DUID's
/// RFC 3074 bucket belongs to, from that node's stripes of the pools (number mod 256 in its
/// buckets); every binding is a row of the client's; each node's DUID is kept in the database
/// across a restart; SIGKILLed, a node's clients rebind to the survivor and keep their address
/// and prefix; new clients bind on the survivor; the node rejoins and answers its clients again.
#[test]
fn two_nodes_serve_dhcpv6_and_survive_a_sigkill() {
    let pg = Postgres::start();
    // Nodes a and b, the test's clients, and a host for a real client.
    let lan = Lan::new(&[Some(A_IP), Some(B_IP), None, None]);
    let v6_of = ["2001:db8:1::2/64", "2001:db8:1::3/64"];
    tests::ipv6_ready(&[
        (&lan.hosts[0].ns, &lan.hosts[0].ifname, &v6_of[..1]),
        (&lan.hosts[1].ns, &lan.hosts[1].ifname, &v6_of[1..]),
        (&lan.hosts[2].ns, &lan.hosts[2].ifname, &[]),
        (&lan.hosts[3].ns, &lan.hosts[3].ifname, &[]),
    ]);
    let (da, db) = (TempDir::new("dxcl"), TempDir::new("dxcl"));
    let (cfg_a, cfg_b) = (config6(&da, "a", &pg.url()), config6(&db, "b", &pg.url()));
    let a = start(&lan, 0, &cfg_a);
    let b = start(&lan, 1, &cfg_b);
    wait_for_buckets(&[&a, &b], 128);
    let duid_of = |node: &str| -> Vec<u8> {
        pg.client()
            .query_one("SELECT duid FROM dhcp_xdp_nodes WHERE name = $1", &[&node])
            .expect("node row")
            .get::<_, Option<Vec<u8>>>(0)
            .unwrap_or_else(|| panic!("node {node} keeps no DUID in the database"))
    };
    let (duid_a, duid_b) = (duid_of("a"), duid_of("b"));
    assert_ne!(duid_a, duid_b);
    let expected = |i: u16| if lb_hash(&Clients6::duid(i)).is_multiple_of(2) { &duid_a } else { &duid_b };
    // A real client (ISC dhclient, an address and a prefix): both are rows of its DUID, written
    // by the node its DUID's bucket belongs to.
    let real = tests::clients::Dhclient::new6(&lan.hosts[3].ns, &lan.hosts[3].ifname, &["-N", "-P"]);
    assert!(real.obtain(&lan.hosts[3].ns), "dhclient -6 -N -P through the cluster");
    let (ip, prefix) = real.address_and_prefix(Some("BOUND6"), 0);
    let (p, len) = prefix.split_once('/').expect("a prefix with its length");
    let rows = held_rows6(&pg);
    let addr_row = rows.get(&(ip.parse().expect("address"), 128)).cloned().expect("a row for dhclient's address");
    let prefix_row = rows.get(&(p.parse().expect("prefix"), len.parse().expect("length"))).cloned();
    assert_eq!(prefix_row.as_ref(), Some(&addr_row), "dhclient's prefix row is its own, by the same node");
    let node = if lb_hash(&addr_row.0).is_multiple_of(2) { "a" } else { "b" };
    assert_eq!(addr_row.1, node, "dhclient answered by the node of another bucket");
    real.kill();
    let mut clients = Clients6 {
        link: tests::frames::Link::open(&lan.hosts[2].ns, &lan.hosts[2].ifname),
        mac: lan.hosts[2].mac,
        xid: 0,
    };
    let mut held: HashMap<u16, Held6> = HashMap::new();
    for i in 0..40 {
        let h = clients.bind(i).unwrap_or_else(|| panic!("v6 client {i} not bound"));
        assert_eq!(&h.server, expected(i), "v6 client {i} answered by the other node");
        held.insert(i, h);
    }
    // Each node drew only numbers of its own stripes (number mod 256 in its buckets: even for a).
    let pool = u128::from("2001:db8:1::1000".parse::<std::net::Ipv6Addr>().unwrap());
    let pd = u128::from("2001:db8:100::".parse::<std::net::Ipv6Addr>().unwrap());
    for (i, h) in &held {
        let n = (u128::from(h.addr) - pool) as u64;
        let p = ((u128::from(h.prefix.0) - pd) >> 72) as u64;
        let even = h.server == duid_a;
        assert_eq!(
            ((n % 256).is_multiple_of(2), (p % 256).is_multiple_of(2)),
            (even, even),
            "client {i}: numbers {n} and {p}"
        );
    }
    check_v6_rows(&pg, &held);
    let on_a: Vec<u16> = held.iter().filter(|(_, h)| h.server == duid_a).map(|(i, _)| *i).collect();
    assert!(!on_a.is_empty() && on_a.len() < held.len(), "both nodes answer: {} of {} on a", on_a.len(), held.len());

    // a dies: its clients rebind to b and keep what they hold.
    let killed = Instant::now();
    let _ = a.signal_and_wait(Signal::SIGKILL);
    let first = on_a[0];
    let mut reply = None;
    while killed.elapsed() < Duration::from_secs(20) && reply.is_none() {
        reply = clients.rebind(first, &held[&first], 1).into_iter().find(|r| r.kind() == 7);
    }
    let reply = reply.expect("no v6 rebind REPLY within 20 s of the SIGKILL");
    println!("v6 takeover: first rebind REPLY {:.2?} after SIGKILL", killed.elapsed());
    assert_eq!(reply.option(2), Some(&duid_b[..]));
    wait_store(&b, "b's takeover of a", Duration::from_secs(5), |s| s["takeovers"].as_u64() >= Some(1));
    for i in &on_a {
        let h = held[i].clone();
        let replies = clients.rebind(*i, &h, 8);
        let r = replies.iter().find(|r| r.kind() == 7).unwrap_or_else(|| panic!("v6 client {i}: no REPLY from b"));
        assert_eq!(r.option(2), Some(&duid_b[..]), "client {i}");
        assert_eq!(
            (r.ia_na_address(), r.ia_pd_prefix()),
            (Some(h.addr), Some(h.prefix)),
            "client {i} after the takeover"
        );
        held.insert(*i, Held6 { server: duid_b.clone(), ..h });
    }
    // New clients: all on b, on free numbers of any stripe.
    for i in 100..116 {
        let h = clients.bind(i).unwrap_or_else(|| panic!("new v6 client {i} not bound"));
        assert_eq!(h.server, duid_b, "new v6 client {i}");
        held.insert(i, h);
    }
    check_v6_rows(&pg, &held);

    // a rejoins with the same DUID, takes its buckets again and answers its clients' rebinds
    // with what they hold.
    let a = start(&lan, 0, &cfg_a);
    wait_for_buckets(&[&a, &b], 128);
    assert_eq!(duid_of("a"), duid_a, "the node's DUID is kept");
    for (i, h) in held.clone() {
        let replies = clients.rebind(i, &h, 8);
        let r = replies
            .iter()
            .find(|r| r.kind() == 7)
            .unwrap_or_else(|| panic!("v6 client {i}: no REPLY after the rejoin"));
        assert_eq!(r.option(2), Some(&expected(i)[..]), "client {i} after the rejoin");
        assert_eq!(
            (r.ia_na_address(), r.ia_pd_prefix()),
            (Some(h.addr), Some(h.prefix)),
            "client {i} after the rejoin"
        );
    }
    check_v6_rows(&pg, &held);
    // lease6-del through the other node is refused (a serves that client and would commit it
    // again); through a it goes, from the database too.
    let (i, h) =
        held.iter().find(|(i, _)| *expected(**i) == duid_a).map(|(i, h)| (*i, h.clone())).expect("a client of a");
    let del = serde_json::json!({ "ip-address": h.addr.to_string() });
    let refused = b.ask("lease6-del", del.clone());
    assert_eq!(refused["result"], 1, "{refused}");
    assert!(refused["text"].as_str().is_some_and(|t| t.contains("node a")), "{refused}");
    let done = a.ask("lease6-del", del);
    assert_eq!(done["result"], 0, "{done}");
    assert!(!held_rows6(&pg).contains_key(&(h.addr, 128)), "client {i}'s address still has a row");
    for d in [a, b] {
        let exit = d.signal_and_wait(Signal::SIGTERM);
        assert!(exit.status.success(), "{}", exit.stderr.join("\n"));
    }
}

/// Reservations added through the API in cluster mode are the database's: added through one
/// node, every node has them within a heartbeat and the node serving the client's bucket gives
/// it its reserved address; deleted through the other, gone from both.
#[test]
fn reservations_added_through_one_node_are_every_nodes() {
    let pg = Postgres::start();
    let lan = lan();
    let (da, db) = (TempDir::new("dxcl"), TempDir::new("dxcl"));
    let a = start(&lan, 0, &config(&da, "a", &pg.url()));
    let b = start(&lan, 1, &config(&db, "b", &pg.url()));
    wait_for_buckets(&[&a, &b], 128);
    // A client whose bucket is b's, reserved through a.
    let client = (0..=255u8).map(|i| chaddr(7, i)).find(|c| expected_server(c) == B_IP).expect("a client of b");
    let hw = client.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    let host = serde_json::json!({ "subnet-id": 1, "hw-address": hw, "ip-address": "198.18.0.250" });
    let add = a.ask("reservation-add", serde_json::json!({ "reservation": host }));
    assert_eq!(add["result"], 0, "{add}");
    let get = serde_json::json!({ "subnet-id": 1, "ip-address": "198.18.0.250" });
    assert!(
        wait_until(Duration::from_secs(10), || b.ask("reservation-get", get.clone())["result"] == 0),
        "node b never took in the reservation"
    );
    let mut clients = Clients::new(&lan.hosts[2]);
    let h = clients.bind(client).expect("the reserved client binds");
    assert_eq!((h.addr, h.server), (Ipv4Addr::new(198, 18, 0, 250), B_IP), "its reserved address, from b");
    let del = b.ask("reservation-del", serde_json::json!({ "subnet-id": 1, "ip-address": "198.18.0.250" }));
    assert_eq!(del["result"], 0, "{del}");
    assert!(
        wait_until(Duration::from_secs(10), || a.ask("reservation-get", get.clone())["result"] == 3),
        "node a kept the deleted reservation"
    );
}

/// The forensic log in the cluster database (`[forensic-log] database = true`): each bound
/// lease is a row of `dhcp_xdp_lease_log` (its JSON line, by address and time, naming the
/// node), and `dhcp-xdp who --database` answers from it by address and by MAC.
#[test]
fn the_forensic_log_can_live_in_the_cluster_database() {
    let pg = Postgres::start();
    let lan = Lan::new(&[Some(A_IP), None]);
    let dir = TempDir::new("dxcl");
    let cfg = config(&dir, "a", &pg.url());
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().append(true).open(&cfg).expect("config");
        writeln!(f, "[forensic-log]\ndatabase = true\nfsync-interval-ms = 100").expect("config");
    }
    let a = start(&lan, 0, &cfg);
    wait_for_buckets(&[&a], 256);
    let mut clients = Clients::new(&lan.hosts[1]);
    let mut held = HashMap::new();
    bind_new(&mut clients, &mut held, 3, 4, A_IP);
    let mut c = pg.client();
    let count = |c: &mut postgres::Client| -> i64 {
        c.query_one("SELECT count(*) FROM dhcp_xdp_lease_log WHERE event = 'bound'", &[]).expect("count").get(0)
    };
    assert!(wait_until(Duration::from_secs(5), || count(&mut c) >= 4), "{} bound lines", count(&mut c));
    let who = |args: &[&str]| -> String {
        let out = std::process::Command::new(daemon_bin())
            .args(["who", "--database", &pg.url()])
            .args(args)
            .output()
            .expect("dhcp-xdp who");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for (mac, h) in &held {
        let row = c
            .query_one("SELECT line::text FROM dhcp_xdp_lease_log WHERE address = $1", &[&h.addr.to_string()])
            .expect("a line for the address");
        let line: serde_json::Value = serde_json::from_str(row.get(0)).expect("JSON");
        let hw = dhcp_xdp_core::net::colon_hex(mac);
        assert_eq!((line["event"].as_str(), line["node"].as_str()), (Some("bound"), Some("a")), "{line}");
        assert_eq!(line["hw-address"], hw.as_str(), "{line}");
        let said = who(&["--address", &h.addr.to_string()]);
        assert!(said.contains(&format!("hw-address {hw}")) && said.contains("node a"), "{said}");
        let said = who(&["--mac", &hw]);
        assert!(said.contains(&h.addr.to_string()), "{said}");
    }
    let said = who(&["--address", "198.18.0.199"]);
    assert!(said.contains("held by nobody"), "{said}");
}
