//! Bytes in presentation format: character-strings (escaped, quoted), hex,
//! base64 and base32hex.
//!
//! Owns: how RDATA bytes that are neither a name nor a number are written
//! (RFC 1035 §5.1 escapes, RFC 4648 alphabets). Input: byte slices of one
//! record's RDATA. Output: text appended to a `String`.
//!
//! Does not: read RDATA or check lengths (`rdata.rs` does, before calling
//! these).

use std::fmt::Write as _;

use crate::dissect::dns::message::push_decimal3;

/// Bytes of a character-string, escaped, without quotes.
pub(super) fn push_escaped(out: &mut String, s: &[u8]) {
    for &b in s {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                out.push('\\');
                push_decimal3(out, b);
            }
        }
    }
}

/// A character-string in double quotes.
pub(super) fn push_quoted(out: &mut String, s: &[u8]) {
    out.push('"');
    push_escaped(out, s);
    out.push('"');
}

pub(super) fn push_hex(out: &mut String, b: &[u8]) {
    for byte in b {
        write!(out, "{byte:02X}").ok();
    }
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn push_base64(out: &mut String, b: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (n >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

/// Base32 with the extended hex alphabet, no padding (RFC 5155 §3.3).
pub(super) fn push_base32hex(out: &mut String, b: &[u8]) {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHIJKLMNOPQRSTUV";
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &x in b {
        acc = (acc << 8) | u32::from(x);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 0x1f) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 0x1f) as usize]));
    }
}
