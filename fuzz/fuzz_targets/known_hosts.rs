//! The host key the server hands out is normalised before it is written into a file ssh reads:
//! whatever arrives, what comes out is one line, `algorithm base64`, and stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox_core::known_hosts;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else { return };
    if let Ok(key) = known_hosts::normalise(text) {
        assert!(!key.contains(['\n', '\r', '\0']), "a normalised key spans lines: {key:?}");
        assert_eq!(key.split(' ').count(), 2, "not `algorithm base64`: {key:?}");
        assert_eq!(known_hosts::normalise(&key).ok().as_deref(), Some(key.as_str()), "not stable");
    }
});
