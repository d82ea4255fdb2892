//! What `rotor_testkit::dovecot` promises, against the installed Dovecot (`apt-get install
//! dovecot-imapd`; tests/run.sh does): messages appended are counted and unseen, the TLS port
//! serves a certificate the test CA verifies (checked with python's ssl, not rotor's client),
//! and dropping it leaves no Dovecot process behind.

use std::fs;
use std::process::Command;
use std::time::Duration;

use rotor_testkit::dovecot::{Dovecot, PASSWORD, USER};
use rotor_testkit::{scratch_in, wait_for};

/// The pids of `pid`'s descendants, from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let child: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((child, ppid))
        })
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found
}

fn alive(pid: u32) -> bool {
    // A zombie (state Z) is gone but for its parent's wait.
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn messages_are_appended_counted_and_unseen_and_tls_verifies_with_the_test_ca() {
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    let server = Dovecot::start_tls(&scratch.path().join("dovecot"));
    server.append(USER, "INBOX", b"Subject: one\r\n\r\nbody\r\n");
    server.append(USER, "Other", b"Subject: two\r\n\r\nbody\r\n");
    assert_eq!(server.count(USER, "INBOX"), 1);
    assert_eq!(server.count(USER, "Other"), 1);
    assert_eq!(server.count(USER, "Missing"), 0);
    assert_eq!(server.seen(USER, "INBOX"), 0);
    // Logins are logged (a test can tell whether a client logged in).
    assert!(
        server.log().contains(&format!("Login: user=<{USER}>")),
        "{}",
        server.log()
    );

    let script = format!(
        "import imaplib, ssl\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         imap = imaplib.IMAP4_SSL('localhost', {port}, ssl_context=ctx)\n\
         imap.login({USER:?}, {PASSWORD:?})\n\
         print(imap.select('INBOX')[1][0].decode())\n",
        ca = server.ca().display().to_string(),
        port = server.tls_port.unwrap(),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}

#[test]
fn dropping_it_stops_the_master_and_all_its_children() {
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    let server = Dovecot::start(&scratch.path().join("dovecot"));
    // A login starts imap-login, auth and imap processes.
    server.append(USER, "INBOX", b"Subject: one\r\n\r\nbody\r\n");
    let processes = descendants(server.pid());
    assert!(processes.len() > 1, "{processes:?}");

    drop(server);

    wait_for(
        "every Dovecot process to exit",
        Duration::from_secs(10),
        || processes.iter().all(|pid| !alive(*pid)),
    );
}
