//! `cyclegan serve`: trained generators behind an HTTP API and a web page.
//!
//! - [`models`]: the `--model` arguments opened as `translate` opens them;
//! - [`worker`]: the device's one thread and the bounded queue before it;
//! - [`api`]: the routes, the limits and the JSON errors;
//! - [`metrics`]: what `/metrics` reports.
//!
//! Requests are decoded and encoded on tokio's blocking pool, translated on
//! the worker thread, one at a time, by the same code as `cyclegan
//! translate` (same padding, tiling and rounding: the same pixels).

pub mod api;
pub mod metrics;
pub mod models;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use burn::tensor::Device;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};

pub use models::ModelSpec;

use crate::error::{Error, Result};
use crate::translate::Tiling;

/// The limits a server enforces on every request.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request body (413 beyond).
    pub body_bytes: usize,
    /// Most pixels an image may have, from its header before decoding (413 beyond).
    pub max_pixels: u64,
    /// Translations that may wait for the device (503 with Retry-After beyond).
    pub queue: usize,
    /// Longest a request may take in all (504 beyond).
    pub deadline: Duration,
}

/// Pixels at or under which an image is translated whole; larger ones need `--tile`.
pub const UNTILED_MAX_PIXELS: u64 = 40_000_000;

impl Limits {
    /// The defaults, here once for the library and `cyclegan serve`'s flags.
    pub const DEFAULT_BODY_MB: usize = 32;
    /// Megapixels: whole images up to what fits untiled.
    pub const DEFAULT_MEGAPIXELS: f64 = UNTILED_MAX_PIXELS as f64 / 1e6;
    pub const DEFAULT_QUEUE: usize = 8;
    pub const DEFAULT_TIMEOUT_SECS: f64 = 60.0;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: Self::DEFAULT_BODY_MB << 20,
            max_pixels: (Self::DEFAULT_MEGAPIXELS * 1e6) as u64,
            queue: Self::DEFAULT_QUEUE,
            deadline: Duration::from_secs_f64(Self::DEFAULT_TIMEOUT_SECS),
        }
    }
}

pub struct ServeOptions {
    pub models: Vec<ModelSpec>,
    pub addr: SocketAddr,
    pub device: Device,
    pub tiling: Option<Tiling>,
    pub limits: Limits,
    pub auth_token: Option<String>,
}

/// A server bound to its address, models loaded, not yet answering.
pub struct Server {
    listener: tokio::net::TcpListener,
    app: Router,
    ready: Arc<AtomicBool>,
    /// The address it listens on (the port chosen when 0 was asked for).
    pub addr: SocketAddr,
    /// What the user should know (a public address without a token).
    pub warnings: Vec<String>,
    /// The models offered, for the start-up message.
    pub listings: Vec<models::ModelListing>,
}

impl Server {
    /// Load the models, start the device worker and bind the address.
    pub async fn bind(options: ServeOptions) -> Result<Self> {
        if options.limits.max_pixels > UNTILED_MAX_PIXELS && options.tiling.is_none() {
            return Err(Error::Usage(format!(
                "--max-megapixels over {} needs --tile: whole images that large do not fit in memory",
                UNTILED_MAX_PIXELS / 1_000_000
            )));
        }
        if options.limits.queue == 0 || options.limits.body_bytes == 0 || options.limits.deadline.is_zero() {
            return Err(Error::Usage("--queue and --max-body-mb must be at least 1, --timeout-secs above 0".into()));
        }
        let (served, listings) = models::open(&options.models, &options.device, options.tiling)?;
        let mut warnings = Vec::new();
        if !options.addr.ip().is_loopback() && options.auth_token.is_none() {
            warnings.push(format!(
                "{} is reachable from other machines and --auth-token is not set: anyone who can reach it can use it",
                options.addr
            ));
        }
        let metrics = Arc::new(metrics::Metrics::default());
        let generators = Arc::new(served.iter().map(|s| (s.model.clone(), s.direction)).collect());
        let queue = worker::start(served, options.limits.queue, metrics.clone(), worker::Fault::from_env());
        let ready = Arc::new(AtomicBool::new(true));
        let state = api::AppState {
            generators,
            listings: Arc::new(listings.clone()),
            queue,
            metrics,
            limits: options.limits,
            ready: ready.clone(),
            token: options.auth_token.map(Into::into),
        };
        let app = Router::new()
            .route("/", get(api::page))
            .route("/v1/translate", post(api::translate))
            .route("/v1/models", get(api::models))
            .route("/healthz", get(api::healthz))
            .route("/readyz", get(api::readyz))
            .route("/metrics", get(api::metrics))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .layer(RequestBodyLimitLayer::new(options.limits.body_bytes))
            .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::GATEWAY_TIMEOUT, options.limits.deadline))
            .layer(axum::middleware::from_fn_with_state(state.clone(), api::auth))
            .layer(
                // The span at INFO too, so each logged answer says which request it was.
                TraceLayer::new_for_http()
                    .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            )
            .layer(axum::middleware::from_fn_with_state(state.clone(), api::observe))
            .with_state(state);
        let listener =
            tokio::net::TcpListener::bind(options.addr).await.map_err(|e| Error::Usage(format!("--addr {}: {e}", options.addr)))?;
        let addr = listener.local_addr().map_err(|e| Error::Usage(format!("--addr {}: {e}", options.addr)))?;
        Ok(Self { listener, app, ready, addr, warnings, listings })
    }

    /// Answer requests until `shutdown` completes; then stop accepting, and
    /// answer the requests in flight for at most `grace`.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static, grace: Duration) -> Result<()> {
        let ready = self.ready.clone();
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            ready.store(false, Ordering::SeqCst);
            let _ = stopping_tx.send(());
        };
        let serve = tokio::spawn(axum::serve(self.listener, self.app).with_graceful_shutdown(signal).into_future());
        tokio::pin!(serve);
        tokio::select! {
            result = &mut serve => return finished(result),
            _ = stopping_rx => {}
        }
        match tokio::time::timeout(grace, serve).await {
            Ok(result) => finished(result),
            Err(_) => Ok(()), // in-flight requests past the grace period are cut off
        }
    }
}

fn finished(result: std::result::Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<()> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Usage(format!("the server stopped: {e}"))),
        Err(e) => Err(Error::Usage(format!("the server stopped: {e}"))),
    }
}
