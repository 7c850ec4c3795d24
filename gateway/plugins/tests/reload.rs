//! Hot reload of WebAssembly codecs: a changed file serves new connections, a broken one is
//! refused with the old version kept, and codecs made while the file is replaced over and
//! over always get a whole version.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use roost_codec::{CodecFactory, CodecTester, Uplink};
use roost_plugins::plugin::AnyPlugin;
use roost_plugins::{Plugins, Reloaded, WasmFactory, WasmOptions};

/// An echo guest publishing on topic `tag` (3 bytes).
fn tagged(tag: &str) -> Vec<u8> {
    let wat = String::from_utf8(support::echo_guest_wat()).unwrap().replace("\"dev\"", &format!("\"{tag}\""));
    wat::parse_str(wat).unwrap()
}

/// Replaces `path` atomically (write beside, rename), as docs/plugins.md tells users to.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn topic_of(factory: &WasmFactory) -> String {
    let mut t = CodecTester::from_factory(factory);
    match &t.feed(b"x").unwrap()[..] {
        [Uplink::Connect(_), Uplink::Publish { topic, .. }] => topic.clone(),
        other => panic!("{other:?}"),
    }
}

fn open(path: &Path) -> WasmFactory {
    let options: WasmOptions = toml::from_str(&format!("path = {:?}", path.display().to_string())).unwrap();
    WasmFactory::open(&options).unwrap()
}

#[test]
fn a_new_file_serves_new_connections_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.wasm");
    replace(&path, &tagged("one"));
    let factory = open(&path);
    let mut old = CodecTester::from_factory(&factory);
    assert_eq!(topic_of(&factory), "one");
    assert_eq!(factory.0.reload().unwrap(), Reloaded::Unchanged);

    replace(&path, &tagged("two"));
    assert!(matches!(factory.0.reload().unwrap(), Reloaded::Loaded { generation: 2, .. }));
    assert_eq!(topic_of(&factory), "two", "new connections get the new version");
    assert!(old.feed(b"y").is_ok(), "a connection made before keeps its instance");

    replace(&path, b"\0asm garbage");
    let e = factory.0.reload().unwrap_err();
    assert!(e.contains("not valid WebAssembly"), "{e}");
    assert_eq!(topic_of(&factory), "two", "the old version stays in service");
    let info = AnyPlugin::info(&*factory.0);
    assert_eq!((info.generation, info.stats.reloads, info.stats.refused_reloads), (2, 1, 1));
}

#[test]
fn the_watcher_picks_up_a_replaced_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.wasm");
    replace(&path, &tagged("aaa"));
    let factory = open(&path);
    let plugins = Arc::new(Plugins::default());
    plugins.add(factory.0.clone());
    Plugins::watch(&plugins, Duration::from_millis(20)).unwrap();
    replace(&path, &tagged("bbb"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while plugins.infos()[0].generation != 2 {
        assert!(Instant::now() < deadline, "the watcher did not reload within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(topic_of(&factory), "bbb");
}

/// Codecs made and used while the file is replaced 10 times (every other time by a broken
/// file) never fail and always run one whole version.
#[test]
fn reloads_under_traffic_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.wasm");
    let versions = [tagged("v-a"), tagged("v-b")];
    replace(&path, &versions[0]);
    let factory = Arc::new(open(&path));
    let done = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (factory, done) = (factory.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            let mut n = 0;
            while !done.load(Ordering::Relaxed) || n < 1000 {
                let mut codec = factory.new_codec();
                let mut out = Vec::new();
                codec.decode(&mut bytes::BytesMut::from(&b"payload"[..]), &mut out).unwrap();
                let [Uplink::Connect(_), Uplink::Publish { topic, payload, .. }] = &out[..] else { panic!("{out:?}") };
                assert_eq!(&payload[..], b"payload");
                seen.insert(topic.clone());
                n += 1;
            }
            (n, seen)
        })
    };
    for i in 0..10 {
        let bytes = if i % 2 == 1 { b"broken".to_vec() } else { versions[(i / 2 + 1) % 2].clone() };
        replace(&path, &bytes);
        let _ = factory.0.reload();
        std::thread::sleep(Duration::from_millis(5));
    }
    done.store(true, Ordering::Relaxed);
    let (n, seen) = traffic.join().unwrap();
    assert!(n >= 1000);
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["v-a", "v-b"]);
    let stats = AnyPlugin::info(&*factory.0).stats;
    assert_eq!((stats.reloads, stats.refused_reloads, stats.traps), (5, 5, 0));
}
