//! The `roost` binary as a user runs it: exit codes, stdout, stderr.
#![allow(clippy::expect_used, clippy::panic)] // test support: a failed expectation is the test failing

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const ROOST: &str = env!("CARGO_BIN_EXE_roost");
const DEFAULT_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/roost.toml");

fn roost(args: &[&str]) -> Output {
    Command::new(ROOST).args(args).env_remove("RUST_LOG").output().expect("roost runs")
}

/// Writes `contents` to a file of its own under the test target dir.
fn config_file(name: &str, contents: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}.toml"));
    std::fs::write(&path, contents).expect("write config file");
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits for the child to exit, killing it (and failing) after `limit`.
fn wait_at_most(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("roost did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn print_default_prints_the_file_byte_for_byte() {
    let out = roost(&["print-default"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, std::fs::read(DEFAULT_FILE).expect("config/roost.toml"));
    assert!(out.stderr.is_empty(), "stderr: {}", text(&out.stderr));
}

#[test]
fn check_config_accepts_the_default_file() {
    let out = roost(&["check-config", DEFAULT_FILE]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), format!("{DEFAULT_FILE}: ok\n"));
    assert!(out.stderr.is_empty(), "stderr: {}", text(&out.stderr));
}

#[test]
fn check_config_accepts_the_edge_example() {
    let edge = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/edge.toml");
    let out = roost(&["check-config", edge]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": ok\n"));
}

#[test]
fn check_config_accepts_an_empty_file() {
    let path = config_file("empty", "");
    let out = roost(&["check-config", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn check_config_rejects_bad_files_naming_the_key() {
    let cases = [
        ("range", "[mqtt]\nmax_packet_size = 0\n", "mqtt.max_packet_size: 0 is out of range (16..=268435455)"),
        ("type", "[mqtt]\nmax_packet_size = \"big\"\n", "mqtt.max_packet_size: invalid type"),
        ("unknown-key", "[limits]\nmax_conections = 5\n", "limits.max_conections: unknown key"),
        ("unknown-section", "[mqt]\nbind = []\n", "mqt: unknown key"),
        (
            "duration",
            "[node]\nshutdown_grace = \"ten seconds\"\n",
            "node.shutdown_grace: \"ten seconds\" is not a duration",
        ),
        ("address", "[mqtt]\nbind = [\"1883\"]\n", "mqtt.bind[0]: \"1883\" is not an \"ip:port\" address"),
        ("log-level", "[log]\nlevel = \"verbose\"\n", "log.level: \"verbose\" is not a log level"),
    ];
    for (name, contents, expected) in cases {
        let path = config_file(name, contents);
        let shown = path.to_str().expect("utf-8 path");
        let out = roost(&["check-config", shown]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        assert!(stderr.starts_with(&format!("{shown}: {expected}")), "{name}: {stderr}");
        assert_eq!(stderr.matches('\n').count(), 1, "{name}: one line: {stderr}");
        assert!(out.stdout.is_empty(), "{name}: stdout: {}", text(&out.stdout));
    }
}

#[test]
fn check_config_reports_a_syntax_error_with_its_line() {
    let path = config_file("syntax", "[mqtt]\nbind = [\n");
    let out = roost(&["check-config", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("TOML syntax error at line 2"), "{}", text(&out.stderr));
}

#[test]
fn check_config_reports_a_missing_file() {
    let out = roost(&["check-config", "/nonexistent/roost.toml"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).starts_with("/nonexistent/roost.toml: "), "{}", text(&out.stderr));
}

#[test]
fn check_config_needs_a_file() {
    let out = roost(&["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("FILE"), "{}", text(&out.stderr));
}

#[test]
fn running_with_a_bad_config_exits_2_naming_the_key() {
    let path = config_file("run-bad", "[limits]\nmax_inflight = 0\n");
    let out = roost(&["--config", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("limits.max_inflight: 0 is out of range"), "{}", text(&out.stderr));
}

#[test]
fn a_gateway_that_cannot_start_exits_1() {
    // The port is taken, so binding it fails (and the placeholder gateway fails anyway).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("local addr");
    let path = config_file("port-taken", &format!("[mqtt]\nbind = [\"{addr}\"]\n[log]\nlevel = \"off\"\n"));
    let mut child = Command::new(ROOST)
        .args(["-c", path.to_str().expect("utf-8 path")])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("roost runs");
    let status = wait_at_most(&mut child, Duration::from_secs(20));
    let mut stderr = String::new();
    if let Some(pipe) = child.stderr.take() {
        for line in BufReader::new(pipe).lines() {
            stderr.push_str(&line.expect("stderr line"));
            stderr.push('\n');
        }
    }
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("cannot start"), "stderr: {stderr}");
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let path = config_file(
        "sigterm",
        "[mqtt]\nbind = [\"127.0.0.1:0\"]\n[node]\nshutdown_grace = \"1s\"\n[storage]\nbackend = \"memory\"\n[mqttsn]\nbind = [\"127.0.0.1:0\"]\n[coap]\nbind = [\"127.0.0.1:0\"]\n[lorawan]\nbind = [\"127.0.0.1:0\"]\n[lwm2m]\nbind = [\"127.0.0.1:0\"]\n[http]\nbind = []\n",
    );
    let mut child = Command::new(ROOST)
        .args(["-c", path.to_str().expect("utf-8 path")])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("roost runs");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
    // The "roost started" log line is the event to wait for: no sleeping.
    let started = lines.by_ref().map_while(Result::ok).any(|line| line.contains("roost started"));
    assert!(started, "roost exited before it started");
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(kill.success());
    let status = wait_at_most(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(lines.map_while(Result::ok).any(|line| line.contains("roost stopped")));
}

#[test]
fn version_prints_the_crate_version() {
    let out = roost(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), format!("roost {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_lists_the_subcommands() {
    let out = roost(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = text(&out.stdout);
    for word in ["print-default", "check-config", "--config", "--version"] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
}
