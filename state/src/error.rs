//! What can go wrong with the store.

use std::path::PathBuf;

use crate::sled::backup::backup_path;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("cannot open the store in {path}: {detail}")]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// The engine's error.
        detail: String,
    },
    /// The database files are damaged. Nothing was done.
    #[error(
        "the store in {path} is damaged ({detail}); nothing was done: restore the copy the last successful run left in {}, e.g. `mv {path} {path}.damaged && cp -a {} {path}`",
        backup_path(path).display(),
        backup_path(path).display()
    )]
    Damaged {
        /// The store's directory.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Another process has the database open.
    #[error("the store in {path} is in use by another rotor process")]
    Busy {
        /// The store's directory.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("store {path}: {detail}")]
    Io {
        /// The store's directory.
        path: PathBuf,
        /// The engine's error.
        detail: String,
    },
    /// A record could not be decoded: the store is damaged. Nothing was changed.
    #[error(
        "store {path} is damaged: record {key:?} cannot be read ({detail}); nothing was changed, restore {path} from a backup"
    )]
    Corrupt {
        /// The store's directory.
        path: PathBuf,
        /// The damaged record's key.
        key: String,
        /// The decoder's error.
        detail: String,
    },
    /// The store's database cannot be reached now (the connection was lost, the server is
    /// restarting or overloaded): the next run retries.
    #[error("the store's database {location} is unavailable: {detail}")]
    Unavailable {
        /// The database, as its URL without a password.
        location: String,
        /// What the client or the server said.
        detail: String,
    },
    /// The store's database refused a request (a permission, a constraint, bad settings).
    #[error("the store's database {location}: {detail}")]
    Database {
        /// The database, as its URL without a password.
        location: String,
        /// What the server said.
        detail: String,
    },
    /// The lease of a domain moved on to another instance (this one stalled past its end):
    /// nothing was written; the other instance carries on.
    #[error(
        "the lease of {domain} was taken over by another rotor (this one was held up past its end); nothing was written"
    )]
    Fenced {
        /// The domain.
        domain: String,
    },
    /// A record changed since it was read: another writer took a step first.
    #[error("key {domain}/{selector} changed under us (another rotor run?); nothing was written")]
    Conflict {
        /// The domain.
        domain: String,
        /// The selector.
        selector: String,
    },
}
