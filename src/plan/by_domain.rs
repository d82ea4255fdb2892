//! Stored keys grouped by domain, without copying them.

use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};
use std::ops::Range;

use hashbrown::HashTable;
use rotor_state::KeyRecord;

/// The stored keys of many domains, each domain's keys one slice, in the order they came in.
#[derive(Debug)]
pub struct ByDomain<'a> {
    /// Ordered by domain.
    keys: Cow<'a, [KeyRecord]>,
    /// Where each domain's keys are in `keys`, by the hash of the domain's name; the name is
    /// that of the range's first key, never copied (at 100,000 domains, copying every name
    /// into a map cost more than finding them by halves, which cost more than this).
    index: HashTable<Range<usize>>,
    hasher: RandomState,
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
        let hasher = RandomState::new();
        let mut index = HashTable::new();
        let mut start = 0;
        for theirs in keys.chunk_by(|a, b| a.domain == b.domain) {
            let range = start..start + theirs.len();
            start = range.end;
            let hash = hasher.hash_one(domain_at(&keys, &range));
            index.insert_unique(hash, range, |range| {
                hasher.hash_one(domain_at(&keys, range))
            });
        }
        Self {
            keys,
            index,
            hasher,
        }
    }

    /// The keys of `domain` (none: empty).
    pub fn of(&self, domain: &str) -> &[KeyRecord] {
        let hash = self.hasher.hash_one(domain);
        self.index
            .find(hash, |range| domain_at(&self.keys, range) == domain)
            .and_then(|range| self.keys.get(range.clone()))
            .unwrap_or_default()
    }

    /// Each domain's keys, ordered by domain.
    pub fn domains(&self) -> impl Iterator<Item = &[KeyRecord]> {
        self.keys.chunk_by(|a, b| a.domain == b.domain)
    }
}

/// The domain of the keys at `range` of `keys` (a range of the index: never empty).
fn domain_at<'k>(keys: &'k [KeyRecord], range: &Range<usize>) -> &'k str {
    keys.get(range.start).map_or("", |key| key.domain.as_str())
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
    fn finds_every_domain_of_many_as_the_table_grows() {
        let keys: Vec<KeyRecord> = (0..5000)
            .flat_map(|n| {
                [
                    key(&format!("d{n:05}.test"), "s1"),
                    key(&format!("d{n:05}.test"), "s2"),
                ]
            })
            .collect();
        let grouped = ByDomain::new(&keys);
        for n in 0..5000 {
            let theirs = grouped.of(&format!("d{n:05}.test"));
            assert_eq!(selectors(theirs), ["s1", "s2"], "d{n:05}.test");
            assert!(theirs.iter().all(|k| k.domain == format!("d{n:05}.test")));
        }
        assert!(grouped.of("d05000.test").is_empty());
        assert!(grouped.of("").is_empty());
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
