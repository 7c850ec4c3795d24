//! Shared subscriptions `$share/{group}/{filter}`: each message goes to exactly one member of
//! the group, in turn (Roost's default strategy is round robin), while a plain subscription
//! on the same filter gets every message (MQTT 5.0 §4.8.2; also accepted from 3.1.1 clients,
//! as EMQX and Mosquitto do).

use std::collections::BTreeSet;

use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::mqtt311::{self, Client311};
use roost_e2e::{QUIET, TestBroker, WAIT};

const N: usize = 10;

/// Checks that the members' messages (payload = index) split 0..N exactly, one each, and
/// alternate: round robin over two members gives one all even and the other all odd indices.
fn assert_round_robin(a: &[usize], b: &[usize]) {
    let all: BTreeSet<usize> = a.iter().chain(b).copied().collect();
    assert_eq!(a.len() + b.len(), N, "each message exactly once in the group: a={a:?} b={b:?}");
    assert_eq!(all, (0..N).collect(), "a={a:?} b={b:?}");
    assert!(!a.is_empty() && !b.is_empty(), "both members get some: a={a:?} b={b:?}");
    let parity = |v: &[usize]| v.iter().map(|i| i % 2).collect::<BTreeSet<_>>();
    assert!(parity(a).len() == 1 && parity(b).len() == 1, "members alternate: a={a:?} b={b:?}");
}

fn index(payload: &[u8]) -> usize {
    String::from_utf8_lossy(payload).parse().expect("payload is an index")
}

#[tokio::test]
async fn shared_subscription_round_robin_v5() {
    let broker = TestBroker::start().await;
    let mut a = Client5::connect(broker.addr(), "a").await;
    a.subscribe("$share/g/s/#", mqtt5::qos(1)).await;
    let mut b = Client5::connect(broker.addr(), "b").await;
    b.subscribe("$share/g/s/#", mqtt5::qos(1)).await;
    let mut plain = Client5::connect(broker.addr(), "plain").await;
    plain.subscribe("s/#", mqtt5::qos(1)).await;

    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    for i in 0..N {
        publisher.publish("s/x", mqtt5::qos(1), false, i.to_string()).await;
    }

    let got_a: Vec<usize> = a.collect_publishes(QUIET, WAIT).await.iter().map(|p| index(&p.payload)).collect();
    let got_b: Vec<usize> = b.collect_publishes(QUIET, WAIT).await.iter().map(|p| index(&p.payload)).collect();
    assert_round_robin(&got_a, &got_b);
    let got_plain: Vec<usize> = plain.collect_publishes(QUIET, WAIT).await.iter().map(|p| index(&p.payload)).collect();
    assert_eq!(got_plain, (0..N).collect::<Vec<_>>(), "a plain subscriber gets every message");
    broker.stop().await;
}

#[tokio::test]
async fn shared_subscription_round_robin_v311() {
    let broker = TestBroker::start().await;
    let mut a = Client311::connect(broker.addr(), "a").await;
    a.subscribe("$share/g/s/#", mqtt311::qos(1)).await;
    let mut b = Client311::connect(broker.addr(), "b").await;
    b.subscribe("$share/g/s/#", mqtt311::qos(1)).await;
    let mut plain = Client311::connect(broker.addr(), "plain").await;
    plain.subscribe("s/#", mqtt311::qos(1)).await;

    let mut publisher = Client311::connect(broker.addr(), "pub").await;
    for i in 0..N {
        publisher.publish("s/x", mqtt311::qos(1), false, i.to_string()).await;
    }

    let got_a: Vec<usize> = a.collect_publishes(QUIET, WAIT).await.iter().map(|p| index(&p.payload)).collect();
    let got_b: Vec<usize> = b.collect_publishes(QUIET, WAIT).await.iter().map(|p| index(&p.payload)).collect();
    assert_round_robin(&got_a, &got_b);
    let got_plain: Vec<usize> = plain.collect_publishes(QUIET, WAIT).await.iter().map(|p| index(&p.payload)).collect();
    assert_eq!(got_plain, (0..N).collect::<Vec<_>>(), "a plain subscriber gets every message");
    broker.stop().await;
}

/// Two groups on the same filter each get every message once; a member that leaves its group
/// stops getting messages and the remaining member gets them all.
#[tokio::test]
async fn groups_are_independent_and_members_can_leave_v5() {
    let broker = TestBroker::start().await;
    let mut a = Client5::connect(broker.addr(), "a").await;
    a.subscribe("$share/g1/s/#", mqtt5::qos(1)).await;
    let mut b = Client5::connect(broker.addr(), "b").await;
    b.subscribe("$share/g1/s/#", mqtt5::qos(1)).await;
    let mut other_group = Client5::connect(broker.addr(), "c").await;
    other_group.subscribe("$share/g2/s/#", mqtt5::qos(1)).await;
    b.unsubscribe("$share/g1/s/#").await;

    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    for i in 0..4 {
        publisher.publish("s/x", mqtt5::qos(1), false, i.to_string()).await;
    }

    let all: Vec<usize> = (0..4).collect();
    let got_a: Vec<usize> = a.collect_publishes(QUIET, WAIT).await.iter().map(|p| index(&p.payload)).collect();
    assert_eq!(got_a, all, "the only member left in g1 gets everything");
    b.assert_no_publish(QUIET).await;
    let got_c: Vec<usize> =
        other_group.collect_publishes(QUIET, WAIT).await.iter().map(|p| index(&p.payload)).collect();
    assert_eq!(got_c, all, "g2 gets its own copy of every message");
    broker.stop().await;
}
