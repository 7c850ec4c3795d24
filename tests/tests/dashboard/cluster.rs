//! The dashboard of a clustered gateway (two `roost` processes over a real `nats-server`):
//! the Overview and Operations pages list the nodes with their state, addresses and counts;
//! a node that dies shows as down, and the node that loses NATS shows itself degraded.

use std::path::PathBuf;

use roost_e2e::cluster::{API_KEY, TestCluster};
use roost_e2e::mqtt5::Client5;
use serde_json::json;

use super::cdp::Browser;
use super::open;

#[tokio::test]
async fn the_dashboard_lists_the_cluster_nodes_and_their_state() {
    let mut c = TestCluster::start(&["edge-a", "edge-b"]).await;
    let a = c.node("edge-a");
    let _client = Client5::connect(c.node("edge-b").mqtt, "on-b").await;
    let base = format!("http://{}/", a.http);
    let mut b = Browser::launch().await;
    b.goto(&format!("{base}#/overview?key={API_KEY}")).await;
    b.wait_for("the overview", "document.body.dataset.page === 'overview' && document.body.dataset.loaded").await;
    let nodes = b
        .wait_for(
            "both nodes listed",
            "!document.getElementById('cluster').hidden && document.querySelectorAll('#cluster tr.node').length === 2
             && Object.fromEntries([...document.querySelectorAll('#cluster tr.node')].map(r => [r.dataset.node, r.dataset.state]))",
        )
        .await;
    assert_eq!(nodes, json!({ "edge-a": "self", "edge-b": "up" }));
    let row = b.wait_for(
        "edge-b's address and connection",
        "(() => { const r = document.querySelector('#cluster tr.node[data-node=\"edge-b\"]'); return r.textContent.includes('mqtt/tcp://') && r.children[3].textContent === '1' && r.textContent; })()",
    )
    .await;
    eprintln!("edge-b as listed: {row}");
    shots(&mut b, "cluster").await;
    open(&mut b, "operations").await;
    b.wait_for("the cluster on Operations", "document.querySelectorAll('.cluster tr.node').length === 2").await;

    // A node dies: the other shows it down.
    let dead = c.nodes.remove(1);
    dead.kill().await;
    open(&mut b, "overview").await;
    b.wait_for(
        "edge-b down",
        "document.querySelector('#cluster tr.node[data-node=\"edge-b\"]').dataset.state === 'down'",
    )
    .await;
    // NATS goes: edge-a reports itself degraded.
    c.nats.stop().await;
    b.wait_for("edge-a degraded", "document.getElementById('cluster').innerText.includes('degraded')").await;
    shots(&mut b, "cluster-degraded").await;
}

/// The overview at both sizes: nothing overflows; PNGs to `ROOST_DASHBOARD_SHOTS` if set.
async fn shots(b: &mut Browser, name: &str) {
    let dir = std::env::var_os("ROOST_DASHBOARD_SHOTS").map(PathBuf::from);
    for (size, w, h, mobile) in [("desktop", 1280, 800, false), ("phone", 390, 844, true)] {
        b.viewport(w, h, mobile).await;
        let over = b.overflow_x().await;
        assert_eq!(over, 0, "the {name} overview at {w}x{h} is {over} px wider than the screen");
        if let Some(dir) = &dir {
            b.screenshot(&dir.join(format!("overview-{name}-{size}.png"))).await;
        }
    }
    b.viewport(1280, 800, false).await;
}
