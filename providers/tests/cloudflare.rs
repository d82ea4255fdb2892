//! What only the Cloudflare adapter does, on the schema-checked double: ownership markers,
//! batches, paging, rate limits and retries, Cloudflare's error codes in rotor's errors.

mod common;

use std::time::Duration;

use common::Backend;
use common::cloudflare::{CloudflareBackend, adapter, quick_pace};
use rotor_providers::cloudflare::{MARKER, Pace};
use rotor_providers::{Change, DnsProvider, ProviderError, TxtValue, Zone};
use rotor_testkit::cloudflare::TOKEN;
use rotor_testkit::http::{Reply, ScriptedHttp};
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

/// A zone known by id, so that a call goes straight to its records.
fn known_zone() -> Zone {
    Zone {
        name: "example.com".into(),
        id: Some("z".into()),
    }
}

/// Runs `call`, failing the test if it has not ended within a minute (a stalled pass).
async fn bounded<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the call ends instead of stalling the pass")
}

/// An answer of `Retry-After: 86400` (hostile or buggy) is obeyed for at most
/// `max_retry_after`, so the call gives up after its retries instead of sleeping a day.
#[tokio::test(flavor = "multi_thread")]
async fn an_absurd_retry_after_is_cut_to_the_cap() {
    let api = ScriptedHttp::start(|_| {
        Reply::json(
            429,
            &json!({"success": false, "errors": [{"code": 971, "message": "Please wait"}]}),
        )
        .header("Retry-After", "86400")
    });
    let pace = Pace {
        retries: 3,
        max_retry_after: Duration::from_millis(100),
        ..quick_pace()
    };
    let cloudflare = adapter(api.port, TOKEN, pace);
    let err = bounded(cloudflare.list_txt(&known_zone(), NAME))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Temporary { retry_after: Some(asked), .. } if asked.as_secs() == 86400),
        "{err:?}"
    );
    assert_eq!(api.requests(), 4, "the first try and three retries");
}

/// However many retries are allowed, one call stops retrying once its retry budget is spent.
#[tokio::test(flavor = "multi_thread")]
async fn retries_stop_when_the_budget_is_spent() {
    let api = ScriptedHttp::start(|_| Reply::json(503, &json!({"success": false})));
    let pace = Pace {
        retries: 1_000,
        backoff: Duration::from_millis(10),
        retry_budget: Duration::from_millis(500),
        ..quick_pace()
    };
    let cloudflare = adapter(api.port, TOKEN, pace);
    let err = bounded(cloudflare.list_txt(&known_zone(), NAME))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(api.requests() < 20, "{} requests", api.requests());
}

/// A listing that never ends (`total_pages` always one more) stops at `max_pages`, and one that
/// serves the same page whatever is asked stops at once, each with an error saying so.
#[tokio::test(flavor = "multi_thread")]
async fn a_listing_that_never_ends_is_an_error() {
    let page = |request: &rotor_testkit::http::Request| -> u64 {
        request
            .query("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
    };
    let growing = ScriptedHttp::start(move |request| {
        let page = page(request);
        Reply::json(
            200,
            &json!({"success": true, "errors": [], "result": [],
                    "result_info": {"page": page, "total_pages": page + 1}}),
        )
    });
    let pace = Pace {
        max_pages: 5,
        ..quick_pace()
    };
    let err = bounded(adapter(growing.port, TOKEN, pace.clone()).list_txt(&known_zone(), NAME))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Protocol { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("GET /zones/z/dns_records: the listing did not end after 5 pages"),
        "{err}"
    );
    assert_eq!(growing.requests(), 5);

    let stuck = ScriptedHttp::start(|_| {
        Reply::json(
            200,
            &json!({"success": true, "errors": [], "result": [],
                    "result_info": {"page": 1, "total_pages": 2}}),
        )
    });
    let err = bounded(adapter(stuck.port, TOKEN, pace).list_txt(&known_zone(), NAME))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("asked for page 2, the API answered page 1"),
        "{err}"
    );
    assert_eq!(stuck.requests(), 2);
}

/// An answer larger than `max_body` is refused, with or without a `Content-Length`, by an error
/// naming the endpoint.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_answer_is_refused() {
    for sized in [true, false] {
        let api = ScriptedHttp::start(move |_| Reply::filler(3 << 20, sized));
        let pace = Pace {
            max_body: 1 << 20,
            ..quick_pace()
        };
        let err = bounded(adapter(api.port, TOKEN, pace).list_txt(&known_zone(), NAME))
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Protocol { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("GET /zones/z/dns_records: the answer is larger than 1048576 bytes"),
            "sized {sized}: {err}"
        );
        assert_eq!(api.requests(), 1, "not retried");
    }
}
