use super::*;
use crate::dissect::Want;
use crate::dissect::starttls::testutil::{O, R, feed, feed_bytewise, limits, probe_tcp};

#[test]
fn the_probe_wants_an_ssl_request_from_the_client() {
    let p = |dir, data| probe_tcp(probe, 15432, dir, data);
    assert_eq!(p(O, SSL_REQUEST), Probe::Match);
    assert_eq!(p(O, &SSL_REQUEST[..5]), Probe::NeedMore);
    // A plaintext StartupMessage (protocol 3.0).
    assert_eq!(p(O, &[0, 0, 0, 0x29, 0, 3, 0, 0]), Probe::NoMatch);
    assert_eq!(p(R, SSL_REQUEST), Probe::NoMatch);
}

#[test]
fn s_hands_over_the_bytes_after_it() {
    let mut d = Follower::new(Postgres, limits());
    let r = feed_bytewise(&mut d, &[(O, SSL_REQUEST)]);
    assert_eq!(r.want, Want::More);
    let r = feed(&mut d, &[(R, b"S\x16\x03")]);
    assert_eq!(r.want, Want::Reprobe);
    assert_eq!(d.handover(R), b"\x16\x03");
}

#[test]
fn n_ends_quietly() {
    let mut d = Follower::new(Postgres, limits());
    let r = feed(&mut d, &[(O, SSL_REQUEST), (R, b"N")]);
    assert_eq!((r.want, r.anomalies.len()), (Want::Done, 0));
}
