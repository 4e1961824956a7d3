//! Quotas (`[quota]`) over the HTTP API, on a running node: the identifier quota (604, 403), the
//! prefix quota (605, 403) and the daily request quota (603, 429), batches decided op by op.
//! The Handle protocol's side is in `handle_admin` (its client lives there).

use idnode::config::{Config, QuotaOverride};

use crate::cli::call;
use crate::hardening::top_admin;
use crate::start_server_with;

/// `[quota.prefix."88.100"]` with `set` applied.
fn override_88_100(config: &mut Config, set: impl FnOnce(&mut QuotaOverride)) {
    let mut o = QuotaOverride::default();
    set(&mut o);
    config.quota.prefix.insert("88.100".into(), o);
}

/// Sends a request off the runtime (the client blocks); returns status and parsed body.
async fn send(
    method: &'static str,
    url: String,
    auth: Option<String>,
    body: Option<String>,
) -> (u16, serde_json::Value) {
    let (status, text) =
        tokio::task::spawn_blocking(move || call(method, &url, auth.as_deref(), body.as_deref())).await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")))
}

const URL: &str = r#"[{"index":1,"type":"URL","data":"https://example.com/q"}]"#;

#[tokio::test]
async fn the_next_identifier_over_the_quota_gets_403_with_604_and_a_replace_or_a_delete_passes() {
    let node = start_server_with(|c| override_88_100(c, |o| o.identifiers = Some(2))).await;
    let auth = Some(top_admin(&node, "top-secret"));
    let base = format!("http://{}/api/handles", node.http);
    let put = |h: &str| send("PUT", format!("{base}/{h}"), auth.clone(), Some(URL.into()));
    assert_eq!(put("88.100/A").await.0, 201);
    assert_eq!(put("88.100/B").await.0, 201);
    let (status, body) = put("88.100/C").await;
    assert_eq!((status, body["responseCode"].as_u64()), (403, Some(604)), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("88.100") && message.contains('2') && message.contains("604"), "{message}");
    assert_eq!(body["handle"], "88.100/C");
    assert_eq!(put("88.100/A").await.0, 200, "a replace is never refused");
    let (status, body) = put("88.100.1/OTHER").await;
    assert_eq!((status, body["responseCode"].as_u64()), (403, Some(604)), "the override holds below 88.100 too");
    assert_eq!(put("88.1000/OTHER").await.0, 201, "88.1000 is beside 88.100: no quota");
    assert_eq!(send("DELETE", format!("{base}/88.100/A"), auth.clone(), None).await.0, 200);
    assert_eq!(put("88.100/C").await.0, 201, "room again after a delete");

    // A batch: a delete makes room for one create, not two; nothing of a refused batch applies.
    let batch = |ops: &str| send("POST", format!("http://{}/api/batch", node.http), auth.clone(), Some(ops.into()));
    let ops = r#"{"operations":[{"op":"delete","handle":"88.100/B"},{"op":"put","handle":"88.100/D","values":[]},
                 {"op":"put","handle":"88.100/E","values":[]}]}"#;
    let (status, body) = batch(ops).await;
    assert_eq!((status, body["responseCode"].as_u64(), body["failedOperation"].as_u64()), (403, Some(604), Some(2)));
    assert_eq!(node.registry.count_under("88.100").unwrap(), 2, "nothing applied");
    let ops = r#"{"operations":[{"op":"delete","handle":"88.100/B"},{"op":"put","handle":"88.100/D","values":[]}]}"#;
    assert_eq!(batch(ops).await.0, 200);
    node.stop().await;
}

#[tokio::test]
async fn the_next_derived_prefix_over_the_quota_gets_403_with_605() {
    // The demo holds 0.NA/88.100.1 already.
    let node = start_server_with(|c| c.quota.prefixes = 2).await;
    let auth = Some(top_admin(&node, "top-secret"));
    let base = format!("http://{}/api/handles", node.http);
    let put = |h: &str| send("PUT", format!("{base}/{h}"), auth.clone(), Some("[]".into()));
    assert_eq!(put("0.NA/88.100").await.0, 201);
    assert_eq!(put("0.NA/88.100.2").await.0, 201);
    let (status, body) = put("0.NA/88.100.3").await;
    assert_eq!((status, body["responseCode"].as_u64()), (403, Some(605)), "{body}");
    assert_eq!(put("0.NA/88.100.2.1").await.0, 201, "one level down only");
    node.stop().await;
}

#[tokio::test]
async fn an_administrator_over_its_days_requests_gets_429_with_603_and_anonymous_reads_go_on() {
    let node = start_server_with(|c| c.quota.daily_requests = 3).await;
    let auth = Some(top_admin(&node, "top-secret"));
    let url = format!("http://{}/api/handles/88.100.1/ABC-123", node.http);
    for _ in 0..3 {
        assert_eq!(send("GET", url.clone(), auth.clone(), None).await.0, 200);
    }
    let (status, body) = send("GET", url.clone(), auth.clone(), None).await;
    assert_eq!((status, body["responseCode"].as_u64()), (429, Some(603)), "{body}");
    assert!(body["message"].as_str().unwrap().contains("UTC"), "{body}");
    let (status, body) = send("PUT", format!("{url}-2"), auth.clone(), Some(URL.into())).await;
    assert_eq!((status, body["responseCode"].as_u64()), (429, Some(603)), "writes too: {body}");
    for _ in 0..5 {
        assert_eq!(send("GET", url.clone(), None, None).await.0, 200, "anonymous requests are not counted");
    }
    node.stop().await;
}
