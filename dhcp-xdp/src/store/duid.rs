//! The server's DHCPv6 DUID (RFC 8415 §11): made once, a DUID-LLT from the interface's MAC and
//! the time, and kept in the state directory (`server-duid`, hex) so that clients keep talking
//! to the same server across restarts. Without a state directory it is a DUID-LL of the MAC,
//! which is as stable as the MAC.

use std::path::Path;

use dhcp_xdp_core::net::colon_hex;

use super::StoreError;

/// The file under the state directory.
pub const FILE: &str = "server-duid";
/// Seconds from the Unix epoch to 2000-01-01 00:00 UTC, DUID-LLT's epoch.
const DUID_EPOCH: u64 = 946_684_800;

/// A DUID-LL of `mac` (type 3, hardware type 1 = Ethernet).
pub fn link_layer(mac: [u8; 6]) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&mac);
    d
}

/// A DUID-LLT of `mac` made at Unix time `now` (type 1, hardware type 1, time since 2000).
pub fn link_layer_time(mac: [u8; 6], now: u64) -> Vec<u8> {
    let mut d = vec![0, 1, 0, 1];
    d.extend_from_slice(&(now.saturating_sub(DUID_EPOCH) as u32).to_be_bytes());
    d.extend_from_slice(&mac);
    d
}

/// The DUID kept in `dir`, made (and synced, with its directory) the first time.
pub fn load_or_create(dir: &Path, mac: [u8; 6], now: u64) -> Result<Vec<u8>, StoreError> {
    let path = dir.join(FILE);
    let io = |what: String| move |source| StoreError::Io { what, source };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bad =
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not a DUID in hex: `{}`", text.trim()));
            return dhcp_xdp_core::config::parse_hex(text.trim())
                .filter(|d| d.len() >= 4 && d.len() <= 130)
                .ok_or_else(|| io(format!("reading {}", path.display()))(bad));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
    }
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let duid = link_layer_time(mac, now);
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        writeln!(f, "{}", colon_hex(&duid)).map_err(io(format!("writing {}", tmp.display())))?;
        f.sync_all().map_err(io(format!("syncing {}", tmp.display())))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(format!("renaming {}", tmp.display())))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(format!("syncing {}", dir.display())))?;
    Ok(duid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_duid_is_made_once_and_read_back_after() {
        let dir = crate::store::journal::tests::tmpdir("duid");
        let dir = dir.as_path();
        let mac = [2, 0, 0, 0, 0, 0xaa];
        let first = load_or_create(dir, mac, DUID_EPOCH + 86_400).unwrap();
        assert_eq!(first, vec![0, 1, 0, 1, 0, 1, 0x51, 0x80, 2, 0, 0, 0, 0, 0xaa]);
        // Later, and with another MAC (a replaced NIC): the kept one.
        let again = load_or_create(dir, [2, 0, 0, 0, 0, 0xbb], DUID_EPOCH + 999_999).unwrap();
        assert_eq!(again, first);
        std::fs::write(dir.join(FILE), "zz\n").unwrap();
        assert!(load_or_create(dir, mac, 0).is_err(), "a damaged file is an error, not a new DUID");
        assert_eq!(link_layer(mac), vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 0xaa]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
