//! The Route53 adapter against moto's Route53 emulation (`moto_server`, PyPI `moto[server]`):
//! one server per test on a free 127.0.0.1 port, killed when the test ends.
//!
//! moto accepts any TXT text, makes every change INSYNC at once and does not check that a DELETE
//! matches the set's values: `route53_scripted.rs` covers what it cannot show.

#![cfg(feature = "route53")]

#[path = "support/route53.rs"]
mod support;

use std::process::Command;

use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    Change as SdkChange, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use rotor_providers::route53::{Route53, Route53Config};
use rotor_providers::{Change, DnsProvider, ProviderError, TxtValue, Zone};

use support::{Calls, Moto, SELECTOR, ZONE, create_zone, dkim_value, sdk_config};

/// Set in the environment of a child run of this binary: what the child checks.
const CHILD: &str = "ROTOR_ROUTE53_CHILD";

/// Creates a TXT set written by someone else: `values` as raw Route53 text.
async fn create_foreign(client: &Client, zone_id: &str, name: &str, values: &[&str]) {
    let records = values
        .iter()
        .map(|value| ResourceRecord::builder().value(*value).build().unwrap())
        .collect();
    let set = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::Txt)
        .ttl(3600)
        .set_resource_records(Some(records))
        .build()
        .unwrap();
    let change = SdkChange::builder()
        .action(ChangeAction::Create)
        .resource_record_set(set)
        .build()
        .unwrap();
    client
        .change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(ChangeBatch::builder().changes(change).build().unwrap())
        .send()
        .await
        .unwrap();
}

fn add(name: &str, value: &TxtValue) -> Change {
    Change::Add {
        name: name.to_string(),
        value: value.clone(),
        ttl: 300,
    }
}

fn delete(name: &str, value: &TxtValue) -> Change {
    Change::Delete {
        name: name.to_string(),
        value: value.clone(),
    }
}

fn lengths(value: &TxtValue) -> Vec<usize> {
    value.strings().iter().map(Vec::len).collect()
}

#[tokio::test]
async fn finds_the_longest_matching_zone_and_skips_private_ones() {
    let moto = Moto::start();
    let client = moto.client();
    let public = create_zone(&client, "example.com.", false).await;
    let private = create_zone(&client, "corp.example.com.", true).await;
    let calls = Calls::default();
    let route53 = moto.adapter(&calls);

    let expected = Zone {
        name: ZONE.to_string(),
        id: Some(public.clone()),
    };
    assert_eq!(route53.find_zone("example.com").await.unwrap(), expected);
    assert_eq!(route53.find_zone("Example.COM.").await.unwrap(), expected);
    assert_eq!(route53.find_zone(SELECTOR).await.unwrap(), expected);
    // The private zone is the longer suffix, but is skipped.
    let deep = "sel._domainkey.mail.corp.example.com";
    assert_eq!(route53.find_zone(deep).await.unwrap(), expected);
    route53.check(&expected).await.unwrap();

    let with_private = Route53::from_sdk_config(
        Route53Config {
            private_zones: true,
            ..Route53Config::new("route53-private")
        },
        sdk_config().endpoint_url(&moto.url),
    );
    let zone = with_private.find_zone(deep).await.unwrap();
    assert_eq!(zone.name, "corp.example.com");
    assert_eq!(zone.id, Some(private.clone()));

    match route53.find_zone("mail.example.org").await {
        Err(ProviderError::ZoneNotFound { name, .. }) => assert_eq!(name, "mail.example.org"),
        other => panic!("expected ZoneNotFound, got {other:?}"),
    }
    match route53.find_zone("x.corp.example.org").await {
        Err(ProviderError::ZoneNotFound { .. }) => {}
        other => panic!("expected ZoneNotFound, got {other:?}"),
    }

    // A configured zone id is read with GetHostedZone, and must hold the name.
    let configured = |zone_id: &str| {
        Route53::from_sdk_config(
            Route53Config {
                zone_id: Some(format!("/hostedzone/{zone_id}")),
                ..Route53Config::new("route53-configured")
            },
            sdk_config().endpoint_url(&moto.url),
        )
    };
    assert_eq!(
        configured(&public).find_zone(SELECTOR).await.unwrap(),
        expected
    );
    match configured(&private).find_zone(SELECTOR).await {
        Err(ProviderError::ZoneNotFound { detail, .. }) => {
            assert!(detail.contains("corp.example.com"), "{detail}");
        }
        other => panic!("expected ZoneNotFound, got {other:?}"),
    }
    match configured("ZNOSUCHZONE").find_zone(SELECTOR).await {
        Err(ProviderError::ZoneNotFound { detail, .. }) => {
            assert!(detail.contains("NoSuchHostedZone"), "{detail}");
        }
        other => panic!("expected ZoneNotFound, got {other:?}"),
    }

    // A zone named in rotor's config (no id) is looked up by name.
    let by_name = Zone {
        name: ZONE.to_string(),
        id: None,
    };
    route53.check(&by_name).await.unwrap();
    assert_eq!(route53.list_txt(&by_name, SELECTOR).await.unwrap(), []);
}

#[tokio::test]
async fn publishes_beside_other_values_and_deletes_only_its_own() {
    let moto = Moto::start();
    let client = moto.client();
    let zone_id = create_zone(&client, "example.com.", false).await;
    let neighbour = "other._domainkey.example.com";
    create_foreign(&client, &zone_id, SELECTOR, &[r#""note=not rotor's""#]).await;
    create_foreign(&client, &zone_id, neighbour, &[r#""v=DKIM1; p=neighbour""#]).await;
    let foreign = TxtValue::from_value("note=not rotor's");
    let neighbour_value = TxtValue::from_value("v=DKIM1; p=neighbour");
    let calls = Calls::default();
    let route53 = moto.adapter(&calls);
    let zone = route53.find_zone(SELECTOR).await.unwrap();

    // An RSA-2048 record: two strings, read back identical string by string.
    let key = TxtValue::from_value(&dkim_value(392));
    assert_eq!(lengths(&key), [255, 165]);
    route53.apply(&zone, &[add(SELECTOR, &key)]).await.unwrap();
    assert_eq!(calls.count("ChangeResourceRecordSets"), 1);
    let listed = route53.list_txt(&zone, SELECTOR).await.unwrap();
    assert_eq!(listed, [foreign.clone(), key.clone()]);
    assert_eq!(lengths(&listed[1]), [255, 165]);

    // The same add again changes nothing.
    route53.apply(&zone, &[add(SELECTOR, &key)]).await.unwrap();
    assert_eq!(calls.count("ChangeResourceRecordSets"), 1);
    assert_eq!(
        route53.list_txt(&zone, SELECTOR).await.unwrap(),
        [foreign.clone(), key.clone()]
    );

    // Revocation: the key replaced by an empty p= in one batch.
    let revoked = TxtValue::from_value("v=DKIM1; k=rsa; h=sha256; p=");
    let revoke = [delete(SELECTOR, &key), add(SELECTOR, &revoked)];
    route53.apply(&zone, &revoke).await.unwrap();
    assert_eq!(
        route53.list_txt(&zone, SELECTOR).await.unwrap(),
        [foreign.clone(), revoked.clone()]
    );

    // Deleting removes exactly that value; the other values stay.
    route53
        .apply(&zone, &[delete(SELECTOR, &revoked)])
        .await
        .unwrap();
    assert_eq!(
        route53.list_txt(&zone, SELECTOR).await.unwrap(),
        std::slice::from_ref(&foreign)
    );
    // Deleting a value that is not there changes nothing.
    let before = calls.count("ChangeResourceRecordSets");
    route53
        .apply(&zone, &[delete(SELECTOR, &key)])
        .await
        .unwrap();
    assert_eq!(calls.count("ChangeResourceRecordSets"), before);
    assert_eq!(
        route53.list_txt(&zone, neighbour).await.unwrap(),
        [neighbour_value]
    );

    // Alone at a name, rotor's value is created and then deleted with its whole set.
    let alone = "alone._domainkey.example.com";
    route53.apply(&zone, &[add(alone, &key)]).await.unwrap();
    assert_eq!(
        route53.list_txt(&zone, alone).await.unwrap(),
        std::slice::from_ref(&key)
    );
    route53.apply(&zone, &[delete(alone, &key)]).await.unwrap();
    assert_eq!(route53.list_txt(&zone, alone).await.unwrap(), []);
    assert_eq!(route53.list_txt(&zone, SELECTOR).await.unwrap(), [foreign]);
}

#[tokio::test]
async fn rsa_4096_records_round_trip() {
    let moto = Moto::start();
    create_zone(&moto.client(), "example.com.", false).await;
    let route53 = moto.adapter(&Calls::default());
    let zone = route53.find_zone(SELECTOR).await.unwrap();
    let key = TxtValue::from_value(&dkim_value(736));
    assert_eq!(lengths(&key), [255, 255, 254]);
    route53.apply(&zone, &[add(SELECTOR, &key)]).await.unwrap();
    let listed = route53.list_txt(&zone, SELECTOR).await.unwrap();
    assert_eq!(listed[0].joined(), dkim_value(736));
    assert_eq!(listed, [key]);
}

#[tokio::test]
async fn large_changes_are_split_into_batches_route53_accepts() {
    let moto = Moto::start();
    create_zone(&moto.client(), "example.com.", false).await;
    let calls = Calls::default();
    let route53 = moto.adapter(&calls);
    let zone = route53.find_zone(SELECTOR).await.unwrap();
    let name = |n: usize| format!("s{n}._domainkey.example.com");
    let value = |n: usize| TxtValue::from_value(&format!("v=DKIM1; p=k{n}"));
    let changes: Vec<Change> = (0..1_500).map(|n| add(&name(n), &value(n))).collect();

    route53.apply(&zone, &changes).await.unwrap();
    // 1,500 records: moto, like Route53, refuses more than 1,000 in one request.
    assert_eq!(calls.count("ChangeResourceRecordSets"), 2);
    for n in [0, 999, 1_000, 1_499] {
        assert_eq!(route53.list_txt(&zone, &name(n)).await.unwrap(), [value(n)]);
    }
    // Applying them again reads the zone and changes nothing.
    route53.apply(&zone, &changes).await.unwrap();
    assert_eq!(calls.count("ChangeResourceRecordSets"), 2);
}

/// `Route53::new` takes the endpoint and the credentials from the environment. The environment
/// is set only for a child run of this test (the same binary), so no test here changes the
/// environment of the process it runs in.
#[tokio::test]
async fn new_takes_endpoint_and_credentials_from_the_environment() {
    if let Ok(mode) = std::env::var(CHILD) {
        return child(&mode).await;
    }
    let moto = Moto::start();
    create_zone(&moto.client(), "example.com.", false).await;
    for (mode, endpoint_variable) in [
        ("endpoint", "AWS_ENDPOINT_URL_ROUTE_53"),
        ("endpoint", "AWS_ENDPOINT_URL"),
        ("no-credentials", "AWS_ENDPOINT_URL_ROUTE_53"),
    ] {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "new_takes_endpoint_and_credentials_from_the_environment",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD, mode)
            .env(endpoint_variable, &moto.url)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/nonexistent/rotor-test/config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/rotor-test/credentials",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for variable in [
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_ROUTE_53",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ] {
            if variable != endpoint_variable {
                command.env_remove(variable);
            }
        }
        if mode == "endpoint" {
            command
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing");
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "child run ({mode}, {endpoint_variable}) failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Variables set to nothing (as a systemd `EnvironmentFile` leaves `AWS_ENDPOINT_URL_ROUTE_53=`)
/// count as unset: the general endpoint is used, and no region means us-east-1 without asking
/// the instance metadata service (here a loopback listener that must see no connection).
#[tokio::test]
async fn empty_variables_are_unset_and_instance_metadata_is_not_asked() {
    if let Ok(mode) = std::env::var(CHILD) {
        return child(&mode).await;
    }
    let moto = Moto::start();
    create_zone(&moto.client(), "example.com.", false).await;
    let imds = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    imds.set_nonblocking(true).unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "empty_variables_are_unset_and_instance_metadata_is_not_asked",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, "endpoint")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://{}", imds.local_addr().unwrap()),
        )
        .env("AWS_CONFIG_FILE", "/nonexistent/rotor-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/rotor-test/credentials",
        )
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_EC2_METADATA_DISABLED");
    for empty in [
        "AWS_ENDPOINT_URL_ROUTE_53",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
    ] {
        command.env(empty, "");
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        imds.accept()
            .map(|(_, peer)| peer)
            .map_err(|err| err.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "the instance metadata service was asked"
    );
}

async fn child(mode: &str) {
    let config = Route53Config::new("route53-env");
    match mode {
        "endpoint" => {
            let route53 = Route53::new(config).await.unwrap();
            let zone = route53.find_zone(SELECTOR).await.unwrap();
            assert_eq!(zone.name, ZONE);
            route53.check(&zone).await.unwrap();
        }
        "no-credentials" => match Route53::new(config).await {
            Err(ProviderError::Auth { detail, .. }) => {
                assert!(detail.contains("AWS_ACCESS_KEY_ID"), "{detail}");
            }
            other => panic!("expected an Auth error, got {other:?}"),
        },
        other => panic!("unknown child mode {other}"),
    }
}
