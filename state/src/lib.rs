//! The store of rotor's key lifecycles and their history.
//!
//! Every key rotor manages is one [`KeyRecord`]; every change of it is written with
//! [`Store::commit`], which checks that the record is still what the caller read (so two racing
//! writers cannot both take a step), appends the matching history [`Event`]s and flushes to disk
//! before returning. The backends (sled in one directory, or a PostgreSQL database shared by the rotors of several hosts) stay behind this interface. Readers that must
//! not stop a writer read a [`Snapshot`] instead.

mod backend;
mod error;
mod model;
mod postgres;
mod sled;
mod snapshot;
mod store;

pub use error::StoreError;
pub use model::{
    Action, BootClock, Check, Compromise, DkimDay, Event, KeyAlgorithm, KeyRecord, PassRecord,
    Phase, ProbeResult, SeenReport, ServerCheck, selector_name,
};
pub use postgres::{PostgresSettings, has_password_parameter};
pub use snapshot::{Snapshot, boot_id};
pub use store::{DOMAINS_PER_COMMIT, Location, Store};
