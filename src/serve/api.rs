//! The routes: `POST /v1/translate`, `GET /v1/models`, `/healthz`,
//! `/readyz`, `/metrics` and the page at `/`; errors as `{"error": "..."}`
//! with a fitting status, whichever layer refused the request.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use image::ImageFormat;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use super::Limits;
use super::metrics::Metrics;
use super::models::ModelListing;
use super::worker::{Job, JobError, Queue};
use crate::checkpoint::Direction;
use crate::image_io;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// `(model, direction)` of each generator the worker holds, by index.
    pub generators: Arc<Vec<(String, Direction)>>,
    pub listings: Arc<Vec<ModelListing>>,
    pub queue: Queue,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub ready: Arc<AtomicBool>,
    pub token: Option<Arc<str>>,
}

/// A refusal: a status and a one-line reason.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The formats `format=` may ask for.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Png,
    #[serde(alias = "jpg")]
    Jpeg,
    Webp,
}

impl OutputFormat {
    fn image_format(self) -> ImageFormat {
        match self {
            Self::Png => ImageFormat::Png,
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Webp => ImageFormat::WebP,
        }
    }

    fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct TranslateQuery {
    pub model: Option<String>,
    pub direction: Option<Direction>,
    pub format: Option<OutputFormat>,
}

pub const PAGE: &str = include_str!("page.html");

pub async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE)
}

pub async fn models(State(s): State<AppState>) -> impl IntoResponse {
    axum::Json(json!({ "models": &*s.listings }))
}

pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(s): State<AppState>) -> Response {
    if !s.queue.alive() {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, WORKER_GONE).into_response()
    } else if s.ready.load(Ordering::SeqCst) {
        axum::Json(json!({ "status": "ready" })).into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    }
}

pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}

pub async fn translate(State(s): State<AppState>, Query(q): Query<TranslateQuery>, request: Request) -> Result<Response, ApiError> {
    let index = find(&s, q.model.as_deref(), q.direction)?;
    let format = q.format.unwrap_or_default();
    let bytes = image_bytes(request, &s).await?;
    // a place in the queue before decoding: a full server refuses cheaply
    // (the body is read all the same, so that the client hears the answer)
    let slot = s.queue.slots.clone().try_acquire_owned().map_err(|_| queue_full(&s.limits))?;
    let max_pixels = s.limits.max_pixels;
    let image = tokio::task::spawn_blocking(move || decode_checked(&bytes, max_pixels))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "decoding failed"))??;
    let (reply, answer) = oneshot::channel();
    let job = Job { model: index, image, deadline: Instant::now() + s.limits.deadline, reply, slot };
    s.queue.submit(job).map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, WORKER_GONE))?;
    let data = answer.await.map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, WORKER_GONE))?.map_err(|e| {
        let status = match e {
            JobError::DeadlinePassed => StatusCode::GATEWAY_TIMEOUT,
            JobError::Failed(_) | JobError::Panicked(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    })?;
    let encoded = tokio::task::spawn_blocking(move || image_io::encode(&data, format.image_format()))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed"))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode ({e})")))?;
    Ok(([(header::CONTENT_TYPE, format.mime())], encoded).into_response())
}

/// What a request hears when no worker is left to translate it.
const WORKER_GONE: &str = "the server is stopping (its device worker has ended)";

fn queue_full(limits: &Limits) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("{} translations are waiting already; retry shortly", limits.queue))
}

/// The generator a request names: `model` may be left out when only one is served, `direction` means a2b when left out.
fn find(s: &AppState, model: Option<&str>, direction: Option<Direction>) -> Result<usize, ApiError> {
    let name = match model {
        Some(m) => m.to_string(),
        None if s.listings.len() == 1 => s.listings[0].name.clone(),
        None => {
            let names: Vec<&str> = s.listings.iter().map(|l| l.name.as_str()).collect();
            return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("name a model with model= (one of {})", names.join(", "))));
        }
    };
    let listing = s.listings.iter().find(|l| l.name == name).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("no model '{name}' (GET /v1/models lists them)"))
    })?;
    let direction = direction.unwrap_or(listing.directions[0]);
    s.generators.iter().position(|(m, d)| *m == name && *d == direction).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("model '{name}' does not translate {}", direction.name()))
    })
}

/// The image's bytes: the body itself, or the `image` field of a multipart form.
async fn image_bytes(request: Request, s: &AppState) -> Result<Bytes, ApiError> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let too_large = |status: StatusCode| {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, body_limit_message(&s.limits))
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "the request body could not be read")
        }
    };
    if !multipart {
        return Bytes::from_request(request, s).await.map_err(|e| too_large(e.status()));
    }
    let mut form = Multipart::from_request(request, s).await.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    while let Some(field) = form.next_field().await.map_err(|e| too_large(e.status()))? {
        if field.name() == Some("image") {
            return field.bytes().await.map_err(|e| too_large(e.status()));
        }
    }
    Err(ApiError::new(StatusCode::BAD_REQUEST, "the form has no field named 'image'"))
}

/// Decode an upload, refusing unsupported formats (415), pixel bombs by
/// their header before any pixel is decoded (413), and broken files (400).
fn decode_checked(bytes: &[u8], max_pixels: u64) -> Result<image::DynamicImage, ApiError> {
    let source = Path::new("the uploaded image");
    if bytes.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "the request has no image (the body is empty)"));
    }
    let supported = [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::WebP, ImageFormat::Bmp, ImageFormat::Tiff];
    if !image::guess_format(bytes).is_ok_and(|f| supported.contains(&f)) {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not an image in a supported format (png, jpeg, webp, bmp, tiff)"));
    }
    let (w, h) = image_io::header_dimensions(source, bytes).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let pixels = w as u64 * h as u64;
    if pixels > max_pixels {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the image is {w}x{h}, {:.1} megapixels, over the limit of {:.1} (--max-megapixels)", pixels as f64 / 1e6, max_pixels as f64 / 1e6),
        ));
    }
    image_io::decode_bytes(source, bytes).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
}

/// `--auth-token`: every route but `/healthz` needs `Authorization: Bearer TOKEN`.
pub async fn auth(State(s): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &s.token
        && request.uri().path() != "/healthz"
    {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if given.is_none_or(|g| !constant_time_eq(g.as_bytes(), token.as_bytes())) {
            let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "this server needs Authorization: Bearer TOKEN").into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The outermost layer: counts every answer by status and time, and gives
/// errors from any layer (body limit, timeout, unknown route) the JSON shape.
pub async fn observe(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let response = next.run(request).await;
    let response = if response.status().as_u16() >= 400 && !is_json(&response) { json_error(response, &s.limits).await } else { response };
    s.metrics.record(response.status().as_u16(), start.elapsed());
    response
}

fn body_limit_message(limits: &Limits) -> String {
    format!("the request is over the {} MiB limit (--max-body-mb)", limits.body_bytes >> 20)
}

fn is_json(r: &Response) -> bool {
    r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"))
}

async fn json_error(response: Response, limits: &Limits) -> Response {
    let status = response.status();
    let text = axum::body::to_bytes(response.into_body(), 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => body_limit_message(limits),
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => {
            format!("the request took longer than the deadline of {} s (--timeout-secs)", limits.deadline.as_secs_f64())
        }
        StatusCode::NOT_FOUND => "no such route (POST /v1/translate, GET /v1/models, /healthz, /readyz, /metrics, /)".to_string(),
        _ if !text.is_empty() => text.lines().next().unwrap_or_default().to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    ApiError::new(status, message).into_response()
}

/// How long a finished server waits for the requests in flight.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);
