//! A signer's `probe:` settings: how it is asked to sign a probe message, and how long rotor
//! waits for it to sign with a new key.

use std::time::Duration;

use rotor_common::Interval;
use serde::Deserialize;

use super::{MilterSocket, Probe};

/// How long a probe may take by default (one attempt).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a signer may keep signing with the previous key after a switch, by default.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// `probe:` of a signer: exactly one of `milter`, `rspamd` or `command`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProbeSettings {
    /// A milter's socket, as OpenDKIM's `Socket` setting writes it (`inet:8891@127.0.0.1`,
    /// `unix:/run/opendkim/opendkim.sock`): rotor sends the probe as an MTA on this host.
    pub milter: Option<MilterSocket>,
    /// rspamd's normal worker (`http://127.0.0.1:11333`): the probe goes to `/checkv2` as mail
    /// from an authenticated sender.
    pub rspamd: Option<String>,
    /// A command that reads a message on stdin and prints it signed (through `sh -c`;
    /// `ROTOR_PROBE_DOMAIN` and `ROTOR_PROBE_SENDER` set).
    pub command: Option<String>,
    /// How long one probe may take (default 30s).
    pub timeout: Option<Interval>,
    /// How long after a switch the signer may still sign with the previous key (a reload that
    /// takes effect later, maps re-read on a timer) before the switch counts as failed
    /// (default 30s; probed again every second meanwhile).
    pub wait: Option<Interval>,
}

impl ProbeSettings {
    /// The probe, or why these settings name none or several.
    pub fn probe(&self) -> Result<Probe, String> {
        match (&self.milter, &self.rspamd, &self.command) {
            (Some(socket), None, None) => Ok(Probe::Milter(socket.clone())),
            (None, Some(url), None) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "probe.rspamd: {url:?} is not a URL: write rspamd's normal worker, e.g. http://127.0.0.1:11333"
                    ));
                }
                Ok(Probe::Rspamd(url.clone()))
            }
            (None, None, Some(line)) if !line.trim().is_empty() => {
                Ok(Probe::Command(line.clone()))
            }
            (None, None, Some(_)) => Err("probe.command is empty".into()),
            (None, None, None) => Err(
                "probe: set one of `milter:` (a milter socket), `rspamd:` (rspamd's URL) or `command:`".into(),
            ),
            _ => Err("probe: set one of `milter:`, `rspamd:` or `command:`, not several".into()),
        }
    }

    /// Checks the settings, and that the signer (`signer`, its type) can be probed this way:
    /// `accepts` says which transports it takes besides `command`.
    pub fn validate(&self, signer: &str, accepts: &[&str]) -> Result<(), String> {
        let probe = self.probe()?;
        let transport = match probe {
            Probe::Milter(_) => "milter",
            Probe::Rspamd(_) => "rspamd",
            Probe::Command(_) => return Ok(()),
        };
        if accepts.contains(&transport) {
            Ok(())
        } else {
            Err(format!(
                "probe.{transport}: a {signer} signer is not probed that way; use `command:`"
            ))
        }
    }

    /// How long one probe may take.
    pub fn timeout(&self) -> Duration {
        self.timeout.map_or(DEFAULT_TIMEOUT, |interval| interval.0)
    }

    /// How long the previous key may still be seen after a switch.
    pub fn wait(&self) -> Duration {
        self.wait.map_or(DEFAULT_WAIT, |interval| interval.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> ProbeSettings {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn one_transport_is_named_and_it_must_suit_the_signer() {
        let milter = parse("milter: inet:8891@127.0.0.1");
        assert!(matches!(milter.probe(), Ok(Probe::Milter(_))));
        assert!(milter.validate("opendkim", &["milter"]).is_ok());
        let err = milter.validate("exim", &[]).unwrap_err();
        assert!(err.contains("not probed that way"), "{err}");
        let both = parse("milter: inet:8891@127.0.0.1\ncommand: cat");
        assert!(both.probe().unwrap_err().contains("not several"));
        assert!(parse("{}").probe().unwrap_err().contains("set one of"));
        let url = parse("rspamd: 127.0.0.1:11333").probe().unwrap_err();
        assert!(url.contains("is not a URL"), "{url}");
        assert!(serde_yaml::from_str::<ProbeSettings>("socket: x").is_err());
        let timed = parse("command: cat\nwait: 5s\ntimeout: 2s");
        assert_eq!(timed.wait(), Duration::from_secs(5));
        assert_eq!(timed.timeout(), Duration::from_secs(2));
    }
}
