//! Reservations added through the management API (`reservation-add`), kept in the state
//! directory (`hosts.json`, Kea's host JSON, one array) so they outlive restarts: written whole
//! to a temporary file, synced, renamed into place and the directory synced — an answer to
//! `reservation-add` or `reservation-del` is sent only after that.

use std::path::Path;

use serde_json::Value;

use super::StoreError;

/// The file under the state directory.
pub const FILE: &str = "hosts.json";

/// The reservations kept in `dir` (none when the file does not exist).
pub fn load(dir: &Path) -> Result<Vec<Value>, StoreError> {
    let path = dir.join(FILE);
    let io = |what: String| move |source| StoreError::Io { what, source };
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str::<Vec<Value>>(&text).map_err(|e| {
            io(format!("reading {}", path.display()))(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(io(format!("reading {}", path.display()))(e)),
    }
}

/// Keeps `hosts` in `dir`, durably, replacing what was there.
pub fn save(dir: &Path, hosts: &[Value]) -> Result<(), StoreError> {
    use std::io::Write as _;
    let io = |what: String| move |source| StoreError::Io { what, source };
    let (path, tmp) = (dir.join(FILE), dir.join(format!("{FILE}.tmp")));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        let text = serde_json::to_string_pretty(hosts).unwrap_or_else(|_| "[]".into());
        f.write_all(text.as_bytes()).map_err(io(format!("writing {}", tmp.display())))?;
        f.sync_all().map_err(io(format!("syncing {}", tmp.display())))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(format!("renaming {}", tmp.display())))?;
    super::journal::sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_kept_and_read_back() {
        let dir = crate::store::journal::tests::tmpdir("hosts");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(load(&dir).unwrap().is_empty(), "no file: none");
        let hosts = vec![serde_json::json!({ "subnet-id": 1, "hw-address": "02:00:00:00:00:01" })];
        save(&dir, &hosts).unwrap();
        assert_eq!(load(&dir).unwrap(), hosts);
        save(&dir, &[]).unwrap();
        assert!(load(&dir).unwrap().is_empty());
        std::fs::write(dir.join(FILE), "{ not json").unwrap();
        assert!(load(&dir).is_err(), "a damaged file is an error, not an empty list");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
