//! A fault-injecting proxy in front of the AWS emulator, and a fake
//! instance metadata service, both on loopback.
//!
//! The proxy forwards each Query-protocol request to moto and logs it
//! (action, parameters, time). It answers itself where moto cannot:
//! - injected faults ([`Fault`]): throttling, server errors, refusals such as
//!   `NetworkInterfaceNotSupported`, in the error document form of the EC2
//!   API reference (`Response/Errors/Error`, `RequestID`);
//! - operations moto does not implement (`CreateTrafficMirrorFilterRule`,
//!   `DeleteTrafficMirrorTarget`, `DeleteTrafficMirrorFilter`), with the
//!   success documents the EC2 API reference publishes;
//! - ClientToken idempotency of creates, which AWS honours and moto does not:
//!   a create repeating an earlier token gets the earlier answer.
//!
//! It can also hold creates until a number of passes have listed filters
//! (the last listing of a pass), so that two sensors' passes interleave.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Logged {
    /// When it arrived.
    pub at: Instant,
    /// `Action`.
    pub action: String,
    /// Every form parameter.
    pub params: BTreeMap<String, String>,
    /// The status answered.
    pub status: u16,
    /// The request's head (request line and headers).
    pub head: String,
}

/// An answer the proxy gives instead of moto's.
#[derive(Debug, Clone)]
pub struct Fault {
    /// For this action...
    pub action: String,
    /// ...when this parameter has this value (any request when `None`)...
    pub when: Option<(String, String)>,
    /// ...this many times (then moto answers again).
    pub times: usize,
    /// HTTP status.
    pub status: u16,
    /// AWS error code.
    pub code: String,
}

#[derive(Default)]
struct State {
    log: Vec<Logged>,
    faults: Vec<Fault>,
    tokens: HashMap<(String, String), (u16, Vec<u8>)>,
    hold_creates_until_passes: usize,
}

/// Serialises creates that carry a ClientToken, as AWS does, so that two
/// concurrent creates with one token make one resource.
static CREATE_LOCK: Mutex<()> = Mutex::new(());

/// The proxy; stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

/// An EC2 error document as the API reference shows it.
pub fn error_document(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
         <Message>{message}</Message></Error></Errors><RequestID>proxy-{code}</RequestID></Response>"
    )
}

fn emulated(action: &str, params: &BTreeMap<String, String>) -> Option<String> {
    let ns = "xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"";
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    match action {
        "CreateTrafficMirrorFilterRule" => Some(format!(
            "<CreateTrafficMirrorFilterRuleResponse {ns}><requestId>proxy</requestId>\
             <trafficMirrorFilterRule><trafficMirrorFilterRuleId>tmfr-{}{}</trafficMirrorFilterRuleId>\
             <trafficMirrorFilterId>{}</trafficMirrorFilterId><trafficDirection>{}</trafficDirection>\
             <ruleNumber>{}</ruleNumber><ruleAction>accept</ruleAction></trafficMirrorFilterRule>\
             <clientToken>{}</clientToken></CreateTrafficMirrorFilterRuleResponse>",
            get("TrafficDirection"),
            get("RuleNumber"),
            get("TrafficMirrorFilterId"),
            get("TrafficDirection"),
            get("RuleNumber"),
            get("ClientToken"),
        )),
        "DeleteTrafficMirrorTarget" => Some(format!(
            "<DeleteTrafficMirrorTargetResponse {ns}><requestId>proxy</requestId>\
             <trafficMirrorTargetId>{}</trafficMirrorTargetId></DeleteTrafficMirrorTargetResponse>",
            get("TrafficMirrorTargetId")
        )),
        "DeleteTrafficMirrorFilter" => Some(format!(
            "<DeleteTrafficMirrorFilterResponse {ns}><requestId>proxy</requestId>\
             <trafficMirrorFilterId>{}</trafficMirrorFilterId></DeleteTrafficMirrorFilterResponse>",
            get("TrafficMirrorFilterId")
        )),
        _ => None,
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `a=b&c=d` form bodies.
pub fn parse_form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Reads one HTTP/1.1 request or response: head and Content-Length body.
/// Without a length a request has no body, and a response runs until the
/// peer closes.
fn read_message(stream: &mut TcpStream, request: bool) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the head ended"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    let mut body = buf[head_end..].to_vec();
    match length {
        Some(len) => {
            while body.len() < len {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        None if request => body.clear(),
        None => {
            stream.read_to_end(&mut body)?;
        }
    }
    Ok((head, body))
}

fn respond(stream: &mut TcpStream, status: u16, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// Forwards a request to moto; returns its status and body.
fn forward(upstream: SocketAddr, head: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut up = TcpStream::connect(upstream)?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut out = format!("{request_line}\r\n");
    for l in lines.filter(|l| !l.is_empty()) {
        let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
        if name != "connection" && name != "content-length" {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    up.write_all(out.as_bytes())?;
    up.write_all(body)?;
    let (head, body) = read_message(&mut up, false)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    Ok((status, body))
}

fn serve(mut stream: TcpStream, upstream: SocketAddr, state: &Mutex<State>) {
    let Ok((head, body)) = read_message(&mut stream, true) else {
        return;
    };
    let params = parse_form(&String::from_utf8_lossy(&body));
    let action = params.get("Action").cloned().unwrap_or_default();
    let token = params
        .get("ClientToken")
        .filter(|_| action.starts_with("Create"))
        .map(|t| (action.clone(), t.clone()));
    if action == "CreateTrafficMirrorSession" {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = state.lock().unwrap();
            let passes = s
                .log
                .iter()
                .filter(|l| l.action == "DescribeTrafficMirrorFilters")
                .count();
            if passes >= s.hold_creates_until_passes || Instant::now() > deadline {
                break;
            }
            drop(s);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _one_create = token.as_ref().map(|_| CREATE_LOCK.lock().unwrap());
    let at = Instant::now();
    let (status, answer) = {
        let mut s = state.lock().unwrap();
        let fault = s.faults.iter_mut().find(|f| {
            f.times > 0
                && f.action == action
                && f.when
                    .as_ref()
                    .is_none_or(|(k, v)| params.get(k) == Some(v))
        });
        if let Some(f) = fault {
            f.times -= 1;
            let doc = error_document(&f.code, "injected by the test proxy");
            Some((f.status, doc.into_bytes()))
        } else if let Some(known) = token.as_ref().and_then(|t| s.tokens.get(t)) {
            Some(known.clone())
        } else {
            emulated(&action, &params).map(|doc| (200, doc.into_bytes()))
        }
    }
    .unwrap_or_else(|| {
        forward(upstream, &head, &body).unwrap_or_else(|e| (502, e.to_string().into_bytes()))
    });
    {
        let mut s = state.lock().unwrap();
        if let Some(t) = token.filter(|_| status == 200) {
            s.tokens
                .entry(t)
                .or_insert_with(|| (status, answer.clone()));
        }
        s.log.push(Logged {
            at,
            action,
            params,
            status,
            head: head.clone(),
        });
    }
    respond(&mut stream, status, &answer);
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&state), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = Arc::clone(&s);
                std::thread::spawn(move || serve(conn, upstream, &s));
            }
        });
        Self {
            endpoint: format!("http://{addr}"),
            addr,
            state,
            stop,
        }
    }

    /// Adds a fault.
    pub fn inject(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push(fault);
    }

    /// Holds session creates until `passes` listings of filters were seen.
    pub fn hold_creates_until_passes(&self, passes: usize) {
        self.state.lock().unwrap().hold_creates_until_passes = passes;
    }

    /// Everything seen so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    /// Requests of `action` seen so far.
    pub fn calls(&self, action: &str) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.action == action)
            .collect()
    }

    /// Forgets the log.
    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// A fake instance metadata service (IMDSv2): a token by PUT, then the
/// region and a role's credentials by GET with the token. Logs every
/// request as (method, path, carried the token).
pub struct FakeImds {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<(String, String, bool)>>>,
    stop: Arc<AtomicBool>,
}

impl FakeImds {
    /// Serves credentials that expire `expires_in` from now.
    pub fn start(expires_in: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind IMDS");
        let addr = listener.local_addr().expect("IMDS address");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, st) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let Ok((head, _)) = read_message(&mut conn, true) else {
                    continue;
                };
                let mut words = head.split_whitespace();
                let method = words.next().unwrap_or("").to_string();
                let path = words.next().unwrap_or("").to_string();
                let lower = head.to_ascii_lowercase();
                let token = lower.contains("x-aws-ec2-metadata-token: imds-token");
                let ttl = lower.contains("x-aws-ec2-metadata-token-ttl-seconds:");
                l.lock()
                    .unwrap()
                    .push((method.clone(), path.clone(), token));
                let expiration = std::time::SystemTime::now() + expires_in;
                let expiration = humantime::format_rfc3339_seconds(expiration);
                let (status, body) = match (method.as_str(), path.as_str()) {
                    ("PUT", "/latest/api/token") if ttl => (200, "imds-token".to_string()),
                    (_, _) if !token => (401, String::new()),
                    ("GET", "/latest/meta-data/placement/region") => (200, "us-east-1".into()),
                    ("GET", "/latest/meta-data/iam/security-credentials/") => {
                        (200, "sensor-role".into())
                    }
                    ("GET", "/latest/meta-data/iam/security-credentials/sensor-role") => (
                        200,
                        format!(
                            "{{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAFAKE\",\
                             \"SecretAccessKey\":\"secret\",\"Token\":\"session\",\"Expiration\":\"{expiration}\"}}"
                        ),
                    ),
                    _ => (404, String::new()),
                };
                respond(&mut conn, status, body.as_bytes());
            }
        });
        Self {
            endpoint: format!("http://{addr}"),
            addr,
            log,
            stop,
        }
    }

    /// Requests seen: (method, path, carried the token).
    pub fn log(&self) -> Vec<(String, String, bool)> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}
