//! The HTTP front end: the Handle.Net JSON API (docs/http-api.md), so that pyhandle, b2handle and
//! curl scripts written for Handle.Net servers work unchanged, plus a batch endpoint.
//!
//! ```text
//! GET    /api/handles/{handle}       resolve (type=, index=, publicOnly=, pretty)
//! PUT    /api/handles/{handle}       create or replace (overwrite=, index=, mintNewSuffix=)
//! DELETE /api/handles/{handle}       delete the identifier, or the values named by index=
//! GET    /api/handles?prefix=P       list identifiers under P (page=, pageSize=)
//! GET    /api/prefixes?prefix=P      list the prefixes derived from P
//! POST   /api/batch                  up to 2000 puts and deletes in one transaction
//! GET    /api/replication/changes    a mirror reads the change log (after=, limit=, wait=)
//! GET    /api/replication/records    a mirror copies the records (after=, limit=)
//! ```
//!
//! Registry reads, secret checks (Argon2, deliberately slow) and durable writes run on the
//! blocking pool, never on the runtime's workers. A write's body is read only after its sender
//! authenticated, within a limit (1 MiB for one identifier, 64 MiB for a batch). This module is
//! the only one that imports axum; what a request means lives in [`crate::node`].

pub mod client;
mod handles;
pub mod listener;
mod replication;
mod response;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

pub use self::listener::{HttpListener, HttpTimeouts, ListenError, TlsError, TlsReloader};
use crate::node::Node;

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/api/handles", get(handles::list))
        .route("/api/handles/{*handle}", get(handles::resolve).put(handles::put).delete(handles::delete))
        .route("/api/prefixes", get(handles::list_prefixes))
        .route("/api/batch", post(handles::batch))
        .route("/api/replication/changes", get(replication::changes))
        .route("/api/replication/records", get(replication::records))
        .with_state(node)
}

/// Serves the API on `listener` (see [`listener`] for its limits) until `token` is cancelled and
/// every connection has closed.
pub async fn serve(listener: HttpListener, node: Arc<Node>, token: CancellationToken) {
    listener.serve(router(node), token).await
}

/// The handlers' parsers of request parts, reachable from outside only for the fuzz targets
/// (`fuzz/`): each runs exactly what a request runs, without a server or a registry.
#[doc(hidden)]
pub mod parse {
    use axum::http::{HeaderMap, HeaderValue, header};

    use crate::auth::Credentials;
    use crate::record::Value;

    /// A query string (`page=2&pageSize=50&index=1`): the `(page, page_size)` a listing would
    /// use, or `None` when the request is refused.
    pub fn query(query: &str) -> Option<(usize, usize)> {
        super::handles::params(Some(query)).ok().map(|p| (p.page, p.page_size))
    }

    /// An `Authorization` header value: the credentials it claims, or `None` when the handlers
    /// refuse it (or no HTTP request can carry it).
    pub fn authorization(value: &[u8]) -> Option<Credentials> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_bytes(value).ok()?);
        super::handles::credentials(&headers).ok().flatten()
    }

    /// The values of a write's body (`{"values":[...]}` or a bare list), or `None` when the
    /// write is refused as invalid. Values without a timestamp are stamped now.
    pub fn values(body: &[u8]) -> Option<Vec<Value>> {
        super::handles::parse_values("", body).ok()
    }
}
