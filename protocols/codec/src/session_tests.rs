//! Session layer tests: a [`Device`] driven directly, with the clock as a parameter.

use super::*;
use crate::registry::Options;
use crate::settings::{CodecLimits, Transport};
use roost_core::settings::BrokerSettings;

#[test]
fn mountpoint_goes_after_the_share_group() {
    assert_eq!(mount_filter("m/", "a/#"), "m/a/#");
    assert_eq!(mount_filter("m/", "$share/g/a/#"), "$share/g/m/a/#");
    assert_eq!(mount_filter("", "a"), "a");
}

/// Any datagram connects as `t` (keep alive 10 s) and starts timer 1 (2 s); the timer
/// publishes `tick` and restarts itself. Encodes answers as their Debug text.
struct Ticker;

impl Codec for Ticker {
    fn decode(&mut self, buf: &mut BytesMut, out: &mut Vec<Uplink>) -> Result<(), CodecError> {
        buf.clear();
        out.push(Uplink::Connect(ConnectFrame::new("t", 10)));
        out.push(Uplink::SetTimer { id: 1, after: Duration::from_secs(2) });
        Ok(())
    }

    fn encode(&mut self, frame: Downlink, out: &mut BytesMut) -> Result<(), CodecError> {
        out.extend_from_slice(format!("{frame:?}").as_bytes());
        Ok(())
    }

    fn on_timer(&mut self, id: u32, out: &mut Vec<Uplink>) -> Result<(), CodecError> {
        out.push(Uplink::Publish {
            id: 0,
            topic: format!("tick/{id}"),
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: false,
        });
        out.push(Uplink::SetTimer { id, after: Duration::from_secs(2) });
        Ok(())
    }
}

fn device(broker: &Broker, now: Instant) -> Device {
    let settings = CodecListenerSettings {
        name: "test".into(),
        codec: "ticker".into(),
        transport: Transport::Udp,
        bind: ([127, 0, 0, 1], 0).into(),
        options: Options::default(),
        mountpoint: "m/".into(),
        limits: CodecLimits::default(),
    };
    let listener = Arc::new(Listener {
        broker: broker.clone(),
        settings,
        factory: Arc::new(|| Ticker),
        protocol_name: "ticker".into(),
    });
    Device::new(listener, ([127, 0, 0, 1], 9).into(), now)
}

#[tokio::test]
async fn timers_and_keep_alive_run_on_the_given_clock() {
    let broker = Broker::new(BrokerSettings::default());
    let watcher = broker
        .connect(ConnectRequest {
            client_id: ClientId::new("w"),
            protocol: Protocol::Mqtt,
            peer: None,
            username: None,
            password: None,
            clean_start: true,
            keep_alive: 0,
            will: None,
            session_expiry: Some(Duration::ZERO),
            receive_maximum: 10,
        })
        .await
        .unwrap();
    watcher.subscribe("m/tick/#", SubOptions::default()).await.unwrap();

    let t0 = Instant::now();
    let mut d = device(&broker, t0);
    assert_eq!(d.deadline(), t0 + Duration::from_secs(10), "connect_timeout before connect");
    d.on_datagram(Bytes::from_static(b"x"), t0).await.unwrap();
    assert_eq!(d.connection().unwrap().info().protocol_name(), "ticker");
    assert_eq!(d.out.len(), 1, "ConnAck encoded");
    assert_eq!(d.deadline(), t0 + Duration::from_secs(2), "the codec's timer comes first");

    d.on_timeout(t0 + Duration::from_secs(2)).await.unwrap();
    let Some(Delivery::Publish { pending, .. }) = watcher.try_next_delivery() else { panic!("no tick") };
    assert_eq!(&*pending.message.topic, "m/tick/1", "timer frames are mounted like any other");
    assert_eq!(d.deadline(), t0 + Duration::from_secs(4), "restarted");

    // Keep alive 10 s: closed at 15 s without input, with a Disconnect encoded.
    for s in [4, 6, 8, 10, 12, 14] {
        d.on_timeout(t0 + Duration::from_secs(s)).await.unwrap();
    }
    d.out.clear();
    let close = d.on_timeout(t0 + Duration::from_secs(15)).await.unwrap_err();
    assert_eq!(close.reason, DisconnectReason::Abnormal);
    assert_eq!(d.out, [Bytes::from("Disconnect { reason: KeepAliveTimeout }")]);
    d.finish(&close).await;
    assert_eq!(broker.connection_count(), 1, "only the watcher is left");
}

#[tokio::test]
async fn frames_before_connect_close_the_connection() {
    struct Early;
    impl Codec for Early {
        fn decode(&mut self, buf: &mut BytesMut, out: &mut Vec<Uplink>) -> Result<(), CodecError> {
            buf.clear();
            out.push(Uplink::Ping);
            Ok(())
        }
        fn encode(&mut self, _: Downlink, _: &mut BytesMut) -> Result<(), CodecError> {
            Ok(())
        }
    }
    let broker = Broker::new(BrokerSettings::default());
    let mut d = device(&broker, Instant::now());
    d.codec = Some(Box::new(Early));
    let close = d.on_datagram(Bytes::from_static(b"x"), Instant::now()).await.unwrap_err();
    assert_eq!(close.why, "ping before connect");
}

#[tokio::test]
async fn input_before_connect_does_not_extend_connect_timeout() {
    struct Never;
    impl Codec for Never {
        fn decode(&mut self, _: &mut BytesMut, _: &mut Vec<Uplink>) -> Result<(), CodecError> {
            Ok(())
        }
        fn encode(&mut self, _: Downlink, _: &mut BytesMut) -> Result<(), CodecError> {
            Ok(())
        }
    }
    let broker = Broker::new(BrokerSettings::default());
    let t0 = Instant::now();
    let mut d = device(&broker, t0);
    d.codec = Some(Box::new(Never));
    let mut buf = BytesMut::from(&b"partial"[..]);
    d.on_stream(&mut buf, t0 + Duration::from_secs(9)).await.unwrap();
    assert_eq!(d.deadline(), t0 + Duration::from_secs(10));
    let close = d.on_timeout(t0 + Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(close.why, "no connect within limits.connect_timeout");
}
