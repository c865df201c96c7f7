//! Threads that run the requests needing the catalog, so the FUSE worker threads that read
//! requests from the kernel never wait for the database: reads and writes of open files
//! keep being served while the database is slow, hung or gone.
//!
//! A job that panics does not take its thread with it: the panic is caught and logged
//! (rate-limited) and the thread takes the next job. (The core wraps each request's work in
//! a catch of its own, so the request is answered with `EIO`; see `Vfs::offload`.)

use std::any::Any;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::log_limit;

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
            Ok(job) => {
                if let Err(panic) = catch_unwind(AssertUnwindSafe(job)) {
                    log_limit::warn(
                        "worker job panicked",
                        format_args!("a file system job panicked: {}", panic_message(&*panic)),
                    );
                }
            }
            Err(_) => return, // stopped and drained
        }
    }
}

/// The message a panic carried, for the log.
pub fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text
    } else {
        "(no message)"
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

    #[test]
    fn a_panicking_job_leaves_its_thread_serving() {
        let workers = Workers::start(1, "test-panic").unwrap();
        let job: Job = Box::new(|| panic!("job failed on purpose"));
        assert!(workers.submit(job).is_ok());
        let (sender, receiver) = mpsc::channel();
        let job: Job = Box::new(move || sender.send(()).unwrap());
        assert!(workers.submit(job).is_ok());
        let served = receiver.recv_timeout(std::time::Duration::from_secs(30));
        assert!(
            served.is_ok(),
            "the only thread did not run the job after the panic: {served:?}"
        );
        workers.stop();
    }
}
