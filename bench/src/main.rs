//! Load-testing rig: the AF_XDP DHCP generator and the side-by-side comparison with Kea, ISC
//! dhcpd and dnsmasq belong here (open issue "Load-testing rig"). Nothing is implemented yet; the
//! figures available today come from `cargo xtask bench` (engine and lease store) and from the
//! perfdhcp test.

fn main() -> std::process::ExitCode {
    eprintln!("dhcp-xdp bench: the AF_XDP load generator is not implemented yet; see README, Performance");
    std::process::ExitCode::FAILURE
}
