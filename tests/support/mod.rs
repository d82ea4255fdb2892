//! Test support for the rotor binary: a rotor config around the test kit's BIND, and checks made
//! the way a user would make them (the OpenDKIM tables, file modes, `rotor status --json`).

#![allow(dead_code)]

pub mod opendkim;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub use rotor_testkit::*;
use serde_json::Value;

/// A rotor set up against a [`Bind`], with compressed timings, in its own directory.
pub struct Rotor {
    pub dir: PathBuf,
    pub config: PathBuf,
    /// Environment every command gets (the provider's credentials and endpoint).
    pub env: Vec<(String, String)>,
}

/// Settings a test may change in the generated config.
pub struct Setup {
    pub min_wait: &'static str,
    pub grace: &'static str,
    pub retire: &'static str,
    /// `defaults.revoke_for` (none: the line is left out).
    pub revoke_for: Option<&'static str>,
    pub timeout: &'static str,
    /// The provider the config names `bind`, whichever API reaches the BIND zones (none: RFC
    /// 2136 to the primary, [`Bind::provider`]).
    pub provider: Option<ProviderUnderTest>,
    /// The OpenDKIM signer's `reload:` command (none: it appends a line to `reloads.log` in the
    /// signer's directory, [`reload_line`]).
    pub reload: Option<&'static str>,
    /// The operator's SigningTable and KeyTable before rotor's first run.
    pub signing_table: &'static str,
    pub key_table: &'static str,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            min_wait: "1s",
            grace: "2s",
            retire: "delete",
            revoke_for: Some("2s"),
            timeout: "5m",
            provider: None,
            reload: None,
            signing_table: "# operator's rows\n*@other.org sel._domainkey.other.org\n",
            key_table: "sel._domainkey.other.org other.org:sel:/etc/dkimkeys/other.pem\n",
        }
    }
}

impl Rotor {
    /// Writes a config for `bind` in `dir`: its provider `bind`, propagation checked on both
    /// servers and through the secondary as the resolver.
    pub fn new(dir: &Path, bind: &Bind, setup: Setup) -> Self {
        let provider = setup.provider.clone().unwrap_or_else(|| bind.provider());
        let (p1, p2) = (bind.primary.port, bind.secondary.port);
        Self::with_provider(dir, "bind", provider, (&[p1, p2], &[p2]), setup)
    }

    /// Writes a config in `dir` whose one provider, `name`, is `provider` (`setup.provider` is
    /// not read), checking propagation on the authoritative servers and the resolvers on
    /// 127.0.0.1 at `ports` (no resolver: the line is left out).
    pub fn with_provider(
        dir: &Path,
        name: &str,
        provider: ProviderUnderTest,
        (authoritative, resolvers): (&[u16], &[u16]),
        setup: Setup,
    ) -> Self {
        let signer = dir.join("opendkim");
        fs::create_dir_all(signer.join("keys")).unwrap();
        fs::set_permissions(signer.join("keys"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(signer.join("SigningTable"), setup.signing_table).unwrap();
        fs::write(signer.join("KeyTable"), setup.key_table).unwrap();
        let servers = |ports: &[u16]| {
            let quoted: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
            format!("[{}]", quoted.join(", "))
        };
        let resolvers = if resolvers.is_empty() {
            String::new()
        } else {
            format!("\n    resolvers: {}", servers(resolvers))
        };
        let revoke_for = setup
            .revoke_for
            .map(|revoke_for| format!("\n  revoke_for: {revoke_for}"))
            .unwrap_or_default();
        let reload = setup.reload.map_or_else(
            || format!("echo reloaded >> {}/reloads.log", signer.display()),
            str::to_string,
        );
        let config = dir.join("rotor.yaml");
        fs::write(
            &config,
            format!(
                "state_dir: {dir}/state
key_dir: {dir}/keys
defaults:
  keys: [rsa-2048]
  selector: \"t{{yyyy}}{{mm}}{{dd}}\"
  ttl: 1
  propagation:
    authoritative: {authoritative}{resolvers}
    min_wait: {min_wait}
    poll_every: 1s
    timeout: {timeout}
  grace: {grace}
  retire: {retire}{revoke_for}
providers:
{provider}
signers:
  mx1:
    type: opendkim
    key_table: {signer}/KeyTable
    signing_table: {signer}/SigningTable
    key_dir: {signer}/keys
    reload: \"{reload}\"
domains:
  - name: example.com
    provider: {name}
    signers: [mx1]
",
                dir = dir.display(),
                authoritative = servers(authoritative),
                provider = provider.entry(name),
                signer = signer.display(),
                min_wait = setup.min_wait,
                grace = setup.grace,
                retire = setup.retire,
                timeout = setup.timeout,
            ),
        )
        .unwrap();
        Self {
            dir: dir.to_owned(),
            config,
            env: provider.env,
        }
    }

    /// Runs `rotor ARGS` with this config and `env`.
    pub fn cmd_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rotor"));
        command
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("RUST_LOG");
        let own = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (name, value) in own.chain(env.iter().copied()) {
            command.env(name, value);
        }
        command.output().expect("rotor runs")
    }

    /// Runs `rotor ARGS`.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.cmd_env(args, &[])
    }

    /// Runs `rotor ARGS` and asserts it succeeded.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "rotor {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `rotor status --all --json`.
    pub fn status(&self) -> Vec<Value> {
        let out = self.cmd(&["status", "--all", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
            panic!(
                "status --json is JSON: {err}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// `(selector, phase)` of every key, oldest first.
    pub fn phases(&self) -> Vec<(String, String)> {
        self.status()
            .iter()
            .filter(|row| !row["selector"].is_null())
            .map(|row| {
                (
                    row["selector"].as_str().unwrap().to_string(),
                    row["phase"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The selector of the key in `phase`.
    pub fn selector_in(&self, phase: &str) -> Option<String> {
        self.phases()
            .into_iter()
            .find(|(_, p)| p == phase)
            .map(|(s, _)| s)
    }

    /// Runs `rotor run` (as a timer would) until `done` holds.
    pub fn run_until(&self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        wait_for(what, Duration::from_secs(60), || {
            let out = self.cmd(&["run"]);
            assert!(
                out.status.success(),
                "rotor run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            done(self)
        });
    }

    /// Runs `rotor run` (as a timer would) until one fails; that run's output.
    pub fn run_until_it_fails(&self, what: &str) -> Output {
        let mut failed = None;
        wait_for(what, Duration::from_secs(60), || {
            let out = self.cmd(&["run"]);
            let done = !out.status.success();
            failed = Some(out);
            done
        });
        failed.expect("a run")
    }

    /// A first key made active, then replaced by a second one: their selectors.
    pub fn two_keys(&self) -> (String, String) {
        self.run_until("first key active", |r| r.selector_in("active").is_some());
        let old = self.selector_in("active").unwrap();
        self.ok(&["rotate", "example.com"]);
        self.run_until("second key active", |r| {
            r.selector_in("active").is_some_and(|s| s != old)
        });
        let new = self.selector_in("active").unwrap();
        (old, new)
    }

    /// The OpenDKIM signer's directory.
    pub fn signer_dir(&self) -> PathBuf {
        self.dir.join("opendkim")
    }

    /// The SigningTable's row for example.com: the selector OpenDKIM signs with.
    pub fn signing_selector(&self) -> Option<String> {
        let table = fs::read_to_string(self.signer_dir().join("SigningTable")).unwrap();
        table
            .lines()
            .find(|line| line.starts_with("*@example.com "))
            .map(|line| {
                line.split_whitespace()
                    .nth(1)
                    .unwrap()
                    .split('.')
                    .next()
                    .unwrap()
                    .to_string()
            })
    }

    /// The selector and key file OpenDKIM signs `domain`'s mail with, from rotor's tables.
    pub fn signing_for(&self, domain: &str) -> Option<(String, std::path::PathBuf)> {
        let signing = fs::read_to_string(self.signer_dir().join("SigningTable")).unwrap();
        let name = signing
            .lines()
            .find(|line| line.starts_with(&format!("*@{domain} ")))?
            .split_whitespace()
            .nth(1)?
            .to_string();
        let keys = fs::read_to_string(self.signer_dir().join("KeyTable")).unwrap();
        let file = keys
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name.as_str()))?
            .split_whitespace()
            .nth(1)?
            .splitn(3, ':')
            .nth(2)?
            .to_string();
        let selector = name.split('.').next()?.to_string();
        Some((selector, file.into()))
    }

    /// The key file OpenDKIM reads for `selector`, from the KeyTable.
    pub fn signer_key_file(&self, selector: &str) -> Option<PathBuf> {
        let table = fs::read_to_string(self.signer_dir().join("KeyTable")).unwrap();
        let name = format!("{selector}._domainkey.example.com");
        table
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name.as_str()))
            .map(|line| {
                PathBuf::from(
                    line.split_whitespace()
                        .nth(1)
                        .unwrap()
                        .splitn(3, ':')
                        .nth(2)
                        .unwrap(),
                )
            })
    }
}

/// A scratch directory (see [`scratch_in`]) for this test binary.
pub fn scratch() -> tempfile::TempDir {
    scratch_in(env!("CARGO_TARGET_TMPDIR"))
}

/// The file's permission bits.
pub fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Independent check with dkimpy: signs a message for example.com with `key_file` under
/// `selector` and verifies it against the DNS record served on 127.0.0.1:`port`.
pub fn dkimpy_verifies(key_file: &Path, selector: &str, port: u16) -> Result<(), String> {
    dkimpy_verifies_for(DOMAIN, key_file, selector, port)
}

/// [`dkimpy_verifies`] for mail of `domain`.
pub fn dkimpy_verifies_for(
    domain: &str,
    key_file: &Path,
    selector: &str,
    port: u16,
) -> Result<(), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/dkim_verify.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(key_file)
        .args([selector, domain, &port.to_string()])
        .output()
        .expect("python3 runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Every DKIM-Signature of `message`, checked by dkimpy against the records served on
/// 127.0.0.1:`port` as a receiver would: `(selector, algorithm, verified)` in header order.
pub fn dns_verdicts(message: &str, port: u16) -> Vec<(String, String, bool)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/dkim_verify_message.py");
    let mut python = Command::new("python3");
    python.arg(script).arg(port.to_string());
    let out = run_with_input(python, message.as_bytes());
    assert!(
        out.status.success(),
        "dkim_verify_message.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.iter()
        .map(|v| {
            (
                v["s"].as_str().unwrap_or_default().to_string(),
                v["a"].as_str().unwrap_or_default().to_string(),
                v["ok"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// Replaces `from` by `to` in `rotor`'s config (which must contain it).
pub fn edit_config(rotor: &Rotor, from: &str, to: &str) {
    let config = fs::read_to_string(&rotor.config).unwrap();
    assert!(config.contains(from), "the config holds {from:?}");
    fs::write(&rotor.config, config.replacen(from, to, 1)).unwrap();
}

/// The generated OpenDKIM signer's `reload:` line.
pub fn reload_line(rotor: &Rotor) -> String {
    format!(
        "    reload: \"echo reloaded >> {}/reloads.log\"\n",
        rotor.signer_dir().display()
    )
}

/// The file's owner and group (not following a link).
pub fn owner(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

/// The id of a user (`getent passwd`) or group (`getent group`).
pub fn id_of(database: &str, name: &str) -> u32 {
    let out = Command::new("getent")
        .args([database, name])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split(':')
        .nth(2)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no {database} entry {name:?}"))
}

impl Rotor {
    /// Rewrites the generated config with `edit` (a test's own domains, server or timeouts).
    pub fn edit_config(&self, edit: impl FnOnce(String) -> String) {
        let config = fs::read_to_string(&self.config).unwrap();
        fs::write(&self.config, edit(config)).unwrap();
    }

    /// Replaces the config's one domain, example.com, by `domains` (names in zone example.com)
    /// with the same provider and signer.
    pub fn set_domains(&self, domains: &[&str]) {
        let rows: String = domains
            .iter()
            .map(|name| format!("  - name: {name}\n    provider: bind\n    signers: [mx1]\n"))
            .collect();
        self.edit_config(|config| {
            let (head, _) = config.split_once("domains:\n").expect("a domains section");
            format!("{head}domains:\n{rows}")
        });
    }
}
