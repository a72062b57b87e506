//! The client half of the WebSocket opening handshake, reading a hostile server's answer: no
//! panic, no hang, and never success (the answer cannot know our random key's accept value).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox_wire::handshake;

#[path = "scripted.rs"]
mod scripted;

fuzz_target!(|input: &[u8]| {
    let rt = scripted::runtime();
    rt.block_on(async {
        let mut server = scripted::Scripted::new(input);
        let headers = http::HeaderMap::new();
        let result = handshake::client(&mut server, "sandbox.example:443", "/api/port-forward?port=22", &headers).await;
        assert!(result.is_err(), "an answer without our key's accept value was taken");
    });
});
