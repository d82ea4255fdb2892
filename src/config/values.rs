//! Values of the config file, validated as they are parsed so that every error carries the
//! file's line and column.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

pub use rotor_common::{Interval, ServerAddr};
use rotor_common::{deserialize_from_str, parse_scalar};

use crate::keys::KeyAlgorithm;

/// A domain name: lowercase letters, digits and hyphens in labels of at most 63 characters,
/// at least two labels, no trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

impl FromStr for DomainName {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let name = text.trim_end_matches('.').to_ascii_lowercase();
        let bad = |why: &str| Err(format!("invalid domain name {text:?}: {why}"));
        if name.is_empty() || name.len() > 253 {
            return bad("it must have 1 to 253 characters");
        }
        if !name.contains('.') {
            return bad("it needs at least two labels, like example.com");
        }
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return bad("every label needs 1 to 63 characters");
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return bad("only letters, digits and hyphens are allowed (use punycode for IDNs)");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return bad("a label cannot start or end with a hyphen");
            }
        }
        Ok(Self(name))
    }
}
deserialize_from_str!(DomainName);

impl DomainName {
    /// The name, lowercase, without the trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` is this name or below it.
    pub fn contains(&self, name: &str) -> bool {
        rotor_providers::dns::within(name, &self.0)
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key algorithms of a domain: at least one RSA key; Ed25519 only beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyList(pub Vec<KeyAlgorithm>);

impl KeyList {
    fn check(keys: Vec<KeyAlgorithm>) -> Result<Self, &'static str> {
        let unique: BTreeSet<_> = keys.iter().collect();
        if unique.len() != keys.len() {
            return Err("a key type is listed twice");
        }
        match keys.iter().filter(|key| key.is_rsa()).count() {
            0 if keys.is_empty() => Err("list at least one key type, e.g. [rsa-2048]"),
            0 => Err(
                "ed25519 needs an RSA key beside it: many receivers do not verify Ed25519 signatures, so use e.g. [rsa-2048, ed25519]",
            ),
            1 => Ok(Self(keys)),
            _ => Err("list one RSA key size only"),
        }
    }
}

impl<'de> Deserialize<'de> for KeyList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = KeyList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of key types, e.g. [rsa-2048]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyList, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = seq.next_element()? {
                    keys.push(key);
                }
                // Checked inside the visitor, so the error points at the list.
                KeyList::check(keys).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_seq(KeysVisitor)
    }
}

/// A selector template: letters, digits, hyphens and the placeholders `{yyyy}`, `{mm}`, `{dd}`,
/// `{HH}`, `{MM}`, `{SS}` (UTC) and `{alg}` (`rsa` or `ed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorTemplate(String);

const PLACEHOLDERS: [&str; 7] = ["{yyyy}", "{mm}", "{dd}", "{HH}", "{MM}", "{SS}", "{alg}"];

impl FromStr for SelectorTemplate {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let mut rest = text.to_string();
        for placeholder in PLACEHOLDERS {
            rest = rest.replace(placeholder, "0");
        }
        let valid = !rest.is_empty()
            && rest.len() <= 50
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !rest.starts_with('-')
            && !rest.ends_with('-');
        if !valid {
            return Err(format!(
                "invalid selector template {text:?}: use letters, digits, hyphens (not first or last) and {}",
                PLACEHOLDERS.join(" ")
            ));
        }
        let template = Self(text.to_string());
        let widest = template.widest();
        if widest.len() > 63 {
            return Err(format!(
                "selector template {text:?} can render {} characters ({widest}): a DNS label has at most 63",
                widest.len()
            ));
        }
        Ok(template)
    }
}
deserialize_from_str!(SelectorTemplate);

/// The widest suffix rotor appends to a selector whose name is taken (`-2`, `-3`, …), as
/// allowed for in length checks.
pub const SUFFIX: &str = "-99";

impl SelectorTemplate {
    /// The widest selector the template renders (every placeholder at its widest: `{alg}` as
    /// `rsa`), without a suffix.
    pub fn widest(&self) -> String {
        self.render("9999-99-99T99:99:99Z", KeyAlgorithm::Rsa2048)
    }

    /// The selector for a key of `algorithm` made at `rfc3339` (`YYYY-MM-DDTHH:MM:SSZ`).
    pub fn render(&self, rfc3339: &str, algorithm: KeyAlgorithm) -> String {
        let part = |range: std::ops::Range<usize>| rfc3339.get(range).unwrap_or("0");
        self.0
            .replace("{yyyy}", part(0..4))
            .replace("{mm}", part(5..7))
            .replace("{dd}", part(8..10))
            .replace("{HH}", part(11..13))
            .replace("{MM}", part(14..16))
            .replace("{SS}", part(17..19))
            .replace("{alg}", if algorithm.is_rsa() { "rsa" } else { "ed" })
            .to_ascii_lowercase()
    }
}

/// Which nameservers must return the record before it counts as visible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authoritative {
    /// The zone's NS records, looked up through the resolvers (port 53).
    Auto,
    /// These servers.
    List(Vec<ServerAddr>),
    /// No authoritative check (resolvers only).
    None,
}

impl<'de> Deserialize<'de> for Authoritative {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AuthVisitor;
        impl<'de> Visitor<'de> for AuthVisitor {
            type Value = Authoritative;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`auto`, `none` or a list of ip[:port]")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Authoritative, E> {
                match text {
                    "auto" => Ok(Authoritative::Auto),
                    "none" => Ok(Authoritative::None),
                    other => Err(E::custom(format!(
                        "invalid value {other:?}: expected `auto`, `none` or a list of ip[:port]"
                    ))),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Authoritative, A::Error> {
                let mut servers = Vec::new();
                while let Some(server) = seq.next_element()? {
                    servers.push(server);
                }
                Ok(Authoritative::List(servers))
            }
        }
        deserializer.deserialize_any(AuthVisitor)
    }
}

/// What happens to a record at the end of the grace window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetireMode {
    /// Remove the record.
    Delete,
    /// Publish it with an empty `p=` for `revoke_for`, then remove it.
    Revoke,
}

thread_local! {
    /// The provider and signer names the config declares, while its domains are parsed.
    static DECLARED: RefCell<Option<Declared>> = const { RefCell::new(None) };
}

/// Names declared under `providers:` and `signers:`.
#[derive(Clone, Debug, Default)]
pub struct Declared {
    /// Provider names.
    pub providers: BTreeSet<String>,
    /// Signer names.
    pub signers: BTreeSet<String>,
}

impl Declared {
    /// Runs `parse` with these names in scope for [`ProviderRef`] and [`SignerRef`].
    pub fn scope<T>(self, parse: impl FnOnce() -> T) -> T {
        DECLARED.with(|cell| *cell.borrow_mut() = Some(self));
        let result = parse();
        DECLARED.with(|cell| *cell.borrow_mut() = None);
        result
    }

    /// What is wrong with a domain's references to `provider` and `signers`, if one of them
    /// is not declared.
    pub fn undeclared<'n>(
        &self,
        provider: &str,
        mut signers: impl Iterator<Item = &'n str>,
    ) -> Option<String> {
        if !self.providers.contains(provider) {
            return Some(not_declared("provider", provider, &self.providers));
        }
        let signer = signers.find(|signer| !self.signers.contains(*signer))?;
        Some(not_declared("signer", signer, &self.signers))
    }
}

/// `{kind} {name} is not declared`, with the names that are.
fn not_declared(kind: &str, name: &str, known: &BTreeSet<String>) -> String {
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    format!(
        "{kind} {name:?} is not declared under `{kind}s:` (declared: {})",
        known.join(", ")
    )
}

fn check_declared(
    name: &str,
    kind: &str,
    pick: impl Fn(&Declared) -> &BTreeSet<String>,
) -> Result<String, String> {
    DECLARED.with(|cell| match &*cell.borrow() {
        Some(declared) if !pick(declared).contains(name) => {
            Err(not_declared(kind, name, pick(declared)))
        }
        _ => Ok(name.to_string()),
    })
}

/// A reference to a provider declared under `providers:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderRef(pub String);

impl<'de> Deserialize<'de> for ProviderRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_scalar(deserializer, |name| {
            check_declared(name, "provider", |d| &d.providers)
        })
        .map(Self)
    }
}

/// A reference to a signer declared under `signers:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerRef(pub String);

impl<'de> Deserialize<'de> for SignerRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_scalar(deserializer, |name| {
            check_declared(name, "signer", |d| &d.signers)
        })
        .map(Self)
    }
}

deserialize_from_str!(super::window::ActivationWindow);

/// A time zone by its IANA name (`Europe/Berlin`, `UTC`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeZoneName(pub chrono_tz::Tz);

impl FromStr for TimeZoneName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.parse().map(TimeZoneName).map_err(|_| {
            format!("unknown time zone {text:?}: use an IANA name like Europe/Berlin or UTC")
        })
    }
}

deserialize_from_str!(TimeZoneName);

/// A cron schedule with seconds: `sec min hour day-of-month month day-of-week`, in UTC
/// (`"0 */15 * * * *"`: every 15 minutes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule(pub String);

impl FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        tokio_cron_scheduler::Job::new(text, |_, _| {})
            .map(|_| Self(text.to_string()))
            .map_err(|_| {
                format!(
                    "invalid schedule {text:?}: six fields, sec min hour day month weekday, like \"0 */15 * * * *\""
                )
            })
    }
}

deserialize_from_str!(Schedule);

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!("90d".parse::<Interval>().unwrap().secs(), 90 * 86400);
        assert_eq!("4h".parse::<Interval>().unwrap().secs(), 4 * 3600);
        assert_eq!("30s".parse::<Interval>().unwrap().secs(), 30);
        assert_eq!("1h30m".parse::<Interval>().unwrap().secs(), 5400);
        assert!("90".parse::<Interval>().unwrap_err().contains("90d"));
    }

    #[test]
    fn domain_names_are_checked() {
        assert_eq!(
            "Example.COM.".parse::<DomainName>().unwrap().as_str(),
            "example.com"
        );
        for bad in [
            "localhost",
            "ex ample.com",
            "-a.com",
            "a..com",
            "exa_mple.com",
        ] {
            assert!(bad.parse::<DomainName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn server_addresses_default_to_port_53() {
        assert_eq!("192.0.2.1".parse::<ServerAddr>().unwrap().0.port(), 53);
        assert_eq!(
            "192.0.2.2:5353".parse::<ServerAddr>().unwrap().0.port(),
            5353
        );
        assert_eq!("[::1]:5300".parse::<ServerAddr>().unwrap().0.port(), 5300);
        assert!("ns1.example.com".parse::<ServerAddr>().is_err());
    }

    #[test]
    fn file_modes_are_octal_and_never_open_to_others() {
        use rotor_common::FileMode;
        assert_eq!("0640".parse::<FileMode>().unwrap(), FileMode(0o640));
        assert_eq!("600".parse::<FileMode>().unwrap(), FileMode(0o600));
        assert!(
            "0644"
                .parse::<FileMode>()
                .unwrap_err()
                .contains("every user")
        );
        assert!("0040".parse::<FileMode>().unwrap_err().contains("owner"));
        assert!(
            "rw-r-----"
                .parse::<FileMode>()
                .unwrap_err()
                .contains("octal")
        );
    }

    #[test]
    fn selector_templates_render_dates() {
        let template: SelectorTemplate = "rotor{yyyy}{mm}{dd}-{alg}".parse().unwrap();
        assert_eq!(
            template.render("2026-11-23T17:30:07Z", KeyAlgorithm::Ed25519),
            "rotor20261123-ed"
        );
        assert!("rotor_{yyyy}".parse::<SelectorTemplate>().is_err());
        assert!("{year}".parse::<SelectorTemplate>().is_err());
    }
}
