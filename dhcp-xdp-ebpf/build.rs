//! Rebuild the XDP program when the linker changes (a fresh bpf-linker may emit different code).
fn main() {
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => println!(
            "cargo:warning=bpf-linker not found ({err}); run `cargo xtask run` or `cargo xtask test`, which install it"
        ),
    }
}
