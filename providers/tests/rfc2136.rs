//! What only the RFC 2136 adapter does, against a real BIND: REFUSED, NOTAUTH and TSIG failures
//! named for what they are. (What every adapter does is in `conformance.rs`.)

mod common;

use std::path::Path;

use common::bind::BindBackend;
use common::{Backend, scratch};
use rotor_providers::rfc2136::Rfc2136;
use rotor_providers::{Change, DnsProvider, ProviderError, TxtValue, Zone};
use rotor_testkit::{Bind, Secondary, free_port};

fn add(name: &str, value: &str) -> Change {
    Change::Add {
        name: name.into(),
        value: TxtValue::from_value(value),
        ttl: 60,
    }
}

fn adapter(server: u16, key: &Path) -> Rfc2136 {
    common::rfc2136_adapter("bind", server, key)
}

fn zone(name: &str) -> Zone {
    Zone {
        name: name.into(),
        id: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_say_what_they_are() {
    let dir = scratch();
    let bind = Bind::start(dir.path(), Secondary::Notified);
    let example = zone("example.com");
    let add = [Change::Add {
        name: "x._domainkey.example.com".into(),
        value: TxtValue::from_value("v=DKIM1; p=A"),
        ttl: 60,
    }];

    // A key the server knows, but the zone's update-policy does not grant.
    let stranger = adapter(bind.primary.port, &dir.path().join("stranger.key"));
    let err = stranger
        .apply(&example, &add)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("REFUSED") && err.contains("example.com"),
        "{err}"
    );

    // A zone the server does not serve.
    let dns = adapter(bind.primary.port, &bind.tsig_file);
    let elsewhere = [Change::Add {
        name: "x._domainkey.example.net".into(),
        value: TxtValue::from_value("v=DKIM1; p=A"),
        ttl: 60,
    }];
    let err = dns
        .apply(&zone("example.net"), &elsewhere)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("NOTAUTH"), "{err}");
    let err = dns
        .list_txt(&zone("example.net"), "x._domainkey.example.net")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("REFUSED") && err.contains("authoritative"),
        "{err}"
    );

    // The right key name with a wrong secret.
    let wrong = dir.path().join("wrong.key");
    std::fs::write(&wrong, "key \"rotor-key\" { algorithm hmac-sha256; secret \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\"; };").unwrap();
    let err = adapter(bind.primary.port, &wrong)
        .apply(&example, &add)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Auth { .. }), "{err}");
    assert!(
        err.to_string().contains("TSIG authentication failed"),
        "{err}"
    );
    let err = adapter(bind.primary.port, &wrong)
        .check(&example)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Auth { .. }), "{err}");

    // Nobody listening.
    let err = adapter(free_port(), &bind.tsig_file)
        .apply(&example, &add)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Unreachable { .. }) && err.is_transient(),
        "{err}"
    );
    assert_eq!(
        bind.primary.txt("x._domainkey.example.com"),
        Vec::<String>::new(),
        "nothing was written"
    );
}

/// A value someone else adds between rotor's listing and its update makes the update fail as a
/// conflict, and nothing of it is applied: at an empty name ("RRset does not exist"), and at a
/// name whose values were read ("RRset exists (value dependent)").
#[tokio::test(flavor = "multi_thread")]
async fn a_change_by_someone_else_since_the_listing_is_a_conflict() {
    let backend = BindBackend::start();
    let dns = backend.adapter();
    let example = dns.find_zone("example.com").await.unwrap();
    let fresh = "new._domainkey.example.com".to_string();
    let held = "old._domainkey.example.com".to_string();
    dns.apply(&example, &[add(&held, "v=DKIM1; p=OLD")])
        .await
        .unwrap();
    let names = [fresh.clone(), held.clone()];
    let read = dns.list_txt_many(&example, &names).await.unwrap();
    assert_eq!(read[&fresh], []);

    backend.plant(&fresh, "v=DKIM1; p=THEIRS");
    backend.plant(&held, "v=DKIM1; p=THEIRS-TOO");
    // One batch over both names, as a revocation beside a publication would be.
    let changes = [
        add(&fresh, "v=DKIM1; p=OURS"),
        Change::Delete {
            name: held.clone(),
            value: TxtValue::from_value("v=DKIM1; p=OLD"),
        },
        add(&held, "v=DKIM1; p="),
    ];
    let err = dns
        .apply_if_unchanged(&example, &changes, &read)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Conflict { .. }), "{err:?}");
    assert!(!err.is_transient(), "{err}");
    assert!(
        err.to_string().contains("changed since rotor read them"),
        "{err}"
    );
    assert_eq!(backend.stored(&fresh), ["v=DKIM1; p=THEIRS"]);
    let mut held_values = backend.stored(&held);
    held_values.sort();
    assert_eq!(held_values, ["v=DKIM1; p=OLD", "v=DKIM1; p=THEIRS-TOO"]);

    // Read again, the same batch goes through, beside the other values.
    let read = dns.list_txt_many(&example, &names).await.unwrap();
    dns.apply_if_unchanged(&example, &changes, &read)
        .await
        .unwrap();
    let mut fresh_values = backend.stored(&fresh);
    fresh_values.sort();
    assert_eq!(fresh_values, ["v=DKIM1; p=OURS", "v=DKIM1; p=THEIRS"]);
    let mut held_values = backend.stored(&held);
    held_values.sort();
    assert_eq!(held_values, ["v=DKIM1; p=", "v=DKIM1; p=THEIRS-TOO"]);
}
