//! The apply file (`certgate apply`, `POST /api/v1/apply`), TOML or YAML by the first byte:
//! parsed, each declared value checked as the planner does, and the file `export-config`
//! would write from it reads back the same.
#![no_main]

use certgate::control::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else { return };
    let format = if pick % 2 == 0 { Format::Toml } else { Format::Yaml };
    if let Ok(text) = std::str::from_utf8(data) {
        certgate::control::fuzz::apply_document(text, format);
    }
});
