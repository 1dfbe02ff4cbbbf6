//! The harness itself: what it leaves behind when a run is cut short.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};

fn netns_list() -> String {
    String::from_utf8_lossy(&tests::sh(Command::new("ip").args(["netns", "list"])).stdout).into_owned()
}

/// A test or bench process ended by SIGINT/SIGTERM/SIGHUP (Ctrl-C, a CI timeout) removes the
/// namespaces it created and kills what ran in them; RAII alone cannot, as no destructor runs.
#[test]
fn namespaces_are_removed_when_a_signal_ends_the_process() {
    tests::require_root();
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hold-netns")).stdout(Stdio::piped()).spawn().expect("spawn");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("namespace names");
        let names: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        assert_eq!(names.len(), 2, "{line:?}");
        let listed = netns_list();
        assert!(names.iter().all(|n| listed.contains(n.as_str())), "{names:?} not in {listed}");
        // The sleeper enters the namespace after `ip netns exec` has started: wait for it.
        let entered = Instant::now() + Duration::from_secs(10);
        let sleepers = loop {
            let out = tests::sh(Command::new("ip").args(["netns", "pids", &names[0]]));
            if !out.stdout.is_empty() {
                break out;
            }
            assert!(Instant::now() < entered, "no process entered the namespace");
            std::thread::sleep(Duration::from_millis(20));
        };
        nix::sys::signal::kill(Pid::from_raw(child.id() as i32), sig).expect("signal");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "{sig} did not end the process");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(128 + sig as i32));
        let listed = netns_list();
        assert!(names.iter().all(|n| !listed.contains(n.as_str())), "{sig}: {names:?} left in {listed}");
        assert!(names.iter().all(|n| !std::path::Path::new("/etc/netns").join(n).exists()));
        for pid in String::from_utf8_lossy(&sleepers.stdout).split_whitespace() {
            // Killed (a zombie until its parent's parent reaps it at most).
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            assert!(state.is_empty() || state.contains(") Z "), "process {pid} still runs: {state}");
        }
    }
}
