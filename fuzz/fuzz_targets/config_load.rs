//! Fuzz target for the configuration loader (`roost::config::parse`, what `roost --config`,
//! `check-config` and SIGHUP reload run): arbitrary text as `roost.toml`. Nothing may panic;
//! a file that loads must load again from the same text to the same settings, and its error,
//! when it does not, must name what was wrong.
//!
//! Run from the repository root: `scripts/fuzz config_load 600`

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match roost::config::parse(text) {
        Ok(settings) => {
            let again = roost::config::parse(text).unwrap_or_else(|e| panic!("loaded once, then refused: {e}"));
            assert_eq!(format!("{settings:?}"), format!("{again:?}"));
        }
        Err(e) => assert!(!e.to_string().is_empty(), "an error says what is wrong"),
    }
});
