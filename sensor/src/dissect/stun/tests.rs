use super::*;

const O: Direction = Direction::Originator;

/// A Binding Request with one 8-byte attribute.
fn binding() -> Vec<u8> {
    let mut m = vec![0x00, 0x01, 0x00, 0x08];
    m.extend_from_slice(&MAGIC_COOKIE);
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&[0x00, 0x06, 0x00, 0x04, b'u', b's', b'e', b'r']);
    m
}

fn call(d: &mut dyn Dissector, data: &[u8]) -> Want {
    let (mut out, mut anomalies) = (Vec::new(), Vec::new());
    let mut cx = Context {
        ts_us: 1,
        out: &mut out,
        anomalies: &mut anomalies,
    };
    d.data(&mut cx, O, data)
}

#[test]
fn the_probe_wants_a_whole_stun_message() {
    let p = |data: &[u8], l4| {
        probe(&ProbeInput {
            l4,
            dir: O,
            ports: (5000, 6000),
            data,
        })
    };
    let m = binding();
    assert_eq!(p(&m, L4::Udp), Probe::Match);
    assert_eq!(p(&m, L4::Tcp), Probe::NoMatch);
    assert_eq!(p(&m[..m.len() - 1], L4::Udp), Probe::NoMatch);
    let mut no_cookie = m.clone();
    no_cookie[4] = 0;
    assert_eq!(p(&no_cookie, L4::Udp), Probe::NoMatch);
    assert_eq!(p(b"\x16\xfe\xfd\x00\x00", L4::Udp), Probe::NoMatch);
}

#[test]
fn the_first_dtls_datagram_is_handed_over() {
    let mut d = new(&Limits::default(), L4::Udp);
    assert_eq!(call(d.as_mut(), &binding()), Want::More);
    // RTP before DTLS is ignored.
    assert_eq!(call(d.as_mut(), &[0x80, 0x60, 0, 1]), Want::More);
    let dtls = b"\x16\xfe\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01";
    assert_eq!(call(d.as_mut(), dtls), Want::Reprobe);
    assert_eq!(d.handover(O), dtls);
    assert!(d.handover(Direction::Responder).is_empty());
}

#[test]
fn stun_without_dtls_is_left_after_the_cap() {
    let limits = Limits {
        max_pending_transactions: 4,
        max_buffered_bytes: 100,
    };
    let mut d = new(&limits, L4::Udp);
    let m = binding();
    assert_eq!(call(d.as_mut(), &m), Want::More);
    assert_eq!(call(d.as_mut(), &m), Want::More);
    assert_eq!(call(d.as_mut(), &m), Want::More);
    assert_eq!(call(d.as_mut(), &m), Want::Done);
}
