//! QUIC: Initial keys and packet protection against the RFC 9001 and RFC
//! 9369 Appendix A vectors, CRYPTO reassembly across packets in any order,
//! Retry key changes, caps, and the records.

use super::frames::{CryptoStream, Refused, walk};
use super::initial::{KeyMaterial, Keys, V1, V2, decode_packet_number, open, seal};
use super::*;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The client's first DCID in both RFCs' examples.
const RFC_DCID: &str = "8394c8f03e515708";

/// The CRYPTO frame of the RFC 9001 A.2 / RFC 9369 A.2 client Initial
/// (a ClientHello for example.com, ALPN "alpn").
const RFC_CRYPTO_FRAME: &str = "
060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868
04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578
616d706c652e636f6dff01000100000a00080006001d00170018001000070005
04616c706e000500050100000000003300260024001d00209370b2c9caa47fba
baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400
0d0010000e0403050306030203080408050806002d00020101001c0002400100
3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000
75300901100f088394c8f03e51570806048000ffff";

/// The RFC payload: the CRYPTO frame, then PADDING to 1162 bytes.
fn rfc_payload() -> Vec<u8> {
    let mut p = unhex(RFC_CRYPTO_FRAME);
    p.resize(1162, 0);
    p
}

/// The ClientHello handshake message of the RFC examples.
fn rfc_client_hello() -> Vec<u8> {
    // CRYPTO frame: type 06, offset 00, length 40f1, then the message.
    unhex(RFC_CRYPTO_FRAME)[4..].to_vec()
}

#[test]
fn v1_initial_keys_match_rfc9001_a1() {
    let dcid = unhex(RFC_DCID);
    let c = KeyMaterial::initial(V1, &dcid, true).unwrap();
    assert_eq!(
        c.secret.to_vec(),
        unhex("c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea")
    );
    assert_eq!(c.key.to_vec(), unhex("1f369613dd76d5467730efcbe3b1a22d"));
    assert_eq!(c.iv.to_vec(), unhex("fa044b2f42a3fd3b46fb255c"));
    assert_eq!(c.hp.to_vec(), unhex("9f50449e04a0e810283a1e9933adedd2"));
    let s = KeyMaterial::initial(V1, &dcid, false).unwrap();
    assert_eq!(s.key.to_vec(), unhex("cf3a5331653c364c88f0f379b6067e37"));
    assert_eq!(s.iv.to_vec(), unhex("0ac1493ca1905853b0bba03e"));
    assert_eq!(s.hp.to_vec(), unhex("c206b8d9b9f0f37644430b490eeaa314"));
}

#[test]
fn v2_initial_keys_match_rfc9369_a1() {
    let dcid = unhex(RFC_DCID);
    let c = KeyMaterial::initial(V2, &dcid, true).unwrap();
    assert_eq!(
        c.secret.to_vec(),
        unhex("14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b")
    );
    assert_eq!(c.key.to_vec(), unhex("8b1a0bc121284290a29e0971b5cd045d"));
    assert_eq!(c.iv.to_vec(), unhex("91f73e2351d8fa91660e909f"));
    assert_eq!(c.hp.to_vec(), unhex("45b95e15235d6f45a6b19cbcb0294ba9"));
    let s = KeyMaterial::initial(V2, &dcid, false).unwrap();
    assert_eq!(s.key.to_vec(), unhex("82db637861d55e1d011f19ea71d5d2a7"));
    assert_eq!(s.iv.to_vec(), unhex("dd13c276499c0249d3310652"));
    assert_eq!(s.hp.to_vec(), unhex("edf6d05c83121201b436e16877593c3a"));
}

/// Protects the RFC payload under `header` and checks the result against
/// the RFC's protected packet (its first 32 bytes and its 16-byte tag,
/// which authenticates every byte before it), then opens it again.
fn rfc_vector(version: u32, header: &str, protected_prefix: &str, protected_tag: &str) -> Vec<u8> {
    let keys = Keys::initial(version, &unhex(RFC_DCID), true).unwrap();
    let packet = seal(&keys, &unhex(header), 2, &rfc_payload()).unwrap();
    assert_eq!(packet.len(), 1200);
    assert_eq!(packet[..32], unhex(protected_prefix)[..]);
    assert_eq!(packet[1200 - 16..], unhex(protected_tag)[..]);
    let h = initial::parse_long_header(&packet).unwrap();
    assert_eq!(h.kind, Kind::Initial);
    assert_eq!(h.version, version);
    assert_eq!(h.dcid, &unhex(RFC_DCID)[..]);
    assert_eq!(h.pn_offset, 18);
    assert_eq!(h.total, 1200);
    let (pn, plain) = open(&keys, &packet, h.pn_offset, None).unwrap();
    assert_eq!(pn, 2);
    assert_eq!(plain, rfc_payload());
    // One flipped bit anywhere and it does not authenticate.
    let mut bad = packet.clone();
    bad[600] ^= 1;
    assert!(open(&keys, &bad, h.pn_offset, None).is_none());
    packet
}

fn rfc9001_packet() -> Vec<u8> {
    rfc_vector(
        V1,
        "c300000001088394c8f03e5157080000449e00000002",
        "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11",
        "e221af44860018ab0856972e194cd934",
    )
}

fn rfc9369_packet() -> Vec<u8> {
    rfc_vector(
        V2,
        "d36b3343cf088394c8f03e5157080000449e00000002",
        "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485",
        "a18b2faa745b6fe189cf772a9f84cbfc",
    )
}

#[test]
fn v1_client_initial_matches_rfc9001_a2() {
    rfc9001_packet();
}

#[test]
fn v2_client_initial_matches_rfc9369_a2() {
    rfc9369_packet();
}

struct Run {
    records: Vec<QuicRecord>,
    anomalies: Vec<&'static str>,
    wants: Vec<Want>,
}

fn run(limits: Limits, datagrams: &[(Direction, Vec<u8>)]) -> Run {
    let mut d = Quic::new(limits);
    let (mut out, mut anomalies, mut wants) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (dir, dgram)) in datagrams.iter().enumerate() {
        let mut cx = Context {
            ts_us: 10 + i as i64,
            out: &mut out,
            anomalies: &mut anomalies,
        };
        let want = d.data(&mut cx, *dir, dgram);
        wants.push(want);
        if want == Want::Done {
            break;
        }
    }
    let mut cx = Context {
        ts_us: 99,
        out: &mut out,
        anomalies: &mut anomalies,
    };
    d.close(&mut cx);
    let records = out
        .into_iter()
        .map(|e| {
            assert_eq!(e.ts_us, 10, "the record starts at the first datagram");
            match e.event {
                AppEvent::Quic(r) => r,
                other => panic!("not quic: {other:?}"),
            }
        })
        .collect();
    Run {
        records,
        anomalies,
        wants,
    }
}

fn client(d: Vec<u8>) -> (Direction, Vec<u8>) {
    (Direction::Originator, d)
}

#[test]
fn rfc_packets_give_the_client_hello_fields() {
    for (packet, version) in [(rfc9001_packet(), "1"), (rfc9369_packet(), "2")] {
        let r = run(Limits::default(), &[client(packet)]);
        assert_eq!(r.wants, vec![Want::Done]);
        assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
        assert_eq!(r.records.len(), 1);
        let rec = &r.records[0];
        assert_eq!(rec.version.as_deref(), Some(version));
        assert_eq!(rec.sni.as_deref(), Some("example.com"));
        assert_eq!(rec.alpn, vec!["alpn".to_owned()]);
        assert_eq!(rec.dcid.as_deref(), Some(RFC_DCID));
        assert_eq!(rec.scid.as_deref(), Some(""));
        let ja4 = rec.ja4.as_deref().unwrap();
        // QUIC, TLS 1.3, SNI present, 2 ciphers, 11 extensions, ALPN "alpn".
        assert!(ja4.starts_with("q13d0211an_"), "{ja4}");
        assert_eq!(rec.ja3.as_deref().map(str::len), Some(32));
    }
}

/// A client Initial of `version` carrying `frames` (padded to 1162 bytes
/// of payload), packet number `pn`, protected with the keys of `dcid`.
fn initial_packet(version: u32, dcid: &[u8], scid: &[u8], pn: u32, frames: &[u8]) -> Vec<u8> {
    let mut payload = frames.to_vec();
    if payload.len() < 1162 {
        payload.resize(1162, 0);
    }
    let mut header = vec![0xc3 | (initial::initial_bits(version) << 4)];
    header.extend_from_slice(&version.to_be_bytes());
    header.push(dcid.len() as u8);
    header.extend_from_slice(dcid);
    header.push(scid.len() as u8);
    header.extend_from_slice(scid);
    header.push(0); // no token
    let length = (4 + payload.len() + 16) as u16;
    header.extend_from_slice(&(0x4000 | length).to_be_bytes());
    header.extend_from_slice(&pn.to_be_bytes());
    let keys = Keys::initial(version, dcid, true).unwrap();
    seal(&keys, &header, u64::from(pn), &payload).unwrap()
}

fn crypto_frame(offset: usize, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x06];
    f.extend_from_slice(&(0x8000_0000u32 | offset as u32).to_be_bytes());
    f.extend_from_slice(&(0x4000 | data.len() as u16).to_be_bytes());
    f.extend_from_slice(data);
    f
}

/// The RFC ClientHello grown by a padding extension (type 21) of `pad`
/// bytes, as a post-quantum key share grows it past one datagram.
fn big_client_hello(pad: usize) -> Vec<u8> {
    let mut m = rfc_client_hello();
    let ext_len_at = 4 + 2 + 32 + 1 + 2 + 4 + 2;
    let ext_len = u16::from_be_bytes([m[ext_len_at], m[ext_len_at + 1]]) as usize;
    assert_eq!(
        ext_len_at + 2 + ext_len,
        m.len(),
        "extensions end the message"
    );
    m.extend_from_slice(&21u16.to_be_bytes());
    m.extend_from_slice(&(pad as u16).to_be_bytes());
    m.extend(std::iter::repeat_n(0u8, pad));
    let new_ext = (ext_len + 4 + pad) as u16;
    m[ext_len_at..ext_len_at + 2].copy_from_slice(&new_ext.to_be_bytes());
    let body = (m.len() - 4) as u32;
    m[1..4].copy_from_slice(&body.to_be_bytes()[1..]);
    m
}

#[test]
fn client_hello_split_over_two_initials_in_reverse_order_is_recovered() {
    let dcid = unhex("0011223344556677");
    let scid = unhex("a1a2a3a4");
    let hello = big_client_hello(1500);
    let (a, b) = hello.split_at(1000);
    let first = initial_packet(V1, &dcid, &scid, 0, &crypto_frame(0, a));
    let second = initial_packet(V1, &dcid, &scid, 1, &crypto_frame(1000, b));
    let in_order = run(
        Limits::default(),
        &[client(first.clone()), client(second.clone())],
    );
    let reversed = run(Limits::default(), &[client(second), client(first)]);
    for r in [&in_order, &reversed] {
        assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
        assert_eq!(r.wants, vec![Want::More, Want::Done]);
        assert_eq!(r.records.len(), 1);
        assert_eq!(r.records[0].sni.as_deref(), Some("example.com"));
    }
    // The record names the connection ids of the first Initial seen.
    assert_eq!(
        in_order.records[0].dcid.as_deref(),
        Some("0011223344556677")
    );
    assert_eq!(in_order.records[0].scid.as_deref(), Some("a1a2a3a4"));
    assert_eq!(in_order.records[0].ja4, reversed.records[0].ja4);
    assert_eq!(in_order.records[0].ja3, reversed.records[0].ja3);
}

#[test]
fn shuffled_crypto_frames_within_and_across_packets_are_recovered() {
    // Chrome's "chaos protection": several CRYPTO frames out of order in
    // one packet, with PING and PADDING between them, and a retransmitted
    // overlap in a v2 connection.
    let dcid = unhex("c0ffee");
    let hello = big_client_hello(2000);
    let pieces: Vec<(usize, &[u8])> = vec![
        (0, &hello[..300]),
        (300, &hello[300..1100]),
        (1100, &hello[1100..1900]),
        (1900, &hello[1900..]),
    ];
    let mut p1 = crypto_frame(pieces[1].0, pieces[1].1);
    p1.push(0x01); // PING
    p1.extend(crypto_frame(pieces[0].0, pieces[0].1));
    let mut p2 = crypto_frame(pieces[3].0, pieces[3].1);
    p2.extend([0, 0, 0]); // PADDING
    p2.extend(crypto_frame(200, &hello[200..400])); // overlap, same bytes
    let p3 = crypto_frame(pieces[2].0, pieces[2].1);
    let r = run(
        Limits::default(),
        &[
            client(initial_packet(V2, &dcid, &[], 2, &p2)),
            client(initial_packet(V2, &dcid, &[], 0, &p1)),
            client(initial_packet(V2, &dcid, &[], 1, &p3)),
        ],
    );
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert_eq!(r.records.len(), 1);
    assert_eq!(r.records[0].version.as_deref(), Some("2"));
    assert_eq!(r.records[0].sni.as_deref(), Some("example.com"));
}

#[test]
fn keys_of_a_new_dcid_after_retry_are_derived() {
    // Before the Retry: the first half of a hello with DCID A; after it,
    // the whole hello again with the DCID the Retry chose.
    let hello = big_client_hello(100);
    let a = unhex("0a0a0a0a0a0a0a0a");
    let b = unhex("0b0b0b0b");
    let r = run(
        Limits::default(),
        &[
            client(initial_packet(
                V1,
                &a,
                &[],
                0,
                &crypto_frame(0, &hello[..100]),
            )),
            client(initial_packet(V1, &b, &[], 1, &crypto_frame(0, &hello))),
        ],
    );
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert_eq!(r.records[0].sni.as_deref(), Some("example.com"));
    assert_eq!(r.records[0].dcid.as_deref(), Some("0a0a0a0a0a0a0a0a"));
}

#[test]
fn incomplete_hello_is_reported_at_close_and_undecryptable_packets_counted() {
    let dcid = unhex("0102030405060708");
    let hello = big_client_hello(0);
    let mut garbled = initial_packet(V1, &dcid, &[], 1, &crypto_frame(0, &hello));
    let last = garbled.len() - 1;
    garbled[last] ^= 0xff;
    let r = run(
        Limits::default(),
        &[
            client(initial_packet(
                V1,
                &dcid,
                &[],
                0,
                &crypto_frame(0, &hello[..50]),
            )),
            client(garbled),
            // The server's packets are not read.
            (Direction::Responder, vec![0xc0; 40]),
        ],
    );
    assert_eq!(r.anomalies, vec!["decrypt_failed"]);
    assert_eq!(r.records.len(), 1);
    assert_eq!(r.records[0].version.as_deref(), Some("1"));
    assert_eq!(r.records[0].sni, None);
    assert_eq!(r.records[0].ja4, None);
}

#[test]
fn a_hello_longer_than_the_buffer_cap_is_given_up() {
    let limits = Limits {
        max_pending_transactions: 4,
        max_buffered_bytes: 1000,
    };
    let dcid = unhex("0102030405060708");
    let hello = big_client_hello(1500);
    let r = run(
        limits,
        &[client(initial_packet(
            V1,
            &dcid,
            &[],
            0,
            &crypto_frame(0, &hello[..900]),
        ))],
    );
    assert_eq!(r.anomalies, vec!["client_hello_too_long"]);
    assert_eq!(r.wants, vec![Want::Done]);
    // A fragment far beyond the cap is refused before any allocation.
    let r = run(
        limits,
        &[client(initial_packet(
            V1,
            &dcid,
            &[],
            0,
            &crypto_frame(1 << 29, b"x"),
        ))],
    );
    assert_eq!(r.anomalies, vec!["crypto_beyond_limit"]);
}

#[test]
fn crypto_stream_keeps_the_first_copy_and_bounds_fragments() {
    let mut s = CryptoStream::default();
    assert_eq!(s.insert(4, b"efgh", 100), Ok(false));
    assert_eq!(s.contiguous(), b"");
    assert_eq!(s.insert(2, b"XXef", 100), Ok(false));
    assert_eq!(s.insert(0, b"ab", 100), Ok(false));
    assert_eq!(s.contiguous(), b"abXXefgh");
    // A differing retransmission: flagged, first copy kept.
    assert_eq!(s.insert(1, b"bYX", 100), Ok(true));
    assert_eq!(s.contiguous(), b"abXXefgh");
    assert_eq!(s.insert(99, b"zz", 100), Err(Refused::BeyondLimit));
    let mut s = CryptoStream::default();
    for i in 0..frames::MAX_FRAGMENTS {
        assert_eq!(s.insert(10 + 2 * i as u64, b"x", 1000), Ok(false));
    }
    assert_eq!(s.insert(500, b"x", 1000), Err(Refused::TooManyFragments));
    // Filling a hole between held fragments is always possible.
    assert_eq!(s.insert(11, b"y", 1000), Ok(false));
}

#[test]
fn frames_not_allowed_in_initial_stop_the_walk() {
    let mut seen = Vec::new();
    let mut payload = vec![0x02, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00]; // ACK, 1 range
    payload.extend(crypto_frame(0, b"hi"));
    payload.push(0x08); // STREAM: not in Initial packets
    assert_eq!(
        walk(&payload, |o, d| seen.push((o, d.to_vec()))),
        Err("unexpected_frame")
    );
    assert_eq!(seen, vec![(0, b"hi".to_vec())]);
    assert_eq!(
        walk(&[0x06, 0x00, 0x05, b'a'], |_, _| ()),
        Err("truncated_frame")
    );
    assert_eq!(
        walk(&[0x1c, 0x0a, 0x06, 0x02, b'n', b'o'], |_, _| ()),
        Ok(())
    );
}

#[test]
fn packet_numbers_decode_as_rfc9000_a3() {
    assert_eq!(
        decode_packet_number(Some(0xa82f30ea), 0x9b32, 16),
        0xa82f9b32
    );
    assert_eq!(decode_packet_number(None, 2, 32), 2);
    assert_eq!(decode_packet_number(Some(254), 0, 8), 256);
}

#[test]
fn probe_wants_a_v1_or_v2_initial() {
    let p = |data: &[u8]| {
        probe(&ProbeInput {
            l4: L4::Udp,
            dir: Direction::Originator,
            ports: (50000, 8443),
            data,
        })
    };
    assert_eq!(p(&rfc9001_packet()), Probe::Match);
    assert_eq!(p(&rfc9369_packet()), Probe::Match);
    // A 0-RTT packet (a resuming client may send it first) matches; a
    // Retry, an unknown version, a short header, DNS and a truncated
    // header do not.
    let mut zero_rtt = rfc9001_packet();
    zero_rtt[0] = (zero_rtt[0] & 0xcf) | 0x10;
    assert_eq!(p(&zero_rtt), Probe::Match);
    let mut retry = rfc9001_packet();
    retry[0] |= 0x30;
    assert_eq!(p(&retry), Probe::NoMatch);
    let mut unknown = rfc9001_packet();
    unknown[1..5].copy_from_slice(&[0x10, 0x01, 0x00, 0x00]);
    assert_eq!(p(&unknown), Probe::NoMatch);
    assert_eq!(p(&[0x40, 1, 2, 3]), Probe::NoMatch);
    assert_eq!(p(b"\x12\x34\x01\x00\x00\x01\x00\x00"), Probe::NoMatch);
    assert_eq!(p(&rfc9001_packet()[..10]), Probe::NoMatch);
}

#[test]
fn fuzz_entry_point_finds_the_hello() {
    let seed = fuzz_frame(&[(Direction::Originator, &rfc9001_packet())]);
    assert_eq!(fuzz_input(&seed), 1);
    assert_eq!(
        fuzz_input(&seed[..500]),
        0,
        "a truncated datagram is not a hello"
    );
    assert_eq!(fuzz_input(&[]), 0);
}
