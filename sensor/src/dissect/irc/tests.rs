use super::*;
use crate::dissect::Want;
use crate::dissect::starttls::testutil::{O, R, feed, feed_bytewise, limits, probe_tcp};

#[test]
fn the_probe_wants_a_client_registration_or_starttls() {
    let p = |dir, data| probe_tcp(probe, 7000, dir, data);
    assert_eq!(p(O, b"STARTTLS\r\n"), Probe::Match);
    assert_eq!(p(O, b"NICK joe\r\nUSER joe 0 * :Joe\r\n"), Probe::Match);
    assert_eq!(p(O, b"CAP L"), Probe::NeedMore);
    assert_eq!(p(O, b"STARTTLS now"), Probe::NoMatch);
    assert_eq!(p(O, b"EHLO me\r\n"), Probe::NoMatch);
    // FTP's and POP3's login commands are not taken for IRC.
    assert_eq!(p(O, b"USER anonymous\r\n"), Probe::NoMatch);
    assert_eq!(p(O, b"PASS secret\r\n"), Probe::NoMatch);
    assert_eq!(p(O, b"GET / HTTP/1.1\r\n"), Probe::NoMatch);
    assert_eq!(p(R, b"NICK joe\r\n"), Probe::NoMatch);
    assert_eq!(
        p(
            R,
            b":irc.example NOTICE * :*** Looking up your hostname\r\n"
        ),
        Probe::Match
    );
    assert_eq!(p(R, b":irc.example 020 * :Please wait\r\n"), Probe::Match);
    assert_eq!(p(R, b"NOTICE AUTH :*** Processing\r\n"), Probe::Match);
    assert_eq!(p(R, b":irc.exa"), Probe::NeedMore);
    assert_eq!(p(R, b":a b c d e f g\r\n"), Probe::NoMatch);
    assert_eq!(p(R, b"220 mx ESMTP\r\n"), Probe::NoMatch);
}

#[test]
fn a_670_hands_over_the_rest() {
    let mut d = Follower::new(Irc::default(), limits());
    let r = feed_bytewise(
        &mut d,
        &[
            (O, b"STARTTLS\r\n"),
            (
                R,
                b":irc.example NOTICE * :*** Looking up your hostname\r\n",
            ),
            (R, b":irc.example 670  :STARTTLS successful, go ahead\r\n"),
        ],
    );
    assert_eq!(r.want, Want::Reprobe);
    let mut d = Follower::new(Irc::default(), limits());
    let r = feed(
        &mut d,
        &[(O, b"STARTTLS\r\n"), (R, b":s 670 joe :go\r\n\x16\x03")],
    );
    assert_eq!(r.want, Want::Reprobe);
    assert_eq!(d.handover(R), b"\x16\x03");
}

#[test]
fn a_failure_or_a_registered_session_ends_quietly() {
    let mut d = Follower::new(Irc::default(), limits());
    let r = feed(
        &mut d,
        &[(O, b"STARTTLS\r\n"), (R, b":s 691 joe :failed\r\n")],
    );
    assert_eq!((r.want, r.anomalies.len()), (Want::Done, 0));
    let mut d = Follower::new(Irc::default(), limits());
    let r = feed(
        &mut d,
        &[
            (O, b"NICK joe\r\nUSER joe 0 * :J\r\n"),
            (R, b":s 001 joe :Welcome\r\n"),
        ],
    );
    assert_eq!(r.want, Want::Done);
    // A 670 nobody asked for is not an upgrade.
    let mut d = Follower::new(Irc::default(), limits());
    let r = feed(&mut d, &[(O, b"NICK joe\r\n"), (R, b":s 670 joe :go\r\n")]);
    assert_eq!(r.want, Want::More);
}

#[test]
fn empty_and_over_long_lines_are_anomalies() {
    let mut d = Follower::new(Irc::default(), limits());
    let r = feed(&mut d, &[(O, b"NICK joe\r\n"), (R, b"\r\n")]);
    assert_eq!(r.anomalies, ["malformed_message"]);
    let mut d = Follower::new(Irc::default(), limits());
    let r = feed(&mut d, &[(O, &[b'N'; 1500])]);
    assert_eq!(r.anomalies, ["line_too_long"]);
}
