//! Values shared by rotor's crates: the scalars of its config (durations, server addresses,
//! file modes), the key types, secret files that nobody else may read, TLS client settings,
//! and blocking work shared among threads.

mod algorithm;
pub mod crashpoint;
mod kind;
pub mod secret;
pub mod tls;
mod values;
pub mod workers;

pub use algorithm::KeyAlgorithm;
pub use kind::ErrorKind;
pub use values::{FileMode, Interval, ServerAddr, parse_scalar};
