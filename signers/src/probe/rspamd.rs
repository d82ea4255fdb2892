//! rspamd asked to sign a probe over its HTTP protocol: `POST /checkv2` on the normal worker,
//! as mail from an authenticated sender on loopback (what rspamd's `dkim_signing` signs). The
//! signatures come back in the reply's `dkim-signature` field (a string, or a list of them).

use std::time::Duration;

use super::ProbeMessage;
use crate::{Result, SignerError};

/// The largest reply rotor reads.
const MAX_REPLY: usize = 1 << 20;

/// Has rspamd at `url` sign `message`; the `DKIM-Signature` headers it would add.
pub async fn sign(
    url: &str,
    message: &ProbeMessage,
    timeout: Duration,
) -> Result<Vec<(String, String)>> {
    let failed = |what: String, transient: bool| SignerError::Probe {
        message: format!("rspamd at {url}: {what}"),
        transient,
    };
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|err| failed(err.to_string(), false))?;
    let endpoint = format!("{}/checkv2", url.trim_end_matches('/'));
    let mut response = client
        .post(&endpoint)
        .header("IP", "127.0.0.1")
        .header("User", &message.sender)
        .header("From", &message.sender)
        .header("Rcpt", &message.recipient)
        .body(message.to_bytes())
        .send()
        .await
        .map_err(|err| failed(format!("no answer: {err}"), true))?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| failed(format!("reading the reply: {err}"), true))?
    {
        if body.len() + chunk.len() > MAX_REPLY {
            return Err(failed("a reply over 1 MiB".into(), false));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(failed(
            format!("answered {status}"),
            status.is_server_error(),
        ));
    }
    let reply: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|err| failed(format!("a reply that is not JSON: {err}"), false))?;
    Ok(signatures(&reply)
        .into_iter()
        .map(|value| ("DKIM-Signature".to_string(), value))
        .collect())
}

/// The `dkim-signature` values of a `/checkv2` reply.
fn signatures(reply: &serde_json::Value) -> Vec<String> {
    match reply.get("dkim-signature") {
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        Some(serde_json::Value::Array(many)) => many
            .iter()
            .filter_map(|value| value.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_or_several_signatures_are_read_and_none_is_unsigned() {
        let one = serde_json::json!({"dkim-signature": "v=1; d=example.com; s=a"});
        assert_eq!(signatures(&one), ["v=1; d=example.com; s=a"]);
        let two = serde_json::json!({"dkim-signature": ["v=1; s=a", "v=1; s=b"]});
        assert_eq!(signatures(&two), ["v=1; s=a", "v=1; s=b"]);
        assert!(signatures(&serde_json::json!({"action": "no action"})).is_empty());
    }
}
