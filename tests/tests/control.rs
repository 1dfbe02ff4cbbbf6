//! The management channel driven exactly as operators drive Kea: Debian's real
//! `kea-ctrl-agent` pointed at the daemon's control socket, with `kea-shell` as the client.
//! Every command answered, Kea's result codes and texts, lease edits durable (SIGKILL after an
//! add: the lease is recovered), `shutdown` a clean stop.

use std::{
    io::Write as _,
    net::Ipv4Addr,
    path::Path,
    process::{Child, Stdio},
    time::Duration,
};

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tests::{
    Daemon, Netns, TempDir, TwoHosts,
    frames::{Link, dora},
    recovered_leases, tool,
};

const CONFIG: &str = "[[subnet]]\nsubnet = \"198.18.0.0/16\"\n[[subnet.pool]]\nrange = \"198.18.16.1-198.18.16.200\"\n";

/// kea-ctrl-agent in `ns`, listening on 198.18.255.1:8000 and forwarding `dhcp4` to `socket`;
/// killed on drop.
struct Agent(Child);

impl Agent {
    fn start(ns: &Netns, dir: &TempDir, socket: &Path) -> Self {
        let conf = dir.path().join("kea-ctrl-agent.conf");
        let c = json!({ "Control-agent": {
            "http-host": "198.18.255.1",
            "http-port": 8000,
            "control-sockets": { "dhcp4": { "socket-type": "unix", "socket-name": socket.display().to_string() } },
            "loggers": [{ "name": "kea-ctrl-agent", "output_options": [{ "output": "stdout" }], "severity": "WARN" }],
        }});
        std::fs::write(&conf, c.to_string()).expect("agent config");
        let child = ns
            .exec(tool("kea-ctrl-agent", "kea-ctrl-agent"))
            .arg("-c")
            .arg(&conf)
            .env("KEA_PIDFILE_DIR", dir.path())
            .env("KEA_LOCKFILE_DIR", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kea-ctrl-agent");
        Self(child)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `kea-shell --service dhcp4 COMMAND` with `args` (the inside of `arguments`) on stdin; the
/// daemon's answer (kea-shell prints the agent's list of answers).
fn shell(ns: &Netns, command: &str, args: &str) -> Value {
    kea_shell(ns, &["--port", "8000", "--service", "dhcp4"], command, args)
        .unwrap_or_else(|text| panic!("kea-shell {command}: {text}"))
}

/// kea-shell to 198.18.255.1 with `options`, sending `command` with `args`: the first answer,
/// or what it printed when that is no JSON.
fn kea_shell(ns: &Netns, options: &[&str], command: &str, args: &str) -> Result<Value, String> {
    let mut child = ns
        .exec(tool("kea-shell", "python3-kea-connector"))
        .args(["--host", "198.18.255.1", "--timeout", "10"])
        .args(options)
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kea-shell");
    child.stdin.take().expect("stdin").write_all(args.as_bytes()).expect("arguments");
    let out = child.wait_with_output().expect("kea-shell output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(v) => Ok(v.get(0).cloned().unwrap_or(v)),
        Err(e) => Err(format!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr))),
    }
}

/// Waits until the agent answers.
fn wait_for_agent(ns: &Netns) {
    for _ in 0..100 {
        let out = ns
            .exec(tool("kea-shell", "python3-kea-connector"))
            .args(["--host", "198.18.255.1", "--port", "8000", "--timeout", "2", "--service", "dhcp4", "version-get"])
            .stdin(Stdio::null())
            .output()
            .expect("kea-shell");
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("\"result\"") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("kea-ctrl-agent did not answer");
}

#[test]
fn kea_ctrl_agent_and_kea_shell_manage_the_daemon() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("ctl");
    let cfg = dir.config(CONFIG);
    let state = TempDir::new("state");
    let socket = dir.path().join("dhcp-xdp.sock");
    let socket_arg = socket.display().to_string();
    let state_arg = state.path().display().to_string();
    let args = ["--config", &cfg, "--control-socket", &socket_arg, "--state-dir", &state_arg];
    let daemon = Daemon::start(&net.server, &net.server_if, &args);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&socket).expect("socket").permissions().mode() & 0o777, 0o600);
    let _agent = Agent::start(&net.server, &dir, &socket);
    wait_for_agent(&net.server);
    let ns = &net.server;

    let list = shell(ns, "list-commands", "");
    assert_eq!(list["result"], 0, "{list}");
    let names: Vec<&str> = list["arguments"].as_array().expect("list").iter().filter_map(Value::as_str).collect();
    for c in ["lease4-get-page", "statistic-get-all", "config-reload", "shutdown"] {
        assert!(names.contains(&c), "{c} missing from {names:?}");
    }
    assert!(shell(ns, "version-get", "")["text"].as_str().expect("text").starts_with("dhcp-xdp "));
    let status = shell(ns, "status-get", "");
    assert_eq!(status["arguments"]["pid"], daemon.pid().as_raw(), "{status}");
    assert!(shell(ns, "build-report", "")["text"].as_str().is_some());
    let conf = shell(ns, "config-get", "");
    assert_eq!(conf["arguments"]["Dhcp4"]["subnet4"][0]["subnet"], "198.18.0.0/16", "{conf}");
    assert_eq!(shell(ns, "config-test", &format!("\"file\": \"{cfg}\""))["result"], 0);
    assert_eq!(shell(ns, "config-reload", "")["text"], "Configuration successful.");

    // A real client's lease shows up.
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut link = Link::open(&net.client, &net.client_if);
    let d = dora(&mut link, mac, [2, 0xaa, 0, 0, 0, 1], 0x500, Duration::from_millis(500), 3);
    let client_addr = d.offered.expect("offer");
    assert!(d.acked);
    let got = shell(ns, "lease4-get", &format!("\"ip-address\": \"{client_addr}\""));
    assert_eq!((got["result"].clone(), got["text"].clone()), (json!(0), json!("IPv4 lease found.")), "{got}");
    assert_eq!(got["arguments"]["hw-address"], "02:aa:00:00:00:01");
    assert_eq!(got["arguments"]["valid-lft"], 3600);
    let by_hw = shell(ns, "lease4-get-by-hw-address", "\"hw-address\": \"02:aa:00:00:00:01\"");
    assert_eq!(by_hw["arguments"]["leases"][0]["ip-address"], client_addr.to_string());

    // Edits: add, refuse an address in use, update, page through, delete, wipe.
    let add = shell(ns, "lease4-add", "\"ip-address\": \"198.18.16.150\", \"hw-address\": \"02:bb:00:00:00:01\"");
    assert_eq!(add["text"], "Lease for address 198.18.16.150, subnet-id 1 added.", "{add}");
    let taken = shell(ns, "lease4-add", "\"ip-address\": \"198.18.16.150\", \"hw-address\": \"02:bb:00:00:00:02\"");
    assert_eq!(taken["result"], 1, "{taken}");
    let cid = shell(
        ns,
        "lease4-add",
        "\"ip-address\": \"198.18.16.151\", \"hw-address\": \"02:bb:00:00:00:03\", \"client-id\": \"01:02:03\"",
    );
    assert_eq!(cid["result"], 0, "{cid}");
    assert_eq!(
        shell(ns, "lease4-get-by-client-id", "\"client-id\": \"01:02:03\"")["arguments"]["leases"][0]["ip-address"],
        "198.18.16.151"
    );
    let id = shell(
        ns,
        "lease4-get",
        "\"identifier-type\": \"hw-address\", \"identifier\": \"02:bb:00:00:00:01\", \"subnet-id\": 1",
    );
    assert_eq!(id["arguments"]["ip-address"], "198.18.16.150");
    let upd = shell(ns, "lease4-update", "\"ip-address\": \"198.18.16.150\", \"hw-address\": \"02:bb:00:00:00:09\"");
    assert_eq!(upd["result"], 0, "{upd}");
    let all = shell(ns, "lease4-get-all", "");
    assert_eq!(all["arguments"]["leases"].as_array().expect("leases").len(), 3, "{all}");
    let page = shell(ns, "lease4-get-page", "\"from\": \"start\", \"limit\": 2");
    assert_eq!(page["arguments"]["count"], 2);
    let last = page["arguments"]["leases"][1]["ip-address"].as_str().expect("address").to_owned();
    let rest = shell(ns, "lease4-get-page", &format!("\"from\": \"{last}\", \"limit\": 2"));
    assert_eq!(rest["arguments"]["count"], 1, "{rest}");

    // Statistics in Kea's names.
    let stats = shell(ns, "statistic-get-all", "");
    assert_eq!(stats["arguments"]["pkt4-ack-sent"][0][0], 1, "{stats}");
    assert_eq!(stats["arguments"]["subnet[1].total-addresses"][0][0], 200);
    assert_eq!(stats["arguments"]["subnet[1].assigned-addresses"][0][0], 3);
    assert_eq!(
        shell(ns, "statistic-get", "\"name\": \"pkt4-discover-received\"")["arguments"]["pkt4-discover-received"][0][0],
        1
    );
    assert_eq!(shell(ns, "statistic-reset-all", "")["result"], 0);
    assert_eq!(shell(ns, "statistic-get", "\"name\": \"pkt4-ack-sent\"")["arguments"]["pkt4-ack-sent"][0][0], 0);
    assert_eq!(shell(ns, "dhcp-disable", "")["result"], 2, "unsupported command");

    // The local client, `dhcp-xdp ctl`: tables for leases and statistics, JSON otherwise.
    let ctl = |args: &[&str]| {
        let out = std::process::Command::new(tests::daemon_bin())
            .args(["ctl", "--socket", &socket_arg])
            .args(args)
            .output()
            .expect("dhcp-xdp ctl");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, table) = ctl(&["leases"]);
    assert!(ok, "{table}");
    assert!(table.lines().next().is_some_and(|h| h.starts_with("address")), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&client_addr.to_string()) && l.contains("02:aa:00:00:00:01") && l.contains("bound")),
        "{table}"
    );
    assert!(table.contains("3 leases"), "{table}");
    let (ok, stats) = ctl(&["stats"]);
    assert!(ok && stats.lines().any(|l| l.starts_with("subnet[1].assigned-addresses") && l.ends_with(" 3")), "{stats}");
    let (ok, json) = ctl(&["lease4-get", "{\"ip-address\": \"198.18.16.151\"}"]);
    assert!(ok, "{json}");
    assert_eq!(serde_json::from_str::<Value>(&json).expect("JSON")["arguments"]["client-id"], "01:02:03");
    let (ok, _) = ctl(&["dhcp-disable"]);
    assert!(!ok, "an unsupported command exits non-zero");

    // Edits are durable before the answer: SIGKILL now, and the added lease is recovered.
    daemon.signal_and_wait(Signal::SIGKILL);
    let (rec, _) = recovered_leases(state.path());
    let added = rec.get(&[2, 0xbb, 0, 0, 0, 9]).expect("the updated lease was not durable");
    assert_eq!(added.addr, Ipv4Addr::new(198, 18, 16, 150));
    assert!(rec.contains_key(&[2, 0xbb, 0, 0, 0, 3]), "the added lease was not durable");

    // A new daemon on the same state: delete, wipe, shutdown.
    let mut daemon = Daemon::start(&net.server, &net.server_if, &args);
    wait_for_agent(&net.server);
    assert_eq!(shell(ns, "lease4-del", "\"ip-address\": \"198.18.16.150\"")["text"], "IPv4 lease deleted.");
    assert_eq!(shell(ns, "lease4-get", "\"ip-address\": \"198.18.16.150\"")["result"], 3);
    let wipe = shell(ns, "lease4-wipe", "\"subnet-id\": 1");
    assert_eq!(wipe["result"], 0, "{wipe}");
    assert_eq!(shell(ns, "lease4-get-all", "")["result"], 3, "nothing left");
    assert_eq!(shell(ns, "shutdown", "")["result"], 0);
    let exit = daemon.wait(Duration::from_secs(15));
    assert!(exit.status.success(), "{:?}", exit.stderr);
}

/// kea-shell as a user of the daemon's own HTTP control socket (Kea 3's, no agent between).
fn shell_as(ns: &Netns, user: &str, password: &str, command: &str, args: &str) -> Result<Value, String> {
    kea_shell(ns, &["--port", "8001", "--auth-user", user, "--auth-password", password], command, args)
}

/// A raw HTTP exchange with the control socket from `ns`: the status line and the body.
fn http_raw(ns: &Netns, request: String) -> String {
    ns.enter(move || {
        use std::io::Read as _;
        let mut s = std::net::TcpStream::connect("198.18.255.1:8001").expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        s.write_all(request.as_bytes()).expect("send");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
}

/// Kea 3's HTTP control socket in the daemon itself: kea-shell, as a configured user, manages
/// the daemon with no agent between (status, a lease added and read back); a wrong password,
/// an unknown user and no credentials are answered 401 without running the command; a GET is
/// refused; the unix socket keeps working beside it.
#[test]
fn kea_shell_manages_the_daemon_over_its_own_http_socket_with_basic_authentication() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("ctlhttp");
    let pw = dir.path().join("ipam.pw");
    std::fs::write(&pw, "s3cret-pass\n").expect("password file");
    let cfg = dir.config(&format!(
        "{CONFIG}[control]\nhttp = {{ listen = \"198.18.255.1:8001\", users = [{{ user = \"ipam\", password-file = \"{}\" }}] }}\n",
        pw.display()
    ));
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    // From the client's side of the link, as a provisioning system would.
    let ns = &net.client;
    let status = shell_as(ns, "ipam", "s3cret-pass", "status-get", "").expect("status-get over HTTP");
    assert_eq!(status["arguments"]["pid"], daemon.pid().as_raw(), "{status}");
    let add = shell_as(
        ns,
        "ipam",
        "s3cret-pass",
        "lease4-add",
        "\"ip-address\": \"198.18.16.77\", \"hw-address\": \"02:cc:00:00:00:01\"",
    )
    .expect("lease4-add over HTTP");
    assert_eq!(add["result"], 0, "{add}");
    let got =
        shell_as(ns, "ipam", "s3cret-pass", "lease4-get", "\"ip-address\": \"198.18.16.77\"").expect("lease4-get");
    assert_eq!(got["arguments"]["hw-address"], "02:cc:00:00:00:01", "{got}");
    // Refused: nothing runs.
    for (user, pass) in [("ipam", "wrong"), ("intruder", "s3cret-pass")] {
        let r = shell_as(ns, user, pass, "lease4-del", "\"ip-address\": \"198.18.16.77\"");
        assert!(r.as_ref().map_or(true, |v| v["result"] == 401), "{user}/{pass}: {r:?}");
    }
    let body = r#"{"command": "lease4-del", "arguments": {"ip-address": "198.18.16.77"}}"#;
    let anon = http_raw(
        ns,
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(anon.starts_with("HTTP/1.1 401"), "{anon}");
    let got =
        shell_as(ns, "ipam", "s3cret-pass", "lease4-get", "\"ip-address\": \"198.18.16.77\"").expect("lease4-get");
    assert_eq!(got["result"], 0, "the refused deletes deleted nothing: {got}");
    let auth = "Basic aXBhbTpzM2NyZXQtcGFzcw=="; // ipam:s3cret-pass
    let get = http_raw(ns, format!("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"));
    assert!(get.starts_with("HTTP/1.1 405"), "{get}");
    // The unix socket goes on beside it.
    assert_eq!(daemon.ask("version-get", json!({}))["result"], 0);
}

/// The offer `chaddr` gets, as a whole reply (to read its boot fields and options).
fn offer_of(net: &TwoHosts, chaddr: [u8; 6], xid: u32) -> Option<tests::frames::Reply> {
    let mut link = Link::open(&net.client, &net.client_if);
    let mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut r = tests::frames::Request::discover(mac, chaddr, xid);
    r.options.extend_from_slice(&[55, 3, 1, 3, 15]);
    for _ in 0..4 {
        link.send(&r.build());
        if let Some(o) = link.replies(1, Duration::from_millis(500), |x| x.xid() == xid).into_iter().next() {
            return Some(o);
        }
    }
    None
}

/// Reservations managed live (Kea's host commands): one added through the API is kept before
/// the answer, given to its client at once (address, boot file, its options), read back with
/// the file's own, found by identifier and by address, paged; it outlives a reload and a
/// restart (the state directory keeps it); duplicates and bad ones are refused with the reason;
/// a file reservation cannot be deleted through the API; deleted, it is gone. subnet4-list and
/// subnet4-get show the subnets.
#[test]
fn reservations_are_added_read_and_deleted_while_the_daemon_runs() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("hosts");
    let state = TempDir::new("hoststate");
    let cfg = dir.config(&format!(
        "[[client-class]]\nname = \"pxe\"\nnext-server = \"198.18.0.9\"\n{CONFIG}\
         [[subnet.reservation]]\nhw-address = \"02:dd:00:00:00:ff\"\nip = \"198.18.16.9\"\n"
    ));
    let state_arg = state.path().display().to_string();
    let args = ["--config", cfg.as_str(), "--state-dir", state_arg.as_str()];
    let daemon = Daemon::start(&net.server, &net.server_if, &args);
    let host = json!({
        "subnet-id": 1, "hw-address": "02:dd:00:00:00:01", "ip-address": "198.18.16.50", "hostname": "stb-1",
        "client-classes": ["pxe"], "boot-file-name": "stb.img",
        "option-data": [{ "name": "domain-name", "data": "stb.example.net" }],
    });
    let add = daemon.ask("reservation-add", json!({ "reservation": host }));
    assert_eq!((add["result"].clone(), add["text"].clone()), (json!(0), json!("Host added.")), "{add}");
    assert!(state.path().join("hosts.json").exists(), "kept in the state directory before the answer");
    let check_client = |xid: u32| {
        let o = offer_of(&net, [2, 0xdd, 0, 0, 0, 1], xid).expect("an offer for the reserved host");
        assert_eq!(o.yiaddr(), Ipv4Addr::new(198, 18, 16, 50));
        let file = &o.bootp[108..236];
        assert_eq!(&file[..7], b"stb.img", "its boot file");
        assert_eq!(&o.bootp[20..24], &[198, 18, 0, 9], "next-server from its class");
        assert_eq!(o.option(15), Some(&b"stb.example.net"[..]), "its own option");
    };
    check_client(0x6001);
    let got = daemon.ask(
        "reservation-get",
        json!({ "subnet-id": 1, "identifier-type": "hw-address", "identifier": "02:dd:00:00:00:01" }),
    );
    assert_eq!(got["arguments"]["ip-address"], "198.18.16.50", "{got}");
    assert_eq!(got["arguments"]["source"], "api", "{got}");
    let by_ip = daemon.ask("reservation-get", json!({ "subnet-id": 1, "ip-address": "198.18.16.9" }));
    assert_eq!(by_ip["arguments"]["source"], "configuration file", "{by_ip}");
    let all = daemon.ask("reservation-get-all", json!({ "subnet-id": 1 }));
    assert_eq!(all["arguments"]["hosts"].as_array().map(Vec::len), Some(2), "{all}");
    let page = daemon.ask("reservation-get-page", json!({ "limit": 1 }));
    assert_eq!(page["arguments"]["count"], 1, "{page}");
    let next = daemon.ask("reservation-get-page", json!({ "limit": 1, "from": page["arguments"]["next"]["from"] }));
    assert_eq!(next["arguments"]["hosts"][0]["hw-address"], "02:dd:00:00:00:01", "{next}");
    // Refused, with the reason; nothing changes.
    for (bad, why) in [
        (
            json!({ "subnet-id": 1, "hw-address": "02:dd:00:00:00:02", "ip-address": "198.18.16.50" }),
            "reserved already",
        ),
        (json!({ "subnet-id": 1, "hw-address": "02:dd:00:00:00:01" }), "already"),
        (json!({ "subnet-id": 1, "hw-address": "02:dd:00:00:00:03", "ip-address": "198.19.0.1" }), "outside"),
        (json!({ "subnet-id": 9, "hw-address": "02:dd:00:00:00:03" }), "no subnet"),
        (json!({ "subnet-id": 1, "hw-address": "02:dd:00:00:00:03", "client-classes": ["nope"] }), "no client class"),
    ] {
        let r = daemon.ask("reservation-add", json!({ "reservation": bad }));
        assert!(r["result"] == 1 && r["text"].as_str().is_some_and(|t| t.contains(why)), "{why}: {r}");
    }
    let file_del = daemon.ask("reservation-del", json!({ "subnet-id": 1, "ip-address": "198.18.16.9" }));
    assert!(file_del["text"].as_str().is_some_and(|t| t.contains("configuration file")), "{file_del}");
    let list = daemon.ask("subnet4-list", json!({}));
    assert_eq!(list["arguments"]["subnets"][0]["subnet"], "198.18.0.0/16", "{list}");
    let sub = daemon.ask("subnet4-get", json!({ "id": 1 }));
    assert_eq!(sub["arguments"]["subnet4"][0]["reservations"].as_array().map(Vec::len), Some(2), "{sub}");
    // A reload of the file keeps it; so does a restart.
    assert_eq!(daemon.ask("config-reload", json!({}))["result"], 0);
    assert_eq!(daemon.ask("reservation-get", json!({ "subnet-id": 1, "ip-address": "198.18.16.50" }))["result"], 0);
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(exit.status.success(), "{}", exit.stderr.join("\n"));
    let daemon = Daemon::start(&net.server, &net.server_if, &args);
    assert_eq!(daemon.ask("reservation-get", json!({ "subnet-id": 1, "ip-address": "198.18.16.50" }))["result"], 0);
    check_client(0x6002);
    // config-write: the file with the API's reservation in it, as the file's own.
    let written = dir.path().join("written.toml");
    let w = daemon.ask("config-write", json!({ "filename": written.display().to_string() }));
    assert_eq!(w["result"], 0, "{w}");
    let text = std::fs::read_to_string(&written).expect("written file");
    assert!(text.contains("198.18.16.50") && text.contains("stb.img") && text.contains("198.18.16.9"), "{text}");
    let check = daemon.ask("config-test", json!({ "file": written.display().to_string() }));
    assert_eq!(check["result"], 0, "{check}");
    // Deleted: gone, also after a restart.
    let del = daemon.ask(
        "reservation-del",
        json!({ "subnet-id": 1, "identifier-type": "hw-address", "identifier": "02:dd:00:00:00:01" }),
    );
    assert_eq!(del["text"], "Host deleted.", "{del}");
    assert_eq!(daemon.ask("reservation-get", json!({ "subnet-id": 1, "ip-address": "198.18.16.50" }))["result"], 3);
    let exit = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(exit.status.success(), "{}", exit.stderr.join("\n"));
    let daemon = Daemon::start(&net.server, &net.server_if, &args);
    assert_eq!(daemon.ask("reservation-get", json!({ "subnet-id": 1, "ip-address": "198.18.16.50" }))["result"], 3);
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out =
        std::process::Command::new(tool("openssl", "openssl")).current_dir(dir).args(args).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, a server certificate for 198.18.255.1 and a client certificate, in `dir`.
fn certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=dhcp-xdp test CA"],
        ]
        .concat(),
    );
    for (name, ext) in [
        ("server", "subjectAltName=IP:198.18.255.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext");
        openssl(
            dir,
            &[
                &["req"][..],
                &ec,
                &["-keyout", &format!("{name}.key"), "-out", &format!("{name}.csr"), "-subj", &format!("/CN={name}")],
            ]
            .concat(),
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.crt"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

/// The HTTP control socket over TLS with client certificates (Kea's `trust-anchor`,
/// `cert-required`): kea-shell with the CA, a client certificate and the user's password
/// manages the daemon; without a client certificate, or in plain HTTP, nothing is answered.
#[test]
fn the_http_control_socket_speaks_tls_and_asks_for_client_certificates() {
    let net = TwoHosts::for_dhcp(1);
    let dir = TempDir::new("ctltls");
    let d = dir.path();
    certificates(d);
    std::fs::write(d.join("ipam.pw"), "s3cret-pass\n").expect("password file");
    let cfg = dir.config(&format!(
        "{CONFIG}[control]\nhttp = {{ listen = \"198.18.255.1:8001\", users = [{{ user = \"ipam\", password-file = \"{pw}\" }}], \
         tls = {{ cert-file = \"{d}/server.crt\", key-file = \"{d}/server.key\", trust-anchor = \"{d}/ca.crt\" }} }}\n",
        pw = d.join("ipam.pw").display(),
        d = d.display()
    ));
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let shell_tls = |client_cert: bool| {
        let mut cmd = net.client.exec(tool("kea-shell", "python3-kea-connector"));
        cmd.args(["--host", "198.18.255.1", "--port", "8001", "--timeout", "10", "--auth-user", "ipam"])
            .args(["--auth-password", "s3cret-pass", "--ca"])
            .arg(d.join("ca.crt"));
        if client_cert {
            cmd.arg("--cert").arg(d.join("client.crt")).arg("--key").arg(d.join("client.key"));
        }
        let out = cmd.arg("status-get").stdin(Stdio::null()).output().expect("kea-shell");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        serde_json::from_str::<Value>(text.trim()).map(|v| v.get(0).cloned().unwrap_or(v)).map_err(|_| text)
    };
    let status = shell_tls(true).expect("status-get over TLS with a client certificate");
    assert_eq!(status["arguments"]["pid"], daemon.pid().as_raw(), "{status}");
    assert!(shell_tls(false).is_err(), "answered without a client certificate");
    let plain = http_raw(&net.client, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}".into());
    assert!(!plain.contains("HTTP/1.1 200"), "plain HTTP answered on the TLS port: {plain}");
}
