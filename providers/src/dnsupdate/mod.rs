//! Many DNS hosts through the `dns-update` crate: one adapter over its RRset calls
//! (`list_rrset`, `add_to_rrset`, `remove_from_rrset`, which add and remove exact values), for
//! the hosts in [`hosts`] whose code keeps rotor's rules. `set_rrset` (which replaces a whole
//! set) is never called.
//!
//! TXT values cross the crate as one string: it splits a value into 255-byte strings on the way
//! out (as [`TxtValue::from_value`] does) and joins the strings it reads back, so what
//! [`DnsProvider::list_txt`] returns is split again with [`TxtValue::from_value`] and compares
//! equal to what rotor published.

pub mod hosts;
pub mod settings;

pub use hosts::Host;
pub use settings::Settings;

#[cfg(feature = "dns-update")]
mod adapter;
#[cfg(feature = "dns-update")]
pub use adapter::DnsUpdate;
