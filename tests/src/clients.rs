//! Real DHCP clients driven inside a namespace: udhcpc (busybox), dhclient (ISC), dhcpcd.
//! Each records what it was given through a hook script into a file the test reads.

use std::{
    collections::HashMap,
    os::unix::fs::PermissionsExt as _,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{Netns, TempDir, tool};

/// Key/value lines a hook script wrote, one map per invocation.
pub fn read_events(path: &std::path::Path) -> Vec<HashMap<String, String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

fn script(dir: &TempDir, name: &str, body: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

/// busybox udhcpc in one-shot mode.
pub struct Udhcpc {
    _dir: TempDir,
    events: PathBuf,
    script: PathBuf,
}

impl Default for Udhcpc {
    fn default() -> Self {
        Self::new()
    }
}

impl Udhcpc {
    /// A client with its own hook script.
    pub fn new() -> Self {
        let dir = TempDir::new("udhcpc");
        let events = dir.path().join("events");
        let script = script(
            &dir,
            "hook",
            &format!(
                "echo \"event=$1 ip=$ip subnet=$subnet router=$router dns=$dns lease=$lease serverid=$serverid domain=$domain\" >> {}\ncase $1 in bound|renew) ip -4 addr replace $ip/24 dev $interface ;; deconfig) ip -4 addr flush dev $interface; ip -4 addr add 198.18.255.2/24 dev $interface ;; esac",
                events.display()
            ),
        );
        Self { _dir: dir, events, script }
    }

    /// Obtains a lease. Without `release`: `udhcpc -q` (obtain, then quit keeping the lease).
    /// With `release`: udhcpc runs until bound, then is stopped with SIGTERM and, started with
    /// -R, sends a RELEASE on exit (busybox sends none when -q and -R are combined).
    /// Returns the event map of the `bound` event, if any.
    pub fn obtain(&self, ns: &Netns, ifname: &str, release: bool, extra: &[&str]) -> Option<HashMap<String, String>> {
        let before = read_events(&self.events).len();
        let bound = |events: Vec<HashMap<String, String>>| {
            events.into_iter().skip(before).find(|e| e.get("event").map(String::as_str) == Some("bound"))
        };
        let mut cmd = ns.exec(tool("udhcpc", "udhcpc"));
        cmd.args(["-i", ifname, "-f", "-n", "-t", "5", "-T", "1", "-A", "1", "-s"]).arg(&self.script);
        cmd.args(extra).stdout(Stdio::null()).stderr(Stdio::null());
        if !release {
            cmd.arg("-q");
            let status = cmd.status().expect("run udhcpc");
            return if status.success() { bound(read_events(&self.events)) } else { None };
        }
        cmd.arg("-R");
        let mut child = cmd.spawn().expect("spawn udhcpc");
        let deadline = Instant::now() + Duration::from_secs(10);
        let got = loop {
            if let Some(b) = bound(read_events(&self.events)) {
                break Some(b);
            }
            if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let _ = child.wait();
        got
    }
}

/// ISC dhclient, running in the background after it got its lease; killed on drop.
pub struct Dhclient {
    dir: TempDir,
    ns_name: String,
    ifname: String,
    /// Hook events.
    pub events: PathBuf,
    script: PathBuf,
    lease_file: PathBuf,
    pid_file: PathBuf,
}

impl Dhclient {
    /// Prepares a client for `ifname` in `ns` (its own lease and pid files).
    pub fn new(ns: &Netns, ifname: &str) -> Self {
        let dir = TempDir::new("dhclient");
        let events = dir.path().join("events");
        let script = script(
            &dir,
            "hook",
            &format!(
                "echo \"reason=$reason ip=$new_ip_address mask=$new_subnet_mask routers=$new_routers dns=$new_domain_name_servers lease=$new_dhcp_lease_time server=$new_dhcp_server_identifier\" >> {}\ncase $reason in BOUND|RENEW|REBIND|REBOOT) ip -4 addr replace $new_ip_address/24 dev $interface ;; esac",
                events.display()
            ),
        );
        let lease_file = dir.path().join("leases");
        let pid_file = dir.path().join("pid");
        Self { ns_name: ns.name().to_owned(), ifname: ifname.to_owned(), events, script, lease_file, pid_file, dir }
    }

    fn cmd(&self, ns: &Netns) -> Command {
        let mut c = ns.exec(tool("dhclient", "isc-dhcp-client"));
        c.args(["-4", "-v", "-sf"]).arg(&self.script).arg("-lf").arg(&self.lease_file).arg("-pf").arg(&self.pid_file);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    }

    /// Obtains a lease (`dhclient -1`); the client then stays in the background renewing it.
    pub fn obtain(&self, ns: &Netns) -> bool {
        let mut c = self.cmd(ns);
        c.args(["-1", &self.ifname]);
        c.status().map(|s| s.success()).unwrap_or(false)
    }

    /// Releases the lease and stops the client (`dhclient -r`).
    pub fn release(&self, ns: &Netns) {
        let mut c = self.cmd(ns);
        c.args(["-r", &self.ifname]);
        let _ = c.status();
    }

    /// Stops the background client without releasing (keeps the lease file).
    pub fn kill(&self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file)
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }

    /// Hook events so far.
    pub fn events(&self) -> Vec<HashMap<String, String>> {
        read_events(&self.events)
    }

    /// Waits until an event with `reason` appears (up to `limit`).
    pub fn wait_for(&self, reason: &str, after: usize, limit: Duration) -> Option<HashMap<String, String>> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(e) =
                self.events().into_iter().skip(after).find(|e| e.get("reason").map(String::as_str) == Some(reason))
            {
                return Some(e);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }
}

impl Drop for Dhclient {
    fn drop(&mut self) {
        self.kill();
        let _ = (&self.dir, &self.ns_name);
    }
}

/// dhcpcd in one-shot mode; it configures the interface itself.
pub fn dhcpcd_oneshot(ns: &Netns, ifname: &str) -> String {
    let out = ns
        .exec(tool("dhcpcd", "dhcpcd5"))
        .args(["-4", "-1", "-d", "--nobackground", "--noipv4ll", "-t", "10", ifname])
        .output()
        .expect("run dhcpcd");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_file(format!("/var/lib/dhcpcd/{ifname}.lease"));
    text
}
