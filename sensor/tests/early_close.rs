//! A TCP connection whose two directions have been delivered up to their
//! FINs gets its application records at once, not when the flow ends after
//! its close delay (5 s by default): the dissector has had every byte it
//! will get, and its state is freed while the sensor takes new flows. A
//! connection with a byte missing before a FIN keeps its dissector until the
//! flow ends, as before.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{ethernet_frame as frame, tcp_frame};
use nucleus_proto::Record;
use sensor::config::PipelineConfig;

const REQUEST: &[u8] = b"GET /report HTTP/1.0\r\nHost: example.test\r\n\r\n";
/// No Content-Length: the body ends with the connection.
const RESPONSE: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of the body";

/// The frames of one HTTP/1.0 exchange closed by FINs both ways, times in
/// µs from 1 s; `hole` leaves out the response's first 5 bytes (as if lost
/// to the mirror).
fn exchange(hole: bool) -> Vec<common::Frame> {
    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let (cp, sp) = (40_000, 80);
    let (cseq, sseq) = (1_000u32, 9_000u32);
    let req_end = cseq + 1 + REQUEST.len() as u32;
    let resp_end = sseq + 1 + RESPONSE.len() as u32;
    let response = if hole {
        tcp_frame(s, sp, c, cp, sseq + 6, req_end, "PA", 3, &RESPONSE[5..])
    } else {
        tcp_frame(s, sp, c, cp, sseq + 1, req_end, "PA", 3, RESPONSE)
    };
    vec![
        frame(1_000_000, tcp_frame(c, cp, s, sp, cseq, 0, "S", 1, &[])),
        frame(
            1_001_000,
            tcp_frame(s, sp, c, cp, sseq, cseq + 1, "SA", 1, &[]),
        ),
        frame(
            1_002_000,
            tcp_frame(c, cp, s, sp, cseq + 1, sseq + 1, "A", 2, &[]),
        ),
        frame(
            1_003_000,
            tcp_frame(c, cp, s, sp, cseq + 1, sseq + 1, "PA", 3, REQUEST),
        ),
        frame(1_004_000, response),
        frame(
            1_005_000,
            tcp_frame(s, sp, c, cp, resp_end, req_end, "FA", 4, &[]),
        ),
        frame(
            1_006_000,
            tcp_frame(c, cp, s, sp, req_end, resp_end + 1, "FA", 4, &[]),
        ),
        frame(
            1_007_000,
            tcp_frame(s, sp, c, cp, resp_end + 1, req_end + 1, "A", 5, &[]),
        ),
    ]
}

/// (records out by 1 s after the last packet, well inside the 5 s close
/// delay; records out at the end).
fn run_split(frames: &[common::Frame]) -> (Vec<Record>, Vec<Record>) {
    common::run_split(&PipelineConfig::default(), frames, Some(2_100_000))
}

fn http(records: &[Record]) -> Vec<&nucleus_proto::HttpRecord> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Http(h) => Some(&h.body),
            _ => None,
        })
        .collect()
}

fn flows(records: &[Record]) -> usize {
    records
        .iter()
        .filter(|r| matches!(r, Record::Flow(_)))
        .count()
}

#[test]
fn a_connection_closed_both_ways_gives_its_records_at_once() {
    let (early, at_end) = run_split(&exchange(false));
    let got = http(&early);
    assert_eq!(
        got.len(),
        1,
        "the HTTP record before the flow ends: {early:?}"
    );
    assert_eq!(got[0].uri.as_deref(), Some("/report"));
    assert_eq!(got[0].status_code, Some(200));
    assert_eq!(
        got[0].response_body_len,
        (RESPONSE.len() - RESPONSE.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4) as u64
    );
    // The flow itself still waits for its close delay.
    assert_eq!(flows(&early), 0);
    assert_eq!(flows(&at_end), 1);
    assert!(http(&at_end).is_empty());
}

#[test]
fn a_connection_with_a_hole_before_its_fin_keeps_its_dissector() {
    let (early, at_end) = run_split(&exchange(true));
    assert!(
        http(&early).is_empty(),
        "nothing before the flow ends: {early:?}"
    );
    let got = http(&at_end);
    assert_eq!(
        got.len(),
        1,
        "the HTTP record when the flow ends: {at_end:?}"
    );
    assert_eq!(got[0].uri.as_deref(), Some("/report"));
}
