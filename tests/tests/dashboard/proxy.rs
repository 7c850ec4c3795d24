//! A reverse proxy that serves the gateway's HTTP listener under a path prefix, as
//! nginx's `location /roost/ { proxy_pass http://gateway/; }` does: axum (hyper) in front,
//! hyper's HTTP/1 client to the gateway, bodies streamed both ways (the topic watch is an
//! event stream).

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone)]
struct Upstream {
    prefix: &'static str,
    addr: SocketAddr,
}

/// Starts the proxy on a free loopback port; its address.
pub async fn start(prefix: &'static str, upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(forward).with_state(Upstream { prefix, addr: upstream });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn forward(State(up): State<Upstream>, mut req: Request) -> Response {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    let Some(rest) = path.strip_prefix(up.prefix) else {
        return (StatusCode::NOT_FOUND, "outside the proxied prefix").into_response();
    };
    let rest = if rest.starts_with('/') { rest.to_string() } else { format!("/{rest}") };
    *req.uri_mut() = rest.parse::<Uri>().unwrap();
    let Ok(stream) = TcpStream::connect(up.addr).await else {
        return (StatusCode::BAD_GATEWAY, "gateway unreachable").into_response();
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await else {
        return (StatusCode::BAD_GATEWAY, "handshake failed").into_response();
    };
    tokio::spawn(conn);
    match sender.send_request(req).await {
        Ok(resp) => resp.map(Body::new),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
