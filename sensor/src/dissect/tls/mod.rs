//! TLS dissector (TLS over TCP, any port, identified by content).

pub mod hello;

#[cfg(test)]
mod testutil;
