use super::*;

const SECRET: &str = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";

/// The shipped example, with its TSIG key file pointed at a real file.
fn example() -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("tsig.key");
    std::fs::write(
        &key,
        format!("key \"rotor-key\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n"),
    )
    .unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // The example's users and groups (_rspamd, Debian-exim …) need not exist here.
    let text = include_str!("../../examples/rotor.yaml")
        .replace("/etc/rotor/tsig.key", &key.display().to_string())
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            match trimmed.split_once(": ") {
                Some((key @ ("user" | "group"), _)) => format!("{indent}{key}: root"),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = Config::parse(&text, Path::new("examples/rotor.yaml")).unwrap();
    (dir, config)
}

#[test]
fn the_example_config_is_valid_and_overrides_apply() {
    let (_dir, config) = example();
    assert_eq!(config.domains.len(), 2);
    let com = &config.domains[0].policy;
    let org = &config.domains[1].policy;
    assert_eq!(com.grace.secs(), 7 * 86400);
    assert_eq!(org.grace.secs(), 10 * 86400);
    assert_eq!(org.rotate_every, com.rotate_every);
    assert_eq!(com.propagation.resolvers[1].0.port(), 5353);
    assert_eq!(com.propagation.authoritative, Authoritative::Auto);
    assert_eq!(com.keys, [KeyAlgorithm::Rsa2048]);
}

#[test]
fn built_in_defaults_fill_what_is_not_said() {
    let text = "state_dir: /s\nkey_dir: /k\nproviders:\n  p: {type: rfc2136, server: 127.0.0.1}\nsigners:\n  s: {type: opendkim, key_table: /a, signing_table: /b, key_dir: /c, reload: 'true'}\ndomains:\n  - name: Example.COM\n    provider: p\n    signers: [s]\n    propagation: {min_wait: 1h}\n";
    let config = Config::parse(text, Path::new("t.yaml")).unwrap();
    let domain = &config.domains[0];
    assert_eq!(domain.name.as_str(), "example.com");
    let p = &domain.policy;
    assert_eq!(
        (p.rotate_every.secs(), p.ttl, p.grace.secs()),
        (90 * 86400, 300, 7 * 86400)
    );
    assert_eq!(
        (p.propagation.min_wait.secs(), p.propagation.timeout.secs()),
        (3600, 48 * 3600)
    );
    assert_eq!(p.retire, RetireMode::Delete);
    assert!(config.domain("EXAMPLE.com.").is_some());
}

#[test]
fn debug_of_a_config_never_shows_a_secret() {
    let (_dir, config) = example();
    let shown = format!("{config:?}");
    assert!(shown.contains("rotor-key"), "the key's name is shown");
    assert!(
        !shown.contains(SECRET) && !shown.contains("secretsecret"),
        "{shown}"
    );
}

#[test]
fn provider_errors_point_at_the_entry_or_the_field() {
    let base = "state_dir: /s\nkey_dir: /k\nproviders:\n  cf:\n    type: cloudflare\n";
    for (extra, expected) in [
        (
            "    api_token_env: CF\n    api_token_file: /t\n",
            "t.yaml:4:3: providers.cf: set `api_token_env:` or `api_token_file:`, not both",
        ),
        (
            "    api_url: http://api.example.com\n",
            "t.yaml:6:14: providers.cf.api_url: plain http:// would send it unencrypted",
        ),
    ] {
        let text = format!("{base}{extra}signers: {{}}\ndomains: []\n");
        let err = Config::parse(&text, Path::new("t.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(expected), "{err}");
    }
}

#[test]
fn bad_schedules_windows_and_time_zones_are_named() {
    let base = "state_dir: /s\nkey_dir: /k\nproviders:\n  p: {type: rfc2136, server: 127.0.0.1}\nsigners: {}\ndomains: []\n";
    for (extra, expected) in [
        (
            "schedule: \"every day\"\n",
            "t.yaml:7:11: schedule: invalid schedule \"every day\"",
        ),
        (
            "defaults:\n  activate_window: \"Mon-Fry 04:00-06:00\"\n",
            "t.yaml:8:20: defaults.activate_window: unknown day \"Fry\"",
        ),
        (
            "defaults:\n  timezone: Mars/Olympus\n",
            "t.yaml:8:13: defaults.timezone: unknown time zone \"Mars/Olympus\"",
        ),
        (
            "notify:\n  webhook: https://x\n  email: a@b\n",
            "t.yaml:9:3: notify: unknown field `email`",
        ),
    ] {
        let err = Config::parse(&format!("{base}{extra}"), Path::new("t.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(expected), "{err}");
    }
}

#[test]
fn a_selector_ring_needs_two_names_per_key_type() {
    let base = "state_dir: /s\nkey_dir: /k\nproviders:\n  p: {type: rfc2136, server: 127.0.0.1}\nsigners:\n  s: {type: exim, table: /t, key_dir: /c}\ndomains:\n  - name: example.com\n    provider: p\n    signers: [s]\n";
    let two = format!("{base}    selectors: [s1, s2]\n");
    let config = Config::parse(&two, Path::new("t.yaml")).unwrap();
    assert_eq!(config.domains[0].policy.selector_ring.len(), 2);
    let dual = format!("{two}    keys: [rsa-2048, ed25519]\n");
    let err = Config::parse(&dual, Path::new("t.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "t.yaml:8:5: domains[0].selectors: a ring needs two selectors per key type"
        ),
        "{err}"
    );
    let with_alg = format!(
        "{base}    selectors: [\"s1-{{alg}}\", \"s2-{{alg}}\"]\n    keys: [rsa-2048, ed25519]\n"
    );
    Config::parse(&with_alg, Path::new("t.yaml")).unwrap();
}

#[test]
fn a_domain_outside_its_zone_or_twice_is_refused() {
    let base = "state_dir: /s\nkey_dir: /k\nproviders:\n  p: {type: rfc2136, server: 127.0.0.1}\nsigners:\n  s: {type: opendkim, key_table: /a, signing_table: /b, key_dir: /c, reload: 'true'}\ndomains:\n  - name: example.com\n    provider: p\n    signers: [s]\n";
    let zone = format!("{base}    zone: example.org\n");
    let err = Config::parse(&zone, Path::new("t.yaml"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "t.yaml:8:5: domains[0].zone: example.com is not inside zone example.org"
    );
    let twice = format!("{base}  - {{name: example.com, provider: p, signers: [s]}}\n");
    let err = Config::parse(&twice, Path::new("t.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("domains[1].name: example.com is declared twice"),
        "{err}"
    );
}

/// A config of one YAML domain whose `domains_file` (`domains.jsonl`, beside it) holds `list`.
fn with_list(list: &str) -> (tempfile::TempDir, Result<Config, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("domains.jsonl"), list).unwrap();
    let text = "state_dir: /s\nkey_dir: /k\ndefaults: {grace: 2d}\nproviders:\n  p: {type: rfc2136, server: 127.0.0.1}\nsigners:\n  s: {type: opendkim, key_table: /a, signing_table: /b, key_dir: /c, reload: 'true'}\ndomains:\n  - {name: example.com, provider: p, signers: [s]}\ndomains_file: domains.jsonl\n";
    let config = Config::parse(text, &dir.path().join("rotor.yaml"));
    (dir, config)
}

#[test]
fn a_domains_file_adds_one_domain_a_line_with_the_same_fields() {
    let list = "# exported 2026-12-02\n{\"name\": \"a.example.net\", \"provider\": \"p\", \"signers\": [\"s\"]}\n\n{\"name\": \"b.example.net\", \"provider\": \"p\", \"signers\": [\"s\"], \"grace\": \"3d\"}\n";
    let (_dir, config) = with_list(list);
    let config = config.unwrap();
    let names: Vec<&str> = config.domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["example.com", "a.example.net", "b.example.net"]);
    let grace: Vec<u64> = config
        .domains
        .iter()
        .map(|d| d.policy.grace.secs())
        .collect();
    assert_eq!(
        grace,
        [2 * 86400, 2 * 86400, 3 * 86400],
        "defaults apply, overrides win"
    );
    // The list is part of what plans depend on.
    let (_other, again) = with_list(&list.replace("3d", "4d"));
    assert_ne!(again.unwrap().fingerprint, config.fingerprint);
}

#[test]
fn a_bad_line_of_the_domains_file_is_named_with_its_file_line_and_field() {
    let ok = "{\"name\": \"a.example.net\", \"provider\": \"p\", \"signers\": [\"s\"]}\n";
    let cases = [
        (
            "{\"name\": \"b.example.net\", \"provider\": \"p\", \"signers\": [\"s\"], \"grace\": \"soon\"}",
            "grace",
        ),
        (
            "{\"name\": \"b.example.net\", \"provider\": \"nope\", \"signers\": [\"s\"]}",
            "provider \"nope\" is not declared",
        ),
        (
            "{\"name\": \"b.example.net\", \"provider\": \"p\", \"signers\": [\"s\", \"mx9\"]}",
            "signer \"mx9\" is not declared",
        ),
        (
            "{\"name\": \"example.com\", \"provider\": \"p\", \"signers\": [\"s\"]}",
            "name: example.com is declared twice",
        ),
        (
            "{\"name\": \"b.example.net\", \"provider\": \"p\", \"signers\": []}",
            "signers: list at least one signer",
        ),
        (
            "{\"name\": \"b.example.net\", \"provider\": \"p\", \"signers\": [\"s\"], \"ttl\": 0}",
            "ttl: TTL 0 is out of range",
        ),
        ("{\"name\": \"b.example.net\", \"provider\": \"p\"", "EOF"),
        (
            "{\"name\": \"b.example.net\", \"provider\": \"p\", \"signers\": [\"s\"]} {\"name\": \"c.example.net\"}",
            "trailing characters",
        ),
        (
            "{\"name\": \"b.example.net\", \"provider\": \"p\", \"signers\": [\"s\"], \"colour\": 1}",
            "unknown field `colour`",
        ),
    ];
    for (line, expected) in cases {
        let (_dir, config) = with_list(&format!("{ok}{line}\n"));
        let err = config.expect_err(line).to_string();
        assert!(err.contains("domains.jsonl:2:"), "{line}: {err}");
        assert!(err.contains(expected), "{line}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let text = "state_dir: /s\nkey_dir: /k\nproviders:\n  p: {type: rfc2136, server: 127.0.0.1}\nsigners: {}\ndomains_file: missing.jsonl\n";
    let err = Config::parse(text, &dir.path().join("rotor.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rotor.yaml:6:") && err.contains("missing.jsonl"),
        "{err}"
    );
}

#[test]
fn a_shared_store_is_named_by_url_with_its_password_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("store-password");
    std::fs::write(&secret, "s3cret-Pw\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let base = "state_dir: /s\nkey_dir: /k\nproviders:\n  p: {type: rfc2136, server: 127.0.0.1}\nsigners: {}\n";
    let parse =
        |store: &str| Config::parse(&format!("{base}{store}"), &dir.path().join("rotor.yaml"));
    // Absent: sled under state_dir.
    let config = parse("").unwrap();
    assert!(
        matches!(config.store_location(), Ok(rotor_state::Location::Sled(dir)) if dir == Path::new("/s/store"))
    );
    let good = format!(
        "store:\n  url: postgres://rotor@db.example:5432/rotor\n  password_file: {}\n  instance: mx1\n",
        secret.display()
    );
    let config = parse(&good).unwrap();
    let Ok(rotor_state::Location::Postgres(settings)) = config.store_location() else {
        panic!("a PostgreSQL store");
    };
    assert_eq!(settings.instance, "mx1");
    assert_eq!(
        settings.password.as_deref().map(String::as_str),
        Some("s3cret-Pw")
    );
    assert!(
        !format!("{config:?}{settings:?}").contains("s3cret"),
        "never shown"
    );
    for (store, line, expected) in [
        (
            "store:\n  url: mysql://db/rotor\n",
            7,
            "store.url: mysql:// is no store",
        ),
        (
            "store:\n  url: postgres://rotor:hunter2@db/rotor\n",
            7,
            "store.url: the URL holds a password",
        ),
        (
            "store:\n  url: postgres://rotor@db/rotor\n  password_env: X\n  password_file: /nonexistent\n",
            9,
            "store.password_file: set password_file: or password_env:, not both",
        ),
        (
            "store:\n  url: postgres://rotor@db/rotor\n  password_file: /nonexistent\n",
            8,
            "cannot read the store's password file /nonexistent",
        ),
        (
            "store:\n  url: postgres://rotor@db/rotor\n  instance: 'mx 1'\n",
            8,
            "store.instance: \"mx 1\"",
        ),
        (
            "store:\n  url: postgres://rotor@db/rotor\n  pasword_file: /x\n",
            8,
            "unknown field `pasword_file`",
        ),
        (
            "store:\n  url: postgres://rotor@db/rotor?sslmode=require&password=hunter2\n",
            7,
            "store.url: the URL holds a password",
        ),
        (
            "store:\n  url: postgres://rotor@db/rotor\n  lease_for: 1s\n",
            8,
            "store.lease_for: at least 3s",
        ),
        (
            "store:\n  url: postgres://rotor@db/rotor\n  ca_file: ca.pem\n",
            8,
            "store.ca_file: write an absolute path",
        ),
    ] {
        let err = parse(store).expect_err(store).to_string();
        assert!(
            err.contains(&format!("rotor.yaml:{line}:")),
            "{store}: {err}"
        );
        assert!(err.contains(expected), "{store}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
