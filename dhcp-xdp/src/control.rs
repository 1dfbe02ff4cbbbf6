//! The management channel, in Kea's shapes: a unix stream socket; the client writes one JSON
//! object `{"command", "arguments"}`, the server answers one `{"result", "text", "arguments"}`
//! and closes (result 0 success, 1 error, 2 unsupported, 3 empty). Kea's own `kea-ctrl-agent`
//! (and through it `kea-shell`, Stork, IPAM controllers) can therefore manage this daemon.
//!
//! It runs on a thread of its own and takes a shard lock only briefly, one at a time; lease
//! edits are journaled and durable before the answer, like ACKs. It must never hold a lock
//! across a worker's batch, nor answer success for an edit the journal did not make durable.

use std::{
    io::{Read as _, Write as _},
    net::Ipv4Addr,
    os::unix::{
        fs::{DirBuilderExt as _, PermissionsExt as _},
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    sync::{Arc, Mutex, atomic::Ordering, mpsc},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use dhcp_xdp_core::{
    config::Config,
    leases::{Change, ClientKey, Lease, LeaseError, LeaseState, Tags},
    net::parse_mac,
    verdict::DropReason,
};
use serde_json::{Value, json};

use crate::{
    datapath::WorkerStats,
    handler::FrameMeta,
    serve::{Shared, unix_now},
};

/// Commands that only the control loop may carry out (it owns the XDP program and the stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `config-reload`: reload the configuration file, as SIGHUP does.
    Reload,
    /// `shutdown`: stop cleanly, as SIGTERM does.
    Shutdown,
}

/// An action and where the control loop answers it.
pub type ActionRequest = (Action, mpsc::SyncSender<Value>);

/// What the channel answers from.
pub struct Control {
    /// Configuration, lease tables, engine counters, journal.
    pub shared: Arc<Shared>,
    /// Every worker's counters (drops by reason).
    pub workers: Vec<(FrameMeta, Arc<WorkerStats>)>,
    /// Where `config-reload` and `shutdown` go.
    pub actions: mpsc::Sender<ActionRequest>,
    started: Instant,
    /// Statistic values at the last `statistic-reset-all`.
    baseline: Mutex<Vec<(String, u64)>>,
}

/// Who answers a command.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Answered on the channel's own thread from the shared state.
    Here(fn(&Control, &Value) -> Value),
    /// Carried out by the control loop (it owns the XDP program, the reload and the stop).
    ControlLoop(Action),
}

/// One command of the channel: adding a command is adding a row here.
#[derive(Clone, Copy)]
pub struct Command {
    /// Kea's name for it.
    pub name: &'static str,
    /// What answers it.
    pub handler: Handler,
}

const fn here(name: &'static str, f: fn(&Control, &Value) -> Value) -> Command {
    Command { name, handler: Handler::Here(f) }
}

/// Every command answered, in `list-commands` order. Anything else is answered with Kea's
/// result 2 (not supported).
pub static COMMANDS: &[Command] = &[
    here("build-report", |_, _| {
        answer(0, format!("dhcp-xdp {} built with rustc for {}", env!("CARGO_PKG_VERSION"), std::env::consts::ARCH))
    }),
    here("config-get", |c, _| c.config_get()),
    Command { name: "config-reload", handler: Handler::ControlLoop(Action::Reload) },
    here("config-test", Control::config_test),
    here("lease4-add", |c, a| c.lease_put(a, false)),
    here("lease4-del", Control::lease_del),
    here("lease4-get", Control::lease_get),
    here("lease4-get-all", Control::lease_get_all),
    here("lease4-get-by-client-id", |c, a| c.lease_get_by(a, "client-id")),
    here("lease4-get-by-hw-address", |c, a| c.lease_get_by(a, "hw-address")),
    here("lease4-get-page", Control::lease_get_page),
    here("lease4-update", |c, a| c.lease_put(a, true)),
    here("lease4-wipe", Control::lease_wipe),
    here("list-commands", |_, _| {
        let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        with_args(0, format!("{} commands", names.len()), json!(names))
    }),
    Command { name: "shutdown", handler: Handler::ControlLoop(Action::Shutdown) },
    here("statistic-get", Control::statistic_get),
    here("statistic-get-all", |c, _| c.statistic_get_all()),
    here("statistic-reset-all", |c, _| {
        *c.baseline.lock().unwrap_or_else(|p| p.into_inner()) = c.raw_statistics();
        answer(0, "All statistics reset to neutral values.")
    }),
    here("status-get", |c, _| c.status_get()),
    here("version-get", |_, _| {
        with_args(
            0,
            format!("dhcp-xdp {}", env!("CARGO_PKG_VERSION")),
            json!({ "extended": format!("dhcp-xdp {} (AF_XDP DHCPv4 server, Kea control channel)", env!("CARGO_PKG_VERSION")) }),
        )
    }),
];

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Bytes a request may have.
pub const MAX_REQUEST: usize = 1 << 20;
/// Time a whole request may take to arrive.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Time one write of an answer may wait for the client to read.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);

fn answer(result: u8, text: impl Into<String>) -> Value {
    json!({ "result": result, "text": text.into() })
}

fn with_args(result: u8, text: impl Into<String>, arguments: Value) -> Value {
    json!({ "result": result, "text": text.into(), "arguments": arguments })
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` in UTC, as Kea stamps statistics.
fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    dhcp_xdp_core::calendar::kea_timestamp(d.as_secs(), d.subsec_micros())
}

impl Control {
    /// A channel over `shared`, the workers' counters, and the control loop's action queue.
    pub fn new(
        shared: Arc<Shared>,
        workers: Vec<(FrameMeta, Arc<WorkerStats>)>,
        actions: mpsc::Sender<ActionRequest>,
    ) -> Self {
        Self { shared, workers, actions, started: Instant::now(), baseline: Mutex::new(vec![]) }
    }

    /// The socket at `path`, mode 0600 from the moment it exists at that path (bound in a
    /// private directory beside it, made 0600 there, then renamed into place: no window with
    /// the umask's mode); its directory is created 0700 when missing; a stale socket file is
    /// replaced.
    pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !dir.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "control".into());
        let private = dir.join(format!(".{name}.{}.new", std::process::id()));
        let _ = std::fs::remove_dir_all(&private);
        std::fs::DirBuilder::new().mode(0o700).create(&private)?;
        let result = (|| {
            let staged = private.join("s");
            let listener = UnixListener::bind(&staged)?;
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
            std::fs::rename(&staged, path)?;
            Ok(listener)
        })();
        let _ = std::fs::remove_dir_all(&private);
        result
    }

    /// Answers on `listener` (at `path`): each connection on a thread of its own, at most
    /// [`MAX_CONNECTIONS`] at once (more are told so and closed), so a client that sends slowly
    /// or reads slowly never keeps another out.
    pub fn serve(self: Arc<Self>, listener: UnixListener, path: &Path) -> std::io::Result<std::thread::JoinHandle<()>> {
        let path = path.to_owned();
        let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        std::thread::Builder::new().name("control".into()).spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(mut s) => {
                        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                            active.fetch_sub(1, Ordering::AcqRel);
                            let busy = answer(1, format!("busy: {MAX_CONNECTIONS} connections are being served"));
                            let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
                            let _ = s.write_all(&serde_json::to_vec(&busy).unwrap_or_default());
                            // What the client sent is read (briefly, a bounded amount) before the
                            // close, or it would see a reset instead of the answer.
                            let _ = s.shutdown(std::net::Shutdown::Write);
                            let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                            let mut sink = [0u8; 4096];
                            for _ in 0..4 {
                                if !matches!(s.read(&mut sink), Ok(n) if n > 0) {
                                    break;
                                }
                            }
                            continue;
                        }
                        let (me, done, at) = (self.clone(), active.clone(), path.clone());
                        let spawned = std::thread::Builder::new().name("control-conn".into()).spawn(move || {
                            if let Err(e) = me.connection(s) {
                                tracing::debug!("control connection on {}: {e}", at.display());
                            }
                            done.fetch_sub(1, Ordering::AcqRel);
                        });
                        if let Err(e) = spawned {
                            active.fetch_sub(1, Ordering::AcqRel);
                            tracing::warn!("control socket {}: {e}", path.display());
                        }
                    }
                    Err(e) => tracing::warn!("control socket {}: {e}", path.display()),
                }
            }
        })
    }

    /// One request, one answer, then the connection closes (Kea's framing). The whole request
    /// must arrive within [`REQUEST_DEADLINE`] and within [`MAX_REQUEST`] bytes; each write of
    /// the answer must progress within [`WRITE_DEADLINE`].
    fn connection(&self, mut s: UnixStream) -> std::io::Result<()> {
        let deadline = Instant::now() + REQUEST_DEADLINE;
        s.set_write_timeout(Some(WRITE_DEADLINE))?;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        let request: Result<Value, Value> = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(answer(1, format!("request not complete within {REQUEST_DEADLINE:?}")));
            }
            s.set_read_timeout(Some(left))?;
            let n = match s.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    break Err(answer(1, format!("request not complete within {REQUEST_DEADLINE:?}")));
                }
                Err(e) => return Err(e),
            };
            if n == 0 {
                break Ok(serde_json::from_slice(&buf).unwrap_or(Value::Null));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                break Ok(v);
            }
            if buf.len() > MAX_REQUEST {
                break Err(answer(1, format!("request over {MAX_REQUEST} bytes")));
            }
        };
        match request {
            Ok(r) if r.get("command").and_then(Value::as_str) == Some("lease4-get-all") => {
                let leases = self.all_leases(r.get("arguments").unwrap_or(&json!({})));
                if leases.is_empty() {
                    s.write_all(&serde_json::to_vec(&self.lease_list(leases)).unwrap_or_default())?;
                } else {
                    self.stream_leases(&leases, &mut s)?;
                }
            }
            Ok(r) => s.write_all(&serde_json::to_vec(&self.dispatch(&r)).unwrap_or_default())?,
            Err(refusal) => s.write_all(&serde_json::to_vec(&refusal).unwrap_or_default())?,
        }
        s.shutdown(std::net::Shutdown::Both)
    }

    /// `lease4-get-all`'s answer written lease by lease (never built whole: a million leases
    /// would be a gigabyte as one JSON value).
    fn stream_leases(&self, leases: &[Lease], s: &mut UnixStream) -> std::io::Result<()> {
        let mut w = std::io::BufWriter::with_capacity(64 << 10, s);
        w.write_all(b"{\"arguments\": {\"leases\": [")?;
        for (i, l) in leases.iter().enumerate() {
            if i > 0 {
                w.write_all(b", ")?;
            }
            serde_json::to_writer(&mut w, &self.lease_json(l)).map_err(std::io::Error::other)?;
        }
        write!(w, "]}}, \"result\": 0, \"text\": \"{} IPv4 lease(s) found.\"}}", leases.len())?;
        w.flush()
    }

    /// The answer to one request.
    pub fn dispatch(&self, request: &Value) -> Value {
        let Some(command) = request.get("command").and_then(Value::as_str) else {
            return answer(1, "invalid command: no \"command\" string");
        };
        let empty = json!({});
        let args = request.get("arguments").unwrap_or(&empty);
        match COMMANDS.iter().find(|c| c.name == command).map(|c| c.handler) {
            Some(Handler::Here(f)) => f(self, args),
            Some(Handler::ControlLoop(a)) => self.action(a),
            None => answer(2, format!("'{command}' command not supported.")),
        }
    }

    fn status_get(&self) -> Value {
        with_args(
            0,
            "",
            json!({
                "pid": std::process::id(),
                "uptime": self.started.elapsed().as_secs(),
                "reload": self.shared.reloads.age_secs(),
                "reloads-applied": self.shared.reloads.applied.load(Ordering::Relaxed),
                "reloads-rejected": self.shared.reloads.rejected.load(Ordering::Relaxed),
                "multi-threading-enabled": true,
                "thread-pool-size": self.workers.len(),
                "sockets": { "status": "ready" },
            }),
        )
    }

    fn action(&self, a: Action) -> Value {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.actions.send((a, tx)).is_err() {
            return answer(1, "the control loop is gone");
        }
        rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| answer(1, "the control loop did not answer"))
    }

    fn config_get(&self) -> Value {
        let cfg = self.shared.runtime().cfg.clone();
        let subnets: Vec<Value> = cfg
            .subnets
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "subnet": format!("{}/{}", s.net.addr, s.net.prefix),
                    "valid-lifetime": s.lease_time,
                    "renew-timer": s.renew_time,
                    "rebind-timer": s.rebind_time,
                    "pools": s.pools.iter().map(|p| json!({ "pool": format!("{}-{}", p.start, p.end) })).collect::<Vec<_>>(),
                    "reservations": s.reservations.iter().filter_map(|r| r.ip).map(|ip| json!({ "ip-address": ip.to_string() })).collect::<Vec<_>>(),
                })
            })
            .collect();
        with_args(
            0,
            "",
            json!({ "Dhcp4": { "subnet4": subnets, "valid-lifetime": cfg.subnets.first().map(|s| s.lease_time) }, "dhcp-xdp": { "source": cfg.source, "described": cfg.describe() } }),
        )
    }

    /// `config-test {"file": PATH}` or `{"toml": TEXT}` (Kea's takes a JSON config; this server's
    /// configuration is TOML).
    fn config_test(&self, args: &Value) -> Value {
        let parsed = if let Some(text) = args.get("toml").and_then(Value::as_str) {
            Config::parse("config-test", text)
        } else if let Some(file) = args.get("file").and_then(Value::as_str) {
            crate::serve::load_config_file(&PathBuf::from(file))
        } else {
            return answer(1, "config-test takes {\"file\": PATH} or {\"toml\": TEXT}");
        };
        match parsed {
            Ok(_) => answer(0, "Configuration seems sane."),
            Err(e) => answer(1, format!("Configuration is not valid: {e}")),
        }
    }

    /// A lease in Kea's shape.
    fn lease_json(&self, l: &Lease) -> Value {
        dhcp_xdp_core::migrate::lease_json(l, &self.shared.runtime().cfg)
    }

    /// Leases as Kea lists them: bindings and probations (expired and released records are
    /// only remembered for affinity here, and offers are not leases yet).
    fn listed(l: &Lease) -> bool {
        matches!(l.state, LeaseState::Bound | LeaseState::Declined)
    }

    fn lease_get(&self, args: &Value) -> Value {
        let db = self.shared.runtime().db.clone();
        let found = if let Some(a) = args.get("ip-address").and_then(Value::as_str) {
            let Ok(addr) = a.parse::<Ipv4Addr>() else { return answer(1, format!("'{a}' is not an IPv4 address")) };
            db.lease_at(addr).map(|(_, l)| l).filter(Self::listed)
        } else {
            let (Some(kind), Some(id)) =
                (args.get("identifier-type").and_then(Value::as_str), args.get("identifier").and_then(Value::as_str))
            else {
                return answer(1, "lease4-get takes ip-address, or identifier-type, identifier and subnet-id");
            };
            let subnet = args.get("subnet-id").and_then(Value::as_u64);
            let matches = self.by_identifier(kind, id);
            match matches {
                Err(e) => return answer(1, e),
                Ok(v) => v.into_iter().find(|l| subnet.is_none_or(|s| u64::from(l.subnet) == s)),
            }
        };
        match found {
            Some(l) => with_args(0, "IPv4 lease found.", self.lease_json(&l)),
            None => answer(3, "Lease not found."),
        }
    }

    fn by_identifier(&self, kind: &str, id: &str) -> Result<Vec<Lease>, String> {
        let db = self.shared.runtime().db.clone();
        match kind {
            "hw-address" => {
                let mac = parse_mac(id).ok_or_else(|| format!("'{id}' is not a hardware address"))?;
                Ok(db.leases_where(|l| Self::listed(l) && l.chaddr == mac))
            }
            "client-id" => {
                let cid = dhcp_xdp_core::config::parse_hex(id).ok_or_else(|| format!("'{id}' is not a client id"))?;
                let key = ClientKey::client_id(&cid, 0);
                Ok(db.leases_where(|l| Self::listed(l) && l.key.same_client(&key)))
            }
            other => Err(format!("identifier-type '{other}' not supported (hw-address, client-id)")),
        }
    }

    fn lease_list(&self, mut leases: Vec<Lease>) -> Value {
        leases.sort_by_key(|l| u32::from(l.addr));
        if leases.is_empty() {
            return with_args(3, "0 IPv4 lease(s) found.", json!({ "leases": [] }));
        }
        let n = leases.len();
        with_args(
            0,
            format!("{n} IPv4 lease(s) found."),
            json!({ "leases": leases.iter().map(|l| self.lease_json(l)).collect::<Vec<_>>() }),
        )
    }

    fn lease_get_all(&self, args: &Value) -> Value {
        self.lease_list(self.all_leases(args))
    }

    /// The leases `lease4-get-all` lists (of `subnets`, when given).
    fn all_leases(&self, args: &Value) -> Vec<Lease> {
        let subnets: Option<Vec<u64>> =
            args.get("subnets").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_u64).collect());
        let db = self.shared.runtime().db.clone();
        let mut leases =
            db.leases_where(|l| Self::listed(l) && subnets.as_ref().is_none_or(|s| s.contains(&u64::from(l.subnet))));
        leases.sort_by_key(|l| u32::from(l.addr));
        leases
    }

    fn lease_get_page(&self, args: &Value) -> Value {
        let from = match args.get("from").and_then(Value::as_str) {
            Some("start") => 0u32,
            Some(a) => match a.parse::<Ipv4Addr>() {
                Ok(ip) => u32::from(ip).saturating_add(1),
                Err(_) => return answer(1, format!("'{a}' is neither \"start\" nor an IPv4 address")),
            },
            None => return answer(1, "lease4-get-page takes from (\"start\" or the last address) and limit"),
        };
        let Some(limit) = args.get("limit").and_then(Value::as_u64).filter(|&l| l > 0) else {
            return answer(1, "lease4-get-page takes a limit of at least 1");
        };
        let db = self.shared.runtime().db.clone();
        let mut leases = db.leases_where(|l| Self::listed(l) && u32::from(l.addr) >= from);
        leases.sort_by_key(|l| u32::from(l.addr));
        leases.truncate(limit as usize);
        if leases.is_empty() {
            return with_args(3, "0 IPv4 lease(s) found.", json!({ "count": 0, "leases": [] }));
        }
        let n = leases.len();
        with_args(
            0,
            format!("{n} IPv4 lease(s) found."),
            json!({ "count": n, "leases": leases.iter().map(|l| self.lease_json(l)).collect::<Vec<_>>() }),
        )
    }

    fn lease_get_by(&self, args: &Value, kind: &str) -> Value {
        let Some(id) = args.get(kind).and_then(Value::as_str) else { return answer(1, format!("{kind} is missing")) };
        match self.by_identifier(kind, id) {
            Ok(v) => self.lease_list(v),
            Err(e) => answer(1, e),
        }
    }

    /// Journals `changes` and waits until they are durable (as an ACK would).
    fn make_durable(&self, changes: &[(u64, Change)]) -> Result<(), String> {
        let j = &self.shared.store;
        if changes.is_empty() {
            return Ok(());
        }
        match j.append(0, changes) {
            Ok(None) => Ok(()),
            Ok(Some(ticket)) => {
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    match j.settled(0, ticket) {
                        Some(true) => return Ok(()),
                        Some(false) => return Err(format!("the {} could not be written", j.name())),
                        None if Instant::now() > deadline => {
                            return Err(format!("the {} did not sync in 5 s", j.name()));
                        }
                        None => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn lease_put(&self, args: &Value, replace: bool) -> Value {
        let rt = self.shared.runtime();
        let Some(addr) = args.get("ip-address").and_then(Value::as_str).and_then(|a| a.parse::<Ipv4Addr>().ok()) else {
            return answer(1, "ip-address is missing or not an IPv4 address");
        };
        let Some(mac) = args.get("hw-address").and_then(Value::as_str).and_then(parse_mac) else {
            return answer(1, "hw-address is missing or not a hardware address");
        };
        let subnet = match args.get("subnet-id").and_then(Value::as_u64).filter(|&s| s != 0) {
            Some(s) => rt.cfg.subnet_index(s as u32),
            None => rt.cfg.subnet_of(addr),
        };
        let Some(si) = subnet.filter(|&i| rt.cfg.subnets[i].contains(addr)) else {
            return answer(1, format!("no subnet holds {addr}"));
        };
        let s = &rt.cfg.subnets[si];
        let key = match args.get("client-id").and_then(Value::as_str) {
            Some(c) => match dhcp_xdp_core::config::parse_hex(c) {
                Some(b) => ClientKey::client_id(&b, s.lease_scope),
                None => return answer(1, format!("'{c}' is not a client id")),
            },
            None => ClientKey::hw(1, &mac, s.lease_scope),
        };
        let now = unix_now();
        // Seconds that do not fit the lease record are refused, never cut to something else.
        let seconds =
            |name: &str| -> Result<Option<u32>, Value> {
                match args.get(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => v.as_u64().and_then(|x| u32::try_from(x).ok()).map(Some).ok_or_else(|| {
                        answer(1, format!("{name} {v} is not a number of seconds from 0 to {}", u32::MAX))
                    }),
                }
            };
        let valid = match seconds("valid-lft") {
            Ok(v) => v.unwrap_or(s.lease_time),
            Err(e) => return e,
        };
        let expires = match seconds("expire") {
            Ok(e) => e.unwrap_or(now.saturating_add(valid)),
            Err(e) => return e,
        };
        let state = match args.get("state").and_then(Value::as_u64) {
            Some(1) => LeaseState::Declined,
            Some(2) => LeaseState::Expired,
            _ => LeaseState::Bound,
        };
        let lease = Lease { key, chaddr: mac, addr, expires, state, subnet: s.id, tags: Tags::default() };
        match rt.db.admin_put(lease, replace, now) {
            Ok(changes) => match self.make_durable(&changes) {
                Ok(()) if replace => answer(0, "IPv4 lease updated."),
                Ok(()) => answer(0, format!("Lease for address {addr}, subnet-id {} added.", s.id)),
                Err(e) => answer(1, e),
            },
            Err(LeaseError::Unavailable) => answer(1, format!("IPv4 lease for address {addr} already exists")),
            Err(LeaseError::NotHeld) => {
                answer(3, format!("failed to update the lease with address {addr}: no such lease"))
            }
            Err(e) => answer(1, e.to_string()),
        }
    }

    fn lease_del(&self, args: &Value) -> Value {
        let Some(addr) = args.get("ip-address").and_then(Value::as_str).and_then(|a| a.parse::<Ipv4Addr>().ok()) else {
            return answer(1, "ip-address is missing or not an IPv4 address");
        };
        let elsewhere = match self.shared.store.admin_removal(crate::store::AdminRemoval::Lease(addr)) {
            Ok(n) => n,
            Err(why) => return answer(1, why),
        };
        let db = self.shared.runtime().db.clone();
        match db.admin_remove(addr) {
            Ok(changes) => match self.make_durable(&changes) {
                Ok(()) => answer(0, "IPv4 lease deleted."),
                Err(e) => answer(1, e),
            },
            Err(_) if elsewhere > 0 => answer(0, "IPv4 lease deleted."),
            Err(_) => answer(3, "IPv4 lease not found."),
        }
    }

    fn lease_wipe(&self, args: &Value) -> Value {
        let subnet = args.get("subnet-id").and_then(Value::as_u64).filter(|&s| s != 0).map(|s| s as u32);
        let elsewhere = match self.shared.store.admin_removal(crate::store::AdminRemoval::Subnet(subnet)) {
            Ok(n) => n,
            Err(why) => return answer(1, why),
        };
        let db = self.shared.runtime().db.clone();
        let (changes, n) = db.admin_wipe(subnet);
        let n = n.max(elsewhere as usize);
        if let Err(e) = self.make_durable(&changes) {
            return answer(1, e);
        }
        let what = subnet.map(|s| s.to_string()).unwrap_or_else(|| "all".into());
        if n == 0 {
            return answer(3, format!("Deleted 0 IPv4 lease(s) from subnet(s) {what}"));
        }
        answer(0, format!("Deleted {n} IPv4 lease(s) from subnet(s) {what}"))
    }

    /// Every statistic, Kea's names, before the reset baseline is taken off.
    fn raw_statistics(&self) -> Vec<(String, u64)> {
        let snap = crate::statistics::Snapshot::take(&self.shared, &self.workers);
        let drops = |r: DropReason| snap.dropped(r);
        let mut out = vec![];
        out.push(("pkt4-received".to_owned(), snap.received_all));
        // Kea names the DHCP types; BOOTP requests count in pkt4-received only.
        for &(n, v) in snap.received.iter().filter(|(n, _)| *n != "bootp") {
            out.push((format!("pkt4-{n}-received"), v));
        }
        out.push(("pkt4-sent".to_owned(), snap.sent.iter().map(|(_, v)| v).sum::<u64>()));
        for &(n, v) in snap.sent.iter().filter(|(n, _)| *n != "bootp") {
            out.push((format!("pkt4-{n}-sent"), v));
        }
        out.push(("pkt4-parse-failed".to_owned(), drops(DropReason::Malformed)));
        let dropped: u64 = DropReason::ALL.iter().filter(|r| **r != DropReason::Consumed).map(|r| drops(*r)).sum();
        out.push(("pkt4-receive-drop".to_owned(), dropped));
        out.push(("v4-allocation-fail".to_owned(), drops(DropReason::NoAddress)));
        for s in subnet_census(&self.shared, unix_now()) {
            out.push((format!("subnet[{}].total-addresses", s.id), s.total));
            out.push((format!("subnet[{}].assigned-addresses", s.id), s.assigned));
            out.push((format!("subnet[{}].declined-addresses", s.id), s.declined));
            for (pi, p) in s.pools.iter().enumerate() {
                out.push((format!("subnet[{}].pool[{pi}].total-addresses", s.id), p.total));
                out.push((format!("subnet[{}].pool[{pi}].assigned-addresses", s.id), p.assigned));
                out.push((format!("subnet[{}].pool[{pi}].declined-addresses", s.id), p.declined));
            }
        }
        out
    }

    /// Statistics after the last reset (counters only: address counts are states, not
    /// counters, and are never reset).
    fn statistics(&self) -> Vec<(String, u64)> {
        let base = self.baseline.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.raw_statistics()
            .into_iter()
            .map(|(n, v)| {
                let b = if n.starts_with("pkt4-") || n.starts_with("v4-") {
                    base.iter().find(|(m, _)| *m == n).map(|(_, b)| *b).unwrap_or(0)
                } else {
                    0
                };
                (n, v.saturating_sub(b))
            })
            .collect()
    }

    fn statistic_get(&self, args: &Value) -> Value {
        let Some(name) = args.get("name").and_then(Value::as_str) else { return answer(1, "name is missing") };
        let ts = timestamp(SystemTime::now());
        match self.statistics().into_iter().find(|(n, _)| n == name) {
            Some((n, v)) => with_args(0, "", json!({ n: [[v, ts]] })),
            None => with_args(0, "", json!({})),
        }
    }

    fn statistic_get_all(&self) -> Value {
        let ts = timestamp(SystemTime::now());
        let mut m = serde_json::Map::new();
        for (n, v) in self.statistics() {
            m.insert(n, json!([[v, ts]]));
        }
        with_args(0, "", Value::Object(m))
    }
}

/// Addresses of one pool by state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolCensus {
    /// `first-last`.
    pub range: String,
    /// Addresses in the pool.
    pub total: u64,
    /// Bound now.
    pub assigned: u64,
    /// On probation now.
    pub declined: u64,
}

/// Addresses of one subnet's pools by state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetCensus {
    /// Subnet id.
    pub id: u32,
    /// `network/prefix`.
    pub prefix: String,
    /// Addresses in its pools.
    pub total: u64,
    /// Bound now.
    pub assigned: u64,
    /// On probation now.
    pub declined: u64,
    /// Per pool, in configuration order.
    pub pools: Vec<PoolCensus>,
}

/// Addresses per subnet and pool by state at `now` (one shard lock at a time).
pub fn subnet_census(shared: &Shared, now: u32) -> Vec<SubnetCensus> {
    let rt = shared.runtime();
    let leases = rt.db.leases_where(|l| l.holds(now) && matches!(l.state, LeaseState::Bound | LeaseState::Declined));
    let count = |f: &dyn Fn(&Lease) -> bool, state| leases.iter().filter(|l| l.state == state && f(l)).count() as u64;
    rt.cfg
        .subnets
        .iter()
        .map(|s| SubnetCensus {
            id: s.id,
            prefix: format!("{}/{}", s.net.addr, s.net.prefix),
            total: s.pools.iter().map(|p| u64::from(p.len())).sum(),
            assigned: count(&|l| l.subnet == s.id, LeaseState::Bound),
            declined: count(&|l| l.subnet == s.id, LeaseState::Declined),
            pools: s
                .pools
                .iter()
                .map(|p| PoolCensus {
                    range: format!("{}-{}", p.start, p.end),
                    total: u64::from(p.len()),
                    assigned: count(&|l| p.contains(l.addr), LeaseState::Bound),
                    declined: count(&|l| p.contains(l.addr), LeaseState::Declined),
                })
                .collect(),
        })
        .collect()
}

/// Sends `request` to the control socket at `path` and returns the answer (the client side of
/// the framing: one object written, the write side closed, one object read).
pub fn request(path: &Path, request: &Value) -> std::io::Result<Value> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(&serde_json::to_vec(request).map_err(std::io::Error::other)?)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut buf = vec![];
    s.read_to_end(&mut buf)?;
    serde_json::from_slice(&buf).map_err(std::io::Error::other)
}

/// A lease list answer as a table: address, hardware address, client id, state, expiry.
pub fn lease_table(answer: &Value) -> String {
    let mut out = format!("{:<16} {:<18} {:<24} {:<9} {}\n", "address", "hw-address", "client-id", "state", "expires");
    let leases = answer["arguments"]["leases"].as_array().cloned().unwrap_or_default();
    for l in &leases {
        let state = match l["state"].as_u64() {
            Some(0) => "bound",
            Some(1) => "declined",
            _ => "expired",
        };
        let expires = l["cltt"].as_u64().unwrap_or(0) + l["valid-lft"].as_u64().unwrap_or(0);
        out += &format!(
            "{:<16} {:<18} {:<24} {:<9} {}\n",
            l["ip-address"].as_str().unwrap_or("?"),
            l["hw-address"].as_str().unwrap_or(""),
            l["client-id"].as_str().unwrap_or("-"),
            state,
            timestamp(UNIX_EPOCH + Duration::from_secs(expires)).get(..19).unwrap_or("")
        );
    }
    out += &format!("{} leases\n", leases.len());
    out
}

/// A statistics answer as `name value` lines, sorted by name.
pub fn stats_table(answer: &Value) -> String {
    let mut rows: Vec<(String, u64)> = answer["arguments"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v[0][0].as_u64().unwrap_or(0))).collect())
        .unwrap_or_default();
    rows.sort();
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter().map(|(k, v)| format!("{k:<width$} {v}\n")).collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use dhcp_xdp_core::{config::Config, engine::ServerIdentity, leases::LeaseDb, net::Ipv4Net};

    use super::*;
    use crate::serve::Runtime;

    pub(super) fn control() -> (Arc<Control>, mpsc::Receiver<ActionRequest>) {
        let cfg = Config::parse(
            "t",
            "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.10-198.18.0.20\"\n\
             [[subnet]]\nsubnet = \"198.18.1.0/24\"\nid = 7\n[[subnet.pool]]\nrange = \"198.18.1.10-198.18.1.20\"\n",
        )
        .unwrap();
        let db = Arc::new(LeaseDb::new(&cfg, 2, [], 100));
        let server =
            ServerIdentity { mac: [0; 6], addrs: vec![Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 1), prefix: 24 }] };
        let shared = Arc::new(Shared::new(
            Runtime { cfg: Arc::new(cfg), db },
            server,
            &[0],
            Arc::new(crate::store::Memory::default()),
        ));
        let (tx, rx) = mpsc::channel();
        (Arc::new(Control::new(shared, vec![], tx)), rx)
    }

    /// A fresh channel for trying every command (some change state).
    fn c_for_table() -> Arc<Control> {
        control().0
    }

    pub(super) fn call(c: &Control, command: &str, args: Value) -> Value {
        c.dispatch(&json!({ "command": command, "arguments": args }))
    }

    /// Seconds that do not fit a lease record are refused, not cut.
    #[test]
    fn lease_times_that_do_not_fit_are_refused() {
        let (c, _) = control();
        for (field, v) in
            [("valid-lft", json!(1u64 << 32)), ("expire", json!(5_000_000_000u64)), ("valid-lft", json!(-1))]
        {
            let a = call(
                &c,
                "lease4-add",
                json!({ "ip-address": "198.18.0.15", "hw-address": "02:00:00:00:00:01", field: v }),
            );
            assert_eq!(a["result"], 1, "{field} {v}: {a}");
            assert!(a["text"].as_str().unwrap().contains(field), "{a}");
        }
        assert_eq!(call(&c, "lease4-get", json!({ "ip-address": "198.18.0.15" }))["result"], 3, "nothing added");
    }

    #[test]
    fn leases_are_added_found_paged_updated_deleted_and_wiped() {
        let (c, _) = control();
        let add = call(&c, "lease4-add", json!({ "ip-address": "198.18.0.15", "hw-address": "02:00:00:00:00:01" }));
        assert_eq!(add["result"], 0, "{add}");
        assert_eq!(add["text"], "Lease for address 198.18.0.15, subnet-id 1 added.");
        let again = call(&c, "lease4-add", json!({ "ip-address": "198.18.0.15", "hw-address": "02:00:00:00:00:02" }));
        assert_eq!(again["result"], 1, "an address in use is refused: {again}");
        let got = call(&c, "lease4-get", json!({ "ip-address": "198.18.0.15" }));
        assert_eq!((got["result"].clone(), got["text"].clone()), (json!(0), json!("IPv4 lease found.")));
        assert_eq!(got["arguments"]["hw-address"], "02:00:00:00:00:01");
        assert_eq!(got["arguments"]["subnet-id"], 1);
        let by_id = call(
            &c,
            "lease4-get",
            json!({ "identifier-type": "hw-address", "identifier": "02:00:00:00:00:01", "subnet-id": 1 }),
        );
        assert_eq!(by_id["arguments"]["ip-address"], "198.18.0.15");
        assert_eq!(call(&c, "lease4-get", json!({ "ip-address": "198.18.0.16" }))["result"], 3);
        for i in 0..4u8 {
            let a = call(
                &c,
                "lease4-add",
                json!({ "ip-address": format!("198.18.1.1{i}"), "hw-address": format!("02:00:00:00:01:0{i}"), "client-id": format!("ff:0{i}") }),
            );
            assert_eq!(a["result"], 0, "{a}");
        }
        assert_eq!(call(&c, "lease4-get-all", json!({}))["arguments"]["leases"].as_array().unwrap().len(), 5);
        assert_eq!(
            call(&c, "lease4-get-all", json!({ "subnets": [7] }))["arguments"]["leases"].as_array().unwrap().len(),
            4
        );
        let p1 = call(&c, "lease4-get-page", json!({ "from": "start", "limit": 3 }));
        assert_eq!(p1["arguments"]["count"], 3);
        let last = p1["arguments"]["leases"][2]["ip-address"].as_str().unwrap().to_owned();
        let p2 = call(&c, "lease4-get-page", json!({ "from": last, "limit": 3 }));
        assert_eq!(p2["arguments"]["count"], 2, "{p2}");
        let p3 = call(&c, "lease4-get-page", json!({ "from": "198.18.1.13", "limit": 3 }));
        assert_eq!(p3["result"], 3, "the end: {p3}");
        let cid = call(&c, "lease4-get-by-client-id", json!({ "client-id": "ff:02" }));
        assert_eq!(cid["arguments"]["leases"][0]["ip-address"], "198.18.1.12");
        let hw = call(&c, "lease4-get-by-hw-address", json!({ "hw-address": "02:00:00:00:01:03" }));
        assert_eq!(hw["arguments"]["leases"][0]["client-id"], "ff:03");
        let upd = call(
            &c,
            "lease4-update",
            json!({ "ip-address": "198.18.0.15", "hw-address": "02:00:00:00:00:09", "valid-lft": 600 }),
        );
        assert_eq!(upd["result"], 0, "{upd}");
        assert_eq!(
            call(&c, "lease4-get", json!({ "ip-address": "198.18.0.15" }))["arguments"]["hw-address"],
            "02:00:00:00:00:09"
        );
        assert_eq!(
            call(&c, "lease4-update", json!({ "ip-address": "198.18.0.19", "hw-address": "02:00:00:00:00:09" }))["result"],
            3
        );
        assert_eq!(call(&c, "lease4-del", json!({ "ip-address": "198.18.0.15" }))["text"], "IPv4 lease deleted.");
        assert_eq!(call(&c, "lease4-del", json!({ "ip-address": "198.18.0.15" }))["result"], 3);
        let wipe = call(&c, "lease4-wipe", json!({ "subnet-id": 7 }));
        assert_eq!(wipe["text"], "Deleted 4 IPv4 lease(s) from subnet(s) 7", "{wipe}");
        assert_eq!(call(&c, "lease4-get-all", json!({}))["result"], 3);
    }

    #[test]
    fn statistics_carry_keas_names_and_reset() {
        let (c, _) = control();
        call(&c, "lease4-add", json!({ "ip-address": "198.18.0.11", "hw-address": "02:00:00:00:00:01" }));
        let all = call(&c, "statistic-get-all", json!({}));
        assert_eq!(all["result"], 0);
        for name in [
            "pkt4-received",
            "pkt4-discover-received",
            "pkt4-ack-sent",
            "pkt4-receive-drop",
            "subnet[1].total-addresses",
            "subnet[7].pool[0].assigned-addresses",
        ] {
            assert!(all["arguments"][name][0][1].as_str().is_some_and(|t| t.len() == 26), "{name}: {all}");
        }
        assert_eq!(all["arguments"]["subnet[1].total-addresses"][0][0], 11);
        assert_eq!(all["arguments"]["subnet[1].assigned-addresses"][0][0], 1);
        let one = call(&c, "statistic-get", json!({ "name": "subnet[1].assigned-addresses" }));
        assert_eq!(one["arguments"]["subnet[1].assigned-addresses"][0][0], 1);
        assert_eq!(call(&c, "statistic-reset-all", json!({}))["result"], 0);
        assert_eq!(timestamp(UNIX_EPOCH + Duration::from_secs(1_796_156_859)), "2026-12-01 20:27:39.000000");
    }

    #[test]
    fn unknown_commands_and_bad_requests_get_keas_result_codes() {
        let (c, actions) = control();
        assert_eq!(call(&c, "dhcp-disable", json!({}))["result"], 2);
        assert_eq!(c.dispatch(&json!({ "arguments": {} }))["result"], 1);
        assert_eq!(
            call(&c, "lease4-add", json!({ "ip-address": "10.0.0.1", "hw-address": "02:00:00:00:00:01" }))["result"],
            1
        );
        let list = call(&c, "list-commands", json!({}));
        assert!(list["arguments"].as_array().unwrap().iter().any(|v| v == "lease4-get-page"));
        // The table is the list: sorted, each name once, and none of them "not supported".
        let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        assert_eq!(list["arguments"], json!(names));
        assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted, no name twice: {names:?}");
        for c in COMMANDS.iter().filter(|c| matches!(c.handler, Handler::Here(_))) {
            let r = call(&c_for_table(), c.name, json!({}));
            assert_ne!(r["result"], 2, "{}: {r}", c.name);
        }
        assert_eq!(call(&c, "leases-reclaim", json!({}))["result"], 2);
        assert_eq!(call(&c, "config-test", json!({ "toml": "[[subnet]]\nsubnet = \"198.18.9.0/24\"\n" }))["result"], 0);
        assert_eq!(call(&c, "config-test", json!({ "toml": "[[subnet]]\nsubnet = \"nonsense\"\n" }))["result"], 1);
        // config-reload goes to the control loop and comes back with its answer.
        let c2 = c.clone();
        let t = std::thread::spawn(move || call(&c2, "config-reload", json!({})));
        let (a, reply) = actions.recv_timeout(Duration::from_secs(5)).expect("action");
        assert_eq!(a, Action::Reload);
        reply.send(answer(0, "Configuration successful.")).unwrap();
        assert_eq!(t.join().unwrap()["text"], "Configuration successful.");
    }
}

#[cfg(test)]
mod socket_tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dhcp-xdp-control-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn ask(path: &Path, request: &[u8]) -> Value {
        let mut s = UnixStream::connect(path).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(request).expect("write");
        let mut out = vec![];
        s.read_to_end(&mut out).expect("read");
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
    }

    /// The socket is 0600 when it appears; clients that send nothing or trickle bytes do not
    /// keep another out, and are cut at the request deadline; an oversized request is refused;
    /// a large `lease4-get-all` is streamed and reads as the same answer.
    #[test]
    fn the_control_socket_cannot_be_starved_or_flooded() {
        let d = dir("starve");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("control.sock");
        let listener = Control::bind(&path).expect("bind");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1, "nothing left beside the socket");
        let (c, _rx) = super::tests::control();
        c.clone().serve(listener, &path).expect("serve");
        // Silent clients, up to the limit but one.
        let silent: Vec<UnixStream> =
            (0..MAX_CONNECTIONS - 1).map(|_| UnixStream::connect(&path).expect("connect")).collect();
        let t = Instant::now();
        let v = ask(&path, br#"{"command": "version-get"}"#);
        assert_eq!(v["result"], 0, "{v}");
        assert!(t.elapsed() < Duration::from_secs(2), "answered while others were silent: {:?}", t.elapsed());
        // Past the limit: told so at once.
        let extra = UnixStream::connect(&path).expect("connect");
        let busy = ask(&path, br#"{"command": "version-get"}"#);
        assert_eq!(busy["result"], 1, "{busy}");
        assert!(busy["text"].as_str().unwrap().contains("busy"), "{busy}");
        drop(extra);
        // The silent ones are cut at the deadline.
        let mut one = silent.into_iter().next().unwrap();
        one.set_read_timeout(Some(REQUEST_DEADLINE + Duration::from_secs(5))).unwrap();
        let mut out = vec![];
        one.read_to_end(&mut out).expect("cut");
        let cut: Value = serde_json::from_slice(&out).expect("an answer");
        assert!(cut["text"].as_str().unwrap().contains("not complete"), "{cut}");
        // Oversized.
        let mut big = br#"{"command": "version-get", "arguments": {"x": ""#.to_vec();
        big.resize(MAX_REQUEST + 10, b'a');
        let mut s = UnixStream::connect(&path).expect("connect");
        let _ = s.write_all(&big);
        let mut out = vec![];
        let _ = s.read_to_end(&mut out);
        let refused: Value = serde_json::from_slice(&out).expect("an answer");
        assert!(refused["text"].as_str().unwrap().contains("request over"), "{refused}");
        // Streamed lease list.
        for i in 0..10u8 {
            let a = super::tests::call(
                &c,
                "lease4-add",
                json!({ "ip-address": format!("198.18.0.1{i}"), "hw-address": format!("02:00:00:00:00:1{i}") }),
            );
            assert_eq!(a["result"], 0, "{a}");
        }
        let streamed = ask(&path, br#"{"command": "lease4-get-all"}"#);
        let built = super::tests::call(&c, "lease4-get-all", json!({}));
        assert_eq!(streamed, built);
        assert_eq!(streamed["arguments"]["leases"].as_array().unwrap().len(), 10);
        let _ = std::fs::remove_dir_all(&d);
    }
}
