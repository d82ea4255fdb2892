//! The YAML config: parsed into raw serde types (unknown keys refused, values checked where
//! they stand so errors carry line and column), then resolved into per-domain [`Policy`].

mod checks;
mod domains_file;
mod lines;
mod locate;
mod monitor;
mod policy;
mod store;
mod values;
mod window;

#[cfg(test)]
pub use monitor::{Monitor, Percent};
pub use policy::{Policy, Propagation};
pub use values::{
    Authoritative, DomainName, Interval, RetireMode, Schedule, SelectorTemplate, ServerAddr,
    TimeZoneName,
};
pub use window::ActivationWindow;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use domains_file::Origin;
use std::path::{Path, PathBuf};

use rotor_providers::registry::ProviderConfig;
use rotor_reports::SourceSettings;
use rotor_signers::SignerSettings;
use serde::Deserialize;

use crate::keys::KeyAlgorithm;
use crate::notify::NotifyConfig;
use lines::{domain_line, find_line, refine};
use locate::Step;
use policy::{RawPolicy, RawPropagation, interval};
use values::{Declared, KeyList, ProviderRef, SignerRef};

pub use store::StoreSettings;

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
    /// The lock, and the store unless `store` names another.
    pub state_dir: PathBuf,
    /// A shared PostgreSQL store (`store:`); `None`: sled in `state_dir/store`.
    pub store: Option<StoreSettings>,
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
    /// Where DMARC aggregate reports are read, each pass.
    pub reports: Vec<SourceSettings>,
    /// When `rotor daemon` runs a pass.
    pub schedule: Schedule,
    /// Limits on passes: how long one may take, how long `status` accepts without one.
    pub passes: Passes,
    /// What the plans of a pass depend on, as a digest of the config's text and rotor's
    /// version: the store's index of due domains holds only for the same fingerprint.
    pub fingerprint: String,
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
    /// Each domain is planned at least this often (default 1d), even when the store's index
    /// says nothing of it is due: a net under that index.
    #[serde(default = "Passes::default_recheck_every")]
    pub recheck_every: Interval,
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
    fn default_recheck_every() -> Interval {
        interval(None, "1d")
    }
}

impl Default for Passes {
    fn default() -> Self {
        Self {
            timeout: Self::default_timeout(),
            warn_after: Self::default_warn_after(),
            critical_after: Self::default_critical_after(),
            recheck_every: Self::default_recheck_every(),
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
    /// Timings and key types (shared by the domains that override no default).
    pub policy: Arc<Policy>,
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
    probe_every: Option<Interval>,
    monitor: Option<monitor::RawMonitor>,
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
            probe_every: self.probe_every,
            monitor: self.monitor,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: PathBuf,
    store: Option<StoreSettings>,
    key_dir: PathBuf,
    #[serde(default)]
    defaults: RawPolicy,
    providers: BTreeMap<String, ProviderConfig>,
    #[serde(default)]
    signers: BTreeMap<String, SignerSettings>,
    #[serde(default)]
    domains: Vec<RawDomain>,
    /// More domains, one JSON object a line (`domains_file.rs`).
    domains_file: Option<PathBuf>,
    #[serde(default)]
    notify: NotifyConfig,
    metrics_file: Option<PathBuf>,
    schedule: Option<Schedule>,
    #[serde(default)]
    passes: Passes,
    #[serde(default)]
    reports: Vec<SourceSettings>,
}

/// The digest of config `text` for this rotor: any edit, or another rotor, plans every domain
/// again (see [`Config::fingerprint`]). Not cryptographic: it tells apart, it proves nothing.
fn fingerprint(text: &str, list: Option<&str>) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    text.hash(&mut hasher);
    list.hash(&mut hasher);
    format!("{:016x}-{}", hasher.finish(), text.len())
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
        // One parse (a config of 100,000 domains takes most of an idle pass to parse); only a
        // reference to an undeclared provider or signer parses again, with the declared names
        // in scope, for the error to point at it.
        // A syntax error further down says more than a value refused before it: look for one.
        let raw: RawConfig =
            serde_yaml::from_str(text).map_err(|err| {
                match serde_yaml::from_str::<serde::de::IgnoredAny>(text) {
                    Err(syntax) => yaml_error(syntax),
                    Ok(_) => yaml_error(err),
                }
            })?;
        let declared = Declared {
            providers: raw.providers.keys().cloned().collect(),
            signers: raw.signers.keys().cloned().collect(),
        };
        let undeclared = raw.domains.iter().any(|domain| {
            let signers = domain.signers.iter().map(|signer| signer.0.as_str());
            declared.undeclared(&domain.provider.0, signers).is_some()
        });
        if undeclared {
            let located = declared.scope(|| serde_yaml::from_str::<RawConfig>(text));
            let err = located.err().map(yaml_error).unwrap_or_else(|| {
                ConfigError::new(
                    path,
                    None,
                    "a domain names an undeclared provider or signer",
                )
            });
            return Err(err);
        }

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
        if let Some((field, message)) = raw.store.as_ref().and_then(StoreSettings::problem) {
            let at = locate::locate(text, &[Step::Key("store"), Step::Key(field)]);
            return Err(ConfigError::new(
                path,
                at,
                format!("store.{field}: {message}"),
            ));
        }
        if let Some(message) = raw.defaults.selectors_error() {
            let at = locate::locate(text, &[Step::Key("defaults"), Step::Key("selectors")]);
            return Err(ConfigError::new(
                path,
                at,
                format!("defaults.selectors: {message}"),
            ));
        }
        let list = match &raw.domains_file {
            Some(file) => {
                let file = domains_file::resolve(path, file);
                let list = std::fs::read_to_string(&file).map_err(|err| {
                    let at = locate::locate(text, &[Step::Key("domains_file")]);
                    let message = format!("domains_file: cannot read {}: {err}", file.display());
                    ConfigError::new(path, at, message)
                })?;
                Some((file, list))
            }
            None => None,
        };
        let listed = list
            .iter()
            .flat_map(|(file, list)| domains_file::parse(file, list, &declared));
        let entries = (raw.domains.into_iter().enumerate())
            .map(|(index, domain)| Ok((Origin::Config(index), domain)))
            .chain(listed);
        let mut weak = Vec::new();
        let mut seen = HashSet::new();
        // The resolved policy of a domain with no overrides, per provider (checked once).
        let mut plain: HashMap<String, Arc<Policy>> = HashMap::new();
        let mut domains = Vec::new();
        for entry in entries {
            let (origin, domain) = entry?;
            let name = domain.name.clone();
            let error_at = |steps: &[Step], field: &str, message: String| match &origin {
                Origin::Config(index) => {
                    let mut full = vec![Step::Key("domains"), Step::Index(*index)];
                    full.extend_from_slice(steps);
                    let at = (!steps.is_empty())
                        .then(|| locate::locate(text, &full))
                        .flatten();
                    ConfigError::new(
                        path,
                        at.or(domain_line(text, name.as_str())),
                        format!("{}: {message}", origin.field(field)),
                    )
                }
                Origin::File(file, line) => {
                    ConfigError::new(file, Some((*line, 1)), format!("{field}: {message}"))
                }
            };
            let error = |field: &str, message: String| error_at(&[], field, message);
            if !seen.insert(name.clone()) {
                return Err(error("name", format!("{name} is declared twice")));
            }
            if domain.signers.is_empty() {
                return Err(error("signers", "list at least one signer".into()));
            }
            for (position, signer) in domain.signers.iter().enumerate() {
                if domain.signers[..position].contains(signer) {
                    return Err(error_at(
                        &[Step::Key("signers"), Step::Index(position)],
                        &format!("signers[{position}]"),
                        format!("signer {:?} is listed twice", signer.0),
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
                let steps = [Step::Key("selectors")];
                return Err(error_at(&steps, "selectors", message.to_string()));
            }
            let policy = match (own.is_empty(), plain.get(&provider)) {
                (true, Some(policy)) => Arc::clone(policy),
                (empty, _) => {
                    let policy = Arc::new(Policy::resolve([&raw.defaults, &own]));
                    checker.policy(&origin, name.as_str(), &raw.providers[&provider], &policy)?;
                    if empty {
                        plain.insert(provider.clone(), policy.clone());
                    }
                    policy
                }
            };
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
            store: raw.store,
            key_dir: raw.key_dir,
            providers: raw.providers,
            signers: raw.signers,
            domains,
            notify: raw.notify,
            metrics_file: raw.metrics_file,
            reports: raw.reports,
            schedule: raw
                .schedule
                .unwrap_or_else(|| Schedule("0 */15 * * * *".into())),
            passes: raw.passes,
            fingerprint: fingerprint(text, list.as_ref().map(|(_, list)| list.as_str())),
        })
    }

    /// How long a shared store's lease of a domain lasts unless renewed.
    pub fn lease_for(&self) -> std::time::Duration {
        self.store
            .as_ref()
            .map_or(std::time::Duration::from_secs(300), |store| {
                store.lease_for.0
            })
    }

    /// Where the store is (a shared store's password read now).
    pub fn store_location(&self) -> Result<rotor_state::Location, String> {
        match &self.store {
            Some(shared) => shared.location(),
            None => Ok(rotor_state::Location::Sled(self.state_dir.join("store"))),
        }
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
mod tests;
