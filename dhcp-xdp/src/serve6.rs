//! The DHCPv6 engine on the datapath: a worker's IPv6 frames (the XDP program steers UDP 547
//! only when `[[subnet6]]` is configured) decided by [`Engine6`] under the v6 table's lock, the
//! reply written into the request's buffer with its IPv6/UDP headers, sent back to where the
//! request came from (the client's link-local address and port 546, or the relay's address and
//! port 547).

use std::sync::atomic::Ordering;

use dhcp_xdp_core::{
    engine6::{Counter6, Counts6, Engine6},
    leases::Change,
    wire::{Frame6Layout, Reply6Addressing, write_ipv6_udp_headers},
};

use crate::{
    handler::{DropReason, Verdict},
    serve::{Runtime, Shared},
    serve4::EngineStats,
};

/// Largest DHCPv6 reply (one Ethernet MTU's worth of payload).
const MAX_REPLY: usize = 1500 - 40 - 8;

/// One worker's DHCPv6 state: the engine, a buffer to write the reply in before it replaces
/// the request, the counts of the batch.
pub struct Handler6 {
    engine: Engine6,
    scratch: Vec<u8>,
    counts: Counts6,
    changes: Vec<Change>,
}

impl Default for Handler6 {
    fn default() -> Self {
        Self { engine: Engine6::new(), scratch: vec![0; MAX_REPLY], counts: [0; Counter6::COUNT], changes: vec![] }
    }
}

impl Handler6 {
    /// Decides the IPv6 frame in `buf[..len]`; a reply replaces it in `buf`. The lease changes
    /// it makes are numbered (under the v6 table's lock, which ordered them) into `stamped`,
    /// and a reply after which the table changed waits until they are durable.
    pub fn handle(
        &mut self,
        now: u32,
        shared: &Shared,
        rt: &Runtime,
        buf: &mut [u8],
        len: usize,
        stamped: &mut Vec<(u64, Change)>,
    ) -> Verdict {
        let Some(frame) = buf.get(..len) else { return Verdict::Drop(DropReason::Malformed) };
        let Ok(l) = Frame6Layout::parse(frame) else { return Verdict::Drop(DropReason::Malformed) };
        let (src_ip, dst_ip, src_port) = (l.src_ip(frame), l.dst_ip(frame), l.src_port(frame));
        let mut src_mac = [0u8; 6];
        src_mac.copy_from_slice(&frame[6..12]);
        // The reply's source: the address the request was sent to when that was one of ours;
        // else our link-local address to a client on the link, our first global one to a relay.
        let ours = if !dst_ip.is_multicast() {
            Some(dst_ip)
        } else if src_ip.is_unicast_link_local() {
            shared.link_local6
        } else {
            shared.server6.addrs.first().copied()
        };
        let Some(ours) = ours else { return Verdict::Drop(DropReason::NotForUs) };
        // Back to where the request came from.
        let to = Reply6Addressing {
            dst_mac: src_mac,
            src_mac: shared.server.mac,
            src_ip: ours,
            dst_ip: src_ip,
            src_port: dhcp_xdp_common::DHCP6_SERVER_PORT,
            dst_port: src_port,
        };
        let req = &frame[l.payload..l.payload + l.payload_len];
        if req.first() == Some(&dhcp_xdp_core::leasequery6::msg::LEASEQUERY) {
            // A requestor's LEASEQUERY (RFC 5007), from `[relays] leasequery6` only.
            if !rt.cfg.leasequery6_allowed(src_ip) {
                return Verdict::Drop(DropReason::UntrustedRelay);
            }
            let Some(q) = dhcp_xdp_core::leasequery6::parse(req) else { return Verdict::Drop(DropReason::Malformed) };
            let answer = dhcp_xdp_core::leasequery6::answer(&rt.cfg, rt.table6().leases(), &q, now, false);
            let Some(n) =
                dhcp_xdp_core::leasequery6::write_reply(&q, &shared.server6.duid, &answer, now, &mut self.scratch)
            else {
                return Verdict::Drop(DropReason::NoRoom);
            };
            return self.put_reply(buf, &l, n, &to, false);
        }
        // A Relay-Forw is answered only from a trusted relay: its layers choose the subnet and
        // carry the line's identity (remote-id, interface-id), which a client must not forge.
        if req.first() == Some(&dhcp_xdp_core::dhcp6::msg::RELAY_FORW) && !rt.cfg.relay6_trusted(src_ip) {
            return Verdict::Drop(DropReason::UntrustedRelay);
        }
        let fresh;
        let (outcome, changed) = {
            let mut table = rt.table6();
            let mut rt = rt;
            if rt.db.is_retired() {
                // A reload rebuilt the tables while we waited for this lock.
                drop(table);
                fresh = shared.runtime();
                rt = &fresh;
                table = rt.table6();
            }
            // The forensic log: the client's message type, and before a RELEASE what its DUID
            // holds (the changes then name only the keys that went).
            let forensic = shared.forensic.get().and_then(|log| {
                let m = dhcp_xdp_core::dhcp6::Relayed::parse(req).ok()?.message;
                let held: Vec<_> = match (m.kind(), m.client_id()) {
                    (dhcp_xdp_core::dhcp6::msg::RELEASE, Some(duid)) => {
                        table.leases().filter(|l| &l.key.duid[..] == duid).cloned().collect()
                    }
                    _ => vec![],
                };
                Some((log, m.kind(), held))
            });
            let r =
                self.engine.handle(now, &rt.cfg, &shared.server6, &mut table, req, &mut self.scratch, &mut self.counts);
            table.drain_changes(&mut self.changes);
            if let Some((log, kind, held)) = forensic {
                log.dhcp6(u64::from(now), kind, &self.changes);
                let gone: Vec<_> = held
                    .into_iter()
                    .filter(|l| self.changes.iter().any(|c| matches!(c, Change::Remove6(k) if *k == l.key)))
                    .collect();
                log.released6(u64::from(now), &gone);
            }
            let changed = !self.changes.is_empty();
            if changed {
                stamped.extend(rt.db.numbered(self.changes.drain(..)));
            }
            (r, changed)
        };
        let n = match outcome {
            Ok(n) => n,
            Err(why) => return Verdict::Drop(why),
        };
        self.put_reply(buf, &l, n, &to, changed)
    }

    /// Puts the reply written in `scratch[..n]` in place of the request in `buf`, with its
    /// IPv6/UDP headers `to`; one after which the table `changed` waits until it is durable.
    fn put_reply(&self, buf: &mut [u8], l: &Frame6Layout, n: usize, to: &Reply6Addressing, changed: bool) -> Verdict {
        let Some(dst) = buf.get_mut(l.payload..l.payload + n) else { return Verdict::Drop(DropReason::NoRoom) };
        dst.copy_from_slice(&self.scratch[..n]);
        match write_ipv6_udp_headers(buf, l, n, to) {
            Some(len) if changed => Verdict::ReplyWhenDurable(len),
            Some(len) => Verdict::Reply(len),
            None => Verdict::Drop(DropReason::NoRoom),
        }
    }

    /// Adds this batch's counts to the worker's statistics.
    pub fn flush_counts(&mut self, stats: &EngineStats) {
        for (c, n) in stats.counts6.iter().zip(&mut self.counts) {
            if *n > 0 {
                c.fetch_add(*n, Ordering::Relaxed);
                *n = 0;
            }
        }
    }
}
