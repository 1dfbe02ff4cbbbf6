//! The `dhcp-xdp` binary: parses the command line (`cli`) and hands it to its subcommand
//! (`commands`); `run` is the daemon ([`dhcp_xdp::daemon`]).
#![deny(unsafe_code)]

mod cli;
mod commands;

use clap::Parser as _;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match &cli.command {
        cli::Command::Run(args) => dhcp_xdp::logging::init(args.log),
        _ => dhcp_xdp::logging::init_stderr(),
    }
    match commands::dispatch(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dhcp-xdp: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
