//! What the engine copies out of a request before the reply overwrites the frame: the fields
//! and options it decides on, and the lease key. It reads only the parsed message and never
//! writes the frame.

use super::{blocks::BLOCK_PRL, *};

impl Engine {
    /// Picks out what the engine uses: the options the parse indexed, so no second walk. Options
    /// that must occur once (53, 50, 54, 57, 118) count as absent when repeated, as
    /// [`Message::single`] says; the others are concatenated (RFC 3396).
    pub(super) fn extract(&mut self, m: &Message<'_>) -> Req {
        let ip = |code| m.single(code).and_then(|v| <[u8; 4]>::try_from(v).ok()).map(Ipv4Addr::from);
        let mut req = Req {
            mtype: m.message_type(),
            flags: m.flags(),
            htype: m.htype(),
            ciaddr: m.ciaddr(),
            giaddr: m.giaddr(),
            chaddr: m.chaddr6(),
            requested: ip(opt::REQUESTED_IP),
            server_id: ip(opt::SERVER_ID),
            max_size: m.max_message_size(),
            link_selection: None,
            subnet_selection: ip(opt::SUBNET_SELECTION),
            server_id_override: None,
            has_cookie: m.has_cookie(),
        };
        self.prl_len = 0;
        self.relay_len = 0;
        self.client_id_len = None;
        // The head of the list stays zero-padded: the option-block cache compares it whole.
        self.prl[..BLOCK_PRL].fill(0);
        if let Some(v) = m.option(opt::PARAMETER_LIST, &mut self.scratch) {
            self.prl_len = v.len().min(255);
            self.prl[..self.prl_len].copy_from_slice(&v[..self.prl_len]);
        }
        if let Some(v) = m.option(opt::CLIENT_ID, &mut self.scratch)
            && !v.is_empty()
            && v.len() <= 255
        {
            self.client_id[..v.len()].copy_from_slice(v);
            self.client_id_len = Some(v.len());
        }
        if let Some(v) = m.option(opt::RELAY_AGENT_INFO, &mut self.scratch)
            && v.len() <= 255
        {
            self.relay[..v.len()].copy_from_slice(v);
            self.relay_len = v.len();
        }
        self.circuit = (0, 0);
        self.remote = (0, 0);
        let ip = |v: &[u8]| <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from);
        let mut at = 0;
        for (code, v) in dhcp4::sub_options(&self.relay[..self.relay_len]) {
            let start = at + 2;
            at += 2 + v.len();
            match code {
                relay::CIRCUIT_ID => self.circuit = (start, v.len()),
                relay::REMOTE_ID => self.remote = (start, v.len()),
                relay::LINK_SELECTION => req.link_selection = ip(v),
                relay::SERVER_ID_OVERRIDE => req.server_id_override = ip(v),
                _ => {}
            }
        }
        req
    }

    pub(super) fn key(&self, req: &Req, scope: u32) -> ClientKey {
        match self.client_id_len {
            Some(n) => ClientKey::client_id(&self.client_id[..n], scope),
            None => ClientKey::hw(req.htype, &req.chaddr, scope),
        }
    }
}
