//! The socket under a pooled connection, remembered so a statement hung on a dead or frozen
//! node can be cut (`shutdown(SHUT_RDWR)`) from another thread: it then fails at once
//! instead of waiting for its read timeout.

use std::os::unix::io::{AsRawFd, RawFd};
use std::time::Duration;

/// A connection's socket and the peer address it had when opened. Small (24 bytes): it is
/// copied into the pool's record of every check-out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerSocket {
    fd: RawFd,
    peer: Peer,
}

/// A TCP peer: address family, IP address (IPv4 in the first 4 bytes) and port.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Peer {
    family: u16,
    port: u16,
    ip: [u8; 16],
}

impl PeerSocket {
    /// The socket of `conn` and its peer, if it is a connected TCP socket.
    pub(crate) fn of(conn: &mysql::Conn) -> Option<PeerSocket> {
        let fd = conn.as_raw_fd();
        let peer = peer_of(fd)?;
        Some(PeerSocket { fd, peer })
    }

    /// Shuts the socket down for reading and writing if the descriptor still is a socket
    /// connected to the same peer (it cannot have been closed and reused for a connection
    /// elsewhere); whether it did.
    pub(crate) fn cut(&self) -> bool {
        if peer_of(self.fd) != Some(self.peer) {
            return false;
        }
        // SAFETY: shutdown takes a descriptor number and touches no memory; the descriptor
        // was just confirmed to be a socket connected to this connection's peer.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) == 0 }
    }
}

/// Sets the read and write timeout of `conn`'s socket (what `mysql` sets at connect).
pub(crate) fn set_io_timeout(conn: &mysql::Conn, timeout: Duration) -> std::io::Result<()> {
    let fd = conn.as_raw_fd();
    let value = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
    };
    for option in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: `value` is a valid timeval and its size is passed with it.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&value as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The TCP peer of socket `fd`, or `None` if it is not a connected TCP socket.
fn peer_of(fd: RawFd) -> Option<Peer> {
    // SAFETY: an all-zero sockaddr_storage is a valid value of this plain C struct.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is writable for `len` bytes and `len` is a valid in/out length.
    let rc = unsafe {
        libc::getpeername(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // and aligned enough for.
            let v4 = unsafe {
                &*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            let mut ip = [0; 16];
            ip[..4].copy_from_slice(&v4.sin_addr.s_addr.to_ne_bytes());
            Some(Peer {
                family: storage.ss_family,
                port: u16::from_be(v4.sin_port),
                ip,
            })
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which it is large
            // and aligned enough for.
            let v6 = unsafe {
                &*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(Peer {
                family: storage.ss_family,
                port: u16::from_be(v6.sin6_port),
                ip: v6.sin6_addr.s6_addr,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_of_a_socket_stays_small() {
        assert!(std::mem::size_of::<Option<PeerSocket>>() <= 28);
    }

    #[test]
    fn a_descriptor_that_is_no_socket_is_never_cut() {
        let file = std::fs::File::open("/dev/null").unwrap();
        use std::os::unix::io::AsRawFd;
        assert!(peer_of(file.as_raw_fd()).is_none());
        let fake = PeerSocket {
            fd: file.as_raw_fd(),
            peer: Peer {
                family: libc::AF_INET as u16,
                port: 3306,
                ip: [0; 16],
            },
        };
        assert!(!fake.cut());
    }

    #[test]
    fn a_socket_connected_elsewhere_is_not_cut() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let peer = peer_of(stream.as_raw_fd()).expect("a connected TCP socket");
        assert_eq!(peer.port, listener.local_addr().unwrap().port());
        let other = PeerSocket {
            fd: stream.as_raw_fd(),
            peer: Peer {
                port: peer.port.wrapping_add(1),
                ..peer
            },
        };
        assert!(!other.cut(), "the peer differs");
        let same = PeerSocket {
            fd: stream.as_raw_fd(),
            peer,
        };
        assert!(same.cut(), "the recorded peer matches");
        let mut buf = [0u8; 1];
        use std::io::Read;
        assert_eq!(
            (&stream).read(&mut buf).unwrap(),
            0,
            "reads see end of file after the cut"
        );
    }
}
