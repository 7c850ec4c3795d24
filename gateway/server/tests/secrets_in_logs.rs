//! No credential or key appears in the logs at any level (issue 10): the gateway runs with
//! `RUST_LOG=trace`, clients log in with right and wrong passwords over TCP and TLS, a
//! bridge with a password tries its upstream, and the whole log is searched for the
//! passwords, the password hashes and the private key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const PASSWORD: &str = "Corr3ct-Horse-Battery";
const WRONG: &str = "Wr0ng-Guess-Staple";
const BRIDGE_PASSWORD: &str = "Upstr3am-Secret-Token";

fn mosquitto_pub(port: u16, user: &str, pass: &str, tls: &[&str]) -> bool {
    Command::new("mosquitto_pub")
        .args(["-h", "localhost", "-p", &port.to_string(), "-u", user, "-P", pass, "-t", "t", "-m", "m", "-q", "1"])
        .args(tls)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("mosquitto_pub runs (scripts/test installs mosquitto-clients)")
        .success()
}

#[test]
fn no_secret_in_trace_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let users = d.join("users");
    roost_core::auth::users::set_user(&users, "alice", PASSWORD.as_bytes(), None).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    std::fs::write(d.join("server.pem"), cert.pem()).unwrap();
    let key_pem = key.serialize_pem();
    std::fs::write(d.join("server.key"), &key_pem).unwrap();
    let config = d.join("roost.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[mqtt]
bind = ["127.0.0.1:0"]
tls_bind = ["127.0.0.1:0"]
[mqtt.tls]
cert_file = "{dir}/server.pem"
key_file = "{dir}/server.key"
[mqttsn]
bind = ["127.0.0.1:0"]
[coap]
bind = []
[lorawan]
bind = []
[lwm2m]
bind = []
[http]
bind = []
[storage]
backend = "memory"
[auth]
allow_anonymous = false
chain = ["password_file"]
password_file = "{dir}/users"
[[bridge]]
name = "up"
address = "127.0.0.1:9"
username = "edge"
password = "{BRIDGE_PASSWORD}"
reconnect_min = "100ms"
[[bridge.topic]]
pattern = "t"
direction = "out"
"#,
            dir = d.display()
        ),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let (mut tcp, mut tls) = (None, None);
    while tcp.is_none() || tls.is_none() {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
            panic!("roost did not log its listeners: {}", log.join("\n"));
        };
        if line.contains("MQTT listening") {
            let port = line
                .split("addr=127.0.0.1:")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|p| p.parse::<u16>().ok());
            if line.contains("transport=\"tls\"") {
                tls = port;
            } else if line.contains("transport=\"tcp\"") {
                tcp = port;
            }
        }
        log.push(line);
    }
    let (tcp, tls) = (tcp.unwrap(), tls.unwrap());
    let ca = d.join("server.pem");
    let ca = ca.to_str().unwrap();
    assert!(mosquitto_pub(tcp, "alice", PASSWORD, &[]));
    assert!(!mosquitto_pub(tcp, "alice", WRONG, &[]));
    assert!(mosquitto_pub(tls, "alice", PASSWORD, &["--cafile", ca]));
    assert!(!mosquitto_pub(tls, "alice", WRONG, &["--cafile", ca]));

    // SIGTERM, then the rest of the log.
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    reader.join().unwrap();
    log.extend(rx.try_iter());
    let text = log.join("\n");
    assert!(text.contains("login failed"), "failed logins are logged");
    assert!(text.contains("TRACE"), "the log ran at trace level");

    let hash = std::fs::read_to_string(&users).unwrap();
    let hash = hash.trim().split(':').nth(1).unwrap().to_string();
    let salt_and_digest = hash.rsplit('$').next().unwrap().to_string();
    let key_body: Vec<&str> = key_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut secrets =
        vec![PASSWORD.to_string(), WRONG.to_string(), BRIDGE_PASSWORD.to_string(), hash.clone(), salt_and_digest];
    secrets.extend(key_body.iter().map(|l| l.to_string()));
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a secret appears in the log: {s:?}");
    }
    // Nor as bytes, as a Debug of a byte string would show them.
    let as_bytes = format!("{:?}", PASSWORD.as_bytes());
    assert!(!text.contains(&as_bytes[1..as_bytes.len() - 1]));
    println!("{} log lines at trace, no secret in them", log.len());
}
