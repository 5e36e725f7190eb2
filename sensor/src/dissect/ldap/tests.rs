use super::*;
use crate::dissect::Want;
use crate::dissect::starttls::testutil::{O, R, feed, feed_bytewise, limits, probe_tcp};

/// StartTLS request, messageID 1 (as OpenLDAP sends it).
const REQUEST: &[u8] = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x161.3.6.1.4.1.1466.20037";

fn response(id: u8, code: u8) -> Vec<u8> {
    vec![
        0x30, 0x0c, 0x02, 0x01, id, 0x78, 0x07, 0x0a, 0x01, code, 0x04, 0x00, 0x04, 0x00,
    ]
}

fn ldap() -> Follower<Ldap> {
    Follower::new(
        Ldap {
            cap: 1024,
            start_tls_id: None,
        },
        limits(),
    )
}

#[test]
fn the_probe_wants_a_start_tls_request_first() {
    let p = |dir, data| probe_tcp(probe, 3890, dir, data);
    assert_eq!(p(O, REQUEST), Probe::Match);
    assert_eq!(p(O, &REQUEST[..10]), Probe::NeedMore);
    // A bind request is LDAP, but not one the sensor follows.
    assert_eq!(
        p(
            O,
            b"\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x80\x00"
        ),
        Probe::NoMatch
    );
    let mut other_oid = REQUEST.to_vec();
    other_oid[30] = b'8';
    assert_eq!(p(O, &other_oid), Probe::NoMatch);
    assert_eq!(p(O, b"\x16\x03\x01\x00"), Probe::NoMatch);
    assert_eq!(p(R, REQUEST), Probe::NoMatch);
}

#[test]
fn a_success_response_hands_over_the_rest() {
    let mut d = ldap();
    let mut resp = response(1, 0);
    resp.extend_from_slice(b"\x16\x03");
    let r = feed_bytewise(&mut d, &[(O, REQUEST)]);
    assert_eq!(r.want, Want::More);
    let r = feed(&mut d, &[(R, &resp)]);
    assert_eq!(r.want, Want::Reprobe);
    assert_eq!(d.handover(R), b"\x16\x03");
}

#[test]
fn an_error_result_ends_quietly_and_another_id_is_not_the_answer() {
    let mut d = ldap();
    let r = feed(
        &mut d,
        &[(O, REQUEST), (R, &response(7, 0)), (R, &response(1, 2))],
    );
    assert_eq!((r.want, r.anomalies.len()), (Want::Done, 0));
}

#[test]
fn garbage_and_over_long_messages_are_anomalies() {
    let mut d = ldap();
    let r = feed(&mut d, &[(O, REQUEST), (R, b"\x04\x00")]);
    assert_eq!(r.anomalies, ["malformed_message"]);
    let mut d = ldap();
    let r = feed(&mut d, &[(O, REQUEST), (R, b"\x30\x84\x00\x10\x00\x00")]);
    assert_eq!(r.anomalies, ["message_too_long"]);
    let mut d = ldap();
    let r = feed(&mut d, &[(O, REQUEST), (R, b"\x30\x80")]);
    assert_eq!(r.anomalies, ["malformed_message"]);
}
