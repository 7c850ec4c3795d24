//! The core's side of a cluster's persistent-session streams (issue 18): a message a node
//! takes from a session's JetStream stream is queued for that session alone by its own
//! subscriptions, carries the packet id its stream sequence gives it, and its receipt is
//! told once when the delivery is over (PUBACK, PUBREC, or dropped by the session's rules),
//! never when the session merely holds it.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use roost_core::cluster::{BoxFuture, Receipt, ReceiptRef};
use roost_core::settings::BrokerSettings;
use roost_core::{Broker, ClientId, Delivery, Message, QoS, SubOptions};

mod common;
use common::req;

#[derive(Default)]
struct Counting {
    done: AtomicUsize,
    confirmed: AtomicUsize,
    id: u16,
}

impl Receipt for Counting {
    fn done(&self, confirm: bool) -> Option<BoxFuture<'static, ()>> {
        if self.done.fetch_add(1, Ordering::SeqCst) > 0 {
            return None;
        }
        if confirm {
            self.confirmed.fetch_add(1, Ordering::SeqCst);
            return Some(Box::pin(async {}));
        }
        None
    }
    fn packet_id(&self) -> Option<u16> {
        Some(self.id)
    }
}

fn from_stream(topic: &str, q: QoS, id: u16) -> (Message, Arc<Counting>) {
    let r = Arc::new(Counting { id, ..Default::default() });
    let mut m = Message::new(topic, &b"x"[..], q, false);
    m.receipt = Some(ReceiptRef(r.clone()));
    (m, r)
}

#[tokio::test]
async fn receipts_are_told_when_the_client_has_the_message() {
    let b = Broker::new(BrokerSettings::default());
    let s = b.connect(req("s", false, Some(Duration::from_secs(60)))).await.unwrap();
    s.subscribe("t/+", SubOptions { qos: QoS::ExactlyOnce, ..Default::default() }).await.unwrap();
    s.subscribe("t/1", SubOptions { qos: QoS::AtLeastOnce, subscription_id: Some(5), ..Default::default() })
        .await
        .unwrap();
    let cid = ClientId::new("s");

    // QoS 1: with the stream's packet id and the session's subscription ids; told at PUBACK.
    let (m, r1) = from_stream("t/1", QoS::AtLeastOnce, 0x8001);
    assert!(b.deliver_to(&cid, m));
    let Some(Delivery::Publish { id, pending, .. }) = s.try_next_delivery() else { panic!("a delivery") };
    assert_eq!((id, pending.qos, pending.subscription_ids.clone()), (0x8001, QoS::AtLeastOnce, vec![5]));
    assert_eq!(r1.done.load(Ordering::SeqCst), 0, "held, not yet delivered");
    assert!(s.ack(id));
    assert_eq!(r1.done.load(Ordering::SeqCst), 1);

    // QoS 2: told at PUBREC, which waits for its confirmation; PUBCOMP tells nothing more.
    let (m, r2) = from_stream("t/2", QoS::ExactlyOnce, 0x8002);
    assert!(b.deliver_to(&cid, m));
    let Some(Delivery::Publish { id, .. }) = s.try_next_delivery() else { panic!("a delivery") };
    assert_eq!(id, 0x8002);
    assert!(s.received_settled(id).await);
    assert_eq!((r2.done.load(Ordering::SeqCst), r2.confirmed.load(Ordering::SeqCst)), (1, 1));
    assert!(s.ack(id));
    assert_eq!(r2.done.load(Ordering::SeqCst), 2, "a repeat, ignored by the receipt");

    // No subscription matches: not queued (the caller settles it); unknown session: false.
    let (m, r3) = from_stream("u", QoS::AtLeastOnce, 0x8003);
    assert!(!b.deliver_to(&cid, m));
    assert_eq!(r3.done.load(Ordering::SeqCst), 0);
    let (m, _) = from_stream("t/1", QoS::AtLeastOnce, 0x8004);
    assert!(!b.deliver_to(&ClientId::new("nobody"), m));
}

#[tokio::test]
async fn a_taken_over_session_leaves_stream_messages_to_the_stream() {
    let b = Broker::new(BrokerSettings::default());
    let s = b.connect(req("s", false, Some(Duration::from_secs(60)))).await.unwrap();
    s.subscribe("t", SubOptions { qos: QoS::AtLeastOnce, ..Default::default() }).await.unwrap();
    drop(s);
    let cid = ClientId::new("s");
    let (m, r) = from_stream("t", QoS::AtLeastOnce, 0x8001);
    assert!(b.deliver_to(&cid, m));
    b.publish(Message::new("t", &b"local"[..], QoS::AtLeastOnce, false));
    let handed = b.hand_off(&cid, false).unwrap();
    assert_eq!(handed.messages.len(), 1, "only the message that is not in a stream travels");
    assert_eq!(&handed.messages[0].1.pending.message.payload[..], b"local");
    assert_eq!(r.done.load(Ordering::SeqCst), 0, "not settled: the new node's consumer delivers it");
}
