//! The `roost` binary, for tests of the process itself (signals, exit status). Cargo only
//! sets `CARGO_BIN_EXE_roost` for the crate that owns the binary, so it is found by path:
//! the workspace target directory (or `CARGO_TARGET_DIR`), debug before release.

use std::path::PathBuf;

/// Path of the built `roost` binary; panics with how to build it if there is none.
pub fn roost_bin() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"));
    let name = format!("roost{}", std::env::consts::EXE_SUFFIX);
    let candidates = [target.join("debug").join(&name), target.join("release").join(&name)];
    match candidates.iter().find(|path| path.is_file()) {
        Some(path) => path.clone(),
        None => panic!(
            "the roost binary is not built (looked for {candidates:?}); \
             run `cargo build -p roost` first"
        ),
    }
}

/// A `roost` process started by a test.
pub struct RoostProcess {
    pub child: tokio::process::Child,
    pub mqtt: std::net::SocketAddr,
}

/// Starts `roost --config CONFIG` and waits (bounded) for its start-up log line, which
/// names the MQTT address it bound (the config may say port 0).
pub async fn spawn_roost(config: &std::path::Path) -> RoostProcess {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(roost_bin())
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn roost");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut log = Vec::new();
    let found = tokio::time::timeout(crate::WAIT * 5, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("mqtt=[").nth(1)
                && let Some(end) = rest.find([',', ']'])
                && let Ok(addr) = rest[..end].parse()
            {
                return Some(addr);
            }
            log.push(line);
        }
        None
    })
    .await;
    let mqtt = match found {
        Ok(Some(addr)) => addr,
        Ok(None) => panic!("roost exited at start-up:\n{}", log.join("\n")),
        Err(_) => panic!("roost did not log its address in time:\n{}", log.join("\n")),
    };
    // Keep draining the log so roost never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    RoostProcess { child, mqtt }
}
