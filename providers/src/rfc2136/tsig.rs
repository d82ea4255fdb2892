//! TSIG keys in BIND's format, as `tsig-keygen` writes them:
//! `key "NAME" { algorithm hmac-sha256; secret "BASE64"; };`

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hickory_proto::rr::TSigner;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use zeroize::Zeroizing;

use crate::dns;

/// A TSIG key read from a file. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct TsigKey {
    name: String,
    algorithm: TsigAlgorithm,
    secret: Zeroizing<Vec<u8>>,
    path: PathBuf,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .field("path", &self.path)
            .finish()
    }
}

/// Why a TSIG key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TsigKeyError {
    /// The file could not be read.
    #[error("cannot read TSIG key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a BIND key statement rotor can use.
    #[error("TSIG key file {path}: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
}

impl TsigKey {
    /// Reads the single `key` statement in the BIND-format file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, TsigKeyError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| TsigKeyError::Read {
                    path: path.to_owned(),
                    source,
                })?,
            );
        Self::parse(&text, path).map_err(|detail| TsigKeyError::Invalid {
            path: path.to_owned(),
            detail,
        })
    }

    fn parse(text: &str, path: &Path) -> Result<Self, String> {
        let tokens = tokenize(text);
        let mut tokens = tokens.iter().map(String::as_str);
        if tokens.next() != Some("key") {
            return Err("expected `key \"NAME\" { algorithm ...; secret \"...\"; };`".into());
        }
        let name = tokens
            .next()
            .filter(|name| !name.is_empty() && *name != "{")
            .ok_or("the key has no name")?
            .to_string();
        if tokens.next() != Some("{") {
            return Err(format!("expected `{{` after key \"{name}\""));
        }
        let (mut algorithm, mut secret) = (None, None);
        loop {
            match tokens.next() {
                Some("algorithm") => algorithm = tokens.next().map(str::to_ascii_lowercase),
                Some("secret") => secret = tokens.next().map(str::to_string),
                Some("}") => break,
                Some(";") => continue,
                Some(other) => return Err(format!("unexpected `{other}` in key \"{name}\"")),
                None => return Err(format!("key \"{name}\" is not closed with `}};`")),
            }
        }
        let algorithm = match algorithm.as_deref() {
            Some("hmac-sha256") => TsigAlgorithm::HmacSha256,
            Some("hmac-sha384") => TsigAlgorithm::HmacSha384,
            Some("hmac-sha512") => TsigAlgorithm::HmacSha512,
            Some(other) => {
                return Err(format!(
                    "algorithm {other} is not supported: use hmac-sha256, hmac-sha384 or hmac-sha512"
                ));
            }
            None => return Err(format!("key \"{name}\" has no algorithm")),
        };
        let secret = Zeroizing::new(secret.ok_or(format!("key \"{name}\" has no secret"))?);
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.as_bytes())
            .map_err(|_| format!("the secret of key \"{name}\" is not valid base64"))?;
        dns::fqdn(&name)?;
        Ok(Self {
            name,
            algorithm,
            secret: Zeroizing::new(secret),
            path: path.to_owned(),
        })
    }

    /// The key's name, as the server knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A signer for outgoing messages.
    pub fn signer(&self) -> TSigner {
        let name = dns::fqdn(&self.name).expect("checked when the key was read");
        TSigner::new(self.secret.to_vec(), self.algorithm.clone(), name, 300)
            .expect("only supported algorithms are accepted")
    }
}

/// Splits BIND's configuration syntax into words, quoted strings, braces and semicolons,
/// skipping `#`, `//` and `/* */` comments.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '{' | '}' | ';' => tokens.push(c.to_string()),
            '"' => tokens.push(chars.by_ref().take_while(|&c| c != '"').collect()),
            c => {
                let mut word = c.to_string();
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || "{};\"".contains(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                tokens.push(word);
            }
        }
    }
    tokens
}

fn skip_line(chars: &mut impl Iterator<Item = char>) {
    for c in chars {
        if c == '\n' {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYGEN: &str = "key \"rotor-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\";\n};\n";

    #[test]
    fn reads_what_tsig_keygen_writes() {
        let key = TsigKey::parse(KEYGEN, Path::new("k")).unwrap();
        assert_eq!(key.name(), "rotor-key");
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(&*key.secret, b"secretsecretsecretsecret");
    }

    #[test]
    fn comments_are_skipped() {
        let text = format!("# made by tsig-keygen\n// again\n/* and */ {KEYGEN}");
        assert!(TsigKey::parse(&text, Path::new("k")).is_ok());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = TsigKey::parse(KEYGEN, Path::new("k")).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert!(!shown.contains("secretsecret"), "{shown}");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let cases = [
            ("", "expected `key"),
            ("key \"k\" { secret \"AA==\"; };", "has no algorithm"),
            (
                "key \"k\" { algorithm hmac-md5; secret \"AA==\"; };",
                "not supported",
            ),
            ("key \"k\" { algorithm hmac-sha256; };", "has no secret"),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"!!\"; };",
                "not valid base64",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"AA==\";",
                "not closed",
            ),
        ];
        for (text, expected) in cases {
            let err = TsigKey::parse(text, Path::new("k")).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
