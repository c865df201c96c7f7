//! `vsadmin`: shows and steers the archive tier of a running `vfsserver` through its admin
//! socket (see `valuestor::server::admin` and `valuestor::tier::admin`).
//!
//! ```text
//! vsadmin [--socket PATH] status
//! vsadmin [--socket PATH] file PATH...
//! vsadmin [--socket PATH] archive|release|recall [-r] PATH...
//! ```
//!
//! Paths are resolved here with `stat` in the mount (a file's `st_ino` is its catalog
//! inode); `-r` walks directories (regular files only, symlinks not followed, other file
//! systems not entered). Exit status: 0 ok, 1 some files failed (each named with the
//! reason), 2 usage, 3 the server cannot be reached.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use valuestor::server::admin::DEFAULT_ADMIN_SOCKET;
use valuestor::tier::admin::{decode_line, Request, REQUEST_MAX};

const USAGE: &str = "usage: vsadmin [--socket PATH] status
       vsadmin [--socket PATH] file PATH...
       vsadmin [--socket PATH] archive|release|recall [-r] PATH...

  status    the archive tier: files per state, bytes waiting to migrate, recall queues,
            cache space and watermarks, volumes, counters, recent errors
  file      each file's state, size, volume and copy, digests
  archive   copy the files to the archive at the next migration round (root only)
  release   drop the local data of archived files now (root only)
  recall    bring released or damaged files back into the cache (root only)
  -r        walk directories: regular files only, no symlinks, not into other mounts
  --socket  the server's AdminSocket (default /run/vs/vsadmin.sock)
Exit status: 0 ok, 1 some files failed, 2 usage, 3 the server cannot be reached.";

/// Longest wait for the server's answer to one request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Most lines one answer may have (a status has a few dozen).
const ANSWER_MAX_LINES: usize = 100_000;

/// Exit status: some files failed.
const FAILED: u8 = 1;
/// Exit status: usage.
const USAGE_ERROR: u8 = 2;
/// Exit status: no server.
const UNREACHABLE: u8 = 3;

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(code) | Err(code) => ExitCode::from(code),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Status,
    File,
    Archive,
    Release,
    Recall,
}

fn run(args: Vec<String>) -> Result<u8, u8> {
    let mut socket = PathBuf::from(DEFAULT_ADMIN_SOCKET);
    let mut recursive = false;
    let mut verb = None;
    let mut paths = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--socket" => match args.next() {
                Some(path) => socket = PathBuf::from(path),
                None => return Err(usage("--socket needs a path")),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(0);
            }
            "-r" if verb.is_some() => recursive = true,
            _ if verb.is_none() => {
                verb = Some(match arg.as_str() {
                    "status" => Verb::Status,
                    "file" => Verb::File,
                    "archive" => Verb::Archive,
                    "release" => Verb::Release,
                    "recall" => Verb::Recall,
                    other => return Err(usage(&format!("unknown command {other:?}"))),
                })
            }
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    let Some(verb) = verb else {
        return Err(usage("no command"));
    };
    match verb {
        Verb::Status if !paths.is_empty() || recursive => {
            return Err(usage("status takes no paths"))
        }
        Verb::File if recursive => return Err(usage("-r is for archive, release and recall")),
        Verb::Status => {}
        _ if paths.is_empty() => return Err(usage("no paths given")),
        _ => {}
    }
    let mut server = Server::connect(&socket)?;
    if verb == Verb::Status {
        let (lines, result) = server.ask(Request::Status)?;
        for line in lines {
            println!("{line}");
        }
        return match result {
            Ok(()) => Ok(0),
            Err(reason) => {
                eprintln!("vsadmin: status: {reason}");
                Ok(FAILED)
            }
        };
    }
    let mount = server.mount()?;
    let mut failed = 0u64;
    let mut fail = |path: &Path, reason: &str| {
        eprintln!("{}: {reason}", path.display());
        failed += 1;
    };
    for path in &paths {
        let files = match resolve(path, &mount, recursive) {
            Ok(files) => files,
            Err(reason) => {
                fail(path, &reason);
                continue;
            }
        };
        for (file, ino) in files {
            let request = match verb {
                Verb::Status | Verb::File => Request::File(ino),
                Verb::Archive => Request::Archive(ino),
                Verb::Release => Request::Release(ino),
                Verb::Recall => Request::Recall(ino),
            };
            let (lines, result) = server.ask(request)?;
            match result {
                Ok(()) if verb == Verb::File => {
                    println!("{}", file.display());
                    for line in lines {
                        println!("  {line}");
                    }
                }
                Ok(()) => println!("{}: {}", file.display(), lines.join("; ")),
                Err(reason) => fail(&file, &reason),
            }
        }
    }
    if failed > 0 {
        eprintln!("vsadmin: {failed} failed");
        return Ok(FAILED);
    }
    Ok(0)
}

fn usage(problem: &str) -> u8 {
    eprintln!("vsadmin: {problem}\n{USAGE}");
    USAGE_ERROR
}

/// The mount as the server names it: its path and device.
struct Mount {
    path: PathBuf,
    dev: u64,
}

/// The files `path` names, with their inode numbers: itself, or with `recursive` every
/// regular file below it on the same file system (symlinks are not followed).
fn resolve(path: &Path, mount: &Mount, recursive: bool) -> Result<Vec<(PathBuf, u64)>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.dev() != mount.dev {
        return Err(format!(
            "not in the ValueStor mount at {}",
            mount.path.display()
        ));
    }
    if !(recursive && meta.is_dir()) {
        return Ok(vec![(path.to_owned(), meta.ino())]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            names.push(entry.path());
        }
        names.sort();
        for child in names {
            let meta = std::fs::symlink_metadata(&child)
                .map_err(|e| format!("{}: {e}", child.display()))?;
            if meta.dev() != mount.dev {
                continue;
            }
            if meta.is_dir() {
                dirs.push(child);
            } else if meta.file_type().is_file() {
                files.push((child, meta.ino()));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A connection to the admin socket.
struct Server {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    socket: PathBuf,
}

impl Server {
    fn connect(socket: &Path) -> Result<Server, u8> {
        let unreachable = |e: std::io::Error| {
            eprintln!(
                "vsadmin: cannot reach the server at {}: {e} (is vfsserver running? \
                 --socket or AdminSocket)",
                socket.display()
            );
            UNREACHABLE
        };
        let stream = UnixStream::connect(socket).map_err(unreachable)?;
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(unreachable)?;
        let reader = BufReader::new(stream.try_clone().map_err(unreachable)?);
        Ok(Server {
            writer: stream,
            reader,
            socket: socket.to_owned(),
        })
    }

    /// Sends `request`; returns the answer's lines and result. A broken conversation is
    /// exit 3.
    fn ask(&mut self, request: Request) -> Result<(Vec<String>, Result<(), String>), u8> {
        let broken = |what: String| {
            eprintln!(
                "vsadmin: the server at {} stopped answering: {what}",
                self.socket.display()
            );
            UNREACHABLE
        };
        self.writer
            .write_all(format!("{request}\n").as_bytes())
            .map_err(|e| broken(e.to_string()))?;
        let mut lines = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut self.reader)
                .take(REQUEST_MAX as u64)
                .read_until(b'\n', &mut line)
                .map_err(|e| broken(e.to_string()))?;
            if read == 0 {
                return Err(broken("connection closed".into()));
            }
            let text = String::from_utf8_lossy(&line);
            if let Some(result) = decode_line(text.trim_end_matches('\n'), &mut lines) {
                return Ok((lines, result));
            }
            if lines.len() > ANSWER_MAX_LINES {
                return Err(broken(format!(
                    "answer longer than {ANSWER_MAX_LINES} lines"
                )));
            }
        }
    }

    /// The mount point the server serves, and its device.
    fn mount(&mut self) -> Result<Mount, u8> {
        let (lines, result) = self.ask(Request::Mount)?;
        let path = match (result, lines.first()) {
            (Ok(()), Some(path)) => PathBuf::from(path),
            (result, _) => {
                eprintln!("vsadmin: the server did not name its mount point: {result:?}");
                return Err(UNREACHABLE);
            }
        };
        let dev = std::fs::metadata(&path)
            .map_err(|e| {
                eprintln!("vsadmin: the mount {}: {e}", path.display());
                UNREACHABLE
            })?
            .dev();
        Ok(Mount { path, dev })
    }
}
