//! The end-to-end tests, one test binary: each module was its own binary once, and each linked
//! the whole gateway (36 x ~240 MB of debug build). Filter by module with nextest, e.g.
//! `cargo nextest run -p roost-e2e -E 'test(/^coap_dtls::/)'`.
#![allow(clippy::expect_used, clippy::panic)] // test support: a failed expectation is the test failing
#![allow(clippy::unwrap_used)]

mod codec_support;
#[path = "../../gateway/plugins/tests/support/mod.rs"]
mod plugin_guests;

mod adapter;
mod api;
mod auth_db;
mod auth_db_support;
mod bridge;
mod cli_clients;
mod cluster;
mod cluster_failover;
mod cluster_protocols;
mod coap;
mod coap_api;
mod coap_dtls;
mod codec_faults;
mod codec_limits;
mod codec_line;
mod codec_sensor;
mod crash;
mod dashboard;
mod jwt_support;
mod limits;
mod log_flood;
mod log_flood_support;
mod lorawan;
mod lwm2m;
mod malformed;
mod metrics;
mod mqttsn;
mod mqttsn_thirdparty;
mod peer_lwm2m_client;
mod plugins_js;
mod plugins_reload;
mod plugins_wasm;
mod proxy_protocol;
mod pubsub;
mod qos;
mod reload;
mod reload_live;
mod retained;
mod rules;
mod rules_sinks;
mod schemathesis;
mod security_auth;
mod security_http_auth;
mod security_jwt;
mod security_limits;
mod security_tls;
mod session;
mod shared;
mod shutdown;
mod sys;
mod sys_admin;
mod trace;
mod v5_features;
mod web;
mod webhook;
mod will;
