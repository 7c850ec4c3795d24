//! Fuzz target for the JSON bodies of the HTTP management API (`roost::api`, and the rule
//! and protocol routes merged into it): a gateway with HTTP, LoRaWAN and LwM2M listeners on
//! loopback port 0 (memory store, data and traces in a temporary directory) runs for the
//! whole fuzzing process; each input's first byte picks a route taking a body (publish,
//! traces, LoRaWAN devices and downlink queue, LwM2M commands, rules, rule test, rule
//! replace), the rest is the body, sent over a kept-alive HTTP/1.1 connection with the API
//! key. Roost must answer every body (a bad one with 4xx), never with a 500, never panic.
//!
//! Run from the repository root: `scripts/fuzz http_api_json 600`

#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

const KEY: &str = "fuzz-api-key-0123456789abcdef";
const ROUTES: [(&str, &str); 8] = [
    ("POST", "/api/v1/publish"),
    ("POST", "/api/v1/traces"),
    ("POST", "/api/v1/lorawan/devices"),
    ("POST", "/api/v1/lorawan/devices/0102030405060708/queue"),
    ("POST", "/api/v1/lwm2m/devices/fuzz/commands"),
    ("POST", "/api/v1/rules"),
    ("POST", "/api/v1/rules/test"),
    ("PUT", "/api/v1/rules/r1"),
];

struct Client {
    rt: Runtime,
    addr: std::net::SocketAddr,
    send: Option<SendRequest<Full<Bytes>>>,
}

/// Starts the gateway once (kept for the whole process, on a thread of its own).
fn gateway() -> std::net::SocketAddr {
    static ADDR: OnceLock<std::net::SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let dir = tempfile_dir();
        let config = format!(
            "[node]\nsys_interval = \"0s\"\n[log]\nlevel = \"off\"\n[mqtt]\nbind = []\n[mqttsn]\nbind = []\n\
             [coap]\nbind = []\n[lorawan]\nbind = [\"127.0.0.1:0\"]\n[lwm2m]\nbind = [\"127.0.0.1:0\"]\n\
             [http]\nbind = [\"127.0.0.1:0\"]\napi_keys = [\"{KEY}\"]\n[storage]\nbackend = \"memory\"\ndata_dir = \"{}\"\n",
            dir.display()
        );
        let settings = roost::config::parse(&config).unwrap_or_else(|e| panic!("fuzz config: {e}"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let gw = roost::gateway::start(settings).await.unwrap_or_else(|e| panic!("gateway: {e:#}"));
                tx.send(gw.http_addrs()[0]).expect("address sent");
                std::future::pending::<()>().await;
                drop(gw);
            });
        });
        rx.recv().expect("the gateway starts")
    })
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("roost-fuzz-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

impl Client {
    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> u16 {
        let addr = self.addr;
        let send = self.send.take();
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "roost")
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .expect("request");
        let (status, send) = self.rt.block_on(async move {
            let mut send = match send {
                Some(s) if !s.is_closed() => s,
                _ => {
                    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect to the API");
                    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                        .await
                        .expect("HTTP handshake");
                    tokio::spawn(conn);
                    send
                }
            };
            let resp = send.send_request(req).await.expect("the API answers");
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            (status, send)
        });
        self.send = Some(send);
        status
    }
}

thread_local! {
    static CLIENT: std::cell::RefCell<Client> = std::cell::RefCell::new(Client {
        rt: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"),
        addr: gateway(),
        send: None,
    });
}

fuzz_target!(|data: &[u8]| {
    let [route, body @ ..] = data else { return };
    let (method, path) = ROUTES[usize::from(*route) % ROUTES.len()];
    let status = CLIENT.with(|c| c.borrow_mut().request(method, path, body));
    assert!(status < 500 || status == 503, "{method} {path} answered {status} to {}", String::from_utf8_lossy(body));
});
