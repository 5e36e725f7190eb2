//! Capture input: frames and their timestamps from pcap and pcapng files
//! (and, in the live appliance, from sockets).
//!
//! Owns: file formats, link types, timestamp resolution. Input: a path.
//! Output: [`RawFrame`]s handed to a callback in file order. Does not:
//! decode anything inside a frame. Lenient: a record whose lengths disagree
//! (captured length above the snap length, original length below the
//! captured one) is taken as it is and counted; a file cut short ends where
//! it is cut, counted.

pub mod file;
pub mod socket;

pub use file::{CaptureError, read_capture};

use crate::decap::LinkType;

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct RawFrame<'a> {
    /// Capture time in microseconds since the epoch.
    pub ts_us: i64,
    /// Link type of `data`.
    pub link: LinkType,
    /// The captured bytes.
    pub data: &'a [u8],
    /// Length of the frame on the wire (at least `data.len()`).
    pub orig_len: u32,
}
