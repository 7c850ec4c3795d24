//! From the file as read ([`ConfigFile`]) to typed settings: every range, address and filter
//! check, each failing with the dotted key it is about.

use std::net::SocketAddr;

use roost_core::settings::BrokerSettings;
use roost_mqtt::settings::MqttSettings;
use roost_mqttsn::settings::MqttSnSettings;
use tracing_subscriber::EnvFilter;

use roost_codec::{CodecLimits, CodecListenerSettings, Options, Transport};

use super::schema::MqttSnSection;
use super::schema::{CodecSection, ConfigFile, Int, LimitsSection, MqttSection, StorageSection};
use super::{ConfigError, Settings};

/// The largest Remaining Length MQTT can encode (a 4-byte Variable Byte Integer, MQTT 5 §1.5.5).
const MAX_PACKET_SIZE_LIMIT: i64 = 268_435_455;
/// A minimal 3.1.1 CONNECT is 14 bytes; a limit much below it would refuse every client.
const MIN_PACKET_SIZE_LIMIT: i64 = 16;

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Every section checked and turned into its settings; the first error found is returned.
pub(super) fn settings(file: ConfigFile) -> Result<Settings, ConfigError> {
    let ConfigFile {
        node,
        log,
        mqtt,
        mqttsn,
        coap,
        lorawan,
        lwm2m,
        limits,
        mut auth,
        acl,
        codec,
        storage,
        bridge,
        http,
        webhook,
        cluster,
        rule,
        payload_codec,
        adapter,
    } = file;

    let (retain_available, shared_strategy) = (mqtt.retain_available, mqtt.shared_subscription_strategy);
    let mut mqtt_settings = mqtt_settings(mqtt)?;
    let mut acl = acl;
    let databases = super::authdb::DbSections {
        postgresql: auth.postgresql.take(),
        mysql: auth.mysql.take(),
        redis: auth.redis.take(),
        ldap: auth.ldap.take(),
        jwt: auth.jwt.take(),
        acl_sources: acl.sources.clone(),
        acl_postgresql: acl.postgresql.take(),
        acl_mysql: acl.mysql.take(),
        acl_redis: acl.redis.take(),
    };
    let (acl, deny_disconnect) = super::security::acl(acl)?;
    mqtt_settings.acl_deny_disconnect = deny_disconnect;
    let auth_settings =
        super::security::auth(&auth.chain, &auth.password_file, auth.client_ids.clone(), auth.http, databases)?;

    let node_name = node_name("node.name", node.name)?;
    let limits = limit_settings(limits)?;
    let broker = BrokerSettings {
        node_name,
        retain_available,
        shared_strategy: shared_strategy.into(),
        allow_anonymous: !matches!(auth.allow_anonymous, super::schema::AnonymousName::Bool(false)),
        auth_failures_free: super::security::non_negative("auth.slow_after_failures", auth.slow_after_failures)?,
        ..limits
    };
    let codecs = codec_listeners(codec)?;
    let storage = storage_settings(storage)?;
    let mqttsn = mqttsn_settings(mqttsn)?;
    let mut coap = super::coap::coap_settings(coap)?;
    let lorawan = super::lorawan::lorawan_settings(lorawan)?;
    let lwm2m = super::lwm2m::lwm2m_settings(lwm2m)?;
    if let Some(b) = &lwm2m.bootstrap {
        super::lwm2m::add_bootstrap_psks(b, &mut coap.dtls.psk)?;
    }
    let listeners = listener_addrs(&mqtt_settings, &mqttsn, &coap, &lorawan, &lwm2m, &codecs);
    check_anonymous(&auth.allow_anonymous, listeners.into_iter())?;

    Ok(Settings {
        http_bind: bind_addrs("http.bind", &http.bind.0)?,
        api_keys: api_keys(http.api_keys)?,
        webhooks: super::webhook::webhooks(webhook)?,
        rules: super::rules::rules(rule)?,
        payload_codecs: super::plugins::payload_codecs(payload_codec, &lorawan)?,
        bridges: super::bridge::bridges(bridge)?,
        cluster: super::cluster::cluster(cluster, &broker.node_name)?,
        storage,
        broker,
        mqtt: mqtt_settings,
        codecs,
        mqttsn,
        auth: auth_settings,
        acl,
        coap,
        lorawan,
        lwm2m,
        log_level: log_level("log.level", log.level)?,
        shutdown_grace: node.shutdown_grace.0,
        sys_interval: (!node.sys_interval.0.is_zero()).then_some(node.sys_interval.0),
        adapters: adapter.into_iter().map(|(name, t)| (name, super::AdapterSection(t))).collect(),
        // Filled in by `parse`, which still holds the file.
        effective: super::EffectiveConfig::default(),
    })
}

/// `[mqtt]`: the listeners, their limits and TLS.
fn mqtt_settings(mqtt: MqttSection) -> Result<MqttSettings, ConfigError> {
    let mut settings = MqttSettings {
        bind: bind_addrs("mqtt.bind", &mqtt.bind.0)?,
        max_packet_size: in_range(
            "mqtt.max_packet_size",
            mqtt.max_packet_size,
            MIN_PACKET_SIZE_LIMIT,
            MAX_PACKET_SIZE_LIMIT,
        )?,
        connect_timeout: positive("mqtt.connect_timeout", mqtt.connect_timeout.0)?,
        topic_alias_maximum: in_range("mqtt.topic_alias_maximum", mqtt.topic_alias_maximum, 0, 65_535)?,
        receive_maximum: in_range("mqtt.receive_maximum", mqtt.receive_maximum, 1, 65_535)?,
        max_keep_alive: in_range("mqtt.max_keep_alive", mqtt.max_keep_alive, 0, 65_535)?,
        allow_empty_client_id: mqtt.allow_empty_client_id,
        tls_bind: bind_addrs("mqtt.tls_bind", &mqtt.tls_bind.0)?,
        ws_bind: bind_addrs("mqtt.ws_bind", &mqtt.ws_bind.0)?,
        wss_bind: bind_addrs("mqtt.wss_bind", &mqtt.wss_bind.0)?,
        ws_path: {
            if !mqtt.ws_path.starts_with('/') {
                return Err(invalid("mqtt.ws_path", format!("{:?} must start with '/'", mqtt.ws_path)));
            }
            mqtt.ws_path
        },
        tls: None,
        limits: roost_mqtt::settings::ListenerLimits {
            max_connections: at_least("mqtt.max_connections", mqtt.max_connections, 0)?,
            max_conn_rate: super::security::non_negative("mqtt.max_conn_rate", mqtt.max_conn_rate)?,
            bytes_rate: super::security::rate("mqtt.rate_limit", &mqtt.rate_limit)?,
            messages_rate: super::security::rate("mqtt.messages_rate", &mqtt.messages_rate)?
                .map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
            disconnect_over_rate: match mqtt.rate_limit_action.as_str() {
                "throttle" => false,
                "disconnect" => true,
                other => {
                    return Err(invalid(
                        "mqtt.rate_limit_action",
                        format!("{other:?} is not \"throttle\" or \"disconnect\""),
                    ));
                }
            },
        },
        acl_deny_disconnect: false,
        proxy: proxy_settings(mqtt.proxy_protocol, &mqtt.proxy_trusted)?,
    };
    let needs_tls = !settings.tls_bind.is_empty() || !settings.wss_bind.is_empty();
    settings.tls = super::security::mqtt_tls(mqtt.tls, needs_tls)?;
    Ok(settings)
}

/// `[limits]`: the broker's bounds (the other broker settings stay at their defaults).
fn limit_settings(limits: LimitsSection) -> Result<BrokerSettings, ConfigError> {
    Ok(BrokerSettings {
        max_connections: at_least("limits.max_connections", limits.max_connections, 1)?,
        max_inflight: in_range("limits.max_inflight", limits.max_inflight, 1, 65_535)?,
        max_queued_messages: at_least("limits.max_queued_messages", limits.max_queued_messages, 1)?,
        overflow_policy: limits.overflow_policy.into(),
        queue_qos0_offline: limits.queue_qos0_offline,
        max_awaiting_rel: in_range("limits.max_awaiting_rel", limits.max_awaiting_rel, 1, 65_535)?,
        max_topic_length: in_range("limits.max_topic_length", limits.max_topic_length, 1, 65_535)?,
        max_topic_levels: at_least("limits.max_topic_levels", limits.max_topic_levels, 1)?,
        max_subscriptions_per_client: at_least(
            "limits.max_subscriptions_per_client",
            limits.max_subscriptions_per_client,
            1,
        )?,
        max_session_expiry: limits.max_session_expiry.0,
        max_retained_messages: at_least("limits.max_retained_messages", limits.max_retained_messages, 0)?,
        ..BrokerSettings::default()
    })
}

/// `[[codec]]` listeners, each with its own name.
fn codec_listeners(codec: Vec<CodecSection>) -> Result<Vec<CodecListenerSettings>, ConfigError> {
    let codecs =
        codec.into_iter().enumerate().map(|(i, section)| codec_listener(i, section)).collect::<Result<Vec<_>, _>>()?;
    if let Some((i, dup)) = codecs.iter().enumerate().find(|(i, c)| codecs[..*i].iter().any(|o| o.name == c.name)) {
        return Err(invalid(
            &format!("codec[{i}].name"),
            format!("{:?} names two [[codec]] listeners; give each its own name", dup.name),
        ));
    }

    Ok(codecs)
}

/// `[storage]`.
fn storage_settings(storage: StorageSection) -> Result<super::StorageSettings, ConfigError> {
    let max_size = at_least("storage.max_size", storage.max_size, 0)? as u64;
    Ok(super::StorageSettings {
        max_size: (max_size > 0).then_some(max_size),
        disk: storage.backend == super::schema::StorageBackendName::Disk,
        data_dir: {
            if storage.data_dir.trim().is_empty() {
                return Err(invalid("storage.data_dir", "is empty"));
            }
            std::path::PathBuf::from(storage.data_dir)
        },
        sync: match storage.sync {
            super::schema::SyncName::Always => roost_core::store::SyncMode::Always,
            super::schema::SyncName::None => roost_core::store::SyncMode::None,
            super::schema::SyncName::Batch => {
                let w = storage.batch_interval.0;
                if w.is_zero() || w > std::time::Duration::from_secs(1) {
                    return Err(invalid("storage.batch_interval", "must be between 1ms and 1s"));
                }
                roost_core::store::SyncMode::Batch(w)
            }
        },
    })
}

/// Every listener address with the key that sets it, in config order.
fn listener_addrs(
    mqtt: &MqttSettings,
    mqttsn: &MqttSnSettings,
    coap: &roost_coap::settings::CoapSettings,
    lorawan: &roost_lorawan::settings::LorawanSettings,
    lwm2m: &roost_lwm2m::server::settings::Lwm2mSettings,
    codecs: &[CodecListenerSettings],
) -> Vec<(&'static str, SocketAddr)> {
    mqtt.bind
        .iter()
        .map(|a| ("mqtt.bind", *a))
        .chain(mqtt.tls_bind.iter().map(|a| ("mqtt.tls_bind", *a)))
        .chain(mqtt.ws_bind.iter().map(|a| ("mqtt.ws_bind", *a)))
        .chain(mqtt.wss_bind.iter().map(|a| ("mqtt.wss_bind", *a)))
        .chain(mqttsn.bind.iter().map(|a| ("mqttsn.bind", *a)))
        .chain(coap.bind.iter().map(|a| ("coap.bind", *a)))
        .chain(coap.dtls.bind.iter().map(|a| ("coap.dtls_bind", *a)))
        .chain(lorawan.bind.iter().map(|a| ("lorawan.bind", *a)))
        .chain(lwm2m.bind.iter().map(|a| ("lwm2m.bind", *a)))
        .chain(lwm2m.dtls_bind.iter().map(|a| ("lwm2m.dtls_bind", *a)))
        .chain(codecs.iter().map(|c| ("codec.bind", c.bind)))
        .collect()
}

/// Mosquitto 2's lesson: the default lets anonymous clients in only because the default
/// listeners are loopback-only. Opening a listener keeps that only if the file says so.
fn check_anonymous(
    allow: &super::schema::AnonymousName,
    mut listeners: impl Iterator<Item = (&'static str, SocketAddr)>,
) -> Result<(), ConfigError> {
    match allow {
        super::schema::AnonymousName::Bool(_) => {}
        super::schema::AnonymousName::Word(w) if w == "loopback" => {
            let open = listeners.find(|(_, a)| !a.ip().is_loopback());
            if let Some((key, addr)) = open {
                return Err(invalid(
                    "auth.allow_anonymous",
                    format!(
                        "\"loopback\" (the default) admits anonymous clients only while every listener is on loopback, \
                         but {key} has {addr}; set allow_anonymous = false (and give clients credentials), \
                         or true to accept anonymous clients from the network"
                    ),
                ));
            }
        }
        super::schema::AnonymousName::Word(w) => {
            return Err(invalid("auth.allow_anonymous", format!("{w:?} is not true, false or \"loopback\"")));
        }
    }
    Ok(())
}

/// `[http] api_keys`: long enough to resist guessing, and printable (they travel in a header).
fn api_keys(keys: Vec<String>) -> Result<Vec<String>, ConfigError> {
    for (i, k) in keys.iter().enumerate() {
        if k.len() < 16 || !k.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                &format!("http.api_keys[{i}]"),
                "must be at least 16 printable ASCII characters, no spaces",
            ));
        }
    }
    Ok(keys)
}

/// The largest UDP payload over IPv4 (65535 minus the IP and UDP headers).
const MAX_DATAGRAM: i64 = 65_507;
/// The most a TCP codec listener buffers without a whole frame.
const MAX_STREAM_FRAME: i64 = 16 * 1024 * 1024;

fn codec_listener(i: usize, mut c: CodecSection) -> Result<CodecListenerSettings, ConfigError> {
    let key = |k: &str| format!("codec[{i}].{k}");
    super::plugins::codec_plugin(&key, &mut c.codec, &mut c.name, &c.plugin, &mut c.options)?;
    if c.codec.is_empty() {
        return Err(invalid(&key("codec"), "missing: the name of a registered codec, e.g. \"line\" or \"tlv-sensor\""));
    }
    if c.bind.is_empty() {
        return Err(invalid(&key("bind"), "missing: the \"ip:port\" address to listen on, e.g. \"0.0.0.0:5800\""));
    }
    let bind = c.bind.parse().map_err(|_| {
        invalid(&key("bind"), format!("\"{}\" is not an \"ip:port\" address (host names are not resolved)", c.bind))
    })?;
    if c.mountpoint.contains(['+', '#']) {
        return Err(invalid(&key("mountpoint"), format!("{:?} must not contain '+' or '#'", c.mountpoint)));
    }
    let transport = Transport::from(c.transport);
    let max_frame = match transport {
        Transport::Udp => MAX_DATAGRAM,
        Transport::Tcp => MAX_STREAM_FRAME,
    };
    let l = c.limits;
    let limits = CodecLimits {
        max_connections: at_least(&key("limits.max_connections"), l.max_connections, 1)?,
        max_frame_size: in_range(&key("limits.max_frame_size"), l.max_frame_size, 1, max_frame)?,
        connect_timeout: positive(&key("limits.connect_timeout"), l.connect_timeout.0)?,
        idle_timeout: positive(&key("limits.idle_timeout"), l.idle_timeout.0)?,
        max_pending_datagrams: at_least(&key("limits.max_pending_datagrams"), l.max_pending_datagrams, 1)?,
    };
    Ok(CodecListenerSettings {
        name: if c.name.is_empty() { c.codec.clone() } else { c.name },
        codec: c.codec,
        transport,
        bind,
        options: Options(c.options),
        mountpoint: c.mountpoint,
        limits,
    })
}

fn mqttsn_settings(sn: MqttSnSection) -> Result<MqttSnSettings, ConfigError> {
    let advertise = sn.advertise_interval.0;
    if advertise.as_secs() > 65_535 || advertise.subsec_millis() != 0 {
        return Err(invalid(
            "mqttsn.advertise_interval",
            "must be whole seconds up to 65535s (ADVERTISE carries it in a 2-byte field)",
        ));
    }
    let advertise_address = sn.advertise_address.parse::<SocketAddr>().map_err(|_| {
        invalid("mqttsn.advertise_address", format!("\"{}\" is not an \"ip:port\" address", sn.advertise_address))
    })?;
    if sn.mountpoint.contains(['+', '#']) {
        return Err(invalid("mqttsn.mountpoint", "must not contain '+' or '#'"));
    }
    let mut predefined: Vec<(u16, String)> = Vec::with_capacity(sn.predefined.len());
    for (i, entry) in sn.predefined.into_iter().enumerate() {
        let id: u16 = in_range(&format!("mqttsn.predefined[{i}].id"), entry.id, 1, 65_534)?;
        if predefined.iter().any(|(other, _)| *other == id) {
            return Err(invalid(&format!("mqttsn.predefined[{i}].id"), format!("{id} is listed twice")));
        }
        if entry.topic.is_empty() || entry.topic.contains(['+', '#']) {
            return Err(invalid(
                &format!("mqttsn.predefined[{i}].topic"),
                format!("{:?} is not a topic name (empty, or contains '+' or '#')", entry.topic),
            ));
        }
        if predefined.iter().any(|(_, other)| *other == entry.topic) {
            return Err(invalid(
                &format!("mqttsn.predefined[{i}].topic"),
                format!("{:?} is listed twice", entry.topic),
            ));
        }
        predefined.push((id, entry.topic));
    }
    Ok(MqttSnSettings {
        bind: bind_addrs("mqttsn.bind", &sn.bind.0)?,
        recv_buffer: in_range("mqttsn.recv_buffer", sn.recv_buffer, 0, i64::from(i32::MAX))?,
        gateway_id: in_range("mqttsn.gateway_id", sn.gateway_id, 0, 255)?,
        advertise_interval: (!advertise.is_zero()).then_some(advertise),
        advertise_address,
        mountpoint: sn.mountpoint,
        predefined,
        max_clients: at_least("mqttsn.max_clients", sn.max_clients, 1)?,
        max_topics_per_client: in_range("mqttsn.max_topics_per_client", sn.max_topics_per_client, 1, 65_534)?,
        max_sleep_buffer: at_least("mqttsn.max_sleep_buffer", sn.max_sleep_buffer, 0)?,
        retry_interval: positive("mqttsn.retry_interval", sn.retry_interval.0)?,
        max_retries: in_range("mqttsn.max_retries", sn.max_retries, 0, 100)?,
        max_inflight: in_range("mqttsn.max_inflight", sn.max_inflight, 1, 65_535)?,
        allow_qos_minus_one: sn.allow_qos_minus_one,
        subs_resume: sn.subs_resume,
        peer_packet_rate: super::security::non_negative("mqttsn.peer_packet_rate", sn.peer_packet_rate)?,
        new_peers_rate: super::security::non_negative("mqttsn.new_peers_rate", sn.new_peers_rate)?,
    })
}

pub(super) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), message: message.into() }
}

/// `lo..=hi`, converted to the target integer type (which must hold the whole range).
pub(super) fn in_range<T: TryFrom<i64>>(key: &str, value: Int, lo: i64, hi: i64) -> Result<T, ConfigError> {
    let Int(value) = value;
    if !(lo..=hi).contains(&value) {
        return Err(invalid(key, format!("{value} is out of range ({lo}..={hi})")));
    }
    T::try_from(value).map_err(|_| invalid(key, format!("{value} is out of range ({lo}..={hi})")))
}

/// `lo..` as a `usize`; on 32-bit targets the platform bounds the top.
pub(super) fn at_least(key: &str, value: Int, lo: i64) -> Result<usize, ConfigError> {
    let Int(value) = value;
    if value < lo {
        return Err(invalid(key, format!("{value} is out of range (at least {lo})")));
    }
    usize::try_from(value)
        .map_err(|_| invalid(key, format!("{value} is out of range (at most {} on this platform)", usize::MAX)))
}

pub(super) fn positive(key: &str, value: std::time::Duration) -> Result<std::time::Duration, ConfigError> {
    if value.is_zero() {
        return Err(invalid(key, "must be longer than 0"));
    }
    Ok(value)
}

pub(super) fn bind_addrs(key: &str, addrs: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            text.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    &format!("{key}[{i}]"),
                    format!(
                        "\"{text}\" is not an \"ip:port\" address \
                         (e.g. \"0.0.0.0:1883\" or \"[::]:1883\"; host names are not resolved)"
                    ),
                )
            })
        })
        .collect()
}

/// The node name is part of `$SYS/...` topic names, so it must be one non-empty topic level.
fn node_name(key: &str, name: String) -> Result<String, ConfigError> {
    if name.is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    if let Some(bad) = name.chars().find(|c| matches!(c, '/' | '+' | '#') || c.is_control()) {
        return Err(invalid(
            key,
            format!(
                "{:?} contains {bad:?}; it is used as a topic level, so '/', '+', '#' and control characters are not allowed",
                name
            ),
        ));
    }
    Ok(name)
}

/// A level name, or a full `EnvFilter` directive (`"info,roost_mqtt=debug"`). A lone word must
/// be a level: `EnvFilter` would take a typo like `"inf"` as a target name and silently log
/// nothing.
fn log_level(key: &str, level: String) -> Result<String, ConfigError> {
    let is_directive = level.contains(['=', ',', '[', ':']);
    if !is_directive {
        if LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Ok(level);
        }
        return Err(invalid(
            key,
            format!(
                "{level:?} is not a log level (off, error, warn, info, debug, trace) \
                 or a filter directive such as \"info,roost_mqtt=debug\""
            ),
        ));
    }
    EnvFilter::builder()
        .parse(&level)
        .map_err(|e| invalid(key, format!("{level:?} is not a valid filter directive: {e}")))?;
    Ok(level)
}

/// `[mqtt] proxy_protocol` / `proxy_trusted`: on, it needs at least one trusted balancer
/// (a header from anyone else is refused, so with none every header would be).
fn proxy_settings(enabled: bool, trusted: &[String]) -> Result<roost_mqtt::proxy::ProxySettings, ConfigError> {
    let trusted = trusted
        .iter()
        .map(|t| {
            roost_core::auth::acl::IpRange::parse(t)
                .ok_or_else(|| invalid("mqtt.proxy_trusted", format!("{t:?} is not an IP address or CIDR range")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if enabled && trusted.is_empty() {
        return Err(invalid("mqtt.proxy_trusted", "proxy_protocol = true needs the balancers' addresses here"));
    }
    Ok(roost_mqtt::proxy::ProxySettings { enabled, trusted })
}
