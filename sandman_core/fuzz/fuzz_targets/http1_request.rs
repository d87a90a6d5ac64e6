//! Raw client bytes into the HTTP/1 request path (`server::conn::serve` over an in-memory
//! stream, an app that answers every request): no panic, no hang, no leak.
#![no_main]

#[path = "../../tests/fuzz_harness/mod.rs"]
mod fuzz_harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_harness::http1(data);
});
