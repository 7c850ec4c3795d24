//! What a reload cannot change while the gateway runs: listener addresses and protocol
//! settings that open sockets and size tables at start, the store, the cluster, the HTTP
//! listener and its keys, broker limits that sessions were created with (`[limits]`),
//! the listeners' connection caps and `$SYS`. A reload names each that changed and leaves it as it was.

use crate::config::Settings;

/// Each section or key that differs between `old` and `new` and only a restart applies.
pub(super) fn changed(old: &Settings, new: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, differs: bool| {
        if differs {
            out.push(name.to_string());
        }
    };
    check("storage", old.storage != new.storage);
    check("http.bind", old.http_bind != new.http_bind);
    check("http.api_keys", old.api_keys != new.api_keys);
    check("cluster", old.cluster != new.cluster);
    check("node.sys_interval", old.sys_interval != new.sys_interval);
    check("node.shutdown_grace", old.shutdown_grace != new.shutdown_grace);
    check("codec", old.codecs != new.codecs);
    check("mqttsn", old.mqttsn != new.mqttsn);
    check("lorawan", old.lorawan != new.lorawan);
    check("lwm2m", old.lwm2m != new.lwm2m);
    check("adapter", old.adapters != new.adapters);
    check("mqtt (listeners and their limits)", strip_mqtt(old) != strip_mqtt(new));
    check("mqtt.tls (added or removed)", old.mqtt.tls.is_some() != new.mqtt.tls.is_some());
    check("coap (listeners and their limits)", strip_coap(old) != strip_coap(new));
    out.extend(broker_keys(old, new));
    out
}

/// `new`, with every setting a reload cannot change taken from `old`: the configuration
/// that runs after the reload.
pub(super) fn keep(old: &Settings, new: Settings) -> Settings {
    let mut kept = old.clone();
    let live_acl = new.acl;
    kept.auth = new.auth;
    kept.acl = live_acl;
    kept.bridges = new.bridges;
    kept.rules = new.rules;
    kept.webhooks = new.webhooks;
    kept.log_level = new.log_level;
    kept.broker.allow_anonymous = new.broker.allow_anonymous;
    if old.mqtt.tls.is_some() && new.mqtt.tls.is_some() {
        kept.mqtt.tls = new.mqtt.tls;
    }
    kept.mqtt.limits =
        roost_mqtt::settings::ListenerLimits { max_connections: old.mqtt.limits.max_connections, ..new.mqtt.limits };
    let d = &mut kept.coap.dtls;
    (d.psk, d.cert_file, d.key_file, d.ca_file) =
        (new.coap.dtls.psk, new.coap.dtls.cert_file, new.coap.dtls.key_file, new.coap.dtls.ca_file);
    kept
}

/// The `[mqtt]` settings without the TLS files and the rate limits, which reload live.
fn strip_mqtt(s: &Settings) -> roost_mqtt::settings::MqttSettings {
    let mut m = s.mqtt.clone();
    m.tls = None;
    m.limits = roost_mqtt::settings::ListenerLimits { max_connections: m.limits.max_connections, ..Default::default() };
    m
}

/// The `[coap]` settings without the DTLS credentials, which reload live.
fn strip_coap(s: &Settings) -> roost_coap::settings::CoapSettings {
    let mut c = s.coap.clone();
    (c.dtls.psk, c.dtls.cert_file, c.dtls.key_file, c.dtls.ca_file) = (Vec::new(), None, None, None);
    c
}

/// The broker settings that changed, by name; `allow_anonymous` reloads live (it is part
/// of the authentication chain).
fn broker_keys(old: &Settings, new: &Settings) -> Vec<String> {
    let (a, b) = (&old.broker, &new.broker);
    let pairs: [(&str, bool); 15] = [
        ("node.name", a.node_name != b.node_name),
        ("limits.max_connections", a.max_connections != b.max_connections),
        ("limits.max_inflight", a.max_inflight != b.max_inflight),
        ("limits.max_queued_messages", a.max_queued_messages != b.max_queued_messages),
        ("limits.overflow_policy", a.overflow_policy != b.overflow_policy),
        ("limits.queue_qos0_offline", a.queue_qos0_offline != b.queue_qos0_offline),
        ("limits.max_awaiting_rel", a.max_awaiting_rel != b.max_awaiting_rel),
        ("limits.max_topic_length", a.max_topic_length != b.max_topic_length),
        ("limits.max_topic_levels", a.max_topic_levels != b.max_topic_levels),
        ("limits.max_subscriptions_per_client", a.max_subscriptions_per_client != b.max_subscriptions_per_client),
        ("limits.max_session_expiry", a.max_session_expiry != b.max_session_expiry),
        ("mqtt.retain_available", a.retain_available != b.retain_available),
        ("limits.max_retained_messages", a.max_retained_messages != b.max_retained_messages),
        ("mqtt.shared_subscription_strategy", a.shared_strategy != b.shared_strategy),
        ("auth.slow_after_failures", a.auth_failures_free != b.auth_failures_free),
    ];
    pairs.into_iter().filter(|(_, d)| *d).map(|(n, _)| n.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_only_a_restart_applies_and_keeps_it() {
        let old = Settings::default();
        let mut new = old.clone();
        new.storage.data_dir = "elsewhere".into();
        new.broker.max_inflight = 7;
        new.broker.allow_anonymous = !old.broker.allow_anonymous;
        new.log_level = "debug".into();
        let names = changed(&old, &new);
        assert_eq!(names, vec!["storage".to_string(), "limits.max_inflight".to_string()]);
        let kept = keep(&old, new);
        assert_eq!(kept.storage, old.storage);
        assert_eq!(kept.broker.max_inflight, old.broker.max_inflight);
        assert_eq!(kept.broker.allow_anonymous, !old.broker.allow_anonymous);
        assert_eq!(kept.log_level, "debug");
        assert!(changed(&old, &old).is_empty());
    }
}
