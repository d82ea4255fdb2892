//! TXT content as Cloudflare carries it: quoted character-strings separated by spaces
//! (`"abc" "def"`), or one plain string.

use crate::TxtValue;

/// The content to send for `value`: every string quoted, `"` and `\` escaped.
pub fn encode(value: &TxtValue) -> String {
    value
        .strings()
        .iter()
        .map(|s| {
            let text = String::from_utf8_lossy(s);
            format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value `content` holds. Quoted strings are unescaped; plain content is one value, split
/// into strings the way the codec splits.
pub fn decode(content: &str) -> TxtValue {
    let trimmed = content.trim();
    if !trimmed.starts_with('"') {
        return TxtValue::from_value(trimmed);
    }
    let mut strings = Vec::new();
    let mut chars = trimmed.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut current = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.extend(chars.next()),
                '"' => break,
                c => current.push(c),
            }
        }
        strings.push(current.into_bytes());
    }
    TxtValue::from_strings(strings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_round_trip_through_quoted_strings() {
        let value = TxtValue::from_value(&format!("v=DKIM1; k=rsa; p={}", "A".repeat(392)));
        let content = encode(&value);
        assert!(content.starts_with("\"v=DKIM1; k=rsa; p=AAA"));
        assert_eq!(content.matches("\" \"").count(), 1, "two strings");
        assert_eq!(decode(&content), value);
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        let value = TxtValue::from_value(r#"say "hi" \o/"#);
        assert_eq!(encode(&value), r#""say \"hi\" \\o/""#);
        assert_eq!(decode(&encode(&value)), value);
    }

    #[test]
    fn plain_content_is_one_value() {
        assert_eq!(decode("v=spf1 -all").joined(), "v=spf1 -all");
        let long = "x".repeat(300);
        assert_eq!(decode(&long).joined(), long);
    }
}
