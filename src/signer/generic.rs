//! `type: files`: any signer rotor has no adapter for. Each configured file is rendered from a
//! template (Jinja syntax, by minijinja) for the domain, written atomically, then a reload
//! command and an optional verify command run; if either fails, every file is put back.
//!
//! Template variables: `domain`; `keys`, the keys to sign with, each with `selector`,
//! `algorithm` (`rsa-2048`, `ed25519`), `k` (`rsa` or `ed25519`) and `key_path`; `kept`, the
//! replaced keys in their grace window, alike; and `selector`, `algorithm`, `k` and `key_path`
//! of the first key to sign with, for signers that take one. Block tags alone on their line leave
//! no blank line (`trim_blocks` and `lstrip_blocks`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use minijinja::Environment;
use serde::{Deserialize, Serialize};

use super::files::{FileSet, KeyFiles, KeyFormat, Ownership};
use super::{Signer, SignerKey, SignerPlan, command};
use crate::config::{FileMode, Interval};
use crate::fsutil;

/// One file the signer reads, rendered per domain.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    /// Where it is written; a template too, which must give each domain its own file (e.g.
    /// with `{{ domain }}` in it).
    pub path: String,
    /// The file's contents, as a template.
    pub template: String,
    /// Mode of the written file (default 0644; it holds paths, not keys).
    pub mode: Option<String>,
}

/// The `type: files` signer's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// Where the signer reads keys; files are named `<domain>.<selector>.<extension>`.
    pub key_dir: PathBuf,
    /// How keys are written: `pem` (default) or `ed25519_seed` (base64 seed for Ed25519).
    #[serde(default)]
    pub key_format: KeyFormatName,
    /// The files rendered for each domain.
    pub files: Vec<TemplateFile>,
    /// A command that makes the signer read them (none: it notices by itself).
    pub reload: Option<String>,
    /// A command run after the reload; if it fails, the previous files are restored (and the
    /// reload run again).
    pub verify: Option<String>,
    /// How long `reload` and `verify` may each run before they are killed (default 60s).
    pub timeout: Option<Interval>,
    /// Owner of the key files (default: the owner of `key_dir`).
    pub user: Option<String>,
    /// Group of the key files (default: the group of `key_dir`).
    pub group: Option<String>,
    /// Mode of the key files (default 0600).
    pub mode: Option<FileMode>,
    /// Whether the signer can sign with an RSA and an Ed25519 key at once.
    #[serde(default)]
    pub dual_signing: bool,
}

/// The names `key_format:` takes.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyFormatName {
    /// PKCS#8 PEM.
    #[default]
    Pem,
    /// PEM for RSA, base64 of the 32-byte seed for Ed25519.
    Ed25519Seed,
}

impl From<KeyFormatName> for KeyFormat {
    fn from(name: KeyFormatName) -> Self {
        match name {
            KeyFormatName::Pem => KeyFormat::Pem,
            KeyFormatName::Ed25519Seed => KeyFormat::Ed25519Seed,
        }
    }
}

impl FilesConfig {
    /// Checks the templates (syntax, and a per-domain path) and modes.
    pub fn validate(&self) -> Result<(), String> {
        if self.files.is_empty() {
            return Err("list at least one file under `files:`".into());
        }
        let env = environment();
        for (index, file) in self.files.iter().enumerate() {
            env.template_from_str(&file.path)
                .and_then(|_| env.template_from_str(&file.template))
                .map_err(|err| format!("files[{index}]: {err}"))?;
            let [one, other] = sample_paths(&env, &file.path)
                .map_err(|err| format!("files[{index}].path: {err}"))?;
            if one == other {
                return Err(format!(
                    "files[{index}].path gives {one} for both {} and {}: two domains would overwrite each other's file; put {{{{ domain }}}} in it",
                    SAMPLE_DOMAINS[0], SAMPLE_DOMAINS[1]
                ));
            }
            file_mode(file).map_err(|err| format!("files[{index}].mode: {err}"))?;
        }
        Ok(())
    }
}

/// Two domains a path template is rendered for, to see it gives each its own file.
const SAMPLE_DOMAINS: [&str; 2] = ["example.com", "example.org"];

/// `path` rendered for each of [`SAMPLE_DOMAINS`], with one RSA key.
fn sample_paths(env: &Environment<'_>, path: &str) -> Result<[String; 2], String> {
    let render = |domain: &str| {
        let key = KeyView {
            selector: "rotor1".into(),
            algorithm: "rsa-2048".into(),
            k: "rsa",
            key_path: format!("/keys/{domain}.rotor1.pem"),
        };
        let view = View {
            domain: domain.into(),
            selector: Some(key.selector.clone()),
            algorithm: Some(key.algorithm.clone()),
            k: Some(key.k),
            key_path: Some(key.key_path.clone()),
            keys: vec![key],
            kept: Vec::new(),
        };
        env.render_str(path, &view).map_err(|err| err.to_string())
    };
    Ok([render(SAMPLE_DOMAINS[0])?, render(SAMPLE_DOMAINS[1])?])
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    // A line holding only a block tag (`{% for … %}`) leaves no blank line behind.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env
}

fn file_mode(file: &TemplateFile) -> Result<u32, String> {
    match &file.mode {
        None => Ok(0o644),
        Some(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|mode| *mode <= 0o777)
            .ok_or_else(|| format!("invalid file mode {text:?}: write it in octal, like \"0644\"")),
    }
}

/// A key as templates see it.
#[derive(Serialize)]
struct KeyView {
    selector: String,
    algorithm: String,
    k: &'static str,
    key_path: String,
}

/// Everything a template sees.
#[derive(Serialize)]
struct View {
    domain: String,
    keys: Vec<KeyView>,
    kept: Vec<KeyView>,
    selector: Option<String>,
    algorithm: Option<String>,
    k: Option<&'static str>,
    key_path: Option<String>,
}

/// The generic adapter.
pub struct Files {
    config: FilesConfig,
    keys: KeyFiles,
}

impl Files {
    /// An adapter for `config`.
    pub fn new(config: FilesConfig) -> Self {
        let ownership = Ownership::new(&config.user, &config.group, config.mode);
        let (extension, format) = match config.key_format {
            KeyFormatName::Pem => ("pem", KeyFormat::Pem),
            KeyFormatName::Ed25519Seed => ("key", KeyFormat::Ed25519Seed),
        };
        let keys = KeyFiles::new(config.key_dir.clone(), ownership, 0o600, extension, format);
        Self { config, keys }
    }

    fn view(&self, plan: &SignerPlan) -> View {
        let view = |key: &SignerKey| KeyView {
            selector: key.selector.clone(),
            algorithm: key.algorithm.to_string(),
            k: key.algorithm.dkim_k(),
            key_path: self.keys.path(&plan.domain, key).display().to_string(),
        };
        let keys: Vec<KeyView> = plan.signing.iter().map(view).collect();
        let first = keys.first();
        View {
            domain: plan.domain.clone(),
            selector: first.map(|k| k.selector.clone()),
            algorithm: first.map(|k| k.algorithm.clone()),
            k: first.map(|k| k.k),
            key_path: first.map(|k| k.key_path.clone()),
            kept: plan.kept.iter().map(view).collect(),
            keys,
        }
    }

    /// Each file's path and contents for `plan`.
    fn render(&self, plan: &SignerPlan) -> Result<Vec<(PathBuf, String, u32)>> {
        let env = environment();
        let view = self.view(plan);
        self.config
            .files
            .iter()
            .enumerate()
            .map(|(index, file)| {
                let render = |text: &str| {
                    env.render_str(text, &view)
                        .with_context(|| format!("files[{index}] of the files signer"))
                };
                let mode = file_mode(file).map_err(anyhow::Error::msg)?;
                Ok((
                    PathBuf::from(render(&file.path)?),
                    render(&file.template)?,
                    mode,
                ))
            })
            .collect()
    }
}

impl Signer for Files {
    fn key_files(&self) -> Option<&KeyFiles> {
        Some(&self.keys)
    }

    fn switch(&self, plan: &SignerPlan) -> Result<()> {
        let rendered = self.render(plan)?;
        let paths: Vec<&Path> = rendered.iter().map(|(path, ..)| path.as_path()).collect();
        for (path, _, mode) in &rendered {
            if let Some(dir) = path.parent().filter(|dir| !dir.exists()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            if !path.exists() {
                fsutil::write_atomic(path, b"", *mode)?;
            }
        }
        let files = FileSet::read(&paths)?;
        let texts: Vec<String> = rendered.into_iter().map(|(_, text, _)| text).collect();
        let timeout = command::timeout(self.config.timeout);
        files.switch_verified(
            &texts,
            || command::run_optional("reload", self.config.reload.as_ref(), timeout),
            || command::run_optional("verify", self.config.verify.as_ref(), timeout),
        )
    }

    fn check(&self) -> Result<()> {
        self.keys.check()?;
        self.config.validate().map_err(anyhow::Error::msg)
    }

    /// The key directory, and each file's directory when it is the same for every domain.
    fn sweep(&self) -> Result<()> {
        self.keys.sweep()?;
        let env = environment();
        for file in &self.config.files {
            let Ok([one, other]) = sample_paths(&env, &file.path) else {
                continue;
            };
            let (one, other) = (Path::new(&one).parent(), Path::new(&other).parent());
            if let Some(dir) = one.filter(|dir| Some(*dir) == other && !dir.as_os_str().is_empty())
            {
                fsutil::sweep_temp_files(dir)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::keys::KeyAlgorithm;
    use crate::signer::test_key;

    fn signer(dir: &Path, verify: &str) -> Files {
        fsutil::create_dir(&dir.join("keys")).unwrap();
        let yaml = format!(
            "key_dir: {d}/keys
files:
  - path: \"{d}/conf/{{{{ domain }}}}.conf\"
    template: |
      {{% for key in keys %}}sign {{{{ domain }}}} {{{{ key.selector }}}} {{{{ key.k }}}} {{{{ key.key_path }}}}
      {{% endfor %}}{{% for key in kept %}}keep {{{{ key.selector }}}}
      {{% endfor %}}
reload: \"echo reload >> {d}/reloads\"
verify: \"{verify}\"
dual_signing: true
",
            d = dir.display()
        );
        let config: FilesConfig = serde_yaml::from_str(&yaml).unwrap();
        config.validate().unwrap();
        Files::new(config)
    }

    #[test]
    fn renders_every_key_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let files = signer(dir.path(), "true");
        let plan = SignerPlan {
            domain: "example.com".into(),
            signing: vec![
                test_key(dir.path(), "r2", KeyAlgorithm::Rsa2048),
                test_key(dir.path(), "e2", KeyAlgorithm::Ed25519),
            ],
            kept: vec![test_key(dir.path(), "r1", KeyAlgorithm::Rsa2048)],
            removed: vec![],
        };
        files.stage(&plan).unwrap();
        files.switch(&plan).unwrap();
        let k = dir.path().join("keys");
        assert_eq!(
            fs::read_to_string(dir.path().join("conf/example.com.conf")).unwrap(),
            format!(
                "sign example.com r2 rsa {k}/example.com.r2.pem\nsign example.com e2 ed25519 {k}/example.com.e2.pem\nkeep r1\n",
                k = k.display()
            )
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("reloads")).unwrap(),
            "reload\n"
        );
    }

    #[test]
    fn a_failed_verify_restores_the_files_and_reloads_them() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf/example.com.conf");
        fs::create_dir_all(conf.parent().unwrap()).unwrap();
        fs::write(&conf, "sign example.com old\n").unwrap();
        let files = signer(dir.path(), "echo no signature >&2; exit 1");
        let plan = SignerPlan {
            domain: "example.com".into(),
            signing: vec![test_key(dir.path(), "new", KeyAlgorithm::Rsa2048)],
            kept: vec![],
            removed: vec![],
        };
        files.stage(&plan).unwrap();
        let err = format!("{:#}", files.switch(&plan).unwrap_err());
        assert!(
            err.contains("no signature") && err.contains("restored"),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&conf).unwrap(), "sign example.com old\n");
        assert_eq!(
            fs::read_to_string(dir.path().join("reloads")).unwrap(),
            "reload\nreload\n",
            "reloaded again with the restored files"
        );
    }

    #[test]
    fn a_template_error_is_named() {
        let config: FilesConfig = serde_yaml::from_str(
            "key_dir: /k\nfiles:\n  - path: /x/{{ domain }}\n    template: \"{% for %}\"\n",
        )
        .unwrap();
        assert!(config.validate().unwrap_err().starts_with("files[0]: "));
        let config: FilesConfig =
            serde_yaml::from_str("key_dir: /k\nfiles:\n  - path: /x/one\n    template: x\n")
                .unwrap();
        assert!(config.validate().unwrap_err().contains("{{ domain }}"));
    }

    #[test]
    fn a_path_that_is_the_same_for_every_domain_is_refused() {
        for path in [
            "/etc/x/{{ 'domain' }}.conf",
            "/etc/x/domains.conf",
            "/x/{{ k }}.conf",
        ] {
            let yaml = format!("key_dir: /k\nfiles:\n  - path: \"{path}\"\n    template: x\n");
            let config: FilesConfig = serde_yaml::from_str(&yaml).unwrap();
            let err = config.validate().unwrap_err();
            assert!(
                err.contains("two domains would overwrite each other"),
                "{path}: {err}"
            );
        }
        let config: FilesConfig = serde_yaml::from_str(
            "key_dir: /k\nfiles:\n  - path: \"/etc/x/{{ domain | upper }}.conf\"\n    template: x\n",
        )
        .unwrap();
        config.validate().unwrap();
    }
}
