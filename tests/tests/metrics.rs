//! Prometheus metrics at /metrics, parsed by the official Python client's OpenMetrics parser
//! (Debian python3-prometheus-client): message counters, drops, XDP verdicts, addresses by
//! state per subnet and pool, the journal's sync latency histogram, workers' busy ratio.

use std::{collections::HashMap, time::Duration};

use nix::sys::signal::Signal;
use tests::{
    Daemon, Netns, TempDir, TwoHosts,
    frames::{Link, dora},
};

const PARSE: &str = r#"
import sys, urllib.request, urllib.error
from prometheus_client.openmetrics.parser import text_string_to_metric_families
url = sys.argv[1]
try:
    urllib.request.urlopen(url.replace("/metrics", "/other"))
    print("other-path 200")
except urllib.error.HTTPError as e:
    print("other-path", e.code)
text = urllib.request.urlopen(url).read().decode()
for family in text_string_to_metric_families(text):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}|{labels}|{s.value}")
"#;

/// Samples by `name|labels`, as the parser gives them.
fn scrape(ns: &Netns, url: &str) -> (HashMap<String, f64>, String) {
    let python = std::path::Path::new("/usr/bin/python3");
    assert!(python.is_file(), "/usr/bin/python3 missing: install the Debian package python3-prometheus-client");
    let out = ns.exec(python).arg("-c").arg(PARSE).arg(url).output().expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "the parser refused the metrics: {}{text}", String::from_utf8_lossy(&out.stderr));
    let mut m = HashMap::new();
    let mut other = String::new();
    for line in text.lines() {
        if let Some(code) = line.strip_prefix("other-path ") {
            other = code.to_owned();
            continue;
        }
        let mut p = line.rsplitn(2, '|');
        let (v, k) = (p.next().expect("value"), p.next().expect("key"));
        m.insert(k.to_owned(), v.parse().expect("number"));
    }
    (m, other)
}

#[test]
fn metrics_are_served_and_parse_with_a_real_prometheus_parser() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let cfg =
        dir.config("[[subnet]]\nsubnet = \"198.18.0.0/16\"\n[[subnet.pool]]\nrange = \"198.18.16.1-198.18.16.200\"\n");
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg, "--metrics", "198.18.255.1:9100"]);
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    assert!(dora(&mut link, mac, [2, 0xdd, 0, 0, 0, 1], 0x700, Duration::from_millis(500), 3).acked);
    // The XDP verdicts are read by the control loop once a second: scraped until they show.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (m, other) = loop {
        let (m, other) = scrape(&net.server, "http://198.18.255.1:9100/metrics");
        if m.get("dhcp_xdp_xdp_verdicts_total|verdict=redirected").is_some_and(|v| *v >= 2.0)
            || std::time::Instant::now() > deadline
        {
            break (m, other);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(other, "404", "only /metrics is served");
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("{k} missing from {:#?}", m.keys().collect::<Vec<_>>()));
    assert_eq!(get("dhcp_xdp_packets_received_total|family=v4,type=discover"), 1.0);
    assert_eq!(get("dhcp_xdp_packets_received_total|family=v4,type=request"), 1.0);
    assert_eq!(get("dhcp_xdp_packets_sent_total|family=v4,type=offer"), 1.0);
    assert_eq!(get("dhcp_xdp_packets_sent_total|family=v4,type=ack"), 1.0);
    assert!(get("dhcp_xdp_xdp_verdicts_total|verdict=redirected") >= 2.0);
    assert_eq!(get("dhcp_xdp_drops_total|reason=malformed"), 0.0);
    assert_eq!(get("dhcp_xdp_subnet_addresses|prefix=198.18.0.0/16,state=assigned,subnet_id=1"), 1.0);
    assert_eq!(get("dhcp_xdp_subnet_addresses|prefix=198.18.0.0/16,state=total,subnet_id=1"), 200.0);
    assert_eq!(
        get(
            "dhcp_xdp_pool_addresses|pool=0,prefix=198.18.0.0/16,range=198.18.16.1-198.18.16.200,state=assigned,subnet_id=1"
        ),
        1.0
    );
    assert!(get("dhcp_xdp_journal_sync_seconds_count|") >= 1.0, "the ACK's sync was observed");
    let busy = get("dhcp_xdp_worker_busy_ratio|queue=0,worker=0");
    assert!((0.0..=1.0).contains(&busy), "{busy}");
    daemon.signal_and_wait(Signal::SIGTERM);
}

/// The daemon's resident memory, from /proc.
fn rss_kib(pid: nix::unistd::Pid) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// The metrics port cannot be starved or flooded: a request line of 256 MiB without a newline
/// is cut off early (the daemon does not grow with it), and clients that hold connections open
/// without finishing a request do not keep a scrape out.
#[test]
fn the_metrics_port_cannot_be_starved_or_flooded() {
    use std::io::{Read as _, Write as _};
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("cfg");
    let cfg =
        dir.config("[[subnet]]\nsubnet = \"198.18.0.0/16\"\n[[subnet.pool]]\nrange = \"198.18.16.1-198.18.16.200\"\n");
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg, "--metrics", "198.18.255.1:9100"]);
    let before = rss_kib(daemon.pid());
    let (sent, rss_during) = net.server.enter({
        let pid = daemon.pid();
        move || {
            let mut s = std::net::TcpStream::connect("198.18.255.1:9100").expect("connect");
            s.set_write_timeout(Some(Duration::from_secs(10))).expect("timeout");
            let chunk = vec![b'a'; 1 << 20];
            let mut sent = 0usize;
            let _ = s.write_all(b"GET /");
            while sent < 256 << 20 {
                if s.write_all(&chunk).is_err() {
                    break;
                }
                sent += chunk.len();
            }
            (sent, rss_kib(pid))
        }
    });
    assert!(sent < 64 << 20, "the server read {} MiB of a request line", sent >> 20);
    assert!(rss_during < before + 16 * 1024, "the daemon grew from {before} KiB to {rss_during} KiB");
    // Slow clients: connected, half a request line, then silence.
    let stalled: Vec<std::net::TcpStream> = net.server.enter(|| {
        (0..8)
            .map(|_| {
                let mut s = std::net::TcpStream::connect("198.18.255.1:9100").expect("connect");
                s.write_all(b"GET /metr").expect("write");
                s
            })
            .collect()
    });
    let t = std::time::Instant::now();
    let (m, _) = scrape(&net.server, "http://198.18.255.1:9100/metrics");
    assert!(m.contains_key("dhcp_xdp_packets_received_total|family=v4,type=discover"));
    assert!(t.elapsed() < Duration::from_secs(3), "a scrape waited {:?} behind stalled clients", t.elapsed());
    // The stalled ones are cut at the head deadline.
    let cut = net.server.enter(move || {
        let mut s = stalled.into_iter().next().expect("one");
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let t = std::time::Instant::now();
        let mut out = vec![];
        let _ = s.read_to_end(&mut out);
        t.elapsed()
    });
    assert!(cut < Duration::from_secs(15), "a stalled client held its connection {cut:?}");
    daemon.signal_and_wait(Signal::SIGTERM);
}
