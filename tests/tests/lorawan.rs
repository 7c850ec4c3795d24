//! LoRaWAN end to end: frames built and read by lora-packet (npm, an implementation
//! independent of Roost's, installed by scripts/test and driven by `peers/lorawan_peer.js`),
//! carried in Semtech UDP datagrams from simulated packet forwarders (an up socket for
//! PUSH_DATA and a down socket for PULL_DATA, as the reference forwarder has), with a real
//! MQTT client (rumqttc) on the application side.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use base64::Engine as _;
use roost_e2e::mqtt311::{Client311, qos};
use roost_e2e::{QUIET, TestBroker, WAIT};
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::time::timeout;

pub(crate) const ABP_EUI: &str = "0101010101010101";
pub(crate) const ABP_ADDR: &str = "26011234";
pub(crate) const NWK: &str = "01010101010101010101010101010101";
pub(crate) const APP: &str = "02020202020202020202020202020202";
const OTAA_EUI: &str = "0202020202020202";
const JOIN_EUI: &str = "70b3d57ed0000001";
const APP_KEY: &str = "03030303030303030303030303030303";

fn config(extra: &str) -> String {
    format!(
        r#"{extra}
[[lorawan.device]]
dev_eui = "{ABP_EUI}"
name = "abp-1"
application_id = "app1"
dev_addr = "{ABP_ADDR}"
nwk_s_key = "{NWK}"
app_s_key = "{APP}"
[[lorawan.device]]
dev_eui = "{OTAA_EUI}"
name = "otaa-1"
application_id = "app1"
join_eui = "{JOIN_EUI}"
app_key = "{APP_KEY}"
"#
    )
}

pub(crate) fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub(crate) fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Runs the lora-packet peer; its one line of output.
pub(crate) async fn peer(args: &[&str]) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers");
    assert!(
        std::path::Path::new(dir).join("node_modules/lora-packet").is_dir(),
        "lora-packet is missing: run scripts/test (it runs `npm install --prefix tests/tests/peers lora-packet`)"
    );
    let out = tokio::process::Command::new("node")
        .arg(format!("{dir}/lorawan_peer.js"))
        .args(args)
        .output()
        .await
        .expect("node runs (scripts/test installs nodejs)");
    assert!(out.status.success(), "peer {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn uplink(fcnt: u32, data: &[u8], confirmed: bool) -> Vec<u8> {
    unhex(&peer(&["uplink", ABP_ADDR, NWK, APP, &fcnt.to_string(), "1", &hex(data), &confirmed.to_string()]).await)
}

/// A simulated packet forwarder: PUSH_DATA from `up`, PULL_DATA (and so PULL_RESP) on `down`.
pub(crate) struct Forwarder {
    eui: [u8; 8],
    up: UdpSocket,
    pub(crate) down: UdpSocket,
    server: SocketAddr,
    token: u16,
}

impl Forwarder {
    pub(crate) async fn start(server: SocketAddr, eui: u64) -> Forwarder {
        let f = Forwarder {
            eui: eui.to_be_bytes(),
            up: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            down: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            token: 0,
        };
        f.pull().await;
        f
    }

    fn id(&self) -> String {
        hex(&self.eui)
    }

    pub(crate) async fn recv(sock: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65_536];
        match timeout(wait, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => Some(buf[..n].to_vec()),
            _ => None,
        }
    }

    async fn pull(&self) {
        let mut d = vec![2, 0x77, 0x01, 0x02];
        d.extend_from_slice(&self.eui);
        self.down.send_to(&d, self.server).await.unwrap();
        let ack = Self::recv(&self.down, WAIT).await.expect("PULL_ACK");
        assert_eq!(ack, vec![2, 0x77, 0x01, 0x04]);
    }

    async fn push_raw(&mut self, json: &Value) {
        self.token = self.token.wrapping_add(1);
        let t = self.token.to_be_bytes();
        let mut d = vec![2, t[0], t[1], 0x00];
        d.extend_from_slice(&self.eui);
        d.extend_from_slice(json.to_string().as_bytes());
        self.up.send_to(&d, self.server).await.unwrap();
        let ack = Self::recv(&self.up, WAIT).await.expect("PUSH_ACK");
        assert_eq!(ack, vec![2, t[0], t[1], 0x01]);
    }

    pub(crate) async fn push(&mut self, phy: &[u8], tmst: u32, rssi: i32, snr: f64) {
        let rxpk = json!({"rxpk": [{
            "time": "2026-11-25T16:00:00.000000Z", "tmst": tmst, "chan": 2, "rfch": 0, "freq": 868.5, "stat": 1,
            "modu": "LORA", "datr": "SF7BW125", "codr": "4/5", "rssi": rssi, "lsnr": snr, "size": phy.len(), "data": b64(phy),
        }]});
        self.push_raw(&rxpk).await;
    }

    /// The next PULL_RESP on the down socket: (token, txpk).
    async fn pull_resp(&self) -> (u16, Value) {
        let d = Self::recv(&self.down, WAIT).await.expect("PULL_RESP");
        assert_eq!((d[0], d[3]), (2, 0x03), "not a PULL_RESP: {d:?}");
        let v: Value = serde_json::from_slice(&d[4..]).unwrap();
        (u16::from_be_bytes([d[1], d[2]]), v["txpk"].clone())
    }

    async fn tx_ack(&self, token: u16, error: &str) {
        let t = token.to_be_bytes();
        let mut d = vec![2, t[0], t[1], 0x05];
        d.extend_from_slice(&self.eui);
        d.extend_from_slice(json!({"txpk_ack": {"error": error}}).to_string().as_bytes());
        self.down.send_to(&d, self.server).await.unwrap();
    }
}

pub(crate) async fn app_client(broker: &TestBroker, filter: &str) -> Client311 {
    let mut c = Client311::connect(broker.addr(), "application").await;
    c.subscribe(filter, qos(1)).await;
    c
}

/// The next publish on `topic_suffix` (others are skipped), as JSON.
pub(crate) async fn expect_event(c: &mut Client311, topic_suffix: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let p = c.recv_publish(left).await.unwrap_or_else(|| panic!("no {topic_suffix} event within {WAIT:?}"));
        if p.topic.ends_with(topic_suffix) {
            return serde_json::from_slice(&p.payload).unwrap();
        }
    }
}

/// Waits (bounded) until `read` reaches `want`.
pub(crate) async fn counter_reaches(read: impl Fn() -> u64, want: u64, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while read() < want {
        assert!(tokio::time::Instant::now() < deadline, "{what} stayed at {} (want {want})", read());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn lora_packet_uplink_comes_out_decrypted_with_metadata() {
    let broker = TestBroker::start_with(&config("")).await;
    let mut app = app_client(&broker, "application/#").await;
    let mut gw = Forwarder::start(broker.lorawan_addr(), 0xaa55_5a00_0000_0101).await;
    gw.push(&uplink(5, b"hello", false).await, 1_234_567, -57, 7.5).await;
    let up = expect_event(&mut app, "/device/0101010101010101/event/up").await;
    assert_eq!(up["data"], b64(b"hello"));
    assert_eq!(up["fCnt"], 5);
    assert_eq!(up["fPort"], 1);
    assert_eq!(up["confirmed"], false);
    assert_eq!(up["devAddr"], ABP_ADDR);
    assert_eq!(up["dr"], 5);
    assert_eq!(up["deviceInfo"]["deviceName"], "abp-1");
    assert_eq!(up["deviceInfo"]["applicationId"], "app1");
    assert_eq!(up["txInfo"]["frequency"], 868_500_000);
    assert_eq!(up["txInfo"]["modulation"]["lora"]["spreadingFactor"], 7);
    let rx = up["rxInfo"].as_array().unwrap();
    assert_eq!(rx.len(), 1);
    assert_eq!(rx[0]["gatewayId"], gw.id());
    assert_eq!(rx[0]["rssi"], -57);
    assert_eq!(rx[0]["snr"], 7.5);
    assert_eq!(unb64(rx[0]["context"].as_str().unwrap()), 1_234_567u32.to_be_bytes());
    assert!(up["deduplicationId"].as_str().unwrap().len() == 36);
    // The gateway and both registered devices are core clients of protocol lorawan, and the
    // uplink counted as a lorawan message in.
    let snap = broker.broker().metrics().snapshot();
    let (_, conns, msgs_in, _) = *snap.by_protocol.iter().find(|(p, ..)| *p == "lorawan").unwrap();
    assert_eq!(conns, 3);
    assert!(msgs_in >= 1);
    broker.stop().await;
}

#[tokio::test]
async fn join_request_gets_a_join_accept_lora_packet_accepts() {
    let broker = TestBroker::start_with(&config("")).await;
    let mut app = app_client(&broker, "application/#").await;
    let mut gw = Forwarder::start(broker.lorawan_addr(), 7).await;
    let jr = unhex(&peer(&["join", JOIN_EUI, OTAA_EUI, "1a2b", APP_KEY]).await);
    gw.push(&jr, 4_000_000_000, -80, 2.0).await;
    let (token, txpk) = gw.pull_resp().await;
    // RX1 of the join: JOIN_ACCEPT_DELAY1 (5 s) after the uplink, in wrapping u32 µs.
    assert_eq!(txpk["tmst"], 4_000_000_000u32.wrapping_add(5_000_000));
    assert_eq!(txpk["freq"], 868.5);
    assert_eq!(txpk["datr"], "SF7BW125");
    assert_eq!(txpk["ipol"], true);
    let accept = hex(&unb64(txpk["data"].as_str().unwrap()));
    let session: Value = serde_json::from_str(&peer(&["accept", &accept, APP_KEY, "1a2b"]).await).unwrap();
    assert_eq!(session["micOk"], true, "{session}");
    let join = expect_event(&mut app, "/device/0202020202020202/event/join").await;
    assert_eq!(join["devAddr"], session["devAddr"]);
    gw.tx_ack(token, "NONE").await;
    // The device now talks with the keys it derived.
    let (addr, nwk, appk) = (
        session["devAddr"].as_str().unwrap(),
        session["nwkSKey"].as_str().unwrap(),
        session["appSKey"].as_str().unwrap(),
    );
    let up = unhex(&peer(&["uplink", addr, nwk, appk, "0", "2", "cafe"]).await);
    gw.push(&up, 10, -80, 2.0).await;
    let up = expect_event(&mut app, "/device/0202020202020202/event/up").await;
    assert_eq!(up["data"], b64(&[0xca, 0xfe]));
    assert_eq!(up["fCnt"], 0);
    // The same DevNonce again is a replay.
    gw.push(&jr, 20, -80, 2.0).await;
    counter_reaches(|| broker.lorawan_counters().ns.dev_nonce_replays.load(Relaxed), 1, "dev_nonce_replays").await;
    broker.stop().await;
}

#[tokio::test]
async fn one_uplink_heard_by_three_gateways_is_published_once_with_three_rx_infos() {
    let broker = TestBroker::start_with(&config("")).await;
    let mut app = app_client(&broker, "application/+/device/+/event/up").await;
    let mut gws = Vec::new();
    for eui in 1..=3u64 {
        gws.push(Forwarder::start(broker.lorawan_addr(), eui).await);
    }
    let f = uplink(9, b"triple", false).await;
    for (i, gw) in gws.iter_mut().enumerate() {
        gw.push(&f, 100 + i as u32, -100 + 10 * i as i32, i as f64).await;
    }
    let up = expect_event(&mut app, "/event/up").await;
    assert_eq!(up["fCnt"], 9);
    let rx = up["rxInfo"].as_array().unwrap();
    let mut ids: Vec<&str> = rx.iter().map(|r| r["gatewayId"].as_str().unwrap()).collect();
    assert_eq!(ids[0], gws[2].id(), "best SNR first");
    ids.sort_unstable();
    assert_eq!(ids, vec![gws[0].id(), gws[1].id(), gws[2].id()]);
    // Once: the next frame's event comes next, with nothing in between.
    gws[0].push(&uplink(10, b"next", false).await, 200, -90, 1.0).await;
    let next = expect_event(&mut app, "/event/up").await;
    assert_eq!(next["fCnt"], 10);
    assert_eq!(broker.lorawan_counters().ns.duplicates.load(Relaxed), 2);
    broker.stop().await;
}

#[tokio::test]
async fn replay_and_wrong_mic_are_rejected_and_counted() {
    let broker = TestBroker::start_with(&config("")).await;
    let mut app = app_client(&broker, "application/+/device/+/event/up").await;
    let mut gw = Forwarder::start(broker.lorawan_addr(), 1).await;
    let f = uplink(5, b"a", false).await;
    gw.push(&f, 1, -60, 5.0).await;
    assert_eq!(expect_event(&mut app, "/event/up").await["fCnt"], 5);
    let c = broker.lorawan_counters();
    gw.push(&f, 2, -60, 5.0).await;
    counter_reaches(|| c.ns.replays.load(Relaxed), 1, "replays").await;
    let forged = unhex(&peer(&["uplink", ABP_ADDR, APP, APP, "6", "1", "00"]).await);
    gw.push(&forged, 3, -60, 5.0).await;
    counter_reaches(|| c.ns.mic_failures.load(Relaxed), 1, "mic_failures").await;
    gw.push(&uplink(6, b"b", false).await, 4, -60, 5.0).await;
    let up = expect_event(&mut app, "/event/up").await;
    assert_eq!(up["fCnt"], 6, "neither the replay nor the forgery was published");
    app.assert_no_publish(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_the_frame_counters() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(&format!("[storage]\ndata_dir = {:?}\n", dir.path().display().to_string()));
    let broker = TestBroker::start_with(&text).await;
    let mut app = app_client(&broker, "application/+/device/+/event/up").await;
    let mut gw = Forwarder::start(broker.lorawan_addr(), 1).await;
    let f = uplink(41, b"before", false).await;
    gw.push(&f, 1, -60, 5.0).await;
    assert_eq!(expect_event(&mut app, "/event/up").await["fCnt"], 41);
    app.disconnect().await;
    broker.stop().await;

    let broker = TestBroker::start_with(&text).await;
    let mut app = app_client(&broker, "application/+/device/+/event/up").await;
    let mut gw = Forwarder::start(broker.lorawan_addr(), 1).await;
    gw.push(&f, 2, -60, 5.0).await;
    counter_reaches(|| broker.lorawan_counters().ns.replays.load(Relaxed), 1, "replays after restart").await;
    gw.push(&uplink(42, b"after", false).await, 3, -60, 5.0).await;
    let up = expect_event(&mut app, "/event/up").await;
    assert_eq!(up["fCnt"], 42);
    assert_eq!(up["data"], b64(b"after"));
    broker.stop().await;
}

#[tokio::test]
async fn queued_downlink_goes_out_in_rx1_via_the_best_gateway_and_txack_is_reported() {
    let broker = TestBroker::start_with(&config("")).await;
    let mut app = app_client(&broker, "application/+/device/+/event/+").await;
    let mut weak = Forwarder::start(broker.lorawan_addr(), 0x11).await;
    let mut strong = Forwarder::start(broker.lorawan_addr(), 0x22).await;
    let cmd = json!({"devEui": ABP_EUI, "confirmed": false, "fPort": 7, "data": b64(b"on")});
    app.publish("application/app1/device/0101010101010101/command/down", qos(1), false, cmd.to_string()).await;
    // The command reaches the network server asynchronously: uplink until a downlink with
    // data comes out (bounded), each uplink heard by both gateways.
    let mut found = None;
    for fcnt in 1..=5u32 {
        let f = uplink(fcnt, b"x", false).await;
        let tmst = 3_000_000_000 + fcnt;
        weak.push(&f, tmst, -110, -5.0).await;
        strong.push(&f, tmst + 7, -70, 6.0).await;
        if let Some(d) = Forwarder::recv(&strong.down, Duration::from_millis(800)).await {
            found = Some((tmst + 7, d));
            break;
        }
    }
    let (tmst, d) = found.expect("a PULL_RESP on the strong gateway's PULL_DATA socket");
    assert_eq!(d[3], 0x03);
    let token = u16::from_be_bytes([d[1], d[2]]);
    let txpk: Value = serde_json::from_slice::<Value>(&d[4..]).unwrap()["txpk"].clone();
    assert_eq!(txpk["tmst"], tmst + 1_000_000, "RX1: 1 s after the uplink");
    assert_eq!(txpk["freq"], 868.5);
    assert_eq!(txpk["datr"], "SF7BW125");
    let down: Value =
        serde_json::from_str(&peer(&["down", &hex(&unb64(txpk["data"].as_str().unwrap())), NWK, APP]).await).unwrap();
    assert_eq!(down["micOk"], true);
    assert_eq!(down["mtype"], "Unconfirmed Data Down");
    assert_eq!(down["fport"], 7);
    assert_eq!(down["payload"], hex(b"on"));
    assert!(Forwarder::recv(&weak.down, QUIET).await.is_none(), "the weaker gateway sends nothing");
    assert!(Forwarder::recv(&strong.up, QUIET).await.is_none(), "nothing goes to the PUSH_DATA address");
    strong.tx_ack(token, "NONE").await;
    let txack = expect_event(&mut app, "/event/txack").await;
    assert_eq!(txack["gatewayId"], strong.id());
    assert_eq!(txack["fCntDown"], down["fcnt"]);
    broker.stop().await;
}

#[tokio::test]
async fn confirmed_uplink_is_acknowledged() {
    let broker = TestBroker::start_with(&config("")).await;
    let mut gw = Forwarder::start(broker.lorawan_addr(), 1).await;
    gw.push(&uplink(3, b"c", true).await, 500, -60, 5.0).await;
    let (_, txpk) = gw.pull_resp().await;
    let down: Value =
        serde_json::from_str(&peer(&["down", &hex(&unb64(txpk["data"].as_str().unwrap())), NWK, APP]).await).unwrap();
    assert_eq!(down["micOk"], true);
    assert_eq!(down["ack"], true);
    broker.stop().await;
}

#[tokio::test]
async fn bridge_mode_round_trips_up_and_down() {
    let broker = TestBroker::start_with("[lorawan]\nmode = \"bridge\"\ntopic_prefix = \"eu868\"\n").await;
    let mut app = app_client(&broker, "eu868/gateway/#").await;
    let mut gw = Forwarder::start(broker.lorawan_addr(), 0x0102_0304_0506_0708).await;
    let state = expect_event(&mut app, "/state/conn").await;
    assert_eq!(state, json!({"gatewayId": "0102030405060708", "state": "ONLINE"}));
    let f = uplink(1, b"raw", false).await;
    gw.push(&f, 0xffff_ff00, -70, 4.5).await;
    let up = expect_event(&mut app, "/gateway/0102030405060708/event/up").await;
    assert_eq!(unb64(up["phyPayload"].as_str().unwrap()), f);
    assert_eq!(up["rxInfo"]["gatewayId"], "0102030405060708");
    assert_eq!(up["rxInfo"]["rssi"], -70);
    let context = up["rxInfo"]["context"].as_str().unwrap().to_string();
    assert_eq!(unb64(&context), 0xffff_ff00u32.to_be_bytes());
    assert_eq!(up["txInfo"]["frequency"], 868_500_000);

    // A DownlinkFrame as ChirpStack sends it: RX1 then RX2, timed on the uplink's context.
    let phy = b64(&[0x60, 1, 2, 3, 4, 0, 0, 0, 9, 9, 9, 9]);
    let item = |freq: u64, sf: u8, delay: &str| json!({"phyPayload": phy, "txInfo": {"frequency": freq, "power": 14, "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": sf, "codeRate": "CR_4_5", "polarizationInversion": true}}, "timing": {"delay": {"delay": delay}}, "context": context}});
    let frame = json!({"downlinkId": 4242, "gatewayId": "0102030405060708", "items": [item(868_500_000, 7, "1s"), item(869_525_000, 12, "2s")]});
    app.publish("eu868/gateway/0102030405060708/command/down", qos(1), false, frame.to_string()).await;
    let (t1, txpk) = gw.pull_resp().await;
    assert_eq!(txpk["tmst"], 0xffff_ff00u32.wrapping_add(1_000_000));
    assert_eq!(txpk["datr"], "SF7BW125");
    gw.tx_ack(t1, "TOO_LATE").await;
    let (t2, txpk) = gw.pull_resp().await;
    assert_eq!(txpk["tmst"], 0xffff_ff00u32.wrapping_add(2_000_000));
    assert_eq!(txpk["freq"], 869.525);
    assert_eq!(txpk["datr"], "SF12BW125");
    assert_eq!(unb64(txpk["data"].as_str().unwrap()), unb64(&phy));
    gw.tx_ack(t2, "NONE").await;
    let ack = expect_event(&mut app, "/event/ack").await;
    assert_eq!(
        ack,
        json!({"gatewayId": "0102030405060708", "downlinkId": 4242, "items": [{"status": "TOO_LATE"}, {"status": "OK"}]})
    );
    // The stats of a PUSH_DATA `stat` object.
    gw.push_raw(&json!({"stat": {"time": "2026-11-25 16:00:00 GMT", "rxnb": 3, "rxok": 2, "rxfw": 2, "ackr": 100.0, "dwnb": 2, "txnb": 1}})).await;
    let stats = expect_event(&mut app, "/event/stats").await;
    assert_eq!((stats["rxPacketsReceived"].as_u64(), stats["txPacketsEmitted"].as_u64()), (Some(3), Some(1)));
    broker.stop().await;
}

#[tokio::test]
async fn bridge_gateway_goes_offline_when_silent() {
    let broker = TestBroker::start_with("[lorawan]\nmode = \"bridge\"\ngateway_timeout = \"1s\"\n").await;
    let mut app = app_client(&broker, "eu868/gateway/+/state/conn").await;
    let _gw = Forwarder::start(broker.lorawan_addr(), 9).await;
    assert_eq!(expect_event(&mut app, "/state/conn").await["state"], "ONLINE");
    let p = app.expect_publish(Duration::from_secs(5)).await;
    let v: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(v["state"], "OFFLINE");
    // Retained: a late subscriber sees the gateway offline.
    let mut late = Client311::connect(broker.addr(), "late").await;
    late.subscribe("eu868/gateway/+/state/conn", qos(0)).await;
    let p = late.expect_publish(WAIT).await;
    assert!(p.retain);
    assert_eq!(serde_json::from_slice::<Value>(&p.payload).unwrap()["state"], "OFFLINE");
    broker.stop().await;
}

#[tokio::test]
async fn malformed_datagrams_and_frames_are_counted_and_never_panic() {
    let broker = TestBroker::start_with(&config("")).await;
    let mut app = app_client(&broker, "application/+/device/+/event/up").await;
    let server = broker.lorawan_addr();
    let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let eui = [0, 0, 0, 0, 0, 0, 0, 5];
    let mut bad: Vec<Vec<u8>> =
        vec![vec![], vec![2], vec![2, 0, 0], vec![9, 0, 0, 0], vec![2, 0, 0, 0x42], vec![2, 0, 0, 0, 1, 2, 3]];
    let push = |body: &[u8]| {
        let mut d = vec![2, 0, 1, 0];
        d.extend_from_slice(&eui);
        d.extend_from_slice(body);
        d
    };
    bad.push(push(b"{"));
    bad.push(push(b"{\"rxpk\":[{\"tmst\":\"no\"}]}"));
    bad.push(push(&[0xff; 300]));
    let mut seed = 0x1234_5678u32;
    for len in 0..64usize {
        let mut d = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            d.push(seed as u8);
        }
        bad.push(d);
    }
    for d in &bad {
        raw.send_to(d, server).await.unwrap();
    }
    let c = broker.lorawan_counters();
    counter_reaches(|| c.malformed.load(Relaxed) + c.unknown_version.load(Relaxed), 9, "malformed + unknown_version")
        .await;
    assert!(c.unknown_version.load(Relaxed) >= 1);
    // Well-formed datagrams carrying garbage PHYPayloads.
    let mut gw = Forwarder::start(server, 6).await;
    for phy in [
        vec![],
        vec![0x40],
        vec![0x40, 1, 2, 3, 4, 0x0f, 0, 0, 0, 0, 0, 0],
        vec![0xe0; 30],
        vec![0x00; 23],
        vec![0x40; 255],
    ] {
        gw.push(&phy, 1, -60, 1.0).await;
    }
    gw.push_raw(&json!({"rxpk": [{"tmst": 1, "freq": 868.1, "modu": "LORA", "datr": "SF7BW125", "data": "!!!"}]}))
        .await;
    // Still serving.
    gw.push(&uplink(1, b"alive", false).await, 9, -60, 1.0).await;
    assert_eq!(expect_event(&mut app, "/event/up").await["data"], b64(b"alive"));
    broker.stop().await;
}

#[tokio::test]
async fn bridge_mode_protobuf_round_trip() {
    use prost::Message as _;
    use roost_lorawan::gwpb;
    let broker =
        TestBroker::start_with("[lorawan]\nmode = \"bridge\"\nmarshaler = \"protobuf\"\ntopic_prefix = \"us915\"\n")
            .await;
    let mut app = app_client(&broker, "us915/gateway/#").await;
    let mut gw = Forwarder::start(broker.lorawan_addr(), 0x0a0b).await;
    let p = app.expect_publish(WAIT).await;
    assert!(p.topic.ends_with("/state/conn"));
    assert_eq!(gwpb::ConnState::decode(p.payload.as_ref()).unwrap().state, 1);
    let f = uplink(2, b"pb", false).await;
    gw.push(&f, 77, -70, 4.5).await;
    let p = app.expect_publish(WAIT).await;
    assert_eq!(p.topic, "us915/gateway/0000000000000a0b/event/up");
    let up = gwpb::UplinkFrame::decode(p.payload.as_ref()).unwrap();
    assert_eq!(up.phy_payload, f);
    let rx = up.rx_info.unwrap();
    assert_eq!(rx.context, 77u32.to_be_bytes().to_vec());
    let lora = gwpb::LoraModulationInfo {
        bandwidth: 500_000,
        spreading_factor: 12,
        code_rate: gwpb::CodeRate::Cr45 as i32,
        polarization_inversion: true,
    };
    let frame = gwpb::DownlinkFramePb {
        downlink_id: 5,
        gateway_id: "0000000000000a0b".into(),
        items: vec![gwpb::DownlinkFrameItem {
            phy_payload: vec![0x60, 1, 2, 3, 4, 0, 0, 0, 1, 2, 3, 4],
            tx_info: Some(gwpb::DownlinkTxInfo {
                frequency: 923_300_000,
                power: 20,
                modulation: Some(gwpb::Modulation { parameters: Some(gwpb::ModulationParameters::Lora(lora)) }),
                board: 0,
                antenna: 0,
                timing: Some(gwpb::Timing {
                    parameters: Some(gwpb::TimingParameters::Delay(gwpb::DelayTimingInfo {
                        delay: Some(gwpb::PbDuration { seconds: 1, nanos: 0 }),
                    })),
                }),
                context: rx.context.clone(),
            }),
        }],
    };
    app.publish("us915/gateway/0000000000000a0b/command/down", qos(1), false, frame.encode_to_vec()).await;
    let (token, txpk) = gw.pull_resp().await;
    assert_eq!(txpk["tmst"], 1_000_077);
    assert_eq!(txpk["freq"], 923.3);
    assert_eq!(txpk["datr"], "SF12BW500");
    gw.tx_ack(token, "NONE").await;
    // The subscriber sees its own command/down too; the ack follows.
    let mut p = app.expect_publish(WAIT).await;
    while p.topic.ends_with("/command/down") {
        p = app.expect_publish(WAIT).await;
    }
    assert!(p.topic.ends_with("/event/ack"), "{}", p.topic);
    let ack = gwpb::DownlinkTxAck::decode(p.payload.as_ref()).unwrap();
    assert_eq!((ack.downlink_id, ack.items.len(), ack.items[0].status), (5, 1, gwpb::TxAckStatus::Ok as i32));
    broker.stop().await;
}

// ---- The management API's LoRaWAN routes, over real HTTP ----

const API_EUI: &str = "0303030303030303";
const API_ADDR: &str = "26015678";
const API_NWK: &str = "04040404040404040404040404040404";
const API_APP: &str = "05050505050505050505050505050505";

fn api_device() -> Value {
    json!({"dev_eui": API_EUI, "name": "api-1", "application_id": "app2", "dev_addr": API_ADDR, "nwk_s_key": API_NWK, "app_s_key": API_APP})
}

async fn api_uplink(fcnt: u32, data: &[u8]) -> Vec<u8> {
    unhex(&peer(&["uplink", API_ADDR, API_NWK, API_APP, &fcnt.to_string(), "1", &hex(data)]).await)
}

#[tokio::test]
async fn api_device_lifecycle_uplink_downlink_and_delete() {
    let broker = TestBroker::start_with(&config("")).await;
    let api = broker.api();
    let anon = roost_e2e::api::Api::anonymous(broker.http_addr());
    for path in ["/api/v1/lorawan/devices", "/api/v1/lorawan/gateways", &format!("/api/v1/lorawan/devices/{ABP_EUI}")] {
        assert_eq!(anon.get(path).await.0, 401, "{path}");
    }
    assert_eq!(anon.call("POST", "/api/v1/lorawan/devices", Some(&api_device())).await.0, 401);

    // Create: it is listed (after the two config devices, by DevEUI), and shown.
    let (status, dev) = api.call("POST", "/api/v1/lorawan/devices", Some(&api_device())).await;
    assert_eq!(status, 201, "{dev}");
    assert_eq!(
        (dev["dev_eui"].as_str(), dev["origin"].as_str(), dev["activation"].as_str()),
        (Some(API_EUI), Some("api"), Some("abp"))
    );
    assert_eq!((dev["dev_addr"].as_str(), dev["class"].as_str()), (Some(API_ADDR), Some("A")));
    assert_eq!((dev["f_cnt_up"].clone(), dev["f_cnt_down"].clone()), (Value::Null, json!(0)));
    assert!(dev.get("nwk_s_key").is_none() && dev.get("app_s_key").is_none(), "keys are never shown: {dev}");
    let (status, list) = api.get("/api/v1/lorawan/devices").await;
    assert_eq!(status, 200);
    let euis: Vec<&str> = list["data"].as_array().unwrap().iter().map(|d| d["dev_eui"].as_str().unwrap()).collect();
    assert_eq!(euis, vec![ABP_EUI, OTAA_EUI, API_EUI]);
    assert_eq!(list["meta"]["count"], 3);
    let (_, page2) = api.get("/api/v1/lorawan/devices?limit=1&page=2").await;
    assert_eq!(page2["data"][0]["dev_eui"], OTAA_EUI);
    assert_eq!(page2["meta"]["hasnext"], true);

    // Refusals: duplicate, a config device's EUI, bad keys, neither ABP nor OTAA.
    assert_eq!(api.call("POST", "/api/v1/lorawan/devices", Some(&api_device())).await.0, 409);
    let mut dup = api_device();
    dup["dev_eui"] = json!(ABP_EUI);
    let (status, err) = api.call("POST", "/api/v1/lorawan/devices", Some(&dup)).await;
    assert_eq!((status, err["code"].as_str()), (409, Some("CONFLICT")), "{err}");
    let mut bad = api_device();
    bad["dev_eui"] = json!("0404040404040404");
    bad["nwk_s_key"] = json!("xyz");
    let (status, err) = api.call("POST", "/api/v1/lorawan/devices", Some(&bad)).await;
    assert_eq!((status, err["code"].as_str()), (400, Some("BAD_REQUEST")), "{err}");
    assert!(err["message"].as_str().unwrap().starts_with("nwk_s_key:"), "{err}");
    let both = json!({"dev_eui": "0404040404040404", "application_id": "a", "dev_addr": API_ADDR, "app_key": APP_KEY});
    assert_eq!(api.call("POST", "/api/v1/lorawan/devices", Some(&both)).await.0, 400);
    assert_eq!(api.get("/api/v1/lorawan/devices/0404040404040404").await.0, 404);
    assert_eq!(api.get("/api/v1/lorawan/devices/nothex").await.0, 400);

    // Its uplink is accepted: event/up on its application's topic, counters in the API.
    let mut app = app_client(&broker, "application/app2/#").await;
    let mut gw = Forwarder::start(broker.lorawan_addr(), 0xa1).await;
    gw.push(&api_uplink(1, b"hi").await, 1_000, -60, 5.0).await;
    let up = expect_event(&mut app, &format!("/device/{API_EUI}/event/up")).await;
    assert_eq!(
        (up["data"].as_str(), up["deviceInfo"]["deviceName"].as_str()),
        (Some(b64(b"hi").as_str()), Some("api-1"))
    );
    let (_, dev) = api.get(&format!("/api/v1/lorawan/devices/{API_EUI}")).await;
    assert_eq!(dev["f_cnt_up"], 1);
    assert!(dev["last_seen"].is_string(), "{dev}");

    // The gateway list shows the forwarder, with its downlink path and the frame it sent.
    let (status, gws) = api.get("/api/v1/lorawan/gateways").await;
    assert_eq!(status, 200);
    assert_eq!(gws["meta"]["count"], 1, "{gws}");
    let g = &gws["data"][0];
    assert_eq!(g["gateway_id"], gw.id());
    assert_eq!(g["pull_address"], gw.down.local_addr().unwrap().to_string());
    assert_eq!((g["rx_frames"].as_u64(), g["protocol_version"].as_u64()), (Some(1), Some(2)));
    assert!(g["last_seen"].is_string());

    // A downlink queued through the API goes out in the device's RX1 after its next uplink.
    let queue = format!("/api/v1/lorawan/devices/{API_EUI}/queue");
    assert_eq!(api.call("POST", &queue, Some(&json!({"f_port": 0}))).await.0, 400);
    assert_eq!(api.call("POST", &queue, Some(&json!({"f_port": 9, "data_hex": "zz"}))).await.0, 400);
    assert_eq!(api.call("POST", &queue, Some(&json!({"f_port": 9, "data": "AA==", "data_hex": "00"}))).await.0, 400);
    assert_eq!(
        api.call("POST", "/api/v1/lorawan/devices/0404040404040404/queue", Some(&json!({"f_port": 9}))).await.0,
        404
    );
    let (status, queued) =
        api.call("POST", &queue, Some(&json!({"f_port": 9, "data_hex": "beef", "confirmed": false}))).await;
    assert_eq!(status, 200, "{queued}");
    let id = queued["id"].as_str().unwrap().to_string();
    assert_eq!(api.get(&format!("/api/v1/lorawan/devices/{API_EUI}")).await.1["queued"], 1);
    gw.push(&api_uplink(2, b"again").await, 2_000_000, -60, 5.0).await;
    let (token, txpk) = gw.pull_resp().await;
    assert_eq!(txpk["tmst"], 3_000_000, "RX1: 1 s after the uplink");
    let down: Value =
        serde_json::from_str(&peer(&["down", &hex(&unb64(txpk["data"].as_str().unwrap())), API_NWK, API_APP]).await)
            .unwrap();
    assert_eq!(
        (down["micOk"].as_bool(), down["fport"].as_u64(), down["payload"].as_str()),
        (Some(true), Some(9), Some("beef")),
        "{down}"
    );
    assert_eq!(down["devAddr"], API_ADDR);
    gw.tx_ack(token, "NONE").await;
    let txack = expect_event(&mut app, "/event/txack").await;
    assert_eq!(txack["queueItemId"], id);
    let (_, gws) = api.get("/api/v1/lorawan/gateways").await;
    assert_eq!(gws["data"][0]["tx_frames"], 1);

    // Deleted: gone from the API, and its uplinks are no longer accepted.
    assert_eq!(
        api.call("DELETE", &format!("/api/v1/lorawan/devices/{ABP_EUI}"), None).await.0,
        409,
        "a config device stays"
    );
    assert_eq!(api.call("DELETE", &format!("/api/v1/lorawan/devices/{API_EUI}"), None).await.0, 204);
    assert_eq!(api.get(&format!("/api/v1/lorawan/devices/{API_EUI}")).await.0, 404);
    assert_eq!(api.call("DELETE", &format!("/api/v1/lorawan/devices/{API_EUI}"), None).await.0, 404);
    assert_eq!(api.get("/api/v1/lorawan/devices").await.1["meta"]["count"], 2);
    let unknown = broker.lorawan_counters().ns.unknown_devices.load(Relaxed);
    gw.push(&api_uplink(3, b"late").await, 3_000, -60, 5.0).await;
    counter_reaches(|| broker.lorawan_counters().ns.unknown_devices.load(Relaxed), unknown + 1, "unknown_devices")
        .await;
    app.assert_no_publish(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn api_created_device_survives_a_restart_and_so_does_its_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("[storage]\ndata_dir = {:?}\n", dir.path().display().to_string());
    let broker = TestBroker::start_with(&text).await;
    let (status, dev) = broker.api().call("POST", "/api/v1/lorawan/devices", Some(&api_device())).await;
    assert_eq!(status, 201, "{dev}");
    let mut app = app_client(&broker, "application/+/device/+/event/up").await;
    let mut gw = Forwarder::start(broker.lorawan_addr(), 1).await;
    let f = api_uplink(7, b"before").await;
    gw.push(&f, 1, -60, 5.0).await;
    assert_eq!(expect_event(&mut app, "/event/up").await["fCnt"], 7);
    app.disconnect().await;
    broker.stop().await;

    let broker = TestBroker::start_with(&text).await;
    let api = broker.api();
    let (status, dev) = api.get(&format!("/api/v1/lorawan/devices/{API_EUI}")).await;
    assert_eq!(status, 200, "{dev}");
    assert_eq!(
        (dev["origin"].as_str(), dev["name"].as_str(), dev["f_cnt_up"].as_u64()),
        (Some("api"), Some("api-1"), Some(7))
    );
    let mut app = app_client(&broker, "application/+/device/+/event/up").await;
    let mut gw = Forwarder::start(broker.lorawan_addr(), 1).await;
    gw.push(&f, 2, -60, 5.0).await;
    counter_reaches(|| broker.lorawan_counters().ns.replays.load(Relaxed), 1, "replays after restart").await;
    gw.push(&api_uplink(8, b"after").await, 3, -60, 5.0).await;
    assert_eq!(expect_event(&mut app, "/event/up").await["fCnt"], 8);
    assert_eq!(api.call("DELETE", &format!("/api/v1/lorawan/devices/{API_EUI}"), None).await.0, 204);
    app.disconnect().await;
    broker.stop().await;

    let broker = TestBroker::start_with(&text).await;
    assert_eq!(broker.api().get(&format!("/api/v1/lorawan/devices/{API_EUI}")).await.0, 404);
    assert_eq!(broker.api().get("/api/v1/lorawan/devices").await.1["meta"]["count"], 0);
    broker.stop().await;
}

#[tokio::test]
async fn api_created_otaa_device_joins() {
    let broker = TestBroker::start_with("").await;
    let body = json!({"dev_eui": OTAA_EUI, "application_id": "app3", "join_eui": JOIN_EUI, "app_key": APP_KEY, "payload_codec": "json"});
    let (status, dev) = broker.api().call("POST", "/api/v1/lorawan/devices", Some(&body)).await;
    assert_eq!(status, 201, "{dev}");
    assert_eq!(
        (dev["activation"].as_str(), dev["join_eui"].as_str(), dev["dev_addr"].clone()),
        (Some("otaa"), Some(JOIN_EUI), Value::Null)
    );
    let mut gw = Forwarder::start(broker.lorawan_addr(), 7).await;
    gw.push(&unhex(&peer(&["join", JOIN_EUI, OTAA_EUI, "0a0b", APP_KEY]).await), 10, -80, 2.0).await;
    let (_, txpk) = gw.pull_resp().await;
    let session: Value =
        serde_json::from_str(&peer(&["accept", &hex(&unb64(txpk["data"].as_str().unwrap())), APP_KEY, "0a0b"]).await)
            .unwrap();
    assert_eq!(session["micOk"], true, "{session}");
    let (_, dev) = broker.api().get(&format!("/api/v1/lorawan/devices/{OTAA_EUI}")).await;
    assert_eq!(dev["dev_addr"], session["devAddr"]);
    // ChirpStack's spelling of the port, base64 data.
    let (status, r) = broker
        .api()
        .call(
            "POST",
            &format!("/api/v1/lorawan/devices/{OTAA_EUI}/queue"),
            Some(&json!({"fPort": 2, "data": b64(b"x")})),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(broker.api().get(&format!("/api/v1/lorawan/devices/{OTAA_EUI}")).await.1["queued"], 1);
    broker.stop().await;
}

#[tokio::test]
async fn api_in_bridge_mode_lists_gateways_but_has_no_devices() {
    let broker = TestBroker::start_with("[lorawan]\nmode = \"bridge\"\n").await;
    let _gw = Forwarder::start(broker.lorawan_addr(), 0x0b).await;
    let api = broker.api();
    let (status, gws) = api.get("/api/v1/lorawan/gateways").await;
    assert_eq!((status, gws["data"][0]["gateway_id"].as_str()), (200, Some("000000000000000b")), "{gws}");
    let (status, err) = api.get("/api/v1/lorawan/devices").await;
    assert_eq!((status, err["code"].as_str()), (409, Some("CONFLICT")), "{err}");
    assert_eq!(api.call("POST", "/api/v1/lorawan/devices", Some(&api_device())).await.0, 409);
    broker.stop().await;
}

#[tokio::test]
async fn trace_of_a_device_and_of_its_gateway_shows_frames_both_ways() {
    let broker = TestBroker::start_with(&config("")).await;
    let api = broker.api();
    let dir = tempfile::tempdir().unwrap();
    let (dev_file, gw_file) = (dir.path().join("dev.log"), dir.path().join("gw.log"));
    let mut gw = Forwarder::start(broker.lorawan_addr(), 0xabc).await;
    for (target, file) in [(format!("lorawan-{ABP_EUI}"), &dev_file), (format!("lorawan-gw-{}", gw.id()), &gw_file)] {
        let (status, r) =
            api.call("POST", "/api/v1/traces", Some(&json!({"type": "client", "target": target, "file": file}))).await;
        assert_eq!(status, 201, "{r}");
    }
    // A confirmed uplink: traced in, and the ACK it gets traced out.
    gw.push(&uplink(3, b"c", true).await, 500, -60, 5.0).await;
    let (token, _) = gw.pull_resp().await;
    gw.tx_ack(token, "NONE").await;
    for target in [format!("lorawan-{ABP_EUI}"), format!("lorawan-gw-{}", gw.id())] {
        assert_eq!(api.call("DELETE", &format!("/api/v1/traces?type=client&target={target}"), None).await.0, 204);
    }
    let dev = std::fs::read_to_string(&dev_file).unwrap();
    for expected in [
        &format!("lorawan client=lorawan-{ABP_EUI} peer=127.0.0.1:"),
        &format!(" in packet ConfirmedUp dev_addr={ABP_ADDR} fcnt=3 fport=Some(1)"),
        &format!("[gateway={} tmst=500 freq=868.5", gw.id()),
        &format!(" in message topic=application/app1/device/{ABP_EUI}/event/up"),
        " out packet DataDown fcnt_down=Some(0) fport=None",
        &format!("via gateway={} uplink_tmst=500", gw.id()),
    ] {
        assert!(dev.contains(expected), "missing {expected:?} in:\n{dev}");
    }
    let gwt = std::fs::read_to_string(&gw_file).unwrap();
    for expected in [
        &format!("lorawan client=lorawan-gw-{} peer=127.0.0.1:", gw.id()),
        " in packet PushData",
        " out packet PushAck",
        " out packet PullResp",
        " in packet TxAck",
    ] {
        assert!(gwt.contains(expected), "missing {expected:?} in:\n{gwt}");
    }
    assert!(!gwt.contains("lorawan-0202"), "{gwt}");
    broker.stop().await;
}
