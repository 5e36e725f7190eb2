//! A TLS ClientHello split over three TCP segments that arrive in reverse
//! order is recovered: the flow stage's reassembler puts the segments back
//! in order and the TLS dissector reads the whole hello.

mod common;

use common::{ethernet_frame as frame, run, tcp_frame};
use nucleus_proto::Record;
use sensor::config::PipelineConfig;
use sensor::dissect::tls::hello::parse_client_hello;

fn ext(typ: u16, data: &[u8]) -> Vec<u8> {
    let mut v = typ.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// A ClientHello body with SNI, ALPN, supported_versions and enough
/// padding to need three segments.
fn client_hello_body() -> Vec<u8> {
    let name = b"reorder.example.test";
    let mut sni = ((name.len() + 3) as u16).to_be_bytes().to_vec();
    sni.push(0);
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let exts = [
        ext(0x0000, &sni),
        ext(0x0010, &[0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1']),
        ext(0x002b, &[4, 3, 4, 3, 3]),
        ext(0x000a, &[0, 4, 0, 0x1d, 0, 0x17]),
        ext(0x000d, &[0, 4, 4, 3, 8, 4]),
        ext(0x0015, &[0; 600]),
    ]
    .concat();
    let mut b = vec![3, 3];
    b.extend_from_slice(&[0x42; 32]);
    b.push(0);
    b.extend_from_slice(&[0, 6, 0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f]);
    b.extend_from_slice(&[1, 0]);
    b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    b.extend(exts);
    b
}

#[test]
fn client_hello_in_three_reversed_segments_is_recovered() {
    let body = client_hello_body();
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    let third = record.len() / 3;
    let parts = [
        &record[..third],
        &record[third..2 * third],
        &record[2 * third..],
    ];

    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let (cp, sp) = (40000, 8443);
    let (cseq, sseq) = (1000u32, 5000u32);
    let mut frames = vec![
        frame(1_000, tcp_frame(c, cp, s, sp, cseq, 0, "S", 1, &[])),
        frame(2_000, tcp_frame(s, sp, c, cp, sseq, cseq + 1, "SA", 1, &[])),
        frame(3_000, tcp_frame(c, cp, s, sp, cseq + 1, sseq + 1, "A", 2, &[])),
    ];
    // Third, second, then first segment.
    let mut t = 4_000;
    for i in [2usize, 1, 0] {
        let seq = cseq + 1 + (i * third) as u32;
        frames.push(frame(t, tcp_frame(c, cp, s, sp, seq, sseq + 1, "PA", 3 + i as u16, parts[i])));
        t += 1_000;
    }
    let end = cseq + 1 + record.len() as u32;
    frames.push(frame(t, tcp_frame(s, sp, c, cp, sseq + 1, end, "A", 2, &[])));

    let records = run(&PipelineConfig::default(), &frames);
    let tls: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Tls(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(tls.len(), 1, "one tls record: {records:?}");
    let expected = parse_client_hello(&body).unwrap();
    let r = &tls[0].body;
    assert_eq!(r.sni.as_deref(), Some("reorder.example.test"));
    assert_eq!(r.alpn, vec!["h2", "http/1.1"]);
    assert_eq!(r.ja4.as_deref(), Some(expected.ja4(false).as_str()));
    assert_eq!(r.ja3.as_deref(), Some(expected.ja3().as_str()));
    assert_eq!(tls[0].flow.dst_port, sp);
}
