//! What only the Cloudflare adapter does, on the schema-checked double: ownership markers,
//! batches, paging, rate limits and retries, Cloudflare's error codes in rotor's errors.

mod common;

use std::time::Duration;

use common::Backend;
use common::cloudflare::{CloudflareBackend, adapter, quick_pace};
use rotor_providers::cloudflare::{MARKER, Pace};
use rotor_providers::{Change, DnsProvider, ProviderError, TxtValue, Zone};
use serde_json::json;

const NAME: &str = "sel._domainkey.example.com";

fn add(name: &str, value: &str) -> Change {
    Change::Add {
        name: name.into(),
        value: TxtValue::from_value(value),
        ttl: 300,
    }
}

async fn zone(double: &CloudflareBackend) -> Zone {
    double.adapter().find_zone(NAME).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn records_carry_the_marker_and_foreign_ones_are_never_deleted() {
    let double = CloudflareBackend::start();
    let zone = zone(&double).await;
    let value = "v=DKIM1; k=rsa; p=MIIBOURS";
    double
        .adapter()
        .apply(&zone, &[add(NAME, value)])
        .await
        .unwrap();
    let stored = double.records("example.com");
    let ours = stored.iter().find(|r| r["name"] == NAME).unwrap();
    assert_eq!(ours["comment"], MARKER);
    assert_eq!(ours["ttl"], 300);
    assert_eq!(ours["content"], format!("\"{value}\""));

    // The same value at another name, planted by hand: a delete there is refused.
    let other = "x._domainkey.example.com";
    double.plant(other, value);
    let delete = Change::Delete {
        name: other.into(),
        value: TxtValue::from_value(value),
    };
    let err = double.adapter().apply(&zone, &[delete]).await.unwrap_err();
    assert!(matches!(err, ProviderError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("ownership marker"), "{err}");
    assert_eq!(double.stored(other), [value]);
    double.verify();
}

#[tokio::test(flavor = "multi_thread")]
async fn many_changes_go_through_batches_and_listing_pages() {
    let double = CloudflareBackend::start();
    let zone = zone(&double).await;
    let changes: Vec<Change> = (0..250)
        .map(|i| {
            add(
                &format!("s{i}._domainkey.example.com"),
                &format!("v=DKIM1; p=K{i}"),
            )
        })
        .collect();
    double.adapter().apply(&zone, &changes).await.unwrap();
    let calls = double.calls();
    assert_eq!(
        calls["by_route"]["POST /zones/{zone_id}/dns_records/batch"], 2,
        "200 + 50 operations: {calls}"
    );
    assert_eq!(
        calls["by_route"]["POST /zones/{zone_id}/dns_records"],
        json!(null),
        "no single creates: {calls}"
    );
    assert_eq!(double.records("example.com").len(), 250);

    // Applying again reads the zone's 250 TXT records over three pages and writes nothing.
    let before = double.calls()["total"].as_u64().unwrap();
    double.adapter().apply(&zone, &changes).await.unwrap();
    let after = double.calls();
    assert_eq!(
        after["total"].as_u64().unwrap() - before,
        3,
        "three list pages: {after}"
    );
    double.verify();
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_and_server_errors_are_retried() {
    let double = CloudflareBackend::start();
    let zone = zone(&double).await;
    double.control(
        "POST",
        "/__control",
        Some(json!({"fail_next": [
            {"status": 429, "retry_after": 1, "code": 971, "message": "Please wait and consider throttling your request speed"},
            {"status": 503},
        ]})),
    );
    double
        .adapter()
        .apply(&zone, &[add(NAME, "v=DKIM1; p=RETRIED")])
        .await
        .unwrap();
    assert_eq!(double.stored(NAME), ["v=DKIM1; p=RETRIED"]);

    // When the limit does not lift, the error says so, with Cloudflare's code.
    let throttled: Vec<_> = (0..10)
        .map(|_| json!({"status": 429, "retry_after": 0, "code": 971, "message": "Please wait"}))
        .collect();
    double.control(
        "POST",
        "/__control",
        Some(json!({ "fail_next": throttled })),
    );
    let err = double.adapter().list_txt(&zone, NAME).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Temporary { .. }) && err.is_transient(),
        "{err}"
    );
    assert!(err.to_string().contains("[971] Please wait"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_api_times_out() {
    let double = CloudflareBackend::start();
    let zone = zone(&double).await;
    double.control("POST", "/__control", Some(json!({"delay_ms": 1500})));
    let impatient = adapter(
        double.port(),
        double.token(),
        Pace {
            timeout: Duration::from_millis(300),
            retries: 1,
            ..quick_pace()
        },
    );
    let err = impatient.list_txt(&zone, NAME).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_errors_carry_cloudflare_codes() {
    let double = CloudflareBackend::start();
    let err = adapter(double.port(), "wrong", quick_pace())
        .find_zone(NAME)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("[10000]"), "{err}");
}
