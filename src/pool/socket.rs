//! The socket under a pooled connection, remembered so a statement hung on a dead or frozen
//! node can be cut (`shutdown(SHUT_RDWR)`) from another thread: it then fails at once
//! instead of waiting for its read timeout.

use std::os::unix::io::{AsRawFd, RawFd};

/// A connection's socket and the peer address it had when opened.
#[derive(Clone, Copy)]
pub(crate) struct PeerSocket {
    fd: RawFd,
    peer: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl PeerSocket {
    /// The socket of `conn` and its peer, if it is a connected socket.
    pub(crate) fn of(conn: &mysql::Conn) -> Option<PeerSocket> {
        let fd = conn.as_raw_fd();
        let (peer, len) = peer_of(fd)?;
        Some(PeerSocket { fd, peer, len })
    }

    /// Shuts the socket down for reading and writing if the descriptor still is a socket
    /// connected to the same peer (it cannot have been closed and reused for a connection
    /// elsewhere); whether it did.
    pub(crate) fn cut(&self) -> bool {
        let Some((peer, len)) = peer_of(self.fd) else {
            return false;
        };
        if len != self.len || !same_bytes(&peer, &self.peer, len) {
            return false;
        }
        // SAFETY: shutdown takes a descriptor number and touches no memory; the descriptor
        // was just confirmed to be a socket connected to this connection's peer.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) == 0 }
    }
}

/// The peer address of socket `fd`, or `None` if it is not a connected socket.
fn peer_of(fd: RawFd) -> Option<(libc::sockaddr_storage, libc::socklen_t)> {
    // SAFETY: an all-zero sockaddr_storage is a valid value of this plain C struct.
    let mut peer: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `peer` is writable for `len` bytes and `len` is a valid in/out length.
    let rc = unsafe {
        libc::getpeername(
            fd,
            (&mut peer as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some((peer, len))
}

/// Whether the first `len` bytes of two addresses are equal.
fn same_bytes(
    a: &libc::sockaddr_storage,
    b: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> bool {
    let len = (len as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: both point to whole sockaddr_storage values, at least `len` bytes long, and
    // plain bytes may be read from any initialised struct.
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts((a as *const libc::sockaddr_storage).cast::<u8>(), len),
            std::slice::from_raw_parts((b as *const libc::sockaddr_storage).cast::<u8>(), len),
        )
    };
    a == b
}
