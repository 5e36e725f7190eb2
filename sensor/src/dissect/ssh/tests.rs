//! SSH dissector: banners, KEXINIT framing split anywhere, HASSH, the
//! negotiation rule, and hostile input.

use super::kexinit::{KexInit, md5_hex, negotiate};
use super::*;

const CLIENT_LISTS: [&str; 10] = [
    "curve25519-sha256,diffie-hellman-group14-sha256,ext-info-c",
    "ssh-ed25519,rsa-sha2-512",
    "chacha20-poly1305@openssh.com,aes128-ctr",
    "chacha20-poly1305@openssh.com,aes128-ctr",
    "umac-64-etm@openssh.com,hmac-sha2-256",
    "umac-64-etm@openssh.com,hmac-sha2-256",
    "none,zlib@openssh.com",
    "none,zlib@openssh.com",
    "",
    "",
];

const SERVER_LISTS: [&str; 10] = [
    "diffie-hellman-group14-sha256,curve25519-sha256",
    "rsa-sha2-512",
    "aes128-ctr,chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "hmac-sha2-256",
    "hmac-sha1",
    "none",
    "zlib",
    "",
    "",
];

fn kexinit_payload(lists: &[&str; 10]) -> Vec<u8> {
    let mut p = vec![kexinit::MSG_KEXINIT];
    p.extend_from_slice(&[0xab; 16]);
    for l in lists {
        p.extend_from_slice(&(l.len() as u32).to_be_bytes());
        p.extend_from_slice(l.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&[0; 4]);
    p
}

/// A binary packet around `payload` with `padding` bytes of padding.
fn packet(payload: &[u8], padding: u8) -> Vec<u8> {
    let len = payload.len() + usize::from(padding) + 1;
    let mut p = (len as u32).to_be_bytes().to_vec();
    p.push(padding);
    p.extend_from_slice(payload);
    p.extend(std::iter::repeat_n(0u8, usize::from(padding)));
    p
}

fn client_stream() -> Vec<u8> {
    let mut s = b"SSH-2.0-OpenSSH_9.6\r\n".to_vec();
    s.extend(packet(&kexinit_payload(&CLIENT_LISTS), 7));
    s
}

fn server_stream() -> Vec<u8> {
    let mut s = b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3\r\n".to_vec();
    // An SSH_MSG_IGNORE before the KEXINIT.
    s.extend(packet(&[2, 0, 0, 0, 1, b'x'], 4));
    s.extend(packet(&kexinit_payload(&SERVER_LISTS), 4));
    s
}

struct Run {
    records: Vec<SshRecord>,
    anomalies: Vec<&'static str>,
    wants: Vec<Want>,
}

/// Feeds the calls in order, then closes.
fn run(limits: Limits, calls: &[(Direction, Option<&[u8]>)]) -> Run {
    let mut d = Ssh::new(limits);
    let mut out = Vec::new();
    let mut anomalies = Vec::new();
    let mut wants = Vec::new();
    for (i, (dir, data)) in calls.iter().enumerate() {
        let mut cx = Context {
            ts_us: 100 + i as i64,
            out: &mut out,
            anomalies: &mut anomalies,
        };
        let want = match data {
            Some(b) => d.data(&mut cx, *dir, b),
            None => d.gap(&mut cx, *dir, 10),
        };
        wants.push(want);
        if want == Want::Done {
            break;
        }
    }
    let mut cx = Context {
        ts_us: 999,
        out: &mut out,
        anomalies: &mut anomalies,
    };
    d.close(&mut cx);
    let records = out
        .into_iter()
        .map(|e| {
            assert_eq!(e.ts_us, 100, "the record starts at the first data");
            match e.event {
                AppEvent::Ssh(r) => r,
                other => panic!("not ssh: {other:?}"),
            }
        })
        .collect();
    Run {
        records,
        anomalies,
        wants,
    }
}

fn expected_client_hassh_input() -> String {
    format!(
        "{};{};{};{}",
        CLIENT_LISTS[0], CLIENT_LISTS[2], CLIENT_LISTS[4], CLIENT_LISTS[6]
    )
}

fn expected_server_hassh_input() -> String {
    // The server's own direction: server-to-client lists.
    format!(
        "{};{};{};{}",
        SERVER_LISTS[0], SERVER_LISTS[3], SERVER_LISTS[5], SERVER_LISTS[7]
    )
}

#[test]
fn md5_is_md5() {
    assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
}

#[test]
fn full_handshake_gives_banners_hassh_and_negotiated_algorithms() {
    let (c, s) = (client_stream(), server_stream());
    let r = run(
        Limits::default(),
        &[
            (Direction::Responder, Some(&s)),
            (Direction::Originator, Some(&c)),
        ],
    );
    assert_eq!(r.wants.last(), Some(&Want::Done));
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert_eq!(r.records.len(), 1);
    let rec = &r.records[0];
    assert_eq!(rec.client_banner.as_deref(), Some("SSH-2.0-OpenSSH_9.6"));
    assert_eq!(
        rec.server_banner.as_deref(),
        Some("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3")
    );
    assert_eq!(rec.version, Some(2));
    let hin = expected_client_hassh_input();
    assert_eq!(rec.hassh_string.as_deref(), Some(hin.as_str()));
    assert_eq!(rec.hassh.as_deref(), Some(md5_hex(hin.as_bytes()).as_str()));
    let sin = expected_server_hassh_input();
    assert_eq!(rec.hassh_server_string.as_deref(), Some(sin.as_str()));
    assert_eq!(
        rec.hassh_server.as_deref(),
        Some(md5_hex(sin.as_bytes()).as_str())
    );
    // The client's preference wins among the names both offer.
    assert_eq!(rec.kex.as_deref(), Some("curve25519-sha256"));
    assert_eq!(rec.host_key_alg.as_deref(), Some("rsa-sha2-512"));
    assert_eq!(rec.cipher.as_deref(), Some("chacha20-poly1305@openssh.com"));
    assert_eq!(rec.mac.as_deref(), Some("hmac-sha2-256"));
    assert_eq!(rec.compression.as_deref(), Some("none"));
}

#[test]
fn byte_by_byte_interleaved_delivery_gives_the_same_record() {
    let (c, s) = (client_stream(), server_stream());
    let whole = run(
        Limits::default(),
        &[
            (Direction::Originator, Some(&c)),
            (Direction::Responder, Some(&s)),
        ],
    );
    let mut calls = Vec::new();
    for i in 0..c.len().max(s.len()) {
        if let Some(b) = c.get(i..=i) {
            calls.push((Direction::Originator, Some(b)));
        }
        if let Some(b) = s.get(i..=i) {
            calls.push((Direction::Responder, Some(b)));
        }
    }
    let split = run(Limits::default(), &calls);
    assert_eq!(split.records, whole.records);
    assert_eq!(split.wants.last(), Some(&Want::Done));
}

#[test]
fn lf_only_banner_and_server_lines_before_the_banner() {
    // A greeting of many lines (Zeek's pre-banner trace has a cow).
    let mut s = b"Welcome to the box\r\n".repeat(40);
    s.extend(b"no tabs here\n");
    s.extend(b"SSH-1.99-Cisco-1.25\n");
    s.extend(packet(&kexinit_payload(&SERVER_LISTS), 4));
    let c = client_stream();
    let r = run(
        Limits::default(),
        &[
            (Direction::Responder, Some(&s)),
            (Direction::Originator, Some(&c)),
        ],
    );
    assert_eq!(
        r.records[0].server_banner.as_deref(),
        Some("SSH-1.99-Cisco-1.25")
    );
    assert_eq!(r.records[0].version, Some(2));
    assert!(r.records[0].hassh_server.is_some());
    // Without a banner in MAX_PRE_BANNER_BYTES, the side is given up.
    let junk = b"hello\n".repeat(MAX_PRE_BANNER_BYTES / 6 + 1);
    let r = run(Limits::default(), &[(Direction::Responder, Some(&junk))]);
    assert_eq!(r.anomalies, vec!["no_banner"]);
}

#[test]
fn ssh1_banner_ends_that_side_and_close_reports_banners() {
    let r = run(
        Limits::default(),
        &[
            (Direction::Originator, Some(b"SSH-1.5-1.2.27\n")),
            (Direction::Responder, Some(b"SSH-1.5-OpenSSH_3.1\n")),
        ],
    );
    assert_eq!(r.wants.last(), Some(&Want::Done));
    assert_eq!(r.records.len(), 1);
    assert_eq!(r.records[0].version, Some(1));
    assert_eq!(r.records[0].hassh, None);
}

#[test]
fn only_the_client_seen_reports_at_close() {
    let c = client_stream();
    let r = run(Limits::default(), &[(Direction::Originator, Some(&c))]);
    assert_eq!(r.wants, vec![Want::More]);
    assert_eq!(r.records.len(), 1);
    assert!(r.records[0].hassh.is_some());
    assert_eq!(r.records[0].server_banner, None);
    assert_eq!(
        r.records[0].kex, None,
        "nothing negotiated without the server"
    );
}

#[test]
fn gap_before_kexinit_gives_up_that_side() {
    let c = client_stream();
    let r = run(
        Limits::default(),
        &[
            (Direction::Responder, Some(b"SSH-2.0-x\r\n")),
            (Direction::Responder, None),
            (Direction::Originator, Some(&c)),
        ],
    );
    assert_eq!(r.anomalies, vec!["gap_before_kexinit"]);
    assert_eq!(r.wants.last(), Some(&Want::Done));
    assert_eq!(r.records[0].server_banner.as_deref(), Some("SSH-2.0-x"));
    assert!(r.records[0].hassh.is_some());
    assert_eq!(r.records[0].hassh_server, None);
}

#[test]
fn packets_longer_than_the_buffer_limit_are_refused() {
    let limits = Limits {
        max_pending_transactions: 4,
        max_buffered_bytes: 256,
    };
    let c = client_stream();
    assert!(c.len() > 256);
    let r = run(limits, &[(Direction::Originator, Some(&c))]);
    assert_eq!(r.anomalies, vec!["bad_packet_length"]);
    assert_eq!(r.records[0].hassh, None);
    // A huge declared length is refused before anything is buffered.
    let mut huge = b"SSH-2.0-x\n".to_vec();
    huge.extend([0x7f, 0xff, 0xff, 0xff, 4]);
    let r = run(limits, &[(Direction::Originator, Some(&huge))]);
    assert_eq!(r.anomalies, vec!["bad_packet_length"]);
}

#[test]
fn endless_banner_line_is_bounded() {
    let long = vec![b'a'; MAX_LINE * 3];
    let r = run(Limits::default(), &[(Direction::Responder, Some(&long))]);
    assert_eq!(r.anomalies, vec!["line_too_long"]);
    assert!(r.records.is_empty(), "no banner, nothing to report");
}

#[test]
fn negotiation_follows_the_client_order() {
    assert_eq!(negotiate(b"a,b,c", b"c,b").as_deref(), Some("b"));
    assert_eq!(negotiate(b"a", b"b"), None);
    assert_eq!(negotiate(b"", b""), None);
    assert_eq!(negotiate(b",a", b"a,").as_deref(), Some("a"));
}

#[test]
fn truncated_kexinit_is_malformed() {
    let p = kexinit_payload(&CLIENT_LISTS);
    for cut in 0..p.len() - 5 {
        assert_eq!(KexInit::parse(&p[..cut]), None, "cut at {cut}");
    }
    assert!(KexInit::parse(&p).is_some());
}

#[test]
fn probe_recognises_banners_and_server_preamble() {
    let probe_of = |dir, data: &[u8]| {
        probe(&ProbeInput {
            l4: L4::Tcp,
            dir,
            ports: (40000, 2222),
            data,
        })
    };
    assert_eq!(
        probe_of(Direction::Originator, b"SSH-2.0-x\r\n"),
        Probe::Match
    );
    assert_eq!(probe_of(Direction::Responder, b"SS"), Probe::NeedMore);
    assert_eq!(
        probe_of(Direction::Originator, b"GET / HTTP/1.1\r\n"),
        Probe::NoMatch
    );
    assert_eq!(
        probe_of(Direction::Responder, b"hello\r\nSSH-2.0-x\r\n"),
        Probe::Match
    );
    assert_eq!(
        probe_of(Direction::Responder, b"220 mail ESMTP\r\n"),
        Probe::NeedMore
    );
    assert_eq!(
        probe_of(Direction::Responder, b"\x16\x03\x01\x00"),
        Probe::NoMatch
    );
}

#[test]
fn fuzz_entry_point_finds_the_handshake() {
    // Control bytes: chunk length << 1 | direction.
    let mut input = Vec::new();
    for (dir, stream) in [(0u8, client_stream()), (1u8, server_stream())] {
        for chunk in stream.chunks(100) {
            input.push(((chunk.len() as u8) << 1) | dir);
            input.extend_from_slice(chunk);
        }
    }
    assert_eq!(fuzz_input(&input), 1);
    assert_eq!(fuzz_input(&[]), 0);
}
