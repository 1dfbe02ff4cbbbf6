//! The load generator against the real daemon: its figures agree with the daemon's counters,
//! and its checks catch wrong replies instead of counting them as success.

use std::process::Stdio;

use serde_json::Value;
use tests::{Daemon, Netns, TempDir, TwoHosts};

/// The /24 pool holds 241 addresses: the scenarios of one test together use fewer (offers are
/// held 30 s), else the server rightly stays silent. The generator's closed loop runs a hundred
/// exchanges a second per client: a load test, not an attack, so the per-chaddr rate limit is off.
const CONFIG: &str = "[limits]\nrate-per-mac = 0\noffers-per-circuit = 1000000\noffers-per-mac = 1000000\n[[subnet]]\nsubnet = \"198.18.0.0/24\"\noptions = { routers = [\"198.18.0.1\"] }\n  \
                      [[subnet.pool]]\n  range = \"198.18.0.10-198.18.0.250\"\n\
                      [[subnet]]\nsubnet = \"198.18.7.0/24\"\nvlan = [100]\n  [[subnet.pool]]\n  range = \"198.18.7.10-198.18.7.250\"\n";

/// Runs `bench gen` in `ns` on `iface` with `args` for one second; returns its JSON.
fn generate(ns: &Netns, iface: &str, args: &[&str]) -> Value {
    let out = ns
        .exec(env!("CARGO_BIN_EXE_bench"))
        .args(["gen", "--iface", iface, "--duration", "1", "--quiet"])
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("running bench gen");
    assert!(out.status.success(), "bench gen failed: {}", out.status);
    serde_json::from_slice(&out.stdout).expect("JSON result")
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v:#}"))
}

fn clean(v: &Value) {
    assert_eq!(n(v, "check_failures"), 0, "failures: {:#}", v["first_failures"]);
    assert_eq!(n(v, "timeouts"), 0, "{v:#}");
    assert!(n(v, "completed") > 0, "{v:#}");
}

#[test]
fn scenarios_run_clean_and_agree_with_the_daemon() {
    let net = TwoHosts::new(1);
    let dir = TempDir::new("gencfg");
    let cfg = dir.config(CONFIG);
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg, "--workers", "1"]);
    let pool = ["--pool", "198.18.0.10-198.18.0.250"];

    let dora = generate(&net.client, &net.client_if, &[&["--clients", "100", "--run-id", "1"][..], &pool].concat());
    clean(&dora);
    assert_eq!(n(&dora, "bound_clients"), 100, "{dora:#}");
    assert_eq!(n(&dora, "acks"), n(&dora, "completed"));

    let renew = generate(
        &net.client,
        &net.client_if,
        &[&["--clients", "30", "--run-id", "2", "--scenario", "renew"][..], &pool].concat(),
    );
    clean(&renew);
    let release = generate(
        &net.client,
        &net.client_if,
        &["--clients", "5", "--run-id", "3", "--scenario", "release", "--rate", "500"],
    );
    clean(&release);
    assert_eq!(n(&release, "releases"), n(&release, "completed"), "{release:#}");
    let mixed = generate(
        &net.client,
        &net.client_if,
        &["--clients", "5", "--run-id", "4", "--scenario", "mixed", "--rate", "1000"],
    );
    clean(&mixed);
    let discover =
        generate(&net.client, &net.client_if, &["--clients", "5", "--run-id", "5", "--scenario", "discover"]);
    clean(&discover);
    assert_eq!(n(&discover, "acks"), 0);
    let avalanche =
        generate(&net.client, &net.client_if, &["--clients", "20", "--run-id", "6", "--scenario", "avalanche"]);
    assert_eq!(n(&avalanche, "bound_clients"), 20, "{avalanche:#}");
    assert_eq!(n(&avalanche, "check_failures"), 0, "{avalanche:#}");
    let (p99, all) = (avalanche["bound_99_percent_s"].as_f64(), avalanche["bound_all_s"].as_f64());
    assert!(
        p99.zip(all).is_some_and(|(p, a)| 0.0 < p && p <= a && a <= 1.0),
        "99 % and all bound within the run: {avalanche:#}"
    );

    // Relayed (option 82 must come back) and VLAN-tagged (tags must come back, the VLAN's subnet).
    let mac = TwoHosts::mac(&net.server, &net.server_if);
    let mac = dhcp_xdp_core::net::colon_hex(&mac);
    let relayed = generate(
        &net.client,
        &net.client_if,
        &[
            "--clients",
            "10",
            "--run-id",
            "7",
            "--relay",
            "198.18.0.2",
            "--server-ip",
            "198.18.0.1",
            "--server-mac",
            &mac,
            "--client-id",
        ],
    );
    clean(&relayed);
    let tagged = generate(
        &net.client,
        &net.client_if,
        &["--clients", "10", "--run-id", "8", "--vlan", "100", "--pool", "198.18.7.10-198.18.7.250"],
    );
    clean(&tagged);

    let exit = daemon.signal_and_wait(nix::sys::signal::Signal::SIGTERM);
    let requests = exit.engine_sum("rx_request");
    let generated: u64 = [&dora, &renew, &release, &mixed, &avalanche, &relayed, &tagged]
        .iter()
        .map(|v| n(v, "acks") + n(v, "naks"))
        .sum();
    // Every ACK the generator counted answered a REQUEST the daemon counted; the renew
    // scenario's unmeasured preparation adds requests the generator does not report.
    assert!(requests >= generated, "daemon saw {requests} REQUESTs, generator {generated} ACK/NAKs");
    assert_eq!(exit.engine_sum("rx_release"), n(&release, "releases") + n(&mixed, "releases"));
}

/// An avalanche nobody answers: every client sends its DISCOVER, then retransmits once between
/// 3 and 5 s (RFC 2131: 4 s ± 1), and not again before 7 s; each retransmission is a new
/// transaction.
#[test]
fn avalanche_clients_retransmit_on_the_rfc_2131_schedule() {
    let net = TwoHosts::new(1);
    let out = net
        .client
        .exec(env!("CARGO_BIN_EXE_bench"))
        .args(["gen", "--iface", &net.client_if, "--quiet", "--scenario", "avalanche", "--clients", "10"])
        .args(["--run-id", "9", "--duration", "6.5"])
        .stderr(Stdio::inherit())
        .output()
        .expect("running bench gen");
    assert!(out.status.success(), "bench gen failed: {}", out.status);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON result");
    assert_eq!(n(&v, "bound_clients"), 0, "{v:#}");
    assert_eq!(n(&v, "retransmits"), 10, "one retransmission each in 6.5 s: {v:#}");
    assert_eq!(n(&v, "frames_sent"), 20, "{v:#}");
    assert!(v["bound_99_percent_s"].is_null() && v["bound_all_s"].is_null(), "{v:#}");
}

#[test]
fn wrong_replies_are_failures_not_successes() {
    let net = TwoHosts::new(1);
    let dir = TempDir::new("gencfg");
    let cfg = dir.config(CONFIG);
    {
        // The echo handler answers DISCOVER with a BOOTREPLY still typed DISCOVER.
        let _echo = Daemon::start(&net.server, &net.server_if, &["--handler", "reflect", "--workers", "1"]);
        let v = generate(&net.client, &net.client_if, &["--clients", "50", "--run-id", "1"]);
        assert_eq!(n(&v, "completed"), 0, "{v:#}");
        assert!(v["failures_by_check"]["unexpected message type"].as_u64().unwrap_or(0) > 0, "{v:#}");
        // In echo mode the same replies are the expected answers.
        let v = generate(&net.client, &net.client_if, &["--clients", "50", "--run-id", "2", "--echo"]);
        clean(&v);
    }
    let _daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg, "--workers", "1"]);
    let v = generate(
        &net.client,
        &net.client_if,
        &["--clients", "50", "--run-id", "3", "--pool", "198.18.0.200-198.18.0.250"],
    );
    assert!(v["failures_by_check"]["address outside the pool"].as_u64().unwrap_or(0) > 0, "{v:#}");
    // No server at all: everything times out, nothing completes.
    drop(_daemon);
    let v = generate(&net.client, &net.client_if, &["--clients", "50", "--run-id", "4", "--timeout-ms", "200"]);
    assert_eq!(n(&v, "completed"), 0, "{v:#}");
    assert!(n(&v, "timeouts") > 0, "{v:#}");
}

/// DHCPv6: the generator's SOLICIT-ADVERTISE-REQUEST-REPLY (an address and a prefix per
/// client) runs clean against the daemon, and its counts agree with the daemon's.
#[test]
fn dhcp6_exchanges_run_clean_and_agree_with_the_daemon() {
    let net = TwoHosts::for_dhcp6(1);
    let dir = TempDir::new("gen6");
    let cfg = dir.config(
        "[limits]\nrate-per-mac = 0\n[[subnet]]\nsubnet = \"198.18.0.0/24\"\n  [[subnet.pool]]\n  range = \"198.18.0.10-198.18.0.250\"\n\
         [[subnet6]]\nsubnet = \"2001:db8:1::/64\"\n  [[subnet6.pool]]\n  range = \"2001:db8:1::1:0-2001:db8:1::1:ffff\"\n\
         [[subnet6.pd-pool]]\n  prefix = \"2001:db8:100::\"\n  prefix-len = 40\n  delegated-len = 60\n",
    );
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let v = generate(&net.client, &net.client_if, &["--dhcp6", "--clients", "500", "--window", "32", "--run-id", "6"]);
    clean(&v);
    assert_eq!(n(&v, "acks"), n(&v, "completed"), "every exchange ended with its REPLY: {v:#}");
    let c = daemon.counters();
    let m6 = |k: &str| c.0["messages6"][k].as_u64().unwrap_or_else(|| panic!("no {k}"));
    assert_eq!(m6("pkt6-advertise-sent"), n(&v, "offers"));
    assert_eq!(m6("pkt6-reply-sent"), n(&v, "acks"));
    assert_eq!(m6("v6-ia-na-no-addrs-avail") + m6("v6-ia-pd-no-prefix-avail"), 0);
    // Discover only: SOLICIT → ADVERTISE.
    let d = generate(
        &net.client,
        &net.client_if,
        &["--dhcp6", "--scenario", "discover", "--clients", "200", "--run-id", "7"],
    );
    clean(&d);
    assert_eq!(n(&d, "acks"), 0);
}
