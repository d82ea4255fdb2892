//! Stored keys grouped by domain, without copying them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use rotor_state::KeyRecord;

/// The stored keys of many domains, each domain's keys one slice, in the order they came in.
#[derive(Debug)]
pub struct ByDomain<'a> {
    /// Ordered by domain.
    keys: Cow<'a, [KeyRecord]>,
    /// Where each domain's keys are in `keys`.
    index: HashMap<String, Range<usize>>,
}

impl<'a> ByDomain<'a> {
    /// Groups `keys`: borrowed as they are when ordered by domain (as the store lists them),
    /// else a copy sorted by domain (each domain's keys keep their order).
    pub fn new(keys: &'a [KeyRecord]) -> Self {
        let keys = if keys.is_sorted_by(|a, b| a.domain <= b.domain) {
            Cow::Borrowed(keys)
        } else {
            let mut sorted = keys.to_vec();
            sorted.sort_by(|a, b| a.domain.cmp(&b.domain));
            Cow::Owned(sorted)
        };
        let mut index = HashMap::new();
        let mut start = 0;
        for theirs in keys.chunk_by(|a, b| a.domain == b.domain) {
            let end = start + theirs.len();
            if let Some(first) = theirs.first() {
                index.insert(first.domain.clone(), start..end);
            }
            start = end;
        }
        Self { keys, index }
    }

    /// The keys of `domain` (none: empty).
    pub fn of(&self, domain: &str) -> &[KeyRecord] {
        self.index
            .get(domain)
            .and_then(|range| self.keys.get(range.clone()))
            .unwrap_or_default()
    }

    /// Each domain's keys, ordered by domain.
    pub fn domains(&self) -> impl Iterator<Item = &[KeyRecord]> {
        self.keys.chunk_by(|a, b| a.domain == b.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(domain: &str, selector: &str) -> KeyRecord {
        KeyRecord::reserved(
            domain,
            selector,
            rotor_common::KeyAlgorithm::Rsa2048,
            "/k".into(),
            0,
        )
    }

    fn selectors(keys: &[KeyRecord]) -> Vec<&str> {
        keys.iter().map(|k| k.selector.as_str()).collect()
    }

    #[test]
    fn groups_keys_in_any_order_and_keeps_each_domains_order() {
        let keys = [
            key("b.test", "s2"),
            key("a.test", "s9"),
            key("b.test", "s1"),
            key("a.test", "s3"),
        ];
        let grouped = ByDomain::new(&keys);
        assert_eq!(selectors(grouped.of("a.test")), ["s9", "s3"]);
        assert_eq!(selectors(grouped.of("b.test")), ["s2", "s1"]);
        assert!(grouped.of("c.test").is_empty());
        assert!(grouped.of("a.tes").is_empty());
        let domains: Vec<&str> = grouped.domains().map(|d| d[0].domain.as_str()).collect();
        assert_eq!(domains, ["a.test", "b.test"]);
    }

    #[test]
    fn borrows_keys_already_ordered_by_domain() {
        let keys = [
            key("a.test", "s1"),
            key("a.test", "s2"),
            key("b.test", "s1"),
        ];
        let grouped = ByDomain::new(&keys);
        assert!(matches!(grouped.keys, Cow::Borrowed(_)));
        assert_eq!(selectors(grouped.of("a.test")), ["s1", "s2"]);
    }
}
