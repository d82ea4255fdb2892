//! Full rotations through the real binary against other DNS hosts than BIND: Knot (RFC 2136 with
//! TSIG, rotor's own adapter) and PowerDNS (its HTTP API, through the `dns-update` family). Each
//! server is also the authoritative server the propagation checks ask.

mod support;

use std::path::Path;

use support::knot::Knot;
use support::pdns::Pdns;
use support::{ProviderUnderTest, Rotor, Setup, dkimpy_verifies, mode, scratch, write_private};

/// A rotor whose provider `dns` is `provider`, checking propagation on 127.0.0.1:`port` only,
/// with empty tables and no reload to do.
fn rotor(dir: &Path, provider: ProviderUnderTest, port: u16) -> Rotor {
    let setup = Setup {
        revoke_for: None,
        reload: Some("true"),
        signing_table: "",
        key_table: "",
        ..Setup::default()
    };
    Rotor::with_provider(dir, "dns", provider, (&[port], &[]), setup)
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
    let provider = ProviderUnderTest::new("rfc2136")
        .set("server", format!("127.0.0.1:{}", knot.port))
        .set("tsig_key_file", knot.tsig_file.display());
    let rotor = rotor(dir.path(), provider, knot.port);
    rotate_twice(&rotor, knot.port, |name| knot.txt(name));
}

#[test]
fn rotations_on_powerdns_through_dns_update() {
    let dir = scratch();
    let pdns = Pdns::start(&dir.path().join("pdns"));
    let key = dir.path().join("pdns-api-key");
    write_private(&key, format!("{}\n", support::pdns::API_KEY));
    let provider = ProviderUnderTest::new("dns-update")
        .set("provider", "powerdns")
        .set("endpoint", &pdns.api_url)
        .set("api_token_file", key.display())
        .set("zones", "[example.com]");
    let rotor = rotor(dir.path(), provider, pdns.port);
    rotate_twice(&rotor, pdns.port, |name| pdns.txt(name));
}
