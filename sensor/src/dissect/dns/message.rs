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
//!
//! Layout: this file reads the header, questions and records; the names
//! in them are read in `message/name.rs`.

mod name;

use nucleus_proto::DnsAnswer;

use super::names;
use super::rdata;

use self::name::{MAX_POINTERS, read_name_walk, skip_name};
pub use self::name::{Name, push_decimal3, read_name};

/// Size of the fixed header.
pub const HEADER_LEN: usize = 12;

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
        // Room for the answers announced (up to a few: the count is the
        // sender's word), allocated once instead of grown from empty.
        answers: Vec::with_capacity(usize::from(header.ancount.min(4))),
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
