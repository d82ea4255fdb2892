//! The YAML config: parsed into raw serde types (unknown keys refused, values checked where
//! they stand so errors carry line and column), then resolved into per-domain [`Policy`].

mod checks;
mod locate;
mod values;
mod window;

pub use values::{
    Authoritative, DomainName, Interval, RetireMode, Schedule, SelectorTemplate, ServerAddr,
    TimeZoneName,
};
pub use window::ActivationWindow;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rotor_providers::registry::ProviderConfig;
use rotor_signers::SignerSettings;
use serde::Deserialize;
use serde::de;

use crate::keys::KeyAlgorithm;
use crate::notify::NotifyConfig;
use locate::Step;
use values::{Declared, KeyList, ProviderRef, SignerRef};

/// A config error: the file, line, column and field, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}{location}: {message}")]
pub struct ConfigError {
    file: String,
    location: String,
    message: String,
}

impl ConfigError {
    fn new(file: &Path, line_col: Option<(usize, usize)>, message: impl Into<String>) -> Self {
        Self {
            file: file.display().to_string(),
            location: line_col
                .map(|(l, c)| format!(":{l}:{c}"))
                .unwrap_or_default(),
            message: message.into(),
        }
    }
}

/// The validated config.
#[derive(Debug)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// The store and lock.
    pub state_dir: PathBuf,
    /// Rotor's own copy of every private key (0700).
    pub key_dir: PathBuf,
    /// DNS providers by name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Mail signers by name.
    pub signers: BTreeMap<String, SignerSettings>,
    /// The domains, in file order.
    pub domains: Vec<DomainConfig>,
    /// Where notifications of phase changes and failures go.
    pub notify: NotifyConfig,
    /// The Prometheus text file written after each pass.
    pub metrics_file: Option<PathBuf>,
    /// When `rotor daemon` runs a pass.
    pub schedule: Schedule,
    /// Limits on passes: how long one may take, how long `status` accepts without one.
    pub passes: Passes,
}

/// The `passes:` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passes {
    /// A pass takes no new step after this long (default 1h); the next pass goes on.
    #[serde(default = "Passes::default_timeout")]
    pub timeout: Interval,
    /// `rotor status` warns when no pass ran for this long (default 2h).
    #[serde(default = "Passes::default_warn_after")]
    pub warn_after: Interval,
    /// `rotor status` is critical when no pass ran for this long (default 12h).
    #[serde(default = "Passes::default_critical_after")]
    pub critical_after: Interval,
}

impl Passes {
    fn default_timeout() -> Interval {
        interval(None, "1h")
    }
    fn default_warn_after() -> Interval {
        interval(None, "2h")
    }
    fn default_critical_after() -> Interval {
        interval(None, "12h")
    }
}

impl Default for Passes {
    fn default() -> Self {
        Self {
            timeout: Self::default_timeout(),
            warn_after: Self::default_warn_after(),
            critical_after: Self::default_critical_after(),
        }
    }
}

/// One domain, with its policy resolved from `defaults` and its own overrides.
#[derive(Clone, Debug)]
pub struct DomainConfig {
    /// The mail domain.
    pub name: DomainName,
    /// The provider that holds its zone.
    pub provider: String,
    /// The signers that sign its mail.
    pub signers: Vec<String>,
    /// The zone, when given (otherwise discovered).
    pub zone: Option<DomainName>,
    /// Timings and key types.
    pub policy: Policy,
}

/// How a domain's keys are rotated.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Key types, each rotated under its own selector.
    pub keys: Vec<KeyAlgorithm>,
    /// Selector template (when there is no ring).
    pub selector: SelectorTemplate,
    /// A fixed ring of selectors, reused in turn once their previous key is retired (for
    /// selectors delegated by one CNAME each, set up once); empty: new names from `selector`.
    pub selector_ring: Vec<SelectorTemplate>,
    /// Age at which an active key is replaced.
    pub rotate_every: Interval,
    /// TTL of published records.
    pub ttl: u32,
    /// How visibility is checked.
    pub propagation: Propagation,
    /// How long a replaced key stays published.
    pub grace: Interval,
    /// What happens after the grace window.
    pub retire: RetireMode,
    /// How long a revoked record stays published.
    pub revoke_for: Interval,
    /// When signers may be switched (any time if unset).
    pub activate_window: Option<ActivationWindow>,
    /// The time zone of `activate_window`.
    pub timezone: TimeZoneName,
}

/// How rotor decides a record is visible.
#[derive(Clone, Debug, PartialEq)]
pub struct Propagation {
    /// Recursive resolvers that must return the record.
    pub resolvers: Vec<ServerAddr>,
    /// Authoritative nameservers that must return it.
    pub authoritative: Authoritative,
    /// Never activate sooner than this after publishing.
    pub min_wait: Interval,
    /// Time between checks.
    pub poll_every: Interval,
    /// Give up (the key fails; the old one keeps signing) after this.
    pub timeout: Interval,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPropagation {
    resolvers: Option<Vec<ServerAddr>>,
    authoritative: Option<Authoritative>,
    min_wait: Option<Interval>,
    poll_every: Option<Interval>,
    timeout: Option<Interval>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    keys: Option<KeyList>,
    selector: Option<SelectorTemplate>,
    selectors: Option<Vec<SelectorTemplate>>,
    rotate_every: Option<Interval>,
    ttl: Option<u32>,
    propagation: Option<RawPropagation>,
    grace: Option<Interval>,
    retire: Option<RetireMode>,
    revoke_for: Option<Interval>,
    activate_window: Option<ActivationWindow>,
    timezone: Option<TimeZoneName>,
}

/// A domain entry: its own fields and any key of `defaults`. (Written out, because serde's
/// `flatten` cannot refuse unknown keys.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    name: DomainName,
    provider: ProviderRef,
    #[serde(default)]
    signers: Vec<SignerRef>,
    zone: Option<DomainName>,
    keys: Option<KeyList>,
    selector: Option<SelectorTemplate>,
    selectors: Option<Vec<SelectorTemplate>>,
    rotate_every: Option<Interval>,
    ttl: Option<u32>,
    propagation: Option<RawPropagation>,
    grace: Option<Interval>,
    retire: Option<RetireMode>,
    revoke_for: Option<Interval>,
    activate_window: Option<ActivationWindow>,
    timezone: Option<TimeZoneName>,
}

impl RawPolicy {
    /// What is wrong with this layer's selectors, if anything.
    fn selectors_error(&self) -> Option<&'static str> {
        match (&self.selector, &self.selectors) {
            (Some(_), Some(_)) => {
                Some("set `selector:` (a template) or `selectors:` (a ring), not both")
            }
            (_, Some(ring)) if ring.is_empty() => {
                Some("an empty ring: list at least two names, or remove it to use `selector:`")
            }
            _ => None,
        }
    }
}

impl RawDomain {
    fn overrides(self) -> RawPolicy {
        RawPolicy {
            keys: self.keys,
            selector: self.selector,
            selectors: self.selectors,
            rotate_every: self.rotate_every,
            ttl: self.ttl,
            propagation: self.propagation,
            grace: self.grace,
            retire: self.retire,
            revoke_for: self.revoke_for,
            activate_window: self.activate_window,
            timezone: self.timezone,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: PathBuf,
    key_dir: PathBuf,
    #[serde(default)]
    defaults: RawPolicy,
    providers: BTreeMap<String, ProviderConfig>,
    #[serde(default)]
    signers: BTreeMap<String, SignerSettings>,
    domains: Vec<RawDomain>,
    #[serde(default)]
    notify: NotifyConfig,
    metrics_file: Option<PathBuf>,
    schedule: Option<Schedule>,
    #[serde(default)]
    passes: Passes,
}

/// The names under `providers:` and `signers:`, read first so domains can be checked against them.
#[derive(Deserialize)]
struct Names {
    #[serde(default)]
    providers: BTreeMap<String, de::IgnoredAny>,
    #[serde(default)]
    signers: BTreeMap<String, de::IgnoredAny>,
}

/// The value from the last layer that sets it.
fn layered<T>(layers: &[&RawPolicy; 2], get: impl Fn(&RawPolicy) -> Option<T>) -> Option<T> {
    layers.iter().rev().find_map(|layer| get(layer))
}

fn interval(value: Option<Interval>, default: &str) -> Interval {
    value.unwrap_or_else(|| default.parse().expect("built-in defaults are valid"))
}

impl Policy {
    /// Built-in defaults, overridden by `defaults:`, overridden by the domain's own keys.
    fn resolve(layers: [&RawPolicy; 2]) -> Self {
        let layers = &layers;
        let propagation = |get: fn(&RawPropagation) -> Option<Interval>| {
            layered(layers, |l| l.propagation.as_ref().and_then(get))
        };
        Self {
            keys: layered(layers, |l| l.keys.clone())
                .map_or_else(|| vec![KeyAlgorithm::Rsa2048], |k| k.0),
            selector: layered(layers, |l| l.selector.clone())
                .unwrap_or_else(|| "rotor{yyyy}{mm}{dd}".parse().expect("valid")),
            // The innermost layer that names selectors decides: a template or a ring.
            selector_ring: layers
                .iter()
                .rev()
                .find(|l| l.selector.is_some() || l.selectors.is_some())
                .and_then(|l| l.selectors.clone())
                .unwrap_or_default(),
            rotate_every: interval(layered(layers, |l| l.rotate_every), "90d"),
            ttl: layered(layers, |l| l.ttl).unwrap_or(300),
            propagation: Propagation {
                resolvers: layered(layers, |l| l.propagation.as_ref()?.resolvers.clone())
                    .unwrap_or_default(),
                authoritative: layered(layers, |l| l.propagation.as_ref()?.authoritative.clone())
                    .unwrap_or(Authoritative::Auto),
                min_wait: interval(propagation(|p| p.min_wait), "4h"),
                poll_every: interval(propagation(|p| p.poll_every), "5m"),
                timeout: interval(propagation(|p| p.timeout), "48h"),
            },
            grace: interval(layered(layers, |l| l.grace), "7d"),
            retire: layered(layers, |l| l.retire).unwrap_or(RetireMode::Delete),
            revoke_for: interval(layered(layers, |l| l.revoke_for), "7d"),
            activate_window: layered(layers, |l| l.activate_window.clone()),
            timezone: layered(layers, |l| l.timezone).unwrap_or(TimeZoneName(chrono_tz::Tz::UTC)),
        }
    }
}

/// Finds the first line (and its column) that `matches` (given the line without indentation or
/// list dash), for errors found after parsing.
fn find_line(text: &str, matches: impl Fn(&str) -> bool) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(index, line)| {
        let trimmed = line.trim_start().trim_start_matches('-').trim_start();
        matches(trimmed).then(|| (index + 1, line.len() - trimmed.len() + 1))
    })
}

/// The line of the domain entry `name: <domain>`.
fn domain_line(text: &str, domain: &str) -> Option<(usize, usize)> {
    find_line(text, |line| {
        line.strip_prefix("name:").is_some_and(|value| {
            let value = value.trim().trim_matches(['"', '\'']).trim_end_matches('.');
            value.eq_ignore_ascii_case(domain)
        })
    })
}

/// Errors inside a provider or signer entry (a `type`-tagged map, which serde reads as a whole)
/// come located at the entry's name: point them at the field they concern instead.
fn refine(
    text: &str,
    (line, column): (usize, usize),
    message: String,
) -> (Option<(usize, usize)>, String) {
    let unchanged = (Some((line, column)), message.clone());
    let Some((section, rest)) = ["providers", "signers"]
        .iter()
        .find_map(|section| Some((*section, message.strip_prefix(section)?.strip_prefix(": ")?)))
    else {
        return unchanged;
    };
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let Some(entry) = lines.get(line.wrapping_sub(1)) else {
        return unchanged;
    };
    let name = entry
        .trim()
        .split(':')
        .next()
        .unwrap_or_default()
        .trim_matches(['"', '\'']);
    let unknown = rest
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next());
    for (offset, candidate) in lines[line..].iter().enumerate() {
        if candidate.trim().is_empty() {
            continue;
        }
        if indent(candidate) <= indent(entry) {
            break;
        }
        let Some((key, value)) = candidate.trim().split_once(':') else {
            continue;
        };
        let value = value.trim().trim_matches(['"', '\'']);
        let concerned = match unknown {
            Some(field) => key == field,
            None => value.len() >= 3 && rest.contains(value),
        };
        if concerned {
            let at = (line + offset + 1, indent(candidate) + 1);
            return (Some(at), format!("{section}.{name}.{key}: {rest}"));
        }
    }
    (Some((line, column)), format!("{section}.{name}: {rest}"))
}

impl Config {
    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            ConfigError::new(path, None, format!("cannot read the config: {err}"))
        })?;
        Self::parse(&text, path)
    }

    /// Validates config `text`, read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let yaml_error = |err: serde_yaml::Error| {
            let location = err.location().map(|l| (l.line(), l.column()));
            let mut message = err.to_string();
            // serde_yaml appends " at line L column C"; the location is already in front.
            if let Some(at) = message.rfind(" at line ") {
                message.truncate(at);
            }
            let (location, message) = match location {
                Some(at) => refine(text, at, message),
                None => (None, message),
            };
            ConfigError::new(path, location, message)
        };
        let names: Names = serde_yaml::from_str(text).map_err(yaml_error)?;
        let declared = Declared {
            providers: names.providers.into_keys().collect(),
            signers: names.signers.into_keys().collect(),
        };
        let raw: RawConfig = declared
            .scope(|| serde_yaml::from_str(text))
            .map_err(yaml_error)?;

        let checker = checks::Checker { text, path };
        for (name, provider) in &raw.providers {
            checker.provider(name, provider)?;
        }
        for (name, signer) in &raw.signers {
            if let Err(message) = signer.validate() {
                let at = find_line(text, |line| line.starts_with(&format!("{name}:")));
                return Err(ConfigError::new(
                    path,
                    at,
                    format!("signers.{name}: {message}"),
                ));
            }
        }
        checker.paths(
            &raw.state_dir,
            &raw.key_dir,
            raw.metrics_file.as_deref(),
            &raw.signers,
        )?;
        checker.notify(&raw.notify)?;
        checker.passes(&raw.passes)?;
        if let Some(message) = raw.defaults.selectors_error() {
            let at = locate::locate(text, &[Step::Key("defaults"), Step::Key("selectors")]);
            return Err(ConfigError::new(
                path,
                at,
                format!("defaults.selectors: {message}"),
            ));
        }
        let mut weak = Vec::new();
        let mut seen = BTreeSet::new();
        let mut domains = Vec::with_capacity(raw.domains.len());
        for (index, domain) in raw.domains.into_iter().enumerate() {
            let name = domain.name.clone();
            let error = |field: &str, message: String| {
                ConfigError::new(
                    path,
                    domain_line(text, name.as_str()),
                    format!("domains[{index}].{field}: {message}"),
                )
            };
            if !seen.insert(name.clone()) {
                return Err(error("name", format!("{name} is declared twice")));
            }
            if domain.signers.is_empty() {
                return Err(error("signers", "list at least one signer".into()));
            }
            for (position, signer) in domain.signers.iter().enumerate() {
                if domain.signers[..position].contains(signer) {
                    let at = locate::locate(
                        text,
                        &[
                            Step::Key("domains"),
                            Step::Index(index),
                            Step::Key("signers"),
                            Step::Index(position),
                        ],
                    );
                    return Err(ConfigError::new(
                        path,
                        at.or(domain_line(text, name.as_str())),
                        format!(
                            "domains[{index}].signers[{position}]: signer {:?} is listed twice",
                            signer.0
                        ),
                    ));
                }
            }
            if let Some(zone) = domain
                .zone
                .as_ref()
                .filter(|zone| !zone.contains(name.as_str()))
            {
                return Err(error("zone", format!("{name} is not inside zone {zone}")));
            }
            let provider = domain.provider.0.clone();
            let signers: Vec<String> = domain.signers.iter().map(|s| s.0.clone()).collect();
            let zone = domain.zone.clone();
            let own = domain.overrides();
            if let Some(message) = own.selectors_error() {
                let at = locate::locate(
                    text,
                    &[
                        Step::Key("domains"),
                        Step::Index(index),
                        Step::Key("selectors"),
                    ],
                );
                return Err(ConfigError::new(
                    path,
                    at.or(domain_line(text, name.as_str())),
                    format!("domains[{index}].selectors: {message}"),
                ));
            }
            let policy = Policy::resolve([&raw.defaults, &own]);
            checker.policy(index, name.as_str(), &raw.providers[&provider], &policy)?;
            let single = signers
                .iter()
                .find_map(|s| raw.signers[s].dual_signing().err().map(|why| (s, why)));
            if let Some((signer, why)) =
                single.filter(|_| policy.keys.contains(&KeyAlgorithm::Ed25519))
            {
                return Err(error(
                    "keys",
                    format!(
                        "ed25519 needs a signer that signs twice (RSA and Ed25519), and signer {signer:?} cannot: {why}"
                    ),
                ));
            }
            if !policy.selector_ring.is_empty() {
                let names: BTreeSet<String> = policy
                    .keys
                    .iter()
                    .flat_map(|&alg| policy.selector_ring.iter().map(move |t| t.render("", alg)))
                    .collect();
                if names.len() < 2 * policy.keys.len() {
                    return Err(error(
                        "selectors",
                        format!(
                            "a ring needs two selectors per key type (one signs while the other retires), {} for {} key type(s); add names or {{alg}}",
                            2 * policy.keys.len(),
                            policy.keys.len()
                        ),
                    ));
                }
            }
            if policy.keys.contains(&KeyAlgorithm::Rsa1024) {
                weak.push(name.to_string());
            }
            domains.push(DomainConfig {
                name,
                provider,
                signers,
                zone,
                policy,
            });
        }
        if !weak.is_empty() {
            let more = if weak.len() > 3 { ", …" } else { "" };
            tracing::warn!(
                "rsa-1024 is weak (RFC 8301 says SHOULD use 2048 bits or more); {} domain(s) use it: {}{more}",
                weak.len(),
                weak[..weak.len().min(3)].join(", ")
            );
        }
        Ok(Self {
            path: path.to_owned(),
            state_dir: raw.state_dir,
            key_dir: raw.key_dir,
            providers: raw.providers,
            signers: raw.signers,
            domains,
            notify: raw.notify,
            metrics_file: raw.metrics_file,
            schedule: raw
                .schedule
                .unwrap_or_else(|| Schedule("0 */15 * * * *".into())),
            passes: raw.passes,
        })
    }

    /// How long `rotor status` accepts without a pass before it warns, then goes critical
    /// (seconds).
    pub fn pass_limits(&self) -> (u64, u64) {
        (
            self.passes.warn_after.secs(),
            self.passes.critical_after.secs(),
        )
    }

    /// The domain named `name`.
    pub fn domain(&self, name: &str) -> Option<&DomainConfig> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.domains
            .iter()
            .find(|domain| domain.name.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";

    /// The shipped example, with its TSIG key file pointed at a real file.
    fn example() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("tsig.key");
        std::fs::write(
            &key,
            format!("key \"rotor-key\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n"),
        )
        .unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        // The example's users and groups (_rspamd, Debian-exim …) need not exist here.
        let text = include_str!("../../examples/rotor.yaml")
            .replace("/etc/rotor/tsig.key", &key.display().to_string())
            .lines()
            .map(|line| {
                let trimmed = line.trim_start();
                let indent = &line[..line.len() - trimmed.len()];
                match trimmed.split_once(": ") {
                    Some((key @ ("user" | "group"), _)) => format!("{indent}{key}: root"),
                    _ => line.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config = Config::parse(&text, Path::new("examples/rotor.yaml")).unwrap();
        (dir, config)
    }

    #[test]
    fn the_example_config_is_valid_and_overrides_apply() {
        let (_dir, config) = example();
        assert_eq!(config.domains.len(), 2);
        let com = &config.domains[0].policy;
        let org = &config.domains[1].policy;
        assert_eq!(com.grace.secs(), 7 * 86400);
        assert_eq!(org.grace.secs(), 10 * 86400);
        assert_eq!(org.rotate_every, com.rotate_every);
        assert_eq!(com.propagation.resolvers[1].0.port(), 5353);
        assert_eq!(com.propagation.authoritative, Authoritative::Auto);
        assert_eq!(com.keys, [KeyAlgorithm::Rsa2048]);
    }

    #[test]
    fn built_in_defaults_fill_what_is_not_said() {
        let text = "state_dir: /s\nkey_dir: /k\nproviders:\n  p: {type: rfc2136, server: 127.0.0.1}\nsigners:\n  s: {type: opendkim, key_table: /a, signing_table: /b, key_dir: /c, reload: 'true'}\ndomains:\n  - name: Example.COM\n    provider: p\n    signers: [s]\n    propagation: {min_wait: 1h}\n";
        let config = Config::parse(text, Path::new("t.yaml")).unwrap();
        let domain = &config.domains[0];
        assert_eq!(domain.name.as_str(), "example.com");
        let p = &domain.policy;
        assert_eq!(
            (p.rotate_every.secs(), p.ttl, p.grace.secs()),
            (90 * 86400, 300, 7 * 86400)
        );
        assert_eq!(
            (p.propagation.min_wait.secs(), p.propagation.timeout.secs()),
            (3600, 48 * 3600)
        );
        assert_eq!(p.retire, RetireMode::Delete);
        assert!(config.domain("EXAMPLE.com.").is_some());
    }

    #[test]
    fn debug_of_a_config_never_shows_a_secret() {
        let (_dir, config) = example();
        let shown = format!("{config:?}");
        assert!(shown.contains("rotor-key"), "the key's name is shown");
        assert!(
            !shown.contains(SECRET) && !shown.contains("secretsecret"),
            "{shown}"
        );
    }

    #[test]
    fn provider_errors_point_at_the_entry_or_the_field() {
        let base = "state_dir: /s\nkey_dir: /k\nproviders:\n  cf:\n    type: cloudflare\n";
        for (extra, expected) in [
            (
                "    api_token_env: CF\n    api_token_file: /t\n",
                "t.yaml:4:3: providers.cf: set `api_token_env:` or `api_token_file:`, not both",
            ),
            (
                "    api_url: http://api.example.com\n",
                "t.yaml:6:14: providers.cf.api_url: plain http:// would send it unencrypted",
            ),
        ] {
            let text = format!("{base}{extra}signers: {{}}\ndomains: []\n");
            let err = Config::parse(&text, Path::new("t.yaml"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(expected), "{err}");
        }
    }

    #[test]
    fn bad_schedules_windows_and_time_zones_are_named() {
        let base = "state_dir: /s\nkey_dir: /k\nproviders:\n  p: {type: rfc2136, server: 127.0.0.1}\nsigners: {}\ndomains: []\n";
        for (extra, expected) in [
            (
                "schedule: \"every day\"\n",
                "t.yaml:7:11: schedule: invalid schedule \"every day\"",
            ),
            (
                "defaults:\n  activate_window: \"Mon-Fry 04:00-06:00\"\n",
                "t.yaml:8:20: defaults.activate_window: unknown day \"Fry\"",
            ),
            (
                "defaults:\n  timezone: Mars/Olympus\n",
                "t.yaml:8:13: defaults.timezone: unknown time zone \"Mars/Olympus\"",
            ),
            (
                "notify:\n  webhook: https://x\n  email: a@b\n",
                "t.yaml:9:3: notify: unknown field `email`",
            ),
        ] {
            let err = Config::parse(&format!("{base}{extra}"), Path::new("t.yaml"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(expected), "{err}");
        }
    }

    #[test]
    fn a_selector_ring_needs_two_names_per_key_type() {
        let base = "state_dir: /s\nkey_dir: /k\nproviders:\n  p: {type: rfc2136, server: 127.0.0.1}\nsigners:\n  s: {type: exim, table: /t, key_dir: /c}\ndomains:\n  - name: example.com\n    provider: p\n    signers: [s]\n";
        let two = format!("{base}    selectors: [s1, s2]\n");
        let config = Config::parse(&two, Path::new("t.yaml")).unwrap();
        assert_eq!(config.domains[0].policy.selector_ring.len(), 2);
        let dual = format!("{two}    keys: [rsa-2048, ed25519]\n");
        let err = Config::parse(&dual, Path::new("t.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "t.yaml:8:5: domains[0].selectors: a ring needs two selectors per key type"
            ),
            "{err}"
        );
        let with_alg = format!(
            "{base}    selectors: [\"s1-{{alg}}\", \"s2-{{alg}}\"]\n    keys: [rsa-2048, ed25519]\n"
        );
        Config::parse(&with_alg, Path::new("t.yaml")).unwrap();
    }

    #[test]
    fn a_domain_outside_its_zone_or_twice_is_refused() {
        let base = "state_dir: /s\nkey_dir: /k\nproviders:\n  p: {type: rfc2136, server: 127.0.0.1}\nsigners:\n  s: {type: opendkim, key_table: /a, signing_table: /b, key_dir: /c, reload: 'true'}\ndomains:\n  - name: example.com\n    provider: p\n    signers: [s]\n";
        let zone = format!("{base}    zone: example.org\n");
        let err = Config::parse(&zone, Path::new("t.yaml"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "t.yaml:8:5: domains[0].zone: example.com is not inside zone example.org"
        );
        let twice = format!("{base}  - {{name: example.com, provider: p, signers: [s]}}\n");
        let err = Config::parse(&twice, Path::new("t.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("domains[1].name: example.com is declared twice"),
            "{err}"
        );
    }
}
