//! The config file (`--config`, TOML) and everything `serve` derives from it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        certgate::cli::fuzz_config(text);
    }
});
