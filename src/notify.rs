//! Notifications of phase changes and failures: a JSON POST to a webhook (Slack-compatible
//! incoming webhooks read its `text`), and/or a command that reads the event as JSON on its
//! stdin. A notification that fails is logged; it never holds up or fails a rotation.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures_util::StreamExt;
use rotor_state::Event;
use serde::{Deserialize, Serialize};

use rotor_common::{ErrorKind, Interval};
use rotor_signers::command;

use crate::time::rfc3339;

/// The `notify:` settings.
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// A URL that gets each event as a JSON POST. It often holds a secret (Slack's do): it
    /// is never logged or shown.
    pub webhook: Option<String>,
    /// A command (`sh -c`) that gets each event as JSON on stdin. It may hold credentials: it
    /// is never logged or shown either.
    pub command: Option<String>,
    /// How long the command may run for one event before it is killed (default 60s).
    pub timeout: Option<Interval>,
}

impl fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("webhook", &self.webhook.as_ref().map(|_| "<redacted>"))
            .field("command", &self.command.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One notification.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Notice {
    /// A one-line summary (what chat webhooks show).
    pub text: String,
    /// The domain.
    pub domain: String,
    /// The key's selector, if the event concerns one key.
    pub selector: Option<String>,
    /// The key's phase after the event.
    pub phase: Option<String>,
    /// What happened, with its evidence.
    pub detail: Option<String>,
    /// The error, for a failure.
    pub error: Option<String>,
    /// The kind of failure: `transient` (retried next pass), `needs-operator`, `conflict`.
    pub kind: Option<ErrorKind>,
    /// When (RFC 3339).
    pub at: String,
}

impl Notice {
    /// A key's transition, from its history event.
    pub fn event(event: &Event) -> Self {
        Self {
            text: format!(
                "rotor: {} {} is {}: {}",
                event.domain, event.selector, event.phase, event.detail
            ),
            domain: event.domain.clone(),
            selector: Some(event.selector.clone()),
            phase: Some(event.phase.to_string()),
            detail: Some(event.detail.clone()),
            error: None,
            kind: None,
            at: rfc3339(event.at),
        }
    }

    /// A domain's failed step.
    pub fn failure(domain: &str, kind: ErrorKind, error: &str, at: u64) -> Self {
        Self {
            text: format!("rotor: {domain} failed ({kind}): {error}"),
            domain: domain.to_string(),
            selector: None,
            phase: None,
            detail: None,
            error: Some(error.to_string()),
            kind: Some(kind),
            at: rfc3339(at),
        }
    }
}

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How many domains' notifications are delivered at once.
const AT_ONCE: usize = 4;

/// Delivers `notices` through every configured channel; failures are logged.
pub async fn send(config: &NotifyConfig, notices: &[Notice]) {
    if notices.is_empty() {
        return;
    }
    if let Some(url) = &config.webhook {
        let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
            Ok(client) => client,
            Err(err) => {
                tracing::warn!("notify: cannot build an HTTP client: {err}");
                return;
            }
        };
        // In order within a domain; domains side by side.
        let mut by_domain: BTreeMap<&str, Vec<&Notice>> = BTreeMap::new();
        for notice in notices {
            by_domain.entry(&notice.domain).or_default().push(notice);
        }
        futures_util::stream::iter(by_domain.into_values())
            .for_each_concurrent(AT_ONCE, |domain_notices| {
                let client = &client;
                async move {
                    for notice in domain_notices {
                        post(client, url, notice).await;
                    }
                }
            })
            .await;
    }
    if let Some(line) = &config.command {
        let timeout = command::timeout(config.timeout);
        for notice in notices {
            // The error names the setting, never the command line.
            if let Err(err) = run_command(line, notice, timeout) {
                tracing::warn!("{err:#}");
            }
        }
    }
}

async fn post(client: &reqwest::Client, url: &str, notice: &Notice) {
    let sent = client.post(url).json(notice).send().await;
    match sent.map(|response| response.status()) {
        Ok(status) if status.is_success() => {}
        // The URL is a secret: never log it.
        Ok(status) => tracing::warn!("notify: the webhook answered {status}"),
        Err(err) => tracing::warn!(
            "notify: the webhook could not be reached: {}",
            err.without_url()
        ),
    }
}

/// Runs the notify command with `notice` as JSON on its stdin.
fn run_command(line: &str, notice: &Notice, timeout: Duration) -> anyhow::Result<()> {
    let json = serde_json::to_vec(notice)?;
    Ok(command::run("notify.command", line, timeout, Some(&json))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_url_never_shows() {
        let config = NotifyConfig {
            webhook: Some("https://hooks.example.net/services/T0/B0/SECRET".into()),
            command: Some("curl -u admin:PASSWORD https://pager.example.net".into()),
            timeout: None,
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("PASSWORD"),
            "{shown}"
        );
    }

    #[test]
    fn a_command_gets_the_event_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("event.json");
        let notice = Notice::failure("example.com", ErrorKind::Transient, "SERVFAIL", 0);
        let timeout = command::DEFAULT_TIMEOUT;
        run_command(&format!("cat > {}", out.display()), &notice, timeout).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(json["domain"], "example.com");
        assert_eq!(json["error"], "SERVFAIL");
        assert_eq!(
            json["text"],
            "rotor: example.com failed (transient): SERVFAIL"
        );
        let err = run_command("exit 3", &notice, timeout).unwrap_err();
        assert_eq!(err.to_string(), "notify.command: exited with status 3");
    }

    #[test]
    fn a_hanging_command_times_out() {
        let notice = Notice::failure("example.com", ErrorKind::Transient, "SERVFAIL", 0);
        let err = run_command("sleep 1000", &notice, Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.to_string(), "notify.command: timed out after 1s");
    }
}
