//! The bytes of HTTP/1.1 requests and responses: start lines and
//! real-looking headers (hosts, user agents, caching, cookies, dates), and
//! bodies of web-like types and sizes.

use std::time::{Duration, UNIX_EPOCH};

use crate::capture::content::{BodyKind, Message};
use crate::capture::rng::Rng;

const HOSTS: &[&str] = &[
    "www.example.com",
    "shop.example.com",
    "api.example.com",
    "static.example.net",
    "cdn.example.org",
    "orders.internal.example",
    "auth.example.com",
    "images.example.net",
];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "okhttp/4.12.0",
    "aws-sdk-java/2.25.40 Linux/5.10 OpenJDK_64-Bit_Server_VM/17.0.10",
];
const SERVERS: &[&str] = &[
    "nginx/1.24.0",
    "Apache/2.4.58 (Ubuntu)",
    "envoy",
    "gunicorn",
    "Kestrel",
];

/// Who talks on one connection: the site, the client software, the
/// server software.
#[derive(Debug, Clone, Copy)]
pub struct Persona {
    /// `Host` header.
    pub host: &'static str,
    /// `User-Agent` header.
    pub user_agent: &'static str,
    /// `Server` header.
    pub server: &'static str,
}

impl Persona {
    /// Draws one from the tables.
    pub fn draw(rng: &mut Rng) -> Self {
        let host = *rng.pick(HOSTS);
        let user_agent = *rng.pick(USER_AGENTS);
        let server = *rng.pick(SERVERS);
        Self {
            host,
            user_agent,
            server,
        }
    }
}

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
        // Mostly small API answers and web objects, a few downloads: a mean
        // of about 15 KB per response keeps thousands of connections open
        // in a capture of a few hundred megabytes while most of them still
        // begin and end inside it.
        let resource = match rng.weighted(&[150, 450, 80, 50, 265, 5]) {
            0 => Resource::Page,
            1 => Resource::Api,
            2 => Resource::Script,
            3 => Resource::Style,
            4 => Resource::Image,
            _ => Resource::Download,
        };
        let post_body_len = match resource {
            Resource::Api if rng.chance(0.3) => rng.log_uniform(40, 24 * 1024) as u32,
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
            Resource::Page => rng.log_uniform(2 * 1024, 48 * 1024),
            Resource::Api => rng.log_uniform(60, 8 * 1024),
            Resource::Script => rng.log_uniform(2 * 1024, 64 * 1024),
            Resource::Style => rng.log_uniform(1024, 32 * 1024),
            Resource::Image => rng.log_uniform(2 * 1024, 96 * 1024),
            Resource::Download => rng.log_uniform(256 * 1024, 1536 * 1024),
        } as u32;
        let response_body_len = match status {
            200 | 201 => full_body_len,
            304 => 0,
            _ => rng.range(150, 600) as u32,
        };
        Self {
            resource,
            post_body_len,
            status,
            response_body_len,
            path_id: rng.next_u32(),
        }
    }

    /// Application bytes of the pair, headers included (approximately).
    pub fn approximate_bytes(&self) -> u64 {
        600 + u64::from(self.post_body_len) + u64::from(self.response_body_len)
    }

    /// The request as a stream message.
    pub fn request(&self, rng: &mut Rng, persona: &Persona) -> Message {
        let Persona {
            host, user_agent, ..
        } = *persona;
        let path = match self.resource {
            Resource::Page if self.path_id % 5 == 0 => "/".to_string(),
            Resource::Page => format!("/products/{}.html", self.path_id % 50_000),
            Resource::Api => format!(
                "/api/v1/items/{}?fields=id,name,price",
                self.path_id % 100_000
            ),
            Resource::Script => format!("/static/js/app.{:08x}.js", self.path_id),
            Resource::Style => format!("/static/css/main.{:08x}.css", self.path_id),
            Resource::Image => format!("/images/{}/{}.webp", self.path_id % 97, self.path_id),
            Resource::Download => format!("/downloads/release-{}.tar.gz", self.path_id % 300),
        };
        let method = if self.post_body_len > 0 {
            "POST"
        } else {
            "GET"
        };
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\n");
        head.push_str(match self.resource {
            Resource::Page => {
                "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
            }
            Resource::Api => "Accept: application/json\r\n",
            Resource::Image => "Accept: image/avif,image/webp,image/*,*/*;q=0.8\r\n",
            _ => "Accept: */*\r\n",
        });
        head.push_str("Accept-Encoding: gzip, deflate, br\r\n");
        if user_agent.starts_with("Mozilla") {
            head.push_str("Accept-Language: en-US,en;q=0.9\r\n");
            head.push_str(&format!(
                "Cookie: session={:016x}; theme=light\r\n",
                rng.next_u64()
            ));
        }
        if self.status == 304 {
            head.push_str(&format!("If-None-Match: \"{:x}\"\r\n", self.path_id));
        }
        if self.post_body_len > 0 {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                self.post_body_len
            ));
        }
        head.push_str("Connection: keep-alive\r\n\r\n");
        Message {
            head: head.into_bytes(),
            body_len: self.post_body_len,
            body: BodyKind::Text,
            salt: rng.next_u32(),
        }
    }

    /// The response as a stream message; `closing` adds `Connection: close`.
    pub fn response(
        &self,
        rng: &mut Rng,
        persona: &Persona,
        date_s: u64,
        closing: bool,
    ) -> Message {
        let server = persona.server;
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
            (200 | 304, Resource::Script) => {
                ("application/javascript; charset=utf-8", BodyKind::Text)
            }
            (200 | 304, Resource::Style) => ("text/css", BodyKind::Text),
            (200 | 304, Resource::Image) => ("image/webp", BodyKind::Binary),
            (200 | 304, Resource::Download) => ("application/gzip", BodyKind::Binary),
            _ => ("text/html; charset=utf-8", BodyKind::Text),
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nDate: {date}\r\nServer: {server}\r\n",
            self.status
        );
        if self.status != 304 {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                self.response_body_len
            ));
        }
        match self.status {
            200 | 304 if !matches!(self.resource, Resource::Api) => {
                head.push_str(&format!(
                    "Cache-Control: public, max-age=3600\r\nETag: \"{:x}\"\r\n",
                    self.path_id
                ));
            }
            301 => head.push_str("Location: https://www.example.com/\r\n"),
            _ => head.push_str("Cache-Control: no-store\r\n"),
        }
        head.push_str(if closing {
            "Connection: close\r\n\r\n"
        } else {
            "Connection: keep-alive\r\n\r\n"
        });
        Message {
            head: head.into_bytes(),
            body_len: self.response_body_len,
            body,
            salt: rng.next_u32(),
        }
    }
}
