//! Replies of the HTTP API: Handle response codes in JSON bodies, and the one table that gives
//! each code its HTTP status as Handle.Net does (docs/http-api.md, "Response codes").

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use crate::auth::AuthError;
use crate::code::ResponseCode;
use crate::node::{DailyLimit, ReadError, WriteError};
use crate::registry::RegistryError;

/// Why a reply's HTTP status is not the one its code usually gets: the few statuses that say
/// more than the Handle code can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Detail {
    Usual,
    /// A write created the identifier (201).
    Created,
    /// Authentication is backed off for this client or user (429, with `Retry-After`).
    Throttled,
    /// The body or batch is over its limit (413).
    TooLarge,
}

/// The HTTP status of a reply with `code`: the one place codes and statuses are paired.
pub(super) fn status(code: ResponseCode, detail: Detail) -> StatusCode {
    match detail {
        Detail::Created => return StatusCode::CREATED,
        Detail::Throttled => return StatusCode::TOO_MANY_REQUESTS,
        Detail::TooLarge => return StatusCode::PAYLOAD_TOO_LARGE,
        Detail::Usual => {}
    }
    match code {
        ResponseCode::Success => StatusCode::OK,
        ResponseCode::Error => StatusCode::INTERNAL_SERVER_ERROR,
        ResponseCode::ServerTooBusy => StatusCode::SERVICE_UNAVAILABLE,
        ResponseCode::ProtocolError
        | ResponseCode::InvalidHandle
        | ResponseCode::ValuesNotFound
        | ResponseCode::InvalidValue => StatusCode::BAD_REQUEST,
        ResponseCode::HandleNotFound => StatusCode::NOT_FOUND,
        ResponseCode::HandleAlreadyExists | ResponseCode::ValueAlreadyExists => StatusCode::CONFLICT,
        ResponseCode::PrefixReferral => StatusCode::MULTIPLE_CHOICES,
        ResponseCode::OperationNotSupported => StatusCode::NOT_IMPLEMENTED,
        ResponseCode::RecursionCountTooHigh => StatusCode::LOOP_DETECTED,
        ResponseCode::ServerNotResponsible => StatusCode::MISDIRECTED_REQUEST,
        ResponseCode::InvalidAdmin
        | ResponseCode::InsufficientPermissions
        | ResponseCode::AuthenticationFailed
        | ResponseCode::RegisterCountLimit
        | ResponseCode::PrefixLimit => StatusCode::FORBIDDEN,
        // Over the day's requests: come back tomorrow (`Retry-After` says when).
        ResponseCode::RequestLimitDaily => StatusCode::TOO_MANY_REQUESTS,
        ResponseCode::AuthenticationNeeded
        | ResponseCode::AuthenticationTimeout
        | ResponseCode::SessionTimeout
        | ResponseCode::SessionFailed
        | ResponseCode::InvalidSessionSetup
        | ResponseCode::SessionMessageRejected => StatusCode::UNAUTHORIZED,
    }
}

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
    /// A reply with `body`, whose status is that of `code` (see [`status`]).
    pub(super) fn new(code: ResponseCode, detail: Detail, body: Json) -> Self {
        Self { status: status(code, detail), body, pretty: false, location: None, retry_after: None }
    }

    /// Success: `{"responseCode": 1, "handle": handle}`, or 201 when `detail` says created.
    pub(super) fn success(handle: &str, detail: Detail) -> Self {
        Self::new(ResponseCode::Success, detail, json!({ "responseCode": ResponseCode::Success, "handle": handle }))
    }

    /// Indents the body when `pretty` (the API's `pretty` parameter).
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
pub(super) fn error(code: ResponseCode, handle: Option<&str>, message: impl std::fmt::Display) -> Reply {
    error_with(code, Detail::Usual, handle, message)
}

/// [`error`] with a status that says more than the code (see [`Detail`]).
pub(super) fn error_with(
    code: ResponseCode,
    detail: Detail,
    handle: Option<&str>,
    message: impl std::fmt::Display,
) -> Reply {
    let mut body = json!({ "responseCode": code, "message": message.to_string() });
    if let Some(handle) = handle {
        body["handle"] = json!(handle);
    }
    Reply::new(code, detail, body)
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
    let prefix = delegation.identifier.record_prefix().unwrap_or_default();
    let code = ResponseCode::PrefixReferral;
    let message = format!("{prefix} is served by another node");
    let body = json!({ "responseCode": code, "handle": handle, "message": message, "values": sites });
    let mut reply = Reply::new(code, Detail::Usual, body);
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

/// A request that needs credentials came without them (401 with `WWW-Authenticate`).
pub(super) fn authentication_needed(handle: Option<&str>) -> Reply {
    error(
        ResponseCode::AuthenticationNeeded,
        handle,
        "this operation needs credentials: Authorization: Basic base64(INDEX%3AADMIN-IDENTIFIER:SECRET)",
    )
}

/// The reply to credentials that did not prove an administrator.
pub(super) fn from_auth_error(e: &AuthError, handle: Option<&str>) -> Reply {
    match e {
        AuthError::Throttled { retry_after } => {
            Reply { retry_after: Some(*retry_after), ..error_with(e.code(), Detail::Throttled, handle, e) }
        }
        AuthError::Busy => Reply { retry_after: Some(1), ..error(e.code(), handle, e) },
        AuthError::Registry(r) => from_registry_error(r, handle),
        AuthError::BadUser | AuthError::Failed { .. } => error(e.code(), handle, e),
    }
}

/// An administrator over its day's requests: 429 with responseCode 603, and `Retry-After` the
/// seconds to 00:00 UTC, when the count restarts.
pub(super) fn from_daily_limit(e: &DailyLimit, handle: Option<&str>) -> Reply {
    Reply { retry_after: Some(e.retry_after), ..error(e.code(), handle, e) }
}

/// The reply to a refused write.
pub(super) fn from_write_error(e: &WriteError, handle: Option<&str>) -> Reply {
    match e {
        WriteError::Registry(r) => from_registry_error(r, handle),
        WriteError::BatchTooLarge { .. } => error_with(e.code(), Detail::TooLarge, handle, e),
        // A mirror points at its primary: the same request there (421 Misdirected Request).
        WriteError::Mirror { primary } => {
            let path = handle.map_or_else(|| "/api/batch".to_owned(), |h| format!("/api/handles/{h}"));
            Reply { location: Some(format!("{}{path}", primary.trim_end_matches('/'))), ..error(e.code(), handle, e) }
        }
        e => error(e.code(), handle, e),
    }
}

/// The reply to a read that found nothing or was refused.
pub(super) fn from_read_error(e: &ReadError, handle: Option<&str>) -> Reply {
    match e {
        ReadError::Registry(r) => from_registry_error(r, handle),
        e => error(e.code(), handle, e),
    }
}

/// A storage failure: logged here, told to the client only as such.
pub(super) fn from_registry_error(e: &RegistryError, handle: Option<&str>) -> Reply {
    tracing::error!(error = %e, "registry failure");
    error(ResponseCode::Error, handle, "storage error; see the server log")
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
        let id = crate::identifier::Identifier::parse("0.NA/88.105").unwrap();
        let mut delegation = Record::new(&id, vec![Value::new(1, types::SITE, site.encode(), 0)]).unwrap();
        let reply = referral("88.105/X", &delegation);
        assert_eq!(reply.location.as_deref(), Some("https://[2001:db8::2]:8443/api/handles/88.105/X"));
        delegation.values[0].data = Site { servers: site.servers[..1].to_vec(), ..site }.encode();
        let reply = referral("88.105/X", &delegation);
        assert_eq!(reply.location.as_deref(), Some("http://192.0.2.1:8000/api/handles/88.105/X"));
        assert_eq!(reply.status, StatusCode::MULTIPLE_CHOICES);
        assert_eq!(reply.body["message"], "88.105 is served by another node");
    }

    #[test]
    fn each_code_has_its_status_and_the_exceptions_say_why() {
        let usual = |code| status(code, Detail::Usual).as_u16();
        let table = [
            (ResponseCode::Success, 200),
            (ResponseCode::Error, 500),
            (ResponseCode::ServerTooBusy, 503),
            (ResponseCode::ProtocolError, 400),
            (ResponseCode::HandleNotFound, 404),
            (ResponseCode::HandleAlreadyExists, 409),
            (ResponseCode::InvalidHandle, 400),
            (ResponseCode::ValuesNotFound, 400),
            (ResponseCode::InvalidValue, 400),
            (ResponseCode::PrefixReferral, 300),
            (ResponseCode::InvalidAdmin, 403),
            (ResponseCode::InsufficientPermissions, 403),
            (ResponseCode::AuthenticationNeeded, 401),
            (ResponseCode::AuthenticationFailed, 403),
            (ResponseCode::RequestLimitDaily, 429),
            (ResponseCode::RegisterCountLimit, 403),
            (ResponseCode::PrefixLimit, 403),
        ];
        for (code, expected) in table {
            assert_eq!(usual(code), expected, "{code:?}");
        }
        assert_eq!(status(ResponseCode::Success, Detail::Created), StatusCode::CREATED);
        assert_eq!(status(ResponseCode::AuthenticationFailed, Detail::Throttled), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status(ResponseCode::ProtocolError, Detail::TooLarge), StatusCode::PAYLOAD_TOO_LARGE);
        let throttled = from_auth_error(&AuthError::Throttled { retry_after: 7 }, None);
        assert_eq!((throttled.status.as_u16(), throttled.retry_after), (429, Some(7)));
        assert_eq!(throttled.body["responseCode"], 403);
        let busy = from_auth_error(&AuthError::Busy, None);
        assert_eq!(
            (busy.status.as_u16(), busy.retry_after, busy.body["responseCode"].as_u64()),
            (503, Some(1), Some(3))
        );
        let daily = from_daily_limit(&DailyLimit { admin: "0.NA/88".into(), limit: 5, retry_after: 60 }, None);
        assert_eq!(
            (daily.status.as_u16(), daily.retry_after, daily.body["responseCode"].as_u64()),
            (429, Some(60), Some(603))
        );
        let full = from_write_error(&WriteError::QuotaIdentifiers { prefix: "88".into(), limit: 5 }, None);
        assert_eq!((full.status.as_u16(), full.body["responseCode"].as_u64()), (403, Some(604)));
        let large = from_write_error(&WriteError::BatchTooLarge { count: 2001, max: 2000 }, None);
        assert_eq!((large.status.as_u16(), large.body["responseCode"].as_u64()), (413, Some(4)));
    }
}
