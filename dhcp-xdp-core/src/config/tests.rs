//! What a file is understood to say, and that every error names file, line and field.
use super::*;

const SAMPLE: &str = r#"
[server]
lease-time = 7200
offer-hold = 20
bootp = "reservations"

[options]
dns-servers = ["198.18.0.53"]
domain-name = "example.net"

[[subnet]]
subnet = "198.18.0.0/24"
options = { routers = ["198.18.0.1"] }
  [[subnet.pool]]
  range = "198.18.0.100-198.18.0.199"
  [[subnet.pool]]
  range = "198.18.0.200-198.18.0.210"
  options = { dns-servers = ["198.18.0.54"] }
  [[subnet.reservation]]
  hw-address = "02:00:00:00:00:99"
  ip = "198.18.0.50"
  [[subnet.reservation]]
  circuit-id = "eth0/1/1"
  ip = "198.18.0.51"

[[subnet]]
subnet = "198.18.1.0/24"
authoritative = false
vlan = [100, 20]
shared-network = "campus"
  [[subnet.pool]]
  range = "198.18.1.10-198.18.1.20"
  [[subnet.options.custom]]
  code = 150
  ip = ["198.18.0.9"]
  [[subnet.options.classless-routes]]
  destination = "198.19.0.0/16"
  router = "198.18.1.1"
"#;

#[test]
fn sample_is_understood() {
    let c = Config::parse("sample.toml", SAMPLE).unwrap();
    assert_eq!(c.subnets.len(), 2);
    let s0 = &c.subnets[0];
    assert_eq!(s0.lease_time, 7200);
    assert_eq!((s0.renew_time, s0.rebind_time), (3600, 6300));
    assert_eq!(s0.options.get(opt::SUBNET_MASK), Some(&[255, 255, 255, 0][..]));
    assert_eq!(s0.options.get(opt::BROADCAST), Some(&[198, 18, 0, 255][..]));
    assert_eq!(s0.options.get(opt::DNS), Some(&[198, 18, 0, 53][..]));
    assert_eq!(s0.pools[1].options.get(opt::DNS), Some(&[198, 18, 0, 54][..]), "pool scope overrides");
    assert_eq!(s0.pools[1].options.get(opt::ROUTERS), Some(&[198, 18, 0, 1][..]), "subnet scope inherited");
    assert_eq!(s0.reservations[1].key, ReservationKey::CircuitId(b"eth0/1/1".to_vec()));
    let s1 = &c.subnets[1];
    assert!(!s1.authoritative);
    assert_eq!(s1.vlan, vec![100, 20]);
    assert_eq!(s1.options.get(150), Some(&[198, 18, 0, 9][..]));
    assert_eq!(s1.options.get(opt::CLASSLESS_ROUTES), Some(&[16, 198, 19, 198, 18, 1, 1][..]));
    assert_eq!(c.bootp, BootpPolicy::Reservations);
    assert!(c.describe().contains("pool 198.18.0.100-198.18.0.199 (100 addresses)"));
}

fn err(src: &str) -> ConfigError {
    Config::parse("bad.toml", src).unwrap_err()
}

#[test]
fn errors_name_file_line_and_field() {
    let e = err("[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.10-198.18.1.20\"\n");
    assert_eq!((e.file.as_str(), e.line, e.field.as_str()), ("bad.toml", 4, "subnet[0].pool[0].range"));
    assert!(e.to_string().starts_with("bad.toml:4: subnet[0].pool[0].range: "), "{e}");
    let e = err("[server]\nlease-tim = 5\n");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("unknown field"), "{e}");
    let e = err("[options]\ndns-servers = [\"198.18.0.300\"]\n");
    assert_eq!((e.line, e.field.as_str()), (2, "options.dns-servers[0]"));
    let e = err("[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet]]\nsubnet = \"198.18.0.128/25\"\n");
    assert!(e.message.contains("overlaps subnet[0]"), "{e}");
    assert_eq!(e.line, 4);
    let e = err("[server]\nlease-time = 10\n");
    assert_eq!((e.line, e.field.as_str()), (2, "server.lease-time"));
    let e = err("[[subnet]]\nsubnet = \"198.18.0.0/24\"\nrenew-time = 3000\nrebind-time = 2000\n");
    assert!(e.message.contains("renew-time"), "{e}");
    let e = err(
        "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.reservation]]\nhw-address = \"02:00\"\nip = \"198.18.0.5\"\n",
    );
    assert_eq!(e.field, "subnet[0].reservation[0].hw-address");
}

#[test]
fn subnets_are_found_by_address_and_id_among_many() {
    // 300 /24s given in shuffled order with ids not following it: the indexed lookups
    // must agree with a scan everywhere, gaps and edges included.
    let mut order: Vec<u32> = (0..300).collect();
    order.sort_by_key(|i| (i * 7919) % 300);
    let src: String = order
        .iter()
        .map(|&i| {
            let net = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + ((2 * i) << 8));
            format!("[[subnet]]\nid = {}\nsubnet = \"{net}/24\"\n", 1000 - i)
        })
        .collect();
    let c = Config::parse("many.toml", &src).unwrap();
    assert!(c.subnets.len() > SMALL);
    for probe in (0..=u32::from(Ipv4Addr::new(198, 20, 0, 0)) - u32::from(Ipv4Addr::new(198, 18, 0, 0))).step_by(61) {
        let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + probe);
        assert_eq!(c.subnet_of(a), c.subnets.iter().position(|s| s.contains(a)), "{a}");
    }
    for edge in [Ipv4Addr::new(198, 18, 0, 0), Ipv4Addr::new(198, 18, 0, 255), Ipv4Addr::new(198, 18, 1, 0)] {
        assert_eq!(c.subnet_of(edge), c.subnets.iter().position(|s| s.contains(edge)), "{edge}");
    }
    assert_eq!(c.subnet_of(Ipv4Addr::new(198, 17, 255, 255)), None);
    for (i, s) in c.subnets.iter().enumerate() {
        assert_eq!(c.subnet_index(s.id), Some(i));
    }
    assert_eq!(c.subnet_index(1), None);
    assert_eq!(c.sole_untagged(), None, "300 untagged subnets");
}

#[test]
fn the_first_matching_reservation_wins_whatever_its_key() {
    let c = Config::parse(
        "r.toml",
        "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n\
         [[subnet.reservation]]\ncircuit-id = \"olt1\"\nip = \"198.18.0.10\"\n\
         [[subnet.reservation]]\nhw-address = \"02:00:00:00:00:01\"\nip = \"198.18.0.11\"\n\
         [[subnet.reservation]]\nhw-address = \"02:00:00:00:00:01\"\nip = \"198.18.0.12\"\n\
         [[subnet.reservation]]\nclient-id = \"01:02\"\nip = \"198.18.0.13\"\n",
    )
    .unwrap();
    assert_eq!(c.sole_untagged(), Some(0));
    let x = &c.subnets[0].reservation_index;
    let mac = Some([2, 0, 0, 0, 0, 1]);
    assert_eq!(x.find(mac, &[], &[], &[]), Some(1), "the first of two equal keys");
    assert_eq!(x.find(mac, &[], b"olt1", &[]), Some(0), "configuration order across kinds");
    assert_eq!(x.find(None, &[1, 2], &[], &[]), Some(3));
    assert_eq!(x.find(Some([2, 0, 0, 0, 0, 2]), &[1], b"olt", b"olt1"), None, "remote id is not circuit id");
    assert_eq!(x.find(None, &[], &[], &[]), None);
}

#[test]
fn zero_config_serves_the_interface_subnet_minus_itself() {
    let c = Config::zero_config("eth1", Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 1), prefix: 24 }).unwrap();
    let s = &c.subnets[0];
    assert_eq!(s.pools.len(), 1);
    assert_eq!((s.pools[0].start, s.pools[0].end), (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 254)));
    assert_eq!(s.options.get(opt::ROUTERS), Some(&[198, 18, 0, 1][..]));
    assert_eq!(s.options.get(opt::DNS), Some(&[198, 18, 0, 1][..]));
    let c = Config::zero_config("eth1", Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 77), prefix: 24 }).unwrap();
    assert_eq!(c.subnets[0].pools.len(), 2);
    assert!(Config::zero_config("eth1", Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 1), prefix: 32 }).is_err());
}

#[test]
fn zero_config_is_what_the_same_file_would_say() {
    let c = Config::zero_config("eth1", Ipv4Net { addr: Ipv4Addr::new(198, 18, 0, 77), prefix: 24 }).unwrap();
    let file = Config::parse(
        "f",
        "[options]\nrouters = [\"198.18.0.77\"]\ndns-servers = [\"198.18.0.77\"]\n[[subnet]]\nsubnet = \"198.18.0.0/24\"\n\
         [[subnet.pool]]\nrange = \"198.18.0.1-198.18.0.76\"\n[[subnet.pool]]\nrange = \"198.18.0.78-198.18.0.254\"\n",
    )
    .unwrap();
    let body = |c: &Config| c.describe().split_once('\n').map(|(_, rest)| rest.to_owned()).unwrap();
    assert_eq!(body(&c), body(&file));
    assert_eq!(c.subnets[0].options.codes(), file.subnets[0].options.codes(), "same options in the same order");
    assert_eq!(c.subnets[0].pools[1].options.get(opt::BROADCAST), Some(&[198, 18, 0, 255][..]));
}

#[test]
fn limits_relays_and_option82_trust_are_understood_and_checked() {
    let c = Config::parse(
        "t.toml",
        "[relays]\ntrusted = [\"198.18.1.0/24\"]\n[limits]\nleases-per-circuit = 4\noffers-per-mac = 3\nrate-per-mac = 0\n\
         steering-key = 99\n[[subnet]]\nsubnet = \"198.18.0.0/24\"\ntrust-direct-option82 = true\n",
    )
    .unwrap();
    assert_eq!(c.limits.leases_per_circuit, 4);
    assert_eq!(c.limits.offers_per_mac, 3);
    assert_eq!(c.limits.rate_per_mac, 0);
    assert_eq!(c.limits.steering_key, Some(99));
    assert_eq!(c.limits.offers_per_circuit, Limits::default().offers_per_circuit);
    assert!(c.relay_trusted(Ipv4Addr::new(198, 18, 1, 7)) && !c.relay_trusted(Ipv4Addr::new(198, 18, 2, 7)));
    assert!(c.subnets[0].trust_direct_option82);
    assert!(c.describe().contains("trusted relays: 198.18.1.0/24"), "{}", c.describe());
    let d = Config::parse("t.toml", "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n").unwrap();
    assert!(d.relay_trusted(Ipv4Addr::new(10, 0, 0, 1)), "no list: any relay");
    assert!(!d.subnets[0].trust_direct_option82, "untrusted by default");
    let e = err("[limits]\noffers-per-circuit = 0\n");
    assert_eq!((e.line, e.field.as_str()), (2, "limits.offers-per-circuit"), "{e}");
    let e = err("[limits]\ndeclined-percent = 101\n");
    assert_eq!(e.field, "limits.declined-percent", "{e}");
    let e = err("[relays]\ntrusted = [\"198.18.1.0/33\"]\n");
    assert_eq!(e.field, "relays.trusted[0]", "{e}");
}

#[test]
fn the_control_socket_may_be_named_in_the_file() {
    let c = Config::parse(
        "t.toml",
        "[control]\nsocket = \"/run/dhcp-xdp/edge.sock\"\n[[subnet]]\nsubnet = \"198.18.0.0/24\"\n",
    )
    .unwrap();
    assert_eq!(c.control_socket, Some(std::path::PathBuf::from("/run/dhcp-xdp/edge.sock")));
    assert_eq!(err("[control]\nsockett = \"x\"\n").line, 2);
}

#[test]
fn the_metrics_listener_may_be_named_in_the_file() {
    let c = Config::parse("t.toml", "[metrics]\nlisten = \"198.18.0.1:9100\"\n").unwrap();
    assert_eq!(c.metrics_listen, Some("198.18.0.1:9100".parse().unwrap()));
    let e = err("[metrics]\nlisten = \"nowhere\"\n");
    assert_eq!((e.line, e.field.as_str()), (2, "metrics.listen"), "{e}");
}

#[test]
fn the_cluster_section_is_validated() {
    let c = Config::parse(
        "t.toml",
        "[cluster]\nnode = \"edge-a\"\ndatabase = \"postgresql:///dhcp?host=/run/postgresql\"\n",
    )
    .unwrap();
    let cl = c.cluster.expect("cluster");
    assert_eq!((cl.node.as_str(), cl.heartbeat, cl.takeover_after, cl.block_size), ("edge-a", 1, 3, 64));
    assert_eq!(cl.database, "postgresql:///dhcp?host=/run/postgresql");
    assert!(Config::parse("t.toml", "").unwrap().cluster.is_none());
    let e = err("[cluster]\ndatabase = \"postgresql:///dhcp\"\n");
    assert_eq!(e.field, "cluster.node", "{e}");
    let e = err("[cluster]\nnode = \"a\"\ndatabase = \"mysql://x\"\n");
    assert_eq!((e.line, e.field.as_str()), (3, "cluster.database"), "{e}");
    let e = err("[cluster]\nnode = \"a\"\ndatabase = \"postgresql:///d\"\nheartbeat = 2\ntakeover-after = 2\n");
    assert_eq!((e.line, e.field.as_str()), (5, "cluster.takeover-after"), "{e}");
    let e = err("[cluster]\nnode = \"a\"\ndatabase = \"postgresql:///d\"\nheartbeet = 2\n");
    assert_eq!(e.line, 4, "{e}");
}

const SUBNET6: &str = r#"
[[subnet6]]
subnet = "2001:db8:1::/64"
interface-id = "olt1/1/1"
options = { dns-servers = ["2001:db8::53"], domain-search = ["example.net", "isp.example"] }
  [[subnet6.pool]]
  range = "2001:db8:1::100-2001:db8:1::1ff"
  [[subnet6.pd-pool]]
  prefix = "2001:db8:100::"
  prefix-len = 40
  delegated-len = 56
  [[subnet6.reservation]]
  remote-id = "00000de9:6c696e652d37"
  prefixes = ["2001:db8:1ff:ff00::/56"]
"#;

#[test]
fn subnet6_reads_with_kea_like_defaults() {
    let c = Config::parse("v6.toml", SUBNET6).unwrap();
    let s = &c.subnets6[0];
    assert_eq!((s.id, s.prefix_len, s.interface_id.as_deref()), (1, 64, Some(&b"olt1/1/1"[..])));
    assert_eq!((s.valid, s.preferred, s.t1, s.t2), (7200, 3600, 1800, 2880));
    assert_eq!(s.pools[0].count(), 256);
    assert_eq!((s.pd_pools[0].count(), s.pd_pools[0].delegated_len()), (65_536, 56));
    assert_eq!(s.dns_servers, vec!["2001:db8::53".parse::<std::net::Ipv6Addr>().unwrap()]);
    assert_eq!(&s.domain_search[..13], b"\x07example\x03net\x00");
    assert_eq!(
        s.reservations[0].key,
        Reservation6Key::RemoteId(vec![0, 0, 0x0d, 0xe9, b'l', b'i', b'n', b'e', b'-', b'7'])
    );
    assert_eq!(s.reservations[0].prefixes, vec![("2001:db8:1ff:ff00::".parse().unwrap(), 56)]);
}

#[test]
fn subnet6_errors_name_line_and_field() {
    let cases: [(&str, &str, &str); 8] = [
        ("subnet = \"2001:db8:1::/64\"", "subnet = \"2001:db8:1::1/64\"", "subnet6[0].subnet"),
        (
            "range = \"2001:db8:1::100-2001:db8:1::1ff\"",
            "range = \"2001:db8:2::100-2001:db8:2::1ff\"",
            "subnet6[0].pool[0].range",
        ),
        (
            "range = \"2001:db8:1::100-2001:db8:1::1ff\"",
            "range = \"2001:db8:1::1ff-2001:db8:1::100\"",
            "subnet6[0].pool[0].range",
        ),
        ("delegated-len = 56", "delegated-len = 36", "subnet6[0].pd-pool[0]"),
        ("delegated-len = 56", "delegated-len = 72", "subnet6[0].pd-pool[0]"),
        (
            "prefixes = [\"2001:db8:1ff:ff00::/56\"]",
            "prefixes = [\"2001:db8:1ff:ff00::1/56\"]",
            "subnet6[0].reservation[0].prefixes[0]",
        ),
        ("remote-id = \"00000de9:6c696e652d37\"", "remote-id = \"0de9\"", "subnet6[0].reservation[0].remote-id"),
        ("dns-servers = [\"2001:db8::53\"]", "dns-servers = [\"198.18.0.53\"]", "subnet6[0].options.dns-servers[0]"),
    ];
    for (from, to, field) in cases {
        let src = SUBNET6.replace(from, to);
        assert_ne!(src, SUBNET6, "{from}");
        let e = Config::parse("v6.toml", &src).expect_err(to);
        assert_eq!(e.field, field, "{to}: {e}");
        assert!(e.line > 0, "{to}: {e}");
        assert_eq!(e.file, "v6.toml");
    }
    // A pool overlapping a delegated-prefix pool, and a second subnet's pool overlapping the first's.
    let overlapping = SUBNET6
        .replace("prefix = \"2001:db8:100::\"", "prefix = \"2001:db8:1::\"")
        .replace("prefix-len = 40", "prefix-len = 64")
        .replace("delegated-len = 56", "delegated-len = 72");
    let e = Config::parse("v6.toml", &overlapping).expect_err("overlap");
    assert!(e.message.contains("overlaps"), "{e}");
    let twice = format!(
        "{SUBNET6}\n[[subnet6]]\nsubnet = \"2001:db8:1::/48\"\n  [[subnet6.pool]]\n  range = \"2001:db8:1::180-2001:db8:1::190\"\n"
    );
    let e = Config::parse("v6.toml", &twice).expect_err("overlap across subnets");
    assert!(e.message.contains("overlaps") && e.field == "subnet6[1]", "{e}");
    let clustered = format!("[cluster]\nnode = \"a\"\ndatabase = \"postgresql:///x\"\n{SUBNET6}");
    assert_eq!(Config::parse("v6.toml", &clustered).expect("v6 in cluster mode").subnets6.len(), 1);
    let two_keys = SUBNET6.replace("remote-id = ", "duid = \"000300010200000000aa\"\n  remote-id = ");
    let e = Config::parse("v6.toml", &two_keys).expect_err("two keys");
    assert!(e.message.contains("exactly one"), "{e}");
}

#[test]
fn zero_config_serves_a_global_v6_prefix_when_there_is_one() {
    let v4 = crate::net::Ipv4Net { addr: "198.18.0.1".parse().unwrap(), prefix: 24 };
    let base = Config::zero_config("eth1", v4).unwrap();
    let ll = ("fe80::1".parse().unwrap(), 64);
    assert!(base.clone().with_zero_config6(&[ll]).subnets6.is_empty(), "link-local only: no v6");
    let c = base.clone().with_zero_config6(&[ll, ("2001:db8:1::1".parse().unwrap(), 64)]);
    let s = &c.subnets6[0];
    assert_eq!((s.prefix, s.prefix_len), ("2001:db8:1::".parse().unwrap(), 64));
    assert_eq!(s.pools[0].nth(0), Some("2001:db8:1::1:0".parse().unwrap()));
    assert_eq!(s.pools[0].count(), 65_536);
    assert!(s.pd_pools.is_empty());
    // Our own address inside the pool's span is skipped.
    let c = base.with_zero_config6(&[("2001:db8:1::1:5".parse().unwrap(), 64)]);
    assert_eq!(c.subnets6[0].pools[0].nth(0), Some("2001:db8:1::1:6".parse().unwrap()));
}

#[test]
fn trusted_v6_relays_are_prefixes_and_errors_name_the_entry() {
    let c = Config::parse("t", "[relays]\ntrusted6 = [\"2001:db8:f::/64\"]\n").unwrap();
    assert!(c.relay6_trusted("2001:db8:f::2".parse().unwrap()));
    assert!(!c.relay6_trusted("fe80::66".parse().unwrap()));
    assert!(Config::parse("t", "").unwrap().relay6_trusted("fe80::66".parse().unwrap()), "none listed: any");
    let e = Config::parse("t", "[relays]\ntrusted6 = [\"2001:db8:f::/64\", \"198.18.0.0/24\"]\n").unwrap_err();
    assert_eq!((e.field.as_str(), e.line), ("relays.trusted6[1]", 2), "{e}");
    // DHCPv6 leasequery requestors: listed ones only, nobody when none are.
    let c = Config::parse("t", "[relays]\nleasequery6 = [\"2001:db8:f::99/128\"]\n").unwrap();
    assert!(c.leasequery6_allowed("2001:db8:f::99".parse().unwrap()));
    assert!(!c.leasequery6_allowed("2001:db8:f::98".parse().unwrap()));
    assert!(
        !Config::parse("t", "").unwrap().leasequery6_allowed("2001:db8:f::99".parse().unwrap()),
        "none listed: nobody"
    );
    let e = Config::parse("t", "[relays]\nleasequery6 = [\"2001:db8:f::/200\"]\n").unwrap_err();
    assert_eq!((e.field.as_str(), e.line), ("relays.leasequery6[0]", 2), "{e}");
}

const CLASSES: &str = r#"
[options]
dns-servers = ["198.18.0.53"]
domain-name = "example.net"

[[client-class]]
name = "iptv"
test = "substring(option[60].hex,0,6) == 'IPTVBX'"
options = { domain-name = "iptv.example.net", custom = [{ code = 66, text = "tftp.iptv" }] }

[[client-class]]
name = "pxe"
test = "option[93].exists and not member('iptv')"
boot-file-name = "pxelinux.0"
next-server = "198.18.0.9"

[[client-class]]
name = "business"

[[subnet]]
subnet = "198.18.0.0/24"
server-hostname = "boot.example.net"
options = { routers = ["198.18.0.1"] }
  [[subnet.pool]]
  range = "198.18.0.100-198.18.0.149"
  client-class = "iptv"
  [[subnet.pool]]
  range = "198.18.0.150-198.18.0.199"
  client-classes = ["pxe", "business"]
  options = { dns-servers = ["198.18.0.54"] }
  [[subnet.reservation]]
  hw-address = "02:00:00:00:00:99"
  client-classes = ["business"]
  boot-file-name = "special.efi"
"#;

#[test]
fn client_classes_are_compiled_and_guards_resolved() {
    let c = Config::parse("classes.toml", CLASSES).expect("valid");
    assert_eq!(c.classes.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["iptv", "pxe", "business"]);
    assert!(c.classes[0].test.is_some() && c.classes[2].test.is_none());
    assert_eq!(c.classes[1].boot.boot_file_name.as_deref(), Some(&b"pxelinux.0"[..]));
    assert_eq!(c.classes[1].boot.next_server, Some(Ipv4Addr::new(198, 18, 0, 9)));
    assert_eq!(c.classes[0].options.get(opt::DOMAIN_NAME), Some(&b"iptv.example.net"[..]));
    let s = &c.subnets[0];
    assert_eq!((s.pools[0].client_classes, s.pools[1].client_classes), (0b001, 0b110));
    assert_eq!(s.boot.server_hostname.as_deref(), Some(&b"boot.example.net"[..]));
    assert_eq!(s.reservations[0].client_classes, 0b100);
    assert_eq!(s.reservations[0].boot.boot_file_name.as_deref(), Some(&b"special.efi"[..]));
    // The scopes' own options leave the global ones out (classes come between them).
    assert_eq!(s.own_options.get(opt::DNS), None);
    assert_eq!(s.pools[1].own_options.get(opt::DNS), Some(&[198, 18, 0, 54][..]));
    assert_eq!(s.own_options.get(opt::ROUTERS), Some(&[198, 18, 0, 1][..]));
    assert_eq!(c.global_options.get(opt::DNS), Some(&[198, 18, 0, 53][..]));
    assert_eq!(s.options.get(opt::DNS), Some(&[198, 18, 0, 53][..]), "the rendered scope still has them");
}

#[test]
fn class_errors_name_line_field_and_column() {
    let bad_test = CLASSES.replace("option[93].exists and not", "option[93].exists and and");
    let e = Config::parse("classes.toml", &bad_test).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (13, "client-class[1].test"), "{e}");
    assert!(e.message.starts_with("column 23:"), "{e}");
    let later = CLASSES.replace("not member('iptv')", "not member('business')");
    let e = Config::parse("classes.toml", &later).unwrap_err();
    assert!(e.message.contains("'business' is not defined before"), "{e}");
    let unknown = CLASSES.replace("client-class = \"iptv\"", "client-class = \"iptvv\"");
    let e = Config::parse("classes.toml", &unknown).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (26, "subnet[0].pool[0].client-class"), "{e}");
    assert!(e.message.contains("no [[client-class]] named 'iptvv'"), "{e}");
    let twice = CLASSES.replace("name = \"business\"", "name = \"iptv\"");
    assert!(Config::parse("classes.toml", &twice).unwrap_err().message.contains("defined twice"));
    let long = CLASSES.replace("pxelinux.0", &"x".repeat(128));
    let e = Config::parse("classes.toml", &long).unwrap_err();
    assert_eq!(e.field, "client-class[1].boot-file-name", "{e}");
    let builtin = CLASSES.replace("name = \"business\"", "name = \"KNOWN\"");
    assert!(Config::parse("classes.toml", &builtin).is_err());
}

#[test]
fn option_definitions_vendor_options_and_typed_values_are_encoded() {
    let src = r#"
[[option-def]]
name = "acs-url"
code = 224
type = "string"
[[option-def]]
name = "line-profile"
code = 225
type = "record"
record-types = "uint8, ipv4-address, uint16"
array = true

[options]
custom = [
  { name = "acs-url", data = "http://acs.example.net:7547" },
  { code = 225, data = "1, 198.18.0.9, 80, 443" },
  { name = "domain-search", data = "example.net, isp.example" },
  { code = 26, data = "1492" },
  { code = 19, bool = false },
  { code = 119, fqdn = "a.example" },
]
vendor-encapsulated = [{ code = 1, text = "http://acs" }, { code = 2, hex = "0102" }]
vivso = [{ enterprise = 3561, suboptions = [{ code = 1, text = "OUI" }, { code = 4, u16 = 7 }] }]
"#;
    let c = Config::parse("opts.toml", src).unwrap();
    let g = &c.global_options;
    assert_eq!(g.get(224), Some(&b"http://acs.example.net:7547"[..]));
    assert_eq!(g.get(225), Some(&[1, 198, 18, 0, 9, 0, 80, 1, 187][..]), "a record whose last field repeats");
    assert_eq!(g.get(26), Some(&[5, 212][..]));
    assert_eq!(g.get(19), Some(&[0][..]));
    assert_eq!(g.get(119), Some(&b"\x01a\x07example\x00"[..]), "a later entry of the same code replaces");
    assert_eq!(g.get(43), Some(&[&[1, 10][..], b"http://acs", &[2, 2, 1, 2]].concat()[..]));
    assert_eq!(g.get(125), Some(&[&[0, 0, 0x0d, 0xe9, 9, 1, 3][..], b"OUI", &[4, 2, 0, 7]].concat()[..]));
    // Errors name the entry.
    let bad = |s: &str| Config::parse("opts.toml", s).unwrap_err();
    let e = bad("[options]\ncustom = [{ name = \"nope\", data = \"x\" }]\n");
    assert_eq!((e.line, e.field.as_str()), (2, "options.custom[0].name"), "{e}");
    let e = bad("[options]\ncustom = [{ code = 222, data = \"x\" }]\n");
    assert!(e.message.contains("no definition"), "{e}");
    let e = bad("[options]\ncustom = [{ code = 26, data = \"70000\" }]\n");
    assert_eq!(e.field, "options.custom[0].data", "{e}");
    assert!(e.message.contains("0 to 65535"), "{e}");
    let e = bad("[[option-def]]\nname = \"x\"\ncode = 230\ntype = \"float\"\n");
    assert_eq!((e.line, e.field.as_str()), (4, "option-def[0].type"), "{e}");
    let e = bad("[options]\nvendor-encapsulated = [{ code = 1, text = \"a\", hex = \"01\" }]\n");
    assert!(e.message.contains("exactly one"), "{e}");
    let e = bad("[options]\ncustom = [{ code = 82, hex = \"01\" }]\n");
    assert!(e.message.contains("set by the server"), "{e}");
}

/// The forensic log goes to a file, or to the cluster database (cluster mode only); one of
/// them, and errors say which field.
#[test]
fn the_forensic_log_goes_to_a_file_or_to_the_cluster_database() {
    use super::ForensicSink;
    let c = Config::parse("t", "[forensic-log]\npath = \"/var/log/dhcp-xdp/leases.jsonl\"\n").unwrap();
    let f = c.forensic_log.unwrap();
    assert_eq!((f.sink, f.keep, f.keep_days), (ForensicSink::File("/var/log/dhcp-xdp/leases.jsonl".into()), 30, 0));
    let cluster = "[cluster]\nnode = \"a\"\ndatabase = \"postgresql:///dhcp\"\n";
    let c = Config::parse("t", &format!("{cluster}[forensic-log]\ndatabase = true\nkeep-days = 400\n")).unwrap();
    let f = c.forensic_log.unwrap();
    assert_eq!((f.sink, f.keep_days), (ForensicSink::Database, 400));
    let e = Config::parse("t", "[forensic-log]\ndatabase = true\n").unwrap_err();
    assert_eq!((e.field.as_str(), e.line), ("forensic-log.database", 1), "{e}");
    let e = Config::parse("t", &format!("{cluster}[forensic-log]\ndatabase = true\npath = \"/x\"\n")).unwrap_err();
    assert_eq!(e.field, "forensic-log.path", "{e}");
    let e = Config::parse("t", "[forensic-log]\nkeep = 3\n").unwrap_err();
    assert_eq!(e.field, "forensic-log.path", "{e}");
}
