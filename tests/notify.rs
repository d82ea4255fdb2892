//! What an operator watches: notifications of every phase change (a webhook on a local HTTP
//! server, and a command reading JSON on stdin) and the Prometheus text file, after real passes
//! against BIND. A webhook that fails is logged and never holds up a rotation.

mod support;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::{Bind, Rotor, Secondary, Setup, scratch};

/// A webhook receiver on loopback: records each POST body and answers with `status`.
struct Webhook {
    port: u16,
    bodies: Arc<Mutex<Vec<Value>>>,
    status: Arc<AtomicU16>,
}

impl Webhook {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let (seen, answer) = (bodies.clone(), status.clone());
        // The thread ends with the test process; it only ever serves loopback.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (seen, answer) = (seen.clone(), answer.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    // Requests on one kept-alive connection, one after another.
                    loop {
                        let mut length = 0;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            if let Some((name, value)) = line.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        seen.lock()
                            .unwrap()
                            .push(serde_json::from_slice(&body).unwrap());
                        let code = answer.load(Ordering::SeqCst);
                        let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n");
                        if stream.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            port,
            bodies,
            status,
        }
    }

    fn phases(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|body| body["phase"].as_str().unwrap_or("-").to_string())
            .collect()
    }
}

#[test]
fn phase_changes_are_notified_and_measured() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let webhook = Webhook::start();
    let events = dir.path().join("events.jsonl");
    let prom = dir.path().join("rotor.prom");
    let mut config = fs::read_to_string(&rotor.config).unwrap();
    config.push_str(&format!(
        "notify:\n  webhook: http://127.0.0.1:{}/hooks/SECRET-TOKEN\n  command: \"cat >> {}; echo >> {}\"\nmetrics_file: {}\n",
        webhook.port,
        events.display(),
        events.display(),
        prom.display()
    ));
    fs::write(&rotor.config, config).unwrap();

    // The first pass, logged as JSON lines for a log collector.
    let out = rotor.cmd(&["-v", "--log-format", "json", "run"]);
    assert!(out.status.success());
    let logs: Vec<Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        logs.iter().any(|l| l["level"] == "INFO"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("example.com: rotation started"))),
        "{logs:?}"
    );
    rotor.run_until("first key active", |r| r.selector_in("active").is_some());
    let selector = rotor.selector_in("active").unwrap();

    // Every phase change reached the webhook, in order, each with a chat-readable text.
    let phases = webhook.phases();
    assert_eq!(
        phases,
        [
            "generated",
            "generated",
            "published",
            "propagated",
            "active"
        ],
        "{:?}",
        webhook.bodies.lock().unwrap()
    );
    let active = webhook.bodies.lock().unwrap()[4].clone();
    assert_eq!(active["domain"], "example.com");
    assert_eq!(active["selector"], selector.as_str());
    assert!(
        active["text"].as_str().unwrap().starts_with(&format!(
            "rotor: example.com {selector} is active: signers mx1 now sign with {selector}"
        )),
        "{active}"
    );
    // The command got the same events, one JSON document each.
    let lines: Vec<Value> = fs::read_to_string(&events)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[4]["phase"], "active");

    // The metrics file, as node_exporter's textfile collector reads it.
    let metrics = fs::read_to_string(&prom).unwrap();
    for line in [
        "rotor_keys{domain=\"example.com\",phase=\"active\"} 1",
        "rotor_keys{domain=\"example.com\",phase=\"published\"} 0",
        "rotor_last_pass_success 1",
        "# TYPE rotor_active_key_age_seconds gauge",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    assert!(
        metrics.contains(&format!(
            "rotor_active_key_age_seconds{{domain=\"example.com\",algorithm=\"rsa-2048\",selector=\"{selector}\"}} "
        )),
        "{metrics}"
    );
    // The last pass only checked DNS and switched the signer: no provider call, no error.
    for line in [
        "rotor_last_pass_provider_calls{provider=\"bind\"} 0",
        "rotor_last_pass_provider_errors{provider=\"bind\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }

    // A webhook that fails is logged (without its secret URL) and the rotation goes on.
    webhook.status.store(500, Ordering::SeqCst);
    let out = rotor.cmd(&["rotate", "example.com"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("notify: the webhook answered 500"),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRET-TOKEN"), "{stderr}");
    assert!(
        rotor.selector_in("published").is_some(),
        "the rotation went on"
    );
    // That pass published through the provider: its calls are counted.
    let metrics = fs::read_to_string(&prom).unwrap();
    let calls: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rotor_last_pass_provider_calls{provider=\"bind\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(calls >= 2, "a listing and an update at least: {calls}");
}
