//! `chatctl bench`: load scenarios against one or more gateways. Latency is send→receive,
//! measured at the receiver from the time the message *should* have been sent (open loop),
//! so a stalled server cannot hide its stall (no coordinated omission).

mod direct;
mod group;
mod idle;
mod receivers;
mod reconnect;
mod report;
mod stats;
mod timeline;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

pub use report::Report;
pub use stats::histogram;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub scenario: Scenario,

    /// Gateway base URLs, comma-separated; connections are spread over them.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: Vec<String>,

    /// How long to send (after setup).
    #[arg(long, global = true, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Messages per second, in total (open loop). Without it: as fast as acks allow.
    #[arg(long, global = true)]
    pub rate: Option<u64>,

    /// Print the result as JSON instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,

    /// Secret that test users' tokens are minted with.
    #[arg(
        long,
        global = true,
        env = "CHAT_JWT_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub jwt_secret: String,

    /// Loopback source addresses to spread connections over (127.0.0.1 ..).
    #[arg(long, global = true, default_value_t = 16)]
    pub sources: usize,

    /// Write a latency timeline to this CSV file: per 10 ms of send time (the scheduled
    /// time with --rate), the messages received (in a group, one per receiver) and the
    /// worst latency among them. Direct and group scenarios only; each receiver holds 8
    /// bytes per 10 ms of the run for it.
    #[arg(long, global = true)]
    pub timeline: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// N sender/receiver pairs, each in its own direct chat.
    Direct {
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Sends in flight per sender when closed-loop.
        #[arg(long, default_value_t = 16)]
        inflight: usize,
    },
    /// One group of M members; senders post, every member receives.
    Group {
        #[arg(long, default_value_t = 1000)]
        members: usize,
        #[arg(long, default_value_t = 1)]
        senders: usize,
    },
    /// Hold N idle connections; with --pid, report the server's memory per connection.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        #[arg(long)]
        pid: Option<u32>,
    },
    /// N clients connected and synced drop at once, reconnect and sync.
    Reconnect {
        #[arg(long, default_value_t = 2000)]
        clients: usize,
    },
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.jwt_secret.is_empty() {
        anyhow::bail!("set CHAT_JWT_SECRET (or --jwt-secret) to the gateways' secret");
    }
    if args.timeline.is_some()
        && matches!(
            args.scenario,
            Scenario::Idle { .. } | Scenario::Reconnect { .. }
        )
    {
        anyhow::bail!("--timeline applies to the direct and group scenarios");
    }
    let report = match args.scenario {
        Scenario::Direct { pairs, inflight } => direct::run(&args, pairs, inflight).await?,
        Scenario::Group { members, senders } => group::run(&args, members, senders).await?,
        Scenario::Idle { connections, pid } => idle::run(&args, connections, pid).await?,
        Scenario::Reconnect { clients } => reconnect::run(&args, clients).await?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.human());
    }
    Ok(())
}

/// The scenario's stats, with a timeline when `--timeline` asks for one (its file is
/// created here, before the run).
fn stats_for(args: &BenchArgs) -> anyhow::Result<stats::Stats> {
    let timeline = match &args.timeline {
        None => None,
        Some(path) => {
            let out = std::fs::File::create(path)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
            Some(timeline::Timeline::new(args.duration, out))
        }
    };
    Ok(stats::Stats::new(timeline))
}

/// Writes the timeline, when `--timeline` asked for one.
fn write_timeline(args: &BenchArgs, stats: &stats::Stats) -> anyhow::Result<()> {
    if let (Some(path), Some(timeline)) = (&args.timeline, stats.timeline()) {
        timeline
            .write()
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// A run id, so repeated runs use fresh users and chats.
fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}
