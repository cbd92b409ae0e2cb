//! The hand-written BER reader under the PKCS#12 reader (and its encryption-scheme and PBKDF2
//! parameter readers): any input is read without a panic, and what it re-encodes as DER reads
//! back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    certgate::pki::pbe::fuzz_ber(data);
});
