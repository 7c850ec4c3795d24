//! The rule engine: the running rules, the broker hook that feeds them, and rule CRUD.
//!
//! The rule set is an immutable `Arc<Vec<..>>` swapped whole on every change, so the hook
//! (inline on the broker's tasks) takes a read lock only long enough to clone an `Arc`;
//! a replaced rule's actions drain their queues and stop when the last in-flight event
//! lets go of it. Rules from `[[rule]]` come first; rules made through the API are stored
//! in the broker's store (`record_blob`, space `rules`) and override config rules of the
//! same id at the next start.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use roost_core::hooks::{Event, EventKind, EventMask, Hook};

use crate::action::{self, ActionHandle, Env};
use crate::config::{ConfigError, RuleConfig};
use crate::eval::{EventName, Input, Outcome};
use crate::sql::Statement;

/// The blob space API-made rules are stored under.
const SPACE: &str = "rules";

/// A rule's counters (EMQX's names).
#[derive(Debug, Default)]
pub struct RuleMetrics {
    /// `FROM` matched.
    pub matched: AtomicU64,
    /// `WHERE` held: an output went to the actions.
    pub passed: AtomicU64,
    /// `WHERE` did not hold (including a field it reads being undefined).
    pub no_result: AtomicU64,
    /// Evaluation failed (a function's type error).
    pub failed: AtomicU64,
}

/// A running rule.
pub struct Rule {
    pub config: RuleConfig,
    /// Where the rule came from: `config` or `api`.
    pub origin: &'static str,
    statement: Statement,
    pub metrics: RuleMetrics,
    pub actions: Vec<ActionHandle>,
}

/// Why a rule change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    #[error("action[{0}]: {1}")]
    Action(usize, String),
    #[error("rule {0:?} exists")]
    Exists(String),
    #[error("no rule {0:?}")]
    NotFound(String),
    #[error("rule {0:?} is defined in the config file; change it there")]
    FromConfig(String),
    #[error("the gateway is not started")]
    NotStarted,
}

/// The rules of one gateway.
pub struct Engine {
    node: String,
    configured: Vec<RuleConfig>,
    rules: RwLock<Arc<Vec<Arc<Rule>>>>,
    env: OnceLock<Env>,
    /// Serialises changes (read-modify-swap of `rules`).
    change: Mutex<()>,
}

impl Engine {
    /// An engine for `[[rule]]`s (validated by the config loader); nothing runs until
    /// [`Engine::start`].
    pub fn new(node: &str, configured: Vec<RuleConfig>) -> Arc<Engine> {
        Arc::new(Engine {
            node: node.to_string(),
            configured,
            rules: RwLock::new(Arc::new(Vec::new())),
            env: OnceLock::new(),
            change: Mutex::new(()),
        })
    }

    /// The hook to register with the broker before it is built.
    pub fn hook(self: &Arc<Engine>) -> Arc<dyn Hook> {
        Arc::new(RulesHook { engine: self.clone() })
    }

    /// Starts the configured and stored rules' actions. A stored rule that no longer
    /// validates is logged and skipped.
    pub fn start(&self, env: Env) {
        let stored = match env.broker.load_blobs(SPACE) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "rules: stored rules not read");
                Vec::new()
            }
        };
        if self.env.set(env).is_err() {
            return;
        }
        let _g = self.change.lock();
        let mut all: Vec<(RuleConfig, &'static str)> = self.configured.iter().map(|c| (c.clone(), "config")).collect();
        for (id, bytes) in stored {
            match serde_json::from_slice::<RuleConfig>(&bytes) {
                Ok(c) => {
                    all.retain(|(x, _)| x.id != c.id);
                    all.push((c, "api"));
                }
                Err(e) => tracing::warn!(rule = %id, error = %e, "rules: stored rule not read; skipped"),
            }
        }
        let mut running = Vec::new();
        for (c, origin) in all {
            match self.build(c, origin) {
                Ok(r) => running.push(Arc::new(r)),
                Err(e) => tracing::warn!(error = %e, "rules: rule not started"),
            }
        }
        tracing::info!(rules = running.len(), "rules started");
        *self.rules.write() = Arc::new(running);
    }

    fn build(&self, config: RuleConfig, origin: &'static str) -> Result<Rule, RuleError> {
        let statement = config.validate()?;
        let env = self.env.get().ok_or(RuleError::NotStarted)?;
        let mut actions = Vec::new();
        if config.enabled {
            for (i, a) in config.actions.iter().enumerate() {
                actions.push(action::start(&config.id, a, env).map_err(|e| RuleError::Action(i, e.0))?);
            }
        }
        Ok(Rule { config, origin, statement, metrics: RuleMetrics::default(), actions })
    }

    /// The running rules, in order.
    pub fn rules(&self) -> Arc<Vec<Arc<Rule>>> {
        self.rules.read().clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Rule>> {
        self.rules().iter().find(|r| r.config.id == id).cloned()
    }

    /// Adds a rule (`replace`: or replaces one made through the API), stores it, and
    /// applies it at once.
    pub fn put(&self, config: RuleConfig, replace: bool) -> Result<Arc<Rule>, RuleError> {
        let _g = self.change.lock();
        let current = self.rules();
        let existing = current.iter().position(|r| r.config.id == config.id);
        match existing {
            Some(_) if !replace => return Err(RuleError::Exists(config.id)),
            None if replace => return Err(RuleError::NotFound(config.id)),
            Some(i) if current[i].origin == "config" => return Err(RuleError::FromConfig(config.id)),
            _ => {}
        }
        let rule = Arc::new(self.build(config, "api")?);
        let bytes = serde_json::to_vec(&rule.config).map_err(|e| RuleError::Action(0, e.to_string()))?;
        if let Some(env) = self.env.get() {
            env.broker.record_blob(SPACE, rule.config.id.clone(), Some(bytes.into()));
        }
        let mut next: Vec<Arc<Rule>> = current.iter().cloned().collect();
        match existing {
            Some(i) => next[i] = rule.clone(),
            None => next.push(rule.clone()),
        }
        *self.rules.write() = Arc::new(next);
        Ok(rule)
    }

    /// Deletes a rule made through the API.
    pub fn delete(&self, id: &str) -> Result<(), RuleError> {
        let _g = self.change.lock();
        let current = self.rules();
        let Some(i) = current.iter().position(|r| r.config.id == id) else {
            return Err(RuleError::NotFound(id.to_string()));
        };
        if current[i].origin == "config" {
            return Err(RuleError::FromConfig(id.to_string()));
        }
        if let Some(env) = self.env.get() {
            env.broker.record_blob(SPACE, id.to_string(), None);
        }
        let mut next: Vec<Arc<Rule>> = current.iter().cloned().collect();
        next.remove(i);
        *self.rules.write() = Arc::new(next);
        Ok(())
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Runs every enabled rule over one input (the hook's work).
    pub fn dispatch(&self, input: &Input<'_>) {
        let rules = self.rules();
        for r in rules.iter() {
            if !r.config.enabled {
                continue;
            }
            match r.statement.apply(input) {
                Ok(Outcome::NotMatched) => {}
                Ok(Outcome::NoResult) => {
                    r.metrics.matched.fetch_add(1, Relaxed);
                    r.metrics.no_result.fetch_add(1, Relaxed);
                }
                Ok(Outcome::Output(out)) => {
                    r.metrics.matched.fetch_add(1, Relaxed);
                    r.metrics.passed.fetch_add(1, Relaxed);
                    if let Some((last, rest)) = r.actions.split_last() {
                        for a in rest {
                            a.offer(out.clone());
                        }
                        last.offer(out);
                    }
                }
                Err(e) => {
                    r.metrics.matched.fetch_add(1, Relaxed);
                    r.metrics.failed.fetch_add(1, Relaxed);
                    tracing::debug!(rule = %r.config.id, error = %e, "rule evaluation failed");
                }
            }
        }
    }
}

impl Rule {
    pub fn statement(&self) -> &Statement {
        &self.statement
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The broker-side half: turns a broker event into an [`Input`] when any rule runs.
struct RulesHook {
    engine: Arc<Engine>,
}

impl Hook for RulesHook {
    fn interests(&self) -> EventMask {
        EventMask::of(&[
            EventKind::MessagePublish,
            EventKind::ClientConnected,
            EventKind::ClientDisconnected,
            EventKind::SessionSubscribed,
            EventKind::SessionUnsubscribed,
            EventKind::MessageDelivered,
            EventKind::MessageAcked,
            EventKind::MessageDropped,
        ])
    }

    fn on_event(&self, event: &Event<'_>) {
        if self.engine.rules.read().is_empty() {
            return;
        }
        let node = self.engine.node.as_str();
        let reason;
        let mut input = match event {
            Event::Published { client, message } => {
                let mut i = Input::new(EventName::MessagePublish, node, now_ms());
                if let Some(c) = client {
                    client_fields(&mut i, c);
                }
                message_fields(&mut i, message);
                i
            }
            Event::Connected { client, keep_alive, .. } => {
                let mut i = Input::new(EventName::ClientConnected, node, now_ms());
                client_fields(&mut i, client);
                i.keepalive = Some(*keep_alive);
                i
            }
            Event::Disconnected { client, reason: r } => {
                let mut i = Input::new(EventName::ClientDisconnected, node, now_ms());
                client_fields(&mut i, client);
                reason = format!("{r:?}").to_lowercase();
                i.reason = Some(&reason);
                i
            }
            Event::Subscribed { client, filter } | Event::Unsubscribed { client, filter } => {
                let name = if matches!(event, Event::Subscribed { .. }) {
                    EventName::SessionSubscribed
                } else {
                    EventName::SessionUnsubscribed
                };
                let mut i = Input::new(name, node, now_ms());
                client_fields(&mut i, client);
                i.topic = Some(filter);
                i
            }
            Event::Delivered { client, message, qos } => {
                let mut i = Input::new(EventName::MessageDelivered, node, now_ms());
                message_fields(&mut i, message);
                client_fields(&mut i, client);
                i.qos = Some(*qos as u8);
                i
            }
            Event::Acked { client, message } => {
                let mut i = Input::new(EventName::MessageAcked, node, now_ms());
                message_fields(&mut i, message);
                client_fields(&mut i, client);
                i
            }
            Event::Dropped { client, message, reason: r } => {
                let mut i = Input::new(EventName::MessageDropped, node, now_ms());
                message_fields(&mut i, message);
                i.clientid = client.map(|c| c.as_str()).or(i.from_clientid);
                i.reason = Some(r.as_str());
                i
            }
            _ => return,
        };
        input.node = node;
        self.engine.dispatch(&input);
        // A device event rides on the adapter's own publish: the same fields, its own `event`.
        if let Event::Published { client: Some(c), message } = event
            && let Some(name) = device_event(c, message)
        {
            input.event = name;
            self.engine.dispatch(&input);
        }
    }
}

/// The device event a LwM2M or LoRaWAN adapter's publish stands for: LwM2M's registration
/// messages (`{"msgType": "register" | "update" | "deregister", ...}` on its up topics) and
/// LoRaWAN's `.../event/join` and `.../event/up`.
fn device_event(c: &roost_core::ClientInfo, m: &roost_core::Message) -> Option<EventName> {
    match c.protocol {
        roost_core::Protocol::Lorawan => {
            if m.topic.ends_with("/event/up") {
                Some(EventName::LorawanUp)
            } else if m.topic.ends_with("/event/join") {
                Some(EventName::LorawanJoin)
            } else {
                None
            }
        }
        roost_core::Protocol::Lwm2m => {
            // Notifications are the bulk of LwM2M traffic: a byte search before any parse.
            let has = |needle: &[u8]| m.payload.windows(needle.len()).any(|w| w == needle);
            if !has(b"\"msgType\"") {
                return None;
            }
            #[derive(serde::Deserialize)]
            struct Head<'a> {
                #[serde(rename = "msgType", borrow)]
                msg_type: std::borrow::Cow<'a, str>,
            }
            let head: Head<'_> = serde_json::from_slice(&m.payload).ok()?;
            match head.msg_type.as_ref() {
                "register" => Some(EventName::Lwm2mRegister),
                "update" => Some(EventName::Lwm2mUpdate),
                "deregister" => Some(EventName::Lwm2mDeregister),
                _ => None,
            }
        }
        _ => None,
    }
}

fn client_fields<'a>(i: &mut Input<'a>, c: &'a roost_core::ClientInfo) {
    i.clientid = Some(c.client_id.as_str());
    i.username = c.username.as_deref();
    i.peer = c.peer;
    i.protocol = Some(c.protocol_name());
}

fn message_fields<'a>(i: &mut Input<'a>, m: &'a roost_core::Message) {
    i.topic = Some(&m.topic);
    i.payload = Some(&m.payload);
    i.qos = Some(m.qos as u8);
    i.retain = m.retain;
    i.user_properties = &m.properties.user_properties;
    i.from_clientid = m.publisher.as_ref().map(|p| p.as_str());
}

#[cfg(test)]
mod tests {
    use roost_core::{ClientId, ClientInfo, Message, Protocol, QoS};

    use super::*;

    fn client(protocol: Protocol) -> ClientInfo {
        ClientInfo {
            client_id: ClientId::new("d"),
            protocol,
            protocol_detail: None,
            peer: None,
            username: None,
            grants: None,
        }
    }

    #[test]
    fn device_events_come_from_lwm2m_and_lorawan_publishes_only() {
        let lora = client(Protocol::Lorawan);
        let msg = |topic: &str, payload: &str| Message::new(topic, payload.to_string(), QoS::AtMostOnce, false);
        let up = msg("application/a/device/01/event/up", "{}");
        assert_eq!(device_event(&lora, &up), Some(EventName::LorawanUp));
        let join = msg("application/a/device/01/event/join", "{}");
        assert_eq!(device_event(&lora, &join), Some(EventName::LorawanJoin));
        assert_eq!(device_event(&lora, &msg("application/a/device/01/event/ack", "{}")), None);
        // The same topic from an MQTT client is just a message.
        assert_eq!(device_event(&client(Protocol::Mqtt), &up), None);
        let lwm2m = client(Protocol::Lwm2m);
        let reg = msg("lwm2m/ep/up/resp", r#"{"data":{"ep":"ep"},"msgType":"register"}"#);
        assert_eq!(device_event(&lwm2m, &reg), Some(EventName::Lwm2mRegister));
        let upd = msg("lwm2m/ep/up/update", r#"{"msgType":"update","data":{}}"#);
        assert_eq!(device_event(&lwm2m, &upd), Some(EventName::Lwm2mUpdate));
        let dereg = msg("lwm2m/ep/up/resp", r#"{"msgType":"deregister","data":{}}"#);
        assert_eq!(device_event(&lwm2m, &dereg), Some(EventName::Lwm2mDeregister));
        assert_eq!(device_event(&lwm2m, &msg("lwm2m/ep/up/notify", r#"{"msgType":"notify"}"#)), None);
        assert_eq!(device_event(&lwm2m, &msg("lwm2m/ep/up/notify", "not json \"msgType\"")), None);
    }
}
