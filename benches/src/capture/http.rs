//! HTTP/1.1 connections: who connects to whom, what is asked and answered
//! (start lines, real-looking headers, bodies of web-like sizes), and the
//! connection's life (handshake, keep-alive requests with think time, FIN
//! teardown from either side, RST, refused connections).

use std::time::{Duration, UNIX_EPOCH};

use super::content::{BodyKind, Message};
use super::flow::{Flow, FlowKind};
use super::rng::Rng;
use super::tcp::{FinalAck, TcpPath, TcpPlanner};
use super::topology::{
    Direction, Endpoints, FlowAddresses, PeerPlace, Topology, ephemeral_port, peer_ipv4, peer_ipv6,
};

/// Inner frame size of jumbo sessions: a 9001-byte VPC MTU leaves room
/// for the mirroring overhead under this.
const JUMBO_FRAME_BYTES: u16 = 8900;
/// TCP payload per segment on a 1500-byte MTU with timestamps.
const STANDARD_SEGMENT_PAYLOAD: u16 = 1448;

const HOSTS: &[&str] = &[
    "www.example.com", "shop.example.com", "api.example.com", "static.example.net",
    "cdn.example.org", "orders.internal.example", "auth.example.com", "images.example.net",
];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "curl/8.5.0", "python-requests/2.31.0", "Go-http-client/1.1", "ELB-HealthChecker/2.0",
    "aws-sdk-java/2.25.40 Linux/5.10 OpenJDK_64-Bit_Server_VM/17.0.10",
];
const SERVERS: &[&str] = &["nginx/1.24.0", "Apache/2.4.58 (Ubuntu)", "envoy", "gunicorn", "Kestrel"];

/// What kind of resource a request names; decides type and size.
#[derive(Debug, Clone, Copy)]
enum Resource {
    Page,
    Api,
    Script,
    Style,
    Image,
    Download,
}

/// One request/response pair, before it becomes bytes.
#[derive(Debug, Clone)]
pub struct Exchange {
    resource: Resource,
    post_body_len: u32,
    status: u16,
    response_body_len: u32,
    path_id: u32,
}

impl Exchange {
    /// Draws a request and the shape of its answer.
    pub fn draw(rng: &mut Rng) -> Self {
        let resource = match rng.weighted(&[20, 30, 12, 8, 27, 3]) {
            0 => Resource::Page,
            1 => Resource::Api,
            2 => Resource::Script,
            3 => Resource::Style,
            4 => Resource::Image,
            _ => Resource::Download,
        };
        let post_body_len = match resource {
            Resource::Api if rng.chance(0.35) => rng.log_uniform(40, 48 * 1024) as u32,
            _ => 0,
        };
        let status = match rng.weighted(&[86, 5, 4, 3, 2]) {
            0 if post_body_len > 0 => 201,
            0 => 200,
            1 if post_body_len == 0 => 304,
            1 | 2 => 404,
            3 => 301,
            _ => 503,
        };
        let full_body_len = match resource {
            Resource::Page => rng.log_uniform(2 * 1024, 96 * 1024),
            Resource::Api => rng.log_uniform(60, 16 * 1024),
            Resource::Script => rng.log_uniform(4 * 1024, 400 * 1024),
            Resource::Style => rng.log_uniform(2 * 1024, 120 * 1024),
            Resource::Image => rng.log_uniform(6 * 1024, 1200 * 1024),
            Resource::Download => rng.log_uniform(1 << 20, 6 << 20),
        } as u32;
        let response_body_len = match status {
            200 | 201 => full_body_len,
            304 => 0,
            _ => rng.range(150, 600) as u32,
        };
        Self { resource, post_body_len, status, response_body_len, path_id: rng.next_u32() }
    }

    /// Application bytes of the pair, headers included (approximately).
    pub fn approximate_bytes(&self) -> u64 {
        600 + u64::from(self.post_body_len) + u64::from(self.response_body_len)
    }

    fn request(&self, rng: &mut Rng, host: &str, user_agent: &str) -> Message {
        let path = match self.resource {
            Resource::Page if self.path_id % 5 == 0 => "/".to_string(),
            Resource::Page => format!("/products/{}.html", self.path_id % 50_000),
            Resource::Api => format!("/api/v1/items/{}?fields=id,name,price", self.path_id % 100_000),
            Resource::Script => format!("/static/js/app.{:08x}.js", self.path_id),
            Resource::Style => format!("/static/css/main.{:08x}.css", self.path_id),
            Resource::Image => format!("/images/{}/{}.jpg", self.path_id % 97, self.path_id),
            Resource::Download => format!("/downloads/release-{}.tar.gz", self.path_id % 300),
        };
        let method = if self.post_body_len > 0 { "POST" } else { "GET" };
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\n");
        head.push_str(match self.resource {
            Resource::Page => "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n",
            Resource::Api => "Accept: application/json\r\n",
            Resource::Image => "Accept: image/avif,image/webp,image/*,*/*;q=0.8\r\n",
            _ => "Accept: */*\r\n",
        });
        head.push_str("Accept-Encoding: gzip, deflate, br\r\n");
        if user_agent.starts_with("Mozilla") {
            head.push_str("Accept-Language: en-US,en;q=0.9\r\n");
            head.push_str(&format!("Cookie: session={:016x}; theme=light\r\n", rng.next_u64()));
        }
        if self.status == 304 {
            head.push_str(&format!("If-None-Match: \"{:x}\"\r\n", self.path_id));
        }
        if self.post_body_len > 0 {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", self.post_body_len));
        }
        head.push_str("Connection: keep-alive\r\n\r\n");
        Message { head: head.into_bytes(), body_len: self.post_body_len, body: BodyKind::Text, salt: rng.next_u32() }
    }

    fn response(&self, rng: &mut Rng, server: &str, date_s: u64, closing: bool) -> Message {
        let reason = match self.status {
            200 => "OK",
            201 => "Created",
            301 => "Moved Permanently",
            304 => "Not Modified",
            404 => "Not Found",
            _ => "Service Unavailable",
        };
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(date_s));
        let (content_type, body) = match (self.status, self.resource) {
            (200 | 201 | 304, Resource::Api) => ("application/json", BodyKind::Text),
            (200 | 304, Resource::Script) => ("application/javascript; charset=utf-8", BodyKind::Text),
            (200 | 304, Resource::Style) => ("text/css", BodyKind::Text),
            (200 | 304, Resource::Image) => ("image/jpeg", BodyKind::Binary),
            (200 | 304, Resource::Download) => ("application/gzip", BodyKind::Binary),
            _ => ("text/html; charset=utf-8", BodyKind::Text),
        };
        let mut head = format!("HTTP/1.1 {} {reason}\r\nDate: {date}\r\nServer: {server}\r\n", self.status);
        if self.status != 304 {
            head.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", self.response_body_len));
        }
        match self.status {
            200 | 304 if !matches!(self.resource, Resource::Api) => {
                head.push_str(&format!("Cache-Control: public, max-age=3600\r\nETag: \"{:x}\"\r\n", self.path_id));
            }
            301 => head.push_str("Location: https://www.example.com/\r\n"),
            _ => head.push_str("Cache-Control: no-store\r\n"),
        }
        head.push_str(if closing { "Connection: close\r\n\r\n" } else { "Connection: keep-alive\r\n\r\n" });
        Message { head: head.into_bytes(), body_len: self.response_body_len, body, salt: rng.next_u32() }
    }
}

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    ClientFin,
    ServerFin,
    ClientReset,
}

/// What [`plan_http`] reports about the connection it planned.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpShape {
    /// Inner frames up to 8900 bytes.
    pub jumbo: bool,
    /// SYN answered by RST.
    pub refused: bool,
    /// Ends with RST.
    pub reset: bool,
    /// Over IPv6.
    pub ipv6: bool,
}

/// Plans a whole HTTP/1.1 connection starting at `start_ns`; `think_mean_ns`
/// is the mean pause between a response and the next request.
pub fn plan_http(
    rng: &mut Rng,
    topology: &Topology,
    epoch_s: u64,
    start_ns: u64,
    think_mean_ns: f64,
) -> (Flow, HttpShape) {
    let session_index = rng.range(0, topology.sessions.len() as u64 - 1) as usize;
    let session = &topology.sessions[session_index];
    let monitored_is_server = rng.chance(0.55);
    let place = if rng.chance(if monitored_is_server { 0.7 } else { 0.4 }) { PeerPlace::InVpc } else { PeerPlace::Internet };
    let ipv6 = rng.chance(0.12);
    let addresses = match (ipv6, monitored_is_server) {
        (false, true) => FlowAddresses::V4 { client: peer_ipv4(rng, place), server: session.eni_ipv4 },
        (false, false) => FlowAddresses::V4 { client: session.eni_ipv4, server: peer_ipv4(rng, place) },
        (true, true) => FlowAddresses::V6 { client: peer_ipv6(rng, place), server: session.eni_ipv6 },
        (true, false) => FlowAddresses::V6 { client: session.eni_ipv6, server: peer_ipv6(rng, place) },
    };
    let remote_ttl = match place {
        PeerPlace::InVpc => 64,
        PeerPlace::Internet => *rng.pick(&[64u8, 128, 255]) - rng.range(6, 22) as u8,
    };
    let (client_mac, server_mac, ttl) = if monitored_is_server {
        (topology.router_mac, session.eni_mac, [remote_ttl, 64])
    } else {
        (session.eni_mac, topology.router_mac, [64, remote_ttl])
    };
    let endpoints = Endpoints {
        addresses,
        client_port: ephemeral_port(rng),
        server_port: if place == PeerPlace::InVpc && rng.chance(0.3) { 8080 } else { 80 },
        client_mac,
        server_mac,
        ttl,
        session: session_index,
    };
    let jumbo = place == PeerPlace::InVpc && rng.chance(0.35);
    let monitored_delay = rng.range(5_000, 30_000);
    let peer_delay = match place {
        PeerPlace::InVpc => rng.range(40_000, 250_000),
        PeerPlace::Internet => rng.range(2_000_000, 40_000_000),
    };
    let ip_and_tcp_bytes = if ipv6 { 40 + 32 } else { 20 + 32 };
    let path = TcpPath {
        delay_ns: if monitored_is_server { [peer_delay, monitored_delay] } else { [monitored_delay, peer_delay] },
        link_mbps: if place == PeerPlace::InVpc { 10_000 } else { rng.range(500, 5_000) },
        segment_payload: if jumbo { JUMBO_FRAME_BYTES - 14 - ip_and_tcp_bytes } else { STANDARD_SEGMENT_PAYLOAD - if ipv6 { 20 } else { 0 } },
    };

    let mut flow = Flow::new(FlowKind::Http, endpoints);
    flow.tcp.window = [rng.range(400, 3000) as u16, rng.range(400, 3000) as u16];
    flow.tcp.ts_origin = [rng.next_u32(), rng.next_u32()];
    flow.ip_id = [rng.next_u32() as u16, rng.next_u32() as u16];
    let shape = plan_exchanges(rng, &mut flow, path, epoch_s, start_ns, think_mean_ns);
    flow.sort_plans();
    (flow, HttpShape { jumbo, ipv6, ..shape })
}

fn plan_exchanges(rng: &mut Rng, flow: &mut Flow, path: TcpPath, epoch_s: u64, start_ns: u64, think_mean_ns: f64) -> HttpShape {
    let mut planner = TcpPlanner::new(flow, path, rng);
    if rng.chance(0.03) {
        planner.refused(rng, start_ns);
        return HttpShape { refused: true, ..HttpShape::default() };
    }
    let ending = match rng.weighted(&[60, 28, 12]) {
        0 => Ending::ClientFin,
        1 => Ending::ServerFin,
        _ => Ending::ClientReset,
    };
    let mut requests = 1;
    while requests < 16 && rng.chance(0.6) {
        requests += 1;
    }
    let host = *rng.pick(HOSTS);
    let user_agent = *rng.pick(USER_AGENTS);
    let server = *rng.pick(SERVERS);

    let mut now = planner.handshake(rng, start_ns) + rng.range(2_000, 60_000);
    let mut last_segment_at = now;
    for index in 0..requests {
        let exchange = Exchange::draw(rng);
        let closing = index + 1 == requests && ending == Ending::ServerFin;
        let request = exchange.request(rng, host, user_agent);
        let date_s = epoch_s + now / 1_000_000_000;
        let response = exchange.response(rng, server, date_s, closing);
        let message = planner.add_message(request);
        planner.add_message(response);
        let request_seen = planner.send(rng, Direction::ToServer, message, now, FinalAck::Piggyback);
        let processing = rng.log_uniform(100_000, 30_000_000);
        let response_at = planner.answer_at(1, request_seen, processing);
        let final_ack = if closing { FinalAck::Piggyback } else { FinalAck::Pure };
        last_segment_at = planner.send(rng, Direction::ToClient, message + 1, response_at, final_ack);
        now = last_segment_at + rng.exponential(think_mean_ns) as u64;
    }
    match ending {
        Ending::ServerFin => {
            let fin_at = last_segment_at + rng.range(5_000, 50_000);
            planner.close(rng, Direction::ToClient, fin_at);
        }
        Ending::ClientFin => {
            planner.close(rng, Direction::ToServer, now);
        }
        Ending::ClientReset => planner.reset(rng, Direction::ToServer, now),
    }
    HttpShape { reset: ending == Ending::ClientReset, ..HttpShape::default() }
}
