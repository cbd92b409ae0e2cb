//! What a partner answers an HTTP/1.1 request: certgate's own client and hyper's must read it
//! the same way (status and body), or both refuse it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    certgate::upstream::fuzz::partner_response(data);
});
