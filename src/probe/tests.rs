//! Verification of probes signed here by mail-auth's own signer with rotor's keys.

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use rotor_keys::{KeyAlgorithm, PrivateKey};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use super::*;

const MESSAGE: &str = "From: <rotor-probe@example.com>\r\nTo: <rotor-probe@example.com>\r\nSubject: rotor signing probe 1\r\nMessage-ID: <1@example.com>\r\n\r\nThis message checks the signer.\r\n";

/// A new key pair, and its record.
struct Key {
    private: PrivateKey,
    algorithm: KeyAlgorithm,
}

/// A key of `algorithm` and its record.
fn key(algorithm: KeyAlgorithm) -> (Key, String) {
    let private = PrivateKey::generate(algorithm).unwrap();
    let record = private.record().unwrap().to_string();
    (Key { private, algorithm }, record)
}

/// The DKIM-Signature header of `message` signed by `key` for `domain` under `selector`.
fn signature(key: &Key, domain: &str, selector: &str, message: &str) -> String {
    let der = PrivateKeyDer::from_pem_slice(key.private.pem().as_bytes()).unwrap();
    let headers = ["From", "To", "Subject", "Message-ID"];
    let signed = if key.algorithm == KeyAlgorithm::Ed25519 {
        let PrivateKeyDer::Pkcs8(der) = der else {
            panic!("an Ed25519 key is PKCS#8")
        };
        let ed = Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der()).unwrap();
        DkimSigner::from_key(ed)
            .domain(domain)
            .selector(selector)
            .headers(headers)
            .sign(message.as_bytes())
    } else {
        let rsa = RsaKey::<Sha256>::from_key_der(der).unwrap();
        DkimSigner::from_key(rsa)
            .domain(domain)
            .selector(selector)
            .headers(headers)
            .sign(message.as_bytes())
    };
    signed.unwrap().to_header()
}

fn expect<'a>(selector: &'a str, record: &'a str) -> Expected<'a> {
    Expected { selector, record }
}

#[tokio::test]
async fn a_signature_with_the_new_selector_and_its_published_key_passes() {
    let (new, record) = key(KeyAlgorithm::Rsa2048);
    let signed = signature(&new, "example.com", "new", MESSAGE) + MESSAGE;
    let result = verify(signed.as_bytes(), "example.com", &[expect("new", &record)]).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn each_way_a_probe_can_fail_is_named() {
    let (new, record) = key(KeyAlgorithm::Rsa2048);
    let (old, _) = key(KeyAlgorithm::Rsa2048);
    let (_, other_record) = key(KeyAlgorithm::Rsa2048);
    let expected = [expect("new", &record)];

    let unsigned = verify(MESSAGE.as_bytes(), "example.com", &expected).await;
    assert_eq!(unsigned, Err(ProbeFailure::Unsigned));

    let foreign = signature(&new, "example.net", "new", MESSAGE) + MESSAGE;
    let foreign = verify(foreign.as_bytes(), "example.com", &expected).await;
    assert_eq!(foreign, Err(ProbeFailure::Unsigned), "d= another domain");

    let stale = signature(&old, "example.com", "old", MESSAGE) + MESSAGE;
    let stale = verify(stale.as_bytes(), "example.com", &expected).await;
    assert_eq!(
        stale,
        Err(ProbeFailure::WrongSelector {
            expected: "new".into(),
            found: vec!["old".into()]
        })
    );
    assert!(
        stale
            .unwrap_err()
            .to_string()
            .contains("still uses the previous key")
    );

    let signed = signature(&new, "example.com", "new", MESSAGE) + MESSAGE;
    let changed = signed.replace("checks the signer", "checks the signex");
    let changed = verify(changed.as_bytes(), "example.com", &expected).await;
    assert_eq!(
        changed,
        Err(ProbeFailure::BodyHash {
            selector: "new".into()
        })
    );

    // The signer signs under the new selector, but with a key that is not the published one.
    let mismatch = verify(
        signed.as_bytes(),
        "example.com",
        &[expect("new", &other_record)],
    )
    .await;
    assert_eq!(
        mismatch,
        Err(ProbeFailure::KeyMismatch {
            selector: "new".into()
        })
    );

    let revoked = verify(
        signed.as_bytes(),
        "example.com",
        &[expect("new", "v=DKIM1; k=rsa; p=")],
    )
    .await;
    let Err(ProbeFailure::Invalid { detail, .. }) = revoked else {
        panic!("{revoked:?}")
    };
    assert!(detail.contains("revoked"), "{detail}");

    assert_eq!(
        verify(b"\0\0\0", "example.com", &expected).await,
        Err(ProbeFailure::Unparsable)
    );
}

#[tokio::test]
async fn dual_signing_needs_both_signatures() {
    let (rsa, rsa_record) = key(KeyAlgorithm::Rsa2048);
    let (ed, ed_record) = key(KeyAlgorithm::Ed25519);
    let both_expected = [expect("r1", &rsa_record), expect("e1", &ed_record)];
    let rsa_only = signature(&rsa, "example.com", "r1", MESSAGE) + MESSAGE;
    let both = signature(&ed, "example.com", "e1", MESSAGE) + &rsa_only;
    assert_eq!(
        verify(both.as_bytes(), "example.com", &both_expected).await,
        Ok(())
    );
    let missing = verify(rsa_only.as_bytes(), "example.com", &both_expected).await;
    assert_eq!(
        missing,
        Err(ProbeFailure::WrongSelector {
            expected: "e1".into(),
            found: vec!["r1".into()]
        })
    );
}
