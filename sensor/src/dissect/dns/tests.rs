//! Unit tests of the DNS dissector.
