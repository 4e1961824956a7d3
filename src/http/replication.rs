//! What a mirror reads from its primary ([`crate::mirror`]): the change log after a sequence
//! number, waiting up to `wait` seconds for a write when there is none yet, and the records one
//! page at a time for a full copy. Only the administrators in `[replication] mirrors` may; the
//! answers are postcard ([`ChangesPage`], [`RecordsPage`]), the registry's own encoding.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::handles::{Incoming, Result, authenticate, blocking, reply};
use super::response::error;
use crate::code::ResponseCode;
use crate::mirror::{ChangesPage, MAX_PAGE_BYTES, MAX_RECORDS_PAGE, MAX_SETS_PAGE, MAX_WAIT};
use crate::node::Node;

/// `GET /api/replication/changes?after=SEQ&limit=N&wait=SECONDS`.
pub(super) async fn changes(State(node): State<Arc<Node>>, RawQuery(query): RawQuery, request: Request) -> Response {
    let Incoming { headers, source, .. } = Incoming::new(request);
    let params = Params::parse(query.as_deref());
    let allowed = {
        let node = node.clone();
        blocking(move || mirror_admin(&node, &headers, source)).await
    };
    if let Err(refusal) = allowed {
        return refusal.into_response();
    }
    let after = params.after.unwrap_or(0);
    let mut seq = node.watch_seq();
    if *seq.borrow() <= after {
        let wait = Duration::from_secs(params.wait.min(MAX_WAIT));
        let _ = tokio::time::timeout(wait, seq.wait_for(|s| *s > after)).await;
    }
    let limit = params.limit.map_or(MAX_SETS_PAGE, |l| l.clamp(1, MAX_SETS_PAGE as u64) as usize);
    let page = blocking(move || {
        let view = node.registry().log_view().map_err(|e| error(ResponseCode::Error, None, e))?;
        let behind = after < view.floor;
        let mut page = ChangesPage { seq: view.seq, floor: view.floor, log_id: view.log_id, behind, sets: Vec::new() };
        if !page.behind {
            let mut bytes = 0;
            for set in view.changes_after(after).map_err(|e| error(ResponseCode::Error, None, e))?.take(limit) {
                let set = set.map_err(|e| error(ResponseCode::Error, None, e))?;
                bytes += set.1.changes.iter().map(|c| c.key.len() + c.new.as_ref().map_or(0, Vec::len)).sum::<usize>();
                page.sets.push(set);
                if bytes > MAX_PAGE_BYTES {
                    break;
                }
            }
        }
        Ok(postcard_reply(&page))
    })
    .await;
    page.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/replication/records?after=HEX-KEY&limit=N`.
pub(super) async fn records(State(node): State<Arc<Node>>, RawQuery(query): RawQuery, request: Request) -> Response {
    let Incoming { headers, source, .. } = Incoming::new(request);
    let params = Params::parse(query.as_deref());
    let page = blocking(move || {
        mirror_admin(&node, &headers, source)?;
        let after = match &params.after_key {
            Some(text) => {
                Some(hex::decode(text).map_err(|_| error(ResponseCode::ProtocolError, None, "after= is hex"))?)
            }
            None => None,
        };
        let limit = params.limit.unwrap_or(MAX_RECORDS_PAGE as u64).clamp(1, MAX_RECORDS_PAGE as u64) as usize;
        let page =
            node.registry().records_page(after.as_deref(), limit).map_err(|e| error(ResponseCode::Error, None, e))?;
        Ok(postcard_reply(&page))
    })
    .await;
    page.unwrap_or_else(|refusal| reply(Err(refusal)).into_response())
}

/// Authenticates the request and checks its administrator is one of the node's mirrors.
fn mirror_admin(node: &Node, headers: &axum::http::HeaderMap, source: Option<std::net::IpAddr>) -> Result<()> {
    let admin = authenticate(node, headers, source, None)?;
    match node.may_mirror(&admin) {
        Ok(true) => Ok(()),
        Ok(false) => Err(error(
            ResponseCode::InsufficientPermissions,
            None,
            format!("{} is not among this node's mirrors ([replication] mirrors)", admin.user()),
        )),
        Err(e) => Err(error(ResponseCode::Error, None, e)),
    }
}

fn postcard_reply(page: &impl serde::Serialize) -> Response {
    match postcard::to_allocvec(page) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(e) => error(ResponseCode::Error, None, e).into_response(),
    }
}

#[derive(Default)]
struct Params {
    after: Option<u64>,
    after_key: Option<String>,
    limit: Option<u64>,
    wait: u64,
}

impl Params {
    fn parse(query: Option<&str>) -> Self {
        let mut params = Self::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*key {
                "after" => {
                    params.after = value.parse().ok();
                    params.after_key = Some(value.into_owned());
                }
                "limit" => params.limit = value.parse().ok(),
                "wait" => params.wait = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        params
    }
}
