//! `[lorawan]` and `[[lorawan.device]]`: the packet-forwarder listener, bridge mode and the
//! built-in network server's device registry, as read and as validated.

use std::collections::HashSet;

use roost_lorawan::region::Region;
use roost_lorawan::settings::{
    BridgeSettings, DeviceFields, DeviceSettings, LorawanSettings, Marshaler, Mode, NetworkServerSettings,
};
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::duration::ConfigDuration;
use super::schema::{AddrList, Int};
use super::validate::{at_least, bind_addrs, in_range, invalid, positive};

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct LorawanSection {
    pub bind: AddrList,
    pub recv_buffer: Int,
    pub mode: String,
    pub gateway_timeout: ConfigDuration,
    pub max_gateways: Int,
    pub topic_prefix: String,
    pub marshaler: String,
    pub region: String,
    pub net_id: String,
    pub deduplication_window: ConfigDuration,
    pub max_fcnt_gap: Int,
    pub rx1_dr_offset: Int,
    pub rx1_delay: Int,
    pub max_queue: Int,
    pub max_dev_nonces: Int,
    /// `[[lorawan.device]]`: none by default (and then not written out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device: Vec<DeviceFields>,
}

impl Default for LorawanSection {
    fn default() -> Self {
        let l = LorawanSettings::default();
        let ns = l.network_server;
        LorawanSection {
            bind: AddrList(l.bind.iter().map(ToString::to_string).collect()),
            recv_buffer: Int::from(l.recv_buffer),
            mode: "network_server".into(),
            gateway_timeout: ConfigDuration(l.gateway_timeout),
            max_gateways: Int::from(l.max_gateways),
            topic_prefix: l.bridge.topic_prefix,
            marshaler: "json".into(),
            region: ns.region.as_str().into(),
            net_id: format!("{:06x}", ns.net_id),
            deduplication_window: ConfigDuration(ns.deduplication_window),
            max_fcnt_gap: Int::from(ns.max_fcnt_gap),
            rx1_dr_offset: Int(i64::from(ns.rx1_dr_offset)),
            rx1_delay: Int(i64::from(ns.rx1_delay)),
            max_queue: Int::from(ns.max_queue),
            max_dev_nonces: Int::from(ns.max_dev_nonces),
            device: Vec::new(),
        }
    }
}

fn device(i: usize, d: DeviceFields) -> Result<DeviceSettings, ConfigError> {
    d.validate().map_err(|e| invalid(&format!("lorawan.device[{i}].{}", e.field), e.problem))
}

pub(super) fn lorawan_settings(l: LorawanSection) -> Result<LorawanSettings, ConfigError> {
    let mode = match l.mode.as_str() {
        "network_server" => Mode::NetworkServer,
        "bridge" => Mode::Bridge,
        other => return Err(invalid("lorawan.mode", format!("{other:?} is not \"network_server\" or \"bridge\""))),
    };
    let marshaler = match l.marshaler.as_str() {
        "json" => Marshaler::Json,
        "protobuf" => Marshaler::Protobuf,
        other => return Err(invalid("lorawan.marshaler", format!("{other:?} is not \"json\" or \"protobuf\""))),
    };
    if l.topic_prefix.is_empty() || l.topic_prefix.contains(['+', '#']) {
        return Err(invalid("lorawan.topic_prefix", "must be non-empty without '+' or '#'"));
    }
    let region = Region::parse(&l.region)
        .ok_or_else(|| invalid("lorawan.region", format!("{:?} is not \"EU868\" or \"US915\"", l.region)))?;
    let net_id = parse_net_id(&l.net_id)
        .ok_or_else(|| invalid("lorawan.net_id", format!("{:?} is not a NetID of 6 hex digits", l.net_id)))?;
    let mut devices = Vec::with_capacity(l.device.len());
    let mut seen = HashSet::new();
    for (i, d) in l.device.into_iter().enumerate() {
        let d = device(i, d)?;
        if !seen.insert(d.dev_eui) {
            return Err(invalid(&format!("lorawan.device[{i}].dev_eui"), format!("{} is listed twice", d.dev_eui)));
        }
        devices.push(d);
    }
    Ok(LorawanSettings {
        bind: bind_addrs("lorawan.bind", &l.bind.0)?,
        recv_buffer: in_range("lorawan.recv_buffer", l.recv_buffer, 0, i64::from(i32::MAX))?,
        mode,
        gateway_timeout: positive("lorawan.gateway_timeout", l.gateway_timeout.0)?,
        max_gateways: at_least("lorawan.max_gateways", l.max_gateways, 1)?,
        bridge: BridgeSettings { topic_prefix: l.topic_prefix, marshaler },
        network_server: NetworkServerSettings {
            region,
            net_id,
            deduplication_window: l.deduplication_window.0,
            max_fcnt_gap: in_range("lorawan.max_fcnt_gap", l.max_fcnt_gap, 1, 65_535)?,
            rx1_dr_offset: in_range("lorawan.rx1_dr_offset", l.rx1_dr_offset, 0, i64::from(region.max_rx1_dr_offset))?,
            rx1_delay: in_range("lorawan.rx1_delay", l.rx1_delay, 1, 15)?,
            rx2_dr: region.rx2_dr,
            rx2_freq_hz: region.rx2_freq_hz,
            max_queue: at_least("lorawan.max_queue", l.max_queue, 1)?,
            max_dev_nonces: at_least("lorawan.max_dev_nonces", l.max_dev_nonces, 1)?,
            devices,
            scripts: Default::default(),
        },
    })
}

pub(super) fn parse_net_id(s: &str) -> Option<u32> {
    roost_lorawan::hex::decode_array::<3>(s).map(|b| u32::from_be_bytes([0, b[0], b[1], b[2]]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::parse;
    use super::*;
    use roost_lorawan::settings::{Activation, PayloadCodec};
    use roost_lorawan::types::{DevAddr, JoinEui};

    #[test]
    fn devices_and_modes_parse() {
        let s = parse(
            r#"
            [lorawan]
            bind = ["127.0.0.1:0"]
            mode = "bridge"
            region = "us915"
            net_id = "00001a"
            rx1_dr_offset = 3
            [[lorawan.device]]
            dev_eui = "0101010101010101"
            application_id = "app"
            dev_addr = "26011234"
            nwk_s_key = "01010101010101010101010101010101"
            app_s_key = "02020202020202020202020202020202"
            [[lorawan.device]]
            dev_eui = "0202020202020202"
            name = "x"
            application_id = "app"
            join_eui = "70b3d57ed0000001"
            app_key = "03030303030303030303030303030303"
            payload_codec = "cayenne_lpp"
            "#,
        )
        .unwrap();
        let l = s.lorawan;
        assert_eq!(l.mode, Mode::Bridge);
        assert_eq!(l.network_server.region.as_str(), "US915");
        assert_eq!(l.network_server.rx2_freq_hz, 923_300_000);
        assert_eq!(l.network_server.net_id, 0x1a);
        assert_eq!(l.network_server.devices.len(), 2);
        assert_eq!(l.network_server.devices[0].name, "0101010101010101");
        assert!(matches!(
            l.network_server.devices[0].activation,
            Activation::Abp { dev_addr: DevAddr(0x2601_1234), .. }
        ));
        assert!(matches!(
            l.network_server.devices[1].activation,
            Activation::Otaa { join_eui: Some(JoinEui(0x70b3_d57e_d000_0001)), .. }
        ));
        assert_eq!(l.network_server.devices[1].payload_codec, PayloadCodec::CayenneLpp);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[lorawan]\nmode = \"x\"", "lorawan.mode"),
            ("[lorawan]\nregion = \"AS923\"", "lorawan.region"),
            ("[lorawan]\nnet_id = \"1\"", "lorawan.net_id"),
            ("[lorawan]\nrx1_dr_offset = 6", "lorawan.rx1_dr_offset"),
            ("[lorawan]\nmarshaler = \"xml\"", "lorawan.marshaler"),
            (
                "[[lorawan.device]]\ndev_eui = \"01\"\napplication_id = \"a\"\napp_key = \"00\"",
                "lorawan.device[0].dev_eui",
            ),
            ("[[lorawan.device]]\ndev_eui = \"0101010101010101\"\napplication_id = \"a\"", "lorawan.device[0].app_key"),
            (
                "[[lorawan.device]]\ndev_eui = \"0101010101010101\"\napplication_id = \"a/b\"\napp_key = \"03030303030303030303030303030303\"",
                "lorawan.device[0].application_id",
            ),
            ("[lorawan]\nbind = [\"0.0.0.0:1700\"]", "auth.allow_anonymous"),
        ];
        for (text, key) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.key(), Some(key), "{text}: {e}");
        }
    }
}
