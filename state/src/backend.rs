//! What a store backend does: the logical operations every backend provides with the same
//! guarantees, behind [`crate::Store`], which adds what does not depend on the backend (a
//! commit's split into transactions, what was committed since opening).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::error::StoreError;
use crate::model::{BootClock, DkimDay, Event, KeyRecord, PassRecord, SeenReport};
use crate::snapshot::Snapshot;

/// A store backend: sled in one directory, or a shared database.
pub(crate) trait Backend: Send + Sync {
    /// Every key record, ordered by domain, then selector.
    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// The key records of one domain, ordered by selector.
    fn domain_keys(&self, domain: &str) -> Result<Vec<KeyRecord>, StoreError>;
    /// The history of one domain, oldest first (events of one time in the order committed).
    fn history(&self, domain: &str) -> Result<Vec<Event>, StoreError>;
    /// The last pass recorded.
    fn last_pass(&self) -> Result<Option<PassRecord>, StoreError>;
    /// Records a pass (see [`crate::Store::record_pass`]).
    fn record_pass(
        &self,
        at: u64,
        boot: Option<BootClock>,
        success: bool,
    ) -> Result<PassRecord, StoreError>;
    /// One transaction, durable when it returns: each `(before, after)` written only if the
    /// stored record equals `before` when decoded (`None`: absent), else
    /// [`StoreError::Conflict`] and nothing written; `events` appended; `domains` (those of
    /// the changes and events, sorted) made due at once.
    fn transact(
        &self,
        changes: &[(Option<&KeyRecord>, &KeyRecord)],
        events: &[Event],
        domains: &[&str],
    ) -> Result<(), StoreError>;
    /// The domains due by `now` per the index written for `fingerprint` (see
    /// [`crate::Store::due`]).
    fn due(&self, fingerprint: &str, now: u64) -> Result<Option<BTreeSet<String>>, StoreError>;
    /// Writes the index of due domains (see [`crate::Store::set_due`]).
    fn set_due(
        &self,
        fingerprint: &str,
        due: &[(&str, u64)],
        every: bool,
    ) -> Result<(), StoreError>;
    /// Counts a DMARC report once (see [`crate::Store::record_report`]).
    fn record_report(&self, report: &SeenReport, days: &[DkimDay]) -> Result<bool, StoreError>;
    /// What the reports said of `domain`'s selectors, by selector, then day.
    fn dkim_days(&self, domain: &str) -> Result<Vec<DkimDay>, StoreError>;
    /// Every report counted.
    fn seen_reports(&self) -> Result<Vec<SeenReport>, StoreError>;
    /// What readers see: the keys, the evidence and the last pass, as of one commit; of
    /// `domains` only when given (a domain without records is left out), the history only
    /// with `history`.
    fn read(&self, domains: Option<&[&str]>, history: bool) -> Result<Snapshot, StoreError>;
    /// Takes, for `ttl`, the leases of those of `domains` no other instance holds, and keeps
    /// them until the store is closed (renewed while it is open); returns the domains leased.
    /// Every later commit of a leased domain is refused ([`StoreError::Fenced`]) once its
    /// lease has moved on. A store of one host leases every domain.
    fn lease(&self, domains: &[&str], ttl: Duration) -> Result<Vec<String>, StoreError>;
    /// Whether the last writer on this host closed the store cleanly during this boot.
    fn closed_cleanly(&self) -> bool;
    /// Flushes and closes the store.
    fn close(self: Box<Self>) -> Result<(), StoreError>;
}
