//! The Route53 adapter against a scripted HTTP transport: the answers moto never gives (a change
//! PENDING before INSYNC, throttling, PriorRequestNotComplete, refusals), in virtual time.

#![cfg(feature = "route53")]

#[path = "support/route53.rs"]
mod support;

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::future;
use aws_sdk_route53::config::http::{HttpRequest, HttpResponse};
use aws_sdk_route53::config::{HttpClient, ProvideCredentials};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use rotor_providers::route53::{Route53, Route53Config};
use rotor_providers::{Change, DnsProvider, ProviderError, TxtValue, Zone};
use tokio::time::Instant;

use support::{Calls, SELECTOR, ZONE, adapter, dkim_value, sdk_config};

const XMLNS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

/// One scripted exchange: the request expected (method, and a piece of its path) and the answer.
#[derive(Debug)]
struct Step {
    method: &'static str,
    path: &'static str,
    status: u16,
    body: String,
}

/// An HTTP transport that answers from a script, in order, and keeps the requests' bodies.
#[derive(Clone, Debug, Default)]
struct Script {
    steps: Arc<Mutex<VecDeque<Step>>>,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Script {
    fn new(steps: Vec<Step>) -> Self {
        let script = Self::default();
        script.steps.lock().unwrap().extend(steps);
        script
    }

    /// Whether every step was played.
    fn done(&self) -> bool {
        self.steps.lock().unwrap().is_empty()
    }

    /// The bodies of the requests sent, in order, XML entities decoded.
    fn bodies(&self) -> Vec<String> {
        let bodies = self.bodies.lock().unwrap();
        bodies
            .iter()
            .map(|body| {
                body.replace("&quot;", "\"")
                    .replace("&apos;", "'")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&")
            })
            .collect()
    }
}

impl HttpConnector for Script {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let step = self.steps.lock().unwrap().pop_front();
        let step = step
            .unwrap_or_else(|| panic!("unscripted request {} {}", request.method(), request.uri()));
        assert!(
            request.method() == step.method && request.uri().contains(step.path),
            "expected {} …{}…, got {} {}",
            step.method,
            step.path,
            request.method(),
            request.uri()
        );
        let sent = request.body().bytes().unwrap_or_default();
        self.bodies
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(sent).into_owned());
        let status = StatusCode::try_from(step.status).unwrap();
        let answer = HttpResponse::new(status, SdkBody::from(step.body));
        HttpConnectorFuture::ready(Ok(answer))
    }
}

impl HttpClient for Script {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

fn zone() -> Zone {
    Zone {
        name: ZONE.to_string(),
        id: Some("Z0ROTOR".to_string()),
    }
}

fn route53(script: &Script, calls: &Calls) -> Route53 {
    adapter(
        sdk_config()
            .http_client(script.clone())
            .interceptor(calls.clone()),
    )
}

fn add_key() -> (TxtValue, Change) {
    let value = TxtValue::from_value(&dkim_value(392));
    let change = Change::Add {
        name: SELECTOR.to_string(),
        value: value.clone(),
        ttl: 300,
    };
    (value, change)
}

/// ListResourceRecordSets at the selector, answering `sets` (XML of ResourceRecordSet elements).
fn list(sets: &str) -> Step {
    Step {
        method: "GET",
        path: "/2013-04-01/hostedzone/Z0ROTOR/rrset",
        status: 200,
        body: format!(
            r#"<?xml version="1.0"?><ListResourceRecordSetsResponse xmlns="{XMLNS}"><ResourceRecordSets>{sets}</ResourceRecordSets><IsTruncated>false</IsTruncated><MaxItems>300</MaxItems></ListResourceRecordSetsResponse>"#
        ),
    }
}

fn change_info(status: &str) -> String {
    format!(
        "<ChangeInfo><Id>/change/C0ROTOR</Id><Status>{status}</Status><SubmittedAt>2026-11-23T12:00:00Z</SubmittedAt></ChangeInfo>"
    )
}

/// ChangeResourceRecordSets, accepted with `status`.
fn submit(status: &str) -> Step {
    Step {
        method: "POST",
        path: "/2013-04-01/hostedzone/Z0ROTOR/rrset",
        status: 200,
        body: format!(
            r#"<?xml version="1.0"?><ChangeResourceRecordSetsResponse xmlns="{XMLNS}">{}</ChangeResourceRecordSetsResponse>"#,
            change_info(status)
        ),
    }
}

/// GetChange answering `status`.
fn get_change(status: &str) -> Step {
    Step {
        method: "GET",
        path: "/2013-04-01/change/C0ROTOR",
        status: 200,
        body: format!(
            r#"<?xml version="1.0"?><GetChangeResponse xmlns="{XMLNS}">{}</GetChangeResponse>"#,
            change_info(status)
        ),
    }
}

/// An AWS error answer to a request of `method` on `path`.
fn failure(
    method: &'static str,
    path: &'static str,
    status: u16,
    code: &str,
    message: &str,
) -> Step {
    Step {
        method,
        path,
        status,
        body: format!(
            r#"<?xml version="1.0"?><ErrorResponse xmlns="{XMLNS}"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"#
        ),
    }
}

/// ChangeResourceRecordSets refused with `code`.
fn submit_failure(status: u16, code: &str, message: &str) -> Step {
    failure(
        "POST",
        "/2013-04-01/hostedzone/Z0ROTOR/rrset",
        status,
        code,
        message,
    )
}

#[tokio::test(start_paused = true)]
async fn apply_returns_only_once_the_change_is_insync() {
    let script = Script::new(vec![
        list(""),
        submit("PENDING"),
        get_change("PENDING"),
        get_change("PENDING"),
        get_change("INSYNC"),
    ]);
    let calls = Calls::default();
    let (value, change) = add_key();
    let start = Instant::now();
    route53(&script, &calls)
        .apply(&zone(), &[change])
        .await
        .unwrap();
    assert!(script.done());
    assert_eq!(calls.count("GetChange"), 3);
    // Polled after 1, 2 and 4 seconds (virtual time).
    assert_eq!(start.elapsed().as_secs(), 7);
    // One CREATE (no set existed), the value in two quoted strings.
    let body = &script.bodies()[1];
    assert!(body.contains("<Action>CREATE</Action>"), "{body}");
    assert!(!body.contains("<Action>DELETE</Action>"), "{body}");
    let strings: Vec<String> = value
        .strings()
        .iter()
        .map(|s| format!("\"{}\"", String::from_utf8_lossy(s)))
        .collect();
    assert!(
        body.contains(&format!("<Value>{}</Value>", strings.join(" "))),
        "{body}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_set_with_other_values_is_deleted_exactly_and_created_again() {
    let foreign = r#"<ResourceRecordSet><Name>rotor20261123._domainkey.example.com.</Name><Type>TXT</Type><TTL>3600</TTL><ResourceRecords><ResourceRecord><Value>"v=spf1 \"quoted\" -all"</Value></ResourceRecord></ResourceRecords></ResourceRecordSet>"#;
    let script = Script::new(vec![list(foreign), submit("INSYNC")]);
    let (_, change) = add_key();
    route53(&script, &Calls::default())
        .apply(&zone(), &[change])
        .await
        .unwrap();
    assert!(script.done());
    let body = &script.bodies()[1];
    let delete = body.find("<Action>DELETE</Action>").expect(body);
    let create = body.find("<Action>CREATE</Action>").expect(body);
    assert!(delete < create, "{body}");
    assert!(!body.contains("UPSERT"), "{body}");
    // The old set exactly: its TTL and its value as Route53 returned it, in both halves.
    assert!(body[delete..create].contains("<TTL>3600</TTL>"), "{body}");
    let kept = r#"<Value>"v=spf1 \"quoted\" -all"</Value>"#;
    assert!(body[delete..create].contains(kept), "{body}");
    assert!(body[create..].contains(kept), "{body}");
    assert!(body[create..].contains("<TTL>300</TTL>"), "{body}");
}

#[tokio::test(start_paused = true)]
async fn apply_gives_up_after_the_sync_timeout() {
    let mut steps = vec![list(""), submit("PENDING")];
    steps.extend((0..10).map(|_| get_change("PENDING")));
    let script = Script::new(steps);
    let route53 = Route53::from_sdk_config(
        Route53Config {
            sync_timeout: Duration::from_secs(10),
            ..Route53Config::new("route53-test")
        },
        sdk_config().http_client(script.clone()),
    );
    let start = Instant::now();
    match route53.apply(&zone(), &[add_key().1]).await {
        Err(ProviderError::Temporary { detail, .. }) => {
            assert!(
                detail.contains("C0ROTOR") && detail.contains("PENDING"),
                "{detail}"
            );
        }
        other => panic!("expected a Temporary error, got {other:?}"),
    }
    assert_eq!(start.elapsed().as_secs(), 10);
}

#[tokio::test(start_paused = true)]
async fn throttling_and_prior_request_not_complete_are_retried() {
    for (code, message) in [
        ("Throttling", "Rate exceeded"),
        (
            "PriorRequestNotComplete",
            "The request was rejected because Route 53 was still processing a prior request.",
        ),
    ] {
        let script = Script::new(vec![
            list(""),
            submit_failure(400, code, message),
            submit("INSYNC"),
        ]);
        let calls = Calls::default();
        route53(&script, &calls)
            .apply(&zone(), &[add_key().1])
            .await
            .unwrap();
        assert!(script.done(), "{code}");
        assert_eq!(calls.count("ChangeResourceRecordSets"), 2, "{code}");
    }
}

#[tokio::test(start_paused = true)]
async fn persistent_throttling_and_server_errors_are_temporary() {
    for (status, code) in [(400, "Throttling"), (503, "ServiceUnavailable")] {
        let mut steps = vec![list("")];
        steps.extend((0..4).map(|_| submit_failure(status, code, "try again later")));
        let script = Script::new(steps);
        let calls = Calls::default();
        match route53(&script, &calls)
            .apply(&zone(), &[add_key().1])
            .await
        {
            Err(err @ ProviderError::Temporary { .. }) => {
                assert!(err.is_transient());
                let text = err.to_string();
                assert!(
                    text.contains(code) && text.contains("try again later"),
                    "{text}"
                );
            }
            other => panic!("expected a Temporary error, got {other:?}"),
        }
        assert!(script.done());
        assert_eq!(calls.count("ChangeResourceRecordSets"), 4);
    }
}

#[tokio::test(start_paused = true)]
async fn an_invalid_change_batch_is_reported_with_route53s_messages() {
    let message = "Tried to delete resource record set [name='rotor20261123._domainkey.example.com.', type='TXT'] but the values provided do not match the current values";
    // Route53's answer today (an ErrorResponse), and the form it used to send, which the SDK
    // does not parse: both show Route53's message.
    let answers = [
        (
            "InvalidChangeBatch",
            format!(
                r#"<?xml version="1.0"?><ErrorResponse xmlns="{XMLNS}"><Error><Type>Sender</Type><Code>InvalidChangeBatch</Code><Message>[{message}]</Message></Error><RequestId>r-2</RequestId></ErrorResponse>"#
            ),
        ),
        (
            "<InvalidChangeBatch",
            format!(
                r#"<?xml version="1.0"?><InvalidChangeBatch xmlns="{XMLNS}"><Messages><Message>{message}</Message></Messages><RequestId>r-2</RequestId></InvalidChangeBatch>"#
            ),
        ),
    ];
    for (code, body) in answers {
        let script = Script::new(vec![
            list(""),
            Step {
                method: "POST",
                path: "/2013-04-01/hostedzone/Z0ROTOR/rrset",
                status: 400,
                body,
            },
        ]);
        let calls = Calls::default();
        match route53(&script, &calls)
            .apply(&zone(), &[add_key().1])
            .await
        {
            Err(ProviderError::Protocol { detail, .. }) => {
                assert!(detail.contains(code), "{detail}");
                assert!(
                    detail.contains("do not match the current values"),
                    "{detail}"
                );
            }
            other => panic!("expected a Protocol error, got {other:?}"),
        }
        // Not retried.
        assert_eq!(calls.count("ChangeResourceRecordSets"), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn refused_credentials_are_auth_errors() {
    for (status, code) in [
        (403, "InvalidClientTokenId"),
        (403, "SignatureDoesNotMatch"),
        (403, "AccessDenied"),
        (403, "ExpiredToken"),
    ] {
        let script = Script::new(vec![failure(
            "GET",
            "/2013-04-01/hostedzone/Z0ROTOR",
            status,
            code,
            "refused",
        )]);
        match route53(&script, &Calls::default()).check(&zone()).await {
            Err(ProviderError::Auth { detail, .. }) => {
                assert!(detail.contains(code), "{detail}");
            }
            other => panic!("expected an Auth error for {code}, got {other:?}"),
        }
    }
}

/// A credentials provider that never finds any, as the default chain on a machine without them.
#[derive(Debug)]
struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
            "no credentials in this test",
        )))
    }
}

#[tokio::test(start_paused = true)]
async fn missing_credentials_are_auth_errors() {
    let script = Script::new(Vec::new());
    let sdk = sdk_config()
        .credentials_provider(NoCredentials)
        .http_client(script.clone());
    match adapter(sdk).check(&zone()).await {
        Err(ProviderError::Auth { detail, .. }) => {
            assert!(detail.contains("no credentials in this test"), "{detail}");
        }
        other => panic!("expected an Auth error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_missing_hosted_zone_is_zone_not_found() {
    let script = Script::new(vec![failure(
        "GET",
        "/2013-04-01/hostedzone/Z0ROTOR",
        404,
        "NoSuchHostedZone",
        "No hosted zone found with ID: Z0ROTOR",
    )]);
    match route53(&script, &Calls::default()).check(&zone()).await {
        Err(ProviderError::ZoneNotFound { name, detail, .. }) => {
            assert_eq!(name, "Z0ROTOR");
            assert!(detail.contains("No hosted zone found"), "{detail}");
        }
        other => panic!("expected ZoneNotFound, got {other:?}"),
    }
}

/// A closed port: every attempt is refused (real sockets; the backoff in virtual time).
#[tokio::test(start_paused = true)]
async fn an_unreachable_endpoint_is_unreachable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let calls = Calls::default();
    let route53 = adapter(
        sdk_config()
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .interceptor(calls.clone()),
    );
    match route53.check(&zone()).await {
        Err(err @ ProviderError::Unreachable { .. }) => {
            assert!(err.is_transient());
            assert!(err.to_string().contains("GetHostedZone"), "{err}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert_eq!(calls.count("GetHostedZone"), 4);
}
