//! The daemon's log: `tracing` events, written to the systemd journal (with the level as its
//! priority and the event's fields as journal fields) when the daemon runs under systemd, else
//! to stdout one plain line per event (what operators, the tests and `journalctl` of a
//! non-journald setup read). The CLI commands (`ctl`, `import`, `export`, …) print their output
//! instead: it is their result, not a log.

use std::io::IsTerminal as _;

use tracing_subscriber::{layer::SubscriberExt as _, util::SubscriberInitExt as _};

/// Where the log goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogTarget {
    /// The journal when systemd connected stdout to it (`JOURNAL_STREAM`), else stdout.
    Auto,
    /// The systemd journal's native protocol.
    Journald,
    /// Plain lines on stdout.
    Stdout,
}

/// Whether systemd connected our stdout to the journal: `JOURNAL_STREAM` names the device and
/// inode of the stream (systemd.exec(5)).
fn stdout_is_the_journal() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = v.to_str().and_then(|v| v.split_once(':')) else { return false };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/1") else { return false };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// `RUST_LOG`, default `info`.
fn filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// The log of the CLI commands: warnings on stderr, their output stays on stdout.
pub fn init_stderr() {
    let _ = tracing_subscriber::fmt().with_env_filter(filter()).with_writer(std::io::stderr).try_init();
}

/// Installs the log for `dhcp-xdp run`; says where it went if the journal is unreachable.
pub fn init(target: LogTarget) {
    let journald = match target {
        LogTarget::Stdout => false,
        LogTarget::Journald => true,
        LogTarget::Auto => stdout_is_the_journal(),
    };
    if journald {
        match tracing_journald::layer() {
            Ok(layer) => {
                let _ = tracing_subscriber::registry()
                    .with(filter())
                    .with(layer.with_syslog_identifier("dhcp-xdp".into()))
                    .try_init();
                return;
            }
            Err(e) => eprintln!("dhcp-xdp: the journal is unreachable ({e}); logging to stdout"),
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stdout)
        .with_ansi(std::io::stdout().is_terminal())
        .without_time()
        .with_target(false)
        .with_level(false)
        .try_init();
}
