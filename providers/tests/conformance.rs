//! One suite, every adapter: what rotor relies on from a DNS provider, checked the same way
//! against RFC 2136 on a real BIND and a real Knot, Cloudflare on its schema-checked double,
//! Route53 on moto, and PowerDNS (through the `dns-update` family) on a real server.

mod common;

use common::Backend;
use common::pdns::PdnsBackend;
use rotor_providers::adapter::Proof;
use rotor_providers::{Change, ProviderError, TxtValue, Zone};

const NAME: &str = "sel._domainkey.example.com";

/// A DKIM record value as long as an RSA key of `bits` makes it.
fn dkim(bits: usize) -> String {
    let p = match bits {
        2048 => 392,
        4096 => 736,
        other => panic!("no size for {other}"),
    };
    format!("v=DKIM1; k=rsa; h=sha256; p=MII{}", "A".repeat(p - 3))
}

fn add(name: &str, value: &str) -> Change {
    Change::Add {
        name: name.into(),
        value: TxtValue::from_value(value),
        ttl: 60,
    }
}

fn delete(name: &str, value: &str) -> Change {
    Change::Delete {
        name: name.into(),
        value: TxtValue::from_value(value),
    }
}

async fn zone(backend: &dyn Backend) -> Zone {
    let zone = backend.adapter().find_zone(NAME).await.unwrap();
    assert_eq!(zone.name, "example.com");
    zone
}

async fn listed(backend: &dyn Backend, zone: &Zone, name: &str) -> Vec<String> {
    let mut values: Vec<String> = backend
        .adapter()
        .list_txt(zone, name)
        .await
        .unwrap()
        .iter()
        .map(TxtValue::joined)
        .collect();
    values.sort();
    values
}

/// A 2048-bit record is created, read back identical, and stored as the provider should.
async fn creates_and_reads_back(backend: &dyn Backend) {
    let zone = zone(backend).await;
    let value = dkim(2048);
    backend
        .adapter()
        .apply(&zone, &[add(NAME, &value)])
        .await
        .unwrap();
    let values = backend.adapter().list_txt(&zone, NAME).await.unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].joined(), value);
    assert!(values[0].strings().iter().all(|s| s.len() <= 255));
    assert_eq!(backend.stored(NAME), [value]);
}

/// Applying the same change again changes nothing.
async fn a_second_run_changes_nothing(backend: &dyn Backend) {
    let zone = zone(backend).await;
    let value = dkim(2048);
    for _ in 0..2 {
        backend
            .adapter()
            .apply(&zone, &[add(NAME, &value)])
            .await
            .unwrap();
    }
    assert_eq!(backend.stored(NAME), std::slice::from_ref(&value));
    for _ in 0..2 {
        backend
            .adapter()
            .apply(&zone, &[delete(NAME, &value)])
            .await
            .unwrap();
    }
    assert!(backend.stored(NAME).is_empty());
}

/// Other TXT records at the same name and at nearby names survive every operation.
async fn neighbours_survive(backend: &dyn Backend) {
    let neighbours = [
        (NAME, "someone else's note"),
        ("_domainkey.example.com", "o=~"),
        ("old._domainkey.example.com", "v=DKIM1; k=rsa; p=MIGfOTHER"),
        ("sel._domainkey.example.org", "v=DKIM1; k=rsa; p=MIGfORG"),
    ];
    for (name, value) in neighbours {
        backend.plant(name, value);
    }
    let zone = zone(backend).await;
    let ours = dkim(2048);
    backend
        .adapter()
        .apply(&zone, &[add(NAME, &ours)])
        .await
        .unwrap();
    assert_eq!(
        listed(backend, &zone, NAME).await,
        ["someone else's note".to_string(), ours.clone()]
    );
    backend
        .adapter()
        .apply(&zone, &[delete(NAME, &ours)])
        .await
        .unwrap();
    for (name, value) in neighbours {
        assert_eq!(backend.stored(name), [value], "{name}");
    }
}

/// Deleting one exact value removes it and only it; a value nobody published deletes nothing.
async fn deletes_exactly(backend: &dyn Backend) {
    let zone = zone(backend).await;
    let (old, new) = (dkim(2048), dkim(2048).replace("MIIA", "MIIB"));
    backend
        .adapter()
        .apply(&zone, &[add(NAME, &old), add(NAME, &new)])
        .await
        .unwrap();
    backend
        .adapter()
        .apply(&zone, &[delete(NAME, &old)])
        .await
        .unwrap();
    assert_eq!(backend.stored(NAME), std::slice::from_ref(&new));
    backend
        .adapter()
        .apply(&zone, &[delete(NAME, "v=DKIM1; p=never-published")])
        .await
        .unwrap();
    assert_eq!(backend.stored(NAME), [new]);
}

/// One batch can swap a record for another (what a revocation does).
async fn swaps_in_one_batch(backend: &dyn Backend) {
    let zone = zone(backend).await;
    let key = dkim(2048);
    let revoked = "v=DKIM1; k=rsa; h=sha256; p=";
    backend
        .adapter()
        .apply(&zone, &[add(NAME, &key)])
        .await
        .unwrap();
    backend
        .adapter()
        .apply(&zone, &[delete(NAME, &key), add(NAME, revoked)])
        .await
        .unwrap();
    assert_eq!(backend.stored(NAME), [revoked]);
}

/// A 4096-bit key's record round-trips.
async fn a_4096_bit_record_round_trips(backend: &dyn Backend) {
    let zone = zone(backend).await;
    let value = dkim(4096);
    backend
        .adapter()
        .apply(&zone, &[add(NAME, &value)])
        .await
        .unwrap();
    assert_eq!(
        listed(backend, &zone, NAME).await,
        std::slice::from_ref(&value)
    );
    assert_eq!(backend.stored(NAME), [value]);
}

/// Hundreds of records in one apply (more than one DNS message or API batch holds) all land,
/// and all go.
async fn many_changes_in_one_apply(backend: &dyn Backend) {
    let zone = zone(backend).await;
    let names: Vec<String> = (0..300)
        .map(|i| format!("s{i}._domainkey.example.com"))
        .collect();
    let value = dkim(2048);
    let adds: Vec<Change> = names.iter().map(|name| add(name, &value)).collect();
    backend.adapter().apply(&zone, &adds).await.unwrap();
    let found = backend
        .adapter()
        .list_txt_many(&zone, &names)
        .await
        .unwrap();
    assert_eq!(found.len(), names.len());
    assert!(
        found
            .values()
            .all(|values| values.len() == 1 && values[0].joined() == value)
    );
    assert_eq!(
        backend.stored("s299._domainkey.example.com"),
        std::slice::from_ref(&value)
    );
    let deletes: Vec<Change> = names.iter().map(|name| delete(name, &value)).collect();
    backend.adapter().apply(&zone, &deletes).await.unwrap();
    assert!(backend.stored("s0._domainkey.example.com").is_empty());
    assert!(backend.stored("s299._domainkey.example.com").is_empty());
}

/// Changes decided on a listing that is still current apply, beside a neighbour's value.
async fn applies_on_a_current_listing(backend: &dyn Backend) {
    let zone = zone(backend).await;
    let fresh = "fresh._domainkey.example.com".to_string();
    backend.plant(NAME, "v=DKIM1; p=neighbour");
    let names = [NAME.to_string(), fresh.clone()];
    let read = backend
        .adapter()
        .list_txt_many(&zone, &names)
        .await
        .unwrap();
    let changes = [add(NAME, &dkim(2048)), add(&fresh, &dkim(2048))];
    backend
        .adapter()
        .apply_if_unchanged(&zone, &changes, &read)
        .await
        .unwrap();
    assert_eq!(
        listed(backend, &zone, NAME).await,
        [dkim(2048), "v=DKIM1; p=neighbour".to_string()]
    );
    assert_eq!(backend.stored(&fresh), [dkim(2048)]);
}

/// Zones are found for deep names; a name in no zone is a clear error.
async fn finds_zones(backend: &dyn Backend) {
    let deep = backend
        .adapter()
        .find_zone("a.b.sel._domainkey.example.org")
        .await
        .unwrap();
    assert_eq!(deep.name, "example.org");
    let err = backend
        .adapter()
        .find_zone("sel._domainkey.example.net")
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::ZoneNotFound { .. }), "{err}");
}

/// Bad credentials and an unreachable provider are errors of their kind, and write nothing.
async fn failures_are_named(backend: &dyn Backend) {
    let zone = zone(backend).await;
    let change = [add(NAME, &dkim(2048))];
    if let Some(refused) = backend.bad_credentials() {
        let err = refused.apply(&zone, &change).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::Auth { .. }) && !err.is_transient(),
            "{err}"
        );
        let err = refused.check(&zone).await.unwrap_err();
        assert!(matches!(err, ProviderError::Auth { .. }), "{err}");
    }
    let err = backend
        .unreachable()
        .apply(&zone, &change)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Unreachable { .. }) && err.is_transient(),
        "{err}"
    );
    assert!(backend.stored(NAME).is_empty());
    backend.adapter().check(&zone).await.unwrap();
}

/// Runs every case against each backend of the table (`module: "config type" => start,`), each
/// case a test of its own, and checks the table against the registry's catalogue.
macro_rules! conformance {
    ($($backend:ident: $config_type:literal => $start:expr,)*) => {
        /// The config types the suite runs against.
        const SUITE: &[&str] = &[$($config_type),*];
        $(
            mod $backend {
                use super::*;
                conformance!(@cases $start;
                    creates_and_reads_back, a_second_run_changes_nothing, neighbours_survive,
                    deletes_exactly, swaps_in_one_batch, a_4096_bit_record_round_trips,
                    many_changes_in_one_apply, applies_on_a_current_listing, finds_zones,
                    failures_are_named);
            }
        )*
    };
    (@cases $start:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $case() {
                let backend = $start;
                super::$case(&backend).await;
                backend.verify();
            }
        )*
    };
}

conformance! {
    rfc2136_bind: "rfc2136" => common::bind::BindBackend::start(),
    cloudflare_double: "cloudflare" => common::cloudflare::CloudflareBackend::start(),
    route53_moto: "route53" => common::route53::Route53Backend::start().await,
    powerdns_dns_update: "dns-update/powerdns" => common::pdns::PdnsBackend::start(),
    rfc2136_knot: "rfc2136" => common::knot::KnotBackend::start(),
}

/// What `rotor providers` and the README say proves a provider is this suite: every provider the
/// catalogue calls proven by a real server or a contract double has a line in the table above,
/// and every line is a provider of the catalogue.
#[test]
fn the_table_runs_every_provider_the_catalogue_calls_proven() {
    let catalogue = rotor_providers::registry::catalogue();
    for info in &catalogue {
        let proven = !matches!(info.proven_by, Proof::LibraryOnly);
        assert_eq!(
            SUITE.contains(&info.config_type),
            proven,
            "{}: proven by {:?}, so it {} a line in the conformance table",
            info.config_type,
            info.proven_by,
            if proven { "needs" } else { "must not have" }
        );
    }
    for config_type in SUITE {
        assert!(
            catalogue
                .iter()
                .any(|info| info.config_type == *config_type),
            "{config_type} is not in the registry's catalogue"
        );
    }
}

/// A host with no conditional write (PowerDNS through `dns-update`) lists again before a
/// conditional change: a value someone else added after rotor's listing stops the change.
#[tokio::test(flavor = "multi_thread")]
async fn powerdns_refuses_changes_decided_on_a_stale_listing() {
    let backend = PdnsBackend::start();
    let zone = zone(&backend).await;
    let names = [NAME.to_string()];
    let read = backend
        .adapter()
        .list_txt_many(&zone, &names)
        .await
        .unwrap();
    backend.plant(NAME, "v=DKIM1; p=someone-else");
    let err = backend
        .adapter()
        .apply_if_unchanged(&zone, &[add(NAME, &dkim(2048))], &read)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Conflict { .. }), "{err}");
    assert_eq!(backend.stored(NAME), ["v=DKIM1; p=someone-else"]);
}
