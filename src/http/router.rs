//! The whole route table and middleware stack. Every route is documented in the OpenAPI
//! document (`crate::http::openapi`, served at `/openapi.json`); `tests/it/openapi.rs` reads
//! the `.route(...)` calls below and fails when the two differ.

use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use tower::ServiceBuilder;

use crate::api::{self, ErrorCode};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::http::{admin, feedback, history, openapi, queries, search, ui};

/// Builds the router: read routes open, write and admin routes behind the optional API key,
/// all measured, size- and time-limited, and load-shed beyond the concurrency limit.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/v1/feedback", post(feedback::post))
        .route("/v1/snapshots", post(admin::publish))
        .route("/v1/snapshots/{version}/activate", post(admin::activate))
        .route("/v1/training/pause", post(admin::pause))
        .route("/v1/training/resume", post(admin::resume))
        .route("/v1/search/feedback", post(search::feedback))
        .route("/v1/search/snapshots", post(search::publish))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ));
    let open = Router::new()
        .route(
            "/v1/users/{user}/recommendations",
            get(queries::recommendations),
        )
        .route("/v1/rank", post(queries::rank))
        .route("/v1/items/{item}/similar", get(queries::similar))
        .route("/v1/search/rank", post(search::rank))
        .route("/v1/search/model", get(search::model))
        .route("/v1/model", get(admin::model))
        .route("/v1/snapshots", get(admin::list))
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz))
        .route("/metrics", get(admin::metrics))
        .route("/openapi.json", get(openapi::serve))
        .route("/v1/training/history", get(history::training))
        .route("/v1/traffic", get(history::traffic))
        // The operator's console: HTML, not API (left out of the OpenAPI document).
        .route("/ui", get(ui::overview))
        .route("/ui/snapshots", get(ui::snapshots))
        .route("/ui/try", get(ui::try_it))
        .route("/ui/config", get(ui::configuration))
        .route("/ui/assets/{file}", get(ui::asset));
    let cfg = &state.config.server;
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(overloaded))
        .load_shed()
        .concurrency_limit(cfg.concurrency_limit)
        .timeout(Duration::from_millis(cfg.request_timeout_ms));
    Router::new()
        .merge(protected)
        .merge(open)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(openapi::Served::new(&state.config)))
        .layer(DefaultBodyLimit::max(cfg.body_limit_bytes))
        .layer(limits)
        .layer(middleware::from_fn_with_state(state.clone(), measure))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}

async fn overloaded(err: tower::BoxError) -> ApiError {
    if err.is::<tower::timeout::error::Elapsed>() {
        api::Error::timeout().into()
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        api::Error::overloaded().into()
    } else {
        ApiError::internal(err)
    }
}

/// Counts and times every request by route template (never the raw path).
async fn measure(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = req.method().as_str().to_owned();
    let m = &state.metrics;
    m.in_flight.inc();
    let started = Instant::now();
    let response = next.run(req).await;
    m.in_flight.dec();
    m.latency
        .with_label_values(&[&route, &method])
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .with_label_values(&[&route, &method, response.status().as_str()])
        .inc();
    response
}

/// Checks `Authorization: Bearer KEY` or `X-API-Key: KEY` against the configured key
/// ([`api::auth::check`], constant time). The key is never logged.
async fn require_api_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match api::auth::check(
        &state.config.server.api_key,
        header("x-api-key"),
        header("authorization"),
    ) {
        Ok(()) => next.run(req).await,
        Err(e) => ApiError::from(e).into_response(),
    }
}
