//! A small element tree over quick-xml for AWS Query-protocol responses.
//!
//! Owns: turning a response body into [`Element`]s and the lookups the
//! operations need (`child`, `text`, `items` of a `...Set/item` list).
//! Input: the bytes of one response, already capped in size by the HTTP
//! layer. Output: the tree, or why it is not XML. Does not: know any AWS
//! operation, or keep namespaces (AWS documents use one default namespace).
//!
//! A tree rather than serde mapping: the responses are read by a handful of
//! element names each, and the same code reads EC2's and SQS's documents and
//! both error forms (`Response/Errors/Error`, `ErrorResponse/Error`).

use quick_xml::Reader;
use quick_xml::events::Event;

/// Deepest nesting accepted; AWS documents are under 10 levels deep.
const MAX_DEPTH: usize = 64;
/// Most elements in one document (a page of 1000 instances has ~100 000).
const MAX_ELEMENTS: usize = 2_000_000;

/// One XML element: its local name, its text, its child elements in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    /// Local name (prefix removed).
    pub name: String,
    /// Text content (entities decoded), concatenated over its text nodes.
    pub text: String,
    /// Child elements.
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the element at `path` (child names separated by `/`),
    /// when present and not empty.
    pub fn text_at(&self, path: &str) -> Option<&str> {
        let mut at = self;
        for part in path.split('/') {
            at = at.child(part)?;
        }
        let t = at.text.trim();
        (!t.is_empty()).then_some(t)
    }

    /// The `item` elements of the list `set` (`reservationSet/item`).
    pub fn items<'a>(&'a self, set: &str) -> impl Iterator<Item = &'a Element> {
        self.child(set)
            .into_iter()
            .flat_map(|s| s.children_named("item"))
    }

    /// The first element named `name` anywhere below (depth first).
    pub fn find(&self, name: &str) -> Option<&Element> {
        for c in &self.children {
            if c.name == name {
                return Some(c);
            }
            if let Some(found) = c.find(name) {
                return Some(found);
            }
        }
        None
    }

    /// `tagSet/item/{key,value}` as pairs.
    pub fn tags(&self) -> std::collections::BTreeMap<String, String> {
        self.items("tagSet")
            .filter_map(|t| {
                let key = t.text_at("key")?;
                Some((
                    key.to_string(),
                    t.text_at("value").unwrap_or("").to_string(),
                ))
            })
            .collect()
    }
}

/// Parses a whole document into its root element.
pub fn parse(body: &[u8]) -> Result<Element, String> {
    let mut reader = Reader::from_reader(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut count = 0usize;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(start) => {
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err("document too deep or too large".to_string());
                }
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                stack.push(Element {
                    name,
                    ..Element::default()
                });
            }
            Event::Empty(start) => {
                count += 1;
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                let e = Element {
                    name,
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(e),
                    None => return Ok(e),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let text = t.decode().map_err(|e| e.to_string())?;
                    top.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    let name = r.decode().map_err(|e| e.to_string())?;
                    match resolve_reference(&name) {
                        Some(c) => top.text.push(c),
                        None => return Err(format!("unknown entity &{name};")),
                    }
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err("closing tag without an opening one".to_string());
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
            Event::Eof => return Err("document ends before its root element closes".to_string()),
            _ => {}
        }
        buf.clear();
    }
}

/// The character of a predefined or numeric entity (`amp`, `#10`, `#x41`).
fn resolve_reference(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sets_text_and_entities() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r-1</requestId>
  <reservationSet><item><instancesSet>
    <item><instanceId>i-1</instanceId><tagSet><item><key>a&amp;b</key><value>x&#x41;</value></item></tagSet></item>
    <item><instanceId>i-2</instanceId><empty/></item>
  </instancesSet></item></reservationSet>
  <nextToken>tok</nextToken>
</DescribeInstancesResponse>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "DescribeInstancesResponse");
        assert_eq!(root.text_at("nextToken"), Some("tok"));
        let ids: Vec<_> = root
            .items("reservationSet")
            .flat_map(|r| r.items("instancesSet"))
            .filter_map(|i| i.text_at("instanceId"))
            .collect();
        assert_eq!(ids, ["i-1", "i-2"]);
        let first = root.find("instancesSet").unwrap().child("item").unwrap();
        assert_eq!(first.tags().get("a&b").map(String::as_str), Some("xA"));
    }

    #[test]
    fn refuses_broken_and_deep_documents() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a><b>").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"<a>&bogus;</a>").is_err());
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes()).unwrap_err().contains("too deep"));
    }
}
