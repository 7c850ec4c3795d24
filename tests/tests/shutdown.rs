//! Graceful shutdown of the `roost` process: on SIGTERM every v5 client is told DISCONNECT
//! 0x8B (Server shutting down), every connection is closed and the process exits with 0
//! within its grace period. This needs the real binary, not an in-process gateway.

use std::time::Duration;

use roost_e2e::raw::{self, RawClient};
use roost_e2e::roost_bin;
use rumqttc::v5::mqttbytes::v5;
use tokio::process::Command;
use tokio::time::timeout;

/// Upper bound for shutdown: Roost's grace period plus margin.
const GRACE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn sigterm_disconnects_clients_with_0x8b_and_exits_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("roost.toml");
    let text = format!(
        "[mqtt]\nbind = [\"127.0.0.1:0\"]\n[mqttsn]\nbind = [\"127.0.0.1:0\"]\n[coap]\nbind = [\"127.0.0.1:0\"]\n[lorawan]\nbind = [\"127.0.0.1:0\"]\n[lwm2m]\nbind = [\"127.0.0.1:0\"]\n[http]\nbind = []\n[storage]\ndata_dir = {:?}\n",
        dir.path().display().to_string()
    );
    std::fs::write(&config, text).expect("write config");
    let roost_bin::RoostProcess { child: mut roost, mqtt: addr } = roost_bin::spawn_roost(&config).await;
    let (mut v5_client, _) = RawClient::connect_v5(addr, raw::connect_v5("v5"), None).await;
    let (mut v311_client, _) = RawClient::connect_v4(addr, raw::connect_v4("v311")).await;

    let pid = roost.id().expect("roost pid").to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().await.expect("run kill");
    assert!(kill.success());

    let reason = v5_client.expect_close_reason_v5(GRACE).await;
    assert_eq!(reason, Some(v5::DisconnectReasonCode::ServerShuttingDown));
    assert!(v311_client.expect_close(GRACE).await.is_empty(), "3.1.1 clients are just closed");
    match timeout(GRACE, roost.wait()).await {
        Ok(Ok(status)) => assert!(status.success(), "roost exited with {status}"),
        Ok(Err(err)) => panic!("waiting for roost: {err}"),
        Err(_) => panic!("roost still running {GRACE:?} after SIGTERM"),
    }
}
