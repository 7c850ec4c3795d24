//! Conversions between wire types (codec) and core types.

use crate::codec;

pub fn core_qos(q: codec::QoS) -> roost_core::QoS {
    match q {
        codec::QoS::AtMostOnce => roost_core::QoS::AtMostOnce,
        codec::QoS::AtLeastOnce => roost_core::QoS::AtLeastOnce,
        codec::QoS::ExactlyOnce => roost_core::QoS::ExactlyOnce,
    }
}

pub fn wire_qos(q: roost_core::QoS) -> codec::QoS {
    match q {
        roost_core::QoS::AtMostOnce => codec::QoS::AtMostOnce,
        roost_core::QoS::AtLeastOnce => codec::QoS::AtLeastOnce,
        roost_core::QoS::ExactlyOnce => codec::QoS::ExactlyOnce,
    }
}
