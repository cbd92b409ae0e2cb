//! What an application sends the proxy listener: the head check before hyper must agree with
//! hyper, and an accepted head's request target is resolved against a route table.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    certgate::gateway::fuzz::request_target(data);
});
