//! Host-side placeholder so that `dhcp-xdp`'s build script can depend on this package; the XDP
//! program is `src/main.rs`, compiled for `bpfel-unknown-none` by `aya-build`.
#![no_std]
