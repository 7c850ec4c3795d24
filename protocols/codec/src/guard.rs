//! Panic containment: a codec is user code, and a panic in it must take down only the
//! connection whose input caused it. Every call into a codec or factory goes through
//! [`contain`]; the caller closes that connection (or drops that datagram) and logs.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`, turning a panic into `Err(message)`.
pub(crate) fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    // The codec that panicked is dropped by the caller, so no broken state is observed
    // after the unwind: asserting unwind safety is sound here.
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| message(payload.as_ref()))
}

fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a non-string panic payload)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(contain(|| 7), Ok(7));
        let r: Result<(), String> = contain(|| panic!("boom {}", 1));
        assert_eq!(r, Err("boom 1".to_string()));
    }
}
