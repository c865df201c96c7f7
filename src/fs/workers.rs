//! Threads that run the requests needing the catalog, so the FUSE worker threads that read
//! requests from the kernel never wait for the database: reads and writes of open files
//! keep being served while the database is slow, hung or gone.

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

/// A unit of work: one request, with its reply.
pub type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads taking jobs in arrival order.
pub struct Workers {
    sender: Mutex<Option<Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Workers {
    /// Starts `count` threads named `<name>-<index>`.
    pub fn start(count: usize, name: &str) -> io::Result<Workers> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let receiver = Arc::clone(&receiver);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("{name}-{index}"))
                    .spawn(move || run(&receiver))?,
            );
        }
        Ok(Workers {
            sender: Mutex::new(Some(sender)),
            threads: Mutex::new(threads),
        })
    }

    /// Queues `job`; after [`Workers::stop`] it is handed back to run elsewhere.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        match &*self.sender.lock() {
            Some(sender) => sender.send(job).map_err(|err| err.0),
            None => Err(job),
        }
    }

    /// Lets the threads finish the queued jobs, then joins them.
    pub fn stop(&self) {
        drop(self.sender.lock().take());
        for thread in self.threads.lock().drain(..) {
            let _ = thread.join();
        }
    }
}

fn run(receiver: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let job = receiver.lock().recv();
        match job {
            Ok(job) => job(),
            Err(_) => return, // stopped and drained
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn jobs_run_on_the_threads_and_stop_drains_the_queue() {
        let workers = Workers::start(2, "test-worker").unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let done = Arc::clone(&done);
            let job: Job = Box::new(move || {
                assert!(std::thread::current()
                    .name()
                    .unwrap()
                    .starts_with("test-worker-"));
                done.fetch_add(1, Ordering::Relaxed);
            });
            assert!(workers.submit(job).is_ok());
        }
        workers.stop();
        assert_eq!(done.load(Ordering::Relaxed), 100);
        assert!(workers.submit(Box::new(|| {})).is_err(), "stopped");
    }
}
