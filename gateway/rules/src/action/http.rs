//! The HTTP(S) action: one request per batch (hyper's HTTP/1.1 client over a TCP or rustls
//! connection made per request: rules post rarely enough, and a fresh connection needs no
//! pool to go stale). HTTPS trusts the public web roots plus an optional PEM `ca_file`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::{Output, Sink, SinkError};
use crate::config::ActionKind;
use crate::template::Template;

/// The most of a response body read (it is only logged).
const MAX_RESPONSE: usize = 64 * 1024;

/// `http(s)://host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{url:?} is not an http:// or https:// URL"));
        };
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
        if authority.is_empty() || authority.contains(['@', ' ']) {
            return Err(format!("{url:?} has no host"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !p.contains(']') => {
                (h, p.parse::<u16>().map_err(|_| format!("{url:?}: bad port {p:?}"))?)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        Ok(Target { tls, host: host.trim_matches(['[', ']']).to_string(), port, path: path.to_string() })
    }
}

/// One URL and how to reach it (TLS set up once); also what the server's `[[webhook]]`s
/// post through, so they speak `https://` too.
pub struct HttpClient {
    target: Target,
    authority: String,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl HttpClient {
    /// For `url` (`http://` or `https://`); HTTPS trusts the web roots and `ca_file`.
    pub fn new(url: &str, ca_file: Option<&std::path::Path>) -> Result<HttpClient, SinkError> {
        let target = Target::parse(url).map_err(SinkError::new)?;
        let tls = if target.tls { Some(connector(ca_file)?) } else { None };
        Ok(HttpClient { authority: format!("{}:{}", target.host, target.port), target, tls })
    }

    /// Sends one request on a new connection; the response status (any: the caller decides).
    pub async fn request(
        &self,
        method: hyper::Method,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<hyper::StatusCode, SinkError> {
        let tcp = TcpStream::connect((self.target.host.as_str(), self.target.port)).await.map_err(SinkError::new)?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(&self.target.path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::USER_AGENT, concat!("roost/", env!("CARGO_PKG_VERSION")));
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(SinkError::new)?;
        match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from(self.target.host.clone()).map_err(SinkError::new)?;
                let stream = tls.connect(name, tcp).await.map_err(SinkError::new)?;
                exchange(TokioIo::new(stream), req).await
            }
            None => exchange(TokioIo::new(tcp), req).await,
        }
    }
}

pub struct HttpSink {
    client: HttpClient,
    method: hyper::Method,
    headers: Vec<(String, Template)>,
    body: Template,
    timeout: Duration,
}

impl HttpSink {
    pub fn new(kind: &ActionKind) -> Result<HttpSink, SinkError> {
        let ActionKind::Http { url, method, headers, body, ca_file, timeout_ms } = kind else {
            return Err(SinkError::new("not an http action"));
        };
        Ok(HttpSink {
            client: HttpClient::new(url, ca_file.as_deref())?,
            method: method.parse().map_err(SinkError::new)?,
            headers: headers_of(headers)?,
            body: Template::parse(body).map_err(SinkError::new)?,
            timeout: Duration::from_millis(*timeout_ms),
        })
    }

    async fn send(&self, body: Vec<u8>, headers: Vec<(String, String)>) -> Result<(), SinkError> {
        let status = self.client.request(self.method.clone(), headers, body).await?;
        if status.is_success() { Ok(()) } else { Err(SinkError(format!("HTTP status {status}"))) }
    }
}

fn headers_of(headers: &BTreeMap<String, String>) -> Result<Vec<(String, Template)>, SinkError> {
    headers.iter().map(|(k, v)| Ok((k.clone(), Template::parse(v).map_err(SinkError::new)?))).collect()
}

/// The rustls client config: the web roots, plus `ca_file`'s certificates.
fn connector(ca_file: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector, SinkError> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        roost_core::pem::add_roots(&mut roots, path).map_err(|e| SinkError(format!("ca_file {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(SinkError::new)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn exchange<S>(io: TokioIo<S>, req: hyper::Request<Full<Bytes>>) -> Result<hyper::StatusCode, SinkError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.map_err(SinkError::new)?;
    let conn = tokio::spawn(conn);
    let resp = send.send_request(req).await.map_err(SinkError::new)?;
    let status = resp.status();
    // Read (a bounded part of) the body so the connection ends cleanly.
    let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE).collect().await;
    if let Err(e) = body {
        tracing::debug!(error = %e, "rule http action: response body not read");
    }
    conn.abort();
    Ok(status)
}

#[async_trait::async_trait]
impl Sink for HttpSink {
    async fn write(&mut self, batch: &[Output]) -> Result<(), SinkError> {
        let body = if batch.len() == 1 {
            self.body.render(&batch[0]).into_bytes()
        } else {
            // A batch is a JSON array of the rendered bodies (each parsed back if it is JSON).
            let items: Vec<serde_json::Value> = batch
                .iter()
                .map(|o| {
                    let s = self.body.render(o);
                    serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s))
                })
                .collect();
            serde_json::Value::Array(items).to_string().into_bytes()
        };
        let headers = self.headers.iter().map(|(k, v)| (k.clone(), v.render(&batch[0]))).collect();
        tokio::time::timeout(self.timeout, self.send(body, headers))
            .await
            .map_err(|_| SinkError::new("HTTP request timed out"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let t = Target::parse("https://example.com/hook?x=1").expect("url");
        assert_eq!((t.tls, t.host.as_str(), t.port, t.path.as_str()), (true, "example.com", 443, "/hook?x=1"));
        let t = Target::parse("http://127.0.0.1:9000").expect("url");
        assert_eq!((t.tls, t.port, t.path.as_str()), (false, 9000, "/"));
        assert!(Target::parse("ftp://x").is_err() && Target::parse("http://").is_err());
        assert!(Target::parse("http://h:99999/").is_err());
    }
}
