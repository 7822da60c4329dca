//! `decnet`: the appliance's one binary. Every verb of the CLI lives here; the work itself is
//! done by the library crates.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod collect;
mod deploy;
mod failure;
mod fleet;
mod hostnet;
mod intel;
mod lease;
mod listings;
mod mutator;
mod probe;
mod sniffer;
mod web;

use args::{Cli, Command, ConfigCommand};
use failure::Failure;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DECNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(cli: Cli) -> Result<(), Failure> {
    let json = cli.json;
    match cli.command {
        Command::Services => listings::services(json),
        Command::Archetypes => listings::archetypes(json),
        Command::Distros => listings::distros(json),
        Command::Deploy(args) => deploy::deploy(&args, json),
        Command::Config {
            command: ConfigCommand::Check(args),
        } => deploy::check(&args, json),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "decnet", &mut std::io::stdout());
            Ok(())
        }
        Command::Teardown(args) => fleet::teardown(&args, json),
        Command::Status(args) => fleet::status(&args, json),
        Command::Redeploy(args) => fleet::redeploy(&args, json),
        Command::Serve(args) => web::serve(&args),
        Command::Collect(args) => collect::collect(&args),
        Command::Sniffer(args) => sniffer::sniffer(&args),
        Command::Correlate(args) => intel::correlate(&args, json),
        Command::Profiler(args) => intel::profiler(&args),
        Command::Probe(args) => probe::probe(&args, json),
        Command::Mutate(args) => mutator::mutate(&args, json),
        Command::Api(args) => web::api(&args),
    }
}
