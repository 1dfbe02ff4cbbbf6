//! Prometheus metrics at `/metrics` (`--metrics ADDR:PORT`, `[metrics] listen`), in the text
//! exposition format written by the `prometheus-client` crate. Values are read at scrape time
//! from the counters the datapath, the engine, the XDP program and the journal already keep:
//! serving pays nothing for it. It must never take a shard lock longer than a census of one
//! shard, nor answer anything but `GET /metrics`.

use std::{
    net::{SocketAddr, TcpListener},
    sync::{Arc, Mutex, atomic::Ordering},
};

use dhcp_xdp_common::counter;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

use crate::{clock::unix_now, control::subnet_census, datapath::WorkerStats, handler::FrameMeta, serve::Shared};

/// The XDP program's verdict counters as the control loop last read them.
pub type XdpSnapshot = Arc<Mutex<[u64; counter::COUNT as usize]>>;

/// Reads everything at scrape time.
struct Collect {
    shared: Arc<Shared>,
    workers: Vec<(FrameMeta, Arc<WorkerStats>)>,
    xdp: XdpSnapshot,
}

impl std::fmt::Debug for Collect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Collect({} workers)", self.workers.len())
    }
}

pub(crate) type Labels = Vec<(&'static str, String)>;

pub(crate) fn counter_family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

pub(crate) fn gauge_family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Collect {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = crate::statistics::Snapshot::take(&self.shared, &self.workers);
        // DHCPv6 messages by type, from the engine's `pkt6-<type>-received` / `-sent` counters.
        let v6 = |suffix: &'static str| {
            snap.messages6.iter().filter_map(move |(n, v)| {
                let t = n.strip_prefix("pkt6-")?.strip_suffix(suffix)?;
                (t != "relayed").then(|| (vec![("family", "v6".to_owned()), ("type", t.to_owned())], *v))
            })
        };
        let v4 = |rows: &[(&'static str, u64)]| {
            rows.iter()
                .map(|(t, v)| (vec![("family", "v4".to_owned()), ("type", (*t).to_owned())], *v))
                .collect::<Vec<_>>()
        };
        counter_family(
            &mut enc,
            "dhcp_xdp_packets_received",
            "DHCP messages received, by family (v4, v6) and type",
            v4(&snap.received).into_iter().chain(v6("-received")),
        )?;
        counter_family(
            &mut enc,
            "dhcp_xdp_packets_sent",
            "DHCP messages sent, by family (v4, v6) and type",
            v4(&snap.sent).into_iter().chain(v6("-sent")),
        )?;
        counter_family(
            &mut enc,
            "dhcp_xdp_drops",
            "Frames that got no reply, by reason",
            snap.drops.iter().map(|(r, v)| (vec![("reason", r.name().trim_start_matches("drop_").to_owned())], *v)),
        )?;
        let xdp = *self.xdp.lock().unwrap_or_else(|p| p.into_inner());
        counter_family(
            &mut enc,
            "dhcp_xdp_xdp_verdicts",
            "The XDP program's verdicts",
            counter::NAMES.iter().zip(xdp).map(|(n, v)| (vec![("verdict", (*n).to_owned())], v)),
        )?;
        let polls = |f: fn(&WorkerStats) -> u64| {
            self.workers
                .iter()
                .map(move |(m, w)| (vec![("queue", m.queue.to_string()), ("worker", m.worker.to_string())], f(w)))
        };
        counter_family(
            &mut enc,
            "dhcp_xdp_worker_polls",
            "Worker loop iterations",
            polls(|w| w.polls.load(Ordering::Relaxed)),
        )?;
        counter_family(
            &mut enc,
            "dhcp_xdp_worker_idle_polls",
            "Worker loop iterations that found no frame",
            polls(|w| w.rx_empty_polls.load(Ordering::Relaxed)),
        )?;
        gauge_family(
            &mut enc,
            "dhcp_xdp_worker_busy_ratio",
            "Share of a worker's loop iterations since start that found frames",
            self.workers.iter().map(|(m, w)| {
                let (all, idle) = (w.polls.load(Ordering::Relaxed), w.rx_empty_polls.load(Ordering::Relaxed));
                let ratio = if all == 0 { 0.0 } else { 1.0 - idle.min(all) as f64 / all as f64 };
                (vec![("queue", m.queue.to_string()), ("worker", m.worker.to_string())], ratio)
            }),
        )?;
        let census = subnet_census(&self.shared, unix_now());
        let mut rows = vec![];
        for s in &census {
            for (state, v) in [("total", s.total), ("assigned", s.assigned), ("declined", s.declined)] {
                rows.push((
                    vec![("subnet_id", s.id.to_string()), ("prefix", s.prefix.clone()), ("state", state.to_owned())],
                    v as f64,
                ));
            }
        }
        gauge_family(&mut enc, "dhcp_xdp_subnet_addresses", "Addresses of a subnet's pools, by state", rows)?;
        let rt = self.shared.runtime();
        let census6 = rt.table6().census(&rt.cfg, unix_now());
        let mut rows = vec![];
        for c in &census6 {
            let Some(s) = rt.cfg.subnets6.iter().find(|s| s.id == c.subnet) else { continue };
            let kind = if c.kind == dhcp_xdp_core::dhcp6::IaKind::Na { "IA_NA" } else { "IA_PD" };
            for (state, v) in [("total", c.total), ("assigned", c.assigned), ("declined", c.declined)] {
                rows.push((
                    vec![
                        ("subnet_id", c.subnet.to_string()),
                        ("prefix", format!("{}/{}", s.prefix, s.prefix_len)),
                        ("type", kind.to_owned()),
                        ("state", state.to_owned()),
                    ],
                    v as f64,
                ));
            }
        }
        gauge_family(
            &mut enc,
            "dhcp_xdp_subnet6_leases",
            "DHCPv6: addresses (IA_NA) and delegated prefixes (IA_PD) of a subnet's pools, by state",
            rows,
        )?;
        let mut rows = vec![];
        for s in &census {
            for (i, p) in s.pools.iter().enumerate() {
                for (state, v) in [("total", p.total), ("assigned", p.assigned), ("declined", p.declined)] {
                    rows.push((
                        vec![
                            ("subnet_id", s.id.to_string()),
                            ("prefix", s.prefix.clone()),
                            ("pool", i.to_string()),
                            ("range", p.range.clone()),
                            ("state", state.to_owned()),
                        ],
                        v as f64,
                    ));
                }
            }
        }
        gauge_family(&mut enc, "dhcp_xdp_pool_addresses", "Addresses of a pool, by state", rows)?;
        gauge_family(
            &mut enc,
            "dhcp_xdp_store_lag_seconds",
            "Age of the lease store's oldest change not yet durable",
            [(vec![], self.shared.store.lag().as_secs_f64())],
        )?;
        gauge_family(
            &mut enc,
            "dhcp_xdp_shedding",
            "1 while new clients' DISCOVERs are shed in XDP (the lease store is behind)",
            [(vec![], f64::from(u8::from(self.shared.shedding.load(Ordering::Relaxed))))],
        )?;
        gauge_family(
            &mut enc,
            "dhcp_xdp_discovers_admitted_ratio",
            "Share of new clients' DISCOVERs (and SOLICITs) let through XDP: 1, less while shedding",
            [(vec![], self.shared.admitted_share())],
        )?;
        if let Some(f) = self.shared.forensic.get() {
            gauge_family(
                &mut enc,
                "dhcp_xdp_forensic_log_failing",
                "1 while the forensic lease log cannot be written (a full or failing disk); leases go on",
                [(vec![], f64::from(u8::from(f.failing.load(Ordering::Relaxed))))],
            )?;
            crate::metrics::counter_family(
                &mut enc,
                "dhcp_xdp_forensic_log_lines",
                "Lease events written to the forensic log",
                [(vec![], f.written.load(Ordering::Relaxed))],
            )?;
            crate::metrics::counter_family(
                &mut enc,
                "dhcp_xdp_forensic_log_lost",
                "Lease events not written (queue full, or the file could not be written)",
                [(vec![], f.lost.load(Ordering::Relaxed))],
            )?;
        }
        self.shared.store.encode_metrics(&mut enc)?;
        Ok(())
    }
}

/// The registry served at `/metrics`.
pub fn registry(shared: Arc<Shared>, workers: Vec<(FrameMeta, Arc<WorkerStats>)>, xdp: XdpSnapshot) -> Registry {
    let mut r = Registry::default();
    shared.store.register_metrics(&mut r);
    r.register_collector(Box::new(Collect { shared, workers, xdp }));
    r
}

/// Binds the metrics listener (before the capabilities are dropped: a low port needs one).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Serves `GET /metrics` on `listener` from a thread of its own, within the management
/// ports' limits ([`crate::http`]).
pub fn serve(listener: TcpListener, registry: Registry) -> std::io::Result<std::thread::JoinHandle<()>> {
    let registry = Arc::new(registry);
    let handler: crate::http::Handler = Arc::new(move |req: crate::http::Req| {
        use crate::http::Answer;
        use hyper::StatusCode;
        if req.method != hyper::Method::GET || req.path.split('?').next() != Some("/metrics") {
            return Answer::text(StatusCode::NOT_FOUND, "only GET /metrics is served here\n");
        }
        let mut body = String::new();
        match prometheus_client::encoding::text::encode(&mut body, &registry) {
            Ok(()) => Answer {
                status: StatusCode::OK,
                content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body: body.into_bytes(),
            },
            Err(e) => Answer::text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        }
    });
    let limits = crate::http::Limits { body: 0, ..Default::default() };
    crate::http::serve("metrics", listener, limits, handler)
}
