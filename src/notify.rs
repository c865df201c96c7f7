//! systemd's notify protocol (`sd_notify`): `READY=1`, `STATUS=...`, `STOPPING=1`, `WATCHDOG=1`.
//!
//! A datagram to the socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract
//! socket). Without that variable every call is a no-op, so the server runs the same way
//! outside systemd.
//!
//! `STATUS=` is sent only when the text changes and `STOPPING=1` only once, so callers can
//! report their state from a loop without flooding the service manager.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Sends state changes to the service manager, if there is one.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
    /// The last `STATUS=` text sent.
    last_status: Mutex<Option<String>>,
    /// Whether `STOPPING=1` was sent.
    stopping_sent: AtomicBool,
}

#[derive(Debug)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// A notifier for `$NOTIFY_SOCKET` and `$WATCHDOG_USEC`, as systemd sets them.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|socket| {
            let bytes = socket.as_encoded_bytes();
            match bytes.first() {
                Some(b'@') => Some(Target::Abstract(bytes[1..].to_vec())),
                Some(b'/') => Some(Target::Path(PathBuf::from(socket))),
                _ => None,
            }
        });
        let watchdog_for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.parse::<u64>().ok())
            .filter(|&usec| usec > 0 && watchdog_for_us)
            .map(Duration::from_micros);
        Notifier::new(target, watchdog)
    }

    /// A notifier that sends to the socket at `path` (tests and tools).
    pub fn to_path(path: impl Into<PathBuf>) -> Notifier {
        Notifier::new(Some(Target::Path(path.into())), None)
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier::new(None, None)
    }

    fn new(target: Option<Target>, watchdog: Option<Duration>) -> Notifier {
        Notifier {
            target,
            watchdog,
            last_status: Mutex::new(None),
            stopping_sent: AtomicBool::new(false),
        }
    }

    /// Whether a service manager listens.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often the watchdog must be fed (`WatchdogSec`), if it is enabled.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// The service is up: the mount is live.
    pub fn ready(&self) -> io::Result<()> {
        self.send("READY=1")
    }

    /// A one-line status shown by `systemctl status`; sent only when it differs from the
    /// last one (newlines are dropped).
    pub fn status(&self, status: &str) -> io::Result<()> {
        let line: String = status.chars().filter(|&c| c != '\n').collect();
        let mut last = self.last_status.lock();
        if last.as_deref() == Some(line.as_str()) {
            return Ok(());
        }
        self.send(&format!("STATUS={line}"))?;
        *last = Some(line);
        Ok(())
    }

    /// The service is shutting down; sent once, later calls do nothing.
    pub fn stopping(&self) -> io::Result<()> {
        if self.stopping_sent.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.send("STOPPING=1")
    }

    /// Feeds the watchdog.
    pub fn watchdog(&self) -> io::Result<()> {
        self.send("WATCHDOG=1")
    }

    /// Sends one message; a no-op without a target.
    pub fn send(&self, message: &str) -> io::Result<()> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let socket = UnixDatagram::unbound()?;
        match target {
            Target::Path(path) => socket.send_to(message.as_bytes(), path)?,
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(message.as_bytes(), &addr)?
            }
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_arrive_on_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::to_path(&path);
        notifier.status("waiting for\nthe database").unwrap();
        notifier.ready().unwrap();
        notifier.stopping().unwrap();
        let mut buf = [0u8; 256];
        let mut next = || {
            let n = listener.recv(&mut buf).unwrap();
            String::from_utf8(buf[..n].to_vec()).unwrap()
        };
        assert_eq!(next(), "STATUS=waiting forthe database");
        assert_eq!(next(), "READY=1");
        assert_eq!(next(), "STOPPING=1");
    }

    #[test]
    fn status_is_sent_only_when_it_changes_and_stopping_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let notifier = Notifier::to_path(&path);
        notifier.status("waiting").unwrap();
        notifier.status("waiting").unwrap();
        notifier.status("mounted").unwrap();
        notifier.status("waiting").unwrap();
        notifier.stopping().unwrap();
        notifier.stopping().unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 256];
        // Datagrams to a bound socket are queued at once: all sent ones are there now.
        while let Ok(n) = listener.recv(&mut buf) {
            received.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        assert_eq!(
            received,
            [
                "STATUS=waiting",
                "STATUS=mounted",
                "STATUS=waiting",
                "STOPPING=1"
            ]
        );
    }

    #[test]
    fn disabled_notifier_sends_nothing_and_succeeds() {
        let notifier = Notifier::disabled();
        assert!(!notifier.is_enabled());
        notifier.ready().unwrap();
    }
}
