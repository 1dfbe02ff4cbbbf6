//! Subscriber policy against Kea itself: the real kea-dhcp4 and dhcp-xdp, given equivalent
//! configurations (client classes with Kea's expressions, class-guarded pools, class options,
//! boot fields on classes, the subnet and a reservation), are sent the same DISCOVERs of twenty
//! device profiles — PXE clients, cable modems, TR-069 CPEs, IPTV boxes by vendor class and by
//! MAC prefix, a business line by its relay's circuit id, known and unknown devices. For each,
//! the pool the offered address lies in, the boot fields and every requested option must be the
//! same from both servers.

use std::{
    net::Ipv4Addr,
    process::{Child, Stdio},
    time::Duration,
};

use serde_json::json;
use tests::{
    Daemon, TempDir, TwoHosts,
    frames::{Link, Reply, Request},
    tool,
};

/// The pools, in order (the comparison names the pool an address lies in).
const POOLS: [(&str, &str, Option<&str>); 5] = [
    ("198.18.255.100", "198.18.255.119", Some("iptv")),
    ("198.18.255.120", "198.18.255.139", Some("pxe")),
    ("198.18.255.140", "198.18.255.159", Some("modem")),
    ("198.18.255.160", "198.18.255.179", Some("business")),
    ("198.18.255.180", "198.18.255.219", Some("other")),
];

/// The classes: name, Kea's test, options (Kea name, TOML key, value), boot fields.
struct Class {
    name: &'static str,
    test: &'static str,
    options: &'static [(&'static str, &'static str, &'static str)],
    next_server: Option<&'static str>,
    boot_file: Option<&'static str>,
}

const CLASSES: &[Class] = &[
    Class {
        name: "iptv",
        test: "substring(option[60].hex,0,6) == 'IPTVBX' or substring(pkt4.mac,0,3) == 0x001a2b",
        options: &[
            ("ntp-servers", "ntp-servers", "198.18.255.124"),
            ("domain-name", "domain-name", "iptv.example.net"),
        ],
        next_server: None,
        boot_file: None,
    },
    Class {
        name: "efi",
        test: "option[93].hex == 0x0007 and not member('iptv')",
        options: &[],
        next_server: None,
        boot_file: Some("grubx64.efi"),
    },
    Class {
        name: "pxe",
        test: "option[93].exists and not member('iptv')",
        options: &[("tftp-server-name", "66", "tftp.example.net")],
        next_server: Some("198.18.255.9"),
        boot_file: Some("pxelinux.0"),
    },
    Class {
        name: "modem",
        test: "substring(option[60].hex,0,6) == 'docsis'",
        options: &[("domain-name-servers", "dns-servers", "198.18.255.54")],
        next_server: Some("198.18.255.10"),
        boot_file: Some("modem.cfg"),
    },
    Class {
        name: "cpe",
        test: "option[60].hex == 'dslforum.org' or option[77].hex == 'cpe'",
        options: &[("ntp-servers", "ntp-servers", "198.18.255.125")],
        next_server: None,
        boot_file: None,
    },
    Class {
        name: "business",
        test: "relay4[1].hex == 'biz/1/1' or relay4[2].hex == 'acme'",
        options: &[("domain-name", "domain-name", "acme.example.net")],
        next_server: None,
        boot_file: None,
    },
    Class {
        name: "known",
        test: "member('KNOWN')",
        options: &[("ntp-servers", "ntp-servers", "198.18.255.126")],
        next_server: None,
        boot_file: None,
    },
    Class {
        name: "camera",
        test: "substring(option[12].hex,0,3) == 'CAM' or hexstring(substring(pkt4.mac,0,2),':') == '02:ca'",
        options: &[("domain-name", "domain-name", "cams.example.net")],
        next_server: None,
        boot_file: None,
    },
    // Every device no other pool is for: pools are exclusive, so the pool a client gets does
    // not depend on where an allocator's cursor stands (Kea's iterative one walks on from the
    // last address it gave, through every pool the client may use).
    Class {
        name: "other",
        test: "not (member('iptv') or member('pxe') or member('modem') or member('business'))",
        options: &[],
        next_server: None,
        boot_file: None,
    },
];

/// A device: its MAC, its options (raw, after 53), and the relay it comes through
/// (circuit id, remote id) if any.
struct Profile {
    name: &'static str,
    mac: [u8; 6],
    options: Vec<u8>,
    relay: Option<(&'static [u8], &'static [u8])>,
}

fn opt(code: u8, v: &[u8]) -> Vec<u8> {
    let mut o = vec![code, v.len() as u8];
    o.extend_from_slice(v);
    o
}

fn profiles() -> Vec<Profile> {
    let p = |name, last: u8, options: Vec<Vec<u8>>| Profile {
        name,
        mac: [2, 0, 0, 0, 0x24, last],
        options: options.concat(),
        relay: None,
    };
    let mut v = vec![
        p("pxe bios", 1, vec![opt(93, &[0, 0]), opt(60, b"PXEClient:Arch:00000:UNDI:002001")]),
        p("pxe efi", 2, vec![opt(93, &[0, 7]), opt(60, b"PXEClient:Arch:00007:UNDI:003016")]),
        p("pxe arm", 3, vec![opt(93, &[0, 11])]),
        p("cable modem", 4, vec![opt(60, b"docsis3.0:053501010102010203")]),
        p("cable modem 3.1", 5, vec![opt(60, b"docsis3.1")]),
        p("tr-069 cpe", 6, vec![opt(60, b"dslforum.org")]),
        p("cpe by user class", 7, vec![opt(77, b"cpe")]),
        p("iptv by vendor class", 8, vec![opt(60, b"IPTVBX-2000")]),
        p("iptv box that also pxe boots", 9, vec![opt(60, b"IPTVBX"), opt(93, &[0, 7])]),
        p("unknown device", 10, vec![]),
        p("unknown with a host name", 11, vec![opt(12, b"laptop")]),
        p("camera by host name", 12, vec![opt(12, b"CAM-front-door")]),
        p("vendor class near miss", 13, vec![opt(60, b"IPTVB")]),
        p("empty vendor class", 14, vec![opt(60, b"")]),
        p("known device", 0x99, vec![]),
    ];
    v.push(Profile { name: "iptv by mac prefix", mac: [0x00, 0x1a, 0x2b, 0, 0, 1], options: vec![], relay: None });
    v.push(Profile { name: "camera by mac prefix", mac: [0x02, 0xca, 0, 0, 0, 1], options: vec![], relay: None });
    v.push(Profile {
        name: "business line by circuit id",
        mac: [2, 0, 0, 0, 0x25, 1],
        options: vec![],
        relay: Some((b"biz/1/1", b"line-9")),
    });
    v.push(Profile {
        name: "business line by remote id",
        mac: [2, 0, 0, 0, 0x25, 2],
        options: vec![],
        relay: Some((b"res/4/2", b"acme")),
    });
    v.push(Profile {
        name: "residential line",
        mac: [2, 0, 0, 0, 0x25, 3],
        options: opt(60, b"dslforum.org"),
        relay: Some((b"res/4/3", b"home-3")),
    });
    v
}

/// What a reply said that the comparison looks at.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    pool: Option<usize>,
    siaddr: Ipv4Addr,
    sname: String,
    file: String,
    options: Vec<(u8, Vec<u8>)>,
}

/// The codes every profile asks for (its parameter request list).
const PRL: [u8; 7] = [1, 3, 6, 15, 42, 66, 67];

fn seen(r: &Reply) -> Seen {
    let y = u32::from(r.yiaddr());
    let pool = POOLS.iter().position(|(a, b, _)| {
        (u32::from(a.parse::<Ipv4Addr>().unwrap())..=u32::from(b.parse::<Ipv4Addr>().unwrap())).contains(&y)
    });
    let text = |b: &[u8]| String::from_utf8_lossy(&b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]).into_owned();
    Seen {
        pool,
        siaddr: Ipv4Addr::new(r.bootp[20], r.bootp[21], r.bootp[22], r.bootp[23]),
        sname: text(&r.bootp[44..108]),
        file: text(&r.bootp[108..236]),
        options: PRL.iter().filter_map(|&c| r.option(c).map(|v| (c, v.to_vec()))).collect(),
    }
}

/// Each profile's DISCOVER (relayed through the client host's own address where it has a
/// relay), and the OFFER it got.
fn ask_all(net: &TwoHosts, server_mac: [u8; 6]) -> Vec<(String, Option<Seen>)> {
    let mut link = Link::open(&net.client, &net.client_if);
    let client_mac = TwoHosts::mac(&net.client, &net.client_if);
    let mut out = vec![];
    for (i, p) in profiles().iter().enumerate() {
        let xid = 0x5100 + i as u32;
        let mut r = Request::discover(client_mac, p.mac, xid);
        r.options.extend(opt(55, &PRL));
        r.options.extend_from_slice(&p.options);
        if let Some((circuit, remote)) = p.relay {
            r.giaddr = net.client_ip;
            r.src_ip = net.client_ip;
            r.dst_ip = net.server_ip;
            r.dst_mac = server_mac;
            r.src_port = 67;
            r.options.extend(opt(82, &[opt(1, circuit), opt(2, remote)].concat()));
        }
        let mut got = None;
        for _ in 0..4 {
            link.send(&r.build());
            let replies =
                link.replies(1, Duration::from_millis(700), |x| x.xid() == xid && x.message_type() == Some(2));
            if let Some(o) = replies.first() {
                got = Some(seen(o));
                break;
            }
        }
        out.push((p.name.to_string(), got));
    }
    out
}

/// A kea-dhcp4 process: killed on drop.
struct Kea(Child);

impl Drop for Kea {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kea_config(iface: &str, log: &std::path::Path) -> serde_json::Value {
    let classes: Vec<serde_json::Value> = CLASSES
        .iter()
        .map(|c| {
            let mut o = json!({ "name": c.name, "test": c.test });
            if !c.options.is_empty() {
                o["option-data"] = c.options.iter().map(|(n, _, v)| json!({ "name": n, "data": v })).collect();
            }
            if let Some(n) = c.next_server {
                o["next-server"] = json!(n);
            }
            if let Some(f) = c.boot_file {
                o["boot-file-name"] = json!(f);
            }
            o
        })
        .collect();
    let pools: Vec<serde_json::Value> = POOLS
        .iter()
        .map(|(a, b, class)| {
            let mut p = json!({ "pool": format!("{a} - {b}") });
            if let Some(c) = class {
                p["client-class"] = json!(c);
            }
            p
        })
        .collect();
    json!({ "Dhcp4": {
        "interfaces-config": { "interfaces": [iface], "dhcp-socket-type": "raw" },
        "lease-database": { "type": "memfile", "persist": false },
        "valid-lifetime": 3600,
        "option-data": [
            { "name": "domain-name-servers", "data": "198.18.255.53" },
            { "name": "domain-name", "data": "example.net" },
            { "name": "ntp-servers", "data": "198.18.255.123" },
        ],
        "client-classes": classes,
        "subnet4": [{
            "id": 1, "subnet": "198.18.255.0/24", "server-hostname": "boot.example.net",
            "option-data": [{ "name": "routers", "data": "198.18.255.1" }],
            "pools": pools,
            "reservations": [{ "hw-address": "02:00:00:00:24:99", "next-server": "198.18.255.11", "boot-file-name": "special.efi" }],
        }],
        "loggers": [{ "name": "kea-dhcp4", "output_options": [{ "output": log.display().to_string() }], "severity": "DEBUG", "debuglevel": 40 }],
    }})
}

fn toml_config() -> String {
    let mut s = String::from(
        "[options]\ndns-servers = [\"198.18.255.53\"]\ndomain-name = \"example.net\"\nntp-servers = [\"198.18.255.123\"]\n",
    );
    for c in CLASSES {
        s.push_str(&format!("[[client-class]]\nname = \"{}\"\ntest = \"{}\"\n", c.name, c.test));
        if let Some(n) = c.next_server {
            s.push_str(&format!("next-server = \"{n}\"\n"));
        }
        if let Some(f) = c.boot_file {
            s.push_str(&format!("boot-file-name = \"{f}\"\n"));
        }
        let mut opts = vec![];
        let mut custom = vec![];
        for (_, key, v) in c.options {
            match *key {
                "domain-name" => opts.push(format!("domain-name = \"{v}\"")),
                "66" => custom.push(format!("{{ code = 66, text = \"{v}\" }}")),
                k => opts.push(format!("{k} = [\"{v}\"]")),
            }
        }
        if !custom.is_empty() {
            opts.push(format!("custom = [{}]", custom.join(", ")));
        }
        if !opts.is_empty() {
            s.push_str(&format!("options = {{ {} }}\n", opts.join(", ")));
        }
    }
    s.push_str(
        "[[subnet]]\nsubnet = \"198.18.255.0/24\"\nid = 1\nserver-hostname = \"boot.example.net\"\n\
         options = { routers = [\"198.18.255.1\"] }\n",
    );
    for (a, b, class) in POOLS {
        s.push_str(&format!("[[subnet.pool]]\nrange = \"{a}-{b}\"\n"));
        if let Some(c) = class {
            s.push_str(&format!("client-class = \"{c}\"\n"));
        }
    }
    s.push_str(
        "[[subnet.reservation]]\nhw-address = \"02:00:00:00:24:99\"\nnext-server = \"198.18.255.11\"\nboot-file-name = \"special.efi\"\n",
    );
    s
}

#[test]
fn twenty_device_profiles_get_what_kea_gives_them() {
    let net = TwoHosts::for_dhcp(1);
    // The server's only address is in the subnet: Kea selects a direct client's subnet by the
    // interface's first address.
    tests::sh(net.server.ip().args(["addr", "flush", "dev", &net.server_if]));
    tests::sh(net.server.ip().args(["addr", "add", "198.18.255.1/24", "dev", &net.server_if]));
    let server_mac = TwoHosts::mac(&net.server, &net.server_if);
    let dir = TempDir::new("classes");

    let conf = dir.path().join("kea-dhcp4.json");
    let kea_log = dir.path().join("kea.log");
    std::fs::write(&conf, kea_config(&net.server_if, &kea_log).to_string()).expect("kea config");
    // Kea must take the configuration as it is (or the comparison compares nothing).
    let check =
        net.server.exec(tool("kea-dhcp4", "kea-dhcp4-server")).arg("-t").arg(&conf).output().expect("kea-dhcp4 -t");
    assert!(check.status.success(), "Kea refuses the configuration: {}", String::from_utf8_lossy(&check.stdout));
    let kea = Kea(net
        .server
        .exec(tool("kea-dhcp4", "kea-dhcp4-server"))
        .arg("-c")
        .arg(&conf)
        .env("KEA_PIDFILE_DIR", dir.path())
        .env("KEA_LOCKFILE_DIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kea-dhcp4"));
    std::thread::sleep(Duration::from_secs(2));
    let from_kea = ask_all(&net, server_mac);
    drop(kea);
    let log = std::fs::read_to_string(&kea_log).unwrap_or_default();

    let cfg = dir.config(&toml_config());
    let daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let from_us = ask_all(&net, server_mac);
    drop(daemon);

    let mut differ = vec![];
    for ((name, kea), (_, us)) in from_kea.iter().zip(&from_us) {
        println!("{name}: kea {kea:?}\n{:>w$}  dhcp-xdp {us:?}", "", w = name.len());
        if kea != us {
            differ.push(name.clone());
        }
    }
    let tail: String = log.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(differ.is_empty(), "profiles answered differently: {differ:?}; Kea's log ends:\n{tail}");
    // The comparison means something: every profile was offered an address, and the profiles
    // reached every pool, both boot files of the PXE classes, and the class options.
    assert!(from_kea.iter().all(|(_, s)| s.is_some()), "Kea offered nothing to some profiles; its log:\n{log}");
    let offered: Vec<&Seen> = from_us.iter().filter_map(|(_, s)| s.as_ref()).collect();
    for pool in 0..POOLS.len() {
        assert!(offered.iter().any(|s| s.pool == Some(pool)), "no profile reached pool {pool}");
    }
    for file in ["pxelinux.0", "grubx64.efi", "modem.cfg", "special.efi"] {
        assert!(offered.iter().any(|s| s.file == file), "no profile got boot file {file}");
    }
    assert!(offered.iter().any(|s| s.options.contains(&(66, b"tftp.example.net".to_vec()))));
    assert!(offered.iter().any(|s| s.options.contains(&(15, b"acme.example.net".to_vec()))));
}

/// A real client with a vendor class (busybox udhcpc -V) is classified by it: an IPTV box gets
/// an address of the IPTV pool and its class's domain name; a cable modem one of the modem
/// pool, its next-server and its boot file.
#[test]
fn udhcpc_with_a_vendor_class_is_classified() {
    let net = TwoHosts::for_dhcp(1);
    tests::sh(net.server.ip().args(["addr", "flush", "dev", &net.server_if]));
    tests::sh(net.server.ip().args(["addr", "add", "198.18.255.1/24", "dev", &net.server_if]));
    let dir = TempDir::new("classes");
    let cfg = dir.config(&toml_config());
    let _daemon = Daemon::start(&net.server, &net.server_if, &["--config", &cfg]);
    let in_pool = |ip: &str, pool: usize| {
        let a: Ipv4Addr = ip.parse().expect("ip");
        let (lo, hi) = (POOLS[pool].0.parse::<Ipv4Addr>().unwrap(), POOLS[pool].1.parse::<Ipv4Addr>().unwrap());
        (lo..=hi).contains(&a)
    };
    let udhcpc = tests::clients::Udhcpc::new();
    let stb = udhcpc.obtain(&net.client, &net.client_if, true, &["-V", "IPTVBX-2000"]).expect("udhcpc -V IPTVBX-2000");
    assert!(in_pool(&stb["ip"], 0), "{stb:?}");
    assert_eq!(stb["domain"], "iptv.example.net");
    let modem = udhcpc.obtain(&net.client, &net.client_if, true, &["-V", "docsis3.0"]).expect("udhcpc -V docsis3.0");
    assert!(in_pool(&modem["ip"], 2), "{modem:?}");
    assert_eq!((modem["siaddr"].as_str(), modem["boot_file"].as_str()), ("198.18.255.10", "modem.cfg"), "{modem:?}");
    // Without a vendor class: the pool of every other device.
    let plain = udhcpc.obtain(&net.client, &net.client_if, true, &[]).expect("udhcpc");
    assert!(in_pool(&plain["ip"], 4), "{plain:?}");
}
