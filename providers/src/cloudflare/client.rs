//! HTTP to Cloudflare's API: bearer token, a steady pace under the rate limit, retries with
//! backoff on 429 and 5xx (honouring `Retry-After` up to a cap, within a retry budget per call),
//! bounded listings and answer sizes, and Cloudflare's error codes in errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::types::{ApiMessage, Envelope};
use crate::ProviderError;

/// Error codes Cloudflare uses for a bad or insufficient token.
const AUTH_CODES: [u32; 5] = [10000, 9103, 9106, 9109, 6003];

/// How a [`Client`] talks to the API.
#[derive(Clone, Debug)]
pub struct Pace {
    /// At least this long between two requests (Cloudflare allows 1,200 per 5 minutes).
    pub min_interval: Duration,
    /// Retries after a 429, a 5xx or a network error.
    pub retries: u32,
    /// The first backoff; doubled each retry, with jitter.
    pub backoff: Duration,
    /// How long one request may take.
    pub timeout: Duration,
    /// The longest wait a `Retry-After` header is obeyed for (a longer one is cut to this).
    pub max_retry_after: Duration,
    /// How long one call may spend retrying in all: a retry that would end later is not made.
    pub retry_budget: Duration,
    /// The most pages one listing may take: an API whose listing does not end is an error.
    pub max_pages: u32,
    /// The largest answer body read, in bytes: a larger one is refused.
    pub max_body: usize,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_millis(250),
            retries: 5,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            retry_budget: Duration::from_secs(120),
            max_pages: 1_000,
            max_body: 16 << 20,
        }
    }
}

/// A client for one account's token.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Zeroizing<String>,
    provider: String,
    pace: Pace,
    next_slot: Mutex<Instant>,
    calls: AtomicU64,
}

/// What a failed attempt leads to.
enum Attempt<T> {
    Done(Result<T, ProviderError>),
    /// Retry: the request was certainly not processed (429, no connection).
    Retry(Option<Duration>, ProviderError),
    /// Retry only a read: a write may or may not have been applied (timeout, 5xx), so the
    /// caller must look before writing again.
    RetryRead(ProviderError),
}

fn describe(errors: &[ApiMessage]) -> String {
    if errors.is_empty() {
        return "no error detail".into();
    }
    errors
        .iter()
        .map(|e| format!("[{}] {}", e.code, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Client {
    /// A client for `base` (e.g. `https://api.cloudflare.com/client/v4`).
    pub fn new(
        provider: &str,
        base: &str,
        token: Zeroizing<String>,
        pace: Pace,
    ) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(pace.timeout)
            .user_agent(concat!("rotor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| ProviderError::Protocol {
                provider: provider.to_string(),
                detail: format!("cannot build the HTTP client: {err}"),
            })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
            provider: provider.to_string(),
            pace,
            next_slot: Mutex::new(Instant::now()),
            calls: AtomicU64::new(0),
        })
    }

    /// How many requests this client has sent.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Every item of the listing at `path` (`query` plus `per_page`), page after page, until
    /// the API says it is the last; a listing longer than [`Pace::max_pages`], or an answer for
    /// another page than the one asked for, is an error.
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        per_page: u32,
    ) -> Result<Vec<T>, ProviderError> {
        let mut items = Vec::new();
        for page in 1..=self.pace.max_pages {
            let mut paged = query.to_vec();
            paged.push(("per_page", per_page.to_string()));
            paged.push(("page", page.to_string()));
            let envelope = self
                .call::<Vec<T>>(Method::GET, path, &paged, None::<&()>)
                .await?;
            items.extend(envelope.result.unwrap_or_default());
            let Some(info) = envelope.result_info else {
                return Ok(items);
            };
            if info.page != page {
                return Err(ProviderError::Protocol {
                    provider: self.provider.clone(),
                    detail: format!(
                        "GET {path}: asked for page {page}, the API answered page {}",
                        info.page
                    ),
                });
            }
            if info.page >= info.total_pages {
                return Ok(items);
            }
        }
        Err(ProviderError::Protocol {
            provider: self.provider.clone(),
            detail: format!(
                "GET {path}: the listing did not end after {} pages of {per_page}; rotor stops there",
                self.pace.max_pages
            ),
        })
    }

    /// Waits for this request's turn under the pace.
    async fn take_slot(&self) {
        let mut next = self.next_slot.lock().await;
        let now = Instant::now();
        if *next > now {
            tokio::time::sleep_until(*next).await;
        }
        *next = Instant::now() + self.pace.min_interval;
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.pace.backoff.saturating_mul(1 << attempt.min(8));
        let jitter = rand::random_range(0.0..0.5);
        base.mul_f64(1.0 + jitter)
    }

    /// Sends `method path?query` with an optional JSON `body` and returns the envelope's result.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<Envelope<T>, ProviderError> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let (wait, err) = match self.attempt(method.clone(), path, query, body).await {
                Attempt::Done(result) => return result,
                Attempt::Retry(wait, err) => (wait, err),
                Attempt::RetryRead(err) if method == Method::GET => (None, err),
                Attempt::RetryRead(err) => return Err(err),
            };
            if attempt >= self.pace.retries {
                return Err(err);
            }
            let wait = wait
                .map(|asked| asked.min(self.pace.max_retry_after))
                .unwrap_or_else(|| self.backoff(attempt));
            if started.elapsed() + wait > self.pace.retry_budget {
                tracing::debug!(
                    "{}: {err}; not retrying: {method} {path} has retried for {:?} (budget {:?})",
                    self.provider,
                    started.elapsed(),
                    self.pace.retry_budget
                );
                return Err(err);
            }
            tracing::debug!("{}: {err}; retrying in {wait:?}", self.provider);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// The answer's body, read in chunks up to [`Pace::max_body`] bytes (a larger one is an
    /// error naming the endpoint; a body cut short is [`ProviderError::Unreachable`]).
    async fn body(
        &self,
        mut response: reqwest::Response,
        method: &Method,
        path: &str,
    ) -> Result<String, ProviderError> {
        let limit = self.pace.max_body;
        let too_large = || ProviderError::Protocol {
            provider: self.provider.clone(),
            detail: format!(
                "{method} {path}: the answer is larger than {limit} bytes; rotor refuses to read it"
            ),
        };
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() > limit => return Err(too_large()),
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => return Ok(String::from_utf8_lossy(&body).into_owned()),
                Err(err) => {
                    return Err(ProviderError::Unreachable {
                        provider: self.provider.clone(),
                        server: self.base.clone(),
                        detail: format!("{method} {path}: the answer was cut short: {err}"),
                    });
                }
            }
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&(impl Serialize + Sync)>,
    ) -> Attempt<Envelope<T>> {
        self.take_slot().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(self.token.as_str())
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                let detail = if err.is_timeout() {
                    "timed out".to_string()
                } else {
                    err.to_string()
                };
                let unreachable = ProviderError::Unreachable {
                    provider: self.provider.clone(),
                    server: self.base.clone(),
                    detail,
                };
                return if err.is_connect() {
                    Attempt::Retry(None, unreachable)
                } else {
                    Attempt::RetryRead(unreachable)
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = match self.body(response, &method, path).await {
            Ok(text) => text,
            Err(err @ ProviderError::Unreachable { .. }) => return Attempt::RetryRead(err),
            Err(err) => return Attempt::Done(Err(err)),
        };
        let envelope: Result<Envelope<T>, _> = serde_json::from_str(&text);
        let errors = match &envelope {
            Ok(envelope) => describe(&envelope.errors),
            Err(_) => format!(
                "HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            ),
        };
        let temporary = ProviderError::Temporary {
            provider: self.provider.clone(),
            detail: format!("{method} {path}: HTTP {status}: {errors}"),
            retry_after,
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Attempt::Retry(retry_after, temporary);
        }
        if status.is_server_error() {
            return Attempt::RetryRead(temporary);
        }
        let codes: Vec<u32> = envelope
            .as_ref()
            .map(|e| e.errors.iter().map(|m| m.code).collect())
            .unwrap_or_default();
        let auth = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
            || codes.iter().any(|code| AUTH_CODES.contains(code));
        Attempt::Done(match envelope {
            _ if auth => Err(ProviderError::Auth {
                provider: self.provider.clone(),
                detail: format!(
                    "{method} {path}: HTTP {status}: {errors} (check the API token and its permissions: Zone.Zone read, Zone.DNS edit)"
                ),
            }),
            Ok(envelope) if status.is_success() && envelope.success => Ok(envelope),
            _ => Err(ProviderError::Protocol {
                provider: self.provider.clone(),
                detail: format!("{method} {path}: HTTP {status}: {errors}"),
            }),
        })
    }
}
