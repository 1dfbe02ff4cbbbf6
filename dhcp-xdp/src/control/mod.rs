//! The management channel, in Kea's shapes: the client writes one JSON object `{"command",
//! "arguments"}`, the server answers one `{"result", "text", "arguments"}` (result 0 success,
//! 1 error, 2 unsupported, 3 empty). Kea's own `kea-ctrl-agent` (and through it `kea-shell`,
//! Stork, IPAM controllers) can therefore manage this daemon.
//!
//! - this module: [`COMMANDS`], the one table of commands (name → handler, or the control
//!   loop's action): adding a command is adding a row; and the server's own commands.
//! - `transport`: the unix socket, its limits and framing, and the client side ([`request`]).
//! - `lease4`: the `lease4-*` commands (Kea's lease object is the core's
//!   [`dhcp_xdp_core::migrate::lease_json`]).
//! - `lease6`: the `lease6-*` commands (Kea's lease6 object; edits durable before the answer).
//! - `stats`: the `statistic-*` commands and the address census.
//! - `tables`: answers printed as tables by `dhcp-xdp ctl`.
//!
//! Commands run on the channel's threads and take a shard lock only briefly, one at a time;
//! lease edits are durable in the lease store before the answer, like ACKs. It must never hold
//! a lock across a worker's batch, nor answer success for an edit the store did not make
//! durable.

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

use crate::{clock::unix_now, datapath::WorkerStats, handler::FrameMeta, serve::Shared};

/// Commands that only the control loop may carry out (it owns the XDP program and the stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `config-reload`: reload the configuration file, as SIGHUP does.
    Reload,
    /// `shutdown`: stop cleanly, as SIGTERM does.
    Shutdown,
    /// `counters-get`: everything the daemon counts (the statistics lines' report), with the
    /// XDP program's verdicts read now.
    Counters,
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
    here("config-write", Control::config_write),
    Command { name: "counters-get", handler: Handler::ControlLoop(Action::Counters) },
    here("lease4-add", |c, a| c.lease_put(a, false)),
    here("lease4-del", Control::lease_del),
    here("lease4-get", Control::lease_get),
    here("lease4-get-all", Control::lease_get_all),
    here("lease4-get-by-client-id", |c, a| c.lease_get_by(a, "client-id")),
    here("lease4-get-by-hw-address", |c, a| c.lease_get_by(a, "hw-address")),
    here("lease4-get-page", Control::lease_get_page),
    here("lease4-update", |c, a| c.lease_put(a, true)),
    here("lease4-wipe", Control::lease_wipe),
    here("lease6-add", |c, a| c.lease6_put(a, false)),
    here("lease6-del", Control::lease6_del),
    here("lease6-get", Control::lease6_get),
    here("lease6-get-all", Control::lease6_get_all),
    here("lease6-get-by-duid", Control::lease6_get_by_duid),
    here("lease6-update", |c, a| c.lease6_put(a, true)),
    here("lease6-wipe", Control::lease6_wipe),
    here("list-commands", |_, _| {
        let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        with_args(0, format!("{} commands", names.len()), json!(names))
    }),
    here("reservation-add", Control::reservation_add),
    here("reservation-del", Control::reservation_del),
    here("reservation-get", Control::reservation_get),
    here("reservation-get-all", Control::reservation_get_all),
    here("reservation-get-page", Control::reservation_get_page),
    Command { name: "shutdown", handler: Handler::ControlLoop(Action::Shutdown) },
    here("statistic-get", Control::statistic_get),
    here("statistic-get-all", |c, _| c.statistic_get_all()),
    here("statistic-reset-all", |c, _| {
        *c.baseline.lock().unwrap_or_else(|p| p.into_inner()) = c.raw_statistics();
        answer(0, "All statistics reset to neutral values.")
    }),
    here("status-get", |c, _| c.status_get()),
    here("subnet4-get", Control::subnet4_get),
    here("subnet4-list", |c, _| c.subnet4_list()),
    here("version-get", |_, _| {
        with_args(
            0,
            format!("dhcp-xdp {}", env!("CARGO_PKG_VERSION")),
            json!({ "extended": format!("dhcp-xdp {} (AF_XDP DHCPv4 and DHCPv6 server, Kea control channel)", env!("CARGO_PKG_VERSION")) }),
        )
    }),
];

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
                "dhcp-xdp": self.facts(),
            }),
        )
    }

    /// What the start found, the lease store's status and the last reload's outcome.
    fn facts(&self) -> Value {
        let f = self.shared.facts.get().cloned().unwrap_or_default();
        json!({
            "xdp-mode": f.xdp_mode,
            "af-xdp": f.af_xdp,
            "handler": f.handler,
            "vlan": f.vlan,
            "store": Value::Object(self.shared.store.status()),
            "recovered-leases": f.recovered_leases,
            "recovered": f.recovered,
            "last-reload": self.shared.reloads.last.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        })
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
        let mut args = json!({ "Dhcp4": { "subnet4": subnets, "valid-lifetime": cfg.subnets.first().map(|s| s.lease_time) }, "dhcp-xdp": { "source": cfg.source, "described": cfg.describe() } });
        if !cfg.subnets6.is_empty() {
            args["Dhcp6"] = self.dhcp6_config(&cfg);
        }
        with_args(0, "", args)
    }

    /// The `Dhcp6` object of `config-get`, in Kea's names: subnets, pools, pd-pools,
    /// reservations, and the server DUID.
    fn dhcp6_config(&self, cfg: &Config) -> Value {
        let hex = dhcp_xdp_core::net::colon_hex;
        let subnets: Vec<Value> = cfg
            .subnets6
            .iter()
            .map(|s| {
                let range = |p: &dhcp_xdp_core::leases::prefix::PrefixRange| {
                    let (a, b) = (p.nth(0), p.nth(p.count().saturating_sub(1)));
                    format!("{} - {}", a.map(|a| a.to_string()).unwrap_or_default(), b.map(|b| b.to_string()).unwrap_or_default())
                };
                let pd = |p: &dhcp_xdp_core::leases::prefix::PrefixRange| {
                    let bits = p.count().trailing_zeros() as u8;
                    json!({ "prefix": p.nth(0).map(|a| a.to_string()), "prefix-len": p.delegated_len() - bits, "delegated-len": p.delegated_len() })
                };
                json!({
                    "id": s.id,
                    "subnet": format!("{}/{}", s.prefix, s.prefix_len),
                    "interface-id": s.interface_id.as_deref().map(hex),
                    "valid-lifetime": s.valid, "preferred-lifetime": s.preferred,
                    "renew-timer": s.t1, "rebind-timer": s.t2, "rapid-commit": s.rapid_commit,
                    "pools": s.pools.iter().map(|p| json!({ "pool": range(p) })).collect::<Vec<_>>(),
                    "pd-pools": s.pd_pools.iter().map(pd).collect::<Vec<_>>(),
                    "reservations": s.reservations.iter().map(|r| json!({
                        "ip-addresses": r.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "prefixes": r.prefixes.iter().map(|(p, l)| format!("{p}/{l}")).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "subnet6": subnets, "server-id": hex(&self.shared.server6.duid) })
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
}

mod hosts;
pub mod http;
mod lease4;
mod lease6;
mod stats;
mod tables;
mod transport;

pub use stats::{PoolCensus, SubnetCensus, subnet_census};
pub use tables::{lease_table, stats_table};
pub use transport::{MAX_CONNECTIONS, MAX_REQUEST, REQUEST_DEADLINE, WRITE_DEADLINE, request};

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use dhcp_xdp_core::{config::Config, engine4::ServerIdentity, leases::LeaseDb, net::Ipv4Net};

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
            Runtime::new(Arc::new(cfg), db),
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
