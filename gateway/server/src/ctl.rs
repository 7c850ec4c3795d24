//! `roost ctl`: a client of a running gateway's HTTP management API, for operators at a
//! shell: traces (start, stop, list), clients, kick, reload. It prints what the API answered.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::cli::{CtlArgs, CtlCommand, TraceAction};
use crate::config::Settings;
use crate::http_client::{Endpoint, request};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Where the API is: `--url`, else the first `[http] bind` (an unspecified address is
/// reached on loopback).
fn base(settings: &Settings, url: Option<&str>) -> anyhow::Result<Endpoint> {
    if let Some(u) = url {
        let mut e = Endpoint::parse(u).map_err(anyhow::Error::msg).context("--url")?;
        e.path = e.path.trim_end_matches('/').to_string();
        return Ok(e);
    }
    let Some(mut addr) = settings.http_bind.first().copied() else {
        bail!("[http] bind is empty in the config and no --url was given");
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Ok(Endpoint { authority: addr.to_string(), path: String::new() })
}

/// The key: `--key`, `$ROOST_API_KEY`, the config's first `[http] api_keys`, or the key
/// file the gateway generated under `data_dir`.
fn key(settings: &Settings, given: Option<String>) -> anyhow::Result<String> {
    if let Some(k) = given.or_else(|| std::env::var("ROOST_API_KEY").ok()) {
        return Ok(k);
    }
    if let Some(k) = settings.api_keys.first() {
        return Ok(k.clone());
    }
    let file = settings.storage.data_dir.join(crate::api::keys::KEY_FILE);
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!("no --key, no $ROOST_API_KEY, no [http] api_keys, and {} cannot be read", file.display())
    })?;
    Ok(text.trim().to_string())
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs one `ctl` command; returns what to print.
pub async fn run(settings: &Settings, args: CtlArgs) -> anyhow::Result<String> {
    let base = base(settings, args.url.as_deref())?;
    let key = key(settings, args.key)?;
    let auth = format!("Bearer {key}");
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let to = base.with_path(&format!("{}/api/v1{path}", base.path));
        let auth = auth.clone();
        async move {
            let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
            let r = request(
                method,
                &to,
                &[("Authorization", &auth), ("Content-Type", "application/json")],
                &bytes,
                TIMEOUT,
            )
            .await
            .with_context(|| format!("{method} http://{}{}", to.authority, to.path))?;
            let json: Value =
                if r.body.is_empty() { Value::Null } else { serde_json::from_slice(&r.body).unwrap_or(Value::Null) };
            if !(200..300).contains(&r.status) {
                let message = json["message"]
                    .as_str()
                    .map_or_else(|| String::from_utf8_lossy(&r.body).into_owned(), str::to_string);
                bail!("{} {}: {message}", r.status, json["code"].as_str().unwrap_or(""));
            }
            Ok::<Value, anyhow::Error>(json)
        }
    };
    match args.command {
        CtlCommand::Trace { action: TraceAction::Start { kind, target, file } } => {
            let file = std::path::absolute(&file).with_context(|| format!("{}", file.display()))?;
            let r = call(
                "POST",
                "/traces".into(),
                Some(json!({ "type": kind.as_str(), "target": target, "file": file.display().to_string() })),
            )
            .await?;
            Ok(format!("trace {} started: {}\n", r["name"].as_str().unwrap_or(""), r["file"].as_str().unwrap_or("")))
        }
        CtlCommand::Trace { action: TraceAction::Stop { kind, target } } => {
            call("DELETE", format!("/traces?type={}&target={}", kind.as_str(), encode(&target)), None).await?;
            Ok(format!("trace {}:{target} stopped\n", kind.as_str()))
        }
        CtlCommand::Trace { action: TraceAction::List } => {
            let r = call("GET", "/traces".into(), None).await?;
            let mut out = String::new();
            for t in r["data"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{}\t{}\t{} lines\n",
                    t["name"].as_str().unwrap_or(""),
                    t["file"].as_str().unwrap_or(""),
                    t["lines"]
                ));
            }
            Ok(out)
        }
        CtlCommand::Clients => {
            let mut out = String::new();
            let mut page = 1;
            loop {
                let r = call("GET", format!("/clients?limit=1000&page={page}"), None).await?;
                for c in r["data"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\n",
                        c["clientid"].as_str().unwrap_or(""),
                        c["protocol"].as_str().unwrap_or(""),
                        if c["connected"] == true { "connected" } else { "offline" },
                        c["peer"].as_str().unwrap_or("-")
                    ));
                }
                if r["meta"]["hasnext"] != true {
                    return Ok(out);
                }
                page += 1;
            }
        }
        CtlCommand::Reload => {
            let r = call("POST", "/reload".into(), None).await?;
            let mut out = String::new();
            let lines =
                |key: &str| r[key].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string);
            for l in lines("applied") {
                out.push_str(&format!("applied: {l}\n"));
            }
            for l in lines("restart_needed") {
                out.push_str(&format!("needs a restart (left as it was): {l}\n"));
            }
            if out.is_empty() {
                out.push_str("reloaded: nothing changed\n");
            }
            Ok(out)
        }
        CtlCommand::Kick { client_id } => {
            call("DELETE", format!("/clients/{}", encode(&client_id)), None).await?;
            Ok(format!("{client_id} kicked\n"))
        }
    }
}
