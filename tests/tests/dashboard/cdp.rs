//! Headless Chromium (Debian `chromium`, installed by `scripts/test`) driven through the
//! Chrome DevTools Protocol over its WebSocket: one page target in flattened-session mode,
//! JavaScript evaluated in it, DOM conditions awaited with a bound, screenshots at a set
//! viewport.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a page may take to show what a test waits for.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

pub struct Browser {
    _child: Child,
    ws: WebSocketStream<TcpStream>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium with a fresh profile and opens one blank page.
    pub async fn launch() -> Browser {
        assert!(Path::new(CHROMIUM).is_file(), "{CHROMIUM} is missing: install Debian's chromium (scripts/test does)");
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(CHROMIUM)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
            .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
            .args(["--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        // Chromium prints where its DevTools endpoint listens on standard error.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_string();
                }
            }
            panic!("chromium exited without a DevTools endpoint");
        })
        .await
        .expect("chromium opened its DevTools endpoint in time");
        // Keep draining its standard error so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let host = url.trim_start_matches("ws://").split('/').next().unwrap().to_string();
        let tcp = TcpStream::connect(&host).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp).await.expect("DevTools WebSocket");
        let mut b = Browser { _child: child, ws, next_id: 1, session: String::new(), _profile: profile };
        let target = b.send(None, "Target.createTarget", json!({ "url": "about:blank" })).await;
        let attached =
            b.send(None, "Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true })).await;
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b.call("Page.enable", json!({})).await;
        b
    }

    async fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).await.expect("DevTools send");
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let m = self.ws.next().await.expect("DevTools socket open").expect("DevTools read");
                let Message::Text(text) = m else { continue };
                let v: Value = serde_json::from_str(&text).unwrap();
                // Events (no id) and answers to other calls are skipped.
                if v["id"].as_u64() == Some(id) {
                    return v;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no DevTools answer to {method} in time"));
        assert!(answer.get("error").is_none(), "{method} failed: {answer}");
        answer["result"].clone()
    }

    /// A DevTools method on the page.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let s = self.session.clone();
        self.send(Some(&s), method, params).await
    }

    /// Files the page downloads are saved in `dir` (under the names the page gives them).
    pub async fn allow_downloads(&mut self, dir: &Path) {
        let params = json!({ "behavior": "allow", "downloadPath": dir.display().to_string() });
        self.send(None, "Browser.setDownloadBehavior", params).await;
    }

    /// Waits (at most [`PAGE_WAIT`]) for `path` to exist with content containing `want`.
    pub async fn wait_for_file(&mut self, path: &Path, want: &str) -> String {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            // Chromium writes `NAME.crdownload` and renames it when done: a file under the
            // final name is complete.
            if let Ok(text) = std::fs::read_to_string(path)
                && text.contains(want)
            {
                return text;
            }
            assert!(tokio::time::Instant::now() < deadline, "no {} holding {want:?} in time", path.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Loads `url` (waits for the navigation to be committed, not for the page's data).
    pub async fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
    }

    /// Evaluates `expr` (awaiting a promise); its value as JSON.
    pub async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call("Runtime.evaluate", json!({ "expression": expr, "awaitPromise": true, "returnByValue": true }))
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expr} threw: {r}");
        r["result"]["value"].clone()
    }

    /// Waits (at most [`PAGE_WAIT`]) until `expr` is truthy; its value.
    pub async fn wait_for(&mut self, what: &str, expr: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            let v = self.eval(&format!("(() => {{ try {{ return {expr}; }} catch (_) {{ return null; }} }})()")).await;
            let truthy = !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                let body = self.eval("document.body ? document.body.innerText.slice(0, 2000) : ''").await;
                panic!("the page did not show {what} within {PAGE_WAIT:?} ({expr}); it shows:\n{body}");
            }
            // The page updates on its own events; this only paces the DOM checks.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the first element matching `selector` (which must exist).
    pub async fn click(&mut self, selector: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        let found = self
            .eval(&format!("(() => {{ const e = document.querySelector({sel}); if (e) e.click(); return !!e; }})()"))
            .await;
        assert_eq!(found, json!(true), "nothing to click at {selector}");
    }

    /// Sets a form field's value by selector.
    pub async fn fill(&mut self, selector: &str, value: &str) {
        let (sel, val) = (serde_json::to_string(selector).unwrap(), serde_json::to_string(value).unwrap());
        let found = self
            .eval(&format!("(() => {{ const e = document.querySelector({sel}); if (e) {{ e.value = {val}; e.dispatchEvent(new Event('input')); }} return !!e; }})()"))
            .await;
        assert_eq!(found, json!(true), "no field at {selector}");
    }

    /// The viewport: CSS pixels, and whether it is a phone (touch, narrow layout).
    pub async fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
    }

    /// The page's width beyond the viewport (0 when nothing overflows sideways).
    pub async fn overflow_x(&mut self) -> i64 {
        self.eval("document.documentElement.scrollWidth - document.documentElement.clientWidth").await.as_i64().unwrap()
    }

    /// A PNG of the viewport, written to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        let png = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
        std::fs::write(path, png).unwrap();
    }
}
