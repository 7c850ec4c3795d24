//! LwM2M end to end: a simulated device (tests/src/lwm2m.rs, raw CoAP) registers with the
//! gateway's registration interface; an MQTT application (rumqttc) manages it with
//! EMQX-compatible JSON commands and reads the results, notifications and events.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use coap_lite::{CoapOption, MessageClass, RequestType, ResponseType};
use roost::core::auth::{AuthDecision, Authenticator, BoxFuture, Credentials};
use roost_e2e::lwm2m::Device;
use roost_e2e::mqtt5::Client5;
use roost_e2e::{QUIET, TestBroker, WAIT};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use serde_json::{Value as Json, json};

async fn app(broker: &TestBroker, id: &str) -> Client5 {
    let mut c = Client5::connect(broker.addr(), id).await;
    c.subscribe("lwm2m/+/up/#", QoS::AtLeastOnce).await;
    c
}

/// The next publish: its topic and JSON.
async fn next(c: &mut Client5) -> (String, Json) {
    let p = c.expect_publish(WAIT).await;
    (String::from_utf8(p.topic.to_vec()).unwrap(), serde_json::from_slice(&p.payload).unwrap())
}

async fn command(c: &mut Client5, ep: &str, j: Json) {
    c.publish(&format!("lwm2m/{ep}/dn/cmd"), QoS::AtLeastOnce, false, j.to_string()).await;
}

#[tokio::test]
async fn register_then_every_command_round_trips() {
    let broker = TestBroker::start().await;
    let mut app = app(&broker, "app").await;
    let mut dev = Device::new(broker.lwm2m_addr()).await;
    let r = dev.register("sim-1", 300, "U").await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Created));
    assert_eq!(dev.location[0], "rd");
    let (topic, ev) = next(&mut app).await;
    assert_eq!(topic, "lwm2m/sim-1/up/resp");
    assert_eq!(ev["msgType"], "register");
    assert_eq!(ev["data"]["ep"], "sim-1");
    assert_eq!(ev["data"]["lt"], 300);
    assert_eq!(ev["data"]["lwm2m"], "1.1");
    assert_eq!(ev["data"]["b"], "U");
    assert_eq!(ev["data"]["objectList"], json!(["/1/0", "/3/0", "/3303/0", "/5"]));

    // Read.
    command(&mut app, "sim-1", json!({"reqID": 1, "msgType": "read", "data": {"path": "/3/0/0"}})).await;
    let req = dev.serve_one().await;
    assert_eq!(req.header.code, MessageClass::Request(RequestType::Get));
    let (topic, r) = next(&mut app).await;
    assert_eq!(topic, "lwm2m/sim-1/up/resp");
    assert_eq!(
        r,
        json!({"reqID": 1, "msgType": "read", "data": {"reqPath": "/3/0/0", "code": "2.05", "codeMsg": "content", "content": [{"path": "/3/0/0", "value": "Roost Sim"}]}})
    );

    // Write (replace a single resource), then read it back.
    command(
        &mut app,
        "sim-1",
        json!({"reqID": 2, "msgType": "write", "data": {"path": "/3/0/1", "type": "String", "value": "Model 8"}}),
    )
    .await;
    let req = dev.serve_one().await;
    assert_eq!((req.header.code, &req.payload[..]), (MessageClass::Request(RequestType::Put), &b"Model 8"[..]));
    assert_eq!(
        next(&mut app).await.1,
        json!({"reqID": 2, "msgType": "write", "data": {"reqPath": "/3/0/1", "code": "2.04", "codeMsg": "changed"}})
    );
    assert_eq!(dev.values["/3/0/1"], "Model 8");

    // Execute with arguments.
    command(
        &mut app,
        "sim-1",
        json!({"reqID": 3, "msgType": "execute", "data": {"path": "/3/0/4", "args": "0='reboot'"}}),
    )
    .await;
    let req = dev.serve_one().await;
    assert_eq!((req.header.code, &req.payload[..]), (MessageClass::Request(RequestType::Post), &b"0='reboot'"[..]));
    assert_eq!(next(&mut app).await.1["data"], json!({"reqPath": "/3/0/4", "code": "2.04", "codeMsg": "changed"}));

    // Discover: the links as strings.
    command(&mut app, "sim-1", json!({"reqID": 4, "msgType": "discover", "data": {"path": "/3/0"}})).await;
    dev.serve_one().await;
    let r = next(&mut app).await.1;
    assert_eq!((r["msgType"].clone(), r["data"]["code"].clone()), (json!("discover"), json!("2.05")));
    assert_eq!(r["data"]["content"], json!(["</3/0>;pmin=10", "</3/0/0>", "</3/0/1>"]));

    // Write-Attributes: in the query.
    command(&mut app, "sim-1", json!({"reqID": 5, "msgType": "write-attr", "data": {"path": "/3303/0/5700", "pmin": "5", "pmax": 60, "gt": 30.5}})).await;
    let req = dev.serve_one().await;
    let q: Vec<String> =
        req.get_option(CoapOption::UriQuery).unwrap().iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
    assert_eq!(q, ["pmin=5", "pmax=60", "gt=30.5"]);
    assert_eq!(next(&mut app).await.1["data"]["code"], "2.04");

    // Create an instance, then delete it.
    command(&mut app, "sim-1", json!({"reqID": 6, "msgType": "create", "data": {"basePath": "/5", "content": [{"path": "1", "type": "String", "value": "coap://fw"}]}})).await;
    let req = dev.serve_one().await;
    assert_eq!(req.header.code, MessageClass::Request(RequestType::Post));
    let r = next(&mut app).await.1;
    assert_eq!(
        r,
        json!({"reqID": 6, "msgType": "create", "data": {"reqPath": "/5", "code": "2.01", "codeMsg": "created"}})
    );
    command(&mut app, "sim-1", json!({"reqID": 7, "msgType": "delete", "data": {"path": "/5/0"}})).await;
    assert_eq!(dev.serve_one().await.header.code, MessageClass::Request(RequestType::Delete));
    assert_eq!(next(&mut app).await.1["data"], json!({"reqPath": "/5/0", "code": "2.02", "codeMsg": "deleted"}));

    // Observe, two notifications, cancel.
    command(&mut app, "sim-1", json!({"reqID": 8, "msgType": "observe", "data": {"path": "/3303/0/5700"}})).await;
    dev.serve_one().await;
    let r = next(&mut app).await.1;
    assert_eq!(
        (r["msgType"].clone(), r["data"]["content"][0]["value"].clone()),
        (json!("observe"), json!(21.5)),
        "a Float by the object definition"
    );
    dev.notify("/3303/0/5700", "22.0").await;
    let (topic, n) = next(&mut app).await;
    assert_eq!(topic, "lwm2m/sim-1/up/notify");
    assert_eq!(
        n,
        json!({"reqID": 8, "msgType": "notify", "seqNum": 2, "data": {"reqPath": "/3303/0/5700", "code": "2.05", "codeMsg": "content", "content": [{"path": "/3303/0/5700", "value": 22.0}]}})
    );
    dev.notify("/3303/0/5700", "22.5").await;
    assert_eq!(next(&mut app).await.1["seqNum"], 3);
    command(&mut app, "sim-1", json!({"reqID": 9, "msgType": "cancel-observe", "data": {"path": "/3303/0/5700"}}))
        .await;
    let req = dev.serve_one().await;
    assert_eq!(req.get_option(CoapOption::Observe).unwrap().front().cloned(), Some(vec![1]));
    assert_eq!(next(&mut app).await.1["msgType"], "cancel-observe");

    // Update with an object list is published; de-register too.
    let r = dev.update(&["lt=600".into()], "</1/0>,</3/0>").await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Changed));
    let (topic, u) = next(&mut app).await;
    assert_eq!(
        (topic.as_str(), u["msgType"].clone(), u["data"]["lt"].clone()),
        ("lwm2m/sim-1/up/update", json!("update"), json!(600))
    );
    assert_eq!(u["data"]["objectList"], json!(["/1/0", "/3/0"]));
    let r = dev.deregister().await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Deleted));
    let (_, d) = next(&mut app).await;
    assert_eq!(d, json!({"msgType": "deregister", "data": {"ep": "sim-1", "reason": "deregister"}}));
    assert_eq!(broker.lwm2m_counters().devices.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test]
async fn bad_registrations_and_unknown_locations_get_coap_errors() {
    let broker = TestBroker::start_with("[lwm2m]\nlifetime_min = \"30s\"\n").await;
    let mut dev = Device::new(broker.lwm2m_addr()).await;
    let r = dev.request(RequestType::Post, &["rd"], &["lt=60".into()], "</3/0>").await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::BadRequest), "no ep");
    let r = dev.register("short", 10, "U").await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::BadRequest), "lt below lifetime_min");
    let r = dev.request(RequestType::Post, &["rd", "nope"], &[], "").await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::NotFound));
    let r = dev.request(RequestType::Delete, &["rd", "nope"], &[], "").await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::NotFound));
}

#[tokio::test]
async fn lifetime_expiry_is_published() {
    let broker = TestBroker::start_with("[lwm2m]\nlifetime_min = \"1s\"\n").await;
    let mut app = app(&broker, "app").await;
    let mut dev = Device::new(broker.lwm2m_addr()).await;
    dev.register("brief", 1, "U").await;
    assert_eq!(next(&mut app).await.1["msgType"], "register");
    // Lifetime 1 s: the expiry comes without anything from the device.
    let (topic, d) = next(&mut app).await;
    assert_eq!(topic, "lwm2m/brief/up/resp");
    assert_eq!(d, json!({"msgType": "deregister", "data": {"ep": "brief", "reason": "expired"}}));
    // The registration is gone: an Update is 4.04.
    let r = dev.update(&[], "").await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::NotFound));
}

#[tokio::test]
async fn queue_mode_commands_wait_for_the_next_update() {
    let broker = TestBroker::start_with("[lwm2m]\nqmode_time_window = \"50ms\"\n").await;
    let mut app = app(&broker, "app").await;
    let mut dev = Device::new(broker.lwm2m_addr()).await;
    dev.register("sleepy", 300, "UQ").await;
    assert_eq!(next(&mut app).await.1["data"]["b"], "UQ");
    // Nothing for the device yet; watching for QUIET (300 ms) also lets its 50 ms window pass.
    assert!(dev.next_request(QUIET).await.is_none());
    command(&mut app, "sleepy", json!({"reqID": 11, "msgType": "read", "data": {"path": "/3/0/0"}})).await;
    command(&mut app, "sleepy", json!({"reqID": 12, "msgType": "read", "data": {"path": "/3/0/1"}})).await;
    // Asleep: nothing is sent (absence, watched for a bounded time).
    let early = dev.next_request(QUIET).await;
    assert!(early.is_none(), "{early:?}");
    let r = dev.update(&[], "").await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Changed));
    // Now both go, in order, and their results reach up/resp.
    assert_eq!(dev.serve_one().await.get_option(CoapOption::UriPath).unwrap().back().cloned(), Some(b"0".to_vec()));
    assert_eq!(next(&mut app).await.1["reqID"], 11);
    assert_eq!(dev.serve_one().await.get_option(CoapOption::UriPath).unwrap().back().cloned(), Some(b"1".to_vec()));
    let r = next(&mut app).await.1;
    assert_eq!((r["reqID"].clone(), r["data"]["content"][0]["value"].clone()), (json!(12), json!("Model 7")));
}

#[tokio::test]
async fn bad_commands_payloads_and_silent_devices_are_answered() {
    let broker = TestBroker::start_with("[lwm2m]\nack_timeout = \"100ms\"\nmax_retransmit = 1\n").await;
    let mut app = app(&broker, "app").await;
    let mut dev = Device::new(broker.lwm2m_addr()).await;
    dev.register("faulty", 300, "U").await;
    next(&mut app).await;
    // Not JSON, an unknown msgType, a bad path: answered at once with 4.00.
    app.publish("lwm2m/faulty/dn/cmd", QoS::AtLeastOnce, false, "{nope").await;
    assert_eq!(next(&mut app).await.1["data"]["code"], "4.00");
    command(&mut app, "faulty", json!({"reqID": 1, "msgType": "fly", "data": {"path": "/3/0/0"}})).await;
    let r = next(&mut app).await.1;
    assert_eq!((r["reqID"].clone(), r["data"]["code"].clone()), (json!(1), json!("4.00")));
    command(
        &mut app,
        "faulty",
        json!({"reqID": 2, "msgType": "write", "data": {"path": "/3/0/1", "type": "Integer", "value": "many"}}),
    )
    .await;
    assert_eq!(next(&mut app).await.1["data"]["code"], "4.00");
    // A malformed TLV payload from the device: an error result, not a panic.
    command(&mut app, "faulty", json!({"reqID": 3, "msgType": "read", "data": {"path": "/3/0"}})).await;
    let req = dev.next_request(WAIT).await.unwrap();
    dev.answer(&req, ResponseType::Content, Some(11542), &[0xff, 0x00], None).await;
    let r = next(&mut app).await.1;
    assert_eq!((r["reqID"].clone(), r["data"]["code"].clone()), (json!(3), json!("decode_error")));
    // A device that never answers: coap_timeout after the retransmissions.
    command(&mut app, "faulty", json!({"reqID": 4, "msgType": "read", "data": {"path": "/3/0/0"}})).await;
    let r = next(&mut app).await.1;
    assert_eq!(
        r,
        json!({"reqID": 4, "msgType": "read", "data": {"reqPath": "/3/0/0", "code": "coap_timeout", "codeMsg": "coap_timeout"}})
    );
    // And the gateway still serves it.
    command(&mut app, "faulty", json!({"reqID": 5, "msgType": "read", "data": {"path": "/3/0/0"}})).await;
    // (The socket still holds the unanswered request 4 and its retransmission.)
    let silent = dev.next_request(WAIT).await.unwrap();
    let req = loop {
        let r = dev.next_request(WAIT).await.unwrap();
        if r.get_token() != silent.get_token() {
            break r;
        }
    };
    dev.answer(&req, ResponseType::Content, Some(0), b"ok", None).await;
    let r = next(&mut app).await.1;
    assert_eq!((r["reqID"].clone(), r["data"]["code"].clone()), (json!(5), json!("2.05")));
}

#[tokio::test]
async fn a_v5_response_topic_gets_the_result_with_its_correlation_data() {
    let broker = TestBroker::start().await;
    let mut app = Client5::connect(broker.addr(), "app5").await;
    app.subscribe("replies/#", QoS::AtLeastOnce).await;
    let mut dev = Device::new(broker.lwm2m_addr()).await;
    dev.register("v5dev", 300, "U").await;
    let props = PublishProperties {
        response_topic: Some("replies/app5".into()),
        correlation_data: Some(Bytes::from_static(b"corr-42")),
        ..Default::default()
    };
    let cmd = json!({"reqID": 1, "msgType": "read", "data": {"path": "/3/0/0"}}).to_string();
    app.publish_with("lwm2m/v5dev/dn/cmd", QoS::AtLeastOnce, false, cmd, Some(props)).await;
    dev.serve_one().await;
    let p = app.expect_publish(WAIT).await;
    assert_eq!(&p.topic[..], b"replies/app5");
    assert_eq!(p.properties.and_then(|p| p.correlation_data), Some(Bytes::from_static(b"corr-42")));
    let r: Json = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(r["data"]["content"][0]["value"], "Roost Sim");
}

#[tokio::test]
async fn reregistering_takes_the_endpoint_over() {
    let broker = TestBroker::start().await;
    let mut app = app(&broker, "app").await;
    let mut a = Device::new(broker.lwm2m_addr()).await;
    a.register("twice", 300, "U").await;
    next(&mut app).await;
    let mut b = Device::new(broker.lwm2m_addr()).await;
    b.register("twice", 300, "U").await;
    assert_eq!(next(&mut app).await.1["msgType"], "register");
    assert_ne!(a.location, b.location);
    // Commands go to the new address.
    command(&mut app, "twice", json!({"reqID": 1, "msgType": "read", "data": {"path": "/3/0/0"}})).await;
    b.serve_one().await;
    assert_eq!(next(&mut app).await.1["data"]["code"], "2.05");
    assert!(a.next_request(QUIET).await.is_none());
}

#[tokio::test]
async fn bootstrap_then_register() {
    let config = "[lwm2m.bootstrap]\nenable = true\nserver_uri = \"coap://127.0.0.1:5783\"\npsk_identity = \"boot-id\"\npsk_key = \"boot-key\"\n";
    let broker = TestBroker::start_with(config).await;
    let mut app = app(&broker, "app").await;
    let mut dev = Device::new(broker.lwm2m_addr()).await;
    let r = dev.request(RequestType::Post, &["bs"], &["ep=fresh".into()], "").await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Changed));
    let mut steps = Vec::new();
    let mut security = Vec::new();
    for _ in 0..5 {
        let req = dev.serve_one().await;
        let path: Vec<String> = roost_coap::codec::uri_path(&req).unwrap();
        if path == ["0", "1"] {
            security = req.payload.clone();
        }
        steps.push(format!("{:?} /{}", req.header.code, path.join("/")));
    }
    assert_eq!(
        steps,
        ["Request(Delete) /0", "Request(Delete) /1", "Request(Put) /0/1", "Request(Put) /1/0", "Request(Post) /bs"]
    );
    // The Security object instance, in TLV.
    let registry = roost_lwm2m::objects::Registry::builtin();
    let records =
        roost_lwm2m::content::decode(11542, "/0/1".parse().unwrap(), &security, &|p| registry.kind(p)).unwrap();
    let uri = records.iter().find(|r| r.path.to_string() == "/0/1/0").map(|r| r.value.clone());
    assert_eq!(uri, Some(roost_lwm2m::types::Value::String("coap://127.0.0.1:5783".into())));
    // Provisioned, it registers as usual.
    assert_eq!(dev.register("fresh", 300, "U").await.header.code, MessageClass::Response(ResponseType::Created));
    assert_eq!(next(&mut app).await.1["msgType"], "register");
}

/// Runs libcoap's `coap-client-openssl` (bounded) and returns what it printed.
async fn coap_client_openssl(args: Vec<String>) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("coap-client-openssl").args(&args).kill_on_drop(true).output(),
    )
    .await
    .expect("coap-client-openssl finished within 30 s")
    .expect("coap-client-openssl runs (scripts/test installs libcoap3-bin)");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn a_listed_endpoint_is_bootstrapped_with_its_own_psk_and_registers_over_dtls_with_it() {
    let config = "[lwm2m]\ndtls_bind = [\"127.0.0.1:0\"]\n[lwm2m.bootstrap]\nenable = true\nserver_uri = \"coaps://127.0.0.1:5784\"\nonly_listed = true\n\
        [[lwm2m.bootstrap.device]]\nendpoint = \"meter-1\"\npsk_identity = \"id-meter-1\"\npsk_key = \"key-meter-1\"\n";
    let broker = TestBroker::start_with(config).await;
    let mut app = app(&broker, "app").await;

    // An endpoint without bootstrap information is refused.
    let mut stranger = Device::new(broker.lwm2m_addr()).await;
    let r = stranger.request(RequestType::Post, &["bs"], &["ep=stranger".into()], "").await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::BadRequest));
    assert!(stranger.next_request(QUIET).await.is_none(), "nothing provisioned");

    // meter-1 gets its own PSK in its Security object.
    let mut dev = Device::new(broker.lwm2m_addr()).await;
    let r = dev.request(RequestType::Post, &["bs"], &["ep=meter-1".into()], "").await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Changed));
    let mut security = None;
    for _ in 0..5 {
        let req = dev.serve_one().await;
        if roost_coap::codec::uri_path(&req).unwrap() == ["0", "1"] {
            security = Some(req.payload.clone());
        }
    }
    let registry = roost_lwm2m::objects::Registry::builtin();
    let records =
        roost_lwm2m::content::decode(11542, "/0/1".parse().unwrap(), &security.unwrap(), &|p| registry.kind(p))
            .unwrap();
    let value = |p: &str| records.iter().find(|r| r.path.to_string() == p).map(|r| r.value.clone());
    use roost_lwm2m::types::Value;
    let (Some(Value::Opaque(id)), Some(Value::Opaque(key))) = (value("/0/1/3"), value("/0/1/5")) else {
        panic!("no PSK in {records:?}")
    };

    // With what it was given, it registers over DTLS; its core client's username is its endpoint.
    let url = format!("coaps://{}/rd?ep=meter-1&lt=60&lwm2m=1.1&b=U", broker.lwm2ms_addr());
    let (id, key) = (String::from_utf8(id).unwrap(), String::from_utf8(key).unwrap());
    let out = coap_client_openssl(
        ["-m", "post", "-t", "40", "-e", "</3/0>", "-u", &id, "-k", &key, &url].map(String::from).to_vec(),
    )
    .await;
    let (topic, ev) = next(&mut app).await;
    assert_eq!((topic.as_str(), ev["msgType"].as_str()), ("lwm2m/meter-1/up/resp", Some("register")), "{ev}\n{out}");
    let (status, client) = broker.api().get("/api/v1/clients/meter-1").await;
    assert_eq!((status, client["username"].as_str()), (200, Some("meter-1")), "{client}");

    // Its endpoint name and its PSK go together: not over plain UDP, not under another name.
    let mut impostor = Device::new(broker.lwm2m_addr()).await;
    assert_eq!(
        impostor.register("meter-1", 300, "U").await.header.code,
        MessageClass::Response(ResponseType::Forbidden)
    );
    let url = format!("coaps://{}/rd?ep=meter-2&lt=60&lwm2m=1.1&b=U", broker.lwm2ms_addr());
    coap_client_openssl(
        ["-m", "post", "-t", "40", "-e", "</3/0>", "-u", &id, "-k", &key, &url].map(String::from).to_vec(),
    )
    .await;
    app.assert_no_publish(QUIET).await;
    assert_eq!(broker.lwm2m_counters().refused.load(std::sync::atomic::Ordering::Relaxed), 2);
    let (status, _) = broker.api().get("/api/v1/clients/meter-2").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn auto_observe_on_registration() {
    let broker =
        TestBroker::start_with("[lwm2m]\nauto_observe = \"/3303/0/5700\"\nupdate_msg_publish_condition = \"always\"\n")
            .await;
    let mut app = app(&broker, "app").await;
    let mut dev = Device::new(broker.lwm2m_addr()).await;
    dev.register("auto", 300, "U").await;
    assert_eq!(next(&mut app).await.1["msgType"], "register");
    let req = dev.serve_one().await;
    assert_eq!(req.get_option(CoapOption::Observe).unwrap().front().cloned(), Some(vec![]));
    let r = next(&mut app).await.1;
    assert_eq!((r["msgType"].clone(), r["data"]["reqPath"].clone()), (json!("observe"), json!("/3303/0/5700")));
    dev.notify("/3303/0/5700", "23.0").await;
    let (topic, n) = next(&mut app).await;
    assert_eq!((topic.as_str(), n["data"]["content"][0]["value"].clone()), ("lwm2m/auto/up/notify", json!(23.0)));
    // "always": an Update without an object list is published too.
    dev.update(&[], "").await;
    assert_eq!(next(&mut app).await.1["msgType"], "update");
}

#[tokio::test]
async fn a_registration_refused_by_auth_is_4_03() {
    let broker = TestBroker::start_with("[auth]\nallow_anonymous = false\n").await;
    let mut dev = Device::new(broker.lwm2m_addr()).await;
    let r = dev.register("nobody", 300, "U").await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Forbidden));
    assert_eq!(broker.lwm2m_counters().refused.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// Lets every client in, but holds `slow`'s authentication until the test opens the gate
/// (an HTTP auth backend that takes its time).
struct GatedAuth {
    gate: Arc<tokio::sync::Semaphore>,
    entered: Arc<tokio::sync::Notify>,
}

impl Authenticator for GatedAuth {
    fn authenticate<'a>(&'a self, creds: Credentials<'a>) -> BoxFuture<'a, AuthDecision> {
        Box::pin(async move {
            if creds.client.client_id.as_str() == "slow" {
                self.entered.notify_one();
                let _pass = self.gate.acquire().await;
            }
            AuthDecision::Allow
        })
    }
}

#[tokio::test]
async fn a_registration_waiting_for_auth_does_not_stall_other_devices() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let entered = Arc::new(tokio::sync::Notify::new());
    let auth = GatedAuth { gate: gate.clone(), entered: entered.clone() };
    let broker = TestBroker::start_custom("", |b| b.authenticator(Box::new(auth))).await;
    let mut app = app(&broker, "app").await;
    let mut fast = Device::new(broker.lwm2m_addr()).await;
    assert_eq!(fast.register("fast", 300, "U").await.header.code, MessageClass::Response(ResponseType::Created));
    assert_eq!(next(&mut app).await.1["msgType"], "register");

    // `slow` registers; its authentication hangs.
    let addr = broker.lwm2m_addr();
    let slow = tokio::spawn(async move {
        let mut d = Device::new(addr).await;
        d.register("slow", 300, "U").await
    });
    tokio::time::timeout(WAIT, entered.notified()).await.expect("the slow Register reaches authentication");

    // Meanwhile `fast` is managed as usual: a read round-trips.
    command(&mut app, "fast", json!({"reqID": 7, "msgType": "read", "data": {"path": "/3/0/0"}})).await;
    fast.serve_one().await;
    let (topic, r) = next(&mut app).await;
    assert_eq!(topic, "lwm2m/fast/up/resp");
    assert_eq!(r["data"]["code"], "2.05");
    assert!(!slow.is_finished(), "the slow Register was answered before its authentication finished");

    // Authentication returns: `slow` is registered.
    gate.add_permits(1);
    let r = slow.await.unwrap();
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Created));
    let (topic, ev) = next(&mut app).await;
    assert_eq!((topic.as_str(), &ev["msgType"]), ("lwm2m/slow/up/resp", &json!("register")));
}

#[tokio::test]
async fn api_lists_registered_devices_and_sends_commands() {
    let broker = TestBroker::start().await;
    let api = broker.api();
    let anon = roost_e2e::api::Api::anonymous(broker.http_addr());
    assert_eq!(anon.get("/api/v1/lwm2m/devices").await.0, 401);
    assert_eq!(
        anon.call("POST", "/api/v1/lwm2m/devices/api-1/commands", Some(&json!({"msgType": "read", "data": {}})))
            .await
            .0,
        401
    );
    let mut app = app(&broker, "app").await;
    let mut dev = Device::new(broker.lwm2m_addr()).await;
    dev.register("api-1", 300, "U").await;
    assert_eq!(next(&mut app).await.1["msgType"], "register");

    let (status, list) = api.get("/api/v1/lwm2m/devices").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["meta"]["count"], 1);
    let d = &list["data"][0];
    assert_eq!(
        (d["ep"].clone(), d["lt"].clone(), d["b"].clone(), d["queueMode"].clone()),
        (json!("api-1"), json!(300), json!("U"), json!(false))
    );
    assert_eq!(d["objectList"], json!(["/1/0", "/3/0", "/3303/0", "/5"]));
    assert_eq!(api.get("/api/v1/lwm2m/devices/api-1").await.1["registrationId"], d["registrationId"]);
    assert_eq!(api.get("/api/v1/lwm2m/devices/nobody").await.0, 404);

    // A command through the API: handed over (202), answered on the response topic.
    let cmd = json!({"reqID": 41, "msgType": "read", "data": {"path": "/3/0/0"}});
    let (status, r) = api.call("POST", "/api/v1/lwm2m/devices/api-1/commands", Some(&cmd)).await;
    assert_eq!((status, r["responseTopic"].as_str()), (202, Some("lwm2m/api-1/up/resp")), "{r}");
    dev.serve_one().await;
    let (topic, r) = next(&mut app).await;
    assert_eq!(topic, "lwm2m/api-1/up/resp");
    assert_eq!(r["reqID"], 41);
    assert_eq!(r["data"]["content"], json!([{"path": "/3/0/0", "value": "Roost Sim"}]));
    // Refusals: not a command object, an unknown device.
    assert_eq!(api.call("POST", "/api/v1/lwm2m/devices/api-1/commands", Some(&json!({"path": "/3"}))).await.0, 400);
    assert_eq!(api.call("POST", "/api/v1/lwm2m/devices/nobody/commands", Some(&cmd)).await.0, 404);

    // De-registered: gone from the list.
    dev.deregister().await;
    assert_eq!(next(&mut app).await.1["msgType"], "deregister");
    assert_eq!(api.get("/api/v1/lwm2m/devices").await.1["meta"]["count"], 0);
}

/// Interop with an independent LwM2M client, npm lwm2m-node-lib (Telefonica FIWARE, 1.0,
/// text values): it registers with Roost, an MQTT application reads, writes and executes on
/// it, and its de-registration is published.
#[tokio::test]
async fn lwm2m_node_lib_is_managed_from_mqtt() {
    use roost_e2e::lwm2m_peer::{line, spawn};
    let broker = TestBroker::start().await;
    let mut app = app(&broker, "app").await;
    let (mut child, mut lines) = spawn(broker.lwm2m_addr(), "node-1");
    let (topic, ev) = next(&mut app).await;
    assert_eq!((topic.as_str(), ev["msgType"].as_str()), ("lwm2m/node-1/up/resp", Some("register")), "{ev}");
    assert_eq!((ev["data"]["ep"].as_str(), ev["data"]["lt"].as_u64()), (Some("node-1"), Some(120)));
    assert_eq!(ev["data"]["objectList"], json!(["/1/0", "/3/0", "/3303/0"]));
    line(&mut lines, "registered").await;

    command(&mut app, "node-1", json!({"reqID": 1, "msgType": "read", "data": {"path": "/3303/0/5700"}})).await;
    let r = next(&mut app).await.1;
    assert_eq!(r["data"]["code"], "2.05", "{r}");
    assert_eq!(r["data"]["content"], json!([{"path": "/3303/0/5700", "value": 21.5}]));
    assert_eq!(line(&mut lines, "request").await, "request read /3303/0/5700 21.5");

    command(
        &mut app,
        "node-1",
        json!({"reqID": 2, "msgType": "write", "data": {"path": "/3303/0/5701", "type": "String", "value": "Far"}}),
    )
    .await;
    assert_eq!(
        next(&mut app).await.1["data"],
        json!({"reqPath": "/3303/0/5701", "code": "2.04", "codeMsg": "changed"})
    );
    assert_eq!(line(&mut lines, "request").await, "request write /3303/0/5701 Far");
    command(&mut app, "node-1", json!({"reqID": 3, "msgType": "read", "data": {"path": "/3/0/0"}})).await;
    assert_eq!(
        next(&mut app).await.1["data"]["content"],
        json!([{"path": "/3/0/0", "value": "Telefonica lwm2m-node-lib"}])
    );
    line(&mut lines, "request").await;
    command(&mut app, "node-1", json!({"reqID": 4, "msgType": "execute", "data": {"path": "/3/0/4"}})).await;
    assert_eq!(next(&mut app).await.1["data"]["code"], "2.04");
    assert_eq!(line(&mut lines, "request").await, "request execute /3/0/4");

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let (topic, ev) = next(&mut app).await;
    assert_eq!((topic.as_str(), ev["msgType"].as_str()), ("lwm2m/node-1/up/resp", Some("deregister")), "{ev}");
    line(&mut lines, "deregistered").await;
    tokio::time::timeout(WAIT, child.wait()).await.unwrap().unwrap();
}

/// LwM2M over DTLS (PSK from `[[coap.psk]]`): libcoap's `coap-client-openssl` registers
/// and de-registers through the DTLS socket (each call its own DTLS session, as a device
/// that sleeps between exchanges); a wrong key gets no registration.
#[tokio::test]
async fn registration_and_deregistration_over_dtls() {
    let config = "[lwm2m]\ndtls_bind = [\"127.0.0.1:0\"]\n[[coap.psk]]\nidentity = \"dev1\"\nkey = \"secret-key-1\"\nusername = \"user1\"\n";
    let broker = TestBroker::start_with(config).await;
    let mut app = app(&broker, "app").await;
    let base = format!("coaps://{}", broker.lwm2ms_addr());
    let coap_client = coap_client_openssl;
    let psk = |key: &str| ["-u", "dev1", "-k", key].map(String::from).to_vec();
    let register = |key: &str| {
        let url = format!("{base}/rd?ep=secure-1&lt=60&lwm2m=1.1&b=U");
        [["-m", "post", "-t", "40", "-e", "</3/0>", "-v", "7", url.as_str()].map(String::from).to_vec(), psk(key)]
            .concat()
    };
    // A wrong key: no session, no registration.
    coap_client(register("wrong-key")).await;
    assert_eq!(broker.lwm2m_counters().registrations.load(std::sync::atomic::Ordering::Relaxed), 0);
    app.assert_no_publish(QUIET).await;

    let out = coap_client(register("secret-key-1")).await;
    let (topic, ev) = next(&mut app).await;
    assert_eq!(
        (topic.as_str(), ev["msgType"].as_str(), ev["data"]["ep"].as_str()),
        ("lwm2m/secure-1/up/resp", Some("register"), Some("secure-1")),
        "{ev}"
    );
    assert_eq!(ev["data"]["objectList"], json!(["/3/0"]));
    // The core client carries the PSK identity's username (for auth and ACL %u).
    let (status, client) = broker.api().get("/api/v1/clients/secure-1").await;
    assert_eq!(
        (status, client["username"].as_str(), client["protocol"].as_str()),
        (200, Some("user1"), Some("lwm2m")),
        "{client}"
    );
    // The 2.01's Location-Path, from libcoap's verbose log: `Location-Path:rd, Location-Path:ID`.
    let id = out
        .split("Location-Path:")
        .nth(2)
        .and_then(|rest| rest.split([' ', ',', ']']).next())
        .unwrap_or_else(|| panic!("no Location-Path in the client's log:\n{out}"))
        .to_string();
    let url = format!("{base}/rd/{id}");
    coap_client([["-m", "delete", url.as_str()].map(String::from).to_vec(), psk("secret-key-1")].concat()).await;
    let (_, ev) = next(&mut app).await;
    assert_eq!((ev["msgType"].as_str(), ev["data"]["ep"].as_str()), (Some("deregister"), Some("secure-1")), "{ev}");
    assert!(broker.dtls_counters().handshakes_ok.load(std::sync::atomic::Ordering::Relaxed) >= 2);
}

/// With the protocol crate's own simulated device: block-wise writes, the 1.1 Send operation.
mod sim;

/// Block-wise transfers with 16-byte peers (issue 26).
mod blocks;
