//! Handle response codes and the HTTP statuses Handle.Net maps them to (docs/http-api.md, "Response codes").

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use crate::auth::AuthError;
use crate::node::WriteError;
use crate::registry::RegistryError;

pub(super) const SUCCESS: u32 = 1;
pub(super) const ERROR: u32 = 2;
pub(super) const HANDLE_NOT_FOUND: u32 = 100;
pub(super) const HANDLE_ALREADY_EXISTS: u32 = 101;
pub(super) const INVALID_HANDLE: u32 = 102;
pub(super) const VALUES_NOT_FOUND: u32 = 200;
pub(super) const INVALID_VALUE: u32 = 202;
pub(super) const INVALID_ADMIN: u32 = 400;
pub(super) const INSUFFICIENT_PERMISSIONS: u32 = 401;
pub(super) const AUTHENTICATION_NEEDED: u32 = 402;
pub(super) const AUTHENTICATION_FAILED: u32 = 403;
pub(super) const SERVER_TOO_BUSY: u32 = 3;
pub(super) const PROTOCOL_ERROR: u32 = 4;
pub(super) const PREFIX_REFERRAL: u32 = 303;

/// A JSON reply; `pretty` indents it (the API's `pretty` parameter).
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) body: Json,
    pub(super) pretty: bool,
    /// A `Location` header (referrals).
    pub(super) location: Option<String>,
    /// A `Retry-After` header, in seconds (throttled and busy answers).
    pub(super) retry_after: Option<u64>,
}

impl Reply {
    pub(super) fn ok(status: StatusCode, body: Json) -> Self {
        Self { status, body, pretty: false, location: None, retry_after: None }
    }

    pub(super) fn pretty(mut self, pretty: bool) -> Self {
        self.pretty = pretty;
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let text =
            if self.pretty { serde_json::to_string_pretty(&self.body) } else { serde_json::to_string(&self.body) };
        let mut response =
            (self.status, [(header::CONTENT_TYPE, "application/json;charset=UTF-8")], text.unwrap_or_default())
                .into_response();
        if let Some(value) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"handle\""));
        }
        response
    }
}

/// An error reply: `{"responseCode": code, "handle": ..., "message": ...}`.
pub(super) fn error(status: StatusCode, code: u32, handle: Option<&str>, message: impl std::fmt::Display) -> Reply {
    let mut body = json!({ "responseCode": code, "message": message.to_string() });
    if let Some(handle) = handle {
        body["handle"] = json!(handle);
    }
    Reply::ok(status, body)
}

/// A referral: the identifier's prefix is served by another node, whose sites (`HS_SITE`
/// values of the delegation record) the answer carries (HTTP 300, responseCode 303). The
/// `Location` header names the same request at the first server with an HTTPS interface, or
/// else an HTTP one, so that clients following redirects reach the child node directly.
pub(super) fn referral(handle: &str, delegation: &crate::record::Record) -> Reply {
    let sites: Vec<_> = delegation
        .values
        .iter()
        .filter(|v| v.is_type(crate::record::types::SITE))
        .map(crate::record::json::JsonValue::from_value)
        .collect();
    let prefix = delegation.identifier.split_once('/').map_or("", |(_, p)| p);
    let body = json!({ "responseCode": PREFIX_REFERRAL, "handle": handle, "message": format!("{prefix} is served by another node"), "values": sites });
    let mut reply = Reply::ok(StatusCode::MULTIPLE_CHOICES, body);
    let servers: Vec<_> = crate::record::site::sites_in(delegation).into_iter().flat_map(|site| site.servers).collect();
    // HTTPS first: a child that offers it wants clients there, credentials and all.
    reply.location = ["https", "http"].iter().find_map(|scheme| {
        servers.iter().find_map(|server| {
            let interface = server.interfaces.iter().find(|i| i.protocol.eq_ignore_ascii_case(scheme))?;
            let host = match server.address {
                std::net::IpAddr::V4(a) => a.to_string(),
                std::net::IpAddr::V6(a) => format!("[{a}]"),
            };
            Some(format!("{scheme}://{host}:{}/api/handles/{handle}", interface.port))
        })
    });
    reply
}

pub(super) fn authentication_needed(handle: Option<&str>) -> Reply {
    error(
        StatusCode::UNAUTHORIZED,
        AUTHENTICATION_NEEDED,
        handle,
        "this operation needs credentials: Authorization: Basic base64(INDEX%3AADMIN-IDENTIFIER:SECRET)",
    )
}

pub(super) fn from_auth_error(e: &AuthError, handle: Option<&str>) -> Reply {
    match e {
        AuthError::BadUser => error(StatusCode::FORBIDDEN, INVALID_ADMIN, handle, e),
        AuthError::Failed { .. } => error(StatusCode::FORBIDDEN, AUTHENTICATION_FAILED, handle, e),
        AuthError::Throttled { retry_after } => Reply {
            retry_after: Some(*retry_after),
            ..error(StatusCode::TOO_MANY_REQUESTS, AUTHENTICATION_FAILED, handle, e)
        },
        AuthError::Busy => {
            Reply { retry_after: Some(1), ..error(StatusCode::SERVICE_UNAVAILABLE, SERVER_TOO_BUSY, handle, e) }
        }
        AuthError::Registry(r) => from_registry_error(r, handle),
    }
}

pub(super) fn from_write_error(e: &WriteError, handle: Option<&str>) -> Reply {
    let (status, code) = match e {
        WriteError::NotFound { .. } => (StatusCode::NOT_FOUND, HANDLE_NOT_FOUND),
        WriteError::AlreadyExists { .. } => (StatusCode::CONFLICT, HANDLE_ALREADY_EXISTS),
        WriteError::ValuesNotFound { .. } => (StatusCode::BAD_REQUEST, VALUES_NOT_FOUND),
        WriteError::Forbidden { .. } => (StatusCode::FORBIDDEN, INSUFFICIENT_PERMISSIONS),
        WriteError::CaseConflict { .. } => (StatusCode::CONFLICT, HANDLE_ALREADY_EXISTS),
        WriteError::InvalidValue(_)
        | WriteError::InvalidSecret(_)
        | WriteError::TooManySecrets { .. }
        | WriteError::Undelegable { .. } => (StatusCode::BAD_REQUEST, INVALID_VALUE),
        WriteError::InvalidPrefix { .. } => (StatusCode::BAD_REQUEST, INVALID_HANDLE),
        WriteError::BatchTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, PROTOCOL_ERROR),
        WriteError::Registry(r) => return from_registry_error(r, handle),
    };
    error(status, code, handle, e)
}

pub(super) fn from_registry_error(e: &RegistryError, handle: Option<&str>) -> Reply {
    tracing::error!(error = %e, "registry failure");
    error(StatusCode::INTERNAL_SERVER_ERROR, ERROR, handle, "storage error; see the server log")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::site::Site;
    use crate::record::{Record, Value, types};

    #[test]
    fn a_referral_points_at_the_childs_https_interface_first() {
        let site: Site = serde_json::from_str(
            r#"{"servers":[{"serverId":1,"address":"192.0.2.1","interfaces":[{"protocol":"HTTP","port":8000}]},
                           {"serverId":2,"address":"2001:db8::2","interfaces":[{"protocol":"HTTPS","port":8443}]}]}"#,
        )
        .unwrap();
        let mut delegation =
            Record { identifier: "0.NA/88.105".into(), values: vec![Value::new(1, types::SITE, site.encode(), 0)] };
        let reply = referral("88.105/X", &delegation);
        assert_eq!(reply.location.as_deref(), Some("https://[2001:db8::2]:8443/api/handles/88.105/X"));
        delegation.values[0].data = Site { servers: site.servers[..1].to_vec(), ..site }.encode();
        let reply = referral("88.105/X", &delegation);
        assert_eq!(reply.location.as_deref(), Some("http://192.0.2.1:8000/api/handles/88.105/X"));
    }
}
