//! The checks every signer adapter passes, in the order a key's life takes them, against the
//! adapter's real signer. Each step names the check it makes; a failure says which.
//!
//! 1. stage: the key file is in place (contents, owner, group, mode, one name), nothing the
//!    signer reads changed, and the signer does not sign with it yet;
//! 2. switch: the signer really signs with the new key; the tables keep their owner, group and
//!    mode and the operator's rows;
//! 3. two domains never share a file: a second domain with the same selector and another key
//!    gets its own key file, and each domain is signed with its own key;
//! 4. other domains untouched: rotating one domain leaves the other's key file, rows and
//!    signatures as they were;
//! 5. a failed reload restores everything: tables and key files as they were (contents, owner,
//!    group, mode), the signer still signs with the previous key; the next switch succeeds;
//! 6. clean removes only what rotor put there: the removed keys' files and rows go, the other
//!    domain's and the operator's files stay.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rotor_common::{ErrorKind, KeyAlgorithm};
use rotor_keys::PrivateKey;
use rotor_signers::{Signer, SignerKey, SignerPlan, SignerSettings};

use super::{Backend, Seen, seen};

const COM: &str = "example.com";
const ORG: &str = "example.org";
const NET: &str = "example.net";

/// How long a signer may take to pick up a switch (OpenDKIM after its signal, rspamd's map
/// watcher).
const PICK_UP: Duration = Duration::from_secs(30);

/// Runs the battery against the backend `start` sets up in a scratch directory.
pub fn run<B: Backend>(start: impl FnOnce(&Path) -> B) {
    let dir = super::scratch();
    let sources = dir.path().join("rotor-keys");
    super::private_dir(&sources);
    let backend = start(dir.path());
    Battery {
        backend: &backend,
        sources,
    }
    .run();
}

struct Battery<'b, B: Backend> {
    backend: &'b B,
    sources: PathBuf,
}

impl<B: Backend> Battery<'_, B> {
    fn run(&self) {
        let signer = self.signer(false);
        signer.check().expect("the signer's check passes");
        let operator = self.operator_key_file();
        let operator_rows = self.operator_rows();
        let com1 = self.key(COM, "s1");
        let org1 = self.key(ORG, "s1");

        // 1. stage
        let first = plan(COM, &[&com1], &[], &[]);
        let tables = self.snapshot(&self.all_tables());
        signer.stage(&first).expect("stage");
        self.installed("stage", &*signer, COM, &com1);
        assert_eq!(
            self.snapshot(&self.all_tables()),
            tables,
            "stage: a stage changes none of the files the signer reads"
        );
        if let Ok(()) = self.backend.signs(COM, &com1) {
            panic!("stage: the signer signs with a key that was only staged");
        }

        // 2. switch
        signer.switch(std::slice::from_ref(&first)).expect("switch");
        signer.clean(&first).expect("clean");
        self.eventually_signs("switch", COM, &com1);
        let given = self.give_tables_to_the_operator();
        self.rows_kept("switch", &operator_rows);

        // 3. two domains never share a file
        let org = plan(ORG, &[&org1], &[], &[]);
        apply(&*signer, &org).expect("switch of a second domain");
        self.eventually_signs("two domains never share a file", ORG, &org1);
        self.eventually_signs("two domains never share a file", COM, &com1);
        let (com_file, org_file) = (
            key_file(&*signer, COM, &com1),
            key_file(&*signer, ORG, &org1),
        );
        assert_ne!(
            com_file, org_file,
            "two domains never share a file: one selector, two domains, one key file"
        );
        self.installed("two domains never share a file", &*signer, COM, &com1);
        self.installed("two domains never share a file", &*signer, ORG, &org1);
        for table in self.backend.tables(COM) {
            let shared = self.backend.tables(ORG).contains(&table);
            let text = fs::read_to_string(&table).unwrap_or_default();
            assert!(
                shared || !text.contains(ORG),
                "two domains never share a file: {} (of {COM}) holds rows of {ORG}:\n{text}",
                table.display()
            );
        }

        self.owners_kept("two domains never share a file", &given);
        let given = self.give_tables_to_the_operator();

        // 4. other domains untouched
        let com2 = self.key(COM, "s2");
        let org_before = self.snapshot(std::slice::from_ref(&org_file));
        let org_tables = self.snapshot(&self.own_tables(ORG));
        let rotate = plan(COM, &[&com2], &[&com1], &[]);
        apply(&*signer, &rotate).expect("a rotation");
        self.eventually_signs("switch", COM, &com2);
        self.eventually_signs("other domains untouched", ORG, &org1);
        assert_eq!(
            self.snapshot(std::slice::from_ref(&org_file)),
            org_before,
            "other domains untouched: {ORG}'s key file changed"
        );
        assert_eq!(
            self.snapshot(&self.own_tables(ORG)),
            org_tables,
            "other domains untouched: {ORG}'s own files changed"
        );
        self.rows_kept("other domains untouched", &operator_rows);
        self.owners_kept("switch", &given);

        // 5. a failed reload restores everything
        let com3 = self.key(COM, "s3");
        let next = plan(COM, &[&com3], &[&com2], &[]);
        let tables = self.snapshot(&self.all_tables());
        let keys = self.key_dir_files();
        let failing = self.signer(true);
        failing.stage(&next).expect("stage before a failing switch");
        let err = failing
            .switch(std::slice::from_ref(&next))
            .expect_err("a failed reload restores everything: the switch fails");
        assert!(
            err.to_string().contains("previous files are restored"),
            "a failed reload restores everything: the error says so: {err}"
        );
        assert_eq!(err.kind(), ErrorKind::NeedsOperator, "{err}");
        assert_eq!(
            self.snapshot(&self.all_tables()),
            tables,
            "a failed reload restores everything: the tables (contents, owner, group, mode)"
        );
        let after = self.key_dir_files();
        for (path, was) in &keys {
            assert_eq!(
                after.get(path),
                Some(was),
                "a failed reload restores everything: key file {}",
                path.display()
            );
        }
        // A domain the signer never signed: nothing of it is left in the tables.
        let new = plan(NET, &[&self.key(NET, "s1")], &[], &[]);
        let mut tables = self.all_tables();
        tables.extend(self.backend.tables(NET));
        let before = self.snapshot(&tables);
        failing.stage(&new).expect("stage of a new domain");
        failing
            .switch(std::slice::from_ref(&new))
            .expect_err("a failed reload restores everything: the switch of a new domain fails");
        assert_eq!(
            self.snapshot(&tables),
            before,
            "a failed reload restores everything: a new domain's failed switch leaves its tables as they were"
        );
        self.eventually_signs("a failed reload restores everything", COM, &com2);
        self.eventually_signs("a failed reload restores everything", ORG, &org1);
        apply(&*signer, &next).expect("the switch after a failed one");
        self.eventually_signs("switch", COM, &com3);

        // 6. clean removes only what rotor put there
        let retire = plan(COM, &[&com3], &[], &[&com2, &com1]);
        let org_before = self.snapshot(std::slice::from_ref(&org_file));
        apply(&*signer, &retire).expect("a retirement");
        for gone in [&com1, &com2] {
            let path = key_file(&*signer, COM, gone);
            assert_eq!(
                seen(&path),
                None,
                "clean removes only what rotor put there: {} is removed",
                path.display()
            );
            for table in self.all_tables() {
                let text = fs::read_to_string(&table).unwrap_or_default();
                assert!(
                    !text.contains(&path.display().to_string()),
                    "clean removes only what rotor put there: {} still names {}:\n{text}",
                    table.display(),
                    path.display()
                );
            }
        }
        self.installed(
            "clean removes only what rotor put there",
            &*signer,
            COM,
            &com3,
        );
        assert_eq!(
            self.snapshot(std::slice::from_ref(&org_file)),
            org_before,
            "clean removes only what rotor put there: {ORG}'s key file"
        );
        assert_eq!(
            seen(&operator.0),
            operator.1,
            "clean removes only what rotor put there: the operator's file in the key directory"
        );
        self.rows_kept("clean removes only what rotor put there", &operator_rows);
        self.owners_kept("clean removes only what rotor put there", &given);
        self.eventually_signs("clean removes only what rotor put there", COM, &com3);
        self.eventually_signs("clean removes only what rotor put there", ORG, &org1);

        // 7. one switch moves several domains, and a failed one restores them all
        let (com4, org2) = (self.key(COM, "s4"), self.key(ORG, "s2"));
        let both = [
            plan(COM, &[&com4], &[&com3], &[]),
            plan(ORG, &[&org2], &[&org1], &[]),
        ];
        let tables = self.snapshot(&self.all_tables());
        for plan in &both {
            failing.stage(plan).expect("stage before a failing batch");
        }
        let err = failing
            .switch(&both)
            .expect_err("one switch moves several domains: a failing reload fails the batch");
        assert!(
            err.to_string().contains("previous files are restored"),
            "one switch moves several domains: the error says the files are restored: {err}"
        );
        assert_eq!(
            self.snapshot(&self.all_tables()),
            tables,
            "one switch moves several domains: a failed batch restores every domain's rows"
        );
        self.eventually_signs("one switch moves several domains", COM, &com3);
        self.eventually_signs("one switch moves several domains", ORG, &org1);
        apply_all(&*signer, &both).expect("a switch of two domains at once");
        self.eventually_signs("one switch moves several domains", COM, &com4);
        self.eventually_signs("one switch moves several domains", ORG, &org2);
        self.rows_kept("one switch moves several domains", &operator_rows);
    }

    /// The adapter for the backend's settings, read as the config reads them.
    fn signer(&self, failing: bool) -> Box<dyn Signer> {
        let settings: SignerSettings = serde_yaml::from_str(&self.backend.settings(failing))
            .expect("the backend's settings parse");
        settings
            .validate()
            .expect("the backend's settings are valid");
        settings.build()
    }

    /// A new RSA key of rotor's for `selector` of `domain`.
    fn key(&self, domain: &str, selector: &str) -> SignerKey {
        let source = self.sources.join(format!("{domain}.{selector}.pem"));
        let key = PrivateKey::generate(KeyAlgorithm::Rsa2048).unwrap();
        rotor_testkit::write_private(&source, key.pem());
        SignerKey {
            selector: selector.into(),
            algorithm: KeyAlgorithm::Rsa2048,
            source,
        }
    }

    /// A file of the operator's in the key directory, and how it is.
    fn operator_key_file(&self) -> (PathBuf, Seen) {
        let path = self
            .backend
            .key_dir()
            .join("operator.example.net.legacy.pem");
        super::write_owned(&path, "the operator's own key\n", (0, 0), 0o600);
        let was = seen(&path);
        (path, was)
    }

    /// Every line of the operator's files as they are now, by file.
    fn operator_rows(&self) -> Vec<(PathBuf, Vec<String>)> {
        self.backend
            .operator_files()
            .into_iter()
            .map(|path| {
                let text = fs::read_to_string(&path).unwrap();
                let rows = text.lines().filter(|l| !l.trim().is_empty());
                (path, rows.map(str::to_string).collect())
            })
            .collect()
    }

    /// Checks every row of `rows` is still in its file.
    fn rows_kept(&self, check: &str, rows: &[(PathBuf, Vec<String>)]) {
        for (path, rows) in rows {
            let text = fs::read_to_string(path).unwrap();
            for row in rows {
                assert!(
                    text.lines().any(|line| line == row),
                    "{check}: the operator's row {row:?} of {} is kept:\n{text}",
                    path.display()
                );
            }
        }
    }

    /// The tables of both domains.
    fn all_tables(&self) -> Vec<PathBuf> {
        let mut tables = self.backend.tables(COM);
        tables.extend(self.backend.tables(ORG));
        tables.sort();
        tables.dedup();
        tables
    }

    /// The tables of `domain` no other domain's rows are in.
    fn own_tables(&self, domain: &str) -> Vec<PathBuf> {
        let other = if domain == COM { ORG } else { COM };
        let theirs = self.backend.tables(other);
        let mut own = self.backend.tables(domain);
        own.retain(|table| !theirs.contains(table));
        own
    }

    fn snapshot(&self, paths: &[PathBuf]) -> Vec<(PathBuf, Seen)> {
        paths
            .iter()
            .map(|path| (path.clone(), seen(path)))
            .collect()
    }

    /// Every file in the key directory.
    fn key_dir_files(&self) -> BTreeMap<PathBuf, Seen> {
        fs::read_dir(self.backend.key_dir())
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let was = seen(&path);
                (path, was)
            })
            .collect()
    }

    /// The operator gives every table the group the signer reads it through, mode 0640; the
    /// tables given.
    fn give_tables_to_the_operator(&self) -> Vec<PathBuf> {
        let tables: Vec<PathBuf> = self
            .all_tables()
            .into_iter()
            .filter(|t| t.exists())
            .collect();
        for table in &tables {
            std::os::unix::fs::chown(table, Some(0), Some(self.backend.table_group())).unwrap();
            fs::set_permissions(table, std::os::unix::fs::PermissionsExt::from_mode(0o640))
                .unwrap();
        }
        tables
    }

    /// Checks each of the `given` tables keeps the owner, group and mode the operator gave it.
    fn owners_kept(&self, check: &str, given: &[PathBuf]) {
        let want = Some((0, self.backend.table_group(), 0o640));
        for table in given {
            let meta = seen(table).map(|(_, uid, gid, mode, _)| (uid, gid, mode));
            if meta != want {
                panic!(
                    "{check}: {} keeps the owner, group and mode the operator gave it: {meta:?}, not {want:?}",
                    table.display()
                );
            }
        }
    }

    /// Checks `key`'s file of `domain` is in place: a plain file with one name, with the key
    /// and the owner, group and mode the settings give.
    fn installed(&self, check: &str, signer: &dyn Signer, domain: &str, key: &SignerKey) {
        let path = key_file(signer, domain, key);
        let (uid, gid, mode) = self.backend.key_owner();
        let want = fs::read(&key.source).unwrap();
        assert_eq!(
            seen(&path),
            Some((want, uid, gid, mode, true)),
            "{check}: key file {} (contents, owner, group, mode, one name)",
            path.display()
        );
    }

    /// Waits until the signer signs mail of `domain` with `key`.
    fn eventually_signs(&self, check: &str, domain: &str, key: &SignerKey) {
        let start = Instant::now();
        loop {
            match self.backend.signs(domain, key) {
                Ok(()) => return,
                Err(why) if start.elapsed() > PICK_UP => {
                    panic!(
                        "{check}: the signer signs {domain} with {}: {why}",
                        key.selector
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// The three steps, as the engine takes them for one signer.
fn apply(signer: &dyn Signer, plan: &SignerPlan) -> rotor_signers::Result<()> {
    apply_all(signer, std::slice::from_ref(plan))
}

/// The three steps for several domains at once: one switch for all of them.
fn apply_all(signer: &dyn Signer, plans: &[SignerPlan]) -> rotor_signers::Result<()> {
    plans.iter().try_for_each(|plan| signer.stage(plan))?;
    signer.switch(plans)?;
    plans.iter().try_for_each(|plan| signer.clean(plan))
}

fn plan(
    domain: &str,
    signing: &[&SignerKey],
    kept: &[&SignerKey],
    removed: &[&SignerKey],
) -> SignerPlan {
    let keys = |keys: &[&SignerKey]| keys.iter().map(|k| (*k).clone()).collect();
    SignerPlan {
        domain: domain.into(),
        signing: keys(signing),
        kept: keys(kept),
        removed: keys(removed),
    }
}

/// Where the adapter puts `key` of `domain`.
fn key_file(signer: &dyn Signer, domain: &str, key: &SignerKey) -> PathBuf {
    signer
        .key_files()
        .expect("every adapter installs key files")
        .path(domain, key)
}
