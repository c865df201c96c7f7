//! The recall queue: one [`Recall`] per inode, shared by all its readers, and the requests
//! waiting per volume. A drive serves one volume at a time in copy order (the order of the
//! copies on the tape) and moves to the volume with the oldest waiting request only when its
//! own has none left; pre-reads give way to requests on other volumes. Module `recall` does
//! the copying.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::meta::ArchiveCopy;

/// What a waiter is told: `true` when its range is local, `false` when the recall failed.
pub type Answer = Box<dyn FnOnce(bool) + Send>;

/// The recall of one inode, shared by all its readers.
pub struct Recall {
    /// The inode recalled.
    pub ino: u64,
    /// The copy it is recalled from.
    pub copy: ArchiveCopy,
    /// Nobody asked for it yet (a pre-read).
    pub(super) pre_read: AtomicBool,
    /// Its place in the arrival order.
    arrival: u64,
    progress: Mutex<Progress>,
}

struct Progress {
    /// Bytes from the start that are in the cache.
    local: u64,
    /// `Some(true)` when complete and verified, `Some(false)` when failed.
    outcome: Option<bool>,
    waiters: Vec<(u64, Answer)>,
}

impl Recall {
    fn new(ino: u64, copy: ArchiveCopy, pre_read: bool, arrival: u64) -> Recall {
        Recall {
            ino,
            copy,
            pre_read: AtomicBool::new(pre_read),
            arrival,
            progress: Mutex::new(Progress {
                local: 0,
                outcome: None,
                waiters: Vec::new(),
            }),
        }
    }

    /// Calls `answer` once bytes `0..end` are local (`true`) or the recall failed
    /// (`false`): at once if that is so already, else from the recall's thread.
    pub fn when_local(&self, end: u64, answer: Answer) {
        let mut progress = self.progress.lock();
        let now = match progress.outcome {
            Some(false) => Some(false),
            _ if end <= progress.local || progress.outcome == Some(true) => Some(true),
            _ => None,
        };
        match now {
            Some(ok) => {
                drop(progress);
                answer(ok);
            }
            None => progress.waiters.push((end, answer)),
        }
    }

    /// Calls `answer` once the whole file is local and verified (`true`) or the recall
    /// failed (`false`).
    pub fn when_done(&self, answer: Answer) {
        self.when_local(u64::MAX, answer);
    }

    /// `Some(true)` when bytes `0..end` are local, `Some(false)` when the recall failed,
    /// `None` while they are still to come.
    pub fn local_up_to(&self, end: u64) -> Option<bool> {
        let progress = self.progress.lock();
        match progress.outcome {
            Some(false) => Some(false),
            Some(true) => Some(true),
            None => (end <= progress.local).then_some(true),
        }
    }

    /// Whether it finished (either way).
    pub fn is_finished(&self) -> bool {
        self.progress.lock().outcome.is_some()
    }

    /// Bytes local so far.
    pub fn local_bytes(&self) -> u64 {
        self.progress.lock().local
    }

    pub(super) fn advance(&self, local: u64) {
        let ready = {
            let mut progress = self.progress.lock();
            progress.local = local;
            let (ready, waiting) = std::mem::take(&mut progress.waiters)
                .into_iter()
                .partition(|(end, _)| *end <= local);
            progress.waiters = waiting;
            ready
        };
        for (_, answer) in ready {
            answer(true);
        }
    }

    pub(super) fn finish(&self, ok: bool) {
        let waiters = {
            let mut progress = self.progress.lock();
            progress.outcome = Some(ok);
            if ok {
                progress.local = self.copy.size;
            }
            std::mem::take(&mut progress.waiters)
        };
        for (_, answer) in waiters {
            answer(ok);
        }
    }
}

/// The recall queue: requests per volume, in sequence order.
#[derive(Default)]
pub struct RecallQueue {
    queue: Mutex<Queue>,
    work: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Waiting recalls per volume, by sequence number.
    waiting: BTreeMap<String, BTreeMap<u64, Arc<Recall>>>,
    /// Every recall waiting or running, by inode.
    active: HashMap<u64, Arc<Recall>>,
    /// Volumes a drive serves now.
    busy: HashSet<String>,
    next_arrival: u64,
    stopped: bool,
}

/// What a drive serves: its volume, and where on it it is.
#[derive(Default)]
pub(super) struct Position {
    pub(super) volume: Option<String>,
    pub(super) seq: u64,
    /// The volume this drive keeps marked busy, from its pick until its next pick (so no
    /// other drive takes that volume's next copy between two of this drive's recalls).
    held: Option<String>,
}

impl Queue {
    /// The next recall for a drive at `at`: on its volume the next copy in sequence order
    /// (wrapping to the lowest); else, on a volume no other drive serves, the one whose
    /// request came first. Pre-reads are served only while no request waits elsewhere.
    fn next_for(&mut self, at: &Position) -> Option<Arc<Recall>> {
        let asked_elsewhere = self.waiting.iter().any(|(volume, recalls)| {
            Some(volume) != at.volume.as_ref()
                && !self.busy.contains(volume)
                && recalls
                    .values()
                    .any(|r| !r.pre_read.load(Ordering::Relaxed))
        });
        if let Some(volume) = &at.volume {
            if let Some(recalls) = self.waiting.get_mut(volume) {
                if asked_elsewhere {
                    // Pre-reads give way to requests on other volumes.
                    recalls.retain(|_, r| !r.pre_read.load(Ordering::Relaxed));
                }
                let seq = recalls
                    .range(at.seq..)
                    .next()
                    .or_else(|| recalls.iter().next())
                    .map(|(&seq, _)| seq);
                if let Some(seq) = seq {
                    return self.take(volume.clone(), seq);
                }
            }
        }
        let (volume, seq) = self
            .waiting
            .iter()
            .filter(|(volume, _)| !self.busy.contains(*volume))
            .filter_map(|(volume, recalls)| {
                recalls
                    .iter()
                    .filter(|(_, r)| !r.pre_read.load(Ordering::Relaxed))
                    .min_by_key(|(_, r)| r.arrival)
                    .map(|(&seq, r)| (r.arrival, volume.clone(), seq))
            })
            .min()
            .map(|(_, volume, seq)| (volume, seq))?;
        self.take(volume, seq)
    }

    fn take(&mut self, volume: String, seq: u64) -> Option<Arc<Recall>> {
        let recalls = self.waiting.get_mut(&volume)?;
        let recall = recalls.remove(&seq)?;
        if recalls.is_empty() {
            self.waiting.remove(&volume);
        }
        Some(recall)
    }

    fn has_work(&self) -> bool {
        self.waiting.keys().any(|v| !self.busy.contains(v))
    }
}

impl RecallQueue {
    /// The recall of `ino` from `copy`: the one running or waiting, else a new one queued.
    /// An on-demand request makes a waiting pre-read a request.
    pub fn request(&self, ino: u64, copy: ArchiveCopy, pre_read: bool) -> Arc<Recall> {
        let mut queue = self.queue.lock();
        if let Some(recall) = queue.active.get(&ino) {
            if !pre_read {
                recall.pre_read.store(false, Ordering::Relaxed);
            }
            return Arc::clone(recall);
        }
        queue.next_arrival += 1;
        let recall = Arc::new(Recall::new(ino, copy, pre_read, queue.next_arrival));
        queue.active.insert(ino, Arc::clone(&recall));
        queue
            .waiting
            .entry(recall.copy.volume.clone())
            .or_default()
            .insert(recall.copy.seq, Arc::clone(&recall));
        drop(queue);
        self.work.notify_one();
        recall
    }

    /// The recall of `ino` running or waiting, if any.
    pub fn active(&self, ino: u64) -> Option<Arc<Recall>> {
        self.queue.lock().active.get(&ino).cloned()
    }

    /// Recalls waiting and running: (waiting, running).
    pub fn counts(&self) -> (usize, usize) {
        let queue = self.queue.lock();
        let waiting: usize = queue.waiting.values().map(BTreeMap::len).sum();
        (waiting, queue.active.len() - waiting)
    }

    /// Waiting recalls per volume.
    pub fn waiting_per_volume(&self) -> Vec<(String, usize)> {
        let queue = self.queue.lock();
        queue
            .waiting
            .iter()
            .map(|(v, r)| (v.clone(), r.len()))
            .collect()
    }

    /// Fails every waiting recall and wakes the drives to end.
    pub fn stop(&self) {
        let waiting: Vec<Arc<Recall>> = {
            let mut queue = self.queue.lock();
            queue.stopped = true;
            let waiting = std::mem::take(&mut queue.waiting);
            for recall in waiting.values().flat_map(BTreeMap::values) {
                queue.active.remove(&recall.ino);
            }
            waiting
                .into_values()
                .flat_map(BTreeMap::into_values)
                .collect()
        };
        self.work.notify_all();
        for recall in waiting {
            recall.finish(false);
        }
    }

    /// Waits for work; `false` once stopped.
    pub(super) fn await_work(&self) -> bool {
        let mut queue = self.queue.lock();
        while !queue.stopped && !queue.has_work() {
            self.work.wait(&mut queue);
        }
        !queue.stopped
    }

    pub(super) fn next_for(&self, at: &mut Position) -> Option<Arc<Recall>> {
        let mut queue = self.queue.lock();
        if queue.stopped {
            return None;
        }
        if let Some(volume) = at.held.take() {
            queue.busy.remove(&volume);
        }
        let recall = queue.next_for(at)?;
        queue.busy.insert(recall.copy.volume.clone());
        at.held = Some(recall.copy.volume.clone());
        Some(recall)
    }

    /// `recall` ended; its volume stays marked busy until the drive's next pick (or until it
    /// gives its drive back, [`RecallQueue::release`]).
    pub(super) fn done(&self, recall: &Recall) {
        self.queue.lock().active.remove(&recall.ino);
        self.work.notify_all();
    }

    /// The drive at `at` stops serving: its volume is free for the other drives.
    pub(super) fn release(&self, at: &mut Position) {
        if let Some(volume) = at.held.take() {
            self.queue.lock().busy.remove(&volume);
        }
        self.work.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(ino: u64, volume: &str, seq: u64) -> ArchiveCopy {
        ArchiveCopy {
            ino,
            volume: volume.into(),
            seq,
            size: 1,
            mtime: 0,
            md5: None,
            sha1: None,
            archived_ns: 0,
            superseded_ns: None,
        }
    }

    /// What `drive_loop` does with a recall it took: moves the drive to its volume.
    fn serve_at(queue: &RecallQueue, at: &mut Position, recall: &Recall) {
        at.volume = Some(recall.copy.volume.clone());
        at.seq = recall.copy.seq;
        queue.done(recall);
    }

    #[test]
    fn a_drive_keeps_its_volume_between_two_recalls() {
        let queue = RecallQueue::default();
        queue.request(1, copy(1, "V1", 1), false);
        queue.request(2, copy(2, "V1", 2), false);
        queue.request(3, copy(3, "V2", 1), false);
        let (mut a, mut b) = (Position::default(), Position::default());
        let first = queue.next_for(&mut a).expect("the oldest request");
        assert_eq!((first.ino, first.copy.volume.as_str()), (1, "V1"));
        serve_at(&queue, &mut a, &first);
        // Drive b picks between drive a's recalls: V1's next copy is a's, not b's (else both
        // drives would take turns on one volume, each turn counted as a switch).
        let other = queue.next_for(&mut b).expect("a request on another volume");
        assert_eq!(
            (other.ino, other.copy.volume.as_str()),
            (3, "V2"),
            "drive b took inode {} on {}",
            other.ino,
            other.copy.volume
        );
        let next = queue.next_for(&mut a).expect("V1's next copy");
        assert_eq!((next.ino, next.copy.volume.as_str()), (2, "V1"));
    }

    #[test]
    fn a_drive_that_stops_serving_frees_its_volume() {
        let queue = RecallQueue::default();
        queue.request(1, copy(1, "V1", 1), false);
        let (mut a, mut b) = (Position::default(), Position::default());
        let first = queue.next_for(&mut a).unwrap();
        serve_at(&queue, &mut a, &first);
        queue.request(2, copy(2, "V1", 2), false);
        assert!(
            queue.next_for(&mut b).is_none(),
            "V1 is drive a's while it serves"
        );
        queue.release(&mut a);
        let next = queue.next_for(&mut b).expect("V1 free for drive b");
        assert_eq!(next.ino, 2);
    }
}
