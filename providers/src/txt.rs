//! The one TXT codec: a record value is a list of character-strings of at most 255 bytes each;
//! verifiers concatenate them with nothing in between.

/// The longest character-string a TXT record may hold.
pub const MAX_STRING: usize = 255;

/// A TXT record value as it sits in DNS: its character-strings, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxtValue {
    strings: Vec<Vec<u8>>,
}

impl TxtValue {
    /// Splits `value` into strings of at most 255 bytes.
    pub fn from_value(value: &str) -> Self {
        let strings = value
            .as_bytes()
            .chunks(MAX_STRING)
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>();
        Self {
            strings: if strings.is_empty() {
                vec![Vec::new()]
            } else {
                strings
            },
        }
    }

    /// Wraps strings exactly as a server returned them.
    pub fn from_strings(strings: Vec<Vec<u8>>) -> Self {
        Self { strings }
    }

    /// The character-strings, in order.
    pub fn strings(&self) -> &[Vec<u8>] {
        &self.strings
    }

    /// The strings joined with nothing in between, as a verifier reads them (lossy for non-UTF-8).
    pub fn joined(&self) -> String {
        String::from_utf8_lossy(&self.strings.concat()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_255_bytes_and_joins_back() {
        let value = "v=DKIM1; k=rsa; p=".to_string() + &"A".repeat(600);
        let txt = TxtValue::from_value(&value);
        let lengths: Vec<usize> = txt.strings().iter().map(Vec::len).collect();
        assert_eq!(lengths, vec![255, 255, 108]);
        assert_eq!(txt.joined(), value);
    }

    #[test]
    fn short_and_empty_values_are_one_string() {
        assert_eq!(TxtValue::from_value("v=DKIM1; p=").strings().len(), 1);
        assert_eq!(TxtValue::from_value("").strings(), &[Vec::<u8>::new()]);
    }

    #[test]
    fn every_length_round_trips() {
        for len in [0, 1, 254, 255, 256, 510, 511, 800] {
            let value = "x".repeat(len);
            let txt = TxtValue::from_value(&value);
            assert!(txt.strings().iter().all(|s| s.len() <= MAX_STRING));
            assert_eq!(txt.joined(), value);
        }
    }
}
