//! Kea's host commands: reservations added, read and removed while the daemon runs
//! (`reservation-add`, `-get`, `-get-all`, `-get-page`, `-del`), and the subnet commands
//! (`subnet4-list`, `subnet4-get`). An edit is kept by the lease store (the state directory's
//! `hosts.json`) before it is answered, then applied as a reload applies a new file (the lease
//! tables rebuilt when a reserved address changes); a reload of the file keeps them. The
//! configuration file's own reservations are read like the others but not changed here.

use dhcp_xdp_core::config::{
    Config,
    hosts::{host_json, key_of, parse_host, write_toml},
};
use serde_json::{Value, json};

use super::{Control, answer, with_args};

/// The subnet and reservation a request names: `subnet-id` and either `ip-address` or
/// `identifier-type` + `identifier`.
fn find(cfg: &Config, args: &Value) -> Result<Option<(usize, usize)>, String> {
    let id = args.get("subnet-id").and_then(Value::as_u64).ok_or("subnet-id is missing")? as u32;
    let si = cfg.subnet_index(id).ok_or_else(|| format!("no subnet with id {id}"))?;
    let s = &cfg.subnets[si];
    if let Some(a) = args.get("ip-address").and_then(Value::as_str) {
        let a: std::net::Ipv4Addr = a.parse().map_err(|_| format!("`{a}` is not an IPv4 address"))?;
        return Ok(s.reservations.iter().position(|r| r.ip == Some(a)).map(|r| (si, r)));
    }
    let kind =
        args.get("identifier-type").and_then(Value::as_str).ok_or("identifier-type (or ip-address) is missing")?;
    let identifier = args.get("identifier").and_then(Value::as_str).ok_or("identifier is missing")?;
    let key = key_of(kind, identifier)?;
    Ok(s.reservations.iter().position(|r| r.key == key).map(|r| (si, r)))
}

impl Control {
    /// Keeps `hosts` and puts them in force; the error says why nothing changed.
    fn apply_hosts(&self, cfg: &Config, hosts: &[Value]) -> Result<(), String> {
        let next = cfg.with_hosts(hosts)?;
        self.shared.store.save_hosts(hosts)?;
        let msg = crate::serve::reload(&self.shared, next);
        tracing::info!("reservations: {msg}");
        Ok(())
    }

    pub(super) fn reservation_add(&self, args: &Value) -> Value {
        let Some(h) = args.get("reservation") else { return answer(1, "reservation is missing") };
        let _edit = self.shared.reconfigure.lock().unwrap_or_else(|p| p.into_inner());
        let cfg = self.shared.runtime().cfg.clone();
        if let Err(e) = parse_host(&cfg, h) {
            return answer(1, e);
        }
        let mut hosts = cfg.api_hosts();
        hosts.push(h.clone());
        match self.apply_hosts(&cfg, &hosts) {
            Ok(()) => answer(0, "Host added."),
            Err(e) => answer(1, e),
        }
    }

    pub(super) fn reservation_del(&self, args: &Value) -> Value {
        let _edit = self.shared.reconfigure.lock().unwrap_or_else(|p| p.into_inner());
        let cfg = self.shared.runtime().cfg.clone();
        let (si, ri) = match find(&cfg, args) {
            Ok(Some(found)) => found,
            Ok(None) => return answer(1, "Host not deleted (not found)."),
            Err(e) => return answer(1, e),
        };
        let r = &cfg.subnets[si].reservations[ri];
        let Some(given) = &r.api else {
            return answer(1, "the reservation is in the configuration file: change the file and reload");
        };
        let hosts: Vec<Value> = cfg.api_hosts().into_iter().filter(|h| h != given).collect();
        match self.apply_hosts(&cfg, &hosts) {
            Ok(()) => answer(0, "Host deleted."),
            Err(e) => answer(1, e),
        }
    }

    pub(super) fn reservation_get(&self, args: &Value) -> Value {
        let cfg = self.shared.runtime().cfg.clone();
        match find(&cfg, args) {
            Ok(Some((si, ri))) => {
                let s = &cfg.subnets[si];
                with_args(0, "Host found.", host_json(&cfg, s.id, &s.reservations[ri]))
            }
            Ok(None) => answer(3, "Host not found."),
            Err(e) => answer(1, e),
        }
    }

    /// Every reservation of `subnet-id` (every subnet's without it), in order.
    fn all_hosts(cfg: &Config, subnet: Option<u32>) -> Vec<Value> {
        cfg.subnets
            .iter()
            .filter(|s| subnet.is_none_or(|id| s.id == id))
            .flat_map(|s| s.reservations.iter().map(move |r| host_json(cfg, s.id, r)))
            .collect()
    }

    pub(super) fn reservation_get_all(&self, args: &Value) -> Value {
        let cfg = self.shared.runtime().cfg.clone();
        let Some(id) = args.get("subnet-id").and_then(Value::as_u64) else { return answer(1, "subnet-id is missing") };
        if cfg.subnet_index(id as u32).is_none() {
            return answer(1, format!("no subnet with id {id}"));
        }
        let hosts = Self::all_hosts(&cfg, Some(id as u32));
        let n = hosts.len();
        with_args(if n == 0 { 3 } else { 0 }, format!("{n} IPv4 host(s) found."), json!({ "hosts": hosts }))
    }

    /// Pages of `limit` reservations (of `subnet-id`, or all); `from` is the position the
    /// previous page's `next` gave.
    pub(super) fn reservation_get_page(&self, args: &Value) -> Value {
        let cfg = self.shared.runtime().cfg.clone();
        let Some(limit) = args.get("limit").and_then(Value::as_u64).filter(|&l| l > 0) else {
            return answer(1, "limit (above 0) is missing");
        };
        let subnet = args.get("subnet-id").and_then(Value::as_u64).map(|s| s as u32);
        let from = args.get("from").and_then(Value::as_u64).unwrap_or(0) as usize;
        let all = Self::all_hosts(&cfg, subnet);
        let page: Vec<Value> = all.iter().skip(from).take(limit as usize).cloned().collect();
        let n = page.len();
        if n == 0 {
            return with_args(3, "0 IPv4 host(s) found.", json!({ "count": 0, "hosts": [] }));
        }
        with_args(
            0,
            format!("{n} IPv4 host(s) found."),
            json!({ "count": n, "hosts": page, "next": { "from": from + n, "source-index": 0 } }),
        )
    }

    /// `config-write`: the configuration file with the API's reservations written into it, to
    /// `filename` (default: the configuration file itself), replaced whole (a temporary file
    /// synced and renamed).
    pub(super) fn config_write(&self, args: &Value) -> Value {
        use std::io::Write as _;
        let cfg = self.shared.runtime().cfg.clone();
        let source = std::path::PathBuf::from(&cfg.source);
        let Ok(text) = std::fs::read_to_string(&source) else {
            return answer(
                1,
                format!("the configuration did not come from a file this daemon can read ({})", cfg.source),
            );
        };
        let target = args
            .get("filename")
            .and_then(Value::as_str)
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| source.clone());
        let toml = match write_toml(&text, &cfg.api_hosts()) {
            Ok(t) => t,
            Err(e) => return answer(1, e),
        };
        let tmp = target.with_extension("tmp-config-write");
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(toml.as_bytes()).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, &target));
        match written {
            Ok(()) => with_args(
                0,
                format!("Configuration written to {} successfully", target.display()),
                json!({ "filename": target.display().to_string(), "size": toml.len() }),
            ),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                answer(1, format!("writing {}: {e}", target.display()))
            }
        }
    }

    pub(super) fn subnet4_list(&self) -> Value {
        let cfg = self.shared.runtime().cfg.clone();
        let list: Vec<Value> = cfg
            .subnets
            .iter()
            .map(|s| json!({ "id": s.id, "subnet": format!("{}/{}", s.net.addr, s.net.prefix) }))
            .collect();
        let n = list.len();
        with_args(if n == 0 { 3 } else { 0 }, format!("{n} IPv4 subnets found"), json!({ "subnets": list }))
    }

    pub(super) fn subnet4_get(&self, args: &Value) -> Value {
        let cfg = self.shared.runtime().cfg.clone();
        let by_id = args.get("id").and_then(Value::as_u64);
        let by_prefix = args.get("subnet").and_then(Value::as_str);
        let Some(s) = cfg
            .subnets
            .iter()
            .find(|s| Some(u64::from(s.id)) == by_id || by_prefix == Some(&format!("{}/{}", s.net.addr, s.net.prefix)))
        else {
            return answer(3, "No subnet found");
        };
        let pools: Vec<Value> = s
            .pools
            .iter()
            .map(|p| {
                let mut v = json!({ "pool": format!("{}-{}", p.start, p.end) });
                let classes = cfg.class_names(p.client_classes);
                if !classes.is_empty() {
                    v["client-classes"] = json!(classes);
                }
                v
            })
            .collect();
        let subnet = json!({
            "id": s.id,
            "subnet": format!("{}/{}", s.net.addr, s.net.prefix),
            "valid-lifetime": s.lease_time,
            "renew-timer": s.renew_time,
            "rebind-timer": s.rebind_time,
            "pools": pools,
            "reservations": s.reservations.iter().map(|r| host_json(&cfg, s.id, r)).collect::<Vec<_>>(),
        });
        with_args(
            0,
            format!("Info about IPv4 subnet {}/{} (id {}) returned", s.net.addr, s.net.prefix, s.id),
            json!({ "subnet4": [subnet] }),
        )
    }
}
