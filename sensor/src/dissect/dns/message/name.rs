//! Domain names on the wire (RFC 1035 §3.1, §4.1.4): reading a name with
//! its compression pointers into presentation form, or walking over it.
//!
//! Owns: the label and pointer rules (loops, forward pointers, over-long
//! names, bad label types handled without panicking and with bounded
//! work) and the escaping of label bytes. Input: the whole message (a
//! pointer may lead anywhere in it) and where a name starts. Output: the
//! [`Name`] and where the name ends, or a [`Malformed`] reason. Does not:
//! read the header, questions or records around the names
//! (`message.rs`).

use super::Malformed;

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
pub(super) const MAX_POINTERS: usize = 128;

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
pub(super) fn read_name_walk(msg: &[u8], pos: usize) -> Result<(Name, Walk), Malformed> {
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
pub(super) fn skip_name(msg: &[u8], pos: usize) -> Result<(bool, usize), Malformed> {
    walk_name(msg, pos, None).map(|w| (w.truncated, w.next))
}

/// What a walk over a name found.
#[derive(Debug, Clone, Copy)]
pub(super) struct Walk {
    /// The name was longer than 255 octets.
    truncated: bool,
    /// The position just after the name where it starts.
    pub(super) next: usize,
    /// Compression pointers followed.
    pub(super) pointers: usize,
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
