//! RFC 6455 frame format: headers, opcodes and masking. No I/O here; [`crate::tunnel`] streams
//! frames through these functions without ever holding a whole message.

/// Frame opcodes (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, Ping and Pong: at most 125 bytes, never fragmented, may come between fragments.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// Largest header: 2 bytes, 8 bytes of extended length, 4 bytes of mask.
pub const MAX_HEADER: usize = 14;

/// Largest control frame payload.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
}

/// The peer broke the frame format; the connection must close with 1002.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the other end broke the WebSocket protocol: {0}")]
pub struct ProtocolError(pub &'static str);

/// Parses the header at the start of `buf`: `Ok(None)` until all of it has arrived, else the
/// header and its length in bytes.
pub fn parse_header(buf: &[u8]) -> Result<Option<(Header, usize)>, ProtocolError> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err(ProtocolError("reserved bits set (no extension was negotiated)"));
    }
    let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(ProtocolError("unknown opcode"))?;
    let fin = b0 & 0x80 != 0;
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u16::from_be_bytes([b[0], b[1]]) as u64, 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let len = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(ProtocolError("frame length has its top bit set"));
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        n => (n as u64, 2),
    };
    if opcode.is_control() && (!fin || len > MAX_CONTROL_PAYLOAD as u64) {
        return Err(ProtocolError("control frame fragmented or longer than 125 bytes"));
    }
    let mask = if masked {
        let Some(m) = buf.get(at..at + 4) else { return Ok(None) };
        at += 4;
        Some([m[0], m[1], m[2], m[3]])
    } else {
        None
    };
    Ok(Some((Header { fin, opcode, mask, len }, at)))
}

/// Encodes a header into `out`, returning how many bytes of it are used.
pub fn encode_header(header: &Header, out: &mut [u8; MAX_HEADER]) -> usize {
    out[0] = (header.fin as u8) << 7 | header.opcode.bits();
    let mask_bit = (header.mask.is_some() as u8) << 7;
    let mut at = match header.len {
        n @ 0..=125 => {
            out[1] = mask_bit | n as u8;
            2
        }
        n @ 126..=0xFFFF => {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            4
        }
        n => {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&n.to_be_bytes());
            10
        }
    };
    if let Some(m) = header.mask {
        out[at..at + 4].copy_from_slice(&m);
        at += 4;
    }
    at
}

/// XORs `buf` with `mask`, where `buf` starts `offset` bytes into the frame's payload (frames
/// are unmasked piecewise as they stream through). Masking twice restores the bytes.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: u64) {
    let mut m = mask;
    m.rotate_left((offset % 4) as usize);
    // Eight bytes at a time: two whole mask periods, so the phase never shifts, and the
    // compiler turns this loop into vector instructions.
    let word = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().expect("8 bytes")) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

/// A whole control frame (`payload` ≤ 125 bytes), masked when `mask` is given.
pub fn control_frame(opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    debug_assert!(opcode.is_control() && payload.len() <= MAX_CONTROL_PAYLOAD);
    whole_frame(opcode, payload, mask)
}

/// A text message in one frame (tunnel protocol v2's control messages).
pub fn text_frame(payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    whole_frame(OpCode::Text, payload, mask)
}

fn whole_frame(opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut head = [0; MAX_HEADER];
    let n = encode_header(&Header { fin: true, opcode, mask, len: payload.len() as u64 }, &mut head);
    let mut frame = Vec::with_capacity(n + payload.len());
    frame.extend_from_slice(&head[..n]);
    frame.extend_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(&mut frame[n..], m, 0);
    }
    frame
}

/// The payload of a Close frame: status code and a reason cut to fit 125 bytes on a UTF-8
/// boundary.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(&reason.as_bytes()[..end]);
    p
}

/// Whether a peer may send `code` in a Close frame (RFC 6455 §7.4): the defined codes (1012–1014
/// were registered with IANA since) and 3000–4999; never 1004–1006, 1015, other 1xxx/2xxx
/// codes, or anything below 1000 or above 4999.
pub fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Reads a Close payload: `(1005, "")` when it carries no code (RFC 6455 §7.1.5). A code a
/// peer may not send ([`close_code_allowed`]) is a protocol error.
pub fn parse_close(payload: &[u8]) -> Result<(u16, String), ProtocolError> {
    match payload {
        [] => Ok((1005, String::new())),
        [_] => Err(ProtocolError("close frame with a 1-byte payload")),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !close_code_allowed(code) {
                return Err(ProtocolError("close frame with a code no endpoint may send"));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| ProtocolError("close reason is not UTF-8"))?;
            Ok((code, reason.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(h: Header) {
        let mut out = [0; MAX_HEADER];
        let n = encode_header(&h, &mut out);
        for cut in 0..n {
            assert_eq!(parse_header(&out[..cut]), Ok(None), "{h:?} cut at {cut}");
        }
        assert_eq!(parse_header(&out[..n]), Ok(Some((h, n))));
    }

    #[test]
    fn headers_roundtrip_at_every_length_class() {
        for len in [0, 1, 125, 126, 0xFFFF, 0x1_0000, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                for fin in [true, false] {
                    roundtrip(Header { fin, opcode: OpCode::Binary, mask, len });
                }
            }
        }
        roundtrip(Header { fin: true, opcode: OpCode::Close, mask: None, len: 125 });
    }

    #[test]
    fn bad_headers_are_protocol_errors() {
        assert!(parse_header(&[0x82 | 0x40, 0]).is_err(), "RSV1");
        assert!(parse_header(&[0x83, 0]).is_err(), "opcode 3");
        assert!(parse_header(&[0x09, 0]).is_err(), "fragmented ping");
        assert!(parse_header(&[0x88, 126, 0, 126]).is_err(), "126-byte close");
        assert!(parse_header(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]).is_err(), "63-bit length");
    }

    #[test]
    fn masking_matches_the_byte_by_byte_definition_at_any_offset() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mask = [0xA1, 0x05, 0x7C, 0xFE];
        let mut whole = data.clone();
        apply_mask(&mut whole, mask, 0);
        for (i, (m, d)) in whole.iter().zip(&data).enumerate() {
            assert_eq!(*m, d ^ mask[i % 4]);
        }
        // Piecewise at odd split points gives the same bytes.
        let mut pieces = data.clone();
        let mut at = 0;
        for len in [1, 3, 8, 13, 250, 725] {
            apply_mask(&mut pieces[at..at + len], mask, at as u64);
            at += len;
        }
        assert_eq!(pieces, whole);
    }

    #[test]
    fn close_payloads() {
        assert_eq!(parse_close(&close_payload(1011, "dial failed")), Ok((1011, "dial failed".into())));
        assert_eq!(parse_close(&[]), Ok((1005, String::new())));
        assert!(parse_close(&[3]).is_err());
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, u16::MAX] {
            assert!(parse_close(&close_payload(bad, "")).is_err(), "{bad}");
        }
        for good in [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert_eq!(parse_close(&close_payload(good, "")), Ok((good, String::new())), "{good}");
        }
        let long = "é".repeat(100);
        let p = close_payload(1000, &long);
        assert!(p.len() <= MAX_CONTROL_PAYLOAD);
        assert!(parse_close(&p).is_ok(), "cut on a char boundary");
    }
}
