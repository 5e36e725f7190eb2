//! Unit tests of the HTTP dissector on damaged input: gaps in heads and
//! bodies, garbage, a broken request, and the caps on a head and on
//! pending requests. What each must keep is what a user relies on: the
//! records of the exchanges around the damage, and counted anomalies.

use super::*;

#[test]
fn gap_inside_a_known_length_body_is_skipped_not_counted() {
    let mut r = Run::new();
    r.send(O, GET1)
        .send(O, GET2)
        .send(R, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
        .gap(R, 5)
        .send(R, b"cde")
        .send(R, RESP2);
    let recs = r.close();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].response_body_len, 5);
    assert_eq!(recs[1].status_code, Some(404));
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
}

#[test]
fn gap_in_headers_resyncs_at_the_next_request() {
    let mut r = Run::new();
    r.send(O, b"GET /lost HTTP/1.1\r\nHo").gap(O, 30).send(
        O,
        b"st-rest: x\r\n\r\nGET /found HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let recs = r.close();
    assert!(r.anomalies.contains(&"gap_lost_sync"), "{:?}", r.anomalies);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].uri.as_deref(), Some("/found"));
}

#[test]
fn gap_beyond_a_body_resyncs_responses() {
    let mut r = Run::new();
    r.send(O, GET1)
        .send(O, GET2)
        .send(R, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
        .gap(R, 50)
        .send(R, b"tail of something\r\n")
        .send(R, RESP2);
    let recs = r.close();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].response_body_len, 2);
    assert_eq!(recs[1].status_code, Some(404));
}

#[test]
fn garbage_is_counted_and_survived() {
    let mut r = Run::new();
    r.send(O, b"\x00\x01\x02 not http at all\r\n")
        .send(O, GET2)
        .send(R, b"\xff\xfe garbage\r\n")
        .send(R, RESP2);
    let recs = r.close();
    assert!(r.anomalies.contains(&"malformed_request_line"));
    assert!(r.anomalies.contains(&"malformed_status_line"));
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].uri.as_deref(), Some("/b"));
    assert_eq!(recs[0].status_code, Some(404));
    // Deterministic pseudo-random bytes in random pieces: no panic, and
    // memory stays within the cap.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..200 {
        let mut r = Run::with(Limits {
            max_pending_transactions: 4,
            max_buffered_bytes: 512,
        });
        for _ in 0..50 {
            let len = (next() % 300) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if next() % 3 == 0 {
                bytes.extend_from_slice(b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
            }
            if next() % 3 == 0 {
                bytes.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            }
            let dir = if next() % 2 == 0 { O } else { R };
            if next() % 10 == 0 {
                r.gap(dir, next() % 100);
            } else {
                r.send(dir, &bytes);
            }
            assert!(r.http.sides.iter().all(|s| s.buf.len() <= 512));
            assert!(r.http.txs.len() <= 4);
        }
        r.close();
    }
}

#[test]
fn head_over_the_cap_gives_the_direction_up() {
    let mut r = Run::with(Limits {
        max_pending_transactions: 8,
        max_buffered_bytes: 64,
    });
    r.send(O, b"GET / HTTP/1.1\r\n");
    for _ in 0..10 {
        r.send(O, b"X-Long: aaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert!(r.anomalies.contains(&"head_too_long"));
    assert_eq!(r.last_want, Want::More, "the responder still counts");
    r.send(R, b"\x00\x00")
        .send(R, &[b'x'; 100])
        .send(R, b"\r\n");
    // Responder garbage resynchronises, it does not give up; a responder
    // head over the cap does.
    r.send(R, b"HTTP/1.1 200 OK\r\n");
    for _ in 0..10 {
        r.send(R, b"X-Long: aaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert_eq!(r.last_want, Want::Done, "both directions given up");
}

#[test]
fn pending_queue_is_bounded() {
    let mut r = Run::with(Limits {
        max_pending_transactions: 2,
        max_buffered_bytes: 4096,
    });
    for _ in 0..5 {
        r.send(O, GET2);
    }
    assert!(r.anomalies.contains(&"too_many_pending_transactions"));
    assert_eq!(r.records().len(), 3, "the oldest reported early");
    assert!(r.http.txs.len() <= 2);
    // Responses for the requests reported early are skipped, so the next
    // ones still pair with their own requests.
    for _ in 0..5 {
        r.send(R, RESP2);
    }
    let recs = r.close();
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[3].status_code, Some(404));
    assert_eq!(recs[4].status_code, Some(404));
    assert_eq!(recs[0].status_code, None);
}

#[test]
fn broken_request_answered_by_the_server_gives_a_response_record() {
    let mut r = Run::new();
    r.send(O, b"GET/ HTTP/1.1\nHost: www.google.com\n\n").send(
        R,
        b"HTTP/1.0 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad",
    );
    let recs = r.close();
    assert!(r.anomalies.contains(&"malformed_request_line"));
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].method, None);
    assert_eq!(recs[0].status_code, Some(400));
    assert_eq!(recs[0].response_body_len, 3);
}

#[test]
fn message_right_after_a_hole_is_read() {
    // The hole holds the end of the first body and nothing else: the next
    // response starts right after it.
    let mut r = Run::new();
    r.send(O, GET1)
        .send(O, GET2)
        .send(R, b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\n")
        .gap(R, 14)
        .send(R, RESP2);
    let recs = r.close();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].status_code, Some(404));
    assert_eq!(recs[1].response_body_len, 3);
}
