//! `cyclegan serve`: the HTTP API and web page, until Ctrl-C or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::DeviceArgs;
use super::download::{MirrorArgs, resolve_model};
use crate::serve::{Limits, ModelSpec, ServeOptions, Server, api::DEFAULT_GRACE};
use crate::translate::Tiling;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A model to offer, as `translate --model` takes it (a run folder gives each of its directions;
    /// a pretrained model's name is downloaded into the cache on first use),
    /// optionally named: NAME=PATH (default: the file or folder name). Repeat for more.
    #[arg(long = "model", required = true, value_name = "[NAME=]PATH")]
    pub models: Vec<ModelSpec>,
    /// Address to listen on (port 0 picks a free one). Only this machine can reach the default.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Translate images larger than N px in N x N tiles, as `translate --tile` does.
    #[arg(long, value_name = "N")]
    pub tile: Option<usize>,
    /// Largest request body, MiB (413 beyond).
    #[arg(long, default_value_t = Limits::DEFAULT_BODY_MB)]
    pub max_body_mb: usize,
    /// Most megapixels an image may have, read from its header before decoding (413 beyond);
    /// over 40 needs --tile.
    #[arg(long, default_value_t = Limits::DEFAULT_MEGAPIXELS)]
    pub max_megapixels: f64,
    /// Translations that may wait for the device; more get 503 with Retry-After.
    #[arg(long, default_value_t = Limits::DEFAULT_QUEUE)]
    pub queue: usize,
    /// Longest a request may take, seconds (504 beyond).
    #[arg(long, default_value_t = Limits::DEFAULT_TIMEOUT_SECS)]
    pub timeout_secs: f64,
    /// Require `Authorization: Bearer TOKEN` on every route but /healthz.
    #[arg(long, value_name = "TOKEN", env = "CYCLEGAN_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// How long a stopping server answers the requests in flight, seconds.
    #[arg(long, default_value_t = DEFAULT_GRACE.as_secs())]
    pub grace_secs: u64,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub mirror: MirrorArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Colours only on a terminal: a log file or journald gets plain text.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    let tiling = args.tile.map(|tile| Tiling { tile, overlap: Tiling::DEFAULT_OVERLAP, stats_size: Tiling::DEFAULT_STATS_SIZE });
    for (flag, v) in [("--max-megapixels", args.max_megapixels), ("--timeout-secs", args.timeout_secs)] {
        if !(v > 0.0 && v.is_finite()) {
            anyhow::bail!("{flag} must be a positive number");
        }
    }
    let deadline = Duration::try_from_secs_f64(args.timeout_secs)
        .map_err(|_| anyhow::anyhow!("--timeout-secs {} is more than a timer can hold", args.timeout_secs))?;
    let mut models = Vec::with_capacity(args.models.len());
    for spec in args.models {
        models.push(ModelSpec { path: resolve_model(&spec.path, &args.mirror)?, ..spec });
    }
    let options = ServeOptions {
        models,
        addr: args.addr,
        device: args.device.device()?,
        tiling,
        limits: Limits {
            body_bytes: args.max_body_mb.saturating_mul(1 << 20),
            max_pixels: (args.max_megapixels * 1e6) as u64,
            queue: args.queue,
            deadline,
        },
        auth_token: args.auth_token,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(options).await?;
        for w in &server.warnings {
            eprintln!("warning: {w}");
        }
        for l in &server.listings {
            let directions: Vec<&str> = l.directions.iter().map(|d| d.name()).collect();
            eprintln!("model '{}': {} ({}) from {}", l.name, l.arch, directions.join(", "), l.source.display());
        }
        println!("serving on http://{}/ (Ctrl-C to stop)", server.addr);
        let _ = std::io::stdout().flush();
        server.run(stop_signal(), Duration::from_secs(args.grace_secs)).await?;
        eprintln!("stopped");
        Ok(())
    })
}

/// Ctrl-C, or SIGTERM where there are signals.
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
