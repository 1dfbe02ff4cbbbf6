//! `dhcp-xdp ctl`: one command to a running daemon's control channel.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

/// `dhcp-xdp ctl`: one command to the control channel; exits non-zero when the daemon says it
/// failed (result 1) or does not know the command (2).
pub fn ctl(socket: Option<PathBuf>, command: &str, arguments: Option<&str>) -> anyhow::Result<()> {
    let socket = match socket {
        Some(s) => s,
        None => {
            let found: Vec<PathBuf> = std::fs::read_dir("/run/dhcp-xdp")
                .map(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
                        .collect()
                })
                .unwrap_or_default();
            match found.as_slice() {
                [one] => one.clone(),
                [] => bail!("no control socket in /run/dhcp-xdp: give --socket"),
                _ => bail!("several control sockets in /run/dhcp-xdp: give --socket"),
            }
        }
    };
    let kea_command = match command {
        "leases" => "lease4-get-all",
        "stats" => "statistic-get-all",
        c => c,
    };
    let args: serde_json::Value = match arguments {
        Some(a) => serde_json::from_str(a).with_context(|| format!("arguments are not a JSON object: {a}"))?,
        None => serde_json::json!({}),
    };
    let answer = dhcp_xdp::control::request(&socket, &serde_json::json!({ "command": kea_command, "arguments": args }))
        .with_context(|| format!("talking to {}", socket.display()))?;
    match command {
        "leases" => print!("{}", dhcp_xdp::control::lease_table(&answer)),
        "stats" => print!("{}", dhcp_xdp::control::stats_table(&answer)),
        _ => println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default()),
    }
    match answer["result"].as_u64() {
        Some(0 | 3) => Ok(()),
        _ => bail!("{}", answer["text"].as_str().unwrap_or("failed")),
    }
}
