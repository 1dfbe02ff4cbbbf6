//! The interface between the AF_XDP datapath and whatever decides on a frame.
//!
//! A handler sees one received frame at a time, in the UMEM chunk it arrived in, and either
//! writes a reply into that same buffer (returning its length) or drops it with a reason that
//! the datapath counts. It must not block, allocate per frame, or read clocks it was not given.

use std::net::Ipv4Addr;

pub use dhcp_xdp_core::verdict::{DropReason, FrameMeta, Verdict};
use dhcp_xdp_core::wire::{Frame, ReplyAddressing, write_ipv4_udp_headers};

/// When a batch's replies may leave, as [`Handler::end_batch`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Now.
    Now,
    /// Never: what they promise could not be made durable.
    Withhold,
    /// Once [`Handler::settled`] says this ticket is durable (group commit); tickets of one
    /// worker settle in increasing order.
    After(u64),
}

/// One received frame of a batch, and what became of it.
#[derive(Debug)]
pub struct Job<'a> {
    /// The whole writable chunk from the frame's first byte.
    pub buf: &'a mut [u8],
    /// The request occupies `buf[..len]`.
    pub len: usize,
    /// Set by [`Handler::handle_batch`].
    pub verdict: Verdict,
}

/// Decides on frames for one worker. `buf` is the whole writable chunk from the frame's first
/// byte; the request occupies `buf[..len]`.
pub trait Handler: Send {
    /// Handles one frame.
    fn handle(&mut self, meta: &FrameMeta, buf: &mut [u8], len: usize) -> Verdict;

    /// Handles the frames of one batch (between [`begin_batch`](Self::begin_batch) and
    /// [`end_batch`](Self::end_batch)), setting each job's verdict: one
    /// [`handle`](Self::handle) each, unless the handler does better with the whole batch.
    fn handle_batch(&mut self, meta: &FrameMeta, jobs: &mut [Job<'_>]) {
        for j in jobs {
            j.verdict = self.handle(meta, j.buf, j.len);
        }
    }

    /// Called before the first frame of a batch (read the clock, the config, …).
    fn begin_batch(&mut self) {}

    /// Called after the last frame of a batch: make durable what its
    /// [`ReplyWhenDurable`](Verdict::ReplyWhenDurable) replies promise, or start to, and say when
    /// they may leave. Plain replies leave at once.
    fn end_batch(&mut self) -> Release {
        Release::Now
    }

    /// Whether the batch of `ticket` ([`Release::After`]) is durable (`Some(true)`), failed
    /// (`Some(false)`: its replies are dropped), or still pending (`None`).
    fn settled(&mut self, _ticket: u64) -> Option<bool> {
        Some(true)
    }
}

impl<F> Handler for F
where
    F: FnMut(&FrameMeta, &mut [u8], usize) -> Verdict + Send,
{
    fn handle(&mut self, meta: &FrameMeta, buf: &mut [u8], len: usize) -> Verdict {
        self(meta, buf, len)
    }
}

/// Offsets inside a BOOTP message.
const BOOTP_OP: usize = 0;
const BOOTP_SNAME: usize = 44;
const BOOTP_SNAME_LEN: usize = 64;
const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;

/// Answers every BOOTREQUEST with the same message turned into a BOOTREPLY, addressed back to
/// its sender (L2 source, IPv4 source or broadcast when that is 0.0.0.0, UDP source port), with
/// `sname` set to `dhcp-xdp reflect queue=Q worker=W`.
///
/// It proves the plumbing (steering, rings, in-place TX, worker affinity) before the protocol
/// engine exists, and stays as the `--handler reflect` diagnostic mode.
#[derive(Debug, Clone)]
pub struct Reflect {
    mac: [u8; 6],
    ip: Ipv4Addr,
}

impl Reflect {
    /// A reflector answering from interface address `mac` / `ip`.
    pub fn new(mac: [u8; 6], ip: Ipv4Addr) -> Self {
        Self { mac, ip }
    }
}

impl Handler for Reflect {
    fn handle(&mut self, meta: &FrameMeta, buf: &mut [u8], len: usize) -> Verdict {
        let Some(req) = buf.get(..len) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let Ok(frame) = Frame::new_checked(req) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if !frame.ipv4_checksum_ok() {
            return Verdict::Drop(DropReason::Malformed);
        }
        let payload = frame.payload();
        if payload.len() < BOOTP_SNAME + BOOTP_SNAME_LEN || payload[BOOTP_OP] != BOOTREQUEST {
            return Verdict::Drop(DropReason::NotForUs);
        }
        let src_ip = frame.src_ip();
        let addr = ReplyAddressing {
            dst_mac: frame.src_mac(),
            src_mac: self.mac,
            src_ip: self.ip,
            dst_ip: if src_ip.is_unspecified() { Ipv4Addr::BROADCAST } else { src_ip },
            src_port: frame.dst_port(),
            dst_port: frame.src_port(),
        };
        let layout = frame.layout();
        let payload_len = layout.payload_len;
        let bootp = &mut buf[layout.payload..layout.payload + payload_len];
        bootp[BOOTP_OP] = BOOTREPLY;
        let sname = &mut bootp[BOOTP_SNAME..BOOTP_SNAME + BOOTP_SNAME_LEN];
        sname.fill(0);
        let mut w = std::io::Cursor::new(&mut sname[..BOOTP_SNAME_LEN - 1]);
        // The text is far shorter than 63 bytes; a failed write would only truncate it.
        let _ = std::io::Write::write_fmt(
            &mut w,
            format_args!("dhcp-xdp reflect queue={} worker={}", meta.queue, meta.worker),
        );
        match write_ipv4_udp_headers(buf, &layout, payload_len, &addr) {
            Some(n) => Verdict::Reply(n),
            None => Verdict::Drop(DropReason::NoRoom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcp_xdp_core::testing::frame;

    fn bootp_request() -> Vec<u8> {
        let mut p = vec![0u8; 300];
        p[0] = BOOTREQUEST;
        p[1] = 1;
        p[2] = 6;
        p[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        p
    }

    #[test]
    fn reflect_turns_request_into_reply_to_sender() {
        let mut buf = frame(&[(0x8100, 42)], &[], &bootp_request());
        let len = buf.len();
        buf.resize(4096, 0);
        let mut r = Reflect::new([2, 0, 0, 0, 0, 0xaa], Ipv4Addr::new(198, 18, 0, 1));
        let meta = FrameMeta { queue: 3, worker: 1 };
        let Verdict::Reply(n) = r.handle(&meta, &mut buf, len) else { panic!("no reply") };
        let f = Frame::new_checked(&buf[..n]).unwrap();
        assert_eq!(f.vlan_ids(), [42, 0]);
        assert_eq!(f.dst_mac(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.src_mac(), [2, 0, 0, 0, 0, 0xaa]);
        assert_eq!(f.dst_ip(), Ipv4Addr::BROADCAST);
        assert_eq!((f.src_port(), f.dst_port()), (67, 68));
        assert!(f.udp_checksum_ok());
        let p = f.payload();
        assert_eq!(p[0], BOOTREPLY);
        assert!(p[BOOTP_SNAME..].starts_with(b"dhcp-xdp reflect queue=3 worker=1\0"));
    }

    #[test]
    fn reflect_drops_replies_and_garbage() {
        let mut r = Reflect::new([0; 6], Ipv4Addr::LOCALHOST);
        let meta = FrameMeta { queue: 0, worker: 0 };
        let mut p = bootp_request();
        p[0] = BOOTREPLY;
        let mut buf = frame(&[], &[], &p);
        let len = buf.len();
        assert_eq!(r.handle(&meta, &mut buf, len), Verdict::Drop(DropReason::NotForUs));
        let mut junk = vec![0u8; 10];
        assert_eq!(r.handle(&meta, &mut junk, 10), Verdict::Drop(DropReason::Malformed));
        assert_eq!(r.handle(&meta, &mut junk, 100), Verdict::Drop(DropReason::Malformed));
    }
}
