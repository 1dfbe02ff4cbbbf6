//! One module per subcommand of `dhcp-xdp` (except `run`, which is [`dhcp_xdp::daemon`]).

pub mod convert;
pub mod ctl;
pub mod db;
pub mod export;
pub mod import;
pub mod man;
pub mod who;

use crate::cli::Command;

/// Carries out one subcommand.
pub fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => dhcp_xdp::daemon::Daemon::start(args.options())?.run(),
        Command::CheckConfig { file } => {
            let c = dhcp_xdp::serve::load_config_file(&file)?;
            print!("{}", c.describe());
            Ok(())
        }
        Command::Leases { state_dir } => export::dump_leases(&state_dir),
        Command::Ctl { socket, command, arguments } => ctl::ctl(socket, &command, arguments.as_deref()),
        Command::Import { state_dir, config, kea_csv, dhcpd_leases } => match (kea_csv, dhcpd_leases) {
            (Some(f), _) => import::import(&state_dir, &config, &import::LeaseFile::KeaCsv(f)),
            (None, Some(f)) => import::import(&state_dir, &config, &import::LeaseFile::DhcpdLeases(f)),
            (None, None) => Err(anyhow::anyhow!("--kea-csv or --dhcpd-leases is needed")),
        },
        Command::Export { state_dir, format, config } => export::export(&state_dir, format, config.as_deref()),
        Command::Man { dir } => man::man_pages(&dir),
        Command::Db { action, database } => db::db(action, &database),
        Command::Who { log, database, address, mac, circuit, at } => {
            let source = match (&log, &database) {
                (Some(l), _) => who::Source::File(l),
                (None, Some(d)) => who::Source::Database(d),
                (None, None) => anyhow::bail!("give --log or --database"),
            };
            who::who(source, address, mac, circuit, at.as_deref())
        }
        Command::Convert { kea_config, dhcpd_conf } => match (kea_config, dhcpd_conf) {
            (Some(f), _) => convert::convert(&f, dhcp_xdp_core::migrate::convert_kea_config),
            (None, Some(f)) => convert::convert(&f, dhcp_xdp_core::migrate::convert_dhcpd_conf),
            (None, None) => Err(anyhow::anyhow!("--kea-config or --dhcpd-conf is needed")),
        },
    }
}
