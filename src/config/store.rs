//! `store:`, where the store is: absent, sled in `state_dir/store` (one host); with `url:`, a
//! PostgreSQL database shared by the rotors of several hosts.
//!
//! ```yaml
//! store:
//!   url: postgres://rotor@db.example.net:5432/rotor
//!   password_file: /etc/rotor/store-password   # or password_env: ROTOR_STORE_PASSWORD
//!   instance: mx1                               # default: this host's name
//!   lease_for: 5m                               # a stopped instance's domains move on after it
//!   tls: true                                   # default: unless the database is on this host
//!   ca_file: /etc/rotor/db-ca.pem               # a private CA's certificate
//! ```

use std::path::{Path, PathBuf};

use rotor_state::{Location, PostgresSettings};
use serde::Deserialize;

use super::Interval;
use zeroize::Zeroizing;

/// The `store:` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// The database: `postgres://user@host:port/database`, without a password.
    pub url: String,
    /// A file holding the password (mode 0600, owned by rotor's user or root).
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    pub password_env: Option<String>,
    /// This instance's name, unique among the rotors sharing the store (default: the host's
    /// name).
    pub instance: Option<String>,
    /// TLS to the database: `true` always, `false` never; unset, unless the database is on
    /// this machine (loopback or a socket). The server's certificate and name are checked.
    pub tls: Option<bool>,
    /// More trusted certificates (PEM), for a database certificate from a private CA.
    pub ca_file: Option<PathBuf>,
    /// How long a domain's lease lasts unless renewed (default 5m): another instance takes
    /// over the domains of one that stopped after this long.
    #[serde(default = "StoreSettings::default_lease_for")]
    pub lease_for: Interval,
}

impl StoreSettings {
    fn default_lease_for() -> Interval {
        Interval(std::time::Duration::from_secs(300))
    }

    /// What is wrong with the settings, as `(field, message)`: checked when the config is
    /// read, before any connection.
    pub(super) fn problem(&self) -> Option<(&'static str, String)> {
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return Some((
                "url",
                "not a connection URL: write postgres://user@host:port/database".into(),
            ));
        };
        if scheme != "postgres" && scheme != "postgresql" {
            return Some((
                "url",
                format!(
                    "{scheme}:// is no store rotor knows: write postgres://user@host:port/database"
                ),
            ));
        }
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority
            .rsplit_once('@')
            .is_some_and(|(user, _)| user.contains(':'))
            || rotor_state::has_password_parameter(&self.url)
        {
            return Some((
                "url",
                "the URL holds a password: put it in password_file: or password_env: instead (the config is no place for secrets)".into(),
            ));
        }
        if self.lease_for.secs() < 3 {
            return Some((
                "lease_for",
                "at least 3s (a lease is renewed three times a lease)".into(),
            ));
        }
        if self.tls == Some(false) && self.ca_file.is_some() {
            return Some((
                "ca_file",
                "set with tls: false, it would never be used".into(),
            ));
        }
        if self.ca_file.as_deref().is_some_and(Path::is_relative) {
            return Some(("ca_file", "write an absolute path".into()));
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            return Some((
                "password_file",
                "set password_file: or password_env:, not both".into(),
            ));
        }
        if let Some(file) = &self.password_file
            && let Err(why) = rotor_common::secret::check(file, "the store's password file")
        {
            return Some(("password_file", why));
        }
        if self
            .password_env
            .as_deref()
            .is_some_and(|name| name.trim().is_empty())
        {
            return Some(("password_env", "name an environment variable".into()));
        }
        if let Some(instance) = &self.instance {
            let fine = !instance.is_empty()
                && instance.len() <= 64
                && instance
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !fine {
                return Some((
                    "instance",
                    format!("{instance:?}: up to 64 letters, digits, '-', '_' or '.'"),
                ));
            }
        }
        None
    }

    /// The store's location, with the password read now (from its file or the environment).
    pub fn location(&self) -> Result<Location, String> {
        let password = match (&self.password_file, &self.password_env) {
            (Some(file), _) => Some(read_password(file)?),
            (None, Some(name)) => match std::env::var(name) {
                Ok(value) if !value.is_empty() => Some(Zeroizing::new(value)),
                _ => {
                    return Err(format!(
                        "store: the environment variable {name} (password_env) is not set"
                    ));
                }
            },
            (None, None) => None,
        };
        let instance = match &self.instance {
            Some(instance) => instance.clone(),
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|name| name.into_string().ok())
                // A name many hosts have would make them take each other's leases.
                .filter(|name| !name.is_empty() && !name.starts_with("localhost"))
                .ok_or(
                    "store: this host has no name of its own (none, or localhost): set instance:",
                )?,
        };
        Ok(Location::Postgres(PostgresSettings {
            url: self.url.clone(),
            password: password
                .map(|p| Zeroizing::new(p.trim_end_matches(['\n', '\r']).to_string())),
            instance,
            tls: self.tls,
            ca_file: self.ca_file.clone(),
        }))
    }
}

fn read_password(file: &Path) -> Result<Zeroizing<String>, String> {
    rotor_common::secret::check(file, "the store's password file")
        .map_err(|why| format!("store: {why}"))?;
    std::fs::read_to_string(file)
        .map(Zeroizing::new)
        .map_err(|err| format!("store: cannot read {}: {err}", file.display()))
}
