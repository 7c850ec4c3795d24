//! `/api/v1/cluster`: this node's view of the cluster (nodes, their state and addresses,
//! route and session counts, forwarding counters, degraded state). Without `[cluster]` it
//! answers `{"enabled": false}`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use roost_cluster::{Cluster, ClusterStatus};
use serde_json::{Value, json};

/// The route, with its state applied (merged by `gateway` under `/api/v1`).
pub fn routes(cluster: Option<Cluster>) -> Router {
    Router::new().route("/cluster", get(show)).with_state(cluster)
}

async fn show(State(cluster): State<Option<Cluster>>) -> Response {
    match cluster {
        None => Json(json!({ "enabled": false })).into_response(),
        Some(c) => Json(view(&c.status())).into_response(),
    }
}

/// The status as JSON (also what `$SYS/brokers/{node}/cluster` carries).
pub fn view(s: &ClusterStatus) -> Value {
    let nodes: Vec<Value> = s
        .nodes
        .iter()
        .map(|n| {
            let info: Value = serde_json::from_str(&n.info).unwrap_or(Value::Null);
            json!({
                "name": n.name,
                "state": if n.name == s.node { "self" } else if n.alive { "up" } else { "down" },
                "last_seen_ms": n.last_seen_ms,
                "addresses": info.get("addresses").cloned().unwrap_or(Value::Null),
                "sessions": info.get("sessions").cloned().unwrap_or(Value::Null),
                "connections": info.get("connections").cloned().unwrap_or(Value::Null),
                "routes": info.get("routes").cloned().unwrap_or(Value::Null),
                "started": info.get("started").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({
        "enabled": true,
        "node": s.node,
        "state": if s.degraded { "degraded" } else { "up" },
        "degraded": s.degraded,
        "nodes": nodes,
        "routes": { "local": s.local_routes, "remote": s.remote_routes },
        "buffer": { "depth": s.buffered, "capacity": s.buffer_capacity },
        "messages": { "out": s.messages_out, "in": s.messages_in, "dropped": s.dropped, "bad_frames": s.bad_frames },
        "takeovers": s.takeovers,
        "handoffs": s.handoffs,
        "reconnects": s.reconnects,
        "nats_rtt_us": s.rtt_micros,
        "persistent_sessions": {
            "known": s.persistent_sessions,
            "consuming": s.session_consumers,
            "stored": s.stored,
            "store_failures": s.store_failures,
            "delivered_in": s.session_in,
            "resumed": s.resumed,
        },
    })
}
