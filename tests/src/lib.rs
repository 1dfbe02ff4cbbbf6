//! Test harness: network namespaces joined by veth pairs (198.18.0.0/15 only), the real daemon
//! binary started inside one of them, and raw-frame helpers for the other.
//!
//! Every fixture is RAII: namespaces, links and processes are removed on drop, also when the test
//! panics; a process interrupted by SIGINT, SIGTERM or SIGHUP removes its live namespaces (and
//! what runs in them) before it exits. Tests need root; a tool that is missing fails the test
//! with its Debian package name.
#![deny(unsafe_code)]

pub mod clients;
pub mod cluster;
pub mod frames;

use std::{
    io::{BufRead as _, BufReader},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

/// Panics unless running as root (namespaces, XDP and AF_XDP need it).
pub fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root (namespaces, XDP, AF_XDP)");
}

/// Path of a system tool, or a panic naming the Debian package that provides it.
pub fn tool(name: &str, package: &str) -> PathBuf {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found: install the Debian package {package}"))
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ip() -> Command {
    Command::new(tool("ip", "iproute2"))
}

/// A short name unique to this process and call (interface names have at most 15 bytes).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 100_000)
}

/// A network namespace, deleted on drop.
pub struct Netns {
    name: String,
}

/// Names of the namespaces this process created and has not deleted yet.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Deletes namespace `name`: kills what still runs in it, then removes it and its `/etc/netns`
/// directory.
fn delete_netns(name: &str) {
    if let Ok(out) = ip().args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
    remove_netns(name);
}

/// Removes namespace `name` and its `/etc/netns` directory.
fn remove_netns(name: &str) {
    let _ = ip().args(["netns", "del", name]).status();
    let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(name));
}

/// Once per process: a thread that, on SIGINT, SIGTERM or SIGHUP, deletes the live namespaces
/// and exits (RAII cannot run when a signal ends the process).
fn clean_up_on_signals() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else { return };
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let names = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|p| p.into_inner()));
                for n in &names {
                    delete_netns(n);
                }
                eprintln!("signal {sig}: removed {} network namespace(s)", names.len());
                std::process::exit(128 + sig);
            }
        });
    });
}

impl Netns {
    /// Creates a fresh namespace with loopback up, and its own `/etc/resolv.conf` (under
    /// `/etc/netns/<name>/`, which `ip netns exec` mounts over the host's): a client's hooks
    /// (dhcpcd's) write the DNS servers they were given there, never into the host's file.
    pub fn new(prefix: &str) -> Self {
        require_root();
        clean_up_on_signals();
        let name = unique(prefix);
        sh(ip().args(["netns", "add", &name]));
        LIVE.lock().unwrap_or_else(|p| p.into_inner()).push(name.clone());
        let ns = Self { name };
        std::fs::create_dir_all(ns.etc()).expect("create /etc/netns/<ns>");
        std::fs::write(ns.etc().join("resolv.conf"), "").expect("namespace resolv.conf");
        sh(ns.ip().args(["link", "set", "lo", "up"]));
        ns
    }

    /// `/etc/netns/<name>`: files here replace the host's `/etc/…` for `exec`.
    pub fn etc(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.name)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <ns> …`.
    pub fn ip(&self) -> Command {
        let mut c = ip();
        c.args(["-n", &self.name]);
        c
    }

    /// A command run inside the namespace (`ip netns exec`).
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = ip();
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Whether one ping from this namespace to `addr` is answered within 2 s.
    pub fn ping(&self, addr: Ipv4Addr) -> bool {
        self.exec(tool("ping", "iputils-ping"))
            .args(["-c", "1", "-W", "2", &addr.to_string()])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Runs `f` on a thread that has entered this namespace, returning its result. Sockets
    /// created there stay in the namespace wherever they are used afterwards.
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {path}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        LIVE.lock().unwrap_or_else(|p| p.into_inner()).retain(|n| *n != self.name);
        remove_netns(&self.name);
    }
}

/// Two hosts on one link: `server` and `client` namespaces joined by a veth pair, addressed
/// 198.18.<subnet>.1/24 (server) and .2/24 (client).
pub struct TwoHosts {
    /// The client side (dropped first).
    pub client: Netns,
    /// The server side.
    pub server: Netns,
    /// Server interface name.
    pub server_if: String,
    /// Client interface name.
    pub client_if: String,
    /// Server address.
    pub server_ip: Ipv4Addr,
    /// Client address.
    pub client_ip: Ipv4Addr,
}

impl TwoHosts {
    /// Builds the pair with `queues` RX/TX queues on each veth end.
    pub fn new(queues: u32) -> Self {
        Self::with_addresses(queues, (Ipv4Addr::new(198, 18, 0, 1), 24), (Ipv4Addr::new(198, 18, 0, 2), 24))
    }

    /// As [`TwoHosts::new`], with the given (address, prefix length) on each side.
    pub fn with_addresses(queues: u32, server_net: (Ipv4Addr, u8), client_net: (Ipv4Addr, u8)) -> Self {
        let server = Netns::new("dxs");
        let client = Netns::new("dxc");
        let server_if = unique("vs");
        let client_if = unique("vc");
        let q = queues.to_string();
        sh(ip()
            .args(["link", "add", &server_if, "numtxqueues", &q, "numrxqueues", &q, "type", "veth", "peer", "name"])
            .args([&client_if, "numtxqueues", &q, "numrxqueues", &q]));
        sh(ip().args(["link", "set", &server_if, "netns", server.name()]));
        sh(ip().args(["link", "set", &client_if, "netns", client.name()]));
        let (server_ip, client_ip) = (server_net.0, client_net.0);
        sh(server.ip().args(["addr", "add", &format!("{}/{}", server_net.0, server_net.1), "dev", &server_if]));
        sh(client.ip().args(["addr", "add", &format!("{}/{}", client_net.0, client_net.1), "dev", &client_if]));
        sh(server.ip().args(["link", "set", &server_if, "up"]));
        sh(client.ip().args(["link", "set", &client_if, "up"]));
        Self { client, server, server_if, client_if, server_ip, client_ip }
    }

    /// The pair for DHCP clients: the client interface starts without an address from the
    /// served subnet (DHCP gives it one) and keeps 198.18.255.2/24, with the server also on
    /// 198.18.255.1/24, so the kernel path can be checked with ping.
    pub fn for_dhcp(queues: u32) -> Self {
        let mut n = Self::new(queues);
        sh(n.client.ip().args(["addr", "flush", "dev", &n.client_if]));
        sh(n.client.ip().args(["addr", "add", "198.18.255.2/24", "dev", &n.client_if]));
        sh(n.server.ip().args(["addr", "add", "198.18.255.1/24", "dev", &n.server_if]));
        n.client_ip = Ipv4Addr::new(198, 18, 255, 2);
        n.server_ip = Ipv4Addr::new(198, 18, 255, 1);
        n
    }

    /// [`TwoHosts::for_dhcp`] with IPv6 for DHCPv6: the server also on `2001:db8:1::1/64`,
    /// both ends' link-local addresses usable at once (no duplicate address detection, which
    /// would hold them tentative for seconds). Nothing leaves the two namespaces.
    pub fn for_dhcp6(queues: u32) -> Self {
        let n = Self::for_dhcp(queues);
        ipv6_ready(&[(&n.server, &n.server_if, &["2001:db8:1::1/64"]), (&n.client, &n.client_if, &[])]);
        n
    }

    /// Hardware address of an interface inside a namespace.
    pub fn mac(ns: &Netns, ifname: &str) -> [u8; 6] {
        let out = sh(ns.exec("cat").arg(format!("/sys/class/net/{ifname}/address")));
        dhcp_xdp_core::net::parse_mac(String::from_utf8_lossy(&out.stdout).trim()).expect("mac")
    }

    /// Whether `ping` from the client reaches the server.
    pub fn ping_server(&self) -> bool {
        self.client.ping(self.server_ip)
    }
}

/// client ns ── veth ── relay ns ── veth ── server ns: the namespaces and the four interfaces,
/// not yet up or addressed (the relay tests give them their IPv4 or IPv6 addresses).
pub struct ThreeHosts {
    /// The client side (dropped first).
    pub client: Netns,
    /// The relay between.
    pub relay: Netns,
    /// The server side.
    pub server: Netns,
    /// The client's interface.
    pub client_if: String,
    /// The relay's interface toward the client.
    pub relay_down: String,
    /// The relay's interface toward the server.
    pub relay_up: String,
    /// The server's interface.
    pub server_if: String,
}

impl ThreeHosts {
    /// The namespaces and the two veth pairs.
    pub fn new() -> Self {
        let (client, relay, server) = (Netns::new("dxc"), Netns::new("dxr"), Netns::new("dxs"));
        let (client_if, relay_down, relay_up, server_if) = (unique("vc"), unique("rd"), unique("ru"), unique("vs"));
        sh(ip().args(["link", "add", &client_if, "type", "veth", "peer", "name", &relay_down]));
        sh(ip().args(["link", "add", &relay_up, "type", "veth", "peer", "name", &server_if]));
        sh(ip().args(["link", "set", &client_if, "netns", client.name()]));
        sh(ip().args(["link", "set", &relay_down, "netns", relay.name()]));
        sh(ip().args(["link", "set", &relay_up, "netns", relay.name()]));
        sh(ip().args(["link", "set", &server_if, "netns", server.name()]));
        Self { client, relay, server, client_if, relay_down, relay_up, server_if }
    }

    /// Every interface up.
    pub fn up(&self) {
        let links = [
            (&self.client, &self.client_if),
            (&self.relay, &self.relay_down),
            (&self.relay, &self.relay_up),
            (&self.server, &self.server_if),
        ];
        for (ns, i) in links {
            sh(ns.ip().args(["link", "set", i, "up"]));
        }
    }
}

impl Default for ThreeHosts {
    fn default() -> Self {
        Self::new()
    }
}

/// Makes IPv6 usable at once on the links given as (namespace, interface, addresses): no
/// duplicate address detection (which holds addresses tentative for seconds), link-local
/// addresses made again without it (every link down, then up: a veth end has its link-local
/// address once both ends are up), the addresses added; waits until nothing is tentative.
pub fn ipv6_ready(links: &[(&Netns, &str, &[&str])]) {
    for (ns, ifname, _) in links {
        sh(ns.exec("sysctl").args(["-qw", &format!("net.ipv6.conf.{ifname}.accept_dad=0")]));
        sh(ns.exec("sysctl").args(["-qw", &format!("net.ipv6.conf.{ifname}.disable_ipv6=0")]));
        sh(ns.ip().args(["link", "set", ifname, "down"]));
    }
    for (ns, ifname, addrs) in links {
        sh(ns.ip().args(["link", "set", ifname, "up"]));
        for a in *addrs {
            sh(ns.ip().args(["-6", "addr", "add", a, "dev", ifname, "nodad"]));
        }
    }
    for (ns, ifname, _) in links {
        let ready = (0..100).any(|_| {
            let out = sh(ns.ip().args(["-6", "addr", "show", "dev", ifname]));
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let ok = text.contains("fe80::") && !text.contains("tentative");
            if !ok {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            ok
        });
        assert!(ready, "no usable link-local address on {ifname}");
    }
}

/// Runs `attempt` up to `tries` times until one is clean (`Ok`); panics with every attempt's
/// account when none is. For load tests on a 2-core VM, where the generator, the veth pair and
/// the daemon share the cores and a run may lose a few replies to a stall outside the daemon.
pub fn one_clean_run(tries: u32, mut attempt: impl FnMut() -> Result<(), String>) {
    let mut failures = vec![];
    for n in 1..=tries {
        match attempt() {
            Ok(()) => return,
            Err(e) => {
                eprintln!("attempt {n} had drops: {e}");
                failures.push(e);
            }
        }
    }
    panic!("drops in every run:\n{}", failures.join("\n"));
}

/// Runs Kea's perfdhcp (`family`: `-4` or `-6`) in `ns`; its report: per exchange kind
/// (`DISCOVER-OFFER`, `SOLICIT-ADVERTISE` …), packets sent, received and dropped.
pub fn perfdhcp(ns: &Netns, family: &str, args: &[&str]) -> std::collections::HashMap<String, (u64, u64, u64)> {
    perfdhcp_report(ns, family, args).0
}

/// [`perfdhcp`], with the completed exchanges per second of its `Rate:` line.
pub fn perfdhcp_report(
    ns: &Netns,
    family: &str,
    args: &[&str],
) -> (std::collections::HashMap<String, (u64, u64, u64)>, f64) {
    let out = ns.exec(tool("perfdhcp", "kea-admin")).arg(family).args(args).output().expect("perfdhcp");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Rate:").and_then(|r| r.split_whitespace().next()).and_then(|r| r.parse().ok()))
        .unwrap_or(0.0);
    let mut stats = std::collections::HashMap::new();
    let mut section = String::new();
    let mut cur = (0, 0, 0);
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("***Statistics for: ") {
            if !section.is_empty() {
                stats.insert(section.clone(), cur);
            }
            section = s.trim_end_matches('*').to_owned();
            cur = (0, 0, 0);
        }
        let num = |p: &str| line.strip_prefix(p).and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(v) = num("sent packets:") {
            cur.0 = v;
        }
        if let Some(v) = num("received packets:") {
            cur.1 = v;
        }
        if let Some(v) = num("drops:") {
            cur.2 = v;
        }
    }
    if !section.is_empty() {
        stats.insert(section, cur);
    }
    assert!(!stats.is_empty(), "perfdhcp printed no statistics:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    (stats, rate)
}

/// The value of the metric line starting with `series` (name and labels) at `addr`/metrics,
/// fetched from inside `ns`.
pub fn metric(ns: &Netns, addr: &str, series: &str) -> Option<f64> {
    use std::io::{Read as _, Write as _};
    let addr = addr.to_owned();
    let body = ns.enter(move || {
        let mut s = std::net::TcpStream::connect(&addr).expect("metrics listener");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
        let mut body = String::new();
        s.read_to_string(&mut body).expect("response");
        body
    });
    body.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

/// Path of the daemon binary: `$DHCP_XDP_BIN` (set by `cargo xtask test`) or the workspace's
/// dist/release/debug build.
pub fn daemon_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DHCP_XDP_BIN") {
        return p.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
    for profile in ["dist", "release", "debug"] {
        let p = root.join("target").join(profile).join("dhcp-xdp");
        if p.is_file() {
            return p;
        }
    }
    panic!("dhcp-xdp binary not built: run the suite with `cargo xtask test`");
}

/// Raises the default socket receive buffer (`net.core.rmem_default`, which on this kernel
/// every network namespace shares) while it lives, and puts the old value back on drop. For a
/// load generator such as perfdhcp, which reads every reply through one socket: on two cores a
/// stall of a few milliseconds overflows the stock 208 KiB and loses replies the daemon sent
/// (its namespace counts them as `RcvbufErrors`). A load tester raises it; so do these tests.
pub struct RcvbufDefault(Option<String>);

impl RcvbufDefault {
    const PATH: &'static str = "/proc/sys/net/core/rmem_default";

    /// At least `bytes`, capped by `net.core.rmem_max`.
    pub fn at_least(bytes: u64) -> Self {
        let read = |p: &str| std::fs::read_to_string(p).ok().and_then(|v| v.trim().parse::<u64>().ok());
        let (Some(old), Some(max)) = (read(Self::PATH), read("/proc/sys/net/core/rmem_max")) else {
            return Self(None);
        };
        let want = bytes.min(max);
        if want <= old {
            return Self(None);
        }
        std::fs::write(Self::PATH, want.to_string()).unwrap_or_else(|e| panic!("raising {}: {e}", Self::PATH));
        Self(Some(old.to_string()))
    }
}

impl Drop for RcvbufDefault {
    fn drop(&mut self) {
        if let Some(old) = self.0.take() {
            let _ = std::fs::write(Self::PATH, old);
        }
    }
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates a fresh one.
    pub fn new(prefix: &str) -> Self {
        let p = std::env::temp_dir().join(unique(prefix));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `body` as `dhcp-xdp.toml` here; returns the path to pass as `--config`.
    pub fn config(&self, body: &str) -> String {
        let p = self.0.join("dhcp-xdp.toml");
        std::fs::write(&p, body).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The daemon running in a namespace. Killed on drop if still running.
pub struct Daemon {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Its lease journal directory (a fresh temporary one unless `--state-dir` was given).
    pub state: Option<TempDir>,
    /// Its control socket.
    socket: PathBuf,
    /// Where the control socket lives when the harness chose it.
    _control_dir: Option<TempDir>,
}

/// What the daemon counts, as its control channel's `counters-get` answers it.
#[derive(Debug, Clone)]
pub struct Counters(pub serde_json::Value);

impl Counters {
    fn get(&self, path: &[&str]) -> u64 {
        let mut v = &self.0;
        for p in path {
            v = &v[*p];
        }
        v.as_u64().unwrap_or_else(|| panic!("no counter {} in {}", path.join("."), self.0))
    }

    /// One of the XDP program's verdict counters (`redirected`, `passed_not_dhcp` …).
    pub fn xdp(&self, name: &str) -> u64 {
        self.get(&["xdp", name])
    }

    /// A worker counter (`rx`, `tx`, `drop_no_address` …) summed over the workers; a counter
    /// a worker lacks fails the test rather than reading as 0.
    pub fn worker_sum(&self, name: &str) -> u64 {
        let workers = self.0["workers"].as_array().unwrap_or_else(|| panic!("no workers in {}", self.0));
        assert!(!workers.is_empty(), "no workers in {}", self.0);
        workers.iter().map(|w| w[name].as_u64().unwrap_or_else(|| panic!("no counter {name} in {w}"))).sum()
    }

    /// An engine counter (`rx_discover`, `rx_request_renewing`, `tx_ack` …) over every shard.
    pub fn engine(&self, name: &str) -> u64 {
        self.get(&["messages", name])
    }

    /// Leases by state (`bound`, `offered`, `declined`, `remembered`).
    pub fn leases(&self, name: &str) -> u64 {
        self.get(&["leases", name])
    }

    /// A field of the lease store's status (`failing`, `failed-rounds`, a cluster's `nodes` …).
    pub fn store(&self, name: &str) -> serde_json::Value {
        self.0["store"][name].clone()
    }
}

/// How a daemon ended.
pub struct Exit {
    /// Exit status.
    pub status: std::process::ExitStatus,
    /// Its stdout, line by line.
    pub stdout: Vec<String>,
    /// Its stderr, line by line.
    pub stderr: Vec<String>,
    /// What it counted when it was asked to stop (None: it ended on its own, or its control
    /// socket is unknown).
    pub counters: Option<Counters>,
}

impl Exit {
    fn counted(&self) -> &Counters {
        self.counters.as_ref().unwrap_or_else(|| {
            panic!("the daemon's counters were not read before it stopped:\n{}", self.stdout.join("\n"))
        })
    }

    /// One of the XDP program's verdict counters, as the daemon said when asked to stop.
    pub fn xdp_counter(&self, name: &str) -> u64 {
        self.counted().xdp(name)
    }

    /// A worker counter summed over the workers, as the daemon said when asked to stop.
    pub fn worker_sum(&self, name: &str) -> u64 {
        self.counted().worker_sum(name)
    }

    /// An engine counter over every shard, as the daemon said when asked to stop.
    pub fn engine_sum(&self, name: &str) -> u64 {
        self.counted().engine(name)
    }

    /// Leases by state, as the daemon said when asked to stop.
    pub fn leases(&self, name: &str) -> u64 {
        self.counted().leases(name)
    }
}

impl Daemon {
    /// Starts `dhcp-xdp run --iface <iface> <args>` in `ns` and waits until it reports ready.
    pub fn start(ns: &Netns, iface: &str, args: &[&str]) -> Self {
        let state = (!args.contains(&"--state-dir")).then(|| TempDir::new("dxstate"));
        let mut cmd = ns.exec(daemon_bin());
        cmd.args(["run", "--iface", iface, "--stats-interval", "0"]).args(args);
        if let Some(s) = &state {
            cmd.arg("--state-dir").arg(s.path());
        }
        Self::spawn(cmd, state)
    }

    /// Asks the daemon's control channel `command` with `arguments`; the whole answer.
    pub fn ask(&self, command: &str, arguments: serde_json::Value) -> serde_json::Value {
        let socket = &self.socket;
        dhcp_xdp::control::request(socket, &serde_json::json!({ "command": command, "arguments": arguments }))
            .unwrap_or_else(|e| panic!("{command} on {}: {e}", socket.display()))
    }

    /// Its control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Everything the daemon counts, now (`counters-get`).
    pub fn counters(&self) -> Counters {
        let a = self.ask("counters-get", serde_json::json!({}));
        assert_eq!(a["result"], 0, "counters-get: {a}");
        Counters(a["arguments"].clone())
    }

    /// What the daemon says of itself (`status-get`'s `dhcp-xdp` part: attach modes, the store's
    /// status, what it recovered, the last reload).
    pub fn status(&self) -> serde_json::Value {
        let a = self.ask("status-get", serde_json::json!({}));
        assert_eq!(a["result"], 0, "status-get: {a}");
        a["arguments"]["dhcp-xdp"].clone()
    }

    /// Polls the daemon's counters until `done` holds (true) or `limit` passes (false).
    pub fn wait_counters(&self, limit: Duration, mut done: impl FnMut(&Counters) -> bool) -> bool {
        cluster::wait_until(limit, || done(&self.counters()))
    }

    /// Starts an arbitrary command line that ends up running the daemon (e.g. `cargo xtask
    /// run`) and waits until its control channel answers.
    pub fn spawn(mut cmd: Command, state: Option<TempDir>) -> Self {
        // The control socket: the one the command line gives, or one of the harness's own
        // (appended: `cargo xtask run … -- ARGS` passes it on too).
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let (socket, control_dir) = match args.iter().position(|a| a == "--control-socket") {
            Some(i) => (PathBuf::from(&args[i + 1]), None),
            None => {
                let dir = TempDir::new("dxctl");
                let socket = dir.path().join("control.sock");
                cmd.arg("--control-socket").arg(&socket);
                (socket, Some(dir))
            }
        };
        // The daemon's ACKs wait for `fdatasync`. Dirty pages left by what ran before (the
        // suite's own build, earlier tests' journals) are written back now, not in the middle
        // of a test, where their writeback would stall those syncs for a second or more.
        nix::unistd::sync();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        for (pipe, sink) in [
            (Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>, lines.clone()),
            (Box::new(child.stderr.take().expect("stderr")), stderr.clone()),
        ] {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.lock().expect("lines").push(line);
                }
            });
        }
        let mut d = Self { child: Some(child), lines, stderr, state, socket, _control_dir: control_dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Ready: the control channel answers (it starts once the datapath runs).
            let ready = dhcp_xdp::control::request(&d.socket, &serde_json::json!({ "command": "status-get" }))
                .is_ok_and(|a| a["result"] == 0);
            if ready {
                return d;
            }
            if let Some(status) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                std::thread::sleep(Duration::from_millis(100));
                panic!("daemon exited early ({status}):\n{}\n{}", d.stdout().join("\n"), d.stderr().join("\n"));
            }
            assert!(Instant::now() < deadline, "daemon not ready in 30 s:\n{}", d.stderr().join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stdout lines so far.
    pub fn stdout(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// Stderr lines so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().expect("lines").clone()
    }

    /// The daemon's pid (of `ip netns exec`, which execs the daemon in place).
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    /// Sends `sig` and waits (up to 15 s) for the daemon to end. A stop (SIGTERM, SIGINT) is
    /// preceded by reading the daemon's counters, kept in the [`Exit`].
    pub fn signal_and_wait(mut self, sig: nix::sys::signal::Signal) -> Exit {
        use nix::sys::signal::Signal;
        let alive = self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none());
        let counters = (alive && matches!(sig, Signal::SIGTERM | Signal::SIGINT)).then(|| self.counters());
        let _ = nix::sys::signal::kill(self.pid(), sig);
        let mut exit = self.wait(Duration::from_secs(15));
        exit.counters = counters;
        exit
    }

    /// Waits for the daemon to end on its own.
    pub fn wait(&mut self, limit: Duration) -> Exit {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("daemon did not exit within {limit:?}:\n{}", self.stdout().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Let the reader threads catch the last lines.
        std::thread::sleep(Duration::from_millis(100));
        Exit { status, stdout: self.stdout(), stderr: self.stderr(), counters: None }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether an XDP program is attached to `ifname` in `ns`, as `ip link` reports it.
pub fn xdp_attached(ns: &Netns, ifname: &str) -> bool {
    let out = sh(ns.ip().args(["link", "show", "dev", ifname]));
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("prog/xdp") || text.split_whitespace().any(|w| w == "xdp" || w == "xdpgeneric")
}

/// A tcpdump capture on an interface of a namespace. The kernel moves a received frame's outer
/// VLAN tag out of the packet data before packet sockets see it; libpcap puts it back, so the
/// captured bytes are the frames as they were on the wire.
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
}

impl Capture {
    /// Starts capturing on `ifname` inside `ns` and waits until tcpdump listens.
    pub fn start(ns: &Netns, ifname: &str) -> Self {
        let file = std::env::temp_dir().join(format!("{}.pcap", unique("cap")));
        let mut child = ns
            .exec(tool("tcpdump", "tcpdump"))
            .args(["-i", ifname, "--immediate-mode", "-U", "-n", "-s", "2048", "-w"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tcpdump");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        let _ = stderr.read_line(&mut line);
        assert!(line.contains("listening"), "tcpdump did not start: {line}");
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Self { child: Some(child), file }
    }

    /// The frames captured so far (tcpdump writes each as it comes: `-U`).
    pub fn so_far(&self) -> Vec<Vec<u8>> {
        parse_pcap(&std::fs::read(&self.file).unwrap_or_default())
    }

    /// Polls the capture until `done` says the frames waited for are there (true), or `limit`
    /// passes (false).
    pub fn wait_for(&self, limit: Duration, mut done: impl FnMut(&[Vec<u8>]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done(&self.so_far()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the capture and returns the captured frames.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        let child = self.child.take().expect("running");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT);
        let _ = child.wait_with_output();
        let data = std::fs::read(&self.file).unwrap_or_default();
        parse_pcap(&data)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The frames of a classic pcap file (either byte order, µs or ns timestamps).
pub fn parse_pcap(data: &[u8]) -> Vec<Vec<u8>> {
    let Some(magic) = data.get(0..4) else {
        return vec![];
    };
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return vec![],
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
        Some(if le { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    };
    let mut out = vec![];
    let mut at = 24;
    while let Some(incl) = u32_at(at + 8) {
        let start = at + 16;
        let Some(frame) = data.get(start..start + incl as usize) else {
            break;
        };
        out.push(frame.to_vec());
        at = start + incl as usize;
    }
    out
}

/// A client behind a VLAN access port: `client` — veth — `switch` — veth — `server`. The
/// switch (tc programs from `dhcp_xdp::ebpf::VLAN_LAB_OBJECT`) tags the client's IPv4 frames
/// with `tags` towards the server and forwards to the client only frames from the server that
/// carry exactly those tags, stripped. This stands in for 802.1Q sub-interfaces on kernels
/// without 802.1Q support; the server sees the same tagged frames either way.
pub struct VlanHosts {
    /// The untagged client (dropped first).
    pub client: Netns,
    /// The switch, holding the tc programs.
    pub switch: Netns,
    /// The server side of the trunk.
    pub server: Netns,
    /// Server interface (the trunk).
    pub server_if: String,
    /// Client interface (untagged).
    pub client_if: String,
    /// The switch's trunk port (a capture there sees the tagged frames both ways; one on the
    /// server's interface would not, as AF_XDP bypasses the kernel's packet taps).
    pub trunk_if: String,
    _ebpf: aya::Ebpf,
}

impl VlanHosts {
    /// Builds the three namespaces; `tags` outer first as (TPID, VLAN ID), one or two. The
    /// server's interface has 198.18.254.1/24 and the switch 198.18.254.2/24 on the untagged
    /// trunk, so the server's kernel path can be checked with [`VlanHosts::ping_server`].
    pub fn new(tags: &[(u16, u16)]) -> Self {
        assert!(matches!(tags.len(), 1 | 2), "one or two tags");
        let server = Netns::new("dvs");
        let switch = Netns::new("dvw");
        let client = Netns::new("dvc");
        let (server_if, trunk) = (unique("vs"), unique("vt"));
        let (access, client_if) = (unique("va"), unique("vc"));
        for (a, an, b, bn) in [(&server_if, &server, &trunk, &switch), (&access, &switch, &client_if, &client)] {
            sh(ip().args(["link", "add", a.as_str(), "type", "veth", "peer", "name", b.as_str()]));
            sh(ip().args(["link", "set", a.as_str(), "netns", an.name()]));
            sh(ip().args(["link", "set", b.as_str(), "netns", bn.name()]));
        }
        for (ns, ifname) in [(&server, &server_if), (&switch, &trunk), (&switch, &access), (&client, &client_if)] {
            sh(ns.ip().args(["link", "set", ifname.as_str(), "up"]));
        }
        sh(server.ip().args(["addr", "add", "198.18.254.1/24", "dev", &server_if]));
        sh(switch.ip().args(["addr", "add", "198.18.254.2/24", "dev", &trunk]));
        let tag = |(tpid, vid): (u16, u16)| u32::from(tpid) << 16 | u32::from(vid);
        let (outer, inner, count) = (tag(tags[0]), tags.get(1).copied().map(tag).unwrap_or(0), tags.len() as u32);
        let (trunk2, access2) = (trunk.clone(), access);
        let ebpf = switch.enter(move || {
            let index = |n: &str| nix::net::if_::if_nametoindex(n).unwrap_or_else(|e| panic!("ifindex {n}: {e}"));
            let (ai, ti) = (index(&access2), index(&trunk2));
            let mut loader = aya::EbpfLoader::new();
            loader.override_global("ACCESS_IFINDEX", &ai, true);
            loader.override_global("TRUNK_IFINDEX", &ti, true);
            loader.override_global("TAGS", &count, true);
            loader.override_global("OUTER", &outer, true);
            loader.override_global("INNER", &inner, true);
            let mut ebpf = loader.load(dhcp_xdp::ebpf::VLAN_LAB_OBJECT).expect("loading the VLAN switch");
            for (prog, ifname) in [("access_in", &access2), ("trunk_in", &trunk2)] {
                let p: &mut aya::programs::SchedClassifier =
                    ebpf.program_mut(prog).expect("program").try_into().expect("classifier");
                p.load().unwrap_or_else(|e| panic!("verifying {prog}: {e}"));
                // Older kernels need the clsact qdisc; with tcx it is not used (and may exist).
                let _ = aya::programs::tc::qdisc_add_clsact(ifname);
                p.attach(ifname, aya::programs::TcAttachType::Ingress)
                    .unwrap_or_else(|e| panic!("attaching {prog}: {e}"));
            }
            ebpf
        });
        Self { client, switch, server, server_if, client_if, trunk_if: trunk, _ebpf: ebpf }
    }

    /// Whether the switch reaches the server's kernel over the untagged trunk.
    pub fn ping_server(&self) -> bool {
        self.switch.ping(Ipv4Addr::new(198, 18, 254, 1))
    }
}

/// A lease as `dhcp-xdp leases` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredLease {
    /// Address.
    pub addr: Ipv4Addr,
    /// State (`Bound`, `Released`, …).
    pub state: String,
    /// Unix time it expires.
    pub expires: u64,
}

/// The leases `dhcp-xdp leases --state-dir DIR` recovers (read-only), by chaddr, and the
/// warnings it printed.
pub fn recovered_leases(state: &Path) -> (std::collections::HashMap<[u8; 6], RecoveredLease>, Vec<String>) {
    let out = Command::new(daemon_bin()).args(["leases", "--state-dir"]).arg(state).output().expect("leases");
    assert!(out.status.success(), "dhcp-xdp leases: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut m = std::collections::HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("lease ")) {
        let kv: std::collections::HashMap<&str, &str> =
            line.split_whitespace().filter_map(|w| w.split_once('=')).collect();
        let mac = dhcp_xdp_core::net::parse_mac(kv["chaddr"]).expect("mac");
        m.insert(
            mac,
            RecoveredLease {
                addr: kv["addr"].parse().expect("addr"),
                state: kv["state"].to_owned(),
                expires: kv["expires"].parse().expect("expires"),
            },
        );
    }
    let warnings = text.lines().filter_map(|l| l.strip_prefix("warning: ").map(str::to_owned)).collect();
    (m, warnings)
}

/// Checks recovered leases against what clients were told: every ACKed lease (chaddr →
/// address, unix time of the ACK) is there, bound, with its address and at least the promised
/// `lease_time`; no address is bound to two clients.
pub fn check_recovered(
    what: &str,
    acked: &std::collections::HashMap<[u8; 6], (Ipv4Addr, u64)>,
    rec: &std::collections::HashMap<[u8; 6], RecoveredLease>,
    lease_time: u64,
) {
    for (chaddr, (addr, t)) in acked {
        let l = rec.get(chaddr).unwrap_or_else(|| panic!("{what}: ACKed lease of {chaddr:02x?} lost"));
        assert_eq!(l.addr, *addr, "{what}: address of {chaddr:02x?}");
        assert_eq!(l.state, "Bound", "{what}: state of {chaddr:02x?}");
        assert!(
            l.expires + 1 >= t + lease_time,
            "{what}: expiry {} earlier than promised {}",
            l.expires,
            t + lease_time
        );
    }
    let mut owners: std::collections::HashMap<Ipv4Addr, [u8; 6]> = std::collections::HashMap::new();
    for (chaddr, l) in rec {
        if l.state == "Bound" {
            assert!(owners.insert(l.addr, *chaddr).is_none(), "{what}: {} bound to two clients", l.addr);
        }
    }
}

/// A small tmpfs mounted on a fresh directory (unmounted on drop): a disk that fills up.
pub struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    /// A tmpfs of `kib` KiB.
    pub fn new(kib: u32) -> Self {
        require_root();
        let dir = TempDir::new("tmpfs");
        sh(Command::new(tool("mount", "mount"))
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k,mode=0755"), "dxtmpfs"])
            .arg(dir.path()));
        Self { dir }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what is left with a file (`filler`) until the file system says it is full.
    pub fn fill(&self) {
        use std::io::Write as _;
        let mut f = std::fs::File::create(self.path().join("filler")).expect("filler");
        let block = [0xa5u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }

    /// Frees what [`fill`](Self::fill) took.
    pub fn empty(&self) {
        std::fs::remove_file(self.path().join("filler")).expect("removing the filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes `msg` on `s` framed as bulk leasequery frames it (RFC 6926 §6.3, RFC 5460 §5.3):
/// its length in two bytes, then it.
pub fn write_framed(s: &mut std::net::TcpStream, msg: &[u8]) {
    use std::io::Write as _;
    s.write_all(&(msg.len() as u16).to_be_bytes()).expect("a framed message's length");
    s.write_all(msg).expect("a framed message");
}

/// Reads one message framed as [`write_framed`] writes it.
pub fn read_framed(s: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read as _;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("a framed message's length");
    let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut m).expect("a framed message");
    m
}
