//! `$SYS` as an administrator sees it: only the admin may subscribe (an `Authorizer`, the
//! seam the security config's ACL plugs into), and the statistics and client events follow
//! MQTT, MQTT-SN and CoAP clients as they come and go, naming their protocol.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use coap_lite::{RequestType, ResponseType};
use roost::core::ClientInfo;
use roost::core::auth::{Action, Authorizer};
use roost_e2e::coap::{Raw, code, resp};
use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::raw::{self, RawClient};
use roost_e2e::{TestBroker, WAIT};
use rumqttc::v5::mqttbytes::v5::{self, Filter};
use serde_json::Value;
use tokio::net::UdpSocket;

/// `$SYS/#` for the user `admin` only; everything else for everyone.
struct AdminOnlySys;

impl Authorizer for AdminOnlySys {
    fn check(&self, client: &ClientInfo, action: Action, topic: &str) -> bool {
        !(action == Action::Subscribe && topic.starts_with("$SYS")) || client.username.as_deref() == Some("admin")
    }
}

/// What the admin has seen: the latest value of every stats topic, and the events in order.
struct Watch {
    admin: Client5,
    values: HashMap<String, String>,
    events: Vec<(String, Value)>,
}

impl Watch {
    /// Reads `$SYS` until `done` holds (bounded).
    async fn until(&mut self, what: &str, done: impl Fn(&Watch) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "$SYS never showed {what}; values: {:?}; events: {:?}",
                self.values,
                self.events
            );
            let Some(p) = self.admin.recv_publish(WAIT).await else { continue };
            let topic = String::from_utf8_lossy(&p.topic).into_owned();
            let body = String::from_utf8_lossy(&p.payload).into_owned();
            let Some(rest) = topic.strip_prefix("$SYS/brokers/edge/") else { continue };
            if rest.starts_with("clients/") {
                self.events.push((rest.to_string(), serde_json::from_str(&body).unwrap()));
            } else {
                self.values.insert(rest.to_string(), body);
            }
        }
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    fn event(&self, topic: &str) -> Option<&Value> {
        self.events.iter().find(|(t, _)| t == topic).map(|(_, v)| v)
    }
}

async fn mqttsn(gw: SocketAddr, id: &str) -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut m = vec![0u8, 0x04, 0x04, 0x01, 0x00, 0x3c];
    m.extend_from_slice(id.as_bytes());
    m[0] = m.len() as u8;
    sock.send_to(&m, gw).await.unwrap();
    let mut buf = [0u8; 8];
    tokio::time::timeout(WAIT, sock.recv_from(&mut buf)).await.unwrap().unwrap();
    sock
}

#[tokio::test]
async fn admin_sees_sys_stats_and_events_follow_mqtt_mqttsn_and_coap_clients() {
    let broker = TestBroker::start_custom("[node]\nname = \"edge\"\nsys_interval = \"200ms\"\n", |b| {
        b.authorizer(Box::new(AdminOnlySys))
    })
    .await;

    // Anyone else is refused (SUBACK 0x87).
    let (mut nosy, _) = RawClient::connect_v5(broker.addr(), raw::connect_v5("nosy"), None).await;
    nosy.send_v5(&raw::subscribe_v5(1, Filter::new("$SYS/#", mqtt5::qos(0)), None)).await;
    match nosy.try_recv_v5(WAIT).await {
        Ok(v5::Packet::SubAck(ack)) => assert_eq!(ack.return_codes, [v5::SubscribeReasonCode::NotAuthorized]),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    drop(nosy);

    let mut o = Client5::options(broker.addr(), "admin-console");
    o.set_credentials("admin", "pw");
    let mut admin = Client5::connect_with(o).await;
    assert!(matches!(admin.subscribe("$SYS/#", mqtt5::qos(0)).await, v5::SubscribeReasonCode::Success(_)));
    let mut w = Watch { admin, values: HashMap::new(), events: Vec::new() };
    w.until("the admin alone connected", |w| {
        w.value("stats/connections/count") == Some("1")
            && w.value("stats/protocols/mqtt-sn/connections/count") == Some("0")
    })
    .await;

    // An MQTT, an MQTT-SN and a CoAP client come.
    let mut o = Client5::options(broker.addr(), "m-1");
    o.set_credentials("alice", "pw");
    let m1 = Client5::connect_with(o).await;
    let sn = mqttsn(broker.mqttsn_addr(), "sn-1").await;
    let coap = Raw::new(broker.coap_addr()).await;
    let r =
        coap.call(RequestType::Post, "mqtt/connection", &["clientid=co-1", "username=carol", "password=pw"], b"").await;
    assert_eq!(code(&r), resp(ResponseType::Created));
    let coap_token = format!("token={}", String::from_utf8(r.payload.clone()).unwrap());
    w.until("the three clients connected", |w| {
        w.value("stats/connections/count") == Some("4")
            && w.value("stats/protocols/mqtt/connections/count") == Some("2")
            && w.value("stats/protocols/mqtt-sn/connections/count") == Some("1")
            && w.value("stats/protocols/coap/connections/count") == Some("1")
            && w.event("clients/m-1/connected").is_some()
            && w.event("clients/sn-1/connected").is_some()
            && w.event("clients/co-1/connected").is_some()
    })
    .await;
    let e = w.event("clients/co-1/connected").unwrap();
    assert_eq!((e["protocol"].as_str(), e["username"].as_str()), (Some("coap"), Some("carol")), "{e}");
    let e = w.event("clients/m-1/connected").unwrap();
    assert_eq!((e["protocol"].as_str(), e["username"].as_str()), (Some("mqtt"), Some("alice")), "{e}");
    assert!(e["peer"].as_str().unwrap().starts_with("127.0.0.1:") && e["keep_alive"].is_u64(), "{e}");
    let e = w.event("clients/sn-1/connected").unwrap();
    assert_eq!((e["protocol"].as_str(), e["keep_alive"].as_u64()), (Some("mqtt-sn"), Some(60)), "{e}");
    assert_eq!(w.value("stats/sessions/count"), Some("4"));

    // And go.
    m1.disconnect().await;
    sn.send_to(&[2, 0x18], broker.mqttsn_addr()).await.unwrap();
    let r = coap.call(RequestType::Delete, "mqtt/connection", &["clientid=co-1", coap_token.as_str()], b"").await;
    assert_eq!(code(&r), resp(ResponseType::Deleted));
    w.until("the three clients gone", |w| {
        w.value("stats/connections/count") == Some("1")
            && w.value("stats/protocols/mqtt-sn/connections/count") == Some("0")
            && w.value("stats/protocols/coap/connections/count") == Some("0")
            && w.event("clients/m-1/disconnected").is_some()
            && w.event("clients/sn-1/disconnected").is_some()
            && w.event("clients/co-1/disconnected").is_some()
    })
    .await;
    assert_eq!(w.event("clients/co-1/disconnected").unwrap()["protocol"], "coap");
    let e = w.event("clients/sn-1/disconnected").unwrap();
    assert_eq!((e["protocol"].as_str(), e["reason"].as_str()), (Some("mqtt-sn"), Some("normal")), "{e}");
    assert_eq!(w.event("clients/m-1/disconnected").unwrap()["reason"], "normal");
    assert!(w.value("stats/connections/max").unwrap().parse::<u64>().unwrap() >= 4);
    broker.stop().await;
}
