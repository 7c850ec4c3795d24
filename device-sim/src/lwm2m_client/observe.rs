//! Information reporting on the simulated device (OMA LwM2M 1.1 Core §6.4, RFC 7641):
//! observations, their periods from the written attributes, notifications with a rising
//! Observe sequence number, cancel by RST; Send reports; and the simulated sensor reading.

use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageType};
use roost_coap::codec;

use super::device::{Device, Event};
use super::serve;
use super::store::TEMPERATURE_OBJECT;
use roost_lwm2m::types::{Path, Record, format};

/// One server observation (RFC 7641), notified every period with a rising sequence number.
#[derive(Debug, Clone)]
pub struct Observation {
    pub token: Vec<u8>,
    pub path: Path,
    pub format: Option<u16>,
    pub seq: u32,
    pub last_sent: Instant,
    pub last_message_id: u16,
}

/// Written attributes (§5.1.2): only the periods drive this simulator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attrs {
    pub pmin: Option<u32>,
    pub pmax: Option<u32>,
}

impl Device {
    /// A RST to one of our notifications cancels its observation (RFC 7641 §3.6).
    pub(super) fn reset(&mut self, message_id: u16) {
        self.observations.retain(|o| o.last_message_id != message_id);
    }

    /// The simulated temperature: a slow deterministic wave, different per device.
    pub(super) fn sample(&mut self, now: Instant) {
        let t = now.saturating_duration_since(self.started).as_secs() + u64::from(self.cfg.seed);
        let step = (t % 40) as f64;
        let celsius = 20.0 + if step < 20.0 { step } else { 40.0 - step } / 4.0;
        self.store.set_temperature(celsius);
    }

    /// The notification period of `path`: pmax (inherited from the instance and object
    /// where not set on it) or the report period, no shorter than pmin.
    pub fn period_of(&self, path: &Path) -> Duration {
        let mut attrs = Attrs::default();
        let mut p = Some(*path);
        while let Some(cur) = p {
            let a = self.attrs(&cur);
            attrs.pmin = attrs.pmin.or(a.pmin);
            attrs.pmax = attrs.pmax.or(a.pmax);
            p = if cur.len() > 1 { Path::new(&cur.ids()[..cur.len() - 1]).ok() } else { None };
        }
        let base = attrs.pmax.filter(|s| *s > 0).map_or(self.cfg.report_period, |s| Duration::from_secs(u64::from(s)));
        base.max(Duration::from_secs(u64::from(attrs.pmin.unwrap_or(0)))).max(Duration::from_millis(10))
    }

    /// A Send report (1.1 Core §6.4.6): the temperature of every sensor, SenML CBOR.
    pub(super) fn report(&mut self, now: Instant) -> Vec<u8> {
        self.sample(now);
        let object = Path::new(&[TEMPERATURE_OBJECT]).unwrap_or_default();
        let readings: Vec<Record> = self
            .store
            .read(&object)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.path.resource() == Some(5700))
            .collect();
        roost_lwm2m::content::encode(format::SENML_CBOR, object, &readings).unwrap_or_default()
    }

    pub(super) fn notify_due(&mut self, now: Instant) {
        let due: Vec<usize> = (0..self.observations.len())
            .filter(|i| now >= self.observations[*i].last_sent + self.period_of(&self.observations[*i].path))
            .collect();
        if due.is_empty() {
            return;
        }
        self.sample(now);
        for i in due {
            let o = self.observations[i].clone();
            let mut p = match serve::read_response(&self.store, &o.path, o.format) {
                Ok(p) => p,
                Err(_) => {
                    // The observed path went away (instance deleted): the observation ends.
                    self.observations[i].last_sent = now + Duration::from_secs(86_400 * 365);
                    continue;
                }
            };
            let mid = self.next_message_id();
            p.header.set_version(1);
            p.header.set_type(MessageType::NonConfirmable);
            p.header.message_id = mid;
            p.set_token(o.token.clone());
            let seq = o.seq.wrapping_add(1) & 0x00FF_FFFF;
            p.add_option(CoapOption::Observe, codec::encode_uint(seq));
            let entry = &mut self.observations[i];
            entry.seq = seq;
            entry.last_sent = now;
            entry.last_message_id = mid;
            self.send(&p, now);
            self.events.push_back(Event::Notified(o.path));
        }
    }
}
