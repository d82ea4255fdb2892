//! CNAME-delegated selectors, as hosted services set them up: each mail domain points its
//! selectors into one zone that holds the keys, and rotor writes there. Checked on a real BIND
//! primary and secondary, and by dkimpy verifying through the alias, as a receiver would.

mod support;

use std::fs;
use std::time::Duration;

use support::{Bind, Named, Rotor, Secondary, Setup, dkimpy_verifies_for, scratch, wait_for};

/// The key zone every delegation below points into (served, and updated by rotor, on BIND).
const KEYS: &str = "keys.example.com";

/// The aliases an operator sets up once in the mail domains' zone.
const ALIASES: [(&str, &str); 3] = [
    // Every selector of mail.example.org, present and future.
    (
        "example.org",
        "_domainkey.mail IN DNAME mail-example-org.keys.example.com.",
    ),
    // One selector of chain.example.org, through two CNAMEs.
    (
        "example.org",
        "s._domainkey.chain IN CNAME s.hop.example.org.",
    ),
    (
        "example.org",
        "s.hop IN CNAME s.chain-example-org.keys.example.com.",
    ),
];

/// A rotor whose domains are `domains` (YAML list items) instead of example.com, and whose
/// propagation checks ask `resolver` as the receivers' resolver.
fn rotor_for(dir: &std::path::Path, bind: &Bind, resolver: &Named, domains: &str) -> Rotor {
    let rotor = Rotor::new(dir, bind, Setup::default());
    let config = fs::read_to_string(&rotor.config).unwrap();
    let (head, _) = config.split_once("domains:\n").unwrap();
    let head = head.replace(
        &format!("resolvers: [\"127.0.0.1:{}\"]", bind.secondary.port),
        &format!("resolvers: [\"127.0.0.1:{}\"]", resolver.port),
    );
    fs::write(&rotor.config, format!("{head}domains:\n{domains}")).unwrap();
    rotor
}

fn row(rotor: &Rotor, domain: &str, phase: &str) -> serde_json::Value {
    rotor
        .status()
        .into_iter()
        .find(|row| row["domain"] == domain && row["phase"] == phase)
        .unwrap_or_else(|| panic!("a {phase} key for {domain} in {:?}", rotor.status()))
}

/// The key file OpenDKIM signs `domain`'s mail with, and its selector, from its tables.
fn signing(rotor: &Rotor, domain: &str) -> (String, std::path::PathBuf) {
    let dir = rotor.signer_dir();
    let signing = fs::read_to_string(dir.join("SigningTable")).unwrap();
    let name = signing
        .lines()
        .find_map(|line| line.strip_prefix(&format!("*@{domain} ")))
        .unwrap_or_else(|| panic!("a SigningTable row for {domain}: {signing}"))
        .to_string();
    let keys = fs::read_to_string(dir.join("KeyTable")).unwrap();
    let spec = keys
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("a KeyTable row for {name}: {keys}"));
    let selector = name.split('.').next().unwrap().to_string();
    (selector, spec.splitn(3, ':').nth(2).unwrap().into())
}

#[test]
fn delegated_selectors_rotate_inside_the_key_zone() {
    let dir = scratch();
    let bind = Bind::with_records(&dir.path().join("bind"), Secondary::Notified, &ALIASES);
    let resolver = bind.resolver(&dir.path().join("resolver"));
    let rotor = rotor_for(
        dir.path(),
        &bind,
        &resolver,
        "  - name: mail.example.org
    provider: bind
    signers: [mx1]
  - name: chain.example.org
    provider: bind
    signers: [mx1]
    selector: s
",
    );
    // `check` sees the DNAME and the provider's access to the key zone.
    let check = rotor.ok(&["check"]);
    assert!(
        check.contains(&format!(
            "ok    mail.example.org: selectors are delegated to rotor-check.mail-example-org.{KEYS}"
        )) && check
            .contains("ok    mail.example.org: provider bind accepts updates to zone example.com"),
        "{check}"
    );
    rotor.run_until("both domains signing", |r| {
        r.phases().iter().filter(|(_, p)| p == "active").count() == 2
    });

    for (domain, target_of) in [
        ("mail.example.org", format!("mail-example-org.{KEYS}")),
        ("chain.example.org", format!("chain-example-org.{KEYS}")),
    ] {
        let (selector, key_file) = signing(&rotor, domain);
        let target = format!("{selector}.{target_of}");
        assert_eq!(row(&rotor, domain, "active")["record_name"], target);
        for server in bind.servers() {
            let values = server.txt(&target);
            assert_eq!(values.len(), 1, "{target} on port {}", server.port);
            assert!(values[0].starts_with("v=DKIM1; k=rsa; "), "{values:?}");
        }
        // A receiver asks its resolver for the selector's own name, which follows the aliases.
        dkimpy_verifies_for(domain, &key_file, &selector, resolver.port)
            .unwrap_or_else(|err| panic!("{domain}: {err}"));
    }

    // A second rotation behind the DNAME: the new key lands in the key zone too, and the old
    // one is removed from there after its grace window, by exact value.
    let (old, _) = signing(&rotor, "mail.example.org");
    let old_target = format!("{old}.mail-example-org.{KEYS}");
    rotor.ok(&["rotate", "mail.example.org"]);
    rotor.run_until("the old key retired", |r| {
        r.status()
            .iter()
            .any(|row| row["selector"] == old.as_str() && row["phase"] == "retired")
    });
    let (new, key_file) = signing(&rotor, "mail.example.org");
    assert_ne!(new, old);
    for server in bind.servers() {
        // The secondary follows the primary by NOTIFY and zone transfer.
        wait_for("the old record gone", Duration::from_secs(10), || {
            server.txt(&old_target).is_empty()
        });
        assert_eq!(
            server.txt(&format!("{new}.mail-example-org.{KEYS}")).len(),
            1
        );
    }
    dkimpy_verifies_for("mail.example.org", &key_file, &new, resolver.port).unwrap();
}

#[test]
fn a_selector_delegated_outside_the_providers_zones_is_refused() {
    let dir = scratch();
    let bind = Bind::with_records(
        &dir.path().join("bind"),
        Secondary::Notified,
        &[(
            "example.org",
            "_domainkey.away IN DNAME keys.elsewhere.test.",
        )],
    );
    let resolver = bind.resolver(&dir.path().join("resolver"));
    let rotor = rotor_for(
        dir.path(),
        &bind,
        &resolver,
        "  - name: away.example.org
    provider: bind
    signers: [mx1]
",
    );
    let before = fs::read_to_string(rotor.signer_dir().join("SigningTable")).unwrap();
    let out = rotor.cmd(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("._domainkey.away.example.org is an alias of ")
            && stderr.contains(".keys.elsewhere.test, whose zone provider bind does not manage"),
        "{stderr}"
    );
    // Nothing reserved, written or switched.
    assert_eq!(
        rotor.status()[0]["waiting_for"],
        "first rotation on the next run"
    );
    assert!(!dir.path().join("keys/away.example.org").exists());
    assert_eq!(
        fs::read_to_string(rotor.signer_dir().join("SigningTable")).unwrap(),
        before
    );
}

/// The set-up of hosted services on DNS hosts without DNAME (Cloudflare, Route53): two CNAMEs,
/// made once, and a ring of two selectors that rotor uses in turn. (A 2-second TTL: when s1 comes
/// back, the resolver's copy of its previous record must expire before the new key counts as
/// visible, which rotor waits for.)
#[test]
fn a_selector_ring_behind_cnames_made_once() {
    let dir = scratch();
    let bind = Bind::with_records(
        &dir.path().join("bind"),
        Secondary::Notified,
        &[
            (
                "example.org",
                "s1._domainkey.ring IN CNAME s1.ring-example-org.keys.example.com.",
            ),
            (
                "example.org",
                "s2._domainkey.ring IN CNAME s2.ring-example-org.keys.example.com.",
            ),
        ],
    );
    let resolver = bind.resolver(&dir.path().join("resolver"));
    let rotor = rotor_for(
        dir.path(),
        &bind,
        &resolver,
        "  - name: ring.example.org
    provider: bind
    signers: [mx1]
    selectors: [s1, s2]
    ttl: 2
",
    );
    let mut values = Vec::new();
    for (rotation, expected) in ["s1", "s2", "s1"].into_iter().enumerate() {
        if rotation > 0 {
            // The previous key must be retired before its name comes round again.
            rotor.run_until("no key in its grace window", |r| {
                r.phases().iter().all(|(_, p)| p != "retiring")
            });
            rotor.ok(&["rotate", "ring.example.org"]);
        }
        rotor.run_until(&format!("{expected} active"), |r| {
            r.phases()
                .iter()
                .any(|(s, p)| s == expected && p == "active")
                && r.phases().iter().filter(|(_, p)| p == "active").count() == 1
        });
        let (selector, key_file) = signing(&rotor, "ring.example.org");
        assert_eq!(selector, expected);
        let target = format!("{expected}.ring-example-org.{KEYS}");
        let value = bind.primary.txt(&target);
        assert_eq!(value.len(), 1, "{target}");
        values.push(value[0].clone());
        dkimpy_verifies_for("ring.example.org", &key_file, expected, resolver.port)
            .unwrap_or_else(|err| panic!("rotation {rotation}: {err}"));
    }
    assert_ne!(values[0], values[2], "s1 came back with a new key");
}
