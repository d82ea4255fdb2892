//! The test kit's real OpenDKIM ([`rotor_testkit::opendkim`]) on the tables rotor writes, probed
//! with `miltertest`, its signatures checked by dkimpy against DNS.

use std::time::Duration;

pub use rotor_testkit::opendkim::Opendkim;
use rotor_testkit::opendkim::probe_message;

use super::{DOMAIN, Rotor, dns_verdicts, wait_for};

/// Starts OpenDKIM on the tables of `rotor`'s signer (its `pid_file` for SIGUSR1 reloads).
pub fn start_opendkim(rotor: &Rotor) -> Opendkim {
    Opendkim::start(&rotor.signer_dir())
}

/// The DKIM-Signature OpenDKIM adds to the probe from example.com, or `None` if it does not
/// sign.
pub fn probe(opendkim: &Opendkim) -> Option<String> {
    opendkim.probe(DOMAIN).unwrap_or_else(|err| panic!("{err}"))
}

/// The value of tag `name` in a DKIM-Signature.
pub fn tag(signature: &str, name: &str) -> String {
    signature
        .split(';')
        .find_map(|tag| tag.trim().strip_prefix(&format!("{name}=")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Whether the probe's signature verifies against the records served on 127.0.0.1:`dns_port`.
pub fn verifies(signature: &str, dns_port: u16) -> Result<(), String> {
    let verdicts = dns_verdicts(&probe_message(DOMAIN, signature), dns_port);
    match verdicts.as_slice() {
        [(_, _, true)] => Ok(()),
        _ => Err(format!("the signature does not verify: {verdicts:?}")),
    }
}

/// Waits until OpenDKIM (reloading asynchronously after SIGUSR1) signs with `selector`.
pub fn signs_with(opendkim: &Opendkim, selector: &str) -> String {
    let mut last = None;
    wait_for(
        &format!("OpenDKIM to sign with {selector}"),
        Duration::from_secs(20),
        || {
            last = probe(opendkim);
            last.as_deref().is_some_and(|s| tag(s, "s") == selector)
        },
    );
    last.unwrap()
}
