//! `kv-gateway`: Roost with one more codec. Everything but the two marked lines is what
//! any program embedding Roost does: load the config, start, stop on SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = std::env::args_os().nth(1).map(PathBuf::from);
    let settings = match roost::config::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kv-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    roost::logging::init(&settings.log_level);

    let mut codecs = roost::codec::Registry::default(); // the codecs Roost ships ...
    roost_example_kv::register(&mut codecs); // ... and ours

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kv-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let grace = settings.shutdown_grace;
        let gateway = match roost::gateway::start_with(settings, codecs).await {
            Ok(g) => g,
            Err(e) => {
                eprintln!("kv-gateway: cannot start: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        announce(&gateway);
        wait_for_signal().await;
        gateway.shutdown(grace).await;
        ExitCode::SUCCESS
    })
}

fn announce(gateway: &roost::gateway::Gateway) {
    for (name, addr) in gateway.codec_addrs() {
        eprintln!("kv-gateway: codec listener {name} on {addr}");
    }
    eprintln!("kv-gateway: MQTT on {:?}", gateway.mqtt_addrs());
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // No signal handlers: run until killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
