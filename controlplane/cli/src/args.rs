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
    /// Remove deployed deckies: `--all`, or one with `--id NAME`.
    Teardown(TeardownArgs),
    /// Show every decky and its containers: state, IP, MAC, uptime, restarts.
    Status(StatusArgs),
    /// Converge Docker on the recorded fleet: start what is missing, remove orphans.
    Redeploy(RedeployArgs),
    /// Run the appliance in one process: syslog intake, store flusher and the web API with
    /// the dashboard (until SIGINT/SIGTERM).
    Serve(Box<ServeArgs>),
    /// Run the syslog intake alone: listeners → durable segments → SQL (until SIGINT/SIGTERM).
    Collect(CollectArgs),
    /// Run packet capture alone: decode, flows, fingerprints and scans of the decoy network's
    /// traffic into the store, raw frames into rotating pcaps (until SIGINT/SIGTERM); or
    /// analyze a file (`--read`), or export one address's retained packets (`--export-ip`).
    Sniffer(SnifferArgs),
    /// One-shot correlation of events (a file of RFC 5424 lines, stdin or the store) into
    /// traversals, attacker profiles and linked identities.
    Correlate(CorrelateArgs),
    /// Run the attacker profiler alone: follow the events table and keep attackers,
    /// behaviour, sessions and bounties up to date (until SIGINT/SIGTERM, or `--once`).
    Profiler(ProfilerArgs),
    /// Fingerprint the attackers' own servers (JARM, hasshServer, TCP SYN-ACK) into the store
    /// (until SIGINT/SIGTERM, or `--once`). Connects back to attackers: opt-in.
    Probe(ProbeArgs),
    /// Re-roll deckies' services (same address, MAC, hostname and OS): the named ones, all,
    /// or those whose interval has passed; `--watch` keeps doing it (`decnet serve` does too).
    Mutate(MutateArgs),
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
    /// HTTP server threads [default: one per CPU].
    #[arg(long, env = "DECNET_HTTP_THREADS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub http_threads: Option<u16>,
}

impl WebArgs {
    /// `--http-threads`, else one per CPU.
    pub fn http_threads(&self) -> usize {
        self.http_threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            usize::from,
        )
    }

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
    /// How `POST /api/v1/deckies/deploy` builds and runs images.
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub collect: CollectArgs,
    #[command(flatten)]
    pub web: WebArgs,
    /// How `POST /api/v1/deckies/deploy` builds and runs images.
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub intel: IntelArgs,
    /// Seconds between the profiler's passes once it has caught up.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub profile_interval_secs: u64,
    /// Also run the packet sniffer on this interface (events join the intake's pipeline).
    #[arg(long, value_name = "IF")]
    pub sniff_interface: Option<String>,
    /// Do not re-roll deckies' services when their mutation interval passes (`decnet mutate`
    /// still does on demand).
    #[arg(long)]
    pub no_mutator: bool,
    /// Also run the active prober on the profiler's attackers (it connects back to them).
    #[arg(long)]
    pub probe: bool,
    #[command(flatten)]
    pub probe_options: ProbeOptions,
    /// Sniffer capture options for --sniff-interface.
    #[command(flatten)]
    pub sniff: CaptureArgs,
}

/// How and what the sniffer captures (shared by `sniffer` and `serve --sniff-interface`).
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// dedicated: capture on the interface itself (SPAN/TAP port; with AF_XDP the interface's
    /// traffic is taken from the stack); mirror: tc-mirror the interface into an internal veth
    /// and capture there (the interface keeps working).
    #[arg(long, value_enum, default_value = "dedicated")]
    pub capture_mode: CaptureModeArg,
    /// Capture backend: auto (AF_XDP, else AF_PACKET), xdp or packet.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendArg,
    /// Capture only frames from/to this subnet (repeatable) [default: the recorded fleet's
    /// decoy subnet(s), else everything].
    #[arg(long, value_name = "CIDR")]
    pub filter_subnet: Vec<ipnet::IpNet>,
    /// Total size of the retained pcap segments in DATA_DIR/pcaps (MiB); oldest deleted first.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    pub pcap_max_mib: u64,
    /// Size of one pcap segment (MiB).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub pcap_segment_mib: u64,
    /// Do not keep raw frames.
    #[arg(long)]
    pub no_pcap: bool,
    /// Events per second one source may cause of each per-packet kind (tcp_syn, udp, icmp and
    /// the flow summaries of probe-sized flows), after a burst of 10 times that; the rest are
    /// counted as rate limited (see /metrics) and the next admitted event says how many. A
    /// global bound of 100 times that per kind covers spoofed sources. 0: no limit.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub event_rate: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CaptureModeArg {
    Dedicated,
    Mirror,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    Auto,
    Xdp,
    Packet,
}

#[derive(Debug, Args)]
pub struct SnifferArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Interface to capture on [default: the recorded fleet's parent interface].
    #[arg(short, long, value_name = "IF")]
    pub interface: Option<String>,
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// Analyze a pcap/pcapng file instead of capturing (events go to the store; exits at EOF).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["interface", "export_ip"])]
    pub read: Option<PathBuf>,
    /// Print live rates every second: packets/s, bytes/s, drops, events/s, backend.
    #[arg(long)]
    pub stats: bool,
    /// Print the counters every this many seconds (0: only at exit).
    #[arg(long, default_value_t = 10)]
    pub progress_secs: u64,
    /// Export the retained packets from/to this address into one pcap (-o) and exit.
    #[arg(long, value_name = "IP", requires = "output")]
    pub export_ip: Option<std::net::IpAddr>,
    /// With --export-ip: only packets at or after this time (Unix seconds).
    #[arg(long, value_name = "SECS", requires = "export_ip")]
    pub from: Option<u64>,
    /// With --export-ip: only packets at or before this time (Unix seconds).
    #[arg(long, value_name = "SECS", requires = "export_ip")]
    pub to: Option<u64>,
    /// With --export-ip: the pcap file to write (`-` for stdout).
    #[arg(short, long, value_name = "FILE", requires = "export_ip")]
    pub output: Option<PathBuf>,
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
    /// Also listen for syslog over TLS (RFC 5425) on this address (builds with the `tls` feature).
    #[arg(long, value_name = "ADDR")]
    pub tls: Option<std::net::SocketAddr>,
    /// PEM certificate chain for --tls [default: one generated at first start in DATA_DIR/secrets].
    #[arg(long, requires_all = ["tls", "tls_key"], value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: --tls senders must present a client certificate it issued.
    #[arg(long, requires = "tls", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Also read syslog lines (RFC 5424 or 3164) that containers print to stdout/stderr,
    /// following every running container with the --docker-label labels (default
    /// fleet.role=service) through the Docker engine (DOCKER_HOST or /var/run/docker.sock).
    #[arg(long)]
    pub docker_logs: bool,
    /// Follow only containers carrying this label (repeatable; all must match; KEY alone
    /// matches any value) [default: fleet.role=service].
    #[arg(
        long = "docker-label",
        value_name = "KEY=VALUE",
        requires = "docker_logs",
        conflicts_with = "docker_all"
    )]
    pub docker_labels: Vec<String>,
    /// Follow every container, whatever its labels.
    #[arg(long, requires = "docker_logs")]
    pub docker_all: bool,
    /// Segment writer threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub writers: u16,
    /// Nice value of the thread that moves sealed segments into SQL: under a flood the intake
    /// and the segment writers get the CPU first (segments are bounded, so SQL catches up as
    /// soon as the CPU frees); 0 keeps it at the process's priority.
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub flusher_nice: i32,
    /// Longest time an accepted event may stay non-durable, in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub durable_window_ms: u64,
    /// A segment writer that receives nothing for this many milliseconds makes what it holds
    /// durable at once instead of waiting for the window to end (a burst is durable soon
    /// after its last event; a steady flow still syncs once per window).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub durable_quiet_ms: u64,
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
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// How the fleet engine builds images and creates containers.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// The static `decky` binary put into every image (default: `decky` beside `decnet`).
    #[arg(long, env = "DECNET_DECKY_BIN")]
    pub decky_bin: Option<PathBuf>,
    /// Image templates (`<slug>/Dockerfile`; default: `../share/decnet/templates` beside
    /// `decnet`, else `./templates`).
    #[arg(long, env = "DECNET_TEMPLATES")]
    pub templates: Option<PathBuf>,
    /// Rebuild every image, ignoring existing ones and Docker's layer cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Most deckies created at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Do not create the host shim interface (the host then cannot reach its deckies).
    #[arg(long)]
    pub no_shim: bool,
    /// The collector's unix datagram socket, bind-mounted into every service container
    /// (default: DATA_DIR/intake.sock when it exists).
    #[arg(long, env = "DECNET_INTAKE_SOCKET")]
    pub event_sink: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Probe the attackers seen so far once, store the results and exit.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub options: ProbeOptions,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// What the prober probes and how hard (shared by `probe` and `serve --probe`).
#[derive(Debug, Clone, Args)]
pub struct ProbeOptions {
    /// Seconds between looks for new attackers.
    #[arg(long = "probe-interval", visible_alias = "interval", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub probe_interval: u64,
    /// Seconds one probe may take (a JARM is ten connections, each with this bound).
    #[arg(long = "probe-timeout", visible_alias = "timeout", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    pub probe_timeout: u64,
    /// Probes in flight at once.
    #[arg(long = "probe-concurrency", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub probe_concurrency: u16,
    /// Skip the JARM of attackers' TLS ports.
    #[arg(long)]
    pub no_jarm: bool,
    /// Skip the hasshServer of attackers' SSH ports.
    #[arg(long)]
    pub no_hassh: bool,
    /// Skip the TCP SYN-ACK fingerprint (it needs a raw socket: root or CAP_NET_RAW).
    #[arg(long)]
    pub no_tcpfp: bool,
}

#[derive(Debug, Args)]
pub struct MutateArgs {
    /// Mutate this decky now (repeatable). Without --decky or --all, the deckies whose
    /// interval has passed are mutated.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["all", "watch"])]
    pub decky: Vec<String>,
    /// Mutate every running decky now.
    #[arg(long, conflicts_with = "watch")]
    pub all: bool,
    /// Keep running: mutate each decky when its interval has passed (until SIGINT/SIGTERM).
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// Seconds between looks for due deckies with --watch.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub check_secs: u64,
    /// Seed of the service draw, for a repeatable mutation.
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct RedeployArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
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
    #[command(flatten)]
    pub store: StoreArgs,
}

/// How `decnet correlate` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CorrelateOutput {
    Table,
    Json,
    Syslog,
}

/// Settings shared by the correlator and the profiler.
#[derive(Debug, Args)]
pub struct IntelArgs {
    /// Inactivity (seconds) that ends a session.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub session_gap_secs: u64,
    /// Distinct deckies that make a traversal.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..=1000))]
    pub min_deckies: u64,
}

#[derive(Debug, Args)]
pub struct CorrelateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub intel: IntelArgs,
    /// Read RFC 5424 (or RFC 3164) lines from FILE instead of the store; `-` reads stdin.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Read lines from stdin instead of the store (same as `-f -`).
    #[arg(long, conflicts_with = "log_file")]
    pub stdin: bool,
    /// Output format (the global --json also selects json).
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: CorrelateOutput,
}

#[derive(Debug, Args)]
pub struct ProfilerArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub intel: IntelArgs,
    /// Seconds between passes once caught up.
    #[arg(long, alias = "interval", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub interval_secs: u64,
    /// Most events per batch: results and cursor are committed in one transaction per batch.
    #[arg(long, default_value_t = decnet_intel::worker::DEFAULT_BATCH, value_parser = clap::value_parser!(i64).range(1..=decnet_intel::worker::MAX_BATCH))]
    pub batch: i64,
    /// While catching up, commit a batch after this many milliseconds of profiling even when
    /// it holds fewer than --batch events (how far stored results may trail a backlog).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub commit_interval_ms: u64,
    /// Attackers kept in memory between batches (the rest are reloaded from the store).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_cached: u64,
    /// MiB the attackers kept in memory between batches may hold (an attacker at every
    /// list's cap holds a few MiB); past it the least recently active leave first.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub max_cached_mib: u64,
    /// Catch up with the events table once, print a summary and exit.
    #[arg(long)]
    pub once: bool,
}
