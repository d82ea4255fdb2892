//! `type: files`: any signer rotor has no adapter for. Each configured file is rendered from a
//! template (Jinja syntax, by minijinja) for the domain, written atomically, then a reload
//! command and an optional verify command run; if either fails, every file is put back.
//!
//! Template variables: `domain`; `keys`, the keys to sign with, each with `selector`,
//! `algorithm` (`rsa-2048`, `ed25519`), `k` (`rsa` or `ed25519`) and `key_path`; `kept`, the
//! replaced keys in their grace window, alike; and `selector`, `algorithm`, `k` and `key_path`
//! of the first key to sign with, for signers that take one. Block tags alone on their line leave
//! no blank line (`trim_blocks` and `lstrip_blocks`).

mod settings;
mod template;

pub use settings::{FilesSettings, KeyFormatName, TemplateFile};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Result, SignerError};
use crate::key_files::{KeyFiles, KeyFormat};
use crate::probe::ProbeSettings;
use crate::tables::FileSet;
use crate::{Signer, SignerKey, SignerPlan, command, fs as fsutil};
use template::{KeyView, View, environment, file_mode, sample_paths};

/// The generic adapter.
pub struct Files {
    config: FilesSettings,
    keys: KeyFiles,
}

impl Files {
    /// An adapter for `config`.
    pub fn new(config: FilesSettings) -> Self {
        let format = KeyFormat::from(config.key_format);
        let extension = match format {
            KeyFormat::Pem => "pem",
            KeyFormat::Ed25519Seed => "key",
        };
        let keys = KeyFiles::new(
            config.key_dir.clone(),
            config.ownership(),
            0o600,
            extension,
            format,
        );
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
                    env.render_str(text, &view).map_err(|err| {
                        SignerError::Setting(format!("files[{index}] of the files signer: {err}"))
                    })
                };
                let mode = file_mode(file).map_err(SignerError::Setting)?;
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

    fn switch(&self, plans: &[SignerPlan]) -> Result<()> {
        // Every domain's files, in order; a path two domains render to holds the last one's.
        let mut rendered: Vec<(PathBuf, String, u32)> = Vec::new();
        let mut index: HashMap<PathBuf, usize> = HashMap::new();
        for plan in plans {
            for (path, text, mode) in self.render(plan)? {
                match index.get(&path) {
                    Some(&at) => rendered[at] = (path, text, mode),
                    None => {
                        index.insert(path.clone(), rendered.len());
                        rendered.push((path, text, mode));
                    }
                }
            }
        }
        for (path, ..) in &rendered {
            if let Some(dir) = path.parent().filter(|dir| !dir.exists()) {
                std::fs::create_dir_all(dir).map_err(|err| SignerError::at("create", dir, err))?;
            }
        }
        // A file not there yet is created with its mode, and removed again if the switch fails.
        let paths: Vec<(&Path, u32)> = (rendered.iter())
            .map(|(path, _, mode)| (path.as_path(), *mode))
            .collect();
        let files = FileSet::read_with_modes(&paths)?;
        let texts: Vec<String> = rendered.into_iter().map(|(_, text, _)| text).collect();
        let timeout = command::timeout(self.config.timeout);
        files.switch_verified(
            &texts,
            || command::run_optional("reload", self.config.reload.as_ref(), timeout),
            || command::run_optional("verify", self.config.verify.as_ref(), timeout),
        )
    }

    fn probe(&self) -> Option<&ProbeSettings> {
        self.config.probe.as_ref()
    }

    fn check(&self) -> Result<()> {
        self.keys.check()?;
        self.config.validate().map_err(SignerError::Setting)
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

    use rotor_common::KeyAlgorithm;

    use super::*;
    use crate::test_key;

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
        let config: FilesSettings = serde_yaml::from_str(&yaml).unwrap();
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
        files.switch(std::slice::from_ref(&plan)).unwrap();
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
        let err = format!(
            "{:#}",
            files.switch(std::slice::from_ref(&plan)).unwrap_err()
        );
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
        let config: FilesSettings = serde_yaml::from_str(
            "key_dir: /k\nfiles:\n  - path: /x/{{ domain }}\n    template: \"{% for %}\"\n",
        )
        .unwrap();
        assert!(config.validate().unwrap_err().starts_with("files[0]: "));
        let config: FilesSettings =
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
            let config: FilesSettings = serde_yaml::from_str(&yaml).unwrap();
            let err = config.validate().unwrap_err();
            assert!(
                err.contains("two domains would overwrite each other"),
                "{path}: {err}"
            );
        }
        let config: FilesSettings = serde_yaml::from_str(
            "key_dir: /k\nfiles:\n  - path: \"/etc/x/{{ domain | upper }}.conf\"\n    template: x\n",
        )
        .unwrap();
        config.validate().unwrap();
    }
}
