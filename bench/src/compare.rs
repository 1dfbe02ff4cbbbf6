//! `bench compare`: one rig, every server one after the other under the same generator runs.
//!
//! The rig is two network namespaces joined by a veth pair (one queue), server 198.18.0.1/15,
//! generator 198.19.255.254/15, pool 198.18.1.0–198.19.254.255 for every server. Per server: a
//! closed-loop run gives the maximum rate; an RFC 2544-style bisection of open-loop trials
//! finds the capacity (the highest offered rate at which 99.9 % of exchanges complete within
//! 1 s); open-loop runs at fractions of the capacity, to 3× it, give the curve of achieved rate
//! and latency against offered load, and the echo path runs at the same rates to tell a
//! collapse of the rig from one of the server. perfdhcp runs against Kea and dhcp-xdp as the
//! generator's honesty check; the avalanche has every client boot at once.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tests::{Daemon, TempDir, TwoHosts, cluster::Postgres};

use crate::generator::Scenario;

/// Pool every server hands out (130 560 addresses: room for an avalanche of 100 000).
const POOL: (&str, &str) = ("198.18.1.0", "198.19.254.255");
const SERVER_IP: &str = "198.18.0.1";
/// The generator's address: the leasequery requester (a relay) of `dhcp-xdp-lq` too.
const REQUESTER: &str = "198.19.255.254";

/// The rig: server 198.18.0.1/15 and generator 198.19.255.254/15 on one veth pair, one queue.
type Rig = TwoHosts;

fn rig() -> Rig {
    let net = |a: [u8; 4]| (std::net::Ipv4Addr::from(a), 15);
    TwoHosts::with_addresses(1, net([198, 18, 0, 1]), net([198, 19, 255, 254]))
}
const LEASE_TIME: u32 = 3600;
/// dhcp-xdp workers keep polling this long (µs) after their last frame: the bench measures
/// latency, and waking a sleeping worker costs up to a millisecond on a VM.
const SPIN_US: &str = "1000";
/// Clients of the perfdhcp honesty check (perfdhcp's, and as many of the generator's).
const PERFDHCP_CLIENTS: u32 = 10_000;

/// The servers, in run order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Server {
    /// `dhcp-xdp --handler reflect`: the same datapath answering without DHCP work (the ceiling).
    Echo,
    /// dhcp-xdp with its engine, lease store and journal.
    DhcpXdp,
    /// dhcp-xdp with its journal synced in the background (`durability = "async"`): what the
    /// fsync journal is measured against.
    DhcpXdpAsync,
    /// dhcp-xdp in cluster mode, one node: PostgreSQL is the lease store of record.
    DhcpXdpPg,
    /// dhcp-xdp (fsync journal) writing the forensic lease log: what the log costs DORA.
    DhcpXdpForensic,
    /// dhcp-xdp (fsync journal) answering a relay's DHCPLEASEQUERYs (`--leasequery-rate`)
    /// beside DORA: what leasequery costs DORA.
    DhcpXdpLq,
    /// kea-dhcp4, memfile, multi-threaded.
    KeaMt,
    /// kea-dhcp4, memfile, one thread.
    Kea,
    /// kea-dhcp4, PostgreSQL lease backend, multi-threaded.
    KeaPg,
    /// ISC dhcpd.
    Dhcpd,
    /// dnsmasq.
    Dnsmasq,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Self::Echo => "echo (AF_XDP ceiling)",
            Self::DhcpXdp => "dhcp-xdp",
            Self::DhcpXdpAsync => "dhcp-xdp, journal async",
            Self::DhcpXdpPg => "dhcp-xdp on PostgreSQL (cluster, 1 node)",
            Self::DhcpXdpForensic => "dhcp-xdp with the forensic log",
            Self::DhcpXdpLq => "dhcp-xdp with leasequeries beside DORA",
            Self::KeaMt => "kea-dhcp4 (multi-threaded)",
            Self::Kea => "kea-dhcp4 (1 thread)",
            Self::KeaPg => "kea-dhcp4 on PostgreSQL (multi-threaded)",
            Self::Dhcpd => "ISC dhcpd",
            Self::Dnsmasq => "dnsmasq",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::DhcpXdp => "dhcp-xdp",
            Self::DhcpXdpAsync => "dhcp-xdp-async",
            Self::DhcpXdpPg => "dhcp-xdp-pg",
            Self::DhcpXdpForensic => "dhcp-xdp-forensic",
            Self::DhcpXdpLq => "dhcp-xdp-lq",
            Self::KeaMt => "kea-mt",
            Self::Kea => "kea",
            Self::KeaPg => "kea-pg",
            Self::Dhcpd => "dhcpd",
            Self::Dnsmasq => "dnsmasq",
        }
    }

    /// Binary and the Debian package that has it.
    fn binary(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Echo
            | Self::DhcpXdp
            | Self::DhcpXdpAsync
            | Self::DhcpXdpPg
            | Self::DhcpXdpForensic
            | Self::DhcpXdpLq => None,
            Self::KeaMt | Self::Kea | Self::KeaPg => Some(("/usr/sbin/kea-dhcp4", "kea-dhcp4-server")),
            Self::Dhcpd => Some(("/usr/sbin/dhcpd", "isc-dhcp-server")),
            Self::Dnsmasq => Some(("/usr/sbin/dnsmasq", "dnsmasq")),
        }
    }
}

/// Journal durability of dhcp-xdp in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// One fdatasync per batch before its replies leave.
    Fsync,
    /// Journal written, synced in the background.
    Async,
}

/// What `bench compare` was asked for.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    pub scenario: Scenario,
    pub duration: Duration,
    pub clients: u32,
    pub window: u32,
    /// Open-loop points as fractions of each server's capacity (of its closed-loop maximum
    /// when no capacity is searched).
    pub fractions: Vec<f64>,
    pub durability: Durability,
    pub workers: u32,
    pub servers: Vec<Server>,
    pub perfdhcp_rate: u64,
    /// DHCPLEASEQUERYs per second sent beside DORA to `dhcp-xdp-lq`.
    pub leasequery_rate: u64,
    /// Clients of each server's avalanche run (0: none).
    pub avalanche: u32,
    /// Longest an avalanche run may take.
    pub avalanche_limit: Duration,
    /// dhcp-xdp's (and echo's) `--ring-size`.
    pub ring_size: u32,
    /// Their `--ring-size` in the avalanche runs: an edge provisioned to absorb every
    /// subscriber's first DISCOVER at once.
    pub avalanche_ring_size: u32,
    /// Length of each trial of the capacity search (zero: no search; the sweep's fractions
    /// are then of the closed-loop maximum).
    pub search_trial: Duration,
    pub out_dir: PathBuf,
}

/// A relay's DHCPLEASEQUERYs (by address, across the pool) sent from the generator's address and
/// port 67 at a steady rate, beside the generator's DORA; the answers reach the generator, which
/// counts them (`leasequery_answers`).
struct Leasequeries {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
    started: Instant,
}

impl Leasequeries {
    fn start(rig: &Rig, rate: u64) -> Self {
        use std::sync::{Arc, atomic::AtomicBool};
        let stop = Arc::new(AtomicBool::new(false));
        // Made in the generator's namespace, the socket stays there.
        let sock =
            rig.client.enter(|| std::net::UdpSocket::bind((REQUESTER, 67)).expect("leasequery socket on port 67"));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            {
                let server: std::net::SocketAddr = format!("{SERVER_IP}:67").parse().expect("server address");
                let (first, last): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
                    (POOL.0.parse().expect("pool"), POOL.1.parse().expect("pool"));
                let span = u32::from(last) - u32::from(first) + 1;
                let requester: std::net::Ipv4Addr = REQUESTER.parse().expect("requester");
                let mut q = [0u8; 300];
                q[0] = 1; // BOOTREQUEST
                q[1] = 1;
                q[2] = 6;
                q[24..28].copy_from_slice(&requester.octets()); // giaddr
                q[236..240].copy_from_slice(&[99, 130, 83, 99]);
                q[240..244].copy_from_slice(&[53, 1, 10, 255]); // DHCPLEASEQUERY
                let (mut sent, mut n) = (0u64, 0u32);
                let started = Instant::now();
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    // Paced in steps of 10 ms.
                    let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                    while sent < due {
                        n = n.wrapping_add(7919);
                        // xids the generator knows are not its clients' (its index bits are
                        // above its client count).
                        q[4..8].copy_from_slice(&(0x00ff_0000u32 | (n & 0xffff)).to_be_bytes());
                        q[12..16].copy_from_slice(&(u32::from(first) + n % span).to_be_bytes()); // ciaddr
                        if sock.send_to(&q, server).is_ok() {
                            sent += 1;
                        } else {
                            break;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                sent
            }
        });
        Self { stop, thread, started: Instant::now() }
    }

    /// Stops the load; what it sent and what came back, beside the closed loop's `result`.
    fn stop(self, result: &Value) -> Value {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        let sent = self.thread.join().unwrap_or(0);
        json!({ "sent": sent, "sent_per_s": sent as f64 / secs, "answered": result["leasequery_answers"] })
    }
}

/// A server process under test.
enum Running {
    Daemon(Daemon),
    Other(Child),
    /// A server and the throwaway PostgreSQL it stores leases in (stopped after it).
    WithDb(Box<Running>, Postgres),
}

impl Running {
    fn pid(&self) -> i32 {
        match self {
            Self::Daemon(d) => d.pid().as_raw(),
            Self::Other(c) => c.id() as i32,
            Self::WithDb(r, _) => r.pid(),
        }
    }

    /// What a dhcp-xdp server counted so far (its control channel's `counters-get`): the XDP
    /// program's verdicts, drops by reason, the store's status and shedding. None for others.
    fn counters(&self) -> Option<Value> {
        match self {
            Self::Daemon(d) => Some(d.counters().0),
            Self::WithDb(r, _) => r.counters(),
            Self::Other(_) => None,
        }
    }

    fn stop(self) {
        match self {
            Self::WithDb(r, pg) => {
                r.stop();
                drop(pg);
            }
            Self::Daemon(d) => {
                let exit = d.signal_and_wait(nix::sys::signal::Signal::SIGTERM);
                if !exit.status.success() {
                    eprintln!("bench: dhcp-xdp ended with {}", exit.status);
                }
                // What the daemon said of its leases and its store when asked, just before
                // the stop.
                if let Some(c) = &exit.counters {
                    eprintln!("bench: dhcp-xdp leases {} store {}", c.0["leases"], c.0["store"]);
                }
            }
            Self::Other(mut c) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = c.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// User + system CPU seconds of process `pid` (all its threads) so far.
fn process_cpu(pid: i32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
    // Fields 14 and 15 of stat(5) (utime, stime), counted from the state field (3).
    (ticks(11) + ticks(12)) / hz
}

fn start(server: Server, cfg: &CompareConfig, rig: &Rig, dir: &Path) -> anyhow::Result<Running> {
    let workers = cfg.workers.to_string();
    let ring = cfg.ring_size.to_string();
    let spawn_other = |mut cmd: Command, log: &str| -> anyhow::Result<Running> {
        let log = std::fs::File::create(dir.join(log))?;
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        // No readiness signal from these: give them time to open their sockets, then make
        // sure they are still there.
        std::thread::sleep(Duration::from_secs(3));
        if let Some(status) = child.try_wait()? {
            bail!("{} exited at start ({status}); see {}", server.name(), dir.display());
        }
        Ok(Running::Other(child))
    };
    match server {
        Server::Echo => Ok(Running::Daemon(Daemon::start(
            &rig.server,
            &rig.server_if,
            &["--handler", "reflect", "--workers", &workers, "--spin-us", SPIN_US, "--ring-size", &ring],
        ))),
        Server::DhcpXdp | Server::DhcpXdpAsync | Server::DhcpXdpPg | Server::DhcpXdpForensic | Server::DhcpXdpLq => {
            let durability = match cfg.durability {
                _ if server == Server::DhcpXdpAsync => "async",
                Durability::Fsync => "fsync",
                Durability::Async => "async",
            };
            let pg = (server == Server::DhcpXdpPg).then(Postgres::start);
            let cluster = pg
                .as_ref()
                .map(|pg| format!("[cluster]\nnode = \"bench\"\ndatabase = \"{}\"\n", pg.url()))
                .unwrap_or_default();
            let extra = match server {
                Server::DhcpXdpForensic => {
                    format!("[forensic-log]\npath = \"{}\"\n", dir.join("leases.jsonl").display())
                }
                Server::DhcpXdpLq => format!("[relays]\nleasequery = [\"{REQUESTER}/32\"]\n"),
                _ => String::new(),
            };
            let conf = dir.join("dhcp-xdp.toml");
            std::fs::write(
                &conf,
                format!(
                    // A load test is not an attack: the generator's 4 096 circuits each bring
                    // thousands of clients, and its clients retransmit at will.
                    "[server]\nlease-time = {LEASE_TIME}\n[persistence]\ndurability = \"{durability}\"\n{cluster}{extra}\
                     [limits]\noffers-per-circuit = 1000000000\noffers-per-mac = 1000000000\nrate-per-mac = 0\n\
                     [[subnet]]\nsubnet = \"198.18.0.0/15\"\noptions = {{ routers = [\"{SERVER_IP}\"] }}\n  \
                     [[subnet.pool]]\n  range = \"{}-{}\"\n",
                    POOL.0, POOL.1
                ),
            )?;
            let state = dir.join("dhcp-xdp-state");
            let conf = conf.display().to_string();
            let state = state.display().to_string();
            let daemon = Running::Daemon(Daemon::start(
                &rig.server,
                &rig.server_if,
                &[
                    "--config",
                    &conf,
                    "--state-dir",
                    &state,
                    "--workers",
                    &workers,
                    "--spin-us",
                    SPIN_US,
                    "--ring-size",
                    &ring,
                ],
            ));
            Ok(match pg {
                Some(pg) => {
                    // The node serves its buckets from its second heartbeat.
                    std::thread::sleep(Duration::from_secs(2));
                    Running::WithDb(Box::new(daemon), pg)
                }
                None => daemon,
            })
        }
        Server::Kea | Server::KeaMt | Server::KeaPg => {
            let mt = server != Server::Kea;
            let conf = dir.join(format!("{}.json", server.key()));
            let leases = dir.join(format!("{}-leases4.csv", server.key()));
            let pg = (server == Server::KeaPg).then(Postgres::start);
            let database = match &pg {
                Some(pg) => {
                    // Kea's own schema, made by Kea's own tool.
                    let out = Command::new("kea-admin")
                        .args(["db-init", "pgsql", "-u", "postgres", "-n", "dhcp", "-h"])
                        .arg(&pg.socket_dir)
                        .output()
                        .context("kea-admin db-init pgsql (Debian package kea-admin)")?;
                    if !out.status.success() {
                        bail!("kea-admin db-init pgsql failed: {}", String::from_utf8_lossy(&out.stdout));
                    }
                    json!({ "type": "postgresql", "name": "dhcp", "user": "postgres",
                            "host": pg.socket_dir.display().to_string() })
                }
                None => json!({ "type": "memfile", "persist": true, "name": leases, "lfc-interval": 0 }),
            };
            std::fs::write(
                &conf,
                serde_json::to_string_pretty(&json!({ "Dhcp4": {
                    "interfaces-config": { "interfaces": [rig.server_if], "dhcp-socket-type": "raw" },
                    "lease-database": database,
                    "valid-lifetime": LEASE_TIME,
                    "multi-threading": { "enable-multi-threading": mt, "thread-pool-size": if mt { 2 } else { 1 }, "packet-queue-size": 64 },
                    "subnet4": [{ "id": 1, "subnet": "198.18.0.0/15",
                        "pools": [{ "pool": format!("{} - {}", POOL.0, POOL.1) }],
                        "option-data": [{ "name": "routers", "data": SERVER_IP }] }],
                    "loggers": [{ "name": "kea-dhcp4", "output_options": [{ "output": "stderr" }], "severity": "WARN" }],
                }}))?,
            )?;
            let mut cmd = rig.server.exec("/usr/sbin/kea-dhcp4");
            cmd.arg("-c").arg(&conf).env("KEA_PIDFILE_DIR", dir).env("KEA_LOCKFILE_DIR", dir);
            let kea = spawn_other(cmd, &format!("{}.log", server.key()))?;
            Ok(match pg {
                Some(pg) => Running::WithDb(Box::new(kea), pg),
                None => kea,
            })
        }
        Server::Dhcpd => {
            let conf = dir.join("dhcpd.conf");
            let leases = dir.join("dhcpd.leases");
            std::fs::write(&leases, "")?;
            std::fs::write(
                &conf,
                format!(
                    "default-lease-time {LEASE_TIME};\nmax-lease-time {LEASE_TIME};\nauthoritative;\nping-check false;\n\
                     subnet 198.18.0.0 netmask 255.254.0.0 {{\n  range {} {};\n  option routers {SERVER_IP};\n}}\n",
                    POOL.0, POOL.1
                ),
            )?;
            let mut cmd = rig.server.exec("/usr/sbin/dhcpd");
            cmd.args(["-4", "-f", "-d", "-cf"])
                .arg(&conf)
                .arg("-lf")
                .arg(&leases)
                .arg("-pf")
                .arg(dir.join("dhcpd.pid"));
            cmd.arg(&rig.server_if);
            spawn_other(cmd, "dhcpd.log")
        }
        Server::Dnsmasq => {
            let mut cmd = rig.server.exec("/usr/sbin/dnsmasq");
            cmd.args(["-k", "-p", "0", "--conf-file=/dev/null", "--user=root", "--bind-interfaces", "--no-ping"])
                .arg(format!("--interface={}", rig.server_if))
                .arg(format!("--dhcp-range={},{},255.254.0.0,{LEASE_TIME}", POOL.0, POOL.1))
                .args(["--dhcp-authoritative", "--dhcp-lease-max=200000", "--log-facility=-"])
                .arg(format!("--dhcp-option=3,{SERVER_IP}"))
                .arg(format!("--dhcp-leasefile={}", dir.join("dnsmasq.leases").display()))
                .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()));
            spawn_other(cmd, "dnsmasq.log")
        }
    }
}

/// One generator run in the client namespace; returns its JSON result.
fn generate(
    rig: &Rig,
    cfg: &CompareConfig,
    run_id: u8,
    rate: u64,
    duration: Duration,
    echo: bool,
    json_path: &Path,
) -> anyhow::Result<Value> {
    let me = std::env::current_exe().context("own path")?;
    let mut cmd = rig.client.exec(me);
    cmd.args(["gen", "--iface", &rig.client_if, "--scenario", cfg.scenario.name()])
        .args(["--clients", &cfg.clients.to_string(), "--window", &cfg.window.to_string()])
        .args(["--rate", &rate.to_string(), "--duration", &duration.as_secs_f64().to_string()])
        .args(["--run-id", &run_id.to_string(), "--json"])
        .arg(json_path);
    if echo {
        cmd.arg("--echo");
    } else {
        cmd.args(["--pool", &format!("{}-{}", POOL.0, POOL.1)]);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
    let status = cmd.status().context("running the generator")?;
    if !status.success() {
        bail!("generator failed ({status})");
    }
    let text = std::fs::read_to_string(json_path)?;
    Ok(serde_json::from_str(&text)?)
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_f64().unwrap_or(0.0)
}

/// perfdhcp's completed 4-way exchanges per second, from its "Rate:" line.
fn perfdhcp(rig: &Rig, rate: u64, clients: u32, secs: u64) -> anyhow::Result<(f64, String)> {
    // Its one socket gets the room a load tester gives it, so that a scheduling stall does not
    // turn into replies lost at the client (the same for every server).
    let _rcvbuf = tests::RcvbufDefault::at_least(4 << 20);
    let out = rig
        .client
        .exec("/usr/sbin/perfdhcp")
        .args([
            "-4",
            "-l",
            &rig.client_if,
            "-r",
            &rate.to_string(),
            "-R",
            &clients.to_string(),
            "-p",
            &secs.to_string(),
        ])
        .output()
        .context("running perfdhcp (package kea-admin)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rate = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Rate:").and_then(|r| r.split_whitespace().next()).and_then(|r| r.parse::<f64>().ok())
        })
        .with_context(|| format!("no rate in perfdhcp output:\n{text}{}", String::from_utf8_lossy(&out.stderr)))?;
    Ok((rate, text))
}

/// Runs the whole comparison; writes `<out>/<date>-<scenario>.{md,json,png}`. Returns the
/// markdown path.
pub fn run(cfg: &CompareConfig) -> anyhow::Result<PathBuf> {
    tests::require_root();
    let rig = rig();
    let work = TempDir::new("bench");
    let mut results: Vec<Value> = vec![];
    let started = Instant::now();
    let mut perfdhcp_checks: Vec<Value> = vec![];
    for (i, &server) in cfg.servers.iter().enumerate() {
        if let Some((bin, package)) = server.binary()
            && !Path::new(bin).exists()
        {
            eprintln!("bench: {}: not installed (apt-get install {package}); skipped", server.name());
            results.push(json!({ "server": server.key(), "name": server.name(), "skipped": format!("{bin} not installed (package {package})") }));
            continue;
        }
        eprintln!("bench: {} — starting", server.name());
        let dir = work.path().join(server.key());
        std::fs::create_dir_all(&dir)?;
        let running = start(server, cfg, &rig, &dir)?;
        let pid = running.pid();
        let run_id = 10 + i as u8;
        let echo = server == Server::Echo;
        let cpu0 = process_cpu(pid);
        eprintln!("bench: {} — closed loop, window {}, {} s", server.name(), cfg.window, cfg.duration.as_secs_f64());
        let load = (server == Server::DhcpXdpLq).then(|| Leasequeries::start(&rig, cfg.leasequery_rate));
        let closed = generate(&rig, cfg, run_id, 0, cfg.duration, echo, &dir.join("closed.json"))?;
        let leasequeries = load.map(|l| l.stop(&closed));
        let cpu = process_cpu(pid) - cpu0;
        let max = num(&closed, &["exchanges_per_s"]);
        let completed = num(&closed, &["completed"]);
        eprintln!("bench: {} — {:.0} exchanges/s", server.name(), max);
        let capacity =
            if cfg.search_trial.is_zero() { Value::Null } else { capacity_search(&rig, cfg, run_id, max, echo, &dir)? };
        // The sweep is in fractions of the capacity where it was searched.
        let base = capacity["rate"].as_f64().filter(|&c| c > 0.0).unwrap_or(max);
        let mut sweep = vec![];
        for &f in &cfg.fractions {
            let rate = ((base * f) as u64).max(100);
            eprintln!("bench: {} — open loop at {rate}/s ({:.0} % of capacity)", server.name(), f * 100.0);
            let before = running.counters();
            let point =
                generate(&rig, cfg, run_id, rate, cfg.duration / 2, echo, &dir.join(format!("open-{rate}.json")))?;
            // The server's own view of the point: what it shed, dropped, how far its store fell behind.
            let server = running.counters().zip(before).map(|(after, before)| server_view(&before, &after));
            sweep.push(json!({ "fraction": f, "offered": rate, "result": point, "server": server }));
        }
        if matches!(server, Server::KeaMt | Server::DhcpXdp) && cfg.perfdhcp_rate > 0 && cfg.scenario == Scenario::Dora
        {
            // The honesty check: perfdhcp at a rate it can reach (and no more than the
            // generator's maximum for this server), and the generator open loop at the same rate.
            // Both with 10 000 fresh clients of their own, so that neither finds the pool empty.
            let rate = cfg.perfdhcp_rate.min(max as u64).max(100);
            let secs = cfg.duration.as_secs().max(5);
            let check = CompareConfig { clients: PERFDHCP_CLIENTS, ..cfg.clone() };
            eprintln!("bench: {} — perfdhcp at {rate}/s for {secs} s", server.name());
            match perfdhcp(&rig, rate, PERFDHCP_CLIENTS, secs) {
                Ok((p, text)) => {
                    std::fs::write(dir.join("perfdhcp.txt"), text)?;
                    let g = generate(
                        &rig,
                        &check,
                        run_id + 100,
                        rate,
                        Duration::from_secs(secs),
                        echo,
                        &dir.join("perfdhcp-gen.json"),
                    )?;
                    let gr = num(&g, &["exchanges_per_s"]);
                    let diff = if p > 0.0 { (gr - p).abs() / p } else { 1.0 };
                    eprintln!(
                        "bench: {} — perfdhcp {p:.0}/s, generator {gr:.0}/s ({:.1} % apart)",
                        server.name(),
                        diff * 100.0
                    );
                    perfdhcp_checks.push(json!({ "server": server.key(), "rate": rate, "perfdhcp": p, "generator": gr, "difference": diff, "within_15_percent": diff <= 0.15 }));
                }
                Err(e) => eprintln!("bench: perfdhcp against {}: {e:#}", server.name()),
            }
        }
        running.stop();
        let avalanche = if cfg.avalanche > 0 {
            // A town after a power cut: every client boots at once, against a fresh instance
            // (no lease held), and retransmits on the RFC 2131 schedule until bound.
            eprintln!("bench: {} — avalanche of {} clients", server.name(), cfg.avalanche);
            let dir = work.path().join(format!("{}-avalanche", server.key()));
            std::fs::create_dir_all(&dir)?;
            let av = CompareConfig {
                scenario: Scenario::Avalanche,
                clients: cfg.avalanche,
                ring_size: cfg.avalanche_ring_size,
                ..cfg.clone()
            };
            let running = start(server, &av, &rig, &dir)?;
            let result = generate(&rig, &av, run_id + 50, 0, cfg.avalanche_limit, echo, &dir.join("avalanche.json"));
            running.stop();
            let result = result?;
            eprintln!(
                "bench: {} — avalanche: 99 % bound after {} s, all after {} s",
                server.name(),
                result["bound_99_percent_s"],
                result["bound_all_s"]
            );
            result
        } else {
            Value::Null
        };
        results.push(json!({
            "server": server.key(),
            "name": server.name(),
            "avalanche": avalanche,
            "max_exchanges_per_s": max,
            "capacity": capacity,
            "server_cpu_s": cpu,
            "cpu_s_per_1000": if completed > 0.0 { cpu / completed * 1000.0 } else { 0.0 },
            "closed": closed,
            "sweep": sweep,
            "leasequeries": leasequeries,
        }));
    }
    // The rig's own limit at the rates dhcp-xdp was offered: the echo path at the same offered
    // rates, so that a collapse of the rig (generator and server share the vCPUs) is told apart
    // from one of the server.
    let echo_at_same_rates = if cfg.servers.contains(&Server::Echo) {
        let mut rates: Vec<u64> = results
            .iter()
            .filter(|v| v["server"] == "dhcp-xdp" || v["server"] == "dhcp-xdp-pg")
            .flat_map(|v| v["sweep"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["offered"].as_u64())
            .collect();
        rates.sort_unstable();
        rates.dedup();
        if rates.is_empty() {
            Value::Null
        } else {
            let dir = work.path().join("echo-same-rates");
            std::fs::create_dir_all(&dir)?;
            let running = start(Server::Echo, cfg, &rig, &dir)?;
            let mut points = vec![];
            for rate in rates {
                eprintln!("bench: echo at dhcp-xdp's offered rate {rate}/s");
                let p = generate(&rig, cfg, 9, rate, cfg.duration / 2, true, &dir.join(format!("open-{rate}.json")))?;
                points.push(json!({ "offered": rate, "result": p }));
            }
            running.stop();
            Value::Array(points)
        }
    } else {
        Value::Null
    };
    let fdatasync = fdatasync_latency(work.path());
    let takeover = if cfg.servers.contains(&Server::DhcpXdpPg) {
        eprintln!("bench: cluster takeover (SIGKILL to the first rebind ACK), 3 rounds");
        match crate::takeover::measure(3) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("bench: takeover: {e:#}");
                json!({ "error": format!("{e:#}") })
            }
        }
    } else {
        Value::Null
    };
    let report = json!({
        "takeover": takeover,
        "date": today(),
        "scenario": cfg.scenario.name(),
        "clients": cfg.clients,
        "window": cfg.window,
        "duration_s": cfg.duration.as_secs_f64(),
        "durability": format!("{:?}", cfg.durability).to_lowercase(),
        "workers": cfg.workers,
        "ring_size": cfg.ring_size,
        "avalanche_ring_size": cfg.avalanche_ring_size,
        "machine": machine(),
        "fdatasync_us": fdatasync,
        "echo_at_same_rates": echo_at_same_rates,
        "servers": results,
        "perfdhcp_checks": perfdhcp_checks,
        "wall_s": started.elapsed().as_secs_f64(),
    });
    std::fs::create_dir_all(&cfg.out_dir)?;
    let stem = format!("{}-{}", today(), cfg.scenario.name());
    let json_path = cfg.out_dir.join(format!("{stem}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)?;
    let png = cfg.out_dir.join(format!("{stem}.png"));
    let plotted = match crate::plot::draw(&report, &png) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("bench: no plot: {e:#}");
            false
        }
    };
    let md = cfg.out_dir.join(format!("{stem}.md"));
    std::fs::write(&md, markdown(&report, plotted.then_some(&png)))?;
    Ok(md)
}

/// The disk's `fdatasync` latency where the benches write (p50 and p99 of 200, in µs): appending
/// 4 KiB to a file (the journal today: data and the file's size), and overwriting 4 KiB of a
/// file written before (data only, as a preallocated segment would be).
fn fdatasync_latency(dir: &Path) -> Value {
    use std::io::{Seek as _, SeekFrom, Write as _};
    let run = |overwrite: bool| -> std::io::Result<Value> {
        let path = dir.join(if overwrite { "fdatasync-overwrite" } else { "fdatasync-append" });
        let mut f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
        let block = [0x5au8; 4096];
        if overwrite {
            for _ in 0..200 {
                f.write_all(&block)?;
            }
            f.sync_all()?;
            f.seek(SeekFrom::Start(0))?;
        }
        let mut us = vec![];
        for _ in 0..200 {
            f.write_all(&block)?;
            let t = Instant::now();
            f.sync_data()?;
            us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let _ = std::fs::remove_file(&path);
        us.sort_by(f64::total_cmp);
        Ok(json!({ "p50": us[us.len() / 2], "p99": us[us.len() * 99 / 100] }))
    };
    json!({
        "append": run(false).unwrap_or_else(|e| json!({ "error": e.to_string() })),
        "overwrite": run(true).unwrap_or_else(|e| json!({ "error": e.to_string() })),
    })
}

fn today() -> String {
    let out = Command::new("date").arg("+%Y-%m-%d").output().ok();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_else(|| "undated".into())
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} vCPU {model}, Linux {}", kernel.trim())
}

/// Latency percentile `p` (µs) of a server's open-loop point at half its closed-loop maximum.
fn at_half_max(server: &Value, p: &str) -> Option<f64> {
    server["sweep"]
        .as_array()?
        .iter()
        .find(|x| (x["fraction"].as_f64().unwrap_or(0.0) - 0.5).abs() < 1e-9)
        .map(|x| num(x, &["result", "latency_us", p]))
}

/// Whether an open-loop trial passed the capacity criterion: at least 99.9 % of the exchanges
/// it scheduled completed within the generator's timeout (1 s), with no check failure (a start
/// the generator could not send counts against it: the rig could not offer that rate).
fn trial_passed(t: &Value) -> bool {
    let completed = num(t, &["completed"]);
    let scheduled = completed + num(t, &["timeouts"]) + num(t, &["no_idle_client"]) + num(t, &["unsent"]);
    scheduled > 0.0 && completed >= 0.999 * scheduled && num(t, &["check_failures"]) == 0.0
}

/// Trials of the capacity search.
const SEARCH_TRIALS: usize = 7;

/// RFC 2544-style capacity: the highest offered rate at which at least 99.9 % of exchanges
/// complete within 1 s, found by bisection between 0 and 1.5× the closed-loop maximum
/// ([`SEARCH_TRIALS`] open-loop trials of `cfg.search_trial`, each on the running server).
fn capacity_search(
    rig: &Rig,
    cfg: &CompareConfig,
    run_id: u8,
    max: f64,
    echo: bool,
    dir: &Path,
) -> anyhow::Result<Value> {
    let (mut lo, mut hi) = (0.0f64, (max * 1.5).max(1000.0));
    let mut trials = vec![];
    for _ in 0..SEARCH_TRIALS {
        let rate = ((lo + hi) / 2.0) as u64;
        let t = generate(rig, cfg, run_id, rate, cfg.search_trial, echo, &dir.join(format!("search-{rate}.json")))?;
        let pass = trial_passed(&t);
        eprintln!(
            "bench: capacity search at {rate}/s: {} ({} completed, {} timed out)",
            if pass { "passed" } else { "failed" },
            t["completed"],
            t["timeouts"]
        );
        trials.push(json!({ "offered": rate, "passed": pass, "completed": t["completed"], "timeouts": t["timeouts"] }));
        if pass {
            lo = rate as f64;
        } else {
            hi = rate as f64;
        }
    }
    Ok(json!({ "rate": lo, "criterion": "99.9 % of exchanges within 1 s", "trials": trials }))
}

/// What a dhcp-xdp server did during one run, from its counters before and after: DISCOVERs
/// shed in XDP, frames dropped by reason, shedding episodes, and its store's lag at the end.
fn server_view(before: &Value, after: &Value) -> Value {
    let delta = |path: &[&str]| -> i64 {
        let get = |v: &Value| path.iter().fold(v, |v, p| &v[*p]).as_i64().unwrap_or(0);
        get(after) - get(before)
    };
    let mut drops = serde_json::Map::new();
    if let (Some(a), Some(b)) = (after["workers"].as_array(), before["workers"].as_array()) {
        for (wa, wb) in a.iter().zip(b) {
            for (k, v) in wa.as_object().into_iter().flatten().filter(|(k, _)| k.starts_with("drop_")) {
                let d = v.as_i64().unwrap_or(0) - wb[k].as_i64().unwrap_or(0);
                if d != 0 {
                    let e = drops.entry(k.clone()).or_insert(json!(0));
                    *e = json!(e.as_i64().unwrap_or(0) + d);
                }
            }
        }
    }
    json!({
        "shed_discover": delta(&["xdp", "shed_discover"]),
        "redirected": delta(&["xdp", "redirected"]),
        "shed_episodes": delta(&["shedding", "episodes"]),
        "drops": drops,
        "store_lag_ms_at_end": after["store"]["lag-ms"],
        "store_failed_rounds": delta(&["store", "failed-rounds"]),
        "store_dropped_batches": delta(&["store", "dropped-batches"]),
        "store_syncs": delta(&["store", "syncs"]),
        "store_sync_us": delta(&["store", "sync-us"]),
        "journal_plain_files": delta(&["store", "segments", "plain-files"]),
        "journal_preallocated_files": delta(&["store", "segments", "preallocated-files"]),
    })
}

/// The avalanche runs: how long until 99 % and all of the clients were bound, against the
/// time the server's closed-loop capacity would need (the goal: all within 1.2 × that).
fn avalanche_table(s: &mut String, servers: &[Value], ring_size: &Value) {
    let runs: Vec<&Value> = servers.iter().filter(|v| v["avalanche"].is_object()).collect();
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Avalanche (every client boots at once, RFC 2131 retransmissions)\n");
    let _ = writeln!(
        s,
        "Each server fresh, no lease held (dhcp-xdp and echo with rings of {ring_size} entries: an edge provisioned to \
         absorb every first DISCOVER at once); every client sends its DISCOVER at once and, unanswered or NAKed, starts \
         over with a new xid after 4, 8, 16, 32, then 64 s, each ±1 s.\n"
    );
    let _ = writeln!(
        s,
        "| server | clients | 99 % bound after, s | all bound after, s | N ÷ capacity, s | all ÷ (N ÷ capacity) (goal ≤ 1.2) | N ÷ closed-loop max, s | retransmissions | check failures |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for v in runs {
        let a = &v["avalanche"];
        let n = num(a, &["clients"]);
        // Capacity as the search found it (99.9 % within 1 s), else the closed-loop maximum.
        let max = num(v, &["max_exchanges_per_s"]);
        let cap = v["capacity"]["rate"].as_f64().filter(|&c| c > 0.0).unwrap_or(max);
        let ideal = if cap > 0.0 { n / cap } else { 0.0 };
        let at_max = if max > 0.0 { n / max } else { 0.0 };
        let secs = |k: &str| a[k].as_f64().map(|x| format!("{x:.2}")).unwrap_or_else(|| "not within the limit".into());
        let ratio = a["bound_all_s"]
            .as_f64()
            .filter(|_| ideal > 0.0)
            .map(|x| format!("{:.2}", x / ideal))
            .unwrap_or_else(|| "–".into());
        let _ = writeln!(
            s,
            "| {} | {n:.0} | {} | {} | {ideal:.2} | {ratio} | {at_max:.2} | {} | {} |",
            v["name"].as_str().unwrap_or(""),
            secs("bound_99_percent_s"),
            secs("bound_all_s"),
            a["retransmits"],
            a["check_failures"],
        );
    }
}

fn markdown(r: &Value, png: Option<&PathBuf>) -> String {
    let mut s = String::new();
    let servers = r["servers"].as_array().cloned().unwrap_or_default();
    let by = |k: &str| servers.iter().find(|v| v["server"] == k && v.get("skipped").is_none());
    let _ = writeln!(
        s,
        "# dhcp-xdp comparison: {} ({})\n",
        r["scenario"].as_str().unwrap_or(""),
        r["date"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        s,
        "Machine: {}. Rig: two network namespaces, one veth pair (one queue), the AF_XDP generator \
         (`bench gen`) in one, each server in turn in the other. {} clients, closed-loop window {}, \
         {} s per closed-loop run, half that per open-loop point. dhcp-xdp: {} worker(s) polling 1 ms \
         after their last frame (`--spin-us 1000`), rings of {} entries (`--ring-size`), journal durability `{}`; on PostgreSQL: one cluster node, a throwaway \
         local PostgreSQL (unix socket, default settings: synchronous commit). Kea: memfile with persist (appends, no fsync), or \
         its PostgreSQL lease backend on the same kind of database; dhcpd: leases file \
         (fsync per commit), dnsmasq: lease file, `--no-ping`; dhcpd `ping-check false`.\n",
        r["machine"].as_str().unwrap_or(""),
        r["clients"],
        r["window"],
        r["duration_s"],
        r["workers"],
        r["ring_size"],
        r["durability"].as_str().unwrap_or(""),
    );
    let _ = writeln!(
        s,
        "Reproduce: `cargo xtask bench --only compare -- --scenario {}`\n",
        r["scenario"].as_str().unwrap_or("")
    );
    let f = &r["fdatasync_us"];
    if f["append"]["p50"].is_number() {
        let _ = writeln!(
            s,
            "The disk under the journal: `fdatasync` after a 4 KiB append p50 {:.0} µs (p99 {:.0}), after overwriting 4 KiB \
             p50 {:.0} µs (p99 {:.0}).\n",
            num(f, &["append", "p50"]),
            num(f, &["append", "p99"]),
            num(f, &["overwrite", "p50"]),
            num(f, &["overwrite", "p99"]),
        );
    }
    let _ = writeln!(
        s,
        "| server | max exchanges/s (closed loop) | capacity/s (99.9 % within 1 s) | p50 µs | p99 µs | p99.9 µs | p99 at ½ capacity, µs | server CPU s / 1000 exchanges | timeouts | check failures |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for v in &servers {
        if let Some(why) = v.get("skipped") {
            let _ = writeln!(
                s,
                "| {} | skipped: {} | | | | | | | | |",
                v["name"].as_str().unwrap_or(""),
                why.as_str().unwrap_or("")
            );
            continue;
        }
        let c = &v["closed"];
        let half = at_half_max(v, "p99").map(|h| format!("{h:.0}")).unwrap_or_else(|| "–".into());
        let _ = writeln!(
            s,
            "| {} | {:.0} | {} | {:.0} | {:.0} | {:.0} | {} | {:.4} | {} | {} |",
            v["name"].as_str().unwrap_or(""),
            num(v, &["max_exchanges_per_s"]),
            v["capacity"]["rate"].as_f64().map_or_else(|| "–".to_owned(), |c| format!("{c:.0}")),
            num(c, &["latency_us", "p50"]),
            num(c, &["latency_us", "p99"]),
            num(c, &["latency_us", "p999"]),
            half,
            num(v, &["cpu_s_per_1000"]),
            c["timeouts"],
            c["check_failures"],
        );
    }
    let rate = |k: &str| by(k).map(|v| num(v, &["max_exchanges_per_s"]));
    let _ = writeln!(s);
    if let (Some(x), Some(e)) = (rate("dhcp-xdp"), rate("echo")) {
        let _ = writeln!(s, "- dhcp-xdp / echo ceiling: **{:.2}** (target ≥ 0.80)", x / e);
    }
    if let (Some(x), Some(k)) = (rate("dhcp-xdp"), rate("kea-mt")) {
        let _ = writeln!(s, "- dhcp-xdp / Kea multi-threaded: **{:.1}×** (target ≥ 25×)", x / k);
    }
    if let (Some(x), Some(l)) = (rate("dhcp-xdp-pg"), rate("dhcp-xdp")) {
        let _ = writeln!(s, "- dhcp-xdp on PostgreSQL / dhcp-xdp on its local journal: **{:.2}** (goal ≥ 0.5)", x / l);
    }
    if let (Some(x), Some(a)) = (rate("dhcp-xdp"), rate("dhcp-xdp-async")) {
        let _ = writeln!(s, "- dhcp-xdp, fsync journal / async journal: **{:.2}** (goal ≥ 0.9)", x / a);
    }
    if let (Some(x), Some(p)) = (rate("dhcp-xdp"), rate("dhcp-xdp-pg")) {
        let _ = writeln!(s, "- dhcp-xdp, fsync journal / on PostgreSQL: **{:.2}** (goal ≥ 1.0)", x / p);
    }
    let p50_half = |k: &str| by(k).and_then(|v| at_half_max(v, "p50"));
    if let (Some(x), Some(e), Some(f)) =
        (p50_half("dhcp-xdp"), p50_half("echo"), r["fdatasync_us"]["overwrite"]["p50"].as_f64())
    {
        let _ = writeln!(
            s,
            "- dhcp-xdp p50 at half its maximum rate: **{x:.0} µs**, {:.2}× one `fdatasync` ({f:.0} µs) + the echo \
             path's p50 at half its maximum ({e:.0} µs) (goal ≤ 2)",
            x / (f + e)
        );
    }
    if let (Some(x), Some(k)) = (rate("dhcp-xdp-pg"), rate("kea-pg")) {
        let _ = writeln!(s, "- dhcp-xdp on PostgreSQL / Kea on PostgreSQL: **{:.1}×** (goal ≥ 20×)", x / k);
    }
    if let Some(m) = r["takeover"]["median_s"].as_f64() {
        let _ = writeln!(
            s,
            "- cluster takeover, SIGKILL of a node to the first rebind ACK from the other: **{m:.2} s** median of {:?} s \
             (heartbeat {} s, takeover after {} s)",
            r["takeover"]["rounds_s"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_f64).map(|x| (x * 100.0).round() / 100.0).collect::<Vec<_>>())
                .unwrap_or_default(),
            r["takeover"]["heartbeat_s"],
            r["takeover"]["takeover_after_s"],
        );
    }
    if let (Some(x), Some(f)) = (rate("dhcp-xdp"), rate("dhcp-xdp-forensic")) {
        let _ = writeln!(s, "- dhcp-xdp with the forensic log / without: **{:.2}** (goal ≥ 0.90)", f / x);
    }
    if let (Some(x), Some(l)) = (rate("dhcp-xdp"), rate("dhcp-xdp-lq")) {
        let q = &by("dhcp-xdp-lq").map(|v| v["leasequeries"].clone()).unwrap_or_default();
        let _ = writeln!(
            s,
            "- dhcp-xdp with {:.0} leasequeries/s beside DORA ({} answered) / without: **{:.2}** (goal: no slower, \
             within the run's noise)",
            q["sent_per_s"].as_f64().unwrap_or(0.0),
            q["answered"],
            l / x
        );
    }
    if let Some(h) = by("dhcp-xdp").and_then(|v| at_half_max(v, "p99")) {
        let _ = writeln!(s, "- dhcp-xdp p99 latency at half its maximum rate: **{h:.0} µs** (target ≤ 200 µs)");
    }
    avalanche_table(&mut s, &servers, &r["avalanche_ring_size"]);
    let _ = writeln!(s, "\n## Generator honesty check (perfdhcp at the same offered rate)\n");
    let _ = writeln!(s, "| server | offered/s | perfdhcp exchanges/s | generator exchanges/s | apart | within 15 % |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---|");
    for c in r["perfdhcp_checks"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.0} | {:.1} % | {} |",
            c["server"].as_str().unwrap_or(""),
            c["rate"],
            num(&c, &["perfdhcp"]),
            num(&c, &["generator"]),
            num(&c, &["difference"]) * 100.0,
            if c["within_15_percent"].as_bool() == Some(true) { "yes" } else { "**no**" }
        );
    }
    let _ = writeln!(s, "\n## Offered load sweep (open loop)\n");
    let _ = writeln!(
        s,
        "Offered rates are fractions of each server's capacity (of its closed-loop maximum where no capacity \
         was searched). Goodput at 1.5× and 3× capacity, as a fraction of the capacity (goal ≥ 0.9):\n"
    );
    for v in &servers {
        let Some(c) = v["capacity"]["rate"].as_f64().filter(|&c| c > 0.0) else { continue };
        let at = |f: f64| {
            v["sweep"].as_array().and_then(|ps| {
                ps.iter()
                    .find(|p| (p["fraction"].as_f64().unwrap_or(0.0) - f).abs() < 1e-9)
                    .map(|p| num(&p["result"], &["exchanges_per_s"]) / c)
            })
        };
        let show = |x: Option<f64>| x.map_or_else(|| "not run".to_owned(), |x| format!("**{x:.2}**"));
        let _ = writeln!(s, "- {}: 1.5× {}, 3× {}", v["name"].as_str().unwrap_or(""), show(at(1.5)), show(at(3.0)));
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| server | offered/s | achieved/s | p50 µs | p99 µs | p99.9 µs | timeouts | not sent (generator) | DISCOVERs shed (server) | held replies dropped (server) |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for v in &servers {
        for p in v["sweep"].as_array().cloned().unwrap_or_default() {
            let res = &p["result"];
            let server = |k: &str| match &p["server"] {
                Value::Null => "–".to_owned(),
                sv => sv[k].as_i64().or_else(|| sv["drops"][k].as_i64()).unwrap_or(0).to_string(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} |",
                v["name"].as_str().unwrap_or(""),
                p["offered"],
                num(res, &["exchanges_per_s"]),
                num(res, &["latency_us", "p50"]),
                num(res, &["latency_us", "p99"]),
                num(res, &["latency_us", "p999"]),
                res["timeouts"],
                num(res, &["unsent"]),
                server("shed_discover"),
                server("drop_journal_stalled"),
            );
        }
    }
    if let Some(points) = r["echo_at_same_rates"].as_array() {
        let _ = writeln!(
            s,
            "\nThe echo path at dhcp-xdp's offered rates (where it too falls short, the rig is the limit, not the server):\n"
        );
        let _ = writeln!(s, "| offered/s | echo achieved/s | echo timeouts | not sent (generator) |");
        let _ = writeln!(s, "|---:|---:|---:|---:|");
        for p in points {
            let _ = writeln!(
                s,
                "| {} | {:.0} | {} | {:.0} |",
                p["offered"],
                num(&p["result"], &["exchanges_per_s"]),
                p["result"]["timeouts"],
                num(&p["result"], &["unsent"])
            );
        }
    }
    if let Some(p) = png {
        let _ = writeln!(
            s,
            "\n![exchanges/s and latency against offered load]({})",
            p.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    s
}
