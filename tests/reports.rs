//! DMARC aggregate reports as the monitoring phase, through the real binary against BIND and a
//! `type: dir` report source: an old selector still seen in reports holds its retirement; a
//! new selector failing in reports raises an alert and, with `rollback: true`, the signers go
//! back to the previous key; reports seen twice count once; malformed ones are refused with a
//! reason and nothing else is lost.

mod support;

use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rotor_testkit::dmarc::{Format, Row, gzip, message, report};
use support::{Bind, Rotor, Secondary, Setup, scratch, wait_for};

/// The start of today (UTC), as reports date their period.
fn today() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    now - now % 86_400
}

/// Adds a `type: dir` report source at `dir` and `monitor:` to the defaults.
fn monitored(rotor: &Rotor, dir: &std::path::Path, monitor: &str) {
    fs::create_dir_all(dir).unwrap();
    rotor.edit_config(|config| {
        let config = config.replacen(
            "defaults:\n",
            &format!("defaults:\n  monitor: {monitor}\n"),
            1,
        );
        format!(
            "{config}reports:\n  - type: dir\n    path: {}\n",
            dir.display()
        )
    });
}

fn row<'a>(selector: &'a str, result: &'a str, count: u32) -> Row<'a> {
    Row {
        domain: "example.com",
        selector,
        result,
        count,
    }
}

/// The status row of `selector`.
fn row_of(rotor: &Rotor, selector: &str) -> serde_json::Value {
    rotor
        .status()
        .into_iter()
        .find(|row| row["selector"] == selector)
        .unwrap_or_default()
}

#[test]
fn an_old_selector_still_seen_in_reports_holds_its_retirement_and_reports_count_once() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let inbox = dir.path().join("reports");
    monitored(&rotor, &inbox, "{retire_when_silent: 2d, max_wait: 30d}");
    let (old, new) = rotor.two_keys();

    // Receivers still see mail signed with the old selector today (mail in flight, or a
    // signer rotor does not know of), in both formats, gzip and as a message.
    let rows = [row(&old, "pass", 40), row(&new, "pass", 500)];
    let first = report(
        Format::Rfc7489,
        "google.com",
        "g-1",
        "example.com",
        today(),
        &rows,
    );
    fs::write(inbox.join("google.xml.gz"), gzip(first.as_bytes())).unwrap();
    let second = report(
        Format::Rfc9990,
        "yahoo.com",
        "y-1",
        "example.com",
        today(),
        &rows,
    );
    let mail = message(
        "yahoo.com",
        "dmarc@example.com",
        "y-1.xml",
        "text/xml",
        second.as_bytes(),
    );
    fs::write(inbox.join("yahoo.eml"), &mail).unwrap();
    // The same report again (another copy of g-1), and a broken one.
    fs::write(inbox.join("google-again.xml"), first.as_bytes()).unwrap();
    fs::write(inbox.join("broken.xml"), b"<feedback><report_metadata>").unwrap();

    let out = rotor.cmd(&["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("broken.xml refused: not a DMARC report"),
        "{stderr}"
    );
    let processed: Vec<String> = fs::read_dir(inbox.join("processed"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(processed.len(), 4, "{processed:?}");

    let report = rotor.ok(&["report", "example.com", "--json"]);
    let report: Vec<serde_json::Value> = serde_json::from_str(&report).unwrap();
    let of = |s: &str| report.iter().find(|r| r["selector"] == s).unwrap().clone();
    assert_eq!(of(&old)["pass"], 80, "g-1 counted once: {report:?}");
    assert_eq!(of(&new)["pass"], 1000);
    assert_eq!(of(&new)["phase"], "active");
    assert_eq!(
        of(&old)["reporters"],
        serde_json::json!(["google.com", "yahoo.com"])
    );
    let text = rotor.ok(&["report", "example.com"]);
    assert!(
        text.contains(&old) && text.contains("google.com, yahoo.com"),
        "{text}"
    );

    // Grace (2s) passes; the old key stays: reports saw it today.
    let mut last = serde_json::Value::Null;
    wait_for("grace to pass", Duration::from_secs(20), || {
        rotor.ok(&["run"]);
        last = row_of(&rotor, &old);
        last["gate"]["gate"] == "still-seen"
    });
    assert_eq!(row_of(&rotor, &old)["phase"], "retiring");
    assert!(
        bind.secondary
            .txt(&format!("{old}._domainkey.example.com"))
            .iter()
            .any(|v| v.contains("p=")),
        "the old record stays published"
    );
    let status = rotor.ok(&["status"]);
    assert!(
        status.contains("DMARC reports still show mail signed with it"),
        "{status}"
    );
    assert!(
        status.contains("[DMARC: 100.0% of 1000 passed]"),
        "{status}"
    );
}

#[test]
fn a_new_selector_failing_in_reports_is_flagged_and_rolled_back() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(
        dir.path(),
        &bind,
        Setup {
            grace: "1h",
            ..Setup::default()
        },
    );
    let inbox = dir.path().join("reports");
    monitored(
        &rotor,
        &inbox,
        "{rollback: true, min_messages: 20, max_fail_rate: 5%}",
    );
    let metrics = dir.path().join("rotor.prom");
    rotor.edit_config(|config| format!("{config}metrics_file: {}\n", metrics.display()));
    let (old, new) = rotor.two_keys();
    assert_eq!(rotor.signing_selector().as_deref(), Some(new.as_str()));

    // Receivers fail a third of the new selector's signatures.
    let rows = [row(&new, "pass", 20), row(&new, "fail", 10)];
    let failing = report(
        Format::Rfc9990,
        "google.com",
        "g-2",
        "example.com",
        today(),
        &rows,
    );
    fs::write(inbox.join("g-2.xml"), failing.as_bytes()).unwrap();
    rotor.ok(&["run"]);

    assert_eq!(rotor.selector_in("active").as_deref(), Some(old.as_str()));
    let rolled = row_of(&rotor, &new);
    assert_eq!(rolled["phase"], "retiring", "{rolled}");
    assert_eq!(rotor.signing_selector().as_deref(), Some(old.as_str()));
    let history = rotor.ok(&["history", "example.com"]);
    assert!(
        history.contains("alert: DMARC reports: 33.3% of 30 messages"),
        "{history}"
    );
    assert!(
        history.contains("rolled back: signers mx1 sign with"),
        "{history}"
    );
    let metrics = fs::read_to_string(&metrics).unwrap();
    assert!(
        metrics.contains(&format!(
            "rotor_dmarc_dkim_messages{{domain=\"example.com\",selector=\"{new}\",result=\"fail\"}} 10"
        )),
        "{metrics}"
    );
    // No new rotation starts on its own while the rollback is fresh.
    rotor.ok(&["run"]);
    assert_eq!(row_of(&rotor, &old)["phase"], "active");
    let plan: serde_json::Value = serde_json::from_str(&rotor.ok(&["plan", "--json"])).unwrap();
    let rotation = &plan["domains"][0]["rotations"][0]["step"];
    assert_eq!(rotation["gate"], "rolled-back", "{rotation}");
}

#[test]
fn reports_arrive_through_a_real_imap_mailbox_over_tls_and_are_moved_when_counted() {
    use rotor_testkit::dmarc::zip;
    use rotor_testkit::dovecot::{Dovecot, PASSWORD, USER};
    use std::os::unix::fs::PermissionsExt;

    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let imap = Dovecot::start_tls(&dir.path().join("dovecot"));
    let password = dir.path().join("imap.pass");
    fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    fs::set_permissions(&password, fs::Permissions::from_mode(0o600)).unwrap();
    rotor.edit_config(|config| {
        format!(
            "{config}reports:\n  - type: imap\n    host: 127.0.0.1\n    port: {port}\n    tls: implicit\n    ca_file: {ca}\n    user: {USER}\n    password_file: {pass}\n    processed: Processed\n",
            port = imap.tls_port.unwrap(),
            ca = imap.ca().display(),
            pass = password.display(),
        )
    });
    rotor.ok(&["check"]);
    rotor.run_until("a key active", |r| r.selector_in("active").is_some());
    let selector = rotor.selector_in("active").unwrap();

    let rows = [row(&selector, "pass", 120), row(&selector, "fail", 3)];
    let new = report(
        Format::Rfc9990,
        "google.com",
        "g-9",
        "example.com",
        today(),
        &rows,
    );
    let old = report(
        Format::Rfc7489,
        "yahoo.com",
        "y-9",
        "example.com",
        today(),
        &rows,
    );
    let zipped = zip("g-9.xml", new.as_bytes());
    imap.append(
        USER,
        "INBOX",
        &message("google.com", USER, "g-9.zip", "application/zip", &zipped),
    );
    imap.append(
        USER,
        "INBOX",
        &message(
            "yahoo.com",
            USER,
            "y-9.xml.gz",
            "application/gzip",
            &gzip(old.as_bytes()),
        ),
    );
    // The same Google report, sent twice; and a message that is not a report.
    imap.append(
        USER,
        "INBOX",
        &message("google.com", USER, "g-9.zip", "application/zip", &zipped),
    );
    imap.append(
        USER,
        "INBOX",
        b"From: someone@example.net\r\nSubject: hello\r\n\r\nnot a report\r\n",
    );

    let out = rotor.cmd(&["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("refused: a message without a DMARC report"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD));
    assert_eq!(imap.count(USER, "INBOX"), 0);
    assert_eq!(imap.count(USER, "Processed"), 4);

    let report: Vec<serde_json::Value> =
        serde_json::from_str(&rotor.ok(&["report", "example.com", "--json"])).unwrap();
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(
        report[0]["pass"], 240,
        "two reports, the duplicate once: {report:?}"
    );
    assert_eq!(report[0]["fail"], 6);
    assert_eq!(report[0]["phase"], "active");
    // The next pass reads nothing new.
    let again = rotor.cmd(&["run"]);
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).is_empty(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let status = rotor.ok(&["status"]);
    assert!(status.contains("[DMARC: 97.6% of 246 passed]"), "{status}");
}

#[test]
fn check_says_whether_the_dmarc_record_sends_reports_where_rotor_reads_them() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let inbox = dir.path().join("reports");
    monitored(&rotor, &inbox, "{}");
    rotor.edit_config(|config| format!("{config}    address: dmarc@example.com\n"));

    // No DMARC record yet: monitoring has no evidence, and check says so.
    let out = rotor.cmd(&["check"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("FAIL  example.com: DMARC record at _dmarc.example.com: none"),
        "{said}"
    );

    bind.plant(
        "_dmarc.example.com",
        "v=DMARC1; p=none; adkim=s; rua=mailto:dmarc@example.com,mailto:rua@reports.example.net",
    );
    wait_for(
        "the record on the secondary",
        Duration::from_secs(20),
        || !bind.secondary.txt("_dmarc.example.com").is_empty(),
    );
    let out = rotor.cmd(&["check"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("ok    example.com: DMARC rua= reaches a mailbox rotor reads"),
        "{said}"
    );
    assert!(
        said.contains("adkim=s: rotor signs with d=the domain itself"),
        "{said}"
    );

    // Reports sent to another domain's mailbox need that domain's authorization record.
    rotor.edit_config(|config| {
        config.replace(
            "address: dmarc@example.com",
            "address: rua@reports.example.net",
        )
    });
    let out = rotor.cmd(&["check"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(
            "FAIL  example.com: rua@reports.example.net is authorized to receive its reports"
        ),
        "{said}"
    );
}
