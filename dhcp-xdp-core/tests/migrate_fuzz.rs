//! The migration parsers (Kea's lease CSV and configuration, dhcpd.leases and dhcpd.conf) on
//! hostile input: whatever the text, they answer `Ok` or an error and never panic; nesting
//! deeper than any real file is refused with the line it starts on, not a stack overflow;
//! errors name a line. (The same inputs run unbounded under `cargo xtask fuzz --target
//! migrate`.)

use dhcp_xdp_core::{
    config::Config,
    migrate::{convert_dhcpd_conf, convert_kea_config, read_dhcpd_leases, read_kea_csv},
};
use proptest::prelude::*;

fn cfg() -> Config {
    Config::parse(
        "t",
        "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.10-198.18.0.200\"\n",
    )
    .expect("config")
}

/// Everything the four parsers are given.
fn all(text: &str) {
    let c = cfg();
    let _ = read_kea_csv(text, &c, 1_800_000_000);
    let _ = read_dhcpd_leases(text, &c, 1_800_000_000);
    let _ = convert_kea_config(text);
    let _ = convert_dhcpd_conf(text);
}

/// Pieces of the four formats, so that random texts get past the first token.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just(";".to_owned()),
        Just("\n".to_owned()),
        Just("\"".to_owned()),
        Just(",".to_owned()),
        Just("#".to_owned()),
        Just("/*".to_owned()),
        Just("*/".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("lease 198.18.0.12 {".to_owned()),
        Just("starts 4 2026/12/01 00:00:00;".to_owned()),
        Just("ends never;".to_owned()),
        Just("binding state active;".to_owned()),
        Just("hardware ethernet 02:00:00:00:00:01;".to_owned()),
        Just("uid \"\\001\\002\";".to_owned()),
        Just("client-hostname \"x\";".to_owned()),
        Just("subnet 198.18.0.0 netmask 255.255.255.0 {".to_owned()),
        Just("range 198.18.0.10 198.18.0.20;".to_owned()),
        Just("host h { hardware ethernet 02:00:00:00:00:02; fixed-address 198.18.0.5; }".to_owned()),
        Just("option routers 198.18.0.1;".to_owned()),
        Just("shared-network n {".to_owned()),
        Just("{\"Dhcp4\": {".to_owned()),
        Just(
            "\"subnet4\": [{\"subnet\": \"198.18.0.0/24\", \"pools\": [{\"pool\": \"198.18.0.10-198.18.0.20\"}]"
                .to_owned()
        ),
        Just("\"option-data\": [{\"name\": \"routers\", \"data\": \"198.18.0.1\"}]".to_owned()),
        Just(
            "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n"
                .to_owned()
        ),
        Just("198.18.0.11,02:00:00:00:00:03,,3600,1900000000,1,0,0,,0,\n".to_owned()),
        Just("198.18.0.12,zz,01:02,99999999999999999999,-1,x,0,0,h,7,{}\n".to_owned()),
        "[ -~]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(8).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(s in any::<String>()) {
        all(&s);
    }

    #[test]
    fn texts_made_of_the_formats_pieces_never_panic(pieces in prop::collection::vec(piece(), 0..60)) {
        all(&pieces.concat());
    }
}

#[test]
fn deep_nesting_is_an_error_naming_a_line_not_a_stack_overflow() {
    let c = cfg();
    let braces = format!("# a hostile file\n{}", "subnet 198.18.0.0 netmask 255.255.255.0 {\n".repeat(200_000));
    let e = convert_dhcpd_conf(&braces).expect_err("refused");
    assert!(e.contains("line 66") && e.contains("nested"), "{e}");
    let leases = format!("lease 198.18.0.12 {{\n{}", "{\n".repeat(200_000));
    let e = read_dhcpd_leases(&leases, &c, 1_800_000_000).expect_err("refused");
    assert!(e.contains("line"), "{e}");
    let json = format!("{{\"Dhcp4\": {}", "[".repeat(200_000));
    let e = convert_kea_config(&json).expect_err("refused");
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn errors_name_the_line_they_are_on() {
    let e = convert_dhcpd_conf(
        "option routers 198.18.0.1;\n\nsubnet 198.18.0.0 netmask 255.255.255.0 {\n range 198.18.0.10 198.18.0.20;\n",
    )
    .expect_err("unclosed");
    assert!(e.contains("line 3"), "{e}");
    let e = convert_dhcpd_conf("a;\nb;\n}\n").expect_err("stray");
    assert!(e.contains("line 3"), "{e}");
    let e = convert_kea_config("// a comment\n/* two\nlines */\n{\"Dhcp4\": {\"subnet4\": [}\n").expect_err("bad JSON");
    assert!(e.contains("line 4"), "{e}");
    let c = cfg();
    let e = read_dhcpd_leases("lease 198.18.0.12 {\n  starts 4 2026/12/01 00:00:00;\n", &c, 1_800_000_000)
        .expect_err("unclosed lease");
    assert!(e.contains("line"), "{e}");
    let e = read_kea_csv(
        "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n\
         198.18.0.11,02:00:00:00:00:03,,3600,1900000000,1,0,0,,0,\n\
         198.18.0.12,02:00:00:00:00:04\n",
        &c,
        1_800_000_000,
    );
    match e {
        Err(e) => assert!(e.to_string().contains("line 3"), "{e}"),
        Ok(imp) => assert!(imp.skipped.iter().any(|s| s.line == 3), "{:?}", imp.skipped),
    }
}
