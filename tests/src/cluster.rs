//! Cluster fixtures: a throwaway PostgreSQL (initdb + pg_ctl in a temporary directory, unix
//! socket only, run as the `postgres` user), a LAN of namespaces joined by a bridge, and a
//! unix-socket relay between one daemon and the database that a test can cut (a partition).

use std::{
    collections::HashSet,
    net::Ipv4Addr,
    os::unix::{
        fs::PermissionsExt as _,
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::{
    Netns, TempDir, TwoHosts,
    frames::{Link, Reply, Request},
    sh, unique,
};

/// The PostgreSQL server binaries directory (`/usr/lib/postgresql/<version>/bin`), or a panic
/// naming the Debian package.
fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(Result::ok).map(|e| e.path().join("bin").join(name)).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| panic!("PostgreSQL's `{name}` not found: install the Debian package postgresql"))
}

/// A PostgreSQL server of its own in a temporary directory, listening only on a unix socket
/// there; stopped and removed on drop.
pub struct Postgres {
    dir: TempDir,
    /// The socket directory (libpq's `host=`).
    pub socket_dir: PathBuf,
}

fn as_postgres(program: PathBuf) -> Command {
    let mut c = Command::new(crate::tool("runuser", "util-linux"));
    c.args(["-u", "postgres", "--"]).arg(program);
    c
}

impl Postgres {
    /// initdb, start, and a database `dhcp`.
    pub fn start() -> Self {
        crate::require_root();
        let dir = TempDir::new("dxpg");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        sh(Command::new("chown").args(["postgres:postgres"]).arg(dir.path()));
        let data = dir.path().join("data");
        sh(as_postgres(pg_bin("initdb"))
            .args(["--auth=trust", "--username=postgres", "--encoding=UTF8", "--no-instructions", "-D"])
            .arg(&data));
        let socket_dir = dir.path().to_path_buf();
        sh(as_postgres(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("postgres.log"))
            .arg("-o")
            .arg(format!("-k {} -c listen_addresses='' -c max_connections=200", socket_dir.display()))
            .args(["-w", "-t", "60", "start"]));
        let pg = Self { dir, socket_dir };
        sh(as_postgres(pg_bin("createdb")).arg("-h").arg(&pg.socket_dir).arg("dhcp"));
        pg
    }

    /// The libpq URL of database `dhcp` through socket directory `dir` (this server's, or a
    /// [`Relay`]'s).
    pub fn url_via(&self, dir: &Path) -> String {
        format!("postgresql:///dhcp?host={}&user=postgres", dir.display())
    }

    /// The libpq URL of database `dhcp`.
    pub fn url(&self) -> String {
        self.url_via(&self.socket_dir)
    }

    /// A client connection (for the tests' own checks).
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).expect("connect to the test database")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn pg_ctl(&self, action: &str) {
        let _ = as_postgres(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", action])
            .output();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.pg_ctl("stop");
    }
}

/// A LAN: a bridge in a namespace of its own, and hosts attached to it by veth pairs.
pub struct Lan {
    /// The hosts, in the order added.
    pub hosts: Vec<Host>,
    bridge: Netns,
}

/// One host of a [`Lan`].
pub struct Host {
    /// Its namespace.
    pub ns: Netns,
    /// Its interface on the LAN.
    pub ifname: String,
    /// Its hardware address.
    pub mac: [u8; 6],
    /// Its address (None for a client host).
    pub ip: Option<Ipv4Addr>,
}

impl Lan {
    /// A bridge and one host per entry of `addrs` (an address /24, or None for a host that
    /// only sends raw frames).
    pub fn new(addrs: &[Option<Ipv4Addr>]) -> Self {
        let bridge = Netns::new("dxbr");
        sh(bridge.ip().args(["link", "add", "br0", "type", "bridge"]));
        sh(bridge.ip().args(["link", "set", "br0", "up"]));
        let mut hosts = vec![];
        for a in addrs {
            let ns = Netns::new("dxh");
            let ifname = unique("vh");
            let port = unique("vp");
            sh(Command::new("ip").args(["link", "add", &ifname, "type", "veth", "peer", "name", &port]));
            sh(Command::new("ip").args(["link", "set", &ifname, "netns", ns.name()]));
            sh(Command::new("ip").args(["link", "set", &port, "netns", bridge.name()]));
            sh(bridge.ip().args(["link", "set", &port, "master", "br0", "up"]));
            if let Some(a) = a {
                sh(ns.ip().args(["addr", "add", &format!("{a}/24"), "dev", &ifname]));
            }
            sh(ns.ip().args(["link", "set", &ifname, "up"]));
            let mac = TwoHosts::mac(&ns, &ifname);
            hosts.push(Host { ns, ifname, mac, ip: *a });
        }
        Self { hosts, bridge }
    }

    /// The bridge's namespace.
    pub fn bridge(&self) -> &Netns {
        &self.bridge
    }
}

/// A relay between a socket directory of its own and the database's socket: one daemon's way to
/// the database, which the test can cut (every connection dropped, no new one accepted) and
/// mend.
pub struct Relay {
    /// The socket directory to give the daemon (`url_via`).
    pub dir: TempDir,
    cut: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<UnixStream>>>,
}

impl Relay {
    /// Relays `.s.PGSQL.5432` in a new directory to the one in `target_dir`.
    pub fn new(target_dir: &Path) -> Self {
        let dir = TempDir::new("dxrelay");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let listener = UnixListener::bind(dir.path().join(".s.PGSQL.5432")).expect("relay socket");
        let target = target_dir.join(".s.PGSQL.5432");
        let cut = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let (c, s) = (cut.clone(), streams.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                if c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = UnixStream::connect(&target) else { continue };
                let pairs = [(client.try_clone(), server.try_clone()), (server.try_clone(), client.try_clone())];
                {
                    let mut all = s.lock().expect("streams");
                    all.extend([client.try_clone(), server.try_clone()].into_iter().flatten());
                }
                for (from, to) in pairs {
                    if let (Ok(mut from), Ok(mut to)) = (from, to) {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        });
                    }
                }
            }
        });
        Self { dir, cut, streams }
    }

    /// Cuts the way: every open connection is dropped and new ones are refused.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.streams.lock().expect("streams").drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Mends it.
    pub fn mend(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// What a client holds: its address and the server that ACKed it last.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    /// The address.
    pub addr: Ipv4Addr,
    /// The server (identifier) that ACKed it.
    pub server: Ipv4Addr,
}

/// Many DHCP clients speaking through one raw socket of a host.
pub struct Clients {
    link: Link,
    mac: [u8; 6],
    /// The last transaction id used.
    pub xid: u32,
}

impl Clients {
    /// Clients on `host` (raw frames from its interface).
    pub fn new(host: &Host) -> Self {
        Self { link: Link::open(&host.ns, &host.ifname), mac: host.mac, xid: 0x1000 }
    }

    fn next_xid(&mut self) -> u32 {
        self.xid += 1;
        self.xid
    }

    /// Sends `r` (up to `tries` times) and returns every reply to it within the wait.
    fn ask(&mut self, r: &mut Request, tries: u32, wait: Duration, want: u8) -> Vec<Reply> {
        for _ in 0..tries {
            r.xid = self.next_xid();
            let xid = r.xid;
            self.link.send(&r.build());
            // Collect for the whole wait: a second server's answer must be seen if there is one.
            let got = self.link.replies(4, wait, |x| x.xid() == xid);
            if got.iter().any(|x| x.message_type() == Some(want)) {
                return got;
            }
        }
        vec![]
    }

    /// DORA (the REQUEST names the offering server); panics if two servers answer the DISCOVER. None if no ACK came.
    pub fn bind(&mut self, chaddr: [u8; 6]) -> Option<Held> {
        let mut d = Request::discover(self.mac, chaddr, 0);
        let offers = self.ask(&mut d, 12, Duration::from_millis(120), 2);
        let servers: HashSet<Ipv4Addr> = offers.iter().filter_map(Reply::server_id).collect();
        assert!(servers.len() <= 1, "client {chaddr:02x?}: OFFERs from {servers:?}");
        let offer = offers.iter().find(|o| o.message_type() == Some(2))?;
        let (addr, server) = (offer.yiaddr(), offer.server_id()?);
        let mut r = Request::discover(self.mac, chaddr, 0);
        r.options = vec![53, 1, 3, 50, 4];
        r.options.extend_from_slice(&addr.octets());
        r.options.extend_from_slice(&[54, 4]);
        r.options.extend_from_slice(&server.octets());
        let acks = self.ask(&mut r, 6, Duration::from_millis(120), 5);
        let ack = acks.iter().find(|a| a.message_type() == Some(5))?;
        assert_eq!((ack.yiaddr(), ack.server_id()), (addr, Some(server)));
        Some(Held { addr, server })
    }

    /// REBINDING: broadcast REQUEST with ciaddr; returns the replies.
    pub fn rebind(&mut self, chaddr: [u8; 6], addr: Ipv4Addr, tries: u32) -> Vec<Reply> {
        let mut r = Request::discover(self.mac, chaddr, 0);
        r.options = vec![53, 1, 3];
        r.ciaddr = addr;
        r.src_ip = addr;
        self.ask(&mut r, tries, Duration::from_millis(120), 5)
    }

    /// RENEWING: unicast REQUEST with ciaddr to `server` (MAC `server_mac`).
    pub fn renew(&mut self, chaddr: [u8; 6], addr: Ipv4Addr, server: Ipv4Addr, server_mac: [u8; 6]) -> Vec<Reply> {
        let mut r = Request::discover(self.mac, chaddr, 0);
        r.options = vec![53, 1, 3];
        r.ciaddr = addr;
        r.src_ip = addr;
        r.dst_ip = server;
        r.dst_mac = server_mac;
        self.ask(&mut r, 3, Duration::from_millis(120), 5)
    }
}

/// Whether the daemon says it serves `n` of the 256 buckets (its control channel's
/// `counters-get`).
pub fn serves_buckets(d: &crate::Daemon, n: u32) -> bool {
    d.counters().0["store"]["buckets"] == n
}

/// Waits up to `limit` for `f` to hold, polling every 100 ms.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
