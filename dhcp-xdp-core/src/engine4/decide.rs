//! The decision: which subnet the client is on (relay fields, VLAN tags, the receiving
//! interface), then what RFC 2131 says to answer, taking or changing leases in the locked shard.
//! It never writes the frame; the reply is [`super::reply`]'s work.

use super::*;

impl Engine {
    /// Link selection (RFC 3527) > subnet selection (RFC 3011) > giaddr > ciaddr of a
    /// renewing client > the receiving interface and its VLAN tags.
    pub(super) fn select_subnet(
        &self,
        cfg: &Config,
        server: &ServerIdentity,
        req: &Req,
        vlans: [u16; 2],
    ) -> Option<usize> {
        let containing = |a: Ipv4Addr| cfg.subnet_of(a);
        if let Some(a) = req.link_selection {
            return containing(a);
        }
        if let Some(a) = req.subnet_selection {
            return containing(a);
        }
        if !req.giaddr.is_unspecified() {
            return containing(req.giaddr);
        }
        if !req.ciaddr.is_unspecified()
            && let Some(s) = containing(req.ciaddr)
        {
            return Some(s);
        }
        let tags: &[u16] = match vlans {
            [0, _] => &[],
            [_, 0] => &vlans[..1],
            _ => &vlans,
        };
        if !tags.is_empty() {
            return cfg.subnets.iter().position(|s| s.vlan == tags);
        }
        // The first untagged subnet (in configuration order) holding one of our addresses, else
        // the only untagged subnet.
        server
            .addrs
            .iter()
            .filter_map(|n| cfg.subnet_of(n.addr))
            .filter(|&i| cfg.subnets[i].vlan.is_empty())
            .min()
            .or(cfg.sole_untagged())
    }

    /// Subnet ids a client on `subnet` may get an address from: its own, then the others of
    /// its shared network.
    pub(super) fn candidates(cfg: &Config, subnet: usize, out: &mut [u32; 16]) -> usize {
        out[0] = cfg.subnets[subnet].id;
        let mut n = 1;
        if let Some(sn) = cfg.subnets[subnet].shared_network {
            for (i, s) in cfg.subnets.iter().enumerate() {
                if i != subnet && s.shared_network == Some(sn) && n < out.len() {
                    out[n] = s.id;
                    n += 1;
                }
            }
        }
        n
    }

    pub(super) fn reservation(&self, s: &Subnet, req: &Req) -> Option<usize> {
        if s.reservation_index.is_empty() {
            return None;
        }
        let relay = &self.relay[..self.relay_len];
        let client_id = self.client_id_len.map_or(&[][..], |n| &self.client_id[..n]);
        let (circuit, remote) = (&relay[self.circuit.0..][..self.circuit.1], &relay[self.remote.0..][..self.remote.1]);
        s.reservation_index.find((req.htype == 1).then_some(req.chaddr), client_id, circuit, remote)
    }

    pub(super) fn server_id(cfg: &Config, server: &ServerIdentity, s: &Subnet) -> Ipv4Addr {
        s.server_id
            .or(cfg.server_id)
            .or_else(|| server.addrs.iter().find(|n| s.contains(n.addr)).map(|n| n.addr))
            .unwrap_or_else(|| server.primary())
    }

    /// The scope of an address that may lie outside every subnet (INFORM's ciaddr): the
    /// reservation's, else its own subnet's, else `subnet`'s.
    pub(super) fn opts_for(cfg: &Config, subnet: usize, addr: Ipv4Addr, reservation: Option<(usize, usize)>) -> OptSrc {
        match (reservation, cfg.subnet_of(addr)) {
            (None, Some(s)) => Self::opts_in(cfg, s, addr, None),
            _ => Self::opts_in(cfg, subnet, addr, reservation),
        }
    }

    /// The scope of `addr`, which lies in subnet `s`: the reservation's, else its pool's, else
    /// the subnet's.
    pub(super) fn opts_in(cfg: &Config, s: usize, addr: Ipv4Addr, reservation: Option<(usize, usize)>) -> OptSrc {
        if let Some((s, r)) = reservation {
            return OptSrc::Reservation(s, r);
        }
        match cfg.subnets[s].pool_of(addr) {
            Some(p) => OptSrc::Pool(s, p),
            None => OptSrc::Subnet(s),
        }
    }

    pub(super) fn decide(
        &mut self,
        now: u32,
        cfg: &Config,
        server: &ServerIdentity,
        shard: &mut ShardGuard<'_>,
        req: &Req,
        subnet: usize,
    ) -> Result<Answer, DropReason> {
        // One lease per client per scope (subnet or shared network): the key carries it.
        let key = self.key(req, cfg.subnets[subnet].lease_scope);
        let mut cand = [0u32; 16];
        let mut nc = Self::candidates(cfg, subnet, &mut cand);
        let mut subnet = subnet;
        if !cfg.classes.is_empty() {
            // Subnets guarded by classes the client is not in are not its own.
            let mut kept = 0;
            for i in 0..nc {
                if self.subnet_allows(cfg, cand[i]) {
                    cand[kept] = cand[i];
                    kept += 1;
                }
            }
            nc = kept;
            if nc == 0 {
                return Err(DropReason::NoSubnet);
            }
            if cand[0] != cfg.subnets[subnet].id {
                subnet = cfg.subnet_index(cand[0]).ok_or(DropReason::NoSubnet)?;
            }
        }
        let cand = &cand[..nc];
        let in_cand = |a: Ipv4Addr| cfg.subnet_of(a).filter(|&i| cand.contains(&cfg.subnets[i].id));
        // A reservation in any candidate subnet.
        let resv = if cfg.classes.is_empty() {
            cand.iter().find_map(|&id| {
                let si = cfg.subnet_index(id)?;
                self.reservation(&cfg.subnets[si], req).map(|r| (si, r))
            })
        } else {
            // Classification looked it up already (in the same candidates, before the guards).
            self.cls.resv.filter(|(si, _)| cand.contains(&cfg.subnets[*si].id))
        };
        let reserved_ip = resv.and_then(|(s, r)| cfg.subnets[s].reservations[r].ip.map(|a| (a, cfg.subnets[s].id)));
        // Who asks, for the quotas: the relay's circuit and remote id (when trusted).
        let tags = if self.relay_len == 0 {
            Tags::default()
        } else {
            let relay = &self.relay[..self.relay_len];
            Tags {
                circuit: Tags::of(&relay[self.circuit.0..][..self.circuit.1]),
                remote: Tags::of(&relay[self.remote.0..][..self.remote.1]),
            }
        };
        shard.set_asker(tags, &cfg.limits, cfg.offer_hold);
        if !cfg.classes.is_empty() {
            shard.set_asker_classes(self.cls.now.bits);
        }
        if !shard.circuit_rate_ok(now) {
            return Err(DropReason::OverLimit);
        }
        // Decided where the client's record (or its reserved address) lives, before anything
        // changes. INFORM touches no lease.
        if req.mtype != Some(MessageType::Inform) {
            let home = match reserved_ip {
                Some((a, _)) => shard.home_of_reserved(a),
                None => shard.home_of(&key),
            };
            if home.is_some() {
                self.redirect = home;
                return Err(DropReason::Redirected);
            }
        }
        let sub = &cfg.subnets[subnet];
        let ours = |sid: Ipv4Addr| {
            sid == Self::server_id(cfg, server, sub)
                || Some(sid) == req.server_id_override
                || server.is_ours(sid)
                || Some(sid) == cfg.server_id
        };
        // ACK `addr`, which lies in candidate subnet `si`, if the lease store binds it.
        let ack = |shard: &mut ShardGuard<'_>, addr: Ipv4Addr, si: usize| -> Result<Answer, DropReason> {
            let s = &cfg.subnets[si];
            let reserved = reserved_ip.map(|(a, _)| a) == Some(addr);
            // An address of a pool the client's classes no longer allow is not confirmed.
            if !reserved && !cfg.classes.is_empty() && !shard.pool_allows(addr) {
                return Ok(Answer::Nak { subnet: Some(si) });
            }
            match shard.bind(now, key, req.chaddr, addr, s.id, s.lease_time, reserved) {
                Ok(_) => Ok(Answer::Ack {
                    yiaddr: addr,
                    subnet: si,
                    lease: s.lease_time,
                    opts: Self::opts_in(cfg, si, addr, resv),
                }),
                Err(LeaseError::OverLimit) => Err(DropReason::OverLimit),
                Err(_) => Ok(Answer::Nak { subnet: Some(si) }),
            }
        };
        match req.mtype {
            Some(MessageType::Discover) => {
                match shard.offer(now, cfg.offer_hold, &key, req.chaddr, cand, reserved_ip.as_ref(), req.requested) {
                    Ok((addr, sid)) => {
                        let si = cfg.subnet_index(sid).unwrap_or(subnet);
                        let lease = cfg.subnets[si].lease_time;
                        Ok(Answer::Offer { yiaddr: addr, subnet: si, lease, opts: Self::opts_in(cfg, si, addr, resv) })
                    }
                    Err(LeaseError::OverLimit) => Err(DropReason::OverLimit),
                    Err(_) => Err(DropReason::NoAddress),
                }
            }
            Some(MessageType::Request) => {
                if let Some(sid) = req.server_id {
                    // SELECTING.
                    if !ours(sid) {
                        shard.forget_offer(&key, now);
                        return Err(DropReason::OtherServer);
                    }
                    let addr = req
                        .requested
                        .or(Some(req.ciaddr).filter(|a| !a.is_unspecified()))
                        .ok_or(DropReason::Malformed)?;
                    let si = in_cand(addr).ok_or(DropReason::Silent);
                    match shard.get(&key) {
                        Some(l) if l.addr == addr && l.state != LeaseState::Declined => ack(shard, addr, si?),
                        _ if reserved_ip.map(|(a, _)| a) == Some(addr) => ack(shard, addr, si?),
                        _ => Ok(Answer::Nak { subnet: Some(subnet) }),
                    }
                } else if let Some(addr) = if req.ciaddr.is_unspecified() { req.requested } else { Some(req.ciaddr) } {
                    // INIT-REBOOT (requested address, no ciaddr), or RENEWING (unicast) and
                    // REBINDING (broadcast) with ciaddr.
                    let Some(si) = in_cand(addr) else {
                        return if sub.authoritative {
                            Ok(Answer::Nak { subnet: Some(subnet) })
                        } else {
                            Err(DropReason::Silent)
                        };
                    };
                    let reserved = reserved_ip.map(|(a, _)| a);
                    self.verify(now, shard, &key, addr, reserved, sub.authoritative, |shard| ack(shard, addr, si))
                } else {
                    Err(DropReason::Malformed)
                }
            }
            Some(MessageType::Decline) => {
                if req.server_id.is_some_and(|sid| !ours(sid)) {
                    return Err(DropReason::OtherServer);
                }
                let addr = req.requested.ok_or(DropReason::Malformed)?;
                match shard.decline(&key, addr, now, cfg.decline_probation, cfg.limits.declined_percent) {
                    Ok(()) => Err(DropReason::Consumed),
                    Err(LeaseError::OverLimit) => Err(DropReason::OverLimit),
                    Err(_) => Err(DropReason::Refused),
                }
            }
            Some(MessageType::Release) => {
                if req.server_id.is_some_and(|sid| !ours(sid)) {
                    return Err(DropReason::OtherServer);
                }
                if shard.release(&key, req.ciaddr, now) { Err(DropReason::Consumed) } else { Err(DropReason::Refused) }
            }
            Some(MessageType::Inform) => {
                let si = cfg.subnet_of(req.ciaddr).unwrap_or(subnet);
                let opts = Self::opts_for(cfg, si, req.ciaddr, resv);
                Ok(Answer::InformAck { subnet: si, opts })
            }
            None => match (cfg.bootp, resv, reserved_ip) {
                (BootpPolicy::Reservations, Some(r), Some((addr, _))) => {
                    let si = r.0;
                    Ok(Answer::Bootp { yiaddr: addr, subnet: si, opts: OptSrc::Reservation(r.0, r.1) })
                }
                _ => Err(DropReason::Bootp),
            },
            Some(_) => Err(DropReason::NotRequest),
        }
    }

    /// INIT-REBOOT / RENEWING / REBINDING: is `addr` still right for this client? Inlined
    /// into [`decide`](Self::decide), its one caller, as it was before the engine was split
    /// into modules (a call with a closure and seven arguments costs ≈ 50 instructions).
    #[inline(always)]
    #[expect(
        clippy::too_many_arguments,
        reason = "the hot path passes what it already holds instead of building a struct per message"
    )]
    pub(super) fn verify(
        &self,
        now: u32,
        shard: &mut ShardGuard<'_>,
        key: &ClientKey,
        addr: Ipv4Addr,
        reserved: Option<Ipv4Addr>,
        authoritative: bool,
        ack: impl Fn(&mut ShardGuard<'_>) -> Result<Answer, DropReason>,
    ) -> Result<Answer, DropReason> {
        let nak = || if authoritative { Ok(Answer::Nak { subnet: None }) } else { Err(DropReason::Silent) };
        if let Some(r) = reserved {
            return if r == addr { ack(shard) } else { nak() };
        }
        match shard.get(key) {
            Some(l) if l.addr == addr && l.state != LeaseState::Declined => {
                if l.holds(now) || shard.available(addr, key, now) { ack(shard) } else { nak() }
            }
            Some(l) if l.holds(now) && l.state != LeaseState::Declined => nak(),
            _ => match shard.by_addr(addr) {
                Some(other) if other.key != *key && other.holds(now) => nak(),
                // No record of this client: an authoritative server that owns the free address
                // confirms it (fast recovery after lease loss); otherwise RFC 2131 silence.
                _ if authoritative && shard.available(addr, key, now) => ack(shard),
                _ => Err(DropReason::Silent),
            },
        }
    }
}
