//! The admin socket (`AdminSocket`, default `/run/vs/vsadmin.sock`): `vsadmin` asks the
//! running server about the archive tier and steers it, in the protocol of
//! [`crate::tier::admin`].
//!
//! - The socket is bound before the mount ([`AdminListener::bind`]), so a second server
//!   configured with the same socket refuses to start while the first one answers; a
//!   stale socket (nobody answers: a crash) is replaced. Its directory is made 0755, the
//!   socket is 0666 (anyone may read the status), and it is removed at stop if it is still
//!   the one this server bound.
//! - One thread accepts; [`WORKERS`] threads answer, one client each; a client beyond them
//!   gets a "busy" answer at once. Each request line waits at most [`READ_TIMEOUT`] and is
//!   at most [`REQUEST_MAX`] bytes, so a silent or flooding client holds one worker for
//!   seconds at most per request.
//! - The peer's uid comes from `SO_PEERCRED`: `status`, `file` and `mount` for anyone,
//!   `archive`, `release` and `recall` for uid 0 only (others get [`ROOT_ONLY`], and the
//!   refusal is logged).

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::meta::{Kind, MetaEngine, MetaError};
use crate::tier::admin::{
    encode_answer, file_lines, status_lines, Request, REQUEST_MAX, ROOT_ONLY,
};
use crate::tier::{Tier, TierError};

pub use crate::config::DEFAULT_ADMIN_SOCKET;
/// Clients answered at once.
pub const WORKERS: usize = 4;
/// Longest wait for one request line (and for the client to take an answer).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The admin socket, bound but not answering yet.
#[derive(Debug)]
pub struct AdminListener {
    /// `None` once serving (the socket is then the [`AdminSocket`]'s to remove).
    listener: Option<UnixListener>,
    path: PathBuf,
    /// Device and inode of the socket file bound, to remove only our own at stop.
    id: (u64, u64),
}

/// What a request is answered from.
pub struct AdminHandler {
    /// Where the file system is mounted (for `mount`).
    pub mountpoint: PathBuf,
    /// The catalog (inode checks, paths).
    pub catalog: Arc<dyn MetaEngine>,
    /// The archive tier, when ArchiveFolder is set.
    pub tier: Option<Arc<Tier>>,
}

/// The admin socket answering; stops and removes its socket when dropped.
pub struct AdminSocket {
    path: PathBuf,
    id: (u64, u64),
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl AdminListener {
    /// Binds `path`: makes its directory (0755) if missing, replaces a stale socket, and
    /// refuses when another process answers on it or when the path is no socket.
    pub fn bind(path: &Path) -> Result<AdminListener, String> {
        let context = |what: &str, e: std::io::Error| {
            format!("admin socket {} (AdminSocket): {what}: {e}", path.display())
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(dir)
                    .map_err(|e| context("making its directory", e))?;
            }
        }
        let listener = match UnixListener::bind(path) {
            Ok(listener) => listener,
            Err(e) if e.kind() == ErrorKind::AddrInUse => {
                let meta = std::fs::symlink_metadata(path).map_err(|e| context("stat", e))?;
                if !meta.file_type().is_socket() {
                    return Err(format!(
                        "admin socket {} (AdminSocket): the path exists and is no socket; \
                         nothing was changed: remove it or set AdminSocket elsewhere",
                        path.display()
                    ));
                }
                if UnixStream::connect(path).is_ok() {
                    return Err(format!(
                        "admin socket {} (AdminSocket): another server answers on it; stop \
                         that server or give this one another AdminSocket",
                        path.display()
                    ));
                }
                log::warn!(
                    "admin socket {}: replacing a stale socket nobody answers on (a crash?)",
                    path.display()
                );
                std::fs::remove_file(path).map_err(|e| context("removing the stale socket", e))?;
                UnixListener::bind(path).map_err(|e| context("bind", e))?
            }
            Err(e) => return Err(context("bind", e)),
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| context("chmod 0666", e))?;
        let meta = std::fs::symlink_metadata(path).map_err(|e| context("stat", e))?;
        Ok(AdminListener {
            listener: Some(listener),
            path: path.to_owned(),
            id: (meta.dev(), meta.ino()),
        })
    }

    /// Starts answering requests from `handler`.
    pub fn serve(mut self, handler: AdminHandler) -> Result<AdminSocket, String> {
        let Some(listener) = self.listener.take() else {
            return Err("admin socket: already serving".into());
        };
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let (tx, rx) = mpsc::sync_channel::<UnixStream>(0);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..WORKERS {
            let rx = Arc::clone(&rx);
            let handler = Arc::clone(&handler);
            spawn(&format!("vs-admin{n}"), move || loop {
                // The lock is held only while waiting for the next client.
                let next = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                match next {
                    Ok(stream) => answer_client(&handler, stream),
                    Err(_) => return,
                }
            })?;
        }
        let accept_stop = Arc::clone(&stop);
        let accept = spawn("vs-admin-accept", move || {
            for stream in listener.incoming() {
                if accept_stop.load(Ordering::SeqCst) {
                    break;
                }
                match stream {
                    Ok(stream) => {
                        if let Err(mpsc::TrySendError::Full(mut stream)) = tx.try_send(stream) {
                            let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
                            let busy = Err(format!(
                                "server busy: {WORKERS} admin clients are being answered; try again"
                            ));
                            let _ = stream.write_all(encode_answer(&[], &busy).as_bytes());
                        }
                    }
                    Err(e) => {
                        log::warn!("admin socket: accept failed: {e}");
                        // Out of descriptors or memory: do not spin on it.
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })?;
        log::info!("admin socket: {} (vsadmin)", self.path.display());
        Ok(AdminSocket {
            path: self.path.clone(),
            id: self.id,
            stop,
            accept: Some(accept),
        })
    }
}

impl Drop for AdminListener {
    /// A start that failed before serving removes the socket it bound.
    fn drop(&mut self) {
        if self.listener.take().is_some() {
            remove_if_ours(&self.path, self.id);
        }
    }
}

impl AdminSocket {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting (clients being answered finish their request) and removes the
    /// socket if it is still the one bound here.
    pub fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept thread, which then sees the stop.
        let woke = UnixStream::connect(&self.path).is_ok();
        if woke {
            let _ = accept.join();
        }
        remove_if_ours(&self.path, self.id);
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        self.stop();
    }
}

impl AdminHandler {
    /// The answer to `request` from a peer with user id `uid`: its lines and whether it
    /// succeeded (the reason when not).
    pub fn answer(&self, request: Request, uid: u32) -> (Vec<String>, Result<(), String>) {
        if request.is_change() && uid != 0 {
            log::warn!("admin socket: refused \"{request}\" from uid {uid}: root only");
            return (Vec::new(), Err(ROOT_ONLY.into()));
        }
        if let Some(ino) = request.ino() {
            if let Err(reason) = self.check_file(ino) {
                return (Vec::new(), Err(reason));
            }
        }
        if request == Request::Mount {
            return (vec![self.mountpoint.display().to_string()], Ok(()));
        }
        let Some(tier) = &self.tier else {
            let reason = "no archive tier: ArchiveFolder is not set in the config";
            return (Vec::new(), Err(reason.into()));
        };
        let done = |result: Result<(), TierError>| result.map_err(|e| e.to_string());
        match request {
            Request::Mount => (vec![self.mountpoint.display().to_string()], Ok(())),
            Request::Status => (status_lines(&tier.status()), Ok(())),
            Request::File(ino) => match tier.file_status(ino) {
                Ok(file) => {
                    let path = self.catalog.path_of(ino).ok();
                    (file_lines(&file, path.as_deref()), Ok(()))
                }
                Err(e) => (Vec::new(), Err(e.to_string())),
            },
            Request::Archive(ino) => {
                let result = done(tier.archive_now(ino));
                log_change(request, uid, &result);
                (vec!["archive requested".into()], result)
            }
            Request::Release(ino) => {
                let result = done(tier.release_now(ino));
                log_change(request, uid, &result);
                (vec!["released".into()], result)
            }
            Request::Recall(ino) => {
                let result = done(tier.recall_now(ino).map(|_| ()));
                log_change(request, uid, &result);
                (vec!["recall queued".into()], result)
            }
        }
    }

    /// The inode exists and is a regular file.
    fn check_file(&self, ino: u64) -> Result<(), String> {
        match self.catalog.get_attr(ino) {
            Ok(attr) if attr.kind == Kind::File => Ok(()),
            Ok(attr) => Err(format!(
                "inode {ino} is not a regular file ({})",
                kind_name(attr.kind)
            )),
            Err(MetaError::Errno(libc::ENOENT)) => Err(format!("no inode {ino} in the catalog")),
            Err(e) => Err(format!("catalog: {e}")),
        }
    }
}

fn log_change(request: Request, uid: u32, result: &Result<(), String>) {
    match result {
        Ok(()) => log::info!("admin socket: \"{request}\" by uid {uid}"),
        Err(e) => log::info!("admin socket: \"{request}\" by uid {uid} failed: {e}"),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::File => "regular file",
        Kind::Directory => "directory",
        Kind::Symlink => "symbolic link",
        Kind::Fifo => "named pipe",
        Kind::Socket => "socket",
        Kind::CharDevice => "character device",
        Kind::BlockDevice => "block device",
    }
}

/// Answers the requests of one client until it closes, times out or sends a bad line.
fn answer_client(handler: &AdminHandler, stream: UnixStream) {
    let uid =
        match nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials) {
            Ok(creds) => creds.uid(),
            Err(e) => {
                log::warn!("admin socket: no peer credentials ({e}); client dropped");
                return;
            }
        };
    if stream.set_read_timeout(Some(READ_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(READ_TIMEOUT)).is_err()
    {
        return;
    }
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader
            .by_ref()
            .take(REQUEST_MAX as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) => return,
            Ok(_) => {}
            // A timeout or a broken connection: nothing to answer.
            Err(_) => return,
        }
        let (lines, result, last) = if line.last() != Some(&b'\n') && line.len() >= REQUEST_MAX {
            let reason = format!("request longer than {REQUEST_MAX} bytes");
            (Vec::new(), Err(reason), true)
        } else {
            match std::str::from_utf8(&line).map_err(|_| "request is not UTF-8".to_owned()) {
                Ok(text) => match Request::parse(text.trim_end_matches(['\n', '\r'])) {
                    Ok(request) => {
                        let (lines, result) = handler.answer(request, uid);
                        (lines, result, false)
                    }
                    Err(reason) => (Vec::new(), Err(reason), false),
                },
                Err(reason) => (Vec::new(), Err(reason), true),
            }
        };
        if writer
            .write_all(encode_answer(&lines, &result).as_bytes())
            .is_err()
            || last
        {
            return;
        }
    }
}

fn remove_if_ours(path: &Path, id: (u64, u64)) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if (meta.dev(), meta.ino()) == id => {
            if let Err(e) = std::fs::remove_file(path) {
                log::warn!("admin socket {}: not removed: {e}", path.display());
            }
        }
        _ => {}
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| format!("cannot start the admin socket's thread {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{MemoryMeta, NewNode, ROOT_INO};

    fn handler() -> (AdminHandler, u64, u64) {
        let meta = Arc::new(MemoryMeta::new(0, 0));
        let node = |kind| NewNode {
            kind,
            perm: 0o644,
            uid: 0,
            gid: 0,
            rdev: 0,
            target: None,
        };
        let file = meta.create(ROOT_INO, b"f", &node(Kind::File)).unwrap().ino;
        let dir = meta
            .create(ROOT_INO, b"d", &node(Kind::Directory))
            .unwrap()
            .ino;
        let handler = AdminHandler {
            mountpoint: "/mnt/vs".into(),
            catalog: meta,
            tier: None,
        };
        (handler, file, dir)
    }

    #[test]
    fn changes_are_refused_to_anyone_but_root() {
        let (handler, file, _) = handler();
        for request in [
            Request::Archive(file),
            Request::Release(file),
            Request::Recall(file),
        ] {
            assert_eq!(
                handler.answer(request, 1000).1,
                Err(ROOT_ONLY.to_owned()),
                "{request}"
            );
            assert_ne!(
                handler.answer(request, 0).1,
                Err(ROOT_ONLY.to_owned()),
                "{request}"
            );
        }
        assert_eq!(
            handler.answer(Request::Mount, 1000),
            (vec!["/mnt/vs".into()], Ok(()))
        );
    }

    #[test]
    fn requests_name_existing_regular_files_only() {
        let (handler, _, dir) = handler();
        assert_eq!(
            handler.answer(Request::File(dir), 0).1,
            Err(format!("inode {dir} is not a regular file (directory)"))
        );
        assert_eq!(
            handler.answer(Request::Archive(999), 0).1,
            Err("no inode 999 in the catalog".to_owned())
        );
    }

    #[test]
    fn a_live_socket_refuses_a_second_bind_and_a_stale_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/admin.sock");
        let first = AdminListener::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666, "socket mode {mode:o}");
        let err = AdminListener::bind(&path).unwrap_err();
        assert!(err.contains("another server answers on it"), "{err}");
        drop(first);
        assert!(
            !path.exists(),
            "a listener that never served removes its socket"
        );
        // A crash leaves the file with nobody listening.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "a stale socket file to replace");
        let second = AdminListener::bind(&path).unwrap();
        let (handler, _, _) = handler();
        let mut socket = second.serve(handler).unwrap();
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(b"mount\n").unwrap();
        let mut answer = String::new();
        let mut reader = BufReader::new(client);
        while !answer.ends_with(".ok\n") && reader.read_line(&mut answer).unwrap() > 0 {}
        assert_eq!(answer, "/mnt/vs\n.ok\n");
        socket.stop();
        assert!(!path.exists(), "socket removed at stop");
    }

    #[test]
    fn a_path_that_is_no_socket_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        std::fs::write(&path, b"keep").unwrap();
        let err = AdminListener::bind(&path).unwrap_err();
        assert!(err.contains("is no socket"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep");
    }
}
