//! Test-rig only: a two-port VLAN switch as two tc programs, for kernels without 802.1Q
//! support (`CONFIG_VLAN_8021Q` unset), where clients cannot sit on VLAN sub-interfaces.
//!
//! `access_in` (ingress of the port facing an untagged client) inserts the configured tags
//! (one 802.1Q, or 802.1ad outer + 802.1Q inner) into the frame bytes and sends it out of the
//! trunk port; `trunk_in` (ingress of the port facing the server) accepts only frames carrying
//! exactly those tags, strips them and sends the frame out of the access port. Untagged frames
//! on the trunk go to the switch's own stack (a ping path to the server); non-IPv4 frames from
//! the client are dropped (a server without 802.1Q could not answer ARP over a VLAN anyway).
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, bpf_adj_room_mode::BPF_ADJ_ROOM_MAC},
    helpers::{bpf_redirect, bpf_skb_vlan_pop},
    macros::classifier,
    programs::TcContext,
};

/// Interface index of the access port (client side).
#[unsafe(no_mangle)]
static ACCESS_IFINDEX: u32 = 0;
/// Interface index of the trunk port (server side).
#[unsafe(no_mangle)]
static TRUNK_IFINDEX: u32 = 0;
/// Number of tags, 1 or 2.
#[unsafe(no_mangle)]
static TAGS: u32 = 1;
/// Outer (or only) tag: TPID << 16 | VLAN ID.
#[unsafe(no_mangle)]
static OUTER: u32 = 0;
/// Inner tag when `TAGS` is 2: TPID << 16 | VLAN ID.
#[unsafe(no_mangle)]
static INNER: u32 = 0;

#[inline(always)]
fn global(v: &u32) -> u32 {
    // SAFETY: a plain read of a read-only global the loader sets; volatile so the loader's
    // value is used instead of the compile-time one.
    unsafe { core::ptr::read_volatile(v) }
}

#[classifier]
pub fn access_in(ctx: TcContext) -> i32 {
    if ctx.skb.protocol() != u32::from(0x0800u16.to_be()) {
        return TC_ACT_SHOT as i32;
    }
    let (outer, inner, tags) = (global(&OUTER), global(&INNER), global(&TAGS));
    let mut hdr = [0u8; 10];
    hdr[0..4].copy_from_slice(&outer.to_be_bytes());
    let len = if tags == 2 {
        hdr[4..8].copy_from_slice(&inner.to_be_bytes());
        hdr[8..10].copy_from_slice(&[0x08, 0x00]);
        10
    } else {
        hdr[4..6].copy_from_slice(&[0x08, 0x00]);
        6
    };
    // Room after the Ethernet header, then tags + the IPv4 ethertype from offset 12.
    if ctx.adjust_room(len as i32 - 2, BPF_ADJ_ROOM_MAC, 0).is_err() {
        return TC_ACT_SHOT as i32;
    }
    let ok = if len == 10 {
        ctx.store(12, &hdr, 0).is_ok()
    } else {
        ctx.store(12, &[hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], hdr[5]], 0).is_ok()
    };
    if !ok {
        return TC_ACT_SHOT as i32;
    }
    // SAFETY: bpf_redirect only takes integers; it returns TC_ACT_REDIRECT.
    unsafe { bpf_redirect(global(&TRUNK_IFINDEX), 0) as i32 }
}

/// Pops the tag the kernel moved into the skb's metadata if it is `want`; false otherwise.
#[inline(always)]
fn pop_expected(ctx: &TcContext, want: u32) -> bool {
    let skb = ctx.skb.skb;
    // SAFETY: `skb` is the context pointer the kernel passed to this program; these fields are
    // readable in tc programs.
    let (present, tci, proto) = unsafe { ((*skb).vlan_present, (*skb).vlan_tci, (*skb).vlan_proto) };
    let tpid = (want >> 16) as u16;
    let proto = proto as u16;
    if present == 0 || (tci & 0x0fff) != want & 0x0fff || (proto != tpid && proto != tpid.swap_bytes()) {
        return false;
    }
    // SAFETY: the helper takes the context pointer the kernel gave us.
    unsafe { bpf_skb_vlan_pop(skb) == 0 }
}

#[classifier]
pub fn trunk_in(ctx: TcContext) -> i32 {
    let skb = ctx.skb.skb;
    // SAFETY: as in `pop_expected`.
    if unsafe { (*skb).vlan_present } == 0 {
        return TC_ACT_OK as i32;
    }
    if !pop_expected(&ctx, global(&OUTER)) {
        return TC_ACT_SHOT as i32;
    }
    if global(&TAGS) == 2 && !pop_expected(&ctx, global(&INNER)) {
        return TC_ACT_SHOT as i32;
    }
    // SAFETY: as in `pop_expected`.
    if unsafe { (*skb).vlan_present } != 0 || ctx.skb.protocol() != u32::from(0x0800u16.to_be()) {
        return TC_ACT_SHOT as i32;
    }
    // SAFETY: bpf_redirect only takes integers; it returns TC_ACT_REDIRECT.
    unsafe { bpf_redirect(global(&ACCESS_IFINDEX), 0) as i32 }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
