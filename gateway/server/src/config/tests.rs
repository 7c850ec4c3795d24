use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use roost_core::settings::{OverflowPolicy, SharedStrategy};

use super::*;
use crate::DEFAULT_CONFIG;

fn error_of(text: &str) -> ConfigError {
    match parse(text) {
        Ok(settings) => panic!("{text:?} was accepted: {settings:?}"),
        Err(e) => e,
    }
}

#[test]
fn default_file_is_the_code_defaults() {
    assert_eq!(parse(DEFAULT_CONFIG).expect("default config parses"), Settings::default());
}

#[test]
fn empty_file_is_the_code_defaults() {
    assert_eq!(parse("").expect("empty config parses"), Settings::default());
    assert_eq!(parse("[mqtt]\n[limits]\n").expect("empty sections parse"), Settings::default());
}

#[test]
fn no_file_is_the_code_defaults() {
    assert_eq!(load(None).expect("defaults"), Settings::default());
}

#[test]
fn defaults_bind_loopback_only() {
    let settings = Settings::default();
    assert!(!settings.mqtt.bind.is_empty());
    assert!(settings.mqtt.bind.iter().all(|addr| addr.ip().is_loopback()), "{:?}", settings.mqtt.bind);
}

/// Every key of the schema, as `section.key`.
fn keys(table: &toml::Table) -> BTreeSet<String> {
    table
        .iter()
        .flat_map(|(section, value)| {
            let inner = value.as_table().map(|t| t.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
            inner.into_iter().map(move |key| format!("{section}.{key}"))
        })
        .collect()
}

#[test]
fn default_file_has_every_key() {
    let schema = toml::Table::try_from(schema::ConfigFile::default()).expect("defaults serialize");
    let file: toml::Table = toml::from_str(DEFAULT_CONFIG).expect("default config is TOML");
    assert_eq!(keys(&file), keys(&schema));
    // And, value by value, the file says what the code does.
    assert_eq!(file, schema);
}

#[test]
fn every_key_maps_to_its_setting() {
    let text = r#"
        [node]
        name = "edge-7"
        shutdown_grace = "500ms"
        [log]
        level = "info,roost_mqtt=debug"
        [mqtt]
        bind = ["0.0.0.0:1883", "[::]:11883"]
        max_packet_size = 16
        connect_timeout = "1m"
        topic_alias_maximum = 0
        receive_maximum = 65535
        max_keep_alive = 600
        allow_empty_client_id = false
        retain_available = false
        shared_subscription_strategy = "hash_clientid"
        [limits]
        max_connections = 1
        max_inflight = 1
        max_queued_messages = 2
        overflow_policy = "drop_new"
        queue_qos0_offline = false
        max_awaiting_rel = 3
        max_topic_length = 4
        max_topic_levels = 5
        max_subscriptions_per_client = 6
        max_session_expiry = "2h"
        max_retained_messages = 0
        [auth]
        allow_anonymous = false
    "#;
    let s = parse(text).expect("valid config");
    assert_eq!(s.broker.node_name, "edge-7");
    assert_eq!(s.shutdown_grace, Duration::from_millis(500));
    assert_eq!(s.log_level, "info,roost_mqtt=debug");
    let bind: Vec<SocketAddr> = vec!["0.0.0.0:1883".parse().expect("v4"), "[::]:11883".parse().expect("v6")];
    assert_eq!(s.mqtt.bind, bind);
    assert_eq!(s.mqtt.max_packet_size, 16);
    assert_eq!(s.mqtt.connect_timeout, Duration::from_secs(60));
    assert_eq!(s.mqtt.topic_alias_maximum, 0);
    assert_eq!(s.mqtt.receive_maximum, 65535);
    assert_eq!(s.mqtt.max_keep_alive, 600);
    assert!(!s.mqtt.allow_empty_client_id);
    assert!(!s.broker.retain_available);
    assert_eq!(s.broker.shared_strategy, SharedStrategy::HashClientId);
    assert_eq!(s.broker.max_connections, 1);
    assert_eq!(s.broker.max_inflight, 1);
    assert_eq!(s.broker.max_queued_messages, 2);
    assert_eq!(s.broker.overflow_policy, OverflowPolicy::DropNew);
    assert!(!s.broker.queue_qos0_offline);
    assert_eq!(s.broker.max_awaiting_rel, 3);
    assert_eq!(s.broker.max_topic_length, 4);
    assert_eq!(s.broker.max_topic_levels, 5);
    assert_eq!(s.broker.max_subscriptions_per_client, 6);
    assert_eq!(s.broker.max_session_expiry, Some(Duration::from_secs(7200)));
    assert_eq!(s.broker.max_retained_messages, 0);
    assert!(!s.broker.allow_anonymous);
}

#[test]
fn other_spellings_are_accepted() {
    let s = parse("mqtt.bind = []\nmqtt.shared_subscription_strategy = \"random\"\nlog.level = \"DEBUG\"")
        .expect("dotted keys at the top level");
    assert!(s.mqtt.bind.is_empty());
    assert_eq!(s.broker.shared_strategy, SharedStrategy::Random);
    assert_eq!(s.log_level, "DEBUG");

    let s = parse("[mqtt]\nbind = []\n[limits]\nmax_session_expiry = \"0s\"").expect("zero expiry bound");
    assert_eq!(s.broker.max_session_expiry, Some(Duration::ZERO));

    let s = parse("[node]\nshutdown_grace = \"0s\"").expect("zero grace");
    assert_eq!(s.shutdown_grace, Duration::ZERO);
}

/// (config text, key the error must name, words the message must contain)
const BAD: &[(&str, &str, &str)] = &[
    // ranges
    ("[mqtt]\nmax_packet_size = 0", "mqtt.max_packet_size", "0 is out of range (16..=268435455)"),
    ("[mqtt]\nmax_packet_size = 268435456", "mqtt.max_packet_size", "out of range"),
    ("[mqtt]\ntopic_alias_maximum = 65536", "mqtt.topic_alias_maximum", "65536 is out of range (0..=65535)"),
    ("[mqtt]\ntopic_alias_maximum = -1", "mqtt.topic_alias_maximum", "-1 is out of range"),
    ("[mqtt]\nreceive_maximum = 0", "mqtt.receive_maximum", "out of range (1..=65535)"),
    ("[mqtt]\nmax_keep_alive = 65536", "mqtt.max_keep_alive", "out of range (0..=65535)"),
    ("[mqtt]\nconnect_timeout = \"0s\"", "mqtt.connect_timeout", "longer than 0"),
    ("[limits]\nmax_connections = 0", "limits.max_connections", "0 is out of range (at least 1)"),
    ("[limits]\nmax_inflight = 0", "limits.max_inflight", "out of range (1..=65535)"),
    ("[limits]\nmax_inflight = 70000", "limits.max_inflight", "out of range (1..=65535)"),
    ("[limits]\nmax_queued_messages = 0", "limits.max_queued_messages", "at least 1"),
    ("[limits]\nmax_awaiting_rel = 0", "limits.max_awaiting_rel", "out of range"),
    ("[limits]\nmax_topic_length = 65536", "limits.max_topic_length", "out of range (1..=65535)"),
    ("[limits]\nmax_topic_levels = 0", "limits.max_topic_levels", "at least 1"),
    ("[limits]\nmax_subscriptions_per_client = -3", "limits.max_subscriptions_per_client", "at least 1"),
    ("[limits]\nmax_connections = 99999999999999999999", "limits.max_connections", "is out of range"),
    ("[limits]\nmax_retained_messages = -1", "limits.max_retained_messages", "at least 0"),
    // types
    ("[mqtt]\nmax_packet_size = \"1MB\"", "mqtt.max_packet_size", "expected an integer"),
    ("[mqtt]\nmax_packet_size = 1.5", "mqtt.max_packet_size", "expected an integer"),
    ("[mqtt]\nallow_empty_client_id = \"yes\"", "mqtt.allow_empty_client_id", "invalid type"),
    ("[mqtt]\nbind = \"0.0.0.0:1883\"", "mqtt.bind", "expected an array of \"ip:port\" strings"),
    ("[mqtt]\nbind = [\"127.0.0.1:1883\", 1883]", "mqtt.bind[1]", "invalid type"),
    ("[node]\nname = 7", "node.name", "invalid type"),
    ("[node]\nshutdown_grace = 10", "node.shutdown_grace", "expected a duration"),
    ("[auth]\nallow_anonymous = 1", "auth.allow_anonymous", "true, false or \"loopback\""),
    ("mqtt = 5", "mqtt", "expected a table"),
    ("[limits]\nmax_connections = 10\n[mqtt]\nreceive_maximum = true", "mqtt.receive_maximum", "invalid type"),
    ("mqtt = { max_keep_alive = \"60s\" }", "mqtt.max_keep_alive", "expected an integer"),
    // unknown keys
    ("[mqtt]\nmax_packet_sise = 10", "mqtt.max_packet_sise", "unknown key"),
    ("[mqqt]\nbind = []", "mqqt", "unknown key"),
    ("[auth]\nallow_anonymous = true\nchain = [\"password_file\"]", "auth.password_file", "missing"),
    ("[node.extra]\nx = 1", "node.extra", "unknown key"),
    // formats
    ("[node]\nshutdown_grace = \"10x\"", "node.shutdown_grace", "unknown unit"),
    ("[node]\nshutdown_grace = \"10\"", "node.shutdown_grace", "no unit"),
    ("[mqtt]\nconnect_timeout = \"1.5s\"", "mqtt.connect_timeout", "fractions"),
    ("[limits]\nmax_session_expiry = \"forever\"", "limits.max_session_expiry", "neither \"never\" nor a duration"),
    ("[mqtt]\nbind = [\"localhost:1883\"]", "mqtt.bind[0]", "not an \"ip:port\" address"),
    ("[mqtt]\nbind = [\"127.0.0.1:1883\", \"0.0.0.0\"]", "mqtt.bind[1]", "not an \"ip:port\" address"),
    (
        "[mqtt]\nshared_subscription_strategy = \"sticky\"",
        "mqtt.shared_subscription_strategy",
        "unknown value `sticky`, expected one of `round_robin`",
    ),
    ("[limits]\noverflow_policy = \"drop_old\"", "limits.overflow_policy", "unknown value `drop_old`"),
    ("[log]\nlevel = \"loud\"", "log.level", "not a log level"),
    ("[log]\nlevel = \"roost=loud\"", "log.level", "not a valid filter directive"),
    ("[node]\nname = \"\"", "node.name", "must not be empty"),
    ("[node]\nname = \"a/b\"", "node.name", "'/'"),
];

#[test]
fn bad_values_name_their_key() {
    for (text, key, words) in BAD {
        let error = error_of(text);
        assert_eq!(error.key(), Some(*key), "{text:?}: {error}");
        let shown = error.to_string();
        assert!(shown.starts_with(&format!("{key}: ")), "{text:?}: {shown}");
        assert!(shown.contains(words), "{text:?}: {shown:?} lacks {words:?}");
        assert!(!shown.contains('\n'), "{text:?}: one line please: {shown:?}");
    }
}

#[test]
fn the_first_example_reads_exactly() {
    assert_eq!(
        error_of("[mqtt]\nmax_packet_size = 0").to_string(),
        "mqtt.max_packet_size: 0 is out of range (16..=268435455)"
    );
}

#[test]
fn syntax_errors_give_line_and_column() {
    let error = error_of("[mqtt]\nmax_packet_size = \n");
    assert!(matches!(error, ConfigError::Syntax { position: Some((2, _)), .. }), "{error:?}");
    assert!(error.to_string().starts_with("TOML syntax error at line 2, column "), "{error}");

    let error = error_of("[mqtt\n");
    assert!(matches!(error, ConfigError::Syntax { position: Some((1, _)), .. }), "{error:?}");

    let error = error_of("[mqtt]\nbind = []\nbind = []\n");
    assert!(matches!(error, ConfigError::Syntax { position: Some((3, _)), .. }), "{error:?}");
}

#[test]
fn missing_file_is_a_read_error() {
    let path = std::path::Path::new("/nonexistent/roost.toml");
    let error = load(Some(path)).expect_err("no such file");
    assert!(matches!(error, ConfigError::Read { .. }), "{error:?}");
    assert!(error.to_string().starts_with("/nonexistent/roost.toml: "), "{error}");
}

#[test]
fn codec_listeners_parse_with_defaults() {
    let s = parse(
        r#"
        [auth]
        allow_anonymous = true
        [[codec]]
        codec = "line"
        bind = "127.0.0.1:5801"
        [[codec]]
        name = "sensors"
        codec = "tlv-sensor"
        transport = "udp"
        bind = "[::]:5800"
        mountpoint = "site/${clientid}/"
        options = { topic_prefix = "s", keep_alive = 30 }
        limits = { max_connections = 5, max_frame_size = 512, idle_timeout = "1m" }
    "#,
    )
    .expect("valid codec listeners");
    let [line, sensors] = &s.codecs[..] else { panic!("{:?}", s.codecs) };
    assert_eq!(line.name, "line", "name defaults to the codec");
    assert_eq!(line.transport, roost_codec::Transport::Tcp);
    assert_eq!(line.limits, roost_codec::CodecLimits::default());
    assert!(line.options.is_empty());
    assert_eq!(sensors.name, "sensors");
    assert_eq!(sensors.transport, roost_codec::Transport::Udp);
    assert_eq!(sensors.bind, "[::]:5800".parse::<SocketAddr>().expect("v6"));
    assert_eq!(sensors.mountpoint, "site/${clientid}/");
    assert_eq!(sensors.options.0.get("keep_alive"), Some(&toml::Value::Integer(30)));
    assert_eq!(sensors.limits.max_connections, 5);
    assert_eq!(sensors.limits.max_frame_size, 512);
    assert_eq!(sensors.limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(sensors.limits.connect_timeout, Duration::from_secs(10));
}

#[test]
fn bad_codec_listeners_name_their_key() {
    for (text, key) in [
        ("[[codec]]\nbind = \"127.0.0.1:1\"", "codec[0].codec"),
        ("[[codec]]\ncodec = \"line\"", "codec[0].bind"),
        ("[[codec]]\ncodec = \"line\"\nbind = \"localhost:1\"", "codec[0].bind"),
        ("[[codec]]\ncodec = \"line\"\nbind = \"127.0.0.1:1\"\ntransport = \"sctp\"", "codec[0].transport"),
        ("[[codec]]\ncodec = \"line\"\nbind = \"127.0.0.1:1\"\nmountpoint = \"a/#\"", "codec[0].mountpoint"),
        ("[[codec]]\ncodec = \"line\"\nbind = \"127.0.0.1:1\"\nport = 1", "codec[0].port"),
        (
            "[[codec]]\ncodec = \"line\"\nbind = \"127.0.0.1:1\"\nlimits.max_connections = 0",
            "codec[0].limits.max_connections",
        ),
        (
            "[[codec]]\ncodec = \"line\"\nbind = \"127.0.0.1:1\"\nlimits.idle_timeout = \"0s\"",
            "codec[0].limits.idle_timeout",
        ),
        (
            "[[codec]]\ncodec = \"x\"\nbind = \"127.0.0.1:1\"\ntransport = \"udp\"\nlimits.max_frame_size = 70000",
            "codec[0].limits.max_frame_size",
        ),
        (
            "[[codec]]\ncodec = \"x\"\nbind = \"127.0.0.1:1\"\n[[codec]]\ncodec = \"x\"\nbind = \"127.0.0.1:2\"",
            "codec[1].name",
        ),
        ("[[codec]]\ncodec = \"x\"\nbind = \"127.0.0.1:1\"\noptions = 3", "codec[0].options"),
    ] {
        let error = error_of(text);
        assert_eq!(error.key(), Some(key), "{text:?}: {error}");
    }
}

#[test]
fn mqttsn_keys_map_to_their_settings() {
    let text = r#"
        [auth]
        allow_anonymous = true
        [mqttsn]
        bind = ["0.0.0.0:1884", "[::]:1884"]
        recv_buffer = 0
        gateway_id = 7
        advertise_interval = "15m"
        advertise_address = "192.168.1.255:1884"
        mountpoint = "sn/"
        max_clients = 3
        max_topics_per_client = 4
        max_sleep_buffer = 5
        retry_interval = "2s"
        max_retries = 6
        max_inflight = 8
        allow_qos_minus_one = false
        subs_resume = true
        [[mqttsn.predefined]]
        id = 1
        topic = "a/b"
        [[mqttsn.predefined]]
        id = 2
        topic = "c"
    "#;
    let s = parse(text).expect("valid config").mqttsn;
    assert_eq!(s.bind.len(), 2);
    assert_eq!((s.gateway_id, s.recv_buffer), (7, 0));
    assert_eq!(s.advertise_interval, Some(Duration::from_secs(900)));
    assert_eq!(s.advertise_address, "192.168.1.255:1884".parse::<SocketAddr>().expect("addr"));
    assert_eq!(s.mountpoint, "sn/");
    assert_eq!((s.max_clients, s.max_topics_per_client, s.max_sleep_buffer), (3, 4, 5));
    assert_eq!((s.retry_interval, s.max_retries, s.max_inflight), (Duration::from_secs(2), 6, 8));
    assert!(!s.allow_qos_minus_one && s.subs_resume);
    assert_eq!(s.predefined, vec![(1, "a/b".to_string()), (2, "c".to_string())]);
    assert!(Settings::default().mqttsn.bind.iter().all(|a| a.ip().is_loopback()));
}

#[test]
fn bad_mqttsn_values_name_their_key() {
    let bad = [
        ("[mqttsn]\nbind = [\"x\"]", "mqttsn.bind[0]"),
        ("[mqttsn]\ngateway_id = 256", "mqttsn.gateway_id"),
        ("[mqttsn]\nrecv_buffer = -1", "mqttsn.recv_buffer"),
        ("[mqttsn]\nadvertise_interval = \"1d\"", "mqttsn.advertise_interval"),
        ("[mqttsn]\nadvertise_address = \"bcast\"", "mqttsn.advertise_address"),
        ("[mqttsn]\nmountpoint = \"a/#\"", "mqttsn.mountpoint"),
        ("[mqttsn]\nmax_clients = 0", "mqttsn.max_clients"),
        ("[mqttsn]\nmax_topics_per_client = 65535", "mqttsn.max_topics_per_client"),
        ("[mqttsn]\nmax_sleep_buffer = -1", "mqttsn.max_sleep_buffer"),
        ("[mqttsn]\nretry_interval = \"0s\"", "mqttsn.retry_interval"),
        ("[mqttsn]\nmax_retries = 101", "mqttsn.max_retries"),
        ("[mqttsn]\nmax_inflight = 0", "mqttsn.max_inflight"),
        ("[mqttsn]\nsubs_resume = 1", "mqttsn.subs_resume"),
        ("[[mqttsn.predefined]]\nid = 0\ntopic = \"a\"", "mqttsn.predefined[0].id"),
        ("[[mqttsn.predefined]]\nid = 1\ntopic = \"a/+\"", "mqttsn.predefined[0].topic"),
        (
            "[[mqttsn.predefined]]\nid = 1\ntopic = \"a\"\n[[mqttsn.predefined]]\nid = 1\ntopic = \"b\"",
            "mqttsn.predefined[1].id",
        ),
        (
            "[[mqttsn.predefined]]\nid = 1\ntopic = \"a\"\n[[mqttsn.predefined]]\nid = 2\ntopic = \"a\"",
            "mqttsn.predefined[1].topic",
        ),
    ];
    for (text, key) in bad {
        let error = error_of(text);
        assert_eq!(error.key(), Some(key), "{text:?}: {error}");
    }
}

#[test]
fn bridges_parse_and_bad_values_name_their_key() {
    let s = parse(
        r#"
        [[bridge]]
        name = "cloud"
        address = "127.0.0.1:1883"
        version = "3.1.1"
        [[bridge.topic]]
        pattern = "sensors/#"
        remote_prefix = "edge/"
        [bridge.tls]
        ca_file = "/etc/ca.pem"
    "#,
    )
    .expect("valid bridge");
    let b = &s.bridges[0];
    assert_eq!((b.name.as_str(), b.client_id.as_str(), b.max_queued), ("cloud", "roost-bridge-cloud", 100_000));
    assert_eq!(b.topics[0].direction, roost_bridge::Direction::Out);
    assert!(b.tls.is_some());
    let base = "[[bridge]]\nname = \"b\"\naddress = \"h:1\"\n[[bridge.topic]]\npattern = \"a/#\"\n";
    for (text, key) in [
        ("[[bridge]]\naddress = \"h:1\"\n[[bridge.topic]]\npattern = \"a\"\n", "bridge[0].name"),
        ("[[bridge]]\nname = \"b\"\naddress = \"nope\"\n[[bridge.topic]]\npattern = \"a\"\n", "bridge[0].address"),
        ("[[bridge]]\nname = \"b\"\naddress = \"h:1\"\n", "bridge[0].topic"),
        (&format!("{base}direction = \"sideways\"\n"), "bridge[0].topic[0].direction"),
        (&format!("{base}qos = 3\n"), "bridge[0].topic[0].qos"),
        (
            "[[bridge]]\nname = \"b\"\naddress = \"h:1\"\nversion = \"4.0\"\n[[bridge.topic]]\npattern = \"a\"\n",
            "bridge[0].version",
        ),
        (
            "[[bridge]]\nname = \"b\"\naddress = \"h:1\"\n[[bridge.topic]]\npattern = \"a/#/b\"\n",
            "bridge[0].topic[0].pattern",
        ),
    ] {
        let error = error_of(text);
        assert_eq!(error.key(), Some(key), "{text:?}: {error}");
    }
}

#[test]
fn anonymous_access_beyond_loopback_must_be_explicit() {
    for open in ["[mqtt]\nbind = [\"0.0.0.0:1883\"]", "[mqttsn]\nbind = [\"[::]:1884\"]"] {
        let error = error_of(open);
        assert_eq!(error.key(), Some("auth.allow_anonymous"), "{open}: {error}");
        assert!(error.to_string().contains("loopback"), "{error}");
        for explicit in ["true", "false"] {
            let s = parse(&format!("{open}\n[auth]\nallow_anonymous = {explicit}")).expect("explicit choice accepted");
            assert_eq!(s.broker.allow_anonymous, explicit == "true");
        }
    }
    assert!(parse("[mqtt]\nbind = [\"127.0.0.1:1883\", \"[::1]:1883\"]").expect("loopback").broker.allow_anonymous);
    assert_eq!(error_of("[auth]\nallow_anonymous = \"sometimes\"").key(), Some("auth.allow_anonymous"));
}

/// `config/edge.toml`, the production example: every device listener beyond loopback,
/// anonymous access off, TLS on 8883, and `$SYS` for the admin user only.
#[test]
fn edge_example_is_locked_down() {
    use roost_core::ClientInfo;
    use roost_core::auth::{Action, Authorizer};
    use roost_core::types::{ClientId, Protocol};
    let s = parse(include_str!("../../../../config/edge.toml")).expect("edge.toml is valid");
    let binds =
        s.mqtt.bind.iter().chain(&s.mqtt.tls_bind).chain(&s.mqtt.ws_bind).chain(&s.mqtt.wss_bind).chain(&s.mqttsn.bind);
    assert!(binds.clone().all(|a| a.ip().is_unspecified()), "{:?}", binds.collect::<Vec<_>>());
    assert!(!s.broker.allow_anonymous);
    assert_eq!(s.mqtt.tls_bind, vec!["0.0.0.0:8883".parse::<SocketAddr>().expect("address")]);
    assert!(s.mqtt.tls.is_some());
    assert!(!s.auth.chain.is_empty());
    let acl = s.acl.expect("edge.toml has ACL rules");
    let who = |user: &str, id: &str| ClientInfo {
        client_id: ClientId::from(id),
        protocol: Protocol::Mqtt,
        protocol_detail: None,
        peer: Some(SocketAddr::from(([192, 0, 2, 7], 40000))),
        username: Some(user.to_string()),
        grants: None,
    };
    assert!(acl.check(&who("admin", "ops"), Action::Subscribe, "$SYS/#"));
    assert!(!acl.check(&who("sensor-17", "s17"), Action::Subscribe, "$SYS/#"));
    assert!(!acl.check(&who("sensor-17", "s17"), Action::Subscribe, "$SYS/brokers/+/clients/+/connected"));
    assert!(acl.check(&who("sensor-17", "s17"), Action::Publish, "devices/s17/temp"));
    assert!(!acl.check(&who("sensor-17", "s17"), Action::Publish, "devices/s18/temp"));
    assert!(acl.check(&who("sensor-17", "s17"), Action::Subscribe, "devices/s17/cmd/#"));
}

/// `[acl] file`: more rules in the same form, after the inline ones; a bad rule there names
/// the file.
#[test]
fn acl_file_rules_follow_the_inline_ones() {
    use roost_core::auth::Permission;
    let dir = std::env::temp_dir().join(format!("roost-acl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("acl.toml");
    std::fs::write(&file, "[[rule]]\npermission = \"deny\"\nip = \"10.0.0.0/8\"\ntopics = [\"#\"]\n").expect("write");
    let text = format!(
        "[acl]\nno_match = \"deny\"\nfile = {:?}\n[[acl.rule]]\npermission = \"allow\"\nuser = \"admin\"\ntopics = [\"#\"]\n",
        file.display()
    );
    let acl = parse(&text).expect("valid").acl.expect("rules");
    assert_eq!(acl.rules.len(), 2);
    assert_eq!(acl.rules[0].permission, Permission::Allow);
    assert_eq!(acl.rules[1].permission, Permission::Deny);
    assert_eq!(acl.no_match, Permission::Deny);
    std::fs::write(&file, "[[rule]]\npermission = \"maybe\"\ntopics = [\"#\"]\n").expect("write");
    let e = parse(&text).expect_err("bad rule");
    assert!(e.to_string().contains("acl.toml"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bootstrap_psks_are_accepted_by_the_dtls_listeners() {
    let text = "[lwm2m]\ndtls_bind = [\"127.0.0.1:0\"]\n[lwm2m.bootstrap]\nenable = true\nserver_uri = \"coaps://127.0.0.1:5784\"\n\
        psk_identity = \"shared\"\npsk_key = \"shared-key\"\nonly_listed = true\n\
        [[lwm2m.bootstrap.device]]\nendpoint = \"meter-1\"\npsk_identity = \"id-1\"\npsk_key = \"key-1\"\n";
    let s = parse(text).expect("bootstrap devices parse");
    let b = s.lwm2m.bootstrap.as_ref().expect("bootstrap enabled");
    assert!(b.only_listed);
    assert_eq!(b.devices.len(), 1);
    let psk: Vec<(&str, &[u8], &str)> =
        s.coap.dtls.psk.iter().map(|p| (p.identity.as_str(), p.key.as_slice(), p.username.as_str())).collect();
    assert_eq!(psk, [("shared", &b"shared-key"[..], "shared"), ("id-1", &b"key-1"[..], "meter-1")]);

    let device = |ep: &str, id: &str, key: &str| {
        format!("[[lwm2m.bootstrap.device]]\nendpoint = \"{ep}\"\npsk_identity = \"{id}\"\npsk_key = \"{key}\"\n")
    };
    let enabled = "[lwm2m.bootstrap]\nenable = true\n";
    for (text, key) in [
        (format!("{enabled}{}{}", device("a", "x", "k"), device("a", "y", "k")), "lwm2m.bootstrap.device[1].endpoint"),
        (
            format!("{enabled}{}{}", device("a", "x", "k"), device("b", "x", "k")),
            "lwm2m.bootstrap.device[1].psk_identity",
        ),
        (format!("{enabled}{}", device("a", "x", "")), "lwm2m.bootstrap.device[0].psk_key"),
        // The same identity in [[coap.psk]] with another key.
        (
            format!("[[coap.psk]]\nidentity = \"x\"\nkey = \"other\"\n{enabled}{}", device("a", "x", "k")),
            "lwm2m.bootstrap.device[0].psk_identity",
        ),
    ] {
        assert_eq!(error_of(&text).key(), Some(key), "{text}");
    }
}

#[test]
fn lwm2m_block_size_is_a_power_of_two_from_16_to_1024() {
    assert_eq!(parse("[lwm2m]\nblock_size = 256\n").expect("256 is a block size").lwm2m.block_size, 256);
    for bad in ["100", "2048", "8"] {
        let e = error_of(&format!("[lwm2m]\nblock_size = {bad}\n"));
        assert!(e.to_string().contains("lwm2m.block_size"), "{e}");
    }
}

#[test]
fn rules_are_read_and_checked() {
    let ok = "[[rule]]\nid = \"hot\"\nsql = 'SELECT payload.t AS t FROM \"s/#\" WHERE payload.t > 30'\n\
              [[rule.action]]\ntype = \"sqlite\"\npath = \"x.db\"\nsql = \"INSERT INTO t VALUES (${t})\"\nqueue = 5\n";
    let s = parse(ok).expect("valid rule");
    assert_eq!((s.rules.len(), s.rules[0].actions.len(), s.rules[0].actions[0].queue), (1, 1, 5));
    let e = error_of("[[rule]]\nid = \"r\"\nsql = 'SELECT a FORM \"t\"'\n");
    assert_eq!(e.key(), Some("rule[0].sql"));
    assert!(e.to_string().contains("line 1, column 10: expected FROM"), "{e}");
    let e = error_of(
        "[[rule]]\nid = \"r\"\nsql = 'SELECT a FROM \"t\"'\n[[rule.action]]\ntype = \"republish\"\ntopic = \"x\"\nqos = 3\n",
    );
    assert_eq!(e.key(), Some("rule[0].action[0].qos"), "{e}");
    let e = error_of(
        "[[rule]]\nid = \"r\"\nsql = 'SELECT a FROM \"t\"'\n[[rule]]\nid = \"r\"\nsql = 'SELECT a FROM \"t\"'\n",
    );
    assert_eq!(e.key(), Some("rule[1].id"));
}
