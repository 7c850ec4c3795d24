//! The Clients page against a gateway holding a large fleet, in Chromium: how long the first
//! page of the client list takes to show (from the route change to the rows in the table:
//! the page's `/stats` and `/clients?page=1&limit=50` calls and the render), and the
//! API call alone as the page timed it.
//!
//! In CI it runs against the test gateway (a debug build) holding [`SMALL_FLEET`] in-process
//! sessions, and checks the list is paged on the server (50 rows of the whole count); the
//! times are printed, not judged. With `ROOST_DASHBOARD_FLEET=http://HOST:PORT/` and
//! `ROOST_DASHBOARD_FLEET_KEY` it measures a running gateway instead (a release build, with
//! `roost-sim bench conn` holding 10,000 devices: docs/benchmarks.md has the commands and
//! figures) and fails when the list holds fewer than `ROOST_DASHBOARD_FLEET_MIN` (default
//! 10,000) clients or the median first page takes 200 ms or more (issue 23's line).

use roost_core::{ClientId, ConnectContext, ConnectRequest, Connection, Protocol};
use roost_e2e::TestBroker;

use super::KEY;
use super::cdp::Browser;

const RUNS: usize = 20;
/// Sessions of the CI run.
const SMALL_FLEET: usize = 1_000;

/// `n` connected in-process clients (the core's own API: cheaper than sockets, listed the
/// same way).
async fn fleet(broker: &TestBroker, n: usize) -> Vec<Connection> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let request = ConnectRequest {
            client_id: ClientId::new(format!("fleet-{i:05}")),
            protocol: Protocol::Mqtt,
            peer: None,
            username: None,
            password: None,
            clean_start: true,
            keep_alive: 0,
            will: None,
            session_expiry: Some(std::time::Duration::ZERO),
            receive_maximum: 16,
        };
        let context = ConnectContext::default();
        conns.push(broker.broker().connect_with(request, context).await.expect("an in-process client connects"));
    }
    conns
}

#[tokio::test]
async fn the_client_list_of_a_fleet_is_paged_on_the_server_and_timed() {
    let external = std::env::var_os("ROOST_DASHBOARD_FLEET").map(|b| b.to_string_lossy().into_owned());
    let (base, key, min, _local) = match external.clone() {
        Some(base) => {
            let key =
                std::env::var("ROOST_DASHBOARD_FLEET_KEY").expect("ROOST_DASHBOARD_FLEET_KEY: the gateway's API key");
            let min = std::env::var("ROOST_DASHBOARD_FLEET_MIN").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
            (base, key, min, None)
        }
        None => {
            let broker = TestBroker::start_with(&format!("[http]\napi_keys = [\"{KEY}\"]\n")).await;
            let conns = fleet(&broker, SMALL_FLEET).await;
            (format!("http://{}/", broker.http_addr()), KEY.to_string(), SMALL_FLEET as u64, Some((broker, conns)))
        }
    };
    let mut b = Browser::launch().await;
    b.goto(&format!("{base}#/overview?key={key}")).await;
    b.wait_for("the overview", "document.body.dataset.page === 'overview' && document.body.dataset.loaded").await;
    let mut shown = Vec::new();
    let mut api = Vec::new();
    for _ in 0..RUNS {
        b.eval("location.hash = '#/overview'").await;
        b.wait_for("the overview", "document.body.dataset.page === 'overview' && document.body.dataset.loaded").await;
        // Timed in the page: from the route change to the first page's rows in the table.
        let r = b
            .eval(
                "new Promise((done) => { const t0 = performance.now(); location.hash = '#/clients';
                   const check = () => { const rows = document.querySelectorAll('tr.client').length;
                     if (document.body.dataset.page === 'clients' && document.body.dataset.loaded && rows) {
                       const pager = document.querySelector('#main .row .muted').textContent;
                       done([performance.now() - t0, rows, pager]); } else requestAnimationFrame(check); };
                   check(); })",
            )
            .await;
        let pager = r[2].as_str().unwrap_or_default().to_string();
        // "page 1 of 200 · 10000 clients · 12 ms"
        let count: u64 =
            pager.split(" · ").nth(1).and_then(|c| c.split(' ').next()).and_then(|c| c.parse().ok()).unwrap_or(0);
        assert!(count >= min, "the list holds {count} clients, fewer than {min}: {pager}");
        assert_eq!(r[1].as_u64(), Some(50), "a page of 50 rows");
        let ms: f64 =
            pager.rsplit(" · ").next().and_then(|m| m.trim_end_matches(" ms").parse().ok()).unwrap_or(f64::NAN);
        shown.push(r[0].as_f64().unwrap_or(f64::NAN));
        api.push(ms);
    }
    let (s, a) = (summary(&mut shown), summary(&mut api));
    eprintln!(
        "first page shown (ms): min {:.0} median {:.0} p90 {:.0} max {:.0} ({RUNS} runs)",
        s[0], s[1], s[2], s[3]
    );
    eprintln!("its /clients call (ms): min {:.0} median {:.0} p90 {:.0} max {:.0}", a[0], a[1], a[2], a[3]);
    if external.is_some() {
        assert!(s[1] < 200.0, "the median first page took {:.0} ms", s[1]);
    }
}

/// min, median, p90, max.
fn summary(v: &mut [f64]) -> [f64; 4] {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    [at(0.0), at(0.5), at(0.9), at(1.0)]
}
