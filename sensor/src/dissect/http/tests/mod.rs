//! Unit tests of the HTTP dissector: what a user relies on in its records
//! (one per exchange, in order, with the right lengths), whatever the
//! segmentation. Damaged input (gaps, garbage, caps) is in `losses.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::body::{Body, Chunked, End};
use super::parser::{self, ContentLength};
use super::*;
use crate::dissect::Emitted;

mod losses;

const O: Direction = Direction::Originator;
const R: Direction = Direction::Responder;

/// Drives one dissector and collects what it emits.
struct Run {
    http: Http,
    out: Vec<Emitted>,
    anomalies: Vec<&'static str>,
    ts: i64,
    last_want: Want,
}

impl Run {
    fn new() -> Self {
        Self::with(Limits::default())
    }

    fn with(limits: Limits) -> Self {
        Self {
            http: Http::new(limits),
            out: Vec::new(),
            anomalies: Vec::new(),
            ts: 1_000,
            last_want: Want::More,
        }
    }

    fn send(&mut self, dir: Direction, data: &[u8]) -> &mut Self {
        self.ts += 1;
        let mut cx = Context {
            ts_us: self.ts,
            out: &mut self.out,
            anomalies: &mut self.anomalies,
        };
        self.last_want = self.http.data(&mut cx, dir, data);
        self
    }

    fn gap(&mut self, dir: Direction, len: u64) -> &mut Self {
        self.ts += 1;
        let mut cx = Context {
            ts_us: self.ts,
            out: &mut self.out,
            anomalies: &mut self.anomalies,
        };
        self.last_want = self.http.gap(&mut cx, dir, len);
        self
    }

    fn close(&mut self) -> Vec<HttpRecord> {
        let mut cx = Context {
            ts_us: self.ts,
            out: &mut self.out,
            anomalies: &mut self.anomalies,
        };
        self.http.close(&mut cx);
        self.records()
    }

    fn records(&self) -> Vec<HttpRecord> {
        self.out
            .iter()
            .map(|e| match &e.event {
                AppEvent::Http(h) => h.clone(),
                other => panic!("not http: {other:?}"),
            })
            .collect()
    }
}

const GET1: &[u8] = b"GET /a HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\n\r\n";
const GET2: &[u8] = b"GET /b HTTP/1.1\r\nHost: example.com\r\n\r\n";
const RESP1: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
const RESP2: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop";

#[test]
fn probe_accepts_requests_and_status_lines() {
    // Ports that are not HTTP's: the content alone decides.
    let p = |dir, data: &[u8]| {
        probe(&ProbeInput {
            l4: L4::Tcp,
            dir,
            ports: (40000, 4444),
            data,
        })
    };
    let on_80 = |dir, data: &[u8]| {
        probe(&ProbeInput {
            l4: L4::Tcp,
            dir,
            ports: (40000, 80),
            data,
        })
    };
    // On port 80 a text line that is no request line waits for the
    // response; binary never does.
    assert_eq!(on_80(O, b"OPTIONSHTTP/1.1\nHost: x\n\n"), Probe::NeedMore);
    assert_eq!(on_80(O, b"get / HTTP/1.1\r\n"), Probe::NeedMore);
    assert_eq!(on_80(O, b"\x16\x03\x01\x02\x00\x01\x00"), Probe::NoMatch);
    assert_eq!(on_80(O, b"\x00\x1d\x12\x34\x01\x00"), Probe::NoMatch);
    assert_eq!(on_80(R, b"SSH-2.0-OpenSSH_9.6\r\n"), Probe::NoMatch);
    assert_eq!(on_80(O, b"GET / HTTP/1.1\r\n"), Probe::Match);
    assert_eq!(p(O, b"GET / HTTP/1.1\r\n"), Probe::Match);
    assert_eq!(p(O, b"GET /"), Probe::Match);
    assert_eq!(p(O, b"GE"), Probe::NeedMore);
    assert_eq!(p(O, b""), Probe::NeedMore);
    assert_eq!(p(O, b"CCM_POST / HTTP/1.1\r\n"), Probe::Match);
    assert_eq!(p(O, b"CCM_POST /x"), Probe::NeedMore);
    assert_eq!(p(O, b"CONNECT example.com:443 HTTP/1.1\r\n"), Probe::Match);
    assert_eq!(p(R, b"HTTP/1.1 200 OK\r\n"), Probe::Match);
    assert_eq!(p(R, b"HTTP/1."), Probe::NeedMore);
    // Not HTTP: TLS, DNS over TCP, SSH, RTSP, SIP, binary, a status line
    // from the client, UDP.
    assert_eq!(
        p(O, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        Probe::NoMatch
    );
    assert_eq!(p(O, b"\x00\x1d\x12\x34\x01\x00\x00\x01"), Probe::NoMatch);
    assert_eq!(p(O, b"SSH-2.0-OpenSSH_9.6\r\n"), Probe::NoMatch);
    assert_eq!(p(R, b"SSH-2.0-OpenSSH_9.6\r\n"), Probe::NoMatch);
    assert_eq!(p(O, b"DESCRIBE rtsp://h/x RTSP/1.0\r\n"), Probe::NoMatch);
    assert_eq!(p(O, b"INVITE sip:a@b SIP/2.0\r\n"), Probe::NoMatch);
    assert_eq!(p(O, b"\xff\xfe\x00garbage"), Probe::NoMatch);
    assert_eq!(p(O, b"HTTP/1.1 200 OK\r\n"), Probe::NoMatch);
    assert_eq!(p(R, b"GET / HTTP/1.1\r\n"), Probe::NoMatch);
    assert_eq!(
        p(O, b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        Probe::NoMatch
    );
    let udp = ProbeInput {
        l4: L4::Udp,
        dir: O,
        ports: (1, 80),
        data: b"GET / HTTP/1.1\r\n",
    };
    assert_eq!(probe(&udp), Probe::NoMatch);
}

#[test]
fn one_exchange_has_every_field() {
    let mut r = Run::new();
    r.send(O, GET1).send(R, RESP1);
    let recs = r.records();
    assert_eq!(recs.len(), 1, "emitted when the response ends");
    let h = &recs[0];
    assert_eq!(h.trans_depth, 1);
    assert_eq!(h.method.as_deref(), Some("GET"));
    assert_eq!(h.host.as_deref(), Some("example.com"));
    assert_eq!(h.uri.as_deref(), Some("/a"));
    assert_eq!(h.version.as_deref(), Some("1.1"));
    assert_eq!(h.user_agent.as_deref(), Some("t/1"));
    assert_eq!(h.status_code, Some(200));
    assert_eq!(h.status_msg.as_deref(), Some("OK"));
    assert_eq!(h.content_type.as_deref(), Some("text/plain"));
    assert_eq!(h.response_body_len, 5);
    assert_eq!(h.request_body_len, 0);
    assert_eq!(r.out[0].ts_us, 1_001, "time of the request's first byte");
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert_eq!(r.close().len(), 1);
}

#[test]
fn pipelined_requests_pair_in_order() {
    let mut r = Run::new();
    let mut reqs = GET1.to_vec();
    reqs.extend_from_slice(GET2);
    let mut resps = RESP1.to_vec();
    resps.extend_from_slice(RESP2);
    r.send(O, &reqs).send(R, &resps);
    let recs = r.close();
    assert_eq!(recs.len(), 2);
    assert_eq!(
        (
            recs[0].trans_depth,
            recs[0].uri.as_deref(),
            recs[0].status_code
        ),
        (1, Some("/a"), Some(200))
    );
    assert_eq!(
        (
            recs[1].trans_depth,
            recs[1].uri.as_deref(),
            recs[1].status_code
        ),
        (2, Some("/b"), Some(404))
    );
    assert_eq!(recs[1].response_body_len, 3);
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
}

/// The same conversation cut at every byte boundary (both directions)
/// gives the same records.
#[test]
fn split_at_every_byte_boundary() {
    let mut reqs = GET1.to_vec();
    reqs.extend_from_slice(b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n");
    let mut resps = RESP1.to_vec();
    resps.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n");
    let reference = {
        let mut r = Run::new();
        r.send(O, &reqs).send(R, &resps);
        r.close()
    };
    assert_eq!(reference.len(), 2);
    assert_eq!(reference[1].request_body_len, 3);
    assert_eq!(reference[1].response_body_len, 4);
    assert_eq!(reference[1].info_code, Some(100));
    for cut in 0..=reqs.len().max(resps.len()) {
        let mut r = Run::new();
        let (a, b) = reqs.split_at(cut.min(reqs.len()));
        let (c, d) = resps.split_at(cut.min(resps.len()));
        r.send(O, a).send(O, b).send(R, c).send(R, d);
        assert_eq!(r.close(), reference, "cut at {cut}");
        assert!(r.anomalies.is_empty(), "cut at {cut}: {:?}", r.anomalies);
    }
    // One byte at a time.
    let mut r = Run::new();
    for b in &reqs {
        r.send(O, std::slice::from_ref(b));
    }
    for b in &resps {
        r.send(R, std::slice::from_ref(b));
    }
    assert_eq!(r.close(), reference);
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let mut b = Body::Chunked(Chunked::SizeStart);
    let data =
        b"5;name=value;x\r\nhello\r\nA\r\n0123456789\r\n0\r\nExpires: never\r\nX: y\r\n\r\nNEXT";
    let step = b.data(data);
    assert_eq!(step.end, End::Done);
    assert_eq!(step.body, 15);
    assert_eq!(&data[step.consumed..], b"NEXT");
    // Bad sizes are reported, not panicked on.
    let mut b = Body::Chunked(Chunked::SizeStart);
    assert_eq!(b.data(b"zz\r\n").end, End::Broken("bad_chunk_size"));
    let mut b = Body::Chunked(Chunked::SizeStart);
    assert_eq!(
        b.data(b"10000000000000000\r\n").end,
        End::Broken("chunk_size_overflow")
    );
    let mut b = Body::Chunked(Chunked::SizeStart);
    assert_eq!(
        b.data(b"1\r\nab\r\n").end,
        End::Broken("missing_chunk_crlf")
    );
}

#[test]
fn bad_chunk_size_is_an_anomaly_and_the_next_request_is_found() {
    let mut r = Run::new();
    r.send(
        O,
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nXYZ\r\nmore junk\r\n",
    )
    .send(O, GET2);
    let recs = r.close();
    assert!(r.anomalies.contains(&"bad_chunk_size"), "{:?}", r.anomalies);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].uri.as_deref(), Some("/b"));
}

#[test]
fn continue_is_skipped_and_kept_as_info_code() {
    let mut r = Run::new();
    r.send(
        O,
        b"POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    )
    .send(R, b"HTTP/1.1 100 Continue\r\n\r\n")
    .send(O, b"data")
    .send(
        R,
        b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    let recs = r.close();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].status_code, Some(200));
    assert_eq!(recs[0].info_code, Some(100));
    assert_eq!(recs[0].request_body_len, 4);
    assert_eq!(recs[0].response_body_len, 2);
}

#[test]
fn connect_then_tunnel_is_probed_again() {
    let mut r = Run::new();
    r.send(
        O,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    )
    // The client starts TLS before the answer: not an anomaly.
    .send(O, b"\x16\x03\x01\x00\x05hello");
    assert_eq!(r.last_want, Want::More);
    r.send(R, b"HTTP/1.1 200 Connection Established\r\n\r\n");
    // The tunnel is another protocol: the flow is identified afresh.
    assert_eq!(r.last_want, Want::Reprobe);
    let recs = r.records();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].method.as_deref(), Some("CONNECT"));
    assert_eq!(recs[0].uri.as_deref(), Some("example.com:443"));
    assert_eq!(recs[0].status_code, Some(200));
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
}

#[test]
fn failed_connect_keeps_http() {
    let mut r = Run::new();
    r.send(O, b"CONNECT h:443 HTTP/1.1\r\n\r\n")
        .send(
            R,
            b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
        )
        .send(O, GET2)
        .send(R, RESP2);
    let recs = r.close();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].status_code, Some(407));
    assert_eq!(recs[1].status_code, Some(404));
}

#[test]
fn switching_protocols_ends_the_flow() {
    let mut r = Run::new();
    r.send(O, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
        .send(
            R,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
        );
    assert_eq!(r.last_want, Want::Done);
    assert_eq!(r.records()[0].status_code, Some(101));
}

#[test]
fn head_204_304_have_no_body() {
    let mut r = Run::new();
    r.send(
        O,
        b"HEAD / HTTP/1.1\r\n\r\nGET /n HTTP/1.1\r\n\r\nGET /m HTTP/1.1\r\n\r\nGET /z HTTP/1.1\r\n\r\n",
    )
    .send(
        R,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n\
          HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n\
          HTTP/1.1 304 Not Modified\r\n\r\n\
          HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
    );
    let recs = r.close();
    let got: Vec<_> = recs
        .iter()
        .map(|h| (h.status_code, h.response_body_len))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some(200), 0),
            (Some(204), 0),
            (Some(304), 0),
            (Some(200), 1)
        ]
    );
}

#[test]
fn close_delimited_response() {
    let mut r = Run::new();
    r.send(O, b"GET / HTTP/1.0\r\n\r\n")
        .send(R, b"HTTP/1.0 200 OK\r\n\r\n0123456789")
        .send(R, b"abc");
    assert!(r.records().is_empty(), "not over until the close");
    let recs = r.close();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].response_body_len, 13);
}

#[test]
fn request_without_response_and_response_without_request() {
    let mut r = Run::new();
    r.send(O, GET1);
    let recs = r.close();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].status_code, None);

    let mut r = Run::new();
    r.send(R, RESP1);
    let recs = r.close();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].method, None);
    assert_eq!(recs[0].status_code, Some(200));
    assert_eq!(recs[0].response_body_len, 5);
}

#[test]
fn http09_request_and_headerless_response() {
    let mut r = Run::new();
    r.send(O, b"GET /HTTP/1.1\r\nHost: www.google.com\r\n\r\n")
        .send(R, b"<html>body</html>");
    let recs = r.close();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].uri.as_deref(), Some("/HTTP/1.1"));
    assert_eq!(recs[0].version.as_deref(), Some("0.9"));
    assert_eq!(recs[0].host.as_deref(), Some("www.google.com"));
    assert_eq!(recs[0].response_body_len, 17);
    // A bare 0.9 line without an empty line after it.
    let mut r = Run::new();
    r.send(O, b"GET /\r\n").send(R, b"plain");
    let recs = r.close();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].uri.as_deref(), Some("/"));
    assert_eq!(recs[0].response_body_len, 5);
}

#[test]
fn header_parsing_details() {
    let head = b"POST /x HTTP/1.1\r\nHOST: A.example\r\nuser-agent: ua\r\n folded\r\nContent-Length: 7\r\nContent-Length: 7\r\nnocolon\r\n\r\n";
    let req = parser::parse_request(head).unwrap();
    assert_eq!(req.fields.host.as_deref(), Some(&b"A.example"[..]));
    assert_eq!(req.fields.user_agent.as_deref(), Some(&b"ua folded"[..]));
    assert_eq!(req.fields.content_length, ContentLength::Valid(7));
    assert_eq!(req.fields.malformed, 1);
    let req =
        parser::parse_request(b"GET / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n")
            .unwrap();
    assert_eq!(req.fields.content_length, ContentLength::Invalid);
    let req = parser::parse_request(
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    )
    .unwrap();
    assert_eq!(req.fields.content_length, ContentLength::Invalid);
    assert!(req.fields.chunked);
    let st = parser::parse_status_line(b"HTTP/1.1 2XX Weird").unwrap();
    assert_eq!(st.code, None);
    let st = parser::parse_status_line(b"HTTP/1.0 404").unwrap();
    assert_eq!((st.code, st.reason), (Some(404), &b""[..]));
    assert_eq!(parser::text(b"a\xffb"), "a\\xffb");
}
