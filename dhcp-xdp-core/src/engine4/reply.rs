//! The reply, written over the request in the same buffer: fixed fields, options (from the
//! cached blocks, RFC 2132 size limits, option 82 echoed last), RFC 2131 §4.1 addressing, IPv4
//! and UDP headers with checksums. It decides nothing: the answer is given.

use super::*;

/// Largest BOOTP message when the client does not say (576 − IP − UDP).
const DEFAULT_MAX_BOOTP: usize = 576 - 28;
/// Replies are padded to the BOOTP minimum (RFC 1542 §3.3 recommends ≥ 300 octets).
pub(super) const MIN_BOOTP: usize = 300;
/// Most the interface can carry (1500 − IP − UDP).
const MTU_BOOTP: usize = 1500 - 28;

impl Engine {
    #[expect(
        clippy::too_many_arguments,
        reason = "the hot path passes what it already holds instead of building a struct per message"
    )]
    pub(super) fn write_reply(
        &mut self,
        cfg: &Config,
        server: &ServerIdentity,
        req: &Req,
        answer: &Answer,
        buf: &mut [u8],
        layout: &crate::wire::FrameLayout,
        src_mac: [u8; 6],
    ) -> Option<usize> {
        let (mtype, yiaddr, subnet, lease, opts) = match *answer {
            Answer::Offer { yiaddr, subnet, lease, opts } => {
                (Some(MessageType::Offer), yiaddr, Some(subnet), Some(lease), Some(opts))
            }
            Answer::Ack { yiaddr, subnet, lease, opts } => {
                (Some(MessageType::Ack), yiaddr, Some(subnet), Some(lease), Some(opts))
            }
            Answer::InformAck { subnet, opts } => {
                (Some(MessageType::Ack), Ipv4Addr::UNSPECIFIED, Some(subnet), None, Some(opts))
            }
            Answer::Nak { subnet } => (Some(MessageType::Nak), Ipv4Addr::UNSPECIFIED, subnet, None, None),
            Answer::Bootp { yiaddr, subnet, opts } => (None, yiaddr, Some(subnet), None, Some(opts)),
        };
        let nak = mtype == Some(MessageType::Nak);
        let sub = subnet.map(|i| &cfg.subnets[i]);
        let server_ip = sub.map(|s| Self::server_id(cfg, server, s)).unwrap_or_else(|| server.primary());
        let announced_id = req.server_id_override.unwrap_or(server_ip);
        // Boot fields (next-server, server-hostname, boot-file-name) where configured.
        let boot = match subnet {
            Some(si) if cfg.boot_fields && !nak => Some(self.cls.boot_fields(cfg, si, opts)),
            _ => None,
        };
        let rendered: Option<&RenderedOptions> = opts.map(|o| match o {
            _ if cfg.class_options != 0 => self.cls.scope_options(cfg, o),
            OptSrc::Subnet(s) => &cfg.subnets[s].options,
            OptSrc::Pool(s, p) => &cfg.subnets[s].pools[p].options,
            OptSrc::Reservation(s, r) => &cfg.subnets[s].reservations[r].options,
        });

        let p = layout.payload;
        let room = buf.len().checked_sub(p)?;
        let max_bootp = req.max_size.map(|m| usize::from(m) - 28).unwrap_or(DEFAULT_MAX_BOOTP).min(MTU_BOOTP).min(room);
        if max_bootp < field::OPTIONS + 4 || buf.len() < p + MIN_BOOTP.max(field::OPTIONS + 4) {
            return None;
        }
        // Fixed header: op, htype/hlen/hops, xid and chaddr stay as the client sent them.
        let b = &mut buf[p..];
        b[field::OP] = dhcp4::BOOTREPLY;
        b[field::SECS].fill(0);
        let mut flags = req.flags & FLAG_BROADCAST;
        if nak && !req.giaddr.is_unspecified() {
            flags |= FLAG_BROADCAST;
        }
        b[field::FLAGS].copy_from_slice(&flags.to_be_bytes());
        let ciaddr = if (mtype == Some(MessageType::Ack)) && !req.ciaddr.is_unspecified() {
            req.ciaddr
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        b[field::CIADDR].copy_from_slice(&ciaddr.octets());
        b[field::YIADDR].copy_from_slice(&yiaddr.octets());
        b[field::SIADDR].fill(0);
        b[field::SNAME].fill(0);
        b[field::FILE].fill(0);
        let mut named = false;
        if let Some((next, sname, file)) = boot {
            if let Some(a) = next {
                b[field::SIADDR].copy_from_slice(&a.octets());
            }
            for (f, v) in [(field::SNAME, sname), (field::FILE, file)] {
                if let Some(v) = v {
                    b[f.start..f.start + v.len()].copy_from_slice(v);
                    named = true;
                }
            }
        }
        b[field::MAGIC].copy_from_slice(&dhcp4::MAGIC_COOKIE);

        let relay = &self.relay[..self.relay_len];
        let relay_room = if relay.is_empty() { 0 } else { OptionWriter::encoded_len(relay.len()) };
        let limit = max_bootp.checked_sub(relay_room)?;
        let mut w = OptionWriter::new(b, field::OPTIONS, limit);
        // Required options first; they must fit.
        if let Some(t) = mtype
            && (!w.put(opt::MESSAGE_TYPE, &[t as u8]) || !w.put(opt::SERVER_ID, &announced_id.octets()))
        {
            return None;
        }
        if let (Some(l), Some(s)) = (lease, sub) {
            let ok = w.put(opt::LEASE_TIME, &l.to_be_bytes())
                && w.put(opt::RENEWAL_TIME, &s.renew_time.to_be_bytes())
                && w.put(opt::REBINDING_TIME, &s.rebind_time.to_be_bytes());
            if !ok {
                return None;
            }
        }
        if let Some(n) = self.client_id_len
            && !w.put(opt::CLIENT_ID, &self.client_id[..n])
        {
            return None;
        }
        if nak {
            // A message saying why helps operators reading client logs; optional.
            let _ = w.put(opt::MESSAGE, b"address not valid for this client on this link");
        } else if let Some(r) = rendered {
            // Subnet mask is required with an address; the rest in the client's order (55),
            // or all configured ones when it sent no list. Optional ones that do not fit are
            // left out.
            if mtype.is_some() || req.has_cookie {
                let prl = &self.prl[..self.prl_len];
                let cached = self.prl.first_chunk().and_then(|head| self.blocks.get(r, prl, head));
                if !cached.is_some_and(|block| w.put_raw(block)) {
                    // Not cached or too big for this reply: option by option.
                    if !put_subnet_mask(&mut w, r) {
                        return None;
                    }
                    let _ = put_listed(&mut w, r, prl);
                }
            }
        }
        // Option 82 echoed verbatim, last (RFC 3046 §2.2); its room was kept aside.
        if !relay.is_empty() {
            w.set_limit(max_bootp);
            if !w.put(opt::RELAY_AGENT_INFO, relay) {
                return None;
            }
        }
        let live_end = w.position() + 1;
        let end = w.finish(MIN_BOOTP);
        // Only the fixed fields up to chaddr and the options can be non-zero: sname, file and
        // the padding were zeroed above. The two parts are widened into those zeros to whole
        // 8-byte words, which the sum takes without a byte-by-byte tail.
        let live = &buf[p..];
        let options_end = live_end.next_multiple_of(8).min(end);
        let sum = if named {
            // sname or file hold text: the whole BOOTP header counts.
            wire::payload_sum(&[(0, &live[..options_end])])
        } else {
            wire::payload_sum(&[
                (0, &live[..field::SNAME.start + 4]),
                (field::MAGIC.start - 4, &live[field::MAGIC.start - 4..options_end]),
            ])
        };
        Self::address_and_headers(server, req, buf, layout, src_mac, server_ip, yiaddr, nak, (end, sum))
    }

    /// RFC 2131 §4.1 addressing, then L2–L4 headers.
    #[expect(
        clippy::too_many_arguments,
        reason = "the hot path passes what it already holds instead of building a struct per message"
    )]
    pub(super) fn address_and_headers(
        server: &ServerIdentity,
        req: &Req,
        buf: &mut [u8],
        layout: &crate::wire::FrameLayout,
        src_mac: [u8; 6],
        server_ip: Ipv4Addr,
        yiaddr: Ipv4Addr,
        nak: bool,
        (bootp_len, bootp_sum): (usize, u32),
    ) -> Option<usize> {
        let (dst_mac, dst_ip, dst_port) = if !req.giaddr.is_unspecified() {
            (src_mac, req.giaddr, 67)
        } else if nak {
            ([0xff; 6], Ipv4Addr::BROADCAST, 68)
        } else if !req.ciaddr.is_unspecified() {
            (src_mac, req.ciaddr, 68)
        } else if req.flags & FLAG_BROADCAST != 0 || yiaddr.is_unspecified() {
            ([0xff; 6], Ipv4Addr::BROADCAST, 68)
        } else {
            (req.chaddr, yiaddr, 68)
        };
        let addr = ReplyAddressing { dst_mac, src_mac: server.mac, src_ip: server_ip, dst_ip, src_port: 67, dst_port };
        wire::write_ipv4_udp_headers_summed(buf, layout, bootp_len, Some(bootp_sum), &addr)
    }
}

/// Options a scope never supplies to a reply: the engine writes these itself (or, for the
/// subnet mask, first).
fn engine_written(code: u8) -> bool {
    matches!(
        code,
        opt::SUBNET_MASK
            | opt::MESSAGE_TYPE
            | opt::SERVER_ID
            | opt::LEASE_TIME
            | opt::RENEWAL_TIME
            | opt::REBINDING_TIME
            | opt::CLIENT_ID
            | opt::RELAY_AGENT_INFO
    )
}

/// The subnet mask, required with an address: false if the scope has one and it does not fit.
pub(super) fn put_subnet_mask(w: &mut OptionWriter<'_>, r: &RenderedOptions) -> bool {
    r.get(opt::SUBNET_MASK).is_none_or(|m| w.put(opt::SUBNET_MASK, m))
}

/// The scope's other options in the client's order (55), or all configured ones when it sent
/// no list; optional ones that do not fit are left out. True if all fitted.
pub(super) fn put_listed(w: &mut OptionWriter<'_>, r: &RenderedOptions, prl: &[u8]) -> bool {
    let codes = if prl.is_empty() { r.codes() } else { prl };
    let mut all = true;
    for &c in codes {
        if !engine_written(c)
            && let Some(v) = r.get(c)
        {
            all &= w.put(c, v);
        }
    }
    all
}
