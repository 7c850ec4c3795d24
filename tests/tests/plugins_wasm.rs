//! WebAssembly codec plugins end to end (issue 21): `[[codec]] plugin = "x.wasm"` over real
//! TCP with an MQTT 5 client (rumqttc) on the other side. The AssemblyScript `line` build
//! against the Rust `line` codec: the same device traffic gives the same device answers and
//! byte-identical MQTT output; faulty guests close only their own device.

use crate::codec_support::LineDevice;
use crate::plugin_guests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::{TestBroker, WAIT};

fn listeners(dir: &std::path::Path) -> String {
    let wasm = dir.join("line.wasm");
    std::fs::write(&wasm, plugin_guests::line_wasm()).unwrap();
    let hostile = dir.join("hostile.wasm");
    std::fs::write(&hostile, plugin_guests::hostile_wasm()).unwrap();
    format!(
        r#"
[[codec]]
name = "rust"
codec = "line"
bind = "127.0.0.1:0"
mountpoint = "dev/"

[[codec]]
name = "wasm"
plugin = "{}"
bind = "127.0.0.1:0"
mountpoint = "dev/"

[[codec]]
plugin = "{}"
bind = "127.0.0.1:0"
options = {{ fuel_per_call = 2000000, max_memory = 262144 }}
"#,
        wasm.display(),
        hostile.display()
    )
}

/// One device's session; returns what the device was told and what MQTT saw.
async fn session(broker: &TestBroker, listener: &str) -> (Vec<String>, Vec<(String, Vec<u8>, u8)>) {
    let mut sub = Client5::connect(broker.addr(), &format!("watch-{listener}")).await;
    sub.subscribe("dev/#", mqtt5::qos(1)).await;
    let mut app = Client5::connect(broker.addr(), &format!("app-{listener}")).await;
    let mut dev = LineDevice::connect(broker.codec_addr(listener)).await;
    let mut answers = Vec::new();
    for line in ["CONNECT meter-1 u p", "PUB power/w 1520", "PUB1 t/é caf\u{e9} au lait", "SUB cmd/# 1", "pub x  y"] {
        answers.push(dev.ask(line).await);
    }
    app.publish("dev/cmd/relay", mqtt5::qos(1), false, "off").await;
    answers.push(dev.expect_line(WAIT).await);
    dev.send("ACK 1").await;
    answers.push(dev.ask("PING").await);
    dev.send("QUIT").await;
    answers.extend(dev.expect_closed(WAIT).await);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let p = sub.expect_publish(WAIT).await;
        seen.push((String::from_utf8_lossy(&p.topic).into_owned(), p.payload.to_vec(), p.qos as u8));
    }
    (answers, seen)
}

#[tokio::test]
async fn the_webassembly_line_codec_gives_the_same_mqtt_output_as_the_rust_one() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_with(&listeners(dir.path())).await;
    let rust = session(&broker, "rust").await;
    let wasm = session(&broker, "wasm").await;
    assert_eq!(rust.0[0], "OK", "{:?}", rust.0);
    assert_eq!(rust.0[5], "MSG 1 cmd/relay off");
    assert_eq!(rust.1[0], ("dev/power/w".to_string(), b"1520".to_vec(), 0));
    assert_eq!(rust, wasm, "device answers and MQTT output differ between the Rust and the WebAssembly codec");
    broker.stop().await;
}

async fn ping(good: &mut LineDevice) -> Duration {
    let started = Instant::now();
    assert_eq!(good.ask("PING").await, "PONG");
    started.elapsed()
}

fn p99(v: &mut [Duration]) -> Duration {
    v.sort();
    v[(v.len() * 99).div_ceil(100) - 1]
}

/// Good devices pinging back to back until `stop`; their round trips (`pings` counts them).
fn pingers(
    goods: Vec<LineDevice>,
    stop: &Arc<AtomicBool>,
    pings: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<(LineDevice, Vec<Duration>)>> {
    goods
        .into_iter()
        .map(|mut good| {
            let (stop, pings) = (stop.clone(), pings.clone());
            tokio::spawn(async move {
                let mut times = Vec::new();
                while !stop.load(Relaxed) {
                    times.push(ping(&mut good).await);
                    pings.fetch_add(1, Relaxed);
                }
                (good, times)
            })
        })
        .collect()
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<(LineDevice, Vec<Duration>)>>) -> (Vec<LineDevice>, Vec<Duration>) {
    let (mut goods, mut all) = (Vec::new(), Vec::new());
    for t in tasks {
        let (good, times) = t.await.unwrap();
        goods.push(good);
        all.extend(times);
    }
    (goods, all)
}

/// Devices whose input makes the guest loop, allocate past its memory or return garbage
/// are closed; well-behaved devices on the same listener, pinging all along, keep being
/// answered and keep their p99 round trip (bounded by their calm p99 plus the longest a
/// single faulty call may hold a worker: the fuel budget, as measured by the faults here).
/// Two worker threads, as Roost runs on a 2-core edge box: a guest burning its fuel holds
/// one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_guests_close_only_their_own_device() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_with(&listeners(dir.path())).await;
    let mut goods = Vec::new();
    for g in 0..3 {
        let mut good = LineDevice::connect(broker.codec_addr("hostile")).await;
        assert_eq!(good.ask(&format!("CONNECT good-{g} u p")).await, "OK");
        goods.push(good);
    }
    // Calm: the same load (three devices pinging) with no fault, for about a second.
    let (stop, pings) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let calm = pingers(goods, &stop, &pings);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Relaxed);
    let (goods, mut calm) = collect(calm).await;

    // Faults, round robin, until the good devices have pinged enough to have a p99 of the
    // time under faults (at least 9 faults, at most 90).
    let (stop, pings) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let during = pingers(goods, &stop, &pings);
    let mut longest_fault = Duration::ZERO;
    let mut faults = 0;
    for (i, fault) in ["LOOP", "GROW", "JUNK"].iter().cycle().enumerate() {
        if (faults >= 9 && faults % 3 == 0 && pings.load(Relaxed) >= 300) || faults == 90 {
            break;
        }
        faults += 1;
        let mut bad = LineDevice::connect(broker.codec_addr("hostile")).await;
        assert_eq!(bad.ask(&format!("CONNECT bad-{i} u p")).await, "OK");
        let started = Instant::now();
        bad.send(fault).await;
        assert_eq!(bad.expect_closed(WAIT).await, Vec::<String>::new(), "{fault}: closed without a word");
        let closed_in = started.elapsed();
        assert!(closed_in < WAIT, "{fault}: closed after {closed_in:?}");
        longest_fault = longest_fault.max(closed_in);
    }
    stop.store(true, Relaxed);
    let (mut goods, mut during) = collect(during).await;
    for good in &mut goods {
        assert_eq!(good.ask("PUB still/here 1").await, "OK", "the good devices are still served");
    }
    let (calm_p99, during_p99) = (p99(&mut calm), p99(&mut during));
    eprintln!(
        "good devices' PING round trip p99: calm {calm_p99:?} ({} pings), during {faults} faults {during_p99:?} ({} pings); longest fault {longest_fault:?}",
        calm.len(),
        during.len()
    );
    assert!(
        during_p99 <= calm_p99 * 2 + longest_fault,
        "the good devices' p99 went from {calm_p99:?} to {during_p99:?} (longest fault {longest_fault:?})"
    );

    // Counted per plugin, in /metrics and the API.
    let hostile = dir.path().join("hostile.wasm").display().to_string();
    let scrape = roost_e2e::metrics::scrape(broker.http_addr()).await;
    let counter = |name| roost_e2e::metrics::value(&scrape, name, Some(("plugin", hostile.as_str())));
    let each = (faults / 3) as f64;
    assert_eq!(counter("roost_plugin_timeouts_total"), each, "every LOOP line ran out of fuel");
    assert_eq!(counter("roost_plugin_traps_total"), 2.0 * each, "every GROW trapped and every JUNK was refused");
    let (status, list) = broker.api().get("/api/v1/plugins").await;
    assert_eq!(status, 200, "{list}");
    let entry = list.as_array().unwrap().iter().find(|p| p["path"] == hostile.as_str()).cloned().unwrap();
    assert_eq!((entry["kind"].as_str(), entry["abi_version"].as_i64()), (Some("wasm"), Some(1)));
    assert_eq!(entry["sha256"].as_str().map(str::len), Some(64));
    broker.stop().await;
}
