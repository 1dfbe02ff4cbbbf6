//! systemd's notify protocol, as a Type=notify-reload unit sees it: READY=1 once the daemon
//! answers, WATCHDOG=1 while it lives, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a
//! reload, STOPPING=1 on the way out. A datagram socket of the test stands in for systemd.
//! And the manual pages in packaging/man are the ones the command line generates.

use std::{os::unix::net::UnixDatagram, time::Duration};

use nix::sys::signal::Signal;
use tests::{Daemon, TempDir, TwoHosts, daemon_bin};

fn messages(sock: &UnixDatagram, wait: Duration) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let deadline = std::time::Instant::now() + wait;
    let mut out = vec![];
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            out.extend(String::from_utf8_lossy(&buf[..n]).lines().map(str::to_owned));
        }
    }
    out
}

#[test]
fn systemd_hears_ready_watchdog_reloading_and_stopping() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("notify socket");
    let mut cmd = net.server.exec(daemon_bin());
    cmd.args(["run", "--iface", &net.server_if, "--stats-interval", "0"])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000");
    let daemon = Daemon::spawn(cmd, Some(TempDir::new("dxstate")));
    let first = messages(&sock, Duration::from_millis(700));
    assert!(first.iter().any(|m| m == "READY=1"), "{first:?}");
    assert!(first.iter().any(|m| m.starts_with("STATUS=answering DHCP on")), "{first:?}");
    assert!(first.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2, "fed every 200 ms: {first:?}");
    let _ = nix::sys::signal::kill(daemon.pid(), Signal::SIGHUP);
    let reload = messages(&sock, Duration::from_millis(500));
    let at = reload.iter().position(|m| m == "RELOADING=1").unwrap_or_else(|| panic!("{reload:?}"));
    assert!(reload.iter().any(|m| m.starts_with("MONOTONIC_USEC=")), "{reload:?}");
    assert!(reload[at..].iter().any(|m| m == "READY=1"), "ready again after the reload: {reload:?}");
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(exit.status.success());
    assert!(messages(&sock, Duration::from_millis(200)).iter().any(|m| m == "STOPPING=1"));
}

#[test]
fn the_unit_file_runs_the_daemon_as_the_readme_says() {
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/dhcp-xdp@.service")).expect("unit");
    for line in ["Type=notify-reload", "WatchdogSec=", "ExecStart=/usr/local/bin/dhcp-xdp run --iface %i"] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "{line} missing");
    }
}

#[test]
fn man_pages_in_the_repo_are_the_ones_the_cli_generates() {
    let dir = TempDir::new("man");
    let out = std::process::Command::new(daemon_bin()).args(["man", "--dir"]).arg(dir.path()).output().expect("man");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/man");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("generated")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.contains(&"dhcp-xdp.8".to_string()) && names.contains(&"dhcp-xdp-run.8".to_string()), "{names:?}");
    for name in &names {
        let generated = std::fs::read_to_string(dir.path().join(name)).expect("read");
        assert!(generated.contains(".SH OPTIONS") || name == "dhcp-xdp.8", "{name}: {generated}");
        let committed = std::fs::read_to_string(repo.join(name)).unwrap_or_default();
        assert!(
            generated == committed,
            "packaging/man/{name} is stale: run `cargo run --bin dhcp-xdp -- man --dir packaging/man`"
        );
    }
}

/// `--log journald` where no journal listens: said on stderr, the log goes to stdout, and the
/// daemon serves; plain stdout lines carry no timestamps or levels (journald adds its own).
#[test]
fn without_a_journal_the_log_falls_back_to_stdout() {
    let net = TwoHosts::for_dhcp(1);
    let daemon = tests::Daemon::start(&net.server, &net.server_if, &["--log", "journald"]);
    let exit = daemon.signal_and_wait(nix::sys::signal::Signal::SIGTERM);
    if std::path::Path::new("/run/systemd/journal/socket").exists() {
        return assert!(exit.stdout.iter().all(|l| !l.starts_with("ready:")), "{:?}", exit.stdout);
    }
    assert!(exit.stderr.iter().any(|l| l.contains("the journal is unreachable")), "{:?}", exit.stderr);
    assert!(exit.stdout.iter().any(|l| l.starts_with("ready: answering DHCP on ")), "{:?}", exit.stdout);
    assert!(exit.stdout.iter().any(|l| l.starts_with("stopped: XDP program detached")), "{:?}", exit.stdout);
}
