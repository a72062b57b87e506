//! The tunnel's WebSocket frame decoder, fed whatever a hostile peer sends: no panic, no hang,
//! and nothing is delivered after the stream broke the protocol — in protocol v1 and in v2,
//! whose control messages (`ack N`, `eof N`) come from the peer too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox_wire::frame;
use sandbox_wire::local::Plain;
use sandbox_wire::resume::Stream;
use sandbox_wire::tunnel::{splice, splice_v2, Role, SpliceOptions, TunnelSocket};

#[path = "scripted.rs"]
mod scripted;

fuzz_target!(|input: &[u8]| {
    // The pure parsers first: any header they accept fits in the bytes they were given.
    if let Ok(Some((_, used))) = frame::parse_header(input) {
        assert!(used <= input.len() && used <= frame::MAX_HEADER);
    }
    let _ = frame::parse_close(input);

    // Then the whole pump, as the server (peer frames must be masked) or the client (unmasked).
    let role = if input.first().is_some_and(|b| b & 0x80 != 0) { Role::Client } else { Role::Server };
    let rt = scripted::runtime();
    rt.block_on(async {
        let socket = TunnelSocket::new(scripted::Scripted::new(input), role, &[]);
        // The local app never sends (its reader stays pending), only receives.
        let (local_read, _keep) = tokio::io::duplex(64);
        let mut delivered = Vec::new();
        if input.first().is_some_and(|b| b & 0x40 != 0) {
            // Protocol v2: text messages are `ack`/`eof` commands checked against the stream.
            let mut stream = Stream::new();
            let opts = SpliceOptions { ping_interval: None, ..Default::default() };
            let result = splice_v2(socket, Plain(local_read), &mut delivered, &mut stream, opts).await;
            assert!(delivered.len() <= input.len());
            assert_eq!(stream.delivered(), delivered.len() as u64, "every byte written out is counted");
            let _ = result;
            return;
        }
        // The server end half-closes as our agent does.
        let opts =
            SpliceOptions { ping_interval: None, half_close: role == Role::Server, ..Default::default() };
        let result = splice(socket, local_read, &mut delivered, opts).await;
        // The local side got at most the payload bytes that were in the input.
        assert!(delivered.len() <= input.len());
        let _ = result;
    });
});
