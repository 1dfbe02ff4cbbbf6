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
    assert!(daemon.stdout().iter().any(|l| l == "metrics: http://198.18.255.1:9100/metrics"), "{:?}", daemon.stdout());
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    assert!(dora(&mut link, mac, [2, 0xdd, 0, 0, 0, 1], 0x700, Duration::from_millis(500), 3).acked);
    // The XDP verdicts are read by the control loop once a second.
    std::thread::sleep(Duration::from_millis(1300));
    let (m, other) = scrape(&net.server, "http://198.18.255.1:9100/metrics");
    assert_eq!(other, "404", "only /metrics is served");
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("{k} missing from {:#?}", m.keys().collect::<Vec<_>>()));
    assert_eq!(get("dhcp_xdp_packets_received_total|type=discover"), 1.0);
    assert_eq!(get("dhcp_xdp_packets_received_total|type=request"), 1.0);
    assert_eq!(get("dhcp_xdp_packets_sent_total|type=offer"), 1.0);
    assert_eq!(get("dhcp_xdp_packets_sent_total|type=ack"), 1.0);
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
