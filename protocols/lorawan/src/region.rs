//! Regional parameters (LoRaWAN Regional Parameters RP002-1.0.x) for EU868 and US915, as
//! data: data-rate tables, the RX1 data-rate and channel mapping, the RX2 defaults and the
//! receive-window delays.

use std::time::Duration;

use crate::semtech::DataRate;

/// One data rate: LoRa spreading factor and bandwidth, and the largest FRMPayload (N) at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dr {
    pub dr: u8,
    pub sf: u8,
    pub bw_khz: u32,
    pub max_payload: u8,
    /// Usable for uplinks (US915 DR8..13 are downlink only).
    pub uplink: bool,
}

const fn dr(dr: u8, sf: u8, bw_khz: u32, max_payload: u8, uplink: bool) -> Dr {
    Dr { dr, sf, bw_khz, max_payload, uplink }
}

/// EU863-870 (RP002 §2.4). DR7 (FSK) is left out: the network server speaks LoRa only.
pub const EU868_DATA_RATES: &[Dr] = &[
    dr(0, 12, 125, 51, true),
    dr(1, 11, 125, 51, true),
    dr(2, 10, 125, 51, true),
    dr(3, 9, 125, 115, true),
    dr(4, 8, 125, 242, true),
    dr(5, 7, 125, 242, true),
    dr(6, 7, 250, 242, true),
];

/// US902-928 (RP002 §2.5).
pub const US915_DATA_RATES: &[Dr] = &[
    dr(0, 10, 125, 11, true),
    dr(1, 9, 125, 53, true),
    dr(2, 8, 125, 125, true),
    dr(3, 7, 125, 242, true),
    dr(4, 8, 500, 242, true),
    dr(8, 12, 500, 53, false),
    dr(9, 11, 500, 129, false),
    dr(10, 10, 500, 242, false),
    dr(11, 9, 500, 242, false),
    dr(12, 8, 500, 242, false),
    dr(13, 7, 500, 242, false),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionName {
    Eu868,
    Us915,
}

/// A region's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub name: RegionName,
    pub data_rates: &'static [Dr],
    /// RX2 frequency (Hz) and data rate by default.
    pub rx2_freq_hz: u32,
    pub rx2_dr: u8,
    /// Downlink transmit power, dBm.
    pub tx_power: i32,
    pub max_rx1_dr_offset: u8,
}

pub const EU868: Region = Region {
    name: RegionName::Eu868,
    data_rates: EU868_DATA_RATES,
    rx2_freq_hz: 869_525_000,
    rx2_dr: 0,
    tx_power: 14,
    max_rx1_dr_offset: 5,
};

pub const US915: Region = Region {
    name: RegionName::Us915,
    data_rates: US915_DATA_RATES,
    rx2_freq_hz: 923_300_000,
    rx2_dr: 8,
    tx_power: 20,
    max_rx1_dr_offset: 3,
};

/// RECEIVE_DELAY1 / RECEIVE_DELAY2 and JOIN_ACCEPT_DELAY1 / 2 (RP002 §2.x default settings,
/// the same in every region).
pub const RECEIVE_DELAY1: Duration = Duration::from_secs(1);
pub const JOIN_ACCEPT_DELAY1: Duration = Duration::from_secs(5);
pub const JOIN_ACCEPT_DELAY2: Duration = Duration::from_secs(6);

impl Region {
    pub fn parse(s: &str) -> Option<Region> {
        match s.to_ascii_uppercase().as_str() {
            "EU868" => Some(EU868),
            "US915" => Some(US915),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self.name {
            RegionName::Eu868 => "EU868",
            RegionName::Us915 => "US915",
        }
    }

    pub fn dr(&self, dr: u8) -> Option<&'static Dr> {
        self.data_rates.iter().find(|d| d.dr == dr)
    }

    /// The uplink data rate of a received `datr`.
    pub fn uplink_dr(&self, datr: &DataRate) -> Option<&'static Dr> {
        let (sf, bw) = datr.sf_bw()?;
        self.data_rates.iter().find(|d| d.uplink && d.sf == sf && d.bw_khz == bw)
    }

    pub fn datr(&self, dr: u8) -> Option<DataRate> {
        self.dr(dr).map(|d| DataRate::lora(d.sf, d.bw_khz))
    }

    /// RX1 data rate for an uplink at `up_dr` with `offset` (RP002 RX1DROffset tables).
    pub fn rx1_dr(&self, up_dr: u8, offset: u8) -> u8 {
        match self.name {
            RegionName::Eu868 => up_dr.saturating_sub(offset).min(6),
            RegionName::Us915 => (10 + i16::from(up_dr) - i16::from(offset)).clamp(8, 13) as u8,
        }
    }

    /// RX1 frequency (Hz) for an uplink at `up_freq_hz`: the same channel in EU868; in US915
    /// downlink channel `uplink channel mod 8` (923.3 MHz + 600 kHz × n).
    pub fn rx1_freq_hz(&self, up_freq_hz: u32) -> u32 {
        match self.name {
            RegionName::Eu868 => up_freq_hz,
            RegionName::Us915 => {
                let ch = if up_freq_hz >= 903_000_000
                    && (up_freq_hz - 903_000_000).is_multiple_of(1_600_000)
                    && up_freq_hz <= 914_200_000
                {
                    // 500 kHz channels 64..71.
                    64 + (up_freq_hz - 903_000_000) / 1_600_000
                } else {
                    (up_freq_hz.saturating_sub(902_300_000) + 100_000) / 200_000
                };
                923_300_000 + (ch % 8) * 600_000
            }
        }
    }

    /// Required SNR (dB) to demodulate a spreading factor, for LinkCheckAns margins.
    pub fn required_snr(sf: u8) -> f64 {
        match sf {
            7 => -7.5,
            8 => -10.0,
            9 => -12.5,
            10 => -15.0,
            11 => -17.5,
            _ => -20.0,
        }
    }
}

/// MHz (as the forwarder writes it) to Hz.
pub fn mhz_to_hz(mhz: f64) -> u32 {
    (mhz * 1_000_000.0).round().clamp(0.0, f64::from(u32::MAX)) as u32
}

/// Hz to MHz for a `txpk`.
pub fn hz_to_mhz(hz: u32) -> f64 {
    f64::from(hz) / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eu868_rx_windows() {
        let up = EU868.uplink_dr(&DataRate::lora(7, 125)).unwrap();
        assert_eq!(up.dr, 5);
        assert_eq!(EU868.rx1_dr(5, 0), 5);
        assert_eq!(EU868.rx1_dr(5, 2), 3);
        assert_eq!(EU868.rx1_dr(1, 3), 0);
        assert_eq!(EU868.rx1_freq_hz(868_100_000), 868_100_000);
        assert_eq!(EU868.datr(EU868.rx2_dr), Some(DataRate::lora(12, 125)));
        assert_eq!(EU868.dr(3).unwrap().max_payload, 115);
    }

    #[test]
    fn us915_rx_windows() {
        let up = US915.uplink_dr(&DataRate::lora(10, 125)).unwrap();
        assert_eq!(up.dr, 0);
        assert_eq!(US915.uplink_dr(&DataRate::lora(12, 500)), None, "DR8 is downlink only");
        assert_eq!(US915.rx1_dr(0, 0), 10);
        assert_eq!(US915.rx1_dr(4, 0), 13);
        assert_eq!(US915.rx1_dr(0, 3), 8);
        // Channel 0 -> 923.3, channel 9 (904.1) -> 923.9, channel 65 (904.6 @500k) -> 923.9.
        assert_eq!(US915.rx1_freq_hz(902_300_000), 923_300_000);
        assert_eq!(US915.rx1_freq_hz(904_100_000), 923_900_000);
        assert_eq!(US915.rx1_freq_hz(904_600_000), 923_900_000);
        assert_eq!(US915.rx2_freq_hz, 923_300_000);
        assert_eq!(mhz_to_hz(902.3), 902_300_000);
    }
}
