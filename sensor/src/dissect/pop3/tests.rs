use super::*;
use crate::dissect::Want;
use crate::dissect::starttls::testutil::{O, R, feed, feed_bytewise, limits, probe_tcp};

fn probe_of(dir: Direction, data: &[u8]) -> Probe {
    probe_tcp(probe, 1100, dir, data)
}

fn pop3() -> Follower<Pop3> {
    let l = limits();
    Follower::new(
        Pop3 {
            max_pending: l.max_pending_transactions,
            ..Pop3::default()
        },
        l,
    )
}

#[test]
fn the_probe_wants_an_ok_greeting_from_the_server() {
    assert_eq!(probe_of(R, b"+OK Cyrus POP3 ready\r\n"), Probe::Match);
    assert_eq!(probe_of(R, b"+O"), Probe::NeedMore);
    assert_eq!(probe_of(R, b"+OKAY"), Probe::NoMatch);
    assert_eq!(probe_of(R, b"* OK imap\r\n"), Probe::NoMatch);
    assert_eq!(probe_of(O, b"+OK\r\n"), Probe::NoMatch);
}

const GREETING: &[u8] = b"+OK ready <1.2@host>\r\n";

#[test]
fn stls_accepted_after_a_multi_line_capa_hands_over_the_rest() {
    let mut d = pop3();
    let r = feed(
        &mut d,
        &[
            (R, GREETING),
            (O, b"CAPA\r\n"),
            // A body line looking like a status line is not one.
            (R, b"+OK list follows\r\nSTLS\r\n+OK lookalike\r\n.\r\n"),
            (O, b"STLS\r\n"),
            (R, b"+OK Begin TLS negotiation now\r\n"),
        ],
    );
    assert_eq!(r.want, Want::Reprobe);
    assert!(d.handover(R).is_empty());
}

#[test]
fn pipelined_split_commands_are_answered_in_order() {
    let mut d = pop3();
    let r = feed_bytewise(
        &mut d,
        &[
            (R, GREETING),
            (O, b"NOOP\r\nSTLS\r\n"),
            (R, b"+OK noop\r\n+OK go\r\nhello"),
        ],
    );
    assert_eq!(r.want, Want::Reprobe);
}

#[test]
fn a_refusal_or_a_plaintext_login_ends_quietly() {
    let mut d = pop3();
    let r = feed(
        &mut d,
        &[(R, GREETING), (O, b"STLS\r\n"), (R, b"-ERR no\r\n")],
    );
    assert_eq!(r.want, Want::Done);
    assert!(r.anomalies.is_empty());
    let mut d = pop3();
    let r = feed(&mut d, &[(R, GREETING), (O, b"USER joe\r\n")]);
    assert_eq!(r.want, Want::Done);
}

#[test]
fn garbage_over_long_lines_and_floods_end_it() {
    let mut d = pop3();
    let r = feed(&mut d, &[(R, GREETING), (O, b"NOOP\r\n"), (R, b"what\r\n")]);
    assert_eq!(r.anomalies, ["malformed_response"]);
    let mut d = pop3();
    let r = feed(&mut d, &[(R, &[b'+'; 1500])]);
    assert_eq!(r.anomalies, ["line_too_long"]);
    let mut d = pop3();
    let r = feed(&mut d, &[(R, GREETING), (O, &b"NOOP\r\n".repeat(20))]);
    assert_eq!(r.want, Want::Done);
}
