//! Key records for the store's integration tests.

use rotor_state::KeyRecord;

/// A new Ed25519 key of `domain` under `selector`, as a rotation reserves it.
pub fn key(domain: &str, selector: &str) -> KeyRecord {
    KeyRecord::reserved(
        domain,
        selector,
        rotor_state::KeyAlgorithm::Ed25519,
        "/k".into(),
        10,
    )
}
