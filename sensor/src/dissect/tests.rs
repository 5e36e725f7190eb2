//! Every registered protocol survives hostile input: random bytes to its
//! probe, and random sequences of data, gaps and close to its dissector,
//! over TCP and UDP, with small limits.

use super::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Call {
    Data(bool, Vec<u8>),
    Gap(bool, u64),
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        4 => (any::<bool>(), prop::collection::vec(any::<u8>(), 0..600)).prop_map(|(o, b)| Call::Data(o, b)),
        // Plausible starts, so the dissectors get past their first checks.
        2 => (any::<bool>(), prop::sample::select(vec![
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
            b"\x00\x1d\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x01a\x00\x00\x01\x00\x01".to_vec(),
            b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x01\x02\x03\x04".to_vec(),
            b"\xc0\x0c\xc0\x0c\xc0\x0c".to_vec(),
            b"220 mx ESMTP\r\n250-a\r\n250 b\r\n220 go\r\n".to_vec(),
            b"EHLO a\r\nSTARTTLS\r\n. STARTTLS\r\nSTLS\r\n".to_vec(),
            b"* OK hi\r\n. OK go\r\n+OK\r\n".to_vec(),
            b"<stream:stream><starttls xmlns='x'/><proceed/>".to_vec(),
            b"\x30\x1d\x02\x01\x01\x77\x18\x80\x161.3.6.1.4.1.1466.20037".to_vec(),
            b"\x30\x0c\x02\x01\x01\x78\x07\x0a\x01\x00\x04\x00\x04\x00".to_vec(),
            b"\x00\x00\x00\x08\x04\xd2\x16\x2fS".to_vec(),
            b"STARTTLS\r\n:s 670 joe :go\r\n".to_vec(),
            // DTLS: a ClientHello record header and fragment header, and a
            // STUN binding request.
            b"\x16\xfe\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x18\x01\x00\x00\x30\x00\x00\x00\x00\x00\x00\x0c\xfe\xfd".to_vec(),
            b"\x00\x01\x00\x00\x21\x12\xa4\x42\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c".to_vec(),
        ])).prop_map(|(o, b)| Call::Data(o, b)),
        1 => (any::<bool>(), 0u64..100_000).prop_map(|(o, n)| Call::Gap(o, n)),
    ]
}

fn dir(orig: bool) -> Direction {
    if orig {
        Direction::Originator
    } else {
        Direction::Responder
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn probes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300), orig: bool, udp: bool, p0: u16, p1: u16) {
        for p in REGISTRY {
            let l4 = if udp { L4::Udp } else { L4::Tcp };
            let _ = (p.probe)(&ProbeInput { l4, dir: dir(orig), ports: (p0, p1), data: &data });
        }
    }

    #[test]
    fn dissectors_never_panic_and_respect_their_limits(calls in prop::collection::vec(call(), 1..40), udp: bool) {
        let limits = Limits { max_pending_transactions: 4, max_buffered_bytes: 1024 };
        let l4 = if udp { L4::Udp } else { L4::Tcp };
        for p in REGISTRY {
            let supported = if udp { p.transports.udp } else { p.transports.tcp };
            if !supported {
                continue;
            }
            let mut d = (p.new)(&limits, l4);
            let mut out = Vec::new();
            let mut anomalies = Vec::new();
            let mut records = 0usize;
            for (i, c) in calls.iter().enumerate() {
                let mut cx = Context { ts_us: i as i64, out: &mut out, anomalies: &mut anomalies };
                let want = match c {
                    Call::Data(o, b) => d.data(&mut cx, dir(*o), b),
                    Call::Gap(o, n) if !udp => d.gap(&mut cx, dir(*o), *n),
                    Call::Gap(..) => Want::More,
                };
                records += out.len();
                out.clear();
                if want == Want::Done {
                    break;
                }
            }
            let mut cx = Context { ts_us: 99, out: &mut out, anomalies: &mut anomalies };
            d.close(&mut cx);
            records += out.len();
            // At most one record per message offered, plus what was pending.
            let offered = calls.iter().filter(|c| matches!(c, Call::Data(..))).count();
            prop_assert!(records <= offered.saturating_mul(64) + limits.max_pending_transactions * 2 + 64);
        }
    }
}
