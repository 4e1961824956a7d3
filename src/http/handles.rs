//! Handlers of `/api/handles`, `/api/prefixes` and `/api/batch`: thin translations. Each parses
//! the request's parameters, credentials and body, calls the node core ([`crate::node::Node`]),
//! and turns its answer or error into JSON with the status its response code gets
//! ([`response::status`]). What may be read or written is decided in the core only.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::response::{self, Detail, Reply, error, error_with};
use crate::auth::{Admin, Credentials};
use crate::code::ResponseCode;
use crate::identifier::{Identifier, check_prefix};
use crate::node::{Listing, Node, Op, Page, PutOptions, ReadError, ReadFilter, Resolution};
use crate::record::json::JsonValue;
use crate::record::{Value, unix_now};
use crate::registry::{Applied, MAX_BATCH, MAX_LIST_OFFSET};
use crate::stats::{Outcome, Protocol};

/// 100: page size of a listing when the client names none; 10,000 the most one page returns.
const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 10_000;
/// 1 MiB: the body of a single-identifier write. A record's values weigh at most 30,000 bytes
/// (record::MAX_RECORD_SIZE); JSON escaping and base64 at most triple that, so this is ample
/// room without letting a client make the node buffer much.
const MAX_WRITE_BODY: usize = 1 << 20;
/// 64 MiB: the body of a batch (2000 records), read only after its sender authenticated.
const MAX_BATCH_BODY: usize = 64 << 20;

pub(super) type Result<T> = std::result::Result<T, Reply>;

/// The query parameters of the Handle.Net API.
#[derive(Default)]
pub(super) struct Params {
    indexes: Vec<u32>,
    types: Vec<String>,
    overwrite: bool,
    mint: bool,
    public_only: bool,
    pretty: bool,
    prefix: Option<String>,
    after: Option<String>,
    pub(super) page: usize,
    pub(super) page_size: usize,
}

pub(super) fn params(query: Option<&str>) -> Result<Params> {
    let mut p = Params { overwrite: true, page_size: DEFAULT_PAGE_SIZE, ..Params::default() };
    let bad = |name: &str, value: &str| {
        error(ResponseCode::ProtocolError, None, format!("query parameter {name}={value:?} is not valid"))
    };
    let flag = |name: &str, value: &str| match value {
        "" | "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(name, value)),
    };
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "index" => p.indexes.push(value.parse().map_err(|_| bad(&name, &value))?),
            "type" => p.types.push(value.into_owned()),
            "overwrite" => p.overwrite = flag(&name, &value)?,
            "mintNewSuffix" => p.mint = flag(&name, &value)?,
            "publicOnly" => p.public_only = flag(&name, &value)?,
            "pretty" => p.pretty = flag(&name, &value)?,
            "prefix" => p.prefix = Some(value.into_owned()),
            "after" => p.after = Some(value.into_owned()),
            "page" => p.page = value.parse().map_err(|_| bad(&name, &value))?,
            "pageSize" => p.page_size = value.parse().map_err(|_| bad(&name, &value))?,
            // Accepted for compatibility; resolution here is always authoritative.
            "auth" | "cert" => {}
            _ => {}
        }
    }
    p.page_size = p.page_size.clamp(1, MAX_PAGE_SIZE);
    if p.page.saturating_mul(p.page_size) > MAX_LIST_OFFSET {
        let message = format!(
            "page {} of {} starts past the first {MAX_LIST_OFFSET} names; go on from the last name of a page with \
             after=NAME",
            p.page, p.page_size
        );
        return Err(error(ResponseCode::ProtocolError, None, message));
    }
    Ok(p)
}

/// Reads `Authorization: Basic base64(user:secret)`, where the user `index:identifier` is
/// percent-encoded (`300%3A0.NA/88.100`) as pyhandle and Handle.Net clients send it; an
/// unencoded `300:0.NA/88.100:secret` is read too.
pub(super) fn credentials(headers: &HeaderMap) -> Result<Option<Credentials>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let bad = |why: &str| error(ResponseCode::InvalidAdmin, None, format!("Authorization header: {why}"));
    let text = value.to_str().map_err(|_| bad("not ASCII"))?;
    let encoded = text.strip_prefix("Basic ").ok_or_else(|| bad("only Basic authentication is supported"))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| bad("not base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad("not UTF-8"))?;
    let (mut user, mut secret) = decoded.split_once(':').ok_or_else(|| bad("no ':' between user and secret"))?;
    if user.bytes().all(|b| b.is_ascii_digit()) {
        // Unencoded: the first colon ends the index, the next one the identifier.
        let (admin, rest) = secret.split_once(':').ok_or_else(|| bad("no ':' between user and secret"))?;
        let (index_len, admin_len) = (user.len(), admin.len());
        user = &decoded[..index_len + 1 + admin_len];
        secret = rest;
    }
    let user = percent_encoding::percent_decode_str(user).decode_utf8().map_err(|_| bad("user is not UTF-8"))?;
    Credentials::new(&user, secret).map(Some).map_err(|e| response::from_auth_error(&e, None))
}

/// Runs registry and hashing work on the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(error = %e, "request handler failed");
            Err(error(ResponseCode::Error, None, "internal error; see the server log"))
        }
    }
}

pub(super) fn reply(result: Result<Reply>) -> Reply {
    result.unwrap_or_else(|reply| reply)
}

/// The parts of a request a handler reads before deciding whether to read its body.
pub(super) struct Incoming {
    pub(super) headers: HeaderMap,
    /// The client's address, where the listener recorded it.
    pub(super) source: Option<std::net::IpAddr>,
    pub(super) body: Body,
}

impl Incoming {
    pub(super) fn new(request: Request) -> Self {
        let (parts, body) = request.into_parts();
        let source = parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        Self { headers: parts.headers, source, body }
    }
}

/// Reads a body of at most `limit` bytes (413 beyond it). Called only after authentication, so
/// an anonymous client cannot make the node buffer anything.
async fn read_body(body: Body, limit: usize) -> Result<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            error_with(ResponseCode::ProtocolError, Detail::TooLarge, None, format!("the body is over {limit} bytes"))
        } else {
            error(ResponseCode::ProtocolError, None, format!("reading the body: {e}"))
        }
    })
}

/// The administrator the request's credentials prove: 401 without credentials, the
/// authenticator's refusal (logged on the `audit` target) with wrong ones, 429 (603) for an
/// administrator over its day's requests (each authenticated request counts once).
pub(super) fn authenticate(
    node: &Node,
    headers: &HeaderMap,
    source: Option<std::net::IpAddr>,
    handle: Option<&str>,
) -> Result<Admin> {
    let credentials = credentials(headers)?.ok_or_else(|| response::authentication_needed(handle))?;
    let admin = node.authenticate(&credentials, source).map_err(|e| {
        let user = format!("{}:{}", credentials.index, credentials.admin);
        tracing::warn!(target: "audit", user, handle, error = %e, "authentication failed");
        response::from_auth_error(&e, handle)
    })?;
    node.count_request(&admin).map_err(|e| {
        tracing::warn!(target: "audit", user = %admin.user(), handle, error = %e, "refused");
        response::from_daily_limit(&e, handle)
    })?;
    Ok(admin)
}

/// The identifier a request names (102, INVALID_HANDLE, when it is none).
fn parse_id(handle: &str) -> Result<Identifier> {
    Identifier::parse(handle).map_err(|e| error(ResponseCode::InvalidHandle, Some(handle), e))
}

/// The values of a write's body, `{"values": [...]}` or a bare list (202, INVALID_VALUE, when
/// it is neither or a value is invalid); values without a timestamp are stamped now.
pub(super) fn parse_values(handle: &str, body: &[u8]) -> Result<Vec<Value>> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        Object { values: Vec<JsonValue> },
        Array(Vec<JsonValue>),
    }
    let invalid = |e: &dyn std::fmt::Display| error(ResponseCode::InvalidValue, Some(handle), e);
    let values = match serde_json::from_slice::<Body>(body) {
        Ok(Body::Object { values } | Body::Array(values)) => values,
        Err(e) => return Err(invalid(&format!("the body must be {{\"values\": [...]}} or a list of values: {e}"))),
    };
    let now = unix_now();
    values.into_iter().map(|v| v.into_value(now).map_err(|e| invalid(&e))).collect()
}

//------------ GET /api/handles/{handle} ------------------------------------------------------

pub(super) async fn resolve(
    State(node): State<Arc<Node>>,
    Path(handle): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Reply {
    let Incoming { headers, source, .. } = Incoming::new(request);
    // Counted as a lookup, as DNS and the Handle protocol count theirs.
    let stats = node.stats().clone();
    let prefix = handle.split_once('/').map(|(prefix, _)| prefix.to_owned());
    let started = std::time::Instant::now();
    let answer = reply(
        blocking(move || {
            let p = params(query.as_deref())?;
            let id = parse_id(&handle)?;
            let admin = match credentials(&headers)? {
                Some(_) => Some(authenticate(&node, &headers, source, Some(&handle))?),
                None => None,
            };
            let filter = ReadFilter { types: p.types, indexes: p.indexes, public_only: p.public_only };
            let found = match node.resolve(admin.as_ref(), &id, &filter) {
                Ok(Resolution::Found(found)) => found,
                Ok(Resolution::Referral(delegation)) => return Ok(response::referral(&handle, &delegation)),
                Err(e) => return Err(response::from_read_error(&e, Some(&handle))),
            };
            let values: Vec<JsonValue> = found.record.values.iter().map(JsonValue::from_value).collect();
            // The handle is echoed as asked: clients such as pyhandle compare it with their request.
            let body = json!({ "responseCode": found.code(), "handle": handle, "values": values });
            // A filter that matched nothing is still an answer: 200, with responseCode 200.
            Ok(Reply::new(ResponseCode::Success, Detail::Usual, body).pretty(p.pretty))
        })
        .await,
    );
    let code = answer.body.get("responseCode").and_then(serde_json::Value::as_u64).unwrap_or(2);
    stats.count(Protocol::Http, Outcome::of_handle(code as u32), prefix.as_deref());
    stats.time(crate::stats::dns::Source::Http, started.elapsed());
    answer
}

//------------ PUT /api/handles/{handle} ------------------------------------------------------

pub(super) async fn put(
    State(node): State<Arc<Node>>,
    Path(handle): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Reply {
    reply(put_inner(node, handle, query, Incoming::new(request)).await)
}

/// Authenticates, then reads the body and writes: the body of an anonymous client is never read.
async fn put_inner(node: Arc<Node>, handle: String, query: Option<String>, incoming: Incoming) -> Result<Reply> {
    let p = params(query.as_deref())?;
    let Incoming { headers, source, body } = incoming;
    let (n, h) = (node.clone(), handle.clone());
    let admin = blocking(move || authenticate(&n, &headers, source, Some(&h))).await?;
    let body = read_body(body, MAX_WRITE_BODY).await?;
    blocking(move || {
        let id = if p.mint {
            let prefix = handle.trim_end_matches('/');
            check_prefix(prefix).map_err(|e| error(ResponseCode::InvalidHandle, Some(&handle), e))?;
            parse_id(&format!("{prefix}/{}", uuid::Uuid::new_v4()))?
        } else {
            parse_id(&handle)?
        };
        let values = parse_values(id.as_str(), &body)?;
        let options = PutOptions {
            no_overwrite: p.mint || !p.overwrite,
            only_indexes: (!p.indexes.is_empty()).then_some(p.indexes),
            change: None,
        };
        match node.put(&admin, &id, values, &options) {
            Ok(Applied::Created) => Ok(Reply::success(id.as_str(), Detail::Created)),
            Ok(_) => Ok(Reply::success(id.as_str(), Detail::Usual)),
            Err(e) => Err(response::from_write_error(&e, Some(id.as_str()))),
        }
    })
    .await
}

//------------ DELETE /api/handles/{handle} ---------------------------------------------------

pub(super) async fn delete(
    State(node): State<Arc<Node>>,
    Path(handle): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Reply {
    let Incoming { headers, source, .. } = Incoming::new(request);
    reply(
        blocking(move || {
            let p = params(query.as_deref())?;
            let admin = authenticate(&node, &headers, source, Some(&handle))?;
            let id = parse_id(&handle)?;
            let indexes = (!p.indexes.is_empty()).then_some(p.indexes.as_slice());
            node.delete(&admin, &id, indexes).map_err(|e| response::from_write_error(&e, Some(&handle)))?;
            Ok(Reply::success(&handle, Detail::Usual))
        })
        .await,
    )
}

//------------ GET /api/handles?prefix= and /api/prefixes?prefix= ----------------------------

pub(super) async fn list(State(node): State<Arc<Node>>, RawQuery(query): RawQuery, request: Request) -> Reply {
    listing(node, query, Incoming::new(request), "handles", Node::list).await
}

/// Prefixes derived from `prefix` that have a prefix record (Handle's LIST_DERIVED_PREFIXES).
pub(super) async fn list_prefixes(State(node): State<Arc<Node>>, RawQuery(query): RawQuery, request: Request) -> Reply {
    listing(node, query, Incoming::new(request), "prefixes", Node::list_prefixes).await
}

/// One of the node's listings: [`Node::list`] or [`Node::list_prefixes`].
type Lister = fn(&Node, &Admin, &str, &Page) -> std::result::Result<Listing, ReadError>;

/// A page of names under `?prefix=`, as `field` of the body.
async fn listing(
    node: Arc<Node>,
    query: Option<String>,
    incoming: Incoming,
    field: &'static str,
    lister: Lister,
) -> Reply {
    let Incoming { headers, source, .. } = incoming;
    let listed = blocking(move || {
        let p = params(query.as_deref())?;
        let prefix =
            p.prefix.clone().ok_or_else(|| error(ResponseCode::ProtocolError, None, "listing needs ?prefix=PREFIX"))?;
        check_prefix(&prefix).map_err(|e| error(ResponseCode::InvalidHandle, None, e))?;
        let admin = authenticate(&node, &headers, source, None)?;
        let page = Page { number: p.page, size: p.page_size, after: p.after.clone() };
        let Listing { names, total } =
            lister(&node, &admin, &prefix, &page).map_err(|e| response::from_read_error(&e, None))?;
        let mut body = json!({
            "responseCode": ResponseCode::Success,
            "prefix": prefix,
            "page": p.page,
            "pageSize": p.page_size,
            field: names,
        });
        if let Some(total) = total {
            body["totalCount"] = json!(total.to_string());
        }
        Ok(Reply::new(ResponseCode::Success, Detail::Usual, body).pretty(p.pretty))
    });
    reply(listed.await)
}

//------------ POST /api/batch ----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    operations: Vec<BatchItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchItem {
    op: String,
    handle: String,
    #[serde(default)]
    values: Vec<JsonValue>,
    #[serde(default = "yes")]
    overwrite: bool,
}

fn yes() -> bool {
    true
}

pub(super) async fn batch(State(node): State<Arc<Node>>, request: Request) -> Reply {
    reply(batch_inner(node, Incoming::new(request)).await)
}

/// Authenticates, reads the body, parses every operation, then hands them to the node at once.
async fn batch_inner(node: Arc<Node>, incoming: Incoming) -> Result<Reply> {
    let Incoming { headers, source, body } = incoming;
    let n = node.clone();
    let admin = blocking(move || authenticate(&n, &headers, source, None)).await?;
    let body = read_body(body, MAX_BATCH_BODY).await?;
    blocking(move || {
        let body: BatchBody = serde_json::from_slice(&body).map_err(|e| {
            let shape = r#"{"operations": [{"op": "put"|"delete", "handle", "values", "overwrite"}]}"#;
            error(ResponseCode::ProtocolError, None, format!("the body must be {shape}: {e}"))
        })?;
        if body.operations.len() > MAX_BATCH {
            let count = body.operations.len();
            let message =
                format!("the batch holds {count} operations; at most {MAX_BATCH} are allowed, so none was applied");
            return Err(error_with(ResponseCode::ProtocolError, Detail::TooLarge, None, message));
        }
        let handles: Vec<String> = body.operations.iter().map(|o| o.handle.clone()).collect();
        let now = unix_now();
        let ops = body
            .operations
            .into_iter()
            .enumerate()
            .map(|(position, item)| batch_op(item, now).map_err(|reply| batch_failure(&handles, position, reply)))
            .collect::<Result<Vec<Op>>>()?;
        match node.batch(&admin, ops) {
            Ok(applied) => {
                let results: Vec<_> = handles.iter().zip(&applied).map(|(h, a)| batch_result(h, *a)).collect();
                let body = json!({ "responseCode": ResponseCode::Success, "results": results });
                Ok(Reply::new(ResponseCode::Success, Detail::Usual, body))
            }
            Err(e) => {
                let reply = response::from_write_error(&e.error, handles.get(e.position).map(String::as_str));
                Err(batch_failure(&handles, e.position, reply))
            }
        }
    })
    .await
}

/// One operation of a batch, or the reply that refuses it.
fn batch_op(item: BatchItem, now: i64) -> Result<Op> {
    let id = parse_id(&item.handle)?;
    match item.op.as_str() {
        "put" => {
            let values = item.values.into_iter().map(|v| v.into_value(now)).collect::<std::result::Result<_, _>>();
            let values = values.map_err(|e| error(ResponseCode::InvalidValue, Some(&item.handle), e))?;
            let options = PutOptions { no_overwrite: !item.overwrite, only_indexes: None, change: None };
            Ok(Op::Put { id, values, options })
        }
        "delete" => Ok(Op::Delete { id, indexes: None }),
        other => {
            let message = format!("unknown op {other:?} (expected put or delete)");
            Err(error(ResponseCode::ProtocolError, Some(&item.handle), message))
        }
    }
}

/// What a batch reports for one applied operation.
fn batch_result(handle: &str, applied: Applied) -> serde_json::Value {
    let status = match applied {
        Applied::Created => "created",
        Applied::Replaced => "replaced",
        Applied::Deleted => "deleted",
        Applied::Missing => "missing",
    };
    json!({ "handle": handle, "responseCode": ResponseCode::Success, "status": status })
}

/// A refused batch: nothing was applied; the failing operation carries the error, the others
/// say they were not applied.
fn batch_failure(handles: &[String], position: usize, reply: Reply) -> Reply {
    let results: Vec<_> = handles
        .iter()
        .enumerate()
        .map(|(i, h)| if i == position { reply.body.clone() } else { json!({ "handle": h, "status": "not applied" }) })
        .collect();
    let message =
        format!("operation {position}: {}; nothing was applied", reply.body["message"].as_str().unwrap_or("refused"));
    let code = reply.body["responseCode"].clone();
    let body = json!({ "responseCode": code, "message": message, "failedOperation": position, "results": results });
    Reply { status: reply.status, body, pretty: false, location: None, retry_after: None }
}
