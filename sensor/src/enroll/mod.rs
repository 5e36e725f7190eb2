//! Enrollment: the sensor turns traffic mirroring on toward itself for the
//! instances in scope, and removes what it no longer needs.
//!
//! Owns: the EC2 and SQS Query-protocol client ([`client`]), the typed EC2
//! operations ([`ec2`]), the pure plan of a pass ([`reconcile`]), carrying
//! a pass out ([`pass`]), what is remembered between passes ([`state`]) and
//! the `sensor enroll` commands ([`cli`]), and in `sensor run` the loop
//! ([`background`]) fed by queue events ([`sqs`], [`events`]) and reporting
//! to `/metrics` and `/readyz` ([`status`]). Input: the `[enroll]`
//! configuration and AWS. Output: mirror sessions (tagged with the
//! ownership tag), a plan or status table. Does not: touch a session,
//! target or filter without the ownership tag, or sit on the packet path.
//!
//! Several sensors may run passes at once: creates carry a ClientToken
//! derived from what they create (the same on every sensor), each pass
//! re-lists before planning, and duplicates that slip through are resolved
//! the same way by every sensor (the smallest session id stays).

pub mod background;
pub mod cli;
pub mod client;
pub mod desired;
pub mod ec2;
pub mod events;
pub mod pass;
pub mod reconcile;
pub mod sqs;
pub mod state;
pub mod status;

pub use pass::{Enroller, PassReport};
