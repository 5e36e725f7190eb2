//! Message bodies without storing them: a message is its header bytes plus
//! a length of body drawn from one of two shared pattern buffers (HTML-like
//! text, or incompressible bytes standing for images and archives), at an
//! offset of its own so that bodies differ between messages.

use super::flow::StreamSlice;
use super::rng::Rng;

/// Length of each pattern buffer; bodies wrap around it.
const PATTERN_BYTES: usize = 256 * 1024;

/// What a message body looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// Markup, scripts, JSON: printable text.
    Text,
    /// Images, archives: random bytes.
    Binary,
}

/// One application message of a TCP stream (an HTTP request or response).
#[derive(Debug, Clone)]
pub struct Message {
    /// Start line and headers (and, for small bodies, nothing else).
    pub head: Vec<u8>,
    /// Body bytes after `head`.
    pub body_len: u32,
    /// Which pattern the body comes from.
    pub body: BodyKind,
    /// Where in the pattern this body starts.
    pub salt: u32,
}

impl Message {
    /// Bytes of the message in its TCP stream.
    pub fn stream_len(&self) -> u32 {
        self.head.len() as u32 + self.body_len
    }
}

/// The shared pattern buffers.
#[derive(Debug)]
pub struct Content {
    text: Vec<u8>,
    binary: Vec<u8>,
}

impl Content {
    /// Draws both pattern buffers from `rng`.
    pub fn new(rng: &mut Rng) -> Self {
        const WORDS: &[&str] = &[
            "<div class=\"item\">",
            "</div>\n",
            "<p>",
            "</p>\n",
            "<a href=\"/products/",
            "\">",
            "</a>",
            "<span>",
            "</span>",
            "lorem",
            "ipsum",
            "dolor",
            "sit",
            "amet",
            "consectetur",
            "adipiscing",
            "elit",
            "sed",
            "do",
            "eiusmod",
            "tempor",
            "incididunt",
            "labore",
            "magna",
            "aliqua",
            "{\"id\":",
            ",\"name\":\"",
            "\",\"price\":",
            "}",
            "function(e){return ",
            ";}",
            "var ",
            " = ",
            "window.",
            "document.",
            "0",
            "42",
            "1999",
            "\n",
            "  ",
        ];
        let mut text = Vec::with_capacity(PATTERN_BYTES + 64);
        while text.len() < PATTERN_BYTES {
            text.extend_from_slice(rng.pick(WORDS).as_bytes());
            text.push(b' ');
        }
        text.truncate(PATTERN_BYTES);
        let mut binary = Vec::with_capacity(PATTERN_BYTES);
        while binary.len() < PATTERN_BYTES {
            binary.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        Self { text, binary }
    }

    /// Appends bytes `slice.offset .. slice.offset + slice.len` of
    /// `message` to `out`.
    pub fn render(&self, message: &Message, slice: StreamSlice, out: &mut Vec<u8>) {
        let mut position = slice.offset as usize;
        let mut left = usize::from(slice.len);
        let head = &message.head;
        if position < head.len() {
            let take = left.min(head.len() - position);
            out.extend_from_slice(&head[position..position + take]);
            position += take;
            left -= take;
        }
        let pattern = match message.body {
            BodyKind::Text => &self.text,
            BodyKind::Binary => &self.binary,
        };
        let mut cursor = (message.salt as usize + position - head.len()) % PATTERN_BYTES;
        while left > 0 {
            let take = left.min(PATTERN_BYTES - cursor);
            out.extend_from_slice(&pattern[cursor..cursor + take]);
            left -= take;
            cursor = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_spans_head_and_body() {
        let content = Content::new(&mut Rng::new(1));
        let message = Message {
            head: b"HEAD".to_vec(),
            body_len: 10,
            body: BodyKind::Binary,
            salt: (PATTERN_BYTES - 3) as u32,
        };
        let mut whole = Vec::new();
        content.render(
            &message,
            StreamSlice {
                message: 0,
                offset: 0,
                len: 14,
            },
            &mut whole,
        );
        assert_eq!(&whole[..4], b"HEAD");
        assert_eq!(whole.len(), 14);
        let mut tail = Vec::new();
        content.render(
            &message,
            StreamSlice {
                message: 0,
                offset: 6,
                len: 8,
            },
            &mut tail,
        );
        assert_eq!(tail, whole[6..]);
    }
}
