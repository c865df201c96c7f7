//! The owner lease: one server at a time may serve (and change) a catalog.
//!
//! [`OwnerFence`] is what the file system checks before every change: the lease keeper
//! revokes it, with the reason, when the lease is lost while mounted; from then on every
//! change fails (`EIO`) rather than risk two writers.

use std::sync::Arc;

use parking_lot::RwLock;

/// Whether this server still holds the owner lease; cheap to clone and to check.
#[derive(Debug, Clone, Default)]
pub struct OwnerFence {
    revoked: Arc<RwLock<Option<String>>>,
}

impl OwnerFence {
    /// A fence that lets changes through until [`OwnerFence::revoke`].
    pub fn new() -> OwnerFence {
        OwnerFence::default()
    }

    /// Stops every later change; `reason` says why (kept from the first call).
    pub fn revoke(&self, reason: impl Into<String>) {
        let mut revoked = self.revoked.write();
        if revoked.is_none() {
            *revoked = Some(reason.into());
        }
    }

    /// `Ok` while changes may go on; otherwise why they may not.
    pub fn check(&self) -> Result<(), String> {
        match &*self.revoked.read() {
            None => Ok(()),
            Some(reason) => Err(reason.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OwnerFence;

    #[test]
    fn a_revoked_fence_stops_changes_with_the_first_reason() {
        let fence = OwnerFence::new();
        let seen_by_fs = fence.clone();
        assert_eq!(seen_by_fs.check(), Ok(()));
        fence.revoke("lease taken by host b");
        fence.revoke("later reason");
        assert_eq!(seen_by_fs.check(), Err("lease taken by host b".to_string()));
    }
}
