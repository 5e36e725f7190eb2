//! A stand-in for the EC2 instance metadata service (IMDSv2) on loopback,
//! for the tests of `deploy/systemd/mirror-sensor-config`.
//!
//! It answers `PUT /latest/api/token` with a session token and `GET
//! /latest/user-data` with the user data given (404 when there is none),
//! only when the request carries that token (401 otherwise), as IMDSv2 does.
//! Every request is recorded. One request per connection, a bounded request
//! size, and the serving thread stops when the handle is dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The token the fake hands out.
pub const TOKEN: &str = "AQAEAFake-imdsv2-token==";
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// One request the fake received: method, path, and whether it carried the
/// token (`X-aws-ec2-metadata-token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsRequest {
    /// `PUT` or `GET`.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The session token header matched [`TOKEN`].
    pub with_token: bool,
}

/// A running fake metadata service.
pub struct FakeImds {
    /// Where it listens (`http://{addr}` is the endpoint).
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<ImdsRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeImds {
    /// Starts serving `user_data` (`None`: the instance has none).
    pub fn start(user_data: Option<&[u8]>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake IMDS");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let user_data = user_data.map(<[u8]>::to_vec);
        let thread = {
            let requests = Arc::clone(&requests);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if let Some(r) = serve(stream, user_data.as_deref()) {
                                requests.lock().expect("requests lock").push(r);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Self {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// The endpoint URL (`MIRROR_SENSOR_IMDS`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<ImdsRequest> {
        self.requests.lock().expect("requests lock").clone()
    }
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, user_data: Option<&[u8]>) -> Option<ImdsRequest> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(2);
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_BYTES || Instant::now() > deadline {
            return None;
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let header = |name: &str| {
        text.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let with_token = header("X-aws-ec2-metadata-token").as_deref() == Some(TOKEN);
    let (status, body): (&str, Vec<u8>) = match (method.as_str(), path.as_str()) {
        ("PUT", "/latest/api/token") => {
            if header("X-aws-ec2-metadata-token-ttl-seconds").is_some() {
                ("200 OK", TOKEN.as_bytes().to_vec())
            } else {
                ("400 Bad Request", Vec::new())
            }
        }
        ("GET", "/latest/user-data") if !with_token => ("401 Unauthorized", Vec::new()),
        ("GET", "/latest/user-data") => match user_data {
            Some(data) => ("200 OK", data.to_vec()),
            None => ("404 Not Found", Vec::new()),
        },
        _ => ("404 Not Found", Vec::new()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.write_all(&body);
    Some(ImdsRequest {
        method,
        path,
        with_token,
    })
}
