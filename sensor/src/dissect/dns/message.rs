//! The DNS wire format (RFC 1035 §4): one message's header, first question
//! and answer section, and the EDNS extended rcode from an OPT record.
//!
//! Owns: bounds-checked reading of a message and of domain names with
//! compression pointers (loops, forward pointers, over-long names and bad
//! labels handled without panicking and with bounded work). Input: the bytes
//! of one message (a UDP payload, or a TCP message without its length
//! prefix). Output: [`Message`], or a [`Malformed`] reason. Does not: match
//! queries with responses (`dns/mod.rs`) or format record data
//! (`dns/rdata.rs`, which this module calls for the answers).

use nucleus_proto::DnsAnswer;

use super::names;
use super::rdata;

/// Size of the fixed header.
pub const HEADER_LEN: usize = 12;

/// Longest domain name on the wire (RFC 1035 §2.3.4), length octets
/// included.
pub const MAX_NAME_WIRE: usize = 255;

/// Longest label (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

/// Compression pointers a name may follow. Labels need no cap: between
/// two pointers the reader moves forward only, and once the name is longer
/// than 255 octets the reader stops at the next pointer (where the name's
/// own end is already known), so a loop through labels ends as a
/// truncated name, and a loop of pointers alone ends here.
const MAX_POINTERS: usize = 128;

/// Why a message (or part of it) could not be read; the `&'static str` is
/// the anomaly reason counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// The fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Transaction id.
    pub id: u16,
    /// Response (QR = 1).
    pub qr: bool,
    /// Operation code.
    pub opcode: u8,
    /// Authoritative answer.
    pub aa: bool,
    /// Truncated.
    pub tc: bool,
    /// Recursion desired.
    pub rd: bool,
    /// Recursion available.
    pub ra: bool,
    /// Low four bits of the response code.
    pub rcode: u8,
    /// Question count.
    pub qdcount: u16,
    /// Answer count.
    pub ancount: u16,
    /// Authority count.
    pub nscount: u16,
    /// Additional count.
    pub arcount: u16,
}

impl Header {
    /// Reads the header; `None` when fewer than 12 bytes.
    pub fn parse(msg: &[u8]) -> Option<Self> {
        let b = msg.get(..HEADER_LEN)?;
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let (f1, f2) = (b[2], b[3]);
        Some(Self {
            id: u16_at(0),
            qr: f1 & 0x80 != 0,
            opcode: (f1 >> 3) & 0x0f,
            aa: f1 & 0x04 != 0,
            tc: f1 & 0x02 != 0,
            rd: f1 & 0x01 != 0,
            ra: f2 & 0x80 != 0,
            rcode: f2 & 0x0f,
            qdcount: u16_at(4),
            ancount: u16_at(6),
            nscount: u16_at(8),
            arcount: u16_at(10),
        })
    }
}

/// A decoded domain name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// Presentation form: labels joined by `.`, no trailing dot, `.` for
    /// the root; `.` and `\` inside a label and bytes outside printable
    /// ASCII escaped as in RFC 1035 §5.1 (`\.`, `\\`, `\DDD`).
    pub text: String,
    /// The name was longer than 255 octets: `text` holds its first 255.
    pub truncated: bool,
}

/// Reads the name starting at `pos`; returns it and the position just after
/// it where it starts (after its first pointer, if any).
///
/// Pointers may point anywhere inside the message (forward pointers occur
/// in the wild), so termination is guaranteed by [`MAX_POINTERS`], not by
/// the direction of the pointers.
pub fn read_name(msg: &[u8], pos: usize) -> Result<(Name, usize), Malformed> {
    let (name, walk) = read_name_walk(msg, pos)?;
    Ok((name, walk.next))
}

/// [`read_name`], with the whole [`Walk`].
fn read_name_walk(msg: &[u8], pos: usize) -> Result<(Name, Walk), Malformed> {
    // Most names fit: one allocation instead of a growth per label. The
    // text is built as bytes and checked as UTF-8 once, at the end: a
    // check per label costs more than the label's copy.
    let mut text = Vec::with_capacity(64);
    let walk = walk_name(msg, pos, Some(&mut text))?;
    // Every byte pushed is printable ASCII, so the check cannot fail; the
    // lossy form only keeps this total.
    let text = String::from_utf8(text)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    let name = Name {
        text,
        truncated: walk.truncated,
    };
    Ok((name, walk))
}

/// Walks the name starting at `pos` exactly as [`read_name`] does (same
/// errors, same end) without building its text: for records whose name
/// is not shown. Returns whether the name was too long, and its end.
fn skip_name(msg: &[u8], pos: usize) -> Result<(bool, usize), Malformed> {
    walk_name(msg, pos, None).map(|w| (w.truncated, w.next))
}

/// What a walk over a name found.
#[derive(Debug, Clone, Copy)]
struct Walk {
    /// The name was longer than 255 octets.
    truncated: bool,
    /// The position just after the name where it starts.
    next: usize,
    /// Compression pointers followed.
    pointers: usize,
}

/// The walk behind [`read_name`] and [`skip_name`]: the presentation form
/// is appended to `text` (as ASCII bytes) when there is one.
fn walk_name(msg: &[u8], pos: usize, mut text: Option<&mut Vec<u8>>) -> Result<Walk, Malformed> {
    // Whether a label was appended (`text` holds no other content).
    let mut any_label = false;
    let mut wire_len = 1usize; // the final zero octet
    let mut truncated = false;
    let mut cur = pos;
    let mut end: Option<usize> = None;
    let mut pointers = 0;
    loop {
        let len = *msg.get(cur).ok_or(Malformed("name_truncated"))?;
        match len & 0xc0 {
            0x00 => {
                let len = usize::from(len);
                if len == 0 {
                    if !any_label && let Some(t) = text.as_deref_mut() {
                        t.push(b'.');
                    }
                    return Ok(Walk {
                        truncated,
                        next: end.unwrap_or(cur + 1),
                        pointers,
                    });
                }
                let label = msg
                    .get(cur + 1..cur + 1 + len)
                    .ok_or(Malformed("name_truncated"))?;
                wire_len += 1 + len;
                if wire_len > MAX_NAME_WIRE {
                    truncated = true;
                } else if let Some(t) = text.as_deref_mut() {
                    if any_label {
                        t.push(b'.');
                    }
                    push_label(t, label);
                    any_label = true;
                }
                cur += 1 + len;
            }
            0xc0 => {
                let low = *msg.get(cur + 1).ok_or(Malformed("name_truncated"))?;
                let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                if end.is_none() {
                    end = Some(cur + 2);
                }
                if truncated {
                    // The rest cannot be shown; where the name ends is known.
                    return Ok(Walk {
                        truncated,
                        next: end.unwrap_or(cur + 2),
                        pointers,
                    });
                }
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(Malformed("name_pointer_loop"));
                }
                if target >= msg.len() {
                    return Err(Malformed("name_pointer_out_of_bounds"));
                }
                cur = target;
            }
            // 0x40 (extended label, RFC 6891 deprecated) and 0x80 are
            // reserved.
            _ => return Err(Malformed("name_bad_label_type")),
        }
    }
}

/// Appends one label in presentation form.
///
/// A label that needs no escaping (nearly every one) is copied whole
/// instead of byte by byte.
fn push_label(out: &mut Vec<u8>, label: &[u8]) {
    debug_assert!(label.len() <= MAX_LABEL);
    if label.iter().all(|&b| SHOWN_AS_IS[usize::from(b)]) {
        out.extend_from_slice(label);
        return;
    }
    for &b in label {
        if SHOWN_AS_IS[usize::from(b)] {
            out.push(b);
        } else if b == b'.' || b == b'\\' {
            out.extend_from_slice(&[b'\\', b]);
        } else {
            out.push(b'\\');
            out.extend_from_slice(&decimal3(b));
        }
    }
}

/// Label bytes shown as they are: printable ASCII but `.` and `\` (shown
/// as `\.`, `\\`; the others as `\DDD`). A table: one load per byte
/// instead of three comparisons, on the hottest loop of the dissector.
const SHOWN_AS_IS: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x21;
    while b <= 0x7e {
        t[b] = b != b'.' as usize && b != b'\\' as usize;
        b += 1;
    }
    t
};

/// The `DDD` of a `\DDD` escape: a byte's three decimal digits.
fn decimal3(b: u8) -> [u8; 3] {
    [b'0' + b / 100, b'0' + (b / 10) % 10, b'0' + b % 10]
}

/// [`decimal3`] appended to text.
pub fn push_decimal3(out: &mut String, b: u8) {
    out.extend(decimal3(b).map(char::from));
}

/// The first question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name asked about.
    pub name: Name,
    /// Query type.
    pub qtype: u16,
    /// Query class.
    pub qclass: u16,
}

/// One message as the dissector uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// The first question, if the message has one.
    pub question: Option<Question>,
    /// The answer section, each record in presentation form.
    pub answers: Vec<DnsAnswer>,
    /// The upper eight bits of the extended rcode (RFC 6891 §6.1.3), from
    /// an OPT record in the additional section.
    pub ext_rcode: Option<u8>,
    /// Anomalies met while reading the message (records after a malformed
    /// one are dropped; what was read before is kept).
    pub anomalies: Vec<&'static str>,
}

impl Message {
    /// The full response code: the header's four bits, extended by EDNS.
    pub fn rcode(&self) -> u16 {
        let high = u16::from(self.ext_rcode.unwrap_or(0));
        (high << 4) | u16::from(self.header.rcode)
    }
}

/// A reader over one message.
struct Cursor<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self
            .msg
            .get(self.pos..self.pos + 2)
            .ok_or(Malformed("record_truncated"))?;
        self.pos += 2;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self
            .msg
            .get(self.pos..self.pos + 4)
            .ok_or(Malformed("record_truncated"))?;
        self.pos += 4;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn name(&mut self) -> Result<Name, Malformed> {
        let (name, next) = read_name(self.msg, self.pos)?;
        self.pos = next;
        Ok(name)
    }
}

/// A resource record's fixed part and where its data lies.
struct RawRecord {
    /// The owner name; its text is empty when not asked for.
    name: Name,
    rtype: u16,
    ttl: u32,
    rdata_start: usize,
    rdata_len: usize,
}

/// A compression pointer to offset 12, where the first question's name
/// starts: how nearly every answer names its owner.
const QUESTION_POINTER: [u8; 2] = [0xc0, HEADER_LEN as u8];

/// Reads one record; the owner name's text is built only when `keep_name`
/// (answers are shown, the other sections' names are not). `question`: the
/// first question's name, when an owner that is [`QUESTION_POINTER`] reads
/// as that very name (see [`parse`]); it is then copied, not walked again.
fn read_record(
    c: &mut Cursor<'_>,
    keep_name: bool,
    question: Option<&Name>,
) -> Result<RawRecord, Malformed> {
    let name = if keep_name {
        match question {
            Some(q) if c.msg.get(c.pos..c.pos + 2) == Some(&QUESTION_POINTER[..]) => {
                c.pos += 2;
                q.clone()
            }
            _ => c.name()?,
        }
    } else {
        let (truncated, next) = skip_name(c.msg, c.pos)?;
        c.pos = next;
        Name {
            text: String::new(),
            truncated,
        }
    };
    let rtype = c.u16()?;
    let _class = c.u16()?;
    let ttl = c.u32()?;
    let rdata_len = usize::from(c.u16()?);
    let rdata_start = c.pos;
    if rdata_start + rdata_len > c.msg.len() {
        return Err(Malformed("rdata_truncated"));
    }
    c.pos += rdata_len;
    Ok(RawRecord {
        name,
        rtype,
        ttl,
        rdata_start,
        rdata_len,
    })
}

/// Checks the header and every question, without the record sections and
/// without building names: what a probe needs. `Err` exactly where
/// [`parse`] fails (the message ends inside them, or they are malformed).
pub fn check_questions(msg: &[u8]) -> Result<(), Malformed> {
    let header = Header::parse(msg).ok_or(Malformed("header_truncated"))?;
    let mut c = Cursor {
        msg,
        pos: HEADER_LEN,
    };
    for _ in 0..header.qdcount {
        let (_, next) = skip_name(msg, c.pos)?;
        c.pos = next;
        c.u16().map_err(|_| Malformed("question_truncated"))?;
        c.u16().map_err(|_| Malformed("question_truncated"))?;
    }
    Ok(())
}

/// The header and questions of a message.
struct Questions {
    header: Header,
    /// The first question, with the compression pointers its name followed.
    first: Option<(Question, usize)>,
    /// Where the questions end.
    end: usize,
}

/// Reads the header and every question (the first is kept, with the
/// compression pointers its name followed).
fn read_questions(msg: &[u8]) -> Result<Questions, Malformed> {
    let header = Header::parse(msg).ok_or(Malformed("header_truncated"))?;
    let mut c = Cursor {
        msg,
        pos: HEADER_LEN,
    };
    let mut first = None;
    for _ in 0..header.qdcount {
        let (name, walk) = read_name_walk(msg, c.pos)?;
        c.pos = walk.next;
        let qtype = c.u16().map_err(|_| Malformed("question_truncated"))?;
        let qclass = c.u16().map_err(|_| Malformed("question_truncated"))?;
        if first.is_none() {
            let question = Question {
                name,
                qtype,
                qclass,
            };
            first = Some((question, walk.pointers));
        }
    }
    Ok(Questions {
        header,
        first,
        end: c.pos,
    })
}

/// Reads one message. The header and questions must be well formed; a
/// malformed or truncated record ends the reading of the sections, keeping
/// the answers read so far, and is listed in `anomalies`.
pub fn parse(msg: &[u8]) -> Result<Message, Malformed> {
    let Questions { header, first, end } = read_questions(msg)?;
    // An owner that is a pointer to the first question's name walks that
    // name again with one more pointer: the same text and length verdict,
    // unless that pointer passes the cap.
    let reuse = first
        .as_ref()
        .is_some_and(|(_, pointers)| *pointers < MAX_POINTERS);
    let mut m = Message {
        header,
        question: first.map(|(q, _)| q),
        answers: Vec::new(),
        ext_rcode: None,
        anomalies: Vec::new(),
    };
    let question = m.question.as_ref().filter(|_| reuse).map(|q| &q.name);
    let mut c = Cursor { msg, pos: end };
    let sections = [
        (header.ancount, true),
        (header.nscount, false),
        (header.arcount, false),
    ];
    'sections: for (count, is_answer) in sections {
        for _ in 0..count {
            let rr = match read_record(&mut c, is_answer, question) {
                Ok(rr) => rr,
                Err(e) => {
                    m.anomalies.push(e.0);
                    break 'sections;
                }
            };
            if rr.name.truncated {
                m.anomalies.push("name_too_long");
            }
            if is_answer {
                let data = match rdata::present(msg, rr.rtype, rr.rdata_start, rr.rdata_len) {
                    Ok(d) => d,
                    Err(e) => {
                        m.anomalies.push(e.0);
                        rdata::generic(msg.get(rr.rdata_start..rr.rdata_start + rr.rdata_len))
                    }
                };
                m.answers.push(DnsAnswer {
                    name: rr.name.text,
                    rtype: names::rtype(rr.rtype),
                    ttl: rr.ttl,
                    data,
                });
            } else if rr.rtype == names::OPT {
                // TTL of OPT: extended rcode (8 bits), version, flags.
                m.ext_rcode = Some(rr.ttl.to_be_bytes()[0]);
            }
        }
    }
    if c.pos < msg.len() && m.anomalies.is_empty() {
        m.anomalies.push("trailing_bytes");
    }
    Ok(m)
}
