//! Rules feeding every sink at once, with real servers started here on free loopback ports
//! (PostgreSQL, MariaDB, Redis, RabbitMQ, InfluxDB 1.x, and a SQLite file read back with
//! `sqlite3`), and messages from every protocol: MQTT, CoAP, MQTT-SN (byte-level client over
//! UDP) and LoRaWAN (frames built with the `lorawan` crate in Semtech PUSH_DATA, decoded to
//! `object` by the device's JSON codec). Each sink must hold exactly the matching messages.
//!
//! Message counts: `ROOST_RULES_MESSAGES` (default 1,000; the acceptance run uses 10,000).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use coap_lite::RequestType;
use mysql_async::prelude::Queryable as _;
use roost_e2e::coap::Raw;
use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::postgres::Postgres;
use roost_e2e::sinks::{Influxdb, Mariadb, Rabbitmq, Redis};
use roost_e2e::{TestBroker, WAIT};
use roost_mqttsn::codec::{self, Connect, Flags, Message, MsgId, Publish, ReturnCode, SnQos, TopicId, TopicIdType};
use serde_json::json;
use tokio::net::UdpSocket;
use tokio::time::timeout;

use crate::rules::{SINK_WAIT, eventually, messages, rule, sqlite_count};

/// A byte-level MQTT-SN client: CONNECT, REGISTER one topic, QoS 1 PUBLISH awaiting PUBACK.
struct Sn {
    sock: UdpSocket,
    gw: SocketAddr,
    topic_id: TopicId,
    msg_id: u16,
}

impl Sn {
    async fn send(&self, m: &Message) {
        self.sock.send_to(&codec::to_bytes(m).expect("encode"), self.gw).await.expect("send");
    }

    async fn recv(&self) -> Message {
        let mut buf = vec![0u8; 2048];
        let (n, _) = timeout(WAIT, self.sock.recv_from(&mut buf)).await.expect("an MQTT-SN reply").expect("recv");
        codec::decode(&Bytes::copy_from_slice(&buf[..n])).expect("decode")
    }

    async fn connect(gw: SocketAddr, id: &str, topic: &str) -> Sn {
        let mut sn =
            Sn { sock: UdpSocket::bind("127.0.0.1:0").await.expect("bind"), gw, topic_id: TopicId(0), msg_id: 0 };
        let connect =
            Connect { flags: Flags { clean_session: true, ..Flags::default() }, duration: 60, client_id: id.into() };
        sn.send(&Message::Connect(connect)).await;
        assert_eq!(sn.recv().await, Message::ConnAck { rc: ReturnCode::Accepted });
        sn.send(&Message::Register { topic_id: TopicId(0), msg_id: MsgId(1), topic_name: topic.into() }).await;
        match sn.recv().await {
            Message::RegAck { topic_id, rc: ReturnCode::Accepted, .. } => sn.topic_id = topic_id,
            other => panic!("REGISTER answered {other:?}"),
        }
        sn
    }

    async fn publish(&mut self, data: String) {
        self.msg_id = self.msg_id.wrapping_add(1).max(1);
        let flags = Flags { qos: SnQos::AtLeastOnce, topic_id_type: TopicIdType::Normal, ..Flags::default() };
        let p = Publish { flags, topic_id: self.topic_id, msg_id: MsgId(self.msg_id), data: Bytes::from(data) };
        self.send(&Message::Publish(p)).await;
        match self.recv().await {
            Message::PubAck { msg_id, rc: ReturnCode::Accepted, .. } if msg_id == MsgId(self.msg_id) => {}
            other => panic!("PUBLISH answered {other:?}"),
        }
    }

    async fn disconnect(&self) {
        self.send(&Message::Disconnect { duration: None }).await;
        assert_eq!(self.recv().await, Message::Disconnect { duration: None });
    }
}

const LORA_ADDR: u32 = 0x2601_5678;
const LORA_EUI: &str = "0303030303030303";
const LORA_NWK: [u8; 16] = [0x0a; 16];
const LORA_APP: [u8; 16] = [0x0b; 16];

/// A packet forwarder with one ABP device: each uplink is a PUSH_DATA, awaited as PUSH_ACK.
struct Lora {
    up: UdpSocket,
    server: SocketAddr,
    token: u16,
    fcnt: u32,
}

impl Lora {
    async fn start(server: SocketAddr) -> Lora {
        Lora { up: UdpSocket::bind("127.0.0.1:0").await.expect("bind"), server, token: 0, fcnt: 0 }
    }

    async fn uplink(&mut self, data: &[u8]) {
        self.fcnt += 1;
        let mut c = lorawan::creator::DataPayloadCreator::new();
        c.set_uplink(true)
            .set_confirmed(false)
            .set_dev_addr(&LORA_ADDR.to_le_bytes())
            .set_fcnt(self.fcnt)
            .set_f_port(1);
        let phy = c
            .build(data, &[], &lorawan::keys::NewSKey::from(LORA_NWK), &lorawan::keys::AppSKey::from(LORA_APP))
            .expect("an uplink frame")
            .to_vec();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&phy);
        let rxpk = json!({"rxpk": [{"tmst": self.fcnt, "chan": 2, "rfch": 0, "freq": 868.5, "stat": 1, "modu": "LORA",
            "datr": "SF7BW125", "codr": "4/5", "rssi": -60, "lsnr": 7.0, "size": phy.len(), "data": b64}]});
        self.token = self.token.wrapping_add(1);
        let t = self.token.to_be_bytes();
        let mut d = vec![2, t[0], t[1], 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 3];
        d.extend_from_slice(rxpk.to_string().as_bytes());
        self.up.send_to(&d, self.server).await.expect("send");
        let mut buf = [0u8; 64];
        let n = timeout(WAIT, self.up.recv(&mut buf)).await.expect("PUSH_ACK").expect("recv");
        assert_eq!(&buf[..n], &[2, t[0], t[1], 0x01]);
    }
}

/// Every sink's action for a rule whose output has `t`, `seq`, `clientid` and `topic`.
fn actions(pg: &Postgres, db: &Path, my: &Mariadb, redis: &Redis, rabbit: &Rabbitmq, influx: &Influxdb) -> String {
    let cols = "(t, seq, clientid, topic) VALUES (${t}, ${seq}, ${clientid}, ${topic})";
    format!(
        r#"
[[rule.action]]
type = "postgres"
conninfo = "{pg}"
init_sql = "CREATE TABLE IF NOT EXISTS hot (t double precision, seq bigint, clientid text, topic text)"
sql = "INSERT INTO hot {cols}"
[[rule.action]]
type = "sqlite"
path = "{db}"
init_sql = "CREATE TABLE IF NOT EXISTS hot (t REAL, seq INTEGER, clientid TEXT, topic TEXT)"
sql = "INSERT INTO hot {cols}"
[[rule.action]]
type = "mysql"
url = "{my}"
init_sql = "CREATE TABLE IF NOT EXISTS hot (t DOUBLE, seq BIGINT, clientid VARCHAR(128), topic VARCHAR(255))"
sql = "INSERT INTO hot {cols}"
[[rule.action]]
type = "redis"
url = "{redis}"
command = "XADD hot * t ${{t}} seq ${{seq}} clientid ${{clientid}}"
[[rule.action]]
type = "redis"
url = "{redis}"
command = "HSET last:${{clientid}} t ${{t}} seq ${{seq}}"
[[rule.action]]
type = "rabbitmq"
port = {rabbit}
exchange = "roost.hot"
exchange_type = "topic"
routing_key = "hot.${{clientid}}"
[[rule.action]]
type = "influxdb"
url = "{influx}"
database = "iot"
measurement = "hot"
tags = {{ clientid = "${{clientid}}" }}
fields = {{ t = "${{t}}", seq = "${{seq}}" }}
"#,
        pg = pg.conninfo(),
        db = db.display(),
        my = my.url("iot"),
        redis = redis.url(),
        rabbit = rabbit.port,
        influx = influx.url(),
    )
}

/// The LoRaWAN device of [`Lora`], with the JSON payload codec (uplinks get an `object`).
fn lora_device() -> String {
    format!(
        r#"
[lorawan]
deduplication_window = "10ms"
[[lorawan.device]]
dev_eui = "{LORA_EUI}"
application_id = "app1"
dev_addr = "{LORA_ADDR:08x}"
nwk_s_key = "{nwk}"
app_s_key = "{app}"
payload_codec = "json"
"#,
        nwk = LORA_NWK.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        app = LORA_APP.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    )
}

/// The acceptance rules (`sensors/#`, and LoRaWAN uplinks' `object` through the
/// `lorawan_up` device event) and the online table.
fn config(pg: &Postgres, all: &str) -> String {
    format!(
        r#"{lora}

[[rule]]
id = "hot"
sql = 'SELECT payload.temp AS t, payload.seq AS seq, clientid, topic FROM "sensors/#" WHERE payload.temp > 30'
{all}
[[rule]]
id = "hot_lora"
sql = 'SELECT payload.object.temp AS t, payload.object.seq AS seq, clientid, topic FROM "$events/lorawan_up" WHERE payload.object.temp > 30'
{all}
[[rule]]
id = "online"
sql = 'SELECT clientid, event, protocol FROM "$events/client_connected", "$events/client_disconnected"'
[[rule.action]]
type = "postgres"
conninfo = "{conn}"
init_sql = "CREATE TABLE IF NOT EXISTS online (clientid text PRIMARY KEY, online boolean, protocol text)"
sql = "INSERT INTO online VALUES (${{clientid}}, ${{event}} = 'client.connected', ${{protocol}}) ON CONFLICT (clientid) DO UPDATE SET online = EXCLUDED.online, protocol = EXCLUDED.protocol"
"#,
        lora = lora_device(),
        conn = pg.conninfo(),
    )
}

/// Sends `n` messages round-robin over MQTT, CoAP, MQTT-SN and LoRaWAN; the matching seqs.
async fn publish_mixed(broker: &TestBroker, n: usize) -> (Client5, Sn, Vec<i64>) {
    let mut mqtt = Client5::connect(broker.addr(), "mqtt-dev").await;
    let coap = Raw::new(broker.coap_addr()).await;
    let mut sn = Sn::connect(broker.mqttsn_addr(), "sn-dev", "sensors/sn").await;
    let mut lora = Lora::start(broker.lorawan_addr()).await;
    let mut want = Vec::new();
    for i in 0..n {
        let temp = (i % 60) as i64;
        if temp > 30 {
            want.push(i as i64);
        }
        let body = format!("{{\"temp\": {temp}, \"seq\": {i}}}");
        match i % 4 {
            0 => mqtt.publish(&format!("sensors/mqtt/{i}"), mqtt5::qos(1), false, body).await,
            1 => {
                coap.call(RequestType::Put, &format!("ps/sensors/coap/{i}"), &[], body.as_bytes()).await;
            }
            2 => sn.publish(body).await,
            _ => lora.uplink(body.as_bytes()).await,
        }
    }
    (mqtt, sn, want)
}

async fn mysql_count(url: &str, sql: &str) -> i64 {
    let mut c = mysql_async::Conn::from_url(url).await.expect("connect to mariadb");
    let n: Option<i64> = c.query_first(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    n.unwrap_or(-1)
}

async fn redis_conn(r: &Redis) -> redis::aio::MultiplexedConnection {
    let c = redis::Client::open(r.url()).expect("redis url");
    c.get_multiplexed_async_connection().await.expect("connect to redis")
}

/// The queue bound to the action's exchange (declared first, as the action declares it).
async fn rabbit_queue(rabbit: &Rabbitmq) -> (amqprs::connection::Connection, amqprs::channel::Channel) {
    use amqprs::channel::{ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments};
    let (conn, ch) = rabbit.channel().await;
    let mut ex = ExchangeDeclareArguments::new("roost.hot", "topic");
    ex.durable = true;
    ch.exchange_declare(ex).await.expect("declare the exchange");
    ch.queue_declare(QueueDeclareArguments::new("hot-all")).await.expect("declare the queue");
    ch.queue_bind(QueueBindArguments::new("hot-all", "roost.hot", "hot.#")).await.expect("bind the queue");
    (conn, ch)
}

async fn rabbit_count(ch: &amqprs::channel::Channel) -> i64 {
    let mut q = amqprs::channel::QueueDeclareArguments::new("hot-all");
    q.passive(true);
    let got = ch.queue_declare(q.finish()).await.expect("queue.declare passive");
    got.map_or(-1, |(_, count, _)| i64::from(count))
}

#[tokio::test]
async fn mixed_protocol_messages_give_exactly_the_matching_entries_in_every_sink() {
    let (pg, my, redis, rabbit, influx) =
        tokio::join!(Postgres::start(), Mariadb::start(), Redis::start(), Rabbitmq::start(), Influxdb::start());
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("edge.db");
    let mut admin = mysql_async::Conn::from_url(my.url("")).await.expect("connect to mariadb");
    admin.query_drop("CREATE DATABASE iot").await.expect("create the database");
    influx.query("", "CREATE DATABASE iot").await;
    let (_amqp, ch) = rabbit_queue(&rabbit).await;
    let all = actions(&pg, &db, &my, &redis, &rabbit, &influx);
    let broker = TestBroker::start_with(&config(&pg, &all)).await;

    let n = messages();
    let started = Instant::now();
    let (mqtt, sn, want) = publish_mixed(&broker, n).await;
    eprintln!("published {n} messages (MQTT, CoAP, MQTT-SN, LoRaWAN) in {:?}; {} match", started.elapsed(), want.len());
    let w = want.len() as i64;
    let lora_w = (0..n).filter(|i| i % 4 == 3 && i % 60 > 30).count() as i64;
    for (id, rule_w) in [("hot", w - lora_w), ("hot_lora", lora_w)] {
        let deadline = Instant::now() + SINK_WAIT;
        let m = loop {
            let m = rule(&broker, id).await["metrics"].clone();
            let done = m["actions"].as_array().is_some_and(|a| a.iter().all(|a| a["success"].as_i64() == Some(rule_w)));
            if done {
                break m;
            }
            assert!(Instant::now() < deadline, "rule {id}: not every action wrote {rule_w} outputs in time: {m}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(m["passed"].as_i64(), Some(rule_w), "{m}");
        for a in m["actions"].as_array().expect("actions") {
            assert_eq!((a["dropped"].as_i64(), a["failed"].as_i64()), (Some(0), Some(0)), "{a}");
        }
    }
    let mut r = redis_conn(&redis).await;
    let xlen: i64 = redis::cmd("XLEN").arg("hot").query_async(&mut r).await.expect("XLEN");
    let last_t: Option<f64> = redis::cmd("HGET").arg("last:mqtt-dev").arg("t").query_async(&mut r).await.expect("HGET");
    let seq = "SELECT count(DISTINCT seq) FROM hot";
    let got = [
        ("postgres", pg.count("SELECT count(DISTINCT seq) FROM hot").await),
        ("sqlite", sqlite_count(&db, seq)),
        ("mariadb", mysql_count(&my.url("iot"), seq).await),
        ("redis XADD", xlen),
        ("rabbitmq", rabbit_count(&ch).await),
        ("influxdb", influx.count("iot", "SELECT count(seq) FROM hot").await),
    ];
    for (sink, count) in got {
        assert_eq!(count, w, "{sink}: {count} entries, {w} matching messages");
    }
    assert!(last_t.is_some_and(|t| t > 30.0), "HSET last:mqtt-dev: {last_t:?}");
    assert_eq!(pg.count("SELECT count(*) FROM hot WHERE t <= 30").await, 0);
    assert_eq!(mysql_count(&my.url("iot"), "SELECT count(*) FROM hot WHERE t <= 30").await, 0);
    let lora_rows = pg.count("SELECT count(*) FROM hot WHERE topic LIKE 'application/app1/device/%/event/up'").await;
    assert_eq!(lora_rows, lora_w);

    // The online table follows connects and disconnects, for every protocol: a CoAP
    // connection (`mqtt/connection`) and a LwM2M registration join MQTT, MQTT-SN and LoRaWAN.
    let coap = Raw::new(broker.coap_addr()).await;
    let r = coap.call(RequestType::Post, "mqtt/connection", &["clientid=coap-dev"], b"").await;
    let token = format!("token={}", String::from_utf8_lossy(&r.payload));
    let mut lwm2m = roost_e2e::lwm2m::Device::new(broker.lwm2m_addr()).await;
    lwm2m.register("lwm2m-dev", 300, "U").await;
    let online = "SELECT count(DISTINCT protocol) FROM online WHERE online \
                  AND protocol IN ('mqtt', 'mqtt-sn', 'lorawan', 'coap', 'lwm2m')";
    eventually("a client of every protocol online", SINK_WAIT, || async { pg.count(online).await == 5 }).await;
    mqtt.disconnect().await;
    sn.disconnect().await;
    coap.call(RequestType::Delete, "mqtt/connection", &["clientid=coap-dev", &token], b"").await;
    lwm2m.deregister().await;
    let offline = "SELECT count(DISTINCT protocol) FROM online WHERE NOT online \
                   AND protocol IN ('mqtt', 'mqtt-sn', 'coap', 'lwm2m')";
    eventually("MQTT, MQTT-SN, CoAP and LwM2M clients offline", SINK_WAIT, || async { pg.count(offline).await == 4 })
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn lwm2m_and_lorawan_device_events_feed_rules() {
    let broker = TestBroker::start_with(&format!(
        r#"{lora}
[[rule]]
id = "registry"
sql = 'SELECT event, payload.data.ep AS ep, protocol FROM "$events/lwm2m_register", "$events/lwm2m_update", "$events/lwm2m_deregister"'
[[rule.action]]
type = "republish"
topic = "registry/${{ep}}"
payload = "${{event}} ${{protocol}}"
[[rule]]
id = "uplinks"
sql = 'SELECT payload.object.temp AS t, event, protocol FROM "$events/lorawan_up" WHERE t > 20'
[[rule.action]]
type = "republish"
topic = "uplinks"
payload = "${{event}} ${{protocol}} ${{t}}"
"#,
        lora = lora_device()
    ))
    .await;
    let mut sub = Client5::connect(broker.addr(), "watcher").await;
    sub.subscribe("registry/#", mqtt5::qos(1)).await;
    sub.subscribe("uplinks", mqtt5::qos(1)).await;
    let mut expect = async |topic: &str, payload: &str| {
        let p = sub.expect_publish(SINK_WAIT).await;
        assert_eq!(
            (String::from_utf8_lossy(&p.topic).as_ref(), String::from_utf8_lossy(&p.payload).as_ref()),
            (topic, payload)
        );
    };
    let mut dev = roost_e2e::lwm2m::Device::new(broker.lwm2m_addr()).await;
    dev.register("ev-1", 300, "U").await;
    expect("registry/ev-1", "lwm2m.register lwm2m").await;
    dev.update(&[], "</1/0>,</3/0>").await;
    expect("registry/ev-1", "lwm2m.update lwm2m").await;
    dev.deregister().await;
    expect("registry/ev-1", "lwm2m.deregister lwm2m").await;
    let mut lora = Lora::start(broker.lorawan_addr()).await;
    lora.uplink(b"{\"temp\": 12}").await;
    lora.uplink(b"{\"temp\": 25}").await;
    expect("uplinks", "lorawan.up lorawan 25").await;
    let m = rule(&broker, "uplinks").await["metrics"].clone();
    assert_eq!((m["matched"].as_i64(), m["passed"].as_i64()), (Some(2), Some(1)), "{m}");
    broker.stop().await;
}
