//! Checks made once the whole config is parsed, of what would otherwise fail only later (at
//! the provider, the signer or the next rotation): each error names the line and column of the
//! value concerned, found again in the text by [`locate`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nix::unistd::{Group, User};

use super::locate::{Step, locate};
use super::values::SUFFIX;
use rotor_providers::adapter::{ProviderSettings, secure_url};
use rotor_providers::registry::ProviderConfig;
use rotor_signers::SignerSettings;
use rotor_signers::registry::PathSetting;

use super::domains_file::Origin;
use super::{Authoritative, ConfigError, Policy, RetireMode};

/// The text being checked, for locating errors.
pub struct Checker<'a> {
    /// The config's text.
    pub text: &'a str,
    /// Where it was read from.
    pub path: &'a Path,
}

/// The longest TTL accepted: a week.
const MAX_TTL: u32 = 7 * 86400;

impl Checker<'_> {
    /// An error at the value `steps` lead to (or, if it is not in the text, at `fallback`).
    fn at(&self, steps: &[Step], fallback: Option<(usize, usize)>, message: String) -> ConfigError {
        ConfigError::new(self.path, locate(self.text, steps).or(fallback), message)
    }

    /// Checks `domains[index]`'s resolved policy; a value that comes from `defaults:` is named
    /// there (the message names the domain).
    pub(super) fn policy(
        &self,
        origin: &Origin,
        domain: &str,
        provider: &ProviderConfig,
        policy: &Policy,
    ) -> Result<(), ConfigError> {
        let domain_at = || super::domain_line(self.text, domain);
        let error = |field: &[&str], message: String| {
            let index = match origin {
                Origin::Config(index) => *index,
                Origin::File(file, line) => {
                    let message = format!("{}: {message} (for {domain})", field.join("."));
                    return Err(ConfigError::new(file, Some((*line, 1)), message));
                }
            };
            let mut own = vec![Step::Key("domains"), Step::Index(index)];
            own.extend(field.iter().map(|key| Step::Key(key)));
            let mut defaults = vec![Step::Key("defaults")];
            defaults.extend(field.iter().map(|key| Step::Key(key)));
            let dotted = field.join(".");
            let (at, name) = match (locate(self.text, &own), locate(self.text, &defaults)) {
                (Some(at), _) => (Some(at), format!("domains[{index}].{dotted}")),
                (None, Some(at)) => (Some(at), format!("defaults.{dotted} (for {domain})")),
                (None, None) => (domain_at(), format!("domains[{index}].{dotted}")),
            };
            Err(ConfigError::new(
                self.path,
                at,
                format!("{name}: {message}"),
            ))
        };
        let ttl = policy.ttl;
        if ttl == 0 || ttl > MAX_TTL {
            return error(
                &["ttl"],
                format!("TTL {ttl} is out of range: use 1 to {MAX_TTL} seconds (a week)"),
            );
        }
        if let Err(message) = provider.check_ttl(ttl) {
            return error(&["ttl"], message);
        }
        if policy.grace.is_zero() || policy.grace.secs() < u64::from(ttl) {
            return error(
                &["grace"],
                format!(
                    "{} is shorter than the TTL ({ttl}s): mail in flight and resolvers' cached copies of the record need the replaced key at least that long",
                    policy.grace
                ),
            );
        }
        if policy.rotate_every.is_zero() {
            return error(
                &["rotate_every"],
                "0s would start a rotation on every pass: give the key's lifetime, like 90d".into(),
            );
        }
        let propagation = &policy.propagation;
        if propagation.poll_every.is_zero() {
            return error(
                &["propagation", "poll_every"],
                "0s would ask the nameservers without pause: give the time between checks, like 5m"
                    .into(),
            );
        }
        if propagation.min_wait >= propagation.timeout {
            return error(
                &["propagation", "timeout"],
                format!(
                    "{} is not longer than min_wait ({}): every new key would fail before its first check",
                    propagation.timeout, propagation.min_wait
                ),
            );
        }
        if policy.retire == RetireMode::Revoke && policy.revoke_for.is_zero() {
            return error(
                &["revoke_for"],
                "0s with `retire: revoke` would remove the revoked record at once: give how long the empty p= stays published, like 7d".into(),
            );
        }
        let no_authoritative = match &propagation.authoritative {
            Authoritative::None => true,
            Authoritative::List(servers) => servers.is_empty(),
            Authoritative::Auto => false,
        };
        if no_authoritative && propagation.resolvers.is_empty() {
            return error(
                &["propagation", "authoritative"],
                "with no authoritative servers and no resolvers, nothing can confirm a record is visible: list resolvers, or authoritative servers (or `auto`)".into(),
            );
        }
        let record = |selector: &str| format!("{selector}._domainkey.{domain}");
        if policy.selector_ring.is_empty() {
            let widest = format!("{}{SUFFIX}", policy.selector.widest());
            if widest.len() > 63 {
                return error(
                    &["selector"],
                    format!(
                        "the template can render {} characters ({widest}, with the suffix rotor appends when a name is taken): a DNS label has at most 63",
                        widest.len()
                    ),
                );
            }
            if record(&widest).len() > 253 {
                return error(
                    &["selector"],
                    format!(
                        "the record name can reach {} characters ({}): a DNS name has at most 253",
                        record(&widest).len(),
                        record(&widest)
                    ),
                );
            }
        }
        for (position, selector) in policy.selector_ring.iter().enumerate() {
            let name = record(&selector.widest());
            if name.len() > 253 {
                let &Origin::Config(index) = origin else {
                    return error(
                        &[&format!("selectors[{position}]")],
                        format!(
                            "the record name can reach {} characters ({name}): a DNS name has at most 253",
                            name.len()
                        ),
                    );
                };
                return Err(ConfigError::new(
                    self.path,
                    locate(
                        self.text,
                        &[
                            Step::Key("domains"),
                            Step::Index(index),
                            Step::Key("selectors"),
                        ],
                    )
                    .or_else(|| locate(self.text, &[Step::Key("defaults"), Step::Key("selectors")]))
                    .or_else(domain_at),
                    format!(
                        "domains[{index}].selectors[{position}]: the record name can reach {} characters ({name}): a DNS name has at most 253",
                        name.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks a provider's settings that serde cannot (through its adapter's
    /// [`ProviderSettings::validate`]): an error about one field is shown at that field, any
    /// other at the provider's entry.
    pub fn provider(&self, name: &str, provider: &ProviderConfig) -> Result<(), ConfigError> {
        let Err(message) = provider.validate() else {
            return Ok(());
        };
        let entry = [Step::Key("providers"), Step::Key(name)];
        if let Some((field, rest)) = message.split_once(": ")
            && !field.is_empty()
            && field
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && let Some(at) = locate(self.text, &[&entry[..], &[Step::Key(field)]].concat())
        {
            return Err(ConfigError::new(
                self.path,
                Some(at),
                format!("providers.{name}.{field}: {rest}"),
            ));
        }
        let at = super::find_line(self.text, |line| line.starts_with(&format!("{name}:")));
        Err(ConfigError::new(
            self.path,
            at,
            format!("providers.{name}: {message}"),
        ))
    }

    /// Checks the `passes:` limits: none zero, and the warning before the critical one.
    pub fn passes(&self, passes: &super::Passes) -> Result<(), ConfigError> {
        for (field, value) in [
            ("timeout", passes.timeout),
            ("warn_after", passes.warn_after),
            ("critical_after", passes.critical_after),
            ("recheck_every", passes.recheck_every),
        ] {
            if value.secs() == 0 {
                return Err(self.at(
                    &[Step::Key("passes"), Step::Key(field)],
                    None,
                    format!("passes.{field}: must be longer than 0s"),
                ));
            }
        }
        if passes.warn_after.secs() >= passes.critical_after.secs() {
            return Err(self.at(
                &[Step::Key("passes"), Step::Key("warn_after")],
                None,
                format!(
                    "passes.warn_after: {} must be shorter than passes.critical_after ({})",
                    passes.warn_after, passes.critical_after
                ),
            ));
        }
        Ok(())
    }

    /// Checks the notify settings (the webhook's URL is a secret: never shown).
    pub fn notify(&self, notify: &crate::notify::NotifyConfig) -> Result<(), ConfigError> {
        let error = |field: &str, message: String| {
            Err(self.at(
                &[Step::Key("notify"), Step::Key(field)],
                None,
                format!("notify.{field}: {message}"),
            ))
        };
        if let Some(url) = &notify.webhook
            && let Err(why) = secure_url(url)
        {
            return error(
                "webhook",
                format!("{why} (the URL is not shown: it is a secret)"),
            );
        }
        if notify.command.as_ref().is_some_and(|c| c.trim().is_empty()) {
            return error("command", "is empty: remove it or give a command".into());
        }
        Ok(())
    }

    /// Checks the directories and files rotor and its signers write: absolute paths, none
    /// shared (one would overwrite or remove the other's files), no blank command.
    pub fn paths(
        &self,
        state_dir: &Path,
        key_dir: &Path,
        metrics_file: Option<&Path>,
        signers: &BTreeMap<String, SignerSettings>,
    ) -> Result<(), ConfigError> {
        let mut owned: Vec<(Vec<Step>, String, PathBuf)> = vec![
            (
                vec![Step::Key("state_dir")],
                "state_dir".into(),
                state_dir.into(),
            ),
            (vec![Step::Key("key_dir")], "key_dir".into(), key_dir.into()),
        ];
        if let Some(file) = metrics_file {
            owned.push((
                vec![Step::Key("metrics_file")],
                "metrics_file".into(),
                file.into(),
            ));
        }
        for (name, signer) in signers {
            let base = [Step::Key("signers"), Step::Key(name)];
            for (field, path) in signer.paths() {
                let (steps, label) = match field {
                    PathSetting::Key(key) => (
                        [&base[..], &[Step::Key(key)]].concat(),
                        format!("signers.{name}.{key}"),
                    ),
                    PathSetting::File(index) => (
                        [
                            &base[..],
                            &[Step::Key("files"), Step::Index(index), Step::Key("path")],
                        ]
                        .concat(),
                        format!("signers.{name}.files[{index}].path"),
                    ),
                };
                owned.push((steps, label, path));
            }
            let (user, group) = signer.owner();
            let missing = [
                (
                    "user",
                    user,
                    user.is_some_and(|n| User::from_name(n).ok().flatten().is_none()),
                ),
                (
                    "group",
                    group,
                    group.is_some_and(|n| Group::from_name(n).ok().flatten().is_none()),
                ),
            ];
            if let Some((field, Some(owner), _)) = missing.into_iter().find(|(_, _, gone)| *gone) {
                return Err(self.at(
                    &[&base[..], &[Step::Key(field)]].concat(),
                    None,
                    format!(
                        "signers.{name}.{field}: no {field} {owner:?} on this machine (the key files are given to it)"
                    ),
                ));
            }
            for (field, command) in signer.commands() {
                if command.is_some_and(|c| c.trim().is_empty()) {
                    return Err(self.at(
                        &[&base[..], &[Step::Key(field)]].concat(),
                        None,
                        format!("signers.{name}.{field}: is empty: remove it or give a command"),
                    ));
                }
            }
        }
        let mut seen: BTreeMap<PathBuf, &str> = BTreeMap::new();
        for (steps, label, path) in &owned {
            if !path.is_absolute() {
                return Err(self.at(
                    steps,
                    None,
                    format!(
                        "{label}: {} is relative: write an absolute path (rotor runs from cron, systemd or a shell, each in its own directory)",
                        path.display()
                    ),
                ));
            }
            if let Some(first) = seen.insert(normal(path), label) {
                return Err(self.at(
                    steps,
                    None,
                    format!(
                        "{label}: {} is also {first}: each needs its own (one would overwrite or remove the other's files)",
                        path.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A path compared with others: resolved if it exists (links followed), else as written
/// without `.` components or trailing slashes.
fn normal(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.components().collect())
}
