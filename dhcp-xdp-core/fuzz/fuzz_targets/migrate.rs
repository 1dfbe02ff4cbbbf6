//! Other servers' files → the migration parsers (Kea's lease CSV and configuration,
//! dhcpd.leases and dhcpd.conf): whatever the bytes, each answers `Ok` or an error; none
//! panics or overflows its stack.
#![no_main]

use dhcp_xdp_core::{
    config::Config,
    migrate::{convert_dhcpd_conf, convert_kea_config, read_dhcpd_leases, read_kea_csv},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let cfg = Config::parse(
        "fuzz",
        "[[subnet]]\nsubnet = \"198.18.0.0/24\"\n[[subnet.pool]]\nrange = \"198.18.0.10-198.18.0.200\"\n",
    )
    .expect("config");
    let _ = read_kea_csv(&text, &cfg, 1_800_000_000);
    let _ = read_dhcpd_leases(&text, &cfg, 1_800_000_000);
    let _ = convert_kea_config(&text);
    let _ = convert_dhcpd_conf(&text);
});
