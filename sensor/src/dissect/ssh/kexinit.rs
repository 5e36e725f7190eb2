//! SSH_MSG_KEXINIT (RFC 4253 §7.1): parsing its algorithm name-lists,
//! HASSH and HASSH-server (Salesforce's fingerprints of the client's and
//! the server's offer), and the negotiation of one algorithm per category.
//!
//! Input: the payload of one binary packet (message number first). Output:
//! a [`KexInit`] with the raw name-lists. Does not: frame packets (the
//! dissector in `ssh/mod.rs` does) or look past the key exchange init.

use md5::{Digest, Md5};

/// Message number of SSH_MSG_KEXINIT.
pub const MSG_KEXINIT: u8 = 20;

/// The name-lists of one KEXINIT, as sent (comma-separated US-ASCII names).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KexInit {
    /// `kex_algorithms`.
    pub kex: Vec<u8>,
    /// `server_host_key_algorithms`.
    pub host_key: Vec<u8>,
    /// `encryption_algorithms_client_to_server`.
    pub enc_c2s: Vec<u8>,
    /// `encryption_algorithms_server_to_client`.
    pub enc_s2c: Vec<u8>,
    /// `mac_algorithms_client_to_server`.
    pub mac_c2s: Vec<u8>,
    /// `mac_algorithms_server_to_client`.
    pub mac_s2c: Vec<u8>,
    /// `compression_algorithms_client_to_server`.
    pub comp_c2s: Vec<u8>,
    /// `compression_algorithms_server_to_client`.
    pub comp_s2c: Vec<u8>,
}

/// Reads one `name-list` (uint32 length, then the bytes) at `*pos`.
fn name_list(payload: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let len_bytes = payload.get(*pos..pos.checked_add(4)?)?;
    let len = u32::from_be_bytes(len_bytes.try_into().ok()?) as usize;
    let start = pos.checked_add(4)?;
    let end = start.checked_add(len)?;
    let list = payload.get(start..end)?;
    *pos = end;
    Some(list.to_vec())
}

impl KexInit {
    /// Parses a KEXINIT payload: message number 20, a 16-byte cookie, then
    /// ten name-lists (the two language lists are read and dropped). The
    /// trailing `first_kex_packet_follows` and reserved fields are not
    /// required. `None` when the payload is not a well-formed KEXINIT.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        if payload.first() != Some(&MSG_KEXINIT) {
            return None;
        }
        let mut pos = 17; // message number + cookie
        if payload.len() < pos {
            return None;
        }
        let mut lists: [Vec<u8>; 10] = Default::default();
        for list in &mut lists {
            *list = name_list(payload, &mut pos)?;
        }
        let [
            kex,
            host_key,
            enc_c2s,
            enc_s2c,
            mac_c2s,
            mac_s2c,
            comp_c2s,
            comp_s2c,
            _,
            _,
        ] = lists;
        Some(Self {
            kex,
            host_key,
            enc_c2s,
            enc_s2c,
            mac_c2s,
            mac_s2c,
            comp_c2s,
            comp_s2c,
        })
    }

    /// The bytes HASSH hashes when this is the client's KEXINIT:
    /// `kex;enc_c2s;mac_c2s;comp_c2s`.
    pub fn hassh_input(&self) -> Vec<u8> {
        join(&[&self.kex, &self.enc_c2s, &self.mac_c2s, &self.comp_c2s])
    }

    /// The bytes HASSH-server hashes when this is the server's KEXINIT:
    /// `kex;enc_s2c;mac_s2c;comp_s2c` (the server's own sending direction,
    /// as the HASSH specification defines it).
    pub fn hassh_server_input(&self) -> Vec<u8> {
        join(&[&self.kex, &self.enc_s2c, &self.mac_s2c, &self.comp_s2c])
    }
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(part);
    }
    out
}

/// Lower-case hexadecimal MD5 of `bytes` (the form HASSH is written in).
pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// The algorithm both sides use (RFC 4253 §7.1): the first name of the
/// client's list that the server's list also contains.
pub fn negotiate(client: &[u8], server: &[u8]) -> Option<String> {
    client
        .split(|&b| b == b',')
        .filter(|name| !name.is_empty())
        .find(|name| server.split(|&b| b == b',').any(|s| s == *name))
        .map(|name| String::from_utf8_lossy(name).into_owned())
}
