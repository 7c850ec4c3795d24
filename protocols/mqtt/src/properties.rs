//! The one mapping between MQTT 5 PUBLISH properties (MQTT 5 §3.3.2.3), and will
//! properties (§3.1.3.2), and the core's message properties, for every side that turns one
//! into the other (the MQTT session, CONNECT's will, the bridge). What the core does not carry (topic alias, subscription identifiers) is
//! the caller's.

use std::time::{Duration, Instant};

use roost_core::{Message, MessageProperties};

use crate::codec::{PublishProperties, WillProperties};

/// Moves a received PUBLISH's properties onto `msg`: the application properties, and the
/// Message Expiry Interval as the message's expiry.
pub fn apply(msg: &mut Message, p: PublishProperties) {
    msg.expiry = p.message_expiry_interval.map(|s| Duration::from_secs(u64::from(s)));
    msg.properties = MessageProperties {
        payload_format_indicator: p.payload_format_indicator,
        content_type: p.content_type,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
    };
}

/// A will's application properties and its Message Expiry Interval as the message's expiry
/// (the will delay is the caller's).
pub fn apply_will(msg: &mut Message, p: &WillProperties) {
    msg.expiry = p.message_expiry_interval.map(|s| Duration::from_secs(u64::from(s)));
    msg.properties = MessageProperties {
        payload_format_indicator: p.payload_format_indicator,
        content_type: p.content_type.clone(),
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.clone(),
        user_properties: p.user_properties.clone(),
    };
}

/// The properties of a PUBLISH carrying `m` out at `now`: its application properties, the
/// expiry it has left (§3.3.2.3.3) and the `subscription_identifiers` it matched.
pub fn of(m: &Message, now: Instant, subscription_identifiers: Vec<u32>) -> PublishProperties {
    let mp = &m.properties;
    PublishProperties {
        payload_format_indicator: mp.payload_format_indicator,
        message_expiry_interval: m.remaining_expiry(now),
        topic_alias: None,
        response_topic: mp.response_topic.clone(),
        correlation_data: mp.correlation_data.clone(),
        user_properties: mp.user_properties.clone(),
        subscription_identifiers,
        content_type: mp.content_type.clone(),
    }
}

#[cfg(test)]
mod tests {
    use roost_core::QoS;

    use super::*;

    #[test]
    fn properties_survive_the_round_trip_and_expiry_counts_down() {
        let p = PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            topic_alias: Some(3),
            response_topic: Some("r".into()),
            correlation_data: Some("c".into()),
            user_properties: vec![("k".into(), "v".into())],
            subscription_identifiers: vec![],
            content_type: Some("text/plain".into()),
        };
        let mut m = Message::new("t", "x", QoS::AtLeastOnce, false);
        apply(&mut m, p.clone());
        let later = m.created + Duration::from_secs(20);
        let out = of(&m, later, vec![7]);
        assert_eq!(out.message_expiry_interval, Some(40));
        assert_eq!(out.subscription_identifiers, vec![7]);
        assert_eq!(out.topic_alias, None);
        let expected = PublishProperties {
            message_expiry_interval: Some(40),
            topic_alias: None,
            subscription_identifiers: vec![7],
            ..p
        };
        assert_eq!(out, expected);
    }
}
