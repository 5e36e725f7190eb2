use super::*;
use crate::dissect::Want;
use crate::dissect::starttls::testutil::{O, R, feed, feed_bytewise, limits, probe_tcp};

fn probe_of(dir: Direction, data: &[u8]) -> Probe {
    probe_tcp(probe, 2500, dir, data)
}

#[test]
fn the_probe_wants_an_smtp_greeting_or_an_ehlo() {
    assert_eq!(
        probe_of(R, b"220 mx.google.com ESMTP hf10 - gsmtp\r\n"),
        Probe::Match
    );
    assert_eq!(
        probe_of(R, b"220-mail.example.org Smtp ready"),
        Probe::Match
    );
    assert_eq!(probe_of(R, b"220 mail.exa"), Probe::NeedMore);
    assert_eq!(probe_of(R, b"22"), Probe::NeedMore);
    // An FTP greeting has the same code but no SMTP.
    assert_eq!(
        probe_of(R, b"220 ProFTPD Server ready.\r\n"),
        Probe::NoMatch
    );
    assert_eq!(probe_of(R, b"HTTP/1.1 200 OK\r\n"), Probe::NoMatch);
    assert_eq!(probe_of(R, b"SSH-2.0-OpenSSH\r\n"), Probe::NoMatch);
    assert_eq!(probe_of(R, b"\x16\x03\x01\x00\x05"), Probe::NoMatch);
    assert_eq!(probe_of(O, b"EHLO client.example\r\n"), Probe::Match);
    assert_eq!(probe_of(O, b"ehl"), Probe::NeedMore);
    assert_eq!(probe_of(O, b"GET / HTTP/1.1\r\n"), Probe::NoMatch);
}

const GREETING: &[u8] = b"220 mx.example ESMTP\r\n";
const EHLO_REPLY: &[u8] = b"250-mx.example\r\n250-STARTTLS\r\n250 SIZE 1000\r\n";

#[test]
fn an_accepted_starttls_hands_over_exactly_the_bytes_after_the_reply() {
    let mut d = Follower::new(Smtp::default(), limits());
    let r = feed(
        &mut d,
        &[
            (R, GREETING),
            (O, b"EHLO me\r\n"),
            (R, EHLO_REPLY),
            (O, b"STARTTLS\r\n\x16\x03\x01"),
            (R, b"220 2.0.0 Ready to start TLS\r\n\x16\x03\x03"),
        ],
    );
    assert_eq!(r.want, Want::Reprobe);
    assert!(r.anomalies.is_empty());
    assert_eq!(d.handover(O), b"\x16\x03\x01");
    assert_eq!(d.handover(R), b"\x16\x03\x03");
}

#[test]
fn lines_split_byte_by_byte_are_followed_the_same() {
    let mut d = Follower::new(Smtp::default(), limits());
    let r = feed_bytewise(
        &mut d,
        &[
            (R, GREETING),
            (O, b"EHLO me\r\n"),
            (R, EHLO_REPLY),
            (O, b"STARTTLS\r\n"),
            (R, b"220 go ahead\r\n"),
        ],
    );
    assert_eq!(r.want, Want::Reprobe);
    assert!(d.handover(O).is_empty());
}

#[test]
fn pipelined_commands_match_the_starttls_reply_by_position() {
    let mut d = Follower::new(Smtp::default(), limits());
    let r = feed(
        &mut d,
        &[
            (R, GREETING),
            (O, b"EHLO me\r\nNOOP\r\nSTARTTLS\r\n"),
            // The 250s answer EHLO and NOOP; a 220 in a continuation line
            // is not the answer.
            (R, EHLO_REPLY),
            (R, b"250 ok\r\n220 ready\r\nTLS"),
        ],
    );
    assert_eq!(r.want, Want::Reprobe);
    assert_eq!(d.handover(R), b"TLS");
}

#[test]
fn a_refused_starttls_or_a_mail_transaction_ends_quietly() {
    let mut d = Follower::new(Smtp::default(), limits());
    let r = feed(
        &mut d,
        &[
            (R, GREETING),
            (O, b"STARTTLS\r\n"),
            (R, b"454 4.7.0 TLS not available\r\n"),
        ],
    );
    assert_eq!(r.want, Want::Done);
    assert!(r.anomalies.is_empty());
    let mut d = Follower::new(Smtp::default(), limits());
    let r = feed(
        &mut d,
        &[
            (R, GREETING),
            (O, b"HELO me\r\n"),
            (R, b"250 hi\r\n"),
            (O, b"MAIL FROM:<a@b>\r\n"),
        ],
    );
    assert_eq!(r.want, Want::Done);
    assert!(r.anomalies.is_empty());
}

#[test]
fn garbage_and_over_long_lines_are_anomalies() {
    let mut d = Follower::new(Smtp::default(), limits());
    let r = feed(&mut d, &[(R, GREETING), (R, b"\x00\x01garbage\r\n")]);
    assert_eq!(r.want, Want::Done);
    assert_eq!(r.anomalies, ["malformed_reply"]);
    let mut d = Follower::new(Smtp::default(), limits());
    let long = vec![b'a'; 2000];
    let r = feed(&mut d, &[(R, GREETING), (O, &long)]);
    assert_eq!(r.want, Want::Done);
    assert_eq!(r.anomalies, ["line_too_long"]);
}

#[test]
fn a_session_without_starttls_is_left_after_the_cap() {
    let mut d = Follower::new(Smtp::default(), limits());
    let noops: Vec<u8> = b"NOOP\r\n".repeat(200);
    let r = feed(&mut d, &[(R, GREETING), (O, &noops)]);
    assert_eq!(r.want, Want::Done);
    assert!(r.anomalies.is_empty());
}

#[test]
fn client_bytes_sent_before_the_reply_are_held_within_the_cap() {
    let mut d = Follower::new(Smtp::default(), limits());
    let hello = vec![0x16; 2000];
    let r = feed(&mut d, &[(R, GREETING), (O, b"STARTTLS\r\n"), (O, &hello)]);
    assert_eq!(r.want, Want::Done);
}
