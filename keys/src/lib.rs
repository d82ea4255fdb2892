//! DKIM key pairs: generation, the private key file's PEM, and the public record.

mod record;

pub use record::DkimRecord;

use std::fmt;

pub use rotor_common::KeyAlgorithm;

use base64::Engine as _;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::KeypairBytes;
use getrandom::SysRng;
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use zeroize::Zeroizing;

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The generator failed.
    #[error("cannot generate a {0} key: {1}")]
    Generate(KeyAlgorithm, String),
    /// A private key file does not hold a key of the expected type.
    #[error("the private key is not a valid {0} PKCS#8 PEM: {1}")]
    Parse(KeyAlgorithm, String),
}

/// A private key as PKCS#8 PEM (Ed25519 as v1, which OpenSSL-based signers read).
/// Its `Debug` never shows the key.
pub struct PrivateKey {
    algorithm: KeyAlgorithm,
    pem: Zeroizing<String>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, <redacted>)", self.algorithm)
    }
}

impl PrivateKey {
    /// Generates a new key. CPU-bound (RSA-2048 takes a fraction of a second): call it off the
    /// async runtime.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, KeyError> {
        let fail = |err: &dyn fmt::Display| KeyError::Generate(algorithm, err.to_string());
        let pem = if algorithm.is_rsa() {
            rsa::PrivateKey::new(&mut SysRng, algorithm.rsa_bits())
                .map_err(|err| fail(&err))?
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|err| fail(&err))?
        } else {
            // An Ed25519 private key is 32 random bytes (RFC 8032 §5.1.5). Written without the
            // public key (PKCS#8 v1), which OpenSSL-based signers read.
            let mut seed = Zeroizing::new([0u8; 32]);
            getrandom::fill(seed.as_mut_slice()).map_err(|err| fail(&err))?;
            KeypairBytes {
                secret_key: *seed,
                public_key: None,
            }
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|err| fail(&err))?
        };
        Ok(Self { algorithm, pem })
    }

    /// Reads a key from its PEM.
    pub fn from_pem(algorithm: KeyAlgorithm, pem: Zeroizing<String>) -> Result<Self, KeyError> {
        let key = Self { algorithm, pem };
        key.public_bytes()?;
        Ok(key)
    }

    /// The PEM text, for writing to a private file.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The public key as DKIM publishes it: SubjectPublicKeyInfo DER for RSA, the raw 32 bytes
    /// for Ed25519.
    fn public_bytes(&self) -> Result<Vec<u8>, KeyError> {
        let fail = |err: &dyn fmt::Display| KeyError::Parse(self.algorithm, err.to_string());
        if self.algorithm.is_rsa() {
            let private = rsa::PrivateKey::from_pkcs8_pem(&self.pem).map_err(|err| fail(&err))?;
            let bits = private.size() * 8;
            if bits != self.algorithm.rsa_bits() {
                return Err(fail(&format!("it has {bits} bits")));
            }
            let der = private
                .as_public_key()
                .to_public_key_der()
                .map_err(|err| fail(&err))?;
            Ok(der.as_bytes().to_vec())
        } else {
            let key = SigningKey::from_pkcs8_pem(&self.pem).map_err(|err| fail(&err))?;
            Ok(key.verifying_key().to_bytes().to_vec())
        }
    }

    /// An Ed25519 key as the base64 of its 32-byte seed (the form rspamd reads).
    pub fn ed25519_seed_base64(&self) -> Result<Zeroizing<String>, KeyError> {
        let key = SigningKey::from_pkcs8_pem(&self.pem)
            .map_err(|err| KeyError::Parse(self.algorithm, err.to_string()))?;
        let seed = Zeroizing::new(key.to_bytes());
        Ok(Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(seed.as_slice()),
        ))
    }

    /// The DKIM record that publishes this key.
    pub fn record(&self) -> Result<DkimRecord, KeyError> {
        Ok(DkimRecord::new(
            self.algorithm,
            base64::engine::general_purpose::STANDARD.encode(self.public_bytes()?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_keys_round_trip_through_pem() {
        let key = PrivateKey::generate(KeyAlgorithm::Rsa2048).unwrap();
        assert!(key.pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        let record = key.record().unwrap();
        let text = record.to_string();
        assert!(
            text.starts_with(
                "v=DKIM1; k=rsa; h=sha256; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
            ),
            "{text}"
        );
        let again =
            PrivateKey::from_pem(KeyAlgorithm::Rsa2048, Zeroizing::new(key.pem().to_string()))
                .unwrap();
        assert_eq!(again.record().unwrap(), record);
        // A 2048-bit key read as a 3072-bit one is refused.
        assert!(
            PrivateKey::from_pem(KeyAlgorithm::Rsa3072, Zeroizing::new(key.pem().to_string()))
                .is_err()
        );
    }

    #[test]
    fn ed25519_keys_are_pkcs8_v1_with_a_raw_public_key() {
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let der = pkcs8::Document::from_pem(key.pem()).unwrap().1;
        // PKCS#8 v1: version 0 and no public key; 48 bytes for Ed25519.
        assert_eq!(der.as_bytes().len(), 48);
        let record = key.record().unwrap();
        assert_eq!(record.algorithm(), Some("ed25519"));
        assert_eq!(record.key().len(), 44);
    }

    /// Keys written by rotor with rsa 0.9 and ed25519-dalek 2 (test fixtures, never used
    /// elsewhere) still load, publish the same record, and are written back byte for byte.
    #[test]
    fn keys_written_by_earlier_versions_still_load() {
        let old_rsa = include_str!("../testdata/rsa-2048-rsa0.9.pem");
        let key =
            PrivateKey::from_pem(KeyAlgorithm::Rsa2048, Zeroizing::new(old_rsa.into())).unwrap();
        assert_eq!(
            key.record().unwrap().to_string(),
            "v=DKIM1; k=rsa; h=sha256; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAsJ1c0r1gJyNnOENDK5KpYGrrbH5KZxIwBXVmfCLmM/aHQO0NR6Y2LMuKELPBddBM66BRQqvmJzKRYL5CcAF6k/05NULgYrsMiwkYVKsHy+k0xl1w3p4MpkpwiwCHgDL+pVaQ6v4vADcOxgffmvGo4Fk0wVZCiTiDXZ+VUyV4YD6SCwDURmN8MnFCAniEz+jBuY5oDCStAtgMqqaus2VwnJI0pdXvwDaB7ykPKWKAjJz7f/Lkuzhkl0ebEItJoD33umSBdcMTSr65Vk24Z05w1V2/EaGeb4zAXGsHuatig02+BkzomEFHGZ7HQpycOoDyA+jsOSg9ZWwcV+8HlncxnQIDAQAB"
        );
        // The same DER as the earlier encoder's: the PEM in kind is unchanged.
        let again = rsa::PrivateKey::from_pkcs8_pem(old_rsa)
            .unwrap()
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        assert_eq!(again.as_str(), old_rsa);

        let old_ed25519 = include_str!("../testdata/ed25519-dalek2.pem");
        let key = PrivateKey::from_pem(KeyAlgorithm::Ed25519, Zeroizing::new(old_ed25519.into()))
            .unwrap();
        assert_eq!(
            key.record().unwrap().to_string(),
            "v=DKIM1; k=ed25519; p=RupwLTe/w+MyvFG6wFyWp5T5h0YZ8s3vwURCiLRU9SM="
        );
        assert_eq!(
            key.ed25519_seed_base64().unwrap().as_str(),
            "DldOZmfIQePGf/457xMyRqssvVwZholfnvs+V3O5MQo="
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        assert_eq!(format!("{key:?}"), "PrivateKey(ed25519, <redacted>)");
    }

    #[test]
    fn weak_and_unknown_types_are_refused() {
        assert!(
            "rsa-512"
                .parse::<KeyAlgorithm>()
                .unwrap_err()
                .contains("RFC 8301")
        );
        assert!(
            "dsa"
                .parse::<KeyAlgorithm>()
                .unwrap_err()
                .contains("rsa-2048")
        );
    }
}
