//! Rule evaluation throughput on one core (a hand-run benchmark, not a test; the figures go
//! to docs/benchmarks.md): `cargo run --release -p roost-rules --example eval_bench [N]`.
//!
//! Each iteration builds the [`Input`] the broker hook builds for a publish (topic, client,
//! a ~60-byte JSON payload), decodes the payload lazily and applies the rule, as
//! `Engine::dispatch` does, without the actions' queues.
#![allow(clippy::expect_used, clippy::panic)] // test support: a failed expectation is the test failing

use std::time::Instant;

use roost_rules::eval::{EventName, Input, Outcome};

fn run(sql: &str, n: usize, payloads: &[Vec<u8>]) {
    let st = match roost_rules::sql::parse(sql) {
        Ok(s) => s,
        Err(e) => panic!("{sql}: {e}"),
    };
    let (mut passed, mut no_result) = (0u64, 0u64);
    let started = Instant::now();
    for i in 0..n {
        let mut input = Input::new(EventName::MessagePublish, "bench", 1_700_000_000_000);
        input.clientid = Some("device-0042");
        input.username = Some("fleet");
        input.protocol = Some("mqtt");
        input.topic = Some("sensors/building-7/floor-3/device-0042");
        input.payload = Some(&payloads[i % payloads.len()]);
        input.qos = Some(1);
        match st.apply(&input) {
            Ok(Outcome::Output(_)) => passed += 1,
            Ok(_) => no_result += 1,
            Err(e) => panic!("{e}"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{:>10.0} msg/s  ({n} in {secs:.3} s; passed {passed}, no_result {no_result})  {sql}", n as f64 / secs);
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let payloads: Vec<Vec<u8>> = (0..60)
        .map(|t| format!("{{\"temp\": {t}.5, \"hum\": 41, \"battery\": 3.7, \"id\": \"device-0042\"}}").into_bytes())
        .collect();
    run(r#"SELECT payload.temp AS t, clientid FROM "sensors/#" WHERE payload.temp > 30"#, n, &payloads);
    run(r#"SELECT * FROM "sensors/#" WHERE clientid = 'device-0042'"#, n, &payloads);
    run(r#"SELECT clientid FROM "other/#""#, n, &payloads);
}
