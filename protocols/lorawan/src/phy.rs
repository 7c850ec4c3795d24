//! Codec layer: LoRaWAN 1.0.x PHYPayloads (LoRaWAN 1.0.4 §4) and their crypto (§4.3.3,
//! §4.4, §6.2). Header fields are read here with explicit bounds checks; MICs, FRMPayload
//! encryption, JoinAccept building and frame building go through the `lorawan` crate (lora-rs)
//! with its default `aes`/`cmac` backend, and key derivation through the same `aes`.

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use lorawan::default_crypto::DefaultFactory;
use lorawan::keys::{AES128, AppSKey, NewSKey};
use lorawan::maccommands::SerializableMacCommand;
use lorawan::parser::{EncryptedDataPayload, JoinRequestPayload};

use crate::types::{AesKey, DevAddr, DevEui, JoinEui};

/// MHDR.MType (§4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MType {
    JoinRequest,
    JoinAccept,
    UnconfirmedUp,
    UnconfirmedDown,
    ConfirmedUp,
    ConfirmedDown,
    RejoinRequest,
    Proprietary,
}

impl MType {
    fn from_mhdr(b: u8) -> MType {
        match b >> 5 {
            0 => MType::JoinRequest,
            1 => MType::JoinAccept,
            2 => MType::UnconfirmedUp,
            3 => MType::UnconfirmedDown,
            4 => MType::ConfirmedUp,
            5 => MType::ConfirmedDown,
            6 => MType::RejoinRequest,
            _ => MType::Proprietary,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhyError {
    #[error("LoRaWAN PHYPayload: {0} bytes is too short")]
    Short(usize),
    #[error("LoRaWAN PHYPayload: {len} bytes is too long (max {max})")]
    TooLong { len: usize, max: usize },
    #[error("LoRaWAN PHYPayload: major version {0} is not LoRaWAN R1")]
    Major(u8),
    #[error("LoRaWAN PHYPayload: {0:?} is not handled here")]
    Unsupported(MType),
    #[error("LoRaWAN JoinRequest: {0} bytes, must be 23")]
    JoinRequestLength(usize),
    #[error("LoRaWAN data frame: FOptsLen {fopts} does not fit {len} bytes")]
    FOpts { fopts: usize, len: usize },
}

/// Longest PHYPayload accepted (the largest LoRa frame).
pub const MAX_PHY: usize = 255;

/// A decoded uplink-relevant frame; byte fields borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    JoinRequest(JoinRequest),
    Data(DataFrame<'a>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinRequest {
    pub join_eui: JoinEui,
    pub dev_eui: DevEui,
    pub dev_nonce: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFrame<'a> {
    pub mtype: MType,
    pub dev_addr: DevAddr,
    /// FCtrl byte (uplink: ADR, ADRACKReq, ACK, ClassB, FOptsLen).
    pub fctrl: u8,
    /// The 16 bits of FCnt on the air.
    pub fcnt16: u16,
    pub fopts: &'a [u8],
    pub fport: Option<u8>,
    /// Still encrypted.
    pub frm_payload: &'a [u8],
    pub mic: [u8; 4],
}

impl DataFrame<'_> {
    pub fn confirmed(&self) -> bool {
        matches!(self.mtype, MType::ConfirmedUp | MType::ConfirmedDown)
    }
    pub fn uplink(&self) -> bool {
        matches!(self.mtype, MType::ConfirmedUp | MType::UnconfirmedUp)
    }
    pub fn adr(&self) -> bool {
        self.fctrl & 0x80 != 0
    }
    pub fn adr_ack_req(&self) -> bool {
        self.fctrl & 0x40 != 0
    }
    pub fn ack(&self) -> bool {
        self.fctrl & 0x20 != 0
    }
}

/// Decodes the header fields of a PHYPayload. The MIC is not checked here (it needs the
/// device's keys and full frame counter).
pub fn decode(b: &[u8]) -> Result<Frame<'_>, PhyError> {
    if b.len() > MAX_PHY {
        return Err(PhyError::TooLong { len: b.len(), max: MAX_PHY });
    }
    let Some(&mhdr) = b.first() else { return Err(PhyError::Short(0)) };
    if mhdr & 0x03 != 0 {
        return Err(PhyError::Major(mhdr & 0x03));
    }
    let mtype = MType::from_mhdr(mhdr);
    match mtype {
        MType::JoinRequest => {
            if b.len() != 23 {
                return Err(PhyError::JoinRequestLength(b.len()));
            }
            let eui = |at: usize| {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[at..at + 8]);
                u64::from_le_bytes(a)
            };
            Ok(Frame::JoinRequest(JoinRequest {
                join_eui: JoinEui(eui(1)),
                dev_eui: DevEui(eui(9)),
                dev_nonce: u16::from_le_bytes([b[17], b[18]]),
            }))
        }
        MType::UnconfirmedUp | MType::ConfirmedUp | MType::UnconfirmedDown | MType::ConfirmedDown => {
            // MHDR(1) FHDR(7 + FOpts) [FPort(1) FRMPayload] MIC(4)
            if b.len() < 12 {
                return Err(PhyError::Short(b.len()));
            }
            let fctrl = b[5];
            let fopts_len = usize::from(fctrl & 0x0f);
            let body_end = b.len() - 4;
            let fopts_end = 8 + fopts_len;
            if fopts_end > body_end {
                return Err(PhyError::FOpts { fopts: fopts_len, len: b.len() });
            }
            let (fport, frm_payload) = if fopts_end < body_end {
                (Some(b[fopts_end]), &b[fopts_end + 1..body_end])
            } else {
                (None, &b[body_end..body_end])
            };
            let mut mic = [0u8; 4];
            mic.copy_from_slice(&b[body_end..]);
            Ok(Frame::Data(DataFrame {
                mtype,
                dev_addr: DevAddr(u32::from_le_bytes([b[1], b[2], b[3], b[4]])),
                fctrl,
                fcnt16: u16::from_le_bytes([b[6], b[7]]),
                fopts: &b[8..fopts_end],
                fport,
                frm_payload,
                mic,
            }))
        }
        other => Err(PhyError::Unsupported(other)),
    }
}

/// Verifies a JoinRequest's MIC with the AppKey (§6.2.5).
pub fn join_request_mic_ok(b: &[u8], app_key: &AesKey) -> bool {
    JoinRequestPayload::new(b).is_ok_and(|jr| jr.validate_mic(&AES128(app_key.0)))
}

/// Verifies a data frame's MIC with the NwkSKey and the full 32-bit frame counter (§4.4).
pub fn data_mic_ok(b: &[u8], nwk_s_key: &AesKey, fcnt: u32) -> bool {
    EncryptedDataPayload::new(b).is_ok_and(|p| p.validate_mic(&AES128(nwk_s_key.0), fcnt))
}

/// Decrypts a data frame's FRMPayload (§4.3.3): with the AppSKey on FPort 1..255, the
/// NwkSKey on FPort 0. Empty when there is none.
pub fn decrypt_frm_payload(b: &[u8], nwk_s_key: &AesKey, app_s_key: &AesKey, fcnt: u32) -> Vec<u8> {
    let Ok(Frame::Data(frame)) = decode(b) else { return Vec::new() };
    if frame.frm_payload.is_empty() {
        return Vec::new();
    }
    let start = b.len() - 4 - frame.frm_payload.len();
    let Ok(p) = EncryptedDataPayload::new(b.to_vec()) else { return Vec::new() };
    match p.decrypt(Some(&AES128(nwk_s_key.0)), Some(&AES128(app_s_key.0)), fcnt) {
        Ok(d) => {
            let d = d.to_inner();
            d.get(start..d.len() - 4).map(<[u8]>::to_vec).unwrap_or_default()
        }
        Err(_) => Vec::new(),
    }
}

/// What a JoinAccept carries (§6.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinAcceptFields {
    /// 24 bits.
    pub join_nonce: u32,
    /// 24 bits.
    pub net_id: u32,
    pub dev_addr: DevAddr,
    /// RX1DRoffset (bits 6..4) | RX2DataRate (bits 3..0).
    pub dl_settings: u8,
    /// RX1 delay in seconds (0 means 1).
    pub rx_delay: u8,
}

/// Builds the JoinAccept PHYPayload (no CFList: the region's default channels): MIC with
/// the AppKey, then encrypted with AES *decrypt* as the specification defines (so the device
/// only needs AES encrypt).
pub fn join_accept(app_key: &AesKey, f: &JoinAcceptFields) -> Vec<u8> {
    let mut plain = Vec::with_capacity(17);
    plain.push(0x20);
    plain.extend_from_slice(&f.join_nonce.to_le_bytes()[..3]);
    plain.extend_from_slice(&f.net_id.to_le_bytes()[..3]);
    plain.extend_from_slice(&f.dev_addr.to_le());
    plain.push(f.dl_settings);
    plain.push(f.rx_delay);
    plain.extend_from_slice(&[0; 4]);
    let Ok(mut creator) = lorawan::creator::JoinAcceptCreator::with_options(plain, DefaultFactory) else {
        return Vec::new();
    };
    match creator.build(&AES128(app_key.0)) {
        Ok(b) => b.to_vec(),
        Err(_) => Vec::new(),
    }
}

/// NwkSKey and AppSKey of a LoRaWAN 1.0 join (§6.2.5):
/// `aes128_encrypt(AppKey, 0x01|0x02 | JoinNonce | NetID | DevNonce | pad16)`.
pub fn derive_session_keys(app_key: &AesKey, join_nonce: u32, net_id: u32, dev_nonce: u16) -> (AesKey, AesKey) {
    let cipher = Aes128::new(GenericArray::from_slice(&app_key.0));
    let derive = |first: u8| {
        let mut block = [0u8; 16];
        block[0] = first;
        block[1..4].copy_from_slice(&join_nonce.to_le_bytes()[..3]);
        block[4..7].copy_from_slice(&net_id.to_le_bytes()[..3]);
        block[7..9].copy_from_slice(&dev_nonce.to_le_bytes());
        let mut b = GenericArray::from(block);
        cipher.encrypt_block(&mut b);
        let mut out = [0u8; 16];
        out.copy_from_slice(&b);
        AesKey(out)
    };
    (derive(0x01), derive(0x02))
}

/// A MAC command as bytes: CID and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacCommand {
    pub cid: u8,
    pub payload: Vec<u8>,
}

impl SerializableMacCommand for MacCommand {
    fn payload_bytes(&self) -> &[u8] {
        &self.payload
    }
    fn cid(&self) -> u8 {
        self.cid
    }
    fn payload_len(&self) -> usize {
        self.payload.len()
    }
}

/// A downlink data frame to build.
#[derive(Debug, Clone)]
pub struct Downlink<'a> {
    pub dev_addr: DevAddr,
    pub confirmed: bool,
    pub ack: bool,
    pub fpending: bool,
    pub adr: bool,
    pub fcnt: u32,
    /// MAC commands for FOpts (at most 15 bytes in all; the rest is left out).
    pub mac: &'a [MacCommand],
    /// `(FPort, plain FRMPayload)`.
    pub data: Option<(u8, &'a [u8])>,
}

/// Largest FRMPayload accepted for a downlink here (the largest any region allows).
pub const MAX_DOWNLINK_PAYLOAD: usize = 242;

/// Builds and encrypts a downlink data frame (§4).
pub fn build_downlink(d: &Downlink<'_>, nwk_s_key: &AesKey, app_s_key: &AesKey) -> Result<Vec<u8>, &'static str> {
    let mut fctrl = 0u8;
    if d.adr {
        fctrl |= 0x80;
    }
    if d.ack {
        fctrl |= 0x20;
    }
    if d.fpending {
        fctrl |= 0x10;
    }
    let mut cmds: Vec<&dyn SerializableMacCommand> = Vec::new();
    let mut len = 0;
    for c in d.mac {
        if len + 1 + c.payload.len() > 15 {
            break;
        }
        len += 1 + c.payload.len();
        cmds.push(c);
    }
    let mut creator = lorawan::creator::DataPayloadCreator::new();
    creator
        .set_uplink(false)
        .set_confirmed(d.confirmed)
        .set_dev_addr(&d.dev_addr.to_le())
        .set_fctrl(&lorawan::parser::FCtrl::new(fctrl, false))
        .set_fcnt(d.fcnt);
    let payload: &[u8] = match d.data {
        Some((port, data)) => {
            if port == 0 || data.len() > MAX_DOWNLINK_PAYLOAD {
                return Err("downlink FPort must be 1..=255 and its data at most 242 bytes");
            }
            creator.set_f_port(port);
            data
        }
        None => &[],
    };
    creator
        .build(payload, &cmds, &NewSKey::from(nwk_s_key.0), &AppSKey::from(app_s_key.0))
        .map(<[u8]>::to_vec)
        .map_err(|_| "the lorawan crate refused the downlink frame")
}

/// Uplink MAC commands in FOpts (or FRMPayload on FPort 0), LoRaWAN 1.0.4 §5. Parsing stops
/// at the first unknown CID, since its length is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UplinkMac {
    LinkCheckReq,
    LinkAdrAns { status: u8 },
    DutyCycleAns,
    RxParamSetupAns { status: u8 },
    DevStatusAns { battery: u8, margin: i8 },
    NewChannelAns { status: u8 },
    RxTimingSetupAns,
    TxParamSetupAns,
    DlChannelAns { status: u8 },
    DeviceTimeReq,
}

pub fn parse_uplink_mac(mut b: &[u8]) -> Vec<UplinkMac> {
    let mut out = Vec::new();
    while let Some((&cid, rest)) = b.split_first() {
        let (cmd, len) = match (cid, rest) {
            (0x02, _) => (UplinkMac::LinkCheckReq, 0),
            (0x03, [s, ..]) => (UplinkMac::LinkAdrAns { status: *s }, 1),
            (0x04, _) => (UplinkMac::DutyCycleAns, 0),
            (0x05, [s, ..]) => (UplinkMac::RxParamSetupAns { status: *s }, 1),
            (0x06, [bat, m, ..]) => {
                // Margin is a signed 6-bit value.
                let m = ((m & 0x3f) << 2) as i8 >> 2;
                (UplinkMac::DevStatusAns { battery: *bat, margin: m }, 2)
            }
            (0x07, [s, ..]) => (UplinkMac::NewChannelAns { status: *s }, 1),
            (0x08, _) => (UplinkMac::RxTimingSetupAns, 0),
            (0x09, _) => (UplinkMac::TxParamSetupAns, 0),
            (0x0a, [s, ..]) => (UplinkMac::DlChannelAns { status: *s }, 1),
            (0x0d, _) => (UplinkMac::DeviceTimeReq, 0),
            _ => break,
        };
        out.push(cmd);
        b = &rest[len..];
    }
    out
}

/// LinkCheckAns (CID 0x02): demodulation margin in dB above the demodulation floor, and the
/// number of gateways that received the request.
pub fn link_check_ans(margin: u8, gw_count: u8) -> MacCommand {
    MacCommand { cid: 0x02, payload: vec![margin, gw_count] }
}

/// DeviceTimeAns (CID 0x0D): seconds since the GPS epoch (u32 LE) and 1/256 s fractions.
pub fn device_time_ans(gps: std::time::Duration) -> MacCommand {
    let secs = gps.as_secs() as u32;
    let frac = (u64::from(gps.subsec_nanos()) * 256 / 1_000_000_000) as u8;
    let mut payload = secs.to_le_bytes().to_vec();
    payload.push(frac);
    MacCommand { cid: 0x0d, payload }
}

/// DevStatusReq (CID 0x06): asks for battery level and margin.
pub fn dev_status_req() -> MacCommand {
    MacCommand { cid: 0x06, payload: Vec::new() }
}

#[cfg(test)]
mod tests;
