//! What the store writes outside sled reaches the disk in an order that survives a power loss:
//! a file is flushed before it is renamed into place, and its directory after. Checked on the
//! system calls (strace) of a child that commits and backs up.

use std::path::Path;
use std::process::Command;

use rotor_state::{KeyRecord, Store};

const CHILD_ENV: &str = "ROTOR_STATE_DURABILITY_STORE";

/// Run by the test below under strace: two commits and two backups in the store it is given.
#[test]
#[ignore = "run by writes_are_flushed_before_and_after_their_rename"]
fn child_commits_and_backs_up() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    for selector in ["a", "b"] {
        let store = Store::open(dir).unwrap();
        let key = KeyRecord::reserved(
            "example.com",
            selector,
            rotor_state::KeyAlgorithm::Ed25519,
            "/k".into(),
            10,
        );
        store.commit(&[(None, &key)], &[]).unwrap();
        store.close().unwrap();
        Store::back_up(dir).unwrap();
    }
}

/// The system calls of one thread, one a line, as `strace -y` prints them.
fn traces(dir: &Path) -> Vec<Vec<String>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            text.lines().map(str::to_string).collect()
        })
        .collect()
}

/// Whether `line` is a successful rename of `from` to `to`.
fn is_rename(line: &str, from: &Path, to: &Path) -> bool {
    line.starts_with("rename")
        && line.contains(&format!("\"{}\"", from.display()))
        && line.contains(&format!("\"{}\"", to.display()))
        && line.ends_with("= 0")
}

/// Whether `line` is a successful fsync of `path` (`-y` names the descriptor's file).
fn is_fsync(line: &str, path: &Path) -> bool {
    (line.starts_with("fsync(") || line.starts_with("fdatasync("))
        && line.contains(&format!("<{}>", path.display()))
        && line.ends_with("= 0")
}

#[test]
fn writes_are_flushed_before_and_after_their_rename() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().canonicalize().unwrap();
    let dir = root.join("store");
    let out = root.join("trace");
    std::fs::create_dir(&out).unwrap();
    let status = Command::new("strace")
        .args(["-ff", "-y", "-qq", "-e", "trace=%file,%desc", "-o"])
        .arg(out.join("t"))
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "child_commits_and_backs_up", "--ignored"])
        .env(CHILD_ENV, &dir)
        .status()
        .expect("strace runs (it is installed with the test tools)");
    assert!(status.success(), "the child failed");
    let traces = traces(&out);

    // The counts file.
    let counts = dir.join("rotor-counts");
    let counts_temp = dir.join("rotor-counts.tmp");
    let mut renames = 0;
    for lines in &traces {
        for (at, line) in lines.iter().enumerate() {
            if !is_rename(line, &counts_temp, &counts) {
                continue;
            }
            renames += 1;
            let since_written = lines[..at]
                .iter()
                .rposition(|l| l.contains(&format!("\"{}\"", counts_temp.display())))
                .expect("the temporary file was created");
            assert!(
                lines[since_written..at]
                    .iter()
                    .any(|l| is_fsync(l, &counts_temp)),
                "rotor-counts.tmp is renamed without being flushed"
            );
            assert!(
                lines[at..].iter().any(|l| is_fsync(l, &dir)),
                "the store's directory is not flushed after the rename"
            );
        }
    }
    assert_eq!(
        renames, 3,
        "one counts file as the store is created, one per commit"
    );

    // The backup.
    let backup = Store::backup_path(&dir);
    let backup_temp = root.join("store.backup.tmp");
    let mut backups = 0;
    for lines in &traces {
        let mut start = 0;
        for (at, line) in lines.iter().enumerate() {
            if !is_rename(line, &backup_temp, &backup) {
                continue;
            }
            backups += 1;
            let segment = &lines[start..at];
            let created: Vec<&String> = segment
                .iter()
                .filter(|l| l.starts_with("openat(") && l.contains("O_CREAT"))
                .filter(|l| l.contains(&format!("\"{}/", backup_temp.display())))
                .collect();
            assert!(!created.is_empty(), "the backup copies files");
            for open in created {
                let path = open.split('"').nth(1).unwrap();
                assert!(
                    segment.iter().any(|l| is_fsync(l, Path::new(path))),
                    "{path} is renamed into the backup without being flushed"
                );
            }
            assert!(
                segment.iter().any(|l| is_fsync(l, &backup_temp)),
                "the backup's directory is not flushed before the rename"
            );
            assert!(
                !segment
                    .iter()
                    .any(|l| l.starts_with("unlink")
                        && l.contains(&format!("{}/", backup.display()))),
                "the old backup is removed before the new one is in place"
            );
            assert!(
                lines[at..].iter().any(|l| is_fsync(l, &root)),
                "the backup's parent directory is not flushed after the rename"
            );
            start = at;
        }
    }
    assert_eq!(backups, 2, "two backups");
}
