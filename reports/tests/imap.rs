//! The IMAP report source against a real Dovecot on loopback (testkit's `dovecot`): what it
//! fetches, what `done` leaves in the mailboxes as a mail client sees them, and what it says
//! when the server is away, refuses the login, or shows a certificate it cannot verify.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rotor_reports::imap::{Imap, ImapSettings};
use rotor_reports::{Fetched, ReportError, Skipped, Source};
use rotor_testkit::dovecot::{self, Dovecot, PASSWORD, USER};
use rotor_testkit::{free_port, scratch_in, write_private};

/// A report message as it would arrive (CRLF line ends, as IMAP stores them).
fn message(n: usize, body_len: usize) -> Vec<u8> {
    let mut text = format!(
        "From: noreply-dmarc@google.com\r\nTo: {USER}\r\nSubject: Report domain: example.com Submitter: google.com Report-ID: {n}\r\nMessage-ID: <{n}@google.com>\r\n\r\n"
    );
    text.push_str(&"x".repeat(body_len));
    text.push_str("\r\n");
    text.into_bytes()
}

/// Settings as an operator writes them, with the password in `dir/password` (mode 0600).
fn settings(dir: &Path, password: &str, yaml: &str) -> ImapSettings {
    let file = dir.join("password");
    write_private(&file, format!("{password}\n"));
    let yaml = format!("user: {USER}\npassword_file: {}\n{yaml}", file.display());
    serde_yaml::from_str(&yaml).unwrap()
}

fn plain(dir: &Path, server: &Dovecot, extra: &str) -> Imap {
    let yaml = format!("host: 127.0.0.1\nport: {}\ntls: none\n{extra}", server.port);
    Imap::new(settings(dir, PASSWORD, &yaml)).unwrap()
}

fn fetched(results: Vec<Result<Fetched, Skipped>>) -> Vec<Fetched> {
    results
        .into_iter()
        .map(|result| result.expect("fetched, not skipped"))
        .collect()
}

#[tokio::test]
async fn fetch_returns_the_unseen_messages_with_their_ids_and_leaves_them_unseen() {
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    let server = Dovecot::start(&scratch.path().join("dovecot"));
    let (first, second) = (message(1, 100), message(2, 200));
    server.append(USER, "INBOX", &first);
    server.append(USER, "INBOX", &second);
    let source = plain(scratch.path(), &server, "");

    let got = fetched(source.fetch(rotor_reports::MAX_REPORT).await.unwrap());

    assert_eq!(
        got.iter().map(|f| f.bytes.clone()).collect::<Vec<_>>(),
        [first, second]
    );
    // `{uidvalidity}:{uid}`, the same mailbox generation, different messages.
    let ids: Vec<(u32, u32)> = got
        .iter()
        .map(|f| {
            let (validity, uid) = f.id.split_once(':').expect("validity:uid");
            (validity.parse().unwrap(), uid.parse().unwrap())
        })
        .collect();
    assert_eq!(ids[0].0, ids[1].0);
    assert_ne!(ids[0].1, ids[1].1);
    // BODY.PEEK[]: a person reading the mailbox still sees them as new.
    assert_eq!(server.seen(USER, "INBOX"), 0);
    assert_eq!(source.describe(), format!("imap {USER}@127.0.0.1"));
}

#[tokio::test]
async fn done_moves_the_messages_to_processed_which_is_created() {
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    let server = Dovecot::start(&scratch.path().join("dovecot"));
    for n in 0..3 {
        server.append(USER, "INBOX", &message(n, 10));
    }
    let source = plain(scratch.path(), &server, "processed: Reports.Done\n");
    let got = fetched(source.fetch(rotor_reports::MAX_REPORT).await.unwrap());
    assert_eq!(got.len(), 3);

    let ids: Vec<String> = got.iter().take(2).map(|f| f.id.clone()).collect();
    source.done(&ids).await.unwrap();

    assert_eq!(server.count(USER, "INBOX"), 1);
    assert_eq!(server.count(USER, "Reports.Done"), 2);
    let left = fetched(source.fetch(rotor_reports::MAX_REPORT).await.unwrap());
    assert_eq!(left, [got[2].clone()]);
    // The mailbox exists now: the next move goes into it too.
    source.done(&[got[2].id.clone()]).await.unwrap();
    assert_eq!(server.count(USER, "INBOX"), 0);
    assert_eq!(server.count(USER, "Reports.Done"), 3);
}

#[tokio::test]
async fn without_move_done_copies_deletes_and_expunges() {
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    let config = dovecot::Config {
        imap_capability: Some("IMAP4rev1 LITERAL+ UIDPLUS".into()),
        ..dovecot::Config::default()
    };
    let server = Dovecot::with_config(&scratch.path().join("dovecot"), &config);
    server.append(USER, "INBOX", &message(1, 10));
    server.append(USER, "INBOX", &message(2, 10));
    let source = plain(scratch.path(), &server, "processed: Processed\n");
    let got = fetched(source.fetch(rotor_reports::MAX_REPORT).await.unwrap());

    source.done(&[got[0].id.clone()]).await.unwrap();

    assert_eq!(server.count(USER, "INBOX"), 1);
    assert_eq!(server.count(USER, "Processed"), 1);
    assert_eq!(
        fetched(source.fetch(rotor_reports::MAX_REPORT).await.unwrap()),
        [got[1].clone()]
    );
}

#[tokio::test]
async fn without_processed_done_flags_them_seen_and_the_next_fetch_skips_them() {
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    let server = Dovecot::start(&scratch.path().join("dovecot"));
    server.append(USER, "INBOX", &message(1, 10));
    server.append(USER, "INBOX", &message(2, 10));
    let source = plain(scratch.path(), &server, "");
    let got = fetched(source.fetch(rotor_reports::MAX_REPORT).await.unwrap());

    let ids: Vec<String> = got.iter().map(|f| f.id.clone()).collect();
    source.done(&ids).await.unwrap();

    assert_eq!(server.count(USER, "INBOX"), 2);
    assert_eq!(server.seen(USER, "INBOX"), 2);
    assert!(
        source
            .fetch(rotor_reports::MAX_REPORT)
            .await
            .unwrap()
            .is_empty()
    );
    // A report arriving later is the only one fetched.
    let third = message(3, 10);
    server.append(USER, "INBOX", &third);
    let got = fetched(source.fetch(rotor_reports::MAX_REPORT).await.unwrap());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].bytes, third);
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_skipped_and_says_its_size() {
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    let server = Dovecot::start(&scratch.path().join("dovecot"));
    let (small, large) = (message(1, 100), message(2, 5000));
    server.append(USER, "INBOX", &small);
    server.append(USER, "INBOX", &large);
    let source = plain(scratch.path(), &server, "mailbox: INBOX\n");

    let got = source.fetch(1000).await.unwrap();

    assert_eq!(got.len(), 2);
    assert_eq!(got[0].as_ref().unwrap().bytes, small);
    let skipped = got[1].as_ref().unwrap_err();
    assert!(
        skipped.reason.contains(&format!("{} bytes", large.len()))
            && skipped.reason.contains("1000"),
        "{skipped:?}"
    );
    assert!(skipped.id.contains(':'), "{skipped:?}");
    // Skipped is not processed: it stays, unseen, for a person to look at.
    assert_eq!(server.seen(USER, "INBOX"), 0);
}

#[tokio::test]
async fn a_wrong_password_is_refused_without_showing_it() {
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    let server = Dovecot::start(&scratch.path().join("dovecot"));
    let wrong = "wrong-pass-Kx81";
    let yaml = format!("host: 127.0.0.1\nport: {}\ntls: none\n", server.port);
    let source = Imap::new(settings(scratch.path(), wrong, &yaml)).unwrap();

    let err = source.fetch(rotor_reports::MAX_REPORT).await.unwrap_err();

    assert!(matches!(err, ReportError::Refused(_)), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(text.contains(USER), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", server.port)),
        "{text}"
    );
    assert!(!text.contains(wrong), "{text}");
}

/// Every `log` line of this test binary (async-imap logs each command at trace level).
fn log_lines() -> &'static std::sync::Mutex<Vec<String>> {
    struct Capture;
    static LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            LINES
                .lock()
                .unwrap()
                .push(format!("{}: {}", record.target(), record.args()));
        }
        fn flush(&self) {}
    }
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        log::set_boxed_logger(Box::new(Capture)).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
    &LINES
}

#[tokio::test]
async fn the_password_is_in_no_log_line_even_at_trace_level() {
    let lines = log_lines();
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    let server = Dovecot::start(&scratch.path().join("dovecot"));
    server.append(USER, "INBOX", &message(1, 10));
    let source = plain(scratch.path(), &server, "");

    assert_eq!(
        source.fetch(rotor_reports::MAX_REPORT).await.unwrap().len(),
        1
    );

    let lines = lines.lock().unwrap();
    let login: Vec<&String> = lines.iter().filter(|line| line.contains("LOGIN")).collect();
    assert!(!login.is_empty(), "async-imap logged no LOGIN: {lines:?}");
    assert!(
        lines.iter().all(|line| !line.contains(PASSWORD)),
        "{login:?}"
    );
}

#[tokio::test]
async fn a_missing_mailbox_is_refused_and_named() {
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    let server = Dovecot::start(&scratch.path().join("dovecot"));
    let source = plain(scratch.path(), &server, "mailbox: DMARC\n");

    let err = source.fetch(rotor_reports::MAX_REPORT).await.unwrap_err();

    assert!(matches!(err, ReportError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("DMARC"), "{err}");
}

#[tokio::test]
async fn no_server_is_unreachable() {
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    let port = free_port();
    let yaml = format!("host: 127.0.0.1\nport: {port}\ntls: none\n");
    let source = Imap::new(settings(scratch.path(), PASSWORD, &yaml)).unwrap();

    let err = source.fetch(rotor_reports::MAX_REPORT).await.unwrap_err();

    assert!(matches!(err, ReportError::Unreachable(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("{USER} at 127.0.0.1:{port}")),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
}

#[tokio::test]
async fn a_server_that_never_greets_times_out() {
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    // Accepts connections (the kernel's backlog) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let yaml = format!("host: 127.0.0.1\nport: {port}\ntls: none\ntimeout: 1s\n");
    let source = Imap::new(settings(scratch.path(), PASSWORD, &yaml)).unwrap();

    let err = source.fetch(rotor_reports::MAX_REPORT).await.unwrap_err();

    assert!(matches!(err, ReportError::Unreachable(_)), "{err:?}");
    assert!(err.to_string().contains("no answer within 1s"), "{err}");
}

#[tokio::test]
async fn implicit_tls_to_a_certificate_of_an_unknown_ca_fails_verification() {
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    let server = Dovecot::start_tls(&scratch.path().join("dovecot"));
    server.append(USER, "INBOX", &message(1, 10));
    let yaml = format!("host: 127.0.0.1\nport: {}\n", server.tls_port.unwrap());
    let source = Imap::new(settings(scratch.path(), PASSWORD, &yaml)).unwrap();

    let err = source.fetch(rotor_reports::MAX_REPORT).await.unwrap_err();

    assert!(matches!(err, ReportError::Refused(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("certificate failed verification"), "{text}");
    assert!(text.contains("ca_file"), "{text}");
}

#[tokio::test]
async fn with_the_private_ca_as_ca_file_implicit_tls_and_starttls_work() {
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    let server = Dovecot::start_tls(&scratch.path().join("dovecot"));
    let report = message(1, 10);
    server.append(USER, "INBOX", &report);
    let ca = server.ca();
    for (tls, port) in [
        ("implicit", server.tls_port.unwrap()),
        ("starttls", server.port),
    ] {
        for host in ["127.0.0.1", "localhost"] {
            let yaml = format!(
                "host: {host}\nport: {port}\ntls: {tls}\nca_file: {}\n",
                ca.display()
            );
            let source = Imap::new(settings(scratch.path(), PASSWORD, &yaml)).unwrap();
            let got = source.fetch(rotor_reports::MAX_REPORT).await;
            let got = got.unwrap_or_else(|err| panic!("{tls} to {host}: {err}"));
            assert_eq!(fetched(got)[0].bytes, report, "{tls} to {host}");
        }
    }
}

#[test]
fn tls_none_is_refused_unless_the_server_is_on_this_machine() {
    let scratch = tempfile::tempdir().unwrap();
    for host in ["imap.example.com", "192.0.2.1", "::ffff:192.0.2.1"] {
        let yaml = format!("host: \"{host}\"\ntls: none\n");
        let err = Imap::new(settings(scratch.path(), PASSWORD, &yaml))
            .err()
            .unwrap_or_else(|| panic!("{host} accepted"));
        assert!(matches!(err, ReportError::Setting(_)), "{err:?}");
        assert!(err.to_string().contains("clear text"), "{err}");
        assert!(err.to_string().contains(host), "{err}");
    }
    for host in ["127.0.0.1", "::1", "localhost"] {
        let yaml = format!("host: \"{host}\"\ntls: none\n");
        assert!(
            Imap::new(settings(scratch.path(), PASSWORD, &yaml)).is_ok(),
            "{host}"
        );
    }
    let err = Imap::new(settings(scratch.path(), PASSWORD, "host: h\ntls: ssl\n"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("tls: ssl"), "{err}");
}

#[test]
fn the_password_source_is_checked_at_new() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("open-password");
    std::fs::write(&file, PASSWORD).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let yaml = format!(
        "host: imap.example.com\nuser: {USER}\npassword_file: {}\n",
        file.display()
    );
    let err = Imap::new(serde_yaml::from_str(&yaml).unwrap())
        .err()
        .unwrap();
    assert!(err.to_string().contains("chmod 600"), "{err}");
    assert!(!err.to_string().contains(PASSWORD), "{err}");

    let yaml = format!(
        "host: imap.example.com\nuser: {USER}\npassword_env: ROTOR_TEST_IMAP_PASSWORD_UNSET\n"
    );
    let err = Imap::new(serde_yaml::from_str(&yaml).unwrap())
        .err()
        .unwrap();
    assert!(matches!(err, ReportError::Setting(_)), "{err:?}");
    assert!(
        err.to_string().contains("ROTOR_TEST_IMAP_PASSWORD_UNSET"),
        "{err}"
    );
}

#[tokio::test]
async fn starttls_to_a_server_without_tls_is_refused_not_downgraded() {
    let scratch = scratch_in(env!("CARGO_TARGET_TMPDIR"));
    let server = Dovecot::start(&scratch.path().join("dovecot"));
    let yaml = format!("host: 127.0.0.1\nport: {}\ntls: starttls\n", server.port);
    let source = Imap::new(settings(scratch.path(), PASSWORD, &yaml)).unwrap();

    let err = source.fetch(rotor_reports::MAX_REPORT).await.unwrap_err();

    assert!(matches!(err, ReportError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("does not offer STARTTLS"), "{err}");
    // It never logged in: no password crossed the wire in clear.
    assert!(!server.log().contains("Login: user="), "{}", server.log());
}
