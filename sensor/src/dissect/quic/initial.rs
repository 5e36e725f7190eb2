//! QUIC Initial packets: long-header parsing, Initial keys (RFC 9001 §5.2
//! for version 1, RFC 9369 §3 for version 2), header protection removal
//! and AES-128-GCM decryption (with `ring`).
//!
//! Input: one UDP datagram (possibly several coalesced long-header
//! packets). Output: [`LongHeader`]s, and the plaintext payload and packet
//! number of an Initial packet given its keys. Does not: parse frames
//! (`frames.rs`), decrypt Handshake or 1-RTT packets (their keys come from
//! the TLS handshake, which a sensor cannot see), or verify Retry
//! integrity tags.

use ring::aead::quic::{AES_128, HeaderProtectionKey};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, KeyType, Prk, Salt};

/// QUIC version 1 (RFC 9000).
pub const V1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369).
pub const V2: u32 = 0x6b33_43cf;

/// Initial salt of version 1 (RFC 9001 §5.2).
const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
/// Initial salt of version 2 (RFC 9369 §3.3.1).
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];

/// Longest connection id (RFC 9000 §17.2).
pub const MAX_CID_LEN: usize = 20;
/// AEAD tag length of AES-128-GCM.
const TAG_LEN: usize = 16;
/// Header protection sample length.
const SAMPLE_LEN: usize = 16;

/// The kind of a long-header packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Initial.
    Initial,
    /// 0-RTT.
    ZeroRtt,
    /// Handshake.
    Handshake,
    /// Retry (no length field: the rest of the datagram).
    Retry,
    /// Version negotiation (version 0) or a version this module does not
    /// know: the rest of the datagram, not parsed.
    Other,
}

/// Whether `version` is one whose Initial packets this module decrypts.
pub fn supported(version: u32) -> bool {
    version == V1 || version == V2
}

/// The packet kind of long-header type bits `bits` (0..=3) in `version`
/// (version 2 permutes them, RFC 9369 §3.2).
pub fn kind(version: u32, bits: u8) -> Kind {
    match (version, bits & 3) {
        (V1, 0) | (V2, 1) => Kind::Initial,
        (V1, 1) | (V2, 2) => Kind::ZeroRtt,
        (V1, 2) | (V2, 3) => Kind::Handshake,
        (V1, 3) | (V2, 0) => Kind::Retry,
        _ => Kind::Other,
    }
}

/// The type bits of an Initial packet in `version`.
pub fn initial_bits(version: u32) -> u8 {
    if version == V2 { 1 } else { 0 }
}

/// One long-header packet at the start of a datagram's remaining bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongHeader<'a> {
    /// First byte, still protected (the low bits are masked).
    pub first: u8,
    /// Version.
    pub version: u32,
    /// Packet kind.
    pub kind: Kind,
    /// Destination connection id.
    pub dcid: &'a [u8],
    /// Source connection id.
    pub scid: &'a [u8],
    /// Token (Initial only).
    pub token: &'a [u8],
    /// Offset of the packet number from the packet's start (Initial,
    /// 0-RTT, Handshake).
    pub pn_offset: usize,
    /// Bytes of this packet in the datagram (the next coalesced packet
    /// starts after them).
    pub total: usize,
}

/// Reads a variable-length integer (RFC 9000 §16) at `*pos`.
pub fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *buf.get(*pos)?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(*pos..pos.checked_add(len)?)?;
    let mut value = u64::from(first & 0x3f);
    for b in bytes.iter().skip(1) {
        value = (value << 8) | u64::from(*b);
    }
    *pos += len;
    Some(value)
}

/// Parses the long header at the start of `buf`. `None` when it is not a
/// long header or is truncated or inconsistent.
pub fn parse_long_header(buf: &[u8]) -> Option<LongHeader<'_>> {
    let first = *buf.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let version = u32::from_be_bytes(buf.get(1..5)?.try_into().ok()?);
    let mut pos = 5;
    let dcid_len = usize::from(*buf.get(pos)?);
    pos += 1;
    let dcid = buf.get(pos..pos + dcid_len)?;
    pos += dcid_len;
    let scid_len = usize::from(*buf.get(pos)?);
    pos += 1;
    let scid = buf.get(pos..pos + scid_len)?;
    pos += scid_len;
    let kind = if version == 0 || !supported(version) {
        Kind::Other
    } else {
        kind(version, (first >> 4) & 3)
    };
    let mut header = LongHeader {
        first,
        version,
        kind,
        dcid,
        scid,
        token: &[],
        pn_offset: 0,
        total: buf.len(),
    };
    match kind {
        Kind::Retry | Kind::Other => return Some(header),
        Kind::Initial => {
            let token_len = usize::try_from(varint(buf, &mut pos)?).ok()?;
            header.token = buf.get(pos..pos.checked_add(token_len)?)?;
            pos += token_len;
        }
        Kind::ZeroRtt | Kind::Handshake => {}
    }
    if dcid_len > MAX_CID_LEN || scid_len > MAX_CID_LEN {
        return None;
    }
    let length = usize::try_from(varint(buf, &mut pos)?).ok()?;
    header.pn_offset = pos;
    header.total = pos.checked_add(length).filter(|&t| t <= buf.len())?;
    Some(header)
}

/// Output length for `ring`'s HKDF-Expand.
struct OutLen(usize);

impl KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(prk: &Prk, label: &[u8], out: &mut [u8]) -> Option<()> {
    let len = u16::try_from(out.len()).ok()?.to_be_bytes();
    let label_len = [u8::try_from(6 + label.len()).ok()?];
    let info: [&[u8]; 5] = [&len, &label_len, b"tls13 ", label, &[0]];
    prk.expand(&info, OutLen(out.len())).ok()?.fill(out).ok()
}

/// The raw Initial key material of one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// The direction's initial secret.
    pub secret: [u8; 32],
    /// AEAD key.
    pub key: [u8; 16],
    /// AEAD IV.
    pub iv: [u8; 12],
    /// Header protection key.
    pub hp: [u8; 16],
}

impl KeyMaterial {
    /// Initial keys of the client (`client`) or the server for `version`,
    /// from the client's first destination connection id.
    pub fn initial(version: u32, dcid: &[u8], client: bool) -> Option<Self> {
        let salt = if version == V2 { &SALT_V2 } else { &SALT_V1 };
        let initial = Salt::new(HKDF_SHA256, salt).extract(dcid);
        let mut secret = [0u8; 32];
        let label: &[u8] = if client { b"client in" } else { b"server in" };
        expand_label(&initial, label, &mut secret)?;
        let prk = Prk::new_less_safe(HKDF_SHA256, &secret);
        let (key_label, iv_label, hp_label): (&[u8], &[u8], &[u8]) = if version == V2 {
            (b"quicv2 key", b"quicv2 iv", b"quicv2 hp")
        } else {
            (b"quic key", b"quic iv", b"quic hp")
        };
        let mut m = Self {
            secret,
            key: [0; 16],
            iv: [0; 12],
            hp: [0; 16],
        };
        expand_label(&prk, key_label, &mut m.key)?;
        expand_label(&prk, iv_label, &mut m.iv)?;
        expand_label(&prk, hp_label, &mut m.hp)?;
        Some(m)
    }
}

/// Ready-to-use Initial keys of one direction.
pub struct Keys {
    aead: LessSafeKey,
    iv: [u8; 12],
    hp: HeaderProtectionKey,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// Keys from raw material.
    pub fn new(m: &KeyMaterial) -> Option<Self> {
        Some(Self {
            aead: LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &m.key).ok()?),
            iv: m.iv,
            hp: HeaderProtectionKey::new(&AES_128, &m.hp).ok()?,
        })
    }

    /// The client's (`client`) or server's Initial keys for `version` and
    /// the client's first destination connection id.
    pub fn initial(version: u32, dcid: &[u8], client: bool) -> Option<Self> {
        Self::new(&KeyMaterial::initial(version, dcid, client)?)
    }

    fn nonce(&self, pn: u64) -> Nonce {
        let mut nonce = self.iv;
        for (n, p) in nonce.iter_mut().skip(4).zip(pn.to_be_bytes()) {
            *n ^= p;
        }
        Nonce::assume_unique_for_key(nonce)
    }
}

/// The full packet number closest to `largest + 1` whose low `bits` bits
/// are `truncated` (RFC 9000 Appendix A.3).
pub fn decode_packet_number(largest: Option<u64>, truncated: u64, bits: u32) -> u64 {
    let expected = largest.map_or(0, |l| l.saturating_add(1));
    let win = 1u64 << bits;
    let hwin = win / 2;
    let mask = win - 1;
    let candidate = (expected & !mask) | truncated;
    if candidate.saturating_add(hwin) <= expected && candidate < (1u64 << 62) - win {
        candidate + win
    } else if candidate > expected.saturating_add(hwin) && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

/// Removes the protection of the packet `packet` (exactly its
/// `header.total` bytes) and returns its packet number and plaintext
/// payload (the frames). `None` when the packet is too short or does not
/// authenticate with `keys`.
pub fn open(
    keys: &Keys,
    packet: &[u8],
    pn_offset: usize,
    largest: Option<u64>,
) -> Option<(u64, Vec<u8>)> {
    let sample_at = pn_offset.checked_add(4)?;
    let sample = packet.get(sample_at..sample_at + SAMPLE_LEN)?;
    let mask = keys.hp.new_mask(sample).ok()?;
    let first = packet.first()? ^ (mask[0] & 0x0f);
    let pn_len = usize::from(first & 3) + 1;
    let mut header = packet.get(..pn_offset + pn_len)?.to_vec();
    if let Some(b) = header.first_mut() {
        *b = first;
    }
    let mut truncated = 0u64;
    for (i, m) in mask.iter().skip(1).take(pn_len).enumerate() {
        let b = header.get_mut(pn_offset + i)?;
        *b ^= m;
        truncated = (truncated << 8) | u64::from(*b);
    }
    let pn = decode_packet_number(largest, truncated, 8 * pn_len as u32);
    let mut payload = packet.get(pn_offset + pn_len..)?.to_vec();
    if payload.len() < TAG_LEN {
        return None;
    }
    let plain_len = keys
        .aead
        .open_in_place(keys.nonce(pn), Aad::from(&header[..]), &mut payload)
        .ok()?
        .len();
    payload.truncate(plain_len);
    Some((pn, payload))
}

/// Protects an Initial packet: `header` is the unprotected header ending
/// with a packet number of `pn_len` bytes (its length field must count the
/// packet number, `payload` and the 16-byte tag). Used by tests and to
/// make fuzzing seeds; a sensor never encrypts.
pub fn seal(keys: &Keys, header: &[u8], pn: u64, payload: &[u8]) -> Option<Vec<u8>> {
    let pn_len = usize::from(header.first()? & 3) + 1;
    let pn_offset = header.len().checked_sub(pn_len)?;
    let mut body = payload.to_vec();
    keys.aead
        .seal_in_place_append_tag(keys.nonce(pn), Aad::from(header), &mut body)
        .ok()?;
    let mut packet = header.to_vec();
    packet.extend_from_slice(&body);
    let sample_at = pn_offset + 4;
    let mask = keys
        .hp
        .new_mask(packet.get(sample_at..sample_at + SAMPLE_LEN)?)
        .ok()?;
    let first = packet.first_mut()?;
    *first ^= mask[0] & 0x0f;
    for (i, m) in mask.iter().skip(1).take(pn_len).enumerate() {
        *packet.get_mut(pn_offset + i)? ^= m;
    }
    Some(packet)
}
