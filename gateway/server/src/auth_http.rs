//! `"http"` in `[auth] chain`: credentials are POSTed as JSON to `[auth.http] url`, and the
//! answer decides, as EMQX's HTTP authenticator does: status 200 or 204 with
//! `{"result": "allow" | "deny" | "ignore"}` (204 or no body: allow); any other status:
//! ignore (the next source decides). No answer within `timeout`, or no connection: deny,
//! so an unreachable service cannot let anyone in or hold connects open. Answers are
//! cached for `cache_ttl`, keyed by a salted hash of the credentials (the password itself
//! is never kept or logged).
//!
//! The request body: `{"clientid", "username", "password", "peerhost", "protocol"}`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use roost_core::auth::{AuthDecision, AuthSource, BoxFuture, Credentials, Verdict};

use crate::config::HttpAuthSettings;

/// The largest answer read.
const MAX_BODY: usize = 16 * 1024;
/// Cached answers at most.
const MAX_CACHED: usize = 10_000;

pub struct HttpAuth {
    settings: HttpAuthSettings,
    uri: hyper::Uri,
    salt: std::collections::hash_map::RandomState,
    cache: Mutex<HashMap<u64, (Verdict, Instant)>>,
}

impl HttpAuth {
    pub fn new(settings: HttpAuthSettings) -> anyhow::Result<HttpAuth> {
        let uri: hyper::Uri = settings.url.parse().map_err(|e| anyhow::anyhow!("auth.http.url: {e}"))?;
        if uri.host().is_none() {
            anyhow::bail!("auth.http.url: {:?} has no host", settings.url);
        }
        Ok(HttpAuth { settings, uri, salt: Default::default(), cache: Mutex::new(HashMap::new()) })
    }

    fn key(&self, c: &Credentials<'_>) -> u64 {
        let mut h = self.salt.build_hasher();
        c.client.client_id.as_str().hash(&mut h);
        c.client.username.hash(&mut h);
        c.password.map(|p| &p[..]).hash(&mut h);
        h.finish()
    }

    async fn ask(&self, c: &Credentials<'_>) -> anyhow::Result<Verdict> {
        let body = serde_json::json!({
            "clientid": c.client.client_id.as_str(),
            "username": c.client.username,
            "password": c.password.map(|p| String::from_utf8_lossy(p).into_owned()),
            "peerhost": c.client.peer.map(|p| p.ip().to_string()),
            "protocol": c.client.protocol_name(),
        });
        let host = self.uri.host().unwrap_or_default().trim_matches(['[', ']']);
        let port = self.uri.port_u16().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect((host, port)).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = self.uri.authority().map_or(host.to_string(), |a| a.to_string());
        let req = Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        if status != hyper::StatusCode::OK && status != hyper::StatusCode::NO_CONTENT {
            tracing::debug!(%status, "auth.http: answer is not 200/204; ignored");
            return Ok(Verdict::Ignore);
        }
        let bytes =
            Limited::new(resp.into_body(), MAX_BODY).collect().await.map_err(|e| anyhow::anyhow!("{e}"))?.to_bytes();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Verdict::Allow);
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes)?;
        Ok(match v.get("result").and_then(|r| r.as_str()) {
            Some("allow") => Verdict::Allow,
            Some("deny") => Verdict::Deny(AuthDecision::BadCredentials),
            Some("ignore") => Verdict::Ignore,
            other => anyhow::bail!("answer's \"result\" is {other:?}, not \"allow\", \"deny\" or \"ignore\""),
        })
    }
}

impl AuthSource for HttpAuth {
    fn name(&self) -> &str {
        "http"
    }

    fn check<'a>(&'a self, creds: &'a Credentials<'a>) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let key = self.key(creds);
            let ttl = self.settings.cache_ttl;
            if !ttl.is_zero()
                && let Some((v, at)) = self.cache.lock().get(&key)
                && at.elapsed() < ttl
            {
                return *v;
            }
            let verdict = match tokio::time::timeout(self.settings.timeout, self.ask(creds)).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    tracing::warn!(url = %self.settings.url, error = %e, "auth.http: no usable answer; denied");
                    return Verdict::Deny(AuthDecision::NotAuthorized);
                }
                Err(_) => {
                    tracing::warn!(url = %self.settings.url, timeout = ?self.settings.timeout, "auth.http: no answer in time; denied");
                    return Verdict::Deny(AuthDecision::NotAuthorized);
                }
            };
            if !ttl.is_zero() {
                let mut cache = self.cache.lock();
                if cache.len() >= MAX_CACHED {
                    cache.retain(|_, (_, at)| at.elapsed() < ttl);
                }
                if cache.len() < MAX_CACHED {
                    cache.insert(key, (verdict, Instant::now()));
                }
            }
            verdict
        })
    }
}
