use super::*;
use crate::dissect::Want;
use crate::dissect::starttls::testutil::{O, R, feed, feed_bytewise, limits, probe_tcp};

fn probe_of(dir: Direction, data: &[u8]) -> Probe {
    probe_tcp(probe, 52220, dir, data)
}

#[test]
fn the_probe_wants_a_stream_header() {
    assert_eq!(
        probe_of(O, b"<stream:stream xmlns='jabber:client' to='a'>"),
        Probe::Match
    );
    assert_eq!(
        probe_of(R, b"<?xml version='1.0'?>\n<stream:stream xmlns:db='x'"),
        Probe::Match
    );
    assert_eq!(probe_of(O, b"<?xml version='1.0'?>"), Probe::NeedMore);
    assert_eq!(probe_of(O, b"<stream:str"), Probe::NeedMore);
    assert_eq!(
        probe_of(O, b"<?xml version='1.0'?><soap:Envelope>"),
        Probe::NoMatch
    );
    assert_eq!(probe_of(O, b"<html>"), Probe::NoMatch);
    assert_eq!(probe_of(O, b"GET / HTTP/1.1\r\n"), Probe::NoMatch);
}

const OPEN: &[u8] = b"<stream:stream xmlns='jabber:client' to='a' version='1.0'>";
const SERVER_OPEN: &[u8] = b"<?xml version='1.0'?><stream:stream from='a' id='1' version='1.0'>\
<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>";

#[test]
fn proceed_hands_over_the_rest() {
    let mut d = Follower::new(Xmpp::default(), limits());
    let r = feed(
        &mut d,
        &[
            (O, OPEN),
            (R, SERVER_OPEN),
            (O, b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            (
                R,
                b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\x16\x03\x01",
            ),
        ],
    );
    assert_eq!(r.want, Want::Reprobe);
    assert_eq!(d.handover(R), b"\x16\x03\x01");
}

#[test]
fn open_and_close_tags_split_across_segments() {
    let mut d = Follower::new(Xmpp::default(), limits());
    let r = feed_bytewise(
        &mut d,
        &[
            (O, OPEN),
            (R, SERVER_OPEN),
            (
                O,
                b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'></starttls>",
            ),
            (
                R,
                b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'></proceed>",
            ),
        ],
    );
    assert_eq!(r.want, Want::Reprobe, "{d:?}");
}

#[test]
fn failure_or_plaintext_auth_ends_quietly() {
    let mut d = Follower::new(Xmpp::default(), limits());
    let r = feed(
        &mut d,
        &[(O, OPEN), (O, b"<starttls/>"), (R, b"<failure xmlns='x'/>")],
    );
    assert_eq!((r.want, r.anomalies.len()), (Want::Done, 0));
    let mut d = Follower::new(Xmpp::default(), limits());
    let r = feed(
        &mut d,
        &[(O, OPEN), (O, b"<auth mechanism='PLAIN'>AGEAYg==</auth>")],
    );
    assert_eq!(r.want, Want::Done);
}

#[test]
fn garbage_and_over_long_tags_are_anomalies() {
    let mut d = Follower::new(Xmpp::default(), limits());
    let r = feed(&mut d, &[(O, OPEN), (R, b"no tag here>")]);
    assert_eq!(r.anomalies, ["malformed_tag"]);
    let mut d = Follower::new(Xmpp::default(), limits());
    let r = feed(&mut d, &[(O, &[b'<'; 1500])]);
    assert_eq!(r.anomalies, ["tag_too_long"]);
}
