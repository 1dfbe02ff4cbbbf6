//! Facts about the network interface the daemon serves: index, MAC, IPv4 addresses and the
//! number of receive queues. Read once at start; never touches the data path.

use dhcp_xdp_core::net::{Ipv4Net, parse_mac};

/// Why an interface could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IfaceError {
    /// No interface of that name in this network namespace.
    #[error("interface {name} not found: {source}")]
    NotFound {
        /// Interface name.
        name: String,
        /// The kernel's reason.
        source: nix::Error,
    },
    /// A sysfs file or the address list could not be read.
    #[error("reading {what}: {source}")]
    Read {
        /// What was being read.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The interface is not Ethernet (no six-byte hardware address).
    #[error("interface {0} has no Ethernet address")]
    NotEthernet(String),
    /// The interface has no IPv4 address.
    #[error("interface {0} has no IPv4 address")]
    NoIpv4(String),
}

/// What the daemon needs to know about its interface.
#[derive(Debug, Clone)]
pub struct Interface {
    /// Name, e.g. `eth1`.
    pub name: String,
    /// Kernel interface index.
    pub index: u32,
    /// Hardware address.
    pub mac: [u8; 6],
    /// IPv4 addresses, primary first.
    pub ipv4: Vec<Ipv4Net>,
    /// IPv6 addresses with their prefix lengths (link-local ones included).
    pub ipv6: Vec<(std::net::Ipv6Addr, u8)>,
    /// Number of receive queues the driver exposes.
    pub rx_queues: u32,
}

impl Interface {
    /// Looks `name` up in the current network namespace.
    pub fn lookup(name: &str) -> Result<Self, IfaceError> {
        let index = nix::net::if_::if_nametoindex(name)
            .map_err(|source| IfaceError::NotFound { name: name.to_owned(), source })?;
        let read = |what: String| move |source| IfaceError::Read { what, source };
        let sys = format!("/sys/class/net/{name}");
        let mac_text = std::fs::read_to_string(format!("{sys}/address")).map_err(read(format!("{sys}/address")))?;
        let mac = parse_mac(mac_text.trim()).ok_or_else(|| IfaceError::NotEthernet(name.to_owned()))?;
        let rx_queues = std::fs::read_dir(format!("{sys}/queues"))
            .map_err(read(format!("{sys}/queues")))?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
            .count();
        let rx_queues = u32::try_from(rx_queues.max(1)).unwrap_or(u32::MAX);
        let mut ipv4 = Vec::new();
        let mut ipv6 = Vec::new();
        for ifa in nix::ifaddrs::getifaddrs().map_err(|e| read("the interface addresses".into())(e.into()))? {
            if ifa.interface_name != name {
                continue;
            }
            let (Some(a), Some(m)) = (ifa.address, ifa.netmask) else {
                continue;
            };
            if let (Some(a), Some(m)) = (a.as_sockaddr_in6(), m.as_sockaddr_in6()) {
                ipv6.push((a.ip(), u128::from(m.ip()).count_ones() as u8));
                continue;
            }
            let (Some(a), Some(m)) = (a.as_sockaddr_in(), m.as_sockaddr_in()) else {
                continue;
            };
            ipv4.push(Ipv4Net { addr: a.ip(), prefix: u32::from(m.ip()).count_ones() as u8 });
        }
        Ok(Self { name: name.to_owned(), index, mac, ipv4, ipv6, rx_queues })
    }

    /// The link-local IPv6 address (the source of replies to clients on the link).
    pub fn link_local6(&self) -> Option<std::net::Ipv6Addr> {
        self.ipv6.iter().map(|a| a.0).find(std::net::Ipv6Addr::is_unicast_link_local)
    }

    /// The global (not link-local) IPv6 addresses.
    pub fn global6(&self) -> Vec<std::net::Ipv6Addr> {
        self.ipv6.iter().map(|a| a.0).filter(|a| !a.is_unicast_link_local() && !a.is_loopback()).collect()
    }

    /// The primary IPv4 address, or an error naming the interface.
    pub fn primary_ipv4(&self) -> Result<Ipv4Net, IfaceError> {
        match self.ipv4.first() {
            Some(n) => Ok(*n),
            None => Err(IfaceError::NoIpv4(self.name.clone())),
        }
    }
}

/// The NIC features that take VLAN tags out of the frame before XDP sees it (ethtool's names).
const TAG_STRIPPING: [(&str, &str); 2] =
    [("rx-vlan-offload", "rxvlan"), ("rx-vlan-stag-hw-parse", "rx-vlan-stag-hw-parse")];

/// The tag-stripping features `ethtool -k` output says are on: (name, short name for `-K`,
/// fixed).
fn tag_stripping(ethtool_k: &str) -> Vec<(&'static str, &'static str, bool)> {
    TAG_STRIPPING
        .iter()
        .filter_map(|&(feature, short)| {
            let state = ethtool_k.lines().find_map(|l| l.trim().strip_prefix(feature)?.strip_prefix(':'))?.trim();
            state.starts_with("on").then(|| (feature, short, state.contains("[fixed]")))
        })
        .collect()
}

/// Whether the interface hands VLAN tags to XDP in the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VlanTags {
    /// Tags stay in the frame.
    InFrame,
    /// The driver stripped them; they were turned off now (these features).
    TurnedOff(Vec<String>),
    /// The driver strips them and they cannot be turned off (fixed, or ethtool failed).
    Stripped(String),
    /// Unknown: `ethtool` is not there (Debian package ethtool).
    Unknown(String),
}

/// Makes sure VLAN tags reach the XDP program: reads the interface's offload features with
/// `ethtool -k` and turns tag stripping off (`ethtool -K`) where the driver allows. On NICs
/// with rx VLAN offload on (mlx5, ice, i40e, ixgbe by default) the tags would otherwise be gone
/// before XDP sees the frame, and VLAN-selected subnets would silently serve the wrong subnet.
pub fn keep_vlan_tags(name: &str) -> VlanTags {
    let ethtool = ["/usr/sbin/ethtool", "/sbin/ethtool", "/usr/bin/ethtool"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file());
    let Some(ethtool) = ethtool else {
        return VlanTags::Unknown("ethtool not found (Debian package ethtool)".into());
    };
    let out = match std::process::Command::new(ethtool).args(["-k", name]).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => return VlanTags::Unknown(format!("ethtool -k {name}: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => return VlanTags::Unknown(format!("ethtool -k {name}: {e}")),
    };
    let mut turned = vec![];
    for (feature, short, fixed) in tag_stripping(&out) {
        if fixed {
            return VlanTags::Stripped(format!("{feature} is on and fixed on {name}"));
        }
        let set = std::process::Command::new(ethtool).args(["-K", name, short, "off"]).output();
        match set {
            Ok(o) if o.status.success() => turned.push(feature.to_owned()),
            Ok(o) => {
                return VlanTags::Stripped(format!(
                    "ethtool -K {name} {short} off: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            Err(e) => return VlanTags::Stripped(format!("ethtool -K {name} {short} off: {e}")),
        }
    }
    if turned.is_empty() { VlanTags::InFrame } else { VlanTags::TurnedOff(turned) }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn tag_stripping_is_read_from_ethtool_output() {
        let veth = "Features for v0:\nrx-checksumming: on\nrx-vlan-offload: on\ntx-vlan-offload: on\n\
                    rx-vlan-filter: off [fixed]\nrx-vlan-stag-hw-parse: on\n";
        assert_eq!(
            super::tag_stripping(veth),
            vec![("rx-vlan-offload", "rxvlan", false), ("rx-vlan-stag-hw-parse", "rx-vlan-stag-hw-parse", false)]
        );
        let fixed = "rx-vlan-offload: on [fixed]\nrx-vlan-stag-hw-parse: off [fixed]\n";
        assert_eq!(super::tag_stripping(fixed), vec![("rx-vlan-offload", "rxvlan", true)]);
        assert!(super::tag_stripping("rx-vlan-offload: off\n").is_empty());
    }

    #[test]
    fn loopback_is_found() {
        let lo = Interface::lookup("lo").unwrap();
        assert_eq!(lo.index, 1);
        assert!(lo.ipv4.iter().any(|n| n.addr == Ipv4Addr::LOCALHOST && n.prefix == 8));
    }
}
