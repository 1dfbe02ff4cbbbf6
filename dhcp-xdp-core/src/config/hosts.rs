//! Reservations managed while the server runs (Kea's host commands): a host in Kea's JSON shape
//! (`subnet-id`, one identifier, `ip-address`, `hostname`, `client-classes`, `option-data`,
//! `next-server`, `server-hostname`, `boot-file-name`), validated against a configuration and
//! added to it as the file's own reservations are — so the engine, the lease tables' reserved
//! addresses and `reservation-get` see them alike. The configuration file's reservations are
//! never changed by them.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::{BootFields, Config, RenderedOptions, Reservation, ReservationIndex, ReservationKey};
use crate::{dhcp4::opt, net::colon_hex};

/// The identifier types of Kea's host commands this server keys reservations by.
pub const IDENTIFIER_TYPES: [&str; 4] = ["hw-address", "client-id", "circuit-id", "remote-id"];

/// A reservation's key from Kea's `identifier-type` and `identifier` (hex, `:`-separated or
/// not; a circuit or remote id may also be given as text in quotes, `'olt1/1/1'`).
pub fn key_of(kind: &str, identifier: &str) -> Result<ReservationKey, String> {
    let bytes = || -> Result<Vec<u8>, String> {
        if let Some(t) = identifier.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
            return Ok(t.as_bytes().to_vec());
        }
        super::options::parse_hex(identifier).ok_or_else(|| format!("identifier `{identifier}` is not hex"))
    };
    Ok(match kind {
        "hw-address" => ReservationKey::HwAddress(
            bytes()?.try_into().map_err(|_| format!("hw-address `{identifier}` is not six bytes"))?,
        ),
        "client-id" => ReservationKey::ClientId(bytes()?),
        "circuit-id" => ReservationKey::CircuitId(bytes()?),
        "remote-id" => ReservationKey::RemoteId(bytes()?),
        other => return Err(format!("identifier-type '{other}' is not one of {}", IDENTIFIER_TYPES.join(", "))),
    })
}

/// Kea's (`identifier-type`, `identifier`) of a key.
pub fn identifier_of(key: &ReservationKey) -> (&'static str, String) {
    match key {
        ReservationKey::HwAddress(m) => ("hw-address", colon_hex(m)),
        ReservationKey::ClientId(b) => ("client-id", colon_hex(b)),
        ReservationKey::CircuitId(b) => ("circuit-id", colon_hex(b)),
        ReservationKey::RemoteId(b) => ("remote-id", colon_hex(b)),
    }
}

/// A reservation of subnet `subnet_id` as Kea shows a host.
pub fn host_json(cfg: &Config, subnet_id: u32, r: &Reservation) -> Value {
    let (kind, id) = identifier_of(&r.key);
    let mut h = json!({ "subnet-id": subnet_id, kind: id });
    if let Some(ip) = r.ip {
        h["ip-address"] = json!(ip.to_string());
    }
    if let Some(n) = r.own_options.get(opt::HOSTNAME) {
        h["hostname"] = json!(String::from_utf8_lossy(n));
    }
    let classes = cfg.class_names(r.client_classes);
    if !classes.is_empty() {
        h["client-classes"] = json!(classes);
    }
    if let Some(a) = r.boot.next_server {
        h["next-server"] = json!(a.to_string());
    }
    for (k, v) in [("server-hostname", &r.boot.server_hostname), ("boot-file-name", &r.boot.boot_file_name)] {
        if let Some(v) = v {
            h[k] = json!(String::from_utf8_lossy(v));
        }
    }
    // An API host is shown as it was given (its option-data too).
    if let Some(given) = &r.api {
        h = given.clone();
    }
    h["source"] = json!(if r.api.is_some() { "api" } else { "configuration file" });
    h
}

/// A host in Kea's shape, checked against `cfg`: its subnet's index and the reservation.
pub fn parse_host(cfg: &Config, h: &Value) -> Result<(usize, Reservation), String> {
    let obj = h.as_object().ok_or("a reservation is a JSON object")?;
    for k in obj.keys() {
        let known = [
            "subnet-id",
            "ip-address",
            "hostname",
            "client-classes",
            "option-data",
            "next-server",
            "server-hostname",
            "boot-file-name",
            "source",
        ];
        if !known.contains(&k.as_str()) && !IDENTIFIER_TYPES.contains(&k.as_str()) {
            return Err(format!("'{k}' is not supported in a reservation"));
        }
    }
    let id = h.get("subnet-id").and_then(Value::as_u64).ok_or("subnet-id is missing")? as u32;
    let si = cfg.subnet_index(id).ok_or_else(|| format!("no subnet with id {id}"))?;
    let subnet = &cfg.subnets[si];
    let keys: Vec<(&str, &str)> =
        IDENTIFIER_TYPES.iter().filter_map(|k| h.get(*k).and_then(Value::as_str).map(|v| (*k, v))).collect();
    let [(kind, identifier)] = keys[..] else {
        return Err(format!("give exactly one identifier: {}", IDENTIFIER_TYPES.join(", ")));
    };
    let key = key_of(kind, identifier)?;
    let ip = match h.get("ip-address").and_then(Value::as_str) {
        Some(a) => {
            let a: Ipv4Addr = a.parse().map_err(|_| format!("ip-address `{a}` is not an IPv4 address"))?;
            if !subnet.contains(a) {
                return Err(format!("{a} is outside subnet {id} ({}/{})", subnet.net.addr, subnet.net.prefix));
            }
            Some(a)
        }
        None => None,
    };
    let mut own = subnet.own_options.clone();
    for (i, o) in h.get("option-data").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let name = o.get("name").and_then(Value::as_str);
        let code = o.get("code").and_then(Value::as_u64).and_then(|c| u8::try_from(c).ok());
        let data = o.get("data").and_then(Value::as_str).unwrap_or("");
        let def = cfg
            .option_defs
            .iter()
            .rev()
            .find(|d| name.map_or(Some(d.code) == code, |n| d.name == n))
            .ok_or_else(|| format!("option-data[{i}]: no such option (give a name or code this server defines)"))?;
        let csv = o.get("csv-format").and_then(Value::as_bool).unwrap_or(true);
        let value = if csv {
            def.encode(data).map_err(|e| format!("option-data[{i}]: {e}"))?
        } else {
            super::options::parse_hex(&data.replace(' ', "")).ok_or_else(|| format!("option-data[{i}]: not hex"))?
        };
        own.set(def.code, value);
    }
    if let Some(n) = h.get("hostname").and_then(Value::as_str) {
        own.set(opt::HOSTNAME, n.as_bytes().to_vec());
    }
    let mut classes = 0u64;
    for c in h.get("client-classes").and_then(Value::as_array).into_iter().flatten() {
        let name = c.as_str().ok_or("client-classes holds names")?;
        let i = cfg.classes.iter().position(|k| k.name == name).ok_or_else(|| format!("no client class '{name}'"))?;
        classes |= 1 << i;
    }
    let text = |k: &str, max: usize| -> Result<Option<Vec<u8>>, String> {
        match h.get(k).and_then(Value::as_str) {
            Some(v) if v.len() > max => Err(format!("{k} is longer than {max} bytes")),
            Some(v) => Ok(Some(v.as_bytes().to_vec())),
            None => Ok(None),
        }
    };
    let boot = BootFields {
        next_server: match h.get("next-server").and_then(Value::as_str) {
            Some(a) => Some(a.parse().map_err(|_| format!("next-server `{a}` is not an IPv4 address"))?),
            None => None,
        },
        server_hostname: text("server-hostname", 63)?,
        boot_file_name: text("boot-file-name", 127)?,
    };
    let full = cfg.global_options.overlay(&own);
    Ok((
        si,
        Reservation {
            key,
            ip,
            options: RenderedOptions::new(&full),
            own_options: own,
            client_classes: classes,
            boot,
            api: Some(h.clone()),
        },
    ))
}

impl Config {
    /// This configuration with `hosts` (Kea's JSON) as its API-managed reservations, in place of
    /// any it had: each checked as the file's are (its subnet exists, its address lies in it and
    /// is reserved once, its identifier once per subnet).
    pub fn with_hosts(&self, hosts: &[Value]) -> Result<Config, String> {
        let mut cfg = self.clone();
        for s in &mut cfg.subnets {
            s.reservations.retain(|r| r.api.is_none());
        }
        for (i, h) in hosts.iter().enumerate() {
            let (si, r) = parse_host(&cfg, h).map_err(|e| format!("reservation {i}: {e}"))?;
            let s = &cfg.subnets[si];
            if let Some(ip) = r.ip
                && s.reservations.iter().any(|x| x.ip == Some(ip))
            {
                return Err(format!("reservation {i}: {ip} is reserved already"));
            }
            if s.reservations.iter().any(|x| x.key == r.key) {
                return Err(format!("reservation {i}: subnet {} has a reservation for this identifier already", s.id));
            }
            cfg.subnets[si].reservations.push(r);
        }
        for s in &mut cfg.subnets {
            s.reservation_index = ReservationIndex::new(&s.reservations);
        }
        Ok(cfg)
    }

    /// The API-managed reservations, in Kea's JSON as they were given.
    pub fn api_hosts(&self) -> Vec<Value> {
        self.subnets.iter().flat_map(|s| s.reservations.iter().filter_map(|r| r.api.clone())).collect()
    }
}

/// The configuration file `source` (TOML text) with `hosts` (the API's reservations, Kea's JSON)
/// written into it as `[[subnet.reservation]]` of their subnets (by `id`, else position), for
/// `config-write`: the result is a file this server loads with the same reservations, in which
/// they are the file's own. Comments of `source` are not kept.
pub fn write_toml(source: &str, hosts: &[Value]) -> Result<String, String> {
    use toml::{Table, Value as Toml};
    let mut root: Table = toml::from_str(source).map_err(|e| format!("the configuration file: {}", e.message()))?;
    let subnets = root.get_mut("subnet").and_then(Toml::as_array_mut).ok_or("the file has no [[subnet]]")?;
    for (i, h) in hosts.iter().enumerate() {
        let id = h.get("subnet-id").and_then(Value::as_u64).ok_or_else(|| format!("reservation {i}: no subnet-id"))?;
        let pos = subnets
            .iter()
            .position(|s| s.get("id").and_then(Toml::as_integer) == Some(id as i64))
            .or_else(|| {
                let p = (id as usize).checked_sub(1)?;
                subnets.get(p).filter(|s| s.get("id").is_none()).map(|_| p)
            })
            .ok_or_else(|| format!("reservation {i}: no subnet with id {id} in the file"))?;
        let mut r = Table::new();
        let text = |v: &Value| Toml::String(v.as_str().unwrap_or_default().to_owned());
        for (kea, ours) in [
            ("hw-address", "hw-address"),
            ("client-id", "client-id"),
            ("circuit-id", "circuit-id-hex"),
            ("remote-id", "remote-id-hex"),
            ("ip-address", "ip"),
            ("hostname", "hostname"),
            ("next-server", "next-server"),
            ("server-hostname", "server-hostname"),
            ("boot-file-name", "boot-file-name"),
        ] {
            if let Some(v) = h.get(kea) {
                r.insert(ours.into(), text(v));
            }
        }
        if let Some(list) = h.get("client-classes").and_then(Value::as_array) {
            r.insert("client-classes".into(), Toml::Array(list.iter().map(text).collect()));
        }
        let mut custom = vec![];
        for o in h.get("option-data").and_then(Value::as_array).into_iter().flatten() {
            let mut c = Table::new();
            if let Some(n) = o.get("name") {
                c.insert("name".into(), text(n));
            }
            if let Some(code) = o.get("code").and_then(Value::as_i64) {
                c.insert("code".into(), Toml::Integer(code));
            }
            let key = if o.get("csv-format").and_then(Value::as_bool) == Some(false) { "hex" } else { "data" };
            c.insert(key.into(), text(o.get("data").unwrap_or(&Value::Null)));
            custom.push(Toml::Table(c));
        }
        if !custom.is_empty() {
            let mut opts = Table::new();
            opts.insert("custom".into(), Toml::Array(custom));
            r.insert("options".into(), Toml::Table(opts));
        }
        let subnet = subnets[pos].as_table_mut().ok_or("a [[subnet]] that is not a table")?;
        match subnet.get_mut("reservation").and_then(Toml::as_array_mut) {
            Some(list) => list.push(Toml::Table(r)),
            None => {
                subnet.insert("reservation".into(), Toml::Array(vec![Toml::Table(r)]));
            }
        }
    }
    toml::to_string(&root).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_hosts_written_into_the_file_load_as_the_files_own() {
        let src = "[[client-class]]\nname = \"pxe\"\n[[subnet]]\nsubnet = \"198.18.0.0/24\"\n\
                   [[subnet.pool]]\nrange = \"198.18.0.100-198.18.0.199\"\n\
                   [[subnet.reservation]]\nhw-address = \"02:00:00:00:00:99\"\nip = \"198.18.0.9\"\n";
        let cfg = Config::parse("f.toml", src).unwrap();
        let hosts = vec![
            json!({ "subnet-id": 1, "hw-address": "02:00:00:00:00:01", "ip-address": "198.18.0.50",
                    "hostname": "stb", "client-classes": ["pxe"], "boot-file-name": "stb.img",
                    "option-data": [{ "name": "domain-name", "data": "stb.example.net" }] }),
            json!({ "subnet-id": 1, "circuit-id": "6f:6c:74", "ip-address": "198.18.0.51" }),
        ];
        let live = cfg.with_hosts(&hosts).unwrap();
        let written = Config::parse("w.toml", &write_toml(src, &hosts).unwrap()).unwrap();
        let (a, b) = (&live.subnets[0].reservations, &written.subnets[0].reservations);
        assert_eq!(a.len(), 3);
        assert_eq!(b.len(), 3);
        for (x, y) in a.iter().zip(b) {
            assert_eq!((&x.key, x.ip, x.client_classes, &x.boot), (&y.key, y.ip, y.client_classes, &y.boot));
            assert_eq!(x.own_options, y.own_options);
            assert!(y.api.is_none(), "the file's own now");
        }
        assert!(write_toml(src, &[json!({ "subnet-id": 7, "hw-address": "02:00:00:00:00:02" })]).is_err());
    }
}
