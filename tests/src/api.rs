//! A client of the management API over real HTTP (Roost's own small HTTP/1.1 client, the
//! one `roost ctl` uses), answering status and JSON.

use std::net::SocketAddr;

use roost::http_client::{Endpoint, request};
use serde_json::Value;

use crate::WAIT;

pub struct Api {
    addr: SocketAddr,
    /// The `Authorization` header value; `None` sends none.
    pub auth: Option<String>,
}

impl Api {
    /// A client presenting `key` as a bearer token.
    pub fn new(addr: SocketAddr, key: &str) -> Api {
        Api { addr, auth: Some(format!("Bearer {key}")) }
    }

    /// A client presenting no credentials.
    pub fn anonymous(addr: SocketAddr) -> Api {
        Api { addr, auth: None }
    }

    /// `method path` with an optional JSON body: (status, body as JSON, or Null if empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let (status, raw) = self.call_raw(method, path, body).await;
        let json = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw).unwrap_or_else(|e| {
                panic!("{method} {path}: body is not JSON ({e}): {}", String::from_utf8_lossy(&raw))
            })
        };
        (status, json)
    }

    pub async fn call_raw(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Vec<u8>) {
        let to = Endpoint { authority: self.addr.to_string(), path: path.to_string() };
        let mut headers = Vec::new();
        if let Some(a) = &self.auth {
            headers.push(("Authorization", a.as_str()));
        }
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        let r = request(method, &to, &headers, &bytes, WAIT).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (r.status, r.body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }
}
