//! The core stays sans-IO: none of the crates that tie code to the operating system, the eBPF
//! toolchain or the daemon's runtime may enter its dependency tree (issue 12), and it has no
//! build script.

use std::process::Command;

#[test]
fn the_core_depends_on_nothing_of_the_os_side() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "dhcp-xdp-core", "-e", "normal,build", "--prefix", "none", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.contains(&"dhcp-xdp-core"), "{tree}");
    for banned in ["aya", "aya-build", "xdpilone", "nix", "libc", "anyhow", "mimalloc", "dhcp-xdp", "dhcp-xdp-ebpf"] {
        assert!(!names.contains(&banned), "dhcp-xdp-core depends on {banned}:\n{tree}");
    }
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(!manifest.join("build.rs").exists(), "dhcp-xdp-core must not have a build script");
}
