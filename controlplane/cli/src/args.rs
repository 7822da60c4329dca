//! The command-line grammar.

use std::{net::Ipv4Addr, path::PathBuf};

use clap::{Args, Parser, Subcommand};
use ipnet::Ipv4Net;

/// Deception-network sensor appliance: deploy decoy hosts, capture what touches them.
#[derive(Debug, Parser)]
#[command(name = "decnet", version, about, propagate_version = true)]
pub struct Cli {
    /// Print machine-readable JSON instead of tables (listing and planning verbs).
    #[arg(long, global = true)]
    pub json: bool,

    /// More log output on stderr (-v info, -vv debug, -vvv trace); DECNET_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the services a decky can run, with their ports and persona keys.
    Services,
    /// List the archetypes (machine roles with preset services and OS).
    Archetypes,
    /// List the distro personas and their hostname styles.
    Distros,
    /// Plan a fleet and deploy it (`--dry-run` writes the compose file only).
    Deploy(DeployArgs),
    /// Configuration file tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Remove deployed deckies (not available yet).
    Teardown(TeardownArgs),
    /// Show the fleet's containers and their state (not available yet).
    Status,
    /// Converge the running fleet to the planned one (not available yet).
    Redeploy,
    /// Run the appliance in one process: syslog intake, store flusher and the web API with
    /// the dashboard (until SIGINT/SIGTERM).
    Serve(ServeArgs),
    /// Run the syslog intake alone: listeners → durable segments → SQL (until SIGINT/SIGTERM).
    Collect(CollectArgs),
    /// Run packet capture alone (not available yet).
    Sniffer,
    /// Correlate events into sessions and attackers (not available yet).
    Correlate,
    /// Run the attacker profiler alone (not available yet).
    Profiler,
    /// Run the active prober alone (not available yet).
    Probe,
    /// Mutate deckies that are due (not available yet).
    Mutate,
    /// Run the web API and dashboard alone, over the store (until SIGINT/SIGTERM).
    Api(ApiArgs),
}

/// Where state lives and which database holds it (shared by every long-running verb).
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Directory for all appliance state (SQLite file, segments, quarantine, pcaps, secrets).
    #[arg(long, env = "DECNET_DATA_DIR", default_value = "/var/lib/decnet")]
    pub data_dir: PathBuf,
    /// Database backend: sqlite (embedded, default), postgres or mysql/mariadb.
    #[arg(long, env = "DECNET_DB_TYPE")]
    pub db_type: Option<String>,
    /// Database URL (required for postgres and mysql), e.g. postgres://user:pass@host/decnet.
    #[arg(long, env = "DECNET_DB_URL", hide_env_values = true)]
    pub db_url: Option<String>,
}

/// The management listener and its first-start settings (shared by `api` and `serve`).
#[derive(Debug, Args)]
pub struct WebArgs {
    /// Management address to bind: keep it off the decoy LAN (loopback by default).
    #[arg(long, env = "DECNET_WEB_HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port of the API and dashboard [default: 8080; DECNET_API_PORT is accepted too].
    #[arg(long, env = "DECNET_WEB_PORT")]
    pub port: Option<u16>,
    /// Name of the admin created at first start (its password comes from
    /// DECNET_ADMIN_PASSWORD, or is generated and printed once).
    #[arg(long, env = "DECNET_ADMIN_USER", default_value = "admin")]
    pub admin_user: String,
    /// Lifetime of a login token, in hours.
    #[arg(long, env = "DECNET_TOKEN_HOURS", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=720))]
    pub token_hours: u64,
    /// Developer mode: enables the destructive `DELETE /api/v1/config/reinit`.
    #[arg(long, env = "DECNET_DEVELOPER")]
    pub developer: bool,
}

impl WebArgs {
    /// The port from `--port`/DECNET_WEB_PORT, else the original's DECNET_API_PORT, else 8080.
    pub fn port(&self) -> Result<u16, String> {
        if let Some(p) = self.port {
            return Ok(p);
        }
        match std::env::var("DECNET_API_PORT") {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse()
                .map_err(|_| format!("DECNET_API_PORT={v:?} is not a port number")),
            _ => Ok(8080),
        }
    }
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub web: WebArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub collect: CollectArgs,
    #[command(flatten)]
    pub web: WebArgs,
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Unix datagram socket the deckies' services write to [default: DATA_DIR/intake.sock].
    #[arg(long, env = "DECNET_INTAKE_SOCKET")]
    pub unix: Option<PathBuf>,
    /// Do not listen on the unix datagram socket.
    #[arg(long, conflicts_with = "unix")]
    pub no_unix: bool,
    /// Also listen for syslog over UDP on this address (e.g. 127.0.0.1:5514).
    #[arg(long, value_name = "ADDR")]
    pub udp: Option<std::net::SocketAddr>,
    /// Also listen for syslog over TCP (RFC 6587 framing) on this address.
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<std::net::SocketAddr>,
    /// Segment writer threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub writers: u16,
    /// Longest time an accepted event may stay non-durable, in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub durable_window_ms: u64,
    /// Seal a segment at this size (MiB) …
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub segment_max_mib: u64,
    /// … or at this age (milliseconds), whichever comes first.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub segment_max_age_ms: u64,
    /// Window in which a repeated lifecycle event (connect, disconnect, …) of the same
    /// attacker/decky/service is dropped and counted; 0 keeps them all.
    #[arg(long, env = "DECNET_LIFECYCLE_WINDOW_MS", default_value_t = 1000)]
    pub lifecycle_window_ms: u64,
    /// Event kinds the lifecycle window applies to (comma-separated).
    #[arg(
        long,
        env = "DECNET_LIFECYCLE_KINDS",
        value_delimiter = ',',
        default_value = "connect,disconnect,connection,accept,close"
    )]
    pub lifecycle_kinds: Vec<String>,
    /// Delete events (and bounties) older than this many days (0 keeps everything).
    #[arg(long, env = "DECNET_RETAIN_DAYS", default_value_t = 0)]
    pub retain_days: u64,
    /// Delete the oldest events once the event table holds more than this many GiB (0: no cap).
    #[arg(long, env = "DECNET_RETAIN_GIB", default_value_t = 0)]
    pub retain_gib: u64,
    /// Print the pipeline counters every this many seconds (0: only at exit).
    #[arg(long, default_value_t = 10)]
    pub progress_secs: u64,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate an INI file and print the fleet it plans.
    Check(CheckArgs),
}

/// Network and planning options shared by `deploy` and `config check`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Parent interface of the decoy network (default: the default route's interface).
    #[arg(short, long)]
    pub interface: Option<String>,
    /// Decoy subnet in CIDR form (overrides the INI's `net`).
    #[arg(long)]
    pub subnet: Option<Ipv4Net>,
    /// Gateway of the decoy subnet (default: the default route's gateway if inside the
    /// subnet, else the subnet's first address).
    #[arg(long)]
    pub gateway: Option<Ipv4Addr>,
    /// First address to hand out.
    #[arg(long)]
    pub ip_start: Option<Ipv4Addr>,
    /// Pick distros at random instead of by archetype / round-robin.
    #[arg(long)]
    pub randomize_distros: bool,
    /// Distros to cycle through, comma-separated (see `decnet distros`).
    #[arg(long, value_delimiter = ',')]
    pub distro: Vec<String>,
    /// Minutes between mutations (0 = never); a host's own INI value still wins.
    #[arg(long)]
    pub mutate_interval: Option<u32>,
    /// Use IPvlan L2 instead of MACVLAN (e.g. on Wi-Fi parents).
    #[arg(long)]
    pub ipvlan: bool,
    /// Seed for every random choice, to reproduce a plan exactly.
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// INI file describing the fleet (see README "INI format").
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Number of deckies (without --config), named host-01, host-02, …
    #[arg(short = 'n', long)]
    pub deckies: Option<u32>,
    /// Services for every decky, comma-separated (see `decnet services`).
    #[arg(long, value_delimiter = ',')]
    pub services: Vec<String>,
    /// Give each decky 1-3 random services.
    #[arg(long)]
    pub randomize_services: bool,
    /// Archetype of every decky (see `decnet archetypes`).
    #[arg(short, long)]
    pub archetype: Option<String>,
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Only plan and write the compose file; touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where `--dry-run` writes the compose file.
    #[arg(short, long, default_value = "decnet-compose.yml")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The INI file to validate.
    pub file: PathBuf,
    #[command(flatten)]
    pub plan: PlanArgs,
}

#[derive(Debug, Args)]
pub struct TeardownArgs {
    /// Remove every decky and the decoy network.
    #[arg(long, conflicts_with = "id")]
    pub all: bool,
    /// Remove one decky.
    #[arg(long)]
    pub id: Option<String>,
}
