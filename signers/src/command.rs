//! The commands of the configuration (a signer's `reload`, `verify` and `configtest`, the
//! notify `command`), run through `sh -c` in their own process group, with a timeout after which
//! the whole group is killed.
//!
//! A command line often carries credentials, and so may its output: an error names the command
//! by its setting only (`reload: exited with status 1: …`), with at most the last line of its
//! output, shortened and scrubbed of anything that looks like a secret ([`excerpt`]).

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{PidfdFlags, pidfd_open};

use rotor_common::Interval;

use crate::error::{Result, SignerError};

/// How long a command may run when its `timeout:` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The timeout a `timeout:` setting gives.
pub fn timeout(setting: Option<Interval>) -> Duration {
    setting.map_or(DEFAULT_TIMEOUT, |interval| interval.0)
}

/// How long an excerpt of a command's output may be, in characters.
const EXCERPT: usize = 120;

/// Runs `line` (the `setting` of the configuration) through `sh -c`, `stdin` on its standard
/// input; fails if it does not exit 0 within `timeout`, after killing its process group.
pub fn run(setting: &str, line: &str, timeout: Duration, stdin: Option<&[u8]>) -> Result<()> {
    execute(setting, line, timeout, stdin, &[], 0).map(drop)
}

/// As [`run`], with `stdin` on its input and `env` added to its environment; what it printed on
/// its standard output (at most `limit` bytes: more is an error).
pub fn run_capturing(
    setting: &str,
    line: &str,
    timeout: Duration,
    stdin: &[u8],
    env: &[(&str, String)],
    limit: usize,
) -> Result<Vec<u8>> {
    let output = execute(setting, line, timeout, Some(stdin), env, limit)?;
    if output.len() > limit {
        return Err(SignerError::Command {
            setting: setting.into(),
            outcome: format!("printed more than {limit} bytes"),
            transient: false,
        });
    }
    Ok(output)
}

/// Runs the command; its standard output (up to `keep` bytes and one more, so that the caller
/// can tell it printed too much).
fn execute(
    setting: &str,
    line: &str,
    timeout: Duration,
    stdin: Option<&[u8]>,
    env: &[(&str, String)],
    keep: usize,
) -> Result<Vec<u8>> {
    // Files, not pipes: a command that does not read its input, or a process it leaves behind
    // holding its output open, cannot block rotor.
    let input = match stdin {
        Some(bytes) => {
            let mut file = tempfile::tempfile()
                .map_err(|err| SignerError::io("cannot create a temporary file", err))?;
            file.write_all(bytes)
                .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
                .map_err(|err| SignerError::io("cannot write a temporary file", err))?;
            Stdio::from(file)
        }
        None => Stdio::null(),
    };
    let temporary = || {
        tempfile::tempfile().map_err(|err| SignerError::io("cannot create a temporary file", err))
    };
    let (mut stdout, mut stderr) = (temporary()?, temporary()?);
    let clone = |file: &std::fs::File| {
        file.try_clone()
            .map_err(|err| SignerError::io("cannot open a temporary file", err))
    };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(line)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdin(input)
        .stdout(clone(&stdout)?)
        .stderr(clone(&stderr)?)
        .process_group(0)
        .spawn()
        .map_err(|err| SignerError::io(format!("{setting}: cannot start sh"), err))?;
    let status = match wait(&mut child, timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill_group(&mut child);
            return Err(SignerError::TimedOut {
                setting: setting.into(),
                after: seconds(timeout),
            });
        }
        Err(err) => {
            kill_group(&mut child);
            return Err(SignerError::io(
                format!("{setting}: cannot wait for it"),
                err,
            ));
        }
    };
    if status.success() {
        let mut output = Vec::new();
        if keep > 0 {
            stdout
                .seek(SeekFrom::Start(0))
                .and_then(|_| (&mut stdout).take(keep as u64 + 1).read_to_end(&mut output))
                .map_err(|err| {
                    SignerError::io(format!("{setting}: cannot read its output"), err)
                })?;
        }
        return Ok(output);
    }
    let mut said = String::new();
    for file in [&mut stderr, &mut stdout] {
        let mut output = Vec::new();
        if file.seek(SeekFrom::Start(0)).is_ok() && file.read_to_end(&mut output).is_ok() {
            said = excerpt(&output);
        }
        if !said.is_empty() {
            break;
        }
    }
    let transient = status.code().is_none();
    let status = describe(status);
    Err(SignerError::Command {
        setting: setting.into(),
        outcome: if said.is_empty() {
            status
        } else {
            format!("{status}: {said}")
        },
        transient,
    })
}

/// Runs `line` if the `setting` is configured; nothing to run is a success.
pub fn run_optional(setting: &str, line: Option<&String>, timeout: Duration) -> Result<()> {
    line.map_or(Ok(()), |line| run(setting, line, timeout, None))
}

/// Waits for `child` for at most `timeout`: its status, or `None` if it is still running.
fn wait(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let pid = rustix::process::Pid::from_child(child);
    let pidfd = pidfd_open(pid, PidfdFlags::empty())?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let left = Timespec {
            tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: left.subsec_nanos().into(),
        };
        // The pidfd turns readable when the process exits.
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&left)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
}

/// Kills `child`'s process group (the child leads it: it is not reaped yet, so its id cannot
/// have been reused), then reaps it.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// "60s", as `timeout:` is usually written.
fn seconds(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        humantime::format_duration(duration).to_string()
    }
}

/// "exited with status 3", "killed by SIGTERM".
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(signal) => format!("killed by {signal}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => status.to_string(),
    }
}

/// What may be shown of a command's output: its last non-empty line, control characters
/// removed, anything that looks like a credential replaced by `***`, at most 120 characters.
pub fn excerpt(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let line = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or_default();
    let line: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = scrub(&line);
    if clean.chars().count() <= EXCERPT {
        return clean;
    }
    let mut short: String = clean.chars().take(EXCERPT - 1).collect();
    short.push('…');
    short
}

/// Words in a name that make its value a secret.
const SECRET_NAMES: [&str; 9] = [
    "pass",
    "pwd",
    "token",
    "secret",
    "key",
    "auth",
    "credential",
    "cookie",
    "session",
];

fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAMES.iter().any(|word| name.contains(word))
}

/// `line` with credentials replaced by `***`: values of `name=value` and `name: value` whose
/// name says secret (`password`, `token`, `api_key`…), the word after such a flag
/// (`--password X`), everything after `Authorization:` or `Bearer`, a URL's user and password,
/// and long base64 or hex runs.
pub fn scrub(line: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut hide_next = false;
    for word in line.split_whitespace() {
        if hide_next {
            out.push("***".into());
            hide_next = false;
            continue;
        }
        let bare = word.trim_start_matches(['"', '\'', '(', '[', '{']);
        let lower = bare.to_ascii_lowercase();
        if lower.starts_with("authorization") || lower.starts_with("proxy-authorization") {
            // A header: everything after it is the credential.
            let name = bare.split(':').next().unwrap_or(bare);
            out.push(format!("{name}: ***"));
            return out.join(" ");
        }
        if matches!(lower.as_str(), "bearer" | "basic" | "token") {
            out.push(word.into());
            hide_next = true;
            continue;
        }
        if bare.starts_with('-') && !bare.contains('=') && secret_name(bare) {
            out.push(word.into());
            hide_next = true;
            continue;
        }
        let (word, dangling) = scrub_assignments(word);
        hide_next = dangling;
        out.push(scrub_runs(&scrub_userinfo(&word)));
    }
    out.join(" ")
}

/// `word` with the values of its secret `name=value` / `name:value` pairs hidden; whether it
/// ends in such a name with its value in the next word (`password:`).
fn scrub_assignments(word: &str) -> (String, bool) {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find(['=', ':']) {
        let (head, tail) = rest.split_at(at);
        let name_start = head
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .map_or(0, |i| i + 1);
        out.push_str(head);
        out.push_str(&tail[..1]);
        let value = &tail[1..];
        // `://` is a URL, not a value.
        if !secret_name(&head[name_start..]) || value.starts_with("//") {
            rest = value;
            continue;
        }
        let end = value
            .find(['&', ';', ',', '"', '\'', ')', ']', '}'])
            .unwrap_or(value.len());
        if end == 0 && value.is_empty() {
            return (out, true);
        }
        if end > 0 {
            out.push_str("***");
        }
        rest = &value[end..];
    }
    out.push_str(rest);
    (out, false)
}

/// `word` with a URL's `user:password@` hidden.
fn scrub_userinfo(word: &str) -> String {
    if let Some(scheme) = word.find("://") {
        let after = &word[scheme + 3..];
        let host_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        if let Some(at) = after[..host_end].rfind('@') {
            return format!("{}://***{}", &word[..scheme], &after[at..]);
        }
    }
    word.to_string()
}

/// `word` with runs that look like a key or token hidden: 20 or more base64 characters mixing
/// upper case, lower case and digits, or 16 or more hex digits (letters and digits both).
fn scrub_runs(word: &str) -> String {
    let is_run = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-');
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if looks_secret(run) {
            out.push_str("***");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in word.chars() {
        if is_run(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn looks_secret(run: &str) -> bool {
    // Paths are not secrets, whatever their names.
    let core = run.trim_end_matches('=');
    if core.contains('/') && (run.starts_with('/') || core.matches('/').count() > 1) {
        return false;
    }
    let digit = core.chars().any(|c| c.is_ascii_digit());
    let upper = core.chars().any(|c| c.is_ascii_uppercase());
    let lower = core.chars().any(|c| c.is_ascii_lowercase());
    let hex = core.chars().all(|c| c.is_ascii_hexdigit());
    (core.len() >= 20 && digit && upper && lower)
        || (core.len() >= 16 && hex && digit && (upper || lower))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_the_setting_never_the_command_line() {
        let err = run(
            "reload",
            "echo first line >&2; echo 'login failed for password=hunter2' >&2; exit 3 # --token s3cret",
            DEFAULT_TIMEOUT,
            None,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "reload: exited with status 3: login failed for password=***"
        );
        assert!(!err.contains("s3cret") && !err.contains("echo"), "{err}");
    }

    #[test]
    fn a_command_that_hangs_is_killed_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("sleep.pid");
        let line = format!("sleep 1000 & echo $! > {}; wait", pid_file.display());
        let err = run("verify", &line, Duration::from_secs(1), None).unwrap_err();
        assert_eq!(err.kind(), rotor_common::ErrorKind::Transient);
        assert_eq!(err.to_string(), "verify: timed out after 1s");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        // SIGKILL is final, but the dead process is reaped by its new parent when that runs.
        let gone = (0..500).any(|_| {
            let gone = std::fs::read_to_string(&stat).map_or(true, |s| {
                s.rsplit(')').next().unwrap().trim().starts_with('Z')
            });
            if !gone {
                std::thread::sleep(Duration::from_millis(10));
            }
            gone
        });
        assert!(gone, "the background sleep {pid} was killed too");
    }

    #[test]
    fn stdin_is_given_and_output_need_not_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("in");
        run(
            "notify.command",
            &format!("cat > {}", out.display()),
            DEFAULT_TIMEOUT,
            Some(b"{\"a\":1}"),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"a\":1}");
        // A command that ignores its input and floods its output still just runs.
        run(
            "reload",
            "head -c 1000000 /dev/zero",
            DEFAULT_TIMEOUT,
            Some(&[0; 1 << 20]),
        )
        .unwrap();
    }

    #[test]
    fn credentials_are_scrubbed_from_excerpts() {
        let cases = [
            (
                "error: password=hunter2 rejected",
                "error: password=*** rejected",
            ),
            (
                "curl: --password hunter2 failed",
                "curl: --password *** failed",
            ),
            ("GET /?token=abc&x=1 401", "GET /?token=***&x=1 401"),
            ("Authorization: Bearer abc.def", "Authorization: ***"),
            ("api_key: abcdef", "api_key: ***"),
            (
                "cannot reach https://admin:pw@api.example.net/v1",
                "cannot reach https://***@api.example.net/v1",
            ),
            (
                "bad key dGhpcyBpcyBhIFNlY3JldCBrZXkgMTIz end",
                "bad key *** end",
            ),
            ("hash 9f86d081884c7d659a2feaa0c55ad015", "hash ***"),
            (
                "cannot open /etc/opendkim/keys/example.com.rotor20261130.pem",
                "cannot open /etc/opendkim/keys/example.com.rotor20261130.pem",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(scrub(line), want, "{line}");
        }
    }

    #[test]
    fn an_excerpt_is_the_last_line_shortened() {
        let long = "x".repeat(300);
        let text = format!("first\n{long}\n\n");
        let short = excerpt(text.as_bytes());
        assert_eq!(short.chars().count(), 120);
        assert!(short.ends_with('…'));
        assert_eq!(excerpt(b"one\ntwo\n  \n"), "two");
        assert_eq!(excerpt(b"a\x1b[31mred"), "a [31mred");
    }
}
