//! Telling a signer to re-read its configuration: a command, or a signal to the process in a
//! pid file.
//!
//! A pid file is not trusted: it may be stale (its pid now another process's) or planted. The
//! pid must be above 1 and not rotor's own; the file must be a regular file (not a link) that
//! only root, rotor or the signer's own user can write; and the process must be the configured
//! one (its executable's or command name is `process:`). The signal goes through a pidfd opened
//! before that check, so a pid reused after it cannot be hit.

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

use crate::error::{Result, SignerError};
use crate::{command, fs as fsutil};

/// How a signer is reloaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reload {
    /// Run this through `sh -c`, for at most this long.
    Command(String, Duration),
    /// Send a signal to the process in a pid file.
    Signal(PidFile),
}

/// A signal to the signer process named in a pid file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PidFile {
    /// The pid file.
    pub path: PathBuf,
    /// The signal.
    pub signal: Signal,
    /// The name the process must have (its executable's file name or its `comm`).
    pub process: String,
}

impl Reload {
    /// Reloads the signer; an error names the `reload` setting, never its command line.
    pub fn run(&self) -> Result<()> {
        match self {
            Self::Command(line, timeout) => command::run("reload", line, *timeout, None),
            Self::Signal(pid_file) => pid_file.send(),
        }
    }

    /// Checks that the reload can work: the pid file names the live signer process.
    pub fn check(&self) -> Result<()> {
        match self {
            Self::Command(..) => Ok(()),
            Self::Signal(pid_file) => pid_file.target().map(drop),
        }
    }
}

impl PidFile {
    /// Sends the signal to the signer process, once [`PidFile::target`] found it.
    pub fn send(&self) -> Result<()> {
        let (pid, pidfd) = self.target()?;
        pidfd_send_signal(&pidfd, self.signal).map_err(|err| {
            let what = format!(
                "cannot send signal {} to process {pid} (from {})",
                self.signal.as_raw(),
                self.path.display()
            );
            SignerError::io(what, err)
        })
    }

    /// The signer process: its pid and a pidfd on it, opened before it was checked.
    fn target(&self) -> Result<(i32, OwnedFd)> {
        let show = self.path.display();
        let (pid, file) = self.read()?;
        let refuse = |message: String| Err(SignerError::Unsafe(message));
        if pid <= 1 {
            return refuse(format!(
                "pid file {show} holds pid {pid}: refusing to signal it (0, -1 and 1 mean rotor's process group, every process, or init)"
            ));
        }
        if u32::try_from(pid).ok() == Some(std::process::id()) {
            return refuse(format!(
                "pid file {show} holds rotor's own pid {pid}: refusing to signal it"
            ));
        }
        let raw = Pid::from_raw(pid)
            .ok_or_else(|| SignerError::Unsafe(format!("pid file {show} holds no pid above 1")))?;
        let pidfd = pidfd_open(raw, PidfdFlags::empty()).map_err(|err| {
            if err == rustix::io::Errno::SRCH {
                SignerError::NotRunning(format!(
                    "pid file {show}: process {pid} is not running (a stale pid file?)"
                ))
            } else {
                SignerError::io(format!("pid file {show}: cannot open process {pid}"), err)
            }
        })?;
        // From here on, `/proc/PID` is the process of the pidfd, or a newer one the pidfd does
        // not reach: checking a newer one can only refuse, or signal nothing.
        let proc_dir = Path::new("/proc").join(pid.to_string());
        let (uids, gids) = ids(&proc_dir).map_err(|err| {
            SignerError::io(format!("pid file {show}: cannot read process {pid}"), err)
        })?;
        let (owner, group, mode) = (file.uid(), file.gid(), file.mode());
        let euid = nix::unistd::geteuid().as_raw();
        if owner != 0 && owner != euid && !uids.contains(&owner) {
            return refuse(format!(
                "pid file {show} is owned by uid {owner}, neither root, rotor nor the user process {pid} runs as: refusing to trust it"
            ));
        }
        if mode & 0o002 != 0 {
            return refuse(format!(
                "pid file {show} is writable by others (mode {:o}): refusing to trust it; run chmod o-w {show}",
                mode & 0o777
            ));
        }
        // OpenDKIM's `UMask 007` leaves its pid file writable by its own group.
        if mode & 0o020 != 0 && !gids.contains(&group) {
            return refuse(format!(
                "pid file {show} is writable by group {group}, not the group process {pid} runs as (mode {:o}): refusing to trust it; run chmod g-w {show}",
                mode & 0o777
            ));
        }
        let names = names(&proc_dir);
        if !names.iter().any(|name| self.is_process(name)) {
            return refuse(format!(
                "pid file {show}: process {pid} is {}, not {:?} (a stale pid file? set `process:` if the signer's executable has another name)",
                names
                    .first()
                    .map_or("unnamed".to_string(), |name| format!("{name:?}")),
                self.process
            ));
        }
        Ok((pid, pidfd))
    }

    /// The pid in the file, and the file's metadata, read without following a link.
    fn read(&self) -> Result<(i32, fs::Metadata)> {
        let show = self.path.display();
        let mut file = fsutil::open_no_follow(&self.path)
            .map_err(|err| match err {
                SignerError::Unsafe(why) => SignerError::Unsafe(format!("pid file {show}: {why}")),
                other => other,
            })?
            .ok_or_else(|| {
                SignerError::NotRunning(format!(
                    "pid file {show} does not exist: is the signer running?"
                ))
            })?;
        let unreadable = |err| SignerError::io(format!("cannot read pid file {show}"), err);
        let meta = file.metadata().map_err(unreadable)?;
        let mut text = String::new();
        Read::by_ref(&mut file)
            .take(64)
            .read_to_string(&mut text)
            .map_err(unreadable)?;
        let pid = text
            .trim()
            .parse()
            .map_err(|_| SignerError::Unsafe(format!("pid file {show} does not hold a pid")))?;
        Ok((pid, meta))
    }

    /// Whether `name` (an executable's file name, or a `comm` cut to 15 bytes) is the process's.
    fn is_process(&self, name: &str) -> bool {
        let want = self.process.as_str();
        name == want || (name.len() == 15 && want.len() > 15 && want.starts_with(name))
    }
}

/// The real and effective uids and gids of the process at `proc_dir`.
fn ids(proc_dir: &Path) -> std::io::Result<(Vec<u32>, Vec<u32>)> {
    let status = fs::read_to_string(proc_dir.join("status"))?;
    let field = |name: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|rest| {
                rest.split_whitespace()
                    .take(2)
                    .filter_map(|id| id.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok((field("Uid:"), field("Gid:")))
}

/// The names of the process at `proc_dir`: its executable's file name (when rotor may read it),
/// then its `comm`.
fn names(proc_dir: &Path) -> Vec<String> {
    let exe = fs::read_link(proc_dir.join("exe")).ok().and_then(|exe| {
        let name = exe.file_name()?.to_string_lossy().into_owned();
        // An executable replaced by an upgrade is still the signer.
        Some(name.trim_end_matches(" (deleted)").to_string())
    });
    let comm = fs::read_to_string(proc_dir.join("comm"))
        .ok()
        .map(|comm| comm.trim_end_matches('\n').to_string());
    exe.into_iter().chain(comm).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command};

    use super::*;

    fn pid_file(dir: &Path, text: &str) -> PidFile {
        let path = dir.join("signer.pid");
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        PidFile {
            path,
            signal: Signal::USR1,
            process: "opendkim".into(),
        }
    }

    /// `sleep 1000`, run from an executable named `name`.
    fn sleeper(dir: &Path, name: &str) -> Child {
        let exe = dir.join(name);
        fs::copy("/bin/sleep", &exe).unwrap();
        Command::new(exe).arg("1000").spawn().unwrap()
    }

    /// Ends `child` with SIGTERM and returns the signal that ended it: SIGUSR1 if rotor's
    /// signal reached it first (a pending SIGUSR1 is delivered before SIGTERM).
    fn end(mut child: Child) -> i32 {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        child.wait().unwrap().signal().unwrap()
    }

    #[test]
    fn pids_that_mean_a_group_everyone_init_or_rotor_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let own = std::process::id().to_string();
        for (text, why) in [
            ("0", "pid 0: refusing"),
            ("-1", "pid -1: refusing"),
            ("1", "pid 1: refusing"),
            (own.as_str(), "rotor's own pid"),
        ] {
            let reload = Reload::Signal(pid_file(dir.path(), text));
            let err = format!("{:#}", reload.run().unwrap_err());
            assert!(err.contains(why), "{text}: {err}");
            assert!(reload.check().is_err());
        }
    }

    #[test]
    fn a_stranger_in_a_stale_pid_file_is_not_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let stranger = sleeper(dir.path(), "sleep");
        let reload = Reload::Signal(pid_file(dir.path(), &format!("{}\n", stranger.id())));
        let err = format!("{:#}", reload.run().unwrap_err());
        assert!(err.contains("is \"sleep\", not \"opendkim\""), "{err}");
        assert!(format!("{:#}", reload.check().unwrap_err()).contains("not \"opendkim\""));
        assert_eq!(end(stranger), libc_sigterm(), "the stranger got no SIGUSR1");
    }

    #[test]
    fn a_linked_or_writable_pid_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let signer = sleeper(dir.path(), "opendkim");
        let file = pid_file(dir.path(), &signer.id().to_string());
        let link = dir.path().join("link.pid");
        std::os::unix::fs::symlink(&file.path, &link).unwrap();
        let linked = Reload::Signal(PidFile {
            path: link,
            ..file.clone()
        });
        let err = format!("{:#}", linked.run().unwrap_err());
        assert!(err.contains("symbolic link"), "{err}");
        fs::set_permissions(&file.path, fs::Permissions::from_mode(0o666)).unwrap();
        let err = format!("{:#}", Reload::Signal(file).run().unwrap_err());
        assert!(err.contains("writable by others"), "{err}");
        assert_eq!(end(signer), libc_sigterm(), "no signal was sent");
    }

    #[test]
    fn the_configured_signer_gets_the_signal() {
        let dir = tempfile::tempdir().unwrap();
        let signer = sleeper(dir.path(), "opendkim");
        let reload = Reload::Signal(pid_file(dir.path(), &signer.id().to_string()));
        reload.check().unwrap();
        reload.run().unwrap();
        assert_eq!(end(signer), Signal::USR1.as_raw());
    }

    #[test]
    fn a_missing_process_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut gone = sleeper(dir.path(), "opendkim");
        let pid = gone.id();
        gone.kill().unwrap();
        gone.wait().unwrap();
        let reload = Reload::Signal(pid_file(dir.path(), &pid.to_string()));
        let err = format!("{:#}", reload.check().unwrap_err());
        assert!(
            err.contains("not running") || err.contains("not \"opendkim\""),
            "{err}"
        );
    }

    fn libc_sigterm() -> i32 {
        nix::sys::signal::Signal::SIGTERM as i32
    }
}
