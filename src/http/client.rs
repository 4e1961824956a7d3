//! A client of the node's HTTP API, for the operator CLI (`idnode id ...`, `idnode prefix ...`),
//! so that no operator has to write curl.

use std::time::Duration;

use serde_json::Value as Json;

use crate::record::json::JsonValue;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url}: HTTP {status}: {message} (responseCode {code})")]
    Refused { url: String, status: u16, code: i64, message: String },
    #[error("{url}: the answer is not the Handle.Net JSON shape: {reason}")]
    Malformed { url: String, reason: String },
    #[error("not a file of PEM certificates: {0}")]
    Ca(String),
}

/// How long a request may take in all: a node that accepts the connection and then stalls
/// cannot hang an operator's command (a batch of 10,000 writes takes seconds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Where the node is and who is asking.
pub struct ApiClient {
    agent: ureq::Agent,
    base: String,
    authorization: Option<String>,
}

impl ApiClient {
    /// `base` is the node's HTTP address (`http://127.0.0.1:8000`); `user` is `index:identifier`;
    /// `ca_pem`, when given, holds the only certificates an `https` node may present.
    pub fn new(base: &str, credentials: Option<(&str, &str)>, ca_pem: Option<&[u8]>) -> Result<Self, ClientError> {
        use base64::Engine as _;
        let authorization = credentials.map(|(user, secret)| {
            let user = percent_encoding::utf8_percent_encode(user, percent_encoding::NON_ALPHANUMERIC).to_string();
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")))
        });
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(REQUEST_TIMEOUT));
        if let Some(pem) = ca_pem {
            config = config.tls_config(crate::trust::trusting(pem).map_err(ClientError::Ca)?);
        }
        Ok(Self { agent: config.build().into(), base: base.trim_end_matches('/').to_owned(), authorization })
    }

    pub fn get(&self, handle: &str, query: &[(&str, String)]) -> Result<Json, ClientError> {
        self.send("GET", &self.handle_url(handle, query), None)
    }

    pub fn put(&self, handle: &str, values: &[JsonValue], query: &[(&str, String)]) -> Result<Json, ClientError> {
        let body = serde_json::json!({ "values": values }).to_string();
        self.send("PUT", &self.handle_url(handle, query), Some(body))
    }

    pub fn delete(&self, handle: &str, query: &[(&str, String)]) -> Result<Json, ClientError> {
        self.send("DELETE", &self.handle_url(handle, query), None)
    }

    /// `GET` of any path on the node (`/stats` on the operations listener).
    pub fn get_path(&self, path: &str) -> Result<Json, ClientError> {
        self.send("GET", &format!("{}{path}", self.base), None)
    }

    /// `GET /api/handles?prefix=` or `/api/prefixes?prefix=` (`what` is `handles` or `prefixes`).
    pub fn list(&self, what: &str, prefix: &str, page: usize, page_size: usize) -> Result<Json, ClientError> {
        let query = [("prefix", prefix.to_owned()), ("page", page.to_string()), ("pageSize", page_size.to_string())];
        self.send("GET", &format!("{}/api/{what}?{}", self.base, encode_query(&query)), None)
    }

    fn handle_url(&self, handle: &str, query: &[(&str, String)]) -> String {
        // Keep `/` (it separates prefix and suffix in the path); escape what a URL cannot hold.
        const PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
            .add(b' ')
            .add(b'"')
            .add(b'#')
            .add(b'%')
            .add(b'?')
            .add(b'<')
            .add(b'>')
            .add(b'`')
            .add(b'{')
            .add(b'}');
        let path = percent_encoding::utf8_percent_encode(handle, PATH);
        match query.is_empty() {
            true => format!("{}/api/handles/{path}", self.base),
            false => format!("{}/api/handles/{path}?{}", self.base, encode_query(query)),
        }
    }

    fn send(&self, method: &str, url: &str, body: Option<String>) -> Result<Json, ClientError> {
        let unreachable = |e: ureq::Error| ClientError::Unreachable { url: url.to_owned(), reason: e.to_string() };
        let result = match method {
            "GET" => with_auth(self.agent.get(url), &self.authorization).call(),
            "DELETE" => with_auth(self.agent.delete(url), &self.authorization).call(),
            _ => with_auth(self.agent.put(url), &self.authorization)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or_default()),
        };
        let mut response = result.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(unreachable)?;
        let json: Json = serde_json::from_str(&text)
            .map_err(|e| ClientError::Malformed { url: url.to_owned(), reason: e.to_string() })?;
        if status >= 400 {
            return Err(ClientError::Refused {
                url: url.to_owned(),
                status,
                code: json["responseCode"].as_i64().unwrap_or(0),
                message: json["message"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(json)
    }
}

fn with_auth<B>(request: ureq::RequestBuilder<B>, authorization: &Option<String>) -> ureq::RequestBuilder<B> {
    match authorization {
        Some(a) => request.header("Authorization", a),
        None => request,
    }
}

fn encode_query(pairs: &[(&str, String)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}
