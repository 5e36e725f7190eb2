//! The TOML forms of values that have no natural TOML type: durations as
//! humantime strings (`"10s"`, `"500ms"`, `"5m"`) and socket addresses as
//! `IP:PORT` strings (`"0.0.0.0:4789"`, `"[::]:4789"`), alone or in a list.
//!
//! Owns: parsing and rendering of those strings, with error messages that say
//! what was expected. Used by the serde derives of the config sections and by
//! the environment and flag parsers. Does not: check ranges (see `validate`).

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// What a duration looks like, for error messages.
const DURATION_EXAMPLE: &str = r#"a duration such as "10s", "500ms" or "5m""#;
/// What an address looks like, for error messages.
const ADDRESS_EXAMPLE: &str = r#"an address IP:PORT such as "0.0.0.0:4789" or "[::]:4789""#;

/// Parses a humantime duration, with a message naming the accepted form.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration {text:?} ({e}): expected {DURATION_EXAMPLE}"))
}

/// Renders a duration so that [`parse_duration`] gives it back exactly.
pub(crate) fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Parses `IP:PORT` (IPv6 in brackets); host names are refused, since the
/// sensor binds to them and resolving would make the bind depend on DNS.
pub(crate) fn parse_address(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("invalid address {text:?}: expected {ADDRESS_EXAMPLE}"))
}

/// `#[serde(with)]` form of a [`Duration`].
pub(crate) mod duration {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION_EXAMPLE)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v).map_err(E::custom)
            }
        }
        d.deserialize_str(DurationVisitor)
    }
}

/// `#[serde(with)]` form of one [`SocketAddr`].
pub(crate) mod address {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(a: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(a)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        d.deserialize_str(AddressVisitor)
    }

    pub(super) struct AddressVisitor;
    impl Visitor<'_> for AddressVisitor {
        type Value = SocketAddr;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(ADDRESS_EXAMPLE)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<SocketAddr, E> {
            parse_address(v).map_err(E::custom)
        }
    }
}

/// `#[serde(with)]` form of a list of [`SocketAddr`]: a TOML array of
/// address strings, or a single address string for a one-element list.
pub(crate) mod address_list {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(list: &[SocketAddr], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(list.len()))?;
        for a in list {
            seq.serialize_element(&a.to_string())?;
        }
        seq.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<SocketAddr>, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = Vec<SocketAddr>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{ADDRESS_EXAMPLE}, or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<SocketAddr>, E> {
                parse_address(v).map(|a| vec![a]).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(a) = seq.next_element::<Element>()? {
                    out.push(a.0);
                }
                Ok(out)
            }
        }
        d.deserialize_any(ListVisitor)
    }

    /// One element of the list, parsed with the address message.
    struct Element(SocketAddr);
    impl<'de> serde::Deserialize<'de> for Element {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(super::address::AddressVisitor)
                .map(Element)
        }
    }
}
