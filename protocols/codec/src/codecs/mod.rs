//! The example codecs that ship with Roost, registered in [`crate::Registry::default`]:
//!
//! - [`tlv_sensor`] (`codec = "tlv-sensor"`): a fixed-layout binary sensor frame over UDP
//!   with TLV readings, published as JSON; JSON commands back to the device.
//! - [`line`] (`codec = "line"`): a line-based text protocol over TCP
//!   (`CONNECT id`, `PUB topic payload`, `SUB filter`), the shape of many serial gateways.
//!
//! Both are also the worked examples of `docs/custom-codec.md`.

pub mod line;
#[cfg(any(test, feature = "test-support"))]
pub mod line_suite;
pub mod tlv_sensor;

#[cfg(test)]
mod proptests;

use crate::registry::Registry;

pub(crate) fn register_builtin(registry: &mut Registry) {
    registry.register(line::NAME, line::factory);
    registry.register(tlv_sensor::NAME, tlv_sensor::factory);
}
