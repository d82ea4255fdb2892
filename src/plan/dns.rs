//! The exact DNS changes each step makes: decided here, from the key's record alone, and
//! performed by the engine only where the listing shows they are needed (an addition only where
//! the value is absent, a deletion only of the exact value found).

use rotor_state::{Action, KeyRecord};
use serde::Serialize;

use crate::keys::DkimRecord;

/// One exact change to the TXT record at a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum DnsChange {
    /// Add `value` at `name`, beside whatever else is there.
    Add {
        /// Where.
        name: String,
        /// The whole value.
        value: String,
        /// Its TTL, in seconds.
        ttl: u32,
    },
    /// Delete exactly `value` at `name`; other values stay.
    Delete {
        /// Where.
        name: String,
        /// The whole value.
        value: String,
    },
}

impl DnsChange {
    /// The name it changes.
    pub fn name(&self) -> &str {
        match self {
            Self::Add { name, .. } | Self::Delete { name, .. } => name,
        }
    }

    /// The value it adds or deletes.
    pub fn value(&self) -> &str {
        match self {
            Self::Add { value, .. } | Self::Delete { value, .. } => value,
        }
    }
}

/// The revocation record of `key`'s type: an empty `p=` (RFC 6376, 3.6.1).
pub fn revoked_record(key: &KeyRecord) -> String {
    DkimRecord::revoked(key.algorithm).to_string()
}

/// The DNS changes `action` makes for `key` (records published with `ttl`): publishing adds its
/// record; retiring deletes it; revoking replaces it with the empty `p=` (nothing, for a leaked
/// key never published); removing a revocation deletes that; abandoning deletes the record if
/// there is one. The other steps touch no DNS.
pub fn changes(key: &KeyRecord, action: Action, ttl: u32) -> Vec<DnsChange> {
    let name = key.record_name();
    let delete = |value: String| DnsChange::Delete {
        name: name.clone(),
        value,
    };
    let add = |value: String| DnsChange::Add {
        name: name.clone(),
        value,
        ttl,
    };
    let record = key.record.clone();
    match action {
        Action::Publish => record.map(add).into_iter().collect(),
        Action::Retire | Action::Abandon => record.map(delete).into_iter().collect(),
        Action::Revoke => match record {
            Some(record) => vec![delete(record), add(revoked_record(key))],
            None => Vec::new(),
        },
        Action::RemoveRevoked => vec![delete(revoked_record(key))],
        Action::GenerateKey | Action::CheckPropagation | Action::Activate | Action::Rollback => {
            Vec::new()
        }
    }
}
