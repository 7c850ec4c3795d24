//! Structured-random attack traffic, as an attacker would send it: datagrams with valid
//! headers and random options, queries, JSON and link formats for every UDP protocol
//! (CoAP, LwM2M, MQTT-SN, Semtech UDP, DTLS), and garbage that starts like the real thing
//! for every TCP listener (MQTT, WebSocket, TLS, HTTP). Sent from many source addresses of
//! 127.0.0.0/8 (Linux routes the whole /8 to loopback), so per-source limits see many peers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rand::Rng;
use rand::seq::IndexedRandom;

/// What a flood datagram or connection is aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Coap,
    Lwm2m,
    MqttSn,
    Semtech,
    Dtls,
    Mqtt,
    WebSocket,
    Tls,
    Http,
}

/// A random source address in 127.0.0.0/8 other than 127.0.0.1 (that of the healthy
/// clients), spread over many /24s.
pub fn source(rng: &mut impl Rng) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, rng.random_range(1..=254), rng.random(), rng.random_range(1..=254)))
}

/// A UDP socket bound to a random 127/8 source.
pub async fn udp_socket(rng: &mut impl Rng) -> std::io::Result<tokio::net::UdpSocket> {
    tokio::net::UdpSocket::bind(SocketAddr::new(source(rng), 0)).await
}

/// A TCP connection to `to` from a random 127/8 source.
pub async fn tcp_connect(rng: &mut impl Rng, to: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source(rng), 0))?;
    socket.connect(to).await
}

fn bytes(rng: &mut impl Rng, max: usize) -> Vec<u8> {
    let n = rng.random_range(0..=max);
    (0..n).map(|_| rng.random()).collect()
}

fn word(rng: &mut impl Rng) -> String {
    const WORDS: &[&str] =
        &["ep", "lt", "lwm2m", "b", "sms", "Q", "c", "u", "p", "t", "qos", "retain", "rd", "ps", "x"];
    if rng.random_bool(0.8) {
        WORDS.choose(rng).map_or("x", |w| w).to_string()
    } else {
        String::from_utf8_lossy(&bytes(rng, 12)).into_owned()
    }
}

/// A random JSON value, nested up to `depth`.
pub fn json(rng: &mut impl Rng, depth: u32) -> serde_json::Value {
    use serde_json::Value;
    match rng.random_range(0..if depth == 0 { 4 } else { 6 }) {
        0 => Value::Null,
        1 => Value::from(rng.random::<i64>() >> rng.random_range(0..63)),
        2 => Value::from(rng.random::<f64>() * 1e6),
        3 => Value::from(word(rng)),
        4 => Value::Array((0..rng.random_range(0..4)).map(|_| json(rng, depth - 1)).collect()),
        _ => Value::Object((0..rng.random_range(0..5)).map(|_| (word(rng), json(rng, depth - 1))).collect()),
    }
}

/// A random CoRE link format body (`</3/0>;ver=1.1,...`), sometimes broken.
pub fn link_format(rng: &mut impl Rng) -> String {
    let mut out = String::new();
    for i in 0..rng.random_range(0..8) {
        if i > 0 {
            out.push(',');
        }
        let (o, n): (u16, u16) = (rng.random_range(0..20_000), rng.random_range(0..4));
        match rng.random_range(0..5) {
            0 => out.push_str(&format!("</{o}>")),
            1 => out.push_str(&format!("</{o}/{n}>;ver=1.{n}")),
            2 => out.push_str(&format!("</>;rt=\"oma.lwm2m\";ct={}", rng.random::<u16>())),
            3 => out.push_str(&format!("<{}>;{}={}", word(rng), word(rng), word(rng))),
            _ => out.push_str(&String::from_utf8_lossy(&bytes(rng, 10))),
        }
    }
    out
}

fn coap_option(out: &mut Vec<u8>, last: &mut u16, number: u16, value: &[u8]) {
    fn nibble(x: usize) -> (u8, Vec<u8>) {
        match x {
            0..=12 => (x as u8, vec![]),
            13..=268 => (13, vec![(x - 13) as u8]),
            _ => (14, ((x - 269) as u16).to_be_bytes().to_vec()),
        }
    }
    let (d, dx) = nibble(usize::from(number - *last));
    let (l, lx) = nibble(value.len());
    out.push(d << 4 | l);
    out.extend(dx);
    out.extend(lx);
    out.extend_from_slice(value);
    *last = number;
}

fn uint(v: u32) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|x| **x == 0).count();
    b[skip..].to_vec()
}

/// A CoAP datagram with a valid header (mostly), random paths among `paths`, random
/// queries, formats, Observe and Block options, and a JSON, link-format or random body.
pub fn coap(rng: &mut impl Rng, paths: &[&str]) -> Vec<u8> {
    let token = bytes(rng, 8);
    let kind: u8 = if rng.random_bool(0.9) { rng.random_range(0..2) } else { rng.random_range(0..4) };
    let code = *[1u8, 2, 3, 4, 1, 2, 0x45, rng.random()].choose(rng).unwrap_or(&2);
    let mut out = vec![0x40 | kind << 4 | token.len() as u8, code];
    out.extend_from_slice(&rng.random::<u16>().to_be_bytes());
    out.extend_from_slice(&token);
    let mut opts: Vec<(u16, Vec<u8>)> = Vec::new();
    if rng.random_bool(0.3) {
        opts.push((6, uint(rng.random_range(0..2)))); // Observe
    }
    for p in paths.choose(rng).map_or("", |p| p).split('/').filter(|s| !s.is_empty()) {
        opts.push((11, p.as_bytes().to_vec()));
    }
    if rng.random_bool(0.3) {
        opts.push((11, word(rng).into_bytes()));
    }
    if rng.random_bool(0.7) {
        let f = *[0u32, 40, 42, 50, 60, 110, 112, 11542, 11543, rng.random::<u16>().into()].choose(rng).unwrap_or(&0);
        opts.push((12, uint(f)));
    }
    for _ in 0..rng.random_range(0..6) {
        opts.push((15, format!("{}={}", word(rng), word(rng)).into_bytes()));
    }
    if rng.random_bool(0.3) {
        opts.push((*[23u16, 27].choose(rng).unwrap_or(&27), uint(rng.random_range(0..1 << 20))));
    }
    if rng.random_bool(0.1) {
        opts.push((rng.random_range(1..2000), bytes(rng, 8))); // unknown, perhaps critical
    }
    opts.sort_by_key(|(n, _)| *n);
    let mut last = 0;
    for (n, v) in &opts {
        coap_option(&mut out, &mut last, *n, v);
    }
    let body = match rng.random_range(0..4) {
        0 => json(rng, 3).to_string().into_bytes(),
        1 => link_format(rng).into_bytes(),
        2 => bytes(rng, 64),
        _ => Vec::new(),
    };
    if !body.is_empty() {
        out.push(0xff);
        out.extend(body);
    }
    out
}

/// An MQTT-SN datagram: a length byte that mostly fits, a real message type, a random body
/// (client ids, topic names, flags), sometimes forwarder-encapsulated.
pub fn mqttsn(rng: &mut impl Rng) -> Vec<u8> {
    const TYPES: &[u8] = &[0x01, 0x04, 0x06, 0x08, 0x0A, 0x0C, 0x0D, 0x0F, 0x12, 0x14, 0x16, 0x18, 0x1A, 0x1C];
    let kind = *TYPES.choose(rng).unwrap_or(&0x0C);
    let mut body = match kind {
        0x04 => {
            let mut b = vec![rng.random(), 0x01];
            b.extend_from_slice(&rng.random::<u16>().to_be_bytes());
            b.extend(word(rng).into_bytes());
            b
        }
        0x0C | 0x12 => {
            let mut b = vec![rng.random()];
            b.extend_from_slice(&rng.random::<u32>().to_be_bytes());
            b.extend(json(rng, 2).to_string().into_bytes());
            b
        }
        _ => bytes(rng, 24),
    };
    let mut out = Vec::with_capacity(body.len() + 4);
    let len = body.len() + 2;
    out.push(if rng.random_bool(0.9) { len as u8 } else { rng.random() });
    out.push(kind);
    out.append(&mut body);
    if rng.random_bool(0.1) {
        let mut enc = vec![(out.len() + 3) as u8, 0xFE, rng.random()];
        enc.extend(out);
        return enc;
    }
    out
}

/// A Semtech UDP datagram: protocol version 2, a real identifier, a random gateway EUI, and
/// JSON with `rxpk` entries carrying random PHYPayloads (join requests, data frames).
pub fn semtech(rng: &mut impl Rng) -> Vec<u8> {
    let ident = *[0u8, 0, 0, 2, 5, rng.random_range(0..8)].choose(rng).unwrap_or(&0);
    let mut out = vec![2, rng.random(), rng.random(), ident];
    out.extend((0..8).map(|_| rng.random::<u8>()));
    if ident == 2 {
        return out;
    }
    let mut phy = bytes(rng, 40);
    if let Some(m) = phy.first_mut() {
        *m = *[0x00u8, 0x40, 0x80, *m].choose(rng).unwrap_or(m);
    }
    let data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &phy);
    let rxpk = serde_json::json!({
        "tmst": rng.random::<u32>(), "freq": 868.1, "chan": 0, "rfch": 0, "stat": 1, "modu": "LORA",
        "datr": *["SF7BW125", "SF12BW125", "SF99BW1", "x"].choose(rng).unwrap_or(&"x"), "codr": "4/5",
        "rssi": -40, "lsnr": 5.5, "size": phy.len(), "data": data, "extra": json(rng, 2),
    });
    let doc = match rng.random_range(0..4) {
        0 => serde_json::json!({ "rxpk": [rxpk] }),
        1 => serde_json::json!({ "stat": json(rng, 2) }),
        2 => json(rng, 3),
        _ => serde_json::json!({ "rxpk": [json(rng, 2)], "txpk_ack": { "error": word(rng) } }),
    };
    out.extend(doc.to_string().into_bytes());
    out
}

/// A DTLS record: mostly a ClientHello (epoch 0, random random, a random or no cookie),
/// else a record of another type or epoch with random content.
pub fn dtls(rng: &mut impl Rng) -> Vec<u8> {
    let mut body = vec![0xfe, 0xfd];
    body.extend((0..32).map(|_| rng.random::<u8>()));
    body.push(0); // session id
    let cookie = if rng.random_bool(0.5) { bytes(rng, 32) } else { Vec::new() };
    body.push(cookie.len() as u8);
    body.extend(cookie);
    body.extend_from_slice(&[0, 4, 0xc0, 0xa8, 0xc0, 0xae, 1, 0]);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&[0, 0, 0, 0, 0]);
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let (kind, epoch, content) = match rng.random_range(0..5) {
        0..=2 => (22u8, 0u16, hs),
        3 => (23, 1, bytes(rng, 64)),
        _ => (rng.random(), rng.random(), bytes(rng, 64)),
    };
    let mut out = vec![kind, 0xfe, 0xfd];
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend((0..6).map(|_| rng.random::<u8>()));
    out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    out.extend(content);
    out
}

/// The datagram for a UDP target.
pub fn datagram(rng: &mut impl Rng, target: Target) -> Vec<u8> {
    match target {
        Target::Coap => coap(rng, &["ps/t", "mqtt/connection", "ps", "x/y", ""]),
        Target::Lwm2m => coap(rng, &["rd", "rd/0123456789abcdef", "bs", "dp", ""]),
        Target::MqttSn => mqttsn(rng),
        Target::Semtech => semtech(rng),
        _ => dtls(rng),
    }
}

/// Garbage for a TCP listener that starts like what it expects.
pub fn garbage(rng: &mut impl Rng, target: Target) -> Vec<u8> {
    let mut out = match (target, rng.random_range(0..3)) {
        (Target::Mqtt, 0) => vec![0x10, rng.random(), 0, 4, b'M', b'Q', b'T', b'T', rng.random(), rng.random()],
        (Target::Mqtt, 1) => vec![rng.random::<u8>() & 0xf0, 0xff, 0xff, 0xff, 0x7f],
        (Target::WebSocket | Target::Http, 0) => format!(
            "GET /{} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\n",
            word(rng),
            word(rng),
            word(rng)
        )
        .into_bytes(),
        (Target::WebSocket | Target::Http, 1) => {
            format!("POST /api/v1/{} HTTP/1.1\r\nContent-Length: {}\r\n\r\n", word(rng), rng.random::<u32>())
                .into_bytes()
        }
        (Target::Tls, 0 | 1) => {
            let mut r = vec![22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3];
            r.extend((0..32).map(|_| rng.random::<u8>()));
            r
        }
        _ => Vec::new(),
    };
    out.extend(bytes(rng, 200));
    out
}
