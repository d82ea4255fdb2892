//! Where a key's value stands in the config text, for checks made after parsing: the YAML is
//! walked again by serde_yaml down to that key, which stops there with an error that carries
//! the value's line and column (block or flow style, comments, quotes and anchors alike).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path into the document.
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    /// The value of this key of a mapping.
    Key(&'a str),
    /// This element (from 0) of a list.
    Index(usize),
}

/// The line and column of the value at `path` in `text`, if it is there.
pub fn locate(text: &str, path: &[Step]) -> Option<(usize, usize)> {
    match Seek(path).deserialize(serde_yaml::Deserializer::from_str(text)) {
        Err(err) if err.to_string().contains(FOUND) => {
            err.location().map(|at| (at.line(), at.column()))
        }
        _ => None,
    }
}

/// The message the walk stops with at the value it looks for.
const FOUND: &str = "\u{1}rotor: found";

/// Walks down `path`, skipping everything else.
struct Seek<'p>(&'p [Step<'p>]);

/// Stops at the value reached.
struct Stop;

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.0.is_empty() {
            deserializer.deserialize_any(Stop)
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Stop {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    // A scalar where the path goes on: the key is not there.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            match self.0.first() {
                Some(Step::Key(wanted)) if key.as_str() == Some(wanted) => {
                    return map.next_value_seed(Seek(&self.0[1..]));
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for index in 0.. {
            match self.0.first() {
                Some(Step::Index(wanted)) if *wanted == index => {
                    seq.next_element_seed(Seek(&self.0[1..]))?;
                    break;
                }
                _ if seq.next_element::<IgnoredAny>()?.is_none() => break,
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Step::{Index, Key};
    use super::*;

    #[test]
    fn values_are_found_in_block_and_flow_style() {
        let text = "a: 1\ndefaults:\n  ttl: 0\n  propagation: {min_wait: 1h, timeout: 2h}\nproviders:\n  cf:\n    type: cloudflare\n    api_url: \"http://x\"\ndomains:\n  - name: x.com\n    ttl: 5\n  - {name: y.com, ttl: 7, signers: [a, b]}\n";
        assert_eq!(locate(text, &[Key("defaults"), Key("ttl")]), Some((3, 8)));
        let timeout = [Key("defaults"), Key("propagation"), Key("timeout")];
        assert_eq!(locate(text, &timeout), Some((4, 40)));
        let url = [Key("providers"), Key("cf"), Key("api_url")];
        assert_eq!(locate(text, &url), Some((8, 14)));
        assert_eq!(locate(text, &[Key("providers"), Key("cf")]), Some((7, 5)));
        let ttl = [Key("domains"), Index(1), Key("ttl")];
        assert_eq!(locate(text, &ttl), Some((12, 24)));
        let signer = [Key("domains"), Index(1), Key("signers"), Index(1)];
        assert_eq!(locate(text, &signer), Some((12, 40)));
        assert_eq!(
            locate(text, &[Key("domains"), Index(0), Key("grace")]),
            None
        );
        assert_eq!(locate(text, &[Key("a"), Key("b")]), None);
        assert_eq!(locate("a: [", &[Key("b")]), None, "broken YAML");
    }
}
