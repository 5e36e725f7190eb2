use super::*;
use crate::dissect::Want;
use crate::dissect::starttls::testutil::{O, R, feed, feed_bytewise, limits, probe_tcp};

fn probe_of(dir: Direction, data: &[u8]) -> Probe {
    probe_tcp(probe, 1430, dir, data)
}

#[test]
fn the_probe_wants_an_untagged_ok_greeting_from_the_server() {
    assert_eq!(
        probe_of(R, b"* OK [CAPABILITY IMAP4rev1] ready\r\n"),
        Probe::Match
    );
    assert_eq!(probe_of(R, b"* O"), Probe::NeedMore);
    assert_eq!(probe_of(R, b"+OK POP3 ready\r\n"), Probe::NoMatch);
    assert_eq!(probe_of(R, b"HTTP/1.1 200 OK\r\n"), Probe::NoMatch);
    assert_eq!(probe_of(O, b"* OK fake client\r\n"), Probe::NoMatch);
}

const GREETING: &[u8] = b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n";

#[test]
fn a_tagged_ok_to_starttls_hands_over_the_rest() {
    let mut d = Follower::new(Imap::default(), limits());
    let r = feed(
        &mut d,
        &[
            (R, GREETING),
            (O, b". CAPABILITY\r\n"),
            (R, b"* CAPABILITY IMAP4rev1 STARTTLS\r\n. OK done\r\n"),
            (O, b". STARTTLS\r\n"),
            (R, b". OK Begin TLS negotiation now\r\n\x16\x03"),
        ],
    );
    assert_eq!(r.want, Want::Reprobe);
    assert_eq!(d.handover(R), b"\x16\x03");
    assert!(d.handover(O).is_empty());
}

#[test]
fn pipelined_and_split_lines_are_matched_by_tag() {
    let mut d = Follower::new(Imap::default(), limits());
    let r = feed_bytewise(
        &mut d,
        &[
            (R, GREETING),
            (O, b"a1 NOOP\r\na2 STARTTLS\r\n"),
            (R, b"a1 OK noop\r\n* 3 EXISTS\r\na2 OK go\r\n"),
        ],
    );
    assert_eq!(r.want, Want::Reprobe);
}

#[test]
fn a_refusal_or_a_plaintext_login_ends_quietly() {
    let mut d = Follower::new(Imap::default(), limits());
    let r = feed(
        &mut d,
        &[
            (R, GREETING),
            (O, b"t STARTTLS\r\n"),
            (R, b"t BAD not now\r\n"),
        ],
    );
    assert_eq!(r.want, Want::Done);
    assert!(r.anomalies.is_empty());
    let mut d = Follower::new(Imap::default(), limits());
    let r = feed(&mut d, &[(R, GREETING), (O, b"t LOGIN joe secret\r\n")]);
    assert_eq!(r.want, Want::Done);
}

#[test]
fn garbage_and_over_long_lines_are_anomalies() {
    let mut d = Follower::new(Imap::default(), limits());
    let r = feed(&mut d, &[(R, GREETING), (O, b"\r\n")]);
    assert_eq!(r.anomalies, ["malformed_command"]);
    let mut d = Follower::new(Imap::default(), limits());
    let r = feed(&mut d, &[(R, GREETING), (R, &[b'x'; 1500])]);
    assert_eq!((r.want, r.anomalies), (Want::Done, vec!["line_too_long"]));
}
