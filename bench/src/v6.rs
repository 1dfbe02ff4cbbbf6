//! `bench compare6`: DHCPv6 beside DHCPv4 under one generator, Kea's perfdhcp (the AF_XDP
//! generator speaks DHCPv4 only so far). At each offered rate: perfdhcp `-6 -e
//! address-and-prefix` (SOLICIT-ADVERTISE-REQUEST-REPLY, an address and a /60 per client)
//! against dhcp-xdp and against kea-dhcp6 (multi-threaded, memfile), and perfdhcp `-4` (DORA)
//! against dhcp-xdp. perfdhcp itself is single-threaded and shares the two vCPUs with the
//! server: the report says where the generator, not the server, was the limit (the same rate
//! for v4 and v6 of dhcp-xdp).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tests::{Daemon, TempDir, TwoHosts, ipv6_ready};

/// What `bench compare6` runs.
#[derive(Debug, Clone)]
pub struct Compare6Config {
    /// Offered rates (exchanges per second).
    pub rates: Vec<u64>,
    /// Seconds per point.
    pub secs: u64,
    /// Distinct clients per point.
    pub clients: u32,
    /// Where the report goes.
    pub out_dir: PathBuf,
}

/// One point: what perfdhcp offered and got.
#[derive(Debug, Clone, Copy, Default)]
struct Point {
    /// Completed exchanges per second (perfdhcp's "Rate:").
    rate: f64,
    /// First exchange (DISCOVER-OFFER / SOLICIT-ADVERTISE) sent and dropped.
    first: (u64, u64),
    /// Second exchange (REQUEST-ACK / REQUEST-REPLY) sent and dropped.
    second: (u64, u64),
}

fn perfdhcp(rig: &TwoHosts, family: &str, rate: u64, clients: u32, secs: u64) -> anyhow::Result<Point> {
    let _rcvbuf = tests::RcvbufDefault::at_least(4 << 20);
    let (rate, clients, secs) = (rate.to_string(), clients.to_string(), secs.to_string());
    let mut args = vec!["-l", &rig.client_if, "-r", &rate, "-R", &clients, "-p", &secs];
    if family == "-6" {
        args.extend(["-e", "address-and-prefix"]);
    }
    let (stats, rate) = tests::perfdhcp_report(&rig.client, family, &args);
    let (a, b) =
        if family == "-6" { ("SOLICIT-ADVERTISE", "REQUEST-REPLY") } else { ("DISCOVER-OFFER", "REQUEST-ACK") };
    let get = |k: &str| stats.get(k).map(|s| (s.0, s.2)).unwrap_or_default();
    Ok(Point { rate, first: get(a), second: get(b) })
}

const DHCP_XDP_CONFIG: &str = "[persistence]\ndurability = \"fsync\"\n\
    [limits]\noffers-per-mac = 1000000000\noffers-per-circuit = 1000000000\nrate-per-mac = 0\n\
    [[subnet]]\nsubnet = \"198.18.0.0/15\"\n  [[subnet.pool]]\n  range = \"198.18.1.0-198.19.254.255\"\n\
    [[subnet6]]\nsubnet = \"2001:db8:1::/64\"\n  [[subnet6.pool]]\n  range = \"2001:db8:1::1:0-2001:db8:1::ff:ffff\"\n\
      [[subnet6.pd-pool]]\n  prefix = \"2001:db8:100::\"\n  prefix-len = 40\n  delegated-len = 60\n";

fn kea6(rig: &TwoHosts, dir: &Path) -> anyhow::Result<std::process::Child> {
    let conf = dir.join("kea-dhcp6.json");
    std::fs::write(
        &conf,
        json!({ "Dhcp6": {
            "interfaces-config": { "interfaces": [rig.server_if] },
            "lease-database": { "type": "memfile", "persist": true, "name": dir.join("kea-leases6.csv"), "lfc-interval": 0 },
            "server-id": { "type": "LLT", "persist": false },
            "multi-threading": { "enable-multi-threading": true, "thread-pool-size": 2, "packet-queue-size": 64 },
            "subnet6": [{ "id": 1, "subnet": "2001:db8:1::/64", "interface": rig.server_if,
                "pools": [{ "pool": "2001:db8:1::1:0 - 2001:db8:1::ff:ffff" }],
                "pd-pools": [{ "prefix": "2001:db8:100::", "prefix-len": 40, "delegated-len": 60 }] }],
            "loggers": [{ "name": "kea-dhcp6", "output_options": [{ "output": "stderr" }], "severity": "WARN" }],
        }})
        .to_string(),
    )?;
    let log = std::fs::File::create(dir.join("kea-dhcp6.log"))?;
    let mut child = rig
        .server
        .exec("/usr/sbin/kea-dhcp6")
        .arg("-c")
        .arg(&conf)
        .env("KEA_PIDFILE_DIR", dir)
        .env("KEA_LOCKFILE_DIR", dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("kea-dhcp6 (package kea-dhcp6-server)")?;
    std::thread::sleep(Duration::from_secs(3));
    if let Some(status) = child.try_wait()? {
        let log = std::fs::read_to_string(dir.join("kea-dhcp6.log")).unwrap_or_default();
        bail!("kea-dhcp6 exited at start ({status}):\n{log}");
    }
    Ok(child)
}

/// A closed-loop run of the AF_XDP generator (`bench gen`): DHCPv4 DORA, or with `dhcp6`
/// SOLICIT-ADVERTISE-REQUEST-REPLY with an address and a prefix per client.
fn generator(
    rig: &TwoHosts,
    dhcp6: bool,
    run_id: u8,
    clients: u32,
    secs: u64,
    json_path: &Path,
) -> anyhow::Result<Value> {
    let me = std::env::current_exe().context("own path")?;
    let mut cmd = rig.client.exec(me);
    cmd.args(["gen", "--iface", &rig.client_if, "--scenario", "dora", "--window", "256", "--rate", "0"])
        .args(["--clients", &clients.to_string(), "--duration", &secs.to_string(), "--run-id", &run_id.to_string()])
        .arg("--json")
        .arg(json_path);
    if dhcp6 {
        cmd.arg("--dhcp6");
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
    let status = cmd.status().context("running the generator")?;
    if !status.success() {
        bail!("generator failed ({status})");
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(json_path)?)?;
    if v["completed"].as_u64() == Some(0) {
        eprintln!(
            "bench6: nothing completed: sent {} received {} not-dhcp {} timeouts {} failures {} xdp {}",
            v["frames_sent"], v["frames_received"], v["not_dhcp_frames"], v["timeouts"], v["first_failures"], v["xdp"]
        );
    }
    Ok(v)
}

/// Permanent neighbour entries in the server's namespace for the link-local addresses of the
/// generator's clients `0..clients` of run `run_id` (`fe80::` and the client's chaddr), all on
/// the generator's MAC.
fn neighbours(rig: &TwoHosts, run_id: u8, clients: u32) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mac = dhcp_xdp_core::net::colon_hex(&TwoHosts::mac(&rig.client, &rig.client_if));
    // Permanent entries are not garbage-collected and do not count against gc_thresh3.
    let mut batch = String::new();
    for i in 0..clients {
        let b = i.to_be_bytes();
        let ll = std::net::Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 2, run_id, b[0], b[1], b[2], b[3]]);
        batch.push_str(&format!("neigh replace {ll} lladdr {mac} dev {} nud permanent\n", rig.server_if));
    }
    let mut child = rig.server.ip().args(["-batch", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).spawn()?;
    child.stdin.take().context("ip -batch stdin")?.write_all(batch.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        bail!("ip -batch neigh replace failed ({status})");
    }
    Ok(())
}

/// Completed exchanges per second and check failures of a generator run.
fn gen_rate(v: &Value) -> (f64, u64) {
    (v["exchanges_per_s"].as_f64().unwrap_or(0.0), v["check_failures"].as_u64().unwrap_or(0))
}

fn point_json(p: &Point) -> Value {
    json!({ "rate": p.rate, "first": { "sent": p.first.0, "drops": p.first.1 }, "second": { "sent": p.second.0, "drops": p.second.1 } })
}

/// Runs the comparison; writes `<out>/<date>-dhcp6-perfdhcp.{md,json}`; returns the markdown.
pub fn run(cfg: &Compare6Config) -> anyhow::Result<PathBuf> {
    tests::require_root();
    let rig = TwoHosts::with_addresses(
        1,
        (std::net::Ipv4Addr::new(198, 18, 0, 1), 15),
        (std::net::Ipv4Addr::new(198, 19, 255, 254), 15),
    );
    ipv6_ready(&[(&rig.server, &rig.server_if, &["2001:db8:1::1/64"]), (&rig.client, &rig.client_if, &[])]);
    let work = TempDir::new("bench6");
    // The AF_XDP generator, closed loop (256 outstanding): dhcp-xdp v4 and v6, kea-dhcp6.
    let mut closed: Vec<(&str, Value)> = vec![];
    {
        let dir = work.path().join("dhcp-xdp-closed");
        std::fs::create_dir_all(&dir)?;
        let conf = dir.join("dhcp-xdp.toml");
        std::fs::write(&conf, DHCP_XDP_CONFIG)?;
        let (conf, state) = (conf.display().to_string(), dir.join("state").display().to_string());
        let d = Daemon::start(&rig.server, &rig.server_if, &["--config", &conf, "--state-dir", &state]);
        eprintln!("bench6: dhcp-xdp, DHCPv4 DORA, generator closed loop {} s", cfg.secs);
        closed.push(("dhcp-xdp v4 (DORA)", generator(&rig, false, 31, cfg.clients, cfg.secs, &dir.join("v4.json"))?));
        eprintln!("bench6: dhcp-xdp, DHCPv6 address + prefix, generator closed loop {} s", cfg.secs);
        closed.push((
            "dhcp-xdp v6 (address + prefix)",
            generator(&rig, true, 32, cfg.clients, cfg.secs, &dir.join("v6.json"))?,
        ));
        drop(d);
        if Path::new("/usr/sbin/kea-dhcp6").exists() {
            let dir = work.path().join("kea-closed");
            std::fs::create_dir_all(&dir)?;
            // Kea answers through the kernel, which resolves each client's link-local address
            // by neighbour discovery; the generator's clients do not answer it, so their
            // neighbour entries are made beforehand.
            neighbours(&rig, 33, cfg.clients)?;
            let mut k = kea6(&rig, &dir)?;
            eprintln!("bench6: kea-dhcp6, generator closed loop {} s", cfg.secs);
            let v = generator(&rig, true, 33, cfg.clients, cfg.secs, &dir.join("kea.json"));
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(k.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let _ = k.wait();
            closed.push(("kea-dhcp6 (address + prefix)", v?));
        }
    }
    let mut rows: Vec<(u64, Point, Point, Option<Point>)> = vec![];
    for (i, &rate) in cfg.rates.iter().enumerate() {
        // A fresh daemon per point: every point starts from empty pools.
        let dir = work.path().join(format!("dhcp-xdp-{rate}"));
        std::fs::create_dir_all(&dir)?;
        let conf = dir.join("dhcp-xdp.toml");
        std::fs::write(&conf, DHCP_XDP_CONFIG)?;
        let (conf, state) = (conf.display().to_string(), dir.join("state").display().to_string());
        eprintln!("bench6: {rate}/s — dhcp-xdp, DHCPv4 (perfdhcp -4)");
        let d = Daemon::start(&rig.server, &rig.server_if, &["--config", &conf, "--state-dir", &state]);
        let v4 = perfdhcp(&rig, "-4", rate, cfg.clients, cfg.secs)?;
        eprintln!("bench6: {rate}/s — dhcp-xdp, DHCPv6 (perfdhcp -6, address and prefix)");
        let v6 = perfdhcp(&rig, "-6", rate, cfg.clients, cfg.secs)?;
        drop(d);
        let kea = if Path::new("/usr/sbin/kea-dhcp6").exists() {
            eprintln!("bench6: {rate}/s — kea-dhcp6 (MT, memfile)");
            let dir = work.path().join(format!("kea-{i}"));
            std::fs::create_dir_all(&dir)?;
            let mut k = kea6(&rig, &dir)?;
            let p = perfdhcp(&rig, "-6", rate, cfg.clients, cfg.secs);
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(k.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let _ = k.wait();
            Some(p?)
        } else {
            eprintln!("bench6: kea-dhcp6 not installed (apt-get install kea-dhcp6-server); skipped");
            None
        };
        rows.push((rate, v4, v6, kea));
    }
    let date =
        Command::new("date").arg("+%F").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    std::fs::create_dir_all(&cfg.out_dir)?;
    let base = cfg.out_dir.join(format!("{date}-dhcp6"));
    let mut md = format!(
        "# DHCPv6 beside DHCPv4, {date}\n\n## The AF_XDP generator, closed loop\n\n\
         256 exchanges outstanding, {} clients, {} s; dhcp-xdp: journal with fsync, one worker; kea-dhcp6: \
         multi-threaded (2), memfile.\n\n| server | exchanges/s | check failures | p50 µs | p99 µs |\n|---|---:|---:|---:|---:|\n",
        cfg.clients, cfg.secs
    );
    for (name, v) in &closed {
        let (r, f) = gen_rate(v);
        md.push_str(&format!(
            "| {name} | {r:.0} | {f} | {:.0} | {:.0} |\n",
            v["latency_us"]["p50"].as_f64().unwrap_or(0.0),
            v["latency_us"]["p99"].as_f64().unwrap_or(0.0)
        ));
    }
    let rate_of = |k: &str| closed.iter().find(|(n, _)| n.starts_with(k)).map(|(_, v)| gen_rate(v).0);
    if let (Some(v4), Some(v6)) = (rate_of("dhcp-xdp v4"), rate_of("dhcp-xdp v6")) {
        md.push_str(&format!("\ndhcp-xdp v6 ÷ its own v4: {:.2}", v6 / v4.max(1.0)));
        if let Some(k) = rate_of("kea-dhcp6") {
            md.push_str(&format!("; dhcp-xdp v6 ÷ kea-dhcp6: {:.1}", v6 / k.max(1.0)));
        }
        md.push_str(".\n");
    }
    md.push_str(&format!(
        "\n## perfdhcp, open loop\n\n\
         perfdhcp (Kea's, single-threaded) on one veth pair, {} clients per point, {} s per point; v6 exchanges \
         are SOLICIT-ADVERTISE-REQUEST-REPLY with an IA_NA and an IA_PD each; v4 are DORA. dhcp-xdp: journal \
         with fsync, one worker; kea-dhcp6: multi-threaded (2), memfile. Completed exchanges per second, and \
         drops of the first and second exchange.\n\n\
         | offered/s | dhcp-xdp v4 | drops | dhcp-xdp v6 | drops | v6 / v4 | kea-dhcp6 | drops | dhcp-xdp v6 / Kea |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        cfg.clients, cfg.secs
    ));
    for (rate, v4, v6, kea) in &rows {
        let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.2}", a / b) } else { "—".into() };
        let (k, kd, kr) = match kea {
            Some(k) => (format!("{:.0}", k.rate), format!("{}+{}", k.first.1, k.second.1), ratio(v6.rate, k.rate)),
            None => ("—".into(), "—".into(), "—".into()),
        };
        md.push_str(&format!(
            "| {rate} | {:.0} | {}+{} | {:.0} | {}+{} | {} | {k} | {kd} | {kr} |\n",
            v4.rate,
            v4.first.1,
            v4.second.1,
            v6.rate,
            v6.first.1,
            v6.second.1,
            ratio(v6.rate, v4.rate)
        ));
    }
    let json = json!({
        "date": date, "clients": cfg.clients, "secs": cfg.secs,
        "generator_closed_loop": closed.iter().map(|(n, v)| json!({ "server": n, "result": v })).collect::<Vec<_>>(),
        "points": rows.iter().map(|(r, v4, v6, k)| json!({ "offered": r, "dhcp-xdp-v4": point_json(v4), "dhcp-xdp-v6": point_json(v6), "kea-dhcp6": k.as_ref().map(point_json) })).collect::<Vec<_>>(),
    });
    std::fs::write(base.with_extension("json"), serde_json::to_string_pretty(&json)?)?;
    let path = base.with_extension("md");
    std::fs::write(&path, md)?;
    Ok(path)
}
