//! What a list of [`Change`]s means for Route53, without any I/O: for each name, the exact TXT
//! set to delete and the set to create in its place; then those edits packed into batches that
//! stay within Route53's limits.

use crate::{Change, TxtValue};

use super::value;

/// One value of a TXT set: its text exactly as Route53 holds it, and what it means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The value in Route53's quoted form (sent back verbatim when the set is deleted).
    pub text: String,
    /// The decoded value, for comparisons.
    pub value: TxtValue,
}

impl Entry {
    /// The entry for a value rotor adds.
    fn new(value: &TxtValue) -> Self {
        Self {
            text: value::encode(value),
            value: value.clone(),
        }
    }
}

/// A TXT record set (simple routing): one TTL, its values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TxtSet {
    /// Time to live, in seconds.
    pub ttl: i64,
    /// The values, in Route53's order.
    pub entries: Vec<Entry>,
}

/// The change of the TXT set at one name: delete exactly `delete`, then create `create`, in the
/// same batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Edit {
    /// The name, lowercase, without the trailing dot.
    pub name: String,
    /// The set as it is now (absent: there is none).
    pub delete: Option<TxtSet>,
    /// The set as it must be (absent: no value is left).
    pub create: Option<TxtSet>,
}

impl Edit {
    /// How many ResourceRecord elements the edit sends.
    fn records(&self) -> usize {
        self.sets().map(|set| set.entries.len()).sum()
    }

    /// How many characters of Value elements the edit sends.
    fn chars(&self) -> usize {
        self.sets()
            .flat_map(|set| &set.entries)
            .map(|entry| entry.text.len())
            .sum()
    }

    fn sets(&self) -> impl Iterator<Item = &TxtSet> {
        self.delete.iter().chain(self.create.iter())
    }
}

/// Route53's limits on one ChangeResourceRecordSets request. (An UPSERT would count its records
/// twice; rotor never sends one.)
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// ResourceRecord elements.
    pub records: usize,
    /// Characters of all Value elements together.
    pub chars: usize,
}

/// The limits Route53 documents.
pub(crate) const ROUTE53: Limits = Limits {
    records: 1_000,
    chars: 32_000,
};

/// The key a name is grouped under: lowercase, without the trailing dot.
pub(crate) fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The distinct names `changes` touch, keyed as [`key`] does, in order of first appearance.
pub(crate) fn names(changes: &[Change]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for change in changes {
        let name = key(change_name(change));
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn change_name(change: &Change) -> &str {
    match change {
        Change::Add { name, .. } | Change::Delete { name, .. } => name,
    }
}

/// The edit that applies the `changes` at `name` (keyed) to the set `current`, or `None` when
/// they change nothing. Adds are appended unless the exact value is there already, and give the
/// set their TTL (a set has one); deletes remove only exactly equal values; every other value
/// stays as it is.
pub(crate) fn edit(name: &str, current: Option<&TxtSet>, changes: &[Change]) -> Option<Edit> {
    let mut entries = current.map(|set| set.entries.clone()).unwrap_or_default();
    let mut ttl = current.map(|set| set.ttl);
    for change in changes
        .iter()
        .filter(|change| key(change_name(change)) == name)
    {
        match change {
            Change::Add {
                value, ttl: wanted, ..
            } => {
                if !entries.iter().any(|entry| entry.value == *value) {
                    entries.push(Entry::new(value));
                    ttl = Some(i64::from(*wanted));
                }
            }
            Change::Delete { value, .. } => entries.retain(|entry| entry.value != *value),
        }
    }
    if current.map_or(entries.is_empty(), |set| set.entries == entries) {
        return None;
    }
    Some(Edit {
        name: name.to_string(),
        delete: current.cloned(),
        create: match ttl {
            Some(ttl) if !entries.is_empty() => Some(TxtSet { ttl, entries }),
            _ => None,
        },
    })
}

/// Packs `edits` in order into batches within `limits`. The two halves of an edit always travel
/// together (a batch is atomic); an edit too large on its own goes alone, for Route53 to judge.
pub(crate) fn batches(edits: Vec<Edit>, limits: Limits) -> Vec<Vec<Edit>> {
    let mut batches: Vec<Vec<Edit>> = Vec::new();
    let (mut records, mut chars) = (0, 0);
    for edit in edits {
        let (more_records, more_chars) = (edit.records(), edit.chars());
        match batches.last_mut() {
            Some(batch)
                if records + more_records <= limits.records
                    && chars + more_chars <= limits.chars =>
            {
                batch.push(edit);
                records += more_records;
                chars += more_chars;
            }
            _ => {
                batches.push(vec![edit]);
                (records, chars) = (more_records, more_chars);
            }
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "sel._domainkey.example.com";

    fn add(name: &str, value: &str) -> Change {
        Change::Add {
            name: name.to_string(),
            value: TxtValue::from_value(value),
            ttl: 300,
        }
    }

    fn delete(name: &str, value: &str) -> Change {
        Change::Delete {
            name: name.to_string(),
            value: TxtValue::from_value(value),
        }
    }

    fn set(ttl: i64, values: &[&str]) -> TxtSet {
        TxtSet {
            ttl,
            entries: values
                .iter()
                .map(|value| Entry::new(&TxtValue::from_value(value)))
                .collect(),
        }
    }

    #[test]
    fn names_are_grouped_case_insensitively_in_order() {
        let changes = [
            add("B.example.com", "1"),
            add("a.example.com.", "2"),
            delete("b.example.com", "3"),
        ];
        assert_eq!(names(&changes), ["b.example.com", "a.example.com"]);
    }

    #[test]
    fn adding_to_an_empty_name_only_creates() {
        let edit = edit(NAME, None, &[add(NAME, "v=DKIM1; p=new")]).unwrap();
        assert_eq!(edit.delete, None);
        assert_eq!(edit.create, Some(set(300, &["v=DKIM1; p=new"])));
    }

    #[test]
    fn adding_beside_a_foreign_value_deletes_the_exact_old_set_and_keeps_it() {
        let mut current = set(3600, &["other"]);
        // A value written by someone else stays byte for byte as Route53 holds it.
        current.entries[0].text = "other".to_string();
        let edit = edit(NAME, Some(&current), &[add(NAME, "v=DKIM1; p=new")]).unwrap();
        assert_eq!(edit.delete, Some(current.clone()));
        let create = edit.create.unwrap();
        assert_eq!(create.ttl, 300);
        assert_eq!(create.entries[0], current.entries[0]);
        assert_eq!(create.entries[1].text, r#""v=DKIM1; p=new""#);
    }

    #[test]
    fn an_add_already_present_changes_nothing() {
        let current = set(3600, &["v=DKIM1; p=new"]);
        assert_eq!(
            edit(NAME, Some(&current), &[add(NAME, "v=DKIM1; p=new")]),
            None
        );
    }

    #[test]
    fn a_delete_removes_only_the_exact_value() {
        let current = set(300, &["keep", "v=DKIM1; p=old", "v=DKIM1; p=old2"]);
        let edit = edit(NAME, Some(&current), &[delete(NAME, "v=DKIM1; p=old")]).unwrap();
        assert_eq!(edit.delete, Some(current));
        assert_eq!(edit.create, Some(set(300, &["keep", "v=DKIM1; p=old2"])));
    }

    #[test]
    fn deleting_the_last_value_only_deletes() {
        let current = set(300, &["v=DKIM1; p=old"]);
        let edit = edit(NAME, Some(&current), &[delete(NAME, "v=DKIM1; p=old")]).unwrap();
        assert_eq!(edit.create, None);
    }

    #[test]
    fn deleting_an_absent_value_changes_nothing() {
        let current = set(300, &["keep"]);
        assert_eq!(edit(NAME, Some(&current), &[delete(NAME, "gone")]), None);
        assert_eq!(edit(NAME, None, &[delete(NAME, "gone")]), None);
    }

    #[test]
    fn only_the_changes_at_the_name_count() {
        let changes = [add("other.example.com", "x"), add(NAME, "mine")];
        let edit = edit(NAME, None, &changes).unwrap();
        assert_eq!(edit.create, Some(set(300, &["mine"])));
    }

    #[test]
    fn a_revocation_replaces_one_value_in_one_edit() {
        let current = set(300, &["v=DKIM1; p=old"]);
        let changes = [delete(NAME, "v=DKIM1; p=old"), add(NAME, "v=DKIM1; p=")];
        let edit = edit(NAME, Some(&current), &changes).unwrap();
        assert_eq!(edit.delete, Some(current));
        assert_eq!(edit.create, Some(set(300, &["v=DKIM1; p="])));
    }

    fn creates(count: usize, value: &str) -> Vec<Edit> {
        (0..count)
            .map(|n| {
                let name = format!("s{n}.example.com");
                edit(&name, None, &[add(&name, value)]).unwrap()
            })
            .collect()
    }

    #[test]
    fn batches_hold_at_most_1000_records() {
        let sizes: Vec<usize> = batches(creates(2_500, "x"), ROUTE53)
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [1_000, 1_000, 500]);
    }

    #[test]
    fn batches_hold_at_most_32000_characters() {
        // 252 characters quoted: 126 fit in 32,000.
        let value = "v".repeat(250);
        let batches = batches(creates(200, &value), ROUTE53);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [126, 74]);
        assert!(
            batches
                .iter()
                .all(|batch| batch.iter().map(Edit::chars).sum::<usize>() <= 32_000)
        );
    }

    #[test]
    fn the_halves_of_an_edit_stay_together() {
        let limits = Limits {
            records: 3,
            chars: 1_000,
        };
        let current = set(300, &["a"]);
        let replace = edit(NAME, Some(&current), &[add(NAME, "b")]).unwrap();
        let mut edits = creates(2, "x");
        edits.push(replace);
        let sizes: Vec<usize> = batches(edits, limits).iter().map(Vec::len).collect();
        // Two creates (2 records), then the delete-and-create (1 + 2 records) alone.
        assert_eq!(sizes, [2, 1]);
    }
}
