//! The server: its configuration, shared state, routes and the listening socket.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tweetflow_engine::metrics::StoreMetrics;
use tweetflow_engine::{Registry, RunStore};

use crate::actions::Launcher;
use crate::error::UiError;
use crate::pages;
use crate::render::Templates;
use crate::run_index::RunIndex;
use crate::security::{Guard, random_token};
use crate::state::AppState;

/// How `tweetflow ui` was called.
#[derive(Clone)]
pub struct UiConfig {
    /// Pipeline files, or directories of them.
    pub paths: Vec<PathBuf>,
    /// The run store.
    pub runs_dir: PathBuf,
    /// Where to listen (`127.0.0.1:8080` by default; port 0 picks a free one).
    pub listen: SocketAddr,
    /// The token actions need (`None`: a random one).
    pub token: Option<String>,
    /// The `tweetflow` binary that actions call.
    pub exe: PathBuf,
    /// The task types (the same registry `tweetflow validate` uses).
    pub registry: Arc<Registry>,
}

/// A bound server, ready to serve.
pub struct Bound {
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Whether the token was made up (then print it).
    pub generated_token: bool,
}

impl Bound {
    /// The token actions need.
    pub fn token(&self) -> &str {
        self.state.guard.token()
    }

    /// The URL to open: it hands the token to the browser.
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.token())
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), UiError> {
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(UiError::Serve)
    }
}

/// Checks the configuration and binds the listening socket.
pub async fn bind(config: UiConfig) -> Result<Bound, UiError> {
    if !config.listen.ip().is_loopback() && config.token.as_deref().is_none_or(str::is_empty) {
        return Err(UiError::TokenRequired {
            addr: config.listen,
        });
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| UiError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| UiError::Bind {
        addr: config.listen,
        source,
    })?;
    let generated_token = config.token.as_deref().is_none_or(str::is_empty);
    let token = config
        .token
        .filter(|t| !t.is_empty())
        .unwrap_or_else(random_token);
    let metrics = Arc::new(StoreMetrics::new(RunStore::new(&config.runs_dir)));
    let state = Arc::new(AppState {
        paths: config.paths,
        store: RunStore::new(&config.runs_dir),
        index: RunIndex::default(),
        registry: config.registry,
        guard: Guard::new(token, addr),
        launcher: Launcher {
            exe: config.exe,
            runs_dir: config.runs_dir,
        },
        templates: Templates::new()?,
        metrics,
    });
    Ok(Bound {
        listener,
        state,
        addr,
        generated_token,
    })
}

/// Binds and serves until `shutdown`, printing the URL to open.
pub async fn serve(
    config: UiConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), UiError> {
    let bound = bind(config).await?;
    let mut out = std::io::stdout();
    // Printing must not stop the server (a closed stdout is ignored).
    let _ = writeln!(out, "tweetflow ui: listening on http://{}", bound.addr);
    if bound.generated_token {
        let _ = writeln!(
            out,
            "actions token (random, made up at start): {}",
            bound.token()
        );
    }
    let _ = writeln!(out, "open {}", bound.url());
    let _ = out.flush();
    bound.serve(shutdown).await
}

/// The routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(pages::pipelines))
        .route("/pipelines/{name}", get(pages::pipeline))
        .route("/pipelines/{name}/run", post(pages::start_run))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/runs/{id}/log", get(pages::log))
        .route("/runs/{id}/cancel", post(pages::cancel_run))
        .route("/runs/{id}/resume", post(pages::resume_run))
        .route("/schedules", get(pages::schedules))
        .route("/static/{file}", get(pages::asset))
        .route("/metrics", get(pages::metrics))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            pages::check_request,
        ))
        .with_state(state)
}
