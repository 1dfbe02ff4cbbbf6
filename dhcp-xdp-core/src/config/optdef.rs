//! Option values by type: `[[option-def]]` (Kea's option definitions: a code, a name, a type,
//! arrays and records) and the standard options' types, so that a value can be written as Kea
//! writes its `data` (comma-separated, in the option's type) and is encoded once, when the
//! configuration is read. Also the encodings of vendor options: option 43's sub-options and
//! option 125 (RFC 3925, V-I vendor-specific information) per enterprise number.

use std::net::Ipv4Addr;

/// A field type of an option value (Kea's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// `ipv4-address`: 4 bytes.
    Ipv4,
    /// `string`: the bytes as written (only as the last field).
    String,
    /// `fqdn`: RFC 1035 labels.
    Fqdn,
    /// `uint8`, `uint16`, `uint32`.
    U8,
    U16,
    U32,
    /// `int8`, `int16`, `int32`.
    I8,
    I16,
    I32,
    /// `boolean`: one byte, 0 or 1 (`true`/`false`).
    Bool,
    /// `binary`: hex digits (only as the last field).
    Binary,
    /// `empty`: no value.
    Empty,
}

impl FieldType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "ipv4-address" => Self::Ipv4,
            "string" => Self::String,
            "fqdn" => Self::Fqdn,
            "uint8" => Self::U8,
            "uint16" => Self::U16,
            "uint32" => Self::U32,
            "int8" => Self::I8,
            "int16" => Self::I16,
            "int32" => Self::I32,
            "boolean" => Self::Bool,
            "binary" => Self::Binary,
            "empty" => Self::Empty,
            _ => return None,
        })
    }

    /// Encodes one value written as text.
    fn encode(self, v: &str, out: &mut Vec<u8>) -> Result<(), String> {
        let v = v.trim();
        let num = |lo: i64, hi: i64| -> Result<i64, String> {
            let n = if let Some(h) = v.strip_prefix("0x") { i64::from_str_radix(h, 16).ok() } else { v.parse().ok() };
            n.filter(|n| (lo..=hi).contains(n)).ok_or_else(|| format!("`{v}` is not a number from {lo} to {hi}"))
        };
        match self {
            Self::Ipv4 => out.extend_from_slice(
                &v.parse::<Ipv4Addr>().map_err(|_| format!("`{v}` is not an IPv4 address"))?.octets(),
            ),
            Self::String => out.extend_from_slice(v.as_bytes()),
            Self::Fqdn => fqdn(v, out)?,
            Self::U8 => out.push(num(0, 255)? as u8),
            Self::U16 => out.extend_from_slice(&(num(0, 65_535)? as u16).to_be_bytes()),
            Self::U32 => out.extend_from_slice(&(num(0, u32::MAX.into())? as u32).to_be_bytes()),
            Self::I8 => out.push(num(-128, 127)? as i8 as u8),
            Self::I16 => out.extend_from_slice(&(num(-32_768, 32_767)? as i16).to_be_bytes()),
            Self::I32 => out.extend_from_slice(&(num(i32::MIN.into(), i32::MAX.into())? as i32).to_be_bytes()),
            Self::Bool => out.push(match v {
                "true" | "1" => 1,
                "false" | "0" => 0,
                _ => return Err(format!("`{v}` is not true or false")),
            }),
            Self::Binary => {
                out.extend(super::options::parse_hex(v).ok_or_else(|| format!("`{v}` is not hex (pairs of digits)"))?)
            }
            Self::Empty => {
                if !v.is_empty() {
                    return Err("an empty option takes no data".into());
                }
            }
        }
        Ok(())
    }
}

/// A domain name as RFC 1035 labels (a trailing dot optional).
pub fn fqdn(name: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let name = name.trim().trim_end_matches('.');
    if name.len() > 253 {
        return Err(format!("`{name}` is longer than a domain name may be"));
    }
    for label in name.split('.').filter(|l| !l.is_empty()) {
        if label.len() > 63 {
            return Err(format!("label `{label}` is longer than 63 bytes"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(())
}

/// How an option's value is written: its fields (one, or a record's several), and whether the
/// last one repeats (an array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionDef {
    /// Name (for `name = …` in option values).
    pub name: String,
    /// Code.
    pub code: u8,
    /// Field types in order (a record has several).
    pub fields: Vec<FieldType>,
    /// The last field repeats.
    pub array: bool,
}

impl OptionDef {
    /// A definition from Kea's words: `type` (`record` with `record-types`), `array`.
    pub fn new(name: &str, code: u8, ty: &str, record_types: Option<&str>, array: bool) -> Result<Self, String> {
        let fields = if ty.trim() == "record" {
            let list = record_types.ok_or("a record needs record-types, e.g. \"uint8, ipv4-address\"")?;
            list.split(',')
                .map(|t| FieldType::parse(t).ok_or_else(|| format!("unknown record type `{}`", t.trim())))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![FieldType::parse(ty).ok_or_else(|| format!(
                "unknown type `{ty}` (ipv4-address, string, fqdn, uint8/16/32, int8/16/32, boolean, binary, empty, record)"
            ))?]
        };
        let variable = |f: &FieldType| matches!(f, FieldType::String | FieldType::Binary);
        if fields.iter().rev().skip(1).any(variable) {
            return Err("string and binary fields can only come last".into());
        }
        if array && fields.last().is_some_and(variable) {
            return Err("an array of strings or binary cannot be told apart".into());
        }
        Ok(Self { name: name.to_owned(), code, fields, array })
    }

    /// Encodes `data` (comma-separated, Kea's CSV format).
    pub fn encode(&self, data: &str) -> Result<Vec<u8>, String> {
        let mut out = vec![];
        if self.fields == [FieldType::Empty] {
            FieldType::Empty.encode(data, &mut out)?;
            return Ok(out);
        }
        // A trailing string takes the rest, commas and all.
        let n = self.fields.len();
        let last_takes_rest = matches!(self.fields.last(), Some(FieldType::String | FieldType::Binary));
        let parts: Vec<&str> = if last_takes_rest { data.splitn(n, ',').collect() } else { data.split(',').collect() };
        if parts.len() < n || (!self.array && parts.len() > n) {
            return Err(format!(
                "{} wants {n} value(s){}, got {}",
                self.name,
                if self.array { " or more" } else { "" },
                parts.len()
            ));
        }
        for (i, p) in parts.iter().enumerate() {
            let ty = self.fields[i.min(n - 1)];
            ty.encode(p, &mut out).map_err(|e| format!("value {} of {}: {e}", i + 1, self.name))?;
        }
        if out.len() > 255 {
            return Err(format!("{} encodes to {} bytes; an option holds at most 255", self.name, out.len()));
        }
        Ok(out)
    }
}

/// The standard DHCPv4 options' definitions (RFC 2132 and later, Kea's names), for values given
/// as `data` by code or by name.
pub fn standard() -> Vec<OptionDef> {
    use FieldType::*;
    let d = |name: &str, code: u8, fields: &[FieldType], array: bool| OptionDef {
        name: name.into(),
        code,
        fields: fields.to_vec(),
        array,
    };
    vec![
        d("subnet-mask", 1, &[Ipv4], false),
        d("time-offset", 2, &[I32], false),
        d("routers", 3, &[Ipv4], true),
        d("time-servers", 4, &[Ipv4], true),
        d("name-servers", 5, &[Ipv4], true),
        d("domain-name-servers", 6, &[Ipv4], true),
        d("log-servers", 7, &[Ipv4], true),
        d("host-name", 12, &[String], false),
        d("boot-size", 13, &[U16], false),
        d("domain-name", 15, &[String], false),
        d("swap-server", 16, &[Ipv4], false),
        d("root-path", 17, &[String], false),
        d("ip-forwarding", 19, &[Bool], false),
        d("default-ip-ttl", 23, &[U8], false),
        d("interface-mtu", 26, &[U16], false),
        d("broadcast-address", 28, &[Ipv4], false),
        d("static-routes", 33, &[Ipv4, Ipv4], true),
        d("nis-domain", 40, &[String], false),
        d("nis-servers", 41, &[Ipv4], true),
        d("ntp-servers", 42, &[Ipv4], true),
        d("netbios-name-servers", 44, &[Ipv4], true),
        d("netbios-node-type", 46, &[U8], false),
        d("font-servers", 48, &[Ipv4], true),
        d("x-display-manager", 49, &[Ipv4], true),
        d("dhcp-renewal-time", 58, &[U32], false),
        d("dhcp-rebinding-time", 59, &[U32], false),
        d("vendor-class-identifier", 60, &[String], false),
        d("nwip-domain-name", 62, &[String], false),
        d("tftp-server-name", 66, &[String], false),
        d("boot-file-name", 67, &[String], false),
        d("mobile-ip-home-agent", 68, &[Ipv4], true),
        d("smtp-server", 69, &[Ipv4], true),
        d("pop-server", 70, &[Ipv4], true),
        d("www-server", 72, &[Ipv4], true),
        d("user-class", 77, &[Binary], false),
        d("client-system", 93, &[U16], true),
        d("uuid-guid", 97, &[U8, Binary], false),
        d("pcode", 100, &[String], false),
        d("tcode", 101, &[String], false),
        d("v6-only-preferred", 108, &[U32], false),
        d("domain-search", 119, &[Fqdn], true),
        d("sip-ua-cs-domains", 141, &[Fqdn], true),
        d("tftp-server-address", 150, &[Ipv4], true),
    ]
}

/// Sub-options (code, value) as option 43 or one enterprise's part of option 125 carries them.
pub fn sub_options(subs: &[(u8, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let mut out = vec![];
    for (code, v) in subs {
        if v.len() > 255 {
            return Err(format!("sub-option {code} is longer than 255 bytes"));
        }
        out.push(*code);
        out.push(v.len() as u8);
        out.extend_from_slice(v);
    }
    if out.len() > 255 {
        return Err(format!("the sub-options take {} bytes; an option holds at most 255", out.len()));
    }
    Ok(out)
}

/// Option 125 (RFC 3925): per enterprise number, its sub-options.
pub fn vivso(vendors: &[(u32, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let mut out = vec![];
    for (enterprise, data) in vendors {
        out.extend_from_slice(&enterprise.to_be_bytes());
        out.push(u8::try_from(data.len()).map_err(|_| format!("enterprise {enterprise}'s data is too long"))?);
        out.extend_from_slice(data);
    }
    if out.len() > 255 {
        return Err(format!("option 125 takes {} bytes; an option holds at most 255", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_encode_as_their_types_say() {
        let def = |t: &str, r: Option<&str>, a: bool| OptionDef::new("x", 200, t, r, a).unwrap();
        assert_eq!(def("uint16", None, false).encode("1500").unwrap(), vec![5, 220]);
        assert_eq!(
            def("ipv4-address", None, true).encode("198.18.0.1, 198.18.0.2").unwrap(),
            vec![198, 18, 0, 1, 198, 18, 0, 2]
        );
        assert_eq!(def("boolean", None, false).encode("true").unwrap(), vec![1]);
        assert_eq!(def("int8", None, false).encode("-1").unwrap(), vec![255]);
        assert_eq!(def("fqdn", None, true).encode("a.bc, d").unwrap(), b"\x01a\x02bc\x00\x01d\x00".to_vec());
        // A record: a type byte, an address, and the rest as text (commas included).
        let r = def("record", Some("uint8, ipv4-address, string"), false);
        assert_eq!(
            r.encode("7, 198.18.0.9, http://acs,x").unwrap(),
            [&[7, 198, 18, 0, 9][..], b"http://acs,x"].concat()
        );
        assert_eq!(def("binary", None, false).encode("0104c612").unwrap(), vec![1, 4, 0xc6, 0x12]);
        assert_eq!(def("empty", None, false).encode("").unwrap(), Vec::<u8>::new());
        // Errors say what is wrong.
        assert!(def("uint8", None, false).encode("256").unwrap_err().contains("0 to 255"));
        assert!(def("uint8", None, false).encode("1, 2").unwrap_err().contains("wants 1"));
        assert!(OptionDef::new("x", 1, "record", Some("string, uint8"), false).unwrap_err().contains("last"));
        assert!(OptionDef::new("x", 1, "string", None, true).is_err());
        assert!(OptionDef::new("x", 1, "float", None, false).unwrap_err().contains("unknown type"));
        assert!(def("ipv4-address", None, true).encode(&vec!["198.18.0.1"; 64].join(",")).unwrap_err().contains("255"));
    }

    #[test]
    fn vendor_options_nest_as_rfc_3925_says() {
        let subs = sub_options(&[(1, b"http://acs".to_vec()), (2, vec![1, 2])]).unwrap();
        assert_eq!(subs, [&[1, 10][..], b"http://acs", &[2, 2, 1, 2]].concat());
        let v = vivso(&[(3561, subs.clone())]).unwrap();
        assert_eq!(&v[..5], &[0, 0, 0x0d, 0xe9, subs.len() as u8]);
        assert_eq!(&v[5..], &subs[..]);
        assert!(sub_options(&[(1, vec![0; 200]), (2, vec![0; 100])]).is_err());
    }
}
