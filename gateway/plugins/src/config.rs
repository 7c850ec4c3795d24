//! Config layer: the `[[payload_codec]]` table, its defaults and its checks. Always built,
//! also without the `runtime` feature (QuickJS and wasmi), so a gateway built without custom
//! codecs still reads and checks a configuration file that has the section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Wall time one JavaScript codec call may run by default, milliseconds.
pub const TIME_LIMIT_MS: u64 = 100;
/// Bytes a JavaScript codec's runtime on one worker may hold by default.
pub const MAX_MEMORY: usize = 8 << 20;

/// One `[[payload_codec]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadCodecConfig {
    /// What LoRaWAN devices name in `payload_codec`; `[A-Za-z0-9_-]`, 1 to 64 characters.
    pub name: String,
    /// The `.js` file (TS013: `decodeUplink`, optionally `encodeDownlink`).
    pub script: PathBuf,
    /// Publishes on these filters are decoded (their payload becomes the JSON event).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uplink_topics: Vec<String>,
    /// JSON publishes on these filters are encoded into the device's bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downlink_topics: Vec<String>,
    /// The `fPort` given to `decodeUplink` for topic uplinks (LoRaWAN gives the frame's).
    #[serde(default = "defaults::fport")]
    pub fport: u8,
    /// Wall time one call may run, milliseconds.
    #[serde(default = "defaults::time_limit_ms")]
    pub time_limit_ms: u64,
    /// Bytes the codec's runtime on one worker may hold.
    #[serde(default = "defaults::max_memory")]
    pub max_memory: usize,
}

mod defaults {
    pub fn fport() -> u8 {
        1
    }
    pub fn time_limit_ms() -> u64 {
        super::TIME_LIMIT_MS
    }
    pub fn max_memory() -> usize {
        super::MAX_MEMORY
    }
}

/// Names LoRaWAN uses for its built-in codecs; a script codec may not take them.
pub const RESERVED: [&str; 3] = ["none", "json", "cayenne_lpp"];

impl PayloadCodecConfig {
    /// What is wrong with the table, as `(field, problem)`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let name_ok = (1..=64).contains(&self.name.len())
            && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok || RESERVED.contains(&self.name.as_str()) {
            return Err((
                "name",
                format!("{:?} is not 1-64 of [A-Za-z0-9_-], or is a built-in codec's name", self.name),
            ));
        }
        if self.script.extension().and_then(|e| e.to_str()) != Some("js") {
            return Err(("script", format!("{} is not a .js file", self.script.display())));
        }
        for f in self.uplink_topics.iter().chain(&self.downlink_topics) {
            if f.is_empty() || f.contains('\0') {
                return Err(("uplink_topics", format!("{f:?} is not a topic filter")));
            }
        }
        if !(1..=223).contains(&self.fport) {
            return Err(("fport", format!("{} is not 1..=223", self.fport)));
        }
        if !(1..=10_000).contains(&self.time_limit_ms) {
            return Err(("time_limit_ms", format!("{} is not 1..=10000", self.time_limit_ms)));
        }
        if self.max_memory < (1 << 20) {
            return Err(("max_memory", format!("{} is below 1048576 (1 MiB)", self.max_memory)));
        }
        Ok(())
    }
}
