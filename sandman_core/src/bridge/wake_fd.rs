//! The descriptor the event loop watches for the bridge: an `eventfd` on Linux (one
//! descriptor, a counter), a socket pair elsewhere (a byte written, bytes drained). The
//! `portable` feature builds the socket pair on Linux too, so CI tests the code other
//! platforms run.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// A wake-up descriptor: readable from [`signal`] until [`clear`].
///
/// [`signal`]: WakeFd::signal
/// [`clear`]: WakeFd::clear
pub struct WakeFd {
    #[cfg(all(target_os = "linux", not(feature = "portable")))]
    eventfd: std::os::fd::OwnedFd,
    #[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
    pair: (
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    ),
}

#[cfg(all(target_os = "linux", not(feature = "portable")))]
impl WakeFd {
    /// A non-blocking `eventfd`.
    pub fn new() -> io::Result<WakeFd> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall; the returned descriptor is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(WakeFd {
            // SAFETY: fd was just created and is owned by nobody else.
            eventfd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The descriptor to watch for readability.
    pub fn fd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    /// Make the descriptor readable.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a valid u64 to our own eventfd. EAGAIN (counter full)
        // cannot matter: the loop is already due to wake.
        unsafe {
            libc::write(self.fd(), (&one as *const u64).cast(), 8);
        }
    }

    /// Make it quiet again.
    pub fn clear(&self) {
        let mut counter: u64 = 0;
        // SAFETY: reading 8 bytes into a valid u64 from our own non-blocking eventfd.
        unsafe {
            libc::read(self.fd(), (&mut counter as *mut u64).cast(), 8);
        }
    }
}

#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
impl WakeFd {
    /// A non-blocking socket pair: the loop watches one end, signals go into the other.
    pub fn new() -> io::Result<WakeFd> {
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        Ok(WakeFd {
            pair: (read, write),
        })
    }

    /// The descriptor to watch for readability.
    pub fn fd(&self) -> RawFd {
        self.pair.0.as_raw_fd()
    }

    /// Make the descriptor readable.
    pub fn signal(&self) {
        use std::io::Write;
        // A full socket buffer (WouldBlock) cannot matter: the loop is already due to wake.
        let _ = (&self.pair.1).write(&[1]);
    }

    /// Make it quiet again.
    pub fn clear(&self) {
        use std::io::Read;
        let mut buf = [0u8; 256];
        while matches!((&self.pair.0).read(&mut buf), Ok(n) if n > 0) {}
    }
}
