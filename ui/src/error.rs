//! Errors of the web UI.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What can go wrong starting or serving the UI.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// Listening on a non-loopback address needs an explicit token.
    #[error(
        "refusing to listen on {addr} without a token: anyone who can reach it could start runs \
         (give --token or TWEETFLOW_UI_TOKEN, or listen on 127.0.0.1)"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("the web server stopped")]
    Serve(#[source] std::io::Error),
    /// A pipeline path could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A page template failed to render.
    #[error("cannot render page `{template}`")]
    Render {
        /// The template's name.
        template: String,
        /// Why.
        #[source]
        source: minijinja::Error,
    },
}
