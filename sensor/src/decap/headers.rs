//! Byte-level parsers for the tunnel headers etherparse does not cover:
//! VXLAN (RFC 7348), GENEVE (RFC 8926), GRE (RFC 2784, 2890, 2637 for PPTP's
//! enhanced GRE), ERSPAN types I, II and III, MPLS and PPP. Pure functions:
//! bytes in, values and the remaining payload out; never panic.

use super::tunnel::{GwlbIds, MAX_GENEVE_OPTIONS};

/// Why a tunnel header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than the header needs.
    Truncated,
    /// A version or flag combination this parser does not understand.
    Unsupported,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    let hi = be32(b, at)?;
    let lo = be32(b, at + 4)?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// A VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vxlan {
    /// The 24-bit VNI.
    pub vni: u32,
    /// True when reserved bits were non-zero (an anomaly, still decoded).
    pub reserved_nonzero: bool,
}

/// Parses VXLAN (8 bytes). The I flag (0x08) must be set; anything else in
/// the flags and reserved fields is tolerated and reported.
pub fn parse_vxlan(b: &[u8]) -> Result<(Vxlan, &[u8]), HeaderError> {
    let hdr = b.get(..8).ok_or(HeaderError::Truncated)?;
    if hdr[0] & 0x08 == 0 {
        return Err(HeaderError::Unsupported);
    }
    let vni = (u32::from(hdr[4]) << 16) | (u32::from(hdr[5]) << 8) | u32::from(hdr[6]);
    let reserved_nonzero = hdr[0] & !0x08 != 0 || hdr[1..4] != [0, 0, 0] || hdr[7] != 0;
    Ok((
        Vxlan {
            vni,
            reserved_nonzero,
        },
        &b[8..],
    ))
}

/// A GENEVE header with its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geneve {
    /// The 24-bit VNI.
    pub vni: u32,
    /// Protocol type of the payload (0x6558 Ethernet, 0x0800, 0x86dd).
    pub protocol: u16,
    /// AWS Gateway Load Balancer options.
    pub gwlb: GwlbIds,
    /// Other options kept (class, type, data length).
    pub options: [(u16, u8, u16); MAX_GENEVE_OPTIONS],
    /// How many of `options` are used.
    pub option_count: u8,
    /// Options beyond `MAX_GENEVE_OPTIONS`, or malformed, that were skipped.
    pub options_dropped: u8,
}

/// The AWS option class of the Gateway Load Balancer.
pub const AWS_GENEVE_CLASS: u16 = 0x0108;

/// Parses GENEVE (RFC 8926 section 3): 8 bytes and `opt_len * 4` of options.
pub fn parse_geneve(b: &[u8]) -> Result<(Geneve, &[u8]), HeaderError> {
    let hdr = b.get(..8).ok_or(HeaderError::Truncated)?;
    if hdr[0] >> 6 != 0 {
        return Err(HeaderError::Unsupported);
    }
    let opt_len = usize::from(hdr[0] & 0x3f) * 4;
    let protocol = u16::from_be_bytes([hdr[2], hdr[3]]);
    let vni = (u32::from(hdr[4]) << 16) | (u32::from(hdr[5]) << 8) | u32::from(hdr[6]);
    let opts = b.get(8..8 + opt_len).ok_or(HeaderError::Truncated)?;
    let mut g = Geneve {
        vni,
        protocol,
        gwlb: GwlbIds::default(),
        options: [(0, 0, 0); MAX_GENEVE_OPTIONS],
        option_count: 0,
        options_dropped: 0,
    };
    match aws_gwlb_options(opts) {
        Some(gwlb) => g.gwlb = gwlb,
        None => parse_geneve_options(opts, &mut g),
    }
    Ok((g, &b[8 + opt_len..]))
}

/// The three options of a Gateway Load Balancer exactly as it sends them
/// (endpoint id, attachment id, flow cookie, in that order, nothing else):
/// what [`parse_geneve_options`] reads from them, in a few comparisons.
fn aws_gwlb_options(opts: &[u8]) -> Option<GwlbIds> {
    let o: &[u8; 32] = opts.try_into().ok()?;
    let [c0, c1] = AWS_GENEVE_CLASS.to_be_bytes();
    if o[..4] != [c0, c1, 1, 2] || o[12..16] != [c0, c1, 2, 2] || o[24..28] != [c0, c1, 3, 1] {
        return None;
    }
    Some(GwlbIds {
        endpoint_id: be64(o, 4),
        attachment_id: be64(o, 16),
        flow_cookie: be32(o, 28),
    })
}

/// Reads GENEVE options one by one into `g`.
fn parse_geneve_options(opts: &[u8], g: &mut Geneve) {
    let mut at = 0;
    while at + 4 <= opts.len() {
        let class = u16::from_be_bytes([opts[at], opts[at + 1]]);
        let typ = opts[at + 2];
        let data_len = usize::from(opts[at + 3] & 0x1f) * 4;
        let data = &opts[(at + 4).min(opts.len())..(at + 4 + data_len).min(opts.len())];
        if data.len() < data_len {
            g.options_dropped = g.options_dropped.saturating_add(1);
            break;
        }
        match (class, typ & 0x7f, data_len) {
            (AWS_GENEVE_CLASS, 1, 8) => g.gwlb.endpoint_id = be64(data, 0),
            (AWS_GENEVE_CLASS, 2, 8) => g.gwlb.attachment_id = be64(data, 0),
            (AWS_GENEVE_CLASS, 3, 4) => g.gwlb.flow_cookie = be32(data, 0),
            _ => {
                if usize::from(g.option_count) < MAX_GENEVE_OPTIONS {
                    // data_len is at most 124, so it fits in u16.
                    g.options[usize::from(g.option_count)] = (class, typ, data_len as u16);
                    g.option_count += 1;
                } else {
                    g.options_dropped = g.options_dropped.saturating_add(1);
                }
            }
        }
        at += 4 + data_len;
    }
}

/// A GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gre {
    /// Protocol type of the payload.
    pub protocol: u16,
    /// Key (version 0) when the K bit is set.
    pub key: Option<u32>,
    /// True when the S (sequence number) bit is set.
    pub has_sequence: bool,
    /// GRE version: 0, or 1 for PPTP's enhanced GRE.
    pub version: u8,
}

/// Parses GRE versions 0 and 1 (RFC 2784/2890; RFC 2637 section 4.1).
/// Source routing (the R bit of RFC 1701) is refused.
pub fn parse_gre(b: &[u8]) -> Result<(Gre, &[u8]), HeaderError> {
    let flags = be16(b, 0).ok_or(HeaderError::Truncated)?;
    let protocol = be16(b, 2).ok_or(HeaderError::Truncated)?;
    let version = (flags & 0x7) as u8;
    let checksum = flags & 0x8000 != 0;
    let routing = flags & 0x4000 != 0;
    let key_bit = flags & 0x2000 != 0;
    let seq = flags & 0x1000 != 0;
    if routing || version > 1 {
        return Err(HeaderError::Unsupported);
    }
    let mut at = 4;
    if checksum {
        at += 4;
    }
    let mut key = None;
    if key_bit {
        key = Some(be32(b, at).ok_or(HeaderError::Truncated)?);
        at += 4;
    }
    if seq {
        at += 4;
    }
    // Enhanced GRE (PPTP) has an acknowledgement number when the A bit is set.
    if version == 1 && flags & 0x0080 != 0 {
        at += 4;
    }
    let payload = b.get(at..).ok_or(HeaderError::Truncated)?;
    Ok((
        Gre {
            protocol,
            key: if version == 0 { key } else { None },
            has_sequence: seq,
            version,
        },
        payload,
    ))
}

/// An ERSPAN type II or III header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erspan {
    /// 2 or 3 (the ERSPAN "type"; the header's version field is 1 or 2).
    pub erspan_type: u8,
    /// The original VLAN of the mirrored frame.
    pub vlan: u16,
    /// Mirror session id (10 bits).
    pub session_id: u16,
}

/// Parses ERSPAN type II (8-byte header, version 1) or type III (12 bytes,
/// version 2, plus an 8-byte platform sub-header when the O bit is set).
/// The payload is an Ethernet frame.
pub fn parse_erspan(b: &[u8]) -> Result<(Erspan, &[u8]), HeaderError> {
    let w0 = be16(b, 0).ok_or(HeaderError::Truncated)?;
    let w1 = be16(b, 2).ok_or(HeaderError::Truncated)?;
    let version = (w0 >> 12) as u8;
    let vlan = w0 & 0x0fff;
    let session_id = w1 & 0x03ff;
    let (erspan_type, len) = match version {
        1 => (2, 8),
        2 => {
            let last = *b.get(11).ok_or(HeaderError::Truncated)?;
            (3, if last & 0x01 != 0 { 20 } else { 12 })
        }
        _ => return Err(HeaderError::Unsupported),
    };
    let payload = b.get(len..).ok_or(HeaderError::Truncated)?;
    Ok((
        Erspan {
            erspan_type,
            vlan,
            session_id,
        },
        payload,
    ))
}

/// What follows an MPLS label stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MplsPayload {
    /// IPv4 or IPv6 (told apart by the version nibble).
    Ip,
    /// An Ethernet pseudowire (after a zero control word).
    Ethernet,
}

/// Reads one MPLS label stack entry: (label, bottom of stack, rest).
pub fn parse_mpls_entry(b: &[u8]) -> Result<(u32, bool, &[u8]), HeaderError> {
    let e = be32(b, 0).ok_or(HeaderError::Truncated)?;
    Ok((e >> 12, e & 0x100 != 0, &b[4..]))
}

/// Guesses what follows the bottom of an MPLS stack, as routers do not say.
pub fn mpls_payload_kind(b: &[u8]) -> (MplsPayload, &[u8]) {
    match b.first().map(|v| v >> 4) {
        Some(4) | Some(6) => (MplsPayload::Ip, b),
        // RFC 4385 control word (first nibble 0) then Ethernet.
        Some(0) if b.len() >= 4 => (MplsPayload::Ethernet, &b[4..]),
        _ => (MplsPayload::Ethernet, b),
    }
}

/// Reads a PPP header (with or without the 0xff03 address and control
/// bytes, and with a one- or two-byte protocol field) and returns the
/// protocol and payload.
pub fn parse_ppp(b: &[u8]) -> Result<(u16, &[u8]), HeaderError> {
    let mut at = 0;
    if b.len() >= 2 && b[0] == 0xff && b[1] == 0x03 {
        at = 2;
    }
    let first = *b.get(at).ok_or(HeaderError::Truncated)?;
    // RFC 1661 section 2: an odd first byte is a compressed one-byte protocol.
    if first & 1 == 1 {
        return Ok((u16::from(first), &b[at + 1..]));
    }
    let proto = be16(b, at).ok_or(HeaderError::Truncated)?;
    Ok((proto, &b[at + 2..]))
}

/// Strips Teredo's optional authentication and origin indication headers
/// (RFC 4380 section 5.1.1) and returns the IPv6 packet, which must look
/// like one (version 6, payload length matching the bytes) so that ordinary
/// traffic on UDP 3544 is not mistaken for a tunnel.
pub fn parse_teredo(b: &[u8]) -> Result<&[u8], HeaderError> {
    let mut rest = b;
    // Authentication: 0x0001, id length, auth length, id, auth, nonce (8), confirmation (1).
    if rest.len() >= 4 && rest[0] == 0 && rest[1] == 1 {
        let skip = 4 + usize::from(rest[2]) + usize::from(rest[3]) + 9;
        rest = rest.get(skip..).ok_or(HeaderError::Truncated)?;
    }
    // Origin indication: 0x0000, port (2), address (4).
    if rest.len() >= 8 && rest[0] == 0 && rest[1] == 0 {
        rest = &rest[8..];
    }
    let hdr = rest.get(..40).ok_or(HeaderError::Truncated)?;
    let payload_len = usize::from(u16::from_be_bytes([hdr[4], hdr[5]]));
    if hdr[0] >> 4 != 6 || 40 + payload_len > rest.len() {
        return Err(HeaderError::Unsupported);
    }
    Ok(rest)
}

/// True for a Teredo bubble: an IPv6 header with no next header and no
/// payload, which only keeps a NAT mapping open.
pub fn is_teredo_bubble(ipv6: &[u8]) -> bool {
    ipv6.len() >= 40 && ipv6[6] == 59 && ipv6[4] == 0 && ipv6[5] == 0
}

/// True when either address of an IPv6 header is a Teredo address
/// (2001:0000::/32): what lets Teredo be recognised on a relay's arbitrary
/// UDP port.
pub fn has_teredo_address(ipv6: &[u8]) -> bool {
    let teredo = |a: &[u8]| a.get(..4) == Some(&[0x20, 0x01, 0x00, 0x00][..]);
    teredo(ipv6.get(8..24).unwrap_or(&[])) || teredo(ipv6.get(24..40).unwrap_or(&[]))
}

/// Parses an AYIYA header (Anything In Anything, draft-massar-v6ops-ayiya):
/// returns the next-header protocol (4 or 41) and the payload. Only the
/// forward opcode carries packets.
pub fn parse_ayiya(b: &[u8]) -> Result<(u8, &[u8]), HeaderError> {
    let hdr = b.get(..8).ok_or(HeaderError::Truncated)?;
    let id_len = 1usize << (hdr[0] >> 4);
    let sig_len = usize::from(hdr[1] >> 4) * 4;
    let opcode = hdr[2] & 0x0f;
    let next = hdr[3];
    if opcode != 1 || !matches!(next, 4 | 41) {
        return Err(HeaderError::Unsupported);
    }
    let payload = b
        .get(8 + id_len + sig_len..)
        .ok_or(HeaderError::Truncated)?;
    Ok((next, payload))
}

/// Parses a GTPv1-U header (3GPP TS 29.281) of a G-PDU and its extension
/// headers: returns the TEID and the user IP packet.
pub fn parse_gtp_u(b: &[u8]) -> Result<(u32, &[u8]), HeaderError> {
    let hdr = b.get(..8).ok_or(HeaderError::Truncated)?;
    let version = hdr[0] >> 5;
    let protocol_type = hdr[0] & 0x10 != 0;
    if version != 1 || !protocol_type || hdr[1] != 0xff {
        return Err(HeaderError::Unsupported);
    }
    let teid = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    let mut at = 8;
    if hdr[0] & 0x07 != 0 {
        // Sequence number (2), N-PDU number (1), next extension type (1).
        let mut next = *b.get(11).ok_or(HeaderError::Truncated)?;
        at = 12;
        // Each extension: length in 4-byte units, content, next type.
        let mut hops = 0;
        while next != 0 {
            hops += 1;
            let units = usize::from(*b.get(at).ok_or(HeaderError::Truncated)?);
            if units == 0 || hops > 16 {
                return Err(HeaderError::Unsupported);
            }
            at += units * 4;
            next = *b.get(at - 1).ok_or(HeaderError::Truncated)?;
        }
    }
    let payload = b.get(at..).ok_or(HeaderError::Truncated)?;
    match payload.first().map(|v| v >> 4) {
        Some(4) | Some(6) => Ok((teid, payload)),
        _ => Err(HeaderError::Unsupported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_reads_vni_and_needs_i_flag() {
        let pkt = [0x08, 0, 0, 0, 0x54, 0xfa, 0x11, 0, 0xaa];
        let (v, rest) = parse_vxlan(&pkt).unwrap();
        assert_eq!(v.vni, 5569041);
        assert!(!v.reserved_nonzero);
        assert_eq!(rest, &[0xaa]);
        assert_eq!(
            parse_vxlan(&[0, 0, 0, 0, 0, 0, 1, 0]),
            Err(HeaderError::Unsupported)
        );
        assert_eq!(parse_vxlan(&[0x08, 0]), Err(HeaderError::Truncated));
    }

    #[test]
    fn geneve_reads_the_three_aws_options() {
        let mut p = vec![0x08, 0x00, 0x08, 0x00, 0, 0, 7, 0];
        p[0] = 8; // 8 words = 32 bytes of options: 12 + 12 + 8
        p.extend_from_slice(&[0x01, 0x08, 0x01, 0x02, 1, 2, 3, 4, 5, 6, 7, 8]);
        p.extend_from_slice(&[0x01, 0x08, 0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 9]);
        p.extend_from_slice(&[0x01, 0x08, 0x03, 0x01, 0, 0, 1, 0]);
        p.push(0x45);
        let (g, rest) = parse_geneve(&p).unwrap();
        assert_eq!(g.vni, 7);
        assert_eq!(g.protocol, 0x0800);
        assert_eq!(g.gwlb.endpoint_id, Some(0x0102_0304_0506_0708));
        assert_eq!(g.gwlb.attachment_id, Some(9));
        assert_eq!(g.gwlb.flow_cookie, Some(256));
        assert_eq!(rest, &[0x45]);
    }

    #[test]
    fn geneve_with_lying_option_length_does_not_panic() {
        let p = [0x02, 0, 0x65, 0x58, 0, 0, 1, 0, 0, 1, 2, 0x1f, 0, 0, 0, 0];
        let (g, _) = parse_geneve(&p).unwrap();
        assert_eq!(g.options_dropped, 1);
        assert_eq!(
            parse_geneve(&[0x3f, 0, 0, 0, 0, 0, 0, 0]).err(),
            Some(HeaderError::Truncated)
        );
    }

    #[test]
    fn gre_with_key_and_sequence() {
        let p = [0x30, 0x00, 0x88, 0xbe, 0, 0, 0, 5, 0, 0, 0, 1, 0xee];
        let (g, rest) = parse_gre(&p).unwrap();
        assert_eq!(g.protocol, 0x88be);
        assert_eq!(g.key, Some(5));
        assert!(g.has_sequence);
        assert_eq!(rest, &[0xee]);
    }

    #[test]
    fn erspan_types() {
        let ii = [0x10, 0x0a, 0x00, 0x64, 0, 0, 0, 0, 0xee];
        let (e, rest) = parse_erspan(&ii).unwrap();
        assert_eq!((e.erspan_type, e.vlan, e.session_id), (2, 10, 100));
        assert_eq!(rest, &[0xee]);
        let iii = [0x20, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0xee];
        let (e, rest) = parse_erspan(&iii).unwrap();
        assert_eq!(e.erspan_type, 3);
        assert_eq!(rest, &[0xee]);
    }

    #[test]
    fn teredo_with_origin_indication() {
        let mut p = vec![0, 0, 0x12, 0x34, 1, 2, 3, 4];
        let mut v6 = vec![0x60, 0, 0, 0, 0, 2, 59, 64];
        v6.extend_from_slice(&[0; 32]);
        v6.extend_from_slice(&[9, 9]);
        p.extend_from_slice(&v6);
        assert_eq!(parse_teredo(&p).unwrap(), &v6[..]);
        assert_eq!(
            parse_teredo(b"GET / HTTP/1.1\r\n").err(),
            Some(HeaderError::Truncated)
        );
        let mut not_v6 = vec![0x45; 60];
        not_v6[0] = 0x45;
        assert_eq!(parse_teredo(&not_v6).err(), Some(HeaderError::Unsupported));
    }

    #[test]
    fn ayiya_forward_and_others() {
        // id length 2^1 = 2, signature 0, opcode forward, next header IPv6.
        let p = [0x11, 0x00, 0x01, 41, 0, 0, 0, 0, 0xaa, 0xbb, 0x60];
        assert_eq!(parse_ayiya(&p).unwrap(), (41, &[0x60u8][..]));
        let echo = [0x11, 0x00, 0x02, 41, 0, 0, 0, 0];
        assert_eq!(parse_ayiya(&echo).err(), Some(HeaderError::Unsupported));
    }

    #[test]
    fn gtp_u_with_extension_header() {
        let mut p = vec![0x34, 0xff, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0x85];
        p.extend_from_slice(&[1, 0x10, 0x01, 0x00]); // one 4-byte extension, then none
        p.extend_from_slice(&[0x45, 0, 0, 20]);
        let (teid, ip) = parse_gtp_u(&p).unwrap();
        assert_eq!(teid, 7);
        assert_eq!(ip[0], 0x45);
        let echo = [0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0];
        assert_eq!(parse_gtp_u(&echo).err(), Some(HeaderError::Unsupported));
        let looping = [0x34, 0xff, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0x85, 0, 0, 0, 0];
        assert!(parse_gtp_u(&looping).is_err());
    }

    #[test]
    fn ppp_protocol_forms() {
        assert_eq!(
            parse_ppp(&[0xff, 0x03, 0x00, 0x21, 1]).unwrap(),
            (0x21, &[1u8][..])
        );
        assert_eq!(parse_ppp(&[0x21, 1]).unwrap(), (0x21, &[1u8][..]));
        assert_eq!(parse_ppp(&[0x00, 0x57]).unwrap(), (0x57, &[][..]));
    }

    /// The options of a GWLB datagram, as AWS lays them out.
    fn aws_options() -> Vec<u8> {
        let [c0, c1] = AWS_GENEVE_CLASS.to_be_bytes();
        let mut o = vec![c0, c1, 1, 2];
        o.extend_from_slice(&0x0e5a_0000_0000_0001u64.to_be_bytes());
        o.extend_from_slice(&[c0, c1, 2, 2]);
        o.extend_from_slice(&0x0a77_0000_0000_0002u64.to_be_bytes());
        o.extend_from_slice(&[c0, c1, 3, 1]);
        o.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        o
    }

    fn by_the_loop(opts: &[u8]) -> Geneve {
        let mut g = Geneve {
            vni: 0,
            protocol: 0,
            gwlb: GwlbIds::default(),
            options: [(0, 0, 0); MAX_GENEVE_OPTIONS],
            option_count: 0,
            options_dropped: 0,
        };
        parse_geneve_options(opts, &mut g);
        g
    }

    #[test]
    fn the_aws_layout_is_read_at_once_as_the_loop_reads_it() {
        let o = aws_options();
        let ids = aws_gwlb_options(&o).expect("the AWS layout");
        assert_eq!(ids.flow_cookie, Some(0x1234_5678));
        let loop_read = by_the_loop(&o);
        assert_eq!(ids, loop_read.gwlb);
        assert_eq!((loop_read.option_count, loop_read.options_dropped), (0, 0));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        /// Whenever the one-step reading accepts the options (AWS's layout,
        /// bytes changed or cut), it gives what the loop gives, and the
        /// loop finds no other option.
        #[test]
        fn the_aws_layout_reading_agrees_with_the_loop(
            edits in proptest::collection::vec((0usize..32, proptest::prelude::any::<u8>()), 0..3),
            len in 0usize..40,
        ) {
            let mut o = aws_options();
            for (at, v) in edits {
                o[at] = v;
            }
            o.resize(len, 0);
            if let Some(ids) = aws_gwlb_options(&o) {
                let g = by_the_loop(&o);
                proptest::prop_assert_eq!(ids, g.gwlb);
                proptest::prop_assert_eq!((g.option_count, g.options_dropped), (0, 0));
            }
        }
    }
}
