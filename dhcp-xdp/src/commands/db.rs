//! `dhcp-xdp db`: the cluster database's schema.

use anyhow::{Context as _, bail};

use crate::cli::DbAction;

/// `dhcp-xdp db`: the cluster database's schema.
pub fn db(action: DbAction, url: &str) -> anyhow::Result<()> {
    use dhcp_xdp::store::cluster::{durability_warnings, pg::connect, redact, schema};
    let mut c = connect(url).with_context(|| format!("connecting to {}", redact(url)))?;
    // A migration of a large lease table may take longer than a daemon's statements may.
    c.batch_execute("SET statement_timeout = 0")?;
    match action {
        DbAction::Init | DbAction::Upgrade => {
            let (from, to) = if action == DbAction::Init { schema::init(&mut c)? } else { schema::upgrade(&mut c)? };
            if from == to {
                println!("schema already at version {to}");
            } else {
                println!("schema upgraded from version {from} to {to}");
            }
        }
        DbAction::Status => {
            let Some(v) = schema::version(&mut c)? else { bail!(schema::SchemaError::Missing) };
            println!("schema version {v} (this daemon: {})", schema::SCHEMA_VERSION);
            for w in durability_warnings(&mut c)? {
                println!("warning: {w}");
            }
            if v != schema::SCHEMA_VERSION {
                return Ok(());
            }
            let st = schema::status(&mut c)?;
            for n in &st.nodes {
                println!(
                    "node {} heartbeat {:.1}s ago addresses [{}] host {} pid {} blocks {} bound {}",
                    n.name, n.heartbeat_age, n.addresses, n.host, n.pid, n.blocks, n.bound
                );
            }
            println!(
                "blocks {} (unowned {}) lease rows {} (DHCPv6: {})",
                st.blocks, st.unowned_blocks, st.lease_rows, st.lease6_rows
            );
        }
    }
    Ok(())
}
