//! The DNS-provider interface of rotor and its adapters.
//!
//! An adapter finds the zone that holds a name, lists the TXT records at a name, and applies a
//! batch of exact additions and deletions. It never touches a record it was not asked to, and it
//! deletes only by exact value. Rotor's lifecycle decides *what* to change; adapters only execute.

pub mod adapter;
pub mod cloudflare;
pub mod dns;
pub mod dnsupdate;
mod error;
pub mod registry;
pub mod rfc2136;
pub mod route53;
pub mod txt;

pub use error::ProviderError;
pub use txt::TxtValue;

use std::collections::BTreeMap;

/// Async trait methods that stay object-safe, so providers can be chosen at run time;
/// implementers put `#[async_trait]` on their `impl DnsProvider`.
pub use async_trait::async_trait;

/// The zone that holds a record, as the provider knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// The zone's apex, lowercase, without the trailing dot.
    pub name: String,
    /// The provider's own identifier, where it has one (Cloudflare, Route53).
    pub id: Option<String>,
}

/// One exact change to a TXT record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Add `value` at `name` with `ttl`, beside whatever else is there.
    Add {
        /// Fully qualified name, without the trailing dot.
        name: String,
        /// The record value.
        value: TxtValue,
        /// Time to live, in seconds.
        ttl: u32,
    },
    /// Delete exactly `value` at `name`; other values stay.
    Delete {
        /// Fully qualified name, without the trailing dot.
        name: String,
        /// The record value, as it was published.
        value: TxtValue,
    },
}

/// The TXT values at each name, as rotor read them (what [`DnsProvider::list_txt_many`] returns).
pub type Listing = BTreeMap<String, Vec<TxtValue>>;

/// What every DNS-provider adapter does.
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// The zone that holds `fqdn` (configured, or discovered).
    async fn find_zone(&self, fqdn: &str) -> Result<Zone, ProviderError>;

    /// Every TXT value at `fqdn`, as the provider stores it.
    async fn list_txt(&self, zone: &Zone, fqdn: &str) -> Result<Vec<TxtValue>, ProviderError>;

    /// The TXT values at each of `names` (all in `zone`), for many names at once. Adapters whose
    /// API can list a zone in a few requests override this; the default asks name by name.
    async fn list_txt_many(
        &self,
        zone: &Zone,
        names: &[String],
    ) -> Result<BTreeMap<String, Vec<TxtValue>>, ProviderError> {
        let mut found = BTreeMap::new();
        for name in names {
            found.insert(name.clone(), self.list_txt(zone, name).await?);
        }
        Ok(found)
    }

    /// Applies `changes` to `zone` as one batch where the provider allows it, and returns once
    /// the provider reports them applied.
    async fn apply(&self, zone: &Zone, changes: &[Change]) -> Result<(), ProviderError>;

    /// Applies `changes` as [`Self::apply`] does, but only if the TXT values at every name they
    /// touch are still those of `read`, the listing the changes were decided on: if someone else
    /// changed them in between, nothing is applied and the error is
    /// [`ProviderError::Conflict`]. Names absent from `read` are not checked. Adapters whose API
    /// has no conditional write (the default) apply `changes` as they are; those that do check
    /// in the same atomic request as the write (RFC 2136 prerequisites).
    async fn apply_if_unchanged(
        &self,
        zone: &Zone,
        changes: &[Change],
        read: &Listing,
    ) -> Result<(), ProviderError> {
        let _ = read;
        self.apply(zone, changes).await
    }

    /// Checks that the provider answers and accepts the configured credentials for `zone`.
    async fn check(&self, zone: &Zone) -> Result<(), ProviderError>;
}
