//! Full rotations through the real binary against other DNS hosts than BIND: Knot (RFC 2136 with
//! TSIG, rotor's own adapter) and PowerDNS (its HTTP API, through the `dns-update` family). Each
//! server is also the authoritative server the propagation checks ask.

mod support;

use std::fs;
use std::path::Path;

use support::knot::Knot;
use support::pdns::Pdns;
use support::{Rotor, dkimpy_verifies, mode, scratch, write_private};

/// A rotor whose provider `dns` is `provider` (YAML lines under `providers:`), checking
/// propagation on 127.0.0.1:`port` only.
fn rotor(dir: &Path, provider: &str, port: u16) -> Rotor {
    let signer = dir.join("opendkim");
    fs::create_dir_all(signer.join("keys")).unwrap();
    fs::set_permissions(
        signer.join("keys"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    fs::write(signer.join("SigningTable"), "").unwrap();
    fs::write(signer.join("KeyTable"), "").unwrap();
    let config = dir.join("rotor.yaml");
    fs::write(
        &config,
        format!(
            "state_dir: {dir}/state
key_dir: {dir}/keys
defaults:
  keys: [rsa-2048]
  selector: \"t{{yyyy}}{{mm}}{{dd}}\"
  ttl: 1
  propagation:
    authoritative: [\"127.0.0.1:{port}\"]
    min_wait: 1s
    poll_every: 1s
    timeout: 5m
  grace: 2s
  retire: delete
providers:
{provider}
signers:
  mx1:
    type: opendkim
    key_table: {signer}/KeyTable
    signing_table: {signer}/SigningTable
    key_dir: {signer}/keys
    reload: \"true\"
domains:
  - name: example.com
    provider: dns
    signers: [mx1]
",
            dir = dir.display(),
            signer = signer.display(),
        ),
    )
    .unwrap();
    Rotor {
        dir: dir.to_owned(),
        config,
        env: Vec::new(),
    }
}

/// A rotation to `active`, checked with dkimpy against `port`, then a second one that retires
/// the first key's record; `txt` reads the server behind rotor's back.
fn rotate_twice(rotor: &Rotor, port: u16, txt: impl Fn(&str) -> Vec<String>) {
    let check = rotor.ok(&["check"]);
    assert!(!check.contains("FAIL"), "{check}");
    rotor.run_until("first key active", |r| r.selector_in("active").is_some());
    let first = rotor.selector_in("active").unwrap();
    let name = format!("{first}._domainkey.example.com");
    let published = txt(&name);
    assert_eq!(published.len(), 1, "{published:?}");
    assert!(published[0].starts_with("v=DKIM1; k=rsa;"), "{published:?}");
    assert_eq!(rotor.signing_selector().as_deref(), Some(first.as_str()));
    let signer_key = rotor.signer_key_file(&first).expect("KeyTable row");
    assert_eq!(mode(&signer_key), 0o600);
    dkimpy_verifies(&signer_key, &first, port).unwrap();

    rotor.ok(&["rotate", "example.com"]);
    rotor.run_until("old key retired", |r| {
        r.phases()
            .iter()
            .any(|(s, p)| *s == first && p == "retired")
    });
    let second = rotor.selector_in("active").unwrap();
    assert_ne!(second, first);
    assert!(txt(&name).is_empty(), "the old record is gone");
    let signer_key = rotor.signer_key_file(&second).unwrap();
    dkimpy_verifies(&signer_key, &second, port).unwrap();
    // Records rotor did not create are untouched.
    assert_eq!(txt("example.com"), ["v=spf1 -all"]);
    assert_eq!(txt("other._domainkey.example.com").len(), 1);
}

#[test]
fn rotations_on_knot_through_rfc2136() {
    let dir = scratch();
    let knot = Knot::start(&dir.path().join("knot"));
    let provider = format!(
        "  dns:\n    type: rfc2136\n    server: 127.0.0.1:{}\n    tsig_key_file: {}",
        knot.port,
        knot.tsig_file.display()
    );
    let rotor = rotor(dir.path(), &provider, knot.port);
    rotate_twice(&rotor, knot.port, |name| knot.txt(name));
}

#[test]
fn rotations_on_powerdns_through_dns_update() {
    let dir = scratch();
    let pdns = Pdns::start(&dir.path().join("pdns"));
    let key = dir.path().join("pdns-api-key");
    write_private(&key, format!("{}\n", support::pdns::API_KEY));
    let provider = format!(
        "  dns:\n    type: dns-update\n    provider: powerdns\n    endpoint: {}\n    api_token_file: {}\n    zones: [example.com]",
        pdns.api_url,
        key.display()
    );
    let rotor = rotor(dir.path(), &provider, pdns.port);
    rotate_twice(&rotor, pdns.port, |name| pdns.txt(name));
}
