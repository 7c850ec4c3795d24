//! An MQTT 5.0 test client: rumqttc's v5 `AsyncClient` with its event loop on a task, every
//! incoming packet forwarded to the test, and calls that wait (bounded) for their ack.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnectProperties, ConnectReturnCode, Filter, LastWill, Packet, Publish, PublishProperties,
    SubscribeProperties, SubscribeReasonCode,
};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};

use crate::WAIT;

/// What the event loop task reports: a packet from the broker, or the end of the connection.
type Incoming = Result<Packet, String>;

pub struct Client5 {
    id: String,
    client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    /// PUBLISHes that arrived while a call waited for an ack.
    publishes: VecDeque<Publish>,
    connack: ConnAck,
    task: JoinHandle<()>,
}

impl Client5 {
    /// Options for `client_id` at `addr`: clean start, session expiry 0, keep alive 30 s.
    pub fn options(addr: SocketAddr, client_id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        options
    }

    /// Connects with clean session.
    pub async fn connect(addr: SocketAddr, client_id: &str) -> Client5 {
        Client5::connect_with(Client5::options(addr, client_id)).await
    }

    /// Connects with the given clean start and session expiry interval (seconds).
    pub async fn connect_persistent(addr: SocketAddr, client_id: &str, clean_start: bool, expiry: u32) -> Client5 {
        let mut options = Client5::options(addr, client_id);
        options.set_clean_start(clean_start);
        let mut props = ConnectProperties::new();
        props.session_expiry_interval = Some(expiry);
        options.set_connect_properties(props);
        Client5::connect_with(options).await
    }

    /// Connects with a will message.
    pub async fn connect_with_will(addr: SocketAddr, client_id: &str, will: LastWill) -> Client5 {
        let mut options = Client5::options(addr, client_id);
        options.set_last_will(will);
        Client5::connect_with(options).await
    }

    pub async fn connect_with(options: MqttOptions) -> Client5 {
        let id = options.client_id();
        let (client, eventloop) = AsyncClient::new(options, 64);
        let (tx, mut incoming) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(eventloop, tx));
        let connack = match timeout(WAIT, incoming.recv()).await {
            Ok(Some(Ok(Packet::ConnAck(ack)))) => ack,
            Ok(Some(Ok(other))) => panic!("{id}: expected CONNACK, got {other:?}"),
            Ok(Some(Err(err))) => panic!("{id}: connect failed: {err}"),
            Ok(None) => panic!("{id}: event loop ended before CONNACK"),
            Err(_) => panic!("{id}: no CONNACK within {WAIT:?}"),
        };
        assert_eq!(connack.code, ConnectReturnCode::Success, "{id}: CONNACK");
        Client5 { id, client, incoming, publishes: VecDeque::new(), connack, task }
    }

    pub fn connack(&self) -> &ConnAck {
        &self.connack
    }

    pub fn session_present(&self) -> bool {
        self.connack.session_present
    }

    /// Subscribes and returns the SUBACK reason code.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> SubscribeReasonCode {
        self.subscribe_with(Filter::new(filter, qos), None).await
    }

    /// Subscribes with subscription options and an optional subscription identifier; returns
    /// the SUBACK reason code.
    pub async fn subscribe_with(&mut self, filter: Filter, id: Option<usize>) -> SubscribeReasonCode {
        let path = filter.path.clone();
        let sent = match id {
            Some(id) => {
                let props = SubscribeProperties { id: Some(id), user_properties: Vec::new() };
                self.client.subscribe_many_with_properties([filter], props).await
            }
            None => self.client.subscribe_many([filter]).await,
        };
        if let Err(err) = sent {
            panic!("subscribe {path}: {err}");
        }
        let ack = self.wait_for(|p| matches!(p, Packet::SubAck(_)), "SUBACK").await;
        match ack {
            Packet::SubAck(ack) => ack.return_codes[0],
            _ => unreachable!(),
        }
    }

    pub async fn unsubscribe(&mut self, filter: &str) {
        if let Err(err) = self.client.unsubscribe(filter).await {
            panic!("unsubscribe {filter}: {err}");
        }
        self.wait_for(|p| matches!(p, Packet::UnsubAck(_)), "UNSUBACK").await;
    }

    /// Publishes and, for QoS 1 and 2, waits until the broker acknowledged it (PUBACK /
    /// PUBCOMP), so the broker has taken responsibility for the message when this returns.
    pub async fn publish(&mut self, topic: &str, qos: QoS, retain: bool, payload: impl Into<Vec<u8>>) {
        self.publish_with(topic, qos, retain, payload, None).await;
    }

    /// [`Client5::publish`] with PUBLISH properties.
    pub async fn publish_with(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
        properties: Option<PublishProperties>,
    ) {
        let payload: Vec<u8> = payload.into();
        let sent = match properties {
            Some(props) => self.client.publish_with_properties(topic, qos, retain, payload, props).await,
            None => self.client.publish(topic, qos, retain, payload).await,
        };
        if let Err(err) = sent {
            panic!("publish {topic}: {err}");
        }
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.wait_for(|p| matches!(p, Packet::PubAck(_)), "PUBACK").await;
            }
            QoS::ExactlyOnce => {
                self.wait_for(|p| matches!(p, Packet::PubComp(_)), "PUBCOMP").await;
            }
        }
    }

    /// The next PUBLISH received, if one arrives within `wait`.
    pub async fn recv_publish(&mut self, wait: Duration) -> Option<Publish> {
        if let Some(publish) = self.publishes.pop_front() {
            return Some(publish);
        }
        let deadline = Instant::now() + wait;
        loop {
            match timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(Ok(Packet::Publish(publish)))) => return Some(publish),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) | Err(_) => return None,
            }
        }
    }

    /// The next PUBLISH received; panics if none arrives within `wait`.
    pub async fn expect_publish(&mut self, wait: Duration) -> Publish {
        match self.recv_publish(wait).await {
            Some(publish) => publish,
            None => panic!("{}: no PUBLISH within {wait:?}", self.id),
        }
    }

    /// Asserts that no PUBLISH arrives for `quiet`. Proving absence needs a bounded wait;
    /// callers pass a short one ([`crate::QUIET`]).
    pub async fn assert_no_publish(&mut self, quiet: Duration) {
        if let Some(publish) = self.recv_publish(quiet).await {
            panic!("{}: expected no PUBLISH for {quiet:?}, got {publish:?}", self.id);
        }
    }

    /// Every PUBLISH until none arrives for `quiet` (or `max` has passed).
    pub async fn collect_publishes(&mut self, quiet: Duration, max: Duration) -> Vec<Publish> {
        let deadline = Instant::now() + max;
        let mut all = Vec::new();
        while Instant::now() < deadline {
            let wait = quiet.min(deadline.saturating_duration_since(Instant::now()));
            match self.recv_publish(wait).await {
                Some(publish) => all.push(publish),
                None => break,
            }
        }
        all
    }

    /// How the connection ended within `wait` as rumqttc reports it (a broker DISCONNECT
    /// is an error naming its reason code, e.g. `SessionTakenOver`); PUBLISHes before it are
    /// kept for `recv_publish`. `None` if it did not end in time.
    pub async fn expect_end(&mut self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            match timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(Ok(Packet::Disconnect(d)))) => return Some(format!("{:?}", d.reason_code)),
                Ok(Some(Ok(Packet::Publish(publish)))) => self.publishes.push_back(publish),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Some(e),
                Ok(None) => return Some("event loop ended".into()),
                Err(_) => return None,
            }
        }
    }

    /// Sends DISCONNECT and waits (bounded) for the event loop to finish.
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let mut task = self.task;
        if timeout(WAIT, &mut task).await.is_err() {
            task.abort();
        }
    }

    /// Drops the TCP connection without DISCONNECT, as a crashed client would.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    async fn wait_for(&mut self, want: impl Fn(&Packet) -> bool, what: &str) -> Packet {
        let deadline = Instant::now() + WAIT;
        loop {
            match timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(Ok(packet))) if want(&packet) => return packet,
                Ok(Some(Ok(Packet::Publish(publish)))) => self.publishes.push_back(publish),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(err))) => panic!("{}: connection ended while waiting for {what}: {err}", self.id),
                Ok(None) => panic!("{}: event loop ended while waiting for {what}", self.id),
                Err(_) => panic!("{}: no {what} within {WAIT:?}", self.id),
            }
        }
    }
}

/// Drives the event loop, forwarding incoming packets, until the connection ends or the
/// client has sent DISCONNECT. It never reconnects: each `Client5` is one connection.
async fn run(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Incoming>) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(packet)) => {
                if tx.send(Ok(packet)).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(Event::Outgoing(_)) => {}
            Err(err) => {
                let _ = tx.send(Err(err.to_string()));
                return;
            }
        }
    }
}

/// 5.0 QoS from its number.
pub fn qos(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}
