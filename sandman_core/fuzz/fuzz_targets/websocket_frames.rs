//! Raw client frames into an accepted WebSocket (`ws/connection.rs` through yawc, an app
//! that echoes): no panic, no hang, no leak.
#![no_main]

#[path = "../../tests/fuzz_harness/mod.rs"]
mod fuzz_harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_harness::websocket(data);
});
