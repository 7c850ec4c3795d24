//! Over-the-air activation (LoRaWAN 1.0.4 §6.2): JoinRequest MIC, DevNonce replay, DevAddr
//! allocation, session keys, and the JoinAccept in the join receive windows (5 s / 6 s).

use std::time::SystemTime;

use serde_json::json;

use super::{NetworkServer, Output, Session, Transmit, TxTag, TxWindow, bump, events};
use crate::phy::{self, JoinAcceptFields, JoinRequest};
use crate::region::{JOIN_ACCEPT_DELAY1, JOIN_ACCEPT_DELAY2, Region, mhz_to_hz};
use crate::semtech::{GatewayEui, Rxpk};
use crate::settings::Activation;
use crate::types::{AesKey, DevAddr};

impl NetworkServer {
    pub(super) fn join(
        &mut self,
        wall: SystemTime,
        bytes: &[u8],
        jr: JoinRequest,
        rx: &[(GatewayEui, Rxpk)],
        out: &mut Vec<Output>,
    ) {
        let Some(app_key) = self.admit_join(bytes, &jr, rx, out) else { return };
        let Some((_, first)) = rx.first() else { return };
        let region = self.settings.region;
        let Some(up_dr) = region.uplink_dr(&first.datr) else {
            roost_core::peer_log!(INFO, "lorawan.join_data_rate", roost_core::peerlog::Source::Others, dev_eui = %jr.dev_eui, datr = ?first.datr, "JoinRequest at a data rate unknown in {}: dropped", region.as_str());
            return;
        };
        let dev_addr = self.allocate_dev_addr();
        let net_id = self.settings.net_id;
        let rx1_delay = self.settings.rx1_delay;
        let (rx1_dr_offset, rx2_dr, rx2_freq_hz) =
            (self.settings.rx1_dr_offset, self.settings.rx2_dr, self.settings.rx2_freq_hz);
        let max_nonces = self.settings.max_dev_nonces;
        let Some(dev) = self.devices.get_mut(&jr.dev_eui) else { return };
        dev.last_seen = Some(wall);
        dev.state.join_nonce = (dev.state.join_nonce + 1) & 0x00ff_ffff;
        let join_nonce = dev.state.join_nonce;
        dev.state.dev_nonces.push_back(jr.dev_nonce);
        while dev.state.dev_nonces.len() > max_nonces {
            dev.state.dev_nonces.pop_front();
        }
        let (nwk_s_key, app_s_key) = phy::derive_session_keys(&app_key, join_nonce, net_id, jr.dev_nonce);
        let old = dev.state.session.as_ref().map(|s| s.dev_addr);
        dev.state.session = Some(Session {
            dev_addr,
            nwk_s_key,
            app_s_key,
            fcnt_up: None,
            fcnt_down: 0,
            rx1_delay: rx1_delay.max(1),
            rx1_dr_offset,
            rx2_dr,
            rx2_freq_hz,
        });
        // A new session starts with an empty exchange: nothing is awaiting an ACK.
        dev.awaiting_ack = None;
        let accept = phy::join_accept(
            &app_key,
            &JoinAcceptFields {
                join_nonce,
                net_id,
                dev_addr,
                dl_settings: (rx1_dr_offset & 0x07) << 4 | (rx2_dr & 0x0f),
                rx_delay: rx1_delay & 0x0f,
            },
        );
        let device_info = events::device_info(&dev.settings);
        let topic = events::event_topic(&dev.settings, "join");
        self.set_addr(jr.dev_eui, old, dev_addr);
        bump(&self.counters.joins);
        let windows = join_windows(region, up_dr.dr, mhz_to_hz(first.freq));
        out.push(Output::Transmit(Transmit {
            candidates: rx.iter().map(|(g, r)| (*g, r.tmst)).collect(),
            phy: accept,
            windows,
            tag: TxTag { dev_eui: jr.dev_eui, downlink_id: rand::random(), fcnt_down: None, queue_item: None },
        }));
        self.persist(jr.dev_eui, out);
        let body = json!({
            "deduplicationId": events::uuid(),
            "time": events::rfc3339(wall),
            "deviceInfo": device_info,
            "devAddr": dev_addr.to_string(),
        });
        out.push(Output::Publish { dev_eui: jr.dev_eui, topic, payload: body.to_string().into_bytes() });
        tracing::info!(dev_eui = %jr.dev_eui, %dev_addr, "device joined");
    }

    /// Checks a JoinRequest: a registered OTAA device of this JoinEUI, a valid MIC and an
    /// unused DevNonce. Returns the device's AppKey.
    fn admit_join(
        &mut self,
        bytes: &[u8],
        jr: &JoinRequest,
        rx: &[(GatewayEui, Rxpk)],
        out: &mut Vec<Output>,
    ) -> Option<AesKey> {
        if !self.devices.contains_key(&jr.dev_eui) {
            bump(&self.counters.unknown_devices);
            roost_core::peer_log!(INFO, "lorawan.join_unknown_device", roost_core::peerlog::Source::Others, dev_eui = %jr.dev_eui, "JoinRequest from an unregistered device dropped");
            return None;
        }
        self.trace(
            jr.dev_eui,
            format_args!("JoinRequest join_eui={} dev_eui={} dev_nonce={:04x}", jr.join_eui, jr.dev_eui, jr.dev_nonce),
            rx,
            out,
        );
        let dev = self.devices.get(&jr.dev_eui)?;
        let Activation::Otaa { join_eui, app_key } = dev.settings.activation else {
            bump(&self.counters.unknown_devices);
            roost_core::peer_log!(INFO, "lorawan.join_abp_device", roost_core::peerlog::Source::Others, dev_eui = %jr.dev_eui, "JoinRequest from an ABP device dropped");
            return None;
        };
        if join_eui.is_some_and(|e| e != jr.join_eui) {
            bump(&self.counters.unknown_devices);
            roost_core::peer_log!(INFO, "lorawan.join_other_join_eui", roost_core::peerlog::Source::Others, dev_eui = %jr.dev_eui, join_eui = %jr.join_eui, "JoinRequest with another JoinEUI dropped");
            return None;
        }
        if !phy::join_request_mic_ok(bytes, &app_key) {
            bump(&self.counters.mic_failures);
            roost_core::peer_log!(INFO, "lorawan.join_mic", roost_core::peerlog::Source::Others, dev_eui = %jr.dev_eui, "JoinRequest MIC invalid: dropped");
            return None;
        }
        if dev.state.dev_nonces.contains(&jr.dev_nonce) {
            bump(&self.counters.dev_nonce_replays);
            roost_core::peer_log!(INFO, "lorawan.join_dev_nonce_replay", roost_core::peerlog::Source::Others, dev_eui = %jr.dev_eui, dev_nonce = jr.dev_nonce, "JoinRequest DevNonce already used: dropped (replay)");
            return None;
        }
        Some(app_key)
    }

    /// A DevAddr with the NetID's NwkID (type 0 NetIDs: the 7 low bits) that no device uses.
    fn allocate_dev_addr(&self) -> DevAddr {
        let nwk_id = self.settings.net_id & 0x7f;
        loop {
            let a = DevAddr(nwk_id << 25 | (rand::random::<u32>() & 0x01ff_ffff));
            if !self.by_addr.contains_key(&a) {
                return a;
            }
        }
    }
}

/// The join receive windows, in the region's defaults (RX1DROffset 0, default RX2).
fn join_windows(region: Region, up_dr: u8, up_freq: u32) -> Vec<TxWindow> {
    let mut windows = Vec::new();
    if let Some(datr) = region.datr(region.rx1_dr(up_dr, 0)) {
        let freq_hz = region.rx1_freq_hz(up_freq);
        windows.push(TxWindow { delay: JOIN_ACCEPT_DELAY1, freq_hz, datr, power: region.tx_power });
    }
    if let Some(datr) = region.datr(region.rx2_dr) {
        windows.push(TxWindow { delay: JOIN_ACCEPT_DELAY2, freq_hz: region.rx2_freq_hz, datr, power: region.tx_power });
    }
    windows
}
