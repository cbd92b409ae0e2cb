//! The bundle reader (PKCS#12, PEM, DER, PKCS#7, legacy encrypted PEM) as `cert import` and
//! the API call it: with no password, an empty one, or the fixtures' one, picked by the first
//! byte; then the identity is assembled from what was read.
#![no_main]

use certgate::pki::{bundle, Password};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else { return };
    let password = match pick % 4 {
        0 => None,
        1 => Some(Password::new(String::new())),
        // The passwords of tests/fixtures/interop and tests/fixtures/pkcs12.
        2 => Some(Password::new("interop-pass".into())),
        _ => Some(Password::new("test-pass".into())),
    };
    if let Ok(contents) = bundle::read(data, password.as_ref()) {
        let _ = bundle::assemble(contents);
    }
});
