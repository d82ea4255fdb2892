//! KumoMTA is not in Debian: the data file the adapter writes is checked against the format its
//! DKIM helper documents (`testkit/helpers/kumo_dkim_data_check.py`), and a domain's block must
//! name the key's selector and a key file holding that very key.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rotor_signers::SignerKey;

use super::{Backend, NOBODY, NOGROUP, private_dir, write_owned};

/// The data file and key directory.
pub struct Kumomta {
    dir: PathBuf,
}

/// A data file under `dir` with the operator's `[base]` and another domain's block.
pub fn start(dir: &Path) -> Kumomta {
    let dir = dir.join("kumomta");
    private_dir(&dir.join("keys"));
    write_owned(
        &dir.join("dkim_data.toml"),
        "# the operator's settings\n[base]\nheaders = [\"From\", \"To\", \"Subject\"]\n\n[domain.\"other.test\"]\nselector = \"s\"\nfilename = \"/opt/kumomta/etc/dkim/other.test.s.pem\"\n",
        (0, NOGROUP.1),
        0o640,
    );
    Kumomta { dir }
}

impl Backend for Kumomta {
    fn settings(&self, failing: bool) -> String {
        let d = self.dir.display();
        let reload = if failing {
            "reload: \"echo refused >&2; exit 1\"\n"
        } else {
            ""
        };
        format!(
            "type: kumomta\ndata_file: {d}/dkim_data.toml\nkey_dir: {d}/keys\nuser: {}\ngroup: {}\n{reload}",
            NOBODY.0, NOGROUP.0
        )
    }

    fn tables(&self, _: &str) -> Vec<PathBuf> {
        vec![self.dir.join("dkim_data.toml")]
    }

    fn operator_files(&self) -> Vec<PathBuf> {
        self.tables("")
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
        let data = self.dir.join("dkim_data.toml");
        let checker = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testkit/helpers/kumo_dkim_data_check.py");
        let out = Command::new("python3")
            .arg(checker)
            .arg(&data)
            .output()
            .expect("python3 runs");
        if !out.status.success() {
            return Err(format!(
                "not the documented format: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        let text = fs::read_to_string(&data).unwrap();
        let doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
        let block = doc
            .get("domain")
            .and_then(|d| d.get(domain))
            .ok_or_else(|| format!("no block for {domain}"))?;
        let field = |name: &str| block.get(name).and_then(|v| v.as_str()).unwrap_or_default();
        if field("selector") != key.selector || field("algo") != "sha256" {
            return Err(format!("{domain}'s block: {block}"));
        }
        let file =
            fs::read(field("filename")).map_err(|e| format!("{}: {e}", field("filename")))?;
        if file != fs::read(&key.source).unwrap() {
            return Err(format!("{} holds another key", field("filename")));
        }
        Ok(())
    }
}
