//! A mixed metadata and data workload through a mounted file system that keeps a ledger of
//! what was acknowledged (creates with write and fsync, renames, unlinks, mkdirs), so a test
//! can check afterwards that nothing acknowledged was lost and nothing else appeared.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the workload's threads were told succeeded, and what failed.
#[derive(Default)]
pub struct Ledger {
    /// Regular files that must exist, by name, with their content.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Directories that must exist.
    pub dirs: BTreeSet<String>,
    /// Names that must not exist (unlinked, or renamed away).
    pub gone: BTreeSet<String>,
    /// Operations that failed: what, and the error.
    pub errors: Vec<String>,
    /// When each acknowledged operation completed.
    pub completions: Vec<Instant>,
}

impl Ledger {
    /// Acknowledged operations so far.
    pub fn acknowledged(&self) -> usize {
        self.completions.len()
    }

    /// The first completion at or after `since`.
    pub fn first_completion_after(&self, since: Instant) -> Option<Instant> {
        self.completions
            .iter()
            .copied()
            .filter(|&t| t >= since)
            .min()
    }
}

/// Worker threads running the workload in one directory each until stopped.
pub struct Workload {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Shared by the threads.
    pub ledger: Arc<Mutex<Ledger>>,
    root: PathBuf,
}

impl Workload {
    /// Starts `threads` workers under `root` (each in `root/w<N>`).
    pub fn start(root: &Path, threads: usize) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let threads = (0..threads)
            .map(|t| {
                let dir = format!("w{t}");
                fs::create_dir(root.join(&dir)).expect("create workload directory");
                ledger.lock().unwrap().dirs.insert(dir.clone());
                let (stop, ledger, root) = (stop.clone(), ledger.clone(), root.to_path_buf());
                std::thread::spawn(move || worker(&root, &dir, &stop, &ledger))
            })
            .collect();
        Workload {
            stop,
            threads,
            ledger,
            root: root.to_path_buf(),
        }
    }

    /// Acknowledged operations so far.
    pub fn acknowledged(&self) -> usize {
        self.ledger.lock().unwrap().acknowledged()
    }

    /// Waits until `more` operations beyond `from` were acknowledged; panics after `limit`
    /// with the errors seen.
    pub fn await_acknowledged(&self, from: usize, more: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.acknowledged() < from + more {
            let ledger = self.ledger.lock().unwrap();
            assert!(
                Instant::now() < deadline,
                "only {} of {more} operations acknowledged within {limit:?}; errors: {:?}",
                ledger.acknowledged() - from,
                ledger.errors
            );
            drop(ledger);
            // The workload's threads give no notification per operation.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the threads and returns the ledger.
    pub fn stop(mut self) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            thread.join().expect("workload thread panicked");
        }
        std::mem::take(&mut *self.ledger.lock().unwrap())
    }

    /// Every difference between the ledger and the tree under the root: missing or wrong
    /// files, names that should be gone, entries nobody acknowledged.
    pub fn differences(ledger: &Ledger, root: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, content) in &ledger.files {
            match fs::read(root.join(name)) {
                Ok(read) if read == *content => {}
                Ok(read) => problems.push(format!(
                    "{name}: {} bytes read, {} acknowledged (content differs)",
                    read.len(),
                    content.len()
                )),
                Err(e) => problems.push(format!("{name}: acknowledged, now {e}")),
            }
        }
        for dir in &ledger.dirs {
            if !root.join(dir).is_dir() {
                problems.push(format!("{dir}/: acknowledged directory is missing"));
            }
        }
        for name in &ledger.gone {
            if root.join(name).exists() {
                problems.push(format!("{name}: removed or renamed away, still there"));
            }
        }
        let mut expected: BTreeSet<String> = ledger.files.keys().cloned().collect();
        expected.extend(ledger.dirs.iter().cloned());
        for dir in ledger.dirs.iter() {
            for entry in fs::read_dir(root.join(dir)).into_iter().flatten().flatten() {
                let name = format!("{dir}/{}", entry.file_name().to_string_lossy());
                if !expected.contains(&name) && !ledger.gone.contains(&name) {
                    problems.push(format!("{name}: present, never acknowledged"));
                }
            }
        }
        problems
    }

    /// The root the workload runs under.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The content of file number `i`: a few KiB that differ per file.
fn content(dir: &str, i: u64) -> Vec<u8> {
    let seed = format!("{dir}-{i}-");
    seed.bytes()
        .cycle()
        .take(4096 + (i as usize % 7) * 512)
        .collect()
}

fn worker(root: &Path, dir: &str, stop: &AtomicBool, ledger: &Mutex<Ledger>) {
    let mut live: Vec<String> = Vec::new();
    let mut i: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("{dir}/f{i}");
        let data = content(dir, i);
        let created = (|| {
            let mut file = fs::File::create(root.join(&name))?;
            file.write_all(&data)?;
            file.sync_all()
        })();
        record(
            ledger,
            &format!("create+write+fsync {name}"),
            created,
            |l| {
                l.files.insert(name.clone(), data.clone());
                live.push(name.clone());
            },
        );
        if i % 3 == 2 && live.len() >= 2 {
            let from = live.remove(live.len() - 2);
            let to = format!("{from}.renamed");
            let renamed = fs::rename(root.join(&from), root.join(&to));
            record(ledger, &format!("rename {from} {to}"), renamed, |l| {
                let data = l
                    .files
                    .remove(&from)
                    .expect("renamed file is in the ledger");
                l.files.insert(to.clone(), data);
                l.gone.insert(from.clone());
                live.push(to.clone());
            });
        }
        if i % 5 == 4 && live.len() >= 3 {
            let victim = live.remove(0);
            let removed = fs::remove_file(root.join(&victim));
            record(ledger, &format!("unlink {victim}"), removed, |l| {
                l.files.remove(&victim);
                l.gone.insert(victim.clone());
            });
        }
        if i % 7 == 6 {
            let sub = format!("{dir}/d{i}");
            let made = fs::create_dir(root.join(&sub));
            record(ledger, &format!("mkdir {sub}"), made, |l| {
                l.dirs.insert(sub.clone());
            });
        }
        i += 1;
    }
}

/// Records an operation's outcome: `acknowledged` updates the ledger when it succeeded.
fn record(
    ledger: &Mutex<Ledger>,
    what: &str,
    outcome: std::io::Result<()>,
    acknowledged: impl FnOnce(&mut Ledger),
) {
    let mut ledger = ledger.lock().unwrap();
    match outcome {
        Ok(()) => {
            acknowledged(&mut ledger);
            ledger.completions.push(Instant::now());
        }
        Err(e) => ledger.errors.push(format!("{what}: {e}")),
    }
}
