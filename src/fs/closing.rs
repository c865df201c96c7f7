//! Closes the kernel has sent that the file system has not answered yet.
//!
//! The kernel sends RELEASE (and RELEASEDIR) after `close()` has returned, in the
//! background. With several FUSE threads, an unmount right after a close can end the
//! connection while another thread still answers that RELEASE: the kernel then refuses the
//! answer and fuser logs "Failed to send FUSE reply: ENOENT" in what was a clean stop. A
//! stop therefore first waits, briefly, until every handle the kernel opened is closed and
//! its close answered ([`Closing::wait`]).

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// Counts closes being answered; wakes a waiting stop when the last one is.
#[derive(Default)]
pub(super) struct Closing {
    answering: Mutex<usize>,
    idle: Condvar,
}

/// One close being answered: dropped once its reply has been sent.
pub(super) struct Answering(Arc<Closing>);

impl Closing {
    /// Marks a close as being answered until the returned guard is dropped (after its reply).
    pub(super) fn begin(self: &Arc<Self>) -> Answering {
        *self.answering.lock() += 1;
        Answering(Arc::clone(self))
    }

    /// Waits until no close is being answered and `all_closed()` holds (no handle left
    /// open), or `deadline` passes; returns whether it got there. `all_closed` must only
    /// become true through a close that is answered under [`Closing::begin`].
    pub(super) fn wait(&self, deadline: Instant, all_closed: impl Fn() -> bool) -> bool {
        let mut answering = self.answering.lock();
        loop {
            if *answering == 0 && all_closed() {
                return true;
            }
            if self.idle.wait_until(&mut answering, deadline).timed_out() {
                return *answering == 0 && all_closed();
            }
        }
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        let mut answering = self.0.answering.lock();
        *answering -= 1;
        if *answering == 0 {
            self.0.idle.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn a_stop_waits_for_the_close_being_answered_then_goes_on() {
        let closing = Arc::new(Closing::default());
        let open = Arc::new(AtomicUsize::new(1));
        let guard = closing.begin();
        let answer = {
            let open = Arc::clone(&open);
            std::thread::spawn(move || {
                open.store(0, Ordering::SeqCst); // the handle goes, then the reply is sent
                drop(guard);
            })
        };
        let far = Instant::now() + Duration::from_secs(600);
        assert!(closing.wait(far, || open.load(Ordering::SeqCst) == 0));
        answer.join().unwrap();
    }

    #[test]
    fn a_handle_nobody_closes_ends_the_wait_at_the_deadline() {
        let closing = Closing::default();
        assert!(!closing.wait(Instant::now() + Duration::from_millis(20), || false));
        assert!(closing.wait(Instant::now(), || true));
    }
}
