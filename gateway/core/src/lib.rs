//! roost-core: the broker every protocol adapter connects devices to.

pub mod settings;
