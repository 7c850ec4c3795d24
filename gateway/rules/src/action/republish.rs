//! The republish action: the output published to the broker again, topic and payload from
//! templates (EMQX's `republish`). Published as the broker's own message, so it is not
//! seen by rules again (no loops).

use bytes::Bytes;
use roost_core::{Message, QoS};

use super::{Output, Sink, SinkError};
use crate::config::ActionKind;
use crate::template::Template;

pub struct Republish {
    broker: roost_core::Broker,
    topic: Template,
    payload: Template,
    qos: QoS,
    retain: bool,
    props: Vec<(Template, Template)>,
}

impl Republish {
    pub fn new(kind: &ActionKind, broker: roost_core::Broker) -> Result<Republish, SinkError> {
        let ActionKind::Republish { topic, payload, qos, retain, user_properties } = kind else {
            return Err(SinkError::new("not a republish action"));
        };
        let t = |s: &str| Template::parse(s).map_err(SinkError::new);
        Ok(Republish {
            broker,
            topic: t(topic)?,
            payload: t(payload)?,
            qos: match qos {
                0 => QoS::AtMostOnce,
                1 => QoS::AtLeastOnce,
                _ => QoS::ExactlyOnce,
            },
            retain: *retain,
            props: user_properties.iter().map(|(k, v)| Ok((t(k)?, t(v)?))).collect::<Result<_, SinkError>>()?,
        })
    }
}

#[async_trait::async_trait]
impl Sink for Republish {
    async fn write(&mut self, batch: &[Output]) -> Result<(), SinkError> {
        for out in batch {
            let topic = self.topic.render(out);
            if topic.is_empty() || topic.contains(['+', '#', '\0']) {
                // A template that renders a bad topic will not get better by retrying.
                tracing::warn!(%topic, "republish: rendered topic is not a topic name; output skipped");
                continue;
            }
            let mut m = Message::new(topic, Bytes::from(self.payload.render(out)), self.qos, self.retain);
            m.properties.user_properties = self.props.iter().map(|(k, v)| (k.render(out), v.render(out))).collect();
            self.broker.publish(m);
        }
        Ok(())
    }
}
