//! `rotor daemon` as a service manager runs it: passes on a (one-second) cron schedule against
//! the test BIND, SIGHUP with a good and a bad config, SIGTERM in the middle of a pass.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Bind, Rotor, Secondary, Setup, scratch, wait_for};

/// A running `rotor daemon -v`, killed if the test ends before it stops.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(rotor: &Rotor) -> Self {
        let log = rotor.dir.join("daemon.log");
        let child = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .arg("--config")
            .arg(&rotor.config)
            .args(["daemon", "-v"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the daemon to exit and returns its exit code.
    fn wait_exit(&mut self) -> Option<i32> {
        let mut code = None;
        wait_for("the daemon to exit", Duration::from_secs(30), || {
            code = self.child.try_wait().unwrap().map(|s| s.code());
            code.is_some()
        });
        code.flatten()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rotor --config CONFIG ARGS`.
fn rotor_with(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// The config with the daemon's schedule set to every second.
fn every_second(rotor: &Rotor) {
    let mut config = fs::read_to_string(&rotor.config).unwrap();
    config.push_str("schedule: \"* * * * * *\"\n");
    fs::write(&rotor.config, config).unwrap();
}

/// `domain`'s phases, as `rotor status` reads them with `config`.
fn phases_of(config: &Path, domain: &str) -> Vec<String> {
    let out = rotor_with(config, &["status", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    rows.iter()
        .filter(|row| row["domain"] == domain)
        .filter_map(|row| row["phase"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_schedule_drives_rotations_and_sighup_reloads_the_config() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    every_second(&rotor);
    let good = fs::read_to_string(&rotor.config).unwrap();
    let mut daemon = Daemon::start(&rotor);

    // Nothing but the daemon's passes: the first key goes all the way to active.
    wait_for(
        "the daemon to activate a key",
        Duration::from_secs(60),
        || phases_of(&rotor.config, "example.com") == ["active"],
    );

    // SIGHUP with a good config: example.org is added and rotated from then on.
    let with_org = good.replace(
        "domains:\n",
        "domains:\n  - name: example.org\n    provider: bind\n    signers: [mx1]\n",
    );
    fs::write(&rotor.config, &with_org).unwrap();
    daemon.signal("HUP");
    wait_for(
        "example.org to get an active key",
        Duration::from_secs(60),
        || phases_of(&rotor.config, "example.org") == ["active"],
    );
    assert!(daemon.log().contains("reloaded"), "{}", daemon.log());

    // SIGHUP with a bad config: refused with its line, and the daemon goes on with the old one.
    let kept = dir.path().join("kept.yaml");
    fs::write(&kept, &with_org).unwrap();
    fs::write(&rotor.config, with_org.replace("grace: 2s", "grace: soon")).unwrap();
    daemon.signal("HUP");
    wait_for(
        "the bad config to be refused",
        Duration::from_secs(30),
        || daemon.log().contains("keeping the previous config"),
    );
    assert!(daemon.log().contains("rotor.yaml:"), "{}", daemon.log());
    let out = rotor_with(&kept, &["rotate", "example.com"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "the daemon to finish that rotation",
        Duration::from_secs(60),
        || {
            phases_of(&kept, "example.com") == ["retiring", "active"]
                || phases_of(&kept, "example.com") == ["active"]
        },
    );

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), Some(0));
    assert!(daemon.log().contains("stopped"), "{}", daemon.log());
}

#[test]
fn sigterm_in_the_middle_of_a_pass_finishes_the_step_then_stops() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    every_second(&rotor);
    // The signer's reload holds the activation step until the test lets it go.
    let (reloading, go) = (dir.path().join("reloading"), dir.path().join("go"));
    let config = fs::read_to_string(&rotor.config).unwrap();
    let reload_line = config
        .lines()
        .find(|l| l.trim_start().starts_with("reload:"))
        .unwrap();
    let held = format!(
        "    reload: \"touch {r}; while [ ! -e {g} ]; do sleep 0.1; done\"",
        r = reloading.display(),
        g = go.display()
    );
    fs::write(&rotor.config, config.replace(reload_line, &held)).unwrap();
    let mut daemon = Daemon::start(&rotor);

    wait_for(
        "the activation's reload to start",
        Duration::from_secs(60),
        || reloading.exists(),
    );
    // The daemon's pass holds the lock: a `rotor run` by hand does nothing and says so.
    let by_hand = rotor.cmd(&["run"]);
    assert_eq!(by_hand.status.code(), Some(75));
    assert!(String::from_utf8_lossy(&by_hand.stderr).contains("another rotor is running"));
    daemon.signal("TERM");
    fs::write(&go, "").unwrap();
    assert_eq!(daemon.wait_exit(), Some(0), "{}", daemon.log());
    assert!(
        daemon.log().contains("rotor daemon: stopped"),
        "{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains("stopping after the step in progress"),
        "{}",
        daemon.log()
    );
    // The step in progress was finished and recorded: the key is active, nothing half-done.
    assert_eq!(phases_of(&rotor.config, "example.com"), ["active"]);
    let out = rotor.cmd(&["status", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rows[0]["error"].is_null(), "{rows:?}");
}
