//! Seeds a store with N domains for benchmarks, without generating keys:
//!
//! ```text
//! cargo run --release -p rotor-state --example seed -- STORE_DIR N [KEY_DIR]
//! ```
//!
//! Each domain `d00001.bench.test` … (the names `bench/gen-config.py` writes) gets one active
//! RSA-2048 key as rotor leaves it after a rotation: selector `rotorYYYYMMDD` of today, a TXT
//! record of realistic size, `since` and `activated_at` now (so nothing is due for
//! `rotate_every` of `bench/gen-config.py`), signed by `mx1`, and the four history events of
//! its life. The key files are not written: an idle pass does not read them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use rotor_state::{Event, KeyAlgorithm, KeyRecord, Phase, Store};

/// Domains written per commit.
const BATCH: usize = 1000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, count, key_dir) = match args.as_slice() {
        [dir, count] | [dir, count, _] => match count.parse::<usize>() {
            Ok(count) if count > 0 => {
                let key_dir = args
                    .get(2)
                    .map_or_else(|| Path::new(dir).join("../keys"), PathBuf::from);
                (PathBuf::from(dir), count, key_dir)
            }
            _ => return usage(),
        },
        _ => return usage(),
    };
    match seed(&dir, count, &key_dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("seed: {err}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: seed STORE_DIR N [KEY_DIR]  (N > 0; KEY_DIR defaults to STORE_DIR/../keys)");
    ExitCode::from(2)
}

fn seed(dir: &Path, count: usize, key_dir: &Path) -> Result<(), rotor_state::StoreError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let selector = format!("rotor{}", ymd(now));
    let width = count.to_string().len().max(5);
    let store = Store::open(dir)?;
    let mut done = 0;
    while done < count {
        let end = (done + BATCH).min(count);
        let mut records = Vec::with_capacity(end - done);
        let mut events = Vec::with_capacity(4 * (end - done));
        for i in done + 1..=end {
            let domain = format!("d{i:0width$}.bench.test");
            records.push(active_key(&domain, &selector, key_dir, now, i));
            for (phase, detail) in [
                (Phase::Generated, "rsa-2048 key generated"),
                (
                    Phase::Published,
                    "TXT record added at bind (zone bench.test)",
                ),
                (
                    Phase::Propagated,
                    "every server returned the record: 127.0.0.1:53",
                ),
                (Phase::Active, "signers switched: mx1 signing"),
            ] {
                events.push(Event {
                    at: now,
                    domain: domain.clone(),
                    selector: selector.clone(),
                    phase,
                    detail: detail.to_string(),
                });
            }
        }
        let changes: Vec<(Option<&KeyRecord>, &KeyRecord)> =
            records.iter().map(|record| (None, record)).collect();
        store.commit(&changes, &events)?;
        done = end;
    }
    store.close()?;
    println!("{count} domains seeded in {}", dir.display());
    Ok(())
}

/// An active key as rotor records it after a rotation that went through.
fn active_key(domain: &str, selector: &str, key_dir: &Path, now: u64, seed: usize) -> KeyRecord {
    let key_file = key_dir.join(domain).join(format!("{selector}.pem"));
    KeyRecord {
        phase: Phase::Active,
        record: Some(format!("v=DKIM1; k=rsa; p={}", fake_public_key(seed))),
        zone: Some("bench.test".to_string()),
        published_at: Some(now),
        activated_at: Some(now),
        signers: BTreeMap::from([("mx1".to_string(), "signing".to_string())]),
        ..KeyRecord::reserved(domain, selector, KeyAlgorithm::Rsa2048, key_file, now)
    }
}

/// 392 base64 characters, the size of an RSA-2048 SubjectPublicKeyInfo, varying with `seed`.
fn fake_public_key(seed: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state = (seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let body: String = (0..388)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(ALPHABET[(state % 64) as usize])
        })
        .collect();
    format!("MIIB{body}")
}

/// `YYYYMMDD` of the UTC day of `secs` (Unix seconds).
fn ymd(secs: u64) -> String {
    // Howard Hinnant's civil_from_days.
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}")
}
