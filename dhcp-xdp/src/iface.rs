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
        for ifa in nix::ifaddrs::getifaddrs().map_err(|e| read("the interface addresses".into())(e.into()))? {
            if ifa.interface_name != name {
                continue;
            }
            let (Some(a), Some(m)) = (ifa.address, ifa.netmask) else {
                continue;
            };
            let (Some(a), Some(m)) = (a.as_sockaddr_in(), m.as_sockaddr_in()) else {
                continue;
            };
            ipv4.push(Ipv4Net { addr: a.ip(), prefix: u32::from(m.ip()).count_ones() as u8 });
        }
        Ok(Self { name: name.to_owned(), index, mac, ipv4, rx_queues })
    }

    /// The primary IPv4 address, or an error naming the interface.
    pub fn primary_ipv4(&self) -> Result<Ipv4Net, IfaceError> {
        match self.ipv4.first() {
            Some(n) => Ok(*n),
            None => Err(IfaceError::NoIpv4(self.name.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn loopback_is_found() {
        let lo = Interface::lookup("lo").unwrap();
        assert_eq!(lo.index, 1);
        assert!(lo.ipv4.iter().any(|n| n.addr == Ipv4Addr::LOCALHOST && n.prefix == 8));
    }
}
