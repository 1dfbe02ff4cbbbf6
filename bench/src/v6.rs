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
    let base = cfg.out_dir.join(format!("{date}-dhcp6-perfdhcp"));
    let mut md = format!(
        "# DHCPv6 beside DHCPv4, perfdhcp, {date}\n\n\
         perfdhcp (Kea's, single-threaded) on one veth pair, {} clients per point, {} s per point; v6 exchanges \
         are SOLICIT-ADVERTISE-REQUEST-REPLY with an IA_NA and an IA_PD each; v4 are DORA. dhcp-xdp: journal \
         with fsync, one worker; kea-dhcp6: multi-threaded (2), memfile. Completed exchanges per second, and \
         drops of the first and second exchange.\n\n\
         | offered/s | dhcp-xdp v4 | drops | dhcp-xdp v6 | drops | v6 / v4 | kea-dhcp6 | drops | dhcp-xdp v6 / Kea |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        cfg.clients, cfg.secs
    );
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
        "points": rows.iter().map(|(r, v4, v6, k)| json!({ "offered": r, "dhcp-xdp-v4": point_json(v4), "dhcp-xdp-v6": point_json(v6), "kea-dhcp6": k.as_ref().map(point_json) })).collect::<Vec<_>>(),
    });
    std::fs::write(base.with_extension("json"), serde_json::to_string_pretty(&json)?)?;
    let path = base.with_extension("md");
    std::fs::write(&path, md)?;
    Ok(path)
}
