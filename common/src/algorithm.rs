//! The key types rotor generates, written as in the config and the store (`rsa-2048`, `ed25519`).

use std::fmt;
use std::str::FromStr;

use crate::deserialize_from_str;

/// A key type rotor can generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyAlgorithm {
    /// RSA, 1024 bits: allowed by RFC 8301 but weak; warned.
    Rsa1024,
    /// RSA, 2048 bits: the default.
    Rsa2048,
    /// RSA, 3072 bits.
    Rsa3072,
    /// RSA, 4096 bits: oversized for some DNS providers.
    Rsa4096,
    /// Ed25519 (RFC 8463), only as a second signature beside RSA.
    Ed25519,
}

impl FromStr for KeyAlgorithm {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "rsa-1024" => Ok(Self::Rsa1024),
            "rsa-2048" => Ok(Self::Rsa2048),
            "rsa-3072" => Ok(Self::Rsa3072),
            "rsa-4096" => Ok(Self::Rsa4096),
            "ed25519" => Ok(Self::Ed25519),
            other => Err(format!(
                "unsupported key type {other:?}: use rsa-2048 (default), rsa-3072, rsa-4096, rsa-1024 (weak) or ed25519{}",
                if other.starts_with("rsa-") {
                    "; RFC 8301 forbids RSA keys under 1024 bits"
                } else {
                    ""
                }
            )),
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rsa1024 => "rsa-1024",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
            Self::Ed25519 => "ed25519",
        })
    }
}

impl KeyAlgorithm {
    /// Whether this is an RSA key.
    pub fn is_rsa(self) -> bool {
        self != Self::Ed25519
    }

    /// The DKIM `k=` tag value.
    pub fn dkim_k(self) -> &'static str {
        if self.is_rsa() { "rsa" } else { "ed25519" }
    }

    /// The RSA modulus size in bits (0 for Ed25519).
    pub fn rsa_bits(self) -> usize {
        match self {
            Self::Rsa1024 => 1024,
            Self::Rsa2048 => 2048,
            Self::Rsa3072 => 3072,
            Self::Rsa4096 => 4096,
            Self::Ed25519 => 0,
        }
    }
}

deserialize_from_str!(KeyAlgorithm);

impl serde::Serialize for KeyAlgorithm {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
