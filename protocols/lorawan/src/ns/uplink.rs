//! Data uplinks (LoRaWAN 1.0.4 §4): device by DevAddr and MIC, 32-bit frame counter with
//! replay and gap checks, FRMPayload decryption, FOpts MAC commands (§5: LinkCheckReq,
//! DeviceTimeReq, LinkADRAns, DevStatusAns), `event/up`, and the class A answer in RX1/RX2
//! (ACK of a confirmed uplink, MAC answers, the next queued application payload).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::{Device, NetworkServer, Output, Transmit, TxTag, TxWindow, bump, events, full_fcnt};
use crate::phy::{self, DataFrame, Downlink, MacCommand, UplinkMac};
use crate::region::{RECEIVE_DELAY1, Region, mhz_to_hz};
use crate::semtech::{GatewayEui, Rxpk};
use crate::settings::{PayloadCodec, Scripts};
use crate::types::DevEui;

/// GPS epoch (1980-01-06) in Unix seconds, and GPS − UTC leap seconds (since 2017).
const GPS_EPOCH_UNIX: u64 = 315_964_800;
const GPS_LEAP_SECONDS: u64 = 18;

fn gps_time(wall: SystemTime) -> Duration {
    let unix = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    (unix + Duration::from_secs(GPS_LEAP_SECONDS)).saturating_sub(Duration::from_secs(GPS_EPOCH_UNIX))
}

/// Finds the device that sent `f`: the one of its DevAddr whose NwkSKey verifies the MIC with
/// the reconstructed counter. `Err(true)` when a device verifies it only with an old counter
/// (a replay), `Err(false)` when none does.
fn identify(ns: &NetworkServer, bytes: &[u8], f: &DataFrame<'_>) -> Result<(DevEui, u32), bool> {
    let Some(candidates) = ns.by_addr.get(&f.dev_addr) else { return Err(false) };
    let mut replay = false;
    for eui in candidates {
        let Some(s) = ns.devices.get(eui).and_then(|d| d.state.session.as_ref()) else { continue };
        let full = full_fcnt(s.fcnt_up, f.fcnt16);
        if phy::data_mic_ok(bytes, &s.nwk_s_key, full) {
            return Ok((*eui, full));
        }
        // Below the last counter within the same 64k epoch: an old frame played again?
        if let Some(last) = s.fcnt_up {
            let old = (last & 0xffff_0000) | u32::from(f.fcnt16);
            if old < last && phy::data_mic_ok(bytes, &s.nwk_s_key, old) {
                replay = true;
            }
        }
    }
    Err(replay)
}

impl NetworkServer {
    pub(super) fn data_uplink(
        &mut self,
        wall: SystemTime,
        bytes: &[u8],
        f: &DataFrame<'_>,
        rx: &[(GatewayEui, Rxpk)],
        out: &mut Vec<Output>,
    ) {
        let Some((dev_eui, fcnt)) = self.accept(wall, bytes, f, rx, out) else { return };
        let region = self.settings.region;
        let Some(dev) = self.devices.get_mut(&dev_eui) else { return };
        let Some(session) = dev.state.session.clone() else { return };
        let Some((_, best)) = rx.first() else { return };

        // An ACK answers the confirmed downlink we sent last; no ACK means it was lost.
        if let Some((item, fcnt_down)) = dev.awaiting_ack.take() {
            let body = json!({
                "deduplicationId": events::uuid(),
                "time": events::rfc3339(wall),
                "deviceInfo": events::device_info(&dev.settings),
                "queueItemId": item.id,
                "acknowledged": f.ack(),
                "fCntDown": fcnt_down,
            });
            out.push(Output::Publish {
                dev_eui,
                topic: events::event_topic(&dev.settings, "ack"),
                payload: body.to_string().into_bytes(),
            });
        }

        // MAC commands: FOpts, or the FRMPayload on FPort 0.
        let frm = phy::decrypt_frm_payload(bytes, &session.nwk_s_key, &session.app_s_key, fcnt);
        let mac = if f.fport == Some(0) { phy::parse_uplink_mac(&frm) } else { phy::parse_uplink_mac(f.fopts) };
        let answers = mac_answers(dev, dev_eui, &mac, best, rx.len(), wall, out);
        let mut body = up_event(dev, f, fcnt, &frm, rx, wall, region);
        script_object(&mut body, &self.settings.scripts, dev, f, &frm);
        let payload = body.to_string().into_bytes();
        out.push(Output::Publish { dev_eui, topic: events::event_topic(&dev.settings, "up"), payload });

        let wants_answer = f.confirmed() || !answers.is_empty() || !dev.queue.is_empty() || f.adr_ack_req();
        if wants_answer {
            self.class_a_answer(dev_eui, f, rx, &answers, out);
        }
        self.persist(dev_eui, out);
    }

    /// Identifies the sender and checks its frame counter (replay, gap); on success records
    /// the counter and returns the device and the full 32-bit counter.
    fn accept(
        &mut self,
        wall: SystemTime,
        bytes: &[u8],
        f: &DataFrame<'_>,
        rx: &[(GatewayEui, Rxpk)],
        out: &mut Vec<Output>,
    ) -> Option<(DevEui, u32)> {
        let (dev_eui, fcnt) = match identify(self, bytes, f) {
            Ok(found) => found,
            Err(true) => {
                bump(&self.counters.replays);
                roost_core::peer_log!(INFO, "lorawan.uplink_replay", roost_core::peerlog::Source::Others, dev_addr = %f.dev_addr, fcnt = f.fcnt16, "uplink replayed (old frame counter): dropped");
                return None;
            }
            Err(false) => {
                if self.by_addr.contains_key(&f.dev_addr) {
                    bump(&self.counters.mic_failures);
                    roost_core::peer_log!(INFO, "lorawan.uplink_mic", roost_core::peerlog::Source::Others, dev_addr = %f.dev_addr, "uplink MIC invalid: dropped");
                } else {
                    bump(&self.counters.unknown_devices);
                    tracing::debug!(dev_addr = %f.dev_addr, "uplink from an unknown DevAddr dropped");
                }
                return None;
            }
        };
        self.trace(
            dev_eui,
            format_args!(
                "{:?} dev_addr={} fcnt={fcnt} fport={:?} adr={} ack={} fopts={}B frm_payload={}B",
                f.mtype,
                f.dev_addr,
                f.fport,
                f.adr(),
                f.ack(),
                f.fopts.len(),
                f.frm_payload.len()
            ),
            rx,
            out,
        );
        let max_gap = self.settings.max_fcnt_gap;
        let dev = self.devices.get_mut(&dev_eui)?;
        let session = dev.state.session.as_mut()?;
        if let Some(last) = session.fcnt_up {
            if fcnt == last {
                bump(&self.counters.replays);
                roost_core::peer_log!(INFO, "lorawan.uplink_replay", roost_core::peerlog::Source::Others, %dev_eui, fcnt, "uplink replayed (frame counter not increased): dropped");
                return None;
            }
            if fcnt - last > max_gap {
                bump(&self.counters.fcnt_gaps);
                roost_core::peer_log!(INFO, "lorawan.uplink_fcnt_gap", roost_core::peerlog::Source::Others, %dev_eui, fcnt, last, "uplink frame counter jumped past lorawan.network_server.max_fcnt_gap: dropped");
                return None;
            }
        }
        session.fcnt_up = Some(fcnt);
        dev.last_seen = Some(wall);
        bump(&self.counters.uplinks);
        Some((dev_eui, fcnt))
    }

    /// The class A answer in RX1/RX2: the ACK of a confirmed uplink, the MAC answers and the
    /// next queued application payload if it fits one of the windows.
    fn class_a_answer(
        &mut self,
        dev_eui: DevEui,
        f: &DataFrame<'_>,
        rx: &[(GatewayEui, Rxpk)],
        answers: &[MacCommand],
        out: &mut Vec<Output>,
    ) {
        let region = self.settings.region;
        let Some((_, best)) = rx.first() else { return };
        let Some(up_dr) = region.uplink_dr(&best.datr).map(|d| d.dr) else {
            tracing::info!(%dev_eui, datr = ?best.datr, "uplink data rate unknown in {}: no downlink", region.as_str());
            return;
        };
        let Some(dev) = self.devices.get_mut(&dev_eui) else { return };
        let Some(session) = dev.state.session.clone() else { return };
        let fits = |dr: u8, len: usize| region.dr(dr).is_some_and(|d| len <= usize::from(d.max_payload));
        let app_len = dev.queue.front().map_or(0, |i| i.data.len());
        // The queued payload goes if it fits RX1 or RX2; otherwise it waits (a faster data
        // rate later may fit it) and only the ACK/MAC answers go now.
        let rx1_dr = region.rx1_dr(up_dr, session.rx1_dr_offset);
        let send_item = !dev.queue.is_empty() && (fits(rx1_dr, app_len) || fits(session.rx2_dr, app_len));
        let len = if send_item { app_len } else { 0 };
        let mut windows = Vec::new();
        let rx1_delay = RECEIVE_DELAY1 * u32::from(session.rx1_delay.max(1));
        if fits(rx1_dr, len)
            && let Some(datr) = region.datr(rx1_dr)
        {
            let freq_hz = region.rx1_freq_hz(mhz_to_hz(best.freq));
            windows.push(TxWindow { delay: rx1_delay, freq_hz, datr, power: region.tx_power });
        }
        if fits(session.rx2_dr, len)
            && let Some(datr) = region.datr(session.rx2_dr)
        {
            let delay = rx1_delay + Duration::from_secs(1);
            windows.push(TxWindow { delay, freq_hz: session.rx2_freq_hz, datr, power: region.tx_power });
        }
        let item = if send_item { dev.queue.pop_front() } else { None };
        let Some(s) = dev.state.session.as_mut() else { return };
        let fcnt_down = s.fcnt_down;
        s.fcnt_down = s.fcnt_down.wrapping_add(1);
        let downlink = Downlink {
            dev_addr: s.dev_addr,
            confirmed: item.as_ref().is_some_and(|i| i.confirmed),
            ack: f.confirmed(),
            fpending: !dev.queue.is_empty(),
            adr: false,
            fcnt: fcnt_down,
            mac: answers,
            data: item.as_ref().map(|i| (i.fport, i.data.as_slice())),
        };
        let phy_bytes = match phy::build_downlink(&downlink, &s.nwk_s_key, &s.app_s_key) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%dev_eui, "downlink not built: {e}");
                return;
            }
        };
        out.push(Output::Transmit(Transmit {
            candidates: rx.iter().map(|(g, r)| (*g, r.tmst)).collect(),
            phy: phy_bytes,
            windows,
            tag: TxTag { dev_eui, downlink_id: rand::random(), fcnt_down: Some(fcnt_down), queue_item: item },
        }));
    }
}

/// Answers the MAC commands that need one (LinkCheckReq, DeviceTimeReq) and publishes
/// `event/status` for a DevStatusAns.
fn mac_answers(
    dev: &Device,
    dev_eui: DevEui,
    mac: &[UplinkMac],
    best: &Rxpk,
    gateways: usize,
    wall: SystemTime,
    out: &mut Vec<Output>,
) -> Vec<MacCommand> {
    let (sf, _) = best.datr.sf_bw().unwrap_or((0, 0));
    let mut answers: Vec<MacCommand> = Vec::new();
    for cmd in mac {
        match *cmd {
            UplinkMac::LinkCheckReq => {
                let margin = best.best_snr() - Region::required_snr(sf);
                answers.push(phy::link_check_ans(margin.clamp(0.0, 254.0) as u8, gateways.min(255) as u8));
            }
            UplinkMac::DeviceTimeReq => answers.push(phy::device_time_ans(gps_time(wall))),
            UplinkMac::LinkAdrAns { status } => {
                tracing::debug!(%dev_eui, status, "LinkADRAns");
            }
            UplinkMac::DevStatusAns { battery, margin } => {
                let body = json!({
                    "deduplicationId": events::uuid(),
                    "time": events::rfc3339(wall),
                    "deviceInfo": events::device_info(&dev.settings),
                    "margin": margin,
                    "externalPowerSource": battery == 0,
                    "batteryLevelUnavailable": battery == 255,
                    "batteryLevel": if battery == 0 || battery == 255 { 0.0 } else { f64::from(battery) * 100.0 / 254.0 },
                });
                out.push(Output::Publish {
                    dev_eui,
                    topic: events::event_topic(&dev.settings, "status"),
                    payload: body.to_string().into_bytes(),
                });
            }
            _ => {}
        }
    }
    answers
}

/// The ChirpStack-style `event/up` body.
fn up_event(
    dev: &Device,
    f: &DataFrame<'_>,
    fcnt: u32,
    frm: &[u8],
    rx: &[(GatewayEui, Rxpk)],
    wall: SystemTime,
    region: Region,
) -> serde_json::Value {
    let best = rx.first().map(|(_, r)| r);
    let (sf, bw) = best.and_then(|b| b.datr.sf_bw()).unwrap_or((0, 0));
    let up_freq = best.map_or(0, |b| mhz_to_hz(b.freq));
    let mut body = json!({
        "deduplicationId": events::uuid(),
        "time": events::rfc3339(wall),
        "deviceInfo": events::device_info(&dev.settings),
        "devAddr": f.dev_addr.to_string(),
        "adr": f.adr(),
        "fCnt": fcnt,
        "confirmed": f.confirmed(),
        "rxInfo": rx.iter().map(|(g, r)| events::rx_info(*g, r, rand::random(), wall)).collect::<Vec<_>>(),
        "txInfo": events::tx_info(up_freq, sf, bw, best.and_then(|b| b.codr.as_deref())),
    });
    if let Some(dr) = best.and_then(|b| region.uplink_dr(&b.datr)).map(|d| d.dr) {
        body["dr"] = json!(dr);
    }
    if let Some(port) = f.fport.filter(|p| *p != 0) {
        body["fPort"] = json!(port);
        body["data"] = json!(events::b64(frm));
        if let Some(obj) = decode_object(&dev.settings.payload_codec, frm) {
            body["object"] = obj;
        }
    }
    body
}

/// `object`, `errors` and `warnings` of `event/up` from the device's script codec (TS013
/// `decodeUplink`), if it has one and the frame carries application data.
fn script_object(body: &mut serde_json::Value, scripts: &Scripts, dev: &Device, f: &DataFrame<'_>, frm: &[u8]) {
    let (PayloadCodec::Script(name), Some(port)) = (&dev.settings.payload_codec, f.fport.filter(|p| *p != 0)) else {
        return;
    };
    let d = scripts.decode(name, port, frm);
    if let Some(obj) = d.object {
        body["object"] = obj;
    }
    if !d.errors.is_empty() {
        tracing::info!(dev_eui = %dev.settings.dev_eui, codec = %name, errors = ?d.errors, "payload codec: uplink not decoded");
        body["errors"] = json!(d.errors);
    }
    if !d.warnings.is_empty() {
        body["warnings"] = json!(d.warnings);
    }
}

/// `object` of `event/up`, per the device's built-in payload codec.
fn decode_object(codec: &PayloadCodec, data: &[u8]) -> Option<serde_json::Value> {
    match codec {
        PayloadCodec::None | PayloadCodec::Script(_) => None,
        PayloadCodec::Json => serde_json::from_slice(data).ok(),
        PayloadCodec::CayenneLpp => crate::lpp::decode(data),
    }
}
