//! The observations of one device (RFC 7641; OMA LwM2M 1.1 Core §6.4.1 Observe): kept when
//! an Observe is answered with a sequence number, notifications matched by token, stale
//! ones (an older sequence number, §3.4) dropped, and the observation ended by a
//! notification without Observe or with an error code (§3.2, §4.2).

use std::time::{Duration, Instant};

use coap_lite::{CoapOption, Packet};
use roost_coap::codec;
use serde_json::{Value as Json, json};

use super::{Device, Exchange, success};
use crate::server::engine::{Counters, Sink};
use crate::server::mqtt::{self, Command, CommandKind};
use crate::server::settings::Lwm2mSettings;
use crate::types::{Kind, Path};

pub(super) struct Observation {
    pub(super) token: Vec<u8>,
    pub(super) path: String,
    req_id: Json,
    last_seq: Option<u32>,
    last_at: Instant,
}

/// Observations held per device at most.
pub(super) const MAX_OBSERVATIONS: usize = 64;

/// RFC 7641 §3.4: whether notification `new` is fresher than `old`.
fn fresher(old: u32, new: u32, old_at: Instant, now: Instant) -> bool {
    const HALF: u32 = 1 << 23;
    (old < new && new - old < HALF) || (old > new && old - new > HALF) || now > old_at + Duration::from_secs(128)
}

impl Device {
    /// The answer to Observe `cmd` (token `token`): a success with a sequence number starts
    /// (or restarts) the observation of its path.
    pub(super) fn observe_answered(&mut self, now: Instant, token: &[u8], cmd: &Command, resp: &Packet) {
        if success(resp.header.code)
            && let Some(Ok(seq)) = codec::uint_option(resp, CoapOption::Observe)
        {
            self.observations.retain(|o| o.path != cmd.path);
            self.observations.push(Observation {
                token: token.to_vec(),
                path: cmd.path.clone(),
                req_id: cmd.req_id.clone(),
                last_seq: Some(seq),
                last_at: now,
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn notify(
        &mut self,
        now: Instant,
        i: usize,
        resp: &Packet,
        s: &Lwm2mSettings,
        kind_of: &dyn Fn(&Path) -> Option<Kind>,
        c: &Counters,
        out: &mut Sink,
    ) {
        let seq = match codec::uint_option(resp, CoapOption::Observe) {
            Some(Ok(n)) => Some(n),
            _ => None,
        };
        let o = &mut self.observations[i];
        if let (Some(old), Some(new)) = (o.last_seq, seq)
            && !fresher(old, new, o.last_at, now)
        {
            Counters::bump(&c.stale_notifications);
            return;
        }
        Counters::bump(&c.notifications);
        o.last_seq = seq.or(o.last_seq);
        o.last_at = now;
        // The first block of a large notification: the rest is fetched with GETs (RFC 7959
        // §3.4) and published as this notification once whole.
        if let Some(Ok(b)) = codec::Block::of(resp, CoapOption::Block2)
            && b.num == 0
            && b.more
            && seq.is_some()
            && let Some(cmd) = mqtt::notification_fetch(o.req_id.clone(), &o.path, &self.info.root)
        {
            let mut e = Exchange::new(Vec::new(), cmd, None, None);
            e.notify_seq = seq;
            e.body = resp.payload.clone();
            e.first = Some(Box::new(resp.clone()));
            self.next_block(now, e, b);
            return;
        }
        let data = mqtt::response_data(&o.path, CommandKind::Observe, resp, kind_of);
        let msg = json!({"reqID": o.req_id, "msgType": "notify", "seqNum": seq.unwrap_or(0), "data": data});
        // Without Observe, or an error: the observation is over (RFC 7641 §3.2, §4.2).
        if seq.is_none() || !success(resp.header.code) {
            self.observations.remove(i);
        }
        out.publish.push((s.translators.notify.clone(), msg, None));
    }
}
