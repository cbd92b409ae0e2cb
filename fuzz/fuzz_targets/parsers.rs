//! Destinations, URLs (named services, store URLs), trust policies, pins, names, durations,
//! contacts: every value a user types. What is accepted must read back to itself, and a store
//! URL's redacted form must not show its password.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        certgate::control::fuzz::text(text);
    }
});
