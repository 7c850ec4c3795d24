//! Persistent sessions that outlive their node (issue 18, node failure): every QoS 1/2
//! message for a persistent session is stored in the JetStream stream `ROOST_SESSIONS`
//! (subject `roost.sess.{client id}`) before its publisher is acknowledged, and the node
//! that holds the session takes it from there through a durable consumer of its own
//! (`s_{client id}`), acknowledging each message in JetStream only once the client has it
//! (PUBACK, PUBREC). A node that dies leaves its sessions' messages unacknowledged in the
//! stream; the node the client reconnects to recreates the consumer from the first
//! unacknowledged message and delivers the rest. The session's shape (subscriptions,
//! expiry) is in the KV bucket `roost_sessions`, so that every node routes to it whatever
//! the state of its node, and a node resumes it when its old node does not answer.
//!
//! Message ids (`Nats-Msg-Id`) make a store that is tried again after a lost
//! acknowledgement count once; packet ids derived from the stream sequence make a
//! redelivered QoS 2 message carry the id its client already holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::Publish;
use async_nats::jetstream::stream;
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use roost_core::ClientId;
use roost_core::cluster::{BoxFuture, Receipt, ReceiptRef};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::escape::escape;
use crate::node::Shared;

/// The stream of the persistent sessions' messages.
pub(crate) const STREAM: &str = "ROOST_SESSIONS";

/// The subject of `client_id`'s messages.
pub(crate) fn subject(client_id: &str) -> String {
    format!("roost.sess.{}", escape(client_id))
}

/// The durable consumer of `client_id`'s messages (base64url: a valid consumer name).
fn consumer_name(client_id: &str) -> String {
    format!("s_{}", escape(client_id))
}

/// The packet id a message of stream sequence `seq` is delivered with on every node:
/// the upper half of the id space, never 0.
pub(crate) fn packet_id(seq: u64) -> u16 {
    0x8000 | (seq & 0x7fff) as u16
}

/// A message to store in a session's stream; `stored` hears of JetStream's answer.
pub(crate) struct Store {
    pub subject: String,
    pub id: String,
    pub payload: Bytes,
    pub stored: Option<oneshot::Sender<Result<(), String>>>,
}

/// Creates the stream if it is not there (limits-based: max age and per-session count).
pub(crate) async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    s: &crate::settings::ClusterSettings,
) -> Result<stream::Stream, crate::ClusterError> {
    let config = stream::Config {
        name: STREAM.to_string(),
        subjects: vec!["roost.sess.>".to_string()],
        max_age: s.session_max_age,
        max_messages_per_subject: s.session_max_messages,
        discard: stream::DiscardPolicy::Old,
        storage: stream::StorageType::File,
        num_replicas: 1,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| crate::ClusterError::Nats(format!("stream {STREAM}: cannot create it: {e}")))
}

/// Stores messages in session streams, in the order asked, on the one connection. While
/// NATS is away they wait here (the bounded buffer); a store whose acknowledgement does
/// not come is sent again with the same message id (JetStream counts it once).
pub(crate) async fn storer(shared: Arc<Shared>, mut rx: mpsc::Receiver<Store>) {
    let js = async_nats::jetstream::new(shared.client.clone());
    let mut reconnects = shared.reconnects.load(Ordering::Relaxed);
    while let Some(store) = rx.recv().await {
        let ack = loop {
            wait_connected(&shared).await;
            // After NATS came back, JetStream may take a moment: stores wait until the
            // stream answers, so that none fails and is sent again out of order.
            if shared.reconnects.load(Ordering::Relaxed) != reconnects {
                wait_stream(&shared, &js).await;
                reconnects = shared.reconnects.load(Ordering::Relaxed);
            }
            let publish = Publish::build().payload(store.payload.clone()).message_id(&store.id);
            match js.send_publish(store.subject.clone(), publish).await {
                Ok(ack) => break ack,
                Err(e) => {
                    tracing::debug!(error = %e, "cluster: session store not sent; trying again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        // The acknowledgement is awaited beside the next stores (they pipeline).
        let (shared, js) = (shared.clone(), js.clone());
        tokio::spawn(async move {
            let mut ack = ack;
            let mut result = Err(String::new());
            for attempt in 1..=5u32 {
                match ack.await {
                    Ok(_) => {
                        result = Ok(());
                        break;
                    }
                    Err(e) => result = Err(format!("JetStream did not store the message: {e}")),
                }
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                wait_connected(&shared).await;
                let publish = Publish::build().payload(store.payload.clone()).message_id(&store.id);
                match js.send_publish(store.subject.clone(), publish).await {
                    Ok(a) => ack = a,
                    Err(e) => {
                        result = Err(format!("JetStream store not sent: {e}"));
                        break;
                    }
                }
            }
            match &result {
                Ok(()) => shared.metrics.stored.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(subject = %store.subject, error = %e, "cluster: a session message was not stored");
                    shared.metrics.store_failures.fetch_add(1, Ordering::Relaxed)
                }
            };
            if let Some(tx) = store.stored {
                let _ = tx.send(result);
            }
        });
    }
}

async fn wait_stream(shared: &Shared, js: &async_nats::jetstream::Context) {
    for _ in 0..100 {
        if js.get_stream(STREAM).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        wait_connected(shared).await;
    }
}

async fn wait_connected(shared: &Shared) {
    while shared.degraded.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the node knows of the consumers it runs: client id -> its task's token.
#[derive(Default)]
pub(crate) struct Consumers {
    running: Mutex<HashMap<ClientId, CancellationToken>>,
}

impl Consumers {
    pub fn count(&self) -> usize {
        self.running.lock().len()
    }

    /// Stops the consumer task of `client_id` (its session left this node).
    pub fn stop(&self, client_id: &ClientId) {
        if let Some(t) = self.running.lock().remove(client_id) {
            t.cancel();
        }
    }
}

/// Starts taking `client_id`'s messages from its stream, unless that runs already.
pub(crate) fn ensure_consumer(shared: &Arc<Shared>, client_id: &ClientId) {
    let token = {
        let mut running = shared.consumers.running.lock();
        if running.contains_key(client_id) {
            return;
        }
        let token = shared.shutdown.child_token();
        running.insert(client_id.clone(), token.clone());
        token
    };
    let (shared, cid) = (shared.clone(), client_id.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = token.cancelled() => {}
            _ = consume(&shared, &cid) => {}
        }
        let mut running = shared.consumers.running.lock();
        if running.get(&cid).is_some_and(|t| t.is_cancelled() || !shared.broker.has_session(&cid)) {
            running.remove(&cid);
        }
    });
}

/// An acknowledgement to send: the message's reply subject and, when the sender waits for
/// the stream to confirm it, where to say so.
pub(crate) type Ack = (async_nats::Subject, Option<oneshot::Sender<()>>);

/// The session's JetStream delivery: settles the message in its stream once done.
struct JsReceipt {
    reply: Option<async_nats::Subject>,
    seq: u64,
    settled: AtomicBool,
    acks: mpsc::UnboundedSender<Ack>,
    /// Bound of a confirmed acknowledgement's wait.
    limit: Duration,
}

impl Receipt for JsReceipt {
    fn done(&self, confirm: bool) -> Option<BoxFuture<'static, ()>> {
        if self.settled.swap(true, Ordering::AcqRel) {
            return None;
        }
        let reply = self.reply.clone()?;
        if !confirm {
            let _ = self.acks.send((reply, None));
            return None;
        }
        let (tx, rx) = oneshot::channel();
        let _ = self.acks.send((reply, Some(tx)));
        let limit = self.limit;
        Some(Box::pin(async move {
            let _ = tokio::time::timeout(limit, rx).await;
        }))
    }

    fn packet_id(&self) -> Option<u16> {
        Some(packet_id(self.seq))
    }
}

/// Sends the acknowledgements of settled deliveries (`+ACK` on each message's reply
/// subject; as a request when the sender waits for the stream's confirmation). An
/// unbounded channel, bounded in practice by `session_window` per session.
pub(crate) async fn acker(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Ack>) {
    const ACK: Bytes = Bytes::from_static(b"+ACK");
    while let Some((reply, confirmed)) = rx.recv().await {
        match confirmed {
            None => {
                if let Err(e) = shared.client.publish(reply, ACK).await {
                    tracing::debug!(error = %e, "cluster: a session message acknowledgement was not sent");
                }
            }
            Some(tx) => {
                let client = shared.client.clone();
                tokio::spawn(async move {
                    if let Err(e) = client.request(reply, ACK).await {
                        tracing::debug!(error = %e, "cluster: a session message acknowledgement was not confirmed");
                    }
                    let _ = tx.send(());
                });
            }
        }
    }
}

/// Takes `client_id`'s messages from its stream into its session here until the session
/// is gone. The consumer is recreated from the first message not acknowledged, so that
/// what a dead node had taken and not settled comes again at once (not after ack wait).
async fn consume(shared: &Arc<Shared>, client_id: &ClientId) {
    let mut last_seq = 0u64;
    while shared.broker.has_session(client_id) {
        match consume_once(shared, client_id, &mut last_seq).await {
            Ok(()) => return,
            Err(e) => {
                tracing::info!(%client_id, error = %e, "cluster: session consumer interrupted; starting it again");
                tokio::time::sleep(Duration::from_millis(200)).await;
                wait_connected(shared).await;
            }
        }
    }
}

async fn consume_once(shared: &Arc<Shared>, client_id: &ClientId, last_seq: &mut u64) -> Result<(), String> {
    let js = async_nats::jetstream::new(shared.client.clone());
    let stream = js.get_stream(STREAM).await.map_err(|e| e.to_string())?;
    let name = consumer_name(client_id.as_str());
    let deliver_policy = match stream.consumer_info(&name).await {
        Ok(info) => {
            let _ = stream.delete_consumer(&name).await;
            DeliverPolicy::ByStartSequence { start_sequence: info.ack_floor.stream_sequence + 1 }
        }
        Err(_) => DeliverPolicy::All,
    };
    let config = pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: subject(client_id.as_str()),
        ack_policy: AckPolicy::Explicit,
        // Never redelivered by time: a message waits in the session for as long as its
        // client is away; redelivery is this recreation's business.
        ack_wait: shared.settings.session_max_age,
        max_ack_pending: shared.settings.session_window,
        // The consumer of a session nobody holds any more (its node died, its client never
        // came back) is removed by the server after as long as its messages may wait.
        inactive_threshold: shared.settings.session_max_age,
        deliver_policy,
        ..Default::default()
    };
    let consumer = stream.create_consumer(config).await.map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    while let Some(m) = messages.next().await {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%client_id, error = %e, "cluster: session consumer");
                continue;
            }
        };
        let seq = m.info().map(|i| i.stream_sequence).map_err(|e| e.to_string())?;
        if seq <= *last_seq {
            continue; // already in the session here (a recreated consumer's repeat)
        }
        let mut msg = match roost_core::store::wire::decode_message(&m.payload) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(%client_id, error = %e, "cluster: bad session message dropped");
                let _ = m.ack().await;
                continue;
            }
        };
        let receipt = Arc::new(JsReceipt {
            reply: m.reply.clone(),
            seq,
            settled: AtomicBool::new(false),
            acks: shared.acks.clone(),
            limit: shared.settings.request_timeout,
        });
        msg.receipt = Some(ReceiptRef(receipt.clone()));
        if !shared.broker.deliver_to(client_id, msg) {
            if !shared.broker.has_session(client_id) {
                return Ok(()); // gone (handed off, ended): not acknowledged, it stays
            }
            receipt.done(false); // no subscription of the session matches it any more
        }
        *last_seq = seq;
        shared.metrics.session_in.fetch_add(1, Ordering::Relaxed);
    }
    Err("the consumer's message stream ended".into())
}

/// Forgets `client_id`'s stored messages and consumer (its session ended for good).
pub(crate) async fn discard(shared: &Shared, client_id: &ClientId) -> Result<(), String> {
    let js = async_nats::jetstream::new(shared.client.clone());
    let stream = js.get_stream(STREAM).await.map_err(|e| e.to_string())?;
    let _ = stream.delete_consumer(&consumer_name(client_id.as_str())).await;
    stream.purge().filter(subject(client_id.as_str())).await.map(drop).map_err(|e| e.to_string())
}
