//! The `lease4-*` commands (DHCPv4; `lease6-*` will sit beside): reads from the lease tables,
//! edits made durable in the lease store before the answer (as an ACK is).

use super::*;

impl Control {
    /// A lease in Kea's shape, with the host name its client gave.
    pub(super) fn lease_json(&self, l: &Lease) -> Value {
        let rt = self.shared.runtime();
        let attrs = rt.db.attrs_of(&l.key);
        dhcp_xdp_core::migrate::lease_json(l, |a| attrs[a as usize].clone(), &rt.cfg)
    }

    /// Leases as Kea lists them: bindings and probations (expired and released records are
    /// only remembered for affinity here, and offers are not leases yet).
    pub(super) fn listed(l: &Lease) -> bool {
        matches!(l.state, LeaseState::Bound | LeaseState::Declined)
    }

    pub(super) fn lease_get(&self, args: &Value) -> Value {
        let db = self.shared.runtime().db.clone();
        let found = if let Some(a) = args.get("ip-address").and_then(Value::as_str) {
            let Ok(addr) = a.parse::<Ipv4Addr>() else { return answer(1, format!("'{a}' is not an IPv4 address")) };
            db.lease_at(addr).map(|(_, l)| l).filter(Self::listed)
        } else {
            let (Some(kind), Some(id)) =
                (args.get("identifier-type").and_then(Value::as_str), args.get("identifier").and_then(Value::as_str))
            else {
                return answer(1, "lease4-get takes ip-address, or identifier-type, identifier and subnet-id");
            };
            let subnet = args.get("subnet-id").and_then(Value::as_u64);
            let matches = self.by_identifier(kind, id);
            match matches {
                Err(e) => return answer(1, e),
                Ok(v) => v.into_iter().find(|l| subnet.is_none_or(|s| u64::from(l.subnet) == s)),
            }
        };
        match found {
            Some(l) => with_args(0, "IPv4 lease found.", self.lease_json(&l)),
            None => answer(3, "Lease not found."),
        }
    }

    pub(super) fn by_identifier(&self, kind: &str, id: &str) -> Result<Vec<Lease>, String> {
        let db = self.shared.runtime().db.clone();
        match kind {
            "hw-address" => {
                let mac = parse_mac(id).ok_or_else(|| format!("'{id}' is not a hardware address"))?;
                Ok(db.leases_where(|l| Self::listed(l) && l.chaddr == mac))
            }
            "client-id" => {
                let cid = dhcp_xdp_core::config::parse_hex(id).ok_or_else(|| format!("'{id}' is not a client id"))?;
                let key = ClientKey::client_id(&cid, 0);
                Ok(db.leases_where(|l| Self::listed(l) && l.key.same_client(&key)))
            }
            other => Err(format!("identifier-type '{other}' not supported (hw-address, client-id)")),
        }
    }

    pub(super) fn lease_list(&self, mut leases: Vec<Lease>) -> Value {
        leases.sort_by_key(|l| u32::from(l.addr));
        if leases.is_empty() {
            return with_args(3, "0 IPv4 lease(s) found.", json!({ "leases": [] }));
        }
        let n = leases.len();
        with_args(
            0,
            format!("{n} IPv4 lease(s) found."),
            json!({ "leases": leases.iter().map(|l| self.lease_json(l)).collect::<Vec<_>>() }),
        )
    }

    pub(super) fn lease_get_all(&self, args: &Value) -> Value {
        self.lease_list(self.all_leases(args))
    }

    /// The leases `lease4-get-all` lists (of `subnets`, when given).
    pub(super) fn all_leases(&self, args: &Value) -> Vec<Lease> {
        let subnets: Option<Vec<u64>> =
            args.get("subnets").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_u64).collect());
        let db = self.shared.runtime().db.clone();
        let mut leases =
            db.leases_where(|l| Self::listed(l) && subnets.as_ref().is_none_or(|s| s.contains(&u64::from(l.subnet))));
        leases.sort_by_key(|l| u32::from(l.addr));
        leases
    }

    pub(super) fn lease_get_page(&self, args: &Value) -> Value {
        let from = match args.get("from").and_then(Value::as_str) {
            Some("start") => 0u32,
            Some(a) => match a.parse::<Ipv4Addr>() {
                Ok(ip) => u32::from(ip).saturating_add(1),
                Err(_) => return answer(1, format!("'{a}' is neither \"start\" nor an IPv4 address")),
            },
            None => return answer(1, "lease4-get-page takes from (\"start\" or the last address) and limit"),
        };
        let Some(limit) = args.get("limit").and_then(Value::as_u64).filter(|&l| l > 0) else {
            return answer(1, "lease4-get-page takes a limit of at least 1");
        };
        let db = self.shared.runtime().db.clone();
        let mut leases = db.leases_where(|l| Self::listed(l) && u32::from(l.addr) >= from);
        leases.sort_by_key(|l| u32::from(l.addr));
        leases.truncate(limit as usize);
        if leases.is_empty() {
            return with_args(3, "0 IPv4 lease(s) found.", json!({ "count": 0, "leases": [] }));
        }
        let n = leases.len();
        with_args(
            0,
            format!("{n} IPv4 lease(s) found."),
            json!({ "count": n, "leases": leases.iter().map(|l| self.lease_json(l)).collect::<Vec<_>>() }),
        )
    }

    pub(super) fn lease_get_by(&self, args: &Value, kind: &str) -> Value {
        let Some(id) = args.get(kind).and_then(Value::as_str) else { return answer(1, format!("{kind} is missing")) };
        match self.by_identifier(kind, id) {
            Ok(v) => self.lease_list(v),
            Err(e) => answer(1, e),
        }
    }

    /// Journals `changes` and waits until they are durable (as an ACK would).
    pub(super) fn make_durable(&self, changes: &[(u64, Change)]) -> Result<(), String> {
        let j = &self.shared.store;
        if changes.is_empty() {
            return Ok(());
        }
        match j.append(0, changes) {
            Ok(None) => Ok(()),
            Ok(Some(ticket)) => {
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    match j.settled(0, ticket) {
                        Some(true) => return Ok(()),
                        Some(false) => return Err(format!("the {} could not be written", j.name())),
                        None if Instant::now() > deadline => {
                            return Err(format!("the {} did not sync in 5 s", j.name()));
                        }
                        None => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }

    pub(super) fn lease_put(&self, args: &Value, replace: bool) -> Value {
        let rt = self.shared.runtime();
        let Some(addr) = args.get("ip-address").and_then(Value::as_str).and_then(|a| a.parse::<Ipv4Addr>().ok()) else {
            return answer(1, "ip-address is missing or not an IPv4 address");
        };
        let Some(mac) = args.get("hw-address").and_then(Value::as_str).and_then(parse_mac) else {
            return answer(1, "hw-address is missing or not a hardware address");
        };
        let subnet = match args.get("subnet-id").and_then(Value::as_u64).filter(|&s| s != 0) {
            Some(s) => rt.cfg.subnet_index(s as u32),
            None => rt.cfg.subnet_of(addr),
        };
        let Some(si) = subnet.filter(|&i| rt.cfg.subnets[i].contains(addr)) else {
            return answer(1, format!("no subnet holds {addr}"));
        };
        let s = &rt.cfg.subnets[si];
        let key = match args.get("client-id").and_then(Value::as_str) {
            Some(c) => match dhcp_xdp_core::config::parse_hex(c) {
                Some(b) => ClientKey::client_id(&b, s.lease_scope),
                None => return answer(1, format!("'{c}' is not a client id")),
            },
            None => ClientKey::hw(1, &mac, s.lease_scope),
        };
        let now = unix_now();
        // Seconds that do not fit the lease record are refused, never cut to something else.
        let seconds =
            |name: &str| -> Result<Option<u32>, Value> {
                match args.get(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => v.as_u64().and_then(|x| u32::try_from(x).ok()).map(Some).ok_or_else(|| {
                        answer(1, format!("{name} {v} is not a number of seconds from 0 to {}", u32::MAX))
                    }),
                }
            };
        let valid = match seconds("valid-lft") {
            Ok(v) => v.unwrap_or(s.lease_time),
            Err(e) => return e,
        };
        let expires = match seconds("expire") {
            Ok(e) => e.unwrap_or(now.saturating_add(valid)),
            Err(e) => return e,
        };
        let state = match args.get("state").and_then(Value::as_u64) {
            Some(1) => LeaseState::Declined,
            Some(2) => LeaseState::Expired,
            _ => LeaseState::Bound,
        };
        let lease = Lease { key, chaddr: mac, addr, expires, state, subnet: s.id, tags: Tags::default() };
        match rt.db.admin_put(lease, replace, now) {
            Ok(changes) => match self.make_durable(&changes) {
                Ok(()) if replace => answer(0, "IPv4 lease updated."),
                Ok(()) => answer(0, format!("Lease for address {addr}, subnet-id {} added.", s.id)),
                Err(e) => answer(1, e),
            },
            Err(LeaseError::Unavailable) => answer(1, format!("IPv4 lease for address {addr} already exists")),
            Err(LeaseError::NotHeld) => {
                answer(3, format!("failed to update the lease with address {addr}: no such lease"))
            }
            Err(e) => answer(1, e.to_string()),
        }
    }

    pub(super) fn lease_del(&self, args: &Value) -> Value {
        let Some(addr) = args.get("ip-address").and_then(Value::as_str).and_then(|a| a.parse::<Ipv4Addr>().ok()) else {
            return answer(1, "ip-address is missing or not an IPv4 address");
        };
        let elsewhere = match self.shared.store.admin_removal(crate::store::AdminRemoval::Lease(addr)) {
            Ok(n) => n,
            Err(why) => return answer(1, why),
        };
        let db = self.shared.runtime().db.clone();
        match db.admin_remove(addr) {
            Ok(changes) => match self.make_durable(&changes) {
                Ok(()) => answer(0, "IPv4 lease deleted."),
                Err(e) => answer(1, e),
            },
            Err(_) if elsewhere > 0 => answer(0, "IPv4 lease deleted."),
            Err(_) => answer(3, "IPv4 lease not found."),
        }
    }

    pub(super) fn lease_wipe(&self, args: &Value) -> Value {
        let subnet = args.get("subnet-id").and_then(Value::as_u64).filter(|&s| s != 0).map(|s| s as u32);
        let elsewhere = match self.shared.store.admin_removal(crate::store::AdminRemoval::Subnet(subnet)) {
            Ok(n) => n,
            Err(why) => return answer(1, why),
        };
        let db = self.shared.runtime().db.clone();
        let (changes, n) = db.admin_wipe(subnet);
        let n = n.max(elsewhere as usize);
        if let Err(e) = self.make_durable(&changes) {
            return answer(1, e);
        }
        let what = subnet.map(|s| s.to_string()).unwrap_or_else(|| "all".into());
        if n == 0 {
            return answer(3, format!("Deleted 0 IPv4 lease(s) from subnet(s) {what}"));
        }
        answer(0, format!("Deleted {n} IPv4 lease(s) from subnet(s) {what}"))
    }
}
