//! Real DHCP clients driven inside a namespace: udhcpc (busybox), dhclient (ISC), dhcpcd.
//! Each records what it was given through a hook script into a file the test reads.

use std::{
    collections::HashMap,
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
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

/// Calls `f` every `every` until it gives a value or `limit` has passed (then it is asked once
/// more).
fn poll<T>(limit: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(every);
    }
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
                "echo \"event=$1 ip=$ip subnet=$subnet router=$router dns=$dns lease=$lease serverid=$serverid domain=$domain siaddr=$siaddr boot_file=$boot_file\" >> {}\ncase $1 in bound|renew) ip -4 addr replace $ip/24 dev $interface ;; deconfig) ip -4 addr flush dev $interface; ip -4 addr add 198.18.255.2/24 dev $interface ;; esac",
                events.display()
            ),
        );
        Self { _dir: dir, events, script }
    }

    fn command(&self, ns: &Netns, ifname: &str, extra: &[&str]) -> Command {
        let mut cmd = ns.exec(tool("udhcpc", "udhcpc"));
        cmd.args(["-i", ifname, "-f", "-n", "-t", "5", "-T", "1", "-A", "1", "-s"]).arg(&self.script);
        cmd.args(extra).stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    }

    /// Obtains a lease. Without `release`: `udhcpc -q` (obtain, then quit keeping the lease).
    /// With `release`: udhcpc runs until bound, then is stopped with SIGTERM and, started with
    /// -R, sends a RELEASE on exit (busybox sends none when -q and -R are combined).
    /// Returns the event map of the `bound` event, if any.
    pub fn obtain(&self, ns: &Netns, ifname: &str, release: bool, extra: &[&str]) -> Option<HashMap<String, String>> {
        if !release {
            let before = read_events(&self.events).len();
            let status = self.command(ns, ifname, extra).arg("-q").status().expect("run udhcpc");
            let mut events = read_events(&self.events).into_iter().skip(before);
            return if status.success() {
                events.find(|e| e.get("event").map(String::as_str) == Some("bound"))
            } else {
                None
            };
        }
        let mut run = self.spawn(ns, ifname, &[extra, &["-R"]].concat());
        run.wait_event("bound", Duration::from_secs(10))
    }

    /// Starts udhcpc in the foreground; it keeps its lease (renewing it) until stopped.
    pub fn spawn(&self, ns: &Netns, ifname: &str, extra: &[&str]) -> UdhcpcRun<'_> {
        let seen = read_events(&self.events).len();
        let child = self.command(ns, ifname, extra).spawn().expect("spawn udhcpc");
        UdhcpcRun { client: self, child, seen }
    }
}

/// A running udhcpc; stopped with SIGTERM on drop (with -R it releases then).
pub struct UdhcpcRun<'a> {
    client: &'a Udhcpc,
    child: std::process::Child,
    /// Hook events already consumed.
    seen: usize,
}

impl UdhcpcRun<'_> {
    /// Waits up to `limit` for the next hook event named `event` (skipping others) and returns
    /// it; `None` if it does not come or udhcpc exits.
    pub fn wait_event(&mut self, event: &str, limit: Duration) -> Option<HashMap<String, String>> {
        // Some(None): udhcpc exited.
        poll(limit, Duration::from_millis(50), || {
            let found = read_events(&self.client.events)
                .into_iter()
                .enumerate()
                .skip(self.seen)
                .find(|(_, e)| e.get("event").map(String::as_str) == Some(event));
            if let Some((i, e)) = found {
                self.seen = i + 1;
                return Some(Some(e));
            }
            self.child.try_wait().ok().flatten().map(|_| None)
        })
        .flatten()
    }

    /// Sends `sig` (busybox: SIGUSR1 renews, SIGUSR2 releases).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig);
    }
}

impl Drop for UdhcpcRun<'_> {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
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
    /// Its lease file (a client that keeps it keeps its DUID and asks for what it held).
    pub lease_file: PathBuf,
    pid_file: PathBuf,
    /// `-4`, or `-6` with what it asks for (`-N` addresses, `-P` prefixes).
    family: Vec<&'static str>,
}

impl Dhclient {
    /// Prepares a DHCPv6 client (`dhclient -6`) for `ifname` in `ns`, asking for `ias`: `-N`
    /// (an address), `-P` (a prefix) or both.
    pub fn new6(ns: &Netns, ifname: &str, ias: &[&'static str]) -> Self {
        let mut c = Self::new(ns, ifname);
        c.family = [&["-6"], ias].concat();
        c
    }

    /// Prepares a client for `ifname` in `ns` (its own lease and pid files).
    pub fn new(ns: &Netns, ifname: &str) -> Self {
        let dir = TempDir::new("dhclient");
        let events = dir.path().join("events");
        let script = script(
            &dir,
            "hook",
            &format!(
                "echo \"reason=$reason ip=$new_ip_address mask=$new_subnet_mask routers=$new_routers dns=$new_domain_name_servers lease=$new_dhcp_lease_time server=$new_dhcp_server_identifier ip6=$new_ip6_address prefix6=$new_ip6_prefix dns6=$(echo $new_dhcp6_name_servers | tr ' ' ,) search6=$(echo $new_dhcp6_domain_search | tr ' ' ,) server6=$new_dhcp6_server_id preferred6=$new_preferred_life valid6=$new_max_life old_ip6=$old_ip6_address old_prefix6=$old_ip6_prefix\" >> {}\ncase $reason in BOUND|RENEW|REBIND|REBOOT) ip -4 addr replace $new_ip_address/24 dev $interface ;; esac",
                events.display()
            ),
        );
        let lease_file = dir.path().join("leases");
        let pid_file = dir.path().join("pid");
        Self {
            ns_name: ns.name().to_owned(),
            ifname: ifname.to_owned(),
            events,
            script,
            lease_file,
            pid_file,
            dir,
            family: vec!["-4"],
        }
    }

    fn cmd(&self, ns: &Netns) -> Command {
        let mut c = ns.exec(tool("dhclient", "isc-dhcp-client"));
        c.args(&self.family)
            .args(["-v", "-sf"])
            .arg(&self.script)
            .arg("-lf")
            .arg(&self.lease_file)
            .arg("-pf")
            .arg(&self.pid_file);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    }

    /// Makes the client use `duid` (a `default-duid` statement in its lease file, which
    /// dhclient reads before it makes one of its own).
    pub fn set_duid(&self, duid: &[u8]) {
        let escaped: String = duid.iter().map(|b| format!("\\{b:03o}")).collect();
        std::fs::write(&self.lease_file, format!("default-duid \"{escaped}\";\n")).expect("dhclient lease file");
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
        // Also by its command line (it names the pid file): `dhclient -1` writes that file from
        // the background after it returns, so the file may not be there yet.
        let _ = Command::new("pkill")
            .args(["-KILL", "-f"])
            .arg(self.pid_file.as_os_str())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(&self.pid_file);
    }

    /// Hook events so far.
    pub fn events(&self) -> Vec<HashMap<String, String>> {
        read_events(&self.events)
    }

    /// Waits until an event with `reason` appears (up to `limit`).
    pub fn wait_for(&self, reason: &str, after: usize, limit: Duration) -> Option<HashMap<String, String>> {
        poll(limit, Duration::from_millis(200), || {
            self.events().into_iter().skip(after).find(|e| e.get("reason").map(String::as_str) == Some(reason))
        })
    }
}

impl Dhclient {
    /// The address and the prefix it reported in events after the first `after` (of `reason`
    /// only, when given): dhclient reports each in an event of its own. Panics after 20 s
    /// without both.
    pub fn address_and_prefix(&self, reason: Option<&str>, after: usize) -> (String, String) {
        let found = poll(Duration::from_secs(20), Duration::from_millis(200), || {
            let events: Vec<_> = self
                .events()
                .into_iter()
                .skip(after)
                .filter(|e| reason.is_none_or(|r| e.get("reason").map(String::as_str) == Some(r)))
                .collect();
            let pick = |k: &str| events.iter().find_map(|e| e.get(k).filter(|v| !v.is_empty()).cloned());
            Some((pick("ip6")?, pick("prefix6")?))
        });
        found.unwrap_or_else(|| panic!("no {reason:?} with an address and a prefix: {:?}", self.events()))
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

/// dhcpcd in the foreground (`-B`), its log in a file; killed on drop.
pub struct Dhcpcd {
    dir: TempDir,
    child: std::process::Child,
    ifname: String,
}

impl Dhcpcd {
    /// Starts `dhcpcd -4 -B -d --noipv4ll --noarp <extra> <ifname>` in `ns`.
    pub fn spawn(ns: &Netns, ifname: &str, extra: &[&str]) -> Self {
        let dir = TempDir::new("dhcpcd");
        let log = std::fs::File::create(dir.path().join("log")).expect("dhcpcd log");
        // Its own process group: the privilege-separation helpers it forks go with it on drop.
        let child = ns
            .exec(tool("dhcpcd", "dhcpcd5"))
            .args(["-4", "-B", "-d", "--noipv4ll", "--noarp", "-t", "10"])
            .args(extra)
            .arg(ifname)
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn dhcpcd");
        Self { dir, child, ifname: ifname.to_owned() }
    }

    /// Starts `dhcpcd -6 -B -d -f <conf>` on `ifname` in `ns` with `body` as its
    /// configuration (`noipv6rs`, `ia_na`, `ia_pd` …: DHCPv6 without waiting for a router).
    pub fn spawn6(ns: &Netns, ifname: &str, body: &str) -> Self {
        let dir = TempDir::new("dhcpcd6");
        let conf = dir.path().join("dhcpcd.conf");
        std::fs::write(&conf, body).expect("dhcpcd.conf");
        let log = std::fs::File::create(dir.path().join("log")).expect("dhcpcd log");
        let child = ns
            .exec(tool("dhcpcd", "dhcpcd5"))
            .args(["-6", "-B", "-d", "-t", "10", "-f"])
            .arg(&conf)
            .arg(ifname)
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn dhcpcd -6");
        Self { dir, child, ifname: ifname.to_owned() }
    }

    /// `dhcpcd -k`: asks the running dhcpcd to release its lease and exit, and waits (up to 10
    /// s) for its log to say it released. Asked again every second: dhcpcd 9.4 was seen to drop
    /// the request (a SIGALRM) when it came right after binding.
    pub fn release(&self, ns: &Netns) -> bool {
        for _ in 0..10 {
            let _ = ns.exec(tool("dhcpcd", "dhcpcd5")).args(["-4", "-k", &self.ifname]).output();
            if self.wait_log("releasing lease of", Duration::from_secs(1)).is_some() {
                return true;
            }
        }
        false
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Waits up to `limit` for a log line containing `text`; returns that line.
    pub fn wait_log(&self, text: &str, limit: Duration) -> Option<String> {
        poll(limit, Duration::from_millis(50), || self.log().lines().find(|l| l.contains(text)).map(str::to_owned))
    }

    /// Waits up to `limit` for it to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        poll(limit, Duration::from_millis(50), || self.child.try_wait().ok().flatten()).is_some()
    }
}

impl Drop for Dhcpcd {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
        let _ = std::fs::remove_file(format!("/var/lib/dhcpcd/{}.lease", self.ifname));
    }
}

/// WIDE's DHCPv6 client (`dhcp6c`) in the foreground, asking for an address (IA_NA) and a
/// prefix (IA_PD) that it puts on `prefix_if` (one /64 of it, sla-id 1); killed on drop.
pub struct Dhcp6c {
    _dir: TempDir,
    child: std::process::Child,
}

impl Dhcp6c {
    /// Starts it on `ifname` in `ns`.
    pub fn spawn(ns: &Netns, ifname: &str, prefix_if: &str) -> Self {
        let dir = TempDir::new("dhcp6c");
        let conf = dir.path().join("dhcp6c.conf");
        std::fs::write(
            &conf,
            format!(
                "interface {ifname} {{\n  send ia-na 1;\n  send ia-pd 2;\n  request domain-name-servers;\n}};\n\
                 id-assoc na 1 {{ }};\n\
                 id-assoc pd 2 {{\n  prefix-interface {prefix_if} {{\n    sla-id 1;\n    sla-len 8;\n  }};\n}};\n"
            ),
        )
        .expect("dhcp6c.conf");
        // Its DUID lives in /var/lib/dhcpv6 (made on first use).
        let _ = std::fs::create_dir_all("/var/lib/dhcpv6");
        let log = std::fs::File::create(dir.path().join("log")).expect("dhcp6c log");
        let child = ns
            .exec(tool("dhcp6c", "wide-dhcpv6-client"))
            .args(["-f", "-D", "-c"])
            .arg(&conf)
            .arg("-p")
            .arg(dir.path().join("pid"))
            .arg(ifname)
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn dhcp6c");
        Self { _dir: dir, child }
    }
}

impl Drop for Dhcp6c {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
