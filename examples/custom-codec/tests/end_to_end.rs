//! The example codec end to end, as its user would check it: the gateway in-process with
//! the `kv` codec registered, a device over real TCP, an MQTT client (rumqttc) subscribed.
#![allow(clippy::expect_used, clippy::panic)] // test support: a failed expectation is the test failing

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn kv_device_to_mqtt_and_back() {
    let mut settings = roost::config::parse(
        r#"
        mqtt.bind = ["127.0.0.1:0"]
        mqttsn.bind = []
        coap.bind = []
        http.bind = []
        storage.backend = "memory"
        [[codec]]
        name = "boilers"
        codec = "kv"
        bind = "127.0.0.1:0"
        options = { prefix = "plant" }
        "#,
    )
    .expect("config");
    settings.mqtt.bind = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    settings.lorawan.bind = Vec::new();
    let mut codecs = roost::codec::Registry::default();
    roost_example_kv::register(&mut codecs);
    let gateway = roost::gateway::start_with(settings, codecs).await.expect("gateway starts");
    let mqtt = gateway.mqtt_addrs()[0];
    let kv = gateway.codec_addr("boilers").expect("kv listener");

    let mut options = MqttOptions::new("app", mqtt.ip().to_string(), mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 16);
    client.subscribe("plant/#", QoS::AtLeastOnce).await.expect("subscribe");
    let mut next_packet = async || loop {
        match timeout(WAIT, events.poll()).await {
            Ok(Ok(Event::Incoming(p))) => return p,
            Ok(Ok(Event::Outgoing(_))) => {}
            other => panic!("mqtt: {other:?}"),
        }
    };
    while !matches!(next_packet().await, Packet::SubAck(_)) {}

    let stream = TcpStream::connect(kv).await.expect("device connects");
    let (r, mut w) = stream.into_split();
    let mut device = BufReader::new(r).lines();
    w.write_all(b"boiler-7 temp=61.5 pressure=1.9\n").await.expect("write");
    let mut got = Vec::new();
    while got.len() < 2 {
        if let Packet::Publish(p) = next_packet().await {
            got.push((p.topic, String::from_utf8_lossy(&p.payload).into_owned()));
        }
    }
    assert_eq!(
        got,
        [("plant/boiler-7/temp".to_string(), "61.5".to_string()), ("plant/boiler-7/pressure".into(), "1.9".into())]
    );

    client.publish("plant/boiler-7/set", QoS::AtLeastOnce, false, "burner=off").await.expect("publish");
    let line = timeout(WAIT, async {
        loop {
            tokio::select! {
                l = device.next_line() => return l,
                _ = events.poll() => {}
            }
        }
    })
    .await;
    assert_eq!(line.expect("in time").expect("read").as_deref(), Some("SET burner=off"));
    gateway.shutdown(WAIT).await;
}
