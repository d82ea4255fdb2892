//! Route53's text form of a TXT value: each character-string in double quotes, separated by
//! spaces (`"abc" "def"`), with `\"` and `\\` escapes and `\DDD` (three octal digits) for any
//! other byte. This module only translates between that form and [`TxtValue`].

use std::fmt::Write as _;

use crate::TxtValue;
use crate::txt::MAX_STRING;

/// Writes `value` as Route53 expects it: every string quoted, none longer than 255 bytes (a
/// longer one is split), `"` and `\` escaped, bytes outside printable ASCII as `\DDD` octal.
pub(crate) fn encode(value: &TxtValue) -> String {
    let mut out = String::new();
    let mut quote = |chunk: &[u8]| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push('"');
        for &byte in chunk {
            match byte {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b' '..=b'~' => out.push(char::from(byte)),
                _ => {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\{byte:03o}");
                }
            }
        }
        out.push('"');
    };
    for string in value.strings() {
        if string.is_empty() {
            quote(&[]);
        }
        for chunk in string.chunks(MAX_STRING) {
            quote(chunk);
        }
    }
    if value.strings().is_empty() {
        quote(&[]);
    }
    out
}

/// Reads a value as Route53 returns it: quoted strings (unquoted ones end at whitespace), with
/// `\"`, `\\`, any `\X` and `\DDD` octal escapes. Returns why it could not, if it could not.
pub(crate) fn decode(text: &str) -> Result<TxtValue, String> {
    let bytes = text.as_bytes();
    let mut strings = Vec::new();
    let mut at = 0;
    loop {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if at == bytes.len() {
            break;
        }
        let quoted = bytes[at] == b'"';
        if quoted {
            at += 1;
        }
        let mut string = Vec::new();
        loop {
            let Some(&byte) = bytes.get(at) else {
                if quoted {
                    return Err(format!("unterminated quoted string in TXT value {text}"));
                }
                break;
            };
            if quoted && byte == b'"' {
                at += 1;
                break;
            }
            if !quoted && byte.is_ascii_whitespace() {
                break;
            }
            if byte != b'\\' {
                string.push(byte);
                at += 1;
                continue;
            }
            let octal = bytes
                .get(at + 1..at + 4)
                .filter(|digits| digits.iter().all(|digit| (b'0'..=b'7').contains(digit)));
            if let Some(digits) = octal {
                let code = digits
                    .iter()
                    .fold(0u16, |code, digit| code * 8 + u16::from(digit - b'0'));
                let byte = u8::try_from(code)
                    .map_err(|_| format!("escape \\{code:o} is not a byte in TXT value {text}"))?;
                string.push(byte);
                at += 4;
            } else if let Some(&escaped) = bytes.get(at + 1) {
                string.push(escaped);
                at += 2;
            } else {
                return Err(format!("dangling backslash in TXT value {text}"));
            }
        }
        strings.push(string);
    }
    if strings.is_empty() {
        strings.push(Vec::new());
    }
    Ok(TxtValue::from_strings(strings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(value: &TxtValue) -> Vec<String> {
        value
            .strings()
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    #[test]
    fn encodes_each_string_quoted_and_escaped() {
        let value = TxtValue::from_strings(vec![
            b"v=DKIM1; k=rsa".to_vec(),
            b"say \"hi\" \\o/".to_vec(),
        ]);
        assert_eq!(encode(&value), r#""v=DKIM1; k=rsa" "say \"hi\" \\o/""#);
    }

    #[test]
    fn splits_strings_longer_than_255_bytes() {
        let value = TxtValue::from_strings(vec![vec![b'a'; 600]]);
        let text = encode(&value);
        let back = decode(&text).unwrap();
        let lengths: Vec<usize> = back.strings().iter().map(Vec::len).collect();
        assert_eq!(lengths, vec![255, 255, 90]);
        assert_eq!(back.joined(), "a".repeat(600));
    }

    #[test]
    fn non_printable_bytes_travel_as_octal() {
        let value = TxtValue::from_strings(vec![vec![b'a', 0, b'\n', 0xc3, 0xa9, b'z']]);
        let text = encode(&value);
        assert_eq!(text, r#""a\000\012\303\251z""#);
        assert_eq!(decode(&text).unwrap(), value);
    }

    #[test]
    fn decodes_what_route53_returns() {
        let value = decode(r#""v=DKIM1; p=abc" "def\"\\" "\101\102""#).unwrap();
        assert_eq!(strings(&value), ["v=DKIM1; p=abc", "def\"\\", "AB"]);
        assert_eq!(strings(&decode("plain two").unwrap()), ["plain", "two"]);
        assert_eq!(strings(&decode(r#""""#).unwrap()), [""]);
        assert_eq!(strings(&decode(r#""a\;b""#).unwrap()), ["a;b"]);
    }

    #[test]
    fn refuses_malformed_text() {
        assert!(decode(r#""open"#).is_err());
        assert!(decode(r#""a\"#).is_err());
        assert!(decode(r#""\777""#).is_err());
    }

    #[test]
    fn empty_values_round_trip() {
        for value in [
            TxtValue::from_value(""),
            TxtValue::from_strings(vec![b"a".to_vec(), Vec::new(), b"b".to_vec()]),
        ] {
            assert_eq!(decode(&encode(&value)).unwrap(), value);
        }
    }

    #[test]
    fn dkim_values_round_trip_string_by_string() {
        for len in [0, 1, 254, 255, 256, 392, 736, 1000] {
            let value =
                TxtValue::from_value(&format!("v=DKIM1; k=rsa; p={}", "A/+9".repeat(len / 4)));
            assert_eq!(decode(&encode(&value)).unwrap(), value, "length {len}");
        }
    }
}
