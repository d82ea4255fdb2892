//! The DKIM key record (RFC 6376 §3.6.1): built, parsed and compared by its key.

use std::fmt;

use super::KeyAlgorithm;

/// A DKIM key record's tags that matter for rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DkimRecord {
    tags: Vec<(String, String)>,
}

impl DkimRecord {
    /// `v=DKIM1; k=…; h=sha256; p=…` for RSA, `v=DKIM1; k=ed25519; p=…` for Ed25519.
    pub fn new(algorithm: KeyAlgorithm, key_base64: String) -> Self {
        let mut tags = vec![
            ("v".to_string(), "DKIM1".to_string()),
            ("k".to_string(), algorithm.dkim_k().to_string()),
        ];
        if algorithm.is_rsa() {
            tags.push(("h".into(), "sha256".into()));
        }
        tags.push(("p".into(), key_base64));
        Self { tags }
    }

    /// The record that revokes a key of `algorithm`: an empty `p=`.
    pub fn revoked(algorithm: KeyAlgorithm) -> Self {
        Self::new(algorithm, String::new())
    }

    /// Parses a record's joined text; `None` if it has no `p=` tag.
    pub fn parse(text: &str) -> Option<Self> {
        let tags: Vec<(String, String)> = text
            .split(';')
            .filter_map(|tag| {
                let (name, value) = tag.split_once('=')?;
                let value: String = value.split_whitespace().collect();
                Some((name.trim().to_string(), value))
            })
            .collect();
        tags.iter()
            .any(|(name, _)| name == "p")
            .then_some(Self { tags })
    }

    fn tag(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(tag, _)| tag == name)
            .map(|(_, value)| value.as_str())
    }

    /// The `k=` tag (absent means RSA).
    pub fn algorithm(&self) -> Option<&str> {
        self.tag("k")
    }

    /// The `p=` tag, whitespace removed.
    pub fn key(&self) -> &str {
        self.tag("p").unwrap_or_default()
    }

    /// Whether both records publish the same key (`k=` and `p=`), whatever else differs.
    pub fn same_key(&self, other: &Self) -> bool {
        self.algorithm().unwrap_or("rsa") == other.algorithm().unwrap_or("rsa")
            && self.key() == other.key()
    }
}

impl fmt::Display for DkimRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tags: Vec<String> = self
            .tags
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        f.write_str(&tags.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_by_key_not_by_spelling() {
        let ours = DkimRecord::new(KeyAlgorithm::Rsa2048, "MIIBabc".into());
        let theirs = DkimRecord::parse("v=DKIM1;k=rsa; p=MIIB abc").unwrap();
        assert!(ours.same_key(&theirs));
        let implicit_rsa = DkimRecord::parse("p=MIIBabc").unwrap();
        assert!(ours.same_key(&implicit_rsa));
        let other = DkimRecord::parse("v=DKIM1; k=rsa; p=MIIBabd").unwrap();
        assert!(!ours.same_key(&other));
        assert!(DkimRecord::parse("v=spf1 -all").is_none());
    }

    #[test]
    fn revoked_records_have_an_empty_key() {
        assert_eq!(
            DkimRecord::revoked(KeyAlgorithm::Rsa2048).to_string(),
            "v=DKIM1; k=rsa; h=sha256; p="
        );
        assert_eq!(
            DkimRecord::revoked(KeyAlgorithm::Ed25519).to_string(),
            "v=DKIM1; k=ed25519; p="
        );
    }
}
