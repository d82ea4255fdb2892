//! The RFC 2136 adapter against a real BIND: zone discovery, exact adds and deletes that leave
//! every other record alone, large keys, and each failure named for what it is.

mod support;

use std::path::Path;
use std::time::Duration;

use rotor_providers::rfc2136::{Rfc2136, Rfc2136Config, TsigKey};
use rotor_providers::{Change, DnsProvider, ProviderError, TxtValue, Zone};
use support::{Bind, Secondary, free_port, scratch};

fn adapter(server: u16, key: &Path) -> Rfc2136 {
    Rfc2136::new(Rfc2136Config {
        name: "bind".into(),
        server: format!("127.0.0.1:{server}").parse().unwrap(),
        tsig: Some(TsigKey::from_file(key).unwrap()),
        timeout: Duration::from_secs(3),
    })
}

fn zone(name: &str) -> Zone {
    Zone {
        name: name.into(),
        id: None,
    }
}

fn dkim(bytes: usize) -> String {
    format!("v=DKIM1; k=rsa; h=sha256; p={}", "A".repeat(bytes))
}

#[tokio::test(flavor = "multi_thread")]
async fn adds_and_deletes_exactly_and_leaves_the_rest() {
    let dir = scratch();
    let bind = Bind::start(dir.path(), Secondary::Notified);
    let dns = adapter(bind.primary.port, &bind.tsig_file);
    let name = "sel._domainkey.example.com";

    assert_eq!(dns.find_zone(name).await.unwrap(), zone("example.com"));
    let err = dns
        .find_zone("sel._domainkey.example.net")
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::ZoneNotFound { .. }), "{err}");
    dns.check(&zone("example.com")).await.unwrap();

    // A neighbour at the same name and a 2048-bit and 4096-bit-sized record.
    let neighbour = TxtValue::from_value("not a dkim record");
    let rsa2048 = TxtValue::from_value(&dkim(392));
    let rsa4096 = TxtValue::from_value(&dkim(736));
    let add = |value: &TxtValue| Change::Add {
        name: name.into(),
        value: value.clone(),
        ttl: 60,
    };
    dns.apply(&zone("example.com"), &[add(&neighbour)])
        .await
        .unwrap();
    dns.apply(&zone("example.com"), &[add(&rsa2048), add(&rsa4096)])
        .await
        .unwrap();
    // Applying the same add again changes nothing.
    dns.apply(&zone("example.com"), &[add(&rsa2048)])
        .await
        .unwrap();
    let mut listed = dns.list_txt(&zone("example.com"), name).await.unwrap();
    listed.sort_by_key(TxtValue::joined);
    let mut expected = vec![neighbour.clone(), rsa2048.clone(), rsa4096.clone()];
    expected.sort_by_key(TxtValue::joined);
    assert_eq!(listed, expected, "read back identical, string by string");
    assert_eq!(bind.primary.txt(name).len(), 3);

    // Deleting one exact value removes only it.
    let delete = Change::Delete {
        name: name.into(),
        value: rsa2048.clone(),
    };
    dns.apply(&zone("example.com"), std::slice::from_ref(&delete))
        .await
        .unwrap();
    dns.apply(&zone("example.com"), &[delete]).await.unwrap();
    let left: Vec<String> = dns
        .list_txt(&zone("example.com"), name)
        .await
        .unwrap()
        .iter()
        .map(TxtValue::joined)
        .collect();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&rsa2048.joined()));
    assert_eq!(bind.primary.txt("example.com"), ["v=spf1 -all"]);
    assert_eq!(bind.primary.txt("other._domainkey.example.com").len(), 1);
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
