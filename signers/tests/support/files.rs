//! `type: files`: one file per domain rendered from a template, and a verify command that checks
//! every rendered file names a key file that holds a private key (`openssl pkey`). The signer
//! "signs" a domain with a key when the domain's file names the key's selector and a key file
//! holding that very key.

use std::fs;
use std::path::{Path, PathBuf};

use rotor_signers::SignerKey;

use super::{Backend, NOBODY, NOGROUP, private_dir, write_owned};

/// The rendered files, the key directory, the verify script.
pub struct Files {
    dir: PathBuf,
}

/// Under `dir`: the operator's file of another domain beside those rotor renders.
pub fn start(dir: &Path) -> Files {
    let dir = dir.join("files");
    private_dir(&dir.join("keys"));
    fs::create_dir_all(dir.join("conf")).unwrap();
    write_owned(
        &dir.join("conf/other.test.conf"),
        "sign other.test s /etc/signer/other.test.s.pem\n",
        (0, NOGROUP.1),
        0o640,
    );
    fs::write(
        dir.join("verify.sh"),
        format!(
            "for file in {d}/conf/example.*.conf; do\n  [ -e \"$file\" ] || continue\n  while read -r _ _ _ key; do\n    openssl pkey -in \"$key\" -noout || exit 1\n  done < \"$file\"\ndone\n",
            d = dir.display()
        ),
    )
    .unwrap();
    Files { dir }
}

impl Backend for Files {
    fn settings(&self, failing: bool) -> String {
        let d = self.dir.display();
        let verify = if failing {
            "echo no signature >&2; exit 1".to_string()
        } else {
            format!("sh {d}/verify.sh")
        };
        format!(
            "type: files
key_dir: {d}/keys
files:
  - path: \"{d}/conf/{{{{ domain }}}}.conf\"
    template: |
      {{% for key in keys %}}
      sign {{{{ domain }}}} {{{{ key.selector }}}} {{{{ key.key_path }}}}
      {{% endfor %}}
verify: \"{verify}\"
user: {}
group: {}
",
            NOBODY.0, NOGROUP.0
        )
    }

    fn tables(&self, domain: &str) -> Vec<PathBuf> {
        vec![self.dir.join(format!("conf/{domain}.conf"))]
    }

    fn operator_files(&self) -> Vec<PathBuf> {
        vec![self.dir.join("conf/other.test.conf")]
    }

    fn key_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }

    fn key_owner(&self) -> (u32, u32, u32) {
        (NOBODY.1, NOGROUP.1, 0o600)
    }

    fn table_group(&self) -> u32 {
        NOGROUP.1
    }

    fn signs(&self, domain: &str, key: &SignerKey) -> Result<(), String> {
        let conf = self.dir.join(format!("conf/{domain}.conf"));
        let text = fs::read_to_string(&conf).map_err(|e| format!("{}: {e}", conf.display()))?;
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let [row] = rows.as_slice() else {
            return Err(format!(
                "{} signs with {} keys:\n{text}",
                conf.display(),
                rows.len()
            ));
        };
        match row.as_slice() {
            ["sign", d, selector, path] if *d == domain && *selector == key.selector => {
                let file = fs::read(path).map_err(|e| format!("{path}: {e}"))?;
                if file == fs::read(&key.source).unwrap() {
                    Ok(())
                } else {
                    Err(format!("{path} holds another key"))
                }
            }
            _ => Err(format!("{}:\n{text}", conf.display())),
        }
    }
}
